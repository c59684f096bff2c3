//! Guest memory: one linear host reservation per address space.
//!
//! The guest's addresses `[0, limit)` map one-to-one onto a `MAP_NORESERVE`
//! anonymous mapping, so translating a guest address is one addition. Beside it
//! sits a table with one permission byte per guest page, each followed by a byte of
//! what it allows for translated code (`OK_READ`...; itself a lazily populated
//! anonymous mapping). Every access checks `addr < limit`, that it
//! stays inside one page, and the page's permission byte; anything else takes a
//! cold path that handles page-crossing accesses and reports faults.
//!
//! Self-modifying code: pages from which the interpreter has decoded code carry
//! the internal `CODE` bit. The write fast path demands `WRITE` set and `CODE`
//! clear, so the first write to a page holding decoded code goes to the cold
//! path, which clears the bit and queues the page for the code cache to drop.
//!
//! Guard zone: the data is followed by `GUARD` bytes of `PROT_NONE` host memory (and
//! preceded by the permission table, see `HostMap`). Every host access the interpreter makes goes either through a Rust slice (bounds
//! checked) or through the fast paths' raw pointer `base + addr` after `addr < limit` and
//! an in-page check, so all touched bytes lie in `[base, base + limit + 16)`; a fast-path
//! check that went wrong would fault on a guard instead of touching other host memory. The
//! interpreter fuzz target relies on this (a guard hit is a crash, i.e. a finding).
//!
//! Fork is copy-on-write at page granularity, in software, so that the fast paths keep
//! their cost (they test the same bits as before):
//! - At fork the parent's resident pages are *lent* to the child through a [`Frozen`]
//!   image: each such page gets `SHARED` in the parent (its `WRITE` bit moved to
//!   `WAS_WRITE`, so reads and execution stay on the fast paths and writes take the cold
//!   path) and `LAZY` in the child (no access bits: every access takes the cold path), with
//!   the page's source and real permissions in the child's lazy table.
//! - The child *materialises* a lazy page on its first access: one page copy from the
//!   parent's memory (unchanged since the fork) or from the copy the parent saved.
//! - Before anything changes a `SHARED` page (a guest write, a raw write, map, unmap,
//!   protect), the parent saves a copy into each frozen image whose readers still need the
//!   page, then the page gets its own bits back.
//! - A space forked while it still has lazy pages hands the same sources on; a space that
//!   dies first saves what its readers still need and detaches from them.
//!
//! Debugger watches (`watch_arm`/`watch_disarm`, around one instruction at a time) reuse
//! the same trick: the watched pages lose their `READ` and `WRITE` bits, so every guest
//! access to them takes the cold paths, which note those that overlap a watched range.
//! Unarmed, the cold paths pay one `Option` test.
//!
//! So fork costs a page-table walk (`mincore`) and a byte per page instead of a copy of
//! every resident page, and idle children share their parent's pages. All bookkeeping lives
//! on the cold paths; a page with `LAZY` or `SHARED` is resolved before any slow-path check.
//!
//! Reuse: a dropped space's reservation is reset and kept in a small per-thread pool for
//! the next space of the same size (a guest kernel makes one per exec and fork; a fresh
//! 64 GiB reservation, its first-touch page faults and its unmapping were most of the cost
//! of a short-lived process). Exactness rests on one invariant: outside the mapped regions
//! every data byte reads as zero and every table byte is zero (unmapping zeroes both, so
//! mapping a range only zeroes the parts that were mapped). A reset therefore zeroes only
//! the pages of the regions still mapped: their table bytes, and their data, in place for
//! the pages the host has resident (up to a budget, so that they stay resident for the next
//! user) and by `madvise` for the rest. A reused reservation is then indistinguishable from
//! a fresh one: all zero, no permissions, no code marks (decoded code lives in the code
//! cache of the `AddressSpace`, which is never reused).

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};

use crate::exec::Trap;

/// Size of a guest page.
pub const PAGE_SIZE: u64 = 4096;
const PAGE_SHIFT: u32 = 12;

/// Largest address-space size accepted (the x86-64 user half).
pub const MAX_LIMIT: u64 = 1 << 47;

/// A guest virtual address. Arithmetic is checked: it never wraps silently.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct GuestAddress(pub u64);

impl GuestAddress {
    pub const fn raw(self) -> u64 {
        self.0
    }
    pub fn checked_add(self, n: u64) -> Option<GuestAddress> {
        self.0.checked_add(n).map(GuestAddress)
    }
    pub fn checked_sub(self, n: u64) -> Option<GuestAddress> {
        self.0.checked_sub(n).map(GuestAddress)
    }
    pub const fn is_page_aligned(self) -> bool {
        self.0.is_multiple_of(PAGE_SIZE)
    }
    pub const fn page_down(self) -> GuestAddress {
        GuestAddress(self.0 & !(PAGE_SIZE - 1))
    }
    /// Rounds up to a page boundary; `None` on overflow.
    pub fn page_up(self) -> Option<GuestAddress> {
        self.0.checked_add(PAGE_SIZE - 1).map(|a| GuestAddress(a & !(PAGE_SIZE - 1)))
    }
}

impl fmt::Debug for GuestAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

impl fmt::Display for GuestAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// Page permissions.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Perm(u8);

impl Perm {
    pub const NONE: Perm = Perm(0);
    pub const READ: Perm = Perm(1);
    pub const WRITE: Perm = Perm(2);
    pub const EXEC: Perm = Perm(4);
    pub const RW: Perm = Perm(3);
    pub const RX: Perm = Perm(5);
    pub const RWX: Perm = Perm(7);

    pub const fn bits(self) -> u8 {
        self.0
    }
    pub const fn from_bits(bits: u8) -> Perm {
        Perm(bits & 7)
    }
    pub const fn contains(self, other: Perm) -> bool {
        self.0 & other.0 == other.0
    }
    pub const fn union(self, other: Perm) -> Perm {
        Perm(self.0 | other.0)
    }
}

impl fmt::Debug for Perm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = |bit: u8, ch: char| if self.0 & bit != 0 { ch } else { '-' };
        write!(f, "{}{}{}", c(1, 'r'), c(2, 'w'), c(4, 'x'))
    }
}

/// Permission-table bits. `MAPPED` distinguishes a mapped `PROT_NONE` page
/// from a hole; `CODE` marks pages the code cache has decoded from.
pub(crate) const P_READ: u8 = 1;
pub(crate) const P_WRITE: u8 = 2;
pub(crate) const P_EXEC: u8 = 4;
pub(crate) const P_CODE: u8 = 8;
pub(crate) const P_MAPPED: u8 = 16;
/// Copy-on-write: this page is lent to a forked space (see the module note); its `WRITE`
/// bit is kept in `P_WAS_WRITE` so that writes take the cold path.
const P_SHARED: u8 = 32;
const P_WAS_WRITE: u8 = 64;
/// Copy-on-write: this page's contents are still in a [`Frozen`] source (no access bits
/// set; the real permissions are in the lazy table).
const P_LAZY: u8 = 128;

/// Bits of a page's second table byte (`Memory::set_perm_byte` keeps them), what
/// translated code tests (`jit`): the page allows a read (`READ`), a write (`WRITE`
/// without `CODE`), both; then the same for the page and the next one together (an
/// access across their edge).
pub(crate) const OK_READ: u8 = 1;
pub(crate) const OK_WRITE: u8 = 2;
pub(crate) const OK_RW: u8 = 4;
pub(crate) const OK_READ2: u8 = 8;
pub(crate) const OK_WRITE2: u8 = 16;
pub(crate) const OK_RW2: u8 = 32;

/// The `OK_READ`, `OK_WRITE`, `OK_RW` bits of permission byte `p` (as `try_read`'s and
/// `try_write`'s tests).
fn ok_bits(p: u8) -> u8 {
    let r = p & P_READ != 0;
    let w = p & (P_WRITE | P_CODE) == P_WRITE;
    let bit = |on: bool, b: u8| if on { b } else { 0 };
    bit(r, OK_READ) | bit(w, OK_WRITE) | bit(r && w, OK_RW)
}

/// The second table byte of a page whose permission byte is `p`, the next page's `next`.
fn ok_byte(p: u8, next: u8) -> u8 {
    const { assert!(OK_READ << 3 == OK_READ2 && OK_WRITE << 3 == OK_WRITE2 && OK_RW << 3 == OK_RW2) };
    let (a, b) = (ok_bits(p), ok_bits(next));
    a | (a & b) << 3
}

/// Host `PROT_NONE` bytes after the guest's data.
const GUARD: usize = 64 << 10;
const PAGE: usize = PAGE_SIZE as usize;

/// The host reservation of one space, lazily populated and never swap-reserved:
/// `[permission table | data | guard]`. The table comes first so that the guard after the
/// data is the only bound a wrong fast-path check could run into (addresses only grow
/// from `base`; a table index is below `limit / PAGE_SIZE` whenever the address is below
/// `limit`).
struct HostMap {
    start: *mut u8,
    total: usize,
    /// Size of the table part (page aligned): the data starts there.
    table: usize,
    data_len: usize,
    /// Set by [`HostMap::reset`]: every table and data byte reads as zero again, so the
    /// reservation goes to this thread's pool instead of being unmapped.
    reset: bool,
}

/// At most this many reset reservations are kept per thread (a fuzzed guest runs up to
/// a dozen processes at once).
const POOL_MAX: usize = 16;
/// At most this many resident data bytes a reset reservation keeps (zeroed in place, so
/// the next space using them takes no page faults there); the rest is given back.
const KEEP_RESIDENT: usize = 2 << 20;
/// A page of zeros, to compare pages with.
static ZERO_PAGE: [u8; PAGE] = [0; PAGE];
/// Regions larger than this are given back whole at a reset (no residency scan).
const SCAN_MAX: usize = 16 << 20;
/// Regions at most this far apart share one residency scan at a reset.
const SCAN_GAP: usize = 1 << 20;

thread_local! {
    /// Reservations of dropped spaces, reset, for the next spaces of the same size.
    static POOL: RefCell<Vec<HostMap>> = const { RefCell::new(Vec::new()) };
}

