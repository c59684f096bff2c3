//! Linux signal calls and the x86-64 `rt_sigframe`.
//!
//! A handler is entered exactly as on Linux: `rsp` points at the frame, whose
//! first word is the return address (`sa_restorer`, or a kernel trampoline
//! that calls `rt_sigreturn` when the program gave none), followed by a
//! `ucontext` (flags, link, `uc_stack`, `sigcontext` with every general
//! register, rip, eflags and a pointer to the floating-point state, and the
//! saved mask) and a `siginfo`. The floating-point state is the 512-byte `fxsave`
//! area, or on a CPU model with XSAVE the XSAVE area Linux writes (legacy region
//! whose software-reserved bytes say "extended state follows", header, AVX upper
//! halves, then the closing magic word; `UC_FP_XSTATE` in `uc_flags`), so a handler
//! sees and `rt_sigreturn` restores the YMM registers; `rdi = sig`, `rsi = &siginfo`,
//! `rdx = &ucontext`. The frame goes below the red zone, or on the
//! `sigaltstack` for `SA_ONSTACK` handlers. `rt_sigreturn` restores all of
//! it from the `ucontext` at `rsp` (changes a handler made are honoured);
//! eflags only in its user-writable bits, the fs base is kept.
//!
//! The alternate stack, as Linux keeps it (`kernel/signal.c`): `sigaltstack` reports
//! SS_DISABLE, SS_ONSTACK (the thread's `rsp` is on it) or 0, with the SS_AUTODISARM bit
//! it was set with; changing it while on it is EPERM. The frame's `uc_stack` holds it as
//! set; with SS_AUTODISARM it is disabled while the handler runs (a stack set so is never
//! "on"). `rt_sigreturn` sets it from `uc_stack` as `sigaltstack` would, judged at the
//! frame's `rsp` (so a handler running on it cannot change it; errors are ignored), as
//! Linux 6.x does.
//!
//! Signals 32–64 (real-time) can be given actions but are never raised.

use emu::{flags, reg, GuestAddress};
use warden_abi as r;
use warden_abi::{Errno, SigAction};

use super::abi::{self, le64, Out};
use crate::jobs::SigInfo;
use crate::process::{Action, OnWake, WaitOn};
use crate::signal::{sig_bit, UNBLOCKABLE};
use crate::syscall::{Block, Call, SysError, SysResult};
use crate::usercopy::copy_out;
use crate::{Kernel, Pid};

fn err<T>(e: i32) -> Result<T, SysError> {
    Err(SysError::Errno(Errno(e)))
}

/// Offset of `uc_mcontext` in `ucontext`, of `uc_sigmask`, and sizes.
const MCONTEXT: usize = 40;
const SIGMASK: usize = 296;
const UCONTEXT_SIZE: usize = 304;
const SIGINFO_SIZE: usize = 128;
const FRAME_SIZE: usize = 8 + UCONTEXT_SIZE + SIGINFO_SIZE;
const FPSTATE_SIZE: usize = 512;
/// The XSAVE layout of x87, SSE and AVX state (`emu::cpuid::XSAVE_SIZE`), and Linux's
/// markers of it: `FP_XSTATE_MAGIC1` in the legacy region's software-reserved bytes,
/// `FP_XSTATE_MAGIC2` right after the area, `UC_FP_XSTATE` in `uc_flags`.
const XSTATE_SIZE: usize = emu::cpuid::XSAVE_SIZE as usize;
const XSTATE_YMM: usize = emu::cpuid::XSAVE_YMM_OFFSET as usize;
const FP_XSTATE_MAGIC1: u32 = 0x4650_5853;
const FP_XSTATE_MAGIC2: u32 = 0x4650_5845;
const UC_FP_XSTATE: u64 = 1;

/// `AT_MINSIGSTKSZ`: the most stack [`Kernel::linux_setup_frame`] takes on an alternate
/// stack (floating-point state, aligned to 64, then the frame, aligned to 16, and the
/// return address), rounded to 16 as Linux rounds its own figure.
pub(crate) const fn min_sigstack_size(xsave: bool) -> u64 {
    let fp = if xsave { XSTATE_SIZE + 4 } else { FPSTATE_SIZE };
    ((fp + 63 + FRAME_SIZE + 15 + 8 + 15) & !15) as u64
}

