//! The node store: one in-memory tree that is both the lower layer's index and the writable
//! overlay.
//!
//! Design: nodes live in an arena (`Vec<Option<Node>>`); a node's inode number is its index
//! plus one and is never reused, so `st_ino` is stable for the life of the `Vfs`. A directory
//! maps names to [`Entry`]s in a `BTreeMap`, so listings are sorted and deterministic.
//!
//! - A tar image is indexed eagerly: its regular files are [`Data::Image`] byte ranges of the
//!   image (never copied until written).
//! - A host root is indexed lazily: a directory with `host: Some(dir)` mirrors that host
//!   directory (a [`HostDir`]: identity and handle, never a path, see `host.rs`); a name not
//!   in its map is looked up on the host (one `fstatat` of one validated component in that
//!   directory's handle) and cached as a node. [`Entry::Whiteout`] hides a host name after
//!   `unlink`/`rmdir`.
//! - Writes are copy-on-write: the first write to an image or host file copies its bytes into
//!   [`Data::Owned`]; neither the image nor the host directory is ever written.
//!
//! A node is freed when no directory entry names it (`nlink == 0`) and no open file refers to
//! it (`open == 0`), so an unlinked file stays readable through its open descriptors.
//!
//! Memory: everything the guest makes here is charged, when it is made, to the tree's write
//! limit and to the kernel's memory account (`--max-mem-total`, shared with guest memory;
//! see [`Tree::account`]): file contents byte for byte, symlink targets, and [`NAME_COST`]
//! per name the guest creates or links. Past either cap the call fails with `ENOSPC` and
//! nothing grows. Index nodes of the lower layer are not charged (they mirror what exists).
//!
//! Path resolution walks component by component with a stack of directories: `..` pops the
//! stack (never above the root), a symbolic link's target is spliced in front of the remaining
//! components (an absolute target restarts at the root), and more than [`MAX_SYMLINK_HOPS`]
//! links give `ELOOP`. No guest path ever reaches the host unresolved.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs;
use std::rc::Rc;

use warden_abi::{
    Errno, Stat, EACCES, EFBIG, EINVAL, EIO, EISDIR, ELOOP, ENOENT, ENOSPC, ENOTDIR, MODE_CHR, MODE_DIR, MODE_FIFO,
    MODE_FILE, MODE_SYMLINK,
};

use super::host::{self, HostDir, HostEntry, HostFile};
use super::path::{self, Comp, Parsed};
use crate::mm::MemTotal;
use crate::scheme::CallCtx;

/// Index of a node in the arena.
pub(crate) type Ino = usize;
/// The root directory.
pub(crate) const ROOT: Ino = 0;
/// Symbolic links followed in one resolution before `ELOOP` (Linux's limit).
pub const MAX_SYMLINK_HOPS: usize = 40;
/// Largest regular file the overlay lets a guest create (`EFBIG` beyond).
pub const MAX_FILE_SIZE: u64 = 1 << 40;
/// Default cap on the bytes owned by the writable layer (`ENOSPC` beyond).
pub const DEFAULT_WRITE_LIMIT: u64 = 1 << 30;
/// Default cap on the number of live nodes (`ENOSPC` beyond).
pub const DEFAULT_NODE_LIMIT: usize = 4 << 20;
/// `st_dev` reported for every `file:` node.
pub const FILE_DEV: u64 = 1;
/// Bytes charged for each name the guest creates or links (the node or entry, the name, the
/// map's overhead; names are at most 255 bytes).
pub const NAME_COST: u64 = 512;

/// Permission classes for [`Tree::may`].
pub(crate) const R: u16 = 4;
pub(crate) const W: u16 = 2;
pub(crate) const X: u16 = 1;

/// A directory entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Entry {
    Node(Ino),
    /// Hides the host entry of the same name.
    Whiteout,
}

/// A directory.
#[derive(Debug, Default)]
pub(crate) struct Dir {
    pub entries: BTreeMap<Vec<u8>, Entry>,
    /// The host directory this one mirrors, if any (host roots only).
    pub host: Option<HostDir>,
}

