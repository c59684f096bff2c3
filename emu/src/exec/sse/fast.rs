//! Specialised handlers for the SSE forms compiled code runs most: full
//! 16-byte moves, `movd`/`movq`, the bitwise and add/subtract integer ops and
//! the shifts by an immediate.
//!
//! The generic handlers in `sse` read registers, operand kinds and the
//! mnemonic from the decoded `Instruction` every time they run; here they are
//! fixed at decode time (xmm numbers in `Op::r0`/`r1`, the addressing mode in
//! `Op::mem`, the operation as a const generic). The lane arithmetic uses the
//! host's SSE2 intrinsics, which every x86-64 host has, on the same values the
//! generic path computes with plain Rust. Anything not matched falls back to
//! the generic handlers, and the differential tests run both tiers.

use core::arch::x86_64::*;

use iced_x86::{EncodingKind, Instruction, Mnemonic, OpKind, Register};

use super::super::fast::{ea, mem_ref, wide_reg};
use super::super::operand::mask;
use super::super::{run_generic, Handler, Op, Trap};
use crate::cpu::Cpu;
use crate::memory::Memory;

type R = Result<(), Trap>;

#[inline(always)]
fn v(x: u128) -> __m128i {
    // SAFETY: u128 and __m128i are both 16 bytes of plain data; every bit
    // pattern is valid for either.
    unsafe { std::mem::transmute::<u128, __m128i>(x) }
}

#[inline(always)]
fn u(x: __m128i) -> u128 {
    // SAFETY: as in `v`.
    unsafe { std::mem::transmute::<__m128i, u128>(x) }
}

#[inline(always)]
fn xmm(r: u8) -> usize {
    (r & 15) as usize
}

/// A 16-byte memory operand: #GP unless aligned, for the instructions that require it.
#[inline(always)]
fn load16<const ALIGN: bool>(cpu: &Cpu, mem: &mut Memory, op: &Op) -> Result<u128, Trap> {
    let a = ea(cpu, &op.mem);
    if ALIGN && a & 15 != 0 {
        return Err(Trap::GeneralProtection);
    }
    mem.read_u128(a)
}

fn mov_rr(cpu: &mut Cpu, _: &mut Memory, op: &Op) -> R {
    cpu.xmm[xmm(op.r0)] = cpu.xmm[xmm(op.r1)];
    Ok(())
}

fn mov_load<const ALIGN: bool>(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    cpu.xmm[xmm(op.r0)] = load16::<ALIGN>(cpu, mem, op)?;
    Ok(())
}

fn mov_store<const ALIGN: bool>(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let a = ea(cpu, &op.mem);
    if ALIGN && a & 15 != 0 {
        return Err(Trap::GeneralProtection);
    }
    mem.write_u128(a, cpu.xmm[xmm(op.r1)])
}

/// `movd`/`movq xmm, r32/r64`: zero-extends into the whole register.
fn movq_from_gpr<const S: u8>(cpu: &mut Cpu, _: &mut Memory, op: &Op) -> R {
    cpu.xmm[xmm(op.r0)] = (cpu.gpr[(op.r1 & 15) as usize] & mask(S)) as u128;
    Ok(())
}

/// `movd`/`movq r32/r64, xmm` (a 32-bit destination zero-extends, as for any GPR write).
fn movq_to_gpr<const S: u8>(cpu: &mut Cpu, _: &mut Memory, op: &Op) -> R {
    cpu.gpr[(op.r0 & 15) as usize] = cpu.xmm[xmm(op.r1)] as u64 & mask(S);
    Ok(())
}

/// `movq xmm, xmm`: the low quadword, upper one zeroed.
fn movq_rr(cpu: &mut Cpu, _: &mut Memory, op: &Op) -> R {
    cpu.xmm[xmm(op.r0)] = cpu.xmm[xmm(op.r1)] as u64 as u128;
    Ok(())
}

fn movq_load<const S: u8>(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let a = ea(cpu, &op.mem);
    let x = if S == 4 { mem.read_u32(a)? as u64 } else { mem.read_u64(a)? };
    cpu.xmm[xmm(op.r0)] = x as u128;
    Ok(())
}

