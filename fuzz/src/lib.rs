//! Fuzz harness bodies, shared by the cargo-fuzz targets (`fuzz/fuzz_targets/*.rs`, nightly,
//! libFuzzer) and by the stable smoke test (`tests/fuzz_smoke.rs`, which includes this file
//! as a module), so CI exercises exactly the code the fuzzers run.
//!
//! Each harness takes arbitrary bytes and must return normally: a panic (or, under the
//! fuzzer's sanitizer, any memory error) is a finding. Harnesses keep every run bounded
//! (instruction budgets, small limits), touch the host file system only in their thread's
//! scratch directory (`scratch`, reset between inputs) and never read host input: a
//! guest's console is a capture with empty stdin.
//!
//! Targets:
//! - [`interp`]: the interpreter on random code and register states in a small address space.
//! - [`elf`]: the ELF loader: `elf::parse` directly, then exec of the bytes through the kernel.
//! - [`tar`]: the tar image reader (`Vfs::from_tar_vec`), then a walk of the tree it built.
//! - [`syscalls`]: a generated guest program issuing random system calls (numbers and
//!   arguments from the input) under the full kernel; the run must also be deterministic
//!   (checked on one input in eight: [`deterministic`]).
//! - [`overlay`]: the same programs with a persistent overlay (`--overlay`) in an empty host
//!   directory: nothing may appear outside it, and reloading it must give back exactly the
//!   tree the guest left.
//! - [`trace`]: the record/replay trace reader (`warden::record::TraceReader`) on arbitrary
//!   files: header, then every event.
//! - [`vfs_host`]: the `file:` scheme on a host root with an overlay (beside the root or
//!   inside it), driven by random file-system calls mixed with host-side swaps of a directory
//!   for a symlink out: nothing outside the scratch root may be changed or shown.
//! - [`policy`]: the `--policy` TOML parser (`warden::policy::parse`) on arbitrary text, then
//!   the policy it gave applied to a guest (`spawn_init_restricted`) and run briefly.
//! - [`linux_syscalls`]: [`syscalls`] for the Linux personality: a Linux program (ELF OS/ABI
//!   "GNU") issuing random Linux calls from the call table, with Linux flags, paths under
//!   `/proc`, `/sys` and `/dev`, socket addresses and maps; also checked for determinism.
//!
//! This file is a module of two crates: it uses only `emu`, `guest_kernel`, `warden_abi` and
//! `warden`.

#![allow(dead_code)]

use std::cell::RefCell;
use std::rc::Rc;

use emu::{reg, AddressSpace, Cpu, Exit, GuestAddress, Perm};
use guest_kernel::scheme::basic::{NullScheme, RandScheme, ZeroScheme};
use guest_kernel::testkit;
use guest_kernel::vfs::Vfs;
use guest_kernel::{CallCtx, CaptureConsole, CapturedOutput, Kernel, KernelConfig, Limits, RunOutcome, Scheme};
use warden_abi::*;

/// The names of the targets, in the order of the functions below.
pub const TARGETS: &[&str] =
    &["interp", "jit", "elf", "tar", "syscalls", "overlay", "trace", "policy", "vfs_host", "linux_syscalls"];

/// Runs the harness `name` on `data` (unknown names do nothing).
pub fn run_target(name: &str, data: &[u8]) {
    match name {
        "interp" => interp(data),
        "jit" => jit(data),
        "elf" => elf(data),
        "tar" => tar(data),
        "syscalls" => syscalls(data),
        "overlay" => overlay(data),
        "trace" => trace(data),
        "policy" => policy(data),
        "vfs_host" => vfs_host(data),
        "linux_syscalls" => linux_syscalls(data),
        _ => {}
    }
}

// --- small helpers ---------------------------------------------------------------------------

/// Reads the input front to back; past the end everything reads as zero.
pub struct Bytes<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Bytes<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Bytes { data, pos: 0 }
    }
    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }
    pub fn u8(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    pub fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        for x in &mut b {
            *x = self.u8();
        }
        u64::from_le_bytes(b)
    }
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let start = self.pos.min(self.data.len());
        let end = start.saturating_add(n).min(self.data.len());
        self.pos = self.pos.saturating_add(n);
        &self.data[start..end]
    }
    pub fn rest(&mut self) -> &'a [u8] {
        let start = self.pos.min(self.data.len());
        self.pos = self.data.len();
        &self.data[start..]
    }
}

/// A plain ustar archive: `(path, type, mode, contents-or-link-target)`; type `b'0'` file,
/// `b'5'` directory, `b'2'` symlink.
pub fn ustar(entries: &[(&str, u8, u32, &[u8])]) -> Vec<u8> {
    fn octal(field: &mut [u8], v: u64) {
        let s = format!("{:0width$o}", v, width = field.len() - 1);
        let last = field.len() - 1;
        field[..last].copy_from_slice(s.as_bytes());
        field[last] = 0;
    }
    let mut out = Vec::new();
    for &(path, ty, mode, data) in entries {
        let mut h = [0u8; 512];
        h[..path.len()].copy_from_slice(path.as_bytes());
        octal(&mut h[100..108], u64::from(mode));
        octal(&mut h[108..116], 0);
        octal(&mut h[116..124], 0);
        let size = if ty == b'0' { data.len() as u64 } else { 0 };
        octal(&mut h[124..136], size);
        octal(&mut h[136..148], 0);
        h[156] = ty;
        if ty == b'2' {
            h[157..157 + data.len()].copy_from_slice(data);
        }
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        let s = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(s.as_bytes());
        out.extend_from_slice(&h);
        if ty == b'0' {
            out.extend_from_slice(data);
            out.resize(out.len().div_ceil(512) * 512, 0);
        }
    }
    out.resize(out.len() + 1024, 0);
    out
}

/// A tiny static program that exits with status 7 (`mov edi, 7; mov eax, 1; syscall`).
pub fn exit7_elf() -> Vec<u8> {
    testkit::static_elf(&[0xbf, 7, 0, 0, 0, 0xb8, 1, 0, 0, 0, 0x0f, 0x05], 0)
}

/// The small root image the kernel harnesses boot: a program, a few files and directories,
/// a symlink and a symlink loop.
pub fn base_image() -> Vec<u8> {
    let prog = exit7_elf();
    ustar(&[
        ("bin/", b'5', 0o755, b""),
        ("bin/prog", b'0', 0o755, &prog),
        ("etc/", b'5', 0o755, b""),
        ("etc/passwd", b'0', 0o644, b"root:x:0:0::/:/bin/sh\n"),
        ("etc/secret", b'0', 0o600, b"s3cret"),
        ("tmp/", b'5', 0o1777, b""),
        ("tmp/link", b'2', 0o777, b"/etc/passwd"),
        ("tmp/loop", b'2', 0o777, b"/tmp/loop2"),
        ("tmp/loop2", b'2', 0o777, b"/tmp/loop"),
        ("tmp/up", b'2', 0o777, b"../../../.."),
    ])
}

/// A fresh tree of [`base_image`] for one run: the image is built and parsed once per
/// thread, then duplicated (building it was 5 % of a `syscalls` input, parsing it 7 % per run).
pub fn base_vfs() -> Vfs {
    thread_local! {
        static BASE: Vfs = Vfs::from_tar_vec(base_image()).expect("base image");
    }
    BASE.with(|base| base.duplicate().expect("the base tree duplicates"))
}

pub fn kernel_with(vfs: Vfs, config: KernelConfig) -> (Kernel, Rc<RefCell<CapturedOutput>>) {
    let (console, out) = CaptureConsole::new(b"");
    let mut kernel = Kernel::new(config, Box::new(vfs), Box::new(console));
    kernel.register_scheme("null", Box::new(NullScheme));
    kernel.register_scheme("zero", Box::new(ZeroScheme));
    kernel.register_scheme("rand", Box::new(RandScheme::new(1)));
    (kernel, out)
}

/// Kernel settings for fuzzing: default behaviour with small, fast limits.
pub fn fuzz_config(budget: u64) -> KernelConfig {
    KernelConfig {
        quantum: 997,
        instruction_budget: Some(budget),
        limits: Limits { max_processes: 12, max_memory_per_process: 64 << 20, max_fds: 64, ..Limits::default() },
        stack_size: 256 << 10,
        ..KernelConfig::default()
    }
}

// --- interp ----------------------------------------------------------------------------------

/// Address-space size of the interpreter target: 1 MiB.
const INTERP_SPACE: u64 = 1 << 20;
const INTERP_CODE: u64 = 0x1000;
const INTERP_DATA: u64 = 0x10000;
const INTERP_DATA_LEN: u64 = 0x10000;

