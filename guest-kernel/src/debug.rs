//! Debugger control: what a debugger stub (warden's gdb server) needs from the kernel to
//! stop the guest at an exact instruction boundary, look at it, and go on.
//!
//! Stopping must not change the run: a replay under a debugger has to meet every recorded
//! event at the same instruction, so a stop may never end a scheduling slice early. A stop
//! inside a slice keeps the slice's thread and what is left of it ([`Debug::paused`]), and
//! [`Kernel::debug_run`] resumes exactly there: the interleaving, and so the run, are
//! those of a run without a debugger. Stop conditions are checked only where the
//! scheduler already is between two `Cpu::run` calls (the top of a slice's loop, and
//! between slices); each `Cpu::run` is capped so that it ends exactly where a condition
//! holds (one instruction for a step, the distance to a target count otherwise).
//! Breakpoints cost the hot loop nothing: they are ops of their own in the decoded code
//! (`emu::AddressSpace::set_breakpoint`). Without a debugger attached, the scheduler's
//! only extra work is one `Option` test per slice and per `Cpu::run` call.

use emu::{Cpu, Exit, GuestAddress, WatchHit};

use crate::process::ProcState;
use crate::{Kernel, Pid, RunOutcome};

/// Why the guest stopped for the debugger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DebugStop {
    /// The thread reached a breakpoint; the instruction there has not run.
    Breakpoint(Pid),
    /// A [`Resume::until`] or [`Resume::stop_at`] target was reached (in this thread, the
    /// one that was running or about to run; for `until` the thread may be gone).
    Reached(Option<Pid>),
    /// A fault is about to raise the signal in the thread (of the debugged process):
    /// [`Resume::deliver_signal`] decides whether it is raised.
    Signal(Pid, u8),
    /// The thread (of the debugged process) forked: the new process's pid (it has not run
    /// yet). Also when the new process is the one to debug. Only with
    /// [`Resume::fork_events`].
    Forked(Pid, Pid),
    /// The thread (of the debugged process) replaced the program (exec). Only with
    /// [`Resume::fork_events`].
    Execed(Pid),
}

/// What ends the next [`Kernel::debug_run`] (besides breakpoints, the debugged process's
/// faults and the end of the run).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resume {
    /// Stop when this thread's instruction count reaches the value (a single step is its
    /// count plus one).
    pub until: Option<(Pid, u64)>,
    /// Stop when the guest's total instruction count reaches the value.
    pub stop_at: Option<u64>,
    /// Stop after every instruction a thread of the debugged process runs (watchpoints).
    pub each_instruction: bool,
    /// After a [`DebugStop::Signal`]: raise the fault's signal (else the thread runs the
    /// faulting instruction again, as under gdb after `signal 0`).
    pub deliver_signal: bool,
    /// Stop when the debugged process forks or execs ([`DebugStop::Forked`],
    /// [`DebugStop::Execed`]), right after the call.
    pub fork_events: bool,
}

/// The kernel's debugger state (`None` in the kernel when no debugger is attached).
#[derive(Debug, Default)]
pub(crate) struct Debug {
    /// The debugged process: its faults stop the run.
    pid: Pid,
    resume: Resume,
    /// A stop inside a slice: its thread and the instructions left of the slice.
    pub(crate) paused: Option<(Pid, u64)>,
    pub(crate) stop: Option<DebugStop>,
    /// The thread that stopped at a breakpoint and where: resuming runs that instruction.
    pub(crate) step_over: Option<(Pid, u64)>,
    /// The debugged process's thread that ran an instruction since the last stop check
    /// (with [`Resume::each_instruction`]).
    pub(crate) ran: Option<Pid>,
    /// The fault a [`DebugStop::Signal`] is about.
    pending_fault: Option<(Pid, Exit, usize)>,
    /// Watched ranges `(start, len)`: the guest accesses to them the debugged process's
    /// instructions made are noted in `watch_hits` (with [`Resume::each_instruction`]).
    watches: Vec<(u64, u64)>,
    watch_hits: Vec<WatchHit>,
    /// A fork or exec of the debugged process, reported at the next stop check.
    event: Option<DebugStop>,
}

