//! `warden test --libtest` / `--gtest` on real test binaries: a small fixture crate
//! (tests/fixtures/libtest-crate: pass, fail, panic, should_panic, ignored, threaded and
//! racy tests) and this repository's own `warden-abi` unit tests, both built by cargo
//! (offline, once per process) into CARGO_TARGET_TMPDIR, and a GoogleTest suite
//! (tests/fixtures/gtest) built with g++ and the system's libgtest-dev, skipped when that is
//! missing (a failure under WARDEN_REQUIRE_TOOLS=1, where .ci/run installs it).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

mod common {
    pub mod cargo;
}

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/libtest-crate");

fn work_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("libtest")
}

/// Runs `cargo test --no-run` with `args` and returns the test executable it reports.
fn cargo_test_binary(args: &[&str], target_dir: &Path) -> PathBuf {
    let mut all: Vec<&std::ffi::OsStr> = vec!["--target-dir".as_ref(), target_dir.as_os_str()];
    all.extend(args.iter().map(std::ffi::OsStr::new));
    common::cargo::test_executable(&all, None)
}

/// The fixture crate's test binary (its sources are copied out first, so the build writes
/// nothing into the source tree).
fn fixture() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let src = work_dir().join("wfixture");
        std::fs::create_dir_all(src.join("src")).unwrap();
        for f in ["Cargo.toml", "src/lib.rs"] {
            let text = std::fs::read(Path::new(FIXTURE).join(f)).unwrap();
            if std::fs::read(src.join(f)).ok().as_ref() != Some(&text) {
                std::fs::write(src.join(f), text).unwrap();
            }
        }
        let manifest = src.join("Cargo.toml");
        cargo_test_binary(&["--manifest-path", manifest.to_str().unwrap()], &work_dir().join("target"))
    })
}

/// This repository's `warden-abi` unit-test binary.
fn abi_tests() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
        cargo_test_binary(&["--manifest-path", manifest, "-p", "warden-abi", "--lib"], &work_dir().join("abi-target"))
    })
}

/// The GoogleTest fixture, or `None` (SKIPPED) without g++ or libgtest-dev.
fn gtest_suite() -> Option<&'static Path> {
    static BIN: OnceLock<Option<PathBuf>> = OnceLock::new();
    BIN.get_or_init(|| {
        let found = Path::new("/usr/include/gtest/gtest.h").exists()
            && Command::new("g++").arg("--version").stdout(Stdio::null()).status().is_ok();
        if !found {
            assert!(
                std::env::var("WARDEN_REQUIRE_TOOLS").as_deref() != Ok("1"),
                "g++ or libgtest-dev not found but WARDEN_REQUIRE_TOOLS=1"
            );
            eprintln!("SKIPPED: g++ or libgtest-dev (/usr/include/gtest) not found");
            return None;
        }
        std::fs::create_dir_all(work_dir()).unwrap();
        let out = work_dir().join("gsuite");
        let status = Command::new("g++")
            .args(["-O1", "-pthread", "-o"])
            .arg(&out)
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gtest/suite.cc"))
            .args(["-lgtest", "-lgtest_main"])
            .status()
            .unwrap();
        assert!(status.success(), "g++ failed on the GoogleTest fixture");
        Some(out)
    })
    .as_deref()
}

