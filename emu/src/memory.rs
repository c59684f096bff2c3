//! Guest memory: one linear host reservation per address space.
//!
//! The guest's addresses `[0, limit)` map one-to-one onto a `MAP_NORESERVE`
//! anonymous mapping, so translating a guest address is one addition. Beside it
//! sits a table with one permission byte per guest page (itself a lazily
//! populated anonymous mapping). Every access checks `addr < limit`, that it
//! stays inside one page, and the page's permission byte; anything else takes a
//! cold path that handles page-crossing accesses and reports faults.
//!
//! Self-modifying code: pages from which the interpreter has decoded code carry
//! the internal `CODE` bit. The write fast path demands `WRITE` set and `CODE`
//! clear, so the first write to a page holding decoded code goes to the cold
//! path, which clears the bit and queues the page for the code cache to drop.

use std::collections::BTreeMap;
use std::fmt;

use memmap2::{MmapMut, MmapOptions};

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
        self.0 % PAGE_SIZE == 0
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
    data: MmapMut,
    perms: MmapMut,
    base: *mut u8,
    perm_base: *mut u8,
    limit: u64,
    /// Mapped ranges, `start -> end` in bytes, page aligned and coalesced.
    regions: BTreeMap<u64, u64>,
    /// The last faulting access (valid after a `Trap::PageFault`).
    pub(crate) fault: Fault,
    /// Pages whose `CODE` bit a write cleared; the code cache drops them.
    pub(crate) dirty_code: Vec<u64>,
}

// SAFETY: `Memory` exclusively owns both mappings its raw pointers point into;
// nothing else aliases them, so moving it to another thread is sound.
unsafe impl Send for Memory {}

impl fmt::Debug for Memory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Memory").field("limit", &self.limit).field("regions", &self.regions).finish()
    }
}

impl Memory {
    /// Reserves an address space of `limit` bytes (nothing is mapped yet).
    pub fn new(limit: u64) -> Result<Memory, MemError> {
        if limit == 0 || limit % PAGE_SIZE != 0 || limit > MAX_LIMIT {
            return Err(MemError::BadLimit(limit));
        }
        let mut data = MmapOptions::new().len(limit as usize).no_reserve_swap().map_anon()?;
        let pages = (limit / PAGE_SIZE) as usize;
        let mut perms = MmapOptions::new().len(pages).no_reserve_swap().map_anon()?;
        let base = data.as_mut_ptr();
        let perm_base = perms.as_mut_ptr();
        Ok(Memory {
            data,
            perms,
            base,
            perm_base,
            limit,
            regions: BTreeMap::new(),
            fault: Fault { addr: 0, access: Access::Read },
            dirty_code: Vec::new(),
        })
    }

    /// Size of the address space: valid addresses are `[0, limit)`.
    pub fn limit(&self) -> u64 {
        self.limit
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
        // SAFETY: callers pass a page number below `limit / PAGE_SIZE`, the
        // length of the permission mapping.
        unsafe { *self.perm_base.add(page as usize) }
    }

    fn set_perm_byte(&mut self, page: u64, v: u8) {
        self.perms[page as usize] = v;
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
        self.zero_pages(start, end)?;
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
        self.zero_pages(start, end)?;
        for page in start >> PAGE_SHIFT..end >> PAGE_SHIFT {
            self.note_code_page(page);
            self.set_perm_byte(page, 0);
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
            self.set_perm_byte(page, P_MAPPED | perm.bits());
        }
        Ok(())
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
        let p = self.perm_byte(addr.0 >> PAGE_SHIFT);
        (p & P_MAPPED != 0).then_some(Perm::from_bits(p))
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
        // SAFETY: the range lies inside `data` (checked by `check_range`), and
        // MADV_DONTNEED on a private anonymous mapping only makes the pages
        // read back as zero; no Rust reference into guest memory is alive
        // because all access goes through `&mut self` methods.
        unsafe {
            self.data.unchecked_advise_range(
                memmap2::UncheckedAdvice::DontNeed,
                start as usize,
                (end - start) as usize,
            )?;
        }
        Ok(())
    }

    /// Copies this address space: every mapped page with its permissions.
    /// Only pages the host has resident are copied (the rest read as zero in
    /// both), so forking a process with a large, mostly untouched heap is cheap.
    pub fn fork(&self) -> Result<Memory, MemError> {
        let mut child = Memory::new(self.limit)?;
        for (&s, &e) in &self.regions {
            for page in s >> PAGE_SHIFT..e >> PAGE_SHIFT {
                child.set_perm_byte(page, self.perm_byte(page) & !P_CODE);
            }
            let pages = ((e - s) / PAGE_SIZE) as usize;
            let mut resident = vec![0u8; pages];
            // SAFETY: `[s, e)` lies inside our data mapping, and `resident`
            // has one byte per page of the range as mincore(2) requires.
            let rc =
                unsafe { libc::mincore(self.base.add(s as usize).cast(), (e - s) as usize, resident.as_mut_ptr()) };
            let copy_all = rc != 0;
            let mut p = 0;
            while p < pages {
                if !copy_all && resident[p] & 1 == 0 {
                    p += 1;
                    continue;
                }
                let run_start = p;
                while p < pages && (copy_all || resident[p] & 1 != 0) {
                    p += 1;
                }
                let off = (s as usize) + run_start * PAGE_SIZE as usize;
                let len = (p - run_start) * PAGE_SIZE as usize;
                child.data[off..off + len].copy_from_slice(&self.data[off..off + len]);
            }
        }
        child.regions = self.regions.clone();
        Ok(child)
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
        self.check_access(addr.0, len, Access::Read)?;
        if len == 0 {
            return Ok(&[]);
        }
        Ok(&self.data[addr.0 as usize..(addr.0 + len) as usize])
    }

