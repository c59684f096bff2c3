//! The system-call entry: one dispatcher for both gates.
//!
//! Entry happens in three steps, so that a supervisor (seed 000) can later sit
//! between the first two and see exactly what the kernel will act on (seed 001):
//! 1. [`decode`]: the gate's registers become a [`Call`]: the number, the six
//!    arguments (`syscall`: rdi, rsi, rdx, r10, r8, r9; `int 0x80`: rbx, rcx,
//!    rdx, rsi, rdi and 0) and an [`Input`] holding the kernel's own copy of
//!    every pointer argument the call *reads* (paths, write buffers, exec
//!    argument vectors, `Map`, `TimeSpec`, `SigAction`, signal sets). A bad
//!    pointer becomes `Input::Fault(EFAULT)` and the call fails with it.
//! 2. (supervision will go here: look at or replace the `Call`, or answer it.)
//! 3. `Kernel::execute`: the handler runs on the `Call`; guest memory is
//!    never re-read for an input. Outputs (read buffers, `Stat`, wait status,
//!    ...) are written to guest memory once, after the work is done, through
//!    [`crate::usercopy`]. A call that blocks keeps its `Call`, and re-runs on
//!    that same copy when woken.
//!
//! Handlers return `Result<usize, SysError>`; `Kernel::execute` is the one
//! place that turns an `Errno` into `-errno` in rax, parks a blocked thread,
//! or leaves the registers alone (exit, exec, sigreturn). Unknown numbers give
//! ENOSYS.
//!
//! Per-call non-blocking I/O (seed 003): setting [`FD_NONBLOCK_CALL`] in the
//! descriptor argument of `read` or `write` makes that one call non-blocking
//! (EAGAIN instead of blocking) without touching the description's shared
//! `O_NONBLOCK`.

mod fs;
mod memory;
mod process;
mod signal;
mod time;

use emu::{reg, Gate, Memory};
use warden_abi::*;

use crate::process::{Blocked, OnWake, ThreadState, WaitOn};
use crate::usercopy::{copy_array, copy_in, copy_in_to, copy_path};
use crate::{Kernel, Pid};

/// Bit in the descriptor argument of `read`/`write` that makes this one call
/// non-blocking (EAGAIN instead of blocking), leaving `O_NONBLOCK` alone.
pub const FD_NONBLOCK_CALL: usize = 1 << 62;

/// Largest buffer one `read` or `write` moves (larger requests are partial).
pub const MAX_IO: usize = 1 << 20;

/// Most `argv` or `envp` entries exec accepts.
pub const MAX_EXEC_ARGS: usize = 16 * 1024;

/// The kernel's copy of the memory a call reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// The call reads no guest memory.
    None,
    /// A path (`open`, `unlink`, `rmdir`, `chdir`).
    Path(Vec<u8>),
    /// A byte buffer (`write`; the `dup`/`dup2` buffer).
    Bytes(Vec<u8>),
    /// `fexec`'s argument and environment vectors.
    Exec {
        args: Vec<Vec<u8>>,
        envs: Vec<Vec<u8>>,
    },
    Map(Map),
    /// `nanosleep`'s request, `futex`'s timeout.
    Time(TimeSpec),
    /// `sigaction`'s new action, if one was given.
    SigAction(Option<SigAction>),
    /// `sigprocmask`'s set, if one was given.
    SigSet(Option<u64>),
    /// A Linux call's inputs (`crate::linux`).
    Linux(crate::linux::LinuxInput),
    /// Copying an argument failed; the call fails with this error.
    Fault(Errno),
    /// Made by the kernel, never decoded from a guest: a supervised thread's held call
    /// continues (`crate::supervise`).
    Resume,
}

/// One system call as the kernel will execute it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    pub number: usize,
    pub args: [usize; 6],
    pub gate: Gate,
    pub input: Input,
}

