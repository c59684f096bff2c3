//! Transcendental instructions: `fsin`, `fcos`, `fsincos`, `fptan`,
//! `fpatan`, `f2xm1`, `fyl2x`, `fyl2xp1`.
//!
//! Design:
//! - Special operands (NaNs, unsupported encodings, zeros, infinities,
//!   powers of two for the logarithms) follow the manuals' tables exactly.
//! - Finite results are evaluated in [`W`], a working format with a 128-bit
//!   significand and an unbounded exponent (truncating arithmetic, a few
//!   2^-128 relative error per operation, below 2^-120 for a whole
//!   evaluation), and rounded once to the register format with the control
//!   word's rounding control (precision control does not apply), which also
//!   gives PE, C1 (rounded up), UE/OE and the denormal results. So results
//!   are correctly rounded unless the exact value lies within ~2^-56 ulp of
//!   a rounding boundary.
//! - The hardware (checked on AMD Zen; Intel documents the same reduction)
//!   is not quite correctly rounded: against the exact value its results
//!   are within 0.6 ulp, so about 1-3% of random operands round the other
//!   way. Those differ here by exactly 1 ulp (and C1 may differ with them);
//!   everything else agrees bit for bit.
//! - `fsin`, `fcos`, `fsincos`, `fptan` reduce the argument the way
//!   hardware does: `r = x - k * pi66/2` computed exactly, with `pi66` the
//!   66-bit approximation of pi the x87 uses, then evaluate sin/cos of `r`
//!   in `W`. So near multiples of pi the results match the hardware (and
//!   are not the true sine of the operand).
//! - Series: sin/cos (|r| <= pi/4), expm1 for `f2xm1` (|y| <= ln 2), atanh
//!   for the logarithms (|s| <= 0.172), atan (|t| <= 0.43 after reducing
//!   with atan(t) = pi/4 + atan((t-1)/(t+1))).
//! - Hardware quirks reproduced: `fptan` of |x| < 2^-33 returns x as if the
//!   exact value were just below it (like `fsin`); `f2xm1(1)` is computed
//!   as just below 1 and `f2xm1(-1)` as exactly -0.5 (both flag PE); out of
//!   its domain (|x| > 1) `f2xm1` returns the operand with PE (AMD).

use super::float::{self, Class, Ctx, DE, IE, INDEFINITE, PE, UE, ZE};

/// A working value `m * 2^(e - 127)`: `m` normalized (bit 127 set), or
/// zero (`m == 0`).
#[derive(Clone, Copy, Debug)]
pub(super) struct W {
    neg: bool,
    e: i32,
    m: u128,
}

const ZERO: W = W { neg: false, e: 0, m: 0 };
const ONE: W = W { neg: false, e: 0, m: 1 << 127 };
const TWO: W = W { neg: false, e: 1, m: 1 << 127 };
/// Truncated to 128 bits (the next bits are below half an ulp of W).
const PI: W = W { neg: false, e: 1, m: 0xc90f_daa2_2168_c234_c4c6_628b_80dc_1cd1 };
const PI_2: W = W { neg: false, e: 0, m: PI.m };
const PI_4: W = W { neg: false, e: -1, m: PI.m };
const LN2: W = W { neg: false, e: -1, m: 0xb172_17f7_d1cf_79ab_c9e3_b398_03f2_f6af };
const LOG2E: W = W { neg: false, e: 0, m: 0xb8aa_3b29_5c17_f0bb_be87_fed0_691d_3e88 };
/// sqrt(2) (and sqrt(1/2) with e = -1).
const SQRT2_M: u128 = 0xb504_f333_f9de_6484_597d_89b3_754a_be9f;
/// 0.4, the switch between the two atan evaluations.
const TWO_FIFTHS: W = W { neg: false, e: -2, m: 0xcccc_cccc_cccc_cccc_cccc_cccc_cccc_cccd };
/// The x87's pi/2 for argument reduction: 0xc90fdaa22168c234c * 2^-67
/// (66 significant bits; pi/2 = 0xc90f...c234c4c6... * 2^-67).
const PI66_HALF: u128 = 0xc_90fd_aa22_168c_234c;
/// Terms below 2^-STOP relative to a result of order 1 no longer matter.
const STOP: i32 = -140;

