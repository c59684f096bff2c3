//! Open `file:` descriptions.
//!
//! Design: a [`FileHandle`] names a node by inode and holds the shared tree, so it keeps
//! working after its path is unlinked (the node lives while `open > 0`). Contents are always
//! read through the node, so every open file sees copy-on-write promotions and writes made
//! through other descriptors. A handle on a host file carries its own host descriptor (opened
//! and identity-checked at open time). A directory handle snapshots its `'\n'`-separated
//! listing on first read or seek, so offsets stay meaningful across reads.

use std::cell::RefCell;
use std::fs;
use std::rc::Rc;

use warden_abi::{Errno, Stat, EBADF, EINVAL, EISDIR, SEEK_CUR, SEEK_END, SEEK_SET};

use super::tree::{copy_out, Ino, NodeType, Tree};
use crate::scheme::{FileOps, IoResult};

/// An open file of the `file:` scheme.
pub struct FileHandle {
    tree: Rc<RefCell<Tree>>,
    ino: Ino,
    /// `file:/abs/path`.
    path: Vec<u8>,
    /// The same path as names from the root (where the overlay keeps the file).
    names: Vec<Vec<u8>>,
    pos: u64,
    read: bool,
    write: bool,
    append: bool,
    host: Option<fs::File>,
    listing: Option<Vec<u8>>,
}

impl FileHandle {
    /// Wraps `ino` (whose open count the caller has already raised).
    pub(crate) fn new(
        tree: Rc<RefCell<Tree>>,
        ino: Ino,
        names: Vec<Vec<u8>>,
        (read, write, append): (bool, bool, bool),
        host: Option<fs::File>,
    ) -> FileHandle {
        let path = super::path::display(&names);
        FileHandle { tree, ino, path, names, pos: 0, read, write, append, host, listing: None }
    }

    /// Opens the host descriptor on demand (handles opened for `fstat` only have none).
    fn ensure_host(&mut self, tree: &Tree) -> Result<(), Errno> {
        if self.host.is_none() {
            if let Some(h) = tree.host_file(self.ino)? {
                self.host = Some(h.open()?);
            }
        }
        Ok(())
    }

    fn listing(&mut self) -> Result<&[u8], Errno> {
        if self.listing.is_none() {
            self.listing = Some(self.tree.borrow().listing(self.ino)?);
        }
        Ok(self.listing.as_deref().unwrap_or(&[]))
    }
}

impl FileOps for FileHandle {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        if !self.read {
            return Err(Errno(EBADF).into());
        }
        let ty = self.tree.borrow().kind_of(self.ino)?;
        let n = match ty {
            NodeType::Dir => {
                let pos = self.pos;
                copy_out(self.listing()?, pos, buf)
            }
            NodeType::File | NodeType::HostFile => {
                let tree = Rc::clone(&self.tree);
                let tree = tree.borrow();
                self.ensure_host(&tree)?;
                tree.read_file(self.ino, self.pos, buf, self.host.as_ref())?
            }
            NodeType::Symlink => copy_out(self.tree.borrow().symlink_target(self.ino)?, self.pos, buf),
            NodeType::Special => return Err(Errno(EBADF).into()),
        };
        self.pos += n as u64;
        Ok(n)
    }

    fn write(&mut self, buf: &[u8]) -> IoResult<usize> {
        let tree = Rc::clone(&self.tree);
        let mut tree = tree.borrow_mut();
        let ty = tree.kind_of(self.ino)?;
        if ty == NodeType::Dir {
            return Err(Errno(EISDIR).into());
        }
        if !self.write {
            return Err(Errno(EBADF).into());
        }
        let n = match ty {
            NodeType::Dir => return Err(Errno(EISDIR).into()),
            NodeType::Special => return Err(Errno(EBADF).into()),
            NodeType::File | NodeType::HostFile => {
                self.ensure_host(&tree)?;
                if self.append {
                    self.pos = tree.size(self.ino)?;
                }
                let n = tree.write_file(self.ino, self.pos, buf, self.host.as_ref())?;
                tree.overlay_write(self.ino, &self.names, self.pos, Some(&buf[..n]))?;
                n
            }
            NodeType::Symlink => {
                if self.append {
                    self.pos = tree.size(self.ino)?;
                }
                let n = tree.write_symlink(self.ino, self.pos, buf)?;
                tree.overlay_symlink(self.ino, &self.names)?;
                n
            }
        };
        self.pos += n as u64;
        Ok(n)
    }

    fn seek(&mut self, offset: i64, whence: usize) -> Result<u64, Errno> {
        let base: u64 = match whence {
            SEEK_SET => 0,
            SEEK_CUR => self.pos,
            SEEK_END => {
                if self.tree.borrow().kind_of(self.ino)? == NodeType::Dir {
                    self.listing()?.len() as u64
                } else {
                    self.tree.borrow().size(self.ino)?
                }
            }
            _ => return Err(Errno(EINVAL)),
        };
        let base = i64::try_from(base).map_err(|_| Errno(EINVAL))?;
        let new = base.checked_add(offset).ok_or(Errno(EINVAL))?;
        let new = u64::try_from(new).map_err(|_| Errno(EINVAL))?;
        self.pos = new;
        Ok(new)
    }

    fn stat(&self) -> Result<Stat, Errno> {
        self.tree.borrow().stat(self.ino)
    }

    fn path(&self) -> Vec<u8> {
        self.path.clone()
    }

    fn truncate(&mut self, len: u64) -> Result<(), Errno> {
        if !self.write {
            return Err(Errno(EINVAL));
        }
        let tree = Rc::clone(&self.tree);
        let mut tree = tree.borrow_mut();
        match tree.kind_of(self.ino)? {
            NodeType::Dir => Err(Errno(EISDIR)),
            NodeType::Special => Err(Errno(EINVAL)),
            NodeType::Symlink => {
                tree.truncate_symlink(self.ino, len)?;
                tree.overlay_symlink(self.ino, &self.names)
            }
            NodeType::File | NodeType::HostFile => {
                self.ensure_host(&tree)?;
                tree.truncate(self.ino, len, self.host.as_ref())?;
                tree.overlay_write(self.ino, &self.names, 0, None)
            }
        }
    }

    fn sync(&mut self) -> Result<(), Errno> {
        self.tree.borrow_mut().overlay_sync(self.ino, &self.names)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Option<Result<usize, Errno>> {
        let tree = self.tree.borrow();
        match tree.kind_of(self.ino) {
            Ok(NodeType::File) => Some(tree.read_file(self.ino, offset, buf, None)),
            Ok(NodeType::HostFile) => Some(match &self.host {
                Some(f) => tree.read_file(self.ino, offset, buf, Some(f)),
                None => tree
                    .host_file(self.ino)
                    .and_then(|h| h.ok_or(Errno(EBADF)))
                    .and_then(super::host::HostFile::open)
                    .and_then(|f| tree.read_file(self.ino, offset, buf, Some(&f))),
            }),
            _ => None,
        }
    }
}

impl Drop for FileHandle {
    fn drop(&mut self) {
        if let Ok(mut tree) = self.tree.try_borrow_mut() {
            tree.release(self.ino);
        }
    }
}
