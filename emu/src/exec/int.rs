//! General-purpose integer instructions, control flow, strings, BMI, cpuid.
//!
//! Flags are computed eagerly and exactly for every flag the manuals define;
//! flags the manuals call undefined get a fixed, documented choice so runs
//! stay deterministic (the differential tests mask them). Handlers that touch
//! memory do the memory access before changing any register or flag, so a
//! fault leaves the instruction without effect.

use iced_x86::{Code, ConditionCode, Instruction, Mnemonic, OpKind, Register};

use super::operand::{self, get, get_gpr, get_rmw, gpr, loc, mask, op_size, set, set_gpr, sext, sign_bit, Gpr, Loc};
use super::{Handler, Op, Trap};
use crate::cpu::flags::*;
use crate::cpu::{reg, Cpu};
use crate::memory::{Memory, PAGE_SIZE};

type R = Result<(), Trap>;

// ---- flag helpers ------------------------------------------------------

#[inline(always)]
fn parity(v: u64) -> u64 {
    if (v as u8).count_ones().is_multiple_of(2) {
        PF
    } else {
        0
    }
}

/// ZF, SF and PF of a `size`-byte result.
#[inline(always)]
pub(crate) fn szp(r: u64, size: u8) -> u64 {
    let r = r & mask(size);
    let mut f = parity(r);
    if r == 0 {
        f |= ZF;
    }
    if r & sign_bit(size) != 0 {
        f |= SF;
    }
    f
}

#[inline(always)]
fn set_status(cpu: &mut Cpu, which: u64, f: u64) {
    cpu.rflags = (cpu.rflags & !which) | (f & which);
}

#[inline(always)]
fn add_flags(a: u64, b: u64, c: u64, size: u8) -> (u64, u64) {
    let m = mask(size);
    let wide = (a & m) as u128 + (b & m) as u128 + c as u128;
    let r = wide as u64 & m;
    let mut f = szp(r, size) | ((a ^ b ^ r) & AF);
    if (wide >> (8 * size as u32)) & 1 != 0 {
        f |= CF;
    }
    if (a ^ r) & (b ^ r) & sign_bit(size) != 0 {
        f |= OF;
    }
    (r, f)
}

#[inline(always)]
fn sub_flags(a: u64, b: u64, c: u64, size: u8) -> (u64, u64) {
    let m = mask(size);
    let r = (a & m).wrapping_sub(b & m).wrapping_sub(c) & m;
    let mut f = szp(r, size) | ((a ^ b ^ r) & AF);
    if ((a & m) as u128) < (b & m) as u128 + c as u128 {
        f |= CF;
    }
    if (a ^ b) & (a ^ r) & sign_bit(size) != 0 {
        f |= OF;
    }
    (r, f)
}

pub(crate) fn cond(cpu: &Cpu, cc: ConditionCode) -> bool {
    let f = cpu.rflags;
    let s = f & SF != 0;
    let o = f & OF != 0;
    match cc {
        ConditionCode::o => o,
        ConditionCode::no => !o,
        ConditionCode::b => f & CF != 0,
        ConditionCode::ae => f & CF == 0,
        ConditionCode::e => f & ZF != 0,
        ConditionCode::ne => f & ZF == 0,
        ConditionCode::be => f & (CF | ZF) != 0,
        ConditionCode::a => f & (CF | ZF) == 0,
        ConditionCode::s => s,
        ConditionCode::ns => !s,
        ConditionCode::p => f & PF != 0,
        ConditionCode::np => f & PF == 0,
        ConditionCode::l => s != o,
        ConditionCode::ge => s == o,
        ConditionCode::le => f & ZF != 0 || s != o,
        ConditionCode::g => f & ZF == 0 && s == o,
        ConditionCode::None => true,
    }
}

// ---- stack ---------------------------------------------------------------

#[inline(always)]
pub(crate) fn push(cpu: &mut Cpu, mem: &mut Memory, v: u64, size: u8) -> R {
    let sp = cpu.gpr[reg::RSP].wrapping_sub(size as u64);
    mem.write_sized(sp, size, v)?;
    cpu.gpr[reg::RSP] = sp;
    Ok(())
}

#[inline(always)]
pub(crate) fn pop(cpu: &mut Cpu, mem: &mut Memory, size: u8) -> Result<u64, Trap> {
    let sp = cpu.gpr[reg::RSP];
    let v = mem.read_sized(sp, size)?;
    cpu.gpr[reg::RSP] = sp.wrapping_add(size as u64);
    Ok(v)
}

// ---- data movement ---------------------------------------------------------

fn mov(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    let size = op_size(i, 0);
    let v = operand::read(cpu, mem, i, 1, size)?;
    operand::write(cpu, mem, i, 0, size, v)
}

fn movzx(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    let v = operand::read(cpu, mem, i, 1, op_size(i, 1))?;
    operand::write(cpu, mem, i, 0, op_size(i, 0), v)
}

fn movsx(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    let ss = op_size(i, 1);
    let v = sext(operand::read(cpu, mem, i, 1, ss)?, ss);
    operand::write(cpu, mem, i, 0, op_size(i, 0), v)
}

fn lea(cpu: &mut Cpu, _: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    let g = gpr(i.op0_register()).ok_or(Trap::InvalidOpcode)?;
    set_gpr(cpu, g, operand::ea_offset(cpu, i));
    Ok(())
}

fn xchg(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    let size = op_size(i, 0);
    let (a, b) = (loc(cpu, i, 0)?, loc(cpu, i, 1)?);
    let va = get_rmw(cpu, mem, a, size)?;
    let vb = get_rmw(cpu, mem, b, size)?;
    // Memory operand first so a fault changes nothing.
    if let Loc::Mem(_) = b {
        set(cpu, mem, b, size, va)?;
        set(cpu, mem, a, size, vb)
    } else {
        set(cpu, mem, a, size, vb)?;
        set(cpu, mem, b, size, va)
    }
}

fn cmpxchg(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    let size = op_size(i, 0);
    let d = loc(cpu, i, 0)?;
    let dv = get_rmw(cpu, mem, d, size)?;
    let src = operand::read(cpu, mem, i, 1, size)?;
    let acc = Gpr { idx: reg::RAX, size, high: false };
    let av = get_gpr(cpu, acc);
    let (_, f) = sub_flags(av, dv, 0, size);
    if av == dv {
        set(cpu, mem, d, size, src)?;
    } else {
        // Hardware writes a memory destination back even on failure; a
        // register destination is left alone (not even zero-extended).
        if let Loc::Mem(_) = d {
            set(cpu, mem, d, size, dv)?;
        }
        set_gpr(cpu, acc, dv);
    }
    set_status(cpu, STATUS, f);
    Ok(())
}