impl HostMap {
    fn new(data_len: usize) -> Result<HostMap, MemError> {
        let pooled = POOL.try_with(|pool| {
            let mut pool = pool.borrow_mut();
            let i = pool.iter().position(|m| m.data_len == data_len)?;
            Some(pool.swap_remove(i))
        });
        if let Ok(Some(map)) = pooled {
            return Ok(map);
        }
        // Two bytes per page: the permission byte, then the bits translated code tests.
        let table = (2 * (data_len / PAGE)).div_ceil(PAGE) * PAGE;
        let total = table
            .checked_add(data_len)
            .and_then(|t| t.checked_add(GUARD))
            .ok_or(MemError::BadLimit(data_len as u64))?;
        // Miri only emulates plain private anonymous mappings (and no `mprotect`,
        // `madvise` or `mincore`): under Miri the mapping is swap-reserved and has no guard,
        // pages are zeroed by hand, and every page counts as resident.
        let noreserve = if cfg!(miri) { 0 } else { libc::MAP_NORESERVE };
        // SAFETY: a fresh anonymous mapping at an address of the kernel's choice; nothing
        // else refers to it.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                total,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | noreserve,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(MemError::Host(std::io::Error::last_os_error()));
        }
        let map = HostMap { start: p.cast(), total, table, data_len, reset: false };
        if cfg!(miri) {
            return Ok(map);
        }
        // SAFETY: the guard lies inside the mapping just made, after the data.
        let rc = unsafe { libc::mprotect(map.start.add(table + data_len).cast(), GUARD, libc::PROT_NONE) };
        if rc != 0 {
            return Err(MemError::Host(std::io::Error::last_os_error()));
        }
        Ok(map)
    }

    fn perms(&self) -> *mut u8 {
        self.start
    }

    fn data(&self) -> *mut u8 {
        // SAFETY: `table` is inside the mapping.
        unsafe { self.start.add(self.table) }
    }

    /// Makes data bytes `[off, off + len)` read back as zero (the host frees the pages).
    fn zero(&self, off: usize, len: usize) -> Result<(), MemError> {
        debug_assert!(off + len <= self.data_len);
        if cfg!(miri) {
            // SAFETY: the range lies inside the data part, and no reference into it is
            // alive (see below).
            unsafe { self.data().add(off).write_bytes(0, len) };
            return Ok(());
        }
        self.advise(self.table + off, self.table + off + len)
    }

    /// Makes every table and data byte read as zero again, knowing that only the pages of
    /// `regions` can hold anything (every other page of a space reads as zero and has a
    /// zero table byte: unmapping zeroes both), and marks the reservation for reuse. Table
    /// bytes and up to [`KEEP_RESIDENT`] resident data bytes are zeroed in place (they stay
    /// resident for the next space), the rest is given back to the host. On a host error
    /// the reservation is simply not reused.
    fn reset(&mut self, regions: &BTreeMap<u64, u64>) {
        let regions: Vec<(usize, usize)> = regions.iter().map(|(&s, &e)| (s as usize, e as usize)).collect();
        self.reset = self.zero_regions(&regions).is_ok();
    }

    fn zero_regions(&self, regions: &[(usize, usize)]) -> Result<(), MemError> {
        for &(s, e) in regions {
            // Table bytes: in place when few, else the table pages covering them go back
            // (every table byte ends zero, so rounding out to whole pages is harmless).
            let (ps, pe) = (2 * (s / PAGE), 2 * (e / PAGE));
            if pe - ps <= 16 * PAGE || cfg!(miri) {
                // SAFETY: `[ps, pe)` are table bytes of pages below `data_len`, inside the
                // table part; no reference into the table exists (see `set_perm_byte`).
                unsafe { self.perms().add(ps).write_bytes(0, pe - ps) };
            } else {
                self.advise(ps / PAGE * PAGE, pe.div_ceil(PAGE) * PAGE)?;
            }
        }
        // Data: the pages left non-zero are zeroed in place while the budget lasts (they
        // stay resident: the next space of the same layout is likely to use them again),
        // every other resident page goes back to the host, so that a reused reservation
        // holds no more resident pages than its last user wrote (forks lend, and resets
        // scan, every resident page: zero pages kept from earlier users piled up and made
        // both ever slower). Everything goes back when swapped pages could hide from
        // `mincore`.
        let scan = !host_may_swap();
        let mut kept = 0usize;
        let mut resident = Vec::new();
        for group in scan_groups(regions) {
            let (start, end) = (regions[group.start].0, regions[group.end - 1].1);
            let scanned = scan && end - start <= SCAN_MAX && self.resident(start, end, &mut resident);
            for &(s, e) in &regions[group] {
                if !scanned {
                    self.zero(s, e - s)?;
                    continue;
                }
                // The start of the pages going back to the host (from a resident page not
                // kept to the next kept one).
                let mut back = None;
                for off in (s..e).step_by(PAGE) {
                    if resident[(off - start) / PAGE] & 1 == 0 {
                        continue; // never touched: reads as zero (no swap)
                    }
                    // SAFETY: one page inside the data part; no reference into it exists
                    // (`Memory` is being dropped).
                    let page = unsafe { std::slice::from_raw_parts_mut(self.data().add(off), PAGE) };
                    // One `memcmp`, not a loop over the bytes (see the fuzz harness).
                    if kept < KEEP_RESIDENT && page != &ZERO_PAGE[..] {
                        page.fill(0);
                        kept += PAGE;
                        if let Some(b) = back.take() {
                            self.zero(b, off - b)?;
                        }
                    } else if back.is_none() {
                        back = Some(off);
                    }
                }
                if let Some(b) = back {
                    self.zero(b, e - b)?;
                }
            }
        }
        Ok(())
    }

    /// Which pages of data bytes `[start, end)` (page aligned) the host has resident: bit 0
    /// of `out[i]` for page `i` (mincore(2)). False when that is unknown (under Miri, or a
    /// host error).
    fn resident(&self, start: usize, end: usize, out: &mut Vec<u8>) -> bool {
        out.clear();
        out.resize((end - start) / PAGE, 0);
        // SAFETY: `[start, end)` lies inside the data part, and `out` has one byte per page
        // of it, as mincore(2) requires.
        !cfg!(miri) && unsafe { libc::mincore(self.data().add(start).cast(), end - start, out.as_mut_ptr()) } == 0
    }

    /// `madvise(MADV_DONTNEED)` on bytes `[start, end)` of the reservation (page aligned,
    /// inside the table and data parts): they read back as zero.
    fn advise(&self, start: usize, end: usize) -> Result<(), MemError> {
        debug_assert!(start.is_multiple_of(PAGE) && end <= self.table + self.data_len);
        // SAFETY: the range lies inside the mapping; MADV_DONTNEED on a private anonymous
        // mapping only makes the pages read back as zero. Callers hold no reference into
        // the range (every access to guest bytes and table goes through `Memory`).
        let rc = unsafe { libc::madvise(self.start.add(start).cast(), end - start, libc::MADV_DONTNEED) };
        if rc != 0 {
            return Err(MemError::Host(std::io::Error::last_os_error()));
        }
        Ok(())
    }
}

/// Splits `regions` (ascending, in bytes) into runs of regions close together (at most
/// [`SCAN_GAP`] apart, [`SCAN_MAX`] long together unless alone), each scanned with one
/// `mincore` (a program's segments), as index ranges into `regions`.
fn scan_groups(regions: &[(usize, usize)]) -> Vec<std::ops::Range<usize>> {
    let mut groups = Vec::new();
    let mut i = 0;
    while i < regions.len() {
        let (start, mut end, mut j) = (regions[i].0, regions[i].1, i + 1);
        while j < regions.len() && regions[j].0 - end <= SCAN_GAP && regions[j].1 - start <= SCAN_MAX {
            end = regions[j].1;
            j += 1;
        }
        groups.push(i..j);
        i = j;
    }
    groups
}

impl Drop for HostMap {
    fn drop(&mut self) {
        if self.reset {
            let spare = HostMap { reset: false, ..*self };
            // Into this thread's pool; when it is full (or the thread is ending) `spare`
            // is dropped here instead, which unmaps the reservation.
            let _ = POOL.try_with(move |pool| {
                let mut pool = pool.borrow_mut();
                if pool.len() < POOL_MAX {
                    pool.push(spare);
                }
            });
            return;
        }
        // SAFETY: unmapping the whole mapping made by `new`; `Memory` hands out no
        // reference that outlives it.
        unsafe { libc::munmap(self.start.cast(), self.total) };
    }
}

/// The frozen image of one fork's parent: where the pages its children still read live.
struct Frozen {
    inner: Mutex<FrozenInner>,
}

struct FrozenInner {
    /// The source space's data (`None` once it died: then `saved` holds every page needed).
    source: Option<*const u8>,
    /// Copies of pages the source changed (or dropped) while readers still needed them.
    saved: HashMap<u64, Box<[u8]>>,
    /// How many spaces still have to materialise each page.
    readers: HashMap<u64, u32>,
}

// SAFETY: `source` points into the source space's data mapping, which lives until that
// space detaches (under this mutex) in its `Drop`; the pages read through it are the
// source's `SHARED` pages, which the source does not change before saving them here, also
// under this mutex. Nothing else is reachable through the pointer.
unsafe impl Send for FrozenInner {}

impl Frozen {
    fn lock(&self) -> std::sync::MutexGuard<'_, FrozenInner> {
        // A panic while holding the lock leaves consistent maps (each update is one insert
        // or remove), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A lazy page: its source and its real permission bits.
#[derive(Clone)]
struct LazyPage {
    src: Arc<Frozen>,
    perm: u8,
}

/// What an access needs resolved first (see `Memory::prepare`).
#[derive(Clone, Copy)]
enum Prepare {
    Read,
    Write,
    Raw,
}

/// The table byte of page byte `p` once it is lent: `WRITE` moves to `WAS_WRITE`.
fn shared_bits(p: u8) -> u8 {
    let w = if p & P_WRITE != 0 { P_WAS_WRITE } else { 0 };
    (p & !(P_WRITE | P_WAS_WRITE)) | P_SHARED | w
}

/// One reader of `page` is done with it (copied it in or gave it up).
fn release_reader(f: &mut FrozenInner, page: u64) {
    if let Some(n) = f.readers.get_mut(&page) {
        *n -= 1;
        if *n == 0 {
            f.readers.remove(&page);
            f.saved.remove(&page);
        }
    }
}

/// Whether the host may have swapped guest pages out, so that `mincore` no longer tells
/// untouched pages from swapped ones (read once: any active swap area, or no answer).
fn host_may_swap() -> bool {
    static SWAP: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if cfg!(miri) {
        return true; // isolated: no /proc
    }
    *SWAP.get_or_init(|| std::fs::read_to_string("/proc/swaps").map_or(true, |s| s.lines().count() > 1))
}

/// Copy-on-write bookkeeping of one space (empty unless it forked or was forked).
#[derive(Default)]
struct Cow {
    /// Pages whose contents are still in a source.
    lazy: HashMap<u64, LazyPage>,
    /// Frozen images of this space that readers may still need pages from.
    lent: Vec<Arc<Frozen>>,
}

/// The kind of access that faulted.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum Access {
    Read,
    Write,
    Execute,
}

