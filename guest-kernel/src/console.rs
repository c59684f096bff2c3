//! The console and the `debug:` scheme.
//!
//! The guest's descriptors 0, 1 and 2 are `debug:stdin`, `debug:stdout` and
//! `debug:stderr`. They go through the [`Console`] trait so the embedder picks
//! where bytes go: [`HostConsole`] is the host's own stdin/stdout/stderr,
//! [`CaptureConsole`] feeds fixed input and records output (tests, replay).
//! Reading the host's stdin blocks the whole (single-threaded) kernel, which
//! keeps runs deterministic for a given stdin.

use std::cell::RefCell;
use std::io::{Read, Write};
use std::rc::Rc;

use warden_abi::{Errno, Stat, EBADF, EIO, ENOENT};

use crate::scheme::{CallCtx, FileOps, FileRef, IoResult, Scheme};

/// Which output stream a console write goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsoleStream {
    Stdout,
    Stderr,
}

/// How a terminal request passed to the host ([`Console::terminal`]) takes its argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TermArg {
    /// The host fills this many bytes (`TCGETS`, `TIOCGWINSZ`, `FIONREAD`).
    Get(usize),
    /// The host reads this many bytes (`TCSETS*`, `TIOCSWINSZ`).
    Set(usize),
    /// An integer passed by value (`TCSBRK`, `TCXONC`, `TCFLSH`); no bytes.
    Value,
}

/// The terminal requests a [`Console`] passes to the host terminal (Linux `ioctl` numbers,
/// the same on the x86-64 host), with their argument; `None` for every other request.
pub fn terminal_request(cmd: usize) -> Option<TermArg> {
    use warden_abi::linux::flag as lx;
    Some(match cmd {
        lx::TCGETS => TermArg::Get(lx::TERMIOS_SIZE),
        lx::TCSETS | lx::TCSETSW | lx::TCSETSF => TermArg::Set(lx::TERMIOS_SIZE),
        lx::TIOCGWINSZ => TermArg::Get(lx::WINSIZE_SIZE),
        lx::TIOCSWINSZ => TermArg::Set(lx::WINSIZE_SIZE),
        lx::FIONREAD => TermArg::Get(4),
        lx::TCSBRK | lx::TCXONC | lx::TCFLSH => TermArg::Value,
        _ => return None,
    })
}

/// The host side of the guest's console.
///
/// Errors reach the guest as the errno the host gave (`EPIPE` when the reader of a host pipe
/// left — the guest then also gets SIGPIPE, as a native program would —, `EBADF` when the
/// host descriptor is closed, `ENOSPC`, ...; anything without an OS error is `EIO`).
/// `ErrorKind::Interrupted` means the embedder is stopping the run (Ctrl-C): the guest
/// thread waits instead of seeing an error, and the kernel's stop flag ends the run
/// ([`crate::Kernel::set_stop_flag`]).
pub trait Console {
    /// Reads guest stdin; `Ok(0)` is end of file.
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize>;
    /// Writes all of `data` to one of the output streams.
    fn write(&mut self, stream: ConsoleStream, data: &[u8]) -> std::io::Result<()>;

    /// A terminal request ([`terminal_request`]) on the host descriptor `fd` (0, 1 or 2)
    /// behind the console: `arg` holds the bytes the request reads or gets the bytes it
    /// fills, `value` is the integer of a [`TermArg::Value`] request. A console that is not a
    /// terminal fails with ENOTTY (the default), as a native `ioctl` on a pipe or file does.
    fn terminal(&mut self, fd: u8, cmd: usize, value: usize, arg: &mut [u8]) -> std::io::Result<()> {
        let _ = (fd, cmd, value, arg);
        Err(std::io::Error::from_raw_os_error(libc::ENOTTY))
    }

    /// A flag the console sets when host terminal signals wait for the guest (the kernel then
    /// calls [`Console::host_signals`] at its next scheduler step); `None` (the default): the
    /// console never has any.
    fn signal_flag(&self) -> Option<std::sync::Arc<std::sync::atomic::AtomicBool>> {
        None
    }

