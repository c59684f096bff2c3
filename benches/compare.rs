//! The comparison bench (issue 6 item 3, issue 7 item 4, issue 17 item 7): the same
//! static Linux program runs natively, under warden with each tier (`interp`, `jit`; the
//! Linux personality with the host's `/` as root, as `warden run --root / ./work ...`
//! does) and under `qemu-x86_64` (Debian's qemu-user) when it is installed, one after
//! the other in one process, and each time is printed with its ratio to the native time
//! measured in the same run.
//!
//! The workloads are `benches/compare/work.c`, built here with `gcc -O2 -static`
//! (glibc): start-up, an integer/memory/branch loop, SHA-256 over a buffer,
//! memcpy/memset, scalar double arithmetic, a getppid loop and a fork/exit/wait loop;
//! and, when `/bin/busybox` is there (static), busybox `md5sum` of a file, `gzip | gunzip
//! | md5sum` of it, a shell arithmetic loop and an awk floating-point loop (`qemu-x86_64`
//! runs only the program it starts, whose `exec`s of other programs run natively, so in
//! the qemu column's `gzip` pipeline each busybox program runs under `qemu-x86_64`
//! itself: `qemu-x86_64 busybox sh -c 'qemu-x86_64 busybox gzip -c in | qemu-x86_64
//! busybox gunzip | qemu-x86_64 busybox md5sum'`). Every run's
//! stdout must match the native one (a mismatch fails the bench). Warden runs in this
//! process through the library, so its guest instruction count is known: the table gives
//! the jit's MIPS for the CPU-bound workloads (a `rep movs`/`rep stos` counts as one
//! instruction however many bytes it moves, so `mem`'s figure is low).
//!
//! `cargo bench --bench compare` runs the full sizes (best of 3 each);
//! `-- --quick` (what CI runs) uses small sizes and one warden/qemu run each,
//! well under a minute. Without gcc the bench prints SKIPPED; without
//! qemu-x86_64 it prints that the qemu column was skipped. With
//! `WARDEN_REQUIRE_TOOLS=1` a missing gcc or qemu-x86_64 is an error.
//!
//! Times are wall-clock and include process start-up (native, qemu) or
//! kernel boot (warden); on a loaded machine they are noisy, the ratios less so.
//!
//! Start-up as a user sees it: the in-process rows leave out what starting the `warden`
//! process costs (loading a large binary, its libraries and the runtime, parsing the
//! command line, process exit), which the native and qemu columns pay. So after `nop`
//! the row `nop CLI` runs the built `warden` binary (`CARGO_BIN_EXE_warden`) as a
//! process, `warden run --tier TIER --root / ./work nop 0`, and compares exec against
//! exec (the fastest of `CLI_REPS` runs each, in quick mode too: a run is a few ms).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use emu::Tier;
use guest_kernel::{CaptureConsole, RunOutcome};
use warden::{Root, RunOptions};

/// (workload, quick scale, full scale) of `work`.
const WORKLOADS: &[(&str, u64, u64)] = &[
    ("nop", 0, 0),
    ("int", 1, 8),
    ("sha256", 1, 4),
    ("mem", 1, 8),
    ("fp", 1, 8),
    ("syscall", 20_000, 200_000),
    ("spawn", 20, 200),
];

const BUSYBOX: &str = "/bin/busybox";

/// (workload, quick scale, full scale) of busybox: MiB of input, or loop rounds.
const BUSYBOX_WORKLOADS: &[(&str, u64, u64)] =
    &[("md5sum", 1, 32), ("gzip", 1, 16), ("sh", 2_000, 100_000), ("awk", 20_000, 1_000_000)];

