//! The `file:` scheme: the guest's root file system.
//!
//! # Design
//! A [`Vfs`] is one tree of nodes (see `tree.rs`) that is both the index of a read-only lower
//! layer and the writable in-memory overlay on top of it:
//! - a tar image (`--image FILE`, mapped with memmap2, or an embedded `&'static [u8]`),
//!   parsed once and validated strictly (`image.rs`); regular files are byte ranges of the
//!   image, copied only on first write;
//! - or a host directory (`--root DIR`), looked up lazily one component at a time
//!   (`host.rs`), never written;
//! - guest writes (create, write, truncate, unlink, mkdir, rmdir, link, rename) change only
//!   the in-memory tree; whiteouts hide host entries that were removed or moved away;
//!   `--overlay DIR` mirrors them into a host directory (`overlay.rs`).
//!
//! # Confinement: held by the host kernel, through directory handles
//! The invariant: **no host path built from guest input reaches the host kernel.** Guest
//! paths are resolved only inside the tree (`tree.rs`: `..` never above the root, symlinks
//! spliced in as guest paths). The host is touched only in `host.rs`, and only by `*at`
//! calls on a directory handle naming one validated component that is never followed if it
//! is a symlink (`fstatat(AT_SYMLINK_NOFOLLOW)`, `openat(O_NOFOLLOW)`, `readlinkat`, and
//! for the overlay `mkdirat`/`unlinkat`/`renameat`/`linkat`/`symlinkat`). Cached directory
//! nodes hold an identity (`st_dev`, `st_ino`), not a path: their handle is cached, or
//! re-opened from the root handle with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`
//! (one `openat(O_NOFOLLOW)` per component where the kernel lacks it) and must be the same
//! directory, else `ENOENT`. Files are opened the same way and identity-checked. So nothing
//! that changes the host tree later (the overlay writing a guest's symlink where a directory
//! was, or another host process) can redirect a lookup: the guest reaches the directory it
//! saw, or nothing. An overlay inside a host root is hidden from it (and one holding the
//! root refused), so the guest never sees its own layer as lower-layer files. Enforced by
//! construction (every host-touching function takes a handle: `HostDir`, `HostFile`,
//! `HostFs`) and checked by `tests.rs` (directories and files swapped for symlinks after they
//! were cached, with the handle cached or re-opened), `tests/escape.rs` (issue 20's
//! reproductions, racing guest threads) and the `vfs_host` fuzz target.
//!
//! # Memory
//! The writable layer (file contents, symlink targets, [`NAME_COST`] per name the guest
//! makes) is charged to the kernel's memory account (`--max-mem-total`, shared with guest
//! memory, see `Scheme::charge_memory_to`) and to its own cap ([`Vfs::set_write_limit`],
//! default [`DEFAULT_WRITE_LIMIT`]): past either, the call fails with `ENOSPC` and nothing
//! grows.
//!
//! # API for the kernel
//! - [`Vfs::from_tar_file`]`(path) -> Result<Vfs, ImageError>`,
//!   [`Vfs::from_tar_static`]`(&'static [u8])`, [`Vfs::from_tar_vec`]`(Vec<u8>)`,
//!   [`Vfs::from_host_dir`]`(path)`. `ImageError`'s `Display` is one line, fit for the
//!   "exit 125" message.
//! - `impl Scheme for Vfs`: register a clone as `file:` (a `Vfs` is a cheap `Rc` handle; all
//!   clones share one tree). `open` takes Redox `O_*` flags (mode in the low 16 bits with
//!   `O_CREAT`, masked by `ctx.umask`), `unlink`, `rmdir`, `link` (hard links: one node,
//!   several entries, `st_nlink` counts them; directories are `EPERM`) and `rename` (an
//!   entry moves, its node and inode number stay; directories move whole, `EINVAL` into
//!   themselves, `ENOTEMPTY` over a non-empty one). Open files keep the path they were
//!   opened by (`fpath`, and `*at` calls relative to a directory descriptor, still name the
//!   old place after a rename), and so does a process's working directory.
//! - [`Vfs::stat_path`] / [`Vfs::lstat_path`], [`Vfs::resolve_dir_exists`] (chdir),
//!   [`Vfs::canonicalize`], [`Vfs::list_dir`]: kernel-side helpers that act as uid 0.
//! - [`Vfs::image_digest`] (FNV-1a 64 of the archive bytes; `None` for a host root) and
//!   [`digest_bytes`] for record/replay.
//! - [`Vfs::set_clock`] sets the mtime given to new and modified nodes (no host clock is
//!   read, so runs are reproducible); [`Vfs::set_write_limit`] caps overlay memory.
//!
//! # Behaviour the kernel relies on
//! - Paths arrive without the `file:` prefix and already absolute (the cwd is joined by the
//!   caller); a missing leading `/` is tolerated. `.`/`..` are applied physically, never
//!   above `/`; symlinks are followed inside the guest namespace (absolute targets restart at
//!   the guest root), at most 40 per lookup, else `ELOOP`.
//! - Access mode: `O_RDONLY`, `O_WRONLY`, `O_RDWR`; no access bits means read-only. `O_STAT`
//!   opens for `fstat`/`fpath` only. Directories open for reading without `O_DIRECTORY`;
//!   opening one for writing is `EISDIR` (except the mkdir form below).
//! - mkdir is `O_CREAT | O_DIRECTORY` (add `O_EXCL` to get `EEXIST` for an existing
//!   directory; without it the existing directory is opened). An existing non-directory
//!   gives `EEXIST`.
//! - `O_SYMLINK` or `O_NOFOLLOW` on a final symlink opens the link itself: reading yields
//!   the target, `fstat` says `MODE_SYMLINK`. `O_CREAT | O_SYMLINK` creates a symlink whose
//!   target is what is then written (Redox's `symlink()`).
//! - Reading a directory yields its sorted entry names separated by `'\n'` (no `.`/`..`,
//!   no trailing newline), snapshotted at the first read.
//! - Open files survive `unlink`/`rmdir` of their path. `read_at` (exec, fmap) works on any
//!   regular-file handle regardless of its access mode; permission to exec is the kernel's
//!   check (`st_mode`).
//! - Permissions: uid 0 passes; others need `r`/`w` on the file, `x` on each directory
//!   walked, `w|x` on the parent to create or remove.
//! - Host devices, FIFOs and sockets appear in listings and `stat` (as `MODE_CHR`/
//!   `MODE_FIFO`) but opening them (other than `O_STAT`) is `EACCES`. Tar device and FIFO
//!   entries are skipped.

