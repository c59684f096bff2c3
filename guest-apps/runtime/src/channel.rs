//! Message channels (`warden_abi::ipc`): endpoints that send and receive whole messages,
//! descriptors passed with them, and the call/return form.
//!
//! Design: an [`Endpoint`] owns its descriptor (closed on drop) and is shared freely: the
//! kernel moves a whole message per call, so any number of threads may `send`, `recv` or
//! `call` on one endpoint at once. Received descriptors come back owned ([`File`]s), and a
//! message sent by `call` comes with its [`Reply`], the one-shot capability to answer it
//! (dropping it unanswered tells the caller EPIPE).

use alloc::vec::Vec;

use crate::abi::ipc::{CHANNEL_MAX_FDS, ChannelCaps, NO_REPLY};
use crate::abi::{self, Errno};
use crate::fs::File;
use crate::{Result, sys};

/// One end of a channel.
#[derive(Debug)]
pub struct Endpoint {
    file: File,
}

/// A received message's parts (the bytes are in the caller's buffer).
#[derive(Debug)]
pub struct Received {
    /// The message's length.
    pub len: usize,
    /// The descriptors it carried, now the receiver's.
    pub fds: Vec<File>,
    /// The capability to answer it, if `call` sent it.
    pub reply: Option<Reply>,
}

/// The one-shot capability to answer a call.
#[derive(Debug)]
pub struct Reply {
    file: File,
}

fn caps_of(fds: &[&File]) -> Result<ChannelCaps> {
    if fds.len() > CHANNEL_MAX_FDS {
        return Err(Errno(abi::EMSGSIZE));
    }
    let list: Vec<usize> = fds.iter().map(|f| f.fd()).collect();
    Ok(ChannelCaps::with_fds(&list))
}

fn owned(caps: &ChannelCaps) -> (Vec<File>, Option<Reply>) {
    let fds = caps.list().iter().map(|&fd| File::from_raw_fd(fd as usize)).collect();
    let reply = (caps.reply != NO_REPLY).then(|| Reply { file: File::from_raw_fd(caps.reply as usize) });
    (fds, reply)
}

impl Endpoint {
    /// A new channel: its two endpoints (close-on-exec).
    pub fn pair() -> Result<(Endpoint, Endpoint)> {
        let [a, b] = sys::channel(abi::O_CLOEXEC)?;
        Ok((Endpoint::from_raw_fd(a), Endpoint::from_raw_fd(b)))
    }

    /// Takes ownership of endpoint descriptor `fd` (one inherited or received).
    pub fn from_raw_fd(fd: usize) -> Endpoint {
        Endpoint { file: File::from_raw_fd(fd) }
    }

    /// The descriptor.
    pub fn fd(&self) -> usize {
        self.file.fd()
    }

    /// The endpoint as a file (to pass it on in a message).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Sends `msg` with (copies of) the descriptors `fds`; blocks while the other endpoint's
    /// queue is full.
    pub fn send(&self, msg: &[u8], fds: &[&File]) -> Result<()> {
        let caps = caps_of(fds)?;
        sys::send(self.fd(), msg, (!fds.is_empty()).then_some(&caps)).map(drop)
    }

    /// [`Endpoint::send`] that fails with EAGAIN instead of blocking (this call only).
    pub fn try_send(&self, msg: &[u8], fds: &[&File]) -> Result<()> {
        let caps = caps_of(fds)?;
        sys::send(self.fd() | abi::FD_NONBLOCK_CALL, msg, (!fds.is_empty()).then_some(&caps)).map(drop)
    }

    /// Receives the next message into `buf` (EMSGSIZE, and the message stays, if it does not
    /// fit); EPIPE once the other endpoint is closed and nothing is left.
    pub fn recv(&self, buf: &mut [u8]) -> Result<Received> {
        let mut caps = ChannelCaps::default();
        let len = sys::recv(self.fd(), buf, Some(&mut caps))?;
        let (fds, reply) = owned(&caps);
        Ok(Received { len, fds, reply })
    }

    /// Calls the server at the other end: sends `buf[..len]` (and `fds`) and waits for the
    /// answer, written over `buf`. Returns the answer's length and descriptors.
    pub fn call(&self, buf: &mut [u8], len: usize, fds: &[&File]) -> Result<(usize, Vec<File>)> {
        let mut caps = caps_of(fds)?;
        let n = sys::call(self.fd(), buf, len, Some(&mut caps))?;
        Ok((n, owned(&caps).0))
    }
}

impl Reply {
    /// Answers the call with `msg` and `fds` (EPIPE if the caller gave up).
    pub fn answer(self, msg: &[u8], fds: &[&File]) -> Result<()> {
        // The kernel closes the capability's descriptor itself.
        let fd = self.file.into_raw_fd();
        if fds.is_empty() {
            return sys::send(fd, msg, None).map(drop);
        }
        let caps = caps_of(fds)?;
        sys::send(fd, msg, Some(&caps)).map(drop)
    }
}
