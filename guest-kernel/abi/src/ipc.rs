//! Inter-process communication: user-space scheme providers (the packets between the kernel
//! and a scheme daemon) and message channels.
//!
//! # Scheme daemons
//!
//! Creating a scheme (the Redox convention): `open(":NAME", O_CREAT | O_RDWR)` makes the
//! scheme `NAME:` and returns its *server descriptor*. From then on every file call any
//! process makes on `NAME:…` (open, unlink, rmdir, and read, write, lseek, fstat, fpath,
//! fsync, ftruncate, fmap, a `dup` with a sub-path and close on what it opened) becomes a
//! request the daemon reads from that descriptor:
//! - `read(server, buf)` returns one whole request: a [`SchemeRequest`] header followed by
//!   `in_len` bytes, the kernel's own copy of the caller's input (the path for open, unlink
//!   and rmdir; the data for write; the sub-path for dup). A buffer too small for the whole
//!   request fails with EINVAL and leaves the request queued. Nothing pending blocks (or
//!   EAGAIN on a non-blocking read).
//! - `write(server, reply)` answers one request: a [`SchemeReply`] header followed by `len`
//!   output bytes (what a read returns, the path for fpath, a `Stat` for fstat, the mapped
//!   contents for fmap; at most the request's `out_len`). Requests may be answered in any
//!   order. `value` is the call's result (`-errno` for an error; for open and dup, the
//!   daemon's own handle number, which later requests carry in `handle`).
//! - A reply of kind [`REPLY_EVENT`] reports a handle's readiness (`value`: `EVENT_*` bits)
//!   for `poll`; until a daemon sends one, a handle counts as always ready.
//!
//! The caller blocks until its answer. If a signal interrupts it (EINTR), or it dies, a
//! request the daemon has not read yet vanishes, and one it has read is followed by a
//! [`SCHEME_CANCEL`] request with the same `id` (a late answer is dropped). If the daemon
//! closes its last server descriptor (or dies), pending callers get EIO, later calls on its
//! files EIO, and the name is free again (until another daemon takes it, opening `NAME:…`
//! fails with ENOENT, as for any unknown scheme). Closing the last descriptor of a file sends a [`SYS_CLOSE`](crate::SYS_CLOSE)
//! request nobody waits for.
//!
//! A Linux-personality program holding a descriptor of such a file (inherited, or passed to
//! it) reaches the daemon with `read`, `readv`, `write` and `writev` (a `SYS_READ` or
//! `SYS_WRITE` request, as above); `pread64`, `pwrite64` and their vector forms are ESPIPE
//! (requests carry no offset), and the calls no request carries (`fstat`, `mmap`,
//! `sendfile`'s reads, ...) fail with EOPNOTSUPP.
//!
//! Supervisors see a daemon's `read` and `write` on its server descriptor marked with an
//! [`ITEM_SCHEME`](crate::ITEM_SCHEME) item (the scheme's name), and tracers print the
//! packets decoded ([`crate::trace::write_scheme_request`],
//! [`crate::trace::write_scheme_reply`]).
//!
//! Policy: `open` is class C; in a jail only `file:` and the kernel's device schemes
//! resolve, so a jailed process can neither create a scheme (`:NAME` is EACCES) nor reach
//! one a daemon serves, unless its jail was made with
//! [`JAIL_SCHEMES`](crate::JAIL_SCHEMES): then it may create schemes, and use those whose
//! daemon created them inside the jail (schemes served from outside stay EACCES).
//!
//! # Message channels (seed 003)
//!
//! A channel is a pair of endpoints, each a descriptor; what one endpoint sends, the other
//! receives, one whole message at a time (never a stream): bytes (at most
//! [`CHANNEL_MAX_MSG`]) plus up to [`CHANNEL_MAX_FDS`] descriptors, passed as capabilities
//! (the receiver gets new descriptors of the very same open files, as `dup` makes). There is
//! no bus process and no connection state beyond the pair, so any number of threads (or
//! libraries of one process) may share one endpoint: every `send`, `recv` and `call` moves a
//! whole message or nothing.
//! - `channel(fds_ptr, flags)` ([`SYS_CHANNEL`](crate::SYS_CHANNEL)): a new channel; its two
//!   endpoints are written at `fds_ptr` as `[usize; 2]`. `flags`: `O_NONBLOCK`, `O_CLOEXEC`.
//! - `send(fd, buf, len, caps)` ([`SYS_SEND`](crate::SYS_SEND)): queues `buf[..len]` with the
//!   descriptors `caps` lists (a [`ChannelCaps`]; null: none) for the other endpoint; returns
//!   `len`. An endpoint queues at most [`CHANNEL_QUEUE`] messages: beyond that `send` blocks,
//!   or fails with EAGAIN when the descriptor has `O_NONBLOCK` or the descriptor argument
//!   carries `FD_NONBLOCK_CALL` (bit 62: that one call is non-blocking, as for `read` and
//!   `write`). EPIPE when the other endpoint is closed, EMSGSIZE past the limits, EBADF for a
//!   listed descriptor the caller does not hold, EINVAL for an endpoint of the same channel
//!   (it would hold itself), ETOOMANYREFS for an endpoint whose own queue holds endpoints
//!   (receive those first). The two refusals keep endpoints in flight from ever holding each
//!   other in a cycle that no descriptor reaches any more, which nothing could free. Queued
//!   bytes count against the memory limit (ENOMEM).
//! - `recv(fd, buf, room, caps)` ([`SYS_RECV`](crate::SYS_RECV)): takes the next message;
//!   returns its length. Its descriptors are installed in the receiver and listed at `caps`
//!   (`reply`: the reply capability of a message sent by `call`, else [`NO_REPLY`]); with a
//!   null `caps` they are closed (a dropped reply capability answers the caller EPIPE). A
//!   message longer than `room` stays queued: EMSGSIZE. Nothing queued blocks (EAGAIN when
//!   non-blocking as for `send`); nothing queued and the other endpoint closed is EPIPE.
//! - `call(fd, buf, len, room, caps)` ([`SYS_CALL`](crate::SYS_CALL)): the invocation of
//!   KeyKOS and EROS: sends `buf[..len]` (and the descriptors `caps` lists) together with a
//!   fresh one-shot *reply capability*, then waits for the answer, which is written over
//!   `buf[..room]` (its descriptors listed at `caps`, `reply` = [`NO_REPLY`]); returns the
//!   answer's length. The server answers with `send` on the reply capability, which
//!   consumes it (its descriptor is closed by that `send`); closing it unanswered (or the
//!   server dying) gives the caller EPIPE. An answer longer than `room` is EMSGSIZE. Only
//!   the queueing of the request obeys `FD_NONBLOCK_CALL` / `O_NONBLOCK` (EAGAIN when the
//!   queue is full); the wait for the answer always blocks. A signal interrupts the wait
//!   (EINTR, or the call waits on after an `SA_RESTART` handler); the reply capability then
//!   goes dead, and the server's `send` on it fails with EPIPE.
//! - `read` and `write` on an endpoint are `recv` and `send` without descriptors; `poll`
//!   sees an endpoint readable when a message is queued for it, writable when its peer's
//!   queue has room, and hung up when its peer is closed.
//!
//! Policy: `channel` is class P (a channel only its maker holds), `send`, `recv` and `call`
//! class F (they act on descriptors the caller holds; passing a descriptor hands on a
//! capability the sender has, so a jail lets them through unchanged).

