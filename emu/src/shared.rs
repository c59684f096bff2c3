//! Decoded code shared between the guests of one run ([`SharedCode`]).
//!
//! `warden test` runs each test of a test binary in its own fresh guest: every guest
//! decodes the same dynamic loader, libc and test harness again, and for trivial tests
//! that decoding is most of the work. A `SharedCode` store lets the code caches of many
//! address spaces (on any threads) reuse each other's decoded blocks.
//!
//! Why reuse is exact: a block the code cache builds at `rip` is a pure function of
//! `rip`, the CPU model and the state of the pages its decoding could look at: the two
//! pages the instructions may come from (`rip`'s and the next: an instruction may cross)
//! and, for flag liveness, the pages `PEEK * 15` bytes from each successor. A page's
//! state ([`PageState`]) is its content when it is executable and not writable, else
//! only whether it lies outside the space, is writable (and executable) or not
//! executable, which is all decoding looks at then. A guest takes a shared block only if
//! every one of those pages is in the same state in its own memory; content is compared
//! byte for byte (each distinct page content is kept once, per page number, and each
//! guest checks a page against them once, then remembers the match), so there is no hash
//! to collide. The reused block is then identical to the one the guest would have
//! decoded, with the same instructions and counts, and joins its cache like one it built:
//! registered under the pages it depends on, whose `CODE` marks were set by reading them,
//! so a write, `mprotect`, `munmap` or new mapping there drops it (and the remembered
//! match) exactly as for a block decoded locally. Blocks that depend on the content of a
//! writable page are never shared, nor is anything while a debugger is attached
//! (breakpoints, exact flags).
//!
//! Which store a new code cache uses is per host thread ([`SharedCode::enter`]): address
//! spaces are created deep inside the guest kernel (exec, fork, clone), always on the
//! thread that runs that guest, so the test runner enters its store once per worker
//! thread instead of threading it through the kernel. Translated code (`jit`) is not
//! shared: it is per address space and chained through per-space tables.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::cpuid::CpuModel;
use crate::exec::Op;

/// At most this many different blocks are kept for one address (guests whose code
/// differs there each decode for themselves beyond that).
const MAX_VARIANTS: usize = 8;
/// At most this many different contents are kept for one page number.
const MAX_PAGE_IMAGES: usize = 16;

/// A hasher for guest addresses and page numbers (keys the guest chooses cannot make a
/// map slower than a list, and these maps are looked up once per block decoded).
#[derive(Default)]
pub(crate) struct AddrHasher(u64);

impl Hasher for AddrHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// A map keyed by guest address or page number.
pub(crate) type AddrMap<V> = HashMap<u64, V, BuildHasherDefault<AddrHasher>>;

/// What block decoding may see of one page (see the module note).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum PageState {
    /// At or beyond the space's limit.
    Outside,
    /// Not executable: decoding stops there; its content is never read.
    NotExecutable,
    /// Writable (executable or not): a block whose content came from such a page is
    /// not shared.
    Writable { executable: bool },
    /// Executable and not writable, with this content (an index among the page number's
    /// images in the store).
    Content(u32),
}

/// A decoded block as the store keeps it.
pub(crate) struct SharedBlock {
    pub model: CpuModel,
    /// Every page the decoding could look at, with the state it had.
    pub deps: Box<[(u64, PageState)]>,
    pub ops: Box<[Op]>,
    pub fused: bool,
    pub end: u64,
    pub live_out: u32,
    /// The pages the block is registered under for invalidation.
    pub pages: Box<[u64]>,
}

#[derive(Default)]
struct Store {
    /// The distinct contents seen at each page number.
    pages: AddrMap<Vec<Arc<[u8]>>>,
    /// The blocks decoded at each address.
    blocks: AddrMap<Vec<Arc<SharedBlock>>>,
}

