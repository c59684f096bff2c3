//! Exact soft float for the x87 80-bit register format.
//!
//! Design: operands stay packed (`u128`, the 80-bit pattern in the low bits)
//! and are unpacked into `(sign, exponent, 64-bit significand)` only for
//! arithmetic. Every operation computes its exact result (or a 128-bit
//! truncation plus a sticky bit, which is enough for correct rounding) and
//! then rounds once in [`round`], which implements what rustc_apfloat's
//! `X87DoubleExtended` cannot express:
//! - precision control: rounding to 24/53/64 bits while keeping the 15-bit
//!   exponent range (denormals are rounded at the same bit as the precision
//!   would put it relative to 2^-16382, as hardware does);
//! - tininess detected after rounding to the target precision with an
//!   unbounded exponent (checked against the host);
//! - the unmasked overflow/underflow response that stores the result with the
//!   exponent adjusted by 2^∓24576;
//! - the C1 "rounded up" indicator;
//! - x87 NaN propagation (larger significand wins, QNaN beats SNaN, a tie
//!   picks the positive NaN) and the unsupported encodings (unnormals,
//!   pseudo-NaNs, pseudo-infinities), which raise IE.
//!
//! rustc_apfloat's `X87DoubleExtended` serves as an independent oracle for
//! this module in the tests (alongside the host FPU itself).
//!
//! Nothing here panics on any bit pattern: shifts are bounded, divisions have
//! non-zero normalized divisors.

/// Exception flag bits, as in the status and control words.
pub(crate) const IE: u16 = 0x01;
pub(crate) const DE: u16 = 0x02;
pub(crate) const ZE: u16 = 0x04;
pub(crate) const OE: u16 = 0x08;
pub(crate) const UE: u16 = 0x10;
pub(crate) const PE: u16 = 0x20;
/// Stack fault (goes with IE).
pub(crate) const SF: u16 = 0x40;

/// The QNaN floating-point indefinite.
pub(crate) const INDEFINITE: u128 = 0xffff << 64 | 0xc000_0000_0000_0000;
const J: u64 = 1 << 63;
const QUIET: u64 = 1 << 62;
const SIGN: u128 = 1 << 79;
const BIAS: i32 = 16383;
/// Exponent adjustment of the unmasked overflow/underflow response.
const ADJUST: i32 = 24576;

/// Rounding control.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Rc {
    Nearest,
    Down,
    Up,
    Zero,
}

impl Rc {
    pub(crate) fn from_fcw(fcw: u16) -> Rc {
        match (fcw >> 10) & 3 {
            0 => Rc::Nearest,
            1 => Rc::Down,
            2 => Rc::Up,
            _ => Rc::Zero,
        }
    }
}

/// The per-instruction context: rounding, precision, masks, and what
/// happened (exception flags and whether the result was rounded up).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ctx {
    pub rc: Rc,
    /// Precision in bits (24, 53 or 64).
    pub pc: u32,
    /// Exception masks (control word bits 0..=5).
    pub mask: u16,
    pub flags: u16,
    /// The last rounding increased the magnitude (C1).
    pub up: bool,
    /// A single/double memory operand was denormal (it is normal once
    /// widened, so DE has to be remembered for the operation to raise).
    pub src_denormal: bool,
    /// The format arithmetic rounds to instead of the register format at
    /// `pc` bits: the SSE flag model (`sse::post`) rounds to single or double
    /// precision with that format's own exponent range.
    pub target: Option<Fmt>,
}

impl Ctx {
    /// A context using the control word's precision control.
    pub(crate) fn new(fcw: u16) -> Ctx {
        let pc = match (fcw >> 8) & 3 {
            0 => 24,
            2 => 53,
            // 1 is reserved; hardware treats it as 64 bits.
            _ => 64,
        };
        Ctx { rc: Rc::from_fcw(fcw), pc, mask: fcw & 0x3f, flags: 0, up: false, src_denormal: false, target: None }
    }

    /// A context that ignores precision control (for everything except
    /// add, subtract, multiply, divide and square root).
    pub(crate) fn full(fcw: u16) -> Ctx {
        Ctx { pc: 64, ..Ctx::new(fcw) }
    }

    /// The format add, subtract, multiply, divide and square root round to.
    fn fmt(&self) -> Fmt {
        self.target.unwrap_or(reg_fmt(self.pc))
    }

    fn unmasked(&self, f: u16) -> bool {
        self.mask & f == 0
    }

    /// Flags a denormal operand; true when DE is unmasked, which ends the
    /// operation (no other exception is reported).
    pub(crate) fn denormal(&mut self) -> bool {
        self.flags |= DE;
        self.unmasked(DE)
    }

    /// Flags whose unmasked occurrence suppresses the result.
    pub(crate) fn blocking(&self) -> bool {
        self.flags & !self.mask & (IE | DE | ZE) != 0
    }
}

/// Operand classes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Class {
    Zero,
    /// Denormal or pseudo-denormal.
    Denormal,
    Normal,
    Inf,
    QNaN,
    SNaN,
    /// Unnormal, pseudo-NaN or pseudo-infinity.
    Unsupported,
}

