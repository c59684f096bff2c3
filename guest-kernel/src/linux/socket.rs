//! Sockets inside the guest: AF_UNIX (stream, datagram, seqpacket; path and
//! abstract names; `SCM_RIGHTS` descriptor passing; `SO_PEERCRED`) and a
//! loopback-only AF_INET/AF_INET6 (TCP and UDP between guest processes on
//! 127.0.0.0/8, `::1` or the any-address).
//!
//! Why in the guest: a run must not depend on the host (determinism, record
//! and replay, the jail). Every socket is a kernel object; nothing reaches a
//! host socket or the host network. Connecting anywhere but loopback is
//! ENETUNREACH.
//!
//! Design:
//! - A [`Sock`] holds its receive queue of [`Segment`]s (bytes, passed
//!   descriptors, the sender's address). Stream reads take bytes across
//!   segments (stopping before a later segment that carries descriptors);
//!   datagram and seqpacket reads take one segment.
//! - Names live in the kernel's table ([`super::LinuxState::socket_names`]),
//!   keyed by the caller's jail root, the kind of name and the name: a
//!   jailed process can neither reach nor shadow a name outside its jail.
//!   Path names are resolved like file paths but create no file (a `stat`
//!   of the path is ENOENT, unlike Linux); closing the bound socket frees the
//!   name. Ports are given from 32768 up in order (deterministic).
//! - `connect` on a stream socket completes at once: the listener's backlog
//!   gets the server end, `accept` takes it.
//! - Blocking is the kernel's usual `WouldBlock(key)`: the read key of a
//!   socket fires when its queue, backlog or peer changes; its write key when
//!   its queue drains.
//! - The socket calls copy `struct msghdr`, its iovecs, names and control
//!   data themselves with checked copies: supervisors and traces see the
//!   pointers (and `sendto`'s data and name), not the nested buffers.

use std::any::Any;
use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::{Rc, Weak};

use warden_abi as r;
use warden_abi::{Errno, Stat};

use crate::io::{would_block, write_loop, How};
use crate::process::{FdEntry, OpenFile};
use crate::scheme::{FileOps, FileRef, IoError, IoResult, Readiness, WaitKey};
use crate::syscall::{Call, SysError, SysResult};
use crate::usercopy::{check_writable, copy_in, copy_out};
use crate::{Kernel, Pid, Waker};

pub const AF_UNIX: u16 = 1;
pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;
const SOCK_STREAM: usize = 1;
const SOCK_DGRAM: usize = 2;
const SOCK_SEQPACKET: usize = 5;
const SOCK_NONBLOCK: usize = 0o4000;
const SOCK_CLOEXEC: usize = 0o2000000;
const SOL_SOCKET: usize = 1;
const SCM_RIGHTS: i32 = 1;
const MSG_PEEK: usize = 2;
const MSG_TRUNC: usize = 0x20;
const MSG_DONTWAIT: usize = 0x40;
const MSG_NOSIGNAL: usize = 0x4000;
const MSG_CMSG_CLOEXEC: usize = 0x4000_0000;
const MSG_CTRUNC: u32 = 8;
/// Bytes a stream socket's queue holds before senders block (Linux's default `wmem`).
const STREAM_BUF: usize = 212_992;
/// Datagrams a queue holds before senders block (Linux's `max_dgram_qlen`).
const DGRAM_QUEUE: usize = 512;
/// Largest datagram.
const DGRAM_MAX: usize = 212_992;
/// Most descriptors one message passes (Linux's `SCM_MAX_FD`).
const SCM_MAX_FD: usize = 253;
/// Wait keys of sockets live in their own range (bit 61 set).
const SOCK_KEY_BASE: u64 = 1 << 61;
/// First port given to a socket that did not choose one.
const FIRST_PORT: u16 = 32768;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Stream,
    Dgram,
    SeqPacket,
}

/// One message (or one write of a stream).
struct Segment {
    data: Vec<u8>,
    fds: Vec<Rc<OpenFile>>,
    from: Vec<u8>,
}

/// A socket's state, shared by its descriptors and (weakly) by its peer and the name table.
pub(crate) struct Sock {
    id: u64,
    family: u16,
    kind: Kind,
    /// The address it is bound to (as `getsockname` shows it) and its name-table key.
    name: Option<(Vec<u8>, Vec<u8>)>,
    peer: Option<Weak<RefCell<Sock>>>,
    peer_name: Vec<u8>,
    /// A stream/seqpacket socket that was connected (its peer may be gone since).
    connected: bool,
    listening: bool,
    backlog: VecDeque<Rc<RefCell<Sock>>>,
    backlog_max: usize,
    rx: VecDeque<Segment>,
    rx_bytes: usize,
    shut_rd: bool,
    shut_wr: bool,
    closed: bool,
    /// (pid, uid, gid) of the process that made it, and of its peer (`SO_PEERCRED`).
    cred: [u32; 3],
    peer_cred: [u32; 3],
    /// Options set with `setsockopt` and read back by `getsockopt`.
    options: BTreeMap<(usize, usize), Vec<u8>>,
    waker: Waker,
}

