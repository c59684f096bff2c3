//! Linux file, directory, descriptor and polling calls.
//!
//! Paths: a Linux path has no scheme. It is made absolute here (against the
//! working directory, or the directory of `dirfd` for the `*at` calls) and
//! given to the kernel as `file:/abs/path`, so names with a `:` stay names.
//! A few device paths are virtualised: `/dev/null` → `null:`, `/dev/zero` →
//! `zero:`, `/dev/random` and `/dev/urandom` → `rand:`, `/dev/stdin`,
//! `/dev/stdout`, `/dev/stderr`, `/dev/fd/N` and `/proc/self/fd/N` → a `dup`
//! of that descriptor.

use std::rc::Rc;

use warden_abi as r;
use warden_abi::{Errno, Stat};

use super::abi::{self, Out};
use super::inotify::{IN_ATTRIB, IN_CREATE, IN_ISDIR, IN_MODIFY};
use super::procfs::ProcNode;
use super::{DirStream, MAX_IO};
use crate::io::How;
use crate::process::{normalize, FdEntry, OnWake, OpenFile, WaitOn};
use crate::scheme::IoError;
use crate::syscall::{Block, Call, SysError, SysResult};
use crate::usercopy::{check_writable, copy_out};
use crate::{Kernel, Pid};

fn err<T>(e: i32) -> Result<T, SysError> {
    Err(SysError::Errno(Errno(e)))
}

/// Linux open flags → Redox open flags (mode in the low bits).
fn open_flags(flags: usize, mode: usize) -> usize {
    let mut out = match flags & abi::O_ACCMODE {
        abi::O_WRONLY => r::O_WRONLY,
        abi::O_RDWR => r::O_RDWR,
        _ => r::O_RDONLY,
    };
    let map = [
        (abi::O_CREAT, r::O_CREAT),
        (abi::O_EXCL, r::O_EXCL),
        (abi::O_TRUNC, r::O_TRUNC),
        (abi::O_APPEND, r::O_APPEND),
        (abi::O_NONBLOCK, r::O_NONBLOCK),
        (abi::O_CLOEXEC, r::O_CLOEXEC),
    ];
    for (l, x) in map {
        if flags & l != 0 {
            out |= x;
        }
    }
    if flags & abi::O_DIRECTORY != 0 && flags & abi::O_CREAT == 0 {
        out |= r::O_DIRECTORY;
    }
    if flags & abi::O_PATH != 0 {
        out = r::O_STAT | (out & r::O_DIRECTORY);
    }
    out | (mode & 0o7777)
}

/// Redox description flags → Linux `F_GETFL` flags.
fn linux_status_flags(flags: usize) -> usize {
    let mut out = match flags & r::O_ACCMODE {
        r::O_WRONLY => abi::O_WRONLY,
        r::O_RDWR => abi::O_RDWR,
        _ => 0,
    };
    if flags & r::O_APPEND != 0 {
        out |= abi::O_APPEND;
    }
    if flags & r::O_NONBLOCK != 0 {
        out |= abi::O_NONBLOCK;
    }
    if flags & r::O_DIRECTORY != 0 {
        out |= abi::O_DIRECTORY;
    }
    out | abi::O_LARGEFILE
}

/// Where an absolute Linux path leads: a scheme path, or a descriptor to duplicate.
enum Target {
    Path(Vec<u8>),
    Fd(usize),
}

fn target_of(abs: &[u8]) -> Target {
    let scheme = |s: &[u8]| Target::Path(s.to_vec());
    match abs {
        b"/dev/null" => scheme(b"null:"),
        b"/dev/zero" => scheme(b"zero:"),
        b"/dev/random" | b"/dev/urandom" => scheme(b"rand:"),
        b"/dev/stdin" => Target::Fd(0),
        // The console as a terminal (`tty.rs`): reads stdin, writes stdout.
        b"/dev/tty" | b"/dev/pts/0" => scheme(b"debug:"),
        b"/dev/stdout" => Target::Fd(1),
        b"/dev/stderr" => Target::Fd(2),
        _ => {
            for prefix in [&b"/dev/fd/"[..], b"/proc/self/fd/"] {
                if let Some(n) = abs.strip_prefix(prefix) {
                    if let Some(fd) = std::str::from_utf8(n).ok().and_then(|s| s.parse::<usize>().ok()) {
                        return Target::Fd(fd);
                    }
                }
            }
            let mut p = b"file:".to_vec();
            p.extend_from_slice(abs);
            Target::Path(p)
        }
    }
}

/// An inode number for a /proc path (stable within a run: a hash of the path).
fn proc_ino(abs: &[u8]) -> u64 {
    abs.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3)) >> 1 | 1
}

/// Where /proc link `abs` with target `target` leads (a relative target is taken
/// against the link's directory).
fn proc_link_target(abs: &[u8], target: &[u8]) -> Vec<u8> {
    if target.starts_with(b"/") {
        return target.to_vec();
    }
    let dir = &abs[..abs.iter().rposition(|&b| b == b'/').unwrap_or(0)];
    normalize(if dir.is_empty() { b"/" } else { dir }, target)
}

/// utimensat's special nanosecond values.
const UTIME_NOW: u64 = (1 << 30) - 1;
const UTIME_OMIT: u64 = (1 << 30) - 2;

fn file_path(abs: &[u8]) -> Vec<u8> {
    let mut p = b"file:".to_vec();
    p.extend_from_slice(abs);
    p
}

impl Kernel {
    /// The /proc (or /sys) node `abs` names for a Linux process, unless `abs` is one the
    /// older rules serve (`/proc/self/fd/N` duplicates the descriptor).
    fn lx_proc_path(&self, tid: Pid, abs: &[u8]) -> Option<Result<ProcNode, Errno>> {
        if matches!(target_of(abs), Target::Fd(_)) {
            return None;
        }
        self.lx_proc_node(tid, abs)
    }

    /// The absolute, normalised path `path` names relative to the working directory.
    pub(super) fn lx_abs_cwd(&self, tid: Pid, path: &[u8]) -> Result<Vec<u8>, Errno> {
        self.lx_abs(tid, CWD, path)
    }

    /// Stat of `abs` (a final symlink followed unless `nofollow`), for other modules.
    pub(super) fn lx_stat_of(&mut self, tid: Pid, abs: &[u8], nofollow: bool) -> Result<Stat, Errno> {
        self.lx_stat_abs(tid, abs, nofollow)
    }

    /// Whether `abs` exists and is a directory, when inotify watches anything (else `None`:
    /// nobody needs to know).
    fn lx_watched_kind(&mut self, tid: Pid, abs: &[u8]) -> Option<Option<bool>> {
        if self.linux.inotify.is_empty() {
            return None;
        }
        Some(self.lx_stat_abs(tid, abs, true).ok().map(|s| s.is_dir()))
    }

    /// The absolute, normalised path `path` names relative to `dirfd`.
    fn lx_abs(&self, tid: Pid, dirfd: usize, path: &[u8]) -> Result<Vec<u8>, Errno> {
        if path.is_empty() {
            return Err(Errno(r::ENOENT));
        }
        if path[0] == b'/' {
            return Ok(normalize(b"/", path));
        }
        if dirfd as i32 as isize == abi::AT_FDCWD {
            let fs = self.proc_of(tid)?.fs.clone();
            let fs = fs.borrow();
            if fs.cwd_scheme != b"file" {
                return Err(Errno(r::ENOENT));
            }
            return Ok(normalize(&fs.cwd, path));
        }
        let base = self.lx_fd_dir(tid, dirfd)?;
        Ok(normalize(&base, path))
    }

