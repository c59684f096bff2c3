//! Stable-Rust smoke run of the fuzz harnesses (fuzz/src/lib.rs), so CI needs no nightly.
//!
//! For each target: every saved crasher (`fuzz/regressions/TARGET/*`, each a fixed bug that
//! must stay fixed), every committed seed (`fuzz/corpus/TARGET/seed-*`), then seeded-random
//! inputs: fresh random bytes and mutations of the seeds, a few thousand per target and at
//! most a few seconds. Environment knobs: `WARDEN_FUZZ_CASES` (random inputs per target,
//! default 2000), `WARDEN_FUZZ_SECONDS` (time cap per target, default 4), `WARDEN_FUZZ_SEED`
//! (default 1), `WARDEN_FUZZ_CORPUS=1` (also run every file of the local corpus, not only
//! the committed seeds). A failing input is written to `target/fuzz-smoke-failure-TARGET`
//! and its reproduction command printed.

#[path = "../fuzz/src/lib.rs"]
mod harness;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn env_u64(key: &str, default: u64) -> u64 {
    std::env::var(key).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// splitmix64: the smoke run's deterministic random source.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// A random change or a few to `input` (the usual byte-level mutations).
fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..1 + rng.below(8) {
        let len = v.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                v[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                v[i] = [0, 0xff, 0x7f, 0x80, b'0', b'7', b'/', b'.'][rng.below(8)];
            }
            2 => {
                let i = rng.below(len + 1);
                let n = 1 + rng.below(16);
                let extra = rng.bytes(n);
                v.splice(i..i, extra);
            }
            3 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(64));
                v.drain(i..i + n);
            }
            4 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(8));
                let word = rng.next().to_le_bytes();
                for (k, b) in v[i..i + n].iter_mut().enumerate() {
                    *b = word[k];
                }
            }
            5 if len > 8 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(512));
                let chunk = v[i..i + n].to_vec();
                let at = rng.below(len);
                v.splice(at..at, chunk);
            }
            6 if len > 0 => v.truncate(rng.below(len)),
            _ => {
                let i = rng.below(len + 1);
                let n = rng.below(4);
                v.splice(i..i, std::iter::repeat_n(0u8, n));
            }
        }
    }
    v
}

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn files_in(dir: &Path, prefix: &str) -> Vec<(String, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut out: Vec<(String, Vec<u8>)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .filter_map(|e| Some((e.path().display().to_string(), std::fs::read(e.path()).ok()?)))
        .collect();
    out.sort();
    out
}

/// Built-in seeds (valid inputs to mutate), besides the committed ones.
fn builtin_seeds(target: &str) -> Vec<Vec<u8>> {
    match target {
        "elf" => vec![
            harness::exit7_elf(),
            guest_kernel::testkit::elf_at(&[0xeb, 0xfe], 0x40_0000, 4096, 3),
            std::fs::read(Path::new(env!("WARDEN_GUEST_BIN_DIR")).join("true")).unwrap_or_default(),
        ],
        "tar" => {
            vec![harness::base_image(), warden::DEFAULT_IMAGE[..warden::DEFAULT_IMAGE.len().min(1 << 16)].to_vec()]
        }
        "interp" => {
            let mut v = vec![1u8];
            v.extend(std::iter::repeat_n(0x80u8, 16 * 8 + 4));
            // add [rax], al; push rax; pop rbx; syscall; jmp back
            v.extend_from_slice(&[0x00, 0x00, 0x50, 0x5b, 0x0f, 0x05, 0xeb, 0xf8]);
            vec![v]
        }
        "jit" => {
            // A loop of integer instructions the translator covers, with a load, a store,
            // a call and a system call.
            let mut v = vec![0u8];
            v.extend(std::iter::repeat_n(0x80u8, 8 + 16 * 8));
            v.extend_from_slice(&[0x80, 0x1f]); // MXCSR
            v.extend_from_slice(&[
                0x48, 0x01, 0xd8, // add rax, rbx
                0x48, 0x8b, 0x0e, // mov rcx, [rsi]
                0x48, 0x31, 0xc8, // xor rax, rcx
                0x48, 0x89, 0x07, // mov [rdi], rax
                0xe8, 0x02, 0, 0, 0, // call +2
                0xeb, 0x04, // jmp +4
                0x48, 0xff, 0xc2, // inc rdx
                0xc3, // ret
                0x0f, 0x05, // syscall
                0xeb, 0xe5, // jmp to the start
            ]);
            vec![v]
        }
        "policy" => vec![
            include_bytes!("../examples/policy.toml").to_vec(),
            b"allow = [\"all\"]\ndeny = [\"J\", \"kill\"]\nmode = \"kill\"\njail = \"/tmp\"\n".to_vec(),
            b"deny = [\"file\", \"open\"]\njail = \"/etc/../tmp/./\"\n".to_vec(),
        ],
        _ => vec![vec![0u8; 200]],
    }
}

