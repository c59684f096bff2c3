//! Supervision: the packets a supervisor reads from a `SUPERVISE` descriptor and the replies
//! it writes back.
//!
//! Design (seed 000, made race-free after seed 001):
//! - `supervise(pid, flags) -> fd` (`SYS_SUPERVISE`): `pid` must be a child of the caller
//!   (`EACCES`; `ESRCH` if there is no such process). `flags` is 0 or [`SUPERVISE_BLOCK`]:
//!   without it a read with nothing pending returns 0 bytes (seed 000); with it a read
//!   blocks until a packet arrives and returns 0 only once no supervised process is left
//!   (end of file). `FD_NONBLOCK_CALL` on one read makes just that read non-blocking (EAGAIN).
//! - Every system call, CPU exception / non-gate interrupt of a supervised process blocks
//!   the thread and queues a packet. Clone, exec and exit of a supervised process queue
//!   event packets that need no reply. Children of a supervised process are supervised by
//!   the same supervisors from birth; `CLONE_SUPERVISE` adds a supervisor slot that the
//!   parent fills with `supervise(child)` (the child holds at its first event until then).
//! - A read returns exactly one packet: a [`SupervisePacket`] header followed by
//!   `data_len` bytes of items, each a [`PacketItem`] header followed by its bytes, padded
//!   to a multiple of 8. If the buffer is shorter than the whole packet, the items that fit
//!   are returned and [`PACKET_FLAG_TRUNCATED`] is set (the kernel still acts on its own
//!   full copy). A buffer shorter than the header gets `EINVAL`.
//! - The items of a [`PACKET_SYSCALL`] are the kernel's own copies of every pointer argument
//!   the call reads — the exact bytes it will act on; guest memory is never read again:
//!   [`ITEM_PATH`] (as given) and [`ITEM_RESOLVED`] (the `scheme:path` the kernel will open,
//!   after applying the working directory; for `fexec` the path of the file behind the
//!   descriptor, which is pinned at the time of the packet), [`ITEM_BYTES`] (a write
//!   buffer), [`ITEM_ARG`]/[`ITEM_ENV`] (exec vectors), [`ITEM_STRUCT`] (`Map`, `TimeSpec`,
//!   `SigAction`, a signal set). `PacketItem::arg` is the index of the argument it came from.
//! - A reply is a [`SuperviseReply`] header (followed by `data_len` bytes with
//!   [`REPLY_FLAG_DATA`]), or — seed 000 — one 8-byte integer, which means
//!   `{ seq: 0, action: REPLY_RETURN, value }`. `seq` 0 answers the oldest packet read and not
//!   yet answered. Answering a packet whose thread has gone (killed, interrupted) gives ESRCH.
//!   - [`PACKET_SYSCALL`]: [`REPLY_RETURN`] sets `rax` to `value` without running the call (a
//!     sleep it would have done is cancelled); [`REPLY_RUN`] runs it on the kernel's copy;
//!     [`REPLY_RUN_REPORT`] runs it and queues a [`PACKET_RESULT`]; [`REPLY_KILL`] kills the
//!     process with SIGKILL.
//!   - [`PACKET_RESULT`] (`ret` is the raw result; one [`ITEM_OUTPUT`] per buffer the call
//!     filled, with the bytes it wrote — *not yet* visible to any guest thread):
//!     [`REPLY_RUN`] delivers them unchanged; [`REPLY_RETURN`] makes `value` the result and,
//!     with [`REPLY_FLAG_DATA`], the reply's data replaces the first output's bytes
//!     (at most its length).
//!   - [`PACKET_EXCEPTION`] (`number` is the vector, see `EXC_*`; `args` are
//!     `[rip, fault address, access, signal, rax, 0]`): [`REPLY_RUN`] resumes the thread
//!     where the CPU left it (after a trap such as `int3`, at the instruction for a fault);
//!     [`REPLY_RETURN`] sets `rax` to `value` and resumes; [`REPLY_DEFAULT`] raises the
//!     signal as if nothing supervised the process; [`REPLY_KILL`] kills it.
//! - With several supervisors (a supervised supervisor supervising its own child), the
//!   innermost sees a call first; a call runs only after every supervisor allowed it.
//! - If a supervisor's descriptor is closed, the processes it supervised are killed at
//!   their next event (fail closed).

use core::mem::{offset_of, size_of};

use crate::data::ByteField;

