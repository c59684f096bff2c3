//! Record and replay: every guest program of the default image and multi-process runs replay
//! with byte-identical output and status; a modified binary and edited traces report the
//! right first divergence; truncated and corrupted traces give one clear error, never a panic.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::rc::Rc;

use guest_kernel::{CaptureConsole, CapturedOutput, RunOutcome};
use warden::record::{self, Event, ReplayError, ReplayOptions, TraceReader};
use warden::{Root, RunOptions};

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("warden-rr-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn opts(program: &str, args: &[&str]) -> RunOptions {
    RunOptions {
        program: Some(program.to_string()),
        args: args.iter().map(|s| s.to_string()).collect(),
        budget: Some(500_000_000),
        ..RunOptions::default()
    }
}

struct Recorded {
    outcome: RunOutcome,
    out: CapturedOutput,
}

fn record_run(o: &RunOptions, stdin: &[u8], trace: &Path) -> Recorded {
    let (console, out) = CaptureConsole::new(stdin);
    let (outcome, _) = record::record(o, &[], Box::new(console), trace).unwrap();
    let out = out.borrow().clone();
    Recorded { outcome, out }
}

fn replay_run(trace: &Path, root: Option<Root>) -> (Result<RunOutcome, ReplayError>, CapturedOutput, Vec<String>) {
    replay_with(trace, ReplayOptions { root, ..ReplayOptions::default() })
}

/// Replays even on a root that differs from the recorded one.
fn replay_forced(trace: &Path, root: Option<Root>) -> (Result<RunOutcome, ReplayError>, CapturedOutput, Vec<String>) {
    replay_with(trace, ReplayOptions { root, force: true, ..ReplayOptions::default() })
}

fn replay_with(trace: &Path, o: ReplayOptions) -> (Result<RunOutcome, ReplayError>, CapturedOutput, Vec<String>) {
    // Replay must not read stdin: give it none.
    let (console, out): (CaptureConsole, Rc<RefCell<CapturedOutput>>) = CaptureConsole::new(b"");
    let mut warnings = Vec::new();
    let r = record::replay(trace, &o, Box::new(console), &mut |w| warnings.push(w)).map(|r| r.outcome);
    let out = out.borrow().clone();
    (r, out, warnings)
}

fn assert_round_trip(dir: &Path, name: &str, o: &RunOptions, stdin: &[u8]) -> Recorded {
    let trace = dir.join(format!("{name}.trace"));
    let rec = record_run(o, stdin, &trace);
    if !o.real_time {
        // The recording itself behaves as a plain run.
        let (console, plain) = CaptureConsole::new(stdin);
        let plain_outcome = warden::run(o, Box::new(console)).unwrap();
        assert_eq!(plain_outcome, rec.outcome, "{name}: recording changed the outcome");
        assert_eq!(*plain.borrow(), rec.out, "{name}: recording changed the output");
    }
    let (r, out, warnings) = replay_run(&trace, None);
    assert!(warnings.is_empty(), "{name}: {warnings:?}");
    let outcome = r.unwrap_or_else(|e| panic!("{name}: replay failed: {e}"));
    assert_eq!(outcome, rec.outcome, "{name}");
    assert_eq!(out, rec.out, "{name}: output differs");
    rec
}

/// Arguments that make each default-image program do something (unknown programs run bare).
fn args_for(program: &str) -> (Vec<&'static str>, &'static [u8]) {
    match program {
        "cat" => (vec![], b"line one\nline two\n"),
        "wc" => (vec!["-l"], b"a\nb\nc\n"),
        "echo" => (vec!["hello", "world"], b""),
        "env" => (vec!["A=1", "/bin/env"], b""),
        "ls" => (vec!["/", "/bin"], b""),
        "mkdir" => (vec!["/tmp/newdir"], b""),
        "rm" => (vec!["/tmp/missing"], b""),
        "kill" => (vec!["-0", "1"], b""),
        "sleep" => (vec!["1"], b""),
        "sh" => (vec!["-c", "echo one | cat; echo two > /tmp/f; cat /tmp/f; exit 3"], b""),
        "crash" => (vec!["segv"], b""),
        "testprog" => (vec!["fork", "4"], b""),
        "selftest" => (vec![], b""),
        _ => (vec![], b""),
    }
}