    /// The `file:` path of the directory open at `fd`.
    fn lx_fd_dir(&self, tid: Pid, fd: usize) -> Result<Vec<u8>, Errno> {
        let desc = self.desc(tid, fd)?;
        let file = desc.file.try_borrow().map_err(|_| Errno(r::EIO))?;
        if !file.stat()?.is_dir() {
            return Err(Errno(r::ENOTDIR));
        }
        let path = file.path();
        path.strip_prefix(b"file:").map(|p| p.to_vec()).ok_or(Errno(r::ENOTDIR))
    }

    /// Stat of `abs` (a final symlink followed unless `nofollow`).
    pub(super) fn lx_stat_abs(&mut self, tid: Pid, abs: &[u8], nofollow: bool) -> Result<Stat, Errno> {
        if let Some(node) = self.lx_proc_path(tid, abs) {
            return match node? {
                ProcNode::Link(target) if !nofollow => {
                    let target = proc_link_target(abs, &target);
                    if target.starts_with(b"/proc") {
                        self.lx_stat_abs(tid, &target, false)
                    } else {
                        self.lx_stat_abs(tid, &target, false).or_else(|_| Ok(ProcNode::Link(target).stat(0)))
                    }
                }
                node => Ok(node.stat(proc_ino(abs))),
            };
        }
        let path = match target_of(abs) {
            Target::Fd(fd) => return self.desc(tid, fd)?.file.try_borrow().map_err(|_| Errno(r::EIO))?.stat(),
            Target::Path(p) => p,
        };
        let flags = r::O_STAT | if nofollow { r::O_NOFOLLOW } else { 0 };
        let file = self.open_path(tid, &path, flags)?;
        let desc = OpenFile::new(file, r::O_STAT);
        let mut stat = desc.file.try_borrow().map_err(|_| Errno(r::EIO))?.stat()?;
        if stat.st_mode & r::MODE_TYPE == r::MODE_FILE && self.lx_is_fifo(abs) {
            stat.st_mode = (stat.st_mode & !r::MODE_TYPE) | r::MODE_FIFO;
        }
        Ok(stat)
    }

    fn lx_fstat(&self, tid: Pid, fd: usize) -> Result<Stat, Errno> {
        self.desc(tid, fd)?.file.try_borrow().map_err(|_| Errno(r::EIO))?.stat()
    }

    /// Stat for the `*at` calls (`AT_EMPTY_PATH` means the descriptor itself).
    fn lx_statat(&mut self, tid: Pid, dirfd: usize, path: &[u8], flags: usize) -> Result<Stat, Errno> {
        if path.is_empty() && flags & abi::AT_EMPTY_PATH != 0 {
            if dirfd as i32 as isize == abi::AT_FDCWD {
                let abs = self.lx_abs(tid, dirfd, b".")?;
                return self.lx_stat_abs(tid, &abs, false);
            }
            return self.lx_fstat(tid, dirfd);
        }
        let abs = self.lx_abs(tid, dirfd, path)?;
        self.lx_stat_abs(tid, &abs, flags & abi::AT_SYMLINK_NOFOLLOW != 0)
    }

    fn lx_install(&mut self, tid: Pid, desc: Rc<OpenFile>, cloexec: bool, min: usize) -> Result<usize, Errno> {
        let files = self.proc_of(tid)?.files.clone();
        let max = self.config.limits.max_fds;
        let fd = files.borrow_mut().insert_from(min, FdEntry { desc, cloexec }, max);
        fd
    }

    fn lx_openat(&mut self, tid: Pid, dirfd: usize, path: &[u8], flags: usize, mode: usize) -> SysResult {
        let mut abs = self.lx_abs(tid, dirfd, path)?;
        if abs == b"/proc/self/exe" {
            // The guest's own program, not the host's (warden).
            let pid = self.pid_of(tid)?;
            abs =
                self.linux.procs.get(&pid).map(|p| p.exe.clone()).filter(|e| !e.is_empty()).ok_or(Errno(r::ENOENT))?;
            if let Some(jail) = self.jail_view(tid) {
                crate::policy::strip_root(&jail.root, &abs).ok_or(Errno(r::ENOENT))?;
            }
        }
        if abs == b"/dev/tty" && !self.tty_controlling(tid) {
            return err(r::ENXIO);
        }
        let cloexec = flags & abi::O_CLOEXEC != 0;
        if let Some(node) = self.lx_proc_path(tid, &abs) {
            let file = match node? {
                ProcNode::Link(target) => {
                    let target = proc_link_target(&abs, &target);
                    return self.lx_openat(tid, CWD, &target, flags, mode);
                }
                _ if flags & 3 != 0 => return err(r::EACCES),
                ProcNode::File(data) => crate::proc::SnapshotFile::open(file_path(&abs), data, false),
                ProcNode::Dir(names) => {
                    let list = names.iter().flat_map(|n| n.iter().copied().chain([b'\n'])).collect();
                    crate::proc::SnapshotFile::open(file_path(&abs), list, true)
                }
            };
            return Ok(self.install_fd(tid, file, r::O_RDONLY, cloexec)?);
        }
        let path = match target_of(&abs) {
            Target::Fd(fd) => {
                let desc = self.desc(tid, fd)?;
                let fresh = desc.file.try_borrow().ok().and_then(|f| super::memfd::reopen(&*f));
                if let Some(file) = fresh {
                    return Ok(self.install_fd(tid, file, open_flags(flags, 0), cloexec)?);
                }
                return Ok(self.lx_install(tid, desc, cloexec, 0)?);
            }
            Target::Path(p) => p,
        };
        let umask = self.proc_of(tid)?.fs.borrow().umask as usize;
        let mut rflags = open_flags(flags, mode & !umask);
        if flags & abi::O_NOFOLLOW != 0 && flags & abi::O_PATH == 0 {
            if let Ok(st) = self.lx_stat_abs(tid, &abs, true) {
                if st.st_mode & r::MODE_TYPE == r::MODE_SYMLINK {
                    return err(r::ELOOP);
                }
            }
            rflags &= !r::O_NOFOLLOW;
        }
        if flags & abi::O_PATH == 0 && self.lx_is_fifo(&abs) {
            if flags & abi::O_CREAT != 0 && flags & abi::O_EXCL != 0 {
                return err(r::EEXIST);
            }
            if let Some(result) = self.lx_open_fifo(tid, &abs, flags, cloexec) {
                return result;
            }
        }
        let before = if flags & (abi::O_CREAT | abi::O_TRUNC) != 0 { self.lx_watched_kind(tid, &abs) } else { None };
        // A read-write open of a directory is EISDIR on Linux as well.
        let file = match self.open_path(tid, &path, rflags) {
            // A FIFO node of the file system (made by the host): a guest FIFO from now on.
            Err(Errno(r::EACCES)) if flags & abi::O_PATH == 0 && self.lx_adopt_fifo(tid, &abs) => {
                return self.lx_open_fifo(tid, &abs, flags, cloexec).unwrap_or(err(r::EACCES));
            }
            result => result?,
        };
        let fd = self.install_fd(tid, file, rflags, cloexec)?;
        self.lx_notify_open(tid, fd);
        match before {
            Some(None) => self.lx_notify(&abs, IN_CREATE),
            Some(Some(false)) if flags & abi::O_TRUNC != 0 && flags & 3 != 0 => self.lx_notify(&abs, IN_MODIFY),
            _ => {}
        }
        Ok(fd)
    }

