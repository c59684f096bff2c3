//! `#[repr(C)]` structures passed through system calls: [`Stat`], [`TimeSpec`], [`Map`] and
//! [`SigAction`].
//!
//! Design: every field is an integer, and conversion to and from bytes is done field by
//! field at the field's `offset_of!` in native (little-endian) order. That needs no `unsafe`,
//! writes padding as zeros (never leaking uninitialised bytes into guest memory) and accepts
//! any byte pattern. `SIZE` is the `size_of` of the struct, which is what the kernel checks
//! the length argument against.

use core::mem::{offset_of, size_of};

/// Implements `SIZE`, `to_bytes`, `write_to` and `from_bytes` for a struct whose fields are
/// integers or arrays of integers.
macro_rules! byte_struct {
    ($name:ident { $($field:ident),* $(,)? }) => {
        impl $name {
            /// Size in bytes of the structure as passed through a system call.
            pub const SIZE: usize = size_of::<$name>();

            /// The structure as bytes (padding zeroed).
            pub fn to_bytes(&self) -> [u8; Self::SIZE] {
                let mut out = [0u8; Self::SIZE];
                $(
                    let mut at = offset_of!($name, $field);
                    for part in ByteField::parts(&self.$field) {
                        out[at..at + part.len()].copy_from_slice(part.as_slice());
                        at += part.len();
                    }
                )*
                out
            }

            /// Writes the structure into the start of `buf`; returns `None` if `buf` is shorter
            /// than [`Self::SIZE`].
            pub fn write_to(&self, buf: &mut [u8]) -> Option<usize> {
                let dst = buf.get_mut(..Self::SIZE)?;
                dst.copy_from_slice(&self.to_bytes());
                Some(Self::SIZE)
            }

            /// Reads the structure from the start of `bytes`; `None` if `bytes` is shorter than
            /// [`Self::SIZE`].
            pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
                let bytes = bytes.get(..Self::SIZE)?;
                let mut value = Self::default();
                $(
                    let at = offset_of!($name, $field);
                    ByteField::load(&mut value.$field, &bytes[at..]);
                )*
                Some(value)
            }
        }
    };
}

/// Little helper trait: an integer field or an array of them, as native-endian bytes.
pub(crate) trait ByteField {
    /// The bytes of each integer in order.
    fn parts(&self) -> impl Iterator<Item = Part>;
    /// Loads the field from the start of `bytes` (which is long enough).
    fn load(&mut self, bytes: &[u8]);
}

/// The native-endian bytes of one integer (at most 8).
pub(crate) struct Part {
    bytes: [u8; 8],
    len: usize,
}

impl Part {
    pub(crate) fn len(&self) -> usize {
        self.len
    }
    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

macro_rules! int_field {
    ($($ty:ty),*) => {$(
        impl ByteField for $ty {
            fn parts(&self) -> impl Iterator<Item = Part> {
                let raw = self.to_ne_bytes();
                let mut bytes = [0u8; 8];
                bytes[..raw.len()].copy_from_slice(&raw);
                core::iter::once(Part { bytes, len: raw.len() })
            }
            fn load(&mut self, bytes: &[u8]) {
                let mut raw = [0u8; size_of::<$ty>()];
                raw.copy_from_slice(&bytes[..size_of::<$ty>()]);
                *self = <$ty>::from_ne_bytes(raw);
            }
        }
    )*};
}
int_field!(u16, u32, u64, i32, i64, usize);

impl<T: ByteField, const N: usize> ByteField for [T; N] {
    fn parts(&self) -> impl Iterator<Item = Part> {
        self.iter().flat_map(|item| item.parts())
    }
    fn load(&mut self, bytes: &[u8]) {
        let step = size_of::<T>();
        for (i, item) in self.iter_mut().enumerate() {
            item.load(&bytes[i * step..]);
        }
    }
}

/// File status, filled in by `fstat(fd, &mut stat, Stat::SIZE)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Stat {
    /// Device (scheme) id.
    pub st_dev: u64,
    /// Inode number.
    pub st_ino: u64,
    /// Type (`MODE_*`) and permission bits.
    pub st_mode: u16,
    /// Number of hard links.
    pub st_nlink: u32,
    /// Owner.
    pub st_uid: u32,
    /// Group.
    pub st_gid: u32,
    /// Size in bytes.
    pub st_size: u64,
    /// Preferred I/O block size.
    pub st_blksize: u32,
    /// Number of 512-byte blocks.
    pub st_blocks: u64,
    /// Modification time, seconds.
    pub st_mtime: u64,
    /// Modification time, nanoseconds.
    pub st_mtime_nsec: u32,
    /// Access time, seconds.
    pub st_atime: u64,
    /// Access time, nanoseconds.
    pub st_atime_nsec: u32,
    /// Status-change time, seconds.
    pub st_ctime: u64,
    /// Status-change time, nanoseconds.
    pub st_ctime_nsec: u32,
}
byte_struct!(Stat {
    st_dev,
    st_ino,
    st_mode,
    st_nlink,
    st_uid,
    st_gid,
    st_size,
    st_blksize,
    st_blocks,
    st_mtime,
    st_mtime_nsec,
    st_atime,
    st_atime_nsec,
    st_ctime,
    st_ctime_nsec,
});

impl Stat {
    /// True for a directory.
    pub fn is_dir(&self) -> bool {
        self.st_mode & crate::MODE_TYPE == crate::MODE_DIR
    }
    /// True for a regular file.
    pub fn is_file(&self) -> bool {
        self.st_mode & crate::MODE_TYPE == crate::MODE_FILE
    }
}

/// A point in time or a duration (`nanosleep`, `clock_gettime`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
#[repr(C)]
pub struct TimeSpec {
    /// Seconds.
    pub tv_sec: i64,
    /// Nanoseconds, `0..1_000_000_000`.
    pub tv_nsec: i32,
}
byte_struct!(TimeSpec { tv_sec, tv_nsec });

/// A memory-map request for `fmap(fd, &map, Map::SIZE)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Map {
    /// Offset in the file (ignored for anonymous maps).
    pub offset: usize,
    /// Length in bytes (rounded up to whole pages).
    pub size: usize,
    /// `PROT_*` | `MAP_*` flags.
    pub flags: usize,
    /// Requested address; 0 lets the kernel choose (unless `MAP_FIXED`).
    pub address: usize,
}
byte_struct!(Map { offset, size, flags, address });

/// A signal disposition for `sigaction`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct SigAction {
    /// Handler address, or `SIG_DFL` / `SIG_IGN`.
    pub sa_handler: usize,
    /// Signals blocked while the handler runs (bit `n - 1` is signal `n`).
    pub sa_mask: [u64; 2],
    /// `SA_*` flags.
    pub sa_flags: usize,
}
byte_struct!(SigAction { sa_handler, sa_mask, sa_flags });
