//! The Linux x86-64 system-call numbers of the kernel's Linux personality, and how calls
//! of that personality are told apart: a Linux call's `number` (in the kernel's `Call`,
//! supervision packets and traces) is [`LINUX_CALL`]` | nr`.

/// Set in the number of every Linux call; the Linux number is below it.
pub const LINUX_CALL: usize = 1 << 40;

/// The name of a call as supervision packets and traces number it (Redox or Linux).
pub fn any_syscall_name(number: usize) -> Option<&'static str> {
    if number & LINUX_CALL != 0 { linux_syscall_name(number & !LINUX_CALL) } else { crate::syscall_name(number) }
}

/// How many arguments Linux call `nr` takes (for traces; 3 when unknown).
pub fn linux_arg_count(nr: usize) -> usize {
    use nr::*;
    match nr {
        GETPID | GETTID | GETPPID | GETUID | GETGID | GETEUID | GETEGID | FORK | VFORK | SCHED_YIELD | GETPGRP
        | SETSID | PAUSE | SYNC | RT_SIGRETURN => 0,
        CLOSE | EXIT | EXIT_GROUP | BRK | DUP | UNAME | CHDIR | FCHDIR | UNLINK | RMDIR | UMASK | PIPE | ALARM
        | SET_TID_ADDRESS | TIME | SYSINFO | TIMES | FSYNC | FDATASYNC | GETPGID | GETSID | SETUID | SETGID => 1,
        STAT | FSTAT | LSTAT | MUNMAP | ACCESS | DUP2 | KILL | GETCWD | NANOSLEEP | ARCH_PRCTL | MKDIR | RENAME
        | SYMLINK | LINK | PIPE2 | GETRLIMIT | SETRLIMIT | GETRUSAGE | GETTIMEOFDAY | CLOCK_GETTIME | CLOCK_GETRES
        | FTRUNCATE | TRUNCATE | CHMOD | FCHMOD | SETPGID | SET_ROBUST_LIST | SIGALTSTACK | RT_SIGSUSPEND | TKILL
        | CREAT | FLOCK | RT_SIGPENDING => 2,
        OPENAT | NEWFSTATAT | RT_SIGACTION | RT_SIGPROCMASK | WAIT4 | PREAD64 | PWRITE64 | RENAMEAT | UTIMENSAT
        | PRLIMIT64 | CLOCK_NANOSLEEP | FACCESSAT2 | READLINKAT | SENDFILE | PPOLL | WAITID => 4,
        CLONE | STATX | MREMAP | SELECT | RENAMEAT2 | LINKAT => 5,
        MMAP | FUTEX | PSELECT6 => 6,
        _ => 3,
    }
}

