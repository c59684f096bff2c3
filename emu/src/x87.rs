//! x87 floating-point unit state (instructions live in `exec::x87`).

/// x87 state as FXSAVE lays it out, registers kept in physical order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct X87State {
    /// Control word (reset value 0x037f: all exceptions masked, 64-bit precision).
    pub fcw: u16,
    /// Status word, TOP included in bits 11..=13.
    pub fsw: u16,
    /// Abridged tag word: bit i set = physical register i is valid.
    pub ftw: u8,
    /// Physical registers R0..R7, each an 80-bit value in the low bits.
    pub regs: [u128; 8],
    /// Last instruction opcode, instruction and data pointers (for FXSAVE).
    pub fop: u16,
    pub fip: u64,
    pub fdp: u64,
}

impl Default for X87State {
    fn default() -> Self {
        X87State {
            fcw: 0x037f,
            fsw: 0,
            ftw: 0,
            regs: [0; 8],
            fop: 0,
            fip: 0,
            fdp: 0,
        }
    }
}