/// The general registers in `sigcontext` order.
const GREGS: [usize; 16] = [
    reg::R8,
    reg::R9,
    reg::R10,
    reg::R11,
    reg::R12,
    reg::R13,
    reg::R14,
    reg::R15,
    reg::RDI,
    reg::RSI,
    reg::RBP,
    reg::RBX,
    reg::RDX,
    reg::RAX,
    reg::RCX,
    reg::RSP,
];

/// Offset of the Linux `rt_sigreturn` trampoline in the trampoline page.
pub(crate) const TRAMPOLINE_OFFSET: u64 = 16;
/// `mov eax, 15; syscall; ud2`.
pub(crate) const TRAMPOLINE_CODE: [u8; 9] = [0xb8, 15, 0, 0, 0, 0x0f, 0x05, 0x0f, 0x0b];

/// The floating-point state as the frame holds it (see the module note).
fn fxsave(cpu: &emu::Cpu) -> Vec<u8> {
    let xstate = cpu.model.has_xsave();
    let mut o = Out::new(if xstate { XSTATE_SIZE + 4 } else { FPSTATE_SIZE });
    let x = &cpu.x87;
    o.u16(0, x.fcw);
    o.u16(2, x.fsw);
    o.put(4, &[x.ftw]);
    o.u16(6, x.fop);
    o.u64(8, x.fip);
    o.u64(16, x.fdp);
    o.u32(24, cpu.mxcsr);
    o.u32(28, 0xffff);
    for i in 0..8 {
        o.put(32 + 16 * i, &x.regs[i].to_le_bytes());
    }
    for i in 0..16 {
        o.put(160 + 16 * i, &cpu.xmm[i].to_le_bytes());
    }
    if xstate {
        // struct _fpx_sw_bytes: magic1, extended size, features, xstate size.
        o.u32(464, FP_XSTATE_MAGIC1);
        o.u32(468, XSTATE_SIZE as u32 + 4);
        o.u64(472, emu::cpuid::XCR0);
        o.u32(480, XSTATE_SIZE as u32);
        o.u64(512, emu::cpuid::XCR0); // XSTATE_BV: every component saved
        for i in 0..16 {
            o.put(XSTATE_YMM + 16 * i, &cpu.ymm_hi[i].to_le_bytes());
        }
        o.u32(XSTATE_SIZE, FP_XSTATE_MAGIC2);
    }
    o.0
}

fn fxrstor(bytes: &[u8], cpu: &mut emu::Cpu) {
    let u16_at = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]);
    let u128_at = |at: usize| {
        let mut w = [0u8; 16];
        w.copy_from_slice(&bytes[at..at + 16]);
        u128::from_le_bytes(w)
    };
    let x = &mut cpu.x87;
    x.fcw = u16_at(0);
    x.fsw = u16_at(2);
    x.ftw = bytes[4];
    x.fop = u16_at(6);
    x.fip = le64(bytes, 8);
    x.fdp = le64(bytes, 16);
    for i in 0..8 {
        x.regs[i] = u128_at(32 + 16 * i);
    }
    cpu.mxcsr = abi::le32(bytes, 24) & 0xffff;
    for i in 0..16 {
        cpu.xmm[i] = u128_at(160 + 16 * i);
    }
    // Extended state, when both markers say it is there (as Linux checks): the AVX upper
    // halves, zero when XSTATE_BV says AVX is in its initial state.
    if bytes.len() >= XSTATE_SIZE + 4
        && abi::le32(bytes, 464) == FP_XSTATE_MAGIC1
        && abi::le32(bytes, XSTATE_SIZE) == FP_XSTATE_MAGIC2
    {
        let avx = le64(bytes, 512) & 4 != 0;
        for i in 0..16 {
            cpu.ymm_hi[i] = if avx { u128_at(XSTATE_YMM + 16 * i) } else { 0 };
        }
    }
}