impl Class {
    pub(crate) fn is_nan(self) -> bool {
        matches!(self, Class::QNaN | Class::SNaN)
    }
}

#[inline]
pub(crate) fn sign(v: u128) -> bool {
    v & SIGN != 0
}

#[inline]
fn biased_exp(v: u128) -> u32 {
    ((v >> 64) & 0x7fff) as u32
}

#[inline]
pub(crate) fn make(sign: bool, exp: u32, sig: u64) -> u128 {
    (sign as u128) << 79 | ((exp & 0x7fff) as u128) << 64 | sig as u128
}

pub(crate) fn class(v: u128) -> Class {
    let s = v as u64;
    match biased_exp(v) {
        0 if s == 0 => Class::Zero,
        0 => Class::Denormal,
        0x7fff if s & J == 0 => Class::Unsupported,
        0x7fff if s << 1 == 0 => Class::Inf,
        0x7fff if s & QUIET != 0 => Class::QNaN,
        0x7fff => Class::SNaN,
        _ if s & J == 0 => Class::Unsupported,
        _ => Class::Normal,
    }
}

pub(crate) fn zero(sign: bool) -> u128 {
    make(sign, 0, 0)
}

pub(crate) fn inf(sign: bool) -> u128 {
    make(sign, 0x7fff, J)
}

/// A finite non-zero value `sig * 2^(exp - 63)`, `sig` normalized.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Unp {
    pub sign: bool,
    pub exp: i32,
    pub sig: u64,
}

/// Unpacks a finite non-zero (normal, denormal or pseudo-denormal) value.
pub(crate) fn unpack(v: u128) -> Unp {
    let (s, e, m) = (sign(v), biased_exp(v), v as u64);
    if e == 0 {
        let lz = m.leading_zeros().min(63);
        Unp { sign: s, exp: -16382 - lz as i32, sig: m << lz }
    } else {
        Unp { sign: s, exp: e as i32 - BIAS, sig: m }
    }
}

/// A target format: precision and normal exponent range.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fmt {
    pub p: u32,
    pub emin: i32,
    pub emax: i32,
}

pub(crate) const F32: Fmt = Fmt { p: 24, emin: -126, emax: 127 };
pub(crate) const F64: Fmt = Fmt { p: 53, emin: -1022, emax: 1023 };

fn reg_fmt(p: u32) -> Fmt {
    Fmt { p, emin: -16382, emax: 16383 }
}

/// A rounded result: `m * 2^lsb`, or an infinity.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Rounded {
    Fin { sign: bool, m: u64, lsb: i32 },
    Inf(bool),
}

/// Drops the low `drop` bits of `sig` (plus `sticky` below them) with
/// rounding `rc`. Returns the kept bits (possibly carried one higher),
/// whether anything was lost, and whether the result was rounded up.
fn round_bits(sig: u128, sticky: bool, drop: u32, sign: bool, rc: Rc) -> (u128, bool, bool) {
    let (kept, half, rest) = match drop {
        0 => (sig, false, sticky),
        1..=127 => {
            let rem = sig & ((1u128 << drop) - 1);
            let half = (rem >> (drop - 1)) & 1 != 0;
            let rest = rem & ((1u128 << (drop - 1)) - 1) != 0 || sticky;
            (sig >> drop, half, rest)
        }
        128 => (0, sig >> 127 != 0, sig << 1 != 0 || sticky),
        _ => (0, false, sig != 0 || sticky),
    };
    let inexact = half || rest;
    let up = match rc {
        Rc::Nearest => half && (rest || kept & 1 != 0),
        Rc::Zero => false,
        Rc::Down => sign && inexact,
        Rc::Up => !sign && inexact,
    };
    (kept + up as u128, inexact, up)
}

