//! Descriptor and path calls: open, close, read, write, lseek, dup, dup2,
//! fpath, fstat, fsync, ftruncate, fcntl, unlink, rmdir, chdir, getcwd, pipe2.
//!
//! Paths are resolved against the caller's working directory by
//! `FsContext::resolve`; `file:` paths reach the root scheme absolute and
//! normalised (`/bin/init`). `proc:` is served by the kernel itself; `pipe:`
//! descriptors come only from `pipe2`. The descriptor layer these handlers share with the
//! Linux personality is [`crate::files`]; what `read` and `write` mean, [`crate::io`].

use warden_abi::*;

use super::{errno, Call, SysError, SysResult, FD_NONBLOCK_CALL};
use crate::io::How;
use crate::process::{FdEntry, OpenFile};
use crate::usercopy::{check_writable, copy_out};
use crate::{Kernel, Pid};

/// The status flags `F_SETFL` may change.
const SETFL_FLAGS: usize = O_NONBLOCK | O_APPEND;

impl Kernel {
    /// The working directory as `getcwd` shows it to thread `tid`: relative to its jail's
    /// root if it is jailed.
    fn shown_cwd(&self, tid: Pid) -> Result<Vec<u8>, Errno> {
        match self.jail_view(tid) {
            Some(jail) => self.jailed_cwd(tid, &jail),
            None => Ok(self.proc_of(tid)?.fs.borrow().cwd_display()),
        }
    }
}

// --- handlers (rows of `warden_abi::redox_calls!`) -------------------------------------------

pub(super) fn open(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    if let Some(r) = k.user_scheme_call(tid, c) {
        return r;
    }
    let flags = c.args[2];
    let file = k.open_path(tid, c.path(0)?, flags)?;
    Ok(k.install_fd(tid, file, flags, flags & O_CLOEXEC != 0)?)
}

pub(super) fn close(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    k.sys_close(tid, c.args[0])
}

/// `read` and `write` ([`crate::io`]): [`FD_NONBLOCK_CALL`] in the descriptor makes this
/// one call non-blocking.
pub(super) fn read(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let [fd, addr, len, ..] = c.args;
    let desc = k.desc(tid, fd & !FD_NONBLOCK_CALL)?;
    k.read_desc(tid, &desc, &[(addr, len)], How::of(&desc, fd & FD_NONBLOCK_CALL != 0))
}

pub(super) fn write(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let fd = c.args[0];
    let desc = k.desc(tid, fd & !FD_NONBLOCK_CALL)?;
    k.write_desc(tid, &desc, c.bytes(1)?, How::of(&desc, fd & FD_NONBLOCK_CALL != 0))
}

pub(super) fn lseek(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    if let Some(r) = k.user_scheme_call(tid, c) {
        return r;
    }
    let [fd, offset, whence, ..] = c.args;
    if whence > SEEK_END {
        return errno(EINVAL);
    }
    let desc = k.desc(tid, fd)?;
    let pos = desc.file.try_borrow_mut().map_err(|_| Errno(EIO))?.seek(offset as isize as i64, whence)?;
    usize::try_from(pos).map_err(|_| SysError::Errno(Errno(EINVAL)))
}

/// `dup`'s and `dup2`'s buffer (a sub-path for an fd-relative open) must be empty.
fn check_dup_buf(c: &Call, arg: usize) -> Result<(), Errno> {
    match c.items().get(ITEM_BYTES, arg) {
        Some(b) if !b.is_empty() => Err(Errno(EINVAL)),
        _ => Ok(()),
    }
}

pub(super) fn dup(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    if let Some(r) = k.user_scheme_call(tid, c) {
        return r;
    }
    check_dup_buf(c, 1)?;
    let desc = k.desc(tid, c.args[0])?;
    let files = k.proc_of(tid)?.files.clone();
    let max = k.config.limits.max_fds;
    let new = files.borrow_mut().insert(FdEntry { desc, cloexec: false }, max)?;
    Ok(new)
}

pub(super) fn dup2(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    check_dup_buf(c, 2)?;
    let [fd, new, ..] = c.args;
    let desc = k.desc(tid, fd)?;
    if fd == new {
        return Ok(new);
    }
    let files = k.proc_of(tid)?.files.clone();
    let max = k.config.limits.max_fds;
    let old = files.borrow_mut().replace(new, FdEntry { desc, cloexec: false }, max)?;
    drop(old);
    Ok(new)
}

/// `fpath`: in a jail, a `file:` path is shown relative to the root (EPERM outside it).
pub(super) fn fpath(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    if let Some(r) = k.user_scheme_call(tid, c) {
        return r;
    }
    let [fd, addr, len, ..] = c.args;
    let desc = k.desc(tid, fd)?;
    let mut path = desc.file.try_borrow().map_err(|_| Errno(EIO))?.path();
    drop(desc);
    if let (Some(jail), Some(global)) = (k.jail_view(tid), path.strip_prefix(b"file:")) {
        let rel = crate::policy::strip_root(&jail.root, global).ok_or(Errno(EPERM))?;
        path = [&b"file:"[..], rel].concat();
    }
    let n = path.len().min(len);
    copy_out(&mut k.mm_of(tid)?.borrow_mut().space.mem, addr, &path[..n])?;
    Ok(n)
}