/// The contents of a regular file.
#[derive(Debug)]
pub(crate) enum Data {
    /// `len` bytes of the image starting at `start` (bounds checked when parsed).
    Image { start: usize, len: usize },
    /// A host file, read on demand through a descriptor of the open file.
    Host(HostFile),
    /// Owned by the writable layer.
    Owned(Vec<u8>),
}

/// What a node is.
#[derive(Debug)]
pub(crate) enum Kind {
    Dir(Dir),
    File(Data),
    /// The link target (raw bytes).
    Symlink(Vec<u8>),
    /// A host device, FIFO or socket: visible to `stat`, never opened. The `MODE_*` type.
    Special(u16),
}

/// One file-system object.
#[derive(Debug)]
pub(crate) struct Node {
    pub kind: Kind,
    /// Permission bits (`0o7777`).
    pub perm: u16,
    pub uid: u32,
    pub gid: u32,
    pub mtime: u64,
    /// Directory entries naming this node (directories: 1 while linked, 0 once removed).
    pub nlink: u32,
    /// Open files referring to this node.
    pub open: u32,
    /// For host directories: the host's link count.
    pub host_nlink: u32,
    /// Bytes charged for this node besides regular-file contents: [`NAME_COST`] per name the
    /// guest gave it, and its symlink target if the guest wrote one.
    charged: u64,
}

impl Node {
    pub fn new(kind: Kind, perm: u16, uid: u32, gid: u32, mtime: u64) -> Node {
        Node { kind, perm: perm & 0o7777, uid, gid, mtime, nlink: 0, open: 0, host_nlink: 0, charged: 0 }
    }

    pub fn is_dir(&self) -> bool {
        matches!(self.kind, Kind::Dir(_))
    }
}

/// The bytes of a tar image.
pub(crate) enum ImageBytes {
    None,
    Static(&'static [u8]),
    Owned(Vec<u8>),
    Mapped(memmap2::Mmap),
}

impl ImageBytes {
    pub fn bytes(&self) -> &[u8] {
        match self {
            ImageBytes::None => &[],
            ImageBytes::Static(b) => b,
            ImageBytes::Owned(v) => v,
            ImageBytes::Mapped(m) => m,
        }
    }
}

/// The result of resolving a path.
#[derive(Debug)]
pub(crate) enum Resolved {
    /// The object exists; `names` is its canonical path from the root.
    Found { ino: Ino, parent: Ino, names: Vec<Vec<u8>> },
    /// Everything but the final component exists.
    Missing { parent: Ino, name: Vec<u8>, names: Vec<Vec<u8>> },
}

/// The tree, its image and its limits.
pub(crate) struct Tree {
    nodes: Vec<Option<Node>>,
    live: usize,
    pub image: ImageBytes,
    /// Seconds used as the mtime of new and modified nodes.
    pub clock: u64,
    /// Bytes charged now (file contents and [`Node::charged`]).
    owned: u64,
    pub write_limit: u64,
    /// The kernel's memory account, charged alongside `owned` once the kernel shares it.
    pub account: Option<Rc<MemTotal>>,
    pub node_limit: usize,
    pub digest: Option<u64>,
    /// The persistent writable layer (`--overlay DIR`), if any: see `overlay.rs`.
    pub overlay: Option<super::overlay::Overlay>,
}

fn errno(e: i32) -> Errno {
    Errno(e)
}

impl Tree {
    /// A tree holding only `root` (a directory).
    pub fn new(image: ImageBytes, mut root: Node) -> Tree {
        root.nlink = 1;
        Tree {
            nodes: vec![Some(root)],
            live: 1,
            image,
            clock: 0,
            owned: 0,
            write_limit: DEFAULT_WRITE_LIMIT,
            account: None,
            node_limit: DEFAULT_NODE_LIMIT,
            digest: None,
            overlay: None,
        }
    }

