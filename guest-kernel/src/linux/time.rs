//! Linux time calls on the kernel's clock (virtual unless `--real-time`).
//!
//! Interval timers: `alarm` and `setitimer`/`getitimer` with `ITIMER_REAL`
//! keep one timer per process (`LinuxState::timers`: deadline and interval on
//! the monotonic clock). The scheduler calls [`Kernel::linux_fire_timers`]
//! between slices, so a timer fires at the first slice boundary at or after
//! its deadline (within one quantum of guest instructions in virtual time),
//! posting `SIGALRM` to the process and re-arming by its interval; when every
//! thread is blocked, [`Kernel::linux_next_timer`] is a deadline the clock
//! advances to, as for sleeps. Timers survive exec, are not inherited by
//! fork, and end with the process.
//!
//! `ITIMER_VIRTUAL` and `ITIMER_PROF` count the process's CPU time, which here is its
//! instructions (one per nanosecond, as `CLOCK_PROCESS_CPUTIME_ID` counts them; the kernel's
//! own work is free, so the two timers count alike): at each slice boundary the
//! instructions its threads ran since the last look are taken off the time left
//! ([`CpuTimer`]); at zero `SIGVTALRM` or `SIGPROF` is posted and the timer re-arms by its
//! interval. Instructions of a thread that exits between two looks are not counted.

use warden_abi as r;
use warden_abi::Errno;

use super::abi;
use crate::process::{OnWake, WaitOn};
use crate::syscall::{Block, Call, SysError, SysResult};
use crate::usercopy::copy_out;
use crate::{Kernel, Pid};

/// `setitimer`'s `which` for the real-time timer.
const ITIMER_REAL: usize = 0;
const ITIMER_VIRTUAL: usize = 1;
const ITIMER_PROF: usize = 2;
const SIGVTALRM: usize = 26;
const SIGPROF: usize = 27;

/// An `ITIMER_VIRTUAL`/`ITIMER_PROF` timer: CPU nanoseconds (instructions) left, its
/// interval, and the process's instruction count when last looked at.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CpuTimer {
    left: u64,
    interval: u64,
    seen: u64,
}

fn err<T>(e: i32) -> Result<T, SysError> {
    Err(SysError::Errno(Errno(e)))
}

impl Kernel {
    /// Nanoseconds on Linux clock `id`.
    fn lx_clock_ns(&self, tid: Pid, id: usize) -> Result<u64, Errno> {
        Ok(match id {
            abi::CLOCK_REALTIME | abi::CLOCK_REALTIME_COARSE => self.clock.realtime_ns(),
            abi::CLOCK_MONOTONIC | abi::CLOCK_MONOTONIC_RAW | abi::CLOCK_MONOTONIC_COARSE | abi::CLOCK_BOOTTIME => {
                self.clock.monotonic_ns()
            }
            abi::CLOCK_PROCESS_CPUTIME_ID | abi::CLOCK_THREAD_CPUTIME_ID => {
                self.threads.get(&tid).map(|t| t.cpu.icount).unwrap_or(0)
            }
            _ => return Err(Errno(r::EINVAL)),
        })
    }

    fn lx_put(&mut self, tid: Pid, addr: usize, data: &[u8]) -> Result<(), Errno> {
        let mm = self.mm_of(tid)?;
        let r = copy_out(&mut mm.borrow_mut().space.mem, addr, data);
        r
    }

    fn lx_sleep_until(&mut self, deadline: u64) -> SysResult {
        if deadline <= self.clock.monotonic_ns() {
            self.sched.yield_requested = true;
            return Ok(0);
        }
        Err(SysError::Block(Block {
            on: WaitOn::Sleep,
            deadline: Some(deadline),
            on_timeout: Ok(0),
            on_wake: OnWake::Return(Ok(0)),
        }))
    }

