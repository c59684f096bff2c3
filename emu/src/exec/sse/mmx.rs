//! MMX: the 64-bit integer SIMD instructions on MM0..MM7, and the MMX-register forms of
//! the SSE..SSSE3 instructions (`pshufw`, `pavgb mm`, `pshufb mm`, `cvtpi2ps`, ...).
//!
//! The MMX registers are the significands of the x87 physical registers R0..R7 (see
//! `X87State::mm`). As on hardware, an instruction that touches an MMX register first
//! takes a pending x87 exception (#MF), then, once its memory accesses have succeeded,
//! puts the FPU in MMX mode: TOP = 0 and every register tagged valid; writing MMi also
//! sets the sign and exponent of Ri to all ones. `emms` tags every register empty (and
//! also sets TOP to 0).
//!
//! The arithmetic is the SSE instruction of the same name (the same host instruction, see
//! `host`) on the 64-bit operands placed in 128-bit registers, arranged so that the low
//! 64 bits of the result are the MMX result: element-wise operations take the operands as
//! they are; packs and horizontal operations take `a | b << 64` as both operands (the low
//! half of their result is then `f(a) ++ f(b)`); the unpacks of high halves take the high
//! half of the unpack of low halves.

use iced_x86::{Code, Instruction, OpKind, Register};

use super::host::{self, Host, St};
use super::{fp_run, read_m, shift_by_imm, xr, Run, R};
use crate::cpu::{reg, Cpu};
use crate::exec::operand::{self, ea, get_gpr, gpr, set_gpr};
use crate::exec::x87::wait;
use crate::exec::{Handler, Op, Trap};
use crate::memory::Memory;

/// Index of an MMX register.
#[inline(always)]
fn mr(r: Register) -> usize {
    (r as usize).wrapping_sub(Register::MM0 as usize) & 7
}

/// Operand `n` as an MMX register, or a memory operand of the instruction's width.
#[inline]
fn mm_src(cpu: &Cpu, mem: &mut Memory, i: &Instruction, n: u32) -> Result<u64, Trap> {
    if i.op_kind(n) == OpKind::Register {
        Ok(cpu.x87.mm(mr(i.op_register(n))))
    } else {
        Ok(read_m(mem, i, ea(cpu, i))? as u64)
    }
}

/// Writes MMX register operand 0 and makes the MMX transition.
#[inline]
fn set_mm0(cpu: &mut Cpu, i: &Instruction, v: u64) {
    cpu.x87.set_mm(mr(i.op0_register()), v);
    cpu.x87.enter_mmx();
}

/// How an MMX operation maps onto its 128-bit SSE form (see the module note).
const LANES: u8 = 0;
const PAIRED: u8 = 1;
const HIGH: u8 = 2;

/// `op mm, mm/m64` through the SSE host instruction `H`.
fn lanes<H: Host, const SHAPE: u8>(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    lanes_with(cpu, mem, op, H::run, SHAPE)
}

#[inline(never)]
fn lanes_with(cpu: &mut Cpu, mem: &mut Memory, op: &Op, run: Run, shape: u8) -> R {
    let i = &op.insn;
    wait(cpu)?;
    let b = mm_src(cpu, mem, i, 1)? as u128;
    let a = cpu.x87.mm(mr(i.op0_register())) as u128;
    let (x1, x2) = if shape == PAIRED { (a | b << 64, a | b << 64) } else { (a, b) };
    let mut s = St { x: [0, x1, x2], ..St::default() };
    run(&mut s);
    let r = if shape == HIGH { s.x[1] >> 64 } else { s.x[1] };
    set_mm0(cpu, i, r as u64);
    Ok(())
}

/// `psllw mm, imm8` and the other shifts by an immediate.
fn shift_imm(cpu: &mut Cpu, _: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    wait(cpu)?;
    let a = cpu.x87.mm(mr(i.op0_register())) as u128;
    set_mm0(cpu, i, shift_by_imm(i.mnemonic(), a, i.immediate8() as u32) as u64);
    Ok(())
}

/// `emms`: every register empty, TOP = 0.
fn emms(cpu: &mut Cpu, _: &mut Memory, _: &Op) -> R {
    wait(cpu)?;
    cpu.x87.ftw = 0;
    cpu.x87.set_top(0);
    Ok(())
}

