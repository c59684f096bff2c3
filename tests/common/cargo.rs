//! Building a test binary with cargo from inside a test (shared by several test files).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Runs `cargo test --no-run --offline` with `args` (in `dir`, if given) and returns the test
/// executable cargo reports.
pub fn test_executable(args: &[&OsStr], dir: Option<&Path>) -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["test", "--no-run", "--offline", "--message-format=json"]).args(args);
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    let out = cmd
        // The outer cargo's jobserver and target directory are not this build's.
        .env_remove("CARGO_MAKEFLAGS")
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .expect("cannot run cargo");
    assert!(out.status.success(), "cargo test --no-run {args:?} failed");
    let json = String::from_utf8_lossy(&out.stdout);
    let exe = json
        .lines()
        .filter(|l| l.contains("\"test\":true"))
        .find_map(|l| l.split_once("\"executable\":\"").and_then(|(_, rest)| rest.split_once('"')).map(|(p, _)| p))
        .unwrap_or_else(|| panic!("no test executable in cargo's output:\n{json}"));
    PathBuf::from(exe)
}
