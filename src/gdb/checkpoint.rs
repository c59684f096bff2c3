//! Checkpoints of a replay under gdb: forked copies of the whole warden process, so that
//! going backwards replays only from the nearest earlier checkpoint, not from the start.
//!
//! Why fork the host process rather than copy the guest kernel: the kernel's state is a
//! graph of `Rc`s, trait objects (schemes, consoles, the replay's trace reader) and host
//! handles with no deep copy, and other work changes it all the time; `fork()` copies all
//! of it, exactly, in one call, and the host kernel shares every page copy-on-write (rr
//! and UndoDB take their checkpoints the same way). What a forked copy must not share is a
//! file offset: the trace is read with `pread` (`record::TraceReader`), guest files too.
//! Checkpoints are only taken while the process has one thread (checked each time).
//!
//! The processes:
//! - the *leader* is the `warden replay --gdb` the user started. Once gdb has connected it
//!   forks the first worker, then only waits: it reaps every process of the family (it is
//!   their subreaper) and exits as the active worker exits, with its status;
//! - the *active worker* serves gdb and runs the replay. Every `interval` guest
//!   instructions (at a debugger stop, an exact instruction boundary) it forks a
//!   *checkpoint* (through a short-lived middle process, so the leader reaps it);
//! - a checkpoint waits on an abstract Unix socket. Asked to resume, it forks a new worker
//!   (again through a middle process), which tells the leader it is the active one, then
//!   acknowledges; the old worker exits. The new worker takes over the debugger's current
//!   state (breakpoints, watchpoints, console position, the checkpoint list: see
//!   `Resumed` in the parent module) and the operation to finish, and the checkpoint
//!   stays, to be resumed again;
//! - checkpoints end when the leader does: each polls the read end of a pipe only the
//!   leader can write, which closes when it exits.
//!
//! Checkpoints are forked only inside the gdb stub's wait for a stop (a continue, a step,
//! a reverse step or continue), so a resumed worker is always somewhere the stub expects
//! a stop reason from: it abandons what that old stack was doing and finishes the
//! operation it was sent.
//!
//! Memory is bounded by count: past `max` checkpoints one is dropped, the one whose
//! neighbours are closest together (the first and the newest are kept), so they thin out
//! evenly over the replay; going over a thinned stretch again takes them again. Each
//! costs what the active worker has written since it was taken (its private pages), and
//! the host's page tables.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};

use guest_kernel::Pid;

/// A checkpoint: a process waiting to be resumed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Checkpoint {
    /// The guest's total instruction count there.
    pub at: u64,
    /// Its name (the abstract socket `warden-gdb-LEADER-ID`).
    pub id: u64,
    /// Its host process.
    pub pid: i32,
    /// Each live thread's instruction count there.
    pub threads: Vec<(Pid, u64)>,
    /// The highest thread id there (a thread absent with a higher id was created later).
    pub max_tid: Pid,
}

impl Checkpoint {
    /// Whether this checkpoint is before the point where thread `tid` has run `icount`
    /// instructions (and has not run the next one).
    pub fn before(&self, tid: Pid, icount: u64) -> bool {
        match self.threads.iter().find(|t| t.0 == tid) {
            Some(&(_, n)) => n < icount,
            None => tid > self.max_tid,
        }
    }
}

/// The worker's side: the checkpoints, and the way to the leader.
pub(super) struct Checkpoints {
    leader: i32,
    /// Write end: the pid of each new active worker, for the leader.
    report: OwnedFd,
    /// Read end of the pipe the leader holds open for its whole life.
    life: OwnedFd,
    /// Sorted by `at`.
    pub list: Vec<Checkpoint>,
    /// Guest instructions between checkpoints.
    pub interval: u64,
    max: usize,
    /// The next checkpoint's id (carried from worker to worker).
    pub next_id: u64,
}

/// The leader's side: waits for the family, see the module note.
pub(super) struct Leader {
    report: OwnedFd,
    first: i32,
}

/// Which process this is after [`split`].
pub(super) enum Role {
    Leader(Leader),
    Worker(Checkpoints),
}

