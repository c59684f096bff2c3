//! `inotify_init`, `inotify_init1`, `inotify_add_watch`, `inotify_rm_watch`: change events for
//! what the guest itself does to files.
//!
//! Watches name absolute guest paths (resolved when added; a watched file that is renamed
//! keeps its old path here). The Linux file calls report what they change
//! ([`Kernel::lx_notify`]): `IN_CREATE` (open with `O_CREAT` of a new file, `mkdir`,
//! `symlink`, `link`), `IN_MODIFY` (`write` and the calls that write for it, `truncate`),
//! `IN_ATTRIB` (`chmod`, `utimensat`), `IN_DELETE` (`unlink`, `rmdir`), `IN_MOVED_FROM` and
//! `IN_MOVED_TO` (rename, one cookie per rename), and to a watch on the object itself
//! `IN_MODIFY`, `IN_ATTRIB`, `IN_DELETE_SELF` (then `IN_IGNORED`, and the watch goes) and
//! `IN_MOVE_SELF`. A watch on a directory names the child in the event. As on Linux, an event
//! identical to the last unread one is not queued again, and a read takes whole events
//! (EINVAL if the first does not fit).
//!
//! Use as well as change: `IN_OPEN` when a Linux `open`/`openat` of a file or directory
//! succeeds, `IN_ACCESS` after a `read` (any variant) or an in-kernel copy (`sendfile`,
//! `splice`, `copy_file_range`) took bytes from it and after every `getdents64` of a
//! directory, and `IN_CLOSE_WRITE` (opened for writing) or `IN_CLOSE_NOWRITE` when the last
//! descriptor of that open is gone (`close`, `dup2` over it, exec, exit: the kernel looks
//! after each system call). These carry `IN_ISDIR` for a directory, to its own watch too.
//! Only opens made while an inotify instance exists are reported closed.
//!
//! Not reported: opens the exec loader makes, FIFOs, and changes made by the host or by
//! Redox programs.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::{Rc, Weak};

use warden_abi as r;
use warden_abi::{Errno, Stat};

use crate::process::OpenFile;
use crate::scheme::{FileOps, IoError, IoResult, Readiness, WaitKey};
use crate::syscall::{Call, SysError, SysResult};
use crate::{Kernel, Pid, Waker};

const IN_ACCESS: u32 = 0x1;
pub(super) const IN_MODIFY: u32 = 0x2;
pub(super) const IN_ATTRIB: u32 = 0x4;
const IN_CLOSE_WRITE: u32 = 0x8;
const IN_CLOSE_NOWRITE: u32 = 0x10;
const IN_OPEN: u32 = 0x20;
const IN_MOVED_FROM: u32 = 0x40;
const IN_MOVED_TO: u32 = 0x80;
pub(super) const IN_CREATE: u32 = 0x100;
const IN_DELETE: u32 = 0x200;
const IN_DELETE_SELF: u32 = 0x400;
const IN_MOVE_SELF: u32 = 0x800;
const IN_IGNORED: u32 = 0x8000;
pub(super) const IN_ISDIR: u32 = 0x4000_0000;
const IN_ONLYDIR: u32 = 0x0100_0000;
const IN_DONT_FOLLOW: u32 = 0x0200_0000;
const IN_EXCL_UNLINK: u32 = 0x0400_0000;
const IN_MASK_CREATE: u32 = 0x1000_0000;
const IN_MASK_ADD: u32 = 0x2000_0000;
const IN_ONESHOT: u32 = 0x8000_0000;
/// Every event a watch can ask for.
const IN_ALL_EVENTS: u32 = 0xfff;
const IN_CLOEXEC: usize = 0o2000000;
const IN_NONBLOCK: usize = 0o4000;
/// `struct inotify_event` without its name.
const EVENT_HEADER: usize = 16;
/// Events an instance keeps unread (Linux's default `max_queued_events`).
const MAX_QUEUED: usize = 16384;
/// Wait keys of inotify instances live in their own range (bits 60 and 58 set).
const INOTIFY_KEY_BASE: u64 = 1 << 60 | 1 << 58;