    /// `read` and friends ([`crate::io`]) into the guest ranges `iov`; a directory gives
    /// EISDIR, as on Linux.
    fn lx_read(&mut self, tid: Pid, fd: usize, iov: &[(usize, usize)], offset: Option<u64>) -> SysResult {
        let desc = self.desc(tid, fd)?;
        self.lx_fire_timerfds();
        if let Some(mask) = super::signalfd::signalfd_mask(&desc) {
            return self.lx_signalfd_read(tid, &desc, mask, iov.first().copied().unwrap_or((0, 0)));
        }
        let is_dir = |d: &OpenFile| d.file.try_borrow().is_ok_and(|f| f.stat().is_ok_and(|s| s.is_dir()));
        if offset.is_some() && is_dir(&desc) {
            return err(r::EISDIR);
        }
        self.tty_check_io(tid, &desc, false)?;
        self.lx_shared_file_io(&desc, false);
        match self.read_desc(tid, &desc, iov, How::of(&desc, false).at(offset)) {
            Err(SysError::Errno(Errno(r::EBADF))) if is_dir(&desc) => err(r::EISDIR),
            Ok(n) if n > 0 => {
                self.lx_notify_access(&desc);
                Ok(n)
            }
            result => result,
        }
    }

    /// `write` and friends ([`crate::io`]); shared mappings of the file see the new bytes.
    fn lx_write(&mut self, tid: Pid, fd: usize, data: &[u8], offset: Option<u64>) -> SysResult {
        let desc = self.desc(tid, fd)?;
        self.tty_check_io(tid, &desc, true)?;
        self.lx_shared_file_io(&desc, false);
        let result = self.write_desc(tid, &desc, data, How::of(&desc, false).at(offset));
        if result.is_ok() {
            self.lx_shared_file_io(&desc, true);
            self.lx_notify_modified(&desc);
        }
        result
    }

    fn lx_out(&mut self, tid: Pid, addr: usize, data: &[u8]) -> Result<(), Errno> {
        let mm = self.mm_of(tid)?;
        let r = copy_out(&mut mm.borrow_mut().space.mem, addr, data);
        r
    }

    fn lx_getdents(&mut self, tid: Pid, fd: usize, addr: usize, count: usize) -> SysResult {
        let desc = self.desc(tid, fd)?;
        let idx = self.linux.dirs.iter().position(|(w, _)| w.as_ptr() == Rc::as_ptr(&desc));
        let idx = match idx {
            Some(i) => i,
            None => {
                let stream = self.lx_dir_stream(tid, &desc)?;
                self.linux.dirs.retain(|(w, _)| w.strong_count() > 0);
                self.linux.dirs.push((Rc::downgrade(&desc), stream));
                self.linux.dirs.len() - 1
            }
        };
        let mm = self.mm_of(tid)?;
        check_writable(&mm.borrow().space.mem, addr, count.min(MAX_IO))?;
        let stream = &mut self.linux.dirs[idx].1;
        let mut out = Vec::new();
        while let Some((name, ino, ty)) = stream.entries.get(stream.pos) {
            let reclen = (19 + name.len() + 1 + 7) & !7;
            if out.len() + reclen > count.min(MAX_IO) {
                break;
            }
            let mut rec = Out::new(reclen);
            rec.u64(0, *ino);
            rec.u64(8, stream.pos as u64 + 1);
            rec.u16(16, reclen as u16);
            rec.put(18, &[*ty]);
            rec.put(19, name);
            out.extend_from_slice(&rec.0);
            stream.pos += 1;
        }
        if out.is_empty() && stream.pos < stream.entries.len() {
            return err(r::EINVAL);
        }
        copy_out(&mut mm.borrow_mut().space.mem, addr, &out)?;
        self.lx_notify_access(&desc);
        Ok(out.len())
    }

    fn lx_dir_stream(&mut self, tid: Pid, desc: &Rc<OpenFile>) -> Result<DirStream, Errno> {
        let (dir_stat, path) = {
            let file = desc.file.try_borrow().map_err(|_| Errno(r::EIO))?;
            (file.stat()?, file.path())
        };
        if !dir_stat.is_dir() {
            return Err(Errno(r::ENOTDIR));
        }
        let listing = {
            let mut file = desc.file.try_borrow_mut().map_err(|_| Errno(r::EIO))?;
            let _ = file.seek(0, r::SEEK_SET);
            crate::io::read_to_end(&mut *file, 64 << 20, Errno(r::ENOMEM))?
        };
        let base = path.strip_prefix(b"file:").map(|p| p.to_vec());
        let mut entries = vec![(b".".to_vec(), dir_stat.st_ino, 4u8), (b"..".to_vec(), dir_stat.st_ino, 4u8)];
        if let Some(base) = &base {
            let parent = normalize(base, b"..");
            if let Ok(st) = self.lx_stat_abs(tid, &parent, false) {
                entries[1].1 = st.st_ino;
            }
        }
        for name in listing.split(|&b| b == b'\n').filter(|n| !n.is_empty()) {
            let (ino, ty) = match &base {
                Some(base) => {
                    let mut p = base.clone();
                    if !p.ends_with(b"/") {
                        p.push(b'/');
                    }
                    p.extend_from_slice(name);
                    match self.lx_stat_abs(tid, &p, true) {
                        Ok(st) => (st.st_ino, abi::dirent_type(st.st_mode)),
                        Err(_) => (1, 0),
                    }
                }
                None => (1, 0),
            };
            entries.push((name.to_vec(), ino.max(1), ty));
        }
        Ok(DirStream { entries, pos: 0 })
    }

    fn lx_remove(&mut self, tid: Pid, abs: &[u8], dir: bool) -> SysResult {
        let ctx = self.call_ctx(tid)?;
        let s = self.ns.schemes.get_mut(&b"file"[..]).ok_or(Errno(r::ENOENT))?;
        if dir {
            s.rmdir(abs, &ctx)?;
        } else {
            s.unlink(abs, &ctx)?;
        }
        self.lx_notify_delete(abs, dir);
        self.lx_fifo_moved(abs, None);
        Ok(0)
    }

    fn lx_read_all(&mut self, tid: Pid, path: &[u8], flags: usize) -> Result<Vec<u8>, Errno> {
        let file = self.open_path(tid, path, flags)?;
        let desc = OpenFile::new(file, r::O_RDONLY);
        let mut f = desc.file.try_borrow_mut().map_err(|_| Errno(r::EIO))?;
        crate::io::read_to_end(&mut *f, crate::vfs::MAX_FILE_SIZE, Errno(r::EFBIG))
    }

    fn lx_write_new(&mut self, tid: Pid, path: &[u8], flags: usize, data: &[u8]) -> Result<(), Errno> {
        let file = self.open_path(tid, path, flags)?;
        let desc = OpenFile::new(file, r::O_WRONLY);
        let mut f = desc.file.try_borrow_mut().map_err(|_| Errno(r::EIO))?;
        let mut done = 0;
        while done < data.len() {
            let n = f.write(&data[done..]).map_err(|e| match e {
                IoError::Errno(e) => e,
                IoError::WouldBlock(_) => Errno(r::EAGAIN),
            })?;
            if n == 0 {
                return Err(Errno(r::EIO));
            }
            done += n;
        }
        Ok(())
    }

    /// `rename` (files, symlinks and whole directories) through the `file:` scheme.
    fn lx_rename(&mut self, tid: Pid, old: &[u8], new: &[u8]) -> SysResult {
        let kind = self.lx_watched_kind(tid, old);
        let ctx = self.call_ctx(tid)?;
        let s = self.ns.schemes.get_mut(&b"file"[..]).ok_or(Errno(r::ENOENT))?;
        s.rename(old, new, &ctx)?;
        if old != new {
            self.lx_fifo_moved(new, None);
        }
        self.lx_fifo_moved(old, Some(new));
        if let Some(is_dir) = kind {
            self.lx_notify_rename(old, new, is_dir.unwrap_or(false));
        }
        Ok(0)
    }

