//! The border between warden and the host process: its standard descriptors, its signals and
//! the files the user asked warden to write.
//!
//! Design:
//! - [`HostConsole`] is the guest console on descriptors 0, 1 and 2 themselves (not Rust's
//!   `std::io::stdout`, which reports success for writes to a closed descriptor): a host
//!   error reaches the guest as its errno (`EPIPE` and then SIGPIPE when the reader of a
//!   pipe left, `EBADF` when warden was started with `>&-`, `ENOSPC` on a full disk), as it
//!   would reach a native program.
//! - [`Border`] is shared by everything that writes for the user during one run (the trace,
//!   the recording): the first write that fails is kept ([`Border::fail`]) and stops the run
//!   (the kernel's stop flag), so nothing is lost silently and no one waits for a run whose
//!   output is gone; the command then exits with one line and 125, or 141 (128 + SIGPIPE,
//!   as a pipeline member whose reader left) for a closed pipe.
//! - [`install_interrupt_handlers`]: SIGINT, SIGTERM and SIGHUP set the stop flag instead of
//!   killing warden at once, so the run ends at the scheduler's next step, the trace and the
//!   recording are completed up to there, and warden then dies of the same signal (the shell
//!   sees what it expects). A second signal kills at once. A guest thread blocked reading
//!   the host's stdin is woken (the handler does not restart the read) and waits in the
//!   guest instead of seeing an error.
//! - [`warn`] writes one line on stderr and ignores a failure (stderr may itself be the
//!   closed pipe): warden never panics on its own messages.
//! - The terminal ([`HostConsole::interactive`], for `run` and `record`; the guest side is
//!   the guest kernel's `linux/tty.rs`). The guest's terminal requests (`TCGETS`,
//!   `TCSETS*`, window size...) are passed to the host descriptor they name, so the guest's
//!   raw mode is the terminal's raw mode and a pipe stays ENOTTY (`ls > file` with a
//!   terminal on stdin, or `ls < /dev/null` on one, sees what it sees natively). When the
//!   host's stdin is a TTY the guest owns the terminal: SIGINT, SIGQUIT, SIGTSTP and SIGWINCH (^C, ^\, ^Z, a resize: the host
//!   sends them to warden, the terminal's foreground process) are caught and handed to the
//!   guest's foreground process group instead of stopping warden; SIGTERM and SIGHUP still
//!   stop the run. Before the guest first changes a terminal's settings they are saved
//!   ([`restore_terminal`]); they are put back however warden ends: a normal exit (an
//!   `atexit` hook: the guest's exit, a crash, a spent budget, an internal error), dying of
//!   a host signal ([`die_of`], the second-signal path of the handler), and before warden
//!   stops for a host SIGTSTP it did not catch.

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::mem::ManuallyDrop;
use std::os::fd::FromRawFd;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use guest_kernel::{Console, ConsoleStream, TermArg};

/// Exit status of a command whose output pipe was closed by its reader (128 + SIGPIPE).
pub const EXIT_BROKEN_PIPE: i32 = 128 + libc::SIGPIPE;

/// Writes `warden: MESSAGE` on stderr, one line, ignoring failure.
pub fn warn(message: impl fmt::Display) {
    let line = format!("warden: {}\n", guest_kernel::escape_controls(&message.to_string()));
    let _ = io::stdout().flush();
    let _ = io::stderr().write_all(line.as_bytes());
}

/// A write warden did for the user (a trace, a recording) that failed.
#[derive(Debug)]
pub struct OutputFailure {
    /// What was being written, e.g. `the trace to t.txt`.
    pub what: String,
    pub error: io::Error,
}

impl OutputFailure {
    /// True if the reader of a pipe went away.
    pub fn broken_pipe(&self) -> bool {
        self.error.kind() == io::ErrorKind::BrokenPipe
    }
}

impl fmt::Display for OutputFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot write {}: {}", self.what, describe_io_error(&self.error))
    }
}