/// Where and how the last access faulted.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Fault {
    pub addr: u64,
    pub access: Access,
}

/// Errors of the memory API.
#[derive(Debug, thiserror::Error)]
pub enum MemError {
    #[error("address space size {0:#x} must be a non-zero multiple of the page size and at most 2^47")]
    BadLimit(u64),
    #[error("range {addr:#x}+{len:#x} is not page aligned")]
    Unaligned { addr: u64, len: u64 },
    #[error("range {addr:#x}+{len:#x} lies outside the address space")]
    OutOfRange { addr: u64, len: u64 },
    #[error("{access:?} fault at {addr:#x}")]
    Fault { addr: u64, access: Access },
    #[error("host mapping failed: {0}")]
    Host(#[from] std::io::Error),
}

/// A guest address space's memory.
pub struct Memory {
    /// Owns the data and the permission table (accessed through `base` and `perm_base`).
    data: HostMap,
    base: *mut u8,
    perm_base: *mut u8,
    limit: u64,
    /// Mapped ranges, `start -> end` in bytes, page aligned and coalesced.
    regions: BTreeMap<u64, u64>,
    /// The last faulting access (valid after a `Trap::PageFault`).
    pub(crate) fault: Fault,
    /// Pages whose `CODE` bit a write cleared; the code cache drops them.
    pub(crate) dirty_code: Vec<u64>,
    /// Copy-on-write state (cold paths only).
    cow: RefCell<Cow>,
    /// A debugger's watched ranges while armed (cold paths only; see [`Memory::watch_arm`]).
    watch: Option<Box<Watching>>,
}

/// One access a watch saw: the access's bytes `[addr, addr + len)` overlap a watched range.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct WatchHit {
    pub addr: u64,
    pub len: u64,
    pub access: Access,
}

/// An armed watch: the pages overlapping its ranges lost their `READ` and `WRITE` bits
/// (kept here), so every guest access to them takes the cold paths, which note the ones
/// that overlap a range.
struct Watching {
    ranges: Vec<(u64, u64)>,
    /// Pages stripped, with the bits taken from each.
    stripped: Vec<(u64, u8)>,
    hits: Vec<WatchHit>,
}

// SAFETY: `Memory` exclusively owns both mappings its raw pointers point into; the only
// memory it shares is through `Frozen` images, whose accesses are synchronised by their
// mutex (see `FrozenInner`), so moving it to another thread is sound.
unsafe impl Send for Memory {}

impl fmt::Debug for Memory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Memory").field("limit", &self.limit).field("regions", &self.regions).finish()
    }
}

impl Memory {
    /// Reserves an address space of `limit` bytes (nothing is mapped yet).
    pub fn new(limit: u64) -> Result<Memory, MemError> {
        if limit == 0 || !limit.is_multiple_of(PAGE_SIZE) || limit > MAX_LIMIT {
            return Err(MemError::BadLimit(limit));
        }
        let data = HostMap::new(limit as usize)?;
        let base = data.data();
        let perm_base = data.perms();
        Ok(Memory {
            data,
            base,
            perm_base,
            limit,
            regions: BTreeMap::new(),
            fault: Fault { addr: 0, access: Access::Read },
            dirty_code: Vec::new(),
            cow: RefCell::new(Cow::default()),
            watch: None,
        })
    }

    /// Size of the address space: valid addresses are `[0, limit)`.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// What translated code needs to check and make guest accesses itself (see
    /// `jit`): the data base, the permission table and the limit. The code applies the
    /// same tests as `try_read`/`try_write` and leaves every other case to them.
    pub(crate) fn jit_view(&self) -> (*mut u8, *const u8, u64) {
        (self.base, self.perm_base, self.limit)
    }

    fn check_range(&self, addr: GuestAddress, len: u64) -> Result<(u64, u64), MemError> {
        let (a, l) = (addr.0, len);
        if a % PAGE_SIZE != 0 || l % PAGE_SIZE != 0 {
            return Err(MemError::Unaligned { addr: a, len: l });
        }
        match a.checked_add(l) {
            Some(end) if end <= self.limit => Ok((a, end)),
            _ => Err(MemError::OutOfRange { addr: a, len: l }),
        }
    }

    #[inline(always)]
    fn perm_byte(&self, page: u64) -> u8 {
        debug_assert!(page < self.limit >> PAGE_SHIFT);
        // SAFETY: callers pass a page number below `limit / PAGE_SIZE`; the permission
        // mapping has two bytes per page.
        unsafe { *self.perm_base.add(2 * page as usize) }
    }

    /// Sets a page's permission byte. Takes `&self` because copy-on-write changes bytes
    /// on read paths too; the table is only ever accessed through `perm_base`, never
    /// through a reference, and `Memory` is not `Sync`.
    /// Also keeps the second bytes (`OK_READ`...) of the page and of the one before it.
    fn set_perm_byte(&self, page: u64, v: u8) {
        let pages = self.limit >> PAGE_SHIFT;
        assert!(page < pages);
        let next = if page + 1 < pages { self.perm_byte(page + 1) } else { 0 };
        let at = 2 * page as usize;
        // SAFETY: the page number is below the table's length of two bytes per page
        // (checked above), so are `page - 1` and its bytes.
        unsafe {
            *self.perm_base.add(at) = v;
            *self.perm_base.add(at + 1) = ok_byte(v, next);
            if page > 0 {
                *self.perm_base.add(at - 1) = ok_byte(*self.perm_base.add(at - 2), v);
            }
        }
    }

    /// Guest bytes `[addr, addr + len)`; callers checked the range lies below `limit`.
    fn bytes(&self, addr: u64, len: usize) -> &[u8] {
        assert!(addr.checked_add(len as u64).is_some_and(|e| e <= self.limit));
        // SAFETY: inside the data mapping (checked above); pages handed out are never lazy
        // (callers resolve copy-on-write first), so no write through `&self` touches them.
        unsafe { std::slice::from_raw_parts(self.base.add(addr as usize), len) }
    }

    /// Guest bytes `[addr, addr + len)`, writable; see `bytes`.
    fn bytes_mut(&mut self, addr: u64, len: usize) -> &mut [u8] {
        assert!(addr.checked_add(len as u64).is_some_and(|e| e <= self.limit));
        // SAFETY: inside the data mapping, and `&mut self` excludes every other reference.
        unsafe { std::slice::from_raw_parts_mut(self.base.add(addr as usize), len) }
    }

    /// Marks a page whose code bit is being dropped.
    fn note_code_page(&mut self, page: u64) {
        let p = self.perm_byte(page);
        if p & P_CODE != 0 {
            self.set_perm_byte(page, p & !P_CODE);
            self.dirty_code.push(page);
        }
    }

    /// Maps `[addr, addr+len)` with `perm`, replacing whatever was there; the
    /// new pages read as zero.
    pub fn map(&mut self, addr: GuestAddress, len: u64, perm: Perm) -> Result<(), MemError> {
        let (start, end) = self.check_range(addr, len)?;
        if start == end {
            return Ok(());
        }
        // Only the parts mapped before can hold anything: unmapped pages read as zero.
        let mapped = self.mapped_parts(start, end);
        for &(s, e) in &mapped {
            self.drop_cow(s, e);
            self.zero_pages(s, e)?;
        }
        for page in start >> PAGE_SHIFT..end >> PAGE_SHIFT {
            self.note_code_page(page);
            self.set_perm_byte(page, P_MAPPED | perm.bits());
        }
        self.insert_region(start, end);
        Ok(())
    }

    /// Unmaps `[addr, addr+len)`; unmapped parts of the range are ignored.
    pub fn unmap(&mut self, addr: GuestAddress, len: u64) -> Result<(), MemError> {
        let (start, end) = self.check_range(addr, len)?;
        if start == end {
            return Ok(());
        }
        // Only the mapped parts hold anything to undo (permission bytes are zero outside the
        // regions): a guest may unmap a huge range holding a few pages.
        for (s, e) in self.mapped_parts(start, end) {
            self.drop_cow(s, e);
            self.zero_pages(s, e)?;
            for page in s >> PAGE_SHIFT..e >> PAGE_SHIFT {
                self.note_code_page(page);
                self.set_perm_byte(page, 0);
            }
        }
        self.remove_region(start, end);
        Ok(())
    }

    /// Changes the permissions of `[addr, addr+len)`, which must be mapped.
    pub fn protect(&mut self, addr: GuestAddress, len: u64, perm: Perm) -> Result<(), MemError> {
        let (start, end) = self.check_range(addr, len)?;
        if !self.is_mapped(GuestAddress(start), end - start) {
            return Err(MemError::Fault { addr: start, access: Access::Read });
        }
        for page in start >> PAGE_SHIFT..end >> PAGE_SHIFT {
            self.note_code_page(page);
            let p = self.perm_byte(page);
            if p & P_LAZY != 0 {
                // Still in its source: only the permissions it gets once copied change.
                if let Some(lazy) = self.cow.get_mut().lazy.get_mut(&page) {
                    lazy.perm = perm.bits();
                }
            } else if p & P_SHARED != 0 {
                self.set_perm_byte(page, shared_bits(P_MAPPED | perm.bits()));
            } else {
                self.set_perm_byte(page, P_MAPPED | perm.bits());
            }
        }
        Ok(())
    }

    /// How many pages of `[addr, addr + len)` the host holds in memory (mincore(2)), for
    /// tests and diagnostics of what an operation touched; unlike the process's resident
    /// size it is not moved by other threads. `None` when that is unknown (under Miri, a
    /// host error) or the range is not page aligned inside the limit.
    pub fn resident_pages(&self, addr: GuestAddress, len: u64) -> Option<usize> {
        let end = addr.0.checked_add(len)?;
        if end > self.limit || !addr.0.is_multiple_of(PAGE_SIZE) || !len.is_multiple_of(PAGE_SIZE) {
            return None;
        }
        let mut out = Vec::new();
        self.data.resident(addr.0 as usize, end as usize, &mut out).then(|| out.iter().filter(|&&r| r & 1 != 0).count())
    }

    /// True when every page of `[addr, addr+len)` is mapped.
    pub fn is_mapped(&self, addr: GuestAddress, len: u64) -> bool {
        let Some(end) = addr.0.checked_add(len) else {
            return false;
        };
        if end > self.limit {
            return false;
        }
        if len == 0 {
            return true;
        }
        (addr.0 >> PAGE_SHIFT..=(end - 1) >> PAGE_SHIFT).all(|p| self.perm_byte(p) & P_MAPPED != 0)
    }

