//! Names of flag bits and argument values, for traces: the [`Flags`] and [`Names`] the call
//! tables ([`crate::calls`]) attach to arguments. Redox names first, then Linux ones (values
//! from [`crate::linux::flag`]).

use crate::linux::flag as lx;
use crate::table::{Flags, Names};
use crate::*;

// --- Redox ---------------------------------------------------------------------------------

/// Redox `open` flags: the access mode, the status and creation bits, the mode with `O_CREAT`.
pub const REDOX_OPEN: Flags = Flags {
    field: Some((O_ACCMODE, &[(O_RDONLY, "O_RDONLY"), (O_WRONLY, "O_WRONLY"), (O_RDWR, "O_RDWR"), (0, "O_NOACCESS")])),
    bits: &[
        (O_NONBLOCK, "O_NONBLOCK"),
        (O_APPEND, "O_APPEND"),
        (O_SHLOCK, "O_SHLOCK"),
        (O_EXLOCK, "O_EXLOCK"),
        (O_ASYNC, "O_ASYNC"),
        (O_FSYNC, "O_FSYNC"),
        (O_CLOEXEC, "O_CLOEXEC"),
        (O_CREAT, "O_CREAT"),
        (O_TRUNC, "O_TRUNC"),
        (O_EXCL, "O_EXCL"),
        (O_DIRECTORY, "O_DIRECTORY"),
        (O_STAT, "O_STAT"),
        (O_SYMLINK, "O_SYMLINK"),
        (O_NOFOLLOW, "O_NOFOLLOW"),
    ],
    mode: Some((O_CREAT, O_MODE_MASK)),
    signal: 0,
};

/// Redox `pipe2` flags.
pub const REDOX_PIPE: Flags = Flags::bits(&[(O_NONBLOCK, "O_NONBLOCK"), (O_CLOEXEC, "O_CLOEXEC")]);

/// Redox `clone` flags.
pub const REDOX_CLONE: Flags = Flags::bits(&[
    (CLONE_VM, "CLONE_VM"),
    (CLONE_FS, "CLONE_FS"),
    (CLONE_FILES, "CLONE_FILES"),
    (CLONE_SIGHAND, "CLONE_SIGHAND"),
    (CLONE_VFORK, "CLONE_VFORK"),
    (CLONE_THREAD, "CLONE_THREAD"),
    (CLONE_SUPERVISE, "CLONE_SUPERVISE"),
]);

/// Redox `waitpid` options.
pub const REDOX_WAIT: Flags = Flags::bits(&[(WNOHANG, "WNOHANG"), (WUNTRACED, "WUNTRACED")]);

/// `supervise` flags.
pub const SUPERVISE_FLAGS: Flags = Flags::bits(&[(SUPERVISE_BLOCK, "SUPERVISE_BLOCK")]);

/// `mask` flags.
pub const MASK_FLAGS: Flags = Flags::bits(&[(crate::MASK_KILL, "MASK_KILL")]);

/// `lseek` whence (both ABIs).
pub const WHENCE: Names = &[(SEEK_SET, "SEEK_SET"), (SEEK_CUR, "SEEK_CUR"), (SEEK_END, "SEEK_END")];

/// Redox `fcntl` commands.
pub const REDOX_FCNTL: Names =
    &[(F_DUPFD, "F_DUPFD"), (F_GETFD, "F_GETFD"), (F_SETFD, "F_SETFD"), (F_GETFL, "F_GETFL"), (F_SETFL, "F_SETFL")];

/// `sigprocmask` how (both ABIs).
pub const SIG_HOW: Names = &[(SIG_BLOCK, "SIG_BLOCK"), (SIG_UNBLOCK, "SIG_UNBLOCK"), (SIG_SETMASK, "SIG_SETMASK")];

/// Redox `futex` operations.
pub const REDOX_FUTEX: Names = &[(FUTEX_WAIT, "FUTEX_WAIT"), (FUTEX_WAKE, "FUTEX_WAKE")];

/// `jail` flags.
pub const JAIL_FLAGS: Flags = Flags::bits(&[(crate::JAIL_SCHEMES, "JAIL_SCHEMES")]);

/// Redox clocks.
pub const REDOX_CLOCKS: Names = &[(CLOCK_REALTIME, "CLOCK_REALTIME"), (CLOCK_MONOTONIC, "CLOCK_MONOTONIC")];

/// Redox `mprotect` / `fmap` protection bits.
pub const REDOX_PROT: Flags =
    Flags::bits(&[(PROT_READ, "PROT_READ"), (PROT_WRITE, "PROT_WRITE"), (PROT_EXEC, "PROT_EXEC")]);