fn warden(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_warden")).args(args).stdin(Stdio::null()).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn fresh_dir(tag: &str) -> PathBuf {
    let d = work_dir().join(format!("run-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn each_test_reported_on_its_own_with_junit() {
    let bin = fixture().to_str().unwrap();
    let dir = fresh_dir("junit");
    let xml_path = dir.join("report.xml");
    let (status, out, err) = warden(&["test", "--junit", xml_path.to_str().unwrap(), "--libtest", bin]);
    assert_eq!(status, 1, "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 8, "{out}");
    // libtest lists its tests sorted by name.
    assert!(
        lines[0].starts_with("FAIL wfixture tests::fails: exit status 101, expected exit status 0 (src/lib.rs:"),
        "{out}"
    );
    assert!(lines[0].contains("arithmetic is broken"), "the panic message is quoted: {out}");
    assert_eq!(lines[1], "skipped wfixture tests::ignored: ignored");
    assert!(
        lines[2].starts_with("FAIL wfixture tests::panics: exit status 101")
            && lines[2].contains("index out of bounds")
    );
    for (line, name) in lines[3..7].iter().zip(["passes", "racy_counter", "should_panic", "threaded"]) {
        assert!(line.starts_with(&format!("ok wfixture tests::{name} (")), "{out}");
    }
    assert_eq!(lines[7], "4 passed, 2 failed, 1 skipped");
    // A failure's captured output is shown (on stderr), a passing test's is not.
    assert!(err.contains("--- stdout of wfixture tests::panics ---\n"), "{err}");
    assert!(err.contains("about to index 3\n"), "{err}");
    assert!(err.contains("--- stderr of wfixture tests::fails ---\n"), "{err}");
    assert!(!err.contains("--- stdout of wfixture tests::passes"), "{err}");
    // Then the slowest runs and the totals.
    assert!(err.contains("\nslowest: wfixture tests::"), "{err}");
    assert!(err.ends_with(" s\n") && err.contains(" guest instructions in "), "{err}");

    let xml = std::fs::read_to_string(&xml_path).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("invalid XML ({e}):\n{xml}"));
    let suite = doc.descendants().find(|n| n.has_tag_name("testsuite")).unwrap();
    assert_eq!(suite.attribute("name"), Some("wfixture"));
    assert_eq!(
        [suite.attribute("tests"), suite.attribute("failures"), suite.attribute("skipped")],
        [Some("7"), Some("2"), Some("1")]
    );
    let case = |name: &str| {
        doc.descendants()
            .find(|n| n.has_tag_name("testcase") && n.attribute("name") == Some(&format!("wfixture tests::{name}")))
            .unwrap_or_else(|| panic!("no testcase {name}:\n{xml}"))
    };
    let child = |name: &str, tag: &str| case(name).children().find(|n| n.has_tag_name(tag));
    assert!(child("ignored", "skipped").is_some());
    assert!(child("passes", "failure").is_none() && child("passes", "skipped").is_none());
    assert!(child("fails", "system-err").unwrap().text().unwrap().contains("panicked at"));
    assert!(child("should_panic", "failure").is_none());
    assert_eq!(case("threaded").attribute("classname"), Some("wfixture"));
    let instructions = child("threaded", "properties")
        .and_then(|p| p.children().find(|n| n.attribute("name") == Some("instructions")))
        .and_then(|n| n.attribute("value")?.parse::<u64>().ok())
        .unwrap();
    assert!(instructions > 10_000, "{instructions}");
}

#[test]
fn filters_select_tests() {
    let bin = fixture().to_str().unwrap();
    let (status, out, _) = warden(&["test", "--libtest", bin, "-E", "tests::p", "--skip", "panics"]);
    assert_eq!(status, 0, "{out}");
    assert!(out.starts_with("ok wfixture tests::passes ("), "{out}");
    assert_eq!(out.lines().count(), 2, "{out}");
}

#[test]
fn seeds_expose_the_race() {
    let bin = fixture().to_str().unwrap();
    let (_, out, _) = warden(&["test", "--libtest", bin, "-E", "racy", "--seeds", "0..8"]);
    assert!(out.starts_with("ok wfixture tests::racy_counter [seed 0] ("), "round robin never loses an update: {out}");
    assert!(out.contains("FAIL wfixture tests::racy_counter [seed "), "no seed in 1..8 lost an update: {out}");
}

#[test]
fn this_repositorys_own_unit_tests_pass() {
    let bin = abi_tests();
    let native = Command::new(bin).args(["--list", "--format", "terse"]).output().unwrap();
    let count = String::from_utf8_lossy(&native.stdout).lines().filter(|l| l.ends_with(": test")).count();
    assert!(count > 5, "{count}");
    let (status, out, err) = warden(&["test", "--libtest", bin.to_str().unwrap()]);
    assert_eq!(status, 0, "{out}{err}");
    assert_eq!(out.lines().last(), Some(format!("{count} passed, 0 failed, 0 skipped").as_str()), "{out}");
}

#[test]
fn not_a_test_binary_is_one_clear_line() {
    let (status, out, err) = warden(&["test", "--libtest", "/bin/busybox"]);
    if Path::new("/bin/busybox").exists() {
        assert_eq!(status, 125, "{out}{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("warden: --libtest /bin/busybox: "), "{err}");
    }
    let (status, _, err) = warden(&["test", "--libtest", "/no/such/binary"]);
    assert_eq!(status, 125);
    assert_eq!(err.trim(), "warden: --libtest /no/such/binary: No such file or directory");
}

#[test]
fn shards_partition_the_tests_and_reports_merge() {
    let bin = fixture().to_str().unwrap();
    let list = |extra: &[&str], env: &[(&str, &str)]| {
        let out = Command::new(env!("CARGO_BIN_EXE_warden"))
            .args(["test", "--list", "--libtest", bin])
            .args(extra)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().lines().map(str::to_string).collect::<Vec<_>>()
    };
    let all = list(&[], &[]);
    assert_eq!(all.len(), 7, "{all:?}");
    let shards: Vec<Vec<String>> = (1..=3).map(|k| list(&["--shard", &format!("{k}/3")], &[])).collect();
    let mut union: Vec<String> = shards.concat();
    union.sort();
    assert_eq!(union, all, "the shards are disjoint and together are the whole suite");
    assert!(shards.iter().all(|s| !s.is_empty()), "{shards:?}");
    // Bazel's variables (index from 0) pick the same shard, and the status file is touched.
    let dir = fresh_dir("shards");
    let status_file = dir.join("shard-status");
    let env = [
        ("TEST_SHARD_INDEX", "1"),
        ("TEST_TOTAL_SHARDS", "3"),
        ("TEST_SHARD_STATUS_FILE", status_file.to_str().unwrap()),
    ];
    assert_eq!(list(&[], &env), shards[1]);
    assert!(status_file.exists());

    // One JUnit file per shard job, merged.
    let (a, b, merged) = (dir.join("a.xml"), dir.join("b.xml"), dir.join("all.xml"));
    warden(&["test", "--libtest", bin, "-E", "passes", "--junit", a.to_str().unwrap()]);
    warden(&["test", "--libtest", bin, "-E", "ignored", "--junit", b.to_str().unwrap()]);
    let (status, _, err) =
        warden(&["test", "--merge-junit", merged.to_str().unwrap(), a.to_str().unwrap(), b.to_str().unwrap()]);
    assert_eq!(status, 0, "{err}");
    let xml = std::fs::read_to_string(&merged).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("invalid XML ({e}):\n{xml}"));
    let suites: Vec<_> = doc.descendants().filter(|n| n.has_tag_name("testsuite")).collect();
    assert_eq!(suites.len(), 1, "one suite per test binary:\n{xml}");
    assert_eq!([suites[0].attribute("tests"), suites[0].attribute("skipped")], [Some("2"), Some("1")]);
}

#[test]
fn retries_tell_failing_from_flaky_and_failures_replay() {
    let bin = fixture().to_str().unwrap();
    let dir = fresh_dir("retries");
    let traces = dir.join("traces");
    let (status, out, err) = warden(&[
        "test",
        "--libtest",
        bin,
        "-E",
        "fails",
        "-E",
        "racy",
        "--seeds",
        "1",
        "--retries",
        "3",
        "--record-failures",
        traces.to_str().unwrap(),
    ]);
    assert_eq!(status, 1, "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("FAIL wfixture tests::fails: "), "{out}");
    assert!(lines[0].contains("; failing: failed again with seed 1 and with seeds 2..=4"), "{out}");
    assert!(lines[1].starts_with("FLAKY wfixture tests::racy_counter: "), "{out}");
    assert!(
        lines[1].contains("; flaky under schedule: fails with seed 1 (again when re-run), passed with seed"),
        "{out}"
    );
    assert_eq!(lines[2], "0 passed, 1 failed, 1 flaky, 0 skipped");
    assert!(err.contains("warden replay --gdb 127.0.0.1:1234 "), "{err}");
    // The command on the FAIL line reproduces the failure, lost update and all.
    let replay = lines[1].split_once("; replay: ").unwrap().1;
    let words: Vec<&str> = replay.split(' ').collect();
    assert_eq!(&words[..2], ["warden", "replay"], "{replay}");
    let (status, _, err) = warden(&words[1..]);
    assert_eq!(status, 101, "{err}");
    assert!(err.contains("lost updates"), "{err}");
}

#[test]
fn gtest_suite_each_test_on_its_own() {
    let Some(bin) = gtest_suite() else { return };
    let dir = fresh_dir("gtest");
    let xml_path = dir.join("report.xml");
    let (status, out, err) = warden(&["test", "--gtest", bin.to_str().unwrap(), "--junit", xml_path.to_str().unwrap()]);
    assert_eq!(status, 1, "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 9, "{out}");
    assert!(lines[0].starts_with("ok gsuite Math.Adds ("), "{out}");
    assert!(lines[1].starts_with("FAIL gsuite Math.Fails: exit status 1, expected exit status 0 ("), "{out}");
    assert!(lines[1].contains("suite.cc:14: Expected equality"), "the failed assertion is quoted: {out}");
    assert!(lines[2].starts_with("FAIL gsuite Math.Crashes: killed by signal 11 (SIGSEGV)"), "{out}");
    assert_eq!(lines[3], "skipped gsuite Math.Skips: GTEST_SKIP(): not on this machine");
    assert_eq!(lines[4], "skipped gsuite Math.DISABLED_Slow: ignored");
    assert!(lines[5].starts_with("ok gsuite Threads.Join ("), "{out}");
    assert!(lines[6].starts_with("ok gsuite Small/Even.IsEven/0 ("), "{out}");
    assert!(lines[7].starts_with("ok gsuite Small/Even.IsEven/1 ("), "{out}");
    assert_eq!(lines[8], "4 passed, 2 failed, 2 skipped");
    assert!(err.contains("checking arithmetic\n"), "{err}");
    let xml = std::fs::read_to_string(&xml_path).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("invalid XML ({e}):\n{xml}"));
    let suite = doc.descendants().find(|n| n.has_tag_name("testsuite")).unwrap();
    assert_eq!(
        [suite.attribute("name"), suite.attribute("tests"), suite.attribute("failures"), suite.attribute("skipped")],
        [Some("gsuite"), Some("8"), Some("2"), Some("2")]
    );
}

#[test]
fn a_manifest_names_test_binaries() {
    let dir = fresh_dir("manifest");
    let m = dir.join("suite.toml");
    let bin = fixture().display().to_string();
    let gtest = gtest_suite().map(|g| format!("gtest = [{:?}]\n", g.display().to_string())).unwrap_or_default();
    std::fs::write(
        &m,
        format!("budget = 50_000_000\nlibtest = [{bin:?}]\n{gtest}\n[[test]]\nname = \"true\"\nrun = \"true\"\n"),
    )
    .unwrap();
    let (status, out, err) = warden(&["test", "--list", m.to_str().unwrap()]);
    assert_eq!(status, 0, "{err}");
    let names: Vec<&str> = out.lines().collect();
    let gtests = if gtest.is_empty() { 0 } else { 8 };
    assert_eq!(names.len(), 8 + gtests, "{out}");
    // The binaries' tests first (libtest, then GoogleTest), then the [[test]] tables.
    assert!(names[..7].iter().all(|n| n.starts_with("wfixture tests::")), "{out}");
    assert!(names[7..7 + gtests].iter().all(|n| n.starts_with("gsuite ")), "{out}");
    assert_eq!(names[7 + gtests], "true");

    // Run one test of each kind from the manifest: each is reported in the JUnit file,
    // under its own binary.
    let xml_path = dir.join("report.xml");
    let (status, out, err) = warden(&[
        "test",
        "--junit",
        xml_path.to_str().unwrap(),
        m.to_str().unwrap(),
        "-E",
        "tests::passes",
        "-E",
        "Math.Fails",
        "-E",
        "true",
    ]);
    let failed = usize::from(!gtest.is_empty());
    assert_eq!(status, i32::from(failed > 0), "{out}{err}");
    assert!(out.starts_with("ok wfixture tests::passes ("), "{out}");
    assert_eq!(out.lines().last(), Some(format!("2 passed, {failed} failed, 0 skipped").as_str()), "{out}");
    let xml = std::fs::read_to_string(&xml_path).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("invalid XML ({e}):\n{xml}"));
    let cases: Vec<(&str, &str, bool)> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .map(|n| {
            let failed = n.children().any(|c| c.has_tag_name("failure"));
            (n.attribute("classname").unwrap(), n.attribute("name").unwrap(), failed)
        })
        .collect();
    let mut want = vec![("wfixture", "wfixture tests::passes", false), ("warden", "true", false)];
    if failed > 0 {
        want.insert(1, ("gsuite", "gsuite Math.Fails", true));
    }
    assert_eq!(cases, want, "{xml}");
    let budget = doc
        .descendants()
        .find(|n| n.has_tag_name("testcase") && n.attribute("name") == Some("wfixture tests::passes"))
        .and_then(|c| c.descendants().find(|p| p.attribute("name") == Some("instructions")))
        .and_then(|p| p.attribute("value")?.parse::<u64>().ok())
        .unwrap();
    assert!(budget > 0 && budget < 50_000_000, "{budget}");
}

/// Issue 19's done-when on a real crate: the `cargo test --no-run` binary of this
/// repository's `warden-abi`, split into two shard jobs whose JUnit reports merge back into
/// the whole suite, and a failure (a budget too small for the test to finish) whose printed
/// `warden replay` command reproduces it.
#[test]
fn this_repositorys_own_tests_shard_merge_and_replay() {
    let bin = abi_tests().to_str().unwrap();
    let dir = fresh_dir("abi");
    let (status, out, err) = warden(&["test", "--list", "--libtest", bin]);
    assert_eq!(status, 0, "{err}");
    let mut all: Vec<&str> = out.lines().collect();
    all.sort();
    assert!(all.len() > 5, "{out}");
    let reports: Vec<String> = (1..=2).map(|k| dir.join(format!("shard{k}.xml")).display().to_string()).collect();
    for (k, report) in reports.iter().enumerate() {
        let shard = format!("{}/2", k + 1);
        let (status, out, err) = warden(&["test", "--libtest", bin, "--shard", &shard, "--junit", report]);
        assert_eq!(status, 0, "shard {shard}: {out}{err}");
        assert!(out.lines().count() > 1, "shard {shard} is empty: {out}");
    }
    let merged = dir.join("all.xml");
    let (status, _, err) = warden(&["test", "--merge-junit", merged.to_str().unwrap(), &reports[0], &reports[1]]);
    assert_eq!(status, 0, "{err}");
    let xml = std::fs::read_to_string(&merged).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("invalid XML ({e}):\n{xml}"));
    let suite = doc.descendants().find(|n| n.has_tag_name("testsuite")).unwrap();
    let total = all.len().to_string();
    assert_eq!([suite.attribute("tests"), suite.attribute("failures")], [Some(total.as_str()), Some("0")]);
    let mut cases: Vec<&str> =
        doc.descendants().filter(|n| n.has_tag_name("testcase")).filter_map(|n| n.attribute("name")).collect();
    cases.sort();
    assert_eq!(cases, all, "the shards together ran every test once");

    // A test no other test's name contains, so that the filter picks it alone.
    let name = *all.iter().find(|n| all.iter().filter(|m| m.contains(**n)).count() == 1).unwrap();
    let traces = dir.join("traces");
    // The manifest's budget is the tests' (listing them runs with the default one).
    let manifest = dir.join("small-budget.toml");
    std::fs::write(&manifest, format!("budget = 100000\nlibtest = [{bin:?}]\n")).unwrap();
    let (status, out, err) =
        warden(&["test", manifest.to_str().unwrap(), "-E", name, "--record-failures", traces.to_str().unwrap()]);
    assert_eq!(status, 1, "{out}{err}");
    let line = out.lines().next().unwrap();
    assert!(line.starts_with(&format!("FAIL {name}: instruction budget of 100000 exhausted")), "{out}");
    let replay = line.split_once("; replay: ").unwrap_or_else(|| panic!("no replay command: {line}")).1;
    let words: Vec<&str> = replay.split(' ').collect();
    assert_eq!(&words[..2], ["warden", "replay"], "{replay}");
    let (status, _, err) = warden(&words[1..]);
    assert_eq!(status, 124, "the replay ends where the recording did, its budget exhausted: {err}");
}
