//! Specialised handlers for the instruction forms that dominate real code.
//!
//! The generic handlers in `int` re-read operand kinds and sizes from the
//! decoded `Instruction` every time they run. Here the form is fixed at decode
//! time instead: register numbers, the immediate and the addressing mode are
//! stored in the `Op`, operand size and ALU kind are const generics, and a
//! `FLAGS` const generic selects a variant that skips computing the status
//! flags when the block's flag-liveness pass proved them dead (overwritten
//! before any read within the block). Anything not matched here falls back to
//! the generic handlers, so this module is purely an optimisation: the
//! differential tests run both tiers.

use iced_x86::{ConditionCode, Instruction, Mnemonic, OpKind, Register};

use super::operand::{gpr, mask, sext, sign_bit, Gpr};
use super::{run_generic, Handler, MemRef, Op, Trap};
use crate::cpu::flags::*;
use crate::cpu::{reg, Cpu};
use crate::memory::Memory;

type R = Result<(), Trap>;

/// Parity flag of every byte value.
static PARITY: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        if (i as u8).count_ones().is_multiple_of(2) {
            t[i] = PF as u8;
        }
        i += 1;
    }
    t
};

#[inline(always)]
fn szp<const S: u8>(r: u64) -> u64 {
    let r = r & mask(S);
    PARITY[r as u8 as usize] as u64 | if r == 0 { ZF } else { 0 } | ((r >> (8 * S as u32 - 1)) & 1) << 7
}

#[inline(always)]
fn set_flags(cpu: &mut Cpu, f: u64) {
    cpu.rflags = (cpu.rflags & !STATUS) | f;
}

/// Effective address from the precomputed addressing mode.
#[inline(always)]
pub(crate) fn ea(cpu: &Cpu, m: &MemRef) -> u64 {
    let base = cpu.gpr[(m.base & 15) as usize] & m.base_mask;
    let index = (cpu.gpr[(m.index & 15) as usize] & m.index_mask) << (m.scale & 3);
    let mut a = m.disp.wrapping_add(base).wrapping_add(index);
    if m.flags != 0 {
        a = ea_slow(cpu, m, a);
    }
    a
}

#[cold]
fn ea_slow(cpu: &Cpu, m: &MemRef, a: u64) -> u64 {
    let mut a = a;
    if m.flags & MemRef::ADDR32 != 0 {
        a &= 0xffff_ffff;
    }
    if m.flags & MemRef::FS != 0 {
        a = a.wrapping_add(cpu.fs_base);
    }
    if m.flags & MemRef::GS != 0 {
        a = a.wrapping_add(cpu.gs_base);
    }
    a
}

/// The fast path of a load; `None` sends the handler to `run_generic`.
#[inline(always)]
fn load<const S: u8>(mem: &Memory, a: u64) -> Option<u64> {
    mem.try_read::<S>(a)
}

/// The fast path of a store; false (nothing written) sends the handler to `run_generic`.
#[inline(always)]
fn store<const S: u8>(mem: &mut Memory, a: u64, v: u64) -> bool {
    mem.try_write::<S>(a, v)
}

/// Writes a full-width register slot of size 4 or 8 (4 zero-extends).
#[inline(always)]
fn set_reg<const S: u8>(cpu: &mut Cpu, r: u8, v: u64) {
    cpu.gpr[(r & 15) as usize] = v & mask(S);
}

// ---- ALU ----------------------------------------------------------------------

const ADD: u8 = 0;
const OR: u8 = 1;
const AND: u8 = 4;
const SUB: u8 = 5;
const XOR: u8 = 6;
const CMP: u8 = 7;
const TEST: u8 = 8;

/// Computes `a K b` and, when `F`, its status flags.
#[inline(always)]
fn alu_op<const K: u8, const S: u8, const F: bool>(a: u64, b: u64) -> (u64, u64) {
    let m = mask(S);
    let (a, b) = (a & m, b & m);
    match K {
        ADD => {
            let r = a.wrapping_add(b) & m;
            if !F {
                return (r, 0);
            }
            let cf = if S == 8 { r < a } else { (a + b) >> (8 * S as u32) != 0 };
            let of = ((a ^ r) & (b ^ r)) >> (8 * S as u32 - 1) & 1;
            (r, szp::<S>(r) | ((a ^ b ^ r) & AF) | cf as u64 | of << 11)
        }
        SUB | CMP => {
            let r = a.wrapping_sub(b) & m;
            if !F {
                return (r, 0);
            }
            let of = ((a ^ b) & (a ^ r)) >> (8 * S as u32 - 1) & 1;
            (r, szp::<S>(r) | ((a ^ b ^ r) & AF) | (a < b) as u64 | of << 11)
        }
        _ => {
            let r = match K {
                OR => a | b,
                AND | TEST => a & b,
                _ => a ^ b,
            };
            (r, if F { szp::<S>(r) } else { 0 })
        }
    }
}

