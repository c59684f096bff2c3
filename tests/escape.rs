//! The escape suite: guest programs try every way out of a jail and a system-call mask, and
//! nothing gets out. Also the guest `restrict` program and the host's `--policy FILE`.
//!
//! The attempts live in the guest program `escape` (guest-apps/apps/src/bin/escape.rs): one
//! line per attempt, `contained NAME: ...` or `ESCAPED NAME: ...`. This test counts them:
//! the count is fixed, so an attempt that silently stops running is noticed too. `escape
//! --control` makes the same attempts with no jail and no mask, and most of them must then
//! escape: the suite does test something.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::rc::Rc;

use guest_kernel::{CaptureConsole, CapturedOutput};
use warden::{Root, RunOptions};

/// Attempts the `escape` program makes (67 by the jailed child, 7 checked from outside).
const ESCAPE_ATTEMPTS: usize = 74;

struct Run {
    status: i32,
    out: CapturedOutput,
}

impl Run {
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }
}

fn run_opts(opts: RunOptions) -> Run {
    let (console, out): (CaptureConsole, Rc<RefCell<CapturedOutput>>) = CaptureConsole::new(b"");
    let status = match warden::boot(&opts, Box::new(console)) {
        Ok(mut k) => k.run().exit_status(),
        Err(e) => e.exit_status(),
    };
    let out = out.borrow().clone();
    Run { status, out }
}

fn run(program: &str, args: &[&str]) -> Run {
    run_opts(RunOptions {
        program: Some(program.to_string()),
        args: args.iter().map(|s| s.to_string()).collect(),
        budget: Some(4_000_000_000),
        ..RunOptions::default()
    })
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("warden-escape-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn guest_bin(name: &str) -> PathBuf {
    Path::new(env!("WARDEN_GUEST_BIN_DIR")).join(name)
}

#[test]
fn nothing_escapes_the_jail_or_the_mask() {
    let r = run("escape", &[]);
    let out = r.stdout();
    let escaped: Vec<&str> = out.lines().filter(|l| l.starts_with("ESCAPED")).collect();
    assert!(escaped.is_empty(), "escapes:\n{}\n\nfull output:\n{out}{}", escaped.join("\n"), r.stderr());
    let contained = out.lines().filter(|l| l.starts_with("contained ")).count();
    assert_eq!(contained, ESCAPE_ATTEMPTS, "{out}{}", r.stderr());
    assert!(out.ends_with(&format!("escape: {ESCAPE_ATTEMPTS} attempts, 0 escaped\n")), "{out}");
    assert_eq!(r.status, 0, "{out}{}", r.stderr());
    // Every attempt has a distinct name.
    let mut names: Vec<&str> =
        out.lines().filter_map(|l| l.strip_prefix("contained ")).map(|l| l.split(':').next().unwrap()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), ESCAPE_ATTEMPTS);
}

#[test]
fn the_same_attempts_escape_without_a_jail() {
    let r = run("escape", &["--control"]);
    let out = r.stdout();
    let escaped = out.lines().filter(|l| l.starts_with("ESCAPED")).count();
    let total = out.lines().filter(|l| l.starts_with("ESCAPED") || l.starts_with("contained ")).count();
    assert_eq!(total, ESCAPE_ATTEMPTS, "{out}");
    assert!(escaped >= 50, "only {escaped} attempts got out without a jail:\n{out}");
    for name in ["open-dotdot", "symlink-absolute", "fexec-outside-fd", "kill-parent", "proc-list", "widen-mask"] {
        assert!(out.contains(&format!("ESCAPED {name}:")), "{name}:\n{out}");
    }
    assert_eq!(r.status, 1);
}

#[test]
fn nothing_escapes_under_a_guest_supervisor() {
    // The mask and jail act before supervision: a supervised jailed process is no freer.
    let r = run("strace", &["escape"]);
    let out = r.stdout();
    assert!(!out.contains("ESCAPED"), "{out}");
    assert!(out.ends_with(&format!("escape: {ESCAPE_ATTEMPTS} attempts, 0 escaped\n")), "{out}");
    assert!(r.stderr().contains("jail("), "the supervisor saw the jail call");
}

#[test]
fn escape_is_deterministic() {
    assert_eq!(run("escape", &[]).stdout(), run("escape", &[]).stdout());
}