fn cmpxchg_double(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    let a = operand::ea(cpu, i);
    let wide = i.mnemonic() == Mnemonic::Cmpxchg16b;
    let (half, m) = if wide { (8u8, u64::MAX) } else { (4u8, 0xffff_ffff) };
    if wide && !a.is_multiple_of(16) {
        return Err(Trap::GeneralProtection);
    }
    // A locked read-modify-write: a fault is a write fault.
    mem.probe_write(a, 2 * half as u64)?;
    let lo = mem.read_sized(a, half)?;
    let hi = mem.read_sized(a + half as u64, half)?;
    let (eax, edx) = (cpu.gpr[reg::RAX] & m, cpu.gpr[reg::RDX] & m);
    if lo == eax && hi == edx {
        mem.write_sized(a, half, cpu.gpr[reg::RBX] & m)?;
        mem.write_sized(a + half as u64, half, cpu.gpr[reg::RCX] & m)?;
        cpu.rflags |= ZF;
    } else {
        mem.write_sized(a, half, lo)?;
        mem.write_sized(a + half as u64, half, hi)?;
        set_gpr(cpu, Gpr { idx: reg::RAX, size: half, high: false }, lo);
        set_gpr(cpu, Gpr { idx: reg::RDX, size: half, high: false }, hi);
        cpu.rflags &= !ZF;
    }
    Ok(())
}

fn xadd(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    let size = op_size(i, 0);
    let (d, s) = (loc(cpu, i, 0)?, loc(cpu, i, 1)?);
    let dv = get_rmw(cpu, mem, d, size)?;
    let sv = get(cpu, mem, s, size)?;
    let (r, f) = add_flags(dv, sv, 0, size);
    if let Loc::Mem(_) = d {
        set(cpu, mem, d, size, r)?;
        set(cpu, mem, s, size, dv)?;
    } else {
        set(cpu, mem, s, size, dv)?;
        set(cpu, mem, d, size, r)?;
    }
    set_status(cpu, STATUS, f);
    Ok(())
}

fn push_op(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    let size = if i.op_kind(0) == OpKind::Register { i.op0_register().size() as u8 } else { op_size(i, 0) };
    let size = match i.op_kind(0) {
        OpKind::Immediate8to64 | OpKind::Immediate32to64 => 8,
        OpKind::Immediate8to16 | OpKind::Immediate16 => 2,
        _ => size,
    };
    if i.op_kind(0) == OpKind::Register && !i.op0_register().is_gpr() {
        // push fs / push gs: a null selector.
        return push(cpu, mem, 0, 8);
    }
    let v = operand::read(cpu, mem, i, 0, size)?;
    push(cpu, mem, v, size)
}

fn pop_op(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    if i.op_kind(0) == OpKind::Register && !i.op0_register().is_gpr() {
        return Err(Trap::GeneralProtection);
    }
    let size = op_size(i, 0);
    let v = mem.read_sized(cpu.gpr[reg::RSP], size)?;
    // `pop [rsp+x]` computes its address with the incremented RSP.
    let old = cpu.gpr[reg::RSP];
    cpu.gpr[reg::RSP] = old.wrapping_add(size as u64);
    if let Err(t) = operand::write(cpu, mem, i, 0, size, v) {
        cpu.gpr[reg::RSP] = old;
        return Err(t);
    }
    Ok(())
}

fn pushf(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let size = if op.insn.mnemonic() == Mnemonic::Pushf { 2 } else { 8 };
    // RF and VM read as zero.
    push(cpu, mem, cpu.rflags & 0x3c_7fd7 | 2, size)
}

fn popf(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let size = if op.insn.mnemonic() == Mnemonic::Popf { 2 } else { 8 };
    let v = pop(cpu, mem, size)?;
    let v = if size == 2 { (cpu.rflags & !0xffff) | v } else { v };
    cpu.set_rflags(v);
    Ok(())
}

fn leave(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    // `66 c9` pops BP only (RSP still takes all of RBP).
    let size = if op.insn.code() == Code::Leavew { 2 } else { 8 };
    let bp = cpu.gpr[reg::RBP];
    let v = mem.read_sized(bp, size)?;
    cpu.gpr[reg::RSP] = bp.wrapping_add(size as u64);
    set_gpr(cpu, Gpr { idx: reg::RBP, size, high: false }, v);
    Ok(())
}

fn enter(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    let size: u8 = if i.code() == Code::Enterw_imm16_imm8 { 2 } else { 8 };
    let sz = size as u64;
    let alloc = i.immediate(0) & 0xffff;
    let level = i.immediate(1) & 31;
    let bp = cpu.gpr[reg::RBP];
    let frame = cpu.gpr[reg::RSP].wrapping_sub(sz);
    let fin = frame.wrapping_sub(level * sz).wrapping_sub(alloc);
    mem.write_sized(frame, size, bp)?;
    let mut sp = frame;
    for l in 1..level {
        let v = mem.read_sized(bp.wrapping_sub(sz * l), size)?;
        sp = sp.wrapping_sub(sz);
        mem.write_sized(sp, size, v)?;
    }
    if level > 0 {
        sp = sp.wrapping_sub(sz);
        mem.write_sized(sp, size, frame)?;
    }
    // #PF if a write at the final stack pointer would fault (after the
    // frame is written, as hardware does; registers stay unchanged).
    mem.probe_write(fin, sz)?;
    set_gpr(cpu, Gpr { idx: reg::RBP, size, high: false }, frame);
    cpu.gpr[reg::RSP] = sp.wrapping_sub(alloc);
    Ok(())
}

fn movbe(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    let size = op_size(i, 0);
    let v = operand::read(cpu, mem, i, 1, size)?;
    let v = v.swap_bytes() >> (64 - 8 * size as u32);
    operand::write(cpu, mem, i, 0, size, v)
}

fn bswap(cpu: &mut Cpu, _: &mut Memory, op: &Op) -> R {
    let g = gpr(op.insn.op0_register()).ok_or(Trap::InvalidOpcode)?;
    let v = get_gpr(cpu, g);
    let r = match g.size {
        8 => v.swap_bytes(),
        4 => (v as u32).swap_bytes() as u64,
        _ => 0, // bswap r16 is undefined; hardware gives zero.
    };
    set_gpr(cpu, g, r);
    Ok(())
}

fn cmov(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    let size = op_size(i, 0);
    let v = operand::read(cpu, mem, i, 1, size)?;
    let g = gpr(i.op0_register()).ok_or(Trap::InvalidOpcode)?;
    if cond(cpu, i.condition_code()) {
        set_gpr(cpu, g, v);
    } else if size == 4 {
        // A 32-bit cmov zero-extends even when the condition is false.
        set_gpr(cpu, g, get_gpr(cpu, g));
    }
    Ok(())
}

fn setcc(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let v = cond(cpu, op.insn.condition_code()) as u64;
    operand::write(cpu, mem, &op.insn, 0, 1, v)
}

fn convert(cpu: &mut Cpu, _: &mut Memory, op: &Op) -> R {
    let a = cpu.gpr[reg::RAX];
    match op.insn.mnemonic() {
        Mnemonic::Cbw => set_gpr(cpu, Gpr { idx: 0, size: 2, high: false }, sext(a, 1)),
        Mnemonic::Cwde => set_gpr(cpu, Gpr { idx: 0, size: 4, high: false }, sext(a, 2)),
        Mnemonic::Cdqe => cpu.gpr[reg::RAX] = sext(a, 4),
        Mnemonic::Cwd => set_gpr(cpu, Gpr { idx: 2, size: 2, high: false }, sext(a, 2) >> 16),
        Mnemonic::Cdq => set_gpr(cpu, Gpr { idx: 2, size: 4, high: false }, sext(a, 4) >> 32),
        _ => cpu.gpr[reg::RDX] = ((a as i64) >> 63) as u64,
    }
    Ok(())
}

