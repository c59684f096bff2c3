//! The host-side supervisor: a Rust trait the embedder implements, called directly on the
//! trap path (no packet encoding) with the same powers as a guest supervisor.
//!
//! Attach one with [`Kernel::set_host_supervisor`](crate::Kernel::set_host_supervisor)
//! (to every process, or to none and then to chosen pids with
//! [`Kernel::host_attach`](crate::Kernel::host_attach) /
//! [`Kernel::host_detach`](crate::Kernel::host_detach) at any time). The host sits outside
//! every guest supervisor: it sees a call first and its result last.

use crate::syscall::Call;
use crate::Pid;

/// What to do with a call at entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Run it (on the kernel's copy).
    Run,
    /// Run it and call [`HostSupervisor::syscall_exit`] before the result reaches the guest.
    RunReport,
    /// Do not run it; `rax` gets this raw value (e.g. `Errno::mux(Err(Errno(EPERM)))`).
    Return(usize),
    /// Kill the process (SIGKILL).
    Kill,
}

/// What to do about a CPU exception or non-gate interrupt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExceptionDecision {
    /// Whatever would happen without the host (guest supervisors, then the signal).
    Default,
    /// Resume where the CPU left the thread.
    Resume,
    /// Set `rax` and resume.
    SetRax(u64),
    /// Kill the process.
    Kill,
}

/// A call about to run. `call.input` holds the kernel's copies of what it reads (paths as
/// the guest spelled them, `ITEM_RESOLVED` items for the `scheme:path` the kernel acts on:
/// `call.path(i)` is the latter).
#[derive(Debug)]
pub struct SyscallEntry<'a> {
    pub pid: Pid,
    pub tid: Pid,
    /// Sequence number shared with the matching [`SyscallExit`].
    pub seq: u64,
    /// Guest instructions retired by the whole machine so far.
    pub icount: u64,
    pub call: &'a Call,
    /// A path argument as the guest spelled it.
    pub path: Option<&'a [u8]>,
    /// The `scheme:path` the kernel acts on (path calls, and `fexec`'s pinned file).
    pub resolved: Option<&'a [u8]>,
}

impl<'a> SyscallEntry<'a> {
    /// The event of `call`, with its first path and resolved path.
    pub(crate) fn new(pid: Pid, tid: Pid, seq: u64, icount: u64, call: &'a Call) -> SyscallEntry<'a> {
        let first = |kind| call.items().iter().find(|(i, _)| i.kind == kind).map(|(_, b)| b);
        let (path, resolved) = (first(warden_abi::ITEM_PATH), first(warden_abi::ITEM_RESOLVED));
        SyscallEntry { pid, tid, seq, icount, call, path, resolved }
    }
}

/// A call that ran; see [`HostSupervisor::syscall_exit`].
pub type SyscallExit<'a> = SyscallEntry<'a>;

/// Bytes a call wrote for the guest, held back until every supervisor has seen them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    /// Index of the pointer argument.
    pub arg: usize,
    /// Guest address.
    pub addr: usize,
    /// The bytes (a supervisor may change them; extra bytes beyond the captured length are
    /// ignored).
    pub data: Vec<u8>,
}

/// A CPU exception or non-gate interrupt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExceptionEvent {
    pub pid: Pid,
    pub tid: Pid,
    pub seq: u64,
    /// `warden_abi::EXC_*`.
    pub vector: u64,
    pub rip: u64,
    /// Faulting address (page faults).
    pub addr: u64,
    /// The signal it raises by default.
    pub signal: usize,
}

/// Process life-cycle events of supervised processes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProcessEvent {
    /// `pid` created `child` (a thread if `thread`).
    Clone { pid: Pid, child: Pid, flags: usize, thread: bool },
    /// `pid` now runs `path` with `argv`.
    Exec { pid: Pid, path: Vec<u8>, argv: Vec<Vec<u8>> },
    /// `pid` ended with wait status `status`.
    Exit { pid: Pid, status: usize },
}

/// A supervisor living on the host. Every method has a pass-through default.
pub trait HostSupervisor {
    /// A supervised thread entered a system call.
    fn syscall_entry(&mut self, _ev: &SyscallEntry<'_>) -> Decision {
        Decision::Run
    }
    /// A call run with [`Decision::RunReport`] finished: `result` is the raw `rax`, `outputs`
    /// the bytes it wrote for the guest, not yet visible to any guest thread. Both may be
    /// changed.
    fn syscall_exit(&mut self, _ev: &SyscallExit<'_>, _result: &mut usize, _outputs: &mut [Output]) {}
    /// A supervised thread raised a CPU exception or a non-gate interrupt.
    fn exception(&mut self, _ev: &ExceptionEvent) -> ExceptionDecision {
        ExceptionDecision::Default
    }
    /// Clone, exec and exit of supervised processes.
    fn event(&mut self, _ev: &ProcessEvent) {}
    /// Called once when the run ends (flush output, print summaries).
    fn finish(&mut self) {}
}
