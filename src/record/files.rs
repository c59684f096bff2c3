//! The files a recorded run used, and the check that a replay finds them unchanged.
//!
//! A run reads its root file system, so a replay must see the same files; but only the files
//! the guest actually touched matter (rr records what a program maps and reads the same
//! way). Walking the whole root instead costs seconds on `--root /` and refuses a replay
//! because some log file elsewhere changed.
//!
//! Design: the root scheme the kernel gets is a [`WatchedRoot`] around the [`Vfs`]. The
//! first time a path reaches it (an open, an exec, a `stat`, which the kernel does as an
//! open, an unlink, a rename, ...), before the operation runs, it takes the path's
//! [`Identity`]: its type, permission bits, size and a digest of what reading it gives (a
//! file's bytes, a directory's names, a symlink's target), or the errno of the lookup (a
//! file the guest looked for and did not find counts too: one found at replay would change
//! the run). Recording writes it as a file event into the trace, in run order between the
//! syscall events; replaying compares it with the next event and stops at the first file
//! that differs, naming it and what changed. Later uses of the same path are not checked
//! again: what the guest changes itself lives in the in-memory layer, which the replay
//! rebuilds by running.
//!
//! Owners, timestamps and inode numbers are not part of an identity, so a copy of the tree
//! (`cp -r`, a fresh checkout) replays; a guest that prints them (`ls -l`) still replays
//! exactly only on the same files, and then diverges at the write that differs.
//!
//! Cost: one more lookup per distinct path, and one read of each file the guest opens
//! (XXH3, at memory speed from the page cache): proportional to what the guest used, not to
//! the size of the root.

use std::collections::HashSet;
use std::fmt;
use std::rc::Rc;

use guest_kernel::record::TraceWriter;
use guest_kernel::vfs::Vfs;
use guest_kernel::{CallCtx, FileOps, FileRef, IoError, Scheme};
use warden_abi::{Errno, MODE_DIR, MODE_FILE, MODE_SYMLINK, MODE_TYPE, O_DIRECTORY, O_NOFOLLOW, O_RDONLY, O_SYMLINK};

use super::{Event, SharedSource};

/// What a path was when the guest first used it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    /// 0: the lookup failed (`mode` is the errno); 1 a regular file; 2 a directory; 3 a
    /// symbolic link (not followed); 4 anything else (a device, a FIFO).
    pub kind: u8,
    /// Permission bits, or the errno of a failed lookup.
    pub mode: u32,
    pub size: u64,
    /// XXH3-64 of what reading it gives: a file's bytes, a directory's entry names, a
    /// link's target; 0 for other kinds.
    pub digest: u64,
}

const KIND_MISSING: u8 = 0;
const KIND_FILE: u8 = 1;
const KIND_DIR: u8 = 2;
const KIND_SYMLINK: u8 = 3;

/// Looks up as uid 0: the identity is what is there, whatever the guest may read.
const CTX: CallCtx = CallCtx { pid: 0, uid: 0, gid: 0, umask: 0 };

impl Identity {
    /// The identity of `path` in `vfs` (`follow`: a final symlink is followed).
    pub fn of(vfs: &Vfs, path: &[u8], follow: bool) -> Identity {
        let stat = if follow { vfs.stat_path(path) } else { vfs.lstat_path(path) };
        let st = match stat {
            Ok(st) => st,
            Err(e) => return Identity { kind: KIND_MISSING, mode: e.0 as u32, size: 0, digest: 0 },
        };
        let kind = match u32::from(st.st_mode) & u32::from(MODE_TYPE) {
            t if t == u32::from(MODE_FILE) => KIND_FILE,
            t if t == u32::from(MODE_DIR) => KIND_DIR,
            t if t == u32::from(MODE_SYMLINK) => KIND_SYMLINK,
            _ => 4,
        };
        let digest = match kind {
            KIND_FILE | KIND_DIR | KIND_SYMLINK => contents_digest(vfs, path, kind),
            _ => 0,
        };
        Identity { kind, mode: u32::from(st.st_mode) & 0o7777, size: st.st_size, digest }
    }

    /// What differs between `self` (now) and `recorded`, for the divergence message.
    fn difference(&self, recorded: &Identity) -> String {
        if self.kind != recorded.kind {
            return format!("it was {}, it is now {}", recorded, self);
        }
        match self.kind {
            KIND_MISSING => format!("looking it up gave {}, it now gives {}", recorded, self),
            _ if self.size != recorded.size => {
                format!("its size was {}, it is now {}", recorded.size, self.size)
            }
            _ if self.mode != recorded.mode => format!("its mode was 0{:o}, it is now 0{:o}", recorded.mode, self.mode),
            KIND_DIR => "its entries differ".into(),
            KIND_SYMLINK => "its target differs".into(),
            _ => "its contents differ".into(),
        }
    }

    pub(super) fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.kind);
        super::put_varint(out, u64::from(self.mode));
        super::put_varint(out, self.size);
        out.extend_from_slice(&self.digest.to_le_bytes());
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            KIND_MISSING => write!(f, "{}", Errno(self.mode as i32).name()),
            KIND_FILE => write!(f, "a file of {} bytes", self.size),
            KIND_DIR => write!(f, "a directory"),
            KIND_SYMLINK => write!(f, "a symbolic link"),
            _ => write!(f, "a special file"),
        }
    }
}

