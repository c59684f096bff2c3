//! Guest path parsing.
//!
//! Design: a guest path is a byte string (not NUL-terminated, not necessarily UTF-8). The
//! caller has already joined relative paths onto the cwd, so every path is taken as absolute
//! (a missing leading `/` is tolerated). Parsing only splits and checks lengths; `.` is dropped
//! and `..` is kept as [`Comp::Parent`] so that the resolver can apply it *after* following
//! symbolic links (physical semantics, as on Unix). Nothing here touches the tree or the host.

use warden_abi::{Errno, EINVAL, ENAMETOOLONG};

/// Longest accepted path, in bytes (Linux `PATH_MAX`).
pub const PATH_MAX: usize = 4096;
/// Longest accepted file name, in bytes (Linux `NAME_MAX`).
pub const NAME_MAX: usize = 255;

/// One meaningful path component.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Comp {
    /// A file name (never empty, `.` or `..`, never contains `/` or NUL).
    Name(Vec<u8>),
    /// `..`.
    Parent,
}

/// How the path ends; the resolver and `unlink`/`rmdir` care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tail {
    /// Ends in a file name.
    Name,
    /// Ends in `/` (the final object must be a directory).
    Slash,
    /// Ends in `/.` or is `.`.
    Dot,
    /// Ends in `/..` or is `..`.
    DotDot,
}

/// A parsed guest path.
#[derive(Clone, Debug)]
pub(crate) struct Parsed {
    pub comps: Vec<Comp>,
    pub tail: Tail,
}

impl Parsed {
    /// True if the final object must be a directory (trailing `/`, `.` or `..`).
    pub fn must_be_dir(&self) -> bool {
        self.tail != Tail::Name
    }
}

/// Splits `path`; `ENAMETOOLONG` for an over-long path or component, `EINVAL` for a NUL byte.
pub(crate) fn parse(path: &[u8]) -> Result<Parsed, Errno> {
    if path.len() > PATH_MAX {
        return Err(Errno(ENAMETOOLONG));
    }
    if path.contains(&0) {
        return Err(Errno(EINVAL));
    }
    let mut comps = Vec::new();
    let mut tail = Tail::Slash;
    for part in path.split(|&b| b == b'/') {
        match part {
            b"" => tail = Tail::Slash,
            b"." => tail = Tail::Dot,
            b".." => {
                comps.push(Comp::Parent);
                tail = Tail::DotDot;
            }
            name => {
                if name.len() > NAME_MAX {
                    return Err(Errno(ENAMETOOLONG));
                }
                comps.push(Comp::Name(name.to_vec()));
                tail = Tail::Name;
            }
        }
    }
    Ok(Parsed { comps, tail })
}

/// `file:` followed by the absolute path made of `names`.
pub(crate) fn display(names: &[Vec<u8>]) -> Vec<u8> {
    let mut out = b"file:".to_vec();
    if names.is_empty() {
        out.push(b'/');
    }
    for name in names {
        out.push(b'/');
        out.extend_from_slice(name);
    }
    out
}
