//! AVX, AVX2, FMA, F16C and the VEX forms of AES-NI and PCLMULQDQ; the XSAVE family.
//!
//! Registers: `Cpu::xmm` holds bits 127:0 of YMM0..15 and `Cpu::ymm_hi` bits 255:128.
//! A VEX instruction writes its whole destination register: a VEX.128 form zeroes bits
//! 255:128 (legacy SSE forms, in `sse`, leave them alone), as the manuals say.
//!
//! Design: as for SSE, everything that computes runs *on the host* (`host`, whose
//! `table.rs` has one line per form: iced's `Code`, whether it runs under MXCSR, where its
//! result goes, and the host template), so floating point, FMA's single rounding, the
//! F16C conversions and AES rounds are bit-exact with hardware by construction. Data
//! movement, and the forms whose immediate selects data (shuffles, blends, permutes,
//! inserts, extracts, shifts by an immediate), are plain Rust here: a host copy per
//! immediate would multiply the build, and selection is exact anyway. Gathers and masked
//! moves are Rust too, because they access memory element by element.
//!
//! Memory operands: VEX forms never fault on misalignment except the explicitly aligned
//! moves (`vmovaps`, `vmovdqa`, `vmovntdq`, ...: #GP unless aligned to the operand size).
//! All reads, and the check of a write, happen before any register changes.

pub(crate) mod fast;
pub(crate) mod host;
pub(crate) mod xsave;

use iced_x86::{EncodingKind, Instruction, Mnemonic, OpKind, Register};

use self::host::{HostV, Out, VSt};
use super::operand::{ea, get_gpr, gpr, set_gpr};
use super::sse;
use super::{Handler, Op, Trap};
use crate::cpu::flags::STATUS;
use crate::cpu::Cpu;
use crate::memory::Memory;

type R = Result<(), Trap>;
/// A ymm register as its low and high 128-bit halves.
type Y = [u128; 2];

/// Index of an xmm or ymm register.
#[inline(always)]
fn vr(r: Register) -> usize {
    let base = if r.is_ymm() { Register::YMM0 } else { Register::XMM0 };
    (r as usize).wrapping_sub(base as usize) & 15
}

#[inline(always)]
fn get(cpu: &Cpu, r: usize) -> Y {
    [cpu.xmm[r], cpu.ymm_hi[r]]
}

#[inline(always)]
fn set(cpu: &mut Cpu, r: usize, v: Y) {
    cpu.xmm[r] = v[0];
    cpu.ymm_hi[r] = v[1];
}

/// Writes a VEX destination register: a 128-bit result zeroes bits 255:128.
#[inline(always)]
fn set_dst(cpu: &mut Cpu, i: &Instruction, n: u32, v: Y) {
    let r = i.op_register(n);
    set(cpu, vr(r), if r.is_ymm() { v } else { [v[0], 0] });
}

/// Operand `n`'s register as a ymm value.
#[inline(always)]
fn reg(cpu: &Cpu, i: &Instruction, n: u32) -> Y {
    get(cpu, vr(i.op_register(n)))
}

/// Reads `size` bytes (at most 32) at `a` into the low bytes of a ymm value.
fn read_vec(mem: &mut Memory, a: u64, size: usize) -> Result<Y, Trap> {
    Ok(match size {
        32 => {
            // Both halves are read before anything is written, so a fault in the second
            // leaves no trace.
            let lo = mem.read_u128(a)?;
            [lo, mem.read_u128(a.wrapping_add(16))?]
        }
        16 => [mem.read_u128(a)?, 0],
        8 | 4 | 2 | 1 => [mem.read_sized(a, size as u8)? as u128, 0],
        _ => return Err(Trap::InvalidOpcode),
    })
}

/// Writes the low `size` bytes of `v` to `a`; nothing is written if any byte faults.
fn write_vec(mem: &mut Memory, a: u64, size: usize, v: Y) -> R {
    match size {
        32 => {
            mem.probe_write(a, 32)?;
            mem.write_u128(a, v[0])?;
            mem.write_u128(a.wrapping_add(16), v[1])
        }
        16 => mem.write_u128(a, v[0]),
        8 | 4 | 2 | 1 => mem.write_sized(a, size as u8, v[0] as u64),
        _ => Err(Trap::InvalidOpcode),
    }
}

