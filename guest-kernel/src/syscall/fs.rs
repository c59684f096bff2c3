//! Descriptor and path calls: open, close, read, write, lseek, dup, dup2,
//! fpath, fstat, fsync, ftruncate, fcntl, unlink, rmdir, chdir, getcwd, pipe2.
//!
//! Paths are resolved against the caller's working directory by
//! `FsContext::resolve`; `file:` paths reach the root scheme absolute and
//! normalised (`/bin/init`). `proc:` is served by the kernel itself; `pipe:`
//! descriptors come only from `pipe2`.

use std::rc::Rc;

use warden_abi::*;

use super::{errno, Block, Call, Input, SysError, SysResult, FD_NONBLOCK_CALL, MAX_IO};
use crate::process::{FdEntry, OpenFile, WaitOn};
use crate::scheme::{CallCtx, FileRef, IoError};
use crate::usercopy::{check_writable, copy_out};
use crate::{Kernel, Pid};

/// Status flags a description keeps (and `F_SETFL` may change: NONBLOCK, APPEND).
const DESC_FLAGS: usize = O_ACCMODE | O_NONBLOCK | O_APPEND | O_DIRECTORY | O_STAT | O_SYMLINK | O_NOFOLLOW;
const SETFL_FLAGS: usize = O_NONBLOCK | O_APPEND;

impl Kernel {
    pub(crate) fn call_ctx(&self, tid: Pid) -> Result<CallCtx, Errno> {
        let p = self.proc_of(tid)?;
        Ok(CallCtx { pid: p.pid, uid: p.uid, gid: p.gid, umask: p.fs.borrow().umask })
    }

    /// Opens `path` for thread `tid`.
    pub(crate) fn open_path(&mut self, tid: Pid, path: &[u8], flags: usize) -> Result<FileRef, Errno> {
        let (scheme, rest) = self.proc_of(tid)?.fs.borrow().resolve(path)?;
        let ctx = self.call_ctx(tid)?;
        self.open_in_scheme(&scheme, &rest, flags, &ctx)
    }

    pub(crate) fn open_in_scheme(
        &mut self,
        scheme: &[u8],
        rest: &[u8],
        flags: usize,
        ctx: &CallCtx,
    ) -> Result<FileRef, Errno> {
        match scheme {
            b"proc" => self.open_proc(ctx.pid, rest),
            b"pipe" => Err(Errno(ENOENT)),
            _ => self.schemes.get_mut(scheme).ok_or(Errno(ENOENT))?.open(rest, flags, ctx),
        }
    }

    /// Installs a new description in the lowest free descriptor.
    pub(crate) fn install_fd(&mut self, tid: Pid, file: FileRef, flags: usize, cloexec: bool) -> Result<usize, Errno> {
        let desc = OpenFile::new(file, flags & DESC_FLAGS);
        let files = self.proc_of(tid)?.files.clone();
        let max = self.config.limits.max_fds;
        let fd = files.borrow_mut().insert(FdEntry { desc, cloexec }, max);
        fd
    }

    pub(crate) fn desc(&self, tid: Pid, fd: usize) -> Result<Rc<OpenFile>, Errno> {
        Ok(self.proc_of(tid)?.files.borrow().get(fd)?.desc.clone())
    }

    pub(super) fn sys_open(&mut self, tid: Pid, call: &Call) -> SysResult {
        let Input::Path(path) = &call.input else {
            return errno(EFAULT);
        };
        let flags = call.args[2];
        let file = self.open_path(tid, path, flags)?;
        Ok(self.install_fd(tid, file, flags, flags & O_CLOEXEC != 0)?)
    }

    pub(super) fn sys_close(&mut self, tid: Pid, fd: usize) -> SysResult {
        let files = self.proc_of(tid)?.files.clone();
        let entry = files.borrow_mut().remove(fd)?;
        drop(entry);
        Ok(0)
    }

    pub(super) fn sys_read(&mut self, tid: Pid, fd: usize, addr: usize, len: usize) -> SysResult {
        let nonblock_call = fd & FD_NONBLOCK_CALL != 0;
        let desc = self.desc(tid, fd & !FD_NONBLOCK_CALL)?;
        if desc.flags.get() & O_ACCMODE == O_WRONLY {
            return errno(EBADF);
        }
        let len = len.min(MAX_IO);
        let mm = self.mm_of(tid)?;
        check_writable(&mm.borrow().space.mem, addr, len)?;
        let hint = desc.file.try_borrow().ok().and_then(|f| f.read_hint());
        let mut buf = self.scratch.take_io(hint.map_or(len, |h| h.min(len)));
        let result = match desc.file.try_borrow_mut() {
            Ok(mut f) => f.read(&mut buf),
            Err(_) => Err(IoError::Errno(Errno(EIO))),
        }
        .map(|n| n.min(buf.len()));
        let copied = match &result {
            Ok(n) => copy_out(&mut mm.borrow_mut().space.mem, addr, &buf[..*n]),
            Err(_) => Ok(()),
        };
        self.scratch.put_io(buf);
        copied?;
        match result {
            Ok(n) => Ok(n),
            Err(IoError::Errno(e)) => Err(e.into()),
            Err(IoError::WouldBlock(key)) => {
                if nonblock_call || desc.flags.get() & O_NONBLOCK != 0 {
                    errno(EAGAIN)
                } else {
                    Err(Block::retry(WaitOn::Key(key)))
                }
            }
        }
    }