/// The argument vector of a busybox workload (`input`: a file of `scale` MiB); with
/// `qemu`, for the qemu column: the programs the shell starts run under `qemu-x86_64`.
fn busybox_args(name: &str, scale: u64, input: &Path, qemu: bool) -> Vec<String> {
    let input = input.display();
    let run = if qemu { "qemu-x86_64 " } else { "" };
    let sh = |script: String| vec![BUSYBOX.to_string(), "sh".to_string(), "-c".to_string(), script];
    match name {
        "md5sum" => vec![BUSYBOX.to_string(), "md5sum".to_string(), input.to_string()],
        "gzip" => sh(format!("{run}{BUSYBOX} gzip -c {input} | {run}{BUSYBOX} gunzip | {run}{BUSYBOX} md5sum")),
        "sh" => sh(format!("i=0; while [ $i -lt {scale} ]; do i=$((i+1)); done; echo $i")),
        _ => vec![
            BUSYBOX.to_string(),
            "awk".to_string(),
            format!("BEGIN {{ s = 0; for (i = 0; i < {scale}; i++) s += i * 0.5; print s }}"),
        ],
    }
}

/// A file of `mib` MiB of pseudo-random bytes (the same in every run).
fn input_file(mib: u64) -> PathBuf {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("compare-input-{mib}"));
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let data: Vec<u8> = (0..mib << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Some repetition, so gzip has work to do.
            (x % 40) as u8 + b' '
        })
        .collect();
    std::fs::write(&path, data).expect("write the input file");
    path
}

fn require_tools() -> bool {
    std::env::var("WARDEN_REQUIRE_TOOLS").is_ok_and(|v| v == "1")
}

fn missing(tool: &str) {
    if require_tools() {
        eprintln!("compare: {tool} not found but WARDEN_REQUIRE_TOOLS=1");
        std::process::exit(1);
    }
}

fn build() -> Option<PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/compare/work.c");
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("compare-work");
    let status = Command::new("gcc").args(["-O2", "-static", "-o"]).arg(&out).arg(&src).status();
    match status {
        Ok(s) if s.success() => Some(out),
        Ok(s) => {
            eprintln!("compare: gcc failed on {} ({s})", src.display());
            std::process::exit(1);
        }
        Err(_) => {
            println!("SKIPPED compare bench: gcc not found");
            missing("gcc");
            None
        }
    }
}

/// A finished run: wall time, stdout, exit status, guest instructions (warden only).
struct Run {
    time: Duration,
    stdout: Vec<u8>,
    status: i32,
    instructions: Option<u64>,
}

fn run_host(cmd: &mut Command) -> Run {
    let start = Instant::now();
    let out = cmd.stdin(Stdio::null()).stderr(Stdio::inherit()).output().expect("start program");
    let time = start.elapsed();
    Run { time, stdout: out.stdout, status: out.status.code().unwrap_or(-1), instructions: None }
}

fn run_warden(argv: &[String], tier: Tier) -> Run {
    let opts = RunOptions {
        root: Root::Dir(PathBuf::from("/")),
        program: Some(argv[0].clone()),
        args: argv[1..].to_vec(),
        tier,
        // As `warden run` (start-up in the interpreter).
        jit_warm_up: true,
        env: vec!["PATH=/usr/bin:/bin".to_string()],
        ..RunOptions::default()
    };
    let (console, output) = CaptureConsole::new(b"");
    let start = Instant::now();
    let mut kernel = warden::boot(&opts, Box::new(console)).expect("boot warden");
    let outcome = kernel.run();
    let time = start.elapsed();
    let status = match outcome {
        RunOutcome::Exited(s) => s as i32,
        RunOutcome::Signaled(s) => 128 + s as i32,
        other => {
            eprintln!("compare: warden run ended with {other:?}");
            -1
        }
    };
    let stdout = output.borrow().stdout.clone();
    Run { time, stdout, status, instructions: Some(kernel.stats().instructions) }
}

/// The fastest of `reps` runs (all must print the same).
fn best(reps: usize, mut f: impl FnMut() -> Run) -> Run {
    let mut best = f();
    for _ in 1..reps {
        let r = f();
        if r.stdout != best.stdout || r.status != best.status {
            eprintln!("compare: two runs of the same program differ");
            std::process::exit(1);
        }
        if r.time < best.time {
            best = r;
        }
    }
    best
}

