//! Signal calls: sigaction, sigprocmask, sigreturn (delivery itself is in
//! `crate::signal`).
//!
//! `sigaction(sig, act_ptr, oldact_ptr, restorer)`: `restorer` is the address
//! the handler returns to; 0 means the kernel's trampoline, which calls
//! `sigreturn`. Sets are `[u64; 2]` with bit `n - 1` for signal `n`. SIGKILL
//! and SIGSTOP cannot be caught or blocked.

use warden_abi::*;

use super::{errno, Call, Input, SysError, SysResult};
use crate::process::Action;
use crate::signal::{sig_bit, UNBLOCKABLE};
use crate::usercopy::copy_out;
use crate::{Kernel, Pid};

impl Kernel {
    pub(super) fn sys_sigaction(
        &mut self,
        tid: Pid,
        sig: usize,
        old_addr: usize,
        restorer: usize,
        call: &Call,
    ) -> SysResult {
        if sig == 0 || sig >= NSIG {
            return errno(EINVAL);
        }
        let Input::SigAction(new) = &call.input else {
            return errno(EFAULT);
        };
        if new.is_some() && (sig == SIGKILL || sig == SIGSTOP) {
            return errno(EINVAL);
        }
        let sighand = self.proc_of(tid)?.sighand.clone();
        let old = sighand.borrow().actions[sig];
        if old_addr != 0 {
            let mm = self.mm_of(tid)?;
            copy_out(&mut mm.borrow_mut().space.mem, old_addr, &old.sa.to_bytes())?;
        }
        if let Some(sa) = new {
            sighand.borrow_mut().actions[sig] = Action { sa: *sa, restorer };
            if sa.sa_handler == SIG_IGN {
                // Pending instances of a now-ignored signal are discarded.
                let pid = self.pid_of(tid)?;
                if let Some(p) = self.procs.get_mut(&pid) {
                    p.pending &= !sig_bit(sig);
                }
            }
        }
        Ok(0)
    }

    pub(super) fn sys_sigprocmask(&mut self, tid: Pid, how: usize, old_addr: usize, call: &Call) -> SysResult {
        let Input::SigSet(set) = &call.input else {
            return errno(EFAULT);
        };
        let old = self.threads.get(&tid).map(|t| t.sigmask).unwrap_or(0);
        if let Some(set) = set {
            let new = match how {
                SIG_BLOCK => old | set,
                SIG_UNBLOCK => old & !set,
                SIG_SETMASK => *set,
                _ => return errno(EINVAL),
            };
            if let Some(t) = self.threads.get_mut(&tid) {
                t.sigmask = new & !UNBLOCKABLE;
            }
        }
        if old_addr != 0 {
            let mut bytes = [0u8; 16];
            bytes[..8].copy_from_slice(&old.to_le_bytes());
            let mm = self.mm_of(tid)?;
            copy_out(&mut mm.borrow_mut().space.mem, old_addr, &bytes)?;
        }
        Ok(0)
    }

    pub(super) fn sys_sigreturn(&mut self, tid: Pid) -> SysResult {
        self.restore_signal_frame(tid);
        Err(SysError::NoReturn)
    }
}
