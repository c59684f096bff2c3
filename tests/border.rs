//! The border between warden and the host, driven through the real binary: pipes closed by
//! their reader, full disks, closed descriptors, signals sent mid-run, relative roots, the
//! habits of qemu-user users and one-line errors. Synchronisation is by what warden prints
//! (a test reads the guest's first line before it signals), never by sleeping.
//!
//! Tests that need Debian's static busybox say SKIPPED without it, unless
//! `WARDEN_REQUIRE_TOOLS=1` (set by `.ci/run`), which makes them fail.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

const WARDEN: &str = env!("CARGO_BIN_EXE_warden");
const BUSYBOX: &str = "/bin/busybox";

fn temp_dir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("border-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// True if busybox is there; otherwise SKIPPED (or a failure when tools are required).
fn have_busybox() -> bool {
    let found = Path::new(BUSYBOX).is_file();
    if !found {
        assert!(std::env::var("WARDEN_REQUIRE_TOOLS").as_deref() != Ok("1"), "{BUSYBOX} not found");
        eprintln!("SKIPPED: {BUSYBOX} not found");
    }
    found
}

/// A warden command whose SIGINT and SIGTERM are the default ones (a test harness started in
/// the background inherits SIGINT ignored, which the child would keep).
fn warden(args: &[&str]) -> Command {
    let mut c = Command::new(WARDEN);
    c.args(args);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        c.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            libc::signal(libc::SIGTERM, libc::SIG_DFL);
            Ok(())
        });
    }
    c
}

