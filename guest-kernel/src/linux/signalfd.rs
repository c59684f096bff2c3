//! Taking signals as data: `signalfd`, `signalfd4` and `rt_sigtimedwait`.
//!
//! A signalfd holds only its mask; reading it takes, for the reading thread, the pending
//! signals in that mask (its own first, then its process's, lowest number first), one
//! 128-byte `signalfd_siginfo` each, and blocks while there is none. `poll`/`epoll` see it
//! readable while one is pending. Programs block those signals first (else a handler or the
//! default action takes them on delivery, as on Linux). `rt_sigtimedwait` takes one the
//! same way, waiting up to its timeout (EAGAIN after it).
//!
//! Waiting: every signal posted to a process wakes [`signal_key`] of that process
//! (`crate::signal`), so a blocked reader looks again.
//!
//! Who sent a signal and why (`ssi_pid`, `ssi_uid`, `ssi_code`, a child's `ssi_status`) is
//! what the send recorded ([`crate::jobs::SigInfo`]), as in `siginfo_t`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use warden_abi as r;
use warden_abi::{Errno, Stat};

use super::abi::le64;
use crate::jobs::SigInfo;
use crate::process::{OnWake, OpenFile, WaitOn};
use crate::scheme::{FileOps, IoResult, WaitKey};
use crate::signal::{sig_bit, UNBLOCKABLE};
use crate::syscall::{Block, Call, SysError, SysResult};
use crate::usercopy::{check_writable, copy_out};
use crate::{Kernel, Pid};

const SFD_CLOEXEC: usize = 0o2000000;
const SFD_NONBLOCK: usize = 0o4000;
/// `struct signalfd_siginfo` and `siginfo_t` are both 128 bytes.
const INFO_SIZE: usize = 128;
/// Wait keys of signal arrival live in their own range (bits 63 and 58 set).
const SIGNAL_KEY_BASE: u64 = 1 << 63 | 1 << 58;

fn err<T>(e: i32) -> Result<T, SysError> {
    Err(SysError::Errno(Errno(e)))
}

/// The key woken whenever a signal is posted to process `pid`.
pub(crate) fn signal_key(pid: Pid) -> WaitKey {
    WaitKey(SIGNAL_KEY_BASE | pid as u64)
}

struct SignalFd {
    id: u64,
    mask: Cell<u64>,
}

impl FileOps for SignalFd {
    /// Reads are the kernel's ([`Kernel::lx_signalfd_read`]): only it sees pending signals.
    fn read(&mut self, _buf: &mut [u8]) -> IoResult<usize> {
        Err(Errno(r::EINVAL).into())
    }
    fn write(&mut self, _buf: &[u8]) -> IoResult<usize> {
        Err(Errno(r::EINVAL).into())
    }
    fn stat(&self) -> Result<Stat, Errno> {
        Ok(Stat { st_dev: 8, st_ino: self.id, st_mode: 0o600, st_nlink: 1, ..Stat::default() })
    }
    fn path(&self) -> Vec<u8> {
        b"anon_inode:[signalfd]".to_vec()
    }
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

/// The mask of the signalfd `desc` is, if it is one.
pub(super) fn signalfd_mask(desc: &OpenFile) -> Option<u64> {
    let file = desc.file.try_borrow().ok()?;
    Some(file.as_any()?.downcast_ref::<SignalFd>()?.mask.get())
}

/// A `signalfd_siginfo` for `sig` sent as `info` says (`ssi_signo`, `ssi_code`, `ssi_pid`,
/// `ssi_uid`, a child's `ssi_status`, `sigqueue`'s `ssi_int`/`ssi_ptr`).
fn signalfd_info(sig: usize, info: &SigInfo) -> [u8; INFO_SIZE] {
    let mut out = [0u8; INFO_SIZE];
    out[..4].copy_from_slice(&(sig as u32).to_le_bytes());
    out[8..12].copy_from_slice(&info.code.to_le_bytes());
    out[12..16].copy_from_slice(&info.pid.to_le_bytes());
    out[16..20].copy_from_slice(&info.uid.to_le_bytes());
    if sig == r::SIGCHLD {
        out[40..44].copy_from_slice(&info.status.to_le_bytes());
    }
    // `ssi_int` and `ssi_ptr`: the value `sigqueue` sent.
    out[44..48].copy_from_slice(&(info.value as u32).to_le_bytes());
    out[48..56].copy_from_slice(&info.value.to_le_bytes());
    out
}

/// A `siginfo_t` for `sig` sent as `info` says.
fn siginfo(sig: usize, info: &SigInfo) -> [u8; INFO_SIZE] {
    let mut out = [0u8; INFO_SIZE];
    let head = super::signal::siginfo_bytes(sig, info);
    out[..head.len()].copy_from_slice(&head);
    out
}

impl Kernel {
    /// The signals pending for thread `tid` (its own and its process's).
    fn lx_pending(&self, tid: Pid) -> u64 {
        let own = self.threads.get(&tid).map_or(0, |t| t.pending);
        let shared = self.proc_of(tid).map_or(0, |p| p.pending);
        own | shared
    }

