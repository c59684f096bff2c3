//! Confined path resolution: a guest path turned into a canonical `file:` path inside a jail.
//!
//! Design: the resolver walks the path one component at a time *through the `file:` scheme*
//! (an `O_STAT | O_NOFOLLOW` open per component, and an `O_SYMLINK` read for each link), so it
//! works on any root scheme (tar image, host directory, overlay) without knowing its insides:
//! - the walk starts at the jail root, whose identity is checked by inode number every time
//!   (a root that was removed or replaced gives `ENOENT`, never another directory);
//! - `..` pops a component and never goes above the jail root;
//! - a symbolic link's target is spliced in front of the remaining components; an absolute
//!   target restarts at the jail root; more than [`MAX_SYMLINK_HOPS`] links give `ELOOP`;
//! - the result has no `.`, `..` or symbolic link (except a final link the call does not
//!   follow), so the scheme re-resolving it takes exactly the route that was checked. The
//!   kernel runs one call at a time, so nothing changes the tree in between.
//!
//! Relative paths are taken against the caller's working directory, which is itself re-walked
//! (it is stored as a global path; a working directory outside the jail counts as its root).

use std::collections::VecDeque;

use warden_abi::*;

use crate::scheme::{CallCtx, Scheme};
use crate::vfs::MAX_SYMLINK_HOPS;

/// A path's meaningful components (`.` dropped, `..` kept) and how it ends.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Split {
    pub comps: Vec<Option<Vec<u8>>>,
    /// The path ends in `/`, `/.` or `/..`: its object must be a directory.
    pub dir_tail: bool,
    /// The path ends in `.` or `..` (unlink and rmdir refuse those).
    pub dot_tail: bool,
}

/// Splits `path`; `None` components are `..`.
pub(crate) fn split(path: &[u8]) -> Result<Split, Errno> {
    if path.len() > crate::vfs::PATH_MAX {
        return Err(Errno(ENAMETOOLONG));
    }
    if path.contains(&0) {
        return Err(Errno(EINVAL));
    }
    let mut comps = Vec::new();
    let (mut dir_tail, mut dot_tail) = (false, false);
    for part in path.split(|&b| b == b'/') {
        (dir_tail, dot_tail) = (true, false);
        match part {
            b"" => {}
            b"." => dot_tail = true,
            b".." => {
                comps.push(None);
                dot_tail = true;
            }
            name => {
                if name.len() > crate::vfs::NAME_MAX {
                    return Err(Errno(ENAMETOOLONG));
                }
                comps.push(Some(name.to_vec()));
                dir_tail = false;
            }
        }
    }
    Ok(Split { comps, dir_tail, dot_tail })
}

/// `root` joined with `names` (`root` is `/` or `/a/b`).
pub(crate) fn join(root: &[u8], names: &[Vec<u8>]) -> Vec<u8> {
    let mut out = if root == b"/" { Vec::new() } else { root.to_vec() };
    for n in names {
        out.push(b'/');
        out.extend_from_slice(n);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

/// `path` relative to `root` (`/` for the root itself), if `path` is `root` or below it.
pub(crate) fn strip_root<'a>(root: &[u8], path: &'a [u8]) -> Option<&'a [u8]> {
    if root == b"/" {
        return Some(path);
    }
    let rest = path.strip_prefix(root)?;
    if rest.is_empty() {
        Some(b"/")
    } else if rest.first() == Some(&b'/') {
        Some(rest)
    } else {
        None
    }
}

/// `stat` of `path` without following a final symlink.
fn lstat(scheme: &mut dyn Scheme, ctx: &CallCtx, path: &[u8]) -> Result<Stat, Errno> {
    let file = scheme.open(path, O_STAT | O_NOFOLLOW, ctx)?;
    let stat = file.try_borrow().map_err(|_| Errno(EIO))?.stat();
    stat
}

/// The target of the symbolic link at `path`.
fn read_link(scheme: &mut dyn Scheme, ctx: &CallCtx, path: &[u8]) -> Result<Vec<u8>, Errno> {
    let file = scheme.open(path, O_SYMLINK | O_RDONLY, ctx)?;
    let mut out = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        let n = match file.try_borrow_mut().map_err(|_| Errno(EIO))?.read(&mut buf) {
            Ok(n) => n,
            Err(crate::scheme::IoError::Errno(e)) => return Err(e),
            Err(crate::scheme::IoError::WouldBlock(_)) => return Err(Errno(EIO)),
        };
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n.min(buf.len())]);
        if out.len() > crate::vfs::PATH_MAX {
            return Err(Errno(ENAMETOOLONG));
        }
    }
}

/// Checks that `root` still is the directory with inode `ino` (`ino == 0`: any directory).
pub(crate) fn check_root(scheme: &mut dyn Scheme, ctx: &CallCtx, root: &[u8], ino: u64) -> Result<(), Errno> {
    let stat = lstat(scheme, ctx, root).map_err(|_| Errno(ENOENT))?;
    if !stat.is_dir() || (ino != 0 && stat.st_ino != ino) {
        return Err(Errno(ENOENT));
    }
    Ok(())
}

/// Resolves `path` inside the jail rooted at `root` (inode `ino`), relative paths against
/// `cwd` (a global path; outside the root it counts as the root). Returns the global path
/// the scheme should act on. `follow_final`: a final symbolic link is followed (always for a
/// path ending in `/`, `.` or `..`).
pub(crate) fn confine(
    scheme: &mut dyn Scheme,
    ctx: &CallCtx,
    root: &[u8],
    ino: u64,
    cwd: &[u8],
    path: &[u8],
    follow_final: bool,
) -> Result<Vec<u8>, Errno> {
    if path.is_empty() {
        return Err(Errno(ENOENT));
    }
    let parsed = split(path)?;
    check_root(scheme, ctx, root, ino)?;
    let mut pending: VecDeque<Option<Vec<u8>>> = VecDeque::new();
    if path[0] != b'/' {
        let rel = strip_root(root, cwd).unwrap_or(b"/");
        pending.extend(split(rel)?.comps);
    }
    pending.extend(parsed.comps);
    let follow_final = follow_final || parsed.dir_tail;
    let mut names: Vec<Vec<u8>> = Vec::new();
    let mut hops = 0usize;
    while let Some(comp) = pending.pop_front() {
        let Some(name) = comp else {
            names.pop();
            continue;
        };
        let is_last = pending.is_empty();
        names.push(name);
        let here = join(root, &names);
        let stat = match lstat(scheme, ctx, &here) {
            Ok(stat) => stat,
            Err(Errno(ENOENT)) if is_last => break,
            Err(e) => return Err(e),
        };
        if stat.st_mode & MODE_TYPE == MODE_SYMLINK {
            if is_last && !follow_final {
                break;
            }
            hops += 1;
            if hops > MAX_SYMLINK_HOPS {
                return Err(Errno(ELOOP));
            }
            let target = read_link(scheme, ctx, &here)?;
            if target.is_empty() {
                return Err(Errno(ENOENT));
            }
            names.pop();
            if target[0] == b'/' {
                names.clear();
            }
            for c in split(&target)?.comps.into_iter().rev() {
                pending.push_front(c);
            }
        } else if !stat.is_dir() && !is_last {
            return Err(Errno(ENOTDIR));
        }
    }
    let mut out = join(root, &names);
    if parsed.dir_tail && out != b"/" {
        out.push(b'/');
    }
    Ok(out)
}
