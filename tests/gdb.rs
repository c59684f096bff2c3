//! `warden run --gdb` and `warden replay --gdb` driven by the real gdb in batch mode, on
//! `tests/fixtures/gdb/counter.c` built with the host's `gcc -g -O0 -static`.
//!
//! warden prints the address it listens on (`--gdb 127.0.0.1:0` lets the system choose a
//! port) before it waits; the test reads that line, then starts gdb on it: no sleeps. A
//! missing gcc or gdb skips with a "SKIPPED: ..." line, or fails under
//! `WARDEN_REQUIRE_TOOLS=1` (set by `.ci/run`, which installs both).

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

fn require_tools() -> bool {
    std::env::var("WARDEN_REQUIRE_TOOLS").is_ok_and(|v| v == "1")
}

fn on_path(cmd: &str) -> bool {
    Command::new(cmd).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}

/// The fixture, built once; `None` (after a SKIPPED line) without gcc or gdb.
fn fixture() -> Option<&'static Path> {
    static BIN: OnceLock<Option<PathBuf>> = OnceLock::new();
    BIN.get_or_init(|| {
        for tool in ["gcc", "gdb"] {
            if !on_path(tool) {
                assert!(!require_tools(), "{tool} not found but WARDEN_REQUIRE_TOOLS=1");
                eprintln!("SKIPPED: {tool} not found");
                return None;
            }
        }
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("gdb");
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join(format!("counter-{}", std::process::id()));
        let src = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/gdb/counter.c");
        let status = Command::new("gcc")
            .args(["-g", "-O0", "-static", "-pthread", "-o"])
            .arg(&out)
            .arg(src)
            .status()
            .expect("run gcc");
        assert!(status.success(), "gcc failed on {src}");
        Some(out)
    })
    .as_deref()
}

/// warden started with `args`, and the address it waits for gdb on.
fn start_warden(args: &[&str]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start warden");
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    let addr = line
        .split_whitespace()
        .find(|w| w.starts_with("127.0.0.1:"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    child.stderr = None;
    // Keep draining warden's stderr so it never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
    (child, addr)
}

/// Runs gdb in batch mode on `prog` against `addr` with `commands`: its whole output.
fn gdb(prog: &Path, addr: &str, commands: &[&str]) -> String {
    gdb_on(Some(prog), addr, commands)
}

/// [`gdb`], given the program or not (then warden names it).
fn gdb_on(prog: Option<&Path>, addr: &str, commands: &[&str]) -> String {
    let mut cmd = Command::new("gdb");
    cmd.args(["-batch", "-nx"]).args(prog).args(["-ex", &format!("target remote {addr}")]);
    for c in commands {
        cmd.args(["-ex", c]);
    }
    let out = cmd.stdin(Stdio::null()).output().expect("run gdb");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    eprintln!("--- gdb ---\n{text}");
    text
}

/// warden's exit status and stdout.
fn finish(mut child: Child) -> (i32, String) {
    let mut out = String::new();
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    let status = child.wait().unwrap();
    (status.code().unwrap_or(-1), out)
}

fn assert_has(text: &str, want: &str) {
    assert!(text.contains(want), "gdb output lacks {want:?}");
}

/// The text after `prefix` on the first line starting with it.
fn after<'a>(text: &'a str, prefix: &str) -> &'a str {
    let line = text.lines().find_map(|l| l.trim_start().strip_prefix(prefix));
    line.unwrap_or_else(|| panic!("no line starting with {prefix:?}")).split_whitespace().next().unwrap_or("")
}

#[test]
fn live_run_breakpoints_steps_registers_and_memory() {
    let Some(prog) = fixture() else { return };
    let p = prog.to_str().unwrap();
    let (child, addr) = start_warden(&["run", "--gdb", "127.0.0.1:0", "--root", "/", p]);
    let out = gdb(
        prog,
        &addr,
        &[
            "break bump",
            "continue",
            "print by",
            "print counter",
            "continue",
            "print counter",
            "set var counter = 100",
            "print counter",
            "set $a = $pc",
            "stepi",
            "x/2i $a",
            "print/x $pc",
            "print $fs_base != 0 && $rsp != 0",
            "info threads",
            "monitor icount",
            "delete",
            "continue",
        ],
    );
    assert_has(&out, "Breakpoint 1, bump (by=1)");
    assert_has(&out, "$1 = 1");
    assert_has(&out, "$2 = 0");
    assert_has(&out, "Breakpoint 1, bump (by=2)");
    assert_has(&out, "$3 = 1");
    assert_has(&out, "$4 = 100");
    // One stepi: the pc is the instruction after the breakpoint's (x/2i marks it `=>`).
    assert_eq!(after(&out, "=> "), after(&out, "$5 = "));
    assert_has(&out, "$6 = 1");
    assert_has(&out, "* 1    Thread 1.1");
    // 100 + 2 + 3 + 4 + 5 = 114: exit status 99 (gdb prints it in octal).
    assert_has(&out, "exited with code 0143");
    let (status, stdout) = finish(child);
    assert_eq!((status, stdout.as_str()), (99, "counter=114 side=7\n"));
}

