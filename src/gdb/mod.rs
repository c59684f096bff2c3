//! A gdb remote stub (`warden run --gdb ADDR`, `warden replay --gdb ADDR`), on the
//! `gdbstub` crate.
//!
//! Warden waits for gdb after booting, before the first guest instruction. gdb debugs the
//! started program (init, pid 1): each of its threads is a gdb thread. Everything the
//! stub does to the guest goes through the kernel's debugger interface
//! (`guest_kernel::debug`), which stops at exact instruction boundaries without changing
//! the run, so a replay under gdb meets every recorded event where the recording did:
//! - breakpoints are ops of their own in emu's decoded code: guest memory is never
//!   written, and the hot loop checks nothing;
//! - a step is "run until this thread's instruction count is one more";
//! - while the guest runs, the stub stops it every [`POLL`] instructions to look for
//!   gdb's interrupt (Ctrl-C) on the connection;
//! - a fault in the debugged process stops with its signal first; gdb's `continue` passes
//!   the signal on (or not, with `signal 0`; a replay always passes it, to stay exact);
//! - watchpoints are exact: while one is set the debugged process runs one instruction
//!   per `Cpu::run`; a write watchpoint triggers when its bytes changed, a read or access
//!   watchpoint when the instruction touched them (emu's `Memory::watch_arm` sends every
//!   access to the watched pages through its cold paths, which note them);
//! - on a replay, memory and register writes are refused (they would make it diverge);
//! - going backwards (a replay only) goes back to the latest checkpoint before the point
//!   sought (a forked copy of the whole warden process, taken every `--checkpoint-every`
//!   instructions while the replay runs under gdb: see [`checkpoint`]), or to the start
//!   without one, then replays forward to an exact point: "thread T has run N
//!   instructions", output muted up to where it was shown ([`OnceConsole`]). A
//!   reverse-continue scans the stretch from the latest checkpoint to the current point
//!   for breakpoint hits and watched-value changes, then the stretch before if it found
//!   none, and so on; then goes back to the checkpoint before the last hit and forward to
//!   it. So it replays about two checkpoint intervals, not the whole run;
//! - processes: gdb debugs one guest process (init unless `--gdb-pid PID`); `monitor
//!   attach PID` moves to another, `monitor follow child` makes a fork of the debugged
//!   process move the debugger to the new one (stopping there, as gdb's `set
//!   follow-fork-mode child` does), and an exec of it stops at the new program's first
//!   instruction. (gdb's own fork events need a stub that serves several processes at
//!   once, which `gdbstub` does not.)
//!
//! Measured (`cargo bench --bench gdb_reverse`, release build, the 2-core development VM
//! under load from other builds; two runs, the ranges are between them): a replay of
//! 0.99·10⁹ instructions takes 2.9–3.8 s plainly and 7.4–8.7 s continued through under
//! gdb (7.3–10.3 s while taking its 19 checkpoints, one per 5·10⁷ instructions: within
//! the noise). A reverse-continue from its end to a breakpoint hit 1000 loop rounds back
//! took 15.0–21.7 s replaying from the start (it replays the whole run twice: once to
//! find the hit, once to go to it) and 0.61–0.81 s from checkpoints. Back to a hit at the
//! very start every stretch in between has to be searched either way: 7.4–8.5 s from the
//! start, 6.5–11.5 s stretch by stretch from checkpoints. The 19 checkpoints held 1.8–1.9
//! MB of private memory in all (what the replay wrote after each was taken).
//! Without `--gdb` the kernel's only extra work is an `Option` test per slice and per
//! `Cpu::run` exit: 20·10⁶ `getpid` calls ran in 1.18 s against 1.17 s before (medians of
//! five interleaved runs), a compute loop of 1.2·10⁹ instructions in 2.5 s both.

mod arch;
mod checkpoint;

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::io;
use std::num::NonZeroUsize;
use std::rc::Rc;

use gdbstub::common::{Signal, Tid};
use gdbstub::conn::ConnectionExt;
use gdbstub::stub::run_blocking::{self, BlockingEventLoop, WaitForStopReasonError};
use gdbstub::stub::{DisconnectReason, GdbStub, MultiThreadStopReason};
use gdbstub::target::ext::base::multithread::{
    MultiThreadBase, MultiThreadResume, MultiThreadResumeOps, MultiThreadSchedulerLocking,
    MultiThreadSchedulerLockingOps, MultiThreadSingleStep, MultiThreadSingleStepOps,
};
use gdbstub::target::ext::base::reverse_exec::{
    ReplayLogPosition, ReverseCont, ReverseContOps, ReverseStep, ReverseStepOps,
};
use gdbstub::target::ext::base::BaseOps;
use gdbstub::target::ext::breakpoints::{
    Breakpoints, BreakpointsOps, HwWatchpoint, HwWatchpointOps, SwBreakpoint, SwBreakpointOps, WatchKind,
};
use gdbstub::target::ext::exec_file::{ExecFile, ExecFileOps};
use gdbstub::target::ext::monitor_cmd::{ConsoleOutput, MonitorCmd, MonitorCmdOps};
use gdbstub::target::{Target, TargetError, TargetResult};
use guest_kernel::debug::{DebugEvent, DebugStop, Resume};
use guest_kernel::{Console, ConsoleStream, Kernel, Pid, RunOutcome};

use crate::record::{ReplayError, ReplayRun};
use checkpoint::{Checkpoint, Checkpoints};

pub use arch::X86_64Linux;

/// Guest instructions between two looks for gdb's interrupt while the guest runs.
pub const POLL: u64 = 20_000_000;

/// A connection to gdb.
pub type Conn = Box<dyn ConnectionExt<Error = io::Error>>;

/// Listens on `addr` (`HOST:PORT`, or a path for a Unix socket), says where on stderr (one
/// line; with port 0 it names the port the system chose) and waits for gdb to connect.
pub fn accept(addr: &str) -> Result<Conn, String> {
    let fail = |e: io::Error| format!("--gdb {addr}: {}", crate::host::describe_io_error(&e));
    if addr.contains(':') && !addr.contains('/') {
        let listener = std::net::TcpListener::bind(addr).map_err(fail)?;
        let at = listener.local_addr().map_err(fail)?;
        crate::host::warn(format!("waiting for gdb on {at} (in gdb: target remote {at})"));
        let (stream, _) = listener.accept().map_err(fail)?;
        let _ = stream.set_nodelay(true);
        Ok(Box::new(stream))
    } else {
        use std::os::unix::fs::FileTypeExt;
        if std::fs::symlink_metadata(addr).is_ok_and(|m| m.file_type().is_socket()) {
            let _ = std::fs::remove_file(addr);
        }
        let listener = std::os::unix::net::UnixListener::bind(addr).map_err(fail)?;
        crate::host::warn(format!("waiting for gdb on {addr} (in gdb: target remote {addr})"));
        let (stream, _) = listener.accept().map_err(fail)?;
        let _ = std::fs::remove_file(addr);
        Ok(Box::new(stream))
    }
}

