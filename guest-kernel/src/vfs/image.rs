//! Reading a tar image into the tree.
//!
//! Design: the archive is walked block by block over the image bytes (a memory map or a
//! static slice); `tar::Header` gives typed access to each 512-byte header's fields and the
//! numeric fields are decoded here, strictly (octal digits padded with spaces/NULs, or GNU
//! base-256; anything else is an error). Regular files become `(offset, len)` ranges of the
//! image: no file contents are copied. Supported: ustar, GNU (`L`/`K` long names) and pax
//! (`x` records `path`, `linkpath`, `size`, `mtime`, `uid`, `gid`; `g` global headers are
//! checked and ignored). Device and FIFO entries are skipped; sparse and other exotic types
//! are rejected.
//!
//! Every problem is an [`ImageError`], never a panic, and nothing can land outside the tree:
//! absolute paths, `..` components, NUL bytes, over-long names or paths, excessive depth,
//! duplicate entries, too many entries, hard links to missing files or to directories,
//! sizes past the end, bad checksums and a missing end-of-archive marker are all rejected.
//! Intermediate directories missing from the archive are created (mode 0755, owner 0,
//! mtime 0). Existing tree components are never followed through symlinks while building.

use std::collections::HashSet;
use std::path::PathBuf;

use super::path::{NAME_MAX, PATH_MAX};
use super::tree::{Data, Dir, Entry, Ino, Kind, Node, Tree, ROOT};

/// Most entries (headers of any kind) an image may hold.
pub const MAX_ENTRIES: usize = 1 << 20;
/// Deepest path (in components) an image may hold.
pub const MAX_DEPTH: usize = 256;
/// Largest GNU long name or pax header accepted.
pub const MAX_EXTENSION: u64 = 1 << 20;

const BLOCK: usize = 512;

/// Why an image could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The image file or host root could not be opened or mapped.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `--overlay` names the root directory or a directory above it.
    #[error("{} holds the root directory: the guest would see its own writes as the read-only root", path.display())]
    OverlayHoldsRoot { path: PathBuf },
    /// `--root` names something other than a directory.
    #[error("{} is not a directory", path.display())]
    NotADirectory { path: PathBuf },
    /// A header or data block runs past the end of the image.
    #[error("truncated image: {what} at byte {offset} runs past the end of the {len}-byte image")]
    Truncated { what: &'static str, offset: u64, len: u64 },
    /// A header is malformed.
    #[error("malformed image: header at byte {offset}: {reason}")]
    BadHeader { offset: u64, reason: String },
    /// An entry's path or link target is unacceptable.
    #[error("malformed image: entry at byte {offset} (`{path}`): {reason}")]
    BadPath { offset: u64, path: String, reason: String },
    /// Two entries name the same path.
    #[error("malformed image: entry at byte {offset}: duplicate entry `{path}`")]
    Duplicate { offset: u64, path: String },
    /// An entry type this reader does not support.
    #[error("unsupported image entry at byte {offset}: {what}")]
    Unsupported { offset: u64, what: String },
    /// A size limit was exceeded.
    #[error("image exceeds a limit: {what} (limit {limit})")]
    Limit { what: &'static str, limit: u64 },
}

fn lossy(b: &[u8]) -> String {
    // Control characters (a newline in a name) are escaped: the message stays one line.
    let s = crate::escape_controls(&String::from_utf8_lossy(b));
    if s.len() > 200 {
        let mut end = 200;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &s[..end])
    } else {
        s
    }
}

/// Parses a numeric header field: octal (leading spaces, then digits, then only spaces or
/// NULs) or GNU base-256 (high bit of the first byte set; negative values rejected).
pub(crate) fn parse_num(field: &[u8]) -> Option<u64> {
    let first = *field.first()?;
    if first & 0x80 != 0 {
        if first & 0x40 != 0 {
            return None; // negative
        }
        let mut v: u64 = u64::from(first & 0x3f);
        for &b in &field[1..] {
            if v >> 56 != 0 {
                return None;
            }
            v = (v << 8) | u64::from(b);
        }
        return Some(v);
    }
    let mut i = 0;
    while i < field.len() && field[i] == b' ' {
        i += 1;
    }
    let mut v: u64 = 0;
    while i < field.len() && (b'0'..=b'7').contains(&field[i]) {
        v = v.checked_mul(8)?.checked_add(u64::from(field[i] - b'0'))?;
        i += 1;
    }
    // An empty field (all NUL or spaces) reads as 0, as GNU tar and Python's
    // tarfile read it; some writers leave unused numeric fields empty.
    if !field[i..].iter().all(|&b| b == b' ' || b == 0) {
        return None;
    }
    Some(v)
}