#[test]
fn kill_ends_the_run_as_sigkill() {
    let Some(prog) = fixture() else { return };
    let p = prog.to_str().unwrap();
    let (child, addr) = start_warden(&["run", "--gdb", "127.0.0.1:0", "--root", "/", p]);
    let out = gdb(prog, &addr, &["break bump", "continue", "kill"]);
    assert_has(&out, "Breakpoint 1, bump (by=1)");
    let (status, stdout) = finish(child);
    assert_eq!((status, stdout.as_str()), (128 + 9, ""));
}

#[test]
fn replay_under_gdb_reads_but_never_writes() {
    let Some(prog) = fixture() else { return };
    let trace = record(prog, "read-only");
    let (child, addr) = start_warden(&["replay", "--gdb", "127.0.0.1:0", &trace]);
    let out = gdb(
        prog,
        &addr,
        &[
            "break bump",
            "continue",
            "continue",
            "print counter",
            "set var counter = 5",
            "print counter",
            "delete",
            "continue",
        ],
    );
    assert_has(&out, "Breakpoint 1, bump (by=2)");
    assert_has(&out, "$1 = 1");
    assert_has(&out, "Cannot access memory");
    assert_has(&out, "$2 = 1");
    assert_has(&out, "exited normally");
    let (status, stdout) = finish(child);
    assert_eq!((status, stdout.as_str()), (0, "counter=15 side=7\n"), "the replay still matched its recording");
}

#[test]
fn write_watchpoint_stops_after_each_change() {
    let Some(prog) = fixture() else { return };
    let p = prog.to_str().unwrap();
    let (child, addr) = start_warden(&["run", "--gdb", "127.0.0.1:0", "--root", "/", p]);
    let out = gdb(prog, &addr, &["watch counter", "continue", "continue", "print by", "delete", "continue"]);
    assert_has(&out, "Hardware watchpoint 1: counter");
    assert_has(&out, "Old value = 0\nNew value = 1");
    assert_has(&out, "Old value = 1\nNew value = 3");
    assert_has(&out, "$1 = 2");
    assert_has(&out, "exited normally");
    assert_eq!(finish(child), (0, "counter=15 side=7\n".to_string()));
}

/// Records the fixture into a trace named after `tag`; the trace's path.
fn record(prog: &Path, tag: &str) -> String {
    let trace = prog.with_extension(format!("{tag}.trace"));
    let t = trace.to_str().unwrap().to_string();
    let rec = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["record", "-o", &t, "--root", "/"])
        .arg(prog)
        .output()
        .expect("record");
    assert_eq!(rec.status.code(), Some(0));
    t
}

/// Reverse continue, stepi and watch on a replay of the fixture started with `extra`
/// options; gdb's output.
fn reverse_session(tag: &str, extra: &[&str], more: &[&str]) -> String {
    let Some(prog) = fixture() else { return String::new() };
    let trace = record(prog, tag);
    let (child, addr) = start_warden(&[&["replay", "--gdb", "127.0.0.1:0"], extra, &[&trace]].concat());
    let cmds = [
        "break bump",
        "continue",
        "reverse-continue",
        "continue",
        "continue",
        "continue",
        "print by",
        "reverse-continue",
        "print by",
        "print counter",
        "set $a = $pc",
        "reverse-stepi",
        "print $pc < $a",
        "stepi",
        "print $pc == $a",
        "watch counter",
        "reverse-continue",
        "print counter",
    ];
    let out = gdb(prog, &addr, &[&cmds[..], more, &["delete", "continue"]].concat());
    // Nothing before the first hit: back to the start.
    assert_has(&out, "No more reverse-execution history.");
    assert_has(&out, "$1 = 3");
    assert_has(&out, "$2 = 2\n$3 = 1");
    assert_has(&out, "$4 = 1\n");
    assert_has(&out, "$5 = 1\n");
    // Where counter last changed: just before the store of bump(1) (1 -> 0 backwards).
    assert_has(&out, "Old value = 1\nNew value = 0");
    assert_has(&out, "$6 = 0");
    assert_has(&out, "exited normally");
    // Replaying again showed no output twice, and the replay still matched.
    assert_eq!(finish(child), (0, "counter=15 side=7\n".to_string()));
    out
}

