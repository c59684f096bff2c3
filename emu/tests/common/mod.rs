//! Shared pieces of the differential tester: machine state, cases, the emu
//! runner, and the comparison of a native run with an emu run.

#![allow(dead_code)]

pub mod layout;
pub mod native;

use emu::{Access, AddressSpace, Cpu, Exit, GuestAddress, JitStats, Perm, Tier, X87State};
use iced_x86::{CpuidFeature, Decoder, DecoderOptions, Formatter, IntelFormatter};

use layout::*;
use native::{NativeEnd, NativeOut};

pub const STATUS: u64 = emu::flags::STATUS;
/// The CPU model the emu side runs as: the one with the most instructions.
pub const MODEL: emu::CpuModel = emu::CpuModel::V3;
pub const DF: u64 = emu::flags::DF;
/// Size of the XSAVE image of x87, SSE and AVX state.
pub const FX_LEN: usize = 832;

/// xorshift64*: small, fast, good enough, and reproducible from a seed.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
    /// True with probability `num`/`den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }
    pub fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[self.below(v.len() as u64) as usize]
    }
}

/// Register, flag and XSAVE-image state (x87, SSE, AVX): the input of a case, and what
/// both runs are compared on.
#[derive(Clone)]
pub struct State {
    pub gpr: [u64; 16],
    pub rflags: u64,
    /// XSAVE layout: FCW@0 FSW@2 FTW@4 MXCSR@24 ST(i)@32+16i XMMi@160+16i, XSTATE_BV@512
    /// (always x87 | SSE | AVX here), YMMi bits 255:128 @576+16i.
    pub fx: [u8; FX_LEN],
}

impl State {
    pub fn new() -> State {
        let mut s = State { gpr: [0; 16], rflags: 0x202, fx: [0; FX_LEN] };
        s.fx[512] = 7;
        s.set_fcw(0x037f);
        s.set_mxcsr(0x1f80);
        s.gpr[4] = STACK_LO;
        s
    }
    pub fn fcw(&self) -> u16 {
        u16::from_le_bytes([self.fx[0], self.fx[1]])
    }
    pub fn set_fcw(&mut self, v: u16) {
        self.fx[0..2].copy_from_slice(&v.to_le_bytes());
    }
    pub fn fsw(&self) -> u16 {
        u16::from_le_bytes([self.fx[2], self.fx[3]])
    }
    pub fn set_fsw(&mut self, v: u16) {
        self.fx[2..4].copy_from_slice(&v.to_le_bytes());
    }
    pub fn ftw(&self) -> u8 {
        self.fx[4]
    }
    pub fn set_ftw(&mut self, v: u8) {
        self.fx[4] = v;
    }
    pub fn mxcsr(&self) -> u32 {
        u32::from_le_bytes(self.fx[24..28].try_into().unwrap())
    }
    pub fn set_mxcsr(&mut self, v: u32) {
        self.fx[24..28].copy_from_slice(&v.to_le_bytes());
    }
    /// ST(i) as an 80-bit value.
    pub fn st(&self, i: usize) -> u128 {
        let mut b = [0u8; 16];
        b[..10].copy_from_slice(&self.fx[32 + 16 * i..42 + 16 * i]);
        u128::from_le_bytes(b)
    }
    pub fn set_st(&mut self, i: usize, v: u128) {
        self.fx[32 + 16 * i..48 + 16 * i].fill(0);
        self.fx[32 + 16 * i..42 + 16 * i].copy_from_slice(&v.to_le_bytes()[..10]);
    }
    pub fn xmm(&self, i: usize) -> u128 {
        u128::from_le_bytes(self.fx[160 + 16 * i..176 + 16 * i].try_into().unwrap())
    }
    pub fn set_xmm(&mut self, i: usize, v: u128) {
        self.fx[160 + 16 * i..176 + 16 * i].copy_from_slice(&v.to_le_bytes());
    }
    /// Bits 255:128 of YMMi.
    pub fn ymm_hi(&self, i: usize) -> u128 {
        u128::from_le_bytes(self.fx[576 + 16 * i..592 + 16 * i].try_into().unwrap())
    }
    pub fn set_ymm_hi(&mut self, i: usize, v: u128) {
        self.fx[576 + 16 * i..592 + 16 * i].copy_from_slice(&v.to_le_bytes());
    }

