//! `memfd_create`: an anonymous file in memory, named only for `/proc/self/fd` (as
//! `/memfd:NAME (deleted)`, Linux's link text).
//!
//! The bytes are the kernel's, charged to the guest memory total (`Limits::max_memory_total`:
//! ENOMEM past it, so a thousand memfds truncated to the largest size cannot make the
//! host hold a thousand gigabytes), at most [`MAX_MEMFD`] bytes each (EFBIG past it); every descriptor of one memfd (dup, fork, `SCM_RIGHTS`) shares them and its
//! position, and opening `/proc/self/fd/N` makes a new description of the same bytes. It
//! reads, writes, seeks, truncates and stats as a regular file. A private map copies its
//! bytes in; a `MAP_SHARED` map shares them as a shared anonymous map shares its pages
//! (`mem.rs`: the maps, `read`/`write` and `ftruncate` on the memfd agree after each
//! system call, in every process that has a map).
//!
//! Seals, as Linux's `mm/memfd.c` gives them: a memfd made without `MFD_ALLOW_SEALING`
//! starts sealed with `F_SEAL_SEAL`; `F_ADD_SEALS` needs a writable description (EPERM),
//! known bits (EINVAL), no `F_SEAL_SEAL` yet (EPERM), and for `F_SEAL_WRITE` no writable
//! shared map (EBUSY). `F_SEAL_WRITE` and `F_SEAL_FUTURE_WRITE` make `write` and new
//! writable shared maps EPERM (maps made before `F_SEAL_FUTURE_WRITE` keep writing),
//! `F_SEAL_SHRINK`/`F_SEAL_GROW` make a truncate or write that would shrink/grow it EPERM.
//! `F_SEAL_EXEC` is accepted and recorded (nothing here executes a memfd). Both calls on
//! anything else are EINVAL (as on a disk file system; Linux's tmpfs files would accept).

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use warden_abi as r;
use warden_abi::{Errno, Stat};

use crate::mm::MemTotal;
use crate::scheme::{FileOps, IoResult};
use crate::syscall::{Call, SysError, SysResult};
use crate::{Kernel, Pid};

const MFD_CLOEXEC: usize = 1;
const MFD_ALLOW_SEALING: usize = 2;
const MFD_HUGETLB: usize = 4;
const MFD_NOEXEC_SEAL: usize = 8;
const MFD_EXEC: usize = 0x10;
/// The longest name (Linux: 249 bytes, without the NUL).
const NAME_MAX: usize = 249;
/// Largest memfd.
const MAX_MEMFD: u64 = 1 << 30;

/// `fcntl` commands and seal bits (Linux's `fcntl.h`).
pub(super) const F_ADD_SEALS: usize = 1033;
pub(super) const F_GET_SEALS: usize = 1034;
const F_SEAL_SEAL: u32 = 1;
const F_SEAL_SHRINK: u32 = 2;
const F_SEAL_GROW: u32 = 4;
const F_SEAL_WRITE: u32 = 8;
const F_SEAL_FUTURE_WRITE: u32 = 0x10;
const F_SEAL_EXEC: u32 = 0x20;
const F_ALL_SEALS: u32 = F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_FUTURE_WRITE | F_SEAL_EXEC;

fn err<T>(e: i32) -> Result<T, SysError> {
    Err(SysError::Errno(Errno(e)))
}

struct MemFd {
    id: u64,
    name: Vec<u8>,
    /// Shared by the descriptions `/proc/self/fd/N` reopens, and by `MAP_SHARED` maps.
    data: Rc<RefCell<Vec<u8>>>,
    /// The `F_SEAL_*` bits, shared like `data`.
    seals: Rc<Cell<u32>>,
    /// What `data` is charged, shared like it.
    charge: Rc<Charge>,
    pos: u64,
}

/// The bytes of one memfd charged to the guest memory total, given back when its last
/// description goes.
struct Charge {
    account: Rc<MemTotal>,
    bytes: Cell<u64>,
}

