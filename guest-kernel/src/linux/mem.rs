//! Linux memory and futex calls.
//!
//! - `brk` never fails: it returns the new break, or the old one when the
//!   request cannot be met (Linux semantics; the C library checks).
//! - `mmap`: anonymous or private file mappings (file contents are copied in). A file
//!   map of a description not open for reading, or a writable shared one of a
//!   description not open for reading and writing, is EACCES.
//!   Without `MAP_FIXED` the hint is used when free, else the first free
//!   range above the mmap base.
//! - Shared file maps ([`SharedMap`]): guest memory has no shared pages (each
//!   address space is its own copy), so a writable `MAP_SHARED` file map is
//!   kept coherent at system calls instead: its bytes are written back to the
//!   file at `msync`, `munmap`, exit and exec, and before any `read` of that
//!   file; after a write-back or a `write` to the file every other shared map
//!   of it (in any process) is refreshed. Two maps therefore agree after the
//!   writer's next such call, not instantly (a program that polls a shared
//!   map for another process's stores without a system call never sees
//!   them). Bytes past the end of the file are never written back, as on
//!   Linux. Not done: a `MAP_SHARED` file map made without `PROT_WRITE` is a
//!   copy taken at `mmap` (it does not see later writes to the file, and an
//!   `mprotect` to writable keeps its stores private); keeping it coherent the
//!   same way would cost a second copy of every such map (memmap2 maps whole
//!   files so) and a copy of it at each write of the file.
//! - Shared anonymous maps work the same way once a fork shares them: the
//!   pages get a kernel-side copy (until then the map costs nothing), every
//!   process's stores reach it and every map of it is refreshed from it
//!   before each system call of a process that has such a map (and at its
//!   exit). Parent and child therefore see each other's stores after any
//!   call that orders them (a pipe, `waitpid`); as with file maps, a process
//!   spinning on the map without system calls does not. The cost: one
//!   compare and copy of the map per call of such a process, paid only while
//!   another map shares its pages. So that a call's cost does not grow with sizes a
//!   guest merely asks for, such maps may have [`MAX_SYNCED_AT_CALL`] bytes in all,
//!   and all shared maps' copies [`MAX_SHARED_COPIES`]: a fork, `mmap` or `mremap`
//!   that would share more is ENOMEM (Linux has no such limit).
//! - A shared map of a memfd (any protection) is one of those from the start: its
//!   pages are the memfd's bytes (`memfd.rs`). `read`/`write`/`ftruncate` of the
//!   memfd synchronise its maps first and refresh them after, as for a file; two
//!   maps of one memfd (in one process or after a fork) agree after each system
//!   call. Pages past the memfd's end keep their last bytes (Linux would raise
//!   SIGBUS there) and their stores are dropped.
//! - `write`/`ftruncate` of a file synchronise its shared maps before the call (so
//!   a map's earlier stores are not lost) and refresh them after.
//! - `madvise(MADV_DONTNEED)` drops private pages as Linux does: anonymous ones read
//!   back as zero and those of a private file map ([`FileMap`], the only maps kept for
//!   this) as the file's bytes; shared maps keep their bytes (their backing has them).
//!   jemalloc (rustc, ...) checks this at start-up and complains when pages keep their
//!   contents. Pages the exec loader mapped are not file maps here: they read as zero.
//! - `mremap` grows in place when the pages after the mapping are free, else
//!   moves (with `MREMAP_MAYMOVE`) by copying its nonzero pages; the kernel's
//!   records of shared and private file maps follow (a grown file map gets the
//!   file's bytes).
//! - `futex`: WAIT/WAIT_BITSET (relative resp. absolute timeouts), WAKE,
//!   WAKE_BITSET, REQUEUE/CMP_REQUEUE (waiters beyond `val` are woken too, a
//!   correct if less efficient requeue). Bitsets are not matched: wakes are
//!   by address.

use std::cell::RefCell;
use std::rc::Rc;

use emu::{GuestAddress, Perm};
use warden_abi as r;
use warden_abi::Errno;

use super::abi;
use crate::mm::{round_up, PAGE};
use crate::process::{OnWake, WaitOn};
use crate::syscall::{Block, Call, SysError, SysResult};
use crate::usercopy::read_u32;
use crate::{Kernel, Pid};

fn err<T>(e: i32) -> Result<T, SysError> {
    Err(SysError::Errno(Errno(e)))
}

/// The most bytes the shared anonymous and memfd maps that are kept coherent at every
/// call may have in all (their kernel-side copies, `seen`): each call of a process with
/// one compares all of them, so without a limit a call's cost grew with the size of maps
/// a guest merely asked for (a forked child with a large shared map took seconds a call).
/// Past it, a fork or `mmap` that would share more is ENOMEM.
pub(crate) const MAX_SYNCED_AT_CALL: u64 = 2 << 20;

/// The most bytes all shared maps' kernel-side copies (`seen`) may have in all; a
/// writable shared file map costs a copy of its length, however short the file.
pub(crate) const MAX_SHARED_COPIES: u64 = 64 << 20;

fn perm(prot: usize) -> Perm {
    let mut p = Perm::NONE;
    if prot & abi::PROT_READ != 0 {
        p = p.union(Perm::READ);
    }
    if prot & abi::PROT_WRITE != 0 {
        p = p.union(Perm::RW);
    }
    if prot & abi::PROT_EXEC != 0 {
        p = p.union(Perm::RX);
    }
    p
}