fn xlat(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let mut a = cpu.gpr[reg::RBX].wrapping_add(cpu.gpr[reg::RAX] & 0xff);
    if op.insn.memory_base() == Register::EBX {
        // 32-bit address size (0x67): EBX + AL wraps at 4 GiB.
        a &= 0xffff_ffff;
    }
    match op.insn.memory_segment() {
        Register::FS => a = a.wrapping_add(cpu.fs_base),
        Register::GS => a = a.wrapping_add(cpu.gs_base),
        _ => {}
    }
    let v = mem.read_u8(a)?;
    set_gpr(cpu, Gpr { idx: 0, size: 1, high: false }, v as u64);
    Ok(())
}

// ---- arithmetic -----------------------------------------------------------

const ADD: u8 = 0;
const OR: u8 = 1;
const ADC: u8 = 2;
const SBB: u8 = 3;
const AND: u8 = 4;
const SUB: u8 = 5;
const XOR: u8 = 6;
const CMP: u8 = 7;
const TEST: u8 = 8;

fn alu<const K: u8>(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    let size = op_size(i, 0);
    let d = loc(cpu, i, 0)?;
    let a = if K == CMP || K == TEST { get(cpu, mem, d, size)? } else { get_rmw(cpu, mem, d, size)? };
    let b = operand::read(cpu, mem, i, 1, size)?;
    let c = cpu.rflags & CF;
    let (r, f) = match K {
        ADD => add_flags(a, b, 0, size),
        ADC => add_flags(a, b, c, size),
        SUB | CMP => sub_flags(a, b, 0, size),
        SBB => sub_flags(a, b, c, size),
        _ => {
            let r = match K {
                OR => a | b,
                AND | TEST => a & b,
                _ => a ^ b,
            };
            (r, szp(r, size))
        }
    };
    if K != CMP && K != TEST {
        set(cpu, mem, d, size, r)?;
    }
    set_status(cpu, STATUS, f);
    Ok(())
}

fn incdec(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    let size = op_size(i, 0);
    let d = loc(cpu, i, 0)?;
    let a = get_rmw(cpu, mem, d, size)?;
    let (r, f) = if i.mnemonic() == Mnemonic::Inc { add_flags(a, 1, 0, size) } else { sub_flags(a, 1, 0, size) };
    set(cpu, mem, d, size, r)?;
    set_status(cpu, STATUS & !CF, f);
    Ok(())
}

fn neg(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    let size = op_size(i, 0);
    let d = loc(cpu, i, 0)?;
    let a = get_rmw(cpu, mem, d, size)?;
    let (r, f) = sub_flags(0, a, 0, size);
    set(cpu, mem, d, size, r)?;
    set_status(cpu, STATUS, f);
    Ok(())
}

fn not(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    let size = op_size(i, 0);
    let d = loc(cpu, i, 0)?;
    let a = get_rmw(cpu, mem, d, size)?;
    set(cpu, mem, d, size, !a)
}

/// Flags of mul/imul: CF = OF = overflow; SF, ZF, PF from the low half and
/// AF clear (undefined on hardware).
#[inline]
fn mul_flags(cpu: &mut Cpu, lo: u64, overflow: bool, size: u8) {
    let f = szp(lo, size) | if overflow { CF | OF } else { 0 };
    set_status(cpu, STATUS, f);
}

fn mul1(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    let size = op_size(i, 0);
    let src = operand::read(cpu, mem, i, 0, size)?;
    let signed = i.mnemonic() == Mnemonic::Imul;
    let a = get_gpr(cpu, Gpr { idx: 0, size, high: false });
    let bits = 8 * size as u32;
    let (lo, hi, overflow) = if signed {
        let p = (sext(a, size) as i64 as i128) * (sext(src, size) as i64 as i128);
        let lo = p as u64 & mask(size);
        let fits = p == sext(lo, size) as i64 as i128;
        (lo, (p >> bits) as u64 & mask(size), !fits)
    } else {
        let p = a as u128 * src as u128;
        let hi = (p >> bits) as u64 & mask(size);
        (p as u64 & mask(size), hi, hi != 0)
    };
    match size {
        1 => set_gpr(cpu, Gpr { idx: 0, size: 2, high: false }, hi << 8 | lo),
        _ => {
            set_gpr(cpu, Gpr { idx: reg::RAX, size, high: false }, lo);
            set_gpr(cpu, Gpr { idx: reg::RDX, size, high: false }, hi);
        }
    }
    mul_flags(cpu, lo, overflow, size);
    Ok(())
}

fn imul_n(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    let size = op_size(i, 0);
    let (a, b) = if i.op_count() == 3 {
        (operand::read(cpu, mem, i, 1, size)?, operand::read(cpu, mem, i, 2, size)?)
    } else {
        (operand::read(cpu, mem, i, 0, size)?, operand::read(cpu, mem, i, 1, size)?)
    };
    let p = (sext(a, size) as i64 as i128) * (sext(b, size) as i64 as i128);
    let lo = p as u64 & mask(size);
    let overflow = p != sext(lo, size) as i64 as i128;
    operand::write(cpu, mem, i, 0, size, lo)?;
    mul_flags(cpu, lo, overflow, size);
    Ok(())
}

fn div(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    let size = op_size(i, 0);
    let d = operand::read(cpu, mem, i, 0, size)?;
    if d == 0 {
        return Err(Trap::DivideError);
    }
    let bits = 8 * size as u32;
    let (hi, lo) = if size == 1 {
        ((cpu.gpr[0] >> 8) & 0xff, cpu.gpr[0] & 0xff)
    } else {
        (get_gpr(cpu, Gpr { idx: reg::RDX, size, high: false }), get_gpr(cpu, Gpr { idx: 0, size, high: false }))
    };
    let n = ((hi as u128) << bits) | lo as u128;
    let (q, r) = if i.mnemonic() == Mnemonic::Idiv {
        let sn = ((n << (128 - 2 * bits)) as i128) >> (128 - 2 * bits);
        let sd = sext(d, size) as i64 as i128;
        if sd == -1 && sn == i128::MIN {
            return Err(Trap::DivideError);
        }
        let q = sn / sd;
        let r = sn % sd;
        let lim = 1i128 << (bits - 1);
        if q >= lim || q < -lim {
            return Err(Trap::DivideError);
        }
        (q as u64 & mask(size), r as u64 & mask(size))
    } else {
        let q = n / d as u128;
        if q >> bits != 0 {
            return Err(Trap::DivideError);
        }
        (q as u64, (n % d as u128) as u64)
    };
    if size == 1 {
        set_gpr(cpu, Gpr { idx: 0, size: 2, high: false }, r << 8 | q);
    } else {
        set_gpr(cpu, Gpr { idx: reg::RAX, size, high: false }, q);
        set_gpr(cpu, Gpr { idx: reg::RDX, size, high: false }, r);
    }
    Ok(())
}