/// The 256-bit product of two u128 as (high, low).
fn mul_wide(a: u128, b: u128) -> (u128, u128) {
    const M: u128 = u64::MAX as u128;
    let (a1, a0) = (a >> 64, a & M);
    let (b1, b0) = (b >> 64, b & M);
    let (p00, p01, p10, p11) = (a0 * b0, a0 * b1, a1 * b0, a1 * b1);
    let mid = (p00 >> 64) + (p01 & M) + (p10 & M);
    let lo = (p00 & M) | (mid << 64);
    let hi = p11 + (p01 >> 64) + (p10 >> 64) + (mid >> 64);
    (hi, lo)
}

impl W {
    /// An exact conversion of a finite register value.
    fn from80(v: u128) -> W {
        if float::class(v) == Class::Zero {
            return W { neg: float::sign(v), ..ZERO };
        }
        let u = float::unpack(v);
        W { neg: u.sign, e: u.exp, m: (u.sig as u128) << 64 }
    }

    fn from_i64(v: i64) -> W {
        W::from80(float::from_i64(v))
    }

    fn is_zero(self) -> bool {
        self.m == 0
    }

    fn neg(self) -> W {
        W { neg: !self.neg, ..self }
    }

    fn abs(self) -> W {
        W { neg: false, ..self }
    }

    /// `|self| < |o|`.
    fn mag_lt(self, o: W) -> bool {
        match (self.is_zero(), o.is_zero()) {
            (_, true) => false,
            (true, false) => true,
            _ => (self.e, self.m) < (o.e, o.m),
        }
    }

    fn mul(self, o: W) -> W {
        if self.is_zero() || o.is_zero() {
            return W { neg: self.neg != o.neg, ..ZERO };
        }
        let (hi, lo) = mul_wide(self.m, o.m);
        let neg = self.neg != o.neg;
        if hi >> 127 != 0 {
            W { neg, e: self.e + o.e + 1, m: hi }
        } else {
            W { neg, e: self.e + o.e, m: hi << 1 | lo >> 127 }
        }
    }

    fn add(self, o: W) -> W {
        if o.is_zero() {
            return self;
        }
        if self.is_zero() {
            return o;
        }
        let (x, y) = if o.mag_lt(self) { (self, o) } else { (o, self) };
        let d = (x.e - y.e) as u32;
        let ym = if d >= 128 { 0 } else { y.m >> d };
        if x.neg == y.neg {
            let (s, carry) = x.m.overflowing_add(ym);
            if carry {
                W { neg: x.neg, e: x.e + 1, m: s >> 1 | 1 << 127 }
            } else {
                W { neg: x.neg, e: x.e, m: s }
            }
        } else {
            let s = x.m - ym;
            if s == 0 {
                return ZERO;
            }
            let lz = s.leading_zeros();
            W { neg: x.neg, e: x.e - lz as i32, m: s << lz }
        }
    }

    fn sub(self, o: W) -> W {
        self.add(o.neg())
    }

    /// Division by a non-zero value (restoring, one bit per step).
    fn div(self, o: W) -> W {
        if self.is_zero() || o.is_zero() {
            return W { neg: self.neg != o.neg, ..ZERO };
        }
        let d = o.m;
        let (mut r, mut q, mut steps) = (self.m, 0u128, 0);
        while q >> 127 == 0 {
            let mut carry = false;
            if steps > 0 {
                carry = r >> 127 != 0;
                r <<= 1;
            }
            let ge = carry || r >= d;
            q = q << 1 | ge as u128;
            if ge {
                r = r.wrapping_sub(d);
            }
            steps += 1;
        }
        W { neg: self.neg != o.neg, e: self.e - o.e - (steps - 128), m: q }
    }

