//! The guest CPU end to end: programs that depend on what the CPU says it is and on the
//! instructions of each `--cpu` model run under `warden run --root /` exactly as natively
//! (same stdout bytes, same exit status).
//!
//! - glibc's dynamic loader refuses to start unless CPUID shows the x86-64 baseline (MMX
//!   included) behind a known vendor, then picks string functions by CPUID: a dynamic
//!   `hello` on every model the host can run.
//! - C++ exceptions and Rust panics: libgcc's unwinder executes `rdssp` (CET), a NOP
//!   without shadow stacks.
//! - Programs from the host: `ls`, `python3`.
//!
//! Fixtures are in `tests/fixtures/isa/`, built with the machine's gcc/g++/rustc. A missing tool
//! skips its test with a "SKIPPED: ..." line, unless `WARDEN_REQUIRE_TOOLS=1` (set by
//! `.ci/run`, which installs them), where it fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use emu::cpuid::CPU_MODELS;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/isa");

fn require_tools() -> bool {
    std::env::var("WARDEN_REQUIRE_TOOLS").is_ok_and(|v| v == "1")
}

/// `true` if `tool` runs; otherwise prints SKIPPED (or panics when tools are required).
fn have(tool: &str) -> bool {
    let found = Command::new(tool).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok();
    if !found {
        assert!(!require_tools(), "{tool} not found but WARDEN_REQUIRE_TOOLS=1");
        eprintln!("SKIPPED: {tool} not found");
    }
    found
}

/// Builds fixture `src` with `compiler` and `flags` into `out`; `None` if the compiler is
/// missing.
fn build(src: &str, compiler: &str, flags: &[&str], out: &str) -> Option<PathBuf> {
    if !have(compiler) {
        return None;
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("isa");
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join(out);
    let src = Path::new(FIXTURES).join(src);
    let status = Command::new(compiler).args(flags).arg("-o").arg(&out).arg(&src).status().expect("run compiler");
    assert!(status.success(), "{compiler} {flags:?} failed on {}", src.display());
    Some(out)
}

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    stdout: String,
    status: i32,
}

fn status_of(s: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0))
}

fn native(prog: &Path, args: &[&str]) -> Outcome {
    let out = Command::new(prog)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null())
        .output()
        .expect("run natively");
    Outcome { stdout: String::from_utf8_lossy(&out.stdout).into_owned(), status: status_of(out.status) }
}

/// Runs `prog args` under warden as `cpu`; also returns stderr.
fn warden(cpu: &str, prog: &Path, args: &[&str]) -> (Outcome, String) {
    warden_env(cpu, &[], prog, args)
}

/// [`warden`] with guest environment variables added to PATH.
fn warden_env(cpu: &str, env: &[&str], prog: &Path, args: &[&str]) -> (Outcome, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["run", "--root", "/", "--cpu", cpu, "--budget", "20000000000", "--env", "PATH=/usr/bin:/bin"])
        .args(env.iter().flat_map(|kv| ["--env", kv]))
        .arg(prog)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run warden");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (Outcome { stdout: String::from_utf8_lossy(&out.stdout).into_owned(), status: status_of(out.status) }, stderr)
}

/// The `--cpu` names of every model this host can run.
fn models() -> Vec<&'static str> {
    CPU_MODELS.iter().filter(|m| m.host_supports()).map(|m| m.name()).collect()
}

/// `prog args` under warden on every model matches the native run.
fn same_as_native(prog: &Path, args: &[&str]) {
    let want = native(prog, args);
    for cpu in models() {
        let (got, stderr) = warden(cpu, prog, args);
        assert_eq!(got, want, "{} {args:?} on --cpu {cpu}; warden stderr:\n{stderr}", prog.display());
    }
}

#[test]
fn glibc_dynamic_hello() {
    let Some(prog) = build("hello.c", "gcc", &["-O2"], "hello.dyn") else { return };
    same_as_native(&prog, &["one", "two"]);
}

#[test]
fn glibc_static_hello() {
    let Some(prog) = build("hello.c", "gcc", &["-O2", "-static"], "hello.static") else { return };
    same_as_native(&prog, &[]);
}

#[test]
fn cxx_exceptions_static() {
    let Some(prog) = build("throw.cpp", "g++", &["-O2", "-static"], "throw.static") else { return };
    same_as_native(&prog, &[]);
}

#[test]
fn cxx_exceptions_dynamic() {
    let Some(prog) = build("throw.cpp", "g++", &["-O2"], "throw.dyn") else { return };
    same_as_native(&prog, &[]);
}

