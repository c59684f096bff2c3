//! Table-driven tests: instruction bytes and input state against the
//! expected output state, run through `Cpu::run`; plus randomized checks of
//! the pure-Rust handlers against the same instruction executed on the host.

use core::arch::asm;

use super::host::{imm_op, run_asm, templ, Host, St, MX_IN, MX_OUT, MX_SAVE, X0, X1, X2};
use crate::{AddressSpace, Cpu, Exit, GuestAddress, Perm};

const CODE: u64 = 0x1000;
/// A read-write data page; `rsi` points at its start unless a case sets it.
const DATA: u64 = 0x10000;
/// An unmapped address.
const HOLE: u64 = 0x40000;

const DEF: u32 = 0x1f80;
const IE: u32 = 1;
const DE: u32 = 2;
const ZE: u32 = 4;
const UE: u32 = 16;
const PE: u32 = 32;
const RC_DOWN: u32 = 1 << 13;
const RC_UP: u32 = 2 << 13;
const RC_ZERO: u32 = 3 << 13;
const DAZ: u32 = 1 << 6;
const FTZ: u32 = 1 << 15;

const fn ps(v: [f32; 4]) -> u128 {
    (v[0].to_bits() as u128)
        | (v[1].to_bits() as u128) << 32
        | (v[2].to_bits() as u128) << 64
        | (v[3].to_bits() as u128) << 96
}
const fn pd(v: [f64; 2]) -> u128 {
    (v[0].to_bits() as u128) | (v[1].to_bits() as u128) << 64
}
const fn ss(v: f32) -> u128 {
    v.to_bits() as u128
}
const fn sd(v: f64) -> u128 {
    v.to_bits() as u128
}
const fn ps_bits(v: [u32; 4]) -> u128 {
    (v[0] as u128) | (v[1] as u128) << 32 | (v[2] as u128) << 64 | (v[3] as u128) << 96
}

/// Upper-lane filler that scalar operations must preserve.
const HI: u128 = 0x1111_2222_3333_4444_5555_6666_0000_0000;
const QNAN1: u32 = 0x7fc0_0001;
const SNAN1: u32 = 0x7f80_0001;
const DEFAULT_NAN: u32 = 0xffc0_0000;
const MIN_NORMAL: u32 = 0x0080_0000;

#[derive(Clone, Copy)]
struct T {
    name: &'static str,
    code: &'static [u8],
    x: &'static [(usize, u128)],
    g: &'static [(usize, u64)],
    mx: u32,
    rflags: u64,
    /// Bytes at `DATA + offset`.
    mem: &'static [(u64, &'static [u8])],
    want_x: &'static [(usize, u128)],
    want_g: &'static [(usize, u64)],
    want_mx: u32,
    /// Expected status flags (checked when `Some`).
    want_flags: Option<u64>,
    want_mem: &'static [(u64, &'static [u8])],
    exit: Exit,
}

const BASE: T = T {
    name: "",
    code: &[],
    x: &[],
    g: &[],
    mx: DEF,
    rflags: 0x202,
    mem: &[],
    want_x: &[],
    want_g: &[],
    want_mx: DEF,
    want_flags: None,
    want_mem: &[],
    exit: Exit::Breakpoint,
};

fn space_with(code: &[u8]) -> AddressSpace {
    let mut space = AddressSpace::new(1 << 32).unwrap();
    space.mem.map(GuestAddress(CODE), 0x1000, Perm::RX).unwrap();
    space.mem.map(GuestAddress(DATA), 0x2000, Perm::RW).unwrap();
    let mut c = code.to_vec();
    c.push(0xcc);
    space.mem.write_raw(GuestAddress(CODE), &c).unwrap();
    space
}

fn run_case(t: &T) {
    let mut space = space_with(t.code);
    for (off, bytes) in t.mem {
        space.mem.write_raw(GuestAddress(DATA + off), bytes).unwrap();
    }
    let mut cpu = Cpu::new();
    cpu.rip = CODE;
    cpu.gpr[crate::reg::RSI] = DATA;
    cpu.mxcsr = t.mx;
    cpu.set_rflags(t.rflags);
    for &(r, v) in t.x {
        cpu.xmm[r] = v;
    }
    for &(r, v) in t.g {
        cpu.gpr[r] = v;
    }
    let before = cpu.clone();
    let exit = cpu.run(&mut space, 10);
    assert_eq!(exit, t.exit, "{}: exit", t.name);
    let want_rip = if exit == Exit::Breakpoint { CODE + t.code.len() as u64 + 1 } else { CODE };
    assert_eq!(cpu.rip, want_rip, "{}: rip", t.name);
    for r in 0..16 {
        let want = t.want_x.iter().find(|w| w.0 == r).map_or(before.xmm[r], |w| w.1);
        assert_eq!(cpu.xmm[r], want, "{}: xmm{r} = {:#034x}, want {want:#034x}", t.name, cpu.xmm[r]);
        let want = t.want_g.iter().find(|w| w.0 == r).map_or(before.gpr[r], |w| w.1);
        assert_eq!(cpu.gpr[r], want, "{}: gpr{r} = {:#x}, want {want:#x}", t.name, cpu.gpr[r]);
    }
    assert_eq!(cpu.mxcsr, t.want_mx, "{}: mxcsr = {:#x}, want {:#x}", t.name, cpu.mxcsr, t.want_mx);
    match t.want_flags {
        Some(f) => assert_eq!(cpu.rflags & crate::flags::STATUS, f, "{}: rflags", t.name),
        None => assert_eq!(cpu.rflags, before.rflags, "{}: rflags changed", t.name),
    }
    for (off, bytes) in t.want_mem {
        let mut b = vec![0u8; bytes.len()];
        space.mem.read_raw(GuestAddress(DATA + off), &mut b).unwrap();
        assert_eq!(&b[..], *bytes, "{}: memory at +{off:#x}", t.name);
    }
}

use crate::flags::{AF, CF, OF, PF, SF, ZF};
use crate::reg::{RAX, RCX, RDI, RDX, RSI};

