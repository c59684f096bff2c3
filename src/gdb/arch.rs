//! The register file gdb sees: amd64 GNU/Linux (`org.gnu.gdb.i386.core`, `.sse`, `.linux`,
//! `.segments`, `.avx`), so gdb unwinds with its Linux rules and shows `$fs_base`/`$gs_base`,
//! which `gdbstub_arch`'s x86-64 description lacks, and `$ymm0`..`$ymm15` (gdb builds them
//! from the XMM registers and the `ymmNh` upper halves the `.avx` feature lists).

use emu::Cpu;
use gdbstub::arch::{Arch, Registers};

/// gdb's order of the 16 general registers, as indices into `Cpu::gpr`.
const GDB_ORDER: [usize; 16] = [0, 3, 1, 2, 6, 7, 5, 4, 8, 9, 10, 11, 12, 13, 14, 15];
/// What a Linux process's segment selectors read as (cs, ss, ds, es, fs, gs).
const SELECTORS: [u32; 6] = [0x33, 0x2b, 0, 0, 0, 0];

pub enum X86_64Linux {}

impl Arch for X86_64Linux {
    type Usize = u64;
    type Registers = Regs;
    type BreakpointKind = usize;
    type RegId = ();

    fn target_description_xml() -> Option<&'static str> {
        Some(TARGET_XML)
    }
}

/// The registers in gdb's `g` packet order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Regs {
    pub gpr: [u64; 16],
    pub rip: u64,
    pub eflags: u32,
    /// st0..st7 (80 bits each, in the low bits).
    pub st: [u128; 8],
    /// fctrl, fstat, ftag, fiseg, fioff, foseg, fooff, fop.
    pub fpu: [u32; 8],
    pub xmm: [u128; 16],
    pub mxcsr: u32,
    pub fs_base: u64,
    pub gs_base: u64,
    /// Bits 255:128 of YMM0..15.
    pub ymm_hi: [u128; 16],
}

impl Regs {
    pub fn from_cpu(cpu: &Cpu) -> Regs {
        let x = &cpu.x87;
        Regs {
            gpr: GDB_ORDER.map(|i| cpu.gpr[i]),
            rip: cpu.rip,
            eflags: cpu.rflags as u32,
            st: std::array::from_fn(|i| x.st(i)),
            fpu: [
                u32::from(x.fcw),
                u32::from(x.fsw),
                u32::from(x.tag_word()),
                0,
                x.fip as u32,
                0,
                x.fdp as u32,
                u32::from(x.fop),
            ],
            xmm: cpu.xmm,
            mxcsr: cpu.mxcsr,
            fs_base: cpu.fs_base,
            gs_base: cpu.gs_base,
            ymm_hi: cpu.ymm_hi,
        }
    }

    /// Writes these registers into `cpu` (flags and MXCSR only where the guest could set them).
    pub fn to_cpu(&self, cpu: &mut Cpu) {
        for (k, &i) in GDB_ORDER.iter().enumerate() {
            cpu.gpr[i] = self.gpr[k];
        }
        cpu.rip = self.rip;
        cpu.set_rflags(u64::from(self.eflags));
        cpu.x87.fcw = self.fpu[0] as u16;
        cpu.x87.fsw = self.fpu[1] as u16;
        let tags = self.fpu[2];
        for i in 0..8 {
            let p = cpu.x87.phys(i);
            cpu.x87.regs[p] = self.st[i] & ((1 << 80) - 1);
        }
        cpu.x87.ftw = (0..8).fold(0, |w, p| if (tags >> (2 * p)) & 3 != 3 { w | 1 << p } else { w });
        cpu.xmm = self.xmm;
        cpu.mxcsr = self.mxcsr & emu::cpu::MXCSR_MASK;
        cpu.fs_base = self.fs_base;
        cpu.gs_base = self.gs_base;
        cpu.ymm_hi = self.ymm_hi;
    }
}

/// Little-endian bytes of the low `n` bytes of `v`.
fn put(out: &mut impl FnMut(Option<u8>), v: u128, n: usize) {
    for b in &v.to_le_bytes()[..n] {
        out(Some(*b));
    }
}

impl Registers for Regs {
    type ProgramCounter = u64;

    fn pc(&self) -> u64 {
        self.rip
    }

    fn gdb_serialize(&self, mut out: impl FnMut(Option<u8>)) {
        for r in self.gpr {
            put(&mut out, r.into(), 8);
        }
        put(&mut out, self.rip.into(), 8);
        put(&mut out, self.eflags.into(), 4);
        for s in SELECTORS {
            put(&mut out, s.into(), 4);
        }
        for st in self.st {
            put(&mut out, st, 10);
        }
        for f in self.fpu {
            put(&mut out, f.into(), 4);
        }
        for x in self.xmm {
            put(&mut out, x, 16);
        }
        put(&mut out, self.mxcsr.into(), 4);
        // orig_rax: -1, "not in a system call" (gdb then never restarts one).
        put(&mut out, u64::MAX.into(), 8);
        put(&mut out, self.fs_base.into(), 8);
        put(&mut out, self.gs_base.into(), 8);
        for y in self.ymm_hi {
            put(&mut out, y, 16);
        }
    }