    /// Division by a small positive integer.
    fn div_small(self, n: u64) -> W {
        if self.is_zero() {
            return self;
        }
        let n = n as u128;
        let (q1, r1) = (self.m / n, self.m % n);
        let lz = q1.leading_zeros();
        let m = (q1 << lz) | ((r1 << lz) / n);
        W { neg: self.neg, e: self.e - lz as i32, m }
    }

    /// `self * 2^k`.
    fn scale(self, k: i32) -> W {
        W { e: self.e + k, ..self }
    }
}

/// Rounds a result to the register format. `below`: the exact value's
/// magnitude is just below `|w|` (otherwise it is taken to be just above,
/// as truncating arithmetic leaves it); either way the result is inexact.
fn finish(w: W, below: bool, ctx: &mut Ctx) -> u128 {
    if w.is_zero() {
        ctx.flags |= PE;
        return float::zero(w.neg);
    }
    let (mut m, mut e) = (w.m, w.e);
    if below {
        m -= 1;
        if m >> 127 == 0 {
            m = m << 1 | 1;
            e -= 1;
        }
    }
    let before = ctx.flags;
    let r = float::round_wide(w.neg, e, m, ctx);
    if below && w.m == 1 << 127 && w.e == -16382 {
        // "Just below" the smallest normal is tiny, but hardware (Sapphire Rapids: `fsin`
        // of ±2^-16382 rounding toward zero gives the denormal, PE only) flags no UE.
        ctx.flags &= before | !UE;
    }
    r
}

/// Handles NaN/unsupported/denormal for a one-operand function.
fn nan1(a: u128, ctx: &mut Ctx) -> Option<u128> {
    match float::class(a) {
        Class::Unsupported => {
            ctx.flags |= IE;
            Some(INDEFINITE)
        }
        Class::SNaN => {
            ctx.flags |= IE;
            Some(a | 1 << 62)
        }
        Class::QNaN => Some(a),
        Class::Denormal => {
            ctx.flags |= DE;
            None
        }
        _ => None,
    }
}

/// NaN/unsupported operands of a two-operand function (x87 NaN rules via an
/// exact add).
fn nan2(a: u128, b: u128, ctx: &mut Ctx) -> Option<u128> {
    let (ca, cb) = (float::class(a), float::class(b));
    if ca == Class::Unsupported || cb == Class::Unsupported || ca.is_nan() || cb.is_nan() {
        return Some(float::add(a, b, false, ctx));
    }
    None
}

/// Flags denormal operands; called after the invalid-operation checks
/// (an invalid operation is reported without DE, checked on the host).
fn denormal2(a: u128, b: u128, ctx: &mut Ctx) {
    if float::class(a) == Class::Denormal || float::class(b) == Class::Denormal {
        ctx.flags |= DE;
    }
}

// ---- series ------------------------------------------------------------------------

/// (sin r, cos r) for |r| <= ~0.8.
fn sin_cos_w(r: W) -> (W, W) {
    let z = r.mul(r);
    // sin r = r * sum (-z)^k / (2k+1)!, cos r = sum (-z)^k / (2k)!.
    let (mut s, mut c, mut t) = (ONE, ONE, ONE);
    let mut n = 0u64;
    loop {
        t = t.mul(z).div_small((n + 1) * (n + 2)).neg();
        n += 2;
        c = c.add(t);
        s = s.add(t.div_small(n + 1));
        if t.is_zero() || t.e < STOP {
            break;
        }
    }
    (r.mul(s), c)
}

/// atan t for |t| <= ~0.45.
fn atan_series(t: W) -> W {
    let z = t.mul(t);
    let (mut sum, mut p) = (ONE, ONE);
    let mut k = 1u64;
    loop {
        p = p.mul(z).neg();
        let term = p.div_small(2 * k + 1);
        sum = sum.add(term);
        if p.is_zero() || term.e < STOP {
            break;
        }
        k += 1;
    }
    t.mul(sum)
}

