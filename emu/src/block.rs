//! The code cache: guest code decoded once into basic blocks of `Op`s.
//!
//! Blocks are looked up by guest address through a direct-mapped table in
//! front of a hash map, so the common lookup is a load and a compare. A block
//! ends at a control transfer, at a page boundary (an instruction may run
//! into the next page), or after `MAX_OPS` instructions. Blocks whose page is
//! guest-writable hold one instruction each: a write to code can then never
//! leave stale ops running, because invalidation (driven by the `CODE` page
//! marks in `Memory`) is applied between blocks.
//!
//! Status flags are computed eagerly, except where provably dead: a backward
//! pass over the block, seeded with the flags its direct successors may read
//! (found by decoding a few instructions at each successor on a read-only
//! page, a page the block then depends on for invalidation), marks each
//! instruction whose flags nobody reads, and the fast handlers skip them. A
//! `cmp`/`test` + `jcc` ending a block after which no flag is read becomes one
//! fused op. Every flag counts as read at an indirect transfer, a return and
//! any instruction that leaves the loop (syscall, int, hlt, #UD), so the state
//! the kernel sees there is exact. The one place a dead flag can show is a
//! fault between the skipped write and the instruction that overwrites it:
//! the faulting context then holds the older flag values.

use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;

use iced_x86::{Decoder, DecoderError, DecoderOptions, FlowControl, Instruction, OpKind};

use crate::cpuid::CpuModel;
use crate::exec::fast::fuse_cmp_jcc;
use crate::exec::{Exit, Op};
use crate::memory::{Access, Fault, GuestAddress, Memory, Perm, PAGE_SIZE};
use crate::shared::{AddrMap, PageState, SharedBlock, SharedCode, View};

const MAX_OPS: usize = 64;
const FAST_SLOTS: usize = 1 << 12;

pub(crate) struct Block {
    pub ops: Box<[Op]>,
    /// The last two ops are a fused compare-and-branch: the run loop
    /// dispatches all but the last op (the `jcc`, which the fused op ran).
    pub fused: bool,
    /// Address of the first instruction.
    pub start: u64,
    /// Address after the last instruction (the fall-through successor).
    pub end: u64,
    /// The status flags (iced's `RflagsBits`) that may be read after the block's last
    /// op: all of them after an exit of the loop, an indirect transfer or a `#UD`.
    pub live_out: u32,
    /// Its code is on a writable page: after each of its instructions the interpreter
    /// looks for a write to decoded code (the rest of the block may be stale then).
    pub watch: bool,
    /// Its translation to host code, if hot (see `jit`).
    pub jit: crate::jit::BlockJit,
}

pub(crate) struct CodeCache {
    blocks: Vec<Option<Box<Block>>>,
    free: Vec<u32>,
    map: AddrMap<u32>,
    /// Direct-mapped `(rip, block)` in front of `map`: the common lookup is
    /// one load and one compare. Invariant: the entry at index `s` either
    /// holds a rip with `slot(rip) == s` and a pointer to a live boxed block
    /// starting there, or is empty (`empty_entry(s)`): a key whose slot is
    /// another one, so no guest rip can match it (`lookup` only compares a
    /// rip with the entry of its own slot). Keying empty entries with a
    /// sentinel address instead (`u64::MAX`) let a jump to that address match
    /// an empty entry and dereference null (issue 22). An entry is emptied
    /// before its block is dropped.
    fast: FastTable,
    /// Blocks holding code from each page.
    by_page: AddrMap<Vec<u32>>,
    /// Debugger breakpoints: a block never runs across one, and the block starting at
    /// one is that instruction alone with the `debug_break` handler.
    pub breakpoints: HashSet<u64>,
    /// Under a debugger every flag counts as live (no skipped flag writes, no fused
    /// compare-and-branch), so the flags a debugger sees after any instruction are exact.
    pub debugged: bool,
    /// Start addresses of the blocks `invalidate` dropped, for the translator to unlink
    /// (`Jit::unlink`).
    pub dropped: Vec<u64>,
    /// Blocks decoded by other guests of the run (see `shared`).
    shared: Option<Rc<View>>,
    /// Pages found equal to a content in `shared` (their index there); each is a code
    /// page, so a change to it reaches `invalidate`, which forgets the match.
    page_ids: AddrMap<u32>,
}

/// The `fast` table of a [`CodeCache`].
type FastTable = Box<[(u64, *const Block)]>;

