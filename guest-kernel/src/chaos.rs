//! Seeded schedule perturbation, in the spirit of rr's chaos mode: with a nonzero seed the
//! scheduler varies every time slice and sometimes runs another runnable thread first, both
//! drawn from a PRNG seeded by the run's seed. A run stays a pure function of its inputs (the
//! same seed gives the same interleaving, and record/replay carries the seed), but different
//! seeds put preemption points at different instructions, which exposes races that the plain
//! round-robin schedule (seed 0) happens to avoid. CI sweeps seeds with `warden test --seeds`.
//!
//! Slice lengths: 1 in 8 slices is very short (1..=64 instructions: preempt almost at once),
//! 3 in 8 are uniform in 1..=quantum, the rest uniform in quantum/2..=3*quantum/2. Half of the
//! scheduling decisions pick a uniformly random entry of the run queue instead of its front.

use crate::Kernel;

/// The schedule's PRNG (splitmix64, independent of the guest-visible random sources).
pub(crate) struct Chaos(u64);

impl Chaos {
    /// `None` for seed 0: plain round robin.
    pub(crate) fn new(seed: u64) -> Option<Chaos> {
        (seed != 0).then_some(Chaos(seed ^ 0x6368_616f_735f_7363))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn slice(&mut self, quantum: u64) -> u64 {
        let q = quantum.max(1);
        let r = self.next();
        let x = r >> 8;
        match r % 8 {
            0 => 1 + x % q.min(64),
            1..=3 => 1 + x % q,
            _ => (q / 2).max(1) + x % (q + 1),
        }
    }
}

impl Kernel {
    /// Instructions the next slice may run.
    pub(crate) fn slice_length(&mut self) -> u64 {
        let q = self.config.quantum.max(1);
        match &mut self.sched.chaos {
            Some(c) => c.slice(q),
            None => q,
        }
    }

    /// With chaos, sometimes moves a random run-queue entry to the front.
    pub(crate) fn perturb_run_queue(&mut self) {
        let Some(c) = &mut self.sched.chaos else { return };
        let len = self.sched.run_queue.len();
        if len < 2 {
            return;
        }
        let r = c.next();
        if r & 1 == 0 {
            let i = (r >> 1) as usize % len;
            if let Some(tid) = self.sched.run_queue.remove(i) {
                self.sched.run_queue.push_front(tid);
            }
        }
    }
}
