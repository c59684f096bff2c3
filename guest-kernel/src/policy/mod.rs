//! System-call masks (seed 003) and jails (seed 004): what a process may call, and where.
//!
//! Design:
//! - A process's [`Restriction`] (`Process::restrict`, `None` when unrestricted) holds an
//!   optional [`Mask`] and an optional [`Jail`]. It is shared (`Rc`) with the children
//!   `clone` makes, kept across exec, and replaced (copy-on-write) when it shrinks, so a
//!   child made earlier keeps what it had. Nothing ever widens it.
//! - `SYS_MASK` (`sys_mask`) intersects nothing: it *replaces* the allowed set by a subset of
//!   it, or fails with `EPERM` and changes nothing. `MASK_KILL` is sticky.
//! - `SYS_JAIL` (`sys_jail`) resolves its path inside the current jail (if any) to a
//!   canonical directory, records it with its inode number and its enclosing jail, unshares
//!   the file-system context and moves the working directory to the new root.
//! - [`Kernel::police`] runs on every trapped call between decoding (the kernel's own copy of
//!   the arguments, seed 001) and the tap, supervision and execution, once per call (a
//!   blocked call re-runs its already policed copy). Unrestricted processes cost one
//!   predictable branch (`policy_active` stays false until the first restriction). The
//!   policy is a filter, never a second executor: it lets a call through, rewrites its path
//!   arguments, or refuses it; a refused call still passes the tap (recording) and the
//!   supervisors (tracing) and fails with its errno where every call completes. For a
//!   restricted process, by the call's row in `warden_abi`'s tables (both ABIs alike):
//!   1. the mask: a call not in it is refused with `EPERM`, or kills with `SIGSYS`;
//!   2. the jail: every path argument the row has is rewritten to a canonical global path
//!      inside the root ([`resolve::confine`]; Redox paths in [`Kernel::redox_confine`], Linux
//!      ones in [`linux`]); a call the jail catches (class J) meets its row's check
//!      ([`caught`]: kill, supervise, getpgid/setpgid only reach processes in the jail; fexec
//!      and fchdir only `file:` descriptors inside the root). Calls the jail virtualises run
//!      their own handlers, which show the jail's view ([`Kernel::jail_view`]): `getcwd` and
//!      `fpath` relative to the root, `kill(-1)` and `proc:` only processes in the jail,
//!      `readlink("/proc/self/exe")` the program relative to the root.
//! - A process is *in* jail `J` when `J` is its jail or encloses it; processes outside are
//!   invisible to it (`ESRCH`, missing from `proc:`). Processes outside a jail may still act on
//!   those inside (they hold more authority, as the seed suggests).
//! - Descriptors are capabilities: one opened before entering stays usable for reading and
//!   writing, but no call resolves a path relative to it, `fpath` of a `file:` descriptor
//!   outside the root is `EPERM`, and `fexec` of one is `EACCES`.
//!
//! The host applies the same restriction to a process with [`Kernel::restrict_process`] (the
//! CLI's `--policy FILE`) or starts init already restricted with
//! [`Kernel::spawn_init_restricted`].

pub(crate) mod caught;
mod linux;
mod resolve;
#[cfg(test)]
mod tests;

use std::cell::RefCell;
use std::rc::Rc;

use warden_abi::table::{Arg, PathArg};
use warden_abi::*;

use crate::call::{Call, SysError, SysResult};
use crate::process::ProcState;
use crate::scheme::{CallCtx, Scheme};
use crate::syscall::Entry;
use crate::{Kernel, Pid, SpawnError};

pub(crate) use resolve::strip_root;

/// The set of calls a process may make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mask {
    /// Allowed syscall numbers, sorted, without duplicates.
    allowed: Vec<usize>,
    /// A masked call kills with `SIGSYS` instead of failing with `EPERM`.
    pub kill: bool,
}

impl Mask {
    /// A mask allowing `calls` (any order, duplicates ignored).
    pub fn new(calls: impl IntoIterator<Item = usize>, kill: bool) -> Mask {
        let mut allowed: Vec<usize> = calls.into_iter().collect();
        allowed.sort_unstable();
        allowed.dedup();
        Mask { allowed, kill }
    }

