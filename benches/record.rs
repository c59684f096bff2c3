//! Recording overhead, plain run vs the same run while recording a trace, in one process.
//!
//! Workloads: `syscalls` — `testprog syscalls 50000`: getpid, clock_gettime and a 16-byte
//! write to `null:` per round, about 3 syscalls per 20 guest instructions (the most
//! syscall-heavy a guest gets: nearly all time is in the kernel); `shell` — `selftest`
//! (files, pipes, processes, exec, signals, the clock), a realistic mix.
//! Criterion measures each pair; then alternating runs (so drift in machine load hits both
//! alike; `syscalls` with 200,000 rounds so a recording's set-up is under 1 %) give the
//! ratio, printed as
//! `record overhead (WORKLOAD): X.X% by median, Y.Y% by best (...)`, from thread CPU time
//! (`CLOCK_THREAD_CPUTIME_ID`, less disturbed by other load than wall time; wall time where
//! that is missing). The goal (PRODUCT.md) is at most 5 %. A third variant, `host`,
//! runs the workload with a pass-through host supervisor attached to every process: the
//! least a recorder built on `HostSupervisor` would cost (see `src/record.rs`).
//!
//! Load-independent figures: `WARDEN_RECORD_PROFILE=MODE[,WORKLOAD[,N]]` (MODE `plain`,
//! `record` or `host`; WORKLOAD `syscalls` or `shell`; N rounds of `syscalls`) runs that one
//! variant once and exits, with a 16 GiB guest address space so that valgrind can run it:
//! ```text
//! WARDEN_RECORD_PROFILE=plain valgrind --tool=callgrind target/release/deps/record-HASH
//! WARDEN_RECORD_PROFILE=record valgrind --tool=callgrind target/release/deps/record-HASH
//! ```
//! and the ratio of the two instruction counts is the overhead. The bench does this itself at
//! the end when valgrind is installed (it is in CI), and prints
//! `record overhead (syscalls, callgrind): X.X% host instructions per guest syscall (...)`,
//! from the difference between 10,000 and 20,000 rounds so boot cancels out. On a noisy
//! machine (a shared VM) that is the figure to trust: the timed ratios above move by several
//! percent from run to run.

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, Criterion};
use guest_kernel::supervise::{HostAttach, HostSupervisor};
use guest_kernel::CaptureConsole;
use warden::RunOptions;

#[path = "common/thread_time.rs"]
mod thread_time;

fn options(workload: &str) -> RunOptions {
    let rounds = ROUNDS.get().map(|n| n.to_string()).unwrap_or_else(|| "50000".into());
    let (program, args): (&str, Vec<String>) = match workload {
        "syscalls" => ("/bin/testprog", vec!["syscalls".into(), rounds]),
        _ => ("/bin/selftest", vec![]),
    };
    RunOptions {
        program: Some(program.into()),
        args,
        address_space_size: SPACE.get().copied(),
        ..RunOptions::default()
    }
}

/// Rounds of the `syscalls` workload when profiling.
static ROUNDS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
/// Address-space size when profiling.
static SPACE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();

fn plain(workload: &str) -> u64 {
    let (console, _) = CaptureConsole::new(b"");
    let mut k = warden::boot(&options(workload), Box::new(console)).unwrap();
    let o = k.run();
    assert_eq!(o.exit_status(), 0);
    k.stats().syscalls
}

/// Lets every call run.
struct PassThrough;
impl HostSupervisor for PassThrough {}

fn host_supervised(workload: &str) -> u64 {
    let (console, _) = CaptureConsole::new(b"");
    let mut k = warden::boot(&options(workload), Box::new(console)).unwrap();
    k.set_host_supervisor(Box::new(PassThrough), HostAttach::All);
    let o = k.run();
    assert_eq!(o.exit_status(), 0);
    k.stats().syscalls
}

fn trace_path() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("warden-bench-{}.trace", std::process::id()))
}

fn recording(workload: &str) -> u64 {
    let (console, _) = CaptureConsole::new(b"");
    let (o, stats) = warden::record::record(&options(workload), &[], Box::new(console), &trace_path()).unwrap();
    assert_eq!(o.exit_status(), 0);
    stats.syscalls
}

/// CPU time of this thread in seconds, if the kernel reports it.
fn cpu_time() -> Option<f64> {
    thread_time::thread_cpu_ns().map(|ns| ns as f64 * 1e-9)
}

fn timed(f: impl FnOnce() -> u64) -> (f64, u64) {
    let (c, t) = (cpu_time(), Instant::now());
    let n = f();
    let wall = t.elapsed().as_secs_f64();
    let spent = match (c, cpu_time()) {
        (Some(a), Some(b)) if b > a => b - a,
        _ => wall,
    };
    (spent, n)
}

