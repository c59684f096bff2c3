//! Unit tests of masks and confined resolution (a tar image built in memory). End-to-end
//! behaviour (guest programs trying to escape) is in the workspace's tests/escape.rs.

use std::rc::Rc;

use tar::{Builder, EntryType, Header};
use warden_abi::*;

use super::resolve::{confine, split, strip_root};
use super::{Jail, Mask};
use crate::scheme::{CallCtx, Scheme};
use crate::vfs::Vfs;

const CTX: CallCtx = CallCtx { pid: 1, uid: 0, gid: 0, umask: 0o022 };

fn image() -> Vfs {
    let mut b = Builder::new(Vec::new());
    let mut entry = |ty: EntryType, path: &str, target: Option<&str>, data: &[u8]| {
        let mut h = Header::new_gnu();
        h.set_entry_type(ty);
        h.set_mode(if ty == EntryType::Directory { 0o755 } else { 0o644 });
        h.set_size(data.len() as u64);
        match target {
            Some(t) => b.append_link(&mut h, path, t).unwrap(),
            None => b.append_data(&mut h, path, data).unwrap(),
        }
    };
    entry(EntryType::Directory, "secret", None, b"");
    entry(EntryType::Regular, "secret/key", None, b"outside");
    entry(EntryType::Directory, "jail", None, b"");
    entry(EntryType::Directory, "jail/sub", None, b"");
    entry(EntryType::Regular, "jail/sub/file", None, b"inside");
    entry(EntryType::Regular, "jail/secret", None, b"decoy");
    entry(EntryType::Symlink, "jail/up", Some("../../../secret"), b"");
    entry(EntryType::Symlink, "jail/abs", Some("/secret/key"), b"");
    entry(EntryType::Symlink, "jail/sub/rel", Some("../sub/file"), b"");
    entry(EntryType::Symlink, "jail/loop", Some("loop"), b"");
    entry(EntryType::Symlink, "jail/dangling", Some("/nowhere/new"), b"");
    entry(EntryType::Symlink, "link-to-jail", Some("jail"), b"");
    Vfs::from_tar_vec(b.into_inner().unwrap()).unwrap()
}

fn ino(vfs: &Vfs, path: &str) -> u64 {
    vfs.stat_path(path.as_bytes()).unwrap().st_ino
}

fn jailed(vfs: &mut Vfs, cwd: &str, path: &str, follow: bool) -> Result<String, Errno> {
    let i = ino(vfs, "/jail");
    confine(vfs, &CTX, b"/jail", i, cwd.as_bytes(), path.as_bytes(), follow).map(|p| String::from_utf8(p).unwrap())
}

#[test]
fn dotdot_stops_at_the_jail_root() {
    let mut vfs = image();
    assert_eq!(jailed(&mut vfs, "/jail", "/../../secret", true).unwrap(), "/jail/secret");
    // /jail/secret is the jail's own file, so key under it is ENOTDIR (never /secret/key).
    assert_eq!(jailed(&mut vfs, "/jail/sub", "../../../secret/key", true), Err(Errno(ENOTDIR)));
    assert_eq!(jailed(&mut vfs, "/jail/sub", "..", true).unwrap(), "/jail/");
    assert_eq!(jailed(&mut vfs, "/jail", "sub/./file", true).unwrap(), "/jail/sub/file");
}

#[test]
fn symlinks_stay_inside() {
    let mut vfs = image();
    // ../../../secret from /jail lands on the jail's own "secret" file.
    assert_eq!(jailed(&mut vfs, "/jail", "up", true).unwrap(), "/jail/secret");
    // An absolute target starts at the jail root: /jail/secret is a file, so key is ENOTDIR.
    assert_eq!(jailed(&mut vfs, "/jail", "abs", true), Err(Errno(ENOTDIR)));
    assert_eq!(jailed(&mut vfs, "/jail", "sub/rel", true).unwrap(), "/jail/sub/file");
    assert_eq!(jailed(&mut vfs, "/jail", "loop", true), Err(Errno(ELOOP)));
    // A dangling link is created inside (its directory must exist inside).
    assert_eq!(jailed(&mut vfs, "/jail", "dangling", true), Err(Errno(ENOENT)));
    // Not following: the link itself.
    assert_eq!(jailed(&mut vfs, "/jail", "abs", false).unwrap(), "/jail/abs");
    assert_eq!(jailed(&mut vfs, "/jail", "abs/", false), Err(Errno(ENOTDIR)));
}

#[test]
fn cwd_outside_the_jail_counts_as_its_root() {
    let mut vfs = image();
    assert_eq!(jailed(&mut vfs, "/secret", "key", true).unwrap(), "/jail/key");
}

#[test]
fn a_replaced_root_is_no_root() {
    let mut vfs = image();
    let wrong = ino(&vfs, "/secret");
    assert_eq!(confine(&mut vfs, &CTX, b"/jail", wrong, b"/", b"/sub", true), Err(Errno(ENOENT)));
    // The root itself reached through a symlink is refused too (lstat sees the link).
    let right = ino(&vfs, "/jail");
    assert_eq!(confine(&mut vfs, &CTX, b"/link-to-jail", right, b"/", b"/sub", true), Err(Errno(ENOENT)));
    let _ = vfs.unlink(b"/jail/sub/file", &CTX);
}

#[test]
fn helpers() {
    assert_eq!(strip_root(b"/a", b"/a/b"), Some(&b"/b"[..]));
    assert_eq!(strip_root(b"/a", b"/a"), Some(&b"/"[..]));
    assert_eq!(strip_root(b"/a", b"/ab"), None);
    assert_eq!(strip_root(b"/", b"/ab"), Some(&b"/ab"[..]));
    let s = split(b"a/../b/.").unwrap();
    assert_eq!(s.comps, vec![Some(b"a".to_vec()), None, Some(b"b".to_vec())]);
    assert!(s.dir_tail && s.dot_tail);
    assert_eq!(split(b"a\0b").err(), Some(Errno(EINVAL)));
}

#[test]
fn masks_only_shrink() {
    let m = Mask::new([SYS_READ, SYS_WRITE, SYS_OPEN, SYS_READ], false);
    assert_eq!(
        m.allowed(),
        &{
            let mut v = vec![SYS_READ, SYS_WRITE, SYS_OPEN];
            v.sort();
            v
        }[..]
    );
    assert!(m.allows(SYS_EXIT) && m.allows(SYS_SIGRETURN) && !m.allows(SYS_KILL));
    assert!(m.covers(&Mask::new([SYS_READ], false)));
    assert!(!m.covers(&Mask::new([SYS_READ, SYS_KILL], false)));
}

#[test]
fn nested_jails() {
    let outer = Rc::new(Jail { root: b"/a".to_vec(), ino: 1, parent: None, schemes: false });
    let inner = Rc::new(Jail { root: b"/a/b".to_vec(), ino: 2, parent: Some(outer.clone()), schemes: false });
    let other = Rc::new(Jail { root: b"/a".to_vec(), ino: 1, parent: None, schemes: false });
    assert!(inner.within(&outer) && inner.within(&inner) && !outer.within(&inner));
    assert!(!inner.within(&other));
}
