//! Pipes (the `pipe:` scheme): a bounded byte queue with a read end and a
//! write end.
//!
//! - Capacity [`PIPE_CAPACITY`] (64 KiB). A write of at most [`PIPE_BUF`]
//!   bytes is atomic: it goes in whole or blocks (EAGAIN when non-blocking).
//!   A longer write takes as much as fits and returns that count; it blocks
//!   only when nothing fits. (A blocking `write`, on either ABI, goes on until
//!   all of its bytes are in: `crate::io` keeps the count between its re-runs.)
//! - A read on an empty pipe blocks while a writer exists, and returns 0 (end
//!   of file) once every write description is closed.
//! - A write with no read description left fails with EPIPE; the kernel then
//!   raises SIGPIPE in the writer (`crate::io`).
//! - Blocking is reported as `IoError::WouldBlock(key)`; the kernel parks the
//!   thread (or returns EAGAIN for a non-blocking call). Every state change
//!   wakes the other side's key through the kernel's [`Waker`].
//!
//! Pipes are made by `pipe2`; `open("pipe:")` is not supported. Each pipe charges its
//! buffer ([`PIPE_CAPACITY`]) to the kernel's memory account (`Limits::max_memory_total`)
//! when it is made, and gives it back when both ends are gone: past the account `pipe2`
//! fails with ENFILE (as Linux does past its pipe-memory limit). The buffer itself is
//! allocated at the first write, at exactly that size.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use warden_abi::{Errno, Stat, EBADF, ENFILE, EPIPE, MODE_FIFO};

use crate::mm::MemTotal;

use crate::scheme::{FileOps, FileRef, IoError, IoResult, Readiness, WaitKey};
use crate::Waker;

/// Bytes a pipe holds before writers block.
pub const PIPE_CAPACITY: usize = 64 * 1024;

/// Writes of at most this many bytes are atomic (POSIX `PIPE_BUF`, Linux's value).
pub const PIPE_BUF: usize = 4096;

/// Wait keys of pipes live in their own range (bit 62 set).
const PIPE_KEY_BASE: u64 = 1 << 62;

struct Pipe {
    id: u64,
    buf: VecDeque<u8>,
    readers: usize,
    writers: usize,
    account: Rc<MemTotal>,
}

impl Drop for Pipe {
    fn drop(&mut self) {
        self.account.release(PIPE_CAPACITY as u64);
    }
}

impl Pipe {
    fn read_key(&self) -> WaitKey {
        WaitKey(PIPE_KEY_BASE | self.id << 1)
    }
    fn write_key(&self) -> WaitKey {
        WaitKey(PIPE_KEY_BASE | self.id << 1 | 1)
    }
}

/// Makes a new pipe charged to `account`; returns (read end, write end).
pub fn new_pipe(id: u64, waker: &Waker, account: &Rc<MemTotal>) -> Result<(FileRef, FileRef), Errno> {
    account.charge(PIPE_CAPACITY as u64).map_err(|_| Errno(ENFILE))?;
    let account = Rc::clone(account);
    let pipe = Rc::new(RefCell::new(Pipe { id, buf: VecDeque::new(), readers: 1, writers: 1, account }));
    let reader = PipeEnd { pipe: pipe.clone(), waker: waker.clone(), write_end: false, closed: false };
    let writer = PipeEnd { pipe, waker: waker.clone(), write_end: true, closed: false };
    Ok((Rc::new(RefCell::new(reader)), Rc::new(RefCell::new(writer))))
}

struct PipeEnd {
    pipe: Rc<RefCell<Pipe>>,
    waker: Waker,
    write_end: bool,
    closed: bool,
}