/// An I/O error's text without Rust's ` (os error N)` suffix.
pub fn describe_io_error(e: &io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// What one run shares with the things writing for it: the kernel's stop flag and the first
/// failed write. Clones share both.
#[derive(Clone, Debug, Default)]
pub struct Border {
    stop: Arc<AtomicBool>,
    failure: Arc<Mutex<Option<OutputFailure>>>,
}

impl Border {
    /// A border whose stop flag is the one the interrupt handlers set (see
    /// [`install_interrupt_handlers`]).
    pub fn interruptible() -> Border {
        Border { stop: install_interrupt_handlers(), failure: Default::default() }
    }

    /// The flag that stops the kernel ([`guest_kernel::Kernel::set_stop_flag`]).
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// Keeps the first failure and stops the run.
    pub fn fail(&self, what: impl Into<String>, error: io::Error) {
        let mut slot = self.failure.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some(OutputFailure { what: what.into(), error });
        }
        self.stop.store(true, Ordering::Relaxed);
    }

    /// The first failed write, if any (taken: a second call gives `None`).
    pub fn take_failure(&self) -> Option<OutputFailure> {
        self.failure.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// The host signal that interrupted the run (SIGINT, SIGTERM, SIGHUP), if one did.
pub fn interrupted_by() -> Option<i32> {
    match INTERRUPT_SIGNAL.load(Ordering::Relaxed) {
        0 => None,
        s => Some(s),
    }
}

/// The name of a host signal warden handles (`SIGINT`).
pub fn host_signal_name(sig: i32) -> String {
    match sig {
        libc::SIGINT => "SIGINT".into(),
        libc::SIGTERM => "SIGTERM".into(),
        libc::SIGHUP => "SIGHUP".into(),
        libc::SIGPIPE => "SIGPIPE".into(),
        s => format!("signal {s}"),
    }
}

/// Ends warden the way the interrupting signal would have (so a shell sees "killed by
/// SIGINT" and stops a script), after the run was wound up.
pub fn die_of(sig: i32) -> ! {
    let _ = io::stdout().flush();
    restore_terminal();
    // SAFETY: restoring the default disposition and raising a signal in our own process;
    // no memory is involved.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
    std::process::exit(128 + sig)
}

/// Bit N set: descriptor N (0, 1 or 2) was closed when warden started (`>&-`). Rust's runtime
/// then opens /dev/null in its place before `main`, so warden notes it earlier (see
/// `main.rs`) and the guest gets EBADF on it, as a native program would.
static CLOSED_AT_START: AtomicI32 = AtomicI32::new(0);

/// Notes which standard descriptors were closed before Rust's runtime started (bit N:
/// descriptor N). Called from an `.init_array` function of the `warden` binary.
pub fn set_closed_at_start(mask: i32) {
    CLOSED_AT_START.store(mask, Ordering::Relaxed);
}

fn closed_at_start(fd: i32) -> bool {
    CLOSED_AT_START.load(Ordering::Relaxed) & (1 << fd) != 0
}

fn ebadf() -> io::Error {
    io::Error::from_raw_os_error(libc::EBADF)
}

static STOP: OnceLock<Arc<AtomicBool>> = OnceLock::new();
static INTERRUPT_SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_interrupt(sig: libc::c_int) {
    // Only async-signal-safe work: atomics, `ioctl`, and for a second signal `signal` +
    // `raise`.
    if INTERRUPT_SIGNAL.swap(sig, Ordering::SeqCst) != 0 {
        restore_terminal();
        // SAFETY: both calls are async-signal-safe.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
            libc::raise(sig);
        }
        return;
    }
    if let Some(flag) = STOP.get() {
        flag.store(true, Ordering::SeqCst);
    }
}

/// Makes SIGINT, SIGTERM and SIGHUP stop the run (once per process; later calls return the
/// same flag). The handlers do not restart interrupted system calls, so a read of the host's
/// stdin returns and the run can stop.
pub fn install_interrupt_handlers() -> Arc<AtomicBool> {
    let mut first = false;
    let flag = STOP.get_or_init(|| {
        first = true;
        Arc::new(AtomicBool::new(false))
    });
    if first {
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            catch(sig, on_interrupt);
        }
    }
    flag.clone()
}

/// Makes `handler` take `sig` (no `SA_RESTART`: a blocked host call returns), unless the
/// shell set it to "ignore" (a background job's SIGINT), which stays.
fn catch(sig: libc::c_int, handler: extern "C" fn(libc::c_int)) {
    // SAFETY: a zeroed sigaction is valid (empty mask, no flags); the handlers given here
    // only do async-signal-safe work (atomics, `write`, `ioctl`, `raise`).
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(sig, std::ptr::null(), &mut old) == 0 && old.sa_sigaction == libc::SIG_IGN {
            return;
        }
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = handler as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(sig, &sa, std::ptr::null_mut());
    }
}

/// One of the host's standard descriptors, borrowed (never closed).
fn std_fd(fd: i32) -> ManuallyDrop<File> {
    // SAFETY: descriptors 0, 1 and 2 belong to the process for its whole life and warden
    // never closes them; `ManuallyDrop` keeps this `File` from closing it. If the descriptor
    // is not open, operations fail with EBADF, which is what the guest should see.
    ManuallyDrop::new(unsafe { File::from_raw_fd(fd) })
}