fn err<T>(e: i32) -> Result<T, SysError> {
    Err(SysError::Errno(Errno(e)))
}

/// One event: watch, mask, cookie, name.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Event {
    wd: i32,
    mask: u32,
    cookie: u32,
    name: Vec<u8>,
}

impl Event {
    /// `struct inotify_event` with its name NUL-padded to a multiple of 16 bytes.
    fn bytes(&self) -> Vec<u8> {
        let len = if self.name.is_empty() { 0 } else { (self.name.len() + 1).div_ceil(16) * 16 };
        let mut out = Vec::with_capacity(EVENT_HEADER + len);
        out.extend_from_slice(&self.wd.to_le_bytes());
        out.extend_from_slice(&self.mask.to_le_bytes());
        out.extend_from_slice(&self.cookie.to_le_bytes());
        out.extend_from_slice(&(len as u32).to_le_bytes());
        out.extend_from_slice(&self.name);
        out.resize(EVENT_HEADER + len, 0);
        out
    }
}

/// An instance's watches and queue, shared with the kernel's list (`LinuxState::inotify`).
#[derive(Debug, Default)]
pub(crate) struct Instance {
    id: u64,
    /// wd → (absolute path, mask).
    watches: BTreeMap<i32, (Vec<u8>, u32)>,
    next_wd: i32,
    queue: VecDeque<Event>,
}

impl Instance {
    fn key(&self) -> WaitKey {
        WaitKey(INOTIFY_KEY_BASE | self.id)
    }

    fn push(&mut self, event: Event) {
        if self.queue.back() == Some(&event) || self.queue.len() >= MAX_QUEUED {
            return;
        }
        self.queue.push_back(event);
    }
}

struct InotifyFile {
    state: Rc<RefCell<Instance>>,
    waker: Waker,
}

impl FileOps for InotifyFile {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        let mut st = self.state.try_borrow_mut().map_err(|_| Errno(r::EIO))?;
        let Some(first) = st.queue.front() else {
            return Err(IoError::WouldBlock(st.key()));
        };
        if first.bytes().len() > buf.len() {
            return Err(Errno(r::EINVAL).into());
        }
        let mut n = 0;
        while let Some(e) = st.queue.front() {
            let b = e.bytes();
            if n + b.len() > buf.len() {
                break;
            }
            buf[n..n + b.len()].copy_from_slice(&b);
            n += b.len();
            st.queue.pop_front();
        }
        Ok(n)
    }
    fn write(&mut self, _buf: &[u8]) -> IoResult<usize> {
        Err(Errno(r::EINVAL).into())
    }
    fn stat(&self) -> Result<Stat, Errno> {
        let id = self.state.try_borrow().map_or(0, |s| s.id);
        Ok(Stat { st_dev: 8, st_ino: id, st_mode: 0o600, st_nlink: 1, ..Stat::default() })
    }
    fn path(&self) -> Vec<u8> {
        b"anon_inode:inotify".to_vec()
    }
    fn readiness(&self) -> Option<Readiness> {
        Some(Readiness { read: self.state.try_borrow().is_ok_and(|s| !s.queue.is_empty()), ..Readiness::default() })
    }
    fn close(&mut self) {
        if let Ok(s) = self.state.try_borrow() {
            self.waker.wake(s.key());
        }
    }
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

/// An open made while an instance existed, reported closed once nothing holds it.
pub(crate) struct Opened {
    desc: Weak<OpenFile>,
    abs: Vec<u8>,
    /// `IN_CLOSE_WRITE` or `IN_CLOSE_NOWRITE`, with `IN_ISDIR` for a directory.
    close: u32,
}

/// The guest path description `desc` names, with `IN_ISDIR` if it is a directory; `None`
/// if it is not a guest file.
fn watched(desc: &OpenFile) -> Option<(Vec<u8>, u32)> {
    let file = desc.file.try_borrow().ok()?;
    let abs = file.path().strip_prefix(b"file:")?.to_vec();
    let isdir = if file.stat().is_ok_and(|st| st.is_dir()) { IN_ISDIR } else { 0 };
    Some((abs, isdir))
}