/// How a gdb session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// The guest ran to its end (gdb saw it, or detached and the guest ran on).
    Run(RunOutcome),
    /// gdb killed the guest.
    Killed,
}

/// The guest as gdb's target.
pub struct Debugger {
    kernel: Kernel,
    pid: Pid,
    /// On a replay, how to start it again (reverse execution); the guest's memory and
    /// registers are then read-only.
    replay: Option<Replayer>,
    breakpoints: BTreeSet<u64>,
    /// Watchpoints, in the order gdb set them.
    watches: Vec<Watch>,
    /// A reverse step or continue gdb asked for, done by the next run.
    reverse: Option<Reverse>,
    /// The resume gdb asked for: the thread to step, whether to pass a fault's signal on.
    step: Option<Pid>,
    pass_signal: bool,
    /// The running resume's step target (thread, instruction count).
    until: Option<(Pid, u64)>,
    /// The thread of the last stop (gdb's current thread after an interrupt).
    current: Pid,
    outcome: Option<RunOutcome>,
    /// On a replay in a process family: its checkpoints ([`checkpoint`]).
    family: Option<Checkpoints>,
    /// `monitor follow child`: on a fork of the debugged process, debug the new one.
    follow_child: bool,
}

impl Debugger {
    /// A debugger on `kernel` (booted, not run) attached to its init process; `replay`
    /// for a replay.
    pub fn new(mut kernel: Kernel, replay: Option<Replayer>) -> Debugger {
        let pid = 1;
        kernel.debug_attach(pid);
        Debugger {
            kernel,
            pid,
            replay,
            breakpoints: BTreeSet::new(),
            watches: Vec::new(),
            reverse: None,
            step: None,
            pass_signal: false,
            until: None,
            current: pid,
            outcome: None,
            family: None,
            follow_child: false,
        }
    }

    /// Moves the debugger (and the breakpoints) to process `pid`, at once if it exists,
    /// else running until it is created (`--gdb-pid`). An error if it never is.
    pub fn attach(&mut self, pid: Pid) -> Result<(), String> {
        if !self.kernel.debug_processes().iter().any(|p| p.0 == pid && p.2) {
            if self.kernel.instructions() > 0 {
                return Err(format!("no process {pid}"));
            }
            // Not created yet (only at the start: the replay must not go back for it).
            self.pid = pid;
            self.kernel.debug_attach(pid);
            loop {
                let resume = Resume { fork_events: true, deliver_signal: true, ..Resume::default() };
                match self.kernel.debug_run(resume) {
                    DebugEvent::Ended(o) => return Err(format!("process {pid} never started: the run ended ({o:?})")),
                    DebugEvent::Stopped(DebugStop::Forked(_, child)) if child == pid => break,
                    DebugEvent::Stopped(_) => {}
                }
            }
        }
        self.switch_to(pid);
        Ok(())
    }

    /// Debugs process `pid` (alive) from here on.
    fn switch_to(&mut self, pid: Pid) {
        self.set_breakpoints(false);
        self.pid = pid;
        self.kernel.debug_switch(pid);
        self.set_breakpoints(true);
        self.refresh_watches();
        if let Some(&tid) = self.kernel.debug_threads(pid).first() {
            self.current = tid;
        }
    }

    /// Serves gdb on `conn` until the guest ends or gdb kills it; if gdb detaches, the
    /// guest runs on to its end without breakpoints. Gives back the kernel that ran (and on
    /// a replay what checks its end).
    pub fn serve(mut self, conn: Conn) -> Result<(Ended, Kernel, Option<ReplayRun>), String> {
        let result = GdbStub::new(conn).run_blocking::<Loop>(&mut self);
        let reason = result.map_err(|e| format!("gdb connection: {e}"))?;
        let ended = match reason {
            DisconnectReason::Kill => Ended::Killed,
            DisconnectReason::TargetExited(_)
            | DisconnectReason::TargetTerminated(_)
            | DisconnectReason::Disconnect => Ended::Run(self.run_to_end()),
        };
        Ok((ended, self.kernel, self.replay.map(|r| r.run)))
    }

    /// Runs the guest to its end, breakpoints removed, signals passed on.
    fn run_to_end(&mut self) -> RunOutcome {
        self.set_breakpoints(false);
        self.watches.clear();
        self.sync_watches();
        if let Some(o) = self.outcome {
            return o;
        }
        loop {
            if let DebugEvent::Ended(o) = self.kernel.debug_run(Resume { deliver_signal: true, ..Resume::default() }) {
                return o;
            }
        }
    }

    /// Runs until a stop worth reporting to gdb, or until gdb sends something.
    fn run(&mut self, conn: &mut Conn) -> Result<run_blocking::Event<MultiThreadStopReason<u64>>, io::Error> {
        let mut result = match self.reverse.take() {
            Some(reverse) => self.run_backward(reverse).map(run_blocking::Event::TargetStopped),
            None => self.run_forward(conn),
        };
        loop {
            match result {
                Ok(event) => return Ok(event),
                Err(Detour::Failed(e)) => return Err(io::Error::other(e)),
                Err(Detour::Io(e)) => return Err(e),
                // This process was just resumed from a checkpoint: finish what the worker
                // that resumed it was doing.
                Err(Detour::Resumed(state)) => {
                    let op = self.adopt(&state).map_err(io::Error::other)?;
                    result = self.finish_backward(op).map(run_blocking::Event::TargetStopped);
                }
            }
        }
    }

