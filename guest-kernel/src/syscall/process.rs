//! Process calls: exit, waitpid, kill, clone, fexec, umask, getpgid/setpgid.
//!
//! - `exit(status)` from a process's main thread ends the whole process (all
//!   its threads); from a `CLONE_THREAD` thread it ends only that thread.
//! - `waitpid(pid, status_ptr, options)`: `pid > 0` one child, any other value
//!   any child (there are no process groups to wait for); `WNOHANG`; ECHILD
//!   when nothing matches. The status uses warden_abi's `w_exitcode` /
//!   `w_termsig` encoding.
//! - `clone(flags, stack)`: the child gets the caller's registers with rax 0;
//!   if `stack` (the second argument, a warden extension) is non-zero the
//!   child's rsp is set to it, otherwise the child runs on the same rsp (the
//!   Redox runtime's way: it switches stacks itself around the call).
//! - `fexec(fd, args, argc, envs, envc)`: the whole new image is built before
//!   the old one is dropped, so a failing exec returns its error to the
//!   caller. On success the exec'd descriptor `fd` is closed in the new image
//!   (besides every close-on-exec descriptor).

use std::cell::RefCell;
use std::rc::Rc;

use emu::{reg, Cpu};
use warden_abi::*;

use super::{errno, Call, SysError, SysResult};
use crate::mm::Mm;
use crate::process::{FdTable, OnWake, ProcState, Process, Thread, WaitOn};
use crate::usercopy::copy_out;
use crate::{Kernel, Pid};

impl Kernel {
    /// What a waiter sees among the children `matches` selects: `None` when
    /// there are none, else the first zombie among them (pid, status), if any.
    /// Shared by both personalities' wait calls.
    pub(crate) fn zombie_child(&self, matches: impl Fn(&Process) -> bool) -> Option<Option<(Pid, usize)>> {
        let mut any = false;
        for p in self.procs.values().filter(|p| matches(p)) {
            if let ProcState::Zombie(status) = p.state {
                return Some(Some((p.pid, status)));
            }
            any = true;
        }
        any.then_some(None)
    }

    pub(crate) fn sys_kill(&mut self, tid: Pid, pid: isize, sig: usize) -> SysResult {
        if sig >= NSIG {
            return errno(EINVAL);
        }
        if pid == -1 {
            if let Some(jail) = self.jail_view(tid) {
                return self.jailed_kill_all(tid, &jail, sig);
            }
        }
        let me = self.pid_of(tid)?;
        let sender = self.procs.get(&me).ok_or(Errno(ESRCH))?;
        let info = crate::jobs::SigInfo { code: crate::jobs::SI_USER, pid: me, uid: sender.uid, status: 0, value: 0 };
        // 0: the caller's process group; below -1: the group -pid.
        let group = match pid {
            0 => Some(sender.pgid),
            p if p < -1 => Some(p.unsigned_abs() as Pid),
            _ => None,
        };
        let targets: Vec<Pid> = if let Some(g) = group {
            self.procs.values().filter(|p| p.pgid == g && p.state == ProcState::Alive).map(|p| p.pid).collect()
        } else if pid == -1 {
            self.procs
                .values()
                .filter(|p| p.pid != 1 && p.pid != me && p.state == ProcState::Alive)
                .map(|p| p.pid)
                .collect()
        } else {
            vec![pid as Pid]
        };
        // A jailed sender reaches only the members of a group inside its jail.
        let jail = if group.is_some() { self.jail_view(tid) } else { None };
        let mut hit = false;
        for target in targets {
            if jail.as_ref().is_some_and(|j| !self.in_jail(j, target)) {
                continue;
            }
            if self.procs.get(&target).is_some_and(|p| p.state == ProcState::Alive) {
                hit = true;
                if sig != 0 {
                    self.post_signal_info(target, sig, info);
                }
            }
        }
        if hit {
            Ok(0)
        } else {
            errno(ESRCH)
        }
    }

