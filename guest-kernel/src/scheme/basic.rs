//! The simple device schemes: `null:`, `zero:` and `rand:`.
//!
//! Design: each scheme accepts any path and any flags and returns a fresh open file.
//! - `null:` reads end of file at once; writes are swallowed.
//! - `zero:` reads fill the buffer with zeros; writes are swallowed.
//! - `rand:` reads fill the buffer from one deterministic stream per scheme instance:
//!   xoshiro256** seeded through SplitMix64 from the seed given at construction. The stream
//!   is shared by every file opened on the scheme (like `/dev/urandom`) and does not depend
//!   on how reads are split (bytes left over from a 64-bit output are kept for the next
//!   read), so two schemes with the same seed and the same total reads give the same bytes.
//!   Writes are swallowed (they never perturb the stream: replay must stay exact).
//!
//! All three report `MODE_CHR | 0o666` from `fstat` and accept any seek (returning 0).

use std::cell::RefCell;
use std::rc::Rc;

use warden_abi::{Errno, Stat};

use super::{CallCtx, FileOps, FileRef, IoResult, Scheme};

/// xoshiro256** (Blackman and Vigna), seeded from one `u64` with SplitMix64.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rng {
    s: [u64; 4],
    /// Unused bytes of the last output, little-endian, and how many remain.
    spare: [u8; 8],
    spare_len: usize,
}

impl Rng {
    /// A generator whose whole stream is determined by `seed`.
    pub fn new(seed: u64) -> Rng {
        let mut x = seed;
        let mut splitmix = || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        let s = [splitmix(), splitmix(), splitmix(), splitmix()];
        Rng { s, spare: [0; 8], spare_len: 0 }
    }

    /// The next 64-bit output.
    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Fills `buf` with the next bytes of the stream.
    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut i = 0;
        while i < buf.len() {
            if self.spare_len == 0 {
                self.spare = self.next_u64().to_le_bytes();
                self.spare_len = 8;
            }
            let start = 8 - self.spare_len;
            let n = self.spare_len.min(buf.len() - i);
            buf[i..i + n].copy_from_slice(&self.spare[start..start + n]);
            self.spare_len -= n;
            i += n;
        }
    }
}

/// Which device an open file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Device {
    Null,
    Zero,
    Rand,
}

/// An open `null:`, `zero:` or `rand:` file.
struct DeviceFile {
    device: Device,
    rng: Option<Rc<RefCell<Rng>>>,
}

impl FileOps for DeviceFile {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        match (self.device, &self.rng) {
            (Device::Null, _) => Ok(0),
            (Device::Rand, Some(rng)) => {
                rng.borrow_mut().fill(buf);
                Ok(buf.len())
            }
            (Device::Zero, _) | (Device::Rand, None) => {
                buf.fill(0);
                Ok(buf.len())
            }
        }
    }

    fn write(&mut self, buf: &[u8]) -> IoResult<usize> {
        Ok(buf.len())
    }

    fn seek(&mut self, _offset: i64, _whence: usize) -> Result<u64, Errno> {
        Ok(0)
    }

    fn stat(&self) -> Result<Stat, Errno> {
        let ino = match self.device {
            Device::Null => super::device_ino::NULL,
            Device::Zero => super::device_ino::ZERO,
            Device::Rand => super::device_ino::RAND,
        };
        Ok(super::device_stat(ino, 0o666))
    }

    fn path(&self) -> Vec<u8> {
        match self.device {
            Device::Null => b"null:".to_vec(),
            Device::Zero => b"zero:".to_vec(),
            Device::Rand => b"rand:".to_vec(),
        }
    }
}

/// `null:`.
#[derive(Clone, Copy, Debug, Default)]
pub struct NullScheme;

/// `zero:`.
#[derive(Clone, Copy, Debug, Default)]
pub struct ZeroScheme;

/// `rand:`, a deterministic stream from a seed.
#[derive(Clone, Debug)]
pub struct RandScheme {
    rng: Rc<RefCell<Rng>>,
}

impl RandScheme {
    /// A scheme whose stream is determined by `seed`.
    pub fn new(seed: u64) -> RandScheme {
        RandScheme { rng: Rc::new(RefCell::new(Rng::new(seed))) }
    }

    /// Draws bytes from the same stream the scheme's files read (e.g. for `AT_RANDOM`).
    pub fn fill(&self, buf: &mut [u8]) {
        self.rng.borrow_mut().fill(buf);
    }
}

