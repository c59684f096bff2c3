//! Host code for one block: each covered guest instruction is re-encoded with host
//! registers standing in for the guest's (see the `jit` note for the design).

use iced_x86::code_asm::{
    byte_ptr, dword_ptr, eax, ebp, ecx, edi, edx, esi, qword_ptr, r12, r13, r14, r15, r15d, rax, rbp, rbx, rcx, rdi,
    rdx, rsi, rsp, CodeAssembler, CodeLabel,
};
use iced_x86::{
    Code, ConditionCode, ConstantOffsets, FlowControl, Instruction, InstructionInfoFactory, MemoryOperand, Mnemonic,
    OpAccess, OpKind, Register,
};

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::block::Block;
use crate::cpu::Cpu;
use crate::cpuid::CpuModel;
use crate::exec::Op;
use crate::memory::{OK_READ, OK_READ2, OK_RW, OK_RW2, OK_WRITE, OK_WRITE2, PAGE_SIZE};

mod div;

/// Host registers with a fixed role while translated code runs.
const CPU: Register = Register::RBX;
const BASE: Register = Register::R12;
const ADDR: Register = Register::R15;
const TMP: Register = Register::RBP;

/// Host registers that hold guest registers for the length of one instruction. A guest
/// register from this list uses the same host register (so implicit operands such as
/// `cl` in shifts or `rdx:rax` in `mul` need no rewriting); the others borrow a free one.
const POOL: [Register; 9] = [
    Register::RAX,
    Register::RCX,
    Register::RDX,
    Register::RSI,
    Register::RDI,
    Register::R8,
    Register::R9,
    Register::R10,
    Register::R11,
];

/// iced's `RflagsBits` for the six status flags.
const STATUS_BITS: u32 = 0x3f;
/// The status flags in RFLAGS.
const STATUS: u64 = crate::cpu::flags::STATUS;
const RSP: usize = crate::cpu::reg::RSP;
const RAX_NUMBER: usize = crate::cpu::reg::RAX;
const RBP: usize = crate::cpu::reg::RBP;

fn gpr_off(n: usize) -> i64 {
    (std::mem::offset_of!(Cpu, gpr) + 8 * n) as i64
}

fn gpr_slot(n: usize) -> MemoryOperand {
    MemoryOperand::with_base_displ(CPU, gpr_off(n))
}

fn xmm_slot(n: usize) -> MemoryOperand {
    MemoryOperand::with_base_displ(CPU, (std::mem::offset_of!(Cpu, xmm) + 16 * n) as i64)
}

/// Where bits 255:128 of guest `ymm` register `n` live (`Cpu::ymm_hi`).
fn ymm_hi_slot(n: usize) -> MemoryOperand {
    MemoryOperand::with_base_displ(CPU, (std::mem::offset_of!(Cpu, ymm_hi) + 16 * n) as i64)
}

/// Whether the host runs AVX2: VEX forms are re-encoded only then (std caches the answer).
fn host_avx2() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
}

/// A guest `xmm` or `ymm` register.
fn is_vector(r: Register) -> bool {
    r.is_xmm() || r.is_ymm()
}

/// Legacy-encoded SSE instructions on integers, bits or moves, which the emitter
/// re-encodes with guest `xmm` registers in the same host ones: they neither read nor
/// write MXCSR, read no status flag (the string compares `pcmpistri` and friends write
/// them, all defined), and compute the same on every CPU that has them (the host must
/// have them too: up to SSE4.2).
fn sse_plain(i: &Instruction) -> bool {
    use Mnemonic as M;
    let host = std::arch::is_x86_feature_detected!("sse4.2") && std::arch::is_x86_feature_detected!("ssse3");
    if !host
        || i.encoding() != iced_x86::EncodingKind::Legacy
        || !(0..i.op_count()).any(|n| i.op_kind(n) == OpKind::Register && i.op_register(n).is_xmm())
    {
        return false;
    }
    matches!(
        i.mnemonic(),
        M::Movdqa
            | M::Movdqu
            | M::Movaps
            | M::Movups
            | M::Movapd
            | M::Movupd
            | M::Movq
            | M::Movd
            | M::Movss
            | M::Movsd
            | M::Movhlps
            | M::Movlhps
            | M::Movlps
            | M::Movhps
            | M::Movlpd
            | M::Movhpd
            | M::Movntdq
            | M::Lddqu
            | M::Pxor
            | M::Por
            | M::Pand
            | M::Pandn
            | M::Xorps
            | M::Xorpd
            | M::Andps
            | M::Andpd
            | M::Orps
            | M::Orpd
            | M::Andnps
            | M::Andnpd
            | M::Paddb
            | M::Paddw
            | M::Paddd
            | M::Paddq
            | M::Psubb
            | M::Psubw
            | M::Psubd
            | M::Psubq
            | M::Paddusb
            | M::Paddusw
            | M::Psubusb
            | M::Psubusw
            | M::Paddsb
            | M::Paddsw
            | M::Psubsb
            | M::Psubsw
            | M::Psllw
            | M::Pslld
            | M::Psllq
            | M::Psrlw
            | M::Psrld
            | M::Psrlq
            | M::Psraw
            | M::Psrad
            | M::Pslldq
            | M::Psrldq
            | M::Pshufd
            | M::Pshuflw
            | M::Pshufhw
            | M::Pshufb
            | M::Palignr
            | M::Punpcklbw
            | M::Punpcklwd
            | M::Punpckldq
            | M::Punpcklqdq
            | M::Punpckhbw
            | M::Punpckhwd
            | M::Punpckhdq
            | M::Punpckhqdq
            | M::Packuswb
            | M::Packsswb
            | M::Packssdw
            | M::Packusdw
            | M::Pcmpeqb
            | M::Pcmpeqw
            | M::Pcmpeqd
            | M::Pcmpeqq
            | M::Pcmpgtb
            | M::Pcmpgtw
            | M::Pcmpgtd
            | M::Pcmpgtq
            | M::Pmovmskb
            | M::Movmskps
            | M::Movmskpd
            | M::Pminub
            | M::Pmaxub
            | M::Pminsw
            | M::Pmaxsw
            | M::Pminud
            | M::Pmaxud
            | M::Pminsd
            | M::Pmaxsd
            | M::Pmullw
            | M::Pmulld
            | M::Pmuludq
            | M::Pmulhw
            | M::Pmulhuw
            | M::Pmaddwd
            | M::Pavgb
            | M::Pavgw
            | M::Psadbw
            | M::Pextrw
            | M::Pinsrw
            | M::Pextrd
            | M::Pinsrd
            | M::Pextrq
            | M::Pinsrq
            | M::Shufps
            | M::Shufpd
            | M::Unpcklps
            | M::Unpckhps
            | M::Unpcklpd
            | M::Unpckhpd
            | M::Pcmpistri
            | M::Pcmpistrm
            | M::Pcmpestri
            | M::Pcmpestri64
            | M::Pcmpestrm
            | M::Pcmpestrm64
    )
}

/// Legacy-encoded SSE floating-point instructions, which the emitter re-encodes as for
/// `sse_plain`, run under the guest's MXCSR (see `Emitter::fp_enter`): they compute
/// what the interpreter's host-run handlers (`exec::sse`, `fp_run`) compute with every
/// exception masked, and raise the same sticky flags.
fn sse_fp(i: &Instruction) -> bool {
    use Mnemonic as M;
    let host = std::arch::is_x86_feature_detected!("sse4.1");
    if !host
        || i.encoding() != iced_x86::EncodingKind::Legacy
        || (0..i.op_count()).any(|n| i.op_kind(n) == OpKind::Register && i.op_register(n).is_mm())
    {
        return false;
    }
    match i.mnemonic() {
        // Also the string instruction `cmpsd`, which has no register operand.
        M::Cmpsd => i.op0_kind() == OpKind::Register && i.op0_register().is_xmm(),
        m => matches!(
            m,
            M::Addps
                | M::Addpd
                | M::Addss
                | M::Addsd
                | M::Subps
                | M::Subpd
                | M::Subss
                | M::Subsd
                | M::Mulps
                | M::Mulpd
                | M::Mulss
                | M::Mulsd
                | M::Divps
                | M::Divpd
                | M::Divss
                | M::Divsd
                | M::Minps
                | M::Minpd
                | M::Minss
                | M::Minsd
                | M::Maxps
                | M::Maxpd
                | M::Maxss
                | M::Maxsd
                | M::Sqrtps
                | M::Sqrtpd
                | M::Sqrtss
                | M::Sqrtsd
                | M::Addsubps
                | M::Addsubpd
                | M::Haddps
                | M::Haddpd
                | M::Hsubps
                | M::Hsubpd
                | M::Cvtps2pd
                | M::Cvtpd2ps
                | M::Cvtdq2ps
                | M::Cvtps2dq
                | M::Cvttps2dq
                | M::Cvtdq2pd
                | M::Cvtpd2dq
                | M::Cvttpd2dq
                | M::Cvtss2sd
                | M::Cvtsd2ss
                | M::Cvtsi2ss
                | M::Cvtsi2sd
                | M::Cvtss2si
                | M::Cvttss2si
                | M::Cvtsd2si
                | M::Cvttsd2si
                | M::Comiss
                | M::Comisd
                | M::Ucomiss
                | M::Ucomisd
                | M::Cmpps
                | M::Cmppd
                | M::Cmpss
                | M::Roundps
                | M::Roundpd
                | M::Roundss
                | M::Roundsd
        ),
    }
}

/// VEX-encoded (AVX, FMA) floating-point instructions, which the emitter re-encodes as
/// for `avx_plain` and runs under the guest's MXCSR as for `sse_fp`: the VEX forms of
/// `sse_fp`'s and the fused multiply-adds (the host must have FMA for those).
fn avx_fp(i: &Instruction) -> bool {
    use Mnemonic as M;
    if i.encoding() != iced_x86::EncodingKind::VEX || !host_avx2() {
        return false;
    }
    if i.cpuid_features() == [iced_x86::CpuidFeature::FMA] {
        return std::arch::is_x86_feature_detected!("fma");
    }
    matches!(
        i.mnemonic(),
        M::Vaddps
            | M::Vaddpd
            | M::Vaddss
            | M::Vaddsd
            | M::Vsubps
            | M::Vsubpd
            | M::Vsubss
            | M::Vsubsd
            | M::Vmulps
            | M::Vmulpd
            | M::Vmulss
            | M::Vmulsd
            | M::Vdivps
            | M::Vdivpd
            | M::Vdivss
            | M::Vdivsd
            | M::Vminps
            | M::Vminpd
            | M::Vminss
            | M::Vminsd
            | M::Vmaxps
            | M::Vmaxpd
            | M::Vmaxss
            | M::Vmaxsd
            | M::Vsqrtps
            | M::Vsqrtpd
            | M::Vsqrtss
            | M::Vsqrtsd
            | M::Vaddsubps
            | M::Vaddsubpd
            | M::Vhaddps
            | M::Vhaddpd
            | M::Vhsubps
            | M::Vhsubpd
            | M::Vcvtps2pd
            | M::Vcvtpd2ps
            | M::Vcvtdq2ps
            | M::Vcvtps2dq
            | M::Vcvttps2dq
            | M::Vcvtdq2pd
            | M::Vcvtpd2dq
            | M::Vcvttpd2dq
            | M::Vcvtss2sd
            | M::Vcvtsd2ss
            | M::Vcvtsi2ss
            | M::Vcvtsi2sd
            | M::Vcvtss2si
            | M::Vcvttss2si
            | M::Vcvtsd2si
            | M::Vcvttsd2si
            | M::Vcomiss
            | M::Vcomisd
            | M::Vucomiss
            | M::Vucomisd
            | M::Vcmpps
            | M::Vcmppd
            | M::Vcmpss
            | M::Vcmpsd
            | M::Vroundps
            | M::Vroundpd
            | M::Vroundss
            | M::Vroundsd
    )
}

/// VEX-encoded (AVX, AVX2) instructions on integers, bits or moves, which the emitter
/// re-encodes with guest `ymm` registers in the same host ones when the host has AVX2
/// (see `Emitter::bind` for the upper halves): no MXCSR, no flags but `vptest`'s and
/// `vpcmpistri`'s, the same results on every CPU that has them. Not the masked moves
/// and gathers (element-wise accesses, which stay in `run_op`) nor `vzeroall`;
/// `vzeroupper` has its own code (`Emitter::vzeroupper`).
fn avx_plain(i: &Instruction) -> bool {
    use Mnemonic as M;
    if i.encoding() != iced_x86::EncodingKind::VEX
        || !host_avx2()
        || !(0..i.op_count()).any(|n| i.op_kind(n) == OpKind::Register && is_vector(i.op_register(n)))
    {
        return false;
    }
    matches!(
        i.mnemonic(),
        M::Vmovdqa
            | M::Vmovdqu
            | M::Vmovaps
            | M::Vmovups
            | M::Vmovapd
            | M::Vmovupd
            | M::Vmovntdq
            | M::Vmovntdqa
            | M::Vmovntps
            | M::Vmovntpd
            | M::Vlddqu
            | M::Vmovd
            | M::Vmovq
            | M::Vmovss
            | M::Vmovsd
            | M::Vmovhlps
            | M::Vmovlhps
            | M::Vmovlps
            | M::Vmovhps
            | M::Vmovlpd
            | M::Vmovhpd
            | M::Vmovddup
            | M::Vmovshdup
            | M::Vmovsldup
            | M::Vpxor
            | M::Vpor
            | M::Vpand
            | M::Vpandn
            | M::Vxorps
            | M::Vxorpd
            | M::Vandps
            | M::Vandpd
            | M::Vorps
            | M::Vorpd
            | M::Vandnps
            | M::Vandnpd
            | M::Vpcmpeqb
            | M::Vpcmpeqw
            | M::Vpcmpeqd
            | M::Vpcmpeqq
            | M::Vpcmpgtb
            | M::Vpcmpgtw
            | M::Vpcmpgtd
            | M::Vpcmpgtq
            | M::Vpminub
            | M::Vpminuw
            | M::Vpminud
            | M::Vpminsb
            | M::Vpminsw
            | M::Vpminsd
            | M::Vpmaxub
            | M::Vpmaxuw
            | M::Vpmaxud
            | M::Vpmaxsb
            | M::Vpmaxsw
            | M::Vpmaxsd
            | M::Vpmovmskb
            | M::Vmovmskps
            | M::Vmovmskpd
            | M::Vptest
            | M::Vtestps
            | M::Vtestpd
            | M::Vpbroadcastb
            | M::Vpbroadcastw
            | M::Vpbroadcastd
            | M::Vpbroadcastq
            | M::Vbroadcastss
            | M::Vbroadcastsd
            | M::Vbroadcasti128
            | M::Vbroadcastf128
            | M::Vpaddb
            | M::Vpaddw
            | M::Vpaddd
            | M::Vpaddq
            | M::Vpsubb
            | M::Vpsubw
            | M::Vpsubd
            | M::Vpsubq
            | M::Vpaddusb
            | M::Vpaddusw
            | M::Vpsubusb
            | M::Vpsubusw
            | M::Vpaddsb
            | M::Vpaddsw
            | M::Vpsubsb
            | M::Vpsubsw
            | M::Vpsllw
            | M::Vpslld
            | M::Vpsllq
            | M::Vpsrlw
            | M::Vpsrld
            | M::Vpsrlq
            | M::Vpsraw
            | M::Vpsrad
            | M::Vpslldq
            | M::Vpsrldq
            | M::Vpsllvd
            | M::Vpsllvq
            | M::Vpsrlvd
            | M::Vpsrlvq
            | M::Vpsravd
            | M::Vpshufb
            | M::Vpshufd
            | M::Vpshuflw
            | M::Vpshufhw
            | M::Vpalignr
            | M::Vpunpcklbw
            | M::Vpunpcklwd
            | M::Vpunpckldq
            | M::Vpunpcklqdq
            | M::Vpunpckhbw
            | M::Vpunpckhwd
            | M::Vpunpckhdq
            | M::Vpunpckhqdq
            | M::Vpacksswb
            | M::Vpackssdw
            | M::Vpackuswb
            | M::Vpackusdw
            | M::Vpmullw
            | M::Vpmulld
            | M::Vpmuludq
            | M::Vpmuldq
            | M::Vpmulhw
            | M::Vpmulhuw
            | M::Vpmulhrsw
            | M::Vpmaddwd
            | M::Vpmaddubsw
            | M::Vpavgb
            | M::Vpavgw
            | M::Vpsadbw
            | M::Vpabsb
            | M::Vpabsw
            | M::Vpabsd
            | M::Vpsignb
            | M::Vpsignw
            | M::Vpsignd
            | M::Vpextrb
            | M::Vpextrw
            | M::Vpextrd
            | M::Vpextrq
            | M::Vpinsrb
            | M::Vpinsrw
            | M::Vpinsrd
            | M::Vpinsrq
            | M::Vinserti128
            | M::Vextracti128
            | M::Vinsertf128
            | M::Vextractf128
            | M::Vperm2i128
            | M::Vperm2f128
            | M::Vpermq
            | M::Vpermd
            | M::Vpermpd
            | M::Vpermps
            | M::Vpermilps
            | M::Vpermilpd
            | M::Vpblendd
            | M::Vpblendw
            | M::Vpblendvb
            | M::Vblendps
            | M::Vblendpd
            | M::Vblendvps
            | M::Vblendvpd
            | M::Vshufps
            | M::Vshufpd
            | M::Vunpcklps
            | M::Vunpckhps
            | M::Vunpcklpd
            | M::Vunpckhpd
            | M::Vpmovzxbw
            | M::Vpmovzxbd
            | M::Vpmovzxbq
            | M::Vpmovzxwd
            | M::Vpmovzxwq
            | M::Vpmovzxdq
            | M::Vpmovsxbw
            | M::Vpmovsxbd
            | M::Vpmovsxbq
            | M::Vpmovsxwd
            | M::Vpmovsxwq
            | M::Vpmovsxdq
            | M::Vpcmpistri
            | M::Vpcmpistrm
            | M::Vpcmpestri
            | M::Vpcmpestri64
            | M::Vpcmpestrm
            | M::Vpcmpestrm64
    )
}

/// The alignment `i`'s memory operand must have (#GP otherwise), if any: 16 bytes for
/// legacy SSE's 16-byte operands except the unaligned moves and the string compares;
/// the operand's size for the aligned VEX moves (`exec::avx`'s `check_align`).
fn alignment(i: &Instruction) -> Option<u64> {
    use Mnemonic as M;
    let size = i.memory_size().size() as u64;
    let aligned = if i.encoding() == iced_x86::EncodingKind::VEX {
        matches!(
            i.mnemonic(),
            M::Vmovaps | M::Vmovapd | M::Vmovdqa | M::Vmovntps | M::Vmovntpd | M::Vmovntdq | M::Vmovntdqa
        )
    } else {
        size == 16
            && !matches!(
                i.mnemonic(),
                M::Movdqu
                    | M::Movups
                    | M::Movupd
                    | M::Lddqu
                    | M::Pcmpistri
                    | M::Pcmpistrm
                    | M::Pcmpestri
                    | M::Pcmpestri64
                    | M::Pcmpestrm
                    | M::Pcmpestrm64
            )
    };
    aligned.then_some(size)
}