// --- the terminal --------------------------------------------------------------------

/// The host terminal's settings (kernel `struct termios`) of descriptors 0, 1 and 2 before
/// the guest first changed them.
static SAVED_TERMIOS: [OnceLock<[u8; warden_abi::linux::flag::TERMIOS_SIZE]>; 3] =
    [OnceLock::new(), OnceLock::new(), OnceLock::new()];

/// The terminal signals caught for the guest (bit `1 << (sig - 1)`), and the flag the kernel
/// polls ([`guest_kernel::Console::signal_flag`]).
static TERMINAL_SIGNALS: AtomicU64 = AtomicU64::new(0);
static TERMINAL_FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
/// A pipe the handler writes a byte to, so a read of the terminal waiting in `poll` wakes
/// even when the signal came just before it started waiting (read end, write end; -1: none).
static WAKE_PIPE: [AtomicI32; 2] = [AtomicI32::new(-1), AtomicI32::new(-1)];

/// Puts back the settings of every host terminal the guest changed (async-signal-safe: one
/// `ioctl` each; idempotent).
pub fn restore_terminal() {
    for (fd, saved) in SAVED_TERMIOS.iter().enumerate() {
        if let Some(t) = saved.get() {
            // SAFETY: TCSETS reads a kernel `struct termios` of TERMIOS_SIZE bytes from `t`,
            // which lives for the whole process.
            unsafe {
                libc::ioctl(fd as i32, libc::TCSETS, t.as_ptr());
            }
        }
    }
}

extern "C" fn restore_terminal_at_exit() {
    restore_terminal();
}

/// Saves descriptor `fd`'s terminal settings before the guest's first change (and makes
/// sure they are restored at exit).
fn save_terminal(fd: i32) {
    let Some(slot) = SAVED_TERMIOS.get(fd as usize) else { return };
    if slot.get().is_some() {
        return;
    }
    let mut t = [0u8; warden_abi::linux::flag::TERMIOS_SIZE];
    // SAFETY: TCGETS writes a kernel `struct termios` of TERMIOS_SIZE bytes.
    if unsafe { libc::ioctl(fd, libc::TCGETS, t.as_mut_ptr()) } != 0 {
        return;
    }
    static AT_EXIT: std::sync::Once = std::sync::Once::new();
    AT_EXIT.call_once(|| {
        // SAFETY: registers a plain `extern "C"` function.
        unsafe {
            libc::atexit(restore_terminal_at_exit);
        }
    });
    let _ = slot.set(t);
}

extern "C" fn on_terminal_signal(sig: libc::c_int) {
    // Only atomics: the kernel delivers the signal at its next scheduler step.
    TERMINAL_SIGNALS.fetch_or(1 << (sig - 1), Ordering::SeqCst);
    if let Some(flag) = TERMINAL_FLAG.get() {
        flag.store(true, Ordering::SeqCst);
    }
    let w = WAKE_PIPE[1].load(Ordering::SeqCst);
    if w >= 0 {
        // SAFETY: write is async-signal-safe; a full pipe (already woken) is fine.
        unsafe {
            libc::write(w, b"x".as_ptr().cast(), 1);
        }
    }
}

/// Waits until descriptor 0 is readable (true) or a terminal signal came or the run is
/// stopping (false).
fn wait_stdin_or_signal(flag: &AtomicBool, stop: &AtomicBool) -> io::Result<bool> {
    let r = WAKE_PIPE[0].load(Ordering::SeqCst);
    loop {
        if flag.load(Ordering::SeqCst) || stop.load(Ordering::SeqCst) {
            return Ok(false);
        }
        let mut fds = [
            libc::pollfd { fd: 0, events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: r, events: libc::POLLIN, revents: 0 },
        ];
        // SAFETY: `fds` is a valid array of two pollfd (a negative fd is ignored by poll).
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if fds[0].revents != 0 {
            return Ok(true);
        }
        // Only the wake pipe: the flag is set (checked at the top).
    }
}