impl Scheme for NullScheme {
    fn open(&mut self, _path: &[u8], _flags: usize, _ctx: &CallCtx) -> Result<FileRef, Errno> {
        Ok(Rc::new(RefCell::new(DeviceFile { device: Device::Null, rng: None })))
    }
}

impl Scheme for ZeroScheme {
    fn open(&mut self, _path: &[u8], _flags: usize, _ctx: &CallCtx) -> Result<FileRef, Errno> {
        Ok(Rc::new(RefCell::new(DeviceFile { device: Device::Zero, rng: None })))
    }
}

impl Scheme for RandScheme {
    fn open(&mut self, _path: &[u8], _flags: usize, _ctx: &CallCtx) -> Result<FileRef, Errno> {
        Ok(Rc::new(RefCell::new(DeviceFile { device: Device::Rand, rng: Some(Rc::clone(&self.rng)) })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_abi::MODE_CHR;

    const CTX: CallCtx = CallCtx { pid: 1, uid: 0, gid: 0, umask: 0o022 };

    #[test]
    fn null_reads_eof_and_swallows_writes() {
        let f = NullScheme.open(b"", 0, &CTX).expect("open");
        let mut f = f.borrow_mut();
        let mut buf = [7u8; 16];
        assert_eq!(f.read(&mut buf), Ok(0));
        assert_eq!(buf, [7u8; 16]);
        assert_eq!(f.write(b"hello"), Ok(5));
        assert_eq!(f.path(), b"null:");
        assert_eq!(f.stat().map(|s| s.st_mode), Ok(MODE_CHR | 0o666));
        assert_eq!(f.seek(10, 0), Ok(0));
    }

    #[test]
    fn zero_reads_zeros() {
        let f = ZeroScheme.open(b"", 0, &CTX).expect("open");
        let mut f = f.borrow_mut();
        let mut buf = [7u8; 33];
        assert_eq!(f.read(&mut buf), Ok(33));
        assert_eq!(buf, [0u8; 33]);
        assert_eq!(f.write(b"x"), Ok(1));
        assert_eq!(f.path(), b"zero:");
    }

    #[test]
    fn xoshiro_reference_vector() {
        // xoshiro256** with state [1, 2, 3, 4]: first outputs from the reference code.
        let mut r = Rng { s: [1, 2, 3, 4], spare: [0; 8], spare_len: 0 };
        assert_eq!(r.next_u64(), 11520);
        assert_eq!(r.next_u64(), 0);
        assert_eq!(r.next_u64(), 1509978240);
        assert_eq!(r.next_u64(), 1215971899390074240);
    }

    #[test]
    fn rand_is_deterministic_and_split_independent() {
        let mut a = RandScheme::new(42);
        let mut b = RandScheme::new(42);
        let fa = a.open(b"", 0, &CTX).expect("open");
        let fb = b.open(b"", 0, &CTX).expect("open");
        let mut whole = [0u8; 100];
        assert_eq!(fa.borrow_mut().read(&mut whole), Ok(100));
        let mut parts = [0u8; 100];
        let mut at = 0;
        for n in [1, 3, 8, 13, 75] {
            assert_eq!(fb.borrow_mut().read(&mut parts[at..at + n]), Ok(n));
            at += n;
        }
        assert_eq!(whole, parts);
        assert_ne!(whole, [0u8; 100]);
        // Writes do not perturb the stream.
        let mut c = RandScheme::new(42);
        let fc = c.open(b"", 0, &CTX).expect("open");
        assert_eq!(fc.borrow_mut().write(b"entropy?"), Ok(8));
        let mut again = [0u8; 100];
        assert_eq!(fc.borrow_mut().read(&mut again), Ok(100));
        assert_eq!(whole, again);
        // Another seed, another stream; the stream is shared by the scheme's files.
        let mut d = RandScheme::new(43);
        let mut other = [0u8; 100];
        assert_eq!(d.open(b"", 0, &CTX).expect("open").borrow_mut().read(&mut other), Ok(100));
        assert_ne!(whole, other);
        let second = a.open(b"", 0, &CTX).expect("open");
        let mut next = [0u8; 8];
        assert_eq!(second.borrow_mut().read(&mut next), Ok(8));
        let expect = RandScheme::new(42);
        let mut first108 = [0u8; 108];
        expect.fill(&mut first108);
        assert_eq!(&first108[100..], &next);
        assert_eq!(fa.borrow().path(), b"rand:");
    }
}
