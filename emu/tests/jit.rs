//! The translation tier against the interpreter: random loops of integer instructions
//! (register, immediate and memory forms, fs-relative ones, high byte registers, pushes
//! and pops, bit tests, bit scans and counts, `cmpxchg`, forward branches, `jrcxz`,
//! `loop`, `loope` and `loopne`, direct and indirect calls and jumps, returns, SSE
//! floating point under random MXCSR settings, AVX/AVX2/FMA forms on `ymm` registers (both
//! halves compared; 32-byte accesses across page edges, misaligned `vmovdqa`,
//! `vzeroupper`, legacy SSE mixed in), bit tests at a register offset into memory,
//! instructions translated code runs through the interpreter's handlers (`cmpxchg` to a
//! register, string instructions), `div` (translated, or left to the interpreter where it
//! faults) run under both tiers with
//! the same random budget slices; after every exit the exit, all registers, flags,
//! `rip`, the instruction count and the data pages must agree.
//!
//! `WARDEN_JIT_CASES=N WARDEN_JIT_SEED=S cargo test -p emu --test jit` runs more.

mod common;

use common::Rng;
use emu::{AddressSpace, Cpu, CpuModel, Exit, GuestAddress, Perm, Tier};
use iced_x86::{Code, Encoder, Instruction, MemoryOperand, Register, RepPrefixKind};

const CODE: u64 = 0x10000;
/// Data pages: `DATA..DATA+0x2000` read-write, then a read-only page, then a hole.
const DATA: u64 = 0x20000;
const RO: u64 = DATA + 0x2000;
/// The fs base of the random code.
const FS_BASE: u64 = 0x400;

/// Registers random code writes (rbx, rsi, rdi keep pointing at data; rsp is the stack;
/// r15 counts the loop).
const DEST: [usize; 10] = [0, 1, 2, 5, 8, 9, 10, 11, 12, 13];
const PTR: [usize; 3] = [3, 6, 7];

const SETCC: [Code; 16] = [
    Code::Seto_rm8,
    Code::Setno_rm8,
    Code::Setb_rm8,
    Code::Setae_rm8,
    Code::Sete_rm8,
    Code::Setne_rm8,
    Code::Setbe_rm8,
    Code::Seta_rm8,
    Code::Sets_rm8,
    Code::Setns_rm8,
    Code::Setp_rm8,
    Code::Setnp_rm8,
    Code::Setl_rm8,
    Code::Setge_rm8,
    Code::Setle_rm8,
    Code::Setg_rm8,
];
const CMOVCC: [Code; 16] = [
    Code::Cmovo_r64_rm64,
    Code::Cmovno_r64_rm64,
    Code::Cmovb_r64_rm64,
    Code::Cmovae_r64_rm64,
    Code::Cmove_r64_rm64,
    Code::Cmovne_r64_rm64,
    Code::Cmovbe_r64_rm64,
    Code::Cmova_r64_rm64,
    Code::Cmovs_r64_rm64,
    Code::Cmovns_r64_rm64,
    Code::Cmovp_r64_rm64,
    Code::Cmovnp_r64_rm64,
    Code::Cmovl_r64_rm64,
    Code::Cmovge_r64_rm64,
    Code::Cmovle_r64_rm64,
    Code::Cmovg_r64_rm64,
];

fn r64(n: usize) -> Register {
    Register::RAX + n as u32
}

fn sized(n: usize, size: u32) -> Register {
    match size {
        8 => Register::RAX + n as u32,
        4 => Register::EAX + n as u32,
        2 => Register::AX + n as u32,
        _ if n < 4 => Register::AL + n as u32,
        _ if n < 8 => Register::SPL + (n - 4) as u32,
        _ => Register::R8L + (n - 8) as u32,
    }
}

fn mem(r: &mut Rng) -> MemoryOperand {
    let base = if r.chance(1, 6) { Register::RSP } else { r64(r.pick(&PTR)) };
    // Mostly inside the data, sometimes across a page edge, into the read-only page
    // or beyond.
    let disp: i64 = match r.below(10) {
        0 => 0xffc + r.below(8) as i64,
        1 => 0x1ff8 + r.below(0x20) as i64,
        2 => 0x3000,
        _ => r.below(0x200) as i64 - 0x100,
    };
    if r.chance(1, 6) {
        // fs-relative (fs_base is `FS_BASE`, see `run_case`), with or without a base
        // register; mostly inside the data, where the address without the fs base is too.
        let base = if r.chance(1, 2) { Register::None } else { r64(r.pick(&PTR)) };
        let disp = if base == Register::None { (DATA + 0x400) as i64 + disp.rem_euclid(0x1c00) } else { disp };
        return MemoryOperand::new(base, Register::None, 1, disp - FS_BASE as i64, 4, false, Register::FS);
    }
    if r.chance(1, 5) {
        // An index register holding a small value (r14, see `run_case`).
        MemoryOperand::new(base, Register::R14, r.pick(&[1, 2, 4, 8]), disp, 8, false, Register::None)
    } else {
        MemoryOperand::with_base_displ(base, disp)
    }
}

/// One random instruction that does not transfer control.
fn plain(r: &mut Rng) -> Instruction {
    let size = r.pick(&[8u32, 8, 4, 4, 2, 1]);
    let d = sized(r.pick(&DEST), size);
    let s = sized(r.below(16) as usize, size);
    let alu: [[Code; 4]; 8] = [
        [Code::Add_rm64_r64, Code::Add_rm32_r32, Code::Add_rm16_r16, Code::Add_rm8_r8],
        [Code::Sub_rm64_r64, Code::Sub_rm32_r32, Code::Sub_rm16_r16, Code::Sub_rm8_r8],
        [Code::Adc_rm64_r64, Code::Adc_rm32_r32, Code::Adc_rm16_r16, Code::Adc_rm8_r8],
        [Code::Sbb_rm64_r64, Code::Sbb_rm32_r32, Code::Sbb_rm16_r16, Code::Sbb_rm8_r8],
        [Code::And_rm64_r64, Code::And_rm32_r32, Code::And_rm16_r16, Code::And_rm8_r8],
        [Code::Or_rm64_r64, Code::Or_rm32_r32, Code::Or_rm16_r16, Code::Or_rm8_r8],
        [Code::Xor_rm64_r64, Code::Xor_rm32_r32, Code::Xor_rm16_r16, Code::Xor_rm8_r8],
        [Code::Cmp_rm64_r64, Code::Cmp_rm32_r32, Code::Cmp_rm16_r16, Code::Cmp_rm8_r8],
    ];
    let col = match size {
        8 => 0,
        4 => 1,
        2 => 2,
        _ => 3,
    };
    let imm = r.next() as i32 >> r.below(32);
    let pick = r.below(35);
    let i = match pick {
        0..=4 => Instruction::with2(r.pick(&alu)[col], d, s),
        5 => Instruction::with2(r.pick(&alu)[col], mem(r), s),
        6 => {
            let code = r.pick(&[Code::Add_r64_rm64, Code::Sub_r64_rm64, Code::Xor_r64_rm64, Code::Cmp_r64_rm64]);
            Instruction::with2(code, r64(r.pick(&DEST)), mem(r))
        }
        7 => Instruction::with2(
            r.pick(&[Code::Add_rm64_imm32, Code::And_rm64_imm32, Code::Cmp_rm64_imm32, Code::Sub_rm64_imm32]),
            r64(r.pick(&DEST)),
            imm,
        ),
        8 => {
            let code = r.pick(&[Code::Mov_r64_rm64, Code::Mov_rm64_r64, Code::Mov_r32_rm32, Code::Mov_rm32_r32]);
            let reg = if matches!(code, Code::Mov_r64_rm64 | Code::Mov_rm64_r64) {
                r64(r.pick(&DEST))
            } else {
                sized(r.pick(&DEST), 4)
            };
            if matches!(code, Code::Mov_r64_rm64 | Code::Mov_r32_rm32) {
                Instruction::with2(code, reg, mem(r))
            } else {
                Instruction::with2(code, mem(r), reg)
            }
        }
        9 => {
            let code = r.pick(&[Code::Movzx_r32_rm8, Code::Movsx_r64_rm8, Code::Movzx_r64_rm16, Code::Movsx_r32_rm16]);
            let w = if matches!(code, Code::Movsx_r64_rm8 | Code::Movzx_r64_rm16) { 8 } else { 4 };
            let src = match code {
                Code::Movzx_r64_rm16 | Code::Movsx_r32_rm16 => Register::CX,
                _ if r.chance(1, 2) => Register::CL,
                _ => Register::SIL,
            };
            Instruction::with2(code, sized(r.pick(&DEST), w), src)
        }
        10 => {
            let code = r.pick(&[
                Code::Shl_rm64_imm8,
                Code::Shr_rm32_imm8,
                Code::Sar_rm64_imm8,
                Code::Rol_rm32_imm8,
                Code::Ror_rm64_imm8,
            ]);
            let w = if matches!(code, Code::Shr_rm32_imm8 | Code::Rol_rm32_imm8) { 4 } else { 8 };
            Instruction::with2(code, sized(r.pick(&DEST), w), r.below(70) as u32)
        }
        11 => Instruction::with2(
            r.pick(&[Code::Shl_rm64_CL, Code::Shr_rm64_CL, Code::Sar_rm32_CL, Code::Rol_rm64_CL]),
            r64(r.pick(&[0, 2, 5, 8, 9, 10, 11, 12, 13])),
            Register::CL,
        )
        .map(|mut i| {
            if i.code() == Code::Sar_rm32_CL {
                i.set_op0_register(i.op0_register().full_register32());
            }
            i
        }),
        12 => Instruction::with1(
            r.pick(&[Code::Inc_rm64, Code::Dec_rm64, Code::Neg_rm64, Code::Not_rm64]),
            r64(r.pick(&DEST)),
        ),
        13 => Instruction::with2(Code::Imul_r64_rm64, r64(r.pick(&DEST)), r64(r.below(16) as usize)),
        14 => {
            Instruction::with3(Code::Imul_r32_rm32_imm32, sized(r.pick(&DEST), 4), sized(r.below(16) as usize, 4), imm)
        }
        15 => Instruction::with1(Code::Mul_rm64, r64(r.pick(&DEST))),
        16 => Instruction::with2(
            Code::Lea_r64_m,
            r64(r.pick(&DEST)),
            MemoryOperand::new(r64(r.below(16) as usize), r64(r.pick(&DEST)), 4, imm as i64, 8, false, Register::None),
        ),
        17 => {
            let cc = r.below(16) as usize;
            if r.chance(1, 2) {
                Instruction::with1(SETCC[cc], sized(r.pick(&DEST), 1))
            } else {
                Instruction::with2(CMOVCC[cc], r64(r.pick(&DEST)), r64(r.below(16) as usize))
            }
        }
        18 => Instruction::with1(Code::Push_r64, r64(r.below(16) as usize)),
        19 => Instruction::with1(Code::Pop_r64, r64(r.pick(&DEST))),
        20 => Ok(Instruction::with(r.pick(&[Code::Cqo, Code::Cdqe, Code::Cdq]))),
        21 => Instruction::with2(Code::Xchg_rm64_r64, r64(r.pick(&DEST)), r64(r.pick(&DEST))),
        22 => Instruction::with1(Code::Bswap_r64, r64(r.pick(&DEST))),
        // Bit tests of registers (any offset), of memory at an immediate offset, and of
        // memory at a register offset (beyond the operand).
        23 => {
            let (size, codes) = r.pick(&[
                (8, [Code::Bt_rm64_r64, Code::Bts_rm64_r64, Code::Btr_rm64_r64, Code::Btc_rm64_r64]),
                (4, [Code::Bt_rm32_r32, Code::Bts_rm32_r32, Code::Btr_rm32_r32, Code::Btc_rm32_r32]),
                (2, [Code::Bt_rm16_r16, Code::Bts_rm16_r16, Code::Btr_rm16_r16, Code::Btc_rm16_r16]),
            ]);
            let (d, s) = (sized(r.pick(&DEST), size), sized(r.below(16) as usize, size));
            if r.chance(1, 4) {
                // A small offset, so that the access stays near the data.
                let s = sized(14, size);
                Instruction::with2(r.pick(&codes), mem(r), s)
            } else {
                Instruction::with2(r.pick(&codes), d, s)
            }
        }
        24 => {
            let code = r.pick(&[
                Code::Bt_rm32_imm8,
                Code::Bts_rm32_imm8,
                Code::Btr_rm64_imm8,
                Code::Btc_rm64_imm8,
                Code::Bt_rm16_imm8,
                Code::Bts_rm16_imm8,
                Code::Bt_rm64_imm8,
            ]);
            let bits = match code {
                Code::Btr_rm64_imm8 | Code::Btc_rm64_imm8 | Code::Bt_rm64_imm8 => 8,
                Code::Bt_rm16_imm8 | Code::Bts_rm16_imm8 => 2,
                _ => 4,
            };
            let wide = r.chance(1, 4);
            let imm = r.below(if wide { 256 } else { 64 }) as u32;
            if r.chance(1, 2) {
                Instruction::with2(code, mem(r), imm)
            } else {
                Instruction::with2(code, sized(r.pick(&DEST), bits), imm)
            }
        }
        // Bit scans and counts (zero sources now and then: r15 counts down to zero).
        25 => {
            let (size, codes) = r.pick(&[
                (8, [Code::Tzcnt_r64_rm64, Code::Lzcnt_r64_rm64, Code::Bsf_r64_rm64, Code::Bsr_r64_rm64]),
                (4, [Code::Tzcnt_r32_rm32, Code::Lzcnt_r32_rm32, Code::Bsf_r32_rm32, Code::Bsr_r32_rm32]),
                (2, [Code::Tzcnt_r16_rm16, Code::Popcnt_r16_rm16, Code::Bsf_r16_rm16, Code::Bsr_r16_rm16]),
            ]);
            let d = sized(r.pick(&DEST), size);
            match r.below(4) {
                0 => Instruction::with2(r.pick(&codes), d, mem(r)),
                1 => Instruction::with2(r.pick(&codes), d, sized(15, size)),
                _ => Instruction::with2(r.pick(&codes), d, sized(r.below(16) as usize, size)),
            }
        }
        26 => match r.below(4) {
            0 => Instruction::with2(Code::Cmpxchg_rm64_r64, mem(r), r64(r.pick(&DEST))),
            1 => Instruction::with2(Code::Cmpxchg_rm32_r32, mem(r), sized(r.pick(&DEST), 4)),
            2 => {
                let (code, size) = r.pick(&[(Code::Cmpxchg_rm8_r8, 1), (Code::Cmpxchg_rm16_r16, 2)]);
                Instruction::with2(code, mem(r), sized(r.pick(&DEST), size))
            }
            _ => Instruction::with2(Code::Cmpxchg_rm32_r32, sized(r.pick(&DEST), 4), sized(r.pick(&DEST), 4)),
        },
        // SSE: a general register into xmm0, arithmetic, and back.
        // SSE: general registers and memory into xmm0/xmm1, integer operations, and back
        // (aligned 16-byte operands fault when misaligned).
        27 => {
            let (x0, x1) = (Register::XMM0, Register::XMM1);
            match r.below(12) {
                0 => Instruction::with2(Code::Movq_xmm_rm64, x0, r64(r.pick(&DEST))),
                1 => Instruction::with2(Code::Paddq_xmm_xmmm128, x0, x1),
                2 => Instruction::with2(Code::Movq_rm64_xmm, r64(r.pick(&DEST)), x0),
                3 => Instruction::with2(Code::Movdqu_xmm_xmmm128, x1, mem(r)),
                4 => Instruction::with2(Code::Movdqa_xmmm128_xmm, mem(r), x0),
                5 => Instruction::with2(Code::Paddd_xmm_xmmm128, x0, mem(r)),
                6 => Instruction::with2(Code::Pcmpeqb_xmm_xmmm128, x0, x1),
                7 => Instruction::with2(Code::Pmovmskb_r32_xmm, sized(r.pick(&DEST), 4), x0),
                8 => Instruction::with3(Code::Pshufd_xmm_xmmm128_imm8, x1, x0, r.below(256) as u32),
                9 => Instruction::with3(Code::Pextrw_r32_xmm_imm8, sized(r.pick(&DEST), 4), x1, r.below(8) as u32),
                10 => Instruction::with3(Code::Pinsrw_xmm_r32m16_imm8, x0, sized(r.pick(&DEST), 4), r.below(8) as u32),
                _ => Instruction::with2(Code::Punpcklbw_xmm_xmmm128, x1, x0),
            }
        }
        // 32-bit cmovcc: the destination is zero-extended even when the move is not done.
        28 => Instruction::with2(
            r.pick(&[Code::Cmove_r32_rm32, Code::Cmovne_r32_rm32, Code::Cmovb_r32_rm32, Code::Cmovl_r32_rm32]),
            sized(r.pick(&DEST), 4),
            sized(r.below(16) as usize, 4),
        ),
        // String instructions (rdi and rsi walk through the data pages, then fault).
        29 => {
            if r.chance(1, 2) {
                Instruction::with_stosb(64, RepPrefixKind::None)
            } else {
                Instruction::with_lodsq(64, Register::None, RepPrefixKind::None)
            }
        }
        // SSE floating point on xmm0..xmm3 (random bits: NaNs, denormals, infinities),
        // under the random MXCSR of `run_case`.
        30 => {
            let x = |r: &mut Rng| Register::XMM0 + r.below(4) as u32;
            let (d, s) = (x(r), x(r));
            match r.below(12) {
                0 => Instruction::with2(
                    r.pick(&[
                        Code::Addsd_xmm_xmmm64,
                        Code::Subsd_xmm_xmmm64,
                        Code::Mulsd_xmm_xmmm64,
                        Code::Divsd_xmm_xmmm64,
                        Code::Minsd_xmm_xmmm64,
                        Code::Maxsd_xmm_xmmm64,
                        Code::Sqrtsd_xmm_xmmm64,
                        Code::Cvtsd2ss_xmm_xmmm64,
                    ]),
                    d,
                    s,
                ),
                1 => Instruction::with2(
                    r.pick(&[Code::Addsd_xmm_xmmm64, Code::Mulsd_xmm_xmmm64, Code::Divss_xmm_xmmm32]),
                    d,
                    mem(r),
                ),
                2 => Instruction::with2(
                    r.pick(&[
                        Code::Addps_xmm_xmmm128,
                        Code::Mulpd_xmm_xmmm128,
                        Code::Subps_xmm_xmmm128,
                        Code::Divpd_xmm_xmmm128,
                        Code::Haddpd_xmm_xmmm128,
                        Code::Cvtps2pd_xmm_xmmm64,
                        Code::Cvtdq2ps_xmm_xmmm128,
                        Code::Cvttpd2dq_xmm_xmmm128,
                    ]),
                    d,
                    s,
                ),
                3 => Instruction::with2(Code::Addpd_xmm_xmmm128, d, mem(r)),
                4 => Instruction::with2(
                    r.pick(&[Code::Cvtsi2sd_xmm_rm64, Code::Cvtsi2ss_xmm_rm32]),
                    d,
                    r64(r.below(16) as usize),
                )
                .map(|mut i| {
                    if i.code() == Code::Cvtsi2ss_xmm_rm32 {
                        i.set_op1_register(i.op1_register().full_register32());
                    }
                    i
                }),
                5 => Instruction::with2(
                    r.pick(&[Code::Cvttsd2si_r64_xmmm64, Code::Cvtsd2si_r64_xmmm64]),
                    r64(r.pick(&DEST)),
                    s,
                ),
                6 => Instruction::with2(Code::Cvttss2si_r32_xmmm32, sized(r.pick(&DEST), 4), mem(r)),
                7 => Instruction::with2(
                    r.pick(&[Code::Ucomisd_xmm_xmmm64, Code::Comisd_xmm_xmmm64, Code::Ucomiss_xmm_xmmm32]),
                    d,
                    s,
                ),
                8 => Instruction::with2(Code::Comisd_xmm_xmmm64, d, mem(r)),
                9 => Instruction::with3(
                    r.pick(&[Code::Cmpsd_xmm_xmmm64_imm8, Code::Cmpps_xmm_xmmm128_imm8]),
                    d,
                    s,
                    r.below(8) as u32,
                ),
                10 => Instruction::with3(Code::Roundsd_xmm_xmmm64_imm8, d, s, r.below(16) as u32),
                _ => Instruction::with2(Code::Movq_xmm_rm64, d, r64(r.below(16) as usize)),
            }
        }
        // The high byte registers (rbx points at data: `bh` is only read).
        31 => {
            let h = r.pick(&[Register::AH, Register::CH, Register::DH]);
            let l = r.pick(&[Register::AL, Register::CL, Register::BL, Register::AH, Register::BH, Register::R8L]);
            let imm = imm as u32 & 0xff;
            match r.below(5) {
                0 => Instruction::with2(r.pick(&[Code::Or_rm8_imm8, Code::Xor_rm8_imm8, Code::And_rm8_imm8]), h, imm),
                1 => Instruction::with2(
                    r.pick(&[Code::Test_rm8_imm8, Code::Cmp_rm8_imm8]),
                    r.pick(&[h, Register::BH]),
                    imm,
                ),
                2 => Instruction::with2(
                    Code::Movzx_r32_rm8,
                    sized(r.pick(&[0, 1, 2, 5, 8]), 4),
                    r.pick(&[h, Register::BH]),
                ),
                3 => Instruction::with2(r.pick(&[Code::Xchg_rm8_r8, Code::Add_rm8_r8, Code::Mov_rm8_r8]), h, l),
                _ => Instruction::with2(Code::Mov_r8_rm8, h, mem(r)),
            }
        }
        // AVX/AVX2 (VEX) on ymm0-3 and ymm9: 256- and 128-bit forms (a 128-bit result
        // zeroes bits 255:128), moves to and from memory (32-byte accesses across page
        // edges, aligned moves sometimes misaligned), `vzeroupper`, legacy SSE on the
        // same registers (it keeps bits 255:128), the string compares.
        32 | 33 => vex(r),
        // Not covered by the translator: the translated prefix hands over here.
        _ => Instruction::with1(Code::Div_rm32, sized(r.pick(&DEST), 4)),
    };
    i.unwrap_or_else(|_| Instruction::with(Code::Nopd))
}

