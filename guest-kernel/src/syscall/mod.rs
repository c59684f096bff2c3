//! The system-call entry: one dispatcher for both gates and both ABIs, driven by the
//! call tables.
//!
//! Every fact about a call comes from its row in `warden_abi`'s tables
//! ([`warden_abi::calls`]; the kernel's half, handler and jail check, is [`table`]). A call
//! goes through these steps, in this order, for both ABIs:
//! 1. decode ([`input::decode`]): the gate's registers become a [`Call`]: the number
//!    (`LINUX_CALL | nr` for a Linux process's `syscall`), the six arguments (`syscall`:
//!    rdi, rsi, rdx, r10, r8, r9; `int 0x80`: rbx, rcx, rdx, rsi, rdi and 0) and an
//!    [`Input`] holding the kernel's own copy of every pointer argument the row says the
//!    call *reads* (paths, write buffers, structures, exec vectors), as supervision packet
//!    items ([`Items`]). A bad pointer becomes `Input::Fault(EFAULT)`.
//! 2. the policy ([`crate::policy`]): a filter. It lets the call through, rewrites its path
//!    arguments to where the jail confines them, or refuses it (`Input::Refused`: the
//!    call goes on, and fails with that errno without running); only a mask with
//!    `MASK_KILL` ends the caller at once.
//! 3. the tap ([`crate::record`]): a recording or a replay sees every call.
//! 4. supervision ([`crate::supervise`]): supervisors see the kernel's copy, and may answer
//!    the call, run it, and see and rewrite what it wrote ([`outputs`], from the row).
//! 5. [`Kernel::execute`]: the row's handler runs on the `Call`; guest memory is never
//!    re-read for an input. A call a user-space daemon serves is no exception: its handler
//!    finds the daemon by its scheme lookup ([`crate::scheme::user`]), so it passed steps
//!    2-4 as any call does, and no other call pays for the lookup. Outputs (read buffers, `Stat`, wait status, ...) are written to
//!    guest memory once, after the work is done, through [`crate::usercopy`]. A call that
//!    blocks keeps its `Call`, and re-runs on that same copy when woken.
//!
//! Handlers return `Result<usize, SysError>`; `Kernel::complete` sets rax, parks a blocked
//! thread, or leaves the registers alone (exit, exec, sigreturn). [`rax`] is the one place a
//! result or an `Errno` becomes the register value, for calls completing at once and for
//! parked calls woken, timed out or interrupted. Numbers no table has give ENOSYS. What
//! `read` and `write` mean (blocking or EAGAIN, partial transfers, SIGPIPE) is decided once,
//! for both ABIs, in [`crate::io`].
//!
//! Per-call non-blocking I/O (seed 003): setting [`FD_NONBLOCK_CALL`] in the
//! descriptor argument of `read` or `write` makes that one call non-blocking
//! (EAGAIN instead of blocking) without touching the description's shared
//! `O_NONBLOCK`.

mod fs;
mod input;
mod memory;
mod process;
mod signal;
pub(crate) mod table;
#[cfg(test)]
mod tests;
mod time;

use emu::{reg, Gate};
use warden_abi::*;

pub(crate) use fs::install_pair;
pub(crate) use input::{outputs, OutRange};
pub use input::{Items, MAX_EXEC_ARGS};
pub(crate) use memory::map_contents;
pub use table::Entry;

pub(crate) use crate::call::{errno, rax};
pub use crate::call::{Block, Call, Input, SysError, SysResult};
use crate::process::{Blocked, ThreadState};
use crate::{Kernel, Pid};

/// Bit in the descriptor argument of `read`/`write` that makes this one call
/// non-blocking (EAGAIN instead of blocking), leaving `O_NONBLOCK` alone.
pub const FD_NONBLOCK_CALL: usize = warden_abi::FD_NONBLOCK_CALL;

/// Largest buffer one `read` or `write` moves (larger requests are partial).
pub const MAX_IO: usize = warden_abi::table::MAX_IO;

/// The kernel's handlers of the Redox calls, by their rows in `warden_abi::redox_calls!`.
const REDOX_ROWS: &[table::Row] = {
    use crate::channel;
    use crate::policy::caught;
    warden_abi::redox_calls!(kernel_rows)
};
use table::kernel_rows;

/// The arguments of a call made through `gate` with registers `gpr`.
pub fn gate_args(gate: Gate, gpr: &[u64; 16]) -> [usize; 6] {
    let r = |i: usize| gpr[i] as usize;
    match gate {
        Gate::Syscall => [r(reg::RDI), r(reg::RSI), r(reg::RDX), r(reg::R10), r(reg::R8), r(reg::R9)],
        Gate::Int80 => [r(reg::RBX), r(reg::RCX), r(reg::RDX), r(reg::RSI), r(reg::RDI), 0],
    }
}