/// Rounds `sig * 2^(exp - 127)` (+ sticky), `sig` with bit 127 set, to
/// `fmt`. `adjust` selects the register destination's unmasked
/// overflow/underflow response (exponent adjusted by 2^24576); for memory
/// formats an unmasked overflow/underflow is only flagged (the caller
/// then stores nothing).
pub(crate) fn round(sign: bool, exp: i32, sig: u128, sticky: bool, fmt: Fmt, ctx: &mut Ctx, adjust: bool) -> Rounded {
    let p = fmt.p;
    let drop = 128 - p;
    let (mut m0, inex0, up0) = round_bits(sig, sticky, drop, sign, ctx.rc);
    let mut e0 = exp;
    if m0 >> p != 0 {
        m0 >>= 1;
        e0 += 1;
    }
    ctx.up = false;
    if e0 > fmt.emax {
        if adjust && ctx.unmasked(OE) && e0 - ADJUST <= fmt.emax {
            ctx.flags |= OE;
            if inex0 {
                ctx.flags |= PE;
                ctx.up = up0;
            }
            return Rounded::Fin { sign, m: m0 as u64, lsb: e0 - ADJUST - (p as i32 - 1) };
        }
        if !adjust && ctx.unmasked(OE) {
            // Memory destination: nothing is stored; only OE is reported.
            ctx.flags |= OE;
            return Rounded::Inf(sign);
        }
        ctx.flags |= OE | PE;
        let to_inf = match ctx.rc {
            Rc::Nearest => true,
            Rc::Zero => false,
            Rc::Down => sign,
            Rc::Up => !sign,
        };
        ctx.up = to_inf;
        return if to_inf {
            Rounded::Inf(sign)
        } else {
            Rounded::Fin { sign, m: (1u64 << (p - 1) << 1).wrapping_sub(1), lsb: fmt.emax - (p as i32 - 1) }
        };
    }
    if e0 >= fmt.emin {
        if inex0 {
            ctx.flags |= PE;
            ctx.up = up0;
        }
        return Rounded::Fin { sign, m: m0 as u64, lsb: e0 - (p as i32 - 1) };
    }
    // Tiny.
    if !adjust && ctx.unmasked(UE) {
        ctx.flags |= UE;
        return Rounded::Fin { sign, m: 0, lsb: 0 };
    }
    if ctx.unmasked(UE) {
        ctx.flags |= UE;
        if inex0 {
            ctx.flags |= PE;
            ctx.up = up0;
        }
        if adjust && e0 + ADJUST >= fmt.emin {
            return Rounded::Fin { sign, m: m0 as u64, lsb: e0 + ADJUST - (p as i32 - 1) };
        }
    }
    // Masked response (also when even the adjusted exponent is out of range).
    let shift = (fmt.emin as i64 - exp as i64).clamp(0, 256) as u32;
    let (m, inex, up) = round_bits(sig, sticky, drop + shift, sign, ctx.rc);
    if inex {
        ctx.flags |= UE | PE;
        ctx.up = up;
    }
    Rounded::Fin { sign, m: m as u64, lsb: fmt.emin - (p as i32 - 1) }
}

/// Packs a rounded result into the register format.
pub(crate) fn pack80(r: Rounded) -> u128 {
    match r {
        Rounded::Inf(s) => inf(s),
        Rounded::Fin { sign, m: 0, .. } => zero(sign),
        Rounded::Fin { sign, m, lsb } => {
            let l = 63 - m.leading_zeros() as i32;
            let lead = lsb + l;
            if lead >= -16382 {
                make(sign, (lead + BIAS).clamp(0, 0x7fff) as u32, m << (63 - l))
            } else {
                make(sign, 0, m << (lsb + 16445).clamp(0, 63))
            }
        }
    }
}

/// Packs into an IEEE interchange format with `frac` fraction bits.
fn pack_ieee(r: Rounded, frac: u32, bias: i32) -> u64 {
    let width = frac + (if frac == 52 { 11 } else { 8 });
    let sbit = |s: bool| (s as u64) << width;
    let emax_field = (1u64 << (width - frac)) - 1;
    match r {
        Rounded::Inf(s) => sbit(s) | emax_field << frac,
        Rounded::Fin { sign, m: 0, .. } => sbit(sign),
        Rounded::Fin { sign, m, lsb } => {
            let l = 63 - m.leading_zeros() as i32;
            let lead = lsb + l;
            if lead >= 1 - bias {
                let f = (m << (frac as i32 - l).clamp(0, 63)) & ((1u64 << frac) - 1);
                sbit(sign) | (((lead + bias) as u64) & emax_field) << frac | f
            } else {
                let dl = lsb - (1 - bias - frac as i32);
                sbit(sign) | m << dl.clamp(0, 63)
            }
        }
    }
}

/// Rounds an unpacked value to the register format (with `ctx.pc`).
fn round_unp(u: Unp, ctx: &mut Ctx) -> u128 {
    pack80(round(u.sign, u.exp, (u.sig as u128) << 64, false, ctx.fmt(), ctx, true))
}

fn quiet(v: u128) -> u128 {
    v | QUIET as u128
}

/// x87 NaN propagation for two operands of which at least one is a NaN.
fn nan2(a: u128, b: u128, ctx: &mut Ctx) -> u128 {
    let (ca, cb) = (class(a), class(b));
    if ca == Class::SNaN || cb == Class::SNaN {
        ctx.flags |= IE;
    }
    let r = match (ca.is_nan(), cb.is_nan()) {
        (true, true) if ca != cb => {
            if ca == Class::QNaN {
                a
            } else {
                b
            }
        }
        (true, true) => {
            let (sa, sb) = (a as u64, b as u64);
            if sa > sb || (sa == sb && !sign(a)) {
                a
            } else {
                b
            }
        }
        (true, false) => a,
        _ => b,
    };
    quiet(r)
}

/// Handles unsupported and NaN operands of a two-operand operation and
/// flags denormal operands. `Some` is the final result.
fn prelude2(a: u128, b: u128, ctx: &mut Ctx) -> Option<u128> {
    let (ca, cb) = (class(a), class(b));
    if ca == Class::Unsupported || cb == Class::Unsupported {
        ctx.flags |= IE;
        return Some(INDEFINITE);
    }
    if ca.is_nan() || cb.is_nan() {
        return Some(nan2(a, b, ctx));
    }
    if (ca == Class::Denormal || cb == Class::Denormal || ctx.src_denormal) && ctx.denormal() {
        return Some(INDEFINITE);
    }
    None
}

