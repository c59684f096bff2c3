//! `warden test`: guest test programs run in fresh guests, in parallel, with instruction
//! budgets instead of timeouts, and machine-readable results.
//!
//! Design:
//! - [`discover`] turns each PATH into tests: a manifest (a `.toml` host file, format below),
//!   a guest directory (every executable regular file in it, e.g. `/bin/tests` of the default
//!   image), a guest program, a host ELF file or a host directory of ELF files (those are
//!   added to the guest's in-memory layer under `/host-tests/` and run from there; their
//!   bytes travel with each test, so a recorded failure replays without the host file).
//!   Guest paths are looked up first, then host paths. No PATH means `/bin/tests`.
//! - [`run_tests`] runs every (test, seed) pair: each in its own kernel, built inside a
//!   worker thread (a kernel is single-threaded and not `Send`), on `jobs` host threads
//!   taking work from a shared counter. Results are printed in test order as soon as every
//!   earlier one is known, so the output does not depend on timing: `ok NAME (N
//!   instructions)`, `FAIL NAME: reason` or `skipped NAME: why`, then `N passed, N failed,
//!   N skipped` alone on its line. Wall times go only to JUnit (and the summary on stderr).
//! - [`discover_binaries`] turns libtest and GoogleTest binaries into one test per test of
//!   theirs ([`crate::testfmt`]); each runs alone in a fresh guest, like any other test.
//! - A test passes when its exit status is the expected one (default 0; a signal N is
//!   128+N) and, if given, its stdout is exactly the expected bytes. An exhausted budget
//!   (default 10^9 instructions) and a deadlock fail with their own reason.
//! - `--junit FILE` writes JUnit XML by hand (one `<testsuite>`, a `<testcase>` per run with
//!   `<failure>`, `<system-out>`, `<system-err>`), escaping markup characters and dropping
//!   characters XML 1.0 cannot carry.
//! - `--record-failures DIR` records every run (the cost is small) to a temporary trace and
//!   keeps it as `DIR/NAME.trace` only if the test failed: `warden replay` reproduces it.
//!
//! Manifest (TOML); every key but `run` is optional:
//! ```toml
//! image = "rootfs.tar"     # or root = "dir"; relative to the manifest; default: as on the command line
//! budget = 1_000_000_000   # default per-test instruction budget
//! env = ["PATH=/bin"]      # default guest environment
//!
//! [[test]]
//! name = "echo"            # default: the command line
//! run = "testprog echo 'a b'"  # words as in a shell (quotes, \\); or an array of words
//! status = 0               # expected exit status (128+N: killed by signal N)
//! stdout = "a b\n"         # expected stdout, exactly
//! stdin = ""               # guest stdin
//! budget = 1_000_000       # this test's instruction budget
//! env = ["K=V"]
//! ```

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use guest_kernel::vfs::Vfs;
use guest_kernel::{CaptureConsole, Limits, RunOutcome};
use serde::Deserialize;
use warden_abi::{MODE_FILE, MODE_TYPE};

use crate::testfmt::{self, Format, Report};
use crate::{open_root, Root, RunOptions};

/// The instruction budget of a test that sets none.
pub const DEFAULT_TEST_BUDGET: u64 = 1_000_000_000;

/// Where host test programs are placed in the guest.
pub const HOST_TESTS_DIR: &str = "/host-tests";

/// A file added to the guest's root before the program starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtraFile {
    /// Absolute guest path.
    pub path: String,
    pub mode: u16,
    pub data: Arc<Vec<u8>>,
}

/// Adds `files` to `vfs`'s in-memory layer (creating their parent directories).
pub fn add_files(vfs: &Vfs, files: &[ExtraFile]) -> Result<(), String> {
    use guest_kernel::scheme::FileOps;
    use warden_abi::{O_CREAT, O_DIRECTORY, O_TRUNC, O_WRONLY};
    let ctx = guest_kernel::CallCtx { pid: 0, uid: 0, gid: 0, umask: 0 };
    for f in files {
        let mut dir = String::new();
        let parts: Vec<&str> = f.path.split('/').filter(|p| !p.is_empty()).collect();
        for part in parts.iter().take(parts.len().saturating_sub(1)) {
            dir.push('/');
            dir.push_str(part);
            vfs.open_handle(dir.as_bytes(), O_CREAT | O_DIRECTORY | 0o755, &ctx)
                .map_err(|e| format!("cannot create guest directory {dir}: {e}"))?;
        }
        let mut h = vfs
            .open_handle(f.path.as_bytes(), O_CREAT | O_WRONLY | O_TRUNC | usize::from(f.mode & 0o7777), &ctx)
            .map_err(|e| format!("cannot create guest file {}: {e}", f.path))?;
        let mut rest: &[u8] = &f.data;
        while !rest.is_empty() {
            match h.write(rest) {
                Ok(0) | Err(_) => return Err(format!("cannot write guest file {}", f.path)),
                Ok(n) => rest = &rest[n.min(rest.len())..],
            }
        }
    }
    Ok(())
}

/// One test: a program to run and what it must do.
#[derive(Clone, Debug)]
pub struct TestSpec {
    pub name: String,
    /// What the test is grouped under (JUnit's classname): the test binary, or `warden`.
    pub suite: String,
    /// The test is one test of a libtest or GoogleTest binary, which reports on it.
    pub format: Option<Format>,
    /// Not run, reported as skipped (`#[ignore]`, `DISABLED_`).
    pub ignored: bool,
    pub root: Root,
    pub extra_files: Arc<Vec<ExtraFile>>,
    pub program: String,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub stdin: Vec<u8>,
    /// Expected exit status (128+N for signal N).
    pub status: i32,
    pub stdout: Option<Vec<u8>>,
    pub budget: Option<u64>,
}

