//! SSE, SSE2, SSE3, SSSE3, SSE4.1 and SSE4.2 (legacy encodings only; VEX
//! forms stay #UD because `cpuid` claims no AVX, and MMX register forms stay
//! #UD because it claims no MMX).
//!
//! Design: every instruction that computes something is executed *on the
//! host* (module `host`): the guest operands are copied into host xmm
//! registers and the very same instruction runs inside one `asm!` block. For
//! floating point this is the only practical way to be bit-exact with
//! hardware: rounding modes, FTZ/DAZ, NaN propagation and quieting, the
//! asymmetric min/max rules, the "integer indefinite" results of conversions,
//! and above all `rcpps`/`rsqrtps`, whose approximations are model-specific,
//! all come out exactly as the hardware computes them. The block loads the
//! guest MXCSR with every exception masked (so the host never takes #XM),
//! runs the one instruction, reads back the flags it raised and restores the
//! host MXCSR before leaving the block: Rust code never runs under the guest's
//! floating-point environment. Raised flags are then merged into the guest
//! MXCSR; if one is unmasked there, the handler returns #XM without writing
//! the destination, as the hardware does (see `fp_run` for the details of the
//! masked-vs-unmasked differences). Integer operations use the same
//! machinery without MXCSR, except data movement and the shuffles, inserts,
//! extracts and shifts that take an immediate: those are plain Rust (an
//! immediate is part of the instruction, so host execution would need one
//! copy of the instruction per immediate). Where the immediate does matter
//! for floating point (`cmpps`, `roundps`, `dpps`, ...) or the operation is
//! intricate (`pcmpestri` and friends), one host copy per immediate is
//! generated and the right one is picked at decode time.
//!
//! Memory operands are read with exactly the width the instruction reads;
//! 16-byte operands must be 16-byte aligned (#GP) except for the explicitly
//! unaligned instructions. All memory reads, and the check of a memory write,
//! happen before any register changes, so a fault leaves no trace.

pub(crate) mod fast;
pub(crate) mod host;
mod mmx;
pub(crate) mod post;
#[cfg(test)]
mod tests;

use iced_x86::{EncodingKind, Instruction, Mnemonic, OpKind, Register};

use self::host::{
    imm_table, with_flag_ops, with_fp_ops, with_vec_ops, Cmppd, Cmpps, Cmpsd, Cmpss, Dppd, Dpps, Host, Pcmpestri,
    Pcmpestrm, Pcmpistri, Pcmpistrm, Roundpd, Roundps, Roundsd, Roundss, St,
};
use super::operand::{self, ea, get_gpr, gpr, mask, op_size, set_gpr};
use super::{Handler, Op, Trap};
use crate::cpu::flags::{CF, STATUS, ZF};
use crate::cpu::{reg, Cpu, MXCSR_MASK};
use crate::memory::Memory;

type R = Result<(), Trap>;

// MXCSR bits.
const IE: u32 = 1 << 0;
const DE: u32 = 1 << 1;
const ZE: u32 = 1 << 2;
const OE: u32 = 1 << 3;
const UE: u32 = 1 << 4;
const EXC_FLAGS: u32 = 0x3f;
const EXC_MASKS: u32 = 0x3f << 7;
const FTZ: u32 = 1 << 15;

// ---- operand access ---------------------------------------------------------

/// Index of an xmm register.
#[inline(always)]
pub(crate) fn xr(r: Register) -> usize {
    (r as usize).wrapping_sub(Register::XMM0 as usize) & 15
}

/// False for the instructions whose 16-byte memory operand may be misaligned.
fn needs_align(i: &Instruction) -> bool {
    i.encoding() == EncodingKind::Legacy
        && !matches!(
            i.mnemonic(),
            Mnemonic::Movups
                | Mnemonic::Movupd
                | Mnemonic::Movdqu
                | Mnemonic::Lddqu
                | Mnemonic::Pcmpestri
                | Mnemonic::Pcmpestrm
                | Mnemonic::Pcmpestri64
                | Mnemonic::Pcmpestrm64
                | Mnemonic::Pcmpistri
                | Mnemonic::Pcmpistrm
        )
}

/// Reads the memory operand at `a` with the instruction's memory width,
/// zero-extended.
#[inline]
fn read_m(mem: &mut Memory, i: &Instruction, a: u64) -> Result<u128, Trap> {
    Ok(match i.memory_size().size() {
        16 => {
            if a & 15 != 0 && needs_align(i) {
                return Err(Trap::GeneralProtection);
            }
            mem.read_u128(a)?
        }
        8 => mem.read_u64(a)? as u128,
        4 => mem.read_u32(a)? as u128,
        2 => mem.read_u16(a)? as u128,
        1 => mem.read_u8(a)? as u128,
        _ => return Err(Trap::InvalidOpcode),
    })
}

/// Operand `n` as an xmm register or memory operand.
#[inline]
fn src(cpu: &Cpu, mem: &mut Memory, i: &Instruction, n: u32) -> Result<u128, Trap> {
    if i.op_kind(n) == OpKind::Register {
        Ok(cpu.xmm[xr(i.op_register(n))])
    } else {
        read_m(mem, i, ea(cpu, i))
    }
}

/// Checks that a 16-byte store to `a` is allowed by alignment.
#[inline]
fn check_store_align(i: &Instruction, a: u64) -> R {
    if a & 15 != 0 && needs_align(i) {
        Err(Trap::GeneralProtection)
    } else {
        Ok(())
    }
}