/// The result of [`Kernel::debug_run`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DebugEvent {
    Stopped(DebugStop),
    Ended(RunOutcome),
}

impl Kernel {
    /// Attaches a debugger to process `pid`: from now on [`Kernel::debug_run`] stops at its
    /// breakpoints and faults, and its code is decoded with exact flags after every
    /// instruction.
    pub fn debug_attach(&mut self, pid: Pid) {
        self.debug = Some(Box::new(Debug { pid, ..Debug::default() }));
        if let Some(p) = self.procs.get(&pid) {
            p.mm.borrow_mut().space.set_debugged(true);
        }
    }

    /// Moves the debugger to process `pid` (its breakpoints and faults stop the run from
    /// now on) without disturbing the run: a stop inside a slice resumes where it was.
    pub fn debug_switch(&mut self, pid: Pid) {
        if let Some(d) = self.debug.as_deref_mut() {
            d.pid = pid;
        }
        if let Some(p) = self.procs.get(&pid) {
            p.mm.borrow_mut().space.set_debugged(true);
        }
    }

    /// Thread `tid` created process `child` (fork, vfork, clone without `CLONE_THREAD`).
    /// Reported if the debugged process forked, or if `child` is the process to debug (a
    /// debugger may attach to a pid before the process exists).
    pub(crate) fn debug_forked(&mut self, tid: Pid, child: Pid) {
        let pid = self.threads.get(&tid).map(|t| t.pid);
        let Some(d) = self.debug.as_deref_mut() else { return };
        if d.resume.fork_events && (pid == Some(d.pid) || child == d.pid) {
            d.event = Some(DebugStop::Forked(tid, child));
        }
        if child == d.pid {
            if let Some(p) = self.procs.get(&child) {
                p.mm.borrow_mut().space.set_debugged(true);
            }
        }
    }

    /// Thread `tid` of process `pid` replaced its program: the new image is debugged too.
    pub(crate) fn debug_execed(&mut self, pid: Pid, tid: Pid) {
        let Some(d) = self.debug.as_deref_mut() else { return };
        if d.pid != pid {
            return;
        }
        if d.resume.fork_events {
            d.event = Some(DebugStop::Execed(tid));
        }
        if let Some(p) = self.procs.get(&pid) {
            p.mm.borrow_mut().space.set_debugged(true);
        }
    }

    /// The process the debugger is attached to.
    pub fn debugged_pid(&self) -> Option<Pid> {
        self.debug.as_ref().map(|d| d.pid)
    }

    /// Runs until a stop (see [`Resume`]) or the end of the run.
    pub fn debug_run(&mut self, resume: Resume) -> DebugEvent {
        let Some(d) = self.debug.as_mut() else {
            return DebugEvent::Ended(self.run());
        };
        d.resume = resume;
        d.stop = None;
        if let Some((tid, exit, sig)) = d.pending_fault.take() {
            if resume.deliver_signal {
                self.fault(tid, &exit, sig);
                self.process_wakeups();
            }
        }
        match self.run_until_stop() {
            Some(outcome) => DebugEvent::Ended(outcome),
            None => match self.debug.as_ref().and_then(|d| d.stop) {
                Some(stop) => DebugEvent::Stopped(stop),
                None => DebugEvent::Stopped(DebugStop::Reached(None)),
            },
        }
    }

