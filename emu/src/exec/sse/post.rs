//! A software model of the post-computation MXCSR flags (OE, UE, PE) of the
//! instructions that can overflow or underflow, used only when the guest has
//! unmasked overflow or underflow (the cold path of `fp_run`).
//!
//! Why: the host instruction always runs with every exception masked (an
//! unmasked one would raise #XM in the host process), and the masked response
//! differs from the unmasked one in what PE means. With overflow or underflow
//! unmasked, PE is set only when the result rounded to the destination
//! precision *with an unbounded exponent* is inexact (Intel SDM Vol. 1,
//! 4.9.1.4-4.9.1.6 and 11.5.2), and an exact tiny result still signals UE;
//! masked, every overflow sets PE and a tiny result sets UE and PE exactly when
//! denormalizing it loses bits. A masked run cannot tell in which lane of a
//! packed instruction the exception happened, so each lane is recomputed
//! here, with the x87 soft float (`x87::float`), whose rounding already
//! implements the unbounded-exponent response, at single or double precision
//! and that format's exponent range. The pre-computation flags (IE, DE, ZE)
//! keep coming from the host.
//!
//! `dpps`/`dppd` are modelled in their two stages (products, then sums): an
//! unmasked exception in the multiply stage ends the instruction there.

use iced_x86::Mnemonic;

use crate::exec::x87::float::{self as f, Class, Ctx, Fmt, Rc, F32, F64};

const OE: u16 = f::OE;
const UE: u16 = f::UE;
const PE: u16 = f::PE;
const POST: u16 = OE | UE | PE;

/// The sources of a host-executed instruction, as 256-bit values: for the legacy
/// forms `[destination, source, -]`, for the VEX forms `[ModRM.reg, VEX.vvvv,
/// ModRM.rm]`.
pub(crate) type Sources = [[u128; 2]; 3];

struct Model {
    rc: Rc,
    /// MXCSR exception masks (bits 0..=5 as in the flags).
    mask: u16,
    daz: bool,
    ftz: bool,
    flags: u16,
}

impl Model {
    /// Loads a single (`!double`) or double lane, honouring DAZ.
    fn load(&self, bits: u64, double: bool) -> u128 {
        let mut c = self.ctx(F64);
        let (denormal, negative) = if double {
            (bits & 0x7ff0_0000_0000_0000 == 0 && bits << 12 != 0, bits >> 63 != 0)
        } else {
            (bits & 0x7f80_0000 == 0 && bits & 0x7f_ffff != 0, bits >> 31 & 1 != 0)
        };
        if denormal && self.daz {
            return f::zero(negative);
        }
        if double {
            f::from_f64(bits, &mut c)
        } else {
            f::from_f32(bits as u32, &mut c)
        }
    }

    fn ctx(&self, fmt: Fmt) -> Ctx {
        // Pre-computation exceptions are masked here: they are recorded, and the
        // caller decides (`stage_end`, or the host's flags).
        let mut c = Ctx::new(0x37f);
        c.rc = self.rc;
        c.mask = self.mask | f::IE | f::DE | f::ZE;
        c.target = Some(fmt);
        c
    }

    /// One rounding step: runs `op` rounding to `fmt`, collects its
    /// post-computation flags and applies FTZ (a tiny result, detected after
    /// rounding with an unbounded exponent, becomes a zero with UE and PE when
    /// underflow is masked). Returns the result and its flags.
    fn step(&mut self, fmt: Fmt, op: impl FnOnce(&mut Ctx) -> u128) -> (u128, u16) {
        let mut c = self.ctx(fmt);
        let flush = self.ftz && self.mask & UE != 0;
        if flush {
            c.mask &= !UE;
        }
        let mut r = op(&mut c);
        let mut fl = c.flags & 0x3f;
        if flush && fl & UE != 0 {
            fl = (fl & !POST) | UE | PE;
            r = f::zero(f::sign(r));
        }
        self.flags |= fl & POST;
        (r, fl)
    }

    /// Whether the raw lane `bits` is a denormal that raises DE (not under DAZ).
    fn denormal_operand(&self, bits: u64, double: bool) -> bool {
        let den = if double {
            bits & 0x7ff0_0000_0000_0000 == 0 && bits << 12 != 0
        } else {
            bits & 0x7f80_0000 == 0 && bits & 0x7f_ffff != 0
        };
        den && !self.daz
    }

    /// An intermediate result as the next stage reads it, and whether it raises DE
    /// there: a value denormal in `fmt` is a denormal operand (zero under DAZ).
    fn intermediate(&self, v: u128, fmt: Fmt) -> (u128, bool) {
        if f::class(v) == Class::Normal && f::unpack(v).exp < fmt.emin {
            if self.daz {
                return (f::zero(f::sign(v)), false);
            }
            return (v, true);
        }
        (v, false)
    }

