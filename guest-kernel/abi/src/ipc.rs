//! User-space scheme providers: the packets between the kernel and a scheme daemon.
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
//! Policy: `open` is class C; in a jail only `file:` and the kernel's device schemes
//! resolve, so a jailed process can neither create a scheme (`:NAME` is EACCES) nor reach
//! one a daemon serves.

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