/// What every test starts from (a plain, `Send` subset of [`RunOptions`]).
#[derive(Clone, Debug)]
pub struct BaseOptions {
    pub root: Root,
    /// Default guest environment (empty: PATH=/bin).
    pub env: Vec<String>,
    pub quantum: u64,
    pub limits: Limits,
    /// What runs hot guest code (the results are the same with either).
    pub tier: emu::Tier,
}

impl Default for BaseOptions {
    fn default() -> Self {
        let d = RunOptions::default();
        BaseOptions { root: d.root, env: d.env, quantum: d.quantum, limits: d.limits, tier: d.tier }
    }
}

/// How `warden test` runs.
#[derive(Clone, Debug)]
pub struct TestConfig {
    /// Root, environment, quantum and limits every test starts from.
    pub base: BaseOptions,
    /// Budget of tests that set none.
    pub default_budget: u64,
    /// Every test runs once per seed.
    pub seeds: Vec<u64>,
    /// Host threads (0: one per host core).
    pub jobs: usize,
    pub junit: Option<PathBuf>,
    pub record_failures: Option<PathBuf>,
    /// Print the captured output of each failed test on stderr (the command line does).
    pub show_failure_output: bool,
    /// Re-run a failed test this many times with new seeds, after once with its own.
    pub retries: u32,
    /// Keep a progress line up to date on stderr (a terminal).
    pub progress: bool,
    /// The guests of the run share decoded code (`emu::SharedCode`). Off by default: on the
    /// `wtest` bench a reused block cost about as much as decoding it (5 % more CPU per test).
    pub share_code: bool,
}

impl Default for TestConfig {
    fn default() -> Self {
        TestConfig {
            base: BaseOptions::default(),
            default_budget: DEFAULT_TEST_BUDGET,
            seeds: vec![0],
            jobs: 0,
            junit: None,
            record_failures: None,
            show_failure_output: false,
            retries: 0,
            progress: false,
            share_code: false,
        }
    }
}

/// How one run of one test ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Passed,
    /// Why it failed.
    Failed(String),
    /// Why it did not run (or said it skipped itself).
    Skipped(String),
    /// It failed, but a retry (`--retries`) passed: why it failed and how it passed.
    Flaky(String),
}

/// The result of one run of one test.
#[derive(Clone, Debug)]
pub struct TestResult {
    /// The test's name, with ` [seed N]` when several seeds run.
    pub name: String,
    pub suite: String,
    pub seed: u64,
    pub verdict: Verdict,
    pub instructions: u64,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub time: Duration,
    /// The kept trace of a failure (`--record-failures`).
    pub trace: Option<PathBuf>,
}

impl TestResult {
    pub fn passed(&self) -> bool {
        self.verdict == Verdict::Passed
    }

    /// Why the run failed, if it did (flaky or not).
    pub fn failure(&self) -> Option<&str> {
        match &self.verdict {
            Verdict::Failed(why) | Verdict::Flaky(why) => Some(why),
            Verdict::Passed | Verdict::Skipped(_) => None,
        }
    }

    /// The line `warden test` prints (no wall time in it, so that the output of a run does
    /// not depend on the load of the machine).
    pub fn line(&self) -> String {
        match &self.verdict {
            Verdict::Passed => format!("ok {} ({} instructions)", self.name, self.instructions),
            Verdict::Skipped(why) => format!("skipped {}: {why}", self.name),
            Verdict::Failed(reason) | Verdict::Flaky(reason) => {
                let tag = if matches!(self.verdict, Verdict::Flaky(_)) { "FLAKY" } else { "FAIL" };
                let mut l = format!("{tag} {}: {reason}", self.name);
                if let Some(t) = &self.trace {
                    l.push_str(&format!("; replay: warden replay {}", shell_quote(&t.display().to_string())));
                }
                l
            }
        }
    }
}

/// `s` as one shell word.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-+=:,@".contains(&b)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Totals of a test run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub passed: usize,
    pub failed: usize,
    /// Failed, then passed on a retry (not counted in `failed`).
    pub flaky: usize,
    pub skipped: usize,
    /// Guest instructions of all runs.
    pub instructions: u64,
    /// Decoded blocks the guests took from each other and decoded themselves.
    pub shared_code: emu::SharedCodeStats,
}

impl Summary {
    pub fn add(&mut self, r: &TestResult) {
        match r.verdict {
            Verdict::Passed => self.passed += 1,
            Verdict::Failed(_) => self.failed += 1,
            Verdict::Skipped(_) => self.skipped += 1,
            Verdict::Flaky(_) => self.flaky += 1,
        }
        self.instructions += r.instructions;
    }

    pub fn line(&self) -> String {
        let flaky = if self.flaky > 0 { format!(", {} flaky", self.flaky) } else { String::new() };
        format!("{} passed, {} failed{flaky}, {} skipped", self.passed, self.failed, self.skipped)
    }

    /// The run failed: a test failed or was flaky (a race is a bug; its seed reproduces it).
    pub fn failed(&self) -> bool {
        self.failed + self.flaky > 0
    }
}

// --- discovery -----------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    image: Option<PathBuf>,
    root: Option<PathBuf>,
    budget: Option<u64>,
    env: Option<Vec<String>>,
    /// libtest binaries (host paths, relative to the manifest) whose tests join the run.
    #[serde(default)]
    libtest: Vec<PathBuf>,
    /// GoogleTest binaries, likewise.
    #[serde(default)]
    gtest: Vec<PathBuf>,
    #[serde(default, rename = "test")]
    tests: Vec<toml::Spanned<ManifestTest>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum CommandLine {
    Line(String),
    Words(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestTest {
    name: Option<String>,
    /// Optional here so that a test without it is reported at its own line.
    run: Option<CommandLine>,
    status: Option<i32>,
    stdout: Option<String>,
    stdin: Option<String>,
    budget: Option<u64>,
    env: Option<Vec<String>>,
}

fn is_elf(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut magic)).is_ok() && magic == *b"\x7fELF"
}