    /// The terminal signals (bit `1 << (sig - 1)`: SIGINT, SIGQUIT, SIGTSTP, SIGWINCH) the
    /// host delivered since the last call, for the guest's foreground process group; `step`
    /// is the kernel's scheduler step (a replay hands the recorded signals back at the same
    /// step).
    fn host_signals(&mut self, step: u64) -> u64 {
        let _ = step;
        0
    }
}

/// The key a console call waits on when the host call was interrupted
/// (`ErrorKind::Interrupted`): by the run stopping (nothing wakes it, the run ends) or by a
/// host terminal signal (delivering it wakes the key and the call runs again).
pub(crate) const CONSOLE_KEY: crate::WaitKey = crate::WaitKey(u64::MAX);

/// What the guest sees of a host console error (see [`Console`]).
fn guest_error(e: &std::io::Error) -> crate::IoError {
    use warden_abi::{EAGAIN, EBADF, EFBIG, EINVAL, ENOSPC, EPIPE};
    if e.kind() == std::io::ErrorKind::Interrupted {
        return crate::IoError::WouldBlock(CONSOLE_KEY);
    }
    let errno = match e.raw_os_error() {
        Some(libc::EPIPE) => EPIPE,
        Some(libc::EBADF) => EBADF,
        Some(libc::ENOSPC) => ENOSPC,
        Some(libc::EFBIG) => EFBIG,
        Some(libc::EINVAL) => EINVAL,
        Some(libc::EAGAIN) => EAGAIN,
        _ if e.kind() == std::io::ErrorKind::BrokenPipe => EPIPE,
        _ => EIO,
    };
    Errno(errno).into()
}

/// The host process's own stdin, stdout and stderr (unbuffered).
#[derive(Default)]
pub struct HostConsole;

impl Console for HostConsole {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        std::io::stdin().lock().read(buf)
    }

    fn write(&mut self, stream: ConsoleStream, data: &[u8]) -> std::io::Result<()> {
        match stream {
            ConsoleStream::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(data)?;
                out.flush()
            }
            ConsoleStream::Stderr => std::io::stderr().lock().write_all(data),
        }
    }
}

/// What a [`CaptureConsole`] recorded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CapturedOutput {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// A console with fixed input whose output is recorded in memory.
pub struct CaptureConsole {
    input: Vec<u8>,
    pos: usize,
    output: Rc<RefCell<CapturedOutput>>,
}

impl CaptureConsole {
    /// A console reading `input`; the returned handle sees everything written.
    pub fn new(input: &[u8]) -> (CaptureConsole, Rc<RefCell<CapturedOutput>>) {
        let output = Rc::new(RefCell::new(CapturedOutput::default()));
        (CaptureConsole { input: input.to_vec(), pos: 0, output: output.clone() }, output)
    }
}

impl Console for CaptureConsole {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let rest = self.input.get(self.pos..).unwrap_or(&[]);
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.pos += n;
        Ok(n)
    }

    fn write(&mut self, stream: ConsoleStream, data: &[u8]) -> std::io::Result<()> {
        let mut out = self.output.borrow_mut();
        match stream {
            ConsoleStream::Stdout => out.stdout.extend_from_slice(data),
            ConsoleStream::Stderr => out.stderr.extend_from_slice(data),
        }
        Ok(())
    }
}

pub(crate) type SharedConsole = Rc<RefCell<Box<dyn Console>>>;

/// Which end of the console a `debug:` descriptor is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DebugEnd {
    Stdin,
    Stdout,
    Stderr,
}

/// An open `debug:` file.
pub(crate) struct DebugFile {
    console: SharedConsole,
    pub(crate) end: DebugEnd,
}

impl DebugFile {
    pub(crate) fn open(console: &SharedConsole, end: DebugEnd) -> FileRef {
        Rc::new(RefCell::new(DebugFile { console: console.clone(), end }))
    }
}

