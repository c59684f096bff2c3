//! Linux memory and futex calls.
//!
//! - `brk` never fails: it returns the new break, or the old one when the
//!   request cannot be met (Linux semantics; the C library checks).
//! - `mmap`: anonymous or private file mappings (file contents are copied in).
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
//!   Linux. Shared anonymous maps are private to each process after fork.
//! - `mremap` grows in place when the pages after the mapping are free, else
//!   moves (with `MREMAP_MAYMOVE`) by copying.
//! - `futex`: WAIT/WAIT_BITSET (relative resp. absolute timeouts), WAKE,
//!   WAKE_BITSET, REQUEUE/CMP_REQUEUE (waiters beyond `val` are woken too, a
//!   correct if less efficient requeue). Bitsets are not matched: wakes are
//!   by address.

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

/// A writable `MAP_SHARED` map of a file (see the module note).
pub(crate) struct SharedMap {
    /// The address space (`Mm::id`) and the mapped range in it.
    pub(super) mm: u64,
    addr: u64,
    len: u64,
    file: std::rc::Rc<crate::process::OpenFile>,
    /// The file's path (maps of one file through different opens find each other by it).
    path: Vec<u8>,
    offset: u64,
    /// The map's bytes at its last synchronisation: the bytes that differ from it now are
    /// the process's stores, the only ones written back (so maps do not undo each other).
    seen: Vec<u8>,
}

impl SharedMap {
    fn cut(&self, addr: u64, len: u64) -> SharedMap {
        let from = (addr - self.addr) as usize;
        SharedMap {
            mm: self.mm,
            addr,
            len,
            file: self.file.clone(),
            path: self.path.clone(),
            offset: self.offset + from as u64,
            seen: self.seen[from..from + len as usize].to_vec(),
        }
    }
}

impl Kernel {
    /// The address space with id `id`, if a live process has it.
    fn mm_by_id(&self, id: u64) -> Option<std::rc::Rc<std::cell::RefCell<crate::mm::Mm>>> {
        self.procs.values().map(|p| &p.mm).find(|m| m.try_borrow().is_ok_and(|m| m.id == id)).cloned()
    }

    /// Synchronises the shared maps `which` selects with their files: every map's stores
    /// since its last synchronisation go to the file, then every map of those files is
    /// refreshed from the file.
    fn lx_sync_shared(&mut self, which: impl Fn(&SharedMap) -> bool) {
        let mut paths: Vec<Vec<u8>> = Vec::new();
        let maps = std::mem::take(&mut self.linux.shared_maps);
        for m in maps.iter().filter(|m| which(m)) {
            if !paths.contains(&m.path) {
                paths.push(m.path.clone());
            }
            let Some(space) = self.mm_by_id(m.mm) else { continue };
            let mut now = vec![0u8; m.len as usize];
            if space.borrow().space.mem.read_raw(GuestAddress(m.addr), &mut now).is_err() {
                continue;
            }
            let Ok(mut f) = m.file.file.try_borrow_mut() else { continue };
            // Bytes past the end of the file are never written back.
            let size = f.stat().map_or(0, |st| st.st_size).saturating_sub(m.offset).min(m.len) as usize;
            let Ok(old) = f.seek(0, r::SEEK_CUR) else { continue };
            let mut i = 0;
            while i < size {
                if now[i] == m.seen[i] {
                    i += 1;
                    continue;
                }
                let start = i;
                while i < size && now[i] != m.seen[i] {
                    i += 1;
                }
                if f.seek((m.offset + start as u64) as i64, r::SEEK_SET).is_ok() {
                    let mut done = start;
                    while done < i {
                        match f.write(&now[done..i]) {
                            Ok(n) if n > 0 => done += n,
                            _ => break,
                        }
                    }
                }
            }
            let _ = f.seek(old as i64, r::SEEK_SET);
        }
        self.linux.shared_maps = maps;
        for path in paths {
            self.lx_refresh_shared(&path);
        }
    }

    /// Copies the file into every shared map of `path`.
    fn lx_refresh_shared(&mut self, path: &[u8]) {
        let mut maps = std::mem::take(&mut self.linux.shared_maps);
        for m in maps.iter_mut().filter(|m| m.path == path) {
            let Some(space) = self.mm_by_id(m.mm) else { continue };
            let Ok(f) = m.file.file.try_borrow() else { continue };
            let mut data = vec![0u8; m.len as usize];
            let n = match f.read_at(m.offset, &mut data) {
                Some(Ok(n)) => n.min(data.len()),
                _ => continue,
            };
            if space.borrow_mut().space.mem.write_raw(GuestAddress(m.addr), &data[..n]).is_ok() {
                m.seen[..n].copy_from_slice(&data[..n]);
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

    /// Before `desc` is read, and after it was written: keeps the file and its shared maps
    /// coherent (nothing to do without shared maps).
    pub(crate) fn lx_shared_file_io(&mut self, desc: &crate::process::OpenFile, after_write: bool) {
        if self.linux.shared_maps.is_empty() {
            return;
        }
        let Ok(path) = desc.file.try_borrow().map(|f| f.path()) else { return };
        if after_write {
            self.lx_refresh_shared(&path);
        } else {
            self.lx_sync_shared(|m| m.path == path);
        }
    }

    /// Writes back and forgets the shared maps of `mm` in `[lo, hi)` (munmap, exit).
    pub(crate) fn lx_drop_shared(&mut self, mm: u64, lo: u64, hi: u64) {
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

    /// A forked child's copy of its parent's shared maps is shared too.
    pub(crate) fn lx_fork_shared(&mut self, parent: u64, child: u64) {
        if parent == child {
            return;
        }
        let copies: Vec<SharedMap> = self
            .linux
            .shared_maps
            .iter()
            .filter(|m| m.mm == parent)
            .map(|m| SharedMap { mm: child, ..m.cut(m.addr, m.len) })
            .collect();
        self.linux.shared_maps.extend(copies);
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
        if let Some(desc) = file {
            let writable = desc.flags.get() & r::O_ACCMODE == r::O_RDWR;
            if flags & 3 == abi::MAP_SHARED && prot & abi::PROT_WRITE != 0 && writable {
                let path = desc.file.try_borrow().map(|f| f.path()).unwrap_or_default();
                let mut seen = contents;
                seen.resize(len as usize, 0);
                self.linux.shared_maps.push(SharedMap { mm: id, addr, len, file: desc, path, offset, seen });
            }
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
        let mut data = vec![0u8; old_len as usize];
        mm.space.mem.read_raw(GuestAddress(old), &mut data).map_err(|_| Errno(r::EFAULT))?;
        mm.map(to, new_len, Perm::RW)?;
        mm.space.mem.write_raw(GuestAddress(to), &data).map_err(|_| Errno(r::EFAULT))?;
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
    mm.borrow_mut().space.mem.protect(GuestAddress(addr), len, perm(c.args[2])).map_err(|_| Errno(r::ENOMEM))?;
    Ok(0)
}

pub(super) fn mremap(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let [old, old_size, new_size, flags, ..] = c.args;
    k.lx_mremap(tid, old as u64, old_size as u64, new_size as u64, flags)
}

/// `madvise`, `msync`: accepted without effect.
pub(super) fn no_effect(_: &mut Kernel, _: Pid, _: &Call) -> SysResult {
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
