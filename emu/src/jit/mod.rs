//! The translation tier: hot blocks re-encoded as host code.
//!
//! Guest and host share the ISA, so most integer instructions run as themselves: the
//! emitter (`emit`) takes each decoded guest instruction of a block, renames its guest
//! registers to host registers loaded from the `Cpu` (the context block) just before it
//! and stored back just after, and re-encodes it with iced-x86's assembler. The host's
//! status flags after an `add` are the guest's; they stay in the host flags between
//! instructions and go back to `Cpu::rflags` before anything that may leave or clobber
//! them (an access check, the block's end).
//!
//! What stays exactly the interpreter's (the interpreter remains the reference):
//! - Counts: a translated block runs only when the remaining budget covers every
//!   instruction it may execute (the run loop's check, as for interpreted blocks); the
//!   run loop adds the number of instructions it completed.
//! - Faults and slow paths: every guest access is checked in the generated code with
//!   `Memory::try_read`/`try_write`'s own tests against the permission byte table
//!   (`addr < limit`, inside one page, `READ`, or `WRITE` without `CODE`); anything else
//!   (a fault, a page-crossing access, a write to a page holding decoded code, a
//!   copy-on-write page) leaves the block *before* the instruction changed anything,
//!   and the interpreter runs that instruction and the rest of its block. So faults,
//!   `rip` and self-modifying-code invalidation come from the interpreter's own paths.
//!   What keeps the guest inside its space is that check: a host access is made only at
//!   `base + addr` with `addr + size <= limit`, inside the data mapping (the guard zone
//!   after it stays as a second line).
//! - Coverage: a block is translated up to its first instruction the emitter does not
//!   cover (system calls, string, x87/SSE, division, indirect branches, ...); the
//!   translated prefix then leaves and the interpreter carries on from there. A block is
//!   translated once it ran `HOT` times; blocks on writable pages are never translated.
//! - Invalidation: a translation belongs to its code-cache block and dies with it (the
//!   cache drops blocks when their pages are written, unmapped or re-protected).
//!
//! Status flags: at an exit the translated code leaves every status flag as the
//! architecture defines it, where the interpreter may hold an older value of a flag no
//! instruction reads (its dead-flag elimination); both are exact at system calls and
//! every other exit that is not a fault.
//!
//! Not done yet (see issue 17): chaining blocks in host code (every block returns to
//! the run loop), keeping guest registers in host registers across a block, SSE,
//! indirect branches, a code-size limit with eviction other than flushing.

mod emit;

use std::cell::Cell;
use std::time::{Duration, Instant};

use memmap2::{Mmap, MmapMut};

use crate::block::Block;
use crate::cpu::Cpu;
use crate::memory::Memory;

/// Which tier runs hot guest code.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Hash)]
pub enum Tier {
    /// The interpreter only.
    Interp,
    /// Hot blocks are translated to host code.
    #[default]
    Jit,
}

impl std::fmt::Display for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Tier::Interp => "interp",
            Tier::Jit => "jit",
        })
    }
}

impl std::str::FromStr for Tier {
    type Err = String;
    fn from_str(s: &str) -> Result<Tier, String> {
        match s {
            "interp" => Ok(Tier::Interp),
            "jit" => Ok(Tier::Jit),
            _ => Err(format!("unknown tier {s:?} (expected `jit` or `interp`)")),
        }
    }
}

/// Executions after which a block is translated.
const HOT: u32 = 16;
/// Size of the executable arena; when full, every translation is dropped.
const ARENA: usize = 16 << 20;

/// A block's translation state.
#[derive(Default)]
pub(crate) struct BlockJit {
    hits: Cell<u32>,
    /// Entry point and instructions covered, valid while `gen` is the arena's.
    code: Cell<Option<(usize, u32, u32)>>,
}

/// What translated code needs of `Memory` (see `Memory::jit_view`).
#[repr(C)]
struct Env {
    base: *mut u8,
    perm: *const u8,
    limit: u64,
}

/// The signature of translated code: returns how many instructions it completed.
type Entry = unsafe extern "sysv64" fn(*mut Cpu, *const Env) -> u64;

/// Statistics for benches and tests.
#[derive(Clone, Copy, Debug, Default)]
pub struct JitStats {
    pub blocks_translated: u64,
    /// Blocks whose first instruction the translator does not cover.
    pub blocks_refused: u64,
    pub time_translating: Duration,
    pub code_bytes: u64,
    /// Times translated code ran.
    pub entries: u64,
    /// Times it left before its end (uncovered instruction or failed access check).
    pub early_exits: u64,
}

