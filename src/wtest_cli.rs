//! The command lines of `warden test`, `warden record` and `warden replay` (kept out of
//! `main.rs` so that file stays a list of subcommands).

use std::path::PathBuf;

use clap::Args;
use guest_kernel::Limits;
use warden::host::{self, warn, Border, HostConsole};
use warden::testfmt::Format;
use warden::testrun::{self, TestConfig};
use warden::{Root, EXIT_WARDEN_FAILED};

/// `warden test [OPTIONS] [PATHS...]`.
#[derive(Args, Debug)]
pub struct TestArgs {
    /// Root file system for the tests (a tar archive) instead of the embedded image.
    #[arg(long, value_name = "FILE", conflicts_with = "root")]
    image: Option<PathBuf>,

    /// Root file system from a host directory, read-only to the guest.
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,

    /// Guest environment variable for every test (repeatable; default PATH=/bin).
    #[arg(long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,

    /// Instruction budget of each test that sets none.
    #[arg(long, value_name = "N", default_value_t = testrun::DEFAULT_TEST_BUDGET)]
    budget: u64,

    /// Guest instructions a thread runs before the scheduler preempts it.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    quantum: u64,

    /// What runs hot guest code: `jit` or `interp` (as `warden run --tier`; results are the
    /// same).
    #[arg(long, value_name = "TIER", default_value_t = emu::Tier::default())]
    tier: emu::Tier,

    /// Run every test once per seed: N, A..B (B excluded) or A..=B. A seed other than 0
    /// perturbs the preemption points (and seeds rand: and AT_RANDOM).
    #[arg(long, value_name = "A..B", default_value = "0")]
    seeds: String,

    /// Host threads running tests (default: one per host core).
    #[arg(long, short = 'j', value_name = "N", default_value_t = 0)]
    jobs: usize,

    /// Write a JUnit XML report to FILE.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,

    /// Record every test and keep DIR/NAME.trace for each failure (`warden replay` it).
    #[arg(long, value_name = "DIR")]
    record_failures: Option<PathBuf>,

    /// Re-run each failed test N times with new seeds (after once with its own) and say
    /// whether it is failing or flaky under schedule.
    #[arg(long, value_name = "N", default_value_t = 0)]
    retries: u32,

    /// Run only shard K of N (counted from 1) of the tests: a stable partition, the same in
    /// every job (default: from TEST_SHARD_INDEX, counted from 0, and TEST_TOTAL_SHARDS).
    #[arg(long, value_name = "K/N")]
    shard: Option<String>,

    /// Balance the shards by the instruction counts of an earlier JUnit report instead of by
    /// a hash of the names (every shard's job must be given the same file).
    #[arg(long, value_name = "JUNIT", requires = "shard")]
    shard_weights: Option<PathBuf>,

    /// Print the names of the tests that would run (after filters and sharding), one per
    /// line, and run nothing.
    #[arg(long)]
    list: bool,

    /// Merge the JUnit reports given as PATHS (one per shard) into OUT, and run nothing.
    #[arg(long, value_name = "OUT")]
    merge_junit: Option<PathBuf>,

    /// Rust test binaries (`cargo test --no-run` output): each test runs alone in its own
    /// guest, on the host's root unless --root/--image is given.
    #[arg(long, value_name = "BIN", num_args = 1..)]
    libtest: Vec<String>,

    /// GoogleTest binaries: each test runs alone in its own guest, as with --libtest.
    #[arg(long, value_name = "BIN", num_args = 1..)]
    gtest: Vec<String>,

    /// Run only the tests whose name contains PATTERN (repeatable: any of them).
    #[arg(long = "filter", short = 'E', value_name = "PATTERN")]
    filter: Vec<String>,

    /// Leave out the tests whose name contains PATTERN (repeatable).
    #[arg(long, value_name = "PATTERN")]
    skip: Vec<String>,

    /// Manifests (.toml), guest directories or programs (default /bin/tests), host ELF
    /// programs or host directories of them.
    #[arg(value_name = "PATHS")]
    paths: Vec<String>,
}

