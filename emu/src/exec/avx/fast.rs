//! Specialised handlers for the VEX forms that code built for x86-64-v3 runs in its hot
//! loops: moves, the lane-wise integer and bitwise operations, shifts by an immediate,
//! and the scalar double/single arithmetic, FMA, conversions and compares of ordinary
//! floating-point code.
//!
//! The generic VEX handlers (`avx`) re-read operand kinds and registers from the decoded
//! `Instruction`, and the floating-point ones round-trip through a host instruction
//! (`avx::host`: about 150 host instructions a form). Here, as in `sse::fast`, the
//! registers and addressing mode are fixed at decode time in the `Op` (`r0` the
//! destination, `r1` the VEX.vvvv source, `a` the ModRM.rm register or the immediate,
//! `mem` the addressing mode) and the operation is a const generic. Measured on the
//! compute bench built with `-march=x86-64-v3` (interpreter only, callgrind), these
//! forms were most of its slow-path time: `vpsrld`/`vpslld`/`vpor`/`vpaddd` and `rorx`
//! (SHA-256 message schedule), `vfmadd132sd`/`vcvtsi2sd` (double arithmetic). With them
//! (and `rorx`/`andn`/`shlx` in `exec::fast`), SHA-256 built for x86-64-v3 costs 24.7 host
//! instructions per guest instruction instead of 78.9 (the SSE2 build: 21.6); the double
//! workload runs about 6 times faster (timed: valgrind does not model MXCSR flags, so
//! under callgrind PE never gets set and the floating-point fast paths never apply).
//!
//! Floating point takes the fast path only where plain Rust arithmetic is the host's
//! under default MXCSR control bits and raises no flag the guest has not already got
//! (`sse::fast`'s scalar rule, extended to FMA's single rounding via `mul_add`);
//! everything else goes to the generic handler, which computes results and flags on the
//! host. The differential tests run both tiers.

use iced_x86::{EncodingKind, Instruction, Mnemonic, OpKind, Register};

use super::{int_lane, write_vec, Y};
use super::{ADDB, ADDD, ADDQ, ADDW, AND, ANDN, CMPEQB, CMPEQD, CMPEQW, MAXUB, MINUB, OR, SUBB, SUBD, SUBQ, SUBW, XOR};
use crate::cpu::flags::{CF, STATUS, ZF};
use crate::cpu::Cpu;
use crate::exec::fast::{ea, mem_ref, wide_reg};
use crate::exec::operand::mask;
use crate::exec::sse::fast::{scalar32, scalar64, shift_lane, DEFAULT_CONTROL, FADD, FDIV, FMUL, FSUB, PE};
use crate::exec::{run_generic, Handler, Op, Trap};
use crate::memory::Memory;

type R = Result<(), Trap>;

#[inline(always)]
fn ix(r: u8) -> usize {
    (r & 15) as usize
}

/// Register `r` as a ymm value; the upper half reads as zero unless `W`.
#[inline(always)]
fn get<const W: bool>(cpu: &Cpu, r: u8) -> Y {
    [cpu.xmm[ix(r)], if W { cpu.ymm_hi[ix(r)] } else { 0 }]
}

/// Writes a whole VEX destination: a 128-bit (`!W`) result zeroes bits 255:128.
#[inline(always)]
fn put<const W: bool>(cpu: &mut Cpu, r: u8, v: Y) {
    cpu.xmm[ix(r)] = v[0];
    cpu.ymm_hi[ix(r)] = if W { v[1] } else { 0 };
}

/// The ModRM.rm vector operand: register `Op::a`, or 16 (32 if `W`) bytes of memory,
/// #GP if `ALIGN` and not aligned to that size.
#[inline(always)]
fn rm<const W: bool, const MEM: bool, const ALIGN: bool>(cpu: &Cpu, mem: &mut Memory, op: &Op) -> Result<Y, Trap> {
    if !MEM {
        return Ok(get::<W>(cpu, op.a as u8));
    }
    let a = ea(cpu, &op.mem);
    if ALIGN && a & if W { 31 } else { 15 } != 0 {
        return Err(Trap::GeneralProtection);
    }
    let lo = mem.read_u128(a)?;
    Ok([lo, if W { mem.read_u128(a.wrapping_add(16))? } else { 0 }])
}