fn os_error(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

fn pipe(flags: i32) -> Result<(OwnedFd, OwnedFd), String> {
    let mut fds = [0; 2];
    // SAFETY: `fds` is two writable ints, as pipe2 requires.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), flags | libc::O_CLOEXEC) } != 0 {
        return Err(os_error("pipe"));
    }
    // SAFETY: pipe2 succeeded: both are new descriptors this process owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// The number of threads the process has (fork copies only the calling one).
fn host_threads() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let line = status.lines().find_map(|l| l.strip_prefix("Threads:"));
    line.and_then(|n| n.trim().parse().ok()).unwrap_or(usize::MAX)
}

/// `fork()`: `Some(pid)` in the parent, `None` in the child.
fn fork() -> Result<Option<i32>, String> {
    // SAFETY: the process has one thread (checked by the callers), so the child is a full
    // copy with no lock held by a thread that does not exist there.
    match unsafe { libc::fork() } {
        -1 => Err(os_error("fork")),
        0 => Ok(None),
        pid => Ok(Some(pid)),
    }
}

/// Ends this process at once: no destructor runs (they belong to the process it was
/// forked from), no buffer is flushed (the console writes unbuffered).
fn exit_now(code: i32) -> ! {
    // SAFETY: _exit ends the process; it is always safe to call.
    unsafe { libc::_exit(code) }
}

fn wait_for(pid: i32) {
    let mut status = 0;
    // SAFETY: waits for our own child; `status` is a writable int.
    while unsafe { libc::waitpid(pid, &mut status, 0) } == -1
        && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
    {}
}

/// Forks a process whose parent exits at once, so that the leader (the subreaper)
/// becomes its parent and reaps it: `Some(())` in the caller, `None` in the new process.
fn fork_orphan() -> Result<Option<()>, String> {
    match fork()? {
        Some(middle) => {
            wait_for(middle);
            Ok(Some(()))
        }
        None => match fork() {
            Ok(Some(_)) => exit_now(0),
            Ok(None) => Ok(None),
            Err(_) => exit_now(1),
        },
    }
}

/// Splits the process into the leader and the first worker (see the module note);
/// `interval` guest instructions between checkpoints, at most `max` of them. An error
/// if the process cannot fork safely (more than one thread) or the host refuses.
pub(super) fn split(interval: u64, max: usize) -> Result<Role, String> {
    if host_threads() != 1 {
        return Err("warden has more than one thread: no checkpoints".into());
    }
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes an integer flag; no memory is passed.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(os_error("prctl(PR_SET_CHILD_SUBREAPER)"));
    }
    let (report_read, report_write) = pipe(libc::O_NONBLOCK)?;
    let (life_read, life_write) = pipe(0)?;
    let leader = std::process::id() as i32;
    match fork()? {
        Some(first) => {
            drop(report_write);
            // The write end stays open (unused) until the leader exits.
            std::mem::forget(life_write);
            drop(life_read);
            Ok(Role::Leader(Leader { report: report_read, first }))
        }
        None => {
            drop(report_read);
            drop(life_write);
            Ok(Role::Worker(Checkpoints {
                leader,
                report: report_write,
                life: life_read,
                list: Vec::new(),
                interval: interval.max(1),
                max: max.max(2),
                next_id: 0,
            }))
        }
    }
}

impl Leader {
    /// Reaps the family until the active worker ends, then ends the same way.
    pub fn wait(self) -> ! {
        let mut active = self.first;
        loop {
            let mut status = 0;
            // SAFETY: waits for any child; `status` is a writable int.
            let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
            if pid == -1 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                crate::host::warn(format!("replay --gdb: lost the replaying process: {e}"));
                std::process::exit(crate::EXIT_WARDEN_FAILED);
            }
            // A new worker reports itself before the one it replaces may exit.
            let mut buf = [0u8; 4];
            // SAFETY: reads into `buf` (4 writable bytes) from the pipe we own.
            while unsafe { libc::read(self.report.as_raw_fd(), buf.as_mut_ptr().cast(), 4) } == 4 {
                active = i32::from_le_bytes(buf);
            }
            if pid != active {
                continue;
            }
            if libc::WIFSIGNALED(status) {
                crate::host::die_of(libc::WTERMSIG(status));
            }
            std::process::exit(libc::WEXITSTATUS(status));
        }
    }
}

