//! Address spaces: the layout of a process's memory, its accounting against
//! `max_memory_per_process`, the program break and anonymous/file mappings.
//!
//! Layout of an address space of size `L` (default 64 GiB):
//! - the ELF image at its link addresses (a static PIE at [`PIE_BASE`]);
//! - the heap (`brk`) right after the highest segment;
//! - `fmap` mappings at the first free range at or above `L / 2` (unless a
//!   hint or `MAP_FIXED` says otherwise);
//! - the main stack ending at `L - 2 pages`, then one unmapped guard page, then
//!   the signal-return trampoline page at `L - 1 page`.
//!
//! Every mapping call checks the total mapped size against the limit first,
//! so ENOMEM comes back before anything changes. Besides its own limit an
//! address space may be charged to a [`MemTotal`] shared by all address
//! spaces of a kernel (`Limits::max_memory_total`): mapping, fork and drop
//! keep that count exact, so no set of processes together maps more.

use std::cell::Cell;
use std::rc::Rc;

use emu::{AddressSpace, GuestAddress, Perm};
use warden_abi::{Errno, EINVAL, ENOMEM, PROT_EXEC, PROT_READ, PROT_WRITE};

/// Load address of static position-independent executables.
pub const PIE_BASE: u64 = 0x40_0000;
pub const PAGE: u64 = emu::PAGE_SIZE;

/// Code of the signal-return trampoline: `mov eax, SYS_SIGRETURN; syscall; ud2`.
pub const TRAMPOLINE_CODE: [u8; 9] = [0xb8, 119, 0, 0, 0, 0x0f, 0x05, 0x0f, 0x0b];

/// Guest memory mapped by all the address spaces charged to it, and their cap.
#[derive(Debug)]
pub struct MemTotal {
    used: Cell<u64>,
    limit: u64,
}

impl MemTotal {
    pub fn new(limit: u64) -> MemTotal {
        MemTotal { used: Cell::new(0), limit }
    }

    /// Bytes mapped now.
    pub fn used(&self) -> u64 {
        self.used.get()
    }

    /// Takes `n` more bytes, or ENOMEM (nothing taken) past the cap.
    pub(crate) fn charge(&self, n: u64) -> Result<(), Errno> {
        match self.used.get().checked_add(n) {
            Some(total) if total <= self.limit => {
                self.used.set(total);
                Ok(())
            }
            _ => Err(Errno(ENOMEM)),
        }
    }

    pub(crate) fn release(&self, n: u64) {
        self.used.set(self.used.get().saturating_sub(n));
    }
}

/// One address space and what the kernel tracks about it.
pub struct Mm {
    /// Unique id (futex keys, `proc:` output).
    pub id: u64,
    pub space: AddressSpace,
    pub brk_start: u64,
    pub brk: u64,
    /// Address of the signal-return trampoline (0 if none is mapped).
    pub trampoline: u64,
    pub limit: u64,
    /// The kernel-wide count this space's mapped bytes are charged to.
    total: Option<Rc<MemTotal>>,
}

impl Drop for Mm {
    fn drop(&mut self) {
        if let Some(total) = &self.total {
            total.release(self.mapped_bytes());
        }
    }
}

impl Mm {
    pub fn new(id: u64, size: u64, limit: u64) -> Result<Mm, Errno> {
        let space = AddressSpace::new(size).map_err(|_| Errno(ENOMEM))?;
        Ok(Mm { id, space, brk_start: 0, brk: 0, trampoline: 0, limit, total: None })
    }

    /// Charges this (still empty) address space's mappings to `total` from now on.
    pub fn charged_to(mut self, total: &Rc<MemTotal>) -> Mm {
        debug_assert_eq!(self.mapped_bytes(), 0);
        self.total = Some(total.clone());
        self
    }

    /// A copy for `fork` (charged to the same total; ENOMEM if it would pass the cap).
    pub fn fork(&self, id: u64) -> Result<Mm, Errno> {
        let bytes = self.mapped_bytes();
        if let Some(total) = &self.total {
            total.charge(bytes)?;
        }
        let space = match self.space.fork() {
            Ok(space) => space,
            Err(_) => {
                if let Some(total) = &self.total {
                    total.release(bytes);
                }
                return Err(Errno(ENOMEM));
            }
        };
        Ok(Mm {
            id,
            space,
            brk_start: self.brk_start,
            brk: self.brk,
            trampoline: self.trampoline,
            limit: self.limit,
            total: self.total.clone(),
        })
    }

    pub fn size(&self) -> u64 {
        self.space.mem.limit()
    }

    /// Bytes currently mapped.
    pub fn mapped_bytes(&self) -> u64 {
        self.space.mem.regions().map(|(s, e)| e.0 - s.0).sum()
    }

    /// Bytes of `[addr, addr + len)` not mapped yet.
    fn unmapped_in(&self, addr: u64, len: u64) -> u64 {
        let end = addr.saturating_add(len);
        let mapped: u64 = self
            .space
            .mem
            .regions()
            .map(|(s, e)| {
                let (s, e) = (s.0.max(addr), e.0.min(end));
                e.saturating_sub(s)
            })
            .sum();
        len - mapped.min(len)
    }

