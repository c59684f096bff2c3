//! Message channels (seed 003; the ABI is `warden_abi::ipc`, "Message channels"): pairs of
//! endpoints moving whole messages, bytes plus descriptors, and the KeyKOS-style `call`
//! whose answer comes back through a one-shot reply capability.
//!
//! Design:
//! - A [`Channel`] holds one inbox per endpoint (what the other endpoint sent it). Each
//!   endpoint is an open file ([`Endpoint`]), so descriptors, `dup`, `fork`, `poll`, `read`
//!   and `write` work on it as on a pipe; `send` and `recv` add the descriptors.
//! - A message holds the *descriptions* it passes (`Rc<OpenFile>`, as `dup` shares them),
//!   so a passed file cannot be closed under the receiver; the receiver gets new descriptors
//!   for them. A queued message lives as long as the endpoint it was sent to (closing that
//!   endpoint drops its inbox).
//! - In-flight endpoints never form a cycle (endpoints holding each other in their inboxes,
//!   alive with no descriptor left anywhere: a leak), by two refusals instead of a garbage
//!   collector: passing an endpoint of the same channel (EINVAL: it would hold itself), and
//!   passing an endpoint whose own inbox holds endpoints (ETOOMANYREFS). Why that suffices:
//!   a cycle needs a last edge "X put in Y's inbox" while X's inbox already holds the next
//!   endpoint of the cycle, which the second rule refuses. The count each inbox keeps
//!   ([`Inbox::endpoints`]) makes the check O(1).
//! - `call` queues a message carrying a [`ReplyRight`] and parks the caller on its
//!   [`ReplySlot`]'s key; the kernel remembers which slot each parked caller waits for
//!   ([`Channels`]), so the re-run of the parked call (the usual blocked-call retry, on the
//!   same `Call`) finds the answer. Many threads may call through one endpoint: each has its
//!   own slot, nothing is shared but the queue.
//! - The right to answer is owned exactly once: by the queued message, then by the
//!   receiver's reply-capability descriptor ([`ReplyCap`]). Dropping it unanswered (the
//!   capability closed, the message dropped with its channel, the server dead) marks the
//!   slot hung up and wakes the caller (EPIPE). An interrupted caller marks its slot
//!   abandoned: a late answer fails with EPIPE and is dropped.
//! - Messages are dropped outside any borrow of their channel: dropping the descriptions
//!   they carry may close other endpoints.
//! - Queued bytes are charged to the kernel's memory account (`Limits::max_memory_total`).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use warden_abi::ipc::{ChannelCaps, CHANNEL_MAX_FDS, CHANNEL_MAX_MSG, CHANNEL_QUEUE, NO_REPLY};
use warden_abi::*;

use crate::mm::MemTotal;
use crate::process::{FdEntry, OpenFile, WaitOn};
use crate::scheme::user::VecMap;
use crate::scheme::{FileOps, FileRef, IoError, IoResult, Readiness, WaitKey};
use crate::syscall::{errno, Block, Call, SysResult, FD_NONBLOCK_CALL};
use crate::usercopy::{check_writable, copy_out};
use crate::{Kernel, Pid, Waker};

/// Wait keys of channels (bit 58): `id << 2 | side << 1 | 0` a message for `side`, `| 1`
/// room in `side`'s inbox; with bit 57 too, reply slot `id`.
const KEY_BASE: u64 = 1 << 58;
const REPLY_KEY_BASE: u64 = KEY_BASE | 1 << 57;

/// Device number of channel endpoints and reply capabilities (`fstat`).
const CHANNEL_DEV: u64 = 8;

/// One message on its way.
struct Message {
    data: Vec<u8>,
    fds: Vec<Rc<OpenFile>>,
    /// The right to answer, for a message `call` sent.
    reply: Option<ReplyRight>,
    /// How many of `fds` are channel endpoints (counted once, when the message is made).
    endpoints: usize,
}

impl Message {
    fn new(data: Vec<u8>, fds: Vec<Rc<OpenFile>>, reply: Option<ReplyRight>) -> Message {
        let endpoints = fds.iter().filter(|d| channel_of(d).is_some()).count();
        Message { data, fds, reply, endpoints }
    }
}