// ---- shifts and rotates ---------------------------------------------------

fn shift_count(cpu: &Cpu, i: &Instruction, size: u8) -> u32 {
    let raw = match i.op_kind(1) {
        OpKind::Register => cpu.gpr[reg::RCX] & 0xff,
        _ => i.immediate(1),
    };
    (raw as u32) & if size == 8 { 63 } else { 31 }
}

/// A shift or rotate whose masked count is zero changes no flags and no
/// value, but it is still a write access to a memory destination and, like
/// any 32-bit register write, it clears the upper half of a register.
fn shift_by_zero(cpu: &mut Cpu, mem: &mut Memory, d: Loc, size: u8, v: u64) -> R {
    match d {
        Loc::Mem(a) => mem.probe_write(a, size as u64),
        Loc::Reg(g) if size == 4 => {
            set_gpr(cpu, g, v);
            Ok(())
        }
        _ => Ok(()),
    }
}

fn shift(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    let size = op_size(i, 0);
    let count = if i.op_count() == 1 { 1 } else { shift_count(cpu, i, size) };
    let d = loc(cpu, i, 0)?;
    let a = get_rmw(cpu, mem, d, size)?;
    if count == 0 {
        return shift_by_zero(cpu, mem, d, size, a);
    }
    let bits = 8 * size as u32;
    let m = mask(size);
    let msb = |v: u64| (v >> (bits - 1)) & 1;
    let (r, f, which) = match i.mnemonic() {
        Mnemonic::Shl | Mnemonic::Sal => {
            let r = if count >= 64 { 0 } else { (a << count) & m };
            let cf = if count > bits { 0 } else { (((a as u128) << count) >> bits) as u64 & 1 };
            let of = msb(r) ^ cf;
            (r, szp(r, size) | (cf * CF) | (of * OF), STATUS)
        }
        Mnemonic::Shr => {
            let r = if count >= 64 { 0 } else { a >> count };
            let cf = if count > bits { 0 } else { (a >> (count - 1)) & 1 };
            (r, szp(r, size) | (cf * CF) | (msb(a) * OF), STATUS)
        }
        Mnemonic::Sar => {
            let s = sext(a, size) as i64;
            let r = (s >> count.min(63)) as u64 & m;
            let cf = ((s >> (count - 1).min(63)) & 1) as u64;
            (r, szp(r, size) | (cf * CF), STATUS)
        }
        Mnemonic::Rol => {
            let c = count % bits;
            let r = if c == 0 { a } else { ((a << c) | (a >> (bits - c))) & m };
            let cf = r & 1;
            (r, (cf * CF) | ((msb(r) ^ cf) * OF), CF | OF)
        }
        Mnemonic::Ror => {
            let c = count % bits;
            let r = if c == 0 { a } else { ((a >> c) | (a << (bits - c))) & m };
            let cf = msb(r);
            let of = cf ^ ((r >> (bits - 2)) & 1);
            (r, (cf * CF) | (of * OF), CF | OF)
        }
        Mnemonic::Rcl => {
            let c = count % (bits + 1);
            let cin = cpu.rflags & CF;
            let wide = ((cin as u128) << bits) | a as u128;
            let w = bits + 1;
            let rot = if c == 0 { wide } else { ((wide << c) | (wide >> (w - c))) & ((1u128 << w) - 1) };
            let r = rot as u64 & m;
            let cf = (rot >> bits) as u64 & 1;
            (r, (cf * CF) | ((msb(r) ^ cf) * OF), CF | OF)
        }
        _ => {
            // Rcr
            let c = count % (bits + 1);
            let cin = cpu.rflags & CF;
            let of = msb(a) ^ cin;
            let wide = ((cin as u128) << bits) | a as u128;
            let w = bits + 1;
            let rot = if c == 0 { wide } else { ((wide >> c) | (wide << (w - c))) & ((1u128 << w) - 1) };
            let r = rot as u64 & m;
            let cf = (rot >> bits) as u64 & 1;
            (r, (cf * CF) | (of * OF), CF | OF)
        }
    };
    set(cpu, mem, d, size, r)?;
    set_status(cpu, which, f);
    Ok(())
}

fn shxd(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    let size = op_size(i, 0);
    let raw = match i.op_kind(2) {
        OpKind::Register => cpu.gpr[reg::RCX] & 0xff,
        _ => i.immediate(2),
    };
    let count = (raw as u32) & if size == 8 { 63 } else { 31 };
    let d = loc(cpu, i, 0)?;
    let a = get_rmw(cpu, mem, d, size)?;
    let b = operand::read(cpu, mem, i, 1, size)?;
    if count == 0 {
        return shift_by_zero(cpu, mem, d, size, a);
    }
    let bits = 8 * size as u32;
    let m = mask(size);
    // 16-bit operands shift through dest:src:dest (48 bits) so counts above
    // 16 behave as on Intel hardware (the result is undefined there).
    let w = bits as u128;
    let c = count as u128;
    let (a2, b2) = (a as u128, b as u128);
    let (r, cf) = if i.mnemonic() == Mnemonic::Shld {
        let (wide, top) = if size == 2 { (a2 << 32 | b2 << 16 | a2, 48) } else { (a2 << w | b2, 2 * w) };
        (((wide << c) >> (top - w)) as u64 & m, ((wide >> (top - c)) & 1) as u64)
    } else {
        let wide = if size == 2 { a2 << 32 | b2 << 16 | a2 } else { b2 << w | a2 };
        ((wide >> c) as u64 & m, ((wide >> (c - 1)) & 1) as u64)
    };
    let of = ((r ^ a) >> (bits - 1)) & 1;
    set(cpu, mem, d, size, r)?;
    set_status(cpu, STATUS, szp(r, size) | (cf * CF) | (of * OF));
    Ok(())
}

// ---- bit instructions -------------------------------------------------------

fn bt(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    let size = op_size(i, 0);
    let bits = 8 * size as u64;
    let (off, is_reg_off) = match i.op_kind(1) {
        OpKind::Register => (operand::read(cpu, mem, i, 1, size)?, true),
        _ => (i.immediate(1), false),
    };
    let d = loc(cpu, i, 0)?;
    // A register bit offset addresses memory beyond the operand (signed).
    let (d, bit) = match d {
        Loc::Mem(a) if is_reg_off => {
            let s = sext(off, size) as i64;
            let word = s.div_euclid(bits as i64);
            (Loc::Mem(a.wrapping_add((word * size as i64) as u64)), s.rem_euclid(bits as i64) as u64)
        }
        _ => (d, off % bits),
    };
    let v = if i.mnemonic() == Mnemonic::Bt { get(cpu, mem, d, size)? } else { get_rmw(cpu, mem, d, size)? };
    let cf = (v >> bit) & 1;
    let r = match i.mnemonic() {
        Mnemonic::Bts => Some(v | 1 << bit),
        Mnemonic::Btr => Some(v & !(1 << bit)),
        Mnemonic::Btc => Some(v ^ 1 << bit),
        _ => None,
    };
    if let Some(r) = r {
        set(cpu, mem, d, size, r)?;
    }
    set_status(cpu, CF, cf * CF);
    Ok(())
}