/// Operand `n` (register or memory, the instruction's memory width) as a ymm value.
#[inline]
fn src(cpu: &Cpu, mem: &mut Memory, i: &Instruction, n: u32) -> Result<Y, Trap> {
    if i.op_kind(n) == OpKind::Register {
        Ok(reg(cpu, i, n))
    } else {
        read_vec(mem, ea(cpu, i), i.memory_size().size())
    }
}

/// The aligned moves: #GP unless the address is a multiple of the operand size.
fn check_align(i: &Instruction, a: u64) -> R {
    use Mnemonic as M;
    let aligned = matches!(
        i.mnemonic(),
        M::Vmovaps | M::Vmovapd | M::Vmovdqa | M::Vmovntps | M::Vmovntpd | M::Vmovntdq | M::Vmovntdqa
    );
    if aligned && !a.is_multiple_of(i.memory_size().size() as u64) {
        Err(Trap::GeneralProtection)
    } else {
        Ok(())
    }
}

// ---- host-executed forms ---------------------------------------------------------------

impl sse::FpState for VSt {
    fn mx_in(&mut self) -> &mut u32 {
        &mut self.mx_in
    }
    fn mx_out(&self) -> u32 {
        self.mx_out
    }
    fn sources(&self) -> sse::post::Sources {
        [self.y[0], self.y[1], self.y[2]]
    }
}

pub(crate) fn run_host<H: HostV>(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    run_host_with(cpu, mem, op, H::run, H::FP, H::OUT)
}

/// The one body behind every host-executed form (see `host` for the register roles).
#[inline(never)]
fn run_host_with(cpu: &mut Cpu, mem: &mut Memory, op: &Op, run: fn(&mut VSt), fp: bool, out: Out) -> R {
    let i = &op.insn;
    let count = i.op_count();
    let n = count - (count > 0 && i.op_kind(count - 1) == OpKind::Immediate8) as u32;
    let mut s = VSt::default();
    let (reg_op, rm_op) = match out {
        Out::Y3 => (1, 0),
        _ if n == 4 => (0, 2),
        _ => (0, n - 1),
    };
    if out != Out::G {
        s.y[0] = reg(cpu, i, reg_op);
    }
    if n >= 3 {
        s.y[1] = reg(cpu, i, 1);
    }
    if n == 4 {
        s.y[3] = reg(cpu, i, 3);
    }
    let mut store = None;
    if i.op_kind(rm_op) == OpKind::Register {
        let r = i.op_register(rm_op);
        if out == Out::Y1G {
            s.g = get_gpr(cpu, gpr(r).ok_or(Trap::InvalidOpcode)?);
        } else if out != Out::Y3 {
            s.y[2] = get(cpu, vr(r));
        }
    } else {
        let a = ea(cpu, i);
        let size = i.memory_size().size();
        match out {
            Out::Y1G => s.g = mem.read_sized(a, size as u8)?,
            // Computed first: MXCSR flags and #XM come before a fault of the store.
            Out::Y3 => store = Some((a, size)),
            _ => s.y[2] = read_vec(mem, a, size)?,
        }
    }
    if fp {
        sse::fp_run(cpu, &mut s, run, i)?;
    } else {
        run(&mut s);
    }
    match out {
        Out::Y1 | Out::Y1G => set(cpu, vr(i.op_register(reg_op)), s.y[0]),
        Out::Y3 => match store {
            Some((a, size)) => write_vec(mem, a, size, s.y[2])?,
            None => set(cpu, vr(i.op_register(rm_op)), s.y[2]),
        },
        Out::G => set_gpr(cpu, gpr(i.op0_register()).ok_or(Trap::InvalidOpcode)?, s.g),
        Out::F => cpu.rflags = (cpu.rflags & !STATUS) | (s.flags & STATUS),
    }
    Ok(())
}

// ---- the integer operations of string functions and vectorised loops -----------------------

/// One 128-bit lane of a lane-wise integer operation, with the host's SSE2 intrinsics (the
/// x86-64 baseline): the AVX2 forms glibc's string functions and compiled loops run most,
/// too cheap for a host-instruction round trip.
#[inline(always)]
fn int_lane<const K: u8>(a: u128, b: u128) -> u128 {
    use core::arch::x86_64::*;
    // SAFETY: u128 and __m128i are 16 bytes of plain data; the intrinsics need SSE2 only.
    unsafe {
        let (x, y) = (core::mem::transmute::<u128, __m128i>(a), core::mem::transmute::<u128, __m128i>(b));
        let r = match K {
            AND => return a & b,
            ANDN => return !a & b,
            OR => return a | b,
            XOR => return a ^ b,
            CMPEQB => _mm_cmpeq_epi8(x, y),
            CMPEQW => _mm_cmpeq_epi16(x, y),
            CMPEQD => _mm_cmpeq_epi32(x, y),
            MINUB => _mm_min_epu8(x, y),
            MAXUB => _mm_max_epu8(x, y),
            ADDB => _mm_add_epi8(x, y),
            ADDW => _mm_add_epi16(x, y),
            ADDD => _mm_add_epi32(x, y),
            ADDQ => _mm_add_epi64(x, y),
            SUBB => _mm_sub_epi8(x, y),
            SUBW => _mm_sub_epi16(x, y),
            SUBD => _mm_sub_epi32(x, y),
            _ => _mm_sub_epi64(x, y),
        };
        core::mem::transmute::<__m128i, u128>(r)
    }
}