    /// The permissions of the page holding `addr`, or `None` if unmapped.
    pub fn perm_at(&self, addr: GuestAddress) -> Option<Perm> {
        if addr.0 >= self.limit {
            return None;
        }
        let page = addr.0 >> PAGE_SHIFT;
        let p = self.perm_byte(page);
        (p & P_MAPPED != 0).then(|| Perm::from_bits(self.real_perm(page, p)))
    }

    /// Mapped ranges as `(start, end)` pairs, ascending.
    pub fn regions(&self) -> impl Iterator<Item = (GuestAddress, GuestAddress)> + '_ {
        self.regions.iter().map(|(&s, &e)| (GuestAddress(s), GuestAddress(e)))
    }

    /// Finds `len` bytes of unmapped space at or above `hint`, page aligned.
    pub fn find_free(&self, hint: GuestAddress, len: u64) -> Option<GuestAddress> {
        let len = GuestAddress(len).page_up()?.0;
        let mut cand = hint.page_up()?.0.max(PAGE_SIZE);
        for (&s, &e) in self.regions.range(..) {
            if e <= cand {
                continue;
            }
            if s >= cand.checked_add(len)? {
                break;
            }
            cand = e;
        }
        (cand.checked_add(len)? <= self.limit).then_some(GuestAddress(cand))
    }

    /// The mapped parts of `[start, end)`, descending. Every other page reads as zero and
    /// has a zero table byte (a fresh reservation is all zero, unmapping zeroes both).
    fn mapped_parts(&self, start: u64, end: u64) -> Vec<(u64, u64)> {
        self.regions
            .range(..end)
            .rev()
            .take_while(|(_, &e)| e > start)
            .map(|(&s, &e)| (s.max(start), e.min(end)))
            .collect()
    }

    fn insert_region(&mut self, start: u64, end: u64) {
        self.remove_region(start, end);
        let (mut s, mut e) = (start, end);
        if let Some((&ps, &pe)) = self.regions.range(..=s).next_back() {
            if pe == s {
                s = ps;
                self.regions.remove(&ps);
            }
        }
        if let Some(&ne) = self.regions.get(&e) {
            self.regions.remove(&e);
            e = ne;
        }
        self.regions.insert(s, e);
    }

    fn remove_region(&mut self, start: u64, end: u64) {
        let overlapping: Vec<(u64, u64)> =
            self.regions.range(..end).rev().take_while(|(_, &e)| e > start).map(|(&s, &e)| (s, e)).collect();
        for (s, e) in overlapping {
            self.regions.remove(&s);
            if s < start {
                self.regions.insert(s, start);
            }
            if e > end {
                self.regions.insert(end, e);
            }
        }
    }

    fn zero_pages(&mut self, start: u64, end: u64) -> Result<(), MemError> {
        // `&mut self`: no reference into guest memory is alive.
        self.data.zero(start as usize, (end - start) as usize)
    }

    /// Copies this address space: every mapped page with its permissions, copy-on-write
    /// (see the module note). Only pages the host has resident are shared (the rest read
    /// as zero in both), so forking a process with a large, mostly untouched heap is cheap;
    /// when the host may have swapped pages out, every mapped page is shared instead.
    pub fn fork(&self) -> Result<Memory, MemError> {
        let child = Memory::new(self.limit)?;
        let frozen = Arc::new(Frozen {
            inner: Mutex::new(FrozenInner {
                source: Some(self.base.cast_const()),
                saved: HashMap::new(),
                readers: HashMap::new(),
            }),
        });
        let mut lent = frozen.lock();
        let cow = self.cow.borrow();
        let mut child_cow = child.cow.borrow_mut();
        let swap = host_may_swap();
        let mut resident = Vec::new();
        let regions: Vec<(usize, usize)> = self.regions.iter().map(|(&s, &e)| (s as usize, e as usize)).collect();
        for group in scan_groups(&regions) {
            let start = regions[group.start].0;
            let all = swap || !self.data.resident(start, regions[group.end - 1].1, &mut resident);
            for page in regions[group].iter().flat_map(|&(s, e)| s / PAGE..e / PAGE) {
                let i = page - start / PAGE;
                let page = page as u64;
                let p = self.perm_byte(page);
                if p & P_LAZY != 0 {
                    // Not copied here yet either: the child reads the same source.
                    if let Some(lazy) = cow.lazy.get(&page) {
                        *lazy.src.lock().readers.entry(page).or_insert(0) += 1;
                        child_cow.lazy.insert(page, lazy.clone());
                        child.set_perm_byte(page, P_MAPPED | P_LAZY);
                    }
                } else if all || resident[i] & 1 != 0 {
                    lent.readers.insert(page, 1);
                    child_cow.lazy.insert(page, LazyPage { src: frozen.clone(), perm: self.real_perm(page, p) });
                    child.set_perm_byte(page, P_MAPPED | P_LAZY);
                    if p & P_SHARED == 0 {
                        self.set_perm_byte(page, shared_bits(p));
                    }
                } else {
                    child.set_perm_byte(page, P_MAPPED | self.real_perm(page, p));
                }
            }
        }
        let lends = !lent.readers.is_empty();
        drop(lent);
        drop(cow);
        drop(child_cow);
        if lends {
            let mut cow = self.cow.borrow_mut();
            cow.lent.retain(|f| !f.lock().readers.is_empty());
            cow.lent.push(frozen);
        }
        let mut child = child;
        child.regions = self.regions.clone();
        Ok(child)
    }

    /// The real `rwx` bits of a mapped page whose table byte is `p`.
    fn real_perm(&self, page: u64, p: u8) -> u8 {
        if p & P_LAZY != 0 {
            self.cow.borrow().lazy.get(&page).map_or(0, |l| l.perm)
        } else if p & P_SHARED != 0 {
            (p & (P_READ | P_EXEC)) | if p & P_WAS_WRITE != 0 { P_WRITE } else { 0 }
        } else {
            p & (P_READ | P_WRITE | P_EXEC)
        }
    }

    /// Resolves copy-on-write for the pages of `[addr, addr + len)` (clipped to the space)
    /// before an access: lazy pages are copied in; for `Cow::Write`, shared pages the guest
    /// may write get their own bits back; for `Cow::Raw`, every shared page does.
    fn prepare(&self, addr: u64, len: u64, mode: Prepare) {
        if len == 0 || addr >= self.limit {
            return;
        }
        let end = addr.saturating_add(len).min(self.limit);
        let unshare = match mode {
            Prepare::Read => 0,
            Prepare::Write => P_WAS_WRITE,
            Prepare::Raw => P_SHARED,
        };
        for page in addr >> PAGE_SHIFT..=(end - 1) >> PAGE_SHIFT {
            let p = self.perm_byte(page);
            if p & P_LAZY != 0 {
                self.materialize(page);
            }
            if self.perm_byte(page) & unshare != 0 {
                self.unshare(page);
            }
        }
    }

    /// Copies a lazy page in from its source.
    #[cold]
    #[inline(never)]
    fn materialize(&self, page: u64) {
        let Some(lazy) = self.cow.borrow_mut().lazy.remove(&page) else {
            // Every LAZY page has an entry; should one be missing, the page reads as zero.
            self.set_perm_byte(page, P_MAPPED);
            return;
        };
        // SAFETY: `page` is below `limit` (it has a table byte), so the page lies inside
        // our data mapping; a lazy page was never handed out, so nothing refers to it.
        let dst = unsafe { self.base.add(page as usize * PAGE) };
        let mut f = lazy.src.lock();
        if let Some(copy) = f.saved.get(&page) {
            // SAFETY: `copy` holds one page; `dst` is one page of ours (see above).
            unsafe { std::ptr::copy_nonoverlapping(copy.as_ptr(), dst, PAGE) };
        } else if let Some(src) = f.source {
            // SAFETY: the source is alive (it detaches under this lock) and has not changed
            // this page since the fork (it saves a copy under this lock first); the page
            // lies inside its mapping, which has the same size as ours.
            unsafe { std::ptr::copy_nonoverlapping(src.add(page as usize * PAGE), dst, PAGE) };
        }
        release_reader(&mut f, page);
        drop(f);
        self.set_perm_byte(page, P_MAPPED | lazy.perm);
    }

    /// Gives a shared page back its own bits, first saving a copy for every frozen image
    /// whose readers still need it.
    #[cold]
    #[inline(never)]
    fn unshare(&self, page: u64) {
        // SAFETY: `page` is below `limit`; reading our own page through `&self`.
        let ours = unsafe { std::slice::from_raw_parts(self.base.add(page as usize * PAGE), PAGE) };
        self.cow.borrow_mut().lent.retain(|frozen| {
            let mut f = frozen.lock();
            if f.readers.contains_key(&page) && !f.saved.contains_key(&page) {
                f.saved.insert(page, ours.into());
            }
            !f.readers.is_empty()
        });
        let p = self.perm_byte(page);
        let w = if p & P_WAS_WRITE != 0 { P_WRITE } else { 0 };
        self.set_perm_byte(page, (p & !(P_SHARED | P_WAS_WRITE)) | w);
    }

    /// Ends copy-on-write for `[start, end)` before it is remapped or unmapped: lazy pages
    /// are given up, shared pages saved for their readers.
    fn drop_cow(&mut self, start: u64, end: u64) {
        for page in start >> PAGE_SHIFT..end >> PAGE_SHIFT {
            let p = self.perm_byte(page);
            if p & P_LAZY != 0 {
                if let Some(lazy) = self.cow.get_mut().lazy.remove(&page) {
                    release_reader(&mut lazy.src.lock(), page);
                }
                self.set_perm_byte(page, P_MAPPED);
            } else if p & P_SHARED != 0 {
                self.unshare(page);
            }
        }
    }

    /// Checks that `[addr, addr+len)` is mapped with `access` allowed.
    fn check_access(&self, addr: u64, len: u64, access: Access) -> Result<(), MemError> {
        if len == 0 {
            return Ok(());
        }
        let need = match access {
            Access::Read => P_READ,
            Access::Write => P_WRITE,
            Access::Execute => P_EXEC,
        };
        let fault = |a| MemError::Fault { addr: a, access };
        let end = addr.checked_add(len).ok_or(fault(addr))?;
        let mut a = addr;
        while a < end {
            if a >= self.limit || self.perm_byte(a >> PAGE_SHIFT) & need == 0 {
                return Err(fault(a));
            }
            a = (a | (PAGE_SIZE - 1)) + 1;
        }
        Ok(())
    }

    fn check_mapped(&self, addr: u64, len: u64) -> Result<(), MemError> {
        if self.is_mapped(GuestAddress(addr), len) {
            Ok(())
        } else {
            let first = (addr >> PAGE_SHIFT..)
                .map(|p| p << PAGE_SHIFT)
                .find(|&a| a >= self.limit || self.perm_byte(a >> PAGE_SHIFT) & P_MAPPED == 0)
                .unwrap_or(addr)
                .max(addr);
            Err(MemError::Fault { addr: first, access: Access::Read })
        }
    }

    fn drop_code_in(&mut self, addr: u64, len: u64) {
        if len == 0 {
            return;
        }
        for page in addr >> PAGE_SHIFT..=(addr + len - 1) >> PAGE_SHIFT {
            self.note_code_page(page);
        }
    }

    /// A validated view of guest memory readable by the guest.
    pub fn slice(&self, addr: GuestAddress, len: u64) -> Result<&[u8], MemError> {
        self.prepare(addr.0, len, Prepare::Read);
        self.check_access(addr.0, len, Access::Read)?;
        if len == 0 {
            return Ok(&[]);
        }
        Ok(self.bytes(addr.0, len as usize))
    }

    /// A validated mutable view of guest memory writable by the guest.
    pub fn slice_mut(&mut self, addr: GuestAddress, len: u64) -> Result<&mut [u8], MemError> {
        self.prepare(addr.0, len, Prepare::Write);
        self.check_access(addr.0, len, Access::Write)?;
        if len == 0 {
            return Ok(&mut []);
        }
        self.drop_code_in(addr.0, len);
        Ok(self.bytes_mut(addr.0, len as usize))
    }

    /// Reads guest memory as the guest could (read permission required).
    pub fn read(&self, addr: GuestAddress, buf: &mut [u8]) -> Result<(), MemError> {
        buf.copy_from_slice(self.slice(addr, buf.len() as u64)?);
        Ok(())
    }

    /// Writes guest memory as the guest could (write permission required).
    pub fn write(&mut self, addr: GuestAddress, buf: &[u8]) -> Result<(), MemError> {
        self.slice_mut(addr, buf.len() as u64)?.copy_from_slice(buf);
        Ok(())
    }

    /// Reads mapped memory regardless of permissions (for loaders, debuggers).
    pub fn read_raw(&self, addr: GuestAddress, buf: &mut [u8]) -> Result<(), MemError> {
        self.check_mapped(addr.0, buf.len() as u64)?;
        self.prepare(addr.0, buf.len() as u64, Prepare::Read);
        buf.copy_from_slice(self.bytes(addr.0, buf.len()));
        Ok(())
    }

    /// Writes mapped memory regardless of permissions (for loaders, debuggers).
    pub fn write_raw(&mut self, addr: GuestAddress, buf: &[u8]) -> Result<(), MemError> {
        self.check_mapped(addr.0, buf.len() as u64)?;
        self.prepare(addr.0, buf.len() as u64, Prepare::Raw);
        self.drop_code_in(addr.0, buf.len() as u64);
        self.bytes_mut(addr.0, buf.len()).copy_from_slice(buf);
        Ok(())
    }

    /// Fills mapped memory with `byte`, regardless of permissions.
    pub fn fill_raw(&mut self, addr: GuestAddress, len: u64, byte: u8) -> Result<(), MemError> {
        self.check_mapped(addr.0, len)?;
        self.prepare(addr.0, len, Prepare::Raw);
        self.drop_code_in(addr.0, len);
        self.bytes_mut(addr.0, len as usize).fill(byte);
        Ok(())
    }

    /// Reads a NUL-terminated string of at most `max` bytes (readable memory).
    pub fn read_cstr(&self, addr: GuestAddress, max: usize) -> Result<Vec<u8>, MemError> {
        let mut out = Vec::new();
        let mut a = addr.0;
        while out.len() < max {
            let mut b = [0u8];
            self.read(GuestAddress(a), &mut b)?;
            if b[0] == 0 {
                return Ok(out);
            }
            out.push(b[0]);
            a = a.checked_add(1).ok_or(MemError::Fault { addr: a, access: Access::Read })?;
        }
        Err(MemError::OutOfRange { addr: addr.0, len: max as u64 })
    }

    // ---- interpreter access paths -------------------------------------

    /// Host bytes of code at `addr` for the decoder: up to `max` bytes, stopping
    /// at the first page without execute permission. Marks the pages as code.
    pub(crate) fn fetch_code(&mut self, addr: u64, max: usize) -> &[u8] {
        let mut end = addr;
        let want = addr.saturating_add(max as u64).min(self.limit);
        while end < want {
            let page = end >> PAGE_SHIFT;
            if self.perm_byte(page) & P_LAZY != 0 {
                self.materialize(page);
                // A watched page keeps taking the cold paths.
                self.watch_strip();
            }
            let p = self.perm_byte(page);
            if p & P_EXEC == 0 {
                break;
            }
            self.set_perm_byte(page, p | P_CODE);
            end = ((end | (PAGE_SIZE - 1)) + 1).min(want);
        }
        if end <= addr {
            return &[];
        }
        self.bytes(addr, (end - addr) as usize)
    }

    /// Clears every page's code mark (the code cache was dropped wholesale).
    pub(crate) fn clear_code_marks(&mut self) {
        let regions: Vec<(u64, u64)> = self.regions.iter().map(|(&s, &e)| (s, e)).collect();
        for (s, e) in regions {
            for page in s >> PAGE_SHIFT..e >> PAGE_SHIFT {
                let p = self.perm_byte(page);
                self.set_perm_byte(page, p & !P_CODE);
            }
        }
        self.dirty_code.clear();
    }

    /// True when the page holding `addr` is writable by the guest.
    pub(crate) fn page_writable(&self, addr: u64) -> bool {
        if addr >= self.limit {
            return false;
        }
        let page = addr >> PAGE_SHIFT;
        let p = self.perm_byte(page);
        let watched = self.watch.as_ref().map_or(0, |w| w.taken(page));
        p & P_MAPPED != 0 && (self.real_perm(page, p) | watched) & P_WRITE != 0
    }

    #[cold]
    #[inline(never)]
    fn fault(&mut self, addr: u64, access: Access) -> Trap {
        self.fault = Fault { addr, access };
        Trap::PageFault
    }

    /// Cold path of every read: page-crossing, or a fault.
    #[cold]
    #[inline(never)]
    fn read_slow(&mut self, addr: u64, out: &mut [u8]) -> Result<(), Trap> {
        let len = out.len() as u64;
        let watched = self.watch_begin(addr, len);
        self.prepare(addr, len, Prepare::Read);
        let r = match self.check_access(addr, len, Access::Read) {
            Ok(()) => {
                out.copy_from_slice(self.bytes(addr, out.len()));
                Ok(())
            }
            Err(MemError::Fault { addr, .. }) => Err(self.fault(addr, Access::Read)),
            Err(_) => Err(self.fault(addr, Access::Read)),
        };
        if watched {
            self.watch_end(addr, len, Some(Access::Read).filter(|_| r.is_ok()));
        }
        r
    }

    /// Cold path of every write: page-crossing, a page holding decoded code,
    /// or a fault.
    #[cold]
    #[inline(never)]
    fn write_slow(&mut self, addr: u64, bytes: &[u8]) -> Result<(), Trap> {
        let len = bytes.len() as u64;
        let watched = self.watch_begin(addr, len);
        self.prepare(addr, len, Prepare::Write);
        let r = match self.check_access(addr, len, Access::Write) {
            Ok(()) => {
                self.drop_code_in(addr, len);
                self.bytes_mut(addr, bytes.len()).copy_from_slice(bytes);
                Ok(())
            }
            Err(MemError::Fault { addr, .. }) => Err(self.fault(addr, Access::Write)),
            Err(_) => Err(self.fault(addr, Access::Write)),
        };
        if watched {
            self.watch_end(addr, len, Some(Access::Write).filter(|_| r.is_ok()));
        }
        r
    }

    /// Checks a write of `len` bytes without doing it (for instructions that
    /// must fault before changing any state, e.g. `push` or `cmpxchg16b`).
    pub(crate) fn probe_write(&mut self, addr: u64, len: u64) -> Result<(), Trap> {
        let watched = self.watch_begin(addr, len);
        self.prepare(addr, len, Prepare::Write);
        let r = match self.check_access(addr, len, Access::Write) {
            Ok(()) => Ok(()),
            Err(MemError::Fault { addr, .. }) => Err(self.fault(addr, Access::Write)),
            Err(_) => Err(self.fault(addr, Access::Write)),
        };
        if watched {
            self.watch_end(addr, len, None);
        }
        r
    }
}