    /// Replaces (if `new` is given: (interval, value), value 0 disarms) the
    /// `ITIMER_REAL` timer of `pid`; returns the old (interval, time left).
    fn lx_set_timer(&mut self, pid: Pid, new: Option<(u64, u64)>) -> (u64, Option<u64>) {
        let now = self.clock.monotonic_ns();
        let old = match self.linux.timers.get(&pid) {
            Some(&(deadline, interval)) => (interval, Some(deadline.saturating_sub(now).max(1))),
            None => (0, None),
        };
        if let Some((interval, value)) = new {
            if value == 0 {
                self.linux.timers.remove(&pid);
            } else {
                self.linux.timers.insert(pid, (now.saturating_add(value), interval));
            }
        }
        old
    }

    /// The instructions the live threads of `pid` have run.
    fn lx_process_icount(&self, pid: Pid) -> u64 {
        let Some(p) = self.procs.get(&pid) else { return 0 };
        p.threads.iter().filter_map(|t| self.threads.get(t)).map(|t| t.cpu.icount).sum()
    }

    /// Takes the instructions run since the last look off every CPU timer; posts the
    /// signal of those that reach zero and re-arms them by their interval.
    fn lx_count_cpu_timers(&mut self) {
        let procs = &self.procs;
        self.linux
            .cpu_timers
            .retain(|(pid, _), _| procs.get(pid).is_some_and(|p| p.state == crate::process::ProcState::Alive));
        let keys: Vec<(Pid, usize)> = self.linux.cpu_timers.keys().copied().collect();
        for (pid, which) in keys {
            let now = self.lx_process_icount(pid);
            let Some(t) = self.linux.cpu_timers.get_mut(&(pid, which)) else { continue };
            let ran = now.saturating_sub(t.seen);
            t.seen = now;
            if ran < t.left {
                t.left -= ran;
                continue;
            }
            let over = ran - t.left;
            if t.interval == 0 {
                self.linux.cpu_timers.remove(&(pid, which));
            } else {
                t.left = t.interval - over % t.interval;
            }
            self.post_signal(pid, if which == ITIMER_VIRTUAL { SIGVTALRM } else { SIGPROF });
        }
    }

    /// Replaces (if `new`: (interval, value), value 0 disarms) CPU timer `which` of `pid`;
    /// returns the old (interval, time left).
    fn lx_set_cpu_timer(&mut self, pid: Pid, which: usize, new: Option<(u64, u64)>) -> (u64, Option<u64>) {
        self.lx_count_cpu_timers();
        let old = match self.linux.cpu_timers.get(&(pid, which)) {
            Some(t) => (t.interval, Some(t.left.max(1))),
            None => (0, None),
        };
        if let Some((interval, value)) = new {
            if value == 0 {
                self.linux.cpu_timers.remove(&(pid, which));
            } else {
                let seen = self.lx_process_icount(pid);
                self.linux.cpu_timers.insert((pid, which), CpuTimer { left: value, interval, seen });
            }
        }
        old
    }

    /// The earliest armed timer's deadline (the scheduler's idle clock advances to it).
    pub(crate) fn linux_next_timer(&self) -> Option<u64> {
        self.linux.timers.values().map(|&(deadline, _)| deadline).chain(self.lx_next_timerfd()).min()
    }

    /// Fires every timer whose deadline has passed: SIGALRM to its process,
    /// re-armed by its interval (missed periods are skipped) or disarmed.
    pub(crate) fn linux_fire_timers(&mut self) {
        self.lx_fire_timerfds();
        if !self.linux.cpu_timers.is_empty() {
            self.lx_count_cpu_timers();
        }
        if self.linux.timers.is_empty() {
            return;
        }
        let procs = &self.procs;
        self.linux.timers.retain(|pid, _| procs.get(pid).is_some_and(|p| p.state == crate::process::ProcState::Alive));
        let now = self.clock.monotonic_ns();
        let due: Vec<Pid> = self.linux.timers.iter().filter(|(_, &(d, _))| d <= now).map(|(&pid, _)| pid).collect();
        for pid in due {
            if let Some(&(deadline, interval)) = self.linux.timers.get(&pid) {
                // No interval (a one-shot timer) is disarmed.
                if let Some(missed) = (now - deadline).checked_div(interval) {
                    let next = deadline.saturating_add(interval.saturating_mul(missed + 1));
                    self.linux.timers.insert(pid, (next, interval));
                } else {
                    self.linux.timers.remove(&pid);
                }
            }
            self.post_signal(pid, r::SIGALRM);
        }
    }
}

