//! x87 instructions at full 80-bit precision.
//!
//! Design:
//! - Arithmetic is exact soft float in [`float`] (one rounding per result,
//!   precision and rounding control from the control word). Transcendental
//!   instructions (`f2xm1`, `fyl2x`, `fyl2xp1`, `fptan`, `fpatan`, `fsin`,
//!   `fcos`, `fsincos`, in [`trans`]) handle special operands exactly and
//!   evaluate finite results with a 128-bit significand (trig arguments
//!   reduced with the hardware's 66-bit pi), rounded once: nearly correctly
//!   rounded. Hardware is within ~0.6 ulp of exact, so results agree bit for
//!   bit with the host for ~98-99.5% of random operands (fptan ~87%) and are
//!   otherwise exactly 1 ulp apart; C1 (round-up) can differ where the
//!   exact value lies very close to a representable number. Status bits
//!   other than C1 agree.
//! - Handlers are chosen at decode time; each instruction family is one
//!   generic handler monomorphized per operation (const parameters), so
//!   nothing matches on mnemonics while running.
//! - Exceptions: flags accumulate in a [`float::Ctx`]; masked exceptions get
//!   the hardware's masked response (QNaN indefinite, integer indefinite,
//!   infinities, denormals). An unmasked exception sets ES (and B) and,
//!   for IE/DE/ZE, suppresses the result and any pop, for OE/UE stores the
//!   exponent-adjusted result (register destinations) or nothing (memory
//!   destinations), for PE stores the result — as hardware does. Like
//!   hardware, the #MF itself is *deferred*: the next waiting x87
//!   instruction (everything except `fninit`, `fnclex`, `fnstcw`, `fnstsw`,
//!   `fnstenv`, `fnsave`, `fxsave`, `fxrstor`) finds ES set and returns
//!   `Trap::FloatingPoint` before doing anything, with `rip` at that
//!   instruction and FIP still naming the instruction that failed.
//! - Memory operands are read before any state changes, and stores happen
//!   before the status word, tags or TOP change, so a page fault leaves the
//!   FPU untouched.
//! - FOP is not tracked (stored as 0, like recent Intel cores); FIP is the
//!   address of the last non-control instruction and FDP its memory operand.

pub(crate) mod float;
#[cfg(test)]
mod tests;
mod trans;

use iced_x86::{Instruction, MemorySize, Mnemonic, OpKind, Register};

use self::float::{Class, Ctx, Order, Rc, DE, IE, INDEFINITE, OE, SF, UE};
use self::trans::{self as trig, Trig};
use super::operand::{ea, gpr, set_gpr};
use super::{Handler, Op, Trap};
use crate::cpu::flags::{AF, CF, OF, PF, SF as SF_FLAG, ZF};
use crate::cpu::{Cpu, MXCSR_MASK};
use crate::memory::Memory;
use crate::x87::{fsw, X87State};

type R = Result<(), Trap>;

// ---- common helpers ----------------------------------------------------------

/// The pending-exception check of waiting instructions.
#[inline(always)]
pub(crate) fn wait(cpu: &Cpu) -> R {
    if cpu.x87.fsw & fsw::ES != 0 {
        Err(Trap::FloatingPoint)
    } else {
        Ok(())
    }
}

/// `ST(i)` from an `STi` register operand.
#[inline(always)]
fn sti(r: Register) -> usize {
    (r as usize).wrapping_sub(Register::ST0 as usize) & 7
}

/// Merges exception flags and C1 into the status word and updates ES.
#[inline]
fn raise(x: &mut X87State, flags: u16, c1: bool) {
    x.fsw = (x.fsw & !fsw::C1) | (c1 as u16) << 9 | (flags & (fsw::EXCEPTIONS | fsw::SF));
    if flags & !x.fcw & fsw::EXCEPTIONS != 0 {
        x.fsw |= fsw::ES | fsw::B;
    }
}

/// Records the instruction (and data) pointer of a non-control instruction.
#[inline(always)]
fn note(x: &mut X87State, op: &Op, addr: Option<u64>) {
    x.fip = op.insn.ip();
    if let Some(a) = addr {
        x.fdp = a;
    }
}

/// Sets C3, C2, C0 (C1 untouched).
fn set_cc(x: &mut X87State, c3: bool, c2: bool, c0: bool) {
    x.fsw = (x.fsw & !(fsw::C3 | fsw::C2 | fsw::C0)) | (c3 as u16) << 14 | (c2 as u16) << 10 | (c0 as u16) << 8;
}

fn read80(mem: &mut Memory, a: u64) -> Result<u128, Trap> {
    let lo = mem.read_u64(a)?;
    let hi = mem.read_u16(a.wrapping_add(8))?;
    Ok((hi as u128) << 64 | lo as u128)
}

fn write80(mem: &mut Memory, a: u64, v: u128) -> R {
    mem.probe_write(a, 10)?;
    mem.write_u64(a, v as u64)?;
    mem.write_u16(a.wrapping_add(8), (v >> 64) as u16)
}

/// Reads a memory operand as an 80-bit value, exactly. SNaNs stay
/// signaling (the operation decides); denormal singles/doubles set
/// `ctx.src_denormal` (DE is raised only if the operation uses the value).
fn load_mem(mem: &mut Memory, i: &Instruction, a: u64, ctx: &mut Ctx) -> Result<u128, Trap> {
    Ok(match i.memory_size() {
        MemorySize::Float32 => float::from_f32(mem.read_u32(a)?, ctx),
        MemorySize::Float64 => float::from_f64(mem.read_u64(a)?, ctx),
        MemorySize::Float80 => read80(mem, a)?,
        MemorySize::Int16 => float::from_i64(mem.read_u16(a)? as i16 as i64),
        MemorySize::Int32 => float::from_i64(mem.read_u32(a)? as i32 as i64),
        MemorySize::Int64 => float::from_i64(mem.read_u64(a)? as i64),
        MemorySize::Bcd => {
            let mut b = [0u8; 10];
            mem.read_into(a, &mut b)?;
            float::from_bcd(&b)
        }
        _ => return Err(Trap::InvalidOpcode),
    })
}