    /// chmod/utimensat through the `file:` scheme (other schemes: no effect).
    fn lx_set_attr(&mut self, tid: Pid, abs: &[u8], follow: bool, perm: Option<u16>, mtime: Option<u64>) -> SysResult {
        if let Target::Fd(fd) = target_of(abs) {
            self.desc(tid, fd)?;
            return Ok(0);
        }
        if let Target::Path(p) = target_of(abs) {
            if !p.starts_with(b"file:") {
                return Ok(0);
            }
        }
        let ctx = self.call_ctx(tid)?;
        let s = self.ns.schemes.get_mut(&b"file"[..]).ok_or(Errno(r::ENOENT))?;
        s.set_attr(abs, follow, perm, mtime, &ctx)?;
        if let Some(kind) = self.lx_watched_kind(tid, abs) {
            self.lx_notify(abs, IN_ATTRIB | if kind == Some(true) { IN_ISDIR } else { 0 });
        }
        Ok(0)
    }

    /// The absolute `file:` path descriptor `fd` was opened by (no effect on others: `None`).
    fn lx_fd_path(&self, tid: Pid, fd: usize) -> Result<Vec<u8>, Errno> {
        let desc = self.desc(tid, fd)?;
        let path = desc.file.try_borrow().map_err(|_| Errno(r::EIO))?.path();
        Ok(match path.strip_prefix(b"file:") {
            Some(p) => p.to_vec(),
            // Not a file: the call has nothing to change (a pipe, the console).
            None => b"/dev/null".to_vec(),
        })
    }

    /// `link`: a hard link through the `file:` scheme.
    fn lx_link(&mut self, tid: Pid, old: &[u8], new: &[u8], follow: bool) -> SysResult {
        let ctx = self.call_ctx(tid)?;
        let s = self.ns.schemes.get_mut(&b"file"[..]).ok_or(Errno(r::ENOENT))?;
        s.link(old, new, follow, &ctx)?;
        self.lx_notify(new, IN_CREATE);
        Ok(0)
    }

    /// `/proc/self/exe` as thread `tid` sees it: its program, relative to the root in a jail
    /// (ENOENT if the program lies outside).
    fn lx_exe_shown(&self, tid: Pid) -> Result<Vec<u8>, Errno> {
        let pid = self.pid_of(tid)?;
        let exe = self.linux.procs.get(&pid).map(|p| p.exe.clone()).unwrap_or_default();
        match self.jail_view(tid) {
            Some(jail) => Ok(crate::policy::strip_root(&jail.root, &exe).ok_or(Errno(r::ENOENT))?.to_vec()),
            None => Ok(exe),
        }
    }

    fn lx_readlink(&mut self, tid: Pid, abs: &[u8], addr: usize, size: usize) -> SysResult {
        if size as isize <= 0 {
            return err(r::EINVAL);
        }
        let target = if abs == b"/proc/self/exe" {
            self.lx_exe_shown(tid)?
        } else if let Some(node) = self.lx_proc_node(tid, abs) {
            // (Also /proc/self/fd/N, which the other calls take as the descriptor itself.)
            match node? {
                ProcNode::Link(target) => target,
                _ => return err(r::EINVAL),
            }
        } else {
            let st = self.lx_stat_abs(tid, abs, true)?;
            if st.st_mode & r::MODE_TYPE != r::MODE_SYMLINK {
                return err(r::EINVAL);
            }
            self.lx_read_all(tid, &file_path(abs), r::O_RDONLY | r::O_NOFOLLOW)?
        };
        let n = target.len().min(size);
        self.lx_out(tid, addr, &target[..n])?;
        Ok(n)
    }

    fn lx_access(&mut self, tid: Pid, dirfd: usize, path: &[u8], mode: usize, flags: usize) -> SysResult {
        let st = self.lx_statat(tid, dirfd, path, flags & abi::AT_SYMLINK_NOFOLLOW)?;
        if mode & 1 != 0 && !st.is_dir() && st.st_mode & 0o111 == 0 {
            return err(r::EACCES);
        }
        let uid = self.proc_of(tid)?.uid;
        if uid != 0 {
            let m = st.st_mode as usize;
            let bits = if st.st_uid == uid { (m >> 6) & 7 } else { m & 7 };
            if mode & 4 != 0 && bits & 4 == 0 || mode & 2 != 0 && bits & 2 == 0 {
                return err(r::EACCES);
            }
        }
        Ok(0)
    }

    fn lx_chdir_abs(&mut self, tid: Pid, abs: Vec<u8>) -> SysResult {
        let st = self.lx_stat_abs(tid, &abs, false)?;
        if !st.is_dir() {
            return err(r::ENOTDIR);
        }
        let fs = self.proc_of(tid)?.fs.clone();
        let mut fs = fs.borrow_mut();
        fs.cwd_scheme = b"file".to_vec();
        fs.cwd = abs;
        Ok(0)
    }

    fn lx_dup_to(&mut self, tid: Pid, old: usize, new: usize, cloexec: bool) -> SysResult {
        let desc = self.desc(tid, old)?;
        let files = self.proc_of(tid)?.files.clone();
        let max = self.config.limits.max_fds;
        let prev = files.borrow_mut().replace(new, FdEntry { desc, cloexec }, max)?;
        drop(prev);
        Ok(new)
    }

    fn lx_fcntl(&mut self, tid: Pid, fd: usize, cmd: usize, arg: usize) -> SysResult {
        let files = self.proc_of(tid)?.files.clone();
        let max = self.config.limits.max_fds;
        let mut files = files.borrow_mut();
        match cmd {
            abi::F_DUPFD | abi::F_DUPFD_CLOEXEC => {
                let desc = files.get(fd)?.desc.clone();
                if arg >= max {
                    return err(r::EINVAL);
                }
                Ok(files.insert_from(arg, FdEntry { desc, cloexec: cmd == abi::F_DUPFD_CLOEXEC }, max)?)
            }
            abi::F_GETFD => Ok(files.get(fd)?.cloexec as usize),
            abi::F_SETFD => {
                files.get_mut(fd)?.cloexec = arg & 1 != 0;
                Ok(0)
            }
            abi::F_GETFL => Ok(linux_status_flags(files.get(fd)?.desc.flags.get())),
            abi::F_SETFL => {
                let desc = &files.get(fd)?.desc;
                let mut f = desc.flags.get() & !(r::O_NONBLOCK | r::O_APPEND);
                if arg & abi::O_NONBLOCK != 0 {
                    f |= r::O_NONBLOCK;
                }
                if arg & abi::O_APPEND != 0 {
                    f |= r::O_APPEND;
                }
                desc.flags.set(f);
                Ok(0)
            }
            abi::F_GETLK | abi::F_SETLK | abi::F_SETLKW => {
                files.get(fd)?;
                Ok(0)
            }
            super::memfd::F_ADD_SEALS | super::memfd::F_GET_SEALS => {
                let desc = files.get(fd)?.desc.clone();
                drop(files);
                super::memfd::fcntl_seals(self, &desc, cmd, arg)
            }
            _ => err(r::EINVAL),
        }
    }

    fn lx_pipe(&mut self, tid: Pid, addr: usize, flags: usize) -> SysResult {
        if flags & !(abi::O_NONBLOCK | abi::O_CLOEXEC | 0o40000) != 0 {
            return err(r::EINVAL);
        }
        let mm = self.mm_of(tid)?;
        check_writable(&mm.borrow().space.mem, addr, 8)?;
        let id = self.alloc_object_id();
        let (reader, writer) = crate::pipe::new_pipe(id, &self.waker, &self.mem_total)?;
        let cloexec = flags & abi::O_CLOEXEC != 0;
        let status = if flags & abi::O_NONBLOCK != 0 { r::O_NONBLOCK } else { 0 };
        let rfd = self.install_fd(tid, reader, r::O_RDONLY | status, cloexec)?;
        let wfd = match self.install_fd(tid, writer, r::O_WRONLY | status, cloexec) {
            Ok(fd) => fd,
            Err(e) => {
                let files = self.proc_of(tid)?.files.clone();
                let entry = files.borrow_mut().remove(rfd);
                drop(entry);
                return Err(e.into());
            }
        };
        let mut out = [0u8; 8];
        out[..4].copy_from_slice(&(rfd as u32).to_le_bytes());
        out[4..].copy_from_slice(&(wfd as u32).to_le_bytes());
        copy_out(&mut mm.borrow_mut().space.mem, addr, &out)?;
        Ok(0)
    }