fn alu_rr<const K: u8, const S: u8, const F: bool>(cpu: &mut Cpu, _: &mut Memory, op: &Op) -> R {
    let (r, f) = alu_op::<K, S, F>(cpu.gpr[(op.r0 & 15) as usize], cpu.gpr[(op.r1 & 15) as usize]);
    if K != CMP && K != TEST {
        set_reg::<S>(cpu, op.r0, r);
    }
    if F {
        set_flags(cpu, f);
    }
    Ok(())
}

fn alu_ri<const K: u8, const S: u8, const F: bool>(cpu: &mut Cpu, _: &mut Memory, op: &Op) -> R {
    let (r, f) = alu_op::<K, S, F>(cpu.gpr[(op.r0 & 15) as usize], op.a);
    if K != CMP && K != TEST {
        set_reg::<S>(cpu, op.r0, r);
    }
    if F {
        set_flags(cpu, f);
    }
    Ok(())
}

fn alu_rm<const K: u8, const S: u8, const F: bool>(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let Some(b) = load::<S>(mem, ea(cpu, &op.mem)) else { return run_generic(cpu, mem, op) };
    let (r, f) = alu_op::<K, S, F>(cpu.gpr[(op.r0 & 15) as usize], b);
    if K != CMP && K != TEST {
        set_reg::<S>(cpu, op.r0, r);
    }
    if F {
        set_flags(cpu, f);
    }
    Ok(())
}

/// Memory destination; `op.r1 == NO_REG` means the source is the immediate.
fn alu_m<const K: u8, const S: u8, const F: bool>(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let a = ea(cpu, &op.mem);
    let Some(d) = load::<S>(mem, a) else { return run_generic(cpu, mem, op) };
    let s = if op.r1 == NO_REG { op.a } else { cpu.gpr[(op.r1 & 15) as usize] };
    let (r, f) = alu_op::<K, S, F>(d, s);
    if K != CMP && K != TEST && !store::<S>(mem, a, r) {
        return run_generic(cpu, mem, op);
    }
    if F {
        set_flags(cpu, f);
    }
    Ok(())
}

fn incdec_r<const INC: bool, const S: u8, const F: bool>(cpu: &mut Cpu, _: &mut Memory, op: &Op) -> R {
    let a = cpu.gpr[(op.r0 & 15) as usize] & mask(S);
    let (r, f) = if INC { alu_op::<ADD, S, F>(a, 1) } else { alu_op::<SUB, S, F>(a, 1) };
    set_reg::<S>(cpu, op.r0, r);
    if F {
        cpu.rflags = (cpu.rflags & (!STATUS | CF)) | (f & !CF);
    }
    Ok(())
}

// ---- moves ----------------------------------------------------------------------

fn mov_rr<const S: u8>(cpu: &mut Cpu, _: &mut Memory, op: &Op) -> R {
    set_reg::<S>(cpu, op.r0, cpu.gpr[(op.r1 & 15) as usize]);
    Ok(())
}

fn mov_ri<const S: u8>(cpu: &mut Cpu, _: &mut Memory, op: &Op) -> R {
    set_reg::<S>(cpu, op.r0, op.a);
    Ok(())
}

fn mov_rm<const S: u8>(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let Some(v) = load::<S>(mem, ea(cpu, &op.mem)) else { return run_generic(cpu, mem, op) };
    set_reg::<S>(cpu, op.r0, v);
    Ok(())
}

fn mov_mr<const S: u8>(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let v = if op.r1 == NO_REG { op.a } else { cpu.gpr[(op.r1 & 15) as usize] };
    if !store::<S>(mem, ea(cpu, &op.mem), v) {
        return run_generic(cpu, mem, op);
    }
    Ok(())
}

/// movzx/movsx/movsxd into a 4- or 8-byte register from memory (size `SS`).
fn movx_rm<const SS: u8, const S: u8, const SIGNED: bool>(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let Some(v) = load::<SS>(mem, ea(cpu, &op.mem)) else { return run_generic(cpu, mem, op) };
    let v = if SIGNED { sext(v, SS) } else { v };
    set_reg::<S>(cpu, op.r0, v);
    Ok(())
}

/// movzx/movsx/movsxd from a low register (not AH..BH) of size `SS`.
fn movx_rr<const SS: u8, const S: u8, const SIGNED: bool>(cpu: &mut Cpu, _: &mut Memory, op: &Op) -> R {
    let v = cpu.gpr[(op.r1 & 15) as usize] & mask(SS);
    let v = if SIGNED { sext(v, SS) } else { v };
    set_reg::<S>(cpu, op.r0, v);
    Ok(())
}

fn lea<const S: u8>(cpu: &mut Cpu, _: &mut Memory, op: &Op) -> R {
    // lea ignores segment bases; MemRef never carries FS/GS for lea.
    set_reg::<S>(cpu, op.r0, ea(cpu, &op.mem));
    Ok(())
}

// ---- shifts -----------------------------------------------------------------------

const SHL: u8 = 0;
const SHR: u8 = 1;
const SAR: u8 = 2;