    fn live_tasks(&self) -> usize {
        let zombies = self.procs.values().filter(|p| matches!(p.state, ProcState::Zombie(_))).count();
        self.threads.len() + zombies
    }

    pub(crate) fn sys_clone(&mut self, tid: Pid, flags: usize, stack: usize) -> SysResult {
        if self.live_tasks() >= self.config.limits.max_processes {
            return errno(EAGAIN);
        }
        let parent = self.threads.get(&tid).ok_or(Errno(ESRCH))?;
        let mut cpu: Cpu = parent.cpu.clone();
        let sigmask = parent.sigmask;
        cpu.gpr[reg::RAX] = 0;
        if stack != 0 {
            cpu.gpr[reg::RSP] = stack as u64;
        }
        let pid = parent.pid;
        if flags & CLONE_THREAD != 0 {
            if flags & CLONE_VM == 0 {
                return errno(EINVAL);
            }
            let child = self.alloc_id();
            let mut thread = Thread::new(child, pid, cpu);
            thread.sigmask = sigmask;
            self.threads.insert(child, thread);
            if let Some(p) = self.procs.get_mut(&pid) {
                p.threads.push(child);
            }
            self.sched.run_queue.push_back(child);
            return Ok(child as usize);
        }
        let p = self.procs.get(&pid).ok_or(Errno(ESRCH))?;
        let mm = if flags & CLONE_VM != 0 {
            p.mm.clone()
        } else {
            let id = self.next_object_id;
            let forked = p.mm.borrow().fork(id)?;
            Rc::new(RefCell::new(forked))
        };
        if flags & CLONE_VM == 0 {
            self.next_object_id += 1;
        }
        let files =
            if flags & CLONE_FILES != 0 { p.files.clone() } else { Rc::new(RefCell::new(p.files.borrow().clone())) };
        let fs = if flags & CLONE_FS != 0 { p.fs.clone() } else { Rc::new(RefCell::new(p.fs.borrow().clone())) };
        let sighand = if flags & CLONE_SIGHAND != 0 {
            p.sighand.clone()
        } else {
            Rc::new(RefCell::new(p.sighand.borrow().clone()))
        };
        let (uid, gid, pgid, cmdline) = (p.uid, p.gid, p.pgid, p.cmdline.clone());
        let restrict = p.restrict.clone();
        let job = p.job.forked();
        let child = self.alloc_id();
        let process = Process {
            pid: child,
            ppid: pid,
            pgid,
            uid,
            gid,
            mm,
            files,
            fs,
            sighand,
            threads: vec![child],
            pending: 0,
            state: ProcState::Alive,
            cmdline,
            vfork_parent: (flags & CLONE_VFORK != 0).then_some(tid),
            restrict,
            job,
            siginfo: Default::default(),
        };
        self.procs.insert(child, process);
        let mut thread = Thread::new(child, child, cpu);
        thread.sigmask = sigmask;
        self.threads.insert(child, thread);
        self.sched.run_queue.push_back(child);
        self.stats.processes += 1;
        if self.debug.is_some() {
            self.debug_forked(tid, child);
        }
        if flags & CLONE_VFORK != 0 {
            return Err(SysError::Block(super::Block {
                on: WaitOn::Vfork(child),
                deadline: None,
                on_timeout: Ok(child as usize),
                on_wake: OnWake::Return(Ok(child as usize)),
            }));
        }
        Ok(child as usize)
    }