/// The first bytes of a `siginfo_t` for `sig` sent as `info` says: number, errno, code,
/// then the sender's pid and uid, and for SIGCHLD the child's status (`_sigchld`), else
/// the value `sigqueue` sent (`_rt`).
pub(crate) fn siginfo_bytes(sig: usize, info: &SigInfo) -> [u8; 32] {
    let mut o = [0u8; 32];
    o[..4].copy_from_slice(&(sig as u32).to_le_bytes());
    o[8..12].copy_from_slice(&info.code.to_le_bytes());
    o[16..20].copy_from_slice(&info.pid.to_le_bytes());
    o[20..24].copy_from_slice(&info.uid.to_le_bytes());
    if sig == r::SIGCHLD {
        o[24..28].copy_from_slice(&info.status.to_le_bytes());
    } else {
        o[24..32].copy_from_slice(&info.value.to_le_bytes());
    }
    o
}

/// Whether Linux makes `call`, interrupted by a handler installed with `SA_RESTART`, again
/// once the handler returns (signal(7); `-ERESTARTSYS` in Linux). Waits with a timeout
/// or for readiness of many descriptors (`poll`, `ppoll`, `select`, `pselect6`,
/// `epoll_wait`, `epoll_pwait`), sleeps, `pause`, `rt_sigsuspend`, `rt_sigtimedwait` and
/// a `futex` wait with a timeout fail with EINTR regardless; a `futex` wait without one
/// is restarted (and then finds the word changed: EAGAIN); the other calls that block
/// until something changes (`read`, `write`, `wait4`, `accept`, `recv`, ...: those that
/// are made again when woken) are restarted.
pub(crate) fn restarts(call: &Call, on_wake: OnWake) -> bool {
    use warden_abi::linux::nr;
    let futex_wait = [abi::FUTEX_WAIT, abi::FUTEX_WAIT_BITSET];
    match call.number & !warden_abi::linux::LINUX_CALL {
        nr::POLL | nr::PPOLL | nr::SELECT | nr::PSELECT6 | nr::EPOLL_WAIT | nr::EPOLL_PWAIT | nr::RT_SIGTIMEDWAIT => {
            false
        }
        nr::FUTEX => futex_wait.contains(&(call.args[1] & abi::FUTEX_CMD_MASK)) && call.args[3] == 0,
        _ => on_wake == OnWake::Retry,
    }
}

impl Kernel {
    /// A Linux call that a handler interrupted with EINTR: a relative `nanosleep` or
    /// `clock_nanosleep` writes the time left to its `rem` argument.
    pub(crate) fn lx_interrupted(&mut self, tid: Pid, blocked: &crate::process::Blocked) {
        let call = &blocked.call;
        let rem = match call.number & !warden_abi::linux::LINUX_CALL {
            warden_abi::linux::nr::NANOSLEEP => call.args[1],
            warden_abi::linux::nr::CLOCK_NANOSLEEP if call.args[1] & abi::TIMER_ABSTIME == 0 => call.args[3],
            _ => return,
        };
        let (Some(deadline), true) = (blocked.deadline, rem != 0) else { return };
        let left = deadline.saturating_sub(self.clock.monotonic_ns());
        let mut o = Out::new(16);
        o.u64(0, left / 1_000_000_000);
        o.u64(8, left % 1_000_000_000);
        if let Ok(mm) = self.mm_of(tid) {
            let _ = copy_out(&mut mm.borrow_mut().space.mem, rem, &o.0);
        }
    }

