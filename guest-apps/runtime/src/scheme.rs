//! Serving a scheme from user space (packets in `warden_abi::ipc`).
//!
//! Design: [`SchemeServer`] owns the server descriptor from `open(":NAME", O_CREAT)` and one
//! buffer big enough for any request (a header plus the largest write the kernel forwards),
//! so a request is never refused for want of room (the kernel checks and touches only the
//! part of a read buffer a request fills, so offering 1 MiB costs nothing); [`Request`]
//! borrows its input bytes from that buffer. Answers are written whole, header and output bytes in one `write`;
//! an [`Answer`] lets a daemon put its output bytes straight after the header's room, so they
//! are copied once (a busy daemon keeps one and reuses it: no allocation per request).

use alloc::vec;
use alloc::vec::Vec;

use crate::abi::ipc::{REPLY_ANSWER, REPLY_EVENT, SchemeReply, SchemeRequest};
use crate::abi::{self, Errno};
use crate::fs::File;
use crate::{Result, sys};

/// The largest request the kernel hands a daemon (its `read` moves at most 1 MiB).
const MAX_REQUEST: usize = 1 << 20;

/// One request read from a server descriptor.
#[derive(Clone, Debug)]
pub struct Request<'a> {
    /// The fixed header.
    pub head: SchemeRequest,
    /// The kernel's copy of the caller's input (path, write data, dup sub-path).
    pub input: &'a [u8],
}

/// An answer's output bytes, built after room for the header ([`SchemeServer::answer_with`]).
pub struct Answer {
    buf: Vec<u8>,
}

impl Default for Answer {
    fn default() -> Self {
        Answer { buf: vec![0u8; SchemeReply::SIZE] }
    }
}

impl Answer {
    /// Empties the output bytes (for the next request).
    pub fn clear(&mut self) {
        self.buf.truncate(SchemeReply::SIZE);
    }

    /// Appends output bytes.
    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// How many output bytes there are.
    pub fn len(&self) -> usize {
        self.buf.len() - SchemeReply::SIZE
    }

    /// True if there are no output bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A scheme this process serves.
pub struct SchemeServer {
    file: File,
    buf: Vec<u8>,
    out: Vec<u8>,
}

impl SchemeServer {
    /// Creates the scheme `name:` (EEXIST if it exists).
    pub fn create(name: &str) -> Result<SchemeServer> {
        let mut path = alloc::string::String::from(":");
        path.push_str(name);
        let fd = sys::open(&path, abi::O_CREAT | abi::O_RDWR | abi::O_CLOEXEC)?;
        Ok(SchemeServer { file: File::from_raw_fd(fd), buf: vec![0u8; MAX_REQUEST], out: Vec::new() })
    }

    /// The server descriptor.
    pub fn fd(&self) -> usize {
        self.file.fd()
    }

    /// Waits for the next request.
    #[allow(clippy::should_implement_trait, reason = "a request borrows the buffer: not an Iterator")]
    pub fn next(&mut self) -> Result<Request<'_>> {
        let n = sys::read(self.file.fd(), &mut self.buf)?;
        let head = SchemeRequest::from_bytes(&self.buf[..n]).ok_or(Errno(abi::EIO))?;
        let input = self.buf.get(SchemeRequest::SIZE..n).ok_or(Errno(abi::EIO))?;
        Ok(Request { head, input })
    }

    /// Answers request `id` with `value` (a `Result` becomes `-errno`) and output bytes.
    pub fn answer(&mut self, id: u64, value: Result<usize>, bytes: &[u8]) -> Result<()> {
        self.send(SchemeReply { kind: REPLY_ANSWER, id, value: reply_value(value), len: bytes.len() as u64 }, bytes)
    }

    /// Answers request `id` with `value` and the output bytes `answer` holds (sent with the
    /// header in one `write`, without copying them again).
    pub fn answer_with(&mut self, id: u64, value: Result<usize>, answer: &mut Answer) -> Result<()> {
        let len = answer.len() as u64;
        let head = SchemeReply { kind: REPLY_ANSWER, id, value: reply_value(value), len };
        answer.buf[..SchemeReply::SIZE].copy_from_slice(&head.to_bytes());
        sys::write(self.file.fd(), &answer.buf).map(|_| ())
    }

    /// Reports the readiness of `handle` (`abi::ipc::EVENT_*` bits) for `poll`.
    pub fn event(&mut self, handle: u64, bits: i64) -> Result<()> {
        self.send(SchemeReply { kind: REPLY_EVENT, id: handle, value: bits, len: 0 }, &[])
    }

    fn send(&mut self, head: SchemeReply, bytes: &[u8]) -> Result<()> {
        self.out.clear();
        self.out.extend_from_slice(&head.to_bytes());
        self.out.extend_from_slice(bytes);
        sys::write(self.file.fd(), &self.out).map(|_| ())
    }
}

/// A call's result as a reply carries it (`-errno` for an error).
fn reply_value(value: Result<usize>) -> i64 {
    match value {
        Ok(v) => v as i64,
        Err(e) => -(e.0 as i64),
    }
}