/// Quiets an SNaN that is about to be stored in a register (IE).
fn quiet_load(v: u128, ctx: &mut Ctx) -> u128 {
    if float::class(v) == Class::SNaN {
        ctx.flags |= IE;
        v | 1 << 62
    } else {
        v
    }
}

/// Pushes `v` with the stack-overflow check; `ctx` carries the flags of
/// producing `v`. Returns nothing: the state is complete afterwards.
fn push_checked(x: &mut X87State, v: u128, mut ctx: Ctx) {
    if !x.is_empty(7) {
        ctx.flags = IE | SF;
        raise(x, ctx.flags, true);
        if ctx.mask & IE != 0 {
            x.push(INDEFINITE);
        }
        return;
    }
    let blocked = ctx.flags & !ctx.mask & IE != 0;
    raise(x, ctx.flags, ctx.up);
    if !blocked {
        x.push(v);
    }
}

// ---- loads -----------------------------------------------------------------------

fn fld(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    wait(cpu)?;
    let i = &op.insn;
    let mut ctx = Ctx::full(cpu.x87.fcw);
    let (v, addr) = if i.op_kind(0) == OpKind::Memory {
        let a = ea(cpu, i);
        let v = load_mem(mem, i, a, &mut ctx)?;
        if ctx.src_denormal {
            // Loads flag a denormal source but still complete.
            ctx.flags |= DE;
            ctx.src_denormal = false;
        }
        match i.memory_size() {
            MemorySize::Float32 | MemorySize::Float64 => (quiet_load(v, &mut ctx), Some(a)),
            _ => (v, Some(a)),
        }
    } else {
        let s = sti(i.op0_register());
        if cpu.x87.is_empty(s) {
            ctx.flags |= IE | SF;
            (INDEFINITE, None)
        } else {
            (cpu.x87.st(s), None)
        }
    };
    let x = &mut cpu.x87;
    note(x, op, addr);
    if ctx.flags & SF != 0 {
        // An empty source is an underflow (C1 = 0) even when the stack is
        // also full (checked on the host).
        raise(x, ctx.flags, false);
        if ctx.mask & IE != 0 {
            x.push(INDEFINITE);
        }
        return Ok(());
    }
    push_checked(x, v, ctx);
    Ok(())
}

const C_ONE: u8 = 0;
const C_L2T: u8 = 1;
const C_L2E: u8 = 2;
const C_PI: u8 = 3;
const C_LG2: u8 = 4;
const C_LN2: u8 = 5;
const C_ZERO: u8 = 6;

/// The constants, rounded to nearest; `bump` is +1 when the exact value
/// lies above the stored one (and so rounds up under RC=up), -1 when the
/// nearest value was rounded up (so RC=down/zero takes the one below).
fn constant(k: u8, rc: Rc) -> u128 {
    let (exp, sig, bump): (u32, u64, i8) = match k {
        C_ONE => (0x3fff, 1 << 63, 0),
        C_L2T => (0x4000, 0xd49a_784b_cd1b_8afe, 1),
        C_L2E => (0x3fff, 0xb8aa_3b29_5c17_f0bc, -1),
        C_PI => (0x4000, 0xc90f_daa2_2168_c235, -1),
        C_LG2 => (0x3ffd, 0x9a20_9a84_fbcf_f799, -1),
        C_LN2 => (0x3ffe, 0xb172_17f7_d1cf_79ac, -1),
        _ => (0, 0, 0),
    };
    let sig = match (bump, rc) {
        (1, Rc::Up) => sig + 1,
        (-1, Rc::Down | Rc::Zero) => sig - 1,
        _ => sig,
    };
    float::make(false, exp, sig)
}

fn fld_const<const K: u8>(cpu: &mut Cpu, _: &mut Memory, op: &Op) -> R {
    wait(cpu)?;
    let ctx = Ctx::full(cpu.x87.fcw);
    let v = constant(K, ctx.rc);
    note(&mut cpu.x87, op, None);
    push_checked(&mut cpu.x87, v, ctx);
    Ok(())
}

// ---- stores ----------------------------------------------------------------------

fn fst<const POP: bool>(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    wait(cpu)?;
    let i = &op.insn;

    let mut ctx = Ctx::full(cpu.x87.fcw);
    let v = if cpu.x87.is_empty(0) {
        ctx.flags |= IE | SF;
        INDEFINITE
    } else {
        cpu.x87.st(0)
    };
    let mut addr = None;
    let blocked;
    if i.op_kind(0) == OpKind::Memory {
        let a = ea(cpu, i);
        addr = Some(a);
        match i.memory_size() {
            MemorySize::Float32 => {
                let b = float::to_f32(v, &mut ctx);
                blocked = ctx.flags & !ctx.mask & (IE | DE | OE | UE) != 0;
                if !blocked {
                    mem.write_u32(a, b)?;
                }
            }
            MemorySize::Float64 => {
                let b = float::to_f64(v, &mut ctx);
                blocked = ctx.flags & !ctx.mask & (IE | DE | OE | UE) != 0;
                if !blocked {
                    mem.write_u64(a, b)?;
                }
            }
            MemorySize::Float80 => {
                blocked = ctx.blocking();
                if !blocked {
                    write80(mem, a, v)?;
                }
            }
            _ => return Err(Trap::InvalidOpcode),
        }
    } else {
        blocked = ctx.blocking();
        if !blocked {
            cpu.x87.set_st(sti(i.op0_register()), v);
        }
    }
    let x = &mut cpu.x87;
    note(x, op, addr);
    raise(x, ctx.flags, ctx.up);
    if POP && !blocked {
        x.pop();
    }
    Ok(())
}