    /// Builds the frame for a caught signal and enters the handler (None: the
    /// frame could not be written; the caller kills the process).
    pub(crate) fn linux_setup_frame(&mut self, tid: Pid, sig: usize, action: &Action, info: &SigInfo) -> Option<()> {
        let mm = self.mm_of(tid).ok()?;
        let mut mm = mm.borrow_mut();
        let restorer = if action.sa.sa_flags & r::SA_RESTORER != 0 && action.restorer != 0 {
            action.restorer as u64
        } else {
            mm.trampoline + TRAMPOLINE_OFFSET
        };
        let lt = self.linux.threads.entry(tid).or_default();
        let (alt_sp, alt_size, alt_flags) = lt.altstack;
        if alt_flags & SS_AUTODISARM != 0 {
            lt.altstack = (0, 0, abi::SS_DISABLE);
        }
        let saved_mask = lt.suspend_mask.take();
        let t = self.threads.get_mut(&tid)?;
        let rsp = t.cpu.gpr[reg::RSP];
        let on_alt = on_altstack((alt_sp, alt_size, alt_flags), rsp);
        let mut sp = if action.sa.sa_flags & r::SA_ONSTACK != 0 && alt_size != 0 && !on_alt {
            alt_sp.checked_add(alt_size)?
        } else {
            rsp.checked_sub(128)?
        };
        let fp = fxsave(&t.cpu);
        sp = sp.checked_sub(fp.len() as u64)? & !63;
        let fpstate = sp;
        let frame = (sp.checked_sub(FRAME_SIZE as u64)? & !15).checked_sub(8)?;
        let cpu = &t.cpu;
        let mut o = Out::new(FRAME_SIZE);
        o.u64(0, restorer);
        let uc = 8;
        if fp.len() > FPSTATE_SIZE {
            o.u64(uc, UC_FP_XSTATE);
        }
        o.u64(uc + 16, alt_sp);
        o.u32(uc + 24, if alt_size == 0 { abi::SS_DISABLE | alt_flags } else { alt_flags });
        o.u64(uc + 32, alt_size);
        let mc = uc + MCONTEXT;
        for (i, &g) in GREGS.iter().enumerate() {
            o.u64(mc + 8 * i, cpu.gpr[g]);
        }
        o.u64(mc + 128, cpu.rip);
        o.u64(mc + 136, cpu.rflags);
        o.u16(mc + 144, 0x33);
        o.u16(mc + 150, 0x2b);
        o.u64(
            mc + 160,
            match sig {
                r::SIGSEGV | r::SIGBUS => 14,
                r::SIGILL => 6,
                r::SIGFPE => 0,
                r::SIGTRAP => 3,
                _ => 0,
            },
        );
        o.u64(mc + 168, t.sigmask);
        o.u64(mc + 184, fpstate);
        o.u64(uc + SIGMASK, saved_mask.unwrap_or(t.sigmask));
        let si = uc + UCONTEXT_SIZE;
        o.put(si, &siginfo_bytes(sig, info));
        mm.space.mem.write(GuestAddress(fpstate), &fp).ok()?;
        mm.space.mem.write(GuestAddress(frame), &o.0).ok()?;
        let cpu = &mut t.cpu;
        cpu.gpr[reg::RSP] = frame;
        cpu.rip = action.sa.sa_handler as u64;
        cpu.gpr[reg::RDI] = sig as u64;
        cpu.gpr[reg::RSI] = frame + si as u64;
        cpu.gpr[reg::RDX] = frame + uc as u64;
        cpu.gpr[reg::RAX] = 0;
        cpu.rflags &= !(flags::DF | flags::TF);
        let mut block = action.sa.sa_mask[0];
        if action.sa.sa_flags & r::SA_NODEFER == 0 {
            block |= sig_bit(sig);
        }
        t.sigmask = (t.sigmask | block) & !UNBLOCKABLE;
        Some(())
    }