    /// Loads this state into an emu CPU.
    pub fn to_cpu(&self) -> Cpu {
        let mut cpu = Cpu::new();
        cpu.gpr = self.gpr;
        cpu.set_rflags(self.rflags);
        for i in 0..16 {
            cpu.xmm[i] = self.xmm(i);
            cpu.ymm_hi[i] = self.ymm_hi(i);
        }
        cpu.mxcsr = self.mxcsr();
        let top = ((self.fsw() >> 11) & 7) as usize;
        let mut regs = [0u128; 8];
        for i in 0..8 {
            regs[(top + i) & 7] = self.st(i);
        }
        cpu.x87 = X87State { fcw: self.fcw(), fsw: self.fsw(), ftw: self.ftw(), regs, fop: 0, fip: 0, fdp: 0 };
        cpu
    }

    /// The state of an emu CPU, in the same form.
    pub fn from_cpu(cpu: &Cpu) -> State {
        let mut s = State { gpr: cpu.gpr, rflags: cpu.rflags, fx: [0; FX_LEN] };
        s.fx[512] = 7;
        s.set_fcw(cpu.x87.fcw);
        s.set_fsw(cpu.x87.fsw);
        s.set_ftw(cpu.x87.ftw);
        s.set_mxcsr(cpu.mxcsr);
        let top = ((cpu.x87.fsw >> 11) & 7) as usize;
        for i in 0..8 {
            s.set_st(i, cpu.x87.regs[(top + i) & 7]);
        }
        for i in 0..16 {
            s.set_xmm(i, cpu.xmm[i]);
            s.set_ymm_hi(i, cpu.ymm_hi[i]);
        }
        s
    }
}

impl Default for State {
    fn default() -> Self {
        State::new()
    }
}

/// How floating-point results are compared.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FpCompare {
    Exact,
    /// x87 transcendentals: emu rounds (nearly) the exact value, hardware
    /// is within ~0.6 ulp of it, so ST values may be 1 ulp (of the 64-bit
    /// significand) apart and C1 (the side the unrounded value lay on) may
    /// differ; everything else, PE included, must agree.
    Transcendental,
    /// rcpps/rsqrtps and friends: implementation-specific approximations;
    /// 32-bit lanes within 2^-11 relative.
    Approx,
}

/// One snippet with its inputs and what to ignore when comparing.
#[derive(Clone)]
pub struct Case {
    pub code: Vec<u8>,
    pub input: State,
    /// Bytes written over the data image before the case runs.
    pub patches: Vec<(u64, Vec<u8>)>,
    /// Family for the summary ("int/alu", "sse/SSE2", "x87", ...).
    pub family: String,
    /// The instruction form (iced `Code` name), for the unimplemented list.
    pub form: String,
    pub features: &'static [CpuidFeature],
    /// Status flags the manuals leave undefined for this instance.
    pub undef_flags: u64,
    /// For a run that stops part-way (a fault) at one of these addresses, the status
    /// flags not compared instead of `undef_flags`: those left undefined by the
    /// instructions before, and those no instruction from there on reads before writing
    /// them (emu may skip computing a flag nothing reads, and a fault before the write
    /// shows the older value: see the `jit` module note on status flags).
    pub undef_at: Vec<(u64, u64)>,
    /// GPRs whose value is undefined after this instance (bit n = gpr n).
    pub undef_regs: u16,
    /// x87 status-word bits (C0..C3) the manuals leave undefined.
    pub fsw_undef: u16,
    pub fp: FpCompare,
    /// A write fault may be reported at any address in `[start, end)` (masked stores:
    /// hardware's choice among the operand's bytes is microarchitectural).
    pub loose_fault: Option<(u64, u64)>,
}

