//! A persistent writable layer: `--overlay DIR` keeps the guest's writes in a host directory.
//!
//! # Design
//! The in-memory tree stays the one source of truth while a run lasts; the overlay is a
//! *write-through* mirror of everything the guest changes, so nothing is buffered in warden:
//! a file the guest wrote is on the host (in the host's page cache, or on disk after the
//! guest's `fsync`) the moment the write returns, and survives the guest crashing or warden
//! being killed. A later run with the same DIR loads it back on top of the lower layer.
//!
//! Layout of DIR (the OCI image-layer conventions):
//! - created or modified files, directories and symlinks at their guest paths;
//! - `.wh.NAME`: a whiteout, NAME was removed from the lower layer;
//! - `.wh..wh..opq` in a directory: the directory was removed and made anew, so none of the
//!   lower layer's entries show through;
//! - `.wh..wh..lnk` in a directory: the symlinks there whose targets a host symlink cannot
//!   hold: empty (a Redox link made with `O_CREAT | O_SYMLINK` and not yet written), with NUL
//!   bytes, or `PATH_MAX` bytes long. Records of NAME, a NUL, the target's length (`u32`,
//!   little-endian) and the target. A recorded NAME hides a lower NAME like a whiteout; a host
//!   NAME wins over its record (a crash while the link changed left both: see
//!   `Overlay::symlink`). One file per directory, so a record makes no host name longer;
//! - `.wh..wh..tmp.NAME`: a copy-up in progress (renamed over NAME when complete; a leftover
//!   from a killed run is deleted at the next load). Guest names starting with `.wh.` are
//!   reserved (`EINVAL`).
//!
//! What is written where: a modified lower file is copied up whole (to a temporary name, then
//! renamed into place, so a crash never leaves a half-copied file); later writes go straight
//! to the host file at the same offsets. A symlink is a host symlink, or a record where a host
//! symlink cannot hold its target: a new link (empty) is a record until its target is written.
//! Removing a name removes its host copy (and record) and records a whiteout. Permission bits are kept except set-uid/set-gid/sticky (never set on the host),
//! and the owner always gets read and write (search for directories) so later runs can
//! update them; owners are the host's.
//!
//! # Never outside DIR
//! Guest paths never reach the host: the tree resolves them (`..`, symlinks) inside the guest
//! namespace, and the overlay gets the canonical list of validated names (no `/`, `.`, `..`,
//! NUL). Every host operation starts from a descriptor of DIR opened once, walks one
//! component at a time with `openat(O_NOFOLLOW | O_DIRECTORY)` and ends with an `*at` call
//! that does not follow a final symlink, so even a symlink planted in DIR by someone else is
//! never followed: the operation fails with an error instead.
//!
//! A host error (disk full, DIR removed) fails the guest's call with the host errno
//! (`EIO` if unknown) and is remembered; [`super::Vfs::overlay_error`] reports the first one.

use std::collections::HashMap;
use std::fs;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use warden_abi::{Errno, EINVAL, EIO, ENOTDIR};

use super::host::{
    self, linkat, list_fd, mkdirat, open_dir_handle, openat, renameat, symlinkat, unlinkat, HostDir, HostEntry, HostFs,
};
use super::tree::{Data, Dir, Entry, Ino, Kind, Node, NodeType, Tree, ROOT};
use super::ImageError;

/// Prefix of whiteouts and every other name the overlay reserves.
pub(crate) const WH_PREFIX: &[u8] = b".wh.";
const OPAQUE: &[u8] = b".wh..wh..opq";
const TMP_PREFIX: &[u8] = b".wh..wh..tmp.";
/// The records of a directory's symlinks whose targets a host symlink cannot hold.
const LINKS: &[u8] = b".wh..wh..lnk";
/// Deepest directory loaded from DIR.
const MAX_LOAD_DEPTH: usize = 256;

/// The overlay attached to a tree.
pub(crate) struct Overlay {
    fs: Rc<HostFs>,
    path: PathBuf,
    /// Files written through in this run: their host file, open for writing.
    files: HashMap<Ino, fs::File>,
    first_error: Option<String>,
}