    /// Replaces the image of `tid`'s process with the program in `bytes`.
    /// On error nothing has changed.
    pub(crate) fn exec(&mut self, tid: Pid, bytes: &[u8], args: Vec<Vec<u8>>, envs: Vec<Vec<u8>>) -> Result<(), Errno> {
        let pid = self.pid_of(tid)?;
        let size = self.config.address_space_size;
        let (exe, execfn) = self.linux.exec_path.take().unwrap_or_else(|| {
            let first = args.first().cloned().unwrap_or_default();
            (first.clone(), first)
        });
        let force = self.linux.force.take();
        let image = crate::elf::parse(bytes, size)?;
        let personality = force.unwrap_or_else(|| crate::linux::personality_of(bytes));
        // A dynamically linked program: its interpreter (Linux only) is loaded beside it.
        let interp = match (&image.interp, personality) {
            (None, _) => None,
            (Some(_), crate::linux::Personality::Redox) => return Err(Errno(ENOEXEC)),
            (Some(path), crate::linux::Personality::Linux) => Some(self.linux_interpreter(tid, path)?),
        };
        let id = self.alloc_object_id();
        let mut mm = Mm::new(id, size, self.config.limits.max_memory_per_process)?.charged_to(&self.mem_total);
        if self.config.jit_warm_up {
            // Its start-up runs in the interpreter (its forks' too): not worth translating.
            mm.space.warm_up_jit();
        }
        if let Some((interp_image, interp_bytes)) = &interp {
            crate::elf::load(interp_image, interp_bytes, &mut mm)?;
        }
        crate::elf::load(&image, bytes, &mut mm)?;
        mm.map_trampoline()?;
        let mut random = [0u8; 16];
        self.rng.fill(&mut random);
        let (rsp, linux_start) = match personality {
            crate::linux::Personality::Redox => {
                (crate::elf::build_stack(&mut mm, &image, &args, &envs, random, self.config.stack_size)?, None)
            }
            crate::linux::Personality::Linux => {
                let p = self.procs.get(&pid).ok_or(Errno(ESRCH))?;
                let ids = crate::linux::exec::Ids { uid: p.uid, gid: p.gid, cpu: self.config.cpu };
                let interp_base = interp.as_ref().map_or(0, |(i, _)| i.base);
                crate::linux::build_stack(
                    &mut mm,
                    &image,
                    interp_base,
                    &args,
                    &envs,
                    random,
                    self.config.stack_size,
                    &execfn,
                    ids,
                )
                .map(|(rsp, start)| (rsp, Some(start)))?
            }
        };

        // Commit: nothing below fails.
        let mut cpu = Cpu::new();
        cpu.rip = interp.as_ref().map_or(image.entry, |(i, _)| i.entry);
        cpu.gpr[reg::RSP] = rsp;
        let others: Vec<Pid> = self.procs.get(&pid).map(|p| p.threads.clone()).unwrap_or_default();
        for other in others.into_iter().filter(|&t| t != tid) {
            self.exit_thread(other);
        }
        let mut dropped = Vec::new();
        let mut vfork_parent = None;
        if let Some(p) = self.procs.get_mut(&pid) {
            p.mm = Rc::new(RefCell::new(mm));
            // Unshare the descriptor table, drop close-on-exec descriptors.
            let table: FdTable = p.files.borrow().clone();
            p.files = Rc::new(RefCell::new(table));
            dropped = p.files.borrow_mut().take_cloexec();
            // Handlers do not survive exec; ignored signals stay ignored.
            let mut handlers = p.sighand.borrow().clone();
            for action in handlers.actions.iter_mut() {
                if action.sa.sa_handler != SIG_IGN {
                    *action = Default::default();
                }
            }
            p.sighand = Rc::new(RefCell::new(handlers));
            p.cmdline = args;
            p.job.execed = true;
            vfork_parent = p.vfork_parent.take();
            if let Some(main) = p.threads.first_mut() {
                *main = tid;
            }
            p.threads.truncate(1);
        }
        drop(dropped);
        if let Some(t) = self.threads.get_mut(&tid) {
            cpu.icount = t.cpu.icount;
            cpu.model = t.cpu.model;
            cpu.tier = t.cpu.tier;
            cpu.rand_state = t.cpu.rand_state;
            t.cpu = cpu;
        }
        self.linux_exec_done(pid, tid, exe, linux_start);
        if self.debug.is_some() {
            self.debug_execed(pid, tid);
        }
        if let Some(parent) = vfork_parent {
            self.wake_where(|on| on == WaitOn::Vfork(pid), Some(parent));
        }
        Ok(())
    }
}

