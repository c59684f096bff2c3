//! The code cache: guest code decoded once into basic blocks of `Op`s.
//!
//! Blocks are looked up by guest address through a direct-mapped table in
//! front of a hash map, so the common lookup is a load and a compare. A block
//! ends at a control transfer, at a page boundary (an instruction may run
//! into the next page), or after `MAX_OPS` instructions. Blocks whose page is
//! guest-writable hold one instruction each: a write to code can then never
//! leave stale ops running, because invalidation (driven by the `CODE` page
//! marks in `Memory`) is applied between blocks.

use std::collections::HashMap;

use iced_x86::{Decoder, DecoderError, DecoderOptions, FlowControl, Instruction};

use crate::exec::{Exit, Op};
use crate::memory::{Access, Fault, Memory, PAGE_SIZE};

const MAX_OPS: usize = 64;
const FAST_SLOTS: usize = 1 << 12;

pub(crate) struct Block {
    pub ops: Box<[Op]>,
    /// Address of the first instruction.
    pub start: u64,
    /// Address after the last instruction (the fall-through successor).
    pub end: u64,
}

pub(crate) struct CodeCache {
    blocks: Vec<Option<Block>>,
    free: Vec<u32>,
    map: HashMap<u64, u32>,
    /// Direct-mapped `(rip, id + 1)`; 0 marks an empty slot.
    fast: Box<[(u64, u32)]>,
    /// Blocks holding code from each page.
    by_page: HashMap<u64, Vec<u32>>,
}

#[inline(always)]
fn slot(rip: u64) -> usize {
    ((rip ^ (rip >> 12)) as usize) & (FAST_SLOTS - 1)
}

impl CodeCache {
    pub fn new() -> CodeCache {
        CodeCache {
            blocks: Vec::new(),
            free: Vec::new(),
            map: HashMap::new(),
            fast: vec![(0, 0); FAST_SLOTS].into_boxed_slice(),
            by_page: HashMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    #[inline(always)]
    pub fn lookup(&mut self, rip: u64) -> Option<u32> {
        let s = slot(rip);
        let (r, id) = self.fast[s];
        if r == rip && id != 0 {
            return Some(id - 1);
        }
        let id = *self.map.get(&rip)?;
        self.fast[s] = (rip, id + 1);
        Some(id)
    }

    #[inline(always)]
    pub fn block(&self, id: u32) -> &Block {
        // Ids come from `lookup`/`build`, which only hand out live blocks.
        self.blocks[id as usize].as_ref().expect("live block")
    }

    /// Drops every block holding code from the given pages.
    #[cold]
    #[inline(never)]
    pub fn invalidate(&mut self, pages: &mut Vec<u64>) {
        for page in pages.drain(..) {
            for id in self.by_page.remove(&page).unwrap_or_default() {
                let Some(block) = self.blocks[id as usize].take() else {
                    continue;
                };
                self.map.remove(&block.start);
                let s = slot(block.start);
                if self.fast[s].1 == id + 1 {
                    self.fast[s] = (0, 0);
                }
                self.free.push(id);
            }
        }
    }

    /// Decodes the block starting at `rip`.
    #[cold]
    #[inline(never)]
    pub fn build(&mut self, mem: &mut Memory, rip: u64) -> Result<u32, Exit> {
        let page_end = (rip | (PAGE_SIZE - 1)).wrapping_add(1);
        let single = mem.page_writable(rip);
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
            if ends || single || insns.len() >= MAX_OPS || next >= page_end {
                break;
            }
        }
        let live = flag_liveness(&insns);
        let mut ops: Vec<Op> = Vec::with_capacity(insns.len());
        for (k, insn) in insns.iter().enumerate() {
            let idx = k as u32;
            if invalid_at_end && k == insns.len() - 1 {
                ops.push(Op::undefined(insn, idx));
                break;
            }
            match Op::new(insn, idx, live[k]) {
                Some(op) => ops.push(op),
                None => {
                    // Unimplemented: #UD when reached; nothing after it runs.
                    ops.push(Op::undefined(insn, idx));
                    break;
                }
            }
        }
        let start_page = rip / PAGE_SIZE;
        let last = ops.last().expect("at least one op");
        let end = last.insn.next_ip();
        let end_page = (end - 1) / PAGE_SIZE;
        let block = Block { ops: ops.into_boxed_slice(), start: rip, end };
        let id = match self.free.pop() {
            Some(id) => {
                self.blocks[id as usize] = Some(block);
                id
            }
            None => {
                self.blocks.push(Some(block));
                (self.blocks.len() - 1) as u32
            }
        };
        self.map.insert(rip, id);
        self.fast[slot(rip)] = (rip, id + 1);
        for page in start_page..=end_page {
            self.by_page.entry(page).or_default().push(id);
        }
        Ok(id)
    }
}

/// Instructions that always leave the hot loop (iced classes some of them,
/// e.g. `hlt`, as plain fall-through). Ending the block there keeps the
/// state at the exit exact: flag liveness treats the block end as reading
/// every flag.
fn leaves_loop(i: &Instruction) -> bool {
    use iced_x86::Mnemonic as M;
    matches!(i.mnemonic(), M::Hlt | M::Syscall | M::Int | M::Int1 | M::Int3 | M::Ud0 | M::Ud1 | M::Ud2)
}

/// Status flags in iced's `RflagsBits` encoding.
const STATUS_BITS: u32 = 0x3f;

/// For each instruction, whether a status flag it writes may be read later.
/// Flags are live at the end of the block. An instruction kills the flags it
/// always writes; shifts and rotates are treated as not killing (a zero
/// count leaves the flags unchanged).
fn flag_liveness(insns: &[Instruction]) -> Vec<bool> {
    use iced_x86::Mnemonic as M;
    let mut live = STATUS_BITS;
    let mut out = vec![true; insns.len()];
    for (k, i) in insns.iter().enumerate().rev() {
        let written = i.rflags_modified() & STATUS_BITS;
        out[k] = written & live != 0;
        let conditional = matches!(
            i.mnemonic(),
            M::Shl | M::Sal | M::Shr | M::Sar | M::Rol | M::Ror | M::Rcl | M::Rcr | M::Shld | M::Shrd
        );
        if !conditional {
            live &= !written;
        }
        live |= i.rflags_read() & STATUS_BITS;
    }
    out
}