    /// True if call `number` may run.
    pub fn allows(&self, number: usize) -> bool {
        ALWAYS_ALLOWED.contains(&number) || self.allowed.binary_search(&number).is_ok()
    }

    /// True if every call `other` allows, `self` allows too.
    pub fn covers(&self, other: &Mask) -> bool {
        other.allowed.iter().all(|&n| self.allows(n))
    }

    /// The allowed numbers (sorted).
    pub fn allowed(&self) -> &[usize] {
        &self.allowed
    }
}

/// A directory a process is confined to.
#[derive(Debug)]
pub struct Jail {
    /// Canonical global `file:` path of the root (`/` or `/a/b`, no symlinks).
    pub root: Vec<u8>,
    /// The root's inode number when the jail was made (a replaced root is no root).
    pub ino: u64,
    /// The jail this one was made in.
    pub parent: Option<Rc<Jail>>,
    /// Its processes may create and use user-space schemes served inside it (`JAIL_SCHEMES`).
    pub schemes: bool,
}

impl Jail {
    /// True if `inner` (a process's jail; `None`: unjailed) is `self` or lies inside it.
    pub fn encloses(&self, inner: Option<&Rc<Jail>>) -> bool {
        let mut cur = inner;
        while let Some(j) = cur {
            if std::ptr::eq(Rc::as_ptr(j), self) {
                return true;
            }
            cur = j.parent.as_ref();
        }
        false
    }

    /// True if `self` is `other` or lies inside it.
    pub fn within(self: &Rc<Jail>, other: &Rc<Jail>) -> bool {
        let mut cur = Some(self);
        while let Some(j) = cur {
            if Rc::ptr_eq(j, other) {
                return true;
            }
            cur = j.parent.as_ref();
        }
        false
    }
}

/// A process's mask and jail.
#[derive(Clone, Debug, Default)]
pub struct Restriction {
    pub mask: Option<Mask>,
    pub jail: Option<Rc<Jail>>,
}

/// What the host asks for (`--policy FILE`): see [`Kernel::restrict_process`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicySpec {
    /// Allowed syscall numbers; `None` allows every call.
    pub allow: Option<Vec<usize>>,
    /// Masked calls kill with `SIGSYS`.
    pub kill: bool,
    /// The jail's root, a `file:` path (`None`: no jail).
    pub jail: Option<Vec<u8>>,
    /// The jail lets its processes create schemes and use those served inside it
    /// (`JAIL_SCHEMES`).
    pub schemes: bool,
}

/// Splits `scheme:rest` (a colon before any `/`); `None` for a plain path.
fn split_scheme(path: &[u8]) -> (Option<&[u8]>, &[u8]) {
    let colon = path.iter().position(|&b| b == b':');
    let slash = path.iter().position(|&b| b == b'/');
    match colon {
        Some(c) if slash.is_none_or(|s| c < s) => (Some(&path[..c]), &path[c + 1..]),
        _ => (None, path),
    }
}

/// `rest` of a `file:` path, made absolute (`file:x` means `/x`).
fn absolute(rest: &[u8]) -> Vec<u8> {
    if rest.first() == Some(&b'/') {
        rest.to_vec()
    } else {
        [&b"/"[..], rest].concat()
    }
}

fn numbers(bytes: &[u8]) -> impl Iterator<Item = usize> + '_ {
    bytes.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()) as usize)
}

impl Kernel {
    fn restriction(&self, pid: Pid) -> Option<Rc<Restriction>> {
        self.procs.get(&pid).and_then(|p| p.restrict.clone())
    }

    fn set_restriction(&mut self, pid: Pid, r: Restriction) {
        if let Some(p) = self.procs.get_mut(&pid) {
            p.restrict = Some(Rc::new(r));
            self.policy_active = true;
        }
    }

    /// The jail of process `pid`, if any.
    pub fn jail_of(&self, pid: Pid) -> Option<Rc<Jail>> {
        self.restriction(pid).and_then(|r| r.jail.clone())
    }