impl FileOps for PipeEnd {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        if self.write_end {
            return Err(Errno(EBADF).into());
        }
        let mut pipe = self.pipe.borrow_mut();
        if buf.is_empty() {
            return Ok(0);
        }
        if pipe.buf.is_empty() {
            return if pipe.writers == 0 { Ok(0) } else { Err(IoError::WouldBlock(pipe.read_key())) };
        }
        let n = buf.len().min(pipe.buf.len());
        for (dst, src) in buf.iter_mut().zip(pipe.buf.drain(..n)) {
            *dst = src;
        }
        self.waker.wake(pipe.write_key());
        Ok(n)
    }

    fn write(&mut self, buf: &[u8]) -> IoResult<usize> {
        if !self.write_end {
            return Err(Errno(EBADF).into());
        }
        let mut pipe = self.pipe.borrow_mut();
        if pipe.readers == 0 {
            return Err(Errno(EPIPE).into());
        }
        if buf.is_empty() {
            return Ok(0);
        }
        let room = PIPE_CAPACITY.saturating_sub(pipe.buf.len());
        if room == 0 || (buf.len() <= PIPE_BUF && room < buf.len()) {
            return Err(IoError::WouldBlock(pipe.write_key()));
        }
        let n = room.min(buf.len());
        if pipe.buf.capacity() == 0 {
            pipe.buf.reserve_exact(PIPE_CAPACITY); // what was charged, allocated once
        }
        pipe.buf.extend(&buf[..n]);
        self.waker.wake(pipe.read_key());
        Ok(n)
    }

    fn stat(&self) -> Result<Stat, Errno> {
        let pipe = self.pipe.borrow();
        Ok(Stat {
            st_mode: MODE_FIFO | 0o600,
            st_nlink: 1,
            st_size: pipe.buf.len() as u64,
            st_blksize: PIPE_CAPACITY as u32,
            st_ino: pipe.id,
            ..Stat::default()
        })
    }

    fn path(&self) -> Vec<u8> {
        format!("pipe:{}", self.pipe.borrow().id).into_bytes()
    }

    fn readiness(&self) -> Option<Readiness> {
        let pipe = self.pipe.borrow();
        Some(if self.write_end {
            // Writable means a PIPE_BUF write would not block (as Linux's poll says).
            Readiness {
                write: PIPE_CAPACITY - pipe.buf.len() >= PIPE_BUF,
                error: pipe.readers == 0,
                ..Readiness::default()
            }
        } else {
            Readiness { read: !pipe.buf.is_empty(), hangup: pipe.writers == 0, ..Readiness::default() }
        })
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    fn close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        let mut pipe = self.pipe.borrow_mut();
        if self.write_end {
            pipe.writers = pipe.writers.saturating_sub(1);
            if pipe.writers == 0 {
                self.waker.wake(pipe.read_key());
            }
        } else {
            pipe.readers = pipe.readers.saturating_sub(1);
            if pipe.readers == 0 {
                self.waker.wake(pipe.write_key());
            }
        }
    }
}

/// Up to `max` of the bytes a pipe's read end `file` holds, left in the pipe (Linux `tee`):
/// `None` if `file` is not a pipe's read end; `WouldBlock` while it is empty and has a
/// writer; no bytes at its end.
pub(crate) fn peek(file: &dyn FileOps, max: usize) -> Option<IoResult<Vec<u8>>> {
    let end = file.as_any()?.downcast_ref::<PipeEnd>().filter(|e| !e.write_end)?;
    let pipe = end.pipe.borrow();
    if pipe.buf.is_empty() && pipe.writers > 0 {
        return Some(Err(IoError::WouldBlock(pipe.read_key())));
    }
    Some(Ok(pipe.buf.iter().take(max).copied().collect()))
}

/// True if `file` is either end of a pipe (`splice` needs one).
pub(crate) fn is_pipe(file: &dyn FileOps) -> bool {
    file.as_any().is_some_and(|a| a.is::<PipeEnd>())
}

/// One more end of the pipe `file` is an end of (a write end if `write_end`), counted as one
/// more writer or reader (a named pipe's next open); `None` if `file` is no pipe end.
pub(crate) fn another_end(file: &dyn FileOps, write_end: bool) -> Option<FileRef> {
    let end = file.as_any()?.downcast_ref::<PipeEnd>()?;
    {
        let mut pipe = end.pipe.borrow_mut();
        if write_end {
            pipe.writers += 1;
        } else {
            pipe.readers += 1;
        }
    }
    let new = PipeEnd { pipe: end.pipe.clone(), waker: end.waker.clone(), write_end, closed: false };
    Some(Rc::new(RefCell::new(new)))
}

/// The open (read, write) ends of the pipe `file` is an end of.
pub(crate) fn ends(file: &dyn FileOps) -> Option<(usize, usize)> {
    let end = file.as_any()?.downcast_ref::<PipeEnd>()?;
    let pipe = end.pipe.borrow();
    Some((pipe.readers, pipe.writers))
}
