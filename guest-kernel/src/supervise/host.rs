//! The host-side supervisor: a Rust trait the embedder implements, called directly on the
//! trap path (no packet encoding) with the same powers as a guest supervisor.
//!
//! Attach one with [`Kernel::set_host_supervisor`](crate::Kernel::set_host_supervisor)
//! (to every process, or to none and then to chosen pids with
//! [`Kernel::host_attach`](crate::Kernel::host_attach) /
//! [`Kernel::host_detach`](crate::Kernel::host_detach) at any time). The host sits outside
//! every guest supervisor: it sees a call first and its result last.

use crate::call::Call;
use crate::Pid;

/// A supervisor's answer: the one vocabulary of the host API and of guest supervisors'
/// packets (`warden_abi::REPLY_*`, parsed with `TryFrom<&SuperviseReply>`). What it does
/// depends on what was asked (see `step` in the parent module): a call's entry, its result,
/// or a CPU exception.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Entry: run the call (on the kernel's copy). Result: deliver it. Exception: resume
    /// where the CPU left the thread.
    Run,
    /// Entry: run it and report the result ([`HostSupervisor::syscall_exit`], or a
    /// `PACKET_RESULT`) before the guest sees it. Otherwise as [`Reply::Run`].
    RunReport,
    /// Entry: do not run the call; `rax` gets this raw value (e.g.
    /// `Errno::mux(Err(Errno(EPERM))) as u64`). Result: replace the result. Exception: set
    /// `rax` and resume.
    Return(u64),
    /// As if this supervisor were not there: a call goes on, an exception goes to the next
    /// supervisor and then raises its signal.
    Default,
    /// Kill the process (SIGKILL).
    Kill,
}

impl TryFrom<&warden_abi::SuperviseReply> for Reply {
    type Error = warden_abi::Errno;

    /// A guest packet's action; an unknown one is `EINVAL` (the write fails).
    fn try_from(r: &warden_abi::SuperviseReply) -> Result<Reply, warden_abi::Errno> {
        use warden_abi::*;
        Ok(match r.action {
            REPLY_RETURN => Reply::Return(r.value),
            REPLY_RUN => Reply::Run,
            REPLY_RUN_REPORT => Reply::RunReport,
            REPLY_DEFAULT => Reply::Default,
            REPLY_KILL => Reply::Kill,
            _ => return Err(Errno(EINVAL)),
        })
    }
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
    fn syscall_entry(&mut self, _ev: &SyscallEntry<'_>) -> Reply {
        Reply::Run
    }
    /// A call run with [`Reply::RunReport`] finished: `result` is the raw `rax`, `outputs`
    /// the bytes it wrote for the guest, not yet visible to any guest thread. Both may be
    /// changed.
    fn syscall_exit(&mut self, _ev: &SyscallExit<'_>, _result: &mut usize, _outputs: &mut [Output]) {}
    /// A supervised thread raised a CPU exception or a non-gate interrupt.
    fn exception(&mut self, _ev: &ExceptionEvent) -> Reply {
        Reply::Default
    }
    /// Clone, exec and exit of supervised processes.
    fn event(&mut self, _ev: &ProcessEvent) {}
    /// Called once when the run ends (flush output, print summaries).
    fn finish(&mut self) {}
}