const CASES: &[T] = &[
    // ---- arithmetic, rounding, flags ----
    T {
        name: "addps",
        code: &[0x0f, 0x58, 0xc1],
        x: &[(0, ps([1.0, 2.0, -3.0, 1e30])), (1, ps([0.5, 0.25, 3.0, 1e30]))],
        want_x: &[(0, ps([1.5, 2.25, 0.0, 2e30]))],
        ..BASE
    },
    T {
        name: "addss reads only 4 bytes (at the end of the mapping)",
        code: &[0xf3, 0x0f, 0x58, 0x06],
        x: &[(0, HI | ss(1.0))],
        g: &[(RSI, DATA + 0x1ffc)],
        mem: &[(0x1ffc, &2.0f32.to_le_bytes())],
        want_x: &[(0, HI | ss(3.0))],
        ..BASE
    },
    T {
        name: "divss round to nearest, PE",
        code: &[0xf3, 0x0f, 0x5e, 0xc1],
        x: &[(0, HI | ss(1.0)), (1, ss(3.0))],
        want_x: &[(0, HI | 0x3eaa_aaab)],
        want_mx: DEF | PE,
        ..BASE
    },
    T {
        name: "divss round down",
        code: &[0xf3, 0x0f, 0x5e, 0xc1],
        x: &[(0, ss(1.0)), (1, ss(3.0))],
        mx: DEF | RC_DOWN,
        want_x: &[(0, 0x3eaa_aaaa)],
        want_mx: DEF | RC_DOWN | PE,
        ..BASE
    },
    T {
        name: "divss round up, negative",
        code: &[0xf3, 0x0f, 0x5e, 0xc1],
        x: &[(0, ss(-1.0)), (1, ss(3.0))],
        mx: DEF | RC_UP,
        want_x: &[(0, 0xbeaa_aaaa)],
        want_mx: DEF | RC_UP | PE,
        ..BASE
    },
    T {
        name: "divss round toward zero",
        code: &[0xf3, 0x0f, 0x5e, 0xc1],
        x: &[(0, ss(2.0)), (1, ss(3.0))],
        mx: DEF | RC_ZERO,
        want_x: &[(0, 0x3f2a_aaaa)],
        want_mx: DEF | RC_ZERO | PE,
        ..BASE
    },
    T {
        name: "sticky flags stay set on an exact operation",
        code: &[0xf3, 0x0f, 0x58, 0xc1],
        x: &[(0, ss(1.0)), (1, ss(2.0))],
        mx: DEF | IE | PE,
        want_x: &[(0, ss(3.0))],
        want_mx: DEF | IE | PE,
        ..BASE
    },
    T {
        name: "divss by zero masked: inf, ZE",
        code: &[0xf3, 0x0f, 0x5e, 0xc1],
        x: &[(0, ss(-1.0)), (1, ss(0.0))],
        want_x: &[(0, ss(f32::NEG_INFINITY))],
        want_mx: DEF | ZE,
        ..BASE
    },
    T {
        name: "divss by zero unmasked: #XM, destination unchanged, ZE set",
        code: &[0xf3, 0x0f, 0x5e, 0xc1],
        x: &[(0, HI | ss(1.0)), (1, ss(0.0))],
        mx: DEF & !(1 << 9),
        want_mx: (DEF & !(1 << 9)) | ZE,
        exit: Exit::SimdFloatingPoint,
        ..BASE
    },
    T {
        name: "inexact unmasked: #XM",
        code: &[0xf3, 0x0f, 0x5e, 0xc1],
        x: &[(0, ss(1.0)), (1, ss(3.0))],
        mx: DEF & !(1 << 12),
        want_mx: (DEF & !(1 << 12)) | PE,
        exit: Exit::SimdFloatingPoint,
        ..BASE
    },
    T {
        name: "exact tiny result, underflow masked: no flags",
        code: &[0xf3, 0x0f, 0x59, 0xc1],
        x: &[(0, MIN_NORMAL as u128), (1, ss(0.5))],
        want_x: &[(0, 0x0040_0000)],
        ..BASE
    },
    T {
        name: "exact tiny result, underflow unmasked: #XM with UE",
        code: &[0xf3, 0x0f, 0x59, 0xc1],
        x: &[(0, MIN_NORMAL as u128), (1, ss(0.5))],
        mx: DEF & !(1 << 11),
        want_mx: (DEF & !(1 << 11)) | UE,
        exit: Exit::SimdFloatingPoint,
        ..BASE
    },
    T {
        name: "FTZ flushes a tiny result, UE and PE",
        code: &[0xf3, 0x0f, 0x59, 0xc1],
        x: &[(0, HI | MIN_NORMAL as u128), (1, ss(-0.5))],
        mx: DEF | FTZ,
        want_x: &[(0, HI | 0x8000_0000)],
        want_mx: DEF | FTZ | UE | PE,
        ..BASE
    },
    T {
        name: "denormal operand: DE",
        code: &[0xf3, 0x0f, 0x58, 0xc1],
        x: &[(0, 1), (1, ss(0.0))],
        want_x: &[(0, 1)],
        want_mx: DEF | DE,
        ..BASE
    },
    T {
        name: "DAZ: denormal operand read as zero, no DE",
        code: &[0xf3, 0x0f, 0x58, 0xc1],
        x: &[(0, 1), (1, ss(0.0))],
        mx: DEF | DAZ,
        want_x: &[(0, 0)],
        want_mx: DEF | DAZ,
        ..BASE
    },
    T {
        name: "QNaN propagates",
        code: &[0x0f, 0x58, 0xc1],
        x: &[(0, ps_bits([QNAN1, 0, 0, 0])), (1, ps([1.0, 1.0, 1.0, 1.0]))],
        want_x: &[(0, ps_bits([QNAN1, 0x3f80_0000, 0x3f80_0000, 0x3f80_0000]))],
        ..BASE
    },
    T {
        name: "SNaN is quieted with IE; first operand's NaN wins",
        code: &[0x0f, 0x58, 0xc1],
        x: &[(0, ps_bits([SNAN1, 0x7fc0_0002, 0, 0])), (1, ps_bits([0, SNAN1, 0, 0]))],
        want_x: &[(0, ps_bits([QNAN1, 0x7fc0_0002, 0, 0]))],
        want_mx: DEF | IE,
        ..BASE
    },
    T {
        name: "sqrtss of a negative: default NaN, IE",
        code: &[0xf3, 0x0f, 0x51, 0xc1],
        x: &[(0, HI), (1, ss(-4.0))],
        want_x: &[(0, HI | DEFAULT_NAN as u128)],
        want_mx: DEF | IE,
        ..BASE
    },
    T {
        name: "minss(+0, -0) returns the second operand",
        code: &[0xf3, 0x0f, 0x5d, 0xc1],
        x: &[(0, ss(0.0)), (1, ss(-0.0))],
        want_x: &[(0, ss(-0.0))],
        ..BASE
    },
    T {
        name: "minss(QNaN, 1) returns the second operand, IE",
        code: &[0xf3, 0x0f, 0x5d, 0xc1],
        x: &[(0, QNAN1 as u128), (1, ss(1.0))],
        want_x: &[(0, ss(1.0))],
        want_mx: DEF | IE,
        ..BASE
    },
    T {
        name: "maxss(1, QNaN) returns the NaN",
        code: &[0xf3, 0x0f, 0x5f, 0xc1],
        x: &[(0, ss(1.0)), (1, QNAN1 as u128)],
        want_x: &[(0, QNAN1 as u128)],
        want_mx: DEF | IE,
        ..BASE
    },
    T {
        name: "cvttss2si overflow: integer indefinite, IE",
        code: &[0xf3, 0x0f, 0x2c, 0xc0],
        x: &[(0, ss(3e9))],
        g: &[(RAX, u64::MAX)],
        want_g: &[(RAX, 0x8000_0000)],
        want_mx: DEF | IE,
        ..BASE
    },
    T {
        name: "cvtss2si rounds to nearest even",
        code: &[0xf3, 0x0f, 0x2d, 0xc0],
        x: &[(0, ss(2.5))],
        want_g: &[(RAX, 2)],
        want_mx: DEF | PE,
        ..BASE
    },
    T {
        name: "cvtss2si rounds up under RC=up",
        code: &[0xf3, 0x0f, 0x2d, 0xc0],
        x: &[(0, ss(2.25))],
        mx: DEF | RC_UP,
        want_g: &[(RAX, 3)],
        want_mx: DEF | RC_UP | PE,
        ..BASE
    },
    T {
        name: "cvtsd2si rax of NaN: indefinite",
        code: &[0xf2, 0x48, 0x0f, 0x2d, 0xc0],
        x: &[(0, sd(f64::NAN))],
        want_g: &[(RAX, 0x8000_0000_0000_0000)],
        want_mx: DEF | IE,
        ..BASE
    },
    T {
        name: "cvtsd2si NaN with IE unmasked: #XM, rax unchanged",
        code: &[0xf2, 0x48, 0x0f, 0x2d, 0xc0],
        x: &[(0, sd(f64::NAN))],
        g: &[(RAX, 7)],
        mx: DEF & !(1 << 7),
        want_mx: (DEF & !(1 << 7)) | IE,
        exit: Exit::SimdFloatingPoint,
        ..BASE
    },
    T {
        name: "cvtsi2ss rax rounds",
        code: &[0xf3, 0x48, 0x0f, 0x2a, 0xc0],
        x: &[(0, HI)],
        g: &[(RAX, (1 << 40) + 1)],
        want_x: &[(0, HI | ss(1099511627776.0))],
        want_mx: DEF | PE,
        ..BASE
    },
    T {
        name: "cvtsi2sd from m32",
        code: &[0xf2, 0x0f, 0x2a, 0x06],
        x: &[(0, HI << 32)],
        mem: &[(0, &(-5i32).to_le_bytes())],
        want_x: &[(0, (HI << 32) & !(u64::MAX as u128) | sd(-5.0))],
        ..BASE
    },
    T {
        name: "cvtpd2ps",
        code: &[0x66, 0x0f, 0x5a, 0xc1],
        x: &[(0, u128::MAX), (1, pd([1.5, -1e300]))],
        want_x: &[(0, ps([1.5, f32::NEG_INFINITY, 0.0, 0.0]))],
        want_mx: DEF | 8 | PE,
        ..BASE
    },
    T {
        name: "cvtps2pd m64",
        code: &[0x0f, 0x5a, 0x06],
        mem: &[(0, &[0, 0, 0xc0, 0x3f, 0, 0, 0x80, 0xbf])],
        want_x: &[(0, pd([1.5, -1.0]))],
        ..BASE
    },
    T {
        name: "comiss less: CF, others cleared",
        code: &[0x0f, 0x2f, 0xc1],
        x: &[(0, ss(1.0)), (1, ss(2.0))],
        rflags: 0x202 | OF | SF | AF | ZF,
        want_flags: Some(CF),
        ..BASE
    },
    T {
        name: "comiss QNaN: unordered, IE",
        code: &[0x0f, 0x2f, 0xc1],
        x: &[(0, ss(1.0)), (1, QNAN1 as u128)],
        rflags: 0x202 | OF | SF | AF,
        want_flags: Some(ZF | PF | CF),
        want_mx: DEF | IE,
        ..BASE
    },
    T {
        name: "ucomiss QNaN: unordered, no IE",
        code: &[0x0f, 0x2e, 0xc1],
        x: &[(0, ss(1.0)), (1, QNAN1 as u128)],
        want_flags: Some(ZF | PF | CF),
        ..BASE
    },
    T {
        name: "ucomiss equal",
        code: &[0x0f, 0x2e, 0xc1],
        x: &[(0, ss(-0.0)), (1, ss(0.0))],
        rflags: 0x202 | CF,
        want_flags: Some(ZF),
        ..BASE
    },
    T {
        name: "cmpltps",
        code: &[0x0f, 0xc2, 0xc1, 0x01],
        x: &[(0, ps([1.0, 2.0, f32::NAN, -1.0])), (1, ps([2.0, 2.0, 1.0, 0.0]))],
        want_x: &[(0, ps_bits([!0, 0, 0, !0]))],
        want_mx: DEF | IE,
        ..BASE
    },
    T {
        name: "cmpunordps",
        code: &[0x0f, 0xc2, 0xc1, 0x03],
        x: &[(0, ps([1.0, 2.0, f32::NAN, -1.0])), (1, ps([2.0, f32::NAN, 1.0, 0.0]))],
        want_x: &[(0, ps_bits([0, !0, !0, 0]))],
        ..BASE
    },
    T {
        name: "roundss floor",
        code: &[0x66, 0x0f, 0x3a, 0x0a, 0xc1, 0x01],
        x: &[(0, HI), (1, ss(-2.5))],
        want_x: &[(0, HI | ss(-3.0))],
        want_mx: DEF | PE,
        ..BASE
    },
    T {
        name: "roundss MXCSR mode (nearest even)",
        code: &[0x66, 0x0f, 0x3a, 0x0a, 0xc1, 0x04],
        x: &[(1, ss(2.5))],
        want_x: &[(0, ss(2.0))],
        want_mx: DEF | PE,
        ..BASE
    },
    T {
        name: "roundss floor, precision suppressed",
        code: &[0x66, 0x0f, 0x3a, 0x0a, 0xc1, 0x09],
        x: &[(1, ss(2.5))],
        want_x: &[(0, ss(2.0))],
        ..BASE
    },
    T {
        name: "dpps 0xf1",
        code: &[0x66, 0x0f, 0x3a, 0x40, 0xc1, 0xf1],
        x: &[(0, ps([1.0, 2.0, 3.0, 4.0])), (1, ps([5.0, 6.0, 7.0, 8.0]))],
        want_x: &[(0, ps([70.0, 0.0, 0.0, 0.0]))],
        ..BASE
    },
    T {
        name: "haddps",
        code: &[0xf2, 0x0f, 0x7c, 0xc1],
        x: &[(0, ps([1.0, 2.0, 3.0, 4.0])), (1, ps([5.0, 6.0, 7.0, 8.0]))],
        want_x: &[(0, ps([3.0, 7.0, 11.0, 15.0]))],
        ..BASE
    },
    T {
        name: "cvtdq2pd",
        code: &[0xf3, 0x0f, 0xe6, 0xc1],
        x: &[(1, ps_bits([(-7i32) as u32, 9, 1, 1]))],
        want_x: &[(0, pd([-7.0, 9.0]))],
        ..BASE
    },
    T {
        name: "blendvps uses xmm0",
        code: &[0x66, 0x0f, 0x38, 0x14, 0xca],
        x: &[
            (0, ps_bits([0x8000_0000, 0, 0xffff_ffff, 0x7fff_ffff])),
            (1, ps_bits([1, 2, 3, 4])),
            (2, ps_bits([5, 6, 7, 8])),
        ],
        want_x: &[(1, ps_bits([5, 2, 7, 4]))],
        ..BASE
    },
    T {
        name: "denormal operand unmasked: #XM with DE",
        code: &[0xf3, 0x0f, 0x58, 0xc1],
        x: &[(0, 1), (1, ss(0.0))],
        mx: DEF & !(1 << 8),
        want_mx: (DEF & !(1 << 8)) | DE,
        exit: Exit::SimdFloatingPoint,
        ..BASE
    },
    T {
        name: "unmasked IE in one lane hides the PE of another",
        code: &[0x0f, 0x58, 0xc1],
        x: &[(0, ps_bits([SNAN1, 0x3f80_0000, 0, 0])), (1, ps([1.0, 1e-10, 0.0, 0.0]))],
        mx: DEF & !(1 << 7),
        want_mx: (DEF & !(1 << 7)) | IE,
        exit: Exit::SimdFloatingPoint,
        ..BASE
    },
    T {
        name: "masked IE and unmasked PE: #XM with both flags",
        code: &[0x0f, 0x58, 0xc1],
        x: &[(0, ps_bits([SNAN1, 0x3f80_0000, 0, 0])), (1, ps([1.0, 1e-10, 0.0, 0.0]))],
        mx: DEF & !(1 << 12),
        want_mx: (DEF & !(1 << 12)) | IE | PE,
        exit: Exit::SimdFloatingPoint,
        ..BASE
    },
    T {
        name: "the same, all masked: both lanes written",
        code: &[0x0f, 0x58, 0xc1],
        x: &[(0, ps_bits([SNAN1, 0x3f80_0000, 0, 0])), (1, ps([1.0, 1e-10, 0.0, 0.0]))],
        want_x: &[(0, ps_bits([QNAN1, 0x3f80_0000, 0, 0]))],
        want_mx: DEF | IE | PE,
        ..BASE
    },
    T {
        name: "FTZ and DAZ together",
        code: &[0xf3, 0x0f, 0x59, 0xc1],
        x: &[(0, 0x0000_0100), (1, ss(1e30))],
        mx: DEF | FTZ | DAZ,
        want_x: &[(0, 0)],
        want_mx: DEF | FTZ | DAZ,
        ..BASE
    },
    T {
        name: "cvtsd2ss rounds per RC (toward zero)",
        code: &[0xf2, 0x0f, 0x5a, 0xc1],
        x: &[(0, HI), (1, sd(1.0 / 3.0))],
        mx: DEF | RC_ZERO,
        want_x: &[(0, HI | 0x3eaa_aaaa)],
        want_mx: DEF | RC_ZERO | PE,
        ..BASE
    },
    T {
        name: "cvttps2dq truncates, indefinite on overflow",
        code: &[0xf3, 0x0f, 0x5b, 0xc1],
        x: &[(1, ps([-2.75, 2.75, 3e9, f32::NAN]))],
        want_x: &[(0, ps_bits([(-2i32) as u32, 2, 0x8000_0000, 0x8000_0000]))],
        want_mx: DEF | IE | PE,
        ..BASE
    },
    T {
        name: "addsubpd",
        code: &[0x66, 0x0f, 0xd0, 0xc1],
        x: &[(0, pd([1.0, 1.0])), (1, pd([0.25, 0.25]))],
        want_x: &[(0, pd([0.75, 1.25]))],
        ..BASE
    },
    T {
        name: "maxsd(-0, +0) returns the second operand",
        code: &[0xf2, 0x0f, 0x5f, 0xc1],
        x: &[(0, sd(-0.0)), (1, sd(0.0))],
        want_x: &[(0, sd(0.0))],
        ..BASE
    },
    // ---- moves ----
    T {
        name: "movaps misaligned load: #GP",
        code: &[0x0f, 0x28, 0x06],
        g: &[(RSI, DATA + 8)],
        exit: Exit::GeneralProtection,
        ..BASE
    },
    T {
        name: "movaps misaligned store: #GP",
        code: &[0x0f, 0x29, 0x06],
        g: &[(RSI, DATA + 4)],
        x: &[(0, 5)],
        exit: Exit::GeneralProtection,
        ..BASE
    },
    T {
        name: "addps misaligned memory: #GP",
        code: &[0x0f, 0x58, 0x06],
        g: &[(RSI, DATA + 4)],
        exit: Exit::GeneralProtection,
        ..BASE
    },
    T {
        name: "movups misaligned load",
        code: &[0x0f, 0x10, 0x06],
        g: &[(RSI, DATA + 1)],
        mem: &[(1, &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16])],
        want_x: &[(0, u128::from_le_bytes([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]))],
        ..BASE
    },
    T {
        name: "addps page fault leaves xmm0",
        code: &[0x0f, 0x58, 0x06],
        x: &[(0, 77)],
        g: &[(RSI, HOLE)],
        exit: Exit::PageFault { addr: HOLE, access: crate::Access::Read },
        ..BASE
    },
    T {
        name: "movss load zeroes the rest",
        code: &[0xf3, 0x0f, 0x10, 0x06],
        x: &[(0, u128::MAX)],
        mem: &[(0, &[1, 2, 3, 4, 5, 6, 7, 8])],
        want_x: &[(0, 0x0403_0201)],
        ..BASE
    },
    T {
        name: "movss register merges",
        code: &[0xf3, 0x0f, 0x10, 0xc1],
        x: &[(0, u128::MAX), (1, 0x1234_5678_9abc_def0)],
        want_x: &[(0, (u128::MAX << 32) | 0x9abc_def0)],
        ..BASE
    },
    T {
        name: "movss store writes 4 bytes",
        code: &[0xf3, 0x0f, 0x11, 0x06],
        x: &[(0, 0x1122_3344_5566_7788)],
        mem: &[(0, &[0xff; 8])],
        want_mem: &[(0, &[0x88, 0x77, 0x66, 0x55, 0xff, 0xff, 0xff, 0xff])],
        ..BASE
    },
    T {
        name: "movsd load zeroes the high half",
        code: &[0xf2, 0x0f, 0x10, 0x06],
        x: &[(0, u128::MAX)],
        mem: &[(0, &[1, 2, 3, 4, 5, 6, 7, 8, 9, 9])],
        want_x: &[(0, 0x0807_0605_0403_0201)],
        ..BASE
    },
    T {
        name: "movq xmm, xmm zeroes the high half",
        code: &[0xf3, 0x0f, 0x7e, 0xc1],
        x: &[(0, u128::MAX), (1, u128::MAX - 1)],
        want_x: &[(0, u64::MAX as u128 - 1)],
        ..BASE
    },
    T {
        name: "movd eax, xmm0 zero-extends",
        code: &[0x66, 0x0f, 0x7e, 0xc0],
        x: &[(0, u128::MAX)],
        g: &[(RAX, u64::MAX)],
        want_g: &[(RAX, 0xffff_ffff)],
        ..BASE
    },
    T {
        name: "movq rax, xmm0",
        code: &[0x66, 0x48, 0x0f, 0x7e, 0xc0],
        x: &[(0, HI | 0x1234)],
        want_g: &[(RAX, 0x5555_6666_0000_1234)],
        ..BASE
    },
    T {
        name: "movd xmm0, eax",
        code: &[0x66, 0x0f, 0x6e, 0xc0],
        x: &[(0, u128::MAX)],
        g: &[(RAX, 0xaaaa_bbbb_cccc_dddd)],
        want_x: &[(0, 0xcccc_dddd)],
        ..BASE
    },
    T {
        name: "movq m64 store",
        code: &[0x66, 0x0f, 0xd6, 0x06],
        x: &[(0, HI | 0x99)],
        want_mem: &[(0, &[0x99, 0, 0, 0, 0x66, 0x66, 0x55, 0x55, 0])],
        ..BASE
    },
    T {
        name: "movlps load keeps the high half",
        code: &[0x0f, 0x12, 0x06],
        x: &[(0, u128::MAX)],
        mem: &[(0, &[1, 0, 0, 0, 0, 0, 0, 0])],
        want_x: &[(0, (u128::MAX << 64) | 1)],
        ..BASE
    },
    T {
        name: "movhps load keeps the low half",
        code: &[0x0f, 0x16, 0x06],
        x: &[(0, u128::MAX)],
        mem: &[(0, &[2, 0, 0, 0, 0, 0, 0, 0])],
        want_x: &[(0, (2u128 << 64) | u64::MAX as u128)],
        ..BASE
    },
    T {
        name: "movhps store",
        code: &[0x0f, 0x17, 0x06],
        x: &[(0, 3u128 << 64)],
        want_mem: &[(0, &[3, 0, 0, 0, 0, 0, 0, 0])],
        ..BASE
    },
    T {
        name: "movhlps",
        code: &[0x0f, 0x12, 0xc1],
        x: &[(0, 0xaaaa_u128 << 64 | 0xbbbb), (1, 0xcccc_u128 << 64 | 0xdddd)],
        want_x: &[(0, 0xaaaa_u128 << 64 | 0xcccc)],
        ..BASE
    },
    T {
        name: "movlhps",
        code: &[0x0f, 0x16, 0xc1],
        x: &[(0, 0xaaaa_u128 << 64 | 0xbbbb), (1, 0xcccc_u128 << 64 | 0xdddd)],
        want_x: &[(0, 0xdddd_u128 << 64 | 0xbbbb)],
        ..BASE
    },
    T {
        name: "movmskps",
        code: &[0x0f, 0x50, 0xc0],
        x: &[(0, ps([-1.0, 1.0, -0.0, 2.0]))],
        g: &[(RAX, u64::MAX)],
        want_g: &[(RAX, 0b0101)],
        ..BASE
    },
    T {
        name: "pmovmskb",
        code: &[0x66, 0x0f, 0xd7, 0xc0],
        x: &[(0, 0x8000_0000_0000_0000_0000_0000_0000_0080)],
        want_g: &[(RAX, 0x8001)],
        ..BASE
    },
    T { name: "ldmxcsr", code: &[0x0f, 0xae, 0x16], mem: &[(0, &0x9fc0u32.to_le_bytes())], want_mx: 0x9fc0, ..BASE },
    T {
        name: "ldmxcsr reserved bit: #GP",
        code: &[0x0f, 0xae, 0x16],
        mem: &[(0, &0x1_1f80u32.to_le_bytes())],
        exit: Exit::GeneralProtection,
        ..BASE
    },
    T {
        name: "stmxcsr",
        code: &[0x0f, 0xae, 0x1e],
        mx: DEF | PE | RC_UP,
        want_mx: DEF | PE | RC_UP,
        want_mem: &[(0, &(DEF | PE | RC_UP).to_le_bytes())],
        ..BASE
    },
    T {
        name: "maskmovdqu writes selected bytes at rdi",
        code: &[0x66, 0x0f, 0xf7, 0xc1],
        x: &[(0, 0x0f0e_0d0c_0b0a_0908_0706_0504_0302_0100), (1, 0x80 | 0x80 << 120)],
        g: &[(RDI, DATA + 0x10)],
        mem: &[(0x10, &[0xee; 16])],
        want_mem: &[(
            0x10,
            &[0, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0x0f],
        )],
        ..BASE
    },
    T {
        name: "movnti",
        code: &[0x48, 0x0f, 0xc3, 0x06],
        g: &[(RAX, 0x0102_0304_0506_0708)],
        want_mem: &[(0, &[8, 7, 6, 5, 4, 3, 2, 1])],
        ..BASE
    },
    // ---- integer ----
    T {
        name: "pmovzxbw m64",
        code: &[0x66, 0x0f, 0x38, 0x30, 0x06],
        g: &[(RSI, DATA + 0x1ff8)],
        mem: &[(0x1ff8, &[1, 0xff, 3, 4, 5, 6, 7, 0x80])],
        want_x: &[(0, 0x0080_0007_0006_0005_0004_0003_00ff_0001)],
        ..BASE
    },
    T {
        name: "insertps m32 ignores count_s",
        code: &[0x66, 0x0f, 0x3a, 0x21, 0x06, 0xd0 | 0x01],
        x: &[(0, ps_bits([1, 2, 3, 4]))],
        mem: &[(0, &[9, 0, 0, 0])],
        want_x: &[(0, ps_bits([0, 9, 3, 4]))],
        ..BASE
    },
    T {
        name: "pextrw eax",
        code: &[0x66, 0x0f, 0xc5, 0xc0, 0x03],
        x: &[(0, 0xbeef_u128 << 48)],
        g: &[(RAX, u64::MAX)],
        want_g: &[(RAX, 0xbeef)],
        ..BASE
    },
    T {
        name: "pextrb m8",
        code: &[0x66, 0x0f, 0x3a, 0x14, 0x06, 0x05],
        x: &[(0, 0x42_u128 << 40)],
        mem: &[(0, &[0xff, 0xff])],
        want_mem: &[(0, &[0x42, 0xff])],
        ..BASE
    },
    T {
        name: "pshufb",
        code: &[0x66, 0x0f, 0x38, 0x00, 0xc1],
        x: &[(0, 0x0f0e_0d0c_0b0a_0908_0706_0504_0302_0100), (1, 0x8000_0000_0000_0000_0000_0000_0000_0f01)],
        want_x: &[(0, 0x0000_0000_0000_0000_0000_0000_0000_0f01)],
        ..BASE
    },
    T {
        name: "crc32 r32, m8",
        code: &[0xf2, 0x0f, 0x38, 0xf0, 0x06],
        g: &[(RAX, 0xffff_ffff_ffff_ffff)],
        mem: &[(0, b"1")],
        want_g: &[(RAX, 0x6f0a_661c)],
        ..BASE
    },
    T {
        name: "pcmpistri equal-ordered substring search",
        code: &[0x66, 0x0f, 0x3a, 0x63, 0xc1, 0x0c],
        x: &[
            (0, u128::from_le_bytes(*b"lo\0\0\0\0\0\0\0\0\0\0\0\0\0\0")),
            (1, u128::from_le_bytes(*b"hello world\0\0\0\0\0")),
        ],
        g: &[(RCX, u64::MAX)],
        want_g: &[(RCX, 3)],
        want_flags: Some(CF | ZF | SF),
        ..BASE
    },
    T {
        name: "pcmpestri with REX.W reads 64-bit lengths",
        code: &[0x66, 0x48, 0x0f, 0x3a, 0x61, 0xca, 0x00],
        x: &[(1, u128::from_le_bytes(*b"abcdefghijklmnop")), (2, u128::from_le_bytes(*b"xxxxxxxxxxxxxxxp"))],
        // eax = 0 but rax is large: saturates to 16.
        g: &[(RAX, 1 << 32), (RDX, 16), (RCX, u64::MAX)],
        want_g: &[(RCX, 15)],
        want_flags: Some(CF),
        ..BASE
    },
    T {
        name: "pcmpestri without REX.W reads eax",
        code: &[0x66, 0x0f, 0x3a, 0x61, 0xca, 0x00],
        x: &[(1, u128::from_le_bytes(*b"abcdefghijklmnop")), (2, u128::from_le_bytes(*b"xxxxxxxxxxxxxxxp"))],
        g: &[(RAX, 1 << 32), (RDX, 16), (RCX, u64::MAX)],
        want_g: &[(RCX, 16)],
        want_flags: Some(SF),
        ..BASE
    },
    // ---- not ours ----
    T {
        name: "LOCK prefix: #UD",
        code: &[0xf0, 0x0f, 0x58, 0x06],
        exit: Exit::InvalidOpcode { bytes: [0xf0, 0x0f, 0x58, 0x06, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], len: 4 },
        ..BASE
    },
    T {
        name: "VEX is the avx module's (the default model, v3, has AVX): vpaddd xmm0, xmm1, xmm2",
        code: &[0xc5, 0xf1, 0xfe, 0xc2],
        x: &[(1, 1 << 96 | 5), (2, 2 << 96 | 7)],
        want_x: &[(0, 3 << 96 | 12)],
        ..BASE
    },
];