    /// True if a signal in `mask` is pending for `tid` (a signalfd is readable).
    pub(super) fn lx_signal_ready(&self, tid: Pid, mask: u64) -> bool {
        self.lx_pending(tid) & mask != 0
    }

    /// Takes the lowest pending signal in `mask` for thread `tid` (its own first), with who
    /// sent it.
    fn lx_take_signal(&mut self, tid: Pid, mask: u64) -> Option<(usize, SigInfo)> {
        let own = self.threads.get(&tid).map_or(0, |t| t.pending) & mask;
        if own != 0 {
            let sig = own.trailing_zeros() as usize + 1;
            let t = self.threads.get_mut(&tid)?;
            t.pending &= !sig_bit(sig);
            return Some((sig, t.siginfo.get(sig).copied().unwrap_or_default()));
        }
        let pid = self.pid_of(tid).ok()?;
        let p = self.procs.get_mut(&pid)?;
        let shared = p.pending & mask;
        if shared == 0 {
            return None;
        }
        let sig = shared.trailing_zeros() as usize + 1;
        p.pending &= !sig_bit(sig);
        Some((sig, p.siginfo.get(sig).copied().unwrap_or_default()))
    }

    /// `read` of a signalfd with mask `mask` into `[addr, addr + len)`.
    pub(super) fn lx_signalfd_read(
        &mut self,
        tid: Pid,
        desc: &OpenFile,
        mask: u64,
        (addr, len): (usize, usize),
    ) -> SysResult {
        let max = len / INFO_SIZE;
        if max == 0 {
            return err(r::EINVAL);
        }
        let mm = self.mm_of(tid)?;
        check_writable(&mm.borrow().space.mem, addr, max * INFO_SIZE)?;
        let mut out = Vec::new();
        while out.len() < max * INFO_SIZE {
            let Some((sig, info)) = self.lx_take_signal(tid, mask) else { break };
            out.extend_from_slice(&signalfd_info(sig, &info));
        }
        if out.is_empty() {
            if desc.flags.get() & r::O_NONBLOCK != 0 {
                return err(r::EAGAIN);
            }
            return Err(Block::retry(WaitOn::Key(signal_key(self.pid_of(tid)?))));
        }
        copy_out(&mut mm.borrow_mut().space.mem, addr, &out)?;
        Ok(out.len())
    }
}

/// `signalfd4(fd, mask, sizemask, flags)`: a new signalfd (`fd` -1) or a new mask for one.
fn signalfd_at(k: &mut Kernel, tid: Pid, c: &Call, flags: usize) -> SysResult {
    let [fd, _, size, ..] = c.args;
    if size != 8 || flags & !(SFD_CLOEXEC | SFD_NONBLOCK) != 0 {
        return err(r::EINVAL);
    }
    let mask = le64(c.input(1).ok_or(Errno(r::EFAULT))?, 0) & !UNBLOCKABLE;
    if fd as i32 != -1 {
        let desc = k.desc(tid, fd)?;
        let file = desc.file.try_borrow().map_err(|_| Errno(r::EIO))?;
        let sfd = file.as_any().and_then(|a| a.downcast_ref::<SignalFd>()).ok_or(Errno(r::EINVAL))?;
        sfd.mask.set(mask);
        return Ok(fd);
    }
    let file = SignalFd { id: k.alloc_object_id(), mask: Cell::new(mask) };
    let status = if flags & SFD_NONBLOCK != 0 { r::O_NONBLOCK } else { 0 };
    Ok(k.install_fd(tid, Rc::new(RefCell::new(file)), r::O_RDONLY | status, flags & SFD_CLOEXEC != 0)?)
}

// --- handlers (rows of `warden_abi::linux_calls!`) -------------------------------------------

pub(super) fn signalfd(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    signalfd_at(k, tid, c, 0)
}

pub(super) fn signalfd4(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    signalfd_at(k, tid, c, c.args[3])
}

/// `rt_sigtimedwait(set, info, timeout, sigsetsize)`: the signal number taken.
pub(super) fn rt_sigtimedwait(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let [_, info_at, _, size, ..] = c.args;
    if size != 8 {
        return err(r::EINVAL);
    }
    let mask = le64(c.input(0).ok_or(Errno(r::EFAULT))?, 0) & !UNBLOCKABLE;
    let timeout = super::fs::timeout(c, 2)?;
    if let Some((sig, info)) = k.lx_take_signal(tid, mask) {
        if info_at != 0 {
            copy_out(&mut k.mm_of(tid)?.borrow_mut().space.mem, info_at, &siginfo(sig, &info))?;
        }
        return Ok(sig);
    }
    if timeout == Some(0) {
        return err(r::EAGAIN);
    }
    // The deadline is kept across re-runs as poll's is (`lx_wait_ready`'s rule).
    let now = k.clock.monotonic_ns();
    let icount = k.threads.get(&tid).map_or(0, |t| t.cpu.icount);
    let lt = k.linux.threads.entry(tid).or_default();
    let deadline = match lt.poll_wait {
        Some((at, deadline)) if at == icount => deadline,
        _ => timeout.map(|ns| now.saturating_add(ns)),
    };
    if deadline.is_some_and(|d| d <= now) {
        lt.poll_wait = None;
        return err(r::EAGAIN);
    }
    lt.poll_wait = Some((icount, deadline));
    let pid = k.pid_of(tid)?;
    Err(SysError::Block(Block {
        on: WaitOn::Key(signal_key(pid)),
        deadline,
        on_timeout: Err(Errno(r::EAGAIN)),
        on_wake: OnWake::Retry,
    }))
}

/// `rt_sigqueueinfo(pid, sig, info)` (`sigqueue`): posts `sig` to process `pid` with the
/// caller's `siginfo_t` (its code, pid, uid and value). As on Linux, a process may send
/// itself any code, others only negative codes other than SI_TKILL (EPERM).
pub(super) fn rt_sigqueueinfo(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let [pid, sig, ..] = c.args;
    let info = queued_info(k, tid, pid, sig, c.input(2))?;
    if !k.procs.get(&(pid as Pid)).is_some_and(|p| p.state == crate::process::ProcState::Alive) {
        return err(r::ESRCH);
    }
    if let Some(info) = info {
        k.post_signal_info(pid as Pid, sig, info);
    }
    Ok(0)
}

/// `rt_tgsigqueueinfo(tgid, tid, sig, info)` (`pthread_sigqueue`): as `rt_sigqueueinfo`, to
/// thread `tid` of process `tgid` (ESRCH if it is not one).
pub(super) fn rt_tgsigqueueinfo(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let [tgid, target, sig, ..] = c.args;
    if tgid as i32 <= 0 || target as i32 <= 0 {
        return err(r::EINVAL);
    }
    let info = queued_info(k, tid, tgid, sig, c.input(3))?;
    if k.threads.get(&(target as Pid)).is_none_or(|t| t.pid != tgid as Pid) {
        return err(r::ESRCH);
    }
    if let Some(info) = info {
        k.post_thread_signal_info(target as Pid, sig, info);
    }
    Ok(0)
}

/// The checks both queueing calls make, and what they send (`None`: nothing to post, a
/// signal 0 or one of the real-time signals, which are never raised).
fn queued_info(
    k: &Kernel,
    tid: Pid,
    pid: usize,
    sig: usize,
    bytes: Option<&[u8]>,
) -> Result<Option<SigInfo>, SysError> {
    let bytes = bytes.ok_or(Errno(r::EFAULT))?;
    let code = super::abi::le32(bytes, 8) as i32;
    if sig >= 65 {
        return err(r::EINVAL);
    }
    if pid as Pid != k.pid_of(tid)? && (code >= 0 || code == crate::jobs::SI_TKILL) {
        return err(r::EPERM);
    }
    let (pid, uid) = (super::abi::le32(bytes, 16), super::abi::le32(bytes, 20));
    Ok((sig != 0 && sig < r::NSIG).then(|| SigInfo { code, pid, uid, status: 0, value: le64(bytes, 24) }))
}
