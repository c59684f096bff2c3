//! Every host file-system access the `file:` scheme makes, through directory handles.
//!
//! # The invariant
//! No path string built from guest input ever reaches the host kernel. A host file system (the
//! `--root DIR` lower layer, or an `--overlay DIR` layer) is a [`HostFs`]: a directory handle
//! (`O_PATH | O_DIRECTORY`) opened once. Every other host call is an `*at` call on a handle
//! of a directory inside it, naming **one** validated component (no `/`, not `.` or `..`, no
//! NUL) and never following it if it is a symbolic link (`AT_SYMLINK_NOFOLLOW`, `O_NOFOLLOW`,
//! `readlinkat`, `unlinkat`, `mkdirat`, `linkat`, `renameat`, `symlinkat`). The host kernel
//! therefore holds the confinement: a symlink anywhere in the host tree, whoever planted it
//! and whenever, is read as data and resolved by the tree inside the guest namespace
//! (`tree.rs`), never followed by the host.
//!
//! A cached directory node ([`HostDir`]) does not hold a host path that a later change could
//! redirect. It is known by its identity (`st_dev`, `st_ino`) and the components that led
//! to it; its handle comes from a small cache keyed by that identity, and when the handle
//! was evicted it is re-opened from the root handle with `openat2(RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)` (or, where the host kernel lacks
//! `openat2`, one `openat(O_NOFOLLOW)` per component) and must be the very same directory,
//! else the lookup is `ENOENT`. So a directory the guest once saw can be removed, replaced
//! or turned into a symlink on the host (by the overlay writing the guest's changes, or by
//! another host process) and the guest still reaches nothing but that directory, or
//! nothing. A regular file is opened the same way (`openat(dir, name, O_NOFOLLOW)`) and must
//! be the file (`st_dev`, `st_ino`) the lookup saw. Devices, FIFOs and sockets are never
//! opened (a FIFO would block the emulator).
//!
//! The lower layer may hide one directory: the overlay, when it lies inside the root (see
//! [`HostFs::hide`]); its name is left out of listings and a lookup of it (by identity, so
//! through any path or bind mount) finds nothing.
//!
//! Why not the `cap-std` crate: its `Dir` confines paths of many components and follows
//! symbolic links inside the sandbox. Here every call names one component and no symbolic
//! link may be followed at all (the guest namespace resolves them), so the confinement is
//! the `*at` call itself; `cap-std` would add a dependency tree for the part not used.
//!
//! Nothing here writes to the lower layer; the overlay's writes (`overlay.rs`) use the
//! same wrappers on its own [`HostFs`].

use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;
use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::rc::Rc;

use warden_abi::{Errno, EACCES, EINVAL, EIO, ENOENT, MAX_ERRNO};

use super::tree::{special_type, Node};

/// The guest errno for a host I/O error (Linux numbers pass through; others become EIO).
pub(crate) fn errno_of(e: &io::Error) -> Errno {
    match e.raw_os_error() {
        Some(n) if cfg!(target_os = "linux") && n > 0 && n <= MAX_ERRNO => Errno(n),
        _ => match e.kind() {
            io::ErrorKind::NotFound => Errno(ENOENT),
            io::ErrorKind::PermissionDenied => Errno(EACCES),
            _ => Errno(EIO),
        },
    }
}

pub(crate) fn last_errno() -> Errno {
    errno_of(&io::Error::last_os_error())
}

/// `name` as a C string, if it is one valid component (no `/`, NUL, `.` or `..`).
fn component(name: &[u8]) -> Result<CString, Errno> {
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') {
        return Err(Errno(EINVAL));
    }
    CString::new(name).map_err(|_| Errno(EINVAL))
}

/// The identity of a host object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Id {
    pub dev: u64,
    pub ino: u64,
}

impl Id {
    fn of(st: &libc::stat) -> Id {
        Id { dev: st.st_dev, ino: st.st_ino }
    }
}