    /// What descriptor `fd` is ready for, as `poll` revents bits (`None`: not open).
    /// Files that never block (regular files, the console) are ready for anything.
    pub(super) fn lx_ready(&self, tid: Pid, fd: usize) -> Option<u16> {
        let desc = self.desc(tid, fd).ok()?;
        self.lx_fire_timerfds();
        if let Some(mask) = super::signalfd::signalfd_mask(&desc) {
            return Some(if self.lx_signal_ready(tid, mask) { abi::POLLIN | abi::POLLRDNORM } else { 0 });
        }
        let readiness = desc.file.try_borrow().ok().and_then(|f| f.readiness());
        let Some(r) = readiness else {
            return Some(abi::POLLIN | abi::POLLOUT | abi::POLLRDNORM | abi::POLLWRNORM);
        };
        let mut bits = 0;
        if r.read {
            bits |= abi::POLLIN | abi::POLLRDNORM;
        }
        if r.write {
            bits |= abi::POLLOUT | abi::POLLWRNORM;
        }
        if r.hangup {
            bits |= abi::POLLHUP;
        }
        if r.error {
            bits |= abi::POLLERR;
        }
        Some(bits)
    }

    fn lx_poll(
        &mut self,
        tid: Pid,
        addr: usize,
        fds: &[(i32, u16)],
        timeout: Option<u64>,
        mask: Option<u64>,
    ) -> SysResult {
        let mut out = Vec::with_capacity(fds.len() * 8);
        let mut ready = 0;
        for &(fd, events) in fds {
            let revents = if fd < 0 {
                0
            } else {
                match self.lx_ready(tid, fd as usize) {
                    None => abi::POLLNVAL,
                    // POLLHUP and POLLERR are reported whether asked for or not.
                    Some(bits) => bits & (events | abi::POLLHUP | abi::POLLERR),
                }
            };
            if revents != 0 {
                ready += 1;
            }
            out.extend_from_slice(&fd.to_le_bytes());
            out.extend_from_slice(&events.to_le_bytes());
            out.extend_from_slice(&revents.to_le_bytes());
        }
        // Written now even when nothing is ready: a timeout then finds them cleared.
        self.lx_out(tid, addr, &out)?;
        if ready == 0 {
            return self.lx_wait_masked(tid, mask, timeout);
        }
        Ok(ready)
    }

    /// Nothing is ready: wait until something may be (any wake-up key, then the
    /// call runs again on its saved copy) or until the deadline (return 0).
    ///
    /// The deadline is fixed when the call first blocks: a re-run of the same
    /// call is recognised by the thread's instruction count, which cannot have
    /// moved since (any new call executes at least its `syscall` instruction).
    /// [`Self::lx_wait_ready`] for the calls that take a signal mask (`ppoll`, `pselect6`,
    /// `epoll_pwait`): with nothing ready, a pending signal that `mask` lets through ends the
    /// call with EINTR and its handler runs under `mask`, the thread's own mask coming back
    /// with the handler's return (as `rt_sigsuspend` does). Any signal posted while the
    /// thread waits wakes it to look again (`signalfd::signal_key`). A call that finds
    /// something ready returns under the thread's own mask, leaving signals pending.
    pub(super) fn lx_wait_masked(&mut self, tid: Pid, mask: Option<u64>, timeout: Option<u64>) -> SysResult {
        if let Some(mask) = mask {
            if self.lx_interrupts_wait(tid, mask) {
                return err(r::EINTR);
            }
        }
        self.lx_wait_ready(tid, timeout)
    }

    pub(super) fn lx_wait_ready(&mut self, tid: Pid, timeout: Option<u64>) -> SysResult {
        let now = self.clock.monotonic_ns();
        let icount = self.threads.get(&tid).map_or(0, |t| t.cpu.icount);
        let lt = self.linux.threads.entry(tid).or_default();
        let deadline = match lt.poll_wait {
            Some((at, deadline)) if at == icount => deadline,
            _ => timeout.map(|ns| now.saturating_add(ns)),
        };
        if deadline.is_some_and(|d| d <= now) {
            lt.poll_wait = None;
            return Ok(0);
        }
        lt.poll_wait = Some((icount, deadline));
        Err(SysError::Block(Block { on: WaitOn::AnyKey, deadline, on_timeout: Ok(0), on_wake: OnWake::Retry }))
    }

    fn lx_select(
        &mut self,
        tid: Pid,
        a: &[usize; 6],
        nfds: usize,
        sets: [Option<&[u8]>; 3],
        timeout: Option<u64>,
        mask: Option<u64>,
    ) -> SysResult {
        let mut ready = 0;
        let mut outs: [Option<Vec<u8>>; 3] = [None, None, None];
        for (i, set) in sets.iter().enumerate() {
            let Some(set) = set else { continue };
            let mut out = vec![0u8; set.len()];
            for fd in 0..nfds {
                if set[fd / 8] & (1 << (fd % 8)) == 0 {
                    continue;
                }
                let Some(bits) = self.lx_ready(tid, fd) else {
                    return err(r::EBADF);
                };
                let hit = match i {
                    0 => bits & (abi::POLLIN | abi::POLLHUP | abi::POLLERR) != 0,
                    1 => bits & (abi::POLLOUT | abi::POLLERR) != 0,
                    _ => false,
                };
                if hit {
                    out[fd / 8] |= 1 << (fd % 8);
                    ready += 1;
                }
            }
            outs[i] = Some(out);
        }
        // The sets are written even when nothing is ready: a timeout then finds them empty.
        for (i, out) in outs.iter().enumerate() {
            if let Some(out) = out {
                self.lx_out(tid, a[1 + i], out)?;
            }
        }
        if ready == 0 {
            return self.lx_wait_masked(tid, mask, timeout);
        }
        Ok(ready)
    }
}

// --- handlers (rows of `warden_abi::linux_calls!`) -------------------------------------------

const CWD: usize = abi::AT_FDCWD as usize;

pub(super) fn read(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    k.lx_read(tid, c.args[0], &[(c.args[1], c.args[2])], None)
}

pub(super) fn pread64(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    k.lx_read(tid, c.args[0], &[(c.args[1], c.args[2])], Some(c.args[3] as u64))
}

/// `readv`/`preadv`: one read, scattered over the iovecs in order.
fn read_iov(k: &mut Kernel, tid: Pid, c: &Call, offset: Option<u64>) -> SysResult {
    let iov: Vec<(usize, usize)> = c
        .input(1)
        .unwrap_or(&[])
        .chunks_exact(16)
        .map(|e| (abi::le64(e, 0) as usize, abi::le64(e, 8) as usize))
        .collect();
    k.lx_read(tid, c.args[0], &iov, offset)
}

pub(super) fn readv(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    read_iov(k, tid, c, None)
}

pub(super) fn preadv(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    read_iov(k, tid, c, Some(c.args[3] as u64))
}

pub(super) fn write(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    k.lx_write(tid, c.args[0], c.bytes(1)?, None)
}

pub(super) fn pwrite64(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    k.lx_write(tid, c.args[0], c.bytes(1)?, Some(c.args[3] as u64))
}

pub(super) fn writev(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    k.lx_write(tid, c.args[0], c.bytes(1)?, None)
}