#[test]
fn table() {
    for t in CASES {
        run_case(t);
    }
}

#[test]
fn fp_results_match_host() {
    // The host's own approximation, computed without the emulator.
    let x = ps([3.0, 0.1, -7.5, 1e-30]);
    let mut s = St { x: [0, 0, x], mx_in: DEF, ..St::default() };
    templ! { fp: HostRcpps = "rcpps xmm1, xmm2"; }
    HostRcpps::run(&mut s);
    let xin: &'static [(usize, u128)] = Box::leak(Box::new([(1, x)]));
    let want: &'static [(usize, u128)] = Box::leak(Box::new([(0, s.x[1])]));
    run_case(&T { name: "rcpps", code: &[0x0f, 0x53, 0xc1], x: xin, want_x: want, ..BASE });
    let _ = (RDX, RDI);
}

// ---- randomized checks of the Rust-implemented handlers against the host ----

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn xmm(&mut self) -> u128 {
        (self.next() as u128) << 64 | self.next() as u128
    }
}

/// Runs `bytes` (operating on xmm1, xmm2, rax/rcx/rdx) in the emulator.
fn emu_run(bytes: &[u8], s: &St) -> (Cpu, Exit) {
    let mut space = space_with(bytes);
    let mut cpu = Cpu::new();
    cpu.rip = CODE;
    cpu.xmm[0] = s.x[0];
    cpu.xmm[1] = s.x[1];
    cpu.xmm[2] = s.x[2];
    cpu.gpr[RAX] = s.g[0];
    cpu.gpr[RCX] = s.g[1];
    cpu.gpr[RDX] = s.g[2];
    let exit = cpu.run(&mut space, 10);
    (cpu, exit)
}