fn show(names: &[Vec<u8>]) -> String {
    let mut s = String::new();
    for n in names {
        s.push('/');
        s.push_str(&String::from_utf8_lossy(n));
    }
    if s.is_empty() {
        s.push('/');
    }
    s
}

fn file_mode(perm: u16) -> libc::mode_t {
    (libc::mode_t::from(perm) & 0o777) | 0o600
}

fn dir_mode(perm: u16) -> libc::mode_t {
    (libc::mode_t::from(perm) & 0o777) | 0o700
}

/// Whether a host symlink can hold `target` (the host's `symlinkat` takes a C string shorter
/// than `PATH_MAX`, and refuses an empty one).
fn host_symlink_holds(target: &[u8]) -> bool {
    !target.is_empty() && !target.contains(&0) && target.len() < libc::PATH_MAX as usize
}

/// Writes `contents` as the file `name` in `parent` by way of a temporary name, so a crash
/// leaves the old file or the new one whole; returns it open.
fn write_whole(parent: &OwnedFd, name: &[u8], contents: &[u8], mode: libc::mode_t) -> Result<fs::File, Errno> {
    let tmp = [TMP_PREFIX, name].concat();
    let fd = openat(parent, &tmp, libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC, mode)?;
    let mut file = fs::File::from(fd);
    let written = file.write_all(contents).and_then(|()| {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(mode))
    });
    if let Err(e) = written {
        let _ = remove_if_present(parent, &tmp, 0);
        return Err(host::errno_of(&e));
    }
    if let Err(e) = renameat(parent, &tmp, name) {
        let _ = remove_if_present(parent, &tmp, 0);
        return Err(e);
    }
    Ok(file)
}

/// A symlink's name and target, as [`LINKS`] records them.
type LinkRecord = (Vec<u8>, Vec<u8>);

/// The link records in `dir` (see the module note).
fn read_links(dir: &OwnedFd) -> Result<Vec<LinkRecord>, Errno> {
    let mut bytes = Vec::new();
    match openat(dir, LINKS, libc::O_RDONLY, 0) {
        Ok(fd) => {
            fs::File::from(fd).read_to_end(&mut bytes).map_err(|e| host::errno_of(&e))?;
        }
        Err(Errno(libc::ENOENT)) => {}
        Err(e) => return Err(e),
    }
    let mut records = Vec::new();
    let mut rest = &bytes[..];
    while !rest.is_empty() {
        // Anything but whole records is not what warden wrote.
        let bad = Errno(libc::EINVAL);
        let nul = rest.iter().position(|&b| b == 0).ok_or(bad)?;
        let (name, tail) = (&rest[..nul], &rest[nul + 1..]);
        let len = tail.get(..4).ok_or(bad)?;
        let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let target = tail.get(4..4 + len).ok_or(bad)?;
        if len > super::path::PATH_MAX {
            return Err(bad);
        }
        records.push((name.to_vec(), target.to_vec()));
        rest = &tail[4 + len..];
    }
    Ok(records)
}

/// Records the symlink `name` in `dir` with `target`, or (`None`) forgets it.
fn set_link(dir: &OwnedFd, name: &[u8], target: Option<&[u8]>) -> Result<(), Errno> {
    let mut records = read_links(dir)?;
    let before = records.len();
    records.retain(|(n, _)| n != name);
    if target.is_none() && records.len() == before {
        return Ok(());
    }
    if let Some(t) = target {
        records.push((name.to_vec(), t.to_vec()));
    }
    if records.is_empty() {
        return remove_if_present(dir, LINKS, 0).map(|_| ());
    }
    let mut bytes = Vec::new();
    for (n, t) in &records {
        bytes.extend_from_slice(n);
        bytes.push(0);
        bytes.extend_from_slice(&(t.len() as u32).to_le_bytes());
        bytes.extend_from_slice(t);
    }
    write_whole(dir, LINKS, &bytes, 0o600).map(drop)
}