/// One-operand prelude: `Some` is the final result.
fn prelude1(a: u128, ctx: &mut Ctx) -> Option<u128> {
    match class(a) {
        Class::Unsupported => {
            ctx.flags |= IE;
            Some(INDEFINITE)
        }
        Class::SNaN => {
            ctx.flags |= IE;
            Some(quiet(a))
        }
        Class::QNaN => Some(a),
        Class::Denormal if ctx.denormal() => Some(INDEFINITE),
        _ => None,
    }
}

fn invalid(ctx: &mut Ctx) -> u128 {
    ctx.flags |= IE;
    INDEFINITE
}

/// `a + b`, or `a - b` when `negate_b`.
pub(crate) fn add(a: u128, b: u128, negate_b: bool, ctx: &mut Ctx) -> u128 {
    if let Some(r) = prelude2(a, b, ctx) {
        return r;
    }
    let b = if negate_b { b ^ SIGN } else { b };
    let (ca, cb) = (class(a), class(b));
    let (sa, sb) = (sign(a), sign(b));
    match (ca, cb) {
        (Class::Inf, Class::Inf) if sa != sb => return invalid(ctx),
        (Class::Inf, _) => return a,
        (_, Class::Inf) => return b,
        (Class::Zero, Class::Zero) => return if sa == sb { a } else { zero(ctx.rc == Rc::Down) },
        (Class::Zero, _) => return round_unp(unpack(b), ctx),
        (_, Class::Zero) => return round_unp(unpack(a), ctx),
        _ => {}
    }
    let (mut x, mut y) = (unpack(a), unpack(b));
    if y.exp > x.exp {
        std::mem::swap(&mut x, &mut y);
    }
    let d = (x.exp - y.exp) as u32;
    let big = (x.sig as u128) << 62;
    let y0 = (y.sig as u128) << 62;
    let small = match d {
        0 => y0,
        1..=125 => (y0 >> d) | ((y0 & ((1u128 << d) - 1)) != 0) as u128,
        _ => 1,
    };
    let (s, rsign) = if x.sign == y.sign {
        (big + small, x.sign)
    } else if big >= small {
        (big - small, x.sign)
    } else {
        (small - big, y.sign)
    };
    if s == 0 {
        return zero(ctx.rc == Rc::Down);
    }
    let lz = s.leading_zeros();
    pack80(round(rsign, x.exp + 2 - lz as i32, s << lz, false, ctx.fmt(), ctx, true))
}

pub(crate) fn mul(a: u128, b: u128, ctx: &mut Ctx) -> u128 {
    if let Some(r) = prelude2(a, b, ctx) {
        return r;
    }
    let s = sign(a) != sign(b);
    match (class(a), class(b)) {
        (Class::Inf, Class::Zero) | (Class::Zero, Class::Inf) => return invalid(ctx),
        (Class::Inf, _) | (_, Class::Inf) => return inf(s),
        (Class::Zero, _) | (_, Class::Zero) => return zero(s),
        _ => {}
    }
    let (x, y) = (unpack(a), unpack(b));
    let mut p = x.sig as u128 * y.sig as u128;
    let mut e = x.exp + y.exp + 1;
    if p >> 127 == 0 {
        p <<= 1;
        e -= 1;
    }
    pack80(round(s, e, p, false, ctx.fmt(), ctx, true))
}

pub(crate) fn div(a: u128, b: u128, ctx: &mut Ctx) -> u128 {
    // A zero divisor takes precedence over a denormal dividend (also one
    // that was a single/double memory operand, checked on the host).
    let denormal_a = class(a) == Class::Denormal || (ctx.src_denormal && class(a) == Class::Normal);
    if class(b) == Class::Zero && denormal_a {
        ctx.flags |= ZE;
        return inf(sign(a) != sign(b));
    }
    if let Some(r) = prelude2(a, b, ctx) {
        return r;
    }
    let s = sign(a) != sign(b);
    match (class(a), class(b)) {
        (Class::Inf, Class::Inf) | (Class::Zero, Class::Zero) => return invalid(ctx),
        (Class::Inf, _) => return inf(s),
        (_, Class::Inf) | (Class::Zero, _) => return zero(s),
        (_, Class::Zero) => {
            ctx.flags |= ZE;
            return inf(s);
        }
        _ => {}
    }
    let (x, y) = (unpack(a), unpack(b));
    let d = y.sig as u128;
    let (num, e) = if x.sig >= y.sig {
        ((x.sig as u128) << 63, x.exp - y.exp)
    } else {
        ((x.sig as u128) << 64, x.exp - y.exp - 1)
    };
    let (q1, r1) = (num / d, num % d);
    let (q2, r2) = ((r1 << 64) / d, (r1 << 64) % d);
    pack80(round(s, e, q1 << 64 | q2, r2 != 0, ctx.fmt(), ctx, true))
}