#[inline(always)]
pub(crate) fn lanes<const N: usize>(v: u128) -> [u128; N] {
    let bits = 128 / N;
    let m = u128::MAX >> (128 - bits);
    core::array::from_fn(|k| (v >> (bits * k)) & m)
}

#[inline(always)]
pub(crate) fn join<const N: usize>(a: [u128; N]) -> u128 {
    let bits = 128 / N;
    let m = u128::MAX >> (128 - bits);
    a.iter().enumerate().fold(0, |acc, (k, &x)| acc | (x & m) << (bits * k))
}

// ---- host-executed families ---------------------------------------------------

/// A host instruction (`Host::run`). The floating-point and string-compare
/// handlers are generic only in a thin wrapper that passes this pointer to
/// one shared body: there is one instantiation per immediate for `dpps` and
/// the `pcmp?str?` family, and full copies of the bodies would multiply the
/// crate's build time.
type Run = fn(&mut St);

/// The MXCSR fields of a host-instruction state (`St` here, `avx::host::VSt` for VEX).
pub(crate) trait FpState: Copy {
    fn mx_in(&mut self) -> &mut u32;
    fn mx_out(&self) -> u32;
    /// The instruction's sources in the order `post::post_flags` expects.
    fn sources(&self) -> post::Sources;
}

impl FpState for St {
    fn mx_in(&mut self) -> &mut u32 {
        &mut self.mx_in
    }
    fn mx_out(&self) -> u32 {
        self.mx_out
    }
    fn sources(&self) -> post::Sources {
        [[self.x[1], 0], [self.x[2], 0], [0, 0]]
    }
}

/// Runs a floating-point host instruction under the guest MXCSR and merges the
/// exception flags it raised; `Err(SimdFloatingPoint)` if one is unmasked.
#[inline]
pub(crate) fn fp_run<S: FpState>(cpu: &mut Cpu, s: &mut S, run: fn(&mut S), i: &Instruction) -> R {
    let guest = cpu.mxcsr;
    // Only architectural bits reach the host: `Cpu::mxcsr` is a public field
    // (a signal frame or a tool may set it), and a reserved bit would make
    // the host's own `ldmxcsr` fault.
    *s.mx_in() = ((guest & MXCSR_MASK) | EXC_MASKS) & !EXC_FLAGS;
    if guest & UE << 7 == 0 {
        // FTZ applies only while underflow is masked: with it unmasked a
        // tiny result is not flushed (so the flush's PE must not show).
        *s.mx_in() &= !FTZ;
    }
    let before = *s;
    run(s);
    let raised = s.mx_out() & EXC_FLAGS;
    let unmasked = !(guest >> 7) & EXC_FLAGS;
    if unmasked != 0 {
        return fp_unmasked(cpu, before, raised, unmasked, run, i);
    }
    cpu.mxcsr |= raised;
    Ok(())
}

/// The cold path of `fp_run` when the guest unmasked some exception.
///
/// The host ran with every exception masked, which differs from an unmasked
/// run in two ways the guest can see: with underflow unmasked, a tiny result
/// signals UE even when exact (masked, only tiny *and* inexact does), which
/// a rerun with FTZ reveals (FTZ flushes, and flags, every tiny result); and
/// an unmasked pre-computation exception (IE, DE, ZE) suppresses the
/// post-computation ones (OE, UE, PE). FTZ does not apply while underflow
/// is unmasked (see `fp_run`).
///
/// With overflow or underflow unmasked, PE means something else again (it
/// reflects rounding with an unbounded exponent) and the masked run cannot
/// say which lane did what: for the instructions that can overflow or
/// underflow, `post::post_flags` recomputes OE, UE and PE in software.
#[cold]
#[inline(never)]
fn fp_unmasked<S: FpState>(
    cpu: &mut Cpu,
    before: S,
    mut raised: u32,
    unmasked: u32,
    run: fn(&mut S),
    i: &Instruction,
) -> R {
    let pre = IE | DE | ZE;
    let dp = matches!(i.mnemonic(), Mnemonic::Dpps | Mnemonic::Dppd | Mnemonic::Vdpps | Mnemonic::Vdppd);
    if dp || (unmasked & (OE | UE) != 0 && raised & unmasked & pre == 0) {
        let wide = (0..i.op_count()).any(|k| i.op_kind(k) == OpKind::Register && i.op_register(k).is_ymm())
            || i.memory_size().size() == 32;
        let model = post::post_flags(i.mnemonic(), i.immediate8(), wide, &before.sources(), cpu.mxcsr);
        if let Some((post, complete)) = model {
            let flags = if complete { post } else { (raised & pre) | post };
            cpu.mxcsr |= flags;
            return if flags & unmasked != 0 { Err(Trap::SimdFloatingPoint) } else { Ok(()) };
        }
    }
    if unmasked & UE != 0 && raised & UE == 0 {
        let mut t = before;
        *t.mx_in() |= FTZ;
        run(&mut t);
        raised |= t.mx_out() & UE;
    }
    if raised & unmasked == 0 {
        cpu.mxcsr |= raised;
        return Ok(());
    }
    cpu.mxcsr |= if raised & unmasked & pre != 0 { raised & pre } else { raised };
    Err(Trap::SimdFloatingPoint)
}