    /// A copy sharing nothing with this tree (see [`super::Vfs::duplicate`]); `None` for a
    /// host root, an overlay, a mapped image, a charged account or an open file.
    pub fn duplicate(&self) -> Option<Tree> {
        if self.overlay.is_some() || self.account.is_some() {
            return None;
        }
        let image = match &self.image {
            ImageBytes::None => ImageBytes::None,
            ImageBytes::Static(b) => ImageBytes::Static(b),
            ImageBytes::Owned(v) => ImageBytes::Owned(v.clone()),
            ImageBytes::Mapped(_) => return None,
        };
        let mut nodes = Vec::with_capacity(self.nodes.len());
        for node in &self.nodes {
            let Some(n) = node else {
                nodes.push(None);
                continue;
            };
            let kind = match &n.kind {
                Kind::Dir(Dir { entries, host: None }) => Kind::Dir(Dir { entries: entries.clone(), host: None }),
                Kind::File(Data::Image { start, len }) => Kind::File(Data::Image { start: *start, len: *len }),
                Kind::File(Data::Owned(v)) => Kind::File(Data::Owned(v.clone())),
                Kind::Symlink(t) => Kind::Symlink(t.clone()),
                Kind::Special(t) => Kind::Special(*t),
                Kind::Dir(_) | Kind::File(Data::Host(_)) => return None,
            };
            if n.open != 0 {
                return None;
            }
            nodes.push(Some(Node { kind, ..*n }));
        }
        Some(Tree {
            nodes,
            live: self.live,
            image,
            clock: self.clock,
            owned: self.owned,
            write_limit: self.write_limit,
            account: None,
            node_limit: self.node_limit,
            digest: self.digest,
            overlay: None,
        })
    }

    /// True if the root mirrors a host directory.
    pub fn is_host_root(&self) -> bool {
        matches!(self.dir(ROOT), Ok(Dir { host: Some(_), .. }))
    }

    pub fn live_nodes(&self) -> usize {
        self.live
    }

    pub fn node(&self, ino: Ino) -> Result<&Node, Errno> {
        self.nodes.get(ino).and_then(Option::as_ref).ok_or(errno(EIO))
    }

    pub fn node_mut(&mut self, ino: Ino) -> Result<&mut Node, Errno> {
        self.nodes.get_mut(ino).and_then(Option::as_mut).ok_or(errno(EIO))
    }

    fn dir(&self, ino: Ino) -> Result<&Dir, Errno> {
        match &self.node(ino)?.kind {
            Kind::Dir(d) => Ok(d),
            _ => Err(errno(ENOTDIR)),
        }
    }

    pub fn dir_mut(&mut self, ino: Ino) -> Result<&mut Dir, Errno> {
        match &mut self.node_mut(ino)?.kind {
            Kind::Dir(d) => Ok(d),
            _ => Err(errno(ENOTDIR)),
        }
    }

    /// Adds a node to the arena (unlinked); `ENOSPC` past the node limit.
    pub fn alloc(&mut self, node: Node) -> Result<Ino, Errno> {
        if self.live >= self.node_limit {
            return Err(errno(ENOSPC));
        }
        self.nodes.push(Some(node));
        self.live += 1;
        Ok(self.nodes.len() - 1)
    }

    /// Links `ino` into directory `parent` as `name` (replacing a whiteout).
    pub fn link(&mut self, parent: Ino, name: Vec<u8>, ino: Ino) -> Result<(), Errno> {
        self.dir_mut(parent)?.entries.insert(name, Entry::Node(ino));
        self.node_mut(ino)?.nlink += 1;
        Ok(())
    }

    /// Frees `ino` if nothing refers to it any more.
    fn maybe_free(&mut self, ino: Ino) {
        if ino == ROOT {
            return;
        }
        let free = matches!(self.nodes.get(ino), Some(Some(n)) if n.nlink == 0 && n.open == 0);
        if free {
            if let Some(Some(node)) = self.nodes.get_mut(ino).map(Option::take) {
                if let Kind::File(Data::Owned(v)) = &node.kind {
                    self.uncharge(v.len() as u64);
                }
                self.uncharge(node.charged);
                self.live -= 1;
            }
        }
    }

    /// Marks one more open file on `ino`.
    pub fn retain(&mut self, ino: Ino) -> Result<(), Errno> {
        self.node_mut(ino)?.open += 1;
        Ok(())
    }

    /// Drops one open file on `ino` (freeing it if unlinked).
    pub fn release(&mut self, ino: Ino) {
        if let Ok(node) = self.node_mut(ino) {
            node.open = node.open.saturating_sub(1);
        }
        self.maybe_free(ino);
    }