fn base_spec(config: &TestConfig, name: String, program: String, args: Vec<String>) -> TestSpec {
    TestSpec {
        name,
        suite: "warden".into(),
        format: None,
        ignored: false,
        root: config.base.root.clone(),
        extra_files: Arc::new(Vec::new()),
        program,
        args,
        env: config.base.env.clone(),
        stdin: Vec::new(),
        status: 0,
        stdout: None,
        budget: None,
    }
}

/// Splits a command line into words as a POSIX shell would for plain words: whitespace
/// separates, '...' and "..." quote, a backslash escapes the next character (not inside '...').
pub fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err("unterminated '".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => cur.push(chars.next().ok_or("unterminated \"")?),
                        Some(c) => cur.push(c),
                        None => return Err("unterminated \"".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                cur.push(chars.next().ok_or("trailing backslash")?);
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

/// Reads a manifest file into tests.
pub fn load_manifest(path: &Path, config: &TestConfig) -> Result<Vec<TestSpec>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read manifest {}: {e}", path.display()))?;
    let line_of = |at: usize| text.as_bytes()[..at.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1;
    let m: Manifest = toml::from_str(&text).map_err(|e| {
        let line = e.span().map(|s| format!(":{}", line_of(s.start))).unwrap_or_default();
        let message = e.message().lines().next().unwrap_or("malformed manifest");
        format!("bad manifest {}{line}: {}", path.display(), guest_kernel::escape_controls(message))
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let root = match (m.image, m.root) {
        (Some(_), Some(_)) => return Err(format!("bad manifest {}: both image and root", path.display())),
        (Some(i), None) => Root::Image(dir.join(i)),
        (None, Some(r)) => Root::Dir(dir.join(r)),
        (None, None) => config.base.root.clone(),
    };
    if m.tests.is_empty() && m.libtest.is_empty() && m.gtest.is_empty() {
        return Err(format!(
            "{}: no tests in the manifest (add a [[test]] table with run = \"PROGRAM ARGS\", or libtest = [\"BIN\"])",
            path.display()
        ));
    }
    let mut tests = Vec::new();
    for (format, bins) in [(Format::Libtest, &m.libtest), (Format::Gtest, &m.gtest)] {
        // Host paths relative to the manifest, unless the manifest names its own root.
        let bins: Vec<String> = bins
            .iter()
            .map(|b| if root == Root::Default { dir.join(b) } else { b.clone() }.display().to_string())
            .collect();
        let mut c = config.clone();
        c.base.env = m.env.clone().unwrap_or_else(|| config.base.env.clone());
        c.base.root = root.clone();
        for mut t in discover_binaries(format, &bins, &c)? {
            t.budget = m.budget;
            tests.push(t);
        }
    }
    for t in m.tests {
        let at = format!("bad manifest {}:{}", path.display(), line_of(t.span().start));
        let t = t.into_inner();
        let words = match t.run {
            Some(CommandLine::Line(l)) => split_words(&l).map_err(|e| format!("{at}: {e}"))?,
            Some(CommandLine::Words(w)) => w,
            None => return Err(format!("{at}: this test has no `run` (the command, e.g. run = \"/bin/ls /\")")),
        };
        let Some((program, args)) = words.split_first() else {
            return Err(format!("{at}: this test has an empty `run`"));
        };
        let name = t.name.unwrap_or_else(|| words.join(" "));
        let mut spec = base_spec(config, name, program.clone(), args.to_vec());
        spec.root = root.clone();
        spec.env = t.env.or_else(|| m.env.clone()).unwrap_or_else(|| config.base.env.clone());
        spec.stdin = t.stdin.unwrap_or_default().into_bytes();
        spec.status = t.status.unwrap_or(0);
        spec.stdout = t.stdout.map(String::into_bytes);
        spec.budget = t.budget.or(m.budget);
        tests.push(spec);
    }
    Ok(tests)
}

fn host_program(config: &TestConfig, path: &Path) -> Result<TestSpec, String> {
    let data = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "test".into());
    let guest = format!("{HOST_TESTS_DIR}/{file_name}");
    let mut spec = base_spec(config, path.display().to_string(), guest.clone(), Vec::new());
    spec.extra_files = Arc::new(vec![ExtraFile { path: guest, mode: 0o755, data: Arc::new(data) }]);
    Ok(spec)
}

/// Turns command-line PATHS into tests (see the module note); no PATHS means `/bin/tests`.
pub fn discover(paths: &[String], config: &TestConfig) -> Result<Vec<TestSpec>, String> {
    let default = ["/bin/tests".to_string()];
    let paths = if paths.is_empty() { &default[..] } else { paths };
    let vfs = open_root(&config.base.root).map_err(|e| e.to_string())?;
    let mut tests = Vec::new();
    for p in paths {
        let host = Path::new(p);
        if p.ends_with(".toml") && host.is_file() {
            tests.extend(load_manifest(host, config)?);
            continue;
        }
        let guest_path = if p.starts_with('/') { p.clone() } else { format!("/{}", p.trim_start_matches("./")) };
        if let Ok(st) = vfs.stat_path(guest_path.as_bytes()) {
            if st.st_mode & MODE_TYPE == MODE_FILE {
                tests.push(base_spec(config, guest_path.clone(), guest_path, Vec::new()));
            } else {
                let mut names = vfs.list_dir(guest_path.as_bytes()).map_err(|e| format!("{p}: {e}"))?;
                names.sort();
                let before = tests.len();
                for n in names {
                    let full = format!("{}/{}", guest_path.trim_end_matches('/'), String::from_utf8_lossy(&n));
                    let Ok(st) = vfs.stat_path(full.as_bytes()) else { continue };
                    if st.st_mode & MODE_TYPE == MODE_FILE && st.st_mode & 0o111 != 0 {
                        tests.push(base_spec(config, full.clone(), full, Vec::new()));
                    }
                }
                if tests.len() == before {
                    return Err(format!("{p}: no tests found (no executable files in this guest directory)"));
                }
            }
            continue;
        }
        if host.is_file() {
            if !is_elf(host) {
                return Err(format!("{p}: neither a manifest (.toml) nor an ELF program"));
            }
            tests.push(host_program(config, host)?);
        } else if host.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(host)
                .map_err(|e| format!("cannot read {p}: {e}"))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|e| e.is_file() && is_elf(e))
                .collect();
            if entries.is_empty() {
                return Err(format!("{p}: no tests found (a directory of tests holds ELF programs)"));
            }
            entries.sort();
            for e in entries {
                tests.push(host_program(config, &e)?);
            }
        } else {
            return Err(format!("{p}: no such guest or host path"));
        }
    }
    make_names_unique(&mut tests);
    Ok(tests)
}

/// Names must be unique (they name traces and JUnit cases): a repeated name gets ` #2`...
pub fn make_names_unique(tests: &mut [TestSpec]) {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for t in tests {
        let n = seen.entry(t.name.clone()).or_insert(0);
        *n += 1;
        if *n > 1 {
            t.name = format!("{} #{}", t.name, n);
        }
    }
}

/// The tests of libtest or GoogleTest binaries, one [`TestSpec`] per test, named
/// `LABEL TEST` (see [`testfmt::binary_label`]). With the default root a binary is a host
/// file, run on the host's root (`--root /`, where its shared libraries are); with
/// `--root`/`--image` it is a path in that root. Listing runs the binary in a guest too.
pub fn discover_binaries(format: Format, bins: &[String], config: &TestConfig) -> Result<Vec<TestSpec>, String> {
    let mut tests = Vec::new();
    for bin in bins {
        let (root, program) = if config.base.root == Root::Default {
            let host = Path::new(bin)
                .canonicalize()
                .map_err(|e| format!("{} {bin}: {}", format.option(), crate::host::describe_io_error(&e)))?;
            if !is_elf(&host) {
                return Err(format!("{} {bin}: not an ELF program", format.option()));
            }
            (Root::Dir(PathBuf::from("/")), host.display().to_string())
        } else {
            (config.base.root.clone(), bin.clone())
        };
        let label = testfmt::binary_label(Path::new(bin));
        let mut spec = base_spec(config, label.clone(), program, Vec::new());
        spec.root = root;
        spec.suite = label.clone();
        let mut outputs = Vec::new();
        for args in format.list_args() {
            spec.args = args.iter().map(|a| a.to_string()).collect();
            let run = run_guest(&spec, config, 0, None);
            match judge(&spec, config.default_budget, &run.outcome, &run.stdout, &run.stderr) {
                None => outputs.push(run.stdout),
                Some(why) => return Err(format!("{} {bin}: listing its tests failed: {why}", format.option())),
            }
        }
        let listed = format.parse_list(&outputs).map_err(|e| format!("{} {bin}: {e}", format.option()))?;
        for t in listed {
            let mut s = spec.clone();
            s.name = format!("{label} {}", t.name);
            s.args = format.test_args(&t.name);
            s.format = Some(format);
            s.ignored = t.ignored;
            tests.push(s);
        }
    }
    Ok(tests)
}

/// Keeps the tests whose name contains one of `filters` (all when there are none) and none
/// of `skip`.
pub fn select(tests: Vec<TestSpec>, filters: &[String], skip: &[String]) -> Vec<TestSpec> {
    tests
        .into_iter()
        .filter(|t| filters.is_empty() || filters.iter().any(|f| t.name.contains(f.as_str())))
        .filter(|t| !skip.iter().any(|f| t.name.contains(f.as_str())))
        .collect()
}

// --- running -------------------------------------------------------------------------

/// The options a test runs with.
pub fn run_options(spec: &TestSpec, config: &TestConfig, seed: u64) -> RunOptions {
    RunOptions {
        root: spec.root.clone(),
        env: spec.env.clone(),
        program: Some(spec.program.clone()),
        args: spec.args.clone(),
        budget: Some(spec.budget.unwrap_or(config.default_budget)),
        seed,
        quantum: config.base.quantum,
        limits: config.base.limits.clone(),
        tier: config.base.tier,
        ..RunOptions::default()
    }
}

fn describe_status(status: i32) -> String {
    if status > 128 {
        let sig = status - 128;
        match warden_abi::signal_name(sig as usize) {
            Some(name) => format!("killed by signal {sig} (SIG{name})"),
            None => format!("killed by signal {sig}"),
        }
    } else {
        format!("exit status {status}")
    }
}

fn snippet(bytes: &[u8]) -> String {
    const MAX: usize = 80;
    let s = String::from_utf8_lossy(bytes);
    let mut out: String = s.chars().take(MAX).collect::<String>().escape_debug().to_string();
    if s.chars().count() > MAX {
        out.push_str("...");
    }
    format!("\"{out}\"")
}

/// Why a run failed its expectations, if it did (the test binary's own report aside).
fn judge(
    spec: &TestSpec,
    budget: u64,
    outcome: &Result<RunOutcome, String>,
    stdout: &[u8],
    stderr: &[u8],
) -> Option<String> {
    let hint = match spec.format {
        Some(f) => f.failure_hint(stdout, stderr),
        None => String::from_utf8_lossy(stderr)
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(|l| format!("stderr: {}", snippet(l.as_bytes()))),
    };
    let with_hint = |mut s: String| {
        if let Some(h) = &hint {
            s.push_str(&format!(" ({h})"));
        }
        s
    };
    match outcome {
        Err(e) => Some(e.clone()),
        Ok(RunOutcome::BudgetExhausted) => Some(format!("instruction budget of {budget} exhausted")),
        Ok(RunOutcome::Deadlock) => Some("deadlock: every thread blocked for good".to_string()),
        Ok(o) if o.exit_status() != spec.status => {
            Some(with_hint(format!("{}, expected {}", describe_status(o.exit_status()), describe_status(spec.status))))
        }
        Ok(_) => match &spec.stdout {
            Some(want) if want.as_slice() != stdout => {
                Some(format!("stdout differs: expected {}, got {}", snippet(want), snippet(stdout)))
            }
            _ => None,
        },
    }
}

/// A file-system-safe version of a test name.
pub fn trace_file_name(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' })
        .collect::<String>()
        .trim_matches('_')
        .to_string();
    if s.is_empty() {
        s = "test".into();
    }
    s.truncate(150);
    s + ".trace"
}

/// One guest run of a test, as it came out.
struct Captured {
    outcome: Result<RunOutcome, String>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    instructions: u64,
    /// With `--record-failures`: the trace written and where to keep it on failure.
    trace: Option<(PathBuf, PathBuf)>,
}

/// Runs `spec` once in a fresh kernel, recorded to `keep_as` if given.
fn run_guest(spec: &TestSpec, config: &TestConfig, seed: u64, keep_as: Option<PathBuf>) -> Captured {
    let opts = run_options(spec, config, seed);
    let (console, out) = CaptureConsole::new(&spec.stdin);
    let mut instructions = 0;
    let mut trace = None;
    let outcome: Result<RunOutcome, String> = match keep_as {
        Some(final_path) => {
            let partial = final_path.with_extension("trace.partial");
            let r = crate::record::record(&opts, &spec.extra_files, Box::new(console), &partial);
            trace = Some((partial, final_path));
            r.map(|(o, stats)| {
                instructions = stats.instructions;
                o
            })
            .map_err(|e| e.to_string())
        }
        None => (|| {
            let vfs = open_root(&opts.root).map_err(|e| e.to_string())?;
            add_files(&vfs, &spec.extra_files)?;
            let mut k = crate::boot_with_vfs(&opts, vfs, Box::new(console)).map_err(|e| e.to_string())?;
            let o = k.run();
            instructions = k.stats().instructions;
            Ok(o)
        })(),
    };
    let captured = std::mem::take(&mut *out.borrow_mut());
    Captured { outcome, stdout: captured.stdout, stderr: captured.stderr, instructions, trace }
}

/// Runs one test with one seed (inside the calling thread).
pub fn run_one(spec: &TestSpec, config: &TestConfig, seed: u64, display_name: String) -> TestResult {
    let start = Instant::now();
    let result = |verdict, run: Option<Captured>| {
        let run = run.unwrap_or(Captured {
            outcome: Ok(RunOutcome::Exited(0)),
            stdout: Vec::new(),
            stderr: Vec::new(),
            instructions: 0,
            trace: None,
        });
        let kept = match run.trace {
            Some((partial, final_path)) => {
                if matches!(verdict, Verdict::Failed(_) | Verdict::Flaky(_))
                    && std::fs::rename(&partial, &final_path).is_ok()
                {
                    Some(final_path)
                } else {
                    let _ = std::fs::remove_file(&partial);
                    None
                }
            }
            None => None,
        };
        TestResult {
            name: display_name.clone(),
            suite: spec.suite.clone(),
            seed,
            verdict,
            instructions: run.instructions,
            stdout: run.stdout,
            stderr: run.stderr,
            time: start.elapsed(),
            trace: kept,
        }
    };
    if spec.ignored {
        return result(Verdict::Skipped("ignored".into()), None);
    }
    let keep_as = config.record_failures.as_deref().map(|d| d.join(trace_file_name(&display_name)));
    let run = run_guest(spec, config, seed, keep_as);
    let budget = spec.budget.unwrap_or(config.default_budget);
    let verdict = match judge(spec, budget, &run.outcome, &run.stdout, &run.stderr) {
        Some(why) => Verdict::Failed(why),
        None => match spec.format.map(|f| f.report(&run.stdout)) {
            None | Some(Report::Passed) => Verdict::Passed,
            Some(Report::Skipped(why)) => Verdict::Skipped(why),
            Some(Report::Failed(why)) => Verdict::Failed(why),
        },
    };
    result(verdict, Some(run))
}

/// With `--retries N`, classifies a failed run: re-run with the same seed (a deterministic
/// failure fails again; one that then passes depends on something outside the guest), then
/// with seeds SEED+1..=SEED+N. Failing with every one: failing. Passing with some: flaky under
/// schedule, with the seeds that fail and pass named so either replays.
fn retry(spec: &TestSpec, config: &TestConfig, mut first: TestResult) -> TestResult {
    let Verdict::Failed(why) = &first.verdict else { return first };
    if config.retries == 0 {
        return first;
    }
    let quiet = TestConfig { record_failures: None, ..config.clone() };
    let seed = first.seed;
    let passes = |s: u64| run_one(spec, &quiet, s, first.name.clone()).passed();
    let n = u64::from(config.retries);
    first.verdict = if passes(seed) {
        Verdict::Flaky(format!(
            "{why}; passed when re-run with the same seed {seed}: the test depends on something outside the guest"
        ))
    } else {
        let passing: Vec<String> =
            (1..=n).map(|k| seed.wrapping_add(k)).filter(|&s| passes(s)).map(|s| format!("seed {s}")).collect();
        let others = match n {
            1 => format!("seed {}", seed.wrapping_add(1)),
            _ => format!("seeds {}..={}", seed.wrapping_add(1), seed.wrapping_add(n)),
        };
        if passing.is_empty() {
            Verdict::Failed(format!("{why}; failing: failed again with seed {seed} and with {others}"))
        } else {
            Verdict::Flaky(format!(
                "{why}; flaky under schedule: fails with seed {seed} (again when re-run), passed with {} of {others}",
                passing.join(", ")
            ))
        }
    };
    first
}

/// Runs every test with every seed on `config.jobs` threads; prints one line per run (in
/// test order) and the summary line to `out`; writes JUnit XML if asked.
pub fn run_tests(
    tests: &[TestSpec],
    config: &TestConfig,
    out: &mut dyn Write,
) -> Result<(Summary, Vec<TestResult>), String> {
    if let Some(dir) = &config.record_failures {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let seeds = if config.seeds.is_empty() { vec![0] } else { config.seeds.clone() };
    let many_seeds = seeds.len() > 1;
    let work: Vec<(usize, u64, String)> = tests
        .iter()
        .enumerate()
        .flat_map(|(i, t)| {
            seeds
                .iter()
                .map(move |&s| (i, s, if many_seeds { format!("{} [seed {s}]", t.name) } else { t.name.clone() }))
        })
        .collect();
    let jobs =
        if config.jobs == 0 { std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) } else { config.jobs }
            .clamp(1, work.len().max(1));
    let work = Arc::new(work);
    let tests = Arc::new(tests.to_vec());
    let next = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::channel::<(usize, TestResult)>();
    let shared = config.share_code.then(emu::SharedCode::new);
    let mut handles = Vec::new();
    for _ in 0..jobs {
        let (work, tests, next, tx, config) = (work.clone(), tests.clone(), next.clone(), tx.clone(), config.clone());
        let shared = shared.clone();
        let h = std::thread::Builder::new()
            .stack_size(16 << 20)
            .spawn(move || {
                // Every guest of this thread decodes through the run's store.
                let _shared = shared.as_ref().map(|s| s.enter());
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((t, seed, name)) = work.get(i) else { return };
                    let spec = &tests[*t];
                    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        let first = run_one(spec, &config, *seed, name.clone());
                        retry(spec, &config, first)
                    }))
                    .unwrap_or_else(|_| TestResult {
                        name: name.clone(),
                        suite: spec.suite.clone(),
                        seed: *seed,
                        verdict: Verdict::Failed("warden itself panicked running this test (a bug)".into()),
                        instructions: 0,
                        stdout: Vec::new(),
                        stderr: Vec::new(),
                        time: Duration::ZERO,
                        trace: None,
                    });
                    if tx.send((i, result)).is_err() {
                        return;
                    }
                }
            })
            .map_err(|e| format!("cannot start a worker thread: {e}"))?;
        handles.push(h);
    }
    drop(tx);
    let mut slots: Vec<Option<TestResult>> = vec![None; work.len()];
    let mut printed = 0;
    let mut summary = Summary::default();
    let (started, mut done, mut failed) = (Instant::now(), 0, 0);
    for (i, r) in rx {
        done += 1;
        failed += usize::from(r.failure().is_some());
        slots[i] = Some(r);
        if config.progress {
            eprint!("\r\x1b[K");
        }
        while let Some(Some(r)) = slots.get(printed) {
            let _ = writeln!(out, "{}", r.line());
            let _ = out.flush();
            if config.show_failure_output && r.failure().is_some() {
                eprint!("{}", failure_output(r));
            }
            summary.add(r);
            printed += 1;
        }
        if config.progress {
            eprint!("{}", progress_line(done, slots.len(), failed, started.elapsed()));
        }
    }
    if config.progress {
        eprint!("\r\x1b[K");
    }
    for h in handles {
        let _ = h.join();
    }
    let results: Vec<TestResult> = slots.into_iter().flatten().collect();
    summary.shared_code = shared.map(|s| s.stats()).unwrap_or_default();
    let _ = writeln!(out, "{}", summary.line());
    let _ = out.flush();
    if let Some(path) = &config.junit {
        std::fs::write(path, junit_xml(&results)).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok((summary, results))
}