/// The ModRM.rm scalar operand's low `S` bytes: register `Op::a` or memory.
#[inline(always)]
fn rm_scalar<const S: u8, const MEM: bool>(cpu: &Cpu, mem: &mut Memory, op: &Op) -> Result<u64, Trap> {
    if !MEM {
        return Ok(cpu.xmm[ix(op.a as u8)] as u64 & mask(S));
    }
    let a = ea(cpu, &op.mem);
    Ok(if S == 4 { mem.read_u32(a)? as u64 } else { mem.read_u64(a)? })
}

// ---- integer ------------------------------------------------------------------------------

/// `op dst, src1, src2/m` for the lane-wise integer and bitwise operations of `int_lane`.
fn int3<const K: u8, const W: bool, const MEM: bool>(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let b = rm::<W, MEM, false>(cpu, mem, op)?;
    let a = get::<W>(cpu, op.r1);
    put::<W>(cpu, op.r0, [int_lane::<K>(a[0], b[0]), if W { int_lane::<K>(a[1], b[1]) } else { 0 }]);
    Ok(())
}

/// `vpsllw/d/q`, `vpsrlw/d/q`, `vpsraw/d`, `vpslldq`, `vpsrldq dst, src, imm8`, per lane.
fn shift_imm<const K: u8, const W: bool>(cpu: &mut Cpu, _: &mut Memory, op: &Op) -> R {
    let x = get::<W>(cpu, op.r1);
    put::<W>(cpu, op.r0, [shift_lane::<K>(x[0], op.a), if W { shift_lane::<K>(x[1], op.a) } else { 0 }]);
    Ok(())
}

// ---- moves ----------------------------------------------------------------------------------

fn mov_rr<const W: bool>(cpu: &mut Cpu, _: &mut Memory, op: &Op) -> R {
    put::<W>(cpu, op.r0, get::<W>(cpu, op.a as u8));
    Ok(())
}

fn mov_load<const W: bool, const ALIGN: bool>(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let v = rm::<W, true, ALIGN>(cpu, mem, op)?;
    put::<W>(cpu, op.r0, v);
    Ok(())
}

fn mov_store<const W: bool, const ALIGN: bool>(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let a = ea(cpu, &op.mem);
    if ALIGN && a & if W { 31 } else { 15 } != 0 {
        return Err(Trap::GeneralProtection);
    }
    write_vec(mem, a, if W { 32 } else { 16 }, get::<W>(cpu, op.r1))
}

/// `vmovd`/`vmovq xmm, r32/r64` (`Op::a` the GPR): zero-extends into the whole register.
fn movq_from_gpr<const S: u8>(cpu: &mut Cpu, _: &mut Memory, op: &Op) -> R {
    put::<false>(cpu, op.r0, [(cpu.gpr[ix(op.a as u8)] & mask(S)) as u128, 0]);
    Ok(())
}

/// `vmovd`/`vmovq r32/r64, xmm` (`Op::a` the xmm register).
fn movq_to_gpr<const S: u8>(cpu: &mut Cpu, _: &mut Memory, op: &Op) -> R {
    cpu.gpr[ix(op.r0)] = cpu.xmm[ix(op.a as u8)] as u64 & mask(S);
    Ok(())
}

/// `vmovq xmm, xmm/m64`, `vmovd xmm, m32`, `vmovsd xmm, m64`, `vmovss xmm, m32`: the low
/// element, the rest of the register zeroed.
fn movq_load<const S: u8, const MEM: bool>(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let x = rm_scalar::<S, MEM>(cpu, mem, op)?;
    put::<false>(cpu, op.r0, [x as u128, 0]);
    Ok(())
}

/// `vmovq/vmovsd m64, xmm`, `vmovd/vmovss m32, xmm`.
fn movq_store<const S: u8>(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let a = ea(cpu, &op.mem);
    let x = cpu.xmm[ix(op.r1)] as u64;
    if S == 4 {
        mem.write_u32(a, x as u32)
    } else {
        mem.write_u64(a, x)
    }
}