struct Output {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str]) -> Output {
    let o = warden(args).stdin(Stdio::null()).output().unwrap();
    Output {
        status: o.status,
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// Asserts warden failed by itself: status 125 and exactly one line on stderr containing
/// every one of `want`.
fn assert_one_line_error(o: &Output, want: &[&str]) {
    assert_eq!(o.status.code(), Some(125), "{}", o.stderr);
    assert_eq!(o.stderr.lines().count(), 1, "{}", o.stderr);
    assert!(o.stderr.starts_with("warden: "), "{}", o.stderr);
    for w in want {
        assert!(o.stderr.contains(w), "{:?} lacks {w:?}", o.stderr);
    }
}

fn no_panic(stderr: &str) {
    assert!(!stderr.contains("panicked") && !stderr.contains("internal error"), "{stderr}");
}

/// Reads `child`'s stdout up to the end of its first line.
fn first_line(child: &mut Child) -> (String, BufReader<std::process::ChildStdout>) {
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    (line, out)
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
}

fn stderr_of(child: &mut Child) -> String {
    let mut s = String::new();
    child.stderr.take().unwrap().read_to_string(&mut s).unwrap();
    s
}

// --- 1, 2: closed pipes ----------------------------------------------------------------

#[test]
fn a_trace_whose_reader_leaves_ends_like_a_pipeline_member() {
    // `warden trace ... 2>&1 | head -1`: the trace goes to a pipe closed after one line.
    let mut child = warden(&["trace", "/bin/testprog", "syscalls", "100000"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    assert!(line.starts_with("1 "), "{line}");
    drop(err);
    let status = child.wait().unwrap();
    // Not SIGABRT (134) from a panic on the closed pipe: 128 + SIGPIPE, as strace ends.
    assert_eq!(status.code(), Some(141), "{status:?}");

    // `warden run --trace -o FILE ... | head`: the guest's own output pipe closes.
    let dir = temp_dir("trace-pipe");
    let trace = dir.join("t.txt");
    let mut child = warden(&["run", "--trace", "-o", trace.to_str().unwrap(), "/bin/cat"])
        .stdin(big_input(&dir, 4 << 20))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (line, out) = first_line(&mut child);
    assert!(!line.is_empty());
    drop(out);
    let stderr = stderr_of(&mut child);
    let status = child.wait().unwrap();
    no_panic(&stderr);
    assert_eq!(status.code(), Some(141), "{stderr}");
    let text = std::fs::read_to_string(&trace).unwrap();
    assert!(text.ends_with(", 4096) = ?\n1 +++ killed by SIGPIPE +++\n"), "{text}");
}

/// Writes `len` bytes to a file and returns it (a guest's stdin).
fn big_input(dir: &Path, len: usize) -> std::fs::File {
    let path = dir.join("big.bin");
    let data: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
    std::fs::write(&path, data).unwrap();
    std::fs::File::open(path).unwrap()
}

/// `warden run CAT < big | head -c 10`: the guest gets EPIPE and SIGPIPE, says nothing,
/// and warden ends with 141 as the native pipeline member would.
fn assert_reader_leaving_kills_with_sigpipe(args: &[&str], dir: &Path) {
    let mut child =
        warden(args).stdin(big_input(dir, 4 << 20)).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut first = [0u8; 10];
    out.read_exact(&mut first).unwrap();
    drop(out);
    let stderr = stderr_of(&mut child);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(141), "{args:?}: {stderr}");
    assert_eq!(stderr, "", "{args:?}: no I/O error, no panic");
}

#[test]
fn a_guest_writing_to_a_closed_pipe_gets_epipe_and_sigpipe() {
    let dir = temp_dir("epipe");
    // The Redox personality.
    assert_reader_leaving_kills_with_sigpipe(&["run", "/bin/cat"], &dir);
    // The Linux personality.
    if have_busybox() {
        assert_reader_leaving_kills_with_sigpipe(&["run", "--root", "/", BUSYBOX, "cat"], &dir);
    }
    // What the guest saw, in the trace: EPIPE, then SIGPIPE.
    let trace = dir.join("t.txt");
    let mut child = warden(&["run", "--trace", "-o", trace.to_str().unwrap(), "/bin/cat"])
        .stdin(big_input(&dir, 4 << 20))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 1];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(141));
    let text = std::fs::read_to_string(&trace).unwrap();
    let last_write = text.lines().rev().find(|l| l.starts_with("1 write(1, ")).unwrap_or_default();
    // The write the reader's leaving broke does not return: SIGPIPE kills the guest in it.
    assert!(last_write.ends_with(", 4096) = ?"), "{text}");
    assert!(text.ends_with("+++ killed by SIGPIPE +++\n"), "{text}");
}

// --- 3: failed writes ------------------------------------------------------------------

#[test]
fn a_trace_or_recording_that_cannot_be_written_is_an_error() {
    let o = run(&["trace", "-o", "/dev/full", "/bin/ls", "/"]);
    assert_one_line_error(&o, &["cannot write the trace to /dev/full: No space left on device"]);
    // A recording stops as soon as its writes fail (this loop would run for minutes).
    let o = run(&["record", "-o", "/dev/full", "/bin/testprog", "syscalls", "100000000"]);
    assert_one_line_error(&o, &["cannot write the recording to /dev/full: No space left on device"]);
    let o = run(&["test", "--junit", "/dev/full", "/bin/tests/files"]);
    assert_eq!(o.status.code(), Some(125), "{}", o.stderr);
    assert!(o.stderr.contains("/dev/full") && o.stderr.contains("No space left"), "{}", o.stderr);
    let dir = temp_dir("unwritable");
    let o = run(&["trace", "-o", dir.join("no/such/dir/t.txt").to_str().unwrap(), "/bin/true"]);
    assert_one_line_error(&o, &["cannot write the trace to ", "No such file or directory"]);
}

#[test]
fn a_closed_stdout_is_closed_for_the_guest_too() {
    // `warden run /bin/echo hi >&-`: natively "echo: write error: Bad file descriptor", 1.
    let o = warden(&["run", "/bin/echo", "hi"]);
    let mut o = o;
    // SAFETY: close(2) between fork and exec.
    unsafe {
        o.pre_exec(|| {
            libc::close(1);
            Ok(())
        });
    }
    let out = o.stderr(Stdio::piped()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr, "echo: write error: Bad file descriptor\n");
    if have_busybox() {
        let mut o = warden(&["run", "--root", "/", BUSYBOX, "echo", "hi"]);
        // SAFETY: as above.
        unsafe {
            o.pre_exec(|| {
                libc::close(1);
                Ok(())
            });
        }
        let native = {
            let mut n = Command::new(BUSYBOX);
            n.args(["echo", "hi"]);
            // SAFETY: as above.
            unsafe {
                n.pre_exec(|| {
                    libc::close(1);
                    Ok(())
                });
            }
            n.stderr(Stdio::piped()).output().unwrap()
        };
        let out = o.stderr(Stdio::piped()).output().unwrap();
        assert_eq!((out.status.code(), out.stderr), (native.status.code(), native.stderr));
    }
}

// --- 4: interrupted recordings -----------------------------------------------------------

/// Records `args` until the guest's first line, then sends `sig`; returns warden's stderr.
fn record_then_signal(trace: &Path, args: &[&str], sig: i32) -> String {
    let mut cmd = warden(&["record", "-o", trace.to_str().unwrap()]);
    cmd.args(args);
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let (line, _out) = first_line(&mut child);
    assert_eq!(line, "started\n");
    signal(&child, sig);
    let stderr = stderr_of(&mut child);
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(sig), "warden dies of the signal after winding up: {stderr}");
    stderr
}

