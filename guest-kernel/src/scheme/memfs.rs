//! `MemFs`: a tiny in-memory file system implementing [`Scheme`], for tests
//! and small embedders (the real `file:` scheme lives in `vfs`).
//!
//! Files are byte vectors keyed by their path without leading or trailing
//! slashes; directories exist implicitly as prefixes of file paths, or
//! explicitly after `mkdir`. Reading a directory gives its entry names
//! separated by `'\n'`. Files are shared: every open of a path sees the same
//! bytes.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use warden_abi::*;

use super::{CallCtx, FileOps, FileRef, IoResult, Scheme};

type Data = Rc<RefCell<Vec<u8>>>;

/// Largest file a `MemFs` holds.
const MAX_FILE: usize = 256 << 20;

#[derive(Default)]
struct Tree {
    files: BTreeMap<Vec<u8>, (Data, u16)>,
    dirs: BTreeSet<Vec<u8>>,
}

impl Tree {
    fn is_dir(&self, path: &[u8]) -> bool {
        if path.is_empty() || self.dirs.contains(path) {
            return true;
        }
        let mut prefix = path.to_vec();
        prefix.push(b'/');
        self.files.keys().chain(self.dirs.iter()).any(|k| k.starts_with(&prefix))
    }

    fn list(&self, path: &[u8]) -> Vec<u8> {
        let mut prefix = path.to_vec();
        if !prefix.is_empty() {
            prefix.push(b'/');
        }
        let mut names = BTreeSet::new();
        for k in self.files.keys().chain(self.dirs.iter()) {
            if let Some(rest) = k.strip_prefix(prefix.as_slice()) {
                let name = rest.split(|&b| b == b'/').next().unwrap_or(rest);
                if !name.is_empty() {
                    names.insert(name.to_vec());
                }
            }
        }
        let mut out = Vec::new();
        for n in names {
            out.extend_from_slice(&n);
            out.push(b'\n');
        }
        out
    }
}

/// An in-memory file system.
#[derive(Clone, Default)]
pub struct MemFs {
    tree: Rc<RefCell<Tree>>,
}

fn key(path: &[u8]) -> Vec<u8> {
    let mut p = path;
    while let Some(rest) = p.strip_prefix(b"/") {
        p = rest;
    }
    while let Some(rest) = p.strip_suffix(b"/") {
        p = rest;
    }
    p.to_vec()
}

impl MemFs {
    pub fn new() -> MemFs {
        MemFs::default()
    }

    /// Adds (or replaces) a file with mode 0o755.
    pub fn insert(&self, path: &str, data: &[u8]) {
        self.tree.borrow_mut().files.insert(key(path.as_bytes()), (Rc::new(RefCell::new(data.to_vec())), 0o755));
    }

    /// The contents of a file, if it exists.
    pub fn get(&self, path: &str) -> Option<Vec<u8>> {
        self.tree.borrow().files.get(&key(path.as_bytes())).map(|(d, _)| d.borrow().clone())
    }
}

impl Scheme for MemFs {
    fn open(&mut self, path: &[u8], flags: usize, ctx: &CallCtx) -> Result<FileRef, Errno> {
        let k = key(path);
        let mut tree = self.tree.borrow_mut();
        let full = {
            let mut p = b"file:/".to_vec();
            p.extend_from_slice(&k);
            p
        };
        if tree.is_dir(&k) && !tree.files.contains_key(&k) {
            if flags & O_CREAT != 0 && flags & O_EXCL != 0 {
                return Err(Errno(EEXIST));
            }
            let listing = tree.list(&k);
            return Ok(Rc::new(RefCell::new(MemFile {
                data: Rc::new(RefCell::new(listing)),
                pos: 0,
                path: full,
                mode: MODE_DIR | 0o755,
            })));
        }
        if flags & O_DIRECTORY != 0 && flags & O_CREAT != 0 {
            if tree.files.contains_key(&k) {
                return Err(Errno(EEXIST));
            }
            tree.dirs.insert(k);
            return Ok(Rc::new(RefCell::new(MemFile {
                data: Rc::new(RefCell::new(Vec::new())),
                pos: 0,
                path: full,
                mode: MODE_DIR | 0o755,
            })));
        }
        let (data, perm) = match tree.files.get(&k) {
            Some(_) if flags & O_CREAT != 0 && flags & O_EXCL != 0 => return Err(Errno(EEXIST)),
            Some(_) if flags & O_DIRECTORY != 0 => return Err(Errno(ENOTDIR)),
            Some((d, m)) => (d.clone(), *m),
            None if flags & O_CREAT != 0 => {
                let parent = match k.iter().rposition(|&b| b == b'/') {
                    Some(i) => k[..i].to_vec(),
                    None => Vec::new(),
                };
                if !tree.is_dir(&parent) {
                    return Err(Errno(ENOENT));
                }
                let mode = ((flags & O_MODE_MASK) as u16 & !(ctx.umask as u16)) & MODE_PERM;
                let d: Data = Rc::new(RefCell::new(Vec::new()));
                tree.files.insert(k.clone(), (d.clone(), mode));
                (d, mode)
            }
            None => return Err(Errno(ENOENT)),
        };
        if flags & O_TRUNC != 0 {
            data.borrow_mut().clear();
        }
        Ok(Rc::new(RefCell::new(MemFile { data, pos: 0, path: full, mode: MODE_FILE | perm })))
    }

