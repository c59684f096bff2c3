//! Memory calls: brk, fmap, funmap, mprotect, futex.
//!
//! - `brk(0)` returns the break; `brk(addr)` moves it and returns it, or
//!   fails with ENOMEM (Redox behaviour) when the pages cannot be mapped.
//! - `fmap(fd, &Map, size)`: `fd == usize::MAX` maps zeroed anonymous memory;
//!   otherwise the file's bytes from `offset` are copied in (`crate::io::map_contents`)
//!   (a private copy even with `MAP_SHARED`: writes are not written back).
//!   Without `MAP_FIXED` a non-zero `address` is a hint, used when free.
//! - `futex(addr, FUTEX_WAIT, val, timeout_ptr)` parks while the 32-bit word
//!   equals `val` (EAGAIN otherwise, ETIMEDOUT after the timeout);
//!   `futex(addr, FUTEX_WAKE, n)` wakes up to `n` waiters in the order they
//!   blocked and returns how many.

use emu::GuestAddress;
use warden_abi::*;

use super::{errno, Block, Call, SysError, SysResult};
use crate::mm::{prot_to_perm, round_up, PAGE};
use crate::process::{OnWake, ThreadState, WaitOn};
use crate::usercopy::read_u32;
use crate::{Kernel, Pid};

impl Kernel {
    /// Wakes up to `n` threads waiting on `key`, in the order they blocked (both
    /// personalities' futex wake).
    pub(crate) fn futex_wake(&mut self, key: WaitOn, n: usize) -> usize {
        let mut waiters: Vec<(u64, Pid)> = self
            .threads
            .values()
            .filter_map(|t| match &t.state {
                ThreadState::Blocked(b) if b.on == key => Some((b.seq, t.tid)),
                _ => None,
            })
            .collect();
        waiters.sort_unstable();
        let n = waiters.len().min(n);
        for &(_, waiter) in &waiters[..n] {
            self.wake_thread(waiter);
        }
        n
    }
}

// --- handlers (rows of `warden_abi::redox_calls!`) -------------------------------------------

pub(super) fn brk(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let mm = k.mm_of(tid)?;
    let brk = mm.borrow_mut().set_brk(c.args[0] as u64)?;
    Ok(brk as usize)
}

pub(super) fn fmap(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    if let Some(r) = k.user_scheme_call(tid, c) {
        return r;
    }
    let fd = c.args[0];
    if c.args[2] < Map::SIZE {
        return errno(EINVAL);
    }
    let map = Map::from_bytes(c.input(1).ok_or(Errno(EFAULT))?).ok_or(Errno(EFAULT))?;
    let file = if fd == ANONYMOUS_FD { None } else { Some(k.desc(tid, fd)?) };
    // No buffer bigger than the address space is ever allocated for the contents.
    if map.size == 0 {
        return errno(EINVAL);
    }
    if map.size as u64 > k.mm_of(tid)?.borrow().size() {
        return errno(ENOMEM);
    }
    // Read the file contents before mapping so a failing read changes nothing.
    let contents = match &file {
        None => None,
        Some(desc) => Some(crate::io::map_contents(desc, map.offset as u64, map.size)?),
    };
    map_contents(k, tid, &map, contents)
}

/// Maps `map` (anonymous memory when `contents` is `None`, else a private copy of
/// `contents`, the file's bytes from the map's offset) into `tid`'s address space.
pub(crate) fn map_contents(k: &mut Kernel, tid: Pid, map: &Map, contents: Option<Vec<u8>>) -> SysResult {
    if map.size == 0 {
        return errno(EINVAL);
    }
    let len = round_up(map.size as u64).ok_or(Errno(ENOMEM))?;
    let perm = prot_to_perm(map.flags);
    let mm = k.mm_of(tid)?;
    let mut mm = mm.borrow_mut();
    let hint = map.address as u64;
    let addr = if map.flags & MAP_FIXED != 0 {
        if !hint.is_multiple_of(PAGE) || hint == 0 {
            return errno(EINVAL);
        }
        hint
    } else if hint != 0
        && hint.is_multiple_of(PAGE)
        && hint.checked_add(len).is_some_and(|end| end <= mm.stack_top())
        && !mm.space.mem.regions().any(|(s, e)| s.0 < hint + len && e.0 > hint)
    {
        hint
    } else {
        let base = mm.mmap_base();
        mm.space.mem.find_free(GuestAddress(base), len).ok_or(Errno(ENOMEM))?.0
    };
    if addr.checked_add(len).is_none_or(|end| end > mm.size()) {
        return errno(ENOMEM);
    }
    let mut contents = contents.unwrap_or_default();
    contents.truncate(map.size);
    mm.map(addr, len, perm)?;
    if !contents.is_empty() {
        mm.space.mem.write_raw(GuestAddress(addr), &contents).map_err(|_| Errno(EFAULT))?;
    }
    Ok(addr as usize)
}

pub(super) fn funmap(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let [addr, len, ..] = c.args;
    if len == 0 {
        return errno(EINVAL);
    }
    let mm = k.mm_of(tid)?;
    mm.borrow_mut().unmap(addr as u64, len as u64)?;
    Ok(0)
}

pub(super) fn mprotect(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let [addr, len, flags, ..] = c.args;
    let addr = addr as u64;
    if !addr.is_multiple_of(PAGE) {
        return errno(EINVAL);
    }
    let len = round_up(len as u64).ok_or(Errno(ENOMEM))?;
    let mm = k.mm_of(tid)?;
    let mut mm = mm.borrow_mut();
    mm.space.mem.protect(GuestAddress(addr), len, prot_to_perm(flags)).map_err(|_| Errno(ENOMEM))?;
    Ok(0)
}

/// `futex(addr, op, val, timeout)`: the futex word itself is read when the call runs (the
/// comparison must be atomic with parking), never copied in.
pub(super) fn futex(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let [addr, op, val, ..] = c.args;
    if addr % 4 != 0 {
        return errno(EINVAL);
    }
    let mm = k.mm_of(tid)?;
    let key = WaitOn::Futex(mm.borrow().id, addr as u64);
    match op {
        FUTEX_WAIT => {
            let current = read_u32(&mm.borrow().space.mem, addr)?;
            if current != val as u32 {
                return errno(EAGAIN);
            }
            let deadline = match c.input(3).and_then(TimeSpec::from_bytes) {
                Some(ts) => {
                    let ns = crate::time::timespec_to_ns(&ts)?;
                    Some(k.clock.monotonic_ns().saturating_add(ns))
                }
                None => None,
            };
            Err(SysError::Block(Block {
                on: key,
                deadline,
                on_timeout: Err(Errno(ETIMEDOUT)),
                on_wake: OnWake::Return(Ok(0)),
            }))
        }
        FUTEX_WAKE => Ok(k.futex_wake(key, val)),
        _ => errno(ENOSYS),
    }
}