/// How a guest access must be allowed by the page's permission byte.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Need {
    Read,
    Write,
    ReadWrite,
}

impl Need {
    fn of(access: OpAccess) -> Option<Need> {
        match access {
            OpAccess::Read | OpAccess::CondRead => Some(Need::Read),
            OpAccess::Write | OpAccess::CondWrite => Some(Need::Write),
            OpAccess::ReadWrite | OpAccess::ReadCondWrite => Some(Need::ReadWrite),
            _ => None,
        }
    }
    fn reads(self) -> bool {
        self != Need::Write
    }
    fn writes(self) -> bool {
        self != Need::Read
    }
    fn from(read: bool, write: bool) -> Need {
        match (read, write) {
            (true, true) => Need::ReadWrite,
            (false, true) => Need::Write,
            _ => Need::Read,
        }
    }
}

/// The most bytes one group check covers: its first and last bytes' pages are all the
/// pages it touches.
const GROUP_SPAN: i64 = PAGE_SIZE as i64;

/// What `group` needs to know of each instruction of `block` (see `Step`).
fn steps(ops: &[&Op]) -> Vec<Step> {
    let mut info = InstructionInfoFactory::new();
    ops.iter()
        .map(|op| {
            let i = &op.insn;
            let mut st = Step::default();
            if matches!(i.code(), Code::Push_r64 | Code::Pop_r64) {
                let r = i.op0_register().number();
                let push = i.code() == Code::Push_r64;
                st.covered = true;
                if r == RSP && !push {
                    st.writes = 1 << RSP;
                    return st;
                }
                let need = if push { Need::Write } else { Need::Read };
                st.access = Some((Key::reg(RSP), if push { -8 } else { 0 }, 8, need));
                st.stack = if push { -8 } else { 8 };
                if !push {
                    st.writes = 1 << r;
                }
                return st;
            }
            // The push of a `call` (direct or through a register) and the pop of a `ret`,
            // which end the block (`Emitter::branch`): a group at `rsp` may cover them.
            let call = i.mnemonic() == Mnemonic::Call && matches!(i.op0_kind(), OpKind::NearBranch64)
                || (i.mnemonic() == Mnemonic::Call && i.op0_kind() == OpKind::Register && i.op0_register().is_gpr64());
            let ret = i.mnemonic() == Mnemonic::Ret && i.op_count() == 0;
            if call || ret {
                st.covered = true;
                st.writes = 1 << RSP;
                st.access =
                    Some((Key::reg(RSP), if call { -8 } else { 0 }, 8, if call { Need::Write } else { Need::Read }));
                return st;
            }
            st.covered = i.flow_control() == FlowControl::Next
                && (plain(i) || sse_plain(i) || sse_fp(i) || avx_plain(i) || avx_fp(i));
            if !st.covered {
                return st;
            }
            let info = info.info(i);
            for u in info.used_registers() {
                let r = u.register();
                if r.is_gpr() && !matches!(u.access(), OpAccess::Read | OpAccess::CondRead | OpAccess::NoMemAccess) {
                    st.writes |= 1 << r.full_register().number();
                }
            }
            st.access = group_access(i, info.used_memory());
            st
        })
        .collect()
}

/// The access of `i` as `Step::access` has it, if `group` may cover it.
fn group_access(i: &Instruction, used: &[iced_x86::UsedMemory]) -> Option<(Key, i64, u64, Need)> {
    let [m] = used else { return None };
    let (base, index) = (i.memory_base(), i.memory_index());
    let size = i.memory_size().size() as u64;
    let disp = i.memory_displacement64() as i64;
    if i.mnemonic() == Mnemonic::Lea
        || !base.is_gpr64()
        || !(index == Register::None || index.is_gpr64())
        || matches!(i.memory_segment(), Register::FS | Register::GS)
        || !matches!(size, 1 | 2 | 4 | 8 | 16 | 32)
        // An aligned access joins a group when its alignment is its group address's
        // (tested at the access, `Emitter::plain`).
        || alignment(i).is_some_and(|a| disp.rem_euclid(a as i64) != 0)
        || (0..i.op_count()).filter(|&n| i.op_kind(n) == OpKind::Memory).count() != 1
    {
        return None;
    }
    i32::try_from(disp).ok()?;
    let index = (index != Register::None).then(|| (index.number(), i.memory_index_scale()));
    Some((Key { base: base.number(), index }, disp, size, Need::of(m.access())?))
}

/// What a group's accesses are at (besides their displacements): guest register `base`,
/// plus guest register `index` times its scale (1, 2, 4, 8) if any.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Key {
    base: usize,
    index: Option<(usize, u32)>,
}

impl Key {
    fn reg(base: usize) -> Key {
        Key { base, index: None }
    }
    /// The guest registers it depends on (bit per register number).
    fn regs(self) -> u32 {
        (1 << self.base) | self.index.map_or(0, |(x, _)| 1 << x)
    }
    fn uses(self, g: usize) -> bool {
        self.regs() & (1 << g) != 0
    }
    /// `rsp` alone, which pushes and pops move by known amounts.
    fn stack(self) -> bool {
        self == Key::reg(RSP)
    }
}

/// How `Emitter::check` treats an access that may cross a page edge.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Edge {
    /// The pair bit of its page inline, the rest out of line.
    Pair,
    /// The crossing test inline, the last byte's page out of line.
    Inline,
    /// The crossing test inline, failing.
    Fail,
}

/// How an access is checked (`Emitter::plan_access`): the group's key and the access's
/// displacement.
#[derive(Clone, Copy)]
enum Access {
    Alone,
    Covered(Key, i64),
    Start(Key, i64, Group),
}

/// The memory operand `[BASE + host + disp]` of an access a group checks.
fn grouped_operand(host: Register, disp: i64) -> MemoryOperand {
    let size = if disp == 0 {
        0
    } else if i8::try_from(disp).is_ok() {
        1
    } else {
        8
    };
    MemoryOperand::new(BASE, host, 1, disp, size, false, Register::None)
}

/// Why translation stopped before an instruction.
struct Unsupported;

type Emit<T = ()> = Result<T, Unsupported>;

impl From<iced_x86::IcedError> for Unsupported {
    fn from(_: iced_x86::IcedError) -> Unsupported {
        Unsupported
    }
}

/// Encodings of host instructions that do not depend on where they land (no branch, no
/// `rip`-relative operand), kept by the translator across blocks: the same access checks,
/// loads, stores and exits recur in every block, and each re-encoded guest instruction is
/// encoded once to see that it can be (`Emitter::plain`) and again in `encode`. Bounded:
/// emptied when full (guest code chooses the immediates and displacements).
#[derive(Default)]
pub(super) struct Memo {
    map: HashMap<Instruction, Encoded, BuildHasherDefault<InsnHasher>>,
    /// For the misses.
    enc: Option<iced_x86::Encoder>,
}

/// At most this many encodings are kept.
const MEMO_MAX: usize = 1 << 14;

#[derive(Clone, Copy)]
struct Encoded {
    len: u8,
    bytes: [u8; 15],
}

/// Hashes the fields of an `Instruction` (iced's `Hash` leaves out its address and length).
#[derive(Default)]
struct InsnHasher(u64);

impl Hasher for InsnHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for c in bytes.chunks(8) {
            let mut w = [0; 8];
            w[..c.len()].copy_from_slice(c);
            self.write_u64(u64::from_le_bytes(w));
        }
    }
    fn write_u8(&mut self, v: u8) {
        self.write_u64(v.into());
    }
    fn write_u16(&mut self, v: u16) {
        self.write_u64(v.into());
    }
    fn write_u32(&mut self, v: u32) {
        self.write_u64(v.into());
    }
    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64);
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

impl Memo {
    /// The encoding of `i`, which must not depend on its address (see `position_free`).
    fn encoding(&mut self, i: &Instruction) -> Option<Encoded> {
        if let Some(e) = self.map.get(i) {
            return Some(*e);
        }
        let mut e = Encoded { len: 0, bytes: [0; 15] };
        let (len, _) = self.encode(i, 0, |b| e.bytes[..b.len()].copy_from_slice(b))?;
        e.len = len as u8;
        if self.map.len() >= MEMO_MAX {
            self.map.clear();
        }
        self.map.insert(*i, e);
        Some(e)
    }

    /// Encodes `i` at `rip` with the shared encoder, hands its bytes to `out`: its length
    /// and constant offsets. (The encoder's buffer is emptied after each instruction: a
    /// failed encoding may leave bytes in it.)
    fn encode(&mut self, i: &Instruction, rip: u64, out: impl FnOnce(&[u8])) -> Option<(usize, ConstantOffsets)> {
        let enc = self.enc.get_or_insert_with(|| iced_x86::Encoder::new(64));
        let r = enc.encode(i, rip);
        let mut buf = enc.take_buffer();
        if r.is_ok() {
            out(&buf);
        }
        buf.clear();
        enc.set_buffer(buf);
        Some((r.ok()?, enc.get_constant_offsets()))
    }
}

/// Whether `i` encodes the same wherever it lands.
fn position_free(i: &Instruction) -> bool {
    !i.is_ip_rel_memory_operand()
        && !(0..i.op_count())
            .any(|n| matches!(i.op_kind(n), OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64))
}

/// Host addresses of the code every translation shares (see `stubs`).
#[derive(Clone, Copy)]
pub(super) struct Stubs {
    /// `extern "sysv64" fn(cpu, env, body) -> ()`: sets up the frame and jumps to `body`.
    pub enter: u64,
    /// Leaves a block for guest address `rax` after `edx` completed instructions: on to
    /// that block's translation if the table has it, else back to the run loop.
    pub chain: u64,
    /// Leaves before guest instruction `rbp` after `eax` completed instructions, to
    /// the interpreter.
    pub early: u64,
    /// Leaves for guest address `rax`, the budget left already updated (a direct exit's
    /// target is not in the table, or a block's budget check failed).
    pub leave: u64,
    /// `super::run_op`.
    pub run_op: u64,
}

/// Offsets of `Env` fields the generated code uses.
const ENV_LEFT: usize = std::mem::offset_of!(super::Env, left);
const ENV_EARLY: usize = std::mem::offset_of!(super::Env, early);
const ENV_CHAINED: usize = std::mem::offset_of!(super::Env, chained);

/// The frame `enter` builds below the `Env` pointer at `[rsp]`: the host's MXCSR (and
/// `FP_ON` beside it), the guest memory's limit, the count of blocks entered through
/// `chain`, and `Cpu::rflags` without its status flags (`store_flags`; only the interpreter and `run_op`'s
/// handlers change those bits, and `call_op` reads them again after each call).
const HOST_MXCSR: usize = 8;
/// Non-zero while the host's MXCSR holds the guest's (`Emitter::fp_enter`): from an SSE
/// floating-point run on, across linked and chained blocks, until `leave` or a `run_op`
/// call (`Emitter::fp_leave`) gives the host its own back.
const FP_ON: usize = 12;
const LIMIT: usize = 16;
const CHAINED: usize = 24;
const FLAGS_REST: usize = 32;

/// The shared code for host address `ip`, with the chaining table at `table`: (code,
/// stubs). Translated code runs in the frame `enter` builds: the callee-saved registers
/// pushed, then 32 bytes (`HOST_MXCSR`, `LIMIT`, `CHAINED`, `FLAGS_REST`), then the `Env` pointer at
/// `[rsp]`, with `rbx` = `Cpu`, `r12` = guest memory base, `r13` = permission table,
/// `r14` = the budget left. Each block's code starts by checking that the budget covers
/// all of the block's instructions (else it leaves for its own address).
pub(super) fn stubs(ip: u64, table: u64) -> Option<(Vec<u8>, Stubs)> {
    let rip = std::mem::offset_of!(Cpu, rip);
    // The labels of the stubs, as the index of the instruction each is bound to.
    let build = || -> Emit<(CodeAssembler, [usize; 4])> {
        let mut a = CodeAssembler::new(64)?;
        let (mut enter, mut chain, mut early, mut leave) =
            (a.create_label(), a.create_label(), a.create_label(), a.create_label());
        let mut leave_at = a.create_label();
        a.set_label(&mut enter)?;
        let enter_at = a.instructions().len();
        a.push(rbx)?;
        a.push(rbp)?;
        a.push(r12)?;
        a.push(r13)?;
        a.push(r14)?;
        a.push(r15)?;
        a.sub(rsp, 32)?;
        a.push(rsi)?;
        // The host's MXCSR, for the ends of SSE floating-point runs (`fp_leave`).
        a.stmxcsr(dword_ptr(rsp + HOST_MXCSR))?;
        a.mov(dword_ptr(rsp + FP_ON), 0)?;
        a.mov(rbx, rdi)?;
        a.mov(r12, qword_ptr(rsi + std::mem::offset_of!(super::Env, base)))?;
        a.mov(r13, qword_ptr(rsi + std::mem::offset_of!(super::Env, perm)))?;
        a.mov(rax, qword_ptr(rsi + std::mem::offset_of!(super::Env, limit)))?;
        a.mov(qword_ptr(rsp + LIMIT), rax)?;
        a.mov(qword_ptr(rsp + CHAINED), 0)?;
        a.mov(rax, qword_ptr(rbx + std::mem::offset_of!(Cpu, rflags)))?;
        a.and(rax, !(STATUS as i32))?;
        a.mov(qword_ptr(rsp + FLAGS_REST), rax)?;
        a.mov(r14, qword_ptr(rsi + ENV_LEFT))?;
        a.jmp(rdx)?;

        a.set_label(&mut chain)?;
        let chain_at = a.instructions().len();
        a.sub(r14, rdx)?;
        a.mov(rcx, rax)?;
        a.shr(rcx, 23)?;
        a.xor(rcx, rax)?;
        a.imul_3(rcx, rcx, super::HASH)?;
        a.shr(rcx, 17)?;
        a.and(ecx, (1 << super::SET_BITS) - 1)?;
        a.shl(ecx, super::SET_BYTES.trailing_zeros())?;
        a.mov(rsi, table)?;
        a.add(rcx, rsi)?;
        for w in 0..super::WAYS {
            let mut next = a.create_label();
            a.cmp(qword_ptr(rcx + 16 * w), rax)?;
            if w + 1 == super::WAYS {
                a.jne(leave_at)?;
            } else {
                a.jne(next)?;
            }
            a.inc(qword_ptr(rsp + CHAINED))?;
            a.jmp(qword_ptr(rcx + 16 * w + 8))?;
            if w + 1 < super::WAYS {
                a.set_label(&mut next)?;
            }
        }

        a.set_label(&mut early)?;
        let early_at = a.instructions().len();
        a.mov(qword_ptr(rbx + rip), rbp)?;
        a.sub(r14, rax)?;
        a.mov(rsi, qword_ptr(rsp))?;
        a.mov(qword_ptr(rsi + ENV_EARLY), 1)?;
        a.jmp(leave)?;

        a.set_label(&mut leave_at)?;
        let leave_at_at = a.instructions().len();
        a.mov(qword_ptr(rbx + rip), rax)?;
        a.set_label(&mut leave)?;
        // The guest's MXCSR (its exception flags raised meanwhile) to `Cpu::mxcsr` and
        // the host's back, if an SSE floating-point run left it in place.
        let mut host_mxcsr = a.create_label();
        a.cmp(dword_ptr(rsp + FP_ON), 0)?;
        a.je(host_mxcsr)?;
        a.stmxcsr(dword_ptr(rbx + std::mem::offset_of!(Cpu, mxcsr)))?;
        a.ldmxcsr(dword_ptr(rsp + HOST_MXCSR))?;
        a.set_label(&mut host_mxcsr)?;
        // `Cpu::rflags` whole again: the guest's flags other than the status ones in
        // place of the host's `store_flags` wrote.
        a.mov(rax, qword_ptr(rbx + std::mem::offset_of!(Cpu, rflags)))?;
        a.and(eax, STATUS as i32)?;
        a.or(rax, qword_ptr(rsp + FLAGS_REST))?;
        a.mov(qword_ptr(rbx + std::mem::offset_of!(Cpu, rflags)), rax)?;
        a.mov(rsi, qword_ptr(rsp))?;
        a.mov(qword_ptr(rsi + ENV_LEFT), r14)?;
        a.mov(rax, qword_ptr(rsp + CHAINED))?;
        a.mov(qword_ptr(rsi + ENV_CHAINED), rax)?;
        a.pop(rsi)?;
        a.add(rsp, 32)?;
        a.pop(r15)?;
        a.pop(r14)?;
        a.pop(r13)?;
        a.pop(r12)?;
        a.pop(rbp)?;
        a.pop(rbx)?;
        a.ret()?;
        Ok((a, [enter_at, chain_at, early_at, leave_at_at]))
    };
    let (a, labels) = build().ok()?;
    let instrs = a.instructions();
    let (code, at) = encode(instrs, ip, &mut Memo::default())?;
    // The offset of the label bound to the instruction at index `n`.
    let to = |n: usize| Some(ip + u64::from(*at.get(instrs.get(n)?.ip() as usize).filter(|&&t| t != u32::MAX)?));
    let stubs = Stubs {
        enter: to(labels[0])?,
        chain: to(labels[1])?,
        early: to(labels[2])?,
        leave: to(labels[3])?,
        run_op: super::run_op as *const () as u64,
    };
    Some((code, stubs))
}

