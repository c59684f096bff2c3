//! The deterministic scheduler, process creation and teardown.
//!
//! All threads run on the host thread that calls [`Kernel::run`]. The run
//! queue is round-robin: the thread at the front runs until it has used
//! `quantum` instructions (exactly, `Cpu::run`'s budget), blocks, exits or
//! yields, then goes to the back. System calls are handled inside the slice.
//! Blocked threads are parked on a [`WaitOn`]; whatever makes progress
//! possible (a pipe write, a child's exit, `futex` wake, a deadline) wakes
//! them in a fixed order (by tid, or for futexes by blocking order), so the
//! same inputs always give the same interleaving. When no thread can run:
//! sleepers get the clock advanced to the earliest deadline (virtual time) or
//! the host waits (real time); with no sleeper the run ends as
//! [`RunOutcome::Deadlock`].
//!
//! The run ends when init (pid 1) exits or dies, or the instruction budget is
//! spent.
//!
//! Cost (a supervised call blocks and wakes on every round trip): a blocked call
//! lives in a box that waking re-tags as `Retry` (the call is not moved) and that
//! is reused for the next blocked call; wake-ups look at the waker before anything
//! else (most calls wake nothing), drain it into a kept buffer and wake in one pass
//! over the threads; deadlines are scanned only once the earliest one parked may have
//! passed; `read`'s bounce buffer and `write`'s copy of its data are kept between
//! calls ([`Scratch`]).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use emu::{reg, Cpu, Exit};
use warden_abi::*;

use crate::call::{Call, Input};
use crate::chaos::Chaos;
use crate::console::{DebugEnd, DebugFile};
use crate::mm::Mm;
use crate::process::{
    Blocked, FdEntry, FdTable, FsContext, OnWake, OpenFile, ProcState, Process, SigHandlers, Thread, ThreadState,
    WaitOn,
};
use crate::{Kernel, Pid, RunOutcome, SpawnError, WaitKey};

/// The scheduler's own state, apart from the processes and threads it schedules: the run
/// queue, the order threads block in, the slice-ending `yield` flag, the schedule's
/// perturbation and what the trap path reuses.
pub(crate) struct Scheduler {
    /// Runnable threads, the next to run first.
    pub(crate) run_queue: VecDeque<Pid>,
    /// Counts blocked calls (their wake order for futexes).
    wait_seq: u64,
    /// Buffers and boxes the trap path reuses ([`Scratch`]).
    pub(crate) scratch: Scratch,
    /// Set by `yield` (and a zero sleep): end the current slice.
    pub(crate) yield_requested: bool,
    /// Schedule perturbation (nonzero seed, [`crate::chaos`]).
    pub(crate) chaos: Option<Chaos>,
}

impl Scheduler {
    pub(crate) fn new(chaos: Option<Chaos>) -> Scheduler {
        Scheduler {
            run_queue: VecDeque::new(),
            wait_seq: 0,
            scratch: Scratch::default(),
            yield_requested: false,
            chaos,
        }
    }

    /// The sequence number of the call blocking now.
    pub(crate) fn next_wait_seq(&mut self) -> u64 {
        self.wait_seq += 1;
        self.wait_seq
    }
}

/// What the trap path reuses instead of allocating per call: the wait keys of a wake-up,
/// the list of threads whose deadline passed, the boxes of blocked calls and `read`'s
/// bounce buffer.
#[derive(Default)]
pub(crate) struct Scratch {
    keys: Vec<WaitKey>,
    tids: Vec<Pid>,
    /// Boxes of finished blocked calls (their old call is dropped when reused).
    #[allow(clippy::vec_box, reason = "the boxes themselves are reused (a blocked call lives in one)")]
    blocked: Vec<Box<Blocked>>,
    /// `read`'s bounce buffer ([`Scratch::take_io`]).
    io: Vec<u8>,
    /// Spare buffers for calls' copies of their inputs ([`Scratch::take_bytes`]): several,
    /// because a call that blocks keeps its buffer (a channel `call` parked while its server's
    /// `send` is decoded took a fresh, growing buffer every round trip when there was one).
    bytes: Vec<Vec<u8>>,
    /// At most the earliest deadline of a parked call (`None`: no parked call has one), so
    /// that the scheduler scans for expired calls only when one may have expired.
    pub(crate) next_deadline: Option<u64>,
}

