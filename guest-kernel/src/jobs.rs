//! Job control: sessions, process groups, stopping and continuing processes, and what
//! waiters and signal handlers see of it (Linux's rules, for both personalities).
//!
//! - Every process has a session and a process group ([`JobState::sid`],
//!   `Process::pgid`), inherited across fork and kept across exec. `setsid` makes a new
//!   session and group led by the caller; `setpgid` moves a process between groups of one
//!   session (the Linux rules: only the caller or a child that has not exec'd, never a
//!   session leader, only into a group of the same session).
//! - Stop signals (SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU) whose disposition is the default
//!   stop the whole process (no thread of it runs) once a thread could take them; SIGCONT
//!   resumes it when it is *sent* (blocked, ignored or caught). Sending a stop signal
//!   discards a pending SIGCONT and sending SIGCONT discards pending stop signals, as Linux
//!   does. SIGTSTP, SIGTTIN and SIGTTOU are discarded for a process in an orphaned process
//!   group (no member has a parent in another group of the same session); SIGSTOP is not.
//! - Each stop and continue leaves a report for the parent ([`JobReport`]): `wait4` with
//!   `WUNTRACED` / `waitid` with `WSTOPPED` take a stop (status `sig << 8 | 0x7f`,
//!   `CLD_STOPPED`), `WCONTINUED` a continue (status `0xffff`, `CLD_CONTINUED`); the parent
//!   gets SIGCHLD with that `si_code` unless its SIGCHLD action has `SA_NOCLDSTOP`.
//! - When an exit leaves a process group orphaned and some member of it is stopped, every
//!   member gets SIGHUP then SIGCONT (POSIX's rule, as Linux applies it at exit).
//! - Who sent a signal ([`SigInfo`]): each pending standard signal keeps the information of
//!   the send that made it pending (later sends of a pending signal merge into it, as
//!   Linux's non-queued signals do); handlers' `siginfo_t` and signalfd read it.

use warden_abi::*;

use crate::process::ProcState;
use crate::signal::sig_bit;
use crate::{Kernel, Pid, WaitKey};

/// `si_code` values.
pub const SI_USER: i32 = 0;
pub const SI_KERNEL: i32 = 0x80;
pub const SI_TKILL: i32 = -6;
pub const CLD_EXITED: i32 = 1;
pub const CLD_KILLED: i32 = 2;
pub const CLD_STOPPED: i32 = 5;
pub const CLD_CONTINUED: i32 = 6;

/// The wait status of a process stopped by `sig`.
pub const fn w_stopped(sig: usize) -> usize {
    (sig << 8) | 0x7f
}

/// The wait status of a process continued by SIGCONT.
pub const W_CONTINUED: usize = 0xffff;

/// The signals that stop a process by default.
pub const STOP_SIGNALS: u64 = sig_bit(SIGSTOP) | sig_bit(SIGTSTP) | sig_bit(SIGTTIN) | sig_bit(SIGTTOU);

/// Who sent a pending signal and why (the fields of `siginfo_t` after the number).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SigInfo {
    pub code: i32,
    pub pid: Pid,
    pub uid: u32,
    /// A child's exit code or signal (SIGCHLD).
    pub status: i32,
    /// The value `sigqueue` sent (`si_value`).
    pub value: u64,
}

impl SigInfo {
    /// A signal the kernel raised itself (timers, SIGPIPE, faults).
    pub const KERNEL: SigInfo = SigInfo { code: SI_KERNEL, pid: 0, uid: 0, status: 0, value: 0 };
}

/// A child's change a parent has not waited for yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobReport {
    Stopped(usize),
    Continued,
}

/// A process's job-control state.
#[derive(Clone, Copy, Debug, Default)]
pub struct JobState {
    /// Its session.
    pub sid: Pid,
    /// Stopped: none of its threads runs until SIGCONT.
    pub stopped: bool,
    /// The last stop or continue, until the parent waits for it.
    pub report: Option<JobReport>,
    /// It has exec'd since it was forked (its parent can no longer `setpgid` it).
    pub execed: bool,
}

impl JobState {
    /// A forked child's state: the parent's session, running, nothing to report.
    pub fn forked(&self) -> JobState {
        JobState { sid: self.sid, ..JobState::default() }
    }
}

/// The key a thread parked by a background terminal access waits on: SIGCONT wakes it.
pub(crate) fn continue_key(pid: Pid) -> WaitKey {
    WaitKey(1 << 63 | 1 << 57 | pid as u64)
}

/// Which of a wait's options select which reports (Linux's values).
pub(crate) const WAIT_STOPPED: usize = 2;
pub(crate) const WAIT_EXITED: usize = 4;
pub(crate) const WAIT_CONTINUED: usize = 8;

/// What a wait found in one child.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WaitFound {
    pub pid: Pid,
    pub uid: u32,
    /// The wait status.
    pub status: usize,
    /// Exited or killed (the child is reaped unless the wait only peeks).
    pub exited: bool,
}

impl WaitFound {
    /// `si_code` and `si_status` of the `siginfo_t` waitid writes.
    pub fn code_and_status(&self) -> (i32, i32) {
        let s = self.status;
        if s == W_CONTINUED {
            (CLD_CONTINUED, SIGCONT as i32)
        } else if s & 0xff == 0x7f {
            (CLD_STOPPED, (s >> 8 & 0xff) as i32)
        } else if wifexited(s) {
            (CLD_EXITED, wexitstatus(s) as i32)
        } else {
            (CLD_KILLED, wtermsig(s) as i32)
        }
    }
}