/// Encodes the instructions of a `CodeAssembler` for host address `ip`, each once (from
/// `memo` when it is the same anywhere), where it lands (iced's `BlockEncoder`, behind `CodeAssembler::assemble`, builds an object
/// per instruction and encodes each two or three times to pick short branches: a third
/// of the `jit` fuzz target's time went there). Every branch to a label takes its
/// `rel32` form (`jrcxz` keeps its only one, `rel8`); a branch to a label not yet seen
/// is encoded towards itself and its displacement patched at the end. As the assembler
/// records them, an instruction's `ip` is the id of the label bound to it (0 for none:
/// `add_guest` clears a guest instruction's), and a branch whose target is such an id
/// goes to that label; any other target is a host address (the stubs, far above the ids).
/// Returns the code and the offset of each label in it (by id; `u32::MAX` if unbound),
/// `None` if something does not encode or reach.
fn encode(instrs: &[Instruction], ip: u64, memo: &mut Memo) -> Option<(Vec<u8>, Vec<u32>)> {
    const UNBOUND: u32 = u32::MAX;
    let labels = instrs.iter().map(|i| i.ip()).max().unwrap_or(0);
    let mut at = vec![UNBOUND; usize::try_from(labels).ok()? + 1];
    // (offset of a displacement, its size, offset of the end of its instruction, label)
    let mut fixups: Vec<(usize, usize, usize, usize)> = Vec::new();
    let mut code = Vec::with_capacity(instrs.len() * 6);
    for i in instrs {
        if i.ip() != 0 {
            at[i.ip() as usize] = code.len() as u32;
        }
        if position_free(i) {
            let e = memo.encoding(i)?;
            code.extend_from_slice(&e.bytes[..usize::from(e.len)]);
            continue;
        }
        let (off, here) = (code.len(), ip + code.len() as u64);
        let mut b = *i;
        b.as_near_branch();
        let mut fixup = None;
        if b.op0_kind() == OpKind::NearBranch64 {
            let t = b.near_branch64();
            let to = match (t <= labels).then_some(t as usize) {
                // Not seen yet: towards itself for now.
                Some(l) if at[l] == UNBOUND => {
                    fixup = Some(l);
                    here
                }
                Some(l) => ip + u64::from(at[l]),
                None => t,
            };
            b.set_near_branch64(to);
        }
        let (len, c) = memo.encode(&b, here, |bytes| code.extend_from_slice(bytes))?;
        if let Some(l) = fixup {
            fixups.push((off + c.immediate_offset(), c.immediate_size(), off + len, l));
        }
    }
    for (field, size, end, label) in fixups {
        let to = *at.get(label).filter(|&&t| t != UNBOUND)?;
        let rel = i64::from(to) - end as i64;
        match size {
            4 => code[field..field + 4].copy_from_slice(&i32::try_from(rel).ok()?.to_le_bytes()),
            1 => code[field] = i8::try_from(rel).ok()? as u8,
            _ => return None,
        }
    }
    Some((code, at))
}

/// A block's code (see `translate`).
pub(super) struct Translation {
    pub code: Vec<u8>,
    /// How many of the block's instructions it covers.
    pub covers: u32,
    /// Its direct exits: (offset of the `mov rax, target` that starts the exit's lookup,
    /// which `Jit::link` may overwrite with a `jmp` to the target's code; target).
    pub sites: Vec<(u32, u64)>,
    /// It loops inside its own code (`Head`).
    pub looping: bool,
}

/// A block of a translation unit, and where the unit goes on after it: the start of the
/// next part (`None` for the last). A unit of more than one part is a loop through its
/// blocks (`Jit::unit`): the first part's block is where it is entered, the last part's
/// branch goes back to it.
pub(super) struct Part<'b> {
    pub block: &'b Block,
    pub next: Option<u64>,
}

/// Translates the longest prefix of the unit `parts` the emitter covers, for host address
/// `ip`; `None` when it covers not even the first instruction. A unit of several parts is
/// translated as a loop inside its own code, all of it or not at all; if that fails, its
/// first block alone is.
pub(super) fn translate(
    parts: &[Part<'_>],
    model: CpuModel,
    ip: u64,
    stubs: Stubs,
    table: u64,
    memo: &mut Memo,
) -> Option<Translation> {
    if parts.len() > 1 {
        if let Some(t) = translate_as(parts, model, ip, stubs, table, memo, true) {
            return Some(t);
        }
    }
    let block = parts.first()?.block;
    let single = [Part { block, next: None }];
    if self_loop(block) {
        if let Some(t) = translate_as(&single, model, ip, stubs, table, memo, true) {
            return Some(t);
        }
    }
    translate_as(&single, model, ip, stubs, table, memo, false)
}

/// Whether `block` ends with a direct `jmp` or `jcc` to its own start (the back edge of
/// a loop of one block), whose translation may loop inside its own code (`Head`).
pub(super) fn self_loop(block: &Block) -> bool {
    block.ops.last().is_some_and(|op| branches(&op.insn) && op.insn.near_branch_target() == block.start)
}

/// A direct `jmp` or a `jcc` other than `loop`, `loope`, `loopne` and `jrcxz`.
fn branches(i: &Instruction) -> bool {
    let direct = i.op_count() == 1 && i.op0_kind() == OpKind::NearBranch64;
    direct
        && (i.mnemonic() == Mnemonic::Jmp
            || (i.flow_control() == FlowControl::ConditionalBranch
                && !matches!(i.mnemonic(), Mnemonic::Loop | Mnemonic::Loope | Mnemonic::Loopne | Mnemonic::Jrcxz)))
}

/// Where `block` may go on, as far as a unit may follow it: the target of a direct `jmp`,
/// both sides of a `jcc` (`branches`), the fall-through of a block that ends without a
/// control transfer; `None` for the rest.
pub(super) fn successors(block: &Block) -> [Option<u64>; 2] {
    let Some(i) = block.ops.last().map(|op| &op.insn) else { return [None; 2] };
    match i.flow_control() {
        FlowControl::Next => [Some(block.end), None],
        _ if branches(i) && i.mnemonic() == Mnemonic::Jmp => [Some(i.near_branch_target()), None],
        _ if branches(i) => [Some(i.near_branch_target()), Some(i.next_ip())],
        _ => [None; 2],
    }
}

/// `translate`, as a loop inside its own code when `looping` (`None` if that fails:
/// the caller translates it again without).
fn translate_as(
    parts: &[Part<'_>],
    model: CpuModel,
    ip: u64,
    stubs: Stubs,
    table: u64,
    memo: &mut Memo,
    looping: bool,
) -> Option<Translation> {
    let unit = parts.len() > 1;
    let ops: Vec<&Op> = parts.iter().flat_map(|p| p.block.ops.iter()).collect();
    let n = ops.len();
    let (first, last_block) = (parts.first()?.block, parts.last()?.block);
    let ips: Vec<u64> = ops.iter().map(|op| op.insn.ip()).chain([last_block.end]).collect();
    let (undefined_read, live) = flag_liveness(parts);
    let mut e = Emitter::new(stubs, ips, live, table, memo).ok()?;
    e.steps = steps(&ops);
    e.unit = unit;
    // The budget must cover the whole block or unit (for one entered from another).
    let mut bail = e.a.create_label();
    e.a.cmp(r14, i32::try_from(n).ok()?).ok()?;
    e.a.jb(bail).ok()?;
    if looping {
        e.loop_head(&ops).ok()?;
    }
    let mut covers = 0;
    'parts: for part in parts {
        let m = part.block.ops.len();
        for (j, op) in part.block.ops.iter().enumerate() {
            let k = covers as u32;
            let goes_on = part.next.filter(|_| j + 1 == m && op.insn.flow_control() != FlowControl::Next);
            let last = j + 1 == m && part.next.is_none();
            // The compare of a fused compare-and-branch: its op branches.
            let fused = part.block.fused && j + 2 == m;
            if !e.steps[k as usize].covered {
                // Only `plain` and `push_pop` keep track of the registers groups depend on.
                e.groups.clear();
            }
            let done = if let Some(next) = goes_on {
                e.go_on(k, &op.insn, next)
            } else if undefined_read[k as usize] {
                e.undefined_as_interpreter(k, &op.insn, last, model).or_else(|_| e.call_op(k, op, fused))
            } else {
                e.insn(k, &op.insn, last, model).or_else(|_| e.call_op(k, op, fused))
            };
            if done.is_err() {
                break 'parts;
            }
            covers += 1;
        }
    }
    if covers == 0 || (looping && !e.head.is_some_and(|h| h.closed)) || (unit && covers < n) {
        return None;
    }
    e.finish(covers as u32, last_block.end).ok()?;
    e.a.set_label(&mut bail).ok()?;
    if unit {
        // The budget covers the first block but not the unit: the interpreter runs it
        // (from the run loop, a lookup of the block would enter this code again).
        e.a.xor(eax, eax).ok()?;
        e.mov_imm(TMP, first.start).ok()?;
        e.a.jmp(stubs.early).ok()?;
    } else {
        e.mov_imm(Register::RAX, first.start).ok()?;
        e.a.jmp(stubs.leave).ok()?;
    }
    let instrs = e.a.instructions();
    let (code, at) = encode(instrs, ip, e.memo)?;
    let mut sites = Vec::with_capacity(e.sites.len());
    for &(n, target) in &e.sites {
        let off = *at.get(instrs.get(n)?.ip() as usize).filter(|&&o| o != u32::MAX)?;
        // `mov rax, imm64`, which a link overwrites with a `jmp rel32`.
        if code.get(off as usize..off as usize + 2)? != [0x48, 0xb8] {
            return None;
        }
        sites.push((off, target));
    }
    Some(Translation { code, covers: covers as u32, sites, looping })
}

struct Emitter<'m> {
    a: CodeAssembler,
    /// Encodings already made (see `Memo`).
    memo: &'m mut Memo,
    info: InstructionInfoFactory,
    /// The host's status flags hold the guest's.
    host_flags: bool,
    /// `Cpu::rflags` holds the guest's status flags. At least one of the two holds.
    ctx_flags: bool,
    /// The instruction being emitted takes the flags it keeps from `Cpu::rflags` after
    /// it (`merge_flags`), so the host's need not hold them before it.
    merging: bool,
    stubs: Stubs,
    /// Guest address of each of the block's instructions, then of its end.
    ips: Vec<u64>,
    /// Where a `run_op` call that did not complete normally goes: (label, instruction).
    calls: Vec<(CodeLabel, u32)>,
    /// The last instruction emitted its own exits (a branch).
    ended: bool,
    /// Where a failed access check goes: (label, instructions completed, the cached
    /// guest registers to store first, `vzeroupper` to issue).
    fallbacks: Vec<(CodeLabel, u32, Dirty, bool)>,
    /// The out-of-line tests of accesses whose page and the next do not both allow
    /// them (`check`): (label, the `je` to go back to, access size, need, the check's
    /// failure label).
    crossings: Vec<(CodeLabel, CodeLabel, u64, Need, CodeLabel, Edge)>,
    /// The guest register each host register of `POOL` holds (by host register number),
    /// kept across the block's instructions (see the `jit` note).
    cache: [Option<Cached>; 16],
    /// Guest `xmm`/`ymm` registers held in the same host ones.
    xcache: [Option<XCached>; 16],
    /// The host's `ymm` upper halves may be dirty (a 256-bit instruction ran since the
    /// last `vzeroupper`): every way out of the block's code issues one first.
    upper: bool,
    /// The host's MXCSR is the guest's (`fp_enter`).
    fp: bool,
    /// The status flags that may be read from instruction `k` on (`live[k]`; `live[n]`:
    /// after the block).
    live: Vec<u32>,
    /// Host address of the chaining table (`Jit::table`), for direct exits.
    table: u64,
    /// The guest memory access of each of the block's instructions, for `group`.
    steps: Vec<Step>,
    /// Ranges of guest memory checked at once (`group`), still valid.
    groups: Vec<Group>,
    /// Direct exits: (index in `a` of the `mov rax, target` starting the lookup, target).
    sites: Vec<(usize, u64)>,
    /// The inner head of a block that loops inside its code (`loop_head`).
    head: Option<Head>,
    /// It translates a unit of several blocks (`Part`).
    unit: bool,
}

/// The inner head of a self-looping block (`Emitter::loop_head`): where its back edge
/// goes once the budget covers another round, and the emitter's state there, which the
/// back edge restores (`Emitter::back_edge`). Every guest register the block uses is
/// cached there, counted as changed (a way out from any round stores it); the status
/// flags are in `Cpu::rflags` as far as the block reads them before writing them
/// (`live[0]`); no group check holds.
#[derive(Clone, Copy)]
struct Head {
    label: CodeLabel,
    cache: [Option<Cached>; 16],
    xcache: [Option<XCached>; 16],
    /// The host's MXCSR is the guest's (the block has SSE floating point).
    fp: bool,
    /// The host's `ymm` upper halves may be dirty (`Emitter::upper`).
    upper: bool,
    /// A back edge to the head was emitted.
    closed: bool,
}

/// The memory access of a guest instruction, as far as `group` looks ahead.
#[derive(Clone, Copy, Default)]
struct Step {
    /// An access at `key` + `disp` (64-bit addressing, no fs/gs), `size` bytes, the way
    /// `plain` or `push_pop` would make it: (key, disp, size, need).
    access: Option<(Key, i64, u64, Need)>,
    /// `push` (-8) or `pop` (+8) of a register other than `rsp`: what it adds to `rsp`.
    stack: i64,
    /// Guest registers it writes (bit per register number), `rsp` not for `push`/`pop`.
    writes: u32,
    /// `plain` or `push_pop` may emit it (anything else ends a look-ahead).
    covered: bool,
}

/// Guest memory `[V + lo, V + hi)` checked for `read`/`write`, where `V` is the value
/// of `key`'s address when it was checked and it is now `V + delta` (`push` and `pop`
/// move `rsp`).
#[derive(Clone, Copy)]
struct Group {
    key: Key,
    delta: i64,
    lo: i64,
    hi: i64,
    read: bool,
    write: bool,
}

/// Changed cached guest registers: (guest register number, host register); a host
/// `ymm` register stands for the upper half of the guest's (`store_any`).
type Dirty = Vec<(usize, Register)>;

/// A guest vector register held in the host register of the same number: its bits
/// 127:0 always, its bits 255:128 when `wide` (else they are in `Cpu::ymm_hi` and the
/// host's are anything).
#[derive(Clone, Copy, PartialEq, Eq)]
struct XCached {
    wide: bool,
    /// Bits 127:0 written since loaded (`Cpu::xmm` holds an older value).
    lo: bool,
    /// Bits 255:128 written since loaded (only when `wide`).
    hi: bool,
}

/// How one instruction uses guest vector register `n`: the bits it needs in the host
/// register (0: none, it writes all of it; 128; 256) and the bits it writes (0; 128: a
/// legacy SSE write, which keeps bits 255:128; 256: a VEX write, which zeroes them
/// above a 128-bit result).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct XUse {
    n: usize,
    reads: u16,
    writes: u16,
}

/// A guest register held in a host register.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Cached {
    guest: usize,
    /// Written since it was loaded: `Cpu::gpr` holds an older value.
    dirty: bool,
}

/// The guest-to-host register assignment of one instruction.
struct Map {
    host: [Register; 16],
    used: Vec<usize>,
    /// The used guest registers whose value the instruction needs (the others it only
    /// writes whole).
    loads: Vec<usize>,
    written: Vec<usize>,
    /// The guest vector registers it uses.
    xregs: Vec<XUse>,
}

impl Map {
    fn reg(&self, guest: Register) -> Emit<Register> {
        let full = guest.full_register();
        let n = full.number();
        let h = self.host[n];
        if h == Register::None {
            return Err(Unsupported);
        }
        // The same width of the host register.
        let sized = match guest.size() {
            8 => h,
            4 => Register::EAX + (h.number() as u32),
            2 => Register::AX + (h.number() as u32),
            1 if guest.is_gpr8() && !matches!(guest, Register::AH | Register::CH | Register::DH | Register::BH) => {
                // iced orders AL..BL, AH..BH, SPL..DIL, R8L..R15L.
                match h.number() as u32 {
                    n @ 0..=3 => Register::AL + n,
                    n @ 4..=7 => Register::SPL + (n - 4),
                    n => Register::R8L + (n - 8),
                }
            }
            // `ah`, `ch`, `dh` where the guest register stays in its own host register
            // (the encoder rejects a form that would also need a REX prefix).
            1 if h == full && matches!(guest, Register::AH | Register::CH | Register::DH) => guest,
            _ => return Err(Unsupported),
        };
        Ok(sized)
    }
}

/// Whether the emitter covers `i` as a plain re-encoding (no control transfer).
fn plain(i: &Instruction) -> bool {
    use Mnemonic as M;
    let m = i.mnemonic();
    if i.condition_code() != ConditionCode::None {
        // setcc and cmovcc; jcc, loop and the like are control transfers.
        return i.flow_control() == FlowControl::Next
            && !matches!(
                m,
                M::Fcmovb | M::Fcmove | M::Fcmovbe | M::Fcmovu | M::Fcmovnb | M::Fcmovne | M::Fcmovnbe | M::Fcmovnu
            );
    }
    matches!(
        m,
        M::Mov
            | M::Movzx
            | M::Movsx
            | M::Movsxd
            | M::Lea
            | M::Add
            | M::Or
            | M::Adc
            | M::Sbb
            | M::And
            | M::Sub
            | M::Xor
            | M::Cmp
            | M::Test
            | M::Inc
            | M::Dec
            | M::Neg
            | M::Not
            | M::Shl
            | M::Shr
            | M::Sar
            | M::Rol
            | M::Ror
            | M::Imul
            | M::Mul
            | M::Xchg
            | M::Bswap
            | M::Cbw
            | M::Cwde
            | M::Cdqe
            | M::Cwd
            | M::Cdq
            | M::Cqo
            | M::Andn
            | M::Shlx
            | M::Shrx
            | M::Sarx
            | M::Rorx
            | M::Popcnt
    ) || match m {
        // Bit tests of a register, or of memory at an immediate offset (a register
        // offset addresses memory beyond the operand: `Emitter::bt_at_register_offset`).
        M::Bt | M::Bts | M::Btr | M::Btc => i.op0_kind() == OpKind::Register || i.op1_kind() != OpKind::Register,
        M::Tzcnt | M::Blsr | M::Blsmsk | M::Blsi => std::arch::is_x86_feature_detected!("bmi1"),
        M::Bzhi | M::Pdep | M::Pext => std::arch::is_x86_feature_detected!("bmi2"),
        M::Lzcnt => std::arch::is_x86_feature_detected!("lzcnt"),
        // With a memory destination (written back either way); a register destination
        // is left alone on failure, which the host may not do (zero-extension).
        M::Cmpxchg => i.op0_kind() == OpKind::Memory,
        _ => false,
    }
}

/// The status flags `i` writes whatever its operands (a shift or rotate by a count that
/// turns out zero writes none) to the same values in both tiers, in iced's encoding: not
/// the ones the manuals leave undefined (the interpreter leaves some as they were, as
/// `div` does), except AF after the logic operations (see `flags_undefined`).
fn flags_always_written(i: &Instruction) -> u32 {
    use iced_x86::RflagsBits as F;
    use Mnemonic as M;
    if crate::block::rep_string(i) {
        // `rep cmps`/`scas` write none when `rcx` is zero.
        return 0;
    }
    match i.mnemonic() {
        M::Shl | M::Sal | M::Shr | M::Sar | M::Rol | M::Ror | M::Rcl | M::Rcr | M::Shld | M::Shrd => 0,
        M::And | M::Or | M::Xor | M::Test => (F::CF | F::PF | F::AF | F::ZF | F::SF | F::OF) & STATUS_BITS,
        _ => i.rflags_modified() & !i.rflags_undefined() & STATUS_BITS,
    }
}

