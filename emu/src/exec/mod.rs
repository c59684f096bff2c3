//! Execution: the one hot loop, the typed exits it returns, and the handler
//! interface every instruction family implements.
//!
//! Code runs as pre-decoded basic blocks (see `block`). Each `Op` carries the
//! function pointer chosen for its instruction at decode time plus the decoded
//! `Instruction`, so nothing is decoded or matched by mnemonic while running.
//! A handler returns `Ok(())` or a `Trap`; traps are the cold way out of the
//! loop and become an [`Exit`] with precise state: for a fault `rip` points at
//! the faulting instruction and it is not counted as retired; for a trap
//! (`syscall`, `int n`, `int3`) `rip` points after it and it is counted.
//!
//! The budget is exact: a block longer than the remaining budget runs only its
//! first ops, so instruction counts (and so `rdtsc` and record/replay) do not
//! depend on how code happened to be split into blocks.

pub(crate) mod avx;
pub(crate) mod fast;
pub(crate) mod int;
pub(crate) mod operand;
pub(crate) mod sse;
pub(crate) mod x87;

use iced_x86::Instruction;

use crate::block::{Block, CodeCache};
use crate::cpu::Cpu;
use crate::cpuid::CpuModel;
use crate::jit::{Jit, JitStats, Tier};
use crate::memory::{Access, Memory};

/// Why a handler stopped: the cold path out of the hot loop.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Trap {
    /// Details are in `Memory::fault`.
    PageFault,
    DivideError,
    InvalidOpcode,
    GeneralProtection,
    /// Unmasked SSE floating-point exception (#XM).
    SimdFloatingPoint,
    /// Unmasked x87 floating-point exception (#MF).
    FloatingPoint,
    Breakpoint,
    /// `int1` (icebp).
    Debug,
    Interrupt(u8),
    Syscall,
    Int80,
    Halt,
    /// A debugger breakpoint (`AddressSpace::set_breakpoint`) before the instruction.
    DebugBreak,
}

impl Trap {
    /// Traps complete the instruction; faults leave it unexecuted.
    fn completes_instruction(self) -> bool {
        matches!(self, Trap::Breakpoint | Trap::Debug | Trap::Interrupt(_) | Trap::Syscall | Trap::Int80)
    }
}

/// Which gate a system call came through.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum Gate {
    /// The `syscall` instruction (which also set RCX and R11, as on hardware).
    Syscall,
    /// `int 0x80`.
    Int80,
}

/// Why [`Cpu::run`] returned. Faults leave `rip` at the faulting instruction;
/// traps (`Syscall`, `Interrupt`, `Breakpoint`, `Debug`) leave it after the
/// instruction.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Exit {
    Syscall(Gate),
    /// `int n` for any `n` other than 0x80 (and other than 3, see `Breakpoint`).
    Interrupt(u8),
    /// `int3`.
    Breakpoint,
    /// `int1` / icebp.
    Debug,
    /// #UD: an invalid or unimplemented instruction; the bytes at `rip`.
    InvalidOpcode {
        bytes: [u8; 15],
        len: u8,
    },
    /// #DE: division by zero or quotient overflow.
    DivideError,
    /// #GP: e.g. a privileged instruction or a reserved MXCSR bit.
    GeneralProtection,
    /// #PF: an access outside a mapping or against its permissions.
    PageFault {
        addr: u64,
        access: Access,
    },
    /// #XM: an SSE floating-point exception the guest unmasked in MXCSR.
    SimdFloatingPoint,
    /// #MF: an x87 exception the guest unmasked in the control word.
    FloatingPoint,
    /// `hlt` (privileged in user mode).
    Halt,
    /// The instruction budget ran out; `rip` is the next instruction.
    BudgetExhausted,
    /// A debugger breakpoint ([`AddressSpace::set_breakpoint`]): `rip` is its address and
    /// the instruction there has not run (nor counted). The guest never sees it.
    DebugBreak,
}

/// An instruction handler.
pub(crate) type Handler = fn(&mut Cpu, &mut Memory, &Op) -> Result<(), Trap>;

/// A memory operand's addressing mode, precomputed for the fast handlers.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct MemRef {
    pub disp: u64,
    /// All ones when there is a base (index) register, else zero: the
    /// address is computed without branches as
    /// `disp + (base & base_mask) + ((index & index_mask) << scale)`.
    pub base_mask: u64,
    pub index_mask: u64,
    /// GPR indices (0 when absent: the mask hides them).
    pub base: u8,
    pub index: u8,
    /// log2 of the index scale.
    pub scale: u8,
    /// `ADDR32`, `FS`, `GS` (and `THREE` for 3-operand imul).
    pub flags: u8,
}