/// One random AVX/AVX2 instruction (see `plain`).
fn vex(r: &mut Rng) -> Result<Instruction, iced_x86::IcedError> {
    let regs = [0u32, 1, 2, 3, 9];
    let (y, x) = (Register::YMM0 + r.pick(&regs), Register::XMM0 + r.pick(&regs));
    let (y2, x2) = (Register::YMM0 + r.pick(&regs), Register::XMM0 + r.pick(&regs));
    let y3 = Register::YMM0 + r.pick(&regs);
    // An aligned operand now and then, for the aligned moves.
    let mem = |r: &mut Rng| {
        if r.chance(1, 2) {
            MemoryOperand::with_base_displ(Register::RBX, 32 * r.below(8) as i64)
        } else {
            mem(r)
        }
    };
    let imm = r.below(256) as u32;
    let from_mem = r.chance(1, 3);
    match r.below(22) {
        0 => Instruction::with2(r.pick(&[Code::VEX_Vmovdqu_ymm_ymmm256, Code::VEX_Vmovdqa_ymm_ymmm256]), y, mem(r)),
        1 => Instruction::with2(r.pick(&[Code::VEX_Vmovdqu_ymmm256_ymm, Code::VEX_Vmovdqa_ymmm256_ymm]), mem(r), y),
        2 => Instruction::with2(r.pick(&[Code::VEX_Vmovdqu_xmm_xmmm128, Code::VEX_Vmovaps_xmm_xmmm128]), x, mem(r)),
        3 => {
            let code = r.pick(&[
                Code::VEX_Vpcmpeqb_ymm_ymm_ymmm256,
                Code::VEX_Vpminub_ymm_ymm_ymmm256,
                Code::VEX_Vpor_ymm_ymm_ymmm256,
                Code::VEX_Vpand_ymm_ymm_ymmm256,
                Code::VEX_Vpandn_ymm_ymm_ymmm256,
                Code::VEX_Vpxor_ymm_ymm_ymmm256,
                Code::VEX_Vpaddd_ymm_ymm_ymmm256,
                Code::VEX_Vpshufb_ymm_ymm_ymmm256,
                Code::VEX_Vpcmpgtq_ymm_ymm_ymmm256,
            ]);
            if from_mem {
                Instruction::with3(code, y, y2, mem(r))
            } else {
                Instruction::with3(code, y, y2, y3)
            }
        }
        4 => Instruction::with3(
            r.pick(&[
                Code::VEX_Vpcmpeqb_xmm_xmm_xmmm128,
                Code::VEX_Vpxor_xmm_xmm_xmmm128,
                Code::VEX_Vpminub_xmm_xmm_xmmm128,
                Code::VEX_Vpsubq_xmm_xmm_xmmm128,
            ]),
            x,
            x2,
            Register::XMM0 + r.pick(&regs),
        ),
        5 => Instruction::with2(Code::VEX_Vpmovmskb_r32_ymm, sized(r.pick(&DEST), 4), y),
        6 => Instruction::with2(Code::VEX_Vpmovmskb_r32_xmm, sized(r.pick(&DEST), 4), x),
        7 if r.chance(1, 2) => Instruction::with2(Code::VEX_Vptest_ymm_ymmm256, y, y2),
        7 => Instruction::with2(Code::VEX_Vptest_xmm_xmmm128, x, x2),
        8 => Instruction::with2(r.pick(&[Code::VEX_Vpbroadcastb_ymm_xmmm8, Code::VEX_Vpbroadcastd_ymm_xmmm32]), y, x),
        9 => Instruction::with2(Code::VEX_Vpbroadcastq_ymm_xmmm64, y, mem(r)),
        10 => Instruction::with2(Code::VEX_Vmovd_xmm_rm32, x, sized(r.below(16) as usize, 4)),
        11 => Instruction::with2(Code::VEX_Vmovq_rm64_xmm, r64(r.pick(&DEST)), x),
        12 => Ok(Instruction::with(Code::VEX_Vzeroupper)),
        13 => Instruction::with4(Code::VEX_Vinserti128_ymm_ymm_xmmm128_imm8, y, y2, x, imm & 1),
        14 => Instruction::with3(Code::VEX_Vextracti128_xmmm128_ymm_imm8, mem(r), y, imm & 1),
        15 => Instruction::with3(
            r.pick(&[Code::VEX_Vpermq_ymm_ymmm256_imm8, Code::VEX_Vpshufd_ymm_ymmm256_imm8]),
            y,
            y2,
            imm,
        ),
        16 => {
            let code = r.pick(&[Code::Pcmpistri_xmm_xmmm128_imm8, Code::VEX_Vpcmpistri_xmm_xmmm128_imm8]);
            if from_mem {
                Instruction::with3(code, x, mem(r), imm)
            } else {
                Instruction::with3(code, x, x2, imm)
            }
        }
        // Floating point and FMA (under the random MXCSR of `run_case`).
        17 | 18 => {
            let code = r.pick(&[
                Code::VEX_Vaddps_ymm_ymm_ymmm256,
                Code::VEX_Vmulpd_ymm_ymm_ymmm256,
                Code::VEX_Vdivps_ymm_ymm_ymmm256,
                Code::VEX_Vfmadd231pd_ymm_ymm_ymmm256,
                Code::VEX_Vfnmsub132ps_ymm_ymm_ymmm256,
            ]);
            if from_mem {
                Instruction::with3(code, y, y2, mem(r))
            } else {
                Instruction::with3(code, y, y2, y3)
            }
        }
        20 => Instruction::with4(Code::VEX_Vcmpps_ymm_ymm_ymmm256_imm8, y, y2, y3, imm & 31),
        19 => {
            let code = r.pick(&[
                Code::VEX_Vsqrtsd_xmm_xmm_xmmm64,
                Code::VEX_Vaddss_xmm_xmm_xmmm32,
                Code::VEX_Vfmadd213sd_xmm_xmm_xmmm64,
                Code::VEX_Vcvtsd2ss_xmm_xmm_xmmm64,
            ]);
            Instruction::with3(code, x, x2, Register::XMM0 + r.pick(&regs))
        }
        // Legacy SSE on the same registers: bits 255:128 stay.
        _ => Instruction::with2(r.pick(&[Code::Paddq_xmm_xmmm128, Code::Pxor_xmm_xmmm128]), x, x2),
    }
}

fn encode(i: &Instruction, ip: u64) -> Vec<u8> {
    let mut e = Encoder::new(64);
    match e.encode(i, ip) {
        Ok(_) => e.take_buffer(),
        Err(_) => vec![0x90],
    }
}

fn emit_plain(r: &mut Rng, out: &mut Vec<u8>, ip: u64) {
    if r.chance(1, 60) {
        // A `cmpxchg` that finds what `rax` holds: the exchange is made.
        let m = mem(r);
        let load = Instruction::with2(Code::Mov_r64_rm64, Register::RAX, m).unwrap();
        let xchg = Instruction::with2(Code::Cmpxchg_rm64_r64, m, r64(r.pick(&DEST))).unwrap();
        out.extend(encode(&load, ip));
        out.extend(encode(&xchg, ip));
        return;
    }
    if r.chance(1, 40) {
        // A bit scan or count of zero.
        let (z, size) = (r.pick(&DEST), r.pick(&[8, 4, 2]));
        let code = match size {
            8 => r.pick(&[Code::Bsf_r64_rm64, Code::Bsr_r64_rm64, Code::Tzcnt_r64_rm64, Code::Lzcnt_r64_rm64]),
            4 => r.pick(&[Code::Bsf_r32_rm32, Code::Bsr_r32_rm32, Code::Popcnt_r32_rm32, Code::Lzcnt_r32_rm32]),
            _ => r.pick(&[Code::Bsf_r16_rm16, Code::Bsr_r16_rm16, Code::Tzcnt_r16_rm16]),
        };
        let clear = Instruction::with2(Code::Xor_r32_rm32, sized(z, 4), sized(z, 4)).unwrap();
        let scan = Instruction::with2(code, sized(r.pick(&DEST), size), sized(z, size)).unwrap();
        out.extend(encode(&clear, ip));
        out.extend(encode(&scan, ip));
        return;
    }
    if r.chance(1, 30) {
        // `rep stos` or `rep movs` of a random count (across pages, into the read-only
        // page, sometimes with DF set), with rsi and rdi kept.
        let op = match r.below(6) {
            0 => Instruction::with_rep_stosb(64),
            1 => Instruction::with_rep_stosq(64),
            2 => Instruction::with_rep_stosd(64),
            3 => Instruction::with_rep_movsb(64),
            4 => Instruction::with_rep_movsq(64),
            _ => Instruction::with_rep_movsw(64),
        };
        let count = r.pick(&[0, 1, 5, 0x30, 0x400, 0x900, 0x1100]) + r.below(4);
        let down = r.chance(1, 6);
        let mut seq = vec![
            Instruction::with1(Code::Push_r64, Register::RDI),
            Instruction::with1(Code::Push_r64, Register::RSI),
            Instruction::with2(Code::Mov_r32_imm32, Register::ECX, count as u32),
        ];
        if down {
            seq.push(Ok(Instruction::with(Code::Std)));
        }
        seq.push(op);
        if down {
            seq.push(Ok(Instruction::with(Code::Cld)));
        }
        seq.push(Instruction::with1(Code::Pop_r64, Register::RSI));
        seq.push(Instruction::with1(Code::Pop_r64, Register::RDI));
        for i in seq {
            out.extend(encode(&i.unwrap(), ip));
        }
        return;
    }
    let i = plain(r);
    out.extend(encode(&i, ip));
}