pub(super) fn fstat(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    if let Some(r) = k.user_scheme_call(tid, c) {
        return r;
    }
    let [fd, addr, len, ..] = c.args;
    if len < Stat::SIZE {
        return errno(EINVAL);
    }
    let desc = k.desc(tid, fd)?;
    let stat = desc.file.try_borrow().map_err(|_| Errno(EIO))?.stat()?;
    copy_out(&mut k.mm_of(tid)?.borrow_mut().space.mem, addr, &stat.to_bytes())?;
    Ok(0)
}

pub(super) fn fsync(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    if let Some(r) = k.user_scheme_call(tid, c) {
        return r;
    }
    let desc = k.desc(tid, c.args[0])?;
    desc.file.try_borrow_mut().map_err(|_| Errno(EIO))?.sync()?;
    Ok(0)
}

pub(super) fn ftruncate(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    if let Some(r) = k.user_scheme_call(tid, c) {
        return r;
    }
    let desc = k.desc(tid, c.args[0])?;
    if desc.flags.get() & O_ACCMODE == O_RDONLY {
        return errno(EBADF);
    }
    desc.file.try_borrow_mut().map_err(|_| Errno(EIO))?.truncate(c.args[1] as u64)?;
    Ok(0)
}

pub(super) fn fcntl(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let [fd, cmd, arg, ..] = c.args;
    let files = k.proc_of(tid)?.files.clone();
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
            let max = k.config.limits.max_fds;
            if arg >= max {
                return errno(EINVAL);
            }
            Ok(files.insert_from(arg, FdEntry { desc, cloexec: false }, max)?)
        }
        _ => errno(EINVAL),
    }
}

fn remove(k: &mut Kernel, tid: Pid, c: &Call, dir: bool) -> SysResult {
    let (scheme, rest) = k.proc_of(tid)?.fs.borrow().resolve(c.path(0)?)?;
    let ctx = k.call_ctx(tid)?;
    let s = k.ns.schemes.get_mut(&scheme).ok_or(Errno(ENOENT))?;
    if dir {
        s.rmdir(&rest, &ctx)?;
    } else {
        s.unlink(&rest, &ctx)?;
    }
    Ok(0)
}

pub(super) fn unlink(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    if let Some(r) = k.user_scheme_call(tid, c) {
        return r;
    }
    remove(k, tid, c, false)
}

pub(super) fn rmdir(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    if let Some(r) = k.user_scheme_call(tid, c) {
        return r;
    }
    remove(k, tid, c, true)
}

pub(super) fn chdir(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let fs = k.proc_of(tid)?.fs.clone();
    let (scheme, rest) = fs.borrow().resolve(c.path(0)?)?;
    let ctx = k.call_ctx(tid)?;
    let file = k.open_in_scheme(&scheme, &rest, O_RDONLY | O_STAT | O_DIRECTORY, &ctx)?;
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

/// `getcwd`: in a jail, the directory relative to the root.
pub(super) fn getcwd(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let [addr, len, ..] = c.args;
    let cwd = k.shown_cwd(tid)?;
    if len < cwd.len() {
        return errno(ERANGE);
    }
    copy_out(&mut k.mm_of(tid)?.borrow_mut().space.mem, addr, &cwd)?;
    Ok(cwd.len())
}

pub(super) fn pipe2(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let [addr, flags, ..] = c.args;
    if flags & !(O_NONBLOCK | O_CLOEXEC) != 0 {
        return errno(EINVAL);
    }
    let mm = k.mm_of(tid)?;
    check_writable(&mm.borrow().space.mem, addr, 16)?;
    let id = k.alloc_object_id();
    let (reader, writer) = crate::pipe::new_pipe(id, &k.waker, &k.mem_total)?;
    let cloexec = flags & O_CLOEXEC != 0;
    let status = flags & O_NONBLOCK;
    install_pair(k, tid, [(reader, O_RDONLY | status), (writer, O_WRONLY | status)], cloexec, addr)
}

/// Installs two new descriptors (a pipe's or a channel's ends) and writes their numbers to
/// `addr` as two u64s; if the second cannot be installed, the first is closed again. The
/// caller has checked that `addr..addr + 16` is writable.
pub(crate) fn install_pair(
    k: &mut Kernel,
    tid: Pid,
    [(first, first_flags), (second, second_flags)]: [(crate::scheme::FileRef, usize); 2],
    cloexec: bool,
    addr: usize,
) -> SysResult {
    let a = k.install_fd(tid, first, first_flags, cloexec)?;
    let b = match k.install_fd(tid, second, second_flags, cloexec) {
        Ok(fd) => fd,
        Err(e) => {
            let _ = k.sys_close(tid, a);
            return Err(e.into());
        }
    };
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&(a as u64).to_le_bytes());
    out[8..].copy_from_slice(&(b as u64).to_le_bytes());
    copy_out(&mut k.mm_of(tid)?.borrow_mut().space.mem, addr, &out)?;
    Ok(0)
}
