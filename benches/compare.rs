//! The comparison bench (issue 6 item 3, issue 7 item 4): the same static
//! Linux program runs natively, under warden (the Linux personality with the
//! host's `/` as root, as `warden run --root / ./work ...` does) and under
//! `qemu-x86_64` (Debian's qemu-user) when it is installed, one after the
//! other in one process, and each time is printed with its ratio to the
//! native time measured in the same run.
//!
//! The workloads are `benches/compare/work.c`, built here with
//! `gcc -O2 -static` (glibc): start-up, an integer/memory/branch loop,
//! SHA-256 over a buffer, memcpy/memset, scalar double arithmetic, a getppid
//! loop and a fork/exit/wait loop. Every run's stdout must match the native
//! one (a mismatch fails the bench). Warden runs in this process through the
//! library, so its guest instruction count is known: the table gives its MIPS
//! for the CPU-bound workloads (a `rep movs`/`rep stos` counts as one
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

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use guest_kernel::{CaptureConsole, RunOutcome};
use warden::{Root, RunOptions};

/// (workload, quick scale, full scale)
const WORKLOADS: &[(&str, u64, u64)] = &[
    ("nop", 0, 0),
    ("int", 1, 8),
    ("sha256", 1, 4),
    ("mem", 1, 8),
    ("fp", 1, 8),
    ("syscall", 20_000, 200_000),
    ("spawn", 20, 200),
];

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

fn run_warden(prog: &Path, args: &[String]) -> Run {
    let opts = RunOptions {
        root: Root::Dir(PathBuf::from("/")),
        program: Some(prog.display().to_string()),
        args: args.to_vec(),
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

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
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
        "{:<8} {:>8} {:>10} {:>10} {:>9} {:>9} {:>10} {:>9}",
        "workload", "scale", "native ms", "warden ms", "x native", "MIPS", "qemu ms", "x native"
    );
    let (native_reps, other_reps) = if quick { (3, 1) } else { (3, 3) };
    let mut failed = false;
    for &(name, quick_scale, full_scale) in WORKLOADS {
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        let scale = if quick { quick_scale } else { full_scale };
        let args = vec![name.to_string(), scale.to_string()];
        let native = best(native_reps, || run_host(Command::new(&prog).args(&args)));
        let warden = best(other_reps, || run_warden(&prog, &args));
        let qemu_run = qemu.then(|| best(other_reps, || run_host(Command::new("qemu-x86_64").arg(&prog).args(&args))));
        for (who, run) in [("warden", Some(&warden)), ("qemu", qemu_run.as_ref())] {
            let Some(run) = run else { continue };
            if run.stdout != native.stdout || run.status != native.status {
                eprintln!(
                    "compare: {name}: {who} printed {:?} (status {}), native {:?} (status {})",
                    String::from_utf8_lossy(&run.stdout),
                    run.status,
                    String::from_utf8_lossy(&native.stdout),
                    native.status
                );
                failed = true;
            }
        }
        let n = ms(native.time);
        let w = ms(warden.time);
        // MIPS only where the guest ran enough code for it to mean something (not for
        // start-up, spawn or syscall loops, whose time is mostly outside guest code).
        let mips = warden
            .instructions
            .filter(|&i| i >= 1_000_000 && !matches!(name, "syscall" | "spawn"))
            .map(|i| i as f64 / warden.time.as_secs_f64() / 1e6);
        let (q, qx) = match &qemu_run {
            Some(r) => (format!("{:.2}", ms(r.time)), format!("{:.2}", ms(r.time) / n)),
            None => ("skipped".to_string(), "-".to_string()),
        };
        println!(
            "{name:<8} {scale:>8} {n:>10.2} {w:>10.2} {:>9.2} {:>9} {q:>10} {qx:>9}",
            w / n,
            mips.map_or("-".to_string(), |m| format!("{m:.0}")),
        );
        if let Some(i) = warden.instructions {
            println!("{:<8} guest instructions: {i}", "");
        }
    }
    if failed {
        std::process::exit(1);
    }
}
