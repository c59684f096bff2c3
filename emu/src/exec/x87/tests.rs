//! Tests: the host FPU is the oracle.
//!
//! Each case is a snippet of instruction bytes plus inputs (control word,
//! values pushed on the stack, bytes at `[rdi]`). It runs twice: in the
//! interpreter (snippet + `int3`) and natively (snippet + `ret`, called
//! between `fxrstor64` of the same initial state and `fxsave64`). The FXSAVE
//! images (minus FOP/FIP/FDP), the data bytes and, where asked, the status
//! flags must agree bit for bit. Only runs on x86-64 hosts.

#![cfg(target_arch = "x86_64")]

use std::arch::asm;

use super::float;
use super::fxsave_image;
use crate::cpu::flags;
use crate::exec::{AddressSpace, Exit};
use crate::memory::{GuestAddress, Perm};
use crate::Cpu;

const CODE: u64 = 0x1000;
const DATA: u64 = 0x20000;
const DATA_LEN: usize = 512;

#[repr(C, align(64))]
struct Aligned([u8; 512]);

/// An executable host page for native snippets.
struct Native {
    page: *mut u8,
}

impl Native {
    fn new() -> Native {
        // SAFETY: a fresh anonymous private mapping; checked for failure.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        Native { page: p as *mut u8 }
    }

    /// Runs `code` natively from the FXSAVE image `fx`; returns the final
    /// image and RFLAGS.
    fn run(&self, code: &[u8], fx: &Aligned, data: &mut Aligned) -> (Aligned, u64) {
        assert!(code.len() < 4000);
        // SAFETY: the page is ours, writable, and large enough.
        unsafe {
            std::ptr::copy_nonoverlapping(code.as_ptr(), self.page, code.len());
            *self.page.add(code.len()) = 0xc3;
        }
        let mut out = Aligned([0; 512]);
        let fl: u64;
        let mut mxcsr_save = 0u32;
        // SAFETY: the snippet only touches x87 state, RFLAGS, RAX and the
        // 512-byte buffer at RDI (the test cases are written that way); the
        // x87 state is reset (fninit) and MXCSR restored before returning to
        // Rust code, and all C-ABI caller-saved registers are declared
        // clobbered.
        unsafe {
            asm!(
                "stmxcsr [{ms}]",
                "fxrstor64 [{fin}]",
                "call {code}",
                "pushfq",
                "pop r12",
                "fxsave64 [{fout}]",
                "fninit",
                "ldmxcsr [{ms}]",
                ms = in(reg) &mut mxcsr_save,
                fin = in(reg) fx.0.as_ptr(),
                code = in(reg) self.page,
                fout = in(reg) out.0.as_mut_ptr(),
                out("r12") fl,
                in("rdi") data.0.as_mut_ptr(),
                clobber_abi("C"),
            );
        }
        (out, fl)
    }
}

/// The interpreter side, one address space reused across cases.
struct Emu {
    space: AddressSpace,
}

impl Emu {
    fn new() -> Emu {
        let mut space = AddressSpace::new(1 << 32).unwrap();
        space
            .mem
            .map(GuestAddress(CODE), 0x1000, Perm::RWX)
            .unwrap();
        space.mem.map(GuestAddress(DATA), 0x1000, Perm::RW).unwrap();
        Emu { space }
    }

    fn run(&mut self, code: &[u8], init: &Cpu, data: &mut [u8]) -> (Cpu, Exit) {
        let mut c = code.to_vec();
        c.push(0xcc);
        self.space.mem.write(GuestAddress(CODE), &c).unwrap();
        self.space.mem.write(GuestAddress(DATA), data).unwrap();
        let mut cpu = init.clone();
        cpu.rip = CODE;
        cpu.gpr[crate::reg::RDI] = DATA;
        let exit = cpu.run(&mut self.space, 1000);
        self.space.mem.read(GuestAddress(DATA), data).unwrap();
        (cpu, exit)
    }
}

/// A starting CPU: control word `fcw`, `stack` pushed in order (the last
/// element ends up in ST(0)).
fn start(fcw: u16, stack: &[u128]) -> Cpu {
    let mut cpu = Cpu::new();
    cpu.x87.fcw = fcw;
    for &v in stack {
        cpu.x87.push(v);
    }
    cpu
}

fn f80(sign: bool, exp: u16, sig: u64) -> u128 {
    float::make(sign, exp as u32, sig)
}