/// The pages the interpreter target checks and resets: code, data and the read-only page.
const INTERP_CHECKED: std::ops::Range<u64> = INTERP_CODE..INTERP_DATA + INTERP_DATA_LEN + 0x1000;

/// The interpreter target's address space, kept across inputs (with its code cache's
/// table) and reset after each, and how its code is mapped (as `JitSpaces::code`).
struct InterpSpace {
    space: AddressSpace,
    code: (u64, Perm),
}

thread_local! {
    /// A fresh reservation, its cache table and the snapshots cost most of the time of an
    /// input before (issue 22).
    static INTERP_SPACE_KEPT: RefCell<Option<InterpSpace>> = const { RefCell::new(None) };
}

/// The interpreter on random code and registers.
///
/// Input: one flag byte, 16 register seeds (8 bytes each), MXCSR and the x87 control word
/// (2 bytes each), then code. Flag bit 0 maps the code page writable too (self-modifying
/// code); a register seed with bit 63 set becomes a pointer into the data area, so memory
/// operands hit mapped memory often. Runs until a fault or 5,000 instructions; traps
/// (`syscall`, `int n`, ...) continue as if the kernel returned 0. The code pages past the
/// code and 16 zero bytes hold `hlt` (a clean end, as in [`jit`]): a sled of
/// `add [rax], al` to the end of the page ran to the end of the budget for most inputs
/// and covered nothing new.
///
/// "No host memory touched outside guest memory" is checked two ways. On the host side,
/// `emu::Memory` keeps a `PROT_NONE` guard zone after the guest's data (and its permission
/// table before it): all host accesses go through bounds-checked slices or through the
/// fast paths' `base + addr` after an `addr < limit` check, so a wrong check faults on the
/// guard, which the fuzzer reports as a crash (and ASan checks every other host access).
/// On the guest side the run must not change what the guest could not write: the mapped
/// ranges, the read-only page, the code page unless it was mapped writable, and a
/// copy-on-write fork of the space taken before the run (flag bit 1 runs the fork instead,
/// so the lazily copied side executes, and the original must stay as it was).
///
/// Cost per input: one address space is kept across inputs and reset (the code pages
/// rewritten, remapped only when their length or permissions change; the data pages the
/// last run changed zeroed), so its code cache's table is reused; the fork is taken from
/// it for each input (so copy-on-write starts afresh). Nothing is snapshotted: the state
/// before a run is known (the code and its `hlt` fill, then zeros), so the running side
/// is compared against it page by page, and the other side of the fork only on the pages
/// the run changed plus the code and read-only pages.
pub fn interp(data: &[u8]) {
    let mut b = Bytes::new(data);
    let flags = b.u8();
    let mut seeds = [0u64; 16];
    for s in &mut seeds {
        *s = b.u64();
    }
    let mxcsr = b.u16();
    let _fcw = b.u16(); // the x87 control word is reached through `fldcw` in the code instead
    let code = b.rest();
    let kept = INTERP_SPACE_KEPT.with(|k| k.borrow_mut().take());
    let fresh = || Some(InterpSpace { space: interp_space()?, code: (0, Perm::NONE) });
    let Some(InterpSpace { mut space, code: mapped }) = kept.or_else(fresh) else { return };
    let code_perm = if flags & 1 != 0 { Perm::RWX } else { Perm::RX };
    let (code_len, fill) = code_fill(code);
    if mapped != (code_len, code_perm) {
        space.mem.map(GuestAddress(INTERP_CODE), code_len, code_perm).expect("map code");
        space.mem.unmap(GuestAddress(INTERP_CODE + code_len), INTERP_DATA - INTERP_CODE - code_len).expect("unmap");
    }
    // Rewriting drops the decoded blocks of the last input's code.
    space.mem.write_raw(GuestAddress(INTERP_CODE), &fill).expect("write code");
    // What every checked page holds before the run: the code and its fill, then zeros.
    let before = |addr: u64| -> &[u8] {
        let off = (addr - INTERP_CODE) as usize;
        if addr < INTERP_DATA && off < fill.len() {
            &fill[off..]
        } else {
            &[]
        }
    };
    let mut cpu = Cpu::new();
    for (i, &s) in seeds.iter().enumerate() {
        cpu.gpr[i] = if s >> 63 != 0 { INTERP_DATA + (s & (INTERP_DATA_LEN - 1)) } else { s };
        cpu.xmm[i] = u128::from(s) << 64 | u128::from(s.rotate_left(17) ^ 0x9e37_79b9_7f4a_7c15);
    }
    cpu.gpr[reg::RSP] = INTERP_DATA + INTERP_DATA_LEN / 2 + (seeds[reg::RSP] & 0xff8);
    cpu.rip = INTERP_CODE;
    cpu.mxcsr = u32::from(mxcsr) & emu::cpu::MXCSR_MASK;
    cpu.set_rflags(seeds[0].rotate_left(7));
    let regions: Vec<_> = space.mem.regions().collect();
    let mut fork = space.fork().expect("fork");
    let child_runs = flags & 2 != 0;
    let (running, other) = if child_runs { (&mut fork, &space) } else { (&mut space, &fork) };
    let mut left: u64 = 5_000;
    for _ in 0..64 {
        if left == 0 {
            break;
        }
        let before = cpu.icount;
        let exit = cpu.run(running, left);
        let used = cpu.icount - before;
        assert!(used <= left, "interpreter overran its budget: {used} > {left}");
        left -= used;
        match exit {
            Exit::Syscall(_) | Exit::Interrupt(_) | Exit::Breakpoint | Exit::Debug => cpu.gpr[reg::RAX] = 0,
            _ => break,
        }
    }
    assert_eq!(running.mem.regions().collect::<Vec<_>>(), regions, "the mappings changed");
    // The pages the run changed; only the data pages and writable code may be among them.
    let mut changed = Vec::new();
    for page in INTERP_CHECKED.step_by(emu::PAGE_SIZE as usize) {
        if page >= INTERP_CODE + code_len && page < INTERP_DATA {
            continue;
        }
        let now = running.mem.slice(GuestAddress(page), emu::PAGE_SIZE).expect("checked pages are readable");
        if !same_page(now, before(page)) {
            let writable = (INTERP_DATA..INTERP_DATA + INTERP_DATA_LEN).contains(&page) || flags & 1 != 0;
            assert!(writable, "a page the guest cannot write changed: {page:#x}");
            changed.push(page);
        }
    }
    // The other side of the fork: the pages the run changed, the first code page and the
    // read-only page must hold what they held before.
    for &page in changed.iter().chain(&[INTERP_CODE, INTERP_DATA + INTERP_DATA_LEN]) {
        let then = other.mem.slice(GuestAddress(page), emu::PAGE_SIZE).expect("checked pages are readable");
        assert!(same_page(then, before(page)), "the other side of a fork changed at {page:#x}");
    }
    drop(fork);
    if !child_runs {
        for page in changed.into_iter().filter(|&p| p >= INTERP_DATA) {
            space.mem.fill_raw(GuestAddress(page), emu::PAGE_SIZE, 0).expect("reset a data page");
        }
    }
    INTERP_SPACE_KEPT.with(|k| *k.borrow_mut() = Some(InterpSpace { space, code: (code_len, code_perm) }));
}

/// The code pages of [`interp`] and [`jit`] for `code`: their length (whole pages, the
/// code and 16 bytes at least, at most up to the data) and what they hold: the code (cut
/// to fit), 16 zero bytes, then `hlt` to the end.
fn code_fill(code: &[u8]) -> (u64, Vec<u8>) {
    let code_len = (code.len() as u64 + 16).div_ceil(emu::PAGE_SIZE).max(1) * emu::PAGE_SIZE;
    let code_len = code_len.min(INTERP_DATA - INTERP_CODE);
    let mut fill = code[..code.len().min(code_len as usize)].to_vec();
    fill.resize((fill.len() + 16).min(code_len as usize), 0);
    fill.resize(code_len as usize, 0xf4); // hlt
    (code_len, fill)
}

/// A new address space for [`interp`]: the data area and a read-only page after it (the
/// code is mapped for each input).
fn interp_space() -> Option<AddressSpace> {
    let mut space = AddressSpace::new(INTERP_SPACE).ok()?;
    space.mem.map(GuestAddress(INTERP_DATA), INTERP_DATA_LEN, Perm::RW).expect("map data");
    space.mem.map(GuestAddress(INTERP_DATA + INTERP_DATA_LEN), 0x1000, Perm::READ).expect("map ro");
    Some(space)
}

/// Whether a page holds `prefix` followed by zeros. Slice equality (one `memcmp`), not a
/// loop over the bytes: the fuzzer's coverage instrumentation would trace every byte.
fn same_page(page: &[u8], prefix: &[u8]) -> bool {
    static ZEROS: [u8; emu::PAGE_SIZE as usize] = [0; emu::PAGE_SIZE as usize];
    let n = prefix.len().min(page.len());
    page[..n] == prefix[..n] && page[n..] == ZEROS[n..page.len()]
}

