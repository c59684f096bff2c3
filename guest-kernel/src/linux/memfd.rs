//! `memfd_create`: an anonymous file in memory, named only for `/proc/self/fd` (as
//! `/memfd:NAME (deleted)`, Linux's link text).
//!
//! The bytes are the kernel's (charged to nothing else: at most [`MAX_MEMFD`] bytes, EFBIG
//! past it); every descriptor of one memfd (dup, fork, `SCM_RIGHTS`) shares them and its
//! position, and opening `/proc/self/fd/N` makes a new description of the same bytes. It reads, writes, seeks, truncates, stats as a regular file and maps privately
//! (`mmap` copies its bytes in). Not done: `MAP_SHARED` maps of a memfd are private copies
//! (shared file maps are kept coherent by path, `mem.rs`, and a memfd has none), and file
//! seals (`MFD_ALLOW_SEALING` is accepted, `F_ADD_SEALS` is EINVAL).

use std::cell::RefCell;
use std::rc::Rc;

use warden_abi as r;
use warden_abi::{Errno, Stat};

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

fn err<T>(e: i32) -> Result<T, SysError> {
    Err(SysError::Errno(Errno(e)))
}

struct MemFd {
    id: u64,
    name: Vec<u8>,
    /// Shared by the descriptions `/proc/self/fd/N` reopens.
    data: Rc<RefCell<Vec<u8>>>,
    pos: u64,
}

impl FileOps for MemFd {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        let n = self.read_at(self.pos, buf).unwrap_or(Ok(0))?;
        self.pos += n as u64;
        Ok(n)
    }
    fn write(&mut self, buf: &[u8]) -> IoResult<usize> {
        let end = self.pos.checked_add(buf.len() as u64).filter(|&e| e <= MAX_MEMFD).ok_or(Errno(r::EFBIG))?;
        let (start, end) = (self.pos as usize, end as usize);
        let mut data = self.data.try_borrow_mut().map_err(|_| Errno(r::EIO))?;
        if end > data.len() {
            data.resize(end, 0);
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
        self.data.try_borrow_mut().map_err(|_| Errno(r::EIO))?.resize(len as usize, 0);
        Ok(())
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
    let copy = MemFd { id: m.id, name: m.name.clone(), data: m.data.clone(), pos: 0 };
    Some(Rc::new(RefCell::new(copy)))
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
    let file = MemFd { id: k.alloc_object_id(), name: name.to_vec(), data: Rc::default(), pos: 0 };
    Ok(k.install_fd(tid, Rc::new(RefCell::new(file)), r::O_RDWR, flags & MFD_CLOEXEC != 0)?)
}