/// The terminal's progress line: runs done of all, failures so far, and the time left if
/// the rest go as fast as those done.
pub fn progress_line(done: usize, total: usize, failed: usize, elapsed: Duration) -> String {
    let left = elapsed.as_secs_f64() / done.max(1) as f64 * total.saturating_sub(done) as f64;
    format!("[{done}/{total}] {failed} failed, ETA {left:.0} s")
}

/// What `warden test` prints on stderr at the end: the slowest runs (wall time, for a
/// loaded CI machine can change it; instructions, which it cannot) and the totals.
pub fn closing_report(results: &[TestResult], wall: Duration) -> String {
    let mut by_time: Vec<&TestResult> = results.iter().filter(|r| r.instructions > 0).collect();
    by_time.sort_by(|a, b| b.time.cmp(&a.time).then(a.name.cmp(&b.name)));
    let slowest: Vec<String> = by_time
        .iter()
        .take(5)
        .map(|r| format!("{} ({:.2} s, {} instructions)", r.name, r.time.as_secs_f64(), r.instructions))
        .collect();
    let instructions: u64 = results.iter().map(|r| r.instructions).sum();
    let mut s = String::new();
    if !slowest.is_empty() {
        s.push_str(&format!("slowest: {}\n", slowest.join(", ")));
    }
    s.push_str(&format!("{} runs, {instructions} guest instructions in {:.2} s\n", results.len(), wall.as_secs_f64()));
    s
}