mod handle;
mod host;
mod image;
mod overlay;
mod path;
mod tree;

#[cfg(test)]
mod tests;

use std::cell::RefCell;
use std::fs;
use std::path::Path;
use std::rc::Rc;

use warden_abi::{
    Errno, Stat, EACCES, EBUSY, EEXIST, EINVAL, EISDIR, ENOENT, ENOTDIR, ENOTEMPTY, EPERM, EXDEV, O_ACCMODE, O_APPEND,
    O_CREAT, O_DIRECTORY, O_EXCL, O_NOFOLLOW, O_RDONLY, O_STAT, O_SYMLINK, O_TRUNC, O_WRONLY,
};

pub use handle::FileHandle;
pub use image::{ImageError, MAX_DEPTH, MAX_ENTRIES, MAX_EXTENSION};
pub use path::{NAME_MAX, PATH_MAX};
pub use tree::{DEFAULT_NODE_LIMIT, DEFAULT_WRITE_LIMIT, FILE_DEV, MAX_FILE_SIZE, MAX_SYMLINK_HOPS, NAME_COST};

use crate::scheme::{CallCtx, FileRef, Scheme};
use path::Tail;
use tree::{Data, Dir, ImageBytes, Kind, Node, NodeType, Resolved, Tree, R, ROOT, W, X};

