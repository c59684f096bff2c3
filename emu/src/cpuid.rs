//! The CPU emu says it is: the `cpuid` leaves of each [`CpuModel`], and which
//! instructions that model executes.
//!
//! Each model is the identity of a real Intel CPU (vendor, family/model/stepping,
//! brand string, cache descriptors) with its feature bits cut down to exactly what emu
//! implements, the way a hypervisor masks features: software that trusts feature bits
//! only behind a known vendor (glibc's loader, OpenSSL) picks its fast paths, and never
//! an instruction emu lacks. The same table decides decoding: an instruction whose
//! features (iced's `CpuidFeature` list) the model does not report is #UD, as on the
//! real CPU, so `--cpu v1` also catches code that runs instructions it never checked for.
//!
//! The machine presented is one core with one thread (like a one-vCPU virtual machine),
//! with the caches of the real part; XCR0 enables x87, SSE and AVX state (models with
//! XSAVE). Leaves not listed read as zeros, as on hardware for unimplemented leaves below
//! the maximum.

use iced_x86::CpuidFeature;

/// The CPU a guest sees (`warden run --cpu`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum CpuModel {
    /// The x86-64 baseline (x86-64-v1): SSE2, MMX, x87. Identity: a Pentium 4 (Prescott)
    /// with SSE3 masked.
    V1,
    /// x86-64-v2: adds SSE3, SSSE3, SSE4.1/4.2, POPCNT, CMPXCHG16B, LAHF/SAHF. Identity: a
    /// Core i7 920 (Nehalem).
    V2,
    /// x86-64-v3: adds AVX, AVX2, FMA, F16C, BMI1/2, LZCNT, MOVBE, XSAVE, and AES-NI,
    /// PCLMULQDQ, SHA, ADX, RDRAND/RDSEED, FSGSBASE, RDPID, CLFLUSHOPT, CLWB. Identity: a
    /// Core i5-12400 (Alder Lake, performance cores only; no AVX-512, as shipped).
    #[default]
    V3,
}

/// XCR0 of models with XSAVE: x87, SSE and AVX state.
pub const XCR0: u64 = 0b111;
/// Size of the XSAVE area for XCR0 (legacy region, header, AVX upper halves).
pub const XSAVE_SIZE: u32 = 832;
/// Offset of the AVX (YMM upper halves) component in the standard XSAVE format.
pub const XSAVE_YMM_OFFSET: u32 = 576;

/// One cache level as leaf 4 describes it.
struct Cache {
    /// 1 data, 2 instruction, 3 unified.
    kind: u32,
    level: u32,
    ways: u32,
    size_kib: u32,
}

impl Cache {
    fn leaf4(&self) -> [u32; 4] {
        const LINE: u32 = 64;
        let sets = self.size_kib * 1024 / (self.ways * LINE);
        // Self-initialising; one thread and one core share it (bits 25:14 and 31:26 zero).
        let eax = self.kind | self.level << 5 | 1 << 8;
        let ebx = (self.ways - 1) << 22 | (LINE - 1);
        // EDX bit 1: inclusive of lower levels (the last level only).
        let edx = if self.level == 3 { 1 << 1 } else { 0 };
        [eax, ebx, sets - 1, edx]
    }
}

/// Everything one model's `cpuid` reports.
struct Identity {
    brand: &'static [u8],
    /// Leaf 1 EAX: stepping, model, family.
    signature: u32,
    max_leaf: u32,
    leaf1_ecx: u32,
    leaf1_edx: u32,
    leaf7_ebx: u32,
    leaf7_ecx: u32,
    leaf7_edx: u32,
    ext1_ecx: u32,
    ext1_edx: u32,
    /// Leaf 0x8000_0006 ECX (L2 size, associativity, line).
    ext6_ecx: u32,
    /// Leaf 0x8000_0008 EAX (physical and linear address bits).
    ext8_eax: u32,
    caches: &'static [Cache],
}

