//! Jails for the Linux personality: how a Linux path argument is confined (the
//! [`super`] module note says what the jail does with each call; the rows of
//! `warden_abi::linux_calls!` say which arguments are paths and how each is resolved).
//!
//! Design:
//! - Every path argument is resolved by [`super::resolve::confine`] inside the root (`..`
//!   stops there, symbolic links are followed inside it) and the call gets the global
//!   absolute path it leads to (an `ITEM_RESOLVED` item), so the personality — which makes
//!   paths absolute and hands them to `file:` — acts exactly on the checked route (the
//!   kernel runs one call at a time). A relative path of an `*at` call is taken against its
//!   directory descriptor only if that is a `file:` directory inside the root (`EPERM`
//!   otherwise: a descriptor from before the jail is a capability for its own data, not a
//!   base for names). Whether a final link is followed comes from the row (`lstat`,
//!   `AT_SYMLINK_NOFOLLOW`, `O_NOFOLLOW`, `O_CREAT|O_EXCL`, the removal calls...). Removal
//!   and creation calls refuse a path ending in `.` or `..` (otherwise `x/..` would name
//!   the parent).
//! - The paths the personality virtualises (`/dev/null`, `/dev/zero`, `/dev/[u]random`,
//!   `/dev/stdin|stdout|stderr`, `/dev/fd/N`, everything under `/proc` and
//!   `/sys/devices/system/cpu/`: `linux::procfs` shows a jailed process its jail only) keep
//!   working for the calls whose row marks them (`devices`: the open, stat and readlink
//!   family): they name no file of the tree. Every other call confines them like any path.
//! - `execve` is confined where the program is opened (`linux::proc` calls
//!   [`Kernel::linux_exec_abs`] for the program and for every `#!` interpreter), so the
//!   script path the interpreter gets stays the guest's spelling.

use warden_abi::table::PathArg;
use warden_abi::*;

use super::resolve::{self, strip_root};
use super::Jail;
use crate::linux::abi as lx;
use crate::process::normalize;
use crate::{Kernel, Pid};

/// True if the personality maps absolute path `abs` to a device, a descriptor or its own
/// program, not a file of the tree (the same test as `linux::fs`'s `target_of`).
fn is_device(abs: &[u8]) -> bool {
    match abs {
        b"/dev/null" | b"/dev/zero" | b"/dev/random" | b"/dev/urandom" | b"/dev/stdin" | b"/dev/stdout"
        | b"/dev/stderr" | b"/dev/tty" | b"/dev/pts/0" | b"/proc/self/exe" | b"/proc" => true,
        // The personality's own /proc (it shows only the jail's processes, relative paths).
        _ if abs.starts_with(b"/proc/") || abs.starts_with(b"/sys/devices/system/cpu/") => true,
        _ => [&b"/dev/fd/"[..], b"/proc/self/fd/"].iter().any(|prefix| {
            abs.strip_prefix(*prefix)
                .and_then(|n| std::str::from_utf8(n).ok())
                .is_some_and(|s| s.parse::<usize>().is_ok())
        }),
    }
}

impl Kernel {
    /// One path argument of a jailed Linux call, resolved inside the jail: the global
    /// absolute path the personality will act on.
    pub(super) fn linux_confine(
        &mut self,
        tid: Pid,
        jail: &Jail,
        a: &[usize; 6],
        spec: &PathArg,
        path: &[u8],
    ) -> Result<Vec<u8>, Errno> {
        if path.is_empty() {
            return if spec.empty_ok(a) { Ok(Vec::new()) } else { Err(Errno(ENOENT)) };
        }
        let dirfd = spec.dirfd.map(|i| a[i as usize]).filter(|&fd| fd as i32 as isize != lx::AT_FDCWD);
        // The base directory (global) of a relative path.
        let base = match dirfd {
            Some(fd) if path[0] != b'/' => {
                let desc = self.desc(tid, fd)?;
                let file = desc.file.try_borrow().map_err(|_| Errno(EIO))?;
                if !file.stat()?.is_dir() {
                    return Err(Errno(ENOTDIR));
                }
                let global = file.path().strip_prefix(b"file:").map(<[u8]>::to_vec).ok_or(Errno(ENOTDIR))?;
                if strip_root(&jail.root, &global).is_none() {
                    return Err(Errno(EPERM));
                }
                global
            }
            _ => self.jail_cwd(tid, jail)?,
        };
        if spec.devices {
            let inside = strip_root(&jail.root, &base).unwrap_or(b"/");
            let abs = normalize(inside, path);
            if is_device(&abs) {
                return Ok(abs);
            }
        }
        let parsed = resolve::split(path)?;
        if parsed.dot_tail {
            let dotdot = parsed.comps.last().is_some_and(Option::is_none);
            if let Some(errno) = spec.tail_errno(a, dotdot) {
                return Err(Errno(errno));
            }
        }
        let ctx = self.call_ctx(tid)?;
        let (root, ino) = (jail.root.clone(), jail.ino);
        let global = resolve::confine(self.file_scheme()?, &ctx, &root, ino, &base, path, spec.follows(a))?;
        Ok(normalize(b"/", &global))
    }

    /// The absolute global path `execve` opens for `path` (the program, or a `#!`
    /// interpreter), given the path the personality computed (`abs`, against the working
    /// directory): in a jail, `path` resolved inside it instead.
    pub(crate) fn linux_exec_abs(&mut self, tid: Pid, path: &[u8], abs: Vec<u8>) -> Result<Vec<u8>, Errno> {
        if !self.policy_active {
            return Ok(abs);
        }
        let pid = self.pid_of(tid)?;
        let Some(jail) = self.jail_of(pid) else { return Ok(abs) };
        self.linux_confine(tid, &jail, &[0; 6], &warden_abi::table::path(), path)
    }
}