fn bitscan(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    bitscan_as(cpu, mem, op, op.insn.mnemonic())
}

/// `tzcnt` (`rep bsf`) on a CPU without BMI1 is `bsf`, and `lzcnt` without LZCNT is `bsr`:
/// the prefix is ignored. Compilers emit `tzcnt` for generic targets relying on that.
fn tzcnt_as_bsf(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    bitscan_as(cpu, mem, op, Mnemonic::Bsf)
}

fn lzcnt_as_bsr(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    bitscan_as(cpu, mem, op, Mnemonic::Bsr)
}

/// The handler of an instruction that `model` does not have but still executes as an
/// older one; `None` (#UD) for the others.
pub(crate) fn select_without_feature(i: &Instruction) -> Option<Handler> {
    match i.mnemonic() {
        Mnemonic::Tzcnt => Some(tzcnt_as_bsf),
        Mnemonic::Lzcnt => Some(lzcnt_as_bsr),
        _ => None,
    }
}

fn bitscan_as(cpu: &mut Cpu, mem: &mut Memory, op: &Op, m: Mnemonic) -> R {
    let i = &op.insn;
    let size = op_size(i, 0);
    let bits = 8 * size as u32;
    let v = operand::read(cpu, mem, i, 1, size)?;
    let g = gpr(i.op0_register()).ok_or(Trap::InvalidOpcode)?;
    match m {
        Mnemonic::Bsf | Mnemonic::Bsr => {
            if v == 0 {
                // Destination unchanged (as AMD documents and Intel does).
                set_status(cpu, ZF, ZF);
                return Ok(());
            }
            let r = if m == Mnemonic::Bsf { v.trailing_zeros() } else { 63 - v.leading_zeros() };
            set_gpr(cpu, g, r as u64);
            set_status(cpu, STATUS, 0);
        }
        Mnemonic::Tzcnt => {
            let r = if v == 0 { bits } else { v.trailing_zeros() };
            set_gpr(cpu, g, r as u64);
            set_status(cpu, STATUS, if v == 0 { CF } else { 0 } | if r == 0 { ZF } else { 0 });
        }
        Mnemonic::Lzcnt => {
            let r = if v == 0 { bits } else { v.leading_zeros() - (64 - bits) };
            set_gpr(cpu, g, r as u64);
            set_status(cpu, STATUS, if v == 0 { CF } else { 0 } | if r == 0 { ZF } else { 0 });
        }
        _ => {
            set_gpr(cpu, g, v.count_ones() as u64);
            set_status(cpu, STATUS, if v == 0 { ZF } else { 0 });
        }
    }
    Ok(())
}

// ---- BMI1 / BMI2 / ADX ----------------------------------------------------------

fn bmi(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    let size = op_size(i, 0);
    let bits = 8 * size as u32;
    let m = mask(size);
    let g = gpr(i.op0_register()).ok_or(Trap::InvalidOpcode)?;
    let s1 = operand::read(cpu, mem, i, 1, size)?;
    let (r, f) = match i.mnemonic() {
        Mnemonic::Andn => {
            let s2 = operand::read(cpu, mem, i, 2, size)?;
            let r = !s1 & s2 & m;
            (r, Some(szp(r, size) & (ZF | SF)))
        }
        Mnemonic::Bextr => {
            let ctl = operand::read(cpu, mem, i, 2, size)?;
            let start = (ctl & 0xff) as u32;
            let len = ((ctl >> 8) & 0xff) as u32;
            let r =
                if start >= bits { 0 } else { (s1 >> start) & if len >= 64 { u64::MAX } else { (1u64 << len) - 1 } };
            let r = r & m;
            (r, Some(if r == 0 { ZF } else { 0 }))
        }
        Mnemonic::Blsi => {
            let r = s1.wrapping_neg() & s1 & m;
            (r, Some((szp(r, size) & (ZF | SF)) | if s1 != 0 { CF } else { 0 }))
        }
        Mnemonic::Blsmsk => {
            let r = (s1 ^ s1.wrapping_sub(1)) & m;
            (r, Some((szp(r, size) & SF) | if s1 == 0 { CF } else { 0 }))
        }
        Mnemonic::Blsr => {
            let r = s1 & s1.wrapping_sub(1) & m;
            (r, Some((szp(r, size) & (ZF | SF)) | if s1 == 0 { CF } else { 0 }))
        }
        Mnemonic::Bzhi => {
            let idx = (operand::read(cpu, mem, i, 2, size)? & 0xff) as u32;
            let r = if idx >= bits { s1 } else { s1 & ((1u64 << idx) - 1) } & m;
            (r, Some((szp(r, size) & (ZF | SF)) | if idx > bits - 1 { CF } else { 0 }))
        }
        Mnemonic::Pdep => {
            let msk = operand::read(cpu, mem, i, 2, size)?;
            let (mut r, mut k) = (0u64, 0);
            for b in 0..bits {
                if msk >> b & 1 != 0 {
                    r |= ((s1 >> k) & 1) << b;
                    k += 1;
                }
            }
            (r, None)
        }
        Mnemonic::Pext => {
            let msk = operand::read(cpu, mem, i, 2, size)?;
            let (mut r, mut k) = (0u64, 0);
            for b in 0..bits {
                if msk >> b & 1 != 0 {
                    r |= ((s1 >> b) & 1) << k;
                    k += 1;
                }
            }
            (r, None)
        }
        Mnemonic::Rorx => {
            let c = (i.immediate(2) as u32) % bits;
            let r = if c == 0 { s1 } else { ((s1 >> c) | (s1 << (bits - c))) & m };
            (r, None)
        }
        Mnemonic::Sarx | Mnemonic::Shlx | Mnemonic::Shrx => {
            let c = (operand::read(cpu, mem, i, 2, size)? as u32) & (bits - 1);
            let r = match i.mnemonic() {
                Mnemonic::Sarx => (sext(s1, size) as i64 >> c) as u64 & m,
                Mnemonic::Shlx => (s1 << c) & m,
                _ => s1 >> c,
            };
            (r, None)
        }
        _ => {
            // Mulx: dest_hi (op0), dest_lo (op1), src (op2), implicit RDX.
            let s = operand::read(cpu, mem, i, 2, size)?;
            let d = get_gpr(cpu, Gpr { idx: reg::RDX, size, high: false });
            let p = d as u128 * s as u128;
            let lo_reg = gpr(i.op1_register()).ok_or(Trap::InvalidOpcode)?;
            set_gpr(cpu, lo_reg, p as u64 & m);
            ((p >> bits) as u64 & m, None)
        }
    };
    set_gpr(cpu, g, r);
    if let Some(f) = f {
        set_status(cpu, STATUS, f);
    }
    Ok(())
}

fn adx(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    let size = op_size(i, 0);
    let flag = if i.mnemonic() == Mnemonic::Adcx { CF } else { OF };
    let a = operand::read(cpu, mem, i, 0, size)?;
    let b = operand::read(cpu, mem, i, 1, size)?;
    let c = (cpu.rflags & flag != 0) as u64;
    let wide = a as u128 + b as u128 + c as u128;
    operand::write(cpu, mem, i, 0, size, wide as u64 & mask(size))?;
    let carry = (wide >> (8 * size as u32)) & 1 != 0;
    set_status(cpu, flag, if carry { flag } else { 0 });
    Ok(())
}