impl TestArgs {
    pub fn run(self) -> i32 {
        if let Some(out) = &self.merge_junit {
            let inputs: Vec<PathBuf> = self.paths.iter().map(PathBuf::from).collect();
            if inputs.is_empty() {
                eprintln!("warden: --merge-junit {}: give the JUnit reports to merge", out.display());
                return EXIT_WARDEN_FAILED;
            }
            return match testrun::merge_junit(&inputs)
                .and_then(|x| std::fs::write(out, x).map_err(|e| format!("cannot write {}: {e}", out.display())))
            {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("warden: {e}");
                    EXIT_WARDEN_FAILED
                }
            };
        }
        let seeds = match testrun::parse_seeds(&self.seeds) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("warden: {e}");
                return EXIT_WARDEN_FAILED;
            }
        };
        let root = match (self.image, self.root) {
            (Some(f), _) => Root::Image(f),
            (None, Some(d)) => Root::Dir(d),
            (None, None) => Root::Default,
        };
        let config = TestConfig {
            base: testrun::BaseOptions {
                root,
                env: self.env,
                quantum: self.quantum,
                limits: Limits::default(),
                tier: self.tier,
            },
            default_budget: self.budget,
            seeds,
            jobs: self.jobs,
            junit: self.junit,
            record_failures: self.record_failures,
            show_failure_output: true,
            retries: self.retries,
            progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
            share_code: false,
        };
        let binaries = [(Format::Libtest, &self.libtest), (Format::Gtest, &self.gtest)];
        let found = (|| {
            let mut tests = Vec::new();
            // No PATHS but binaries: only the binaries (no PATHS alone means /bin/tests).
            if !self.paths.is_empty() || binaries.iter().all(|(_, b)| b.is_empty()) {
                tests = testrun::discover(&self.paths, &config)?;
            }
            for (format, bins) in binaries {
                tests.extend(testrun::discover_binaries(format, bins, &config)?);
            }
            testrun::make_names_unique(&mut tests);
            let tests = testrun::select(tests, &self.filter, &self.skip);
            Ok::<_, String>(match shard_of(self.shard.as_deref())? {
                Some((k, n)) => {
                    let weights = self.shard_weights.as_deref().map(testrun::junit_weights).transpose()?;
                    testrun::shard(tests, k - 1, n, weights.as_ref())
                }
                None => tests,
            })
        })();
        let tests = match found {
            Ok(t) => t,
            Err(e) => {
                eprintln!("warden: {e}");
                return EXIT_WARDEN_FAILED;
            }
        };
        if self.list {
            for t in &tests {
                println!("{}", t.name);
            }
            return 0;
        }
        let mut out = std::io::stdout();
        let started = std::time::Instant::now();
        match testrun::run_tests(&tests, &config, &mut out) {
            Ok((summary, results)) => {
                eprint!("{}", testrun::closing_report(&results, started.elapsed()));
                i32::from(summary.failed())
            }
            Err(e) => {
                eprintln!("warden: {e}");
                EXIT_WARDEN_FAILED
            }
        }
    }
}

/// `--shard K/N`, else Bazel's TEST_SHARD_INDEX (from 0) and TEST_TOTAL_SHARDS, whose
/// runner also wants TEST_SHARD_STATUS_FILE touched to know sharding is supported.
fn shard_of(arg: Option<&str>) -> Result<Option<(usize, usize)>, String> {
    if let Some(s) = arg {
        return testrun::parse_shard(s).map(Some);
    }
    let (Ok(index), Ok(total)) = (std::env::var("TEST_SHARD_INDEX"), std::env::var("TEST_TOTAL_SHARDS")) else {
        return Ok(None);
    };
    if let Ok(f) = std::env::var("TEST_SHARD_STATUS_FILE") {
        std::fs::write(&f, b"").map_err(|e| format!("cannot write TEST_SHARD_STATUS_FILE {f}: {e}"))?;
    }
    let bad = || format!("bad TEST_SHARD_INDEX={index} / TEST_TOTAL_SHARDS={total}");
    let k = index.trim().parse::<usize>().map_err(|_| bad())?;
    testrun::parse_shard(&format!("{}/{}", k + 1, total.trim())).map(Some).map_err(|_| bad())
}

/// `warden record -o TRACE [run options] PROGRAM [ARGS...]`: the options of `warden run`
/// (without its tracing flags, whose `-o` would clash).
#[derive(Args, Debug)]
pub struct RecordArgs {
    /// Where to write the trace.
    #[arg(short = 'o', long = "output", value_name = "TRACE", required = true)]
    output: PathBuf,

    #[command(flatten)]
    run: super::RunArgs,
}

impl RecordArgs {
    pub fn run(self) -> i32 {
        let mut opts = self.run.options();
        warden::run_host_program_on_host_root(&mut opts);
        opts.border = Border::interruptible();
        let console = Box::new(HostConsole::interactive(&opts.border));
        match warden::record::record(&opts, &[], console, &self.output) {
            Ok((outcome, stats)) => match host::interrupted_by() {
                Some(sig) => {
                    warn(format!(
                        "recording interrupted by {} after {} guest instructions; {} replays the run up to there",
                        host::host_signal_name(sig),
                        stats.instructions,
                        self.output.display()
                    ));
                    host::die_of(sig)
                }
                None => outcome.exit_status(),
            },
            Err(warden::record::RecordError::Run(e)) => {
                warn(warden::explain(&e, &opts));
                e.exit_status()
            }
            Err(e) => {
                warn(&e);
                e.exit_status()
            }
        }
    }
}