pub(super) fn pwritev(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    k.lx_write(tid, c.args[0], c.bytes(1)?, Some(c.args[3] as u64))
}

pub(super) fn open(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    k.lx_openat(tid, CWD, c.path(0)?, c.args[1], c.args[2])
}

pub(super) fn openat(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    k.lx_openat(tid, c.args[0], c.path(1)?, c.args[2], c.args[3])
}

pub(super) fn creat(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    k.lx_openat(tid, CWD, c.path(0)?, abi::O_CREAT | abi::O_WRONLY | abi::O_TRUNC, c.args[1])
}

pub(super) fn close(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let files = k.proc_of(tid)?.files.clone();
    let entry = files.borrow_mut().remove(c.args[0]);
    drop(entry?);
    Ok(0)
}

pub(super) fn close_range(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let [first, last, flags, ..] = c.args;
    let files = k.proc_of(tid)?.files.clone();
    let last = last.min(k.config.limits.max_fds);
    let mut dropped = Vec::new();
    for fd in first..=last {
        if flags & 4 != 0 {
            if let Ok(e) = files.borrow_mut().get_mut(fd) {
                e.cloexec = true;
            }
        } else if let Ok(e) = files.borrow_mut().remove(fd) {
            dropped.push(e);
        }
    }
    drop(dropped);
    Ok(0)
}

pub(super) fn lseek(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    // A file a user-space daemon serves: a request to it (the arguments are Redox `lseek`'s).
    if let Some(r) = k.user_scheme_call(tid, c) {
        return r;
    }
    let [fd, offset, whence, ..] = c.args;
    let desc = k.desc(tid, fd)?;
    if whence > 2 {
        return err(r::EINVAL);
    }
    let pos = desc.file.try_borrow_mut().map_err(|_| Errno(r::EIO))?.seek(offset as i64, whence)?;
    if let Some((_, s)) = k.linux.dirs.iter_mut().find(|(w, _)| w.as_ptr() == Rc::as_ptr(&desc)) {
        s.pos = if whence == 0 { offset } else { s.pos };
    }
    Ok(pos as usize)
}

fn stat_path(k: &mut Kernel, tid: Pid, c: &Call, nofollow: bool) -> SysResult {
    let abs = k.lx_abs(tid, CWD, c.path(0)?)?;
    let st = k.lx_stat_abs(tid, &abs, nofollow)?;
    k.lx_out(tid, c.args[1], &abi::stat_bytes(&st))?;
    Ok(0)
}

pub(super) fn stat(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    stat_path(k, tid, c, false)
}

pub(super) fn lstat(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    stat_path(k, tid, c, true)
}

pub(super) fn fstat(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let st = k.lx_fstat(tid, c.args[0])?;
    k.lx_out(tid, c.args[1], &abi::stat_bytes(&st))?;
    Ok(0)
}

pub(super) fn newfstatat(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let st = k.lx_statat(tid, c.args[0], c.path(1)?, c.args[3])?;
    k.lx_out(tid, c.args[2], &abi::stat_bytes(&st))?;
    Ok(0)
}

pub(super) fn statx(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let st = k.lx_statat(tid, c.args[0], c.path(1)?, c.args[2])?;
    k.lx_out(tid, c.args[4], &abi::statx_bytes(&st))?;
    Ok(0)
}