/// `op xmm1, xmm2/m` with no MXCSR involvement.
fn vec_op<H: Host>(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    let v = src(cpu, mem, i, 1)?;
    let d = xr(i.op0_register());
    let mut s = St { x: [cpu.xmm[0], cpu.xmm[d], v], ..St::default() };
    H::run(&mut s);
    cpu.xmm[d] = s.x[1];
    Ok(())
}

const AND: u8 = 0;
const ANDN: u8 = 1;
const OR: u8 = 2;
const XOR: u8 = 3;
const ADDD: u8 = 4;
const SUBD: u8 = 5;
const ADDQ: u8 = 6;
const SUBQ: u8 = 7;
const CMPEQB: u8 = 8;

/// The commonest integer ops in plain Rust: they are frequent (string
/// functions, zeroing idioms) and too cheap to be worth a host round trip.
fn int_op<const K: u8>(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    let b = src(cpu, mem, i, 1)?;
    let d = xr(i.op0_register());
    let a = cpu.xmm[d];
    let lanes32 = |f: fn(u32, u32) -> u32| {
        (0..4).fold(0u128, |acc, k| acc | (f((a >> (32 * k)) as u32, (b >> (32 * k)) as u32) as u128) << (32 * k))
    };
    let lanes64 = |f: fn(u64, u64) -> u64| {
        (f(a as u64, b as u64) as u128) | (f((a >> 64) as u64, (b >> 64) as u64) as u128) << 64
    };
    cpu.xmm[d] = match K {
        AND => a & b,
        ANDN => !a & b,
        OR => a | b,
        XOR => a ^ b,
        ADDD => lanes32(u32::wrapping_add),
        SUBD => lanes32(u32::wrapping_sub),
        ADDQ => lanes64(u64::wrapping_add),
        SUBQ => lanes64(u64::wrapping_sub),
        _ => {
            let (x, y) = (a.to_le_bytes(), b.to_le_bytes());
            u128::from_le_bytes(std::array::from_fn(|k| if x[k] == y[k] { 0xff } else { 0 }))
        }
    };
    Ok(())
}

/// `op xmm1, xmm2/m` under the guest MXCSR.
fn fp_op<H: Host>(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    fp_op_with(cpu, mem, op, H::run)
}

#[inline(never)]
fn fp_op_with(cpu: &mut Cpu, mem: &mut Memory, op: &Op, run: Run) -> R {
    let i = &op.insn;
    let v = src(cpu, mem, i, 1)?;
    let d = xr(i.op0_register());
    let mut s = St { x: [cpu.xmm[0], cpu.xmm[d], v], ..St::default() };
    fp_run(cpu, &mut s, run, i)?;
    cpu.xmm[d] = s.x[1];
    Ok(())
}

/// `comiss`-style compares: RFLAGS from the host.
fn flags_op<H: Host>(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    flags_op_with(cpu, mem, op, H::run)
}

#[inline(never)]
fn flags_op_with(cpu: &mut Cpu, mem: &mut Memory, op: &Op, run: Run) -> R {
    let i = &op.insn;
    let v = src(cpu, mem, i, 1)?;
    let d = xr(i.op0_register());
    let mut s = St { x: [0, cpu.xmm[d], v], ..St::default() };
    fp_run(cpu, &mut s, run, i)?;
    cpu.rflags = (cpu.rflags & !STATUS) | (s.flags & STATUS);
    Ok(())
}

/// `cvtsi2ss xmm, r/m32|64` and `cvtsi2sd`.
fn cvt_from_gpr<H: Host>(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    cvt_from_gpr_with(cpu, mem, op, H::run)
}

#[inline(never)]
fn cvt_from_gpr_with(cpu: &mut Cpu, mem: &mut Memory, op: &Op, run: Run) -> R {
    let i = &op.insn;
    let v = operand::read(cpu, mem, i, 1, op_size(i, 1))?;
    let d = xr(i.op0_register());
    let mut s = St { x: [0, cpu.xmm[d], 0], g: [v, 0, 0], ..St::default() };
    fp_run(cpu, &mut s, run, i)?;
    cpu.xmm[d] = s.x[1];
    Ok(())
}

/// `cvt(t)ss2si r32|64, xmm/m32` and the `sd` forms.
fn cvt_to_gpr<H: Host>(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    cvt_to_gpr_with(cpu, mem, op, H::run)
}

#[inline(never)]
fn cvt_to_gpr_with(cpu: &mut Cpu, mem: &mut Memory, op: &Op, run: Run) -> R {
    let i = &op.insn;
    let v = src(cpu, mem, i, 1)?;
    let g = gpr(i.op0_register()).ok_or(Trap::InvalidOpcode)?;
    let mut s = St { x: [0, 0, v], ..St::default() };
    fp_run(cpu, &mut s, run, i)?;
    set_gpr(cpu, g, s.g[0]);
    Ok(())
}