/// Shift by a non-zero immediate count (already masked) in `op.a`.
fn shift_ri<const K: u8, const S: u8, const F: bool>(cpu: &mut Cpu, _: &mut Memory, op: &Op) -> R {
    let bits = 8 * S as u32;
    let c = op.a as u32;
    let a = cpu.gpr[(op.r0 & 15) as usize] & mask(S);
    let (r, cf) = match K {
        SHL => ((a << c) & mask(S), if c > bits { 0 } else { (a >> (bits - c)) & 1 }),
        SHR => (a >> c, if c > bits { 0 } else { (a >> (c - 1)) & 1 }),
        _ => {
            let s = sext(a, S) as i64;
            ((s >> c) as u64 & mask(S), ((s >> (c - 1)) & 1) as u64)
        }
    };
    set_reg::<S>(cpu, op.r0, r);
    if F {
        let msb = |v: u64| (v >> (bits - 1)) & 1;
        let of = match K {
            SHL => msb(r) ^ cf,
            SHR => msb(a),
            _ => 0,
        };
        set_flags(cpu, szp::<S>(r) | cf | of << 11);
    }
    Ok(())
}

const ROL: u8 = 3;
const ROR: u8 = 4;

/// Rotate by a non-zero immediate count (already masked, and reduced modulo
/// the width) in `op.a`; only CF and OF change.
fn rotate_ri<const K: u8, const S: u8, const F: bool>(cpu: &mut Cpu, _: &mut Memory, op: &Op) -> R {
    let a = cpu.gpr[(op.r0 & 15) as usize] & mask(S);
    let (r, cf, of) = if S == 8 {
        let r = if K == ROL { a.rotate_left(op.a as u32) } else { a.rotate_right(op.a as u32) };
        if K == ROL {
            (r, r & 1, (r >> 63) ^ (r & 1))
        } else {
            (r, r >> 63, (r >> 63) ^ ((r >> 62) & 1))
        }
    } else {
        let v = a as u32;
        let r = if K == ROL { v.rotate_left(op.a as u32) } else { v.rotate_right(op.a as u32) } as u64;
        if K == ROL {
            (r, r & 1, (r >> 31) ^ (r & 1))
        } else {
            (r, r >> 31, (r >> 31) ^ ((r >> 30) & 1))
        }
    };
    set_reg::<S>(cpu, op.r0, r);
    if F {
        cpu.rflags = (cpu.rflags & !(CF | OF)) | cf | of << 11;
    }
    Ok(())
}

fn not_r<const S: u8>(cpu: &mut Cpu, _: &mut Memory, op: &Op) -> R {
    set_reg::<S>(cpu, op.r0, !cpu.gpr[(op.r0 & 15) as usize]);
    Ok(())
}

fn neg_r<const S: u8, const F: bool>(cpu: &mut Cpu, _: &mut Memory, op: &Op) -> R {
    let (r, f) = alu_op::<SUB, S, F>(0, cpu.gpr[(op.r0 & 15) as usize]);
    set_reg::<S>(cpu, op.r0, r);
    if F {
        set_flags(cpu, f);
    }
    Ok(())
}

// ---- BMI1/BMI2 register forms (SHA-256 and hash loops built for x86-64-v3) --------------

/// `rorx r, r, imm8` (count in `Op::a`); no flags.
fn rorx_rr<const S: u8>(cpu: &mut Cpu, _: &mut Memory, op: &Op) -> R {
    let x = cpu.gpr[(op.r1 & 15) as usize];
    let r = if S == 4 { (x as u32).rotate_right(op.a as u32) as u64 } else { x.rotate_right(op.a as u32) };
    set_reg::<S>(cpu, op.r0, r);
    Ok(())
}

const SHLX: u8 = 0;
const SHRX: u8 = 1;
const SARX: u8 = 2;

/// `shlx/shrx/sarx r, r, r` (the count register's index in `Op::a`); no flags.
fn shiftx_rr<const K: u8, const S: u8>(cpu: &mut Cpu, _: &mut Memory, op: &Op) -> R {
    let x = cpu.gpr[(op.r1 & 15) as usize] & mask(S);
    let c = cpu.gpr[(op.a & 15) as usize] as u32 & (8 * S as u32 - 1);
    let r = match K {
        SHLX => x << c,
        SHRX => x >> c,
        _ => (sext(x, S) as i64 >> c) as u64,
    };
    set_reg::<S>(cpu, op.r0, r);
    Ok(())
}

/// `andn r, r, r` (the second source's index in `Op::a`): SF and ZF from the result, the
/// other status flags cleared (as the generic handler).
fn andn_rr<const S: u8, const F: bool>(cpu: &mut Cpu, _: &mut Memory, op: &Op) -> R {
    let r = !cpu.gpr[(op.r1 & 15) as usize] & cpu.gpr[(op.a & 15) as usize] & mask(S);
    set_reg::<S>(cpu, op.r0, r);
    if F {
        set_flags(cpu, szp::<S>(r) & (ZF | SF));
    }
    Ok(())
}