#[test]
fn an_interrupted_recording_replays_up_to_the_interruption() {
    let dir = temp_dir("interrupt");
    let trace = dir.join("spin.trace");
    let stderr = record_then_signal(&trace, &["/bin/sh", "-c", "echo started; crash spin"], libc::SIGINT);
    assert!(stderr.starts_with("warden: recording interrupted by SIGINT after "), "{stderr}");
    assert!(stderr.contains("replays the run up to there"), "{stderr}");
    let o = run(&["replay", trace.to_str().unwrap()]);
    assert_eq!((o.status.code(), o.stdout.as_str()), (Some(130), "started\n"), "{}", o.stderr);
    assert!(o.stderr.starts_with("warden: replay: the recording was interrupted by SIGINT here"), "{}", o.stderr);

    // SIGTERM while the guest is blocked reading the host's stdin: it waits, it sees no error.
    let trace = dir.join("read.trace");
    let stderr = record_then_signal(&trace, &["/bin/sh", "-c", "echo started; cat; echo after"], libc::SIGTERM);
    assert!(stderr.starts_with("warden: recording interrupted by SIGTERM"), "{stderr}");
    let o = run(&["replay", trace.to_str().unwrap()]);
    assert_eq!((o.status.code(), o.stdout.as_str()), (Some(143), "started\n"), "{}", o.stderr);

    // A run the instruction budget ends records and replays as such.
    let trace = dir.join("budget.trace");
    let o = run(&["record", "-o", trace.to_str().unwrap(), "--budget", "3000000", "/bin/crash", "spin"]);
    assert_eq!(o.status.code(), Some(124), "{}", o.stderr);
    let o = run(&["replay", trace.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(124), "{}", o.stderr);
}

#[test]
fn a_trace_cut_short_replays_up_to_the_cut() {
    // A recording killed outright leaves a trace without its end: the replay reproduces the
    // run as far as the trace goes, then says where it stops.
    let dir = temp_dir("cut");
    let trace = dir.join("t.trace");
    let o = run(&["record", "-o", trace.to_str().unwrap(), "/bin/sh", "-c", "echo one; echo two; echo three"]);
    assert_eq!(o.status.code(), Some(0));
    let bytes = std::fs::read(&trace).unwrap();
    std::fs::write(&trace, &bytes[..bytes.len() * 3 / 4]).unwrap();
    let o = run(&["replay", trace.to_str().unwrap()]);
    assert_one_line_error(&o, &["is truncated at byte"]);
    assert!(o.stdout.starts_with("one\n"), "{}", o.stdout);
}

// --- 5, 6: the root of a recording ---------------------------------------------------------

#[test]
fn a_relative_root_is_found_again_from_another_directory() {
    let dir = temp_dir("relroot");
    let root = dir.join("root3");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy(Path::new(env!("WARDEN_GUEST_BIN_DIR")).join("cat"), root.join("bin/cat")).unwrap();
    std::fs::write(root.join("data.txt"), "data\n").unwrap();
    let trace = dir.join("t.trace");
    let o = warden(&["record", "-o", "t.trace", "--root", "root3", "/bin/cat", "/data.txt"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_eq!((o.status.code(), &o.stdout[..]), (Some(0), &b"data\n"[..]));
    // Replayed from elsewhere: the recorded root is found by its absolute path.
    let o = warden(&["replay", trace.to_str().unwrap()]).current_dir("/").output().unwrap();
    assert_eq!((o.status.code(), &o.stdout[..]), (Some(0), &b"data\n"[..]), "{}", String::from_utf8_lossy(&o.stderr));
    // Moved: the message names it and the option to pass.
    std::fs::rename(&root, dir.join("moved")).unwrap();
    let o = run(&["replay", trace.to_str().unwrap()]);
    assert_one_line_error(&o, &["root3 (given as root3 when recording) is not there", "--root DIR"]);
    let moved = dir.join("moved");
    let o = run(&["replay", "--root", moved.to_str().unwrap(), trace.to_str().unwrap()]);
    assert_eq!((o.status.code(), o.stdout.as_str()), (Some(0), "data\n"), "{}", o.stderr);
}

#[test]
fn recording_on_the_host_root_reads_only_what_the_guest_uses() {
    // `warden record --root / ./prog`: no walk of the host file system; the replay checks
    // the files the guest used, so unrelated changes on the host do not matter.
    let dir = temp_dir("hostroot");
    std::fs::write(dir.join("data.txt"), "host data\n").unwrap();
    std::fs::write(dir.join("other.txt"), "other\n").unwrap();
    std::fs::copy(Path::new(env!("WARDEN_GUEST_BIN_DIR")).join("cat"), dir.join("cat")).unwrap();
    let o =
        warden(&["record", "-o", "t.trace", "--root", "/", "./cat", "data.txt"]).current_dir(&dir).output().unwrap();
    assert_eq!((o.status.code(), &o.stdout[..]), (Some(0), &b"host data\n"[..]));
    // Far fewer than the host's files: the trace names what the guest opened.
    let trace = std::fs::read(dir.join("t.trace")).unwrap();
    assert!(trace.len() < 4096, "{} bytes", trace.len());
    std::fs::write(dir.join("other.txt"), "changed\n").unwrap();
    let o = warden(&["replay", dir.join("t.trace").to_str().unwrap()]).current_dir("/").output().unwrap();
    assert_eq!((o.status.code(), &o.stdout[..]), (Some(0), &b"host data\n"[..]));
    std::fs::write(dir.join("data.txt"), "host date\n").unwrap();
    let o = warden(&["replay", "t.trace"]).current_dir(&dir).stdin(Stdio::null()).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(125), "{err}");
    assert!(err.contains("data.txt changed since the recording: its contents differ"), "{err}");
}

// --- 7: qemu-user habits -------------------------------------------------------------------

#[test]
fn a_host_program_runs_as_qemu_would_run_it() {
    if !have_busybox() {
        return;
    }
    let dir = temp_dir("qemu");
    // (busybox picks its applet from its name: the copy keeps it.)
    std::fs::create_dir_all(dir.join("bb")).unwrap();
    std::fs::copy(BUSYBOX, dir.join("bb/busybox")).unwrap();
    let bb = "./bb/busybox";
    for args in [&["run", bb, "echo", "hi"][..], &[bb, "echo", "hi"], &[BUSYBOX, "echo", "hi"]] {
        let o = warden(args).current_dir(&dir).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!((o.status.code(), &o.stdout[..]), (Some(0), &b"hi\n"[..]), "{args:?}: {err}");
    }
    // With an image that lacks it, the exact command that would run it.
    let image = dir.join("empty.tar");
    tar::Builder::new(std::fs::File::create(&image).unwrap()).finish().unwrap();
    let o = warden(&["run", "--image", "empty.tar", bb, "echo"]).current_dir(&dir).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(127), "{err}");
    assert_eq!(
        err,
        "warden: ./bb/busybox: program not found in the image empty.tar; the host has ./bb/busybox: run it with \
         `warden run --root / ./bb/busybox`\n"
    );
    let o = warden(&["run", "--image", "empty.tar", "busybox"]).current_dir(&dir).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("run it with `warden run --root / ") && err.ends_with("busybox`\n"), "{err}");
}