    /// May `ctx` access `node` for `want` (a mix of [`R`], [`W`], [`X`])? uid 0 always may.
    pub fn may(node: &Node, ctx: &CallCtx, want: u16) -> bool {
        if ctx.uid == 0 {
            return true;
        }
        let bits = if ctx.uid == node.uid {
            node.perm >> 6
        } else if ctx.gid == node.gid {
            node.perm >> 3
        } else {
            node.perm
        };
        bits & want == want
    }

    pub fn check(&self, ino: Ino, ctx: &CallCtx, want: u16) -> Result<(), Errno> {
        if Self::may(self.node(ino)?, ctx, want) {
            Ok(())
        } else {
            Err(errno(EACCES))
        }
    }

    /// Looks `name` up in directory `dir`, consulting the host for mirrored directories.
    pub fn lookup(&mut self, dir: Ino, name: &[u8]) -> Result<Option<Ino>, Errno> {
        let d = self.dir(dir)?;
        match d.entries.get(name) {
            Some(Entry::Node(ino)) => return Ok(Some(*ino)),
            Some(Entry::Whiteout) => return Ok(None),
            None => {}
        }
        let Some(host_dir) = &d.host else {
            return Ok(None);
        };
        let Some((entry, st)) = host_dir.entry(name)? else {
            return Ok(None);
        };
        let kind = match entry {
            HostEntry::Dir(dir) => Kind::Dir(Dir { host: Some(dir), ..Dir::default() }),
            HostEntry::File(file) => Kind::File(Data::Host(file)),
            HostEntry::Symlink(target) => Kind::Symlink(target),
            HostEntry::Special(ty) => Kind::Special(ty),
        };
        let ino = self.alloc(host::host_node(kind, &st))?;
        self.link(dir, name.to_vec(), ino)?;
        Ok(Some(ino))
    }

    /// Resolves `path` for `ctx` (search permission needed on every directory walked).
    /// A final symbolic link is followed if `follow_final` (or if the path ends in `/`).
    pub fn resolve(&mut self, path: &[u8], follow_final: bool, ctx: &CallCtx) -> Result<Resolved, Errno> {
        let parsed = path::parse(path)?;
        self.resolve_parsed(&parsed, follow_final, ctx)
    }

    pub fn resolve_parsed(&mut self, parsed: &Parsed, follow_final: bool, ctx: &CallCtx) -> Result<Resolved, Errno> {
        let must_dir = parsed.must_be_dir();
        let mut pending: VecDeque<Comp> = parsed.comps.iter().cloned().collect();
        // The directories entered below the root, with the names used to enter them.
        let mut stack: Vec<(Ino, Vec<u8>)> = Vec::new();
        let mut hops = 0usize;
        while let Some(comp) = pending.pop_front() {
            let name = match comp {
                Comp::Parent => {
                    stack.pop();
                    continue;
                }
                Comp::Name(name) => name,
            };
            let cur = stack.last().map_or(ROOT, |(ino, _)| *ino);
            self.check(cur, ctx, X)?;
            let is_last = pending.is_empty();
            let Some(ino) = self.lookup(cur, &name)? else {
                if !is_last {
                    return Err(errno(ENOENT));
                }
                let mut names: Vec<Vec<u8>> = stack.into_iter().map(|(_, n)| n).collect();
                names.push(name.clone());
                return Ok(Resolved::Missing { parent: cur, name, names });
            };
            match &self.node(ino)?.kind {
                Kind::Dir(_) => stack.push((ino, name)),
                Kind::Symlink(target) if !is_last || follow_final || must_dir => {
                    hops += 1;
                    if hops > MAX_SYMLINK_HOPS {
                        return Err(errno(ELOOP));
                    }
                    if target.is_empty() {
                        return Err(errno(ENOENT));
                    }
                    let t = path::parse(target)?;
                    if target.first() == Some(&b'/') {
                        stack.clear();
                    }
                    for c in t.comps.into_iter().rev() {
                        pending.push_front(c);
                    }
                }
                _ => {
                    if !is_last || must_dir {
                        return Err(errno(ENOTDIR));
                    }
                    let mut names: Vec<Vec<u8>> = stack.into_iter().map(|(_, n)| n).collect();
                    names.push(name);
                    return Ok(Resolved::Found { ino, parent: cur, names });
                }
            }
        }
        let ino = stack.last().map_or(ROOT, |(ino, _)| *ino);
        let parent = match stack.len() {
            0 | 1 => ROOT,
            n => stack[n - 2].0,
        };
        Ok(Resolved::Found { ino, parent, names: stack.into_iter().map(|(_, n)| n).collect() })
    }

