//! Schemes and open files: the interface between the system-call layer and
//! the resources behind file descriptors.
//!
//! A path `name:rest` names a scheme; a path without a scheme means `file:`.
//! A scheme turns a path into an open file description (`FileRef`), shared by
//! every descriptor that `dup`, `fork` or fd passing makes of it. Every
//! operation has an ENOSYS/EBADF/ESPIPE default, so a scheme implements only
//! what it supports. Operations that would block return
//! `IoError::WouldBlock(key)`: the kernel parks the thread on `key` and retries
//! the call when something calls `Kernel::wake(key)`.

use std::cell::RefCell;
use std::rc::Rc;

use warden_abi::{Errno, Stat, EBADF, EINVAL, ENOSYS, ESPIPE};

/// What a blocked thread waits for (opaque to the scheduler: equal keys wake
/// together).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct WaitKey(pub u64);

/// The error of an I/O operation.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum IoError {
    Errno(Errno),
    /// Nothing to do yet: park the caller on the key (unless the call is
    /// non-blocking, in which case the kernel returns EAGAIN).
    WouldBlock(WaitKey),
}

impl From<Errno> for IoError {
    fn from(e: Errno) -> Self {
        IoError::Errno(e)
    }
}

pub type IoResult<T> = Result<T, IoError>;

/// Per-call context a scheme may need.
#[derive(Clone, Copy, Debug)]
pub struct CallCtx {
    pub pid: u32,
    pub uid: u32,
    pub gid: u32,
    pub umask: u32,
}

/// The device number of the character devices the kernel serves itself (`null:`, `zero:`,
/// `rand:`, the console). Each has its own inode number under it ([`device_stat`]), so a
/// program comparing (dev, ino) pairs (grep and tar skip work when stdout is /dev/null)
/// tells them apart.
pub const DEVICES_DEV: u64 = 6;

/// Inode numbers of the kernel's character devices under [`DEVICES_DEV`].
pub mod device_ino {
    pub const NULL: u64 = 1;
    pub const ZERO: u64 = 2;
    pub const RAND: u64 = 3;
    /// The console's stdin; stdout and stderr follow.
    pub const CONSOLE: u64 = 4;
}

/// The `stat` of kernel character device number `ino` with permission bits `perm`.
pub fn device_stat(ino: u64, perm: u16) -> Stat {
    Stat {
        st_dev: DEVICES_DEV,
        st_ino: ino,
        st_mode: warden_abi::MODE_CHR | perm,
        st_nlink: 1,
        st_blksize: 4096,
        ..Stat::default()
    }
}

/// An open file description.
pub trait FileOps {
    fn read(&mut self, _buf: &mut [u8]) -> IoResult<usize> {
        Err(Errno(EBADF).into())
    }
    fn write(&mut self, _buf: &[u8]) -> IoResult<usize> {
        Err(Errno(EBADF).into())
    }
    /// `whence` is SEEK_SET/SEEK_CUR/SEEK_END; returns the new offset.
    fn seek(&mut self, _offset: i64, _whence: usize) -> Result<u64, Errno> {
        Err(Errno(ESPIPE))
    }
    fn stat(&self) -> Result<Stat, Errno>;
    /// The canonical path, `scheme:path`, as `fpath` reports it.
    fn path(&self) -> Vec<u8>;
    fn truncate(&mut self, _len: u64) -> Result<(), Errno> {
        Err(Errno(EINVAL))
    }
    fn sync(&mut self) -> Result<(), Errno> {
        Ok(())
    }
    /// Reads at an absolute offset without moving the file position
    /// (used by exec and file mappings). `None` if not a regular file.
    fn read_at(&self, _offset: u64, _buf: &mut [u8]) -> Option<Result<usize, Errno>> {
        None
    }
    /// Readiness for `poll`/`select`; `None` (the default) means the file never
    /// blocks, so it always counts as ready for whatever is asked.
    fn readiness(&self) -> Option<Readiness> {
        None
    }
    /// Called when the last descriptor referring to it is closed.
    fn close(&mut self) {}
    /// The most bytes the next `read` can return, if the file knows (the kernel then
    /// allocates no bigger a buffer than that for it, whatever the guest's buffer).
    fn read_hint(&self) -> Option<usize> {
        None
    }
    /// The file as `Any`, for calls that only apply to one kind of file (the Linux
    /// socket calls find their socket through it); `None` by default.
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        None
    }
}

/// What a file that can block is ready for now ([`FileOps::readiness`]). Any change
/// to it wakes some [`WaitKey`] through the kernel's waker.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Readiness {
    /// A read would not block.
    pub read: bool,
    /// A write would not block.
    pub write: bool,
    /// The other end is gone (a pipe's read end with no writer left).
    pub hangup: bool,
    /// An error is pending (a pipe's write end with no reader left).
    pub error: bool,
}

pub type FileRef = Rc<RefCell<dyn FileOps>>;

/// A named resource provider.
pub trait Scheme {
    /// Opens `path` (the part after `name:`). `flags` are Redox O_* flags; the
    /// low 16 bits carry the mode for O_CREAT.
    fn open(&mut self, path: &[u8], flags: usize, ctx: &CallCtx) -> Result<FileRef, Errno>;
    fn unlink(&mut self, _path: &[u8], _ctx: &CallCtx) -> Result<(), Errno> {
        Err(Errno(ENOSYS))
    }
    fn rmdir(&mut self, _path: &[u8], _ctx: &CallCtx) -> Result<(), Errno> {
        Err(Errno(ENOSYS))
    }
    /// Makes `new` a second name of the object at `old` (a hard link); a final
    /// symlink at `old` is followed only if `follow`.
    fn link(&mut self, _old: &[u8], _new: &[u8], _follow: bool, _ctx: &CallCtx) -> Result<(), Errno> {
        Err(Errno(ENOSYS))
    }
    /// Sets the permission bits and/or the modification time (seconds) of `path` (a final
    /// symlink followed if `follow`): `chmod` and `utimensat`.
    fn set_attr(
        &mut self,
        _path: &[u8],
        _follow: bool,
        _perm: Option<u16>,
        _mtime: Option<u64>,
        _ctx: &CallCtx,
    ) -> Result<(), Errno> {
        Err(Errno(ENOSYS))
    }
    /// Moves the object at `old` to `new` (POSIX `rename`: an existing `new` is replaced).
    fn rename(&mut self, _old: &[u8], _new: &[u8], _ctx: &CallCtx) -> Result<(), Errno> {
        Err(Errno(ENOSYS))
    }
    /// From now on, charge the memory this scheme holds for the guest (file contents, names)
    /// to the kernel's account, `Limits::max_memory_total` (the kernel calls this for `file:`).
    fn charge_memory_to(&mut self, _account: &Rc<crate::mm::MemTotal>) {}
}
pub mod basic;

pub mod memfs;
pub(crate) mod user;

/// Who serves each scheme name: the kernel's own and the embedder's schemes, by name (`file`
/// is the root scheme), and the user-space daemons ([`user`]). Path lookups and scheme
/// creation consult it; the kernel's other parts never hold a scheme.
pub(crate) struct Namespace {
    pub(crate) schemes: std::collections::BTreeMap<Vec<u8>, Box<dyn Scheme>>,
    /// User-space schemes and the callers waiting on them.
    pub(crate) user: user::Registry,
}

impl Namespace {
    pub(crate) fn new(schemes: std::collections::BTreeMap<Vec<u8>, Box<dyn Scheme>>) -> Namespace {
        Namespace { schemes, user: user::Registry::default() }
    }
}