fn movq_store<const S: u8>(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let a = ea(cpu, &op.mem);
    let x = cpu.xmm[xmm(op.r1)] as u64;
    if S == 4 {
        mem.write_u32(a, x as u32)
    } else {
        mem.write_u64(a, x)
    }
}

const AND: u8 = 0;
const ANDN: u8 = 1;
const OR: u8 = 2;
const XOR: u8 = 3;
const ADDB: u8 = 4;
const ADDW: u8 = 5;
const ADDD: u8 = 6;
const ADDQ: u8 = 7;
const SUBB: u8 = 8;
const SUBW: u8 = 9;
const SUBD: u8 = 10;
const SUBQ: u8 = 11;
const CMPEQB: u8 = 12;
const CMPEQW: u8 = 13;
const CMPEQD: u8 = 14;

/// `op xmm, xmm/m128` for the lane-wise integer and bitwise operations.
fn int_op<const K: u8, const MEM: bool>(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let b = if MEM { load16::<true>(cpu, mem, op)? } else { cpu.xmm[xmm(op.r1)] };
    let d = xmm(op.r0);
    let a = cpu.xmm[d];
    let (x, y) = (v(a), v(b));
    // SAFETY: the intrinsics need SSE2, part of the x86-64 baseline every host has.
    cpu.xmm[d] = unsafe {
        match K {
            AND => a & b,
            ANDN => !a & b,
            OR => a | b,
            XOR => a ^ b,
            ADDB => u(_mm_add_epi8(x, y)),
            ADDW => u(_mm_add_epi16(x, y)),
            ADDD => u(_mm_add_epi32(x, y)),
            ADDQ => u(_mm_add_epi64(x, y)),
            SUBB => u(_mm_sub_epi8(x, y)),
            SUBW => u(_mm_sub_epi16(x, y)),
            SUBD => u(_mm_sub_epi32(x, y)),
            SUBQ => u(_mm_sub_epi64(x, y)),
            CMPEQB => u(_mm_cmpeq_epi8(x, y)),
            CMPEQW => u(_mm_cmpeq_epi16(x, y)),
            _ => u(_mm_cmpeq_epi32(x, y)),
        }
    };
    Ok(())
}

pub(crate) const SLLW: u8 = 0;
pub(crate) const SLLD: u8 = 1;
pub(crate) const SLLQ: u8 = 2;
pub(crate) const SRLW: u8 = 3;
pub(crate) const SRLD: u8 = 4;
pub(crate) const SRLQ: u8 = 5;
pub(crate) const SRAW: u8 = 6;
pub(crate) const SRAD: u8 = 7;
pub(crate) const SLLDQ: u8 = 8;
pub(crate) const SRLDQ: u8 = 9;

/// One 128-bit lane shifted by `n` (the immediate). The host's count-in-register forms
/// treat an out-of-range count as the immediate forms do (zero, or sign fill).
#[inline(always)]
pub(crate) fn shift_lane<const K: u8>(x: u128, n: u64) -> u128 {
    let (y, c) = (v(x), v(n as u128));
    // SAFETY: as in `int_op`.
    unsafe {
        match K {
            SLLW => u(_mm_sll_epi16(y, c)),
            SLLD => u(_mm_sll_epi32(y, c)),
            SLLQ => u(_mm_sll_epi64(y, c)),
            SRLW => u(_mm_srl_epi16(y, c)),
            SRLD => u(_mm_srl_epi32(y, c)),
            SRLQ => u(_mm_srl_epi64(y, c)),
            SRAW => u(_mm_sra_epi16(y, c)),
            SRAD => u(_mm_sra_epi32(y, c)),
            SLLDQ if n < 16 => x << (8 * n),
            SRLDQ if n < 16 => x >> (8 * n),
            _ => 0,
        }
    }
}

/// Shifts by the immediate in `Op::a`.
fn shift_imm<const K: u8>(cpu: &mut Cpu, _: &mut Memory, op: &Op) -> R {
    let d = xmm(op.r0);
    cpu.xmm[d] = shift_lane::<K>(cpu.xmm[d], op.a);
    Ok(())
}