const AND: u8 = 0;
const ANDN: u8 = 1;
const OR: u8 = 2;
const XOR: u8 = 3;
const CMPEQB: u8 = 4;
const CMPEQW: u8 = 5;
const CMPEQD: u8 = 6;
const MINUB: u8 = 7;
const MAXUB: u8 = 8;
const ADDB: u8 = 9;
const ADDW: u8 = 10;
const ADDD: u8 = 11;
const ADDQ: u8 = 12;
const SUBB: u8 = 13;
const SUBW: u8 = 14;
const SUBD: u8 = 15;
const SUBQ: u8 = 16;

/// `vpmovmskb r32/64, xmm/ymm`: the byte sign bits.
fn pmovmskb(cpu: &mut Cpu, _: &mut Memory, op: &Op) -> R {
    use core::arch::x86_64::{__m128i, _mm_movemask_epi8};
    let i = &op.insn;
    let v = reg(cpu, i, 1);
    // SAFETY: as in `int_lane`.
    let m = |x: u128| unsafe { _mm_movemask_epi8(core::mem::transmute::<u128, __m128i>(x)) as u32 as u64 };
    let r = if i.op1_register().is_ymm() { m(v[0]) | m(v[1]) << 16 } else { m(v[0]) };
    set_gpr(cpu, gpr(i.op0_register()).ok_or(Trap::InvalidOpcode)?, r);
    Ok(())
}

/// `vptest`: ZF if `dst & src` is zero, CF if `!dst & src` is; the others clear.
fn ptest(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    use crate::cpu::flags::{CF, ZF};
    let i = &op.insn;
    let (mut s, mut d) = (src(cpu, mem, i, 1)?, reg(cpu, i, 0));
    if !i.op0_register().is_ymm() {
        (s[1], d[1]) = (0, 0);
    }
    let zf = (d[0] & s[0]) | (d[1] & s[1]) == 0;
    let cf = (!d[0] & s[0]) | (!d[1] & s[1]) == 0;
    cpu.rflags = (cpu.rflags & !STATUS) | if zf { ZF } else { 0 } | if cf { CF } else { 0 };
    Ok(())
}

// ---- data movement -----------------------------------------------------------------------

/// `vmovaps`/`vmovups`/`vmovdqa`/`vmovdqu`/`vlddqu`/`vmovnt*`: loads, stores, copies.
fn mov_full(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    if i.op0_kind() == OpKind::Register {
        if i.op1_kind() != OpKind::Register {
            check_align(i, ea(cpu, i))?;
        }
        let v = src(cpu, mem, i, 1)?;
        set_dst(cpu, i, 0, v);
        Ok(())
    } else {
        let a = ea(cpu, i);
        check_align(i, a)?;
        write_vec(mem, a, i.memory_size().size(), reg(cpu, i, 1))
    }
}

/// `vmovss`/`vmovsd`: the register forms merge into the first source, loads zero-extend,
/// stores write the low element.
fn mov_scalar(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    let m = if i.mnemonic() == Mnemonic::Vmovss { u32::MAX as u128 } else { u64::MAX as u128 };
    match (i.op0_kind(), i.op_count()) {
        (OpKind::Register, 3) => {
            let v = (cpu.xmm[vr(i.op1_register())] & !m) | (cpu.xmm[vr(i.op2_register())] & m);
            set_dst(cpu, i, 0, [v, 0]);
            Ok(())
        }
        (OpKind::Register, _) => {
            let v = src(cpu, mem, i, 1)?;
            set_dst(cpu, i, 0, v);
            Ok(())
        }
        _ => write_vec(mem, ea(cpu, i), i.memory_size().size(), reg(cpu, i, 1)),
    }
}