fn fmt_state(fx: &[u8]) -> String {
    let mut s = format!(
        "fcw={:04x} fsw={:04x} ftw={:02x}",
        u16::from_le_bytes([fx[0], fx[1]]),
        u16::from_le_bytes([fx[2], fx[3]]),
        fx[4]
    );
    for k in 0..8 {
        let b = &fx[32 + 16 * k..42 + 16 * k];
        let e = u16::from_le_bytes([b[8], b[9]]);
        let m = u64::from_le_bytes(b[..8].try_into().unwrap());
        s += &format!(" st{k}={e:04x}:{m:016x}");
    }
    s
}

struct Harness {
    emu: Emu,
    native: Native,
    failures: Vec<String>,
    cases: usize,
}

const FLAG_MASK: u64 = flags::CF | flags::PF | flags::AF | flags::ZF | flags::SF | flags::OF;

impl Harness {
    fn new() -> Harness {
        Harness {
            emu: Emu::new(),
            native: Native::new(),
            failures: Vec::new(),
            cases: 0,
        }
    }

    /// Runs one case both ways and records any difference.
    fn case(&mut self, name: &str, code: &[u8], init: &Cpu, data: &[u8], check_flags: bool) {
        self.cases += 1;
        let mut fx_in = Aligned([0; 512]);
        fx_in.0[..416].copy_from_slice(&fxsave_image(init, true));
        let mut nd = Aligned([0; 512]);
        nd.0[..data.len()].copy_from_slice(data);
        let (nfx, nfl) = self.native.run(code, &fx_in, &mut nd);
        let mut ed = [0u8; DATA_LEN];
        ed[..data.len()].copy_from_slice(data);
        let (cpu, exit) = self.emu.run(code, init, &mut ed);
        let efx = fxsave_image(&cpu, true);
        let mut diffs = Vec::new();
        if exit != Exit::Breakpoint {
            diffs.push(format!("exit {exit:?}"));
        }
        let masked = |b: &[u8]| {
            let mut v = b[..160].to_vec();
            v[6..24].fill(0);
            v[28..32].fill(0);
            v
        };
        let (mn, me) = (masked(&nfx.0), masked(&efx));
        if mn != me {
            let k = (0..160).find(|&k| mn[k] != me[k]).unwrap_or(0);
            diffs.push(format!(
                "\n  native {}\n  emu    {}\n  first difference at byte {k}: native {:02x} emu {:02x}",
                fmt_state(&nfx.0),
                fmt_state(&efx),
                mn[k],
                me[k]
            ));
        }
        if nd.0[..DATA_LEN] != ed[..] {
            let k = (0..DATA_LEN).find(|&k| nd.0[k] != ed[k]).unwrap_or(0);
            let end = (k + 16).min(DATA_LEN);
            diffs.push(format!(
                "\n  data@{k}: native {:02x?} emu {:02x?}",
                &nd.0[k..end],
                &ed[k..end]
            ));
        }
        if check_flags && nfl & FLAG_MASK != cpu.rflags & FLAG_MASK {
            diffs.push(format!(
                "rflags native {:x} emu {:x}",
                nfl & FLAG_MASK,
                cpu.rflags & FLAG_MASK
            ));
        }
        if !diffs.is_empty() {
            let init_s = fmt_state(&fxsave_image(init, true));
            self.failures.push(format!(
                "{name} code={code:02x?}\n  init   {init_s}{}",
                diffs.concat()
            ));
        }
    }

    fn finish(self) {
        let n = self.failures.len();
        for f in self.failures.iter().take(12) {
            eprintln!("MISMATCH {f}");
        }
        assert_eq!(n, 0, "{n} of {} cases differ from the host FPU", self.cases);
    }
}

