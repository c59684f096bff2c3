//! Named pipes: `mknod`/`mknodat` of a FIFO (`mkfifo`), and opening one.
//!
//! The file systems have no FIFO nodes, so a FIFO is an empty regular file (it shows in
//! listings, can be renamed and removed like any file) plus an entry in the kernel's list
//! (`LinuxState::fifos`, by absolute guest path) that makes `stat` say `S_IFIFO` and `open`
//! connect to a pipe ([`crate::pipe`]) instead of the file. While any end is open, every
//! open of the FIFO gets a new end of the same pipe; once all are closed the next open
//! starts a new (empty) pipe. As on Linux, opening for reading waits for a writer and
//! opening for writing waits for a reader (the waiting opener's end already counts for the
//! other side), `O_NONBLOCK` makes a read-only open succeed at once and a write-only open
//! with no reader fail with ENXIO, and `O_RDWR` never waits (it gets a read end here: its
//! writes fail with EBADF). A FIFO node the file system already has (made by the host:
//! `mkfifo` outside, then `--root`) joins the list at its first open and works the same
//! way: between guest processes only, never connected to the host's pipe (that would let
//! host timing into the run). Not done: FIFOs made by Redox programs, and `mknod` of
//! devices (EPERM) and sockets (EPERM).

use std::collections::BTreeMap;
use std::rc::Weak;

use warden_abi as r;
use warden_abi::Errno;

use crate::pipe::{another_end, ends, new_pipe};
use crate::process::{OpenFile, WaitOn};
use crate::scheme::{FileOps, FileRef, WaitKey};
use crate::syscall::{Block, SysError, SysResult};
use crate::{Kernel, Pid};

const S_IFMT: usize = 0o170000;
const S_IFIFO: usize = 0o010000;
const S_IFREG: usize = 0o100000;
const S_IFCHR: usize = 0o020000;
const S_IFBLK: usize = 0o060000;
const S_IFSOCK: usize = 0o140000;
/// Wait keys of FIFO opens live in their own range (bits 60, 59 and 58 set).
const FIFO_KEY_BASE: u64 = 7 << 58;

/// One FIFO: the ends of its current pipe, and the ends made by opens still waiting for the
/// other side (by thread: the open runs again when woken and takes its end).
#[derive(Default)]
pub(crate) struct Fifo {
    id: u64,
    live: Vec<Weak<std::cell::RefCell<dyn FileOps>>>,
    /// Waiting opens: their end, and the partner side's `opens` count when they began.
    waiting: BTreeMap<Pid, (FileRef, u64)>,
    /// Completed opens for reading and for writing (`[read, write]`): an opener whose
    /// partner opened, wrote and closed while it waited still completes, as on Linux.
    opens: [u64; 2],
}

impl Fifo {
    fn key(&self) -> WaitKey {
        WaitKey(FIFO_KEY_BASE | self.id)
    }

    /// An end of the current pipe, if one is still open anywhere.
    fn anchor(&mut self) -> Option<FileRef> {
        self.live.retain(|w| w.strong_count() > 0);
        self.live.first().and_then(Weak::upgrade)
    }
}

/// The FIFOs by absolute guest path.
pub(crate) type FifoList = BTreeMap<Vec<u8>, Fifo>;

impl Kernel {
    /// `mknod(abs, mode)`: a FIFO or a regular file; devices and sockets are EPERM.
    pub(super) fn lx_mknod(&mut self, tid: Pid, abs: &[u8], mode: usize) -> SysResult {
        let kind = mode & S_IFMT;
        match kind {
            0 | S_IFREG | S_IFIFO => {}
            S_IFCHR | S_IFBLK | S_IFSOCK => return Err(Errno(r::EPERM).into()),
            _ => return Err(Errno(r::EINVAL).into()),
        }
        let umask = self.proc_of(tid)?.fs.borrow().umask as usize;
        let flags = r::O_CREAT | r::O_EXCL | r::O_WRONLY | (mode & 0o7777 & !umask);
        let file = self.open_path(tid, &[&b"file:"[..], abs].concat(), flags)?;
        drop(OpenFile::new(file, r::O_WRONLY));
        if kind == S_IFIFO {
            let id = self.alloc_object_id();
            self.linux.fifos.insert(abs.to_vec(), Fifo { id, ..Fifo::default() });
        }
        self.lx_notify(abs, super::inotify::IN_CREATE);
        Ok(0)
    }