impl Scratch {
    /// Spare blocked-call boxes kept.
    const SPARE_BLOCKED: usize = 8;
    /// Spare input buffers kept.
    const SPARE_BYTES: usize = 4;
    /// Largest bounce buffer kept between calls.
    const KEEP_IO: usize = 64 * 1024;

    /// Notes the deadline of a call being parked.
    pub(crate) fn parking(&mut self, deadline: Option<u64>) {
        if let Some(d) = deadline {
            self.next_deadline = Some(self.next_deadline.map_or(d, |n| n.min(d)));
        }
    }

    /// A box for a blocked call: a spare one if there is, else a new one.
    pub(crate) fn blocked(&mut self, b: Blocked) -> Box<Blocked> {
        match self.blocked.pop() {
            Some(mut boxed) => {
                *boxed = b;
                boxed
            }
            None => Box::new(b),
        }
    }

    /// Keeps a finished blocked call's box for reuse.
    pub(crate) fn recycle(&mut self, mut b: Box<Blocked>) {
        if self.blocked.len() < Self::SPARE_BLOCKED {
            // Keep no guest data alive in a spare box.
            if let Input::Items(items) | Input::Refused(_, items) = std::mem::replace(&mut b.call.input, Input::None) {
                self.keep_bytes(items.into_buffer());
            }
            self.blocked.push(b);
        }
    }

    /// A zeroed buffer of `len` bytes (hand it back with [`Scratch::put_io`]).
    pub(crate) fn take_io(&mut self, len: usize) -> Vec<u8> {
        let mut buf = std::mem::take(&mut self.io);
        buf.clear();
        buf.resize(len, 0);
        buf
    }

    /// An empty buffer for a call's input (hand it back with [`Scratch::keep_bytes`]).
    pub(crate) fn take_bytes(&mut self) -> Vec<u8> {
        self.bytes.pop().unwrap_or_default()
    }

    /// Keeps a finished call's input buffer (emptied) for the next one.
    pub(crate) fn keep_bytes(&mut self, mut buf: Vec<u8>) {
        if buf.capacity() > 0 && buf.capacity() <= Self::KEEP_IO && self.bytes.len() < Self::SPARE_BYTES {
            buf.clear();
            self.bytes.push(buf);
        }
    }

    pub(crate) fn put_io(&mut self, buf: Vec<u8>) {
        if buf.capacity() <= Self::KEEP_IO {
            self.io = buf;
        }
    }
}

impl Kernel {
    // --- lookups -------------------------------------------------------------

    pub(crate) fn pid_of(&self, tid: Pid) -> Result<Pid, Errno> {
        self.threads.get(&tid).map(|t| t.pid).ok_or(Errno(ESRCH))
    }

    pub(crate) fn proc_of(&self, tid: Pid) -> Result<&Process, Errno> {
        let pid = self.pid_of(tid)?;
        self.procs.get(&pid).ok_or(Errno(ESRCH))
    }

    pub(crate) fn mm_of(&self, tid: Pid) -> Result<Rc<RefCell<Mm>>, Errno> {
        Ok(self.proc_of(tid)?.mm.clone())
    }

    /// The empty address space (one page, nothing mapped, no memory allowed) of every zombie
    /// and of init before its first exec: nothing ever runs in it, so they all share one,
    /// made on first use. A fresh one for each (host reservation, code cache, teardown) was
    /// a third of the address spaces a short run made and most of a fuzz input's cost
    /// after exec's own (issue 22).
    fn empty_mm(&mut self) -> Result<Rc<RefCell<Mm>>, Errno> {
        if let Some(mm) = &self.empty_mm {
            return Ok(mm.clone());
        }
        let mm = Rc::new(RefCell::new(Mm::new(0, crate::mm::PAGE, 0)?));
        self.empty_mm = Some(mm.clone());
        Ok(mm)
    }