fn imul_rr<const S: u8, const F: bool>(cpu: &mut Cpu, _: &mut Memory, op: &Op) -> R {
    imul_core::<S, F>(
        cpu,
        op.r0,
        cpu.gpr[(op.r1 & 15) as usize],
        if op.mem.flags & MemRef::THREE != 0 { op.a } else { cpu.gpr[(op.r0 & 15) as usize] },
    )
}

fn imul_rm<const S: u8, const F: bool>(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let Some(b) = load::<S>(mem, ea(cpu, &op.mem)) else { return run_generic(cpu, mem, op) };
    imul_core::<S, F>(
        cpu,
        op.r0,
        b,
        if op.mem.flags & MemRef::THREE != 0 { op.a } else { cpu.gpr[(op.r0 & 15) as usize] },
    )
}

#[inline(always)]
fn imul_core<const S: u8, const F: bool>(cpu: &mut Cpu, dst: u8, a: u64, b: u64) -> R {
    let (a, b) = (sext(a & mask(S), S) as i64, sext(b & mask(S), S) as i64);
    let (r, of) = if S == 8 {
        a.overflowing_mul(b)
    } else {
        let p = a * b;
        (p, p != (p as i32) as i64)
    };
    let r = r as u64 & mask(S);
    set_reg::<S>(cpu, dst, r);
    if F {
        set_flags(cpu, szp::<S>(r) | if of { CF | OF } else { 0 });
    }
    Ok(())
}

// ---- stack and control flow ------------------------------------------------------------

fn push_r(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let sp = cpu.gpr[reg::RSP].wrapping_sub(8);
    if !store::<8>(mem, sp, cpu.gpr[(op.r0 & 15) as usize]) {
        return run_generic(cpu, mem, op);
    }
    cpu.gpr[reg::RSP] = sp;
    Ok(())
}

fn pop_r(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let sp = cpu.gpr[reg::RSP];
    let Some(v) = load::<8>(mem, sp) else { return run_generic(cpu, mem, op) };
    cpu.gpr[reg::RSP] = sp.wrapping_add(8);
    cpu.gpr[(op.r0 & 15) as usize] = v;
    Ok(())
}

fn jmp_rel(cpu: &mut Cpu, _: &mut Memory, op: &Op) -> R {
    cpu.rip = op.a;
    Ok(())
}

fn call_rel(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let sp = cpu.gpr[reg::RSP].wrapping_sub(8);
    if !store::<8>(mem, sp, op.insn.next_ip()) {
        return run_generic(cpu, mem, op);
    }
    cpu.gpr[reg::RSP] = sp;
    cpu.rip = op.a;
    Ok(())
}

fn ret_near(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let sp = cpu.gpr[reg::RSP];
    let Some(t) = load::<8>(mem, sp) else { return run_generic(cpu, mem, op) };
    cpu.gpr[reg::RSP] = sp.wrapping_add(8);
    cpu.rip = t;
    Ok(())
}

#[inline(always)]
fn cond<const CC: u8>(f: u64) -> bool {
    let s = f & SF != 0;
    let o = f & OF != 0;
    match CC {
        0 => o,
        1 => !o,
        2 => f & CF != 0,
        3 => f & CF == 0,
        4 => f & ZF != 0,
        5 => f & ZF == 0,
        6 => f & (CF | ZF) != 0,
        7 => f & (CF | ZF) == 0,
        8 => s,
        9 => !s,
        10 => f & PF != 0,
        11 => f & PF == 0,
        12 => s != o,
        13 => s == o,
        14 => f & ZF != 0 || s != o,
        _ => f & ZF == 0 && s == o,
    }
}

fn jcc<const CC: u8>(cpu: &mut Cpu, _: &mut Memory, op: &Op) -> R {
    if cond::<CC>(cpu.rflags) {
        cpu.rip = op.a;
    }
    Ok(())
}

fn cmov_rr<const CC: u8, const S: u8>(cpu: &mut Cpu, _: &mut Memory, op: &Op) -> R {
    let v = if cond::<CC>(cpu.rflags) { cpu.gpr[(op.r1 & 15) as usize] } else { cpu.gpr[(op.r0 & 15) as usize] };
    set_reg::<S>(cpu, op.r0, v);
    Ok(())
}

// ---- selection -------------------------------------------------------------------------

/// Marks "no register" in `Op::r0`/`r1`.
pub(crate) const NO_REG: u8 = 0xff;

/// A full register usable by the fast forms: 4- or 8-byte GPR.
pub(crate) fn wide_reg(r: Register) -> Option<(u8, u8)> {
    match gpr(r) {
        Some(Gpr { idx, size: size @ (4 | 8), .. }) => Some((idx as u8, size)),
        _ => None,
    }
}

/// A low 1- or 2-byte register (no AH..BH) as a movzx/movsx source.
fn narrow_reg(r: Register) -> Option<(u8, u8)> {
    match gpr(r) {
        Some(Gpr { idx, size: size @ (1 | 2), high: false }) => Some((idx as u8, size)),
        _ => None,
    }
}