pub(crate) fn sqrt(a: u128, ctx: &mut Ctx) -> u128 {
    // A negative operand is invalid before it is denormal.
    if class(a) != Class::Denormal {
        if let Some(r) = prelude1(a, ctx) {
            return r;
        }
    }
    match class(a) {
        Class::Zero => return a,
        _ if sign(a) => return invalid(ctx),
        Class::Inf => return a,
        _ => {}
    }
    if class(a) == Class::Denormal && ctx.denormal() {
        return INDEFINITE;
    }
    let x = unpack(a);
    // Radicand t = m * 2^126 with m in [1, 4) and an even exponent left over.
    let (t, e) = if x.exp & 1 == 0 { ((x.sig as u128) << 63, x.exp) } else { ((x.sig as u128) << 64, x.exp - 1) };
    let (mut rem, mut root) = (0u128, 0u128);
    for k in 0..67u32 {
        let pair = if k < 64 { (t >> (126 - 2 * k)) & 3 } else { 0 };
        rem = (rem << 2) | pair;
        let trial = (root << 2) | 1;
        if rem >= trial {
            rem -= trial;
            root = (root << 1) | 1;
        } else {
            root <<= 1;
        }
    }
    // root has 67 bits, the leading one at bit 66 (sqrt(m) in [1, 2)).
    pack80(round(false, e / 2, root << 61, rem != 0, ctx.fmt(), ctx, true))
}

/// `a * b + c` rounded once to `ctx.fmt()` (the SSE flag model's FMA; x87
/// has no such instruction). Special operands give the IEEE results; only the
/// flags of a finite rounding matter to the caller.
pub(crate) fn fma(a: u128, b: u128, c: u128, ctx: &mut Ctx) -> u128 {
    let (ca, cb, cc) = (class(a), class(b), class(c));
    if [ca, cb, cc].iter().any(|k| k.is_nan() || *k == Class::Unsupported) {
        if [ca, cb, cc].iter().any(|k| *k != Class::QNaN) {
            ctx.flags |= IE;
        }
        return INDEFINITE;
    }
    let ps = sign(a) != sign(b);
    match (ca, cb) {
        (Class::Inf, Class::Zero) | (Class::Zero, Class::Inf) => return invalid(ctx),
        (Class::Inf, _) | (_, Class::Inf) => {
            return if cc == Class::Inf && sign(c) != ps { invalid(ctx) } else { inf(ps) };
        }
        (Class::Zero, _) | (_, Class::Zero) => return add(zero(ps), c, false, ctx),
        _ => {}
    }
    match cc {
        Class::Inf => return c,
        Class::Zero => return mul(a, b, ctx),
        _ => {}
    }
    let (x, y, z) = (unpack(a), unpack(b), unpack(c));
    let mut p = x.sig as u128 * y.sig as u128;
    let mut pe = x.exp + y.exp + 1;
    if p >> 127 == 0 {
        p <<= 1;
        pe -= 1;
    }
    // Both terms as `m * 2^(e - 127)` with bit 127 set; two bits of headroom, and
    // the bits shifted out of the smaller term folded into a sticky bit (exact
    // unless the exponents differ by two or more, where at most one bit cancels).
    let jam = |m: u128, d: u32| match d {
        0 => m,
        1..=127 => (m >> d) | ((m & ((1u128 << d) - 1)) != 0) as u128,
        _ => (m != 0) as u128,
    };
    let (mut hi, mut lo) = ((ps, pe, p), (z.sign, z.exp, (z.sig as u128) << 64));
    if lo.1 > hi.1 || (lo.1 == hi.1 && lo.2 > hi.2) {
        std::mem::swap(&mut hi, &mut lo);
    }
    let big = jam(hi.2, 2);
    let small = jam(lo.2, (2 + (hi.1 - lo.1) as i64).min(200) as u32);
    let (s, rsign) = if hi.0 == lo.0 { (big + small, hi.0) } else { (big.saturating_sub(small), hi.0) };
    if s == 0 {
        return zero(ctx.rc == Rc::Down);
    }
    let lz = s.leading_zeros();
    pack80(round(rsign, hi.1 + 2 - lz as i32, s << lz, false, ctx.fmt(), ctx, true))
}

/// Rounds `a` to `ctx.fmt()` with the register destination's response (the SSE
/// flag model's narrowing conversions).
pub(crate) fn narrow(a: u128, ctx: &mut Ctx) -> u128 {
    match class(a) {
        Class::Normal | Class::Denormal => {
            let u = unpack(a);
            pack80(round(u.sign, u.exp, (u.sig as u128) << 64, false, ctx.fmt(), ctx, true))
        }
        Class::SNaN | Class::Unsupported => invalid(ctx),
        _ => a,
    }
}