/// File type bits of a `stat`.
pub(crate) fn file_type(st: &libc::stat) -> libc::mode_t {
    st.st_mode & libc::S_IFMT
}

// --- the system calls, each on a directory handle and one component --------------------------

/// Flags of a directory handle: usable as `dirfd` and for `fstat`, not for reading.
#[cfg(target_os = "linux")]
const HANDLE_FLAGS: i32 = libc::O_PATH | libc::O_DIRECTORY;
#[cfg(not(target_os = "linux"))]
const HANDLE_FLAGS: i32 = libc::O_RDONLY | libc::O_DIRECTORY;

/// `openat(dir, name, flags | O_NOFOLLOW | O_CLOEXEC, mode)`.
pub(crate) fn openat(dir: &OwnedFd, name: &[u8], flags: i32, mode: libc::mode_t) -> Result<OwnedFd, Errno> {
    let c = if name == b"." { CString::from(c".") } else { component(name)? };
    // SAFETY: `c` is a valid NUL-terminated string, `dir` an open descriptor; the returned
    // descriptor is owned by the `OwnedFd` alone.
    let fd = unsafe {
        libc::openat(dir.as_raw_fd(), c.as_ptr(), flags | libc::O_NOFOLLOW | libc::O_CLOEXEC, mode as libc::c_uint)
    };
    if fd < 0 {
        return Err(last_errno());
    }
    // SAFETY: `fd` was just opened and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A handle of the directory `name` in `dir` (`.`: `dir` itself); a symlink is `ELOOP`.
pub(crate) fn open_dir_handle(dir: &OwnedFd, name: &[u8]) -> Result<OwnedFd, Errno> {
    openat(dir, name, HANDLE_FLAGS, 0)
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`; `None` if there is no such entry.
pub(crate) fn lstatat(dir: &OwnedFd, name: &[u8]) -> Result<Option<libc::stat>, Errno> {
    let c = component(name)?;
    // SAFETY: an all-zero `stat` is a valid value to be overwritten.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid descriptor, NUL-terminated name and out-pointer.
    if unsafe { libc::fstatat(dir.as_raw_fd(), c.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) } != 0 {
        return match last_errno() {
            Errno(libc::ENOENT) => Ok(None),
            e => Err(e),
        };
    }
    Ok(Some(st))
}

/// `fstat` of a descriptor.
pub(crate) fn fstat(fd: &impl AsRawFd) -> Result<libc::stat, Errno> {
    // SAFETY: as in `lstatat`.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid descriptor and out-pointer.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(last_errno());
    }
    Ok(st)
}

/// The target of the symbolic link `name` in `dir`.
pub(crate) fn readlinkat(dir: &OwnedFd, name: &[u8]) -> Result<Vec<u8>, Errno> {
    let c = component(name)?;
    let mut buf = [0u8; super::path::PATH_MAX + 1];
    // SAFETY: valid descriptor, NUL-terminated name, and a buffer of the length passed.
    let n = unsafe { libc::readlinkat(dir.as_raw_fd(), c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    let n = usize::try_from(n).map_err(|_| last_errno())?;
    if n > super::path::PATH_MAX {
        return Err(Errno(warden_abi::ENAMETOOLONG));
    }
    // Only the target is kept (a cached node holds it for the run).
    Ok(buf[..n].to_vec())
}

pub(crate) fn unlinkat(dir: &OwnedFd, name: &[u8], flags: i32) -> Result<(), Errno> {
    let c = component(name)?;
    // SAFETY: valid descriptor and NUL-terminated name.
    if unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), flags) } != 0 {
        return Err(last_errno());
    }
    Ok(())
}

pub(crate) fn mkdirat(dir: &OwnedFd, name: &[u8], mode: libc::mode_t) -> Result<(), Errno> {
    let c = component(name)?;
    // SAFETY: valid descriptor and NUL-terminated name.
    if unsafe { libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), mode) } != 0 {
        return Err(last_errno());
    }
    Ok(())
}

/// `renameat(dir, from, dir, to)` (neither name is followed).
pub(crate) fn renameat(dir: &OwnedFd, from: &[u8], to: &[u8]) -> Result<(), Errno> {
    let (f, t) = (component(from)?, component(to)?);
    // SAFETY: valid descriptor and NUL-terminated names.
    if unsafe { libc::renameat(dir.as_raw_fd(), f.as_ptr(), dir.as_raw_fd(), t.as_ptr()) } != 0 {
        return Err(last_errno());
    }
    Ok(())
}

/// `linkat(from_dir, from, to_dir, to, 0)`: flags 0 never follows a symlink.
pub(crate) fn linkat(from_dir: &OwnedFd, from: &[u8], to_dir: &OwnedFd, to: &[u8]) -> Result<(), Errno> {
    let (f, t) = (component(from)?, component(to)?);
    // SAFETY: valid descriptors and NUL-terminated names.
    if unsafe { libc::linkat(from_dir.as_raw_fd(), f.as_ptr(), to_dir.as_raw_fd(), t.as_ptr(), 0) } != 0 {
        return Err(last_errno());
    }
    Ok(())
}

/// Makes `name` in `dir` a symbolic link to `target` (stored as data, never resolved here).
pub(crate) fn symlinkat(target: &[u8], dir: &OwnedFd, name: &[u8]) -> Result<(), Errno> {
    let t = CString::new(target).map_err(|_| Errno(EINVAL))?;
    let n = component(name)?;
    // SAFETY: valid descriptor and NUL-terminated strings.
    if unsafe { libc::symlinkat(t.as_ptr(), dir.as_raw_fd(), n.as_ptr()) } != 0 {
        return Err(last_errno());
    }
    Ok(())
}

/// The names in the directory whose handle is `dir` (`.` and `..` left out).
pub(crate) fn list_fd(dir: &OwnedFd) -> Result<Vec<Vec<u8>>, Errno> {
    let own = openat(dir, b".", libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    let mut names = Vec::new();
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        // Raw `getdents64`: `fdopendir` would add an `fstat` and two `fcntl`s per listing.
        // SAFETY: valid descriptor and a writable buffer of the length passed.
        let n = unsafe { libc::syscall(libc::SYS_getdents64, own.as_raw_fd(), buf.as_mut_ptr(), buf.len()) };
        let n = usize::try_from(n).map_err(|_| last_errno())?;
        if n == 0 {
            return Ok(names);
        }
        // Records: d_ino (8), d_off (8), d_reclen (2), d_type (1), d_name (NUL-terminated).
        let mut recs = buf.get(..n).ok_or(Errno(EINVAL))?;
        while recs.len() >= 19 {
            let reclen = usize::from(u16::from_ne_bytes([recs[16], recs[17]]));
            let rec = recs.get(..reclen).filter(|_| reclen >= 19).ok_or(Errno(EINVAL))?;
            let name = &rec[19..];
            let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
            if name != b"." && name != b".." {
                names.push(name.to_vec());
            }
            recs = &recs[reclen..];
        }
    }
}

/// A handle of the directory above `dir` (the one place `..` is opened: the overlay's own
/// location is checked with it, never a guest path).
fn parent_handle(dir: &OwnedFd) -> Result<OwnedFd, Errno> {
    // SAFETY: valid descriptor and a static NUL-terminated name.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), c"..".as_ptr(), HANDLE_FLAGS | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(last_errno());
    }
    // SAFETY: just opened, owned here alone.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Re-opens the directory `rel` (components joined by `/`, none `.` or `..`) below `root`
/// without following any symbolic link: `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`
/// where the host kernel has it, else one `openat(O_NOFOLLOW)` per component.
fn reopen_beneath(root: &OwnedFd, rel: &[u8]) -> Result<OwnedFd, Errno> {
    if rel.is_empty() {
        return open_dir_handle(root, b".");
    }
    #[cfg(target_os = "linux")]
    {
        use std::sync::atomic::{AtomicBool, Ordering};
        static NO_OPENAT2: AtomicBool = AtomicBool::new(false);
        if !NO_OPENAT2.load(Ordering::Relaxed) {
            let path = CString::new(rel).map_err(|_| Errno(EINVAL))?;
            // SAFETY: an all-zero `open_how` is valid (no flags, no mode, no resolve bits).
            let mut how: libc::open_how = unsafe { std::mem::zeroed() };
            how.flags = (HANDLE_FLAGS | libc::O_NOFOLLOW | libc::O_CLOEXEC) as u64;
            how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;
            // SAFETY: valid descriptor, NUL-terminated path, and `how` of the size passed.
            let fd = unsafe {
                libc::syscall(
                    libc::SYS_openat2,
                    root.as_raw_fd(),
                    path.as_ptr(),
                    &how as *const libc::open_how,
                    std::mem::size_of::<libc::open_how>(),
                )
            };
            if fd >= 0 {
                // SAFETY: the kernel just returned this descriptor and nothing else owns it.
                return Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) });
            }
            match last_errno() {
                // No openat2 (old kernel, or a seccomp filter): walk instead, from now on.
                Errno(libc::ENOSYS) | Errno(libc::EPERM) => NO_OPENAT2.store(true, Ordering::Relaxed),
                // A concurrent rename the kernel could not vouch for: the walk is as safe.
                Errno(libc::EAGAIN) => {}
                e => return Err(e),
            }
        }
    }
    let mut cur = open_dir_handle(root, b".")?;
    for name in rel.split(|&b| b == b'/') {
        cur = open_dir_handle(&cur, name)?;
    }
    Ok(cur)
}

// --- host file systems, directories and files ---------------------------------------------------

/// Directory handles kept open at once per host file system (the rest are re-opened).
const HANDLE_CACHE: usize = 256;

#[derive(Debug, Default)]
struct HandleCache {
    handles: HashMap<Id, (Rc<OwnedFd>, u64)>,
    tick: u64,
}

/// The lower layer's hidden directory (the overlay) and where it shows.
#[derive(Debug)]
struct Hidden {
    id: Id,
    parent: Id,
    name: Vec<u8>,
}

/// A host directory tree the guest sees part of: its root handle and a cache of handles.
#[derive(Debug)]
pub(crate) struct HostFs {
    root: OwnedFd,
    root_id: Id,
    /// Handles of directories below the root, by identity, each with the tick of its last use
    /// (the least recently used one is closed when the cache is full).
    cache: RefCell<HandleCache>,
    hidden: OnceCell<Hidden>,
}

impl HostFs {
    /// Opens the directory at `path` (a host path the user gave, followed as given).
    pub(crate) fn open(path: &Path) -> io::Result<(Rc<HostFs>, libc::stat)> {
        let c = CString::new(path.as_os_str().as_bytes())?;
        // SAFETY: valid NUL-terminated path; the descriptor is owned by the `OwnedFd` alone.
        let fd = unsafe { libc::open(c.as_ptr(), HANDLE_FLAGS | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just opened and nothing else owns it.
        let root = unsafe { OwnedFd::from_raw_fd(fd) };
        let st = fstat(&root).map_err(|e| io::Error::from_raw_os_error(e.0))?;
        let fs = HostFs { root, root_id: Id::of(&st), cache: RefCell::default(), hidden: OnceCell::new() };
        Ok((Rc::new(fs), st))
    }

    /// The root directory.
    pub(crate) fn root_dir(self: &Rc<HostFs>) -> HostDir {
        HostDir { fs: Rc::clone(self), rel: Rc::from(&b""[..]), id: self.root_id }
    }

    pub(crate) fn root_handle(&self) -> &OwnedFd {
        &self.root
    }

    /// Hides the directory `dir` (a handle of it, reached as `name` in its parent) from this
    /// file system's lookups and listings. Fails if it contains this file system's root (the
    /// guest would see its own writes as the lower layer) and does nothing if it is not
    /// inside it.
    pub(crate) fn hide(&self, dir: &OwnedFd, name: &[u8]) -> Result<(), HideError> {
        let id = Id::of(&fstat(dir).map_err(HideError::Host)?);
        // Walk up from our root: meeting `dir` means the root is inside it.
        let mut cur = open_dir_handle(&self.root, b".").map_err(HideError::Host)?;
        let mut cur_id = self.root_id;
        loop {
            if cur_id == id {
                return Err(HideError::ContainsRoot);
            }
            let up = parent_handle(&cur).map_err(HideError::Host)?;
            let up_id = Id::of(&fstat(&up).map_err(HideError::Host)?);
            if up_id == cur_id {
                break; // the host's `/`
            }
            (cur, cur_id) = (up, up_id);
        }
        let parent = parent_handle(dir).map_err(HideError::Host)?;
        let parent = Id::of(&fstat(&parent).map_err(HideError::Host)?);
        let _ = self.hidden.set(Hidden { id, parent, name: name.to_vec() });
        Ok(())
    }

    fn is_hidden(&self, id: Id) -> bool {
        self.hidden.get().is_some_and(|h| h.id == id)
    }

    /// The handle of `dir`: cached, or re-opened below the root and checked to be it.
    fn handle(&self, dir: &HostDir) -> Result<Rc<OwnedFd>, Errno> {
        {
            let cache = &mut *self.cache.borrow_mut();
            cache.tick += 1;
            if let Some((fd, used)) = cache.handles.get_mut(&dir.id) {
                *used = cache.tick;
                return Ok(Rc::clone(fd));
            }
        }
        let fd = match reopen_beneath(&self.root, &dir.rel) {
            Ok(fd) => fd,
            // A component became a symlink or a file: the directory is not there any more.
            Err(Errno(libc::ELOOP)) | Err(Errno(libc::ENOTDIR)) | Err(Errno(libc::EXDEV)) => return Err(Errno(ENOENT)),
            Err(e) => return Err(e),
        };
        if Id::of(&fstat(&fd)?) != dir.id {
            return Err(Errno(ENOENT)); // replaced by another directory
        }
        let fd = Rc::new(fd);
        let cache = &mut *self.cache.borrow_mut();
        if cache.handles.len() >= HANDLE_CACHE {
            // Misses are rare next to hits, so a scan for the oldest is cheap enough.
            if let Some(old) = cache.handles.iter().min_by_key(|(_, (_, used))| *used).map(|(id, _)| *id) {
                cache.handles.remove(&old);
            }
        }
        cache.handles.insert(dir.id, (Rc::clone(&fd), cache.tick));
        Ok(fd)
    }
}

/// Why the overlay cannot be hidden from the lower layer.
#[derive(Debug)]
pub(crate) enum HideError {
    ContainsRoot,
    Host(Errno),
}

/// A directory of a [`HostFs`], known by identity and by the components that lead to it.
#[derive(Clone, Debug)]
pub(crate) struct HostDir {
    fs: Rc<HostFs>,
    /// Components from the root, joined by `/` (empty for the root).
    rel: Rc<[u8]>,
    id: Id,
}

/// A host regular file, identified by the lookup that found it.
#[derive(Debug)]
pub(crate) struct HostFile {
    dir: HostDir,
    name: Box<[u8]>,
    pub len: u64,
    id: Id,
}

/// What a host directory entry is.
pub(crate) enum HostEntry {
    Dir(HostDir),
    File(HostFile),
    Symlink(Vec<u8>),
    /// A device, FIFO or socket: its `MODE_*` type.
    Special(u16),
}

impl HostDir {
    /// The entry `name` and its status, or `None` if there is none (or it is hidden).
    pub(crate) fn entry(&self, name: &[u8]) -> Result<Option<(HostEntry, libc::stat)>, Errno> {
        let fd = self.fs.handle(self)?;
        let Some(st) = lstatat(&fd, name)? else {
            return Ok(None);
        };
        let entry = match file_type(&st) {
            libc::S_IFDIR => {
                let id = Id::of(&st);
                if self.fs.is_hidden(id) {
                    return Ok(None);
                }
                let rel = if self.rel.is_empty() { name.to_vec() } else { [&self.rel[..], b"/", name].concat() };
                HostEntry::Dir(HostDir { fs: Rc::clone(&self.fs), rel: Rc::from(rel), id })
            }
            libc::S_IFREG => HostEntry::File(HostFile {
                dir: self.clone(),
                name: name.into(),
                len: u64::try_from(st.st_size).unwrap_or(0),
                id: Id::of(&st),
            }),
            libc::S_IFLNK => HostEntry::Symlink(readlinkat(&fd, name)?),
            ty => HostEntry::Special(special_type(ty == libc::S_IFIFO)),
        };
        Ok(Some((entry, st)))
    }

    /// The names in the directory (names containing `'\n'` are left out: a listing could
    /// not represent them; so is a hidden directory).
    pub(crate) fn list(&self) -> Result<Vec<Vec<u8>>, Errno> {
        let fd = self.fs.handle(self)?;
        let hidden = self.fs.hidden.get().filter(|h| h.parent == self.id);
        let mut names = list_fd(&fd)?;
        names.retain(|n| !n.contains(&b'\n') && hidden.is_none_or(|h| h.name != *n));
        Ok(names)
    }

    /// This directory's handle (for the overlay's loader).
    pub(crate) fn handle(&self) -> Result<Rc<OwnedFd>, Errno> {
        self.fs.handle(self)
    }

    /// Closes every cached directory handle of this file system.
    pub(crate) fn forget_handles(&self) {
        *self.fs.cache.borrow_mut() = Default::default();
    }

    /// See [`HostFs::hide`].
    pub(crate) fn hide(&self, dir: &OwnedFd, name: &[u8]) -> Result<(), HideError> {
        self.fs.hide(dir, name)
    }
}

impl HostFile {
    /// Opens the file for reading, checking it is still the regular file the lookup saw.
    pub(crate) fn open(&self) -> Result<fs::File, Errno> {
        let dir = self.dir.fs.handle(&self.dir)?;
        let fd = match openat(&dir, &self.name, libc::O_RDONLY | libc::O_NONBLOCK, 0) {
            Ok(fd) => fd,
            Err(Errno(libc::ELOOP)) => return Err(Errno(ENOENT)), // now a symlink
            Err(e) => return Err(e),
        };
        let st = fstat(&fd)?;
        if file_type(&st) != libc::S_IFREG || Id::of(&st) != self.id {
            return Err(Errno(ENOENT)); // replaced behind our back
        }
        Ok(fs::File::from(fd))
    }
}

/// A node with the host status's permissions, owner and mtime.
pub(crate) fn host_node(kind: super::tree::Kind, st: &libc::stat) -> Node {
    let mtime = u64::try_from(st.st_mtime).unwrap_or(0);
    let mut node = Node::new(kind, (st.st_mode & 0o7777) as u16, st.st_uid, st.st_gid, mtime);
    if node.is_dir() {
        node.host_nlink = u32::try_from(st.st_nlink).unwrap_or(u32::MAX);
    }
    node
}

/// Reads at `pos` (retrying on interruption); 0 at end of file.
pub(crate) fn read_at(file: &fs::File, pos: u64, buf: &mut [u8]) -> Result<usize, Errno> {
    loop {
        match file.read_at(buf, pos) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(errno_of(&e)),
        }
    }
}
