//! The terminal: the guest's console as a controlling terminal when the host's descriptors
//! are one, so an interactive shell inside the guest has job control.
//!
//! # Design
//! - **Which descriptors are a terminal.** The console's ends (`debug:stdin`, `stdout`,
//!   `stderr`: host descriptors 0, 1 and 2) are a terminal exactly when the host descriptor
//!   is one: every terminal request the host answers ([`crate::console::terminal_request`]:
//!   `TCGETS`, `TCSETS*`, `TIOCGWINSZ`, `TIOCSWINSZ`, `FIONREAD`, `TCSBRK`, `TCXONC`,
//!   `TCFLSH`) goes to the host descriptor through [`crate::Console::terminal`], so a pipe
//!   or file stays ENOTTY as natively, and `isatty` is true only on a host TTY. The first
//!   answer for an end (ENOTTY or not) is kept ([`Tty::is_tty`]); the kernel's own
//!   requests (`TIOCGPGRP`...) ask the host with `TCGETS` when an end was never asked.
//!   Ends that are terminals are taken to be one terminal (the usual case: a shell's 0, 1
//!   and 2 on one TTY).
//! - **Line discipline: the host's.** Guest `termios` changes (raw mode for readline and
//!   editors) are applied to the host terminal, so echo, line editing and `ISIG` are the
//!   host kernel's. The host turns ^C, ^\ and ^Z into SIGINT, SIGQUIT and SIGTSTP for
//!   warden (the foreground process group on the host), and a resize into SIGWINCH; while
//!   the guest owns the terminal warden catches those and hands them to the kernel
//!   ([`crate::Console::host_signals`]), which sends them to the guest's foreground process
//!   group ([`Kernel::tty_host_signals`], at a scheduler step; a console read the host
//!   signal cut short waits on [`crate::console::CONSOLE_KEY`], which that step wakes). The
//!   embedder restores the host terminal's settings whatever way warden ends (`src/host.rs`
//!   in the `warden` crate).
//! - **`/dev/tty` and `/dev/pts/0`** (what `/proc/self/fd/N` shows for a console end) are
//!   the console's stdin end, as `debug:` (reading stdin, writing stdout); `/dev/tty` opens
//!   only for a process whose controlling terminal it is (ENXIO otherwise, as natively).
//!   So `ttyname` and a shell's `open("/dev/tty")` never touch the host's `/dev`, and a
//!   replay does not depend on which pseudo-terminal the recording ran in.
//! - **Sessions.** The terminal is the controlling terminal of at most one session, its
//!   [`Tty::session`], with a foreground process group [`Tty::fg`]. The run starts with it
//!   controlling init's session (1) with init's group (1) in the foreground, as a program
//!   started from a host shell finds its terminal. `TIOCSCTTY` (a session leader without
//!   one; stealing needs `arg` 1 and uid 0), `TIOCNOTTY` (the session leader gives it up:
//!   the foreground group gets SIGHUP and SIGCONT), `TIOCGSID`, `TIOCGPGRP` and
//!   `TIOCSPGRP` (`tcsetpgrp`: a group of the caller's session) follow Linux, ENOTTY when
//!   the terminal is not the caller's controlling terminal.
//! - **Background access** (Linux's `tty_check_change` and `n_tty` rules): a process of the
//!   terminal's session outside the foreground group that reads it gets SIGTTIN sent to its
//!   group (EIO if SIGTTIN is ignored or blocked, or the group is orphaned); one that
//!   changes the settings (`TCSETS*`, `TCFLSH`, `TCXONC`, `TIOCSPGRP`), or writes while
//!   `TOSTOP` is set, gets SIGTTOU (the call proceeds if SIGTTOU is ignored or blocked; EIO
//!   for an orphaned group). The call then waits for SIGCONT and runs again (or fails with
//!   EINTR if the process caught the signal rather than stopped).
//! - **Determinism.** Everything the host terminal says (each request's answer, the
//!   signals and the scheduler step that delivered them) comes through the console, which
//!   `warden record` logs and `warden replay` gives back without any terminal.
//!
//! # What differs from Linux
//! - The controlling terminal belongs to a session, not to each process: `TIOCNOTTY` by a
//!   process that is not the session leader succeeds without detaching it.
//! - Reading the console blocks the whole kernel (`crate::console`): while a shell waits
//!   for a line, its background jobs do not run. `poll` and `select` see the console as
//!   always readable, so a program that waits for a terminal's answer with a timeout
//!   blocks until a key arrives instead (vim started in a terminal that does not answer
//!   its queries draws nothing; bash, readline, python3's REPL, stty and job control work).
//! - Init's process group has no parent in the guest, so it is orphaned: ^Z on a program
//!   warden started directly (no guest shell) is discarded, and warden itself never stops.
//! - The window size changes only through the host (a guest `TIOCSWINSZ` is passed to the
//!   host terminal, whose SIGWINCH then comes back as a host signal).
//! - Not implemented (ENOTTY): `TIOCSTI`, `TIOCEXCL`, `TIOCGPTN` and the other pty
//!   requests, `TCGETS2`/`TCSETS2` (glibc up to 2.41 does not use them).