/// The precomputed addressing mode of the instruction's memory operand.
pub(crate) fn mem_ref(i: &Instruction, with_segment: bool) -> Option<MemRef> {
    let mut m = MemRef { disp: i.memory_displacement64(), ..MemRef::default() };
    let mut addr32 = false;
    match i.memory_base() {
        Register::None | Register::RIP => {}
        Register::EIP => addr32 = true,
        b => {
            let g = gpr(b)?;
            addr32 |= g.size == 4;
            m.base = g.idx as u8;
            m.base_mask = u64::MAX;
        }
    }
    if i.memory_index() != Register::None {
        let g = gpr(i.memory_index())?;
        addr32 |= g.size == 4;
        m.index = g.idx as u8;
        m.index_mask = u64::MAX;
        m.scale = i.memory_index_scale().trailing_zeros() as u8;
    }
    if addr32 {
        m.flags |= MemRef::ADDR32;
    }
    if with_segment {
        match i.memory_segment() {
            Register::FS => m.flags |= MemRef::FS,
            Register::GS => m.flags |= MemRef::GS,
            _ => {}
        }
    }
    Some(m)
}

macro_rules! by_size {
    ($s:expr, $f:ident [$($p:expr),*]) => {
        match $s { 4 => $f::<$({$p},)* 4> as Handler, _ => $f::<$({$p},)* 8> as Handler }
    };
}

macro_rules! by_size_flags {
    ($s:expr, $live:expr, $f:ident [$($p:expr),*]) => {
        match ($s, $live) {
            (4, true) => $f::<$({$p},)* 4, true> as Handler,
            (4, false) => $f::<$({$p},)* 4, false> as Handler,
            (_, true) => $f::<$({$p},)* 8, true> as Handler,
            (_, false) => $f::<$({$p},)* 8, false> as Handler,
        }
    };
}

macro_rules! by_cc {
    ($cc:expr, $f:ident, $($p:tt),*) => {
        match $cc {
            ConditionCode::o => $f::<0 $(,$p)*> as Handler,
            ConditionCode::no => $f::<1 $(,$p)*>,
            ConditionCode::b => $f::<2 $(,$p)*>,
            ConditionCode::ae => $f::<3 $(,$p)*>,
            ConditionCode::e => $f::<4 $(,$p)*>,
            ConditionCode::ne => $f::<5 $(,$p)*>,
            ConditionCode::be => $f::<6 $(,$p)*>,
            ConditionCode::a => $f::<7 $(,$p)*>,
            ConditionCode::s => $f::<8 $(,$p)*>,
            ConditionCode::ns => $f::<9 $(,$p)*>,
            ConditionCode::p => $f::<10 $(,$p)*>,
            ConditionCode::np => $f::<11 $(,$p)*>,
            ConditionCode::l => $f::<12 $(,$p)*>,
            ConditionCode::ge => $f::<13 $(,$p)*>,
            ConditionCode::le => $f::<14 $(,$p)*>,
            ConditionCode::g => $f::<15 $(,$p)*>,
            ConditionCode::None => return None,
        }
    };
}

// ---- fused compare-and-branch -----------------------------------------------------------

/// Whether `jcc` with condition `CC` jumps after `cmp a, b` (`K` = CMP) or
/// `test a, b` (`K` = TEST) at size `S`, computed from the operands without
/// materialising any flag.
#[inline(always)]
fn cmp_cond<const CC: u8, const K: u8, const S: u8>(a: u64, b: u64) -> bool {
    let m = mask(S);
    let (a, b) = (a & m, b & m);
    let sign = |x: u64| x & sign_bit(S) != 0;
    let parity = |x: u64| (x as u8).count_ones().is_multiple_of(2);
    if K == TEST {
        let r = a & b;
        return match CC {
            0 | 2 => false,
            1 | 3 => true,
            4 | 6 => r == 0,
            5 | 7 => r != 0,
            8 | 12 => sign(r),
            9 | 13 => !sign(r),
            10 => parity(r),
            11 => !parity(r),
            14 => r == 0 || sign(r),
            _ => r != 0 && !sign(r),
        };
    }
    let r = a.wrapping_sub(b) & m;
    let (sa, sb) = (sext(a, S) as i64, sext(b, S) as i64);
    match CC {
        0 => sign((a ^ b) & (a ^ r)),
        1 => !sign((a ^ b) & (a ^ r)),
        2 => a < b,
        3 => a >= b,
        4 => a == b,
        5 => a != b,
        6 => a <= b,
        7 => a > b,
        8 => sign(r),
        9 => !sign(r),
        10 => parity(r),
        11 => !parity(r),
        12 => sa < sb,
        13 => sa >= sb,
        14 => sa <= sb,
        _ => sa > sb,
    }
}