impl Sock {
    fn read_key(&self) -> WaitKey {
        WaitKey(SOCK_KEY_BASE | self.id << 1)
    }
    fn write_key(&self) -> WaitKey {
        WaitKey(SOCK_KEY_BASE | self.id << 1 | 1)
    }
    fn wake(&self) {
        self.waker.wake(self.read_key());
        self.waker.wake(self.write_key());
    }
    fn peer(&self) -> Option<Rc<RefCell<Sock>>> {
        self.peer.as_ref()?.upgrade()
    }
    /// A connected stream whose peer closed or shut down its sending side.
    fn peer_done(&self) -> bool {
        self.connected && self.peer().is_none_or(|p| p.try_borrow().map_or(true, |p| p.closed || p.shut_wr))
    }
    fn room_for(&self, len: usize) -> bool {
        match self.kind {
            Kind::Stream => self.rx_bytes < STREAM_BUF,
            _ => self.rx.len() < DGRAM_QUEUE && self.rx_bytes + len <= STREAM_BUF.max(len),
        }
    }
    fn push(&mut self, seg: Segment) {
        self.rx_bytes += seg.data.len();
        self.rx.push_back(seg);
        self.waker.wake(self.read_key());
    }

    /// Takes up to `len` bytes (stream: across segments; otherwise one message, its true
    /// length returned second). With `peek` nothing is removed.
    fn take(&mut self, len: usize, peek: bool) -> (Segment, usize) {
        let mut out = Segment { data: Vec::new(), fds: Vec::new(), from: Vec::new() };
        if self.kind != Kind::Stream {
            let Some(front) = self.rx.front() else { return (out, 0) };
            let full = front.data.len();
            out.data = front.data[..len.min(full)].to_vec();
            out.from = front.from.clone();
            if !peek {
                if let Some(seg) = self.rx.pop_front() {
                    self.rx_bytes -= full;
                    out.fds = seg.fds;
                    self.waker.wake(self.write_key());
                }
            }
            return (out, full);
        }
        let mut i = 0;
        while out.data.len() < len && i < self.rx.len() {
            if i > 0 && !self.rx[i].fds.is_empty() {
                break;
            }
            let want = len - out.data.len();
            let seg = &mut self.rx[i];
            let n = want.min(seg.data.len());
            out.data.extend_from_slice(&seg.data[..n]);
            if peek {
                i += 1;
                continue;
            }
            if i == 0 {
                out.fds = std::mem::take(&mut seg.fds);
                out.from = seg.from.clone();
            }
            seg.data.drain(..n);
            if seg.data.is_empty() {
                self.rx.pop_front();
            } else {
                break;
            }
        }
        if !peek {
            self.rx_bytes -= out.data.len();
            self.waker.wake(self.write_key());
        }
        let n = out.data.len();
        (out, n)
    }
}

/// An open socket (what a descriptor holds).
pub(crate) struct SocketFile {
    sock: Rc<RefCell<Sock>>,
}

impl SocketFile {
    fn new_ref(sock: Rc<RefCell<Sock>>) -> FileRef {
        Rc::new(RefCell::new(SocketFile { sock }))
    }
}

/// Sends `data` (with `fds`) from `me` to `to`: how many bytes went in, or the key to wait on.
fn deliver(me: &Sock, to: &Rc<RefCell<Sock>>, data: &[u8], fds: &[Rc<OpenFile>], from: Vec<u8>) -> IoResult<usize> {
    let mut to = to.try_borrow_mut().map_err(|_| Errno(r::EIO))?;
    if to.closed || to.shut_rd && me.kind == Kind::Stream {
        return Err(Errno(if me.kind == Kind::Dgram { r::ECONNREFUSED } else { r::EPIPE }).into());
    }
    if me.kind != Kind::Stream && data.len() > DGRAM_MAX {
        return Err(Errno(r::EMSGSIZE).into());
    }
    if !to.room_for(data.len()) {
        return Err(IoError::WouldBlock(to.write_key()));
    }
    let n = match me.kind {
        Kind::Stream => data.len().min(STREAM_BUF - to.rx_bytes),
        _ => data.len(),
    };
    to.push(Segment { data: data[..n].to_vec(), fds: fds.to_vec(), from });
    Ok(n)
}

impl SocketFile {
    /// Sends on the connected peer (or to `to` for an unconnected datagram socket).
    fn send(&self, data: &[u8], fds: &[Rc<OpenFile>], to: Option<Rc<RefCell<Sock>>>) -> IoResult<usize> {
        let me = self.sock.try_borrow().map_err(|_| Errno(r::EIO))?;
        if me.shut_wr {
            return Err(Errno(r::EPIPE).into());
        }
        let target = match to {
            Some(t) if me.kind == Kind::Dgram => t,
            Some(_) if me.connected => return Err(Errno(r::EISCONN).into()),
            _ => match me.peer() {
                Some(p) => p,
                None if me.connected => return Err(Errno(r::EPIPE).into()),
                None if me.kind == Kind::Dgram => return Err(Errno(r::EDESTADDRREQ).into()),
                None => return Err(Errno(r::ENOTCONN).into()),
            },
        };
        let from = me.name.as_ref().map_or_else(|| me.family.to_le_bytes().to_vec(), |(a, _)| a.clone());
        deliver(&me, &target, data, fds, from)
    }

    /// Receives; `Ok((segment, true length))`, or the key to wait on.
    fn recv(&self, len: usize, peek: bool) -> IoResult<(Segment, usize)> {
        let mut me = self.sock.try_borrow_mut().map_err(|_| Errno(r::EIO))?;
        if me.rx.is_empty() {
            if me.shut_rd || me.peer_done() {
                return Ok((Segment { data: Vec::new(), fds: Vec::new(), from: Vec::new() }, 0));
            }
            if me.kind != Kind::Dgram && !me.connected {
                return Err(Errno(r::ENOTCONN).into());
            }
            return Err(IoError::WouldBlock(me.read_key()));
        }
        Ok(me.take(len, peek))
    }
}

