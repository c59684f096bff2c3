//! Host execution: each guest instruction of a family below runs as the same
//! instruction on the host, on host xmm registers loaded from a [`St`].
//!
//! Register convention inside every asm block: host `xmm1` is the guest
//! destination (first operand), `xmm2` the source (register, or the memory
//! operand loaded into its low bytes), `xmm0` the guest `xmm0` (the implicit
//! operand of `blendv*`/`pblendvb` and the result of `pcmp?strm`); `rax`,
//! `rcx`, `rdx` carry guest general-purpose values where the instruction
//! uses them. Floating-point kinds load the given MXCSR around the one
//! instruction and restore the host's own MXCSR before the block ends, so
//! Rust code never runs under a guest floating-point environment.

use core::arch::asm;
use core::mem::offset_of;

/// Operands and results of one host-executed instruction.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub(crate) struct St {
    /// Host xmm0, xmm1, xmm2.
    pub x: [u128; 3],
    /// Host rax, rcx, rdx.
    pub g: [u64; 3],
    /// RFLAGS after the instruction (kind `full` only).
    pub flags: u64,
    /// MXCSR to run under (exception masks forced on by the caller).
    pub mx_in: u32,
    /// MXCSR after the instruction.
    pub mx_out: u32,
    /// The host's own MXCSR, saved and restored inside the block.
    pub mx_save: u32,
}

pub(crate) const X0: usize = offset_of!(St, x);
pub(crate) const X1: usize = offset_of!(St, x) + 16;
pub(crate) const X2: usize = offset_of!(St, x) + 32;
pub(crate) const MX_IN: usize = offset_of!(St, mx_in);
pub(crate) const MX_OUT: usize = offset_of!(St, mx_out);
pub(crate) const MX_SAVE: usize = offset_of!(St, mx_save);

/// One host-executed instruction.
pub(crate) trait Host {
    fn run(s: &mut St);
}

/// The asm block for one instruction. Kinds: `vec` (xmm only, no MXCSR),
/// `fp` (xmm and MXCSR), `full` (xmm, MXCSR, rax/rcx/rdx and RFLAGS).
macro_rules! run_asm {
    (vec, $s:ident, $insn:expr $(, $imm:ident)?) => {{
        let p: *mut St = $s;
        // SAFETY: the block only loads and stores through `p`, which points to
        // a live, exclusively borrowed `St`; every register it changes is
        // declared as clobbered, and it neither uses the stack nor changes flags.
        unsafe {
            asm!(
                "movdqu xmm0, [{p} + {x0}]",
                "movdqu xmm1, [{p} + {x1}]",
                "movdqu xmm2, [{p} + {x2}]",
                $insn,
                "movdqu [{p} + {x0}], xmm0",
                "movdqu [{p} + {x1}], xmm1",
                p = in(reg) p,
                x0 = const X0, x1 = const X1, x2 = const X2,
                $(i = const $imm,)?
                out("xmm0") _, out("xmm1") _, out("xmm2") _,
                options(nostack, preserves_flags),
            )
        }
    }};
    (fp, $s:ident, $insn:expr $(, $imm:ident)?) => {{
        let p: *mut St = $s;
        // SAFETY: as for `vec`; in addition the guest MXCSR (all exceptions
        // masked by the caller, so no host #XM) is live only for the one
        // instruction and the host MXCSR is restored before the block ends.
        unsafe {
            asm!(
                "stmxcsr [{p} + {save}]",
                "ldmxcsr [{p} + {min}]",
                "movdqu xmm0, [{p} + {x0}]",
                "movdqu xmm1, [{p} + {x1}]",
                "movdqu xmm2, [{p} + {x2}]",
                $insn,
                "movdqu [{p} + {x0}], xmm0",
                "movdqu [{p} + {x1}], xmm1",
                "stmxcsr [{p} + {mout}]",
                "ldmxcsr [{p} + {save}]",
                p = in(reg) p,
                x0 = const X0, x1 = const X1, x2 = const X2,
                min = const MX_IN, mout = const MX_OUT, save = const MX_SAVE,
                $(i = const $imm,)?
                out("xmm0") _, out("xmm1") _, out("xmm2") _,
                options(nostack, preserves_flags),
            )
        }
    }};
    (full, $s:ident, $insn:expr $(, $imm:ident)?) => {{
        let [mut a, mut c, mut d] = $s.g;
        let f: u64;
        let p: *mut St = $s;
        // SAFETY: as for `fp`; rax, rcx and rdx are in/out operands and RFLAGS
        // is read with a balanced pushfq/pop (the block may use the stack).
        unsafe {
            asm!(
                "stmxcsr [{p} + {save}]",
                "ldmxcsr [{p} + {min}]",
                "movdqu xmm0, [{p} + {x0}]",
                "movdqu xmm1, [{p} + {x1}]",
                "movdqu xmm2, [{p} + {x2}]",
                $insn,
                "pushfq",
                "pop {f}",
                "movdqu [{p} + {x0}], xmm0",
                "movdqu [{p} + {x1}], xmm1",
                "stmxcsr [{p} + {mout}]",
                "ldmxcsr [{p} + {save}]",
                p = in(reg) p,
                f = out(reg) f,
                x0 = const X0, x1 = const X1, x2 = const X2,
                min = const MX_IN, mout = const MX_OUT, save = const MX_SAVE,
                $(i = const $imm,)?
                inout("rax") a, inout("rcx") c, inout("rdx") d,
                out("xmm0") _, out("xmm1") _, out("xmm2") _,
            )
        }
        $s.g = [a, c, d];
        $s.flags = f;
    }};
}

