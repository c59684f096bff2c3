//! A guest supervisor's channel: the queue behind one `SUPERVISE` descriptor, and the
//! packet encoding (layouts in `warden_abi::supervise`).
//!
//! The descriptor's `read` pops one queued packet; its `write` parses a reply, matches it to
//! an in-flight packet and files it for the held thread, then wakes that thread's hold key.
//! The kernel (`supervise::Kernel::supervise_resume`) does the rest when the thread runs:
//! descriptors have no access to the kernel, so nothing here touches a thread.
//!
//! Cost: a queued packet is its header (inline) plus its encoded items (a `Vec` that stays
//! unallocated when there are none, as for `getpid`); the held and reply lists are short
//! vectors that keep their capacity. So a syscall packet without pointer arguments goes
//! round the channel without a heap allocation.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use warden_abi::*;

use super::host::Reply;
use crate::scheme::{FileOps, IoError, IoResult};
use crate::{Pid, WaitKey, Waker};

/// Base of supervision wait keys (pipes use `1 << 62`).
const KEY_BASE: u64 = 1 << 61;

/// The key a held thread parks on.
pub(crate) fn hold_key(tid: Pid) -> WaitKey {
    WaitKey(KEY_BASE | (tid as u64) << 1)
}

/// A reply filed for a held thread.
#[derive(Clone, Debug)]
pub(crate) struct Answer {
    pub seq: u64,
    pub reply: Reply,
    /// With [`Reply::Return`] to a result packet: the first output's new bytes.
    pub data: Option<Vec<u8>>,
}

struct Queued {
    tid: Pid,
    reply: bool,
    /// The header (`seq`, `data_len` and `items` filled in).
    head: SupervisePacket,
    /// The encoded items.
    items: Vec<u8>,
}

pub(crate) struct Channel {
    id: u64,
    blocking: bool,
    queue: VecDeque<Queued>,
    /// Packets read and awaiting a reply: (seq, tid).
    inflight: VecDeque<(u64, Pid)>,
    /// Replies filed for held threads (at most one per thread).
    replies: Vec<(Pid, Answer)>,
    /// Threads held waiting on this channel.
    held: Vec<Pid>,
    /// Live processes this channel supervises.
    pub members: usize,
    pub closed: bool,
    waker: Waker,
}

pub(crate) type ChannelRef = Rc<RefCell<Channel>>;

impl Channel {
    pub fn new(id: u64, blocking: bool, waker: Waker) -> ChannelRef {
        Rc::new(RefCell::new(Channel {
            id,
            blocking,
            queue: VecDeque::new(),
            inflight: VecDeque::new(),
            replies: Vec::new(),
            held: Vec::new(),
            members: 0,
            closed: false,
            waker,
        }))
    }

    fn key(&self) -> WaitKey {
        WaitKey(KEY_BASE | self.id << 1 | 1)
    }

    /// Wakes readers (a packet arrived, or the last member left).
    pub fn notify(&self) {
        self.waker.wake(self.key());
    }

    /// Queues a packet: `head` with `seq`, followed by `items` (encoded by [`encode_items`]
    /// with `count` items).
    pub fn push(&mut self, seq: u64, tid: Pid, reply: bool, mut head: SupervisePacket, (count, items): (u32, Vec<u8>)) {
        if self.closed {
            return;
        }
        head.seq = seq;
        head.data_len = items.len() as u64;
        head.items = count;
        self.queue.push_back(Queued { tid, reply, head, items });
        self.notify();
    }

    /// Marks `tid` as held waiting on this channel.
    pub fn hold(&mut self, tid: Pid) {
        if !self.held.contains(&tid) {
            self.held.push(tid);
        }
    }

    /// Whether `tid` is held waiting on this channel.
    #[cfg(test)]
    pub fn is_held(&self, tid: Pid) -> bool {
        self.held.contains(&tid)
    }

    fn unhold(&mut self, tid: Pid) {
        self.held.retain(|&t| t != tid);
    }

    /// The reply filed for `tid`'s packet `seq`, if any (stale replies are dropped); the
    /// thread is no longer held here once it has its reply.
    pub fn take_reply(&mut self, tid: Pid, seq: u64) -> Option<Answer> {
        let at = self.replies.iter().position(|(t, _)| *t == tid)?;
        let (_, r) = self.replies.swap_remove(at);
        if r.seq != seq {
            return None;
        }
        self.unhold(tid);
        Some(r)
    }