/// `vmovd`/`vmovq` between xmm and general registers or memory, `vmovq xmm, xmm/m64`.
fn mov_dq(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    let size = if i.mnemonic() == Mnemonic::Vmovd { 4 } else { 8 };
    let mask = if size == 4 { u32::MAX as u128 } else { u64::MAX as u128 };
    let read = |cpu: &Cpu, mem: &mut Memory, n: u32| -> Result<u128, Trap> {
        Ok(match i.op_kind(n) {
            OpKind::Register => {
                let r = i.op_register(n);
                match gpr(r) {
                    Some(g) => get_gpr(cpu, g) as u128,
                    None => cpu.xmm[vr(r)],
                }
            }
            _ => mem.read_sized(ea(cpu, i), size as u8)? as u128,
        } & mask)
    };
    let v = read(cpu, mem, 1)?;
    match i.op0_kind() {
        OpKind::Register => {
            let r = i.op0_register();
            match gpr(r) {
                Some(g) => set_gpr(cpu, g, v as u64),
                None => set(cpu, vr(r), [v, 0]),
            }
            Ok(())
        }
        _ => mem.write_sized(ea(cpu, i), size as u8, v as u64),
    }
}

/// `vmovlps/lpd/hps/hpd` (loads merge into the first source; stores write 8 bytes) and
/// `vmovhlps`/`vmovlhps`.
fn mov_half(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    use Mnemonic as M;
    let i = &op.insn;
    let lo = u64::MAX as u128;
    let m = i.mnemonic();
    if i.op0_kind() != OpKind::Register {
        let x = cpu.xmm[vr(i.op1_register())];
        let v = if matches!(m, M::Vmovhps | M::Vmovhpd) { x >> 64 } else { x & lo };
        return mem.write_u64(ea(cpu, i), v as u64);
    }
    let a = cpu.xmm[vr(i.op1_register())];
    let b = if i.op2_kind() == OpKind::Register { cpu.xmm[vr(i.op2_register())] } else { src(cpu, mem, i, 2)?[0] };
    let v = match m {
        M::Vmovlps | M::Vmovlpd => (a & !lo) | (b & lo),
        M::Vmovhps | M::Vmovhpd | M::Vmovlhps => (a & lo) | (b << 64),
        _ => (a & !lo) | (b >> 64), // vmovhlps
    };
    set_dst(cpu, i, 0, [v, 0]);
    Ok(())
}

/// Element width in bits of the broadcasts.
fn bcast_bits(m: Mnemonic) -> u32 {
    use Mnemonic as M;
    match m {
        M::Vpbroadcastb => 8,
        M::Vpbroadcastw => 16,
        M::Vpbroadcastd | M::Vbroadcastss => 32,
        M::Vpbroadcastq | M::Vbroadcastsd => 64,
        _ => 128,
    }
}

/// `vbroadcastss/sd/f128/i128`, `vpbroadcastb/w/d/q`: the source's low element in every
/// element of the destination.
fn broadcast(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    let bits = bcast_bits(i.mnemonic());
    let x = src(cpu, mem, i, 1)?[0] & (u128::MAX >> (128 - bits));
    let lane = (0..128 / bits).fold(0u128, |acc, k| acc | x << (bits * k));
    set_dst(cpu, i, 0, [lane, lane]);
    Ok(())
}

/// Masked loads and stores: `vmaskmovps/pd`, `vpmaskmovd/q`. Only the selected elements
/// are accessed (and can fault); a store checks every selected element before writing.
/// Known difference: a store whose selected elements fault near a page boundary reports
/// the first faulting byte, where hardware sometimes reports another address of the
/// operand (measured: the last byte, or the start of a later element).
fn maskmov(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    let bits: u32 = if matches!(i.mnemonic(), Mnemonic::Vmaskmovpd | Mnemonic::Vpmaskmovq) { 64 } else { 32 };
    let bytes = bits / 8;
    let size = i.memory_size().size() as u32;
    let a = ea(cpu, i);
    // The mask is operand 1 in both directions: `vmaskmovps xmm1, xmm2(mask), m128` and
    // `vmaskmovps m128, xmm1(mask), xmm2`.
    let load = i.op0_kind() == OpKind::Register;
    let mask = reg(cpu, i, 1);
    let elem = |v: &Y, k: u32| -> u128 {
        let b = k * bits;
        (v[(b / 128) as usize] >> (b % 128)) & (u128::MAX >> (128 - bits))
    };
    let selected = |k: u32| elem(&mask, k) >> (bits - 1) & 1 != 0;
    let addr = |k: u32| a.wrapping_add((k * bytes) as u64);
    if load {
        let mut v: Y = [0, 0];
        for k in (0..size / bytes).filter(|&k| selected(k)) {
            let x = mem.read_sized(addr(k), bytes as u8)? as u128;
            let b = k * bits;
            v[(b / 128) as usize] |= x << (b % 128);
        }
        set_dst(cpu, i, 0, v);
        Ok(())
    } else {
        let data = reg(cpu, i, 2);
        for k in (0..size / bytes).filter(|&k| selected(k)) {
            mem.probe_write(addr(k), bytes as u64)?;
        }
        for k in (0..size / bytes).filter(|&k| selected(k)) {
            mem.write_sized(addr(k), bytes as u8, elem(&data, k) as u64)?;
        }
        Ok(())
    }
}