// --- jit -------------------------------------------------------------------------------------

/// Where the `jit` target's writable data ends and its read-only page begins.
const JIT_EDGE: u64 = INTERP_DATA + INTERP_DATA_LEN;

/// The `jit` target's two address spaces (interpreter side, translator side), kept across
/// inputs and reset after each, as `interp` keeps its one, and how their code is mapped.
struct JitSpaces {
    interp: AddressSpace,
    jit: AddressSpace,
    /// Length and permissions of the code mapping (remapped only when they change: a map
    /// costs an `madvise` and a page fault).
    code: (u64, Perm),
}

thread_local! {
    static JIT_SPACES: RefCell<Option<JitSpaces>> = const { RefCell::new(None) };
}

/// The translation tier against the interpreter (issue 17): random code and registers run
/// under both tiers, each in its own address space, in the same budget slices; after every
/// exit the exit, the general, vector and x87 registers, `rip`, `fs`/`gs` bases, MXCSR, the
/// instruction count, the flags (the status flags only at system calls: elsewhere one the
/// code overwrites before reading it may differ, see `emu::jit`) and every mapped page
/// (code, data, read-only) must agree.
///
/// Input: one flag byte, 8 bytes of budget slices, 16 register seeds (as in `interp`, and a
/// seed with its top two bits set points within 16 bytes of the end of the writable data,
/// `rsp` too, so accesses and pushes straddle the read-only page), MXCSR (2 bytes:
/// rounding, FTZ/DAZ, exception masks; an unmasked exception leaves the translated code
/// for the interpreter, which raises it), then code. Flag bit 0 maps the
/// code writable (self-modifying code, which stays in the interpreter); bits 2-3 pick the
/// translator's threshold (0, 0, 1 or 4 executions: mostly translated from the first run,
/// sometimes after a few interpreted ones). The code runs from its start for the threshold
/// plus 2 rounds of up to 8 slices of 1-1,024 instructions, so every block runs translated
/// at least twice (the second time through the chaining table). The code pages past the
/// code and 16 zero bytes hold `hlt` (a clean end), not a sled of `add [rax], al`.
///
/// Cost per input: both spaces are kept and reset (code rewritten, code caches and
/// translations flushed so no input sees another's, data pages the run wrote zeroed); the
/// pages are compared in place (one `memcmp` of 68 KiB per exit), not copied.
pub fn jit(data: &[u8]) {
    let mut b = Bytes::new(data);
    let flags = b.u8();
    let slices = b.u64();
    let mut seeds = [0u64; 16];
    for s in &mut seeds {
        *s = b.u64();
    }
    let mxcsr = u32::from(b.u16()) & emu::cpu::MXCSR_MASK;
    let code = b.rest();
    let code_perm = if flags & 1 != 0 { Perm::RWX } else { Perm::RX };
    let (code_len, fill) = code_fill(code);
    let hot = [0, 0, 1, 4][usize::from(flags >> 2 & 3)];
    let kept = JIT_SPACES.with(|k| k.borrow_mut().take());
    let fresh = || Some(JitSpaces { interp: interp_space()?, jit: interp_space()?, code: (0, Perm::NONE) });
    let Some(JitSpaces { interp: mut sa, jit: mut sj, code: mapped }) = kept.or_else(fresh) else { return };
    let cpu = |tier: emu::Tier| {
        let mut cpu = Cpu::new();
        cpu.tier = tier;
        for (i, &s) in seeds.iter().enumerate() {
            cpu.gpr[i] = match s >> 62 {
                3 => JIT_EDGE - 16 + (s & 31),
                2 => INTERP_DATA + (s & (INTERP_DATA_LEN - 1)),
                _ => s,
            };
            cpu.xmm[i] = u128::from(s) << 64 | u128::from(s.rotate_left(17));
            cpu.ymm_hi[i] = u128::from(s.rotate_left(31)) << 64 | u128::from(!s);
        }
        if seeds[reg::RSP] >> 62 != 3 {
            cpu.gpr[reg::RSP] = INTERP_DATA + INTERP_DATA_LEN / 2 + (seeds[reg::RSP] & 0xff8);
        }
        cpu.rip = INTERP_CODE;
        cpu.mxcsr = mxcsr;
        cpu.set_rflags(seeds[0].rotate_left(7));
        cpu
    };
    for space in [&mut sa, &mut sj] {
        space.flush_code();
        space.set_jit_threshold(hot);
        if mapped != (code_len, code_perm) {
            space.mem.map(GuestAddress(INTERP_CODE), code_len, code_perm).expect("map code");
            space.mem.unmap(GuestAddress(INTERP_CODE + code_len), INTERP_DATA - INTERP_CODE - code_len).expect("unmap");
        }
        space.mem.write_raw(GuestAddress(INTERP_CODE), &fill).expect("write code");
    }
    let (mut a, mut j) = (cpu(emu::Tier::Interp), cpu(emu::Tier::Jit));
    let status = emu::flags::STATUS;
    let mut step = 0u32;
    for round in 0..hot + 2 {
        a.rip = INTERP_CODE;
        j.rip = INTERP_CODE;
        for _ in 0..8 {
            let slice = 1 + (slices.rotate_left(step * 5) & 0x3ff);
            step += 1;
            let (ea, ej) = (a.run(&mut sa, slice), j.run(&mut sj, slice));
            assert_eq!(ea, ej, "exit, round {round} step {step} slice {slice}");
            if !matches!(ea, Exit::Syscall(_)) {
                assert_eq!(a.rflags & !status, j.rflags & !status, "rflags, round {round} step {step}");
                j.rflags = a.rflags;
            }
            assert_eq!(
                (a.gpr, a.rip, a.rflags, a.icount, a.fs_base, a.gs_base),
                (j.gpr, j.rip, j.rflags, j.icount, j.fs_base, j.gs_base),
                "state, round {round} step {step} slice {slice}"
            );
            assert_eq!(
                (a.xmm, a.ymm_hi, a.mxcsr),
                (j.xmm, j.ymm_hi, j.mxcsr),
                "vector state, round {round} step {step}"
            );
            assert_eq!(a.x87, j.x87, "x87 state, round {round} step {step}");
            let (pa, pj) = (jit_pages(&sa, code_len), jit_pages(&sj, code_len));
            if pa != pj {
                let first = |k: usize| pa[k].iter().zip(pj[k]).position(|(x, y)| x != y);
                panic!("memory differs (code at {:?}, data at {:?}), round {round} step {step}", first(0), first(1));
            }
            match ea {
                Exit::BudgetExhausted => {}
                Exit::Syscall(_) | Exit::Interrupt(_) | Exit::Breakpoint | Exit::Debug => {
                    a.gpr[reg::RAX] = 0;
                    j.gpr[reg::RAX] = 0;
                }
                _ => break,
            }
        }
    }
    // Both sides agree (checked above): zero the data pages the run wrote, on both.
    for page in (INTERP_DATA..INTERP_DATA + INTERP_DATA_LEN + 0x1000).step_by(emu::PAGE_SIZE as usize) {
        if !same_page(sa.mem.slice(GuestAddress(page), emu::PAGE_SIZE).expect("data is readable"), &[]) {
            assert!(page < INTERP_DATA + INTERP_DATA_LEN, "the read-only page changed");
            for space in [&mut sa, &mut sj] {
                space.mem.fill_raw(GuestAddress(page), emu::PAGE_SIZE, 0).expect("reset a data page");
            }
        }
    }
    JIT_SPACES.with(|k| *k.borrow_mut() = Some(JitSpaces { interp: sa, jit: sj, code: (code_len, code_perm) }));
}

/// The mapped pages of a `jit` space: the code, then the data and the read-only page.
fn jit_pages(s: &AddressSpace, code_len: u64) -> [&[u8]; 2] {
    let code = s.mem.slice(GuestAddress(INTERP_CODE), code_len).expect("the code is readable");
    let data = s.mem.slice(GuestAddress(INTERP_DATA), INTERP_DATA_LEN + 0x1000).expect("the data is readable");
    [code, data]
}

// --- elf -------------------------------------------------------------------------------------