/// A strict decimal number (pax values).
fn parse_dec(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let mut v: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(v)
}

/// One pax record: key and value.
type PaxRecord<'a> = (&'a [u8], &'a [u8]);

/// Splits pax extended-header records (`"<len> <key>=<value>\n"`).
pub(crate) fn parse_pax(mut data: &[u8]) -> Result<Vec<PaxRecord<'_>>, &'static str> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let sp = data.iter().take(21).position(|&b| b == b' ').ok_or("pax record without a length")?;
        let len = parse_dec(&data[..sp]).ok_or("bad pax record length")?;
        let len = usize::try_from(len).map_err(|_| "bad pax record length")?;
        if len <= sp + 2 || len > data.len() {
            return Err("pax record length out of range");
        }
        let record = &data[..len];
        if record[len - 1] != b'\n' {
            return Err("pax record not ended by a newline");
        }
        let kv = &record[sp + 1..len - 1];
        let eq = kv.iter().position(|&b| b == b'=').ok_or("pax record without '='")?;
        out.push((&kv[..eq], &kv[eq + 1..]));
        data = &data[len..];
    }
    Ok(out)
}

/// Validates an archive path and splits it into names (root = empty).
fn split_path(raw: &[u8]) -> Result<Vec<&[u8]>, String> {
    if raw.is_empty() {
        return Err("empty path".into());
    }
    if raw.len() > PATH_MAX {
        return Err(format!("path longer than {PATH_MAX} bytes"));
    }
    if raw.contains(&0) {
        return Err("NUL byte in path".into());
    }
    if raw[0] == b'/' {
        return Err("absolute path".into());
    }
    let mut names = Vec::new();
    for part in raw.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return Err("`..` component".into()),
            name if name.len() > NAME_MAX => return Err(format!("name longer than {NAME_MAX} bytes")),
            name if name.contains(&b'\n') => return Err("newline in name".into()),
            name => names.push(name),
        }
    }
    if names.len() > MAX_DEPTH {
        return Err(format!("deeper than {MAX_DEPTH} components"));
    }
    Ok(names)
}

/// Extension data collected for the next member.
#[derive(Default)]
struct Pending {
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
    pax: bool,
    path: Option<Vec<u8>>,
    linkpath: Option<Vec<u8>>,
    size: Option<u64>,
    mtime: Option<u64>,
    uid: Option<u64>,
    gid: Option<u64>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.long_name.is_none() && self.long_link.is_none() && !self.pax
    }
}

/// What a member header describes.
enum Member {
    File,
    Dir,
    Symlink,
    HardLink,
    Skip,
}

/// Parses the image held by `tree` into it (the tree starts as a bare root).
pub(crate) fn load(tree: &mut Tree) -> Result<(), ImageError> {
    // The image is moved out while the tree is built, so its bytes can be borrowed freely.
    let image = std::mem::replace(&mut tree.image, super::tree::ImageBytes::None);
    let result = Loader { tree, explicit: HashSet::new() }.run(image.bytes());
    tree.image = image;
    result
}

struct Loader<'t> {
    tree: &'t mut Tree,
    /// Nodes created by an entry of their own (implicit directories are not).
    explicit: HashSet<Ino>,
}

