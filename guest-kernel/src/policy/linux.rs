//! Jails for the Linux personality: the calls of `warden_abi::class::LINUX_CALLS` checked
//! and rewritten the way [`super`] treats the Redox ones.
//!
//! Design:
//! - P and F calls run unchanged. A Linux call missing from the table never reaches a
//!   jailed (or masked) process: it is `ENOSYS` ([`Kernel::police`] answers it), as the
//!   personality answers calls it does not implement.
//! - C calls: every path argument is resolved by [`super::resolve::confine`] inside the root
//!   (`..` stops there, symbolic links are followed inside it) and replaced in the call's
//!   `LinuxInput` by the global absolute path it leads to, so the personality — which makes
//!   paths absolute and hands them to `file:` — acts exactly on the checked route (the
//!   kernel runs one call at a time). A relative path of an `*at` call is taken against its
//!   directory descriptor only if that is a `file:` directory inside the root (`EPERM`
//!   otherwise: a descriptor from before the jail is a capability for its own data, not a
//!   base for names). Whether a final link is followed comes from the call (`lstat`,
//!   `AT_SYMLINK_NOFOLLOW`, `O_NOFOLLOW`, `O_CREAT|O_EXCL`, the removal calls...). Removal
//!   and creation calls refuse a path ending in `.` or `..` (otherwise `x/..` would name
//!   the parent).
//! - The device paths the personality virtualises (`/dev/null`, `/dev/zero`,
//!   `/dev/[u]random`, `/dev/stdin|stdout|stderr`, `/dev/fd/N`, `/proc/self/fd/N`) keep
//!   working for the open and stat family: they name no file of the tree. Every other call
//!   confines them like any path.
//! - `execve` is confined where the program is opened (`linux::proc` calls
//!   [`Kernel::linux_exec_abs`] for the program and for every `#!` interpreter), so the
//!   script path the interpreter gets stays the guest's spelling.
//! - Virtualised: `getcwd` reports the directory relative to the root, `readlink` of
//!   `/proc/self/exe` the program relative to the root (`ENOENT` if it lies outside).
//! - J calls: `kill` (and `kill(-1)`), `tkill`, `tgkill`, `getpgid`, `setpgid`, `prlimit64`
//!   reach only processes in the jail (`ESRCH`); `fchdir` only directories inside the root
//!   (`EACCES`); the set-id and `setpriority` calls run (they have no effect).

use std::rc::Rc;

use warden_abi::*;

use super::resolve::{self, strip_root};
use super::{Jail, Verdict};
use crate::linux::abi::{self as lx, nr};
use crate::linux::LinuxInput;
use crate::process::normalize;
use crate::syscall::{Call, Input};
use crate::usercopy::copy_out;
use crate::{Kernel, Pid};

/// `linkat`'s flag: follow a final symbolic link of the old path.
const AT_SYMLINK_FOLLOW: usize = 0x400;

/// How a path argument is resolved.
#[derive(Clone, Copy)]
struct PathArg {
    /// Argument index of the directory descriptor (`None`: the working directory).
    dirfd: Option<usize>,
    /// A final symbolic link is followed.
    follow: bool,
    /// The call removes or creates the final name (a `.`/`..` tail is refused with this).
    tail_errno: Option<i32>,
    /// The personality's virtual device paths stay as they are.
    devices: bool,
    /// An empty path means the descriptor itself (`AT_EMPTY_PATH`).
    empty_ok: bool,
}

const fn arg(dirfd: Option<usize>, follow: bool) -> PathArg {
    PathArg { dirfd, follow, tail_errno: None, devices: false, empty_ok: false }
}

impl PathArg {
    const fn devices(mut self) -> PathArg {
        self.devices = true;
        self
    }
    const fn tail(mut self, errno: i32) -> PathArg {
        self.tail_errno = Some(errno);
        self
    }
    const fn empty(mut self, ok: bool) -> PathArg {
        self.empty_ok = ok;
        self
    }
}

