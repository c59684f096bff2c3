//! User-space scheme providers (daemons): `open(":NAME", O_CREAT)` makes `NAME:` a scheme
//! served by the caller (the packet format is `warden_abi::ipc`'s).
//!
//! Design:
//! - A [`UserScheme`] is a request queue shared (`Rc`) by its server descriptor
//!   ([`Server`]) and by every file opened on it ([`UserFile`], which holds only the daemon's
//!   handle number). The [`Registry`] in the kernel maps names to live schemes and remembers
//!   which request each blocked caller waits for.
//! - A call on a user scheme is served by its own handler, as every call is: the handlers
//!   of the calls a scheme can serve (`open`, `unlink`, `rmdir`, `lseek`, `fstat`, `fpath`,
//!   `fsync`, `ftruncate`, `fmap`, `dup`) first look up who serves their path or descriptor
//!   ([`Kernel::user_scheme_call`]), so the policy, the tap and supervision see these calls
//!   like any other, and no other call pays for the lookup. Reads and writes are found one
//!   level down, in the I/O core both personalities share ([`crate::io`]: `read_desc` and
//!   `write_desc` hand a user-scheme file to [`Kernel::user_read`] and
//!   [`Kernel::user_write`]), so a Linux program's `read`, `readv`, `write` and `writev` on
//!   an inherited user-scheme descriptor reach the daemon too.
//!   The first run queues a request built from the kernel's own
//!   copy of the inputs (`Call` items: the path, the write data) and parks the caller on
//!   the request's key; the daemon's answer wakes it, the call runs again (the usual
//!   blocked-call retry, on the same `Call`), finds the answer and copies the output bytes
//!   out through the checked guest-memory path. So the daemon never sees a caller pointer,
//!   and a daemon may hold many requests and answer them in any order.
//! - Abandoned requests (EINTR, the caller died, a mismatched retry) are cancelled: unread
//!   ones vanish from the queue, read ones are followed by a `SCHEME_CANCEL` packet, and a
//!   late successful `open` answer is closed on the caller's behalf so no handle leaks.
//! - The daemon closing its last server descriptor (exit included) kills the scheme: every
//!   waiting caller gets EIO, later calls on its files EIO, the name is free again.
//! - Closing a file's last descriptor sends a `close` request no one waits for (a
//!   description's close cannot block).
//! - Readiness for `poll` is what the daemon last reported with a `REPLY_EVENT`; a handle
//!   without one never blocks (as the kernel's own files that have no readiness).

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;

use warden_abi::ipc::*;
use warden_abi::*;

use super::{FileOps, FileRef, IoError, IoResult, Readiness, WaitKey};
use crate::process::{OpenFile, WaitOn};
use crate::syscall::{Block, Call, SysError, SysResult, FD_NONBLOCK_CALL, MAX_IO};
use crate::usercopy::{check_writable, copy_out};
use crate::{Kernel, Pid, Waker};

/// Wait keys of user schemes (bit 59): `scheme id << 32 | request id << 1`, the scheme's
/// own queue at request id 0, its readiness changes with the low bit set.
const KEY_BASE: u64 = 1 << 59;

/// Device number of user-scheme files when the daemon's `fstat` does not say.
const USER_DEV: u64 = 7;

/// A request the kernel made and has not finished with.
struct Pending {
    /// The thread waiting for the answer (`None`: abandoned, or nobody waits, as for close).
    caller: Option<Pid>,
    call: u64,
    /// The daemon has read it.
    delivered: bool,
    /// The answer: result and output bytes.
    answer: Option<(i64, Vec<u8>)>,
}

/// A map kept as a list: what the IPC paths key by request or thread, where a handful of
/// entries is the rule. Every round trip inserts and removes one entry; on a `BTreeMap` that
/// was ~250 host instructions each (a node's values shifted and copied), here it is a push and
/// a swap. Lookups scan (a daemon with hundreds of callers waiting pays per call for that).
pub(crate) struct VecMap<K, V>(Vec<(K, V)>);

impl<K, V> Default for VecMap<K, V> {
    fn default() -> Self {
        VecMap(Vec::new())
    }
}

impl<K: PartialEq + Copy, V> VecMap<K, V> {
    pub(crate) fn get(&self, key: &K) -> Option<&V> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub(crate) fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.0.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Sets `key`'s value (replacing and returning the old one).
    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        match self.get_mut(&key) {
            Some(old) => Some(std::mem::replace(old, value)),
            None => {
                self.0.push((key, value));
                None
            }
        }
    }

    pub(crate) fn remove(&mut self, key: &K) -> Option<V> {
        let i = self.0.iter().position(|(k, _)| k == key)?;
        Some(self.0.swap_remove(i).1)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.0.iter().map(|(k, v)| (k, v))
    }
}

/// One user scheme: its queue and the requests in flight.
pub(crate) struct UserScheme {
    id: u64,
    name: Vec<u8>,
    /// The jail of the process that created it (`None`: none).
    jail: Option<Rc<crate::policy::Jail>>,
    alive: bool,
    next_request: u64,
    /// Packets the daemon has not read yet (requests and cancels).
    queue: VecDeque<(SchemeRequest, Vec<u8>)>,
    pending: VecMap<u64, Pending>,
    /// Readiness the daemon reported, by handle.
    events: BTreeMap<u64, Readiness>,
    waker: Waker,
}