#[test]
fn restrict_masks_and_jails_a_program() {
    let r = run(
        "/bin/sh",
        &[
            "-c",
            "mkdir -p /tmp/j/bin; cat /bin/ls > /tmp/j/bin/ls; echo s > /tmp/j/../outside; \
             restrict --jail /tmp/j /bin/ls /; restrict --jail /tmp/j /bin/ls ../../tmp; echo st=$?; \
             restrict --deny kill kill -0 1; echo st=$?; \
             restrict --kill --deny kill kill -0 1; echo st=$?; \
             restrict --allow P,F,fexec,open true; echo st=$?; \
             restrict --allow bogus true; echo st=$?; \
             restrict --deny J true; echo st=$?",
        ],
    );
    let out = r.stdout();
    let err = r.stderr();
    // ls / in the jail shows only the jail; ../../tmp resolves to the jail's (missing) /tmp.
    assert!(out.starts_with("bin\nst=2\n"), "{out}{err}");
    assert!(out.contains("st=1\nst=159\nst=0\nst=2\nst=126\n"), "{out}{err}");
    assert!(err.contains("kill: (1): Operation not permitted"), "{err}");
    assert!(err.contains("restrict: unknown call or class \"bogus\""), "{err}");
    assert!(err.contains("restrict: true: cannot execute: Operation not permitted"), "{err}");
}

#[test]
fn restrict_lists_every_call_with_its_class() {
    let r = run("restrict", &["--list"]);
    let out = r.stdout();
    assert_eq!(out.lines().count(), warden_abi::CALLS.len() + warden_abi::LINUX_CALLS.len());
    assert!(out.lines().any(|l| l.starts_with("linux:openat ") && l.contains(" C ")), "{out}");
    assert!(out.lines().any(|l| l.starts_with("kill ") && l.contains(" J ")), "{out}");
    assert!(out.lines().any(|l| l.starts_with("open ") && l.contains(" C ")), "{out}");
}

/// A host root: /secret outside, /jail with ls, sh, cat and kill, and links pointing out.
fn jail_root(name: &str) -> PathBuf {
    let root = temp_dir(name);
    std::fs::create_dir_all(root.join("jail/bin")).unwrap();
    for prog in ["ls", "sh", "cat", "kill", "escape"] {
        std::fs::copy(guest_bin(prog), root.join("jail/bin").join(prog)).unwrap();
    }
    std::fs::write(root.join("secret"), "SECRET\n").unwrap();
    std::os::unix::fs::symlink("../secret", root.join("jail/up")).unwrap();
    std::os::unix::fs::symlink("/secret", root.join("jail/abs")).unwrap();
    root
}

