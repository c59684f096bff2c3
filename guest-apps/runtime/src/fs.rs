//! Files and directories: an owning [`File`] handle and whole-file helpers.
//!
//! Design: [`File`] owns a descriptor and closes it on drop. Opening uses the Redox flags from
//! the ABI crate; new files get mode 0o644 and new directories 0o755 (the low 16 bits of the
//! open flags). A directory is read by opening it with `O_DIRECTORY` and reading: the kernel
//! returns the entry names separated by `'\n'`. `mkdir` is `open(O_CREAT | O_DIRECTORY |
//! O_EXCL)`; `stat` is `open(O_STAT)` + `fstat`.

use alloc::string::String;
use alloc::vec::Vec;

use crate::abi::{self, Stat};
use crate::{Result, io, sys};

/// Mode bits for new files.
pub const DEFAULT_FILE_MODE: usize = 0o644;
/// Mode bits for new directories.
pub const DEFAULT_DIR_MODE: usize = 0o755;

/// An open file descriptor, closed on drop.
#[derive(Debug)]
pub struct File {
    fd: usize,
}

impl File {
    /// Opens `path` with raw Redox `flags` (mode in the low 16 bits).
    pub fn open_with(path: &str, flags: usize) -> Result<File> {
        sys::open(path, flags).map(|fd| File { fd })
    }

    /// Opens `path` for reading.
    pub fn open(path: &str) -> Result<File> {
        Self::open_with(path, abi::O_RDONLY)
    }

    /// Creates (or truncates) `path` for writing.
    pub fn create(path: &str) -> Result<File> {
        Self::open_with(path, abi::O_WRONLY | abi::O_CREAT | abi::O_TRUNC | DEFAULT_FILE_MODE)
    }

    /// Opens `path` for appending, creating it if missing.
    pub fn append(path: &str) -> Result<File> {
        Self::open_with(path, abi::O_WRONLY | abi::O_CREAT | abi::O_APPEND | DEFAULT_FILE_MODE)
    }

    /// Takes ownership of descriptor `fd`.
    pub fn from_raw_fd(fd: usize) -> File {
        File { fd }
    }

    /// The descriptor, still owned by this `File`.
    pub fn fd(&self) -> usize {
        self.fd
    }

    /// Gives up ownership: the descriptor is not closed on drop.
    pub fn into_raw_fd(self) -> usize {
        let fd = self.fd;
        core::mem::forget(self);
        fd
    }

    /// Reads once into `buf`.
    pub fn read(&self, buf: &mut [u8]) -> Result<usize> {
        io::read(self.fd, buf)
    }

    /// Reads to end of file, appending to `out`.
    pub fn read_to_end(&self, out: &mut Vec<u8>) -> Result<usize> {
        io::read_to_end(self.fd, out)
    }

    /// Writes once from `buf`.
    pub fn write(&self, buf: &[u8]) -> Result<usize> {
        sys::write(self.fd, buf)
    }

    /// Writes all of `buf`.
    pub fn write_all(&self, buf: &[u8]) -> Result<()> {
        io::write_all(self.fd, buf)
    }

    /// Moves the file offset (`whence` is `SEEK_SET`, `SEEK_CUR` or `SEEK_END`).
    pub fn seek(&self, offset: isize, whence: usize) -> Result<usize> {
        sys::lseek(self.fd, offset, whence)
    }

    /// The file's status.
    pub fn stat(&self) -> Result<Stat> {
        sys::fstat(self.fd)
    }

    /// The path the kernel reports for this descriptor.
    pub fn path(&self) -> Result<String> {
        let mut buf = [0u8; 4096];
        let n = sys::fpath(self.fd, &mut buf)?;
        Ok(String::from_utf8_lossy(&buf[..n.min(buf.len())]).into_owned())
    }

    /// Truncates or extends the file to `len` bytes.
    pub fn set_len(&self, len: usize) -> Result<()> {
        sys::ftruncate(self.fd, len).map(drop)
    }

    /// A second descriptor for the same open file.
    pub fn try_clone(&self) -> Result<File> {
        sys::dup(self.fd, &[]).map(|fd| File { fd })
    }
}

impl Drop for File {
    fn drop(&mut self) {
        let _ = sys::close(self.fd);
    }
}

impl core::fmt::Write for File {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.write_all(s.as_bytes()).map_err(|_| core::fmt::Error)
    }
}

/// The whole contents of the file at `path`.
pub fn read(path: &str) -> Result<Vec<u8>> {
    let file = File::open(path)?;
    let mut out = Vec::new();
    file.read_to_end(&mut out)?;
    Ok(out)
}

/// The whole contents of the file at `path` as text (invalid UTF-8 replaced).
pub fn read_to_string(path: &str) -> Result<String> {
    read(path).map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
}

/// Creates or truncates `path` and writes `data` to it.
pub fn write(path: &str, data: &[u8]) -> Result<()> {
    File::create(path)?.write_all(data)
}

/// The names in directory `path`, in the kernel's order (empty names skipped).
pub fn read_dir(path: &str) -> Result<Vec<String>> {
    let dir = File::open_with(path, abi::O_RDONLY | abi::O_DIRECTORY)?;
    let mut listing = Vec::new();
    dir.read_to_end(&mut listing)?;
    Ok(listing
        .split(|&b| b == b'\n')
        .filter(|name| !name.is_empty())
        .map(|name| String::from_utf8_lossy(name).into_owned())
        .collect())
}

/// Creates directory `path` (fails with `EEXIST` if it exists).
pub fn create_dir(path: &str) -> Result<()> {
    File::open_with(path, abi::O_RDONLY | abi::O_CREAT | abi::O_DIRECTORY | abi::O_EXCL | DEFAULT_DIR_MODE).map(drop)
}

/// Creates directory `path` and any missing parents; an existing directory is fine.
pub fn create_dir_all(path: &str) -> Result<()> {
    let mut end = 0;
    while end < path.len() {
        end = path[end + 1..].find('/').map_or(path.len(), |i| end + 1 + i);
        let prefix = &path[..end];
        if prefix.is_empty() || prefix.ends_with(':') {
            continue;
        }
        match create_dir(prefix) {
            Ok(()) => {}
            Err(err) if err.0 == abi::EEXIST => {
                if !stat(prefix).is_ok_and(|st| st.is_dir()) {
                    return Err(err);
                }
            }
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

/// Removes file `path`.
pub fn remove_file(path: &str) -> Result<()> {
    sys::unlink(path).map(drop)
}

/// Removes empty directory `path`.
pub fn remove_dir(path: &str) -> Result<()> {
    sys::rmdir(path).map(drop)
}

/// The status of `path` (file or directory).
pub fn stat(path: &str) -> Result<Stat> {
    File::open_with(path, abi::O_STAT)?.stat()
}

/// True if `path` exists.
pub fn exists(path: &str) -> bool {
    stat(path).is_ok()
}

/// Joins a directory and a name with exactly one `/` (a `scheme:` prefix needs none).
pub fn join(dir: &str, name: &str) -> String {
    let mut out = String::from(dir);
    if !out.is_empty() && !out.ends_with('/') && !out.ends_with(':') {
        out.push('/');
    }
    out.push_str(name);
    out
}