/// How many leading bytes `a` and `b` have in common. A shared map is compared at every
/// system call and is mostly unchanged, so whole chunks are compared first (a byte loop
/// made a call of a process with a large shared map cost milliseconds).
fn equal_prefix(a: &[u8], b: &[u8]) -> usize {
    const CHUNK: usize = 256;
    let n = a.len().min(b.len());
    let mut i = 0;
    while i + CHUNK <= n && a[i..i + CHUNK] == b[i..i + CHUNK] {
        i += CHUNK;
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

/// The runs of indices below `a.len()` where `a` and `b` (at least as long) differ, in order.
fn differing_runs<'a>(a: &'a [u8], b: &'a [u8]) -> impl Iterator<Item = std::ops::Range<usize>> + 'a {
    let mut i = 0;
    std::iter::from_fn(move || {
        i += equal_prefix(&a[i..], &b[i..]);
        let start = i;
        while i < a.len() && a[i] != b[i] {
            i += 1;
        }
        (start < i).then_some(start..i)
    })
}

/// What a shared map shares.
#[derive(Clone)]
enum Backing {
    /// A file, found by its path (maps of one file through different opens find each
    /// other by it).
    File { file: Rc<crate::process::OpenFile>, path: Vec<u8> },
    /// The pages of a `MAP_SHARED | MAP_ANONYMOUS` map (empty until a fork first shares
    /// them: a map nobody shares costs nothing), or a memfd's bytes.
    Anon(Rc<RefCell<Vec<u8>>>),
}

impl Backing {
    fn same(&self, other: &Backing) -> bool {
        match (self, other) {
            (Backing::File { path: a, .. }, Backing::File { path: b, .. }) => a == b,
            (Backing::Anon(a), Backing::Anon(b)) => Rc::ptr_eq(a, b),
            _ => false,
        }
    }

    /// Writes the runs where `now` differs from `seen` at `offset`; bytes past the end of
    /// a file are never written back, as on Linux.
    fn write_back(&self, offset: u64, now: &[u8], seen: &[u8]) {
        let runs = || differing_runs(now, seen);
        match self {
            Backing::Anon(pages) => {
                let mut pages = pages.borrow_mut();
                let Some(to) = pages.get_mut(offset as usize..) else { return };
                let size = to.len().min(now.len());
                for run in runs().take_while(|run| run.start < size) {
                    let end = run.end.min(size);
                    to[run.start..end].copy_from_slice(&now[run.start..end]);
                }
            }
            Backing::File { file, .. } => {
                let Ok(mut f) = file.file.try_borrow_mut() else { return };
                let size = f.stat().map_or(0, |st| st.st_size).saturating_sub(offset).min(now.len() as u64) as usize;
                let Ok(old) = f.seek(0, r::SEEK_CUR) else { return };
                for run in runs().take_while(|run| run.start < size) {
                    let end = run.end.min(size);
                    if f.seek((offset + run.start as u64) as i64, r::SEEK_SET).is_ok() {
                        let mut done = run.start;
                        while done < end {
                            match f.write(&now[done..end]) {
                                Ok(n) if n > 0 => done += n,
                                _ => break,
                            }
                        }
                    }
                }
                let _ = f.seek(old as i64, r::SEEK_SET);
            }
        }
    }

    /// Reads the shared bytes at `offset` into `buf`; how many there are.
    fn read(&self, offset: u64, buf: &mut [u8]) -> Option<usize> {
        match self {
            Backing::Anon(pages) => {
                let pages = pages.borrow();
                let from = pages.get(offset as usize..)?;
                let n = from.len().min(buf.len());
                buf[..n].copy_from_slice(&from[..n]);
                Some(n)
            }
            Backing::File { file, .. } => match file.file.try_borrow().ok()?.read_at(offset, buf)? {
                Ok(n) => Some(n.min(buf.len())),
                Err(_) => None,
            },
        }
    }
}

/// A `MAP_SHARED` map: of a file when writable, or anonymous (see the module note).
pub(crate) struct SharedMap {
    /// The address space (`Mm::id`) and the mapped range in it.
    pub(super) mm: u64,
    addr: u64,
    len: u64,
    backing: Backing,
    offset: u64,
    /// The map's bytes at its last synchronisation: the bytes that differ from it now are
    /// the process's stores, the only ones written back (so maps do not undo each other).
    /// Empty for an anonymous map no fork has shared yet.
    seen: Vec<u8>,
    /// Linux's `VM_MAYWRITE`: `mprotect` may make it writable (not for a map of a
    /// description that cannot write, nor one made while a memfd was write-sealed).
    may_write: bool,
}

impl SharedMap {
    fn cut(&self, addr: u64, len: u64) -> SharedMap {
        let from = (addr - self.addr) as usize;
        SharedMap {
            mm: self.mm,
            addr,
            len,
            backing: self.backing.clone(),
            offset: self.offset + from as u64,
            seen: self.seen.get(from..from + len as usize).map(<[u8]>::to_vec).unwrap_or_default(),
            may_write: self.may_write,
        }
    }

    /// True once the map's bytes are shared with another map (a file map always is).
    fn live(&self) -> bool {
        !self.seen.is_empty()
    }
}

/// A private file map, kept so `MADV_DONTNEED` can bring back the file's bytes.
pub(crate) struct FileMap {
    /// The address space (`Mm::id`) and the mapped range in it.
    pub(super) mm: u64,
    addr: u64,
    len: u64,
    file: Rc<crate::process::OpenFile>,
    offset: u64,
    /// A read-only `MAP_SHARED` map of a description that cannot write: `mprotect` may
    /// not make it writable (Linux: no `VM_MAYWRITE`).
    no_write: bool,
}

impl FileMap {
    /// The parts of this map outside `[lo, hi)`.
    fn outside(self, lo: u64, hi: u64) -> Vec<FileMap> {
        let end = self.addr + self.len;
        let mut parts = Vec::new();
        if self.addr < lo {
            parts.push(FileMap { len: lo - self.addr, file: self.file.clone(), ..self });
        }
        if end > hi {
            parts.push(FileMap { addr: hi, len: end - hi, offset: self.offset + (hi - self.addr), ..self });
        }
        parts
    }
}

impl Kernel {
    /// ENOMEM unless the shared maps' copies may grow by `synced` bytes of maps kept
    /// coherent at every call and `other` bytes of other shared maps (the two limits above).
    fn lx_may_copy(&self, synced: u64, other: u64) -> Result<(), Errno> {
        let (mut at_call, mut all) = (synced, synced.saturating_add(other));
        for m in &self.linux.shared_maps {
            let n = m.seen.len() as u64;
            all += n;
            if matches!(m.backing, Backing::Anon(_)) {
                at_call += n;
            }
        }
        if at_call > MAX_SYNCED_AT_CALL || all > MAX_SHARED_COPIES {
            return Err(Errno(r::ENOMEM));
        }
        Ok(())
    }

    /// ENOMEM if a fork of address space `parent` would copy more shared maps than the
    /// limits allow: the child's copy of each is shared, and an anonymous map shared for
    /// the first time gets a copy in the parent too.
    pub(crate) fn lx_may_fork_shared(&self, parent: u64) -> Result<(), Errno> {
        let (mut synced, mut other) = (0u64, 0u64);
        for m in self.linux.shared_maps.iter().filter(|m| m.mm == parent) {
            match m.backing {
                Backing::Anon(_) => synced += if m.live() { m.len } else { 2 * m.len },
                Backing::File { .. } => other += m.len,
            }
        }
        self.lx_may_copy(synced, other)
    }

    /// The address space with id `id`, if a live process has it.
    fn mm_by_id(&self, id: u64) -> Option<Rc<RefCell<crate::mm::Mm>>> {
        self.procs.values().map(|p| &p.mm).find(|m| m.try_borrow().is_ok_and(|m| m.id == id)).cloned()
    }

    /// Synchronises every shared map whose backing one of the maps `which` selects has:
    /// all their stores since their last synchronisation go to the backing (the file or
    /// the shared pages), then all of them are refreshed from it.
    fn lx_sync_shared(&mut self, which: impl Fn(&SharedMap) -> bool) {
        let mut maps = std::mem::take(&mut self.linux.shared_maps);
        let mut touched: Vec<Backing> = Vec::new();
        for m in maps.iter().filter(|m| m.live() && which(m)) {
            if !touched.iter().any(|b| b.same(&m.backing)) {
                touched.push(m.backing.clone());
            }
        }
        let spaces: Vec<_> = maps.iter().map(|m| self.mm_by_id(m.mm)).collect();
        let synced = |m: &SharedMap| m.live() && touched.iter().any(|b| b.same(&m.backing));
        for (m, space) in maps.iter().zip(&spaces) {
            let Some(space) = space.as_ref().filter(|_| synced(m)) else { continue };
            let mut now = vec![0u8; m.len as usize];
            if space.borrow().space.mem.read_raw(GuestAddress(m.addr), &mut now).is_ok() {
                m.backing.write_back(m.offset, &now, &m.seen);
            }
        }
        for (m, space) in maps.iter_mut().zip(&spaces) {
            let Some(space) = space.as_ref().filter(|_| synced(m)) else { continue };
            refresh(m, space);
        }
        self.linux.shared_maps = maps;
    }

    /// Copies the backing into every shared map `which` selects.
    fn lx_refresh_shared(&mut self, which: impl Fn(&SharedMap) -> bool) {
        let mut maps = std::mem::take(&mut self.linux.shared_maps);
        for m in maps.iter_mut().filter(|m| m.live() && which(m)) {
            if let Some(space) = self.mm_by_id(m.mm) {
                refresh(m, &space);
            }
        }
        self.linux.shared_maps = maps;
    }

    /// Writes back the shared maps of address space `mm` overlapping `[lo, hi)` (msync).
    pub(crate) fn lx_flush_shared(&mut self, mm: u64, lo: u64, hi: u64) {
        if !self.linux.shared_maps.is_empty() {
            self.lx_sync_shared(|m| m.mm == mm && m.addr < hi && lo < m.addr + m.len);
        }
    }

    /// Before every call of a process with anonymous maps a fork shared: the other
    /// processes' stores become visible and its own reach them (see the module note).
    pub(crate) fn lx_sync_at_call(&mut self, tid: Pid) {
        let Ok(mm) = self.mm_of(tid) else { return };
        let Ok(id) = mm.try_borrow().map(|m| m.id) else { return };
        let shares = |m: &SharedMap| m.mm == id && m.live() && matches!(m.backing, Backing::Anon(_));
        // Only while another map has the same pages (a lone memfd map is kept coherent
        // with the memfd's reads and writes by `lx_shared_file_io`).
        let maps = &self.linux.shared_maps;
        let not_alone =
            |m: &SharedMap| maps.iter().any(|o| !std::ptr::eq(o, m) && o.live() && o.backing.same(&m.backing));
        if maps.iter().any(|m| shares(m) && not_alone(m)) {
            self.lx_sync_shared(shares);
        }
    }

    /// Around a read, write or truncate of `desc`: before it (`after` false) the stores in
    /// its shared maps reach it and the maps agree; after a change (`after` true) the maps
    /// get its new bytes. Nothing to do without shared maps.
    pub(crate) fn lx_shared_file_io(&mut self, desc: &crate::process::OpenFile, after: bool) {
        if self.linux.shared_maps.is_empty() {
            return;
        }
        let Ok(file) = desc.file.try_borrow() else { return };
        let memfd = super::memfd::shared_bytes(&*file).map(|(bytes, _)| bytes);
        let path = file.path();
        drop(file);
        let backs = |m: &SharedMap| match (&m.backing, &memfd) {
            (Backing::Anon(pages), Some(bytes)) => Rc::ptr_eq(pages, bytes),
            (Backing::File { path: p, .. }, None) => *p == path,
            _ => false,
        };
        if after {
            self.lx_refresh_shared(backs);
        } else {
            self.lx_sync_shared(backs);
        }
    }

    /// True if a shared map that may write (writable or not: Linux 6.x counts both) shares
    /// the memfd bytes `bytes` (`F_SEAL_WRITE` is EBUSY then).
    pub(super) fn lx_writably_shared(&self, bytes: &Rc<RefCell<Vec<u8>>>) -> bool {
        self.linux
            .shared_maps
            .iter()
            .any(|m| m.may_write && matches!(&m.backing, Backing::Anon(p) if Rc::ptr_eq(p, bytes)))
    }

    /// EACCES if `mprotect` would make part of `[lo, hi)` of address space `mm` writable
    /// that is a shared map that may not write.
    fn lx_check_make_writable(&self, mm: u64, lo: u64, hi: u64) -> Result<(), Errno> {
        let hit = |m_mm: u64, addr: u64, len: u64| m_mm == mm && addr < hi && lo < addr + len;
        let shared = self.linux.shared_maps.iter().any(|m| !m.may_write && hit(m.mm, m.addr, m.len));
        if shared || self.linux.file_maps.iter().any(|m| m.no_write && hit(m.mm, m.addr, m.len)) {
            return Err(Errno(r::EACCES));
        }
        Ok(())
    }

    /// After `mremap` moved `[old, old + old_len)` to `to` and resized it to `new_len`: the
    /// records of the shared and private file maps there follow the pages (the one that
    /// ended at the end of the range grows with it and gets its backing's bytes); those of
    /// the pages given up go.
    fn lx_follow_remap(&mut self, id: u64, old: u64, old_len: u64, to: u64, new_len: u64) {
        let kept = old_len.min(new_len);
        self.lx_drop_shared(id, old + kept, old + old_len);
        let inside = |mm: u64, addr: u64, len: u64| mm == id && old <= addr && addr + len <= old + kept;
        let (mut shared, others): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.linux.shared_maps).into_iter().partition(|m| inside(m.mm, m.addr, m.len));
        self.linux.shared_maps = others;
        let (mut private, others): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.linux.file_maps).into_iter().partition(|m| inside(m.mm, m.addr, m.len));
        self.linux.file_maps = others;
        if to != old {
            self.lx_drop_shared(id, old, old + kept); // parts of maps that straddled the range
        }
        let extra = new_len.saturating_sub(old_len);
        let space = self.mm_by_id(id);
        for m in &mut shared {
            let grows = m.addr + m.len == old + old_len && extra > 0;
            m.addr = m.addr - old + to;
            if grows {
                m.len += extra;
            }
            if let Some(space) = space.as_ref().filter(|_| m.live()) {
                m.seen.resize(m.len as usize, 0);
                refresh(m, space);
            }
        }
        for m in &mut private {
            m.addr = m.addr - old + to;
            if m.addr + m.len == to + old_len && extra > 0 {
                let at = m.addr + m.len;
                if let (Some(space), Ok(bytes)) =
                    (&space, crate::io::map_contents(&m.file, m.offset + m.len, extra as usize))
                {
                    let _ = space.borrow_mut().space.mem.write_raw(GuestAddress(at), &bytes);
                }
                m.len += extra;
            }
        }
        self.linux.shared_maps.extend(shared);
        self.linux.file_maps.extend(private);
    }

    /// Writes back and forgets the shared maps of `mm` in `[lo, hi)`, and forgets its
    /// private file maps there (munmap, exit).
    pub(crate) fn lx_drop_shared(&mut self, mm: u64, lo: u64, hi: u64) {
        if self.linux.file_maps.iter().any(|m| m.mm == mm) {
            let mut kept = Vec::new();
            for m in std::mem::take(&mut self.linux.file_maps) {
                if m.mm != mm || m.addr >= hi || lo >= m.addr + m.len {
                    kept.push(m);
                } else {
                    kept.extend(m.outside(lo, hi));
                }
            }
            self.linux.file_maps = kept;
        }
        if self.linux.shared_maps.is_empty() {
            return;
        }
        self.lx_flush_shared(mm, lo, hi);
        let mut kept = Vec::new();
        for m in std::mem::take(&mut self.linux.shared_maps) {
            let end = m.addr + m.len;
            if m.mm != mm || m.addr >= hi || lo >= end {
                kept.push(m);
                continue;
            }
            // Keep what lies outside the range.
            if m.addr < lo {
                kept.push(m.cut(m.addr, lo - m.addr));
            }
            if end > hi {
                kept.push(m.cut(hi, end - hi));
            }
        }
        self.linux.shared_maps = kept;
    }

    /// A forked child's copy of its parent's shared maps is shared too. An anonymous map
    /// shared for the first time gets its pages: the parent's bytes now.
    pub(crate) fn lx_fork_shared(&mut self, parent: u64, child: u64) {
        if parent == child {
            return;
        }
        let space = self.mm_by_id(parent);
        for m in self.linux.shared_maps.iter_mut().filter(|m| m.mm == parent && !m.live()) {
            let (Some(space), Backing::Anon(pages)) = (&space, &m.backing) else { continue };
            let mut now = vec![0u8; m.len as usize];
            if space.borrow().space.mem.read_raw(GuestAddress(m.addr), &mut now).is_err() {
                continue;
            }
            let mut pages = pages.borrow_mut();
            let end = (m.offset + m.len) as usize;
            if pages.len() < end {
                pages.resize(end, 0);
            }
            pages[m.offset as usize..end].copy_from_slice(&now);
            m.seen = now;
        }
        let copies: Vec<SharedMap> = self
            .linux
            .shared_maps
            .iter()
            .filter(|m| m.mm == parent)
            .map(|m| SharedMap { mm: child, ..m.cut(m.addr, m.len) })
            .collect();
        self.linux.shared_maps.extend(copies);
        let copies: Vec<FileMap> = self
            .linux
            .file_maps
            .iter()
            .filter(|m| m.mm == parent)
            .map(|m| FileMap { mm: child, file: m.file.clone(), ..*m })
            .collect();
        self.linux.file_maps.extend(copies);
    }

    /// `MADV_DONTNEED` on `[addr, addr + len)` of `tid`'s address space (see the module
    /// note): ENOMEM if part of the range is unmapped (the mapped parts are still dropped).
    fn lx_dont_need(&mut self, tid: Pid, addr: u64, len: u64) -> Result<(), Errno> {
        let mm = self.mm_of(tid)?;
        let mut mm = mm.borrow_mut();
        let (id, end) = (mm.id, addr.checked_add(len).ok_or(Errno(r::EINVAL))?);
        let shared =
            |page: u64| self.linux.shared_maps.iter().any(|m| m.mm == id && m.addr <= page && page < m.addr + m.len);
        let mut page = addr;
        let mut unmapped = false;
        while page < end {
            // A run of pages with one permission, none of them shared.
            let Some(perm) = mm.space.mem.perm_at(GuestAddress(page)) else {
                // On to the next mapped page: the range may be far larger than the maps.
                unmapped = true;
                let next = mm.space.mem.regions().map(|(s, _)| s.0).filter(|&s| s > page).min();
                page = next.unwrap_or(end).min(end);
                continue;
            };
            if shared(page) {
                page += PAGE;
                continue;
            }
            let mut run_end = page + PAGE;
            while run_end < end && !shared(run_end) && mm.space.mem.perm_at(GuestAddress(run_end)) == Some(perm) {
                run_end += PAGE;
            }
            mm.space.mem.map(GuestAddress(page), run_end - page, perm).map_err(|_| Errno(r::ENOMEM))?;
            page = run_end;
        }
        for m in self.linux.file_maps.iter().filter(|m| m.mm == id && m.addr < end && addr < m.addr + m.len) {
            let (lo, hi) = (m.addr.max(addr), (m.addr + m.len).min(end));
            let bytes = crate::io::map_contents(&m.file, m.offset + (lo - m.addr), (hi - lo) as usize)?;
            mm.space.mem.write_raw(GuestAddress(lo), &bytes).map_err(|_| Errno(r::EFAULT))?;
        }
        if unmapped {
            return Err(Errno(r::ENOMEM));
        }
        Ok(())
    }

    fn lx_mmap(&mut self, tid: Pid, a: &[usize; 6]) -> SysResult {
        let (hint, size, prot, flags, fd, offset) = (a[0] as u64, a[1] as u64, a[2], a[3], a[4] as i32, a[5] as u64);
        if size == 0 || offset % PAGE != 0 {
            return err(r::EINVAL);
        }
        let len = round_up(size).ok_or(Errno(r::ENOMEM))?;
        let anon = flags & abi::MAP_ANONYMOUS != 0;
        let file = if anon { None } else { Some(self.desc(tid, fd as usize)?) };
        let mm = self.mm_of(tid)?;
        let mut mm = mm.borrow_mut();
        let fixed = flags & (abi::MAP_FIXED | abi::MAP_FIXED_NOREPLACE) != 0;
        let free = |mm: &crate::mm::Mm, at: u64| {
            at.is_multiple_of(PAGE)
                && at >= PAGE
                && at.checked_add(len).is_some_and(|end| end <= mm.stack_top())
                && !mm.space.mem.regions().any(|(s, e)| s.0 < at + len && e.0 > at)
        };
        let addr = if fixed {
            if hint % PAGE != 0 || hint == 0 {
                return err(r::EINVAL);
            }
            if flags & abi::MAP_FIXED_NOREPLACE != 0 && !free(&mm, hint) {
                return err(r::EEXIST);
            }
            hint
        } else if hint != 0 && free(&mm, hint & !(PAGE - 1)) {
            hint & !(PAGE - 1)
        } else {
            let base = mm.mmap_base();
            mm.space.mem.find_free(GuestAddress(base), len).ok_or(Errno(r::ENOMEM))?.0
        };
        if addr.checked_add(len).is_none_or(|end| end > mm.size()) {
            return err(r::ENOMEM);
        }
        let shared = flags & abi::MAP_SHARED != 0; // MAP_SHARED or MAP_SHARED_VALIDATE
                                                   // A file map needs a description open for reading, a writable shared one for
                                                   // reading and writing (EACCES, as on Linux).
        if let Some(mode) = file.as_ref().map(|d| d.flags.get() & r::O_ACCMODE) {
            if mode == r::O_WRONLY || (shared && prot & abi::PROT_WRITE != 0 && mode != r::O_RDWR) {
                return err(r::EACCES);
            }
        }
        let memfd = file.as_ref().and_then(|d| super::memfd::shared_bytes(&*d.file.try_borrow().ok()?));
        if let Some((_, seals)) = memfd.as_ref().filter(|_| shared && prot & abi::PROT_WRITE != 0) {
            super::memfd::check_shared_write_map(*seals)?;
        }
        // A shared file or memfd map keeps a copy of its bytes from the start.
        if shared && memfd.is_some() {
            self.lx_may_copy(len, 0)?;
        } else if shared && file.is_some() && prot & abi::PROT_WRITE != 0 {
            self.lx_may_copy(0, len)?;
        }
        let contents = match &file {
            None => Vec::new(),
            Some(desc) => crate::io::map_contents(desc, offset, len as usize)?,
        };
        mm.map(addr, len, Perm::RW)?;
        if !contents.is_empty() {
            mm.space.mem.write_raw(GuestAddress(addr), &contents).map_err(|_| Errno(r::EFAULT))?;
        }
        mm.space.mem.protect(GuestAddress(addr), len, perm(prot)).map_err(|_| Errno(r::ENOMEM))?;
        let id = mm.id;
        drop(mm);
        // A fixed map replaces whatever shared map was there.
        self.lx_drop_shared(id, addr, addr + len);
        match file {
            Some(desc) if let Some((bytes, seals)) = memfd.filter(|_| shared) => {
                let mut seen = contents;
                seen.resize(len as usize, 0);
                let backing = Backing::Anon(bytes);
                let may_write = can_write(&desc) && super::memfd::check_shared_write_map(seals).is_ok();
                self.linux.shared_maps.push(SharedMap { mm: id, addr, len, backing, offset, seen, may_write });
            }
            Some(desc) if shared && prot & abi::PROT_WRITE != 0 => {
                let path = desc.file.try_borrow().map(|f| f.path()).unwrap_or_default();
                let mut seen = contents;
                seen.resize(len as usize, 0);
                let backing = Backing::File { file: desc, path };
                self.linux.shared_maps.push(SharedMap { mm: id, addr, len, backing, offset, seen, may_write: true });
            }
            Some(desc) => {
                let no_write = shared && !can_write(&desc);
                self.linux.file_maps.push(FileMap { mm: id, addr, len, file: desc, offset, no_write });
            }
            None if shared => {
                let backing = Backing::Anon(Rc::default());
                let seen = Vec::new();
                self.linux.shared_maps.push(SharedMap { mm: id, addr, len, backing, offset: 0, seen, may_write: true });
            }
            _ => {}
        }
        Ok(addr as usize)
    }

    fn lx_mremap(&mut self, tid: Pid, old: u64, old_size: u64, new_size: u64, flags: usize) -> SysResult {
        if !old.is_multiple_of(PAGE) || new_size == 0 || flags & abi::MREMAP_FIXED != 0 {
            return err(r::EINVAL);
        }
        let old_len = round_up(old_size).ok_or(Errno(r::EINVAL))?;
        let new_len = round_up(new_size).ok_or(Errno(r::ENOMEM))?;
        let mm = self.mm_of(tid)?;
        let mut mm = mm.borrow_mut();
        if !mm.space.mem.is_mapped(GuestAddress(old), old_len) {
            return err(r::EFAULT);
        }
        if new_len <= old_len {
            if new_len < old_len {
                mm.unmap(old + new_len, old_len - new_len)?;
            }
            return Ok(old as usize);
        }
        let p = mm.space.mem.perm_at(GuestAddress(old)).unwrap_or(Perm::RW);
        let tail = old + old_len;
        let extra = new_len - old_len;
        let tail_free = tail.checked_add(extra).is_some_and(|e| e <= mm.stack_top())
            && !mm.space.mem.regions().any(|(s, e)| s.0 < tail + extra && e.0 > tail);
        if tail_free {
            mm.map(tail, extra, p)?;
            return Ok(old as usize);
        }
        if flags & abi::MREMAP_MAYMOVE == 0 {
            return err(r::ENOMEM);
        }
        let base = mm.mmap_base();
        let to = mm.space.mem.find_free(GuestAddress(base), new_len).ok_or(Errno(r::ENOMEM))?.0;
        mm.map(to, new_len, Perm::RW)?;
        // A page at a time: the old range may be far larger than what the guest filled,
        // and the new pages are zero already, so zero pages are not written (they would
        // become resident on the host).
        let mut page = [0u8; PAGE as usize];
        for at in (0..old_len).step_by(PAGE as usize) {
            mm.space.mem.read_raw(GuestAddress(old + at), &mut page).map_err(|_| Errno(r::EFAULT))?;
            if page.iter().any(|&b| b != 0) {
                mm.space.mem.write_raw(GuestAddress(to + at), &page).map_err(|_| Errno(r::EFAULT))?;
            }
        }
        mm.space.mem.protect(GuestAddress(to), new_len, p).map_err(|_| Errno(r::ENOMEM))?;
        mm.unmap(old, old_len)?;
        Ok(to as usize)
    }

    fn lx_futex(&mut self, tid: Pid, a: &[usize; 6], timeout: Option<u64>) -> SysResult {
        let (addr, op, val) = (a[0], a[1], a[2]);
        if addr % 4 != 0 {
            return err(r::EINVAL);
        }
        let mm = self.mm_of(tid)?;
        let id = mm.borrow().id;
        let key = WaitOn::Futex(id, addr as u64);
        match op & abi::FUTEX_CMD_MASK {
            abi::FUTEX_WAIT | abi::FUTEX_WAIT_BITSET => {
                let current = read_u32(&mm.borrow().space.mem, addr)?;
                if current != val as u32 {
                    return err(r::EAGAIN);
                }
                let deadline = match timeout {
                    None => None,
                    Some(ns) if op & abi::FUTEX_CMD_MASK == abi::FUTEX_WAIT => {
                        Some(self.clock.monotonic_ns().saturating_add(ns))
                    }
                    Some(abs) => {
                        // Absolute, on CLOCK_MONOTONIC (or CLOCK_REALTIME with the flag).
                        let now_clock = if op & abi::FUTEX_CLOCK_REALTIME != 0 {
                            self.clock.realtime_ns()
                        } else {
                            self.clock.monotonic_ns()
                        };
                        Some(self.clock.monotonic_ns().saturating_add(abs.saturating_sub(now_clock)))
                    }
                };
                Err(SysError::Block(Block {
                    on: key,
                    deadline,
                    on_timeout: Err(Errno(r::ETIMEDOUT)),
                    on_wake: OnWake::Return(Ok(0)),
                }))
            }
            abi::FUTEX_WAKE | abi::FUTEX_WAKE_BITSET => Ok(self.futex_wake(key, val)),
            abi::FUTEX_REQUEUE | abi::FUTEX_CMP_REQUEUE => {
                if op & abi::FUTEX_CMD_MASK == abi::FUTEX_CMP_REQUEUE {
                    let current = read_u32(&mm.borrow().space.mem, addr)?;
                    if current != a[5] as u32 {
                        return err(r::EAGAIN);
                    }
                }
                // Wake everyone: spurious wake-ups are allowed.
                Ok(self.futex_wake(key, usize::MAX))
            }
            _ => err(r::ENOSYS),
        }
    }
}