/// The status flags the manuals leave undefined after `i` (iced's encoding), for the
/// instructions `plain` covers; a shift or rotate by `cl` counts as by any count.
fn flags_undefined(i: &Instruction) -> u32 {
    use iced_x86::RflagsBits as F;
    use Mnemonic as M;
    let bits = i.op0_register().size().max(i.memory_size().size()) as u32 * 8;
    let count = match i.op1_kind() {
        OpKind::Immediate8 => Some(i.immediate8() as u32 & if bits == 64 { 63 } else { 31 }),
        _ if i.op_count() == 1 => Some(1),
        _ => None,
    };
    match i.mnemonic() {
        // AF: the host clears it, as the interpreter does (`logic_ops_clear_af_on_the_host`).
        M::And | M::Or | M::Xor | M::Test => 0,
        M::Mul | M::Imul => F::SF | F::ZF | F::AF | F::PF,
        M::Shl | M::Sal | M::Shr | M::Sar => match count {
            Some(0) => 0,
            Some(1) => F::AF,
            Some(c) if c < bits => F::AF | F::OF,
            _ => F::AF | F::OF | F::CF,
        },
        M::Rol | M::Ror => match count {
            Some(0 | 1) => 0,
            _ => F::OF,
        },
        M::Andn | M::Blsr | M::Blsmsk | M::Blsi | M::Bzhi => F::AF | F::PF,
        // The interpreter keeps them after bit tests and clears them after `tzcnt` and
        // `lzcnt`; the host's are not defined.
        // Of memory at a register offset they are kept (`Emitter::bt_at_register_offset`).
        M::Bt | M::Bts | M::Btr | M::Btc if i.op0_kind() == OpKind::Memory && i.op1_kind() == OpKind::Register => 0,
        M::Bt | M::Bts | M::Btr | M::Btc | M::Tzcnt | M::Lzcnt => F::OF | F::SF | F::AF | F::PF,
        _ => 0,
    }
}