    /// The names in directory `dir`, sorted (host names merged, whiteouts hidden).
    pub fn list(&self, dir: Ino) -> Result<Vec<Vec<u8>>, Errno> {
        let d = self.dir(dir)?;
        let mut names: BTreeSet<Vec<u8>> = BTreeSet::new();
        if let Some(host_dir) = &d.host {
            for name in host_dir.list()? {
                if !d.entries.contains_key(&name) {
                    names.insert(name);
                }
            }
        }
        for (name, entry) in &d.entries {
            if let Entry::Node(_) = entry {
                names.insert(name.clone());
            }
        }
        Ok(names.into_iter().collect())
    }

    /// The listing a directory read returns: names separated by `'\n'`.
    pub fn listing(&self, dir: Ino) -> Result<Vec<u8>, Errno> {
        Ok(self.list(dir)?.join(&b'\n'))
    }

    /// Size of a regular file or symlink (0 for others).
    pub fn size(&self, ino: Ino) -> Result<u64, Errno> {
        Ok(match &self.node(ino)?.kind {
            Kind::File(Data::Image { len, .. }) => *len as u64,
            Kind::File(Data::Host(h)) => h.len,
            Kind::File(Data::Owned(v)) => v.len() as u64,
            Kind::Symlink(t) => t.len() as u64,
            Kind::Dir(_) | Kind::Special(_) => 0,
        })
    }

    pub fn stat(&self, ino: Ino) -> Result<Stat, Errno> {
        let node = self.node(ino)?;
        let (ty, size, nlink) = match &node.kind {
            Kind::Dir(d) => {
                let subdirs = d
                    .entries
                    .values()
                    .filter(|e| match e {
                        Entry::Node(i) => self.node(*i).is_ok_and(Node::is_dir),
                        Entry::Whiteout => false,
                    })
                    .count() as u32;
                let nlink = if node.nlink == 0 { 0 } else { node.host_nlink.max(2u32.saturating_add(subdirs)) };
                (
                    MODE_DIR,
                    // An unreadable host directory still has a status.
                    self.listing(ino).map_or(0, |l| l.len() as u64),
                    nlink,
                )
            }
            Kind::File(_) => (MODE_FILE, self.size(ino)?, node.nlink),
            Kind::Symlink(t) => (MODE_SYMLINK, t.len() as u64, node.nlink),
            Kind::Special(ty) => (*ty, 0, node.nlink),
        };
        Ok(Stat {
            st_dev: FILE_DEV,
            st_ino: ino as u64 + 1,
            st_mode: ty | node.perm,
            st_nlink: nlink,
            st_uid: node.uid,
            st_gid: node.gid,
            st_size: size,
            st_blksize: 4096,
            st_blocks: size.div_ceil(512),
            st_mtime: node.mtime,
            st_atime: node.mtime,
            st_ctime: node.mtime,
            ..Stat::default()
        })
    }

    /// Reads a regular file at `pos`; `host` is the open file's host descriptor (if any).
    pub fn read_file(&self, ino: Ino, pos: u64, buf: &mut [u8], host: Option<&fs::File>) -> Result<usize, Errno> {
        let Kind::File(data) = &self.node(ino)?.kind else {
            return Err(errno(EISDIR));
        };
        let bytes: &[u8] = match data {
            Data::Image { start, len } => {
                self.image.bytes().get(*start..start.saturating_add(*len)).ok_or(errno(EIO))?
            }
            Data::Owned(v) => v,
            Data::Host(h) => {
                let file = host.ok_or(errno(EIO))?;
                let left = h.len.saturating_sub(pos);
                let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                return host::read_at(file, pos, &mut buf[..n]);
            }
        };
        Ok(copy_out(bytes, pos, buf))
    }

