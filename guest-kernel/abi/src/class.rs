//! Every system call of the ABI classified for jails (seed 004) and named for masks (seed 003).
//!
//! Design: [`CALLS`] is the one table. Each call gets a jail class:
//! - **P** (process-local): affects only the caller's own state; runs unchanged in a jail.
//! - **F** (descriptor-based): acts on a descriptor the process already holds. A descriptor is
//!   a capability: reading and writing it works in a jail even if it was opened before
//!   entering, but nothing resolves a path *relative* to it (the `dup` sub-path must be
//!   empty in a jail) and it is never exec'd from outside the root (see `fexec`, class J).
//! - **C** (path-taking): the path is resolved inside the jail root: `..` stops at the root,
//!   symbolic links are followed inside it (an absolute target starts at the jail root), and
//!   other schemes are limited (`proc:` shows only processes in the jail; `null:`, `zero:`,
//!   `rand:`, `time:` and `debug:` pass; anything else is `EACCES`).
//! - **J** (caught): denied or virtualised in a jail; each entry's `why` says how.
//!
//! The table also puts each call in coarse groups (`file`, `process`, `memory`, `signal`,
//! `time`) so masks and policies can name sets of calls: a [`Selector`] is a call name, a
//! class (`P`, `F`, `C`, `J`), a group, or `all` ([`Selector::parse`]).
//!
//! Calls of the seed's Linux list with no counterpart in this ABI need no entry: there is no
//! call to set the clock (`time:` is read-only), change priority, mount, reboot, load modules,
//! set ids or change the root other than [`SYS_JAIL`], which only narrows.
//!
//! A unit test checks that this table and [`crate::SYSCALLS`] list the same calls, so a new
//! call cannot be added without being classified.

use crate::number::*;

/// Most syscall numbers one [`SYS_MASK`] call accepts.
pub const MASK_MAX: usize = 4096;
/// [`SYS_MASK`] flag: a masked call kills the process with `SIGSYS` (instead of `EPERM`).
pub const MASK_KILL: usize = 1;

/// How a jail treats a call (seed 004).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JailClass {
    /// Process-local: unchanged.
    P,
    /// Descriptor-based: unchanged (descriptors are capabilities).
    F,
    /// Path-taking: confined to the jail root.
    C,
    /// Caught: denied or virtualised.
    J,
}

impl JailClass {
    /// `"P"`, `"F"`, `"C"` or `"J"`.
    pub fn name(self) -> &'static str {
        match self {
            JailClass::P => "P",
            JailClass::F => "F",
            JailClass::C => "C",
            JailClass::J => "J",
        }
    }
}

/// Group: files, descriptors, directories, pipes.
pub const GROUP_FILE: u8 = 1;
/// Group: processes (creation, exec, exit, ids, other processes).
pub const GROUP_PROCESS: u8 = 2;
/// Group: the address space.
pub const GROUP_MEMORY: u8 = 4;
/// Group: signals.
pub const GROUP_SIGNAL: u8 = 8;
/// Group: clocks, sleeping, yielding, futexes.
pub const GROUP_TIME: u8 = 16;

/// Group names as policies spell them.
pub const GROUPS: &[(&str, u8)] = &[
    ("file", GROUP_FILE),
    ("process", GROUP_PROCESS),
    ("memory", GROUP_MEMORY),
    ("signal", GROUP_SIGNAL),
    ("time", GROUP_TIME),
];

/// One classified call.
#[derive(Clone, Copy, Debug)]
pub struct CallInfo {
    /// The syscall number.
    pub number: usize,
    /// Its name, as in [`crate::SYSCALLS`].
    pub name: &'static str,
    /// How a jail treats it.
    pub class: JailClass,
    /// `GROUP_*` bits.
    pub groups: u8,
    /// Why it has this class (for J: how it is caught).
    pub why: &'static str,
}

const fn c(number: usize, name: &'static str, class: JailClass, groups: u8, why: &'static str) -> CallInfo {
    CallInfo { number, name, class, groups, why }
}

use JailClass::{C, F, J, P};