/// The path arguments of C call `nr` with arguments `a`: (first, second).
fn path_args(nr: usize, a: &[usize; 6]) -> Option<(PathArg, Option<PathArg>)> {
    let nofollow = |flags: usize| flags & lx::AT_SYMLINK_NOFOLLOW == 0;
    let open_follow =
        |flags: usize| flags & lx::O_NOFOLLOW == 0 && flags & (lx::O_CREAT | lx::O_EXCL) != lx::O_CREAT | lx::O_EXCL;
    let empty = |flags: usize| flags & lx::AT_EMPTY_PATH != 0;
    let at = Some(0);
    Some(match nr {
        nr::OPEN => (arg(None, open_follow(a[1])).devices(), None),
        nr::OPENAT => (arg(at, open_follow(a[2])).devices(), None),
        nr::CREAT => (arg(None, true).devices(), None),
        nr::STAT | nr::ACCESS => (arg(None, true).devices(), None),
        nr::LSTAT => (arg(None, false).devices(), None),
        nr::NEWFSTATAT => (arg(at, nofollow(a[3])).devices().empty(empty(a[3])), None),
        nr::STATX => (arg(at, nofollow(a[2])).devices().empty(empty(a[2])), None),
        nr::FACCESSAT => (arg(at, true).devices(), None),
        nr::FACCESSAT2 => (arg(at, nofollow(a[3])).devices().empty(empty(a[3])), None),
        nr::CHDIR | nr::TRUNCATE | nr::CHMOD | nr::CHOWN | nr::UTIME | nr::UTIMES => (arg(None, true), None),
        nr::LCHOWN | nr::READLINK => (arg(None, false), None),
        nr::READLINKAT => (arg(at, false), None),
        nr::FCHMODAT => (arg(at, nofollow(a[3])), None),
        nr::FCHOWNAT => (arg(at, nofollow(a[4])).empty(empty(a[4])), None),
        nr::UTIMENSAT => (arg(at, nofollow(a[3])), None),
        nr::MKDIR => (arg(None, false).tail(EEXIST), None),
        nr::MKDIRAT => (arg(at, false).tail(EEXIST), None),
        nr::RMDIR => (arg(None, false).tail(ENOTEMPTY), None),
        nr::UNLINK => (arg(None, false).tail(EISDIR), None),
        nr::UNLINKAT => {
            let errno = if a[2] & lx::AT_REMOVEDIR != 0 { ENOTEMPTY } else { EISDIR };
            (arg(at, false).tail(errno), None)
        }
        nr::RENAME => (arg(None, false).tail(EBUSY), Some(arg(None, false).tail(EBUSY))),
        nr::RENAMEAT | lx::RENAMEAT2 => (arg(at, false).tail(EBUSY), Some(arg(Some(2), false).tail(EBUSY))),
        nr::LINK => (arg(None, false), Some(arg(None, false).tail(EEXIST))),
        nr::LINKAT => {
            (arg(at, a[4] & AT_SYMLINK_FOLLOW != 0).empty(empty(a[4])), Some(arg(Some(2), false).tail(EEXIST)))
        }
        // The target of a symbolic link is text, not a path to resolve now.
        nr::SYMLINK => (arg(None, false).tail(EEXIST), None),
        nr::SYMLINKAT => (arg(Some(1), false).tail(EEXIST), None),
        _ => return None,
    })
}

/// True if the personality maps absolute path `abs` to a device or descriptor, not a file
/// (the same test as `linux::fs`'s `target_of`).
fn is_device(abs: &[u8]) -> bool {
    match abs {
        b"/dev/null" | b"/dev/zero" | b"/dev/random" | b"/dev/urandom" | b"/dev/stdin" | b"/dev/stdout"
        | b"/dev/stderr" => true,
        _ => [&b"/dev/fd/"[..], b"/proc/self/fd/"].iter().any(|prefix| {
            abs.strip_prefix(*prefix)
                .and_then(|n| std::str::from_utf8(n).ok())
                .is_some_and(|s| s.parse::<usize>().is_ok())
        }),
    }
}

impl Kernel {
    /// The jail's verdict on a Linux call (`call.number` is `LINUX_CALL | nr`).
    pub(super) fn jail_linux(&mut self, tid: Pid, jail: &Rc<Jail>, mut call: Call) -> Result<Verdict, Errno> {
        let Some(info) = call_info(call.number) else {
            return Err(Errno(ENOSYS));
        };
        let nr = call.number & !crate::linux::LINUX_CALL;
        let a = call.args;
        match info.class {
            JailClass::P | JailClass::F => Ok(Verdict::Run(call)),
            JailClass::C => match nr {
                // Confined where the program (and each interpreter) is opened.
                nr::EXECVE => Ok(Verdict::Run(call)),
                nr::GETCWD => {
                    let mut cwd = self.jailed_cwd(tid, jail)?;
                    cwd.push(0);
                    if a[1] < cwd.len() {
                        return Err(Errno(ERANGE));
                    }
                    copy_out(&mut self.mm_of(tid)?.borrow_mut().space.mem, a[0], &cwd)?;
                    Ok(Verdict::Done(Ok(cwd.len())))
                }
                _ => {
                    if matches!(nr, nr::READLINK | nr::READLINKAT) {
                        if let Some(done) = self.jailed_exe_link(tid, jail, &call)? {
                            return Ok(Verdict::Done(Ok(done)));
                        }
                    }
                    let Some((first, second)) = path_args(nr, &a) else {
                        return Err(Errno(EPERM));
                    };
                    let Input::Linux(input) = &mut call.input else {
                        return Ok(Verdict::Run(call));
                    };
                    match input {
                        LinuxInput::Path(p) => *p = self.linux_confine(tid, jail, &a, first, p)?,
                        LinuxInput::Paths(p, q) if matches!(nr, nr::SYMLINK | nr::SYMLINKAT) => {
                            *q = self.linux_confine(tid, jail, &a, first, q)?;
                            let _ = p;
                        }
                        LinuxInput::Paths(p, q) => {
                            *p = self.linux_confine(tid, jail, &a, first, p)?;
                            let second = second.ok_or(Errno(EPERM))?;
                            *q = self.linux_confine(tid, jail, &a, second, q)?;
                        }
                        // `utimensat` with a null path acts on the descriptor.
                        LinuxInput::None if nr == nr::UTIMENSAT => {}
                        _ => return Err(Errno(EFAULT)),
                    }
                    Ok(Verdict::Run(call))
                }
            },
            JailClass::J => self.jail_linux_caught(tid, jail, call, nr),
        }
    }