// --- Linux ---------------------------------------------------------------------------------

/// Linux `open` flags.
pub const OPEN_FLAGS: Flags = Flags {
    field: Some((lx::O_ACCMODE, &[(0, "O_RDONLY"), (lx::O_WRONLY, "O_WRONLY"), (lx::O_RDWR, "O_RDWR")])),
    bits: &[
        (lx::O_CREAT, "O_CREAT"),
        (lx::O_EXCL, "O_EXCL"),
        (lx::O_NOCTTY, "O_NOCTTY"),
        (lx::O_TRUNC, "O_TRUNC"),
        (lx::O_APPEND, "O_APPEND"),
        (lx::O_NONBLOCK, "O_NONBLOCK"),
        (lx::O_DSYNC, "O_DSYNC"),
        (lx::O_LARGEFILE, "O_LARGEFILE"),
        (lx::O_DIRECTORY, "O_DIRECTORY"),
        (lx::O_NOFOLLOW, "O_NOFOLLOW"),
        (lx::O_NOATIME, "O_NOATIME"),
        (lx::O_CLOEXEC, "O_CLOEXEC"),
        (lx::O_PATH, "O_PATH"),
    ],
    mode: None,
    signal: 0,
};

/// `*at` flags.
pub const AT_FLAGS: Flags = Flags::bits(&[
    (lx::AT_SYMLINK_NOFOLLOW, "AT_SYMLINK_NOFOLLOW"),
    (lx::AT_REMOVEDIR, "AT_REMOVEDIR"),
    (lx::AT_SYMLINK_FOLLOW, "AT_SYMLINK_FOLLOW"),
    (lx::AT_EMPTY_PATH, "AT_EMPTY_PATH"),
    (lx::AT_EACCESS, "AT_EACCESS"),
]);

/// `access` modes.
pub const ACCESS_MODES: Flags =
    Flags { field: None, bits: &[(lx::R_OK, "R_OK"), (lx::W_OK, "W_OK"), (lx::X_OK, "X_OK")], mode: None, signal: 0 };

/// `mmap` / `mprotect` protection.
pub const PROT_FLAGS: Flags =
    Flags::bits(&[(lx::PROT_READ, "PROT_READ"), (lx::PROT_WRITE, "PROT_WRITE"), (lx::PROT_EXEC, "PROT_EXEC")]);

/// `mmap` flags: the mapping type, then the flags.
pub const MAP_FLAGS: Flags = Flags {
    field: Some((0x3, &[(lx::MAP_SHARED, "MAP_SHARED"), (lx::MAP_PRIVATE, "MAP_PRIVATE"), (3, "MAP_SHARED_VALIDATE")])),
    bits: &[
        (lx::MAP_FIXED, "MAP_FIXED"),
        (lx::MAP_ANONYMOUS, "MAP_ANONYMOUS"),
        (lx::MAP_GROWSDOWN, "MAP_GROWSDOWN"),
        (lx::MAP_DENYWRITE, "MAP_DENYWRITE"),
        (lx::MAP_NORESERVE, "MAP_NORESERVE"),
        (lx::MAP_POPULATE, "MAP_POPULATE"),
        (lx::MAP_STACK, "MAP_STACK"),
        (lx::MAP_FIXED_NOREPLACE, "MAP_FIXED_NOREPLACE"),
    ],
    mode: None,
    signal: 0,
};

/// `mremap` flags.
pub const MREMAP_FLAGS: Flags =
    Flags::bits(&[(lx::MREMAP_MAYMOVE, "MREMAP_MAYMOVE"), (lx::MREMAP_FIXED, "MREMAP_FIXED")]);

/// Linux `clone` flags (the low byte is the exit signal).
pub const CLONE_FLAGS: Flags = Flags {
    field: None,
    bits: &[
        (lx::CLONE_VM, "CLONE_VM"),
        (lx::CLONE_FS, "CLONE_FS"),
        (lx::CLONE_FILES, "CLONE_FILES"),
        (lx::CLONE_SIGHAND, "CLONE_SIGHAND"),
        (lx::CLONE_VFORK, "CLONE_VFORK"),
        (lx::CLONE_PARENT, "CLONE_PARENT"),
        (lx::CLONE_THREAD, "CLONE_THREAD"),
        (lx::CLONE_SYSVSEM, "CLONE_SYSVSEM"),
        (lx::CLONE_SETTLS, "CLONE_SETTLS"),
        (lx::CLONE_PARENT_SETTID, "CLONE_PARENT_SETTID"),
        (lx::CLONE_CHILD_CLEARTID, "CLONE_CHILD_CLEARTID"),
        (lx::CLONE_CHILD_SETTID, "CLONE_CHILD_SETTID"),
    ],
    mode: None,
    signal: lx::CSIGNAL,
};

