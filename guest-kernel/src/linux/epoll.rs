//! `epoll` and `eventfd`, enough for event loops (libuv in node, mio/tokio in
//! rustup and cargo).
//!
//! An epoll descriptor keeps its interest list by descriptor number (Linux
//! keys it by file and number; a closed number simply stops being reported).
//! `epoll_wait` asks each listed descriptor's readiness as `poll` does and,
//! with nothing ready, blocks as `poll` does (any wake-up key, then it looks
//! again). Edge-triggered entries (`EPOLLET`) are reported like level-triggered
//! ones (a program that reads until EAGAIN, as edge-triggered programs must,
//! sees no difference); `EPOLLONESHOT` disarms an entry once reported.
//! An eventfd is a 64-bit counter: writes add, reads take it (or 1 with
//! `EFD_SEMAPHORE`) and block at 0.

use std::any::Any;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use warden_abi as r;
use warden_abi::{Errno, Stat};

use crate::scheme::{FileOps, IoError, IoResult, Readiness, WaitKey};
use crate::syscall::{Call, SysError, SysResult};
use crate::usercopy::copy_out;
use crate::{Kernel, Pid, Waker};

const EPOLL_CTL_ADD: usize = 1;
const EPOLL_CTL_DEL: usize = 2;
const EPOLL_CTL_MOD: usize = 3;
const EPOLLONESHOT: u32 = 1 << 30;
/// Bits `epoll_wait` reports whether asked or not.
const ALWAYS: u32 = 0x8 | 0x10;
const O_CLOEXEC: usize = 0o2000000;
const O_NONBLOCK: usize = 0o4000;
const EFD_SEMAPHORE: usize = 1;
/// Wait keys of eventfds live in their own range (bit 60 set).
const EVENTFD_KEY_BASE: u64 = 1 << 60;

fn err<T>(e: i32) -> Result<T, SysError> {
    Err(SysError::Errno(Errno(e)))
}

/// An epoll instance: descriptor → (events, data).
struct EpollFile {
    id: u64,
    interest: RefCell<BTreeMap<usize, (u32, u64)>>,
}

impl FileOps for EpollFile {
    fn stat(&self) -> Result<Stat, Errno> {
        Ok(Stat { st_dev: 8, st_ino: self.id, st_mode: 0o600, st_nlink: 1, ..Stat::default() })
    }
    fn path(&self) -> Vec<u8> {
        b"anon_inode:[eventpoll]".to_vec()
    }
    fn as_any(&self) -> Option<&dyn Any> {
        Some(self)
    }
}

struct EventFd {
    id: u64,
    count: u64,
    semaphore: bool,
    waker: Waker,
}

impl EventFd {
    fn key(&self) -> WaitKey {
        WaitKey(EVENTFD_KEY_BASE | self.id)
    }
}

impl FileOps for EventFd {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        if buf.len() < 8 {
            return Err(Errno(r::EINVAL).into());
        }
        if self.count == 0 {
            return Err(IoError::WouldBlock(self.key()));
        }
        let v = if self.semaphore { 1 } else { self.count };
        self.count -= v;
        buf[..8].copy_from_slice(&v.to_le_bytes());
        self.waker.wake(self.key());
        Ok(8)
    }
    fn write(&mut self, buf: &[u8]) -> IoResult<usize> {
        let v = buf.get(..8).map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8]))).ok_or(Errno(r::EINVAL))?;
        if v == u64::MAX {
            return Err(Errno(r::EINVAL).into());
        }
        if self.count.checked_add(v).is_none_or(|c| c == u64::MAX) {
            return Err(IoError::WouldBlock(self.key()));
        }
        self.count += v;
        self.waker.wake(self.key());
        Ok(8)
    }
    fn stat(&self) -> Result<Stat, Errno> {
        Ok(Stat { st_dev: 8, st_ino: self.id, st_mode: 0o600, st_nlink: 1, ..Stat::default() })
    }
    fn path(&self) -> Vec<u8> {
        b"anon_inode:[eventfd]".to_vec()
    }
    fn readiness(&self) -> Option<Readiness> {
        Some(Readiness { read: self.count > 0, write: self.count < u64::MAX - 1, ..Readiness::default() })
    }
}

fn status(flags: usize) -> usize {
    if flags & O_NONBLOCK != 0 {
        r::O_NONBLOCK
    } else {
        0
    }
}

pub(super) fn epoll_create1(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    if c.args[0] & !O_CLOEXEC != 0 {
        return err(r::EINVAL);
    }
    let file = Rc::new(RefCell::new(EpollFile { id: k.alloc_object_id(), interest: RefCell::default() }));
    Ok(k.install_fd(tid, file, r::O_RDWR, c.args[0] & O_CLOEXEC != 0)?)
}

pub(super) fn epoll_create(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    if c.args[0] as i32 <= 0 {
        return err(r::EINVAL);
    }
    let file = Rc::new(RefCell::new(EpollFile { id: k.alloc_object_id(), interest: RefCell::default() }));
    Ok(k.install_fd(tid, file, r::O_RDWR, false)?)
}