/// Converts a single-precision value exactly. SNaNs stay signaling (the
/// operation raises IE); a denormal sets `src_denormal`.
pub(crate) fn from_f32(bits: u32, ctx: &mut Ctx) -> u128 {
    let s = bits >> 31 != 0;
    let e = (bits >> 23) & 0xff;
    let f = (bits & 0x7f_ffff) as u64;
    match e {
        0 if f == 0 => zero(s),
        0 => {
            ctx.src_denormal = true;
            let lz = f.leading_zeros() - 40;
            make(s, (-126 - lz as i32 + BIAS) as u32, f << (40 + lz))
        }
        0xff if f == 0 => inf(s),
        // NaNs keep their kind: the operation decides about IE.
        0xff => make(s, 0x7fff, J | f << 40),
        _ => make(s, (e as i32 - 127 + BIAS) as u32, J | f << 40),
    }
}

/// Converts a double-precision value exactly (as `from_f32`).
pub(crate) fn from_f64(bits: u64, ctx: &mut Ctx) -> u128 {
    let s = bits >> 63 != 0;
    let e = ((bits >> 52) & 0x7ff) as i32;
    let f = bits & ((1 << 52) - 1);
    match e {
        0 if f == 0 => zero(s),
        0 => {
            ctx.src_denormal = true;
            let lz = f.leading_zeros() - 11;
            make(s, (-1022 - lz as i32 + BIAS) as u32, f << (11 + lz))
        }
        0x7ff if f == 0 => inf(s),
        0x7ff => make(s, 0x7fff, J | f << 11),
        _ => make(s, (e - 1023 + BIAS) as u32, J | f << 11),
    }
}

/// Converts to single or double precision (`fst m32/m64`).
fn to_ieee(v: u128, fmt: Fmt, frac: u32, bias: i32, ctx: &mut Ctx) -> u64 {
    let width = if frac == 52 { 64 } else { 32 };
    let s = (sign(v) as u64) << (width - 1);
    let exp_all = ((1u64 << (width - 1 - frac)) - 1) << frac;
    let qbit = 1u64 << (frac - 1);
    match class(v) {
        Class::Unsupported => {
            ctx.flags |= IE;
            s | exp_all | qbit | 1u64 << (width - 1)
        }
        Class::SNaN | Class::QNaN => {
            if class(v) == Class::SNaN {
                ctx.flags |= IE;
            }
            s | exp_all | qbit | ((v as u64) << 1 >> (64 - frac))
        }
        Class::Inf => s | exp_all,
        Class::Zero => s,
        _ => {
            // A denormal source is not a DE here: only UE/PE (host-checked).
            let u = unpack(v);
            pack_ieee(round(u.sign, u.exp, (u.sig as u128) << 64, false, fmt, ctx, false), frac, bias)
        }
    }
}

pub(crate) fn to_f32(v: u128, ctx: &mut Ctx) -> u32 {
    to_ieee(v, F32, 23, 127, ctx) as u32
}

pub(crate) fn to_f64(v: u128, ctx: &mut Ctx) -> u64 {
    to_ieee(v, F64, 52, 1023, ctx)
}

/// An exact integer conversion.
pub(crate) fn from_i64(v: i64) -> u128 {
    if v == 0 {
        return zero(false);
    }
    let m = v.unsigned_abs();
    let lz = m.leading_zeros();
    make(v < 0, (63 - lz as i32 + BIAS) as u32, m << lz)
}

/// Rounds to an integer of `bits` bits with `rc`; the integer indefinite
/// (most negative value) on invalid operands or overflow.
pub(crate) fn to_int(v: u128, bits: u32, rc: Rc, ctx: &mut Ctx) -> i64 {
    let indefinite = i64::MIN >> (64 - bits);
    match class(v) {
        Class::Unsupported | Class::QNaN | Class::SNaN | Class::Inf => {
            ctx.flags |= IE;
            return indefinite;
        }
        Class::Zero => return 0,
        _ => {}
    }
    let u = unpack(v);
    let drop = (127 - u.exp as i64).clamp(0, 200) as u32;
    let (m, inexact, up) = round_bits((u.sig as u128) << 64, false, drop, u.sign, rc);
    let limit = 1u128 << (bits - 1);
    if m > limit || (m == limit && !u.sign) {
        ctx.flags |= IE;
        return indefinite;
    }
    if inexact {
        ctx.flags |= PE;
        ctx.up = up;
    }
    if u.sign {
        (m as u64 as i64).wrapping_neg()
    } else {
        m as i64
    }
}

/// `frndint`: rounds to an integral value with `ctx.rc`.
pub(crate) fn round_int(a: u128, ctx: &mut Ctx) -> u128 {
    if let Some(r) = prelude1(a, ctx) {
        return r;
    }
    match class(a) {
        Class::Zero | Class::Inf => return a,
        _ => {}
    }
    let u = unpack(a);
    if u.exp >= 63 {
        return a;
    }
    let drop = (127 - u.exp as i64).clamp(0, 200) as u32;
    let (m, inexact, up) = round_bits((u.sig as u128) << 64, false, drop, u.sign, ctx.rc);
    if inexact {
        ctx.flags |= PE;
        ctx.up = up;
    }
    if m == 0 {
        return zero(u.sign);
    }
    let m = m as u64;
    let lz = m.leading_zeros();
    make(u.sign, (63 - lz as i32 + BIAS) as u32, m << lz)
}