/// Gathers: `vpgatherdd/dq/qd/qq`, `vgatherdps/dpd/qps/qpd`. Elements whose mask sign bit
/// is set are loaded in order, each clearing its mask element; a fault leaves the
/// elements loaded so far in the destination and their mask elements cleared, so the
/// instruction restarts where it stopped (as on hardware). At the end the mask is zero.
fn gather(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    use Mnemonic as M;
    let i = &op.insn;
    let m = i.mnemonic();
    let ebits: u32 = if matches!(m, M::Vpgatherdq | M::Vpgatherqq | M::Vgatherdpd | M::Vgatherqpd) { 64 } else { 32 };
    let ibits: u32 = if matches!(m, M::Vpgatherqd | M::Vpgatherqq | M::Vgatherqps | M::Vgatherqpd) { 64 } else { 32 };
    let dst = vr(i.op0_register());
    let maskr = vr(i.op2_register());
    let index = vr(i.memory_index());
    if dst == maskr || dst == index || maskr == index {
        return Err(Trap::InvalidOpcode);
    }
    let wide = i.op0_register().is_ymm();
    let index_wide = i.memory_index().is_ymm();
    let idx = get(cpu, index);
    // Elements: limited by the narrower of the data and index vectors.
    let dbits = if wide { 256 } else { 128 };
    let xbits = if index_wide { 256 } else { 128 };
    let n = (dbits / ebits).min(xbits / ibits);
    let field = |v: &Y, k: u32, bits: u32| -> u128 {
        let b = k * bits;
        (v[(b / 128) as usize] >> (b % 128)) & (u128::MAX >> (128 - bits))
    };
    let base = match i.memory_base() {
        Register::None => 0,
        r => get_gpr(cpu, gpr(r).ok_or(Trap::InvalidOpcode)?),
    };
    let seg = match i.memory_segment() {
        Register::FS => cpu.fs_base,
        Register::GS => cpu.gs_base,
        _ => 0,
    };
    let scale = i.memory_index_scale() as u64;
    let disp = i.memory_displacement64();
    let addr32 = i.memory_base().is_gpr32();
    let emask = u128::MAX >> (128 - ebits);
    // As on hardware, before any element: the mask becomes all ones in each element
    // whose sign is set and zero elsewhere, over the whole vector length (VEX.L) even
    // past the last gathered element, so a fault leaves it so. In a VEX.128 form the
    // first element loaded zeroes the destination's upper half.
    let mask = get(cpu, maskr);
    let mut clean: Y = [0, 0];
    let vex256 = wide || index_wide;
    let mask_elems = if vex256 { 256 } else { 128 } / ebits;
    for k in (0..mask_elems).filter(|&k| field(&mask, k, ebits) >> (ebits - 1) & 1 != 0) {
        let b = k * ebits;
        clean[(b / 128) as usize] |= emask << (b % 128);
    }
    set(cpu, maskr, clean);
    for k in 0..n {
        let mask = get(cpu, maskr);
        if field(&mask, k, ebits) == 0 {
            continue;
        }
        let ix = field(&idx, k, ibits) as u64;
        let ix = if ibits == 32 { ix as i32 as i64 as u64 } else { ix };
        let mut a = base.wrapping_add(ix.wrapping_mul(scale)).wrapping_add(disp);
        if addr32 {
            a &= 0xffff_ffff;
        }
        let x = mem.read_sized(a.wrapping_add(seg), (ebits / 8) as u8)? as u128;
        let b = k * ebits;
        let (h, sh) = ((b / 128) as usize, b % 128);
        let mut d = get(cpu, dst);
        if !vex256 {
            d[1] = 0;
        }
        d[h] = (d[h] & !(emask << sh)) | x << sh;
        set(cpu, dst, d);
        let mut mk = mask;
        mk[h] &= !(emask << sh);
        set(cpu, maskr, mk);
    }
    set(cpu, dst, clear_past(get(cpu, dst), n * ebits));
    set(cpu, maskr, [0, 0]);
    Ok(())
}