enum Arena {
    Empty,
    Executable(Mmap),
}

/// The translator of one address space.
pub(crate) struct Jit {
    arena: Arena,
    used: usize,
    gen: u32,
    pub stats: JitStats,
}

impl Jit {
    pub fn new() -> Jit {
        Jit { arena: Arena::Empty, used: 0, gen: 1, stats: JitStats::default() }
    }

    /// Drops every translation (the code cache was dropped with their blocks).
    pub fn forget(&mut self) {
        self.gen = self.gen.wrapping_add(1);
        self.used = 0;
    }

    /// Runs `block` as translated code if it has (or now gets) a translation; returns how
    /// many of its instructions completed (the caller counts them and, when fewer than
    /// the block's, continues in the interpreter at the next one). `None`: not translated,
    /// nothing ran.
    #[inline]
    pub fn run(&mut self, block: &Block, cpu: &mut Cpu, mem: &mut Memory) -> Option<u64> {
        let (entry, _covers, gen) = match block.jit.code.get() {
            Some(c) if c.2 == self.gen => c,
            // Translated before the arena was reset: translate again.
            Some(_) => self.translate(block, cpu, mem)?,
            None => {
                let hits = block.jit.hits.get();
                if hits > HOT {
                    return None;
                }
                block.jit.hits.set(hits + 1);
                if hits < HOT {
                    return None;
                }
                self.translate(block, cpu, mem)?
            }
        };
        debug_assert_eq!(gen, self.gen);
        let (base, perm, limit) = mem.jit_view();
        let env = Env { base, perm, limit };
        // SAFETY: `entry` points into the arena's executable mapping, at code `emit`
        // produced for this block in the current generation (the arena is only reset
        // after bumping `gen`). That code follows the SysV ABI (it saves every
        // callee-saved register it uses and does not touch the stack below its frame),
        // writes only `Cpu` fields through the first argument, and reaches guest memory
        // only at `base + a` for an `a` it checked as `Memory::try_read`/`try_write` do,
        // so inside the data mapping; `&mut Memory` excludes any other access meanwhile.
        let done = unsafe {
            let f: Entry = std::mem::transmute::<usize, Entry>(entry);
            f(cpu, &env)
        };
        self.stats.entries += 1;
        if done < block.ops.len() as u64 {
            self.stats.early_exits += 1;
        }
        Some(done)
    }

    #[cold]
    #[inline(never)]
    fn translate(&mut self, block: &Block, cpu: &Cpu, mem: &Memory) -> Option<(usize, u32, u32)> {
        if mem.page_writable(block.start) {
            return None;
        }
        let t0 = Instant::now();
        let mut result = None;
        for _ in 0..2 {
            let ip = self.cursor()?;
            let Some(t) = emit::translate(block, cpu.model, ip as u64) else {
                self.stats.blocks_refused += 1;
                break;
            };
            if self.used + t.code.len() > ARENA {
                // Full: drop every translation (their blocks see a stale generation).
                self.gen = self.gen.wrapping_add(1);
                self.used = 0;
                continue;
            }
            self.install(&t.code)?;
            self.stats.blocks_translated += 1;
            self.stats.code_bytes += t.code.len() as u64;
            let c = (ip, t.covers, self.gen);
            block.jit.code.set(Some(c));
            result = Some(c);
            break;
        }
        self.stats.time_translating += t0.elapsed();
        result
    }

    /// The host address the next translation goes to.
    fn cursor(&mut self) -> Option<usize> {
        if matches!(self.arena, Arena::Empty) {
            // A new arena: whatever was translated into an old one is stale.
            self.gen = self.gen.wrapping_add(1);
            self.used = 0;
            self.arena = Arena::Executable(MmapMut::map_anon(ARENA).ok()?.make_exec().ok()?);
        }
        let base = match &self.arena {
            Arena::Executable(m) => m.as_ptr(),
            Arena::Empty => return None,
        };
        Some(base as usize + self.used)
    }

    /// Copies code to the cursor: the arena is writable only meanwhile (W^X).
    fn install(&mut self, code: &[u8]) -> Option<()> {
        let Arena::Executable(m) = std::mem::replace(&mut self.arena, Arena::Empty) else {
            return None;
        };
        let mut w = m.make_mut().ok()?;
        w[self.used..self.used + code.len()].copy_from_slice(code);
        self.used += code.len().next_multiple_of(16);
        self.used = self.used.min(ARENA);
        self.arena = Arena::Executable(w.make_exec().ok()?);
        Some(())
    }
}