/// Rust's panics unwind through the same libgcc unwinder (`rdssp`) as C++ exceptions.
#[test]
fn rust_panic_static() {
    let flags = ["-O", "-C", "target-feature=+crt-static"];
    let Some(prog) = build("panic.rs", "rustc", &flags, "panic.static") else { return };
    same_as_native(&prog, &[]);
}

/// A program built for x86-64-v3 (AVX2 and FMA loops, gathers, BMI) runs as natively on
/// `--cpu v3`, and is refused on v2 the way glibc refuses it on such a CPU.
#[test]
fn x86_64_v3_program() {
    if !emu::CpuModel::V3.host_supports() {
        eprintln!("SKIPPED: the host CPU cannot run x86-64-v3 code");
        return;
    }
    let Some(prog) = build("vector.c", "gcc", &["-O3", "-march=x86-64-v3", "-fno-math-errno"], "vector.v3") else {
        return;
    };
    let want = native(&prog, &[]);
    let (got, stderr) = warden("v3", &prog, &[]);
    assert_eq!(got, want, "{stderr}");
    let (old, _) = warden("v2", &prog, &[]);
    assert_ne!(old.status, 0, "an x86-64-v3 program ran on --cpu v2");
}

/// A signal handler finds the interrupted YMM state in its frame, and `rt_sigreturn`
/// restores it from there (the Linux XSAVE signal frame).
#[test]
fn signal_frames_carry_ymm() {
    if !emu::CpuModel::V3.host_supports() {
        eprintln!("SKIPPED: the host CPU cannot run x86-64-v3 code");
        return;
    }
    let Some(prog) = build("sigymm.c", "gcc", &["-O2", "-mavx2"], "sigymm") else { return };
    let want = native(&prog, &[]);
    assert!(want.stdout.starts_with("magic 1 "), "{want:?}");
    let (got, stderr) = warden("v3", &prog, &[]);
    assert_eq!(got, want, "{stderr}");
}

/// glibc's loader sees the level of the chosen CPU (its hwcaps subdirectories, which also
/// select its string functions).
#[test]
fn glibc_sees_the_isa_level() {
    let ld = Path::new("/lib64/ld-linux-x86-64.so.2");
    if !ld.exists() {
        eprintln!("SKIPPED: no {}", ld.display());
        return;
    }
    for cpu in models() {
        let (got, stderr) = warden(cpu, ld, &["--help"]);
        let supported = |level: &str| got.stdout.contains(&format!("  {level} (supported, searched)"));
        let n = cpu[1..].parse::<u32>().unwrap();
        for level in 2..=3 {
            let name = format!("x86-64-v{level}");
            assert_eq!(supported(&name), level <= n, "--cpu {cpu}: {name}\n{}{stderr}", got.stdout);
        }
        assert!(!supported("x86-64-v4"), "{}", got.stdout);
    }
}

#[test]
fn host_ls() {
    same_as_native(Path::new("/usr/bin/ls"), &["/usr"]);
}

#[test]
fn host_python() {
    if !have("python3") {
        return;
    }
    same_as_native(Path::new("/usr/bin/python3"), &["-c", "import sys; print(1, sys.version_info[0])"]);
}

/// What `cpuid` says is what a guest reads: the brand string of the chosen model; the
/// auxiliary vector agrees with it (AT_HWCAP is CPUID.1:EDX on Linux; glibc's loader
/// prints the vector with LD_SHOW_AUXV).
#[test]
fn cpu_option_sets_the_brand_and_hwcap() {
    let Some(prog) = build("cpu.c", "gcc", &["-O2", "-static"], "cpu") else { return };
    for m in CPU_MODELS.iter().filter(|m| m.host_supports()) {
        let (got, stderr) = warden(m.name(), &prog, &[]);
        assert_eq!(got.stdout.trim(), m.brand(), "--cpu {m}: {stderr}");
        let (auxv, stderr) = warden_env(m.name(), &["LD_SHOW_AUXV=1"], Path::new("/usr/bin/true"), &[]);
        let fsgsbase = m.cpuid(7, 0)[1] & 1 != 0;
        for want in [
            format!("AT_HWCAP:             {:x}\n", m.cpuid(1, 0)[3]),
            format!("AT_HWCAP2:            {}\n", if fsgsbase { "0x2" } else { "0x0" }),
            "AT_PLATFORM:          x86_64\n".to_string(),
        ] {
            assert!(auxv.stdout.contains(&want), "--cpu {m}: no {want:?} in\n{}{stderr}", auxv.stdout);
        }
    }
    let (bad, stderr) = warden("v9", &prog, &[]);
    assert_eq!(bad.status, 125);
    assert!(stderr.contains("unknown CPU model"), "{stderr}");
}