    /// Ends a stage of a multi-stage instruction: an unmasked pre-computation
    /// exception hides the stage's post-computation flags, and any unmasked
    /// exception ends the instruction (true).
    fn stage_end(&self, all: &mut u16, stage: u16) -> bool {
        let unmasked = !self.mask & 0x3f;
        let pre = stage & (f::IE | f::DE | f::ZE);
        if pre & unmasked != 0 {
            *all |= pre;
            return true;
        }
        *all |= stage;
        stage & unmasked != 0
    }
}

fn elem(v: &[u128; 2], k: usize, double: bool) -> u64 {
    if double {
        (v[k / 2] >> (64 * (k % 2))) as u64
    } else {
        (v[k / 4] >> (32 * (k % 4))) as u32 as u64
    }
}

/// The post-computation flags (OE, UE, PE, as MXCSR bits) of instruction `m`
/// (`imm` its immediate, `wide` for a 256-bit form) on `src` under `mxcsr`,
/// and whether they are complete (the pre-computation flags included: `dpps`
/// and `dppd`, whose stages the host run cannot separate); `None` for an
/// instruction the model does not cover.
pub(crate) fn post_flags(m: Mnemonic, imm: u8, wide: bool, src: &Sources, mxcsr: u32) -> Option<(u32, bool)> {
    let name = format!("{m:?}");
    let vex = name.starts_with('V');
    let name = name.to_ascii_lowercase();
    let base = if vex { &name[1..] } else { name.as_str() };
    let (a, b) = if vex { (&src[1], &src[2]) } else { (&src[0], &src[1]) };
    let mut md = Model {
        rc: match (mxcsr >> 13) & 3 {
            0 => Rc::Nearest,
            1 => Rc::Down,
            2 => Rc::Up,
            _ => Rc::Zero,
        },
        mask: ((mxcsr >> 7) & 0x3f) as u16,
        daz: mxcsr & 0x40 != 0,
        ftz: mxcsr & 0x8000 != 0,
        flags: 0,
    };
    let bits = if wide { 256 } else { 128 };
    let suffix = base.get(base.len().checked_sub(2)?..)?;
    let double = matches!(suffix, "pd" | "sd");
    let fmt = if double { F64 } else { F32 };
    let esize = if double { 64 } else { 32 };
    let lanes = match suffix {
        "ss" | "sd" => 1,
        _ => bits / esize,
    };
    let per_block = 128 / esize;
    let stem = &base[..base.len() - 2];
    match stem {
        "add" | "sub" | "mul" | "div" | "addsub" | "hadd" | "hsub" => {
            for k in 0..lanes {
                let (x, y, negate) = match stem {
                    "hadd" | "hsub" => {
                        let (blk, j) = (k / per_block * per_block, k % per_block);
                        let half = per_block / 2;
                        let from = if j < half { a } else { b };
                        let p = blk + 2 * (j % half);
                        (elem(from, p, double), elem(from, p + 1, double), stem == "hsub")
                    }
                    "addsub" => (elem(a, k, double), elem(b, k, double), k % 2 == 0),
                    _ => (elem(a, k, double), elem(b, k, double), stem == "sub"),
                };
                let (x, y) = (md.load(x, double), md.load(y, double));
                md.step(fmt, |c| match stem {
                    "mul" => f::mul(x, y, c),
                    "div" => f::div(x, y, c),
                    _ => f::add(x, y, negate, c),
                });
            }
        }
        _ if base == "cvtpd2ps" || base == "cvtsd2ss" => {
            // The suffix names the destination here.
            let n = if base == "cvtsd2ss" { 1 } else { bits / 64 };
            for k in 0..n {
                let x = md.load(elem(b, k, true), true);
                md.step(F32, |c| f::narrow(x, c));
            }
        }
        _ if base == "cvtps2ph" => {
            // Rounding from imm8 unless its bit 2 defers to MXCSR; FTZ does not apply
            // (tiny results become half-precision denormals).
            const F16: Fmt = Fmt { p: 11, emin: -14, emax: 15 };
            if imm & 4 == 0 {
                md.rc = [Rc::Nearest, Rc::Down, Rc::Up, Rc::Zero][(imm & 3) as usize];
            }
            md.ftz = false;
            for k in 0..bits / 32 {
                let x = md.load(elem(&src[0], k, false), false);
                md.step(F16, |c| f::narrow(x, c));
            }
        }
        "dp" => return Some((dp_flags(&mut md, imm, double, bits, a, b), true)),
        _ => return fma_flags(base, &mut md, src, lanes, double, fmt).map(|v| (v, false)),
    }
    Some((md.flags as u32, false))
}

