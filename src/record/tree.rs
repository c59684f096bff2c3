//! The identity of a host directory tree (`--overlay DIR`) for a trace header.
//!
//! A replay with an overlay must start from the contents the recording started from, so the
//! trace carries a digest of the tree and a replay compares it before it runs anything. The
//! digest is XXH3-64 over a canonical walk: entries in byte order of their names, each
//! contributing its path relative to the top, its type, its permission bits
//! (`mode & 0o7777`) and then
//! - a regular file: its length and its contents, read in 64 KiB pieces through one reused
//!   buffer (a large file is never held in memory);
//! - a symbolic link: its target (never followed);
//! - a directory: its entries, recursively;
//! - anything else (device, FIFO, socket): nothing more; it is never opened (a FIFO would
//!   block), as the guest never opens one either.
//!
//! Owners, inode numbers and timestamps never count: a copy of the tree made with `cp -r`
//! (modes kept) or unpacked anew has the same digest. The walk stays on the file system of
//! the top directory, like `find -xdev`. An entry the host does not let warden read counts
//! as unreadable (with the error kind), so the same unreadable file gives the same digest.
//! Cost: one pass over every byte under the directory, right for an overlay (small, and its
//! contents are the point). A `--root` is not walked: a recording notes the files the guest
//! uses instead (`files.rs`).

use std::ffi::OsString;
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use xxhash_rust::xxh3::Xxh3;

/// Names skipped in every directory (`--overlay`'s copy-ups left by a killed run, which the
/// overlay deletes when it loads).
pub type Skip = fn(&[u8]) -> bool;

/// The digest of the tree at `top` (which must be a directory). `skip` drops names.
pub fn digest(top: &Path, skip: Skip) -> io::Result<u64> {
    let meta = fs::metadata(top)?;
    if !meta.is_dir() {
        return Err(io::Error::other("not a directory"));
    }
    let mut w = Walk { h: Xxh3::new(), buf: vec![0u8; 64 << 10], dev: meta.dev(), skip };
    w.h.update(b"warden tree 1\0");
    w.dir(top, b"", &meta);
    Ok(w.h.digest())
}

struct Walk {
    h: Xxh3,
    buf: Vec<u8>,
    dev: u64,
    skip: Skip,
}

impl Walk {
    fn field(&mut self, bytes: &[u8]) {
        self.h.update(&(bytes.len() as u64).to_le_bytes());
        self.h.update(bytes);
    }

    fn error(&mut self, e: &io::Error) {
        self.h.update(b"E");
        self.field(format!("{:?}", e.kind()).as_bytes());
    }

    fn dir(&mut self, path: &Path, rel: &[u8], meta: &fs::Metadata) {
        self.h.update(b"D");
        self.field(rel);
        self.h.update(&(meta.mode() & 0o7777).to_le_bytes());
        if meta.dev() != self.dev {
            // Another file system is mounted here.
            self.h.update(b"M");
            return;
        }
        let mut names: Vec<OsString> = match fs::read_dir(path) {
            Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.file_name())).collect(),
            Err(e) => return self.error(&e),
        };
        names.retain(|n| !(self.skip)(n.as_bytes()));
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        self.h.update(&(names.len() as u64).to_le_bytes());
        for name in names {
            let child = path.join(&name);
            let mut crel = rel.to_vec();
            crel.push(b'/');
            crel.extend_from_slice(name.as_bytes());
            let meta = match fs::symlink_metadata(&child) {
                Ok(m) => m,
                Err(e) => {
                    self.field(&crel);
                    self.error(&e);
                    continue;
                }
            };
            let ft = meta.file_type();
            if ft.is_dir() {
                self.dir(&child, &crel, &meta);
                continue;
            }
            let tag: &[u8] = if ft.is_file() {
                b"F"
            } else if ft.is_symlink() {
                b"L"
            } else {
                b"S"
            };
            self.h.update(tag);
            self.field(&crel);
            self.h.update(&(meta.mode() & 0o7777).to_le_bytes());
            if ft.is_file() {
                self.file(&child, meta.len());
            } else if ft.is_symlink() {
                match fs::read_link(&child) {
                    Ok(t) => self.field(t.as_os_str().as_bytes()),
                    Err(e) => self.error(&e),
                }
            }
        }
    }

    fn file(&mut self, path: &Path, len: u64) {
        self.h.update(&len.to_le_bytes());
        let mut f = match open_regular(path) {
            Ok(f) => f,
            Err(e) => return self.error(&e),
        };
        let mut total = 0u64;
        loop {
            match f.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => {
                    self.h.update(&self.buf[..n]);
                    total += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.error(&e),
            }
        }
        if total != len {
            // The file changed while it was read: count what was read.
            self.h.update(b"T");
            self.h.update(&total.to_le_bytes());
        }
    }
}

/// Opens a regular file without following a symlink and without blocking (it was a regular
/// file when `lstat` saw it; a FIFO swapped in since must not hang the walk).
fn open_regular(path: &Path) -> io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    #[cfg(target_os = "linux")]
    const FLAGS: i32 = 0o400000 | 0o4000; // O_NOFOLLOW | O_NONBLOCK
    #[cfg(not(target_os = "linux"))]
    const FLAGS: i32 = 0;
    fs::OpenOptions::new().read(true).custom_flags(FLAGS).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: &[u8]) -> bool {
        false
    }

    #[test]
    fn contents_modes_names_and_links_count_times_do_not() {
        let top = std::env::temp_dir().join(format!("warden-tree-{}", std::process::id()));
        let _ = fs::remove_dir_all(&top);
        fs::create_dir_all(top.join("a/b")).unwrap();
        fs::write(top.join("a/b/f"), vec![7u8; 200_000]).unwrap();
        fs::write(top.join("g"), b"hello").unwrap();
        std::os::unix::fs::symlink("a/b/f", top.join("l")).unwrap();
        let d0 = digest(&top, none).unwrap();
        assert_eq!(d0, digest(&top, none).unwrap());
        // Touching a file (mtime only) keeps the digest.
        let f = fs::File::options().append(true).open(top.join("g")).unwrap();
        f.set_modified(std::time::SystemTime::UNIX_EPOCH).unwrap();
        assert_eq!(d0, digest(&top, none).unwrap());
        // One byte deep inside a large file.
        let mut data = vec![7u8; 200_000];
        data[150_000] = 8;
        fs::write(top.join("a/b/f"), &data).unwrap();
        let d1 = digest(&top, none).unwrap();
        assert_ne!(d0, d1);
        // A mode.
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(top.join("g"), fs::Permissions::from_mode(0o600)).unwrap();
        let d2 = digest(&top, none).unwrap();
        assert_ne!(d1, d2);
        // A symlink target.
        fs::remove_file(top.join("l")).unwrap();
        std::os::unix::fs::symlink("a/b/g", top.join("l")).unwrap();
        let d3 = digest(&top, none).unwrap();
        assert_ne!(d2, d3);
        // A rename.
        fs::rename(top.join("g"), top.join("h")).unwrap();
        let d4 = digest(&top, none).unwrap();
        assert_ne!(d3, d4);
        // A new empty directory, and a skipped name.
        fs::create_dir(top.join("e")).unwrap();
        let d5 = digest(&top, none).unwrap();
        assert_ne!(d4, d5);
        fs::write(top.join(".wh..wh..tmp.x"), b"partial").unwrap();
        assert_eq!(d5, digest(&top, |n| n.starts_with(b".wh..wh..tmp.")).unwrap());
        assert_ne!(d5, digest(&top, none).unwrap());
        let _ = fs::remove_dir_all(&top);
    }
}