/// The context kernel-side helpers act with (uid 0).
const KERNEL_CTX: CallCtx = CallCtx { pid: 0, uid: 0, gid: 0, umask: 0 };

/// 64-bit FNV-1a of `bytes`: the identity of an image for record/replay.
pub fn digest_bytes(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The `file:` scheme: a tar image or host directory with an in-memory writable overlay.
/// Cloning is cheap and shares the tree.
#[derive(Clone)]
pub struct Vfs {
    tree: Rc<RefCell<Tree>>,
}

impl std::fmt::Debug for Vfs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vfs").finish_non_exhaustive()
    }
}

impl Vfs {
    fn from_image(image: ImageBytes) -> Result<Vfs, ImageError> {
        let root = Node::new(Kind::Dir(Dir::default()), 0o755, 0, 0, 0);
        let mut tree = Tree::new(image, root);
        image::load(&mut tree)?;
        Ok(Vfs { tree: Rc::new(RefCell::new(tree)) })
    }

    /// Maps the tar archive at `path` (its contents are never copied or written).
    ///
    /// The file must not be truncated or modified while the `Vfs` lives.
    pub fn from_tar_file(path: impl AsRef<Path>) -> Result<Vfs, ImageError> {
        let path = path.as_ref();
        let io_err = |source| ImageError::Io { path: path.to_path_buf(), source };
        let file = fs::File::open(path).map_err(io_err)?;
        let len = file.metadata().map_err(io_err)?.len();
        if len == 0 {
            // mmap cannot map an empty file; an empty file is no archive either.
            return Vfs::from_image(ImageBytes::None);
        }
        // SAFETY: the map is read-only and only ever read as plain bytes; the image file is
        // documented as not to be modified while mapped (changes would alter what the guest
        // reads, truncation would fault), as with any memory-mapped input.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io_err)?;
        Vfs::from_image(ImageBytes::Mapped(map))
    }

    /// Uses an archive embedded in the binary.
    pub fn from_tar_static(bytes: &'static [u8]) -> Result<Vfs, ImageError> {
        Vfs::from_image(ImageBytes::Static(bytes))
    }

    /// Uses an archive already in memory.
    pub fn from_tar_vec(bytes: Vec<u8>) -> Result<Vfs, ImageError> {
        Vfs::from_image(ImageBytes::Owned(bytes))
    }

    /// Uses the host directory `path` as a read-only root.
    pub fn from_host_dir(path: impl AsRef<Path>) -> Result<Vfs, ImageError> {
        let path = path.as_ref();
        let io_err = |source| ImageError::Io { path: path.to_path_buf(), source };
        let meta = fs::metadata(path).map_err(io_err)?;
        if !meta.is_dir() {
            return Err(ImageError::NotADirectory { path: path.to_path_buf() });
        }
        let (host_fs, st) = host::HostFs::open(path).map_err(io_err)?;
        let root = host::host_node(Kind::Dir(Dir { host: Some(host_fs.root_dir()), ..Dir::default() }), &st);
        Ok(Vfs { tree: Rc::new(RefCell::new(Tree::new(ImageBytes::None, root))) })
    }

    /// A copy of an image tree that shares nothing with it (its files, directories and
    /// limits as they are now), cheaper than parsing the archive again: for an embedder that
    /// runs many guests on the same image (the fuzz targets). `None` for a host root, a tree
    /// with an overlay or open files, an image mapped from a file, or a tree already charged
    /// to a kernel's memory account.
    pub fn duplicate(&self) -> Option<Vfs> {
        let tree = self.tree.borrow().duplicate()?;
        Some(Vfs { tree: Rc::new(RefCell::new(tree)) })
    }

    /// FNV-1a 64 of the archive bytes (computed once), or `None` for a host root.
    pub fn image_digest(&self) -> Option<u64> {
        let mut tree = self.tree.borrow_mut();
        if let ImageBytes::None = tree.image {
            if tree.is_host_root() {
                return None;
            }
        }
        if tree.digest.is_none() {
            tree.digest = Some(digest_bytes(tree.image.bytes()));
        }
        tree.digest
    }