/// Debugger watches (the kernel arms one around each instruction a watched thread runs).
impl Memory {
    /// Strips the `READ` and `WRITE` bits of every page overlapping `ranges` (each
    /// `(start, len)`) so that guest accesses to them take the cold paths, which note each
    /// access overlapping a range; [`Memory::watch_disarm`] gives the bits back. Between
    /// the two only guest instructions may run: everything else (the kernel's accesses,
    /// map, protect, fork) reads the permission table.
    pub fn watch_arm(&mut self, ranges: &[(u64, u64)]) {
        self.watch_disarm();
        let ranges: Vec<(u64, u64)> = ranges
            .iter()
            .filter(|&&(a, n)| n > 0 && a < self.limit)
            .map(|&(a, n)| (a, a.saturating_add(n).min(self.limit)))
            .collect();
        let mut w = Box::new(Watching { ranges, stripped: Vec::new(), hits: Vec::new() });
        for &(s, e) in &w.ranges {
            for page in s >> PAGE_SHIFT..=(e - 1) >> PAGE_SHIFT {
                if !w.stripped.iter().any(|&(p, _)| p == page) {
                    w.stripped.push((page, 0));
                }
            }
        }
        self.watch = Some(w);
        self.watch_strip();
    }

    /// Gives back what [`Memory::watch_arm`] stripped: the accesses seen since.
    pub fn watch_disarm(&mut self) -> Vec<WatchHit> {
        let Some(w) = self.watch.take() else { return Vec::new() };
        for &(page, taken) in &w.stripped {
            // A page unmapped meanwhile keeps its zero byte (see `mapped_parts`).
            let p = self.perm_byte(page);
            if p & P_MAPPED != 0 {
                self.set_perm_byte(page, p | taken);
            }
        }
        w.hits
    }

