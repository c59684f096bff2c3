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
//!
//! [`LINUX_CALLS`] does the same for the Linux personality (numbers `LINUX_CALL | nr`, see
//! [`crate::linux`]): every Linux call the kernel implements, with the same classes and
//! groups. Its C calls are confined like the Redox ones (a relative path of an `*at` call
//! is resolved against its directory descriptor only if that directory lies inside the
//! root; device paths the personality virtualises — `/dev/null`, `/dev/fd/N` ... — still
//! work); `execve` confines the program and every `#!` interpreter. A Linux call missing
//! from the table is `ENOSYS` for a restricted (masked or jailed) process, so a call the
//! personality gains later is never let through unclassified. A guest kernel unit test
//! checks that every call outside the table is `ENOSYS` in the personality.
//!
//! Names in masks and policies: a plain name (`open`) is the Redox call; `linux:NAME`
//! (`linux:openat`) is the Linux one. Classes, groups and `all` take both ABIs; `redox` and
//! `linux` select every call of one ABI.

use crate::linux::{LINUX_CALL, RENAMEAT2, nr as lx};
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

const fn l(nr: usize, name: &'static str, class: JailClass, groups: u8, why: &'static str) -> CallInfo {
    CallInfo { number: LINUX_CALL | nr, name, class, groups, why }
}

const FILE: u8 = GROUP_FILE;
const PROC: u8 = GROUP_PROCESS;
const MEM: u8 = GROUP_MEMORY;
const SIG: u8 = GROUP_SIGNAL;
const TIME: u8 = GROUP_TIME;