    // --- init ----------------------------------------------------------------

    /// Creates init (pid 1) running the program at `path` (resolved like a
    /// guest path from the configured cwd) with `argv` and `envp` (`envp`
    /// empty: the configured environment). Descriptors 0, 1, 2 are the console.
    pub fn spawn_init(&mut self, path: &str, argv: &[&str], envp: &[&str]) -> Result<Pid, SpawnError> {
        if !self.procs.is_empty() {
            return Err(SpawnError::AlreadySpawned);
        }
        // Exec gives init its address space; until then it has the empty one. (Init's first
        // space used to take an object id: later ids stay as they were.)
        let _ = self.alloc_object_id();
        let mm = self.empty_mm().map_err(|e| SpawnError::Memory(e.to_string()))?;
        let pid = self.alloc_id();
        let fs = FsContext {
            cwd_scheme: b"file".to_vec(),
            cwd: crate::process::normalize(b"/", &self.config.cwd),
            umask: 0o022,
        };
        let mut files = FdTable::default();
        let max = self.config.limits.max_fds.max(3);
        for (end, flags) in [(DebugEnd::Stdin, O_RDONLY), (DebugEnd::Stdout, O_WRONLY), (DebugEnd::Stderr, O_WRONLY)] {
            let desc = OpenFile::new(DebugFile::open(&self.console, end), flags);
            let _ = files.insert(FdEntry { desc, cloexec: false }, max);
        }
        let process = Process {
            pid,
            ppid: 0,
            pgid: pid,
            uid: self.config.uid,
            gid: self.config.gid,
            mm,
            files: Rc::new(RefCell::new(files)),
            fs: Rc::new(RefCell::new(fs)),
            sighand: Rc::new(RefCell::new(SigHandlers::default())),
            threads: vec![pid],
            pending: 0,
            state: ProcState::Alive,
            cmdline: Vec::new(),
            vfork_parent: None,
            restrict: None,
            job: crate::jobs::JobState { sid: pid, ..Default::default() },
            siginfo: Default::default(),
        };
        self.procs.insert(pid, process);
        let mut cpu = Cpu::new();
        cpu.model = self.config.cpu;
        cpu.tier = self.config.tier;
        cpu.rand_state = self.config.seed;
        self.threads.insert(pid, Thread::new(pid, pid, cpu));
        let result = self.spawn_exec(pid, path, argv, envp);
        if let Err(e) = result {
            self.threads.remove(&pid);
            self.procs.remove(&pid);
            return Err(e);
        }
        self.sched.run_queue.push_back(pid);
        self.stats.processes += 1;
        Ok(pid)
    }

    fn spawn_exec(&mut self, tid: Pid, path: &str, argv: &[&str], envp: &[&str]) -> Result<(), SpawnError> {
        let name = path.to_string();
        let not_exec = |errno: Errno| match errno.0 {
            ENOEXEC | EACCES | EISDIR | ELOOP => SpawnError::NotExecutable { path: name.clone(), errno },
            _ => SpawnError::Io { path: name.clone(), errno },
        };
        let mut path = path.as_bytes().to_vec();
        let mut args: Vec<Vec<u8>> = argv.iter().map(|a| a.as_bytes().to_vec()).collect();
        // A `#!` script runs its interpreter instead, as execve does (at most 5 deep).
        let mut depth = 0;
        let bytes = loop {
            let file = self.open_path(tid, &path, O_RDONLY).map_err(|errno| match errno.0 {
                ENOENT | ENOTDIR if depth > 0 => SpawnError::InterpreterNotFound {
                    path: name.clone(),
                    interp: String::from_utf8_lossy(&path).into_owned(),
                },
                ENOENT | ENOTDIR => SpawnError::NotFound { path: name.clone() },
                _ => SpawnError::Io { path: name.clone(), errno },
            })?;
            let desc = OpenFile::new(file, O_RDONLY);
            let bytes = crate::elf::read_program(&desc.file).map_err(not_exec)?;
            match crate::linux::exec::script(&bytes, &path, &args) {
                None => break bytes,
                Some(_) if depth == 4 => return Err(not_exec(Errno(ELOOP))),
                Some(next) => (path, args) = next.map_err(not_exec)?,
            }
            depth += 1;
        };
        let abs = crate::process::normalize(&self.config.cwd, &path);
        self.linux.exec_path = Some((abs, name.as_bytes().to_vec()));
        let envs: Vec<Vec<u8>> = if envp.is_empty() {
            self.config.env.clone()
        } else {
            envp.iter().map(|e| e.as_bytes().to_vec()).collect()
        };
        self.exec(tid, &bytes, args, envs).map_err(|errno| {
            // The program exists but its interpreter does not: "not found" too (127).
            let interp = crate::elf::parse(&bytes, self.config.address_space_size).ok().and_then(|i| i.interp);
            match (errno.0, interp) {
                (ENOENT | ENOTDIR, Some(interp)) => SpawnError::InterpreterNotFound {
                    path: name.clone(),
                    interp: String::from_utf8_lossy(&interp).into_owned(),
                },
                _ => not_exec(errno),
            }
        })
    }