#[test]
fn reverse_continue_stepi_and_watch_on_a_replay() {
    reverse_session("reverse", &["--checkpoint-every", "0"], &[]);
}

#[test]
fn reverse_execution_resumes_checkpoints_and_thins_them() {
    // A checkpoint every 1000 instructions, at most 4 kept: going back resumes forked
    // copies of warden from all over the run, and each pass takes and drops more.
    let out = reverse_session(
        "checkpoints",
        &["--checkpoint-every", "1000", "--max-checkpoints", "4"],
        &["monitor checkpoints", "reverse-continue", "print counter", "continue", "print counter"],
    );
    if out.is_empty() {
        return;
    }
    assert_has(&out, "4 checkpoints, every 1000 instructions:");
    // Back past the start of the watch: the value it had when set (0), then forward to
    // the change again.
    assert_has(&out, "$7 = 0");
    assert_has(&out, "$8 = 1");
}

#[test]
fn follow_child_and_attach_to_a_pid() {
    let Some(prog) = fixture() else { return };
    let p = prog.to_str().unwrap();
    let (child, addr) = start_warden(&["run", "--gdb", "127.0.0.1:0", "--root", "/", p, "fork"]);
    let cmds = ["monitor follow child", "break bump", "continue", "monitor pids", "continue", "print by"];
    let out = gdb(prog, &addr, &[&cmds[..], &["print counter", "delete", "continue"]].concat());
    assert_has(&out, "debugs the new process");
    // Stopped in the child's thread (pid 2) right after the fork, then at its call.
    assert_has(&out, "Thread 2 received signal SIGTRAP");
    assert_has(&out, "Thread 2 hit Breakpoint 1, bump (by=100)");
    assert_has(&out, "$1 = 100");
    assert_has(&out, "$2 = 0");
    assert_has(&out, "    2     1 alive ");
    assert_eq!(finish(child), (0, "counter=15 side=7\n".to_string()));

    // The child is pid 2 (the first id after init's); on a replay, from the start.
    let trace = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["record", "-o"])
        .arg(prog.with_extension("fork.trace"))
        .args(["--root", "/", p, "fork"])
        .status()
        .expect("record");
    assert!(trace.success());
    let t = prog.with_extension("fork.trace");
    let (child, addr) = start_warden(&["replay", "--gdb", "127.0.0.1:0", "--gdb-pid", "2", t.to_str().unwrap()]);
    let out = gdb(prog, &addr, &["break bump", "continue", "print by", "monitor attach 1", "delete", "continue"]);
    assert_has(&out, "Breakpoint 1, bump (by=100)");
    assert_has(&out, "$1 = 100");
    assert_has(&out, "debugging process 1");
    assert_eq!(finish(child), (0, "counter=15 side=7\n".to_string()));
}

#[test]
fn follow_child_across_fork_and_exec() {
    let Some(prog) = fixture() else { return };
    if !Path::new("/bin/busybox").exists() {
        assert!(!require_tools(), "/bin/busybox not found but WARDEN_REQUIRE_TOOLS=1");
        eprintln!("SKIPPED: /bin/busybox not found");
        return;
    }
    // The shell forks, and the child execs the fixture (`; true`: no exec in place).
    let p = prog.to_str().unwrap();
    let script = format!("{p}; true");
    let args = ["run", "--gdb", "127.0.0.1:0", "--root", "/", "/bin/busybox", "sh", "-c", &script];
    let (child, addr) = start_warden(&args);
    let file = format!("file {p}");
    let cmds = ["monitor follow child", "continue", "continue", &file, "info symbol $pc", "break bump", "continue"];
    let out =
        gdb_on(Some(Path::new("/bin/busybox")), &addr, &[&cmds[..], &["print by", "delete", "continue"]].concat());
    // Stopped in the new process after the fork, then at the fixture's first instruction.
    assert_eq!(out.matches("received signal SIGTRAP").count(), 2, "a fork stop and an exec stop");
    assert_has(&out, "_start in section .text");
    assert_has(&out, "hit Breakpoint 1, bump (by=1)");
    assert_has(&out, "$1 = 1");
    assert_eq!(finish(child), (0, "counter=15 side=7\n".to_string()));
}