impl Case {
    pub fn new(code: Vec<u8>, input: State, family: &str, form: &str) -> Case {
        Case {
            code,
            input,
            patches: Vec::new(),
            family: family.to_string(),
            form: form.to_string(),
            features: &[],
            undef_flags: 0,
            undef_at: Vec::new(),
            undef_regs: 0,
            fsw_undef: 0,
            fp: FpCompare::Exact,
            loose_fault: None,
        }
    }
}

/// Disassembles a snippet (one instruction per line, `; ` separated).
pub fn disasm(code: &[u8]) -> String {
    let mut dec = Decoder::with_ip(64, code, CODE, DecoderOptions::NONE);
    let mut f = IntelFormatter::new();
    let mut out = Vec::new();
    while dec.can_decode() {
        let i = dec.decode();
        let mut s = String::new();
        f.format(&i, &mut s);
        out.push(s);
    }
    out.join("; ")
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(" ")
}

// ---- the emu runner ------------------------------------------------------------

pub struct EmuOut {
    pub exit: Exit,
    pub cpu: Cpu,
    pub data: Vec<u8>,
    /// What the translation tier did during this run (all zero under the interpreter).
    pub jit: JitStats,
}

pub struct EmuRunner {
    pub space: AddressSpace,
    pub tier: Tier,
}

impl EmuRunner {
    /// A runner for `tier`. Under `Tier::Jit` every block is translated the first time it
    /// runs (a case runs once): the code page is mapped read-execute, so its blocks can be.
    pub fn new(image: &[u8], tier: Tier) -> EmuRunner {
        let mut space = AddressSpace::new(LIMIT).unwrap();
        if tier == Tier::Jit {
            space.set_jit_threshold(0);
        }
        let m = &mut space.mem;
        m.map(GuestAddress(CODE), 0x1000, Perm::RX).unwrap();
        m.map(GuestAddress(DATA), DATA_LEN, Perm::RW).unwrap();
        m.map(GuestAddress(RO), 0x1000, Perm::READ).unwrap();
        m.map(GuestAddress(LOW), 0x1000, Perm::RW).unwrap();
        m.write_raw(GuestAddress(RO), &image[0x2000..0x3000]).unwrap();
        EmuRunner { space, tier }
    }

    pub fn run(&mut self, case: &Case, image: &[u8]) -> EmuOut {
        let m = &mut self.space.mem;
        let mut page = [0u8; 0x1000];
        for k in (0..0x1000).step_by(2) {
            page[k] = 0x0f;
            page[k + 1] = 0x0b;
        }
        let n = case.code.len();
        page[..n].copy_from_slice(&case.code);
        page[n] = 0xf4; // hlt marks the end of the snippet
        m.write_raw(GuestAddress(CODE), &page).unwrap();
        m.write_raw(GuestAddress(DATA), &image[..0x2000]).unwrap();
        m.write_raw(GuestAddress(LOW), &image[0x3000..]).unwrap();
        for (addr, bytes) in &case.patches {
            if !(RO..RO + 0x1000).contains(addr) {
                m.write_raw(GuestAddress(*addr), bytes).unwrap();
            }
        }
        let mut cpu = case.input.to_cpu();
        cpu.model = MODEL;
        cpu.tier = self.tier;
        cpu.rip = CODE;
        let before = self.space.jit_stats();
        let exit = cpu.run(&mut self.space, 10_000);
        let jit = self.space.jit_stats() - before;
        let mut data = vec![0u8; OUT_DATA_LEN];
        self.space.mem.read_raw(GuestAddress(DATA), &mut data[..0x2000]).unwrap();
        self.space.mem.read_raw(GuestAddress(LOW), &mut data[0x2000..]).unwrap();
        EmuOut { exit, cpu, data, jit }
    }

    /// Runs `cpuid` for a leaf under emu: [eax, ebx, ecx, edx].
    pub fn cpuid(&mut self, leaf: u32, sub: u32) -> [u32; 4] {
        let image = vec![0u8; IMAGE_LEN];
        let mut s = State::new();
        s.gpr[0] = leaf as u64;
        s.gpr[1] = sub as u64;
        let case = Case::new(vec![0x0f, 0xa2], s, "cpuid", "cpuid");
        let out = self.run(&case, &image);
        let g = out.cpu.gpr;
        [g[0] as u32, g[3] as u32, g[1] as u32, g[2] as u32]
    }
}