/// `fstpnce st(i)` (D9 D8+i, the undocumented alias of `fstp st(i)`): with
/// ST(0) empty, AMD just pops, with no stack fault and C1 cleared, leaving
/// ST(i) alone (checked on the host); otherwise it is `fstp`.
fn fstpnce(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    wait(cpu)?;
    if !cpu.x87.is_empty(0) {
        return fst::<true>(cpu, mem, op);
    }
    let x = &mut cpu.x87;
    note(x, op, None);
    x.fsw &= !fsw::C1;
    x.pop();
    Ok(())
}

/// `fist`/`fistp`/`fisttp` (TRUNC: always round toward zero).
fn fist<const POP: bool, const TRUNC: bool>(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    wait(cpu)?;
    let i = &op.insn;
    let mut ctx = Ctx::full(cpu.x87.fcw);
    let rc = if TRUNC { Rc::Zero } else { ctx.rc };
    let a = ea(cpu, i);
    let bits = match i.memory_size() {
        MemorySize::Int16 => 16,
        MemorySize::Int32 => 32,
        MemorySize::Int64 => 64,
        _ => return Err(Trap::InvalidOpcode),
    };
    let n = if cpu.x87.is_empty(0) {
        ctx.flags |= IE | SF;
        i64::MIN >> (64 - bits)
    } else {
        float::to_int(cpu.x87.st(0), bits, rc, &mut ctx)
    };
    let blocked = ctx.blocking();
    if !blocked {
        mem.write_sized(a, (bits / 8) as u8, n as u64)?;
    }
    let x = &mut cpu.x87;
    note(x, op, Some(a));
    raise(x, ctx.flags, ctx.up);
    if POP && !blocked {
        x.pop();
    }
    Ok(())
}

fn fbstp(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    wait(cpu)?;
    let i = &op.insn;
    let mut ctx = Ctx::full(cpu.x87.fcw);
    let a = ea(cpu, i);
    let b = if cpu.x87.is_empty(0) {
        ctx.flags |= IE | SF;
        float::to_bcd(INDEFINITE, ctx.rc, &mut ctx)
    } else {
        float::to_bcd(cpu.x87.st(0), ctx.rc, &mut ctx)
    };
    let blocked = ctx.blocking();
    if !blocked {
        mem.probe_write(a, 10)?;
        mem.write_from(a, &b)?;
    }
    let x = &mut cpu.x87;
    note(x, op, Some(a));
    raise(x, ctx.flags, ctx.up);
    if !blocked {
        x.pop();
    }
    Ok(())
}

// ---- arithmetic --------------------------------------------------------------------

const ADD: u8 = 0;
const MUL: u8 = 1;
const SUB: u8 = 2;
const SUBR: u8 = 3;
const DIV: u8 = 4;
const DIVR: u8 = 5;

/// `fadd`..`fdivr` in all forms: `dest = dest op src`, then pop if `POP`.
fn arith<const K: u8, const POP: bool>(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    wait(cpu)?;
    let i = &op.insn;
    let mut ctx = Ctx::new(cpu.x87.fcw);
    let (dst, mem_src, addr) = if i.op_kind(0) == OpKind::Memory {
        let a = ea(cpu, i);
        (0, Some(load_mem(mem, i, a, &mut ctx)?), Some(a))
    } else {
        (sti(i.op0_register()), None, None)
    };
    let x = &mut cpu.x87;
    let src = match mem_src {
        Some(v) => Some(v),
        None if x.is_empty(sti(i.op1_register())) => None,
        None => Some(x.st(sti(i.op1_register()))),
    };
    let r = match src {
        Some(b) if !x.is_empty(dst) => {
            let a = x.st(dst);
            match K {
                ADD => float::add(a, b, false, &mut ctx),
                SUB => float::add(a, b, true, &mut ctx),
                SUBR => float::add(b, a, true, &mut ctx),
                MUL => float::mul(a, b, &mut ctx),
                DIV => float::div(a, b, &mut ctx),
                _ => float::div(b, a, &mut ctx),
            }
        }
        _ => {
            ctx.flags |= IE | SF;
            ctx.up = false;
            INDEFINITE
        }
    };
    note(x, op, addr);
    let blocked = ctx.blocking();
    raise(x, ctx.flags, ctx.up);
    if !blocked {
        x.set_st(dst, r);
        if POP {
            x.pop();
        }
    }
    Ok(())
}

const CHS: u8 = 0;
const ABS: u8 = 1;
const SQRT: u8 = 2;
const RNDINT: u8 = 3;
const F2XM1: u8 = 4;
const SIN: u8 = 5;
const COS: u8 = 6;