    fn lx_sigreturn(&mut self, tid: Pid) -> SysResult {
        let mm = self.mm_of(tid)?;
        let pid = self.pid_of(tid)?;
        let ok = (|| {
            let t = self.threads.get_mut(&tid)?;
            let uc = t.cpu.gpr[reg::RSP];
            let mut bytes = vec![0u8; UCONTEXT_SIZE];
            mm.borrow().space.mem.read(GuestAddress(uc), &mut bytes).ok()?;
            let mut cpu = t.cpu.clone();
            for (i, &g) in GREGS.iter().enumerate() {
                cpu.gpr[g] = le64(&bytes, MCONTEXT + 8 * i);
            }
            cpu.rip = le64(&bytes, MCONTEXT + 128);
            let fl = le64(&bytes, MCONTEXT + 136);
            cpu.set_rflags((cpu.rflags & !flags::USER_WRITABLE) | (fl & flags::USER_WRITABLE));
            let fpstate = le64(&bytes, MCONTEXT + 184);
            if fpstate != 0 {
                let xstate = le64(&bytes, 0) & UC_FP_XSTATE != 0;
                let mut fp = vec![0u8; if xstate { XSTATE_SIZE + 4 } else { FPSTATE_SIZE }];
                mm.borrow().space.mem.read(GuestAddress(fpstate), &mut fp).ok()?;
                fxrstor(&fp, &mut cpu);
            }
            let mask = le64(&bytes, SIGMASK);
            t.cpu = cpu;
            t.sigmask = mask & !UNBLOCKABLE;
            // The alternate stack as `uc_stack` says, judged where the frame is.
            let lt = self.linux.threads.entry(tid).or_default();
            let new = (le64(&bytes, 16), abi::le32(&bytes, 24), le64(&bytes, 32));
            let _ = set_altstack(lt, uc, new);
            Some(())
        })();
        if ok.is_none() {
            self.terminate_process(pid, r::w_termsig(r::SIGSEGV));
        }
        Err(SysError::NoReturn)
    }

    fn lx_sigaction(&mut self, tid: Pid, sig: usize, old_addr: usize, new: Option<(u64, u64, u64, u64)>) -> SysResult {
        if sig == 0 || sig > 64 {
            return err(r::EINVAL);
        }
        if new.is_some() && (sig == r::SIGKILL || sig == r::SIGSTOP) {
            return err(r::EINVAL);
        }
        if sig >= r::NSIG {
            if old_addr != 0 {
                let mm = self.mm_of(tid)?;
                copy_out(&mut mm.borrow_mut().space.mem, old_addr, &[0u8; 32])?;
            }
            return Ok(0);
        }
        let sighand = self.proc_of(tid)?.sighand.clone();
        let old = sighand.borrow().actions[sig];
        if old_addr != 0 {
            let mut o = Out::new(32);
            o.u64(0, old.sa.sa_handler as u64);
            o.u64(8, old.sa.sa_flags as u64);
            o.u64(16, old.restorer as u64);
            o.u64(24, old.sa.sa_mask[0]);
            let mm = self.mm_of(tid)?;
            copy_out(&mut mm.borrow_mut().space.mem, old_addr, &o.0)?;
        }
        if let Some((handler, fl, restorer, mask)) = new {
            let sa =
                SigAction { sa_handler: handler as usize, sa_mask: [mask & !UNBLOCKABLE, 0], sa_flags: fl as usize };
            let restorer = if fl as usize & r::SA_RESTORER != 0 { restorer as usize } else { 0 };
            sighand.borrow_mut().actions[sig] = Action { sa, restorer };
            if sa.sa_handler == r::SIG_IGN
                || sa.sa_handler == r::SIG_DFL
                    && crate::signal::default_action(sig) == crate::signal::DefaultAction::Ignore
            {
                let pid = self.pid_of(tid)?;
                if let Some(p) = self.procs.get_mut(&pid) {
                    p.pending &= !sig_bit(sig);
                }
            }
        }
        Ok(0)
    }

    fn lx_sigprocmask(&mut self, tid: Pid, how: usize, set: Option<u64>, old_addr: usize, size: usize) -> SysResult {
        if size != 8 {
            return err(r::EINVAL);
        }
        let old = self.threads.get(&tid).map(|t| t.sigmask).unwrap_or(0);
        if let Some(set) = set {
            let new = match how {
                r::SIG_BLOCK => old | set,
                r::SIG_UNBLOCK => old & !set,
                r::SIG_SETMASK => set,
                _ => return err(r::EINVAL),
            };
            if let Some(t) = self.threads.get_mut(&tid) {
                t.sigmask = new & !UNBLOCKABLE;
            }
        }
        if old_addr != 0 {
            let mm = self.mm_of(tid)?;
            copy_out(&mut mm.borrow_mut().space.mem, old_addr, &old.to_le_bytes())?;
        }
        Ok(0)
    }