/// For each listed immediate: the emulator on `bytes ++ [imm]` must match
/// the host type `$h<imm>` in xmm1, rax and (if `$flags`) the status flags.
macro_rules! check_imm {
    ($rng:ident, $flags:expr, $bytes:expr, $h:ident, [$($imm:literal)*]) => {$({
        for _ in 0..8 {
            let mut s = St { x: [$rng.xmm(), $rng.xmm(), $rng.xmm()], g: [$rng.next(), $rng.next(), $rng.next()], mx_in: DEF, ..St::default() };
            if $rng.next() % 4 == 0 {
                s.x[2] = s.x[1];
            }
            let mut code: Vec<u8> = $bytes.to_vec();
            code.push($imm);
            let (cpu, exit) = emu_run(&code, &s);
            assert_eq!(exit, Exit::Breakpoint, "{} {:#x}", stringify!($h), $imm);
            $h::<$imm>::run(&mut s);
            assert_eq!(cpu.xmm[1], s.x[1], "{} {:#x}: xmm1", stringify!($h), $imm);
            assert_eq!(cpu.gpr[RAX], s.g[0], "{} {:#x}: rax", stringify!($h), $imm);
            if $flags {
                assert_eq!(cpu.rflags & crate::flags::STATUS, s.flags & crate::flags::STATUS, "{} {:#x}: flags", stringify!($h), $imm);
            }
        }
    })*};
}