    /// Makes a regular file's contents owned (copy-on-write) and returns them.
    fn owned(&mut self, ino: Ino, host: Option<&fs::File>) -> Result<&mut Vec<u8>, Errno> {
        enum Source {
            Owned,
            Image(usize, usize),
            Host(u64),
        }
        let source = match &self.node(ino)?.kind {
            Kind::File(Data::Owned(_)) => Source::Owned,
            Kind::File(Data::Image { start, len }) => Source::Image(*start, *len),
            Kind::File(Data::Host(h)) => Source::Host(h.len),
            _ => return Err(errno(EISDIR)),
        };
        let copy = match source {
            Source::Owned => None,
            Source::Image(start, len) => {
                let bytes = self.image.bytes().get(start..start.saturating_add(len)).ok_or(errno(EIO))?.to_vec();
                self.charge(len as u64)?;
                Some(bytes)
            }
            Source::Host(len) => {
                let file = host.ok_or(errno(EIO))?;
                let len = usize::try_from(len).map_err(|_| errno(EFBIG))?;
                self.charge(len as u64)?;
                let mut v = vec![0u8; len];
                let mut done = 0;
                while done < len {
                    match host::read_at(file, done as u64, &mut v[done..]) {
                        Ok(0) => break,
                        Ok(n) => done += n,
                        Err(e) => {
                            self.uncharge(len as u64);
                            return Err(e);
                        }
                    }
                }
                self.uncharge((len - done) as u64);
                v.truncate(done);
                Some(v)
            }
        };
        let node = self.node_mut(ino)?;
        if let Some(v) = copy {
            node.kind = Kind::File(Data::Owned(v));
        }
        match &mut node.kind {
            Kind::File(Data::Owned(v)) => Ok(v),
            _ => Err(errno(EIO)),
        }
    }

    /// Makes a regular file's contents owned (copied from the image or the host).
    pub fn copy_up(&mut self, ino: Ino) -> Result<(), Errno> {
        let file = match self.host_file(ino)? {
            Some(h) => Some(h.open()?),
            None => None,
        };
        self.owned(ino, file.as_ref()).map(|_| ())
    }

    /// Accounts `n` more owned bytes (`ENOSPC`, nothing taken, past the write limit or the
    /// kernel's memory account).
    fn charge(&mut self, n: u64) -> Result<(), Errno> {
        let total = self.owned.checked_add(n).ok_or(errno(ENOSPC))?;
        if total > self.write_limit {
            return Err(errno(ENOSPC));
        }
        if let Some(account) = &self.account {
            account.charge(n).map_err(|_| errno(ENOSPC))?;
        }
        self.owned = total;
        Ok(())
    }

    /// Gives back `n` owned bytes.
    fn uncharge(&mut self, n: u64) {
        let n = n.min(self.owned);
        self.owned -= n;
        if let Some(account) = &self.account {
            account.release(n);
        }
    }

    /// Charges `n` bytes to node `ino`'s own [`Node::charged`].
    fn charge_node(&mut self, ino: Ino, n: u64) -> Result<(), Errno> {
        self.charge(n)?;
        let node = self.node_mut(ino)?;
        node.charged = node.charged.saturating_add(n);
        Ok(())
    }

    /// Gives back up to `n` bytes of node `ino`'s own charge.
    fn uncharge_node(&mut self, ino: Ino, n: u64) -> Result<(), Errno> {
        let node = self.node_mut(ino)?;
        let n = n.min(node.charged);
        node.charged -= n;
        self.uncharge(n);
        Ok(())
    }

    /// Charges what the layer holds now, and everything it takes from now on, to `account`
    /// too (what it cannot take stays uncharged there; new charges then fail).
    pub fn charge_to(&mut self, account: &Rc<MemTotal>) {
        let _ = account.charge(self.owned);
        self.account = Some(Rc::clone(account));
    }

    /// Links `ino` into `parent` as `name` on the guest's behalf (charged [`NAME_COST`]).
    pub fn link_charged(&mut self, parent: Ino, name: Vec<u8>, ino: Ino) -> Result<(), Errno> {
        self.charge_node(ino, NAME_COST)?;
        self.link(parent, name, ino)
    }

