//! Hooks for deterministic record and replay (the trace format itself lives in the `warden`
//! crate, `src/record.rs`).
//!
//! A run is a pure function of the image, the arguments, the seed and what comes from outside
//! the guest. The kernel exposes exactly those outside inputs and a checkpoint per system call:
//! - [`SyscallTap`]: called once per system call entry (after the call is decoded into the
//!   kernel's own copy, before it runs) with a [`SyscallPoint`]; returning `false` stops the
//!   run at once with [`crate::RunOutcome::Stopped`] (a replay that diverged). With no tap the
//!   cost is one branch per call.
//! - [`HostClock`]: where the host clock is read when `real_time` is set (and how the kernel
//!   sleeps while every thread waits); a recorder logs each reading, a replayer returns them.
//! - The console ([`crate::Console`]) is already the embedder's: stdin data and the results of
//!   console writes can be logged and replayed there.
//!
//! [`checkpoint_digest`] is the digest both sides compare: the 16 general registers, rip, the
//! gate, and the bytes of every pointer argument the call reads (paths, write buffers, exec
//! vectors).
//!
//! This is a narrow hook in the syscall path (it runs before any supervisor, so a recording
//! sees every call, supervised or not). It should move onto the host supervisor
//! ([`crate::supervise::HostSupervisor`]) once that can carry it: its `SyscallEntry` has no
//! register snapshot for the checkpoint digest, no decision stops the whole run (a replay
//! that diverged), and attaching it marks every thread supervised, a slower path than this
//! one branch.

use emu::Gate;

use crate::syscall::{Call, Input};
use crate::{Kernel, Pid};

/// What a tap sees at each system call.
pub struct SyscallPoint<'a> {
    /// 1-based index of the call in the run (all threads together).
    pub index: u64,
    pub tid: Pid,
    pub pid: Pid,
    /// Guest instructions retired by all threads so far.
    pub instructions: u64,
    pub gpr: &'a [u64; 16],
    pub rip: u64,
    pub call: &'a Call,
}

/// Observes (and may stop) every system call.
pub trait SyscallTap {
    /// `false` stops the run before the call executes.
    fn syscall(&mut self, point: &SyscallPoint<'_>) -> bool;
}

/// The host's clock, as the kernel reads it in `real_time` mode.
pub trait HostClock {
    /// Nanoseconds since the start of the run.
    fn monotonic_ns(&mut self) -> u64;
    /// Nanoseconds since the Unix epoch.
    fn realtime_ns(&mut self) -> u64;
    /// Waits `ns` nanoseconds (every guest thread is asleep).
    fn sleep_ns(&mut self, ns: u64);
}

/// The host clock itself.
pub struct SystemClock {
    start: std::time::Instant,
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock { start: std::time::Instant::now() }
    }
}

impl HostClock for SystemClock {
    fn monotonic_ns(&mut self) -> u64 {
        self.start.elapsed().as_nanos().min(u64::MAX as u128) as u64
    }

    fn realtime_ns(&mut self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos().min(u64::MAX as u128) as u64)
            .unwrap_or(0)
    }

    fn sleep_ns(&mut self, ns: u64) {
        std::thread::sleep(std::time::Duration::from_nanos(ns));
    }
}

const K: u64 = 0x9e37_79b9_7f4a_7c15;

/// Odd multipliers.
const ODD: [u64; 2] = [0xbf58_476d_1ce4_e5b9, 0x94d0_49bb_1331_11eb];

#[inline]
fn avalanche(mut z: u64) -> u64 {
    z = (z ^ (z >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
    z = (z ^ (z >> 33)).wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    z ^ (z >> 33)
}

fn sum_bytes(bytes: &[u8]) -> u64 {
    let mut acc = (bytes.len() as u64).wrapping_mul(K);
    let mut chunks = bytes.chunks_exact(8);
    // Word j is multiplied by its own odd key (j * 2K + ODD[1]), so moving words changes it.
    let mut key = ODD[1];
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        acc = acc.wrapping_add(u64::from_le_bytes(w).wrapping_mul(key));
        key = key.wrapping_add(K << 1);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        acc = acc.wrapping_add(u64::from_le_bytes(w).wrapping_mul(key));
    }
    avalanche(acc)
}

/// The digest of a checkpoint: registers, rip, gate and the bytes the call reads.
///
/// Registers are folded with a distinct rotation each (so a change in any one register
/// always changes the fold), then one avalanche mixes every bit: a handful of cycles, since
/// recording runs this on every system call.
pub fn checkpoint_digest(point: &SyscallPoint<'_>) -> u64 {
    let g = point.gpr;
    let mut a = point.rip ^ (matches!(point.call.gate, Gate::Int80) as u64);
    let mut b = 0u64;
    for i in 0..8 {
        a ^= g[i].rotate_left(8 * i as u32 + 1);
        b ^= g[i + 8].rotate_left(8 * i as u32 + 5);
    }
    let mut acc = a.wrapping_add(b.wrapping_mul(ODD[0]));
    match &point.call.input {
        Input::Path(bytes) | Input::Bytes(bytes) => acc ^= sum_bytes(bytes),
        Input::Exec { args, envs } => {
            for x in args.iter().chain(envs) {
                acc = acc.rotate_left(7) ^ sum_bytes(x);
            }
        }
        _ => {}
    }
    avalanche(acc)
}

impl Kernel {
    /// Installs a tap that sees every system call from now on.
    pub fn set_syscall_tap(&mut self, tap: Box<dyn SyscallTap>) {
        self.tap = Some(tap);
    }

    /// Reads the host clock through `clock` (only used with `real_time`).
    pub fn set_host_clock(&mut self, clock: Box<dyn HostClock>) {
        self.clock.set_host(clock);
    }

    /// Calls the tap; `false` if it stopped the run.
    pub(crate) fn tap_syscall(&mut self, tid: Pid, call: &Call) -> bool {
        let go = match (self.tap.as_mut(), self.threads.get(&tid)) {
            (Some(tap), Some(t)) => tap.syscall(&SyscallPoint {
                index: self.stats.syscalls,
                tid,
                pid: t.pid,
                instructions: self.stats.instructions,
                gpr: &t.cpu.gpr,
                rip: t.cpu.rip,
                call,
            }),
            _ => true,
        };
        if !go {
            self.outcome = Some(crate::RunOutcome::Stopped);
        }
        go
    }
}
