//! The Linux x86-64 system-call numbers of the kernel's Linux personality, its flag values
//! ([`flag`], as the kernel's uapi headers define them) and their names for traces
//! ([`crate::names`]), and how calls of that personality are told apart: a Linux call's `number`
//! (in the kernel's `Call`, supervision packets and traces) is [`LINUX_CALL`]` | nr`.

/// Set in the number of every Linux call; the Linux number is below it.
pub const LINUX_CALL: usize = 1 << 40;

/// The name of a call as supervision packets and traces number it (Redox or Linux).
pub fn any_syscall_name(number: usize) -> Option<&'static str> {
    if number & LINUX_CALL != 0 { linux_syscall_name(number & !LINUX_CALL) } else { crate::syscall_name(number) }
}

/// Linux flag and value constants (`include/uapi`, x86-64).
#[allow(missing_docs)]
pub mod flag {

    // open(2) flags.
    pub const O_ACCMODE: usize = 3;
    pub const O_WRONLY: usize = 1;
    pub const O_RDWR: usize = 2;
    pub const O_CREAT: usize = 0o100;
    pub const O_EXCL: usize = 0o200;
    pub const O_NOCTTY: usize = 0o400;
    pub const O_TRUNC: usize = 0o1000;
    pub const O_APPEND: usize = 0o2000;
    pub const O_NONBLOCK: usize = 0o4000;
    pub const O_DIRECTORY: usize = 0o200000;
    pub const O_NOFOLLOW: usize = 0o400000;
    pub const O_CLOEXEC: usize = 0o2000000;
    pub const O_PATH: usize = 0o10000000;
    pub const O_LARGEFILE: usize = 0o100000;
    pub const O_DSYNC: usize = 0o10000;
    pub const O_DIRECT: usize = 0o40000;
    pub const O_NOATIME: usize = 0o1000000;

    pub const AT_FDCWD: isize = -100;
    pub const AT_SYMLINK_NOFOLLOW: usize = 0x100;
    pub const AT_REMOVEDIR: usize = 0x200;
    pub const AT_EMPTY_PATH: usize = 0x1000;
    pub const AT_SYMLINK_FOLLOW: usize = 0x400;
    pub const AT_EACCESS: usize = 0x200;

    // access(2) modes.
    pub const X_OK: usize = 1;
    pub const W_OK: usize = 2;
    pub const R_OK: usize = 4;

    // fcntl.
    pub const F_DUPFD: usize = 0;
    pub const F_GETFD: usize = 1;
    pub const F_SETFD: usize = 2;
    pub const F_GETFL: usize = 3;
    pub const F_SETFL: usize = 4;
    pub const F_GETLK: usize = 5;
    pub const F_SETLK: usize = 6;
    pub const F_SETLKW: usize = 7;
    pub const F_DUPFD_CLOEXEC: usize = 1030;

    // mmap.
    pub const PROT_READ: usize = 1;
    pub const PROT_WRITE: usize = 2;
    pub const PROT_EXEC: usize = 4;
    pub const MAP_SHARED: usize = 1;
    pub const MAP_PRIVATE: usize = 2;
    pub const MAP_FIXED: usize = 0x10;
    pub const MAP_ANONYMOUS: usize = 0x20;
    pub const MAP_FIXED_NOREPLACE: usize = 0x10_0000;
    pub const MAP_GROWSDOWN: usize = 0x100;
    pub const MAP_DENYWRITE: usize = 0x800;
    pub const MAP_NORESERVE: usize = 0x4000;
    pub const MAP_POPULATE: usize = 0x8000;
    pub const MAP_STACK: usize = 0x2_0000;
    pub const MREMAP_MAYMOVE: usize = 1;
    pub const MREMAP_FIXED: usize = 2;
    pub const MADV_DONTNEED: usize = 4;