    /// Between two `Cpu::run` calls (`tid` the slice's thread, `None` between slices):
    /// whether a stop condition holds; if so it is noted as the stop.
    pub(crate) fn debug_should_stop(&mut self, tid: Option<Pid>) -> bool {
        let Some(d) = self.debug.as_deref() else { return false };
        let r = d.resume;
        let icount = |t: Pid| self.threads.get(&t).map(|t| t.cpu.icount);
        let ran = if r.each_instruction { d.ran } else { None };
        let stop = if let Some(event) = d.event {
            Some(event)
        } else if let Some(t) = ran {
            Some(DebugStop::Reached(Some(t)))
        } else if let Some((t, _)) = r.until.filter(|&(t, n)| icount(t).is_none_or(|c| c >= n)) {
            Some(DebugStop::Reached(Some(t)))
        } else if r.stop_at.is_some_and(|n| self.stats.instructions >= n) {
            Some(DebugStop::Reached(tid))
        } else {
            None
        };
        let Some(d) = self.debug.as_deref_mut() else { return false };
        d.stop = stop;
        d.ran = None;
        d.event = None;
        stop.is_some()
    }

    /// The most instructions thread `tid` (of process `pid`) may run before a stop
    /// condition could hold.
    pub(crate) fn debug_cap(&self, tid: Pid, pid: Pid, cpu: &Cpu) -> u64 {
        let Some(d) = self.debug.as_deref() else { return u64::MAX };
        let r = &d.resume;
        let mut cap = if r.each_instruction && pid == d.pid { 1 } else { u64::MAX };
        if let Some((_, n)) = r.until.filter(|&(t, _)| t == tid) {
            cap = n.saturating_sub(cpu.icount);
        }
        if let Some(n) = r.stop_at {
            cap = cap.min(n.saturating_sub(self.stats.instructions));
        }
        cap
    }

    /// Whether thread `tid` resumes at the breakpoint it stopped at (and so must run that
    /// instruction instead of stopping there again); clears the note either way.
    pub(crate) fn debug_take_step_over(&mut self, tid: Pid, rip: u64) -> bool {
        match self.debug.as_deref_mut() {
            Some(d) if d.step_over.is_some_and(|(t, _)| t == tid) => d.step_over.take() == Some((tid, rip)),
            _ => false,
        }
    }

    /// Thread `tid` of process `pid` ran `used` instructions.
    pub(crate) fn debug_ran(&mut self, tid: Pid, pid: Pid, used: u64) {
        if let Some(d) = self.debug.as_deref_mut() {
            if used > 0 && pid == d.pid && d.resume.each_instruction {
                d.ran = Some(tid);
            }
        }
    }

    /// The ranges the debugged process's instructions are watched at, if any (while
    /// [`Resume::each_instruction`]).
    pub(crate) fn debug_watches(&self, pid: Pid) -> Option<&[(u64, u64)]> {
        let d = self.debug.as_deref()?;
        (d.resume.each_instruction && pid == d.pid && !d.watches.is_empty()).then_some(d.watches.as_slice())
    }

    /// Guest accesses to watched ranges seen while an instruction ran.
    pub(crate) fn debug_watch_hits(&mut self, hits: Vec<WatchHit>) {
        if let Some(d) = self.debug.as_deref_mut() {
            d.watch_hits.extend(hits);
        }
    }

    /// A thread left `Cpu::run` at a breakpoint: stop there.
    pub(crate) fn debug_breakpoint(&mut self, tid: Pid, slice: u64) {
        let rip = self.threads.get(&tid).map_or(0, |t| t.cpu.rip);
        if let Some(d) = self.debug.as_deref_mut() {
            d.stop = Some(DebugStop::Breakpoint(tid));
            d.paused = Some((tid, slice));
            d.step_over = Some((tid, rip));
        }
    }

    /// A fault in `tid`: stops the run first if `tid` belongs to the debugged process.
    /// True if it stopped (the fault is then raised by the next `debug_run` if it says so).
    pub(crate) fn debug_fault(&mut self, tid: Pid, exit: &Exit, sig: usize, slice: u64) -> bool {
        let pid = self.threads.get(&tid).map(|t| t.pid);
        match self.debug.as_deref_mut() {
            Some(d) if pid == Some(d.pid) => {
                d.stop = Some(DebugStop::Signal(tid, sig as u8));
                d.paused = Some((tid, slice));
                d.pending_fault = Some((tid, *exit, sig));
                true
            }
            _ => false,
        }
    }