impl MemRef {
    pub const ADDR32: u8 = 1;
    pub const FS: u8 = 2;
    pub const GS: u8 = 4;
    pub const THREE: u8 = 8;
}

/// One pre-decoded instruction.
#[derive(Clone)]
pub(crate) struct Op {
    pub exec: Handler,
    /// Position in its block: `cpu.icount + idx` is this instruction's count.
    pub idx: u32,
    /// Register operands, immediate or branch target, and addressing mode,
    /// precomputed for the fast handlers (unused by the generic ones).
    pub r0: u8,
    pub r1: u8,
    pub a: u64,
    pub mem: MemRef,
    pub insn: Instruction,
}

impl Op {
    /// An op for `insn`: the fast handler when one fits, else the generic
    /// one; `None` if the instruction is not implemented or `model` lacks it (#UD).
    pub(crate) fn new(insn: &Instruction, idx: u32, flags_live: bool, model: CpuModel) -> Option<Op> {
        if !model.executes(insn.cpuid_features()) {
            let exec = int::select_without_feature(insn)?;
            return Some(Op { exec, ..Op::undefined(insn, idx) });
        }
        let mut op = Op { exec: undefined, idx, r0: 0, r1: 0, a: 0, mem: MemRef::default(), insn: *insn };
        let fast = fast::specialize(insn, flags_live, &mut op)
            .or_else(|| sse::fast::specialize(insn, &mut op))
            .or_else(|| avx::fast::specialize(insn, &mut op));
        op.exec = match fast {
            Some(h) => h,
            None => select(insn)?,
        };
        Some(op)
    }

    pub(crate) fn undefined(insn: &Instruction, idx: u32) -> Op {
        Op { exec: undefined, idx, r0: 0, r1: 0, a: 0, mem: MemRef::default(), insn: *insn }
    }
}

/// A guest address space: memory plus the code decoded from it. Threads that
/// share memory share one `AddressSpace`.
pub struct AddressSpace {
    pub mem: Memory,
    pub(crate) code: CodeCache,
    /// Translations of hot blocks (used by threads whose `tier` is `Jit`).
    jit: Jit,
    /// The CPU model `code` was decoded for (what decodes depends on it).
    code_model: CpuModel,
}

impl AddressSpace {
    /// Reserves an address space of `limit` bytes.
    pub fn new(limit: u64) -> Result<AddressSpace, crate::MemError> {
        Ok(AddressSpace {
            mem: Memory::new(limit)?,
            code: CodeCache::new(),
            jit: Jit::new(),
            code_model: CpuModel::default(),
        })
    }

    /// A copy of this address space (fork); code is re-decoded on demand.
    pub fn fork(&self) -> Result<AddressSpace, crate::MemError> {
        let mut jit = Jit::new();
        jit.warm_up = self.jit.warm_up;
        jit.warm = jit.warm_up;
        Ok(AddressSpace { mem: self.mem.fork()?, code: CodeCache::new(), jit, code_model: self.code_model })
    }

    /// Drops all decoded code (e.g. after exec replaced the image).
    pub fn flush_code(&mut self) {
        let breakpoints = std::mem::take(&mut self.code.breakpoints);
        let debugged = self.code.debugged;
        self.code = CodeCache::new();
        self.code.breakpoints = breakpoints;
        self.code.debugged = debugged;
        self.jit.forget();
        self.mem.clear_code_marks();
    }

    /// Sets a debugger breakpoint at `addr`: a thread reaching it leaves [`Cpu::run`] with
    /// [`Exit::DebugBreak`] before running the instruction there. Guest memory is not
    /// touched; the blocks holding `addr` are decoded again so that one starts there (the
    /// hot loop checks nothing: the breakpoint is an op of its own).
    pub fn set_breakpoint(&mut self, addr: u64) {
        if self.code.breakpoints.insert(addr) {
            self.code.invalidate_at(addr);
            self.jit.unlink(&mut self.code.dropped);
        }
    }

    /// Removes the breakpoint at `addr` (if any).
    pub fn remove_breakpoint(&mut self, addr: u64) {
        if self.code.breakpoints.remove(&addr) {
            self.code.invalidate_at(addr);
            self.jit.unlink(&mut self.code.dropped);
        }
    }

    /// Puts this space under a debugger (or takes it back): while debugged, code is decoded
    /// so that the flags are exact after every instruction (the interpreter otherwise skips
    /// flag writes no later instruction reads, which a debugger stepping one instruction
    /// would see). Costs a re-decode.
    pub fn set_debugged(&mut self, on: bool) {
        if self.code.debugged != on {
            self.flush_code();
            self.code.debugged = on;
        }
    }

    /// Whether a breakpoint is set at `addr`.
    pub fn has_breakpoint(&self, addr: u64) -> bool {
        self.code.breakpoints.contains(&addr)
    }