// --- 9: a guest killed by a signal -------------------------------------------------------

#[test]
fn a_guest_killed_by_a_signal_gets_one_line_like_qemu() {
    let o = run(&["run", "/bin/crash", "segv"]);
    assert_eq!(o.status.code(), Some(139));
    assert!(o.stderr.starts_with("warden: guest /bin/crash (pid 1) killed by SIGSEGV at 0x"), "{}", o.stderr);
    assert!(o.stderr.ends_with(" (Segmentation fault; address 0x0)\n"), "{}", o.stderr);
    assert_eq!(o.stderr.lines().count(), 1);
    let o = run(&["run", "--quiet", "/bin/crash", "segv"]);
    assert_eq!((o.status.code(), o.stderr.as_str()), (Some(139), ""));
    // A child: the line names it; the shell goes on.
    let o = run(&["run", "/bin/sh", "-c", "crash ud; echo status $?"]);
    assert_eq!(o.stdout, "status 132\n");
    assert!(o.stderr.contains("warden: guest crash (pid 2) killed by SIGILL at 0x"), "{}", o.stderr);
    // Signals that dump no core (SIGPIPE, SIGTERM, SIGKILL) print nothing, as with qemu.
    let o = run(&["run", "/bin/sh", "-c", "kill -9 $$"]);
    assert_eq!((o.status.code(), o.stderr.as_str()), (Some(137), ""));
}

