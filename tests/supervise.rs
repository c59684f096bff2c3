//! End-to-end tests of supervision: the guest `strace`, `warden trace` / `run --trace`, the
//! guest supervisor tests (`suptest`: race attacks in the spirit of the published systrace
//! attacks, seed 000's semantics, exceptions, result rewriting, supervised grandchildren)
//! and host supervisors written against `guest_kernel::supervise::HostSupervisor`.

use std::cell::RefCell;
use std::process::Command;
use std::rc::Rc;

use guest_kernel::supervise::{ExceptionEvent, HostAttach, HostSupervisor, Output, Reply, SyscallEntry};
use guest_kernel::{CaptureConsole, CapturedOutput, RunOutcome};
use warden::trace::{Filter, TraceConfig, TraceOutput};
use warden::RunOptions;
use warden_abi::*;

struct Run {
    outcome: RunOutcome,
    out: CapturedOutput,
    trace: String,
}

impl Run {
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }
}

fn opts(program: &str, args: &[&str]) -> RunOptions {
    RunOptions {
        program: Some(program.to_string()),
        args: args.iter().map(|s| s.to_string()).collect(),
        budget: Some(2_000_000_000),
        ..RunOptions::default()
    }
}

/// Runs with an optional host supervisor installed on every process.
fn run_host(opts: RunOptions, host: Option<Box<dyn HostSupervisor>>) -> Run {
    let (console, out): (CaptureConsole, Rc<RefCell<CapturedOutput>>) = CaptureConsole::new(b"");
    let buffer = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut opts = opts;
    if let Some(t) = opts.trace.as_mut() {
        t.output = TraceOutput::Buffer(buffer.clone());
    }
    let mut k = warden::boot(&opts, Box::new(console)).expect("boot");
    if let Some(h) = host {
        k.set_host_supervisor(h, HostAttach::All);
    }
    let outcome = k.run();
    k.finish_host_supervisor();
    let out = out.borrow().clone();
    let trace = String::from_utf8_lossy(&buffer.lock().unwrap()).into_owned();
    Run { outcome, out, trace }
}

fn run(program: &str, args: &[&str]) -> Run {
    run_host(opts(program, args), None)
}

fn traced(program: &str, args: &[&str], cfg: TraceConfig) -> Run {
    run_host(RunOptions { trace: Some(cfg), ..opts(program, args) }, None)
}

fn warden(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_warden")).args(args).output().unwrap()
}

fn has(text: &str, line: &str) {
    assert!(text.lines().any(|l| l == line), "missing line {line:?} in:\n{text}");
}

// --- the guest strace -------------------------------------------------------------------

#[test]
fn guest_strace_traces_ls() {
    let r = run("/bin/strace", &["/bin/ls", "/"]);
    assert_eq!(r.outcome, RunOutcome::Exited(0));
    assert_eq!(r.stdout(), "bin\netc\ntmp\n");
    let e = r.stderr();
    has(&e, "2 open(\"/bin/ls\", O_RDONLY) = 3");
    has(&e, "2 fexec(3<file:/bin/ls>, [\"/bin/ls\", \"/\"], [/* 1 vars */]) = 0");
    has(&e, "2 open(\"/\", O_RDONLY|O_DIRECTORY) = 3");
    has(&e, "2 read(3, \"bin\\netc\\ntmp\", 4096) = 11");
    has(&e, "2 write(1, \"bin\\n\", 4) = 4");
    has(&e, "2 exit(0) = ?");
    has(&e, "2 +++ exited with 0 +++");
}

#[test]
fn guest_strace_reports_errors_and_exit_status() {
    let r = run("/bin/strace", &["/bin/cat", "/nonexistent"]);
    assert_eq!(r.outcome, RunOutcome::Exited(1));
    has(&r.stderr(), "2 open(\"/nonexistent\", O_RDONLY) = -2 ENOENT");
    has(&r.stderr(), "2 +++ exited with 1 +++");
}

// --- warden trace -----------------------------------------------------------------------

#[test]
fn warden_trace_cli_prints_accurate_lines() {
    let out = warden(&["trace", "/bin/sh", "-c", "echo hi > /tmp/x"]);
    assert_eq!(out.status.code(), Some(0));
    let e = String::from_utf8_lossy(&out.stderr);
    has(&e, "1 open(\"/tmp/x\", O_WRONLY|O_CLOEXEC|O_CREAT|O_TRUNC|0644) = 3");
    has(&e, "1 clone(0, 0x0) = 2");
    has(&e, "2 dup2(3, 1) = 1");
    has(&e, "2 fexec(3<file:/bin/echo>, [\"echo\", \"hi\"], [/* 1 vars */]) = 0");
    has(&e, "2 write(1, \"hi\\n\", 3) = 3");
    has(&e, "2 +++ exited with 0 +++");
    has(&e, "1 waitpid(2, [{WIFEXITED(s) && WEXITSTATUS(s) == 0}], 0) = 2");
    has(&e, "1 +++ exited with 0 +++");
}

