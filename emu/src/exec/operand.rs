//! Operand access shared by the instruction families: register decoding,
//! effective addresses, and sized reads and writes of `Instruction` operands.

use iced_x86::{Instruction, OpKind, Register};

use super::Trap;
use crate::cpu::Cpu;
use crate::memory::Memory;

/// Mask of the low `size` bytes.
#[inline(always)]
pub(crate) fn mask(size: u8) -> u64 {
    u64::MAX >> (64 - 8 * size as u32)
}

/// The sign bit of a `size`-byte value.
#[inline(always)]
pub(crate) fn sign_bit(size: u8) -> u64 {
    1 << (8 * size as u32 - 1)
}

/// Sign-extends the low `size` bytes of `v`.
#[inline(always)]
pub(crate) fn sext(v: u64, size: u8) -> u64 {
    let sh = 64 - 8 * size as u32;
    (((v << sh) as i64) >> sh) as u64
}

/// A general-purpose register operand: index, size in bytes, and whether it
/// is one of AH/CH/DH/BH.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Gpr {
    pub idx: usize,
    pub size: u8,
    pub high: bool,
}

/// Decodes a general-purpose register; `None` for any other register.
#[inline]
pub(crate) fn gpr(r: Register) -> Option<Gpr> {
    let v = r as usize;
    let al = Register::AL as usize;
    let ax = Register::AX as usize;
    let eax = Register::EAX as usize;
    let rax = Register::RAX as usize;
    Some(match v {
        _ if (al..al + 20).contains(&v) => {
            let n = v - al;
            match n {
                0..=3 => Gpr { idx: n, size: 1, high: false },
                4..=7 => Gpr { idx: n - 4, size: 1, high: true },
                _ => Gpr { idx: n - 4, size: 1, high: false },
            }
        }
        _ if (ax..ax + 16).contains(&v) => Gpr { idx: v - ax, size: 2, high: false },
        _ if (eax..eax + 16).contains(&v) => Gpr { idx: v - eax, size: 4, high: false },
        _ if (rax..rax + 16).contains(&v) => Gpr { idx: v - rax, size: 8, high: false },
        _ => return None,
    })
}

#[inline(always)]
pub(crate) fn get_gpr(cpu: &Cpu, g: Gpr) -> u64 {
    let v = cpu.gpr[g.idx];
    match (g.size, g.high) {
        (1, true) => (v >> 8) & 0xff,
        (8, _) => v,
        (s, _) => v & mask(s),
    }
}

/// Writes a register with x86-64 semantics: 32-bit writes zero-extend,
/// 8- and 16-bit writes merge.
#[inline(always)]
pub(crate) fn set_gpr(cpu: &mut Cpu, g: Gpr, v: u64) {
    let r = &mut cpu.gpr[g.idx];
    *r = match (g.size, g.high) {
        (1, true) => (*r & !0xff00) | ((v & 0xff) << 8),
        (1, false) => (*r & !0xff) | (v & 0xff),
        (2, _) => (*r & !0xffff) | (v & 0xffff),
        (4, _) => v & 0xffff_ffff,
        _ => v,
    };
}

/// Reads a 64-bit register used in address computation.
#[inline(always)]
fn addr_reg(cpu: &Cpu, r: Register) -> u64 {
    match gpr(r) {
        Some(g) => get_gpr(cpu, g),
        None => 0,
    }
}

/// The effective (linear) address of the instruction's memory operand,
/// including an FS/GS segment base.
#[inline]
pub(crate) fn ea(cpu: &Cpu, i: &Instruction) -> u64 {
    let mut a = ea_offset(cpu, i);
    match i.memory_segment() {
        Register::FS => a = a.wrapping_add(cpu.fs_base),
        Register::GS => a = a.wrapping_add(cpu.gs_base),
        _ => {}
    }
    a
}

/// The offset part of the memory operand (no segment base), as `lea` computes it.
#[inline]
pub(crate) fn ea_offset(cpu: &Cpu, i: &Instruction) -> u64 {
    let base = i.memory_base();
    let index = i.memory_index();
    let mut a = i.memory_displacement64();
    let mut addr32 = false;
    match base {
        Register::None | Register::RIP => {}
        Register::EIP => addr32 = true,
        b => {
            addr32 |= b.is_gpr32();
            a = a.wrapping_add(addr_reg(cpu, b));
        }
    }
    if index != Register::None {
        addr32 |= index.is_gpr32();
        a = a.wrapping_add(addr_reg(cpu, index).wrapping_mul(i.memory_index_scale() as u64));
    }
    if addr32 {
        a &= 0xffff_ffff;
    }
    a
}

/// Where an operand lives, resolved once so read-modify-write instructions
/// compute their address a single time.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Loc {
    Reg(Gpr),
    Mem(u64),
    Imm(u64),
}