    /// Runs forward until a stop worth reporting to gdb, or until gdb sends something.
    fn run_forward(&mut self, conn: &mut Conn) -> Result<run_blocking::Event<MultiThreadStopReason<u64>>, Detour> {
        let mut deliver_signal = std::mem::take(&mut self.pass_signal) || self.replay.is_some();
        loop {
            let stop_at = self.kernel.instructions().saturating_add(POLL);
            let each_instruction = !self.watches.is_empty();
            let fork_events = self.follow_child;
            let resume =
                Resume { until: self.until, stop_at: Some(stop_at), each_instruction, deliver_signal, fork_events };
            deliver_signal = false;
            let stop = match self.advance(resume)? {
                DebugEvent::Ended(outcome) => {
                    self.outcome = Some(outcome);
                    return Ok(run_blocking::Event::TargetStopped(match outcome {
                        RunOutcome::Exited(code) => MultiThreadStopReason::Exited(code),
                        RunOutcome::Signaled(sig) => MultiThreadStopReason::Terminated(gdb_signal(sig)),
                        other => MultiThreadStopReason::Exited(other.exit_status() as u8),
                    }));
                }
                DebugEvent::Stopped(stop) => stop,
            };
            let reason = match stop {
                DebugStop::Breakpoint(tid) => {
                    self.current = tid;
                    MultiThreadStopReason::SwBreak(gdb_tid(tid))
                }
                DebugStop::Signal(tid, sig) => {
                    self.current = tid;
                    MultiThreadStopReason::SignalWithThread { tid: gdb_tid(tid), signal: gdb_signal(sig) }
                }
                // `monitor follow child`: the new process is the debugged one, stopped
                // before its first instruction (gdb sees its thread; a SIGTRAP stop).
                DebugStop::Forked(_, child) => {
                    self.switch_to(child);
                    MultiThreadStopReason::SignalWithThread { tid: gdb_tid(self.current), signal: Signal::SIGTRAP }
                }
                // The followed process ran a new program: stopped at its first instruction
                // (in gdb, `file PROGRAM` loads its symbols); the breakpoints stay.
                DebugStop::Execed(tid) => {
                    self.current = tid;
                    self.set_breakpoints(true);
                    MultiThreadStopReason::SignalWithThread { tid: gdb_tid(tid), signal: Signal::SIGTRAP }
                }
                DebugStop::Reached(ran) => {
                    if let Some(tid) = ran.filter(|t| self.kernel.debug_cpu(*t).is_some()) {
                        self.current = tid;
                    }
                    if let Some((kind, addr)) = self.watch_hit() {
                        MultiThreadStopReason::Watch { tid: gdb_tid(self.current), kind, addr }
                    } else if self.step_done() {
                        let tid = self.until.map_or(self.current, |(t, _)| t);
                        if self.kernel.debug_cpu(tid).is_some() {
                            self.current = tid;
                        }
                        MultiThreadStopReason::SignalWithThread { tid: gdb_tid(self.current), signal: Signal::SIGTRAP }
                    } else {
                        if self.kernel.instructions() >= stop_at && conn.peek().map_err(Detour::Io)?.is_some() {
                            return Ok(run_blocking::Event::IncomingData(conn.read().map_err(Detour::Io)?));
                        }
                        continue;
                    }
                }
            };
            return Ok(run_blocking::Event::TargetStopped(reason));
        }
    }

    /// The first watchpoint the instruction just run triggered: a read or access
    /// watchpoint whose bytes it read (or, access, wrote), else a write or access
    /// watchpoint whose bytes changed since last seen (any write: the kernel's too; gdb
    /// shows the old and new values). All are brought up to date.
    fn watch_hit(&mut self) -> Option<(WatchKind, u64)> {
        let accesses = self.kernel.debug_take_watch_hits();
        let mut hit = None;
        for a in &accesses {
            let read = a.access == emu::Access::Read;
            hit = hit.or_else(|| {
                {
                    self.watches.iter().find(|w| {
                        w.overlaps(a.addr, a.len)
                            && (w.kind == WatchKind::ReadWrite || read && w.kind == WatchKind::Read)
                    })
                }
                .map(|w| (w.kind, w.addr))
            });
        }
        let tid = self.kernel.debug_threads(self.pid).first().copied()?;
        for w in &mut self.watches {
            let mut now = vec![0; w.len as usize];
            let n = self.kernel.debug_read(tid, w.addr, &mut now);
            now.truncate(n);
            if now != w.seen {
                w.seen = now;
                if w.kind != WatchKind::Read {
                    hit = hit.or(Some((w.kind, w.addr)));
                }
            }
        }
        hit
    }

    /// Reads what the watchpoints watch now (and forgets accesses seen before).
    fn refresh_watches(&mut self) {
        self.watch_hit();
    }

    /// Tells the kernel the ranges read and access watchpoints watch.
    fn sync_watches(&mut self) {
        let ranges = self.watches.iter().filter(|w| w.kind != WatchKind::Write).map(|w| (w.addr, w.len)).collect();
        self.kernel.debug_set_watches(ranges);
    }

    fn set_breakpoints(&mut self, on: bool) {
        for &addr in &self.breakpoints {
            self.kernel.debug_breakpoint_at(self.pid, addr, on);
        }
    }

    /// Starts the replay again from its beginning (breakpoints not set).
    fn reboot(&mut self) -> Result<(), String> {
        let r = self.replay.as_mut().ok_or("reverse execution needs a replay")?;
        let (kernel, run) = (r.boot)().map_err(|e| e.to_string())?;
        r.run = run;
        self.kernel = kernel;
        self.kernel.debug_attach(self.pid);
        self.sync_watches();
        self.outcome = None;
        self.current = self.pid;
        Ok(())
    }

    /// `Kernel::debug_run`, and on a replay with checkpoints, stopping on the way when
    /// one is due to take it. That extra stop may return as `Reached`, which every caller
    /// takes as "look again and go on". In a worker resumed from that checkpoint (maybe
    /// much later) the result is `Detour::Resumed`.
    fn advance(&mut self, mut resume: Resume) -> Result<DebugEvent, Detour> {
        let due = self.family.as_ref().map(|f| f.due(self.kernel.instructions()));
        if let Some(at) = due {
            resume.stop_at = Some(resume.stop_at.map_or(at, |s| s.min(at)));
        }
        let event = self.kernel.debug_run(resume);
        if let (Some(at), DebugEvent::Stopped(DebugStop::Reached(_))) = (due, event) {
            if self.kernel.instructions() >= at {
                self.checkpoint()?;
            }
        }
        Ok(event)
    }

    /// Takes a checkpoint here (see [`checkpoint`]); if that fails, goes on without.
    fn checkpoint(&mut self) -> Result<(), Detour> {
        let mut threads = Vec::new();
        for (pid, ..) in self.kernel.debug_processes() {
            for t in self.kernel.debug_threads(pid) {
                threads.extend(self.kernel.debug_cpu(t).map(|c| (t, c.icount)));
            }
        }
        let at = self.kernel.instructions();
        let Some(family) = self.family.as_mut() else { return Ok(()) };
        match family.take(at, threads) {
            Ok(None) => Ok(()),
            Ok(Some(state)) => Err(Detour::Resumed(state)),
            Err(e) => {
                crate::host::warn(format!("replay --gdb: {e}; going on without checkpoints"));
                self.family = None;
                Ok(())
            }
        }
    }

