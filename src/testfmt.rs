//! Test-binary formats: how `warden test --libtest` / `--gtest` list the tests of a Rust
//! (libtest) or GoogleTest binary, the command line that runs one of them alone, and how
//! the binary's own report of that one test is read.
//!
//! Why one guest per test: a test binary normally runs its tests on threads of one process,
//! so one test's crash, leak or race is charged to the others; run alone in a fresh guest
//! each test gets its own seed, budget and (with `--record-failures`) its own replayable
//! trace, as cargo-nextest does with host processes.
//!
//! - libtest: `BIN --list --format terse` prints `NAME: test` (or `: benchmark`, not run)
//!   per test, `--ignored` added lists only the `#[ignore]`d ones, which are reported as
//!   skipped. One test runs as `BIN --exact NAME --nocapture` (output straight to the
//!   captured guest stdout/stderr, like nextest); it passed when the exit status is 0 and
//!   libtest's `test result: ok. 1 passed` line is there (so a name that matched nothing,
//!   which libtest counts as success, fails instead).
//! - GoogleTest: `BIN --gtest_list_tests` prints `Suite.` lines followed by indented test
//!   names (a `  # GetParam() = ...` comment may follow either); `DISABLED_` tests are
//!   skipped. One test runs as `BIN --gtest_filter=Suite.Test`; it passed when the exit
//!   status is 0 and `[  PASSED  ] 1 test.` is printed, and was skipped (`GTEST_SKIP()`)
//!   when `[  SKIPPED ] 1 test` is.
//!
//! All listing text comes from the guest and is untrusted: a line that is not in the format
//! is an error naming it, never a panic.

/// A kind of test binary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Libtest,
    Gtest,
}

/// One test found in a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub name: String,
    /// `#[ignore]` (libtest) or `DISABLED_` (GoogleTest): reported as skipped, not run.
    pub ignored: bool,
}

/// What the binary's own report says about the one test it ran (exit status 0 only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Report {
    Passed,
    Skipped(String),
    Failed(String),
}

impl Format {
    pub fn option(self) -> &'static str {
        match self {
            Format::Libtest => "--libtest",
            Format::Gtest => "--gtest",
        }
    }

    /// The argument lists of the listing runs (their stdouts go to [`Format::parse_list`]).
    pub fn list_args(self) -> &'static [&'static [&'static str]] {
        match self {
            Format::Libtest => &[&["--list", "--format", "terse"], &["--list", "--format", "terse", "--ignored"]],
            Format::Gtest => &[&["--gtest_list_tests"]],
        }
    }

    /// The tests of the listing runs' stdouts, in listed order.
    pub fn parse_list(self, outputs: &[Vec<u8>]) -> Result<Vec<Listed>, String> {
        match self {
            Format::Libtest => parse_libtest_list(outputs),
            Format::Gtest => parse_gtest_list(outputs.first().map(Vec::as_slice).unwrap_or_default()),
        }
    }

    /// The arguments that run test `name` alone.
    pub fn test_args(self, name: &str) -> Vec<String> {
        match self {
            Format::Libtest => vec!["--exact".into(), name.into(), "--nocapture".into()],
            Format::Gtest => vec![format!("--gtest_filter={name}"), "--gtest_color=no".into()],
        }
    }

    /// Reads the report of a run that exited with status 0.
    pub fn report(self, stdout: &[u8]) -> Report {
        let text = String::from_utf8_lossy(stdout);
        match self {
            Format::Libtest => {
                if text.lines().any(|l| l.starts_with("test result: ok. 1 passed;")) {
                    Report::Passed
                } else {
                    Report::Failed("exit status 0 but libtest did not report the test as passed".into())
                }
            }
            Format::Gtest => {
                if text.lines().any(|l| l.starts_with("[  SKIPPED ] 1 test")) {
                    // `FILE:LINE: Skipped`, then the message streamed into GTEST_SKIP(), if any.
                    let why = text
                        .lines()
                        .skip_while(|l| !l.ends_with(": Skipped"))
                        .nth(1)
                        .filter(|l| !l.trim().is_empty() && !l.starts_with('['))
                        .map(|l| format!(": {}", l.trim()))
                        .unwrap_or_default();
                    Report::Skipped(format!("GTEST_SKIP(){why}"))
                } else if text.lines().any(|l| l.starts_with("[  PASSED  ] 1 test.")) {
                    Report::Passed
                } else {
                    Report::Failed("exit status 0 but GoogleTest did not report the test as passed".into())
                }
            }
        }
    }

    /// The line that best says why a failed test failed (libtest: the panic message;
    /// GoogleTest: the first failed assertion), if the output has one.
    pub fn failure_hint(self, stdout: &[u8], stderr: &[u8]) -> Option<String> {
        let (text, marker) = match self {
            Format::Libtest => (String::from_utf8_lossy(stderr), "panicked at "),
            Format::Gtest => (String::from_utf8_lossy(stdout), ": Failure"),
        };
        let mut lines = text.lines();
        let at = lines.by_ref().find(|l| l.contains(marker))?;
        let at = match self {
            Format::Libtest => at.split_once(marker).map_or(at, |(_, place)| place).trim_end_matches(':'),
            Format::Gtest => at.trim_end_matches(": Failure"),
        };
        Some(match lines.find(|l| !l.trim().is_empty()) {
            Some(message) => format!("{at}: {}", message.trim()),
            None => at.to_string(),
        })
    }
}