/// `fscale`: `a * 2^trunc(b)`.
pub(crate) fn scale(a: u128, b: u128, ctx: &mut Ctx) -> u128 {
    if let Some(r) = prelude2(a, b, ctx) {
        return r;
    }
    let (ca, cb) = (class(a), class(b));
    match (ca, cb) {
        (Class::Zero, Class::Inf) if !sign(b) => return invalid(ctx),
        (Class::Inf, Class::Inf) if sign(b) => return invalid(ctx),
        (Class::Inf, _) | (Class::Zero, _) => return a,
        (_, Class::Inf) => return if sign(b) { zero(sign(a)) } else { inf(sign(a)) },
        _ => {}
    }
    let n: i32 = if cb == Class::Zero {
        0
    } else {
        let y = unpack(b);
        let mag = if y.exp >= 20 {
            1 << 20
        } else if y.exp < 0 {
            0
        } else {
            (y.sig >> (63 - y.exp)) as i32
        };
        if y.sign {
            -mag
        } else {
            mag
        }
    };
    let x = unpack(a);
    let mut c = Ctx { pc: 64, ..*ctx };
    let r = pack80(round(x.sign, x.exp + n, (x.sig as u128) << 64, false, reg_fmt(64), &mut c, true));
    ctx.flags = c.flags;
    ctx.up = c.up;
    r
}

/// `fxtract`: (exponent, significand).
pub(crate) fn extract(a: u128, ctx: &mut Ctx) -> (u128, u128) {
    if let Some(r) = prelude1(a, ctx) {
        return (r, r);
    }
    match class(a) {
        Class::Zero => {
            ctx.flags |= ZE;
            (inf(true), a)
        }
        Class::Inf => (inf(false), a),
        _ => {
            let u = unpack(a);
            (from_i64(u.exp as i64), make(u.sign, BIAS as u32, u.sig))
        }
    }
}

/// The outcome of `fprem`/`fprem1`.
pub(crate) struct Rem {
    pub value: u128,
    /// Low three quotient bits (valid when complete).
    pub q: u64,
    /// C2: the reduction is incomplete.
    pub partial: bool,
    /// A NaN result (NaN or unsupported operand, invalid operation): C0 and
    /// C3 keep their values (AMD, checked on the host), C1 and C2 are cleared.
    pub nan: bool,
}

/// `fprem` (truncating, `ieee == false`) or `fprem1` (round to nearest).
pub(crate) fn rem(a: u128, b: u128, ieee: bool, ctx: &mut Ctx) -> Rem {
    let done = |value| Rem { value, q: 0, partial: false, nan: false };
    let nan = |value| Rem { value, q: 0, partial: false, nan: true };
    let (ca, cb) = (class(a), class(b));
    if !ca.is_nan() && !cb.is_nan() && ca != Class::Unsupported && cb != Class::Unsupported {
        // Invalid operands are reported before denormal ones.
        if ca == Class::Inf || cb == Class::Zero {
            return nan(invalid(ctx));
        }
    }
    if let Some(r) = prelude2(a, b, ctx) {
        return nan(r);
    }
    match (class(a), class(b)) {
        (Class::Inf, _) | (_, Class::Zero) => return nan(invalid(ctx)),
        (Class::Zero, _) => return done(a),
        // The dividend comes back as an exact result (pseudo-denormals
        // normalized, a denormal subject to the underflow response).
        (_, Class::Inf) => {
            let x = unpack(a);
            return done(pack_rem(x.sign, x.exp, x.sig as u128, ctx));
        }
        _ => {}
    }
    let (x, y) = (unpack(a), unpack(b));
    let d = x.exp - y.exp;
    let ys = y.sig as u128;
    if d >= 64 {
        // Partial: reduce by b * 2^(d - n), leaving an exponent difference
        // below n (Intel and AMD hardware use n = 32..63; we use 32 like
        // recent Intel cores, checked against the host in the tests).
        let n = 32 + ((d - 64) & 31);
        let num = (x.sig as u128) << n;
        let r = num % ys;
        let value = pack_rem(x.sign, y.exp + (d - n), r, ctx);
        return Rem { value, q: 0, partial: true, nan: false };
    }
    let (mut q, mut r, mut s) = if d >= 0 {
        let num = (x.sig as u128) << d;
        ((num / ys) as u64, num % ys, x.sign)
    } else {
        (0, x.sig as u128, x.sign)
    };
    let mut rexp = if d >= 0 { y.exp } else { x.exp };
    if ieee {
        if d >= 0 {
            if 2 * r > ys || (2 * r == ys && q & 1 == 1) {
                r = ys - r;
                s = !s;
                q = q.wrapping_add(1);
            }
        } else if d == -1 && x.sig > y.sig {
            // |a| > |b| / 2: the nearest quotient is 1.
            r = 2 * ys - x.sig as u128;
            rexp = x.exp;
            s = !s;
            q = 1;
        }
    }
    Rem { value: pack_rem(s, rexp, r, ctx), q, partial: false, nan: false }
}