/// `vmovsd/vmovss xmm1, xmm2, xmm3`: the low element of xmm3 over xmm2.
fn movs_merge<const S: u8>(cpu: &mut Cpu, _: &mut Memory, op: &Op) -> R {
    let low = mask(S) as u128;
    let v = (cpu.xmm[ix(op.r1)] & !low) | (cpu.xmm[ix(op.a as u8)] & low);
    put::<false>(cpu, op.r0, [v, 0]);
    Ok(())
}

// ---- scalar floating point ------------------------------------------------------------------

/// Writes a scalar result: the low `S` bytes of `r` over register `base`, bits 255:128
/// zeroed (every VEX scalar form).
#[inline(always)]
fn put_scalar<const S: u8>(cpu: &mut Cpu, dst: u8, base: u8, r: u64) {
    let low = mask(S) as u128;
    put::<false>(cpu, dst, [(cpu.xmm[ix(base)] & !low) | r as u128, 0]);
}

/// `vaddsd/vsubsd/vmulsd/vdivsd xmm1, xmm2, xmm3/m64` (`D`) and the `ss` forms.
fn arith<const K: u8, const D: bool, const MEM: bool>(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let a = cpu.xmm[ix(op.r1)] as u64;
    let r = if D {
        let b = rm_scalar::<8, MEM>(cpu, mem, op)?;
        scalar64::<K>(cpu.mxcsr, f64::from_bits(a), f64::from_bits(b)).map(f64::to_bits)
    } else {
        let b = rm_scalar::<4, MEM>(cpu, mem, op)?;
        scalar32::<K>(cpu.mxcsr, f32::from_bits(a as u32), f32::from_bits(b as u32)).map(|r| r.to_bits() as u64)
    };
    let Some(r) = r else { return run_generic(cpu, mem, op) };
    if D {
        put_scalar::<8>(cpu, op.r0, op.r1, r);
    } else {
        put_scalar::<4>(cpu, op.r0, op.r1, r);
    }
    Ok(())
}

/// Operand order of the FMA forms: which of (dst, src2, src3) are the two factors and
/// which the addend.
const F132: u8 = 0;
const F213: u8 = 1;
const F231: u8 = 2;
/// Signs: `fmadd` a·b+c, `fmsub` a·b−c, `fnmadd` −a·b+c, `fnmsub` −a·b−c.
const MADD: u8 = 0;
const MSUB: u8 = 1;
const NMADD: u8 = 2;
const NMSUB: u8 = 3;

macro_rules! fma_fn {
    ($name:ident, $t:ty) => {
        /// FMA's single rounding (`mul_add`) when it is the host's result and raises no
        /// flag the guest lacks: default MXCSR control, PE already set, the operands normal
        /// or zero, the result normal (or an exact zero: a zero product plus a zero).
        #[inline(always)]
        fn $name<const SIGN: u8>(mxcsr: u32, a: $t, b: $t, c: $t) -> Option<$t> {
            if mxcsr & !0x3f != DEFAULT_CONTROL || mxcsr & PE == 0 {
                return None;
            }
            let plain = |x: $t| x.is_normal() || x == 0.0;
            if !(plain(a) && plain(b) && plain(c)) {
                return None;
            }
            let a = if SIGN >= NMADD { -a } else { a };
            let c = if SIGN == MSUB || SIGN == NMSUB { -c } else { c };
            let r = a.mul_add(b, c);
            (r.is_normal() || (r == 0.0 && c == 0.0 && (a == 0.0 || b == 0.0))).then_some(r)
        }
    };
}
fma_fn!(fma64, f64);
fma_fn!(fma32, f32);