    /// The signals of `bits` whose delivery does something (a handler, or a default action
    /// other than ignoring): a blocked signal that is ignored stays pending but wakes nobody.
    pub(super) fn lx_deliverable(&self, tid: Pid, bits: u64) -> u64 {
        let Ok(p) = self.proc_of(tid) else { return 0 };
        let Ok(hand) = p.sighand.try_borrow() else { return bits };
        (1..=64usize)
            .filter(|&sig| bits & crate::signal::sig_bit(sig) != 0)
            .filter(|&sig| {
                let h = hand.actions.get(sig).map_or(r::SIG_DFL, |a| a.sa.sa_handler);
                h != r::SIG_IGN
                    && !(h == r::SIG_DFL && crate::signal::default_action(sig) == crate::signal::DefaultAction::Ignore)
            })
            .fold(0, |acc, sig| acc | crate::signal::sig_bit(sig))
    }

    /// A masked wait (`lx_wait_masked`): if a pending signal `mask` lets through would do
    /// something, installs `mask` until that signal's handler returns and says so.
    pub(super) fn lx_interrupts_wait(&mut self, tid: Pid, mask: u64) -> bool {
        let mask = mask & !UNBLOCKABLE;
        let pending = {
            let t = self.threads.get(&tid);
            let p = self.proc_of(tid).ok();
            t.map(|t| t.pending).unwrap_or(0) | p.map(|p| p.pending).unwrap_or(0)
        };
        if self.lx_deliverable(tid, pending & !mask) == 0 {
            return false;
        }
        let old = self.threads.get(&tid).map(|t| t.sigmask).unwrap_or(0);
        let lt = self.linux.threads.entry(tid).or_default();
        lt.poll_wait = None;
        lt.suspend_mask = Some(old);
        if let Some(t) = self.threads.get_mut(&tid) {
            t.sigmask = mask;
        }
        true
    }

    /// sigsuspend/pause: wait with `mask` until a handler runs (EINTR).
    fn lx_suspend(&mut self, tid: Pid, mask: u64) -> SysResult {
        let old = self.threads.get(&tid).map(|t| t.sigmask).unwrap_or(0);
        let pending = {
            let t = self.threads.get(&tid);
            let p = self.proc_of(tid).ok();
            t.map(|t| t.pending).unwrap_or(0) | p.map(|p| p.pending).unwrap_or(0)
        };
        self.linux.threads.entry(tid).or_default().suspend_mask = Some(old);
        if let Some(t) = self.threads.get_mut(&tid) {
            t.sigmask = mask & !UNBLOCKABLE;
        }
        if self.lx_deliverable(tid, pending & !mask) != 0 {
            return err(r::EINTR);
        }
        Err(SysError::Block(Block {
            on: WaitOn::Sleep,
            deadline: None,
            on_timeout: Err(Errno(r::EINTR)),
            on_wake: OnWake::Return(Err(Errno(r::EINTR))),
        }))
    }

    fn lx_sigaltstack(&mut self, tid: Pid, new: Option<(u64, u32, u64)>, old_addr: usize) -> SysResult {
        let rsp = self.threads.get(&tid).map(|t| t.cpu.gpr[reg::RSP]).unwrap_or(0);
        let lt = self.linux.threads.entry(tid).or_default();
        let old @ (sp, size, flags) = lt.altstack;
        if let Some(new) = new {
            set_altstack(lt, rsp, new)?;
        }
        if old_addr != 0 {
            let mode = if size == 0 {
                abi::SS_DISABLE
            } else if on_altstack(old, rsp) {
                abi::SS_ONSTACK
            } else {
                0
            };
            let mut o = Out::new(24);
            o.u64(0, sp);
            o.u32(8, mode | flags & SS_AUTODISARM);
            o.u64(16, size);
            let mm = self.mm_of(tid)?;
            copy_out(&mut mm.borrow_mut().space.mem, old_addr, &o.0)?;
        }
        Ok(0)
    }
}