    // --- the run loop ----------------------------------------------------------

    /// Runs until init ends, the budget is spent or the guest deadlocks.
    /// Calling it again after it returned gives the same outcome.
    pub fn run(&mut self) -> RunOutcome {
        loop {
            if let Some(outcome) = self.run_until_stop() {
                return outcome;
            }
        }
    }

    /// [`Kernel::run`] up to a debugger stop (`None`; see [`crate::debug`]), which resumes
    /// where it stopped.
    pub(crate) fn run_until_stop(&mut self) -> Option<RunOutcome> {
        if let Some((tid, slice)) = self.debug.as_mut().and_then(|d| d.paused.take()) {
            self.continue_slice(tid, slice);
            if self.slice_done(tid) {
                return None;
            }
        }
        loop {
            if let Some(outcome) = self.outcome {
                return Some(outcome);
            }
            if self.procs.is_empty() {
                // Nothing was spawned: treat as a clean exit.
                return Some(RunOutcome::Exited(0));
            }
            if self.debug.is_some() && self.debug_should_stop(None) {
                return None;
            }
            if self.stop.as_ref().is_some_and(|f| f.load(std::sync::atomic::Ordering::Relaxed)) {
                self.outcome = Some(RunOutcome::Stopped);
                continue;
            }
            self.tty_host_signals();
            // Timers first: the readers a timer descriptor wakes are woken now.
            self.linux_fire_timers();
            self.process_wakeups();
            self.expire_deadlines();
            if self.budget_left() == Some(0) {
                self.outcome = Some(RunOutcome::BudgetExhausted);
                continue;
            }
            let Some(tid) = self.next_runnable() else {
                if !self.idle() {
                    self.outcome = Some(RunOutcome::Deadlock);
                }
                continue;
            };
            self.run_slice(tid);
            if self.slice_done(tid) {
                return None;
            }
        }
    }

    /// After `tid`'s slice returned: requeues it, unless a debugger stop paused the slice
    /// (true: it resumes from there).
    fn slice_done(&mut self, tid: Pid) -> bool {
        if self.debug.as_ref().is_some_and(|d| d.paused.is_some()) {
            return true;
        }
        if self.threads.get(&tid).is_some_and(|t| !t.is_blocked()) {
            self.sched.run_queue.push_back(tid);
        }
        false
    }

    fn budget_left(&self) -> Option<u64> {
        self.config.instruction_budget.map(|b| b.saturating_sub(self.stats.instructions))
    }

    fn next_runnable(&mut self) -> Option<Pid> {
        self.perturb_run_queue();
        while let Some(tid) = self.sched.run_queue.pop_front() {
            if let Some(t) = self.threads.get(&tid).filter(|t| !t.is_blocked()) {
                // A stopped process's threads leave the queue; SIGCONT queues them again.
                if self.is_stopped(t.pid) {
                    continue;
                }
                // A thread may be queued twice (woken while queued); drop the duplicate.
                self.sched.run_queue.retain(|&t| t != tid);
                return Some(tid);
            }
        }
        None
    }