/// Removes `name` in `dir` if present (`ENOENT` is success); true if something was removed.
fn remove_if_present(dir: &OwnedFd, name: &[u8], flags: i32) -> Result<bool, Errno> {
    match unlinkat(dir, name, flags) {
        Ok(()) => Ok(true),
        Err(Errno(libc::ENOENT)) => Ok(false),
        Err(e) => Err(e),
    }
}

impl Overlay {
    /// Opens (creating it if needed) the overlay directory.
    fn open(path: &Path) -> Result<Overlay, ImageError> {
        let io_err = |source| ImageError::Io { path: path.to_path_buf(), source };
        fs::create_dir_all(path).map_err(io_err)?;
        if !fs::metadata(path).map_err(io_err)?.is_dir() {
            return Err(ImageError::NotADirectory { path: path.to_path_buf() });
        }
        let (fs, _) = HostFs::open(path).map_err(io_err)?;
        Ok(Overlay { fs, path: path.to_path_buf(), files: HashMap::new(), first_error: None })
    }

    /// Notes a host failure (the first one is reported) and hands back the guest's errno.
    fn fail(&mut self, what: &str, names: &[Vec<u8>], e: Errno) -> Errno {
        if self.first_error.is_none() {
            self.first_error = Some(format!(
                "overlay {}: {what} {}: {}",
                self.path.display(),
                show(names),
                std::io::Error::from_raw_os_error(e.0)
            ));
        }
        if e.0 > 0 {
            e
        } else {
            Errno(EIO)
        }
    }

    pub(crate) fn error(&self) -> Option<&str> {
        self.first_error.as_deref()
    }

