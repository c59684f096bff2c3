//! Flags and small enumerations: open flags, seek, fcntl, file modes, wait options and the
//! wait-status encoding, memory-map flags, signals, clocks, futex operations and auxv keys.
//!
//! Design: open, map and clock values are Redox's; errno, signal numbers and the wait-status
//! encoding are Linux's (so `128 + signal` exit codes and shell `$?` look familiar). Types
//! follow the Redox `syscall` crate: flags are `usize`, modes `u16`.

// ---------------------------------------------------------------------------------------
// open(2)

/// Open for reading.
pub const O_RDONLY: usize = 0x0001_0000;
/// Open for writing.
pub const O_WRONLY: usize = 0x0002_0000;
/// Open for reading and writing.
pub const O_RDWR: usize = 0x0003_0000;
/// Non-blocking I/O.
pub const O_NONBLOCK: usize = 0x0004_0000;
/// `jail` flag: the jail lets its processes create user-space schemes (`open(":NAME",
/// O_CREAT)`) and use the schemes that processes of the jail (or of jails inside it) serve;
/// schemes served from outside stay EACCES. A jail made inside one without it cannot have it
/// (EPERM: a jail only narrows).
pub const JAIL_SCHEMES: usize = 1;
/// Bit in the descriptor argument of `read`, `write`, `send`, `recv` and `call` that makes
/// that one call non-blocking (EAGAIN instead of blocking), leaving `O_NONBLOCK` alone
/// (seed 003).
pub const FD_NONBLOCK_CALL: usize = 1 << 62;
/// Every write appends.
pub const O_APPEND: usize = 0x0008_0000;
/// Shared lock.
pub const O_SHLOCK: usize = 0x0010_0000;
/// Exclusive lock.
pub const O_EXLOCK: usize = 0x0020_0000;
/// Signal-driven I/O.
pub const O_ASYNC: usize = 0x0040_0000;
/// Synchronous writes.
pub const O_FSYNC: usize = 0x0080_0000;
/// Close the descriptor on `fexec`.
pub const O_CLOEXEC: usize = 0x0100_0000;
/// Create the file (or, with `O_DIRECTORY`, the directory) if missing.
pub const O_CREAT: usize = 0x0200_0000;
/// Truncate to length 0.
pub const O_TRUNC: usize = 0x0400_0000;
/// With `O_CREAT`: fail with `EEXIST` if the path exists.
pub const O_EXCL: usize = 0x0800_0000;
/// The path must be a directory (reading it yields entry names separated by `'\n'`).
pub const O_DIRECTORY: usize = 0x1000_0000;
/// Open only to `fstat` (works on files and directories alike).
pub const O_STAT: usize = 0x2000_0000;
/// Open the symbolic link itself.
pub const O_SYMLINK: usize = 0x4000_0000;
/// Do not follow a final symbolic link.
pub const O_NOFOLLOW: usize = 0x8000_0000;
/// Mask of the access-mode bits (`O_RDONLY`, `O_WRONLY`, `O_RDWR`).
pub const O_ACCMODE: usize = O_RDONLY | O_WRONLY | O_RDWR;
/// Mask of the mode bits carried in the low 16 bits of the open flags (used with `O_CREAT`).
pub const O_MODE_MASK: usize = 0xFFFF;

// ---------------------------------------------------------------------------------------
// lseek(2), fcntl(2)

/// Seek from the start.
pub const SEEK_SET: usize = 0;
/// Seek from the current offset.
pub const SEEK_CUR: usize = 1;
/// Seek from the end.
pub const SEEK_END: usize = 2;

/// fcntl: duplicate to the lowest free descriptor `>= arg`.
pub const F_DUPFD: usize = 0;
/// fcntl: get descriptor flags (`FD_CLOEXEC`).
pub const F_GETFD: usize = 1;
/// fcntl: set descriptor flags.
pub const F_SETFD: usize = 2;
/// fcntl: get the file status flags (`O_*`).
pub const F_GETFL: usize = 3;
/// fcntl: set the file status flags.
pub const F_SETFL: usize = 4;
/// Descriptor flag: close on `fexec`.
pub const FD_CLOEXEC: usize = 1;

// ---------------------------------------------------------------------------------------
// File modes (`Stat::st_mode`)