/// `v` with the bits from `keep` up zeroed.
fn clear_past(mut v: Y, keep: u32) -> Y {
    if keep < 128 {
        v[0] &= (1u128 << keep) - 1;
    }
    if keep <= 128 {
        v[1] = 0;
    } else if keep < 256 {
        v[1] &= (1u128 << (keep - 128)) - 1;
    }
    v
}

fn vzeroupper(cpu: &mut Cpu, _: &mut Memory, _: &Op) -> R {
    cpu.ymm_hi = [0; 16];
    Ok(())
}

fn vzeroall(cpu: &mut Cpu, _: &mut Memory, _: &Op) -> R {
    cpu.ymm_hi = [0; 16];
    cpu.xmm = [0; 16];
    Ok(())
}

// ---- immediate-selected data movement ---------------------------------------------------

/// The lane operation each 128-bit lane of a VEX form performs, given the legacy
/// mnemonic, the lane's first and second sources and the lane's immediate.
fn lane_op(m: Mnemonic, a: u128, b: u128, imm: u32) -> u128 {
    use sse::{join, lanes};
    use Mnemonic as M;
    let sel = |k: u32| (imm >> (2 * k)) as usize & 3;
    match m {
        M::Vpshufd | M::Vpermilps => {
            let d = lanes::<4>(b);
            join::<4>(core::array::from_fn(|k| d[sel(k as u32)]))
        }
        M::Vpshufhw | M::Vpshuflw => {
            let w = lanes::<8>(b);
            let base = if m == M::Vpshufhw { 4 } else { 0 };
            join::<8>(core::array::from_fn(|k| if k / 4 * 4 == base { w[base + sel(k as u32 % 4)] } else { w[k] }))
        }
        M::Vshufps => {
            let (x, y) = (lanes::<4>(a), lanes::<4>(b));
            join::<4>([x[sel(0)], x[sel(1)], y[sel(2)], y[sel(3)]])
        }
        M::Vshufpd => {
            let (x, y) = (lanes::<2>(a), lanes::<2>(b));
            join::<2>([x[imm as usize & 1], y[(imm >> 1) as usize & 1]])
        }
        M::Vpermilpd => {
            let x = lanes::<2>(b);
            join::<2>([x[imm as usize & 1], x[(imm >> 1) as usize & 1]])
        }
        M::Vpalignr => {
            let mut cat = [0u8; 32];
            cat[..16].copy_from_slice(&b.to_le_bytes());
            cat[16..].copy_from_slice(&a.to_le_bytes());
            let imm = imm as usize;
            u128::from_le_bytes(core::array::from_fn(|k| cat.get(k + imm).copied().unwrap_or(0)))
        }
        M::Vpblendw | M::Vblendps | M::Vblendpd | M::Vpblendd => {
            let (n, bits) = match m {
                M::Vpblendw => (8, 16),
                M::Vblendpd => (2, 64),
                _ => (4, 32),
            };
            let lane = u128::MAX >> (128 - bits);
            let mk = (0..n).filter(|k| imm >> k & 1 != 0).fold(0u128, |acc, k| acc | lane << (bits * k));
            (a & !mk) | (b & mk)
        }
        M::Vmpsadbw => {
            let (x, y) = (a.to_le_bytes(), b.to_le_bytes());
            let (so, dof) = ((imm as usize & 3) * 4, ((imm as usize >> 2) & 1) * 4);
            join::<8>(core::array::from_fn(|j| (0..4).map(|k| x[dof + j + k].abs_diff(y[so + k]) as u128).sum()))
        }
        _ => {
            // Shifts by an immediate: the legacy lane rule.
            let legacy = match m {
                M::Vpsllw => M::Psllw,
                M::Vpslld => M::Pslld,
                M::Vpsllq => M::Psllq,
                M::Vpsrlw => M::Psrlw,
                M::Vpsrld => M::Psrld,
                M::Vpsrlq => M::Psrlq,
                M::Vpsraw => M::Psraw,
                M::Vpsrad => M::Psrad,
                M::Vpslldq => M::Pslldq,
                _ => M::Psrldq,
            };
            sse::shift_by_imm(legacy, b, imm)
        }
    }
}