// ---- scalar floating point ------------------------------------------------------

/// MXCSR's precision (inexact) flag, and its control bits at their defaults
/// (every exception masked, round to nearest, no FTZ/DAZ).
pub(crate) const PE: u32 = 1 << 5;
pub(crate) const DEFAULT_CONTROL: u32 = 0x1f80;

pub(crate) const FADD: u8 = 0;
pub(crate) const FSUB: u8 = 1;
pub(crate) const FMUL: u8 = 2;
pub(crate) const FDIV: u8 = 3;

/// Rust's `f64`/`f32` arithmetic is the host's SSE arithmetic under its
/// default MXCSR, so when the guest's MXCSR has the same control bits, the
/// result is bit-identical. The only flag left to account for is then PE,
/// and only when it is not already set (it is sticky, so after a program's
/// first inexact operation it stays set): otherwise, and for any operand or
/// result that could raise another flag (NaN, infinity, denormal, overflow,
/// underflow, division by zero), `None` sends the instruction to the host
/// path, which computes the flags exactly.
macro_rules! scalar_fn {
    ($name:ident, $t:ty) => {
        #[inline(always)]
        pub(crate) fn $name<const K: u8>(mxcsr: u32, a: $t, b: $t) -> Option<$t> {
            if mxcsr & !0x3f != DEFAULT_CONTROL || mxcsr & PE == 0 {
                return None;
            }
            let r = match K {
                FADD => a + b,
                FSUB => a - b,
                FMUL => a * b,
                _ => a / b,
            };
            // Zero or normal: finite, and raising no flag by itself.
            let plain = |x: $t| x.is_normal() || x == 0.0;
            let underflow_to_zero = K >= FMUL && r == 0.0 && a != 0.0 && (K == FDIV || b != 0.0);
            let divide_by_zero = K == FDIV && b == 0.0;
            (plain(a) && plain(b) && plain(r) && !underflow_to_zero && !divide_by_zero).then_some(r)
        }
    };
}
scalar_fn!(scalar64, f64);
scalar_fn!(scalar32, f32);

/// `addsd`/`subsd`/`mulsd`/`divsd` (`D`) and the `ss` forms on the fast path
/// of `scalar64`/`scalar32`; anything else reruns through the generic (host)
/// handler.
fn fp_scalar<const K: u8, const D: bool, const MEM: bool>(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let d = xmm(op.r0);
    let b = if MEM {
        let a = ea(cpu, &op.mem);
        if D {
            mem.read_u64(a)?
        } else {
            mem.read_u32(a)? as u64
        }
    } else {
        cpu.xmm[xmm(op.r1)] as u64
    };
    let x = cpu.xmm[d];
    let r = if D {
        scalar64::<K>(cpu.mxcsr, f64::from_bits(x as u64), f64::from_bits(b)).map(f64::to_bits)
    } else {
        scalar32::<K>(cpu.mxcsr, f32::from_bits(x as u32), f32::from_bits(b as u32)).map(|r| r.to_bits() as u64)
    };
    let Some(r) = r else { return run_generic(cpu, mem, op) };
    let low = if D { u64::MAX as u128 } else { u32::MAX as u128 };
    cpu.xmm[d] = (x & !low) | r as u128;
    Ok(())
}

fn xmm_reg(r: Register) -> Option<u8> {
    r.is_xmm().then(|| (r as u8).wrapping_sub(Register::XMM0 as u8) & 15)
}