    /// Nothing runnable: advance to the earliest deadline. False if there is none.
    fn idle(&mut self) -> bool {
        let earliest = self
            .threads
            .values()
            .filter_map(|t| match &t.state {
                ThreadState::Blocked(b) => b.deadline,
                _ => None,
            })
            .chain(self.linux_next_timer())
            .min();
        let Some(deadline) = earliest else {
            return false;
        };
        if self.clock.is_real_time() {
            let now = self.clock.monotonic_ns();
            if deadline > now {
                self.clock.sleep_ns(deadline - now);
            }
        } else {
            self.clock.skip_to(deadline);
        }
        self.expire_deadlines();
        true
    }

    /// Runs `tid` for up to one quantum.
    fn run_slice(&mut self, tid: Pid) {
        let mut slice = self.slice_length();
        if let Some(left) = self.budget_left() {
            slice = slice.min(left);
        }
        self.sched.yield_requested = false;
        self.continue_slice(tid, slice);
    }

    /// Runs `tid` for the `slice` instructions left of its quantum.
    fn continue_slice(&mut self, tid: Pid, mut slice: u64) {
        while slice > 0 && self.outcome.is_none() && !self.sched.yield_requested {
            if self.debug.is_some() && self.debug_should_stop(Some(tid)) {
                if let Some(d) = self.debug.as_mut() {
                    d.paused = Some((tid, slice));
                }
                return;
            }
            // A woken call runs again on its saved copy first.
            let retry = match self.threads.get_mut(&tid) {
                Some(t) => match std::mem::replace(&mut t.state, ThreadState::Runnable) {
                    ThreadState::Retry(b) => Some(b),
                    other => {
                        t.state = other;
                        None
                    }
                },
                None => return,
            };
            if let Some(b) = retry {
                self.execute_boxed(tid, b);
                self.process_wakeups();
            }
            self.deliver_signals(tid);
            let Some(thread) = self.threads.get_mut(&tid) else {
                return;
            };
            if thread.is_blocked() || matches!(thread.state, ThreadState::Retry(_)) {
                return;
            }
            let pid = thread.pid;
            if self.is_stopped(pid) {
                return;
            }
            let Some(thread) = self.threads.get_mut(&tid) else {
                return;
            };
            let Some(mm) = self.procs.get(&thread.pid).map(|p| p.mm.clone()) else {
                return;
            };
            let before = thread.cpu.icount;
            let (exit, used);
            if self.debug.is_none() {
                // Kept apart from the debugger's path: returning the exit in a tuple from a
                // shared expression cost the syscall path ~15 % (stack copies the later
                // byte loads of the exit stalled on).
                exit = {
                    let mut mm = mm.borrow_mut();
                    thread.cpu.run(&mut mm.space, slice)
                };
                used = thread.cpu.icount.wrapping_sub(before);
            } else {
                (exit, used) = self.debug_cpu_run(tid, &mm, slice);
            }
            slice = slice.saturating_sub(used);
            self.stats.instructions = self.stats.instructions.saturating_add(used);
            self.clock.set_instructions(self.stats.instructions);
            match exit {
                Exit::BudgetExhausted if slice == 0 => break,
                // Cut short for a debugger stop condition (checked at the loop's top).
                Exit::BudgetExhausted => continue,
                Exit::Syscall(gate) => self.handle_syscall(tid, gate),
                Exit::DebugBreak => return self.debug_breakpoint(tid, slice),
                other => {
                    if let Some(sig) = crate::signal::fault_signal(&other) {
                        if self.debug.is_some() && self.debug_fault(tid, &other, sig, slice) {
                            return;
                        }
                        self.fault(tid, &other, sig);
                    }
                }
            }
            self.process_wakeups();
        }
    }