impl Kernel {
    /// The wait of a Linux process: among its children that `matches` selects, the first
    /// with something `options` asks for (`WAIT_*`), consumed unless `peek`. `None`: no
    /// child matches at all (ECHILD); `Some(None)`: none has anything yet.
    pub(crate) fn wait_child(
        &mut self,
        matches: impl Fn(&crate::process::Process) -> bool,
        options: usize,
        peek: bool,
    ) -> Option<Option<WaitFound>> {
        let mut any = false;
        let mut found = None;
        for p in self.procs.values().filter(|p| matches(p)) {
            any = true;
            let (status, exited) = match (p.state, p.job.report) {
                (ProcState::Zombie(s), _) if options & WAIT_EXITED != 0 => (s, true),
                (ProcState::Alive, Some(JobReport::Stopped(sig))) if options & WAIT_STOPPED != 0 && p.job.stopped => {
                    (w_stopped(sig), false)
                }
                (ProcState::Alive, Some(JobReport::Continued)) if options & WAIT_CONTINUED != 0 => (W_CONTINUED, false),
                _ => continue,
            };
            found = Some(WaitFound { pid: p.pid, uid: p.uid, status, exited });
            break;
        }
        if !any {
            return None;
        }
        if let (Some(f), false) = (found, peek) {
            if f.exited {
                self.procs.remove(&f.pid);
                self.linux.procs.remove(&f.pid);
                self.linux.threads.remove(&f.pid);
            } else if let Some(p) = self.procs.get_mut(&f.pid) {
                p.job.report = None;
            }
        }
        Some(found)
    }

    /// True if process group `pgid` is orphaned: no living member has a parent in another
    /// group of the same session. An empty group counts as orphaned.
    pub(crate) fn orphaned_pgrp(&self, pgid: Pid) -> bool {
        !self.procs.values().filter(|p| p.pgid == pgid && p.state == ProcState::Alive).any(|p| {
            self.procs.get(&p.ppid).is_some_and(|parent| {
                parent.state == ProcState::Alive && parent.pgid != pgid && parent.job.sid == p.job.sid
            })
        })
    }

    /// Process `pid` takes stop signal `sig` (its default action).
    pub(crate) fn stop_process(&mut self, pid: Pid, sig: usize) {
        let Some(p) = self.procs.get(&pid) else { return };
        if p.state != ProcState::Alive || p.job.stopped {
            return;
        }
        if sig != SIGSTOP && self.orphaned_pgrp(p.pgid) {
            return;
        }
        if let Some(p) = self.procs.get_mut(&pid) {
            p.job.stopped = true;
            p.job.report = Some(JobReport::Stopped(sig));
        }
        self.notify_parent_job(pid, CLD_STOPPED, sig as i32);
    }

    /// SIGCONT was sent to `pid`: a stopped process runs again.
    pub(crate) fn continue_process(&mut self, pid: Pid) {
        let Some(p) = self.procs.get_mut(&pid) else { return };
        if p.state != ProcState::Alive || !p.job.stopped {
            return;
        }
        p.job.stopped = false;
        p.job.report = Some(JobReport::Continued);
        let threads = p.threads.clone();
        for t in threads {
            if self.threads.get(&t).is_some_and(|t| !t.is_blocked()) {
                self.sched.run_queue.push_back(t);
            }
        }
        self.waker.wake(continue_key(pid));
        self.notify_parent_job(pid, CLD_CONTINUED, SIGCONT as i32);
    }

    /// Tells `pid`'s parent it stopped or continued: SIGCHLD (unless `SA_NOCLDSTOP`) and a
    /// wake-up of its waits.
    fn notify_parent_job(&mut self, pid: Pid, code: i32, status: i32) {
        let Some(p) = self.procs.get(&pid) else { return };
        let (ppid, uid) = (p.ppid, p.uid);
        let Some(parent) = self.procs.get(&ppid).filter(|q| q.state == ProcState::Alive) else { return };
        let flags = parent.sighand.borrow().actions[SIGCHLD].sa.sa_flags;
        // Waits first, so a handler runs after the wait returned (see `terminate_process`).
        self.wake_where(|on| on == crate::process::WaitOn::Child(ppid), None);
        if flags & SA_NOCLDSTOP == 0 {
            self.post_signal_info(ppid, SIGCHLD, SigInfo { code, pid, uid, status, value: 0 });
        }
    }

    /// After `pid` exited (a zombie, its children given to init): each process group its
    /// exit left orphaned that has a stopped member gets SIGHUP and SIGCONT.
    pub(crate) fn hang_up_orphaned(&mut self, pid: Pid, old_children: &[Pid]) {
        let Some(p) = self.procs.get(&pid) else { return };
        let (sid, pgid, ppid) = (p.job.sid, p.pgid, p.ppid);
        let mut groups = Vec::new();
        if self.procs.get(&ppid).is_some_and(|q| q.job.sid == sid && q.pgid != pgid) {
            groups.push(pgid);
        }
        for c in old_children {
            if let Some(c) = self.procs.get(c).filter(|c| c.job.sid == sid && c.pgid != pgid) {
                groups.push(c.pgid);
            }
        }
        groups.sort_unstable();
        groups.dedup();
        for g in groups {
            let members: Vec<Pid> =
                self.procs.values().filter(|q| q.pgid == g && q.state == ProcState::Alive).map(|q| q.pid).collect();
            let stopped = members.iter().any(|m| self.procs.get(m).is_some_and(|q| q.job.stopped));
            if stopped && self.orphaned_pgrp(g) {
                for sig in [SIGHUP, SIGCONT] {
                    for &m in &members {
                        self.post_signal(m, sig);
                    }
                }
            }
        }
    }

    /// True if `pid` is stopped (its threads do not run).
    pub(crate) fn is_stopped(&self, pid: Pid) -> bool {
        self.procs.get(&pid).is_some_and(|p| p.job.stopped)
    }
}