    /// Writes a regular file at `pos` (zero-filling any gap). Writing nothing changes nothing,
    /// wherever `pos` is (as on Linux: a zero-length write past the end does not extend the
    /// file; it once did here, and the overlay, writing the same nothing at `pos`, lost the
    /// zeroes on reload).
    pub fn write_file(&mut self, ino: Ino, pos: u64, data: &[u8], host: Option<&fs::File>) -> Result<usize, Errno> {
        if data.is_empty() {
            return Ok(0);
        }
        let end = pos.checked_add(data.len() as u64).ok_or(errno(EFBIG))?;
        if end > MAX_FILE_SIZE {
            return Err(errno(EFBIG));
        }
        let old = self.owned(ino, host)?.len() as u64;
        if end > old {
            self.charge(end - old)?;
        }
        let clock = self.clock;
        let v = self.owned(ino, host)?;
        let (pos, end) = (pos as usize, end as usize);
        if v.len() < end {
            v.resize(end, 0);
        }
        v[pos..end].copy_from_slice(data);
        self.node_mut(ino)?.mtime = clock;
        Ok(data.len())
    }

    /// Sets a regular file's length (zero-filling when it grows).
    pub fn truncate(&mut self, ino: Ino, len: u64, host: Option<&fs::File>) -> Result<(), Errno> {
        if len > MAX_FILE_SIZE {
            return Err(errno(EFBIG));
        }
        if len == 0 {
            // No need to copy what is about to be dropped.
            let node = self.node_mut(ino)?;
            let old = match &node.kind {
                Kind::File(Data::Owned(v)) => v.len() as u64,
                Kind::File(_) => 0,
                _ => return Err(errno(EISDIR)),
            };
            node.kind = Kind::File(Data::Owned(Vec::new()));
            self.uncharge(old);
        } else {
            let old = self.owned(ino, host)?.len() as u64;
            if len > old {
                self.charge(len - old)?;
            } else {
                self.uncharge(old - len);
            }
            let v = self.owned(ino, host)?;
            v.resize(len as usize, 0);
            v.shrink_to_fit();
        }
        self.node_mut(ino)?.mtime = self.clock;
        Ok(())
    }

    /// Creates a node named `name` in `parent` for `ctx`.
    pub fn create(&mut self, parent: Ino, name: Vec<u8>, kind: Kind, perm: u16, ctx: &CallCtx) -> Result<Ino, Errno> {
        if name.contains(&b'\n') {
            // Could not be told apart in a directory listing.
            return Err(errno(EINVAL));
        }
        self.check(parent, ctx, W | X)?;
        let uid = ctx.uid;
        let gid = ctx.gid;
        let perm = perm & !(ctx.umask as u16) & 0o7777;
        let ino = self.alloc(Node::new(kind, perm, uid, gid, self.clock))?;
        if let Err(e) = self.link_charged(parent, name, ino) {
            self.maybe_free(ino);
            return Err(e);
        }
        self.node_mut(parent)?.mtime = self.clock;
        Ok(ino)
    }

    /// Removes entry `name` (naming `ino`) from `parent`: a whiteout if the parent mirrors a
    /// host directory.
    pub fn unlink_entry(&mut self, parent: Ino, name: &[u8], ino: Ino) -> Result<(), Errno> {
        self.take_entry(parent, name)?;
        self.uncharge_node(ino, NAME_COST)?;
        let node = self.node_mut(ino)?;
        node.nlink = node.nlink.saturating_sub(1);
        if node.is_dir() {
            node.nlink = 0;
        }
        self.maybe_free(ino);
        Ok(())
    }

    /// Moves the entry `name` (naming `ino`) of `parent` to `new_name` in `new_parent`
    /// (a whiteout is left if `parent` mirrors a host directory); link counts do not change.
    /// An entry already at the destination must have been unlinked first.
    pub fn move_entry(
        &mut self,
        parent: Ino,
        name: &[u8],
        new_parent: Ino,
        new_name: Vec<u8>,
        ino: Ino,
    ) -> Result<(), Errno> {
        if new_name.contains(&b'\n') {
            return Err(errno(EINVAL));
        }
        self.dir_mut(new_parent)?;
        self.take_entry(parent, name)?;
        self.dir_mut(new_parent)?.entries.insert(new_name, Entry::Node(ino));
        self.node_mut(new_parent)?.mtime = self.clock;
        Ok(())
    }