fn parse_libtest_list(outputs: &[Vec<u8>]) -> Result<Vec<Listed>, String> {
    let tests = |out: &[u8]| -> Result<Vec<String>, String> {
        let mut names = Vec::new();
        for line in String::from_utf8_lossy(out).lines() {
            match line.rsplit_once(": ") {
                Some((name, "test")) => names.push(name.to_string()),
                Some((_, "benchmark" | "bench")) => {}
                // libtest prints nothing else with --format terse, but a binary that is not a
                // libtest one may print anything.
                _ => return Err(format!("not a libtest listing line: {line:?}")),
            }
        }
        Ok(names)
    };
    let all = tests(outputs.first().map(Vec::as_slice).unwrap_or_default())?;
    let ignored: std::collections::BTreeSet<String> =
        tests(outputs.get(1).map(Vec::as_slice).unwrap_or_default())?.into_iter().collect();
    Ok(all.into_iter().map(|name| Listed { ignored: ignored.contains(&name), name }).collect())
}

fn parse_gtest_list(out: &[u8]) -> Result<Vec<Listed>, String> {
    let strip = |l: &str| l.split_once("  #").map_or(l, |(a, _)| a).trim().to_string();
    let mut suite: Option<String> = None;
    let mut tests = Vec::new();
    for line in String::from_utf8_lossy(out).lines() {
        // gtest_main's own main() announces itself first.
        if line.trim().is_empty() || line.starts_with("Running main() from ") {
            continue;
        }
        if line.starts_with(' ') {
            let Some(s) = &suite else { return Err(format!("a test before any suite in the listing: {line:?}")) };
            let test = strip(line);
            let ignored = s.starts_with("DISABLED_") || s.contains("/DISABLED_") || test.starts_with("DISABLED_");
            tests.push(Listed { name: format!("{s}{test}"), ignored });
        } else {
            let s = strip(line);
            if !s.ends_with('.') {
                return Err(format!("not a GoogleTest listing line: {line:?}"));
            }
            suite = Some(s);
        }
    }
    Ok(tests)
}

/// The name a test binary's tests are reported under: its file name without the
/// `-0123456789abcdef` hash cargo adds to test binaries.
pub fn binary_label(path: &std::path::Path) -> String {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "test".into());
    match name.rsplit_once('-') {
        Some((stem, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => stem.to_string(),
        _ => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libtest_listing_marks_ignored_tests() {
        let all = b"a::one: test\nb::two: test\nbench_x: benchmark\n".to_vec();
        let ignored = b"b::two: test\n".to_vec();
        let l = Format::Libtest.parse_list(&[all, ignored]).unwrap();
        assert_eq!(
            l,
            [Listed { name: "a::one".into(), ignored: false }, Listed { name: "b::two".into(), ignored: true }]
        );
        assert!(Format::Libtest.parse_list(&[b"hello world\n".to_vec(), Vec::new()]).is_err());
    }

    #[test]
    fn gtest_listing_joins_suites_and_drops_comments() {
        let out = b"Running main() from gtest_main.cc\nMath.\n  Adds\n  DISABLED_Slow\nP/Param.  # TypeParam = int\n  Works/0  # GetParam() = 1\n";
        let l = Format::Gtest.parse_list(&[out.to_vec()]).unwrap();
        let names: Vec<(&str, bool)> = l.iter().map(|t| (t.name.as_str(), t.ignored)).collect();
        assert_eq!(names, [("Math.Adds", false), ("Math.DISABLED_Slow", true), ("P/Param.Works/0", false)]);
        assert!(Format::Gtest.parse_list(&[b"  orphan\n".to_vec()]).is_err());
        assert!(Format::Gtest.parse_list(&[b"garbage\n".to_vec()]).is_err());
    }

    #[test]
    fn reports_and_hints() {
        let ok = b"running 1 test\ntest a ... ok\n\ntest result: ok. 1 passed; 0 failed;\n";
        assert_eq!(Format::Libtest.report(ok), Report::Passed);
        let none = b"running 0 tests\n\ntest result: ok. 0 passed; 0 failed; 1 filtered out\n";
        assert!(matches!(Format::Libtest.report(none), Report::Failed(_)));
        let err = b"\nthread 'a' (2) panicked at src/lib.rs:4:26:\nboom\nnote: run with `RUST_BACKTRACE=1`\n";
        assert_eq!(Format::Libtest.failure_hint(b"", err).as_deref(), Some("src/lib.rs:4:26: boom"));
        let g = b"[ RUN      ] M.F\nm.cc:9: Failure\nExpected equality of these values:\n[  FAILED  ] M.F\n";
        assert_eq!(Format::Gtest.failure_hint(g, b"").as_deref(), Some("m.cc:9: Expected equality of these values:"));
        let skip = b"[ RUN      ] M.S\nm.cc:3: Skipped\nnot here\n[  SKIPPED ] M.S (0 ms)\n[  SKIPPED ] 1 test, listed below:\n";
        assert_eq!(Format::Gtest.report(skip), Report::Skipped("GTEST_SKIP(): not here".into()));
        assert_eq!(Format::Gtest.report(b"[  PASSED  ] 1 test.\n"), Report::Passed);
    }

    #[test]
    fn labels_drop_cargo_hashes() {
        assert_eq!(binary_label(std::path::Path::new("/t/deps/fx-4a99a53287a4b62f")), "fx");
        assert_eq!(binary_label(std::path::Path::new("/t/my-tests")), "my-tests");
    }
}