/// The parent directory and last component of an absolute path.
fn split(abs: &[u8]) -> (&[u8], &[u8]) {
    match abs.iter().rposition(|&b| b == b'/') {
        Some(0) => (b"/", &abs[1..]),
        Some(i) => (&abs[..i], &abs[i + 1..]),
        None => (b"/", abs),
    }
}

impl Kernel {
    /// Queues, in order, the events `each` makes of every watch (wd, its path, its mask) of
    /// every instance; watches with `IN_ONESHOT` go after their first event, as do those
    /// `each` says are gone (`IN_IGNORED` follows).
    fn lx_queue(&mut self, mut each: impl FnMut(i32, &[u8], u32) -> (Vec<Event>, bool)) {
        self.linux.inotify.retain(|i| i.strong_count() > 0);
        for inst in &self.linux.inotify {
            let Some(inst) = inst.upgrade() else { continue };
            let Ok(mut st) = inst.try_borrow_mut() else { continue };
            let mut events = Vec::new();
            let mut gone = Vec::new();
            for (&wd, (path, wmask)) in &st.watches {
                let (mut evs, ends) = each(wd, path, *wmask);
                if ends || (wmask & IN_ONESHOT != 0 && !evs.is_empty()) {
                    gone.push(wd);
                }
                events.append(&mut evs);
            }
            for e in events {
                st.push(e);
            }
            for wd in gone {
                if st.watches.remove(&wd).is_some() {
                    st.push(Event { wd, mask: IN_IGNORED, cookie: 0, name: Vec::new() });
                }
            }
            if !st.queue.is_empty() {
                self.waker.wake(st.key());
            }
        }
    }

    /// Reports `mask` (`IN_CREATE`, `IN_MODIFY`, `IN_ATTRIB`, `IN_OPEN`, `IN_ACCESS`,
    /// `IN_CLOSE_*`; with `IN_ISDIR` for a directory) for the object at absolute path `abs`:
    /// to a watch on its directory (with its name), then to one on it (all but `IN_CREATE`).
    pub(super) fn lx_notify(&mut self, abs: &[u8], mask: u32) {
        if self.linux.inotify.is_empty() {
            return;
        }
        let (dir, name) = split(abs);
        let own = mask & (IN_MODIFY | IN_ATTRIB | IN_OPEN | IN_ACCESS | IN_CLOSE_WRITE | IN_CLOSE_NOWRITE);
        self.lx_queue(|wd, path, wmask| {
            let mut out = Vec::new();
            if path == dir && wmask & mask != 0 {
                out.push(Event { wd, mask, cookie: 0, name: name.to_vec() });
            }
            if path == abs && wmask & own != 0 {
                out.push(Event { wd, mask: own | mask & IN_ISDIR, cookie: 0, name: Vec::new() });
            }
            (out, false)
        });
    }

    /// `IN_OPEN` for the description `fd` of `tid` names (a new open), which is reported
    /// closed later ([`Kernel::lx_reap_closed`]).
    pub(super) fn lx_notify_open(&mut self, tid: Pid, fd: usize) {
        if self.linux.inotify.is_empty() {
            return;
        }
        let Ok(desc) = self.desc(tid, fd) else { return };
        let Some((abs, isdir)) = watched(&desc) else { return };
        let write = desc.flags.get() & r::O_ACCMODE != r::O_RDONLY;
        let close = isdir | if write { IN_CLOSE_WRITE } else { IN_CLOSE_NOWRITE };
        self.linux.opened.push(Opened { desc: Rc::downgrade(&desc), abs: abs.clone(), close });
        self.lx_notify(&abs, IN_OPEN | isdir);
    }

    /// `IN_ACCESS` for what `desc` names (bytes were read from it, or a directory listed).
    pub(crate) fn lx_notify_access(&mut self, desc: &OpenFile) {
        if self.linux.inotify.is_empty() {
            return;
        }
        if let Some((abs, isdir)) = watched(desc) {
            self.lx_notify(&abs, IN_ACCESS | isdir);
        }
    }