// ---- control flow ---------------------------------------------------------------

fn jcc(cpu: &mut Cpu, _: &mut Memory, op: &Op) -> R {
    if cond(cpu, op.insn.condition_code()) {
        cpu.rip = op.insn.near_branch_target();
    }
    Ok(())
}

fn jmp(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    cpu.rip = match i.op_kind(0) {
        OpKind::NearBranch64 | OpKind::NearBranch32 | OpKind::NearBranch16 => i.near_branch_target(),
        OpKind::Register | OpKind::Memory => operand::read(cpu, mem, i, 0, 8)?,
        _ => return Err(Trap::InvalidOpcode),
    };
    Ok(())
}

fn call(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    let target = match i.op_kind(0) {
        OpKind::NearBranch64 | OpKind::NearBranch32 | OpKind::NearBranch16 => i.near_branch_target(),
        OpKind::Register | OpKind::Memory => operand::read(cpu, mem, i, 0, 8)?,
        _ => return Err(Trap::InvalidOpcode),
    };
    push(cpu, mem, i.next_ip(), 8)?;
    cpu.rip = target;
    Ok(())
}

fn ret(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    let target = pop(cpu, mem, 8)?;
    if i.op_count() == 1 {
        cpu.gpr[reg::RSP] = cpu.gpr[reg::RSP].wrapping_add(i.immediate(0) & 0xffff);
    }
    cpu.rip = target;
    Ok(())
}

fn loop_op(cpu: &mut Cpu, _: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    let addr32 = matches!(i.code(), Code::Loop_rel8_64_ECX | Code::Loope_rel8_64_ECX | Code::Loopne_rel8_64_ECX);
    let m = if addr32 { 0xffff_ffff } else { u64::MAX };
    let c = cpu.gpr[reg::RCX].wrapping_sub(1) & m;
    // With 32-bit addressing the counter is ECX, written zero-extended.
    cpu.gpr[reg::RCX] = c;
    let z = cpu.rflags & ZF != 0;
    let take = c != 0
        && match i.mnemonic() {
            Mnemonic::Loope => z,
            Mnemonic::Loopne => !z,
            _ => true,
        };
    if take {
        cpu.rip = i.near_branch_target();
    }
    Ok(())
}

fn jrcxz(cpu: &mut Cpu, _: &mut Memory, op: &Op) -> R {
    let c = if op.insn.mnemonic() == Mnemonic::Jecxz { cpu.gpr[reg::RCX] & 0xffff_ffff } else { cpu.gpr[reg::RCX] };
    if c == 0 {
        cpu.rip = op.insn.near_branch_target();
    }
    Ok(())
}

// ---- flag instructions, system --------------------------------------------------

fn flag_op(cpu: &mut Cpu, _: &mut Memory, op: &Op) -> R {
    match op.insn.mnemonic() {
        Mnemonic::Clc => cpu.rflags &= !CF,
        Mnemonic::Stc => cpu.rflags |= CF,
        Mnemonic::Cmc => cpu.rflags ^= CF,
        Mnemonic::Cld => cpu.rflags &= !DF,
        Mnemonic::Std => cpu.rflags |= DF,
        Mnemonic::Lahf => {
            let v = (cpu.rflags & (SF | ZF | AF | PF | CF)) | 2;
            set_gpr(cpu, Gpr { idx: 0, size: 1, high: true }, v);
        }
        _ => {
            // Sahf
            let v = (cpu.gpr[0] >> 8) & (SF | ZF | AF | PF | CF);
            set_status(cpu, SF | ZF | AF | PF | CF, v);
        }
    }
    Ok(())
}

fn nop(_: &mut Cpu, _: &mut Memory, _: &Op) -> R {
    Ok(())
}

fn privileged(_: &mut Cpu, _: &mut Memory, _: &Op) -> R {
    Err(Trap::GeneralProtection)
}

fn hlt(_: &mut Cpu, _: &mut Memory, _: &Op) -> R {
    Err(Trap::Halt)
}

fn syscall(cpu: &mut Cpu, _: &mut Memory, op: &Op) -> R {
    // As on hardware: RCX gets the return address and R11 the flags.
    cpu.gpr[reg::RCX] = op.insn.next_ip();
    cpu.gpr[reg::R11] = cpu.rflags;
    Err(Trap::Syscall)
}

fn int_n(_: &mut Cpu, _: &mut Memory, op: &Op) -> R {
    Err(match op.insn.mnemonic() {
        Mnemonic::Int3 => Trap::Breakpoint,
        Mnemonic::Int1 => Trap::Debug,
        _ => match op.insn.immediate(0) as u8 {
            0x80 => Trap::Int80,
            3 => Trap::Breakpoint,
            n => Trap::Interrupt(n),
        },
    })
}

fn rdtsc(cpu: &mut Cpu, _: &mut Memory, op: &Op) -> R {
    // Derived from the instruction count so runs are deterministic.
    let t = cpu.icount + op.idx as u64;
    cpu.gpr[reg::RAX] = t & 0xffff_ffff;
    cpu.gpr[reg::RDX] = t >> 32;
    if op.insn.mnemonic() == Mnemonic::Rdtscp {
        cpu.gpr[reg::RCX] = 0;
    }
    Ok(())
}

fn cpuid(cpu: &mut Cpu, _: &mut Memory, _: &Op) -> R {
    let v = cpu.model.cpuid(cpu.gpr[reg::RAX] as u32, cpu.gpr[reg::RCX] as u32);
    cpu.gpr[reg::RAX] = v[0] as u64;
    cpu.gpr[reg::RBX] = v[1] as u64;
    cpu.gpr[reg::RCX] = v[2] as u64;
    cpu.gpr[reg::RDX] = v[3] as u64;
    Ok(())
}

/// splitmix64: one step of the generator `rdrand` draws from (and a good mixer).
pub(crate) fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `rdrand`/`rdseed r16|32|64`: a number from the thread's seeded generator (so a run
/// stays a function of its seed, and replays exactly); CF = 1 (always available), the
/// other status flags cleared, as hardware does on success.
fn rdrand(cpu: &mut Cpu, _: &mut Memory, op: &Op) -> R {
    let g = gpr(op.insn.op0_register()).ok_or(Trap::InvalidOpcode)?;
    let v = splitmix64(cpu.rand_state);
    cpu.rand_state = cpu.rand_state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    set_gpr(cpu, g, v);
    set_status(cpu, STATUS, CF);
    Ok(())
}

/// `rdpid r64`: IA32_TSC_AUX, which emu keeps at 0 (as `rdtscp` reports in ECX).
fn rdpid(cpu: &mut Cpu, _: &mut Memory, op: &Op) -> R {
    let g = gpr(op.insn.op0_register()).ok_or(Trap::InvalidOpcode)?;
    set_gpr(cpu, Gpr { size: 8, ..g }, 0);
    Ok(())
}