/// Leaf 1 EDX bits.
mod edx1 {
    pub const FPU: u32 = 1 << 0;
    pub const TSC: u32 = 1 << 4;
    pub const CX8: u32 = 1 << 8;
    pub const CMOV: u32 = 1 << 15;
    pub const CLFSH: u32 = 1 << 19;
    pub const MMX: u32 = 1 << 23;
    pub const FXSR: u32 = 1 << 24;
    pub const SSE: u32 = 1 << 25;
    pub const SSE2: u32 = 1 << 26;
}

/// Leaf 1 ECX bits.
mod ecx1 {
    pub const SSE3: u32 = 1 << 0;
    pub const PCLMULQDQ: u32 = 1 << 1;
    pub const SSSE3: u32 = 1 << 9;
    pub const FMA: u32 = 1 << 12;
    pub const CX16: u32 = 1 << 13;
    pub const SSE4_1: u32 = 1 << 19;
    pub const SSE4_2: u32 = 1 << 20;
    pub const MOVBE: u32 = 1 << 22;
    pub const POPCNT: u32 = 1 << 23;
    pub const AES: u32 = 1 << 25;
    pub const XSAVE: u32 = 1 << 26;
    pub const OSXSAVE: u32 = 1 << 27;
    pub const AVX: u32 = 1 << 28;
    pub const F16C: u32 = 1 << 29;
    pub const RDRAND: u32 = 1 << 30;
}

/// Leaf 7 (subleaf 0) bits.
mod l7 {
    pub const FSGSBASE: u32 = 1 << 0;
    pub const BMI1: u32 = 1 << 3;
    pub const AVX2: u32 = 1 << 5;
    pub const BMI2: u32 = 1 << 8;
    pub const ERMS: u32 = 1 << 9;
    pub const RDSEED: u32 = 1 << 18;
    pub const ADX: u32 = 1 << 19;
    pub const CLFLUSHOPT: u32 = 1 << 23;
    pub const CLWB: u32 = 1 << 24;
    pub const SHA: u32 = 1 << 29;
    /// ECX.
    pub const RDPID: u32 = 1 << 22;
    /// EDX: fast short `rep movsb` (a performance hint; emu's `rep movs` is a bulk copy).
    pub const FSRM: u32 = 1 << 4;
}

/// Leaf 0x8000_0001 bits.
mod ext1 {
    /// ECX.
    pub const LAHF: u32 = 1 << 0;
    pub const LZCNT: u32 = 1 << 5;
    pub const PREFETCHW: u32 = 1 << 8;
    /// EDX.
    pub const SYSCALL: u32 = 1 << 11;
    pub const NX: u32 = 1 << 20;
    pub const RDTSCP: u32 = 1 << 27;
    pub const LM: u32 = 1 << 29;
}

/// Leaf 0xD subleaf 1 EAX: XSAVEOPT, XSAVEC, XGETBV with ECX = 1.
const XSAVE_SUB1: u32 = 0b111;

const BASE_EDX: u32 =
    edx1::FPU | edx1::TSC | edx1::CX8 | edx1::CMOV | edx1::CLFSH | edx1::MMX | edx1::FXSR | edx1::SSE | edx1::SSE2;
const BASE_EXT_EDX: u32 = ext1::SYSCALL | ext1::NX | ext1::LM;
const V2_ECX: u32 = ecx1::SSE3 | ecx1::SSSE3 | ecx1::CX16 | ecx1::SSE4_1 | ecx1::SSE4_2 | ecx1::POPCNT;

static V1: Identity = Identity {
    brand: b"              Intel(R) Pentium(R) 4 CPU 3.40GHz",
    // Family 15, model 4, stepping 1 (Prescott 2M).
    signature: 0x0000_0f41,
    max_leaf: 5,
    leaf1_ecx: 0,
    leaf1_edx: BASE_EDX,
    leaf7_ebx: 0,
    leaf7_ecx: 0,
    leaf7_edx: 0,
    ext1_ecx: 0,
    ext1_edx: BASE_EXT_EDX,
    ext6_ecx: 2048 << 16 | 8 << 12 | 64,
    ext8_eax: 0x3024,
    caches: &[Cache { kind: 1, level: 1, ways: 8, size_kib: 16 }, Cache { kind: 3, level: 2, ways: 8, size_kib: 2048 }],
};

