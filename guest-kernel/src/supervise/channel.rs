//! A guest supervisor's channel: the queue behind one `SUPERVISE` descriptor, and the
//! packet encoding (layouts in `warden_abi::supervise`).
//!
//! The descriptor's `read` pops one queued packet; its `write` parses a reply, matches it to
//! an in-flight packet and files it for the held thread, then wakes that thread's hold key.
//! The kernel (`supervise::Kernel::supervise_resume`) does the rest when the thread runs:
//! descriptors have no access to the kernel, so nothing here touches a thread.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::rc::Rc;

use warden_abi::*;

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
pub(crate) struct Reply {
    pub seq: u64,
    pub action: u32,
    pub value: u64,
    pub data: Option<Vec<u8>>,
}

struct Queued {
    seq: u64,
    tid: Pid,
    reply: bool,
    bytes: Vec<u8>,
}

pub(crate) struct Channel {
    id: u64,
    blocking: bool,
    queue: VecDeque<Queued>,
    /// Packets read and awaiting a reply: (seq, tid).
    inflight: VecDeque<(u64, Pid)>,
    replies: BTreeMap<Pid, Reply>,
    /// Threads held waiting on this channel.
    pub held: BTreeSet<Pid>,
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
            replies: BTreeMap::new(),
            held: BTreeSet::new(),
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

    pub fn push(&mut self, seq: u64, tid: Pid, reply: bool, bytes: Vec<u8>) {
        if self.closed {
            return;
        }
        self.queue.push_back(Queued { seq, tid, reply, bytes });
        self.notify();
    }

    /// The reply filed for `tid`'s packet `seq`, if any (stale replies are dropped).
    pub fn take_reply(&mut self, tid: Pid, seq: u64) -> Option<Reply> {
        let r = self.replies.remove(&tid)?;
        (r.seq == seq).then_some(r)
    }

    /// Forgets a thread (it was killed or moved on).
    pub fn forget(&mut self, tid: Pid) {
        self.held.remove(&tid);
        self.replies.remove(&tid);
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
        let n = fit_packet(&q.bytes, buf);
        if q.reply {
            self.inflight.push_back((q.seq, q.tid));
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
        self.replies.insert(tid, Reply { seq, ..reply });
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
fn parse_reply(buf: &[u8]) -> Result<Reply, Errno> {
    if buf.len() == 8 {
        let mut v = [0u8; 8];
        v.copy_from_slice(buf);
        return Ok(Reply { seq: 0, action: REPLY_RETURN, value: u64::from_le_bytes(v), data: None });
    }
    let head = SuperviseReply::from_bytes(buf).ok_or(Errno(EINVAL))?;
    if head.action > REPLY_KILL || head.flags & !REPLY_FLAG_DATA != 0 {
        return Err(Errno(EINVAL));
    }
    let data = if head.flags & REPLY_FLAG_DATA != 0 {
        let len = usize::try_from(head.data_len).map_err(|_| Errno(EINVAL))?;
        let end = SuperviseReply::SIZE.checked_add(len).ok_or(Errno(EINVAL))?;
        Some(buf.get(SuperviseReply::SIZE..end).ok_or(Errno(EINVAL))?.to_vec())
    } else {
        None
    };
    Ok(Reply { seq: head.seq, action: head.action, value: head.value, data })
}

/// Copies the header and the items that fit; marks truncation in the copied header.
fn fit_packet(packet: &[u8], buf: &mut [u8]) -> usize {
    if packet.len() <= buf.len() {
        buf[..packet.len()].copy_from_slice(packet);
        return packet.len();
    }
    let mut n = SupervisePacket::SIZE;
    for (item, bytes) in packet_items(&packet[SupervisePacket::SIZE..]) {
        let size = PacketItem::SIZE + pad8(bytes.len());
        if n + size > buf.len() {
            break;
        }
        let _ = item;
        n += size;
    }
    buf[..n].copy_from_slice(&packet[..n]);
    if let Some(mut head) = SupervisePacket::from_bytes(buf) {
        head.flags |= PACKET_FLAG_TRUNCATED;
        let _ = head.write_to(buf);
    }
    n
}

/// Builds one packet: the header (with `data_len`/`items` filled in) and its items.
pub(crate) fn encode(mut head: SupervisePacket, items: &[(u32, u32, &[u8])]) -> Vec<u8> {
    let data_len: usize = items.iter().map(|(_, _, b)| PacketItem::SIZE + pad8(b.len())).sum();
    head.data_len = data_len as u64;
    head.items = items.len() as u32;
    let mut out = Vec::with_capacity(SupervisePacket::SIZE + data_len);
    out.extend_from_slice(&head.to_bytes());
    for &(kind, arg, bytes) in items {
        out.extend_from_slice(&PacketItem { kind, arg, len: bytes.len() as u64 }.to_bytes());
        out.extend_from_slice(bytes);
        out.resize(out.len() + pad8(bytes.len()) - bytes.len(), 0);
    }
    out
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

    fn close(&mut self) {
        if let Ok(mut ch) = self.channel.try_borrow_mut() {
            ch.close();
        }
    }
}