/// `rdfsbase`/`rdgsbase`/`wrfsbase`/`wrgsbase` with a 32- or 64-bit register. A
/// non-canonical base is #GP, as on hardware.
fn fsgsbase(cpu: &mut Cpu, _: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    let g = gpr(i.op0_register()).ok_or(Trap::InvalidOpcode)?;
    match i.mnemonic() {
        Mnemonic::Rdfsbase => set_gpr(cpu, g, cpu.fs_base),
        Mnemonic::Rdgsbase => set_gpr(cpu, g, cpu.gs_base),
        m => {
            let v = get_gpr(cpu, g);
            if ((v as i64) << 16 >> 16) as u64 != v {
                return Err(Trap::GeneralProtection);
            }
            if m == Mnemonic::Wrfsbase {
                cpu.fs_base = v;
            } else {
                cpu.gs_base = v;
            }
        }
    }
    Ok(())
}

/// `clflush`, `clflushopt`, `clwb`: no cache to write back, but the byte must be
/// readable (they fault like a one-byte load).
fn cache_line_op(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    mem.read_u8(operand::ea(cpu, &op.insn)).map(|_| ())
}

// ---- string instructions --------------------------------------------------------

fn string_op(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    let m = i.mnemonic();
    let size: u8 = match i.memory_size().size() {
        0 => 1,
        s => s as u8,
    };
    let step = if cpu.rflags & DF != 0 { (size as u64).wrapping_neg() } else { size as u64 };
    let rep = i.has_rep_prefix() || i.has_repne_prefix();
    let addr32 = (0..i.op_count()).any(|n| matches!(i.op_kind(n), OpKind::MemorySegESI | OpKind::MemoryESEDI));
    let am = if addr32 { 0xffff_ffff } else { u64::MAX };
    let seg = match i.memory_segment() {
        Register::FS => cpu.fs_base,
        Register::GS => cpu.gs_base,
        _ => 0,
    };
    let acc = Gpr { idx: reg::RAX, size, high: false };
    let movs = matches!(m, Mnemonic::Movsb | Mnemonic::Movsw | Mnemonic::Movsd | Mnemonic::Movsq);
    let stos = matches!(m, Mnemonic::Stosb | Mnemonic::Stosw | Mnemonic::Stosd | Mnemonic::Stosq);
    if rep && (movs || stos) && step == size as u64 && !addr32 {
        return rep_bulk(cpu, mem, movs, size, seg);
    }
    loop {
        if rep && cpu.gpr[reg::RCX] & am == 0 {
            return Ok(());
        }
        let si = cpu.gpr[reg::RSI] & am;
        let di = cpu.gpr[reg::RDI] & am;
        let mut stop = false;
        match m {
            Mnemonic::Movsb | Mnemonic::Movsw | Mnemonic::Movsd | Mnemonic::Movsq => {
                let v = mem.read_sized(si.wrapping_add(seg), size)?;
                mem.write_sized(di, size, v)?;
                cpu.gpr[reg::RSI] = si.wrapping_add(step) & am;
                cpu.gpr[reg::RDI] = di.wrapping_add(step) & am;
            }
            Mnemonic::Stosb | Mnemonic::Stosw | Mnemonic::Stosd | Mnemonic::Stosq => {
                mem.write_sized(di, size, get_gpr(cpu, acc))?;
                cpu.gpr[reg::RDI] = di.wrapping_add(step) & am;
            }
            Mnemonic::Lodsb | Mnemonic::Lodsw | Mnemonic::Lodsd | Mnemonic::Lodsq => {
                let v = mem.read_sized(si.wrapping_add(seg), size)?;
                set_gpr(cpu, acc, v);
                cpu.gpr[reg::RSI] = si.wrapping_add(step) & am;
            }
            Mnemonic::Cmpsb | Mnemonic::Cmpsw | Mnemonic::Cmpsd | Mnemonic::Cmpsq => {
                let a = mem.read_sized(si.wrapping_add(seg), size)?;
                let b = mem.read_sized(di, size)?;
                let (_, f) = sub_flags(a, b, 0, size);
                set_status(cpu, STATUS, f);
                cpu.gpr[reg::RSI] = si.wrapping_add(step) & am;
                cpu.gpr[reg::RDI] = di.wrapping_add(step) & am;
                stop = true;
            }
            _ => {
                // Scas
                let b = mem.read_sized(di, size)?;
                let (_, f) = sub_flags(get_gpr(cpu, acc), b, 0, size);
                set_status(cpu, STATUS, f);
                cpu.gpr[reg::RDI] = di.wrapping_add(step) & am;
                stop = true;
            }
        }
        if !rep {
            return Ok(());
        }
        let c = cpu.gpr[reg::RCX].wrapping_sub(1) & am;
        cpu.gpr[reg::RCX] = c;
        if stop {
            let z = cpu.rflags & ZF != 0;
            if (i.has_repe_prefix() && !z) || (i.has_repne_prefix() && z) {
                return Ok(());
            }
        }
    }
}

/// `rep movs` (`movs`) and `rep stos` going forward with 64-bit addresses (what
/// `memcpy` and `memset` use): whole runs that stay inside a page on each
/// side are copied or filled at once; where a run cannot be (a page boundary
/// inside an element, missing permissions, decoded code in the destination,
/// an overlap a forward copy would see) one element goes the per-element way,
/// so faults stay precise, with RCX, RSI and RDI counting the elements done.
fn rep_bulk(cpu: &mut Cpu, mem: &mut Memory, movs: bool, size: u8, seg: u64) -> R {
    let room = |a: u64| (PAGE_SIZE - (a & (PAGE_SIZE - 1))) / size as u64;
    let size64 = size as u64;
    while cpu.gpr[reg::RCX] != 0 {
        let (si, di) = (cpu.gpr[reg::RSI], cpu.gpr[reg::RDI]);
        let src = si.wrapping_add(seg);
        let mut n = cpu.gpr[reg::RCX].min(room(di));
        if movs {
            n = n.min(room(src));
        }
        let done = n != 0
            && if movs {
                mem.bulk_copy(di, src, n * size64)
            } else {
                mem.bulk_fill(di, cpu.gpr[reg::RAX], size, n * size64)
            };
        if !done {
            n = 1;
            if movs {
                let v = mem.read_sized(src, size)?;
                mem.write_sized(di, size, v)?;
            } else {
                mem.write_sized(di, size, cpu.gpr[reg::RAX])?;
            }
        }
        if movs {
            cpu.gpr[reg::RSI] = si.wrapping_add(n * size64);
        }
        cpu.gpr[reg::RDI] = di.wrapping_add(n * size64);
        cpu.gpr[reg::RCX] -= n;
    }
    Ok(())
}

/// True for the string forms of `movsd`/`cmpsd` (not the SSE ones).
fn is_string(i: &Instruction) -> bool {
    matches!(i.op0_kind(), OpKind::MemoryESRDI | OpKind::MemoryESEDI | OpKind::MemorySegRSI | OpKind::MemorySegESI)
}

// ---- selection --------------------------------------------------------------------