/// A loop: `top: body; dec r15; jnz top; syscall`, where the body has forward `jcc`s and
/// sometimes calls a small function that returns.
fn program(r: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    let n = 4 + r.below(28) as usize;
    // The function: a few instructions and `ret`, placed first (jumped over).
    let func_len = {
        let mut f = Vec::new();
        for _ in 0..r.below(4) {
            let ip = CODE + 5 + f.len() as u64;
            emit_plain(r, &mut f, ip);
        }
        f.push(0xc3);
        f
    };
    out.push(0xe9);
    out.extend((func_len.len() as u32).to_le_bytes());
    out.extend(&func_len);
    let top = out.len();
    let mut pending: Vec<(usize, usize)> = Vec::new(); // (rel8 position, target instruction)
    let mut starts = Vec::new();
    for k in 0..n {
        starts.push(out.len());
        for &(pos, _) in pending.iter().filter(|&&(_, t)| t == k) {
            let rel = out.len() - (pos + 1);
            out[pos] = rel as u8;
        }
        pending.retain(|&(_, t)| t != k);
        match r.below(10) {
            0 => {
                // jcc, sometimes jrcxz, loop, loope or loopne (forward: the loop ends
                // anyway).
                out.push(match r.below(10) {
                    0 => 0xe3,
                    1 => 0xe2,
                    2 => 0xe1,
                    3 => 0xe0,
                    _ => 0x70 + r.below(16) as u8,
                });
                out.push(0);
                let t = (k + 1 + r.below(3) as usize).min(n);
                pending.push((out.len() - 1, t));
            }
            1 => match r.below(4) {
                0 => {
                    let ip = CODE + out.len() as u64;
                    let mut i = Instruction::with_branch(Code::Call_rel32_64, CODE + 5).unwrap();
                    i.set_ip(ip);
                    out.extend(encode(&i, ip));
                }
                // Indirect: `call r10`, `call [rdi+0x80]`, `jmp r10` to the next instruction.
                1 => {
                    out.extend(encode(&Instruction::with2(Code::Mov_r64_imm64, Register::R10, CODE + 5).unwrap(), 0));
                    out.extend(encode(&Instruction::with1(Code::Call_rm64, Register::R10).unwrap(), 0));
                }
                2 => {
                    let slot = MemoryOperand::with_base_displ(Register::RDI, 0x80);
                    out.extend(encode(&Instruction::with2(Code::Mov_r64_imm64, Register::R10, CODE + 5).unwrap(), 0));
                    out.extend(encode(&Instruction::with2(Code::Mov_rm64_r64, slot, Register::R10).unwrap(), 0));
                    out.extend(encode(&Instruction::with1(Code::Call_rm64, slot).unwrap(), 0));
                }
                _ => {
                    // mov r10, imm64 (10 bytes); jmp r10 (3 bytes)
                    let next = CODE + out.len() as u64 + 13;
                    out.extend(encode(&Instruction::with2(Code::Mov_r64_imm64, Register::R10, next).unwrap(), 0));
                    out.extend(encode(&Instruction::with1(Code::Jmp_rm64, Register::R10).unwrap(), 0));
                }
            },
            _ => {
                let ip = CODE + out.len() as u64;
                emit_plain(r, &mut out, ip);
            }
        }
    }
    for &(pos, _) in &pending {
        let rel = out.len() - (pos + 1);
        out[pos] = rel as u8;
    }
    // dec r15; jnz top; syscall
    out.extend([0x49, 0xff, 0xcf]);
    let rel = top as i64 - (out.len() as i64 + 6);
    out.extend([0x0f, 0x85]);
    out.extend((rel as i32).to_le_bytes());
    out.extend([0x0f, 0x05]);
    let _ = starts;
    out
}

fn space(code: &[u8], data: &[u8]) -> AddressSpace {
    let mut s = AddressSpace::new(1 << 24).unwrap();
    s.mem.map(GuestAddress(CODE), 0x2000, Perm::RX).unwrap();
    s.mem.write_raw(GuestAddress(CODE), code).unwrap();
    s.mem.map(GuestAddress(DATA), 0x2000, Perm::RW).unwrap();
    s.mem.write_raw(GuestAddress(DATA), data).unwrap();
    s.mem.map(GuestAddress(RO), 0x1000, Perm::READ).unwrap();
    s
}

fn dump(s: &AddressSpace) -> Vec<u8> {
    let mut v = vec![0; 0x2000];
    s.mem.read_raw(GuestAddress(DATA), &mut v).unwrap();
    v
}

type State = ([u64; 16], u64, u64, u64, [u128; 16], [u128; 16], u32);

fn state(c: &Cpu) -> State {
    (c.gpr, c.rip, c.rflags, c.icount, c.xmm, c.ymm_hi, c.mxcsr)
}

/// Runs `code` from `CODE` in both tiers, translated from its first run, over a fresh
/// space whose data pages hold `data` and a CPU `init` prepares; asserts that the tiers
/// end with the same exit, state and data (`case` names the run) and returns the
/// translated run's exit, statistics and CPU.
fn in_both_tiers_from_the_first_run(
    code: &[u8],
    data: &[u8],
    case: impl std::fmt::Display,
    init: impl Fn(&mut Cpu),
) -> (Exit, emu::JitStats, Cpu) {
    in_both_tiers(code, data, Some(0), case, init)
}

/// `in_both_tiers_from_the_first_run` with the translator's threshold `threshold` (`None`:
/// the default, so hot blocks run in the interpreter first).
fn in_both_tiers(
    code: &[u8],
    data: &[u8],
    threshold: Option<u32>,
    case: impl std::fmt::Display,
    init: impl Fn(&mut Cpu),
) -> (Exit, emu::JitStats, Cpu) {
    in_both_tiers_over(code, data, false, threshold, case, init)
}

/// `in_both_tiers`, with the code's page writable too when `writable` (as a JIT's).
fn in_both_tiers_over(
    code: &[u8],
    data: &[u8],
    writable: bool,
    threshold: Option<u32>,
    case: impl std::fmt::Display,
    init: impl Fn(&mut Cpu),
) -> (Exit, emu::JitStats, Cpu) {
    let mut out = Vec::new();
    let mut last = None;
    for tier in [Tier::Interp, Tier::Jit] {
        let mut s = space(code, data);
        if writable {
            s.mem.protect(GuestAddress(CODE), 0x1000, Perm::RWX).unwrap();
        }
        if let Some(n) = threshold {
            s.set_jit_threshold(n);
        }
        let mut cpu = Cpu::new();
        cpu.tier = tier;
        cpu.rip = CODE;
        init(&mut cpu);
        let exit = cpu.run(&mut s, 1 << 20);
        out.push((format!("{exit:?}"), state(&cpu), dump(&s)));
        last = Some((exit, s.jit_stats(), cpu));
    }
    assert!(out[0] == out[1], "case {case}: the tiers differ: {:x?}", (&out[0].0, &out[1].0, out[0].1, out[1].1));
    last.unwrap()
}

/// Runs one program under both tiers; returns the translator's statistics and the
/// number of instructions that ran.
fn run_case(seed: u64) -> (emu::JitStats, u64) {
    let mut r = Rng::new(seed);
    let code = program(&mut r);
    let data: Vec<u8> = (0..0x2000).map(|_| r.next() as u8).collect();
    let mut cpu = Cpu::new();
    cpu.model = CpuModel::V3;
    for g in 0..16 {
        cpu.gpr[g] = r.next() >> r.below(64);
    }
    cpu.gpr[3] = DATA + 0x100;
    cpu.gpr[6] = DATA + 0x800 + r.below(0x100);
    cpu.gpr[7] = DATA + 0x1000;
    cpu.gpr[4] = DATA + 0x1c00;
    cpu.gpr[14] = r.below(16);
    cpu.fs_base = FS_BASE;
    cpu.gpr[15] = 40;
    cpu.rflags = emu::flags::FIXED | (r.next() & emu::flags::STATUS);
    // Rounding, FTZ and DAZ at random; some exceptions unmasked now and then.
    let unmasked = if r.chance(1, 8) { (r.next() as u32 & 0x3f) << 7 } else { 0 };
    cpu.mxcsr = (0x1f80 & !unmasked) | (r.next() as u32 & 0xe040);
    for x in 0..16 {
        cpu.xmm[x] = (r.next() as u128) << 64 | r.next() as u128;
        cpu.ymm_hi[x] = (r.next() as u128) << 64 | r.next() as u128;
    }
    cpu.rip = CODE;
    let mut a = cpu.clone();
    a.tier = Tier::Interp;
    let mut b = cpu;
    b.tier = Tier::Jit;
    let (mut sa, mut sb) = (space(&code, &data), space(&code, &data));
    for step in 0..200 {
        let slice = if r.chance(1, 3) { 1 + r.below(50) } else { 1 + r.below(5000) };
        let ea = a.run(&mut sa, slice);
        let eb = b.run(&mut sb, slice);
        let ctx = format!("seed {seed:#x} step {step} slice {slice}\n{}", listing(&code));
        assert_eq!(ea, eb, "exit, {ctx}");
        if !matches!(ea, Exit::Syscall(_)) {
            // A status flag no instruction reads before overwriting it may hold an older
            // value under the interpreter (its dead-flag elimination), the architectural
            // one under translated code; the guest cannot read either. Everywhere a
            // flag is read (the system call, every jcc/setcc/adc... in between) they
            // agree, or the registers would not.
            let status = emu::flags::STATUS;
            assert_eq!(a.rflags & !status, b.rflags & !status, "rflags, {ctx}");
            b.rflags = a.rflags;
        }
        assert_eq!(state(&a), state(&b), "state (gpr, rip, rflags, icount, xmm, ymm_hi, mxcsr), {ctx}");
        assert!(dump(&sa) == dump(&sb), "data pages, {ctx}");
        // The MXCSR exception flags are sticky: clear them so that each slice shows what
        // it raised.
        a.mxcsr &= !0x3f;
        b.mxcsr &= !0x3f;
        match ea {
            Exit::BudgetExhausted => {}
            // Past a fault or a #DE, skip the instruction and go on.
            Exit::Syscall(_) => break,
            _ => {
                let Some(len) = decode_len(&code, a.rip) else { break };
                a.rip += len;
                b.rip += len;
            }
        }
    }
    (sb.jit_stats(), b.icount)
}

fn listing(code: &[u8]) -> String {
    use iced_x86::Formatter;
    let mut out = String::new();
    let mut f = iced_x86::IntelFormatter::new();
    for i in iced_x86::Decoder::with_ip(64, code, CODE, iced_x86::DecoderOptions::NONE) {
        out.push_str(&format!("{:x}: ", i.ip()));
        f.format(&i, &mut out);
        out.push('\n');
    }
    out
}

