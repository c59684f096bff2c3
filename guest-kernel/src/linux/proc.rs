//! Linux process, thread and identity calls.
//!
//! - `clone` maps onto the kernel's clone (which already implements
//!   `CLONE_VM/FS/FILES/SIGHAND/VFORK/THREAD` with Linux's bit values), then
//!   applies `CLONE_SETTLS` (the child's fs base), `CLONE_PARENT_SETTID`,
//!   `CLONE_CHILD_SETTID` and `CLONE_CHILD_CLEARTID`. The exit signal is
//!   always SIGCHLD. `fork` and `vfork` are `clone(SIGCHLD)` and
//!   `clone(CLONE_VM | CLONE_VFORK | SIGCHLD)`.
//! - `exit` ends the calling thread (the process when it is the last one);
//!   the thread's `clear_child_tid` word is zeroed and futex-woken first, as
//!   `pthread_join` expects. `exit_group` ends the process.
//! - `execve` opens the file (EACCES without an execute bit), follows up to
//!   four `#!` interpreters, and execs; the new image's personality follows
//!   the rule in the module note.
//! - `wait4` / `waitid` report 32-bit Linux wait statuses (the kernel's
//!   encoding is Linux's).

use warden_abi as r;
use warden_abi::Errno;

use super::abi::{self, Out};
use super::LinuxThread;
use crate::jobs::{self, WaitFound};
use crate::process::{ProcState, Process, WaitOn};
use crate::syscall::{Block, Call, SysError, SysResult};
use crate::usercopy::copy_out;
use crate::{Kernel, Pid};

fn err<T>(e: i32) -> Result<T, SysError> {
    Err(SysError::Errno(Errno(e)))
}

/// `__WNOTHREAD`, `__WALL`, `__WCLONE`: accepted (a process's threads are never its children).
const WAIT_THREAD_FLAGS: usize = 0x2000_0000 | 0x4000_0000 | 0x8000_0000;

/// Resource limits reported by getrlimit/prlimit64: (cur, max).
fn rlimit(resource: usize, max_fds: usize, stack: u64, mem: u64) -> (u64, u64) {
    const INF: u64 = u64::MAX;
    match resource {
        3 => (stack, INF),                     // RLIMIT_STACK
        7 => (max_fds as u64, max_fds as u64), // RLIMIT_NOFILE
        9 | 2 => (mem, mem),                   // RLIMIT_AS, RLIMIT_DATA
        4 => (0, INF),                         // RLIMIT_CORE
        6 => (256, 256),                       // RLIMIT_NPROC
        8 => (64 << 10, 64 << 10),             // RLIMIT_MEMLOCK
        _ => (INF, INF),
    }
}

impl Kernel {
    fn lx_clone(&mut self, tid: Pid, flags: usize, stack: usize, ptid: usize, ctid: usize, tls: usize) -> SysResult {
        if flags & abi::CLONE_THREAD != 0 && flags & abi::CLONE_SIGHAND == 0
            || flags & abi::CLONE_SIGHAND != 0 && flags & abi::CLONE_VM == 0
        {
            return err(r::EINVAL);
        }
        let kernel_flags = flags
            & (abi::CLONE_VM
                | abi::CLONE_FS
                | abi::CLONE_FILES
                | abi::CLONE_SIGHAND
                | abi::CLONE_VFORK
                | abi::CLONE_THREAD);
        let parent_pid = self.pid_of(tid)?;
        if flags & abi::CLONE_VM == 0 {
            let mm = self.mm_of(tid)?.borrow().id;
            self.lx_may_fork_shared(mm)?;
        }
        let result = self.sys_clone(tid, kernel_flags, stack);
        // Children of traced or supervised processes are watched from their first instruction.
        self.supervise_cloned(tid, kernel_flags, &result);
        let child = match &result {
            Ok(c) => *c as Pid,
            Err(SysError::Block(Block { on: WaitOn::Vfork(c), .. })) => *c,
            Err(_) => return result,
        };
        if flags & abi::CLONE_THREAD == 0 {
            if let Some(p) = self.linux.procs.get(&parent_pid).cloned() {
                self.linux.procs.insert(child, p);
            }
            let ids = |k: &Kernel, t| k.mm_of(t).ok().map(|m| m.borrow().id);
            if let (Some(parent), Some(child)) = (ids(self, tid), ids(self, child)) {
                self.lx_fork_shared(parent, child);
            }
        }
        let mut lt = LinuxThread::default();
        if flags & abi::CLONE_THREAD == 0 {
            lt.altstack = self.linux.threads.get(&tid).map(|t| t.altstack).unwrap_or_default();
        }
        if flags & abi::CLONE_SETTLS != 0 {
            if let Some(t) = self.threads.get_mut(&child) {
                t.cpu.fs_base = tls as u64;
            }
        }
        if flags & abi::CLONE_CHILD_CLEARTID != 0 {
            lt.clear_tid = ctid as u64;
        }
        self.linux.threads.insert(child, lt);
        if flags & abi::CLONE_PARENT_SETTID != 0 {
            if let Ok(mm) = self.mm_of(tid) {
                let _ = copy_out(&mut mm.borrow_mut().space.mem, ptid, &child.to_le_bytes());
            }
        }
        if flags & abi::CLONE_CHILD_SETTID != 0 {
            if let Ok(mm) = self.mm_of(child) {
                let _ = copy_out(&mut mm.borrow_mut().space.mem, ctid, &child.to_le_bytes());
            }
        }
        result
    }

