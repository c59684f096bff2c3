//! The global allocator: power-of-two size classes with free lists, carved from memory
//! obtained with `brk` (or anonymous `fmap` when the break cannot grow).
//!
//! Design: a request is rounded up to a class `2^k` (at least 16 bytes, at least its
//! alignment). Freed blocks go onto their class's singly linked free list (the link lives in
//! the block) and are reused first. New blocks are carved from the current region, aligned to
//! `min(class, PAGE_SIZE)`, so any block on a class list satisfies every alignment up to a page;
//! larger alignments are always carved fresh. Regions grow by `brk` in chunks of at least
//! 256 KiB; if the break will not move, an anonymous `fmap` chunk starts a new region.
//! Memory is never returned to the kernel. This wastes at most half of each block but is
//! simple, fast, and deterministic, which suits short-lived guest tools.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::null_mut;

use crate::abi::{self, Map, PAGE_SIZE};
use crate::sync::SpinLock;
use crate::sys;

/// Smallest block: 16 bytes (room for the free-list link, and malloc-like alignment).
const MIN_SHIFT: u32 = 4;
/// Number of classes: 16 B .. 2^47 B.
const CLASSES: usize = 44;
/// Smallest amount of memory requested from the kernel at once.
const CHUNK: usize = 256 * 1024;

struct HeapState {
    /// Head of each class's free list (0 = empty).
    free: [usize; CLASSES],
    /// Next free byte of the current region.
    cursor: usize,
    /// End of the current region.
    end: usize,
    /// True once the current region is the `brk` heap (and may be grown with `brk`).
    brk_region: bool,
    /// True after the first use (the break has been queried).
    started: bool,
}

/// The runtime's global allocator.
pub struct Heap {
    state: SpinLock<HeapState>,
}

#[global_allocator]
static HEAP: Heap = Heap {
    state: SpinLock::new(HeapState { free: [0; CLASSES], cursor: 0, end: 0, brk_region: false, started: false }),
};

/// The size class index for `layout`, or `None` if it is too large.
fn class_of(layout: Layout) -> Option<usize> {
    let need = layout.size().max(layout.align()).max(1 << MIN_SHIFT);
    let class = need.checked_next_power_of_two()?;
    let index = (class.trailing_zeros() - MIN_SHIFT) as usize;
    (index < CLASSES).then_some(index)
}

fn class_size(index: usize) -> usize {
    1 << (index as u32 + MIN_SHIFT)
}

fn align_up(value: usize, align: usize) -> Option<usize> {
    Some(value.checked_add(align - 1)? & !(align - 1))
}

impl HeapState {
    /// Carves a fresh block of `size` bytes aligned to `align` from the current region,
    /// growing or replacing the region as needed. Returns 0 when memory is exhausted.
    fn carve(&mut self, size: usize, align: usize) -> usize {
        if !self.started {
            self.started = true;
            // SAFETY: querying the break changes nothing.
            if let Ok(current) = unsafe { sys::brk(0) }
                && let Some(start) = align_up(current, PAGE_SIZE)
            {
                self.cursor = start;
                self.end = start;
                self.brk_region = current != 0;
            }
        }
        if let Some(block) = self.take(size, align) {
            return block;
        }
        let Some(want) = size.checked_add(align).and_then(|n| align_up(n.max(CHUNK), PAGE_SIZE)) else {
            return 0;
        };
        if self.brk_region
            && self.grow_brk(want)
            && let Some(block) = self.take(size, align)
        {
            return block;
        }
        if self.map_region(want)
            && let Some(block) = self.take(size, align)
        {
            return block;
        }
        0
    }

    /// Takes a block from the current region if it fits.
    fn take(&mut self, size: usize, align: usize) -> Option<usize> {
        let start = align_up(self.cursor, align)?;
        let end = start.checked_add(size)?;
        if self.cursor == 0 || end > self.end {
            return None;
        }
        self.cursor = end;
        Some(start)
    }

    /// Extends the `brk` region by `want` bytes.
    fn grow_brk(&mut self, want: usize) -> bool {
        let Some(new_end) = self.end.checked_add(want) else {
            return false;
        };
        // SAFETY: the break only grows; nothing above the old end is in use.
        match unsafe { sys::brk(new_end) } {
            Ok(now) if now >= new_end => {
                self.end = now;
                true
            }
            _ => {
                self.brk_region = false;
                false
            }
        }
    }

    /// Starts a new region of `want` bytes with an anonymous map.
    fn map_region(&mut self, want: usize) -> bool {
        let map = Map { offset: 0, size: want, flags: abi::PROT_READ | abi::PROT_WRITE | abi::MAP_PRIVATE, address: 0 };
        match sys::fmap(abi::ANONYMOUS_FD, &map) {
            Ok(addr) if addr != 0 => {
                self.cursor = addr;
                self.end = addr + want;
                self.brk_region = false;
                true
            }
            _ => false,
        }
    }
}

// SAFETY: every block handed out is a distinct, suitably aligned range of at least
// `layout.size()` bytes inside memory the kernel mapped for this process; a block is reused
// only after `dealloc`, which the `GlobalAlloc` contract makes the end of its previous use.
unsafe impl GlobalAlloc for Heap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(index) = class_of(layout) else {
            return null_mut();
        };
        let size = class_size(index);
        let mut state = self.state.lock();
        if layout.align() <= PAGE_SIZE {
            let head = state.free[index];
            if head != 0 {
                // SAFETY: `head` is a freed block of this class; its first word holds the
                // next link, written by `dealloc`.
                state.free[index] = unsafe { (head as *const usize).read() };
                return head as *mut u8;
            }
        }
        let align = layout.align().max(size.min(PAGE_SIZE));
        state.carve(size, align) as *mut u8
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let Some(index) = class_of(layout) else {
            return;
        };
        let mut state = self.state.lock();
        // SAFETY: `ptr` is a block of this class (same layout as allocated) that the caller no
        // longer uses; it is at least 16 bytes and 16-aligned, so a `usize` link fits.
        unsafe { (ptr as *mut usize).write(state.free[index]) };
        state.free[index] = ptr as usize;
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `new_size` with `layout.align()` is a valid layout.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if class_of(layout).is_some() && class_of(layout) == class_of(new_layout) {
            return ptr;
        }
        // SAFETY: `new_layout` is valid (see above).
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are live, distinct, and at least `min(old, new)` bytes.
            unsafe {
                core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}
