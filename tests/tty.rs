//! Interactive use through a pseudo-terminal: warden runs with a pty as its controlling
//! terminal (as from a terminal emulator), the test types into the master side and reads
//! what appears there. Synchronisation is by what appears on the terminal (each step waits
//! for its text, with a generous deadline), never by sleeping.
//!
//! The programs are the host's (`--root /`): bash, cat, stty. Without them a test says
//! SKIPPED, unless `WARDEN_REQUIRE_TOOLS=1`, which makes it fail.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const WARDEN: &str = env!("CARGO_BIN_EXE_warden");
const ROWS: u16 = 33;
const COLS: u16 = 111;
const PROMPT: &str = "PROMPT$ ";

/// True if every program is there; otherwise SKIPPED (or a failure when tools are required).
fn have(programs: &[&str]) -> bool {
    for p in programs {
        if !Path::new(p).is_file() {
            assert!(std::env::var("WARDEN_REQUIRE_TOOLS").as_deref() != Ok("1"), "{p} not found");
            eprintln!("SKIPPED: {p} not found");
            return false;
        }
    }
    true
}

/// A program running with a fresh pty as its controlling terminal.
struct Pty {
    master: OwnedFd,
    /// Kept open so the terminal's settings can be read after the program exits.
    slave: OwnedFd,
    child: Child,
    /// What appeared and was not consumed yet.
    seen: Vec<u8>,
}

/// The slave's settings (the kernel `struct termios` bytes, through libc's copy).
fn termios_of(fd: &OwnedFd) -> Vec<u8> {
    // SAFETY: tcgetattr fills a zeroed termios for a valid descriptor.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        assert_eq!(libc::tcgetattr(fd.as_raw_fd(), &mut t), 0, "tcgetattr");
        std::slice::from_raw_parts((&t as *const libc::termios).cast::<u8>(), std::mem::size_of::<libc::termios>())
            .to_vec()
    }
}