/// The cpuid features emu claims, as a predicate over iced's features.
pub struct Claims {
    ecx1: u32,
    edx1: u32,
    ebx7: u32,
    ecx7: u32,
    ecx_x1: u32,
    edx_x1: u32,
    eax_d1: u32,
}

impl Claims {
    pub fn probe(r: &mut EmuRunner) -> Claims {
        let l1 = r.cpuid(1, 0);
        let l7 = r.cpuid(7, 0);
        let x1 = r.cpuid(0x8000_0001, 0);
        let d1 = r.cpuid(0xd, 1);
        Claims { ecx1: l1[2], edx1: l1[3], ebx7: l7[1], ecx7: l7[2], ecx_x1: x1[2], edx_x1: x1[3], eax_d1: d1[0] }
    }

    pub fn feature(&self, f: CpuidFeature) -> bool {
        use CpuidFeature as F;
        let bit = |w: u32, b: u32| w >> b & 1 != 0;
        match f {
            F::INTEL8086 | F::INTEL186 | F::INTEL286 | F::INTEL386 | F::INTEL486 | F::X64 | F::MULTIBYTENOP => true,
            F::FPU | F::FPU287 | F::FPU387 => bit(self.edx1, 0),
            F::CX8 => bit(self.edx1, 8),
            F::CMOV => bit(self.edx1, 15),
            F::FXSR => bit(self.edx1, 24),
            F::SSE => bit(self.edx1, 25),
            F::SSE2 => bit(self.edx1, 26),
            F::MMX => bit(self.edx1, 23),
            F::TSC => bit(self.edx1, 4),
            F::CLFSH => bit(self.edx1, 19),
            F::SSE3 => bit(self.ecx1, 0),
            F::PCLMULQDQ => bit(self.ecx1, 1),
            F::SSSE3 => bit(self.ecx1, 9),
            F::FMA => bit(self.ecx1, 12),
            F::CMPXCHG16B => bit(self.ecx1, 13),
            F::SSE4_1 => bit(self.ecx1, 19),
            F::SSE4_2 => bit(self.ecx1, 20),
            F::MOVBE => bit(self.ecx1, 22),
            F::POPCNT => bit(self.ecx1, 23),
            F::AES => bit(self.ecx1, 25),
            F::XSAVE => bit(self.ecx1, 26),
            F::AVX => bit(self.ecx1, 28),
            F::F16C => bit(self.ecx1, 29),
            F::RDRAND => bit(self.ecx1, 30),
            F::FSGSBASE => bit(self.ebx7, 0),
            F::BMI1 => bit(self.ebx7, 3),
            F::AVX2 => bit(self.ebx7, 5),
            F::BMI2 => bit(self.ebx7, 8),
            F::RDSEED => bit(self.ebx7, 18),
            F::ADX => bit(self.ebx7, 19),
            F::CLFLUSHOPT => bit(self.ebx7, 23),
            F::CLWB => bit(self.ebx7, 24),
            F::SHA => bit(self.ebx7, 29),
            F::RDPID => bit(self.ecx7, 22),
            F::LZCNT => bit(self.ecx_x1, 5),
            F::PREFETCHW => bit(self.ecx_x1, 8),
            F::SYSCALL => bit(self.edx_x1, 11),
            F::RDTSCP => bit(self.edx_x1, 27),
            F::XSAVEOPT => bit(self.eax_d1, 0),
            F::XSAVEC => bit(self.eax_d1, 1),
            _ => false,
        }
    }

    pub fn all(&self, fs: &[CpuidFeature]) -> bool {
        fs.iter().all(|&f| self.feature(f))
    }
}

// ---- comparison --------------------------------------------------------------------

/// How a run ended, in common terms.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum End {
    Done,
    PageFault(u64, Access),
    DivideError,
    InvalidOpcode,
    GeneralProtection,
    Breakpoint,
    SimdFloatingPoint,
    FloatingPoint,
    Other(i64, i64),
}