/// Resolves operand `n`.
#[inline]
pub(crate) fn loc(cpu: &Cpu, i: &Instruction, n: u32) -> Result<Loc, Trap> {
    Ok(match i.op_kind(n) {
        OpKind::Register => Loc::Reg(gpr(i.op_register(n)).ok_or(Trap::InvalidOpcode)?),
        OpKind::Memory => Loc::Mem(ea(cpu, i)),
        OpKind::Immediate8
        | OpKind::Immediate16
        | OpKind::Immediate32
        | OpKind::Immediate64
        | OpKind::Immediate8to16
        | OpKind::Immediate8to32
        | OpKind::Immediate8to64
        | OpKind::Immediate32to64 => Loc::Imm(i.immediate(n)),
        _ => return Err(Trap::InvalidOpcode),
    })
}

#[inline]
pub(crate) fn get(cpu: &Cpu, mem: &mut Memory, l: Loc, size: u8) -> Result<u64, Trap> {
    match l {
        Loc::Reg(g) => Ok(get_gpr(cpu, g)),
        Loc::Mem(a) => mem.read_sized(a, size),
        Loc::Imm(v) => Ok(v & mask(size)),
    }
}

/// Reads the destination of a read-modify-write instruction. Hardware
/// accesses such an operand as a write from the start, so a fault on the read
/// is reported as a write fault at the first byte that is not writable (cold
/// path only: the hot path is a plain read).
#[inline]
pub(crate) fn get_rmw(cpu: &Cpu, mem: &mut Memory, l: Loc, size: u8) -> Result<u64, Trap> {
    match get(cpu, mem, l, size) {
        Err(Trap::PageFault) => {
            if let Loc::Mem(a) = l {
                mem.probe_write(a, size as u64)?;
            }
            Err(Trap::PageFault)
        }
        r => r,
    }
}

#[inline]
pub(crate) fn set(cpu: &mut Cpu, mem: &mut Memory, l: Loc, size: u8, v: u64) -> Result<(), Trap> {
    match l {
        Loc::Reg(g) => {
            set_gpr(cpu, Gpr { size, ..g }, v);
            Ok(())
        }
        Loc::Mem(a) => mem.write_sized(a, size, v),
        Loc::Imm(_) => Err(Trap::InvalidOpcode),
    }
}

/// Size in bytes of operand `n` (register or memory); 8 for anything else.
#[inline]
pub(crate) fn op_size(i: &Instruction, n: u32) -> u8 {
    match i.op_kind(n) {
        OpKind::Register => i.op_register(n).size() as u8,
        OpKind::Memory => i.memory_size().size() as u8,
        OpKind::Immediate8 => 1,
        OpKind::Immediate16 | OpKind::Immediate8to16 => 2,
        OpKind::Immediate32 | OpKind::Immediate8to32 => 4,
        _ => 8,
    }
}

/// Reads operand `n` zero-extended.
#[inline]
pub(crate) fn read(cpu: &Cpu, mem: &mut Memory, i: &Instruction, n: u32, size: u8) -> Result<u64, Trap> {
    let l = loc(cpu, i, n)?;
    get(cpu, mem, l, size)
}

/// Writes operand `n`.
#[inline]
pub(crate) fn write(cpu: &mut Cpu, mem: &mut Memory, i: &Instruction, n: u32, size: u8, v: u64) -> Result<(), Trap> {
    let l = loc(cpu, i, n)?;
    set(cpu, mem, l, size, v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_decoding() {
        assert_eq!(gpr(Register::AH), Some(Gpr { idx: 0, size: 1, high: true }));
        assert_eq!(gpr(Register::BH), Some(Gpr { idx: 3, size: 1, high: true }));
        assert_eq!(gpr(Register::SPL), Some(Gpr { idx: 4, size: 1, high: false }));
        assert_eq!(gpr(Register::R15L), Some(Gpr { idx: 15, size: 1, high: false }));
        assert_eq!(gpr(Register::R9W), Some(Gpr { idx: 9, size: 2, high: false }));
        assert_eq!(gpr(Register::EDI), Some(Gpr { idx: 7, size: 4, high: false }));
        assert_eq!(gpr(Register::R15), Some(Gpr { idx: 15, size: 8, high: false }));
        assert_eq!(gpr(Register::XMM0), None);
    }

    #[test]
    fn partial_register_writes() {
        let mut cpu = Cpu::new();
        cpu.gpr[0] = u64::MAX;
        set_gpr(&mut cpu, gpr(Register::AH).unwrap(), 0x12);
        assert_eq!(cpu.gpr[0], 0xffff_ffff_ffff_12ff);
        set_gpr(&mut cpu, gpr(Register::EAX).unwrap(), 0x8000_0001);
        assert_eq!(cpu.gpr[0], 0x8000_0001);
        assert_eq!(sext(0x80, 1), u64::MAX << 7);
    }
}