fn decode_len(code: &[u8], rip: u64) -> Option<u64> {
    let off = rip.checked_sub(CODE)? as usize;
    let mut d = iced_x86::Decoder::with_ip(64, code.get(off..)?, rip, iced_x86::DecoderOptions::NONE);
    let i = d.decode();
    (!i.is_invalid()).then(|| i.len() as u64)
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[test]
fn random_loops_agree_with_the_interpreter() {
    let cases = env("WARDEN_JIT_CASES", 400);
    let seed = env("WARDEN_JIT_SEED", 0x17);
    let (mut entries, mut chained, mut instructions) = (0, 0, 0);
    for k in 0..cases {
        let (s, n) = run_case(seed.wrapping_mul(1_000_003).wrapping_add(k));
        entries += s.entries;
        chained += s.chained;
        instructions += n;
    }
    // The test must exercise translated code, not just the interpreter twice, and
    // blocks entered from translated code: through `chain` (returns, indirect jumps and
    // calls), and directly (many instructions for each entry from the run loop).
    assert!(entries > cases * 10, "translated code ran only {entries} times");
    assert!(chained > cases * 10, "translated code chained only {chained} times");
    assert!(instructions > entries * 15, "{instructions} instructions for {entries} entries of translated code");
}

/// `div` leaves the status flags as they were (the interpreter's choice for flags the
/// manuals leave undefined), so a flag written before it and read after it must be
/// computed: the dead-flag analysis once counted `div` as writing them (both tiers).
#[test]
fn flags_written_before_div_and_read_after_it_are_kept() {
    // xor edx, edx; mov ecx, 3; mov eax, 1; cmp eax, 2 (CF = 1); div ecx; setc bl; syscall
    let code =
        [0x31, 0xd2, 0xb9, 3, 0, 0, 0, 0xb8, 1, 0, 0, 0, 0x83, 0xf8, 2, 0xf7, 0xf1, 0x0f, 0x92, 0xc3, 0x0f, 0x05];
    for tier in [Tier::Interp, Tier::Jit] {
        let mut s = space(&code, &[0; 0x2000]);
        let mut cpu = Cpu::new();
        cpu.tier = tier;
        cpu.rip = CODE;
        // Run it often enough for the translator to take the block.
        for _ in 0..40 {
            cpu.rip = CODE;
            cpu.gpr[3] = 0;
            let exit = cpu.run(&mut s, 1000);
            assert!(matches!(exit, Exit::Syscall(_)), "{tier}: {exit:?}");
            assert_eq!(cpu.gpr[3], 1, "{tier}: setc after div reads cmp's CF");
        }
    }
}

/// Direct exits chain: a loop of five blocks joined by `jmp`s and a `jnz` (more than a
/// unit takes, `jit::unit`) runs from the run loop a few times only once translated, with
/// the same count in both tiers.
#[test]
fn direct_exits_chain_without_the_run_loop() {
    use iced_x86::code_asm::*;
    let mut a = CodeAssembler::new(64).unwrap();
    let mut labels: Vec<CodeLabel> = (0..5).map(|_| a.create_label()).collect();
    for k in 0..4 {
        a.set_label(&mut labels[k]).unwrap();
        a.add(rax, 1).unwrap();
        a.jmp(labels[k + 1]).unwrap();
    }
    a.set_label(&mut labels[4]).unwrap();
    a.dec(r15).unwrap();
    a.jnz(labels[0]).unwrap();
    a.syscall().unwrap();
    let code = a.assemble(CODE).unwrap();
    // Same count in both tiers: the helper compares the state, `icount` with it.
    let (exit, st, cpu) = in_both_tiers(&code, &[0; 0x2000], None, "chain", |cpu| cpu.gpr[15] = 10_000);
    assert!(matches!(exit, Exit::Syscall(_)), "{exit:?}");
    assert_eq!(cpu.gpr[0], 40_000);
    assert!(st.blocks_translated >= 5 && st.entries < 20 && st.loop_units == 0, "{st:?}");
}

/// `set_jit_threshold`: at 0 a block is translated the first time it runs; at the default
/// a block that runs once stays in the interpreter.
#[test]
fn threshold_zero_translates_on_the_first_run() {
    // add rax, 1; syscall
    let code = [0x48, 0x83, 0xc0, 0x01, 0x0f, 0x05];
    for (threshold, translated) in [(None, 0), (Some(0), 1)] {
        let mut s = space(&code, &[0; 0x2000]);
        if let Some(n) = threshold {
            s.set_jit_threshold(n);
        }
        let mut cpu = Cpu::new();
        cpu.rip = CODE;
        let exit = cpu.run(&mut s, 100);
        assert!(matches!(exit, Exit::Syscall(_)), "{exit:?}");
        assert_eq!((cpu.gpr[0], s.jit_stats().blocks_translated), (1, translated), "threshold {threshold:?}");
    }
}

/// `enter` with a nesting level, frame pointers read from just below a misaligned `rbp`
/// (overlapping the frame it writes) and a fault at the final stack pointer: the frame is
/// written once, as by the interpreter (translated code used to call its handler, which
/// wrote the frame and trapped, and the interpreter then ran it again over the changed
/// memory). Found by the `jit` fuzz target.
#[test]
fn enter_that_faults_after_writing_its_frame_writes_it_once() {
    // add rax, 1; enter 0x8000, 27; syscall
    let code = [0x48, 0x83, 0xc0, 0x01, 0xc8, 0x00, 0x80, 0x1b, 0x0f, 0x05];
    let data: Vec<u8> = (0..0x2000u32).map(|k| (k * 7 + 3) as u8).collect();
    let (exit, _, _) = in_both_tiers_from_the_first_run(&code, &data, "enter", |cpu| {
        cpu.gpr[4] = DATA + 0x1000;
        cpu.gpr[5] = DATA + 0x1000 - 3;
    });
    assert!(matches!(exit, Exit::PageFault { .. }), "{exit:?}");
}

/// Bit tests (of memory at a register offset too, and where the flags the manuals leave
/// undefined are read), bit scans, `cmpxchg` to memory, high byte registers, `rep stos`,
/// `rep movs`
/// and `loopne` run as translated code (no early exits to the interpreter once hot), with
/// the interpreter's results.
#[test]
fn bit_string_and_loop_instructions_are_translated() {
    use iced_x86::code_asm::*;
    let mut a = CodeAssembler::new(64).unwrap();
    let mut top = a.create_label();
    a.set_label(&mut top).unwrap();
    a.bt(dword_ptr(rdi + 8), 3).unwrap();
    a.adc(rdx, 0).unwrap();
    a.bts(rax, rcx).unwrap();
    a.btc(dword_ptr(rdi + 12), 35).unwrap();
    // At a register offset (negative ones too), of every size.
    a.lea(r11, qword_ptr(rcx - 500)).unwrap();
    a.btc(qword_ptr(rdi + 0x40), r11).unwrap();
    a.adc(rbx, 0).unwrap();
    // ZF is kept.
    a.test(r11b, 2).unwrap();
    a.bt(word_ptr(rdi + 0x60), r11w).unwrap();
    a.sete(r10b).unwrap();
    a.adc(rbx, 0).unwrap();
    a.movzx(r10d, r10b).unwrap();
    a.add(rbx, r10).unwrap();
    // The flags the manuals leave undefined are kept, as the interpreter keeps them.
    a.cmp(r11d, 3).unwrap();
    a.bts(dword_ptr(rdi + 0x70), r11d).unwrap();
    a.setp(r10b).unwrap();
    a.setl(r11b).unwrap();
    a.adc(rbx, 0).unwrap();
    a.movzx(r10d, r10b).unwrap();
    a.add(rbx, r10).unwrap();
    a.movzx(r11d, r11b).unwrap();
    a.add(rbx, r11).unwrap();
    // At an immediate offset too; after `tzcnt` the interpreter clears them.
    a.cmp(edx, 0x3f).unwrap();
    a.bt(dword_ptr(rdi + 8), 5).unwrap();
    a.setp(r10b).unwrap();
    a.sets(r11b).unwrap();
    a.adc(rbx, 0).unwrap();
    a.movzx(r10d, r10b).unwrap();
    a.add(rbx, r10).unwrap();
    a.movzx(r11d, r11b).unwrap();
    a.add(rbx, r11).unwrap();
    a.bsf(r8, rcx).unwrap();
    a.bsr(r9d, dword_ptr(rdi + 8)).unwrap();
    a.cmp(edx, 0x3f).unwrap();
    a.tzcnt(r10, rax).unwrap();
    a.setp(r11b).unwrap();
    a.movzx(r11d, r11b).unwrap();
    a.add(rbx, r11).unwrap();
    a.cmpxchg(qword_ptr(rdi + 16), r8).unwrap();
    a.or(ah, 0x40).unwrap();
    a.movzx(edx, ah).unwrap();
    a.push(rcx).unwrap();
    a.push(rdi).unwrap();
    a.push(rsi).unwrap();
    a.mov(ecx, 0x123).unwrap();
    a.lea(rdi, qword_ptr(rdi + 0x100)).unwrap();
    a.rep().stosb().unwrap();
    a.mov(ecx, 0x41).unwrap();
    a.rep().movsq().unwrap();
    a.pop(rsi).unwrap();
    a.pop(rdi).unwrap();
    a.pop(rcx).unwrap();
    a.sub(rcx, 7).unwrap();
    a.cmp(rcx, 0).unwrap();
    a.loopne(top).unwrap();
    a.syscall().unwrap();
    let code = a.assemble(CODE).unwrap();
    let (exit, st, _) = in_both_tiers(&code, &[0x5a; 0x2000], None, "bit, string and loop", |cpu| {
        cpu.model = CpuModel::V3;
        cpu.gpr[1] = 1000;
        cpu.gpr[0] = 0x8000_0001;
        cpu.gpr[6] = DATA + 0x800;
        cpu.gpr[7] = DATA + 0xf00;
        cpu.gpr[4] = DATA + 0x1c00;
    });
    assert!(matches!(exit, Exit::Syscall(_)), "{exit:?}");
    assert!(st.blocks_translated >= 1 && st.early_exits == 0 && st.handled == 0 && st.entries < 5, "{st:?}");
}

/// Where the host's flags do not hold the guest's (an access check clobbered them),
/// `inc`/`dec` keeping CF and `adc`/`setc` reading it take CF alone from `Cpu::rflags`,
/// and a `jcc` on one flag tests it there: with the interpreter's results.
#[test]
fn carry_and_one_flag_branches_read_the_flags_stored_in_the_context() {
    use iced_x86::code_asm::*;
    let mut a = CodeAssembler::new(64).unwrap();
    let (mut top, mut skip, mut skip2, mut skip3) =
        (a.create_label(), a.create_label(), a.create_label(), a.create_label());
    a.set_label(&mut top).unwrap();
    a.cmp(rax, rcx).unwrap();
    a.mov(r8, qword_ptr(rdi)).unwrap();
    a.inc(rdx).unwrap();
    a.adc(rbx, 0).unwrap();
    a.cmp(rsi, rax).unwrap();
    a.mov(qword_ptr(rdi + 8), r8).unwrap();
    a.dec(r8d).unwrap();
    a.setb(r9b).unwrap();
    a.movzx(r9d, r9b).unwrap();
    a.add(rbx, r9).unwrap();
    a.cmp(rsi, rcx).unwrap();
    a.mov(r10, qword_ptr(rdi + 16)).unwrap();
    a.jb(skip).unwrap();
    a.add(rbx, 7).unwrap();
    a.set_label(&mut skip).unwrap();
    a.test(rax, 0x10).unwrap();
    a.mov(r10, qword_ptr(rdi + 16)).unwrap();
    a.je(skip2).unwrap();
    a.add(rbx, 0x100).unwrap();
    a.set_label(&mut skip2).unwrap();
    a.cmp(rcx, rax).unwrap();
    a.mov(r10, qword_ptr(rdi + 16)).unwrap();
    a.jl(skip3).unwrap();
    a.add(rbx, 0x10000).unwrap();
    a.set_label(&mut skip3).unwrap();
    a.imul_3(rax, rax, 0x2545_f491).unwrap();
    a.add(rax, r15).unwrap();
    a.rol(rcx, 7).unwrap();
    a.xor(rcx, rax).unwrap();
    a.dec(r15).unwrap();
    a.jne(top).unwrap();
    a.syscall().unwrap();
    let code = a.assemble(CODE).unwrap();
    let (exit, st, _) = in_both_tiers(&code, &[0x5a; 0x2000], None, "carry", |cpu| {
        cpu.gpr[0] = 0x1234_5678_9abc;
        cpu.gpr[1] = 0x0fed_cba9_8765;
        cpu.gpr[6] = 0x4000_0000_0000;
        cpu.gpr[7] = DATA + 0x100;
        cpu.gpr[15] = 2000;
    });
    assert!(matches!(exit, Exit::Syscall(_)), "{exit:?}");
    assert!(st.blocks_translated >= 4 && st.early_exits == 0 && st.handled == 0 && st.entries < 40, "{st:?}");
}

/// Reads in translated code fault where the interpreter's do (the check of a read tests
/// one permission bit, and that of a byte skips the page-crossing test): a byte at the
/// last address of a page, then a byte of a mapped page without read permission, a word
/// across into an unmapped page.
#[test]
fn reads_fault_where_the_interpreter_faults() {
    // top: movzx eax, byte [rdi]; add rbx, rax; movzx ecx, word [rsi]; add rbx, rcx;
    // dec r15; jnz top; syscall
    let code = [
        0x0f, 0xb6, 0x07, 0x48, 0x01, 0xc3, 0x0f, 0xb7, 0x0e, 0x48, 0x01, 0xcb, 0x49, 0xff, 0xcf, 0x75, 0xef, 0x0f,
        0x05,
    ];
    let none = DATA + 0x4000;
    for (rdi, rsi) in [(none, DATA + 0x100), (DATA + 0x1fff, RO + 0xfff)] {
        let mut out = Vec::new();
        for tier in [Tier::Interp, Tier::Jit] {
            let data: Vec<u8> = (0..0x2000u32).map(|k| (k * 7 + 3) as u8).collect();
            let mut s = space(&code, &data);
            s.mem.map(GuestAddress(none), 0x1000, Perm::NONE).unwrap();
            let mut cpu = Cpu::new();
            cpu.tier = tier;
            cpu.rip = CODE;
            cpu.gpr[7] = DATA + 0x1fff;
            cpu.gpr[6] = DATA + 0x1ffe;
            cpu.gpr[15] = 100;
            let exit = cpu.run(&mut s, 1 << 20);
            assert!(matches!(exit, Exit::Syscall(_)), "{tier}: {exit:?}");
            if tier == Tier::Jit {
                assert!(s.jit_stats().blocks_translated >= 1, "{:?}", s.jit_stats());
            }
            cpu.rip = CODE;
            cpu.gpr[7] = rdi;
            cpu.gpr[6] = rsi;
            cpu.gpr[15] = 100;
            let exit = cpu.run(&mut s, 1 << 20);
            assert!(matches!(exit, Exit::PageFault { .. }), "{tier}: {exit:?}");
            out.push((format!("{exit:?}"), state(&cpu)));
        }
        assert!(out[0] == out[1], "the tiers differ at rdi {rdi:#x}, rsi {rsi:#x}: {:?}", (&out[0].0, &out[1].0));
    }
}

/// A translated jump to `u64::MAX` (the key empty chaining-table slots used to hold) is a
/// page fault in both tiers; translated code used to match an empty slot and jump to host
/// address 0. Found by the `jit` fuzz target.
#[test]
fn a_jump_to_the_last_address_faults_in_both_tiers() {
    // mov rax, -1; jmp rax
    let code = [0x48, 0xc7, 0xc0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xe0];
    let (exit, _, cpu) = in_both_tiers_from_the_first_run(&code, &[0; 0x2000], "jmp", |_| {});
    assert!(matches!(exit, Exit::PageFault { addr: u64::MAX, .. }), "{exit:?}");
    assert_eq!((cpu.rip, cpu.icount), (u64::MAX, 2));
}

/// Random ymm values for the registers of the AVX tests.
fn random_vectors(cpu: &mut Cpu, seed: u64) {
    let mut r = Rng::new(seed);
    for x in 0..16 {
        cpu.xmm[x] = (r.next() as u128) << 64 | r.next() as u128;
        cpu.ymm_hi[x] = (r.next() as u128) << 64 | r.next() as u128;
    }
}

/// The AVX2 forms glibc's string and memory functions use (`strchr`'s and `memcmp`'s
/// loops: broadcast, compares, `vpor`/`vpand`/`vpminub`, `vpmovmskb`, `vptest`, 32-byte
/// loads and stores, `vzeroupper`), 128-bit VEX forms zeroing bits 255:128 and legacy SSE
/// keeping them, `pcmpistri`, run as translated code (no early exits, nothing through
/// `run_op` once hot), with the interpreter's results.
#[test]
fn avx2_string_loops_are_translated() {
    use iced_x86::code_asm::*;
    let mut a = CodeAssembler::new(64).unwrap();
    let mut top = a.create_label();
    a.set_label(&mut top).unwrap();
    a.vmovd(xmm0, esi).unwrap();
    a.vpbroadcastb(ymm0, xmm0).unwrap();
    a.vmovdqu(ymm1, ymmword_ptr(rdi)).unwrap();
    a.vpcmpeqb(ymm2, ymm0, ymm1).unwrap();
    a.vpxor(xmm3, xmm3, xmm3).unwrap();
    a.vpcmpeqb(ymm3, ymm3, ymm1).unwrap();
    a.vpor(ymm2, ymm2, ymm3).unwrap();
    a.vpmovmskb(eax, ymm2).unwrap();
    a.vmovdqa(ymm4, ymmword_ptr(rdx)).unwrap();
    a.vpminub(ymm5, ymm4, ymmword_ptr(rdi + 1)).unwrap();
    a.vpand(ymm6, ymm5, ymm12).unwrap();
    a.vptest(ymm5, ymm6).unwrap();
    a.setb(cl).unwrap();
    a.add(r8, rcx).unwrap();
    a.vmovdqu(ymmword_ptr(rdx + 0x40), ymm2).unwrap();
    a.vpaddd(xmm7, xmm7, xmm1).unwrap();
    a.paddq(xmm12, xmm2).unwrap();
    a.vextracti128(xmmword_ptr(rdx + 0x80), ymm12, 1).unwrap();
    a.tzcnt(eax, eax).unwrap();
    a.add(r9, rax).unwrap();
    a.pcmpistri(xmm1, xmmword_ptr(rdi + 3), 0x1a).unwrap();
    a.add(r11, rcx).unwrap();
    a.vzeroupper().unwrap();
    a.add(rdi, 7).unwrap();
    a.add(esi, 3).unwrap();
    a.dec(r10).unwrap();
    a.jne(top).unwrap();
    a.syscall().unwrap();
    let code = a.assemble(CODE).unwrap();
    let data: Vec<u8> = (0..0x2000u32).map(|k| (k * 13 / 7) as u8).collect();
    let (exit, st, _) = in_both_tiers(&code, &data, None, "avx2", |cpu| {
        cpu.model = CpuModel::V3;
        random_vectors(cpu, 5);
        cpu.gpr[2] = DATA + 0x1000;
        cpu.gpr[7] = DATA + 0x100;
        cpu.gpr[10] = 500;
    });
    assert!(matches!(exit, Exit::Syscall(_)), "{exit:?}");
    let avx2 = std::arch::is_x86_feature_detected!("avx2");
    assert!(!avx2 || (st.early_exits == 0 && st.handled == 0 && st.entries < 5), "{st:?}");
}

/// Where translated code leaves in the middle of a block using ymm registers, the guest's
/// registers (both halves) and memory are the interpreter's: a page fault after 256-bit,
/// 128-bit VEX and legacy SSE writes, a 32-byte store across the edge of the writable data
/// into the read-only page (a fault, nothing written), a 32-byte load across a page edge
/// (the interpreter's path, which completes), `vmovdqa` misaligned (#GP) and aligned.
#[test]
fn ymm_state_at_faults_and_slow_paths_is_the_interpreters() {
    use iced_x86::code_asm::*;
    // (name, the block's last guest instruction but one, rdi, the exit expected)
    type Last = fn(&mut CodeAssembler) -> Result<(), IcedError>;
    type Want = fn(&Exit) -> bool;
    let cases: [(&str, Last, u64, Want); 6] = [
        ("fault", |a| a.vmovdqu(ymm5, ymmword_ptr(rdi)), RO + 0x1000, |e| matches!(e, Exit::PageFault { .. })),
        ("store across", |a| a.vmovdqu(ymmword_ptr(rdi), ymm1), RO - 16, |e| matches!(e, Exit::PageFault { .. })),
        ("load across", |a| a.vmovdqu(ymm5, ymmword_ptr(rdi)), DATA + 0xff0, |e| matches!(e, Exit::Syscall(_))),
        (
            "load across into nothing",
            |a| a.vpor(ymm5, ymm1, ymmword_ptr(rdi)),
            RO + 0xff0,
            |e| matches!(e, Exit::PageFault { .. }),
        ),
        ("misaligned", |a| a.vmovdqa(ymm5, ymmword_ptr(rdi)), DATA + 0x110, |e| matches!(e, Exit::GeneralProtection)),
        ("aligned", |a| a.vmovdqa(ymmword_ptr(rdi), ymm2), DATA + 0x120, |e| matches!(e, Exit::Syscall(_))),
    ];
    for (name, last, at, want) in cases {
        let mut a = CodeAssembler::new(64).unwrap();
        a.vpaddb(ymm1, ymm1, ymm2).unwrap();
        a.vpxor(xmm3, xmm3, xmm6).unwrap();
        a.paddq(xmm2, xmm1).unwrap();
        a.vpbroadcastb(ymm9, xmm1).unwrap();
        a.vpcmpeqb(xmm10, xmm9, xmmword_ptr(rsi)).unwrap();
        a.add(rax, 1).unwrap();
        last(&mut a).unwrap();
        a.vpminub(ymm11, ymm9, ymm1).unwrap();
        a.syscall().unwrap();
        let code = a.assemble(CODE).unwrap();
        let data: Vec<u8> = (0..0x2000u32).map(|k| (k * 7 + 3) as u8).collect();
        let (exit, st, _) = in_both_tiers_from_the_first_run(&code, &data, name, |cpu| {
            cpu.model = CpuModel::V3;
            random_vectors(cpu, 7);
            cpu.gpr[6] = DATA + 0x300;
            cpu.gpr[7] = at;
        });
        assert!(want(&exit), "{name}: {exit:?}");
        if std::arch::is_x86_feature_detected!("avx2") {
            assert!(st.blocks_translated == 1 && st.handled == 0, "{name}: {st:?}");
        }
    }
}

/// `div` and `idiv` of every size, by a register the guest keeps in its own host
/// register, one that borrows another (`r12`, or `bl`/`ch` for a byte), and memory, for
/// dividends and divisors at the edges (zero divisors, quotients that just fit or just
/// overflow, the smallest value by -1, dividends wider than their low half): both tiers
/// end alike (#DE included: the translated code leaves before the instruction and the
/// interpreter raises it), with the flags of the `add` before it as they were, and
/// translated code runs the division itself (no `run_op`) and leaves early only where the
/// interpreter must take over (a #DE, or a signed dividend that is not its low half
/// sign-extended).
#[test]
fn divisions_run_translated_and_fault_in_the_interpreter() {
    let mut r = Rng::new(0xd1);
    let mut translated = 0;
    for size in [1u32, 2, 4, 8] {
        let bits = 8 * size;
        let m = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
        let min = 1u64 << (bits - 1);
        // (dividend high half, low half, divisor)
        let pairs = [
            (0, 7, 0),
            (0, m, 1),
            (1, 0, 1),
            (0, 5, 2),
            (m - 1, m, m),
            (m, m, m),
            (m, m, 1),
            (m, min, m),
            (0, min, m),
            (m, min, 1),
            (m, (min + 1) & m, 2),
            (0, 7, (m - 1) & m),
            (m, !7u64 & m, 2),
            (0, min, 1),
            (m, (min - 1) & m, m),
            (0, m >> 1, 3),
            (m, 0, m),
            (3, 1, 5),
        ];
        let divisors: &[Register] = match size {
            1 => &[Register::CL, Register::BL, Register::CH],
            2 => &[Register::CX, Register::R12W],
            4 => &[Register::ECX, Register::R12D],
            _ => &[Register::RCX, Register::R12],
        };
        for (hi, lo, d) in pairs {
            for signed in [false, true] {
                for divisor in divisors.iter().copied().map(Some).chain([None]) {
                    let code = match (size, signed) {
                        (1, false) => Code::Div_rm8,
                        (1, true) => Code::Idiv_rm8,
                        (2, false) => Code::Div_rm16,
                        (2, true) => Code::Idiv_rm16,
                        (4, false) => Code::Div_rm32,
                        (4, true) => Code::Idiv_rm32,
                        (_, false) => Code::Div_rm64,
                        (_, true) => Code::Idiv_rm64,
                    };
                    let insn = match divisor {
                        Some(reg) => Instruction::with1(code, reg),
                        None => Instruction::with1(code, MemoryOperand::with_base_displ(Register::RDI, 8)),
                    }
                    .unwrap();
                    // add r11, r13 (flags for the system call to see through the division);
                    // div; jmp next; next: syscall (a block of its own, left untranslated).
                    let mut prog = vec![0x4d, 0x01, 0xeb];
                    prog.extend(encode(&insn, CODE + 3));
                    prog.extend([0xeb, 0x00, 0x0f, 0x05]);
                    let mut data = vec![0u8; 0x2000];
                    // The divisor, with other bytes after it.
                    let junk = if bits == 64 { 0 } else { r.next() << bits };
                    data[0x108..0x110].copy_from_slice(&(d | junk).to_le_bytes());
                    let mut cpu = Cpu::new();
                    cpu.rflags = emu::flags::FIXED | (r.next() & emu::flags::STATUS);
                    for g in 0..16 {
                        cpu.gpr[g] = r.next();
                    }
                    cpu.gpr[7] = DATA + 0x100;
                    let keep = |v: u64, new: u64| v & !m | new & m;
                    if size == 1 {
                        cpu.gpr[0] = cpu.gpr[0] & !0xffff | (hi & 0xff) << 8 | lo & 0xff;
                    } else {
                        cpu.gpr[0] = keep(cpu.gpr[0], lo);
                        cpu.gpr[2] = keep(cpu.gpr[2], hi);
                    }
                    match divisor {
                        Some(Register::CH) => cpu.gpr[1] = cpu.gpr[1] & !0xff00 | (d & 0xff) << 8,
                        Some(reg) => {
                            let g = reg.full_register().number();
                            cpu.gpr[g] = keep(cpu.gpr[g], d);
                        }
                        None => {}
                    }
                    let ctx = format!("{insn} of {hi:#x}:{lo:#x} by {d:#x}");
                    let (exit, st, _) = in_both_tiers_from_the_first_run(&prog, &data, &ctx, |c| {
                        c.rflags = cpu.rflags;
                        c.gpr = cpu.gpr;
                    });
                    let sext = hi == (((lo << (64 - bits)) as i64 >> 63) as u64 & m);
                    let faults = matches!(exit, Exit::DivideError);
                    let leaves = faults || (signed && !sext);
                    assert!(st.blocks_translated >= 1 && st.handled == 0, "{ctx}: {st:?}");
                    assert_eq!(st.early_exits, leaves as u64, "{ctx}: {st:?}");
                    translated += !leaves as u32;
                }
            }
        }
    }
    assert!(translated > 100, "only {translated} divisions ran translated");
}

/// Accesses at one base register (and the pushes and pops at `rsp`) are checked as one
/// range per group (the translator's group checks): a range across a page edge between
/// two allowed pages runs translated, and one that reaches a read-only page, a hole, the
/// end of the space or wraps around faults at the same instruction, with the same
/// registers and memory, as under the interpreter.
#[test]
fn grouped_accesses_fault_where_the_interpreter_faults() {
    use iced_x86::code_asm::*;
    let mut a = CodeAssembler::new(64).unwrap();
    let mut top = a.create_label();
    a.set_label(&mut top).unwrap();
    a.mov(rax, qword_ptr(rbx)).unwrap();
    a.add(rax, qword_ptr(rbx + 8)).unwrap();
    a.cmp(rax, rcx).unwrap();
    a.mov(qword_ptr(rbx + 16), rax).unwrap();
    a.push(rax).unwrap();
    a.push(rcx).unwrap();
    a.pop(rdx).unwrap();
    a.pop(rcx).unwrap();
    a.adc(qword_ptr(rbx + 0x18), rdx).unwrap();
    a.movzx(esi, byte_ptr(rbx - 1)).unwrap();
    a.add(rbx, 8).unwrap();
    a.dec(r15).unwrap();
    a.jne(top).unwrap();
    a.syscall().unwrap();
    let code = a.assemble(CODE).unwrap();
    let limit = 1u64 << 24;
    // (rbx, rsp): across the page edge inside the data (no fault), into the read-only
    // page, into the hole after it, pushes below the data, near 0, past the limit,
    // wrapping around.
    let cases = [
        (DATA + 0xf80, DATA + 0x1010),
        (DATA + 0x1f00, DATA + 0x1800),
        (RO + 0xf00, DATA + 0x1800),
        (DATA + 0x100, DATA + 0x8),
        (0x8, DATA + 0x1800),
        (limit - 0x100, DATA + 0x1800),
        (u64::MAX - 0x3f, DATA + 0x1800),
    ];
    for (n, &(base, stack)) in cases.iter().enumerate() {
        let data: Vec<u8> = (0..0x2000u32).map(|k| (k * 13 + 5) as u8).collect();
        let (exit, st, _) = in_both_tiers_from_the_first_run(&code, &data, n, |cpu| {
            cpu.gpr[3] = base;
            cpu.gpr[4] = stack;
            cpu.gpr[1] = 0x1234;
            cpu.gpr[15] = 100;
        });
        if n == 0 {
            assert!(matches!(exit, Exit::Syscall(_)), "{exit:?}");
            assert!(st.blocks_translated >= 1 && st.early_exits == 0 && st.handled == 0, "{st:?}");
        } else {
            assert!(matches!(exit, Exit::PageFault { .. }), "case {n}: {exit:?}");
        }
    }
}

/// Accesses at one base and one index register plus displacements are checked as one
/// range (a group keyed by both registers and the scale), aligned ones join a group and
/// test their own alignment, and an access across a page edge between two pages that
/// allow it runs translated: each faults (or raises #GP) where the interpreter does,
/// with the same registers and memory. A group ends where its base or index changes
/// (`add rcx`: the write after it, outside the old range, is checked again) and, for
/// `rsp` with an index, at a `push`.
#[test]
fn indexed_aligned_and_crossing_accesses_fault_where_the_interpreter_faults() {
    use iced_x86::code_asm::*;
    let mut a = CodeAssembler::new(64).unwrap();
    let mut top = a.create_label();
    a.set_label(&mut top).unwrap();
    a.mov(rax, qword_ptr(rbx + rcx * 4)).unwrap();
    a.add(rax, qword_ptr(rbx + rcx * 4 + 8)).unwrap();
    a.mov(dword_ptr(rbx + rcx * 4 + 0x10), eax).unwrap();
    a.movdqa(xmm0, xmmword_ptr(rsi + rdx + 0x20)).unwrap();
    a.movdqu(xmm1, xmmword_ptr(rsi + rdx)).unwrap();
    a.pxor(xmm0, xmm1).unwrap();
    a.movdqa(xmmword_ptr(rsi + rdx + 0x40), xmm0).unwrap();
    a.mov(r8, qword_ptr(rdi + 0xffc)).unwrap();
    a.mov(dword_ptr(rbp + 0xffd), r8d).unwrap();
    a.mov(dword_ptr(rsi + 0x7fd), r8d).unwrap();
    a.add(rcx, 0x10).unwrap();
    a.mov(dword_ptr(rbx + rcx * 4), r8d).unwrap();
    a.mov(r9, qword_ptr(rsp + r11 + 8)).unwrap();
    a.push(r9).unwrap();
    a.mov(r10, qword_ptr(rsp + r11 + 8)).unwrap();
    a.pop(r9).unwrap();
    a.mov(r10, qword_ptr(rbx + (RO + 0xff0 - DATA - 0x100) as i32)).unwrap();
    a.mov(r9, qword_ptr(r12)).unwrap();
    a.add(r9, qword_ptr(r12 + 8)).unwrap();
    a.dec(r15).unwrap();
    a.jne(top).unwrap();
    a.syscall().unwrap();
    let code = a.assemble(CODE).unwrap();
    let limit = 1u64 << 24;
    // Register (number, value) pairs over the defaults: none (reads across DATA's edge
    // into the read-only page, writes across the edge between the two data pages, at
    // `rbp` and at `rsi`, a read at the end of the read-only page before the hole: no
    // fault); the indexed write past the old group's range into the read-only page;
    // `movdqa` misaligned; a write at `rbp` across the edge into the read-only page; a
    // read across the edge into the hole; the read at `rsp` and the index after the
    // `push` below the data; an index that wraps the address around below the data; a
    // base past the limit; a write at `rsi` across the edge into the read-only page;
    // the group at `r12` (at the end of the read-only page, before the hole, by
    // default) across the edge into the hole. (Accesses and groups at `rsp` and `rbp`
    // test a page edge inline, the others the bit of the page and the next one
    // together.)
    let cases: [&[(usize, u64)]; 10] = [
        &[],
        &[(3, RO - 0x20)],
        &[(2, 0x18)],
        &[(5, DATA + 0x1000)],
        &[(7, RO)],
        &[(4, DATA + 8), (11, -16i64 as u64)],
        &[(1, (1 << 62) - 0x100)],
        &[(3, limit - 8)],
        &[(6, DATA + 0x1800)],
        &[(12, RO + 0xff8)],
    ];
    for (n, regs) in cases.iter().enumerate() {
        let data: Vec<u8> = (0..0x2000u32).map(|k| (k * 11 + 7) as u8).collect();
        let (exit, st, _) = in_both_tiers_from_the_first_run(&code, &data, n, |cpu| {
            for (g, v) in [(3, DATA + 0x100), (1, 0), (6, DATA + 0x800), (2, 0x10), (7, DATA + 0x1000)] {
                cpu.gpr[g] = v;
            }
            for (g, v) in [(5, DATA), (4, DATA + 0x1c00), (11, 0), (12, RO + 0xff0), (15, 20)] {
                cpu.gpr[g] = v;
            }
            for &(g, v) in regs.iter() {
                cpu.gpr[g] = v;
            }
            random_vectors(cpu, n as u64);
        });
        if n == 0 {
            assert!(matches!(exit, Exit::Syscall(_)), "{exit:?}");
            assert!(st.blocks_translated >= 1 && st.early_exits == 0 && st.handled == 0, "{st:?}");
        } else {
            assert!(!matches!(exit, Exit::Syscall(_) | Exit::BudgetExhausted), "case {n}: {exit:?}");
        }
    }
}

/// The push of a `call` and the pop of a `ret` join the block's group at `rsp` (no check
/// of their own): a call whose push would fault leaves at the group's first access and
/// faults in the interpreter at the same instruction, with the same state.
#[test]
fn calls_and_returns_in_stack_groups_fault_where_the_interpreter_faults() {
    use iced_x86::code_asm::*;
    let mut a = CodeAssembler::new(64).unwrap();
    let (mut top, mut f) = (a.create_label(), a.create_label());
    a.set_label(&mut top).unwrap();
    a.push(rbx).unwrap();
    a.mov(qword_ptr(rsp + 16), rax).unwrap();
    a.call(f).unwrap();
    a.pop(rbx).unwrap();
    a.dec(r15).unwrap();
    a.jne(top).unwrap();
    a.syscall().unwrap();
    a.set_label(&mut f).unwrap();
    a.mov(rax, qword_ptr(rsp + 8)).unwrap();
    a.add(rax, 1).unwrap();
    a.ret().unwrap();
    let code = a.assemble(CODE).unwrap();
    // rsp: inside the data; groups across the page edge between the data pages; the
    // call's push below the data (the `push` before it is inside); in the read-only page.
    for (n, stack) in [DATA + 0x1c00, DATA + 0x1008, DATA + 0x8, RO + 0x100].into_iter().enumerate() {
        let data: Vec<u8> = (0..0x2000u32).map(|k| (k * 5 + 1) as u8).collect();
        let (exit, st, _) = in_both_tiers_from_the_first_run(&code, &data, n, |cpu| {
            cpu.gpr[4] = stack;
            cpu.gpr[3] = 0x77;
            cpu.gpr[15] = 20;
        });
        if n < 2 {
            assert!(matches!(exit, Exit::Syscall(_)), "case {n}: {exit:?}");
            assert!(st.blocks_translated >= 2 && st.early_exits == 0 && st.handled == 0, "{st:?}");
        } else {
            assert!(matches!(exit, Exit::PageFault { .. }), "case {n}: {exit:?}");
        }
    }
}

/// A direct exit to a translated block jumps straight to its code (the translator links
/// them); when that block is dropped the exit goes back to the lookup, so the new code
/// runs, or the fault comes, as under the interpreter. `b`'s page is rewritten, then
/// unmapped: that drops `b` and `a`, which looked at `b`'s code for its flags, not `p`,
/// whose exit to `a` must then find `a`'s new translation.
#[test]
fn linked_exits_follow_their_target_when_it_is_dropped() {
    // p (CODE): add rax, 1; jnz a; syscall (blocks end at conditional branches: the
    // decoder follows unconditional jumps into their targets)
    // a (CODE + 0x20): add rcx, 1; jnz b; syscall
    // b (CODE + 0x1000): add rdx, imm8; dec r15; jnz p; syscall
    let mut code = vec![0xcc; 0x1100];
    let jnz = |from: u64, to: u64| {
        let mut v = vec![0x0f, 0x85];
        v.extend(((to as i64 - (from as i64 + 6)) as i32).to_le_bytes());
        v
    };
    let (p, a, b) = (CODE, CODE + 0x20, CODE + 0x1000);
    let mut put = |at: u64, bytes: &[u8]| {
        let off = (at - CODE) as usize;
        code[off..off + bytes.len()].copy_from_slice(bytes);
    };
    put(p, &[0x48, 0x83, 0xc0, 0x01]);
    put(p + 4, &jnz(p + 4, a));
    put(p + 10, &[0x0f, 0x05]);
    put(a, &[0x48, 0x83, 0xc1, 0x01]);
    put(a + 4, &jnz(a + 4, b));
    put(a + 10, &[0x0f, 0x05]);
    let tail = |imm: u8| {
        let mut v = vec![0x48, 0x83, 0xc2, imm, 0x49, 0xff, 0xcf];
        v.extend(jnz(b + 7, p));
        v.extend([0x0f, 0x05]);
        v
    };
    put(b, &tail(2));
    let mut out = Vec::new();
    for tier in [Tier::Interp, Tier::Jit] {
        let mut s = space(&code, &[0; 0x2000]);
        let mut cpu = Cpu::new();
        cpu.tier = tier;
        let run = |cpu: &mut Cpu, s: &mut AddressSpace| {
            cpu.rip = CODE;
            cpu.gpr[15] = 1000;
            let exit = cpu.run(s, 1 << 20);
            (format!("{exit:?}"), cpu.gpr[0], cpu.gpr[1], cpu.gpr[2], cpu.icount, cpu.rip)
        };
        let first = run(&mut cpu, &mut s);
        if tier == Tier::Jit {
            let st = s.jit_stats();
            assert!(st.blocks_translated >= 3 && st.entries < 20, "{st:?}");
        }
        s.mem.write_raw(GuestAddress(b), &tail(5)).unwrap();
        let second = run(&mut cpu, &mut s);
        s.mem.unmap(GuestAddress(b), 0x1000).unwrap();
        let third = run(&mut cpu, &mut s);
        out.push((first, second, third));
    }
    assert_eq!(out[0], out[1]);
    let (_, second, third) = &out[1];
    assert_eq!((second.1, second.3), (2000, 7000), "{second:?}");
    assert!(third.0.contains("PageFault") && third.5 == b, "{third:?}");
}

/// Shifts by `cl`, by 1 and by an immediate of 32- and 64-bit registers whose flags the
/// manuals leave undefined are read (`pushf` after each) run translated, with every
/// status flag as the interpreter leaves it: counts of zero (no flag changes), one and
/// more, the top bits set and clear.
#[test]
fn shifts_whose_undefined_flags_are_read_match_the_interpreter() {
    use iced_x86::code_asm::*;
    let mut a = CodeAssembler::new(64).unwrap();
    let mut top = a.create_label();
    a.set_label(&mut top).unwrap();
    a.mov(ecx, r15d).unwrap();
    a.and(ecx, 0x47).unwrap();
    type Emit = fn(&mut CodeAssembler) -> Result<(), iced_x86::IcedError>;
    let shifts: [Emit; 8] = [
        |a| a.shr(esi, cl),
        |a| a.shl(rdi, cl),
        |a| a.sar(edx, cl),
        |a| a.shr(r8, cl),
        |a| a.shl(r9d, 1),
        |a| a.shr(r10d, 1),
        |a| a.sar(r11, 5),
        |a| a.shl(rbp, 33),
    ];
    let sources = [rsi, rdi, rdx, r8, r9, r10, r11, rbp];
    let mut pushes = 0;
    for (shift, src) in shifts.iter().zip(sources) {
        // A new operand each round (r12 walks), a cmp to set every flag first.
        a.add(src, r12).unwrap();
        a.cmp(src, r13).unwrap();
        shift(&mut a).unwrap();
        a.pushfq().unwrap();
        a.pop(rax).unwrap();
        a.add(rbx, rax).unwrap();
        a.rol(rbx, 7).unwrap();
        pushes += 1;
    }
    a.imul_3(r12, r12, 0x3d).unwrap();
    a.add(r12, 0x1b).unwrap();
    a.dec(r15).unwrap();
    a.jne(top).unwrap();
    a.syscall().unwrap();
    let code = a.assemble(CODE).unwrap();
    let (exit, st, _) = in_both_tiers_from_the_first_run(&code, &[0; 0x2000], "shifts", |cpu| {
        cpu.gpr[4] = DATA + 0x1800;
        cpu.gpr[12] = 0x8000_0000_8000_0001;
        cpu.gpr[13] = 0x4000_0000;
        cpu.gpr[15] = 300;
    });
    assert!(matches!(exit, Exit::Syscall(_)), "{exit:?}");
    // `pushf` goes to the interpreter's handler, the shifts do not.
    assert!(st.blocks_translated >= 1 && st.handled == pushes * 300, "{st:?}");
}

/// Translated code stores the status flags with the rest of `Cpu::rflags` as it was when
/// the code was entered or a handler `run_op` called last returned (`FLAGS_REST`): DF and
/// AC set by the interpreter before the run, DF set and cleared by `std`/`cld` (handlers)
/// between flag stores (each access check stores the live flags first), all kept; `pushf`
/// (a handler) shows every bit. With the interpreter's results.
#[test]
fn flag_stores_keep_the_flags_handlers_change() {
    use iced_x86::code_asm::*;
    let mut a = CodeAssembler::new(64).unwrap();
    let (mut top, mut skip) = (a.create_label(), a.create_label());
    a.set_label(&mut top).unwrap();
    a.add(rax, r15).unwrap();
    // The flags of `add` are read after the access check (by `adc`).
    a.mov(qword_ptr(rdi), rax).unwrap();
    a.adc(rbx, 0).unwrap();
    a.std().unwrap();
    a.sub(rcx, rax).unwrap();
    a.mov(qword_ptr(rdi + 8), rcx).unwrap();
    a.pushfq().unwrap();
    a.pop(rdx).unwrap();
    a.add(rsi, rdx).unwrap();
    a.cld().unwrap();
    a.cmp(rcx, rbx).unwrap();
    a.mov(qword_ptr(rdi + 16), rsi).unwrap();
    a.jb(skip).unwrap();
    a.add(rsi, 3).unwrap();
    a.set_label(&mut skip).unwrap();
    a.pushfq().unwrap();
    a.pop(r8).unwrap();
    a.xor(r9, r8).unwrap();
    a.dec(r15).unwrap();
    a.jne(top).unwrap();
    a.syscall().unwrap();
    let code = a.assemble(CODE).unwrap();
    let (exit, st, cpu) = in_both_tiers_from_the_first_run(&code, &[0; 0x2000], "flag stores", |cpu| {
        cpu.rflags |= emu::flags::DF | emu::flags::AC;
        cpu.gpr[0] = 0x7fff_ffff_ffff_ff00;
        cpu.gpr[4] = DATA + 0x1800;
        cpu.gpr[7] = DATA + 0x100;
        cpu.gpr[15] = 300;
    });
    assert!(matches!(exit, Exit::Syscall(_)), "{exit:?}");
    // `std`, `cld` and the two `pushf`s go to the handlers.
    assert!(st.blocks_translated >= 2 && st.early_exits == 0 && st.handled == 4 * 300, "{st:?}");
    // AC (set before the run) stays (the helper compares the state: in both tiers); DF was
    // cleared by the last `cld`.
    assert_eq!(cpu.rflags & (emu::flags::DF | emu::flags::AC), emu::flags::AC);
}

/// Runs `code` from `CODE` in both tiers, translated from its first run, in the same
/// budget slices (`slices`, then one of a million instructions) over a fresh space whose
/// data pages hold `data` and a CPU `init` prepares; after each slice the tiers must
/// agree on the exit, the state and the data (at a budget exit, the status flags aside:
/// one nobody reads may hold an older value under the interpreter, see `run_case`).
/// Stops at the first other exit; returns it and the translated run's statistics.
fn in_both_tiers_in_slices(code: &[u8], data: &[u8], slices: &[u64], init: impl Fn(&mut Cpu)) -> (Exit, emu::JitStats) {
    let (exit, st, _) = in_both_tiers_in_slices_as(code, data, slices, false, false, init);
    (exit, st)
}

/// `in_both_tiers_in_slices`, the status flags compared at system calls only when
/// `dead_flags_may_differ` (as the `jit` fuzz target compares: at a fault, a status flag
/// no successor reads may hold another instruction's value in each tier), the code's page
/// writable too when `writable` (as a JIT's); returns the translated run's CPU as well.
fn in_both_tiers_in_slices_as(
    code: &[u8],
    data: &[u8],
    slices: &[u64],
    dead_flags_may_differ: bool,
    writable: bool,
    init: impl Fn(&mut Cpu),
) -> (Exit, emu::JitStats, Cpu) {
    let mut cpus = [Tier::Interp, Tier::Jit].map(|tier| {
        let mut cpu = Cpu::new();
        cpu.tier = tier;
        cpu.rip = CODE;
        init(&mut cpu);
        cpu
    });
    let mut spaces = [(), ()].map(|_| {
        let mut s = space(code, data);
        if writable {
            s.mem.protect(GuestAddress(CODE), 0x1000, Perm::RWX).unwrap();
        }
        s.set_jit_threshold(0);
        s
    });
    for (n, &slice) in slices.iter().chain(&[1 << 20]).enumerate() {
        let [a, b] = &mut cpus;
        let [sa, sb] = &mut spaces;
        let (ea, eb) = (a.run(sa, slice), b.run(sb, slice));
        let ctx = format!("slice {n} ({slice} instructions)");
        assert_eq!(format!("{ea:?}"), format!("{eb:?}"), "exit, {ctx}");
        if ea == Exit::BudgetExhausted || (dead_flags_may_differ && !matches!(ea, Exit::Syscall(_))) {
            let status = emu::flags::STATUS;
            assert_eq!(a.rflags & !status, b.rflags & !status, "rflags, {ctx}");
            b.rflags = a.rflags;
        }
        assert_eq!(state(a), state(b), "state (gpr, rip, rflags, icount, xmm, ymm_hi, mxcsr), {ctx}");
        assert!(dump(sa) == dump(sb), "data pages, {ctx}");
        if ea != Exit::BudgetExhausted {
            return (ea, sb.jit_stats(), b.clone());
        }
    }
    unreachable!("a million instructions end every case");
}

/// Budget slices: short ones (a budget that runs out inside a round, at its start, a
/// round or two later) and longer ones.
fn slices(seed: u64) -> Vec<u64> {
    let mut r = Rng::new(seed);
    (0..60).map(|_| if r.chance(1, 2) { 1 + r.below(20) } else { 1 + r.below(700) }).collect()
}

/// A block that jumps to its own start loops inside its code (`emit::Head`): guest
/// registers (`POOL` ones, and `rbx`, `rbp`, `r12`, `r13` borrowing free host ones) stay
/// in host registers across rounds, the budget is checked at each back edge. Run in
/// budget slices that end inside rounds, it stops after exactly the instructions the
/// interpreter runs, with the same registers, flags and memory.
#[test]
fn self_loops_stop_where_the_budget_runs_out() {
    use iced_x86::code_asm::*;
    let mut a = CodeAssembler::new(64).unwrap();
    let mut top = a.create_label();
    a.set_label(&mut top).unwrap();
    a.mov(rax, qword_ptr(rbx + r12 * 8)).unwrap();
    a.add(rax, r13).unwrap();
    a.imul_3(r13, rax, 3).unwrap();
    a.mov(qword_ptr(rbx + r12 * 8 + 8), rax).unwrap();
    a.xor(rbp, rax).unwrap();
    a.rol(rbp, 7).unwrap();
    a.inc(r12).unwrap();
    a.and(r12, 0xff).unwrap();
    a.add(rcx, rbp).unwrap();
    a.dec(r15).unwrap();
    a.jne(top).unwrap();
    a.syscall().unwrap();
    let code = a.assemble(CODE).unwrap();
    let data: Vec<u8> = (0..0x2000u32).map(|k| (k * 7 + 3) as u8).collect();
    for seed in 0..4 {
        let (exit, st) = in_both_tiers_in_slices(&code, &data, &slices(seed), |cpu| {
            cpu.gpr[3] = DATA;
            cpu.gpr[12] = seed;
            cpu.gpr[13] = 0x1234_5678;
            cpu.gpr[15] = 3000;
        });
        assert!(matches!(exit, Exit::Syscall(_)), "{exit:?}");
        assert!(st.self_loops >= 1 && st.early_exits == 0, "{st:?}");
    }
}

/// A self-loop whose accesses walk off the end of the writable pages faults in a later
/// round where the interpreter faults, with the registers the rounds before left in host
/// registers (general, `rbx` and `r13` borrowing host ones, `xmm`), the flags and the
/// memory the interpreter's.
#[test]
fn self_loops_fault_in_a_later_round_where_the_interpreter_faults() {
    use iced_x86::code_asm::*;
    let mut a = CodeAssembler::new(64).unwrap();
    let mut top = a.create_label();
    a.set_label(&mut top).unwrap();
    a.mov(rax, qword_ptr(rbx)).unwrap();
    a.add(r13, rax).unwrap();
    a.movq(xmm1, rax).unwrap();
    a.paddq(xmm0, xmm1).unwrap();
    a.add(qword_ptr(rbx + 8), r13).unwrap();
    a.add(rbx, 16).unwrap();
    a.dec(r15).unwrap();
    a.jne(top).unwrap();
    a.syscall().unwrap();
    let code = a.assemble(CODE).unwrap();
    let data: Vec<u8> = (0..0x2000u32).map(|k| (k * 11 + 1) as u8).collect();
    // rbx: into the read-only page (the write faults), across the page edge into the
    // hole after it (the read faults), in the middle of the data (no fault).
    for (n, &start) in [DATA + 0x1e00, RO + 0xe08, DATA + 0x100].iter().enumerate() {
        for seed in 0..3 {
            let (exit, st) = in_both_tiers_in_slices(&code, &data, &slices(seed + 10 * n as u64), |cpu| {
                cpu.gpr[3] = start;
                cpu.gpr[13] = 5;
                cpu.gpr[15] = if n == 2 { 100 } else { 1000 };
                cpu.xmm[0] = 0x1111_2222_3333_4444_5555_6666_7777_8888;
            });
            if n == 2 {
                assert!(matches!(exit, Exit::Syscall(_)), "case {n}: {exit:?}");
            } else {
                assert!(matches!(exit, Exit::PageFault { .. }), "case {n}: {exit:?}");
            }
            assert!(st.self_loops >= 1, "{st:?}");
        }
    }
}

/// An SSE floating-point self-loop (`work fp`'s: a `divsd` chain) keeps the guest's
/// MXCSR in the host's across rounds: rounding, FTZ and DAZ are the guest's, and the
/// sticky exception flags at every way out (budget slices inside rounds, the end) are
/// the interpreter's; with an exception unmasked it leaves for the interpreter, which
/// raises it.
#[test]
fn fp_self_loops_keep_the_guests_mxcsr_across_rounds() {
    use iced_x86::code_asm::*;
    let mut a = CodeAssembler::new(64).unwrap();
    let mut top = a.create_label();
    a.set_label(&mut top).unwrap();
    a.movapd(xmm3, xmm2).unwrap();
    a.divsd(xmm3, xmm1).unwrap();
    a.addsd(xmm1, xmm3).unwrap();
    a.mulsd(xmm1, xmm4).unwrap();
    a.sub(eax, 1).unwrap();
    a.jne(top).unwrap();
    a.syscall().unwrap();
    let code = a.assemble(CODE).unwrap();
    let f = |x: f64| x.to_bits() as u128;
    // (xmm1, xmm2, xmm4): inexact results; a denormal dividend whose quotient underflows
    // (a zero one under DAZ), then products that shrink towards denormals; products
    // that overflow.
    let values = [(f(1.5), f(2.0), f(0.999)), (f(1e300), f(1e-320), f(1e-10)), (f(1e300), f(3.0), f(1e10))];
    // MXCSR: the default; round down with FTZ and DAZ; round to zero; the default with
    // underflow unmasked.
    let mxcsrs = [0x1f80, 0x1f80 | 0x2000 | 0x8040, 0x1f80 | 0x6000, 0x1f80 & !0x0800];
    for (v, &(x1, x2, x4)) in values.iter().enumerate() {
        for (m, &mxcsr) in mxcsrs.iter().enumerate() {
            let (exit, st) = in_both_tiers_in_slices(&code, &[0; 0x2000], &slices(v as u64 * 7 + m as u64), |cpu| {
                cpu.gpr[0] = 2000;
                cpu.xmm[1] = x1;
                cpu.xmm[2] = x2;
                cpu.xmm[4] = x4;
                cpu.mxcsr = mxcsr;
            });
            if mxcsr & 0x0800 == 0 && v == 1 {
                assert!(!matches!(exit, Exit::Syscall(_)), "values {v}, mxcsr {mxcsr:#x}: {exit:?}");
            } else {
                assert!(matches!(exit, Exit::Syscall(_)), "values {v}, mxcsr {mxcsr:#x}: {exit:?}");
            }
            assert!(st.self_loops >= 1, "{st:?}");
        }
    }
}

/// A self-loop whose head reads flags the round before left (`adc` reads the CF of the
/// `cmp`, which `dec` keeps; `setb` and `cmovo` read others) stores them at its back
/// edge, before the budget's test clobbers the host's: each round reads the flags of the
/// round before, as in the interpreter.
#[test]
fn self_loops_with_flags_live_at_the_head_read_the_rounds_before() {
    use iced_x86::code_asm::*;
    let mut a = CodeAssembler::new(64).unwrap();
    let mut top = a.create_label();
    a.set_label(&mut top).unwrap();
    a.adc(rax, qword_ptr(rbx + rdx * 8)).unwrap();
    a.setb(sil).unwrap();
    a.cmovo(rdi, rax).unwrap();
    a.add(rdi, rsi).unwrap();
    a.inc(edx).unwrap();
    a.and(edx, 0x3f).unwrap();
    a.imul_3(rcx, rcx, 0x5bd1e995).unwrap();
    a.add(rcx, rax).unwrap();
    a.cmp(rcx, rax).unwrap();
    a.dec(r15).unwrap();
    a.jne(top).unwrap();
    a.syscall().unwrap();
    let code = a.assemble(CODE).unwrap();
    let mut r = Rng::new(5);
    let data: Vec<u8> = (0..0x2000).map(|_| r.next() as u8).collect();
    for seed in 0..4 {
        let (exit, st) = in_both_tiers_in_slices(&code, &data, &slices(seed + 40), |cpu| {
            cpu.gpr[3] = DATA;
            cpu.gpr[1] = 0x9e37_79b9_7f4a_7c15 ^ seed;
            cpu.gpr[15] = 2500;
            cpu.rflags = emu::flags::FIXED | emu::flags::STATUS;
        });
        assert!(matches!(exit, Exit::Syscall(_)), "{exit:?}");
        assert!(st.self_loops >= 1 && st.early_exits == 0, "{st:?}");
    }
}

/// The guest's MXCSR stays in the host's from one SSE floating-point run to the next,
/// across block exits: a handler that reads it (`stmxcsr`, through `run_op`) sees the
/// exception flags the runs before raised; one that writes it (`ldmxcsr`: the rounding
/// changed, the precision exception unmasked every other time) is seen by the next run,
/// which tests the new value again (unmasked: out to the interpreter, which raises
/// #XM). Every way out in budget slices stores the same MXCSR as the interpreter's.
#[test]
fn fp_runs_keep_the_guests_mxcsr_across_blocks_until_a_handler_reads_it() {
    use iced_x86::code_asm::*;
    let mut a = CodeAssembler::new(64).unwrap();
    let (mut top, mut skip) = (a.create_label(), a.create_label());
    a.set_label(&mut top).unwrap();
    a.divsd(xmm1, xmm2).unwrap();
    a.addsd(xmm3, xmm1).unwrap();
    a.test(r15, 3).unwrap();
    a.jne(skip).unwrap();
    a.mulsd(xmm3, xmm4).unwrap();
    a.stmxcsr(dword_ptr(rbx)).unwrap();
    a.mov(eax, dword_ptr(rbx)).unwrap();
    a.mov(dword_ptr(rbx + r15 * 4 + 8), eax).unwrap();
    a.and(eax, !0x3f).unwrap();
    a.xor(eax, r12d).unwrap();
    a.mov(dword_ptr(rbx), eax).unwrap();
    a.ldmxcsr(dword_ptr(rbx)).unwrap();
    a.set_label(&mut skip).unwrap();
    a.subsd(xmm3, xmm2).unwrap();
    a.sqrtsd(xmm5, xmm3).unwrap();
    a.dec(r15).unwrap();
    a.jne(top).unwrap();
    a.syscall().unwrap();
    let code = a.assemble(CODE).unwrap();
    let f = |x: f64| x.to_bits() as u128;
    // r12: what each `ldmxcsr` toggles: the rounding; the rounding and the precision
    // mask (#XM at the next inexact result).
    for (n, &toggle) in [0x6000u64, 0x2000 | 0x1000].iter().enumerate() {
        for seed in 0..3 {
            let (exit, st) = in_both_tiers_in_slices(&code, &[0; 0x2000], &slices(seed + 60), |cpu| {
                cpu.gpr[3] = DATA;
                cpu.gpr[12] = toggle;
                cpu.gpr[15] = 400;
                cpu.xmm[1] = f(1.0);
                cpu.xmm[2] = f(3.0);
                cpu.xmm[3] = f(-1e-3);
                cpu.xmm[4] = f(1.0000001);
            });
            if n == 0 {
                assert!(matches!(exit, Exit::Syscall(_)), "{exit:?}");
                assert!(st.handled > 0, "{st:?}");
            } else {
                assert!(!matches!(exit, Exit::Syscall(_)), "{exit:?}");
            }
        }
    }
}

/// Self-loops of VEX instructions (glibc's backward `memmove` loop: four 32-byte loads,
/// four aligned stores; a `memchr`-like compare with a legacy SSE instruction and,
/// in one variant, the guest's `vzeroupper` in it) keep both halves of their `ymm`
/// registers in the host's across rounds: in budget slices that end inside rounds and
/// at a fault in a later round (the stores walk into the read-only page) the registers
/// (both halves), flags and memory are the interpreter's.
#[test]
fn vex_self_loops_keep_whole_ymm_registers_across_rounds() {
    use iced_x86::code_asm::*;
    let mut a = CodeAssembler::new(64).unwrap();
    let mut top = a.create_label();
    a.set_label(&mut top).unwrap();
    a.vmovdqu(ymm1, ymmword_ptr(rsi + 0x60)).unwrap();
    a.vmovdqu(ymm2, ymmword_ptr(rsi + 0x40)).unwrap();
    a.vmovdqu(ymm3, ymmword_ptr(rsi + 0x20)).unwrap();
    a.vmovdqu(ymm4, ymmword_ptr(rsi)).unwrap();
    a.add(rsi, -0x80).unwrap();
    a.vmovdqa(ymmword_ptr(rcx + 0x60), ymm1).unwrap();
    a.vmovdqa(ymmword_ptr(rcx + 0x40), ymm2).unwrap();
    a.vmovdqa(ymmword_ptr(rcx + 0x20), ymm3).unwrap();
    a.vmovdqa(ymmword_ptr(rcx), ymm4).unwrap();
    a.add(rcx, -0x80).unwrap();
    a.cmp(rcx, rdi).unwrap();
    a.ja(top).unwrap();
    a.syscall().unwrap();
    let copy = a.assemble(CODE).unwrap();
    let compare = |vzeroupper: bool| {
        let mut a = CodeAssembler::new(64).unwrap();
        let mut top = a.create_label();
        a.set_label(&mut top).unwrap();
        a.vmovdqu(ymm1, ymmword_ptr(rdi)).unwrap();
        a.vpcmpeqb(ymm2, ymm1, ymm0).unwrap();
        a.vpmovmskb(eax, ymm2).unwrap();
        a.paddq(xmm5, xmm1).unwrap();
        a.vpaddq(ymm6, ymm6, ymm2).unwrap();
        if vzeroupper {
            a.vzeroupper().unwrap();
        }
        a.add(rdx, rax).unwrap();
        a.add(rdi, 0x21).unwrap();
        a.dec(r15).unwrap();
        a.jne(top).unwrap();
        a.syscall().unwrap();
        a.assemble(CODE).unwrap()
    };
    let mut r = Rng::new(9);
    let data: Vec<u8> = (0..0x2000).map(|_| (r.next() % 5) as u8).collect();
    let vectors = |cpu: &mut Cpu| {
        cpu.model = CpuModel::V3;
        for x in 0..16 {
            cpu.xmm[x] = (x as u128 + 1) * 0x0101_0101_0101_0101_0101_0101_0101_0101 % 3;
            cpu.ymm_hi[x] = (x as u128 + 7) << 64 | 0x55;
        }
    };
    // (rsi, rcx, rdi): a copy down within the data; one whose stores, one whose loads
    // walk down into the hole below the data (a fault in a later round).
    let copies = [
        (DATA + 0xf00, DATA + 0x1f80, DATA + 0x1000),
        (DATA + 0x1f00, DATA + 0x200, DATA - 0x1000),
        (DATA + 0x180, DATA + 0x1f00, DATA - 0x1000),
    ];
    for (n, &(src, dst, end)) in copies.iter().enumerate() {
        let (exit, st) = in_both_tiers_in_slices(&copy, &data, &slices(n as u64 + 80), |cpu| {
            vectors(cpu);
            (cpu.gpr[6], cpu.gpr[1], cpu.gpr[7]) = (src, dst, end);
        });
        assert_eq!(matches!(exit, Exit::Syscall(_)), n == 0, "case {n}: {exit:?}");
        assert!(st.self_loops >= 1, "case {n}: {exit:?} {st:?}");
    }
    for (n, vzeroupper) in [false, true].into_iter().enumerate() {
        // To the end of the data, then into the read-only page (no fault), then the hole.
        let (exit, st) = in_both_tiers_in_slices(&compare(vzeroupper), &data, &slices(n as u64 + 90), |cpu| {
            vectors(cpu);
            cpu.gpr[7] = DATA + 0x10;
            cpu.gpr[15] = 1000;
        });
        assert!(matches!(exit, Exit::PageFault { .. }), "case {n}: {exit:?}");
        assert!(st.self_loops >= 1, "{st:?}");
    }
}

/// A self-loop with an instruction translated code runs through its interpreter handler
/// (`lodsb`, `run_op`: the cached registers stored before it and loaded again at the
/// back edge) faults in a later round, inside the handler, where the interpreter faults
/// (`rsi` walks off the read-only page into the hole), with the registers of the rounds
/// before.
#[test]
fn self_loops_with_handled_instructions_fault_where_the_interpreter_faults() {
    use iced_x86::code_asm::*;
    let mut a = CodeAssembler::new(64).unwrap();
    let mut top = a.create_label();
    a.set_label(&mut top).unwrap();
    a.lodsb().unwrap();
    a.add(rdx, rax).unwrap();
    a.xor(r13, rdx).unwrap();
    a.rol(r13, 3).unwrap();
    a.add(rbx, r13).unwrap();
    a.dec(r15).unwrap();
    a.jne(top).unwrap();
    a.syscall().unwrap();
    let code = a.assemble(CODE).unwrap();
    let data: Vec<u8> = (0..0x2000u32).map(|k| (k * 5 + 2) as u8).collect();
    for (n, &start) in [RO + 0xe00, DATA + 0x10].iter().enumerate() {
        let (exit, st) = in_both_tiers_in_slices(&code, &data, &slices(n as u64 + 100), |cpu| {
            cpu.gpr[6] = start;
            cpu.gpr[13] = 0x77;
            cpu.gpr[15] = 1000;
        });
        if n == 0 {
            assert!(matches!(exit, Exit::PageFault { .. }), "case {n}: {exit:?}");
        } else {
            assert!(matches!(exit, Exit::Syscall(_)), "case {n}: {exit:?}");
        }
        assert!(st.self_loops >= 1 && st.handled > 0, "case {n}: {st:?}");
    }
}

/// `xchg esp, eax` with an ignored `rep` prefix (`f3 94`, found by the `jit` fuzz target):
/// `rsp` lives in whichever host register the block leaves free, and re-encoded with its
/// prefix as `f3 41 90` (`rsp` in host `r8`) it was the host's `pause`, no exchange. Each
/// case occupies one more pool register before the exchange, so `rsp` lands in each.
#[test]
fn an_ignored_rep_prefix_is_not_copied_to_renamed_registers() {
    // mov ecx/edx/esi/edi/r8d/r9d/r10d/r11d, imm32 (registers the block then uses).
    let movs: [&[u8]; 8] =
        [&[0xb9], &[0xba], &[0xbe], &[0xbf], &[0x41, 0xb8], &[0x41, 0xb9], &[0x41, 0xba], &[0x41, 0xbb]];
    for used in 0..=movs.len() {
        let mut code = Vec::new();
        for (n, mov) in movs[..used].iter().enumerate() {
            code.extend_from_slice(mov);
            code.extend_from_slice(&(n as u32 + 1).to_le_bytes());
        }
        code.extend([0xf3, 0x94, 0x0f, 0x05]);
        let (exit, _, cpu) = in_both_tiers_from_the_first_run(&code, &[], used, |cpu| {
            cpu.gpr[emu::reg::RAX] = 0x1234_5678;
            cpu.gpr[emu::reg::RSP] = 0x9_8765_4320;
        });
        assert!(matches!(exit, Exit::Syscall(_)), "{used}: {exit:?}");
        assert_eq!(
            (cpu.gpr[emu::reg::RSP], cpu.gpr[emu::reg::RAX]),
            (0x1234_5678, 0x8765_4320),
            "{used} registers used"
        );
    }
}

/// `repne cmpsb` with `rcx` zero writes no flag, so a flag written before it is read after
/// it (found by the `jit` fuzz target: both tiers' flag liveness counted `rep cmps` as
/// writing every status flag, and the compare's CF was never stored). With a `divss`
/// between (its MXCSR test clobbers the host's flags) and without; `setc` reads CF.
#[test]
fn a_rep_compare_that_runs_no_round_keeps_the_flags_before_it() {
    // cmp al, bl (CF = 1: 1 < 2); [divss xmm4, xmm5]; repne cmpsb; setc dl; syscall.
    let (cmp, divss, cmps, tail): (&[u8], &[u8], &[u8], &[u8]) =
        (&[0x38, 0xd8], &[0xf3, 0x0f, 0x5e, 0xe5], &[0xf2, 0xa6], &[0x0f, 0x92, 0xc2, 0x0f, 0x05]);
    for with_divss in [false, true] {
        let mut code = cmp.to_vec();
        if with_divss {
            code.extend_from_slice(divss);
        }
        code.extend_from_slice(cmps);
        code.extend_from_slice(tail);
        let (exit, _, cpu) = in_both_tiers_from_the_first_run(&code, &[], format!("divss {with_divss}"), |cpu| {
            cpu.gpr[emu::reg::RAX] = 1;
            cpu.gpr[emu::reg::RBX] = 2;
            cpu.gpr[emu::reg::RCX] = 0;
            cpu.gpr[emu::reg::RDX] = 0;
            cpu.gpr[emu::reg::RSI] = DATA;
            cpu.gpr[emu::reg::RDI] = DATA + 8;
            cpu.xmm[5] = 1;
        });
        assert!(matches!(exit, Exit::Syscall(_)), "{exit:?}");
        assert_eq!(cpu.gpr[emu::reg::RDX], 1, "CF of the compare, divss {with_divss}");
    }
}

/// A loop through three blocks (`jit::unit`): a `jb` whose fall-through goes on, a `jmp`
/// to the third block, a `jne` back to the top, with a side exit to a block that reads
/// the `jb`'s CF (`adc`) and rejoins the loop in its middle. Translated as one unit that
/// loops inside its own code, run in budget slices that end inside rounds and at side
/// exits, and with stores that walk into the read-only page (a fault in a later round, in
/// the unit's second block), it stops where the interpreter stops, with the same
/// registers, memory and live flags.
#[test]
fn loops_through_several_blocks_run_as_one_unit() {
    use iced_x86::code_asm::*;
    let mut a = CodeAssembler::new(64).unwrap();
    let (mut top, mut second, mut third, mut side) =
        (a.create_label(), a.create_label(), a.create_label(), a.create_label());
    a.set_label(&mut top).unwrap();
    a.mov(rax, qword_ptr(rbx + r12 * 8)).unwrap();
    a.add(rax, r13).unwrap();
    a.cmp(al, 0x20).unwrap();
    a.jb(side).unwrap();
    a.set_label(&mut second).unwrap();
    a.imul_3(r13, rax, 3).unwrap();
    a.mov(qword_ptr(rbx + r12 * 8 + 8), rax).unwrap();
    a.inc(r12).unwrap();
    a.jmp(third).unwrap();
    a.set_label(&mut side).unwrap();
    a.adc(rcx, 5).unwrap();
    a.jmp(second).unwrap();
    a.set_label(&mut third).unwrap();
    a.add(rcx, r13).unwrap();
    a.dec(r15).unwrap();
    a.jne(top).unwrap();
    a.syscall().unwrap();
    let code = a.assemble(CODE).unwrap();
    let data: Vec<u8> = (0..0x2000u32).map(|k| (k * 13 + 5) as u8).collect();
    // rbx + r12 * 8: the data (no fault), walking into the read-only page (the store
    // faults in a later round; the status flags the interpreter computed for the `jb`
    // there are dead at the store, and the unit stored them only on its side exit's path).
    for (n, &start) in [DATA, DATA + 0x1f00].iter().enumerate() {
        for seed in 0..4 {
            let (exit, st, _) =
                in_both_tiers_in_slices_as(&code, &data, &slices(seed + 20 * n as u64), true, false, |cpu| {
                    cpu.gpr[3] = start;
                    cpu.gpr[12] = 0;
                    cpu.gpr[13] = 0x1234_5678 + seed;
                    cpu.gpr[15] = if n == 0 { 500 } else { 3000 };
                });
            match n {
                0 => assert!(matches!(exit, Exit::Syscall(_)), "case {n}: {exit:?}"),
                _ => assert!(matches!(exit, Exit::PageFault { .. }), "case {n}: {exit:?}"),
            }
            assert!(st.loop_units >= 1, "case {n}: {st:?}");
        }
    }
}

/// A loop with its test at the top (`crc32`'s: `cmp; je out`, then the body and a `jmp`
/// back): whichever of its two blocks is translated as a unit, its back edge is the
/// fall-through of a `jcc` or a `jmp`; the result, the count and the flags after it
/// (`setc` at the exit) are the interpreter's.
#[test]
fn loops_tested_at_the_top_run_as_one_unit() {
    use iced_x86::code_asm::*;
    let mut a = CodeAssembler::new(64).unwrap();
    let (mut top, mut out) = (a.create_label(), a.create_label());
    a.set_label(&mut top).unwrap();
    a.cmp(rdx, rsi).unwrap();
    a.je(out).unwrap();
    a.movzx(edi, byte_ptr(rsi)).unwrap();
    a.inc(rsi).unwrap();
    a.xor(edi, eax).unwrap();
    a.and(edi, 0xff).unwrap();
    a.shr(eax, 8).unwrap();
    a.xor(eax, dword_ptr(rcx + rdi * 4)).unwrap();
    a.jmp(top).unwrap();
    a.set_label(&mut out).unwrap();
    a.setc(bl).unwrap();
    a.syscall().unwrap();
    let code = a.assemble(CODE).unwrap();
    let data: Vec<u8> = (0..0x2000u32).map(|k| (k * 29 + 7) as u8).collect();
    for (n, threshold) in [Some(0), Some(3), None].into_iter().enumerate() {
        let (exit, st, cpu) = in_both_tiers(&code, &data, threshold, format_args!("threshold {threshold:?}"), |cpu| {
            cpu.gpr[6] = DATA + 0x1000;
            cpu.gpr[2] = DATA + 0x1000 + 0x800 + n as u64;
            cpu.gpr[1] = DATA;
            cpu.gpr[0] = 0xffff_ffff;
        });
        assert!(matches!(exit, Exit::Syscall(_)), "{exit:?}");
        assert!(st.loop_units >= 1, "threshold {threshold:?}: {st:?}");
        assert_eq!(cpu.gpr[6], cpu.gpr[2]);
    }
    // In slices too.
    for seed in 0..4 {
        let (exit, st) = in_both_tiers_in_slices(&code, &data, &slices(seed + 40), |cpu| {
            cpu.gpr[6] = DATA + 0x1000;
            cpu.gpr[2] = DATA + 0x1f00;
            cpu.gpr[1] = DATA;
        });
        assert!(matches!(exit, Exit::Syscall(_)), "{exit:?}");
        assert!(st.loop_units >= 1, "{st:?}");
    }
}

/// The arena is W^X: once code is translated (and linked), no mapping of this process is
/// both writable and executable (`/proc/self/maps`).
#[test]
fn no_mapping_is_writable_and_executable() {
    let code = [0x48, 0xff, 0xc0, 0x49, 0xff, 0xcf, 0x75, 0xf8, 0x0f, 0x05]; // inc rax; dec r15; jnz; syscall
    let mut s = space(&code, &[0; 0x2000]);
    s.set_jit_threshold(0);
    let mut cpu = Cpu::new();
    cpu.tier = Tier::Jit;
    cpu.rip = CODE;
    cpu.gpr[15] = 100;
    let exit = cpu.run(&mut s, 1000);
    let st = s.jit_stats();
    assert!(matches!(exit, Exit::Syscall(_)) && st.blocks_translated >= 1, "{exit:?} {st:?}");
    // (With the space alive: its arena is mapped.)
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let wx: Vec<&str> = maps.lines().filter(|l| l.split(' ').nth(1).is_some_and(|p| p.starts_with("rwx"))).collect();
    assert!(wx.is_empty(), "{wx:#?}");
    // The arena: the same pages twice, one mapping executable, the other writable.
    let shared = |perms: &str| maps.lines().any(|l| l.split(' ').nth(1) == Some(perms) && l.contains("/dev/zero"));
    assert!(shared("r-xs") && shared("rw-s"), "the arena's two mappings:\n{maps}");
}

/// Code on a page both writable and executable (a JIT's, as V8's) is translated too, and a
/// loop that rewrites an immediate of its own code each round (`mov eax, imm32` at the
/// top, its immediate incremented by a store to the page) sees every new value, as under
/// the interpreter: the store leaves translated code for the interpreter, which drops the
/// page's blocks and translations.
#[test]
fn code_on_writable_pages_is_translated_and_may_rewrite_itself() {
    use iced_x86::code_asm::*;
    let mut a = CodeAssembler::new(64).unwrap();
    let mut top = a.create_label();
    a.set_label(&mut top).unwrap();
    a.mov(eax, 0x1000u32).unwrap(); // b8 imm32: its immediate at CODE + 1
    a.add(rbx, rax).unwrap();
    a.inc(dword_ptr(0x10001u64)).unwrap(); // CODE + 1 (absolute: no rip-relative form)
    a.dec(r15).unwrap();
    a.jne(top).unwrap();
    a.syscall().unwrap();
    let rewriting = a.assemble(CODE).unwrap();
    // The same loop without the store: translated at the default threshold.
    let mut a = CodeAssembler::new(64).unwrap();
    let mut top = a.create_label();
    a.set_label(&mut top).unwrap();
    a.mov(eax, 0x1000u32).unwrap();
    a.add(rbx, rax).unwrap();
    a.inc(eax).unwrap();
    a.dec(r15).unwrap();
    a.jne(top).unwrap();
    a.syscall().unwrap();
    let plain = a.assemble(CODE).unwrap();
    let cases =
        [(&rewriting, Some(0), true), (&rewriting, Some(3), true), (&rewriting, None, true), (&plain, None, false)];
    for (n, (code, threshold, rewrites)) in cases.into_iter().enumerate() {
        let (exit, st, cpu) = in_both_tiers_over(code, &[0; 0x2000], true, threshold, n, |cpu| cpu.gpr[15] = 300);
        assert!(matches!(exit, Exit::Syscall(_)), "case {n}: {exit:?}");
        // Rewriting: each round added the immediate the round before left, 0x1000 + k.
        let want = if rewrites { (0..300).map(|k| 0x1000 + k).sum::<u64>() } else { 300 * 0x1000 };
        assert_eq!(cpu.gpr[3], want, "case {n}");
        // (Rewritten each round, the loop's blocks reach a threshold above 0 only anew.)
        if threshold == Some(0) || !rewrites {
            assert!(st.blocks_translated >= 1, "case {n}: nothing translated");
        }
    }
}

/// `mul` and `imul` (one, two and three operands) whose SF, ZF and PF the manuals leave
/// undefined but a later `setcc` reads are translated, not run through `run_op`, and leave
/// the flags the interpreter leaves (SZP of the product's low half, AF clear, CF and OF).
#[test]
fn mul_with_undefined_flags_read_is_translated_as_the_interpreter_runs_it() {
    use iced_x86::code_asm::*;
    type Mul = fn(&mut CodeAssembler) -> Result<(), IcedError>;
    let muls: [(&str, Mul); 6] = [
        ("mul rcx", |a| a.mul(rcx)),
        ("mul ecx", |a| a.mul(ecx)),
        ("mul cl", |a| a.mul(cl)),
        ("imul rcx", |a| a.imul(rcx)),
        ("imul r9, rcx", |a| a.imul_2(r9, rcx)),
        ("imul r13d, ecx, 0x1234", |a| a.imul_3(r13d, ecx, 0x1234)),
    ];
    for (name, mul) in muls {
        let mut a = CodeAssembler::new(64).unwrap();
        mul(&mut a).unwrap();
        a.sets(bl).unwrap();
        a.setz(r10b).unwrap();
        a.setp(dil).unwrap();
        a.syscall().unwrap();
        let code = a.assemble(CODE).unwrap();
        for (k, (x, y)) in [(3u64, 5u64), (0, 7), (0x8000_0000_0000_0001, 3), (0xff, 0xff), (0x1_0000, 0x1_0000)]
            .into_iter()
            .enumerate()
        {
            let (exit, st, cpu) =
                in_both_tiers_from_the_first_run(&code, &[0; 0x2000], format_args!("{name} #{k}"), |cpu| {
                    cpu.gpr[0] = x;
                    cpu.gpr[1] = y;
                    cpu.gpr[9] = x;
                    cpu.rflags = emu::flags::FIXED | emu::flags::STATUS;
                });
            assert!(matches!(exit, Exit::Syscall(_)), "{name}: {exit:?}");
            assert_eq!(st.handled, 0, "{name}: through run_op: {st:?}");
            assert_eq!(cpu.rflags & emu::flags::AF, 0, "{name} #{k}: AF cleared");
        }
    }
}

/// On a writable page a block is as long as elsewhere (`Block::watch`), and an instruction
/// that rewrites a later one of its own block is followed by the new one: the store
/// changes the immediate of the `add` two instructions after it, each round a new value.
/// Both tiers, run whole and in budget slices that end anywhere (the interpreter's prefix
/// of a block), agree with each other and with the value the rewritten code computes.
#[test]
fn an_instruction_may_rewrite_a_later_one_in_its_own_block() {
    use iced_x86::code_asm::*;
    // top: mov [CODE + off], ecx; inc rcx; add rbx, imm32 (rewritten); dec r15; jne top
    let build = |off: u64| {
        let mut a = CodeAssembler::new(64).unwrap();
        let mut top = a.create_label();
        a.set_label(&mut top).unwrap();
        a.mov(dword_ptr(CODE + off), ecx).unwrap();
        a.inc(rcx).unwrap();
        a.add(rbx, 0x7777).unwrap();
        a.dec(r15).unwrap();
        a.jne(top).unwrap();
        a.syscall().unwrap();
        a.assemble(CODE).unwrap()
    };
    // The `add`'s immediate: its last four bytes (`48 81 c3 imm32`).
    let first = build(0);
    let add_at = {
        let mut d = iced_x86::Decoder::with_ip(64, &first, CODE, iced_x86::DecoderOptions::NONE);
        let insns: Vec<Instruction> = std::iter::from_fn(|| d.can_decode().then(|| d.decode())).collect();
        let add = insns.iter().find(|i| i.mnemonic() == iced_x86::Mnemonic::Add).unwrap();
        add.next_ip() - 4 - CODE
    };
    let code = build(add_at);
    assert_eq!(code.len(), first.len());
    let rounds = 200u64;
    // Round k stores k + 1 (rcx before its `inc`) then adds it.
    let want = (0..rounds).map(|k| k + 1).sum::<u64>();
    let init = |cpu: &mut Cpu| {
        cpu.gpr[1] = 1;
        cpu.gpr[15] = rounds;
    };
    for threshold in [Some(0), Some(2), None] {
        let (exit, _, cpu) =
            in_both_tiers_over(&code, &[0; 0x2000], true, threshold, format_args!("{threshold:?}"), init);
        assert!(matches!(exit, Exit::Syscall(_)), "{threshold:?}: {exit:?}");
        assert_eq!(cpu.gpr[3], want, "{threshold:?}");
    }
    // Budget slices (a block's prefix in the interpreter, a write before its end): the
    // tiers agree after every one.
    for seed in 0..4 {
        let mut r = Rng::new(seed);
        let short: Vec<u64> = (0..2000).map(|_| 1 + r.below(7)).collect();
        let (exit, _, cpu) = in_both_tiers_in_slices_as(&code, &[0; 0x2000], &short, false, true, init);
        assert!(matches!(exit, Exit::Syscall(_)), "seed {seed}: {exit:?}");
        assert_eq!(cpu.gpr[3], want, "seed {seed}");
    }
}