static V2: Identity = Identity {
    brand: b"Intel(R) Core(TM) i7 CPU         920  @ 2.67GHz",
    // Family 6, model 0x1a, stepping 5 (Bloomfield).
    signature: 0x0001_06a5,
    max_leaf: 0xb,
    leaf1_ecx: V2_ECX,
    leaf1_edx: BASE_EDX,
    leaf7_ebx: 0,
    leaf7_ecx: 0,
    leaf7_edx: 0,
    ext1_ecx: ext1::LAHF,
    ext1_edx: BASE_EXT_EDX | ext1::RDTSCP,
    ext6_ecx: 256 << 16 | 6 << 12 | 64,
    ext8_eax: 0x3024,
    caches: &[
        Cache { kind: 1, level: 1, ways: 8, size_kib: 32 },
        Cache { kind: 2, level: 1, ways: 4, size_kib: 32 },
        Cache { kind: 3, level: 2, ways: 8, size_kib: 256 },
        Cache { kind: 3, level: 3, ways: 16, size_kib: 8192 },
    ],
};

static V3: Identity = Identity {
    brand: b"12th Gen Intel(R) Core(TM) i5-12400",
    // Family 6, model 0x97, stepping 5 (Alder Lake-S, six performance cores).
    signature: 0x0009_0675,
    max_leaf: 0xd,
    leaf1_ecx: V2_ECX
        | ecx1::PCLMULQDQ
        | ecx1::FMA
        | ecx1::MOVBE
        | ecx1::AES
        | ecx1::XSAVE
        | ecx1::OSXSAVE
        | ecx1::AVX
        | ecx1::F16C
        | ecx1::RDRAND,
    leaf1_edx: BASE_EDX,
    leaf7_ebx: l7::FSGSBASE
        | l7::BMI1
        | l7::AVX2
        | l7::BMI2
        | l7::ERMS
        | l7::RDSEED
        | l7::ADX
        | l7::CLFLUSHOPT
        | l7::CLWB
        | l7::SHA,
    leaf7_ecx: l7::RDPID,
    leaf7_edx: l7::FSRM,
    ext1_ecx: ext1::LAHF | ext1::LZCNT | ext1::PREFETCHW,
    ext1_edx: BASE_EXT_EDX | ext1::RDTSCP,
    ext6_ecx: 1280 << 16 | 7 << 12 | 64,
    ext8_eax: 0x302e,
    caches: &[
        Cache { kind: 1, level: 1, ways: 12, size_kib: 48 },
        Cache { kind: 2, level: 1, ways: 8, size_kib: 32 },
        Cache { kind: 3, level: 2, ways: 10, size_kib: 1280 },
        Cache { kind: 3, level: 3, ways: 12, size_kib: 18432 },
    ],
};

/// Every model a user can choose, for listings and `FromStr`.
pub const CPU_MODELS: [CpuModel; 3] = [CpuModel::V1, CpuModel::V2, CpuModel::V3];