/// `vfmadd132sd xmm1, xmm2, xmm3/m64` and the other scalar FMA forms (`D` double).
fn fma<const ORD: u8, const SIGN: u8, const D: bool, const MEM: bool>(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let (d, s2) = (cpu.xmm[ix(op.r0)] as u64, cpu.xmm[ix(op.r1)] as u64);
    let s3 = if D { rm_scalar::<8, MEM>(cpu, mem, op)? } else { rm_scalar::<4, MEM>(cpu, mem, op)? };
    let (a, b, c) = match ORD {
        F132 => (d, s3, s2),
        F213 => (s2, d, s3),
        _ => (s2, s3, d),
    };
    let r = if D {
        fma64::<SIGN>(cpu.mxcsr, f64::from_bits(a), f64::from_bits(b), f64::from_bits(c)).map(f64::to_bits)
    } else {
        let f = |x: u64| f32::from_bits(x as u32);
        fma32::<SIGN>(cpu.mxcsr, f(a), f(b), f(c)).map(|r| r.to_bits() as u64)
    };
    let Some(r) = r else { return run_generic(cpu, mem, op) };
    if D {
        put_scalar::<8>(cpu, op.r0, op.r0, r);
    } else {
        put_scalar::<4>(cpu, op.r0, op.r0, r);
    }
    Ok(())
}

/// `vcvtsi2sd/ss xmm1, xmm2, r/m32/64` (`D` double, `S` the integer's bytes): exact
/// conversions raise nothing; an inexact one needs default control and PE already set.
fn cvtsi2f<const S: u8, const D: bool, const MEM: bool>(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let v = if MEM {
        let a = ea(cpu, &op.mem);
        if S == 4 {
            mem.read_u32(a)? as i32 as i64
        } else {
            mem.read_u64(a)? as i64
        }
    } else {
        let g = cpu.gpr[ix(op.a as u8)];
        if S == 4 {
            g as i32 as i64
        } else {
            g as i64
        }
    };
    let (r, exact) = if D {
        let f = v as f64;
        (f.to_bits(), f as i128 == v as i128)
    } else {
        let f = v as f32;
        (f.to_bits() as u64, f as i128 == v as i128)
    };
    let mx = cpu.mxcsr;
    if !exact && (mx & !0x3f != DEFAULT_CONTROL || mx & PE == 0) {
        return run_generic(cpu, mem, op);
    }
    if D {
        put_scalar::<8>(cpu, op.r0, op.r1, r);
    } else {
        put_scalar::<4>(cpu, op.r0, op.r1, r);
    }
    Ok(())
}

/// `vcvttsd2si/vcvttss2si r32/64, xmm/m` (`D` double, `S` the integer's bytes): a normal
/// or zero operand whose truncation fits; inexact only once PE is set.
fn cvtt2si<const S: u8, const D: bool, const MEM: bool>(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    // Normality is judged in the operand's own precision (an f32 denormal widens to a
    // normal f64).
    let (x, plain) = if D {
        let x = f64::from_bits(rm_scalar::<8, MEM>(cpu, mem, op)?);
        (x, x.is_normal() || x == 0.0)
    } else {
        let x = f32::from_bits(rm_scalar::<4, MEM>(cpu, mem, op)? as u32);
        (x as f64, x.is_normal() || x == 0.0)
    };
    let t = x.trunc();
    let limit = if S == 4 { 2147483648.0 } else { 9223372036854775808.0 };
    let fits = plain && t >= -limit && t < limit;
    let mx = cpu.mxcsr;
    if !fits || (t != x && (mx & !0x3f != DEFAULT_CONTROL || mx & PE == 0)) {
        return run_generic(cpu, mem, op);
    }
    cpu.gpr[ix(op.r0)] = t as i64 as u64 & mask(S);
    Ok(())
}

/// `vucomisd/vcomisd/vucomiss/vcomiss xmm, xmm/m`: ordered operands that are normal or
/// zero raise nothing (NaNs and denormals go to the host form).
fn comi<const D: bool, const MEM: bool>(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let (a, b, plain) = if D {
        let (a, b) = (f64::from_bits(cpu.xmm[ix(op.r0)] as u64), f64::from_bits(rm_scalar::<8, MEM>(cpu, mem, op)?));
        (a, b, (a.is_normal() || a == 0.0) && (b.is_normal() || b == 0.0))
    } else {
        let b = f32::from_bits(rm_scalar::<4, MEM>(cpu, mem, op)? as u32);
        let a = f32::from_bits(cpu.xmm[ix(op.r0)] as u32);
        (a as f64, b as f64, (a.is_normal() || a == 0.0) && (b.is_normal() || b == 0.0))
    };
    if !plain {
        return run_generic(cpu, mem, op);
    }
    let f = if a < b {
        CF
    } else if a == b {
        ZF
    } else {
        0
    };
    cpu.rflags = (cpu.rflags & !STATUS) | f;
    Ok(())
}