/// What a worker asks a checkpoint.
const RESUME: u8 = 1;
const QUIT: u8 = 2;

impl Checkpoints {
    fn address(&self, id: u64) -> Result<SocketAddr, String> {
        SocketAddr::from_abstract_name(format!("warden-gdb-{}-{id}", self.leader).as_bytes())
            .map_err(|e| format!("checkpoint socket: {e}"))
    }

    /// The next checkpoint's instruction count from `now`: the first multiple of the
    /// interval past `now` with no checkpoint in the interval that starts there.
    pub fn due(&self, now: u64) -> u64 {
        let mut at = (now / self.interval).saturating_add(1).saturating_mul(self.interval);
        while self.list.iter().any(|c| c.at >= at && c.at - at < self.interval) {
            at = at.saturating_add(self.interval);
        }
        at
    }

    /// Forks a checkpoint of this process, at instruction count `at`. Returns `Ok(None)`
    /// here; in a worker resumed from the checkpoint (maybe much later) `Ok(Some(state))`,
    /// the state its resumer sent.
    pub fn take(&mut self, at: u64, threads: Vec<(Pid, u64)>) -> Result<Option<Vec<u8>>, String> {
        if host_threads() != 1 {
            return Err("warden has more than one thread: no checkpoint".into());
        }
        let id = self.next_id;
        self.next_id += 1;
        let listener = UnixListener::bind_addr(&self.address(id)?).map_err(|e| format!("checkpoint socket: {e}"))?;
        let (pid_read, pid_write) = pipe(0)?;
        match fork_orphan()? {
            Some(()) => {
                drop(pid_write);
                let mut buf = [0u8; 4];
                std::fs::File::from(pid_read).read_exact(&mut buf).map_err(|e| format!("checkpoint: {e}"))?;
                let max_tid = threads.iter().map(|t| t.0).max().unwrap_or(0);
                let checkpoint = Checkpoint { at, id, pid: i32::from_le_bytes(buf), threads, max_tid };
                let i = self.list.partition_point(|c| c.at <= at);
                self.list.insert(i, checkpoint);
                self.thin();
                Ok(None)
            }
            None => {
                drop(pid_read);
                let me = std::process::id() as i32;
                if std::fs::File::from(pid_write).write_all(&me.to_le_bytes()).is_err() {
                    exit_now(1);
                }
                Ok(Some(self.wait_to_resume(listener)))
            }
        }
    }

    /// Past `max`: drops the checkpoint whose neighbours are closest together.
    fn thin(&mut self) {
        while self.list.len() > self.max {
            let n = self.list.len();
            let Some(i) = (1..n - 1).min_by_key(|&i| self.list[i + 1].at - self.list[i - 1].at) else { return };
            let gone = self.list.remove(i);
            self.tell(gone.id, QUIT, &[]);
        }
    }

    /// Sends a request to checkpoint `id`; the connection, to read its answer.
    fn tell(&self, id: u64, what: u8, data: &[u8]) -> Option<UnixStream> {
        let mut s = UnixStream::connect_addr(&self.address(id).ok()?).ok()?;
        let mut msg = vec![what];
        msg.extend_from_slice(&(data.len() as u64).to_le_bytes());
        msg.extend_from_slice(data);
        s.write_all(&msg).ok()?;
        Some(s)
    }