/// The captured output of a failed run, framed, and how to reproduce it.
pub fn failure_output(r: &TestResult) -> String {
    let mut s = String::new();
    for (stream, bytes) in [("stdout", &r.stdout), ("stderr", &r.stderr)] {
        if !bytes.is_empty() {
            s.push_str(&format!("--- {stream} of {} ---\n", r.name));
            s.push_str(&String::from_utf8_lossy(bytes));
            if !bytes.ends_with(b"\n") {
                s.push('\n');
            }
        }
    }
    if let Some(t) = &r.trace {
        let t = shell_quote(&t.display().to_string());
        s.push_str(&format!(
            "--- reproduce {}: warden replay {t}   (debug it: warden replay --gdb 127.0.0.1:1234 {t}) ---\n",
            r.name
        ));
    }
    s
}

// --- JUnit XML -----------------------------------------------------------------------

/// Escapes text for XML content and attribute values; characters XML 1.0 cannot carry
/// (most control characters) become U+FFFD.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// The JUnit XML report of `results`: one `<testsuite>` per suite (test binary), in order
/// of first appearance.
pub fn junit_xml(results: &[TestResult]) -> String {
    let count = |rs: &[&TestResult]| {
        let failures = rs.iter().filter(|r| r.failure().is_some()).count();
        let skipped = rs.iter().filter(|r| matches!(r.verdict, Verdict::Skipped(_))).count();
        let time: f64 = rs.iter().map(|r| r.time.as_secs_f64()).sum();
        format!("tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{time:.3}\"", rs.len())
    };
    let mut suites: Vec<(&str, Vec<&TestResult>)> = Vec::new();
    for r in results {
        match suites.iter_mut().find(|(s, _)| *s == r.suite) {
            Some((_, rs)) => rs.push(r),
            None => suites.push((&r.suite, vec![r])),
        }
    }
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    x.push_str(&format!("<testsuites name=\"warden test\" {}>\n", count(&results.iter().collect::<Vec<_>>())));
    for (suite, rs) in &suites {
        x.push_str(&format!("  <testsuite name=\"{}\" {}>\n", xml_escape(suite), count(rs)));
        for r in rs {
            junit_case(&mut x, r);
        }
        x.push_str("  </testsuite>\n");
    }
    x.push_str("</testsuites>\n");
    x
}

