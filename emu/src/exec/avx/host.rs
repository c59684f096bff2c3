//! Host execution of VEX instructions: each guest form listed in `table.rs` runs as the
//! same form on the host, on host ymm registers loaded from a [`VSt`] (the design of
//! `sse::host`, widened to 256 bits and to the VEX operand shapes).
//!
//! Register convention inside every asm block: host `ymm1` holds the guest register named
//! by ModRM.reg (the destination of most forms, and a source of FMA and the compares),
//! `ymm2` the VEX.vvvv register, `ymm3` the ModRM.rm operand (register, or the memory
//! operand loaded into its low bytes), `ymm4` the register in imm8[7:4] (`is4`); `rax`
//! carries a general-purpose operand. The template of each form (`table.rs`) is written
//! with those registers, so one macro line per form is all the form's facts. After the
//! instruction the block runs `vzeroupper`, so the Rust code that follows never runs
//! with dirty upper halves (every xmm register is declared clobbered; the functions are
//! never inlined, and calls clobber them anyway).

use core::arch::asm;
use core::mem::offset_of;

use super::run_host;
use crate::exec::sse::host::imm_table;
use crate::exec::Handler;

/// Operands and results of one host-executed VEX instruction.
#[repr(C, align(32))]
#[derive(Clone, Copy, Default, Debug)]
pub(crate) struct VSt {
    /// Host ymm1..ymm4, each as low and high 128-bit halves.
    pub y: [[u128; 2]; 4],
    /// Host rax.
    pub g: u64,
    /// RFLAGS after the instruction (`fp` kind only).
    pub flags: u64,
    pub mx_in: u32,
    pub mx_out: u32,
    pub mx_save: u32,
}

const Y1: usize = offset_of!(VSt, y);
const Y2: usize = Y1 + 32;
const Y3: usize = Y1 + 64;
const Y4: usize = Y1 + 96;
const G: usize = offset_of!(VSt, g);
const FL: usize = offset_of!(VSt, flags);
const MX_IN: usize = offset_of!(VSt, mx_in);
const MX_OUT: usize = offset_of!(VSt, mx_out);
const MX_SAVE: usize = offset_of!(VSt, mx_save);

/// Where a form's result goes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Out {
    /// Host ymm1 to the ModRM.reg register.
    Y1,
    /// Host ymm1 to the ModRM.reg register; the ModRM.rm operand is a general-purpose
    /// register or memory, passed in rax (`vcvtsi2ss`).
    Y1G,
    /// Host ymm3 to the ModRM.rm register or memory (`vcvtps2ph`).
    Y3,
    /// rax to the ModRM.reg general-purpose register.
    G,
    /// RFLAGS only (`vptest`, `vcomiss`).
    F,
}

/// One host-executed VEX form.
pub(crate) trait HostV {
    /// Whether the form runs under the guest MXCSR (and may raise its flags).
    const FP: bool;
    const OUT: Out;
    fn run(s: &mut VSt);
}