    /// The host directory for the guest directory `dirs`, made (mode 0755) where missing.
    fn walk(&self, dirs: &[Vec<u8>]) -> Result<OwnedFd, Errno> {
        let mut cur = open_dir_handle(self.fs.root_handle(), b".")?;
        for name in dirs {
            if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') {
                return Err(Errno(EINVAL));
            }
            cur = match open_dir_handle(&cur, name) {
                Ok(fd) => fd,
                Err(Errno(libc::ENOENT)) => {
                    match mkdirat(&cur, name, 0o755) {
                        Ok(()) | Err(Errno(libc::EEXIST)) => {}
                        Err(e) => return Err(e),
                    }
                    open_dir_handle(&cur, name)?
                }
                // A symlink or file where a directory should be: never followed.
                Err(Errno(libc::ELOOP)) => return Err(Errno(ENOTDIR)),
                Err(e) => return Err(e),
            };
        }
        Ok(cur)
    }

    fn split(names: &[Vec<u8>]) -> Result<(&[Vec<u8>], &[u8]), Errno> {
        match names.split_last() {
            Some((name, dirs)) => Ok((dirs, name)),
            None => Err(Errno(EINVAL)),
        }
    }

    /// Writes `contents` as the file `names` (temporary name, then rename); returns it open.
    fn replace_file(&self, names: &[Vec<u8>], contents: &[u8], perm: u16) -> Result<fs::File, Errno> {
        let (dirs, name) = Self::split(names)?;
        let parent = self.walk(dirs)?;
        let file = write_whole(&parent, name, contents, file_mode(perm))?;
        let _ = remove_if_present(&parent, &[WH_PREFIX, name].concat(), 0);
        Ok(file)
    }

    /// A node was created at `names`.
    fn created(&mut self, ino: Ino, names: &[Vec<u8>], kind: NodeType, perm: u16) -> Result<(), Errno> {
        let (dirs, name) = Self::split(names)?;
        let parent = self.walk(dirs)?;
        let whiteout = [WH_PREFIX, name].concat();
        match kind {
            NodeType::Dir => {
                match mkdirat(&parent, name, dir_mode(perm)) {
                    Ok(()) => {}
                    Err(Errno(libc::EEXIST)) if open_dir_handle(&parent, name).is_ok() => {}
                    Err(e) => return Err(e),
                }
                if remove_if_present(&parent, &whiteout, 0)? {
                    // It replaces a removed directory: hide the lower layer's entries.
                    let dir = open_dir_handle(&parent, name)?;
                    drop(openat(&dir, OPAQUE, libc::O_WRONLY | libc::O_CREAT, 0o600)?);
                }
            }
            NodeType::File => {
                let fd = openat(&parent, name, libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC, file_mode(perm))?;
                remove_if_present(&parent, &whiteout, 0)?;
                self.files.insert(ino, fs::File::from(fd));
            }
            // Kept with its empty target until the first write changes it.
            NodeType::Symlink => return self.symlink(names, &[]),
            _ => {}
        }
        Ok(())
    }

    /// The symlink at `names` now has the target `target`: a host symlink, or a record in
    /// [`LINKS`] where a host symlink cannot hold the target. A record is written before the
    /// host NAME goes and forgotten after a new host NAME is made, so a crash between leaves
    /// both and the loader keeps the host NAME (the old link, or the new one).
    fn symlink(&self, names: &[Vec<u8>], target: &[u8]) -> Result<(), Errno> {
        let (dirs, name) = Self::split(names)?;
        let parent = self.walk(dirs)?;
        if host_symlink_holds(target) {
            remove_if_present(&parent, name, 0)?;
            symlinkat(target, &parent, name)?;
            set_link(&parent, name, None)?;
        } else {
            set_link(&parent, name, Some(target))?;
            remove_if_present(&parent, name, 0)?;
        }
        remove_if_present(&parent, &[WH_PREFIX, name].concat(), 0).map(|_| ())
    }

    /// `names` (a directory if `dir`) was removed.
    fn removed(&mut self, ino: Ino, names: &[Vec<u8>], dir: bool) -> Result<(), Errno> {
        self.files.remove(&ino);
        let (dirs, name) = Self::split(names)?;
        let parent = self.walk(dirs)?;
        if dir {
            match open_dir_handle(&parent, name) {
                Ok(d) => {
                    // The guest directory was empty: only overlay markers can be left.
                    for entry in list_fd(&d)? {
                        if entry.starts_with(WH_PREFIX) {
                            remove_if_present(&d, &entry, 0)?;
                        }
                    }
                    remove_if_present(&parent, name, libc::AT_REMOVEDIR)?;
                }
                Err(Errno(libc::ENOENT)) => {}
                Err(Errno(libc::ENOTDIR)) | Err(Errno(libc::ELOOP)) => {
                    remove_if_present(&parent, name, 0)?;
                }
                Err(e) => return Err(e),
            }
        } else {
            match remove_if_present(&parent, name, 0) {
                Ok(_) => {}
                Err(Errno(libc::EISDIR)) => {
                    remove_if_present(&parent, name, libc::AT_REMOVEDIR)?;
                }
                Err(e) => return Err(e),
            }
        }
        set_link(&parent, name, None)?;
        drop(openat(&parent, &[WH_PREFIX, name].concat(), libc::O_WRONLY | libc::O_CREAT, 0o600)?);
        Ok(())
    }
}

impl Overlay {
    /// Makes the host file at `new` a hard link of the one at `old`.
    fn hard_link(&self, old: &[Vec<u8>], new: &[Vec<u8>]) -> Result<(), Errno> {
        let (old_dirs, old_name) = Self::split(old)?;
        let (new_dirs, new_name) = Self::split(new)?;
        let from_dir = self.walk(old_dirs)?;
        let to_dir = self.walk(new_dirs)?;
        remove_if_present(&to_dir, new_name, 0)?;
        linkat(&from_dir, old_name, &to_dir, new_name)?;
        remove_if_present(&to_dir, &[WH_PREFIX, new_name].concat(), 0).map(|_| ())
    }
}

/// Writes all of `data` at `pos`.
fn pwrite_all(file: &fs::File, pos: u64, data: &[u8]) -> Result<(), Errno> {
    file.write_all_at(data, pos).map_err(|e| host::errno_of(&e))
}

// --- the hooks the tree's users call -----------------------------------------------------------

impl Tree {
    /// Runs `f` with the overlay taken out of the tree (so `f` may read the tree).
    fn with_overlay(
        &mut self,
        what: &str,
        names: &[Vec<u8>],
        f: impl FnOnce(&mut Overlay, &mut Tree) -> Result<(), Errno>,
    ) -> Result<(), Errno> {
        let Some(mut ov) = self.overlay.take() else {
            return Ok(());
        };
        let result = f(&mut ov, self).map_err(|e| ov.fail(what, names, e));
        self.overlay = Some(ov);
        result
    }

