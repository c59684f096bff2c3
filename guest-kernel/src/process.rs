//! Processes, threads and the per-process tables they share.
//!
//! A [`Process`] owns (through `Rc<RefCell<..>>`, so `clone` flags can share
//! them) an address space ([`crate::mm::Mm`], `CLONE_VM`), a descriptor table
//! ([`FdTable`], `CLONE_FILES`), a file-system context ([`FsContext`]: cwd and
//! umask, `CLONE_FS`) and signal handlers ([`SigHandlers`], `CLONE_SIGHAND`).
//! Following Redox, `clone` without `CLONE_THREAD` always makes a new process
//! with its own pid, even when it shares memory; `CLONE_THREAD` (which needs
//! `CLONE_VM`) adds a [`Thread`] to the calling process instead.
//!
//! An open file description ([`OpenFile`]) carries the status flags
//! (`O_NONBLOCK`, `O_APPEND`, the access mode) shared by every descriptor
//! duplicated from it; `FD_CLOEXEC` belongs to the descriptor. When the last
//! descriptor of a description goes away the scheme's `close` runs.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use emu::Cpu;
use warden_abi::{Errno, SigAction, EBADF, EMFILE, ENOENT, NSIG};

use crate::call::Call;
pub use crate::call::{OnWake, WaitOn};
use crate::mm::Mm;
use crate::scheme::FileRef;
use crate::Pid;

/// An open file description.
pub struct OpenFile {
    pub file: FileRef,
    /// `O_*` access mode and status flags.
    pub flags: Cell<usize>,
}

impl OpenFile {
    pub fn new(file: FileRef, flags: usize) -> Rc<OpenFile> {
        Rc::new(OpenFile { file, flags: Cell::new(flags) })
    }
}

impl Drop for OpenFile {
    fn drop(&mut self) {
        if let Ok(mut file) = self.file.try_borrow_mut() {
            file.close();
        }
    }
}

/// One descriptor: a description and the descriptor's own flag.
#[derive(Clone)]
pub struct FdEntry {
    pub desc: Rc<OpenFile>,
    pub cloexec: bool,
}

/// A descriptor table.
#[derive(Clone, Default)]
pub struct FdTable {
    fds: Vec<Option<FdEntry>>,
}

impl FdTable {
    pub fn get(&self, fd: usize) -> Result<&FdEntry, Errno> {
        self.fds.get(fd).and_then(|e| e.as_ref()).ok_or(Errno(EBADF))
    }

    pub fn get_mut(&mut self, fd: usize) -> Result<&mut FdEntry, Errno> {
        self.fds.get_mut(fd).and_then(|e| e.as_mut()).ok_or(Errno(EBADF))
    }

    /// Puts `entry` in the lowest free slot `>= min`, below `max`.
    pub fn insert_from(&mut self, min: usize, entry: FdEntry, max: usize) -> Result<usize, Errno> {
        let start = min.min(max);
        let slot = (start..max).find(|&fd| self.fds.get(fd).is_none_or(|e| e.is_none()));
        let fd = slot.ok_or(Errno(EMFILE))?;
        if fd >= self.fds.len() {
            self.fds.resize(fd + 1, None);
        }
        self.fds[fd] = Some(entry);
        Ok(fd)
    }

    pub fn insert(&mut self, entry: FdEntry, max: usize) -> Result<usize, Errno> {
        self.insert_from(0, entry, max)
    }

    /// The descriptor the next [`FdTable::insert`] returns (limit aside).
    pub fn lowest_free(&self) -> usize {
        self.fds.iter().position(Option::is_none).unwrap_or(self.fds.len())
    }

    /// Puts `entry` at `fd`, returning what was there (the caller drops it
    /// outside any borrow).
    pub fn replace(&mut self, fd: usize, entry: FdEntry, max: usize) -> Result<Option<FdEntry>, Errno> {
        if fd >= max {
            return Err(Errno(EBADF));
        }
        if fd >= self.fds.len() {
            self.fds.resize(fd + 1, None);
        }
        Ok(self.fds[fd].replace(entry))
    }