/// Types for two-operand `xmm1, xmm2` instructions whose type name is the
/// mnemonic (the assembler accepts it in any case).
macro_rules! two_op {
    ($kind:ident: $($name:ident)*) => {$(
        pub(crate) struct $name;
        impl Host for $name {
            #[inline(never)]
            fn run(s: &mut St) {
                run_asm!($kind, s, concat!(stringify!($name), " xmm1, xmm2"));
            }
        }
    )*};
}

/// Types with an explicit template.
macro_rules! templ {
    ($kind:ident: $($name:ident = $insn:literal;)*) => {$(
        pub(crate) struct $name;
        impl Host for $name {
            #[inline(never)]
            fn run(s: &mut St) {
                run_asm!($kind, s, $insn);
            }
        }
    )*};
}

/// Types generic over the immediate byte, `xmm1, xmm2, imm8`.
macro_rules! imm_op {
    ($kind:ident: $($name:ident = $insn:literal;)*) => {$(
        pub(crate) struct $name<const I: u8>;
        impl<const I: u8> Host for $name<I> {
            #[inline(never)]
            fn run(s: &mut St) {
                run_asm!($kind, s, $insn, I);
            }
        }
    )*};
}

/// Lists all two-operand host types together with the mnemonic they are
/// selected for, so `select` and the types cannot drift apart.
macro_rules! with_vec_ops {
    ($m:ident) => {
        $m! {
            Paddb Paddw Paddd Paddq Paddsb Paddsw Paddusb Paddusw
            Psubb Psubw Psubd Psubq Psubsb Psubsw Psubusb Psubusw
            Pmullw Pmulhw Pmulhuw Pmuludq Pmaddwd Psadbw Pavgb Pavgw
            Pminub Pmaxub Pminsw Pmaxsw
            Pcmpeqb Pcmpeqw Pcmpeqd Pcmpgtb Pcmpgtw Pcmpgtd
            Packsswb Packssdw Packuswb
            Punpcklbw Punpcklwd Punpckldq Punpcklqdq Punpckhbw Punpckhwd Punpckhdq Punpckhqdq
            Unpcklps Unpckhps Unpcklpd Unpckhpd
            Pand Pandn Por Pxor Andps Andnps Orps Xorps Andpd Andnpd Orpd Xorpd
            Psllw Pslld Psllq Psrlw Psrld Psrlq Psraw Psrad
            Pshufb Phaddw Phaddd Phaddsw Phsubw Phsubd Phsubsw Pmaddubsw Pmulhrsw
            Psignb Psignw Psignd Pabsb Pabsw Pabsd
            Pmuldq Pmulld Packusdw Pcmpeqq Pcmpgtq
            Pminsb Pminsd Pminuw Pminud Pmaxsb Pmaxsd Pmaxuw Pmaxud Phminposuw
            Pmovsxbw Pmovsxbd Pmovsxbq Pmovsxwd Pmovsxwq Pmovsxdq
            Pmovzxbw Pmovzxbd Pmovzxbq Pmovzxwd Pmovzxwq Pmovzxdq
            Movddup Movshdup Movsldup
            Aesenc Aesenclast Aesdec Aesdeclast Aesimc
            Sha1nexte Sha1msg1 Sha1msg2 Sha256msg1 Sha256msg2
        }
    };
}