impl UserScheme {
    fn queue_key(&self) -> WaitKey {
        WaitKey(KEY_BASE | self.id << 32)
    }

    fn request_key(&self, id: u64) -> WaitKey {
        WaitKey(KEY_BASE | self.id << 32 | (id & 0x7fff_ffff) << 1)
    }

    fn event_key(&self) -> WaitKey {
        WaitKey(KEY_BASE | self.id << 32 | 1)
    }

    /// Queues `req` (its id filled in) with `input`; returns the id.
    fn submit(&mut self, mut req: SchemeRequest, input: Vec<u8>, caller: Option<Pid>) -> u64 {
        self.next_request += 1;
        let id = self.next_request;
        req.id = id;
        req.in_len = input.len() as u64;
        self.pending.insert(id, Pending { caller, call: req.call, delivered: false, answer: None });
        self.queue.push_back((req, input));
        self.waker.wake(self.queue_key());
        id
    }

    /// Asks the daemon to close `handle` (nobody waits for the answer).
    fn close_handle(&mut self, handle: u64) {
        if self.alive {
            let req = SchemeRequest { call: SYS_CLOSE as u64, handle, ..SchemeRequest::default() };
            self.submit(req, Vec::new(), None);
        }
    }

    /// The caller of request `id` is gone: forget it, telling the daemon if it has it.
    fn cancel(&mut self, id: u64) {
        let Some(p) = self.pending.get_mut(&id) else {
            return;
        };
        if !p.delivered {
            self.pending.remove(&id);
            self.queue.retain(|(r, _)| r.id != id || r.call == SCHEME_CANCEL);
            return;
        }
        match p.answer.take() {
            Some((value, _)) => {
                let call = p.call;
                self.pending.remove(&id);
                if value >= 0 && (call == SYS_OPEN as u64 || call == SYS_DUP as u64) {
                    self.close_handle(value as u64);
                }
            }
            None => {
                p.caller = None;
                let req = SchemeRequest { id, call: SCHEME_CANCEL, ..SchemeRequest::default() };
                self.queue.push_back((req, Vec::new()));
                self.waker.wake(self.queue_key());
            }
        }
    }

    /// The daemon is gone: every caller still waiting for an answer gets EIO (answers given
    /// before stay).
    fn die(&mut self) {
        self.alive = false;
        self.queue.clear();
        let unanswered: Vec<u64> = self.pending.iter().filter(|(_, p)| p.answer.is_none()).map(|(&id, _)| id).collect();
        for id in unanswered {
            if self.pending.remove(&id).is_some_and(|p| p.caller.is_some()) {
                self.waker.wake(self.request_key(id));
            }
        }
        self.events.clear();
        self.waker.wake(self.event_key());
    }

    /// A daemon's reply.
    fn reply(&mut self, reply: &SchemeReply, bytes: &[u8]) -> Result<(), Errno> {
        match reply.kind {
            REPLY_EVENT => {
                let v = reply.value;
                let ready = Readiness {
                    read: v & EVENT_READ != 0,
                    write: v & EVENT_WRITE != 0,
                    hangup: v & EVENT_HANGUP != 0,
                    error: v & EVENT_ERROR != 0,
                };
                self.events.insert(reply.id, ready);
                self.waker.wake(self.event_key());
                Ok(())
            }
            REPLY_ANSWER => {
                let key = self.request_key(reply.id);
                let p = self.pending.get_mut(&reply.id).filter(|p| p.delivered && p.answer.is_none());
                let p = p.ok_or(Errno(ENOENT))?;
                if p.caller.is_some() {
                    p.answer = Some((reply.value, bytes.to_vec()));
                    self.waker.wake(key);
                } else {
                    let call = p.call;
                    self.pending.remove(&reply.id);
                    if reply.value >= 0 && (call == SYS_OPEN as u64 || call == SYS_DUP as u64) {
                        self.close_handle(reply.value as u64);
                    }
                }
                Ok(())
            }
            _ => Err(Errno(EINVAL)),
        }
    }
}

/// The user schemes of a kernel and the callers waiting on them.
#[derive(Default)]
pub(crate) struct Registry {
    schemes: BTreeMap<Vec<u8>, Rc<RefCell<UserScheme>>>,
    /// The request each parked caller waits for, with the call it made.
    waiting: VecMap<Pid, Waiting>,
    /// Some scheme was ever made: until then calls skip the lookup.
    pub(crate) active: bool,
}

struct Waiting {
    scheme: Rc<RefCell<UserScheme>>,
    id: u64,
    retry: Retry,
    finish: Finish,
    /// What a new file shows as its path (open, dup).
    path: Vec<u8>,
}

/// What tells the re-run of a parked call from a new call (which abandons the request).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// A call its handler serves: its number and arguments.
    Call(usize, [usize; 6]),
    /// A transfer through [`crate::io`]: the description, whether it writes, where the
    /// guest buffer starts (reads) and how long it is.
    Io { desc: usize, write: bool, base: usize, len: usize },
}

impl Registry {
    /// The live scheme called `name`.
    fn live(&self, name: &[u8]) -> Option<Rc<RefCell<UserScheme>>> {
        self.schemes.get(name).filter(|s| s.borrow().alive).cloned()
    }
}

