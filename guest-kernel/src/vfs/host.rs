//! The host-directory lower layer (`--root DIR`): read-only access to host files.
//!
//! Design: the resolver in `tree.rs` never hands a guest path to the host. It calls
//! [`lstat_node`] with a host directory it has already resolved and one validated name (no
//! `/`, not `.` or `..`, no NUL), so every host path is `root/c1/c2/...` made of components
//! that were each `lstat`ed as real directories. Symbolic links are read with `readlink` and
//! resolved by the tree inside the guest namespace. Only regular files are ever opened, with
//! `O_NOFOLLOW | O_NONBLOCK` where the platform is known, and the opened file must be the
//! very file (`st_dev`, `st_ino`) the `lstat` saw; devices, FIFOs and sockets are never
//! opened (a FIFO would block the emulator). Nothing here creates, writes or removes host
//! files.
//!
//! Residual risk: another *host* process that swaps a directory for a symlink between two
//! component lookups could redirect a lookup; the guest itself cannot do that (the host tree
//! is read-only to it).

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use warden_abi::{Errno, EACCES, EIO, ENOENT, MAX_ERRNO};

use super::tree::{special_type, Data, Dir, HostFile, Kind, Node};

/// Linux x86-64 `O_NOFOLLOW | O_NONBLOCK`; 0 elsewhere (the identity check still applies).
#[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "x86")))]
const OPEN_FLAGS: i32 = 0o400000 | 0o4000;
#[cfg(not(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "x86"))))]
const OPEN_FLAGS: i32 = 0;

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

/// Builds the node for host entry `name` of the resolved host directory `dir`, or `None`
/// if there is no such entry.
pub(crate) fn lstat_node(dir: &Path, name: &[u8]) -> Result<Option<Node>, Errno> {
    let path = dir.join(OsStr::from_bytes(name));
    let meta = match fs::symlink_metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(errno_of(&e)),
    };
    let ft = meta.file_type();
    let kind = if ft.is_dir() {
        Kind::Dir(Dir { host: Some(path), ..Dir::default() })
    } else if ft.is_file() {
        Kind::File(Data::Host(HostFile { path, len: meta.len(), dev: meta.dev(), ino: meta.ino() }))
    } else if ft.is_symlink() {
        let target = fs::read_link(&path).map_err(|e| errno_of(&e))?;
        Kind::Symlink(target.as_os_str().as_bytes().to_vec())
    } else {
        use std::os::unix::fs::FileTypeExt;
        Kind::Special(special_type(ft.is_fifo()))
    };
    Ok(Some(host_node(kind, &meta)))
}

/// A node with the host metadata's permissions, owner and mtime.
pub(crate) fn host_node(kind: Kind, meta: &fs::Metadata) -> Node {
    let uid = meta.uid();
    let gid = meta.gid();
    let mtime = u64::try_from(meta.mtime()).unwrap_or(0);
    let mut node = Node::new(kind, (meta.mode() & 0o7777) as u16, uid, gid, mtime);
    if node.is_dir() {
        node.host_nlink = u32::try_from(meta.nlink()).unwrap_or(u32::MAX);
    }
    node
}

/// The names in a host directory (names containing `'\n'` are left out: a listing could
/// not represent them).
pub(crate) fn list(dir: &Path) -> Result<Vec<Vec<u8>>, Errno> {
    let rd = fs::read_dir(dir).map_err(|e| errno_of(&e))?;
    let mut names = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| errno_of(&e))?;
        let name = entry.file_name().as_bytes().to_vec();
        if !name.contains(&b'\n') {
            names.push(name);
        }
    }
    Ok(names)
}

/// Opens the host file for reading, checking it is still the regular file `lstat` saw.
pub(crate) fn open(file: &HostFile) -> Result<fs::File, Errno> {
    let f = fs::OpenOptions::new().read(true).custom_flags(OPEN_FLAGS).open(&file.path).map_err(|e| errno_of(&e))?;
    let meta = f.metadata().map_err(|e| errno_of(&e))?;
    if !meta.file_type().is_file() || meta.dev() != file.dev || meta.ino() != file.ino {
        // Replaced behind our back.
        return Err(Errno(ENOENT));
    }
    Ok(f)
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