pub fn native_end(o: &NativeOut) -> End {
    match o.end() {
        NativeEnd::Crashed => End::Other(-1, -1),
        NativeEnd::Done => End::Done,
        NativeEnd::Signal { signo, trapno, err, addr } => match trapno {
            14 => {
                let access = if err & 0x10 != 0 {
                    Access::Execute
                } else if err & 2 != 0 {
                    Access::Write
                } else {
                    Access::Read
                };
                End::PageFault(addr, access)
            }
            0 => End::DivideError,
            6 => End::InvalidOpcode,
            12 | 13 => End::GeneralProtection,
            3 => End::Breakpoint,
            19 => End::SimdFloatingPoint,
            16 => End::FloatingPoint,
            t => End::Other(signo as i64, t as i64),
        },
    }
}

pub fn emu_end(e: &EmuOut, case: &Case) -> End {
    match e.exit {
        Exit::Halt if e.cpu.rip == CODE + case.code.len() as u64 => End::Done,
        Exit::PageFault { addr, access } => End::PageFault(addr, access),
        Exit::DivideError => End::DivideError,
        Exit::InvalidOpcode { .. } => End::InvalidOpcode,
        Exit::GeneralProtection => End::GeneralProtection,
        Exit::Breakpoint => End::Breakpoint,
        Exit::SimdFloatingPoint => End::SimdFloatingPoint,
        Exit::FloatingPoint => End::FloatingPoint,
        _ => End::Other(-2, e.cpu.rip as i64),
    }
}

pub enum Outcome {
    Match,
    /// emu raised #UD where the host did not.
    Unimplemented,
    Mismatch(String),
}

/// The distance in ulps between two finite 80-bit values of the same sign
/// (adjacent values differ by one in the encoding, across binades too).
fn ulps80(a: u128, b: u128) -> Option<u128> {
    let key = |v: u128| -> Option<u128> {
        let e = (v >> 64) as u64 & 0x7fff;
        let m = v as u64;
        match e {
            0x7fff => None,
            0 => Some(m as u128),
            _ if m >> 63 == 0 => None,
            _ => Some((((e - 1) as u128) << 63) + m as u128),
        }
    };
    if (a ^ b) >> 79 & 1 != 0 {
        return None;
    }
    Some(key(a)?.abs_diff(key(b)?))
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    a == b || (a - b).abs() <= rel * a.abs().max(b.abs())
}

/// Compares the FP/SSE parts of two states; pushes differences.
fn compare_fp(case: &Case, n: &State, e: &State, diffs: &mut Vec<String>) {
    if n.mxcsr() != e.mxcsr() {
        diffs.push(format!("mxcsr: native {:#x} emu {:#x}", n.mxcsr(), e.mxcsr()));
    }
    for i in 0..16 {
        let (a, b) = (n.xmm(i), e.xmm(i));
        let same = match case.fp {
            FpCompare::Approx => (0..4).all(|k| {
                let x = f32::from_bits((a >> (32 * k)) as u32);
                let y = f32::from_bits((b >> (32 * k)) as u32);
                (x.to_bits() == y.to_bits()) || close(x as f64, y as f64, 1.0 / 2048.0)
            }),
            _ => a == b,
        };
        if !same {
            diffs.push(format!("xmm{i}: native {a:032x} emu {b:032x}"));
        }
        let (a, b) = (n.ymm_hi(i), e.ymm_hi(i));
        let same = match case.fp {
            FpCompare::Approx => (0..4).all(|k| {
                let x = f32::from_bits((a >> (32 * k)) as u32);
                let y = f32::from_bits((b >> (32 * k)) as u32);
                (x.to_bits() == y.to_bits()) || close(x as f64, y as f64, 1.0 / 2048.0)
            }),
            _ => a == b,
        };
        if !same {
            diffs.push(format!("ymm{i}[255:128]: native {a:032x} emu {b:032x}"));
        }
    }
    if n.fcw() != e.fcw() {
        diffs.push(format!("fcw: native {:#06x} emu {:#06x}", n.fcw(), e.fcw()));
    }
    let mut fsw_mask: u16 = !case.fsw_undef;
    if case.fp == FpCompare::Transcendental {
        fsw_mask &= !(1 << 9);
    }
    if n.fsw() & fsw_mask != e.fsw() & fsw_mask {
        diffs.push(format!("fsw: native {:#06x} emu {:#06x}", n.fsw(), e.fsw()));
    }
    if n.ftw() != e.ftw() {
        diffs.push(format!("ftw: native {:#04x} emu {:#04x}", n.ftw(), e.ftw()));
    }
    let top = ((n.fsw() >> 11) & 7) as usize;
    for i in 0..8 {
        if n.ftw() >> ((top + i) & 7) & 1 == 0 {
            continue; // empty registers keep stale contents
        }
        let (a, b) = (n.st(i), e.st(i));
        let same = match case.fp {
            FpCompare::Transcendental => a == b || ulps80(a, b).is_some_and(|d| d <= 1),
            _ => a == b,
        };
        if !same {
            diffs.push(format!("st{i}: native {a:020x} emu {b:020x}"));
        }
    }
}