/// `pcmp[ei]str[im]`: lengths in rax/rdx, index to rcx, mask to xmm0, flags.
/// With `wide` (REX.W) the explicit lengths are read as 64-bit values; they are
/// saturated here and passed to the 32-bit host form, which saturates alike.
#[inline(never)]
fn pcmpstr(cpu: &mut Cpu, mem: &mut Memory, op: &Op, run: Run, wide: bool) -> R {
    let i = &op.insn;
    let v = src(cpu, mem, i, 1)?;
    let d = xr(i.op0_register());
    let len = |x: u64| if wide { (x as i64).unsigned_abs().min(16) } else { x };
    let g = [len(cpu.gpr[reg::RAX]), cpu.gpr[reg::RCX], len(cpu.gpr[reg::RDX])];
    let mut s = St { x: [cpu.xmm[0], cpu.xmm[d], v], g, mx_in: crate::cpu::MXCSR_DEFAULT, ..St::default() };
    run(&mut s);
    cpu.gpr[reg::RCX] = s.g[1];
    cpu.xmm[0] = s.x[0];
    cpu.rflags = (cpu.rflags & !STATUS) | (s.flags & STATUS);
    Ok(())
}

fn pcmpstr_op<H: Host>(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    use Mnemonic as M;
    let m = op.insn.mnemonic();
    let wide = matches!(m, M::Pcmpestri64 | M::Pcmpestrm64 | M::Vpcmpestri64 | M::Vpcmpestrm64);
    pcmpstr(cpu, mem, op, H::run, wide)?;
    if matches!(m, M::Vpcmpestrm | M::Vpcmpestrm64 | M::Vpcmpistrm) {
        // The VEX forms zero the rest of their destination, ymm0.
        cpu.ymm_hi[0] = 0;
    }
    Ok(())
}

/// The string compares, legacy and VEX (one host copy per immediate).
pub(crate) fn pcmpstr_handler(i: &Instruction) -> Option<Handler> {
    use Mnemonic as M;
    let imm = i.immediate8() as usize;
    Some(match i.mnemonic() {
        M::Pcmpestri | M::Pcmpestri64 | M::Vpcmpestri | M::Vpcmpestri64 => {
            imm_table!(256, pcmpstr_op, Pcmpestri)[imm >> 4][imm & 15]
        }
        M::Pcmpestrm | M::Pcmpestrm64 | M::Vpcmpestrm | M::Vpcmpestrm64 => {
            imm_table!(256, pcmpstr_op, Pcmpestrm)[imm >> 4][imm & 15]
        }
        M::Pcmpistri | M::Vpcmpistri => imm_table!(256, pcmpstr_op, Pcmpistri)[imm >> 4][imm & 15],
        M::Pcmpistrm | M::Vpcmpistrm => imm_table!(256, pcmpstr_op, Pcmpistrm)[imm >> 4][imm & 15],
        _ => return None,
    })
}

// ---- data movement -------------------------------------------------------------

/// Full-width moves: `movaps`, `movdqu`, `lddqu`, `movntdq`, ...
fn mov_full(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    if i.op0_kind() == OpKind::Register {
        cpu.xmm[xr(i.op0_register())] = src(cpu, mem, i, 1)?;
        Ok(())
    } else {
        let a = ea(cpu, i);
        check_store_align(i, a)?;
        mem.write_u128(a, cpu.xmm[xr(i.op1_register())])
    }
}

/// `movss` (`N` = 4) and `movsd` (`N` = 8): register forms merge, loads zero
/// the rest of the register.
fn mov_scalar<const N: u32>(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    let m = u128::MAX >> (128 - 8 * N);
    match (i.op0_kind(), i.op1_kind()) {
        (OpKind::Register, OpKind::Register) => {
            let d = xr(i.op0_register());
            cpu.xmm[d] = (cpu.xmm[d] & !m) | (cpu.xmm[xr(i.op1_register())] & m);
            Ok(())
        }
        (OpKind::Register, _) => {
            cpu.xmm[xr(i.op0_register())] = read_m(mem, i, ea(cpu, i))?;
            Ok(())
        }
        _ => {
            let v = cpu.xmm[xr(i.op1_register())];
            let a = ea(cpu, i);
            if N == 4 {
                mem.write_u32(a, v as u32)
            } else {
                mem.write_u64(a, v as u64)
            }
        }
    }
}

/// `movd`/`movq` between xmm and general registers or memory, and `movq xmm, xmm/m64`.
fn mov_dq(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    if i.op0_kind() == OpKind::Register && i.op0_register().is_xmm() {
        let v = if i.op1_kind() == OpKind::Register {
            let r = i.op1_register();
            if r.is_xmm() {
                cpu.xmm[xr(r)] as u64 as u128
            } else {
                get_gpr(cpu, gpr(r).ok_or(Trap::InvalidOpcode)?) as u128
            }
        } else {
            read_m(mem, i, ea(cpu, i))?
        };
        cpu.xmm[xr(i.op0_register())] = v;
        Ok(())
    } else {
        let size = op_size(i, 0);
        let v = cpu.xmm[xr(i.op1_register())] as u64 & mask(size);
        match i.op0_kind() {
            OpKind::Register if i.op0_register().is_xmm() => {
                cpu.xmm[xr(i.op0_register())] = v as u128;
                Ok(())
            }
            _ => operand::write(cpu, mem, i, 0, size, v),
        }
    }
}

/// `movlps`/`movlpd` (`HIGH` = false) and `movhps`/`movhpd` (true).
fn mov_half<const HIGH: bool>(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    let sh = if HIGH { 64 } else { 0 };
    if i.op0_kind() == OpKind::Register {
        let v = mem.read_u64(ea(cpu, i))? as u128;
        let d = xr(i.op0_register());
        cpu.xmm[d] = (cpu.xmm[d] & !((u64::MAX as u128) << sh)) | v << sh;
        Ok(())
    } else {
        let v = (cpu.xmm[xr(i.op1_register())] >> sh) as u64;
        mem.write_u64(ea(cpu, i), v)
    }
}

