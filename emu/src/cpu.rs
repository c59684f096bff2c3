//! The architectural state of one guest hardware thread.
//!
//! Plain public fields: tools and the kernel read and write registers
//! directly, the way a debugger would. Flags are kept eagerly in `rflags`
//! (the interpreter skips computing flags that are provably dead instead of
//! computing them lazily), so reading `rflags` is always exact.

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

/// One guest hardware thread.
#[derive(Clone, Debug)]
pub struct Cpu {
    /// RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8..R15 (see [`reg`]).
    pub gpr: [u64; 16],
    pub rip: u64,
    pub rflags: u64,
    pub fs_base: u64,
    pub gs_base: u64,
    pub xmm: [u128; 16],
    pub mxcsr: u32,
    pub x87: X87State,
    /// Guest instructions retired so far (a `rep` string instruction counts once).
    pub icount: u64,
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
            mxcsr: MXCSR_DEFAULT,
            x87: X87State::default(),
            icount: 0,
        }
    }

    /// Sets RFLAGS as `popf` would: only user-writable bits change.
    pub fn set_rflags(&mut self, v: u64) {
        self.rflags = (v & flags::USER_WRITABLE) | flags::FIXED;
    }
}