#[test]
fn every_default_image_program_replays_exactly() {
    let dir = temp_dir("programs");
    for name in env!("WARDEN_GUEST_PROGRAMS").split(',') {
        let path = match name.strip_prefix("t_") {
            Some(t) => format!("/bin/tests/{t}"),
            None => format!("/bin/{name}"),
        };
        let (args, stdin) = args_for(name);
        assert_round_trip(&dir, name, &opts(&path, &args), stdin);
    }
    // init with the /etc/rc demo (several processes and pipelines).
    let rec =
        assert_round_trip(&dir, "init", &RunOptions { budget: Some(2_000_000_000), ..RunOptions::default() }, b"");
    assert!(String::from_utf8_lossy(&rec.out.stdout).contains("Hello"));
}

#[test]
fn multi_process_runs_and_crashes_replay_exactly() {
    let dir = temp_dir("multi");
    let cases: Vec<(&str, RunOptions, &[u8])> = vec![
        ("pipeline", opts("/bin/sh", &["-c", "ps; echo x | wc; cat /etc/rc | wc -c; testprog fork 6"]), b""),
        ("race", opts("testprog", &["race", "30"]), b""),
        ("race-seeded", RunOptions { seed: 7, ..opts("testprog", &["race", "30"]) }, b""),
        ("small-quantum", RunOptions { quantum: 997, ..opts("testprog", &["fork", "5"]) }, b""),
        ("stdin", opts("/bin/sh", &["-c", "cat | wc -c"]), b"twelve bytes"),
        ("segv", opts("testprog", &["segv"]), b""),
        ("budget", RunOptions { budget: Some(300_000), ..opts("testprog", &["spin"]) }, b""),
        ("selftest", opts("selftest", &[]), b""),
        // A guest supervisor tracing a pipeline, and the supervision suite (threads, races).
        ("guest-strace", opts("strace", &["/bin/sh", "-c", "echo hi | wc -c"]), b""),
    ];
    for (name, o, stdin) in cases {
        assert_round_trip(&dir, name, &o, stdin);
    }
    for mode in ["race-open", "race-write", "race-exec", "seed", "exc", "result", "fork"] {
        let rec = assert_round_trip(&dir, &format!("suptest-{mode}"), &opts("suptest", &[mode]), b"");
        assert!(!rec.out.stdout.is_empty(), "suptest {mode} printed nothing");
    }
}

#[test]
fn real_time_clock_readings_replay() {
    let dir = temp_dir("realtime");
    let o = RunOptions { real_time: true, ..opts("testprog", &["clock"]) };
    let rec = assert_round_trip(&dir, "clock", &o, b"");
    assert!(String::from_utf8_lossy(&rec.out.stdout).starts_with("monotonic "));
}

fn events(trace: &Path) -> Vec<(u64, Event)> {
    let (mut r, _) = TraceReader::open(trace).unwrap();
    let mut v = Vec::new();
    loop {
        let at = r.offset();
        match r.next_event().unwrap() {
            Some(e) => v.push((at, e)),
            None => return v,
        }
    }
}

fn syscalls(trace: &Path) -> Vec<(u64, u32, u64, u64)> {
    events(trace)
        .into_iter()
        .filter_map(|(at, e)| match e {
            Event::Syscall { tid, number, instructions, .. } => Some((at, tid, number, instructions)),
            _ => None,
        })
        .collect()
}

fn make_image(path: &Path, files: &[(&str, &[u8])]) {
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    for (name, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o755);
        h.set_cksum();
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.finish().unwrap();
}