impl CpuModel {
    fn identity(self) -> &'static Identity {
        match self {
            CpuModel::V1 => &V1,
            CpuModel::V2 => &V2,
            CpuModel::V3 => &V3,
        }
    }

    /// The `--cpu` name.
    pub fn name(self) -> &'static str {
        match self {
            CpuModel::V1 => "v1",
            CpuModel::V2 => "v2",
            CpuModel::V3 => "v3",
        }
    }

    /// The brand string `cpuid` reports (leaves 0x8000_0002..4), trimmed.
    pub fn brand(self) -> &'static str {
        std::str::from_utf8(self.identity().brand).unwrap_or("").trim()
    }

    /// A byte for trace headers ([`CpuModel::from_code`] reads it back).
    pub fn code(self) -> u8 {
        self as u8 + 1
    }

    pub fn from_code(code: u8) -> Option<CpuModel> {
        CPU_MODELS.iter().copied().find(|m| m.code() == code)
    }

    /// Whether XSAVE (and so AVX state and XGETBV) exists.
    pub fn has_xsave(self) -> bool {
        self.identity().leaf1_ecx & ecx1::XSAVE != 0
    }

    /// Whether the host CPU can run this model's instructions (emu executes floating-point
    /// SIMD instructions on the host, for bit-exact results; see `exec::sse`). Asked at
    /// every boot, so it reads only the leaves it needs (`host_has`).
    pub fn host_supports(self) -> bool {
        match self {
            CpuModel::V1 => true,
            CpuModel::V2 => host_has(false),
            CpuModel::V3 => host_has(true),
        }
    }

    /// `cpuid` with EAX = `leaf`, ECX = `sub`: [eax, ebx, ecx, edx].
    pub fn cpuid(self, leaf: u32, sub: u32) -> [u32; 4] {
        let id = self.identity();
        const VENDOR: &[u8; 12] = b"GenuineIntel";
        let word = |b: &[u8], k: usize| {
            let mut w = [0u8; 4];
            for (j, x) in w.iter_mut().enumerate() {
                *x = b.get(4 * k + j).copied().unwrap_or(0);
            }
            u32::from_le_bytes(w)
        };
        let xsave = self.has_xsave();
        // Past the last basic or extended leaf, Intel CPUs answer with the last basic leaf.
        let leaf = if leaf > id.max_leaf && leaf < 0x8000_0000 || leaf > 0x8000_0008 { id.max_leaf } else { leaf };
        match leaf {
            0 => [id.max_leaf, word(VENDOR, 0), word(VENDOR, 2), word(VENDOR, 1)],
            // EBX: CLFLUSH line 8 * 8 bytes, one logical processor, APIC id 0.
            1 => [id.signature, 8 << 8 | 1 << 16, id.leaf1_ecx, id.leaf1_edx],
            // One descriptor call; 0xff: the caches are in leaf 4.
            2 => [0x00ff_ff01, 0, 0, 0],
            4 => id.caches.get(sub as usize).map_or([0; 4], Cache::leaf4),
            7 if sub == 0 => [0, id.leaf7_ebx, id.leaf7_ecx, id.leaf7_edx],
            // Topology: one thread per core, one core per package.
            0xb => match sub {
                0 => [0, 1, 0x100, 0],
                1 => [0, 1, 0x201, 0],
                _ => [0, 0, sub & 0xff, 0],
            },
            0xd if xsave => match sub {
                0 => [XCR0 as u32, XSAVE_SIZE, XSAVE_SIZE, 0],
                1 => [XSAVE_SUB1, XSAVE_SIZE, 0, 0],
                2 => [XSAVE_SIZE - XSAVE_YMM_OFFSET, XSAVE_YMM_OFFSET, 0, 0],
                _ => [0; 4],
            },
            0x8000_0000 => [0x8000_0008, 0, 0, 0],
            0x8000_0001 => [0, 0, id.ext1_ecx, id.ext1_edx],
            0x8000_0002..=0x8000_0004 => {
                let mut brand = [0u8; 48];
                brand[..id.brand.len()].copy_from_slice(id.brand);
                let k = (leaf - 0x8000_0002) as usize * 4;
                [word(&brand, k), word(&brand, k + 1), word(&brand, k + 2), word(&brand, k + 3)]
            }
            0x8000_0006 => [0, 0, id.ext6_ecx, 0],
            0x8000_0008 => [id.ext8_eax, 0, 0, 0],
            _ => [0; 4],
        }
    }

    /// Whether this model reports `f`. Features of the hint-NOP space (CET's `endbr`,
    /// `rdssp`, `prefetchit`, `cldemote`) are not reported but execute as NOPs, as on
    /// a CPU without them: see [`CpuModel::executes`].
    pub fn reports(self, f: CpuidFeature) -> bool {
        use CpuidFeature as F;
        let id = self.identity();
        let (e1, d1, b7, c7, xe, xd) =
            (id.leaf1_ecx, id.leaf1_edx, id.leaf7_ebx, id.leaf7_ecx, id.ext1_ecx, id.ext1_edx);
        match f {
            F::INTEL8086
            | F::INTEL8086_ONLY
            | F::INTEL186
            | F::INTEL286
            | F::INTEL386
            | F::INTEL486
            | F::X64
            | F::CPUID
            | F::MULTIBYTENOP
            | F::PAUSE => true,
            F::FPU | F::FPU287 | F::FPU387 => d1 & edx1::FPU != 0,
            F::TSC => d1 & edx1::TSC != 0,
            F::CX8 => d1 & edx1::CX8 != 0,
            F::CMOV => d1 & edx1::CMOV != 0,
            F::CLFSH => d1 & edx1::CLFSH != 0,
            F::MMX => d1 & edx1::MMX != 0,
            F::FXSR => d1 & edx1::FXSR != 0,
            F::SSE => d1 & edx1::SSE != 0,
            F::SSE2 => d1 & edx1::SSE2 != 0,
            F::SSE3 => e1 & ecx1::SSE3 != 0,
            F::PCLMULQDQ => e1 & ecx1::PCLMULQDQ != 0,
            F::SSSE3 => e1 & ecx1::SSSE3 != 0,
            F::FMA => e1 & ecx1::FMA != 0,
            F::CMPXCHG16B => e1 & ecx1::CX16 != 0,
            F::SSE4_1 => e1 & ecx1::SSE4_1 != 0,
            F::SSE4_2 => e1 & ecx1::SSE4_2 != 0,
            F::MOVBE => e1 & ecx1::MOVBE != 0,
            F::POPCNT => e1 & ecx1::POPCNT != 0,
            F::AES => e1 & ecx1::AES != 0,
            F::XSAVE => e1 & ecx1::XSAVE != 0,
            F::AVX => e1 & ecx1::AVX != 0,
            F::F16C => e1 & ecx1::F16C != 0,
            F::RDRAND => e1 & ecx1::RDRAND != 0,
            F::FSGSBASE => b7 & l7::FSGSBASE != 0,
            F::BMI1 => b7 & l7::BMI1 != 0,
            F::AVX2 => b7 & l7::AVX2 != 0,
            F::BMI2 => b7 & l7::BMI2 != 0,
            F::RDSEED => b7 & l7::RDSEED != 0,
            F::ADX => b7 & l7::ADX != 0,
            F::CLFLUSHOPT => b7 & l7::CLFLUSHOPT != 0,
            F::CLWB => b7 & l7::CLWB != 0,
            F::SHA => b7 & l7::SHA != 0,
            F::RDPID => c7 & l7::RDPID != 0,
            F::LZCNT => xe & ext1::LZCNT != 0,
            F::PREFETCHW => xe & ext1::PREFETCHW != 0,
            F::SYSCALL => xd & ext1::SYSCALL != 0,
            F::RDTSCP => xd & ext1::RDTSCP != 0,
            F::XSAVEOPT | F::XSAVEC => self.has_xsave(),
            _ => false,
        }
    }

    /// Whether this model executes an instruction needing `features` (iced's list for its
    /// form); otherwise it is #UD. Hint NOPs execute on every model.
    pub fn executes(self, features: &[CpuidFeature]) -> bool {
        use CpuidFeature as F;
        features.iter().all(|&f| {
            self.reports(f)
                || matches!(f, F::CET_IBT | F::CET_SS | F::CLDEMOTE | F::PREFETCHITI | F::PREFETCHW | F::PREFETCHWT1)
        })
    }
}