/// `supervise` flag: reads block until a packet is pending.
pub const SUPERVISE_BLOCK: usize = 1;

/// Packet kind: a system call entry. `number`/`args` are the call's; a reply is needed.
pub const PACKET_SYSCALL: u32 = 1;
/// Packet kind: the result of a call run with [`REPLY_RUN_REPORT`]; a reply is needed.
pub const PACKET_RESULT: u32 = 2;
/// Packet kind: a CPU exception or non-gate interrupt; a reply is needed.
pub const PACKET_EXCEPTION: u32 = 3;
/// Event: `pid` created `number` (a process, or a thread if `args[1]` is 1) with clone
/// flags `args[0]`. No reply.
pub const PACKET_CLONE: u32 = 4;
/// Event: `pid` executed a new program; items are the resolved program path and its argv.
/// No reply.
pub const PACKET_EXEC: u32 = 5;
/// Event: `pid` ended with wait status `number`. No reply.
pub const PACKET_EXIT: u32 = 6;

/// Packet flag: the supervisor must answer this packet.
pub const PACKET_FLAG_REPLY: u32 = 1;
/// Packet flag: the read buffer was too short for all items.
pub const PACKET_FLAG_TRUNCATED: u32 = 2;
/// Packet flag: the call came through `int 0x80` (else `syscall`).
pub const PACKET_FLAG_INT80: u32 = 4;

/// Item: a path argument as the guest gave it.
pub const ITEM_PATH: u32 = 1;
/// Item: the canonical `scheme:path` the kernel will act on.
pub const ITEM_RESOLVED: u32 = 2;
/// Item: a buffer the call reads (e.g. `write`'s data).
pub const ITEM_BYTES: u32 = 3;
/// Item: one `argv` entry of `fexec` (or of an exec event).
pub const ITEM_ARG: u32 = 4;
/// Item: one environment entry of `fexec`.
pub const ITEM_ENV: u32 = 5;
/// Item: a structure the call reads, as bytes (`Map`, `TimeSpec`, `SigAction`, signal set).
pub const ITEM_STRUCT: u32 = 6;
/// Item (result packets): bytes the call wrote for the guest, bound for argument `arg`.
pub const ITEM_OUTPUT: u32 = 7;
/// Item (made by the kernel for supervisors, argument 0): the `read` or `write` acts on a
/// scheme daemon's server descriptor, so what it reads is a request packet and what it
/// writes a reply ([`crate::ipc`]); the bytes are the scheme's name. Tracers decode the
/// packets by it.
pub const ITEM_SCHEME: u32 = 8;

/// Exception vector: divide error (#DE).
pub const EXC_DIVIDE: u64 = 0;
/// Exception vector: debug trap (`int1`).
pub const EXC_DEBUG: u64 = 1;
/// Exception vector: breakpoint (`int3`).
pub const EXC_BREAKPOINT: u64 = 3;
/// Exception vector: invalid opcode (#UD).
pub const EXC_INVALID_OPCODE: u64 = 6;
/// Exception vector: general protection (#GP).
pub const EXC_GENERAL_PROTECTION: u64 = 13;
/// Exception vector: page fault (#PF); `args[1]` is the address, `args[2]` the access
/// (0 read, 1 write, 2 execute).
pub const EXC_PAGE_FAULT: u64 = 14;
/// Exception vector: x87 floating point (#MF).
pub const EXC_X87: u64 = 16;
/// Exception vector: SIMD floating point (#XM).
pub const EXC_SIMD: u64 = 19;
/// Exception "vector" of a software interrupt `int n` (n != 0x80, 3): `EXC_INT | n`.
pub const EXC_INT: u64 = 0x100;
/// Exception "vector" of `hlt`.
pub const EXC_HALT: u64 = 0x200;

/// Reply action: set `rax` to `value` (the call is not run / the result is replaced).
pub const REPLY_RETURN: u32 = 0;
/// Reply action: run the call on the kernel's copy / deliver the result / resume.
pub const REPLY_RUN: u32 = 1;
/// Reply action: run the call and queue a [`PACKET_RESULT`] before the result is delivered.
pub const REPLY_RUN_REPORT: u32 = 2;
/// Reply action (exceptions): raise the default signal.
pub const REPLY_DEFAULT: u32 = 3;
/// Reply action: kill the process (SIGKILL).
pub const REPLY_KILL: u32 = 4;