impl Call {
    /// The call's name (`"open"`), if the number is known.
    pub fn name(&self) -> Option<&'static str> {
        if self.number & crate::linux::LINUX_CALL != 0 {
            return crate::linux::abi::name(self.number & !crate::linux::LINUX_CALL);
        }
        syscall_name(self.number)
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

pub type SysResult = Result<usize, SysError>;

pub(crate) fn errno<T>(e: i32) -> Result<T, SysError> {
    Err(SysError::Errno(Errno(e)))
}

/// The arguments of a call made through `gate` with registers `gpr`.
pub fn gate_args(gate: Gate, gpr: &[u64; 16]) -> [usize; 6] {
    let r = |i: usize| gpr[i] as usize;
    match gate {
        Gate::Syscall => [r(reg::RDI), r(reg::RSI), r(reg::RDX), r(reg::R10), r(reg::R8), r(reg::R9)],
        Gate::Int80 => [r(reg::RBX), r(reg::RCX), r(reg::RDX), r(reg::RSI), r(reg::RDI), 0],
    }
}

/// Step 1: builds the `Call`, copying every pointer argument the call reads.
pub fn decode(mem: &Memory, gate: Gate, number: usize, args: [usize; 6]) -> Call {
    let input = decode_input(mem, number, &args).unwrap_or_else(Input::Fault);
    Call { number, args, gate, input }
}

/// [`decode`] for `write`, copying the buffer into `spare` (a reused allocation).
pub fn decode_write(mem: &Memory, gate: Gate, args: [usize; 6], mut spare: Vec<u8>) -> Call {
    let input = match copy_in_to(mem, args[1], args[2].min(MAX_IO), &mut spare) {
        Ok(()) => Input::Bytes(spare),
        Err(e) => Input::Fault(e),
    };
    Call { number: SYS_WRITE, args, gate, input }
}

fn decode_input(mem: &Memory, number: usize, a: &[usize; 6]) -> Result<Input, Errno> {
    Ok(match number {
        SYS_OPEN | SYS_RMDIR | SYS_UNLINK | SYS_CHDIR | SYS_JAIL => Input::Path(copy_path(mem, a[0], a[1])?),
        SYS_MASK => Input::Bytes(crate::policy::copy_mask(mem, a[0], a[1])?),
        SYS_WRITE => Input::Bytes(copy_in(mem, a[1], a[2].min(MAX_IO))?),
        SYS_DUP if a[2] != 0 => Input::Bytes(copy_path(mem, a[1], a[2])?),
        SYS_DUP2 if a[3] != 0 => Input::Bytes(copy_path(mem, a[2], a[3])?),
        SYS_FEXEC => decode_exec(mem, a)?,
        SYS_FMAP => {
            if a[2] < Map::SIZE {
                return Err(Errno(EINVAL));
            }
            Input::Map(Map::from_bytes(&copy_array::<{ Map::SIZE }>(mem, a[1])?).unwrap_or_default())
        }
        SYS_NANOSLEEP => Input::Time(read_timespec(mem, a[0])?),
        SYS_FUTEX if a[1] == FUTEX_WAIT && a[3] != 0 => Input::Time(read_timespec(mem, a[3])?),
        SYS_SIGACTION if a[1] != 0 => {
            let bytes = copy_array::<{ SigAction::SIZE }>(mem, a[1])?;
            Input::SigAction(SigAction::from_bytes(&bytes))
        }
        SYS_SIGACTION => Input::SigAction(None),
        SYS_SIGPROCMASK if a[1] != 0 => {
            let bytes = copy_array::<16>(mem, a[1])?;
            let mut low = [0u8; 8];
            low.copy_from_slice(&bytes[..8]);
            Input::SigSet(Some(u64::from_le_bytes(low)))
        }
        SYS_SIGPROCMASK => Input::SigSet(None),
        _ => Input::None,
    })
}

fn read_timespec(mem: &Memory, addr: usize) -> Result<TimeSpec, Errno> {
    Ok(TimeSpec::from_bytes(&copy_array::<{ TimeSpec::SIZE }>(mem, addr)?).unwrap_or_default())
}

/// Copies `count` `[ptr, len]` pairs at `addr` and the strings they name.
fn copy_vector(mem: &Memory, addr: usize, count: usize, budget: &mut usize) -> Result<Vec<Vec<u8>>, Errno> {
    if count > MAX_EXEC_ARGS {
        return Err(Errno(E2BIG));
    }
    let pairs = copy_in(mem, addr, count.checked_mul(16).ok_or(Errno(E2BIG))?)?;
    let mut out = Vec::with_capacity(count);
    for pair in pairs.chunks_exact(16) {
        let mut p = [0u8; 8];
        p.copy_from_slice(&pair[..8]);
        let mut l = [0u8; 8];
        l.copy_from_slice(&pair[8..]);
        let (ptr, len) = (u64::from_le_bytes(p) as usize, u64::from_le_bytes(l) as usize);
        *budget = budget.checked_sub(len.saturating_add(9)).ok_or(Errno(E2BIG))?;
        out.push(copy_in(mem, ptr, len)?);
    }
    Ok(out)
}

fn decode_exec(mem: &Memory, a: &[usize; 6]) -> Result<Input, Errno> {
    let mut budget = crate::elf::MAX_ARG_BYTES;
    let args = copy_vector(mem, a[1], a[2], &mut budget)?;
    let envs = copy_vector(mem, a[3], a[4], &mut budget)?;
    Ok(Input::Exec { args, envs })
}

impl Kernel {
    /// Entry from a gate: decode, then execute.
    pub(crate) fn handle_syscall(&mut self, tid: Pid, gate: Gate) {
        self.stats.syscalls += 1;
        let Some(thread) = self.threads.get(&tid) else {
            return;
        };
        let number = thread.cpu.gpr[reg::RAX] as usize;
        let args = gate_args(gate, &thread.cpu.gpr);
        let supervised = thread.supervised;
        // A recording or replaying tap's view of the registers, taken while they are at hand.
        let tapped =
            (!matches!(self.hook, crate::record::Hook::None)).then(|| crate::record::register_fold(&thread.cpu));
        let Ok(mm) = self.mm_of(tid) else { return };
        let call = if gate == Gate::Syscall && self.is_linux(tid) {
            crate::linux::decode(&mm.borrow().space.mem, gate, number as u64, args)
        } else if number == SYS_WRITE {
            let spare = self.scratch.take_bytes();
            decode_write(&mm.borrow().space.mem, gate, args, spare)
        } else {
            decode(&mm.borrow().space.mem, gate, number, args)
        };
        // The mask and jail (crate::policy) come first: a refused call never reaches a
        // supervisor, and a confined path reaches it already resolved inside the jail.
        let call = if self.policy_active {
            let Some(call) = self.police(tid, call) else { return };
            call
        } else {
            call
        };
        // A recording or replaying tap sees every call the policy let through (it may stop
        // the run).
        if let Some(registers) = tapped {
            if !self.tap_syscall(tid, registers, &call) {
                return;
            }
        }
        // Supervision: a supervisor sees `call` (the kernel's copy) before it runs.
        if supervised {
            return self.supervise_syscall(tid, call);
        }
        self.execute(tid, call);
    }