impl Kernel {
    /// Entry from a gate: decode, police, tap, supervise or execute.
    pub(crate) fn handle_syscall(&mut self, tid: Pid, gate: Gate) {
        self.stats.syscalls += 1;
        let Some(thread) = self.threads.get(&tid) else {
            return;
        };
        let rax = thread.cpu.gpr[reg::RAX] as usize;
        let args = gate_args(gate, &thread.cpu.gpr);
        let supervised = thread.supervised;
        // A recording or replaying tap's view of the registers, taken while they are at hand.
        let tapped =
            (!matches!(self.hook, crate::record::Hook::None)).then(|| crate::record::register_fold(&thread.cpu));
        // `int 0x80` in a Linux process still enters the Redox ABI.
        let number = if gate == Gate::Syscall && self.linux.procs.contains_key(&thread.pid) {
            warden_abi::linux::LINUX_CALL | (rax as u32 as usize)
        } else {
            rax
        };
        let mut call = match table::entry(number) {
            Some(entry) => match self.decode_call(tid, entry, args, gate) {
                Some(call) => call,
                None => return,
            },
            None => Call { number, args, gate, input: Input::None, entry: None },
        };
        // The mask and jail (crate::policy) filter first: a refused call goes on failing
        // with its errno, and a confined path reaches supervisors already resolved inside
        // the jail.
        if self.policy_active && !self.police(tid, &mut call) {
            return;
        }
        // A recording or replaying tap sees every call (it may stop the run).
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

    /// Step 1: the call `entry` describes with arguments `args`, with the kernel's copy of
    /// everything it reads (`None`: the thread has no address space any more).
    #[inline]
    pub(crate) fn decode_call(
        &mut self,
        tid: Pid,
        entry: &'static Entry,
        args: [usize; 6],
        gate: Gate,
    ) -> Option<Call> {
        let input = if entry.copies {
            let mm = self.mm_of(tid).ok()?;
            let mut spare = self.sched.scratch.take_bytes();
            let input = input::decode(&mm.borrow().space.mem, entry.info, &args, &mut spare);
            self.sched.scratch.keep_bytes(spare);
            input
        } else {
            Input::None
        };
        Some(Call { number: entry.info.number, args, gate, input, entry: Some(entry) })
    }

    /// Step 3: runs `call` for thread `tid` and completes it.
    pub(crate) fn execute(&mut self, tid: Pid, call: Call) {
        let result = self.run_call(tid, &call);
        if let Some(b) = self.complete(tid, result) {
            let seq = self.sched.next_wait_seq();
            let boxed = self.sched.scratch.blocked(Blocked {
                on: b.on,
                deadline: b.deadline,
                on_timeout: b.on_timeout,
                on_wake: b.on_wake,
                call,
                seq,
            });
            self.park_thread(tid, boxed);
        } else if let Input::Items(items) | Input::Refused(_, items) = call.input {
            self.sched.scratch.keep_bytes(items.into_buffer());
        }
    }

    /// [`Kernel::execute`] on a woken call, in the box it blocked with: blocking again
    /// reuses the box, finishing keeps it for the next blocked call.
    pub(crate) fn execute_boxed(&mut self, tid: Pid, mut boxed: Box<Blocked>) {
        let result = self.run_call(tid, &boxed.call);
        match self.complete(tid, result) {
            Some(b) => {
                boxed.on = b.on;
                boxed.deadline = b.deadline;
                boxed.on_timeout = b.on_timeout;
                boxed.on_wake = b.on_wake;
                boxed.seq = self.sched.next_wait_seq();
                self.park_thread(tid, boxed);
            }
            None => self.sched.scratch.recycle(boxed),
        }
    }

    // Inlined into `execute`, the trap path's one caller per call (a call and return less).
    #[inline(always)]
    fn run_call(&mut self, tid: Pid, call: &Call) -> SysResult {
        // Anonymous maps a Linux fork shared are synchronised at every call (linux::mem).
        if !self.linux.shared_maps.is_empty() {
            self.lx_sync_at_call(tid);
        }
        let result = match &call.input {
            Input::Resume => self.supervise_resume(tid),
            _ => self.dispatch(tid, call),
        };
        // Opens whose last descriptor the call closed are reported to inotify (linux::inotify).
        if !self.linux.opened.is_empty() {
            self.lx_reap_closed();
        }
        result
    }

    /// Runs the handler of `call` (a call whose copy failed, or that the policy refused,
    /// fails with that errno; a number no table has, with ENOSYS).
    pub(crate) fn dispatch(&mut self, tid: Pid, call: &Call) -> SysResult {
        if let Some(e) = call.failure() {
            return Err(e.into());
        }
        match call.entry {
            Some(e) => (e.handler)(self, tid, call),
            None => errno(ENOSYS),
        }
    }

    /// Sets the return value of a finished call; hands back how it blocks, if it did.
    fn complete(&mut self, tid: Pid, result: SysResult) -> Option<Block> {
        match result {
            Ok(value) => self.set_return(tid, value),
            Err(SysError::Errno(e)) => self.set_return(tid, rax(Err(e))),
            Err(SysError::Block(b)) => return Some(b),
            Err(SysError::NoReturn) => {}
        }
        None
    }

    fn park_thread(&mut self, tid: Pid, boxed: Box<Blocked>) {
        self.sched.scratch.parking(boxed.deadline);
        match self.threads.get_mut(&tid) {
            Some(t) => t.state = ThreadState::Blocked(boxed),
            None => self.sched.scratch.recycle(boxed),
        }
    }

    pub(crate) fn set_return(&mut self, tid: Pid, value: usize) {
        if let Some(t) = self.threads.get_mut(&tid) {
            t.cpu.gpr[reg::RAX] = value as u64;
        }
    }
}