    /// True if `ino` still has a name (an unlinked open file is not persisted).
    fn linked(&self, ino: Ino) -> bool {
        self.node(ino).is_ok_and(|n| n.nlink > 0)
    }

    /// A name the guest may not create while an overlay is attached.
    pub(crate) fn reserved_name(&self, name: &[u8]) -> bool {
        self.overlay.is_some() && name.starts_with(WH_PREFIX)
    }

    /// `ino` was just created at `names`.
    pub(crate) fn overlay_created(&mut self, ino: Ino, names: &[Vec<u8>]) -> Result<(), Errno> {
        if self.overlay.is_none() {
            return Ok(());
        }
        let kind = self.kind_of(ino)?;
        let perm = self.node(ino)?.perm;
        self.with_overlay("create", names, |ov, _| ov.created(ino, names, kind, perm))
    }

    /// The regular file `ino` (at `names`) changed: `data` written at `pos`, or (if `data` is
    /// `None`) truncated or otherwise changed as a whole.
    pub(crate) fn overlay_write(
        &mut self,
        ino: Ino,
        names: &[Vec<u8>],
        pos: u64,
        data: Option<&[u8]>,
    ) -> Result<(), Errno> {
        // Writing nothing changed nothing (no copy-up either).
        if self.overlay.is_none() || !self.linked(ino) || data.is_some_and(<[u8]>::is_empty) {
            return Ok(());
        }
        self.with_overlay("write", names, |ov, tree| {
            let contents = match &tree.node(ino)?.kind {
                Kind::File(Data::Owned(v)) => v,
                _ => return Err(Errno(EIO)),
            };
            match (ov.files.get(&ino), data) {
                (Some(file), Some(data)) => {
                    pwrite_all(file, pos, data)?;
                    // The host copy grows only by what is written: the tree's file must
                    // have grown no further (a write of nothing past the end once did).
                    debug_assert_eq!(
                        file.metadata().map(|m| m.len()).ok(),
                        Some(contents.len() as u64),
                        "overlay copy of {} out of step with the tree",
                        show(names)
                    );
                    Ok(())
                }
                (Some(file), None) => {
                    file.set_len(contents.len() as u64).map_err(|e| host::errno_of(&e))?;
                    pwrite_all(file, 0, contents)
                }
                (None, _) => {
                    // First change of a lower (or earlier run's) file in this run: copy it up.
                    let file = ov.replace_file(names, contents, tree.node(ino)?.perm)?;
                    ov.files.insert(ino, file);
                    Ok(())
                }
            }
        })
    }

    /// The symlink `ino` (at `names`) has a new target.
    pub(crate) fn overlay_symlink(&mut self, ino: Ino, names: &[Vec<u8>]) -> Result<(), Errno> {
        if self.overlay.is_none() || !self.linked(ino) {
            return Ok(());
        }
        let target = self.symlink_target(ino)?.to_vec();
        self.with_overlay("symlink", names, |ov, _| ov.symlink(names, &target))
    }

    /// `ino` (a directory if `dir`) at `names` was removed.
    pub(crate) fn overlay_removed(&mut self, ino: Ino, names: &[Vec<u8>], dir: bool) -> Result<(), Errno> {
        self.with_overlay("remove", names, |ov, _| ov.removed(ino, names, dir))
    }

    pub(crate) fn has_overlay(&self) -> bool {
        self.overlay.is_some()
    }

    /// Writes the whole regular file `ino` at `names` and makes that its host copy.
    fn overlay_file_at(&mut self, ino: Ino, names: &[Vec<u8>], what: &str) -> Result<(), Errno> {
        self.copy_up(ino)?;
        self.with_overlay(what, names, |ov, tree| {
            let perm = tree.node(ino)?.perm;
            let Kind::File(Data::Owned(contents)) = &tree.node(ino)?.kind else {
                return Err(Errno(EIO));
            };
            let file = ov.replace_file(names, contents, perm)?;
            ov.files.insert(ino, file);
            Ok(())
        })
    }