impl Loader<'_> {
    fn run(&mut self, bytes: &[u8]) -> Result<(), ImageError> {
        let len = bytes.len();
        let mut off = 0usize;
        let mut pending = Pending::default();
        let mut headers = 0usize;
        loop {
            let Some(block) = off.checked_add(BLOCK).and_then(|end| bytes.get(off..end)) else {
                return Err(ImageError::Truncated {
                    what: if off >= len && pending.is_empty() { "end-of-archive marker" } else { "header" },
                    offset: off as u64,
                    len: len as u64,
                });
            };
            if block.iter().all(|&b| b == 0) {
                if !pending.is_empty() {
                    return Err(ImageError::BadHeader {
                        offset: off as u64,
                        reason: "extension header not followed by a member".into(),
                    });
                }
                return Ok(());
            }
            headers += 1;
            if headers > MAX_ENTRIES {
                return Err(ImageError::Limit { what: "number of entries", limit: MAX_ENTRIES as u64 });
            }
            let mut header = tar::Header::new_old();
            header.as_mut_bytes().copy_from_slice(block);
            let at = off as u64;
            let bad = |reason: &str| ImageError::BadHeader { offset: at, reason: reason.to_string() };
            check_checksum(block).map_err(bad)?;
            check_magic(block).map_err(bad)?;
            let old = header.as_old();
            let typeflag = old.linkflag[0];
            let is_ext = matches!(typeflag, b'L' | b'K' | b'x' | b'g');
            let mut size = parse_num(&old.size).ok_or_else(|| bad("bad size field"))?;
            if !is_ext {
                if let Some(s) = pending.size {
                    size = s;
                }
            }
            let data_start = off + BLOCK;
            let data_end = usize::try_from(size)
                .ok()
                .and_then(|s| data_start.checked_add(s))
                .filter(|&end| end <= len)
                .ok_or(ImageError::Truncated { what: "entry data", offset: at, len: len as u64 })?;
            let data = &bytes[data_start..data_end];
            let next = data_end.checked_add(BLOCK - 1).map(|n| n & !(BLOCK - 1)).ok_or(ImageError::Truncated {
                what: "entry data",
                offset: at,
                len: len as u64,
            })?;
            let ext_data = || -> Result<&[u8], ImageError> {
                if size > MAX_EXTENSION {
                    return Err(ImageError::Limit { what: "extension header size", limit: MAX_EXTENSION });
                }
                Ok(data)
            };
            match typeflag {
                b'L' | b'K' => {
                    let mut name = ext_data()?.to_vec();
                    while name.last() == Some(&0) {
                        name.pop();
                    }
                    let slot = if typeflag == b'L' { &mut pending.long_name } else { &mut pending.long_link };
                    if slot.is_some() {
                        return Err(bad("two GNU long-name headers for one member"));
                    }
                    *slot = Some(name);
                }
                b'x' => {
                    if pending.pax {
                        return Err(bad("two pax headers for one member"));
                    }
                    pending.pax = true;
                    apply_pax(&mut pending, ext_data()?).map_err(|r| bad(&r))?;
                }
                b'g' => {
                    parse_pax(ext_data()?).map_err(bad)?;
                }
                _ => {
                    let member = match typeflag {
                        b'0' | 0 | b'7' => Member::File,
                        b'1' => Member::HardLink,
                        b'2' => Member::Symlink,
                        b'5' => Member::Dir,
                        b'3' | b'4' | b'6' => Member::Skip,
                        b'S' => return Err(ImageError::Unsupported { offset: at, what: "GNU sparse file".into() }),
                        t => {
                            return Err(ImageError::Unsupported {
                                offset: at,
                                what: format!("entry type {:?}", char::from(t)),
                            })
                        }
                    };
                    let p = std::mem::take(&mut pending);
                    self.member(&header, member, p, at, data_start, size as usize)?;
                }
            }
            off = next;
        }
    }

    fn member(
        &mut self,
        header: &tar::Header,
        mut member: Member,
        p: Pending,
        at: u64,
        data_start: usize,
        size: usize,
    ) -> Result<(), ImageError> {
        let old = header.as_old();
        let raw_path: Vec<u8> = match (p.path, p.long_name) {
            (Some(path), _) => path,
            (None, Some(name)) => name,
            (None, None) => header.path_bytes().into_owned(),
        };
        let bad_path = |reason: String| ImageError::BadPath { offset: at, path: lossy(&raw_path), reason };
        let names = split_path(&raw_path).map_err(bad_path)?;
        if matches!(member, Member::File) && raw_path.last() == Some(&b'/') {
            member = Member::Dir; // old-style directory entry
        }
        let bad = |reason: &str| ImageError::BadHeader { offset: at, reason: reason.to_string() };
        let mode = parse_num(&old.mode).ok_or_else(|| bad("bad mode field"))?;
        let uid = match p.uid {
            Some(v) => v,
            None => parse_num(&old.uid).ok_or_else(|| bad("bad uid field"))?,
        };
        let gid = match p.gid {
            Some(v) => v,
            None => parse_num(&old.gid).ok_or_else(|| bad("bad gid field"))?,
        };
        let mtime = match p.mtime {
            Some(v) => v,
            None => parse_num(&old.mtime).ok_or_else(|| bad("bad mtime field"))?,
        };
        let uid = u32::try_from(uid).map_err(|_| bad("uid out of range"))?;
        let gid = u32::try_from(gid).map_err(|_| bad("gid out of range"))?;
        let perm = (mode & 0o7777) as u16;
        let link: Option<Vec<u8>> = match (p.linkpath, p.long_link) {
            (Some(l), _) => Some(l),
            (None, Some(l)) => Some(l),
            (None, None) => header.link_name_bytes().map(|c| c.into_owned()),
        };

        if let Member::Skip = member {
            return Ok(());
        }
        // The root itself ("./").
        let Some((last, dirs)) = names.split_last() else {
            if !matches!(member, Member::Dir) {
                return Err(bad_path("the root must be a directory".into()));
            }
            if !self.explicit.insert(ROOT) {
                return Err(ImageError::Duplicate { offset: at, path: lossy(&raw_path) });
            }
            let root = self.node_mut(ROOT)?;
            root.perm = perm;
            root.uid = uid;
            root.gid = gid;
            root.mtime = mtime;
            return Ok(());
        };
        let parent = self.ensure_dirs(dirs, at, &raw_path)?;
        let existing = match self.dir(parent)?.entries.get(*last) {
            Some(Entry::Node(ino)) => Some(*ino),
            _ => None,
        };
        let duplicate = || ImageError::Duplicate { offset: at, path: lossy(&raw_path) };
        let kind = match member {
            Member::Dir => {
                if let Some(ino) = existing {
                    if !self.tree.node(ino).is_ok_and(Node::is_dir) || !self.explicit.insert(ino) {
                        return Err(duplicate());
                    }
                    let node = self.node_mut(ino)?;
                    node.perm = perm;
                    node.uid = uid;
                    node.gid = gid;
                    node.mtime = mtime;
                    return Ok(());
                }
                Kind::Dir(Dir::default())
            }
            Member::File => Kind::File(Data::Image { start: data_start, len: size }),
            Member::Symlink => {
                let target = link.ok_or_else(|| bad_path("symlink without a target".into()))?;
                if target.is_empty() || target.len() > PATH_MAX || target.contains(&0) {
                    return Err(bad_path("bad symlink target".into()));
                }
                Kind::Symlink(target)
            }
            Member::HardLink => {
                if existing.is_some() {
                    return Err(duplicate());
                }
                let target = link.ok_or_else(|| bad_path("hard link without a target".into()))?;
                let target_names = split_path(&target).map_err(|r| bad_path(format!("hard link target: {r}")))?;
                let ino = self.find(&target_names).ok_or_else(|| bad_path("hard link target not found".into()))?;
                if self.tree.node(ino).map_or(true, Node::is_dir) {
                    return Err(bad_path("hard link to a directory".into()));
                }
                self.tree
                    .link(parent, last.to_vec(), ino)
                    .map_err(|_| bad_path("hard link target is not in a directory".into()))?;
                self.explicit.insert(ino);
                return Ok(());
            }
            Member::Skip => return Ok(()),
        };
        if existing.is_some() {
            return Err(duplicate());
        }
        let ino = self.new_node(Node::new(kind, perm, uid, gid, mtime))?;
        self.explicit.insert(ino);
        self.tree.link(parent, last.to_vec(), ino).map_err(|_| bad_path("parent is not a directory".into()))?;
        Ok(())
    }

    fn new_node(&mut self, node: Node) -> Result<Ino, ImageError> {
        if self.tree.live_nodes() >= MAX_ENTRIES {
            return Err(ImageError::Limit { what: "number of entries", limit: MAX_ENTRIES as u64 });
        }
        self.tree
            .alloc(node)
            .map_err(|_| ImageError::Limit { what: "number of nodes", limit: self.tree.node_limit as u64 })
    }

    fn node_mut(&mut self, ino: Ino) -> Result<&mut Node, ImageError> {
        self.tree.node_mut(ino).map_err(|_| internal())
    }

    fn dir(&self, ino: Ino) -> Result<&Dir, ImageError> {
        match self.tree.node(ino).map(|n| &n.kind) {
            Ok(Kind::Dir(d)) => Ok(d),
            _ => Err(internal()),
        }
    }

    /// Walks `names` from the root, creating missing directories; never follows symlinks.
    fn ensure_dirs(&mut self, names: &[&[u8]], at: u64, raw: &[u8]) -> Result<Ino, ImageError> {
        let mut cur = ROOT;
        for name in names {
            let existing = match self.dir(cur)?.entries.get(*name) {
                Some(Entry::Node(ino)) => Some(*ino),
                _ => None,
            };
            cur = match existing {
                Some(ino) if self.tree.node(ino).is_ok_and(Node::is_dir) => ino,
                Some(_) => {
                    return Err(ImageError::BadPath {
                        offset: at,
                        path: lossy(raw),
                        reason: format!("`{}` is not a directory", lossy(name)),
                    })
                }
                None => {
                    let ino = self.new_node(Node::new(Kind::Dir(Dir::default()), 0o755, 0, 0, 0))?;
                    self.tree.link(cur, name.to_vec(), ino).map_err(|_| internal())?;
                    ino
                }
            };
        }
        Ok(cur)
    }

    /// Finds an existing path without following symlinks.
    fn find(&self, names: &[&[u8]]) -> Option<Ino> {
        let mut cur = ROOT;
        for name in names {
            match self.dir(cur).ok()?.entries.get(*name) {
                Some(Entry::Node(ino)) => cur = *ino,
                _ => return None,
            }
        }
        Some(cur)
    }
}