    pub(super) fn sys_write(&mut self, tid: Pid, fd: usize, call: &Call) -> SysResult {
        let Input::Bytes(data) = &call.input else {
            return errno(EFAULT);
        };
        let nonblock_call = fd & FD_NONBLOCK_CALL != 0;
        let desc = self.desc(tid, fd & !FD_NONBLOCK_CALL)?;
        let flags = desc.flags.get();
        if flags & O_ACCMODE == O_RDONLY {
            return errno(EBADF);
        }
        let mut file = desc.file.try_borrow_mut().map_err(|_| Errno(EIO))?;
        if flags & O_APPEND != 0 {
            let _ = file.seek(0, SEEK_END);
        }
        match file.write(data) {
            Ok(n) => Ok(n.min(data.len())),
            Err(IoError::Errno(e)) => Err(e.into()),
            Err(IoError::WouldBlock(key)) => {
                if nonblock_call || flags & O_NONBLOCK != 0 {
                    errno(EAGAIN)
                } else {
                    Err(Block::retry(WaitOn::Key(key)))
                }
            }
        }
    }

    pub(super) fn sys_lseek(&mut self, tid: Pid, fd: usize, offset: i64, whence: usize) -> SysResult {
        if whence > SEEK_END {
            return errno(EINVAL);
        }
        let desc = self.desc(tid, fd)?;
        let pos = desc.file.try_borrow_mut().map_err(|_| Errno(EIO))?.seek(offset, whence)?;
        usize::try_from(pos).map_err(|_| SysError::Errno(Errno(EINVAL)))
    }

    fn check_dup_buf(call: &Call) -> Result<(), Errno> {
        match &call.input {
            Input::Bytes(b) if !b.is_empty() => Err(Errno(EINVAL)),
            _ => Ok(()),
        }
    }

    pub(super) fn sys_dup(&mut self, tid: Pid, fd: usize, call: &Call) -> SysResult {
        Self::check_dup_buf(call)?;
        let desc = self.desc(tid, fd)?;
        let files = self.proc_of(tid)?.files.clone();
        let max = self.config.limits.max_fds;
        let new = files.borrow_mut().insert(FdEntry { desc, cloexec: false }, max)?;
        Ok(new)
    }

    pub(super) fn sys_dup2(&mut self, tid: Pid, fd: usize, new: usize, call: &Call) -> SysResult {
        Self::check_dup_buf(call)?;
        let desc = self.desc(tid, fd)?;
        if fd == new {
            return Ok(new);
        }
        let files = self.proc_of(tid)?.files.clone();
        let max = self.config.limits.max_fds;
        let old = files.borrow_mut().replace(new, FdEntry { desc, cloexec: false }, max)?;
        drop(old);
        Ok(new)
    }

    pub(super) fn sys_fpath(&mut self, tid: Pid, fd: usize, addr: usize, len: usize) -> SysResult {
        let desc = self.desc(tid, fd)?;
        let path = desc.file.try_borrow().map_err(|_| Errno(EIO))?.path();
        let n = path.len().min(len);
        copy_out(&mut self.mm_of(tid)?.borrow_mut().space.mem, addr, &path[..n])?;
        Ok(n)
    }

    pub(super) fn sys_fstat(&mut self, tid: Pid, fd: usize, addr: usize, len: usize) -> SysResult {
        if len < Stat::SIZE {
            return errno(EINVAL);
        }
        let desc = self.desc(tid, fd)?;
        let stat = desc.file.try_borrow().map_err(|_| Errno(EIO))?.stat()?;
        copy_out(&mut self.mm_of(tid)?.borrow_mut().space.mem, addr, &stat.to_bytes())?;
        Ok(0)
    }

    pub(super) fn sys_fsync(&mut self, tid: Pid, fd: usize) -> SysResult {
        let desc = self.desc(tid, fd)?;
        desc.file.try_borrow_mut().map_err(|_| Errno(EIO))?.sync()?;
        Ok(0)
    }