/// `struct statfs` for a file at `path` (`file:/...`, `pipe:...`): the kind of file system
/// by where the file is, fixed sizes (the host's would leak into the run).
fn statfs_bytes(path: &[u8]) -> Vec<u8> {
    const EXT4: u64 = 0xef53;
    const PROC: u64 = 0x9fa0;
    const SYSFS: u64 = 0x6265_6572;
    const TMPFS: u64 = 0x0102_1994;
    const PIPEFS: u64 = 0x5049_5045;
    const SOCKFS: u64 = 0x534f_434b;
    let abs = path.strip_prefix(b"file:");
    let under = |dir: &[u8]| abs.is_some_and(|a| a == dir || a.starts_with(&[dir, b"/"].concat()));
    let kind = if under(b"/proc") {
        PROC
    } else if under(b"/sys") {
        SYSFS
    } else if under(b"/dev") {
        TMPFS
    } else if abs.is_some() {
        EXT4
    } else if path.starts_with(b"socket:") {
        SOCKFS
    } else {
        PIPEFS
    };
    let blocks: u64 = 1 << 20;
    // type, bsize, blocks, bfree, bavail, files, ffree, fsid, namelen, frsize, flags (ST_RELATIME)
    let words = [kind, 4096, blocks, blocks / 2, blocks / 2, blocks, blocks / 2, 0, 255, 4096, 0x1000, 0, 0, 0, 0];
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

pub(super) fn statfs(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let abs = k.lx_abs(tid, CWD, c.path(0)?)?;
    k.lx_stat_abs(tid, &abs, false)?;
    k.lx_out(tid, c.args[1], &statfs_bytes(&[b"file:", &abs[..]].concat()))?;
    Ok(0)
}

pub(super) fn fstatfs(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let path = k.desc(tid, c.args[0])?.file.try_borrow().map_err(|_| Errno(r::EIO))?.path();
    k.lx_out(tid, c.args[1], &statfs_bytes(&path))?;
    Ok(0)
}

pub(super) fn getdents64(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    k.lx_getdents(tid, c.args[0], c.args[1], c.args[2])
}

pub(super) fn dup(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let desc = k.desc(tid, c.args[0])?;
    Ok(k.lx_install(tid, desc, false, 0)?)
}

pub(super) fn dup2(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let [old, new, ..] = c.args;
    if old == new {
        k.desc(tid, old)?;
        return Ok(new);
    }
    k.lx_dup_to(tid, old, new, false)
}

pub(super) fn dup3(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let [old, new, flags, ..] = c.args;
    if old == new || flags & !abi::O_CLOEXEC != 0 {
        return err(r::EINVAL);
    }
    k.lx_dup_to(tid, old, new, flags & abi::O_CLOEXEC != 0)
}

pub(super) fn fcntl(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    k.lx_fcntl(tid, c.args[0], c.args[1], c.args[2])
}

pub(super) fn pipe(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    k.lx_pipe(tid, c.args[0], 0)
}

pub(super) fn pipe2(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    k.lx_pipe(tid, c.args[0], c.args[1])
}

/// `ioctl`: `FIONBIO` reads its `int` from the kernel's copy; the rest are the terminal's
/// (`tty.rs`).
pub(super) fn ioctl(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let [fd, cmd, ..] = c.args;
    let desc = k.desc(tid, fd)?;
    match cmd {
        abi::FIONBIO => {
            let on = abi::le32(c.input(2).ok_or(Errno(r::EFAULT))?, 0) != 0;
            let f = desc.flags.get() & !r::O_NONBLOCK;
            desc.flags.set(if on { f | r::O_NONBLOCK } else { f });
            Ok(0)
        }
        abi::FIOCLEX | abi::FIONCLEX => {
            let files = k.proc_of(tid)?.files.clone();
            files.borrow_mut().get_mut(fd)?.cloexec = cmd == abi::FIOCLEX;
            Ok(0)
        }
        _ => k.tty_ioctl(tid, &desc, c),
    }
}

pub(super) fn access(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    k.lx_access(tid, CWD, c.path(0)?, c.args[1], 0)
}

pub(super) fn faccessat(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    k.lx_access(tid, c.args[0], c.path(1)?, c.args[2], 0)
}

pub(super) fn faccessat2(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    k.lx_access(tid, c.args[0], c.path(1)?, c.args[2], c.args[3])
}

/// `getcwd`: NUL-terminated; in a jail, relative to the root.
pub(super) fn getcwd(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let [addr, size, ..] = c.args;
    let mut cwd = match k.jail_view(tid) {
        Some(jail) => k.jailed_cwd(tid, &jail)?,
        None => k.proc_of(tid)?.fs.borrow().cwd_display(),
    };
    cwd.push(0);
    if size < cwd.len() {
        return err(r::ERANGE);
    }
    k.lx_out(tid, addr, &cwd)?;
    Ok(cwd.len())
}

pub(super) fn chdir(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let abs = k.lx_abs(tid, CWD, c.path(0)?)?;
    k.lx_chdir_abs(tid, abs)
}

pub(super) fn fchdir(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let abs = k.lx_fd_dir(tid, c.args[0])?;
    k.lx_chdir_abs(tid, abs)
}

fn mkdir_at(k: &mut Kernel, tid: Pid, dirfd: usize, path: &[u8], mode: usize) -> SysResult {
    let abs = k.lx_abs(tid, dirfd, path)?;
    let umask = k.proc_of(tid)?.fs.borrow().umask as usize;
    let flags = r::O_CREAT | r::O_DIRECTORY | r::O_EXCL | (mode & 0o7777 & !umask);
    let file = k.open_path(tid, &file_path(&abs), flags)?;
    drop(OpenFile::new(file, r::O_RDONLY));
    k.lx_notify(&abs, IN_CREATE | IN_ISDIR);
    Ok(0)
}

pub(super) fn mkdir(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    mkdir_at(k, tid, CWD, c.path(0)?, c.args[1])
}

pub(super) fn mkdirat(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    mkdir_at(k, tid, c.args[0], c.path(1)?, c.args[2])
}

pub(super) fn unlink(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let abs = k.lx_abs(tid, CWD, c.path(0)?)?;
    k.lx_remove(tid, &abs, false)
}

pub(super) fn rmdir(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let abs = k.lx_abs(tid, CWD, c.path(0)?)?;
    k.lx_remove(tid, &abs, true)
}

pub(super) fn unlinkat(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let abs = k.lx_abs(tid, c.args[0], c.path(1)?)?;
    k.lx_remove(tid, &abs, c.args[2] & abi::AT_REMOVEDIR != 0)
}

/// `rename*`: `old` (argument `o`, relative to `od`) to `new` (`n`, relative to `nd`);
/// `flags` are `renameat2`'s.
fn rename_at(
    k: &mut Kernel,
    tid: Pid,
    c: &Call,
    (od, o): (usize, usize),
    (nd, n): (usize, usize),
    flags: usize,
) -> SysResult {
    let (old, new) = (c.path(o)?, c.path(n)?);
    // "." and ".." as the last component are busy (checked before normalising).
    for p in [old, new] {
        let last = p.rsplit(|&b| b == b'/').find(|c| !c.is_empty()).unwrap_or(b".");
        if last == b"." || last == b".." {
            return err(r::EBUSY);
        }
    }
    let old = k.lx_abs(tid, od, old)?;
    let new = k.lx_abs(tid, nd, new)?;
    // RENAME_NOREPLACE and RENAME_EXCHANGE are honoured (not together); RENAME_WHITEOUT is not.
    if flags & !(RENAME_NOREPLACE | RENAME_EXCHANGE) != 0 || flags == RENAME_NOREPLACE | RENAME_EXCHANGE {
        return err(r::EINVAL);
    }
    if flags & RENAME_NOREPLACE != 0 && k.lx_stat_abs(tid, &new, true).is_ok() {
        return err(r::EEXIST);
    }
    if flags & RENAME_EXCHANGE != 0 {
        return exchange(k, tid, &old, &new);
    }
    k.lx_rename(tid, &old, &new)
}

const RENAME_NOREPLACE: usize = 1;
const RENAME_EXCHANGE: usize = 2;

/// `RENAME_EXCHANGE`: `old` and `new` (both must exist) swap places, by three renames
/// through a free name beside `old`. A call runs to its end before any other guest code,
/// so no program sees the middle; if a step fails, the earlier ones are undone.
fn exchange(k: &mut Kernel, tid: Pid, old: &[u8], new: &[u8]) -> SysResult {
    k.lx_stat_abs(tid, old, true)?;
    k.lx_stat_abs(tid, new, true)?;
    if old == new {
        return Ok(0);
    }
    let mut spare = old.to_vec();
    spare.extend_from_slice(b".warden-exchange");
    while k.lx_stat_abs(tid, &spare, true).is_ok() {
        spare.push(b'~');
    }
    k.lx_rename(tid, old, &spare)?;
    if let Err(e) = k.lx_rename(tid, new, old) {
        let _ = k.lx_rename(tid, &spare, old);
        return Err(e);
    }
    if let Err(e) = k.lx_rename(tid, &spare, new) {
        let _ = k.lx_rename(tid, old, new);
        let _ = k.lx_rename(tid, &spare, old);
        return Err(e);
    }
    Ok(0)
}

pub(super) fn mknod(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let abs = k.lx_abs(tid, CWD, c.path(0)?)?;
    k.lx_mknod(tid, &abs, c.args[1])
}

pub(super) fn mknodat(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let abs = k.lx_abs(tid, c.args[0], c.path(1)?)?;
    k.lx_mknod(tid, &abs, c.args[2])
}

pub(super) fn rename(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    rename_at(k, tid, c, (CWD, 0), (CWD, 1), 0)
}

pub(super) fn renameat(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    rename_at(k, tid, c, (c.args[0], 1), (c.args[2], 3), 0)
}

pub(super) fn renameat2(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    rename_at(k, tid, c, (c.args[0], 1), (c.args[2], 3), c.args[4])
}

fn symlink_at(k: &mut Kernel, tid: Pid, target: &[u8], dirfd: usize, link: &[u8]) -> SysResult {
    // As Linux: an empty target is refused before the new name is looked at.
    if target.is_empty() {
        return err(r::ENOENT);
    }
    let abs = k.lx_abs(tid, dirfd, link)?;
    if k.lx_stat_abs(tid, &abs, true).is_ok() {
        return err(r::EEXIST);
    }
    let flags = r::O_CREAT | r::O_EXCL | r::O_SYMLINK | r::O_WRONLY | 0o777;
    k.lx_write_new(tid, &file_path(&abs), flags, target)?;
    k.lx_notify(&abs, IN_CREATE);
    Ok(0)
}

pub(super) fn symlink(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    symlink_at(k, tid, c.path(0)?, CWD, c.path(1)?)
}

pub(super) fn symlinkat(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    symlink_at(k, tid, c.path(0)?, c.args[1], c.path(2)?)
}

fn link_at(
    k: &mut Kernel,
    tid: Pid,
    c: &Call,
    (od, o): (usize, usize),
    (nd, n): (usize, usize),
    flags: usize,
) -> SysResult {
    if flags & !(abi::AT_SYMLINK_FOLLOW | abi::AT_EMPTY_PATH) != 0 {
        return err(r::EINVAL);
    }
    let old = k.lx_abs(tid, od, c.path(o)?)?;
    let new = k.lx_abs(tid, nd, c.path(n)?)?;
    k.lx_link(tid, &old, &new, flags & abi::AT_SYMLINK_FOLLOW != 0)
}

pub(super) fn link(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    link_at(k, tid, c, (CWD, 0), (CWD, 1), 0)
}

pub(super) fn linkat(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    link_at(k, tid, c, (c.args[0], 1), (c.args[2], 3), c.args[4])
}

pub(super) fn readlink(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let abs = k.lx_abs(tid, CWD, c.path(0)?)?;
    k.lx_readlink(tid, &abs, c.args[1], c.args[2])
}

pub(super) fn readlinkat(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let abs = k.lx_abs(tid, c.args[0], c.path(1)?)?;
    k.lx_readlink(tid, &abs, c.args[2], c.args[3])
}

pub(super) fn truncate(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let abs = k.lx_abs(tid, CWD, c.path(0)?)?;
    let file = k.open_path(tid, &file_path(&abs), r::O_WRONLY)?;
    let desc = OpenFile::new(file, r::O_WRONLY);
    desc.file.try_borrow_mut().map_err(|_| Errno(r::EIO))?.truncate(c.args[1] as u64)?;
    k.lx_notify(&abs, IN_MODIFY);
    Ok(0)
}

pub(super) fn ftruncate(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let desc = k.desc(tid, c.args[0])?;
    if desc.flags.get() & r::O_ACCMODE == r::O_RDONLY {
        return err(r::EINVAL);
    }
    k.lx_shared_file_io(&desc, false);
    desc.file.try_borrow_mut().map_err(|_| Errno(r::EIO))?.truncate(c.args[1] as u64)?;
    k.lx_shared_file_io(&desc, true);
    k.lx_notify_modified(&desc);
    Ok(0)
}

pub(super) fn fsync(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let desc = k.desc(tid, c.args[0])?;
    desc.file.try_borrow_mut().map_err(|_| Errno(r::EIO))?.sync()?;
    Ok(0)
}

pub(super) fn sync(_: &mut Kernel, _: Pid, _: &Call) -> SysResult {
    Ok(0)
}

pub(super) fn umask(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let fs = k.proc_of(tid)?.fs.clone();
    let mut fs = fs.borrow_mut();
    let old = fs.umask;
    fs.umask = (c.args[0] & 0o777) as u32;
    Ok(old as usize)
}

pub(super) fn chmod(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let abs = k.lx_abs(tid, CWD, c.path(0)?)?;
    k.lx_set_attr(tid, &abs, true, Some(c.args[1] as u16), None)
}

pub(super) fn fchmodat(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let abs = k.lx_abs(tid, c.args[0], c.path(1)?)?;
    k.lx_set_attr(tid, &abs, true, Some(c.args[2] as u16), None)
}

pub(super) fn fchmod(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let abs = k.lx_fd_path(tid, c.args[0])?;
    k.lx_set_attr(tid, &abs, false, Some(c.args[1] as u16), None)
}

/// `chown`, `utime`, `utimes` (no effect, but the path must exist).
pub(super) fn chown(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let abs = k.lx_abs(tid, CWD, c.path(0)?)?;
    k.lx_stat_abs(tid, &abs, false)?;
    Ok(0)
}

pub(super) fn lchown(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let abs = k.lx_abs(tid, CWD, c.path(0)?)?;
    k.lx_stat_abs(tid, &abs, true)?;
    Ok(0)
}

pub(super) fn fchownat(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    k.lx_statat(tid, c.args[0], c.path(1)?, c.args[4])?;
    Ok(0)
}

pub(super) fn utimensat(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let [dirfd, _, _, flags, ..] = c.args;
    let times = c.input(2).map(|b| [abi::le64(b, 0), abi::le64(b, 8), abi::le64(b, 16), abi::le64(b, 24)]);
    let mtime = match times {
        None => Some(k.clock.realtime_ns() / 1_000_000_000),
        Some([_, _, _, UTIME_OMIT]) => None,
        Some([_, _, _, UTIME_NOW]) => Some(k.clock.realtime_ns() / 1_000_000_000),
        Some([_, ans, s, ns]) => {
            let ok = |n: u64| n < 1_000_000_000 || n == UTIME_NOW || n == UTIME_OMIT;
            if !ok(ans) || !ok(ns) || (s as i64) < 0 {
                return err(r::EINVAL);
            }
            Some(s)
        }
    };
    let (abs, follow) = match c.path(1).ok() {
        Some(p) if !(p.is_empty() && flags & abi::AT_EMPTY_PATH != 0) => {
            (k.lx_abs(tid, dirfd, p)?, flags & abi::AT_SYMLINK_NOFOLLOW == 0)
        }
        _ => (k.lx_fd_path(tid, dirfd)?, false),
    };
    if mtime.is_none() {
        k.lx_stat_abs(tid, &abs, !follow)?;
        return Ok(0);
    }
    k.lx_set_attr(tid, &abs, follow, None, mtime)
}

/// `fchown`, `flock`, `fadvise64`: no effect on an open descriptor.
pub(super) fn fd_noop(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    k.desc(tid, c.args[0])?;
    Ok(0)
}

pub(super) fn fallocate(_: &mut Kernel, _: Pid, _: &Call) -> SysResult {
    err(95) // EOPNOTSUPP
}

/// The `struct pollfd` entries of `poll`/`ppoll` (the kernel's copy): (fd, events).
fn poll_fds(c: &Call) -> Vec<(i32, u16)> {
    c.input(0)
        .unwrap_or(&[])
        .chunks_exact(8)
        .map(|e| (abi::le32(e, 0) as i32, u16::from_le_bytes([e[4], e[5]])))
        .collect()
}

/// A `struct timespec` argument as nanoseconds (`None`: no timeout; EINVAL if malformed).
pub(super) fn timeout(c: &Call, arg: usize) -> Result<Option<u64>, Errno> {
    c.input(arg).map(|b| abi::timespec_ns(b).ok_or(Errno(r::EINVAL))).transpose()
}

pub(super) fn poll(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let ms = c.args[2] as i32;
    let timeout = (ms >= 0).then(|| ms as u64 * 1_000_000);
    k.lx_poll(tid, c.args[0], &poll_fds(c), timeout, None)
}

pub(super) fn ppoll(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let mask = c.input(3).map(|m| abi::le64(m, 0));
    k.lx_poll(tid, c.args[0], &poll_fds(c), timeout(c, 2)?, mask)
}

fn select_sets(c: &Call) -> [Option<&[u8]>; 3] {
    [c.input(1), c.input(2), c.input(3)]
}

fn select_nfds(c: &Call) -> usize {
    (c.args[0] as i32).clamp(0, 1024) as usize
}

pub(super) fn select(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let timeout = c.input(4).map(|b| abi::timeval_ns(b).ok_or(Errno(r::EINVAL))).transpose()?;
    k.lx_select(tid, &c.args, select_nfds(c), select_sets(c), timeout, None)
}

pub(super) fn pselect6(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    // Argument 5 is `{ const sigset_t *set; size_t size; }`: the set is read here.
    let mask = match c.input(5) {
        Some(b) if abi::le64(b, 0) != 0 => {
            if abi::le64(b, 8) != 8 {
                return err(r::EINVAL);
            }
            let mm = k.mm_of(tid)?;
            let set = crate::usercopy::copy_array::<8>(&mm.borrow().space.mem, abi::le64(b, 0) as usize)?;
            Some(u64::from_le_bytes(set))
        }
        _ => None,
    };
    k.lx_select(tid, &c.args, select_nfds(c), select_sets(c), timeout(c, 4)?, mask)
}

/// The file an xattr call names must exist (its path, or its descriptor for the f* calls).
fn xattr_target(k: &mut Kernel, tid: Pid, c: &Call) -> Result<(), Errno> {
    match c.path(0) {
        Ok(path) => {
            let abs = k.lx_abs(tid, CWD, path)?;
            k.lx_stat_abs(tid, &abs, true).map(drop)
        }
        Err(_) => k.desc(tid, c.args[0]).map(drop),
    }
}

/// getxattr, lgetxattr, fgetxattr: no file has extended attributes (as on a file system
/// without any: ENODATA, which `ls -l` takes for "no ACL").
pub(super) fn no_xattr(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    xattr_target(k, tid, c)?;
    err(r::ENODATA)
}

/// listxattr, llistxattr, flistxattr: an empty list.
pub(super) fn no_xattr_list(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    xattr_target(k, tid, c)?;
    Ok(0)
}
