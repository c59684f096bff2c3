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

use crate::exec::{self, Exit, Op};
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
    pub fn build(&mut self, mem: &mut Memory, rip: u64) -> Result<u32, Exit> {
        let page_end = (rip | (PAGE_SIZE - 1)).wrapping_add(1);
        let single = mem.page_writable(rip);
        let max = (page_end.wrapping_sub(rip)) as usize + 15;
        let bytes = if rip < mem.limit() {
            mem.fetch_code(rip, max)
        } else {
            &[]
        };
        if bytes.is_empty() {
            mem.fault = Fault {
                addr: rip,
                access: Access::Execute,
            };
            return Err(Exit::PageFault {
                addr: rip,
                access: Access::Execute,
            });
        }
        let fetched = bytes.len() as u64;
        let mut decoder = Decoder::with_ip(64, bytes, rip, DecoderOptions::NONE);
        let mut insn = Instruction::default();
        let mut ops: Vec<Op> = Vec::new();
        loop {
            decoder.decode_out(&mut insn);
            let idx = ops.len() as u32;
            if insn.is_invalid() {
                if decoder.last_error() == DecoderError::NoMoreBytes {
                    if ops.is_empty() {
                        // The instruction runs into a page we may not execute.
                        let addr = rip + fetched;
                        mem.fault = Fault {
                            addr,
                            access: Access::Execute,
                        };
                        return Err(Exit::PageFault {
                            addr,
                            access: Access::Execute,
                        });
                    }
                    break;
                }
                ops.push(Op {
                    exec: exec::undefined,
                    insn,
                    idx,
                    a: 0,
                });
                break;
            }
            let selected = exec::select(&insn);
            let ends = insn.flow_control() != FlowControl::Next || selected.is_none();
            let exec = selected.unwrap_or(exec::undefined);
            let next = insn.next_ip();
            ops.push(Op {
                exec,
                insn,
                idx,
                a: 0,
            });
            if ends || single || ops.len() >= MAX_OPS || next >= page_end {
                break;
            }
        }
        let start_page = rip / PAGE_SIZE;
        let last = ops.last().expect("at least one op");
        let end = last.insn.next_ip();
        let end_page = (end - 1) / PAGE_SIZE;
        let block = Block {
            ops: ops.into_boxed_slice(),
            start: rip,
            end,
        };
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