/// Reply flag: `data_len` bytes follow the reply header (see [`PACKET_RESULT`]).
pub const REPLY_FLAG_DATA: u32 = 1;

/// Largest packet the kernel produces (header, items and padding): a buffer this big is
/// never truncated.
pub const SUPERVISE_MAX_PACKET: usize = SupervisePacket::SIZE + (1 << 20) + 64 * 1024 + 4096;

/// The fixed header of every packet (104 bytes, little-endian).
///
/// | offset | field      | meaning                                                     |
/// |-------:|------------|-------------------------------------------------------------|
/// | 0      | `kind`     | `PACKET_*`                                                  |
/// | 4      | `flags`    | `PACKET_FLAG_*`                                             |
/// | 8      | `seq`      | sequence number (unique per kernel, increasing)             |
/// | 16     | `pid`      | process                                                     |
/// | 20     | `tid`      | thread                                                      |
/// | 24     | `number`   | syscall number / exception vector / child pid / wait status |
/// | 32     | `args`     | six arguments (syscall gate order: rdi, rsi, rdx, r10, r8, r9) |
/// | 80     | `ret`      | result (`PACKET_RESULT`)                                    |
/// | 88     | `data_len` | bytes of items following the header, before truncation      |
/// | 96     | `items`    | number of items, before truncation                          |
/// | 100    | `_pad`     | zero                                                        |
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct SupervisePacket {
    /// `PACKET_*`.
    pub kind: u32,
    /// `PACKET_FLAG_*`.
    pub flags: u32,
    /// Sequence number.
    pub seq: u64,
    /// Process id.
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// Syscall number, exception vector, child pid or wait status.
    pub number: u64,
    /// The six arguments (see the kind).
    pub args: [u64; 6],
    /// The result (`PACKET_RESULT`).
    pub ret: u64,
    /// Bytes of items after the header (before truncation).
    pub data_len: u64,
    /// Number of items (before truncation).
    pub items: u32,
    /// Zero.
    pub _pad: u32,
}
byte_struct!(SupervisePacket { kind, flags, seq, pid, tid, number, args, ret, data_len, items, _pad });

/// The header of one item (16 bytes): `kind` (`ITEM_*`) at 0, `arg` (argument index) at 4,
/// `len` at 8; then `len` bytes and zero padding up to a multiple of 8.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct PacketItem {
    /// `ITEM_*`.
    pub kind: u32,
    /// Index of the argument the bytes belong to.
    pub arg: u32,
    /// Length of the bytes that follow (without padding).
    pub len: u64,
}
byte_struct!(PacketItem { kind, arg, len });

/// A reply (32 bytes): `seq` at 0, `action` at 8, `flags` at 12, `value` at 16, `data_len`
/// at 24; with [`REPLY_FLAG_DATA`], `data_len` bytes follow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct SuperviseReply {
    /// The packet answered; 0 = the oldest read and unanswered one.
    pub seq: u64,
    /// `REPLY_*`.
    pub action: u32,
    /// `REPLY_FLAG_*`.
    pub flags: u32,
    /// The value for [`REPLY_RETURN`].
    pub value: u64,
    /// Bytes of data that follow (with [`REPLY_FLAG_DATA`]).
    pub data_len: u64,
}
byte_struct!(SuperviseReply { seq, action, flags, value, data_len });

/// Rounds `n` up to a multiple of 8 (item padding).
pub const fn pad8(n: usize) -> usize {
    (n + 7) & !7
}

/// Walks the items after a packet header: yields `(item, bytes)`; stops at the first item
/// that does not fit in `data`.
pub fn packet_items(data: &[u8]) -> impl Iterator<Item = (PacketItem, &[u8])> {
    let mut at = 0usize;
    core::iter::from_fn(move || {
        let head = PacketItem::from_bytes(data.get(at..)?)?;
        let start = at.checked_add(PacketItem::SIZE)?;
        let end = start.checked_add(usize::try_from(head.len).ok()?)?;
        let bytes = data.get(start..end)?;
        at = start.checked_add(pad8(bytes.len()))?;
        Some((head, bytes))
    })
}

const _: () = assert!(SupervisePacket::SIZE == 104 && offset_of!(SupervisePacket, data_len) == 88);
const _: () = assert!(PacketItem::SIZE == 16 && SuperviseReply::SIZE == 32);
const _: () = assert!(size_of::<SuperviseReply>() == 32);