#[inline(always)]
fn slot(rip: u64) -> usize {
    ((rip ^ (rip >> 12)) as usize) & (FAST_SLOTS - 1)
}

/// The empty entry of slot `s`: its key `s ^ 1` (below 4096, so
/// `slot(s ^ 1) == s ^ 1`) belongs to a different slot, so it matches no rip
/// looked up in slot `s`.
fn empty_entry(s: usize) -> (u64, *const Block) {
    ((s ^ 1) as u64, std::ptr::null())
}

/// At most this many spare `fast` tables are kept per thread.
const SPARE_TABLES: usize = 16;

thread_local! {
    /// The emptied `fast` tables of dropped caches, for new ones: building or copying the
    /// 64 KiB table was 4 % of a kernel fuzz input (a cache per exec and fork), emptying
    /// the entries of a dropped cache's blocks costs a store per block.
    static SPARE_FAST: RefCell<Vec<FastTable>> = const { RefCell::new(Vec::new()) };
}

impl Drop for CodeCache {
    fn drop(&mut self) {
        // Every non-empty entry points to a live block starting at its key (the invariant
        // of `fast`), so emptying the entries of the live blocks empties the table.
        for block in self.blocks.iter().flatten() {
            let s = slot(block.start);
            self.fast[s] = empty_entry(s);
        }
        let table = std::mem::take(&mut self.fast);
        // When the pool is full (or the thread is ending) the table is freed instead.
        let _ = SPARE_FAST.try_with(move |spare| {
            let mut spare = spare.borrow_mut();
            if spare.len() < SPARE_TABLES {
                spare.push(table);
            }
        });
    }
}

/// An empty `fast` table: a spare one, or a new one.
fn empty_fast() -> FastTable {
    let spare = SPARE_FAST.try_with(|spare| spare.borrow_mut().pop());
    spare.ok().flatten().unwrap_or_else(|| (0..FAST_SLOTS).map(empty_entry).collect())
}

impl CodeCache {
    pub fn new() -> CodeCache {
        CodeCache {
            blocks: Vec::new(),
            free: Vec::new(),
            map: AddrMap::default(),
            fast: empty_fast(),
            by_page: AddrMap::default(),
            breakpoints: HashSet::new(),
            debugged: false,
            dropped: Vec::new(),
            shared: SharedCode::current(),
            page_ids: AddrMap::default(),
        }
    }