    /// A Linux thread ends: clear and wake its `clear_child_tid` word.
    fn lx_thread_exit_cleanup(&mut self, tid: Pid) {
        let Some(lt) = self.linux.threads.remove(&tid) else { return };
        if lt.clear_tid == 0 {
            return;
        }
        let Ok(mm) = self.mm_of(tid) else { return };
        let id = mm.borrow().id;
        let _ = copy_out(&mut mm.borrow_mut().space.mem, lt.clear_tid as usize, &0u32.to_le_bytes());
        self.futex_wake(WaitOn::Futex(id, lt.clear_tid), usize::MAX);
    }

    fn lx_exit(&mut self, tid: Pid, status: usize) -> SysResult {
        let pid = self.pid_of(tid)?;
        let last = self.procs.get(&pid).is_none_or(|p| p.threads.len() <= 1);
        if last {
            self.linux.threads.remove(&tid);
            self.terminate_process(pid, r::w_exitcode(status as u8));
        } else {
            self.lx_thread_exit_cleanup(tid);
            self.exit_thread(tid);
        }
        Err(SysError::NoReturn)
    }

    fn lx_execve(&mut self, tid: Pid, path: &[u8], args: &[Vec<u8>], envs: &[Vec<u8>]) -> SysResult {
        let execfn = path.to_vec();
        let mut path = path.to_vec();
        let mut args = args.to_vec();
        for _ in 0..5 {
            let abs = {
                let fs = self.proc_of(tid)?.fs.clone();
                let fs = fs.borrow();
                if path.is_empty() {
                    return err(r::ENOENT);
                }
                if path[0] == b'/' || fs.cwd_scheme != b"file" {
                    crate::process::normalize(b"/", &path)
                } else {
                    crate::process::normalize(&fs.cwd, &path)
                }
            };
            // `/proc/self/exe` is the guest's own program (busybox re-executes itself
            // through it), never the host's (which would be warden); it was resolved
            // (inside any jail) when it was executed. Otherwise, in a jail, the program
            // and each interpreter are resolved inside it.
            let abs = if abs == b"/proc/self/exe" {
                let pid = self.pid_of(tid)?;
                self.linux.procs.get(&pid).map(|p| p.exe.clone()).filter(|e| !e.is_empty()).ok_or(Errno(r::ENOENT))?
            } else {
                self.linux_exec_abs(tid, &path, abs)?
            };
            let mut full = b"file:".to_vec();
            full.extend_from_slice(&abs);
            let file = self.open_path(tid, &full, r::O_RDONLY)?;
            let desc = crate::process::OpenFile::new(file, r::O_RDONLY);
            let st = desc.file.try_borrow().map_err(|_| Errno(r::EIO))?.stat()?;
            if st.is_dir() || st.st_mode & 0o111 == 0 {
                return err(r::EACCES);
            }
            let bytes = crate::elf::read_program(&desc.file)?;
            drop(desc);
            if let Some(script) = super::exec::script(&bytes, &path, &args) {
                (path, args) = script?;
                continue;
            }
            self.linux.exec_path = Some((abs, execfn));
            self.exec(tid, &bytes, args, envs.to_vec())?;
            return Err(SysError::NoReturn);
        }
        err(r::ELOOP)
    }