/// Picks the handler for an integer, control-flow or system instruction.
pub(crate) fn select(i: &Instruction) -> Option<Handler> {
    use Mnemonic as M;
    let h: Handler = match i.mnemonic() {
        M::Mov => {
            // Moves to or from segment and control registers are not for user code.
            let seg = (0..2).any(|n| i.op_kind(n) == OpKind::Register && i.op_register(n).is_segment_register());
            let other = (0..2).any(|n| {
                i.op_kind(n) == OpKind::Register
                    && !i.op_register(n).is_gpr()
                    && !i.op_register(n).is_segment_register()
            });
            if other {
                privileged
            } else if seg {
                return None;
            } else {
                mov
            }
        }
        M::Movzx => movzx,
        M::Movsx | M::Movsxd => movsx,
        M::Lea => lea,
        M::Xchg => xchg,
        M::Cmpxchg => cmpxchg,
        M::Cmpxchg8b | M::Cmpxchg16b => cmpxchg_double,
        M::Xadd => xadd,
        M::Push => push_op,
        M::Pop => pop_op,
        M::Pushf | M::Pushfq => pushf,
        M::Popf | M::Popfq => popf,
        M::Leave => leave,
        M::Enter => enter,
        M::Movbe => movbe,
        M::Bswap => bswap,
        M::Cmovo
        | M::Cmovno
        | M::Cmovb
        | M::Cmovae
        | M::Cmove
        | M::Cmovne
        | M::Cmovbe
        | M::Cmova
        | M::Cmovs
        | M::Cmovns
        | M::Cmovp
        | M::Cmovnp
        | M::Cmovl
        | M::Cmovge
        | M::Cmovle
        | M::Cmovg => cmov,
        M::Seto
        | M::Setno
        | M::Setb
        | M::Setae
        | M::Sete
        | M::Setne
        | M::Setbe
        | M::Seta
        | M::Sets
        | M::Setns
        | M::Setp
        | M::Setnp
        | M::Setl
        | M::Setge
        | M::Setle
        | M::Setg => setcc,
        M::Cbw | M::Cwde | M::Cdqe | M::Cwd | M::Cdq | M::Cqo => convert,
        M::Xlatb => xlat,
        M::Add => alu::<ADD>,
        M::Or => alu::<OR>,
        M::Adc => alu::<ADC>,
        M::Sbb => alu::<SBB>,
        M::And => alu::<AND>,
        M::Sub => alu::<SUB>,
        M::Xor => alu::<XOR>,
        M::Cmp => alu::<CMP>,
        M::Test => alu::<TEST>,
        M::Inc | M::Dec => incdec,
        M::Neg => neg,
        M::Not => not,
        M::Mul => mul1,
        M::Imul if i.op_count() == 1 => mul1,
        M::Imul => imul_n,
        M::Div | M::Idiv => div,
        M::Shl | M::Sal | M::Shr | M::Sar | M::Rol | M::Ror | M::Rcl | M::Rcr => shift,
        M::Shld | M::Shrd => shxd,
        M::Bt | M::Bts | M::Btr | M::Btc => bt,
        M::Bsf | M::Bsr | M::Tzcnt | M::Lzcnt | M::Popcnt => bitscan,
        M::Andn
        | M::Bextr
        | M::Blsi
        | M::Blsmsk
        | M::Blsr
        | M::Bzhi
        | M::Pdep
        | M::Pext
        | M::Rorx
        | M::Sarx
        | M::Shlx
        | M::Shrx
        | M::Mulx => bmi,
        M::Adcx | M::Adox => adx,
        M::Jo
        | M::Jno
        | M::Jb
        | M::Jae
        | M::Je
        | M::Jne
        | M::Jbe
        | M::Ja
        | M::Js
        | M::Jns
        | M::Jp
        | M::Jnp
        | M::Jl
        | M::Jge
        | M::Jle
        | M::Jg => jcc,
        M::Jmp
            if i.op_kind(0) != OpKind::FarBranch16
                && i.op_kind(0) != OpKind::FarBranch32
                && !i.is_jmp_far_indirect() =>
        {
            jmp
        }
        M::Call if !i.is_call_far() && !i.is_call_far_indirect() => call,
        M::Ret => ret,
        M::Loop | M::Loope | M::Loopne => loop_op,
        M::Jrcxz | M::Jecxz => jrcxz,
        M::Clc | M::Stc | M::Cmc | M::Cld | M::Std | M::Lahf | M::Sahf => flag_op,
        M::Nop | M::Pause | M::Lfence | M::Mfence | M::Sfence => nop,
        // The hint-NOP space (0f 0d, 0f 18..0f 1f): prefetches, `cldemote`, and CET's
        // `endbr` and `rdssp`, which are NOPs while CET is disabled (libgcc's unwinder
        // runs `rdssp` and finds the shadow-stack pointer 0: no shadow stack).
        M::Reservednop | M::Endbr64 | M::Endbr32 | M::Rdsspd | M::Rdsspq | M::Cldemote => nop,
        M::Prefetchnta | M::Prefetcht0 | M::Prefetcht1 | M::Prefetcht2 | M::Prefetchw | M::Prefetch => nop,
        M::Prefetchit0 | M::Prefetchit1 | M::Prefetchwt1 => nop,
        M::Clflush | M::Clflushopt | M::Clwb => cache_line_op,
        M::Rdrand | M::Rdseed => rdrand,
        M::Rdpid => rdpid,
        M::Rdfsbase | M::Rdgsbase | M::Wrfsbase | M::Wrgsbase => fsgsbase,
        M::Cpuid => cpuid,
        M::Rdtsc | M::Rdtscp => rdtsc,
        M::Syscall => syscall,
        M::Int | M::Int3 | M::Int1 => int_n,
        M::Hlt => hlt,
        M::Cli | M::Sti | M::In | M::Out | M::Insb | M::Insw | M::Insd | M::Outsb | M::Outsw | M::Outsd => privileged,
        M::Lgdt | M::Lidt | M::Lldt | M::Ltr | M::Invlpg | M::Wrmsr | M::Rdmsr | M::Rdpmc | M::Sysret | M::Iretq => {
            privileged
        }
        M::Clts | M::Wbinvd | M::Invd | M::Swapgs => privileged,
        M::Movsd | M::Cmpsd if is_string(i) => string_op,
        M::Movsb | M::Movsw => string_op,
        M::Movsq => string_op,
        M::Stosb | M::Stosw | M::Stosd | M::Stosq => string_op,
        M::Lodsb | M::Lodsw | M::Lodsd | M::Lodsq => string_op,
        M::Cmpsb | M::Cmpsw | M::Cmpsq => string_op,
        M::Scasb | M::Scasw | M::Scasd | M::Scasq => string_op,
        _ => return None,
    };
    Some(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_and_sub_flags() {
        assert_eq!(add_flags(0xff, 1, 0, 1), (0, CF | ZF | AF | PF));
        assert_eq!(add_flags(0x7f, 1, 0, 1), (0x80, OF | SF | AF));
        assert_eq!(sub_flags(0, 1, 0, 4), (0xffff_ffff, CF | SF | AF | PF));
        assert_eq!(sub_flags(0x80, 1, 0, 1).1 & OF, OF);
        assert_eq!(add_flags(u64::MAX, 0, 1, 8).1 & CF, CF);
        assert_eq!(sub_flags(5, 5, 1, 8).1 & CF, CF);
    }
}