/// `movhlps` and `movlhps`.
fn mov_hl_lh(cpu: &mut Cpu, _: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    let d = xr(i.op0_register());
    let s = cpu.xmm[xr(i.op1_register())];
    let lo = u64::MAX as u128;
    cpu.xmm[d] =
        if i.mnemonic() == Mnemonic::Movhlps { (cpu.xmm[d] & !lo) | s >> 64 } else { (cpu.xmm[d] & lo) | s << 64 };
    Ok(())
}

/// `movmskps`, `movmskpd`, `pmovmskb`.
fn movmsk(cpu: &mut Cpu, _: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    let x = cpu.xmm[xr(i.op1_register())];
    let (n, bits) = match i.mnemonic() {
        Mnemonic::Movmskps => (4, 32),
        Mnemonic::Movmskpd => (2, 64),
        _ => (16, 8),
    };
    let m = (0..n).fold(0u64, |acc, k| acc | (((x >> (bits * k + bits - 1)) & 1) as u64) << k);
    let g = gpr(i.op0_register()).ok_or(Trap::InvalidOpcode)?;
    set_gpr(cpu, g, m);
    Ok(())
}

/// `movnti m32|64, r32|64`.
fn movnti(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    let size = op_size(i, 1);
    let v = operand::read(cpu, mem, i, 1, size)?;
    operand::write(cpu, mem, i, 0, size, v)
}

/// `maskmovdqu xmm1, xmm2`: the bytes of xmm1 selected by the sign bits of
/// xmm2 go to `[rdi]` (`[edi]` with an address-size prefix). The VEX form
/// checks all 16 bytes for writability first, selected or not (measured on
/// Sapphire Rapids: it faults on an unwritable masked-off byte, even with an
/// all-zero mask); the legacy form only the selected ones.
pub(crate) fn maskmovdqu(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    let mut a = cpu.gpr[reg::RDI];
    if i.op0_kind() == OpKind::MemorySegEDI {
        a &= 0xffff_ffff;
    }
    a = a.wrapping_add(match i.memory_segment() {
        Register::FS => cpu.fs_base,
        Register::GS => cpu.gs_base,
        _ => 0,
    });
    let data = cpu.xmm[xr(i.op1_register())].to_le_bytes();
    let sel = cpu.xmm[xr(i.op2_register())].to_le_bytes();
    let selected = || (0u64..).zip(data.iter().zip(sel)).filter(|(_, (_, m))| m & 0x80 != 0);
    if i.encoding() == iced_x86::EncodingKind::VEX {
        mem.probe_write(a, 16)?;
    }
    for (k, _) in selected() {
        mem.probe_write(a.wrapping_add(k), 1)?;
    }
    for (k, (&b, _)) in selected() {
        mem.write_u8(a.wrapping_add(k), b)?;
    }
    Ok(())
}

/// `aeskeygenassist` (legacy and VEX): the host instruction with a zero round constant,
/// then the constant (the immediate) XORed into dwords 1 and 3, which is where the
/// instruction puts it; one host copy instead of 256.
pub(crate) fn aeskeygenassist(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    use host::Host;
    let i = &op.insn;
    let v = src(cpu, mem, i, 1)?;
    let mut s = St { x: [0, 0, v], ..St::default() };
    host::Aeskeygenassist0::run(&mut s);
    let rcon = i.immediate8() as u128;
    let d = xr(i.op0_register());
    cpu.xmm[d] = s.x[1] ^ (rcon << 32 | rcon << 96);
    if i.encoding() == EncodingKind::VEX {
        cpu.ymm_hi[d] = 0;
    }
    Ok(())
}

pub(crate) fn ldmxcsr(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let v = mem.read_u32(ea(cpu, &op.insn))?;
    if v & !MXCSR_MASK != 0 {
        return Err(Trap::GeneralProtection);
    }
    cpu.mxcsr = v;
    Ok(())
}

pub(crate) fn stmxcsr(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let a = ea(cpu, &op.insn);
    mem.write_u32(a, cpu.mxcsr)
}

// ---- shuffles, blends, inserts and extracts with an immediate ----------------------

/// `pshufd`, `pshufhw`, `pshuflw`.
fn pshuf(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    let s = src(cpu, mem, i, 1)?;
    let imm = i.immediate8() as usize;
    let sel = |k: usize| (imm >> (2 * k)) & 3;
    let r = match i.mnemonic() {
        Mnemonic::Pshufd => {
            let d = lanes::<4>(s);
            join::<4>(core::array::from_fn(|k| d[sel(k)]))
        }
        m => {
            let w = lanes::<8>(s);
            let base = if m == Mnemonic::Pshufhw { 4 } else { 0 };
            join::<8>(core::array::from_fn(|k| if k / 4 * 4 == base { w[base + sel(k % 4)] } else { w[k] }))
        }
    };
    cpu.xmm[xr(i.op0_register())] = r;
    Ok(())
}