    /// Takes entry `name` out of `parent` (a whiteout if the parent mirrors a host
    /// directory that has that name, so whiteouts never outnumber host names) and touches
    /// the parent.
    fn take_entry(&mut self, parent: Ino, name: &[u8]) -> Result<(), Errno> {
        let clock = self.clock;
        let d = self.dir_mut(parent)?;
        // A host error keeps the whiteout: hiding too much is safe, showing too much is not.
        let on_host = d.host.as_ref().is_some_and(|h| !matches!(h.entry(name), Ok(None)));
        if on_host {
            d.entries.insert(name.to_vec(), Entry::Whiteout);
        } else {
            d.entries.remove(name);
        }
        self.node_mut(parent)?.mtime = clock;
        Ok(())
    }

    /// Kind of `ino` for quick checks.
    pub fn kind_of(&self, ino: Ino) -> Result<NodeType, Errno> {
        Ok(match &self.node(ino)?.kind {
            Kind::Dir(_) => NodeType::Dir,
            Kind::File(Data::Host(_)) => NodeType::HostFile,
            Kind::File(_) => NodeType::File,
            Kind::Symlink(_) => NodeType::Symlink,
            Kind::Special(_) => NodeType::Special,
        })
    }

    /// The host file behind `ino`, if its data still lives on the host.
    pub fn host_file(&self, ino: Ino) -> Result<Option<&HostFile>, Errno> {
        Ok(match &self.node(ino)?.kind {
            Kind::File(Data::Host(h)) => Some(h),
            _ => None,
        })
    }

    pub fn symlink_target(&self, ino: Ino) -> Result<&[u8], Errno> {
        match &self.node(ino)?.kind {
            Kind::Symlink(t) => Ok(t),
            _ => Err(errno(EINVAL)),
        }
    }

    /// Writes into a symlink's target as if it were a small file (how Redox creates links).
    pub fn write_symlink(&mut self, ino: Ino, pos: u64, data: &[u8]) -> Result<usize, Errno> {
        let end = pos.checked_add(data.len() as u64).ok_or(errno(EFBIG))?;
        if end > path::PATH_MAX as u64 {
            return Err(errno(warden_abi::ENAMETOOLONG));
        }
        let clock = self.clock;
        let old = self.size(ino)?;
        if end > old {
            self.charge_node(ino, end - old)?;
        }
        let node = self.node_mut(ino)?;
        let Kind::Symlink(t) = &mut node.kind else {
            return Err(errno(EINVAL));
        };
        let (pos, end) = (pos as usize, end as usize);
        if t.len() < end {
            t.resize(end, 0);
        }
        t[pos..end].copy_from_slice(data);
        node.mtime = clock;
        Ok(data.len())
    }

    pub fn truncate_symlink(&mut self, ino: Ino, len: u64) -> Result<(), Errno> {
        if len > path::PATH_MAX as u64 {
            return Err(errno(warden_abi::ENAMETOOLONG));
        }
        let old = self.size(ino)?;
        if len > old {
            self.charge_node(ino, len - old)?;
        } else {
            // Never below the charge for its names.
            let charged = self.node(ino)?.charged;
            self.uncharge_node(ino, (old - len).min(charged.saturating_sub(NAME_COST)))?;
        }
        let Kind::Symlink(t) = &mut self.node_mut(ino)?.kind else {
            return Err(errno(EINVAL));
        };
        t.resize(len as usize, 0);
        Ok(())
    }
}

/// Coarse node type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NodeType {
    Dir,
    File,
    HostFile,
    Symlink,
    Special,
}

/// Copies `bytes[pos..]` into `buf`; returns the count.
pub(crate) fn copy_out(bytes: &[u8], pos: u64, buf: &mut [u8]) -> usize {
    let Ok(pos) = usize::try_from(pos) else {
        return 0;
    };
    let Some(src) = bytes.get(pos..) else {
        return 0;
    };
    let n = src.len().min(buf.len());
    buf[..n].copy_from_slice(&src[..n]);
    n
}

/// Type bits for a host special file.
pub(crate) fn special_type(fifo: bool) -> u16 {
    if fifo {
        MODE_FIFO
    } else {
        MODE_CHR
    }
}