imm_op! { full:
    HPshufd = "pshufd xmm1, xmm2, {i}";
    HPshufhw = "pshufhw xmm1, xmm2, {i}";
    HPshuflw = "pshuflw xmm1, xmm2, {i}";
    HShufps = "shufps xmm1, xmm2, {i}";
    HShufpd = "shufpd xmm1, xmm2, {i}";
    HPblendw = "pblendw xmm1, xmm2, {i}";
    HBlendps = "blendps xmm1, xmm2, {i}";
    HBlendpd = "blendpd xmm1, xmm2, {i}";
    HPalignr = "palignr xmm1, xmm2, {i}";
    HInsertps = "insertps xmm1, xmm2, {i}";
    HMpsadbw = "mpsadbw xmm1, xmm2, {i}";
    HPsllw = "psllw xmm1, {i}";
    HPslld = "pslld xmm1, {i}";
    HPsllq = "psllq xmm1, {i}";
    HPsrlw = "psrlw xmm1, {i}";
    HPsrld = "psrld xmm1, {i}";
    HPsrlq = "psrlq xmm1, {i}";
    HPsraw = "psraw xmm1, {i}";
    HPsrad = "psrad xmm1, {i}";
    HPslldq = "pslldq xmm1, {i}";
    HPsrldq = "psrldq xmm1, {i}";
    HPinsrb = "pinsrb xmm1, eax, {i}";
    HPinsrw = "pinsrw xmm1, eax, {i}";
    HPinsrd = "pinsrd xmm1, eax, {i}";
    HPinsrq = "pinsrq xmm1, rax, {i}";
    HPextrb = "pextrb eax, xmm1, {i}";
    HPextrw = "pextrw eax, xmm1, {i}";
    HPextrd = "pextrd eax, xmm1, {i}";
    HPextrq = "pextrq rax, xmm1, {i}";
    HExtractps = "extractps eax, xmm1, {i}";
}