/// XXH3 of everything a fresh handle reads from `path` (never following a final link when
/// `kind` is a link); a read error counts as its errno.
fn contents_digest(vfs: &Vfs, path: &[u8], kind: u8) -> u64 {
    let flags = match kind {
        KIND_SYMLINK => O_RDONLY | O_SYMLINK | O_NOFOLLOW,
        KIND_DIR => O_RDONLY | O_DIRECTORY,
        _ => O_RDONLY,
    };
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    let mut handle = match vfs.open_handle(path, flags, &CTX) {
        Ok(handle) => handle,
        Err(e) => {
            h.update(b"E");
            h.update(&e.0.to_le_bytes());
            return h.digest();
        }
    };
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match handle.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => h.update(&buf[..n.min(buf.len())]),
            Err(IoError::Errno(e)) => {
                h.update(b"E");
                h.update(&e.0.to_le_bytes());
                break;
            }
            Err(IoError::WouldBlock(_)) => break,
        }
    }
    handle.close();
    h.digest()
}

/// Where identities go: into the trace being written, or checked against the one replayed.
pub(crate) enum Watch {
    Record(Rc<TraceWriter>),
    Replay(SharedSource),
}

/// The root scheme of a recorded or replayed run (see the module note).
pub(crate) struct WatchedRoot {
    vfs: Vfs,
    watch: Watch,
    /// Paths (and whether a final link was followed) already noted.
    seen: HashSet<(Vec<u8>, bool)>,
}

impl WatchedRoot {
    pub(crate) fn new(vfs: Vfs, watch: Watch) -> WatchedRoot {
        WatchedRoot { vfs, watch, seen: HashSet::new() }
    }

    /// Notes the first use of `path`.
    fn note(&mut self, path: &[u8], follow: bool) {
        if self.seen.contains(&(path.to_vec(), follow)) {
            return;
        }
        self.seen.insert((path.to_vec(), follow));
        let now = Identity::of(&self.vfs, path, follow);
        match &self.watch {
            Watch::Record(sink) => {
                let mut ev = vec![super::TAG_FILE];
                super::put_bytes(&mut ev, path);
                ev.push(u8::from(follow));
                now.encode(&mut ev);
                sink.put(&ev);
            }
            Watch::Replay(source) => {
                let mut s = source.borrow_mut();
                if s.stop.is_some() {
                    return;
                }
                let shown = String::from_utf8_lossy(path).into_owned();
                match s.next() {
                    // The same file unchanged must not reach the arm below.
                    #[allow(clippy::collapsible_match, reason = "the suggested guard would send it there")]
                    Some(Event::File { path: p, follow: f, identity }) if p == path && f == follow => {
                        if identity != now {
                            let msg = format!(
                                "{}: {shown} changed since the recording: {}",
                                s.last_point,
                                now.difference(&identity)
                            );
                            if s.force {
                                s.warnings.push(format!("{msg}; replaying on (--force)"));
                            } else {
                                s.diverge(format!("{msg} (replay --force goes on to see where the run diverges)"));
                            }
                        }
                    }
                    Some(other) => {
                        let msg = format!("{}: the replay used {shown}, the recording has {other} next", s.last_point);
                        s.diverge(msg);
                    }
                    None => {}
                }
            }
        }
    }
}

impl Scheme for WatchedRoot {
    fn open(&mut self, path: &[u8], flags: usize, ctx: &CallCtx) -> Result<FileRef, Errno> {
        self.note(path, flags & (O_SYMLINK | O_NOFOLLOW) == 0);
        Scheme::open(&mut self.vfs, path, flags, ctx)
    }

    fn unlink(&mut self, path: &[u8], ctx: &CallCtx) -> Result<(), Errno> {
        self.note(path, false);
        Scheme::unlink(&mut self.vfs, path, ctx)
    }

    fn rmdir(&mut self, path: &[u8], ctx: &CallCtx) -> Result<(), Errno> {
        self.note(path, false);
        Scheme::rmdir(&mut self.vfs, path, ctx)
    }

    fn link(&mut self, old: &[u8], new: &[u8], follow: bool, ctx: &CallCtx) -> Result<(), Errno> {
        self.note(old, follow);
        self.note(new, false);
        Scheme::link(&mut self.vfs, old, new, follow, ctx)
    }

    fn set_attr(
        &mut self,
        path: &[u8],
        follow: bool,
        perm: Option<u16>,
        mtime: Option<u64>,
        ctx: &CallCtx,
    ) -> Result<(), Errno> {
        self.note(path, follow);
        Scheme::set_attr(&mut self.vfs, path, follow, perm, mtime, ctx)
    }

    fn rename(&mut self, old: &[u8], new: &[u8], ctx: &CallCtx) -> Result<(), Errno> {
        self.note(old, false);
        self.note(new, false);
        Scheme::rename(&mut self.vfs, old, new, ctx)
    }

    fn charge_memory_to(&mut self, account: &std::rc::Rc<guest_kernel::MemTotal>) {
        self.vfs.charge_memory_to(account);
    }
}