// --- 10: one-line errors -----------------------------------------------------------------

#[test]
fn errors_are_one_line_naming_the_path_and_what_to_do() {
    let dir = temp_dir("errors");
    let file = dir.join("file.txt");
    std::fs::write(&file, "not a tar\n").unwrap();
    let f = file.to_str().unwrap();
    let d = dir.to_str().unwrap();
    let missing = dir.join("missing");
    let m = missing.to_str().unwrap();
    assert_one_line_error(&run(&["run", "--image", d]), &[&format!("--image {d}: is a directory; use --root {d}")]);
    assert_one_line_error(&run(&["run", "--image", m]), &[&format!("--image {m}: no such file or directory")]);
    assert_one_line_error(&run(&["run", "--image", f]), &[&format!("--image {f}: "), "tar -cf"]);
    assert_one_line_error(&run(&["run", "--root", m]), &[&format!("--root {m}: no such file or directory")]);
    assert_one_line_error(
        &run(&["run", "--root", f]),
        &[&format!("--root {f}: not a directory (for a tar archive use --image")],
    );
    assert_one_line_error(&run(&["run", "--overlay", f, "/bin/true"]), &[&format!("--overlay {f}: not a directory")]);
    assert_one_line_error(&run(&["test", "--seeds", "5..1"]), &["--seeds 5..1: the range is empty"]);
    let manifest = dir.join("m.toml");
    std::fs::write(&manifest, "[[test]]\nname = \"a\"\nrun = \"/bin/true\"\n\n[[test]]\nname = \"b\"\n").unwrap();
    let mf = manifest.to_str().unwrap();
    assert_one_line_error(&run(&["test", mf]), &[&format!("{mf}:5: this test has no `run`")]);
    let empty = dir.join("emptydir");
    std::fs::create_dir_all(&empty).unwrap();
    let e = empty.to_str().unwrap();
    assert_one_line_error(&run(&["test", e]), &[&format!("{e}: no tests found")]);
    let o = run(&["run", "/bin/nosuch"]);
    assert_eq!(o.status.code(), Some(127));
    assert_eq!(o.stderr, "warden: /bin/nosuch: program not found in the default image\n");
}

#[test]
fn the_help_of_run_says_how_host_programs_run() {
    let o = run(&["run", "--help"]);
    assert!(o.status.success());
    assert!(o.stdout.contains("--root /") && o.stdout.contains("--quiet"), "{}", o.stdout);
    let _ = std::io::stdout().flush();
}