    /// Takes the `READ` and `WRITE` bits of the stripped pages (again).
    fn watch_strip(&mut self) {
        let Some(mut w) = self.watch.take() else { return };
        for (page, taken) in &mut w.stripped {
            let p = self.perm_byte(*page);
            *taken |= p & (P_READ | P_WRITE);
            self.set_perm_byte(*page, p & !(P_READ | P_WRITE));
        }
        self.watch = Some(w);
    }

    /// Before a cold-path access to `[addr, addr + len)` while a watch is armed: gives
    /// the stripped pages their bits back for the access. False (nothing done) unarmed.
    fn watch_begin(&mut self, addr: u64, len: u64) -> bool {
        let Some(w) = self.watch.as_ref() else { return false };
        let end = addr.saturating_add(len);
        for &(page, taken) in &w.stripped {
            if page << PAGE_SHIFT < end && (page + 1) << PAGE_SHIFT > addr {
                self.set_perm_byte(page, self.perm_byte(page) | taken);
            }
        }
        true
    }

    /// After the access of [`Memory::watch_begin`] (`access`: what it did, `None` if it
    /// faulted or only probed): notes it if it overlaps a range, strips the pages again.
    fn watch_end(&mut self, addr: u64, len: u64, access: Option<Access>) {
        if let (Some(w), Some(access)) = (self.watch.as_mut(), access) {
            let end = addr.saturating_add(len);
            if w.ranges.iter().any(|&(s, e)| s < end && addr < e) {
                w.hits.push(WatchHit { addr, len, access });
            }
        }
        self.watch_strip();
    }
}

impl Watching {
    /// The bits taken from `page` (0 if it is not watched).
    fn taken(&self, page: u64) -> u8 {
        self.stripped.iter().find(|&&(p, _)| p == page).map_or(0, |&(_, t)| t)
    }
}

impl Memory {
    /// The fast path of an `N`-byte read (`N` = 1, 2, 4 or 8), zero-extended:
    /// `None` when the access crosses a page or the page is not readable. The
    /// fast handlers then rerun the instruction through the generic tier,
    /// whose accessors handle both (a tail call with no frame to set up).
    #[inline(always)]
    pub(crate) fn try_read<const N: u8>(&self, addr: u64) -> Option<u64> {
        if addr < self.limit
            && (addr & (PAGE_SIZE - 1)) <= PAGE_SIZE - N as u64
            && self.perm_byte(addr >> PAGE_SHIFT) & P_READ != 0
        {
            // SAFETY: `addr + N <= limit` (the access stays inside one page
            // below `limit`), so it lies inside the data mapping.
            let p = unsafe { self.base.add(addr as usize) };
            // SAFETY: as above; unaligned reads of plain integers.
            Some(unsafe {
                match N {
                    1 => *p as u64,
                    2 => (p as *const u16).read_unaligned() as u64,
                    4 => (p as *const u32).read_unaligned() as u64,
                    _ => (p as *const u64).read_unaligned(),
                }
            })
        } else {
            None
        }
    }

    /// The fast path of an `N`-byte write of the low bytes of `v`: false,
    /// writing nothing, when the access crosses a page, the page is not
    /// writable or holds decoded code (see [`Memory::try_read`]).
    #[inline(always)]
    pub(crate) fn try_write<const N: u8>(&mut self, addr: u64, v: u64) -> bool {
        if addr < self.limit
            && (addr & (PAGE_SIZE - 1)) <= PAGE_SIZE - N as u64
            && self.perm_byte(addr >> PAGE_SHIFT) & (P_WRITE | P_CODE) == P_WRITE
        {
            // SAFETY: as in `try_read`.
            let p = unsafe { self.base.add(addr as usize) };
            // SAFETY: as in `try_read`; unaligned writes of plain integers.
            unsafe {
                match N {
                    1 => *p = v as u8,
                    2 => (p as *mut u16).write_unaligned(v as u16),
                    4 => (p as *mut u32).write_unaligned(v as u32),
                    _ => (p as *mut u64).write_unaligned(v),
                }
            }
            true
        } else {
            false
        }
    }
}

impl Drop for Memory {
    fn drop(&mut self) {
        let cow = self.cow.get_mut();
        for (page, lazy) in cow.lazy.drain() {
            release_reader(&mut lazy.src.lock(), page);
        }
        for frozen in cow.lent.drain(..) {
            let mut f = frozen.lock();
            let needed: Vec<u64> = f.readers.keys().filter(|p| !f.saved.contains_key(p)).copied().collect();
            for page in needed {
                // SAFETY: `page` is below `limit` (readers only hold our pages); our data
                // mapping is still alive (fields drop after this).
                let ours = unsafe { std::slice::from_raw_parts(self.base.add(page as usize * PAGE), PAGE) };
                f.saved.insert(page, ours.into());
            }
            f.source = None;
        }
        self.data.reset(&self.regions);
    }
}

impl Memory {
    /// True when `[addr, addr + len)` is non-empty, lies inside one page, and
    /// that page's permission byte has every bit of `need` and none of `forbid`.
    #[inline]
    fn within_page(&self, addr: u64, len: u64, need: u8, forbid: u8) -> bool {
        len != 0
            && addr < self.limit
            && (addr & (PAGE_SIZE - 1)) + len <= PAGE_SIZE
            && self.perm_byte(addr >> PAGE_SHIFT) & (need | forbid) == need
    }

    /// The bulk path of `rep movs` (DF clear): copies `len` bytes from `src`
    /// to `dst` when each range lies in one page with the right permissions,
    /// the destination page holds no decoded code, and a forward
    /// element-by-element copy cannot read what it already wrote (`dst <= src`
    /// or no overlap), so one `memmove` gives the same bytes. Returns false,
    /// doing nothing, otherwise: the caller then takes the per-element path,
    /// which faults precisely.
    #[inline]
    pub(crate) fn bulk_copy(&mut self, dst: u64, src: u64, len: u64) -> bool {
        if !(self.within_page(src, len, P_READ, 0) && self.within_page(dst, len, P_WRITE, P_CODE)) {
            return false;
        }
        if dst > src && dst < src + len {
            return false;
        }
        let (d, s, n) = (dst as usize, src as usize, len as usize);
        let lo = d.min(s);
        let region = self.bytes_mut(lo as u64, d.max(s) + n - lo);
        region.copy_within(s - lo..s - lo + n, d - lo);
        true
    }

    /// The bulk path of `rep stos` (DF clear): fills `len` bytes at `dst` with
    /// the low `size` bytes of `pattern` repeated, under the same conditions
    /// as [`Memory::bulk_copy`] (`len` is a multiple of `size`).
    #[inline]
    pub(crate) fn bulk_fill(&mut self, dst: u64, pattern: u64, size: u8, len: u64) -> bool {
        if !self.within_page(dst, len, P_WRITE, P_CODE) {
            return false;
        }
        let out = self.bytes_mut(dst, len as usize);
        match size {
            1 => out.fill(pattern as u8),
            _ => {
                let bytes = pattern.to_le_bytes();
                for chunk in out.chunks_exact_mut(size as usize) {
                    chunk.copy_from_slice(&bytes[..size as usize]);
                }
            }
        }
        true
    }
}

macro_rules! access_fns {
    ($($read:ident $write:ident $t:ty;)*) => {
        impl Memory {
            $(
            #[inline(always)]
            pub(crate) fn $read(&mut self, addr: u64) -> Result<$t, Trap> {
                const N: u64 = std::mem::size_of::<$t>() as u64;
                if addr < self.limit
                    && (addr & (PAGE_SIZE - 1)) + N <= PAGE_SIZE
                    && self.perm_byte(addr >> PAGE_SHIFT) & P_READ != 0
                {
                    // SAFETY: `addr + N <= limit` (the access stays inside one
                    // page below `limit`), so it lies inside the data mapping.
                    Ok(unsafe { (self.base.add(addr as usize) as *const $t).read_unaligned() })
                } else {
                    let mut b = [0u8; N as usize];
                    self.read_slow(addr, &mut b)?;
                    Ok(<$t>::from_le_bytes(b))
                }
            }

            #[inline(always)]
            pub(crate) fn $write(&mut self, addr: u64, v: $t) -> Result<(), Trap> {
                const N: u64 = std::mem::size_of::<$t>() as u64;
                if addr < self.limit
                    && (addr & (PAGE_SIZE - 1)) + N <= PAGE_SIZE
                    && self.perm_byte(addr >> PAGE_SHIFT) & (P_WRITE | P_CODE) == P_WRITE
                {
                    // SAFETY: as for reads: the access lies inside the mapping.
                    unsafe { (self.base.add(addr as usize) as *mut $t).write_unaligned(v) };
                    Ok(())
                } else {
                    self.write_slow(addr, &v.to_le_bytes())
                }
            }
            )*
        }
    };
}

access_fns! {
    read_u8 write_u8 u8;
    read_u16 write_u16 u16;
    read_u32 write_u32 u32;
    read_u64 write_u64 u64;
    read_u128 write_u128 u128;
}

impl Memory {
    /// Reads `size` bytes (1, 2, 4 or 8), zero-extended.
    #[inline(always)]
    pub(crate) fn read_sized(&mut self, addr: u64, size: u8) -> Result<u64, Trap> {
        match size {
            1 => self.read_u8(addr).map(u64::from),
            2 => self.read_u16(addr).map(u64::from),
            4 => self.read_u32(addr).map(u64::from),
            _ => self.read_u64(addr),
        }
    }

    /// Writes the low `size` bytes (1, 2, 4 or 8) of `v`.
    #[inline(always)]
    pub(crate) fn write_sized(&mut self, addr: u64, size: u8, v: u64) -> Result<(), Trap> {
        match size {
            1 => self.write_u8(addr, v as u8),
            2 => self.write_u16(addr, v as u16),
            4 => self.write_u32(addr, v as u32),
            _ => self.write_u64(addr, v),
        }
    }

    /// Reads a byte range for instructions such as `fxrstor` (cold).
    pub(crate) fn read_into(&mut self, addr: u64, out: &mut [u8]) -> Result<(), Trap> {
        self.read_slow(addr, out)
    }