    /// True if a process in `jail` may see and act on process `target`.
    pub fn in_jail(&self, jail: &Rc<Jail>, target: Pid) -> bool {
        self.jail_of(target).is_some_and(|j| j.within(jail))
    }

    /// The jail thread `tid` lives in, if any (one branch while no process is restricted):
    /// for the handlers of calls a jail virtualises (`getcwd`, `fpath`, `kill(-1)`...).
    pub(crate) fn jail_view(&self, tid: Pid) -> Option<Rc<Jail>> {
        if !self.policy_active {
            return None;
        }
        self.jail_of(self.pid_of(tid).ok()?)
    }

    /// Applies the mask and jail to `call` of thread `tid`: the policy is a filter. It lets
    /// the call through, rewrites its path arguments to the global paths the jail confines
    /// them to (`ITEM_RESOLVED` items), or refuses it (`Input::Refused`: the call goes
    /// on through the tap and supervision and fails with that errno without running).
    /// `false`: the caller is gone (a mask with `MASK_KILL`).
    pub(crate) fn police(&mut self, tid: Pid, call: &mut Call) -> bool {
        let Ok(pid) = self.pid_of(tid) else { return false };
        let Some(r) = self.restriction(pid) else {
            return true;
        };
        // A number no table has fails with ENOSYS, restricted or not.
        let Some(entry) = call.entry else { return true };
        if let Some(mask) = &r.mask {
            if !mask.allows(call.number) {
                if mask.kill {
                    self.terminate_process(pid, w_termsig(SIGSYS));
                    return false;
                }
                call.refuse(Errno(EPERM));
                return true;
            }
        }
        let (Some(jail), None) = (&r.jail, call.failure()) else {
            return true;
        };
        if let Err(e) = self.jail_call(tid, jail, entry, call) {
            call.refuse(e);
        }
        true
    }

    /// The jail's part of [`Kernel::police`]: every path argument the row has is confined
    /// (as its `PathArg` says), then a call the jail catches meets its check.
    fn jail_call(&mut self, tid: Pid, jail: &Rc<Jail>, entry: &Entry, call: &mut Call) -> Result<(), Errno> {
        let linux = call.number & warden_abi::linux::LINUX_CALL != 0;
        for (i, arg) in entry.info.args.iter().enumerate() {
            let Arg::Path(spec) = arg.resolve(&call.args) else { continue };
            if spec.text || spec.late {
                continue;
            }
            let Some(path) = call.given_path(i).map(<[u8]>::to_vec) else { continue };
            let confined = if linux {
                self.linux_confine(tid, jail, &call.args, &spec, &path)?
            } else {
                match self.redox_confine(tid, jail, call, &spec, &path)? {
                    Some(global) => global,
                    None => continue,
                }
            };
            call.set_item(ITEM_RESOLVED, i, &confined);
        }
        match entry.jail {
            Some(check) => check(self, tid, jail, call),
            None => Ok(()),
        }
    }

    /// A Redox path argument in a jail: a `file:` path (or a plain one) becomes the global
    /// path inside the root; `proc:` (for `open`, filtered by the jail when opened) and the
    /// device schemes pass as they are (`None`); anything else is `EACCES`.
    fn redox_confine(
        &mut self,
        tid: Pid,
        jail: &Jail,
        call: &Call,
        spec: &PathArg,
        path: &[u8],
    ) -> Result<Option<Vec<u8>>, Errno> {
        let (scheme, rest) = split_scheme(path);
        match scheme {
            None | Some(b"file") => {}
            Some(_) if matches!(call.number, SYS_CHDIR | SYS_JAIL) => return Err(Errno(EACCES)),
            Some(b"proc") if call.number == SYS_OPEN => return Ok(None),
            Some(b"null" | b"zero" | b"rand" | b"time" | b"debug") => return Ok(None),
            // `:NAME` creates a scheme; `NAME:` of a daemon inside the jail reaches it.
            Some(name) if jail.schemes && matches!(call.number, SYS_OPEN | SYS_UNLINK | SYS_RMDIR) => {
                return if self.user_scheme_inside(name, jail) { Ok(None) } else { Err(Errno(EACCES)) };
            }
            Some(_) => return Err(Errno(EACCES)),
        }
        // `file:x` is absolute, like `file:/x`.
        let rest = if scheme.is_some() { absolute(rest) } else { rest.to_vec() };
        let parsed = resolve::split(&rest)?;
        if parsed.dot_tail {
            let dotdot = parsed.comps.last().is_some_and(Option::is_none);
            if let Some(errno) = spec.tail_errno(&call.args, dotdot) {
                return Err(Errno(errno));
            }
        }
        self.confine_path(tid, jail, &rest, spec.follows(&call.args)).map(Some)
    }