    /// `Cpu::run` under a debugger: capped so it ends where a stop condition may hold, and
    /// running the instruction at a breakpoint the thread resumes from.
    #[cold]
    #[inline(never)]
    fn debug_cpu_run(&mut self, tid: Pid, mm: &Rc<RefCell<Mm>>, slice: u64) -> (Exit, u64) {
        let Some(rip) = self.threads.get(&tid).map(|t| t.cpu.rip) else {
            return (Exit::BudgetExhausted, 0);
        };
        let step_over = self.debug_take_step_over(tid, rip);
        let cap = self.threads.get(&tid).map_or(0, |t| self.debug_cap(tid, t.pid, &t.cpu));
        let budget = slice.min(cap);
        let Some(thread) = self.threads.get_mut(&tid) else {
            return (Exit::BudgetExhausted, 0);
        };
        let (before, pid) = (thread.cpu.icount, thread.pid);
        let mut mm = mm.borrow_mut();
        if let Some(ranges) = self.debug_watches(pid) {
            mm.space.mem.watch_arm(ranges);
        }
        let Some(thread) = self.threads.get_mut(&tid) else {
            return (Exit::BudgetExhausted, 0);
        };
        let exit = if step_over && budget > 0 {
            thread.cpu.step_over_breakpoint(&mut mm.space)
        } else {
            thread.cpu.run(&mut mm.space, budget)
        };
        let used = thread.cpu.icount.wrapping_sub(before);
        let hits = mm.space.mem.watch_disarm();
        drop(mm);
        self.debug_watch_hits(hits);
        self.debug_ran(tid, pid, used);
        (exit, used)
    }

    /// Raises the signal of a fault `exit` in `tid` (through its supervisor, if any).
    pub(crate) fn fault(&mut self, tid: Pid, exit: &Exit, sig: usize) {
        let addr = match exit {
            Exit::PageFault { addr, .. } => Some(*addr),
            _ => None,
        };
        self.last_fault = Some((tid, addr));
        if !self.supervise_fault(tid, exit, sig) {
            self.raise_fault(tid, sig);
        }
    }

    // --- waking ----------------------------------------------------------------

    /// Wakes threads parked on keys schemes reported.
    pub(crate) fn process_wakeups(&mut self) {
        // Most calls wake nothing (called after every call, 7 times per user-scheme round
        // trip): look before moving any buffer.
        if self.waker.0.borrow().is_empty() {
            return;
        }
        let mut keys = std::mem::take(&mut self.sched.scratch.keys);
        loop {
            self.waker.drain_into(&mut keys);
            if keys.is_empty() {
                break;
            }
            self.wake_where(|on| matches!(on, WaitOn::Key(k) if keys.contains(&k)) || on == WaitOn::AnyKey, None);
        }
        self.sched.scratch.keys = keys;
    }

    /// Wakes every blocked thread whose wait matches `pred` (only `only` if given), in tid order.
    /// One pass over the threads ([`Kernel::wake_thread`]'s work inlined): a thread's wake
    /// changes no other thread's wait, so this is the order a collect-then-wake gives.
    pub(crate) fn wake_where(&mut self, pred: impl Fn(WaitOn) -> bool, only: Option<Pid>) {
        for t in self.threads.values_mut() {
            let ThreadState::Blocked(b) = &t.state else {
                continue;
            };
            if !(only.is_none_or(|o| o == t.tid) && pred(b.on)) {
                continue;
            }
            let ThreadState::Blocked(b) = std::mem::replace(&mut t.state, ThreadState::Runnable) else {
                continue;
            };
            match b.on_wake {
                OnWake::Retry => t.state = ThreadState::Retry(b),
                OnWake::Return(v) => {
                    t.cpu.gpr[reg::RAX] = crate::call::rax(v) as u64;
                    self.sched.scratch.recycle(b);
                }
            }
            self.sched.run_queue.push_back(t.tid);
        }
    }

    /// Makes a blocked thread runnable: it either gets its wake value or
    /// retries its call.
    pub(crate) fn wake_thread(&mut self, tid: Pid) {
        let Some(t) = self.threads.get_mut(&tid) else {
            return;
        };
        let state = std::mem::replace(&mut t.state, ThreadState::Runnable);
        match state {
            ThreadState::Blocked(b) => {
                match b.on_wake {
                    OnWake::Retry => t.state = ThreadState::Retry(b),
                    OnWake::Return(v) => {
                        t.cpu.gpr[reg::RAX] = crate::call::rax(v) as u64;
                        self.sched.scratch.recycle(b);
                    }
                }
                self.sched.run_queue.push_back(tid);
            }
            other => t.state = other,
        }
    }