/// For each instruction of `block`, whether a flag it leaves undefined may be read
/// (later in the block, or after it: `Block::live_out`, the interpreter's own liveness
/// at the block's end), and the status flags that may be read from each instruction on
/// (`n + 1` entries, the last `live_out`). The interpreter picks its own values for
/// undefined flags (see `exec::int`), the host CPU others, so such an instruction is left
/// to the interpreter. Where an undefined flag is not read, the host's value may differ
/// from the interpreter's as an unread flag may anyway (see the module note on status
/// flags).
///
/// In a unit of several parts every flag counts as read at each of its exits (the side
/// exits of its parts' `jcc`s, the way out after its last part): the parts' `live_out`
/// look-ahead may have read pages the unit's first block, whose translation it is, does
/// not depend on, so a change there would not drop the translation.
fn flag_liveness(parts: &[Part<'_>]) -> (Vec<bool>, Vec<u32>) {
    let mut live = match parts {
        [part] => part.block.live_out & STATUS_BITS,
        _ => STATUS_BITS,
    };
    let n = parts.iter().map(|p| p.block.ops.len()).sum();
    let mut out = vec![false; n];
    let mut from = vec![live; n + 1];
    let mut k = n;
    for part in parts.iter().rev() {
        let side_exit =
            part.block.ops.last().is_some_and(|op| op.insn.flow_control() == FlowControl::ConditionalBranch);
        if part.next.is_some() && side_exit {
            live = STATUS_BITS;
        }
        for op in part.block.ops.iter().rev() {
            k -= 1;
            let i = &op.insn;
            out[k] = flags_undefined(i) & live != 0;
            live &= !flags_always_written(i);
            live |= i.rflags_read() & STATUS_BITS;
            from[k] = live;
        }
    }
    (out, from)
}

impl<'m> Emitter<'m> {
    fn new(stubs: Stubs, ips: Vec<u64>, live: Vec<u32>, table: u64, memo: &'m mut Memo) -> Emit<Emitter<'m>> {
        let steps = vec![Step::default(); ips.len()];
        Ok(Emitter {
            a: CodeAssembler::new(64)?,
            memo,
            info: InstructionInfoFactory::new(),
            host_flags: false,
            ctx_flags: true,
            merging: false,
            stubs,
            ips,
            ended: false,
            fallbacks: Vec::new(),
            calls: Vec::new(),
            cache: [None; 16],
            xcache: [None; 16],
            upper: false,
            fp: false,
            live,
            table,
            steps,
            groups: Vec::new(),
            crossings: Vec::new(),
            sites: Vec::new(),
            head: None,
            unit: false,
        })
    }

    fn add(&mut self, i: Emit<Instruction>) -> Emit {
        self.a.add_instruction(i?)?;
        Ok(())
    }

    /// Fails unless `i` encodes (checked before anything of an instruction is emitted).
    fn encodes(&mut self, i: &Instruction) -> Emit {
        if position_free(i) {
            self.memo.encoding(i).ok_or(Unsupported)?;
        } else {
            iced_x86::Encoder::new(64).encode(i, 0)?;
        }
        Ok(())
    }

    /// Adds an instruction made from a guest one: without the guest's address, which
    /// `encode` would take for a label.
    fn add_guest(&mut self, mut i: Instruction) -> Emit {
        i.set_ip(0);
        self.a.add_instruction(i)?;
        Ok(())
    }

    fn load_gpr(&mut self, host: Register, guest: usize) -> Emit {
        self.add(Instruction::with2(Code::Mov_r64_rm64, host, gpr_slot(guest)).map_err(Into::into))
    }

    fn store_gpr(&mut self, guest: usize, host: Register) -> Emit {
        self.add(Instruction::with2(Code::Mov_rm64_r64, gpr_slot(guest), host).map_err(Into::into))
    }

    /// Stores a cached guest register (general, `xmm`, or for a host `ymm` register the
    /// upper half of the guest's) to the context block.
    fn store_any(&mut self, guest: usize, host: Register) -> Emit {
        if host.is_xmm() {
            // The VEX form where there is one: a legacy SSE instruction while the host's
            // upper halves are dirty may cost a state transition (see the `jit` note).
            let code = if host_avx2() { Code::VEX_Vmovdqu_xmmm128_xmm } else { Code::Movdqu_xmmm128_xmm };
            self.add(Instruction::with2(code, xmm_slot(guest), host).map_err(Into::into))
        } else if host.is_ymm() {
            let code = Code::VEX_Vextracti128_xmmm128_ymm_imm8;
            self.add(Instruction::with3(code, ymm_hi_slot(guest), host, 1).map_err(Into::into))
        } else {
            self.store_gpr(guest, host)
        }
    }

    /// Loads bits 127:0 of guest vector register `n` into the host's.
    fn load_xmm(&mut self, n: usize) -> Emit {
        let code = if host_avx2() { Code::VEX_Vmovdqu_xmm_xmmm128 } else { Code::Movdqu_xmm_xmmm128 };
        self.add(Instruction::with2(code, Register::XMM0 + n as u32, xmm_slot(n)).map_err(Into::into))
    }

    /// Loads bits 255:128 of guest vector register `n` into the host's.
    fn load_ymm_hi(&mut self, n: usize) -> Emit {
        let y = Register::YMM0 + n as u32;
        let code = Code::VEX_Vinserti128_ymm_ymm_xmmm128_imm8;
        self.add(Instruction::with4(code, y, y, ymm_hi_slot(n), 1).map_err(Into::into))?;
        self.upper = true;
        Ok(())
    }

    /// Issues `vzeroupper` if the host's upper halves may be dirty, before code that
    /// leaves the block's code (see the `jit` note).
    fn clean_upper(&mut self) -> Emit {
        if self.upper {
            self.a.vzeroupper()?;
            self.upper = false;
        }
        Ok(())
    }

    fn mov_imm(&mut self, host: Register, v: u64) -> Emit {
        self.add(Instruction::with2(Code::Mov_r64_imm64, host, v).map_err(Into::into))
    }

    /// Copies the host's status flags into `Cpu::rflags` (clobbers them): `pushf`, its
    /// whole image written there. The host's other flags (DF clear, IF set...) stand in
    /// for the guest's while translated code runs, which reads only the status flags
    /// there (DF from the frame's `FLAGS_REST`); the guest's come back before anything
    /// else sees `Cpu::rflags` (the `leave` stub, `call_op` before its call). Flags not
    /// in `live` (none may read them) then hold the host's, which may differ from the
    /// interpreter's (it keeps an older value), as under its dead-flag elimination.
    /// Neither a merge in place nor a write of part of it: each block stores the flags
    /// at its end (every `ret` counts them as read), and with a merge in place each store
    /// waited for the one before it, through memory; with byte writes (`lahf`'s `ah`, OF
    /// apart) the next 8-byte read of them (`load_cf`, `load_flags`, `merge_flags`)
    /// could not take its value from the writes (a store-forwarding stall). The two
    /// took about a third of the awk loop's samples (step H).
    fn store_flags(&mut self, _live: u32) -> Emit {
        let off = std::mem::offset_of!(Cpu, rflags);
        self.a.pushfq()?;
        self.a.pop(qword_ptr(rbx + off))?;
        self.ctx_flags = true;
        self.host_flags = false;
        Ok(())
    }

    /// Loads the guest's status flags into the host's (only those: the guest's TF, DF
    /// or AC must not reach the host).
    fn load_flags(&mut self) -> Emit {
        let off = std::mem::offset_of!(Cpu, rflags);
        self.a.mov(rbp, qword_ptr(rbx + off))?;
        self.a.and(rbp, STATUS as i32)?;
        self.a.or(rbp, 2)?;
        self.a.push(rbp)?;
        self.a.popfq()?;
        self.host_flags = true;
        Ok(())
    }

    /// Loads the guest's CF into the host's, the other host flags undefined (so
    /// `host_flags` stays as it was): for an instruction that needs no other, as `inc`
    /// and `dec` keeping CF, `adc`, `setc`. `popf` cost 5 % of the awk loop before `dec`s.
    fn load_cf(&mut self) -> Emit {
        let off = std::mem::offset_of!(Cpu, rflags);
        self.a.bt(qword_ptr(rbx + off), crate::cpu::flags::CF.trailing_zeros())?;
        Ok(())
    }

    /// Makes sure `Cpu::rflags` holds the status flags in `live` (those that may be read
    /// later) before something that clobbers the host flags or may leave. Dead ones may
    /// keep an older value there, as under the interpreter's dead-flag elimination.
    fn sync_flags(&mut self, live: u32) -> Emit {
        if !self.ctx_flags {
            if live != 0 {
                self.store_flags(live)?;
            } else {
                self.ctx_flags = true;
            }
        }
        Ok(())
    }

    /// The host register `POOL` holds guest register `g` in, if any.
    fn cached_at(&self, g: usize) -> Option<usize> {
        POOL.iter().map(|r| r.number()).find(|&h| self.cache[h].is_some_and(|c| c.guest == g))
    }

    /// Empties host register `h` of the cache, storing its guest register if changed.
    fn evict(&mut self, h: usize) -> Emit {
        if let Some(c) = self.cache[h].take() {
            if c.dirty {
                self.store_gpr(c.guest, Register::RAX + h as u32)?;
            }
        }
        Ok(())
    }

    /// Stores every changed cached guest register (they stay cached, unchanged).
    fn flush(&mut self) -> Emit {
        for n in 0..16 {
            let Some(c) = self.xcache[n] else { continue };
            if c.lo {
                self.store_any(n, Register::XMM0 + n as u32)?;
            }
            if c.hi {
                self.store_any(n, Register::YMM0 + n as u32)?;
            }
            // `vzeroupper` below keeps bits 127:0 only.
            let wide = c.wide && !self.upper;
            self.xcache[n] = Some(XCached { wide, lo: false, hi: false });
        }
        self.clean_upper()?;
        for h in POOL.iter().map(|r| r.number()) {
            if let Some(c) = self.cache[h] {
                if c.dirty {
                    self.store_gpr(c.guest, Register::RAX + h as u32)?;
                    self.cache[h] = Some(Cached { dirty: false, ..c });
                }
            }
        }
        Ok(())
    }

    /// Makes the guest's MXCSR the host's before SSE floating-point instruction `k`, if
    /// it is not already: when the guest masks every exception (else the code leaves
    /// for the interpreter, which raises them) and sets no bit outside `MXCSR_MASK`, the
    /// host computes and flags exactly what the interpreter's `fp_run` does (it runs the
    /// same instructions with the guest's rounding, FTZ and DAZ, every exception masked),
    /// and the guest's sticky flags collect in the host's MXCSR until the `leave` stub
    /// or a `run_op` call (`fp_leave`) stores it. The guest's stays in place across
    /// block exits (`FP_ON`: a later block's run finds it there; only those two give
    /// Rust code control, and only a handler changes `Cpu::mxcsr`, so it passed this
    /// test when loaded). Clobbers the host's flags (the caller synchronises them first).
    fn fp_enter(&mut self, k: u32) -> Emit {
        if self.fp {
            return Ok(());
        }
        let mx = std::mem::offset_of!(Cpu, mxcsr);
        let masks = 0x3f << 7;
        let fail = self.fallback(k);
        let mut on = self.a.create_label();
        self.a.cmp(dword_ptr(rsp + FP_ON), 0)?;
        self.a.jne(on)?;
        self.a.mov(ebp, dword_ptr(rbx + mx))?;
        self.a.and(ebp, (!crate::cpu::MXCSR_MASK | masks) as i32)?;
        self.a.cmp(ebp, masks as i32)?;
        self.a.jne(fail)?;
        self.a.ldmxcsr(dword_ptr(rbx + mx))?;
        self.a.mov(dword_ptr(rsp + FP_ON), 1)?;
        self.a.set_label(&mut on)?;
        self.host_flags = false;
        self.fp = true;
        Ok(())
    }

    /// Before a `run_op` call: the guest's MXCSR (with the exception flags raised
    /// meanwhile) back to `Cpu::mxcsr` and the host's in place, if an SSE floating-point
    /// run of this block or an earlier one left it there (`FP_ON`). Clobbers the flags.
    fn fp_leave(&mut self) -> Emit {
        let mx = std::mem::offset_of!(Cpu, mxcsr);
        let mut off = self.a.create_label();
        if !self.fp {
            self.a.cmp(dword_ptr(rsp + FP_ON), 0)?;
            self.a.je(off)?;
        }
        self.a.stmxcsr(dword_ptr(rbx + mx))?;
        self.a.ldmxcsr(dword_ptr(rsp + HOST_MXCSR))?;
        self.a.mov(dword_ptr(rsp + FP_ON), 0)?;
        if !self.fp {
            self.a.set_label(&mut off)?;
        }
        self.fp = false;
        self.host_flags = false;
        Ok(())
    }

    /// The changed cached guest registers and their host registers.
    fn dirty(&self) -> Dirty {
        let xmm = (0..16).flat_map(|n| {
            let c = self.xcache[n];
            let lo = c.filter(|c| c.lo).map(|_| (n, Register::XMM0 + n as u32));
            let hi = c.filter(|c| c.hi).map(|_| (n, Register::YMM0 + n as u32));
            lo.into_iter().chain(hi)
        });
        POOL.iter()
            .filter_map(|&r| self.cache[r.number()].filter(|c| c.dirty).map(|c| (c.guest, r)))
            .chain(xmm)
            .collect()
    }

    /// Brings the registers of `map` into place: evicts what their host registers held,
    /// and loads the guest registers whose values are needed.
    fn bind(&mut self, map: &Map) -> Emit {
        for &g in &map.used {
            let h = map.host[g].number();
            if self.cache[h].is_some_and(|c| c.guest != g) {
                self.evict(h)?;
            }
            if let Some(other) = self.cached_at(g).filter(|&o| o != h) {
                self.evict(other)?;
            }
        }
        for &g in &map.loads {
            let h = map.host[g].number();
            if self.cache[h].is_none() {
                self.load_gpr(map.host[g], g)?;
                self.cache[h] = Some(Cached { guest: g, dirty: false });
            }
        }
        // A guest vector register is loaded as far as the instruction reads it: bits
        // 127:0 first, bits 255:128 when a 256-bit operand reads them.
        for u in &map.xregs {
            let n = u.n;
            if u.reads >= 128 && self.xcache[n].is_none() {
                self.load_xmm(n)?;
                self.xcache[n] = Some(XCached { wide: false, lo: false, hi: false });
            }
            if let Some(c) = self.xcache[n].filter(|c| u.reads == 256 && !c.wide) {
                self.load_ymm_hi(n)?;
                self.xcache[n] = Some(XCached { wide: true, ..c });
            }
        }
        Ok(())
    }

    /// Marks the written registers of `map` as changed in their host registers.
    fn wrote(&mut self, map: &Map) {
        self.groups.retain(|gr| !map.written.iter().any(|&w| gr.key.uses(w)));
        for &g in &map.written {
            self.cache[map.host[g].number()] = Some(Cached { guest: g, dirty: true });
        }
        for u in &map.xregs {
            match (u.writes, self.xcache[u.n]) {
                (256, _) => self.xcache[u.n] = Some(XCached { wide: true, lo: true, hi: true }),
                // Loaded first: legacy SSE reads what it writes (`plain`).
                (128, Some(c)) => self.xcache[u.n] = Some(XCached { lo: true, ..c }),
                _ => {}
            }
        }
    }

    /// Assigns host registers to the guest registers an instruction uses: the same one
    /// for those in `POOL`; for the rest, which must be explicit operands (an implicit
    /// one could not be renamed), the one caching it, else a free one of `POOL`
    /// (preferring empty, then unchanged ones).
    fn plan(&self, used: &[usize], loads: &[usize], written: &[usize], explicit: &[usize]) -> Emit<Map> {
        let mut host = [Register::None; 16];
        let in_pool = |g: usize| POOL.iter().any(|r| r.number() == g);
        let mut taken: Vec<usize> = used.iter().copied().filter(|&g| in_pool(g)).collect();
        for &g in &taken {
            host[g] = Register::RAX + g as u32;
        }
        let others: Vec<usize> = used.iter().copied().filter(|&g| !in_pool(g)).collect();
        for &g in &others {
            if !explicit.contains(&g) {
                return Err(Unsupported);
            }
            if let Some(h) = self.cached_at(g).filter(|h| !taken.contains(h)) {
                host[g] = Register::RAX + h as u32;
                taken.push(h);
            }
        }
        for &g in &others {
            if host[g] != Register::None {
                continue;
            }
            let h = POOL
                .iter()
                .map(|r| r.number())
                .filter(|h| !taken.contains(h))
                .min_by_key(|&h| match self.cache[h] {
                    None => 0,
                    Some(c) if !c.dirty => 1,
                    Some(_) => 2,
                })
                .ok_or(Unsupported)?;
            host[g] = Register::RAX + h as u32;
            taken.push(h);
        }
        Ok(Map { host, used: used.to_vec(), loads: loads.to_vec(), written: written.to_vec(), xregs: Vec::new() })
    }

    /// A label that leaves before instruction `done` to the interpreter, storing the
    /// registers changed so far.
    fn fallback(&mut self, done: u32) -> CodeLabel {
        let fail = self.a.create_label();
        let dirty = self.dirty();
        self.fallbacks.push((fail, done, dirty, self.upper));
        fail
    }

    /// Checks a `size`-byte access at guest address `ADDR`, as `Memory::try_read` /
    /// `try_write` do, except that an access across a page edge is allowed when both
    /// pages allow it (out of line: the host's access reads and writes the bytes the
    /// interpreter's slow path would); on failure leaves with `done` instructions
    /// completed, so the interpreter runs the instruction (and faults, or takes its slow
    /// path).
    fn check(&mut self, size: u64, need: Need, done: u32) -> Emit {
        self.check_access(size, need, done, Edge::Pair)
    }

    /// `check` for an access at the stack (`rsp`, `rbp`): the page-crossing test inline,
    /// the last byte's page out of line (the pair bit fails on the top page of the
    /// stack, whose next page is not mapped).
    fn check_stack(&mut self, size: u64, need: Need, done: u32) -> Emit {
        self.check_access(size, need, done, Edge::Inline)
    }

    /// `check`, failing for an access across a page edge (`rep_string` counts the
    /// elements left in the page).
    fn check_in_page(&mut self, size: u64, need: Need, done: u32) -> Emit {
        self.check_access(size, need, done, Edge::Fail)
    }

    fn check_access(&mut self, size: u64, need: Need, done: u32, edge_kind: Edge) -> Emit {
        let fail = self.fallback(done);
        self.a.cmp(r15, qword_ptr(rsp + LIMIT))?;
        self.a.jae(fail)?;
        // A byte never crosses a page. (Checks were about a third of the shell loop's
        // samples in translated code: each instruction left out counts.)
        if size > 1 && edge_kind == Edge::Inline {
            self.a.mov(ebp, iced_x86::code_asm::r15d)?;
            self.a.and(ebp, (PAGE_SIZE - 1) as i32)?;
            self.a.cmp(ebp, (PAGE_SIZE - size) as i32)?;
            let (edge, mut back) = (self.a.create_label(), self.a.create_label());
            self.a.ja(edge)?;
            self.crossings.push((edge, back, size, need, fail, Edge::Inline));
            self.a.set_label(&mut back)?;
            self.a.mov(rbp, r15)?;
            self.a.shr(rbp, 12)?;
            self.perm_test(need, fail)?;
        } else if size > 1 && edge_kind == Edge::Pair {
            // The bit for the page and the next one together: then the access is allowed
            // wherever it ends (its last byte is on one of them, below the limit: the
            // next page has the bit only when it is below it); else out of line, the
            // page-crossing test and the page's own bit. That code comes back to the
            // `je` with ZF clear (it passed), so it goes on.
            self.a.mov(rbp, r15)?;
            self.a.shr(rbp, 12)?;
            self.ok_test(need, true)?;
            let (edge, mut back) = (self.a.create_label(), self.a.create_label());
            self.a.set_label(&mut back)?;
            self.a.je(edge)?;
            self.crossings.push((edge, back, size, need, fail, Edge::Pair));
        } else {
            self.one_page_test(size, need, fail)?;
        }
        self.host_flags = false;
        Ok(())
    }

    /// Tests the bit translated code reads for `need` (`memory::OK_READ`...: the
    /// `try_read` / `try_write` tests of the permission byte, kept by `Memory`) of guest
    /// page `TMP`, or of it and the next page together (`pair`): ZF set when not allowed.
    fn ok_test(&mut self, need: Need, pair: bool) -> Emit {
        let bit = match (need, pair) {
            (Need::Read, false) => OK_READ,
            (Need::Write, false) => OK_WRITE,
            (Need::ReadWrite, false) => OK_RW,
            (Need::Read, true) => OK_READ2,
            (Need::Write, true) => OK_WRITE2,
            (Need::ReadWrite, true) => OK_RW2,
        };
        self.a.test(byte_ptr(r13 + rbp * 2 + 1), bit as i32)?;
        Ok(())
    }

    /// Tests guest page `TMP` for `need`, as `Memory::try_read` / `try_write` do; to
    /// `fail` when it does not allow the access.
    /// Jumps to `fail` unless the `size` bytes at `ADDR` (`r15`) lie inside one page and
    /// that page allows `need`.
    fn one_page_test(&mut self, size: u64, need: Need, fail: CodeLabel) -> Emit {
        if size > 1 {
            self.a.mov(ebp, iced_x86::code_asm::r15d)?;
            self.a.and(ebp, (PAGE_SIZE - 1) as i32)?;
            self.a.cmp(ebp, (PAGE_SIZE - size) as i32)?;
            self.a.ja(fail)?;
        }
        self.a.mov(rbp, r15)?;
        self.a.shr(rbp, 12)?;
        self.perm_test(need, fail)
    }

    fn perm_test(&mut self, need: Need, fail: CodeLabel) -> Emit {
        self.ok_test(need, false)?;
        self.a.je(fail)?;
        Ok(())
    }

    /// How instruction `k`'s access is checked (see `Group`): by a group check made
    /// earlier in the block (`Covered`), by one made now for it and the accesses after it
    /// at the same register (`Start`), or alone (`Alone`).
    fn plan_access(&self, k: u32) -> Access {
        let Some((key, disp, size, need)) = self.steps[k as usize].access else { return Access::Alone };
        let covered = self.groups.iter().any(|gr| {
            let off = gr.delta + disp;
            gr.key == key
                && gr.lo <= off
                && off + size as i64 <= gr.hi
                && (gr.read || !need.reads())
                && (gr.write || !need.writes())
        });
        if covered {
            return Access::Covered(key, disp);
        }
        let st = &self.steps[k as usize];
        if st.writes & key.regs() != 0 {
            return Access::Alone;
        }
        let (mut lo, mut hi) = (disp, disp + size as i64);
        let (mut read, mut write) = (need.reads(), need.writes());
        let mut members = 1;
        let mut delta = if key.stack() { st.stack } else { 0 };
        for st in &self.steps[k as usize + 1..] {
            if !st.covered || (st.stack != 0 && key.uses(RSP) && !key.stack()) {
                break;
            }
            if let Some((_, d, s, n)) = st.access.filter(|a| a.0 == key) {
                let (l, h) = (lo.min(delta + d), hi.max(delta + d + s as i64));
                if h - l <= GROUP_SPAN {
                    (lo, hi) = (l, h);
                    read |= n.reads();
                    write |= n.writes();
                    members += 1;
                }
            }
            if key.stack() {
                delta += st.stack;
            }
            if st.writes & key.regs() != 0 {
                break;
            }
        }
        if members < 2 {
            return Access::Alone;
        }
        Access::Start(key, disp, Group { key, delta: 0, lo, hi, read, write })
    }

    /// Computes the guest address `key + disp` into `ADDR` (`map` has the key's
    /// registers in place).
    fn key_address(&mut self, key: Key, disp: i64, map: &Map) -> Emit {
        let base = map.reg(Register::RAX + key.base as u32)?;
        let (index, scale) = match key.index {
            Some((x, scale)) => (map.reg(Register::RAX + x as u32)?, scale),
            None => (Register::None, 1),
        };
        let size = if i8::try_from(disp).is_ok() { 1 } else { 8 };
        let m = MemoryOperand::new(base, index, scale, disp, size, false, Register::None);
        self.add(Instruction::with2(Code::Lea_r64_m, ADDR, m).map_err(Into::into))
    }

    /// Checks a group's range (see `Group`) at instruction `k`, its key's registers in
    /// place as `map` has them: as `check` (`check_stack` at `rsp` and `rbp`) checks one
    /// access, for the pages of its first and its last byte (at most `GROUP_SPAN` apart:
    /// no page between); on failure leaves before `k` (the interpreter then runs every
    /// access of the group as its own).
    fn group_check(&mut self, k: u32, map: &Map, group: Group) -> Emit {
        let need = Need::from(group.read, group.write);
        self.key_address(group.key, group.lo, map)?;
        // As one access of the group's span (at most a page: its first and last bytes
        // are on one page or two neighbours).
        let span = (group.hi - group.lo) as u64;
        if matches!(group.key.base, RSP | RBP) {
            self.check_stack(span, need, k)?;
        } else {
            self.check(span, need, k)?;
        }
        self.groups.retain(|gr| gr.key != group.key);
        self.groups.push(group);
        Ok(())
    }

    /// Computes the guest offset of `i`'s memory operand (as `operand::ea_offset`) into
    /// `ADDR`, with guest base and index already in their host registers.
    fn address(&mut self, i: &Instruction, map: &Map, segment: bool) -> Emit {
        let (base, index) = (i.memory_base(), i.memory_index());
        let disp = i.memory_displacement64();
        match base {
            Register::RIP if index == Register::None => self.mov_imm(ADDR, disp)?,
            Register::RIP | Register::EIP => return Err(Unsupported),
            _ if base == Register::None && index == Register::None => self.mov_imm(ADDR, disp)?,
            _ => {
                let addr32 = base.is_gpr32() || index.is_gpr32();
                let hb = if base == Register::None { Register::None } else { map.reg(base)? };
                let hi = if index == Register::None { Register::None } else { map.reg(index)? };
                let scale = i.memory_index_scale();
                let (code, dst, d) = if addr32 {
                    (Code::Lea_r32_m, Register::R15D, disp as u32 as i32 as i64)
                } else {
                    (Code::Lea_r64_m, ADDR, disp as i64)
                };
                if i32::try_from(d).is_err() {
                    return Err(Unsupported);
                }
                let size = if i8::try_from(d).is_ok() {
                    1
                } else if addr32 {
                    4
                } else {
                    8
                };
                let m = MemoryOperand::new(hb, hi, scale, d, size, false, Register::None);
                self.add(Instruction::with2(code, dst, m).map_err(Into::into))?;
            }
        }
        if segment {
            let off = match i.memory_segment() {
                Register::FS => Some(std::mem::offset_of!(Cpu, fs_base)),
                Register::GS => Some(std::mem::offset_of!(Cpu, gs_base)),
                _ => None,
            };
            if let Some(off) = off {
                self.a.mov(rbp, qword_ptr(rbx + off))?;
                self.a.lea(r15, qword_ptr(r15 + rbp))?;
            }
        }
        Ok(())
    }

    /// Emits a call of the interpreter's handler for instruction `k` (`super::run_op`),
    /// for an instruction that cannot leave the block or tell translated code from
    /// interpreted: not a control transfer, a way out of the loop, `popf` (single
    /// steps), `rdtsc`/`rdtscp` (read `Cpu::icount`, which translated code updates only
    /// when it returns), nor the compare of a fused compare-and-branch (its op branches),
    /// nor `enter` (a trap in a handler has the interpreter run the instruction again from
    /// the state the handler left, but `enter` with a nesting level may fault after copying
    /// frame pointers over memory it reads them from, so a second run writes other values:
    /// found by the `jit` fuzz target).
    fn call_op(&mut self, k: u32, op: &Op, fused: bool) -> Emit {
        use Mnemonic as M;
        let i = &op.insn;
        if fused
            || i.flow_control() != FlowControl::Next
            || crate::block::leaves_loop(i)
            || matches!(
                i.mnemonic(),
                M::Popf | M::Popfq | M::Popfd | M::Rdtsc | M::Rdtscp | M::Rdpid | M::Iretq | M::Enter
            )
        {
            return Err(Unsupported);
        }
        self.sync_flags(STATUS_BITS)?;
        self.forget_cache()?;
        self.fp_leave()?;
        self.groups.clear();
        // The handler sees all of `Cpu::rflags` (`store_flags` wrote the host's other
        // flags there).
        let off = std::mem::offset_of!(Cpu, rflags);
        self.a.mov(rbp, qword_ptr(rbx + off))?;
        self.a.and(ebp, STATUS as i32)?;
        self.a.or(rbp, qword_ptr(rsp + FLAGS_REST))?;
        self.a.mov(qword_ptr(rbx + off), rbp)?;
        self.a.mov(rdi, rbx)?;
        self.a.mov(rsi, qword_ptr(rsp))?;
        self.mov_imm(Register::RDX, op as *const Op as u64)?;
        self.mov_imm(Register::RAX, self.stubs.run_op)?;
        self.a.call(rax)?;
        // The handler may have changed flags other than the status ones (`cld`, `std`).
        self.a.mov(rbp, qword_ptr(rbx + off))?;
        self.a.and(rbp, !(STATUS as i32))?;
        self.a.mov(qword_ptr(rsp + FLAGS_REST), rbp)?;
        self.a.test(eax, eax)?;
        let slow = self.a.create_label();
        self.a.jne(slow)?;
        self.calls.push((slow, k));
        self.host_flags = false;
        self.ctx_flags = true;
        Ok(())
    }

    /// Emits guest instruction `k`. Nothing is emitted (and nothing of the guest state
    /// changes) when it returns `Unsupported`.
    fn insn(&mut self, k: u32, i: &Instruction, last: bool, model: CpuModel) -> Emit {
        if !model.executes(i.cpuid_features()) {
            return Err(Unsupported);
        }
        match i.flow_control() {
            FlowControl::Next if plain(i) || sse_plain(i) || sse_fp(i) || avx_plain(i) || avx_fp(i) => self.plain(k, i),
            FlowControl::Next if i.mnemonic() == Mnemonic::Vzeroupper && host_avx2() => self.vzeroupper(),
            FlowControl::Next if i.mnemonic() == Mnemonic::Nop || i.mnemonic() == Mnemonic::Endbr64 => Ok(()),
            FlowControl::Next if matches!(i.code(), Code::Push_r64 | Code::Pop_r64) => self.push_pop(k, i),
            FlowControl::Next if matches!(i.mnemonic(), Mnemonic::Bsf | Mnemonic::Bsr) => self.bsf_bsr(k, i),
            FlowControl::Next
                if matches!(i.mnemonic(), Mnemonic::Bt | Mnemonic::Bts | Mnemonic::Btr | Mnemonic::Btc)
                    && i.op0_kind() == OpKind::Memory
                    && i.op1_kind() == OpKind::Register =>
            {
                self.bt_at_register_offset(k, i)
            }
            FlowControl::Next if i.has_rep_prefix() && i.op0_kind() == OpKind::MemoryESRDI => self.rep_string(k, i),
            FlowControl::Next if matches!(i.mnemonic(), Mnemonic::Div | Mnemonic::Idiv) => self.div(k, i),
            FlowControl::ConditionalBranch
            | FlowControl::UnconditionalBranch
            | FlowControl::Call
            | FlowControl::IndirectBranch
            | FlowControl::IndirectCall
            | FlowControl::Return
                if last =>
            {
                self.branch(k, i)
            }
            _ => Err(Unsupported),
        }
    }

    fn plain(&mut self, k: u32, i: &Instruction) -> Emit {
        let mut mem: Option<(u64, Need)> = None;
        let mut explicit: Vec<usize> = Vec::new();
        for n in 0..i.op_count() {
            match i.op_kind(n) {
                OpKind::Register => {
                    let r = i.op_register(n);
                    if is_vector(r) {
                        continue;
                    }
                    if !r.is_gpr() {
                        return Err(Unsupported);
                    }
                    explicit.push(r.full_register().number());
                }
                OpKind::Memory => {
                    for r in [i.memory_base(), i.memory_index()] {
                        if r.is_gpr() {
                            explicit.push(r.full_register().number());
                        }
                    }
                }
                OpKind::Immediate8
                | OpKind::Immediate16
                | OpKind::Immediate32
                | OpKind::Immediate64
                | OpKind::Immediate8to16
                | OpKind::Immediate8to32
                | OpKind::Immediate8to64
                | OpKind::Immediate32to64 => {}
                _ => return Err(Unsupported),
            }
        }
        let info = self.info.info(i);
        let mut used = Vec::new();
        let mut written = Vec::new();
        let mut loads = Vec::new();
        let vex = i.encoding() == iced_x86::EncodingKind::VEX;
        let mut xregs: Vec<XUse> = Vec::new();
        for u in info.used_registers() {
            let r = u.register();
            if r.is_segment_register() && u.access() == OpAccess::Read {
                // The memory operand's segment: `address` adds an fs/gs base.
                continue;
            }
            if is_vector(r) || r.is_zmm() {
                let (reads, writes) = match u.access() {
                    OpAccess::Read | OpAccess::CondRead => (true, false),
                    OpAccess::Write => (false, true),
                    _ => (true, true),
                };
                // Legacy SSE: loaded whatever the access (a write may keep some bits),
                // written as 128 bits. VEX: a destination is written whole (`zmm` for
                // iced: the bits above a 128-bit result are zeroed), a source read as
                // wide as it is named.
                let (reads, writes) = match (vex, r.size()) {
                    (false, _) => (128, if writes { 128 } else { 0 }),
                    (true, size) => (if reads { (size as u16 * 8).min(256) } else { 0 }, if writes { 256 } else { 0 }),
                };
                let n = r.number();
                match xregs.iter_mut().find(|x| x.n == n) {
                    Some(x) => (x.reads, x.writes) = (x.reads.max(reads), x.writes.max(writes)),
                    None => xregs.push(XUse { n, reads, writes }),
                }
                continue;
            }
            if !r.is_gpr() {
                return Err(Unsupported);
            }
            let g = r.full_register().number();
            if !used.contains(&g) {
                used.push(g);
            }
            if matches!(
                u.access(),
                OpAccess::Write | OpAccess::CondWrite | OpAccess::ReadWrite | OpAccess::ReadCondWrite
            ) && !written.contains(&g)
            {
                written.push(g);
            }
            // A write of 8 or 16 bits keeps the rest; a conditional one all of it.
            // (`cmovcc` counts as reading its destination whatever iced says.)
            let whole_write =
                u.access() == OpAccess::Write && r.size() >= 4 && i.condition_code() == ConditionCode::None;
            if !whole_write && !loads.contains(&g) {
                loads.push(g);
            }
        }
        match info.used_memory() {
            [] => {}
            [m] => {
                let need = match m.access() {
                    OpAccess::Read | OpAccess::CondRead => Need::Read,
                    OpAccess::Write | OpAccess::CondWrite => Need::Write,
                    OpAccess::ReadWrite | OpAccess::ReadCondWrite => Need::ReadWrite,
                    OpAccess::NoMemAccess => {
                        if i.mnemonic() != Mnemonic::Lea {
                            return Err(Unsupported);
                        }
                        Need::Read
                    }
                    _ => return Err(Unsupported),
                };
                if i.mnemonic() != Mnemonic::Lea {
                    let size = i.memory_size().size() as u64;
                    if !matches!(size, 1 | 2 | 4 | 8 | 16 | 32) {
                        return Err(Unsupported);
                    }
                    mem = Some((size, need));
                }
            }
            _ => return Err(Unsupported),
        }
        let mut map = self.plan(&used, &loads, &written, &explicit)?;
        map.xregs = xregs;
        // Rewrite before emitting anything, so an unsupported form emits nothing.
        let mut host = *i;
        for n in 0..i.op_count() {
            if i.op_kind(n) == OpKind::Register && !is_vector(i.op_register(n)) {
                host.set_op_register(n, map.reg(i.op_register(n))?);
            }
        }
        // A `rep` prefix these instructions ignore (mandatory ones belong to the opcode)
        // is not copied: with the registers renamed it may stop being ignored (`f3 94`,
        // `xchg esp, eax`, becomes `f3 41 90` with `rsp` in host `r8`: `pause`).
        host.set_has_rep_prefix(false);
        host.set_has_repne_prefix(false);
        let lea = i.mnemonic() == Mnemonic::Lea;
        let access = if mem.is_some() { self.plan_access(k) } else { Access::Alone };
        // A grouped access at a register and a displacement is made there; one with an
        // index (no third register in an address) or that must be aligned (tested) at
        // `ADDR`, computed from the group's key.
        let at_addr = |key: Key| key.index.is_some() || alignment(i).is_some();
        let grouped = match access {
            Access::Covered(key, disp) | Access::Start(key, disp, _) if !at_addr(key) => Some((key, disp)),
            _ => None,
        };
        if let Some((key, disp)) = grouped {
            // At the group's register (which the group's check covers) and displacement.
            let m = grouped_operand(map.reg(Register::RAX + key.base as u32)?, disp);
            host.set_memory_base(m.base);
            host.set_memory_index(m.index);
            host.set_memory_index_scale(1);
            host.set_memory_displacement64(disp as u64);
            host.set_memory_displ_size(m.displ_size);
            host.set_segment_prefix(Register::None);
        } else if i.op_count() > 0 && (mem.is_some() || lea) {
            if lea {
                host.set_memory_base(ADDR);
                host.set_memory_index(Register::None);
            } else {
                host.set_memory_base(BASE);
                host.set_memory_index(ADDR);
            }
            host.set_memory_index_scale(1);
            host.set_memory_displacement64(0);
            host.set_memory_displ_size(0);
            host.set_segment_prefix(Register::None);
        }
        let read = i.rflags_read() & STATUS_BITS;
        let modified = i.rflags_modified() & STATUS_BITS;
        // The host writes every flag `i` may modify, undefined ones included, except
        // for shifts and rotates (not for a zero count): those keep the others.
        // Those it keeps need the guest's values in the host's flags first, if they may
        // be read later (a dead one may hold anything, see the `jit` note).
        let shift = flags_always_written(i) == 0 && modified != 0;
        let kept = if shift { STATUS_BITS } else { STATUS_BITS & !modified };
        let needs = read | if modified != 0 && !self.merging { kept & self.live[k as usize + 1] } else { 0 };
        // Check the rewritten form encodes before changing anything.
        self.encodes(&host)?;

        let fp = sse_fp(i) || avx_fp(i);
        let covered = matches!(access, Access::Covered(..));
        let align = alignment(i).filter(|_| mem.is_some());
        if (mem.is_some() && (!covered || align.is_some())) || (fp && !self.fp) {
            self.sync_flags(self.live[k as usize])?;
        }
        if fp {
            self.fp_enter(k)?;
        }
        self.bind(&map)?;
        if let Access::Start(.., group) = access {
            self.group_check(k, &map, group)?;
        }
        match access {
            Access::Covered(key, disp) | Access::Start(key, disp, _) => {
                if at_addr(key) {
                    self.key_address(key, disp, &map)?;
                }
            }
            Access::Alone => {
                if let Some((size, need)) = mem {
                    self.address(i, &map, true)?;
                    if matches!(i.memory_base(), Register::RSP | Register::RBP) {
                        self.check_stack(size, need, k)?;
                    } else {
                        self.check(size, need, k)?;
                    }
                } else if lea {
                    self.address(i, &map, false)?;
                }
            }
        }
        if let Some(align) = align {
            let fail = self.fallback(k);
            self.a.test(iced_x86::code_asm::r15b, align as i32 - 1)?;
            self.a.jne(fail)?;
            self.host_flags = false;
        }
        if needs == iced_x86::RflagsBits::CF && !self.host_flags {
            self.load_cf()?;
        } else if needs != 0 && !self.host_flags {
            self.load_flags()?;
        }
        self.add_guest(host)?;
        self.wrote(&map);
        if vex && (0..i.op_count()).any(|n| i.op_kind(n) == OpKind::Register && i.op_register(n).is_ymm()) {
            self.upper = true;
        }
        if modified != 0 {
            self.host_flags = true;
            self.ctx_flags = false;
        }
        Ok(())
    }

    /// `vzeroupper`: the host's own zeroes bits 255:128 of every host register, so those
    /// of the cached guest registers (now wide, their upper halves changed) and the
    /// guest's in `Cpu::ymm_hi` for the others (stored from any host register: all of
    /// their upper halves are zero).
    fn vzeroupper(&mut self) -> Emit {
        self.a.vzeroupper()?;
        self.upper = false;
        for n in 0..16 {
            match self.xcache[n] {
                Some(c) => self.xcache[n] = Some(XCached { wide: true, hi: true, ..c }),
                None => self.store_any(n, Register::YMM0)?,
            }
        }
        Ok(())
    }

    /// `push r64` / `pop r64`.
    fn push_pop(&mut self, k: u32, i: &Instruction) -> Emit {
        let g = i.op0_register().number();
        let push = i.code() == Code::Push_r64;
        let mut used = vec![RSP];
        if g != RSP {
            used.push(g);
        }
        let loads = if push { used.clone() } else { vec![RSP] };
        let map = self.plan(&used, &loads, &used, &used)?;
        let (sp, reg) = (map.host[RSP], map.host[g]);
        let access = self.plan_access(k);
        if !matches!(access, Access::Covered(..)) {
            self.sync_flags(self.live[k as usize])?;
        }
        self.bind(&map)?;
        let mov = |dst, src| Instruction::with2(Code::Mov_r64_rm64, dst, src).map_err(Into::into);
        let lea = |d: i64| {
            Instruction::with2(Code::Lea_r64_m, ADDR, MemoryOperand::with_base_displ(sp, d)).map_err(Into::into)
        };
        let at = MemoryOperand::with_base_index(BASE, ADDR);
        if let Access::Start(_, _, group) = access {
            self.group_check(k, &map, group)?;
        }
        let groups = self.groups.clone();
        if let Access::Covered(..) | Access::Start(..) = access {
            // The group covers `[rsp - 8]` (`push`) or `[rsp]` (`pop`): the access at
            // `rsp` (no `ADDR`), then `rsp` moved, without touching the flags.
            let move_sp = |d: i64| {
                Instruction::with2(Code::Lea_r64_m, sp, MemoryOperand::with_base_displ(sp, d)).map_err(Into::into)
            };
            if push {
                let at = grouped_operand(sp, -8);
                self.add(Instruction::with2(Code::Mov_rm64_r64, at, reg).map_err(Into::into))?;
                self.add(move_sp(-8))?;
            } else {
                self.add(Instruction::with2(Code::Mov_r64_rm64, reg, grouped_operand(sp, 0)).map_err(Into::into))?;
                self.add(move_sp(8))?;
            }
        } else if push {
            self.add(lea(-8))?;
            self.check_stack(8, Need::Write, k)?;
            self.add(Instruction::with2(Code::Mov_rm64_r64, at, reg).map_err(Into::into))?;
            self.add(mov(sp, ADDR))?;
        } else {
            self.add(mov(ADDR, sp))?;
            self.check_stack(8, Need::Read, k)?;
            self.add(
                Instruction::with2(Code::Lea_r64_m, sp, MemoryOperand::with_base_displ(ADDR, 8)).map_err(Into::into),
            )?;
            self.add(Instruction::with2(Code::Mov_r64_rm64, reg, at).map_err(Into::into))?;
        }
        self.wrote(&map);
        // `wrote` dropped the groups of `rsp` and of the register (written as far as the
        // cache knows): `push` changes neither but `rsp` by -8, `pop` its register and
        // `rsp` by +8 (`pop rsp` both, whatever it loads).
        let step = if push { -8 } else { 8 };
        // Other keys with `rsp` are dropped (their address moved).
        self.groups = groups
            .into_iter()
            .filter(|gr| (push || !gr.key.uses(g)) && (gr.key.stack() || !gr.key.uses(RSP)))
            .map(|gr| if gr.key.stack() { Group { delta: gr.delta + step, ..gr } } else { gr })
            .collect();
        Ok(())
    }

    /// `bsf` / `bsr` as the interpreter runs them: a zero source leaves the destination
    /// as it was and sets ZF, keeping the other status flags; else every status flag but
    /// the result's ZF (clear) is cleared. The flags end in `Cpu::rflags`.
    fn bsf_bsr(&mut self, k: u32, i: &Instruction) -> Emit {
        let size = i.op0_register().size();
        let mut used = vec![i.op0_register().full_register().number()];
        let src_mem = i.op1_kind() == OpKind::Memory;
        let regs = if src_mem { [i.memory_base(), i.memory_index()] } else { [i.op1_register(), Register::None] };
        for r in regs.iter().filter(|r| r.is_gpr()) {
            let g = r.full_register().number();
            if !used.contains(&g) {
                used.push(g);
            }
        }
        if !(2..=8).contains(&size) {
            return Err(Unsupported);
        }
        // The destination is loaded: a zero source leaves it as it was.
        let map = self.plan(&used, &used, &used[..1], &used)?;
        let mut host = *i;
        host.set_op0_register(map.reg(i.op0_register())?);
        let test = if src_mem {
            host.set_memory_base(BASE);
            host.set_memory_index(ADDR);
            host.set_memory_index_scale(1);
            host.set_memory_displacement64(0);
            host.set_memory_displ_size(0);
            // The fs/gs base is in `ADDR` already.
            host.set_segment_prefix(Register::None);
            let code = match size {
                2 => Code::Cmp_rm16_imm8,
                4 => Code::Cmp_rm32_imm8,
                _ => Code::Cmp_rm64_imm8,
            };
            Instruction::with2(code, MemoryOperand::with_base_index(BASE, ADDR), 0)?
        } else {
            let src = map.reg(i.op1_register())?;
            host.set_op1_register(src);
            let code = match size {
                2 => Code::Test_rm16_r16,
                4 => Code::Test_rm32_r32,
                _ => Code::Test_rm64_r64,
            };
            Instruction::with2(code, src, src)?
        };
        self.encodes(&host)?;
        self.sync_flags(self.live[k as usize])?;
        self.bind(&map)?;
        if src_mem {
            self.address(i, &map, true)?;
            self.check(size as u64, Need::Read, k)?;
        }
        let off = std::mem::offset_of!(Cpu, rflags);
        let (mut zero, mut done) = (self.a.create_label(), self.a.create_label());
        self.a.add_instruction(test)?;
        self.a.je(zero)?;
        self.add_guest(host)?;
        self.a.and(qword_ptr(rbx + off), !STATUS as i32)?;
        self.a.jmp(done)?;
        self.a.set_label(&mut zero)?;
        self.a.or(qword_ptr(rbx + off), crate::cpu::flags::ZF as i32)?;
        self.a.set_label(&mut done)?;
        self.wrote(&map);
        self.host_flags = false;
        self.ctx_flags = true;
        Ok(())
    }

    /// `bt`/`bts`/`btr`/`btc` of memory at a register offset, as the interpreter runs
    /// them: the offset (signed) picks the word of the operand's size at `ea + (offset >>
    /// log2(bits)) * size`, which is checked as any access; the host's instruction then
    /// takes bit `offset & (bits - 1)` of that word, from `TMP` (so no further
    /// displacement). CF is the bit, the other status flags are kept as the interpreter
    /// keeps them (the manuals leave four undefined, which the host may change): CF goes
    /// from the host's flags into `Cpu::rflags`.
    fn bt_at_register_offset(&mut self, k: u32, i: &Instruction) -> Emit {
        let size = i.memory_size().size() as u32;
        let offset = i.op1_register();
        let (tmp, extend) = match size {
            2 => (Register::BP, Code::Movsx_r64_rm16),
            4 => (Register::EBP, Code::Movsxd_r64_rm32),
            8 => (Register::RBP, Code::Mov_r64_rm64),
            _ => return Err(Unsupported),
        };
        let mut used = Vec::new();
        for r in [i.memory_base(), i.memory_index(), offset] {
            if r.is_gpr() && !used.contains(&r.full_register().number()) {
                used.push(r.full_register().number());
            }
        }
        let map = self.plan(&used, &used, &[], &used)?;
        let host_offset = map.reg(offset)?;
        let mut host = *i;
        host.set_memory_base(BASE);
        host.set_memory_index(ADDR);
        host.set_memory_index_scale(1);
        host.set_memory_displacement64(0);
        host.set_memory_displ_size(0);
        // The fs/gs base is in `ADDR` already.
        host.set_segment_prefix(Register::None);
        host.set_op1_register(tmp);
        self.encodes(&host)?;
        let need = if i.mnemonic() == Mnemonic::Bt { Need::Read } else { Need::ReadWrite };
        self.sync_flags(STATUS_BITS)?;
        self.bind(&map)?;
        self.address(i, &map, true)?;
        let bits = size * 8;
        let sext = Instruction::with2(extend, TMP, host_offset)?;
        self.add(Ok(sext))?;
        self.a.sar(rbp, bits.trailing_zeros())?;
        self.a.shl(rbp, size.trailing_zeros())?;
        self.a.add(r15, rbp)?;
        self.check(u64::from(size), need, k)?;
        self.add(Ok(sext))?;
        self.a.and(ebp, bits as i32 - 1)?;
        self.add_guest(host)?;
        self.merge_flags(crate::cpu::flags::CF, 0)
    }

    /// A bit test, `tzcnt` or `lzcnt` whose flags the manuals leave undefined may be
    /// read: the host's instruction, then its defined flags merged into `Cpu::rflags`
    /// with the others as the interpreter leaves them (kept after bit tests, cleared
    /// after `tzcnt`/`lzcnt`). The awk loop handed `run_op` 50 million `bt [mem], imm`
    /// per run whose undefined flags reached a block's end.
    fn undefined_as_interpreter(&mut self, k: u32, i: &Instruction, last: bool, model: CpuModel) -> Emit {
        use crate::cpu::flags::{CF, ZF};
        let (defined, cleared) = match i.mnemonic() {
            Mnemonic::Bt | Mnemonic::Bts | Mnemonic::Btr | Mnemonic::Btc => (CF, 0),
            Mnemonic::Tzcnt | Mnemonic::Lzcnt => (CF | ZF, STATUS & !(CF | ZF)),
            Mnemonic::Shl | Mnemonic::Sal | Mnemonic::Shr | Mnemonic::Sar if model.executes(i.cpuid_features()) => {
                return self.shift_as_interpreter(i);
            }
            Mnemonic::Mul | Mnemonic::Imul => return self.mul_as_interpreter(k, i, last, model),
            _ => return Err(Unsupported),
        };
        // `Cpu::rflags` holds every guest flag, so the host's need not: the kept ones
        // are taken from there, only the defined ones from the host.
        self.sync_flags(STATUS_BITS)?;
        self.merging = true;
        let done = self.insn(k, i, last, model);
        self.merging = false;
        done?;
        self.merge_flags(defined, cleared)
    }

    /// `mul`/`imul` whose flags the manuals leave undefined (SF, ZF, AF, PF) may be read, as
    /// the interpreter runs it (`exec::int::mul_flags`): the host's multiply for CF and OF,
    /// then SF, ZF and PF of the product's low half (`al`, `ax`, `eax` or `rax` for the
    /// one-operand form, else the destination) from a `test` of a copy of it, AF cleared.
    /// `node`'s compiled `i % 7` (a multiply by a reciprocal) went to `run_op` at every
    /// round: a quarter of a loop's time.
    fn mul_as_interpreter(&mut self, k: u32, i: &Instruction, last: bool, model: CpuModel) -> Emit {
        use crate::cpu::flags::{AF, CF, OF, PF, SF, ZF};
        use iced_x86::code_asm::{bp, bpl};
        let one = i.op_count() == 1;
        let size = i.op0_register().size().max(i.memory_size().size());
        let low = if one { RAX_NUMBER } else { i.op0_register().full_register().number() };
        if !matches!(size, 1 | 2 | 4 | 8) || (!one && !i.op0_register().is_gpr()) {
            return Err(Unsupported);
        }
        self.sync_flags(STATUS_BITS)?;
        self.merging = true;
        let done = self.insn(k, i, last, model);
        self.merging = false;
        done?;
        self.merge_flags(CF | OF, 0)?;
        match self.cached_at(low) {
            Some(h) => {
                let copy = Instruction::with2(Code::Mov_r64_rm64, TMP, Register::RAX + h as u32);
                self.add(copy.map_err(Into::into))?
            }
            None => self.load_gpr(TMP, low)?,
        }
        match size {
            1 => self.a.test(bpl, bpl)?,
            2 => self.a.test(bp, bp)?,
            4 => self.a.test(ebp, ebp)?,
            _ => self.a.test(rbp, rbp)?,
        }
        self.merge_flags(SF | ZF | PF, AF)
    }

    /// `shl`/`shr`/`sar` of a 32- or 64-bit register (by `cl`, 1 or an immediate) whose
    /// flags the manuals leave undefined may be read, as the interpreter runs it
    /// (`exec::int::shift`): the host's shift, then, unless the masked count is zero
    /// (no flag changes), CF, PF, ZF and SF from the host (defined for a count below the
    /// operand's width), AF cleared and OF as the interpreter computes it for every
    /// count (`shl`: the result's top bit xor CF; `shr`: the operand's top bit; `sar`:
    /// clear), merged into `Cpu::rflags`. `gunzip` handed `run_op` 1.03 million `shr
    /// esi, cl` per run whose flags reached a `call`.
    fn shift_as_interpreter(&mut self, i: &Instruction) -> Emit {
        use crate::cpu::flags::{CF, OF, PF, SF, ZF};
        let dst = i.op0_register();
        let size = dst.size();
        if i.op0_kind() != OpKind::Register || !matches!(size, 4 | 8) || !dst.is_gpr() {
            return Err(Unsupported);
        }
        let by_cl = match i.op_count() {
            1 => false,
            2 if i.op1_kind() == OpKind::Register && i.op1_register() == Register::CL => true,
            2 if i.op1_kind() == OpKind::Immediate8 => false,
            _ => return Err(Unsupported),
        };
        let mask = if size == 8 { 63 } else { 31 };
        if !by_cl && i.op_count() == 2 && u32::from(i.immediate8()) & mask == 0 {
            // No flag changes: `plain` covers it (nothing undefined).
            return Err(Unsupported);
        }
        let g = dst.full_register().number();
        let c = Register::RCX.number();
        if by_cl && g == c {
            // The count is gone once the shift ran.
            return Err(Unsupported);
        }
        let used: Vec<usize> = if by_cl { vec![g, c] } else { vec![g] };
        let map = self.plan(&used, &used, &[g], &[g])?;
        let mut host = *i;
        host.set_op0_register(map.reg(dst)?);
        self.encodes(&host)?;
        self.sync_flags(STATUS_BITS)?;
        self.bind(&map)?;
        let h64 = map.host[g];
        // The operand before the shift (for `shr`'s OF).
        self.add(Instruction::with2(Code::Mov_r64_rm64, TMP, h64).map_err(Into::into))?;
        self.add_guest(host)?;
        self.wrote(&map);
        let mut done = self.a.create_label();
        self.a.pushfq()?;
        self.a.pop(r15)?;
        if by_cl {
            self.a.test(iced_x86::code_asm::cl, mask as i32)?;
            self.a.je(done)?;
        }
        self.a.and(r15d, (CF | PF | ZF | SF) as i32)?;
        match i.mnemonic() {
            Mnemonic::Shr => {
                // The operand's top bit, to OF's place.
                if size == 8 {
                    self.a.shr(rbp, 63)?;
                } else {
                    self.a.shr(ebp, 31)?;
                }
                self.a.shl(ebp, OF.trailing_zeros())?;
                self.a.or(r15d, ebp)?;
            }
            Mnemonic::Sar => {}
            _ => {
                // SF (the result's top bit) xor CF, to OF's place.
                self.a.mov(ebp, r15d)?;
                self.a.shr(ebp, SF.trailing_zeros())?;
                self.a.xor(ebp, r15d)?;
                self.a.and(ebp, 1)?;
                self.a.shl(ebp, OF.trailing_zeros())?;
                self.a.or(r15d, ebp)?;
            }
        }
        let off = std::mem::offset_of!(Cpu, rflags);
        self.a.and(qword_ptr(rbx + off), !(STATUS as i32))?;
        self.a.or(qword_ptr(rbx + off), r15)?;
        self.a.set_label(&mut done)?;
        self.a.nop()?;
        self.host_flags = false;
        self.ctx_flags = true;
        Ok(())
    }

    /// After a host instruction that left the guest's `defined` status flags in the
    /// host's, with `Cpu::rflags` holding the others: those merged into `Cpu::rflags`,
    /// `cleared` cleared there.
    fn merge_flags(&mut self, defined: u64, cleared: u64) -> Emit {
        let off = std::mem::offset_of!(Cpu, rflags);
        if defined == crate::cpu::flags::CF {
            // CF alone (bit tests): without `pushf`, which cost the awk loop's hottest
            // block, after its `bt`, about a third of its samples (step H).
            use iced_x86::code_asm::bpl;
            self.a.setb(bpl)?;
            self.a.movzx(ebp, bpl)?;
        } else {
            self.a.pushfq()?;
            self.a.pop(rbp)?;
            self.a.and(ebp, defined as i32)?;
        }
        self.a.and(qword_ptr(rbx + off), !((defined | cleared) as i32))?;
        self.a.or(qword_ptr(rbx + off), rbp)?;
        self.host_flags = false;
        self.ctx_flags = true;
        Ok(())
    }

    /// `rep stos` and `rep movs` going forward with 64-bit addresses, one page at a time
    /// on each side: each run of elements that stays inside the pages of the first
    /// elements, whose accesses `check` allowed, goes through the host's own `rep` at
    /// `base + rdi` (and `base + rsi`); anything else (DF set, a page boundary inside an
    /// element, a failed check) leaves before the instruction with `rcx`, `rsi` and `rdi`
    /// counting the elements done, and the interpreter carries on from there, so faults
    /// and the registers at them are its own. One instruction in both tiers.
    fn rep_string(&mut self, k: u32, i: &Instruction) -> Emit {
        use Mnemonic as M;
        let movs = matches!(i.mnemonic(), M::Movsb | M::Movsw | M::Movsd | M::Movsq);
        let stos = matches!(i.mnemonic(), M::Stosb | M::Stosw | M::Stosd | M::Stosq);
        let size = i.memory_size().size() as u64;
        if !(movs || stos)
            || !matches!(size, 1 | 2 | 4 | 8)
            || (movs && (i.op1_kind() != OpKind::MemorySegRSI || i.memory_segment() != Register::DS))
        {
            return Err(Unsupported);
        }
        let (c, di, si, ax) =
            (Register::RCX.number(), Register::RDI.number(), Register::RSI.number(), Register::RAX.number());
        let (used, written) = if movs { (vec![c, di, si], vec![c, di, si]) } else { (vec![c, di, ax], vec![c, di]) };
        let map = self.plan(&used, &used, &written, &used)?;
        self.sync_flags(self.live[k as usize])?;
        self.bind(&map)?;
        // Changed from here on: the exits store them as they are.
        self.wrote(&map);
        let fail = self.fallback(k);
        // DF, as the frame keeps it (`store_flags`).
        self.a.test(dword_ptr(rsp + FLAGS_REST), crate::cpu::flags::DF as i32)?;
        self.a.jne(fail)?;
        let (mut top, mut end) = (self.a.create_label(), self.a.create_label());
        self.a.set_label(&mut top)?;
        self.a.test(rcx, rcx)?;
        self.a.je(end)?;
        if movs {
            self.a.mov(r15, rsi)?;
            self.check_in_page(size, Need::Read, k)?;
        }
        self.a.mov(r15, rdi)?;
        self.check_in_page(size, Need::Write, k)?;
        // Elements left in the page(s): at least the first.
        let page = PAGE_SIZE as i32;
        self.a.mov(ebp, edi)?;
        self.a.and(ebp, page - 1)?;
        self.a.neg(ebp)?;
        self.a.add(ebp, page)?;
        if movs {
            self.a.mov(r15d, esi)?;
            self.a.and(r15d, page - 1)?;
            self.a.neg(r15d)?;
            self.a.add(r15d, page)?;
            self.a.cmp(ebp, r15d)?;
            self.a.cmova(ebp, r15d)?;
        }
        if size > 1 {
            self.a.shr(ebp, size.trailing_zeros())?;
        }
        self.a.cmp(rbp, rcx)?;
        self.a.cmova(rbp, rcx)?;
        // rcx: this run's elements; r15: those left after it.
        self.a.sub(rcx, rbp)?;
        self.a.mov(r15, rcx)?;
        self.a.mov(rcx, rbp)?;
        self.a.add(rdi, r12)?;
        if movs {
            self.a.add(rsi, r12)?;
        }
        self.add_guest(*i)?;
        self.a.sub(rdi, r12)?;
        if movs {
            self.a.sub(rsi, r12)?;
        }
        self.a.mov(rcx, r15)?;
        self.a.jmp(top)?;
        self.a.set_label(&mut end)?;
        self.host_flags = false;
        Ok(())
    }

    /// Stores the changed cached registers and empties the cache (for code that reads
    /// and writes `Cpu::gpr` itself).
    fn forget_cache(&mut self) -> Emit {
        self.flush()?;
        self.cache = [None; 16];
        self.xcache = [None; 16];
        Ok(())
    }

    /// Leaves the block after `done` instructions for guest address `target` (`None`:
    /// the address is in `rax`), with the flags in `Cpu::rflags`.
    fn exit_to(&mut self, done: u32, target: Option<u64>) -> Emit {
        let live_out = self.live[self.live.len() - 1];
        self.sync_flags(live_out)?;
        self.flush()?;
        let Some(t) = target else {
            self.a.mov(edx, done)?;
            self.a.jmp(self.stubs.chain)?;
            return Ok(());
        };
        // `chain`'s lookup, with the set known: on through the matching slot's `jmp`.
        // Its first instruction, `mov rax, t`, is where `Jit::link` writes a `jmp` to the
        // target's translation while there is one.
        self.a.sub(r14, done as i32)?;
        let mut site = self.a.create_label();
        self.a.set_label(&mut site)?;
        self.sites.push((self.a.instructions().len(), t));
        self.mov_imm(Register::RAX, t)?;
        self.mov_imm(Register::RCX, self.table + (super::set(t) * super::SET_BYTES) as u64)?;
        for w in 0..super::WAYS {
            let mut next = self.a.create_label();
            self.a.cmp(qword_ptr(rcx + 16 * w), rax)?;
            if w + 1 == super::WAYS {
                self.a.jne(self.stubs.leave)?;
            } else {
                self.a.jne(next)?;
            }
            self.a.jmp(qword_ptr(rcx + 16 * w + 8))?;
            if w + 1 < super::WAYS {
                self.a.set_label(&mut next)?;
            }
        }
        Ok(())
    }

    /// Leaves the block before its instruction `k`, to the interpreter.
    fn exit_early(&mut self, k: u32) -> Emit {
        self.sync_flags(STATUS_BITS)?;
        self.flush()?;
        self.a.mov(eax, k)?;
        self.mov_imm(TMP, self.ips[k as usize])?;
        self.a.jmp(self.stubs.early)?;
        Ok(())
    }

    /// Starts the inner loop of a self-looping block (see `Head`), after the budget
    /// check at its entry: the guest's MXCSR into the host's if the block has SSE
    /// floating point (leaving before its first instruction when the guest unmasks an
    /// exception: the interpreter runs it), every guest register the block uses loaded
    /// (a general one outside `POOL` into a `POOL` register the block does not use, if
    /// one is left; a vector one whole, both halves, if a VEX instruction uses it),
    /// then the head.
    fn loop_head(&mut self, ops: &[&Op]) -> Emit {
        let mut gprs: Vec<usize> = Vec::new();
        let mut xmms: Vec<usize> = Vec::new();
        let mut wide: Vec<usize> = Vec::new();
        let mut fp = false;
        for op in ops {
            let i = &op.insn;
            fp |= sse_fp(i) || avx_fp(i);
            let vex = i.encoding() == iced_x86::EncodingKind::VEX;
            if vex && !host_avx2() {
                return Err(Unsupported);
            }
            for u in self.info.info(i).used_registers() {
                let r = u.register();
                let vector = is_vector(r) || r.is_zmm();
                let n = if r.is_gpr() { r.full_register().number() } else { r.number() };
                let lists: &mut [&mut Vec<usize>] = match (r.is_gpr(), vector) {
                    (true, _) => &mut [&mut gprs],
                    (false, true) if vex || !r.is_xmm() => &mut [&mut xmms, &mut wide],
                    (false, true) => &mut [&mut xmms],
                    _ => &mut [],
                };
                for list in lists.iter_mut() {
                    if !list.contains(&n) {
                        list.push(n);
                    }
                }
            }
        }
        if fp {
            self.fp_enter(0)?;
        }
        let in_pool = |g: usize| POOL.iter().any(|r| r.number() == g);
        let mut free = POOL.iter().map(|r| r.number()).filter(|&h| !gprs.contains(&h));
        for &g in &gprs {
            let Some(h) = (if in_pool(g) { Some(g) } else { free.next() }) else { continue };
            self.load_gpr(Register::RAX + h as u32, g)?;
            self.cache[h] = Some(Cached { guest: g, dirty: true });
        }
        for &n in &xmms {
            self.load_xmm(n)?;
            let whole = wide.contains(&n);
            if whole {
                self.load_ymm_hi(n)?;
            }
            self.xcache[n] = Some(XCached { wide: whole, lo: true, hi: whole });
        }
        let mut label = self.a.create_label();
        self.a.set_label(&mut label)?;
        let (cache, xcache, fp, upper) = (self.cache, self.xcache, self.fp, self.upper);
        self.head = Some(Head { label, cache, xcache, fp, upper, closed: false });
        Ok(())
    }

    /// The back edge of a self-looping block after `done` instructions (a round): the
    /// flags its head reads into `Cpu::rflags`, the round's instructions off the budget,
    /// then on to the head if the budget covers another round (registers moved to the
    /// head's places), else out to the run loop as the block's own entry would leave
    /// (for its start, the budget short): counts, preemption points and the state at
    /// every way out are those of a linked exit to itself.
    fn back_edge(&mut self, done: u32) -> Emit {
        let Some(head) = self.head else { return Err(Unsupported) };
        if self.fp != head.fp || (self.upper && !head.upper) {
            return Err(Unsupported);
        }
        // Those a linked exit to the start would store: the head's, and those a way out
        // in a later round (a fault) shows as the interpreter leaves them.
        // (A unit's way out after its last part comes after a whole round, which wrote
        // every flag it writes: its head's are enough.)
        let after = if self.unit { 0 } else { self.live[self.live.len() - 1] };
        self.sync_flags(self.live[0] | after)?;
        self.a.sub(r14, done as i32)?;
        self.a.cmp(r14, done as i32)?;
        let hosts = || POOL.iter().map(|r| r.number());
        // Those changed and not in their place at the head are stored, then those not
        // in their place loaded.
        let stores: Vec<usize> = hosts()
            .filter(|&h| self.cache[h].is_some_and(|c| c.dirty && head.cache[h].map(|w| w.guest) != Some(c.guest)))
            .collect();
        // Vector registers: bits 127:0 and 255:128 apart (the host's upper half is the
        // guest's only where `wide`).
        let xstores: Vec<(usize, Register)> = (0..16)
            .flat_map(|n| {
                let (c, w) = (self.xcache[n], head.xcache[n]);
                let lo = c.is_some_and(|c| c.lo) && w.is_none();
                let hi = c.is_some_and(|c| c.hi) && !w.is_some_and(|w| w.wide);
                let lo = lo.then_some((n, Register::XMM0 + n as u32));
                lo.into_iter().chain(hi.then_some((n, Register::YMM0 + n as u32)))
            })
            .collect();
        let loads: Vec<usize> = hosts()
            .filter(|&h| head.cache[h].is_some_and(|w| self.cache[h].map(|c| c.guest) != Some(w.guest)))
            .collect();
        // (register, bits 127:0, bits 255:128), the lower half first (`vmovdqu` of 128
        // bits zeroes the upper one).
        let xloads: Vec<(usize, bool, bool)> = (0..16)
            .map(|n| {
                let (c, w) = (self.xcache[n], head.xcache[n]);
                let lo = w.is_some() && c.is_none();
                let hi = w.is_some_and(|w| w.wide) && !c.is_some_and(|c| c.wide && !lo);
                (n, lo, hi)
            })
            .filter(|&(_, lo, hi)| lo || hi)
            .collect();
        if stores.is_empty() && xstores.is_empty() && loads.is_empty() && xloads.is_empty() {
            self.a.jae(head.label)?;
        } else {
            let mut out = self.a.create_label();
            self.a.jb(out)?;
            for &h in &stores {
                let guest = self.cache[h].map_or(0, |c| c.guest);
                self.store_gpr(guest, Register::RAX + h as u32)?;
            }
            for &(n, host) in &xstores {
                self.store_any(n, host)?;
            }
            for &h in &loads {
                let guest = head.cache[h].map_or(0, |w| w.guest);
                self.load_gpr(Register::RAX + h as u32, guest)?;
            }
            for &(n, lo, hi) in &xloads {
                if lo {
                    self.load_xmm(n)?;
                }
                if hi {
                    self.load_ymm_hi(n)?;
                }
            }
            self.a.jmp(head.label)?;
            self.a.set_label(&mut out)?;
        }
        self.flush()?;
        self.mov_imm(Register::RAX, self.ips[0])?;
        self.a.jmp(self.stubs.leave)?;
        self.head = Some(Head { closed: true, ..head });
        Ok(())
    }

    /// The last instruction `k` of a part of a unit, which goes on at `next` (the next
    /// part's start): nothing for a direct `jmp` there; a `jcc` leaves for its other side
    /// where its condition says so (a side exit, which stores the changed registers and
    /// the flags on its own path) and goes on otherwise with everything as it was.
    fn go_on(&mut self, k: u32, i: &Instruction, next: u64) -> Emit {
        if !branches(i) {
            return Err(Unsupported);
        }
        self.groups.clear();
        if i.mnemonic() == Mnemonic::Jmp {
            return if i.near_branch_target() == next { Ok(()) } else { Err(Unsupported) };
        }
        let taken_goes_on = i.near_branch_target() == next;
        if !taken_goes_on && i.next_ip() != next {
            return Err(Unsupported);
        }
        let other = if taken_goes_on { i.next_ip() } else { i.near_branch_target() };
        let single = (!self.host_flags).then(|| one_flag(i.condition_code())).flatten();
        if !self.host_flags && single.is_none() {
            self.load_flags()?;
        }
        let mut on = self.a.create_label();
        self.branch_if(i.condition_code(), single, taken_goes_on, on)?;
        self.host_flags = single.is_none();
        let (cache, xcache, fp, upper) = (self.cache, self.xcache, self.fp, self.upper);
        let flags = (self.ctx_flags, self.host_flags);
        self.exit_to(k + 1, Some(other))?;
        self.a.set_label(&mut on)?;
        (self.cache, self.xcache, self.fp, self.upper) = (cache, xcache, fp, upper);
        (self.ctx_flags, self.host_flags) = flags;
        Ok(())
    }

    /// Whether a direct branch to `target` is the back edge of a self-looping block.
    fn is_back_edge(&self, target: u64) -> bool {
        self.head.is_some() && target == self.ips[0]
    }

    /// The block's last instruction: `jcc`, `jmp`, `call` (direct or indirect) and `ret`, each
    /// leaving through `exit_to`.
    fn branch(&mut self, k: u32, i: &Instruction) -> Emit {
        let direct = i.op_count() == 1 && i.op0_kind() == OpKind::NearBranch64;
        let done = k + 1;
        match i.mnemonic() {
            Mnemonic::Jmp if direct && self.is_back_edge(i.near_branch_target()) => self.back_edge(done)?,
            Mnemonic::Jmp if direct => self.exit_to(done, Some(i.near_branch_target()))?,
            _ if matches!(i.code(), Code::Loop_rel8_64_RCX | Code::Jrcxz_rel8_64) => {
                // rcx (less one for `loop`) decides, the flags stay as they are.
                let c = Register::RCX.number();
                let dec = i.mnemonic() == Mnemonic::Loop;
                let written: &[usize] = if dec { &[c] } else { &[] };
                let map = self.plan(&[c], &[c], written, &[c])?;
                self.bind(&map)?;
                if dec {
                    self.a.lea(rcx, qword_ptr(rcx - 1))?;
                    self.wrote(&map);
                }
                self.flush()?;
                let (mut zero, mut nonzero) = (self.a.create_label(), self.a.create_label());
                self.a.jrcxz(zero)?;
                self.a.jmp(nonzero)?;
                self.a.set_label(&mut zero)?;
                let flags = (self.ctx_flags, self.host_flags);
                let (on_zero, on_nonzero) =
                    if dec { (i.next_ip(), i.near_branch_target()) } else { (i.near_branch_target(), i.next_ip()) };
                self.exit_to(done, Some(on_zero))?;
                self.a.set_label(&mut nonzero)?;
                (self.ctx_flags, self.host_flags) = flags;
                self.exit_to(done, Some(on_nonzero))?;
            }
            _ if matches!(i.code(), Code::Loope_rel8_64_RCX | Code::Loopne_rel8_64_RCX) => {
                // rcx less one, then taken when it is not zero and ZF is set (`loope`)
                // or clear (`loopne`); the flags stay as they are.
                let c = Register::RCX.number();
                let map = self.plan(&[c], &[c], &[c], &[c])?;
                if !self.host_flags {
                    self.load_flags()?;
                }
                self.bind(&map)?;
                self.a.lea(rcx, qword_ptr(rcx - 1))?;
                self.wrote(&map);
                self.flush()?;
                let mut not_taken = self.a.create_label();
                self.a.jrcxz(not_taken)?;
                if i.mnemonic() == Mnemonic::Loope {
                    self.a.jne(not_taken)?;
                } else {
                    self.a.je(not_taken)?;
                }
                let flags = (self.ctx_flags, self.host_flags);
                self.exit_to(done, Some(i.near_branch_target()))?;
                self.a.set_label(&mut not_taken)?;
                (self.ctx_flags, self.host_flags) = flags;
                self.exit_to(done, Some(i.next_ip()))?;
            }
            _ if direct && i.flow_control() == FlowControl::ConditionalBranch => {
                if matches!(i.mnemonic(), Mnemonic::Loop | Mnemonic::Loope | Mnemonic::Loopne | Mnemonic::Jrcxz) {
                    return Err(Unsupported);
                }
                // A condition on one flag tests it in `Cpu::rflags` when the host's do
                // not hold the guest's (a `popf` before the `jb` after each `bt` cost 5 %
                // of the awk loop).
                let single = (!self.host_flags).then(|| one_flag(i.condition_code())).flatten();
                if !self.host_flags && single.is_none() {
                    self.load_flags()?;
                }
                let back_taken = self.is_back_edge(i.near_branch_target());
                if back_taken || self.is_back_edge(i.next_ip()) {
                    // The other side: out, with the registers stored; the back edge (taken,
                    // or the fall-through of a unit's test at the top), straight on.
                    let (mut leave, out) =
                        (self.a.create_label(), if back_taken { i.next_ip() } else { i.near_branch_target() });
                    self.branch_if(i.condition_code(), single, !back_taken, leave)?;
                    self.host_flags = single.is_none();
                    let (cache, xcache, fp, upper) = (self.cache, self.xcache, self.fp, self.upper);
                    let flags = (self.ctx_flags, self.host_flags);
                    self.back_edge(done)?;
                    self.a.set_label(&mut leave)?;
                    (self.cache, self.xcache, self.fp, self.upper) = (cache, xcache, fp, upper);
                    (self.ctx_flags, self.host_flags) = flags;
                    self.exit_to(done, Some(out))?;
                    self.ended = true;
                    return Ok(());
                }
                // Both exits store the same registers: once, before the jump.
                self.flush()?;
                let mut taken = self.a.create_label();
                self.branch_if(i.condition_code(), single, true, taken)?;
                let (ctx_flags, host_flags) = (self.ctx_flags, single.is_none());
                self.host_flags = host_flags;
                self.exit_to(done, Some(i.next_ip()))?;
                self.a.set_label(&mut taken)?;
                (self.ctx_flags, self.host_flags) = (ctx_flags, host_flags);
                self.exit_to(done, Some(i.near_branch_target()))?;
            }
            Mnemonic::Call if direct => {
                self.sync_flags(self.live[k as usize])?;
                self.forget_cache()?;
                self.load_gpr(ADDR, RSP)?;
                self.a.lea(r15, qword_ptr(r15 - 8))?;
                self.check_stack_unless_covered(k, Need::Write)?;
                self.mov_imm(TMP, i.next_ip())?;
                self.a.mov(qword_ptr(r12 + r15), rbp)?;
                self.store_gpr(RSP, ADDR)?;
                self.exit_to(done, Some(i.near_branch_target()))?;
            }
            Mnemonic::Ret if i.op_count() == 0 => {
                self.sync_flags(self.live[k as usize])?;
                self.forget_cache()?;
                self.load_gpr(ADDR, RSP)?;
                self.check_stack_unless_covered(k, Need::Read)?;
                self.a.mov(rax, qword_ptr(r12 + r15))?;
                self.a.lea(r15, qword_ptr(r15 + 8))?;
                self.store_gpr(RSP, ADDR)?;
                self.exit_to(done, None)?;
            }
            Mnemonic::Jmp | Mnemonic::Call if i.op_count() == 1 => {
                // Indirect: the target into `rax` (which `check` leaves alone).
                let regs: Vec<usize> = match i.op0_kind() {
                    OpKind::Register if i.op0_register().is_gpr64() => Vec::new(),
                    OpKind::Memory if i.memory_size().size() == 8 => [i.memory_base(), i.memory_index()]
                        .iter()
                        .filter(|r| r.is_gpr())
                        .map(|r| r.full_register().number())
                        .collect(),
                    _ => return Err(Unsupported),
                };
                let map = assign(&regs, &regs)?;
                self.sync_flags(self.live[k as usize])?;
                self.forget_cache()?;
                if i.op0_kind() == OpKind::Register {
                    self.load_gpr(Register::RAX, i.op0_register().number())?;
                } else {
                    for &g in &map.used {
                        self.load_gpr(map.host[g], g)?;
                    }
                    self.address(i, &map, true)?;
                    self.check(8, Need::Read, k)?;
                    self.a.mov(rax, qword_ptr(r12 + r15))?;
                }
                if i.mnemonic() == Mnemonic::Call {
                    self.load_gpr(ADDR, RSP)?;
                    self.a.lea(r15, qword_ptr(r15 - 8))?;
                    if i.op0_kind() == OpKind::Register {
                        self.check_stack_unless_covered(k, Need::Write)?;
                    } else {
                        self.check_stack(8, Need::Write, k)?;
                    }
                    self.mov_imm(TMP, i.next_ip())?;
                    self.a.mov(qword_ptr(r12 + r15), rbp)?;
                    self.store_gpr(RSP, ADDR)?;
                }
                self.exit_to(done, None)?;
            }
            _ => return Err(Unsupported),
        }
        self.ended = true;
        Ok(())
    }

    /// The 8-byte stack access of the `call` or `ret` ending the block (instruction `k`,
    /// at `ADDR`): checked unless a group at `rsp` covers it (`steps` gave the group
    /// planning that access).
    fn check_stack_unless_covered(&mut self, k: u32, need: Need) -> Emit {
        if matches!(self.plan_access(k), Access::Covered(..)) {
            return Ok(());
        }
        self.check_stack(8, need, k)
    }

    /// Jumps to `to` where the guest's condition `cc` holds (`holds`) or where it fails
    /// (`!holds`): on its one flag's bit in `Cpu::rflags` (`single`, from `one_flag`) or
    /// on the host's flags.
    fn branch_if(&mut self, cc: ConditionCode, single: Option<(u64, bool)>, holds: bool, to: CodeLabel) -> Emit {
        match single {
            Some((flag, set)) => {
                self.a.test(dword_ptr(rbx + std::mem::offset_of!(Cpu, rflags)), flag as i32)?;
                if set == holds {
                    self.a.jne(to)?;
                } else {
                    self.a.je(to)?;
                }
                Ok(())
            }
            None => self.jcc(if holds { cc } else { negated(cc) }, to),
        }
    }

    fn jcc(&mut self, cc: ConditionCode, to: CodeLabel) -> Emit {
        use ConditionCode as C;
        let a = &mut self.a;
        match cc {
            C::o => a.jo(to),
            C::no => a.jno(to),
            C::b => a.jb(to),
            C::ae => a.jae(to),
            C::e => a.je(to),
            C::ne => a.jne(to),
            C::be => a.jbe(to),
            C::a => a.ja(to),
            C::s => a.js(to),
            C::ns => a.jns(to),
            C::p => a.jp(to),
            C::np => a.jnp(to),
            C::l => a.jl(to),
            C::ge => a.jge(to),
            C::le => a.jle(to),
            C::g => a.jg(to),
            C::None => return Err(Unsupported),
        }?;
        Ok(())
    }

    /// Ends the code after `covers` instructions: on to the fall-through successor at
    /// `end` when the block ran to its end without a branch, to the interpreter when
    /// instructions are left; then the exits of failed access checks.
    fn finish(&mut self, covers: u32, end: u64) -> Emit {
        if (covers as usize) < self.ips.len() - 1 {
            self.exit_early(covers)?;
        } else if !self.ended {
            self.exit_to(covers, Some(end))?;
        }
        for (mut label, k) in std::mem::take(&mut self.calls) {
            // `run_op` returned 1 (trapped: the interpreter runs it again) or 2 (completed,
            // wrote to decoded code).
            let mut completed = self.a.create_label();
            self.a.set_label(&mut label)?;
            self.a.cmp(eax, 1)?;
            self.a.jne(completed)?;
            self.a.mov(eax, k)?;
            self.mov_imm(TMP, self.ips[k as usize])?;
            self.a.jmp(self.stubs.early)?;
            self.a.set_label(&mut completed)?;
            self.a.mov(eax, k + 1)?;
            self.mov_imm(TMP, self.ips[k as usize + 1])?;
            self.a.jmp(self.stubs.early)?;
        }
        for (mut edge, back, size, need, fail, kind) in std::mem::take(&mut self.crossings) {
            self.a.set_label(&mut edge)?;
            if kind == Edge::Inline {
                // Across a page edge (`check_stack`): the last byte's page, then back.
                // `ADDR` is below the limit (at most 2^47): the sum does not wrap.
                self.a.lea(rbp, qword_ptr(r15 + (size - 1) as i32))?;
                self.a.cmp(rbp, qword_ptr(rsp + LIMIT))?;
                self.a.jae(fail)?;
                self.a.shr(rbp, 12)?;
                self.perm_test(need, fail)?;
                self.a.jmp(back)?;
                continue;
            }
            // The page and the next do not both allow the access (`check`): it fails
            // if it crosses their edge, else as its page says; back to the `je` with ZF
            // clear otherwise.
            self.one_page_test(size, need, fail)?;
            self.a.jmp(back)?;
        }
        for (mut label, done, dirty, upper) in std::mem::take(&mut self.fallbacks) {
            self.a.set_label(&mut label)?;
            for (g, h) in dirty {
                self.store_any(g, h)?;
            }
            self.upper = upper;
            self.clean_upper()?;
            self.a.mov(eax, done)?;
            self.mov_imm(TMP, self.ips[done as usize])?;
            self.a.jmp(self.stubs.early)?;
        }
        Ok(())
    }
}

/// The condition that holds where `cc` does not.
fn negated(cc: ConditionCode) -> ConditionCode {
    use ConditionCode as C;
    match cc {
        C::o => C::no,
        C::no => C::o,
        C::b => C::ae,
        C::ae => C::b,
        C::e => C::ne,
        C::ne => C::e,
        C::be => C::a,
        C::a => C::be,
        C::s => C::ns,
        C::ns => C::s,
        C::p => C::np,
        C::np => C::p,
        C::l => C::ge,
        C::ge => C::l,
        C::le => C::g,
        C::g => C::le,
        C::None => C::None,
    }
}

/// The one flag (its `Cpu::rflags` bit) condition `cc` tests, and whether the condition
/// holds when that flag is set; `None` for the conditions on two or three flags.
fn one_flag(cc: ConditionCode) -> Option<(u64, bool)> {
    use crate::cpu::flags::{CF, OF, PF, SF, ZF};
    use ConditionCode as C;
    Some(match cc {
        C::o => (OF, true),
        C::no => (OF, false),
        C::b => (CF, true),
        C::ae => (CF, false),
        C::e => (ZF, true),
        C::ne => (ZF, false),
        C::s => (SF, true),
        C::ns => (SF, false),
        C::p => (PF, true),
        C::np => (PF, false),
        _ => return None,
    })
}

/// Assigns host registers to the guest registers an instruction uses: the same one for
/// those in `POOL`, a free one from `POOL` for the rest, which must then be explicit
/// operands (an implicit one could not be renamed).
fn assign(used: &[usize], explicit: &[usize]) -> Emit<Map> {
    let mut host = [Register::None; 16];
    let in_pool = |g: usize| POOL.iter().any(|r| r.number() == g);
    let mut free = POOL.iter().copied().filter(|r| !used.contains(&r.number()));
    for &g in used {
        host[g] = if in_pool(g) {
            Register::RAX + g as u32
        } else {
            if !explicit.contains(&g) {
                return Err(Unsupported);
            }
            free.next().ok_or(Unsupported)?
        };
    }
    Ok(Map { host, used: used.to_vec(), loads: used.to_vec(), written: Vec::new(), xregs: Vec::new() })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `encode` resolves labels before and after their branches (`rel32`, and `jrcxz`'s
    /// `rel8`), branches to host addresses outside the code, and returns where labels are;
    /// the bytes decode to the same instructions, branch targets included.
    #[test]
    fn encode_places_labels_and_branches() {
        let ip = 0x7f00_1234_5000u64;
        let far = ip + 0x10_0000;
        let mut a = CodeAssembler::new(64).unwrap();
        let (mut top, mut fwd, mut near) = (a.create_label(), a.create_label(), a.create_label());
        a.set_label(&mut top).unwrap();
        a.mov(rax, qword_ptr(rbx + 8)).unwrap();
        a.jne(fwd).unwrap();
        a.jrcxz(near).unwrap();
        a.jmp(far).unwrap();
        a.set_label(&mut near).unwrap();
        a.add(rax, 1).unwrap();
        for _ in 0..40 {
            a.mov(rcx, 0x1122_3344_5566_7788u64).unwrap(); // past `rel8` reach
        }
        a.jmp(top).unwrap();
        a.set_label(&mut fwd).unwrap();
        a.ret().unwrap();
        let mut guest = Instruction::with1(Code::Push_r64, Register::RDX).unwrap();
        guest.set_ip(2); // a guest address: not a label
        let n = a.instructions().len();
        let (code, at) = encode(a.instructions(), ip, &mut Memo::default()).unwrap();
        let decoded: Vec<Instruction> = iced_x86::Decoder::with_ip(64, &code, ip, 0).into_iter().collect();
        assert_eq!(decoded.len(), n);
        let label = |i: usize| ip + u64::from(at[a.instructions()[i].ip() as usize]);
        assert_eq!(label(0), ip);
        assert_eq!(decoded[1].code(), Code::Jne_rel32_64);
        assert_eq!(decoded[1].near_branch64(), decoded[n - 1].ip());
        assert_eq!(decoded[2].code(), Code::Jrcxz_rel8_64);
        assert_eq!(decoded[2].near_branch64(), decoded[4].ip());
        assert_eq!(decoded[3].near_branch64(), far);
        assert_eq!(decoded[n - 2].near_branch64(), ip);
        assert_eq!(decoded[n - 1].code(), Code::Retnq);
        let mut memo = Memo::default();
        let mut e = Emitter::new(stubs(ip, 0).unwrap().1, vec![0], vec![0], 0, &mut memo).ok().unwrap();
        e.add_guest(guest).ok().unwrap();
        assert_eq!(e.a.instructions()[0].ip(), 0, "a guest address is not kept as a label");
    }

    /// The memo's encodings are the encoder's, also after an instruction that failed to
    /// encode (iced leaves bytes of it in its buffer: they once prefixed the next
    /// encoding, found by the `jit` fuzz target), and a hit gives the same bytes again.
    #[test]
    fn memo_encodings_are_the_encoders() {
        let m = MemoryOperand::with_base_index(Register::R12, Register::R15);
        let bad = Instruction::with2(Code::Add_rm8_r8, m, Register::AH).unwrap();
        let good = [
            Instruction::with2(Code::Cmp_rm64_imm8, Register::R14, 3).unwrap(),
            Instruction::with2(Code::Add_rm8_r8, m, Register::SPL).unwrap(),
            Instruction::with2(Code::Mov_r64_imm64, Register::RAX, 0x1122_3344_5566_7788u64).unwrap(),
        ];
        let mut memo = Memo::default();
        for round in 0..2 {
            for i in &good {
                assert!(memo.encoding(&bad).is_none());
                let mut fresh = iced_x86::Encoder::new(64);
                let len = fresh.encode(i, 0).unwrap();
                let e = memo.encoding(i).unwrap();
                assert_eq!(&e.bytes[..usize::from(e.len)], &fresh.take_buffer()[..len], "{i} in round {round}");
            }
        }
    }

    /// `flags_undefined` counts AF after `and`/`or`/`xor`/`test` as defined: the host
    /// clears it, as the interpreter does. This checks the host.
    #[test]
    fn logic_ops_clear_af_on_the_host() {
        for (a, b) in [(0x13u64, 0x13u64), (0xff, 0x0f), (0, 0), (u64::MAX, 0x10)] {
            let mut f: [u64; 4] = [0; 4];
            // SAFETY: register-only instructions and a balanced push/pop on the stack.
            unsafe {
                std::arch::asm!(
                    "push {all}", "popfq", "mov {t}, {a}", "and {t}, {b}", "pushfq", "pop {f0}",
                    "push {all}", "popfq", "mov {t}, {a}", "or {t}, {b}", "pushfq", "pop {f1}",
                    "push {all}", "popfq", "mov {t}, {a}", "xor {t}, {b}", "pushfq", "pop {f2}",
                    "push {all}", "popfq", "test {a}, {b}", "pushfq", "pop {f3}",
                    all = in(reg) 0x8d7u64, a = in(reg) a, b = in(reg) b, t = out(reg) _,
                    f0 = out(reg) f[0], f1 = out(reg) f[1], f2 = out(reg) f[2], f3 = out(reg) f[3],
                );
            }
            for (k, f) in f.iter().enumerate() {
                assert_eq!(f & crate::cpu::flags::AF, 0, "op {k} on {a:#x}, {b:#x}");
            }
        }
    }
}