/// Interesting 80-bit values.
fn values() -> Vec<u128> {
    let mut v = vec![
        f80(false, 0, 0),
        f80(true, 0, 0),
        f80(false, 0x3fff, 1 << 63),               // 1
        f80(true, 0x3fff, 1 << 63),                // -1
        f80(false, 0x4000, 0xc000_0000_0000_0000), // 3
        f80(false, 0x3ffd, 0xcccc_cccc_cccc_cccd), // 0.1
        f80(true, 0x4000, 0xc90f_daa2_2168_c235),  // -pi
        f80(false, 0x3fff, 0xffff_ffff_ffff_ffff), // 2 - ulp
        f80(false, 0x3fff, 0x8000_0000_0000_0001), // 1 + ulp
        f80(false, 0x403e, 0xffff_ffff_ffff_ffff), // 2^64 - 1
        f80(true, 0x403e, 1 << 63),                // -2^63
        f80(false, 0x401d, 0xffff_fffe_0000_0000), // 2^31 - 1
        f80(false, 0x400e, 0xffff_8000_0000_0000), // 65535.5
        f80(false, 0x3ffe, 0xc000_0000_0000_0000), // 0.75
        f80(false, 0x3ffe, 1 << 63),               // 0.5
        f80(true, 0x4000, 0xa000_0000_0000_0000),  // -2.5
        f80(false, 0x7ffe, 0xffff_ffff_ffff_ffff), // max
        f80(true, 0x7ffe, 0x8000_0000_0000_0001),  // near -max
        f80(false, 0x0001, 1 << 63),               // min normal
        f80(false, 0x0001, 0xffff_ffff_ffff_ffff), // near min normal
        f80(false, 0, 0x4000_0000_0000_0001),      // denormal
        f80(true, 0, 1),                           // -min denormal
        f80(false, 0, 0x8000_0000_0000_0000),      // pseudo-denormal
        f80(false, 0x7fff, 1 << 63),               // +inf
        f80(true, 0x7fff, 1 << 63),                // -inf
        f80(false, 0x7fff, 0xc000_0000_0000_0001), // QNaN
        f80(true, 0x7fff, 0xc000_0000_0000_0100),  // -QNaN larger
        f80(false, 0x7fff, 0x8000_0000_0000_0001), // SNaN
        f80(true, 0x7fff, 0xa000_0000_0000_0000),  // -SNaN
        f80(true, 0x7fff, 0xc000_0000_0000_0000),  // indefinite
        f80(false, 0x4000, 0x4000_0000_0000_0000), // unnormal
        f80(false, 0x7fff, 0x4000_0000_0000_0000), // pseudo-NaN
        f80(false, 0x3c01, 0x8000_0000_0000_0001), // tiny-ish for m64
        f80(false, 0x3f81, 0xffff_ff80_0000_0000), // rounds to f32 min normal
        f80(false, 0x407e, 0xffff_ff80_0000_0000), // above f32 max
    ];
    // Pseudo-random normals and denormals.
    let mut s = 0x1234_5678_9abc_def0u64;
    for k in 0..14 {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        let exp = match k % 7 {
            0 => 0x3fff + (s >> 60) as u16,
            1 => 0x3ff0 + (s >> 59) as u16,
            2 => 1 + (s >> 62) as u16,
            3 => 0x7ffe - (s >> 62) as u16,
            4 => 0,
            5 => 0x3c00 + (s >> 62) as u16,
            _ => 0x3f80 + (s >> 62) as u16,
        };
        let sig = if exp == 0 { s >> 1 } else { s | 1 << 63 };
        v.push(f80(k % 3 == 0, exp, sig));
    }
    v
}

/// Control words: every rounding mode and precision with all exceptions
/// masked, plus some with exceptions unmasked.
fn control_words() -> Vec<u16> {
    let mut v = Vec::new();
    for rc in 0..4u16 {
        for pc in [0u16, 2, 3] {
            v.push(0x0040 | rc << 10 | pc << 8 | 0x3f);
        }
    }
    v.push(0x0340); // all unmasked
    v.push(0x037f & !0x01); // IE unmasked
    v.push(0x037f & !0x18); // OE, UE unmasked
    v.push(0x037f & !0x02); // DE unmasked
    v.push(0x077f & !0x20); // PE unmasked, round down
    v
}

#[test]
fn oracle_two_operand_arithmetic() {
    let mut h = Harness::new();
    let ops: &[(&str, &[u8])] = &[
        ("fadd", &[0xd8, 0xc1]),
        ("fsub", &[0xd8, 0xe1]),
        ("fsubr", &[0xd8, 0xe9]),
        ("fmul", &[0xd8, 0xc9]),
        ("fdiv", &[0xd8, 0xf1]),
        ("fdivr", &[0xd8, 0xf9]),
        ("faddp", &[0xde, 0xc1]),
        ("fsubp st1", &[0xde, 0xe9]),
        ("fdivrp st1", &[0xde, 0xf1]),
    ];
    let vals = values();
    for &(name, code) in ops {
        for fcw in control_words() {
            for &a in &vals {
                for &b in &vals {
                    h.case(name, code, &start(fcw, &[b, a]), &[], false);
                }
            }
        }
    }
    h.finish();
}