const GPR_NAMES: [&str; 16] =
    ["rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"];

/// Compares one case's native and emu results.
pub fn compare(case: &Case, nat: &NativeOut, emu: &EmuOut) -> Outcome {
    let ne = native_end(nat);
    let ee = emu_end(emu, case);
    if ee == End::InvalidOpcode && ne != End::InvalidOpcode {
        return Outcome::Unimplemented;
    }
    let mut diffs = Vec::new();
    let within = |e: End| match (e, case.loose_fault) {
        (End::PageFault(a, Access::Write), Some((lo, hi))) => (lo..hi).contains(&a),
        _ => false,
    };
    if ne != ee && !(within(ne) && within(ee)) {
        diffs.push(format!("end: native {ne:?} emu {ee:?} (emu exit {:?})", emu.exit));
    } else if matches!(ne, End::Other(..)) {
        diffs.push(format!("native run did not finish: {ne:?}"));
    }
    if diffs.is_empty() {
        if nat.rip != emu.cpu.rip {
            diffs.push(format!("rip: native {:#x} emu {:#x}", nat.rip, emu.cpu.rip));
        }
        for (r, name) in GPR_NAMES.iter().enumerate() {
            if case.undef_regs >> r & 1 == 0 && nat.gpr[r] != emu.cpu.gpr[r] {
                diffs.push(format!("{name}: native {:#x} emu {:#x}", nat.gpr[r], emu.cpu.gpr[r]));
            }
        }
        let undef = match ne {
            End::Done => case.undef_flags,
            _ => case.undef_at.iter().find(|&&(at, _)| at == nat.rip).map_or(case.undef_flags, |&(_, f)| f),
        };
        let m = (STATUS | DF) & !undef;
        if nat.rflags & m != emu.cpu.rflags & m {
            diffs.push(format!(
                "rflags: native {:#x} emu {:#x} (compared {m:#x}, differ {:#x})",
                nat.rflags & m,
                emu.cpu.rflags & m,
                (nat.rflags ^ emu.cpu.rflags) & m
            ));
        }
        let ns = State { gpr: nat.gpr, rflags: nat.rflags, fx: nat.fx };
        compare_fp(case, &ns, &State::from_cpu(&emu.cpu), &mut diffs);
        if nat.data[..] != emu.data[..] {
            let offs: Vec<usize> = (0..OUT_DATA_LEN).filter(|&k| nat.data[k] != emu.data[k]).collect();
            let addr = |k: usize| {
                if k < 0x2000 {
                    DATA + k as u64
                } else {
                    LOW + (k - 0x2000) as u64
                }
            };
            let show: Vec<String> = offs
                .iter()
                .take(16)
                .map(|&k| format!("{:#x}: {:02x}/{:02x}", addr(k), nat.data[k], emu.data[k]))
                .collect();
            diffs.push(format!("memory ({} bytes differ, native/emu): {}", offs.len(), show.join(" ")));
        }
    }
    if diffs.is_empty() {
        Outcome::Match
    } else {
        Outcome::Mismatch(diffs.join("\n    "))
    }
}