impl Charge {
    /// Resizes `data` to `len` zero-filled bytes once the total allows them (ENOMEM).
    fn resize(&self, data: &mut Vec<u8>, len: usize) -> Result<(), Errno> {
        let (old, new) = (self.bytes.get(), len as u64);
        if new > old {
            self.account.charge(new - old)?;
        } else {
            self.account.release(old - new);
        }
        self.bytes.set(new);
        data.resize(len, 0);
        Ok(())
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.account.release(self.bytes.get());
    }
}

impl MemFd {
    /// EPERM if the seals forbid changing the size from `old` to `new`.
    fn resize_allowed(&self, old: u64, new: u64) -> Result<(), Errno> {
        let seals = self.seals.get();
        if (new < old && seals & F_SEAL_SHRINK != 0) || (new > old && seals & F_SEAL_GROW != 0) {
            return Err(Errno(r::EPERM));
        }
        Ok(())
    }
}

impl FileOps for MemFd {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        let n = self.read_at(self.pos, buf).unwrap_or(Ok(0))?;
        self.pos += n as u64;
        Ok(n)
    }
    fn write(&mut self, buf: &[u8]) -> IoResult<usize> {
        let end = self.pos.checked_add(buf.len() as u64).filter(|&e| e <= MAX_MEMFD).ok_or(Errno(r::EFBIG))?;
        if self.seals.get() & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE) != 0 {
            return Err(Errno(r::EPERM).into());
        }
        let (start, end) = (self.pos as usize, end as usize);
        let mut data = self.data.try_borrow_mut().map_err(|_| Errno(r::EIO))?;
        self.resize_allowed(data.len() as u64, (data.len() as u64).max(end as u64))?;
        if end > data.len() {
            self.charge.resize(&mut data, end)?;
        }
        data[start..end].copy_from_slice(buf);
        self.pos = end as u64;
        Ok(buf.len())
    }
    fn seek(&mut self, offset: i64, whence: usize) -> Result<u64, Errno> {
        let base = match whence {
            r::SEEK_SET => 0,
            r::SEEK_CUR => self.pos,
            r::SEEK_END => self.data.try_borrow().map_err(|_| Errno(r::EIO))?.len() as u64,
            _ => return Err(Errno(r::EINVAL)),
        };
        let pos = base.checked_add_signed(offset).filter(|&p| p <= i64::MAX as u64).ok_or(Errno(r::EINVAL))?;
        self.pos = pos;
        Ok(pos)
    }
    fn stat(&self) -> Result<Stat, Errno> {
        let size = self.data.try_borrow().map_err(|_| Errno(r::EIO))?.len() as u64;
        Ok(Stat {
            st_dev: 1,
            st_ino: self.id,
            st_mode: r::MODE_FILE | 0o777,
            st_nlink: 1,
            st_size: size,
            st_blksize: 4096,
            st_blocks: size.div_ceil(4096) * 8,
            ..Stat::default()
        })
    }
    fn path(&self) -> Vec<u8> {
        [&b"memfd:"[..], &self.name].concat()
    }
    fn truncate(&mut self, len: u64) -> Result<(), Errno> {
        if len > MAX_MEMFD {
            return Err(Errno(r::EFBIG));
        }
        let mut data = self.data.try_borrow_mut().map_err(|_| Errno(r::EIO))?;
        self.resize_allowed(data.len() as u64, len)?;
        self.charge.resize(&mut data, len as usize)
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Option<Result<usize, Errno>> {
        let Ok(data) = self.data.try_borrow() else { return Some(Err(Errno(r::EIO))) };
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(data.len());
        let n = (data.len() - start).min(buf.len());
        buf[..n].copy_from_slice(&data[start..start + n]);
        Some(Ok(n))
    }
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

/// A new description of the memfd `file` (same bytes, position 0), as opening
/// `/proc/self/fd/N` gives; `None` if `file` is not a memfd.
pub(super) fn reopen(file: &dyn FileOps) -> Option<crate::scheme::FileRef> {
    let m = file.as_any()?.downcast_ref::<MemFd>()?;
    let (data, seals, charge) = (m.data.clone(), m.seals.clone(), m.charge.clone());
    let copy = MemFd { id: m.id, name: m.name.clone(), data, seals, charge, pos: 0 };
    Some(Rc::new(RefCell::new(copy)))
}

/// The bytes of the memfd `file` and its seals now; `None` if `file` is not a memfd.
pub(super) fn shared_bytes(file: &dyn FileOps) -> Option<(Rc<RefCell<Vec<u8>>>, u32)> {
    let m = file.as_any()?.downcast_ref::<MemFd>()?;
    Some((m.data.clone(), m.seals.get()))
}

/// EPERM if the seals `seals` forbid a new writable shared map.
pub(super) fn check_shared_write_map(seals: u32) -> Result<(), Errno> {
    if seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE) != 0 {
        return Err(Errno(r::EPERM));
    }
    Ok(())
}