// --- handlers (rows of `warden_abi::linux_calls!`) -------------------------------------------

pub(super) fn clock_gettime(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let ns = k.lx_clock_ns(tid, c.args[0])?;
    k.lx_put(tid, c.args[1], &abi::timespec_bytes(ns))?;
    Ok(0)
}

pub(super) fn clock_getres(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    k.lx_clock_ns(tid, c.args[0])?;
    if c.args[1] != 0 {
        k.lx_put(tid, c.args[1], &abi::timespec_bytes(1))?;
    }
    Ok(0)
}

pub(super) fn gettimeofday(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    if c.args[0] != 0 {
        let ns = k.clock.realtime_ns();
        k.lx_put(tid, c.args[0], &abi::timeval_bytes(ns))?;
    }
    if c.args[1] != 0 {
        k.lx_put(tid, c.args[1], &[0u8; 8])?;
    }
    Ok(0)
}

pub(super) fn time(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let secs = k.clock.realtime_ns() / 1_000_000_000;
    if c.args[0] != 0 {
        k.lx_put(tid, c.args[0], &secs.to_le_bytes())?;
    }
    Ok(secs as usize)
}

/// The sleep request of argument `arg` in nanoseconds (EINVAL if malformed).
fn request(c: &Call, arg: usize) -> Result<u64, Errno> {
    super::fs::timeout(c, arg)?.ok_or(Errno(r::EFAULT))
}

pub(super) fn nanosleep(k: &mut Kernel, _: Pid, c: &Call) -> SysResult {
    let deadline = k.clock.monotonic_ns().saturating_add(request(c, 0)?);
    k.lx_sleep_until(deadline)
}

pub(super) fn clock_nanosleep(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let ns = request(c, 2)?;
    let now = k.lx_clock_ns(tid, c.args[0])?;
    let rel = if c.args[1] & abi::TIMER_ABSTIME != 0 { ns.saturating_sub(now) } else { ns };
    let deadline = k.clock.monotonic_ns().saturating_add(rel);
    k.lx_sleep_until(deadline)
}

pub(super) fn alarm(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let pid = k.pid_of(tid)?;
    let new = (c.args[0] as u32 as u64).saturating_mul(1_000_000_000);
    let (_, old) = k.lx_set_timer(pid, Some((0, new)));
    // Remaining seconds, rounded to the nearest; at least 1 while armed.
    Ok(old.map_or(0, |ns| ((ns + 500_000_000) / 1_000_000_000).max(1)) as usize)
}

/// `getitimer` / `setitimer` (`new`: `None` for get) on `ITIMER_REAL`; the old value goes to
/// `out` if non-null.
fn itimer(k: &mut Kernel, tid: Pid, which: usize, new: Option<(u64, u64)>, out: usize) -> SysResult {
    let pid = k.pid_of(tid)?;
    let (interval, value) = match which {
        ITIMER_REAL => k.lx_set_timer(pid, new),
        ITIMER_VIRTUAL | ITIMER_PROF => k.lx_set_cpu_timer(pid, which, new),
        _ => return err(r::EINVAL),
    };
    if out != 0 {
        let mut b = [0u8; 32];
        b[..16].copy_from_slice(&abi::timeval_bytes(interval));
        b[16..].copy_from_slice(&abi::timeval_bytes(value.unwrap_or(0)));
        k.lx_put(tid, out, &b)?;
    }
    Ok(0)
}

pub(super) fn getitimer(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    itimer(k, tid, c.args[0], None, c.args[1])
}

/// `setitimer`: a null new value disarms, as on Linux.
pub(super) fn setitimer(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let new = match c.input(1) {
        Some(b) => {
            let interval = abi::timeval_ns(&b[..16]).ok_or(Errno(r::EINVAL))?;
            let value = abi::timeval_ns(&b[16..]).ok_or(Errno(r::EINVAL))?;
            (interval, value)
        }
        None => (0, 0),
    };
    itimer(k, tid, c.args[0], Some(new), c.args[2])
}