/// What one endpoint has been sent.
#[derive(Default)]
struct Inbox {
    queue: VecDeque<Message>,
    /// Channel endpoints the queued messages carry: while there are any, this endpoint may
    /// not be passed itself (the rule that keeps in-flight endpoints acyclic).
    endpoints: usize,
}

impl Inbox {
    fn push_back(&mut self, msg: Message) {
        self.endpoints += msg.endpoints;
        self.queue.push_back(msg);
    }

    /// Puts back a message just taken (it could not be delivered).
    fn push_front(&mut self, msg: Message) {
        self.endpoints += msg.endpoints;
        self.queue.push_front(msg);
    }

    fn pop_front(&mut self) -> Option<Message> {
        let msg = self.queue.pop_front()?;
        self.endpoints -= msg.endpoints;
        Some(msg)
    }

    fn take(&mut self) -> VecDeque<Message> {
        self.endpoints = 0;
        std::mem::take(&mut self.queue)
    }
}

/// A channel: its two inboxes and which endpoints are still open.
struct Channel {
    id: u64,
    inbox: [Inbox; 2],
    open: [bool; 2],
    account: Rc<MemTotal>,
    waker: Waker,
}

impl Channel {
    /// Wakes whoever waits for a message for `side`.
    fn message_key(&self, side: usize) -> WaitKey {
        WaitKey(KEY_BASE | self.id << 2 | (side as u64) << 1)
    }

    /// Wakes whoever waits for room in `side`'s inbox.
    fn room_key(&self, side: usize) -> WaitKey {
        WaitKey(KEY_BASE | self.id << 2 | (side as u64) << 1 | 1)
    }

    /// Queues `msg` for endpoint `to` (the message comes back on failure, to be dropped by
    /// the caller outside the borrow).
    fn push(&mut self, to: usize, msg: Message) -> Result<(), (IoError, Message)> {
        if !self.open[to] {
            return Err((Errno(EPIPE).into(), msg));
        }
        if self.inbox[to].queue.len() >= CHANNEL_QUEUE {
            return Err((IoError::WouldBlock(self.room_key(to)), msg));
        }
        if self.account.charge(msg.data.len() as u64).is_err() {
            return Err((Errno(ENOMEM).into(), msg));
        }
        self.inbox[to].push_back(msg);
        self.waker.wake(self.message_key(to));
        Ok(())
    }

    /// Takes the next message for `side` if it is at most `room` bytes.
    fn pop(&mut self, side: usize, room: usize) -> IoResult<Message> {
        let Some(front) = self.inbox[side].queue.front() else {
            return Err(if self.open[1 - side] {
                IoError::WouldBlock(self.message_key(side))
            } else {
                Errno(EPIPE).into()
            });
        };
        if front.data.len() > room {
            return Err(Errno(EMSGSIZE).into());
        }
        let msg = self.inbox[side].pop_front().expect("front exists");
        self.account.release(msg.data.len() as u64);
        self.waker.wake(self.room_key(side));
        Ok(msg)
    }

    /// Endpoint `side` is closed: its inbox is emptied (returned, to drop outside the
    /// borrow) and the other side hears of it.
    fn close(&mut self, side: usize) -> VecDeque<Message> {
        self.open[side] = false;
        let dropped = self.inbox[side].take();
        let bytes: usize = dropped.iter().map(|m| m.data.len()).sum();
        self.account.release(bytes as u64);
        self.waker.wake(self.message_key(1 - side));
        self.waker.wake(self.room_key(side));
        dropped
    }
}

/// Where a `call`'s answer lands.
enum SlotState {
    /// The caller waits.
    Waiting,
    /// The answer came.
    Answered(Message),
    /// The right to answer was dropped unanswered.
    HungUp,
    /// The caller gave up (a signal, or it died).
    Abandoned,
}

struct ReplySlot {
    id: u64,
    state: SlotState,
}

impl ReplySlot {
    fn key(&self) -> WaitKey {
        WaitKey(REPLY_KEY_BASE | (self.id & ((1 << 57) - 1)))
    }
}

/// The one right to answer a call (in the queued message, then in the reply capability).
/// Dropping it unanswered hangs up on the caller.
struct ReplyRight {
    slot: Rc<RefCell<ReplySlot>>,
    waker: Waker,
}