impl FileOps for SocketFile {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        let (seg, _) = self.recv(buf.len(), false)?;
        buf[..seg.data.len()].copy_from_slice(&seg.data);
        Ok(seg.data.len())
    }

    fn write(&mut self, buf: &[u8]) -> IoResult<usize> {
        self.send(buf, &[], None)
    }

    fn stat(&self) -> Result<Stat, Errno> {
        let id = self.sock.try_borrow().map_or(0, |s| s.id);
        Ok(Stat { st_dev: 8, st_ino: id, st_mode: 0xc000 | 0o777, st_nlink: 1, st_blksize: 4096, ..Stat::default() })
    }

    fn path(&self) -> Vec<u8> {
        format!("socket:[{}]", self.sock.try_borrow().map_or(0, |s| s.id)).into_bytes()
    }

    fn readiness(&self) -> Option<Readiness> {
        let me = self.sock.try_borrow().ok()?;
        let peer = me.peer();
        let hangup = me.peer_done() || me.shut_rd && me.shut_wr;
        let write = match (&peer, me.kind) {
            (Some(p), _) => p.try_borrow().is_ok_and(|p| p.room_for(1) || p.closed),
            (None, Kind::Dgram) => true,
            (None, _) => me.connected,
        };
        Some(Readiness {
            read: !me.rx.is_empty() || !me.backlog.is_empty() || me.shut_rd || hangup,
            write: write && !me.listening,
            hangup,
            error: false,
        })
    }

    fn close(&mut self) {
        let backlog = {
            let Ok(mut me) = self.sock.try_borrow_mut() else { return };
            me.closed = true;
            me.rx.clear();
            me.wake();
            if let Some(p) = me.peer() {
                if let Ok(p) = p.try_borrow() {
                    p.wake();
                }
            }
            std::mem::take(&mut me.backlog)
        };
        // Connections nobody accepted are refused: their clients see the end.
        for pending in backlog {
            let mut s = pending.borrow_mut();
            s.closed = true;
            if let Some(p) = s.peer() {
                if let Ok(p) = p.try_borrow() {
                    p.wake();
                }
            }
        }
    }

    fn as_any(&self) -> Option<&dyn Any> {
        Some(self)
    }
}

/// A parsed socket address: the name-table key it means and how `getsockname` shows it.
struct Addr {
    key: Vec<u8>,
    shown: Vec<u8>,
    /// An inet address asking for any port (0).
    any_port: bool,
}

fn err<T>(e: i32) -> Result<T, SysError> {
    Err(SysError::Errno(Errno(e)))
}

fn le32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4).map_or(0, |s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn le64(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8).map_or(0, |s| {
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        u64::from_le_bytes(a)
    })
}

/// `sockaddr_in`/`sockaddr_in6` for `port` on loopback (or the any-address).
fn inet_addr(family: u16, port: u16, any: bool) -> Vec<u8> {
    let mut a = vec![0u8; if family == AF_INET { 16 } else { 28 }];
    a[..2].copy_from_slice(&family.to_le_bytes());
    a[2..4].copy_from_slice(&port.to_be_bytes());
    if !any {
        if family == AF_INET {
            a[4..8].copy_from_slice(&[127, 0, 0, 1]);
        } else {
            a[23] = 1;
        }
    }
    a
}

impl Kernel {
    /// The socket open at `fd` (ENOTSOCK for any other file).
    fn sock_at(&self, tid: Pid, fd: usize) -> Result<(Rc<OpenFile>, Rc<RefCell<Sock>>), Errno> {
        let desc = self.desc(tid, fd)?;
        let sock = {
            let f = desc.file.try_borrow().map_err(|_| Errno(r::EIO))?;
            let any = f.as_any().and_then(|a| a.downcast_ref::<SocketFile>());
            any.map(|s| s.sock.clone()).ok_or(Errno(r::ENOTSOCK))?
        };
        Ok((desc, sock))
    }

    /// Parses the address a socket of `family`/`kind` is given; `key` is prefixed by the
    /// caller's jail root, so names never cross a jail's border.
    fn sock_addr(&self, tid: Pid, family: u16, kind: Kind, raw: &[u8]) -> Result<Addr, Errno> {
        let jail = self.jail_view(tid).map(|j| j.root.clone()).unwrap_or_default();
        let got = u16::from_le_bytes([*raw.first().unwrap_or(&0), *raw.get(1).unwrap_or(&0)]);
        if raw.len() < 2 || got != family {
            return Err(Errno(if raw.len() < 2 { r::EINVAL } else { r::EAFNOSUPPORT }));
        }
        let mut key = jail;
        key.push(0);
        key.extend_from_slice(match kind {
            Kind::Stream => b"stream",
            Kind::Dgram => b"dgram",
            Kind::SeqPacket => b"seqpacket",
        });
        key.push(0);
        match family {
            AF_UNIX => {
                let path = &raw[2..raw.len().min(110)];
                if path.is_empty() {
                    return Err(Errno(r::EINVAL));
                }
                if path[0] == 0 {
                    key.extend_from_slice(path); // abstract: every byte counts
                    return Ok(Addr { key, shown: raw[..raw.len().min(110)].to_vec(), any_port: false });
                }
                let end = path.iter().position(|&b| b == 0).unwrap_or(path.len());
                let name = &path[..end];
                let abs = if name.starts_with(b"/") {
                    crate::process::normalize(b"/", name)
                } else {
                    let fs = self.proc_of(tid)?.fs.clone();
                    let fs = fs.borrow();
                    match self.jail_view(tid) {
                        Some(j) => crate::process::normalize(&self.jailed_cwd(tid, &j)?, name),
                        None => crate::process::normalize(&fs.cwd, name),
                    }
                };
                key.extend_from_slice(&abs);
                let mut shown = raw[..2].to_vec();
                shown.extend_from_slice(name);
                shown.push(0);
                Ok(Addr { key, shown, any_port: false })
            }
            _ => {
                let v4 = family == AF_INET;
                if raw.len() < if v4 { 16 } else { 24 } {
                    return Err(Errno(r::EINVAL));
                }
                let port = u16::from_be_bytes([raw[2], raw[3]]);
                let ip = if v4 { &raw[4..8] } else { &raw[8..24] };
                let any = ip.iter().all(|&b| b == 0);
                let loopback = if v4 { ip[0] == 127 } else { ip[..15].iter().all(|&b| b == 0) && ip[15] == 1 };
                if !any && !loopback {
                    return Err(Errno(r::ENETUNREACH));
                }
                key.extend_from_slice(&family.to_le_bytes());
                key.extend_from_slice(&port.to_be_bytes());
                Ok(Addr { key, shown: inet_addr(family, port, any), any_port: port == 0 })
            }
        }
    }