    /// Number of decoded blocks currently cached (for tests and statistics).
    pub fn cached_blocks(&self) -> usize {
        self.code.len()
    }

    /// Sets how many times a block runs in the interpreter before it is translated
    /// (default 16; 0 translates a block the first time it runs), from the first block
    /// run on (no warm-up, see `warm_up_jit`). For tests and the differential fuzz
    /// target, which want translated code without warming up.
    pub fn set_jit_threshold(&mut self, executions: u32) {
        self.jit.hot = executions;
        self.jit.warm = 0;
        self.jit.warm_up = 0;
    }

    /// Leaves this space's first `jit::WARM_UP` (4096) runs of untranslated blocks (and
    /// those of its forks) to the interpreter before counting executions: a program's
    /// start-up, whose loops would reach the threshold and be translated for nothing.
    /// Nothing the guest sees changes (as with the tier itself).
    pub fn warm_up_jit(&mut self) {
        self.jit.warm_up = crate::jit::WARM_UP;
        self.jit.warm = crate::jit::WARM_UP;
    }

    /// What the translation tier did in this space so far.
    pub fn jit_stats(&self) -> JitStats {
        self.jit.stats
    }
}

impl Cpu {
    /// Runs until an exit or until `budget` instructions have retired.
    pub fn run(&mut self, space: &mut AddressSpace, budget: u64) -> Exit {
        if space.code_model != self.model {
            space.flush_code();
            space.code_model = self.model;
        }
        let AddressSpace { mem, code, jit, .. } = space;
        let mut remaining = budget;
        // Under a debugger the interpreter runs everything (breakpoints, exact stops).
        let jit_on = self.tier == Tier::Jit && !code.debugged && code.breakpoints.is_empty();
        // The interpreter runs the next block: translated code left before an
        // instruction it does not cover or whose access it could not make.
        let mut interpret = !jit_on;
        while remaining != 0 {
            if !mem.dirty_code.is_empty() {
                code.invalidate(&mut mem.dirty_code);
                jit.unlink(&mut code.dropped);
            }
            let block: *const Block = match code.lookup(self.rip) {
                Some(block) => block,
                None => match code.build(mem, self.rip, self.model) {
                    Ok(block) => block,
                    Err(exit) => return exit,
                },
            };
            // The translator looks at other cached blocks (`Jit::run`): the cache is only
            // read from here to the end of this round.
            let code: &CodeCache = code;
            // SAFETY: `block` points to a block boxed in `code`, which this round does not
            // change (a shared borrow until its end), so the block outlives the reference.
            let block = unsafe { &*block };
            let ops = &block.ops[..];
            let n = ops.len();
            if n as u64 > remaining {
                if block.watch {
                    match self.run_watched(ops, block.fused, remaining as usize, mem) {
                        Some(Ok(done)) => {
                            self.icount += done;
                            remaining -= done;
                            continue;
                        }
                        Some(Err(exit)) => return exit,
                        None => {}
                    }
                }
                return self.run_prefix(ops, remaining as usize, block.fused, mem);
            }
            self.rip = block.end;
            if !interpret {
                if let Some((done, early)) = jit.run(block, code, self, mem, remaining) {
                    self.icount += done;
                    remaining -= done;
                    interpret = early;
                    continue;
                }
            } else {
                interpret = !jit_on;
            }
            if block.watch {
                // Code on a writable page: after a write to decoded code the rest of the
                // block may be stale; the loop's top drops it, and decodes from the next.
                match self.run_watched(ops, block.fused, n, mem) {
                    None => {}
                    Some(Ok(done)) => {
                        self.icount += done;
                        remaining -= done;
                        continue;
                    }
                    Some(Err(exit)) => return exit,
                }
            } else {
                for op in &ops[..n - block.fused as usize] {
                    if let Err(trap) = (op.exec)(self, mem, op) {
                        return self.trap_exit(trap, op, mem);
                    }
                }
            }
            self.icount += n as u64;
            remaining -= n as u64;
        }
        Exit::BudgetExhausted
    }

    /// Runs one instruction even if a debugger breakpoint is set at `rip` (resuming from
    /// it): the breakpoint is lifted for that instruction only.
    pub fn step_over_breakpoint(&mut self, space: &mut AddressSpace) -> Exit {
        let at = self.rip;
        if !space.has_breakpoint(at) {
            return self.run(space, 1);
        }
        space.remove_breakpoint(at);
        let exit = self.run(space, 1);
        space.set_breakpoint(at);
        exit
    }