/// True if `desc` is open for reading and writing (what a writable shared map needs).
fn can_write(desc: &crate::process::OpenFile) -> bool {
    desc.flags.get() & r::O_ACCMODE == r::O_RDWR
}

/// Copies map `m`'s backing into its memory in `space`. Shared pages (anonymous, memfd)
/// are compared with the memory a page at a time and only the bytes that differ are
/// written: a map is refreshed before every call of its processes and is mostly unchanged,
/// and copying all of it (into a new buffer, the memory and `seen`) was 8 % of a
/// `linux_syscalls` fuzz input.
fn refresh(m: &mut SharedMap, space: &RefCell<crate::mm::Mm>) {
    if let Backing::Anon(pages) = &m.backing {
        let pages = pages.clone();
        let pages = pages.borrow();
        let Some(from) = pages.get(m.offset as usize..) else { return };
        let from = &from[..from.len().min(m.len as usize)];
        let mem = &mut space.borrow_mut().space.mem;
        let mut now = [0u8; PAGE as usize];
        for (i, want) in from.chunks(now.len()).enumerate() {
            let at = m.addr + (i * now.len()) as u64;
            let now = &mut now[..want.len()];
            if mem.read_raw(GuestAddress(at), now).is_err() {
                return;
            }
            for run in differing_runs(want, now) {
                if mem.write_raw(GuestAddress(at + run.start as u64), &want[run]).is_err() {
                    return;
                }
            }
        }
        m.seen[..from.len()].copy_from_slice(from);
        return;
    }
    let mut data = vec![0u8; m.len as usize];
    let Some(n) = m.backing.read(m.offset, &mut data) else { return };
    if space.borrow_mut().space.mem.write_raw(GuestAddress(m.addr), &data[..n]).is_ok() {
        m.seen[..n].copy_from_slice(&data[..n]);
    }
}