fn policy(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("policy.toml");
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn host_policy_jails_the_whole_guest() {
    let root = jail_root("policy");
    let pol = policy(&temp_dir("policy-file"), "jail = \"/jail\"\n");
    let r = run_opts(RunOptions {
        root: Root::Dir(root.clone()),
        program: Some("sh".into()),
        args: vec!["-c".into(), "cat up; cat abs; cat ../secret; cat /secret; cd ..; ls; pwd".into()],
        policy: Some(pol),
        budget: Some(2_000_000_000),
        ..RunOptions::default()
    });
    assert!(!r.stdout().contains("SECRET"), "{}", r.stdout());
    assert_eq!(r.stdout(), "abs\nbin\nup\n/\n", "{}", r.stderr());
    assert_eq!(r.stderr().matches("No such file or directory").count(), 4, "{}", r.stderr());
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn host_policy_mask_denies_or_kills() {
    let dir = temp_dir("mask");
    let run_policy = |text: &str, prog: &str, args: &[&str]| {
        run_opts(RunOptions {
            program: Some(prog.into()),
            args: args.iter().map(|s| s.to_string()).collect(),
            policy: Some(policy(&dir, text)),
            budget: Some(2_000_000_000),
            ..RunOptions::default()
        })
    };
    let r = run_policy("deny = [\"kill\"]\n", "kill", &["-0", "1"]);
    assert_eq!(r.status, 1);
    assert!(r.stderr().contains("Operation not permitted"), "{}", r.stderr());
    assert_eq!(run_policy("deny = [\"kill\"]\nmode = \"kill\"\n", "kill", &["-0", "1"]).status, 128 + 31);
    // The guest cannot widen what the host set, nor take the jail off.
    let r = run_policy("deny = [\"kill\"]\n", "restrict", &["--allow", "all", "kill", "-0", "1"]);
    assert_eq!(r.status, 125, "{}", r.stderr());
    assert!(r.stderr().contains("restrict: mask: Operation not permitted"), "{}", r.stderr());
    let r = run_policy("allow = [\"all\"]\n", "restrict", &["--allow", "all", "true"]);
    assert_eq!(r.status, 0, "{}", r.stderr());
    // init itself starts (the kernel loads it), but it cannot exec anything.
    let r = run_policy("deny = [\"fexec\"]\n", "sh", &["-c", "echo hi"]);
    assert_eq!((r.stdout().as_str(), r.status), ("", 126), "{}", r.stderr());
    // The example policy that README.md mentions.
    let r = run_opts(RunOptions {
        program: Some("/bin/sh".into()),
        args: vec!["-c".into(), "echo hi; kill -0 1".into()],
        policy: Some(PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/policy.toml"))),
        budget: Some(2_000_000_000),
        ..RunOptions::default()
    });
    assert_eq!((r.stdout().as_str(), r.status), ("hi\n", 1), "{}", r.stderr());
}

#[test]
fn bad_policies_are_one_line_errors_with_status_125() {
    let dir = temp_dir("bad");
    for (text, want) in [
        ("allow = [\"open\"]\njial = \"/x\"\n", "policy.toml:2: unknown field `jial`"),
        ("deny = [\"opne\"]\n", "policy.toml:1: unknown call or class \"opne\""),
        ("mode = \"loud\"\n", "policy.toml:1: unknown variant `loud`"),
        ("jail = \"/no/such/dir\"\n", "jail /no/such/dir: No such file or directory"),
        ("allow = [", "policy.toml:1:"),
    ] {
        let p = policy(&dir, text);
        let out = Command::new(env!("CARGO_BIN_EXE_warden"))
            .args(["run", "--policy"])
            .arg(&p)
            .arg("/bin/true")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "{text:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{text:?}: {err}");
        assert!(err.contains(want), "{text:?}: {err}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["run", "--policy", "/nonexistent/policy.toml", "/bin/true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read policy /nonexistent/policy.toml"));
}

// --- the Linux personality ----------------------------------------------------------------

/// Attempts `tests/fixtures/linux/escape.c` makes.
const LINUX_ESCAPE_ATTEMPTS: usize = 64;

/// `true` if `tool` can be used; otherwise prints SKIPPED (or panics with
/// `WARDEN_REQUIRE_TOOLS=1`, as `.ci/run` sets).
fn have(tool: &str, found: bool) -> bool {
    if !found {
        if std::env::var("WARDEN_REQUIRE_TOOLS").is_ok_and(|v| v == "1") {
            panic!("{tool} not found but WARDEN_REQUIRE_TOOLS=1");
        }
        eprintln!("SKIPPED: {tool} not found");
    }
    found
}

/// The escape fixture built with `gcc -static`; `None` (skipped) without gcc.
fn linux_escape_fixture() -> Option<PathBuf> {
    linux_fixture("escape")
}

/// `tests/fixtures/linux/NAME.c` built with `gcc -static -pthread`; `None` (skipped) without
/// gcc.
fn linux_fixture(name: &str) -> Option<PathBuf> {
    let found = Command::new("gcc").arg("--version").output().is_ok_and(|o| o.status.success());
    if !have("gcc", found) {
        return None;
    }
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-linux-{}", std::process::id()));
    let src = format!("{}/tests/fixtures/linux/{name}.c", env!("CARGO_MANIFEST_DIR"));
    let status =
        Command::new("gcc").args(["-static", "-O2", "-pthread", "-o"]).arg(&out).arg(&src).status().expect("run gcc");
    assert!(status.success(), "gcc failed on {src}");
    Some(out)
}

/// The layout escape.c describes: a shell and `restrict` outside, the fixture inside /jail,
/// outside files it must not reach.
fn linux_jail_root(name: &str, fixture: &Path) -> PathBuf {
    use std::os::unix::fs::{symlink, PermissionsExt};
    let root = temp_dir(name);
    std::fs::create_dir_all(root.join("bin")).unwrap();
    for prog in ["sh", "restrict", "echo", "strace"] {
        std::fs::copy(guest_bin(prog), root.join("bin").join(prog)).unwrap();
    }
    // A shell that can open descriptors beyond 2 for a command (`3</`).
    if Path::new("/bin/busybox").exists() {
        std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    }
    std::fs::write(root.join("secret"), "SECRET\n").unwrap();
    symlink("secret", root.join("outlink")).unwrap();
    std::fs::create_dir_all(root.join("outdir")).unwrap();
    std::fs::copy(fixture, root.join("outprog")).unwrap();
    std::fs::create_dir_all(root.join("jail/d")).unwrap();
    std::fs::write(root.join("jail/d/inside"), "inside\n").unwrap();
    std::fs::copy(fixture, root.join("jail/escape")).unwrap();
    symlink("/secret", root.join("jail/abs")).unwrap();
    symlink("../secret", root.join("jail/up")).unwrap();
    symlink("/outprog", root.join("jail/exelink")).unwrap();
    std::fs::write(root.join("jail/script"), "#!/outprog --payload\n").unwrap();
    std::fs::set_permissions(root.join("jail/script"), std::fs::Permissions::from_mode(0o755)).unwrap();
    root
}

/// `command` run by busybox's shell (it opens descriptors beyond 2 for a command).
fn run_in_busybox(root: &Path, command: &str) -> Run {
    run_opts(RunOptions {
        root: Root::Dir(root.to_path_buf()),
        program: Some("/bin/busybox".into()),
        args: vec!["sh".into(), "-c".into(), command.into()],
        budget: Some(20_000_000_000),
        ..RunOptions::default()
    })
}

#[test]
fn nothing_escapes_through_the_linux_layer() {
    let Some(fixture) = linux_escape_fixture() else { return };
    if !have("busybox", Path::new("/bin/busybox").exists()) {
        return;
    }
    let root = linux_jail_root("linux", &fixture);
    // Jailed by the Redox `restrict` (its parent shell, pid 1, stays outside the jail).
    // Descriptors 3 (/) and 5 (/outdir) are opened by the shell, outside the jail.
    let r = run_in_busybox(&root, "restrict --jail /jail /escape 3</ 5</outdir; echo st=$?");
    let out = r.stdout();
    let escaped: Vec<&str> = out.lines().filter(|l| l.starts_with("ESCAPED")).collect();
    assert!(escaped.is_empty(), "escapes:\n{}\n\nfull output:\n{out}{}", escaped.join("\n"), r.stderr());
    let contained = out.lines().filter(|l| l.starts_with("contained ")).count();
    assert_eq!(contained, LINUX_ESCAPE_ATTEMPTS, "{out}{}", r.stderr());
    assert!(out.ends_with(&format!("escape-linux: {LINUX_ESCAPE_ATTEMPTS} attempts, 0 escaped\nst=0\n")), "{out}");

    // The control: the same attempts without a jail (from /jail) mostly get out.
    let r = run_in_busybox(&root, "/jail/escape /jail 3</ 5</outdir; echo st=$?");
    let out = r.stdout();
    let got_out = out.lines().filter(|l| l.starts_with("ESCAPED")).count();
    let total = out.lines().filter(|l| l.starts_with("ESCAPED") || l.starts_with("contained ")).count();
    assert_eq!(total, LINUX_ESCAPE_ATTEMPTS, "{out}{}", r.stderr());
    assert!(got_out >= LINUX_ESCAPE_ATTEMPTS * 2 / 3, "only {got_out} got out without a jail:\n{out}");
    for name in [
        "open-dotdot",
        "openat-dirfd-dotdot",
        "open-planted-abs-link",
        "newfstatat-dotdot",
        "statx-dotdot",
        "readlinkat-dirfd",
        "chdir-up-then-open",
        "getcwd-leak",
        "execve-dotdot",
        "execve-shebang-outside",
        "rename-from-outside",
        "chmod-dotdot",
        "unlinkat-dirfd",
        "mkdirat-dirfd",
        "kill-outside",
        "tgkill-outside",
        "inherited-dirfd-openat",
        "inherited-dirfd-fchdir",
    ] {
        assert!(out.contains(&format!("ESCAPED {name}:")), "{name}:\n{out}");
    }
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn a_jailed_or_masked_linux_program_works() {
    let busybox = Path::new("/bin/busybox");
    if !have("busybox", busybox.exists()) {
        return;
    }
    let root = temp_dir("busybox");
    std::fs::create_dir_all(root.join("jail/bin")).unwrap();
    std::fs::copy(busybox, root.join("jail/bin/busybox")).unwrap();
    std::fs::write(root.join("jail/data"), "inside\n").unwrap();
    std::fs::write(root.join("secret"), "SECRET\n").unwrap();
    let dir = temp_dir("busybox-policy");
    let run_policy = |text: &str, args: &[&str]| {
        let program = if text.contains("jail") { "/bin/busybox" } else { "/jail/bin/busybox" };
        run_opts(RunOptions {
            root: Root::Dir(root.clone()),
            program: Some(program.into()),
            args: args.iter().map(|s| s.to_string()).collect(),
            policy: Some(policy(&dir, text)),
            budget: Some(20_000_000_000),
            ..RunOptions::default()
        })
    };
    // Jailed: reads, lists and writes inside; nothing outside.
    let r = run_policy(
        "jail = \"/jail\"\n",
        &[
            "sh",
            "-c",
            "busybox cat data; busybox ls /; busybox cat ../secret /secret; echo new > n; busybox cat n; cd ..; pwd",
        ],
    );
    assert!(!r.stdout().contains("SECRET"), "{}{}", r.stdout(), r.stderr());
    assert_eq!(r.stdout(), "inside\nbin\ndata\nnew\n/\n", "{}", r.stderr());
    assert_eq!(r.stderr().matches("No such file or directory").count(), 2, "{}", r.stderr());
    // Masked: a Linux call denied by name fails with EPERM; the rest runs.
    let r = run_policy("deny = [\"linux:kill\"]\n", &["kill", "-0", "1"]);
    assert_eq!(r.status, 1, "{}", r.stderr());
    assert!(r.stderr().contains("Operation not permitted"), "{}", r.stderr());
    let r = run_policy("allow = [\"P\", \"F\", \"C\"]\n", &["sh", "-c", "echo ok"]);
    assert_eq!((r.stdout().as_str(), r.status), ("ok\n", 0), "{}", r.stderr());
    let _ = std::fs::remove_dir_all(root);
}

// --- issue 20: the overlay as a door, racing threads, errnos --------------------------------

/// `warden ARGS` run from `cwd`: (exit status, stdout, stderr).
fn warden_in(cwd: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_warden")).current_dir(cwd).args(args).output().expect("run warden");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

/// A host root for the overlay reproductions: busybox and the race fixture in /bin and in
/// /jail, `/secret` outside the jail, and (outside the root) `hostdir/secret.txt`.
/// Returns (base, root, hostdir).
fn door_root(name: &str, race: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let base = temp_dir(name);
    let root = base.join("R");
    let hostdir = base.join("hostdir");
    for dir in [root.join("bin"), root.join("jail/bin"), hostdir.clone()] {
        std::fs::create_dir_all(dir).unwrap();
    }
    for bin in [root.join("bin"), root.join("jail/bin")] {
        std::fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
        std::fs::copy(race, bin.join("escape_race")).unwrap();
    }
    std::fs::write(root.join("secret"), "SECRET\n").unwrap();
    std::fs::write(hostdir.join("secret.txt"), "SECRET\n").unwrap();
    (base, root, hostdir)
}

fn busybox_and(fixture: &str) -> Option<PathBuf> {
    if !have("busybox", Path::new("/bin/busybox").exists()) {
        return None;
    }
    linux_fixture(fixture)
}

/// Issue 20, reproduction 1: `--overlay` inside the root. The guest makes `/d`, looks at it
/// through `/ov/d`, replaces it by a link to a host directory and reads through `/ov/d`. On
/// the old code this printed the host's secret; now the overlay is not visible from the root,
/// and the same with two threads racing the name (symlinks, renames, hard links) gets nowhere.
#[test]
fn an_overlay_inside_the_root_is_no_door() {
    let Some(race) = busybox_and("escape_race") else { return };
    let (base, root, hostdir) = door_root("door-root", &race);
    let (r, ov, host) = (root.to_str().unwrap(), root.join("ov"), hostdir.to_str().unwrap());
    let script = format!("mkdir /d && ls /ov/d; rmdir /d && ln -s {host} /d && cat /ov/d/secret.txt");
    let (status, out, err) =
        warden_in(&root, &["run", "--root", r, "--overlay", ov.to_str().unwrap(), "/bin/busybox", "sh", "-c", &script]);
    assert!(!out.contains("SECRET"), "{out}{err}");
    assert_eq!(status, 1, "{out}{err}");
    assert!(err.contains("can't open '/ov/d/secret.txt': No such file or directory"), "{err}");
    assert!(ov.join("d").is_symlink(), "the overlay kept the guest's link");
    std::fs::remove_dir_all(&ov).unwrap();
    let (status, out, err) = warden_in(
        &root,
        &["run", "--root", r, "--overlay", ov.to_str().unwrap(), "/bin/escape_race", host, "ov/d/secret.txt"],
    );
    assert_eq!((status, out.lines().filter(|l| l.starts_with("contained ")).count()), (0, 5), "{out}{err}");
    let _ = std::fs::remove_dir_all(base);
}

/// Issue 20, reproduction 2: the same trick through an overlay inside a jail
/// (`ln -s / /d; cat /ov/jail/d/etc/hostname` printed the host's hostname), by hand and
/// with racing threads.
#[test]
fn an_overlay_inside_a_jail_is_no_door() {
    let Some(race) = busybox_and("escape_race") else { return };
    let (base, root, hostdir) = door_root("door-jail", &race);
    let pol = policy(&base, "jail = \"/jail\"\n");
    let (r, p, ov, host) =
        (root.to_str().unwrap(), pol.to_str().unwrap(), root.join("jail/ov"), hostdir.to_str().unwrap());
    let hostname = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let script = format!(
        "mkdir /d && ls /ov/jail/d; rmdir /d && ln -s / /d && cat /ov/jail/d/etc/hostname; \
         rm /d; mkdir /d; ls /ov/jail/d; rmdir /d; ln -s {host} /d; cat /ov/jail/d/secret.txt"
    );
    let args =
        ["run", "--root", r, "--policy", p, "--overlay", ov.to_str().unwrap(), "/bin/busybox", "sh", "-c", &script];
    let (_, out, err) = warden_in(&root, &args);
    assert!(!out.contains("SECRET"), "{out}{err}");
    assert!(hostname.trim().is_empty() || !out.contains(hostname.trim()), "{out}{err}");
    assert_eq!(err.matches("No such file or directory").count(), 4, "{err}");
    std::fs::remove_dir_all(&ov).unwrap();
    let args = [
        "run",
        "--root",
        r,
        "--policy",
        p,
        "--overlay",
        ov.to_str().unwrap(),
        "/bin/escape_race",
        host,
        "ov/jail/d/secret.txt",
    ];
    let (status, out, err) = warden_in(&root, &args);
    assert_eq!((status, out.lines().filter(|l| l.starts_with("contained ")).count()), (0, 5), "{out}{err}");
    let _ = std::fs::remove_dir_all(base);
}

/// Two guest threads race `d` between a directory, a symlink to `/..` and a hard link
/// while the main thread reaches through it (open, stat, chdir, a held directory
/// descriptor, a listing): nothing leaves the jail. Without the jail the same run reads
/// the secret: the attempts are real.
#[test]
fn racing_threads_do_not_leave_a_jail() {
    let Some(race) = busybox_and("escape_race") else { return };
    let (base, root, _) = door_root("race-jail", &race);
    std::fs::copy(&race, root.join("jail/escape_race")).unwrap();
    let pol = policy(&base, "jail = \"/jail\"\n");
    let (r, p) = (root.to_str().unwrap(), pol.to_str().unwrap());
    // (`d/jail/d/...`: through the jail's own `d` again when `d` leads to the real root.)
    let paths = ["d/secret", "d/jail/d/secret"];
    let mut args = vec!["run", "--root", r, "--policy", p, "/escape_race", "/.."];
    args.extend(paths);
    let (status, out, err) = warden_in(&root, &args);
    assert!(!out.contains("ESCAPED"), "{out}{err}");
    assert_eq!((status, out.lines().filter(|l| l.starts_with("contained ")).count()), (0, 10), "{out}{err}");
    // The control: from /jail without a jail.
    let mut args = vec!["run", "--root", r, "/jail/escape_race", "/.."];
    args.extend(paths);
    let (status, out, err) = warden_in(&root.join("jail"), &args);
    let got_out = out.lines().filter(|l| l.starts_with("ESCAPED")).count();
    assert_eq!(status, 1, "{out}{err}");
    assert!(got_out >= 6, "only {got_out} of 10 got out without the jail:\n{out}");
    let _ = std::fs::remove_dir_all(base);
}

/// Issue 20, minor findings: errnos as Linux gives them (ENAMETOOLONG for an 8,191-byte
/// path, E2BIG for 200 x 1 MiB of exec arguments, ELOOP for symlink loops): the fixture's
/// output under warden is the host's own.
#[test]
fn path_and_exec_errnos_match_the_host() {
    let Some(probe) = busybox_and("escape_errnos") else { return };
    let base = temp_dir("errnos");
    std::fs::create_dir_all(base.join("bin")).unwrap();
    std::fs::create_dir_all(base.join("tmp")).unwrap();
    std::fs::copy(&probe, base.join("bin/probe")).unwrap();
    std::fs::copy("/bin/busybox", base.join("bin/true")).unwrap();
    let native = Command::new(&probe).arg(base.join("tmp")).arg("/bin/true").output().unwrap();
    let native = String::from_utf8_lossy(&native.stdout).into_owned();
    assert!(native.contains("Argument list too long"), "{native}");
    let (status, out, err) =
        warden_in(&base, &["run", "--root", base.to_str().unwrap(), "/bin/probe", "/tmp", "/bin/true"]);
    assert_eq!(status, 0, "{err}");
    assert_eq!(out, native);
    let _ = std::fs::remove_dir_all(base);
}

/// A dynamic program whose PT_INTERP interpreter is missing: 127 ("not found") and one line
/// naming the interpreter (it was 125).
#[test]
fn a_missing_interpreter_is_127_with_one_line() {
    let found = Command::new("gcc").arg("--version").output().is_ok_and(|o| o.status.success());
    if !have("gcc", found) {
        return;
    }
    let base = temp_dir("interp");
    std::fs::create_dir_all(base.join("bin")).unwrap();
    std::fs::write(base.join("main.c"), "int main(void) { return 0; }\n").unwrap();
    let status = Command::new("gcc").arg("-o").arg(base.join("bin/dyn")).arg(base.join("main.c")).status().unwrap();
    assert!(status.success());
    let (status, out, err) = warden_in(&base, &["run", "--root", base.to_str().unwrap(), "/bin/dyn"]);
    assert_eq!(status, 127, "{out}{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("/bin/dyn: its interpreter /lib64/ld-linux-x86-64.so.2 was not found"), "{err}");
    let _ = std::fs::remove_dir_all(base);
}

/// The Linux-layer attempts while the host traces every call (`--trace`) and while a guest
/// supervisor (`strace`) holds every call of the jailed process: supervision changes
/// nothing, and the trace itself names no path outside the jail that the guest did not
/// give.
#[test]
fn nothing_escapes_through_the_linux_layer_while_traced_or_supervised() {
    let Some(fixture) = linux_escape_fixture() else { return };
    if !have("busybox", Path::new("/bin/busybox").exists()) {
        return;
    }
    let root = linux_jail_root("linux-traced", &fixture);
    let trace = root.join("trace.txt");
    let (status, out, err) = warden_in(
        &root,
        &[
            "run",
            "--trace",
            "-o",
            trace.to_str().unwrap(),
            "--root",
            root.to_str().unwrap(),
            "/bin/busybox",
            "sh",
            "-c",
            "restrict --jail /jail /escape 3</ 5</outdir; echo st=$?",
        ],
    );
    assert_eq!(status, 0, "{err}");
    assert!(out.ends_with(&format!("escape-linux: {LINUX_ESCAPE_ATTEMPTS} attempts, 0 escaped\nst=0\n")), "{out}{err}");
    let traced = std::fs::read_to_string(&trace).unwrap();
    assert!(traced.contains("openat("), "{traced}");
    let (_, out, err) = warden_in(
        &root,
        &[
            "run",
            "--root",
            root.to_str().unwrap(),
            "/bin/busybox",
            "sh",
            "-c",
            "strace restrict --jail /jail /escape 3</ 5</outdir",
        ],
    );
    assert!(!out.contains("ESCAPED"), "{out}");
    assert!(out.contains(&format!("escape-linux: {LINUX_ESCAPE_ATTEMPTS} attempts, 0 escaped\n")), "{out}{err}");
    let _ = std::fs::remove_dir_all(root);
}