fn junit_case(x: &mut String, r: &TestResult) {
    x.push_str(&format!(
        "    <testcase name=\"{}\" classname=\"{}\" time=\"{:.3}\">\n",
        xml_escape(&r.name),
        xml_escape(&r.suite),
        r.time.as_secs_f64()
    ));
    x.push_str(&format!(
        "      <properties><property name=\"instructions\" value=\"{}\"/><property name=\"seed\" value=\"{}\"/></properties>\n",
        r.instructions, r.seed
    ));
    match &r.verdict {
        Verdict::Passed => {}
        Verdict::Skipped(why) => x.push_str(&format!("      <skipped message=\"{}\"/>\n", xml_escape(why))),
        Verdict::Failed(reason) | Verdict::Flaky(reason) => {
            let kind = if matches!(r.verdict, Verdict::Flaky(_)) { "flaky" } else { "failure" };
            let mut body = reason.clone();
            if let Some(t) = &r.trace {
                let t = shell_quote(&t.display().to_string());
                body.push_str(&format!(
                    "\nreplay with: warden replay {t}\ndebug with: warden replay --gdb 127.0.0.1:1234 {t}"
                ));
            }
            x.push_str(&format!(
                "      <failure message=\"{}\" type=\"{kind}\">{}</failure>\n",
                xml_escape(reason),
                xml_escape(&body)
            ));
        }
    }
    x.push_str(&format!("      <system-out>{}</system-out>\n", xml_escape(&String::from_utf8_lossy(&r.stdout))));
    x.push_str(&format!("      <system-err>{}</system-err>\n", xml_escape(&String::from_utf8_lossy(&r.stderr))));
    x.push_str("    </testcase>\n");
}