/// `wait4` / `waitid` options.
pub const WAIT_FLAGS: Flags = Flags::bits(&[
    (lx::WNOHANG, "WNOHANG"),
    (lx::WUNTRACED, "WUNTRACED"),
    (lx::WEXITED, "WEXITED"),
    (lx::WCONTINUED, "WCONTINUED"),
    (lx::WNOWAIT, "WNOWAIT"),
    (lx::WALL, "__WALL"),
]);

/// `waitid` id types.
pub const IDTYPE: Names = &[(lx::P_ALL, "P_ALL"), (lx::P_PID, "P_PID"), (lx::P_PGID, "P_PGID")];

/// `pipe2` / `dup3` flags.
pub const PIPE_FLAGS: Flags =
    Flags::bits(&[(lx::O_NONBLOCK, "O_NONBLOCK"), (lx::O_CLOEXEC, "O_CLOEXEC"), (lx::O_DIRECT, "O_DIRECT")]);

/// Linux `fcntl` commands.
pub const FCNTL_CMDS: Names = &[
    (lx::F_DUPFD, "F_DUPFD"),
    (lx::F_GETFD, "F_GETFD"),
    (lx::F_SETFD, "F_SETFD"),
    (lx::F_GETFL, "F_GETFL"),
    (lx::F_SETFL, "F_SETFL"),
    (lx::F_GETLK, "F_GETLK"),
    (lx::F_SETLK, "F_SETLK"),
    (lx::F_SETLKW, "F_SETLKW"),
    (lx::F_DUPFD_CLOEXEC, "F_DUPFD_CLOEXEC"),
];

/// `ioctl` requests the personality knows.
pub const IOCTL_CMDS: Names = &[
    (lx::TCGETS, "TCGETS"),
    (lx::TCSETS, "TCSETS"),
    (lx::TCSETSW, "TCSETSW"),
    (lx::TCSETSF, "TCSETSF"),
    (lx::TCSBRK, "TCSBRK"),
    (lx::TCXONC, "TCXONC"),
    (lx::TCFLSH, "TCFLSH"),
    (lx::TIOCSCTTY, "TIOCSCTTY"),
    (lx::TIOCGPGRP, "TIOCGPGRP"),
    (lx::TIOCSPGRP, "TIOCSPGRP"),
    (lx::TIOCGWINSZ, "TIOCGWINSZ"),
    (lx::TIOCSWINSZ, "TIOCSWINSZ"),
    (lx::FIONREAD, "FIONREAD"),
    (lx::TIOCNOTTY, "TIOCNOTTY"),
    (lx::TIOCGSID, "TIOCGSID"),
    (lx::FIONBIO, "FIONBIO"),
    (lx::FIOCLEX, "FIOCLEX"),
    (lx::FIONCLEX, "FIONCLEX"),
];

/// `arch_prctl` codes.
pub const ARCH_PRCTL_CODES: Names = &[
    (lx::ARCH_SET_GS, "ARCH_SET_GS"),
    (lx::ARCH_SET_FS, "ARCH_SET_FS"),
    (lx::ARCH_GET_FS, "ARCH_GET_FS"),
    (lx::ARCH_GET_GS, "ARCH_GET_GS"),
];

/// `prctl` options the personality knows.
pub const PRCTL_OPTIONS: Names = &[(lx::PR_SET_NAME, "PR_SET_NAME"), (lx::PR_GET_NAME, "PR_GET_NAME")];

/// `futex` operations: the command, then the private and clock bits.
pub const FUTEX_OPS: Flags = Flags {
    field: Some((
        lx::FUTEX_CMD_MASK,
        &[
            (lx::FUTEX_WAIT, "FUTEX_WAIT"),
            (lx::FUTEX_WAKE, "FUTEX_WAKE"),
            (lx::FUTEX_REQUEUE, "FUTEX_REQUEUE"),
            (lx::FUTEX_CMP_REQUEUE, "FUTEX_CMP_REQUEUE"),
            (lx::FUTEX_WAKE_OP, "FUTEX_WAKE_OP"),
            (lx::FUTEX_WAIT_BITSET, "FUTEX_WAIT_BITSET"),
            (lx::FUTEX_WAKE_BITSET, "FUTEX_WAKE_BITSET"),
        ],
    )),
    bits: &[(lx::FUTEX_PRIVATE_FLAG, "FUTEX_PRIVATE_FLAG"), (lx::FUTEX_CLOCK_REALTIME, "FUTEX_CLOCK_REALTIME")],
    mode: None,
    signal: 0,
};

