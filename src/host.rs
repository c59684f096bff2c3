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

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::mem::ManuallyDrop;
use std::os::fd::FromRawFd;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use guest_kernel::{Console, ConsoleStream};

/// Exit status of a command whose output pipe was closed by its reader (128 + SIGPIPE).
pub const EXIT_BROKEN_PIPE: i32 = 128 + libc::SIGPIPE;

/// Writes `warden: MESSAGE` on stderr, one line, ignoring failure.
pub fn warn(message: impl fmt::Display) {
    let line = format!("warden: {}\n", message.to_string().replace('\n', "\\n"));
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
    // Only async-signal-safe work: atomics, and for a second signal `signal` + `raise`.
    if INTERRUPT_SIGNAL.swap(sig, Ordering::SeqCst) != 0 {
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
            // SAFETY: a zeroed sigaction is valid (empty mask, no flags); the handler only
            // touches atomics (see `on_interrupt`). A signal the shell set to "ignore" (a
            // background job's SIGINT) stays ignored.
            unsafe {
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, std::ptr::null(), &mut old) == 0 && old.sa_sigaction == libc::SIG_IGN {
                    continue;
                }
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = on_interrupt as extern "C" fn(libc::c_int) as usize;
                libc::sigemptyset(&mut sa.sa_mask);
                libc::sigaction(sig, &sa, std::ptr::null_mut());
            }
        }
    }
    flag.clone()
}

/// One of the host's standard descriptors, borrowed (never closed).
fn std_fd(fd: i32) -> ManuallyDrop<File> {
    // SAFETY: descriptors 0, 1 and 2 belong to the process for its whole life and warden
    // never closes them; `ManuallyDrop` keeps this `File` from closing it. If the descriptor
    // is not open, operations fail with EBADF, which is what the guest should see.
    ManuallyDrop::new(unsafe { File::from_raw_fd(fd) })
}

/// The guest console on the host's own descriptors 0, 1 and 2 (see the module note).
pub struct HostConsole {
    stop: Arc<AtomicBool>,
}

impl HostConsole {
    /// A console that gives up a blocked read or write when `border`'s run is stopping.
    pub fn new(border: &Border) -> HostConsole {
        HostConsole { stop: border.stop_flag() }
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

impl Console for HostConsole {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if closed_at_start(0) {
            return Err(ebadf());
        }
        let mut stdin = std_fd(0);
        loop {
            match stdin.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted && !self.stopping() => {}
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
}