impl std::fmt::Display for CpuModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for CpuModel {
    type Err = String;

    fn from_str(s: &str) -> Result<CpuModel, String> {
        let s = s.trim().to_ascii_lowercase();
        let s = s.strip_prefix("x86-64-").unwrap_or(&s);
        CPU_MODELS.iter().copied().find(|m| m.name() == s).ok_or_else(|| {
            let names: Vec<&str> = CPU_MODELS.iter().map(|m| m.name()).collect();
            format!("unknown CPU model {s:?} (expected one of: {})", names.join(", "))
        })
    }
}

/// Whether the host has SSE4.2 and, with `v3`, AVX2, FMA and F16C with the AVX state
/// enabled by the OS: what `is_x86_feature_detected!` says for them, read with `cpuid`
/// leaves 1 (and 0 and 7) and `xgetbv`. Std's detection reads every leaf it knows at its
/// first use, 7 or more `cpuid`s, and on a VM each traps to the hypervisor (7-11 µs
/// here): 60 µs of a 3 ms `warden run hello`, which otherwise translates nothing and
/// never asks std.
fn host_has(v3: bool) -> bool {
    use std::arch::x86_64::{__cpuid, __cpuid_count, _xgetbv};
    // (`cpuid` is safe to call on x86-64: every CPU has it.)
    let l1 = __cpuid(1);
    let sse42 = l1.ecx & (1 << 20) != 0;
    if !v3 {
        return sse42;
    }
    let (fma, osxsave, avx, f16c) =
        (l1.ecx & (1 << 12) != 0, l1.ecx & (1 << 27) != 0, l1.ecx & (1 << 28) != 0, l1.ecx & (1 << 29) != 0);
    if !(sse42 && fma && osxsave && avx && f16c) {
        return false;
    }
    // SAFETY: OSXSAVE is set, so XGETBV exists and the OS enabled it.
    let xcr0 = unsafe { _xgetbv(0) };
    // The OS saves the SSE and AVX state (XCR0 bits 1 and 2), as std requires for AVX.
    if xcr0 & 0b110 != 0b110 {
        return false;
    }
    // Leaf 7 only when leaf 0 says it exists.
    let max = __cpuid(0).eax;
    max >= 7 && __cpuid_count(7, 0).ebx & (1 << 5) != 0
}