templ! { full:
    HPtest = "ptest xmm1, xmm2";
    HCrc32b = "crc32 eax, dl";
    HCrc32w = "crc32 eax, dx";
    HCrc32d = "crc32 eax, edx";
    HCrc32q = "crc32 rax, rdx";
    HMovmskps = "movmskps eax, xmm1";
    HMovmskpd = "movmskpd eax, xmm1";
    HPmovmskb = "pmovmskb eax, xmm1";
    HMovhlps = "movhlps xmm1, xmm2";
    HMovlhps = "movlhps xmm1, xmm2";
}

#[test]
fn rust_handlers_match_host() {
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    check_imm!(r, false, [0x66, 0x0f, 0x70, 0xca], HPshufd, [0x00 0x1b 0x4e 0x93 0xe4 0xff]);
    check_imm!(r, false, [0xf3, 0x0f, 0x70, 0xca], HPshufhw, [0x00 0x1b 0x4e 0xe4]);
    check_imm!(r, false, [0xf2, 0x0f, 0x70, 0xca], HPshuflw, [0x00 0x1b 0x4e 0xe4]);
    check_imm!(r, false, [0x0f, 0xc6, 0xca], HShufps, [0x00 0x1b 0x4e 0xb1 0xff]);
    check_imm!(r, false, [0x66, 0x0f, 0xc6, 0xca], HShufpd, [0x00 0x01 0x02 0x03 0xfe]);
    check_imm!(r, false, [0x66, 0x0f, 0x3a, 0x0e, 0xca], HPblendw, [0x00 0x5a 0x81 0xff]);
    check_imm!(r, false, [0x66, 0x0f, 0x3a, 0x0c, 0xca], HBlendps, [0x00 0x05 0x0a 0xf3]);
    check_imm!(r, false, [0x66, 0x0f, 0x3a, 0x0d, 0xca], HBlendpd, [0x00 0x01 0x02 0xff]);
    check_imm!(r, false, [0x66, 0x0f, 0x3a, 0x0f, 0xca], HPalignr, [0 1 7 15 16 17 31 32 200]);
    check_imm!(r, false, [0x66, 0x0f, 0x3a, 0x21, 0xca], HInsertps, [0x00 0x10 0x65 0xcf 0xfa]);
    check_imm!(r, false, [0x66, 0x0f, 0x3a, 0x42, 0xca], HMpsadbw, [0 1 2 3 4 5 6 7 0xf8]);
    check_imm!(r, false, [0x66, 0x0f, 0x71, 0xf1], HPsllw, [0 1 15 16 200]);
    check_imm!(r, false, [0x66, 0x0f, 0x72, 0xf1], HPslld, [0 1 31 32 200]);
    check_imm!(r, false, [0x66, 0x0f, 0x73, 0xf1], HPsllq, [0 1 63 64 200]);
    check_imm!(r, false, [0x66, 0x0f, 0x71, 0xd1], HPsrlw, [0 1 15 16 200]);
    check_imm!(r, false, [0x66, 0x0f, 0x72, 0xd1], HPsrld, [0 1 31 32 200]);
    check_imm!(r, false, [0x66, 0x0f, 0x73, 0xd1], HPsrlq, [0 1 63 64 200]);
    check_imm!(r, false, [0x66, 0x0f, 0x71, 0xe1], HPsraw, [0 1 15 16 200]);
    check_imm!(r, false, [0x66, 0x0f, 0x72, 0xe1], HPsrad, [0 1 31 32 200]);
    check_imm!(r, false, [0x66, 0x0f, 0x73, 0xf9], HPslldq, [0 1 15 16 200]);
    check_imm!(r, false, [0x66, 0x0f, 0x73, 0xd9], HPsrldq, [0 1 15 16 200]);
    check_imm!(r, false, [0x66, 0x0f, 0x3a, 0x20, 0xc8], HPinsrb, [0 5 15 16 0xff]);
    check_imm!(r, false, [0x66, 0x0f, 0xc4, 0xc8], HPinsrw, [0 5 7 8 0xff]);
    check_imm!(r, false, [0x66, 0x0f, 0x3a, 0x22, 0xc8], HPinsrd, [0 1 3 4 0xff]);
    check_imm!(r, false, [0x66, 0x48, 0x0f, 0x3a, 0x22, 0xc8], HPinsrq, [0 1 2 0xff]);
    check_imm!(r, false, [0x66, 0x0f, 0x3a, 0x14, 0xc8], HPextrb, [0 5 15 16 0xff]);
    check_imm!(r, false, [0x66, 0x0f, 0xc5, 0xc1], HPextrw, [0 5 7 8 0xff]);
    check_imm!(r, false, [0x66, 0x0f, 0x3a, 0x16, 0xc8], HPextrd, [0 1 3 4 0xff]);
    check_imm!(r, false, [0x66, 0x48, 0x0f, 0x3a, 0x16, 0xc8], HPextrq, [0 1 2 0xff]);
    check_imm!(r, false, [0x66, 0x0f, 0x3a, 0x17, 0xc8], HExtractps, [0 1 3 4 0xff]);
}