/// `shufps`, `shufpd`.
fn shuf(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    let s = src(cpu, mem, i, 1)?;
    let d = xr(i.op0_register());
    let imm = i.immediate8() as usize;
    cpu.xmm[d] = if i.mnemonic() == Mnemonic::Shufps {
        let (a, b) = (lanes::<4>(cpu.xmm[d]), lanes::<4>(s));
        join::<4>([a[imm & 3], a[(imm >> 2) & 3], b[(imm >> 4) & 3], b[(imm >> 6) & 3]])
    } else {
        let (a, b) = (lanes::<2>(cpu.xmm[d]), lanes::<2>(s));
        join::<2>([a[imm & 1], b[(imm >> 1) & 1]])
    };
    Ok(())
}

/// `pblendw`, `blendps`, `blendpd`.
fn blend_imm(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    let s = src(cpu, mem, i, 1)?;
    let d = xr(i.op0_register());
    let imm = i.immediate8() as u32;
    let (n, bits) = match i.mnemonic() {
        Mnemonic::Pblendw => (8, 16),
        Mnemonic::Blendps => (4, 32),
        _ => (2, 64),
    };
    let lane = u128::MAX >> (128 - bits);
    let m = (0..n).filter(|k| imm >> k & 1 != 0).fold(0u128, |acc, k| acc | lane << (bits * k));
    cpu.xmm[d] = (cpu.xmm[d] & !m) | (s & m);
    Ok(())
}

/// `palignr xmm1, xmm2/m128, imm8`: bytes `imm..imm+16` of `xmm1:xmm2`.
fn palignr(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    let s = src(cpu, mem, i, 1)?;
    let d = xr(i.op0_register());
    let mut cat = [0u8; 32];
    cat[..16].copy_from_slice(&s.to_le_bytes());
    cat[16..].copy_from_slice(&cpu.xmm[d].to_le_bytes());
    let imm = i.immediate8() as usize;
    let r: [u8; 16] = core::array::from_fn(|k| cat.get(k + imm).copied().unwrap_or(0));
    cpu.xmm[d] = u128::from_le_bytes(r);
    Ok(())
}

/// `insertps xmm1, xmm2/m32, imm8`.
fn insertps(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    let imm = i.immediate8() as usize;
    let v = if i.op1_kind() == OpKind::Register {
        lanes::<4>(cpu.xmm[xr(i.op1_register())])[imm >> 6]
    } else {
        mem.read_u32(ea(cpu, i))? as u128
    };
    let d = xr(i.op0_register());
    let mut a = lanes::<4>(cpu.xmm[d]);
    a[(imm >> 4) & 3] = v;
    for (k, x) in a.iter_mut().enumerate() {
        if imm >> k & 1 != 0 {
            *x = 0;
        }
    }
    cpu.xmm[d] = join::<4>(a);
    Ok(())
}

/// Lane width in bytes of `pinsr*`/`pextr*`/`extractps`.
pub(crate) fn lane_bytes(m: Mnemonic) -> u32 {
    match m {
        Mnemonic::Pinsrb | Mnemonic::Pextrb | Mnemonic::Vpinsrb | Mnemonic::Vpextrb => 1,
        Mnemonic::Pinsrw | Mnemonic::Pextrw | Mnemonic::Vpinsrw | Mnemonic::Vpextrw => 2,
        Mnemonic::Pinsrq | Mnemonic::Pextrq | Mnemonic::Vpinsrq | Mnemonic::Vpextrq => 8,
        _ => 4,
    }
}

/// `pinsrb`, `pinsrw`, `pinsrd`, `pinsrq`.
fn pinsr(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    let b = lane_bytes(i.mnemonic());
    let v = if i.op1_kind() == OpKind::Register {
        get_gpr(cpu, gpr(i.op1_register()).ok_or(Trap::InvalidOpcode)?)
    } else {
        mem.read_sized(ea(cpu, i), b as u8)?
    };
    let lane = u128::MAX >> (128 - 8 * b);
    let sh = (i.immediate8() as u32 % (16 / b)) * 8 * b;
    let d = xr(i.op0_register());
    cpu.xmm[d] = (cpu.xmm[d] & !(lane << sh)) | ((v as u128 & lane) << sh);
    Ok(())
}

/// `pextrb`, `pextrw`, `pextrd`, `pextrq`, `extractps`: the lane, zero-extended
/// into a general register or stored with its own width.
pub(crate) fn pextr(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    let b = lane_bytes(i.mnemonic());
    let sh = (i.immediate8() as u32 % (16 / b)) * 8 * b;
    let v = (cpu.xmm[xr(i.op1_register())] >> sh) as u64 & mask(b as u8);
    if i.op0_kind() == OpKind::Register {
        let g = gpr(i.op0_register()).ok_or(Trap::InvalidOpcode)?;
        set_gpr(cpu, g, v);
        Ok(())
    } else {
        mem.write_sized(ea(cpu, i), b as u8, v)
    }
}

/// Shifts by an immediate: `psllw/d/q`, `psrlw/d/q`, `psraw/d`, `pslldq`, `psrldq`.
fn shift_imm(cpu: &mut Cpu, _: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    let d = xr(i.op0_register());
    cpu.xmm[d] = shift_by_imm(i.mnemonic(), cpu.xmm[d], i.immediate8() as u32);
    Ok(())
}