    pub(super) fn sys_ftruncate(&mut self, tid: Pid, fd: usize, len: usize) -> SysResult {
        let desc = self.desc(tid, fd)?;
        if desc.flags.get() & O_ACCMODE == O_RDONLY {
            return errno(EBADF);
        }
        desc.file.try_borrow_mut().map_err(|_| Errno(EIO))?.truncate(len as u64)?;
        Ok(0)
    }

    pub(super) fn sys_fcntl(&mut self, tid: Pid, fd: usize, cmd: usize, arg: usize) -> SysResult {
        let files = self.proc_of(tid)?.files.clone();
        let mut files = files.borrow_mut();
        match cmd {
            F_GETFD => Ok(if files.get(fd)?.cloexec { FD_CLOEXEC } else { 0 }),
            F_SETFD => {
                files.get_mut(fd)?.cloexec = arg & FD_CLOEXEC != 0;
                Ok(0)
            }
            F_GETFL => Ok(files.get(fd)?.desc.flags.get()),
            F_SETFL => {
                let desc = &files.get(fd)?.desc;
                desc.flags.set((desc.flags.get() & !SETFL_FLAGS) | (arg & SETFL_FLAGS));
                Ok(0)
            }
            F_DUPFD => {
                let desc = files.get(fd)?.desc.clone();
                let max = self.config.limits.max_fds;
                if arg >= max {
                    return errno(EINVAL);
                }
                Ok(files.insert_from(arg, FdEntry { desc, cloexec: false }, max)?)
            }
            _ => errno(EINVAL),
        }
    }

    pub(super) fn sys_remove(&mut self, tid: Pid, call: &Call) -> SysResult {
        let Input::Path(path) = &call.input else {
            return errno(EFAULT);
        };
        let (scheme, rest) = self.proc_of(tid)?.fs.borrow().resolve(path)?;
        let ctx = self.call_ctx(tid)?;
        let s = self.schemes.get_mut(&scheme).ok_or(Errno(ENOENT))?;
        if call.number == SYS_RMDIR {
            s.rmdir(&rest, &ctx)?;
        } else {
            s.unlink(&rest, &ctx)?;
        }
        Ok(0)
    }

    pub(super) fn sys_chdir(&mut self, tid: Pid, call: &Call) -> SysResult {
        let Input::Path(path) = &call.input else {
            return errno(EFAULT);
        };
        let fs = self.proc_of(tid)?.fs.clone();
        let (scheme, rest) = fs.borrow().resolve(path)?;
        let ctx = self.call_ctx(tid)?;
        let file = self.open_in_scheme(&scheme, &rest, O_RDONLY | O_STAT | O_DIRECTORY, &ctx)?;
        let desc = OpenFile::new(file, O_RDONLY);
        let stat = desc.file.try_borrow().map_err(|_| Errno(EIO))?.stat();
        if let Ok(stat) = stat {
            if !stat.is_dir() {
                return errno(ENOTDIR);
            }
        }
        drop(desc);
        let mut fs = fs.borrow_mut();
        fs.cwd_scheme = scheme;
        fs.cwd = rest;
        Ok(0)
    }

    pub(super) fn sys_getcwd(&mut self, tid: Pid, addr: usize, len: usize) -> SysResult {
        let cwd = self.proc_of(tid)?.fs.borrow().cwd_display();
        if len < cwd.len() {
            return errno(ERANGE);
        }
        copy_out(&mut self.mm_of(tid)?.borrow_mut().space.mem, addr, &cwd)?;
        Ok(cwd.len())
    }

    pub(super) fn sys_pipe2(&mut self, tid: Pid, addr: usize, flags: usize) -> SysResult {
        if flags & !(O_NONBLOCK | O_CLOEXEC) != 0 {
            return errno(EINVAL);
        }
        let mm = self.mm_of(tid)?;
        check_writable(&mm.borrow().space.mem, addr, 16)?;
        let id = self.alloc_object_id();
        let (reader, writer) = crate::pipe::new_pipe(id, &self.waker, &self.mem_total)?;
        let cloexec = flags & O_CLOEXEC != 0;
        let status = flags & O_NONBLOCK;
        let rfd = self.install_fd(tid, reader, O_RDONLY | status, cloexec)?;
        let wfd = match self.install_fd(tid, writer, O_WRONLY | status, cloexec) {
            Ok(fd) => fd,
            Err(e) => {
                let _ = self.sys_close(tid, rfd);
                return Err(e.into());
            }
        };
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&(rfd as u64).to_le_bytes());
        out[8..].copy_from_slice(&(wfd as u64).to_le_bytes());
        copy_out(&mut mm.borrow_mut().space.mem, addr, &out)?;
        Ok(0)
    }
}