/// `movd`/`movq` into an MMX register (from a general register, memory or MMX register).
fn mov_to_mm(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    wait(cpu)?;
    let v = match i.op1_kind() {
        OpKind::Register if i.op1_register().is_mm() => cpu.x87.mm(mr(i.op1_register())),
        OpKind::Register => get_gpr(cpu, gpr(i.op1_register()).ok_or(Trap::InvalidOpcode)?),
        _ => read_m(mem, i, ea(cpu, i))? as u64,
    };
    set_mm0(cpu, i, v);
    Ok(())
}

/// `movd`/`movq`/`movntq` out of an MMX register (to a general register, memory or MMX
/// register).
fn mov_from_mm(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    wait(cpu)?;
    let v = cpu.x87.mm(mr(i.op1_register()));
    match i.op0_kind() {
        OpKind::Register if i.op0_register().is_mm() => cpu.x87.set_mm(mr(i.op0_register()), v),
        _ => {
            let size = operand::op_size(i, 0);
            if let Err(fault) = operand::write(cpu, mem, i, 0, size, v & operand::mask(size)) {
                // A store that faults has already set TOP to 0, though not the tags (as
                // measured on the host, a Sapphire Rapids core).
                cpu.x87.set_top(0);
                return Err(fault);
            }
        }
    }
    cpu.x87.enter_mmx();
    Ok(())
}

/// `pshufw mm1, mm2/m64, imm8`.
fn pshufw(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    wait(cpu)?;
    let s = mm_src(cpu, mem, i, 1)?;
    let imm = i.immediate8() as u32;
    let r = (0..4).fold(0u64, |acc, k| acc | ((s >> (16 * ((imm >> (2 * k)) & 3))) & 0xffff) << (16 * k));
    set_mm0(cpu, i, r);
    Ok(())
}

/// `pinsrw mm, r32/m16, imm8`.
fn pinsrw(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    wait(cpu)?;
    let v = if i.op1_kind() == OpKind::Register {
        get_gpr(cpu, gpr(i.op1_register()).ok_or(Trap::InvalidOpcode)?)
    } else {
        mem.read_u16(ea(cpu, i))? as u64
    };
    let sh = 16 * (i.immediate8() as u32 & 3);
    let a = cpu.x87.mm(mr(i.op0_register()));
    set_mm0(cpu, i, (a & !(0xffff << sh)) | (v & 0xffff) << sh);
    Ok(())
}

/// `pextrw r32, mm, imm8`.
fn pextrw(cpu: &mut Cpu, _: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    wait(cpu)?;
    let v = cpu.x87.mm(mr(i.op1_register())) >> (16 * (i.immediate8() as u32 & 3)) & 0xffff;
    let g = gpr(i.op0_register()).ok_or(Trap::InvalidOpcode)?;
    set_gpr(cpu, g, v);
    cpu.x87.enter_mmx();
    Ok(())
}

/// `pmovmskb r32, mm`.
fn pmovmskb(cpu: &mut Cpu, _: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    wait(cpu)?;
    let x = cpu.x87.mm(mr(i.op1_register()));
    let m = (0..8).fold(0u64, |acc, k| acc | ((x >> (8 * k + 7)) & 1) << k);
    let g = gpr(i.op0_register()).ok_or(Trap::InvalidOpcode)?;
    set_gpr(cpu, g, m);
    cpu.x87.enter_mmx();
    Ok(())
}

/// `maskmovq mm1, mm2`: the bytes of mm1 selected by the sign bits of mm2 go to
/// `[rdi]` (`[edi]` with an address-size prefix).
fn maskmovq(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    wait(cpu)?;
    let mut a = cpu.gpr[reg::RDI];
    if i.op0_kind() == OpKind::MemorySegEDI {
        a &= 0xffff_ffff;
    }
    a = a.wrapping_add(match i.memory_segment() {
        Register::FS => cpu.fs_base,
        Register::GS => cpu.gs_base,
        _ => 0,
    });
    let data = cpu.x87.mm(mr(i.op1_register())).to_le_bytes();
    let sel = cpu.x87.mm(mr(i.op2_register())).to_le_bytes();
    let selected = || (0u64..).zip(data.iter().zip(sel)).filter(|(_, (_, m))| m & 0x80 != 0);
    for (k, _) in selected() {
        mem.probe_write(a.wrapping_add(k), 1)?;
    }
    for (k, (&b, _)) in selected() {
        mem.write_u8(a.wrapping_add(k), b)?;
    }
    cpu.x87.enter_mmx();
    Ok(())
}