// --- sharding -----------------------------------------------------------------------

/// Parses `K/N` (shard K of N, counted from 1).
pub fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    let bad = || format!("bad --shard value {s:?}: expected K/N with 1 <= K <= N, e.g. 2/4");
    let (k, n) = s.split_once('/').ok_or_else(bad)?;
    let (k, n) = (k.trim().parse::<usize>().map_err(|_| bad())?, n.trim().parse::<usize>().map_err(|_| bad())?);
    if k == 0 || k > n {
        return Err(bad());
    }
    Ok((k, n))
}

/// The shard (0-based, of `total`) of each test. Without weights: a stable hash of the name
/// (xxh3), so every job agrees and a test keeps its shard when others come and go. With
/// weights (instructions per test name, from an earlier JUnit report): the longest-first
/// greedy partition, each test to the lightest shard so far; a test without a weight counts
/// as the median one. Both are pure functions of the names (and weights), so the N jobs of
/// a CI matrix, each computing its own share, cut one partition.
pub fn assign_shards(names: &[&str], total: usize, weights: Option<&BTreeMap<String, u64>>) -> Vec<usize> {
    let total = total.max(1);
    let Some(weights) = weights else {
        return names.iter().map(|n| (xxhash_rust::xxh3::xxh3_64(n.as_bytes()) % total as u64) as usize).collect();
    };
    let mut known: Vec<u64> = names.iter().filter_map(|n| weights.get(*n).copied()).collect();
    known.sort_unstable();
    let median = known.get(known.len() / 2).copied().unwrap_or(1);
    let weight = |n: &str| weights.get(n).copied().unwrap_or(median);
    let mut order: Vec<usize> = (0..names.len()).collect();
    order.sort_by(|&a, &b| weight(names[b]).cmp(&weight(names[a])).then(names[a].cmp(names[b])));
    let mut load = vec![0u64; total];
    let mut shard = vec![0; names.len()];
    for i in order {
        let lightest = (0..total).min_by_key(|&s| (load[s], s)).unwrap_or(0);
        load[lightest] += weight(names[i]);
        shard[i] = lightest;
    }
    shard
}