    /// Goes back to a state before a point: the latest checkpoint before instruction
    /// count `limit` (and before thread T's instruction N, for `point` (T, N)), else the
    /// start. A checkpoint resumes in a new process, which does `op` (this one exits).
    fn restore(&mut self, point: Option<(Pid, u64)>, limit: u64, op: Op) -> Result<(), Detour> {
        while let Some(family) = &self.family {
            let usable = |c: &Checkpoint| c.at < limit && point.is_none_or(|(t, n)| c.before(t, n));
            let Some(i) = family.list.iter().rposition(usable) else { break };
            let state = self.resumed(op).encode();
            if let Some(Err(e)) = self.family.as_mut().map(|f| f.resume(i, &state)) {
                crate::host::warn(format!("replay --gdb: {e}"));
            }
        }
        self.reboot().map_err(Detour::Failed)
    }

    /// What a worker resumed from a checkpoint needs to go on from here with `op`.
    fn resumed(&self, op: Op) -> Resumed {
        Resumed {
            shown: self.replay.as_ref().map_or([0; 2], |r| r.shown.get()),
            pid: self.pid,
            breakpoints: self.breakpoints.iter().copied().collect(),
            watches: self.watches.iter().map(|w| (w.addr, w.len, w.kind)).collect(),
            checkpoints: self.family.as_ref().map(|f| f.list.clone()).unwrap_or_default(),
            next_id: self.family.as_ref().map_or(0, |f| f.next_id),
            op,
        }
    }

    /// In a worker just resumed from a checkpoint: takes over the state its resumer
    /// sent; the operation to finish.
    fn adopt(&mut self, state: &[u8]) -> Result<Op, String> {
        let r = Resumed::decode(state).ok_or("replay --gdb: a garbled state from the resuming process")?;
        self.set_breakpoints(false);
        if r.pid != self.pid {
            self.pid = r.pid;
            self.kernel.debug_switch(r.pid);
        }
        self.breakpoints = r.breakpoints.into_iter().collect();
        self.watches =
            r.watches.into_iter().map(|(addr, len, kind)| Watch { addr, len, kind, seen: Vec::new() }).collect();
        self.sync_watches();
        if let Some(replay) = &self.replay {
            replay.shown.set(r.shown);
        }
        if let Some(family) = &mut self.family {
            family.list = r.checkpoints;
            family.next_id = r.next_id;
        }
        self.outcome = None;
        Ok(r.op)
    }

    /// Sets the breakpoints and reads what the watchpoints watch.
    fn arm(&mut self) {
        self.set_breakpoints(true);
        self.refresh_watches();
    }

    /// Runs forward until thread `tid` has run `icount` instructions (the state just
    /// before its instruction number `icount`).
    fn run_to(&mut self, tid: Pid, icount: u64) -> Result<(), Detour> {
        loop {
            let resume = Resume { until: Some((tid, icount)), deliver_signal: true, ..Resume::default() };
            match self.advance(resume)? {
                DebugEvent::Ended(o) => {
                    return Err(Detour::Failed(format!("the replay ended ({o:?}) before the point sought")))
                }
                DebugEvent::Stopped(DebugStop::Reached(_))
                    if self.kernel.debug_cpu(tid).is_none_or(|c| c.icount >= icount) =>
                {
                    break
                }
                DebugEvent::Stopped(_) => {}
            }
        }
        if self.kernel.debug_cpu(tid).is_some() {
            self.current = tid;
        }
        Ok(())
    }

    /// The breakpoint and watchpoint hits from here to instruction count `end` (see
    /// [`Hit`]).
    fn hits_before(&mut self, end: u64) -> Result<Vec<Hit>, Detour> {
        let mut hits = Vec::new();
        let each_instruction = !self.watches.is_empty();
        loop {
            let resume = Resume { stop_at: Some(end), each_instruction, deliver_signal: true, ..Resume::default() };
            let stop = match self.advance(resume)? {
                DebugEvent::Ended(_) => break,
                DebugEvent::Stopped(stop) => stop,
            };
            let total = self.kernel.instructions();
            if total >= end {
                break;
            }
            match stop {
                DebugStop::Breakpoint(t) => {
                    hits.extend(self.kernel.debug_cpu(t).map(|c| (t, c.icount, total, None)));
                }
                DebugStop::Reached(Some(t)) => {
                    if let Some(watch) = self.watch_hit() {
                        // Stop before the instruction that accessed (it has run: one back).
                        let icount = |c: &emu::Cpu| c.icount.saturating_sub(1);
                        hits.extend(self.kernel.debug_cpu(t).map(|c| (t, icount(c), total, Some(watch))));
                    }
                }
                _ => {}
            }
        }
        Ok(hits)
    }

    /// A reverse step or continue (on a replay): back to a checkpoint (or the start),
    /// and forward from there to the point.
    fn run_backward(&mut self, reverse: Reverse) -> Result<MultiThreadStopReason<u64>, Detour> {
        let now = self.kernel.instructions();
        let op = match reverse {
            Reverse::Step(tid) => {
                let icount = self.kernel.debug_cpu(tid).map_or(0, |c| c.icount);
                if icount == 0 {
                    return Ok(Arrival::Begin.reason(tid));
                }
                let op = Op::Seek { tid, icount: icount - 1, stop: Arrival::Step };
                self.restore(Some((tid, icount - 1)), now.saturating_add(1), op)?;
                op
            }
            Reverse::Continue => {
                let op = Op::Scan { end: now };
                self.restore(None, now, op)?;
                op
            }
        };
        self.finish_backward(op)
    }

    /// Goes on with a reverse step or continue from where `op` says it is (see [`Op`]).
    /// A reverse-continue looks for the last hit in the stretch from the latest
    /// checkpoint to the point it started from, then the stretch before, and so on.
    fn finish_backward(&mut self, mut op: Op) -> Result<MultiThreadStopReason<u64>, Detour> {
        loop {
            match op {
                Op::Scan { end } => {
                    let start = self.kernel.instructions();
                    self.arm();
                    let hits = self.hits_before(end)?;
                    let (point, limit);
                    (op, point, limit) = match hits.last() {
                        Some(&(tid, icount, total, watch)) => {
                            let stop = watch.map_or(Arrival::Breakpoint, |(kind, addr)| Arrival::Watch(kind, addr));
                            (Op::Seek { tid, icount, stop }, Some((tid, icount)), total.saturating_add(1))
                        }
                        None if start == 0 => (Op::Seek { tid: self.pid, icount: 0, stop: Arrival::Begin }, None, 0),
                        None => (Op::Scan { end: start }, None, start),
                    };
                    self.restore(point, limit, op)?;
                }
                Op::Seek { tid, icount, stop } => {
                    self.run_to(tid, icount)?;
                    self.arm();
                    return Ok(stop.reason(tid));
                }
            }
        }
    }