fn internal() -> ImageError {
    ImageError::BadHeader { offset: 0, reason: "internal inconsistency while indexing the image".into() }
}

/// Verifies the header checksum (unsigned sum, or the signed sum some old tars wrote).
fn check_checksum(block: &[u8]) -> Result<(), &'static str> {
    let stored = parse_num(&block[148..156]).ok_or("bad checksum field")?;
    let mut unsigned: u64 = 0;
    let mut signed: i64 = 0;
    for (i, &b) in block.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += u64::from(b);
        signed += i64::from(b as i8);
    }
    if stored == unsigned || i64::try_from(stored) == Ok(signed) {
        Ok(())
    } else {
        Err("header checksum mismatch")
    }
}

/// Accepts ustar (`"ustar\0"`, `"00"`), GNU (`"ustar "`, `" \0"`) and v7 (no magic) headers.
fn check_magic(block: &[u8]) -> Result<(), &'static str> {
    let magic = &block[257..263];
    let version = &block[263..265];
    match (magic, version) {
        (b"ustar\0", b"00") | (b"ustar ", b" \0") => Ok(()),
        (m, v) if m.iter().chain(v).all(|&b| b == 0) => Ok(()),
        _ => Err("unknown header magic"),
    }
}

/// Applies the records of a pax `x` header to `p`.
fn apply_pax(p: &mut Pending, data: &[u8]) -> Result<(), String> {
    for (key, value) in parse_pax(data)? {
        let num = |what: &str| parse_dec(value).ok_or(format!("bad pax {what}"));
        if value.is_empty() {
            continue; // an empty value removes the keyword
        }
        match key {
            b"path" => p.path = Some(value.to_vec()),
            b"linkpath" => p.linkpath = Some(value.to_vec()),
            b"size" => p.size = Some(num("size")?),
            b"uid" => p.uid = Some(num("uid")?),
            b"gid" => p.gid = Some(num("gid")?),
            b"mtime" => {
                let secs = value.split(|&b| b == b'.').next().unwrap_or(value);
                p.mtime = Some(parse_dec(secs).ok_or("bad pax mtime")?);
            }
            k if k.starts_with(b"GNU.sparse.") => return Err("GNU sparse files are not supported".into()),
            _ => {}
        }
    }
    Ok(())
}