    /// Sets the time (seconds) stamped on created and modified nodes.
    pub fn set_clock(&self, secs: u64) {
        self.tree.borrow_mut().clock = secs;
    }

    /// Keeps the writable layer in the host directory `dir` (created if missing) from now
    /// on, first loading what earlier runs left there: see `overlay.rs` for the layout and
    /// the guarantees (write-through; nothing is ever written outside `dir`).
    pub fn attach_overlay(&self, dir: impl AsRef<Path>) -> Result<(), ImageError> {
        self.tree.borrow_mut().attach_overlay(dir.as_ref())
    }

    /// The first host error of the overlay (a guest write that could not be kept), if any.
    pub fn overlay_error(&self) -> Option<String> {
        self.tree.borrow().overlay_error()
    }

    /// Caps the bytes the writable layer may own (writes past it fail with `ENOSPC`).
    pub fn set_write_limit(&self, bytes: u64) {
        self.tree.borrow_mut().write_limit = bytes;
    }

    /// Caps the number of live nodes (creations past it fail with `ENOSPC`).
    pub fn set_node_limit(&self, nodes: usize) {
        self.tree.borrow_mut().node_limit = nodes;
    }

    /// Closes the cached host directory handles of a host root: each is re-opened (and
    /// checked to be the same directory) when next needed. For tests and fuzzing of that path.
    pub fn forget_host_handles(&self) {
        if let Ok(Dir { host: Some(h), .. }) = self.tree.borrow_mut().dir_mut(ROOT) {
            h.forget_handles();
        }
    }

    /// `Ok` if `path` names a directory (following symlinks): the check behind `chdir`.
    pub fn resolve_dir_exists(&self, path: &[u8]) -> Result<(), Errno> {
        let ino = self.found(path, true)?;
        if self.tree.borrow().kind_of(ino)? == NodeType::Dir {
            Ok(())
        } else {
            Err(Errno(ENOTDIR))
        }
    }

    /// The canonical absolute path of an existing `path` (symlinks resolved), without the
    /// `file:` prefix.
    pub fn canonicalize(&self, path: &[u8]) -> Result<Vec<u8>, Errno> {
        match self.tree.borrow_mut().resolve(path, true, &KERNEL_CTX)? {
            Resolved::Found { names, .. } => Ok(path::display(&names)[5..].to_vec()),
            Resolved::Missing { .. } => Err(Errno(ENOENT)),
        }
    }

    /// `stat` of `path`, following a final symlink.
    pub fn stat_path(&self, path: &[u8]) -> Result<Stat, Errno> {
        let ino = self.found(path, true)?;
        self.tree.borrow().stat(ino)
    }

    /// `lstat` of `path` (a final symlink is not followed).
    pub fn lstat_path(&self, path: &[u8]) -> Result<Stat, Errno> {
        let ino = self.found(path, false)?;
        self.tree.borrow().stat(ino)
    }

    /// The sorted entry names of directory `path`.
    pub fn list_dir(&self, path: &[u8]) -> Result<Vec<Vec<u8>>, Errno> {
        let ino = self.found(path, true)?;
        self.tree.borrow().list(ino)
    }

    fn found(&self, path: &[u8], follow: bool) -> Result<tree::Ino, Errno> {
        match self.tree.borrow_mut().resolve(path, follow, &KERNEL_CTX)? {
            Resolved::Found { ino, .. } => Ok(ino),
            Resolved::Missing { .. } => Err(Errno(ENOENT)),
        }
    }