/// System-call numbers (arch/x86/entry/syscalls/syscall_64.tbl).
#[allow(missing_docs)]
pub mod nr {
    pub const READ: usize = 0;
    pub const WRITE: usize = 1;
    pub const OPEN: usize = 2;
    pub const CLOSE: usize = 3;
    pub const STAT: usize = 4;
    pub const FSTAT: usize = 5;
    pub const LSTAT: usize = 6;
    pub const POLL: usize = 7;
    pub const LSEEK: usize = 8;
    pub const MMAP: usize = 9;
    pub const MPROTECT: usize = 10;
    pub const MUNMAP: usize = 11;
    pub const BRK: usize = 12;
    pub const RT_SIGACTION: usize = 13;
    pub const RT_SIGPROCMASK: usize = 14;
    pub const RT_SIGRETURN: usize = 15;
    pub const IOCTL: usize = 16;
    pub const PREAD64: usize = 17;
    pub const PWRITE64: usize = 18;
    pub const READV: usize = 19;
    pub const WRITEV: usize = 20;
    pub const ACCESS: usize = 21;
    pub const PIPE: usize = 22;
    pub const SELECT: usize = 23;
    pub const SCHED_YIELD: usize = 24;
    pub const MREMAP: usize = 25;
    pub const MSYNC: usize = 26;
    pub const MINCORE: usize = 27;
    pub const MADVISE: usize = 28;
    pub const DUP: usize = 32;
    pub const DUP2: usize = 33;
    pub const PAUSE: usize = 34;
    pub const NANOSLEEP: usize = 35;
    pub const GETITIMER: usize = 36;
    pub const ALARM: usize = 37;
    pub const SETITIMER: usize = 38;
    pub const GETPID: usize = 39;
    pub const SENDFILE: usize = 40;
    pub const SOCKET: usize = 41;
    pub const CLONE: usize = 56;
    pub const FORK: usize = 57;
    pub const VFORK: usize = 58;
    pub const EXECVE: usize = 59;
    pub const EXIT: usize = 60;
    pub const WAIT4: usize = 61;
    pub const KILL: usize = 62;
    pub const UNAME: usize = 63;
    pub const FCNTL: usize = 72;
    pub const FLOCK: usize = 73;
    pub const FSYNC: usize = 74;
    pub const FDATASYNC: usize = 75;
    pub const TRUNCATE: usize = 76;
    pub const FTRUNCATE: usize = 77;
    pub const GETDENTS: usize = 78;
    pub const GETCWD: usize = 79;
    pub const CHDIR: usize = 80;
    pub const FCHDIR: usize = 81;
    pub const RENAME: usize = 82;
    pub const MKDIR: usize = 83;
    pub const RMDIR: usize = 84;
    pub const CREAT: usize = 85;
    pub const LINK: usize = 86;
    pub const UNLINK: usize = 87;
    pub const SYMLINK: usize = 88;
    pub const READLINK: usize = 89;
    pub const CHMOD: usize = 90;
    pub const FCHMOD: usize = 91;
    pub const CHOWN: usize = 92;
    pub const FCHOWN: usize = 93;
    pub const LCHOWN: usize = 94;
    pub const UMASK: usize = 95;
    pub const GETTIMEOFDAY: usize = 96;
    pub const GETRLIMIT: usize = 97;
    pub const GETRUSAGE: usize = 98;
    pub const SYSINFO: usize = 99;
    pub const TIMES: usize = 100;
    pub const GETUID: usize = 102;
    pub const GETGID: usize = 104;
    pub const SETUID: usize = 105;
    pub const SETGID: usize = 106;
    pub const GETEUID: usize = 107;
    pub const GETEGID: usize = 108;
    pub const SETPGID: usize = 109;
    pub const GETPPID: usize = 110;
    pub const GETPGRP: usize = 111;
    pub const SETSID: usize = 112;
    pub const SETREUID: usize = 113;
    pub const SETREGID: usize = 114;
    pub const GETGROUPS: usize = 115;
    pub const SETGROUPS: usize = 116;
    pub const SETRESUID: usize = 117;
    pub const GETRESUID: usize = 118;
    pub const SETRESGID: usize = 119;
    pub const GETRESGID: usize = 120;
    pub const GETPGID: usize = 121;
    pub const GETSID: usize = 124;
    pub const RT_SIGPENDING: usize = 127;
    pub const RT_SIGSUSPEND: usize = 130;
    pub const SIGALTSTACK: usize = 131;
    pub const UTIME: usize = 132;
    pub const STATFS: usize = 137;
    pub const FSTATFS: usize = 138;
    pub const GETPRIORITY: usize = 140;
    pub const SETPRIORITY: usize = 141;
    pub const PRCTL: usize = 157;
    pub const ARCH_PRCTL: usize = 158;
    pub const SETRLIMIT: usize = 160;
    pub const SYNC: usize = 162;
    pub const GETTID: usize = 186;
    pub const TKILL: usize = 200;
    pub const TIME: usize = 201;
    pub const FUTEX: usize = 202;
    pub const SCHED_SETAFFINITY: usize = 203;
    pub const SCHED_GETAFFINITY: usize = 204;
    pub const GETDENTS64: usize = 217;
    pub const SET_TID_ADDRESS: usize = 218;
    pub const FADVISE64: usize = 221;
    pub const CLOCK_GETTIME: usize = 228;
    pub const CLOCK_GETRES: usize = 229;
    pub const CLOCK_NANOSLEEP: usize = 230;
    pub const EXIT_GROUP: usize = 231;
    pub const TGKILL: usize = 234;
    pub const UTIMES: usize = 235;
    pub const WAITID: usize = 247;
    pub const OPENAT: usize = 257;
    pub const MKDIRAT: usize = 258;
    pub const FCHOWNAT: usize = 260;
    pub const NEWFSTATAT: usize = 262;
    pub const UNLINKAT: usize = 263;
    pub const RENAMEAT: usize = 264;
    pub const LINKAT: usize = 265;
    pub const SYMLINKAT: usize = 266;
    pub const READLINKAT: usize = 267;
    pub const FCHMODAT: usize = 268;
    pub const FACCESSAT: usize = 269;
    pub const PSELECT6: usize = 270;
    pub const PPOLL: usize = 271;
    pub const SET_ROBUST_LIST: usize = 273;
    pub const GET_ROBUST_LIST: usize = 274;
    pub const UTIMENSAT: usize = 280;
    pub const FALLOCATE: usize = 285;
    pub const DUP3: usize = 292;
    pub const PIPE2: usize = 293;
    pub const PREADV: usize = 295;
    pub const PWRITEV: usize = 296;
    pub const PRLIMIT64: usize = 302;
    pub const GETRANDOM: usize = 318;
    pub const MEMFD_CREATE: usize = 319;
    pub const COPY_FILE_RANGE: usize = 326;
    pub const STATX: usize = 332;
    pub const RSEQ: usize = 334;
    pub const CLONE3: usize = 435;
    pub const CLOSE_RANGE: usize = 436;
    pub const FACCESSAT2: usize = 439;
}