/// 2 atanh s = ln((1 + s) / (1 - s)) for |s| <= ~0.2 (slower up to 1).
fn atanh2_series(s: W) -> W {
    let z = s.mul(s);
    let (mut sum, mut p) = (ONE, ONE);
    let mut k = 1u64;
    loop {
        p = p.mul(z);
        let term = p.div_small(2 * k + 1);
        sum = sum.add(term);
        if p.is_zero() || term.e < STOP {
            break;
        }
        k += 1;
    }
    s.mul(sum).scale(1)
}

/// log2 of a positive value.
fn log2_w(v: W) -> W {
    // v = m * 2^k with m in [sqrt(1/2), sqrt(2)).
    let mut k = v.e;
    let mut m = W { neg: false, e: 0, m: v.m };
    if v.m > SQRT2_M {
        m.e = -1;
        k += 1;
    }
    let s = m.sub(ONE).div(m.add(ONE));
    W::from_i64(k as i64).add(atanh2_series(s).mul(LOG2E))
}

/// expm1 y for |y| <= ~0.7.
fn expm1_series(y: W) -> W {
    let (mut sum, mut t) = (ONE, ONE);
    let mut n = 1u64;
    loop {
        n += 1;
        t = t.mul(y).div_small(n);
        sum = sum.add(t);
        if t.is_zero() || t.e < STOP {
            break;
        }
    }
    y.mul(sum)
}

/// atan(num / den) for 0 < num <= den; `true` when the result is the
/// quotient itself with the exact value just below it.
fn atan_ratio(num: W, den: W) -> (W, bool) {
    if num.mag_lt(den.mul(TWO_FIFTHS)) {
        let t = num.div(den);
        if t.e < -62 {
            return (t, true);
        }
        (atan_series(t), false)
    } else {
        let u = num.sub(den).div(num.add(den));
        (PI_4.add(atan_series(u)), false)
    }
}

// ---- trigonometry --------------------------------------------------------------------

/// The outcome of the trig prelude and reduction.
pub(super) enum Trig {
    /// A special operand: (sin or tan, cos), final.
    Done(u128, u128),
    /// |x| >= 2^63: C2 set, operand unchanged.
    OutOfRange,
    /// sin and cos of the reduced argument, already in the right quadrant,
    /// and whether the argument was tiny (|x| < 2^-60: sin x = x and
    /// cos x = 1, both just below).
    Finite { sin: W, cos: W, tiny: bool, x: W, exp: i32 },
}

pub(super) fn reduce(a: u128, ctx: &mut Ctx) -> Trig {
    if let Some(r) = nan1(a, ctx) {
        return Trig::Done(r, r);
    }
    let one = float::make(false, 0x3fff, 1 << 63);
    match float::class(a) {
        Class::Zero => return Trig::Done(a, one),
        Class::Inf => {
            ctx.flags |= IE;
            return Trig::Done(INDEFINITE, INDEFINITE);
        }
        _ => {}
    }
    let u = float::unpack(a);
    if u.exp >= 63 {
        return Trig::OutOfRange;
    }
    let x = W::from80(a);
    if u.exp < -60 {
        return Trig::Finite { sin: x, cos: ONE, tiny: true, x, exp: u.exp };
    }
    let (r, k) = if u.exp < -1 {
        (x, 0u64)
    } else {
        // k = nearest integer to |x| / (pi66/2); r = |x| - k pi66/2 exactly,
        // in units of 2^-67 (|r| < 2^67, so wrapping arithmetic is exact).
        let q = x.abs().div(W { neg: false, e: 0, m: PI66_HALF << 60 });
        let k = if q.e < -1 { 0 } else { ((q.m >> (126 - q.e)) + 1) >> 1 } as u64;
        let xi = (u.sig as u128) << (u.exp + 4);
        let ri = xi.wrapping_sub((k as u128).wrapping_mul(PI66_HALF)) as i128;
        let mag = ri.unsigned_abs();
        let lz = mag.leading_zeros();
        let r = if mag == 0 { ZERO } else { W { neg: (ri < 0) != u.sign, e: 60 - lz as i32, m: mag << lz } };
        // sin(-x) = -sin(x): the quadrant applies to |x|.
        (r, if u.sign { k.wrapping_neg() } else { k })
    };
    let (s, c) = sin_cos_w(r);
    let (sin, cos) = match k & 3 {
        0 => (s, c),
        1 => (c, s.neg()),
        2 => (s.neg(), c.neg()),
        _ => (c.neg(), s),
    };
    Trig::Finite { sin, cos, tiny: false, x, exp: u.exp }
}