/// `warden replay [--image FILE | --root DIR] [--overlay DIR] [--force] TRACE`.
#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// Replay past files of the root the guest uses that changed since the recording (a
    /// warning each), to find where the run diverges; without it the replay stops at the
    /// first such file, naming it, with status 125.
    #[arg(long)]
    force: bool,

    /// The overlay directory of a run recorded with `--overlay`, if not the recorded path:
    /// it must hold what the recorded one held when the recording started.
    #[arg(long, value_name = "DIR")]
    overlay: Option<PathBuf>,

    /// Replay on this tar image instead of the recorded root.
    #[arg(long, value_name = "FILE", conflicts_with = "root")]
    image: Option<PathBuf>,

    /// Replay on this host directory instead of the recorded root.
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,

    /// Do not print a line when a core-dumping signal kills a guest process.
    #[arg(long, short = 'q')]
    quiet: bool,

    /// Wait for gdb on ADDR (HOST:PORT, or a Unix socket path) before the first guest
    /// instruction, and let it debug the replay (memory and registers read-only).
    #[arg(long, value_name = "ADDR")]
    gdb: Option<String>,

    /// With --gdb: replay to this exact instruction count (as a divergence report gives
    /// it) before waiting for gdb.
    #[arg(long, value_name = "N", requires = "gdb")]
    goto: Option<u64>,

    /// With --gdb: debug this guest process instead of the program started (the replay
    /// goes on until it exists).
    #[arg(long, value_name = "PID", requires = "gdb")]
    gdb_pid: Option<u32>,

    /// With --gdb: guest instructions between the checkpoints that reverse execution
    /// replays from (0: none; going back then replays from the start).
    #[arg(long, value_name = "N", requires = "gdb", default_value_t = warden::gdb::CHECKPOINT_EVERY)]
    checkpoint_every: u64,

    /// With --gdb: checkpoints kept at most (they thin out evenly past it).
    #[arg(long, value_name = "N", requires = "gdb", default_value_t = warden::gdb::MAX_CHECKPOINTS)]
    max_checkpoints: usize,

    /// The trace written by `warden record` (or `warden test --record-failures`).
    #[arg(value_name = "TRACE")]
    trace: PathBuf,
}

impl ReplayArgs {
    pub fn run(self) -> i32 {
        let root = match (self.image, self.root) {
            (Some(f), _) => Some(Root::Image(f)),
            (None, Some(d)) => Some(Root::Dir(d)),
            (None, None) => None,
        };
        let border = Border::interruptible();
        let console = Box::new(HostConsole::new(&border));
        let options = warden::record::ReplayOptions {
            root,
            overlay: self.overlay,
            force: self.force,
            border,
            report_fatal_signals: !self.quiet,
        };
        let mut warn_replay = |m: String| warn(format!("replay: {m}"));
        let result = match self.gdb.as_deref() {
            Some(addr) => {
                let debug = warden::gdb::ReplayDebug {
                    addr: addr.to_string(),
                    goto: self.goto,
                    checkpoint_every: self.checkpoint_every,
                    max_checkpoints: self.max_checkpoints,
                    pid: self.gdb_pid,
                };
                match warden::gdb::replay(&self.trace, &options, console, &debug, &mut warn_replay) {
                    Ok(Some(replayed)) => Ok(replayed),
                    // gdb's `kill`.
                    Ok(None) => return 128 + warden_abi::SIGKILL as i32,
                    Err(e) => Err(e),
                }
            }
            None => warden::record::replay(&self.trace, &options, console, &mut warn_replay),
        };
        if let Some(sig) = host::interrupted_by() {
            host::die_of(sig);
        }
        match result {
            Ok(replayed) => {
                if let Some(sig) = replayed.interrupted_by {
                    warn(format!(
                        "replay: the recording was interrupted by {} here, after {} guest instructions",
                        host::host_signal_name(i32::from(sig)),
                        replayed.instructions
                    ));
                }
                replayed.exit_status()
            }
            Err(e) => {
                warn(&e);
                match e {
                    warden::record::ReplayError::Run(e) => e.exit_status(),
                    _ => EXIT_WARDEN_FAILED,
                }
            }
        }
    }
}