// ---- selection -------------------------------------------------------------------------------

/// An xmm/ymm register's index and whether it is a ymm register.
fn vreg(r: Register) -> Option<(u8, bool)> {
    if r.is_xmm() {
        Some(((r as u32 - Register::XMM0 as u32) as u8 & 15, false))
    } else if r.is_ymm() {
        Some(((r as u32 - Register::YMM0 as u32) as u8 & 15, true))
    } else {
        None
    }
}

fn int_kind(m: Mnemonic) -> Option<u8> {
    use Mnemonic as M;
    Some(match m {
        M::Vpand | M::Vandps | M::Vandpd => AND,
        M::Vpandn | M::Vandnps | M::Vandnpd => ANDN,
        M::Vpor | M::Vorps | M::Vorpd => OR,
        M::Vpxor | M::Vxorps | M::Vxorpd => XOR,
        M::Vpcmpeqb => CMPEQB,
        M::Vpcmpeqw => CMPEQW,
        M::Vpcmpeqd => CMPEQD,
        M::Vpminub => MINUB,
        M::Vpmaxub => MAXUB,
        M::Vpaddb => ADDB,
        M::Vpaddw => ADDW,
        M::Vpaddd => ADDD,
        M::Vpaddq => ADDQ,
        M::Vpsubb => SUBB,
        M::Vpsubw => SUBW,
        M::Vpsubd => SUBD,
        M::Vpsubq => SUBQ,
        _ => return None,
    })
}

fn shift_kind(m: Mnemonic) -> Option<u8> {
    use crate::exec::sse::fast::{SLLD, SLLDQ, SLLQ, SLLW, SRAD, SRAW, SRLD, SRLDQ, SRLQ, SRLW};
    use Mnemonic as M;
    Some(match m {
        M::Vpsllw => SLLW,
        M::Vpslld => SLLD,
        M::Vpsllq => SLLQ,
        M::Vpsrlw => SRLW,
        M::Vpsrld => SRLD,
        M::Vpsrlq => SRLQ,
        M::Vpsraw => SRAW,
        M::Vpsrad => SRAD,
        M::Vpslldq => SLLDQ,
        M::Vpsrldq => SRLDQ,
        _ => return None,
    })
}