// --- handlers (rows of `warden_abi::linux_calls!`) -------------------------------------------

pub(super) fn brk(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let mm = k.mm_of(tid)?;
    let mut mm = mm.borrow_mut();
    let cur = mm.brk;
    Ok(mm.set_brk(c.args[0] as u64).unwrap_or(cur) as usize)
}

pub(super) fn mmap(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    k.lx_mmap(tid, &c.args)
}

pub(super) fn munmap(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    if c.args[1] == 0 {
        return err(r::EINVAL);
    }
    let mm = k.mm_of(tid)?;
    let (addr, len) = (c.args[0] as u64, round_up(c.args[1] as u64).ok_or(Errno(r::EINVAL))?);
    let id = mm.borrow().id;
    k.lx_drop_shared(id, addr, addr.saturating_add(len));
    mm.borrow_mut().unmap(addr, len)?;
    Ok(0)
}

pub(super) fn msync(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let (addr, len) = (c.args[0] as u64, c.args[1] as u64);
    if addr % PAGE != 0 {
        return err(r::EINVAL);
    }
    let id = k.mm_of(tid)?.borrow().id;
    k.lx_flush_shared(id, addr, addr.saturating_add(len));
    Ok(0)
}

pub(super) fn mprotect(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let addr = c.args[0] as u64;
    if !addr.is_multiple_of(PAGE) {
        return err(r::EINVAL);
    }
    let len = round_up(c.args[1] as u64).ok_or(Errno(r::ENOMEM))?;
    let mm = k.mm_of(tid)?;
    if c.args[2] & abi::PROT_WRITE != 0 {
        k.lx_check_make_writable(mm.borrow().id, addr, addr.saturating_add(len))?;
    }
    mm.borrow_mut().space.mem.protect(GuestAddress(addr), len, perm(c.args[2])).map_err(|_| Errno(r::ENOMEM))?;
    Ok(0)
}