/// The specialised handler for `i`, filling in `op`; `None` leaves it to the
/// generic SSE handlers.
pub(crate) fn specialize(i: &Instruction, op: &mut Op) -> Option<Handler> {
    use Mnemonic as M;
    if i.encoding() != EncodingKind::Legacy || i.has_lock_prefix() || i.op_count() != 2 {
        return None;
    }
    let (k0, k1) = (i.op0_kind(), i.op1_kind());
    let m = i.mnemonic();
    macro_rules! reg_or_mem {
        ($f:ident, $($p:tt)*) => {
            match k1 {
                OpKind::Register => {
                    op.r1 = xmm_reg(i.op1_register())?;
                    $f::<$($p)*, false> as Handler
                }
                OpKind::Memory => {
                    op.mem = mem_ref(i, true)?;
                    $f::<$($p)*, true> as Handler
                }
                _ => return None,
            }
        };
    }
    let kind = match m {
        M::Pand | M::Andps | M::Andpd => Some(AND),
        M::Pandn | M::Andnps | M::Andnpd => Some(ANDN),
        M::Por | M::Orps | M::Orpd => Some(OR),
        M::Pxor | M::Xorps | M::Xorpd => Some(XOR),
        M::Paddb => Some(ADDB),
        M::Paddw => Some(ADDW),
        M::Paddd => Some(ADDD),
        M::Paddq => Some(ADDQ),
        M::Psubb => Some(SUBB),
        M::Psubw => Some(SUBW),
        M::Psubd => Some(SUBD),
        M::Psubq => Some(SUBQ),
        M::Pcmpeqb => Some(CMPEQB),
        M::Pcmpeqw => Some(CMPEQW),
        M::Pcmpeqd => Some(CMPEQD),
        _ => None,
    };
    if let Some(kind) = kind {
        if k0 != OpKind::Register {
            return None;
        }
        op.r0 = xmm_reg(i.op0_register())?;
        return Some(match kind {
            AND => reg_or_mem!(int_op, AND),
            ANDN => reg_or_mem!(int_op, ANDN),
            OR => reg_or_mem!(int_op, OR),
            XOR => reg_or_mem!(int_op, XOR),
            ADDB => reg_or_mem!(int_op, ADDB),
            ADDW => reg_or_mem!(int_op, ADDW),
            ADDD => reg_or_mem!(int_op, ADDD),
            ADDQ => reg_or_mem!(int_op, ADDQ),
            SUBB => reg_or_mem!(int_op, SUBB),
            SUBW => reg_or_mem!(int_op, SUBW),
            SUBD => reg_or_mem!(int_op, SUBD),
            SUBQ => reg_or_mem!(int_op, SUBQ),
            CMPEQB => reg_or_mem!(int_op, CMPEQB),
            CMPEQW => reg_or_mem!(int_op, CMPEQW),
            _ => reg_or_mem!(int_op, CMPEQD),
        });
    }
    let shift = match m {
        M::Psllw => Some(shift_imm::<SLLW> as Handler),
        M::Pslld => Some(shift_imm::<SLLD> as Handler),
        M::Psllq => Some(shift_imm::<SLLQ> as Handler),
        M::Psrlw => Some(shift_imm::<SRLW> as Handler),
        M::Psrld => Some(shift_imm::<SRLD> as Handler),
        M::Psrlq => Some(shift_imm::<SRLQ> as Handler),
        M::Psraw => Some(shift_imm::<SRAW> as Handler),
        M::Psrad => Some(shift_imm::<SRAD> as Handler),
        M::Pslldq => Some(shift_imm::<SLLDQ> as Handler),
        M::Psrldq => Some(shift_imm::<SRLDQ> as Handler),
        _ => None,
    };
    if let Some(h) = shift {
        if k0 != OpKind::Register || k1 != OpKind::Immediate8 {
            return None;
        }
        op.r0 = xmm_reg(i.op0_register())?;
        op.a = i.immediate8() as u64;
        return Some(h);
    }
    let fp = match m {
        M::Addsd | M::Addss => Some(FADD),
        M::Subsd | M::Subss => Some(FSUB),
        M::Mulsd | M::Mulss => Some(FMUL),
        M::Divsd | M::Divss => Some(FDIV),
        _ => None,
    };
    if let Some(kind) = fp {
        if k0 != OpKind::Register {
            return None;
        }
        op.r0 = xmm_reg(i.op0_register())?;
        let double = matches!(m, M::Addsd | M::Subsd | M::Mulsd | M::Divsd);
        macro_rules! fp_forms {
            ($k:expr) => {
                match double {
                    true => reg_or_mem!(fp_scalar, $k, true),
                    false => reg_or_mem!(fp_scalar, $k, false),
                }
            };
        }
        return Some(match kind {
            FADD => fp_forms!(FADD),
            FSUB => fp_forms!(FSUB),
            FMUL => fp_forms!(FMUL),
            _ => fp_forms!(FDIV),
        });
    }
    match m {
        M::Movaps | M::Movapd | M::Movdqa | M::Movups | M::Movupd | M::Movdqu => {
            let aligned = matches!(m, M::Movaps | M::Movapd | M::Movdqa);
            match (k0, k1) {
                (OpKind::Register, OpKind::Register) => {
                    op.r0 = xmm_reg(i.op0_register())?;
                    op.r1 = xmm_reg(i.op1_register())?;
                    Some(mov_rr)
                }
                (OpKind::Register, OpKind::Memory) => {
                    op.r0 = xmm_reg(i.op0_register())?;
                    op.mem = mem_ref(i, true)?;
                    Some(if aligned { mov_load::<true> } else { mov_load::<false> })
                }
                (OpKind::Memory, OpKind::Register) => {
                    op.r1 = xmm_reg(i.op1_register())?;
                    op.mem = mem_ref(i, true)?;
                    Some(if aligned { mov_store::<true> } else { mov_store::<false> })
                }
                _ => None,
            }
        }
        M::Movd | M::Movq => match (k0, k1) {
            (OpKind::Register, OpKind::Register) => {
                let (r0, r1) = (i.op0_register(), i.op1_register());
                match (xmm_reg(r0), xmm_reg(r1)) {
                    (Some(x0), Some(x1)) => {
                        op.r0 = x0;
                        op.r1 = x1;
                        Some(movq_rr as Handler)
                    }
                    (Some(x0), None) => {
                        let (g, s) = wide_reg(r1)?;
                        op.r0 = x0;
                        op.r1 = g;
                        Some(if s == 4 { movq_from_gpr::<4> } else { movq_from_gpr::<8> })
                    }
                    (None, Some(x1)) => {
                        let (g, s) = wide_reg(r0)?;
                        op.r0 = g;
                        op.r1 = x1;
                        Some(if s == 4 { movq_to_gpr::<4> } else { movq_to_gpr::<8> })
                    }
                    (None, None) => None,
                }
            }
            (OpKind::Register, OpKind::Memory) => {
                op.r0 = xmm_reg(i.op0_register())?;
                op.mem = mem_ref(i, true)?;
                match i.memory_size().size() {
                    4 => Some(movq_load::<4> as Handler),
                    8 => Some(movq_load::<8> as Handler),
                    _ => None,
                }
            }
            (OpKind::Memory, OpKind::Register) => {
                op.r1 = xmm_reg(i.op1_register())?;
                op.mem = mem_ref(i, true)?;
                match i.memory_size().size() {
                    4 => Some(movq_store::<4> as Handler),
                    8 => Some(movq_store::<8> as Handler),
                    _ => None,
                }
            }
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalar_fast_path_conditions() {
        let m = DEFAULT_CONTROL | PE;
        assert_eq!(scalar64::<FDIV>(m, 1.0, 3.0), Some(1.0 / 3.0));
        assert_eq!(scalar64::<FADD>(m, 0.0, 3.0), Some(3.0));
        // PE not yet set: the host path must set it.
        assert_eq!(scalar64::<FDIV>(DEFAULT_CONTROL, 1.0, 3.0), None);
        // Other flags possible, or other control bits.
        assert_eq!(scalar64::<FDIV>(m, 1.0, 0.0), None);
        assert_eq!(scalar64::<FMUL>(m, 1e-200, 1e-200), None);
        assert_eq!(scalar64::<FMUL>(m, 1e200, 1e200), None);
        assert_eq!(scalar64::<FADD>(m, f64::NAN, 1.0), None);
        assert_eq!(scalar64::<FADD>(m, f64::from_bits(1), 1.0), None);
        assert_eq!(scalar64::<FADD>(m | 1 << 13, 1.0, 3.0), None);
        assert_eq!(scalar32::<FADD>(m, f32::from_bits(1), 1.0), None);
        assert_eq!(scalar32::<FMUL>(m, 1.5, 2.0), Some(3.0));
    }
}