use warden_abi::linux::flag as lx;
use warden_abi::*;

use crate::console::{terminal_request, DebugEnd, DebugFile, TermArg};
use crate::jobs::{continue_key, SigInfo};
use crate::process::{OpenFile, ProcState, WaitOn};
use crate::signal::sig_bit;
use crate::syscall::{Block, Call, SysError, SysResult};
use crate::{Kernel, Pid};

type R<T> = Result<T, SysError>;

/// The terminal's job-control state.
#[derive(Clone, Debug)]
pub(crate) struct Tty {
    /// The session it is the controlling terminal of.
    pub session: Option<Pid>,
    /// Its foreground process group.
    pub fg: Pid,
    /// Whether each console end (0, 1, 2) is a host terminal, once asked.
    pub is_tty: [Option<bool>; 3],
    /// `c_lflag` as last read or set (`TOSTOP`).
    pub lflag: Option<u32>,
    /// Scheduler steps so far (where host signals were delivered).
    pub steps: u64,
    /// The console's flag for waiting host signals ([`crate::Console::signal_flag`]).
    pub flag: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

impl Default for Tty {
    fn default() -> Tty {
        Tty { session: Some(1), fg: 1, is_tty: [None; 3], lflag: None, steps: 0, flag: None }
    }
}

/// The console end `desc` is, if it is one.
pub(crate) fn console_end(desc: &OpenFile) -> Option<DebugEnd> {
    let f = desc.file.try_borrow().ok()?;
    f.as_any()?.downcast_ref::<DebugFile>().map(|d| d.end)
}

/// The signals the host terminal delivers to the guest.
pub const HOST_SIGNALS: [usize; 4] = [SIGINT, SIGQUIT, SIGTSTP, SIGWINCH];

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

impl Kernel {
    /// Passes request `cmd` to the host terminal behind `end`, noting whether it is one.
    fn tty_host(&mut self, end: DebugEnd, cmd: usize, value: usize, arg: &mut [u8]) -> Result<(), Errno> {
        let r = match self.console.try_borrow_mut() {
            Ok(mut c) => c.terminal(end as u8, cmd, value, arg),
            Err(_) => return Err(Errno(EIO)),
        };
        let errno = r.as_ref().err().map(|e| match e.raw_os_error() {
            Some(n) if n > 0 => Errno(n),
            _ => Errno(EIO),
        });
        if errno != Some(Errno(EBADF)) {
            self.linux.tty.is_tty[end as usize] = Some(errno != Some(Errno(ENOTTY)));
        }
        if errno.is_none() && matches!(cmd, lx::TCGETS | lx::TCSETS | lx::TCSETSW | lx::TCSETSF) {
            self.linux.tty.lflag = Some(le32(&arg[12..16]));
        }
        errno.map_or(Ok(()), Err)
    }

    /// True if console end `end` is a host terminal (asking the host once).
    pub(crate) fn tty_is_terminal(&mut self, end: DebugEnd) -> bool {
        if let Some(known) = self.linux.tty.is_tty[end as usize] {
            return known;
        }
        let mut t = [0u8; lx::TERMIOS_SIZE];
        self.tty_host(end, lx::TCGETS, 0, &mut t).is_ok()
    }

    /// True if the console is a terminal and the caller's controlling terminal (`/dev/tty`
    /// opens; ENXIO otherwise, as natively without one).
    pub(crate) fn tty_controlling(&mut self, tid: Pid) -> bool {
        let sid = self.proc_of(tid).map(|p| p.job.sid);
        sid.is_ok_and(|s| self.linux.tty.session == Some(s)) && self.tty_is_terminal(DebugEnd::Stdin)
    }