    /// Completes blocked calls whose deadline has passed.
    fn expire_deadlines(&mut self) {
        let now = self.clock.monotonic_ns();
        // No parked call can have expired before the earliest deadline parked so far.
        if self.sched.scratch.next_deadline.is_none_or(|d| d > now) {
            return;
        }
        let mut next = None;
        let mut expired = std::mem::take(&mut self.sched.scratch.tids);
        expired.clear();
        for t in self.threads.values() {
            if let ThreadState::Blocked(b) = &t.state {
                match b.deadline {
                    Some(d) if d <= now => expired.push(t.tid),
                    Some(d) => next = Some(next.map_or(d, |n: u64| n.min(d))),
                    None => {}
                }
            }
        }
        self.sched.scratch.next_deadline = next;
        for &tid in &expired {
            let Some(t) = self.threads.get_mut(&tid) else {
                continue;
            };
            if let ThreadState::Blocked(b) = std::mem::replace(&mut t.state, ThreadState::Runnable) {
                t.cpu.gpr[reg::RAX] = crate::call::rax(b.on_timeout) as u64;
                self.sched.run_queue.push_back(tid);
                self.sched.scratch.recycle(b);
            }
        }
        expired.clear();
        self.sched.scratch.tids = expired;
    }

    // --- teardown --------------------------------------------------------------

    /// Removes one thread (not the process).
    pub(crate) fn exit_thread(&mut self, tid: Pid) {
        let Some(t) = self.threads.remove(&tid) else {
            return;
        };
        self.abandon_ipc(tid);
        if let Some(p) = self.procs.get_mut(&t.pid) {
            p.threads.retain(|&x| x != tid);
        }
        drop(t);
    }