/// Every call of the Linux personality with its jail class and groups (numbers are
/// `LINUX_CALL | nr`).
pub const LINUX_CALLS: &[CallInfo] = &[
    // --- paths (C) ---
    l(
        lx::OPEN,
        "open",
        C,
        FILE,
        "path confined; /dev/null, /dev/zero, /dev/[u]random, /dev/std*, /dev/fd/N still work",
    ),
    l(lx::OPENAT, "openat", C, FILE, "path confined; relative only to a directory descriptor inside the root"),
    l(lx::CREAT, "creat", C, FILE, "path confined"),
    l(lx::STAT, "stat", C, FILE, "path confined"),
    l(lx::LSTAT, "lstat", C, FILE, "path confined"),
    l(lx::NEWFSTATAT, "newfstatat", C, FILE, "path confined; an empty path with AT_EMPTY_PATH is the descriptor"),
    l(lx::STATX, "statx", C, FILE, "path confined; an empty path with AT_EMPTY_PATH is the descriptor"),
    l(lx::ACCESS, "access", C, FILE, "path confined"),
    l(lx::FACCESSAT, "faccessat", C, FILE, "path confined"),
    l(lx::FACCESSAT2, "faccessat2", C, FILE, "path confined"),
    l(lx::CHDIR, "chdir", C, FILE, "path confined"),
    l(lx::MKDIR, "mkdir", C, FILE, "path confined"),
    l(lx::MKDIRAT, "mkdirat", C, FILE, "path confined"),
    l(lx::RMDIR, "rmdir", C, FILE, "path confined"),
    l(lx::UNLINK, "unlink", C, FILE, "path confined"),
    l(lx::UNLINKAT, "unlinkat", C, FILE, "path confined"),
    l(lx::READLINK, "readlink", C, FILE, "path confined; /proc/self/exe is reported relative to the root"),
    l(lx::READLINKAT, "readlinkat", C, FILE, "path confined; /proc/self/exe is reported relative to the root"),
    l(lx::RENAME, "rename", C, FILE, "both paths confined"),
    l(lx::RENAMEAT, "renameat", C, FILE, "both paths confined"),
    l(RENAMEAT2, "renameat2", C, FILE, "both paths confined"),
    l(lx::LINK, "link", C, FILE, "both paths confined"),
    l(lx::LINKAT, "linkat", C, FILE, "both paths confined"),
    l(lx::SYMLINK, "symlink", C, FILE, "the link's path confined (its target is only text, resolved inside the root)"),
    l(
        lx::SYMLINKAT,
        "symlinkat",
        C,
        FILE,
        "the link's path confined (its target is only text, resolved inside the root)",
    ),
    l(lx::TRUNCATE, "truncate", C, FILE, "path confined"),
    l(lx::CHMOD, "chmod", C, FILE, "path confined"),
    l(lx::FCHMODAT, "fchmodat", C, FILE, "path confined"),
    l(lx::CHOWN, "chown", C, FILE, "path confined"),
    l(lx::LCHOWN, "lchown", C, FILE, "path confined"),
    l(lx::FCHOWNAT, "fchownat", C, FILE, "path confined"),
    l(lx::UTIME, "utime", C, FILE, "path confined"),
    l(lx::UTIMES, "utimes", C, FILE, "path confined"),
    l(lx::UTIMENSAT, "utimensat", C, FILE, "path confined (a null path is the descriptor)"),
    l(lx::EXECVE, "execve", C, PROC, "the program and every #! interpreter are resolved inside the root"),
    l(lx::GETCWD, "getcwd", C, FILE, "reports the working directory relative to the jail root"),
    // --- descriptors (F) ---
    l(lx::READ, "read", F, FILE, "own descriptor"),
    l(lx::WRITE, "write", F, FILE, "own descriptor"),
    l(lx::READV, "readv", F, FILE, "own descriptor"),
    l(lx::WRITEV, "writev", F, FILE, "own descriptor"),
    l(lx::PREAD64, "pread64", F, FILE, "own descriptor"),
    l(lx::PWRITE64, "pwrite64", F, FILE, "own descriptor"),
    l(lx::PREADV, "preadv", F, FILE, "own descriptor"),
    l(lx::PWRITEV, "pwritev", F, FILE, "own descriptor"),
    l(lx::CLOSE, "close", F, FILE, "own descriptor"),
    l(lx::CLOSE_RANGE, "close_range", F, FILE, "own descriptors"),
    l(lx::LSEEK, "lseek", F, FILE, "own descriptor"),
    l(lx::FSTAT, "fstat", F, FILE, "own descriptor"),
    l(lx::GETDENTS64, "getdents64", F, FILE, "own descriptor"),
    l(lx::DUP, "dup", F, FILE, "own descriptor"),
    l(lx::DUP2, "dup2", F, FILE, "own descriptor"),
    l(lx::DUP3, "dup3", F, FILE, "own descriptor"),
    l(lx::FCNTL, "fcntl", F, FILE, "own descriptor"),
    l(lx::IOCTL, "ioctl", F, FILE, "own descriptor"),
    l(lx::FTRUNCATE, "ftruncate", F, FILE, "own descriptor"),
    l(lx::FSYNC, "fsync", F, FILE, "own descriptor"),
    l(lx::FDATASYNC, "fdatasync", F, FILE, "own descriptor"),
    l(lx::FLOCK, "flock", F, FILE, "own descriptor"),
    l(lx::FCHMOD, "fchmod", F, FILE, "own descriptor"),
    l(lx::FCHOWN, "fchown", F, FILE, "own descriptor"),
    l(lx::FADVISE64, "fadvise64", F, FILE, "own descriptor"),
    l(lx::FALLOCATE, "fallocate", F, FILE, "own descriptor"),
    l(lx::SENDFILE, "sendfile", F, FILE, "own descriptors"),
    l(lx::POLL, "poll", F, FILE | TIME, "own descriptors"),
    l(lx::PPOLL, "ppoll", F, FILE | TIME, "own descriptors"),
    l(lx::SELECT, "select", F, FILE | TIME, "own descriptors"),
    l(lx::PSELECT6, "pselect6", F, FILE | TIME, "own descriptors"),
    l(lx::MMAP, "mmap", F, MEM, "own descriptor (or anonymous memory)"),
    // --- caught (J) ---
    l(lx::FCHDIR, "fchdir", J, FILE, "only to a directory inside the jail root; EACCES otherwise"),
    l(lx::KILL, "kill", J, PROC | SIG, "only processes in the same jail (or jails inside it); others are ESRCH"),
    l(lx::TKILL, "tkill", J, PROC | SIG, "only threads of processes in the same jail; others are ESRCH"),
    l(lx::TGKILL, "tgkill", J, PROC | SIG, "only threads of processes in the same jail; others are ESRCH"),
    l(lx::GETPGID, "getpgid", J, PROC, "only processes in the same jail; others are ESRCH"),
    l(lx::SETPGID, "setpgid", J, PROC, "only processes and groups in the same jail"),
    l(lx::PRLIMIT64, "prlimit64", J, PROC, "only processes in the same jail; others are ESRCH"),
    l(lx::SETPRIORITY, "setpriority", J, PROC, "virtualised: accepted without effect"),
    l(lx::SETUID, "setuid", J, PROC, "virtualised: accepted without effect"),
    l(lx::SETGID, "setgid", J, PROC, "virtualised: accepted without effect"),
    l(lx::SETREUID, "setreuid", J, PROC, "virtualised: accepted without effect"),
    l(lx::SETREGID, "setregid", J, PROC, "virtualised: accepted without effect"),
    l(lx::SETRESUID, "setresuid", J, PROC, "virtualised: accepted without effect"),
    l(lx::SETRESGID, "setresgid", J, PROC, "virtualised: accepted without effect"),
    l(lx::SETGROUPS, "setgroups", J, PROC, "virtualised: accepted without effect"),
    // --- process-local (P) ---
    l(lx::EXIT, "exit", P, PROC, "own thread; never masked"),
    l(lx::EXIT_GROUP, "exit_group", P, PROC, "own process; never masked"),
    l(lx::WAIT4, "wait4", P, PROC, "own children only"),
    l(lx::WAITID, "waitid", P, PROC, "own children only"),
    l(lx::CLONE, "clone", P, PROC, "the child inherits the jail and the mask"),
    l(lx::FORK, "fork", P, PROC, "the child inherits the jail and the mask"),
    l(lx::VFORK, "vfork", P, PROC, "the child inherits the jail and the mask"),
    l(lx::GETPID, "getpid", P, PROC, "own id"),
    l(lx::GETTID, "gettid", P, PROC, "own id"),
    l(lx::GETPPID, "getppid", P, PROC, "own parent's id"),
    l(lx::GETUID, "getuid", P, PROC, "own id"),
    l(lx::GETEUID, "geteuid", P, PROC, "own id"),
    l(lx::GETGID, "getgid", P, PROC, "own id"),
    l(lx::GETEGID, "getegid", P, PROC, "own id"),
    l(lx::GETRESUID, "getresuid", P, PROC, "own ids"),
    l(lx::GETRESGID, "getresgid", P, PROC, "own ids"),
    l(lx::GETGROUPS, "getgroups", P, PROC, "own groups"),
    l(lx::GETPGRP, "getpgrp", P, PROC, "own group"),
    l(lx::GETSID, "getsid", P, PROC, "own session (the argument is ignored)"),
    l(lx::SETSID, "setsid", P, PROC, "own session"),
    l(lx::GETPRIORITY, "getpriority", P, PROC, "a constant"),
    l(lx::SET_TID_ADDRESS, "set_tid_address", P, PROC, "own thread"),
    l(lx::SET_ROBUST_LIST, "set_robust_list", P, PROC, "own thread"),
    l(lx::GET_ROBUST_LIST, "get_robust_list", P, PROC, "own thread"),
    l(lx::ARCH_PRCTL, "arch_prctl", P, PROC, "own thread's registers"),
    l(lx::PRCTL, "prctl", P, PROC, "own process"),
    l(lx::GETRLIMIT, "getrlimit", P, PROC, "own limits"),
    l(lx::SETRLIMIT, "setrlimit", P, PROC, "own limits"),
    l(lx::GETRUSAGE, "getrusage", P, PROC, "own usage"),
    l(lx::TIMES, "times", P, PROC | TIME, "own times"),
    l(lx::UNAME, "uname", P, PROC, "constant system name"),
    l(lx::SYSINFO, "sysinfo", P, PROC, "machine-wide counters only"),
    l(lx::SCHED_YIELD, "sched_yield", P, TIME, "own thread"),
    l(lx::SCHED_GETAFFINITY, "sched_getaffinity", P, PROC, "reports one CPU whatever the pid"),
    l(lx::SCHED_SETAFFINITY, "sched_setaffinity", P, PROC, "accepted without effect"),
    l(lx::GETRANDOM, "getrandom", P, PROC, "the seeded generator"),
    l(lx::UMASK, "umask", P, FILE, "own file-creation mask"),
    l(lx::PIPE, "pipe", P, FILE, "a new pipe only the caller holds"),
    l(lx::PIPE2, "pipe2", P, FILE, "a new pipe only the caller holds"),
    l(lx::SYNC, "sync", P, FILE, "flushes nothing another process can see"),
    l(lx::BRK, "brk", P, MEM, "own address space"),
    l(lx::MUNMAP, "munmap", P, MEM, "own address space"),
    l(lx::MPROTECT, "mprotect", P, MEM, "own address space"),
    l(lx::MREMAP, "mremap", P, MEM, "own address space"),
    l(lx::MADVISE, "madvise", P, MEM, "own address space"),
    l(lx::MINCORE, "mincore", P, MEM, "own address space"),
    l(lx::MSYNC, "msync", P, MEM, "own address space"),
    l(lx::FUTEX, "futex", P, TIME, "own address space"),
    l(lx::RT_SIGACTION, "rt_sigaction", P, SIG, "own handlers"),
    l(lx::RT_SIGPROCMASK, "rt_sigprocmask", P, SIG, "own signal mask"),
    l(lx::RT_SIGRETURN, "rt_sigreturn", P, SIG, "own signal frame; never masked"),
    l(lx::RT_SIGPENDING, "rt_sigpending", P, SIG, "own signals"),
    l(lx::RT_SIGSUSPEND, "rt_sigsuspend", P, SIG, "own thread"),
    l(lx::SIGALTSTACK, "sigaltstack", P, SIG, "own thread"),
    l(lx::PAUSE, "pause", P, SIG, "own thread"),
    l(lx::ALARM, "alarm", P, TIME, "own process (no timer)"),
    l(lx::GETITIMER, "getitimer", P, TIME, "own process"),
    l(lx::SETITIMER, "setitimer", P, TIME, "own process"),
    l(lx::CLOCK_GETTIME, "clock_gettime", P, TIME, "reads the clock (nothing can set it)"),
    l(lx::CLOCK_GETRES, "clock_getres", P, TIME, "reads the clock"),
    l(lx::GETTIMEOFDAY, "gettimeofday", P, TIME, "reads the clock"),
    l(lx::TIME, "time", P, TIME, "reads the clock"),
    l(lx::NANOSLEEP, "nanosleep", P, TIME, "own thread"),
    l(lx::CLOCK_NANOSLEEP, "clock_nanosleep", P, TIME, "own thread"),
];

