//! End-to-end tests of `warden run`: the embedded image, the guest programs,
//! exit statuses, image and root sources, faults becoming signals, and
//! determinism. Most run through the library with a captured console; a few
//! run the real binary to check the command line itself.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::rc::Rc;

use guest_kernel::{CaptureConsole, CapturedOutput, RunOutcome};
use warden::{Root, RunError, RunOptions};

struct Run {
    outcome: Result<RunOutcome, RunError>,
    out: CapturedOutput,
    instructions: u64,
}

impl Run {
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }
    fn status(&self) -> i32 {
        match &self.outcome {
            Ok(o) => o.exit_status(),
            Err(e) => e.exit_status(),
        }
    }
}

fn run_with(opts: RunOptions, stdin: &[u8]) -> Run {
    let (console, out): (CaptureConsole, Rc<RefCell<CapturedOutput>>) = CaptureConsole::new(stdin);
    let mut instructions = 0;
    let outcome = warden::boot(&opts, Box::new(console)).map(|mut k| {
        let o = k.run();
        instructions = k.stats().instructions;
        o
    });
    let out = out.borrow().clone();
    Run { outcome, out, instructions }
}

fn run(program: &str, args: &[&str]) -> Run {
    let opts = RunOptions {
        program: Some(program.to_string()),
        args: args.iter().map(|s| s.to_string()).collect(),
        budget: Some(2_000_000_000),
        ..RunOptions::default()
    };
    run_with(opts, b"")
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("warden-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn guest_bin(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("WARDEN_GUEST_BIN_DIR")).join(name)).unwrap()
}

/// A tar image with the given files (path, mode, contents).
fn make_image(path: &Path, files: &[(&str, u32, &[u8])]) {
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    for (name, mode, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(*mode);
        h.set_cksum();
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.finish().unwrap();
}

#[test]
fn default_demo_runs_and_exits_zero() {
    let r = run_with(RunOptions { budget: Some(2_000_000_000), ..RunOptions::default() }, b"");
    assert_eq!(r.status(), 0, "stdout:\n{}\nstderr:\n{}", r.stdout(), r.stderr());
    let out = r.stdout();
    assert!(out.contains("Hello from the Warden guest!"), "{out}");
    assert!(out.contains("hello\n"), "the file written and read back: {out}");
    assert!(out.contains("false exited with 1"), "{out}");
}

#[test]
fn shell_pipeline_counts_bytes() {
    let r = run("/bin/sh", &["-c", "echo hi | wc -c"]);
    assert_eq!(r.stdout().trim(), "3");
    assert_eq!(r.status(), 0);
}

#[test]
fn shell_redirections_and_status() {
    let r = run(
        "/bin/sh",
        &[
            "-c",
            "echo one > /tmp/f; echo two >> /tmp/f; cat < /tmp/f; false || echo or; true && echo and; false; echo $?",
        ],
    );
    assert_eq!(r.stdout(), "one\ntwo\nor\nand\n1\n");
}

#[test]
fn selftest_passes_on_both_gates() {
    let r = run("selftest", &[]);
    assert_eq!(r.status(), 0, "{}{}", r.stdout(), r.stderr());
    assert!(r.stdout().contains(" passed, 0 failed"), "{}", r.stdout());
    assert!(r.stdout().contains("ok gates-agree-on-getpid"));
}

#[test]
fn stdin_reaches_the_guest() {
    let opts = RunOptions { program: Some("wc".into()), args: vec!["-l".into()], ..RunOptions::default() };
    let r = run_with(opts, b"a\nb\nc\n");
    assert_eq!(r.stdout().trim(), "3");
}

#[test]
fn exit_statuses_follow_the_contract() {
    assert_eq!(run("/bin/sh", &["-c", "exit 42"]).status(), 42);
    assert_eq!(run("/bin/nonexistent", &[]).status(), 127);
    // /etc/rc exists but is not an ELF file.
    assert_eq!(run("/etc/rc", &[]).status(), 126);
    let spin = RunOptions {
        program: Some("crash".into()),
        args: vec!["spin".into()],
        budget: Some(1_000_000),
        ..RunOptions::default()
    };
    assert_eq!(run_with(spin, b"").status(), 124);
}

#[test]
fn cpu_faults_become_signals() {
    for (mode, status) in
        [("segv", 139), ("exec-data", 139), ("ud", 132), ("div0", 136), ("int3", 133), ("hlt", 139), ("recurse", 139)]
    {
        assert_eq!(run("crash", &[mode]).status(), status, "crash {mode}");
    }
    let r = run("crash", &["abort"]);
    assert_eq!(r.status(), 101);
    assert!(r.stderr().contains("deliberate panic"), "{}", r.stderr());
}

#[test]
fn runs_are_deterministic() {
    let a = run("/bin/sh", &["-c", "ps; echo x | wc; cat /etc/rc | wc -c"]);
    let b = run("/bin/sh", &["-c", "ps; echo x | wc; cat /etc/rc | wc -c"]);
    assert_eq!(a.stdout(), b.stdout());
    assert_eq!(a.instructions, b.instructions);
    assert!(a.instructions > 0);
}

#[test]
fn image_from_a_tar_file_and_writes_stay_in_memory() {
    let dir = temp_dir("image");
    let img = dir.join("img.tar");
    make_image(
        &img,
        &[
            ("bin/sh", 0o755, &guest_bin("sh")),
            ("bin/cat", 0o755, &guest_bin("cat")),
            ("bin/echo", 0o755, &guest_bin("echo")),
            ("data.txt", 0o644, b"from the image\n"),
        ],
    );
    let before = std::fs::read(&img).unwrap();
    let opts = RunOptions {
        root: Root::Image(img.clone()),
        program: Some("/bin/sh".into()),
        args: vec!["-c".into(), "cat /data.txt; echo changed > /data.txt; cat /data.txt".into()],
        ..RunOptions::default()
    };
    let r = run_with(opts, b"");
    assert_eq!(r.stdout(), "from the image\nchanged\n", "{} / {:?}", r.stderr(), r.outcome);
    assert_eq!(std::fs::read(&img).unwrap(), before, "the image file must not change");
}

#[test]
fn host_root_is_read_only_and_confined() {
    let dir = temp_dir("root");
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    for p in ["sh", "cat", "ls", "echo"] {
        std::fs::write(dir.join("bin").join(p), guest_bin(p)).unwrap();
    }
    use std::os::unix::fs::PermissionsExt;
    for p in ["sh", "cat", "ls", "echo"] {
        std::fs::set_permissions(dir.join("bin").join(p), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::write(dir.join("note"), b"host file\n").unwrap();
    std::os::unix::fs::symlink("/../../../../etc", dir.join("escape")).unwrap();
    let opts = RunOptions {
        root: Root::Dir(dir.clone()),
        program: Some("/bin/sh".into()),
        args: vec![
            "-c".into(),
            "cat /note; cat /../../../etc/hostname; ls /escape; echo new > /note; cat /note".into(),
        ],
        ..RunOptions::default()
    };
    let r = run_with(opts, b"");
    assert!(r.stdout().starts_with("host file\n"), "{}", r.stdout());
    assert!(r.stdout().ends_with("new\n"), "{}", r.stdout());
    assert_eq!(std::fs::read(dir.join("note")).unwrap(), b"host file\n", "host file must not change");
    // Neither `..` nor the symlink reaches the host's /etc.
    let host_hostname = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    if !host_hostname.trim().is_empty() {
        assert!(!r.stdout().contains(host_hostname.trim()), "escaped the root: {}", r.stdout());
    }
    assert!(!r.stdout().contains("passwd"), "listed the host's /etc: {}", r.stdout());
}

#[test]
fn malformed_inputs_give_one_clear_line() {
    let dir = temp_dir("malformed");
    let garbage = dir.join("garbage.tar");
    std::fs::write(&garbage, vec![0x55u8; 3000]).unwrap();
    let r = run_with(RunOptions { root: Root::Image(garbage), ..RunOptions::default() }, b"");
    assert_eq!(r.status(), 125);
    let msg = r.outcome.as_ref().unwrap_err().to_string();
    assert!(!msg.contains('\n') && msg.contains("garbage.tar"), "{msg}");

    // An ELF header with nonsense program headers must not load (126), and
    // a truncated binary neither.
    let mut bad_elf = guest_bin("hello");
    bad_elf[0x20..0x28].copy_from_slice(&u64::MAX.to_le_bytes()); // e_phoff
    let truncated = guest_bin("hello")[..200].to_vec();
    let img = dir.join("bad.tar");
    make_image(&img, &[("bin/bad", 0o755, &bad_elf), ("bin/short", 0o755, &truncated)]);
    for p in ["/bin/bad", "/bin/short"] {
        let r = run_with(
            RunOptions { root: Root::Image(img.clone()), program: Some(p.into()), ..RunOptions::default() },
            b"",
        );
        assert_eq!(r.status(), 126, "{p}: {:?}", r.outcome);
        assert!(!r.outcome.unwrap_err().to_string().contains('\n'));
    }
}

fn warden(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_warden")).args(args).output().unwrap()
}

#[test]
fn command_line_contract() {
    let out = warden(&["run", "/bin/sh", "-c", "echo hi | wc -c"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "3");
    assert_eq!(out.status.code(), Some(0));

    // Options after PROGRAM go to the guest unchanged.
    let out = warden(&["run", "/bin/echo", "--budget", "-n", "x"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "--budget -n x\n");

    let out = warden(&["run", "--env", "GREETING=hi", "/bin/env"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "GREETING=hi\n");

    let out = warden(&["run", "--budget", "1000", "/bin/crash", "spin"]);
    assert_eq!(out.status.code(), Some(124));

    let out = warden(&["run", "--image", "/nonexistent.tar"]);
    assert_eq!(out.status.code(), Some(125));
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);

    let out = warden(&["run", "--no-such-flag"]);
    assert_eq!(out.status.code(), Some(125));

    let out = warden(&["run", "/bin/nope"]);
    assert_eq!(out.status.code(), Some(127));
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);

    let out = warden(&["run", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for opt in ["--image", "--root", "--env", "--budget", "--seed"] {
        assert!(help.contains(opt), "--help lacks {opt}");
    }
}
