//! The architectural state of one guest hardware thread.
//!
//! Plain public fields: tools and the kernel read and write registers
//! directly, the way a debugger would. Flags are kept eagerly in `rflags`
//! (the interpreter skips computing flags that are provably dead instead of
//! computing them lazily), so reading `rflags` is always exact.

use crate::cpuid::CpuModel;
use crate::x87::X87State;

/// General-purpose register indices into [`Cpu::gpr`].
pub mod reg {
    pub const RAX: usize = 0;
    pub const RCX: usize = 1;
    pub const RDX: usize = 2;
    pub const RBX: usize = 3;
    pub const RSP: usize = 4;
    pub const RBP: usize = 5;
    pub const RSI: usize = 6;
    pub const RDI: usize = 7;
    pub const R8: usize = 8;
    pub const R9: usize = 9;
    pub const R10: usize = 10;
    pub const R11: usize = 11;
    pub const R12: usize = 12;
    pub const R13: usize = 13;
    pub const R14: usize = 14;
    pub const R15: usize = 15;
}

/// RFLAGS bits.
pub mod flags {
    pub const CF: u64 = 1 << 0;
    pub const PF: u64 = 1 << 2;
    pub const AF: u64 = 1 << 4;
    pub const ZF: u64 = 1 << 6;
    pub const SF: u64 = 1 << 7;
    pub const TF: u64 = 1 << 8;
    pub const IF: u64 = 1 << 9;
    pub const DF: u64 = 1 << 10;
    pub const OF: u64 = 1 << 11;
    pub const AC: u64 = 1 << 18;
    pub const ID: u64 = 1 << 21;
    /// The six arithmetic status flags.
    pub const STATUS: u64 = CF | PF | AF | ZF | SF | OF;
    /// Bits user code may change with `popf` (AC and ID included, as on hardware).
    pub const USER_WRITABLE: u64 = STATUS | TF | DF | AC | ID;
    /// Bit 1 always reads as one; IF is always set in user mode.
    pub const FIXED: u64 = 1 << 1 | IF;
}

/// Default MXCSR: all exceptions masked, round to nearest.
pub const MXCSR_DEFAULT: u32 = 0x1f80;
/// MXCSR bits that exist (writing others is #GP); DAZ included.
pub const MXCSR_MASK: u32 = 0xffff;

/// One guest hardware thread. `repr(C)` puts `gpr` first, 16-byte aligned (the `u128`
/// fields make the struct so), which [`Cpu::gpr_xor`] relies on; it also keeps the
/// registers within a one-byte displacement of the struct's address.
#[derive(Clone, Debug)]
#[repr(C)]
pub struct Cpu {
    /// RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8..R15 (see [`reg`]).
    pub gpr: [u64; 16],
    pub rip: u64,
    pub rflags: u64,
    pub fs_base: u64,
    pub gs_base: u64,
    /// XMM0..15, the low halves of YMM0..15.
    pub xmm: [u128; 16],
    /// Bits 255:128 of YMM0..15. Legacy SSE instructions leave them alone, VEX.128 ones
    /// zero them (of their destination).
    pub ymm_hi: [u128; 16],
    pub mxcsr: u32,
    /// x87 state; the MMX registers are the significands of its physical registers.
    pub x87: X87State,
    /// Guest instructions retired so far (a `rep` string instruction counts once).
    pub icount: u64,
    /// The CPU this thread is (`cpuid`, and which instructions decode).
    pub model: CpuModel,
    /// The state of the generator `rdrand` and `rdseed` draw from: seeded by the caller
    /// (the kernel, from the run's seed), so runs stay deterministic and replayable.
    pub rand_state: u64,
    /// Which tier runs hot code (not architectural: both give the same results).
    pub tier: crate::jit::Tier,
}

impl Default for Cpu {
    fn default() -> Self {
        Cpu::new()
    }
}

impl Cpu {
    /// A thread in the state a process starts in: registers zero, flags
    /// `0x202`, MXCSR and the x87 control word at their reset values.
    pub fn new() -> Cpu {
        Cpu {
            gpr: [0; 16],
            rip: 0,
            rflags: flags::FIXED,
            fs_base: 0,
            gs_base: 0,
            xmm: [0; 16],
            ymm_hi: [0; 16],
            mxcsr: MXCSR_DEFAULT,
            x87: X87State::default(),
            icount: 0,
            model: CpuModel::default(),
            rand_state: 0,
            tier: crate::jit::Tier::Jit,
        }
    }

    /// Mixes `n` (say, a thread id) into the `rdrand` generator, so threads and forked
    /// processes that start from a copy of one state draw different numbers.
    pub fn reseed_rand(&mut self, n: u64) {
        self.rand_state = crate::exec::int::splitmix64(self.rand_state ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    }

    /// The XOR of the 16 general registers: a change in any one register changes it. Record
    /// and replay take it at every system call (`guest_kernel::record`), so it is written
    /// for the fewest host instructions: eight aligned 16-byte loads folded into `pxor`s
    /// (11 instructions, against about 20 for the same fold in plain Rust, which the
    /// compiler vectorises with unaligned loads; a scalar fold of 8-byte loads measured no
    /// faster).
    #[inline(always)]
    pub fn gpr_xor(&self) -> u64 {
        use std::arch::x86_64::{_mm_cvtsi128_si64, _mm_load_si128, _mm_unpackhi_epi64, _mm_xor_si128};
        const _: () = assert!(std::mem::offset_of!(Cpu, gpr) == 0 && std::mem::align_of::<Cpu>() >= 16);
        let p = self.gpr.as_ptr().cast::<std::arch::x86_64::__m128i>();
        // SAFETY: `gpr` is 128 bytes at offset 0 of a 16-byte aligned struct (asserted
        // above), so the eight 16-byte loads are in bounds and aligned; SSE2 is part of the
        // x86-64 baseline.
        unsafe {
            let a = _mm_xor_si128(_mm_load_si128(p), _mm_load_si128(p.add(1)));
            let b = _mm_xor_si128(_mm_load_si128(p.add(2)), _mm_load_si128(p.add(3)));
            let c = _mm_xor_si128(_mm_load_si128(p.add(4)), _mm_load_si128(p.add(5)));
            let d = _mm_xor_si128(_mm_load_si128(p.add(6)), _mm_load_si128(p.add(7)));
            let x = _mm_xor_si128(_mm_xor_si128(a, b), _mm_xor_si128(c, d));
            _mm_cvtsi128_si64(_mm_xor_si128(x, _mm_unpackhi_epi64(x, x))) as u64
        }
    }

    /// Sets RFLAGS as `popf` would: only user-writable bits change.
    pub fn set_rflags(&mut self, v: u64) {
        self.rflags = (v & flags::USER_WRITABLE) | flags::FIXED;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpr_xor_is_the_xor_of_every_register() {
        let mut cpu = Cpu::new();
        assert_eq!(cpu.gpr_xor(), 0);
        for i in 0..16 {
            cpu.gpr[i] = 0x0123_4567_89ab_cdefu64.rotate_left(5 * i as u32) ^ (i as u64);
        }
        let want = cpu.gpr.iter().fold(0, |a, r| a ^ r);
        assert_eq!(cpu.gpr_xor(), want);
        // Each register, and each of its bits, moves the fold.
        for i in 0..16 {
            for bit in [0, 31, 63] {
                let mut c = cpu.clone();
                c.gpr[i] ^= 1 << bit;
                assert_eq!(c.gpr_xor(), want ^ (1 << bit), "register {i} bit {bit}");
            }
        }
    }
}