/// A store of decoded blocks shared by the guests of one run (see the module note).
#[derive(Default)]
pub struct SharedCode {
    store: Mutex<Store>,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// How often code caches found their block in a [`SharedCode`] store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SharedCodeStats {
    /// Blocks taken from the store instead of decoded.
    pub hits: u64,
    /// Blocks decoded (and offered to the store).
    pub misses: u64,
}

/// One thread's view of a store: the blocks it has fetched from it so far, so that the
/// common lookup takes no lock and touches no memory another thread writes (the guests
/// of a thread run one after another, and mostly run the same code).
pub(crate) struct View {
    pub shared: Arc<SharedCode>,
    blocks: RefCell<AddrMap<Vec<Arc<SharedBlock>>>>,
    hits: Cell<u64>,
    misses: Cell<u64>,
}

impl Drop for View {
    fn drop(&mut self) {
        self.shared.hits.fetch_add(self.hits.get(), Ordering::Relaxed);
        self.shared.misses.fetch_add(self.misses.get(), Ordering::Relaxed);
    }
}

impl View {
    /// Calls `take` on the first block kept for `rip` under `model` whose dependencies
    /// `matches` accepts; returns what `take` made of it. Counts a hit or a miss.
    pub fn find<T>(
        &self,
        rip: u64,
        model: CpuModel,
        mut matches: impl FnMut(&SharedBlock) -> bool,
        take: impl FnOnce(&SharedBlock) -> T,
    ) -> Option<T> {
        let mut blocks = self.blocks.borrow_mut();
        let known = blocks.get(&rip).map_or(0, Vec::len);
        let mut found = blocks.get(&rip).and_then(|l| l.iter().position(|b| b.model == model && matches(b)));
        if found.is_none() {
            // Another thread may have decoded it since.
            let fresh = self.shared.lock().blocks.get(&rip).cloned().unwrap_or_default();
            if fresh.len() > known {
                found = fresh.iter().skip(known).position(|b| b.model == model && matches(b)).map(|i| i + known);
                blocks.insert(rip, fresh);
            }
        }
        match found {
            Some(i) => {
                self.hits.set(self.hits.get() + 1);
                Some(take(&blocks[&rip][i]))
            }
            None => {
                self.misses.set(self.misses.get() + 1);
                None
            }
        }
    }

    /// Offers a block decoded at `rip` to the other guests.
    pub fn publish(&self, rip: u64, block: SharedBlock) {
        let mut store = self.shared.lock();
        let variants = store.blocks.entry(rip).or_default();
        if variants.len() < MAX_VARIANTS && !variants.iter().any(|b| b.model == block.model && b.deps == block.deps) {
            variants.push(Arc::new(block));
        }
        self.blocks.borrow_mut().insert(rip, variants.clone());
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<View>>> = const { RefCell::new(None) };
}

/// Restores the thread's previous store when dropped (see [`SharedCode::enter`]).
pub struct SharedCodeGuard {
    previous: Option<Rc<View>>,
}

impl Drop for SharedCodeGuard {
    fn drop(&mut self) {
        let previous = self.previous.take();
        CURRENT.with(|c| *c.borrow_mut() = previous);
    }
}

impl SharedCode {
    pub fn new() -> Arc<SharedCode> {
        Arc::new(SharedCode::default())
    }

    /// Makes the code caches created on this thread, until the guard is dropped, use
    /// this store.
    pub fn enter(self: &Arc<Self>) -> SharedCodeGuard {
        let view = Rc::new(View {
            shared: Arc::clone(self),
            blocks: RefCell::default(),
            hits: Cell::new(0),
            misses: Cell::new(0),
        });
        let previous = CURRENT.with(|c| c.borrow_mut().replace(view));
        SharedCodeGuard { previous }
    }

    /// This thread's view of the store code caches created on it now use, if any.
    pub(crate) fn current() -> Option<Rc<View>> {
        CURRENT.with(|c| c.borrow().clone())
    }