    /// Writes a byte range for instructions such as `fxsave` (cold).
    pub(crate) fn write_from(&mut self, addr: u64, bytes: &[u8]) -> Result<(), Trap> {
        self.write_slow(addr, bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mem() -> Memory {
        // Miri allocates the whole reservation for real.
        Memory::new(if cfg!(miri) { 1 << 24 } else { 1 << 32 }).unwrap()
    }

    #[test]
    fn watch_sees_exactly_the_accesses_overlapping_its_ranges() {
        let mut m = mem();
        m.map(GuestAddress(0x1000), 0x2000, Perm::RW).unwrap();
        let mut child = m.fork().unwrap(); // pages lent: the watch must see through COW too
        for m in [&mut m, &mut child] {
            m.watch_arm(&[(0x1ff8, 8), (0x2100, 1)]);
            assert_eq!(m.read_u64(0x1ff0).unwrap(), 0, "next to the range: no hit");
            m.write_u32(0x1ffc, 7).unwrap();
            assert_eq!(m.read_u16(0x1ffe).unwrap(), 0);
            assert_eq!(m.read_u64(0x1ffc).unwrap(), 7, "crossing pages");
            m.write_u8(0x2101, 1).unwrap();
            assert!(m.probe_write(0x2100, 1).is_ok(), "a probe is no access");
            let hits = m.watch_disarm();
            let seen: Vec<(u64, u64, Access)> = hits.iter().map(|h| (h.addr, h.len, h.access)).collect();
            assert_eq!(seen, [(0x1ffc, 4, Access::Write), (0x1ffe, 2, Access::Read), (0x1ffc, 8, Access::Read)]);
            // Disarmed: the pages are back on the fast paths with their own permissions.
            assert_eq!(m.perm_at(GuestAddress(0x1000)), Some(Perm::RW));
            assert!(m.try_read::<8>(0x1ff8).is_some() && m.try_write::<1>(0x2100, 0));
            assert!(m.watch_disarm().is_empty());
        }
        m.protect(GuestAddress(0x2000), 0x1000, Perm::READ).unwrap();
        m.watch_arm(&[(0x2000, 4)]);
        assert!(m.write_u8(0x2000, 1).is_err(), "a watch grants nothing");
        assert!(m.watch_disarm().is_empty());
        assert_eq!(m.perm_at(GuestAddress(0x2000)), Some(Perm::READ));
    }

    #[test]
    fn map_read_write_and_permissions() {
        let mut m = mem();
        m.map(GuestAddress(0x1000), 0x2000, Perm::RW).unwrap();
        m.write(GuestAddress(0x1ffe), &[1, 2, 3, 4]).unwrap();
        let mut b = [0u8; 4];
        m.read(GuestAddress(0x1ffe), &mut b).unwrap();
        assert_eq!(b, [1, 2, 3, 4]);
        assert_eq!(m.read_u32(0x1ffe).unwrap(), 0x0403_0201);
        m.protect(GuestAddress(0x2000), 0x1000, Perm::READ).unwrap();
        assert!(matches!(
            m.write(GuestAddress(0x1fff), &[0, 0]),
            Err(MemError::Fault { addr: 0x2000, access: Access::Write })
        ));
        assert_eq!(m.write_u16(0x1fff, 0), Err(Trap::PageFault));
        assert_eq!(m.fault, Fault { addr: 0x2000, access: Access::Write });
        assert_eq!(m.read_u64(0x3000), Err(Trap::PageFault));
        assert_eq!(m.read_u64(u64::MAX - 3), Err(Trap::PageFault));
    }

    #[test]
    fn regions_coalesce_and_split() {
        let mut m = mem();
        m.map(GuestAddress(0x1000), 0x1000, Perm::RW).unwrap();
        m.map(GuestAddress(0x2000), 0x2000, Perm::READ).unwrap();
        assert_eq!(m.regions().collect::<Vec<_>>(), vec![(GuestAddress(0x1000), GuestAddress(0x4000))]);
        m.unmap(GuestAddress(0x2000), 0x1000).unwrap();
        assert_eq!(
            m.regions().collect::<Vec<_>>(),
            vec![(GuestAddress(0x1000), GuestAddress(0x2000)), (GuestAddress(0x3000), GuestAddress(0x4000))]
        );
        assert_eq!(m.find_free(GuestAddress(0x1000), 0x1000), Some(GuestAddress(0x2000)));
        assert_eq!(m.find_free(GuestAddress(0x1000), 0x2000), Some(GuestAddress(0x4000)));
    }

    #[test]
    fn unmapping_a_huge_range_undoes_only_its_mapped_parts() {
        let mut m = mem();
        m.map(GuestAddress(0x1000), 0x3000, Perm::RW).unwrap();
        m.map(GuestAddress(0x10_0000), 0x1000, Perm::RW).unwrap();
        m.write(GuestAddress(0x1000), b"keep").unwrap();
        m.write(GuestAddress(0x2000), b"gone").unwrap();
        let mut child = m.fork().unwrap();
        // From inside the first region to the end of the space: a partial region and a whole one.
        child.unmap(GuestAddress(0x2000), child.limit() - 0x2000).unwrap();
        assert_eq!(child.regions().collect::<Vec<_>>(), vec![(GuestAddress(0x1000), GuestAddress(0x2000))]);
        assert_eq!(child.read_u32(0x2000), Err(Trap::PageFault));
        assert_eq!(child.read_u32(0x10_0000), Err(Trap::PageFault));
        assert_eq!(child.read_u32(0x1000).unwrap(), u32::from_le_bytes(*b"keep"));
        child.map(GuestAddress(0x2000), 0x1000, Perm::RW).unwrap();
        assert_eq!(child.read_u32(0x2000).unwrap(), 0);
        // The parent's copy-on-write pages are untouched.
        assert_eq!(m.read_u32(0x2000).unwrap(), u32::from_le_bytes(*b"gone"));
        assert_eq!(m.regions().count(), 2);
    }

    #[test]
    fn remap_zeroes_and_fork_copies() {
        let mut m = mem();
        m.map(GuestAddress(0x10000), 0x10000, Perm::RW).unwrap();
        m.write(GuestAddress(0x10008), b"parent").unwrap();
        let mut child = m.fork().unwrap();
        child.write(GuestAddress(0x10008), b"child!").unwrap();
        let mut b = [0u8; 6];
        m.read(GuestAddress(0x10008), &mut b).unwrap();
        assert_eq!(&b, b"parent");
        child.read(GuestAddress(0x10008), &mut b).unwrap();
        assert_eq!(&b, b"child!");
        m.map(GuestAddress(0x10000), 0x1000, Perm::RW).unwrap();
        m.read(GuestAddress(0x10008), &mut b).unwrap();
        assert_eq!(b, [0; 6]);
    }

    fn read_vec(m: &Memory, addr: u64, len: usize) -> Vec<u8> {
        let mut b = vec![0u8; len];
        m.read(GuestAddress(addr), &mut b).unwrap();
        b
    }

    /// Each page's second table byte (what translated code tests) is `ok_byte` of its
    /// permission byte and the next page's, through maps, protections, code marks and
    /// their removal by a write, copy-on-write lending, unmaps, and at the last page.
    #[test]
    fn second_table_bytes_follow_the_permission_bytes() {
        let mut m = Memory::new(1 << 24).unwrap();
        let pages = m.limit >> PAGE_SHIFT;
        let check = |m: &Memory, what: &str| {
            for page in 0..pages {
                let next = if page + 1 < pages { m.perm_byte(page + 1) } else { 0 };
                // SAFETY: two bytes per page below `limit / PAGE_SIZE`.
                let ok = unsafe { *m.perm_base.add(2 * page as usize + 1) };
                assert_eq!(ok, ok_byte(m.perm_byte(page), next), "{what}: page {page:#x}");
            }
        };
        let top = m.limit - 0x3000;
        m.map(GuestAddress(0x10000), 0x4000, Perm::RW).unwrap();
        m.map(GuestAddress(0x14000), 0x1000, Perm::READ).unwrap();
        m.map(GuestAddress(0x15000), 0x2000, Perm::RX).unwrap();
        m.map(GuestAddress(top), 0x3000, Perm::RW).unwrap();
        check(&m, "mapped");
        assert_eq!(
            ok_byte(m.perm_byte(0x10), m.perm_byte(0x11)),
            OK_READ | OK_WRITE | OK_RW | OK_READ2 | OK_WRITE2 | OK_RW2
        );
        assert_eq!(ok_byte(m.perm_byte(0x13), m.perm_byte(0x14)), OK_READ | OK_WRITE | OK_RW | OK_READ2);
        m.protect(GuestAddress(0x11000), 0x1000, Perm::NONE).unwrap();
        m.protect(GuestAddress(0x15000), 0x1000, Perm::RWX).unwrap();
        check(&m, "protected");
        m.fetch_code(0x15ff0, 0x20);
        assert!(m.perm_byte(0x15) & P_CODE != 0);
        check(&m, "code marked");
        m.write(GuestAddress(0x15000), b"x").unwrap();
        check(&m, "code dropped by a write");
        let child = m.fork().unwrap();
        check(&m, "lent");
        check(&child, "lazy");
        m.write(GuestAddress(0x10000), b"y").unwrap();
        check(&m, "copied");
        drop(child);
        m.unmap(GuestAddress(0x12000), 0x4000).unwrap();
        m.unmap(GuestAddress(top + 0x2000), 0x1000).unwrap();
        check(&m, "unmapped");
    }

    #[test]
    fn fork_is_copy_on_write_both_ways() {
        let mut m = mem();
        m.map(GuestAddress(0x10000), 0x4000, Perm::RW).unwrap();
        m.write(GuestAddress(0x10000), b"page0").unwrap();
        m.write(GuestAddress(0x11000), b"page1").unwrap();
        m.write(GuestAddress(0x12000), b"page2").unwrap();
        let mut child = m.fork().unwrap();
        // Shared in the parent (reads stay on the fast path), lazy in the child.
        assert_eq!(m.perm_byte(0x10) & (P_SHARED | P_READ | P_WRITE), P_SHARED | P_READ);
        assert_eq!(child.perm_byte(0x10) & (P_LAZY | P_READ), P_LAZY);
        assert_eq!(m.perm_at(GuestAddress(0x10000)), Some(Perm::RW));
        assert_eq!(child.perm_at(GuestAddress(0x10000)), Some(Perm::RW));
        // The parent writes through the fast-path entry (cold path: saves for the child).
        m.write_u64(0x10000, 0x4141_4141_4141_4141).unwrap();
        assert_eq!(m.read_u64(0x10000).unwrap(), 0x4141_4141_4141_4141);
        assert_eq!(child.read_u64(0x10000).unwrap() & 0xff_ffff_ffff, u64::from_le_bytes(*b"page0\0\0\0"));
        // The child writes a page the parent did not touch.
        child.write(GuestAddress(0x11000), b"CHILD").unwrap();
        assert_eq!(read_vec(&m, 0x11000, 5), b"page1");
        assert_eq!(read_vec(&child, 0x11000, 5), b"CHILD");
        // Untouched pages read as before on both sides; a never-resident page is zero.
        assert_eq!(read_vec(&child, 0x12000, 5), b"page2");
        assert_eq!(read_vec(&m, 0x12000, 5), b"page2");
        assert_eq!(read_vec(&child, 0x13000, 4), [0; 4]);
        // Every frozen page was copied or given up: the parent's image has no readers left
        // once the child is gone.
        drop(child);
        m.write(GuestAddress(0x12000), b"x").unwrap();
        assert!(m.cow.borrow().lent.is_empty());
    }

    #[test]
    fn fork_survives_the_parent_and_chains() {
        let mut m = mem();
        m.map(GuestAddress(0x20000), 0x2000, Perm::RW).unwrap();
        m.write(GuestAddress(0x20000), b"origin").unwrap();
        m.write(GuestAddress(0x21000), b"second").unwrap();
        let child = m.fork().unwrap();
        // The grandchild forks from the child before the child touched anything.
        let grandchild = child.fork().unwrap();
        let sibling = m.fork().unwrap();
        m.write(GuestAddress(0x20000), b"parent").unwrap();
        m.map(GuestAddress(0x21000), 0x1000, Perm::RW).unwrap(); // remapped: zero in the parent
        drop(m); // the parent dies: its readers keep what they need
        for space in [&child, &grandchild, &sibling] {
            assert_eq!(read_vec(space, 0x20000, 6), b"origin");
            assert_eq!(read_vec(space, 0x21000, 6), b"second");
        }
    }

    #[test]
    fn cow_keeps_permissions_code_marks_and_raw_access() {
        let mut m = mem();
        m.map(GuestAddress(0x30000), 0x2000, Perm::RX).unwrap();
        m.write_raw(GuestAddress(0x30000), &[0x90; 16]).unwrap();
        let _ = m.fetch_code(0x30000, 16);
        assert!(m.perm_byte(0x30) & P_CODE != 0);
        let mut child = m.fork().unwrap();
        // Read-only stays read-only on both sides; raw writes still work and stay private.
        assert!(child.write(GuestAddress(0x30000), b"x").is_err());
        assert!(m.write(GuestAddress(0x30000), b"x").is_err());
        m.write_raw(GuestAddress(0x30000), &[0xcc]).unwrap();
        assert_eq!(m.dirty_code, vec![0x30]);
        assert_eq!(child.fetch_code(0x30000, 2), &[0x90, 0x90]);
        // protect on a lazy page applies once it is copied in.
        child.protect(GuestAddress(0x31000), 0x1000, Perm::RW).unwrap();
        assert_eq!(child.perm_at(GuestAddress(0x31000)), Some(Perm::RW));
        assert!(child.page_writable(0x31000));
        child.write(GuestAddress(0x31000), b"w").unwrap();
        // A shared writable page counts as writable for the code cache.
        m.protect(GuestAddress(0x31000), 0x1000, Perm::RWX).unwrap();
        let _other = m.fork().unwrap();
        assert!(m.page_writable(0x31000));
        assert_eq!(m.perm_at(GuestAddress(0x31000)), Some(Perm::RWX));
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri emulates no mprotect (no guard) and no /proc")]
    fn data_is_followed_by_a_guard_zone() {
        let m = Memory::new(1 << 20).unwrap();
        let end = m.base as usize + (1 << 20);
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let guard = maps.lines().find_map(|l| {
            let (range, rest) = l.split_once(' ')?;
            let (a, b) = range.split_once('-')?;
            let (a, b) = (usize::from_str_radix(a, 16).ok()?, usize::from_str_radix(b, 16).ok()?);
            (a <= end && end < b).then(|| (b - end, rest.starts_with("---p")))
        });
        assert_eq!(guard, Some((GUARD, true)), "{maps}");
    }

    /// Every table byte of `m` is zero and nothing is mapped, as in a fresh reservation.
    fn assert_fresh(m: &Memory) {
        assert_eq!(m.regions().count(), 0);
        let pages = (m.limit >> PAGE_SHIFT) as usize;
        // SAFETY: the table has two bytes per page of the space; nothing writes it meanwhile.
        let table = unsafe { std::slice::from_raw_parts(m.perm_base, 2 * pages) };
        assert!(table.iter().all(|&b| b == 0), "a stale permission byte");
    }

    #[test]
    #[cfg_attr(miri, ignore = "over 5 minutes under Miri (whole 16 MiB reservations scanned)")]
    fn a_reused_reservation_is_indistinguishable_from_a_fresh_one() {
        let limit = if cfg!(miri) { 1 << 24 } else { 1 << 32 };
        // Small regions (table and data zeroed in place), a region of more resident
        // pages than a reset keeps (the rest given back) and, outside Miri, one too large
        // to scan (table and data given back); code marks, a watch, lent and lazy pages.
        let (big_at, big) = if cfg!(miri) { (0x80_0000, 0x40_0000) } else { (0x100_0000, 0x2000_0000) };
        let layout: [(u64, u64, Perm); 4] = [
            (0x1000, 0x3000, Perm::RWX),
            (0x10000, KEEP_RESIDENT as u64 + 0x10000, Perm::RW),
            (0x40_0000, 0x1000, Perm::READ),
            (big_at, big, Perm::RW),
        ];
        let mut m = Memory::new(limit).unwrap();
        for &(a, n, perm) in &layout {
            m.map(GuestAddress(a), n, Perm::RWX).unwrap();
            let mut page = a;
            while page < a + n {
                m.write_raw(GuestAddress(page), &[0xa5; 8]).unwrap();
                m.write_raw(GuestAddress(page + PAGE_SIZE - 1), &[0x5a]).unwrap();
                page += if n > 0x100_0000 { 0x10_0000 } else { PAGE_SIZE };
            }
            m.protect(GuestAddress(a), n, perm).unwrap();
        }
        assert!(!m.fetch_code(0x1000, 16).is_empty());
        m.watch_arm(&[(0x1000, 8), (0x10008, 8)]);
        m.unmap(GuestAddress(0x1000), 0x1000).unwrap();
        m.watch_disarm();
        assert_eq!(m.perm_at(GuestAddress(0x1000)), None, "disarming maps nothing back");
        let mut child = m.fork().unwrap();
        child.write_u8(0x10000, 1).unwrap(); // one page copied in, the others still lazy
        let bases = [m.base as usize, child.base as usize];
        drop(m); // its pages are saved for the child first
        assert_eq!(child.read_u8(0x10001).unwrap(), 0xa5);
        drop(child);

        let again = [Memory::new(limit).unwrap(), Memory::new(limit).unwrap()];
        let mut reused: Vec<usize> = again.iter().map(|m| m.base as usize).collect();
        reused.sort();
        let mut expected = bases.to_vec();
        expected.sort();
        assert_eq!(reused, expected, "both reservations come from the pool");
        for mut m in again {
            assert_fresh(&m);
            assert_eq!(m.perm_at(GuestAddress(0x1000)), None);
            for &(a, n, _) in &layout {
                m.map(GuestAddress(a), n, Perm::RW).unwrap();
                let scan = if n > 0x100_0000 { 0x10_0000 } else { n };
                let bytes = m.slice(GuestAddress(a), scan).unwrap();
                assert!(bytes.iter().all(|&b| b == 0), "a stale byte in {a:#x}+{n:#x}");
                assert!(m.slice(GuestAddress(a + n - PAGE_SIZE), PAGE_SIZE).unwrap().iter().all(|&b| b == 0));
                assert_eq!(m.perm_at(GuestAddress(a)), Some(Perm::RW));
            }
            assert!(m.fetch_code(0x1000, 16).is_empty(), "no stale execute permission");
            assert_eq!(m.perm_byte(1) & P_CODE, 0, "no stale code mark");
            // And it is reset again when dropped with a different layout.
            m.unmap(GuestAddress(0x10000), 0x1000).unwrap();
        }
        let m = Memory::new(limit).unwrap();
        assert!(bases.contains(&(m.base as usize)));
        assert_fresh(&m);
    }

    /// Resident pages of `[addr, addr + len)` of `m`.
    fn resident_pages(m: &Memory, addr: u64, len: u64) -> usize {
        m.resident_pages(GuestAddress(addr), len).expect("mincore of an aligned range")
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri emulates no mincore")]
    fn a_reused_reservation_keeps_only_the_pages_its_last_user_wrote() {
        if host_may_swap() {
            eprintln!("skipped: the host may swap, so resets give every page back");
            return;
        }
        let (limit, at, len) = (1 << 30, 0x10_0000, 64 * PAGE_SIZE);
        let use_space = |written: u64| {
            let mut m = Memory::new(limit).unwrap();
            m.map(GuestAddress(at), len, Perm::RW).unwrap();
            for page in 0..written {
                m.write_u8(at + page * PAGE_SIZE, 1).unwrap();
            }
            let base = m.base;
            drop(m);
            base
        };
        let first = use_space(10);
        let m = Memory::new(limit).unwrap();
        assert_eq!(m.base, first, "reused");
        assert_eq!(resident_pages(&m, at, len), 10, "the pages written stay resident");
        drop(m);
        // A user that writes one page: the other nine (zero now) go back.
        use_space(1);
        let m = Memory::new(limit).unwrap();
        assert_eq!(m.base, first);
        assert_eq!(resident_pages(&m, at, len), 1, "zero pages from earlier users do not pile up");
    }

    #[test]
    fn a_thread_pools_a_bounded_number_of_reservations() {
        let spaces: Vec<Memory> = (0..POOL_MAX + 3).map(|_| Memory::new(1 << 20).unwrap()).collect();
        drop(spaces);
        assert_eq!(POOL.with(|p| p.borrow().iter().filter(|m| m.data_len == 1 << 20).count()), POOL_MAX);
        let other = Memory::new(1 << 21).unwrap();
        assert!(POOL.with(|p| p.borrow().iter().all(|m| m.start != other.data.start)), "sizes are not mixed");
    }

    #[test]
    fn bad_ranges_are_errors() {
        let mut m = mem();
        assert!(matches!(m.map(GuestAddress(0x1001), 0x1000, Perm::RW), Err(MemError::Unaligned { .. })));
        assert!(matches!(m.map(GuestAddress(!0xfff), 0x2000, Perm::RW), Err(MemError::OutOfRange { .. })));
        assert!(Memory::new(12345).is_err());
    }

    #[test]
    fn guest_address_arithmetic_is_checked() {
        assert_eq!(GuestAddress(u64::MAX).checked_add(1), None);
        assert_eq!(GuestAddress(0x1001).page_up(), Some(GuestAddress(0x2000)));
        assert_eq!(GuestAddress(u64::MAX).page_up(), None);
        assert_eq!(GuestAddress(0x1fff).page_down(), GuestAddress(0x1000));
    }
}