    /// The checkpoint process: waits until asked to resume (then returns the state sent,
    /// in the new worker) or to end, or until the leader ends.
    fn wait_to_resume(&self, listener: UnixListener) -> Vec<u8> {
        loop {
            let mut fds = [
                libc::pollfd { fd: listener.as_raw_fd(), events: libc::POLLIN, revents: 0 },
                libc::pollfd { fd: self.life.as_raw_fd(), events: libc::POLLIN, revents: 0 },
            ];
            // SAFETY: `fds` is two valid pollfd structs.
            if unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) } < 0 {
                continue; // EINTR
            }
            if fds[1].revents != 0 {
                exit_now(0);
            }
            let Ok((mut s, _)) = listener.accept() else { continue };
            let mut head = [0u8; 9];
            if s.read_exact(&mut head).is_err() {
                continue;
            }
            let len = u64::from_le_bytes(head[1..].try_into().unwrap_or_default());
            let mut state = vec![0; usize::try_from(len).unwrap_or(0).min(1 << 30)];
            if head[0] == QUIT {
                exit_now(0);
            }
            if head[0] != RESUME || s.read_exact(&mut state).is_err() {
                continue;
            }
            match fork_orphan() {
                Ok(Some(())) => continue,
                Ok(None) => {
                    drop(listener);
                    let me = std::process::id() as i32;
                    let bytes = me.to_le_bytes();
                    // SAFETY: writes 4 bytes from `bytes` to the pipe we own (atomic: < PIPE_BUF).
                    if unsafe { libc::write(self.report.as_raw_fd(), bytes.as_ptr().cast(), 4) } != 4 {
                        exit_now(1);
                    }
                    if s.write_all(&[1]).is_err() {
                        exit_now(1);
                    }
                    return state;
                }
                Err(_) => continue,
            }
        }
    }

    /// Resumes checkpoint `i` with `state` (see `Resumed`): this process exits once the
    /// new worker runs. An error (the checkpoint is gone: dropped from the list) if not.
    pub fn resume(&mut self, i: usize, state: &[u8]) -> Result<std::convert::Infallible, String> {
        let c = self.list[i].clone();
        let ok = self.tell(c.id, RESUME, state).and_then(|mut s| {
            let mut ack = [0u8; 1];
            s.read_exact(&mut ack).ok()
        });
        if ok.is_some() {
            exit_now(0);
        }
        self.list.remove(i);
        Err(format!("checkpoint at instruction {} did not resume", c.at))
    }

    /// Each checkpoint's instruction count and private memory in bytes (what ending it
    /// would give back to the host).
    pub fn memory(&self) -> Vec<(u64, u64)> {
        self.list.iter().map(|c| (c.at, private_bytes(c.pid))).collect()
    }
}

/// A host process's private memory (`Private_Clean` + `Private_Dirty`), in bytes.
pub fn private_bytes(pid: i32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let kb = |key: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (kb("Private_Clean:") + kb("Private_Dirty:")) * 1024
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(at: u64, threads: &[(Pid, u64)]) -> Checkpoint {
        let max_tid = threads.iter().map(|t| t.0).max().unwrap_or(0);
        Checkpoint { at, id: at, pid: 0, threads: threads.to_vec(), max_tid }
    }

    #[test]
    fn a_checkpoint_is_before_a_point_when_the_thread_had_run_less() {
        let c = at(100, &[(1, 50), (3, 7)]);
        assert!(c.before(1, 51));
        assert!(!c.before(1, 50), "the thread may have been at that count before the checkpoint");
        assert!(c.before(5, 0), "created after the checkpoint");
        assert!(!c.before(2, 9), "a thread that ended before the checkpoint");
    }

    fn checkpoints(ats: &[u64], max: usize) -> Checkpoints {
        let (r, w) = pipe(0).unwrap();
        Checkpoints {
            leader: 0,
            report: w,
            life: r,
            list: ats.iter().map(|&a| at(a, &[])).collect(),
            interval: 10,
            max,
            next_id: 0,
        }
    }

    #[test]
    fn due_skips_intervals_that_have_a_checkpoint() {
        let c = checkpoints(&[10, 25], 8);
        assert_eq!(c.due(0), 30, "10 and 20..30 are covered");
        assert_eq!(c.due(31), 40);
        assert_eq!(checkpoints(&[], 8).due(9), 10);
    }

    #[test]
    fn thinning_keeps_the_first_and_newest_and_spreads_the_rest() {
        // Ids name no socket here (leader 0): dropping one tells nobody.
        let mut c = checkpoints(&[10, 20, 30, 40, 50, 60], 4);
        c.thin();
        let ats: Vec<u64> = c.list.iter().map(|c| c.at).collect();
        assert_eq!(ats.len(), 4);
        assert_eq!((ats[0], ats[3]), (10, 60));
        let widest = ats.windows(2).map(|w| w[1] - w[0]).max().unwrap();
        assert!(widest <= 20, "{ats:?}");
    }
}