impl ReplyRight {
    /// Answers with `msg`; EPIPE (and `msg` back) if the caller gave up.
    fn answer(self, msg: Message) -> Result<(), Message> {
        let mut slot = self.slot.borrow_mut();
        if !matches!(slot.state, SlotState::Waiting) {
            return Err(msg);
        }
        slot.state = SlotState::Answered(msg);
        self.waker.wake(slot.key());
        Ok(())
    }
}

impl Drop for ReplyRight {
    fn drop(&mut self) {
        let Ok(mut slot) = self.slot.try_borrow_mut() else {
            return;
        };
        if matches!(slot.state, SlotState::Waiting) {
            slot.state = SlotState::HungUp;
            self.waker.wake(slot.key());
        }
    }
}

/// An endpoint: one side of a channel.
struct Endpoint {
    chan: Rc<RefCell<Channel>>,
    side: usize,
    closed: bool,
}

impl FileOps for Endpoint {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        let msg = self.chan.borrow_mut().pop(self.side, buf.len())?;
        buf[..msg.data.len()].copy_from_slice(&msg.data);
        Ok(msg.data.len())
    }

    fn write(&mut self, buf: &[u8]) -> IoResult<usize> {
        if buf.len() > CHANNEL_MAX_MSG {
            return Err(Errno(EMSGSIZE).into());
        }
        let msg = Message::new(buf.to_vec(), Vec::new(), None);
        let pushed = self.chan.borrow_mut().push(1 - self.side, msg);
        pushed.map(|()| buf.len()).map_err(|(e, _)| e)
    }

    fn stat(&self) -> Result<Stat, Errno> {
        let c = self.chan.borrow();
        Ok(Stat {
            st_dev: CHANNEL_DEV,
            st_ino: c.id,
            st_mode: MODE_CHR | 0o600,
            st_nlink: 1,
            st_size: c.inbox[self.side].queue.len() as u64,
            ..Stat::default()
        })
    }

    fn path(&self) -> Vec<u8> {
        format!("channel:{}/{}", self.chan.borrow().id, self.side).into_bytes()
    }

    fn readiness(&self) -> Option<Readiness> {
        let c = self.chan.borrow();
        let peer = 1 - self.side;
        Some(Readiness {
            read: !c.inbox[self.side].queue.is_empty(),
            write: c.open[peer] && c.inbox[peer].queue.len() < CHANNEL_QUEUE,
            hangup: !c.open[peer],
            error: !c.open[peer],
        })
    }

    fn read_hint(&self) -> Option<usize> {
        Some(self.chan.borrow().inbox[self.side].queue.front().map_or(0, |m| m.data.len()))
    }

    fn close(&mut self) {
        if !std::mem::replace(&mut self.closed, true) {
            let dropped = self.chan.borrow_mut().close(self.side);
            drop(dropped);
        }
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

/// A reply capability: the descriptor a server answers one call through. The right goes
/// with the capability itself (when its last descriptor closes), not at `close`, so a
/// capability that could not be installed gives its right back.
struct ReplyCap {
    right: RefCell<Option<ReplyRight>>,
    id: u64,
}

impl FileOps for ReplyCap {
    fn write(&mut self, buf: &[u8]) -> IoResult<usize> {
        if buf.len() > CHANNEL_MAX_MSG {
            return Err(Errno(EMSGSIZE).into());
        }
        let right = self.right.get_mut().take().ok_or(Errno(EPIPE))?;
        let msg = Message::new(buf.to_vec(), Vec::new(), None);
        right.answer(msg).map(|()| buf.len()).map_err(|_| Errno(EPIPE).into())
    }

    fn stat(&self) -> Result<Stat, Errno> {
        Ok(Stat { st_dev: CHANNEL_DEV, st_ino: self.id, st_mode: MODE_CHR | 0o200, st_nlink: 1, ..Stat::default() })
    }

    fn path(&self) -> Vec<u8> {
        format!("reply:{}", self.id).into_bytes()
    }

    fn readiness(&self) -> Option<Readiness> {
        let live = self.right.borrow().is_some();
        Some(Readiness { write: live, error: !live, ..Readiness::default() })
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

/// The calls parked waiting for an answer, by thread.
#[derive(Default)]
pub(crate) struct Channels {
    waiting: VecMap<Pid, CallWait>,
}

/// A parked `call`: its slot, and its arguments (a re-run with others is a new call).
struct CallWait {
    slot: Rc<RefCell<ReplySlot>>,
    args: [usize; 6],
}

/// The descriptor argument without `FD_NONBLOCK_CALL`, and whether it was set.
fn split_fd(arg: usize) -> (usize, bool) {
    (arg & !FD_NONBLOCK_CALL, arg & FD_NONBLOCK_CALL != 0)
}

/// What a failed push becomes for a call that is non-blocking or not.
fn blocked(e: IoError, nonblock: bool) -> crate::syscall::SysError {
    match e {
        IoError::Errno(e) => e.into(),
        IoError::WouldBlock(_) if nonblock => Errno(EAGAIN).into(),
        IoError::WouldBlock(key) => Block::retry(WaitOn::Key(key)),
    }
}

impl Kernel {
    /// The channel endpoint (and whether the call is non-blocking) behind `fd`; the
    /// description for a reply capability.
    fn endpoint(&self, tid: Pid, fd_arg: usize) -> Result<(Rc<OpenFile>, bool), Errno> {
        let (fd, nonblock_call) = split_fd(fd_arg);
        let desc = self.desc(tid, fd)?;
        let nonblock = nonblock_call || desc.flags.get() & O_NONBLOCK != 0;
        Ok((desc, nonblock))
    }

    /// The descriptions `caps` lists (thread `tid`'s descriptors), for `chan`'s inbox (`None`:
    /// an answer): none of them an endpoint of `chan` (EINVAL) or one whose own inbox holds
    /// endpoints (ETOOMANYREFS), so that no cycle of endpoints can form in flight.
    fn passed_fds(
        &self,
        tid: Pid,
        caps: Option<&[u8]>,
        chan: Option<&Rc<RefCell<Channel>>>,
    ) -> Result<Vec<Rc<OpenFile>>, Errno> {
        let Some(bytes) = caps else {
            return Ok(Vec::new());
        };
        // Most messages pass nothing: their count alone is read.
        let count = bytes.get(..8).ok_or(Errno(EFAULT))?;
        if count == [0; 8] {
            return Ok(Vec::new());
        }
        let caps = ChannelCaps::from_bytes(bytes).ok_or(Errno(EFAULT))?;
        if caps.count as usize > CHANNEL_MAX_FDS {
            return Err(Errno(EMSGSIZE));
        }
        let mut out = Vec::with_capacity(caps.count as usize);
        for &fd in caps.list() {
            let desc = self.desc(tid, usize::try_from(fd).map_err(|_| Errno(EBADF))?)?;
            if let (Some(chan), Some((passed, side))) = (chan, channel_of(&desc)) {
                if Rc::ptr_eq(&passed, chan) {
                    return Err(Errno(EINVAL));
                }
                if passed.try_borrow().map_or(true, |p| p.inbox[side].endpoints > 0) {
                    return Err(Errno(ETOOMANYREFS));
                }
            }
            out.push(desc);
        }
        Ok(out)
    }

    /// Installs a received message's descriptors (and reply capability) for `tid`: the
    /// caps to report. All or nothing: on failure (EMFILE) nothing stays installed and the
    /// message's parts come back.
    fn install_caps(&mut self, tid: Pid, msg: &mut Message) -> Result<ChannelCaps, Errno> {
        if msg.fds.is_empty() && msg.reply.is_none() {
            return Ok(ChannelCaps { reply: NO_REPLY, ..ChannelCaps::default() });
        }
        let files = self.proc_of(tid)?.files.clone();
        let max = self.config.limits.max_fds;
        let mut caps = ChannelCaps { reply: NO_REPLY, ..ChannelCaps::default() };
        let mut installed = Vec::new();
        let mut result = Ok(());
        for desc in &msg.fds {
            match files.borrow_mut().insert(FdEntry { desc: Rc::clone(desc), cloexec: false }, max) {
                Ok(fd) => installed.push(fd),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        if result.is_ok() {
            if let Some(right) = msg.reply.take() {
                let id = right.slot.borrow().id;
                let cap = Rc::new(RefCell::new(ReplyCap { right: RefCell::new(Some(right)), id }));
                let file: FileRef = cap.clone();
                let inserted =
                    files.borrow_mut().insert(FdEntry { desc: OpenFile::new(file, O_WRONLY), cloexec: false }, max);
                match inserted {
                    Ok(fd) => caps.reply = fd as u64,
                    Err(e) => {
                        // The capability was never installed: the right goes back in the message.
                        msg.reply = cap.borrow().right.borrow_mut().take();
                        result = Err(e);
                    }
                }
            }
        }
        if let Err(e) = result {
            let removed: Vec<_> = installed.iter().filter_map(|&fd| files.borrow_mut().remove(fd).ok()).collect();
            drop(removed);
            return Err(e);
        }
        for (slot, fd) in caps.fds.iter_mut().zip(&installed) {
            *slot = *fd as u64;
        }
        caps.count = installed.len() as u64;
        msg.fds.clear();
        Ok(caps)
    }

    /// Thread `tid` no longer waits for an answer, from a scheme daemon or through a
    /// channel: it was interrupted, or it is gone.
    pub(crate) fn abandon_ipc(&mut self, tid: Pid) {
        self.user_abandon(tid);
        self.channel_abandon(tid);
    }

    /// Thread `tid` no longer waits for its call's answer (interrupted, or gone).
    fn channel_abandon(&mut self, tid: Pid) {
        if let Some(w) = self.channels.waiting.remove(&tid) {
            let mut slot = w.slot.borrow_mut();
            if let SlotState::Answered(_) | SlotState::Waiting = slot.state {
                let old = std::mem::replace(&mut slot.state, SlotState::Abandoned);
                drop(slot);
                drop(old);
            }
        }
    }
}

/// The channel of an endpoint description, and its side.
fn channel_of(desc: &OpenFile) -> Option<(Rc<RefCell<Channel>>, usize)> {
    let file = desc.file.try_borrow().ok()?;
    let end = file.as_any()?.downcast_ref::<Endpoint>()?;
    Some((Rc::clone(&end.chan), end.side))
}

/// `channel(fds_ptr, flags)`.
pub(crate) fn create(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let [addr, flags, ..] = c.args;
    if flags & !(O_NONBLOCK | O_CLOEXEC) != 0 {
        return errno(EINVAL);
    }
    let mm = k.mm_of(tid)?;
    check_writable(&mm.borrow().space.mem, addr, 16)?;
    let id = k.alloc_object_id();
    let chan = Rc::new(RefCell::new(Channel {
        id,
        inbox: Default::default(),
        open: [true, true],
        account: Rc::clone(&k.mem_total),
        waker: k.waker.clone(),
    }));
    let cloexec = flags & O_CLOEXEC != 0;
    let status = O_RDWR | (flags & O_NONBLOCK);
    let end = |side| -> FileRef { Rc::new(RefCell::new(Endpoint { chan: Rc::clone(&chan), side, closed: false })) };
    crate::syscall::install_pair(k, tid, [(end(0), status), (end(1), status)], cloexec, addr)
}

/// `send(fd, buf, len, caps)`.
pub(crate) fn send(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let (desc, nonblock) = k.endpoint(tid, c.args[0])?;
    let data = c.bytes(1)?;
    if data.len() > CHANNEL_MAX_MSG {
        return errno(EMSGSIZE);
    }
    if let Some((chan, side)) = channel_of(&desc) {
        let fds = k.passed_fds(tid, c.input(3), Some(&chan))?;
        let msg = Message::new(data.to_vec(), fds, None);
        let pushed = chan.borrow_mut().push(1 - side, msg);
        return match pushed {
            Ok(()) => Ok(data.len()),
            Err((e, msg)) => {
                drop(msg);
                Err(blocked(e, nonblock))
            }
        };
    }
    // An answer through a reply capability, which it consumes (its descriptor closes).
    let right = {
        let file = desc.file.try_borrow().map_err(|_| Errno(EBADF))?;
        let cap = file.as_any().and_then(|f| f.downcast_ref::<ReplyCap>()).ok_or(Errno(EBADF))?;
        let fds = k.passed_fds(tid, c.input(3), None)?;
        let right = cap.right.borrow_mut().take();
        right.map(|right| (right, fds))
    };
    let _ = k.sys_close(tid, split_fd(c.args[0]).0);
    let (right, fds) = right.ok_or(Errno(EPIPE))?;
    let answer = Message::new(data.to_vec(), fds, None);
    right.answer(answer).map(|()| data.len()).map_err(|_| Errno(EPIPE).into())
}

/// `recv(fd, buf, room, caps)`.
pub(crate) fn recv(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let (desc, nonblock) = k.endpoint(tid, c.args[0])?;
    let (chan, side) = channel_of(&desc).ok_or(Errno(EBADF))?;
    let [_, addr, room, caps_addr, ..] = c.args;
    let room = room.min(CHANNEL_MAX_MSG);
    let mm = k.mm_of(tid)?;
    let popped = chan.borrow_mut().pop(side, room);
    let mut msg = popped.map_err(|e| blocked(e, nonblock))?;
    let n = msg.data.len();
    let delivered = check_writable(&mm.borrow().space.mem, addr, n)
        .and_then(|()| {
            if caps_addr != 0 {
                check_writable(&mm.borrow().space.mem, caps_addr, ChannelCaps::SIZE)
            } else {
                Ok(())
            }
        })
        .and_then(|()| {
            if caps_addr != 0 {
                k.install_caps(tid, &mut msg)
            } else {
                Ok(ChannelCaps { reply: NO_REPLY, ..ChannelCaps::default() })
            }
        });
    let caps = match delivered {
        Ok(caps) => caps,
        Err(e) => {
            // Undeliverable: the message goes back to the front of the queue.
            let mut ch = chan.borrow_mut();
            let _ = ch.account.charge(n as u64);
            ch.inbox[side].push_front(msg);
            return Err(e.into());
        }
    };
    let mut mem = mm.borrow_mut();
    copy_out(&mut mem.space.mem, addr, &msg.data)?;
    if caps_addr != 0 {
        copy_out(&mut mem.space.mem, caps_addr, &caps.to_bytes())?;
    }
    drop(mem);
    drop(msg);
    Ok(n)
}

/// `call(fd, buf, len, room, caps)`. Its row says the buffer and the caps are read and
/// written back whole: a call that fails writes back the kernel's copies (guest memory ends
/// as the kernel saw it), one answered writes the copies with the answer over them.
pub(crate) fn call(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let result = call_step(k, tid, c);
    if let Err(crate::syscall::SysError::Errno(_)) = result {
        write_back(k, tid, c, &[], None);
    }
    result
}

/// Writes `call`'s buffer back as copied with `answer` over its start, and its caps (as
/// copied, or `caps`).
fn write_back(k: &mut Kernel, tid: Pid, c: &Call, answer: &[u8], caps: Option<&ChannelCaps>) {
    let Ok(mm) = k.mm_of(tid) else { return };
    let mut mm = mm.borrow_mut();
    if let Some(buf) = c.input(1) {
        let n = answer.len().min(buf.len());
        let _ = copy_out(&mut mm.space.mem, c.args[1], &answer[..n]);
        if n < buf.len() {
            let _ = copy_out(&mut mm.space.mem, c.args[1] + n, &buf[n..]);
        }
    }
    match (caps, c.input(4)) {
        (Some(caps), Some(_)) => {
            let _ = copy_out(&mut mm.space.mem, c.args[4], &caps.to_bytes());
        }
        (None, Some(copy)) => {
            let _ = copy_out(&mut mm.space.mem, c.args[4], copy);
        }
        _ => {}
    }
}

fn call_step(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    // The re-run of a parked call: its answer, or wait on.
    if let Some(w) = k.channels.waiting.get(&tid) {
        if w.args == c.args {
            return call_answer(k, tid, c);
        }
        k.channel_abandon(tid);
    }
    let [_, _, len, room, ..] = c.args;
    if len > room {
        return errno(EINVAL);
    }
    let (desc, nonblock) = k.endpoint(tid, c.args[0])?;
    let (chan, side) = channel_of(&desc).ok_or(Errno(EBADF))?;
    let buf = c.input(1).ok_or(Errno(EFAULT))?;
    let data = buf.get(..len).ok_or(Errno(EFAULT))?.to_vec();
    let fds = k.passed_fds(tid, c.input(4), Some(&chan))?;
    let id = k.alloc_object_id();
    let slot = Rc::new(RefCell::new(ReplySlot { id, state: SlotState::Waiting }));
    let right = ReplyRight { slot: Rc::clone(&slot), waker: k.waker.clone() };
    let msg = Message::new(data, fds, Some(right));
    let pushed = chan.borrow_mut().push(1 - side, msg);
    if let Err((e, msg)) = pushed {
        // Never queued: no one hangs up on this caller.
        slot.borrow_mut().state = SlotState::Abandoned;
        drop(msg);
        return Err(blocked(e, nonblock));
    }
    let key = slot.borrow().key();
    k.channels.waiting.insert(tid, CallWait { slot, args: c.args });
    Err(Block::retry(WaitOn::Key(key)))
}

/// A parked call's answer, if it came.
fn call_answer(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let Some(w) = k.channels.waiting.get(&tid) else {
        return errno(EPIPE);
    };
    let slot = Rc::clone(&w.slot);
    let state = {
        let mut s = slot.borrow_mut();
        match s.state {
            SlotState::Waiting => return Err(Block::retry(WaitOn::Key(s.key()))),
            _ => std::mem::replace(&mut s.state, SlotState::Abandoned),
        }
    };
    k.channels.waiting.remove(&tid);
    let mut msg = match state {
        SlotState::Answered(msg) => msg,
        _ => return errno(EPIPE),
    };
    let [_, addr, _, room, caps_addr, ..] = c.args;
    let room = c.input(1).map_or(0, <[u8]>::len).min(room);
    let n = msg.data.len();
    if n > room {
        return errno(EMSGSIZE);
    }
    let mm = k.mm_of(tid)?;
    check_writable(&mm.borrow().space.mem, addr, room)?;
    let caps = if caps_addr != 0 {
        check_writable(&mm.borrow().space.mem, caps_addr, ChannelCaps::SIZE)?;
        Some(k.install_caps(tid, &mut msg)?)
    } else {
        None
    };
    write_back(k, tid, c, &msg.data, caps.as_ref());
    drop(msg);
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel() -> (Rc<RefCell<Channel>>, Waker) {
        let waker = Waker::default();
        let chan = Channel {
            id: 3,
            inbox: Default::default(),
            open: [true, true],
            account: Rc::new(MemTotal::new(1 << 20)),
            waker: waker.clone(),
        };
        (Rc::new(RefCell::new(chan)), waker)
    }

    fn msg(data: &[u8]) -> Message {
        Message::new(data.to_vec(), Vec::new(), None)
    }

    #[test]
    fn messages_stay_whole_and_in_order() {
        let (chan, _) = channel();
        let mut c = chan.borrow_mut();
        assert!(c.push(1, msg(b"first")).is_ok());
        assert!(c.push(1, msg(b"second")).is_ok());
        assert_eq!(c.pop(1, 3).err(), Some(IoError::Errno(Errno(EMSGSIZE))));
        assert_eq!(c.pop(1, 64).map(|m| m.data).ok(), Some(b"first".to_vec()));
        assert_eq!(c.pop(1, 64).map(|m| m.data).ok(), Some(b"second".to_vec()));
        assert_eq!(c.pop(1, 64).err(), Some(IoError::WouldBlock(c.message_key(1))));
        assert_eq!(c.account.used(), 0);
    }

    #[test]
    fn a_full_queue_blocks_and_a_closed_peer_is_epipe() {
        let (chan, _) = channel();
        let mut c = chan.borrow_mut();
        for _ in 0..CHANNEL_QUEUE {
            assert!(c.push(1, msg(b"x")).is_ok());
        }
        assert_eq!(c.push(1, msg(b"x")).err().map(|e| e.0), Some(IoError::WouldBlock(c.room_key(1))));
        drop(c.close(1));
        assert_eq!(c.account.used(), 0, "a closed endpoint's queue is released");
        assert_eq!(c.push(1, msg(b"x")).err().map(|e| e.0), Some(IoError::Errno(Errno(EPIPE))));
        assert_eq!(c.pop(0, 64).err(), Some(IoError::Errno(Errno(EPIPE))));
    }

    #[test]
    fn an_unanswered_reply_right_hangs_up_once() {
        let waker = Waker::default();
        let slot = Rc::new(RefCell::new(ReplySlot { id: 9, state: SlotState::Waiting }));
        drop(ReplyRight { slot: Rc::clone(&slot), waker: waker.clone() });
        assert!(matches!(slot.borrow().state, SlotState::HungUp));
        let mut woken = Vec::new();
        waker.drain_into(&mut woken);
        assert_eq!(woken, vec![slot.borrow().key()]);
        // An answer after the caller gave up comes back.
        slot.borrow_mut().state = SlotState::Abandoned;
        let right = ReplyRight { slot: Rc::clone(&slot), waker };
        assert!(right.answer(msg(b"late")).is_err());
    }
}