/// The specialised handler for the VEX instruction `i`, filling in `op`; `None` leaves it
/// to `avx::select`. The caller has checked the CPU model has the instruction.
pub(crate) fn specialize(i: &Instruction, op: &mut Op) -> Option<Handler> {
    use Mnemonic as M;
    if i.encoding() != EncodingKind::VEX {
        return None;
    }
    let m = i.mnemonic();
    let count = i.op_count();
    let kind = |n: u32| if n < count { i.op_kind(n) } else { OpKind::Register };
    // The ModRM.rm operand `n` as `Op::a` (a vector register) or `Op::mem`: true if memory.
    let rm_at = |op: &mut Op, n: u32| -> Option<bool> {
        match i.op_kind(n) {
            OpKind::Register => {
                op.a = vreg(i.op_register(n))?.0 as u64;
                Some(false)
            }
            OpKind::Memory => {
                op.mem = mem_ref(i, true)?;
                Some(true)
            }
            _ => None,
        }
    };
    macro_rules! wm {
        ($w:expr, $mem:expr, $f:ident [$($p:expr),*]) => {
            match ($w, $mem) {
                (false, false) => $f::<$({$p},)* false, false> as Handler,
                (false, true) => $f::<$({$p},)* false, true>,
                (true, false) => $f::<$({$p},)* true, false>,
                (true, true) => $f::<$({$p},)* true, true>,
            }
        };
    }
    if let Some(k) = int_kind(m) {
        if count != 3 {
            return None;
        }
        let (r0, w) = vreg(i.op0_register())?;
        op.r0 = r0;
        op.r1 = vreg(i.op1_register())?.0;
        let mem = rm_at(op, 2)?;
        return Some(match k {
            AND => wm!(w, mem, int3[AND]),
            ANDN => wm!(w, mem, int3[ANDN]),
            OR => wm!(w, mem, int3[OR]),
            XOR => wm!(w, mem, int3[XOR]),
            CMPEQB => wm!(w, mem, int3[CMPEQB]),
            CMPEQW => wm!(w, mem, int3[CMPEQW]),
            CMPEQD => wm!(w, mem, int3[CMPEQD]),
            MINUB => wm!(w, mem, int3[MINUB]),
            MAXUB => wm!(w, mem, int3[MAXUB]),
            ADDB => wm!(w, mem, int3[ADDB]),
            ADDW => wm!(w, mem, int3[ADDW]),
            ADDD => wm!(w, mem, int3[ADDD]),
            ADDQ => wm!(w, mem, int3[ADDQ]),
            SUBB => wm!(w, mem, int3[SUBB]),
            SUBW => wm!(w, mem, int3[SUBW]),
            SUBD => wm!(w, mem, int3[SUBD]),
            _ => wm!(w, mem, int3[SUBQ]),
        });
    }
    if let Some(k) = shift_kind(m) {
        if count != 3 || kind(1) != OpKind::Register || kind(2) != OpKind::Immediate8 {
            return None;
        }
        let (r0, w) = vreg(i.op0_register())?;
        op.r0 = r0;
        op.r1 = vreg(i.op1_register())?.0;
        op.a = i.immediate8() as u64;
        use crate::exec::sse::fast::{SLLD, SLLDQ, SLLQ, SLLW, SRAD, SRAW, SRLD, SRLDQ, SRLQ, SRLW};
        macro_rules! sh {
            ($k:expr) => {
                if w {
                    shift_imm::<{ $k }, true> as Handler
                } else {
                    shift_imm::<{ $k }, false>
                }
            };
        }
        return Some(match k {
            SLLW => sh!(SLLW),
            SLLD => sh!(SLLD),
            SLLQ => sh!(SLLQ),
            SRLW => sh!(SRLW),
            SRLD => sh!(SRLD),
            SRLQ => sh!(SRLQ),
            SRAW => sh!(SRAW),
            SRAD => sh!(SRAD),
            SLLDQ => sh!(SLLDQ),
            _ => sh!(SRLDQ),
        });
    }
    let fp = match m {
        M::Vaddsd | M::Vaddss => Some(FADD),
        M::Vsubsd | M::Vsubss => Some(FSUB),
        M::Vmulsd | M::Vmulss => Some(FMUL),
        M::Vdivsd | M::Vdivss => Some(FDIV),
        _ => None,
    };
    if let Some(k) = fp {
        op.r0 = vreg(i.op0_register())?.0;
        op.r1 = vreg(i.op1_register())?.0;
        let mem = rm_at(op, 2)?;
        let d = matches!(m, M::Vaddsd | M::Vsubsd | M::Vmulsd | M::Vdivsd);
        return Some(match k {
            FADD => wm!(d, mem, arith[FADD]),
            FSUB => wm!(d, mem, arith[FSUB]),
            FMUL => wm!(d, mem, arith[FMUL]),
            _ => wm!(d, mem, arith[FDIV]),
        });
    }
    if let Some((ord, sign, d)) = fma_form(m) {
        op.r0 = vreg(i.op0_register())?.0;
        op.r1 = vreg(i.op1_register())?.0;
        let mem = rm_at(op, 2)?;
        macro_rules! signs {
            ($o:expr) => {
                match sign {
                    MADD => wm!(d, mem, fma[$o, MADD]),
                    MSUB => wm!(d, mem, fma[$o, MSUB]),
                    NMADD => wm!(d, mem, fma[$o, NMADD]),
                    _ => wm!(d, mem, fma[$o, NMSUB]),
                }
            };
        }
        return Some(match ord {
            F132 => signs!(F132),
            F213 => signs!(F213),
            _ => signs!(F231),
        });
    }
    match m {
        M::Vmovaps | M::Vmovapd | M::Vmovdqa | M::Vmovups | M::Vmovupd | M::Vmovdqu if count == 2 => {
            let align = matches!(m, M::Vmovaps | M::Vmovapd | M::Vmovdqa);
            match (kind(0), kind(1)) {
                (OpKind::Register, OpKind::Register) => {
                    let (r0, w) = vreg(i.op0_register())?;
                    op.r0 = r0;
                    op.a = vreg(i.op1_register())?.0 as u64;
                    Some(if w { mov_rr::<true> } else { mov_rr::<false> })
                }
                (OpKind::Register, OpKind::Memory) => {
                    let (r0, w) = vreg(i.op0_register())?;
                    op.r0 = r0;
                    op.mem = mem_ref(i, true)?;
                    Some(wm!(w, align, mov_load[]))
                }
                (OpKind::Memory, OpKind::Register) => {
                    let (r1, w) = vreg(i.op1_register())?;
                    op.r1 = r1;
                    op.mem = mem_ref(i, true)?;
                    Some(wm!(w, align, mov_store[]))
                }
                _ => None,
            }
        }
        M::Vmovd | M::Vmovq | M::Vmovsd | M::Vmovss if count == 2 => {
            let s: u8 = if matches!(m, M::Vmovd | M::Vmovss) { 4 } else { 8 };
            let scalar_fp = matches!(m, M::Vmovsd | M::Vmovss);
            match (kind(0), kind(1)) {
                (OpKind::Register, OpKind::Memory) => {
                    op.r0 = vreg(i.op0_register())?.0;
                    op.mem = mem_ref(i, true)?;
                    Some(if s == 4 { movq_load::<4, true> } else { movq_load::<8, true> })
                }
                (OpKind::Memory, OpKind::Register) => {
                    op.r1 = vreg(i.op1_register())?.0;
                    op.mem = mem_ref(i, true)?;
                    Some(if s == 4 { movq_store::<4> } else { movq_store::<8> })
                }
                (OpKind::Register, OpKind::Register) if !scalar_fp => {
                    let (r0, r1) = (i.op0_register(), i.op1_register());
                    match (vreg(r0), vreg(r1)) {
                        (Some((x0, _)), Some((x1, _))) => {
                            op.r0 = x0;
                            op.a = x1 as u64;
                            Some(movq_load::<8, false> as Handler)
                        }
                        (Some((x0, _)), None) => {
                            op.r0 = x0;
                            op.a = wide_reg(r1)?.0 as u64;
                            Some(if s == 4 { movq_from_gpr::<4> } else { movq_from_gpr::<8> })
                        }
                        (None, Some((x1, _))) => {
                            op.r0 = wide_reg(r0)?.0;
                            op.a = x1 as u64;
                            Some(if s == 4 { movq_to_gpr::<4> } else { movq_to_gpr::<8> })
                        }
                        (None, None) => None,
                    }
                }
                _ => None,
            }
        }
        M::Vmovsd | M::Vmovss if count == 3 => {
            op.r0 = vreg(i.op0_register())?.0;
            op.r1 = vreg(i.op1_register())?.0;
            op.a = vreg(i.op2_register())?.0 as u64;
            Some(if m == M::Vmovss { movs_merge::<4> } else { movs_merge::<8> })
        }
        M::Vcvtsi2sd | M::Vcvtsi2ss => {
            op.r0 = vreg(i.op0_register())?.0;
            op.r1 = vreg(i.op1_register())?.0;
            let (mem, s) = match kind(2) {
                OpKind::Register => {
                    let (g, s) = wide_reg(i.op2_register())?;
                    op.a = g as u64;
                    (false, s)
                }
                OpKind::Memory => {
                    op.mem = mem_ref(i, true)?;
                    (true, i.memory_size().size() as u8)
                }
                _ => return None,
            };
            let d = m == M::Vcvtsi2sd;
            Some(match s {
                4 => wm!(d, mem, cvtsi2f[4]),
                _ => wm!(d, mem, cvtsi2f[8]),
            })
        }
        M::Vcvttsd2si | M::Vcvttss2si => {
            let (g, s) = wide_reg(i.op0_register())?;
            op.r0 = g;
            let mem = rm_at(op, 1)?;
            let d = m == M::Vcvttsd2si;
            Some(match s {
                4 => wm!(d, mem, cvtt2si[4]),
                _ => wm!(d, mem, cvtt2si[8]),
            })
        }
        M::Vucomisd | M::Vcomisd | M::Vucomiss | M::Vcomiss => {
            op.r0 = vreg(i.op0_register())?.0;
            let mem = rm_at(op, 1)?;
            Some(wm!(matches!(m, M::Vucomisd | M::Vcomisd), mem, comi[]))
        }
        _ => None,
    }
}