fn fail_report(target: &str, what: &str, input: &[u8]) -> String {
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target").join(format!("fuzz-smoke-failure-{target}"));
    let _ = std::fs::write(&out, input);
    format!(
        "fuzz target {target} panicked on {what} ({} bytes), saved to {}; reproduce with \
         `cd fuzz && cargo +nightly fuzz run {target} {}`",
        input.len(),
        out.display(),
        out.display()
    )
}

fn smoke(target: &str) {
    let cases = env_u64("WARDEN_FUZZ_CASES", 2000);
    let cap = Duration::from_secs(env_u64("WARDEN_FUZZ_SECONDS", 4));
    let mut rng = Rng(env_u64("WARDEN_FUZZ_SEED", 1) ^ (target.len() as u64 * 0x1234_5678));
    let dir = fuzz_dir();
    let mut fixed: Vec<(String, Vec<u8>)> = files_in(&dir.join("regressions").join(target), "");
    let corpus_prefix = if std::env::var_os("WARDEN_FUZZ_CORPUS").is_some() { "" } else { "seed-" };
    fixed.extend(files_in(&dir.join("corpus").join(target), corpus_prefix));
    let mut seeds: Vec<Vec<u8>> = builtin_seeds(target);
    seeds.extend(fixed.iter().map(|(_, d)| d.clone()));
    seeds.retain(|s| !s.is_empty());

    // The panic message itself is printed by the default hook, just above the report.
    let run_one = |what: &str, input: &[u8]| {
        if catch_unwind(AssertUnwindSafe(|| harness::run_target(target, input))).is_err() {
            panic!("{}", fail_report(target, what, input));
        }
    };
    for (name, data) in &fixed {
        run_one(name, data);
    }
    let start = Instant::now();
    let mut done = 0u64;
    while done < cases && start.elapsed() < cap {
        let input = if seeds.is_empty() || rng.below(4) == 0 {
            let n = rng.below(600);
            rng.bytes(n)
        } else {
            let seed = &seeds[rng.below(seeds.len())];
            mutate(&mut rng, seed)
        };
        run_one(&format!("random input #{done}"), &input);
        done += 1;
    }
    eprintln!("fuzz smoke {target}: {} saved inputs, {done} random inputs in {:.2?}", fixed.len(), start.elapsed());
    assert!(done > 0, "no random input ran");
}

#[test]
fn fuzz_smoke_interp() {
    smoke("interp");
}

#[test]
fn fuzz_smoke_jit() {
    smoke("jit");
}

#[test]
fn fuzz_smoke_elf() {
    smoke("elf");
}

#[test]
fn fuzz_smoke_tar() {
    smoke("tar");
}

#[test]
fn fuzz_smoke_syscalls() {
    smoke("syscalls");
}

#[test]
fn fuzz_smoke_overlay() {
    smoke("overlay");
}

#[test]
fn fuzz_smoke_trace() {
    smoke("trace");
}

#[test]
fn fuzz_smoke_policy() {
    smoke("policy");
}

#[test]
fn fuzz_smoke_vfs_host() {
    smoke("vfs_host");
}

#[test]
fn fuzz_smoke_linux_syscalls() {
    smoke("linux_syscalls");
}