    /// Forgets a thread (it was killed or moved on).
    pub fn forget(&mut self, tid: Pid) {
        self.unhold(tid);
        self.replies.retain(|(t, _)| *t != tid);
        self.inflight.retain(|&(_, t)| t != tid);
        self.queue.retain(|q| !(q.reply && q.tid == tid));
    }

    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        let Some(q) = self.queue.pop_front() else {
            if self.blocking && self.members > 0 && !self.closed {
                return Err(IoError::WouldBlock(self.key()));
            }
            return Ok(0);
        };
        if buf.len() < SupervisePacket::SIZE {
            self.queue.push_front(q);
            return Err(Errno(EINVAL).into());
        }
        let n = fit_packet(q.head, &q.items, buf);
        if q.reply {
            self.inflight.push_back((q.head.seq, q.tid));
        }
        Ok(n)
    }

    fn write(&mut self, buf: &[u8]) -> Result<usize, Errno> {
        let reply = parse_reply(buf)?;
        let at = if reply.seq == 0 {
            if self.inflight.is_empty() {
                return Err(Errno(EINVAL));
            }
            0
        } else {
            self.inflight.iter().position(|&(s, _)| s == reply.seq).ok_or(Errno(ESRCH))?
        };
        let Some((seq, tid)) = self.inflight.remove(at) else {
            return Err(Errno(ESRCH));
        };
        if !self.held.contains(&tid) {
            return Err(Errno(ESRCH));
        }
        self.replies.retain(|(t, _)| *t != tid);
        self.replies.push((tid, Answer { seq, ..reply }));
        self.waker.wake(hold_key(tid));
        Ok(buf.len())
    }

    fn close(&mut self) {
        self.closed = true;
        self.queue.clear();
        for &tid in &self.held {
            self.waker.wake(hold_key(tid));
        }
        self.notify();
    }
}

/// Parses a reply: 8 bytes (seed 000: set rax) or a `SuperviseReply` (plus data).
fn parse_reply(buf: &[u8]) -> Result<Answer, Errno> {
    if buf.len() == 8 {
        let mut v = [0u8; 8];
        v.copy_from_slice(buf);
        return Ok(Answer { seq: 0, reply: Reply::Return(u64::from_le_bytes(v)), data: None });
    }
    let head = SuperviseReply::from_bytes(buf).ok_or(Errno(EINVAL))?;
    let reply = Reply::try_from(&head)?;
    if head.flags & !REPLY_FLAG_DATA != 0 {
        return Err(Errno(EINVAL));
    }
    let data = if head.flags & REPLY_FLAG_DATA != 0 {
        let len = usize::try_from(head.data_len).map_err(|_| Errno(EINVAL))?;
        let end = SuperviseReply::SIZE.checked_add(len).ok_or(Errno(EINVAL))?;
        Some(buf.get(SuperviseReply::SIZE..end).ok_or(Errno(EINVAL))?.to_vec())
    } else {
        None
    };
    Ok(Answer { seq: head.seq, reply, data })
}

/// Copies the header and the items that fit into `buf` (at least a header long); marks
/// truncation in the copied header.
fn fit_packet(mut head: SupervisePacket, items: &[u8], buf: &mut [u8]) -> usize {
    let mut n = items.len();
    if SupervisePacket::SIZE + n > buf.len() {
        n = 0;
        for (_, bytes) in packet_items(items) {
            let size = PacketItem::SIZE + pad8(bytes.len());
            if SupervisePacket::SIZE + n + size > buf.len() {
                break;
            }
            n += size;
        }
        head.flags |= PACKET_FLAG_TRUNCATED;
    }
    buf[..SupervisePacket::SIZE].copy_from_slice(&head.to_bytes());
    buf[SupervisePacket::SIZE..SupervisePacket::SIZE + n].copy_from_slice(&items[..n]);
    SupervisePacket::SIZE + n
}

/// Encodes items (`warden_abi::PacketItem` layout): (count, bytes). No allocation when
/// `items` is empty.
pub(crate) fn encode_items(items: &[(u32, u32, &[u8])]) -> (u32, Vec<u8>) {
    if items.is_empty() {
        return (0, Vec::new());
    }
    let data_len: usize = items.iter().map(|(_, _, b)| PacketItem::SIZE + pad8(b.len())).sum();
    let mut out = Vec::with_capacity(data_len);
    for &(kind, arg, bytes) in items {
        out.extend_from_slice(&PacketItem { kind, arg, len: bytes.len() as u64 }.to_bytes());
        out.extend_from_slice(bytes);
        out.resize(out.len() + pad8(bytes.len()) - bytes.len(), 0);
    }
    (items.len() as u32, out)
}

/// The open `SUPERVISE` descriptor.
pub(crate) struct SuperviseFile {
    pub channel: ChannelRef,
    pub pid: Pid,
}

impl FileOps for SuperviseFile {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        self.channel.try_borrow_mut().map_err(|_| Errno(EIO))?.read(buf)
    }

    fn write(&mut self, buf: &[u8]) -> IoResult<usize> {
        Ok(self.channel.try_borrow_mut().map_err(|_| Errno(EIO))?.write(buf)?)
    }

    fn stat(&self) -> Result<Stat, Errno> {
        Ok(Stat { st_mode: MODE_CHR | 0o600, st_nlink: 1, ..Stat::default() })
    }

    fn path(&self) -> Vec<u8> {
        format!("supervise:{}", self.pid).into_bytes()
    }

    fn read_hint(&self) -> Option<usize> {
        let ch = self.channel.try_borrow().ok()?;
        Some(SupervisePacket::SIZE + ch.queue.front().map_or(0, |q| q.items.len()))
    }

    fn close(&mut self) {
        if let Ok(mut ch) = self.channel.try_borrow_mut() {
            ch.close();
        }
    }
}