/// Two-operand floating-point host types (run under the guest MXCSR).
macro_rules! with_fp_ops {
    ($m:ident) => {
        $m! {
            Addps Addpd Addss Addsd Subps Subpd Subss Subsd
            Mulps Mulpd Mulss Mulsd Divps Divpd Divss Divsd
            Minps Minpd Minss Minsd Maxps Maxpd Maxss Maxsd
            Sqrtps Sqrtpd Sqrtss Sqrtsd Rcpps Rcpss Rsqrtps Rsqrtss
            Addsubps Addsubpd Haddps Haddpd Hsubps Hsubpd
            Cvtps2pd Cvtpd2ps Cvtdq2ps Cvtps2dq Cvttps2dq Cvtdq2pd Cvtpd2dq Cvttpd2dq
            Cvtss2sd Cvtsd2ss
        }
    };
}

/// Two-operand compares that set RFLAGS.
macro_rules! with_flag_ops {
    ($m:ident) => {
        $m! { Comiss Comisd Ucomiss Ucomisd }
    };
}

macro_rules! decl_vec {
    ($($n:ident)*) => { two_op!(vec: $($n)*); };
}
macro_rules! decl_fp {
    ($($n:ident)*) => { two_op!(fp: $($n)*); };
}
macro_rules! decl_full {
    ($($n:ident)*) => { two_op!(full: $($n)*); };
}

with_vec_ops!(decl_vec);
with_fp_ops!(decl_fp);
with_flag_ops!(decl_full);

pub(crate) use {with_flag_ops, with_fp_ops, with_vec_ops};

templ! { vec:
    Sha256rnds2 = "sha256rnds2 xmm1, xmm2, xmm0";
    Aeskeygenassist0 = "aeskeygenassist xmm1, xmm2, 0";
    Pblendvb = "pblendvb xmm1, xmm2, xmm0";
    Blendvps = "blendvps xmm1, xmm2, xmm0";
    Blendvpd = "blendvpd xmm1, xmm2, xmm0";
}

// Conversions between a general-purpose register and xmm.
templ! { full:
    Cvtsi2ss32 = "cvtsi2ss xmm1, eax";
    Cvtsi2ss64 = "cvtsi2ss xmm1, rax";
    Cvtsi2sd32 = "cvtsi2sd xmm1, eax";
    Cvtsi2sd64 = "cvtsi2sd xmm1, rax";
    Cvtss2si32 = "cvtss2si eax, xmm2";
    Cvtss2si64 = "cvtss2si rax, xmm2";
    Cvttss2si32 = "cvttss2si eax, xmm2";
    Cvttss2si64 = "cvttss2si rax, xmm2";
    Cvtsd2si32 = "cvtsd2si eax, xmm2";
    Cvtsd2si64 = "cvtsd2si rax, xmm2";
    Cvttsd2si32 = "cvttsd2si eax, xmm2";
    Cvttsd2si64 = "cvttsd2si rax, xmm2";
}

imm_op! { vec:
    Pclmulqdq = "pclmulqdq xmm1, xmm2, {i}";
    Sha1rnds4 = "sha1rnds4 xmm1, xmm2, {i}";
}