    /// The wait of `wait4` and `waitid`: `pid` as `wait4` takes it, `options` the `WAIT_*`
    /// reports wanted (plus `WNOHANG`).
    fn lx_wait(&mut self, tid: Pid, pid: isize, options: usize, peek: bool) -> Result<Option<WaitFound>, SysError> {
        let me = self.pid_of(tid)?;
        let my_pgid = self.procs.get(&me).map(|p| p.pgid).unwrap_or(0);
        let matches = |p: &Process| {
            p.ppid == me
                && match pid {
                    -1 => true,
                    0 => p.pgid == my_pgid,
                    n if n < -1 => p.pgid as isize == -n,
                    n => p.pid as isize == n,
                }
        };
        match self.wait_child(matches, options, peek) {
            None => err(r::ECHILD),
            Some(Some(found)) => Ok(Some(found)),
            Some(None) if options & abi::WNOHANG != 0 => Ok(None),
            Some(None) => Err(Block::retry(WaitOn::Child(me))),
        }
    }

    fn lx_wait4(&mut self, tid: Pid, pid: isize, status_addr: usize, options: usize, rusage: usize) -> SysResult {
        if options & !(abi::WNOHANG | jobs::WAIT_STOPPED | jobs::WAIT_CONTINUED | WAIT_THREAD_FLAGS) != 0 {
            return err(r::EINVAL);
        }
        match self.lx_wait(tid, pid, options | jobs::WAIT_EXITED, false)? {
            None => Ok(0),
            Some(found) => {
                let mm = self.mm_of(tid)?;
                if status_addr != 0 {
                    copy_out(&mut mm.borrow_mut().space.mem, status_addr, &(found.status as u32).to_le_bytes())?;
                }
                if rusage != 0 {
                    copy_out(&mut mm.borrow_mut().space.mem, rusage, &[0u8; 144])?;
                }
                Ok(found.pid as usize)
            }
        }
    }

    fn lx_waitid(&mut self, tid: Pid, idtype: usize, id: usize, infop: usize, options: usize) -> SysResult {
        let reports = jobs::WAIT_EXITED | jobs::WAIT_STOPPED | jobs::WAIT_CONTINUED;
        if options & !(reports | abi::WNOHANG | abi::WNOWAIT | WAIT_THREAD_FLAGS) != 0 || options & reports == 0 {
            return err(r::EINVAL);
        }
        let pid = match idtype {
            abi::P_ALL => -1,
            abi::P_PID => id as i32 as isize,
            abi::P_PGID if id == 0 => 0,
            abi::P_PGID => -(id as i32 as isize),
            _ => return err(r::EINVAL),
        };
        let found = self.lx_wait(tid, pid, options, options & abi::WNOWAIT != 0)?;
        let mut info = Out::new(128);
        if let Some(found) = found {
            let (code, status) = found.code_and_status();
            let si = jobs::SigInfo { code, pid: found.pid, uid: found.uid, status, value: 0 };
            info.put(0, &super::signal::siginfo_bytes(r::SIGCHLD, &si));
        }
        if infop != 0 {
            let mm = self.mm_of(tid)?;
            copy_out(&mut mm.borrow_mut().space.mem, infop, &info.0)?;
        }
        Ok(0)
    }

    fn lx_tkill(&mut self, tid: Pid, target: Pid, sig: usize) -> SysResult {
        if sig >= 65 {
            return err(r::EINVAL);
        }
        let Some(t) = self.threads.get(&target) else { return err(r::ESRCH) };
        let pid = t.pid;
        if sig == 0 || sig >= r::NSIG {
            return Ok(0);
        }
        let sender = self.proc_of(tid)?;
        let info = jobs::SigInfo { code: jobs::SI_TKILL, pid: sender.pid, uid: sender.uid, status: 0, value: 0 };
        if sig == r::SIGKILL || sig == r::SIGCONT || crate::signal::sig_bit(sig) & jobs::STOP_SIGNALS != 0 {
            // Killing, stopping and continuing act on the whole process.
            self.post_signal_info(pid, sig, info);
        } else {
            self.post_thread_signal_info(target, sig, info);
        }
        Ok(0)
    }