    /// The caller's context, its working directory (global) and the `file:` scheme.
    fn file_scheme(&mut self) -> Result<&mut dyn Scheme, Errno> {
        Ok(&mut **self.ns.schemes.get_mut(&b"file"[..]).ok_or(Errno(ENOENT))?)
    }

    /// Where relative paths of thread `tid` start: its working directory (global), or the
    /// jail's root while that is not a `file:` directory.
    pub(crate) fn jail_cwd(&self, tid: Pid, jail: &Jail) -> Result<Vec<u8>, Errno> {
        let fs = self.proc_of(tid)?.fs.clone();
        let fs = fs.borrow();
        Ok(if fs.cwd_scheme == b"file" { fs.cwd.clone() } else { jail.root.clone() })
    }

    /// Resolves `path` for thread `tid` inside `jail` (see [`resolve::confine`]).
    fn confine_path(&mut self, tid: Pid, jail: &Jail, path: &[u8], follow: bool) -> Result<Vec<u8>, Errno> {
        let ctx = self.call_ctx(tid)?;
        let cwd = self.jail_cwd(tid, jail)?;
        let (root, ino) = (jail.root.clone(), jail.ino);
        resolve::confine(self.file_scheme()?, &ctx, &root, ino, &cwd, path, follow)
    }

    /// The working directory of a jailed thread, relative to the jail root.
    pub(crate) fn jailed_cwd(&self, tid: Pid, jail: &Jail) -> Result<Vec<u8>, Errno> {
        let fs = self.proc_of(tid)?.fs.clone();
        let fs = fs.borrow();
        if fs.cwd_scheme != b"file" {
            return Ok(b"/".to_vec());
        }
        Ok(strip_root(&jail.root, &fs.cwd).unwrap_or(b"/").to_vec())
    }

    /// `kill(-1, sig)` in a jail: every other living process in it (init and the caller
    /// excepted, as on Linux).
    pub(crate) fn jailed_kill_all(&mut self, tid: Pid, jail: &Rc<Jail>, sig: usize) -> SysResult {
        if sig >= NSIG {
            return Err(SysError::Errno(Errno(EINVAL)));
        }
        let me = self.pid_of(tid)?;
        let targets: Vec<Pid> = self
            .procs
            .values()
            .filter(|p| p.pid != 1 && p.pid != me && p.state == ProcState::Alive)
            .filter(|p| p.restrict.as_ref().and_then(|r| r.jail.as_ref()).is_some_and(|j| j.within(jail)))
            .map(|p| p.pid)
            .collect();
        if targets.is_empty() {
            return Err(SysError::Errno(Errno(ESRCH)));
        }
        if sig != 0 {
            for t in targets {
                self.post_signal(t, sig);
            }
        }
        Ok(0)
    }

    /// `mask(calls, count, flags)`.
    pub(crate) fn sys_mask(&mut self, tid: Pid, call: &Call) -> SysResult {
        let bytes = call.input(0).ok_or(Errno(EFAULT))?;
        let flags = call.args[2];
        if flags & !MASK_KILL != 0 {
            return Err(SysError::Errno(Errno(EINVAL)));
        }
        let pid = self.pid_of(tid)?;
        let mut r = self.restriction(pid).map(|r| (*r).clone()).unwrap_or_default();
        let mut mask = Mask::new(numbers(bytes), flags & MASK_KILL != 0);
        if let Some(old) = &r.mask {
            if !old.covers(&mask) {
                return Err(SysError::Errno(Errno(EPERM)));
            }
            mask.kill |= old.kill;
        }
        r.mask = Some(mask);
        self.set_restriction(pid, r);
        Ok(0)
    }