/// One-operand instructions replacing `ST(0)`.
fn unary<const K: u8>(cpu: &mut Cpu, _: &mut Memory, op: &Op) -> R {
    wait(cpu)?;
    let x = &mut cpu.x87;
    note(x, op, None);
    let mut ctx = if K == SQRT { Ctx::new(x.fcw) } else { Ctx::full(x.fcw) };
    if x.is_empty(0) {
        ctx.flags |= IE | SF;
        raise(x, ctx.flags, false);
        if ctx.mask & IE != 0 {
            x.set_st(0, INDEFINITE);
        }
        if K == SIN || K == COS {
            x.fsw &= !fsw::C2;
        }
        return Ok(());
    }
    let a = x.st(0);
    let mut c2 = false;
    let r = match K {
        CHS => a ^ 1 << 79,
        ABS => a & !(1 << 79),
        SQRT => float::sqrt(a, &mut ctx),
        RNDINT => float::round_int(a, &mut ctx),
        F2XM1 => trig::f2xm1(a, &mut ctx),
        _ => match trig::reduce(a, &mut ctx) {
            Trig::OutOfRange => {
                c2 = true;
                a
            }
            Trig::Done(s, _) if K == SIN => s,
            Trig::Done(_, c) => c,
            Trig::Finite { sin, tiny, .. } if K == SIN => trig::sin(sin, tiny, &mut ctx),
            Trig::Finite { cos, tiny, .. } => trig::cos(cos, tiny, &mut ctx),
        },
    };
    let blocked = ctx.blocking();
    raise(x, ctx.flags, ctx.up);
    if K == SIN || K == COS {
        x.fsw = (x.fsw & !fsw::C2) | (c2 as u16) << 10;
    }
    if !blocked {
        x.set_st(0, r);
    }
    Ok(())
}

const PTAN: u8 = 0;
const SINCOS: u8 = 1;
const XTRACT: u8 = 2;

/// Instructions replacing `ST(0)` and pushing a second result.
fn unary_push<const K: u8>(cpu: &mut Cpu, _: &mut Memory, op: &Op) -> R {
    wait(cpu)?;
    let x = &mut cpu.x87;
    note(x, op, None);
    let mut ctx = Ctx::full(x.fcw);
    let empty = x.is_empty(0);
    if empty || !x.is_empty(7) {
        ctx.flags |= IE | SF;
        raise(x, ctx.flags, !empty);
        if ctx.mask & IE != 0 {
            x.set_st(0, INDEFINITE);
            x.push(INDEFINITE);
        }
        if K != XTRACT {
            x.fsw &= !fsw::C2;
        }
        return Ok(());
    }
    let a = x.st(0);
    let (r0, r1) = match K {
        XTRACT => {
            let (e, s) = float::extract(a, &mut ctx);
            (e, s)
        }
        _ => match trig::reduce(a, &mut ctx) {
            Trig::OutOfRange => {
                raise(x, ctx.flags, false);
                x.fsw |= fsw::C2;
                return Ok(());
            }
            Trig::Done(s, c) if K == SINCOS => (s, c),
            Trig::Done(t, _) => {
                let one = if float::class(t).is_nan() { t } else { constant(C_ONE, Rc::Nearest) };
                (t, one)
            }
            Trig::Finite { sin, cos, tiny, .. } if K == SINCOS => {
                // C1 reports the rounding of the sine (checked on the host).
                let c = trig::cos(cos, tiny, &mut ctx);
                (trig::sin(sin, tiny, &mut ctx), c)
            }
            Trig::Finite { sin, cos, x: xw, exp, .. } => {
                (trig::tan(a, sin, cos, xw, exp, &mut ctx), constant(C_ONE, Rc::Nearest))
            }
        },
    };
    let blocked = ctx.blocking();
    raise(x, ctx.flags, ctx.up);
    if K != XTRACT {
        x.fsw &= !fsw::C2;
    }
    if !blocked {
        x.set_st(0, r0);
        x.push(r1);
    }
    Ok(())
}

const SCALE: u8 = 0;
const PREM: u8 = 1;
const PREM1: u8 = 2;

/// `fscale`, `fprem`, `fprem1`: `ST(0) = f(ST(0), ST(1))`.
fn binary_st0<const K: u8>(cpu: &mut Cpu, _: &mut Memory, op: &Op) -> R {
    wait(cpu)?;
    let x = &mut cpu.x87;
    note(x, op, None);
    let mut ctx = Ctx::full(x.fcw);
    if x.is_empty(0) || x.is_empty(1) {
        ctx.flags |= IE | SF;
        raise(x, ctx.flags, false);
        if ctx.mask & IE != 0 {
            x.set_st(0, INDEFINITE);
        }
        if K != SCALE {
            x.fsw &= !fsw::C2;
        }
        return Ok(());
    }
    let (a, b) = (x.st(0), x.st(1));
    if K == SCALE {
        let r = float::scale(a, b, &mut ctx);
        let blocked = ctx.blocking();
        raise(x, ctx.flags, ctx.up);
        if !blocked {
            x.set_st(0, r);
        }
        return Ok(());
    }
    let rem = float::rem(a, b, K == PREM1, &mut ctx);
    let blocked = ctx.blocking();
    raise(x, ctx.flags, false);
    // Condition codes (checked on the host): quotient bits when complete;
    // C2 alone when partial; C1 and C2 cleared, C0 and C3 kept for NaN
    // results and blocked ones.
    x.fsw &= !fsw::C2;
    if rem.nan || blocked {
        // C1 was cleared by `raise`.
    } else if rem.partial {
        x.fsw = (x.fsw & !(fsw::C0 | fsw::C1 | fsw::C3)) | fsw::C2;
    } else {
        let q = rem.q;
        x.fsw = (x.fsw & !(fsw::C0 | fsw::C1 | fsw::C3))
            | ((q >> 2 & 1) as u16) << 8
            | ((q >> 1 & 1) as u16) << 14
            | ((q & 1) as u16) << 9;
    }
    if !blocked {
        x.set_st(0, rem.value);
    }
    Ok(())
}