/// Every flag `dpps`/`dppd` raise, stage by stage: the selected products, then
/// the pairwise sums, then (`dpps`) the final sum; each stage reads denormal
/// intermediates as denormal operands, and an unmasked exception in a stage ends
/// the instruction there.
fn dp_flags(md: &mut Model, imm: u8, double: bool, bits: usize, a: &[u128; 2], b: &[u128; 2]) -> u32 {
    let fmt = if double { F64 } else { F32 };
    let per_block = if double { 2 } else { 4 };
    let blocks = bits / 128;
    let mut all = 0u16;
    // Stage 1: the products of the lanes imm8[7:4] selects (the others are +0).
    let mut prod = [[f::zero(false); 4]; 2];
    let mut stage = 0u16;
    for (blk, prod) in prod.iter_mut().enumerate().take(blocks) {
        for (j, p) in prod.iter_mut().enumerate().take(per_block) {
            if imm >> (4 + j) & 1 == 0 {
                continue;
            }
            let k = blk * per_block + j;
            let (xb, yb) = (elem(a, k, double), elem(b, k, double));
            let (x, y) = (md.load(xb, double), md.load(yb, double));
            let nan = f::class(x).is_nan() || f::class(y).is_nan();
            if !nan && (md.denormal_operand(xb, double) || md.denormal_operand(yb, double)) {
                stage |= f::DE;
            }
            let (r, fl) = md.step(fmt, |c| f::mul(x, y, c));
            *p = r;
            stage |= fl;
        }
    }
    if md.stage_end(&mut all, stage) {
        return all as u32;
    }
    // Stage 2: the pairwise sums.
    let mut sums = [[f::zero(false); 2]; 2];
    stage = 0;
    for blk in 0..blocks {
        for h in 0..per_block / 2 {
            let (x, dx) = md.intermediate(prod[blk][2 * h], fmt);
            let (y, dy) = md.intermediate(prod[blk][2 * h + 1], fmt);
            let nan = f::class(x).is_nan() || f::class(y).is_nan();
            if !nan && (dx || dy) {
                stage |= f::DE;
            }
            let (r, fl) = md.step(fmt, |c| f::add(x, y, false, c));
            sums[blk][h] = r;
            stage |= fl;
        }
    }
    if double || md.stage_end(&mut all, stage) {
        if double {
            md.stage_end(&mut all, stage);
        }
        return all as u32;
    }
    // Stage 3 (`dpps`): the final sum.
    stage = 0;
    for sums in sums.iter().take(blocks) {
        let (x, dx) = md.intermediate(sums[0], fmt);
        let (y, dy) = md.intermediate(sums[1], fmt);
        let nan = f::class(x).is_nan() || f::class(y).is_nan();
        if !nan && (dx || dy) {
            stage |= f::DE;
        }
        stage |= md.step(fmt, |c| f::add(x, y, false, c)).1;
    }
    md.stage_end(&mut all, stage);
    all as u32
}