    /// Binds `sock` to `addr` (a free port if it asks for port 0).
    fn sock_bind(&mut self, sock: &Rc<RefCell<Sock>>, mut addr: Addr) -> Result<(), Errno> {
        self.linux.socket_names.retain(|_, w| w.upgrade().is_some_and(|s| s.try_borrow().is_ok_and(|s| !s.closed)));
        let family = sock.borrow().family;
        if addr.any_port {
            let base = addr.key.len() - 2;
            let mut port = None;
            for _ in 0..=u16::MAX {
                let p = self.linux.next_port.max(FIRST_PORT);
                self.linux.next_port = p.checked_add(1).unwrap_or(FIRST_PORT);
                addr.key.truncate(base);
                addr.key.extend_from_slice(&p.to_be_bytes());
                if !self.linux.socket_names.contains_key(&addr.key) {
                    port = Some(p);
                    break;
                }
            }
            let p = port.ok_or(Errno(r::EADDRINUSE))?;
            addr.shown[2..4].copy_from_slice(&p.to_be_bytes());
        }
        if self.linux.socket_names.contains_key(&addr.key) {
            return Err(Errno(r::EADDRINUSE));
        }
        let mut s = sock.borrow_mut();
        if s.name.is_some() {
            return Err(Errno(r::EINVAL));
        }
        debug_assert_eq!(u16::from_le_bytes([addr.shown[0], addr.shown[1]]), family);
        self.linux.socket_names.insert(addr.key.clone(), Rc::downgrade(sock));
        s.name = Some((addr.shown, addr.key));
        Ok(())
    }

    /// An inet socket that sends or connects without a name gets a free port (Linux's autobind).
    fn sock_autobind(&mut self, tid: Pid, sock: &Rc<RefCell<Sock>>) -> Result<(), Errno> {
        let (family, kind, bound) = {
            let s = sock.borrow();
            (s.family, s.kind, s.name.is_some())
        };
        if bound || family == AF_UNIX {
            return Ok(());
        }
        let addr = self.sock_addr(tid, family, kind, &inet_addr(family, 0, false))?;
        self.sock_bind(sock, addr)
    }

    fn sock_lookup(&self, addr: &Addr) -> Option<Rc<RefCell<Sock>>> {
        let s = self.linux.socket_names.get(&addr.key)?.upgrade()?;
        let alive = s.try_borrow().is_ok_and(|s| !s.closed);
        alive.then_some(s)
    }

    fn new_sock(&mut self, tid: Pid, family: u16, kind: Kind) -> Result<Rc<RefCell<Sock>>, Errno> {
        let p = self.proc_of(tid)?;
        let cred = [p.pid, p.uid, p.gid];
        let id = self.alloc_object_id();
        Ok(Rc::new(RefCell::new(Sock {
            id,
            family,
            kind,
            name: None,
            peer: None,
            peer_name: Vec::new(),
            connected: false,
            listening: false,
            backlog: VecDeque::new(),
            backlog_max: 0,
            rx: VecDeque::new(),
            rx_bytes: 0,
            shut_rd: false,
            shut_wr: false,
            closed: false,
            cred,
            peer_cred: [0, u32::MAX, u32::MAX],
            options: BTreeMap::new(),
            waker: self.waker.clone(),
        })))
    }

    fn install_sock(&mut self, tid: Pid, sock: Rc<RefCell<Sock>>, flags: usize) -> Result<usize, Errno> {
        let status = if flags & SOCK_NONBLOCK != 0 { r::O_NONBLOCK } else { 0 };
        self.install_fd(tid, SocketFile::new_ref(sock), r::O_RDWR | status, flags & SOCK_CLOEXEC != 0)
    }