    /// Drops the blocks that may hold the instruction at `addr` (a breakpoint came or went).
    pub fn invalidate_at(&mut self, addr: u64) {
        // An instruction starting up to 14 bytes before `addr` may cover it.
        let mut pages = vec![addr.saturating_sub(14) / PAGE_SIZE, addr / PAGE_SIZE];
        pages.dedup();
        self.invalidate(&mut pages);
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// The block starting at `rip`, if one is cached.
    #[inline(always)]
    pub fn lookup(&mut self, rip: u64) -> Option<&Block> {
        let (r, block) = self.fast[slot(rip)];
        if r == rip {
            // SAFETY: the entry was read at `slot(rip)` and its key equals
            // `rip`, so its key's slot is its own index: by the invariant of
            // `fast` it is not empty and points to a live block. This holds
            // for every `rip`, whatever the guest jumps to.
            return Some(unsafe { &*block });
        }
        self.lookup_slow(rip)
    }

    /// The block starting at `rip`, if one is cached (without the fast table).
    pub fn peek(&self, rip: u64) -> Option<&Block> {
        let id = *self.map.get(&rip)?;
        self.blocks[id as usize].as_deref()
    }

    #[cold]
    #[inline(never)]
    fn lookup_slow(&mut self, rip: u64) -> Option<&Block> {
        let id = *self.map.get(&rip)?;
        let block: &Block = self.blocks[id as usize].as_deref()?;
        self.fast[slot(rip)] = (rip, block as *const Block);
        Some(block)
    }

    /// Drops every block holding code from the given pages.
    #[cold]
    #[inline(never)]
    pub fn invalidate(&mut self, pages: &mut Vec<u64>) {
        for page in pages.drain(..) {
            self.page_ids.remove(&page);
            for id in self.by_page.remove(&page).unwrap_or_default() {
                let Some(block) = self.blocks[id as usize].take() else {
                    continue;
                };
                self.map.remove(&block.start);
                self.dropped.push(block.start);
                let s = slot(block.start);
                if std::ptr::eq(self.fast[s].1, &*block) {
                    self.fast[s] = empty_entry(s);
                }
                self.free.push(id);
            }
        }
    }

    /// Decodes the block starting at `rip`, or takes it from the run's shared store.
    #[cold]
    #[inline(never)]
    pub fn build(&mut self, mem: &mut Memory, rip: u64, model: CpuModel) -> Result<&Block, Exit> {
        let view = match &self.shared {
            Some(v) if self.breakpoints.is_empty() && !self.debugged => Rc::clone(v),
            _ => return self.decode(mem, rip, model, None),
        };
        let found = view.find(
            rip,
            model,
            |b| b.deps.iter().all(|&(page, state)| self.page_state(mem, &view.shared, page) == state),
            |b| {
                let block = Block {
                    ops: b.ops.clone(),
                    fused: b.fused,
                    start: rip,
                    end: b.end,
                    live_out: b.live_out,
                    // (Blocks decoded from writable pages are never shared.)
                    watch: false,
                    jit: Default::default(),
                };
                (Box::new(block), b.pages.clone())
            },
        );
        match found {
            Some((block, pages)) => Ok(self.insert(block, &pages)),
            None => self.decode(mem, rip, model, Some(&view)),
        }
    }

    /// What block decoding may see of `page` (see `shared`).
    fn page_state(&mut self, mem: &mut Memory, shared: &SharedCode, page: u64) -> PageState {
        if page >= mem.limit() / PAGE_SIZE {
            return PageState::Outside;
        }
        if let Some(&id) = self.page_ids.get(&page) {
            return PageState::Content(id);
        }
        let addr = page * PAGE_SIZE;
        if mem.page_writable(addr) {
            let executable = mem.perm_at(GuestAddress(addr)).is_some_and(|p| p.contains(Perm::EXEC));
            return PageState::Writable { executable };
        }
        // Reading it marks it as code: a change to it now reaches `invalidate`.
        let bytes = mem.fetch_code(addr, PAGE_SIZE as usize);
        if bytes.len() != PAGE_SIZE as usize {
            return PageState::NotExecutable;
        }
        match shared.intern_page(page, bytes) {
            Some(id) => {
                self.page_ids.insert(page, id);
                PageState::Content(id)
            }
            // Too many contents seen there: a state no other guest's block depends on.
            None => PageState::Writable { executable: true },
        }
    }

    /// Decodes the block starting at `rip` (and offers it to `shared`).
    fn decode(&mut self, mem: &mut Memory, rip: u64, model: CpuModel, shared: Option<&View>) -> Result<&Block, Exit> {
        let page_end = (rip | (PAGE_SIZE - 1)).wrapping_add(1);
        let at_breakpoint = self.breakpoints.contains(&rip);
        let single = at_breakpoint;
        let max = (page_end.wrapping_sub(rip)) as usize + 15;
        let bytes = if rip < mem.limit() { mem.fetch_code(rip, max) } else { &[] };
        if bytes.is_empty() {
            mem.fault = Fault { addr: rip, access: Access::Execute };
            return Err(Exit::PageFault { addr: rip, access: Access::Execute });
        }
        let fetched = bytes.len() as u64;
        let mut decoder = Decoder::with_ip(64, bytes, rip, DecoderOptions::NONE);
        let mut insns: Vec<Instruction> = Vec::new();
        let mut invalid_at_end = false;
        loop {
            let mut insn = Instruction::default();
            decoder.decode_out(&mut insn);
            if insn.is_invalid() {
                if decoder.last_error() == DecoderError::NoMoreBytes {
                    if insns.is_empty() {
                        // The instruction runs into a page we may not execute.
                        let addr = rip + fetched;
                        mem.fault = Fault { addr, access: Access::Execute };
                        return Err(Exit::PageFault { addr, access: Access::Execute });
                    }
                } else {
                    insns.push(insn);
                    invalid_at_end = true;
                }
                break;
            }
            let ends = insn.flow_control() != FlowControl::Next || leaves_loop(&insn);
            let next = insn.next_ip();
            insns.push(insn);
            let before_breakpoint = !self.breakpoints.is_empty() && self.breakpoints.contains(&next);
            if ends || single || insns.len() >= MAX_OPS || next >= page_end || before_breakpoint {
                break;
            }
        }
        let mut peeked = Vec::new();
        let mut successors = Vec::new();
        let live_out = if invalid_at_end || self.debugged {
            STATUS_BITS
        } else {
            flags_live_out(mem, &insns[insns.len() - 1], &mut peeked, &mut successors)
        };
        let live = if self.debugged { vec![true; insns.len()] } else { flag_liveness(&insns, live_out) };
        let mut ops: Vec<Op> = Vec::with_capacity(insns.len());
        for (k, insn) in insns.iter().enumerate() {
            let idx = k as u32;
            if invalid_at_end && k == insns.len() - 1 {
                ops.push(Op::undefined(insn, idx));
                break;
            }
            match Op::new(insn, idx, live[k], model) {
                Some(op) => ops.push(op),
                None => {
                    // Unimplemented: #UD when reached; nothing after it runs.
                    ops.push(Op::undefined(insn, idx));
                    break;
                }
            }
        }
        if at_breakpoint {
            ops[0].exec = crate::exec::debug_break;
        }
        let n = ops.len();
        let mut fused = false;
        if n >= 2 && n == insns.len() && !invalid_at_end && live_out == 0 {
            if let Some(h) = fuse_cmp_jcc(&insns[n - 2], &insns[n - 1], &mut ops[n - 2]) {
                ops[n - 2].exec = h;
                fused = true;
            }
        }
        let start_page = rip / PAGE_SIZE;
        let last = ops.last().expect("at least one op");
        let end = last.insn.next_ip();
        let end_page = (end - 1) / PAGE_SIZE;
        let live_out = if n == insns.len() { live_out } else { STATUS_BITS };
        // The block also depends on the code it peeked at for liveness.
        peeked.retain(|p| !(start_page..=end_page).contains(p));
        peeked.dedup();
        let pages: Vec<u64> = (start_page..=end_page).chain(peeked).collect();
        if let Some(shared) = shared {
            self.publish(mem, shared, rip, model, &ops, fused, end, live_out, &pages, &successors);
        }
        let watch = mem.page_writable(rip) || mem.page_writable(end - 1);
        let block = Box::new(Block {
            ops: ops.into_boxed_slice(),
            fused,
            start: rip,
            end,
            live_out,
            watch,
            jit: Default::default(),
        });
        Ok(self.insert(block, &pages))
    }

    /// Offers a block just decoded to the other guests of the run, unless its decoding
    /// read a page they could see otherwise (a writable executable one).
    #[allow(clippy::too_many_arguments)]
    fn publish(
        &mut self,
        mem: &mut Memory,
        view: &View,
        rip: u64,
        model: CpuModel,
        ops: &[Op],
        fused: bool,
        end: u64,
        live_out: u32,
        pages: &[u64],
        successors: &[u64],
    ) {
        // The pages decoding may have looked at: the block's first page and the next
        // (an instruction may cross), and `PEEK` instructions at each direct successor.
        let page = rip / PAGE_SIZE;
        let mut looked = vec![page, page.saturating_add(1)];
        for &a in successors {
            looked.extend(a / PAGE_SIZE..=a.saturating_add(PEEK as u64 * 15 - 1) / PAGE_SIZE);
        }
        looked.sort_unstable();
        looked.dedup();
        let mut deps = Vec::with_capacity(looked.len());
        for p in looked {
            let state = self.page_state(mem, &view.shared, p);
            if matches!(state, PageState::Writable { executable: true }) {
                return;
            }
            deps.push((p, state));
        }
        let block = SharedBlock {
            model,
            deps: deps.into_boxed_slice(),
            ops: ops.into(),
            fused,
            end,
            live_out,
            pages: pages.into(),
        };
        view.publish(rip, block);
    }

    /// Adds a block to the cache, dropped when one of `pages` changes.
    fn insert(&mut self, block: Box<Block>, pages: &[u64]) -> &Block {
        let rip = block.start;
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                self.blocks.push(None);
                (self.blocks.len() - 1) as u32
            }
        };
        self.map.insert(rip, id);
        for &page in pages {
            self.by_page.entry(page).or_default().push(id);
        }
        let block: &Block = self.blocks[id as usize].insert(block);
        self.fast[slot(rip)] = (rip, block as *const Block);
        block
    }
}