/// The README's set-up (item 12) makes `./tree` and `rootfs.tar` from busybox, and its tour
/// says busybox is the full POSIX shell (item 11): `if`, `while`, `for`, `case` and `sh -i`.
#[test]
fn the_readme_busybox_image_is_a_full_shell() {
    if !have_busybox() {
        return;
    }
    let dir = temp_dir("readme-image");
    let tree = dir.join("tree");
    std::fs::create_dir_all(tree.join("bin")).unwrap();
    std::fs::create_dir_all(tree.join("tmp")).unwrap();
    std::fs::copy(BUSYBOX, tree.join("bin/busybox")).unwrap();
    for a in ["sh", "ls", "cat", "echo"] {
        std::os::unix::fs::symlink("busybox", tree.join("bin").join(a)).unwrap();
    }
    let tar = dir.join("rootfs.tar");
    let st = Command::new("tar").arg("-cf").arg(&tar).arg("-C").arg(&tree).arg(".").status().unwrap();
    assert!(st.success());
    let script = "for i in 1 2 3; do case $i in 2) echo two;; *) echo $i;; esac; done; \
                  n=0; while [ $n -lt 2 ]; do n=$((n+1)); done; if [ $n = 2 ]; then echo done; fi";
    let want = "1\ntwo\n3\ndone\n";
    let o = run(&["run", "--image", tar.to_str().unwrap(), "/bin/sh", "-c", script]);
    assert_eq!((o.status.code(), o.stdout.as_str()), (Some(0), want), "{}", o.stderr);
    let o = run(&["run", "--root", tree.to_str().unwrap(), "/bin/sh", "-c", script]);
    assert_eq!((o.status.code(), o.stdout.as_str()), (Some(0), want), "{}", o.stderr);
    // Interactive: commands from stdin, one prompt each, `exit` ends with its status.
    let mut child = warden(&["run", "--image", tar.to_str().unwrap(), "/bin/sh", "-i"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"if true; then echo yes; fi\nexit 3\n").unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(3));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("yes") && out.contains("# "), "{out}");
}

// --- 8: strace habits --------------------------------------------------------------------

/// True if the host program `tool` runs; otherwise SKIPPED (or a failure when tools are
/// required).
fn have_tool(tool: &str) -> bool {
    let found = Command::new(tool).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok();
    if !found {
        assert!(std::env::var("WARDEN_REQUIRE_TOOLS").as_deref() != Ok("1"), "{tool} not found");
        eprintln!("SKIPPED: {tool} not found");
    }
    found
}

/// A static Linux program from C source, built with gcc in `dir`.
fn static_c(dir: &Path, name: &str, source: &str) -> PathBuf {
    let src = dir.join(format!("{name}.c"));
    std::fs::write(&src, source).unwrap();
    let exe = dir.join(name);
    let st = Command::new("gcc").args(["-static", "-O0", "-o"]).arg(&exe).arg(&src).status().unwrap();
    assert!(st.success(), "gcc failed on {name}.c");
    exe
}