    /// A validated mutable view of guest memory writable by the guest.
    pub fn slice_mut(&mut self, addr: GuestAddress, len: u64) -> Result<&mut [u8], MemError> {
        self.check_access(addr.0, len, Access::Write)?;
        if len == 0 {
            return Ok(&mut []);
        }
        self.drop_code_in(addr.0, len);
        Ok(&mut self.data[addr.0 as usize..(addr.0 + len) as usize])
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
        let a = addr.0 as usize;
        buf.copy_from_slice(&self.data[a..a + buf.len()]);
        Ok(())
    }

    /// Writes mapped memory regardless of permissions (for loaders, debuggers).
    pub fn write_raw(&mut self, addr: GuestAddress, buf: &[u8]) -> Result<(), MemError> {
        self.check_mapped(addr.0, buf.len() as u64)?;
        self.drop_code_in(addr.0, buf.len() as u64);
        let a = addr.0 as usize;
        self.data[a..a + buf.len()].copy_from_slice(buf);
        Ok(())
    }

    /// Fills mapped memory with `byte`, regardless of permissions.
    pub fn fill_raw(&mut self, addr: GuestAddress, len: u64, byte: u8) -> Result<(), MemError> {
        self.check_mapped(addr.0, len)?;
        self.drop_code_in(addr.0, len);
        let a = addr.0 as usize;
        self.data[a..a + len as usize].fill(byte);
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
            let p = self.perm_byte(page);
            if p & P_EXEC == 0 {
                break;
            }
            self.set_perm_byte(page, p | P_CODE);
            end = ((end | (PAGE_SIZE - 1)) + 1).min(want);
        }
        &self.data[addr as usize..end as usize]
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
        addr < self.limit && self.perm_byte(addr >> PAGE_SHIFT) & P_WRITE != 0
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
        match self.check_access(addr, len, Access::Read) {
            Ok(()) => {
                let a = addr as usize;
                out.copy_from_slice(&self.data[a..a + out.len()]);
                Ok(())
            }
            Err(MemError::Fault { addr, .. }) => Err(self.fault(addr, Access::Read)),
            Err(_) => Err(self.fault(addr, Access::Read)),
        }
    }

    /// Cold path of every write: page-crossing, a page holding decoded code,
    /// or a fault.
    #[cold]
    #[inline(never)]
    fn write_slow(&mut self, addr: u64, bytes: &[u8]) -> Result<(), Trap> {
        match self.check_access(addr, bytes.len() as u64, Access::Write) {
            Ok(()) => {
                self.drop_code_in(addr, bytes.len() as u64);
                let a = addr as usize;
                self.data[a..a + bytes.len()].copy_from_slice(bytes);
                Ok(())
            }
            Err(MemError::Fault { addr, .. }) => Err(self.fault(addr, Access::Write)),
            Err(_) => Err(self.fault(addr, Access::Write)),
        }
    }

    /// Checks a write of `len` bytes without doing it (for instructions that
    /// must fault before changing any state, e.g. `push` or `cmpxchg16b`).
    pub(crate) fn probe_write(&mut self, addr: u64, len: u64) -> Result<(), Trap> {
        match self.check_access(addr, len, Access::Write) {
            Ok(()) => Ok(()),
            Err(MemError::Fault { addr, .. }) => Err(self.fault(addr, Access::Write)),
            Err(_) => Err(self.fault(addr, Access::Write)),
        }
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
        self.data.copy_within(s..s + n, d);
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
        let d = dst as usize;
        let out = &mut self.data[d..d + len as usize];
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
                    && (addr & (PAGE_SIZE - 1)) <= PAGE_SIZE - N
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
                    && (addr & (PAGE_SIZE - 1)) <= PAGE_SIZE - N
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
        Memory::new(1 << 32).unwrap()
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

    #[test]
    fn bad_ranges_are_errors() {
        let mut m = mem();
        assert!(matches!(m.map(GuestAddress(0x1001), 0x1000, Perm::RW), Err(MemError::Unaligned { .. })));
        assert!(matches!(m.map(GuestAddress(u64::MAX & !0xfff), 0x2000, Perm::RW), Err(MemError::OutOfRange { .. })));
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