use core::mem::{offset_of, size_of};

use crate::data::ByteField;

/// The `call` of a request telling the daemon that request `id` was abandoned.
pub const SCHEME_CANCEL: u64 = u64::MAX;

/// Request flag: the caller asked for a non-blocking call (its descriptor has
/// `O_NONBLOCK`, or the call carried `FD_NONBLOCK_CALL`): answer EAGAIN rather than wait.
pub const REQ_NONBLOCK: u32 = 1;

/// Reply kind: the answer to request `id`.
pub const REPLY_ANSWER: u64 = 0;
/// Reply kind: readiness of handle `id` changed to `value` (`EVENT_*` bits).
pub const REPLY_EVENT: u64 = 1;

/// Readiness bit: a read would not block.
pub const EVENT_READ: i64 = 1;
/// Readiness bit: a write would not block.
pub const EVENT_WRITE: i64 = 2;
/// Readiness bit: the other side hung up.
pub const EVENT_HANGUP: i64 = 4;
/// Readiness bit: an error is pending.
pub const EVENT_ERROR: i64 = 8;

/// One request to a scheme daemon (followed by `in_len` input bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct SchemeRequest {
    /// Names the request in its reply (never 0).
    pub id: u64,
    /// The Redox call number (`SYS_OPEN`, `SYS_READ`, ...) or [`SCHEME_CANCEL`].
    pub call: u64,
    /// The caller's process, user and group ids.
    pub pid: u32,
    /// The caller's user id.
    pub uid: u32,
    /// The caller's group id.
    pub gid: u32,
    /// `REQ_*` bits.
    pub flags: u32,
    /// The daemon's handle of the file (0 for open, unlink, rmdir).
    pub handle: u64,
    /// Call arguments: open `[flags, 0, 0]`; read `[len, 0, 0]`; lseek `[offset, whence, 0]`;
    /// ftruncate `[len, 0, 0]`; fmap `[offset, size, prot]`; others zero.
    pub args: [u64; 3],
    /// Input bytes following this header.
    pub in_len: u64,
    /// The most output bytes the reply may carry.
    pub out_len: u64,
}