/// A Linux program's trace reads like strace's: the initial execve, flag names, errno as
/// `-1 ENAME (text)`, and the signal and death lines exactly as the host's strace prints
/// them for the same program.
#[test]
fn a_linux_trace_reads_like_strace() {
    if !have_tool("gcc") {
        return;
    }
    let dir = temp_dir("strace-like");
    let crash = static_c(&dir, "crash", "int main(void) { *(volatile int *)8 = 1; return 0; }\n");
    let o = run(&["trace", crash.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(139), "{}", o.stderr);
    let first = o.stderr.lines().next().unwrap_or_default();
    assert!(first.starts_with(&format!("1 execve(\"{}\", [\"", crash.display())), "{first}");
    assert!(first.ends_with(" /* 1 var */) = 0"), "{first}");
    for needle in
        ["arch_prctl(ARCH_SET_FS, 0x", "prlimit64(0, RLIMIT_STACK, ", " = -1 ENOSYS (Function not implemented)"]
    {
        assert!(o.stderr.contains(needle), "{needle:?} missing:\n{}", o.stderr);
    }
    let ours: Vec<&str> = o
        .stderr
        .lines()
        .filter_map(|l| l.strip_prefix("1 "))
        .filter(|l| l.starts_with("---") || l.starts_with("+++"))
        .collect();
    assert_eq!(ours.len(), 2, "{}", o.stderr);
    if have_tool("strace") {
        let s = Command::new("strace").arg(&crash).stdout(Stdio::null()).output().unwrap();
        let theirs = String::from_utf8_lossy(&s.stderr).into_owned();
        let theirs: Vec<&str> = theirs.lines().filter(|l| l.starts_with("---") || l.starts_with("+++")).collect();
        assert_eq!(ours, theirs);
    }
    // A stat reads as strace's (busybox's `ls -l` makes one on the path it is given).
    if have_busybox() && have_tool("strace") {
        let path = crash.to_str().unwrap();
        let stat_line = |text: &str| -> String {
            let line =
                text.lines().find(|l| l.contains(&format!("newfstatat(AT_FDCWD, \"{path}\""))).unwrap_or_default();
            let line = line.split_once("newfstatat(").map_or("", |(_, l)| l);
            line.split_whitespace().collect::<Vec<_>>().join(" ")
        };
        let o = run(&["trace", "--root", "/", BUSYBOX, "ls", "-l", path]);
        let s = Command::new("strace").args([BUSYBOX, "ls", "-l", path]).stdout(Stdio::null()).output().unwrap();
        let ours = stat_line(&o.stderr);
        assert!(ours.contains("{st_mode=S_IFREG|0755, st_size="), "{}", o.stderr);
        assert_eq!(ours, stat_line(&String::from_utf8_lossy(&s.stderr)));
    }
    // -e signal=none drops the signal line, not the death.
    let o = run(&["trace", "-e", "signal=none", crash.to_str().unwrap()]);
    assert!(!o.stderr.contains("--- SIGSEGV") && o.stderr.contains("+++ killed by SIGSEGV +++"), "{}", o.stderr);
}

/// strace's options: -f, -ff -o FILE (FILE.PID, lines without the pid), -s, -e trace=,
/// -tt/-T on the virtual clock (so two runs print the same), -p, -c with host time.
#[test]
fn strace_options_work_on_guest_runs() {
    let dir = temp_dir("strace-options");
    let script = ["/bin/sh", "-c", "echo hello; echo x | wc -c"];
    // -ff -o: one file per process, the first with strace's execve line.
    let base = dir.join("t");
    let o = run(&[&["trace", "-ff", "-o", base.to_str().unwrap()][..], &script[..]].concat());
    assert_eq!(o.status.code(), Some(0), "{}", o.stderr);
    let mut files: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    files.sort();
    assert_eq!(files, ["t.1", "t.2", "t.3", "t.4"]);
    let one = std::fs::read_to_string(dir.join("t.1")).unwrap();
    assert!(one.starts_with("execve(\"/bin/sh\", [\"/bin/sh\", \"-c\", "), "{one}");
    assert!(one.lines().any(|l| l.starts_with("waitpid(")) && one.ends_with("+++ exited with 0 +++\n"), "{one}");
    let two = std::fs::read_to_string(dir.join("t.2")).unwrap();
    assert!(two.lines().any(|l| l == "write(1, \"hello\\n\", 6) = 6"), "{two}");
    // -f -s 2 -e trace=write -tt -T: stamped, cut, filtered, the same twice.
    let args = [&["trace", "-f", "-s", "2", "-e", "trace=write", "-tt", "-T"][..], &script[..]].concat();
    let (a, b) = (run(&args), run(&args));
    assert_eq!(a.stderr, b.stderr, "virtual time stamps differ between runs");
    let writes: Vec<&str> = a.stderr.lines().filter(|l| l.contains(" write(")).collect();
    assert_eq!(writes.len(), 3, "{}", a.stderr);
    for l in &writes {
        let (pid, rest) = l.split_once(' ').unwrap();
        assert!(pid.parse::<u32>().is_ok(), "{l}");
        let (stamp, call) = rest.split_once(' ').unwrap();
        assert!(stamp.len() == 15 && stamp.starts_with("00:00:00."), "{l}");
        assert!(call.starts_with("write(1, \""), "{l}");
        assert!(call.ends_with('>') && call.contains(" <0.0"), "{l}");
    }
    assert!(writes.iter().any(|l| l.contains("write(1, \"he\"..., 6) = 6")), "{}", a.stderr);
    assert!(!a.stderr.contains(" read("), "{}", a.stderr);
    // -p 2: only the first child.
    let o = run(&[&["trace", "-p", "2"][..], &script[..]].concat());
    assert!(
        o.stderr.lines().all(|l| l.starts_with("2 ")) && o.stderr.contains("write(1, \"hello\\n\""),
        "{}",
        o.stderr
    );
    // -c: host time per call; a waitpid (blocked while the children run) does not take it all.
    let o = run(&[&["trace", "-c"][..], &script[..]].concat());
    let lines: Vec<&str> = o.stderr.lines().collect();
    assert_eq!(lines[0], "% time     seconds  usecs/call     calls    errors syscall", "{}", o.stderr);
    let total = lines.last().unwrap();
    assert!(total.starts_with("100.00 ") && total.ends_with(" total"), "{total}");
    let wait = lines.iter().find(|l| l.ends_with(" waitpid")).unwrap();
    let share: f64 = wait.split_whitespace().next().unwrap().parse().unwrap();
    assert!(share < 90.0, "{}", o.stderr);
}

// --- `warden run` leaves init's memory to the process exit -------------------------------

/// `warden run` ends its process right after the run, leaving the memory of the program
/// it ran to the exit (see `Kernel::leave_init_memory_to_exit`): nothing the guest wrote is
/// lost and the status is the guest's, with either tier. The program forks a child that
/// writes too, writes 8 MiB to a pipe the test drains in small reads (the writes block
/// and resume), ends with a line on stderr and exits 7; with a budget it stops at 124.
#[test]
fn a_run_that_ends_the_process_delivers_all_output_and_its_status() {
    use std::io::Read;
    let dir = temp_dir("exit-after-run");
    let prog = static_c(
        &dir,
        "big",
        r#"
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
int main(void) {
    pid_t pid = fork();
    if (pid == 0) {
        write(1, "child\n", 6);
        _exit(3);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    char line[16];
    for (int i = 0; i < (1 << 20); i++) {
        snprintf(line, sizeof line, "%07d\n", i);
        fwrite(line, 1, 8, stdout);
    }
    fflush(stdout);
    fprintf(stderr, "done %d\n", WEXITSTATUS(st));
    return 7;
}
"#,
    );
    let mut want = b"child\n".to_vec();
    for i in 0..1 << 20 {
        want.extend_from_slice(format!("{i:07}\n").as_bytes());
    }
    let prog = prog.to_str().unwrap();
    for tier in ["interp", "jit"] {
        let mut child = warden(&["run", "--tier", tier, "--root", "/", prog])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = child.stdout.take().unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 512];
        loop {
            let n = out.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        let err = stderr_of(&mut child);
        let status = child.wait().unwrap();
        assert_eq!(err, "done 3\n", "{tier}");
        assert_eq!(status.code(), Some(7), "{tier}: {err}");
        assert!(got == want, "{tier}: {} bytes of {}", got.len(), want.len());
        let o = run(&["run", "--tier", tier, "--budget", "200000", "--root", "/", prog]);
        assert_eq!(o.status.code(), Some(124), "{tier}: {}", o.stderr);
        assert!(o.stderr.contains("instruction budget"), "{tier}: {}", o.stderr);
    }
}

/// `--perf-map` writes `/tmp/perf-PID.map` for the warden process, one line per block the
/// jit translated, in `perf`'s format (`START SIZE NAME`, hexadecimal without `0x`), each
/// naming the guest address of its block; the run itself is unchanged.
#[test]
fn perf_map_names_translated_blocks_by_guest_address() {
    if !have_busybox() {
        return;
    }
    let script = "i=0; while [ $i -lt 3000 ]; do i=$((i+1)); done; echo $i";
    let child = warden(&["run", "--perf-map", "--root", "/", BUSYBOX, "sh", "-c", script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let map = PathBuf::from(format!("/tmp/perf-{}.map", child.id()));
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "3000\n");
    let text = std::fs::read_to_string(&map).unwrap_or_else(|e| panic!("{}: {e}", map.display()));
    let _ = std::fs::remove_file(&map);
    let mut names = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let ok = match fields[..] {
            [start, size, name] => {
                names.push(name);
                u64::from_str_radix(start, 16).is_ok_and(|s| s > 0)
                    && u64::from_str_radix(size, 16).is_ok_and(|s| s > 0)
                    && (name.strip_prefix("guest:0x").is_some_and(|a| u64::from_str_radix(a, 16).is_ok())
                        || ["warden:enter", "warden:chain", "warden:exit"].contains(&name))
            }
            _ => false,
        };
        assert!(ok, "not a perf map line: {line:?}");
    }
    let blocks = names.iter().filter(|n| n.starts_with("guest:")).count();
    assert!(blocks >= 10, "{blocks} blocks:\n{text}");
    for stub in ["warden:enter", "warden:chain", "warden:exit"] {
        assert!(names.contains(&stub), "{stub} missing:\n{text}");
    }
}
