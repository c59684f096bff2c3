//! What a system call is to the kernel, and how it ends: the vocabulary every part of the
//! trap path shares ([`Call`], [`Input`], [`SysResult`], [`SysError`], [`Block`], [`WaitOn`],
//! [`OnWake`], [`rax`]).
//!
//! Why a module of its own: the dispatcher ([`crate::syscall`]) uses the policy, the tap,
//! supervision, the personalities and the process table, and each of those needs these
//! types. With the types in the dispatcher, every one of them imported the dispatcher back
//! (syscall ↔ linux ↔ policy ↔ record ↔ process). Here they depend only on the call tables'
//! types ([`Entry`], [`Items`]); `crate::syscall` re-exports them under their old paths.

use emu::Gate;
use warden_abi::{CallInfo, Errno, ETIMEDOUT};

use crate::syscall::{Entry, Items};
use crate::Pid;

/// What the kernel holds of the memory a call reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// The call reads no guest memory.
    None,
    /// The kernel's copies of every pointer argument the call reads.
    Items(Items),
    /// Copying an argument failed: the call fails with this error without running.
    Fault(Errno),
    /// The policy refused the call: it fails with this error without running (the copies
    /// stay, so supervisors and traces see what was refused).
    Refused(Errno, Items),
    /// Made by the kernel, never decoded from a guest: a supervised thread's held call
    /// continues (`crate::supervise`).
    Resume,
}

/// One system call as the kernel will execute it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// The number: a Redox number, or `LINUX_CALL | nr` for a Linux call.
    pub number: usize,
    pub args: [usize; 6],
    pub gate: Gate,
    pub input: Input,
    /// The call's table entry (`None`: a number no table has; the call fails with ENOSYS).
    pub entry: Option<&'static Entry>,
}

impl Call {
    /// A call of `number` with `args` and no inputs copied yet.
    pub fn new(number: usize, args: [usize; 6], gate: Gate) -> Call {
        Call { number, args, gate, input: Input::None, entry: crate::syscall::table::entry(number) }
    }

    /// The call's description (its table row), if the number is known.
    pub fn info(&self) -> Option<&'static CallInfo> {
        self.entry.map(|e| e.info)
    }

    /// The call's name (`"open"`), if the number is known.
    pub fn name(&self) -> Option<&'static str> {
        self.info().map(|i| i.name).or_else(|| warden_abi::linux::any_syscall_name(self.number))
    }
}

/// How a handler did not return a value.
#[derive(Debug)]
pub enum SysError {
    /// Fail with `-errno`.
    Errno(Errno),
    /// Park the thread.
    Block(Block),
    /// Do not touch the registers (exit, exec, sigreturn).
    NoReturn,
}

impl From<Errno> for SysError {
    fn from(e: Errno) -> Self {
        SysError::Errno(e)
    }
}

pub type SysResult = Result<usize, SysError>;

pub(crate) fn errno<T>(e: i32) -> Result<T, SysError> {
    Err(SysError::Errno(Errno(e)))
}

/// The raw `rax` a finished call leaves: the one place a result, or an `Errno` as `-errno`,
/// becomes a register value (calls completing now, parked calls woken, timed out or
/// interrupted, and supervised calls alike).
pub(crate) fn rax(result: Result<usize, Errno>) -> usize {
    Errno::mux(result)
}

/// Where and how long a call blocks.
#[derive(Debug)]
pub struct Block {
    pub on: WaitOn,
    pub deadline: Option<u64>,
    pub on_timeout: Result<usize, Errno>,
    pub on_wake: OnWake,
}

impl Block {
    /// Wait for `on`, then run the call again.
    pub fn retry(on: WaitOn) -> SysError {
        SysError::Block(Block { on, deadline: None, on_timeout: Err(Errno(ETIMEDOUT)), on_wake: OnWake::Retry })
    }
}

/// What a blocked thread waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitOn {
    /// A scheme's or pipe's key.
    Key(crate::WaitKey),
    /// Any key at all (poll/select over several files re-check on every wake).
    AnyKey,
    /// A child of this process changing state (waitpid).
    Child(Pid),
    /// A futex word: (address space id, address).
    Futex(u64, u64),
    /// Only the deadline (nanosleep).
    Sleep,
    /// The vfork child with this pid execs or exits.
    Vfork(Pid),
}

/// What a blocked call returns when it is woken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnWake {
    /// Execute the (kernel's copy of the) call again.
    Retry,
    /// Return this result (made into `rax` by [`rax`], as every result is).
    Return(Result<usize, Errno>),
}