    fn lx_out_bytes(&mut self, tid: Pid, addr: usize, data: &[u8]) -> Result<(), Errno> {
        let mm = self.mm_of(tid)?;
        let r = copy_out(&mut mm.borrow_mut().space.mem, addr, data);
        r
    }
}

// --- handlers (rows of `warden_abi::linux_calls!`) -------------------------------------------

pub(super) fn clone(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let [flags, stack, ptid, ctid, tls, ..] = c.args;
    k.lx_clone(tid, flags, stack, ptid, ctid, tls)
}

/// `clone3(args, size)`: `struct clone_args` (at least its first 64 bytes) as `clone`'s
/// arguments; the child's stack pointer is `stack + stack_size`. Pid file descriptors,
/// chosen thread ids (`set_tid`) and cgroups are not supported (EINVAL).
pub(super) fn clone3(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    const CLONE_PIDFD: usize = 0x1000;
    const CLONE_INTO_CGROUP: usize = 1 << 33;
    let args = c.input(0).ok_or(Errno(r::EFAULT))?;
    if args.len() < 64 {
        return err(r::EINVAL);
    }
    let word = |i: usize| abi::le64(args, i * 8) as usize;
    let (flags, child_tid, parent_tid, exit_signal, stack, stack_size, tls) =
        (word(0), word(2), word(3), word(4), word(5), word(6), word(7));
    let set_tid = if args.len() >= 80 { word(8) | word(9) } else { 0 };
    // Bytes past what this kernel knows must be zero (Linux's rule for larger structs).
    if flags & (CLONE_PIDFD | CLONE_INTO_CGROUP | 0xff) != 0
        || exit_signal > 64
        || set_tid != 0
        || args.get(80..).is_some_and(|rest| rest.iter().any(|&b| b != 0))
        || (stack == 0) != (stack_size == 0)
    {
        return err(r::EINVAL);
    }
    let sp = if stack == 0 { 0 } else { stack.checked_add(stack_size).ok_or(Errno(r::EINVAL))? };
    k.lx_clone(tid, flags | exit_signal, sp, parent_tid, child_tid, tls)
}

pub(super) fn fork(k: &mut Kernel, tid: Pid, _: &Call) -> SysResult {
    k.lx_clone(tid, r::SIGCHLD, 0, 0, 0, 0)
}

pub(super) fn vfork(k: &mut Kernel, tid: Pid, _: &Call) -> SysResult {
    k.lx_clone(tid, abi::CLONE_VM | abi::CLONE_VFORK | r::SIGCHLD, 0, 0, 0, 0)
}

pub(super) fn execve(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    // The old image's shared maps reach their files first (harmless if exec fails).
    let mm = k.mm_of(tid)?.borrow().id;
    k.lx_flush_shared(mm, 0, u64::MAX);
    k.lx_execve(tid, c.path(0)?, &c.strings(r::ITEM_ARG), &c.strings(r::ITEM_ENV))
}

pub(super) fn exit(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    k.lx_exit(tid, c.args[0])
}

pub(super) fn exit_group(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let pid = k.pid_of(tid)?;
    k.terminate_process(pid, r::w_exitcode(c.args[0] as u8));
    Err(SysError::NoReturn)
}

pub(super) fn wait4(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let [pid, status, options, rusage, ..] = c.args;
    k.lx_wait4(tid, pid as i32 as isize, status, options, rusage)
}

pub(super) fn waitid(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let [idtype, id, infop, options, ..] = c.args;
    k.lx_waitid(tid, idtype, id, infop, options)
}

/// `kill`: real-time signals (32..64) are accepted and dropped.
pub(super) fn kill(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let [pid, sig, ..] = c.args;
    if (r::NSIG..65).contains(&sig) {
        return Ok(0);
    }
    k.sys_kill(tid, pid as i32 as isize, sig)
}

pub(super) fn tkill(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    k.lx_tkill(tid, c.args[0] as Pid, c.args[1])
}

pub(super) fn tgkill(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    k.lx_tkill(tid, c.args[1] as Pid, c.args[2])
}

pub(super) fn getpid(k: &mut Kernel, tid: Pid, _: &Call) -> SysResult {
    Ok(k.pid_of(tid)? as usize)
}

pub(super) fn gettid(_: &mut Kernel, tid: Pid, _: &Call) -> SysResult {
    Ok(tid as usize)
}