const YL2X: u8 = 0;
const YL2XP1: u8 = 1;
const PATAN: u8 = 2;

/// `fyl2x`, `fyl2xp1`, `fpatan`: `ST(1) = f(ST(1), ST(0))`, then pop.
fn binary_pop<const K: u8>(cpu: &mut Cpu, _: &mut Memory, op: &Op) -> R {
    wait(cpu)?;
    let x = &mut cpu.x87;
    note(x, op, None);
    let mut ctx = Ctx::full(x.fcw);
    let r = if x.is_empty(0) || x.is_empty(1) {
        ctx.flags |= IE | SF;
        INDEFINITE
    } else {
        let (xv, y) = (x.st(0), x.st(1));
        match K {
            YL2X => trig::yl2x(y, xv, &mut ctx),
            YL2XP1 => trig::yl2xp1(y, xv, &mut ctx),
            _ => trig::atan2(y, xv, &mut ctx),
        }
    };
    let blocked = ctx.blocking();
    raise(x, ctx.flags, ctx.up);
    if !blocked {
        x.set_st(1, r);
        x.pop();
    }
    Ok(())
}

// ---- comparisons -------------------------------------------------------------------

/// Second operand: the instruction's operand, `ST(1)` (`fcompp`), or +0 (`ftst`).
const OPND: u8 = 0;
const ST1: u8 = 1;
const ZERO: u8 = 2;

/// `fcom*`, `fucom*`, `ficom*`, `ftst`, and with `EFL` the `fcomi` family.
fn fcom<const QUIET: bool, const POPS: u8, const EFL: bool, const SRC: u8>(
    cpu: &mut Cpu,
    mem: &mut Memory,
    op: &Op,
) -> R {
    wait(cpu)?;
    let i = &op.insn;
    let mut ctx = Ctx::full(cpu.x87.fcw);
    let mut addr = None;
    let b = match SRC {
        ZERO => Some(float::zero(false)),
        ST1 => (!cpu.x87.is_empty(1)).then(|| cpu.x87.st(1)),
        _ if i.op_kind(0) == OpKind::Memory => {
            let a = ea(cpu, i);
            addr = Some(a);
            Some(load_mem(mem, i, a, &mut ctx)?)
        }
        _ => {
            let s = sti(i.op1_register());
            (!cpu.x87.is_empty(s)).then(|| cpu.x87.st(s))
        }
    };
    let x = &mut cpu.x87;
    note(x, op, addr);
    let ord = match b {
        Some(b) if !x.is_empty(0) => float::compare(x.st(0), b, QUIET, &mut ctx),
        _ => {
            ctx.flags |= IE | SF;
            Order::Unordered
        }
    };
    // Condition codes (or flags) are set even when the exception is
    // unmasked, but then nothing is popped (checked against the host).
    let blocked = ctx.blocking();
    raise(x, ctx.flags, false);
    let (c3, c2, c0) = match ord {
        Order::Greater => (false, false, false),
        Order::Less => (false, false, true),
        Order::Equal => (true, false, false),
        Order::Unordered => (true, true, true),
    };
    if EFL {
        let f = (c3 as u64 * ZF) | (c2 as u64 * PF) | (c0 as u64 * CF);
        cpu.rflags = (cpu.rflags & !(ZF | PF | CF | OF | SF_FLAG | AF)) | f;
    } else {
        set_cc(x, c3, c2, c0);
    }
    if !blocked {
        for _ in 0..POPS {
            x.pop();
        }
    }
    Ok(())
}

fn fxam(cpu: &mut Cpu, _: &mut Memory, op: &Op) -> R {
    wait(cpu)?;
    let x = &mut cpu.x87;
    note(x, op, None);
    let v = x.st(0);
    let (c3, c2, c0) = if x.is_empty(0) {
        (true, false, true)
    } else {
        match float::class(v) {
            Class::Unsupported => (false, false, false),
            Class::QNaN | Class::SNaN => (false, false, true),
            Class::Normal => (false, true, false),
            Class::Inf => (false, true, true),
            Class::Zero => (true, false, false),
            Class::Denormal => (true, true, false),
        }
    };
    set_cc(x, c3, c2, c0);
    x.fsw = (x.fsw & !fsw::C1) | (float::sign(v) as u16) << 9;
    Ok(())
}

// ---- stack manipulation ----------------------------------------------------------------

fn fxch(cpu: &mut Cpu, _: &mut Memory, op: &Op) -> R {
    wait(cpu)?;
    let x = &mut cpu.x87;
    note(x, op, None);
    let s = sti(op.insn.op1_register());
    let (e0, es) = (x.is_empty(0), x.is_empty(s));
    if e0 || es {
        raise(x, IE | SF, false);
        if x.fcw & IE == 0 {
            return Ok(());
        }
    } else {
        raise(x, 0, false);
    }
    let a = if e0 { INDEFINITE } else { x.st(0) };
    let b = if es { INDEFINITE } else { x.st(s) };
    x.set_st(0, b);
    x.set_st(s, a);
    Ok(())
}

/// `fcmovcc`: moves when any of the `FLAGS` is set (all clear if `NOT`).
fn fcmov<const FLAGS: u64, const NOT: bool>(cpu: &mut Cpu, _: &mut Memory, op: &Op) -> R {
    wait(cpu)?;
    let take = (cpu.rflags & FLAGS != 0) != NOT;
    let x = &mut cpu.x87;
    note(x, op, None);
    let s = sti(op.insn.op1_register());
    if x.is_empty(0) || x.is_empty(s) {
        raise(x, IE | SF, false);
        // The masked response happens whether or not the condition holds.
        if x.fcw & IE != 0 {
            x.set_st(0, INDEFINITE);
        }
        return Ok(());
    }
    raise(x, 0, false);
    if take {
        x.set_st(0, x.st(s));
    }
    Ok(())
}

