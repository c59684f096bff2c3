//! Signals: posting, default actions, handler frames, and CPU faults.
//!
//! - A signal posted to a process is taken by its first thread that does not
//!   block it. A default action that terminates (or dumps core) ends the
//!   process at once; ignored signals are dropped; SIGKILL always kills. Stop
//!   signals stop the process and SIGCONT resumes it ([`crate::jobs`]).
//! - A caught signal is delivered just before the thread next runs: the
//!   kernel writes a [`frame`](encode_frame) with every register (general
//!   purpose, rip, rflags, fs/gs base, xmm0–15, mxcsr, x87) and the old
//!   signal mask below the red zone, 16-byte aligned, pushes the restorer
//!   address as the handler's return address and enters the handler with
//!   `rdi = sig`, `rsi = 0`, `rdx = frame address`. The handler's `ret` lands
//!   on the restorer (the process's trampoline by default), whose `sigreturn`
//!   finds the frame at `rsp` and restores everything from it (rflags only in
//!   its user-writable bits).
//! - A thread blocked in a call when a handler is to run is woken: the call
//!   fails with EINTR, or runs again with `SA_RESTART` (a Linux call after the
//!   handler, and only the calls Linux restarts; see [`Kernel::interrupt`]).
//! - CPU faults are synchronous signals: #PF, #GP, `hlt` and `int n` →
//!   SIGSEGV; #UD → SIGILL; #DE, #XM, #MF → SIGFPE; int3 and int1 → SIGTRAP.
//!   A fault whose signal is blocked or not caught kills the process.

use emu::{flags, reg, Cpu, Exit, GuestAddress};
use warden_abi::*;

use crate::jobs::{SigInfo, STOP_SIGNALS};
use crate::process::{OnWake, ProcState, ThreadState};
use crate::{Kernel, Pid};

/// The bit of signal `sig` in a set.
pub const fn sig_bit(sig: usize) -> u64 {
    if sig == 0 || sig > 64 {
        0
    } else {
        1 << (sig - 1)
    }
}

/// Signals that cannot be blocked.
pub const UNBLOCKABLE: u64 = sig_bit(SIGKILL) | sig_bit(SIGSTOP);

/// What a signal does when its disposition is `SIG_DFL`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefaultAction {
    Terminate,
    /// Terminate (no core file is written).
    Core,
    Ignore,
    /// Stop the process until SIGCONT ([`crate::jobs`]).
    Stop,
}

pub fn default_action(sig: usize) -> DefaultAction {
    match sig {
        SIGCHLD | SIGURG | SIGWINCH | SIGCONT => DefaultAction::Ignore,
        SIGSTOP | SIGTSTP | SIGTTIN | SIGTTOU => DefaultAction::Stop,
        SIGQUIT | SIGILL | SIGTRAP | SIGABRT | SIGBUS | SIGFPE | SIGSEGV | SIGXCPU | SIGXFSZ | SIGSYS => {
            DefaultAction::Core
        }
        _ => DefaultAction::Terminate,
    }
}

/// The signal a CPU exit raises (`None` for syscalls and budget exits).
pub fn fault_signal(exit: &Exit) -> Option<usize> {
    Some(match exit {
        Exit::PageFault { .. } | Exit::GeneralProtection | Exit::Halt | Exit::Interrupt(_) => SIGSEGV,
        Exit::InvalidOpcode { .. } => SIGILL,
        Exit::DivideError | Exit::SimdFloatingPoint | Exit::FloatingPoint => SIGFPE,
        Exit::Breakpoint | Exit::Debug => SIGTRAP,
        Exit::Syscall(_) | Exit::BudgetExhausted | Exit::DebugBreak => return None,
    })
}

/// "WARDSIG\0": marks a signal frame.
const FRAME_MAGIC: u64 = 0x0047_4953_4452_4157;
/// Size of a signal frame in bytes.
pub const FRAME_SIZE: usize = 8 * (3 + 16 + 4 + 1 + 3) + 16 * 16 + 16 * 8;

