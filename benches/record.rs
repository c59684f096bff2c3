//! Recording overhead: the same syscall-heavy guest workload (`testprog syscalls N`: getpid,
//! clock_gettime and a 16-byte write to `null:` per round, so about 3 syscalls per few hundred
//! guest instructions) run plainly and while recording a trace, in the same process.
//! Criterion measures both; then alternating timed runs give the ratio, printed as
//! `record overhead: X.X% (plain MEDIAN ms, recording MEDIAN ms, N syscalls, TRACE bytes)`.
//! The goal (PRODUCT.md) is at most 5 %.

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use guest_kernel::CaptureConsole;
use warden::RunOptions;

const ROUNDS: &str = "50000";

fn options() -> RunOptions {
    RunOptions {
        program: Some("/bin/testprog".into()),
        args: vec!["syscalls".into(), ROUNDS.into()],
        ..RunOptions::default()
    }
}

fn plain() -> u64 {
    let (console, _) = CaptureConsole::new(b"");
    let mut k = warden::boot(&options(), Box::new(console)).unwrap();
    let o = k.run();
    assert_eq!(o.exit_status(), 0);
    k.stats().syscalls
}

fn trace_path() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("warden-bench-{}.trace", std::process::id()))
}

fn recording() -> u64 {
    let (console, _) = CaptureConsole::new(b"");
    let (o, stats) = warden::record::record(&options(), &[], Box::new(console), &trace_path()).unwrap();
    assert_eq!(o.exit_status(), 0);
    stats.syscalls
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("record");
    g.sample_size(20);
    g.bench_function("plain", |b| b.iter(|| black_box(plain())));
    g.bench_function("recording", |b| b.iter(|| black_box(recording())));
    g.finish();

    // Alternate the two so drift in the machine's speed hits both alike.
    let (mut p, mut r) = (Vec::new(), Vec::new());
    let mut syscalls = 0;
    for _ in 0..15 {
        let t = Instant::now();
        syscalls = black_box(plain());
        p.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        black_box(recording());
        r.push(t.elapsed().as_secs_f64());
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let (mp, mr) = (median(&mut p), median(&mut r));
    let size = std::fs::metadata(trace_path()).map(|m| m.len()).unwrap_or(0);
    println!(
        "record overhead: {:.1}% (plain {:.2} ms, recording {:.2} ms, {syscalls} syscalls, trace {size} bytes)",
        (mr / mp - 1.0) * 100.0,
        mp * 1e3,
        mr * 1e3
    );
    let _ = std::fs::remove_file(trace_path());
}

criterion_group!(benches, bench);
criterion_main!(benches);