/// The name of Linux call `number`.
pub fn linux_syscall_name(number: usize) -> Option<&'static str> {
    use nr::*;
    Some(match number {
        READ => "read",
        WRITE => "write",
        OPEN => "open",
        CLOSE => "close",
        STAT => "stat",
        FSTAT => "fstat",
        LSTAT => "lstat",
        POLL => "poll",
        LSEEK => "lseek",
        MMAP => "mmap",
        MPROTECT => "mprotect",
        MUNMAP => "munmap",
        BRK => "brk",
        RT_SIGACTION => "rt_sigaction",
        RT_SIGPROCMASK => "rt_sigprocmask",
        RT_SIGRETURN => "rt_sigreturn",
        IOCTL => "ioctl",
        PREAD64 => "pread64",
        PWRITE64 => "pwrite64",
        READV => "readv",
        WRITEV => "writev",
        ACCESS => "access",
        PIPE => "pipe",
        SELECT => "select",
        SCHED_YIELD => "sched_yield",
        MREMAP => "mremap",
        MSYNC => "msync",
        MINCORE => "mincore",
        MADVISE => "madvise",
        DUP => "dup",
        DUP2 => "dup2",
        PAUSE => "pause",
        NANOSLEEP => "nanosleep",
        GETITIMER => "getitimer",
        ALARM => "alarm",
        SETITIMER => "setitimer",
        GETPID => "getpid",
        SENDFILE => "sendfile",
        SOCKET => "socket",
        CLONE => "clone",
        FORK => "fork",
        VFORK => "vfork",
        EXECVE => "execve",
        EXIT => "exit",
        WAIT4 => "wait4",
        KILL => "kill",
        UNAME => "uname",
        FCNTL => "fcntl",
        FLOCK => "flock",
        FSYNC => "fsync",
        FDATASYNC => "fdatasync",
        TRUNCATE => "truncate",
        FTRUNCATE => "ftruncate",
        GETDENTS => "getdents",
        GETCWD => "getcwd",
        CHDIR => "chdir",
        FCHDIR => "fchdir",
        RENAME => "rename",
        MKDIR => "mkdir",
        RMDIR => "rmdir",
        CREAT => "creat",
        LINK => "link",
        UNLINK => "unlink",
        SYMLINK => "symlink",
        READLINK => "readlink",
        CHMOD => "chmod",
        FCHMOD => "fchmod",
        CHOWN => "chown",
        FCHOWN => "fchown",
        LCHOWN => "lchown",
        UMASK => "umask",
        GETTIMEOFDAY => "gettimeofday",
        GETRLIMIT => "getrlimit",
        GETRUSAGE => "getrusage",
        SYSINFO => "sysinfo",
        TIMES => "times",
        GETUID => "getuid",
        GETGID => "getgid",
        SETUID => "setuid",
        SETGID => "setgid",
        GETEUID => "geteuid",
        GETEGID => "getegid",
        SETPGID => "setpgid",
        GETPPID => "getppid",
        GETPGRP => "getpgrp",
        SETSID => "setsid",
        SETREUID => "setreuid",
        SETREGID => "setregid",
        GETGROUPS => "getgroups",
        SETGROUPS => "setgroups",
        SETRESUID => "setresuid",
        GETRESUID => "getresuid",
        SETRESGID => "setresgid",
        GETRESGID => "getresgid",
        GETPGID => "getpgid",
        GETSID => "getsid",
        RT_SIGPENDING => "rt_sigpending",
        RT_SIGSUSPEND => "rt_sigsuspend",
        SIGALTSTACK => "sigaltstack",
        UTIME => "utime",
        STATFS => "statfs",
        FSTATFS => "fstatfs",
        GETPRIORITY => "getpriority",
        SETPRIORITY => "setpriority",
        PRCTL => "prctl",
        ARCH_PRCTL => "arch_prctl",
        SETRLIMIT => "setrlimit",
        SYNC => "sync",
        GETTID => "gettid",
        TKILL => "tkill",
        TIME => "time",
        FUTEX => "futex",
        SCHED_SETAFFINITY => "sched_setaffinity",
        SCHED_GETAFFINITY => "sched_getaffinity",
        GETDENTS64 => "getdents64",
        SET_TID_ADDRESS => "set_tid_address",
        FADVISE64 => "fadvise64",
        CLOCK_GETTIME => "clock_gettime",
        CLOCK_GETRES => "clock_getres",
        CLOCK_NANOSLEEP => "clock_nanosleep",
        EXIT_GROUP => "exit_group",
        TGKILL => "tgkill",
        UTIMES => "utimes",
        WAITID => "waitid",
        OPENAT => "openat",
        MKDIRAT => "mkdirat",
        FCHOWNAT => "fchownat",
        NEWFSTATAT => "newfstatat",
        UNLINKAT => "unlinkat",
        RENAMEAT => "renameat",
        LINKAT => "linkat",
        SYMLINKAT => "symlinkat",
        READLINKAT => "readlinkat",
        FCHMODAT => "fchmodat",
        FACCESSAT => "faccessat",
        PSELECT6 => "pselect6",
        PPOLL => "ppoll",
        SET_ROBUST_LIST => "set_robust_list",
        GET_ROBUST_LIST => "get_robust_list",
        UTIMENSAT => "utimensat",
        FALLOCATE => "fallocate",
        DUP3 => "dup3",
        PIPE2 => "pipe2",
        PREADV => "preadv",
        PWRITEV => "pwritev",
        PRLIMIT64 => "prlimit64",
        GETRANDOM => "getrandom",
        MEMFD_CREATE => "memfd_create",
        COPY_FILE_RANGE => "copy_file_range",
        STATX => "statx",
        RSEQ => "rseq",
        CLONE3 => "clone3",
        CLOSE_RANGE => "close_range",
        FACCESSAT2 => "faccessat2",
        316 => "renameat2",
        _ => return None,
    })
}

/// renameat2.
pub const RENAMEAT2: usize = 316;