/// Instructions that always leave the hot loop (iced classes some of them,
/// e.g. `hlt`, as plain fall-through). Ending the block there keeps the
/// state at the exit exact: flag liveness treats the block end as reading
/// every flag.
pub(crate) fn leaves_loop(i: &Instruction) -> bool {
    use iced_x86::Mnemonic as M;
    matches!(i.mnemonic(), M::Hlt | M::Syscall | M::Int | M::Int1 | M::Int3 | M::Ud0 | M::Ud1 | M::Ud2)
}

/// Status flags in iced's `RflagsBits` encoding.
const STATUS_BITS: u32 = 0x3f;

/// The status flags an instruction always writes (shifts and rotates write
/// none for sure: a zero count leaves the flags unchanged). Flags the manuals
/// leave undefined count only where the interpreter writes them (AF after the
/// logic operations, all six after `mul`/`imul`, see `exec::int`): it leaves
/// others as they were (`div` leaves all six), so a write before such an
/// instruction may be read after it.
fn flags_killed(i: &Instruction) -> u32 {
    use iced_x86::Mnemonic as M;
    if rep_string(i) {
        // `rep cmps`/`scas` write none when `rcx` is zero.
        return 0;
    }
    match i.mnemonic() {
        M::Shl | M::Sal | M::Shr | M::Sar | M::Rol | M::Ror | M::Rcl | M::Rcr | M::Shld | M::Shrd => 0,
        M::And | M::Or | M::Xor | M::Test | M::Mul | M::Imul => i.rflags_modified() & STATUS_BITS,
        _ => i.rflags_modified() & !i.rflags_undefined() & STATUS_BITS,
    }
}