/// Every system call of the ABI with its jail class and groups.
pub const CALLS: &[CallInfo] = &[
    // --- paths (C) ---
    c(SYS_OPEN, "open", C, GROUP_FILE, "path resolved inside the jail root (mkdir is open too)"),
    c(SYS_UNLINK, "unlink", C, GROUP_FILE, "path resolved inside the jail root"),
    c(SYS_RMDIR, "rmdir", C, GROUP_FILE, "path resolved inside the jail root"),
    c(SYS_CHDIR, "chdir", C, GROUP_FILE, "path resolved inside the jail root; file: only"),
    c(SYS_GETCWD, "getcwd", C, GROUP_FILE, "reports the working directory relative to the jail root"),
    // --- descriptors (F) ---
    c(SYS_CLOSE, "close", F, GROUP_FILE, "own descriptor"),
    c(SYS_READ, "read", F, GROUP_FILE, "own descriptor"),
    c(SYS_WRITE, "write", F, GROUP_FILE, "own descriptor"),
    c(SYS_LSEEK, "lseek", F, GROUP_FILE, "own descriptor"),
    c(SYS_DUP, "dup", F, GROUP_FILE, "own descriptor; a non-empty sub-path (fd-relative open) is EPERM in a jail"),
    c(SYS_DUP2, "dup2", F, GROUP_FILE, "own descriptor; a non-empty sub-path (fd-relative open) is EPERM in a jail"),
    c(SYS_FCNTL, "fcntl", F, GROUP_FILE, "own descriptor"),
    c(SYS_FSTAT, "fstat", F, GROUP_FILE, "own descriptor"),
    c(SYS_FSYNC, "fsync", F, GROUP_FILE, "own descriptor"),
    c(SYS_FTRUNCATE, "ftruncate", F, GROUP_FILE, "own descriptor"),
    c(SYS_FMAP, "fmap", F, GROUP_MEMORY, "own descriptor (or anonymous memory)"),
    // --- caught (J) ---
    // fpath names a file by its path: outside names must not leak into the jail.
    c(
        SYS_FPATH,
        "fpath",
        J,
        GROUP_FILE,
        "virtualised: file: paths are reported relative to the jail root; EPERM for a file outside it",
    ),
    // fexec on a descriptor opened before entering would run a program from outside.
    c(SYS_FEXEC, "fexec", J, GROUP_PROCESS, "denied (EACCES) unless the descriptor is a file: inside the jail root"),
    // Signals are the one way to act on another process.
    c(
        SYS_KILL,
        "kill",
        J,
        GROUP_PROCESS | GROUP_SIGNAL,
        "only processes in the same jail (or jails inside it); others are ESRCH, kill(-1) skips them",
    ),
    // A supervisor controls its target completely.
    c(SYS_SUPERVISE, "supervise", J, GROUP_PROCESS, "only processes in the same jail; others are ESRCH"),
    // Process groups name other processes.
    c(SYS_GETPGID, "getpgid", J, GROUP_PROCESS, "only processes in the same jail; others are ESRCH"),
    c(SYS_SETPGID, "setpgid", J, GROUP_PROCESS, "only processes in the same jail; others are ESRCH"),
    // --- process-local (P) ---
    c(SYS_EXIT, "exit", P, GROUP_PROCESS, "own process; never masked"),
    c(SYS_WAITPID, "waitpid", P, GROUP_PROCESS, "own children only"),
    c(SYS_GETPID, "getpid", P, GROUP_PROCESS, "own id"),
    c(SYS_GETPPID, "getppid", P, GROUP_PROCESS, "own parent's id"),
    c(SYS_CLONE, "clone", P, GROUP_PROCESS, "the child inherits the jail and the mask"),
    c(SYS_GETUID, "getuid", P, GROUP_PROCESS, "own id"),
    c(SYS_GETGID, "getgid", P, GROUP_PROCESS, "own id"),
    c(SYS_GETEUID, "geteuid", P, GROUP_PROCESS, "own id"),
    c(SYS_GETEGID, "getegid", P, GROUP_PROCESS, "own id"),
    c(SYS_UMASK, "umask", P, GROUP_FILE, "own file-creation mask"),
    c(SYS_PIPE2, "pipe2", P, GROUP_FILE, "a new pipe only the caller holds"),
    c(SYS_MASK, "mask", P, GROUP_PROCESS, "can only shrink the caller's own mask"),
    c(SYS_JAIL, "jail", P, GROUP_PROCESS, "can only narrow the caller's own jail"),
    c(SYS_BRK, "brk", P, GROUP_MEMORY, "own address space"),
    c(SYS_FUNMAP, "funmap", P, GROUP_MEMORY, "own address space"),
    c(SYS_MPROTECT, "mprotect", P, GROUP_MEMORY, "own address space"),
    c(SYS_SIGACTION, "sigaction", P, GROUP_SIGNAL, "own handlers"),
    c(SYS_SIGPROCMASK, "sigprocmask", P, GROUP_SIGNAL, "own signal mask"),
    c(SYS_SIGRETURN, "sigreturn", P, GROUP_SIGNAL, "own signal frame; never masked"),
    c(SYS_NANOSLEEP, "nanosleep", P, GROUP_TIME, "own thread"),
    c(SYS_CLOCK_GETTIME, "clock_gettime", P, GROUP_TIME, "reads the clock (nothing can set it)"),
    c(SYS_YIELD, "yield", P, GROUP_TIME, "own thread"),
    c(SYS_FUTEX, "futex", P, GROUP_TIME, "own address space"),
];

/// Calls a mask never blocks, so a masked process can always end (as in seccomp's strict
/// mode).
pub const ALWAYS_ALLOWED: &[usize] = &[SYS_EXIT, SYS_SIGRETURN];

/// The table entry of syscall `number`.
pub fn call_info(number: usize) -> Option<&'static CallInfo> {
    CALLS.iter().find(|c| c.number == number)
}

/// A set of calls named in a mask or policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Selector {
    /// One call, by number.
    Call(usize),
    /// Every call of a jail class.
    Class(JailClass),
    /// Every call with one of these `GROUP_*` bits.
    Group(u8),
    /// Every call in [`CALLS`].
    All,
}

impl Selector {
    /// Parses a call name (`open`), a class (`P`, `F`, `C`, `J`), a group (`file`, `process`,
    /// `memory`, `signal`, `time`) or `all`.
    pub fn parse(name: &str) -> Option<Selector> {
        Some(match name {
            "all" => Selector::All,
            "P" => Selector::Class(P),
            "F" => Selector::Class(F),
            "C" => Selector::Class(C),
            "J" => Selector::Class(J),
            _ => {
                if let Some(&(_, bits)) = GROUPS.iter().find(|&&(g, _)| g == name) {
                    Selector::Group(bits)
                } else {
                    Selector::Call(CALLS.iter().find(|c| c.name == name)?.number)
                }
            }
        })
    }

    /// True if `call` is in the set.
    pub fn matches(self, call: &CallInfo) -> bool {
        match self {
            Selector::Call(n) => call.number == n,
            Selector::Class(class) => call.class == class,
            Selector::Group(bits) => call.groups & bits != 0,
            Selector::All => true,
        }
    }

    /// The syscall numbers in the set.
    pub fn numbers(self) -> impl Iterator<Item = usize> {
        CALLS.iter().filter(move |c| self.matches(c)).map(|c| c.number)
    }
}
