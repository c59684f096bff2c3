//! `ramfsd [-f] [NAME]`: serves an in-memory file system as the scheme `NAME:` (`ramfs:` by
//! default) from user space.
//!
//! Design: the daemon creates the scheme, then forks: the parent exits 0 once the scheme
//! exists (so `ramfsd && echo hi > ramfs:/a` needs no waiting), the child serves requests
//! until the system stops (`-f` serves in the foreground instead). One flat directory: a
//! path's slashes are part of the file name, `NAME:/` (or `NAME:`) lists the files. Every
//! request is answered at once, so a cancel never finds anything to stop.

#![no_std]
#![no_main]

use runtime::abi::ipc::SCHEME_CANCEL;
use runtime::abi::{self, Errno, Stat};
use runtime::prelude::*;
use runtime::scheme::{Request, SchemeServer};
use runtime::{env, sys};

extern crate alloc;
use alloc::collections::BTreeMap;

runtime::entry!(main);

struct Handle {
    /// The file's name; `None` for the directory.
    name: Option<Vec<u8>>,
    pos: usize,
    flags: usize,
}

#[derive(Default)]
struct RamFs {
    files: BTreeMap<Vec<u8>, Vec<u8>>,
    handles: BTreeMap<u64, Handle>,
    next_handle: u64,
    scheme: String,
}

fn err<T>(e: i32) -> Result<T> {
    Err(Errno(e))
}

impl RamFs {
    fn listing(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for name in self.files.keys() {
            out.extend_from_slice(name);
            out.push(b'\n');
        }
        out
    }

    fn open(&mut self, path: &[u8], flags: usize) -> Result<usize> {
        let name = path.strip_prefix(b"/").unwrap_or(path);
        let name = if name.is_empty() {
            None
        } else {
            match self.files.get_mut(name) {
                Some(_) if flags & abi::O_CREAT != 0 && flags & abi::O_EXCL != 0 => return err(abi::EEXIST),
                Some(data) => {
                    if flags & abi::O_TRUNC != 0 {
                        data.clear();
                    }
                }
                None if flags & abi::O_CREAT != 0 => {
                    self.files.insert(name.to_vec(), Vec::new());
                }
                None => return err(abi::ENOENT),
            }
            Some(name.to_vec())
        };
        self.next_handle += 1;
        self.handles.insert(self.next_handle, Handle { name, pos: 0, flags });
        Ok(self.next_handle as usize)
    }

    /// Handles one request: the result and the output bytes.
    fn serve(&mut self, req: &Request<'_>) -> (Result<usize>, Vec<u8>) {
        let h = req.head;
        let mut out = Vec::new();
        let result = match h.call as usize {
            abi::SYS_OPEN => self.open(req.input, h.args[0] as usize),
            abi::SYS_UNLINK => {
                let name = req.input.strip_prefix(b"/").unwrap_or(req.input);
                self.files.remove(name).map(|_| 0).ok_or(Errno(abi::ENOENT))
            }
            abi::SYS_CLOSE => self.handles.remove(&h.handle).map(|_| 0).ok_or(Errno(abi::EBADF)),
            call => self.file_call(call, &h, req.input, &mut out),
        };
        (result, out)
    }

    fn file_call(
        &mut self,
        call: usize,
        h: &abi::ipc::SchemeRequest,
        input: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<usize> {
        // The directory's contents are its listing (made only for a directory handle).
        let is_dir = self.handles.get(&h.handle).is_some_and(|h| h.name.is_none());
        let listing = if is_dir { self.listing() } else { Vec::new() };
        let handle = self.handles.get_mut(&h.handle).ok_or(Errno(abi::EBADF))?;
        let data = match &handle.name {
            Some(name) => Some(self.files.get_mut(name).ok_or(Errno(abi::ENOENT))?),
            None => None,
        };
        let content: &[u8] = data.as_deref().map_or(&listing, |d| d);
        match call {
            abi::SYS_READ => {
                let start = handle.pos.min(content.len());
                let end = content.len().min(start + h.args[0] as usize);
                out.extend_from_slice(&content[start..end]);
                handle.pos = end;
                Ok(end - start)
            }
            abi::SYS_WRITE => {
                let data = data.ok_or(Errno(abi::EISDIR))?;
                if handle.flags & abi::O_APPEND != 0 {
                    handle.pos = data.len();
                }
                let end = handle.pos + input.len();
                if data.len() < end {
                    data.resize(end, 0);
                }
                data[handle.pos..end].copy_from_slice(input);
                handle.pos = end;
                Ok(input.len())
            }
            abi::SYS_LSEEK => {
                let base = match h.args[1] as usize {
                    abi::SEEK_SET => 0,
                    abi::SEEK_CUR => handle.pos as i64,
                    _ => content.len() as i64,
                };
                let pos = base.checked_add(h.args[0] as i64).filter(|&p| p >= 0).ok_or(Errno(abi::EINVAL))?;
                handle.pos = pos as usize;
                Ok(handle.pos)
            }
            abi::SYS_FSTAT => {
                let mode = if data.is_some() { abi::MODE_FILE | 0o644 } else { abi::MODE_DIR | 0o755 };
                let stat = Stat {
                    st_mode: mode,
                    st_nlink: 1,
                    st_size: content.len() as u64,
                    st_blksize: 4096,
                    ..Stat::default()
                };
                out.extend_from_slice(&stat.to_bytes());
                Ok(0)
            }
            abi::SYS_FPATH => {
                out.extend_from_slice(self.scheme.as_bytes());
                out.extend_from_slice(b":/");
                out.extend_from_slice(handle.name.as_deref().unwrap_or(b""));
                Ok(out.len())
            }
            abi::SYS_FTRUNCATE => {
                data.ok_or(Errno(abi::EISDIR))?.resize(h.args[0] as usize, 0);
                Ok(0)
            }
            abi::SYS_FSYNC => Ok(0),
            abi::SYS_FMAP => {
                let start = (h.args[0] as usize).min(content.len());
                let end = content.len().min(start.saturating_add(h.args[1] as usize));
                out.extend_from_slice(&content[start..end]);
                Ok(0)
            }
            _ => err(abi::ENOSYS),
        }
    }
}

fn serve(mut server: SchemeServer, scheme: String) -> i32 {
    let mut fs = RamFs { scheme, ..RamFs::default() };
    loop {
        let (id, result, out) = match server.next() {
            Ok(req) if req.head.call == SCHEME_CANCEL => continue,
            Ok(req) => {
                let (result, out) = fs.serve(&req);
                (req.head.id, result, out)
            }
            Err(e) => {
                eprintln!("ramfsd: {}", e.description());
                return 1;
            }
        };
        if let Err(e) = server.answer(id, result, &out) {
            eprintln!("ramfsd: answer: {}", e.description());
        }
    }
}

fn main() -> i32 {
    let args = env::args();
    let foreground = args.iter().any(|a| a == "-f");
    let name = args.iter().skip(1).find(|a| *a != "-f").cloned().unwrap_or_else(|| "ramfs".to_string());
    let server = match SchemeServer::create(&name) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ramfsd: {name}: {}", e.description());
            return 1;
        }
    };
    if foreground {
        return serve(server, name);
    }
    match sys::clone(0) {
        Ok(0) => serve(server, name),
        Ok(_) => 0,
        Err(e) => {
            eprintln!("ramfsd: fork: {}", e.description());
            1
        }
    }
}