/// A string instruction with a `rep`/`repne` prefix: it runs `rcx` times, maybe none.
pub(crate) fn rep_string(i: &Instruction) -> bool {
    i.is_string_instruction() && (i.has_rep_prefix() || i.has_repne_prefix())
}

/// For each instruction, whether a status flag it writes may be read later,
/// given the flags `live_out` that may be read after the block.
fn flag_liveness(insns: &[Instruction], live_out: u32) -> Vec<bool> {
    let mut live = live_out;
    let mut out = vec![true; insns.len()];
    for (k, i) in insns.iter().enumerate().rev() {
        out[k] = i.rflags_modified() & STATUS_BITS & live != 0;
        live &= !flags_killed(i);
        live |= i.rflags_read() & STATUS_BITS;
    }
    out
}

/// How many instructions `flags_read_at` decodes ahead.
const PEEK: usize = 8;
/// How many direct `jmp`s and `call`s `flags_read_at` follows.
const PEEK_JUMPS: usize = 2;

/// The status flags that may be read after `last`, the block's last
/// instruction: the union, over its direct successors, of the flags read
/// there before being written (`flags_read_at`). Every flag counts as read
/// after an indirect jump or call, a return, and an instruction that leaves
/// the loop (the kernel, a signal frame or a debugger may look at them).
/// Pages decoded ahead are added to `peeked`, the successors looked at to `successors`.
fn flags_live_out(mem: &mut Memory, last: &Instruction, peeked: &mut Vec<u64>, successors: &mut Vec<u64>) -> u32 {
    if leaves_loop(last) {
        return STATUS_BITS;
    }
    let direct = last.op_count() > 0 && last.op0_kind() == OpKind::NearBranch64;
    let (a, b) = match last.flow_control() {
        FlowControl::Next => (last.next_ip(), None),
        FlowControl::ConditionalBranch if direct => (last.next_ip(), Some(last.near_branch_target())),
        FlowControl::UnconditionalBranch | FlowControl::Call if direct => (last.near_branch_target(), None),
        _ => return STATUS_BITS,
    };
    successors.push(a);
    successors.extend(b);
    let mut live = flags_read_at(mem, a, peeked, successors);
    if let Some(b) = b {
        live |= flags_read_at(mem, b, peeked, successors);
    }
    live
}