    /// Runs the first `n` ops of a block longer than the remaining budget
    /// (cold: once per `run` at most), so the budget is exact. The jump of a
    /// fused compare-and-branch lies past the budget, so its compare runs
    /// as the plain instruction.
    #[cold]
    #[inline(never)]
    fn run_prefix(&mut self, ops: &[Op], n: usize, fused: bool, mem: &mut Memory) -> Exit {
        for (k, op) in ops[..n].iter().enumerate() {
            let exec = if fused && k == ops.len() - 2 { run_generic } else { op.exec };
            if let Err(trap) = exec(self, mem, op) {
                return self.trap_exit(trap, op, mem);
            }
        }
        self.rip = ops[n].insn.ip();
        self.icount += n as u64;
        Exit::BudgetExhausted
    }

    /// Runs at most `limit` instructions of a block on a writable page (`Block::watch`),
    /// looking for a write to decoded code after each: `None` when it ran to its end
    /// (`Cpu::rip` as its last instruction left it), else how many completed, with
    /// `Cpu::rip` at the next one (after a write to decoded code the rest of the block may
    /// be stale: the run loop drops it and goes on, with the budget that is left, as it
    /// would at a block's end); `Err` with the exit of a trap.
    #[cold]
    #[inline(never)]
    fn run_watched(&mut self, ops: &[Op], fused: bool, limit: usize, mem: &mut Memory) -> Option<Result<u64, Exit>> {
        let whole = limit >= ops.len();
        let run = if whole { &ops[..ops.len() - fused as usize] } else { &ops[..limit] };
        for (k, op) in run.iter().enumerate() {
            // A prefix ending between a fused compare and its branch runs the compare alone.
            let exec = if !whole && fused && k == ops.len() - 2 { run_generic } else { op.exec };
            if let Err(trap) = exec(self, mem, op) {
                return Some(Err(self.trap_exit(trap, op, mem)));
            }
            if k + 1 < run.len() && !mem.dirty_code.is_empty() {
                self.rip = ops[k + 1].insn.ip();
                return Some(Ok(k as u64 + 1));
            }
        }
        if whole {
            return None;
        }
        self.rip = ops[limit].insn.ip();
        Some(Ok(limit as u64))
    }

    #[cold]
    fn trap_exit(&mut self, trap: Trap, op: &Op, mem: &mut Memory) -> Exit {
        let done = trap.completes_instruction();
        self.icount += op.idx as u64 + done as u64;
        self.rip = if done { op.insn.next_ip() } else { op.insn.ip() };
        match trap {
            Trap::PageFault => Exit::PageFault { addr: mem.fault.addr, access: mem.fault.access },
            Trap::DivideError => Exit::DivideError,
            Trap::InvalidOpcode => {
                let mut bytes = [0u8; 15];
                let len = op.insn.len().clamp(1, 15);
                let avail = mem.fetch_code(op.insn.ip(), len);
                let len = avail.len();
                bytes[..len].copy_from_slice(avail);
                Exit::InvalidOpcode { bytes, len: len as u8 }
            }
            Trap::GeneralProtection => Exit::GeneralProtection,
            Trap::SimdFloatingPoint => Exit::SimdFloatingPoint,
            Trap::FloatingPoint => Exit::FloatingPoint,
            Trap::Breakpoint => Exit::Breakpoint,
            Trap::Debug => Exit::Debug,
            Trap::Interrupt(n) => Exit::Interrupt(n),
            Trap::Syscall => Exit::Syscall(Gate::Syscall),
            Trap::Int80 => Exit::Syscall(Gate::Int80),
            Trap::Halt => Exit::Halt,
            Trap::DebugBreak => Exit::DebugBreak,
        }
    }
}

/// The op a block starting at a debugger breakpoint begins with.
pub(crate) fn debug_break(_: &mut Cpu, _: &mut Memory, _: &Op) -> Result<(), Trap> {
    Err(Trap::DebugBreak)
}

/// The handler for invalid and unimplemented instructions.
pub(crate) fn undefined(_: &mut Cpu, _: &mut Memory, _: &Op) -> Result<(), Trap> {
    Err(Trap::InvalidOpcode)
}

/// Runs `op`'s instruction through the generic tier: the cold path of the
/// fast handlers (a page-crossing access, a page holding code, a fault, or an
/// operand the fast path does not cover) and of a fused op cut short by the
/// budget. Callers have changed no state, so the instruction runs once.
#[cold]
#[inline(never)]
pub(crate) fn run_generic(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> Result<(), Trap> {
    let exec = select(&op.insn).unwrap_or(undefined);
    exec(cpu, mem, op)
}

/// Picks the handler for a decoded instruction; `None` means #UD.
pub(crate) fn select(insn: &Instruction) -> Option<Handler> {
    int::select(insn)
        .or_else(|| sse::select(insn))
        .or_else(|| avx::select(insn))
        .or_else(|| avx::xsave::select(insn))
        .or_else(|| x87::select(insn))
}