pub(super) fn mremap(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let [old, old_size, new_size, flags, ..] = c.args;
    let (old, old_len) = (old as u64, round_up(old_size as u64).unwrap_or(0));
    let id = k.mm_of(tid)?.borrow().id;
    // The shared map that ends the range grows with it, and so does its copy.
    let extra = round_up(new_size as u64).unwrap_or(0).saturating_sub(old_len);
    let ends = |m: &SharedMap| m.addr >= old && old.checked_add(old_len) == Some(m.addr + m.len);
    let grows = k.linux.shared_maps.iter().find(|m| m.mm == id && m.live() && ends(m));
    if let Some(m) = grows.filter(|_| extra > 0) {
        let anon = matches!(m.backing, Backing::Anon(_));
        k.lx_may_copy(if anon { extra } else { 0 }, if anon { 0 } else { extra })?;
    }
    // Stores in shared maps reach their backing before the pages move.
    k.lx_flush_shared(id, old, old.saturating_add(old_len));
    let to = k.lx_mremap(tid, old, old_size as u64, new_size as u64, flags)?;
    k.lx_follow_remap(id, old, old_len, to as u64, round_up(new_size as u64).unwrap_or(0));
    Ok(to)
}

/// `madvise`: `MADV_DONTNEED` drops the private pages of the range (see
/// [`Kernel::lx_dont_need`]); other advice is accepted without effect.
pub(super) fn madvise(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let [addr, len, advice, ..] = c.args;
    if !(addr as u64).is_multiple_of(PAGE) {
        return err(r::EINVAL);
    }
    if advice == abi::MADV_DONTNEED {
        let len = round_up(len as u64).ok_or(Errno(r::EINVAL))?;
        k.lx_dont_need(tid, addr as u64, len)?;
    }
    Ok(0)
}