#[test]
fn threads_and_fault_signals() {
    let Some(prog) = fixture() else { return };
    let p = prog.to_str().unwrap();
    let (child, addr) = start_warden(&["run", "--gdb", "127.0.0.1:0", "--root", "/", p]);
    let out = gdb(prog, &addr, &["break worker", "continue", "info threads", "print $_thread", "delete", "continue"]);
    assert_has(&out, "Breakpoint 1, worker");
    assert_has(&out, "Thread 1.1");
    assert_has(&out, "* 2    Thread 1.2");
    assert_has(&out, "$1 = 2");
    assert_eq!(finish(child), (0, "counter=15 side=7\n".to_string()));

    let q = ["run", "--gdb", "127.0.0.1:0", "-q", "--root", "/", p, "crash"];
    let (child, addr) = start_warden(&q);
    let out = gdb(prog, &addr, &["continue", "continue"]);
    assert_has(&out, "Program received signal SIGSEGV");
    assert_has(&out, "Program terminated with signal SIGSEGV");
    assert_eq!(finish(child).0, 128 + 11);
}

#[test]
fn read_and_access_watchpoints_see_every_access() {
    let Some(prog) = fixture() else { return };
    let p = prog.to_str().unwrap();
    let (child, addr) = start_warden(&["run", "--gdb", "127.0.0.1:0", "--root", "/", p]);
    let cmds =
        ["rwatch counter", "continue", "print by", "continue", "delete", "awatch counter", "continue", "continue"];
    let out = gdb(prog, &addr, &[&cmds[..], &["print by", "delete", "continue"]].concat());
    // bump(1) reads counter twice (`counter += by`, then `return counter`), writes it once.
    assert_has(&out, "Hardware read watchpoint 1: counter\n\nValue = 0\n");
    assert_has(&out, "$1 = 1");
    assert_has(&out, "Hardware read watchpoint 1: counter\n\nValue = 1\n");
    assert_has(&out, "Hardware access (read/write) watchpoint 2: counter\n\nValue = 1\n");
    assert_has(&out, "Hardware access (read/write) watchpoint 2: counter\n\nOld value = 1\nNew value = 3\n");
    assert_has(&out, "$2 = 2");
    assert_eq!(finish(child), (0, "counter=15 side=7\n".to_string()));

    // Backwards on a replay: the last read of counter before bump(3) is bump(2)'s return.
    let trace = record(prog, "rwatch");
    let (child, addr) = start_warden(&["replay", "--gdb", "127.0.0.1:0", &trace]);
    let cmds = ["break bump if by == 3", "continue", "rwatch counter", "reverse-continue", "print by", "print counter"];
    let out = gdb(prog, &addr, &[&cmds[..], &["delete", "continue"]].concat());
    assert_has(&out, "Value = 3\n");
    assert_has(&out, "$1 = 2");
    assert_eq!(finish(child), (0, "counter=15 side=7\n".to_string()));
}

#[test]
fn avx_registers_show_their_upper_halves() {
    let Some(prog) = fixture() else { return };
    let p = prog.to_str().unwrap();
    let (child, addr) = start_warden(&["run", "--gdb", "127.0.0.1:0", "--root", "/", p]);
    let cmds = ["break ymm_loaded", "continue", "print $ymm1.v4_int64", "print $xmm1.v2_int64", "info registers ymm1"];
    let out = gdb(prog, &addr, &[&cmds[..], &["delete", "continue"]].concat());
    assert_has(&out, "$1 = {1, 2, 3, 4}");
    assert_has(&out, "$2 = {1, 2}");
    assert_has(&out, "v4_int64 = {0x1, 0x2, 0x3, 0x4}");
    assert_eq!(finish(child), (0, "counter=15 side=7\n".to_string()));
}

#[test]
fn replay_goto_starts_at_an_exact_count_and_names_the_program() {
    let Some(prog) = fixture() else { return };
    let trace = record(prog, "goto");
    let (child, addr) = start_warden(&["replay", "--gdb", "127.0.0.1:0", "--goto", "5000", &trace]);
    // No program given to gdb: warden serves its path (qXfer:exec-file).
    let out = gdb_on(None, &addr, &["monitor icount", "print counter", "break bump", "continue", "print by"]);
    assert_has(&out, &format!("Reading symbols from {}", prog.display()));
    assert_has(&out, "\n5000\n");
    assert_has(&out, "$1 = 0");
    assert_has(&out, "Breakpoint 1, bump (by=1)");
    assert_eq!(finish(child).1, "counter=15 side=7\n");

    let past = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["replay", "--gdb", "127.0.0.1:0", "--goto", "999999999", &trace])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&past.stderr);
    assert!(err.contains("--goto 999999999: the replay ends after"), "{err}");
    assert_ne!(past.status.code(), Some(0));
}