    /// Whether the running step is complete (its thread ran its instruction, or is gone).
    fn step_done(&self) -> bool {
        self.until.is_some_and(|(t, n)| self.kernel.debug_cpu(t).is_none_or(|c| c.icount >= n))
    }

    fn tid(&self, tid: Tid) -> Result<Pid, TargetError<String>> {
        let tid = Pid::try_from(tid.get()).map_err(|_| TargetError::NonFatal)?;
        if self.kernel.debug_cpu(tid).is_some() {
            Ok(tid)
        } else {
            Err(TargetError::NonFatal)
        }
    }

    /// `monitor` commands: warden facts.
    fn monitor(&mut self, cmd: &str) -> String {
        match cmd.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["icount" | "instructions"] => format!("{}\n", self.kernel.instructions()),
            ["pids" | "ps"] => {
                let mut out = String::from("  PID  PPID STATE  COMMAND\n");
                for (pid, ppid, alive, cmd) in self.kernel.debug_processes() {
                    let state = if alive { "alive " } else { "zombie" };
                    out += &format!("{pid:>5} {ppid:>5} {state} {}\n", String::from_utf8_lossy(&cmd));
                }
                out
            }
            ["goto", n] if self.replay.is_some() => match n.parse::<u64>() {
                Ok(n) => match self.goto(n) {
                    Ok(()) => format!(
                        "at instruction {} (thread {}); run `maintenance flush register-cache` for gdb to see it\n",
                        self.kernel.instructions(),
                        self.current
                    ),
                    Err(e) => format!("{e}\n"),
                },
                Err(_) => "usage: monitor goto N (an instruction count)\n".to_string(),
            },
            ["follow", "child"] => {
                self.follow_child = true;
                "on a fork of the debugged process, warden now debugs the new process (and stops there)\n".into()
            }
            ["follow", "parent"] => {
                self.follow_child = false;
                "on a fork, warden keeps debugging the process that forked\n".into()
            }
            ["attach", n] => match n.parse::<Pid>() {
                Ok(pid) if self.kernel.debug_processes().iter().any(|p| p.0 == pid && p.2) => {
                    self.switch_to(pid);
                    format!(
                        "debugging process {pid} (thread {}); run `maintenance flush register-cache` and \
                         `info threads` for gdb to see it\n",
                        self.current
                    )
                }
                _ => format!("no live process {n} (see `monitor pids`)\n"),
            },
            ["checkpoints"] => match &self.family {
                None => "no checkpoints (not a replay, or taken off: see the warnings)\n".into(),
                Some(f) => {
                    let mut out = format!("{} checkpoints, every {} instructions:\n", f.list.len(), f.interval);
                    let mut total = 0;
                    for (at, bytes) in f.memory() {
                        total += bytes;
                        out += &format!("  at {at:>14}  {:>8} KiB private\n", bytes / 1024);
                    }
                    out + &format!("total {} KiB\n", total / 1024)
                }
            },
            _ => "warden monitor commands:\n  icount          guest instructions run so far (all processes)\n  \
                  pids            the guest's processes\n  \
                  goto N          (a replay) go to instruction count N\n  \
                  attach PID      debug another guest process\n  \
                  follow child    on a fork, debug the new process (stops there); `follow parent` undoes\n  \
                  checkpoints     (a replay) the checkpoints reverse execution starts from, and their memory\n"
                .to_string(),
        }
    }
}

impl Debugger {
    /// `monitor goto N`: replays to total instruction count `n` (from the start if it is
    /// behind: a monitor command cannot resume a checkpoint, which answers with a stop).
    fn goto(&mut self, n: u64) -> Result<(), String> {
        if n < self.kernel.instructions() || self.outcome.is_some() {
            self.reboot()?;
        } else {
            self.set_breakpoints(false);
        }
        loop {
            match self.kernel.debug_run(Resume { stop_at: Some(n), deliver_signal: true, ..Resume::default() }) {
                DebugEvent::Ended(o) => {
                    self.outcome = Some(o);
                    break;
                }
                DebugEvent::Stopped(DebugStop::Reached(t)) if self.kernel.instructions() >= n => {
                    if let Some(t) = t.filter(|t| self.kernel.debug_cpu(*t).is_some()) {
                        self.current = t;
                    }
                    break;
                }
                DebugEvent::Stopped(_) => {}
            }
        }
        self.set_breakpoints(true);
        self.refresh_watches();
        Ok(())
    }
}

/// A breakpoint or watchpoint hit of a replay: the thread, its instruction count just
/// before the hit, the guest's total instruction count at or just after it, and the
/// watchpoint (kind, address) if it was one.
type Hit = (Pid, u64, u64, Option<(WatchKind, u64)>);

/// Why a forward run on gdb's behalf ended early.
enum Detour {
    Failed(String),
    Io(io::Error),
    /// This process was resumed from a checkpoint with this state ([`Resumed`]).
    Resumed(Vec<u8>),
}

impl From<String> for Detour {
    fn from(e: String) -> Detour {
        Detour::Failed(e)
    }
}

/// Where a reverse step or continue is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    /// At the start of a stretch of the replay: find the last breakpoint or watchpoint hit
    /// before instruction count `end`, else look in the stretch before.
    Scan { end: u64 },
    /// Before the point where thread `tid` has run `icount` instructions: run to it and
    /// report `stop`.
    Seek { tid: Pid, icount: u64, stop: Arrival },
}

/// What a reverse step or continue reports where it ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Arrival {
    Step,
    Breakpoint,
    Watch(WatchKind, u64),
    /// The start of the replay: nothing earlier.
    Begin,
}

impl Arrival {
    fn reason(self, tid: Pid) -> MultiThreadStopReason<u64> {
        let tid = gdb_tid(tid);
        match self {
            Arrival::Step => MultiThreadStopReason::SignalWithThread { tid, signal: Signal::SIGTRAP },
            Arrival::Breakpoint => MultiThreadStopReason::SwBreak(tid),
            Arrival::Watch(kind, addr) => MultiThreadStopReason::Watch { tid, kind, addr },
            Arrival::Begin => MultiThreadStopReason::ReplayLog { tid: Some(tid), pos: ReplayLogPosition::Begin },
        }
    }
}

/// What a worker resumed from a checkpoint takes over from the one that resumed it (sent
/// as little-endian words).
#[derive(Debug, PartialEq, Eq)]
struct Resumed {
    /// Console bytes shown so far ([`OnceConsole`]).
    shown: [u64; 2],
    pid: Pid,
    breakpoints: Vec<u64>,
    watches: Vec<(u64, u64, WatchKind)>,
    checkpoints: Vec<Checkpoint>,
    next_id: u64,
    op: Op,
}