/// `cmp`/`test` of a register with a register (`IMM` false, `op.r1`) or an
/// immediate (`op.a`) together with the `jcc` after it (target in
/// `op.mem.disp`), used when the flags are dead after the jump: one dispatch
/// and no flags computed. The `jcc` stays in the block for counting.
fn cmp_jcc<const CC: u8, const K: u8, const S: u8, const IMM: bool>(cpu: &mut Cpu, _: &mut Memory, op: &Op) -> R {
    let a = cpu.gpr[(op.r0 & 15) as usize];
    let b = if IMM { op.a } else { cpu.gpr[(op.r1 & 15) as usize] };
    if cmp_cond::<CC, K, S>(a, b) {
        cpu.rip = op.mem.disp;
    }
    Ok(())
}

/// The fused handler for `cmp`/`test` followed by `jcc` (see `cmp_jcc`),
/// with its operands stored into `op`; `None` when the pair has another form.
/// The caller guarantees that no flag is read after the jump.
pub(crate) fn fuse_cmp_jcc(cmp: &Instruction, jcc: &Instruction, op: &mut Op) -> Option<Handler> {
    let kind = match cmp.mnemonic() {
        Mnemonic::Cmp => CMP,
        Mnemonic::Test => TEST,
        _ => return None,
    };
    if !jcc.is_jcc_short_or_near() || cmp.op_count() != 2 || cmp.op0_kind() != OpKind::Register {
        return None;
    }
    let (r0, s) = wide_reg(cmp.op0_register())?;
    let imm = match cmp.op1_kind() {
        OpKind::Register => {
            op.r1 = wide_reg(cmp.op1_register())?.0;
            false
        }
        OpKind::Immediate8to32 | OpKind::Immediate8to64 | OpKind::Immediate32 | OpKind::Immediate32to64 => {
            op.a = cmp.immediate(1);
            true
        }
        _ => return None,
    };
    op.r0 = r0;
    op.mem.disp = jcc.near_branch_target();
    let cc = jcc.condition_code();
    Some(match (kind, s, imm) {
        (CMP, 4, false) => by_cc!(cc, cmp_jcc, CMP, 4, false),
        (CMP, 4, true) => by_cc!(cc, cmp_jcc, CMP, 4, true),
        (CMP, _, false) => by_cc!(cc, cmp_jcc, CMP, 8, false),
        (CMP, _, true) => by_cc!(cc, cmp_jcc, CMP, 8, true),
        (_, 4, false) => by_cc!(cc, cmp_jcc, TEST, 4, false),
        (_, 4, true) => by_cc!(cc, cmp_jcc, TEST, 4, true),
        (_, _, false) => by_cc!(cc, cmp_jcc, TEST, 8, false),
        (_, _, true) => by_cc!(cc, cmp_jcc, TEST, 8, true),
    })
}

fn alu_kind(m: Mnemonic) -> Option<u8> {
    Some(match m {
        Mnemonic::Add => ADD,
        Mnemonic::Or => OR,
        Mnemonic::And => AND,
        Mnemonic::Sub => SUB,
        Mnemonic::Xor => XOR,
        Mnemonic::Cmp => CMP,
        Mnemonic::Test => TEST,
        _ => return None,
    })
}

fn alu_handler(kind: u8, form: u8, s: u8, live: bool) -> Handler {
    macro_rules! kinds {
        ($f:ident) => {
            match kind {
                ADD => by_size_flags!(s, live, $f[ADD]),
                OR => by_size_flags!(s, live, $f[OR]),
                AND => by_size_flags!(s, live, $f[AND]),
                SUB => by_size_flags!(s, live, $f[SUB]),
                XOR => by_size_flags!(s, live, $f[XOR]),
                CMP => by_size_flags!(s, live, $f[CMP]),
                _ => by_size_flags!(s, live, $f[TEST]),
            }
        };
    }
    match form {
        0 => kinds!(alu_rr),
        1 => kinds!(alu_ri),
        2 => kinds!(alu_rm),
        _ => kinds!(alu_m),
    }
}