#[test]
fn rust_handlers_without_imm_match_host() {
    let mut r = Rng(0x1234_5678_9abc_def1);
    type Case = (&'static [u8], fn(&mut St), bool);
    let cases: &[Case] = &[
        (&[0x66, 0x0f, 0x38, 0x17, 0xca], HPtest::run, true),
        (&[0xf2, 0x0f, 0x38, 0xf0, 0xc2], HCrc32b::run, false),
        (&[0x66, 0xf2, 0x0f, 0x38, 0xf1, 0xc2], HCrc32w::run, false),
        (&[0xf2, 0x0f, 0x38, 0xf1, 0xc2], HCrc32d::run, false),
        (&[0xf2, 0x48, 0x0f, 0x38, 0xf1, 0xc2], HCrc32q::run, false),
        (&[0x0f, 0x50, 0xc1], HMovmskps::run, false),
        (&[0x66, 0x0f, 0x50, 0xc1], HMovmskpd::run, false),
        (&[0x66, 0x0f, 0xd7, 0xc1], HPmovmskb::run, false),
        (&[0x0f, 0x12, 0xca], HMovhlps::run, false),
        (&[0x0f, 0x16, 0xca], HMovlhps::run, false),
    ];
    for (k, (bytes, host, flags)) in cases.iter().enumerate() {
        for n in 0..16 {
            let mut s =
                St { x: [r.xmm(), r.xmm(), r.xmm()], g: [r.next(), r.next(), r.next()], mx_in: DEF, ..St::default() };
            if n % 4 == 0 {
                // ptest: make the zero outcomes likely.
                s.x[2] &= s.x[1];
            }
            if n % 4 == 1 {
                s.x[2] &= !s.x[1];
            }
            let (cpu, exit) = emu_run(bytes, &s);
            assert_eq!(exit, Exit::Breakpoint, "case {k}");
            host(&mut s);
            assert_eq!(cpu.xmm[1], s.x[1], "case {k}: xmm1");
            assert_eq!(cpu.gpr[RAX], s.g[0], "case {k}: rax");
            if *flags {
                assert_eq!(cpu.rflags & crate::flags::STATUS, s.flags & crate::flags::STATUS, "case {k}: flags");
            }
        }
    }
}

/// Every two-operand host family decodes to a handler and runs register and
/// aligned memory forms without trapping.
#[test]
fn host_families_select() {
    use iced_x86::{Decoder, DecoderOptions};
    let enc: &[&[u8]] = &[
        &[0x66, 0x0f, 0xfc, 0xc1],             // paddb
        &[0x66, 0x0f, 0x38, 0x40, 0xc1],       // pmulld
        &[0x66, 0x0f, 0x38, 0x37, 0xc1],       // pcmpgtq
        &[0x66, 0x0f, 0x38, 0x41, 0xc1],       // phminposuw
        &[0x66, 0x0f, 0x38, 0x0b, 0xc1],       // pmulhrsw
        &[0xf2, 0x0f, 0x12, 0xc1],             // movddup
        &[0x66, 0x0f, 0xd0, 0xc1],             // addsubpd
        &[0x0f, 0x52, 0xc1],                   // rsqrtps
        &[0x66, 0x0f, 0xe6, 0xc1],             // cvttpd2dq
        &[0x66, 0x0f, 0x3a, 0x09, 0xc1, 0x03], // roundpd
        &[0x66, 0x0f, 0x3a, 0x41, 0xc1, 0x31], // dppd
    ];
    for bytes in enc {
        let mut d = Decoder::new(64, bytes, DecoderOptions::NONE);
        let i = d.decode();
        assert!(super::select(&i).is_some(), "{:?}", i.mnemonic());
        let s = St { x: [1, 2, 3], ..St::default() };
        assert_eq!(emu_run(bytes, &s).1, Exit::Breakpoint, "{:?}", i.mnemonic());
    }
}

/// Every instruction with an SSE-family CPUID feature decodes to a handler,
/// except the MMX-register forms and x87 `fisttp` (not this module's).
#[test]
fn every_sse_instruction_is_selected() {
    use iced_x86::{Code, CpuidFeature as F, EncodingKind, Instruction};
    let mut missing = Vec::new();
    for c in Code::values() {
        let f = c.cpuid_features();
        if !f.iter().any(|x| matches!(x, F::SSE | F::SSE2 | F::SSE3 | F::SSSE3 | F::SSE4_1 | F::SSE4_2)) {
            continue;
        }
        let mut i = Instruction::default();
        i.set_code(c);
        if i.encoding() != EncodingKind::Legacy {
            continue;
        }
        let name = format!("{c:?}");
        let mmx = name.contains("_mm") || name.contains("pi_") || name.contains("2pi") || name.starts_with("Fisttp");
        if super::select(&i).is_none() && crate::exec::int::select(&i).is_none() && !mmx {
            missing.push(name);
        }
    }
    assert!(missing.is_empty(), "{missing:?}");
}

/// Memory operands are read (or written) with exactly the instruction's
/// width: an operand ending at the end of the mapping works, one byte further
/// faults (or is #GP when a 16-byte operand must be aligned), and a fault
/// leaves every register as it was.
#[test]
fn memory_operand_widths() {
    const END: u64 = DATA + 0x2000;
    // (bytes, width, 16-byte alignment required, store)
    let cases: &[(&[u8], u64, bool, bool)] = &[
        (&[0xf2, 0x0f, 0x12, 0x06], 8, false, false),
        (&[0x66, 0x0f, 0x3a, 0x0a, 0x06, 0x04], 4, false, false),
        (&[0x66, 0x0f, 0x3a, 0x0b, 0x06, 0x04], 8, false, false),
        (&[0x66, 0x0f, 0x3a, 0x20, 0x06, 0x03], 1, false, false),
        (&[0x66, 0x0f, 0xc4, 0x06, 0x03], 2, false, false),
        (&[0xf3, 0x0f, 0x5a, 0x06], 4, false, false),
        (&[0xf2, 0x0f, 0x5a, 0x06], 8, false, false),
        (&[0x0f, 0x2f, 0x06], 4, false, false),
        (&[0x66, 0x0f, 0x2e, 0x06], 8, false, false),
        (&[0x66, 0x0f, 0x38, 0x22, 0x06], 2, false, false),
        (&[0x66, 0x0f, 0x38, 0x31, 0x06], 4, false, false),
        (&[0x66, 0x0f, 0x38, 0x25, 0x06], 8, false, false),
        (&[0xf3, 0x0f, 0xe6, 0x06], 8, false, false),
        (&[0xf3, 0x48, 0x0f, 0x2c, 0x06], 4, false, false),
        (&[0xf2, 0x0f, 0x2d, 0x06], 8, false, false),
        (&[0xf3, 0x0f, 0xc2, 0x06, 0x02], 4, false, false),
        (&[0xf2, 0x0f, 0xc2, 0x06, 0x02], 8, false, false),
        (&[0xf2, 0x0f, 0x51, 0x06], 8, false, false),
        (&[0xf2, 0x0f, 0x5d, 0x06], 8, false, false),
        (&[0x66, 0x0f, 0x12, 0x06], 8, false, false),
        (&[0x66, 0x0f, 0x17, 0x06], 8, false, true),
        (&[0x66, 0x0f, 0x3a, 0x17, 0x06, 0x02], 4, false, true),
        (&[0x66, 0x48, 0x0f, 0x3a, 0x16, 0x06, 0x01], 8, false, true),
        (&[0x66, 0x0f, 0x3a, 0x15, 0x06, 0x01], 2, false, true),
        (&[0x66, 0x0f, 0x7e, 0x06], 4, false, true),
        (&[0xf2, 0x0f, 0x11, 0x06], 8, false, true),
        (&[0x66, 0x0f, 0x3a, 0x63, 0x06, 0x00], 16, false, false),
        (&[0xf2, 0x0f, 0xf0, 0x06], 16, false, false),
        (&[0xf3, 0x0f, 0x7f, 0x06], 16, false, true),
        (&[0x66, 0x0f, 0x70, 0x06, 0x1b], 16, true, false),
        (&[0x66, 0x0f, 0xfc, 0x06], 16, true, false),
        (&[0xf3, 0x0f, 0x53, 0x06], 4, false, false),
        (&[0x66, 0xf2, 0x0f, 0x38, 0xf1, 0x06], 2, false, false),
        (&[0x66, 0x0f, 0x3a, 0x21, 0x06, 0x00], 4, false, false),
        (&[0x66, 0x0f, 0x38, 0x2a, 0x06], 16, true, false),
        (&[0x0f, 0x2b, 0x06], 16, true, true),
        (&[0x66, 0x0f, 0x38, 0x17, 0x06], 16, true, false),
    ];
    for (k, &(bytes, width, align, store)) in cases.iter().enumerate() {
        let access = if store { crate::Access::Write } else { crate::Access::Read };
        let far = if align { Exit::GeneralProtection } else { Exit::PageFault { addr: END, access } };
        for (addr, want) in [(END - width, Exit::Breakpoint), (END - width + 1, far)] {
            let mut space = space_with(bytes);
            let mut cpu = Cpu::new();
            cpu.rip = CODE;
            cpu.gpr[RSI] = addr;
            cpu.gpr[RAX] = 0x1234;
            cpu.xmm[0] = ps([1.0, 2.0, 3.0, 4.0]);
            let before = cpu.clone();
            let exit = cpu.run(&mut space, 10);
            assert_eq!(exit, want, "case {k} at {addr:#x}");
            if want != Exit::Breakpoint {
                let state = (cpu.xmm, cpu.gpr, cpu.mxcsr, cpu.rflags, cpu.rip);
                assert_eq!(state, (before.xmm, before.gpr, before.mxcsr, before.rflags, CODE), "case {k}");
            }
        }
    }
}

/// A reserved MXCSR bit set behind the interpreter's back (e.g. by a tool)
/// never reaches the host's `ldmxcsr`.
#[test]
fn reserved_mxcsr_bits_do_not_reach_the_host() {
    let mut space = space_with(&[0xf3, 0x0f, 0x5e, 0xc1]);
    let mut cpu = Cpu::new();
    cpu.rip = CODE;
    cpu.mxcsr = 0xffff_0000 | DEF;
    cpu.xmm[0] = ss(1.0);
    cpu.xmm[1] = ss(4.0);
    assert_eq!(cpu.run(&mut space, 10), Exit::Breakpoint);
    assert_eq!(cpu.xmm[0], ss(0.25));
}