/// Linux clocks.
pub const CLOCKS: Names = &[
    (lx::CLOCK_REALTIME, "CLOCK_REALTIME"),
    (lx::CLOCK_MONOTONIC, "CLOCK_MONOTONIC"),
    (lx::CLOCK_PROCESS_CPUTIME_ID, "CLOCK_PROCESS_CPUTIME_ID"),
    (lx::CLOCK_THREAD_CPUTIME_ID, "CLOCK_THREAD_CPUTIME_ID"),
    (lx::CLOCK_MONOTONIC_RAW, "CLOCK_MONOTONIC_RAW"),
    (lx::CLOCK_REALTIME_COARSE, "CLOCK_REALTIME_COARSE"),
    (lx::CLOCK_MONOTONIC_COARSE, "CLOCK_MONOTONIC_COARSE"),
    (lx::CLOCK_BOOTTIME, "CLOCK_BOOTTIME"),
];

/// `clock_nanosleep` flags.
pub const TIMER_FLAGS: Flags = Flags::bits(&[(lx::TIMER_ABSTIME, "TIMER_ABSTIME")]);

/// `getitimer` / `setitimer` timers.
pub const ITIMERS: Names = &[(0, "ITIMER_REAL"), (1, "ITIMER_VIRTUAL"), (2, "ITIMER_PROF")];

/// Resource limits.
pub const RLIMITS: Names = &[
    (0, "RLIMIT_CPU"),
    (1, "RLIMIT_FSIZE"),
    (2, "RLIMIT_DATA"),
    (3, "RLIMIT_STACK"),
    (4, "RLIMIT_CORE"),
    (5, "RLIMIT_RSS"),
    (6, "RLIMIT_NPROC"),
    (7, "RLIMIT_NOFILE"),
    (8, "RLIMIT_MEMLOCK"),
    (9, "RLIMIT_AS"),
    (10, "RLIMIT_LOCKS"),
    (11, "RLIMIT_SIGPENDING"),
    (12, "RLIMIT_MSGQUEUE"),
    (13, "RLIMIT_NICE"),
    (14, "RLIMIT_RTPRIO"),
    (15, "RLIMIT_RTTIME"),
];

/// `getrusage` who.
pub const RUSAGE_WHO: Names = &[(0, "RUSAGE_SELF"), (usize::MAX, "RUSAGE_CHILDREN"), (1, "RUSAGE_THREAD")];

/// `renameat2` flags.
pub const RENAME_FLAGS: Flags = Flags::bits(&[(1, "RENAME_NOREPLACE"), (2, "RENAME_EXCHANGE"), (4, "RENAME_WHITEOUT")]);

/// `getrandom` flags.
pub const GRND_FLAGS: Flags = Flags::bits(&[(1, "GRND_NONBLOCK"), (2, "GRND_RANDOM"), (4, "GRND_INSECURE")]);

/// `close_range` flags.
pub const CLOSE_RANGE_FLAGS: Flags = Flags::bits(&[(2, "CLOSE_RANGE_UNSHARE"), (4, "CLOSE_RANGE_CLOEXEC")]);

/// `madvise` advice.
pub const MADVICE: Names = &[
    (0, "MADV_NORMAL"),
    (1, "MADV_RANDOM"),
    (2, "MADV_SEQUENTIAL"),
    (3, "MADV_WILLNEED"),
    (4, "MADV_DONTNEED"),
    (8, "MADV_FREE"),
    (14, "MADV_HUGEPAGE"),
    (15, "MADV_NOHUGEPAGE"),
];

/// `flock` operations.
pub const FLOCK_OPS: Flags = Flags::bits(&[(1, "LOCK_SH"), (2, "LOCK_EX"), (4, "LOCK_NB"), (8, "LOCK_UN")]);

/// `sigaltstack` flags.
pub const SS_FLAGS: Flags =
    Flags::bits(&[(lx::SS_ONSTACK as usize, "SS_ONSTACK"), (lx::SS_DISABLE as usize, "SS_DISABLE")]);

/// `getpriority` / `setpriority` which.
pub const PRIO_WHICH: Names = &[(0, "PRIO_PROCESS"), (1, "PRIO_PGRP"), (2, "PRIO_USER")];
