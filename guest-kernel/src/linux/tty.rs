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