    pub fn remove(&mut self, fd: usize) -> Result<FdEntry, Errno> {
        self.fds.get_mut(fd).and_then(|e| e.take()).ok_or(Errno(EBADF))
    }

    /// Removes every close-on-exec descriptor, returning them.
    pub fn take_cloexec(&mut self) -> Vec<FdEntry> {
        let mut out = Vec::new();
        for slot in &mut self.fds {
            if slot.as_ref().is_some_and(|e| e.cloexec) {
                out.extend(slot.take());
            }
        }
        out
    }

    /// Open descriptors in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &FdEntry)> {
        self.fds.iter().enumerate().filter_map(|(fd, e)| e.as_ref().map(|e| (fd, e)))
    }

    pub fn clear(&mut self) -> Vec<FdEntry> {
        std::mem::take(&mut self.fds).into_iter().flatten().collect()
    }
}

/// The working directory and umask.
#[derive(Clone, Debug)]
pub struct FsContext {
    /// Scheme of the working directory (`file` normally).
    pub cwd_scheme: Vec<u8>,
    /// Path of the working directory within the scheme (absolute and
    /// normalised for `file:`).
    pub cwd: Vec<u8>,
    pub umask: u32,
}

impl FsContext {
    /// Splits `path` into (scheme, path within the scheme). A path without a
    /// scheme (no `:` before the first `/`) is a `file:` path, relative ones
    /// are taken against the working directory. `file:` paths come out
    /// absolute and normalised (`.` and `..` resolved, leading `/` kept).
    pub fn resolve(&self, path: &[u8]) -> Result<(Vec<u8>, Vec<u8>), Errno> {
        if path.is_empty() {
            return Err(Errno(ENOENT));
        }
        let colon = path.iter().position(|&b| b == b':');
        let slash = path.iter().position(|&b| b == b'/');
        if let Some(c) = colon {
            if slash.is_none_or(|s| c < s) {
                let scheme = path[..c].to_vec();
                let rest = &path[c + 1..];
                let rest = if scheme == b"file" { normalize(b"/", rest) } else { rest.to_vec() };
                return Ok((scheme, rest));
            }
        }
        if path[0] == b'/' {
            return Ok((b"file".to_vec(), normalize(b"/", path)));
        }
        if self.cwd_scheme == b"file" {
            Ok((b"file".to_vec(), normalize(&self.cwd, path)))
        } else {
            let mut rest = self.cwd.clone();
            if !rest.is_empty() && !rest.ends_with(b"/") {
                rest.push(b'/');
            }
            rest.extend_from_slice(path);
            Ok((self.cwd_scheme.clone(), rest))
        }
    }

    /// The working directory as `getcwd` reports it: a plain path for
    /// `file:`, `scheme:path` otherwise.
    pub fn cwd_display(&self) -> Vec<u8> {
        if self.cwd_scheme == b"file" {
            self.cwd.clone()
        } else {
            let mut out = self.cwd_scheme.clone();
            out.push(b':');
            out.extend_from_slice(&self.cwd);
            out
        }
    }
}

