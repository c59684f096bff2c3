//! `warden test --libtest` at scale (issue 19): a generated crate of trivial tests (1,000;
//! 200 with `--quick`), built by cargo offline, each test run alone in its own guest on 2
//! host threads as on the 2-core CI machine. Prints a table, not criterion figures:
//! - the listing time, the wall and CPU time of the whole run and per test, and the guest
//!   instructions per test (dynamic loading of the test binary and libc dominate them),
//!   first with every guest decoding its own code, then sharing decoded code between the
//!   guests (`emu::SharedCode`, the default), whose instruction counts must be the same;
//! - per-test start-up: the smallest guest test there is (`/bin/true` of the embedded image)
//!   through the same `run_one` path, median of 50;
//! - shard balance over 4 shards: test counts and instruction sums per shard, by name hash
//!   and by weights (the instruction counts of this run, as `--shard-weights` reads them
//!   from a JUnit report), as the largest shard over the mean.
//!
//! Wall times depend on the machine's load (CPU time less so); instruction counts do not.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use warden::testfmt::Format;
use warden::testrun::{self, TestConfig};

fn cpu_time() -> Duration {
    // SAFETY: getrusage only writes the struct we hand it.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above; RUSAGE_SELF is always valid.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// Builds a crate of `n` trivial tests and returns its test binary.
fn build_suite(n: usize) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target").join("bench-wtest");
    let src = dir.join(format!("suite{n}"));
    std::fs::create_dir_all(src.join("src")).unwrap();
    std::fs::write(
        src.join("Cargo.toml"),
        format!("[package]\nname = \"trivial{n}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n"),
    )
    .unwrap();
    let mut lib = String::from("#[cfg(test)]\nmod tests {\n");
    for i in 0..n {
        lib.push_str(&format!(
            "    #[test]\n    fn t{i:04}() {{\n        assert_eq!(std::hint::black_box({i}) + 1, {});\n    }}\n",
            i + 1
        ));
    }
    lib.push_str("}\n");
    if std::fs::read_to_string(src.join("src/lib.rs")).ok().as_deref() != Some(lib.as_str()) {
        std::fs::write(src.join("src/lib.rs"), lib).unwrap();
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["test", "--no-run", "--offline", "--message-format=json", "--manifest-path"])
        .arg(src.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(dir.join("target"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json = String::from_utf8_lossy(&out.stdout);
    let exe = json
        .lines()
        .filter(|l| l.contains("\"test\":true"))
        .find_map(|l| l.split_once("\"executable\":\"").and_then(|(_, r)| r.split_once('"')).map(|(p, _)| p))
        .expect("no test executable");
    PathBuf::from(exe)
}

fn balance(loads: &[u64]) -> String {
    let mean = loads.iter().sum::<u64>() as f64 / loads.len() as f64;
    let max = loads.iter().copied().max().unwrap_or(0) as f64;
    format!("{loads:?}, largest/mean {:.3}", max / mean.max(1.0))
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let n = if quick { 200 } else { 1000 };
    let bin = build_suite(n);
    let config = TestConfig { jobs: 2, ..TestConfig::default() };

    let t = Instant::now();
    let tests = testrun::discover_binaries(Format::Libtest, &[bin.display().to_string()], &config).unwrap();
    let listing = t.elapsed();
    assert_eq!(tests.len(), n);

    // Each guest decoding its own code, then the guests sharing decoded code (the default).
    let mut results = Vec::new();
    println!("warden test --libtest: {n} trivial tests, 2 threads");
    println!("  listing (2 guest runs)      {:8.1} ms", listing.as_secs_f64() * 1000.0);
    let configs =
        [(false, emu::Tier::Jit), (true, emu::Tier::Jit), (false, emu::Tier::Interp), (true, emu::Tier::Interp)];
    for (share_code, tier) in configs {
        let mut config = TestConfig { share_code, ..config.clone() };
        config.base.tier = tier;
        let (cpu0, t) = (cpu_time(), Instant::now());
        let (summary, r) = testrun::run_tests(&tests, &config, &mut std::io::sink()).unwrap();
        let (wall, cpu) = (t.elapsed(), cpu_time() - cpu0);
        assert_eq!(summary.passed, n, "{}", summary.line());
        let per = |d: Duration| d.as_secs_f64() * 1000.0 / n as f64;
        println!("  decoded code shared: {share_code}, tier {tier}");
        println!("    run, wall                 {:8.2} s   ({:.2} ms per test)", wall.as_secs_f64(), per(wall));
        println!("    run, CPU (both threads)   {:8.2} s   ({:.2} ms per test)", cpu.as_secs_f64(), per(cpu));
        println!("    guest instructions/test   {:8}", summary.instructions / n as u64);
        let emu::SharedCodeStats { hits, misses } = summary.shared_code;
        if share_code {
            println!("    blocks shared / decoded   {hits:8} / {misses}");
        }
        if !results.is_empty() {
            let counts = |rs: &[testrun::TestResult]| rs.iter().map(|r| r.instructions).collect::<Vec<_>>();
            assert_eq!(counts(&results), counts(&r), "sharing code or the tier changed instruction counts");
        }
        results = r;
    }

    // The smallest guest test, through the same path.
    let tiny = testrun::discover(&["/bin/true".into()], &config).unwrap();
    let mut times: Vec<Duration> = (0..50)
        .map(|_| {
            let t = Instant::now();
            let r = testrun::run_one(&tiny[0], &config, 0, "true".into());
            assert!(r.passed());
            t.elapsed()
        })
        .collect();
    times.sort();
    println!("  start-up, /bin/true test    {:8.3} ms (median of 50)", times[25].as_secs_f64() * 1000.0);

    let names: Vec<&str> = results.iter().map(|r| r.name.as_str()).collect();
    let weights: BTreeMap<String, u64> = results.iter().map(|r| (r.name.clone(), r.instructions)).collect();
    for (how, w) in [("name hash", None), ("weights", Some(&weights))] {
        let shards = testrun::assign_shards(&names, 4, w);
        let (mut count, mut load) = (vec![0u64; 4], vec![0u64; 4]);
        for (r, s) in results.iter().zip(&shards) {
            count[*s] += 1;
            load[*s] += r.instructions;
        }
        println!("  4 shards by {how:9}: tests {}", balance(&count));
        println!("  {:22} instructions {}", "", balance(&load));
    }
}