fn ffree<const POP: bool>(cpu: &mut Cpu, _: &mut Memory, op: &Op) -> R {
    wait(cpu)?;
    let x = &mut cpu.x87;
    note(x, op, None);
    let p = x.phys(sti(op.insn.op0_register()));
    x.ftw &= !(1 << p);
    if POP {
        x.pop();
    }
    Ok(())
}

/// `fincstp` (`D` = 1) and `fdecstp` (`D` = 7).
fn fstp_adjust<const D: usize>(cpu: &mut Cpu, _: &mut Memory, op: &Op) -> R {
    wait(cpu)?;
    let x = &mut cpu.x87;
    note(x, op, None);
    x.set_top(x.top() + D);
    x.fsw &= !fsw::C1;
    Ok(())
}

fn fnop(cpu: &mut Cpu, _: &mut Memory, op: &Op) -> R {
    wait(cpu)?;
    note(&mut cpu.x87, op, None);
    Ok(())
}

fn fwait(cpu: &mut Cpu, _: &mut Memory, _: &Op) -> R {
    wait(cpu)
}

/// 8087/287 leftovers (`fneni`, `fndisi`, `fnsetpm`): no-ops on a 387 and later.
fn nop(_: &mut Cpu, _: &mut Memory, _: &Op) -> R {
    Ok(())
}

// ---- control -------------------------------------------------------------------------

fn finit<const WAIT: bool>(cpu: &mut Cpu, _: &mut Memory, _: &Op) -> R {
    if WAIT {
        wait(cpu)?;
    }
    let regs = cpu.x87.regs;
    cpu.x87 = X87State { regs, ..X87State::default() };
    Ok(())
}

fn fclex<const WAIT: bool>(cpu: &mut Cpu, _: &mut Memory, _: &Op) -> R {
    if WAIT {
        wait(cpu)?;
    }
    cpu.x87.fsw &= !(fsw::EXCEPTIONS | fsw::SF | fsw::ES | fsw::B);
    Ok(())
}

/// A control word as loaded: bits 7 and 13..15 read as zero, bit 6 as one.
fn fcw_bits(v: u16) -> u16 {
    (v & 0x1f3f) | 0x40
}

fn fldcw(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    wait(cpu)?;
    let v = mem.read_u16(ea(cpu, &op.insn))?;
    let x = &mut cpu.x87;
    x.fcw = fcw_bits(v);
    x.update_summary();
    Ok(())
}

fn fstcw<const WAIT: bool>(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    if WAIT {
        wait(cpu)?;
    }
    mem.write_u16(ea(cpu, &op.insn), cpu.x87.fcw)
}

fn fstsw<const WAIT: bool>(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    if WAIT {
        wait(cpu)?;
    }
    let i = &op.insn;
    let v = cpu.x87.fsw;
    if i.op_kind(0) == OpKind::Memory {
        mem.write_u16(ea(cpu, i), v)
    } else {
        let g = gpr(i.op0_register()).ok_or(Trap::InvalidOpcode)?;
        set_gpr(cpu, g, v as u64);
        Ok(())
    }
}

/// The FNSTENV image: 28 bytes (32-bit operand size) or 14 bytes (16-bit).
fn env_image(x: &X87State, wide: bool) -> ([u8; 28], usize) {
    let mut b = [0u8; 28];
    if wide {
        let words = [
            0xffff_0000 | x.fcw as u32,
            0xffff_0000 | x.fsw as u32,
            0xffff_0000 | x.tag_word() as u32,
            x.fip as u32,
            (x.fop as u32 & 0x7ff) << 16,
            x.fdp as u32,
            0xffff_0000,
        ];
        for (k, w) in words.iter().enumerate() {
            b[4 * k..4 * k + 4].copy_from_slice(&w.to_le_bytes());
        }
        (b, 28)
    } else {
        let words = [x.fcw, x.fsw, x.tag_word(), x.fip as u16, 0, x.fdp as u16, 0];
        for (k, w) in words.iter().enumerate() {
            b[2 * k..2 * k + 2].copy_from_slice(&w.to_le_bytes());
        }
        (b, 14)
    }
}

/// Loads an environment image into the state (FLDENV/FRSTOR).
fn load_env(x: &mut X87State, b: &[u8], wide: bool) {
    let w16 = |k: usize| u16::from_le_bytes([b[k], b[k + 1]]);
    let w32 = |k: usize| u32::from_le_bytes([b[k], b[k + 1], b[k + 2], b[k + 3]]);
    if wide {
        x.fcw = fcw_bits(w16(0));
        x.fsw = w16(4);
        x.set_tag_word(w16(8));
        x.fip = w32(12) as u64;
        x.fop = (w32(16) >> 16) as u16 & 0x7ff;
        x.fdp = w32(20) as u64;
    } else {
        x.fcw = fcw_bits(w16(0));
        x.fsw = w16(2);
        x.set_tag_word(w16(4));
        x.fip = w16(6) as u64;
        x.fdp = w16(10) as u64;
    }
    x.update_summary();
}

fn env_wide(i: &Instruction) -> bool {
    !matches!(i.memory_size(), MemorySize::FpuEnv14 | MemorySize::FpuState94)
}