/// Joins `path` to `base` (unless absolute) and resolves `.` and `..`.
pub fn normalize(base: &[u8], path: &[u8]) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = Vec::new();
    let joined: Vec<&[u8]> = if path.first() == Some(&b'/') {
        path.split(|&b| b == b'/').collect()
    } else {
        base.split(|&b| b == b'/').chain(path.split(|&b| b == b'/')).collect()
    };
    for part in joined {
        match part {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    let mut out = Vec::new();
    for p in parts {
        out.push(b'/');
        out.extend_from_slice(p);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

/// One signal's disposition.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Action {
    pub sa: SigAction,
    /// Address the handler returns to (0: the kernel's trampoline).
    pub restorer: usize,
}

/// Signal dispositions, indexed by signal number (index 0 unused).
#[derive(Clone, Debug)]
pub struct SigHandlers {
    pub actions: [Action; NSIG],
}

impl Default for SigHandlers {
    fn default() -> Self {
        SigHandlers { actions: [Action::default(); NSIG] }
    }
}

/// Whether a process is still running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcState {
    Alive,
    /// Exited; the wait status waits for the parent's `waitpid`.
    Zombie(usize),
}

/// A process.
pub struct Process {
    pub pid: Pid,
    pub ppid: Pid,
    pub pgid: Pid,
    pub uid: u32,
    pub gid: u32,
    pub mm: Rc<RefCell<Mm>>,
    pub files: Rc<RefCell<FdTable>>,
    pub fs: Rc<RefCell<FsContext>>,
    pub sighand: Rc<RefCell<SigHandlers>>,
    /// Live threads, the main thread first.
    pub threads: Vec<Pid>,
    /// Process-directed pending signals (bit `n - 1` is signal `n`).
    pub pending: u64,
    pub state: ProcState,
    /// argv of the last exec.
    pub cmdline: Vec<Vec<u8>>,
    /// The thread blocked in `clone(CLONE_VFORK)` until this process execs or exits.
    pub vfork_parent: Option<Pid>,
    /// The system-call mask and jail ([`crate::policy`]); `None`: unrestricted. Inherited by
    /// children, kept across exec.
    pub restrict: Option<Rc<crate::policy::Restriction>>,
    /// Session, stopped state and the report for the parent ([`crate::jobs`]).
    pub job: crate::jobs::JobState,
    /// Who sent each pending process-directed signal ([`crate::jobs::SigInfo`]).
    pub siginfo: [crate::jobs::SigInfo; NSIG],
}

/// A parked thread.
pub struct Blocked {
    pub on: WaitOn,
    /// Monotonic nanoseconds at which the call gives up with `on_timeout`.
    pub deadline: Option<u64>,
    pub on_timeout: Result<usize, Errno>,
    pub on_wake: OnWake,
    /// The call, as decoded when it was made.
    pub call: Call,
    /// Order in which threads blocked (wake order for futexes).
    pub seq: u64,
}

/// A thread's scheduling state.
pub enum ThreadState {
    Runnable,
    Blocked(Box<Blocked>),
    /// Woken: the kernel re-executes this (the blocked record's) call before the thread
    /// runs again. The box is the one the thread blocked with: waking moves no call.
    Retry(Box<Blocked>),
}

/// A thread.
pub struct Thread {
    pub tid: Pid,
    pub pid: Pid,
    pub cpu: Cpu,
    pub state: ThreadState,
    /// Blocked signals.
    pub sigmask: u64,
    /// Thread-directed pending signals (faults).
    pub pending: u64,
    /// Its process is supervised: system calls and faults go through `supervise`.
    pub supervised: bool,
    /// Bytes its parked `write` has already written: the re-run writes the rest, an
    /// interrupting signal handler makes the call return this count (`crate::io`).
    pub write_done: usize,
    /// Who sent each pending thread-directed signal.
    pub siginfo: [crate::jobs::SigInfo; NSIG],
}

impl Thread {
    /// A thread running `cpu`; its `rdrand` generator gets the thread id mixed in, so a
    /// forked child or a new thread draws other numbers than its parent.
    pub fn new(tid: Pid, pid: Pid, mut cpu: Cpu) -> Thread {
        cpu.reseed_rand(tid as u64);
        Thread {
            tid,
            pid,
            cpu,
            state: ThreadState::Runnable,
            sigmask: 0,
            pending: 0,
            supervised: false,
            write_done: 0,
            siginfo: Default::default(),
        }
    }

    pub fn is_blocked(&self) -> bool {
        matches!(self.state, ThreadState::Blocked(_))
    }
}