#[test]
fn modified_binary_reports_the_first_divergent_syscall() {
    let dir = temp_dir("modified");
    let bin = std::fs::read(Path::new(env!("WARDEN_GUEST_BIN_DIR")).join("testprog")).unwrap();
    let good = dir.join("good.tar");
    make_image(&good, &[("bin/testprog", &bin)]);
    let o = RunOptions { root: Root::Image(good.clone()), ..opts("/bin/testprog", &["echo", "marker-text"]) };
    let trace = dir.join("echo.trace");
    let rec = record_run(&o, b"", &trace);
    assert_eq!(rec.out.stdout, b"marker-text\n");
    // Another program's bytes under the same name: the run differs from its first call.
    let other = std::fs::read(Path::new(env!("WARDEN_GUEST_BIN_DIR")).join("echo")).unwrap();
    let bad = dir.join("bad.tar");
    make_image(&bad, &[("bin/testprog", &other)]);
    // Without --force the replay stops where the guest first uses the changed file (the
    // exec of init, before any syscall), naming it.
    let (r, out, warnings) = replay_run(&trace, Some(Root::Image(bad.clone())));
    let msg = r.unwrap_err().to_string();
    assert!(
        msg.starts_with(
            "replay diverged before the first syscall: /bin/testprog changed since the recording: its size was"
        ),
        "{msg}"
    );
    assert!(out.stdout.is_empty() && warnings.is_empty());
    // With it, the replay says where the run diverges.
    let (r, out, warnings) = replay_forced(&trace, Some(Root::Image(bad)));
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("/bin/testprog changed since the recording"), "{warnings:?}");
    let msg = r.unwrap_err().to_string();
    assert!(msg.starts_with("replay diverged at syscall #"), "{msg}");
    assert!(!msg.contains('\n'), "{msg}");
    assert!(msg.contains("expected ") && msg.contains(", got "), "{msg}");
    assert!(msg.starts_with("replay diverged at syscall #1 (pid 1, "), "{msg}");
    assert_ne!(out.stdout, rec.out.stdout);

    // A one-byte change in the binary's data: the text printed after the arguments.
    let nl = bin.windows(11).position(|w| w == b"usage: test").expect("usage text in testprog");
    let mut patched = bin.clone();
    patched[nl] = b'U';
    let unused = dir.join("unused.tar");
    make_image(&unused, &[("bin/testprog", &patched)]);
    // The file the guest runs changed, so the replay stops there...
    let (r, _, _) = replay_run(&trace, Some(Root::Image(unused.clone())));
    assert!(r.unwrap_err().to_string().contains("/bin/testprog changed since the recording: its contents differ"));
    // ...but the usage text is never printed in this run: forced, the run does not differ.
    let (r, out, warnings) = replay_forced(&trace, Some(Root::Image(unused)));
    assert_eq!(warnings.len(), 1);
    assert_eq!(r.unwrap(), rec.outcome);
    assert_eq!(out.stdout, rec.out.stdout);
    // Other files of the image do not matter.
    let extra = dir.join("extra.tar");
    make_image(&extra, &[("bin/testprog", &bin), ("etc/unrelated", b"new")]);
    let (r, out, warnings) = replay_run(&trace, Some(Root::Image(extra)));
    assert_eq!((r.unwrap(), out, warnings.len()), (rec.outcome, rec.out.clone(), 0));
}

#[test]
fn modified_data_in_a_written_buffer_diverges_at_that_write() {
    let dir = temp_dir("modified-write");
    let bin = std::fs::read(Path::new(env!("WARDEN_GUEST_BIN_DIR")).join("testprog")).unwrap();
    let good = dir.join("good.tar");
    make_image(&good, &[("bin/testprog", &bin)]);
    let o = RunOptions { root: Root::Image(good.clone()), ..opts("/bin/testprog", &["fail"]) };
    let trace = dir.join("fail.trace");
    let rec = record_run(&o, b"", &trace);
    assert!(String::from_utf8_lossy(&rec.out.stderr).contains("failing on purpose"));
    let write_low = (warden_abi::SYS_WRITE as u64) & guest_kernel::record::NUMBER_BITS;
    let calls = syscalls(&trace);
    let (index, &(_, tid, _, instructions)) =
        calls.iter().enumerate().find(|(_, c)| c.2 == write_low).expect("a write was recorded");
    // Same length, different bytes: the program runs identically up to that write.
    let at = bin.windows(18).position(|w| w == b"failing on purpose").expect("message in testprog");
    let mut patched = bin.clone();
    patched[at..at + 7].copy_from_slice(b"FAILING");
    // Overwrite the recorded image file itself (the trace names its path).
    make_image(&good, &[("bin/testprog", &patched)]);
    let (r, _, warnings) = replay_forced(&trace, None);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let msg = r.unwrap_err().to_string();
    let want =
        format!("replay diverged at syscall #{} (pid {tid}, instruction {instructions}): expected write", index + 1);
    assert!(msg.starts_with(&want), "{msg}\nwant: {want}");
}