fn fstenv<const WAIT: bool>(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    if WAIT {
        wait(cpu)?;
    }
    let i = &op.insn;
    let (b, n) = env_image(&cpu.x87, env_wide(i));
    let a = ea(cpu, i);
    mem.probe_write(a, n as u64)?;
    mem.write_from(a, &b[..n])?;
    cpu.x87.fcw |= fsw::EXCEPTIONS;
    Ok(())
}

fn fldenv(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    wait(cpu)?;
    let i = &op.insn;
    let wide = env_wide(i);
    let mut b = [0u8; 28];
    let n = if wide { 28 } else { 14 };
    mem.read_into(ea(cpu, i), &mut b[..n])?;
    load_env(&mut cpu.x87, &b, wide);
    Ok(())
}

fn fsave<const WAIT: bool>(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    if WAIT {
        wait(cpu)?;
    }
    let i = &op.insn;
    let wide = env_wide(i);
    let (env, n) = env_image(&cpu.x87, wide);
    let mut b = [0u8; 108];
    b[..n].copy_from_slice(&env[..n]);
    for k in 0..8 {
        let v = cpu.x87.st(k);
        b[n + 10 * k..n + 10 * k + 10].copy_from_slice(&v.to_le_bytes()[..10]);
    }
    let a = ea(cpu, i);
    mem.probe_write(a, (n + 80) as u64)?;
    mem.write_from(a, &b[..n + 80])?;
    let regs = cpu.x87.regs;
    cpu.x87 = X87State { regs, ..X87State::default() };
    Ok(())
}

fn frstor(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    wait(cpu)?;
    let i = &op.insn;
    let wide = env_wide(i);
    let n = if wide { 28 } else { 14 };
    let mut b = [0u8; 108];
    mem.read_into(ea(cpu, i), &mut b[..n + 80])?;
    let x = &mut cpu.x87;
    load_env(x, &b, wide);
    for k in 0..8 {
        let mut v = [0u8; 16];
        v[..10].copy_from_slice(&b[n + 10 * k..n + 10 * k + 10]);
        let p = x.phys(k);
        x.regs[p] = u128::from_le_bytes(v);
    }
    Ok(())
}

/// Writes the FXSAVE image (`wide`: the REX.W FXSAVE64 pointer layout).
pub(crate) fn fxsave_image(cpu: &Cpu, wide: bool) -> [u8; 416] {
    let x = &cpu.x87;
    let mut b = [0u8; 416];
    b[0..2].copy_from_slice(&x.fcw.to_le_bytes());
    b[2..4].copy_from_slice(&x.fsw.to_le_bytes());
    b[4] = x.ftw;
    b[6..8].copy_from_slice(&x.fop.to_le_bytes());
    if wide {
        b[8..16].copy_from_slice(&x.fip.to_le_bytes());
        b[16..24].copy_from_slice(&x.fdp.to_le_bytes());
    } else {
        b[8..12].copy_from_slice(&(x.fip as u32).to_le_bytes());
        b[16..20].copy_from_slice(&(x.fdp as u32).to_le_bytes());
    }
    b[24..28].copy_from_slice(&cpu.mxcsr.to_le_bytes());
    b[28..32].copy_from_slice(&MXCSR_MASK.to_le_bytes());
    for k in 0..8 {
        let v = x.st(k) & ((1 << 80) - 1);
        b[32 + 16 * k..48 + 16 * k].copy_from_slice(&v.to_le_bytes());
    }
    for (k, r) in cpu.xmm.iter().enumerate() {
        b[160 + 16 * k..176 + 16 * k].copy_from_slice(&r.to_le_bytes());
    }
    b
}

fn fxsave(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    let a = ea(cpu, i);
    if !a.is_multiple_of(16) {
        return Err(Trap::GeneralProtection);
    }
    let b = fxsave_image(cpu, i.mnemonic() == Mnemonic::Fxsave64);
    mem.probe_write(a, 512)?;
    mem.write_from(a, &b)
}

fn fxrstor(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let i = &op.insn;
    let a = ea(cpu, i);
    if !a.is_multiple_of(16) {
        return Err(Trap::GeneralProtection);
    }
    // The whole 512-byte area is read (and must be readable), as on hardware.
    let mut b = [0u8; 512];
    mem.read_into(a, &mut b)?;
    let mxcsr = u32::from_le_bytes([b[24], b[25], b[26], b[27]]);
    if mxcsr & !MXCSR_MASK != 0 {
        return Err(Trap::GeneralProtection);
    }
    cpu.mxcsr = mxcsr;
    load_fx_x87(cpu, &b, i.mnemonic() == Mnemonic::Fxrstor64);
    load_fx_xmm(cpu, &b);
    Ok(())
}

/// Loads the x87 registers from an FXSAVE image (`wide`: the FXSAVE64 pointer layout);
/// also the x87 part of XRSTOR.
pub(crate) fn load_fx_x87(cpu: &mut Cpu, b: &[u8], wide: bool) {
    let w16 = |k: usize| u16::from_le_bytes([b[k], b[k + 1]]);
    let w32 = |k: usize| u32::from_le_bytes([b[k], b[k + 1], b[k + 2], b[k + 3]]);
    let w64 = |k: usize| w32(k) as u64 | (w32(k + 4) as u64) << 32;
    let x = &mut cpu.x87;
    x.fcw = fcw_bits(w16(0));
    x.fsw = w16(2);
    x.ftw = b[4];
    x.fop = w16(6) & 0x7ff;
    x.fip = if wide { w64(8) } else { w32(8) as u64 };
    x.fdp = if wide { w64(16) } else { w32(16) as u64 };
    for k in 0..8 {
        let mut v = [0u8; 16];
        v[..10].copy_from_slice(&b[32 + 16 * k..42 + 16 * k]);
        let p = x.phys(k);
        x.regs[p] = u128::from_le_bytes(v);
    }
}