    /// Opens `path` and returns the handle itself (what [`Scheme::open`] wraps).
    pub fn open_handle(&self, path: &[u8], flags: usize, ctx: &CallCtx) -> Result<FileHandle, Errno> {
        let creat = flags & O_CREAT != 0;
        let excl = creat && flags & O_EXCL != 0;
        let want_dir = flags & O_DIRECTORY != 0;
        let link_itself = flags & (O_SYMLINK | O_NOFOLLOW) != 0;
        let stat_only = flags & O_STAT != 0;
        let acc = flags & O_ACCMODE;
        let (mut read, mut write) = (acc & O_RDONLY != 0 || acc == 0, acc & O_WRONLY != 0);
        if stat_only {
            (read, write) = (false, false);
        }
        let mkdir_form = creat && want_dir;
        let perm = (flags & 0o7777) as u16;

        let parsed = path::parse(path)?;
        let mut tree = self.tree.borrow_mut();
        let follow = !(link_itself || excl);
        let resolved = tree.resolve_parsed(&parsed, follow, ctx)?;
        let (ino, names) = match resolved {
            Resolved::Found { ino, names, .. } => {
                if excl {
                    return Err(Errno(EEXIST));
                }
                let node = tree.node(ino)?;
                match tree.kind_of(ino)? {
                    NodeType::Dir => {
                        if mkdir_form {
                            write = false;
                        } else if write {
                            return Err(Errno(EISDIR));
                        }
                    }
                    _ if mkdir_form => return Err(Errno(EEXIST)),
                    _ if want_dir => return Err(Errno(ENOTDIR)),
                    NodeType::Special if !stat_only => return Err(Errno(EACCES)),
                    _ => {}
                }
                let want = if read { R } else { 0 } | if write { W } else { 0 };
                if !Tree::may(node, ctx, want) {
                    return Err(Errno(EACCES));
                }
                if flags & O_TRUNC != 0 && write {
                    match tree.kind_of(ino)? {
                        NodeType::File | NodeType::HostFile => {
                            tree.truncate(ino, 0, None)?;
                            tree.overlay_write(ino, &names, 0, None)?;
                        }
                        NodeType::Symlink => {
                            tree.truncate_symlink(ino, 0)?;
                            tree.overlay_symlink(ino, &names)?;
                        }
                        _ => {}
                    }
                }
                (ino, names)
            }
            Resolved::Missing { parent, name, names } => {
                if !creat {
                    return Err(Errno(ENOENT));
                }
                if parsed.must_be_dir() && !want_dir {
                    return Err(Errno(EISDIR));
                }
                if matches!(parsed.tail, Tail::Dot | Tail::DotDot) {
                    return Err(Errno(ENOENT));
                }
                if tree.reserved_name(&name) {
                    return Err(Errno(EINVAL));
                }
                let kind = if want_dir {
                    write = false;
                    Kind::Dir(Dir::default())
                } else if flags & O_SYMLINK != 0 {
                    Kind::Symlink(Vec::new())
                } else {
                    Kind::File(Data::Owned(Vec::new()))
                };
                let ino = tree.create(parent, name, kind, perm, ctx)?;
                tree.overlay_created(ino, &names)?;
                (ino, names)
            }
        };
        // Host files get their own descriptor now, so permission problems show at open.
        let host_file = match tree.host_file(ino)? {
            Some(h) if read || write => Some(h.open()?),
            _ => None,
        };
        tree.retain(ino)?;
        drop(tree);
        Ok(FileHandle::new(Rc::clone(&self.tree), ino, names, (read, write, flags & O_APPEND != 0), host_file))
    }

    fn remove(&self, path: &[u8], ctx: &CallCtx, dir: bool) -> Result<(), Errno> {
        let parsed = path::parse(path)?;
        match parsed.tail {
            Tail::Dot => return Err(Errno(EINVAL)),
            Tail::DotDot => return Err(Errno(if dir { ENOTEMPTY } else { EISDIR })),
            Tail::Name | Tail::Slash => {}
        }
        // A trailing '/' requires a directory but never follows a final symlink here
        // (`rmdir("link/")` must not remove the link's target).
        let bare = path::Parsed { comps: parsed.comps.clone(), tail: Tail::Name };
        let mut tree = self.tree.borrow_mut();
        let Resolved::Found { ino, parent, names, .. } = tree.resolve_parsed(&bare, false, ctx)? else {
            return Err(Errno(ENOENT));
        };
        let is_dir = tree.kind_of(ino)? == NodeType::Dir;
        if parsed.tail == Tail::Slash && !is_dir {
            return Err(Errno(ENOTDIR));
        }
        if ino == ROOT {
            return Err(Errno(if dir { EBUSY } else { EISDIR }));
        }
        if dir && !is_dir {
            return Err(Errno(ENOTDIR));
        }
        if !dir && is_dir {
            return Err(Errno(EISDIR));
        }
        if dir && !tree.list(ino)?.is_empty() {
            return Err(Errno(ENOTEMPTY));
        }
        tree.check(parent, ctx, W | X)?;
        let name = names.last().ok_or(Errno(EBUSY))?;
        tree.unlink_entry(parent, name, ino)?;
        tree.overlay_removed(ino, &names, is_dir)
    }

