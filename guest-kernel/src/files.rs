//! The descriptor layer both personalities share: opening a path in its scheme, installing
//! a description in the lowest free descriptor, finding and closing descriptors.
//!
//! The personalities' handlers (`syscall::fs` for Redox, `linux::fs`) translate their ABI
//! onto these (Linux open flags, `*at` directories, `/dev` names); what reading and writing
//! through a descriptor means is [`crate::io`]. Descriptor numbers and their close-on-exec
//! bits live in each process's [`FdTable`](crate::process::FdTable); the description (file
//! and status flags) is shared by every descriptor `dup`ed from it.

use std::rc::Rc;

use warden_abi::{Errno, ENOENT, O_ACCMODE, O_APPEND, O_DIRECTORY, O_NOFOLLOW, O_NONBLOCK, O_STAT, O_SYMLINK};

use crate::call::SysResult;
use crate::process::{FdEntry, OpenFile};
use crate::scheme::{CallCtx, FileRef};
use crate::{Kernel, Pid};

/// Status flags a description keeps (and `F_SETFL` may change: NONBLOCK, APPEND).
const DESC_FLAGS: usize = O_ACCMODE | O_NONBLOCK | O_APPEND | O_DIRECTORY | O_STAT | O_SYMLINK | O_NOFOLLOW;

impl Kernel {
    /// Who thread `tid` is, as schemes see it.
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

    /// Opens `rest` in `scheme` (`proc:` is the kernel's own; `pipe:` only comes from `pipe2`).
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
            _ => self.ns.schemes.get_mut(scheme).ok_or(Errno(ENOENT))?.open(rest, flags, ctx),
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

    /// The description behind thread `tid`'s descriptor `fd`.
    pub(crate) fn desc(&self, tid: Pid, fd: usize) -> Result<Rc<OpenFile>, Errno> {
        Ok(self.proc_of(tid)?.files.borrow().get(fd)?.desc.clone())
    }

    /// Closes `fd` (the description goes when its last descriptor does).
    pub(crate) fn sys_close(&mut self, tid: Pid, fd: usize) -> SysResult {
        let files = self.proc_of(tid)?.files.clone();
        let entry = files.borrow_mut().remove(fd)?;
        drop(entry);
        Ok(0)
    }
}