impl FileOps for DebugFile {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        if self.end != DebugEnd::Stdin {
            return Err(Errno(EBADF).into());
        }
        let mut console = self.console.try_borrow_mut().map_err(|_| Errno(EIO))?;
        console.read(buf).map_err(|e| guest_error(&e))
    }

    fn write(&mut self, buf: &[u8]) -> IoResult<usize> {
        let stream = match self.end {
            DebugEnd::Stderr => ConsoleStream::Stderr,
            _ => ConsoleStream::Stdout,
        };
        let mut console = self.console.try_borrow_mut().map_err(|_| Errno(EIO))?;
        console.write(stream, buf).map_err(|e| guest_error(&e))?;
        Ok(buf.len())
    }

    fn stat(&self) -> Result<Stat, Errno> {
        Ok(crate::scheme::device_stat(crate::scheme::device_ino::CONSOLE + self.end as u64, 0o620))
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    fn path(&self) -> Vec<u8> {
        match self.end {
            DebugEnd::Stdin => b"debug:stdin".to_vec(),
            DebugEnd::Stdout => b"debug:stdout".to_vec(),
            DebugEnd::Stderr => b"debug:stderr".to_vec(),
        }
    }
}

/// The `debug:` scheme: `debug:` and `debug:stdin` read stdin and write
/// stdout, `debug:stdout` writes stdout, `debug:stderr` writes stderr.
pub(crate) struct DebugScheme {
    pub(crate) console: SharedConsole,
}

impl Scheme for DebugScheme {
    fn open(&mut self, path: &[u8], _flags: usize, _ctx: &CallCtx) -> Result<FileRef, Errno> {
        let end = match path.strip_prefix(b"/").unwrap_or(path) {
            b"" | b"stdin" => DebugEnd::Stdin,
            b"stdout" => DebugEnd::Stdout,
            b"stderr" => DebugEnd::Stderr,
            _ => return Err(Errno(ENOENT)),
        };
        Ok(DebugFile::open(&self.console, end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_abi::linux::flag as lx;

    #[test]
    fn terminal_requests_and_their_arguments() {
        assert_eq!(terminal_request(lx::TCGETS), Some(TermArg::Get(36)));
        assert_eq!(terminal_request(lx::TCSETSF), Some(TermArg::Set(36)));
        assert_eq!(terminal_request(lx::TIOCGWINSZ), Some(TermArg::Get(8)));
        assert_eq!(terminal_request(lx::TCFLSH), Some(TermArg::Value));
        // The kernel answers these itself; anything else never reaches the host.
        for cmd in [lx::TIOCGPGRP, lx::TIOCSPGRP, lx::TIOCSCTTY, lx::FIONBIO, 0x1234] {
            assert_eq!(terminal_request(cmd), None);
        }
        // The ioctl row copies exactly what each request passes.
        let row = warden_abi::class::LINUX_CALLS.iter().find(|c| c.name == "ioctl").expect("ioctl row");
        for (cmd, arg) in [(lx::TCGETS, TermArg::Get(36)), (lx::TIOCSWINSZ, TermArg::Set(8))] {
            let shown = format!("{:?}", row.args[2].resolve(&[0, cmd, 0, 0, 0, 0]));
            let (dir, n) = match arg {
                TermArg::Get(n) => ("Out", n),
                TermArg::Set(n) => ("In", n),
                TermArg::Value => unreachable!(),
            };
            assert!(shown.contains(dir) && shown.contains(&format!("Fixed({n})")), "{shown}");
        }
    }

    #[test]
    fn a_captured_console_is_not_a_terminal() {
        let (mut c, _) = CaptureConsole::new(b"");
        let mut t = [0u8; 36];
        let e = c.terminal(0, lx::TCGETS, 0, &mut t).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOTTY));
        assert!(c.signal_flag().is_none());
        assert_eq!(c.host_signals(1), 0);
    }
}