/// Forms applying `lane_op` to each 128-bit lane: `op dst, [src1,] src2/m, imm8`. The
/// immediate of the upper lane is the same, except where the form gives each element its
/// own bit (`vblendps/pd`, `vpblendd`, `vshufpd`, `vpermilpd`, `vmpsadbw`).
fn lanewise_imm(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    use Mnemonic as M;
    let i = &op.insn;
    let m = i.mnemonic();
    let n = i.op_count() - 1; // the immediate is last
    let b = src(cpu, mem, i, n - 1)?;
    let a = if n == 3 { reg(cpu, i, 1) } else { b };
    let imm = i.immediate8() as u32;
    let hi_imm = match m {
        M::Vblendps | M::Vpblendd => imm >> 4,
        M::Vblendpd | M::Vshufpd | M::Vpermilpd => imm >> 2,
        M::Vmpsadbw => imm >> 3,
        _ => imm,
    };
    let lo = lane_op(m, a[0], b[0], imm);
    let hi = lane_op(m, a[1], b[1], hi_imm);
    set_dst(cpu, i, 0, [lo, hi]);
    Ok(())
}

/// `vpermq`/`vpermpd ymm1, ymm2/m256, imm8`.
fn permq(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    let s = src(cpu, mem, i, 1)?;
    let q = [s[0] as u64, (s[0] >> 64) as u64, s[1] as u64, (s[1] >> 64) as u64];
    let imm = i.immediate8() as usize;
    let r: [u64; 4] = core::array::from_fn(|k| q[(imm >> (2 * k)) & 3]);
    set_dst(cpu, i, 0, [r[0] as u128 | (r[1] as u128) << 64, r[2] as u128 | (r[3] as u128) << 64]);
    Ok(())
}

/// `vperm2f128`/`vperm2i128 ymm1, ymm2, ymm3/m256, imm8`.
fn perm2x128(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    let b = src(cpu, mem, i, 2)?;
    let a = reg(cpu, i, 1);
    let imm = i.immediate8() as u32;
    let pick = |c: u32| if c & 8 != 0 { 0 } else { [a[0], a[1], b[0], b[1]][(c & 3) as usize] };
    set_dst(cpu, i, 0, [pick(imm), pick(imm >> 4)]);
    Ok(())
}

/// `vinsertf128`/`vinserti128 ymm1, ymm2, xmm3/m128, imm8`.
fn insert128(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    let x = src(cpu, mem, i, 2)?[0];
    let mut v = reg(cpu, i, 1);
    v[(i.immediate8() & 1) as usize] = x;
    set_dst(cpu, i, 0, v);
    Ok(())
}

/// `vextractf128`/`vextracti128 xmm1/m128, ymm2, imm8`.
fn extract128(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    let x = reg(cpu, i, 1)[(i.immediate8() & 1) as usize];
    if i.op0_kind() == OpKind::Register {
        set_dst(cpu, i, 0, [x, 0]);
        Ok(())
    } else {
        mem.write_u128(ea(cpu, i), x)
    }
}

/// `vinsertps xmm1, xmm2, xmm3/m32, imm8`.
fn insertps(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    use sse::{join, lanes};
    let i = &op.insn;
    let imm = i.immediate8() as usize;
    let v = if i.op2_kind() == OpKind::Register {
        lanes::<4>(cpu.xmm[vr(i.op2_register())])[imm >> 6]
    } else {
        mem.read_u32(ea(cpu, i))? as u128
    };
    let mut a = lanes::<4>(cpu.xmm[vr(i.op1_register())]);
    a[(imm >> 4) & 3] = v;
    for (k, x) in a.iter_mut().enumerate() {
        if imm >> k & 1 != 0 {
            *x = 0;
        }
    }
    set_dst(cpu, i, 0, [join::<4>(a), 0]);
    Ok(())
}

/// `vpinsrb/w/d/q xmm1, xmm2, r/m, imm8`.
fn pinsr(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    let b = sse::lane_bytes(i.mnemonic());
    let v = if i.op2_kind() == OpKind::Register {
        get_gpr(cpu, gpr(i.op2_register()).ok_or(Trap::InvalidOpcode)?)
    } else {
        mem.read_sized(ea(cpu, i), b as u8)?
    };
    let lane = u128::MAX >> (128 - 8 * b);
    let sh = (i.immediate8() as u32 % (16 / b)) * 8 * b;
    let a = cpu.xmm[vr(i.op1_register())];
    set_dst(cpu, i, 0, [(a & !(lane << sh)) | ((v as u128 & lane) << sh), 0]);
    Ok(())
}