    /// `ino` (at `old`) got the second name `new`: a host hard link of its host copy (made
    /// first if the file was still the lower layer's), or a second symlink.
    pub(crate) fn overlay_linked(&mut self, ino: Ino, old: &[Vec<u8>], new: &[Vec<u8>]) -> Result<(), Errno> {
        if self.overlay.is_none() {
            return Ok(());
        }
        match self.kind_of(ino)? {
            NodeType::File | NodeType::HostFile => {
                let has_copy = self.overlay.as_ref().is_some_and(|ov| ov.files.contains_key(&ino));
                if !has_copy {
                    self.overlay_file_at(ino, old, "link")?;
                }
                self.with_overlay("link", new, |ov, _| ov.hard_link(old, new))
            }
            NodeType::Symlink => {
                let target = self.symlink_target(ino)?.to_vec();
                self.with_overlay("link", new, |ov, _| ov.symlink(new, &target))
            }
            _ => Ok(()),
        }
    }

    /// The non-directory `ino` moved from `old` to `new`: the old name is removed (with a
    /// whiteout) and the object written at the new one.
    pub(crate) fn overlay_renamed(&mut self, ino: Ino, old: &[Vec<u8>], new: &[Vec<u8>]) -> Result<(), Errno> {
        if self.overlay.is_none() {
            return Ok(());
        }
        let kind = self.kind_of(ino)?;
        self.with_overlay("rename", old, |ov, _| ov.removed(ino, old, false))?;
        match kind {
            NodeType::File | NodeType::HostFile => self.overlay_file_at(ino, new, "rename"),
            NodeType::Symlink => {
                let target = self.symlink_target(ino)?.to_vec();
                self.with_overlay("rename", new, |ov, _| ov.symlink(new, &target))
            }
            _ => Ok(()),
        }
    }

    /// Flushes the host copy of `ino` to stable storage (the guest's `fsync`).
    pub(crate) fn overlay_sync(&mut self, ino: Ino, names: &[Vec<u8>]) -> Result<(), Errno> {
        self.with_overlay("sync", names, |ov, _| match ov.files.get(&ino) {
            Some(f) => f.sync_data().map_err(|e| host::errno_of(&e)),
            None => Ok(()),
        })
    }

    pub(crate) fn overlay_error(&self) -> Option<String> {
        self.overlay.as_ref().and_then(|o| o.error().map(str::to_string))
    }

    // --- loading ---------------------------------------------------------------------------

    /// Attaches the overlay at `path`, loading what earlier runs left there. An overlay
    /// inside a host root is hidden from it (the guest never sees the layer's own files as
    /// lower-layer files); one that holds the root is refused.
    pub(crate) fn attach_overlay(&mut self, path: &Path) -> Result<(), ImageError> {
        let ov = Overlay::open(path)?;
        if let Ok(Dir { host: Some(lower), .. }) = self.dir_mut(ROOT) {
            let real = fs::canonicalize(path).map_err(|source| ImageError::Io { path: path.to_path_buf(), source })?;
            let name = real.file_name().map_or(&b""[..], |n| n.as_bytes());
            lower.hide(ov.fs.root_handle(), name).map_err(|e| match e {
                host::HideError::ContainsRoot => ImageError::OverlayHoldsRoot { path: path.to_path_buf() },
                host::HideError::Host(e) => load_err(path, e),
            })?;
        }
        self.load_dir(ROOT, &ov.fs.root_dir(), path, 0)?;
        self.overlay = Some(ov);
        Ok(())
    }

    /// Removes `name` from directory `dir` (whole subtree; a whiteout for host directories).
    fn drop_entry(&mut self, dir: Ino, name: &[u8]) -> Result<(), Errno> {
        match self.dir_mut(dir)?.entries.get(name).copied() {
            Some(Entry::Node(ino)) => self.unlink_entry(dir, name, ino),
            Some(Entry::Whiteout) => Ok(()),
            None => {
                let d = self.dir_mut(dir)?;
                if d.host.is_some() {
                    d.entries.insert(name.to_vec(), Entry::Whiteout);
                }
                Ok(())
            }
        }
    }