    /// `jail(path, len, flags)`.
    pub(crate) fn sys_jail(&mut self, tid: Pid, call: &Call) -> SysResult {
        let path = call.path(0)?;
        if call.args[2] & !JAIL_SCHEMES != 0 {
            return Err(SysError::Errno(Errno(EINVAL)));
        }
        let pid = self.pid_of(tid)?;
        let ctx = self.call_ctx(tid)?;
        let cwd = {
            let fs = self.proc_of(tid)?.fs.clone();
            let fs = fs.borrow();
            if fs.cwd_scheme == b"file" {
                fs.cwd.clone()
            } else {
                b"/".to_vec()
            }
        };
        let path = match split_scheme(path) {
            (None, rest) => rest.to_vec(),
            (Some(b"file"), rest) => absolute(rest),
            (Some(_), _) => return Err(SysError::Errno(Errno(EACCES))),
        };
        // In a jail the path was already confined to it ([`Kernel::police`]): it is global now.
        self.enter_jail(pid, &ctx, &cwd, &path, false, call.args[2] & JAIL_SCHEMES != 0)?;
        Ok(0)
    }

    /// Confines process `pid` to directory `path` (relative to `cwd`; resolved inside its
    /// current jail if `in_jail`, else a global path), moving its working directory to the
    /// new root. The new root must lie inside the current one (`EPERM`); `schemes`
    /// (`JAIL_SCHEMES`) only if the current jail has it (`EPERM`).
    fn enter_jail(
        &mut self,
        pid: Pid,
        ctx: &CallCtx,
        cwd: &[u8],
        path: &[u8],
        in_jail: bool,
        schemes: bool,
    ) -> Result<(), Errno> {
        let mut r = self.restriction(pid).map(|r| (*r).clone()).unwrap_or_default();
        if schemes && r.jail.as_ref().is_some_and(|j| !j.schemes) {
            return Err(Errno(EPERM));
        }
        let (outer_root, outer_ino) = match &r.jail {
            Some(j) if in_jail => (j.root.clone(), j.ino),
            _ => (b"/".to_vec(), 0),
        };
        let global = resolve::confine(self.file_scheme()?, ctx, &outer_root, outer_ino, cwd, path, true)?;
        let root = crate::process::normalize(b"/", &global);
        if r.jail.as_ref().is_some_and(|j| strip_root(&j.root, &root).is_none()) {
            return Err(Errno(EPERM));
        }
        let stat = {
            let file = self.file_scheme()?.open(&root, O_STAT | O_DIRECTORY, ctx)?;
            let stat = file.try_borrow().map_err(|_| Errno(EIO))?.stat()?;
            stat
        };
        if !stat.is_dir() {
            return Err(Errno(ENOTDIR));
        }
        let jail = Rc::new(Jail { root: root.clone(), ino: stat.st_ino, parent: r.jail.take(), schemes });
        r.jail = Some(jail);
        let p = self.procs.get_mut(&pid).ok_or(Errno(ESRCH))?;
        let mut fs = p.fs.borrow().clone();
        fs.cwd_scheme = b"file".to_vec();
        fs.cwd = root;
        p.fs = Rc::new(RefCell::new(fs));
        self.set_restriction(pid, r);
        Ok(())
    }