#[test]
fn edited_traces_report_the_edited_point() {
    let dir = temp_dir("edited");
    let trace = dir.join("sh.trace");
    let o = opts("/bin/sh", &["-c", "echo a | wc -c; cat"]);
    let rec = record_run(&o, b"typed input\n", &trace);
    assert_eq!(rec.out.stdout, b"2\ntyped input\n");
    let bytes = std::fs::read(&trace).unwrap();
    let calls = syscalls(&trace);
    assert!(calls.len() > 20);

    // Change the digest of the 10th syscall event: divergence at syscall #10.
    let (at, tid, _, instructions) = calls[9];
    let mut edited = bytes.clone();
    // The digest is the event's last 4 bytes, just before the next event.
    let next_at = calls[10].0 as usize;
    edited[next_at - 1] ^= 0xff;
    let p = dir.join("digest.trace");
    std::fs::write(&p, &edited).unwrap();
    let msg = replay_run(&p, None).0.unwrap_err().to_string();
    assert!(
        msg.starts_with(&format!("replay diverged at syscall #10 (pid {tid}, instruction {instructions})")),
        "{msg}"
    );
    let _ = at;

    // Change the recorded instruction count of the 15th call: the delta in a compact event's
    // tag byte, or a full event's delta varint.
    let (at15, tid15, _, _) = calls[14];
    let at15 = at15 as usize;
    let mut edited = bytes.clone();
    if edited[at15] & 0x80 != 0 {
        edited[at15] ^= 0x01;
    } else {
        let tid_len = 1; // tids here are < 128
        let number_len = 1 + usize::from(edited[at15 + 1 + tid_len] & 0x80 != 0);
        edited[at15 + 1 + tid_len + number_len] ^= 0x01;
    }
    let p = dir.join("icount.trace");
    std::fs::write(&p, &edited).unwrap();
    let msg = replay_run(&p, None).0.unwrap_err().to_string();
    assert!(msg.starts_with(&format!("replay diverged at syscall #15 (pid {tid15}, ")), "{msg}");

    // Change the recorded stdin: the guest gets other bytes and writes them out, so the
    // replay diverges at the write that echoes them (not before).
    let pos = bytes.windows(11).position(|w| w == b"typed input").unwrap();
    let mut edited = bytes.clone();
    edited[pos] = b'T';
    let p = dir.join("stdin.trace");
    std::fs::write(&p, &edited).unwrap();
    let (r, out, _) = replay_run(&p, None);
    let msg = r.unwrap_err().to_string();
    assert!(msg.contains("expected write"), "{msg}");
    assert_eq!(out.stdout, b"2\n", "output up to the divergence");
}