// --- handlers (rows of `warden_abi::redox_calls!`) -------------------------------------------

pub(super) fn exit(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let status = c.args[0];
    let pid = k.pid_of(tid)?;
    let is_main = k.procs.get(&pid).is_some_and(|p| p.threads.first() == Some(&tid));
    if is_main {
        k.terminate_process(pid, w_exitcode(status as u8));
    } else {
        k.exit_thread(tid);
    }
    Err(SysError::NoReturn)
}

pub(super) fn waitpid(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let [pid, status_addr, options, ..] = c.args;
    let pid = pid as isize;
    let me = k.pid_of(tid)?;
    let Some(found) = k.zombie_child(|p| p.ppid == me && (pid <= 0 || p.pid as isize == pid)) else {
        return errno(ECHILD);
    };
    if let Some((child, status)) = found {
        if status_addr != 0 {
            let mm = k.mm_of(tid)?;
            copy_out(&mut mm.borrow_mut().space.mem, status_addr, &(status as u64).to_le_bytes())?;
        }
        k.procs.remove(&child);
        return Ok(child as usize);
    }
    if options & WNOHANG != 0 {
        return Ok(0);
    }
    Err(super::Block::retry(WaitOn::Child(me)))
}

pub(super) fn kill(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    k.sys_kill(tid, c.args[0] as isize, c.args[1])
}

pub(super) fn getpid(k: &mut Kernel, tid: Pid, _: &Call) -> SysResult {
    Ok(k.pid_of(tid)? as usize)
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

pub(super) fn getpgid(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let pid = c.args[0];
    let target = if pid == 0 { k.pid_of(tid)? } else { pid as Pid };
    let p = k.procs.get(&target).ok_or(Errno(ESRCH))?;
    Ok(p.pgid as usize)
}

pub(super) fn setpgid(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let [pid, pgid, ..] = c.args;
    let me = k.pid_of(tid)?;
    let target = if pid == 0 { me } else { pid as Pid };
    let pgid = if pgid == 0 { target } else { pgid as Pid };
    let p = k.procs.get_mut(&target).ok_or(Errno(ESRCH))?;
    if p.pid != me && p.ppid != me {
        return errno(ESRCH);
    }
    p.pgid = pgid;
    Ok(0)
}

pub(super) fn umask(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let mask = c.args[0];
    let fs = k.proc_of(tid)?.fs.clone();
    let mut fs = fs.borrow_mut();
    let old = fs.umask;
    fs.umask = (mask & 0o777) as u32;
    Ok(old as usize)
}

/// `clone`; children of supervised processes are supervised from their first instruction.
pub(super) fn clone(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let result = k.sys_clone(tid, c.args[0], c.args[1]);
    k.supervise_cloned(tid, c.args[0], &result);
    result
}

pub(super) fn fexec(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let fd = c.args[0];
    let desc = k.desc(tid, fd)?;
    let bytes = crate::elf::read_program(&desc.file)?;
    drop(desc);
    k.exec(tid, &bytes, c.strings(ITEM_ARG), c.strings(ITEM_ENV))?;
    // The program's own descriptor does not survive into it.
    if let Ok(p) = k.proc_of(tid) {
        let files = p.files.clone();
        let entry = files.borrow_mut().remove(fd);
        drop(entry);
    }
    Err(SysError::NoReturn)
}

pub(super) fn yield_now(k: &mut Kernel, _: Pid, _: &Call) -> SysResult {
    k.sched.yield_requested = true;
    Ok(0)
}

pub(super) fn supervise(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    k.sys_supervise(tid, c.args[0], c.args[1])
}

pub(super) fn mask(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    k.sys_mask(tid, c)
}

pub(super) fn jail(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    k.sys_jail(tid, c)
}
