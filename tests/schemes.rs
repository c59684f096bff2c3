//! User-space schemes and message channels end to end: `ramfsd` behind the shell, the
//! `schemetest` scenarios (daemon death, signal interruption, out-of-order answers, the file
//! calls, a jail), the `channeltest` scenarios (whole messages, descriptors passed and used,
//! threads sharing an endpoint, a signal interrupting a caller, hang-ups), the `chandemo`
//! example, and recorded client/daemon and client/server runs replayed exactly.

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;

use guest_kernel::supervise::{HostAttach, HostSupervisor, Output, Reply, SyscallEntry};
use guest_kernel::{CaptureConsole, CapturedOutput, RunOutcome};
use warden::record::{self, ReplayOptions};
use warden::trace::{TraceConfig, TraceOutput};
use warden::RunOptions;

fn opts(program: &str, args: &[&str]) -> RunOptions {
    RunOptions {
        program: Some(program.to_string()),
        args: args.iter().map(|s| s.to_string()).collect(),
        budget: Some(500_000_000),
        ..RunOptions::default()
    }
}

fn run(program: &str, args: &[&str]) -> (RunOutcome, String, String) {
    let (console, out): (CaptureConsole, Rc<RefCell<CapturedOutput>>) = CaptureConsole::new(b"");
    let outcome = warden::run(&opts(program, args), Box::new(console)).expect("boots");
    let out = out.borrow();
    (outcome, String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn scenario(mode: &str) {
    let (outcome, out, err) = run("/bin/schemetest", &[mode]);
    assert_eq!(outcome, RunOutcome::Exited(0), "{out}{err}");
    assert_eq!(out, format!("schemetest: {mode} ok\n"), "{err}");
}

#[test]
fn ramfsd_serves_the_shell() {
    let (outcome, out, err) = run("/bin/sh", &["-c", "ramfsd && echo hi > ramfs:/a && cat ramfs:/a"]);
    assert_eq!((outcome, out.as_str()), (RunOutcome::Exited(0), "hi\n"), "{err}");
}

#[test]
fn file_calls_through_a_daemon() {
    scenario("ramfs");
}

#[test]
fn daemon_dying_mid_request_gives_eio() {
    scenario("die");
}

#[test]
fn signal_interrupts_a_caller_and_cancels_its_request() {
    scenario("signal");
}

#[test]
fn a_daemon_answers_out_of_order() {
    scenario("order");
}

#[test]
fn a_jail_forbids_creating_and_using_schemes() {
    scenario("jail");
}

#[test]
fn a_jail_with_jail_schemes_keeps_its_own_daemons() {
    scenario("jail-schemes");
}

/// Runs `o` to its end: the outcome, stdout and stderr.
fn run_with(o: &RunOptions) -> (RunOutcome, String, String) {
    let (console, out): (CaptureConsole, Rc<RefCell<CapturedOutput>>) = CaptureConsole::new(b"");
    let outcome = warden::run(o, Box::new(console)).expect("boots");
    let out = out.borrow();
    (outcome, String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A fresh host directory for one test.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("warden-schemes-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const SERVE_AND_USE: &str = "ramfsd && echo hi > ramfs:/a && cat ramfs:/a";

/// `restrict --jail DIR --schemes` makes the jail with `JAIL_SCHEMES`: a daemon inside
/// serves, while without the flag creating the scheme is EACCES.
#[test]
fn restrict_schemes_lets_a_jail_serve_schemes() {
    let (outcome, out, err) = run("/bin/restrict", &["--jail", "/", "--schemes", "/bin/sh", "-c", SERVE_AND_USE]);
    assert_eq!((outcome, out.as_str()), (RunOutcome::Exited(0), "hi\n"), "{err}");
    let (outcome, out, err) = run("/bin/restrict", &["--jail", "/", "/bin/sh", "-c", SERVE_AND_USE]);
    assert_eq!((outcome, out.as_str()), (RunOutcome::Exited(1), ""), "{err}");
    assert!(err.contains("ramfsd: ramfs: Permission denied"), "{err}");
}

/// `schemes = true` in a `--policy` file does the same for the whole guest.
#[test]
fn a_policy_with_schemes_lets_its_jail_serve_schemes() {
    let dir = temp_dir("policy");
    for (text, status, stdout) in [("jail = \"/\"\nschemes = true\n", 0, "hi\n"), ("jail = \"/\"\n", 1, "")] {
        let policy = dir.join("policy.toml");
        std::fs::write(&policy, text).unwrap();
        let o = RunOptions { policy: Some(policy), ..opts("/bin/sh", &["-c", SERVE_AND_USE]) };
        let (outcome, out, err) = run_with(&o);
        assert_eq!((outcome, out.as_str()), (RunOutcome::Exited(status), stdout), "{text}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A Linux program (busybox) reads and writes the user-scheme files it inherits: its
/// `read` and `write` become requests to the daemon as a Redox program's do.
#[test]
fn a_linux_program_reads_and_writes_through_a_daemon() {
    let busybox = std::path::Path::new("/bin/busybox");
    if !busybox.exists() {
        assert!(std::env::var_os("WARDEN_REQUIRE_TOOLS").is_none(), "/bin/busybox is required (WARDEN_REQUIRE_TOOLS)");
        eprintln!("skipped: /bin/busybox is missing");
        return;
    }
    let dir = temp_dir("linux");
    // (busybox picks its applet from its name: the copy keeps it.)
    std::fs::copy(busybox, dir.join("busybox")).unwrap();
    let script = "ramfsd && echo hi > ramfs:/a && /busybox cat < ramfs:/a && /busybox echo from linux > ramfs:/b && cat ramfs:/b";
    let o = RunOptions { overlay: Some(dir.clone()), ..opts("/bin/sh", &["-c", script]) };
    let (outcome, out, err) = run_with(&o);
    assert_eq!((outcome, out.as_str()), (RunOutcome::Exited(0), "hi\nfrom linux\n"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn channel_scenario(mode: &str) {
    let (outcome, out, err) = run("/bin/channeltest", &[mode]);
    assert_eq!(outcome, RunOutcome::Exited(0), "{out}{err}");
    assert_eq!(out, format!("channeltest: {mode} ok\n"), "{err}");
}

#[test]
fn channel_messages_are_whole() {
    channel_scenario("messages");
}

#[test]
fn descriptors_passed_over_a_channel_are_used_by_the_receiver() {
    channel_scenario("pass");
}

#[test]
fn many_threads_share_one_endpoint() {
    channel_scenario("threads");
}

#[test]
fn signal_interrupts_a_channel_caller() {
    channel_scenario("signal");
}

#[test]
fn a_dropped_reply_or_a_dead_server_gives_epipe() {
    channel_scenario("hangup");
}

#[test]
fn endpoints_in_flight_form_no_cycle_and_are_freed() {
    channel_scenario("cycle");
}

const CHANDEMO: &str = "client: upper(\"hello, channels\") = \"HELLO, CHANNELS\"\n\
    server: this line went through the descriptor the client passed\n\
    client: log answered \"done\"\n\
    client: 4 threads made 20 calls through one endpoint; 4 of 4 got only their own answers\n\
    client: server exited 0\n";

#[test]
fn the_channel_example_runs() {
    let (outcome, out, err) = run("/bin/chandemo", &[]);
    assert_eq!((outcome, out.as_str()), (RunOutcome::Exited(0), CHANDEMO), "{err}");
}

/// Records `o` and replays it: the replay must end the same, print the same, and warn of
/// nothing.
fn record_and_replay(o: &RunOptions, name: &str) -> CapturedOutput {
    let dir = std::env::temp_dir().join(format!("warden-schemes-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let trace: PathBuf = dir.join("run.trace");
    let (console, out) = CaptureConsole::new(b"");
    let (outcome, _) = record::record(o, &[], Box::new(console), &trace).unwrap();
    let recorded = out.borrow().clone();
    assert_eq!(outcome, RunOutcome::Exited(0), "{}", String::from_utf8_lossy(&recorded.stderr));
    let (console, out) = CaptureConsole::new(b"");
    let mut warnings = Vec::new();
    let replayed = record::replay(&trace, &ReplayOptions::default(), Box::new(console), &mut |w| warnings.push(w))
        .map(|r| r.outcome)
        .unwrap_or_else(|e| panic!("replay failed: {e}"));
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(replayed, outcome);
    assert_eq!(*out.borrow(), recorded);
    let _ = std::fs::remove_dir_all(&dir);
    recorded
}

#[test]
fn channel_client_and_server_replay_exactly() {
    let recorded = record_and_replay(&opts("/bin/chandemo", &[]), "chandemo");
    assert_eq!(String::from_utf8_lossy(&recorded.stdout), CHANDEMO);
}

#[test]
fn client_and_daemon_replay_exactly() {
    let dir = std::env::temp_dir().join(format!("warden-schemes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let trace: PathBuf = dir.join("ramfs.trace");
    let o = opts("/bin/sh", &["-c", "ramfsd && echo hi > ramfs:/a && cat ramfs:/a ramfs:/a"]);
    let (console, out) = CaptureConsole::new(b"");
    let (outcome, _) = record::record(&o, &[], Box::new(console), &trace).unwrap();
    let recorded = out.borrow().clone();
    assert_eq!(outcome, RunOutcome::Exited(0));
    assert_eq!(recorded.stdout, b"hi\nhi\n");
    let (console, out) = CaptureConsole::new(b"");
    let mut warnings = Vec::new();
    let replayed = record::replay(&trace, &ReplayOptions::default(), Box::new(console), &mut |w| warnings.push(w))
        .map(|r| r.outcome)
        .unwrap_or_else(|e| panic!("replay failed: {e}"));
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(replayed, outcome);
    assert_eq!(*out.borrow(), recorded);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Answers every `read` only after seeing its bytes, and makes `hi` read as `HI`; notes the
/// `scheme:path` of every `open`.
struct Upcase {
    opened: Rc<RefCell<Vec<Vec<u8>>>>,
}

impl HostSupervisor for Upcase {
    fn syscall_entry(&mut self, ev: &SyscallEntry<'_>) -> Reply {
        match ev.call.name() {
            Some("open") => {
                self.opened.borrow_mut().extend(ev.resolved.map(<[u8]>::to_vec));
                Reply::Run
            }
            Some("read") => Reply::RunReport,
            _ => Reply::Run,
        }
    }

    fn syscall_exit(&mut self, _ev: &SyscallEntry<'_>, _result: &mut usize, outputs: &mut [Output]) {
        for o in outputs.iter_mut().filter(|o| o.data.starts_with(b"hi")) {
            o.data[..2].copy_from_slice(b"HI");
        }
    }
}

/// Calls a user-space daemon serves go through supervision like any other (their scheme
/// lookup is in their handlers, after supervision, not a second path beside it): a host
/// supervisor sees the `open` of `ramfs:/a` and rewrites the bytes the daemon answered to
/// `cat`'s `read` before `cat` sees them.
#[test]
fn supervisors_see_and_rewrite_user_scheme_calls() {
    let o = opts("/bin/sh", &["-c", "ramfsd && echo hi > ramfs:/a && cat ramfs:/a"]);
    let (console, out) = CaptureConsole::new(b"");
    let mut k = warden::boot(&o, Box::new(console)).expect("boots");
    let opened = Rc::new(RefCell::new(Vec::new()));
    k.set_host_supervisor(Box::new(Upcase { opened: opened.clone() }), HostAttach::All);
    let outcome = k.run();
    let out = out.borrow();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!((outcome, String::from_utf8_lossy(&out.stdout).as_ref()), (RunOutcome::Exited(0), "HI\n"), "{err}");
    assert!(opened.borrow().iter().any(|p| p == b"ramfs:/a"), "opens seen: {:?}", opened.borrow());
}

/// The lines `warden trace` prints for a run of `program`.
fn trace_of(program: &str, args: &[&str]) -> String {
    let buffer = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let cfg = TraceConfig { output: TraceOutput::Buffer(buffer.clone()), ..TraceConfig::default() };
    let o = RunOptions { trace: Some(cfg), ..opts(program, args) };
    let (console, _out) = CaptureConsole::new(b"");
    let mut k = warden::boot(&o, Box::new(console)).expect("boots");
    assert_eq!(k.run(), RunOutcome::Exited(0));
    k.finish_host_supervisor();
    let trace = String::from_utf8_lossy(&buffer.lock().unwrap()).into_owned();
    trace
}

fn has_line(trace: &str, parts: &[&str]) {
    assert!(trace.lines().any(|l| parts.iter().all(|p| l.contains(p))), "no line with {parts:?} in:\n{trace}");
}

#[test]
fn trace_decodes_scheme_requests_and_replies() {
    let trace = trace_of("/bin/sh", &["-c", "ramfsd && echo hi > ramfs:/a && cat ramfs:/a"]);
    // The daemon's side: each request it reads, each answer it writes.
    has_line(&trace, &["read(", "{id=", ", open, pid=", "\"/a\"}"]);
    has_line(&trace, &["read(", ", write, pid=", "\"hi\\n\"}"]);
    has_line(&trace, &["write(", "{answer id=", "value=3}"]);
    has_line(&trace, &["write(", "{answer id=", "\"hi\\n\"}"]);
}

#[test]
fn trace_shows_channel_messages() {
    let trace = trace_of("/bin/chandemo", &[]);
    // The server receives each call with its reply capability (and the passed stdout),
    // answers through the capability; the caller's buffer holds the answer.
    has_line(&trace, &["recv(", "\"upper hello, channels\"", "{fds=[], reply="]);
    has_line(&trace, &["send(", "\"HELLO, CHANNELS\", 15, NULL) = 15"]);
    has_line(&trace, &["call(", "\"HELLO, CHANNELS", "= 15"]);
    has_line(&trace, &["recv(", "\"log server: ", "{fds=[", "], reply="]);
}