#[test]
fn truncated_and_corrupted_traces_fail_cleanly() {
    let dir = temp_dir("corrupt");
    let trace = dir.join("t.trace");
    record_run(&opts("/bin/sh", &["-c", "echo hi | cat; testprog fork 2"]), b"", &trace);
    let bytes = std::fs::read(&trace).unwrap();
    let p = dir.join("cut.trace");
    let mut cut_points: Vec<usize> = (0..bytes.len()).step_by(7).collect();
    cut_points.push(bytes.len() - 1);
    for cut in cut_points {
        std::fs::write(&p, &bytes[..cut]).unwrap();
        let err = replay_run(&p, None).0.expect_err("a truncated trace must fail").to_string();
        assert!(!err.contains('\n'), "{err}");
        assert!(
            err.contains("truncated") || err.contains("not a warden trace") || err.contains("corrupted"),
            "cut at {cut}: {err}"
        );
    }
    // Random corruption: any result but a panic (or a hang: the run has a budget).
    let mut seed = 0x1234_5678u64;
    for _ in 0..300 {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let mut b = bytes.clone();
        let pos = (seed >> 33) as usize % b.len();
        b[pos] ^= 1 << ((seed >> 20) % 8);
        std::fs::write(&p, &b).unwrap();
        if let Err(e) = replay_run(&p, None).0 {
            assert!(!e.to_string().contains('\n'), "{e}");
        }
    }
    // Trailing garbage after the end event.
    let mut b = bytes.clone();
    b.push(0x01);
    std::fs::write(&p, &b).unwrap();
    let err = replay_run(&p, None).0.unwrap_err().to_string();
    assert!(err.contains("corrupted") && err.contains("after the end event"), "{err}");
    // Not a trace; an unsupported version.
    std::fs::write(&p, b"hello").unwrap();
    assert!(replay_run(&p, None).0.unwrap_err().to_string().contains("not a warden trace"));
    let mut b = bytes.clone();
    b[8] = 9;
    std::fs::write(&p, &b).unwrap();
    assert!(replay_run(&p, None).0.unwrap_err().to_string().contains("version 9"));
}

