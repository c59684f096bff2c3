//! x87 floating-point unit state (instructions live in `exec::x87`).
//!
//! The state is kept the way FXSAVE lays it out: registers in physical order
//! (R0..R7; `ST(i)` is `R[(TOP + i) mod 8]`), TOP inside the status word and
//! an abridged tag word (one "valid" bit per physical register). The full
//! two-bit tag word that FNSTENV/FNSAVE store is derived from the register
//! contents, as hardware does. The MMX registers MM0..MM7 are the significands
//! of the physical registers R0..R7.

/// Status word bits.
pub mod fsw {
    /// Invalid operation.
    pub const IE: u16 = 1 << 0;
    /// Denormal operand.
    pub const DE: u16 = 1 << 1;
    /// Zero divide.
    pub const ZE: u16 = 1 << 2;
    /// Overflow.
    pub const OE: u16 = 1 << 3;
    /// Underflow.
    pub const UE: u16 = 1 << 4;
    /// Precision (inexact).
    pub const PE: u16 = 1 << 5;
    /// Stack fault (with IE; C1 tells overflow from underflow).
    pub const SF: u16 = 1 << 6;
    /// Error summary: an unmasked exception is pending.
    pub const ES: u16 = 1 << 7;
    pub const C0: u16 = 1 << 8;
    pub const C1: u16 = 1 << 9;
    pub const C2: u16 = 1 << 10;
    /// TOP, the physical index of `ST(0)`.
    pub const TOP: u16 = 7 << 11;
    pub const C3: u16 = 1 << 14;
    /// Busy (mirrors ES).
    pub const B: u16 = 1 << 15;
    /// The six exception flags.
    pub const EXCEPTIONS: u16 = 0x3f;
    /// The condition codes.
    pub const CC: u16 = C0 | C1 | C2 | C3;
}

/// x87 state as FXSAVE lays it out, registers kept in physical order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct X87State {
    /// Control word (reset value 0x037f: all exceptions masked, 64-bit
    /// precision, round to nearest).
    pub fcw: u16,
    /// Status word, TOP included in bits 11..=13 (see [`fsw`]).
    pub fsw: u16,
    /// Abridged tag word: bit i set = physical register i is valid.
    pub ftw: u8,
    /// Physical registers R0..R7, each an 80-bit value in the low bits.
    pub regs: [u128; 8],
    /// Last instruction opcode (always 0 here, as on recent Intel cores with
    /// FOP compatibility mode off).
    pub fop: u16,
    /// Address of the last non-control x87 instruction.
    pub fip: u64,
    /// Address of the last non-control x87 instruction's memory operand.
    pub fdp: u64,
}

impl Default for X87State {
    /// The FNINIT state.
    fn default() -> Self {
        X87State { fcw: 0x037f, fsw: 0, ftw: 0, regs: [0; 8], fop: 0, fip: 0, fdp: 0 }
    }
}

impl X87State {
    /// TOP: the physical register holding `ST(0)`.
    #[inline]
    pub fn top(&self) -> usize {
        ((self.fsw >> 11) & 7) as usize
    }

    #[inline]
    pub fn set_top(&mut self, top: usize) {
        self.fsw = (self.fsw & !fsw::TOP) | ((top as u16 & 7) << 11);
    }

    /// The physical register index of `ST(i)`.
    #[inline]
    pub fn phys(&self, i: usize) -> usize {
        (self.top() + i) & 7
    }

    /// The 80-bit value of `ST(i)` (whatever the register holds, even if empty).
    #[inline]
    pub fn st(&self, i: usize) -> u128 {
        self.regs[self.phys(i)]
    }

    /// Whether `ST(i)` is empty.
    #[inline]
    pub fn is_empty(&self, i: usize) -> bool {
        self.ftw & (1 << self.phys(i)) == 0
    }

    /// Writes `ST(i)` and tags it valid.
    #[inline]
    pub fn set_st(&mut self, i: usize, v: u128) {
        let p = self.phys(i);
        self.regs[p] = v & ((1 << 80) - 1);
        self.ftw |= 1 << p;
    }

    /// Pushes a value (no overflow check).
    #[inline]
    pub fn push(&mut self, v: u128) {
        let top = (self.top() + 7) & 7;
        self.set_top(top);
        self.set_st(0, v);
    }

    /// Pops: tags `ST(0)` empty and increments TOP.
    #[inline]
    pub fn pop(&mut self) {
        let p = self.top();
        self.ftw &= !(1 << p);
        self.set_top(p + 1);
    }

    /// The full tag word (two bits per physical register: 00 valid, 01 zero,
    /// 10 special, 11 empty), as FNSTENV and FNSAVE store it.
    pub fn tag_word(&self) -> u16 {
        let mut w = 0u16;
        for p in 0..8 {
            let v = self.regs[p];
            let e = (v >> 64) as u16 & 0x7fff;
            let s = v as u64;
            let t = if self.ftw & (1 << p) == 0 {
                3
            } else if e == 0 && s == 0 {
                1
            } else if e == 0 || e == 0x7fff || s >> 63 == 0 {
                2
            } else {
                0
            };
            w |= t << (2 * p);
        }
        w
    }

    /// MMX register `i`: the significand of physical register `i`.
    #[inline]
    pub fn mm(&self, i: usize) -> u64 {
        self.regs[i & 7] as u64
    }

    /// Writes MMX register `i`, setting the sign and exponent of its x87 register to all
    /// ones, as hardware does.
    #[inline]
    pub fn set_mm(&mut self, i: usize, v: u64) {
        self.regs[i & 7] = 0xffff << 64 | v as u128;
    }

    /// The x87-to-MMX transition of every MMX instruction but `emms`: TOP = 0 and every
    /// register tagged valid.
    #[inline]
    pub fn enter_mmx(&mut self) {
        self.set_top(0);
        self.ftw = 0xff;
    }

    /// Sets the abridged tags from a full tag word (11 = empty, else valid).
    pub fn set_tag_word(&mut self, w: u16) {
        self.ftw = (0..8).filter(|p| (w >> (2 * p)) & 3 != 3).fold(0, |a, p| a | 1 << p);
    }

    /// Recomputes ES and B from the exception flags and masks.
    pub fn update_summary(&mut self) {
        if self.fsw & !self.fcw & fsw::EXCEPTIONS != 0 {
            self.fsw |= fsw::ES | fsw::B;
        } else {
            self.fsw &= !(fsw::ES | fsw::B);
        }
    }
}