    fn gdb_deserialize(&mut self, bytes: &[u8]) -> Result<(), ()> {
        let mut at = 0;
        let mut take = |n: usize| -> Result<u128, ()> {
            let b = bytes.get(at..at + n).ok_or(())?;
            at += n;
            let mut v = [0u8; 16];
            v[..n].copy_from_slice(b);
            Ok(u128::from_le_bytes(v))
        };
        for r in &mut self.gpr {
            *r = take(8)? as u64;
        }
        self.rip = take(8)? as u64;
        self.eflags = take(4)? as u32;
        for _ in SELECTORS {
            take(4)?;
        }
        for st in &mut self.st {
            *st = take(10)?;
        }
        for f in &mut self.fpu {
            *f = take(4)? as u32;
        }
        for x in &mut self.xmm {
            *x = take(16)?;
        }
        self.mxcsr = take(4)? as u32;
        take(8)?;
        self.fs_base = take(8)? as u64;
        self.gs_base = take(8)? as u64;
        for y in &mut self.ymm_hi {
            *y = take(16)?;
        }
        Ok(())
    }
}

const TARGET_XML: &str = r#"<?xml version="1.0"?>
<!DOCTYPE target SYSTEM "gdb-target.dtd">
<target version="1.0">
<architecture>i386:x86-64</architecture>
<osabi>GNU/Linux</osabi>
<feature name="org.gnu.gdb.i386.core">
<flags id="i386_eflags" size="4">
<field name="CF" start="0" end="0"/><field name="" start="1" end="1"/><field name="PF" start="2" end="2"/>
<field name="AF" start="4" end="4"/><field name="ZF" start="6" end="6"/><field name="SF" start="7" end="7"/>
<field name="TF" start="8" end="8"/><field name="IF" start="9" end="9"/><field name="DF" start="10" end="10"/>
<field name="OF" start="11" end="11"/><field name="AC" start="18" end="18"/><field name="ID" start="21" end="21"/>
</flags>
<reg name="rax" bitsize="64" type="int64"/><reg name="rbx" bitsize="64" type="int64"/>
<reg name="rcx" bitsize="64" type="int64"/><reg name="rdx" bitsize="64" type="int64"/>
<reg name="rsi" bitsize="64" type="int64"/><reg name="rdi" bitsize="64" type="int64"/>
<reg name="rbp" bitsize="64" type="data_ptr"/><reg name="rsp" bitsize="64" type="data_ptr"/>
<reg name="r8" bitsize="64" type="int64"/><reg name="r9" bitsize="64" type="int64"/>
<reg name="r10" bitsize="64" type="int64"/><reg name="r11" bitsize="64" type="int64"/>
<reg name="r12" bitsize="64" type="int64"/><reg name="r13" bitsize="64" type="int64"/>
<reg name="r14" bitsize="64" type="int64"/><reg name="r15" bitsize="64" type="int64"/>
<reg name="rip" bitsize="64" type="code_ptr"/><reg name="eflags" bitsize="32" type="i386_eflags"/>
<reg name="cs" bitsize="32" type="int32"/><reg name="ss" bitsize="32" type="int32"/>
<reg name="ds" bitsize="32" type="int32"/><reg name="es" bitsize="32" type="int32"/>
<reg name="fs" bitsize="32" type="int32"/><reg name="gs" bitsize="32" type="int32"/>
<reg name="st0" bitsize="80" type="i387_ext"/><reg name="st1" bitsize="80" type="i387_ext"/>
<reg name="st2" bitsize="80" type="i387_ext"/><reg name="st3" bitsize="80" type="i387_ext"/>
<reg name="st4" bitsize="80" type="i387_ext"/><reg name="st5" bitsize="80" type="i387_ext"/>
<reg name="st6" bitsize="80" type="i387_ext"/><reg name="st7" bitsize="80" type="i387_ext"/>
<reg name="fctrl" bitsize="32" type="int" group="float"/><reg name="fstat" bitsize="32" type="int" group="float"/>
<reg name="ftag" bitsize="32" type="int" group="float"/><reg name="fiseg" bitsize="32" type="int" group="float"/>
<reg name="fioff" bitsize="32" type="int" group="float"/><reg name="foseg" bitsize="32" type="int" group="float"/>
<reg name="fooff" bitsize="32" type="int" group="float"/><reg name="fop" bitsize="32" type="int" group="float"/>
</feature>
<feature name="org.gnu.gdb.i386.sse">
<vector id="v4f" type="ieee_single" count="4"/><vector id="v2d" type="ieee_double" count="2"/>
<vector id="v16i8" type="int8" count="16"/><vector id="v8i16" type="int16" count="8"/>
<vector id="v4i32" type="int32" count="4"/><vector id="v2i64" type="int64" count="2"/>
<union id="vec128"><field name="v4_float" type="v4f"/><field name="v2_double" type="v2d"/>
<field name="v16_int8" type="v16i8"/><field name="v8_int16" type="v8i16"/><field name="v4_int32" type="v4i32"/>
<field name="v2_int64" type="v2i64"/><field name="uint128" type="uint128"/></union>
<reg name="xmm0" bitsize="128" type="vec128" regnum="40"/><reg name="xmm1" bitsize="128" type="vec128"/>
<reg name="xmm2" bitsize="128" type="vec128"/><reg name="xmm3" bitsize="128" type="vec128"/>
<reg name="xmm4" bitsize="128" type="vec128"/><reg name="xmm5" bitsize="128" type="vec128"/>
<reg name="xmm6" bitsize="128" type="vec128"/><reg name="xmm7" bitsize="128" type="vec128"/>
<reg name="xmm8" bitsize="128" type="vec128"/><reg name="xmm9" bitsize="128" type="vec128"/>
<reg name="xmm10" bitsize="128" type="vec128"/><reg name="xmm11" bitsize="128" type="vec128"/>
<reg name="xmm12" bitsize="128" type="vec128"/><reg name="xmm13" bitsize="128" type="vec128"/>
<reg name="xmm14" bitsize="128" type="vec128"/><reg name="xmm15" bitsize="128" type="vec128"/>
<reg name="mxcsr" bitsize="32" type="int" group="vector"/>
</feature>
<feature name="org.gnu.gdb.i386.linux">
<reg name="orig_rax" bitsize="64" type="int" regnum="57"/>
</feature>
<feature name="org.gnu.gdb.i386.segments">
<reg name="fs_base" bitsize="64" type="int"/><reg name="gs_base" bitsize="64" type="int"/>
</feature>
<feature name="org.gnu.gdb.i386.avx">
<reg name="ymm0h" bitsize="128" type="uint128"/><reg name="ymm1h" bitsize="128" type="uint128"/>
<reg name="ymm2h" bitsize="128" type="uint128"/><reg name="ymm3h" bitsize="128" type="uint128"/>
<reg name="ymm4h" bitsize="128" type="uint128"/><reg name="ymm5h" bitsize="128" type="uint128"/>
<reg name="ymm6h" bitsize="128" type="uint128"/><reg name="ymm7h" bitsize="128" type="uint128"/>
<reg name="ymm8h" bitsize="128" type="uint128"/><reg name="ymm9h" bitsize="128" type="uint128"/>
<reg name="ymm10h" bitsize="128" type="uint128"/><reg name="ymm11h" bitsize="128" type="uint128"/>
<reg name="ymm12h" bitsize="128" type="uint128"/><reg name="ymm13h" bitsize="128" type="uint128"/>
<reg name="ymm14h" bitsize="128" type="uint128"/><reg name="ymm15h" bitsize="128" type="uint128"/>
</feature>
</target>
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_round_trip_through_the_g_packet() {
        let mut cpu = Cpu::new();
        for i in 0..16 {
            cpu.gpr[i] = 0x1111_1111 * (i as u64 + 1);
            cpu.xmm[i] = u128::MAX / (i as u128 + 2);
            cpu.ymm_hi[i] = u128::MAX / (i as u128 + 3);
        }
        cpu.rip = 0x401000;
        cpu.fs_base = 0x7000_0000;
        cpu.x87.push(0x3fff_8000_0000_0000_0000);
        let regs = Regs::from_cpu(&cpu);
        assert_eq!(regs.gpr[1], cpu.gpr[emu::reg::RBX], "gdb's second register is rbx");
        let mut bytes = Vec::new();
        regs.gdb_serialize(|b| bytes.push(b.unwrap()));
        // 16 GPRs, rip, eflags, 6 selectors, 8 x87, 8 x87 control, 16 xmm, mxcsr, orig_rax,
        // 2 bases, 16 ymm upper halves
        assert_eq!(bytes.len(), 16 * 8 + 8 + 4 + 24 + 80 + 32 + 256 + 4 + 8 + 16 + 256);
        let mut back = Regs::default();
        back.gdb_deserialize(&bytes).unwrap();
        assert_eq!(back, regs);
        let mut cpu2 = Cpu::new();
        back.to_cpu(&mut cpu2);
        assert_eq!(
            (cpu2.gpr, cpu2.rip, cpu2.fs_base, cpu2.xmm, cpu2.ymm_hi),
            (cpu.gpr, cpu.rip, cpu.fs_base, cpu.xmm, cpu.ymm_hi)
        );
        assert_eq!(cpu2.x87.st(0), cpu.x87.st(0));
        assert!(!cpu2.x87.is_empty(0) && cpu2.x87.is_empty(1));
    }
}