fn warden(args: &[&str], stdin: &[u8]) -> (i32, Vec<u8>, String) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A command that does not read its input (replay) may exit before the write: a broken
    // pipe then is its answer, not the test's failure.
    match child.stdin.take().unwrap().write_all(stdin) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        r => r.unwrap(),
    }
    let out = child.wait_with_output().unwrap();
    (out.status.code().unwrap_or(-1), out.stdout, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn command_line_record_and_replay() {
    let dir = temp_dir("cli");
    let trace = dir.join("cli.trace");
    let t = trace.to_str().unwrap();
    let (status, out, err) =
        warden(&["record", "-o", t, "--seed", "3", "/bin/sh", "-c", "cat; exit 7"], b"from stdin\n");
    assert_eq!((status, out.as_slice()), (7, &b"from stdin\n"[..]), "{err}");
    // Replay does not read stdin: other input changes nothing.
    let (status2, out2, err2) = warden(&["replay", t], b"other input\n");
    assert_eq!((status2, out2), (7, out), "{err2}");
    assert!(err2.is_empty(), "{err2}");

    std::fs::write(dir.join("short.trace"), &std::fs::read(&trace).unwrap()[..40]).unwrap();
    let (status, _, err) = warden(&["replay", dir.join("short.trace").to_str().unwrap()], b"");
    assert_eq!(status, 125);
    assert_eq!(err.lines().count(), 1, "{err}");
    let (status, _, err) = warden(&["replay", "/nonexistent.trace"], b"");
    assert_eq!(status, 125);
    assert_eq!(err.lines().count(), 1, "{err}");
    let (status, _, _) = warden(&["record", "/bin/true"], b"");
    assert_eq!(status, 125, "-o is required");
}

#[test]
fn warden_test_keeps_traces_of_failures_only() {
    let dir = temp_dir("failures");
    let manifest = dir.join("m.toml");
    std::fs::write(
        &manifest,
        "[[test]]\nname = \"good\"\nrun = \"testprog pass\"\n\n[[test]]\nname = \"bad one\"\nrun = \"sh -c 'cat; exit 4'\"\nstdin = \"fed\"\n",
    )
    .unwrap();
    let traces = dir.join("traces");
    let (status, out, err) =
        warden(&["test", "--record-failures", traces.to_str().unwrap(), manifest.to_str().unwrap()], b"");
    let out = String::from_utf8_lossy(&out).into_owned();
    assert_eq!(status, 1, "{out}{err}");
    let kept: Vec<_> = std::fs::read_dir(&traces).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(kept, ["bad_one.trace"], "{out}");
    assert!(out.contains("; replay: warden replay "), "{out}");
    let (status, replayed, _) = warden(&["replay", traces.join("bad_one.trace").to_str().unwrap()], b"");
    assert_eq!((status, replayed.as_slice()), (4, &b"fed"[..]));
}

// --- host-directory roots, policies, overlays, Linux programs -------------------------

fn require_tools() -> bool {
    std::env::var("WARDEN_REQUIRE_TOOLS").is_ok_and(|v| v == "1")
}

/// Builds Linux fixture `name` (tests/fixtures/linux) with `compiler`; `None` (after a
/// SKIPPED line, or a panic under WARDEN_REQUIRE_TOOLS=1) if the compiler is missing.
fn build_fixture(name: &str, compiler: &str) -> Option<PathBuf> {
    let found = Command::new(compiler)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok();
    if !found {
        assert!(!require_tools(), "{compiler} not found but WARDEN_REQUIRE_TOOLS=1");
        eprintln!("SKIPPED: {compiler} not found");
        return None;
    }
    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("rr-linux");
    std::fs::create_dir_all(&out_dir).unwrap();
    let out = out_dir.join(format!("{name}.{compiler}.{}", std::process::id()));
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/linux").join(format!("{name}.c"));
    let status = Command::new(compiler)
        .args(["-static", "-O2", "-pthread", "-o"])
        .arg(&out)
        .arg(&src)
        .arg("-lm")
        .status()
        .expect("run compiler");
    assert!(status.success(), "{compiler} failed on {}", src.display());
    Some(out)
}

#[test]
fn linux_fixtures_record_and_replay_exactly() {
    // Processes (fork, exec, pipes), threads, signals, files and the clock, under glibc and
    // musl; each in a host-directory root holding just the program.
    let dir = temp_dir("linux");
    for compiler in ["gcc", "musl-gcc"] {
        for name in ["hello", "files", "procs", "signals", "threads", "timing"] {
            let Some(prog) = build_fixture(name, compiler) else { continue };
            let root = dir.join(format!("root-{name}-{compiler}"));
            std::fs::create_dir_all(&root).unwrap();
            std::fs::copy(&prog, root.join("prog")).unwrap();
            let personality = (name == "hello").then_some(guest_kernel::linux::Personality::Linux);
            let o = RunOptions {
                root: Root::Dir(root),
                personality,
                budget: Some(20_000_000_000),
                ..opts("/prog", &["one", "two words"])
            };
            let rec = assert_round_trip(&dir, &format!("{name}-{compiler}"), &o, b"");
            assert!(!rec.out.stdout.is_empty(), "{name} ({compiler}) printed nothing");
        }
    }
}

/// A host-directory root with testprog and a data file.
fn testprog_root(dir: &Path) -> PathBuf {
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy(Path::new(env!("WARDEN_GUEST_BIN_DIR")).join("testprog"), root.join("bin/testprog")).unwrap();
    std::fs::write(root.join("data.txt"), b"some data\n").unwrap();
    root
}

#[test]
fn a_changed_root_directory_diverges_only_at_a_file_the_guest_used() {
    let dir = temp_dir("rootdir");
    let root = testprog_root(&dir);
    std::fs::write(root.join("unused.txt"), b"never read\n").unwrap();
    std::fs::copy(Path::new(env!("WARDEN_GUEST_BIN_DIR")).join("cat"), root.join("bin/cat")).unwrap();
    let o = RunOptions { root: Root::Dir(root.clone()), ..opts("/bin/cat", &["/data.txt"]) };
    let trace = dir.join("t.trace");
    let rec = assert_round_trip(&dir, "dir", &o, b"");
    assert_eq!(rec.out.stdout, b"some data\n");
    record_run(&o, b"", &trace);
    let replays = |what: &str| {
        let (r, out, warnings) = replay_run(&trace, None);
        assert_eq!(r.unwrap_or_else(|e| panic!("{what}: {e}")), rec.outcome, "{what}");
        assert_eq!((out, warnings.len()), (rec.out.clone(), 0), "{what}");
    };
    let diverges = |what: &str, want: &str| {
        let (r, out, _) = replay_run(&trace, None);
        let msg = r.expect_err(what).to_string();
        assert!(msg.starts_with("replay diverged ") && msg.contains(want), "{what}: {msg}");
        assert!(!msg.contains('\n'), "{msg}");
        assert!(out.stdout.is_empty(), "{what}: stops before the guest prints the file");
    };
    // Files the guest never looked at: anything goes.
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(root.join("unused.txt"), b"changed\n").unwrap();
    std::fs::set_permissions(root.join("unused.txt"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::symlink("data.txt", root.join("link")).unwrap();
    std::fs::create_dir(root.join("newdir")).unwrap();
    replays("unused files changed");
    // A new modification time of a used file, same contents: replays (times do not count).
    let data = root.join("data.txt");
    std::fs::File::options().append(true).open(&data).unwrap().set_modified(std::time::UNIX_EPOCH).unwrap();
    replays("a used file touched");
    // The file the guest reads: its contents, its size, its mode, its absence.
    std::fs::write(&data, b"some date\n").unwrap();
    diverges("same size, new contents", "/data.txt changed since the recording: its contents differ");
    std::fs::write(&data, b"some data!\n").unwrap();
    diverges("new size", "/data.txt changed since the recording: its size was 10, it is now 11");
    std::fs::write(&data, b"some data\n").unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o600)).unwrap();
    diverges("new mode", "/data.txt changed since the recording: its mode was 0644, it is now 0600");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o644)).unwrap();
    replays("restored");
    std::fs::remove_file(&data).unwrap();
    diverges("removed", "/data.txt changed since the recording: it was a file of 10 bytes, it is now ENOENT");
    // --force replays past the changed file, with a warning naming it, to where the run
    // differs (cat reports the missing file instead of reading it).
    let (r, _, warnings) = replay_forced(&trace, None);
    let msg = r.unwrap_err().to_string();
    assert!(msg.starts_with("replay diverged at syscall #") && msg.contains("expected read"), "{msg}");
    assert!(warnings.len() == 1 && warnings[0].contains("/data.txt changed") && warnings[0].contains("--force"));
    // The command line: one line, status 125.
    let (status, out, err) = warden(&["replay", trace.to_str().unwrap()], b"");
    assert_eq!(status, 125, "{err}");
    assert!(out.is_empty());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("/data.txt changed since the recording"), "{err}");
}