    /// The calling process's (pid, session, group), if alive.
    fn tty_caller(&self, tid: Pid) -> Result<(Pid, Pid, Pid), Errno> {
        let p = self.proc_of(tid)?;
        Ok((p.pid, p.job.sid, p.pgid))
    }

    /// True if `sig` is ignored by `tid`'s process or blocked by `tid`.
    fn tty_sig_ignored(&self, tid: Pid, sig: usize) -> bool {
        let blocked = self.threads.get(&tid).is_some_and(|t| t.sigmask & sig_bit(sig) != 0);
        blocked || self.proc_of(tid).is_ok_and(|p| p.sighand.borrow().actions[sig].sa.sa_handler == SIG_IGN)
    }

    /// Sends `sig` to every living member of process group `pgid`, from the kernel.
    pub(crate) fn tty_signal_group(&mut self, pgid: Pid, sig: usize) {
        let members: Vec<Pid> =
            self.procs.values().filter(|p| p.pgid == pgid && p.state == ProcState::Alive).map(|p| p.pid).collect();
        for m in members {
            self.post_signal_info(m, sig, SigInfo::KERNEL);
        }
    }

    /// Linux's background check for a terminal access by `tid` that raises `sig` (SIGTTIN
    /// for a read, SIGTTOU for a change or a `TOSTOP` write): `Ok` to go on; otherwise EIO
    /// or a wait for SIGCONT after the signal was sent to the caller's group.
    pub(crate) fn tty_background_check(&mut self, tid: Pid, sig: usize) -> R<()> {
        let (pid, sid, pgid) = self.tty_caller(tid)?;
        let tty = &self.linux.tty;
        if tty.session != Some(sid) || tty.fg == pgid {
            return Ok(());
        }
        if self.tty_sig_ignored(tid, sig) {
            return if sig == SIGTTOU { Ok(()) } else { Err(Errno(EIO).into()) };
        }
        if self.orphaned_pgrp(pgid) {
            return Err(Errno(EIO).into());
        }
        self.tty_signal_group(pgid, sig);
        if self.is_stopped(pid) {
            Err(Block::retry(WaitOn::Key(continue_key(pid))))
        } else {
            // Caught: the handler runs and the call is interrupted.
            Err(Errno(EINTR).into())
        }
    }

    /// The background checks of a read or write on `desc` (nothing for anything but a
    /// console end that is the caller's controlling terminal).
    pub(crate) fn tty_check_io(&mut self, tid: Pid, desc: &OpenFile, write: bool) -> R<()> {
        let Some(end) = console_end(desc) else { return Ok(()) };
        let (_, sid, pgid) = self.tty_caller(tid)?;
        let tty = &self.linux.tty;
        // The usual case first: the foreground, or another session.
        if tty.session != Some(sid) || tty.fg == pgid || !self.tty_is_terminal(end) {
            return Ok(());
        }
        if !write {
            return self.tty_background_check(tid, SIGTTIN);
        }
        let lflag = match self.linux.tty.lflag {
            Some(l) => l,
            None => {
                let mut t = [0u8; lx::TERMIOS_SIZE];
                if self.tty_host(end, lx::TCGETS, 0, &mut t).is_err() {
                    return Ok(());
                }
                le32(&t[12..16])
            }
        };
        if lflag & lx::TOSTOP != 0 {
            self.tty_background_check(tid, SIGTTOU)?;
        }
        Ok(())
    }

