//! Linux x86-64 numbers, flags and structure layouts (as the kernel's uapi
//! headers define them), with encoders that write them field by field.

#![allow(dead_code)]

use warden_abi::Stat;

/// System-call numbers (arch/x86/entry/syscalls/syscall_64.tbl).
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

/// Names of the Linux calls, by number (for traces).
pub fn name(number: usize) -> Option<&'static str> {
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

pub const RENAMEAT2: usize = 316;

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

pub const AT_FDCWD: isize = -100;
pub const AT_SYMLINK_NOFOLLOW: usize = 0x100;
pub const AT_REMOVEDIR: usize = 0x200;
pub const AT_EMPTY_PATH: usize = 0x1000;

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
pub const MREMAP_MAYMOVE: usize = 1;
pub const MREMAP_FIXED: usize = 2;

// clone.
pub const CSIGNAL: usize = 0xff;
pub const CLONE_VM: usize = 0x100;
pub const CLONE_FS: usize = 0x200;
pub const CLONE_FILES: usize = 0x400;
pub const CLONE_SIGHAND: usize = 0x800;
pub const CLONE_VFORK: usize = 0x4000;
pub const CLONE_PARENT: usize = 0x8000;
pub const CLONE_THREAD: usize = 0x10000;
pub const CLONE_SETTLS: usize = 0x8_0000;
pub const CLONE_PARENT_SETTID: usize = 0x10_0000;
pub const CLONE_CHILD_CLEARTID: usize = 0x20_0000;
pub const CLONE_CHILD_SETTID: usize = 0x100_0000;

// wait.
pub const WNOHANG: usize = 1;
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

// ioctl.
pub const TCGETS: usize = 0x5401;
pub const TIOCGWINSZ: usize = 0x5413;
pub const FIONBIO: usize = 0x5421;
pub const FIOCLEX: usize = 0x5451;
pub const FIONCLEX: usize = 0x5450;

// poll.
pub const POLLIN: u16 = 1;
pub const POLLPRI: u16 = 2;
pub const POLLOUT: u16 = 4;
pub const POLLNVAL: u16 = 0x20;
pub const POLLRDNORM: u16 = 0x40;
pub const POLLWRNORM: u16 = 0x100;

// signals.
pub const SS_ONSTACK: u32 = 1;
pub const SS_DISABLE: u32 = 2;
pub const MINSIGSTKSZ: u64 = 2048;

/// `d_type` values of `linux_dirent64`.
pub fn dirent_type(mode: u16) -> u8 {
    match mode & 0xf000 {
        0x1000 => 1,  // DT_FIFO
        0x2000 => 2,  // DT_CHR
        0x4000 => 4,  // DT_DIR
        0x6000 => 6,  // DT_BLK
        0x8000 => 8,  // DT_REG
        0xa000 => 10, // DT_LNK
        0xc000 => 12, // DT_SOCK
        _ => 0,
    }
}

/// A little-endian byte writer for fixed layouts.
pub struct Out(pub Vec<u8>);