/// Issue 22's reproduction as a whole guest: `push -1; ret` (a jump to `u64::MAX`, once the
/// code cache's empty-slot key) kills the guest with SIGSEGV; it used to dereference null.
#[test]
fn jump_to_the_top_address_is_sigsegv() {
    let elf = guest_kernel::testkit::static_elf(&[0x6a, 0xff, 0xc3], 0);
    let vfs = guest_kernel::vfs::Vfs::from_tar_vec(harness::ustar(&[("prog", b'0', 0o755, &elf)])).unwrap();
    let (mut kernel, _out) = harness::kernel_with(vfs, harness::fuzz_config(1000));
    kernel.spawn_init("/prog", &["prog"], &[]).unwrap();
    assert_eq!(kernel.run(), guest_kernel::RunOutcome::Signaled(11));
}

/// The Linux target's programs are Linux processes making Linux calls: all-zero records are
/// ten `read(0, NULL, 0)` (the table's first row), then `exit_group(0)`.
#[test]
fn linux_target_programs_are_linux() {
    let elf = harness::linux_syscall_program(&[0; 128 + 70]);
    let image = harness::ustar(&[("prog", b'0', 0o755, &elf)]);
    let vfs = guest_kernel::vfs::Vfs::from_tar_vec(image).unwrap();
    let (mut kernel, _out) = harness::kernel_with(vfs, harness::fuzz_config(100_000));
    let pid = kernel.spawn_init("/prog", &["prog"], &[]).unwrap();
    assert_eq!(kernel.personality(pid), Some(guest_kernel::linux::Personality::Linux));
    assert_eq!(kernel.run(), guest_kernel::RunOutcome::Exited(0));
    assert_eq!(kernel.stats().syscalls, 11);
}

#[test]
fn every_target_has_a_smoke_test() {
    assert_eq!(
        harness::TARGETS,
        ["interp", "jit", "elf", "tar", "syscalls", "overlay", "trace", "policy", "vfs_host", "linux_syscalls"]
    );
}

/// One call record of the `syscalls` input format with a raw number (selector 0x7f, or 0xff
/// for `int 0x80`) and six `(kind, value bytes)` arguments.
fn call_record(int80: bool, nr: usize, args: [(u8, &[u8]); 6]) -> Vec<u8> {
    let mut v = vec![if int80 { 0xff } else { 0x7f }];
    v.extend_from_slice(&(nr as u64).to_le_bytes());
    for (kind, value) in args {
        v.push(kind);
        v.extend_from_slice(value);
    }
    v
}

/// Input: `open("/tmp/f", O_CREAT | O_WRONLY)`, then `write(that fd, "/etc/passwd", 11)`.
fn write_tmp_f() -> Vec<u8> {
    use warden_abi::{SYS_OPEN, SYS_WRITE};
    assert_eq!((harness::PATHS[2], harness::PATHS[4]), (&b"/tmp/f"[..], &b"/etc/passwd"[..]));
    let none: (u8, &[u8]) = (0, &[]);
    let mut input = vec![0u8; 128];
    // Kinds: 24/25 the address/length of PATHS[2], 9 FLAGS[0] (create, write), 8 the last
    // result, 44 the address of PATHS[4], 3 + u16 a small number.
    input.extend(call_record(false, SYS_OPEN, [(24, &[]), (25, &[]), (9, &[]), none, none, none]));
    input.extend(call_record(false, SYS_WRITE, [(8, &[]), (44, &[]), (3, &[11, 0]), none, none, none]));
    input
}

/// Input: `open("/tmp/f")`, `read(that fd, scratch, 100)`, `write(1, scratch, what was read)`.
fn show_tmp_f() -> Vec<u8> {
    use warden_abi::{SYS_OPEN, SYS_READ, SYS_WRITE};
    let none: (u8, &[u8]) = (0, &[]);
    let mut input = vec![0u8; 128];
    input.extend(call_record(false, SYS_OPEN, [(24, &[]), (25, &[]), (79, &[]), none, none, none]));
    input.extend(call_record(false, SYS_READ, [(8, &[]), (1, &[0, 0]), (3, &[100, 0]), none, none, none]));
    input.extend(call_record(false, SYS_WRITE, [(10, &[]), (1, &[0, 0]), (8, &[]), none, none, none]));
    input
}