/// The fast handler for `i`, with its precomputed operands stored into `op`;
/// `None` leaves the instruction to the generic tier. `flags_live` says
/// whether any status flag this instruction writes may be read later.
pub(crate) fn specialize(i: &Instruction, flags_live: bool, op: &mut Op) -> Option<Handler> {
    use Mnemonic as M;
    let k0 = i.op0_kind();
    let k1 = if i.op_count() > 1 { i.op1_kind() } else { OpKind::Register };
    let is_imm = |k: OpKind| {
        matches!(
            k,
            OpKind::Immediate8
                | OpKind::Immediate16
                | OpKind::Immediate32
                | OpKind::Immediate64
                | OpKind::Immediate8to32
                | OpKind::Immediate8to64
                | OpKind::Immediate32to64
        )
    };
    let m = i.mnemonic();
    if i.has_lock_prefix() && !matches!(m, M::Add | M::Or | M::And | M::Sub | M::Xor) {
        return None;
    }
    let h = match m {
        _ if alu_kind(m).is_some() => {
            let kind = alu_kind(m)?;
            match (k0, k1) {
                (OpKind::Register, OpKind::Register) => {
                    let (r0, s) = wide_reg(i.op0_register())?;
                    let (r1, _) = wide_reg(i.op1_register())?;
                    op.r0 = r0;
                    op.r1 = r1;
                    alu_handler(kind, 0, s, flags_live)
                }
                (OpKind::Register, k) if is_imm(k) => {
                    let (r0, s) = wide_reg(i.op0_register())?;
                    op.r0 = r0;
                    op.a = i.immediate(1);
                    alu_handler(kind, 1, s, flags_live)
                }
                (OpKind::Register, OpKind::Memory) => {
                    let (r0, s) = wide_reg(i.op0_register())?;
                    op.r0 = r0;
                    op.mem = mem_ref(i, true)?;
                    alu_handler(kind, 2, s, flags_live)
                }
                (OpKind::Memory, k) => {
                    let s = i.memory_size().size() as u8;
                    if s != 4 && s != 8 {
                        return None;
                    }
                    op.mem = mem_ref(i, true)?;
                    if k == OpKind::Register {
                        op.r1 = wide_reg(i.op1_register())?.0;
                    } else if is_imm(k) {
                        op.r1 = NO_REG;
                        op.a = i.immediate(1);
                    } else {
                        return None;
                    }
                    alu_handler(kind, 3, s, flags_live)
                }
                _ => return None,
            }
        }
        M::Mov => match (k0, k1) {
            (OpKind::Register, OpKind::Register) => {
                let (r0, s) = wide_reg(i.op0_register())?;
                op.r0 = r0;
                op.r1 = wide_reg(i.op1_register())?.0;
                by_size!(s, mov_rr[])
            }
            (OpKind::Register, k) if is_imm(k) => {
                let (r0, s) = wide_reg(i.op0_register())?;
                op.r0 = r0;
                op.a = i.immediate(1);
                by_size!(s, mov_ri[])
            }
            (OpKind::Register, OpKind::Memory) => {
                let (r0, s) = wide_reg(i.op0_register())?;
                op.r0 = r0;
                op.mem = mem_ref(i, true)?;
                by_size!(s, mov_rm[])
            }
            (OpKind::Memory, k) => {
                op.mem = mem_ref(i, true)?;
                let s = i.memory_size().size() as u8;
                if k == OpKind::Register {
                    let g = gpr(i.op1_register())?;
                    if g.high {
                        return None;
                    }
                    op.r1 = g.idx as u8;
                } else if is_imm(k) {
                    op.r1 = NO_REG;
                    op.a = i.immediate(1);
                } else {
                    return None;
                }
                match s {
                    1 => mov_mr::<1> as Handler,
                    2 => mov_mr::<2>,
                    4 => mov_mr::<4>,
                    8 => mov_mr::<8>,
                    _ => return None,
                }
            }
            _ => return None,
        },
        M::Movzx | M::Movsx | M::Movsxd => {
            let (r0, s) = wide_reg(i.op0_register())?;
            op.r0 = r0;
            let signed = m != M::Movzx;
            match k1 {
                OpKind::Memory => {
                    op.mem = mem_ref(i, true)?;
                    match (i.memory_size().size(), s, signed) {
                        (1, 4, false) => movx_rm::<1, 4, false> as Handler,
                        (1, 8, false) => movx_rm::<1, 8, false>,
                        (2, 4, false) => movx_rm::<2, 4, false>,
                        (2, 8, false) => movx_rm::<2, 8, false>,
                        (1, 4, true) => movx_rm::<1, 4, true>,
                        (1, 8, true) => movx_rm::<1, 8, true>,
                        (2, 4, true) => movx_rm::<2, 4, true>,
                        (2, 8, true) => movx_rm::<2, 8, true>,
                        (4, 8, true) => movx_rm::<4, 8, true>,
                        _ => return None,
                    }
                }
                OpKind::Register => {
                    let (r1, ss) = match narrow_reg(i.op1_register()) {
                        Some(x) => x,
                        None => wide_reg(i.op1_register()).filter(|&(_, ss)| ss == 4 && s == 8)?,
                    };
                    op.r1 = r1;
                    match (ss, s, signed) {
                        (1, 4, false) => movx_rr::<1, 4, false> as Handler,
                        (1, 8, false) => movx_rr::<1, 8, false>,
                        (2, 4, false) => movx_rr::<2, 4, false>,
                        (2, 8, false) => movx_rr::<2, 8, false>,
                        (1, 4, true) => movx_rr::<1, 4, true>,
                        (1, 8, true) => movx_rr::<1, 8, true>,
                        (2, 4, true) => movx_rr::<2, 4, true>,
                        (2, 8, true) => movx_rr::<2, 8, true>,
                        (4, 8, true) => movx_rr::<4, 8, true>,
                        _ => return None,
                    }
                }
                _ => return None,
            }
        }
        M::Lea => {
            let (r0, s) = wide_reg(i.op0_register())?;
            op.r0 = r0;
            op.mem = mem_ref(i, false)?;
            by_size!(s, lea[])
        }
        M::Inc | M::Dec if k0 == OpKind::Register => {
            let (r0, s) = wide_reg(i.op0_register())?;
            op.r0 = r0;
            if m == M::Inc {
                by_size_flags!(s, flags_live, incdec_r[true])
            } else {
                by_size_flags!(s, flags_live, incdec_r[false])
            }
        }
        M::Shl | M::Sal | M::Shr | M::Sar if k0 == OpKind::Register && is_imm(k1) => {
            let (r0, s) = wide_reg(i.op0_register())?;
            let c = i.immediate(1) & if s == 8 { 63 } else { 31 };
            if c == 0 {
                return None;
            }
            op.r0 = r0;
            op.a = c;
            match m {
                M::Shl | M::Sal => by_size_flags!(s, flags_live, shift_ri[SHL]),
                M::Shr => by_size_flags!(s, flags_live, shift_ri[SHR]),
                _ => by_size_flags!(s, flags_live, shift_ri[SAR]),
            }
        }
        M::Rol | M::Ror if k0 == OpKind::Register && is_imm(k1) => {
            let (r0, s) = wide_reg(i.op0_register())?;
            let c = i.immediate(1) & if s == 8 { 63 } else { 31 };
            if c == 0 {
                return None;
            }
            op.r0 = r0;
            op.a = c;
            if m == M::Rol {
                by_size_flags!(s, flags_live, rotate_ri[ROL])
            } else {
                by_size_flags!(s, flags_live, rotate_ri[ROR])
            }
        }
        M::Not if k0 == OpKind::Register => {
            let (r0, s) = wide_reg(i.op0_register())?;
            op.r0 = r0;
            by_size!(s, not_r[])
        }
        M::Neg if k0 == OpKind::Register => {
            let (r0, s) = wide_reg(i.op0_register())?;
            op.r0 = r0;
            by_size_flags!(s, flags_live, neg_r[])
        }
        M::Imul if i.op_count() >= 2 => {
            let (r0, s) = wide_reg(i.op0_register())?;
            op.r0 = r0;
            // The source is operand 1 in both forms (`imul r, r/m` and `imul r, r/m, imm`).
            let src = 1;
            let mut flags = 0;
            if i.op_count() == 3 {
                op.a = i.immediate(2);
                flags = MemRef::THREE;
            }
            match i.op_kind(src) {
                OpKind::Register => {
                    op.r1 = wide_reg(i.op_register(src))?.0;
                    op.mem.flags = flags;
                    by_size_flags!(s, flags_live, imul_rr[])
                }
                OpKind::Memory => {
                    op.mem = mem_ref(i, true)?;
                    op.mem.flags |= flags;
                    by_size_flags!(s, flags_live, imul_rm[])
                }
                _ => return None,
            }
        }
        M::Rorx if k1 == OpKind::Register => {
            let (r0, s) = wide_reg(i.op0_register())?;
            op.r0 = r0;
            op.r1 = wide_reg(i.op1_register())?.0;
            op.a = (i.immediate8() as u32 % (8 * s as u32)) as u64;
            by_size!(s, rorx_rr[])
        }
        M::Shlx | M::Shrx | M::Sarx | M::Andn if k1 == OpKind::Register && i.op2_kind() == OpKind::Register => {
            let (r0, s) = wide_reg(i.op0_register())?;
            op.r0 = r0;
            op.r1 = wide_reg(i.op1_register())?.0;
            op.a = wide_reg(i.op2_register())?.0 as u64;
            match m {
                M::Shlx => by_size!(s, shiftx_rr[SHLX]),
                M::Shrx => by_size!(s, shiftx_rr[SHRX]),
                M::Sarx => by_size!(s, shiftx_rr[SARX]),
                _ => by_size_flags!(s, flags_live, andn_rr[]),
            }
        }
        M::Push if k0 == OpKind::Register => {
            let (r0, s) = wide_reg(i.op0_register())?;
            if s != 8 {
                return None;
            }
            op.r0 = r0;
            push_r
        }
        M::Pop if k0 == OpKind::Register => {
            let (r0, s) = wide_reg(i.op0_register())?;
            if s != 8 {
                return None;
            }
            op.r0 = r0;
            pop_r
        }
        M::Jmp if k0 == OpKind::NearBranch64 => {
            op.a = i.near_branch_target();
            jmp_rel
        }
        M::Call if k0 == OpKind::NearBranch64 => {
            op.a = i.near_branch_target();
            call_rel
        }
        M::Ret if i.op_count() == 0 => ret_near,
        _ if i.is_jcc_short_or_near() => {
            op.a = i.near_branch_target();
            by_cc!(i.condition_code(), jcc,)
        }
        _ if (Mnemonic::Cmova as u32..=Mnemonic::Cmovs as u32).contains(&(m as u32)) && k1 == OpKind::Register => {
            let (r0, s) = wide_reg(i.op0_register())?;
            op.r0 = r0;
            op.r1 = wide_reg(i.op1_register())?.0;
            if s == 4 {
                by_cc!(i.condition_code(), cmov_rr, 4)
            } else {
                by_cc!(i.condition_code(), cmov_rr, 8)
            }
        }
        _ => return None,
    };
    Some(h)
}