/// The daemon's end: reads requests, takes replies.
struct Server {
    scheme: Rc<RefCell<UserScheme>>,
    closed: bool,
}

impl FileOps for Server {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        let mut s = self.scheme.borrow_mut();
        let Some((req, input)) = s.queue.front() else {
            return Err(IoError::WouldBlock(s.queue_key()));
        };
        let need = SchemeRequest::SIZE + input.len();
        if buf.len() < need {
            return Err(Errno(EINVAL).into());
        }
        buf[..SchemeRequest::SIZE].copy_from_slice(&req.to_bytes());
        buf[SchemeRequest::SIZE..need].copy_from_slice(input);
        let (req, _) = s.queue.pop_front().expect("front exists");
        if req.call != SCHEME_CANCEL {
            if let Some(p) = s.pending.get_mut(&req.id) {
                p.delivered = true;
            }
        }
        Ok(need)
    }

    fn write(&mut self, buf: &[u8]) -> IoResult<usize> {
        let reply = SchemeReply::from_bytes(buf).ok_or(Errno(EINVAL))?;
        let len = usize::try_from(reply.len).map_err(|_| Errno(EINVAL))?;
        let end = SchemeReply::SIZE.checked_add(len).filter(|&e| e <= buf.len()).ok_or(Errno(EINVAL))?;
        self.scheme.borrow_mut().reply(&reply, &buf[SchemeReply::SIZE..end])?;
        Ok(end)
    }

    fn stat(&self) -> Result<Stat, Errno> {
        Ok(Stat { st_dev: USER_DEV, st_mode: MODE_CHR | 0o600, st_nlink: 1, ..Stat::default() })
    }

    fn path(&self) -> Vec<u8> {
        [&b":"[..], &self.scheme.borrow().name].concat()
    }

    fn readiness(&self) -> Option<Readiness> {
        Some(Readiness { read: !self.scheme.borrow().queue.is_empty(), write: true, ..Readiness::default() })
    }

    fn read_hint(&self) -> Option<usize> {
        Some(self.scheme.borrow().queue.front().map_or(0, |(_, input)| SchemeRequest::SIZE + input.len()))
    }

    fn close(&mut self) {
        if !std::mem::replace(&mut self.closed, true) {
            self.scheme.borrow_mut().die();
        }
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

/// A file opened on a user scheme: the daemon's handle.
pub(crate) struct UserFile {
    scheme: Rc<RefCell<UserScheme>>,
    handle: u64,
    /// `name:path` as opened (what traces and `proc:` show; `fpath` asks the daemon).
    path: Vec<u8>,
    closed: bool,
}

/// What a user-scheme file answers to the calls no request carries (a Linux `fstat` or
/// `mmap`, the kernel's own whole-file reads for `sendfile` and the like): they would need
/// the daemon, and a file operation cannot wait for one.
const NOT_THROUGH_DAEMON: Errno = Errno(EOPNOTSUPP);

impl FileOps for UserFile {
    fn read(&mut self, _buf: &mut [u8]) -> IoResult<usize> {
        // Reads reach the daemon through `Kernel::user_read`; this is the kernel's own.
        Err(NOT_THROUGH_DAEMON.into())
    }

    fn write(&mut self, _buf: &[u8]) -> IoResult<usize> {
        Err(NOT_THROUGH_DAEMON.into())
    }

    fn stat(&self) -> Result<Stat, Errno> {
        Err(NOT_THROUGH_DAEMON)
    }

    fn path(&self) -> Vec<u8> {
        self.path.clone()
    }

    fn readiness(&self) -> Option<Readiness> {
        let s = self.scheme.borrow();
        if !s.alive {
            return Some(Readiness { read: true, write: true, hangup: true, error: true });
        }
        s.events.get(&self.handle).copied()
    }

    fn close(&mut self) {
        if !std::mem::replace(&mut self.closed, true) {
            self.scheme.borrow_mut().close_handle(self.handle);
        }
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

/// How a finished request's answer becomes the call's result.
enum Finish {
    /// The value as is (write, lseek, fsync, ftruncate, unlink, rmdir, close).
    Value,
    /// A new handle: install a descriptor with these open flags.
    Open { flags: usize },
    /// Copy the output bytes to `addr` (at most `len`); the result is the value.
    Out { addr: usize, len: usize },
    /// Scatter the output bytes over these guest ranges (a `readv`); the result is the value.
    Scatter(Vec<(usize, usize)>),
    /// The output bytes are a `Stat` for `addr`.
    Stat { addr: usize },
    /// The output bytes are the contents of this mapping.
    Map(Map),
}

/// A request about to be made: the packet, its input, and how the answer finishes the call.
struct Plan {
    scheme: Rc<RefCell<UserScheme>>,
    req: SchemeRequest,
    input: Vec<u8>,
    finish: Finish,
    /// Open path shown by the new file (`name:rest`).
    path: Vec<u8>,
}

impl Kernel {
    /// The scheme lookup of the handlers of calls a user scheme can serve: serves `call` if
    /// it acts on a user scheme (creating one included); `None` for every other call, which
    /// the handler then runs itself.
    #[inline]
    pub(crate) fn user_scheme_call(&mut self, tid: Pid, call: &Call) -> Option<SysResult> {
        let creates = || call.number == SYS_OPEN && call.path(0).is_ok_and(|p| p.first() == Some(&b':'));
        if self.ns.user.active || creates() {
            self.user_scheme_slow(tid, call)
        } else {
            None
        }
    }

    fn user_scheme_slow(&mut self, tid: Pid, call: &Call) -> Option<SysResult> {
        if call.number == SYS_OPEN && call.args[2] & O_CREAT != 0 {
            if let Some(name) = call.path(0).ok().and_then(|p| p.strip_prefix(b":")) {
                return Some(self.create_user_scheme(tid, name, call.args[2]).map_err(Into::into));
            }
        }
        self.user_request(tid, Retry::Call(call.number, call.args), |k| k.user_plan(tid, call))
    }

    /// A read of user-scheme file `desc` through [`crate::io`] (either personality): `None`
    /// if `desc` is no user-scheme file. The daemon's read has no offset: `pread` is ESPIPE.
    pub(crate) fn user_read(
        &mut self,
        tid: Pid,
        desc: &OpenFile,
        iov: &[(usize, usize)],
        how: crate::io::How,
    ) -> Option<SysResult> {
        let (scheme, handle) = user_file(desc)?;
        if !how.whole_call {
            return Some(Err(NOT_THROUGH_DAEMON.into()));
        }
        if how.at.is_some() {
            return Some(Err(Errno(ESPIPE).into()));
        }
        let len = iov.iter().fold(0usize, |t, &(_, l)| t.saturating_add(l)).min(MAX_IO - SchemeReply::SIZE);
        let base = iov.first().map_or(0, |r| r.0);
        let retry = Retry::Io { desc: desc as *const OpenFile as usize, write: false, base, len };
        let served = self.user_request(tid, retry, |k| {
            let mm = k.mm_of(tid)?;
            let mut left = len;
            for &(base, l) in iov {
                check_writable(&mm.borrow().space.mem, base, l.min(left))?;
                left -= l.min(left);
            }
            let finish = match iov {
                [(addr, _)] => Finish::Out { addr: *addr, len },
                _ => Finish::Scatter(iov.to_vec()),
            };
            let req = SchemeRequest {
                call: SYS_READ as u64,
                flags: if how.nonblock { REQ_NONBLOCK } else { 0 },
                handle,
                args: [len as u64, 0, 0],
                out_len: len as u64,
                ..SchemeRequest::default()
            };
            Ok(Some(Plan { scheme, req, input: Vec::new(), finish, path: Vec::new() }))
        });
        Some(served.unwrap_or_else(|| Err(Errno(EIO).into())))
    }

    /// A write of `data` to user-scheme file `desc` through [`crate::io`] (either
    /// personality), as [`Kernel::user_read`]: one request carrying the data (at most what
    /// one request holds); the daemon's count is the result. `pwrite` is ESPIPE.
    pub(crate) fn user_write(
        &mut self,
        tid: Pid,
        desc: &OpenFile,
        data: &[u8],
        how: crate::io::How,
    ) -> Option<SysResult> {
        let (scheme, handle) = user_file(desc)?;
        if !how.whole_call {
            return Some(Err(NOT_THROUGH_DAEMON.into()));
        }
        if how.at.is_some() {
            return Some(Err(Errno(ESPIPE).into()));
        }
        let data = &data[..data.len().min(MAX_IO - SchemeRequest::SIZE)];
        // (The data may be gathered afresh by each run of the call: its address says nothing.)
        let retry = Retry::Io { desc: desc as *const OpenFile as usize, write: true, base: 0, len: data.len() };
        let served = self.user_request(tid, retry, |_| {
            let req = SchemeRequest {
                call: SYS_WRITE as u64,
                flags: if how.nonblock { REQ_NONBLOCK } else { 0 },
                handle,
                ..SchemeRequest::default()
            };
            Ok(Some(Plan { scheme, req, input: data.to_vec(), finish: Finish::Value, path: Vec::new() }))
        });
        Some(served.unwrap_or_else(|| Err(Errno(EIO).into())))
    }

    /// Serves thread `tid`'s call through a user scheme: the re-run of its parked call
    /// (`retry` as parked) finishes or parks again; otherwise `plan` says what request to
    /// make (`None`: the call is not a user-scheme call), which parks the caller.
    fn user_request(
        &mut self,
        tid: Pid,
        retry: Retry,
        plan: impl FnOnce(&mut Kernel) -> Result<Option<Plan>, SysError>,
    ) -> Option<SysResult> {
        if let Some(w) = self.ns.user.waiting.get(&tid) {
            if w.retry == retry {
                return Some(self.user_resume(tid));
            }
            self.user_abandon(tid);
        }
        let plan = match plan(self) {
            Ok(Some(plan)) => plan,
            Ok(None) => return None,
            Err(e) => return Some(Err(e)),
        };
        let Plan { scheme, mut req, input, finish, path } = plan;
        let Ok(ctx) = self.call_ctx(tid) else {
            return Some(Err(Errno(ESRCH).into()));
        };
        (req.pid, req.uid, req.gid) = (ctx.pid, ctx.uid, ctx.gid);
        let (id, key) = {
            let mut s = scheme.borrow_mut();
            if !s.alive {
                return Some(Err(Errno(EIO).into()));
            }
            let id = s.submit(req, input, Some(tid));
            (id, s.request_key(id))
        };
        self.ns.user.waiting.insert(tid, Waiting { scheme, id, retry, finish, path });
        Some(Err(Block::retry(WaitOn::Key(key))))
    }

    /// The answer to `tid`'s parked request, if it came.
    fn user_resume(&mut self, tid: Pid) -> SysResult {
        let (scheme, id) = match self.ns.user.waiting.get(&tid) {
            Some(w) => (Rc::clone(&w.scheme), w.id),
            None => return Err(Errno(EIO).into()),
        };
        let answer = {
            let mut s = scheme.borrow_mut();
            match s.pending.get_mut(&id) {
                None => Some(None),
                Some(p) => match p.answer.take() {
                    Some(a) => {
                        s.pending.remove(&id);
                        Some(Some(a))
                    }
                    None => None,
                },
            }
        };
        let Some(answer) = answer else {
            let key = scheme.borrow().request_key(id);
            return Err(Block::retry(WaitOn::Key(key)));
        };
        let Some(Waiting { finish, path, .. }) = self.ns.user.waiting.remove(&tid) else {
            return Err(Errno(EIO).into());
        };
        // The request is gone without an answer: the daemon died.
        let (value, bytes) = answer.ok_or(Errno(EIO))?;
        if value < 0 {
            let e = value.checked_neg().and_then(|e| i32::try_from(e).ok()).filter(|e| (1..4096).contains(e));
            return Err(Errno(e.unwrap_or(EIO)).into());
        }
        let value = value as u64;
        match finish {
            Finish::Value => usize::try_from(value).map_err(|_| Errno(EINVAL).into()),
            Finish::Open { flags } => {
                let file = UserFile { scheme: Rc::clone(&scheme), handle: value, path, closed: false };
                let file: FileRef = Rc::new(RefCell::new(file));
                Ok(self.install_fd(tid, file, flags, flags & O_CLOEXEC != 0)?)
            }
            Finish::Out { addr, len } => {
                let n = bytes.len().min(len);
                copy_out(&mut self.mm_of(tid)?.borrow_mut().space.mem, addr, &bytes[..n])?;
                Ok((value as usize).min(n))
            }
            Finish::Scatter(iov) => {
                let len = iov.iter().fold(0usize, |t, &(_, l)| t.saturating_add(l));
                let n = bytes.len().min(len);
                crate::io::scatter(&mut self.mm_of(tid)?.borrow_mut().space.mem, &iov, &bytes[..n])?;
                Ok((value as usize).min(n))
            }
            Finish::Stat { addr } => {
                let stat = Stat::from_bytes(&bytes).ok_or(Errno(EIO))?;
                copy_out(&mut self.mm_of(tid)?.borrow_mut().space.mem, addr, &stat.to_bytes())?;
                Ok(0)
            }
            Finish::Map(map) => crate::syscall::map_contents(self, tid, &map, Some(bytes)),
        }
    }

    /// What request `call` makes of a user scheme (`None`: it is not a user-scheme call).
    fn user_plan(&mut self, tid: Pid, call: &Call) -> Result<Option<Plan>, SysError> {
        let a = call.args;
        // A Linux `lseek` is Redox `lseek`, argument for argument.
        let number = match call.number {
            n if n == warden_abi::linux::LINUX_CALL | warden_abi::linux::nr::LSEEK => SYS_LSEEK,
            n => n,
        };
        let mut req = SchemeRequest { call: number as u64, ..SchemeRequest::default() };
        match number {
            SYS_OPEN | SYS_UNLINK | SYS_RMDIR => {
                let (name, rest) = self.proc_of(tid)?.fs.borrow().resolve(call.path(0)?)?;
                let Some(scheme) = self.ns.user.live(&name) else {
                    return Ok(None);
                };
                let path = [&name[..], b":", &rest].concat();
                let finish = if number == SYS_OPEN { Finish::Open { flags: a[2] } } else { Finish::Value };
                if number == SYS_OPEN {
                    req.args[0] = a[2] as u64;
                }
                Ok(Some(Plan { scheme, req, input: rest, finish, path }))
            }
            SYS_LSEEK | SYS_FSTAT | SYS_FPATH | SYS_FSYNC | SYS_FTRUNCATE | SYS_FMAP | SYS_DUP => {
                let fd = a[0];
                if number == SYS_FMAP && fd == ANONYMOUS_FD {
                    return Ok(None);
                }
                let Ok(desc) = self.desc(tid, fd) else {
                    return Ok(None);
                };
                let Some((scheme, handle)) = user_file(&desc) else {
                    return Ok(None);
                };
                if desc.flags.get() & O_NONBLOCK != 0 {
                    req.flags |= REQ_NONBLOCK;
                }
                req.handle = handle;
                let mut input = Vec::new();
                let mut path = Vec::new();
                let mem_check = |k: &Kernel, addr, len| -> Result<(), Errno> {
                    check_writable(&k.mm_of(tid)?.borrow().space.mem, addr, len)
                };
                let finish = match number {
                    SYS_LSEEK => {
                        if a[2] > SEEK_END {
                            return Err(Errno(EINVAL).into());
                        }
                        req.args = [a[1] as u64, a[2] as u64, 0];
                        Finish::Value
                    }
                    SYS_FSTAT => {
                        if a[2] < Stat::SIZE {
                            return Err(Errno(EINVAL).into());
                        }
                        mem_check(self, a[1], Stat::SIZE)?;
                        req.out_len = Stat::SIZE as u64;
                        Finish::Stat { addr: a[1] }
                    }
                    SYS_FPATH => {
                        let len = a[2].min(4096);
                        mem_check(self, a[1], len)?;
                        req.out_len = len as u64;
                        Finish::Out { addr: a[1], len }
                    }
                    SYS_FTRUNCATE => {
                        if desc.flags.get() & O_ACCMODE == O_RDONLY {
                            return Err(Errno(EBADF).into());
                        }
                        req.args[0] = a[1] as u64;
                        Finish::Value
                    }
                    SYS_FMAP => {
                        let map = Map::from_bytes(call.input(1).ok_or(Errno(EFAULT))?).ok_or(Errno(EFAULT))?;
                        if a[2] < Map::SIZE || map.size == 0 || map.size > MAX_IO - SchemeReply::SIZE {
                            return Err(Errno(EINVAL).into());
                        }
                        req.args = [map.offset as u64, map.size as u64, map.flags as u64];
                        req.out_len = map.size as u64;
                        Finish::Map(map)
                    }
                    SYS_DUP => {
                        // A plain dup shares the description; a sub-path asks the daemon.
                        let sub = call.items().get(ITEM_BYTES, 1).unwrap_or(&[]);
                        if sub.is_empty() {
                            return Ok(None);
                        }
                        input = sub.to_vec();
                        path = desc.file.try_borrow().map(|f| f.path()).unwrap_or_default();
                        Finish::Open { flags: desc.flags.get() }
                    }
                    _ => Finish::Value, // fsync
                };
                Ok(Some(Plan { scheme, req, input, finish, path }))
            }
            _ => Ok(None),
        }
    }

    /// `open(":NAME", O_CREAT)`: makes the scheme `NAME:` and returns its server descriptor.
    fn create_user_scheme(&mut self, tid: Pid, name: &[u8], flags: usize) -> Result<usize, Errno> {
        let valid = !name.is_empty() && name.len() <= 64 && name.iter().all(|&b| b != b':' && b != b'/' && b != 0);
        if !valid {
            return Err(Errno(EINVAL));
        }
        if self.ns.schemes.contains_key(name)
            || matches!(name, b"proc" | b"pipe" | b"file")
            || self.ns.user.live(name).is_some()
        {
            return Err(Errno(EEXIST));
        }
        let id = self.alloc_object_id() & 0x0fff_ffff;
        let jail = self.procs_jail(tid);
        let scheme = Rc::new(RefCell::new(UserScheme {
            id,
            name: name.to_vec(),
            jail,
            alive: true,
            next_request: 0,
            queue: VecDeque::new(),
            pending: VecMap::default(),
            events: BTreeMap::new(),
            waker: self.waker.clone(),
        }));
        let server: FileRef = Rc::new(RefCell::new(Server { scheme: Rc::clone(&scheme), closed: false }));
        let fd = self.install_fd(tid, server, O_RDWR | (flags & O_NONBLOCK), flags & O_CLOEXEC != 0)?;
        self.ns.user.schemes.insert(name.to_vec(), scheme);
        self.ns.user.active = true;
        Ok(fd)
    }

    /// Whether a process in `jail` (with `JAIL_SCHEMES`) may reach scheme `name`: creating one
    /// (`name` empty: the path was `:NEW`) always, using one only if its daemon was created
    /// inside `jail`.
    pub(crate) fn user_scheme_inside(&self, name: &[u8], jail: &crate::policy::Jail) -> bool {
        name.is_empty() || self.ns.user.live(name).is_some_and(|s| jail.encloses(s.borrow().jail.as_ref()))
    }

    /// Marks a `read` or `write` on a scheme's server descriptor with an `ITEM_SCHEME` item
    /// (the scheme's name), so supervisors and tracers decode its packets.
    pub(crate) fn mark_scheme_server(&self, tid: Pid, call: &mut Call) {
        let Ok(desc) = self.desc(tid, call.args[0] & !FD_NONBLOCK_CALL) else { return };
        let name = match desc.file.try_borrow() {
            Ok(f) => match f.as_any().and_then(|f| f.downcast_ref::<Server>()) {
                Some(server) => server.scheme.borrow().name.clone(),
                None => return,
            },
            Err(_) => return,
        };
        call.set_item(ITEM_SCHEME, 0, &name);
    }

    /// The jail of thread `tid`'s process, if it has one.
    fn procs_jail(&self, tid: Pid) -> Option<Rc<crate::policy::Jail>> {
        self.proc_of(tid).ok()?.restrict.as_ref()?.jail.clone()
    }

    /// Thread `tid` no longer waits for its request (interrupted, or gone): cancel it.
    pub(crate) fn user_abandon(&mut self, tid: Pid) {
        if let Some(w) = self.ns.user.waiting.remove(&tid) {
            w.scheme.borrow_mut().cancel(w.id);
        }
    }
}

/// The scheme and the daemon's handle of `desc`, if it is a user-scheme file.
fn user_file(desc: &OpenFile) -> Option<(Rc<RefCell<UserScheme>>, u64)> {
    let f = desc.file.try_borrow().ok()?;
    let u = f.as_any()?.downcast_ref::<UserFile>()?;
    Some((Rc::clone(&u.scheme), u.handle))
}

#[cfg(test)]
mod tests {
    use emu::{reg, Gate, GuestAddress, Perm};
    use warden_abi::linux::flag::{POLLERR, POLLHUP, POLLIN};
    use warden_abi::linux::{nr, LINUX_CALL};

    use super::*;
    use crate::process::ThreadState;
    use crate::scheme::memfs::MemFs;
    use crate::{CaptureConsole, KernelConfig};

    /// Buffers live here.
    const BUF: u64 = 0x1000_0000;

    /// A kernel whose init is a Linux process (stopped before its first instruction) with
    /// [`BUF`] mapped.
    fn kernel() -> (Kernel, Pid) {
        let fs = MemFs::new();
        fs.insert("/p", &crate::testkit::static_elf(&[0xf4], 0));
        let (console, _) = CaptureConsole::new(b"");
        let mut k = Kernel::new(KernelConfig::default(), Box::new(fs), Box::new(console));
        k.set_personality_override(Some(crate::linux::Personality::Linux));
        let tid = k.spawn_init("/p", &["p"], &[]).unwrap();
        k.mm_of(tid).unwrap().borrow_mut().map(BUF, 0x10000, Perm::RW).unwrap();
        (k, tid)
    }

    /// Makes call `number` as thread `tid`: its `rax`, `None` if it parked.
    fn call(k: &mut Kernel, tid: Pid, number: usize, args: [usize; 6]) -> Option<isize> {
        let entry = crate::syscall::table::entry(number).expect("a known call");
        let c = k.decode_call(tid, entry, args, Gate::Syscall).expect("a live thread");
        k.execute(tid, c);
        result(k, tid)
    }

    fn result(k: &Kernel, tid: Pid) -> Option<isize> {
        let t = &k.threads[&tid];
        (!t.is_blocked()).then(|| t.cpu.gpr[reg::RAX] as isize)
    }

    /// Runs the wake-ups, then the parked call of `tid` again (it must have been woken).
    fn rerun(k: &mut Kernel, tid: Pid) -> Option<isize> {
        k.process_wakeups();
        let t = k.threads.get_mut(&tid).unwrap();
        let ThreadState::Retry(b) = std::mem::replace(&mut t.state, ThreadState::Runnable) else {
            panic!("the parked call was not woken");
        };
        k.execute_boxed(tid, b);
        result(k, tid)
    }

    fn put(k: &Kernel, tid: Pid, at: u64, bytes: &[u8]) {
        k.mm_of(tid).unwrap().borrow_mut().space.mem.write_raw(GuestAddress(at), bytes).unwrap();
    }

    fn get(k: &Kernel, tid: Pid, at: u64, len: usize) -> Vec<u8> {
        let mut out = vec![0; len];
        k.mm_of(tid).unwrap().borrow().space.mem.read_raw(GuestAddress(at), &mut out).unwrap();
        out
    }

    /// The daemon's side, on server descriptor `fd`: the next request and its input.
    fn next_request(k: &Kernel, tid: Pid, fd: usize) -> (SchemeRequest, Vec<u8>) {
        let desc = k.desc(tid, fd).unwrap();
        let mut buf = vec![0u8; 4096];
        let n = desc.file.borrow_mut().read(&mut buf).expect("a request");
        (SchemeRequest::from_bytes(&buf[..n]).unwrap(), buf[SchemeRequest::SIZE..n].to_vec())
    }

    fn reply(k: &Kernel, tid: Pid, fd: usize, kind: u64, id: u64, value: i64, bytes: &[u8]) {
        let head = SchemeReply { kind, id, value, len: bytes.len() as u64 };
        let desc = k.desc(tid, fd).unwrap();
        let n = desc.file.borrow_mut().write(&[&head.to_bytes()[..], bytes].concat());
        assert_eq!(n, Ok(SchemeReply::SIZE + bytes.len()));
    }

    /// `poll` of one descriptor (timeout in ms, -1: none): its result and revents.
    fn poll(k: &mut Kernel, tid: Pid, fd: usize, timeout: isize) -> Option<(isize, u16)> {
        let mut pollfd = (fd as i32).to_le_bytes().to_vec();
        pollfd.extend_from_slice(&(POLLIN).to_le_bytes());
        pollfd.extend_from_slice(&[0, 0]);
        put(k, tid, BUF, &pollfd);
        let n = call(k, tid, LINUX_CALL | nr::POLL, [BUF as usize, 1, timeout as usize, 0, 0, 0])?;
        Some((n, u16::from_le_bytes(get(k, tid, BUF + 6, 2).try_into().unwrap())))
    }

    /// A Linux process holding a user-scheme descriptor reaches the daemon with read, write
    /// and lseek (requests as the Redox calls make), gets ESPIPE for pread and EOPNOTSUPP for
    /// fstat; `poll` sees what the daemon reports (and wakes when it reports it), and a dead
    /// daemon as hung up.
    #[test]
    fn linux_calls_and_poll_reach_the_daemon() {
        let (mut k, tid) = kernel();
        put(&k, tid, BUF, b":t");
        let server = call(&mut k, tid, SYS_OPEN, [BUF as usize, 2, O_CREAT | O_RDWR, 0, 0, 0]).unwrap() as usize;
        put(&k, tid, BUF, b"t:x");
        assert_eq!(call(&mut k, tid, SYS_OPEN, [BUF as usize, 3, O_RDWR, 0, 0, 0]), None);
        let (req, input) = next_request(&k, tid, server);
        assert_eq!((req.call, input.as_slice()), (SYS_OPEN as u64, &b"x"[..]));
        reply(&k, tid, server, REPLY_ANSWER, req.id, 5, &[]);
        let file = rerun(&mut k, tid).unwrap() as usize;

        assert_eq!(call(&mut k, tid, LINUX_CALL | nr::READ, [file, BUF as usize + 0x100, 16, 0, 0, 0]), None);
        let (req, _) = next_request(&k, tid, server);
        assert_eq!((req.call, req.handle, req.args[0]), (SYS_READ as u64, 5, 16));
        reply(&k, tid, server, REPLY_ANSWER, req.id, 3, b"hey");
        assert_eq!(rerun(&mut k, tid), Some(3));
        assert_eq!(get(&k, tid, BUF + 0x100, 3), b"hey");

        put(&k, tid, BUF + 0x200, b"abc");
        assert_eq!(call(&mut k, tid, LINUX_CALL | nr::WRITE, [file, BUF as usize + 0x200, 3, 0, 0, 0]), None);
        let (req, input) = next_request(&k, tid, server);
        assert_eq!((req.call, input.as_slice()), (SYS_WRITE as u64, &b"abc"[..]));
        reply(&k, tid, server, REPLY_ANSWER, req.id, 3, &[]);
        assert_eq!(rerun(&mut k, tid), Some(3));

        assert_eq!(call(&mut k, tid, LINUX_CALL | nr::LSEEK, [file, 1, SEEK_SET, 0, 0, 0]), None);
        let (req, _) = next_request(&k, tid, server);
        assert_eq!((req.call, req.args[0], req.args[1]), (SYS_LSEEK as u64, 1, SEEK_SET as u64));
        reply(&k, tid, server, REPLY_ANSWER, req.id, 1, &[]);
        assert_eq!(rerun(&mut k, tid), Some(1));

        let pread = [file, BUF as usize, 4, 0, 0, 0];
        assert_eq!(call(&mut k, tid, LINUX_CALL | nr::PREAD64, pread), Some(-(ESPIPE as isize)));
        let fstat = [file, BUF as usize, 0, 0, 0, 0];
        assert_eq!(call(&mut k, tid, LINUX_CALL | nr::FSTAT, fstat), Some(-(EOPNOTSUPP as isize)));

        // No event reported yet: always ready; then as reported, waking a waiting poll.
        assert_eq!(poll(&mut k, tid, file, 0), Some((1, POLLIN)));
        reply(&k, tid, server, REPLY_EVENT, 5, 0, &[]);
        assert_eq!(poll(&mut k, tid, file, 0), Some((0, 0)));
        assert_eq!(poll(&mut k, tid, file, -1), None);
        reply(&k, tid, server, REPLY_EVENT, 5, EVENT_READ, &[]);
        assert_eq!(rerun(&mut k, tid), Some(1));
        assert_eq!(get(&k, tid, BUF + 6, 2), POLLIN.to_le_bytes());

        // The daemon gone: hung up, and calls fail with EIO.
        assert_eq!(call(&mut k, tid, SYS_CLOSE, [server, 0, 0, 0, 0, 0]), Some(0));
        assert_eq!(poll(&mut k, tid, file, 0), Some((1, POLLIN | POLLHUP | POLLERR)));
        let read = [file, BUF as usize, 4, 0, 0, 0];
        assert_eq!(call(&mut k, tid, LINUX_CALL | nr::READ, read), Some(-(EIO as isize)));
    }

    /// `poll` on channel endpoints: readable once a message is queued, hung up once the
    /// other endpoint is closed.
    #[test]
    fn poll_sees_channel_endpoints() {
        let (mut k, tid) = kernel();
        assert_eq!(call(&mut k, tid, SYS_CHANNEL, [BUF as usize + 0x100, 0, 0, 0, 0, 0]), Some(0));
        let ends = get(&k, tid, BUF + 0x100, 16);
        let a = u64::from_le_bytes(ends[..8].try_into().unwrap()) as usize;
        let b = u64::from_le_bytes(ends[8..].try_into().unwrap()) as usize;
        assert_eq!(poll(&mut k, tid, b, 0), Some((0, 0)));
        assert_eq!(poll(&mut k, tid, b, -1), None);
        // The other side sends (straight through its file: this thread waits in poll).
        assert_eq!(k.desc(tid, a).unwrap().file.borrow_mut().write(b"m"), Ok(1));
        assert_eq!(rerun(&mut k, tid), Some(1));
        assert_eq!(get(&k, tid, BUF + 6, 2), POLLIN.to_le_bytes());
        assert_eq!(call(&mut k, tid, SYS_CLOSE, [a, 0, 0, 0, 0, 0]), Some(0));
        assert_eq!(poll(&mut k, tid, b, 0), Some((1, POLLIN | POLLHUP | POLLERR)));
    }
}