    // clone.
    pub const CSIGNAL: usize = 0xff;
    pub const CLONE_VM: usize = 0x100;
    pub const CLONE_FS: usize = 0x200;
    pub const CLONE_FILES: usize = 0x400;
    pub const CLONE_SIGHAND: usize = 0x800;
    pub const CLONE_VFORK: usize = 0x4000;
    pub const CLONE_PARENT: usize = 0x8000;
    pub const CLONE_SYSVSEM: usize = 0x4_0000;
    pub const CLONE_THREAD: usize = 0x10000;
    pub const CLONE_SETTLS: usize = 0x8_0000;
    pub const CLONE_PARENT_SETTID: usize = 0x10_0000;
    pub const CLONE_CHILD_CLEARTID: usize = 0x20_0000;
    pub const CLONE_CHILD_SETTID: usize = 0x100_0000;

    // wait.
    pub const WNOHANG: usize = 1;
    pub const WUNTRACED: usize = 2;
    pub const WCONTINUED: usize = 8;
    pub const WALL: usize = 0x4000_0000;
    pub const P_ALL: usize = 0;
    pub const P_PID: usize = 1;
    pub const P_PGID: usize = 2;
    pub const WEXITED: usize = 4;
    pub const WNOWAIT: usize = 0x0100_0000;

    // futex.
    pub const FUTEX_WAIT: usize = 0;
    pub const FUTEX_WAKE: usize = 1;
    pub const FUTEX_REQUEUE: usize = 3;
    pub const FUTEX_CMP_REQUEUE: usize = 4;
    pub const FUTEX_WAKE_OP: usize = 5;
    pub const FUTEX_WAIT_BITSET: usize = 9;
    pub const FUTEX_WAKE_BITSET: usize = 10;
    pub const FUTEX_CMD_MASK: usize = 0x7f;
    pub const FUTEX_PRIVATE_FLAG: usize = 128;
    pub const FUTEX_CLOCK_REALTIME: usize = 256;

    // clocks.
    pub const CLOCK_REALTIME: usize = 0;
    pub const CLOCK_MONOTONIC: usize = 1;
    pub const CLOCK_PROCESS_CPUTIME_ID: usize = 2;
    pub const CLOCK_THREAD_CPUTIME_ID: usize = 3;
    pub const CLOCK_MONOTONIC_RAW: usize = 4;
    pub const CLOCK_REALTIME_COARSE: usize = 5;
    pub const CLOCK_MONOTONIC_COARSE: usize = 6;
    pub const CLOCK_BOOTTIME: usize = 7;
    pub const TIMER_ABSTIME: usize = 1;

    // arch_prctl.
    pub const ARCH_SET_GS: usize = 0x1001;
    pub const ARCH_SET_FS: usize = 0x1002;
    pub const ARCH_GET_FS: usize = 0x1003;
    pub const ARCH_GET_GS: usize = 0x1004;

    // prctl.
    pub const PR_SET_NAME: usize = 15;
    pub const PR_GET_NAME: usize = 16;

    // ioctl.
    pub const TCGETS: usize = 0x5401;
    pub const TCSETS: usize = 0x5402;
    pub const TCSETSW: usize = 0x5403;
    pub const TCSETSF: usize = 0x5404;
    pub const TCSBRK: usize = 0x5409;
    pub const TCXONC: usize = 0x540a;
    pub const TCFLSH: usize = 0x540b;
    pub const TIOCSCTTY: usize = 0x540e;
    pub const TIOCGPGRP: usize = 0x540f;
    pub const TIOCSPGRP: usize = 0x5410;
    pub const TIOCGWINSZ: usize = 0x5413;
    pub const TIOCSWINSZ: usize = 0x5414;
    pub const FIONREAD: usize = 0x541b;
    pub const TIOCNOTTY: usize = 0x5422;
    pub const TIOCGSID: usize = 0x5429;
    /// The size of the kernel's `struct termios` (`TCGETS`, `TCSETS*`).
    pub const TERMIOS_SIZE: usize = 36;
    /// The size of `struct winsize`.
    pub const WINSIZE_SIZE: usize = 8;
    /// `c_lflag`'s TOSTOP: background writes to the terminal raise SIGTTOU.
    pub const TOSTOP: u32 = 0o400;
    pub const FIONBIO: usize = 0x5421;
    pub const FIOCLEX: usize = 0x5451;
    pub const FIONCLEX: usize = 0x5450;