    /// Step 3: runs `call` for thread `tid` and completes it.
    pub(crate) fn execute(&mut self, tid: Pid, call: Call) {
        let result = self.run_call(tid, &call);
        if let Some(b) = self.complete(tid, call.number, result) {
            let seq = self.next_wait_seq();
            let boxed = self.scratch.blocked(Blocked {
                on: b.on,
                deadline: b.deadline,
                on_timeout: b.on_timeout,
                on_wake: b.on_wake,
                call,
                seq,
            });
            self.park_thread(tid, boxed);
        } else if let Input::Bytes(buf) = call.input {
            self.scratch.keep_bytes(buf);
        }
    }

    /// [`Kernel::execute`] on a woken call, in the box it blocked with: blocking again
    /// reuses the box, finishing keeps it for the next blocked call.
    pub(crate) fn execute_boxed(&mut self, tid: Pid, mut boxed: Box<Blocked>) {
        let result = self.run_call(tid, &boxed.call);
        match self.complete(tid, boxed.call.number, result) {
            Some(b) => {
                boxed.on = b.on;
                boxed.deadline = b.deadline;
                boxed.on_timeout = b.on_timeout;
                boxed.on_wake = b.on_wake;
                boxed.seq = self.next_wait_seq();
                self.park_thread(tid, boxed);
            }
            None => self.scratch.recycle(boxed),
        }
    }

    fn run_call(&mut self, tid: Pid, call: &Call) -> SysResult {
        match &call.input {
            Input::Fault(e) => Err(SysError::Errno(*e)),
            Input::Resume => self.supervise_resume(tid),
            _ => self.dispatch(tid, call),
        }
    }

    /// Sets the return value of a finished call; hands back how it blocks, if it did.
    fn complete(&mut self, tid: Pid, number: usize, result: SysResult) -> Option<Block> {
        match result {
            Ok(value) => self.set_return(tid, value),
            Err(SysError::Errno(e)) => {
                self.set_return(tid, Errno::mux(Err(e)));
                if e.0 == EPIPE && number == SYS_WRITE {
                    self.post_thread_signal(tid, SIGPIPE);
                }
            }
            Err(SysError::Block(b)) => return Some(b),
            Err(SysError::NoReturn) => {}
        }
        None
    }

    fn next_wait_seq(&mut self) -> u64 {
        self.wait_seq += 1;
        self.wait_seq
    }