pub(super) fn sin(s: W, tiny: bool, ctx: &mut Ctx) -> u128 {
    finish(s, tiny, ctx)
}

pub(super) fn cos(c: W, tiny: bool, ctx: &mut Ctx) -> u128 {
    finish(c, tiny, ctx)
}

/// tan from the reduced sin and cos. Below 2^-33 hardware returns the
/// operand `x`, rounded as if tan x were just below it (just above for
/// some significands, which is not modelled: 1 ulp off under directed
/// rounding), and exactly for a power of two (PE still set).
pub(super) fn tan(a: u128, s: W, c: W, x: W, exp: i32, ctx: &mut Ctx) -> u128 {
    if exp < -33 {
        if float::class(a) == Class::Normal && a as u64 == 1 << 63 {
            ctx.flags |= PE;
            ctx.up = false;
            return a;
        }
        return finish(x, true, ctx);
    }
    finish(s.div(c), false, ctx)
}

// ---- f2xm1, logarithms, atan ----------------------------------------------------------------

pub(super) fn f2xm1(a: u128, ctx: &mut Ctx) -> u128 {
    if let Some(r) = nan1(a, ctx) {
        return r;
    }
    match float::class(a) {
        Class::Zero => return a,
        Class::Inf if float::sign(a) => return float::make(true, 0x3fff, 1 << 63),
        Class::Inf => return a,
        _ => {}
    }
    let x = W::from80(a);
    if ONE.mag_lt(x) {
        // Undefined outside [-1, 1]; AMD returns the operand.
        ctx.flags |= PE;
        return a;
    }
    if x.m == ONE.m && x.e == 0 {
        if x.neg {
            ctx.flags |= PE;
            return float::make(true, 0x3ffe, 1 << 63);
        }
        return finish(ONE, true, ctx);
    }
    finish(expm1_series(x.mul(LN2)), false, ctx)
}

/// `y * log2(x)`.
pub(super) fn yl2x(y: u128, x: u128, ctx: &mut Ctx) -> u128 {
    if let Some(r) = nan2(y, x, ctx) {
        return r;
    }
    let (cy, cx) = (float::class(y), float::class(x));
    let (sy, sx) = (float::sign(y), float::sign(x));
    if sx && cx != Class::Zero {
        ctx.flags |= IE;
        return INDEFINITE;
    }
    if matches!((cy, cx), (Class::Zero, Class::Zero) | (Class::Zero, Class::Inf)) {
        ctx.flags |= IE;
        return INDEFINITE;
    }
    if cy == Class::Inf && x & !(1 << 79) == float::make(false, 0x3fff, 1 << 63) {
        // inf * log2(1).
        ctx.flags |= IE;
        return INDEFINITE;
    }
    if cx == Class::Zero {
        // log2(0) = -inf: a zero divide (without DE) unless y is infinite.
        if cy != Class::Inf {
            ctx.flags |= ZE;
        }
        return float::inf(!sy);
    }
    denormal2(y, x, ctx);
    if cx == Class::Inf {
        return float::inf(sy);
    }
    // x finite > 0.
    let u = float::unpack(x);
    let exact = u.sig == 1 << 63;
    if cy == Class::Inf {
        return float::inf(sy != (u.exp < 0));
    }
    if exact {
        // log2 x is the integer exponent: one rounding of the product.
        let mut c = Ctx { pc: 64, ..*ctx };
        let r = float::mul(y, float::from_i64(u.exp as i64), &mut c);
        ctx.flags |= c.flags;
        ctx.up = c.up;
        // Hardware flags PE even then, unless the result is zero, and so
        // UE for a (masked, exact) denormal result.
        if u.exp != 0 && cy != Class::Zero {
            ctx.flags |= PE;
            if float::class(r) == Class::Denormal {
                ctx.flags |= UE;
            }
        }
        return r;
    }
    if cy == Class::Zero {
        // 0 * log2 x: a zero signed by the product.
        return float::zero(sy != (u.exp < 0));
    }
    finish(W::from80(y).mul(log2_w(W::from80(x))), false, ctx)
}