/// `mincore`: not implemented.
pub(super) fn not_implemented(_: &mut Kernel, _: Pid, _: &Call) -> SysResult {
    err(r::ENOSYS)
}

/// `futex`: the futex word itself is read when the call runs (the comparison must be atomic
/// with parking), never copied in; the timeout is the kernel's copy.
pub(super) fn futex(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let timeout = match c.args[1] & abi::FUTEX_CMD_MASK {
        abi::FUTEX_WAIT | abi::FUTEX_WAIT_BITSET => super::fs::timeout(c, 3)?,
        _ => None,
    };
    k.lx_futex(tid, &c.args, timeout)
}

#[cfg(test)]
mod tests {
    use emu::{reg, Gate};
    use warden_abi::linux::{nr, LINUX_CALL};

    use super::*;
    use crate::scheme::memfs::MemFs;
    use crate::{CaptureConsole, KernelConfig};
    use std::time::{Duration, Instant};

    const RW: usize = abi::PROT_READ | abi::PROT_WRITE;
    const SHARED_ANON: usize = abi::MAP_SHARED | abi::MAP_ANONYMOUS;
    const PRIVATE_ANON: usize = abi::MAP_PRIVATE | abi::MAP_ANONYMOUS;

    /// A kernel whose init is a Linux process stopped before its first instruction, with
    /// `/f` (four bytes) open for reading and writing as descriptor 3.
    fn kernel() -> (Kernel, Pid) {
        kernel_with(KernelConfig::default())
    }