/// Empties the wake pipe (it is non-blocking).
fn drain_wake_pipe() {
    let r = WAKE_PIPE[0].load(Ordering::SeqCst);
    let mut buf = [0u8; 64];
    // SAFETY: reads into a local buffer of its length from a non-blocking pipe.
    while r >= 0 && unsafe { libc::read(r, buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
}

/// Makes ^C, ^\, ^Z and a resize reach the guest (once per process; a signal ignored when
/// warden started stays ignored).
fn route_terminal_signals() -> Arc<AtomicBool> {
    let mut first = false;
    let flag = TERMINAL_FLAG.get_or_init(|| {
        first = true;
        Arc::new(AtomicBool::new(false))
    });
    if first {
        let mut fds = [-1; 2];
        // SAFETY: pipe2 fills the two-element array.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } == 0 {
            WAKE_PIPE[0].store(fds[0], Ordering::SeqCst);
            WAKE_PIPE[1].store(fds[1], Ordering::SeqCst);
        }
        for sig in [libc::SIGINT, libc::SIGQUIT, libc::SIGTSTP, libc::SIGWINCH] {
            catch(sig, on_terminal_signal);
        }
    }
    flag.clone()
}

/// The guest console on the host's own descriptors 0, 1 and 2 (see the module note).
pub struct HostConsole {
    stop: Arc<AtomicBool>,
    /// The terminal's signal flag, when the guest owns the host's terminal (stdin is one).
    terminal: Option<Arc<AtomicBool>>,
    /// Terminal requests reach the host (whichever of 0, 1 and 2 is a TTY answers them).
    requests: bool,
}

impl HostConsole {
    /// A console that gives up a blocked read or write when `border`'s run is stopping,
    /// and is never a terminal (a replay's output).
    pub fn new(border: &Border) -> HostConsole {
        HostConsole { stop: border.stop_flag(), terminal: None, requests: false }
    }

    /// [`HostConsole::new`] whose terminal requests reach the host (`warden run` and
    /// `warden record`), and that gives the guest the host's terminal signals when stdin is
    /// a terminal (see the module note).
    pub fn interactive(border: &Border) -> HostConsole {
        // SAFETY: isatty only queries descriptor 0.
        let tty = !closed_at_start(0) && unsafe { libc::isatty(0) } == 1;
        HostConsole { stop: border.stop_flag(), terminal: tty.then(route_terminal_signals), requests: true }
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// A terminal signal waits for the guest: a blocked read returns to let it through.
    fn signalled(&self) -> bool {
        self.terminal.as_ref().is_some_and(|f| f.load(Ordering::Relaxed))
    }
}

impl Console for HostConsole {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if closed_at_start(0) {
            return Err(ebadf());
        }
        if let Some(flag) = &self.terminal {
            if !wait_stdin_or_signal(flag, &self.stop)? {
                return Err(io::ErrorKind::Interrupted.into());
            }
        }
        let mut stdin = std_fd(0);
        loop {
            match stdin.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted && !self.stopping() && !self.signalled() => {}
                other => return other,
            }
        }
    }

    fn write(&mut self, stream: ConsoleStream, mut data: &[u8]) -> io::Result<()> {
        let fd = match stream {
            ConsoleStream::Stdout => 1,
            ConsoleStream::Stderr => 2,
        };
        if closed_at_start(fd) {
            return Err(ebadf());
        }
        let mut out = std_fd(fd);
        while !data.is_empty() {
            match out.write(data) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => data = &data[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted && !self.stopping() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn terminal(&mut self, fd: u8, cmd: usize, value: usize, arg: &mut [u8]) -> io::Result<()> {
        let fd = i32::from(fd);
        if !self.requests || fd > 2 || closed_at_start(fd) {
            return Err(io::Error::from_raw_os_error(if fd > 2 { libc::EBADF } else { libc::ENOTTY }));
        }
        let request = guest_kernel::terminal_request(cmd);
        let size = match request {
            Some(TermArg::Get(n) | TermArg::Set(n)) => Some(n),
            Some(TermArg::Value) => None,
            None => return Err(io::Error::from_raw_os_error(libc::ENOTTY)),
        };
        if size.is_some_and(|n| n != arg.len()) {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        // The settings are saved before the guest's first change (a window size is not one).
        if matches!(request, Some(TermArg::Set(_))) && cmd != libc::TIOCSWINSZ as usize {
            save_terminal(fd);
        }
        loop {
            // SAFETY: `cmd` is one of the requests `terminal_request` lists; a request with a
            // size reads or writes exactly `arg.len()` bytes (checked above), one by value
            // takes an integer and no memory.
            let r = unsafe {
                match size {
                    Some(_) => libc::ioctl(fd, cmd as libc::c_ulong, arg.as_mut_ptr()),
                    None => libc::ioctl(fd, cmd as libc::c_ulong, value as libc::c_ulong),
                }
            };
            if r >= 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    fn signal_flag(&self) -> Option<Arc<AtomicBool>> {
        self.terminal.clone()
    }

    fn host_signals(&mut self, _step: u64) -> u64 {
        match &self.terminal {
            Some(flag) => {
                flag.store(false, Ordering::SeqCst);
                drain_wake_pipe();
                TERMINAL_SIGNALS.swap(0, Ordering::SeqCst)
            }
            None => 0,
        }
    }
}