/// The ELF loader: `parse` for two address-space sizes, then exec through the kernel (the
/// bytes as `/prog` in the base image) and a short run.
pub fn elf(data: &[u8]) {
    for size in [1u64 << 36, 1 << 24] {
        if let Ok(image) = guest_kernel::elf::parse(data, size) {
            assert!(image.entry < size, "entry outside the address space");
            for s in &image.segments {
                assert!(s.vaddr.checked_add(s.memsz).is_some_and(|e| e <= size));
            }
        }
    }
    let vfs = base_vfs();
    let ctx = CallCtx { pid: 0, uid: 0, gid: 0, umask: 0 };
    let mut root = vfs.clone();
    let file = root.open(b"/prog", O_CREAT | O_WRONLY | 0o755, &ctx).expect("create /prog");
    let mut written = 0;
    while written < data.len() {
        match file.borrow_mut().write(&data[written..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => written += n,
        }
    }
    drop(file);
    let (mut kernel, _out) = kernel_with(vfs, fuzz_config(20_000));
    match kernel.spawn_init("/prog", &["prog", "a"], &["X=1"]) {
        Ok(_) => {
            let _ = kernel.run();
        }
        Err(e) => {
            // Every failure maps onto a documented exit status.
            assert!(matches!(e.exit_status(), 125..=127), "{e}");
            assert!(!e.to_string().is_empty());
        }
    }
}

// --- tar -------------------------------------------------------------------------------------

/// The tar reader: parse, then walk what was built (stat, list, read every file, then
/// write, truncate, create and remove through the overlay).
pub fn tar(data: &[u8]) {
    let vfs = match Vfs::from_tar_vec(data.to_vec()) {
        Ok(v) => v,
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.is_empty() && !msg.contains('\n'), "error must be one line: {msg:?}");
            return;
        }
    };
    let ctx = CallCtx { pid: 0, uid: 0, gid: 0, umask: 0o022 };
    let user = CallCtx { pid: 2, uid: 1000, gid: 1000, umask: 0o022 };
    let mut root = vfs.clone();
    let mut stack: Vec<(Vec<u8>, usize)> = vec![(b"/".to_vec(), 0)];
    let mut visited = 0usize;
    while let Some((dir, depth)) = stack.pop() {
        let Ok(names) = vfs.list_dir(&dir) else { continue };
        for name in names {
            visited += 1;
            if visited > 2000 {
                return;
            }
            let mut path = dir.clone();
            if path.last() != Some(&b'/') {
                path.push(b'/');
            }
            path.extend_from_slice(&name);
            let _ = vfs.lstat_path(&path);
            let _ = vfs.canonicalize(&path);
            match vfs.stat_path(&path) {
                Ok(st) if st.is_dir() => {
                    if depth < 64 {
                        stack.push((path.clone(), depth + 1));
                    }
                }
                Ok(_) => {
                    for c in [&ctx, &user] {
                        if let Ok(f) = root.open(&path, O_RDONLY, c) {
                            let mut buf = [0u8; 4096];
                            let mut total = 0;
                            while let Ok(n) = f.borrow_mut().read(&mut buf) {
                                if n == 0 || total > 1 << 20 {
                                    break;
                                }
                                total += n;
                            }
                            let _ = f.borrow().stat();
                        }
                    }
                    if let Ok(f) = root.open(&path, O_RDWR | O_APPEND, &ctx) {
                        let _ = f.borrow_mut().write(b"more");
                        let _ = f.borrow_mut().truncate(3);
                    }
                    let _ = root.unlink(&path, &ctx);
                }
                Err(_) => {
                    let _ = root.open(&path, O_RDONLY | O_SYMLINK, &ctx);
                }
            }
            let _ = root.open(&[&path[..], b"/new"].concat(), O_CREAT | O_WRONLY | 0o644, &ctx);
            let _ = root.open(&[&path[..], b"/../.."].concat(), O_RDONLY, &user);
        }
    }
    let _ = root.rmdir(b"/", &ctx);
}

// --- syscalls ----------------------------------------------------------------------------------

/// Strings a generated program can point a path argument at.
pub const PATHS: &[&[u8]] = &[
    b"/",
    b"/tmp",
    b"/tmp/f",
    b"/bin/prog",
    b"/etc/passwd",
    b"/etc/secret",
    b"/tmp/link",
    b"/tmp/loop",
    b"/tmp/up/etc/passwd",
    b"../../../../etc/passwd",
    b"file:/tmp/new",
    b"pipe:",
    b"null:",
    b"zero:",
    b"rand:",
    b"time:",
    b"time:4",
    b"debug:",
    b"debug:stderr",
    b"proc:",
    b"proc:1/maps",
    b"proc:self",
    b"nosuch:x",
    b"/tmp/d/",
    b"",
    b".",
    b"..",
    b"/bin",
];

/// Flag words a generated program can pass (open flags with modes, clone flags, ...).
pub const FLAGS: &[u64] = &[
    (O_CREAT | O_WRONLY | 0o644) as u64,
    (O_CREAT | O_WRONLY | O_TRUNC | 0o600) as u64,
    (O_CREAT | O_DIRECTORY | 0o755) as u64,
    (O_CREAT | O_SYMLINK | O_WRONLY | 0o777) as u64,
    (O_CREAT | O_EXCL | O_RDWR | 0o4755) as u64,
    (O_RDWR | O_TRUNC) as u64,
    (O_WRONLY | O_APPEND) as u64,
    O_RDONLY as u64,
    (O_RDONLY | O_DIRECTORY) as u64,
    (O_SYMLINK | O_RDONLY) as u64,
    (O_NOFOLLOW | O_WRONLY) as u64,
    O_STAT as u64,
    (O_NONBLOCK | O_CLOEXEC) as u64,
    CLONE_VM as u64,
    (CLONE_VM | CLONE_THREAD | CLONE_FILES | CLONE_SIGHAND | CLONE_FS) as u64,
    CLONE_VFORK as u64,
    1 << 62,
    (1 << 62) | 1,
];

/// Where the generated program keeps its data: the page after its code (see
/// [`syscall_program`]).
pub const SYS_DATA: u64 = testkit::LOAD_ADDR + emu::PAGE_SIZE;
/// Size of the strings and scratch area (paths, then scratch bytes from the input).
pub const SYS_DATA_LEN: u64 = 1024;
/// Offset of the scratch bytes inside the data area.
const SCRATCH_OFF: u64 = 512;
/// Calls a program makes at most.
const MAX_CALLS: u64 = 64;
/// Size of one call record: number, gate, six values, six sources, two spare words.
const RECORD: u64 = 16 * 8;
/// Where the call records start (after the strings and scratch bytes).
const SYS_RECORDS: u64 = SYS_DATA + SYS_DATA_LEN;
/// Zeroed, writable bytes after the records (what pointer arguments of kind 2 point into).
const SYS_BSS: u64 = 64 << 10;

/// The program's fixed code: a loop that makes the call each record describes, identical for
/// every input, so its decoded blocks are shared by every run, fork and input (see
/// [`share_decoded_code`]); it used to be straight-line code generated per input, decoded
/// afresh by every run and every forked child (20-30 % of an input).
///
/// `rbp` walks the records (from [`SYS_RECORDS`]). Record words: 0 the call number, 1 the
/// gate (0 `syscall`, 1 `int 0x80`, anything else: exit with the number, status 0), 2-7 the
/// six argument values, 8-13 their sources (0 the value, 1-4 the last to fourth-last
/// result: `r12`..`r15`, which the loop shifts after every call).
fn call_loop() -> Vec<u8> {
    const RBP: usize = 5;
    // mov r, [rbp + disp8]
    fn load(c: &mut Vec<u8>, r: usize, disp: u64) {
        c.extend_from_slice(&[0x48 | if r >= 8 { 4 } else { 0 }, 0x8b, 0x45 | ((r as u8 & 7) << 3), disp as u8]);
    }
    // Argument `i` into `r`: its value, replaced by a result register when its source says so.
    fn arg(c: &mut Vec<u8>, r: usize, i: u64) {
        load(c, r, 16 + 8 * i);
        load(c, reg::RAX, 64 + 8 * i);
        for k in 1..=4u8 {
            let src = reg::R12 + usize::from(k) - 1;
            // cmp eax, k; cmove r, src
            c.extend_from_slice(&[0x83, 0xf8, k, 0x49 | if r >= 8 { 4 } else { 0 }, 0x0f, 0x44]);
            c.push(0xc0 | ((r as u8 & 7) << 3) | (src as u8 & 7));
        }
    }
    // Points the rel32 of the jump at `at` to the end of the code so far.
    fn land(c: &mut [u8], at: usize) {
        let rel = (c.len() - (at + 4)) as u32;
        c[at..at + 4].copy_from_slice(&rel.to_le_bytes());
    }
    let mut c = Vec::new();
    movabs(&mut c, RBP, SYS_RECORDS);
    let top = c.len();
    load(&mut c, reg::RAX, 8);
    c.extend_from_slice(&[0x48, 0x85, 0xc0, 0x0f, 0x85, 0, 0, 0, 0]); // test rax, rax; jnz .int80
    let to_int80 = c.len() - 4;
    for (i, &r) in [reg::RDI, reg::RSI, reg::RDX, reg::R10, reg::R8, reg::R9].iter().enumerate() {
        arg(&mut c, r, i as u64);
    }
    load(&mut c, reg::RAX, 0);
    c.extend_from_slice(&[0x0f, 0x05, 0xe9, 0, 0, 0, 0]); // syscall; jmp .done
    let to_done = c.len() - 4;
    land(&mut c, to_int80);
    c.extend_from_slice(&[0x48, 0x83, 0xf8, 0x01, 0x0f, 0x85, 0, 0, 0, 0]); // cmp rax, 1; jne .exit
    let to_exit = c.len() - 4;
    for (i, &r) in [reg::RBX, reg::RCX, reg::RDX, reg::RSI, reg::RDI, reg::R9].iter().enumerate() {
        arg(&mut c, r, i as u64);
    }
    load(&mut c, reg::RAX, 0);
    c.extend_from_slice(&[0xcd, 0x80]); // int 0x80
    land(&mut c, to_done);
    mov_rr(&mut c, reg::R15, reg::R14);
    mov_rr(&mut c, reg::R14, reg::R13);
    mov_rr(&mut c, reg::R13, reg::R12);
    mov_rr(&mut c, reg::R12, reg::RAX);
    c.extend_from_slice(&[0x48, 0x81, 0xc5]); // add rbp, RECORD
    c.extend_from_slice(&(RECORD as u32).to_le_bytes());
    let back = top as i64 - (c.len() as i64 + 5);
    c.push(0xe9); // jmp .top
    c.extend_from_slice(&(back as i32).to_le_bytes());
    land(&mut c, to_exit);
    load(&mut c, reg::RAX, 0);
    c.extend_from_slice(&[0x31, 0xff, 0x0f, 0x05, 0x0f, 0x0b]); // xor edi, edi; syscall; ud2
    c
}