    fn kernel_with(config: KernelConfig) -> (Kernel, Pid) {
        let fs = MemFs::new();
        fs.insert("/p", &crate::testkit::static_elf(&[0xf4], 0));
        fs.insert("/f", b"file");
        let (console, _) = CaptureConsole::new(b"");
        let mut k = Kernel::new(config, Box::new(fs), Box::new(console));
        k.set_personality_override(Some(super::super::Personality::Linux));
        let tid = k.spawn_init("/p", &["p"], &[]).unwrap();
        let f = k.open_path(tid, b"/f", r::O_RDWR).unwrap();
        assert_eq!(k.install_fd(tid, f, r::O_RDWR, false), Ok(3));
        (k, tid)
    }

    /// Makes Linux call `nr` as `tid`; its result.
    fn call(k: &mut Kernel, tid: Pid, nr: usize, args: [usize; 6]) -> isize {
        let entry = crate::syscall::table::entry(LINUX_CALL | nr).expect("a known call");
        let c = k.decode_call(tid, entry, args, Gate::Syscall).expect("a live thread");
        k.execute(tid, c);
        k.threads[&tid].cpu.gpr[reg::RAX] as isize
    }

    /// The bytes of the kernel-side copies of shared maps: what each call of a process
    /// sharing an anonymous map compares.
    fn copies(k: &Kernel) -> u64 {
        k.linux.shared_maps.iter().map(|m| m.seen.len() as u64).sum()
    }

    /// A fork shares a shared anonymous map only while all such maps' copies stay within
    /// [`MAX_SYNCED_AT_CALL`]: a forked child with a 64 MiB map compared all of it at each
    /// of its calls (a `linux_syscalls` input took 16 s).
    #[test]
    fn a_fork_shares_no_more_than_the_limit_of_anonymous_maps() {
        let (mut k, tid) = kernel();
        let enomem = -(r::ENOMEM as isize);
        let big = call(&mut k, tid, nr::MMAP, [0, 64 << 20, RW, SHARED_ANON, usize::MAX, 0]);
        assert!(big > 0);
        assert_eq!(call(&mut k, tid, nr::FORK, [0; 6]), enomem);
        assert_eq!(copies(&k), 0);
        assert_eq!(call(&mut k, tid, nr::MUNMAP, [big as usize, 64 << 20, 0, 0, 0, 0]), 0);
        // A map of half the limit: its first fork makes two copies, a second fork a third.
        let half = MAX_SYNCED_AT_CALL as usize / 2;
        assert!(call(&mut k, tid, nr::MMAP, [0, half, RW, SHARED_ANON, usize::MAX, 0]) > 0);
        assert!(call(&mut k, tid, nr::FORK, [0; 6]) > 0);
        assert_eq!(copies(&k), MAX_SYNCED_AT_CALL);
        assert_eq!(call(&mut k, tid, nr::FORK, [0; 6]), enomem);
        assert_eq!(copies(&k), MAX_SYNCED_AT_CALL);
        // Nor may it grow.
        let at = k.linux.shared_maps[0].addr as usize;
        assert_eq!(call(&mut k, tid, nr::MREMAP, [at, half, 2 * half, abi::MREMAP_MAYMOVE, 0, 0]), enomem);
    }

    /// A writable shared map of a four-byte file keeps a copy of its whole length: past
    /// [`MAX_SHARED_COPIES`] it is ENOMEM instead.
    #[test]
    fn a_shared_file_map_longer_than_the_limit_of_copies_is_enomem() {
        let (mut k, tid) = kernel();
        let len = MAX_SHARED_COPIES as usize + PAGE as usize;
        assert_eq!(call(&mut k, tid, nr::MMAP, [0, len, RW, abi::MAP_SHARED, 3, 0]), -(r::ENOMEM as isize));
        assert_eq!(copies(&k), 0);
        assert!(call(&mut k, tid, nr::MMAP, [0, 1 << 20, RW, abi::MAP_SHARED, 3, 0]) > 0);
        assert_eq!(copies(&k), 1 << 20);
    }

    /// A memfd's bytes are charged to the guest memory total: memfds truncated to their
    /// largest size (1 GiB each, zero-filled on the host) were limited only by the number of
    /// descriptors, so a guest could make the host hold a terabyte.
    #[test]
    fn memfds_are_charged_to_the_guest_memory_total() {
        let mut config = KernelConfig::default();
        config.limits.max_memory_total = 24 << 20;
        let (mut k, tid) = kernel_with(config);
        let name = call(&mut k, tid, nr::MMAP, [0, 4096, RW, PRIVATE_ANON, usize::MAX, 0]) as usize;
        let mm = k.mm_of(tid).unwrap();
        mm.borrow_mut().space.mem.write_raw(GuestAddress(name as u64), b"m\0").unwrap();
        let free = (24 << 20) - k.mem_total.used() as usize;
        let (a, b) = (
            call(&mut k, tid, nr::MEMFD_CREATE, [name, 0, 0, 0, 0, 0]),
            call(&mut k, tid, nr::MEMFD_CREATE, [name, 0, 0, 0, 0, 0]),
        );
        assert!(a >= 0 && b >= 0);
        assert_eq!(call(&mut k, tid, nr::FTRUNCATE, [a as usize, free - 4096, 0, 0, 0, 0]), 0);
        assert_eq!(call(&mut k, tid, nr::FTRUNCATE, [b as usize, 8192, 0, 0, 0, 0]), -(r::ENOMEM as isize));
        // Shrinking gives the bytes back; closing the last descriptor gives back the rest.
        assert_eq!(call(&mut k, tid, nr::FTRUNCATE, [a as usize, 4096, 0, 0, 0, 0]), 0);
        assert_eq!(call(&mut k, tid, nr::FTRUNCATE, [b as usize, 8192, 0, 0, 0, 0]), 0);
        let used = k.mem_total.used();
        assert_eq!(call(&mut k, tid, nr::CLOSE, [a as usize, 0, 0, 0, 0, 0]), 0);
        assert_eq!(k.mem_total.used(), used - 4096);
    }

