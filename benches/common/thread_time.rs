//! This thread's CPU time, shared by the benches that print ratios (included with `#[path]`).
//!
//! `CLOCK_THREAD_CPUTIME_ID` counts in nanoseconds and is less disturbed by other load on the
//! machine than wall time. (`/proc/thread-self/schedstat`, used before, advances in whole
//! scheduler ticks on some kernels, 4 ms here, which made the ratios printed from it
//! meaningless.)

/// CPU time of the calling thread in nanoseconds, if the clock is available.
pub fn thread_cpu_ns() -> Option<u64> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (r == 0).then(|| ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}