    /// `IN_CLOSE_*` for the opens nothing holds any more (after each system call).
    pub(crate) fn lx_reap_closed(&mut self) {
        if self.linux.opened.iter().all(|o| o.desc.strong_count() > 0) {
            return;
        }
        let (closed, open): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.linux.opened).into_iter().partition(|o| o.desc.strong_count() == 0);
        self.linux.opened = open;
        for o in closed {
            self.lx_notify(&o.abs, o.close);
        }
    }

    /// `abs` was removed (`unlink`, `rmdir`): to a watch on it `IN_ATTRIB` (a file's link
    /// count), `IN_DELETE_SELF` and `IN_IGNORED`; then `IN_DELETE` to its directory's.
    pub(super) fn lx_notify_delete(&mut self, abs: &[u8], is_dir: bool) {
        if self.linux.inotify.is_empty() {
            return;
        }
        let (dir, name) = split(abs);
        self.lx_queue(|wd, path, wmask| {
            let mut out = Vec::new();
            if path != abs {
                return (out, false);
            }
            if !is_dir && wmask & IN_ATTRIB != 0 {
                out.push(Event { wd, mask: IN_ATTRIB, cookie: 0, name: Vec::new() });
            }
            if wmask & IN_DELETE_SELF != 0 {
                out.push(Event { wd, mask: IN_DELETE_SELF, cookie: 0, name: Vec::new() });
            }
            (out, true)
        });
        let mask = IN_DELETE | if is_dir { IN_ISDIR } else { 0 };
        self.lx_queue(|wd, path, wmask| {
            let hit = path == dir && wmask & IN_DELETE != 0;
            (if hit { vec![Event { wd, mask, cookie: 0, name: name.to_vec() }] } else { Vec::new() }, false)
        });
    }

    /// `old` was renamed to `new`: `IN_MOVED_FROM` and `IN_MOVED_TO` (one cookie) to the
    /// directories' watches, then `IN_MOVE_SELF` to the object's, whose watches (and those
    /// under a moved directory) follow it to its new path.
    pub(super) fn lx_notify_rename(&mut self, old: &[u8], new: &[u8], is_dir: bool) {
        if self.linux.inotify.is_empty() {
            return;
        }
        self.linux.next_cookie = self.linux.next_cookie.wrapping_add(1).max(1);
        let cookie = self.linux.next_cookie;
        let isdir = if is_dir { IN_ISDIR } else { 0 };
        let ((odir, oname), (ndir, nname)) = (split(old), split(new));
        self.lx_queue(|wd, path, wmask| {
            let mut out = Vec::new();
            if path == odir && wmask & IN_MOVED_FROM != 0 {
                out.push(Event { wd, mask: IN_MOVED_FROM | isdir, cookie, name: oname.to_vec() });
            }
            if path == ndir && wmask & IN_MOVED_TO != 0 {
                out.push(Event { wd, mask: IN_MOVED_TO | isdir, cookie, name: nname.to_vec() });
            }
            (out, false)
        });
        self.lx_queue(|wd, path, wmask| {
            let hit = path == old && wmask & IN_MOVE_SELF != 0;
            (
                if hit {
                    vec![Event { wd, mask: IN_MOVE_SELF | isdir, cookie: 0, name: Vec::new() }]
                } else {
                    Vec::new()
                },
                false,
            )
        });
        for inst in self.linux.inotify.iter().filter_map(Weak::upgrade) {
            let Ok(mut st) = inst.try_borrow_mut() else { continue };
            for (path, _) in st.watches.values_mut() {
                if path.as_slice() == old {
                    *path = new.to_vec();
                } else if let Some(rest) = path.strip_prefix(old).filter(|r| r.first() == Some(&b'/')) {
                    *path = [new, rest].concat();
                }
            }
        }
    }

    /// `IN_MODIFY` for what description `desc` names, if it is a guest file (after a write).
    pub(crate) fn lx_notify_modified(&mut self, desc: &crate::process::OpenFile) {
        if self.linux.inotify.is_empty() {
            return;
        }
        let Ok(path) = desc.file.try_borrow().map(|f| f.path()) else { return };
        if let Some(abs) = path.strip_prefix(b"file:") {
            self.lx_notify(abs, IN_MODIFY);
        }
    }

    fn lx_instance(&self, tid: Pid, fd: usize) -> Result<Rc<RefCell<Instance>>, Errno> {
        let desc = self.desc(tid, fd)?;
        let file = desc.file.try_borrow().map_err(|_| Errno(r::EIO))?;
        let f = file.as_any().and_then(|a| a.downcast_ref::<InotifyFile>()).ok_or(Errno(r::EINVAL))?;
        Ok(f.state.clone())
    }
}