/// The status flags the code at `addr` may read before writing them,
/// decoding at most `PEEK` instructions up to the first control transfer
/// other than a direct `jmp` or `call` (up to `PEEK_JUMPS` of those are
/// followed, their targets added to `successors`: a block that falls through to
/// a `jmp` or a `call` to code that writes the flags first leaves them dead; a
/// conditional branch before a `jmp`, as in the shell loop's string compares, or
/// before a `call` whose callee starts with `test`, as after the awk loop's
/// `bt`s, counted them all as read, and translated code stored them at its end).
/// Code on a writable page is not looked at (it may change without the
/// block noticing): every flag counts as read.
fn flags_read_at(mem: &mut Memory, addr: u64, peeked: &mut Vec<u64>, successors: &mut Vec<u64>) -> u32 {
    let (mut read, mut written) = (0, 0);
    let mut insn = Instruction::default();
    let (mut addr, mut left) = (addr, PEEK);
    for jumps in 0..=PEEK_JUMPS {
        if addr >= mem.limit() || mem.page_writable(addr) {
            break;
        }
        let bytes = mem.fetch_code(addr, left * 15);
        if bytes.is_empty() {
            break;
        }
        let last_page = (addr + bytes.len() as u64 - 1) / PAGE_SIZE;
        peeked.extend(addr / PAGE_SIZE..=last_page);
        let mut decoder = Decoder::with_ip(64, bytes, addr, DecoderOptions::NONE);
        let mut next = None;
        while left > 0 {
            left -= 1;
            decoder.decode_out(&mut insn);
            if insn.is_invalid() || leaves_loop(&insn) {
                break;
            }
            read |= insn.rflags_read() & STATUS_BITS & !written;
            written |= flags_killed(&insn);
            if written == STATUS_BITS {
                return read;
            }
            if insn.flow_control() != FlowControl::Next {
                let direct = insn.op_count() == 1 && insn.op0_kind() == OpKind::NearBranch64;
                if matches!(insn.flow_control(), FlowControl::UnconditionalBranch | FlowControl::Call) && direct {
                    next = Some(insn.near_branch_target());
                }
                break;
            }
        }
        match next {
            Some(to) if jumps < PEEK_JUMPS && left > 0 => {
                successors.push(to);
                addr = to;
            }
            _ => break,
        }
    }
    read | (STATUS_BITS & !written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_at(code: &[u8]) -> (bool, usize) {
        let mut mem = Memory::new(1 << 24).unwrap();
        mem.map(GuestAddress(0x1000), 0x1000, Perm::RX).unwrap();
        mem.write_raw(GuestAddress(0x1000), code).unwrap();
        let mut cache = CodeCache::new();
        let block = cache.build(&mut mem, 0x1000, CpuModel::default()).map_err(|_| ()).unwrap();
        (block.fused, block.ops.len())
    }

    /// Issue 22: no rip finds a block in an empty or emptied slot: not the keys empty slots
    /// hold, not `u64::MAX` (the old sentinel); a built block is found at its own rip only.
    #[test]
    fn empty_slots_match_no_rip() {
        let mut mem = Memory::new(1 << 24).unwrap();
        mem.map(GuestAddress(0x1000), 0x1000, Perm::RX).unwrap();
        mem.write_raw(GuestAddress(0x1000), &[0xf4]).unwrap();
        let mut cache = CodeCache::new();
        let probes = || (0..FAST_SLOTS as u64).chain([u64::MAX, u64::MAX - 1, 1 << 63]);
        assert!(probes().all(|rip| cache.lookup(rip).is_none()));
        assert_eq!(cache.build(&mut mem, 0x1000, CpuModel::default()).map(|b| b.start).ok(), Some(0x1000));
        assert!(probes().all(|rip| cache.lookup(rip).map(|b| b.start) == (rip == 0x1000).then_some(rip)));
        cache.invalidate(&mut vec![1]);
        assert!(probes().all(|rip| cache.lookup(rip).is_none()));
    }

    /// A dropped cache's table goes to the next cache emptied: no rip finds a block there.
    #[test]
    fn a_reused_table_is_empty() {
        let mut mem = Memory::new(1 << 24).unwrap();
        mem.map(GuestAddress(0x1000), 0x3000, Perm::RX).unwrap();
        // Blocks at every byte of two pages (`int3`s: one-instruction blocks), in all slots
        // (fewer under Miri, which decodes slowly).
        mem.write_raw(GuestAddress(0x1000), &[0xcc; 0x2000]).unwrap();
        let mut cache = CodeCache::new();
        for rip in 0x1000..if cfg!(miri) { 0x1040 } else { 0x3000 } {
            assert!(cache.build(&mut mem, rip, CpuModel::default()).is_ok());
        }
        let table = cache.fast.as_ptr();
        drop(cache);
        let mut reused = CodeCache::new();
        assert_eq!(reused.fast.as_ptr(), table, "the table is reused");
        let empty: Vec<_> = (0..FAST_SLOTS).map(empty_entry).collect();
        assert!(reused.fast[..] == empty[..], "a stale entry");
        assert!((0..if cfg!(miri) { 0x1100 } else { 0x4000 }).all(|rip| reused.lookup(rip).is_none()));
    }

    /// The liveness looks through direct `jmp`s and `call`s (up to `PEEK_JUMPS`): `cmp rax, rbx; jz
    /// L` falling through to `jmp L`, and `L: jmp T` into the next page, where `T` writes
    /// the flags (fused) or reads them (not fused); three `jmp`s are not followed. The
    /// block depends on the page it peeked at through them: a write there drops it.
    #[test]
    fn liveness_follows_direct_jumps() {
        let build = |tail: &[u8], jumps: usize| {
            let mut mem = Memory::new(1 << 24).unwrap();
            mem.map(GuestAddress(0x1000), 0x2000, Perm::RX).unwrap();
            // cmp rax, rbx; jz 0x100a; jmp 0x100a; int3 x3; 0x100a: jmp 0x2000 (rel32).
            let mut code = vec![0x48, 0x39, 0xd8, 0x74, 5, 0xeb, 3, 0xcc, 0xcc, 0xcc, 0xe9, 0xf1, 0x0f, 0, 0];
            if jumps == 3 {
                // 0x1005: jmp 0x1007; 0x1007: jmp 0x100a.
                code[5..10].copy_from_slice(&[0xeb, 0, 0xeb, 1, 0xcc]);
            }
            mem.write_raw(GuestAddress(0x1000), &code).unwrap();
            mem.write_raw(GuestAddress(0x2000), tail).unwrap();
            let mut cache = CodeCache::new();
            let fused = cache.build(&mut mem, 0x1000, CpuModel::default()).map_err(|_| ()).unwrap().fused;
            cache.invalidate(&mut vec![2]);
            (fused, cache.lookup(0x1000).is_some())
        };
        // xor edx, edx; hlt: every flag written first.
        assert_eq!(build(&[0x31, 0xd2, 0xf4], 2), (true, false));
        // pushfq: read.
        assert_eq!(build(&[0x9c, 0x5a, 0xf4], 2), (false, false));
        // Behind a third `jmp`: counted as read.
        assert_eq!(build(&[0x31, 0xd2, 0xf4], 3), (false, false));
        // A `call` is followed as a `jmp` is: `call 0x2000` at 0x100a (rel32 0xff1).
        let called = |tail: &[u8]| {
            let mut mem = Memory::new(1 << 24).unwrap();
            mem.map(GuestAddress(0x1000), 0x2000, Perm::RX).unwrap();
            let code = [0x48, 0x39, 0xd8, 0x74, 5, 0xeb, 3, 0xcc, 0xcc, 0xcc, 0xe8, 0xf1, 0x0f, 0, 0];
            mem.write_raw(GuestAddress(0x1000), &code).unwrap();
            mem.write_raw(GuestAddress(0x2000), tail).unwrap();
            let mut cache = CodeCache::new();
            cache.build(&mut mem, 0x1000, CpuModel::default()).map_err(|_| ()).unwrap().fused
        };
        assert!(called(&[0x31, 0xd2, 0xf4]));
        assert!(!called(&[0x9c, 0x5a, 0xf4]));
    }

    /// cmp rax, rbx; jz +5; mov ecx, 1; then a flag writer or a flag reader.
    const HEAD: [u8; 10] = [0x48, 0x39, 0xd8, 0x74, 5, 0xb9, 1, 0, 0, 0];

    #[test]
    fn fuses_only_when_no_successor_reads_the_flags() {
        let head = &HEAD[..];
        // Both successors start with `xor edx, edx`-like writers: fused.
        assert_eq!(block_at(&[head, &[0x31, 0xd2, 0xf4]].concat()), (true, 2));
        // The jump target reads the flags (pushfq).
        assert_eq!(block_at(&[head, &[0x9c, 0x5a, 0xf4]].concat()), (false, 2));
        // The successor leaves the loop (hlt): the kernel may see the flags.
        assert_eq!(block_at(&[head, &[0xf4]].concat()), (false, 2));
        // adc reads CF before anything writes it.
        assert_eq!(block_at(&[head, &[0x48, 0x11, 0xc0, 0xf4]].concat()), (false, 2));
    }
}