/// The operand order, sign and precision (true: double) of a scalar FMA mnemonic.
fn fma_form(m: Mnemonic) -> Option<(u8, u8, bool)> {
    use Mnemonic as M;
    Some(match m {
        M::Vfmadd132sd => (F132, MADD, true),
        M::Vfmadd213sd => (F213, MADD, true),
        M::Vfmadd231sd => (F231, MADD, true),
        M::Vfmsub132sd => (F132, MSUB, true),
        M::Vfmsub213sd => (F213, MSUB, true),
        M::Vfmsub231sd => (F231, MSUB, true),
        M::Vfnmadd132sd => (F132, NMADD, true),
        M::Vfnmadd213sd => (F213, NMADD, true),
        M::Vfnmadd231sd => (F231, NMADD, true),
        M::Vfnmsub132sd => (F132, NMSUB, true),
        M::Vfnmsub213sd => (F213, NMSUB, true),
        M::Vfnmsub231sd => (F231, NMSUB, true),
        M::Vfmadd132ss => (F132, MADD, false),
        M::Vfmadd213ss => (F213, MADD, false),
        M::Vfmadd231ss => (F231, MADD, false),
        M::Vfmsub132ss => (F132, MSUB, false),
        M::Vfmsub213ss => (F213, MSUB, false),
        M::Vfmsub231ss => (F231, MSUB, false),
        M::Vfnmadd132ss => (F132, NMADD, false),
        M::Vfnmadd213ss => (F213, NMADD, false),
        M::Vfnmadd231ss => (F231, NMADD, false),
        M::Vfnmsub132ss => (F132, NMSUB, false),
        M::Vfnmsub213ss => (F213, NMSUB, false),
        M::Vfnmsub231ss => (F231, NMSUB, false),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fma_fast_path_conditions() {
        let m = DEFAULT_CONTROL | PE;
        assert_eq!(fma64::<MADD>(m, 2.0, 3.0, 1.0), Some(7.0));
        assert_eq!(fma64::<MSUB>(m, 2.0, 3.0, 1.0), Some(5.0));
        assert_eq!(fma64::<NMADD>(m, 2.0, 3.0, 1.0), Some(-5.0));
        assert_eq!(fma64::<NMSUB>(m, 2.0, 3.0, 1.0), Some(-7.0));
        // Single rounding: 0.1 * 10 - 1 is not zero when fused.
        let fused = fma64::<MSUB>(m, 0.1, 10.0, 1.0).unwrap();
        assert_ne!(fused, 0.0);
        // A zero product plus zero is exact; a cancelling sum may be too, but goes to the host.
        assert_eq!(fma64::<MADD>(m, 0.0, 3.0, -0.0).map(f64::to_bits), Some(0.0f64.to_bits()));
        assert_eq!(fma64::<MSUB>(m, 2.0, 3.0, 6.0), None);
        // PE not yet set, other control bits, flag-raising operands or results.
        assert_eq!(fma64::<MADD>(DEFAULT_CONTROL, 2.0, 3.0, 1.0), None);
        assert_eq!(fma64::<MADD>(m | 1 << 13, 2.0, 3.0, 1.0), None);
        assert_eq!(fma64::<MADD>(m, f64::INFINITY, 0.0, 1.0), None);
        assert_eq!(fma64::<MADD>(m, f64::from_bits(1), 1.0, 1.0), None);
        assert_eq!(fma64::<MADD>(m, 1e300, 1e300, 1.0), None);
        assert_eq!(fma32::<MADD>(m, 1.5, 2.0, 0.5), Some(3.5));
    }
}