fn movabs(code: &mut Vec<u8>, r: usize, imm: u64) {
    code.push(if r >= 8 { 0x49 } else { 0x48 });
    code.push(0xb8 + (r as u8 & 7));
    code.extend_from_slice(&imm.to_le_bytes());
}

fn mov_rr(code: &mut Vec<u8>, dst: usize, src: usize) {
    code.push(0x48 | if src >= 8 { 4 } else { 0 } | if dst >= 8 { 1 } else { 0 });
    code.push(0x89);
    code.push(0xc0 | ((src as u8 & 7) << 3) | (dst as u8 & 7));
}

/// Makes the code caches of this thread share decoded blocks (`emu::SharedCode`) from now
/// on: the generated programs' code is the same for every input, so it is decoded once per
/// thread. Sharing is exact (a block is reused only where decoding would give the same
/// block), so a run's result does not depend on what ran before it on the thread
/// (`tests/fuzz_smoke.rs` checks that).
pub fn share_decoded_code() {
    thread_local! {
        static SHARED: emu::SharedCodeGuard = emu::SharedCode::new().enter();
    }
    SHARED.with(|_| ());
}

/// What a generated program draws its calls from: one ABI's numbers, strings and flags.
struct CallSet {
    /// Call numbers a selector byte picks from.
    numbers: &'static [usize],
    /// Added to a raw 16-bit number (selector 0x7e).
    raw_base: u64,
    /// Strings (paths, socket addresses) the data area holds.
    strings: &'static [&'static [u8]],
    flags: &'static [u64],
    /// The call that ends the program (with status 0).
    exit: u64,
    /// The ELF header's OS/ABI byte (3, "GNU", for a Linux program).
    os_abi: u8,
}

fn redox_numbers() -> &'static [usize] {
    static N: std::sync::OnceLock<Vec<usize>> = std::sync::OnceLock::new();
    N.get_or_init(|| SYSCALLS.iter().map(|c| c.0).collect())
}

/// Builds the guest program from the input: 128 scratch bytes, then records of one number
/// selector byte, a gate bit, and six arguments, each a kind byte plus its value. An input of
/// 128 bytes or fewer makes no call, so a campaign starts from the seeds (libFuzzer from an
/// empty corpus keeps its inputs that short for a long while and finds nothing).
///
/// Returns the ELF file: a read-and-execute page with the headers and [`call_loop`] (the
/// same bytes for every input), then a writable segment with the strings, the scratch bytes,
/// the call records and 64 KiB of zeroes. The program keeps the last four results in
/// r12..r15 (so later calls can use a returned descriptor, pid or address) and exits with
/// status 0 at the end.
pub fn syscall_program(data: &[u8]) -> Vec<u8> {
    generate(
        data,
        &CallSet {
            numbers: redox_numbers(),
            raw_base: SYS_CLASS_FILE as u64,
            strings: PATHS,
            flags: FLAGS,
            exit: SYS_EXIT as u64,
            os_abi: 0,
        },
    )
}

fn generate(data: &[u8], set: &CallSet) -> Vec<u8> {
    let mut b = Bytes::new(data);
    // Data area: the paths (each NUL-terminated), then the scratch bytes.
    let mut area = Vec::with_capacity((SYS_DATA_LEN + (MAX_CALLS + 1) * RECORD) as usize);
    let mut path_at = Vec::with_capacity(set.strings.len());
    for p in set.strings {
        path_at.push((SYS_DATA + area.len() as u64, p.len() as u64));
        area.extend_from_slice(p);
        area.push(0);
    }
    assert!(area.len() as u64 <= SCRATCH_OFF);
    area.resize(SCRATCH_OFF as usize, 0);
    area.extend_from_slice(b.take(128));
    area.resize(SYS_DATA_LEN as usize, 0);
    let scratch = SYS_DATA + SCRATCH_OFF;
    let bss = SYS_RECORDS + (MAX_CALLS + 1) * RECORD;

    let mut calls = 0;
    while !b.is_empty() && calls < MAX_CALLS {
        calls += 1;
        let sel = b.u8();
        let int80 = sel & 0x80 != 0;
        let nr = match sel & 0x7f {
            0x7f => b.u64(),
            0x7e => u64::from(b.u16()) | set.raw_base,
            s => set.numbers[s as usize % set.numbers.len()] as u64,
        };
        let mut record = [0u64; (RECORD / 8) as usize];
        record[0] = nr;
        record[1] = u64::from(int80);
        for i in 0..6 {
            let kind = b.u8();
            record[2 + i] = match kind % 10 {
                0 => u64::from(kind / 10),
                1 => scratch + u64::from(b.u16()) % 512,
                2 => bss + u64::from(b.u16()),
                3 => u64::from(b.u16()),
                4 => path_at[usize::from(kind / 10) % path_at.len()].0,
                5 => path_at[usize::from(kind / 10) % path_at.len()].1,
                6 => u64::MAX - u64::from(kind / 10),
                7 => b.u64(),
                8 => {
                    // A previous result: the source is its register, r12..r15.
                    record[8 + i] = 1 + u64::from(kind / 10) % 4;
                    0
                }
                _ => set.flags[usize::from(kind / 10) % set.flags.len()],
            };
        }
        area.extend(record.iter().flat_map(|w| w.to_le_bytes()));
    }
    let mut end = [0u64; (RECORD / 8) as usize];
    end[0] = set.exit;
    end[1] = 2;
    area.extend(end.iter().flat_map(|w| w.to_le_bytes()));
    // Always the same size, so the headers (on the code page) are the same for every input.
    area.resize((SYS_DATA_LEN + (MAX_CALLS + 1) * RECORD) as usize, 0);
    program_elf(&call_loop(), &area, SYS_BSS, set.os_abi)
}

/// A static ELF executable of two segments: `code` after the headers, read and execute, at
/// [`testkit::LOAD_ADDR`]; `data` then `bss` zeroed bytes, read and write, on the next page
/// ([`SYS_DATA`]).
fn program_elf(code: &[u8], data: &[u8], bss: u64, os_abi: u8) -> Vec<u8> {
    const HEADERS: u64 = 64 + 2 * 56;
    let load = testkit::LOAD_ADDR;
    let code_end = HEADERS + code.len() as u64;
    assert!(code_end <= emu::PAGE_SIZE);
    let mut out = Vec::with_capacity(emu::PAGE_SIZE as usize + data.len());
    // e_ident: magic, ELFCLASS64, ELFDATA2LSB, EV_CURRENT, OS/ABI.
    out.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, os_abi, 0, 0, 0, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&2u16.to_le_bytes()); // e_type: ET_EXEC
    out.extend_from_slice(&62u16.to_le_bytes()); // e_machine: x86-64
    out.extend_from_slice(&1u32.to_le_bytes()); // e_version
    out.extend_from_slice(&(load + HEADERS).to_le_bytes()); // e_entry
    out.extend_from_slice(&64u64.to_le_bytes()); // e_phoff
    out.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    out.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    for half in [64u16, 56, 2, 64, 0, 0] {
        // e_ehsize, e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx
        out.extend_from_slice(&half.to_le_bytes());
    }
    let data_len = data.len() as u64;
    // PT_LOAD segments: (flags, offset, address, file size, memory size).
    for (flags, offset, vaddr, filesz, memsz) in
        [(5u32, 0, load, code_end, code_end), (6, emu::PAGE_SIZE, SYS_DATA, data_len, data_len + bss)]
    {
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&flags.to_le_bytes());
        for word in [offset, vaddr, vaddr, filesz, memsz, emu::PAGE_SIZE] {
            out.extend_from_slice(&word.to_le_bytes());
        }
    }
    out.extend_from_slice(code);
    out.resize(emu::PAGE_SIZE as usize, 0);
    out.extend_from_slice(data);
    out
}