/// Packs an exact remainder `r * 2^(exp - 63)` (`r < 2^65`).
fn pack_rem(sign: bool, exp: i32, r: u128, ctx: &mut Ctx) -> u128 {
    if r == 0 {
        return zero(sign);
    }
    let lz = r.leading_zeros();
    let mut c = Ctx { pc: 64, ..*ctx };
    let v = pack80(round(sign, exp + 64 - lz as i32, r << lz, false, reg_fmt(64), &mut c, true));
    ctx.flags = c.flags;
    v
}

/// Comparison outcome.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Order {
    Less,
    Equal,
    Greater,
    Unordered,
}

/// Compares; `quiet` (fucom*) raises IE only for SNaNs.
pub(crate) fn compare(a: u128, b: u128, quiet: bool, ctx: &mut Ctx) -> Order {
    let (ca, cb) = (class(a), class(b));
    if ca == Class::Unsupported || cb == Class::Unsupported {
        ctx.flags |= IE;
        return Order::Unordered;
    }
    if ca.is_nan() || cb.is_nan() {
        if !quiet || ca == Class::SNaN || cb == Class::SNaN {
            ctx.flags |= IE;
        }
        return Order::Unordered;
    }
    if ca == Class::Denormal || cb == Class::Denormal || ctx.src_denormal {
        ctx.flags |= DE;
    }
    let key = |v: u128, c: Class| -> (i32, u64) {
        match c {
            Class::Zero => (i32::MIN, 0),
            Class::Inf => (i32::MAX, 0),
            _ => {
                let u = unpack(v);
                (u.exp, u.sig)
            }
        }
    };
    let (ka, kb) = (key(a, ca), key(b, cb));
    if ca == Class::Zero && cb == Class::Zero {
        return Order::Equal;
    }
    let (sa, sb) = (sign(a) && ca != Class::Zero, sign(b) && cb != Class::Zero);
    let ord = match (sa, sb) {
        (false, true) => std::cmp::Ordering::Greater,
        (true, false) => std::cmp::Ordering::Less,
        (false, false) => ka.cmp(&kb),
        (true, true) => kb.cmp(&ka),
    };
    // Zero against a non-zero of either sign: the key handles the magnitude,
    // the sign of a zero does not matter.
    let ord = if ca == Class::Zero {
        if sb {
            std::cmp::Ordering::Greater
        } else {
            std::cmp::Ordering::Less
        }
    } else if cb == Class::Zero {
        if sa {
            std::cmp::Ordering::Less
        } else {
            std::cmp::Ordering::Greater
        }
    } else {
        ord
    };
    match ord {
        std::cmp::Ordering::Less => Order::Less,
        std::cmp::Ordering::Equal => Order::Equal,
        std::cmp::Ordering::Greater => Order::Greater,
    }
}

// ---- transcendental functions -----------------------------------------------

/// Rounds `sig * 2^(exp - 127)` (`sig` normalized), known to be inexact, to
/// the register format at full precision.
pub(crate) fn round_wide(sign: bool, exp: i32, sig: u128, ctx: &mut Ctx) -> u128 {
    pack80(round(sign, exp, sig, true, reg_fmt(64), ctx, true))
}

/// Exponent of a finite non-zero value (`None` for other classes).
#[cfg(test)]
pub(crate) fn exponent(v: u128) -> Option<i32> {
    match class(v) {
        Class::Normal | Class::Denormal => Some(unpack(v).exp),
        _ => None,
    }
}

// ---- BCD -------------------------------------------------------------------

/// `fbld`: 18 packed BCD digits and a sign byte. Invalid digits give an
/// undefined result on hardware; here they are taken at face value.
pub(crate) fn from_bcd(b: &[u8; 10]) -> u128 {
    let mut v: i64 = 0;
    for k in (0..9).rev() {
        v = v * 100 + (b[k] >> 4) as i64 * 10 + (b[k] & 15) as i64;
    }
    let r = from_i64(v);
    if b[9] & 0x80 != 0 {
        r | SIGN
    } else {
        r
    }
}

/// `fbstp`: the BCD encoding; the BCD indefinite (and IE) when out of range.
pub(crate) fn to_bcd(v: u128, rc: Rc, ctx: &mut Ctx) -> [u8; 10] {
    let mut c = *ctx;
    let n = to_int(v, 64, rc, &mut c);
    let indefinite = {
        let mut b = [0u8; 10];
        b[7] = 0xc0;
        b[8] = 0xff;
        b[9] = 0xff;
        b
    };
    if c.flags & IE != 0 || n.unsigned_abs() > 999_999_999_999_999_999 {
        ctx.flags |= IE | (c.flags & DE);
        return indefinite;
    }
    ctx.flags = c.flags;
    ctx.up = c.up;
    let mut m = n.unsigned_abs();
    let mut b = [0u8; 10];
    for byte in b.iter_mut().take(9) {
        let lo = (m % 10) as u8;
        m /= 10;
        let hi = (m % 10) as u8;
        m /= 10;
        *byte = hi << 4 | lo;
    }
    b[9] = if sign(v) { 0x80 } else { 0 };
    b
}
