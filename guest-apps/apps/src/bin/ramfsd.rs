//! `ramfsd [-f] [NAME]`: serves an in-memory file system as the scheme `NAME:` (`ramfs:` by
//! default) from user space.
//!
//! Design: the daemon creates the scheme, then forks: the parent exits 0 once the scheme
//! exists (so `ramfsd && echo hi > ramfs:/a` needs no waiting), the child serves requests
//! until the system stops (`-f` serves in the foreground instead). One flat directory: a
//! path's slashes are part of the file name, `NAME:/` (or `NAME:`) lists the files. A handle
//! holds its file's contents itself (shared with the directory entry), so a read or write
//! looks up nothing by name, and an unlinked file lives on for the handles open on it, as
//! POSIX says. Every request is answered at once (so a cancel never finds anything to stop),
//! into one reused [`Answer`]: serving a read allocates nothing.

#![no_std]
#![no_main]

use core::cell::RefCell;

use runtime::abi::ipc::{SCHEME_CANCEL, SchemeRequest};
use runtime::abi::{self, Errno, Stat};
use runtime::prelude::*;
use runtime::scheme::{Answer, Request, SchemeServer};
use runtime::{env, sys};

extern crate alloc;
use alloc::collections::BTreeMap;
use alloc::rc::Rc;

runtime::entry!(main);

/// A file's contents, shared by its directory entry and the handles open on it.
type Data = Rc<RefCell<Vec<u8>>>;

struct Handle {
    /// The file's name and contents; `None` for the directory.
    file: Option<(Vec<u8>, Data)>,
    pos: usize,
    flags: usize,
}

#[derive(Default)]
struct RamFs {
    files: BTreeMap<Vec<u8>, Data>,
    handles: BTreeMap<u64, Handle>,
    next_handle: u64,
    scheme: String,
}

fn err<T>(e: i32) -> Result<T> {
    Err(Errno(e))
}

/// The directory's contents: one name a line.
fn listing(files: &BTreeMap<Vec<u8>, Data>) -> Vec<u8> {
    let mut out = Vec::new();
    for name in files.keys() {
        out.extend_from_slice(name);
        out.push(b'\n');
    }
    out
}

impl RamFs {
    fn open(&mut self, path: &[u8], flags: usize) -> Result<usize> {
        let name = path.strip_prefix(b"/").unwrap_or(path);
        let file = if name.is_empty() {
            None
        } else {
            let data = match self.files.get(name) {
                Some(_) if flags & abi::O_CREAT != 0 && flags & abi::O_EXCL != 0 => return err(abi::EEXIST),
                Some(data) => {
                    if flags & abi::O_TRUNC != 0 {
                        data.borrow_mut().clear();
                    }
                    Rc::clone(data)
                }
                None if flags & abi::O_CREAT != 0 => {
                    let data = Data::default();
                    self.files.insert(name.to_vec(), Rc::clone(&data));
                    data
                }
                None => return err(abi::ENOENT),
            };
            Some((name.to_vec(), data))
        };
        self.next_handle += 1;
        self.handles.insert(self.next_handle, Handle { file, pos: 0, flags });
        Ok(self.next_handle as usize)
    }

    /// Handles one request: its result; its output bytes go into `out`.
    fn serve(&mut self, req: &Request<'_>, out: &mut Answer) -> Result<usize> {
        let h = &req.head;
        match h.call as usize {
            abi::SYS_OPEN => self.open(req.input, h.args[0] as usize),
            abi::SYS_UNLINK => {
                let name = req.input.strip_prefix(b"/").unwrap_or(req.input);
                self.files.remove(name).map(|_| 0).ok_or(Errno(abi::ENOENT))
            }
            abi::SYS_CLOSE => self.handles.remove(&h.handle).map(|_| 0).ok_or(Errno(abi::EBADF)),
            call => {
                let handle = self.handles.get_mut(&h.handle).ok_or(Errno(abi::EBADF))?;
                // A file's contents, or the directory's listing (made only for the directory).
                let data = handle.file.as_ref().map(|(_, d)| Rc::clone(d));
                let mut data = data.as_ref().map(|d| d.borrow_mut());
                let listing = if data.is_none() { listing(&self.files) } else { Vec::new() };
                let file = File { handle, data: data.as_deref_mut(), listing: &listing };
                file.call(call, h, req.input, self.scheme.as_bytes(), out)
            }
        }
    }
}

/// An open handle and what it reads: the file's contents (`data`), or for the directory
/// (`data` is `None`) its listing.
struct File<'a> {
    handle: &'a mut Handle,
    data: Option<&'a mut Vec<u8>>,
    listing: &'a [u8],
}

impl File<'_> {
    fn call(self, call: usize, h: &SchemeRequest, input: &[u8], scheme: &[u8], out: &mut Answer) -> Result<usize> {
        let File { handle, data, listing } = self;
        let content: &[u8] = data.as_deref().map_or(listing, |d| d);
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
                out.extend_from_slice(scheme);
                out.extend_from_slice(b":/");
                out.extend_from_slice(handle.file.as_ref().map_or(&b""[..], |(name, _)| name));
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
    let mut out = Answer::default();
    loop {
        out.clear();
        let (id, result) = match server.next() {
            Ok(req) if req.head.call == SCHEME_CANCEL => continue,
            Ok(req) => (req.head.id, fs.serve(&req, &mut out)),
            Err(e) => {
                eprintln!("ramfsd: {}", e.description());
                return 1;
            }
        };
        if let Err(e) = server.answer_with(id, result, &mut out) {
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