/// `pshufb mm1, mm2/m64`: byte k is 0 if bit 7 of index k is set, else byte
/// `index & 7` of mm1.
fn pshufb(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    wait(cpu)?;
    let idx = mm_src(cpu, mem, i, 1)?.to_le_bytes();
    let a = cpu.x87.mm(mr(i.op0_register())).to_le_bytes();
    let r: [u8; 8] = core::array::from_fn(|k| if idx[k] & 0x80 != 0 { 0 } else { a[(idx[k] & 7) as usize] });
    set_mm0(cpu, i, u64::from_le_bytes(r));
    Ok(())
}

/// `palignr mm1, mm2/m64, imm8`: bytes `imm..imm+8` of `mm1:mm2`.
fn palignr(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    wait(cpu)?;
    let b = mm_src(cpu, mem, i, 1)? as u128;
    let cat = (cpu.x87.mm(mr(i.op0_register())) as u128) << 64 | b;
    let n = i.immediate8() as u32;
    set_mm0(cpu, i, if n < 16 { (cat >> (8 * n)) as u64 } else { 0 });
    Ok(())
}

/// `movq2dq xmm, mm`.
fn movq2dq(cpu: &mut Cpu, _: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    wait(cpu)?;
    cpu.xmm[xr(i.op0_register())] = cpu.x87.mm(mr(i.op1_register())) as u128;
    cpu.x87.enter_mmx();
    Ok(())
}

/// `movdq2q mm, xmm`.
fn movdq2q(cpu: &mut Cpu, _: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    wait(cpu)?;
    set_mm0(cpu, i, cpu.xmm[xr(i.op1_register())] as u64);
    Ok(())
}

/// `cvtpi2ps xmm, mm/m64` (through `cvtdq2ps`; the upper half of xmm stays) and
/// `cvtpi2pd xmm, mm/m64` (through `cvtdq2pd`). Only an MMX register source makes the
/// MMX transition.
fn cvt_from_mm<H: Host, const MERGE: bool>(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    cvt_from_mm_with(cpu, mem, op, H::run, MERGE)
}

#[inline(never)]
fn cvt_from_mm_with(cpu: &mut Cpu, mem: &mut Memory, op: &Op, run: Run, merge: bool) -> R {
    let i = &op.insn;
    let from_mm = i.op1_kind() == OpKind::Register;
    if from_mm {
        wait(cpu)?;
    }
    let v = mm_src(cpu, mem, i, 1)?;
    let mut s = St { x: [0, 0, v as u128], ..St::default() };
    fp_run(cpu, &mut s, run, i)?;
    let d = xr(i.op0_register());
    let lo = u64::MAX as u128;
    cpu.xmm[d] = if merge { (cpu.xmm[d] & !lo) | (s.x[1] & lo) } else { s.x[1] };
    if from_mm {
        cpu.x87.enter_mmx();
    }
    Ok(())
}

/// `cvtps2pi`, `cvttps2pi mm, xmm/m64` and `cvtpd2pi`, `cvttpd2pi mm, xmm/m128`: the
/// 128-bit conversion to integers, low half (the zero upper lanes of a 64-bit source
/// convert exactly).
fn cvt_to_mm<H: Host>(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    cvt_to_mm_with(cpu, mem, op, H::run)
}

#[inline(never)]
fn cvt_to_mm_with(cpu: &mut Cpu, mem: &mut Memory, op: &Op, run: Run) -> R {
    let i = &op.insn;
    wait(cpu)?;
    let v = if i.op1_kind() == OpKind::Register {
        let x = cpu.xmm[xr(i.op1_register())];
        let half = matches!(i.code(), Code::Cvtps2pi_mm_xmmm64 | Code::Cvttps2pi_mm_xmmm64);
        if half {
            x & u64::MAX as u128
        } else {
            x
        }
    } else {
        read_m(mem, i, ea(cpu, i))?
    };
    let mut s = St { x: [0, 0, v], ..St::default() };
    fp_run(cpu, &mut s, run, i)?;
    set_mm0(cpu, i, s.x[1] as u64);
    Ok(())
}