    /// Watches the debugged process's accesses to `ranges` (each `(start, len)`; exact:
    /// every guest access is seen, whatever instruction makes it; the kernel's own accesses
    /// are not, as with hardware watchpoints). They are seen while [`Resume::each_instruction`]
    /// runs, and collected by [`Kernel::debug_take_watch_hits`].
    pub fn debug_set_watches(&mut self, ranges: Vec<(u64, u64)>) {
        if let Some(d) = self.debug.as_deref_mut() {
            d.watches = ranges;
        }
    }

    /// The accesses to watched ranges since the last call, in order.
    pub fn debug_take_watch_hits(&mut self) -> Vec<WatchHit> {
        self.debug.as_deref_mut().map(|d| std::mem::take(&mut d.watch_hits)).unwrap_or_default()
    }

    // --- looking at the guest ---------------------------------------------------

    /// The live threads of process `pid`, in creation order.
    pub fn debug_threads(&self, pid: Pid) -> Vec<Pid> {
        self.procs.get(&pid).filter(|p| p.state == ProcState::Alive).map(|p| p.threads.clone()).unwrap_or_default()
    }

    /// Every process: pid, parent pid, alive, command line.
    pub fn debug_processes(&self) -> Vec<(Pid, Pid, bool, Vec<u8>)> {
        self.procs.values().map(|p| (p.pid, p.ppid, p.state == ProcState::Alive, p.cmdline.join(&b' '))).collect()
    }

    /// A thread's registers.
    pub fn debug_cpu(&self, tid: Pid) -> Option<&Cpu> {
        self.threads.get(&tid).map(|t| &t.cpu)
    }

    /// A thread's registers, to change them.
    pub fn debug_cpu_mut(&mut self, tid: Pid) -> Option<&mut Cpu> {
        self.threads.get_mut(&tid).map(|t| &mut t.cpu)
    }

    /// Reads thread `tid`'s memory from `addr` (whatever the page permissions): the number
    /// of bytes read, up to the first unmapped page.
    pub fn debug_read(&self, tid: Pid, addr: u64, buf: &mut [u8]) -> usize {
        let Ok(mm) = self.mm_of(tid) else { return 0 };
        let mm = mm.borrow();
        let mut done = 0;
        while done < buf.len() {
            let at = addr.wrapping_add(done as u64);
            let page_left = (emu::PAGE_SIZE - at % emu::PAGE_SIZE) as usize;
            let n = page_left.min(buf.len() - done);
            if mm.space.mem.read_raw(GuestAddress(at), &mut buf[done..done + n]).is_err() {
                break;
            }
            done += n;
        }
        done
    }

    /// Writes thread `tid`'s memory at `addr` (whatever the page permissions; decoded code
    /// there is dropped). False if a byte is unmapped (nothing is then written).
    pub fn debug_write(&mut self, tid: Pid, addr: u64, data: &[u8]) -> bool {
        let Ok(mm) = self.mm_of(tid) else { return false };
        let ok = mm.borrow_mut().space.mem.write_raw(GuestAddress(addr), data).is_ok();
        ok
    }

    /// Sets (or removes) a breakpoint in process `pid`'s address space. False if there is
    /// no such process.
    pub fn debug_breakpoint_at(&mut self, pid: Pid, addr: u64, set: bool) -> bool {
        let Some(p) = self.procs.get(&pid) else { return false };
        let mut mm = p.mm.borrow_mut();
        if set {
            mm.space.set_breakpoint(addr);
        } else {
            mm.space.remove_breakpoint(addr);
        }
        true
    }
}
