//! `timerfd_create`, `timerfd_settime`, `timerfd_gettime`: timers read as descriptors, on
//! the kernel's clock (virtual unless `--real-time`).
//!
//! A timer's state ([`TimerState`]) is shared between its descriptor and the kernel's list
//! (`LinuxState::timerfds`, weak: a timer goes with its last descriptor). Timers fire as
//! `ITIMER_REAL` does (`time.rs`): the scheduler's [`Kernel::linux_fire_timers`] counts
//! the expirations of every timer whose deadline has passed (missed periods included),
//! re-arms it by its interval and wakes its readers; when every thread is blocked the clock
//! advances to the earliest deadline. The calls that look at a timer (`read`, `poll`,
//! `epoll_wait`, `timerfd_gettime`) fire due timers first, so a timer is never seen late.
//! A read takes the count of expirations (8 bytes), or blocks while it is 0.
//! `CLOCK_REALTIME` timers with `TFD_TIMER_ABSTIME` are converted to the monotonic clock
//! when set (the guest cannot set the clock, so the two never drift apart).

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use warden_abi as r;
use warden_abi::{Errno, Stat};

use super::abi;
use crate::scheme::{FileOps, IoError, IoResult, Readiness, WaitKey};
use crate::syscall::{Call, SysError, SysResult};
use crate::usercopy::copy_out;
use crate::{Kernel, Pid, Waker};

const TFD_CLOEXEC: usize = 0o2000000;
const TFD_NONBLOCK: usize = 0o4000;
const TFD_TIMER_ABSTIME: usize = 1;
/// Accepted and treated as `TFD_TIMER_ABSTIME` alone (the clock is never set).
const TFD_TIMER_CANCEL_ON_SET: usize = 2;
const CLOCK_REALTIME_ALARM: usize = 8;
const CLOCK_BOOTTIME_ALARM: usize = 9;
/// Wait keys of timers live in their own range (bits 60 and 59 set).
const TIMERFD_KEY_BASE: u64 = 3 << 59;

fn err<T>(e: i32) -> Result<T, SysError> {
    Err(SysError::Errno(Errno(e)))
}

/// One timer: its clock, when it next fires (monotonic ns), its period, and the
/// expirations not read yet.
#[derive(Debug)]
pub(crate) struct TimerState {
    id: u64,
    realtime: bool,
    deadline: Option<u64>,
    interval: u64,
    expirations: u64,
}

impl TimerState {
    fn key(&self) -> WaitKey {
        WaitKey(TIMERFD_KEY_BASE | self.id)
    }
}

struct TimerFd {
    state: Rc<RefCell<TimerState>>,
    waker: Waker,
}

impl FileOps for TimerFd {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        if buf.len() < 8 {
            return Err(Errno(r::EINVAL).into());
        }
        let mut t = self.state.borrow_mut();
        if t.expirations == 0 {
            return Err(IoError::WouldBlock(t.key()));
        }
        buf[..8].copy_from_slice(&std::mem::take(&mut t.expirations).to_le_bytes());
        Ok(8)
    }
    fn write(&mut self, _buf: &[u8]) -> IoResult<usize> {
        Err(Errno(r::EINVAL).into())
    }
    fn stat(&self) -> Result<Stat, Errno> {
        Ok(Stat { st_dev: 8, st_ino: self.state.borrow().id, st_mode: 0o600, st_nlink: 1, ..Stat::default() })
    }
    fn path(&self) -> Vec<u8> {
        b"anon_inode:[timerfd]".to_vec()
    }
    fn readiness(&self) -> Option<Readiness> {
        Some(Readiness { read: self.state.borrow().expirations > 0, ..Readiness::default() })
    }
    fn close(&mut self) {
        // Readers of other descriptors of it look again (and find it still there).
        self.waker.wake(self.state.borrow().key());
    }
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

impl Kernel {
    /// The earliest deadline of an armed timer descriptor.
    pub(crate) fn lx_next_timerfd(&self) -> Option<u64> {
        self.linux.timerfds.iter().filter_map(|t| t.upgrade()?.try_borrow().ok()?.deadline).min()
    }