/// Mask of the file-type bits.
pub const MODE_TYPE: u16 = 0xF000;
/// Directory.
pub const MODE_DIR: u16 = 0x4000;
/// Regular file.
pub const MODE_FILE: u16 = 0x8000;
/// Symbolic link.
pub const MODE_SYMLINK: u16 = 0xA000;
/// FIFO (pipe).
pub const MODE_FIFO: u16 = 0x1000;
/// Character device.
pub const MODE_CHR: u16 = 0x2000;
/// Mask of the permission bits.
pub const MODE_PERM: u16 = 0x0FFF;

// ---------------------------------------------------------------------------------------
// waitpid(2) and the wait status

/// waitpid option: return 0 at once if no child has changed state.
pub const WNOHANG: usize = 1;
/// waitpid option: also report stopped children.
pub const WUNTRACED: usize = 2;

/// Wait status of a child that exited with `code` (`code << 8`).
pub const fn w_exitcode(code: u8) -> usize {
    (code as usize) << 8
}
/// Wait status of a child killed by signal `sig` (the signal in the low 7 bits).
pub const fn w_termsig(sig: usize) -> usize {
    sig & 0x7f
}
/// Wait status of a child stopped by signal `sig` (`sig << 8 | 0x7f`).
pub const fn w_stopcode(sig: usize) -> usize {
    ((sig & 0xff) << 8) | 0x7f
}
/// True if the child exited normally.
pub const fn wifexited(status: usize) -> bool {
    status & 0x7f == 0
}
/// The exit code of a child that exited normally.
pub const fn wexitstatus(status: usize) -> u8 {
    ((status >> 8) & 0xff) as u8
}
/// True if the child was killed by a signal.
pub const fn wifsignaled(status: usize) -> bool {
    let low = status & 0x7f;
    low != 0 && low != 0x7f
}
/// The signal that killed the child.
pub const fn wtermsig(status: usize) -> usize {
    status & 0x7f
}
/// True if the child is stopped.
pub const fn wifstopped(status: usize) -> bool {
    status & 0xff == 0x7f
}
/// The signal that stopped the child.
pub const fn wstopsig(status: usize) -> usize {
    (status >> 8) & 0xff
}

// ---------------------------------------------------------------------------------------
// fmap(2), mprotect(2)

/// No access.
pub const PROT_NONE: usize = 0;
/// Executable.
pub const PROT_EXEC: usize = 0x1_0000;
/// Writable.
pub const PROT_WRITE: usize = 0x2_0000;
/// Readable.
pub const PROT_READ: usize = 0x4_0000;
/// Shared mapping.
pub const MAP_SHARED: usize = 0x1;
/// Private (copy-on-write) mapping.
pub const MAP_PRIVATE: usize = 0x2;
/// Map exactly at `Map::address`.
pub const MAP_FIXED: usize = 0x4;
/// `fmap` descriptor meaning anonymous memory.
pub const ANONYMOUS_FD: usize = usize::MAX;
/// Guest page size.
pub const PAGE_SIZE: usize = 4096;

// ---------------------------------------------------------------------------------------
// Signals (Linux numbers)

/// Hangup.
pub const SIGHUP: usize = 1;
/// Interrupt.
pub const SIGINT: usize = 2;
/// Quit.
pub const SIGQUIT: usize = 3;
/// Illegal instruction.
pub const SIGILL: usize = 4;
/// Trace/breakpoint trap.
pub const SIGTRAP: usize = 5;
/// Abort.
pub const SIGABRT: usize = 6;
/// Bus error.
pub const SIGBUS: usize = 7;
/// Floating-point exception.
pub const SIGFPE: usize = 8;
/// Kill (cannot be caught).
pub const SIGKILL: usize = 9;
/// User signal 1.
pub const SIGUSR1: usize = 10;
/// Segmentation fault.
pub const SIGSEGV: usize = 11;
/// User signal 2.
pub const SIGUSR2: usize = 12;
/// Broken pipe.
pub const SIGPIPE: usize = 13;
/// Alarm clock.
pub const SIGALRM: usize = 14;
/// Termination.
pub const SIGTERM: usize = 15;
/// Stack fault.
pub const SIGSTKFLT: usize = 16;
/// Child status changed.
pub const SIGCHLD: usize = 17;
/// Continue.
pub const SIGCONT: usize = 18;
/// Stop (cannot be caught).
pub const SIGSTOP: usize = 19;
/// Terminal stop.
pub const SIGTSTP: usize = 20;
/// Background read from the terminal.
pub const SIGTTIN: usize = 21;
/// Background write to the terminal.
pub const SIGTTOU: usize = 22;
/// Urgent socket condition.
pub const SIGURG: usize = 23;
/// CPU time limit exceeded.
pub const SIGXCPU: usize = 24;
/// File size limit exceeded.
pub const SIGXFSZ: usize = 25;
/// Virtual alarm clock.
pub const SIGVTALRM: usize = 26;
/// Profiling alarm clock.
pub const SIGPROF: usize = 27;
/// Window size change.
pub const SIGWINCH: usize = 28;
/// I/O possible.
pub const SIGIO: usize = 29;
/// Power failure.
pub const SIGPWR: usize = 30;
/// Bad system call.
pub const SIGSYS: usize = 31;
/// One more than the highest standard signal number.
pub const NSIG: usize = 32;