    /// Writes `addr` to the guest's (`addr_ptr`, `len_ptr`) pair as `getsockname` does
    /// (truncated to the room the caller gave; the full length written back).
    fn put_addr(&mut self, tid: Pid, addr_ptr: usize, len_ptr: usize, addr: &[u8]) -> Result<(), Errno> {
        if addr_ptr == 0 || len_ptr == 0 {
            return Ok(());
        }
        let mm = self.mm_of(tid)?;
        let mut mm = mm.borrow_mut();
        let room = le32(&copy_in(&mm.space.mem, len_ptr, 4)?, 0) as i32;
        if room < 0 {
            return Err(Errno(r::EINVAL));
        }
        let n = addr.len().min(room as usize);
        copy_out(&mut mm.space.mem, addr_ptr, &addr[..n])?;
        copy_out(&mut mm.space.mem, len_ptr, &(addr.len() as u32).to_le_bytes())
    }

    fn sock_connect(&mut self, tid: Pid, fd: usize, raw: &[u8]) -> SysResult {
        let (_, sock) = self.sock_at(tid, fd)?;
        let (family, kind) = {
            let s = sock.borrow();
            (s.family, s.kind)
        };
        let addr = self.sock_addr(tid, family, kind, raw)?;
        let target = self.sock_lookup(&addr);
        if kind == Kind::Dgram {
            let target = target.ok_or(Errno(if family == AF_UNIX { r::ENOENT } else { r::ECONNREFUSED }))?;
            self.sock_autobind(tid, &sock)?;
            let mut s = sock.borrow_mut();
            s.peer = Some(Rc::downgrade(&target));
            s.peer_name = addr.shown;
            return Ok(0);
        }
        if sock.borrow().connected {
            return err(r::EISCONN);
        }
        let Some(listener) = target else {
            return err(if family == AF_UNIX { r::ENOENT } else { r::ECONNREFUSED });
        };
        if !listener.borrow().listening {
            return err(r::ECONNREFUSED);
        }
        if listener.borrow().backlog.len() > listener.borrow().backlog_max {
            let desc = self.desc(tid, fd)?;
            let key = listener.borrow().write_key();
            return Err(would_block(How::of(&desc, false).nonblock, key));
        }
        self.sock_autobind(tid, &sock)?;
        let server = self.new_sock(tid, family, kind)?;
        {
            let l = listener.borrow();
            let mut srv = server.borrow_mut();
            let mut cli = sock.borrow_mut();
            srv.name = l.name.clone();
            srv.cred = l.cred;
            srv.peer_cred = cli.cred;
            srv.peer = Some(Rc::downgrade(&sock));
            srv.peer_name = cli.name.as_ref().map_or_else(|| family.to_le_bytes().to_vec(), |(a, _)| a.clone());
            srv.connected = true;
            cli.peer = Some(Rc::downgrade(&server));
            cli.peer_name = l.name.as_ref().map_or_else(Vec::new, |(a, _)| a.clone());
            cli.peer_cred = l.cred;
            cli.connected = true;
        }
        let mut l = listener.borrow_mut();
        l.backlog.push_back(server);
        l.waker.wake(l.read_key());
        Ok(0)
    }

    fn sock_accept(&mut self, tid: Pid, c: &Call, flags: usize) -> SysResult {
        let [fd, addr_ptr, len_ptr, ..] = c.args;
        if flags & !(SOCK_NONBLOCK | SOCK_CLOEXEC) != 0 {
            return err(r::EINVAL);
        }
        let (desc, sock) = self.sock_at(tid, fd)?;
        if !sock.borrow().listening {
            return err(r::EINVAL);
        }
        let next = sock.borrow_mut().backlog.pop_front();
        let Some(conn) = next else {
            let key = sock.borrow().read_key();
            return Err(would_block(How::of(&desc, false).nonblock, key));
        };
        sock.borrow().waker.wake(sock.borrow().write_key());
        let peer_name = conn.borrow().peer_name.clone();
        self.put_addr(tid, addr_ptr, len_ptr, &peer_name)?;
        self.install_sock(tid, conn, flags).map_err(Into::into)
    }

    /// The guest's iovec array at `iov`/`count` as (base, len) pairs.
    fn read_iovecs(&self, tid: Pid, iov: usize, count: usize) -> Result<Vec<(usize, usize)>, Errno> {
        if count > 1024 {
            return Err(Errno(r::EMSGSIZE));
        }
        let mm = self.mm_of(tid)?;
        let raw = copy_in(&mm.borrow().space.mem, iov, count * 16)?;
        Ok(raw.chunks_exact(16).map(|e| (le64(e, 0) as usize, le64(e, 8) as usize)).collect())
    }

    /// `sendto`/`sendmsg`: `data` to the peer or to `to` (a raw address), passing `fds`.
    fn sock_send(
        &mut self,
        tid: Pid,
        fd: usize,
        data: &[u8],
        to: Option<&[u8]>,
        fds: &[usize],
        flags: usize,
    ) -> SysResult {
        let (desc, sock) = self.sock_at(tid, fd)?;
        let target = match to {
            Some(raw) if !raw.is_empty() => {
                let (family, kind) = {
                    let s = sock.borrow();
                    (s.family, s.kind)
                };
                let addr = self.sock_addr(tid, family, kind, raw)?;
                let found = self.sock_lookup(&addr);
                let kind_dgram = kind == Kind::Dgram;
                if kind_dgram {
                    Some(found.ok_or(Errno(if family == AF_UNIX { r::ENOENT } else { r::ECONNREFUSED }))?)
                } else {
                    found
                }
            }
            _ => None,
        };
        self.sock_autobind(tid, &sock)?;
        let passed = fds.iter().map(|&f| self.desc(tid, f)).collect::<Result<Vec<_>, _>>()?;
        if passed.len() > SCM_MAX_FD {
            return err(r::EINVAL);
        }
        let file = SocketFile { sock };
        let how = How { sigpipe: flags & MSG_NOSIGNAL == 0, ..How::of(&desc, flags & MSG_DONTWAIT != 0) };
        let start = self.take_write_done(tid);
        let sent = write_loop(start, data.len(), how.nonblock, |done| {
            // Descriptors go with the first bytes only (a re-run after blocking has sent them).
            let fds: &[Rc<OpenFile>] = if done == 0 { &passed } else { &[] };
            file.send(&data[done..], fds, target.clone())
        });
        self.end_write(tid, sent, how.sigpipe)
    }