    /// The J calls of the Linux table.
    fn jail_linux_caught(&mut self, tid: Pid, jail: &Rc<Jail>, call: Call, nr: usize) -> Result<Verdict, Errno> {
        let a = call.args;
        let others = |k: &Kernel, pid: usize| pid != 0 && !k.in_jail(jail, pid as Pid);
        match nr {
            nr::FCHDIR => {
                let desc = self.desc(tid, a[0])?;
                let path = desc.file.try_borrow().map_err(|_| Errno(EIO))?.path();
                let inside = path.strip_prefix(b"file:").is_some_and(|g| strip_root(&jail.root, g).is_some());
                if !inside {
                    return Err(Errno(EACCES));
                }
            }
            nr::KILL => {
                let pid = a[0] as i32 as isize;
                if pid == -1 {
                    let sig = if a[1] >= NSIG && a[1] < 65 { 0 } else { a[1] };
                    return Ok(Verdict::Done(self.jailed_kill_all(tid, jail, sig)));
                }
                if others(self, pid.unsigned_abs()) {
                    return Err(Errno(ESRCH));
                }
            }
            nr::TKILL | nr::TGKILL => {
                let target = if nr == nr::TKILL { a[0] } else { a[1] } as i32;
                let pid = self.threads.get(&(target as Pid)).map(|t| t.pid);
                if target <= 0 || !pid.is_some_and(|p| self.in_jail(jail, p)) {
                    return Err(Errno(ESRCH));
                }
            }
            nr::GETPGID | nr::PRLIMIT64 => {
                if others(self, a[0]) {
                    return Err(Errno(ESRCH));
                }
            }
            nr::SETPGID => {
                if others(self, a[0]) {
                    return Err(Errno(ESRCH));
                }
                if others(self, a[1]) {
                    return Err(Errno(EPERM));
                }
            }
            nr::SETPRIORITY
            | nr::SETUID
            | nr::SETGID
            | nr::SETREUID
            | nr::SETREGID
            | nr::SETRESUID
            | nr::SETRESGID
            | nr::SETGROUPS => {}
            _ => return Err(Errno(EPERM)),
        }
        Ok(Verdict::Run(call))
    }

    /// One path argument of a jailed Linux call, resolved inside the jail: the global
    /// absolute path the personality will act on.
    fn linux_confine(
        &mut self,
        tid: Pid,
        jail: &Jail,
        a: &[usize; 6],
        spec: PathArg,
        path: &[u8],
    ) -> Result<Vec<u8>, Errno> {
        if path.is_empty() {
            return if spec.empty_ok { Ok(Vec::new()) } else { Err(Errno(ENOENT)) };
        }
        let dirfd = spec.dirfd.map(|i| a[i]).filter(|&fd| fd as i32 as isize != lx::AT_FDCWD);
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
        if let Some(errno) = spec.tail_errno {
            if resolve::split(path)?.dot_tail {
                return Err(Errno(errno));
            }
        }
        let ctx = self.call_ctx(tid)?;
        let (root, ino) = (jail.root.clone(), jail.ino);
        let global = resolve::confine(self.file_scheme()?, &ctx, &root, ino, &base, path, spec.follow)?;
        Ok(normalize(b"/", &global))
    }

    /// `readlink("/proc/self/exe")` in a jail: the program relative to the root. `None` for
    /// any other path.
    fn jailed_exe_link(&mut self, tid: Pid, jail: &Jail, call: &Call) -> Result<Option<usize>, Errno> {
        let Input::Linux(LinuxInput::Path(path)) = &call.input else { return Ok(None) };
        let (addr, size) = if call.number & !crate::linux::LINUX_CALL == nr::READLINK {
            (call.args[1], call.args[2])
        } else {
            (call.args[2], call.args[3])
        };
        let cwd = {
            let fs = self.proc_of(tid)?.fs.clone();
            let fs = fs.borrow();
            fs.cwd.clone()
        };
        let inside = strip_root(&jail.root, &cwd).unwrap_or(b"/");
        if normalize(inside, path) != b"/proc/self/exe" {
            return Ok(None);
        }
        if size as isize <= 0 {
            return Err(Errno(EINVAL));
        }
        let pid = self.pid_of(tid)?;
        let exe = self.linux.procs.get(&pid).map(|p| p.exe.clone()).unwrap_or_default();
        let shown = strip_root(&jail.root, &exe).ok_or(Errno(ENOENT))?.to_vec();
        let n = shown.len().min(size);
        copy_out(&mut self.mm_of(tid)?.borrow_mut().space.mem, addr, &shown[..n])?;
        Ok(Some(n))
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
        let spec = arg(None, true);
        self.linux_confine(tid, &jail, &[0; 6], spec, path)
    }
}