    /// Ends process `pid` with wait status `status`: its threads stop, its
    /// descriptors close, children go to init, the parent gets SIGCHLD and can
    /// reap it.
    pub(crate) fn terminate_process(&mut self, pid: Pid, status: usize) {
        let Some(p) = self.procs.get_mut(&pid) else {
            return;
        };
        if p.state != ProcState::Alive {
            return;
        }
        // A Linux process's shared file maps reach their files before its memory goes.
        // (A vfork child shares its parent's memory: then only written back.)
        let (mm, shared) = (p.mm.borrow().id, Rc::strong_count(&p.mm) > 1);
        if shared {
            self.lx_flush_shared(mm, 0, u64::MAX);
        } else {
            self.lx_drop_shared(mm, 0, u64::MAX);
        }
        let Some(p) = self.procs.get_mut(&pid) else {
            return;
        };
        p.state = ProcState::Zombie(status);
        if self.fatal_report.is_some() && !wifexited(status) {
            self.report_fatal(pid, wtermsig(status));
        }
        let Some(p) = self.procs.get_mut(&pid) else {
            return;
        };
        let threads = std::mem::take(&mut p.threads);
        let files = std::mem::replace(&mut p.files, Rc::new(RefCell::new(FdTable::default())));
        let vfork_parent = p.vfork_parent.take();
        let ppid = p.ppid;
        self.supervise_exited(pid, status);
        for &t in &threads {
            self.abandon_ipc(t);
        }
        let dropped_threads: Vec<Thread> = threads.iter().filter_map(|t| self.threads.remove(t)).collect();
        drop(dropped_threads);
        // Close descriptors (only this process's reference if shared).
        let entries = match Rc::try_unwrap(files) {
            Ok(table) => table.into_inner().clear(),
            Err(_) => Vec::new(),
        };
        drop(entries);
        if pid == 1 {
            self.outcome = Some(if wifexited(status) {
                RunOutcome::Exited(wexitstatus(status))
            } else {
                RunOutcome::Signaled(wtermsig(status) as u8)
            });
        }
        // A zombie keeps no guest memory. Init's may be left to the host process's exit
        // (`leave_init_memory_to_exit`: the run is over).
        if let Ok(empty) = self.empty_mm() {
            if let Some(p) = self.procs.get_mut(&pid) {
                let mm = std::mem::replace(&mut p.mm, empty);
                if pid == 1 && self.leave_init_memory {
                    std::mem::forget(mm);
                }
            }
        }
        if let Some(parent) = vfork_parent {
            self.wake_where(|on| on == WaitOn::Vfork(pid), Some(parent));
        }
        // Orphans go to init; process groups this exit orphaned are hung up if stopped.
        let orphans: Vec<Pid> = self.procs.values().filter(|c| c.ppid == pid).map(|c| c.pid).collect();
        for &child in &orphans {
            if let Some(c) = self.procs.get_mut(&child) {
                c.ppid = 1;
            }
        }
        self.hang_up_orphaned(pid, &orphans);
        if self.procs.get(&1).is_some_and(|init| init.state == ProcState::Alive) {
            self.wake_where(|on| on == WaitOn::Child(1), None);
        }
        // Tell the parent; auto-reap if it ignores SIGCHLD.
        let parent_ignores = self.procs.get(&ppid).map(|parent| {
            let a = parent.sighand.borrow().actions[SIGCHLD];
            a.sa.sa_handler == SIG_IGN || a.sa.sa_flags & SA_NOCLDWAIT != 0
        });
        match parent_ignores {
            Some(false) if self.procs.get(&ppid).is_some_and(|p| p.state == ProcState::Alive) => {
                // The parent's wait is woken first: a SIGCHLD handler then runs after the
                // wait returned this child, as on Linux, instead of interrupting it.
                self.wake_where(|on| on == WaitOn::Child(ppid), None);
                let uid = self.procs.get(&pid).map_or(0, |p| p.uid);
                let (code, status) = if wifexited(status) {
                    (crate::jobs::CLD_EXITED, wexitstatus(status) as i32)
                } else {
                    (crate::jobs::CLD_KILLED, wtermsig(status) as i32)
                };
                self.post_signal_info(ppid, SIGCHLD, crate::jobs::SigInfo { code, pid, uid, status, value: 0 });
            }
            Some(true) => {
                self.procs.remove(&pid);
            }
            _ => {
                // No living parent (init's own exit, or a parent already gone):
                // nobody will reap it.
                if pid != 1 {
                    self.procs.remove(&pid);
                }
            }
        }
        self.process_wakeups();
    }

    /// Tells the embedder's [`crate::FatalSignal`] report about `pid`, killed by `sig`, if
    /// that signal dumps core by default (before the process's threads are gone).
    #[cold]
    fn report_fatal(&mut self, pid: Pid, sig: usize) {
        if crate::signal::default_action(sig) != crate::signal::DefaultAction::Core {
            return;
        }
        let Some(p) = self.procs.get(&pid) else { return };
        // The faulting thread if the last fault was this process's, else its first thread.
        let (tid, fault_addr) = match self.last_fault {
            Some((tid, addr)) if p.threads.contains(&tid) => (tid, addr),
            _ => (p.threads.first().copied().unwrap_or(pid), None),
        };
        let rip = self.threads.get(&tid).map_or(0, |t| t.cpu.rip);
        let exe = self.linux.procs.get(&pid).map(|l| l.exe.clone()).filter(|e| !e.is_empty());
        let program = exe.or_else(|| p.cmdline.first().cloned()).unwrap_or_default();
        let report = crate::FatalSignal {
            pid,
            program: String::from_utf8_lossy(&program).into_owned(),
            signal: sig as u8,
            rip,
            fault_addr,
        };
        if let Some(f) = self.fatal_report.as_mut() {
            f(&report);
        }
    }

    /// A thread's view of the call it is blocked in (for `proc:`).
    pub(crate) fn blocked_call(&self, tid: Pid) -> Option<&Call> {
        match &self.threads.get(&tid)?.state {
            ThreadState::Blocked(b) => Some(&b.call),
            _ => None,
        }
    }
}