/// The lanes of `x` shifted by `n` as the shift-by-immediate `m` does (also the MMX
/// forms, on a 64-bit value in the low half).
pub(crate) fn shift_by_imm(m: Mnemonic, x: u128, n: u32) -> u128 {
    use Mnemonic as M;
    fn each<const N: usize>(x: u128, f: impl Fn(u128) -> u128) -> u128 {
        join::<N>(lanes::<N>(x).map(f))
    }
    fn sar<const N: usize>(x: u128, n: u32) -> u128 {
        let bits = 128 / N as u32;
        let n = n.min(bits - 1);
        each::<N>(x, |v| {
            let s = (v << (128 - bits)) as i128 >> (128 - bits);
            (s >> n) as u128
        })
    }
    let shl = |bits: u32, v: u128| if n < bits { v << n } else { 0 };
    let shr = |bits: u32, v: u128| if n < bits { v >> n } else { 0 };
    match m {
        M::Psllw => each::<8>(x, |v| shl(16, v)),
        M::Pslld => each::<4>(x, |v| shl(32, v)),
        M::Psllq => each::<2>(x, |v| shl(64, v)),
        M::Psrlw => each::<8>(x, |v| shr(16, v)),
        M::Psrld => each::<4>(x, |v| shr(32, v)),
        M::Psrlq => each::<2>(x, |v| shr(64, v)),
        M::Psraw => sar::<8>(x, n),
        M::Psrad => sar::<4>(x, n),
        M::Pslldq if n < 16 => x << (8 * n),
        M::Psrldq if n < 16 => x >> (8 * n),
        _ => 0,
    }
}

/// `mpsadbw xmm1, xmm2/m128, imm8`.
fn mpsadbw(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    let s = src(cpu, mem, i, 1)?.to_le_bytes();
    let d = xr(i.op0_register());
    let a = cpu.xmm[d].to_le_bytes();
    let imm = i.immediate8() as usize;
    let (so, dof) = ((imm & 3) * 4, ((imm >> 2) & 1) * 4);
    let r: [u128; 8] = core::array::from_fn(|j| (0..4).map(|k| a[dof + j + k].abs_diff(s[so + k]) as u128).sum());
    cpu.xmm[d] = join::<8>(r);
    Ok(())
}

/// `ptest xmm1, xmm2/m128`: ZF if `xmm1 & src` is zero, CF if `!xmm1 & src` is.
fn ptest(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    let s = src(cpu, mem, i, 1)?;
    let d = cpu.xmm[xr(i.op0_register())];
    let mut f = 0;
    if d & s == 0 {
        f |= ZF;
    }
    if !d & s == 0 {
        f |= CF;
    }
    cpu.rflags = (cpu.rflags & !STATUS) | f;
    Ok(())
}

/// `crc32 r32|64, r/m8|16|32|64`: CRC-32C (Castagnoli), reflected, with no
/// final inversion; the 64-bit form zero-extends the 32-bit result.
fn crc32(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    let size = op_size(i, 1);
    let v = operand::read(cpu, mem, i, 1, size)?;
    let g = gpr(i.op0_register()).ok_or(Trap::InvalidOpcode)?;
    let mut c = cpu.gpr[g.idx] as u32;
    for byte in &v.to_le_bytes()[..size as usize] {
        c ^= *byte as u32;
        for _ in 0..8 {
            c = (c >> 1) ^ (0x82f6_3b78 & (c & 1).wrapping_neg());
        }
    }
    set_gpr(cpu, g, c as u64);
    Ok(())
}

// ---- selection -------------------------------------------------------------------

macro_rules! select_two_op {
    ($fname:ident, $handler:ident; $($n:ident)*) => {
        fn $fname(m: Mnemonic) -> Option<Handler> {
            Some(match m {
                $(Mnemonic::$n => $handler::<host::$n> as Handler,)*
                _ => return None,
            })
        }
    };
}
macro_rules! sel_vec {
    ($($n:ident)*) => { select_two_op!(select_vec, vec_op; $($n)*); };
}
macro_rules! sel_fp {
    ($($n:ident)*) => { select_two_op!(select_fp, fp_op; $($n)*); };
}
macro_rules! sel_flags {
    ($($n:ident)*) => { select_two_op!(select_flags, flags_op; $($n)*); };
}
with_vec_ops!(sel_vec);
with_fp_ops!(sel_fp);
with_flag_ops!(sel_flags);