    fn load_dir(&mut self, dir: Ino, host_dir: &HostDir, host_path: &Path, depth: usize) -> Result<(), ImageError> {
        let err = |e| load_err(host_path, e);
        let mut names = host_dir.list().map_err(err)?;
        names.sort();
        if names.iter().any(|n| n == OPAQUE) {
            let d = self.dir_mut(dir).map_err(err)?;
            d.host = None;
            let lower: Vec<Vec<u8>> = d.entries.keys().cloned().collect();
            for name in lower {
                self.drop_entry(dir, &name).map_err(err)?;
                self.dir_mut(dir).map_err(err)?.entries.remove(&name);
            }
        }
        let fd = host_dir.handle().map_err(err)?;
        for name in &names {
            if name.starts_with(TMP_PREFIX) {
                // An interrupted copy-up: the complete file (if any) is under its own name.
                remove_if_present(&fd, name, 0).map_err(err)?;
            } else if let Some(hidden) = name.strip_prefix(WH_PREFIX) {
                if name != OPAQUE && name != LINKS && !hidden.is_empty() {
                    self.drop_entry(dir, hidden).map_err(err)?;
                }
            }
        }
        for name in names.iter().filter(|n| !n.starts_with(WH_PREFIX)) {
            if name.len() > super::path::NAME_MAX {
                continue;
            }
            let path = host_path.join(std::ffi::OsStr::from_bytes(name));
            let Some((entry, st)) = host_dir.entry(name).map_err(|e| load_err(&path, e))? else {
                continue; // removed meanwhile
            };
            // The entry this one lands on or replaces (a host root's is looked up on the host).
            let existing = self.lookup(dir, name).map_err(err)?;
            match entry {
                HostEntry::Dir(sub_dir) => {
                    if depth >= MAX_LOAD_DEPTH {
                        continue;
                    }
                    let sub = match existing {
                        Some(ino) if self.kind_of(ino).map_err(err)? == NodeType::Dir => ino,
                        _ => {
                            self.drop_entry(dir, name).map_err(err)?;
                            let node = host::host_node(Kind::Dir(Dir::default()), &st);
                            self.add_loaded(dir, name, node).map_err(err)?
                        }
                    };
                    self.load_dir(sub, &sub_dir, &path, depth + 1)?;
                }
                HostEntry::File(file) => {
                    self.drop_entry(dir, name).map_err(err)?;
                    self.add_loaded(dir, name, host::host_node(Kind::File(Data::Host(file)), &st)).map_err(err)?;
                }
                HostEntry::Symlink(target) => {
                    self.drop_entry(dir, name).map_err(err)?;
                    self.add_loaded(dir, name, host::host_node(Kind::Symlink(target), &st)).map_err(err)?;
                }
                HostEntry::Special(_) => {}
            }
        }
        if let Some(st) = host::lstatat(&fd, LINKS).map_err(err)? {
            let links = read_links(&fd).map_err(|e| load_err(&host_path.join(".wh..wh..lnk"), e))?;
            for (name, target) in links {
                // A host NAME wins (see `Overlay::symlink`).
                if names.contains(&name) || name.is_empty() || name.len() > super::path::NAME_MAX {
                    continue;
                }
                self.drop_entry(dir, &name).map_err(err)?;
                // Owner and time of the records, the mode a host symlink has.
                let mut st = st;
                st.st_mode = libc::S_IFLNK | 0o777;
                self.add_loaded(dir, &name, host::host_node(Kind::Symlink(target), &st)).map_err(err)?;
            }
        }
        Ok(())
    }

    fn add_loaded(&mut self, dir: Ino, name: &[u8], node: Node) -> Result<Ino, Errno> {
        let ino = self.alloc(node)?;
        self.link(dir, name.to_vec(), ino)?;
        Ok(ino)
    }
}

fn load_err(path: &Path, e: Errno) -> ImageError {
    ImageError::Io { path: path.to_path_buf(), source: std::io::Error::from_raw_os_error(e.0) }
}
