//! Test support: build the C fixtures with the host's gcc, and run a static
//! freestanding Linux ELF under emu with just `write` and `exit` emulated —
//! enough to compare a compiled program's output with its native run.
//! Shared by emu's tests and the root benches (included with `#[path]`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use emu::{AddressSpace, Cpu, Exit, GuestAddress, Perm};

/// Compiles `emu/tests/fixtures/<name>.c` freestanding and static. `None`
/// (after saying so on stderr) when gcc is missing, unless the environment
/// sets `WARDEN_REQUIRE_TOOLS=1` (CI does), in which case it panics.
pub fn build_fixture(name: &str) -> Option<PathBuf> {
    build_fixture_for(name, "x86-64")
}

/// [`build_fixture`] for `-march=<march>` (e.g. `x86-64-v3`: AVX2 and FMA loops).
pub fn build_fixture_for(name: &str, march: &str) -> Option<PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(format!("{name}.c"));
    let src = if src.exists() {
        src
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("emu/tests/fixtures").join(format!("{name}.c"))
    };
    let out = std::env::temp_dir().join(format!("warden-fixture-{}-{name}-{march}", std::process::id()));
    let status = Command::new("gcc")
        .args(["-O2", "-static", "-nostdlib", "-fno-pie", "-no-pie", "-fno-stack-protector"])
        .args(["-ffreestanding", "-fno-builtin", &format!("-march={march}"), "-o"])
        .arg(&out)
        .arg(&src)
        .status();
    match status {
        Ok(s) if s.success() => Some(out),
        Ok(s) => panic!("gcc failed on {}: {s}", src.display()),
        Err(e) => {
            if std::env::var("WARDEN_REQUIRE_TOOLS").as_deref() == Ok("1") {
                panic!("gcc is required (WARDEN_REQUIRE_TOOLS=1) but could not run: {e}");
            }
            eprintln!("SKIPPED: gcc not found ({e}); install gcc to run this test");
            None
        }
    }
}

/// The result of a run.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    pub stdout: Vec<u8>,
    pub status: i32,
}

fn u16_at(b: &[u8], o: usize) -> u64 {
    u16::from_le_bytes(b[o..o + 2].try_into().unwrap()) as u64
}
fn u32_at(b: &[u8], o: usize) -> u64 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap()) as u64
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

/// Loads a static non-PIE ELF64 and sets up a SysV stack with `args`.
pub fn load(elf: &[u8], args: &[&str]) -> (AddressSpace, Cpu) {
    assert_eq!(&elf[..4], b"\x7fELF", "not an ELF file");
    // 8 GiB: small enough for valgrind to reserve (profiling runs use it).
    let mut space = AddressSpace::new(1 << 33).unwrap();
    let (phoff, phentsize, phnum) =
        (u64_at(elf, 0x20) as usize, u16_at(elf, 0x36) as usize, u16_at(elf, 0x38) as usize);
    for k in 0..phnum {
        let ph = &elf[phoff + k * phentsize..];
        if u32_at(ph, 0) != 1 {
            continue;
        }
        let (flags, off, vaddr, filesz, memsz) =
            (u32_at(ph, 4), u64_at(ph, 8), u64_at(ph, 16), u64_at(ph, 32), u64_at(ph, 40));
        let start = vaddr & !0xfff;
        let end = (vaddr + memsz + 0xfff) & !0xfff;
        let mut perm = Perm::NONE;
        if flags & 4 != 0 {
            perm = perm.union(Perm::READ);
        }
        if flags & 2 != 0 {
            perm = perm.union(Perm::WRITE);
        }
        if flags & 1 != 0 {
            perm = perm.union(Perm::EXEC);
        }
        // Segments may share a page: map the union, then set permissions.
        for page in (start..end).step_by(4096) {
            if let Some(old) = space.mem.perm_at(GuestAddress(page)) {
                space.mem.protect(GuestAddress(page), 4096, old.union(perm)).unwrap();
            } else {
                space.mem.map(GuestAddress(page), 4096, perm).unwrap();
            }
        }
        space.mem.write_raw(GuestAddress(vaddr), &elf[off as usize..(off + filesz) as usize]).unwrap();
    }
    let stack_top = 0x1_0000_0000u64;
    space.mem.map(GuestAddress(stack_top - 0x10_0000), 0x10_0000, Perm::RW).unwrap();
    let mut sp = stack_top - 0x1000;
    let mut ptrs = Vec::new();
    for a in args {
        let bytes = [a.as_bytes(), b"\0"].concat();
        space.mem.write(GuestAddress(sp), &bytes).unwrap();
        ptrs.push(sp);
        sp += bytes.len() as u64;
    }
    let mut words = vec![args.len() as u64];
    words.extend(&ptrs);
    words.extend([0, 0, 0, 0]); // argv NULL, envp NULL, AT_NULL
    let rsp = stack_top - 0x2000;
    for (k, w) in words.iter().enumerate() {
        space.mem.write(GuestAddress(rsp + 8 * k as u64), &w.to_le_bytes()).unwrap();
    }
    let mut cpu = Cpu::new();
    cpu.rip = u64_at(elf, 0x18);
    cpu.gpr[emu::reg::RSP] = rsp;
    (space, cpu)
}

/// Runs until `exit`, emulating `write(1|2, ...)`; panics on anything else.
pub fn run(space: &mut AddressSpace, cpu: &mut Cpu) -> Outcome {
    let mut stdout = Vec::new();
    loop {
        match cpu.run(space, u64::MAX) {
            Exit::Syscall(_) => match cpu.gpr[emu::reg::RAX] {
                1 => {
                    let (buf, len) = (cpu.gpr[emu::reg::RSI], cpu.gpr[emu::reg::RDX]);
                    let data = space.mem.slice(GuestAddress(buf), len).expect("write buffer").to_vec();
                    stdout.extend_from_slice(&data);
                    cpu.gpr[emu::reg::RAX] = len;
                }
                60 | 231 => return Outcome { stdout, status: cpu.gpr[emu::reg::RDI] as i32 & 0xff },
                n => panic!("unexpected system call {n} at {:#x}", cpu.rip),
            },
            exit => panic!("unexpected exit {exit:?} at rip {:#x}", cpu.rip),
        }
    }
}

/// Runs the program natively.
pub fn run_native(path: &Path, args: &[&str]) -> Outcome {
    let out = Command::new(path).args(&args[1..]).output().unwrap();
    Outcome { stdout: out.stdout, status: out.status.code().unwrap_or(-1) }
}