/// Picks the handler for an MMX or SSE..SSE4.2 instruction (plus `crc32`, `movnti`);
/// `None` for anything else, VEX forms included.
pub(crate) fn select(i: &Instruction) -> Option<Handler> {
    use Mnemonic as M;
    if i.encoding() != EncodingKind::Legacy || i.has_lock_prefix() {
        return None;
    }
    if let Some(h) = mmx::select(i) {
        return Some(h);
    }
    if (0..i.op_count()).any(|n| i.op_kind(n) == OpKind::Register && i.op_register(n).is_mm()) {
        return None;
    }
    let m = i.mnemonic();
    let imm = i.immediate8() as usize;
    let imm_shift = i.op_count() == 2 && i.op1_kind() == OpKind::Immediate8;
    let h: Handler = match m {
        M::Psllw | M::Pslld | M::Psllq | M::Psrlw | M::Psrld | M::Psrlq | M::Psraw | M::Psrad if imm_shift => shift_imm,
        M::Pslldq | M::Psrldq => shift_imm,
        M::Movaps | M::Movups | M::Movapd | M::Movupd | M::Movdqa | M::Movdqu | M::Lddqu => mov_full,
        M::Movntps | M::Movntpd | M::Movntdq | M::Movntdqa => mov_full,
        M::Movss => mov_scalar::<4>,
        M::Movsd => mov_scalar::<8>,
        M::Movd | M::Movq => mov_dq,
        M::Movlps | M::Movlpd => mov_half::<false>,
        M::Movhps | M::Movhpd => mov_half::<true>,
        M::Movhlps | M::Movlhps => mov_hl_lh,
        M::Movmskps | M::Movmskpd | M::Pmovmskb => movmsk,
        M::Movnti => movnti,
        M::Maskmovdqu => maskmovdqu,
        M::Ldmxcsr => ldmxcsr,
        M::Stmxcsr => stmxcsr,
        M::Pshufd | M::Pshufhw | M::Pshuflw => pshuf,
        M::Shufps | M::Shufpd => shuf,
        M::Pblendw | M::Blendps | M::Blendpd => blend_imm,
        M::Palignr => palignr,
        M::Insertps => insertps,
        M::Pinsrb | M::Pinsrw | M::Pinsrd | M::Pinsrq => pinsr,
        M::Pextrb | M::Pextrw | M::Pextrd | M::Pextrq | M::Extractps => pextr,
        M::Mpsadbw => mpsadbw,
        M::Ptest => ptest,
        M::Crc32 => crc32,
        M::Pand | M::Andps | M::Andpd => int_op::<AND>,
        M::Pandn | M::Andnps | M::Andnpd => int_op::<ANDN>,
        M::Por | M::Orps | M::Orpd => int_op::<OR>,
        M::Pxor | M::Xorps | M::Xorpd => int_op::<XOR>,
        M::Paddd => int_op::<ADDD>,
        M::Psubd => int_op::<SUBD>,
        M::Paddq => int_op::<ADDQ>,
        M::Psubq => int_op::<SUBQ>,
        M::Pcmpeqb => int_op::<CMPEQB>,
        M::Pblendvb => vec_op::<host::Pblendvb>,
        M::Sha256rnds2 => vec_op::<host::Sha256rnds2>,
        M::Aeskeygenassist => aeskeygenassist,
        // Only imm8 bits 0 and 4 select (the quadwords); the others are ignored.
        M::Pclmulqdq => {
            use host::Pclmulqdq as P;
            [vec_op::<P<0>>, vec_op::<P<1>>, vec_op::<P<16>>, vec_op::<P<17>>][(imm & 1) | (imm >> 3) & 2]
        }
        M::Sha1rnds4 => {
            use host::Sha1rnds4 as S;
            [vec_op::<S<0>>, vec_op::<S<1>>, vec_op::<S<2>>, vec_op::<S<3>>][imm & 3]
        }
        M::Blendvps => vec_op::<host::Blendvps>,
        M::Blendvpd => vec_op::<host::Blendvpd>,
        M::Cvtsi2ss if op_size(i, 1) == 8 => cvt_from_gpr::<host::Cvtsi2ss64>,
        M::Cvtsi2ss => cvt_from_gpr::<host::Cvtsi2ss32>,
        M::Cvtsi2sd if op_size(i, 1) == 8 => cvt_from_gpr::<host::Cvtsi2sd64>,
        M::Cvtsi2sd => cvt_from_gpr::<host::Cvtsi2sd32>,
        M::Cvtss2si if op_size(i, 0) == 8 => cvt_to_gpr::<host::Cvtss2si64>,
        M::Cvtss2si => cvt_to_gpr::<host::Cvtss2si32>,
        M::Cvttss2si if op_size(i, 0) == 8 => cvt_to_gpr::<host::Cvttss2si64>,
        M::Cvttss2si => cvt_to_gpr::<host::Cvttss2si32>,
        M::Cvtsd2si if op_size(i, 0) == 8 => cvt_to_gpr::<host::Cvtsd2si64>,
        M::Cvtsd2si => cvt_to_gpr::<host::Cvtsd2si32>,
        M::Cvttsd2si if op_size(i, 0) == 8 => cvt_to_gpr::<host::Cvttsd2si64>,
        M::Cvttsd2si => cvt_to_gpr::<host::Cvttsd2si32>,
        M::Cmpps => imm_table!(8, fp_op, Cmpps)[imm & 7],
        M::Cmppd => imm_table!(8, fp_op, Cmppd)[imm & 7],
        M::Cmpss => imm_table!(8, fp_op, Cmpss)[imm & 7],
        M::Cmpsd => imm_table!(8, fp_op, Cmpsd)[imm & 7],
        M::Roundps => imm_table!(16, fp_op, Roundps)[imm & 15],
        M::Roundpd => imm_table!(16, fp_op, Roundpd)[imm & 15],
        M::Roundss => imm_table!(16, fp_op, Roundss)[imm & 15],
        M::Roundsd => imm_table!(16, fp_op, Roundsd)[imm & 15],
        M::Dpps => imm_table!(256, fp_op, Dpps)[imm >> 4][imm & 15],
        M::Dppd => imm_table!(256, fp_op, Dppd)[imm >> 4][imm & 15],
        M::Pcmpestri | M::Pcmpestri64 | M::Pcmpestrm | M::Pcmpestrm64 | M::Pcmpistri | M::Pcmpistrm => {
            return pcmpstr_handler(i)
        }
        _ => return select_vec(m).or_else(|| select_fp(m)).or_else(|| select_flags(m)),
    };
    Some(h)
}