    /// `ioctl` requests other than the descriptor flags: the terminal's.
    pub(crate) fn tty_ioctl(&mut self, tid: Pid, desc: &OpenFile, c: &Call) -> SysResult {
        let [_, cmd, arg, ..] = c.args;
        let Some(end) = console_end(desc) else { return Err(Errno(ENOTTY).into()) };
        if !self.tty_is_terminal(end) {
            return Err(Errno(ENOTTY).into());
        }
        let (pid, sid, pgid) = self.tty_caller(tid)?;
        let controlling = self.linux.tty.session == Some(sid);
        match cmd {
            lx::TIOCGPGRP | lx::TIOCGSID => {
                if !controlling {
                    return Err(Errno(ENOTTY).into());
                }
                let v = if cmd == lx::TIOCGPGRP { self.linux.tty.fg } else { sid };
                self.tty_out(tid, arg, &v.to_le_bytes())
            }
            lx::TIOCSPGRP => {
                if !controlling {
                    return Err(Errno(ENOTTY).into());
                }
                self.tty_background_check(tid, SIGTTOU)?;
                let want = c.input(2).map(|b| le32(b) as i32).ok_or(Errno(EFAULT))?;
                if want < 0 {
                    return Err(Errno(EINVAL).into());
                }
                let want = want as Pid;
                let exists = self.procs.values().any(|p| p.pgid == want && p.state == ProcState::Alive);
                if !exists {
                    return Err(Errno(ESRCH).into());
                }
                if !self.procs.values().any(|p| p.pgid == want && p.job.sid == sid) {
                    return Err(Errno(EPERM).into());
                }
                self.linux.tty.fg = want;
                Ok(0)
            }
            lx::TIOCSCTTY => {
                if controlling {
                    return Ok(0);
                }
                let uid = self.proc_of(tid)?.uid;
                let held = self
                    .linux
                    .tty
                    .session
                    .is_some_and(|s| self.procs.get(&s).is_some_and(|p| p.state == ProcState::Alive));
                if pid != sid || (held && !(arg == 1 && uid == 0)) {
                    return Err(Errno(EPERM).into());
                }
                self.linux.tty.session = Some(sid);
                self.linux.tty.fg = pgid;
                Ok(0)
            }
            lx::TIOCNOTTY => {
                if !controlling {
                    return Err(Errno(ENOTTY).into());
                }
                if pid == sid {
                    let fg = self.linux.tty.fg;
                    self.linux.tty.session = None;
                    self.tty_signal_group(fg, SIGHUP);
                    self.tty_signal_group(fg, SIGCONT);
                }
                Ok(0)
            }
            _ => {
                let Some(kind) = terminal_request(cmd) else { return Err(Errno(ENOTTY).into()) };
                if matches!(cmd, lx::TCSETS | lx::TCSETSW | lx::TCSETSF | lx::TCFLSH | lx::TCXONC) {
                    self.tty_background_check(tid, SIGTTOU)?;
                }
                match kind {
                    TermArg::Get(n) => {
                        let mut buf = vec![0u8; n];
                        self.tty_host(end, cmd, 0, &mut buf)?;
                        self.tty_out(tid, arg, &buf)
                    }
                    TermArg::Set(n) => {
                        let mut buf = c.input(2).filter(|b| b.len() == n).ok_or(Errno(EFAULT))?.to_vec();
                        self.tty_host(end, cmd, 0, &mut buf)?;
                        Ok(0)
                    }
                    TermArg::Value => {
                        self.tty_host(end, cmd, arg, &mut [])?;
                        Ok(0)
                    }
                }
            }
        }
    }

    fn tty_out(&mut self, tid: Pid, addr: usize, data: &[u8]) -> SysResult {
        let mm = self.mm_of(tid)?;
        let r = crate::usercopy::copy_out(&mut mm.borrow_mut().space.mem, addr, data);
        r.map(|()| 0).map_err(SysError::from)
    }