/// Calls a mask never blocks, so a masked process can always end (as in seccomp's strict
/// mode).
pub const ALWAYS_ALLOWED: &[usize] =
    &[SYS_EXIT, SYS_SIGRETURN, LINUX_CALL | lx::EXIT, LINUX_CALL | lx::EXIT_GROUP, LINUX_CALL | lx::RT_SIGRETURN];

/// The table entry of syscall `number` (a Redox number, or `LINUX_CALL | nr`).
pub fn call_info(number: usize) -> Option<&'static CallInfo> {
    let table = if number & LINUX_CALL != 0 { LINUX_CALLS } else { CALLS };
    table.iter().find(|c| c.number == number)
}

/// Every classified call of both ABIs: [`CALLS`], then [`LINUX_CALLS`].
pub fn all_calls() -> impl Iterator<Item = &'static CallInfo> {
    CALLS.iter().chain(LINUX_CALLS.iter())
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
    /// Every call of one ABI: `true` for Linux.
    Abi(bool),
    /// Every call of both tables.
    All,
}

impl Selector {
    /// Parses a Redox call name (`open`), a Linux call name (`linux:openat`), a class (`P`,
    /// `F`, `C`, `J`), a group (`file`, `process`, `memory`, `signal`, `time`), an ABI
    /// (`redox`, `linux`) or `all`.
    pub fn parse(name: &str) -> Option<Selector> {
        if let Some(linux) = name.strip_prefix("linux:") {
            return Some(Selector::Call(LINUX_CALLS.iter().find(|c| c.name == linux)?.number));
        }
        Some(match name {
            "all" => Selector::All,
            "redox" => Selector::Abi(false),
            "linux" => Selector::Abi(true),
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
            Selector::Abi(linux) => (call.number & LINUX_CALL != 0) == linux,
            Selector::All => true,
        }
    }

    /// The syscall numbers in the set (both tables).
    pub fn numbers(self) -> impl Iterator<Item = usize> {
        all_calls().filter(move |c| self.matches(c)).map(|c| c.number)
    }
}