    /// Opens FIFO `abs` for thread `tid` (see the module note); `None` if `abs` is no FIFO.
    pub(super) fn lx_open_fifo(&mut self, tid: Pid, abs: &[u8], flags: usize, cloexec: bool) -> Option<SysResult> {
        let fifo = self.linux.fifos.get_mut(abs)?;
        let access = flags & super::abi::O_ACCMODE;
        let write = access == super::abi::O_WRONLY;
        let nonblock = flags & super::abi::O_NONBLOCK != 0;
        // The partner side's index in `opens`.
        let partner_side = usize::from(!write);
        let (end, seen) = match fifo.waiting.remove(&tid) {
            Some((end, seen)) => (end, Some(seen)),
            None => {
                let made = match fifo.anchor() {
                    Some(anchor) => anchor.try_borrow().ok().and_then(|a| another_end(&*a, write)),
                    None => None,
                };
                let end = match made {
                    Some(end) => end,
                    None => {
                        let id = fifo.id;
                        let made = new_pipe(id, &self.waker, &self.mem_total);
                        let fifo = self.linux.fifos.get_mut(abs)?;
                        let (reader, writer) = match made {
                            Ok(pair) => pair,
                            Err(e) => return Some(Err(e.into())),
                        };
                        let (mine, other) = if write { (writer, reader) } else { (reader, writer) };
                        if let Ok(mut other) = other.try_borrow_mut() {
                            other.close();
                        }
                        fifo.live.clear();
                        mine
                    }
                };
                let fifo = self.linux.fifos.get_mut(abs)?;
                fifo.live.push(std::rc::Rc::downgrade(&end));
                // The other side may be waiting for this new end (an open running again
                // with its waiting end wakes nobody: it would wake itself forever).
                self.waker.wake(fifo.key());
                (end, None)
            }
        };
        let fifo = self.linux.fifos.get_mut(abs)?;
        let key = fifo.key();
        let (readers, writers) = end.try_borrow().ok().and_then(|e| ends(&*e)).unwrap_or((0, 0));
        let seen = seen.unwrap_or(fifo.opens[partner_side]);
        let partner = (if write { readers > 0 } else { writers > 0 }) || fifo.opens[partner_side] > seen;
        let rdwr = access == super::abi::O_RDWR;
        if partner || rdwr || (!write && nonblock) {
            let status = if nonblock { r::O_NONBLOCK } else { 0 };
            let rflags = if write { r::O_WRONLY } else { r::O_RDONLY };
            let installed = self.install_fd(tid, end, rflags | status, cloexec).map_err(SysError::from);
            if let (Ok(_), Some(fifo)) = (&installed, self.linux.fifos.get_mut(abs)) {
                let sides: &[usize] = if rdwr { &[0, 1] } else { &[usize::from(write)] };
                for &side in sides {
                    fifo.opens[side] += 1;
                }
            }
            return Some(installed);
        }
        if write && nonblock {
            if let Ok(mut e) = end.try_borrow_mut() {
                e.close();
            }
            return Some(Err(Errno(r::ENXIO).into()));
        }
        fifo.waiting.insert(tid, (end, seen));
        Some(Err(Block::retry(WaitOn::Key(key))))
    }

    /// Makes the file system's FIFO node `abs` a guest FIFO (see the module note); false if
    /// `abs` is no FIFO node.
    pub(super) fn lx_adopt_fifo(&mut self, tid: Pid, abs: &[u8]) -> bool {
        let Ok(st) = self.lx_stat_abs(tid, abs, false) else { return false };
        if st.st_mode & r::MODE_TYPE != r::MODE_FIFO {
            return false;
        }
        let id = self.alloc_object_id();
        self.linux.fifos.entry(abs.to_vec()).or_insert(Fifo { id, ..Fifo::default() });
        true
    }

    /// `stat` mode bits for `abs` if it is a FIFO.
    pub(super) fn lx_is_fifo(&self, abs: &[u8]) -> bool {
        !self.linux.fifos.is_empty() && self.linux.fifos.contains_key(abs)
    }

    /// A FIFO's path was removed or renamed (`to`).
    pub(super) fn lx_fifo_moved(&mut self, from: &[u8], to: Option<&[u8]>) {
        if let Some(fifo) = self.linux.fifos.remove(from) {
            if let Some(to) = to {
                self.linux.fifos.insert(to.to_vec(), fifo);
            }
        }
    }
}