    /// At each scheduler step: the host terminal's signals, if any arrived, go to the
    /// foreground process group, and console calls they cut short run again.
    pub(crate) fn tty_host_signals(&mut self) {
        self.linux.tty.steps += 1;
        if !self.linux.tty.flag.as_ref().is_some_and(|f| f.load(std::sync::atomic::Ordering::Relaxed)) {
            return;
        }
        let step = self.linux.tty.steps;
        let mask = match self.console.try_borrow_mut() {
            Ok(mut c) => c.host_signals(step),
            Err(_) => return,
        };
        if mask == 0 {
            return;
        }
        self.waker.wake(crate::console::CONSOLE_KEY);
        let fg = self.linux.tty.fg;
        if self.linux.tty.session.is_none() {
            return;
        }
        for sig in HOST_SIGNALS {
            if mask & sig_bit(sig) != 0 {
                self.tty_signal_group(fg, sig);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use super::*;
    use crate::scheme::memfs::MemFs;
    use crate::{CaptureConsole, Console, ConsoleStream, KernelConfig, RunOutcome};

    /// A console whose ends are a terminal with fixed settings, and that has `signals`
    /// waiting from the host.
    struct FakeTerminal {
        termios: [u8; lx::TERMIOS_SIZE],
        flag: Arc<AtomicBool>,
        signals: u64,
        asked_at: Vec<u64>,
    }

    impl Console for FakeTerminal {
        fn read(&mut self, _buf: &mut [u8]) -> std::io::Result<usize> {
            Ok(0)
        }
        fn write(&mut self, _stream: ConsoleStream, _data: &[u8]) -> std::io::Result<()> {
            Ok(())
        }
        fn terminal(&mut self, _fd: u8, cmd: usize, _value: usize, arg: &mut [u8]) -> std::io::Result<()> {
            match cmd {
                lx::TCGETS => arg.copy_from_slice(&self.termios),
                lx::TCSETS => self.termios.copy_from_slice(arg),
                _ => return Err(std::io::Error::from_raw_os_error(libc::EINVAL)),
            }
            Ok(())
        }
        fn signal_flag(&self) -> Option<Arc<AtomicBool>> {
            Some(self.flag.clone())
        }
        fn host_signals(&mut self, step: u64) -> u64 {
            self.asked_at.push(step);
            self.flag.store(false, Ordering::Relaxed);
            std::mem::take(&mut self.signals)
        }
    }

    fn kernel(console: Box<dyn Console>) -> Kernel {
        let root = MemFs::new();
        // `hlt`: never run by these tests except to see how init ends.
        root.insert("/bin/init", &crate::testkit::static_elf(&[0xf4], 0));
        let mut k = Kernel::new(KernelConfig::default(), Box::new(root), console);
        k.spawn_init("/bin/init", &["init"], &[]).expect("spawn init");
        k
    }

    fn fake(signals: u64) -> FakeTerminal {
        let mut termios = [0u8; lx::TERMIOS_SIZE];
        termios[12..16].copy_from_slice(&lx::TOSTOP.to_le_bytes());
        FakeTerminal { termios, flag: Arc::new(AtomicBool::new(signals != 0)), signals, asked_at: Vec::new() }
    }

    #[test]
    fn a_console_is_a_terminal_only_when_the_host_says_so() {
        let (capture, _) = CaptureConsole::new(b"");
        let mut k = kernel(Box::new(capture));
        assert!(!k.tty_is_terminal(DebugEnd::Stdin));
        assert_eq!(k.linux.tty.is_tty, [Some(false), None, None]);
        let mut k = kernel(Box::new(fake(0)));
        assert!(k.tty_is_terminal(DebugEnd::Stderr));
        assert_eq!(k.linux.tty.lflag, Some(lx::TOSTOP), "TCGETS's c_lflag is kept");
        assert!(k.tty_controlling(1), "init's session has the terminal");
    }

    #[test]
    fn host_signals_go_to_the_foreground_group_at_a_scheduler_step() {
        let mut k = kernel(Box::new(fake(sig_bit(SIGINT))));
        k.tty_host_signals();
        // SIGINT's default action ended init (the foreground group) before it ran.
        assert_eq!(k.run(), RunOutcome::Signaled(SIGINT as u8));
        // Without the flag the console is not asked at all.
        let mut k = kernel(Box::new(fake(0)));
        k.tty_host_signals();
        k.tty_host_signals();
        assert_eq!(k.linux.tty.steps, 2);
    }

    #[test]
    fn background_access_follows_linux() {
        let mut k = kernel(Box::new(fake(0)));
        assert!(k.tty_is_terminal(DebugEnd::Stdin));
        // In the foreground: allowed.
        assert!(k.tty_background_check(1, SIGTTIN).is_ok());
        // Out of it, in a group with no parent in the session (orphaned): EIO, never a stop.
        k.procs.get_mut(&1).unwrap().pgid = 7;
        assert!(matches!(k.tty_background_check(1, SIGTTIN), Err(SysError::Errno(Errno(EIO)))));
        assert!(matches!(k.tty_background_check(1, SIGTTOU), Err(SysError::Errno(Errno(EIO)))));
        assert!(!k.is_stopped(1));
        // SIGTTOU blocked: the change goes ahead; SIGTTIN blocked: EIO.
        k.threads.get_mut(&1).unwrap().sigmask = sig_bit(SIGTTOU) | sig_bit(SIGTTIN);
        assert!(k.tty_background_check(1, SIGTTOU).is_ok());
        assert!(matches!(k.tty_background_check(1, SIGTTIN), Err(SysError::Errno(Errno(EIO)))));
        // Another session's process is not checked at all.
        k.linux.tty.session = Some(99);
        assert!(k.tty_background_check(1, SIGTTIN).is_ok());
    }
}