    fn park_thread(&mut self, tid: Pid, boxed: Box<Blocked>) {
        self.scratch.parking(boxed.deadline);
        match self.threads.get_mut(&tid) {
            Some(t) => t.state = ThreadState::Blocked(boxed),
            None => self.scratch.recycle(boxed),
        }
    }

    pub(crate) fn set_return(&mut self, tid: Pid, value: usize) {
        if let Some(t) = self.threads.get_mut(&tid) {
            t.cpu.gpr[reg::RAX] = value as u64;
        }
    }

    pub(crate) fn dispatch(&mut self, tid: Pid, call: &Call) -> SysResult {
        let a = call.args;
        if let Input::Linux(_) = call.input {
            return self.linux_dispatch(tid, call);
        }
        match call.number {
            SYS_OPEN => self.sys_open(tid, call),
            SYS_CLOSE => self.sys_close(tid, a[0]),
            SYS_READ => self.sys_read(tid, a[0], a[1], a[2]),
            SYS_WRITE => self.sys_write(tid, a[0], call),
            SYS_LSEEK => self.sys_lseek(tid, a[0], a[1] as isize as i64, a[2]),
            SYS_DUP => self.sys_dup(tid, a[0], call),
            SYS_DUP2 => self.sys_dup2(tid, a[0], a[1], call),
            SYS_FPATH => self.sys_fpath(tid, a[0], a[1], a[2]),
            SYS_FSTAT => self.sys_fstat(tid, a[0], a[1], a[2]),
            SYS_FSYNC => self.sys_fsync(tid, a[0]),
            SYS_FTRUNCATE => self.sys_ftruncate(tid, a[0], a[1]),
            SYS_FCNTL => self.sys_fcntl(tid, a[0], a[1], a[2]),
            SYS_RMDIR | SYS_UNLINK => self.sys_remove(tid, call),
            SYS_CHDIR => self.sys_chdir(tid, call),
            SYS_GETCWD => self.sys_getcwd(tid, a[0], a[1]),
            SYS_PIPE2 => self.sys_pipe2(tid, a[0], a[1]),
            SYS_FEXEC => self.sys_fexec(tid, a[0], call),
            SYS_EXIT => self.sys_exit(tid, a[0]),
            SYS_WAITPID => self.sys_waitpid(tid, a[0] as isize, a[1], a[2]),
            SYS_KILL => self.sys_kill(tid, a[0] as isize, a[1]),
            SYS_GETPID => Ok(self.pid_of(tid)? as usize),
            SYS_GETPPID => Ok(self.proc_of(tid)?.ppid as usize),
            SYS_GETUID | SYS_GETEUID => Ok(self.proc_of(tid)?.uid as usize),
            SYS_GETGID | SYS_GETEGID => Ok(self.proc_of(tid)?.gid as usize),
            SYS_GETPGID => self.sys_getpgid(tid, a[0]),
            SYS_SETPGID => self.sys_setpgid(tid, a[0], a[1]),
            SYS_CLONE => {
                let result = self.sys_clone(tid, a[0], a[1]);
                self.supervise_cloned(tid, a[0], &result);
                result
            }
            SYS_SUPERVISE => self.sys_supervise(tid, a[0], a[1]),
            SYS_UMASK => self.sys_umask(tid, a[0]),
            SYS_BRK => self.sys_brk(tid, a[0]),
            SYS_FMAP => self.sys_fmap(tid, a[0], call),
            SYS_FUNMAP => self.sys_funmap(tid, a[0], a[1]),
            SYS_MPROTECT => self.sys_mprotect(tid, a[0], a[1], a[2]),
            SYS_FUTEX => self.sys_futex(tid, a[0], a[1], a[2], call),
            SYS_NANOSLEEP => self.sys_nanosleep(tid, a[1], call),
            SYS_CLOCK_GETTIME => self.sys_clock_gettime(tid, a[0], a[1]),
            SYS_YIELD => {
                self.yield_requested = true;
                Ok(0)
            }
            SYS_SIGACTION => self.sys_sigaction(tid, a[0], a[2], a[3], call),
            SYS_SIGPROCMASK => self.sys_sigprocmask(tid, a[0], a[2], call),
            SYS_SIGRETURN => self.sys_sigreturn(tid),
            SYS_MASK => self.sys_mask(tid, call),
            SYS_JAIL => self.sys_jail(tid, call),
            _ => errno(ENOSYS),
        }
    }
}