/// Names of the standard signals (without the `SIG` prefix), indexed by number; index 0 is
/// empty.
pub const SIGNAL_NAMES: [&str; NSIG] = [
    "", "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2", "PIPE", "ALRM",
    "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG", "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH",
    "IO", "PWR", "SYS",
];

/// The name of signal `sig` without the `SIG` prefix (e.g. `"TERM"`).
pub fn signal_name(sig: usize) -> Option<&'static str> {
    SIGNAL_NAMES.get(sig).copied().filter(|name| !name.is_empty())
}

/// The number of a signal named with or without the `SIG` prefix (`"TERM"`, `"SIGTERM"`).
pub fn signal_from_name(name: &str) -> Option<usize> {
    let name = name.strip_prefix("SIG").unwrap_or(name);
    SIGNAL_NAMES.iter().position(|&n| !n.is_empty() && n == name)
}

/// Signal disposition: default action.
pub const SIG_DFL: usize = 0;
/// Signal disposition: ignore.
pub const SIG_IGN: usize = 1;

/// sigprocmask: add to the mask.
pub const SIG_BLOCK: usize = 0;
/// sigprocmask: remove from the mask.
pub const SIG_UNBLOCK: usize = 1;
/// sigprocmask: replace the mask.
pub const SIG_SETMASK: usize = 2;

/// sigaction flag: no `SIGCHLD` when children stop.
pub const SA_NOCLDSTOP: usize = 0x0000_0001;
/// sigaction flag: do not create zombies.
pub const SA_NOCLDWAIT: usize = 0x0000_0002;
/// sigaction flag: three-argument handler.
pub const SA_SIGINFO: usize = 0x0000_0004;
/// sigaction flag: the restorer argument is valid.
pub const SA_RESTORER: usize = 0x0400_0000;
/// sigaction flag: run on the alternate stack.
pub const SA_ONSTACK: usize = 0x0800_0000;
/// sigaction flag: restart interrupted system calls.
pub const SA_RESTART: usize = 0x1000_0000;
/// sigaction flag: do not mask the signal in its own handler.
pub const SA_NODEFER: usize = 0x4000_0000;
/// sigaction flag: reset to `SIG_DFL` on delivery.
pub const SA_RESETHAND: usize = 0x8000_0000;

// ---------------------------------------------------------------------------------------
// Clocks and futexes

/// Wall-clock time.
pub const CLOCK_REALTIME: usize = 1;
/// Monotonic time.
pub const CLOCK_MONOTONIC: usize = 4;

/// futex: sleep while `*addr == val`.
pub const FUTEX_WAIT: usize = 0;
/// futex: wake up to `val` waiters.
pub const FUTEX_WAKE: usize = 1;

// ---------------------------------------------------------------------------------------
// Auxiliary vector keys (SysV x86-64 / Linux values) on the initial stack

/// End of the auxiliary vector.
pub const AT_NULL: usize = 0;
/// Address of the program headers.
pub const AT_PHDR: usize = 3;
/// Size of one program header.
pub const AT_PHENT: usize = 4;
/// Number of program headers.
pub const AT_PHNUM: usize = 5;
/// Page size.
pub const AT_PAGESZ: usize = 6;
/// Program entry point.
pub const AT_ENTRY: usize = 9;
/// Address of 16 random bytes.
pub const AT_RANDOM: usize = 25;