impl Out {
    pub fn new(size: usize) -> Out {
        Out(vec![0; size])
    }
    pub fn put(&mut self, at: usize, bytes: &[u8]) {
        if let Some(dst) = self.0.get_mut(at..at + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
    }
    pub fn u16(&mut self, at: usize, v: u16) {
        self.put(at, &v.to_le_bytes());
    }
    pub fn u32(&mut self, at: usize, v: u32) {
        self.put(at, &v.to_le_bytes());
    }
    pub fn u64(&mut self, at: usize, v: u64) {
        self.put(at, &v.to_le_bytes());
    }
}

/// Reads a little-endian u64 at `at` (0 past the end).
pub fn le64(bytes: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    if let Some(src) = bytes.get(at..at + 8) {
        w.copy_from_slice(src);
    }
    u64::from_le_bytes(w)
}

/// Reads a little-endian u32 at `at` (0 past the end).
pub fn le32(bytes: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    if let Some(src) = bytes.get(at..at + 4) {
        w.copy_from_slice(src);
    }
    u32::from_le_bytes(w)
}

/// The kernel's `Stat` as Linux programs expect to see it: directories
/// made by the in-memory layer get the usual 4096-byte size of disk file
/// systems, symbolic links are always `rwxrwxrwx`.
pub fn linux_view(s: &Stat) -> Stat {
    let mut s = *s;
    match s.st_mode & 0xf000 {
        0x4000 if s.st_size < 4096 => {
            s.st_size = 4096;
            s.st_blocks = 8;
        }
        0xa000 => s.st_mode |= 0o777,
        _ => {}
    }
    s
}

/// `struct stat` (144 bytes).
pub fn stat_bytes(s: &Stat) -> Vec<u8> {
    let s = &linux_view(s);
    let mut o = Out::new(144);
    o.u64(0, s.st_dev);
    o.u64(8, s.st_ino);
    o.u64(16, s.st_nlink as u64);
    o.u32(24, s.st_mode as u32);
    o.u32(28, s.st_uid);
    o.u32(32, s.st_gid);
    o.u64(48, s.st_size);
    o.u64(56, if s.st_blksize == 0 { 4096 } else { s.st_blksize as u64 });
    o.u64(64, s.st_blocks);
    o.u64(72, s.st_atime);
    o.u64(80, s.st_atime_nsec as u64);
    o.u64(88, s.st_mtime);
    o.u64(96, s.st_mtime_nsec as u64);
    o.u64(104, s.st_ctime);
    o.u64(112, s.st_ctime_nsec as u64);
    o.0
}

/// `struct statx` (256 bytes), every basic field valid.
pub fn statx_bytes(s: &Stat) -> Vec<u8> {
    let s = &linux_view(s);
    let mut o = Out::new(256);
    o.u32(0, 0x7ff); // STATX_BASIC_STATS
    o.u32(4, if s.st_blksize == 0 { 4096 } else { s.st_blksize });
    o.u32(16, s.st_nlink);
    o.u32(20, s.st_uid);
    o.u32(24, s.st_gid);
    o.u16(28, s.st_mode);
    o.u64(32, s.st_ino);
    o.u64(40, s.st_size);
    o.u64(48, s.st_blocks);
    // atime, btime, ctime, mtime: {i64 sec, u32 nsec, i32 pad}.
    let mut ts = |at: usize, sec: u64, nsec: u32| {
        o.u64(at, sec);
        o.u32(at + 8, nsec);
    };
    ts(64, s.st_atime, s.st_atime_nsec);
    ts(80, s.st_ctime, s.st_ctime_nsec);
    ts(96, s.st_ctime, s.st_ctime_nsec);
    ts(112, s.st_mtime, s.st_mtime_nsec);
    // stx_dev_major/minor at 136/140: leave the device as minor.
    o.u32(140, s.st_dev as u32);
    o.0
}

/// `struct timespec` from nanoseconds.
pub fn timespec_bytes(ns: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&(ns / 1_000_000_000).to_le_bytes());
    out[8..].copy_from_slice(&(ns % 1_000_000_000).to_le_bytes());
    out
}

/// `struct timeval` from nanoseconds.
pub fn timeval_bytes(ns: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&(ns / 1_000_000_000).to_le_bytes());
    out[8..].copy_from_slice(&((ns % 1_000_000_000) / 1000).to_le_bytes());
    out
}

/// A `struct timespec` read from the guest, as nanoseconds (EINVAL if malformed).
pub fn timespec_ns(bytes: &[u8; 16]) -> Option<u64> {
    let sec = le64(bytes, 0) as i64;
    let nsec = le64(bytes, 8) as i64;
    if sec < 0 || !(0..1_000_000_000).contains(&nsec) {
        return None;
    }
    Some((sec as u64).saturating_mul(1_000_000_000).saturating_add(nsec as u64))
}

/// `struct new_utsname` (6 fields of 65 bytes).
pub fn utsname_bytes() -> Vec<u8> {
    let mut o = Out::new(6 * 65);
    let fields: [&[u8]; 6] = [b"Linux", b"warden", b"6.1.0-warden", b"#1 SMP warden", b"x86_64", b"(none)"];
    for (i, f) in fields.iter().enumerate() {
        o.put(i * 65, f);
    }
    o.0
}