/// Runs `f` on the epoll instance open at `fd` (EINVAL for any other file).
fn with_epoll<T>(k: &Kernel, tid: Pid, fd: usize, f: impl FnOnce(&EpollFile) -> T) -> Result<T, Errno> {
    let desc = k.desc(tid, fd)?;
    let file = desc.file.try_borrow().map_err(|_| Errno(r::EIO))?;
    let ep = file.as_any().and_then(|a| a.downcast_ref::<EpollFile>()).ok_or(Errno(r::EINVAL))?;
    Ok(f(ep))
}

pub(super) fn epoll_ctl(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let [epfd, op, fd, ..] = c.args;
    k.desc(tid, fd)?;
    if fd == epfd {
        return err(r::EINVAL);
    }
    let event = c.input(3).map(|e| {
        let events = u32::from_le_bytes([e[0], e[1], e[2], e[3]]);
        let mut data = [0u8; 8];
        data.copy_from_slice(&e[4..12]);
        (events, u64::from_le_bytes(data))
    });
    let result = with_epoll(k, tid, epfd, |ep| {
        let mut list = ep.interest.borrow_mut();
        match op {
            EPOLL_CTL_ADD if list.contains_key(&fd) => Err(Errno(r::EEXIST)),
            EPOLL_CTL_ADD | EPOLL_CTL_MOD => {
                if op == EPOLL_CTL_MOD && !list.contains_key(&fd) {
                    return Err(Errno(r::ENOENT));
                }
                list.insert(fd, event.ok_or(Errno(r::EFAULT))?);
                Ok(0)
            }
            EPOLL_CTL_DEL => list.remove(&fd).map(|_| 0).ok_or(Errno(r::ENOENT)),
            _ => Err(Errno(r::EINVAL)),
        }
    })?;
    Ok(result?)
}

fn wait(k: &mut Kernel, tid: Pid, c: &Call, mask: Option<u64>) -> SysResult {
    let [epfd, out, max, timeout, ..] = c.args;
    let max = max as i32;
    if max <= 0 || max > 1 << 20 {
        return err(r::EINVAL);
    }
    let entries: Vec<(usize, (u32, u64))> =
        with_epoll(k, tid, epfd, |ep| ep.interest.borrow().iter().map(|(&fd, &e)| (fd, e)).collect())?;
    let mut ready = Vec::new();
    for (fd, (events, data)) in entries {
        if events & !(1 << 31) == 0 {
            continue; // disarmed (EPOLLONESHOT)
        }
        let Some(bits) = k.lx_ready(tid, fd) else { continue };
        let got = bits as u32 & (events | ALWAYS);
        if got != 0 && ready.len() < max as usize {
            ready.push((fd, got, data, events));
        }
    }
    if ready.is_empty() {
        let timeout = (timeout as i32 >= 0).then(|| timeout as i32 as u64 * 1_000_000);
        return k.lx_wait_masked(tid, mask, timeout);
    }
    let mut bytes = Vec::with_capacity(ready.len() * 12);
    for &(_, got, data, _) in &ready {
        bytes.extend_from_slice(&got.to_le_bytes());
        bytes.extend_from_slice(&data.to_le_bytes());
    }
    copy_out(&mut k.mm_of(tid)?.borrow_mut().space.mem, out, &bytes)?;
    with_epoll(k, tid, epfd, |ep| {
        let mut list = ep.interest.borrow_mut();
        for &(fd, _, _, events) in &ready {
            if events & EPOLLONESHOT != 0 {
                if let Some(e) = list.get_mut(&fd) {
                    e.0 &= 1 << 31 | EPOLLONESHOT;
                }
            }
        }
    })?;
    Ok(ready.len())
}

pub(super) fn epoll_wait(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    wait(k, tid, c, None)
}

/// `epoll_pwait`: the signal mask applies while it waits (`Kernel::lx_wait_masked`).
pub(super) fn epoll_pwait(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    if c.input(4).is_some() && c.args[5] != 8 {
        return err(r::EINVAL);
    }
    wait(k, tid, c, c.input(4).map(|m| super::abi::le64(m, 0)))
}

fn new_eventfd(k: &mut Kernel, tid: Pid, init: usize, flags: usize) -> SysResult {
    if flags & !(O_CLOEXEC | O_NONBLOCK | EFD_SEMAPHORE) != 0 {
        return err(r::EINVAL);
    }
    let file = EventFd {
        id: k.alloc_object_id(),
        count: init as u32 as u64,
        semaphore: flags & EFD_SEMAPHORE != 0,
        waker: k.waker.clone(),
    };
    Ok(k.install_fd(tid, Rc::new(RefCell::new(file)), r::O_RDWR | status(flags), flags & O_CLOEXEC != 0)?)
}

pub(super) fn eventfd(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    new_eventfd(k, tid, c.args[0], 0)
}

pub(super) fn eventfd2(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    new_eventfd(k, tid, c.args[0], c.args[1])
}