    /// Counts the expirations of every timer descriptor whose deadline has passed, re-arms
    /// it (or disarms a one-shot timer) and wakes its readers.
    pub(crate) fn lx_fire_timerfds(&self) {
        if self.linux.timerfds.is_empty() {
            return;
        }
        let now = self.clock.monotonic_ns();
        for t in &self.linux.timerfds {
            let Some(t) = t.upgrade() else { continue };
            let Ok(mut t) = t.try_borrow_mut() else { continue };
            let Some(deadline) = t.deadline.filter(|&d| d <= now) else { continue };
            let missed = (now - deadline).checked_div(t.interval);
            t.expirations = t.expirations.saturating_add(missed.map_or(1, |m| m + 1));
            t.deadline = missed.map(|m| deadline.saturating_add(t.interval.saturating_mul(m + 1)));
            self.waker.wake(t.key());
        }
    }

    /// The timer open at `fd` (EINVAL for any other file).
    fn lx_timer(&self, tid: Pid, fd: usize) -> Result<Rc<RefCell<TimerState>>, Errno> {
        let desc = self.desc(tid, fd)?;
        let file = desc.file.try_borrow().map_err(|_| Errno(r::EIO))?;
        let timer = file.as_any().and_then(|a| a.downcast_ref::<TimerFd>()).ok_or(Errno(r::EINVAL))?;
        Ok(timer.state.clone())
    }
}

/// A timer's setting as `struct itimerspec` bytes: (interval, time left).
fn itimerspec(t: &TimerState, now: u64) -> [u8; 32] {
    let mut out = [0u8; 32];
    out[..16].copy_from_slice(&abi::timespec_bytes(t.interval));
    let left = t.deadline.map_or(0, |d| d.saturating_sub(now).max(1));
    out[16..].copy_from_slice(&abi::timespec_bytes(left));
    out
}

// --- handlers (rows of `warden_abi::linux_calls!`) -------------------------------------------

pub(super) fn timerfd_create(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let [clock, flags, ..] = c.args;
    let realtime = match clock {
        abi::CLOCK_REALTIME | CLOCK_REALTIME_ALARM => true,
        abi::CLOCK_MONOTONIC | abi::CLOCK_BOOTTIME | CLOCK_BOOTTIME_ALARM => false,
        _ => return err(r::EINVAL),
    };
    if flags & !(TFD_CLOEXEC | TFD_NONBLOCK) != 0 {
        return err(r::EINVAL);
    }
    let state = Rc::new(RefCell::new(TimerState {
        id: k.alloc_object_id(),
        realtime,
        deadline: None,
        interval: 0,
        expirations: 0,
    }));
    k.linux.timerfds.retain(|t| t.strong_count() > 0);
    k.linux.timerfds.push(Rc::downgrade(&state));
    let file = TimerFd { state, waker: k.waker.clone() };
    let status = if flags & TFD_NONBLOCK != 0 { r::O_NONBLOCK } else { 0 };
    Ok(k.install_fd(tid, Rc::new(RefCell::new(file)), r::O_RDONLY | status, flags & TFD_CLOEXEC != 0)?)
}

pub(super) fn timerfd_settime(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let [fd, flags, _, old, ..] = c.args;
    if flags & !(TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET) != 0 {
        return err(r::EINVAL);
    }
    let new = c.input(2).ok_or(Errno(r::EFAULT))?;
    let interval = abi::timespec_ns(&new[..16]).ok_or(Errno(r::EINVAL))?;
    let value = abi::timespec_ns(&new[16..]).ok_or(Errno(r::EINVAL))?;
    let timer = k.lx_timer(tid, fd)?;
    k.lx_fire_timerfds();
    let now = k.clock.monotonic_ns();
    let previous = itimerspec(&timer.borrow(), now);
    {
        let mut t = timer.borrow_mut();
        t.expirations = 0;
        t.interval = interval;
        t.deadline = if value == 0 {
            None
        } else if flags & TFD_TIMER_ABSTIME != 0 {
            let clock_now = if t.realtime { k.clock.realtime_ns() } else { now };
            Some(now.saturating_add(value.saturating_sub(clock_now)))
        } else {
            Some(now.saturating_add(value))
        };
    }
    if old != 0 {
        copy_out(&mut k.mm_of(tid)?.borrow_mut().space.mem, old, &previous)?;
    }
    // A deadline already passed fires now.
    k.lx_fire_timerfds();
    Ok(0)
}

pub(super) fn timerfd_gettime(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let [fd, out, ..] = c.args;
    let timer = k.lx_timer(tid, fd)?;
    k.lx_fire_timerfds();
    let now = k.clock.monotonic_ns();
    let bytes = itimerspec(&timer.borrow(), now);
    copy_out(&mut k.mm_of(tid)?.borrow_mut().space.mem, out, &bytes)?;
    Ok(0)
}

/// Keeps the weak list's type in one place.
pub(crate) type TimerList = Vec<Weak<RefCell<TimerState>>>;