#[test]
fn the_policy_text_is_recorded_and_replayed() {
    let dir = temp_dir("policy");
    let policy = dir.join("p.toml");
    std::fs::write(&policy, "deny = [\"kill\"]\n").unwrap();
    let o = RunOptions { policy: Some(policy.clone()), ..opts("/bin/kill", &["-0", "1"]) };
    let rec = assert_round_trip(&dir, "policy", &o, b"");
    // The policy made a difference (so the replay really applied it).
    let (console, plain) = CaptureConsole::new(b"");
    let unrestricted = warden::run(&RunOptions { policy: None, ..o.clone() }, Box::new(console)).unwrap();
    assert!(unrestricted != rec.outcome || *plain.borrow() != rec.out, "the policy changed nothing");
    // The replay uses the recorded text, not the file (changed or gone).
    let trace = dir.join("policy.trace");
    std::fs::write(&policy, "").unwrap();
    let (r, out, _) = replay_run(&trace, None);
    assert_eq!((r.unwrap(), out), (rec.outcome, rec.out.clone()));
    std::fs::remove_file(&policy).unwrap();
    let (status, out, err) = warden(&["replay", trace.to_str().unwrap()], b"");
    assert_eq!((status, out), (rec.outcome.exit_status(), rec.out.stdout.clone()), "{err}");
    // A broken policy is refused when recording, as when running.
    std::fs::write(&policy, "deny = [\"no-such-call\"]\n").unwrap();
    let (console, _) = CaptureConsole::new(b"");
    let e = record::record(&o, &[], Box::new(console), &dir.join("bad.trace")).unwrap_err();
    assert_eq!(e.exit_status(), 125);
    assert!(e.to_string().contains("no-such-call"), "{e}");
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &t);
        } else {
            std::fs::copy(e.path(), &t).unwrap();
        }
    }
}