/// `fcntl(F_GET_SEALS)` and `fcntl(F_ADD_SEALS, seals)` on `desc` (see the module note).
pub(super) fn fcntl_seals(k: &mut Kernel, desc: &crate::process::OpenFile, cmd: usize, arg: usize) -> SysResult {
    let Some(seals) = desc.file.try_borrow().ok().and_then(|f| {
        let m = f.as_any()?.downcast_ref::<MemFd>()?;
        Some((m.seals.clone(), m.data.clone()))
    }) else {
        return err(r::EINVAL);
    };
    let (seals, data) = seals;
    if cmd == F_GET_SEALS {
        return Ok(seals.get() as usize);
    }
    if desc.flags.get() & r::O_ACCMODE == r::O_RDONLY {
        return err(r::EPERM);
    }
    let add = u32::try_from(arg).ok().filter(|a| a & !F_ALL_SEALS == 0).ok_or(Errno(r::EINVAL))?;
    if seals.get() & F_SEAL_SEAL != 0 {
        return err(r::EPERM);
    }
    if add & F_SEAL_WRITE != 0 && seals.get() & F_SEAL_WRITE == 0 && k.lx_writably_shared(&data) {
        return err(r::EBUSY);
    }
    seals.set(seals.get() | add);
    Ok(0)
}

/// What `/proc/self/fd/N` names for a file whose `path()` is `path`, if it is a memfd.
pub(super) fn link_text(path: &[u8]) -> Option<Vec<u8>> {
    let name = path.strip_prefix(b"memfd:")?;
    Some([&b"/memfd:"[..], name, b" (deleted)"].concat())
}

pub(super) fn memfd_create(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let name = c.path(0)?;
    let flags = c.args[1];
    if flags & !(MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_HUGETLB | MFD_NOEXEC_SEAL | MFD_EXEC) != 0
        || flags & MFD_HUGETLB != 0
        || name.len() > NAME_MAX
    {
        return err(r::EINVAL);
    }
    // MFD_NOEXEC_SEAL implies MFD_ALLOW_SEALING (and seals exec).
    let seals = match flags {
        f if f & MFD_NOEXEC_SEAL != 0 => F_SEAL_EXEC,
        f if f & MFD_ALLOW_SEALING != 0 => 0,
        _ => F_SEAL_SEAL,
    };
    let (data, seals) = (Rc::default(), Rc::new(Cell::new(seals)));
    let charge = Rc::new(Charge { account: k.mem_total.clone(), bytes: Cell::new(0) });
    let file = MemFd { id: k.alloc_object_id(), name: name.to_vec(), data, seals, charge, pos: 0 };
    Ok(k.install_fd(tid, Rc::new(RefCell::new(file)), r::O_RDWR, flags & MFD_CLOEXEC != 0)?)
}
