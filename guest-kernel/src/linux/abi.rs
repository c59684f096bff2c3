//! Linux x86-64 numbers, flags and structure layouts (as the kernel's uapi
//! headers define them), with encoders that write them field by field.

#![allow(dead_code)]

use warden_abi::Stat;

pub use warden_abi::linux::flag::*;
pub use warden_abi::linux::nr;

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

/// The kernel's `Stat` as Linux programs expect to see it, sized as on ext4 (see "Sizes"
/// in the module note of `linux`): a directory takes whole 4 KiB blocks for its listing
/// (at least one), a file whole 4 KiB blocks for its bytes, a symbolic link none when its
/// target is short (a "fast" link, under 60 bytes) and one otherwise; symbolic links are
/// always `rwxrwxrwx`.
pub fn linux_view(s: &Stat) -> Stat {
    let mut s = *s;
    match s.st_mode & 0xf000 {
        0x4000 => {
            s.st_size = s.st_size.max(1).div_ceil(4096) * 4096;
            s.st_blocks = s.st_size / 512;
        }
        0xa000 => {
            s.st_mode |= 0o777;
            s.st_blocks = if s.st_size < 60 { 0 } else { 8 };
        }
        // A file takes whole 4 KiB blocks, as on the usual Linux file systems (`ls -l`'s
        // "total", `du`).
        0x8000 => s.st_blocks = s.st_blocks.max(s.st_size.div_ceil(4096) * 8),
        _ => {}
    }
    s
}

/// The Linux device number (major, minor) of a kernel character device, as Linux numbers
/// /dev/null (1:3), /dev/zero (1:5), /dev/urandom (1:9) and a terminal (136:0, pts/0);
/// (0, 0) for anything else. diffutils' `cmp` tells /dev/null from the console by it.
pub fn rdev(s: &Stat) -> (u32, u32) {
    use crate::scheme::device_ino as ino;
    if s.st_dev != crate::scheme::DEVICES_DEV {
        return (0, 0);
    }
    match s.st_ino {
        ino::NULL => (1, 3),
        ino::ZERO => (1, 5),
        ino::RAND => (1, 9),
        _ => (136, 0),
    }
}

/// A `dev_t` as glibc's `makedev` encodes it.
fn makedev((major, minor): (u32, u32)) -> u64 {
    let (major, minor) = (major as u64, minor as u64);
    (minor & 0xff) | (major & 0xfff) << 8 | (minor & !0xff) << 12 | (major & !0xfff) << 32
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
    o.u64(40, makedev(rdev(s)));
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
    let (major, minor) = rdev(s);
    o.u32(128, major);
    o.u32(132, minor);
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
pub fn timespec_ns(bytes: &[u8]) -> Option<u64> {
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