macro_rules! vrun_asm {
    (vec, $s:ident, $insn:expr $(, $imm:ident)?) => {{
        let p: *mut VSt = $s;
        // SAFETY: the block only loads and stores through `p`, which points to a live,
        // exclusively borrowed `VSt`; every vector register is declared clobbered (the
        // closing `vzeroupper` touches all of their upper halves); no stack, no flags.
        // The table's forms exist on the host: callers run them only when
        // `CpuModel::host_supports` held for the model that decoded them.
        unsafe {
            asm!(
                "vmovdqu ymm1, [{p} + {y1}]",
                "vmovdqu ymm2, [{p} + {y2}]",
                "vmovdqu ymm3, [{p} + {y3}]",
                "vmovdqu ymm4, [{p} + {y4}]",
                $insn,
                "vmovdqu [{p} + {y1}], ymm1",
                "vmovdqu [{p} + {y3}], ymm3",
                "vzeroupper",
                p = in(reg) p,
                y1 = const Y1, y2 = const Y2, y3 = const Y3, y4 = const Y4,
                $(i = const $imm,)?
                out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm3") _,
                out("xmm4") _, out("xmm5") _, out("xmm6") _, out("xmm7") _,
                out("xmm8") _, out("xmm9") _, out("xmm10") _, out("xmm11") _,
                out("xmm12") _, out("xmm13") _, out("xmm14") _, out("xmm15") _,
                options(nostack, preserves_flags),
            )
        }
    }};
    (fp, $s:ident, $insn:expr $(, $imm:ident)?) => {{
        let p: *mut VSt = $s;
        // SAFETY: as for `vec`; in addition the guest MXCSR (all exceptions masked by the
        // caller, so no host #XM) is live only for the one instruction and the host MXCSR
        // is restored before the block ends; rax is an in/out operand and RFLAGS is read
        // with a balanced pushfq/pop.
        unsafe {
            asm!(
                "stmxcsr [{p} + {save}]",
                "vmovdqu ymm1, [{p} + {y1}]",
                "vmovdqu ymm2, [{p} + {y2}]",
                "vmovdqu ymm3, [{p} + {y3}]",
                "vmovdqu ymm4, [{p} + {y4}]",
                "mov rax, [{p} + {g}]",
                "ldmxcsr [{p} + {min}]",
                $insn,
                "stmxcsr [{p} + {mout}]",
                "ldmxcsr [{p} + {save}]",
                "pushfq",
                "pop qword ptr [{p} + {fl}]",
                "mov [{p} + {g}], rax",
                "vmovdqu [{p} + {y1}], ymm1",
                "vmovdqu [{p} + {y3}], ymm3",
                "vzeroupper",
                p = in(reg) p,
                y1 = const Y1, y2 = const Y2, y3 = const Y3, y4 = const Y4,
                g = const G, fl = const FL,
                min = const MX_IN, mout = const MX_OUT, save = const MX_SAVE,
                $(i = const $imm,)?
                out("rax") _,
                out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm3") _,
                out("xmm4") _, out("xmm5") _, out("xmm6") _, out("xmm7") _,
                out("xmm8") _, out("xmm9") _, out("xmm10") _, out("xmm11") _,
                out("xmm12") _, out("xmm13") _, out("xmm14") _, out("xmm15") _,
            )
        }
    }};
}

/// One type per form (named after its iced `Code`) and [`handler`], which picks the
/// handler of a decoded instruction.
macro_rules! host_ops {
    ($($code:ident: $kind:ident, $out:ident, $insn:literal;)*) => {
        $(
            #[allow(non_camel_case_types)]
            pub(crate) struct $code;
            impl HostV for $code {
                const FP: bool = host_ops!(@fp $kind);
                const OUT: Out = Out::$out;
                #[inline(never)]
                fn run(s: &mut VSt) {
                    vrun_asm!($kind, s, $insn);
                }
            }
        )*
        /// The handler of a host-executed form, if `i` is one.
        pub(crate) fn handler(i: &iced_x86::Instruction) -> Option<Handler> {
            use iced_x86::Code as C;
            Some(match i.code() {
                $(C::$code => run_host::<$code>,)*
                _ => return imm_handler(i),
            })
        }
    };
    (@fp fp) => { true };
    (@fp vec) => { false };
}

/// Forms whose immediate matters to a floating-point or carry-less result: one type
/// generic over the immediate, and a table of `$n` instantiations (16, 32 or 256: the
/// immediate bits the form reads; hardware ignores the others) indexed by the immediate.
macro_rules! host_imm_ops {
    ($($code:ident: $kind:ident, $out:ident, $n:tt, $insn:literal;)*) => {
        $(
            #[allow(non_camel_case_types)]
            pub(crate) struct $code<const I: u8>;
            impl<const I: u8> HostV for $code<I> {
                const FP: bool = host_ops!(@fp $kind);
                const OUT: Out = Out::$out;
                #[inline(never)]
                fn run(s: &mut VSt) {
                    vrun_asm!($kind, s, $insn, I);
                }
            }
        )*
        fn imm_handler(i: &iced_x86::Instruction) -> Option<Handler> {
            use iced_x86::Code as C;
            let imm = i.immediate8() as usize;
            Some(match i.code() {
                $(C::$code => {
                    const T: [[Handler; 16]; $n / 16] = host_imm_ops!(@table $n, $code);
                    T[(imm % $n) >> 4][imm & 15]
                })*
                _ => return None,
            })
        }
    };
    (@table 16, $t:ident) => { [imm_table!(@row run_host, $t, 0)] };
    (@table 32, $t:ident) => { [imm_table!(@row run_host, $t, 0), imm_table!(@row run_host, $t, 1)] };
    (@table 256, $t:ident) => { imm_table!(256, run_host, $t) };
}

include!("table.rs");