    // poll.
    pub const POLLIN: u16 = 1;
    pub const POLLPRI: u16 = 2;
    pub const POLLOUT: u16 = 4;
    pub const POLLERR: u16 = 8;
    pub const POLLHUP: u16 = 0x10;
    pub const POLLNVAL: u16 = 0x20;
    pub const POLLRDNORM: u16 = 0x40;
    pub const POLLWRNORM: u16 = 0x100;

    // signals.
    pub const SS_ONSTACK: u32 = 1;
    pub const SS_DISABLE: u32 = 2;
    pub const MINSIGSTKSZ: u64 = 2048;
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
    pub const CONNECT: usize = 42;
    pub const ACCEPT: usize = 43;
    pub const SENDTO: usize = 44;
    pub const RECVFROM: usize = 45;
    pub const SENDMSG: usize = 46;
    pub const RECVMSG: usize = 47;
    pub const SHUTDOWN: usize = 48;
    pub const BIND: usize = 49;
    pub const LISTEN: usize = 50;
    pub const GETSOCKNAME: usize = 51;
    pub const GETPEERNAME: usize = 52;
    pub const SOCKETPAIR: usize = 53;
    pub const SETSOCKOPT: usize = 54;
    pub const GETSOCKOPT: usize = 55;
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
    pub const GETXATTR: usize = 191;
    pub const LGETXATTR: usize = 192;
    pub const FGETXATTR: usize = 193;
    pub const LISTXATTR: usize = 194;
    pub const LLISTXATTR: usize = 195;
    pub const FLISTXATTR: usize = 196;
    pub const TKILL: usize = 200;
    pub const EPOLL_CREATE: usize = 213;
    pub const EPOLL_WAIT: usize = 232;
    pub const EPOLL_CTL: usize = 233;
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
    pub const EPOLL_PWAIT: usize = 281;
    pub const EVENTFD: usize = 284;
    pub const ACCEPT4: usize = 288;
    pub const EVENTFD2: usize = 290;
    pub const EPOLL_CREATE1: usize = 291;
    pub const DUP3: usize = 292;
    pub const PIPE2: usize = 293;
    pub const PREADV: usize = 295;
    pub const PWRITEV: usize = 296;
    pub const PRLIMIT64: usize = 302;
    pub const GETRANDOM: usize = 318;
    pub const MEMFD_CREATE: usize = 319;
    pub const SPLICE: usize = 275;
    pub const TEE: usize = 276;
    pub const SIGNALFD: usize = 282;
    pub const TIMERFD_CREATE: usize = 283;
    pub const TIMERFD_SETTIME: usize = 286;
    pub const TIMERFD_GETTIME: usize = 287;
    pub const SIGNALFD4: usize = 289;
    pub const RT_SIGTIMEDWAIT: usize = 128;
    pub const RT_SIGQUEUEINFO: usize = 129;
    pub const RT_TGSIGQUEUEINFO: usize = 297;
    pub const INOTIFY_INIT: usize = 253;
    pub const INOTIFY_ADD_WATCH: usize = 254;
    pub const INOTIFY_RM_WATCH: usize = 255;
    pub const INOTIFY_INIT1: usize = 294;
    pub const MKNOD: usize = 133;
    pub const MKNODAT: usize = 259;
    pub const COPY_FILE_RANGE: usize = 326;
    pub const RENAMEAT2: usize = 316;
    pub const STATX: usize = 332;
    pub const RSEQ: usize = 334;
    pub const CLONE3: usize = 435;
    pub const CLOSE_RANGE: usize = 436;
    pub const FACCESSAT2: usize = 439;
}

