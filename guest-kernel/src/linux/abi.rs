//! Linux x86-64 numbers, flags and structure layouts (as the kernel's uapi
//! headers define them), with encoders that write them field by field.

#![allow(dead_code)]

use warden_abi::Stat;

pub use warden_abi::linux::{nr, RENAMEAT2};

/// Names of the Linux calls, by number (for traces).
pub fn name(number: usize) -> Option<&'static str> {
    warden_abi::linux::linux_syscall_name(number)
}

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
pub const AT_SYMLINK_FOLLOW: usize = 0x400;

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
pub const POLLERR: u16 = 8;
pub const POLLHUP: u16 = 0x10;
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
        if let Some(dst) = at.checked_add(bytes.len()).and_then(|end| self.0.get_mut(at..end)) {
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
    if let Some(src) = at.checked_add(8).and_then(|end| bytes.get(at..end)) {
        w.copy_from_slice(src);
    }
    u64::from_le_bytes(w)
}

/// Reads a little-endian u32 at `at` (0 past the end).
pub fn le32(bytes: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    if let Some(src) = at.checked_add(4).and_then(|end| bytes.get(at..end)) {
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

/// Nanoseconds from a `struct timeval` (`None` if negative or not normalised).
pub fn timeval_ns(bytes: &[u8]) -> Option<u64> {
    let (s, us) = (le64(bytes, 0) as i64, le64(bytes, 8) as i64);
    if s < 0 || !(0..1_000_000).contains(&us) {
        return None;
    }
    Some((s as u64).saturating_mul(1_000_000_000).saturating_add(us as u64 * 1000))
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