imm_op! { fp:
    Cmpps = "cmpps xmm1, xmm2, {i}";
    Cmppd = "cmppd xmm1, xmm2, {i}";
    Cmpss = "cmpss xmm1, xmm2, {i}";
    Cmpsd = "cmpsd xmm1, xmm2, {i}";
    Roundps = "roundps xmm1, xmm2, {i}";
    Roundpd = "roundpd xmm1, xmm2, {i}";
    Roundss = "roundss xmm1, xmm2, {i}";
    Roundsd = "roundsd xmm1, xmm2, {i}";
    Dpps = "dpps xmm1, xmm2, {i}";
    Dppd = "dppd xmm1, xmm2, {i}";
}

// The SSE4.2 string compares, encoded by hand so the exact bytes (and so the
// exact length-operand width) are under our control: 66 0f 3a op /r(ca) ib.
imm_op! { full:
    Pcmpestrm = ".byte 0x66, 0x0f, 0x3a, 0x60, 0xca, {i}";
    Pcmpestri = ".byte 0x66, 0x0f, 0x3a, 0x61, 0xca, {i}";
    Pcmpistrm = ".byte 0x66, 0x0f, 0x3a, 0x62, 0xca, {i}";
    Pcmpistri = ".byte 0x66, 0x0f, 0x3a, 0x63, 0xca, {i}";
}

/// A table of `$h::<$t<K>>` for the `$n` immediates `K` (8, 16 or 256).
macro_rules! imm_table {
    (8, $h:ident, $t:ident) => {
        [
            $h::<$t<0>> as Handler, $h::<$t<1>>, $h::<$t<2>>, $h::<$t<3>>,
            $h::<$t<4>>, $h::<$t<5>>, $h::<$t<6>>, $h::<$t<7>>,
        ]
    };
    (16, $h:ident, $t:ident) => {
        imm_table!(@row $h, $t, 0)
    };
    (256, $h:ident, $t:ident) => {
        [
            imm_table!(@row $h, $t, 0), imm_table!(@row $h, $t, 1),
            imm_table!(@row $h, $t, 2), imm_table!(@row $h, $t, 3),
            imm_table!(@row $h, $t, 4), imm_table!(@row $h, $t, 5),
            imm_table!(@row $h, $t, 6), imm_table!(@row $h, $t, 7),
            imm_table!(@row $h, $t, 8), imm_table!(@row $h, $t, 9),
            imm_table!(@row $h, $t, 10), imm_table!(@row $h, $t, 11),
            imm_table!(@row $h, $t, 12), imm_table!(@row $h, $t, 13),
            imm_table!(@row $h, $t, 14), imm_table!(@row $h, $t, 15),
        ]
    };
    (@row $h:ident, $t:ident, $hi:literal) => {
        [
            $h::<$t<{ $hi * 16 }>> as Handler, $h::<$t<{ $hi * 16 + 1 }>>,
            $h::<$t<{ $hi * 16 + 2 }>>, $h::<$t<{ $hi * 16 + 3 }>>,
            $h::<$t<{ $hi * 16 + 4 }>>, $h::<$t<{ $hi * 16 + 5 }>>,
            $h::<$t<{ $hi * 16 + 6 }>>, $h::<$t<{ $hi * 16 + 7 }>>,
            $h::<$t<{ $hi * 16 + 8 }>>, $h::<$t<{ $hi * 16 + 9 }>>,
            $h::<$t<{ $hi * 16 + 10 }>>, $h::<$t<{ $hi * 16 + 11 }>>,
            $h::<$t<{ $hi * 16 + 12 }>>, $h::<$t<{ $hi * 16 + 13 }>>,
            $h::<$t<{ $hi * 16 + 14 }>>, $h::<$t<{ $hi * 16 + 15 }>>,
        ]
    };
}

pub(crate) use imm_table;
#[cfg(test)]
pub(crate) use {imm_op, run_asm, templ};