/// Runs of each column of the `nop CLI` row (its best is printed): start-up is a few
/// milliseconds, and the best of many is steadier than one.
const CLI_REPS: usize = 20;

/// The `warden` binary of this build, run as a user would.
const WARDEN: &str = env!("CARGO_BIN_EXE_warden");

/// `warden run --tier TIER --root / ARGV...` as a process.
fn run_warden_cli(argv: &[String], tier: Tier) -> Run {
    let mut cmd = Command::new(WARDEN);
    cmd.args(["run", "--tier", &tier.to_string(), "--root", "/"]).args(argv);
    run_host(&mut cmd)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Whether each run (those present) printed what the native one did and ended with its
/// status; says on stderr which did not.
fn same_output(workload: &str, native: &Run, runs: [(&str, Option<&Run>); 3]) -> bool {
    let mut ok = true;
    for (who, run) in runs {
        let Some(run) = run else { continue };
        if run.stdout != native.stdout || run.status != native.status {
            eprintln!(
                "compare: {workload}: {who} printed {:?} (status {}), native {:?} (status {})",
                String::from_utf8_lossy(&run.stdout),
                run.status,
                String::from_utf8_lossy(&native.stdout),
                native.status
            );
            ok = false;
        }
    }
    ok
}

/// The `nop CLI` row: start-up with every column an exec'd process. False when a run
/// printed something else than the native one.
fn cli_row(argv: &[String], qemu: bool) -> bool {
    let native = best(CLI_REPS, || run_host(Command::new(&argv[0]).args(&argv[1..])));
    let interp = best(CLI_REPS, || run_warden_cli(argv, Tier::Interp));
    let jit = best(CLI_REPS, || run_warden_cli(argv, Tier::Jit));
    let qemu_run = qemu.then(|| best(CLI_REPS, || run_host(Command::new("qemu-x86_64").args(argv))));
    let ok =
        same_output("nop CLI", &native, [("interp", Some(&interp)), ("jit", Some(&jit)), ("qemu", qemu_run.as_ref())]);
    let n = ms(native.time);
    let (i, j) = (ms(interp.time), ms(jit.time));
    let (q, qx) = match &qemu_run {
        Some(r) => (format!("{:.2}", ms(r.time)), format!("{:.2}", ms(r.time) / n)),
        None => ("skipped".to_string(), "-".to_string()),
    };
    println!(
        "{:<8} {:>8} {n:>10.2} {i:>10.2} {:>8.2} {j:>10.2} {:>8.2} {:>9} {q:>10} {qx:>8}",
        "nop CLI",
        0,
        i / n,
        j / n,
        "-"
    );
    ok
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    // `--tier=jit` or `--tier=interp`: only that tier's runs (and native), once each (for
    // profiling one tier: `perf record ... compare --tier=jit sh`).
    let only: Option<Tier> = std::env::args().find_map(|a| a.strip_prefix("--tier=").and_then(|t| t.parse().ok()));
    // `cargo bench` passes `--bench`; a filter argument picks workloads.
    let filters: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let Some(prog) = build() else { return };
    let qemu = Command::new("qemu-x86_64").arg("--version").stdout(Stdio::null()).status().is_ok();
    if !qemu {
        println!("compare: qemu-x86_64 not found: the qemu column is skipped (apt-get install qemu-user)");
        missing("qemu-x86_64");
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "compare ({} mode; load average {}): wall time of each run, ratio to native in the same run",
        if quick { "quick" } else { "full" },
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    println!(
        "{:<8} {:>8} {:>10} {:>10} {:>8} {:>10} {:>8} {:>9} {:>10} {:>8}",
        "workload",
        "scale",
        "native ms",
        "interp ms",
        "x native",
        "jit ms",
        "x native",
        "jit MIPS",
        "qemu ms",
        "x native"
    );
    let (native_reps, other_reps) = if quick { (3, 1) } else { (3, 3) };
    let mut failed = false;
    let has_busybox = Path::new(BUSYBOX).exists();
    if !has_busybox {
        println!("compare: {BUSYBOX} not found: the busybox workloads are skipped");
    }
    // One untimed run first: the process's one-time set-up (iced's decoder tables among
    // it) would otherwise fall on whichever column runs first (interp's `nop`).
    let _ = run_warden(&[prog.display().to_string(), "nop".to_string(), "0".to_string()], Tier::Interp);
    let mut inputs: Vec<(u64, PathBuf)> = Vec::new();
    let work = WORKLOADS.iter().map(|&w| (w, false));
    let busybox = BUSYBOX_WORKLOADS.iter().filter(|_| has_busybox).map(|&w| (w, true));
    for ((name, quick_scale, full_scale), is_busybox) in work.chain(busybox) {
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        let scale = if quick { quick_scale } else { full_scale };
        let (argv, qemu_argv): (Vec<String>, Vec<String>) = if is_busybox {
            let input = match inputs.iter().find(|(m, _)| *m == scale) {
                Some((_, p)) => p.clone(),
                None if matches!(name, "md5sum" | "gzip") => {
                    let p = input_file(scale);
                    inputs.push((scale, p.clone()));
                    p
                }
                None => PathBuf::new(),
            };
            (busybox_args(name, scale, &input, false), busybox_args(name, scale, &input, true))
        } else {
            let argv = vec![prog.display().to_string(), name.to_string(), scale.to_string()];
            (argv.clone(), argv)
        };
        let native = best(native_reps, || run_host(Command::new(&argv[0]).args(&argv[1..])));
        if let Some(tier) = only {
            let run = run_warden(&argv, tier);
            let n = ms(native.time);
            println!("{name:<8} {scale:>8} {n:>10.2} {tier} {:.2} ms, {:.2}x native", ms(run.time), ms(run.time) / n);
            continue;
        }
        let interp = best(other_reps, || run_warden(&argv, Tier::Interp));
        let jit = best(other_reps, || run_warden(&argv, Tier::Jit));
        let qemu_run = qemu.then(|| best(other_reps, || run_host(Command::new("qemu-x86_64").args(&qemu_argv))));
        failed |=
            !same_output(name, &native, [("interp", Some(&interp)), ("jit", Some(&jit)), ("qemu", qemu_run.as_ref())]);
        let n = ms(native.time);
        let (i, j) = (ms(interp.time), ms(jit.time));
        // MIPS only where the guest ran enough code for it to mean something (not for
        // start-up, spawn or syscall loops, whose time is mostly outside guest code).
        let mips = jit
            .instructions
            .filter(|&i| i >= 1_000_000 && !matches!(name, "syscall" | "spawn"))
            .map(|i| i as f64 / jit.time.as_secs_f64() / 1e6);
        let (q, qx) = match &qemu_run {
            Some(r) => (format!("{:.2}", ms(r.time)), format!("{:.2}", ms(r.time) / n)),
            None => ("skipped".to_string(), "-".to_string()),
        };
        println!(
            "{name:<8} {scale:>8} {n:>10.2} {i:>10.2} {:>8.2} {j:>10.2} {:>8.2} {:>9} {q:>10} {qx:>8}",
            i / n,
            j / n,
            mips.map_or("-".to_string(), |m| format!("{m:.0}")),
        );
        if let (Some(a), Some(b)) = (interp.instructions, jit.instructions) {
            if a != b {
                eprintln!("compare: {name}: the tiers retired {a} and {b} guest instructions");
                failed = true;
            }
            println!("{:<8} guest instructions: {a}", "");
        }
        if name == "nop" && !is_busybox {
            failed |= !cli_row(&argv, qemu);
        }
    }
    if failed {
        std::process::exit(1);
    }
}