    /// Maps `[addr, addr + len)` (page aligned) with `perm`, zero filled,
    /// within the memory limit.
    pub fn map(&mut self, addr: u64, len: u64, perm: Perm) -> Result<(), Errno> {
        if !addr.is_multiple_of(PAGE) || !len.is_multiple_of(PAGE) {
            return Err(Errno(EINVAL));
        }
        let end = addr.checked_add(len).ok_or(Errno(ENOMEM))?;
        if end > self.size() {
            return Err(Errno(ENOMEM));
        }
        let extra = self.unmapped_in(addr, len);
        if self.mapped_bytes().saturating_add(extra) > self.limit {
            return Err(Errno(ENOMEM));
        }
        if let Some(total) = &self.total {
            total.charge(extra)?;
        }
        self.space.mem.map(GuestAddress(addr), len, perm).map_err(|_| {
            if let Some(total) = &self.total {
                total.release(extra);
            }
            Errno(ENOMEM)
        })
    }

    pub fn unmap(&mut self, addr: u64, len: u64) -> Result<(), Errno> {
        if !addr.is_multiple_of(PAGE) {
            return Err(Errno(EINVAL));
        }
        let len = round_up(len).ok_or(Errno(EINVAL))?;
        let end = addr.checked_add(len).ok_or(Errno(EINVAL))?;
        if end > self.size() {
            return Err(Errno(EINVAL));
        }
        let before = self.mapped_bytes();
        self.space.mem.unmap(GuestAddress(addr), len).map_err(|_| Errno(EINVAL))?;
        if let Some(total) = &self.total {
            total.release(before.saturating_sub(self.mapped_bytes()));
        }
        Ok(())
    }

    /// Where the stack ends (exclusive).
    pub fn stack_top(&self) -> u64 {
        self.size() - 2 * PAGE
    }

    /// Where anonymous mappings start looking for room.
    pub fn mmap_base(&self) -> u64 {
        self.size() / 2
    }

    /// Maps the signal-return trampoline at the top page.
    pub fn map_trampoline(&mut self) -> Result<(), Errno> {
        let at = self.size() - PAGE;
        self.map(at, PAGE, Perm::RX)?;
        self.space.mem.write_raw(GuestAddress(at), &TRAMPOLINE_CODE).map_err(|_| Errno(ENOMEM))?;
        self.trampoline = at;
        Ok(())
    }

    /// Moves the break to `addr` (0 queries); returns the new break.
    pub fn set_brk(&mut self, addr: u64) -> Result<u64, Errno> {
        if addr == 0 {
            return Ok(self.brk);
        }
        if addr < self.brk_start || addr >= self.mmap_base() {
            return Err(Errno(ENOMEM));
        }
        let old_top = round_up(self.brk).ok_or(Errno(ENOMEM))?;
        let new_top = round_up(addr).ok_or(Errno(ENOMEM))?;
        if new_top > old_top {
            if !self.space.mem.regions().all(|(s, e)| e.0 <= old_top || s.0 >= new_top) {
                return Err(Errno(ENOMEM));
            }
            self.map(old_top, new_top - old_top, Perm::RW)?;
        } else if new_top < old_top {
            self.unmap(new_top, old_top - new_top)?;
        }
        self.brk = addr;
        Ok(addr)
    }

    /// `proc:PID/maps` lines: `start-end perms`, one per run of pages with
    /// equal permissions.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        let mem = &self.space.mem;
        for (s, e) in mem.regions() {
            let mut run_start = s.0;
            let mut run_perm = mem.perm_at(s);
            let mut a = s.0;
            while a < e.0 {
                let next = a + PAGE;
                let p = if next < e.0 { mem.perm_at(GuestAddress(next)) } else { None };
                if next >= e.0 || p != run_perm {
                    let label = if self.trampoline != 0 && run_start == self.trampoline {
                        " [trampoline]"
                    } else if next == self.stack_top() {
                        " [stack]"
                    } else if self.brk > self.brk_start
                        && run_start >= self.brk_start
                        && run_start < round_up(self.brk).unwrap_or(0)
                    {
                        " [heap]"
                    } else {
                        ""
                    };
                    out.push_str(&format!(
                        "{:012x}-{:012x} {}{}",
                        run_start,
                        next,
                        perm_string(run_perm.unwrap_or(Perm::NONE)),
                        label
                    ));
                    out.push('\n');
                    run_start = next;
                    run_perm = p;
                }
                a = next;
            }
        }
        out
    }
}

fn perm_string(p: Perm) -> String {
    let mut s = String::new();
    s.push(if p.contains(Perm::READ) { 'r' } else { '-' });
    s.push(if p.contains(Perm::WRITE) { 'w' } else { '-' });
    s.push(if p.contains(Perm::EXEC) { 'x' } else { '-' });
    s.push('p');
    s
}

/// Rounds up to a page boundary (`None` on overflow).
pub fn round_up(v: u64) -> Option<u64> {
    v.checked_add(PAGE - 1).map(|x| x & !(PAGE - 1))
}

/// Redox `PROT_*` bits as emu permissions (write and execute imply read, as on x86).
pub fn prot_to_perm(flags: usize) -> Perm {
    let mut p = Perm::NONE;
    if flags & PROT_READ != 0 {
        p = p.union(Perm::READ);
    }
    if flags & PROT_WRITE != 0 {
        p = p.union(Perm::RW);
    }
    if flags & PROT_EXEC != 0 {
        p = p.union(Perm::RX);
    }
    p
}