    /// `link(old, new)`: one more name for a non-directory (see [`Scheme::link`]).
    pub fn link_path(&self, old: &[u8], new: &[u8], follow: bool, ctx: &CallCtx) -> Result<(), Errno> {
        let old_parsed = path::parse(old)?;
        let new_parsed = path::parse(new)?;
        let mut tree = self.tree.borrow_mut();
        let Resolved::Found { ino, names: old_names, .. } = tree.resolve_parsed(&old_parsed, follow, ctx)? else {
            return Err(Errno(ENOENT));
        };
        if tree.kind_of(ino)? == NodeType::Dir {
            return Err(Errno(EPERM));
        }
        if new_parsed.tail != Tail::Name {
            return Err(Errno(if new_parsed.tail == Tail::Slash { ENOENT } else { EEXIST }));
        }
        match tree.resolve_parsed(&new_parsed, false, ctx)? {
            Resolved::Found { .. } => Err(Errno(EEXIST)),
            Resolved::Missing { parent, name, names } => {
                tree.check(parent, ctx, W | X)?;
                if tree.reserved_name(&name) || name.contains(&b'\n') {
                    return Err(Errno(EINVAL));
                }
                tree.link_charged(parent, name, ino)?;
                let clock = tree.clock;
                tree.node_mut(parent)?.mtime = clock;
                tree.overlay_linked(ino, &old_names, &names)
            }
        }
    }

    /// `chmod` / `utimensat` (see [`Scheme::set_attr`]): the owner or uid 0 may change
    /// either; anyone with write permission may set the time. Kept in memory only (an
    /// `--overlay` does not record them).
    pub fn set_attr(
        &self,
        path: &[u8],
        follow: bool,
        perm: Option<u16>,
        mtime: Option<u64>,
        ctx: &CallCtx,
    ) -> Result<(), Errno> {
        let mut tree = self.tree.borrow_mut();
        let Resolved::Found { ino, .. } = tree.resolve(path, follow, ctx)? else {
            return Err(Errno(ENOENT));
        };
        let node = tree.node(ino)?;
        let owner = ctx.uid == 0 || ctx.uid == node.uid;
        if perm.is_some() && !owner {
            return Err(Errno(EPERM));
        }
        if mtime.is_some() && !owner && !Tree::may(node, ctx, W) {
            return Err(Errno(EACCES));
        }
        let node = tree.node_mut(ino)?;
        if let Some(p) = perm {
            node.perm = p & 0o7777;
        }
        if let Some(t) = mtime {
            node.mtime = t;
        }
        Ok(())
    }