fn init(k: &mut Kernel, tid: Pid, flags: usize) -> SysResult {
    if flags & !(IN_CLOEXEC | IN_NONBLOCK) != 0 {
        return err(r::EINVAL);
    }
    let state = Rc::new(RefCell::new(Instance { id: k.alloc_object_id(), next_wd: 1, ..Instance::default() }));
    k.linux.inotify.retain(|i| i.strong_count() > 0);
    k.linux.inotify.push(Rc::downgrade(&state));
    let file = InotifyFile { state, waker: k.waker.clone() };
    let status = if flags & IN_NONBLOCK != 0 { r::O_NONBLOCK } else { 0 };
    Ok(k.install_fd(tid, Rc::new(RefCell::new(file)), r::O_RDONLY | status, flags & IN_CLOEXEC != 0)?)
}

// --- handlers (rows of `warden_abi::linux_calls!`) -------------------------------------------

pub(super) fn inotify_init(k: &mut Kernel, tid: Pid, _: &Call) -> SysResult {
    init(k, tid, 0)
}

pub(super) fn inotify_init1(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    init(k, tid, c.args[0])
}

pub(super) fn inotify_add_watch(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let [fd, _, mask, ..] = c.args;
    let mask = mask as u32;
    let known =
        IN_ALL_EVENTS | IN_ONLYDIR | IN_DONT_FOLLOW | IN_EXCL_UNLINK | IN_MASK_CREATE | IN_MASK_ADD | IN_ONESHOT;
    if mask & IN_ALL_EVENTS == 0 || mask & !known != 0 || mask & IN_MASK_ADD != 0 && mask & IN_MASK_CREATE != 0 {
        return err(r::EINVAL);
    }
    let inst = k.lx_instance(tid, fd)?;
    let abs = k.lx_abs_cwd(tid, c.path(1)?)?;
    let st = k.lx_stat_of(tid, &abs, mask & IN_DONT_FOLLOW != 0)?;
    if mask & IN_ONLYDIR != 0 && !st.is_dir() {
        return err(r::ENOTDIR);
    }
    let mut inst = inst.try_borrow_mut().map_err(|_| Errno(r::EIO))?;
    let existing = inst.watches.iter().find(|(_, (p, _))| *p == abs).map(|(&wd, &(_, m))| (wd, m));
    let kept = mask & (IN_ALL_EVENTS | IN_ONESHOT | IN_EXCL_UNLINK);
    if let Some((wd, old)) = existing {
        if mask & IN_MASK_CREATE != 0 {
            return err(r::EEXIST);
        }
        let new = if mask & IN_MASK_ADD != 0 { old | kept } else { kept };
        inst.watches.insert(wd, (abs, new));
        return Ok(wd as usize);
    }
    let wd = inst.next_wd;
    inst.next_wd = inst.next_wd.checked_add(1).ok_or(Errno(r::ENOSPC))?;
    inst.watches.insert(wd, (abs, kept));
    Ok(wd as usize)
}

pub(super) fn inotify_rm_watch(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let inst = k.lx_instance(tid, c.args[0])?;
    let wd = c.args[1] as i32;
    let mut st = inst.try_borrow_mut().map_err(|_| Errno(r::EIO))?;
    if st.watches.remove(&wd).is_none() {
        return err(r::EINVAL);
    }
    st.push(Event { wd, mask: IN_IGNORED, cookie: 0, name: Vec::new() });
    k.waker.wake(st.key());
    Ok(0)
}

/// Keeps the list's type in one place.
pub(crate) type InstanceList = Vec<Weak<RefCell<Instance>>>;

/// The opens to report closed ([`Opened`]).
pub(crate) type OpenedList = Vec<Opened>;