/// `y * log2(x + 1)`.
pub(super) fn yl2xp1(y: u128, x: u128, ctx: &mut Ctx) -> u128 {
    if let Some(r) = nan2(y, x, ctx) {
        return r;
    }
    let (cy, cx) = (float::class(y), float::class(x));
    let invalid = match (cy, cx) {
        (Class::Zero, Class::Inf) | (Class::Inf, Class::Zero) => true,
        (_, Class::Inf) => float::sign(x),
        _ => false,
    };
    if invalid {
        ctx.flags |= IE;
        return INDEFINITE;
    }
    denormal2(y, x, ctx);
    match (cy, cx) {
        (_, Class::Zero) | (Class::Zero, _) => {
            return float::zero(float::sign(x) != float::sign(y));
        }
        (_, Class::Inf) => return float::inf(float::sign(y)),
        (Class::Inf, _) => return float::inf(float::sign(y) != float::sign(x)),
        _ => {}
    }
    let xw = W::from80(x);
    let l = if xw.mag_lt(W { neg: false, e: -2, m: 0x9999_9999_9999_9999_9999_9999_9999_999a }) {
        // |x| < 0.3: ln(1 + x) = 2 atanh(x / (2 + x)).
        atanh2_series(xw.div(TWO.add(xw))).mul(LOG2E)
    } else {
        // Outside the documented domain.
        let v = ONE.add(xw);
        if v.neg || v.is_zero() {
            ctx.flags |= IE;
            return INDEFINITE;
        }
        log2_w(v)
    };
    finish(W::from80(y).mul(l), false, ctx)
}

/// `atan2(y, x)` with the x87 table of special cases.
pub(super) fn atan2(y: u128, x: u128, ctx: &mut Ctx) -> u128 {
    if let Some(r) = nan2(y, x, ctx) {
        return r;
    }
    denormal2(y, x, ctx);
    let (cy, cx) = (float::class(y), float::class(x));
    let (sy, sx) = (float::sign(y), float::sign(x));
    let signed = |w: W| W { neg: sy, ..w };
    let three_quarters = |w: W| PI.sub(w);
    let special = matches!(cy, Class::Zero | Class::Inf) || matches!(cx, Class::Zero | Class::Inf);
    if special {
        let r = match (cy, cx) {
            (Class::Zero, _) if !sx => return float::zero(sy),
            (Class::Zero, _) => PI,
            (Class::Inf, Class::Inf) if sx => three_quarters(PI_4),
            (Class::Inf, Class::Inf) => PI_4,
            (Class::Inf, _) | (_, Class::Zero) => PI_2,
            (_, Class::Inf) if !sx => return float::zero(sy),
            _ => PI,
        };
        return finish(signed(r), false, ctx);
    }
    let (ay, ax) = (W::from80(y).abs(), W::from80(x).abs());
    let (mut a, mut below) = if ax.mag_lt(ay) { (PI_2.sub(atan_ratio(ax, ay).0), false) } else { atan_ratio(ay, ax) };
    if sx {
        a = PI.sub(a);
        below = false;
    }
    finish(signed(a), below, ctx)
}