/// Serialises the thread state a handler interrupts.
pub fn encode_frame(cpu: &Cpu, sig: usize, old_mask: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(FRAME_SIZE);
    let mut put = |v: u64| out.extend_from_slice(&v.to_le_bytes());
    put(FRAME_MAGIC);
    put(sig as u64);
    put(old_mask);
    for r in cpu.gpr {
        put(r);
    }
    put(cpu.rip);
    put(cpu.rflags);
    put(cpu.fs_base);
    put(cpu.gs_base);
    put(cpu.mxcsr as u64);
    let x = &cpu.x87;
    put(x.fcw as u64 | (x.fsw as u64) << 16 | (x.ftw as u64) << 32 | (x.fop as u64) << 48);
    put(x.fip);
    put(x.fdp);
    for v in cpu.xmm {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for v in x.regs {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Restores `cpu` from a frame; returns the saved signal mask, or `None` if
/// `bytes` is not a frame.
pub fn decode_frame(bytes: &[u8], cpu: &mut Cpu) -> Option<u64> {
    if bytes.len() < FRAME_SIZE {
        return None;
    }
    let word = |i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
        u64::from_le_bytes(w)
    };
    let wide = |at: usize| {
        let mut w = [0u8; 16];
        w.copy_from_slice(&bytes[at..at + 16]);
        u128::from_le_bytes(w)
    };
    if word(0) != FRAME_MAGIC {
        return None;
    }
    let mask = word(2);
    for i in 0..16 {
        cpu.gpr[i] = word(3 + i);
    }
    cpu.rip = word(19);
    cpu.set_rflags(word(20));
    cpu.fs_base = word(21);
    cpu.gs_base = word(22);
    // Reserved MXCSR bits would fault on hardware; keep only the valid ones.
    cpu.mxcsr = (word(23) as u32) & 0xffff;
    let x87 = word(24);
    cpu.x87.fcw = x87 as u16;
    cpu.x87.fsw = (x87 >> 16) as u16;
    cpu.x87.ftw = (x87 >> 32) as u8;
    cpu.x87.fop = (x87 >> 48) as u16;
    cpu.x87.fip = word(25);
    cpu.x87.fdp = word(26);
    let base = 27 * 8;
    for i in 0..16 {
        cpu.xmm[i] = wide(base + 16 * i);
    }
    for i in 0..8 {
        cpu.x87.regs[i] = wide(base + 256 + 16 * i);
    }
    Some(mask)
}

impl Kernel {
    /// Posts `sig` to process `pid`, raised by the kernel itself.
    pub(crate) fn post_signal(&mut self, pid: Pid, sig: usize) {
        self.post_signal_info(pid, sig, SigInfo::KERNEL);
    }

    /// Posts `sig` to process `pid`, sent as `info` says.
    pub(crate) fn post_signal_info(&mut self, pid: Pid, sig: usize, info: SigInfo) {
        let bit = sig_bit(sig);
        let Some(p) = self.procs.get(&pid) else {
            return;
        };
        if p.state != ProcState::Alive || bit == 0 {
            return;
        }
        if sig == SIGKILL {
            self.terminate_process(pid, w_termsig(sig));
            return;
        }
        // Job control acts when the signal is sent (`crate::jobs`).
        if bit & STOP_SIGNALS != 0 {
            self.discard_pending(pid, sig_bit(SIGCONT));
        } else if sig == SIGCONT {
            self.discard_pending(pid, STOP_SIGNALS);
            self.continue_process(pid);
        }
        let Some(p) = self.procs.get(&pid) else {
            return;
        };
        let action = p.sighand.borrow().actions[sig];
        let taker = p.threads.iter().copied().find(|t| self.threads.get(t).is_some_and(|t| t.sigmask & bit == 0));
        // Readers of signals as data (signalfd, sigtimedwait) look again.
        self.waker.wake(crate::linux::signalfd::signal_key(pid));
        let make_pending = |k: &mut Kernel| {
            if let Some(p) = k.procs.get_mut(&pid) {
                if p.pending & bit == 0 {
                    p.siginfo[sig] = info;
                }
                p.pending |= bit;
            }
        };
        match action.sa.sa_handler {
            SIG_IGN => {}
            SIG_DFL => match default_action(sig) {
                // Blocked everywhere, it stays pending until taken or unblocked (as on Linux).
                DefaultAction::Ignore => {
                    if taker.is_none() {
                        make_pending(self);
                    }
                }
                DefaultAction::Stop => {
                    if taker.is_some() {
                        self.stop_process(pid, sig);
                    } else {
                        make_pending(self);
                    }
                }
                DefaultAction::Terminate | DefaultAction::Core => {
                    if taker.is_some() {
                        self.terminate_process(pid, w_termsig(sig));
                    } else {
                        make_pending(self);
                    }
                }
            },
            _ => {
                make_pending(self);
                if let Some(t) = taker {
                    self.interrupt(t, action.sa.sa_flags & SA_RESTART != 0);
                }
            }
        }
    }

    /// Drops the signals `bits` pending for `pid` and its threads.
    fn discard_pending(&mut self, pid: Pid, bits: u64) {
        let Some(p) = self.procs.get_mut(&pid) else { return };
        p.pending &= !bits;
        for t in p.threads.clone() {
            if let Some(t) = self.threads.get_mut(&t) {
                t.pending &= !bits;
            }
        }
    }

    /// Posts `sig` to thread `tid` only (SIGPIPE), raised by the kernel.
    pub(crate) fn post_thread_signal(&mut self, tid: Pid, sig: usize) {
        self.post_thread_signal_info(tid, sig, SigInfo::KERNEL);
    }

    /// Posts `sig` to thread `tid` only (`tkill`), sent as `info` says.
    pub(crate) fn post_thread_signal_info(&mut self, tid: Pid, sig: usize, info: SigInfo) {
        let bit = sig_bit(sig);
        let Ok(pid) = self.pid_of(tid) else { return };
        let Some(p) = self.procs.get(&pid) else {
            return;
        };
        let action = p.sighand.borrow().actions[sig];
        let masked = self.threads.get(&tid).is_some_and(|t| t.sigmask & bit != 0);
        match action.sa.sa_handler {
            SIG_IGN => {}
            SIG_DFL if default_action(sig) == DefaultAction::Ignore => {}
            SIG_DFL if !masked && default_action(sig) == DefaultAction::Stop => self.stop_process(pid, sig),
            SIG_DFL if !masked => self.terminate_process(pid, w_termsig(sig)),
            _ => {
                if let Some(t) = self.threads.get_mut(&tid) {
                    if t.pending & bit == 0 {
                        t.siginfo[sig] = info;
                    }
                    t.pending |= bit;
                }
                self.waker.wake(crate::linux::signalfd::signal_key(pid));
            }
        }
    }

    /// A CPU fault in thread `tid`: delivered to a handler if one is installed
    /// and the signal is not blocked, otherwise fatal.
    pub(crate) fn raise_fault(&mut self, tid: Pid, sig: usize) {
        let bit = sig_bit(sig);
        let Ok(pid) = self.pid_of(tid) else { return };
        let Some(p) = self.procs.get(&pid) else {
            return;
        };
        let handler = p.sighand.borrow().actions[sig].sa.sa_handler;
        let masked = self.threads.get(&tid).is_some_and(|t| t.sigmask & bit != 0);
        if handler == SIG_DFL || handler == SIG_IGN || masked {
            self.terminate_process(pid, w_termsig(sig));
        } else if let Some(t) = self.threads.get_mut(&tid) {
            t.pending |= bit;
            t.siginfo[sig] = SigInfo::KERNEL;
        }
    }

    /// Wakes a blocked thread because a handler is to run: its call fails with EINTR, or
    /// with `restart` (`SA_RESTART`) is made again. A Linux call is made again after the
    /// handler, from the start, as Linux restarts it (the `syscall` instruction runs again
    /// when the handler returns), and only if Linux restarts that call
    /// ([`crate::linux::signal::restarts`]); a Redox call runs again before the handler.
    fn interrupt(&mut self, tid: Pid, restart: bool) {
        let Some(t) = self.threads.get_mut(&tid) else {
            return;
        };
        let state = std::mem::replace(&mut t.state, ThreadState::Runnable);
        let ThreadState::Blocked(b) = state else {
            t.state = state;
            return;
        };
        let linux = b.call.number & warden_abi::linux::LINUX_CALL != 0;
        self.sched.run_queue.push_back(tid);
        if !linux && restart && b.on_wake == OnWake::Retry {
            t.state = ThreadState::Retry(b);
            return;
        }
        if t.write_done > 0 {
            // A write that blocked part-way returns what it wrote (`crate::io`).
            t.cpu.gpr[reg::RAX] = std::mem::take(&mut t.write_done) as u64;
        } else if linux && restart && crate::linux::signal::restarts(&b.call, b.on_wake) {
            // Both gates (`syscall`, `int 0x80`) are two bytes long.
            t.cpu.rip = t.cpu.rip.wrapping_sub(2);
            t.cpu.gpr[reg::RAX] = (b.call.number & !warden_abi::linux::LINUX_CALL) as u64;
        } else {
            t.cpu.gpr[reg::RAX] = crate::call::rax(Err(Errno(EINTR))) as u64;
            if linux {
                self.lx_interrupted(tid, &b);
            }
        }
        // A user-scheme daemon is told the request was cancelled; a channel call's reply
        // capability goes dead.
        self.abandon_ipc(tid);
    }

    /// Delivers one pending, unblocked signal to `tid` (before it runs).
    pub(crate) fn deliver_signals(&mut self, tid: Pid) {
        let Some(t) = self.threads.get(&tid) else {
            return;
        };
        let Some(p) = self.procs.get(&t.pid) else {
            return;
        };
        let pending = (t.pending | p.pending) & !t.sigmask;
        if pending == 0 {
            return;
        }
        let sig = pending.trailing_zeros() as usize + 1;
        let bit = sig_bit(sig);
        let pid = t.pid;
        let mut info = SigInfo::default();
        if t.pending & bit != 0 {
            if let Some(t) = self.threads.get_mut(&tid) {
                t.pending &= !bit;
                info = t.siginfo[sig];
            }
        } else if let Some(p) = self.procs.get_mut(&pid) {
            p.pending &= !bit;
            info = p.siginfo[sig];
        }
        let Some(p) = self.procs.get(&pid) else {
            return;
        };
        let action = p.sighand.borrow().actions[sig];
        match action.sa.sa_handler {
            SIG_IGN => {}
            SIG_DFL => match default_action(sig) {
                DefaultAction::Ignore => {}
                DefaultAction::Stop => self.stop_process(pid, sig),
                DefaultAction::Terminate | DefaultAction::Core => self.terminate_process(pid, w_termsig(sig)),
            },
            handler => {
                if action.sa.sa_flags & SA_RESETHAND != 0 {
                    p.sighand.borrow_mut().actions[sig] = Default::default();
                }
                let framed = if self.is_linux_pid(pid) {
                    self.linux_setup_frame(tid, sig, &action, &info)
                } else {
                    self.setup_frame(tid, sig, handler, &action)
                };
                if framed.is_none() {
                    self.terminate_process(pid, w_termsig(SIGSEGV));
                }
            }
        }
    }

    fn setup_frame(&mut self, tid: Pid, sig: usize, handler: usize, action: &crate::process::Action) -> Option<()> {
        let mm = self.mm_of(tid).ok()?;
        let mut mm = mm.borrow_mut();
        let restorer = if action.restorer != 0 { action.restorer as u64 } else { mm.trampoline };
        let t = self.threads.get_mut(&tid)?;
        let frame = encode_frame(&t.cpu, sig, t.sigmask);
        let rsp = t.cpu.gpr[reg::RSP];
        let frame_addr = rsp.checked_sub(128 + FRAME_SIZE as u64)? & !15;
        let ret_addr = frame_addr.checked_sub(8)?;
        mm.space.mem.write(GuestAddress(frame_addr), &frame).ok()?;
        mm.space.mem.write(GuestAddress(ret_addr), &restorer.to_le_bytes()).ok()?;
        let cpu = &mut t.cpu;
        cpu.gpr[reg::RSP] = ret_addr;
        cpu.rip = handler as u64;
        cpu.gpr[reg::RDI] = sig as u64;
        cpu.gpr[reg::RSI] = 0;
        cpu.gpr[reg::RDX] = frame_addr;
        cpu.gpr[reg::RAX] = 0;
        cpu.rflags &= !(flags::DF | flags::TF);
        let mut block = action.sa.sa_mask[0];
        if action.sa.sa_flags & SA_NODEFER == 0 {
            block |= sig_bit(sig);
        }
        t.sigmask = (t.sigmask | block) & !UNBLOCKABLE;
        Some(())
    }

    /// `sigreturn`: restores the frame at `rsp`; a missing or corrupt frame
    /// kills the process with SIGSEGV.
    pub(crate) fn restore_signal_frame(&mut self, tid: Pid) {
        let Ok(mm) = self.mm_of(tid) else { return };
        let Some(t) = self.threads.get_mut(&tid) else {
            return;
        };
        let rsp = t.cpu.gpr[reg::RSP];
        let mut bytes = vec![0u8; FRAME_SIZE];
        let ok = mm.borrow().space.mem.read(GuestAddress(rsp), &mut bytes).is_ok();
        let mut cpu = t.cpu.clone();
        match ok.then(|| decode_frame(&bytes, &mut cpu)).flatten() {
            Some(mask) => {
                t.cpu = cpu;
                t.sigmask = mask & !UNBLOCKABLE;
            }
            None => {
                let pid = t.pid;
                self.terminate_process(pid, w_termsig(SIGSEGV));
            }
        }
    }
}