fn ratio(workload: &str, rounds: usize) {
    let (mut p, mut r, mut h) = (Vec::new(), Vec::new(), Vec::new());
    let mut syscalls = 0;
    for _ in 0..rounds {
        let (t, n) = timed(|| black_box(plain(workload)));
        p.push(t);
        syscalls = n;
        r.push(timed(|| black_box(recording(workload))).0);
        h.push(timed(|| black_box(host_supervised(workload))).0);
    }
    for v in [&mut p, &mut r, &mut h] {
        v.sort_by(|a, b| a.total_cmp(b));
    }
    let (mp, mr, mh) = (p[p.len() / 2], r[r.len() / 2], h[h.len() / 2]);
    let size = std::fs::metadata(trace_path()).map(|m| m.len()).unwrap_or(0);
    println!(
        "record overhead ({workload}): {:.1}% by median, {:.1}% by best (plain {:.2} ms, recording {:.2} ms; \
         {syscalls} syscalls, trace {size} bytes)",
        (mr / mp - 1.0) * 100.0,
        (r[0] / p[0] - 1.0) * 100.0,
        mp * 1e3,
        mr * 1e3
    );
    println!(
        "host-supervised pass-through overhead ({workload}): {:.1}% by median, {:.1}% by best ({:.2} ms)",
        (mh / mp - 1.0) * 100.0,
        (h[0] / p[0] - 1.0) * 100.0,
        mh * 1e3
    );
}

/// `WARDEN_RECORD_PROFILE=MODE[,WORKLOAD[,N]]`: one run of one variant, for a profiler.
fn profile(spec: &str) {
    let mut parts = spec.split(',');
    let mode = parts.next().unwrap_or("plain");
    let workload = parts.next().unwrap_or("syscalls");
    if let Some(n) = parts.next().and_then(|n| n.parse().ok()) {
        ROUNDS.set(n).unwrap();
    }
    SPACE.set(1 << 34).unwrap();
    let syscalls = match mode {
        "plain" => plain(workload),
        "record" => recording(workload),
        "host" => host_supervised(workload),
        other => panic!("WARDEN_RECORD_PROFILE: unknown mode {other:?} (plain, record or host)"),
    };
    println!("{mode} {workload}: {syscalls} syscalls");
    let _ = std::fs::remove_file(trace_path());
}

/// The load-independent figure: host instructions per guest syscall under callgrind, plain
/// vs recording vs a pass-through host supervisor, from the difference between two round
/// counts (so boot and set-up cancel out). Skipped, saying so, without valgrind; with
/// `WARDEN_REQUIRE_TOOLS=1` (CI) that is a failure.
fn instruction_ratio() {
    if std::process::Command::new("valgrind").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("WARDEN_REQUIRE_TOOLS").is_none(),
            "valgrind is required (WARDEN_REQUIRE_TOOLS is set)"
        );
        println!("record overhead (syscalls, callgrind): skipped, valgrind is not installed");
        return;
    }
    const ROUNDS_LOW: u64 = 10_000;
    const ROUNDS_HIGH: u64 = 20_000;
    let exe = std::env::current_exe().expect("the bench's own path");
    let dir = std::env::temp_dir().join(format!("warden-bench-callgrind-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Host instructions of one profiled run (callgrind's `summary:` line).
    let count = |mode: &str, rounds: u64| -> u64 {
        let out = dir.join(format!("{mode}.{rounds}"));
        let status = std::process::Command::new("valgrind")
            .args(["--tool=callgrind", "--quiet"])
            .arg(format!("--callgrind-out-file={}", out.display()))
            .arg(&exe)
            .env("WARDEN_RECORD_PROFILE", format!("{mode},syscalls,{rounds}"))
            .stdout(std::process::Stdio::null())
            .status()
            .expect("valgrind runs");
        assert!(status.success(), "callgrind run of {mode} failed");
        let text = std::fs::read_to_string(&out).unwrap();
        let line = text.lines().find_map(|l| l.strip_prefix("summary:")).expect("a callgrind summary line");
        line.trim().parse().unwrap()
    };
    // Two runs at a time (one per core of the CI machine).
    let per_call = |mode: &'static str| {
        let (low, high) = std::thread::scope(|s| {
            let low = s.spawn(|| count(mode, ROUNDS_LOW));
            let high = count(mode, ROUNDS_HIGH);
            (low.join().expect("the callgrind thread"), high)
        });
        (high - low) as f64 / (3 * (ROUNDS_HIGH - ROUNDS_LOW)) as f64
    };
    let plain = per_call("plain");
    let record = per_call("record");
    let host = per_call("host");
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "record overhead (syscalls, callgrind): {:.1}% host instructions per guest syscall (plain {plain:.1}, \
         recording {record:.1}); host-supervised pass-through {:.1}% ({host:.1})",
        (record / plain - 1.0) * 100.0,
        (host / plain - 1.0) * 100.0
    );
}

fn bench(c: &mut Criterion) {
    for workload in ["syscalls", "shell"] {
        let mut g = c.benchmark_group(format!("record-{workload}"));
        g.sample_size(20);
        g.bench_function("plain", |b| b.iter(|| black_box(plain(workload))));
        g.bench_function("recording", |b| b.iter(|| black_box(recording(workload))));
        g.finish();
    }
    // Long runs for the ratio (600,000 syscalls each), so the per-run set-up of a recording
    // (creating the trace file, hashing the image: about half a millisecond) stays under 1 %.
    ROUNDS.set(200_000).unwrap();
    ratio("syscalls", 15);
    ratio("shell", 15);
    instruction_ratio();
    let _ = std::fs::remove_file(trace_path());
}

criterion_group!(benches, bench);

fn main() {
    if let Ok(spec) = std::env::var("WARDEN_RECORD_PROFILE") {
        return profile(&spec);
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