/// A readable description of a case's inputs.
pub fn describe(case: &Case) -> String {
    let s = &case.input;
    let mut out = format!("{}  [{}]  ({}, {})\n  in: ", disasm(&case.code), hex(&case.code), case.form, case.family);
    for (name, v) in GPR_NAMES.iter().zip(s.gpr) {
        out += &format!("{name}={v:#x} ");
    }
    out += &format!("rflags={:#x}", s.rflags);
    if !case.family.starts_with("int") {
        out += &format!("\n  mxcsr={:#x} fcw={:#x} fsw={:#x} ftw={:#x}", s.mxcsr(), s.fcw(), s.fsw(), s.ftw());
        for i in 0..16 {
            out += &format!("\n  ymm{i}={:032x}_{:032x}", s.ymm_hi(i), s.xmm(i));
        }
        for i in 0..8 {
            out += &format!("\n  st{i}={:020x}", s.st(i));
        }
    }
    for (a, b) in &case.patches {
        out += &format!("\n  mem[{a:#x}] = {}", hex(b));
    }
    out
}

/// Compares two emu runs of one case (the translator's against the interpreter's) on
/// everything the guest could see, the flags and registers the manuals leave undefined
/// included: both tiers are exact at every exit of the loop (see the `jit` module note),
/// and the interpreter is the reference for the values it picks for those. At a fault
/// part-way (`Case::undef_at`) flags nothing reads from there on may differ (each tier
/// skips computing some of them).
pub fn compare_tiers(case: &Case, interp: &EmuOut, jit: &EmuOut) -> Option<String> {
    let (a, b) = (&interp.cpu, &jit.cpu);
    let dead = case.undef_at.iter().find(|&&(at, _)| at == a.rip).map_or(0, |&(_, f)| f);
    let mut diffs = Vec::new();
    if interp.exit != jit.exit {
        diffs.push(format!("exit: interp {:?} jit {:?}", interp.exit, jit.exit));
    }
    if (a.rip, a.icount) != (b.rip, b.icount) {
        diffs.push(format!("rip, icount: interp {:#x}, {} jit {:#x}, {}", a.rip, a.icount, b.rip, b.icount));
    }
    for (r, name) in GPR_NAMES.iter().enumerate() {
        if a.gpr[r] != b.gpr[r] {
            diffs.push(format!("{name}: interp {:#x} jit {:#x}", a.gpr[r], b.gpr[r]));
        }
    }
    if (a.rflags ^ b.rflags) & !dead != 0 {
        diffs.push(format!("rflags: interp {:#x} jit {:#x} (differ {:#x})", a.rflags, b.rflags, a.rflags ^ b.rflags));
    }
    for i in 0..16 {
        if (a.xmm[i], a.ymm_hi[i]) != (b.xmm[i], b.ymm_hi[i]) {
            diffs.push(format!(
                "ymm{i}: interp {:032x}_{:032x} jit {:032x}_{:032x}",
                a.ymm_hi[i], a.xmm[i], b.ymm_hi[i], b.xmm[i]
            ));
        }
    }
    if a.mxcsr != b.mxcsr {
        diffs.push(format!("mxcsr: interp {:#x} jit {:#x}", a.mxcsr, b.mxcsr));
    }
    if a.x87 != b.x87 {
        diffs.push(format!("x87: interp {:x?} jit {:x?}", a.x87, b.x87));
    }
    if interp.data != jit.data {
        let offs: Vec<usize> = (0..OUT_DATA_LEN).filter(|&k| interp.data[k] != jit.data[k]).collect();
        let show: Vec<String> =
            offs.iter().take(8).map(|&k| format!("+{k:#x}: {:02x}/{:02x}", interp.data[k], jit.data[k])).collect();
        diffs.push(format!("memory ({} bytes differ, interp/jit): {}", offs.len(), show.join(" ")));
    }
    (!diffs.is_empty()).then(|| diffs.join("\n    "))
}