/// The generated programs' call loop makes the calls the records describe, through both
/// gates, with path strings, scratch pointers and earlier results as arguments:
/// `open("/etc/passwd")`, `read(that fd, scratch, 100)`, then `write(1, scratch, what was
/// read)` through `int 0x80`.
#[test]
fn syscall_programs_make_the_recorded_calls() {
    use warden_abi::{O_RDONLY, SYS_OPEN, SYS_READ, SYS_WRITE};
    assert_eq!(harness::PATHS[4], b"/etc/passwd");
    assert_eq!(harness::FLAGS[7], O_RDONLY as u64);
    let mut input = vec![0u8; 128];
    let none: (u8, &[u8]) = (0, &[]);
    // Kinds: 44/45 the address/length of PATHS[4], 79 FLAGS[7], 8 the last result, 1 + u16 a
    // scratch offset, 3 + u16 a small number, 10 the value 1.
    input.extend(call_record(false, SYS_OPEN, [(44, &[]), (45, &[]), (79, &[]), none, none, none]));
    input.extend(call_record(false, SYS_READ, [(8, &[]), (1, &[0, 0]), (3, &[100, 0]), none, none, none]));
    input.extend(call_record(true, SYS_WRITE, [(10, &[]), (1, &[0, 0]), (8, &[]), none, none, none]));
    let run = harness::run_syscall_program(&harness::syscall_program(&input));
    assert_eq!(run.outcome, guest_kernel::RunOutcome::Exited(0));
    assert_eq!(run.syscalls, 4, "three calls and the exit");
    assert_eq!(String::from_utf8_lossy(&run.out.stdout), "root:x:0:0::/:/bin/sh\n");
}

/// What ran before on a thread does not change a run: the decoded code the kernel targets
/// share between runs (`share_decoded_code`) gives each program exactly what decoding it
/// afresh would, and each run starts from its own copy of the base tree. Each committed
/// seed run on a fresh thread must give the same record and leave the same tree as after
/// every other seed on one thread.
#[test]
fn kernel_target_runs_do_not_depend_on_earlier_inputs() {
    for (target, program) in [
        ("syscalls", harness::syscall_program as fn(&[u8]) -> Vec<u8>),
        ("linux_syscalls", harness::linux_syscall_program),
    ] {
        let mut seeds: Vec<Vec<u8>> = files_in(&fuzz_dir().join("corpus").join(target), "seed-")
            .into_iter()
            .map(|(_, data)| program(&data))
            .collect();
        assert!(seeds.len() >= 2, "{target} has committed seeds");
        if target == "syscalls" {
            // One writes /tmp/f, the other shows what /tmp/f holds (nothing on a fresh tree).
            seeds.push(harness::syscall_program(&write_tmp_f()));
            seeds.push(harness::syscall_program(&show_tmp_f()));
        }
        let fresh: Vec<_> = seeds
            .iter()
            .map(|elf| {
                let elf = elf.clone();
                std::thread::spawn(move || run_and_tree(&elf)).join().unwrap()
            })
            .collect();
        let after_others = std::thread::spawn(move || {
            seeds.iter().rev().chain(&seeds).map(|elf| run_and_tree(elf)).collect::<Vec<_>>()
        })
        .join()
        .unwrap();
        let n = fresh.len();
        for (i, run) in fresh.iter().enumerate() {
            assert_eq!(run, &after_others[n - 1 - i], "{target} seed {i}, after the later seeds");
            assert_eq!(run, &after_others[n + i], "{target} seed {i}, after all seeds");
        }
    }
}

/// A run of a generated program and the tree it left, as text.
fn run_and_tree(elf: &[u8]) -> String {
    let vfs = harness::base_vfs();
    let run = harness::run_syscall_program_on(vfs.clone(), elf);
    format!("{run:?} {:?}", harness::guest_tree(&vfs))
}