byte_struct!(SchemeRequest { id, call, pid, uid, gid, flags, handle, args, in_len, out_len });

/// A daemon's reply (followed by `len` output bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct SchemeReply {
    /// [`REPLY_ANSWER`] or [`REPLY_EVENT`].
    pub kind: u64,
    /// The request answered (or, for an event, the handle).
    pub id: u64,
    /// The result (`-errno` on error), or the event bits.
    pub value: i64,
    /// Output bytes following this header.
    pub len: u64,
}

byte_struct!(SchemeReply { kind, id, value, len });

const _: () = assert!(size_of::<SchemeRequest>() == 80 && size_of::<SchemeReply>() == 32);

/// Most descriptors one channel message carries.
pub const CHANNEL_MAX_FDS: usize = 16;

/// Most bytes one channel message carries.
pub const CHANNEL_MAX_MSG: usize = 64 * 1024;

/// Messages a channel endpoint holds for its receiver before `send` blocks.
pub const CHANNEL_QUEUE: usize = 64;

/// [`ChannelCaps::reply`] when a message carries no reply capability.
pub const NO_REPLY: u64 = u64::MAX;

/// The descriptors of a channel message: what `send` and `call` pass, what `recv` and
/// `call` received.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct ChannelCaps {
    /// How many of `fds` are used (at most [`CHANNEL_MAX_FDS`]).
    pub count: u64,
    /// Received: the descriptor of the message's reply capability, or [`NO_REPLY`]
    /// (ignored when sending).
    pub reply: u64,
    /// The descriptors.
    pub fds: [u64; CHANNEL_MAX_FDS],
}

byte_struct!(ChannelCaps { count, reply, fds });

impl ChannelCaps {
    /// Caps passing `fds` (at most [`CHANNEL_MAX_FDS`]; more are left out).
    pub fn with_fds(list: &[usize]) -> ChannelCaps {
        let mut caps = ChannelCaps { reply: NO_REPLY, ..ChannelCaps::default() };
        for (slot, &fd) in caps.fds.iter_mut().zip(list) {
            *slot = fd as u64;
            caps.count += 1;
        }
        caps
    }

    /// The descriptors listed.
    pub fn list(&self) -> &[u64] {
        &self.fds[..(self.count as usize).min(CHANNEL_MAX_FDS)]
    }
}

const _: () = assert!(size_of::<ChannelCaps>() == 16 + 8 * CHANNEL_MAX_FDS);