#[test]
fn an_overlay_must_hold_its_recorded_start() {
    let dir = temp_dir("overlay");
    let overlay = dir.join("ov");
    std::fs::create_dir_all(overlay.join("tmp")).unwrap();
    std::fs::write(overlay.join("tmp/seen"), b"from an earlier run\n").unwrap();
    let before = dir.join("ov-before");
    copy_tree(&overlay, &before);
    let again = dir.join("ov-again");
    copy_tree(&overlay, &again);
    let o = RunOptions {
        overlay: Some(overlay.clone()),
        ..opts("/bin/sh", &["-c", "cat /tmp/seen; echo new > /tmp/written; cat /tmp/written"])
    };
    let trace = dir.join("ov.trace");
    let rec = record_run(&o, b"", &trace);
    assert_eq!(rec.out.stdout, b"from an earlier run\nnew\n");
    assert_eq!(std::fs::read(overlay.join("tmp/written")).unwrap(), b"new\n", "written through");
    // The run changed its overlay: replaying on it is refused, and says why.
    let (r, out, _) = replay_run(&trace, None);
    let msg = r.unwrap_err().to_string();
    assert!(msg.contains("the overlay") && msg.contains("a run writes through to its overlay"), "{msg}");
    assert!(!msg.contains('\n') && out.stdout.is_empty(), "{msg}");
    // On a copy of the overlay as it was, the replay is exact.
    let (r, out, _) = replay_with(&trace, ReplayOptions { overlay: Some(before.clone()), ..ReplayOptions::default() });
    assert_eq!((r.unwrap(), out), (rec.outcome, rec.out.clone()));
    assert!(before.join("tmp/written").exists(), "the replay wrote through to its overlay");
    // The command line too, on another copy.
    let (status, out, err) = warden(&["replay", "--overlay", again.to_str().unwrap(), trace.to_str().unwrap()], b"");
    assert_eq!((status, out), (0, rec.out.stdout.clone()), "{err}");
    let (status, _, err) = warden(&["replay", trace.to_str().unwrap()], b"");
    assert_eq!(status, 125);
    assert_eq!(err.lines().count(), 1, "{err}");
    // An overlay for a run recorded without one is refused.
    let plain = dir.join("plain.trace");
    record_run(&opts("/bin/echo", &["x"]), b"", &plain);
    let r = replay_with(&plain, ReplayOptions { overlay: Some(again), ..ReplayOptions::default() }).0;
    assert!(r.unwrap_err().to_string().contains("recorded without an overlay"));
}

#[test]
fn command_line_records_policy_overlay_and_personality() {
    let dir = temp_dir("cli-options");
    let policy = dir.join("p.toml");
    std::fs::write(&policy, "deny = [\"kill\"]\n").unwrap();
    let trace = dir.join("t.trace");
    let t = trace.to_str().unwrap();
    let ov = dir.join("ov");
    let (status, out, err) = warden(
        &[
            "record",
            "-o",
            t,
            "--policy",
            policy.to_str().unwrap(),
            "--overlay",
            ov.to_str().unwrap(),
            "--personality",
            "redox",
            "/bin/kill",
            "-0",
            "1",
        ],
        b"",
    );
    assert_ne!(status, 125, "{err}");
    let (_, header) = TraceReader::open(&trace).unwrap();
    assert_eq!(header.personality, Some(guest_kernel::linux::Personality::Redox));
    assert!(header.policy.as_ref().is_some_and(|(_, text)| text.contains("kill")));
    assert_eq!(header.overlay.as_ref().map(|(d, _)| d.clone()), Some(ov.clone()));
    let (status2, out2, err2) = warden(&["replay", t], b"");
    assert_eq!((status2, out2), (status, out), "{err2}");
}