/// The handler for a legacy instruction form that uses an MMX register (or is the
/// memory form of one); `None` for anything else.
pub(super) fn select(i: &Instruction) -> Option<Handler> {
    use host::*;
    use Code as C;
    Some(match i.code() {
        C::Emms => emms,
        C::Movd_mm_rm32 | C::Movq_mm_rm64 | C::Movq_mm_mmm64 => mov_to_mm,
        C::Movd_rm32_mm | C::Movq_rm64_mm | C::Movq_mmm64_mm | C::Movntq_m64_mm => mov_from_mm,
        C::Psllw_mm_imm8
        | C::Pslld_mm_imm8
        | C::Psllq_mm_imm8
        | C::Psrlw_mm_imm8
        | C::Psrld_mm_imm8
        | C::Psrlq_mm_imm8
        | C::Psraw_mm_imm8
        | C::Psrad_mm_imm8 => shift_imm,
        C::Pshufw_mm_mmm64_imm8 => pshufw,
        C::Pinsrw_mm_r32m16_imm8 | C::Pinsrw_mm_r64m16_imm8 => pinsrw,
        C::Pextrw_r32_mm_imm8 | C::Pextrw_r64_mm_imm8 => pextrw,
        C::Pmovmskb_r32_mm | C::Pmovmskb_r64_mm => pmovmskb,
        C::Maskmovq_rDI_mm_mm => maskmovq,
        C::Pshufb_mm_mmm64 => pshufb,
        C::Palignr_mm_mmm64_imm8 => palignr,
        C::Movq2dq_xmm_mm => movq2dq,
        C::Movdq2q_mm_xmm => movdq2q,
        C::Cvtpi2ps_xmm_mmm64 => cvt_from_mm::<Cvtdq2ps, true>,
        C::Cvtpi2pd_xmm_mmm64 => cvt_from_mm::<Cvtdq2pd, false>,
        C::Cvtps2pi_mm_xmmm64 => cvt_to_mm::<Cvtps2dq>,
        C::Cvttps2pi_mm_xmmm64 => cvt_to_mm::<Cvttps2dq>,
        C::Cvtpd2pi_mm_xmmm128 => cvt_to_mm::<Cvtpd2dq>,
        C::Cvttpd2pi_mm_xmmm128 => cvt_to_mm::<Cvttpd2dq>,
        C::Punpcklbw_mm_mmm32 => lanes::<Punpcklbw, LANES>,
        C::Punpcklwd_mm_mmm32 => lanes::<Punpcklwd, LANES>,
        C::Punpckldq_mm_mmm32 => lanes::<Punpckldq, LANES>,
        C::Punpckhbw_mm_mmm64 => lanes::<Punpcklbw, HIGH>,
        C::Punpckhwd_mm_mmm64 => lanes::<Punpcklwd, HIGH>,
        C::Punpckhdq_mm_mmm64 => lanes::<Punpckldq, HIGH>,
        C::Packsswb_mm_mmm64 => lanes::<Packsswb, PAIRED>,
        C::Packssdw_mm_mmm64 => lanes::<Packssdw, PAIRED>,
        C::Packuswb_mm_mmm64 => lanes::<Packuswb, PAIRED>,
        C::Phaddw_mm_mmm64 => lanes::<Phaddw, PAIRED>,
        C::Phaddd_mm_mmm64 => lanes::<Phaddd, PAIRED>,
        C::Phaddsw_mm_mmm64 => lanes::<Phaddsw, PAIRED>,
        C::Phsubw_mm_mmm64 => lanes::<Phsubw, PAIRED>,
        C::Phsubd_mm_mmm64 => lanes::<Phsubd, PAIRED>,
        C::Phsubsw_mm_mmm64 => lanes::<Phsubsw, PAIRED>,
        C::Pcmpgtb_mm_mmm64 => lanes::<Pcmpgtb, LANES>,
        C::Pcmpgtw_mm_mmm64 => lanes::<Pcmpgtw, LANES>,
        C::Pcmpgtd_mm_mmm64 => lanes::<Pcmpgtd, LANES>,
        C::Pcmpeqb_mm_mmm64 => lanes::<Pcmpeqb, LANES>,
        C::Pcmpeqw_mm_mmm64 => lanes::<Pcmpeqw, LANES>,
        C::Pcmpeqd_mm_mmm64 => lanes::<Pcmpeqd, LANES>,
        C::Psrlw_mm_mmm64 => lanes::<Psrlw, LANES>,
        C::Psrld_mm_mmm64 => lanes::<Psrld, LANES>,
        C::Psrlq_mm_mmm64 => lanes::<Psrlq, LANES>,
        C::Psllw_mm_mmm64 => lanes::<Psllw, LANES>,
        C::Pslld_mm_mmm64 => lanes::<Pslld, LANES>,
        C::Psllq_mm_mmm64 => lanes::<Psllq, LANES>,
        C::Psraw_mm_mmm64 => lanes::<Psraw, LANES>,
        C::Psrad_mm_mmm64 => lanes::<Psrad, LANES>,
        C::Paddb_mm_mmm64 => lanes::<Paddb, LANES>,
        C::Paddw_mm_mmm64 => lanes::<Paddw, LANES>,
        C::Paddd_mm_mmm64 => lanes::<Paddd, LANES>,
        C::Paddq_mm_mmm64 => lanes::<Paddq, LANES>,
        C::Paddsb_mm_mmm64 => lanes::<Paddsb, LANES>,
        C::Paddsw_mm_mmm64 => lanes::<Paddsw, LANES>,
        C::Paddusb_mm_mmm64 => lanes::<Paddusb, LANES>,
        C::Paddusw_mm_mmm64 => lanes::<Paddusw, LANES>,
        C::Psubb_mm_mmm64 => lanes::<Psubb, LANES>,
        C::Psubw_mm_mmm64 => lanes::<Psubw, LANES>,
        C::Psubd_mm_mmm64 => lanes::<Psubd, LANES>,
        C::Psubq_mm_mmm64 => lanes::<Psubq, LANES>,
        C::Psubsb_mm_mmm64 => lanes::<Psubsb, LANES>,
        C::Psubsw_mm_mmm64 => lanes::<Psubsw, LANES>,
        C::Psubusb_mm_mmm64 => lanes::<Psubusb, LANES>,
        C::Psubusw_mm_mmm64 => lanes::<Psubusw, LANES>,
        C::Pmullw_mm_mmm64 => lanes::<Pmullw, LANES>,
        C::Pmulhw_mm_mmm64 => lanes::<Pmulhw, LANES>,
        C::Pmulhuw_mm_mmm64 => lanes::<Pmulhuw, LANES>,
        C::Pmuludq_mm_mmm64 => lanes::<Pmuludq, LANES>,
        C::Pmaddwd_mm_mmm64 => lanes::<Pmaddwd, LANES>,
        C::Pmaddubsw_mm_mmm64 => lanes::<Pmaddubsw, LANES>,
        C::Pmulhrsw_mm_mmm64 => lanes::<Pmulhrsw, LANES>,
        C::Psadbw_mm_mmm64 => lanes::<Psadbw, LANES>,
        C::Pavgb_mm_mmm64 => lanes::<Pavgb, LANES>,
        C::Pavgw_mm_mmm64 => lanes::<Pavgw, LANES>,
        C::Pminub_mm_mmm64 => lanes::<Pminub, LANES>,
        C::Pmaxub_mm_mmm64 => lanes::<Pmaxub, LANES>,
        C::Pminsw_mm_mmm64 => lanes::<Pminsw, LANES>,
        C::Pmaxsw_mm_mmm64 => lanes::<Pmaxsw, LANES>,
        C::Pand_mm_mmm64 => lanes::<Pand, LANES>,
        C::Pandn_mm_mmm64 => lanes::<Pandn, LANES>,
        C::Por_mm_mmm64 => lanes::<Por, LANES>,
        C::Pxor_mm_mmm64 => lanes::<Pxor, LANES>,
        C::Psignb_mm_mmm64 => lanes::<Psignb, LANES>,
        C::Psignw_mm_mmm64 => lanes::<Psignw, LANES>,
        C::Psignd_mm_mmm64 => lanes::<Psignd, LANES>,
        C::Pabsb_mm_mmm64 => lanes::<Pabsb, LANES>,
        C::Pabsw_mm_mmm64 => lanes::<Pabsw, LANES>,
        C::Pabsd_mm_mmm64 => lanes::<Pabsd, LANES>,
        _ => return None,
    })
}