#[cfg(test)]
mod tests {
    /// `host_supports` reads `cpuid` itself (a few leaves, not std's all): it says what
    /// `is_x86_feature_detected!` says for each model's features.
    #[test]
    fn host_support_is_what_std_detects() {
        let sse42 = std::arch::is_x86_feature_detected!("sse4.2");
        let v3 = sse42
            && std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c");
        assert!(super::CpuModel::V1.host_supports());
        assert_eq!(super::CpuModel::V2.host_supports(), sse42);
        assert_eq!(super::CpuModel::V3.host_supports(), v3);
    }

    use super::*;

    fn text(words: &[u32]) -> String {
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        String::from_utf8_lossy(&bytes).trim_end_matches('\0').to_string()
    }

    #[test]
    fn vendor_brand_and_signature() {
        for m in [CpuModel::V1, CpuModel::V2, CpuModel::V3] {
            let v = m.cpuid(0, 0);
            assert_eq!(text(&[v[1], v[3], v[2]]), "GenuineIntel");
            let brand: Vec<u32> = (0x8000_0002..=0x8000_0004).flat_map(|l| m.cpuid(l, 0)).collect();
            assert_eq!(text(&brand).trim(), m.brand());
            assert!(m.cpuid(0x8000_0000, 0)[0] >= 0x8000_0004);
        }
        assert_eq!(CpuModel::V3.brand(), "12th Gen Intel(R) Core(TM) i5-12400");
        // Family 6 model 0x97: display model = ext model << 4 | model.
        let sig = CpuModel::V3.cpuid(1, 0)[0];
        assert_eq!((sig >> 8) & 0xf, 6);
        assert_eq!((sig >> 16 & 0xf) << 4 | (sig >> 4 & 0xf), 0x97);
    }