    /// `recvfrom`/`recvmsg`: one receive of up to `len` bytes; installs passed descriptors.
    fn sock_recv(
        &mut self,
        tid: Pid,
        fd: usize,
        len: usize,
        flags: usize,
    ) -> Result<(Segment, usize, Vec<usize>), SysError> {
        let (desc, sock) = self.sock_at(tid, fd)?;
        let file = SocketFile { sock };
        match file.recv(len.min(crate::syscall::MAX_IO), flags & MSG_PEEK != 0) {
            Ok((seg, full)) => {
                let files = self.proc_of(tid)?.files.clone();
                let max = self.config.limits.max_fds;
                let mut fds = Vec::new();
                for passed in &seg.fds {
                    let entry = FdEntry { desc: passed.clone(), cloexec: flags & MSG_CMSG_CLOEXEC != 0 };
                    fds.push(files.borrow_mut().insert(entry, max)?);
                }
                Ok((seg, full, fds))
            }
            Err(IoError::Errno(e)) => Err(e.into()),
            Err(IoError::WouldBlock(key)) => Err(would_block(How::of(&desc, flags & MSG_DONTWAIT != 0).nonblock, key)),
        }
    }
}

// --- handlers (rows of `warden_abi::linux_calls!`) -------------------------------------------

fn kind_of(ty: usize) -> Result<Kind, Errno> {
    match ty & 0xf {
        SOCK_STREAM => Ok(Kind::Stream),
        SOCK_DGRAM => Ok(Kind::Dgram),
        SOCK_SEQPACKET => Ok(Kind::SeqPacket),
        _ => Err(Errno(r::ESOCKTNOSUPPORT)),
    }
}

fn family_of(domain: usize, kind: Kind) -> Result<u16, Errno> {
    match domain as u16 {
        AF_UNIX => Ok(AF_UNIX),
        f @ (AF_INET | AF_INET6) if kind != Kind::SeqPacket => Ok(f),
        AF_INET | AF_INET6 => Err(Errno(r::ESOCKTNOSUPPORT)),
        _ => Err(Errno(r::EAFNOSUPPORT)),
    }
}

pub(super) fn socket(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let [domain, ty, protocol, ..] = c.args;
    let kind = kind_of(ty)?;
    let family = family_of(domain, kind)?;
    // Protocol 0, or the one the type implies (TCP 6 / UDP 17; AF_UNIX has only 0).
    let ok = protocol == 0 || family != AF_UNIX && protocol == if kind == Kind::Stream { 6 } else { 17 };
    if !ok {
        return err(r::EPROTONOSUPPORT);
    }
    let sock = k.new_sock(tid, family, kind)?;
    Ok(k.install_sock(tid, sock, ty)?)
}

pub(super) fn socketpair(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let [domain, ty, protocol, out, ..] = c.args;
    let kind = kind_of(ty)?;
    if domain as u16 != AF_UNIX {
        return err(if matches!(domain as u16, AF_INET | AF_INET6) { r::EOPNOTSUPP } else { r::EAFNOSUPPORT });
    }
    if protocol != 0 {
        return err(r::EPROTONOSUPPORT);
    }
    check_writable(&k.mm_of(tid)?.borrow().space.mem, out, 8)?;
    let a = k.new_sock(tid, AF_UNIX, kind)?;
    let b = k.new_sock(tid, AF_UNIX, kind)?;
    for (x, y) in [(&a, &b), (&b, &a)] {
        let mut s = x.borrow_mut();
        s.peer = Some(Rc::downgrade(y));
        s.peer_name = AF_UNIX.to_le_bytes().to_vec();
        s.connected = kind != Kind::Dgram;
        s.peer_cred = s.cred;
    }
    let fa = k.install_sock(tid, a, ty)?;
    let fb = match k.install_sock(tid, b, ty) {
        Ok(fd) => fd,
        Err(e) => {
            let files = k.proc_of(tid)?.files.clone();
            let entry = files.borrow_mut().remove(fa);
            drop(entry);
            return Err(e.into());
        }
    };
    let mut fds = [0u8; 8];
    fds[..4].copy_from_slice(&(fa as u32).to_le_bytes());
    fds[4..].copy_from_slice(&(fb as u32).to_le_bytes());
    copy_out(&mut k.mm_of(tid)?.borrow_mut().space.mem, out, &fds)?;
    Ok(0)
}

pub(super) fn bind(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let (_, sock) = k.sock_at(tid, c.args[0])?;
    let (family, kind) = {
        let s = sock.borrow();
        (s.family, s.kind)
    };
    let addr = k.sock_addr(tid, family, kind, c.bytes(1)?)?;
    k.sock_bind(&sock, addr)?;
    Ok(0)
}