    /// Blocks shared and decoded so far, counted for the threads that have left the
    /// store (dropped their guard and the code caches they created).
    pub fn stats(&self) -> SharedCodeStats {
        SharedCodeStats { hits: self.hits.load(Ordering::Relaxed), misses: self.misses.load(Ordering::Relaxed) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Store> {
        // A panic while holding the lock cannot leave the maps half-updated in a way
        // that matters (entries are whole values): keep going.
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The index of `bytes` among the contents seen at page number `page`, added if new;
    /// `None` when that page has too many contents already.
    pub(crate) fn intern_page(&self, page: u64, bytes: &[u8]) -> Option<u32> {
        let mut store = self.lock();
        let images = store.pages.entry(page).or_default();
        if let Some(i) = images.iter().position(|img| **img == *bytes) {
            return Some(i as u32);
        }
        if images.len() >= MAX_PAGE_IMAGES {
            return None;
        }
        images.push(Arc::from(bytes));
        Some((images.len() - 1) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AddressSpace, Cpu, Exit, GuestAddress, Perm, PAGE_SIZE};

    const CODE: u64 = 0x1000;
    const STACK: u64 = 0x10_0000;

    /// A space with `pages` mapped read-and-execute from `CODE` on.
    fn space(pages: &[&[u8]]) -> AddressSpace {
        let mut s = AddressSpace::new(1 << 24).unwrap();
        for (k, bytes) in pages.iter().enumerate() {
            let at = GuestAddress(CODE + k as u64 * PAGE_SIZE);
            s.mem.map(at, PAGE_SIZE, Perm::RX).unwrap();
            s.mem.write_raw(at, bytes).unwrap();
        }
        s.mem.map(GuestAddress(STACK), PAGE_SIZE, Perm::RW).unwrap();
        s
    }

    fn run(space: &mut AddressSpace) -> Cpu {
        let mut cpu = Cpu::new();
        cpu.rip = CODE;
        cpu.gpr[crate::reg::RAX] = 1;
        cpu.gpr[crate::reg::RBX] = 2;
        cpu.gpr[crate::reg::RSP] = STACK + PAGE_SIZE;
        assert_eq!(cpu.run(space, 1_000), Exit::Halt);
        cpu
    }

    /// mov ecx, 5; l: dec ecx; jnz l; mov edx, 7; hlt
    const LOOP: &[u8] = &[0xb9, 5, 0, 0, 0, 0xff, 0xc9, 0x75, 0xfc, 0xba, 7, 0, 0, 0, 0xf4];

    /// Runs `f` with `store` entered on this thread (a view of its own, so its counts
    /// are in `store.stats()` afterwards).
    fn within<T>(store: &Arc<SharedCode>, f: impl FnOnce() -> T) -> T {
        let _in = store.enter();
        f()
    }

    #[test]
    fn a_second_guest_takes_the_blocks_the_first_decoded() {
        let store = SharedCode::new();
        let a = within(&store, || run(&mut space(&[LOOP])));
        let first = store.stats();
        assert_eq!(first.hits, 0, "{first:?}");
        assert!(first.misses >= 3, "{first:?}");
        // Another thread's view, then two guests on one view (the second finds the blocks
        // in the view itself).
        let b = std::thread::scope(|s| s.spawn(|| within(&store, || run(&mut space(&[LOOP])))).join().unwrap());
        let (c, d) = within(&store, || (run(&mut space(&[LOOP])), run(&mut space(&[LOOP]))));
        let after = store.stats();
        assert_eq!(after.misses, first.misses, "{after:?}");
        assert_eq!(after.hits, 3 * first.misses, "{after:?}");
        for other in [b, c, d] {
            assert_eq!((a.icount, a.gpr[crate::reg::RDX], a.rip), (other.icount, 7, other.rip));
        }
        // Without a store nothing is shared.
        run(&mut space(&[LOOP]));
        assert_eq!(store.stats(), after);
    }

    #[test]
    fn other_code_at_the_same_address_is_decoded_anew() {
        let store = SharedCode::new();
        // mov edx, 7; hlt / mov edx, 9; hlt
        within(&store, || {
            assert_eq!(run(&mut space(&[&[0xba, 7, 0, 0, 0, 0xf4]])).gpr[crate::reg::RDX], 7);
            assert_eq!(run(&mut space(&[&[0xba, 9, 0, 0, 0, 0xf4]])).gpr[crate::reg::RDX], 9);
        });
        assert_eq!(store.stats().hits, 0);
    }

    /// The flags `cmp` leaves are dead in the first guest (the jump target overwrites
    /// them) and read in the second (`pushfq` there): the second must not take the block
    /// whose `cmp` skips its flag writes, though the block's own page is the same.
    #[test]
    fn a_block_is_taken_only_where_its_successors_read_the_same_flags() {
        let store = SharedCode::new();
        let _in = store.enter();
        let mut head = vec![0x90; PAGE_SIZE as usize];
        // cmp rax, rbx; jmp over the next page (the page after the block's is a
        // dependency anyway: an instruction may cross into it)
        let jmp_rel = (2 * PAGE_SIZE - 8) as u32;
        head[..8].copy_from_slice(&[0x48, 0x39, 0xd8, 0xe9, 0, 0, 0, 0]);
        head[4..8].copy_from_slice(&jmp_rel.to_le_bytes());
        let writes: &[u8] = &[0x31, 0xd2, 0xf4]; // xor edx, edx; hlt
        let reads: &[u8] = &[0x9c, 0x5a, 0xf4]; // pushfq; pop rdx; hlt
        let filler = [0x90; 16];
        let flags_dead = run(&mut space(&[&head, &filler, writes]));
        assert_eq!(flags_dead.gpr[crate::reg::RDX], 0);
        let flags_read = run(&mut space(&[&head, &filler, reads]));
        // 1 - 2 borrows: CF, SF, AF and PF set.
        assert_eq!(flags_read.gpr[crate::reg::RDX] & 0xd5, 0x95, "{:#x}", flags_read.gpr[crate::reg::RDX]);
    }

    #[test]
    fn code_changed_after_sharing_runs_as_changed() {
        let store = SharedCode::new();
        let code: &[u8] = &[0xba, 7, 0, 0, 0, 0xf4];
        within(&store, || run(&mut space(&[code])));
        within(&store, || {
            let mut s = space(&[code]);
            assert_eq!(run(&mut s).gpr[crate::reg::RDX], 7);
            // As mprotect + a write + mprotect back would: the shared block must not run
            // again.
            s.mem.protect(GuestAddress(CODE), PAGE_SIZE, Perm::RW).unwrap();
            s.mem.write_raw(GuestAddress(CODE + 1), &[8]).unwrap();
            s.mem.protect(GuestAddress(CODE), PAGE_SIZE, Perm::RX).unwrap();
            assert_eq!(run(&mut s).gpr[crate::reg::RDX], 8);
            // And a fresh guest with the old code still gets 7.
            assert_eq!(run(&mut space(&[code])).gpr[crate::reg::RDX], 7);
        });
        assert!(store.stats().hits >= 2, "{:?}", store.stats());
    }

    #[test]
    fn blocks_on_writable_pages_are_not_shared() {
        let store = SharedCode::new();
        let rwx = || {
            let mut s = AddressSpace::new(1 << 24).unwrap();
            s.mem.map(GuestAddress(CODE), PAGE_SIZE, Perm::RWX).unwrap();
            s.mem.write_raw(GuestAddress(CODE), &[0xba, 7, 0, 0, 0, 0xf4]).unwrap();
            s
        };
        within(&store, || (run(&mut rwx()), run(&mut rwx())));
        assert_eq!(store.stats().hits, 0);
    }
}
