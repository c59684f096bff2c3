//! Clocks and the `time:` scheme.
//!
//! By default time is virtual: the guest CPU runs at one instruction per
//! nanosecond, so `CLOCK_MONOTONIC` is the number of instructions retired by
//! all threads plus the time skipped while every thread slept (the scheduler
//! jumps the clock to the next wake-up instead of waiting). `CLOCK_REALTIME`
//! is that plus a fixed epoch (2020-01-01T00:00:00Z). Both are pure functions
//! of the run. With `real_time` the host's clocks are used instead.
//!
//! `time:` (or `time:N` for clock id N, default `CLOCK_MONOTONIC`) reads as
//! one `TimeSpec` (Redox's convention) each time it is read.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use crate::record::{HostClock, SystemClock};

use warden_abi::{Errno, Stat, TimeSpec, CLOCK_MONOTONIC, CLOCK_REALTIME, EINVAL, ENOENT, MODE_CHR};

use crate::scheme::{CallCtx, FileOps, FileRef, IoResult, Scheme};

/// The virtual epoch of `CLOCK_REALTIME`: 2020-01-01T00:00:00Z.
pub const VIRTUAL_EPOCH_SECS: u64 = 1_577_836_800;

/// The kernel's clock, shared with the `time:` scheme.
pub struct Clock {
    real_time: bool,
    /// The host clock read in `real_time` mode (replaceable for record/replay).
    host: RefCell<Box<dyn HostClock>>,
    /// Instructions retired by all threads (updated by the scheduler).
    instructions: Cell<u64>,
    /// Nanoseconds skipped while every thread slept.
    skipped: Cell<u64>,
}

impl Clock {
    pub fn new(real_time: bool) -> Clock {
        Clock {
            real_time,
            host: RefCell::new(Box::new(SystemClock::default())),
            instructions: Cell::new(0),
            skipped: Cell::new(0),
        }
    }

    pub(crate) fn set_host(&self, host: Box<dyn HostClock>) {
        *self.host.borrow_mut() = host;
    }

    /// Waits on the host (real time only) while every thread sleeps.
    pub(crate) fn sleep_ns(&self, ns: u64) {
        if self.real_time {
            self.host.borrow_mut().sleep_ns(ns);
        }
    }

    pub fn is_real_time(&self) -> bool {
        self.real_time
    }

    pub(crate) fn set_instructions(&self, n: u64) {
        self.instructions.set(n);
    }

    /// Moves virtual time forward to `ns` (no effect on real time or if `ns`
    /// is not in the future).
    pub(crate) fn skip_to(&self, ns: u64) {
        let now = self.monotonic_ns();
        if !self.real_time && ns > now {
            self.skipped.set(self.skipped.get().saturating_add(ns - now));
        }
    }

    /// Monotonic nanoseconds since the start of the run.
    pub fn monotonic_ns(&self) -> u64 {
        if self.real_time {
            self.host.borrow_mut().monotonic_ns()
        } else {
            self.instructions.get().saturating_add(self.skipped.get())
        }
    }

    /// Wall-clock nanoseconds since the Unix epoch.
    pub fn realtime_ns(&self) -> u64 {
        if self.real_time {
            self.host.borrow_mut().realtime_ns()
        } else {
            (VIRTUAL_EPOCH_SECS * 1_000_000_000).saturating_add(self.monotonic_ns())
        }
    }

    /// The time of clock `id` (Redox ids: `CLOCK_REALTIME`, `CLOCK_MONOTONIC`).
    pub fn now(&self, id: usize) -> Result<TimeSpec, Errno> {
        let ns = match id {
            CLOCK_REALTIME => self.realtime_ns(),
            CLOCK_MONOTONIC => self.monotonic_ns(),
            _ => return Err(Errno(EINVAL)),
        };
        Ok(ns_to_timespec(ns))
    }
}

pub fn ns_to_timespec(ns: u64) -> TimeSpec {
    TimeSpec { tv_sec: (ns / 1_000_000_000) as i64, tv_nsec: (ns % 1_000_000_000) as i32 }
}

/// A valid duration in nanoseconds, or EINVAL.
pub fn timespec_to_ns(ts: &TimeSpec) -> Result<u64, Errno> {
    if ts.tv_sec < 0 || !(0..1_000_000_000).contains(&ts.tv_nsec) {
        return Err(Errno(EINVAL));
    }
    Ok((ts.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec as u64))
}

/// The `time:` scheme.
pub(crate) struct TimeScheme {
    pub(crate) clock: Rc<Clock>,
}

impl Scheme for TimeScheme {
    fn open(&mut self, path: &[u8], _flags: usize, _ctx: &CallCtx) -> Result<FileRef, Errno> {
        let path = path.strip_prefix(b"/").unwrap_or(path);
        let id = if path.is_empty() {
            CLOCK_MONOTONIC
        } else {
            std::str::from_utf8(path).ok().and_then(|s| s.parse().ok()).ok_or(Errno(ENOENT))?
        };
        self.clock.now(id).map_err(|_| Errno(ENOENT))?;
        Ok(Rc::new(RefCell::new(TimeFile { clock: self.clock.clone(), id })))
    }
}

struct TimeFile {
    clock: Rc<Clock>,
    id: usize,
}

impl FileOps for TimeFile {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        let ts = self.clock.now(self.id)?;
        let bytes = ts.to_bytes();
        let n = bytes.len().min(buf.len());
        buf[..n].copy_from_slice(&bytes[..n]);
        Ok(n)
    }

    fn stat(&self) -> Result<Stat, Errno> {
        Ok(Stat { st_mode: MODE_CHR | 0o444, st_nlink: 1, ..Stat::default() })
    }

    fn path(&self) -> Vec<u8> {
        format!("time:{}", self.id).into_bytes()
    }
}