pub(super) fn listen(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let (_, sock) = k.sock_at(tid, c.args[0])?;
    k.sock_autobind(tid, &sock)?;
    let mut s = sock.borrow_mut();
    if s.kind == Kind::Dgram || s.connected {
        return err(r::EOPNOTSUPP);
    }
    if s.name.is_none() {
        return err(r::EINVAL);
    }
    s.listening = true;
    s.backlog_max = (c.args[1] as i32).clamp(0, 4096) as usize;
    Ok(0)
}

pub(super) fn connect(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    k.sock_connect(tid, c.args[0], c.bytes(1)?)
}

pub(super) fn accept(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    k.sock_accept(tid, c, 0)
}

pub(super) fn accept4(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    k.sock_accept(tid, c, c.args[3])
}

pub(super) fn getsockname(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let (_, sock) = k.sock_at(tid, c.args[0])?;
    let name = {
        let s = sock.borrow();
        match &s.name {
            Some((a, _)) => a.clone(),
            None if s.family == AF_UNIX => AF_UNIX.to_le_bytes().to_vec(),
            None => inet_addr(s.family, 0, true),
        }
    };
    k.put_addr(tid, c.args[1], c.args[2], &name)?;
    Ok(0)
}

pub(super) fn getpeername(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let (_, sock) = k.sock_at(tid, c.args[0])?;
    let name = {
        let s = sock.borrow();
        if s.peer.is_none() || s.peer_name.is_empty() && !s.connected {
            return err(r::ENOTCONN);
        }
        if s.peer_name.is_empty() {
            s.family.to_le_bytes().to_vec()
        } else {
            s.peer_name.clone()
        }
    };
    k.put_addr(tid, c.args[1], c.args[2], &name)?;
    Ok(0)
}

pub(super) fn shutdown(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let (_, sock) = k.sock_at(tid, c.args[0])?;
    let how = c.args[1];
    if how > 2 {
        return err(r::EINVAL);
    }
    let mut s = sock.borrow_mut();
    if !s.connected && s.peer.is_none() {
        return err(r::ENOTCONN);
    }
    s.shut_rd |= how != 1;
    s.shut_wr |= how != 0;
    s.wake();
    if let Some(p) = s.peer() {
        if let Ok(p) = p.try_borrow() {
            p.wake();
        }
    }
    Ok(0)
}

pub(super) fn sendto(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let to = if c.args[4] != 0 { Some(c.bytes(4)?.to_vec()) } else { None };
    k.sock_send(tid, c.args[0], c.bytes(1)?, to.as_deref(), &[], c.args[3])
}

pub(super) fn recvfrom(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let [fd, buf, len, flags, addr_ptr, len_ptr] = c.args;
    check_writable(&k.mm_of(tid)?.borrow().space.mem, buf, len.min(crate::syscall::MAX_IO))?;
    let (seg, full, _) = k.sock_recv(tid, fd, len, flags)?;
    copy_out(&mut k.mm_of(tid)?.borrow_mut().space.mem, buf, &seg.data)?;
    if !seg.from.is_empty() {
        k.put_addr(tid, addr_ptr, len_ptr, &seg.from)?;
    }
    Ok(if flags & MSG_TRUNC != 0 { full } else { seg.data.len() })
}

pub(super) fn sendmsg(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let [fd, msg, flags, ..] = c.args;
    let mm = k.mm_of(tid)?;
    let hdr = copy_in(&mm.borrow().space.mem, msg, 56)?;
    let (name, namelen) = (le64(&hdr, 0) as usize, le32(&hdr, 8) as usize);
    let iov = k.read_iovecs(tid, le64(&hdr, 16) as usize, le64(&hdr, 24) as usize)?;
    let (control, controllen) = (le64(&hdr, 32) as usize, le64(&hdr, 40) as usize);
    let mut data = Vec::new();
    {
        let mm = mm.borrow();
        for (base, len) in iov {
            if data.len() + len > crate::syscall::MAX_IO.max(DGRAM_MAX) {
                return err(r::EMSGSIZE);
            }
            data.extend_from_slice(&copy_in(&mm.space.mem, base, len)?);
        }
    }
    let to =
        if name != 0 && namelen != 0 { Some(copy_in(&mm.borrow().space.mem, name, namelen.min(128))?) } else { None };
    let mut fds = Vec::new();
    if control != 0 && controllen != 0 {
        let ctl = copy_in(&mm.borrow().space.mem, control, controllen.min(4096))?;
        let mut at = 0;
        while at + 16 <= ctl.len() {
            let len = le64(&ctl, at) as usize;
            if len < 16 || at + len > ctl.len() {
                return err(r::EINVAL);
            }
            let (level, ty) = (le32(&ctl, at + 8) as i32, le32(&ctl, at + 12) as i32);
            if level == SOL_SOCKET as i32 && ty == SCM_RIGHTS {
                fds.extend(ctl[at + 16..at + len].chunks_exact(4).map(|f| le32(f, 0) as usize));
            } else if level != SOL_SOCKET as i32 || ty != 2 {
                return err(r::EINVAL);
            }
            at += (len + 7) & !7;
        }
    }
    k.sock_send(tid, fd, &data, to.as_deref(), &fds, flags)
}