/// Kernel settings for a generated program: [`fuzz_config`], interpreter only. The call loop
/// gets hot, and translating it (per address space, every run and fork) cost a quarter of an
/// input; these targets fuzz the kernel (the straight-line programs they ran before never got
/// hot either), the `jit` target compares the tiers.
fn program_config(budget: u64) -> KernelConfig {
    KernelConfig { tier: emu::Tier::Interp, ..fuzz_config(budget) }
}

/// What a run produced, for the determinism check.
#[derive(Debug, PartialEq, Eq)]
pub struct RunRecord {
    pub outcome: RunOutcome,
    pub instructions: u64,
    pub syscalls: u64,
    pub processes: u64,
    pub out: CapturedOutput,
}

/// Runs a generated program on a fresh kernel of [`base_vfs`] as `/bin/fuzz`.
pub fn run_syscall_program(elf: &[u8]) -> RunRecord {
    run_syscall_program_on(base_vfs(), elf)
}

/// Writes the program `elf` to `/bin/fuzz` in `vfs`.
fn install_program(vfs: &Vfs, elf: &[u8]) {
    let ctx = CallCtx { pid: 0, uid: 0, gid: 0, umask: 0 };
    let mut root = vfs.clone();
    let file = root.open(b"/bin/fuzz", O_CREAT | O_WRONLY | 0o755, &ctx).expect("create");
    assert_eq!(file.borrow_mut().write(elf).ok(), Some(elf.len()));
}

/// [`run_syscall_program`] on the tree `vfs`.
pub fn run_syscall_program_on(vfs: Vfs, elf: &[u8]) -> RunRecord {
    share_decoded_code();
    install_program(&vfs, elf);
    let (mut kernel, out) = kernel_with(vfs, program_config(200_000));
    kernel.spawn_init("/bin/fuzz", &["fuzz"], &[]).expect("the generated program must load");
    let outcome = kernel.run();
    let stats = kernel.stats();
    assert!(stats.instructions <= 200_000, "budget overrun: {}", stats.instructions);
    let out = out.borrow().clone();
    RunRecord { outcome, instructions: stats.instructions, syscalls: stats.syscalls, processes: stats.processes, out }
}

/// Random system calls from a guest; on one input in [`CHECK_EVERY`] the run is repeated
/// and must be identical (see [`deterministic`]).
pub fn syscalls(data: &[u8]) {
    let elf = syscall_program(data);
    deterministic(data, || run_syscall_program(&elf));
}

/// The determinism check runs on one input in this many (chosen by [`checks_determinism`]).
pub const CHECK_EVERY: u64 = 8;