#[test]
fn run_trace_filters_by_name_and_class_and_writes_files() {
    let dir = std::env::temp_dir().join(format!("warden-sup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("trace.txt");
    let out = warden(&["run", "--trace", "-e", "open", "-o", file.to_str().unwrap(), "/bin/cat", "/nope"]);
    assert_eq!(out.status.code(), Some(1));
    let t = std::fs::read_to_string(&file).unwrap();
    has(&t, "1 open(\"/nope\", O_RDONLY) = -2 ENOENT");
    assert!(t.lines().all(|l| l.contains(" open(") || l.contains("+++")), "{t}");

    let r = traced(
        "/bin/sh",
        &["-c", "echo hi > /tmp/x"],
        TraceConfig { filter: Filter::parse(&["file".to_string()]).unwrap(), ..TraceConfig::default() },
    );
    assert!(r.trace.contains("open(\"/tmp/x\""), "{}", r.trace);
    assert!(!r.trace.contains(" write("), "{}", r.trace);
    assert!(Filter::parse(&["bogus".to_string()]).is_err());
    let bad = warden(&["trace", "-e", "bogus", "/bin/true"]);
    assert_eq!(bad.status.code(), Some(125));
}

#[test]
fn trace_summary_and_json() {
    let r = traced("/bin/sh", &["-c", "echo hi | wc -c"], TraceConfig { summary: true, ..TraceConfig::default() });
    assert!(r.trace.contains("% time     seconds  usecs/call"), "{}", r.trace);
    assert!(r.trace.lines().any(|l| l.ends_with(" waitpid")), "{}", r.trace);
    assert!(r.trace.lines().any(|l| l.ends_with(" total")), "{}", r.trace);
    assert!(!r.trace.contains("+++"), "{}", r.trace);

    let r = traced("/bin/sh", &["-c", "echo hi > /tmp/x"], TraceConfig { json: true, ..TraceConfig::default() });
    for l in r.trace.lines() {
        assert!(l.starts_with('{') && l.ends_with('}'), "{l}");
    }
    assert!(r.trace.contains(r#""syscall":"write""#), "{}", r.trace);
    assert!(r.trace.contains(r#""event":"exit""#), "{}", r.trace);
}

#[test]
fn trace_no_follow_and_determinism() {
    let cfg = TraceConfig { follow: false, ..TraceConfig::default() };
    let r = traced("/bin/sh", &["-c", "echo hi"], cfg);
    assert!(r.trace.lines().all(|l| l.starts_with("1 ")), "{}", r.trace);
    let a = traced("/bin/sh", &["-c", "echo hi | wc -c"], TraceConfig::default()).trace;
    let b = traced("/bin/sh", &["-c", "echo hi | wc -c"], TraceConfig::default()).trace;
    assert_eq!(a, b);
}

// --- guest supervisors: races and semantics ---------------------------------------------

#[test]
fn race_open_path_rewritten_during_hold() {
    let r = run("/bin/suptest", &["race-open"]);
    let o = r.stdout();
    has(&o, "suptest: vetted copy \"file:/tmp/good\": allowed");
    has(&o, "suptest: attacker rewrote memory during the hold; releasing the call");
    has(&o, "race-open: buffer after the call: /tmp/evil");
    has(&o, "race-open: opened file contains GOOD");
    assert!(!o.contains("contains EVIL"));
}

#[test]
fn race_write_buffer_rewritten_during_hold() {
    let o = run("/bin/suptest", &["race-write"]).stdout();
    has(&o, "suptest: vetted copy \"GOOD DATA\": allowed");
    has(&o, "race-write: buffer after the call: EVIL DATA");
    has(&o, "race-write: file contains GOOD DATA");
}

#[test]
fn race_fexec_descriptor_and_argv_rewritten_during_hold() {
    let o = run("/bin/suptest", &["race-exec"]).stdout();
    has(&o, "suptest: vetted copy \"file:/bin/echo\": allowed");
    has(&o, "suptest: attacker rewrote memory during the hold; releasing the call");
    has(&o, "GOOD");
    has(&o, "suptest: child exited 0");
    assert!(!o.contains("EVIL"));
}

#[test]
fn seed_000_semantics() {
    let o = run("/bin/suptest", &["seed"]).stdout();
    has(&o, "supervise(self) = Err(\"EACCES\")");
    has(&o, "supervise(99999) = Err(\"ESRCH\")");
    has(&o, "empty read returns 0 bytes: Ok(true)");
    has(&o, "getpid = 4242");
    has(&o, "nanosleep = Ok(0), cancelled = true");
    has(&o, "open = EACCES");
    has(&o, "suptest: child exited 0");
}

#[test]
fn exceptions_reach_the_guest_supervisor() {
    let o = run("/bin/suptest", &["exc"]).stdout();
    assert!(o.contains("suptest: exception vector 0x3 at"), "{o}");
    assert!(o.contains("suptest: exception vector 0x142 at"), "{o}");
    has(&o, "resumed after int3 and int 0x42");
    assert!(o.contains("suptest: exception vector 0x6 at"), "{o}");
    has(&o, "suptest: saw processes [2]; child exited 132");
}

#[test]
fn results_can_be_rewritten_before_the_guest_sees_them() {
    let o = run("/bin/suptest", &["result"]).stdout();
    has(&o, "suptest: result 16 with \"# /etc/rc: run b\"");
    has(&o, "read 16: SUPERVISED DATA!");
}

#[test]
fn grandchildren_are_supervised_from_birth() {
    let o = run("/bin/suptest", &["fork"]).stdout();
    has(&o, "suptest: clone event: 2 -> 3");
    has(&o, "suptest: exec event: 3 file:/bin/echo");
    has(&o, "suptest: denied write from grandchild 3");
    assert!(!o.contains("grandchild\n"), "the denied write must not run:\n{o}");
    has(&o, "suptest: saw processes [2, 3]; child exited 0");
}

// --- host supervisors -------------------------------------------------------------------

/// Denies opening /etc/rc, rewrites reads of /etc/hostname-like data, resumes int3.
#[derive(Default)]
struct Policy {
    seen: Rc<RefCell<Vec<String>>>,
}

impl HostSupervisor for Policy {
    fn syscall_entry(&mut self, ev: &SyscallEntry<'_>) -> Reply {
        if ev.call.number == SYS_OPEN {
            let Ok(p) = ev.call.path(0) else { return Reply::Run };
            self.seen.borrow_mut().push(String::from_utf8_lossy(p).into_owned());
            if p == b"file:/etc/rc" {
                return Reply::Return(Errno::mux(Err(Errno(EACCES))) as u64);
            }
        }
        if ev.call.number == SYS_READ {
            return Reply::RunReport;
        }
        Reply::Run
    }

    fn syscall_exit(&mut self, _ev: &SyscallEntry<'_>, result: &mut usize, outputs: &mut [Output]) {
        if let Some(o) = outputs.first_mut() {
            o.data.make_ascii_uppercase();
            *result = o.data.len();
        }
    }

    fn exception(&mut self, ev: &ExceptionEvent) -> Reply {
        self.seen.borrow_mut().push(format!("exception {:#x}", ev.vector));
        if ev.vector == EXC_INVALID_OPCODE {
            Reply::Default
        } else {
            Reply::Run
        }
    }
}

#[test]
fn host_supervisor_denies_with_the_canonical_path() {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let r = run_host(opts("/bin/cat", &["/etc/../etc/rc"]), Some(Box::new(Policy { seen: seen.clone() })));
    assert_eq!(r.outcome, RunOutcome::Exited(1));
    assert!(r.stderr().contains("Permission denied"), "{}", r.stderr());
    assert!(seen.borrow().contains(&"file:/etc/rc".to_string()), "{:?}", seen.borrow());
}

#[test]
fn host_supervisor_rewrites_results_and_resumes_exceptions() {
    let r = run_host(opts("/bin/sh", &["-c", "echo hello | cat"]), Some(Box::new(Policy::default())));
    assert_eq!(r.stdout(), "HELLO\n");
    let seen = Rc::new(RefCell::new(Vec::new()));
    let r = run_host(opts("/bin/suptarget", &["exc"]), Some(Box::new(Policy { seen: seen.clone() })));
    assert_eq!(r.outcome, RunOutcome::Signaled(SIGILL as u8));
    assert!(r.stdout().contains("RESUMED AFTER INT3") || r.stdout().contains("resumed after int3"));
    assert_eq!(&seen.borrow()[..], ["exception 0x3", "exception 0x142", "exception 0x6"]);
}

#[test]
fn host_traces_a_guest_supervisor_and_its_children() {
    let r = traced("/bin/strace", &["/bin/true"], TraceConfig::default());
    assert_eq!(r.outcome, RunOutcome::Exited(0));
    // The host sees strace's own calls (pid 1) and the traced child's (pid 2).
    assert!(r.trace.contains("1 supervise(2, SUPERVISE_BLOCK) = 3"), "{}", r.trace);
    assert!(r.trace.contains("2 fexec(3<file:/bin/true>"), "{}", r.trace);
    assert!(r.stderr().contains("2 +++ exited with 0 +++"), "{}", r.stderr());
}

/// Calls the jail virtualises (`getcwd`) and calls the policy refuses show in `warden trace`
/// like any other (they used to vanish: the jail answered them before the tracer saw them).
#[test]
fn warden_trace_shows_virtualised_and_refused_calls() {
    let dir = std::env::temp_dir().join(format!("warden-sup-policy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let jail = dir.join("jail.toml");
    std::fs::write(&jail, "jail = \"/\"\ndeny = [\"unlink\"]\n").unwrap();
    let out = warden(&["trace", "--policy", jail.to_str().unwrap(), "/bin/sh", "-c", "pwd; rm x"]);
    let _ = std::fs::remove_dir_all(&dir);
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "/\n", "{e}");
    has(&e, "1 getcwd(\"/\", 4096) = 1");
    assert!(e.lines().any(|l| l.ends_with(" unlink(\"x\") = -1 EPERM")), "{e}");
}
