//! The checks of the calls a jail catches (class J): the `jail = caught::...` of their rows
//! in `warden_abi`'s tables. Each decides whether a jailed thread may make the call; a
//! refusal (`Err(errno)`) makes the call fail with that errno without running. Calls a jail
//! *virtualises* (`getcwd`, `fpath`, `readlink("/proc/self/exe")`, `kill(-1)`, `proc:`) run,
//! and their handlers show the jail's view (see `Kernel::jail_view`).

use std::rc::Rc;

use warden_abi::*;

use super::{strip_root, Jail};
use crate::call::Call;
use crate::{Kernel, Pid};

/// Process `pid` (0: the caller) is one the jail may act on.
fn reachable(k: &Kernel, jail: &Rc<Jail>, pid: usize) -> bool {
    pid == 0 || k.in_jail(jail, pid as Pid)
}

/// Descriptor `fd` is a `file:` inside the jail's root.
fn inside(k: &Kernel, tid: Pid, jail: &Jail, fd: usize) -> Result<bool, Errno> {
    let desc = k.desc(tid, fd)?;
    let path = desc.file.try_borrow().map_err(|_| Errno(EIO))?.path();
    Ok(path.strip_prefix(b"file:").is_some_and(|g| strip_root(&jail.root, g).is_some()))
}

/// Redox `dup`/`dup2`: a non-empty sub-path would open a name relative to a descriptor.
pub(crate) fn dup_buffer(_: &mut Kernel, _: Pid, _: &Rc<Jail>, c: &Call) -> Result<(), Errno> {
    let named = c.items().iter().any(|(item, bytes)| item.kind == ITEM_BYTES && !bytes.is_empty());
    if named {
        Err(Errno(EPERM))
    } else {
        Ok(())
    }
}

/// Redox `fexec`: only a `file:` inside the root runs.
pub(crate) fn fexec(k: &mut Kernel, tid: Pid, jail: &Rc<Jail>, c: &Call) -> Result<(), Errno> {
    if inside(k, tid, jail, c.args[0])? {
        Ok(())
    } else {
        Err(Errno(EACCES))
    }
}

/// Linux `fchdir`: only to a directory inside the root.
pub(crate) fn fchdir(k: &mut Kernel, tid: Pid, jail: &Rc<Jail>, c: &Call) -> Result<(), Errno> {
    if inside(k, tid, jail, c.args[0])? {
        Ok(())
    } else {
        Err(Errno(EACCES))
    }
}

/// Calls whose first argument names a process (`supervise`, `getpgid`, `setpgid`,
/// `prlimit64`): only processes in the jail.
pub(crate) fn first_in_jail(k: &mut Kernel, _: Pid, jail: &Rc<Jail>, c: &Call) -> Result<(), Errno> {
    if reachable(k, jail, c.args[0]) {
        Ok(())
    } else {
        Err(Errno(ESRCH))
    }
}

/// Redox `kill`: only processes in the jail (`kill(-1)` runs: it reaches only those).
pub(crate) fn kill(k: &mut Kernel, _: Pid, jail: &Rc<Jail>, c: &Call) -> Result<(), Errno> {
    let pid = c.args[0] as isize;
    if pid == -1 || reachable(k, jail, pid.unsigned_abs()) {
        Ok(())
    } else {
        Err(Errno(ESRCH))
    }
}

/// Linux `kill` (an `int` pid).
pub(crate) fn linux_kill(k: &mut Kernel, _: Pid, jail: &Rc<Jail>, c: &Call) -> Result<(), Errno> {
    let pid = c.args[0] as i32 as isize;
    if pid == -1 || reachable(k, jail, pid.unsigned_abs()) {
        Ok(())
    } else {
        Err(Errno(ESRCH))
    }
}

/// Linux `tkill` / `tgkill`: only threads of processes in the jail.
pub(crate) fn tkill(k: &mut Kernel, _: Pid, jail: &Rc<Jail>, c: &Call) -> Result<(), Errno> {
    let tgkill = c.number == linux::LINUX_CALL | linux::nr::TGKILL;
    let target = c.args[usize::from(tgkill)] as i32;
    let pid = k.threads.get(&(target as Pid)).map(|t| t.pid);
    if target > 0 && pid.is_some_and(|p| k.in_jail(jail, p)) {
        Ok(())
    } else {
        Err(Errno(ESRCH))
    }
}

/// Linux `setpgid`: the process (ESRCH) and the group (EPERM) in the jail.
pub(crate) fn setpgid(k: &mut Kernel, _: Pid, jail: &Rc<Jail>, c: &Call) -> Result<(), Errno> {
    if !reachable(k, jail, c.args[0]) {
        return Err(Errno(ESRCH));
    }
    if !reachable(k, jail, c.args[1]) {
        return Err(Errno(EPERM));
    }
    Ok(())
}