    /// `rename(old, new)` (see [`Scheme::rename`]). Directories move with everything in
    /// them; with an overlay attached a directory cannot move (`EXDEV`, as overlayfs
    /// without redirects answers: `mv` then copies).
    pub fn rename_path(&self, old: &[u8], new: &[u8], ctx: &CallCtx) -> Result<(), Errno> {
        let old_parsed = path::parse(old)?;
        let new_parsed = path::parse(new)?;
        for p in [&old_parsed, &new_parsed] {
            if matches!(p.tail, Tail::Dot | Tail::DotDot) {
                return Err(Errno(EBUSY));
            }
        }
        let bare = |p: &path::Parsed| path::Parsed { comps: p.comps.clone(), tail: Tail::Name };
        let mut tree = self.tree.borrow_mut();
        let Resolved::Found { ino, parent, names: old_names } = tree.resolve_parsed(&bare(&old_parsed), false, ctx)?
        else {
            return Err(Errno(ENOENT));
        };
        if ino == ROOT {
            return Err(Errno(EBUSY));
        }
        let is_dir = tree.kind_of(ino)? == NodeType::Dir;
        if !is_dir && (old_parsed.tail == Tail::Slash || new_parsed.tail == Tail::Slash) {
            return Err(Errno(ENOTDIR));
        }
        let (new_parent, new_name, new_names, replaced) = match tree.resolve_parsed(&bare(&new_parsed), false, ctx)? {
            Resolved::Found { ino: target, parent: np, names } => {
                if target == ino {
                    return Ok(()); // the same file: nothing to do
                }
                if target == ROOT {
                    return Err(Errno(EBUSY));
                }
                let target_dir = tree.kind_of(target)? == NodeType::Dir;
                match (is_dir, target_dir) {
                    (true, false) => return Err(Errno(ENOTDIR)),
                    (false, true) => return Err(Errno(EISDIR)),
                    (true, true) if !tree.list(target)?.is_empty() => return Err(Errno(ENOTEMPTY)),
                    _ => {}
                }
                let name = names.last().cloned().ok_or(Errno(EBUSY))?;
                (np, name, names, Some((target, target_dir)))
            }
            Resolved::Missing { parent: np, name, names } => (np, name, names, None),
        };
        // A directory cannot move below itself.
        if is_dir && new_names.len() > old_names.len() && new_names[..old_names.len()] == old_names[..] {
            return Err(Errno(EINVAL));
        }
        tree.check(parent, ctx, W | X)?;
        tree.check(new_parent, ctx, W | X)?;
        if tree.reserved_name(&new_name) || new_name.contains(&b'\n') {
            return Err(Errno(EINVAL));
        }
        if is_dir && tree.has_overlay() {
            return Err(Errno(EXDEV));
        }
        let old_name = old_names.last().cloned().ok_or(Errno(EBUSY))?;
        if let Some((target, target_dir)) = replaced {
            tree.unlink_entry(new_parent, &new_name, target)?;
            tree.overlay_removed(target, &new_names, target_dir)?;
        }
        tree.move_entry(parent, &old_name, new_parent, new_name, ino)?;
        tree.overlay_renamed(ino, &old_names, &new_names)
    }
}

impl Scheme for Vfs {
    fn open(&mut self, path: &[u8], flags: usize, ctx: &CallCtx) -> Result<FileRef, Errno> {
        Ok(Rc::new(RefCell::new(self.open_handle(path, flags, ctx)?)))
    }

    fn unlink(&mut self, path: &[u8], ctx: &CallCtx) -> Result<(), Errno> {
        self.remove(path, ctx, false)
    }

    fn rmdir(&mut self, path: &[u8], ctx: &CallCtx) -> Result<(), Errno> {
        self.remove(path, ctx, true)
    }

    fn link(&mut self, old: &[u8], new: &[u8], follow: bool, ctx: &CallCtx) -> Result<(), Errno> {
        self.link_path(old, new, follow, ctx)
    }

    fn rename(&mut self, old: &[u8], new: &[u8], ctx: &CallCtx) -> Result<(), Errno> {
        self.rename_path(old, new, ctx)
    }

    fn set_attr(
        &mut self,
        path: &[u8],
        follow: bool,
        perm: Option<u16>,
        mtime: Option<u64>,
        ctx: &CallCtx,
    ) -> Result<(), Errno> {
        Vfs::set_attr(self, path, follow, perm, mtime, ctx)
    }

    fn charge_memory_to(&mut self, account: &Rc<crate::mm::MemTotal>) {
        self.tree.borrow_mut().charge_to(account);
    }
}
