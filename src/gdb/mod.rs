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
//! - on a replay, memory and register writes are refused (they would make it diverge).

mod arch;

use std::collections::BTreeSet;
use std::io;
use std::num::NonZeroUsize;

use gdbstub::common::{Signal, Tid};
use gdbstub::conn::ConnectionExt;
use gdbstub::stub::run_blocking::{self, BlockingEventLoop, WaitForStopReasonError};
use gdbstub::stub::{DisconnectReason, GdbStub, MultiThreadStopReason};
use gdbstub::target::ext::base::multithread::{
    MultiThreadBase, MultiThreadResume, MultiThreadResumeOps, MultiThreadSchedulerLocking,
    MultiThreadSchedulerLockingOps, MultiThreadSingleStep, MultiThreadSingleStepOps,
};
use gdbstub::target::ext::base::BaseOps;
use gdbstub::target::ext::breakpoints::{Breakpoints, BreakpointsOps, SwBreakpoint, SwBreakpointOps};
use gdbstub::target::ext::monitor_cmd::{ConsoleOutput, MonitorCmd, MonitorCmdOps};
use gdbstub::target::{Target, TargetError, TargetResult};
use guest_kernel::debug::{DebugEvent, DebugStop, Resume};
use guest_kernel::{Console, Kernel, Pid, RunOutcome};

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
    /// A replay: the guest's memory and registers are read-only.
    replay: bool,
    breakpoints: BTreeSet<u64>,
    /// The resume gdb asked for: the thread to step, whether to pass a fault's signal on.
    step: Option<Pid>,
    pass_signal: bool,
    /// The running resume's step target (thread, instruction count).
    until: Option<(Pid, u64)>,
    /// The thread of the last stop (gdb's current thread after an interrupt).
    current: Pid,
    outcome: Option<RunOutcome>,
}

impl Debugger {
    /// A debugger on `kernel` (booted, not run) attached to its init process.
    pub fn new(mut kernel: Kernel, replay: bool) -> Debugger {
        let pid = 1;
        kernel.debug_attach(pid);
        Debugger {
            kernel,
            pid,
            replay,
            breakpoints: BTreeSet::new(),
            step: None,
            pass_signal: false,
            until: None,
            current: pid,
            outcome: None,
        }
    }

    /// Serves gdb on `conn` until the guest ends or gdb kills it; if gdb detaches, the
    /// guest runs on to its end without breakpoints.
    pub fn serve(mut self, conn: Conn) -> Result<(Ended, Kernel), String> {
        let result = GdbStub::new(conn).run_blocking::<Loop>(&mut self);
        let reason = result.map_err(|e| format!("gdb connection: {e}"))?;
        let ended = match reason {
            DisconnectReason::Kill => Ended::Killed,
            DisconnectReason::TargetExited(_)
            | DisconnectReason::TargetTerminated(_)
            | DisconnectReason::Disconnect => Ended::Run(self.run_to_end()),
        };
        Ok((ended, self.kernel))
    }

    /// Runs the guest to its end, breakpoints removed, signals passed on.
    fn run_to_end(&mut self) -> RunOutcome {
        for addr in std::mem::take(&mut self.breakpoints) {
            self.kernel.debug_breakpoint_at(self.pid, addr, false);
        }
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
        let mut deliver_signal = std::mem::take(&mut self.pass_signal) || self.replay;
        loop {
            let stop_at = Some(self.kernel.instructions().saturating_add(POLL));
            let resume = Resume { until: self.until, stop_at, deliver_signal };
            deliver_signal = false;
            let stop = match self.kernel.debug_run(resume) {
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
                DebugStop::Reached(_) if self.step_done() => {
                    let tid = self.until.map_or(self.current, |(t, _)| t);
                    if self.kernel.debug_cpu(tid).is_some() {
                        self.current = tid;
                    }
                    MultiThreadStopReason::SignalWithThread { tid: gdb_tid(self.current), signal: Signal::SIGTRAP }
                }
                DebugStop::Reached(_) => {
                    if let Some(byte) = conn.peek()? {
                        let _ = byte;
                        return Ok(run_blocking::Event::IncomingData(conn.read()?));
                    }
                    continue;
                }
            };
            return Ok(run_blocking::Event::TargetStopped(reason));
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
            _ => "warden monitor commands:\n  icount   guest instructions run so far (all processes)\n  \
                  pids     the guest's processes\n"
                .to_string(),
        }
    }
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
        if self.replay {
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
        if self.replay || !self.kernel.debug_write(tid, start, data) {
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

/// `warden run --gdb ADDR`: boots, waits for gdb, and lets it drive the run (gdb's `kill`
/// ends it as SIGKILL would).
pub fn run(opts: &crate::RunOptions, console: Box<dyn Console>, addr: &str) -> Result<RunOutcome, crate::RunError> {
    let kernel = crate::boot(opts, console)?;
    let conn = accept(addr).map_err(crate::RunError::Gdb)?;
    let (ended, mut kernel) = Debugger::new(kernel, false).serve(conn).map_err(crate::RunError::Gdb)?;
    kernel.finish_host_supervisor();
    Ok(match ended {
        Ended::Run(outcome) => outcome,
        Ended::Killed => RunOutcome::Signaled(warden_abi::SIGKILL as u8),
    })
}

/// `warden replay --gdb ADDR TRACE`: boots the replay, waits for gdb, lets it drive the
/// replay, and checks the end against the recording if the replay got there.
pub fn replay(
    trace: &std::path::Path,
    options: &crate::record::ReplayOptions,
    console: Box<dyn Console>,
    addr: &str,
    warn: &mut dyn FnMut(String),
) -> Result<Option<crate::record::Replayed>, crate::record::ReplayError> {
    let mut run = crate::record::start_replay(trace, options, console)?;
    let conn = accept(addr).map_err(|e| crate::record::ReplayError::Run(crate::RunError::Gdb(e)))?;
    let (ended, kernel) = Debugger::new(run.kernel, true)
        .serve(conn)
        .map_err(|e| crate::record::ReplayError::Run(crate::RunError::Gdb(e)))?;
    run.kernel = kernel;
    match ended {
        Ended::Run(outcome) => run.finish(outcome, warn).map(Some),
        Ended::Killed => Ok(None),
    }
}