/// A fresh pseudo-terminal of ROWS x COLS: (master, slave), neither inherited by programs
/// started meanwhile.
fn open_pty() -> (OwnedFd, OwnedFd) {
    let (mut m, mut s) = (-1, -1);
    let ws = libc::winsize { ws_row: ROWS, ws_col: COLS, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: openpty fills two descriptors; the name and termios pointers may be null.
    let r = unsafe { libc::openpty(&mut m, &mut s, std::ptr::null_mut(), std::ptr::null(), &ws) };
    assert_eq!(r, 0, "openpty");
    for fd in [m, s] {
        // SAFETY: sets a flag of a descriptor just opened.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    // SAFETY: both descriptors were just opened and are owned here.
    unsafe { (OwnedFd::from_raw_fd(m), OwnedFd::from_raw_fd(s)) }
}

impl Pty {
    fn spawn(program: &str, args: &[&str]) -> Pty {
        let (master, slave) = open_pty();
        let io = || Stdio::from(slave.try_clone().unwrap());
        let mut cmd = Command::new(program);
        cmd.args(args).stdin(io()).stdout(io()).stderr(io());
        // SAFETY: only async-signal-safe calls between fork and exec: a new session whose
        // controlling terminal is the pty (so ^C reaches the child as it would from a
        // terminal), default SIGINT/SIGQUIT/SIGTSTP (a harness in the background ignores them).
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                libc::ioctl(0, libc::TIOCSCTTY, 0);
                for sig in [libc::SIGINT, libc::SIGQUIT, libc::SIGTSTP] {
                    libc::signal(sig, libc::SIG_DFL);
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn");
        Pty { master, slave, child, seen: Vec::new() }
    }

    /// Reads what appears until `text` has, then returns everything up to and including it.
    fn expect(&mut self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(at) = self.seen.windows(text.len()).position(|w| w == text.as_bytes()) {
                let rest = self.seen.split_off(at + text.len());
                let got = std::mem::replace(&mut self.seen, rest);
                return String::from_utf8_lossy(&got).into_owned();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "{text:?} never appeared; the terminal shows {:?}",
                String::from_utf8_lossy(&self.seen)
            );
            let mut pfd = libc::pollfd { fd: self.master.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            // SAFETY: one valid pollfd.
            let n = unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(1000) as i32) };
            if n <= 0 {
                continue;
            }
            let mut buf = [0u8; 4096];
            // SAFETY: reads into a local buffer of its length.
            let n = unsafe { libc::read(self.master.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            assert!(
                n > 0,
                "the terminal closed before {text:?} appeared; it showed {:?}",
                String::from_utf8_lossy(&self.seen)
            );
            self.seen.extend_from_slice(&buf[..n as usize]);
        }
    }

    fn send(&mut self, text: &str) {
        // SAFETY: writes a buffer of its length.
        let n = unsafe { libc::write(self.master.as_raw_fd(), text.as_ptr().cast(), text.len()) };
        assert_eq!(n, text.len() as isize, "write to the terminal");
    }

    /// Waits for the program, draining the terminal meanwhile (so it never blocks writing);
    /// returns its status and everything it showed.
    fn finish(&mut self) -> (ExitStatus, String, Vec<u8>) {
        let deadline = Instant::now() + Duration::from_secs(120);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "the program did not end");
            let mut pfd = libc::pollfd { fd: self.master.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            // SAFETY: one valid pollfd; reads into a local buffer of its length.
            unsafe {
                if libc::poll(&mut pfd, 1, 50) > 0 {
                    let mut buf = [0u8; 4096];
                    let n = libc::read(self.master.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len());
                    if n > 0 {
                        self.seen.extend_from_slice(&buf[..n as usize]);
                    }
                }
            }
        };
        // Whatever is still buffered.
        loop {
            let mut pfd = libc::pollfd { fd: self.master.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            let mut buf = [0u8; 4096];
            // SAFETY: as above.
            let n = unsafe {
                if libc::poll(&mut pfd, 1, 0) <= 0 {
                    break;
                }
                libc::read(self.master.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len())
            };
            if n <= 0 {
                break;
            }
            self.seen.extend_from_slice(&buf[..n as usize]);
        }
        let termios = termios_of(&self.slave);
        (status, String::from_utf8_lossy(&std::mem::take(&mut self.seen)).into_owned(), termios)
    }
}

impl Drop for Pty {
    /// A test that failed midway does not leave its program running.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn warden_args<'a>(head: &[&'a str], program: &[&'a str]) -> Vec<&'a str> {
    let mut v = head.to_vec();
    v.extend(["--env", "PS1=PROMPT$ ", "--env", "PATH=/usr/bin:/bin", "--root", "/"]);
    v.extend(program);
    v
}

/// A session of an interactive bash inside the guest, as a user types it.
fn bash_session(pty: &mut Pty) {
    pty.expect(PROMPT);
    pty.send("stty size\r");
    assert!(pty.expect(PROMPT).contains(&format!("{ROWS} {COLS}\r\n")));
    // ^Z stops a foreground job; bash reports it, lists it and brings it back. (The job
    // says READY once it is in the foreground, so the ^Z is for it.)
    pty.send("(echo READY; exec cat)\r");
    pty.expect("READY\r\n");
    pty.send("\x1a");
    assert!(pty.expect(PROMPT).contains("Stopped"));
    pty.send("jobs\r");
    assert!(pty.expect(PROMPT).contains("[1]+  Stopped                 ( echo READY; exec cat )"));
    pty.send("fg\r");
    pty.expect("fg\r\n( echo READY; exec cat )\r\n");
    pty.send("hello\r");
    // The terminal's echo, then cat's copy.
    pty.expect("hello\r\nhello\r\n");
    // ^C interrupts the foreground job, the shell goes on.
    pty.send("\x03");
    pty.expect(PROMPT);
    // A background job reading the terminal is stopped by SIGTTIN; kill %1 ends it.
    pty.send("cat &\r");
    pty.expect(PROMPT);
    pty.send("kill %1\r");
    pty.expect(PROMPT);
    pty.send("jobs\r");
    let jobs = pty.expect(PROMPT);
    assert!(jobs.contains("Terminated") || !jobs.contains("cat"), "{jobs}");
    pty.send("exit 3\r");
}

#[test]
fn interactive_bash_has_job_control() {
    if !have(&["/bin/bash", "/usr/bin/stty", "/usr/bin/cat"]) {
        return;
    }
    let mut pty = Pty::spawn(WARDEN, &warden_args(&["run"], &["/bin/bash", "--norc", "-i"]));
    let before = termios_of(&pty.slave);
    bash_session(&mut pty);
    let (status, shown, after) = pty.finish();
    assert_eq!(status.code(), Some(3), "{shown}");
    assert_eq!(after, before, "the terminal's settings were not restored");
}

#[test]
fn stty_sees_what_it_sees_natively() {
    if !have(&["/usr/bin/stty"]) {
        return;
    }
    let native = Pty::spawn("/usr/bin/stty", &["-a"]).finish();
    let guest = Pty::spawn(WARDEN, &["run", "--root", "/", "/usr/bin/stty", "-a"]).finish();
    assert!(native.1.contains(&format!("rows {ROWS}; columns {COLS}")), "{}", native.1);
    assert_eq!(guest.1, native.1);
    assert_eq!(guest.0.code(), Some(0));
}

#[test]
fn without_a_terminal_terminal_requests_fail_as_natively() {
    if !have(&["/usr/bin/stty"]) {
        return;
    }
    let run = |cmd: &mut Command| cmd.stdin(Stdio::null()).output().unwrap();
    let native = run(Command::new("/usr/bin/stty").arg("size"));
    let guest = run(Command::new(WARDEN).args(["run", "--root", "/", "/usr/bin/stty", "size"]));
    assert_eq!(guest.status.code(), native.status.code());
    assert_eq!(String::from_utf8_lossy(&guest.stderr), String::from_utf8_lossy(&native.stderr));
}

/// The guest leaves the terminal raw and the budget ends it mid-loop: warden restores it.
#[test]
fn terminal_settings_are_restored_when_the_budget_ends_the_run() {
    if !have(&["/bin/bash", "/usr/bin/stty"]) {
        return;
    }
    let script = "stty raw -echo -isig; echo RAW; while :; do :; done";
    let mut pty =
        Pty::spawn(WARDEN, &["run", "--budget", "300000000", "--root", "/", "/bin/bash", "--norc", "-c", script]);
    let before = termios_of(&pty.slave);
    pty.expect("RAW");
    let (status, shown, after) = pty.finish();
    assert_eq!(status.code(), Some(124), "{shown}");
    assert_ne!(before, Vec::new());
    assert_eq!(after, before, "the terminal was left raw");
}

/// A recorded interactive session replays without any terminal, to the same status.
#[test]
fn an_interactive_session_replays_without_a_terminal() {
    if !have(&["/bin/bash", "/usr/bin/stty", "/usr/bin/cat"]) {
        return;
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tty-replay");
    let _ = std::fs::create_dir_all(&dir);
    let trace = dir.join("session.trace");
    let trace_arg = trace.to_str().unwrap();
    let mut pty = Pty::spawn(WARDEN, &warden_args(&["record", "-o", trace_arg], &["/bin/bash", "--norc", "-i"]));
    bash_session(&mut pty);
    let (status, shown, _) = pty.finish();
    assert_eq!(status.code(), Some(3), "{shown}");
    let replay = Command::new(WARDEN).args(["replay", trace_arg]).stdin(Stdio::null()).output().unwrap();
    let out = String::from_utf8_lossy(&replay.stdout).into_owned() + &String::from_utf8_lossy(&replay.stderr);
    assert_eq!(replay.status.code(), Some(3), "{out}");
    assert!(out.contains("[1]+  Stopped                 ( echo READY; exec cat )"), "{out}");
    assert!(out.contains(&format!("{ROWS} {COLS}")), "{out}");
}

/// `tests/fixtures/linux/tty.c`, built as `compiler link`, once per test process; `None`
/// (SKIPPED) without the compiler.
fn build_fixture(compiler: &str, link: &str) -> Option<std::path::PathBuf> {
    let found = std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(compiler).is_file()));
    if !found {
        assert!(std::env::var("WARDEN_REQUIRE_TOOLS").as_deref() != Ok("1"), "{compiler} not found");
        eprintln!("SKIPPED: {compiler} not found");
        return None;
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tty-fixtures");
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join(format!("tty.{compiler}{link}"));
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/linux/tty.c");
    let status = Command::new(compiler)
        .args((!link.is_empty()).then_some(link))
        .args(["-O2", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .expect("run compiler");
    assert!(status.success(), "{compiler} {link} failed on {}", src.display());
    Some(out)
}

/// The terminal as a program sees it (sessions, the foreground group, SIGTTIN and SIGTTOU,
/// `/dev/tty`, the window size), byte for byte as natively, in five builds.
#[test]
fn tty_fixture_matches_native_in_five_builds() {
    let builds = [("gcc", "-static"), ("gcc", "-static-pie"), ("gcc", ""), ("musl-gcc", "-static"), ("musl-gcc", "")];
    let mut failures = Vec::new();
    for (compiler, link) in builds {
        let Some(prog) = build_fixture(compiler, link) else { continue };
        let prog = prog.to_str().unwrap();
        let native = Pty::spawn(prog, &[]).finish();
        let guest = Pty::spawn(WARDEN, &["run", "--root", "/", prog]).finish();
        assert!(native.1.contains("stopped by TTIN"), "{}", native.1);
        if (guest.0.code(), &guest.1) != (native.0.code(), &native.1) {
            failures.push(format!(
                "{compiler} {link}: native ({:?})\n{}\nwarden ({:?})\n{}",
                native.0.code(),
                native.1,
                guest.0.code(),
                guest.1
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// With `--real-time` a foreground `sleep` really waits: ^Z stops it and ^C ends one at
/// once (the host's wait is cut short by the signal).
#[test]
fn real_time_sleeps_stop_and_interrupt() {
    if !have(&["/bin/bash", "/usr/bin/sleep"]) {
        return;
    }
    let mut pty = Pty::spawn(WARDEN, &warden_args(&["run", "--real-time"], &["/bin/bash", "--norc", "-i"]));
    pty.expect(PROMPT);
    pty.send("(echo READY; exec sleep 1000)\r");
    pty.expect("READY\r\n");
    pty.send("\x1a");
    assert!(pty.expect(PROMPT).contains("Stopped"));
    pty.send("(echo READY; exec sleep 1000)\r");
    pty.expect("READY\r\n");
    pty.send("\x03");
    pty.expect(PROMPT);
    pty.send("kill %1; exit 4\r");
    let (status, shown, _) = pty.finish();
    assert_eq!(status.code(), Some(4), "{shown}");
}

/// A resize of the terminal reaches the guest's foreground group as SIGWINCH.
#[test]
fn a_resize_reaches_the_guest() {
    if !have(&["/bin/bash", "/usr/bin/sleep", "/usr/bin/stty"]) {
        return;
    }
    // The trap runs between commands (a `read` would be restarted, natively too).
    let script = "trap 'stty size; exit 5' WINCH; echo READY; while :; do sleep 0.1; done";
    let args = warden_args(&["run", "--real-time"], &["/bin/bash", "--norc", "-c", script]);
    let mut pty = Pty::spawn(WARDEN, &args);
    pty.expect("READY\r\n");
    let ws = libc::winsize { ws_row: 40, ws_col: 100, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCSWINSZ reads one winsize.
    assert_eq!(unsafe { libc::ioctl(pty.master.as_raw_fd(), libc::TIOCSWINSZ, &ws) }, 0);
    let (status, shown, _) = pty.finish();
    assert_eq!(status.code(), Some(5), "{shown}");
    assert!(shown.contains("40 100"), "{shown}");
}

/// The guest leaves the terminal raw and warden is killed by SIGTERM: warden restores the
/// terminal before dying of the signal.
#[test]
fn terminal_settings_are_restored_when_a_host_signal_ends_warden() {
    if !have(&["/bin/bash", "/usr/bin/stty"]) {
        return;
    }
    let script = "stty raw -echo -isig; echo RAW; while :; do :; done";
    let mut pty = Pty::spawn(WARDEN, &["run", "--root", "/", "/bin/bash", "--norc", "-c", script]);
    let before = termios_of(&pty.slave);
    pty.expect("RAW");
    assert_ne!(termios_of(&pty.slave), before, "the guest made the terminal raw");
    // SAFETY: signals the child this test started.
    unsafe { libc::kill(pty.child.id() as i32, libc::SIGTERM) };
    let (status, shown, after) = pty.finish();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{shown}");
    assert_eq!(after, before, "the terminal was left raw");
}

/// Only the descriptors that are the terminal are one in the guest: stdout alone, or stdin
/// alone, as natively.
#[test]
fn each_descriptor_is_a_terminal_as_on_the_host() {
    if !have(&["/bin/bash"]) {
        return;
    }
    let script = "for fd in 0 1 2; do test -t $fd; echo -n $? >&2; done";
    let run = |program: &str, args: &[&str], stdin_is_tty: bool| {
        let (_master, pty) = open_pty();
        let slave = || Stdio::from(pty.try_clone().unwrap());
        let stdin = if stdin_is_tty { slave() } else { Stdio::null() };
        let out = Command::new(program).args(args).stdin(stdin).stdout(slave()).stderr(Stdio::piped()).output();
        String::from_utf8_lossy(&out.unwrap().stderr).into_owned()
    };
    for stdin_is_tty in [false, true] {
        let native = run("/bin/bash", &["--norc", "-c", script], stdin_is_tty);
        let guest = run(WARDEN, &["run", "--root", "/", "/bin/bash", "--norc", "-c", script], stdin_is_tty);
        assert_eq!(native, if stdin_is_tty { "001" } else { "101" });
        assert_eq!(guest, native, "stdin a terminal: {stdin_is_tty}");
    }
}