fn watch_kind_code(kind: WatchKind) -> u64 {
    match kind {
        WatchKind::Write => 0,
        WatchKind::Read => 1,
        WatchKind::ReadWrite => 2,
    }
}

fn watch_kind_of(code: u64) -> Option<WatchKind> {
    [WatchKind::Write, WatchKind::Read, WatchKind::ReadWrite].get(usize::try_from(code).ok()?).copied()
}

impl Resumed {
    fn encode(&self) -> Vec<u8> {
        let mut w = vec![self.shown[0], self.shown[1], u64::from(self.pid), self.next_id];
        w.push(self.breakpoints.len() as u64);
        w.extend(&self.breakpoints);
        w.push(self.watches.len() as u64);
        for &(addr, len, kind) in &self.watches {
            w.extend([addr, len, watch_kind_code(kind)]);
        }
        w.push(self.checkpoints.len() as u64);
        for c in &self.checkpoints {
            w.extend([c.at, c.id, c.pid as u32 as u64, u64::from(c.max_tid), c.threads.len() as u64]);
            for &(t, n) in &c.threads {
                w.extend([u64::from(t), n]);
            }
        }
        match self.op {
            Op::Scan { end } => w.extend([0, end]),
            Op::Seek { tid, icount, stop } => {
                let (code, kind, addr) = match stop {
                    Arrival::Step => (0, 0, 0),
                    Arrival::Breakpoint => (1, 0, 0),
                    Arrival::Watch(kind, addr) => (2, watch_kind_code(kind), addr),
                    Arrival::Begin => (3, 0, 0),
                };
                w.extend([1, u64::from(tid), icount, code, kind, addr]);
            }
        }
        w.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    fn decode(bytes: &[u8]) -> Option<Resumed> {
        let mut words = bytes.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()));
        let mut next = || words.next();
        let pid32 = |v: u64| Pid::try_from(v).ok();
        let shown = [next()?, next()?];
        let pid = pid32(next()?)?;
        let next_id = next()?;
        let breakpoints = (0..next()?).map(|_| next()).collect::<Option<Vec<_>>>()?;
        let mut watches = Vec::new();
        for _ in 0..next()? {
            watches.push((next()?, next()?, watch_kind_of(next()?)?));
        }
        let mut checkpoints = Vec::new();
        for _ in 0..next()? {
            let (at, id, host_pid, max_tid) = (next()?, next()?, next()? as u32 as i32, pid32(next()?)?);
            let mut threads = Vec::new();
            for _ in 0..next()? {
                threads.push((pid32(next()?)?, next()?));
            }
            checkpoints.push(Checkpoint { at, id, pid: host_pid, threads, max_tid });
        }
        let op = match next()? {
            0 => Op::Scan { end: next()? },
            1 => {
                let (tid, icount) = (pid32(next()?)?, next()?);
                let stop = match (next()?, next()?, next()?) {
                    (0, _, _) => Arrival::Step,
                    (1, _, _) => Arrival::Breakpoint,
                    (2, kind, addr) => Arrival::Watch(watch_kind_of(kind)?, addr),
                    (3, _, _) => Arrival::Begin,
                    _ => return None,
                };
                Op::Seek { tid, icount, stop }
            }
            _ => return None,
        };
        Some(Resumed { shown, pid, breakpoints, watches, checkpoints, next_id, op })
    }
}

/// A reverse execution request.
#[derive(Clone, Copy, Debug)]
enum Reverse {
    Step(Pid),
    Continue,
}

/// How to start a replay again, and what checks the end of the one running.
pub struct Replayer {
    pub boot: Box<dyn FnMut() -> Result<(Kernel, ReplayRun), ReplayError>>,
    pub run: ReplayRun,
    /// Console bytes shown so far, by any run ([`OnceConsole`]).
    pub shown: Rc<Cell<[u64; 2]>>,
}

fn gdb_tid(tid: Pid) -> Tid {
    NonZeroUsize::new(tid as usize).unwrap_or(NonZeroUsize::MIN)
}

/// gdb's number for a Linux signal (gdb numbers signals its own way past SIGTERM, and
/// for SIGBUS, SIGUSR1 and SIGUSR2).
fn gdb_signal(sig: u8) -> Signal {
    use warden_abi::*;
    match usize::from(sig) {
        SIGBUS => Signal::SIGBUS,
        SIGUSR1 => Signal::SIGUSR1,
        SIGUSR2 => Signal::SIGUSR2,
        SIGCHLD => Signal::SIGCHLD,
        SIGSTKFLT => Signal(Signal::SIGZERO.0),
        SIGCONT => Signal::SIGCONT,
        SIGSTOP => Signal::SIGSTOP,
        SIGTSTP => Signal::SIGTSTP,
        SIGTTIN => Signal::SIGTTIN,
        SIGTTOU => Signal::SIGTTOU,
        SIGURG => Signal::SIGURG,
        SIGXCPU => Signal::SIGXCPU,
        SIGXFSZ => Signal::SIGXFSZ,
        SIGVTALRM => Signal::SIGVTALRM,
        SIGPROF => Signal::SIGPROF,
        SIGWINCH => Signal::SIGWINCH,
        SIGIO => Signal::SIGIO,
        SIGPWR => Signal::SIGPWR,
        SIGSYS => Signal::SIGSYS,
        _ => Signal(sig),
    }
}

enum Loop {}

impl BlockingEventLoop for Loop {
    type Target = Debugger;
    type Connection = Conn;
    type StopReason = MultiThreadStopReason<u64>;

    fn wait_for_stop_reason(
        target: &mut Debugger,
        conn: &mut Conn,
    ) -> Result<run_blocking::Event<Self::StopReason>, WaitForStopReasonError<String, io::Error>> {
        target.run(conn).map_err(WaitForStopReasonError::Connection)
    }

    fn on_interrupt(target: &mut Debugger) -> Result<Option<Self::StopReason>, String> {
        Ok(Some(MultiThreadStopReason::SignalWithThread { tid: gdb_tid(target.current), signal: Signal::SIGINT }))
    }
}

impl Target for Debugger {
    type Arch = X86_64Linux;
    type Error = String;

    fn base_ops(&mut self) -> BaseOps<'_, Self::Arch, Self::Error> {
        BaseOps::MultiThread(self)
    }

    fn support_breakpoints(&mut self) -> Option<BreakpointsOps<'_, Self>> {
        Some(self)
    }

    fn support_monitor_cmd(&mut self) -> Option<MonitorCmdOps<'_, Self>> {
        Some(self)
    }

    fn support_exec_file(&mut self) -> Option<ExecFileOps<'_, Self>> {
        Some(self)
    }
}