/// The tests of shard `index` (0-based) of `total`.
pub fn shard(
    tests: Vec<TestSpec>,
    index: usize,
    total: usize,
    weights: Option<&BTreeMap<String, u64>>,
) -> Vec<TestSpec> {
    let names: Vec<&str> = tests.iter().map(|t| t.name.as_str()).collect();
    let shards = assign_shards(&names, total, weights);
    tests.into_iter().zip(shards).filter(|(_, s)| *s == index).map(|(t, _)| t).collect()
}

/// Instructions per test name in a JUnit report written by `warden test` (the runs of a
/// test under several seeds add up).
pub fn junit_weights(path: &Path) -> Result<BTreeMap<String, u64>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let doc = roxmltree::Document::parse(&text).map_err(|e| format!("{}: not JUnit XML: {e}", path.display()))?;
    let mut weights = BTreeMap::new();
    for case in doc.descendants().filter(|n| n.has_tag_name("testcase")) {
        let Some(name) = case.attribute("name") else { continue };
        let name = match name.rsplit_once(" [seed ") {
            Some((base, rest)) if rest.ends_with(']') => base,
            _ => name,
        };
        let instructions = case
            .descendants()
            .find(|p| p.has_tag_name("property") && p.attribute("name") == Some("instructions"))
            .and_then(|p| p.attribute("value")?.parse::<u64>().ok())
            .unwrap_or(0);
        *weights.entry(name.to_string()).or_insert(0) += instructions;
    }
    Ok(weights)
}

/// One JUnit report of the test cases of several (one per shard), suites of the same name
/// joined; the cases are copied as they are and the counts recomputed from them.
pub fn merge_junit(inputs: &[PathBuf]) -> Result<String, String> {
    let texts: Vec<String> = inputs
        .iter()
        .map(|p| std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display())))
        .collect::<Result<_, _>>()?;
    #[derive(Default)]
    struct Suite {
        cases: String,
        tests: usize,
        failures: usize,
        errors: usize,
        skipped: usize,
        time: f64,
    }
    let mut suites: Vec<(String, Suite)> = Vec::new();
    for (path, text) in inputs.iter().zip(&texts) {
        let doc = roxmltree::Document::parse(text).map_err(|e| format!("{}: not JUnit XML: {e}", path.display()))?;
        for suite in doc.descendants().filter(|n| n.has_tag_name("testsuite")) {
            let name = suite.attribute("name").unwrap_or("warden").to_string();
            let at = match suites.iter().position(|(n, _)| *n == name) {
                Some(i) => i,
                None => {
                    suites.push((name, Suite::default()));
                    suites.len() - 1
                }
            };
            let s = &mut suites[at].1;
            for case in suite.children().filter(|n| n.has_tag_name("testcase")) {
                s.tests += 1;
                s.failures += usize::from(case.children().any(|n| n.has_tag_name("failure")));
                s.errors += usize::from(case.children().any(|n| n.has_tag_name("error")));
                s.skipped += usize::from(case.children().any(|n| n.has_tag_name("skipped")));
                s.time += case.attribute("time").and_then(|t| t.parse::<f64>().ok()).unwrap_or(0.0);
                s.cases.push_str("    ");
                s.cases.push_str(&text[case.range()]);
                s.cases.push('\n');
            }
        }
    }
    let counts = |t: usize, f: usize, e: usize, s: usize, time: f64| {
        format!("tests=\"{t}\" failures=\"{f}\" errors=\"{e}\" skipped=\"{s}\" time=\"{time:.3}\"")
    };
    let sum = |f: fn(&Suite) -> usize| suites.iter().map(|(_, s)| f(s)).sum::<usize>();
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    x.push_str(&format!(
        "<testsuites name=\"warden test\" {}>\n",
        counts(
            sum(|s| s.tests),
            sum(|s| s.failures),
            sum(|s| s.errors),
            sum(|s| s.skipped),
            suites.iter().map(|(_, s)| s.time).sum()
        )
    ));
    for (name, s) in &suites {
        x.push_str(&format!(
            "  <testsuite name=\"{}\" {}>\n{}  </testsuite>\n",
            xml_escape(name),
            counts(s.tests, s.failures, s.errors, s.skipped, s.time),
            s.cases
        ));
    }
    x.push_str("</testsuites>\n");
    Ok(x)
}

/// Parses `A..B` (B excluded), `A..=B` or `N` into seeds.
pub fn parse_seeds(s: &str) -> Result<Vec<u64>, String> {
    let bad = || format!("bad --seeds value {s:?}: expected N, A..B or A..=B");
    let num = |t: &str| t.trim().parse::<u64>().map_err(|_| bad());
    let (a, b) = if let Some((a, b)) = s.split_once("..=") {
        (num(a)?, num(b)?.checked_add(1).ok_or_else(bad)?)
    } else if let Some((a, b)) = s.split_once("..") {
        (num(a)?, num(b)?)
    } else {
        let n = num(s)?;
        (n, n + 1)
    };
    if b <= a {
        return Err(format!("--seeds {s}: the range is empty (A..B runs seeds A to B-1, so B must be greater than A)"));
    }
    if b - a > 1_000_000 {
        return Err(format!("--seeds {s}: more than a million seeds"));
    }
    Ok((a..b).collect())
}