    #[test]
    fn levels_are_cumulative_and_match_the_psabi() {
        use CpuidFeature as F;
        let v1 = [F::CMOV, F::CX8, F::FPU, F::FXSR, F::MMX, F::SSE, F::SSE2, F::SYSCALL];
        let v2 = [F::CMPXCHG16B, F::POPCNT, F::SSE3, F::SSE4_1, F::SSE4_2, F::SSSE3];
        let v3 = [F::AVX, F::AVX2, F::BMI1, F::BMI2, F::F16C, F::FMA, F::LZCNT, F::MOVBE, F::XSAVE];
        for (m, have, lack) in [
            (CpuModel::V1, &v1[..], &v2[..]),
            (CpuModel::V2, &[&v1[..], &v2[..]].concat()[..], &v3[..]),
            (CpuModel::V3, &[&v1[..], &v2[..], &v3[..]].concat()[..], &[F::AVX512F][..]),
        ] {
            for f in have {
                assert!(m.reports(*f), "{m} lacks {f:?}");
            }
            for f in lack {
                assert!(!m.reports(*f), "{m} reports {f:?}");
            }
        }
        // LAHF/SAHF in 64-bit mode is part of v2.
        assert_eq!(CpuModel::V1.cpuid(0x8000_0001, 0)[2] & 1, 0);
        assert_eq!(CpuModel::V2.cpuid(0x8000_0001, 0)[2] & 1, 1);
        // OSXSAVE goes with XSAVE (the guest cannot set CR4).
        for m in [CpuModel::V1, CpuModel::V2, CpuModel::V3] {
            let ecx = m.cpuid(1, 0)[2];
            assert_eq!(ecx >> 26 & 1, ecx >> 27 & 1);
        }
    }

    #[test]
    fn xsave_leaf_describes_x87_sse_avx() {
        let m = CpuModel::V3;
        assert_eq!(m.cpuid(0xd, 0), [7, 832, 832, 0]);
        assert_eq!(m.cpuid(0xd, 2), [256, 576, 0, 0]);
        assert_eq!(m.cpuid(0xd, 1)[0] & 0b1000, 0, "no XSAVES (supervisor state)");
        // Nehalem has no leaf 0xd: past its last leaf (0xb) it answers with that one.
        assert_eq!(CpuModel::V2.cpuid(0xd, 0), CpuModel::V2.cpuid(0xb, 0));
        assert_eq!(CpuModel::V2.cpuid(0x8000_0009, 0), CpuModel::V2.cpuid(0xb, 0));
    }

    #[test]
    fn caches_from_leaf_4() {
        let l = CpuModel::V3.cpuid(4, 0);
        let size = ((l[1] >> 22) + 1) * ((l[1] >> 12 & 0x3ff) + 1) * ((l[1] & 0xfff) + 1) * (l[2] + 1);
        assert_eq!((l[0] & 0x1f, l[0] >> 5 & 7, size), (1, 1, 48 * 1024));
        assert_eq!(CpuModel::V3.cpuid(4, 4)[0] & 0x1f, 0, "no fifth cache");
    }

    #[test]
    fn names_round_trip() {
        for m in CPU_MODELS {
            assert_eq!(m.name().parse::<CpuModel>(), Ok(m));
            assert_eq!(CpuModel::from_code(m.code()), Some(m));
        }
        assert_eq!("x86-64-v2".parse::<CpuModel>(), Ok(CpuModel::V2));
        assert!("v4".parse::<CpuModel>().unwrap_err().contains("v1, v2"));
    }

    #[test]
    fn hint_nops_execute_everywhere() {
        use CpuidFeature as F;
        assert!(CpuModel::V1.executes(&[F::CET_IBT]));
        assert!(CpuModel::V1.executes(&[F::MULTIBYTENOP]));
        assert!(!CpuModel::V1.executes(&[F::SSE3]));
        assert!(!CpuModel::V3.executes(&[F::AVX512F]));
    }
}