/// Loads XMM0..15 from an FXSAVE image.
pub(crate) fn load_fx_xmm(cpu: &mut Cpu, b: &[u8]) {
    for k in 0..16 {
        let mut v = [0u8; 16];
        v.copy_from_slice(&b[160 + 16 * k..176 + 16 * k]);
        cpu.xmm[k] = u128::from_le_bytes(v);
    }
}

// ---- selection ------------------------------------------------------------------------

pub(crate) fn select(i: &Instruction) -> Option<Handler> {
    use Mnemonic as M;
    let h: Handler = match i.mnemonic() {
        M::Fld | M::Fild | M::Fbld => fld,
        M::Fld1 => fld_const::<C_ONE>,
        M::Fldl2t => fld_const::<C_L2T>,
        M::Fldl2e => fld_const::<C_L2E>,
        M::Fldpi => fld_const::<C_PI>,
        M::Fldlg2 => fld_const::<C_LG2>,
        M::Fldln2 => fld_const::<C_LN2>,
        M::Fldz => fld_const::<C_ZERO>,
        M::Fst => fst::<false>,
        M::Fstp => fst::<true>,
        M::Fstpnce => fstpnce,
        M::Fist => fist::<false, false>,
        M::Fistp => fist::<true, false>,
        M::Fisttp => fist::<true, true>,
        M::Fbstp => fbstp,
        M::Fadd | M::Fiadd => arith::<ADD, false>,
        M::Faddp => arith::<ADD, true>,
        M::Fmul | M::Fimul => arith::<MUL, false>,
        M::Fmulp => arith::<MUL, true>,
        M::Fsub | M::Fisub => arith::<SUB, false>,
        M::Fsubp => arith::<SUB, true>,
        M::Fsubr | M::Fisubr => arith::<SUBR, false>,
        M::Fsubrp => arith::<SUBR, true>,
        M::Fdiv | M::Fidiv => arith::<DIV, false>,
        M::Fdivp => arith::<DIV, true>,
        M::Fdivr | M::Fidivr => arith::<DIVR, false>,
        M::Fdivrp => arith::<DIVR, true>,
        M::Fchs => unary::<CHS>,
        M::Fabs => unary::<ABS>,
        M::Fsqrt => unary::<SQRT>,
        M::Frndint => unary::<RNDINT>,
        M::F2xm1 => unary::<F2XM1>,
        M::Fsin => unary::<SIN>,
        M::Fcos => unary::<COS>,
        M::Fptan => unary_push::<PTAN>,
        M::Fsincos => unary_push::<SINCOS>,
        M::Fxtract => unary_push::<XTRACT>,
        M::Fscale => binary_st0::<SCALE>,
        M::Fprem => binary_st0::<PREM>,
        M::Fprem1 => binary_st0::<PREM1>,
        M::Fyl2x => binary_pop::<YL2X>,
        M::Fyl2xp1 => binary_pop::<YL2XP1>,
        M::Fpatan => binary_pop::<PATAN>,
        M::Fcom | M::Ficom => fcom::<false, 0, false, OPND>,
        M::Fcomp | M::Ficomp => fcom::<false, 1, false, OPND>,
        M::Fcompp => fcom::<false, 2, false, ST1>,
        M::Fucom => fcom::<true, 0, false, OPND>,
        M::Fucomp => fcom::<true, 1, false, OPND>,
        M::Fucompp => fcom::<true, 2, false, ST1>,
        M::Fcomi => fcom::<false, 0, true, OPND>,
        M::Fcomip => fcom::<false, 1, true, OPND>,
        M::Fucomi => fcom::<true, 0, true, OPND>,
        M::Fucomip => fcom::<true, 1, true, OPND>,
        M::Ftst => fcom::<false, 0, false, ZERO>,
        M::Fxam => fxam,
        M::Fxch => fxch,
        M::Fcmovb => fcmov::<{ CF }, false>,
        M::Fcmove => fcmov::<{ ZF }, false>,
        M::Fcmovbe => fcmov::<{ CF | ZF }, false>,
        M::Fcmovu => fcmov::<{ PF }, false>,
        M::Fcmovnb => fcmov::<{ CF }, true>,
        M::Fcmovne => fcmov::<{ ZF }, true>,
        M::Fcmovnbe => fcmov::<{ CF | ZF }, true>,
        M::Fcmovnu => fcmov::<{ PF }, true>,
        M::Ffree => ffree::<false>,
        M::Ffreep => ffree::<true>,
        M::Fincstp => fstp_adjust::<1>,
        M::Fdecstp => fstp_adjust::<7>,
        M::Fnop => fnop,
        M::Wait => fwait,
        M::Fneni | M::Fndisi | M::Fnsetpm => nop,
        M::Fninit => finit::<false>,
        M::Finit => finit::<true>,
        M::Fnclex => fclex::<false>,
        M::Fclex => fclex::<true>,
        M::Fldcw => fldcw,
        M::Fnstcw => fstcw::<false>,
        M::Fstcw => fstcw::<true>,
        M::Fnstsw => fstsw::<false>,
        M::Fstsw => fstsw::<true>,
        M::Fnstenv => fstenv::<false>,
        M::Fstenv => fstenv::<true>,
        M::Fldenv => fldenv,
        M::Fnsave => fsave::<false>,
        M::Fsave => fsave::<true>,
        M::Frstor => frstor,
        M::Fxsave | M::Fxsave64 => fxsave,
        M::Fxrstor | M::Fxrstor64 => fxrstor,
        _ => return None,
    };
    Some(h)
}