/// True for the inputs whose run [`deterministic`] repeats: a fixed function of the bytes
/// (FNV-1a, then a 64-bit finaliser), true for about one input in [`CHECK_EVERY`]. The
/// second run was half of a `syscalls` or `linux_syscalls` input and has found nothing in
/// the campaigns so far (about a million runs of each); a nondeterministic behaviour is
/// still caught, as fuzzing reaches it again and again in mutated inputs, one in eight of
/// them checked (`tests/fuzz_smoke.rs` shows an injected one caught).
pub fn checks_determinism(data: &[u8]) -> bool {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for &b in data {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    h = (h ^ (h >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
    h = (h ^ (h >> 33)).wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    (h ^ (h >> 33)).is_multiple_of(CHECK_EVERY)
}

/// Runs `run` once, and for the inputs [`checks_determinism`] picks a second time: the
/// two results must be identical.
pub fn deterministic<R: PartialEq + std::fmt::Debug>(data: &[u8], mut run: impl FnMut() -> R) {
    let first = run();
    if checks_determinism(data) {
        let second = run();
        assert_eq!(first, second, "two runs of the same program differ");
    }
}

// --- linux_syscalls ---------------------------------------------------------------------------

/// Strings a generated Linux program can point at: paths (the kernel's own `/proc`, `/sys`
/// and `/dev` files among them), then socket addresses (`sockaddr_un` with a path and an
/// abstract name, `sockaddr_in` 127.0.0.1:8080 and 10.0.0.1:80, `sockaddr_in6` ::1:8080).
pub const LINUX_STRINGS: &[&[u8]] = &[
    b"/",
    b"/tmp",
    b"/tmp/f",
    b"/tmp/d",
    b"/tmp/link",
    b"/tmp/loop",
    b"/tmp/up/etc/passwd",
    b"/bin/fuzz",
    b"/etc/passwd",
    b"/proc/self/maps",
    b"/proc/self/environ",
    b"/proc/self/auxv",
    b"/proc/self/fd",
    b"/proc/self/exe",
    b"/proc/1/status",
    b"/proc/2/stat",
    b"/proc/cpuinfo",
    b"/sys/devices/system/cpu/online",
    b"/dev/null",
    b"/dev/urandom",
    b"/dev/fd/0",
    b"",
    b"..",
    b"\x01\x00/tmp/sock",
    b"\x01\x00\x00abstract",
    b"\x02\x00\x1f\x90\x7f\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00",
    b"\x02\x00\x00\x50\x0a\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00",
    b"\x0a\x00\x1f\x90\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00",
];

/// Linux flag words: `AT_FDCWD`, open flags with modes, mmap protections and flags, clone
/// flags (fork, vfork, a thread), socket domains and types, epoll and fcntl commands.
pub const LINUX_FLAGS: &[u64] = &[
    -100i64 as u64,
    0o101,                // O_CREAT | O_WRONLY
    0o100 | 0o2 | 0o1000, // O_CREAT | O_RDWR | O_TRUNC
    0o200000,             // O_DIRECTORY
    0o2000000 | 0o4000,   // O_CLOEXEC | O_NONBLOCK
    0o644,
    3,        // PROT_READ | PROT_WRITE
    0x21,     // MAP_SHARED | MAP_ANONYMOUS
    0x22,     // MAP_PRIVATE | MAP_ANONYMOUS
    0x01,     // MAP_SHARED
    0x32,     // MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED
    17,       // SIGCHLD: fork
    0x4111,   // CLONE_VM | CLONE_VFORK | SIGCHLD
    0x3d0f00, // a thread: VM FS FILES SIGHAND THREAD SYSVSEM SETTLS PARENT_SETTID CHILD_CLEARTID
    1,        // AF_UNIX / SOCK_STREAM
    2,        // AF_INET / SOCK_DGRAM
    10,       // AF_INET6
    5,        // SOCK_SEQPACKET
    0x80801,  // SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC
    16,       // sockaddr_in's size
];

/// The numbers of the Linux call table's rows.
fn linux_numbers() -> &'static [usize] {
    static N: std::sync::OnceLock<Vec<usize>> = std::sync::OnceLock::new();
    N.get_or_init(|| LINUX_CALLS.iter().map(|c| c.number & !warden_abi::linux::LINUX_CALL).collect())
}

/// The Linux counterpart of [`syscall_program`]: the same records, Linux numbers (a raw
/// selector gives any 16-bit number, so unimplemented calls too), the program marked as a
/// Linux one (OS/ABI "GNU", so its execs of itself stay Linux) and ended by `exit_group(0)`.
pub fn linux_syscall_program(data: &[u8]) -> Vec<u8> {
    generate(
        data,
        &CallSet {
            numbers: linux_numbers(),
            raw_base: 0,
            strings: LINUX_STRINGS,
            flags: LINUX_FLAGS,
            exit: 231,
            os_abi: 3,
        },
    )
}

/// Random Linux system calls from a Linux guest; checked for determinism as [`syscalls`].
pub fn linux_syscalls(data: &[u8]) {
    let elf = linux_syscall_program(data);
    deterministic(data, || run_syscall_program(&elf));
}

// --- overlay -----------------------------------------------------------------------------------

/// This thread's scratch directory for the targets that need the host file system, made
/// once and reused (each target resets only what its run changed): on a RAM file system when
/// there is one (`/dev/shm`), else in the temporary directory; `WARDEN_FUZZ_SCRATCH` names
/// another parent. A fresh ext4 directory per input (made, then removed) was 30-70 % of an
/// input of `trace`, `overlay` and `vfs_host`. The directory is removed when the thread ends
/// (a test thread); libFuzzer ends with `exit`, so the first scratch of a process removes
/// those of processes that no longer run.
fn scratch() -> std::path::PathBuf {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU64, Ordering};
    struct Scratch(PathBuf);
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    thread_local! {
        static SCRATCH: std::cell::OnceCell<Scratch> = const { std::cell::OnceCell::new() };
    }
    static NEXT: AtomicU64 = AtomicU64::new(0);
    SCRATCH.with(|s| {
        s.get_or_init(|| {
            let parent = match std::env::var_os("WARDEN_FUZZ_SCRATCH") {
                Some(p) => PathBuf::from(p),
                None if std::path::Path::new("/dev/shm").is_dir() => PathBuf::from("/dev/shm"),
                None => std::env::temp_dir(),
            };
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            if n == 0 {
                remove_stale_scratch(&parent);
            }
            let dir = parent.join(format!("warden-fuzz-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("scratch dir");
            Scratch(dir)
        })
        .0
        .clone()
    })
}

/// Removes the scratch directories of processes that have ended.
fn remove_stale_scratch(parent: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    if !std::path::Path::new("/proc/self").exists() {
        return;
    }
    for e in entries.filter_map(Result::ok) {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix("warden-fuzz-").and_then(|r| r.split('-').next()) else { continue };
        if pid.parse::<u32>().is_ok() && !std::path::Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

fn host_entries(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// What a guest sees in the whole tree (see `snapshot`).
pub fn guest_tree(vfs: &Vfs) -> Vec<(Vec<u8>, u16, Vec<u8>)> {
    let mut out = Vec::new();
    snapshot(vfs, b"/", 0, &mut out);
    out
}

/// What a guest sees at `path` (recursively): types, file contents, link targets, listings.
fn snapshot(vfs: &Vfs, path: &[u8], depth: usize, out: &mut Vec<(Vec<u8>, u16, Vec<u8>)>) {
    let ctx = CallCtx { pid: 0, uid: 0, gid: 0, umask: 0 };
    let Ok(st) = vfs.lstat_path(path) else {
        out.push((path.to_vec(), 0, Vec::new()));
        return;
    };
    let ty = st.st_mode & 0o170000;
    let mut root = vfs.clone();
    let mut body = Vec::new();
    if st.is_dir() {
        let names = vfs.list_dir(path).unwrap_or_default();
        body = names.join(&b'/');
        out.push((path.to_vec(), ty, body));
        if depth < 16 {
            for name in names {
                let mut p = path.to_vec();
                if p.last() != Some(&b'/') {
                    p.push(b'/');
                }
                p.extend_from_slice(&name);
                snapshot(vfs, &p, depth + 1, out);
            }
        }
        return;
    }
    if let Ok(f) = root.open(path, O_RDONLY | O_SYMLINK, &ctx) {
        let mut buf = [0u8; 4096];
        while let Ok(n) = f.borrow_mut().read(&mut buf) {
            if n == 0 || body.len() > 1 << 20 {
                break;
            }
            body.extend_from_slice(&buf[..n]);
        }
    }
    out.push((path.to_vec(), ty, body));
}

/// Random system calls with a persistent overlay: confinement and faithful persistence.
///
/// The program is part of the lower tree (written before the overlay is attached, to the
/// reloaded tree too), so the layer holds only what the guest did: written into the layer,
/// it was a host file written, removed and read back twice per input, about a third of
/// the host calls of an input.
pub fn overlay(data: &[u8]) {
    share_decoded_code();
    let elf = syscall_program(data);
    let lower = || {
        let vfs = base_vfs();
        install_program(&vfs, &elf);
        vfs
    };
    // The scratch directory is kept across inputs: the run may only have made the layer.
    let base = scratch().join("overlay");
    let layer = base.join("layer");
    let victim = base.join("victim");
    let _ = std::fs::remove_dir_all(&layer);
    std::fs::create_dir_all(&victim).expect("victim dir");
    let vfs = lower();
    vfs.attach_overlay(&layer).expect("attach a fresh overlay");
    {
        let (mut kernel, _out) = kernel_with(vfs.clone(), program_config(100_000));
        kernel.spawn_init("/bin/fuzz", &["fuzz"], &[]).expect("the generated program must load");
        let _ = kernel.run();
    }
    assert_eq!(host_entries(&base), ["layer", "victim"], "something was written beside the overlay");
    assert!(host_entries(&victim).is_empty(), "something was written outside the overlay");
    if vfs.overlay_error().is_none() {
        let again = lower();
        again.attach_overlay(&layer).expect("an overlay warden wrote must load");
        let (a, b) = (guest_tree(&vfs), guest_tree(&again));
        if a != b {
            let shown = |t: &[(Vec<u8>, u16, Vec<u8>)], other: &[(Vec<u8>, u16, Vec<u8>)]| {
                t.iter()
                    .filter(|e| !other.contains(e))
                    .map(|(p, ty, body)| {
                        format!(
                            "{} {ty:o} {:?}",
                            String::from_utf8_lossy(p),
                            String::from_utf8_lossy(&body[..body.len().min(64)])
                        )
                    })
                    .collect::<Vec<_>>()
            };
            panic!("reloaded tree differs: only before reload {:?}; only after {:?}", shown(&a, &b), shown(&b, &a));
        }
    }
}

// --- trace -------------------------------------------------------------------------------------

/// The trace reader: open arbitrary bytes as a trace, then read every event. Errors must be
/// one line; the header's options must be usable.
pub fn trace(data: &[u8]) {
    use warden::record::TraceReader;
    // One file, rewritten for each input: the reader only opens paths.
    let path = scratch().join("t.trace");
    std::fs::write(&path, data).expect("write the trace");
    match TraceReader::open(&path) {
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.contains('\n'), "error must be one line: {msg:?}");
        }
        Ok((mut reader, header)) => {
            let _ = header.run_options();
            let _ = format!("{header:?}");
            for _ in 0..1_000_000 {
                match reader.next_event() {
                    Ok(Some(ev)) => {
                        let _ = ev.to_string();
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let msg = e.to_string();
                        assert!(!msg.contains('\n'), "error must be one line: {msg:?}");
                        break;
                    }
                }
            }
        }
    }
}

// --- policy ------------------------------------------------------------------------------------

/// The policy parser: arbitrary bytes (as text, invalid UTF-8 replaced) through
/// `warden::policy::parse`. An error must be one line naming the file; a policy must be
/// well formed (every allowed number a known Redox or Linux call, a jail absolute and NUL-free, `kill` only
/// with a mask) and parsing must be deterministic. The policy is then applied to a guest
/// (`/bin/prog`, which exits 7) and run for a few thousand instructions: starting may fail
/// only with a documented exit status, and a run ends with an outcome.
pub fn policy(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let spec = match warden::policy::parse("fuzz.toml", &text) {
        Err(msg) => {
            assert!(msg.starts_with("fuzz.toml"), "error must name the file: {msg:?}");
            assert!(!msg.contains('\n') && !msg.contains('\r'), "error must be one line: {msg:?}");
            assert_eq!(warden::policy::parse("fuzz.toml", &text), Err(msg), "parse is not deterministic");
            return;
        }
        Ok(spec) => spec,
    };
    assert_eq!(warden::policy::parse("fuzz.toml", &text).as_ref(), Ok(&spec), "parse is not deterministic");
    if let Some(allow) = &spec.allow {
        for n in allow {
            let known = warden_abi::CALLS.iter().chain(warden_abi::class::LINUX_CALLS).any(|c| c.number == *n);
            assert!(known, "unknown call number {n:#x} allowed");
        }
    } else {
        assert!(!spec.kill, "kill mode without a mask");
    }
    if let Some(jail) = &spec.jail {
        assert!(jail.starts_with(b"/") && !jail.contains(&0), "bad jail {jail:?}");
    }
    let vfs = base_vfs();
    let (mut kernel, _out) = kernel_with(vfs, fuzz_config(5_000));
    match kernel.spawn_init_restricted("/bin/prog", &["prog"], &[], &spec) {
        Ok(_) => {
            let _ = kernel.run();
        }
        Err(e) => {
            assert!(matches!(e.exit_status(), 125..=127), "{e}");
            let msg = e.to_string();
            assert!(!msg.is_empty() && !msg.contains('\n'), "{msg:?}");
        }
    }
}

// --- vfs_host ----------------------------------------------------------------------------------

/// A host root with an overlay, driven directly through the `file:` scheme: random creates,
/// writes, hard links, symlinks (targets that point out of the root by every spelling),
/// renames, removals, lookups and listings, mixed with host-side changes another process
/// could make (a directory of the root swapped for a symlink to the outside, and back) and
/// the dropping of cached directory handles. After the run nothing outside the scratch root
/// and the overlay was changed, no read or listing showed anything of the outside, and the
/// root itself is unchanged. Input byte 0 bit 0: the overlay lies inside the root (where the
/// guest could once reach it) instead of beside it.
pub fn vfs_host(data: &[u8]) {
    use std::os::unix::fs::symlink;
    let mut input = Bytes::new(data);
    // The scratch tree is kept across inputs (rebuilt after a failed run); a run may only
    // have made the overlay, which is removed after the checks.
    let kept = VFS_HOST_KEPT.with(|k| k.borrow_mut().take()).unwrap_or_else(vfs_host_scratch);
    let HostScratch { base, root, outside, before_outside, before_root } = &kept;
    let (base, root, outside) = (base.as_path(), root.as_path(), outside.as_path());
    let inside = input.u8() & 1 == 1;
    let layer = if inside { root.join("ov") } else { base.join("layer") };

    let vfs = Vfs::from_host_dir(root).expect("host root");
    vfs.attach_overlay(&layer).expect("attach a fresh overlay");
    vfs.set_write_limit(1 << 20);
    let ctx = CallCtx { pid: 1, uid: 0, gid: 0, umask: 0o022 };
    let out_abs = outside.to_string_lossy().into_owned();
    let targets: [&[u8]; 8] =
        [b"/..", b"../../..", b"/hostlink", b"ov/a", out_abs.as_bytes(), b"a/b", b".", b"/ov/outside"];
    let mut swapped = false;
    let mut scheme = vfs.clone();
    for _ in 0..64 {
        if input.is_empty() {
            break;
        }
        let op = input.u8();
        let path = vfs_fuzz_path(&mut input);
        match op % 12 {
            0 => {
                if let Ok(f) = scheme.open(&path, O_CREAT | O_WRONLY | 0o644, &ctx) {
                    let n = usize::from(input.u8());
                    let _ = f.borrow_mut().write(input.take(n));
                }
            }
            1 => drop(scheme.open(&path, O_CREAT | O_DIRECTORY | 0o755, &ctx)),
            2 => {
                let target = targets[usize::from(input.u8()) % targets.len()];
                if let Ok(f) = scheme.open(&path, O_CREAT | O_SYMLINK | O_WRONLY | 0o777, &ctx) {
                    let _ = f.borrow_mut().write(target);
                }
            }
            3 => drop(scheme.link(&path, &vfs_fuzz_path(&mut input), input.u8() & 1 == 1, &ctx)),
            4 => drop(scheme.rename(&path, &vfs_fuzz_path(&mut input), &ctx)),
            5 => drop(scheme.unlink(&path, &ctx)),
            6 => drop(scheme.rmdir(&path, &ctx)),
            7 | 8 => {
                if let Ok(f) = scheme.open(&path, O_RDONLY, &ctx) {
                    let mut buf = vec![0u8; 4096];
                    let mut f = f.borrow_mut();
                    for _ in 0..4 {
                        match f.read(&mut buf) {
                            Ok(n) if n > 0 => assert_no_outside(&buf[..n], &path),
                            _ => break,
                        }
                    }
                }
            }
            9 => {
                if let Ok(names) = vfs.list_dir(&path) {
                    assert_no_outside(&names.join(&b'\n'), &path);
                }
                let _ = vfs.stat_path(&path);
                let _ = vfs.canonicalize(&path);
            }
            // Another host process swaps a directory of the root for a symlink out, or back.
            10 => {
                let (dir, stash) = (root.join("a"), base.join("stash"));
                if swapped {
                    let _ = std::fs::remove_file(&dir);
                    let _ = std::fs::rename(&stash, &dir);
                } else if std::fs::rename(&dir, &stash).is_ok() {
                    let _ = symlink(outside, &dir);
                }
                swapped = !swapped;
            }
            _ => vfs.forget_host_handles(),
        }
    }
    if swapped {
        let _ = std::fs::remove_file(root.join("a"));
        let _ = std::fs::rename(base.join("stash"), root.join("a"));
    }
    drop(scheme);
    drop(vfs);
    assert_eq!(&host_tree(outside), before_outside, "the outside was changed");
    let mut after_root = host_tree(root);
    after_root.retain(|(p, _)| !(inside && (p == "ov" || p.starts_with("ov/"))));
    assert_eq!(&after_root, before_root, "the read-only root was changed");
    let mut beside = host_entries(base);
    beside.retain(|n| n != "layer");
    assert_eq!(beside, ["outside", "root"], "something was written beside the scratch root");
    let _ = std::fs::remove_dir_all(&layer);
    VFS_HOST_KEPT.with(|k| *k.borrow_mut() = Some(kept));
}

/// The scratch tree of [`vfs_host`] and what it holds before a run.
struct HostScratch {
    base: std::path::PathBuf,
    root: std::path::PathBuf,
    outside: std::path::PathBuf,
    before_outside: Vec<(String, String)>,
    before_root: Vec<(String, String)>,
}

thread_local! {
    static VFS_HOST_KEPT: RefCell<Option<HostScratch>> = const { RefCell::new(None) };
}

/// Makes [`vfs_host`]'s scratch tree: a root with a directory, a file and a symlink out, and
/// the outside with its secrets.
fn vfs_host_scratch() -> HostScratch {
    let base = scratch().join("vfs_host");
    let _ = std::fs::remove_dir_all(&base);
    let (root, outside) = (base.join("root"), base.join("outside"));
    for dir in ["root/a/b", "root/c", "outside/inner"] {
        std::fs::create_dir_all(base.join(dir)).expect("scratch tree");
    }
    std::fs::write(root.join("a/f"), b"lower file").expect("scratch file");
    std::fs::write(outside.join("secret"), OUTSIDE_MARK).expect("secret");
    std::fs::write(outside.join("inner/secret"), OUTSIDE_MARK).expect("secret");
    std::os::unix::fs::symlink(&outside, root.join("hostlink")).expect("symlink");
    let (before_outside, before_root) = (host_tree(&outside), host_tree(&root));
    HostScratch { base, root, outside, before_outside, before_root }
}

/// What the outside's files hold: a read that returns it reached outside.
const OUTSIDE_MARK: &[u8] = b"OUTSIDE-SECRET";

fn assert_no_outside(bytes: &[u8], path: &[u8]) {
    let leaked = bytes.windows(OUTSIDE_MARK.len()).any(|w| w == OUTSIDE_MARK)
        || bytes.split(|&b| b == b'\n').any(|n| n == b"inner");
    assert!(!leaked, "{} showed the outside: {:?}", String::from_utf8_lossy(path), String::from_utf8_lossy(bytes));
}

/// A guest path of one to four components from a small vocabulary (so operations meet).
fn vfs_fuzz_path(input: &mut Bytes) -> Vec<u8> {
    const NAMES: [&[u8]; 12] = [b"a", b"b", b"c", b"d", b"f", b"ov", b"..", b".", b"hostlink", b"secret", b"e", b"x"];
    let mut path = Vec::new();
    for _ in 0..1 + input.u8() % 4 {
        path.push(b'/');
        path.extend_from_slice(NAMES[usize::from(input.u8()) % NAMES.len()]);
    }
    path
}

/// Every path under `dir` (symlinks not followed) with its type, permissions and content
/// digest (or link target).
fn host_tree(dir: &std::path::Path) -> Vec<(String, String)> {
    use std::os::unix::fs::PermissionsExt;
    fn walk(base: &std::path::Path, dir: &std::path::Path, out: &mut Vec<(String, String)>) {
        let Ok(rd) = std::fs::read_dir(dir) else { return };
        for e in rd.filter_map(Result::ok) {
            let p = e.path();
            let rel = p.strip_prefix(base).map(|r| r.to_string_lossy().into_owned()).unwrap_or_default();
            let Ok(meta) = std::fs::symlink_metadata(&p) else { continue };
            let what = if meta.is_dir() {
                walk(base, &p, out);
                format!("dir {:o}", meta.permissions().mode())
            } else if meta.is_symlink() {
                format!("link {:?}", std::fs::read_link(&p).ok())
            } else {
                let digest = guest_kernel::vfs::digest_bytes(&std::fs::read(&p).unwrap_or_default());
                format!("file {:o} {digest}", meta.permissions().mode())
            };
            out.push((rel, what));
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}