/// `syscalls` and `linux_syscalls` repeat a run only on the inputs `checks_determinism`
/// picks (a fixed eighth of them): there a run that differs the second time is caught, an
/// injected nondeterminism of a closure's own and one of a kernel run (a file the harness
/// changes between the two runs, as state leaking from one run into the next would).
#[test]
fn the_determinism_check_catches_an_injected_nondeterminism() {
    let mut checked = 0;
    for i in 0..800u32 {
        let data = i.to_le_bytes().repeat(50);
        let mut runs = 0u32;
        let caught = catch_unwind(AssertUnwindSafe(|| {
            harness::deterministic(&data, || {
                runs += 1;
                runs
            })
        }))
        .is_err();
        assert_eq!(caught, harness::checks_determinism(&data), "input {i}");
        assert_eq!(runs, if caught { 2 } else { 1 }, "input {i}");
        checked += usize::from(caught);
    }
    assert!((60..=140).contains(&checked), "{checked} of 800 inputs checked");

    let mut data = show_tmp_f();
    // A scratch byte the program does not use, varied until the input is one checked.
    data[127] = (0..=255).find(|&b| harness::checks_determinism(&[&data[..127], &[b], &data[128..]].concat())).unwrap();
    let elf = harness::syscall_program(&data);
    let vfs = harness::base_vfs();
    let mut n = 0u8;
    let kernel_run = catch_unwind(AssertUnwindSafe(|| {
        harness::deterministic(&data, || {
            n += 1;
            let ctx = guest_kernel::CallCtx { pid: 0, uid: 0, gid: 0, umask: 0 };
            let f = guest_kernel::Scheme::open(
                &mut vfs.clone(),
                b"/tmp/f",
                warden_abi::O_CREAT | warden_abi::O_WRONLY | 0o644,
                &ctx,
            )
            .unwrap();
            f.borrow_mut().write(&[b'0' + n]).unwrap();
            harness::run_syscall_program_on(vfs.clone(), &elf)
        })
    }));
    assert!(kernel_run.is_err(), "the second run showed another /tmp/f and was not caught");
    assert_eq!(n, 2);
}

/// `fuzz/kernel-rustc-wrapper.sh` (the kernel targets' build): with `WARDEN_FUZZ_KERNEL_BUILD=1`
/// it takes the comparison-hook option out of `emu` and `iced_x86` only and lowers their
/// coverage level to function entries, passes everything else through, and refuses a
/// spelling of the options it would miss. `echo` stands in for rustc, so the output is the
/// command line rustc would get.
#[test]
fn the_kernel_build_wrapper_changes_only_emus_coverage_options() {
    const CMP: &str = "-Cllvm-args=-sanitizer-coverage-trace-compares";
    const LEVEL: &str = "-Cllvm-args=-sanitizer-coverage-level=4";
    const FUNCTIONS: &str = "-Cllvm-args=-sanitizer-coverage-level=1";
    let run = |kernel_build: bool, args: &[&str]| {
        let mut cmd = std::process::Command::new("bash");
        cmd.arg(fuzz_dir().join("kernel-rustc-wrapper.sh")).arg("echo").args(args);
        if kernel_build {
            cmd.env("WARDEN_FUZZ_KERNEL_BUILD", "1");
        } else {
            cmd.env_remove("WARDEN_FUZZ_KERNEL_BUILD");
        }
        let out = cmd.output().expect("bash runs the wrapper");
        (out.status.success(), String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    for crate_name in ["emu", "iced_x86"] {
        let (ok, line) = run(true, &["--crate-name", crate_name, LEVEL, CMP, "--cfg", "fuzzing"]);
        assert!(ok);
        assert_eq!(line, format!("--crate-name {crate_name} {FUNCTIONS} --cfg fuzzing"));
        let (ok, line) = run(false, &["--crate-name", crate_name, LEVEL, CMP]);
        assert!(ok);
        assert_eq!(line, format!("--crate-name {crate_name} {LEVEL} {CMP}"));
        let (ok, _) = run(true, &["--crate-name", crate_name, "-C", "llvm-args=-sanitizer-coverage-trace-compares"]);
        assert!(!ok, "a split spelling of the option must stop the build, not keep the hooks");
        let (ok, _) = run(true, &["--crate-name", crate_name, "-Cllvm-args=-sanitizer-coverage-level=3"]);
        assert!(!ok, "another coverage level must stop the build, not keep the edges");
    }
    for crate_name in ["guest_kernel", "warden_fuzz", "emu_x"] {
        let (ok, line) = run(true, &["--crate-name", crate_name, LEVEL, CMP]);
        assert!(ok);
        assert_eq!(line, format!("--crate-name {crate_name} {LEVEL} {CMP}"));
    }
    // Cargo's queries (`rustc -vV`) pass through.
    assert_eq!(run(true, &["-vV"]), (true, "-vV".to_owned()));
}