    /// Restricts process `pid` as the host asks (`--policy FILE`): shrinks its mask to
    /// `spec.allow` (`EPERM` if that would widen it) and jails it in `spec.jail` (a path
    /// resolved like the process's own `jail` call would).
    pub fn restrict_process(&mut self, pid: Pid, spec: &PolicySpec) -> Result<(), Errno> {
        let p = self.procs.get(&pid).ok_or(Errno(ESRCH))?;
        let ctx = CallCtx { pid, uid: p.uid, gid: p.gid, umask: p.fs.borrow().umask };
        let cwd = p.fs.borrow().cwd.clone();
        if let Some(path) = &spec.jail {
            self.enter_jail(pid, &ctx, &cwd, path, true, spec.schemes)?;
        }
        if spec.allow.is_some() || spec.kill {
            let mut r = self.restriction(pid).map(|r| (*r).clone()).unwrap_or_default();
            let allow: Vec<usize> = match &spec.allow {
                Some(list) => list.clone(),
                None => r.mask.as_ref().map_or_else(|| all_calls().map(|c| c.number).collect(), |m| m.allowed.clone()),
            };
            let mut mask = Mask::new(allow, spec.kill);
            if let Some(old) = &r.mask {
                if !old.covers(&mask) {
                    return Err(Errno(EPERM));
                }
                mask.kill |= old.kill;
            }
            r.mask = Some(mask);
            self.set_restriction(pid, r);
        }
        Ok(())
    }

    /// Starts init like [`Kernel::spawn_init`], already restricted by `spec`: with a jail,
    /// `path` is resolved inside it (as the jailed program itself would resolve it).
    pub fn spawn_init_restricted(
        &mut self,
        path: &str,
        argv: &[&str],
        envp: &[&str],
        spec: &PolicySpec,
    ) -> Result<Pid, SpawnError> {
        let program = match &spec.jail {
            None => path.to_string(),
            Some(jail) => {
                let ctx = CallCtx { pid: 0, uid: self.config.uid, gid: self.config.gid, umask: 0o022 };
                let jail_name = printable(jail);
                let io = |errno| SpawnError::Io { path: format!("jail {jail_name}"), errno };
                let cwd = crate::process::normalize(b"/", &self.config.cwd);
                let root =
                    resolve::confine(self.file_scheme().map_err(io)?, &ctx, b"/", 0, &cwd, jail, true).map_err(io)?;
                let root = crate::process::normalize(b"/", &root);
                let is_dir = self
                    .file_scheme()
                    .and_then(|s| s.open(&root, O_STAT | O_DIRECTORY, &ctx))
                    .and_then(|f| f.try_borrow().map_err(|_| Errno(EIO))?.stat())
                    .map_err(io)?
                    .is_dir();
                if !is_dir {
                    return Err(io(Errno(ENOTDIR)));
                }
                let prog =
                    resolve::confine(self.file_scheme().map_err(io)?, &ctx, &root, 0, &root, path.as_bytes(), true);
                match prog.map(String::from_utf8) {
                    Ok(Ok(p)) => p,
                    Ok(Err(_)) | Err(Errno(ENOENT | ENOTDIR)) => {
                        return Err(SpawnError::NotFound { path: path.to_string() })
                    }
                    Err(errno) => return Err(SpawnError::Io { path: path.to_string(), errno }),
                }
            }
        };
        // Errors name the program as the caller gave it, not its place outside the jail.
        let pid = self.spawn_init(&program, argv, envp).map_err(|e| match e {
            SpawnError::NotFound { .. } => SpawnError::NotFound { path: path.to_string() },
            SpawnError::NotExecutable { errno, .. } => SpawnError::NotExecutable { path: path.to_string(), errno },
            SpawnError::Io { errno, .. } => SpawnError::Io { path: path.to_string(), errno },
            other => other,
        })?;
        if let Err(errno) = self.restrict_process(pid, spec) {
            let name = spec.jail.as_deref().map(printable).unwrap_or_default();
            self.terminate_process(pid, w_termsig(SIGKILL));
            return Err(SpawnError::Io { path: format!("jail {name}"), errno });
        }
        Ok(pid)
    }
}

/// A jail path for an error message: lossy UTF-8 with control characters escaped, so the
/// message stays one line (a policy file may hold any bytes).
fn printable(path: &[u8]) -> String {
    crate::escape_controls(&String::from_utf8_lossy(path))
}