// ---- selection ------------------------------------------------------------------------------

/// Picks the handler for a VEX-encoded vector instruction (BMI lives in `int`); `None` for
/// anything else.
pub(crate) fn select(i: &Instruction) -> Option<Handler> {
    use Mnemonic as M;
    if i.encoding() != EncodingKind::VEX {
        return None;
    }
    let fast: Option<Handler> = match i.mnemonic() {
        M::Vpmovmskb => Some(pmovmskb),
        M::Vptest => Some(ptest),
        _ => None,
    };
    if let Some(h) = fast.or_else(|| host::handler(i)) {
        return Some(h);
    }
    let imm_shift = i.op_count() == 3 && i.op2_kind() == OpKind::Immediate8 && i.op1_kind() == OpKind::Register;
    let h: Handler = match i.mnemonic() {
        M::Vmovaps | M::Vmovapd | M::Vmovups | M::Vmovupd | M::Vmovdqa | M::Vmovdqu | M::Vlddqu => mov_full,
        M::Vmovntps | M::Vmovntpd | M::Vmovntdq | M::Vmovntdqa => mov_full,
        M::Vmovss | M::Vmovsd => mov_scalar,
        M::Vmovd | M::Vmovq => mov_dq,
        M::Vmovlps | M::Vmovlpd | M::Vmovhps | M::Vmovhpd | M::Vmovhlps | M::Vmovlhps => mov_half,
        M::Vbroadcastss | M::Vbroadcastsd | M::Vbroadcastf128 | M::Vbroadcasti128 => broadcast,
        M::Vpbroadcastb | M::Vpbroadcastw | M::Vpbroadcastd | M::Vpbroadcastq => broadcast,
        M::Vmaskmovps | M::Vmaskmovpd | M::Vpmaskmovd | M::Vpmaskmovq => maskmov,
        M::Vmaskmovdqu => sse::maskmovdqu,
        M::Vpgatherdd | M::Vpgatherdq | M::Vpgatherqd | M::Vpgatherqq => gather,
        M::Vgatherdps | M::Vgatherdpd | M::Vgatherqps | M::Vgatherqpd => gather,
        M::Vzeroupper => vzeroupper,
        M::Vzeroall => vzeroall,
        M::Vldmxcsr => sse::ldmxcsr,
        M::Vstmxcsr => sse::stmxcsr,
        M::Vpermq | M::Vpermpd => permq,
        M::Vperm2f128 | M::Vperm2i128 => perm2x128,
        M::Vinsertf128 | M::Vinserti128 => insert128,
        M::Vextractf128 | M::Vextracti128 => extract128,
        M::Vinsertps => insertps,
        M::Vpinsrb | M::Vpinsrw | M::Vpinsrd | M::Vpinsrq => pinsr,
        M::Vpextrb | M::Vpextrw | M::Vpextrd | M::Vpextrq | M::Vextractps => sse::pextr,
        M::Vpshufd | M::Vpshufhw | M::Vpshuflw | M::Vshufps | M::Vshufpd => lanewise_imm,
        M::Vpermilps | M::Vpermilpd if i.op2_kind() == OpKind::Immediate8 => lanewise_imm,
        M::Vpblendw | M::Vblendps | M::Vblendpd | M::Vpblendd | M::Vpalignr | M::Vmpsadbw => lanewise_imm,
        M::Vpslldq | M::Vpsrldq => lanewise_imm,
        M::Vpsllw | M::Vpslld | M::Vpsllq | M::Vpsrlw | M::Vpsrld | M::Vpsrlq | M::Vpsraw | M::Vpsrad if imm_shift => {
            lanewise_imm
        }
        M::Vpcmpestri | M::Vpcmpestri64 | M::Vpcmpestrm | M::Vpcmpestrm64 | M::Vpcmpistri | M::Vpcmpistrm => {
            return sse::pcmpstr_handler(i)
        }
        M::Vaeskeygenassist => sse::aeskeygenassist,
        _ => return None,
    };
    Some(h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use iced_x86::Code;

    #[test]
    fn table_forms_have_handlers() {
        for c in [Code::VEX_Vaddps_ymm_ymm_ymmm256, Code::VEX_Vfmadd231ps_ymm_ymm_ymmm256] {
            let mut i = Instruction::default();
            i.set_code(c);
            assert!(host::handler(&i).is_some(), "{c:?}");
        }
    }
}