    /// The host's resident memory, in bytes (Linux `/proc/self/statm`).
    /// `mremap` moving a large map the guest barely touched copies its filled pages only:
    /// it copied the whole map through a buffer of its size (256 MiB of host memory here,
    /// twice: the buffer and the new pages).
    #[test]
    fn mremap_moves_a_large_map_without_a_buffer_of_its_size() {
        let (mut k, tid) = kernel();
        const LEN: usize = 256 << 20;
        let old = call(&mut k, tid, nr::MMAP, [0, LEN, RW, PRIVATE_ANON, usize::MAX, 0]) as u64;
        // A map right after it, so that growing moves it.
        let fixed = PRIVATE_ANON | abi::MAP_FIXED;
        assert!(call(&mut k, tid, nr::MMAP, [(old + LEN as u64) as usize, 4096, RW, fixed, usize::MAX, 0]) > 0);
        let mm = k.mm_of(tid).unwrap();
        mm.borrow_mut().space.mem.write_raw(GuestAddress(old + 5), b"first").unwrap();
        mm.borrow_mut().space.mem.write_raw(GuestAddress(old + LEN as u64 - 4), b"last").unwrap();
        let to = call(&mut k, tid, nr::MREMAP, [old as usize, LEN, 2 * LEN, abi::MREMAP_MAYMOVE, 0, 0]) as u64;
        assert_ne!(to, old);
        // The new map's pages, not the process's resident size (other tests run beside it).
        let resident = mm.borrow().space.mem.resident_pages(GuestAddress(to), 2 * LEN as u64).unwrap();
        assert!(resident <= 2, "mremap made {resident} pages of the new map resident");
        // The measure sees the page the copy wrote.
        assert_eq!(mm.borrow().space.mem.resident_pages(GuestAddress(to), 4096), Some(1));
        let mut buf = [0u8; 5];
        mm.borrow().space.mem.read_raw(GuestAddress(to + 5), &mut buf).unwrap();
        assert_eq!(&buf, b"first");
        mm.borrow().space.mem.read_raw(GuestAddress(to + LEN as u64 - 4), &mut buf[..4]).unwrap();
        assert_eq!(&buf[..4], b"last");
        assert!(!mm.borrow().space.mem.is_mapped(GuestAddress(old), 4096));
    }

    /// `MADV_DONTNEED` over a range far larger than the maps in it steps over the unmapped
    /// parts instead of visiting each of their pages (2^34 of them here: minutes before).
    #[test]
    fn madvise_over_a_huge_mostly_unmapped_range_is_quick() {
        let (mut k, tid) = kernel();
        let at = call(&mut k, tid, nr::MMAP, [0, 4096, RW, PRIVATE_ANON, usize::MAX, 0]) as u64;
        let mm = k.mm_of(tid).unwrap();
        mm.borrow_mut().space.mem.write_raw(GuestAddress(at), b"gone").unwrap();
        let start = Instant::now();
        let got = call(&mut k, tid, nr::MADVISE, [4096, (1 << 46) - 4096, abi::MADV_DONTNEED, 0, 0, 0]);
        assert_eq!(got, -(r::ENOMEM as isize), "part of the range is unmapped");
        assert!(start.elapsed() < Duration::from_secs(5), "took {:?}", start.elapsed());
        let mut buf = [1u8; 4];
        mm.borrow().space.mem.read_raw(GuestAddress(at), &mut buf).unwrap();
        assert_eq!(buf, [0; 4], "the mapped page was dropped");
    }

    /// The refresh of shared pages writes only what differs; memory and `seen` must still
    /// end equal to the backing.
    #[test]
    fn refresh_leaves_memory_and_seen_equal_to_the_backing() {
        const ADDR: u64 = 0x10_0000;
        const LEN: usize = 3 * 4096;
        let space = RefCell::new(crate::mm::Mm::new(1, 1 << 24, 1 << 24).unwrap());
        space.borrow_mut().map(ADDR, LEN as u64, Perm::RW).unwrap();
        let now: Vec<u8> = (0..LEN).map(|i| (i * 7) as u8).collect();
        space.borrow_mut().space.mem.write_raw(GuestAddress(ADDR), &now).unwrap();
        // The backing (from offset 4) differs from the memory at the edges, inside and
        // across the compare chunks and pages, and in one whole page.
        let mut backing = vec![0xeeu8; 4];
        backing.extend_from_slice(&now);
        for &at in &[0, 255, 256, 257, 4095, 4096, LEN - 1] {
            backing[4 + at] ^= 0x5a;
        }
        backing[4 + 8192..4 + 8192 + 4096].fill(3);
        let mut m = SharedMap {
            mm: 1,
            addr: ADDR,
            len: LEN as u64,
            backing: Backing::Anon(Rc::new(RefCell::new(backing.clone()))),
            offset: 4,
            seen: vec![1; LEN],
            may_write: true,
        };
        refresh(&mut m, &space);
        let mut mem = vec![0u8; LEN];
        space.borrow().space.mem.read_raw(GuestAddress(ADDR), &mut mem).unwrap();
        assert!(mem == backing[4..], "memory differs from the backing");
        assert!(m.seen == backing[4..], "seen differs from the backing");
    }

    #[test]
    fn write_back_copies_exactly_the_changed_bytes() {
        let seen = vec![7u8; 4096];
        let mut now = seen.clone();
        // Changes at the edges, inside and across the compare chunks.
        for &at in &[0, 255, 256, 257, 1000, 2047, 2048, 4095] {
            now[at] = 9;
        }
        now[3000..3600].fill(1);
        // The backing differs from `seen` everywhere, so a byte that is written back but
        // unchanged (or changed but not written back) shows.
        let pages = Rc::new(RefCell::new(vec![0u8; 5000]));
        Backing::Anon(pages.clone()).write_back(0, &now, &seen);
        let pages = pages.borrow();
        for (i, (&got, &new)) in pages.iter().zip(&now).enumerate() {
            let expect = if new == seen[i] { 0 } else { new };
            assert_eq!(got, expect, "byte {i}");
        }
        assert!(pages[4096..].iter().all(|&b| b == 0));
        assert_eq!(equal_prefix(&now, &seen), 0);
        assert_eq!(equal_prefix(&now[1..], &seen[1..]), 254);
        assert_eq!(equal_prefix(&now[258..], &seen[258..]), 1000 - 258);
    }
}
