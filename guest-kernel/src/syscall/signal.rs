//! Signal calls: sigaction, sigprocmask, sigreturn (delivery itself is in
//! `crate::signal`).
//!
//! `sigaction(sig, act_ptr, oldact_ptr, restorer)`: `restorer` is the address
//! the handler returns to; 0 means the kernel's trampoline, which calls
//! `sigreturn`. Sets are `[u64; 2]` with bit `n - 1` for signal `n`. SIGKILL
//! and SIGSTOP cannot be caught or blocked.

use warden_abi::*;

use super::{errno, Call, SysError, SysResult};
use crate::process::Action;
use crate::signal::{sig_bit, UNBLOCKABLE};
use crate::usercopy::copy_out;
use crate::{Kernel, Pid};

/// `sigaction(sig, act, oldact, restorer)`.
pub(super) fn sigaction(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let [sig, _, old_addr, restorer, ..] = c.args;
    if sig == 0 || sig >= NSIG {
        return errno(EINVAL);
    }
    let new = c.input(1).and_then(SigAction::from_bytes);
    if new.is_some() && (sig == SIGKILL || sig == SIGSTOP) {
        return errno(EINVAL);
    }
    let sighand = k.proc_of(tid)?.sighand.clone();
    let old = sighand.borrow().actions[sig];
    if old_addr != 0 {
        let mm = k.mm_of(tid)?;
        copy_out(&mut mm.borrow_mut().space.mem, old_addr, &old.sa.to_bytes())?;
    }
    if let Some(sa) = new {
        sighand.borrow_mut().actions[sig] = Action { sa, restorer };
        if sa.sa_handler == SIG_IGN {
            // Pending instances of a now-ignored signal are discarded.
            let pid = k.pid_of(tid)?;
            if let Some(p) = k.procs.get_mut(&pid) {
                p.pending &= !sig_bit(sig);
            }
        }
    }
    Ok(0)
}

/// `sigprocmask(how, set, oldset)`: sets are `[u64; 2]`; the first word is the mask.
pub(super) fn sigprocmask(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let [how, _, old_addr, ..] = c.args;
    let old = k.threads.get(&tid).map(|t| t.sigmask).unwrap_or(0);
    if let Some(set) = c.input(1) {
        let set = super::input::le64(set, 0);
        let new = match how {
            SIG_BLOCK => old | set,
            SIG_UNBLOCK => old & !set,
            SIG_SETMASK => set,
            _ => return errno(EINVAL),
        };
        if let Some(t) = k.threads.get_mut(&tid) {
            t.sigmask = new & !UNBLOCKABLE;
        }
    }
    if old_addr != 0 {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&old.to_le_bytes());
        let mm = k.mm_of(tid)?;
        copy_out(&mut mm.borrow_mut().space.mem, old_addr, &bytes)?;
    }
    Ok(0)
}

pub(super) fn sigreturn(k: &mut Kernel, tid: Pid, _: &Call) -> SysResult {
    k.restore_signal_frame(tid);
    Err(SysError::NoReturn)
}