/// The FMA3 forms (`vfmadd132ps` ...): `None` for anything else.
fn fma_flags(base: &str, md: &mut Model, src: &Sources, lanes: usize, double: bool, fmt: Fmt) -> Option<u32> {
    let rest = base.strip_prefix('f')?;
    let (kind, order) = rest.split_at(rest.find(|ch: char| ch.is_ascii_digit())?);
    let (neg_product, sub_even, sub_odd) = match kind {
        "madd" => (false, false, false),
        "msub" => (false, true, true),
        "nmadd" => (true, false, false),
        "nmsub" => (true, true, true),
        "maddsub" => (false, true, false),
        "msubadd" => (false, false, true),
        _ => return None,
    };
    let (r, v, m) = (&src[0], &src[1], &src[2]);
    let (x, y, z) = match order.get(..3)? {
        "132" => (r, m, v),
        "213" => (v, r, m),
        "231" => (v, m, r),
        _ => return None,
    };
    // The sign bit of the 80-bit format the lanes are loaded into.
    let sign = 1u128 << 79;
    for k in 0..lanes {
        let mut p = md.load(elem(x, k, double), double);
        let q = md.load(elem(y, k, double), double);
        let mut c = md.load(elem(z, k, double), double);
        if neg_product && !matches!(f::class(p), Class::QNaN | Class::SNaN) {
            p ^= sign;
        }
        let subtract = if k % 2 == 0 { sub_even } else { sub_odd };
        if subtract && !matches!(f::class(c), Class::QNaN | Class::SNaN) {
            c ^= sign;
        }
        md.step(fmt, |cx| f::fma(p, q, c, cx));
    }
    Some(md.flags as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::sse::host::{run_asm, templ, Host, St, MX_IN, MX_OUT, MX_SAVE, X0, X1, X2};
    use core::arch::asm;

    #[test]
    fn exact_tiny_product_with_underflow_unmasked_is_ue_without_pe() {
        let a = [0x0080_0000u128, 0];
        let b = [0x331a_a8a6u128, 0];
        // FTZ and DAZ set, every exception unmasked: FTZ does not apply.
        assert_eq!(post_flags(Mnemonic::Mulss, 0, false, &[a, b, [0, 0]], 0x8040), Some((0x10, false)));
        assert_eq!(post_flags(Mnemonic::Vmulps, 0, false, &[[0, 0], a, b], 0x8040), Some((0x10, false)));
        // Masked: a tiny product that denormalizes exactly raises nothing, one
        // that loses bits raises UE and PE.
        let c = [0x3ac0_0000u128, 0];
        assert_eq!(post_flags(Mnemonic::Mulss, 0, false, &[a, c, [0, 0]], 0x1f80), Some((0, false)));
        assert_eq!(post_flags(Mnemonic::Mulss, 0, false, &[a, b, [0, 0]], 0x1f80), Some((0x30, false)));
    }

    #[test]
    fn overflow_unmasked_sets_pe_only_for_an_inexact_result() {
        let big = [0x7f00_0000u128, 0]; // 2^127
        let two = [0x4000_0000u128, 0];
        let three = [0x4040_0000u128, 0];
        let third = [0x3eaa_aaabu128, 0];
        let unmask_oe = 0x1f80 & !(1 << 10);
        assert_eq!(post_flags(Mnemonic::Mulss, 0, false, &[big, two, [0, 0]], unmask_oe), Some((0x08, false)));
        assert_eq!(post_flags(Mnemonic::Mulss, 0, false, &[big, three, [0, 0]], unmask_oe), Some((0x08, false)));
        assert_eq!(post_flags(Mnemonic::Divss, 0, false, &[big, third, [0, 0]], unmask_oe), Some((0x28, false)));
        // Masked: overflow always comes with PE.
        assert_eq!(post_flags(Mnemonic::Mulss, 0, false, &[big, two, [0, 0]], 0x1f80), Some((0x28, false)));
        // Not a modelled instruction.
        assert_eq!(post_flags(Mnemonic::Cvtsd2si, 0, false, &[big, two, [0, 0]], unmask_oe), None);
    }

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        /// A lane near the ends of the exponent range, often with few significand bits.
        fn lane(&mut self, double: bool) -> u64 {
            let (ebits, fbits) = if double { (11, 52) } else { (8, 23) };
            let emax = (1u64 << ebits) - 1;
            let e = match self.below(8) {
                0 => 0,
                1 => 1 + self.below(24),
                2 => emax - 1 - self.below(24),
                3 => emax / 2 - 30 + self.below(60),
                4 => emax / 4 + self.below(emax / 2),
                5 if self.below(8) == 0 => emax,
                _ => self.below(emax + 1),
            };
            let f = self.next() & ((1u64 << fbits) - 1);
            let f = if self.below(2) == 0 { f & !((1u64 << (fbits - self.below(6) as u32)) - 1) } else { f };
            (self.below(2) << (ebits + fbits)) | e << fbits | f
        }
        fn vec(&mut self, double: bool) -> u128 {
            if double {
                (self.lane(true) as u128) << 64 | self.lane(true) as u128
            } else {
                (0..4).fold(0u128, |v, k| v | (self.lane(false) as u128) << (32 * k))
            }
        }
    }

    templ! { fp:
        HAddps = "addps xmm1, xmm2";
        HSubpd = "subpd xmm1, xmm2";
        HMulps = "mulps xmm1, xmm2";
        HMulpd = "mulpd xmm1, xmm2";
        HDivps = "divps xmm1, xmm2";
        HDivsd = "divsd xmm1, xmm2";
        HHaddps = "haddps xmm1, xmm2";
        HHsubpd = "hsubpd xmm1, xmm2";
        HAddsubps = "addsubps xmm1, xmm2";
        HAddsubpd = "addsubpd xmm1, xmm2";
        HCvtpd2ps = "cvtpd2ps xmm1, xmm2";
        HCvtsd2ss = "cvtsd2ss xmm1, xmm2";
        HDpps = "dpps xmm1, xmm2, 0xf3";
        HDpps2 = "dpps xmm1, xmm2, 0x5f";
        HDppd = "dppd xmm1, xmm2, 0x31";
        HFmadd = "vfmadd231ps xmm1, xmm2, xmm0";
        HFmsub = "vfmsub132pd xmm1, xmm2, xmm0";
        HFnmadd = "vfnmadd213ps xmm1, xmm2, xmm0";
        HFnmsub = "vfnmsub213sd xmm1, xmm2, xmm0";
        HFmaddsub = "vfmaddsub231pd xmm1, xmm2, xmm0";
        HFmsubadd = "vfmsubadd132ps xmm1, xmm2, xmm0";
        HCvtps2ph = "vcvtps2ph xmm2, xmm1, 0x04";
        HCvtps2phZ = "vcvtps2ph xmm2, xmm1, 0x03";
    }

    /// With every exception masked the host reports the exact flags: the model must
    /// agree with it lane for lane, in every rounding mode, with FTZ and DAZ.
    #[test]
    fn masked_flags_match_the_host() {
        let fma = std::arch::is_x86_feature_detected!("fma");
        let f16c = std::arch::is_x86_feature_detected!("f16c");
        /// Mnemonic, immediate, double lanes, host form, VEX-encoded.
        type Form = (Mnemonic, u8, bool, fn(&mut St), bool);
        let forms: [Form; 23] = [
            (Mnemonic::Addps, 0, false, HAddps::run, false),
            (Mnemonic::Subpd, 0, true, HSubpd::run, false),
            (Mnemonic::Mulps, 0, false, HMulps::run, false),
            (Mnemonic::Mulpd, 0, true, HMulpd::run, false),
            (Mnemonic::Divps, 0, false, HDivps::run, false),
            (Mnemonic::Divsd, 0, true, HDivsd::run, false),
            (Mnemonic::Haddps, 0, false, HHaddps::run, false),
            (Mnemonic::Hsubpd, 0, true, HHsubpd::run, false),
            (Mnemonic::Addsubps, 0, false, HAddsubps::run, false),
            (Mnemonic::Addsubpd, 0, true, HAddsubpd::run, false),
            (Mnemonic::Cvtpd2ps, 0, true, HCvtpd2ps::run, false),
            (Mnemonic::Cvtsd2ss, 0, true, HCvtsd2ss::run, false),
            (Mnemonic::Dpps, 0xf3, false, HDpps::run, false),
            (Mnemonic::Dpps, 0x5f, false, HDpps2::run, false),
            (Mnemonic::Dppd, 0x31, true, HDppd::run, false),
            (Mnemonic::Vfmadd231ps, 0, false, HFmadd::run, true),
            (Mnemonic::Vfmsub132pd, 0, true, HFmsub::run, true),
            (Mnemonic::Vfnmadd213ps, 0, false, HFnmadd::run, true),
            (Mnemonic::Vfnmsub213sd, 0, true, HFnmsub::run, true),
            (Mnemonic::Vfmaddsub231pd, 0, true, HFmaddsub::run, true),
            (Mnemonic::Vfmsubadd132ps, 0, false, HFmsubadd::run, true),
            (Mnemonic::Vcvtps2ph, 0x04, false, HCvtps2ph::run, true),
            (Mnemonic::Vcvtps2ph, 0x03, false, HCvtps2phZ::run, true),
        ];
        let mut r = Rng(0x9e37_79b9_7f4a_7c15);
        for (m, imm, double, run, vex) in forms {
            let f16 = m == Mnemonic::Vcvtps2ph;
            if vex && !(if f16 { f16c } else { fma }) {
                continue;
            }
            for n in 0..10000 {
                let mx = 0x1f80 | (r.below(4) as u32) << 13 | (r.below(2) as u32) << 15 | (r.below(2) as u32) << 6;
                let x = [r.vec(double), r.vec(double), r.vec(double)];
                let mut s = St { x, mx_in: mx, ..St::default() };
                run(&mut s);
                let complete = matches!(m, Mnemonic::Dpps | Mnemonic::Dppd);
                let host = s.mx_out & if complete { 0x3f } else { 0x38 };
                let src = if f16 {
                    [[x[1], 0], [0, 0], [x[2], 0]]
                } else if vex {
                    [[x[1], 0], [x[2], 0], [x[0], 0]]
                } else {
                    [[x[1], 0], [x[2], 0], [0, 0]]
                };
                let model = post_flags(m, imm, false, &src, mx);
                assert_eq!(model, Some((host, complete)), "{m:?} case {n}: mxcsr {mx:#x}, xmm0..2 {x:x?}");
            }
        }
    }
}