impl ExecFile for Debugger {
    /// The program's path as the guest started it (its first argument): gdb reads the
    /// symbols from there when it was not given the program (the same file on the host
    /// with `--root /`).
    fn get_exec_file(
        &self,
        _pid: Option<gdbstub::common::Pid>,
        offset: u64,
        length: usize,
        buf: &mut [u8],
    ) -> TargetResult<usize, Self> {
        let path = self.kernel.debug_processes().into_iter().find(|p| p.0 == self.pid).map(|p| p.3).unwrap_or_default();
        let arg0 = path.split(|&b| b == b' ').next().unwrap_or_default();
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(arg0.len());
        let n = length.min(buf.len()).min(arg0.len() - start);
        buf[..n].copy_from_slice(&arg0[start..start + n]);
        Ok(n)
    }
}

impl MultiThreadBase for Debugger {
    fn read_registers(&mut self, regs: &mut arch::Regs, tid: Tid) -> TargetResult<(), Self> {
        let tid = self.tid(tid)?;
        let cpu = self.kernel.debug_cpu(tid).ok_or(TargetError::NonFatal)?;
        *regs = arch::Regs::from_cpu(cpu);
        Ok(())
    }

    fn write_registers(&mut self, regs: &arch::Regs, tid: Tid) -> TargetResult<(), Self> {
        let tid = self.tid(tid)?;
        if self.replay.is_some() {
            // Writing the registers gdb just read back is harmless; changing one is not.
            let same = self.kernel.debug_cpu(tid).is_some_and(|c| arch::Regs::from_cpu(c) == *regs);
            return if same { Ok(()) } else { Err(TargetError::NonFatal) };
        }
        let cpu = self.kernel.debug_cpu_mut(tid).ok_or(TargetError::NonFatal)?;
        regs.to_cpu(cpu);
        Ok(())
    }

    fn read_addrs(&mut self, start: u64, data: &mut [u8], tid: Tid) -> TargetResult<usize, Self> {
        let tid = self.tid(tid)?;
        Ok(self.kernel.debug_read(tid, start, data))
    }

    fn write_addrs(&mut self, start: u64, data: &[u8], tid: Tid) -> TargetResult<(), Self> {
        let tid = self.tid(tid)?;
        if self.replay.is_some() || !self.kernel.debug_write(tid, start, data) {
            return Err(TargetError::NonFatal);
        }
        Ok(())
    }

    fn list_active_threads(&mut self, active: &mut dyn FnMut(Tid)) -> Result<(), String> {
        for tid in self.kernel.debug_threads(self.pid) {
            active(gdb_tid(tid));
        }
        Ok(())
    }

    fn support_resume(&mut self) -> Option<MultiThreadResumeOps<'_, Self>> {
        Some(self)
    }
}

impl MultiThreadResume for Debugger {
    fn resume(&mut self) -> Result<(), String> {
        self.until = self.step.and_then(|t| self.kernel.debug_cpu(t).map(|c| (t, c.icount + 1)));
        Ok(())
    }

    fn clear_resume_actions(&mut self) -> Result<(), String> {
        self.step = None;
        self.pass_signal = false;
        Ok(())
    }

    fn set_resume_action_continue(&mut self, _tid: Tid, signal: Option<Signal>) -> Result<(), String> {
        self.pass_signal |= signal.is_some();
        Ok(())
    }

    fn support_single_step(&mut self) -> Option<MultiThreadSingleStepOps<'_, Self>> {
        Some(self)
    }

    fn support_scheduler_locking(&mut self) -> Option<MultiThreadSchedulerLockingOps<'_, Self>> {
        Some(self)
    }

    fn support_reverse_step(&mut self) -> Option<ReverseStepOps<'_, Tid, Self>> {
        if self.replay.is_some() {
            Some(self)
        } else {
            None
        }
    }

    fn support_reverse_cont(&mut self) -> Option<ReverseContOps<'_, Tid, Self>> {
        if self.replay.is_some() {
            Some(self)
        } else {
            None
        }
    }
}

impl ReverseStep<Tid> for Debugger {
    fn reverse_step(&mut self, tid: Tid) -> Result<(), String> {
        self.reverse = Pid::try_from(tid.get()).ok().map(Reverse::Step);
        Ok(())
    }
}

impl ReverseCont<Tid> for Debugger {
    fn reverse_cont(&mut self) -> Result<(), String> {
        self.reverse = Some(Reverse::Continue);
        Ok(())
    }
}

impl MultiThreadSchedulerLocking for Debugger {
    /// gdb asks for it when it steps one thread over a breakpoint. Other threads keep
    /// running on the deterministic scheduler (a replay has to), which gdb copes with: a
    /// stop reports the thread it is in.
    fn set_resume_action_scheduler_lock(&mut self) -> Result<(), String> {
        Ok(())
    }
}

impl MultiThreadSingleStep for Debugger {
    fn set_resume_action_step(&mut self, tid: Tid, signal: Option<Signal>) -> Result<(), String> {
        self.pass_signal |= signal.is_some();
        self.step = Pid::try_from(tid.get()).ok();
        Ok(())
    }
}

impl Breakpoints for Debugger {
    fn support_sw_breakpoint(&mut self) -> Option<SwBreakpointOps<'_, Self>> {
        Some(self)
    }

    fn support_hw_watchpoint(&mut self) -> Option<HwWatchpointOps<'_, Self>> {
        Some(self)
    }
}

impl HwWatchpoint for Debugger {
    /// Write (`watch`), read (`rwatch`) and access (`awatch`) watchpoints, exact: while
    /// one is set the guest stops after each instruction of the debugged process, and the
    /// kernel reports every access that instruction made to a read or access watchpoint's
    /// bytes (see [`Kernel::debug_set_watches`]).
    fn add_hw_watchpoint(&mut self, addr: u64, len: u64, kind: WatchKind) -> TargetResult<bool, Self> {
        if len == 0 || len > 4096 {
            return Ok(false);
        }
        self.watches.push(Watch { addr, len, kind, seen: Vec::new() });
        self.sync_watches();
        self.refresh_watches();
        Ok(true)
    }

    fn remove_hw_watchpoint(&mut self, addr: u64, len: u64, kind: WatchKind) -> TargetResult<bool, Self> {
        let Some(i) = self.watches.iter().position(|w| (w.addr, w.len, w.kind) == (addr, len, kind)) else {
            return Ok(false);
        };
        self.watches.remove(i);
        self.sync_watches();
        Ok(true)
    }
}

/// A watchpoint gdb set.
struct Watch {
    addr: u64,
    len: u64,
    kind: WatchKind,
    /// The bytes last seen there.
    seen: Vec<u8>,
}