pub(super) fn recvmsg(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let [fd, msg, flags, ..] = c.args;
    let mm = k.mm_of(tid)?;
    let hdr = copy_in(&mm.borrow().space.mem, msg, 56)?;
    check_writable(&mm.borrow().space.mem, msg, 56)?;
    let iov = k.read_iovecs(tid, le64(&hdr, 16) as usize, le64(&hdr, 24) as usize)?;
    let total = iov.iter().fold(0usize, |t, &(_, l)| t.saturating_add(l));
    for &(base, len) in &iov {
        check_writable(&mm.borrow().space.mem, base, len)?;
    }
    let (seg, full, fds) = k.sock_recv(tid, fd, total, flags)?;
    let mut mm = mm.borrow_mut();
    let mut done = 0;
    for (base, len) in iov {
        let n = len.min(seg.data.len() - done);
        copy_out(&mut mm.space.mem, base, &seg.data[done..done + n])?;
        done += n;
    }
    let mut out_flags = 0u32;
    if full > seg.data.len() {
        out_flags |= MSG_TRUNC as u32;
    }
    // The sender's name.
    let (name, room) = (le64(&hdr, 0) as usize, le32(&hdr, 8) as usize);
    let namelen = if name != 0 {
        let n = seg.from.len().min(room);
        copy_out(&mut mm.space.mem, name, &seg.from[..n])?;
        seg.from.len()
    } else {
        0
    };
    copy_out(&mut mm.space.mem, msg + 8, &(namelen as u32).to_le_bytes())?;
    // SCM_RIGHTS for the descriptors passed (as many as fit; the rest are closed, MSG_CTRUNC).
    let (control, room) = (le64(&hdr, 32) as usize, le64(&hdr, 40) as usize);
    let mut controllen = 0usize;
    if !fds.is_empty() {
        let fit = if control == 0 || room < 16 { 0 } else { ((room - 16) / 4).min(fds.len()) };
        if fit < fds.len() {
            out_flags |= MSG_CTRUNC;
            let files = k.proc_of(tid)?.files.clone();
            for &f in &fds[fit..] {
                let entry = files.borrow_mut().remove(f);
                drop(entry);
            }
        }
        if fit > 0 {
            let mut cmsg = Vec::with_capacity(16 + 4 * fit);
            cmsg.extend_from_slice(&((16 + 4 * fit) as u64).to_le_bytes());
            cmsg.extend_from_slice(&(SOL_SOCKET as u32).to_le_bytes());
            cmsg.extend_from_slice(&(SCM_RIGHTS as u32).to_le_bytes());
            for &f in &fds[..fit] {
                cmsg.extend_from_slice(&(f as u32).to_le_bytes());
            }
            copy_out(&mut mm.space.mem, control, &cmsg)?;
            controllen = ((cmsg.len() + 7) & !7).min(room);
        }
    }
    copy_out(&mut mm.space.mem, msg + 40, &(controllen as u64).to_le_bytes())?;
    copy_out(&mut mm.space.mem, msg + 48, &out_flags.to_le_bytes())?;
    Ok(if flags & MSG_TRUNC != 0 { full } else { seg.data.len() })
}

pub(super) fn setsockopt(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let [fd, level, name, val, len, ..] = c.args;
    let (_, sock) = k.sock_at(tid, fd)?;
    if len > 256 {
        return err(r::EINVAL);
    }
    let mut bytes = copy_in(&k.mm_of(tid)?.borrow().space.mem, val, len)?;
    // Linux doubles a buffer size it is given (and reports the doubled value).
    if level == SOL_SOCKET && matches!(name, 7 | 8) && bytes.len() >= 4 {
        let v = (le32(&bytes, 0) as i32).clamp(1152, i32::MAX / 2) * 2;
        bytes = v.to_le_bytes().to_vec();
    }
    sock.borrow_mut().options.insert((level, name), bytes);
    Ok(0)
}

pub(super) fn getsockopt(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let [fd, level, name, val, len_ptr, ..] = c.args;
    let (_, sock) = k.sock_at(tid, fd)?;
    let value = {
        let s = sock.borrow();
        let int = |v: i32| v.to_le_bytes().to_vec();
        match (level, name) {
            (SOL_SOCKET, 3) => int(match s.kind {
                Kind::Stream => 1,
                Kind::Dgram => 2,
                Kind::SeqPacket => 5,
            }),
            (SOL_SOCKET, 4) => int(0),                   // SO_ERROR
            (SOL_SOCKET, 30) => int(s.listening as i32), // SO_ACCEPTCONN
            (SOL_SOCKET, 39) => int(s.family as i32),    // SO_DOMAIN
            (SOL_SOCKET, 38) => int(match (s.family, s.kind) {
                // SO_PROTOCOL
                (AF_UNIX, _) => 0,
                (_, Kind::Stream) => 6,
                _ => 17,
            }),
            (SOL_SOCKET, 17) => {
                // SO_PEERCRED: struct ucred of the peer when it connected.
                if !s.connected && s.peer.is_none() {
                    return err(r::ENOTCONN);
                }
                s.peer_cred.iter().flat_map(|v| v.to_le_bytes()).collect()
            }
            _ => match s.options.get(&(level, name)) {
                Some(v) => v.clone(),
                None if level == SOL_SOCKET && matches!(name, 7 | 8) => int(STREAM_BUF as i32),
                None if level == SOL_SOCKET || level == 6 => int(0),
                None => return err(r::ENOPROTOOPT),
            },
        }
    };
    let mm = k.mm_of(tid)?;
    let mut mm = mm.borrow_mut();
    let room = le32(&copy_in(&mm.space.mem, len_ptr, 4)?, 0) as i32;
    if room < 0 {
        return err(r::EINVAL);
    }
    let n = value.len().min(room as usize);
    copy_out(&mut mm.space.mem, val, &value[..n])?;
    copy_out(&mut mm.space.mem, len_ptr, &(n as u32).to_le_bytes())?;
    Ok(0)
}
