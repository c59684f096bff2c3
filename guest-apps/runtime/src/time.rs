//! Clocks and sleeping.
//!
//! Design: thin helpers over `clock_gettime` and `nanosleep` with integer arithmetic only
//! (no floating point in the runtime). A sleep interrupted by a signal is not resumed.

use crate::Result;
use crate::abi::{self, TimeSpec};
use crate::sys;

/// Nanoseconds per second.
pub const NANOS_PER_SEC: u64 = 1_000_000_000;

/// The monotonic clock.
pub fn monotonic() -> Result<TimeSpec> {
    sys::clock_gettime(abi::CLOCK_MONOTONIC)
}

/// The wall clock.
pub fn realtime() -> Result<TimeSpec> {
    sys::clock_gettime(abi::CLOCK_REALTIME)
}

/// A time as nanoseconds (negative times clamp to 0).
pub fn as_nanos(ts: &TimeSpec) -> u64 {
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    secs.saturating_mul(NANOS_PER_SEC).saturating_add(nanos)
}

/// A duration of `nanos` nanoseconds as a `TimeSpec`.
pub fn from_nanos(nanos: u64) -> TimeSpec {
    TimeSpec { tv_sec: (nanos / NANOS_PER_SEC) as i64, tv_nsec: (nanos % NANOS_PER_SEC) as i32 }
}

/// Sleeps for `nanos` nanoseconds.
pub fn sleep_nanos(nanos: u64) -> Result<()> {
    sys::nanosleep(&from_nanos(nanos)).map(drop)
}