/// `sigaltstack`'s flag bit that disables the stack while a handler runs on it.
const SS_AUTODISARM: u32 = 1 << 31;

/// True if `rsp` is on the alternate stack `(sp, size, flags)` (never with SS_AUTODISARM).
/// As Linux's `on_sig_stack`, by difference: a stack the guest placed at the top of the
/// address space (`sp + size` past `u64::MAX`) is no overflow.
fn on_altstack((sp, size, flags): (u64, u64, u32), rsp: u64) -> bool {
    flags & SS_AUTODISARM == 0 && size != 0 && rsp > sp && rsp - sp <= size
}

/// Sets the alternate stack of a thread whose stack pointer is `rsp` to `(sp, flags,
/// size)`, as Linux's `do_sigaltstack` does.
fn set_altstack(lt: &mut super::LinuxThread, rsp: u64, (sp, flags, size): (u64, u32, u64)) -> Result<(), Errno> {
    if on_altstack(lt.altstack, rsp) {
        return Err(Errno(r::EPERM));
    }
    match flags & !SS_AUTODISARM {
        abi::SS_DISABLE => lt.altstack = (0, 0, flags),
        0 | abi::SS_ONSTACK if size < abi::MINSIGSTKSZ => return Err(Errno(r::ENOMEM)),
        0 | abi::SS_ONSTACK => lt.altstack = (sp, size, flags),
        _ => return Err(Errno(r::EINVAL)),
    }
    Ok(())
}

// --- handlers (rows of `warden_abi::linux_calls!`) -------------------------------------------

/// `rt_sigaction(sig, act, oldact, sigsetsize)`.
pub(super) fn rt_sigaction(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let [sig, _, old, size, ..] = c.args;
    let new = c.input(1).map(|b| (le64(b, 0), le64(b, 8), le64(b, 16), le64(b, 24)));
    if new.is_some() && size != 8 {
        return err(r::EINVAL);
    }
    k.lx_sigaction(tid, sig, old, new)
}

pub(super) fn rt_sigprocmask(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let [how, _, old, size, ..] = c.args;
    k.lx_sigprocmask(tid, how, c.input(1).map(|b| le64(b, 0)), old, size)
}

pub(super) fn rt_sigreturn(k: &mut Kernel, tid: Pid, _: &Call) -> SysResult {
    k.lx_sigreturn(tid)
}

pub(super) fn rt_sigpending(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let t = k.threads.get(&tid).map(|t| t.pending).unwrap_or(0);
    let p = k.proc_of(tid)?.pending;
    let mm = k.mm_of(tid)?;
    copy_out(&mut mm.borrow_mut().space.mem, c.args[0], &(t | p).to_le_bytes())?;
    Ok(0)
}

pub(super) fn rt_sigsuspend(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let mask = le64(c.input(0).ok_or(Errno(r::EFAULT))?, 0);
    k.lx_suspend(tid, mask)
}

pub(super) fn pause(k: &mut Kernel, tid: Pid, _: &Call) -> SysResult {
    let mask = k.threads.get(&tid).map(|t| t.sigmask).unwrap_or(0);
    k.lx_suspend(tid, mask)
}

/// `sigaltstack(new, old)`: `new` is `(sp, flags, size)`.
pub(super) fn sigaltstack(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let new = c.input(0).map(|b| (le64(b, 0), abi::le32(b, 8), le64(b, 16)));
    k.lx_sigaltstack(tid, new, c.args[1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_altstack_at_the_top_of_the_address_space_does_not_overflow() {
        // Found by the linux_syscalls fuzz target: `sp + size` overflowed (a debug-build panic).
        let top = (u64::MAX - 0x1000, u64::MAX, 0);
        assert!(on_altstack(top, u64::MAX));
        assert!(!on_altstack(top, u64::MAX - 0x1000));
        let stack = (0x1000, 0x2000, 0);
        assert!(on_altstack(stack, 0x3000));
        assert!(!on_altstack(stack, 0x3001));
        assert!(!on_altstack(stack, 0x1000));
        assert!(!on_altstack((0x1000, 0x2000, SS_AUTODISARM), 0x2000));
    }
}