impl Watch {
    fn overlaps(&self, addr: u64, len: u64) -> bool {
        addr < self.addr.saturating_add(self.len) && self.addr < addr.saturating_add(len)
    }
}

impl SwBreakpoint for Debugger {
    fn add_sw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        self.breakpoints.insert(addr);
        Ok(self.kernel.debug_breakpoint_at(self.pid, addr, true))
    }

    fn remove_sw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        self.breakpoints.remove(&addr);
        Ok(self.kernel.debug_breakpoint_at(self.pid, addr, false))
    }
}

impl MonitorCmd for Debugger {
    fn handle_monitor_cmd(&mut self, cmd: &[u8], mut out: ConsoleOutput<'_>) -> Result<(), String> {
        let text = self.monitor(&String::from_utf8_lossy(cmd));
        gdbstub::output!(out, "{}", text);
        Ok(())
    }
}

/// `warden run --gdb ADDR [--gdb-pid PID]`: boots, (runs until process PID exists,)
/// waits for gdb, and lets it drive the run (gdb's `kill` ends it as SIGKILL would).
pub fn run(
    opts: &crate::RunOptions,
    console: Box<dyn Console>,
    addr: &str,
    pid: Option<Pid>,
) -> Result<RunOutcome, crate::RunError> {
    let kernel = crate::boot(opts, console)?;
    let mut debugger = Debugger::new(kernel, None);
    if let Some(pid) = pid {
        debugger.attach(pid).map_err(|e| crate::RunError::Gdb(format!("--gdb-pid {pid}: {e}")))?;
    }
    let conn = accept(addr).map_err(crate::RunError::Gdb)?;
    let (ended, mut kernel, _) = debugger.serve(conn).map_err(crate::RunError::Gdb)?;
    kernel.finish_host_supervisor();
    Ok(match ended {
        Ended::Run(outcome) => outcome,
        Ended::Killed => RunOutcome::Signaled(warden_abi::SIGKILL as u8),
    })
}

/// How `warden replay --gdb` debugs.
#[derive(Clone, Debug)]
pub struct ReplayDebug {
    /// Where to wait for gdb ([`accept`]).
    pub addr: String,
    /// Replay to this total instruction count before waiting for gdb.
    pub goto: Option<u64>,
    /// Guest instructions between checkpoints ([`checkpoint`]); 0 for none (going back
    /// then replays from the start).
    pub checkpoint_every: u64,
    /// Checkpoints kept at most.
    pub max_checkpoints: usize,
    /// Debug this guest process (replaying until it exists) instead of init.
    pub pid: Option<Pid>,
}

/// Guest instructions between checkpoints unless told: a reverse-continue then replays at
/// most about twice that (well under a second at full speed).
pub const CHECKPOINT_EVERY: u64 = 50_000_000;
/// Checkpoints kept at most unless told.
pub const MAX_CHECKPOINTS: usize = 32;

/// `warden replay --gdb ADDR [--goto N] TRACE`: boots the replay (and replays it to
/// instruction count N), waits for gdb, lets it drive the replay (backwards too: from
/// the nearest checkpoint, or from the start, its output not shown twice), and checks
/// the end against the recording if the replay got there. `None`: gdb killed it.
pub fn replay(
    trace: &std::path::Path,
    options: &crate::record::ReplayOptions,
    console: Box<dyn Console>,
    debug: &ReplayDebug,
    warn: &mut dyn FnMut(String),
) -> Result<Option<crate::record::Replayed>, ReplayError> {
    let gdb_error = |e: String| ReplayError::Run(crate::RunError::Gdb(e));
    let out = Rc::new(RefCell::new(console));
    let shown = Rc::new(Cell::new([0u64; 2]));
    let (trace, options) = (trace.to_path_buf(), options.clone());
    let shown_by_runs = shown.clone();
    let boot = move || {
        let console = Box::new(OnceConsole { out: out.clone(), shown: shown_by_runs.clone(), written: [0; 2] });
        crate::record::start_replay(&trace, &options, console)
    };
    let (kernel, run) = boot()?;
    let replayer = Replayer { boot: Box::new(boot), run, shown };
    let mut debugger = Debugger::new(kernel, Some(replayer));
    if let Some(pid) = debug.pid {
        debugger.attach(pid).map_err(|e| gdb_error(format!("--gdb-pid {pid}: {e}")))?;
    }
    if let Some(n) = debug.goto {
        debugger.goto(n).map_err(gdb_error)?;
        if debugger.outcome.is_some() {
            let ran = debugger.kernel.instructions();
            return Err(gdb_error(format!("--goto {n}: the replay ends after {ran} instructions")));
        }
    }
    let conn = accept(&debug.addr).map_err(gdb_error)?;
    if debug.checkpoint_every > 0 {
        match checkpoint::split(debug.checkpoint_every, debug.max_checkpoints) {
            Ok(checkpoint::Role::Leader(leader)) => {
                // The worker owns all of it now; the leader only waits (and never drops it).
                std::mem::forget(debugger);
                std::mem::forget(conn);
                leader.wait();
            }
            Ok(checkpoint::Role::Worker(family)) => debugger.family = Some(family),
            Err(e) => crate::host::warn(format!("replay --gdb: {e}; going back will replay from the start")),
        }
    }
    let (ended, kernel, run) = debugger.serve(conn).map_err(gdb_error)?;
    match (ended, run) {
        (Ended::Run(outcome), Some(run)) => run.finish(kernel, outcome, warn).map(Some),
        _ => Ok(None),
    }
}

/// The console of a replay that may run again from its start: each run writes only what
/// no earlier run wrote (a replay writes the same bytes every time).
struct OnceConsole {
    out: Rc<RefCell<Box<dyn Console>>>,
    /// Bytes of stdout and stderr shown so far, by any run.
    shown: Rc<Cell<[u64; 2]>>,
    /// Bytes this run wrote.
    written: [u64; 2],
}

impl Console for OnceConsole {
    fn read(&mut self, _buf: &mut [u8]) -> io::Result<usize> {
        // A replay's input comes from the trace.
        Ok(0)
    }

    fn write(&mut self, stream: ConsoleStream, data: &[u8]) -> io::Result<()> {
        let i = usize::from(stream == ConsoleStream::Stderr);
        let mut shown = self.shown.get();
        let start = self.written[i];
        self.written[i] += data.len() as u64;
        let skip = shown[i].saturating_sub(start).min(data.len() as u64) as usize;
        if skip < data.len() {
            shown[i] = self.written[i];
            self.shown.set(shown);
            self.out.borrow_mut().write(stream, &data[skip..])?;
        }
        Ok(())
    }
}