pub(super) fn getppid(k: &mut Kernel, tid: Pid, _: &Call) -> SysResult {
    Ok(k.proc_of(tid)?.ppid as usize)
}

pub(super) fn getuid(k: &mut Kernel, tid: Pid, _: &Call) -> SysResult {
    Ok(k.proc_of(tid)?.uid as usize)
}

pub(super) fn getgid(k: &mut Kernel, tid: Pid, _: &Call) -> SysResult {
    Ok(k.proc_of(tid)?.gid as usize)
}

fn put_ids(k: &mut Kernel, tid: Pid, c: &Call, id: u32) -> SysResult {
    for addr in [c.args[0], c.args[1], c.args[2]] {
        k.lx_out_bytes(tid, addr, &id.to_le_bytes())?;
    }
    Ok(0)
}

pub(super) fn getresuid(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let uid = k.proc_of(tid)?.uid;
    put_ids(k, tid, c, uid)
}

pub(super) fn getresgid(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let gid = k.proc_of(tid)?.gid;
    put_ids(k, tid, c, gid)
}

pub(super) fn getgroups(_: &mut Kernel, _: Pid, _: &Call) -> SysResult {
    Ok(0)
}

/// Calls accepted without effect (the set-id calls, `setpriority`, `set_robust_list`,
/// `sched_setaffinity`).
pub(super) fn no_effect(_: &mut Kernel, _: Pid, _: &Call) -> SysResult {
    Ok(0)
}

/// Calls in the table that the personality does not implement.
pub(super) fn not_implemented(_: &mut Kernel, _: Pid, _: &Call) -> SysResult {
    err(r::ENOSYS)
}

pub(super) fn getpgid(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let target = if c.args[0] == 0 { k.pid_of(tid)? } else { c.args[0] as Pid };
    Ok(k.procs.get(&target).ok_or(Errno(r::ESRCH))?.pgid as usize)
}

pub(super) fn getpgrp(k: &mut Kernel, tid: Pid, _: &Call) -> SysResult {
    Ok(k.proc_of(tid)?.pgid as usize)
}

/// `setpgid` with Linux's rules ([`crate::jobs`]).
pub(super) fn setpgid(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let me = k.pid_of(tid)?;
    let (pid, pgid) = (c.args[0] as i32, c.args[1] as i32);
    if pgid < 0 {
        return err(r::EINVAL);
    }
    let target = if pid == 0 { me } else { pid as Pid };
    let pgid = if pgid == 0 { target } else { pgid as Pid };
    let caller_sid = k.procs.get(&me).ok_or(Errno(r::ESRCH))?.job.sid;
    let p = k.procs.get(&target).filter(|p| p.state == ProcState::Alive).ok_or(Errno(r::ESRCH))?;
    if p.pid != me {
        if p.ppid != me {
            return err(r::ESRCH);
        }
        if p.job.sid != caller_sid {
            return err(r::EPERM);
        }
        if p.job.execed {
            return err(r::EACCES);
        }
    }
    if p.job.sid == p.pid {
        return err(r::EPERM);
    }
    if pgid != target
        && !k.procs.values().any(|q| q.pgid == pgid && q.job.sid == caller_sid && q.state == ProcState::Alive)
    {
        return err(r::EPERM);
    }
    if let Some(p) = k.procs.get_mut(&target) {
        p.pgid = pgid;
    }
    Ok(0)
}

/// `setsid`: EPERM for a process group leader (or a pid some group still uses).
pub(super) fn setsid(k: &mut Kernel, tid: Pid, _: &Call) -> SysResult {
    let me = k.pid_of(tid)?;
    if k.procs.values().any(|p| p.pgid == me) {
        return err(r::EPERM);
    }
    if let Some(p) = k.procs.get_mut(&me) {
        p.pgid = me;
        p.job.sid = me;
    }
    Ok(me as usize)
}

pub(super) fn getsid(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let target = if c.args[0] as i32 == 0 { k.pid_of(tid)? } else { c.args[0] as i32 as Pid };
    Ok(k.procs.get(&target).ok_or(Errno(r::ESRCH))?.job.sid as usize)
}

pub(super) fn getpriority(_: &mut Kernel, _: Pid, _: &Call) -> SysResult {
    Ok(20)
}