    fn unlink(&mut self, path: &[u8], _ctx: &CallCtx) -> Result<(), Errno> {
        let k = key(path);
        let mut tree = self.tree.borrow_mut();
        if tree.files.remove(&k).is_some() {
            Ok(())
        } else if tree.is_dir(&k) {
            Err(Errno(EISDIR))
        } else {
            Err(Errno(ENOENT))
        }
    }

    fn rmdir(&mut self, path: &[u8], _ctx: &CallCtx) -> Result<(), Errno> {
        let k = key(path);
        let mut tree = self.tree.borrow_mut();
        if tree.files.contains_key(&k) {
            return Err(Errno(ENOTDIR));
        }
        if !tree.is_dir(&k) {
            return Err(Errno(ENOENT));
        }
        if !tree.list(&k).is_empty() {
            return Err(Errno(ENOTEMPTY));
        }
        tree.dirs.remove(&k);
        Ok(())
    }
}

struct MemFile {
    data: Data,
    pos: usize,
    path: Vec<u8>,
    mode: u16,
}

impl FileOps for MemFile {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        let data = self.data.borrow();
        let rest = data.get(self.pos..).unwrap_or(&[]);
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.pos += n;
        Ok(n)
    }

    fn write(&mut self, buf: &[u8]) -> IoResult<usize> {
        if self.mode & MODE_TYPE == MODE_DIR {
            return Err(Errno(EISDIR).into());
        }
        let mut data = self.data.borrow_mut();
        let end = self.pos.checked_add(buf.len()).filter(|&e| e <= MAX_FILE).ok_or(Errno(EFBIG))?;
        if end > data.len() {
            data.resize(end, 0);
        }
        data[self.pos..end].copy_from_slice(buf);
        self.pos = end;
        Ok(buf.len())
    }

    fn seek(&mut self, offset: i64, whence: usize) -> Result<u64, Errno> {
        let base = match whence {
            SEEK_SET => 0i64,
            SEEK_CUR => self.pos as i64,
            SEEK_END => self.data.borrow().len() as i64,
            _ => return Err(Errno(EINVAL)),
        };
        let pos = base.checked_add(offset).filter(|&p| (0..(1 << 40)).contains(&p)).ok_or(Errno(EINVAL))?;
        self.pos = pos as usize;
        Ok(pos as u64)
    }

    fn stat(&self) -> Result<Stat, Errno> {
        Ok(Stat {
            st_mode: self.mode,
            st_nlink: 1,
            st_size: self.data.borrow().len() as u64,
            st_blksize: 4096,
            ..Stat::default()
        })
    }

    fn path(&self) -> Vec<u8> {
        self.path.clone()
    }

    fn truncate(&mut self, len: u64) -> Result<(), Errno> {
        if len > MAX_FILE as u64 {
            return Err(Errno(EFBIG));
        }
        self.data.borrow_mut().resize(len as usize, 0);
        Ok(())
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Option<Result<usize, Errno>> {
        if self.mode & MODE_TYPE != MODE_FILE {
            return None;
        }
        let data = self.data.borrow();
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(data.len());
        let n = (data.len() - start).min(buf.len());
        buf[..n].copy_from_slice(&data[start..start + n]);
        Some(Ok(n))
    }
}