/// Every x86-64 Linux system-call name by number (`""` for numbers without a call), as in
/// `arch/x86/entry/syscalls/syscall_64.tbl`: traces name every call, implemented or not.
pub const LINUX_NAMES: [&str; 451] = [
    "read",
    "write",
    "open",
    "close",
    "stat",
    "fstat",
    "lstat",
    "poll",
    "lseek",
    "mmap",
    "mprotect",
    "munmap",
    "brk",
    "rt_sigaction",
    "rt_sigprocmask",
    "rt_sigreturn",
    "ioctl",
    "pread64",
    "pwrite64",
    "readv",
    "writev",
    "access",
    "pipe",
    "select",
    "sched_yield",
    "mremap",
    "msync",
    "mincore",
    "madvise",
    "shmget",
    "shmat",
    "shmctl",
    "dup",
    "dup2",
    "pause",
    "nanosleep",
    "getitimer",
    "alarm",
    "setitimer",
    "getpid",
    "sendfile",
    "socket",
    "connect",
    "accept",
    "sendto",
    "recvfrom",
    "sendmsg",
    "recvmsg",
    "shutdown",
    "bind",
    "listen",
    "getsockname",
    "getpeername",
    "socketpair",
    "setsockopt",
    "getsockopt",
    "clone",
    "fork",
    "vfork",
    "execve",
    "exit",
    "wait4",
    "kill",
    "uname",
    "semget",
    "semop",
    "semctl",
    "shmdt",
    "msgget",
    "msgsnd",
    "msgrcv",
    "msgctl",
    "fcntl",
    "flock",
    "fsync",
    "fdatasync",
    "truncate",
    "ftruncate",
    "getdents",
    "getcwd",
    "chdir",
    "fchdir",
    "rename",
    "mkdir",
    "rmdir",
    "creat",
    "link",
    "unlink",
    "symlink",
    "readlink",
    "chmod",
    "fchmod",
    "chown",
    "fchown",
    "lchown",
    "umask",
    "gettimeofday",
    "getrlimit",
    "getrusage",
    "sysinfo",
    "times",
    "ptrace",
    "getuid",
    "syslog",
    "getgid",
    "setuid",
    "setgid",
    "geteuid",
    "getegid",
    "setpgid",
    "getppid",
    "getpgrp",
    "setsid",
    "setreuid",
    "setregid",
    "getgroups",
    "setgroups",
    "setresuid",
    "getresuid",
    "setresgid",
    "getresgid",
    "getpgid",
    "setfsuid",
    "setfsgid",
    "getsid",
    "capget",
    "capset",
    "rt_sigpending",
    "rt_sigtimedwait",
    "rt_sigqueueinfo",
    "rt_sigsuspend",
    "sigaltstack",
    "utime",
    "mknod",
    "uselib",
    "personality",
    "ustat",
    "statfs",
    "fstatfs",
    "sysfs",
    "getpriority",
    "setpriority",
    "sched_setparam",
    "sched_getparam",
    "sched_setscheduler",
    "sched_getscheduler",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_rr_get_interval",
    "mlock",
    "munlock",
    "mlockall",
    "munlockall",
    "vhangup",
    "modify_ldt",
    "pivot_root",
    "_sysctl",
    "prctl",
    "arch_prctl",
    "adjtimex",
    "setrlimit",
    "chroot",
    "sync",
    "acct",
    "settimeofday",
    "mount",
    "umount2",
    "swapon",
    "swapoff",
    "reboot",
    "sethostname",
    "setdomainname",
    "iopl",
    "ioperm",
    "create_module",
    "init_module",
    "delete_module",
    "get_kernel_syms",
    "query_module",
    "quotactl",
    "nfsservctl",
    "getpmsg",
    "putpmsg",
    "afs_syscall",
    "tuxcall",
    "security",
    "gettid",
    "readahead",
    "setxattr",
    "lsetxattr",
    "fsetxattr",
    "getxattr",
    "lgetxattr",
    "fgetxattr",
    "listxattr",
    "llistxattr",
    "flistxattr",
    "removexattr",
    "lremovexattr",
    "fremovexattr",
    "tkill",
    "time",
    "futex",
    "sched_setaffinity",
    "sched_getaffinity",
    "set_thread_area",
    "io_setup",
    "io_destroy",
    "io_getevents",
    "io_submit",
    "io_cancel",
    "get_thread_area",
    "lookup_dcookie",
    "epoll_create",
    "epoll_ctl_old",
    "epoll_wait_old",
    "remap_file_pages",
    "getdents64",
    "set_tid_address",
    "restart_syscall",
    "semtimedop",
    "fadvise64",
    "timer_create",
    "timer_settime",
    "timer_gettime",
    "timer_getoverrun",
    "timer_delete",
    "clock_settime",
    "clock_gettime",
    "clock_getres",
    "clock_nanosleep",
    "exit_group",
    "epoll_wait",
    "epoll_ctl",
    "tgkill",
    "utimes",
    "vserver",
    "mbind",
    "set_mempolicy",
    "get_mempolicy",
    "mq_open",
    "mq_unlink",
    "mq_timedsend",
    "mq_timedreceive",
    "mq_notify",
    "mq_getsetattr",
    "kexec_load",
    "waitid",
    "add_key",
    "request_key",
    "keyctl",
    "ioprio_set",
    "ioprio_get",
    "inotify_init",
    "inotify_add_watch",
    "inotify_rm_watch",
    "migrate_pages",
    "openat",
    "mkdirat",
    "mknodat",
    "fchownat",
    "futimesat",
    "newfstatat",
    "unlinkat",
    "renameat",
    "linkat",
    "symlinkat",
    "readlinkat",
    "fchmodat",
    "faccessat",
    "pselect6",
    "ppoll",
    "unshare",
    "set_robust_list",
    "get_robust_list",
    "splice",
    "tee",
    "sync_file_range",
    "vmsplice",
    "move_pages",
    "utimensat",
    "epoll_pwait",
    "signalfd",
    "timerfd_create",
    "eventfd",
    "fallocate",
    "timerfd_settime",
    "timerfd_gettime",
    "accept4",
    "signalfd4",
    "eventfd2",
    "epoll_create1",
    "dup3",
    "pipe2",
    "inotify_init1",
    "preadv",
    "pwritev",
    "rt_tgsigqueueinfo",
    "perf_event_open",
    "recvmmsg",
    "fanotify_init",
    "fanotify_mark",
    "prlimit64",
    "name_to_handle_at",
    "open_by_handle_at",
    "clock_adjtime",
    "syncfs",
    "sendmmsg",
    "setns",
    "getcpu",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "finit_module",
    "sched_setattr",
    "sched_getattr",
    "renameat2",
    "seccomp",
    "getrandom",
    "memfd_create",
    "kexec_file_load",
    "bpf",
    "execveat",
    "userfaultfd",
    "membarrier",
    "mlock2",
    "copy_file_range",
    "preadv2",
    "pwritev2",
    "pkey_mprotect",
    "pkey_alloc",
    "pkey_free",
    "statx",
    "io_pgetevents",
    "rseq",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "pidfd_send_signal",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "open_tree",
    "move_mount",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "pidfd_open",
    "clone3",
    "close_range",
    "openat2",
    "pidfd_getfd",
    "faccessat2",
    "process_madvise",
    "epoll_pwait2",
    "mount_setattr",
    "quotactl_fd",
    "landlock_create_ruleset",
    "landlock_add_rule",
    "landlock_restrict_self",
    "memfd_secret",
    "process_mrelease",
    "futex_waitv",
    "set_mempolicy_home_node",
];

/// The name of Linux call `number`.
pub fn linux_syscall_name(number: usize) -> Option<&'static str> {
    LINUX_NAMES.get(number).copied().filter(|n| !n.is_empty())
}