pub(super) fn set_tid_address(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    k.linux.threads.entry(tid).or_default().clear_tid = c.args[0] as u64;
    Ok(tid as usize)
}

pub(super) fn arch_prctl(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let [code, addr, ..] = c.args;
    let t = k.threads.get_mut(&tid).ok_or(Errno(r::ESRCH))?;
    match code {
        abi::ARCH_SET_FS => t.cpu.fs_base = addr as u64,
        abi::ARCH_SET_GS => t.cpu.gs_base = addr as u64,
        abi::ARCH_GET_FS | abi::ARCH_GET_GS => {
            let v = if code == abi::ARCH_GET_FS { t.cpu.fs_base } else { t.cpu.gs_base };
            k.lx_out_bytes(tid, addr, &v.to_le_bytes())?;
        }
        _ => return err(r::EINVAL),
    }
    Ok(0)
}

/// `prctl`: the name options succeed (the name is not kept); others are EINVAL.
pub(super) fn prctl(_: &mut Kernel, _: Pid, c: &Call) -> SysResult {
    match c.args[0] {
        abi::PR_SET_NAME | abi::PR_GET_NAME => Ok(0),
        _ => err(r::EINVAL),
    }
}

pub(super) fn uname(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    k.lx_out_bytes(tid, c.args[0], &abi::utsname_bytes())?;
    Ok(0)
}

/// The limits `resource` has, written to `old` if non-null.
fn put_rlimit(k: &mut Kernel, tid: Pid, resource: usize, old: usize) -> SysResult {
    if resource > 15 {
        return err(r::EINVAL);
    }
    let limits = &k.config.limits;
    let (cur, max) = rlimit(resource, limits.max_fds, k.config.stack_size, limits.max_memory_per_process);
    if old != 0 {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&cur.to_le_bytes());
        out[8..].copy_from_slice(&max.to_le_bytes());
        k.lx_out_bytes(tid, old, &out)?;
    }
    Ok(0)
}

pub(super) fn getrlimit(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    put_rlimit(k, tid, c.args[0], c.args[1])
}

pub(super) fn setrlimit(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    put_rlimit(k, tid, c.args[0], 0)
}

pub(super) fn prlimit64(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    put_rlimit(k, tid, c.args[1], c.args[3])
}

pub(super) fn getrusage(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let mut o = Out::new(144);
    let ns = k.threads.get(&tid).map(|t| t.cpu.icount).unwrap_or(0);
    o.put(0, &abi::timeval_bytes(ns));
    k.lx_out_bytes(tid, c.args[1], &o.0)?;
    Ok(0)
}

pub(super) fn times(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let ticks = k.clock.monotonic_ns() / 10_000_000;
    if c.args[0] != 0 {
        let mut o = Out::new(32);
        o.u64(0, k.threads.get(&tid).map(|t| t.cpu.icount).unwrap_or(0) / 10_000_000);
        k.lx_out_bytes(tid, c.args[0], &o.0)?;
    }
    Ok(ticks as usize)
}

/// `sysinfo`: uptime on the guest clock; RAM as `/proc/meminfo` gives it (`procfs.rs`: the
/// `--max-mem-total` limit, free what the guest does not use), no swap; the process count.
pub(super) fn sysinfo(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let mut o = Out::new(112);
    let total = k.config.limits.max_memory_total;
    o.u64(0, k.clock.monotonic_ns() / 1_000_000_000);
    o.u64(32, total);
    o.u64(40, total.saturating_sub(k.mem_total.used()));
    o.u16(80, k.procs.len().min(u16::MAX as usize) as u16);
    o.u32(104, 1); // mem_unit
    k.lx_out_bytes(tid, c.args[0], &o.0)?;
    Ok(0)
}

pub(super) fn sched_yield(k: &mut Kernel, _: Pid, _: &Call) -> SysResult {
    k.sched.yield_requested = true;
    Ok(0)
}

pub(super) fn sched_getaffinity(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    if c.args[1] < 8 {
        return err(r::EINVAL);
    }
    k.lx_out_bytes(tid, c.args[2], &1u64.to_le_bytes())?;
    Ok(8)
}

pub(super) fn getrandom(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let len = c.args[1].min(super::MAX_IO);
    let mut buf = vec![0u8; len];
    k.rng.fill(&mut buf);
    k.lx_out_bytes(tid, c.args[0], &buf)?;
    Ok(len)
}
