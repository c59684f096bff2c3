//! Tests of the `file:` scheme: archives are built in memory with `tar::Builder` (hostile ones
//! by hand), host roots in fresh directories under `std::env::temp_dir()`.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tar::{Builder, EntryType, Header};
use warden_abi::*;

use super::*;
use crate::scheme::{CallCtx, FileOps, FileRef, IoError, Scheme};

const ROOT_CTX: CallCtx = CallCtx { pid: 1, uid: 0, gid: 0, umask: 0o022 };
const USER: CallCtx = CallCtx { pid: 2, uid: 1000, gid: 1000, umask: 0o022 };

// ---------------------------------------------------------------------------------------
// Helpers

fn hdr(ty: EntryType, mode: u32, size: u64) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(ty);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(1_600_000_000);
    h.set_uid(0);
    h.set_gid(0);
    h
}

struct Ar(Builder<Vec<u8>>);

impl Ar {
    fn new() -> Ar {
        Ar(Builder::new(Vec::new()))
    }
    fn file(mut self, path: &str, data: &[u8], mode: u32) -> Ar {
        let mut h = hdr(EntryType::Regular, mode, data.len() as u64);
        self.0.append_data(&mut h, path, data).expect("append file");
        self
    }
    fn owned_file(mut self, path: &str, data: &[u8], mode: u32, uid: u64) -> Ar {
        let mut h = hdr(EntryType::Regular, mode, data.len() as u64);
        h.set_uid(uid);
        h.set_gid(uid);
        self.0.append_data(&mut h, path, data).expect("append file");
        self
    }
    fn dir(mut self, path: &str, mode: u32) -> Ar {
        let mut h = hdr(EntryType::Directory, mode, 0);
        self.0.append_data(&mut h, path, std::io::empty()).expect("append dir");
        self
    }
    fn owned_dir(mut self, path: &str, mode: u32, uid: u64) -> Ar {
        let mut h = hdr(EntryType::Directory, mode, 0);
        h.set_uid(uid);
        h.set_gid(uid);
        self.0.append_data(&mut h, path, std::io::empty()).expect("append dir");
        self
    }
    fn symlink(mut self, path: &str, target: &str) -> Ar {
        let mut h = hdr(EntryType::Symlink, 0o777, 0);
        self.0.append_link(&mut h, path, target).expect("append symlink");
        self
    }
    fn hardlink(mut self, path: &str, target: &str) -> Ar {
        let mut h = hdr(EntryType::Link, 0o644, 0);
        self.0.append_link(&mut h, path, target).expect("append link");
        self
    }
    fn pax(mut self, records: &[(&str, &[u8])]) -> Ar {
        self.0.append_pax_extensions(records.iter().copied()).expect("append pax");
        self
    }
    fn raw(mut self, block: &[u8]) -> Ar {
        self.0.get_mut().extend_from_slice(block);
        self
    }
    fn finish(self) -> Vec<u8> {
        self.0.into_inner().expect("finish")
    }
}

/// A raw header block with `name` (written verbatim) and a correct checksum.
fn raw_header(name: &[u8], ty: u8, size: u64, link: &[u8]) -> Vec<u8> {
    let mut h = Header::new_ustar();
    {
        let old = h.as_old_mut();
        old.name[..name.len()].copy_from_slice(name);
        old.linkname[..link.len()].copy_from_slice(link);
    }
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(size);
    h.as_old_mut().linkflag = [ty];
    h.set_cksum();
    h.as_bytes().to_vec()
}

fn pad(data: &[u8]) -> Vec<u8> {
    let mut v = data.to_vec();
    v.resize(data.len().div_ceil(512) * 512, 0);
    v
}

fn sample() -> Vec<u8> {
    Ar::new()
        .dir("./", 0o755)
        .dir("bin/", 0o755)
        .file("bin/hello", b"#!hello world\n", 0o755)
        .file("etc/motd", b"welcome\n", 0o644)
        .owned_file("etc/secret", b"s3cret", 0o600, 0)
        .owned_file("home/user/notes", b"mine", 0o644, 1000)
        .owned_dir("home/user", 0o700, 1000)
        .dir("private", 0o700)
        .file("private/x", b"x", 0o644)
        .symlink("etc/rel", "motd")
        .symlink("etc/abs", "/etc/motd")
        .symlink("etc/up", "../bin/hello")
        .symlink("etc/escape", "../../../../../../etc/motd")
        .symlink("loop1", "loop2")
        .symlink("loop2", "loop1")
        .symlink("self", "self")
        .symlink("dirlink", "/etc")
        .symlink("dangling", "/nowhere/new")
        .symlink("etc/empty-dir-link", "/")
        .hardlink("bin/hello2", "bin/hello")
        .dir("empty", 0o755)
        .finish()
}

fn leak(v: Vec<u8>) -> &'static [u8] {
    Box::leak(v.into_boxed_slice())
}

fn vfs() -> Vfs {
    Vfs::from_tar_vec(sample()).expect("sample image")
}

fn open(v: &Vfs, path: &str, flags: usize) -> Result<FileRef, Errno> {
    v.clone().open(path.as_bytes(), flags, &ROOT_CTX)
}

fn open_as(v: &Vfs, path: &str, flags: usize, ctx: &CallCtx) -> Result<FileRef, Errno> {
    v.clone().open(path.as_bytes(), flags, ctx)
}

fn err<T>(r: Result<T, Errno>) -> i32 {
    match r {
        Ok(_) => 0,
        Err(Errno(e)) => e,
    }
}

fn ioerr<T>(r: Result<T, IoError>) -> i32 {
    match r {
        Ok(_) => 0,
        Err(IoError::Errno(Errno(e))) => e,
        Err(IoError::WouldBlock(_)) => -1,
    }
}

fn read_all(f: &FileRef) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 7];
    loop {
        match f.borrow_mut().read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => panic!("read failed: {e:?}"),
        }
    }
}

fn cat(v: &Vfs, path: &str) -> Result<Vec<u8>, Errno> {
    Ok(read_all(&open(v, path, O_RDONLY)?))
}

fn write(f: &FileRef, data: &[u8]) -> Result<usize, IoError> {
    f.borrow_mut().write(data)
}

fn names(v: &Vfs, path: &str) -> Vec<String> {
    v.list_dir(path.as_bytes()).expect("list").into_iter().map(|n| String::from_utf8_lossy(&n).into_owned()).collect()
}

// ---------------------------------------------------------------------------------------
// Reading an image

#[test]
fn reads_files_and_metadata() {
    let v = vfs();
    assert_eq!(cat(&v, "/bin/hello").as_deref(), Ok(&b"#!hello world\n"[..]));
    assert_eq!(cat(&v, "etc/motd").as_deref(), Ok(&b"welcome\n"[..]));
    let f = open(&v, "/bin/hello", O_RDONLY).expect("open");
    let st = f.borrow().stat().expect("stat");
    assert_eq!(st.st_mode, MODE_FILE | 0o755);
    assert_eq!(st.st_size, 14);
    assert_eq!(st.st_nlink, 2, "hello has a hard link");
    assert_eq!(st.st_mtime, 1_600_000_000);
    assert_eq!(st.st_blocks, 1);
    assert_eq!(st.st_dev, FILE_DEV);
    assert_eq!(f.borrow().path(), b"file:/bin/hello");
    // Stable inode numbers, shared by hard links.
    let again = v.stat_path(b"/bin/hello").expect("stat");
    assert_eq!(again.st_ino, st.st_ino);
    assert_eq!(v.stat_path(b"/bin/hello2").expect("stat").st_ino, st.st_ino);
    assert_eq!(cat(&v, "/bin/hello2").as_deref(), Ok(&b"#!hello world\n"[..]));
    let user = v.stat_path(b"/home/user/notes").expect("stat");
    assert_eq!((user.st_uid, user.st_gid), (1000, 1000));
    let d = v.stat_path(b"/home/user").expect("stat");
    assert_eq!(d.st_mode, MODE_DIR | 0o700, "explicit entry after implicit");
    assert_eq!(d.st_uid, 1000);
    let root = v.stat_path(b"/").expect("stat root");
    assert!(root.is_dir());
    assert_eq!(root.st_nlink, 2 + 5, "bin etc home private empty");
}

#[test]
fn implicit_parents_are_created() {
    let v = Vfs::from_tar_vec(Ar::new().file("a/b/c/d.txt", b"deep", 0o644).finish()).expect("image");
    for dir in ["/a", "/a/b", "/a/b/c"] {
        let st = v.stat_path(dir.as_bytes()).expect("implicit dir");
        assert_eq!(st.st_mode, MODE_DIR | 0o755);
        assert_eq!((st.st_uid, st.st_mtime), (0, 0));
    }
    assert_eq!(cat(&v, "/a/b/c/d.txt").as_deref(), Ok(&b"deep"[..]));
}

#[test]
fn directory_reads_list_names_with_offsets() {
    let v = vfs();
    assert_eq!(names(&v, "/etc"), ["abs", "empty-dir-link", "escape", "motd", "rel", "secret", "up"]);
    let f = open(&v, "/etc", O_RDONLY).expect("open dir");
    let mut got = Vec::new();
    let mut buf = [0u8; 5];
    loop {
        let n = f.borrow_mut().read(&mut buf).expect("read dir");
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, b"abs\nempty-dir-link\nescape\nmotd\nrel\nsecret\nup");
    assert_eq!(f.borrow_mut().seek(-2, SEEK_END), Ok(got.len() as u64 - 2));
    assert_eq!(read_all(&f), b"up");
    assert_eq!(f.borrow_mut().seek(4, SEEK_SET), Ok(4));
    let mut b = [0u8; 5];
    assert_eq!(f.borrow_mut().read(&mut b), Ok(5));
    assert_eq!(&b, b"empty");
    assert_eq!(f.borrow().stat().map(|s| s.st_size), Ok(got.len() as u64));
    // O_DIRECTORY works too, and an empty directory reads nothing.
    let e = open(&v, "/empty", O_RDONLY | O_DIRECTORY).expect("open empty");
    assert_eq!(read_all(&e), b"");
    assert_eq!(e.borrow().path(), b"file:/empty");
    assert_eq!(open(&v, "/", O_RDONLY).expect("root").borrow().path(), b"file:/");
}

#[test]
fn seek_rules() {
    let v = vfs();
    let f = open(&v, "/etc/motd", O_RDONLY).expect("open");
    let mut f = f.borrow_mut();
    assert_eq!(f.seek(3, SEEK_SET), Ok(3));
    assert_eq!(f.seek(2, SEEK_CUR), Ok(5));
    assert_eq!(f.seek(-1, SEEK_END), Ok(7));
    let mut b = [0u8; 4];
    assert_eq!(f.read(&mut b), Ok(1));
    assert_eq!(b[0], b'\n');
    assert_eq!(f.seek(100, SEEK_SET), Ok(100));
    assert_eq!(f.read(&mut b), Ok(0), "past the end reads EOF");
    assert_eq!(err(f.seek(-1, SEEK_SET)), EINVAL);
    assert_eq!(err(f.seek(-200, SEEK_CUR)), EINVAL);
    assert_eq!(err(f.seek(-9, SEEK_END)), EINVAL);
    assert_eq!(err(f.seek(0, 3)), EINVAL);
    assert_eq!(err(f.seek(i64::MAX, SEEK_END)), EINVAL);
    assert_eq!(f.seek(100, SEEK_SET), Ok(100), "position unchanged by failures");
}

#[test]
fn read_at_does_not_move_the_offset() {
    let v = vfs();
    let f = open(&v, "/bin/hello", O_RDONLY).expect("open");
    let mut b = [0u8; 5];
    assert_eq!(f.borrow().read_at(2, &mut b), Some(Ok(5)));
    assert_eq!(&b, b"hello");
    assert_eq!(f.borrow().read_at(100, &mut b), Some(Ok(0)));
    let mut one = [0u8; 1];
    assert_eq!(f.borrow_mut().read(&mut one), Ok(1));
    assert_eq!(one[0], b'#');
    let d = open(&v, "/bin", O_RDONLY).expect("dir");
    assert!(d.borrow().read_at(0, &mut b).is_none());
    // Works for write-only and stat-only handles (exec maps what it can reach).
    let w = open(&v, "/bin/hello", O_WRONLY).expect("wo");
    assert_eq!(w.borrow().read_at(0, &mut b), Some(Ok(5)));
    let s = open(&v, "/bin/hello", O_STAT).expect("stat");
    assert_eq!(s.borrow().read_at(0, &mut b), Some(Ok(5)));
}

// ---------------------------------------------------------------------------------------
// Symlinks and confinement

#[test]
fn symlinks_resolve_inside_the_tree() {
    let v = vfs();
    assert_eq!(cat(&v, "/etc/rel").as_deref(), Ok(&b"welcome\n"[..]));
    assert_eq!(cat(&v, "/etc/abs").as_deref(), Ok(&b"welcome\n"[..]));
    assert_eq!(cat(&v, "/etc/up").as_deref(), Ok(&b"#!hello world\n"[..]));
    assert_eq!(cat(&v, "/etc/escape").as_deref(), Ok(&b"welcome\n"[..]), "`..` stops at the root");
    assert_eq!(cat(&v, "/dirlink/motd").as_deref(), Ok(&b"welcome\n"[..]));
    // `..` after a symlinked directory is physical: /dirlink -> /etc, so /dirlink/.. is /.
    assert_eq!(cat(&v, "/dirlink/../bin/hello").map(|b| b.len()), Ok(14));
    assert_eq!(cat(&v, "/../../../etc/motd").as_deref(), Ok(&b"welcome\n"[..]));
    assert_eq!(cat(&v, "/etc/./../etc//motd").as_deref(), Ok(&b"welcome\n"[..]));
    assert_eq!(err(cat(&v, "/loop1")), ELOOP);
    assert_eq!(err(cat(&v, "/self")), ELOOP);
    assert_eq!(err(cat(&v, "/loop1/x")), ELOOP);
    assert_eq!(err(v.stat_path(b"/loop2")), ELOOP);
    assert!(v.lstat_path(b"/loop2").is_ok());
    assert_eq!(v.canonicalize(b"/dirlink/../etc/rel"), Ok(b"/etc/motd".to_vec()));
    assert_eq!(v.canonicalize(b"/etc/empty-dir-link"), Ok(b"/".to_vec()));
    assert_eq!(open(&v, "/etc/rel", O_RDONLY).expect("open").borrow().path(), b"file:/etc/motd");
    assert_eq!(v.resolve_dir_exists(b"/dirlink"), Ok(()));
    assert_eq!(err(v.resolve_dir_exists(b"/etc/motd")), ENOTDIR);
    assert_eq!(err(v.resolve_dir_exists(b"/nope")), ENOENT);
    assert_eq!(err(cat(&v, "/etc/motd/")), ENOTDIR);
    assert_eq!(err(cat(&v, "/etc/motd/x")), ENOTDIR);
}

#[test]
fn symlink_chain_of_forty_is_fine_forty_one_is_eloop() {
    let mut ar = Ar::new().file("target", b"t", 0o644);
    for i in 0..41 {
        let next = if i == 0 { "target".to_string() } else { format!("l{}", i - 1) };
        ar = ar.symlink(&format!("l{i}"), &next);
    }
    let v = Vfs::from_tar_vec(ar.finish()).expect("image");
    assert_eq!(cat(&v, "/l39").as_deref(), Ok(&b"t"[..]));
    assert_eq!(err(cat(&v, "/l40")), ELOOP);
}

#[test]
fn nofollow_and_symlink_flags_open_the_link() {
    let v = vfs();
    for flag in [O_SYMLINK, O_NOFOLLOW, O_STAT | O_NOFOLLOW] {
        let f = open(&v, "/etc/rel", O_RDONLY | flag).expect("open link");
        let st = f.borrow().stat().expect("stat");
        assert_eq!(st.st_mode & MODE_TYPE, MODE_SYMLINK);
        assert_eq!(st.st_size, 4);
        if flag & O_STAT == 0 {
            assert_eq!(read_all(&f), b"motd");
        }
        assert_eq!(f.borrow().path(), b"file:/etc/rel");
    }
    assert_eq!(v.lstat_path(b"/etc/rel").map(|s| s.st_mode & MODE_TYPE), Ok(MODE_SYMLINK));
    // Intermediate links are still followed.
    assert_eq!(open(&v, "/dirlink/rel", O_RDONLY | O_NOFOLLOW).expect("open").borrow().path(), b"file:/etc/rel");
    // Creating a symlink the Redox way.
    let l = open(&v, "/newlink", O_CREAT | O_WRONLY | O_SYMLINK | 0o777).expect("create link");
    assert_eq!(write(&l, b"/etc/motd"), Ok(9));
    drop(l);
    assert_eq!(cat(&v, "/newlink").as_deref(), Ok(&b"welcome\n"[..]));
    // A dangling symlink: O_CREAT creates its target.
    assert_eq!(err(cat(&v, "/dangling")), ENOENT);
    assert_eq!(err(open(&v, "/dangling", O_CREAT | O_WRONLY)), ENOENT, "/nowhere is missing");
    let n = open(&v, "/nowhere", O_CREAT | O_DIRECTORY | O_EXCL).expect("mkdir");
    drop(n);
    let f = open(&v, "/dangling", O_CREAT | O_WRONLY | 0o644).expect("create via link");
    assert_eq!(f.borrow().path(), b"file:/nowhere/new");
    assert_eq!(err(open(&v, "/dangling", O_CREAT | O_EXCL | O_WRONLY)), EEXIST);
}

// ---------------------------------------------------------------------------------------
// Writing: create, copy-on-write, truncate, append

#[test]
fn copy_on_write_leaves_the_image_untouched() {
    let bytes = leak(sample());
    let pristine = bytes.to_vec();
    let v = Vfs::from_tar_static(bytes).expect("image");
    let digest = v.image_digest();
    let r = open(&v, "/etc/motd", O_RDONLY).expect("reader");
    let w = open(&v, "/etc/motd", O_RDWR).expect("writer");
    assert_eq!(write(&w, b"W"), Ok(1));
    assert_eq!(read_all(&r), b"Welcome\n", "other handles see the write");
    assert_eq!(w.borrow_mut().seek(20, SEEK_SET), Ok(20));
    assert_eq!(write(&w, b"!"), Ok(1));
    let st = w.borrow().stat().expect("stat");
    assert_eq!(st.st_size, 21);
    let all = cat(&v, "/etc/motd").expect("cat");
    assert_eq!(&all[..8], b"Welcome\n");
    assert_eq!(&all[8..20], &[0u8; 12], "gap is zero-filled");
    assert_eq!(bytes, &pristine[..], "image bytes unchanged");
    assert_eq!(v.image_digest(), digest);
    assert_eq!(digest, Some(digest_bytes(&pristine)));
    // Hard links share the copy.
    let h = open(&v, "/bin/hello", O_WRONLY).expect("open");
    assert_eq!(write(&h, b"$"), Ok(1));
    assert_eq!(cat(&v, "/bin/hello2").expect("cat")[0], b'$');
}

#[test]
fn create_exclusive_truncate_append() {
    let v = vfs();
    let f = open(&v, "/tmpfile", O_CREAT | O_RDWR | 0o666).expect("create");
    assert_eq!(write(&f, b"hello"), Ok(5));
    let st = f.borrow().stat().expect("stat");
    assert_eq!(st.st_mode, MODE_FILE | 0o644, "umask 022 applied");
    assert_eq!(st.st_nlink, 1);
    assert_eq!(f.borrow().path(), b"file:/tmpfile");
    assert_eq!(cat(&v, "/tmpfile").as_deref(), Ok(&b"hello"[..]));
    assert!(names(&v, "/").contains(&"tmpfile".to_string()));
    // O_CREAT on an existing file opens it; O_EXCL refuses.
    assert_eq!(cat(&v, "/tmpfile").map(|b| b.len()), Ok(5));
    assert!(open(&v, "/tmpfile", O_CREAT | O_RDONLY).is_ok());
    assert_eq!(err(open(&v, "/tmpfile", O_CREAT | O_EXCL | O_RDWR)), EEXIST);
    assert_eq!(err(open(&v, "/etc/rel", O_CREAT | O_EXCL | O_RDWR)), EEXIST);
    // Append.
    let a = open(&v, "/tmpfile", O_WRONLY | O_APPEND).expect("append");
    assert_eq!(a.borrow_mut().seek(0, SEEK_SET), Ok(0));
    assert_eq!(write(&a, b" world"), Ok(6));
    assert_eq!(cat(&v, "/tmpfile").as_deref(), Ok(&b"hello world"[..]));
    // O_TRUNC, on a written file and on an image file.
    drop(open(&v, "/tmpfile", O_WRONLY | O_TRUNC).expect("trunc"));
    assert_eq!(cat(&v, "/tmpfile").as_deref(), Ok(&b""[..]));
    drop(open(&v, "/etc/motd", O_WRONLY | O_TRUNC).expect("trunc image file"));
    assert_eq!(v.stat_path(b"/etc/motd").map(|s| s.st_size), Ok(0));
    // O_TRUNC without write access changes nothing.
    drop(open(&v, "/bin/hello", O_RDONLY | O_TRUNC).expect("open"));
    assert_eq!(v.stat_path(b"/bin/hello").map(|s| s.st_size), Ok(14));
    // Errors.
    assert_eq!(err(open(&v, "/missing/file", O_CREAT | O_WRONLY)), ENOENT);
    assert_eq!(err(open(&v, "/etc/motd/file", O_CREAT | O_WRONLY)), ENOTDIR);
    assert_eq!(err(open(&v, "/newfile/", O_CREAT | O_WRONLY)), EISDIR);
    assert_eq!(err(open(&v, "/bad\nname", O_CREAT | O_WRONLY)), EINVAL);
    assert_eq!(err(open(&v, "/nul\0", O_CREAT | O_WRONLY)), EINVAL);
    assert_eq!(err(open(&v, "/absent", O_RDONLY)), ENOENT);
}

#[test]
fn mkdir_via_open() {
    let v = vfs();
    let d = open(&v, "/newdir", O_CREAT | O_DIRECTORY | O_EXCL | 0o777).expect("mkdir");
    let st = d.borrow().stat().expect("stat");
    assert_eq!(st.st_mode, MODE_DIR | 0o755);
    assert_eq!(st.st_nlink, 2);
    drop(d);
    assert_eq!(err(open(&v, "/newdir", O_CREAT | O_DIRECTORY | O_EXCL)), EEXIST);
    assert!(open(&v, "/newdir", O_CREAT | O_DIRECTORY).is_ok(), "no O_EXCL: opens it");
    // The mkdir form may carry a write access mode (the handle is read-only).
    let d2 = open(&v, "/newdir2", O_CREAT | O_DIRECTORY | O_WRONLY).expect("mkdir wo");
    assert_eq!(ioerr(write(&d2, b"x")), EISDIR);
    assert_eq!(err(open(&v, "/etc/motd", O_CREAT | O_DIRECTORY)), EEXIST);
    assert_eq!(err(open(&v, "/nope/sub", O_CREAT | O_DIRECTORY)), ENOENT);
    let f = open(&v, "/newdir/f", O_CREAT | O_WRONLY).expect("file in new dir");
    drop(f);
    let g = open(&v, "/newdir/sub/", O_CREAT | O_DIRECTORY).expect("mkdir with slash");
    drop(g);
    assert_eq!(names(&v, "/newdir"), ["f", "sub"]);
    assert_eq!(v.stat_path(b"/newdir").map(|s| s.st_nlink), Ok(3));
    assert_eq!(v.stat_path(b"/").map(|s| s.st_nlink), Ok(2 + 7));
}

#[test]
fn truncate_grows_and_shrinks() {
    let v = vfs();
    let f = open(&v, "/etc/motd", O_RDWR).expect("open");
    assert_eq!(f.borrow_mut().truncate(3), Ok(()));
    assert_eq!(cat(&v, "/etc/motd").as_deref(), Ok(&b"wel"[..]));
    assert_eq!(f.borrow_mut().truncate(6), Ok(()));
    assert_eq!(cat(&v, "/etc/motd").as_deref(), Ok(&b"wel\0\0\0"[..]));
    assert_eq!(f.borrow_mut().truncate(0), Ok(()));
    assert_eq!(v.stat_path(b"/etc/motd").map(|s| s.st_size), Ok(0));
    assert_eq!(err(f.borrow_mut().truncate(MAX_FILE_SIZE + 1)), EFBIG);
    let r = open(&v, "/bin/hello", O_RDONLY).expect("ro");
    assert_eq!(err(r.borrow_mut().truncate(1)), EINVAL);
    let d = open(&v, "/bin", O_RDONLY).expect("dir");
    assert_eq!(err(d.borrow_mut().truncate(1)), EINVAL);
}

#[test]
fn access_mode_and_type_errors() {
    let v = vfs();
    assert_eq!(err(open(&v, "/bin", O_WRONLY)), EISDIR);
    assert_eq!(err(open(&v, "/bin", O_RDWR | O_DIRECTORY)), EISDIR);
    assert_eq!(err(open(&v, "/etc/motd", O_RDONLY | O_DIRECTORY)), ENOTDIR);
    let r = open(&v, "/etc/motd", O_RDONLY).expect("ro");
    assert_eq!(ioerr(write(&r, b"x")), EBADF);
    let w = open(&v, "/etc/motd", O_WRONLY).expect("wo");
    let mut b = [0u8; 4];
    assert_eq!(ioerr(w.borrow_mut().read(&mut b)), EBADF);
    let s = open(&v, "/etc/motd", O_STAT).expect("stat only");
    assert_eq!(ioerr(s.borrow_mut().read(&mut b)), EBADF);
    assert_eq!(ioerr(write(&s, b"x")), EBADF);
    assert_eq!(s.borrow().stat().map(|s| s.st_size), Ok(8));
    let d = open(&v, "/bin", O_RDONLY).expect("dir");
    assert_eq!(ioerr(write(&d, b"x")), EISDIR);
    let ds = open(&v, "/bin", O_STAT).expect("dir stat");
    assert!(ds.borrow().stat().expect("stat").is_dir());
    // No access bits at all: read-only.
    let z = open(&v, "/etc/motd", 0).expect("no access bits");
    assert_eq!(read_all(&z), b"welcome\n");
    assert_eq!(ioerr(write(&z, b"x")), EBADF);
}

#[test]
fn name_and_path_length_limits() {
    let v = vfs();
    let long = format!("/{}", "a".repeat(NAME_MAX + 1));
    assert_eq!(err(open(&v, &long, O_RDONLY)), ENAMETOOLONG);
    assert_eq!(err(open(&v, &long, O_CREAT | O_WRONLY)), ENAMETOOLONG);
    let ok = format!("/{}", "a".repeat(NAME_MAX));
    assert!(open(&v, &ok, O_CREAT | O_WRONLY).is_ok());
    let deep = "/x".repeat(PATH_MAX / 2 + 1);
    assert_eq!(err(open(&v, &deep, O_RDONLY)), ENAMETOOLONG);
    assert_eq!(err(v.stat_path(deep.as_bytes())), ENAMETOOLONG);
}

#[test]
fn permissions_for_non_root() {
    let v = vfs();
    assert_eq!(err(open_as(&v, "/etc/secret", O_RDONLY, &USER)), EACCES);
    assert!(open_as(&v, "/etc/secret", O_STAT, &USER).is_ok(), "O_STAT needs no read bit");
    assert!(open_as(&v, "/etc/secret", O_RDONLY, &ROOT_CTX).is_ok());
    assert_eq!(err(open_as(&v, "/etc/motd", O_WRONLY, &USER)), EACCES);
    assert!(open_as(&v, "/etc/motd", O_RDONLY, &USER).is_ok());
    assert_eq!(err(open_as(&v, "/private/x", O_RDONLY, &USER)), EACCES, "no search");
    assert_eq!(err(open_as(&v, "/private", O_RDONLY, &USER)), EACCES, "no read");
    assert_eq!(err(open_as(&v, "/etc/new", O_CREAT | O_WRONLY, &USER)), EACCES);
    let mut vv = v.clone();
    assert_eq!(err(vv.unlink(b"/etc/motd", &USER)), EACCES);
    // The user's own directory.
    let f = open_as(&v, "/home/user/mine", O_CREAT | O_RDWR | 0o600, &USER).expect("create");
    let st = f.borrow().stat().expect("stat");
    assert_eq!((st.st_uid, st.st_gid, st.st_mode), (1000, 1000, MODE_FILE | 0o600));
    assert!(open_as(&v, "/home/user/notes", O_RDWR, &USER).is_ok());
    assert_eq!(vv.unlink(b"/home/user/mine", &USER), Ok(()));
}

// ---------------------------------------------------------------------------------------
// unlink and rmdir

#[test]
fn unlink_keeps_open_files_alive() {
    let v = vfs();
    let live_before = v.tree.borrow().live_nodes();
    let f = open(&v, "/etc/motd", O_RDWR).expect("open");
    let mut vv = v.clone();
    assert_eq!(vv.unlink(b"/etc/motd", &ROOT_CTX), Ok(()));
    assert_eq!(err(cat(&v, "/etc/motd")), ENOENT);
    assert!(!names(&v, "/etc").contains(&"motd".to_string()));
    assert_eq!(read_all(&f), b"welcome\n");
    assert_eq!(write(&f, b"more"), Ok(4));
    assert_eq!(f.borrow_mut().seek(0, SEEK_SET), Ok(0));
    assert_eq!(read_all(&f), b"welcome\nmore");
    let st = f.borrow().stat().expect("stat");
    assert_eq!(st.st_nlink, 0);
    assert_eq!(f.borrow().path(), b"file:/etc/motd");
    // A new file of the same name is a different node.
    let g = open(&v, "/etc/motd", O_CREAT | O_RDWR).expect("recreate");
    assert_ne!(g.borrow().stat().map(|s| s.st_ino), Ok(st.st_ino));
    drop(g);
    assert_eq!(vv.unlink(b"/etc/motd", &ROOT_CTX), Ok(()));
    drop(f);
    assert_eq!(v.tree.borrow().live_nodes(), live_before - 1, "freed on last close");
    // Hard links: one name goes, the other stays.
    assert_eq!(vv.unlink(b"/bin/hello", &ROOT_CTX), Ok(()));
    assert_eq!(v.stat_path(b"/bin/hello2").map(|s| s.st_nlink), Ok(1));
    // Symlinks are removed, not followed.
    assert_eq!(vv.unlink(b"/etc/rel", &ROOT_CTX), Ok(()));
    assert_eq!(err(v.lstat_path(b"/etc/rel")), ENOENT);
    // Errors.
    assert_eq!(err(vv.unlink(b"/etc/motd", &ROOT_CTX)), ENOENT);
    assert_eq!(err(vv.unlink(b"/bin", &ROOT_CTX)), EISDIR);
    assert_eq!(err(vv.unlink(b"/", &ROOT_CTX)), EISDIR);
    assert_eq!(err(vv.unlink(b"/nope/x", &ROOT_CTX)), ENOENT);
    assert_eq!(err(vv.unlink(b"/bin/hello2/x", &ROOT_CTX)), ENOTDIR);
    assert_eq!(err(vv.unlink(b"/bin/..", &ROOT_CTX)), EISDIR);
}

#[test]
fn rmdir_rules() {
    let v = vfs();
    let mut vv = v.clone();
    assert_eq!(err(vv.rmdir(b"/bin", &ROOT_CTX)), ENOTEMPTY);
    assert_eq!(err(vv.rmdir(b"/etc/motd", &ROOT_CTX)), ENOTDIR);
    assert_eq!(err(vv.rmdir(b"/dirlink", &ROOT_CTX)), ENOTDIR, "symlink not followed");
    assert_eq!(err(vv.rmdir(b"/etc/empty-dir-link/", &ROOT_CTX)), ENOTDIR);
    assert_eq!(err(vv.unlink(b"/etc/motd/", &ROOT_CTX)), ENOTDIR);
    assert_eq!(err(vv.unlink(b"/etc/rel/", &ROOT_CTX)), ENOTDIR);
    assert_eq!(err(vv.rmdir(b"/", &ROOT_CTX)), EBUSY);
    assert_eq!(err(vv.rmdir(b"/empty/.", &ROOT_CTX)), EINVAL);
    assert_eq!(err(vv.rmdir(b"/empty/..", &ROOT_CTX)), ENOTEMPTY);
    assert_eq!(err(vv.rmdir(b"/missing", &ROOT_CTX)), ENOENT);
    let d = open(&v, "/empty", O_RDONLY).expect("open");
    assert_eq!(vv.rmdir(b"/empty/", &ROOT_CTX), Ok(()));
    assert_eq!(err(v.stat_path(b"/empty")), ENOENT);
    assert_eq!(read_all(&d), b"", "open directory still readable");
    assert_eq!(d.borrow().stat().map(|s| s.st_nlink), Ok(0));
    // Emptied directories can go.
    assert_eq!(vv.unlink(b"/private/x", &ROOT_CTX), Ok(()));
    assert_eq!(vv.rmdir(b"/private", &ROOT_CTX), Ok(()));
    assert!(!names(&v, "/").contains(&"private".to_string()));
}

#[test]
fn write_limit_gives_enospc() {
    let v = vfs();
    // Each name costs NAME_COST; the rest is file contents.
    v.set_write_limit(NAME_COST + 16);
    let f = open(&v, "/f", O_CREAT | O_RDWR).expect("create");
    assert_eq!(write(&f, &[1u8; 16]), Ok(16));
    assert_eq!(ioerr(write(&f, b"x")), ENOSPC);
    assert_eq!(f.borrow_mut().seek(i64::MAX - 1, SEEK_SET), Ok(i64::MAX as u64 - 1));
    assert_eq!(ioerr(write(&f, b"x")), EFBIG);
    // Freed bytes are given back.
    drop(f);
    let mut vv = v.clone();
    assert_eq!(vv.unlink(b"/f", &ROOT_CTX), Ok(()));
    let g = open(&v, "/g", O_CREAT | O_RDWR).expect("create");
    assert_eq!(write(&g, &[1u8; 16]), Ok(16));
    v.set_node_limit(0);
    assert_eq!(err(open(&v, "/h", O_CREAT | O_RDWR)), ENOSPC);
}

#[test]
fn clock_stamps_new_nodes() {
    let v = vfs();
    v.set_clock(42);
    let f = open(&v, "/t", O_CREAT | O_RDWR).expect("create");
    assert_eq!(f.borrow().stat().map(|s| s.st_mtime), Ok(42));
    v.set_clock(43);
    assert_eq!(write(&f, b"x"), Ok(1));
    assert_eq!(f.borrow().stat().map(|s| s.st_mtime), Ok(43));
    assert_eq!(v.stat_path(b"/").map(|s| s.st_mtime), Ok(42));
}

#[test]
fn tar_file_is_mapped_and_never_written() {
    let dir = TempDir::new("tarfile");
    let path = dir.path.join("image.tar");
    let bytes = sample();
    fs::write(&path, &bytes).expect("write image");
    let v = Vfs::from_tar_file(&path).expect("map");
    assert_eq!(cat(&v, "/etc/motd").as_deref(), Ok(&b"welcome\n"[..]));
    let f = open(&v, "/etc/motd", O_RDWR | O_TRUNC).expect("open");
    assert_eq!(write(&f, b"changed"), Ok(7));
    assert_eq!(fs::read(&path).expect("reread"), bytes);
    assert_eq!(v.image_digest(), Some(digest_bytes(&bytes)));
    let other = Vfs::from_tar_vec(Ar::new().file("x", b"y", 0o644).finish()).expect("img");
    assert_ne!(other.image_digest(), v.image_digest());
    // Errors opening the file.
    assert!(matches!(Vfs::from_tar_file(dir.path.join("missing.tar")), Err(ImageError::Io { .. })));
    let empty = dir.path.join("empty.tar");
    fs::write(&empty, b"").expect("write");
    assert!(matches!(Vfs::from_tar_file(&empty), Err(ImageError::Truncated { .. })));
}

// ---------------------------------------------------------------------------------------
// Archive formats and malformed archives

#[test]
fn long_names_and_pax_records() {
    let long_dir = "d".repeat(120);
    let long_name = format!("{long_dir}/{}", "f".repeat(150));
    let long_target = format!("/{long_dir}/{}", "f".repeat(150));
    let bytes = Ar::new()
        .file(&long_name, b"gnu long", 0o644)
        .symlink("ln", &long_target)
        .pax(&[("path", b"pax/named"), ("mtime", b"1234.5678"), ("uid", b"77"), ("gid", b"88")])
        .file("ignored-name", b"pax data", 0o640)
        .finish();
    let v = Vfs::from_tar_vec(bytes).expect("image");
    let p = format!("/{long_name}");
    assert_eq!(cat(&v, &p).as_deref(), Ok(&b"gnu long"[..]));
    assert_eq!(cat(&v, "/ln").as_deref(), Ok(&b"gnu long"[..]));
    let st = v.stat_path(b"/pax/named").expect("pax path");
    assert_eq!((st.st_mtime, st.st_uid, st.st_gid), (1234, 77, 88));
    assert_eq!(cat(&v, "/pax/named").as_deref(), Ok(&b"pax data"[..]));
    assert_eq!(err(v.stat_path(b"/ignored-name")), ENOENT);
}

#[test]
fn pax_size_overrides_header_size() {
    let mut h = hdr(EntryType::Regular, 0o644, 3);
    h.set_path("f").expect("path");
    h.set_cksum();
    let bytes = Ar::new().pax(&[("size", b"5")]).raw(h.as_bytes()).raw(&pad(b"12345")).raw(&[0u8; 1024]).finish();
    let v = Vfs::from_tar_vec(bytes).expect("image");
    assert_eq!(cat(&v, "/f").as_deref(), Ok(&b"12345"[..]));
}

#[test]
fn old_style_directory_and_ustar_prefix() {
    // A v7-style regular entry whose name ends in '/' is a directory.
    let mut v7 = Header::new_old();
    v7.as_old_mut().name[..4].copy_from_slice(b"old/");
    v7.set_mode(0o750);
    v7.set_uid(0);
    v7.set_gid(0);
    v7.set_mtime(0);
    v7.set_size(0);
    v7.set_entry_type(EntryType::Regular);
    v7.set_cksum();
    let mut us = Header::new_ustar();
    us.set_path(format!("{}/file", "p".repeat(110))).expect("ustar prefix");
    us.set_mode(0o644);
    us.set_uid(0);
    us.set_gid(0);
    us.set_mtime(0);
    us.set_size(2);
    us.set_entry_type(EntryType::Regular);
    us.set_cksum();
    let bytes = Ar::new().raw(v7.as_bytes()).raw(us.as_bytes()).raw(&pad(b"ok")).finish();
    let v = Vfs::from_tar_vec(bytes).expect("image");
    assert_eq!(v.stat_path(b"/old").map(|s| s.st_mode), Ok(MODE_DIR | 0o750));
    let p = format!("/{}/file", "p".repeat(110));
    assert_eq!(cat(&v, &p).as_deref(), Ok(&b"ok"[..]));
}

#[test]
fn devices_are_skipped_and_empty_archive_is_fine() {
    let mut h = hdr(EntryType::Char, 0o666, 0);
    h.set_path("dev/null").expect("path");
    h.set_cksum();
    let bytes = Ar::new().raw(h.as_bytes()).file("a", b"", 0o644).finish();
    let v = Vfs::from_tar_vec(bytes).expect("image");
    assert_eq!(err(v.stat_path(b"/dev/null")), ENOENT);
    assert_eq!(v.stat_path(b"/a").map(|s| s.st_size), Ok(0));
    let empty = Vfs::from_tar_vec(vec![0u8; 1024]).expect("empty archive");
    assert!(names(&empty, "/").is_empty());
}

fn parse(bytes: Vec<u8>) -> Result<Vfs, ImageError> {
    Vfs::from_tar_vec(bytes)
}

#[test]
fn hostile_paths_are_rejected() {
    let end = [0u8; 1024];
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("absolute", raw_header(b"/etc/passwd", b'0', 0, b"")),
        ("dotdot", raw_header(b"../escape", b'0', 0, b"")),
        ("inner dotdot", raw_header(b"a/../../escape", b'0', 0, b"")),
        ("empty", raw_header(b"", b'0', 0, b"")),
        ("newline", raw_header(b"a\nb", b'0', 0, b"")),
        ("hardlink escape", raw_header(b"h", b'1', 0, b"../../etc/passwd")),
        ("hardlink missing", raw_header(b"h", b'1', 0, b"nothing")),
        ("hardlink absolute", raw_header(b"h", b'1', 0, b"/etc/passwd")),
        ("symlink empty", raw_header(b"s", b'2', 0, b"")),
        ("root not dir", raw_header(b".", b'0', 0, b"")),
    ];
    for (what, header) in cases {
        let mut bytes = header;
        bytes.extend_from_slice(&end);
        let r = parse(bytes);
        assert!(matches!(r, Err(ImageError::BadPath { .. })), "{what}: {r:?}");
    }
    // pax paths: absolute, `..`, NUL.
    for bad in [&b"/abs"[..], b"a/../..", b"nul\0byte"] {
        let bytes = Ar::new().pax(&[("path", bad)]).file("x", b"", 0o644).finish();
        assert!(matches!(parse(bytes), Err(ImageError::BadPath { .. })), "{bad:?}");
    }
    // GNU long name with `..`.
    let mut long = raw_header(b"././@LongLink", b'L', 12, b"");
    long.extend_from_slice(&pad(b"../../evil\0\0"));
    long.extend_from_slice(&raw_header(b"short", b'0', 0, b""));
    long.extend_from_slice(&end);
    assert!(matches!(parse(long), Err(ImageError::BadPath { .. })));
    // A hard link to a directory.
    let bytes = Ar::new().dir("d", 0o755).hardlink("h", "d").finish();
    assert!(matches!(parse(bytes), Err(ImageError::BadPath { .. })));
    // A file used as a parent directory (also: no following a symlink while building).
    let bytes = Ar::new().file("f", b"", 0o644).file("f/g", b"", 0o644).finish();
    assert!(matches!(parse(bytes), Err(ImageError::BadPath { .. })));
    let bytes = Ar::new().symlink("l", "/").file("l/g", b"", 0o644).finish();
    assert!(matches!(parse(bytes), Err(ImageError::BadPath { .. })));
}

#[test]
fn duplicates_are_rejected() {
    let dup_file = Ar::new().file("a", b"1", 0o644).file("a", b"2", 0o644).finish();
    assert!(matches!(parse(dup_file), Err(ImageError::Duplicate { .. })));
    let dup_dir = Ar::new().dir("d", 0o755).dir("d", 0o700).finish();
    assert!(matches!(parse(dup_dir), Err(ImageError::Duplicate { .. })));
    let dir_over_file = Ar::new().file("a", b"", 0o644).dir("a", 0o755).finish();
    assert!(matches!(parse(dir_over_file), Err(ImageError::Duplicate { .. })));
    let same_via_dot = Ar::new().file("a/b", b"", 0o644).file("./a//b", b"", 0o644).finish();
    assert!(matches!(parse(same_via_dot), Err(ImageError::Duplicate { .. })));
    let two_roots = Ar::new().dir("./", 0o755).dir(".", 0o755).finish();
    assert!(matches!(parse(two_roots), Err(ImageError::Duplicate { .. })));
    let link_over = Ar::new().file("a", b"", 0o644).file("b", b"", 0o644).hardlink("b", "a").finish();
    assert!(matches!(parse(link_over), Err(ImageError::Duplicate { .. })));
    // An explicit directory after its implicit creation is not a duplicate.
    assert!(parse(Ar::new().file("d/x", b"", 0o644).dir("d", 0o700).finish()).is_ok());
}

#[test]
fn deep_nesting_and_huge_counts_are_limited() {
    let ok = vec!["d"; MAX_DEPTH].join("/");
    assert!(parse(Ar::new().file(&ok, b"", 0o644).finish()).is_ok());
    let deep = vec!["d"; MAX_DEPTH + 1].join("/");
    let r = parse(Ar::new().file(&deep, b"", 0o644).finish());
    assert!(matches!(r, Err(ImageError::BadPath { .. })), "{r:?}");
    // Entry count (with a lowered node limit: MAX_ENTRIES headers would be 512 MiB).
    let mut ar = Ar::new();
    for i in 0..100 {
        ar = ar.file(&format!("f{i}"), b"", 0o644);
    }
    let root = Node::new(Kind::Dir(Dir::default()), 0o755, 0, 0, 0);
    let mut t = Tree::new(ImageBytes::Owned(ar.finish()), root);
    t.node_limit = 50;
    assert!(matches!(image::load(&mut t), Err(ImageError::Limit { .. })));
}

#[test]
fn bad_headers_are_rejected() {
    let good = sample();
    // Checksum.
    let mut b = good.clone();
    b[148] = b'7';
    b[149] = b'7';
    assert!(matches!(parse(b), Err(ImageError::BadHeader { .. })));
    // Size field garbage, and absurd sizes (octal and base-256).
    let mut h = raw_header(b"f", b'0', 0, b"");
    h[124..136].copy_from_slice(b"zzzzzzzzzzz\0");
    fix_checksum(&mut h);
    assert!(matches!(parse(h), Err(ImageError::BadHeader { .. })));
    let mut h = raw_header(b"f", b'0', 0, b"");
    h[124..136].copy_from_slice(b"77777777777\0");
    fix_checksum(&mut h);
    h.extend_from_slice(&[0u8; 1024]);
    assert!(matches!(parse(h), Err(ImageError::Truncated { .. })));
    let mut h = raw_header(b"f", b'0', 0, b"");
    h[124..136].copy_from_slice(&[0x80, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    fix_checksum(&mut h);
    h.extend_from_slice(&[0u8; 1024]);
    assert!(matches!(parse(h), Err(ImageError::Truncated { .. })));
    let mut h = raw_header(b"f", b'0', 0, b"");
    h[124..136].copy_from_slice(&[0x80, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    fix_checksum(&mut h);
    assert!(matches!(parse(h), Err(ImageError::BadHeader { .. })), "overflowing base-256");
    let mut h = raw_header(b"f", b'0', 0, b"");
    h[124..136].copy_from_slice(&[0xff; 12]);
    fix_checksum(&mut h);
    assert!(matches!(parse(h), Err(ImageError::BadHeader { .. })), "negative base-256");
    // uid too large for 32 bits.
    let mut h = raw_header(b"f", b'0', 0, b"");
    h[108..116].copy_from_slice(&[0x80, 0, 0, 1, 0, 0, 0, 0]);
    fix_checksum(&mut h);
    h.extend_from_slice(&[0u8; 1024]);
    assert!(matches!(parse(h), Err(ImageError::BadHeader { .. })));
    // Unknown magic, unsupported types.
    let mut h = raw_header(b"f", b'0', 0, b"");
    h[257..263].copy_from_slice(b"garbag");
    fix_checksum(&mut h);
    assert!(matches!(parse(h), Err(ImageError::BadHeader { .. })));
    for ty in [b'S', b'V', b'M', b'D', b'Z'] {
        let mut h = raw_header(b"f", ty, 0, b"");
        h.extend_from_slice(&[0u8; 1024]);
        assert!(matches!(parse(h), Err(ImageError::Unsupported { .. })), "type {ty}");
    }
    // Pax: malformed records, sparse keys, huge lengths, orphan extension.
    for data in [
        &b"5 a=b\n"[..],
        b"99 path=x\n",
        b"x path=x\n",
        b"8 pathx\n",
        b"9 path=xy",
        b"20 GNU.sparse.map=1\n",
        b"12 size=abc\n",
        b"99999999999999999999999 a=b\n",
    ] {
        let mut b = raw_header(b"PaxHeader", b'x', data.len() as u64, b"");
        b.extend_from_slice(&pad(data));
        b.extend_from_slice(&raw_header(b"f", b'0', 0, b""));
        b.extend_from_slice(&[0u8; 1024]);
        let r = parse(b);
        assert!(matches!(r, Err(ImageError::BadHeader { .. })), "{data:?}: {r:?}");
    }
    let mut b = raw_header(b"PaxHeader", b'x', 0, b"");
    b.extend_from_slice(&[0u8; 1024]);
    assert!(matches!(parse(b), Err(ImageError::BadHeader { .. })), "orphan pax");
    let mut b = raw_header(b"././@LongLink", b'L', MAX_EXTENSION + 1, b"");
    b.resize(512 + MAX_EXTENSION as usize + 1 + 1024 + 511, 0);
    assert!(matches!(parse(b), Err(ImageError::Limit { .. })));
    let mut b = raw_header(b"PaxHeader", b'x', 10, b"");
    b.extend_from_slice(&pad(b"10 path=x\n"));
    b.extend_from_slice(&raw_header(b"PaxHeader", b'x', 0, b""));
    b.extend_from_slice(&raw_header(b"f", b'0', 0, b""));
    b.extend_from_slice(&[0u8; 1024]);
    assert!(parse(b).is_err(), "two pax headers");
}

fn fix_checksum(block: &mut [u8]) {
    block[148..156].copy_from_slice(b"        ");
    let sum: u32 = block[..512].iter().map(|&b| u32::from(b)).sum();
    let s = format!("{sum:06o}\0 ");
    block[148..156].copy_from_slice(s.as_bytes());
}

#[test]
fn truncation_at_every_block_never_panics() {
    let good = sample();
    assert!(parse(good.clone()).is_ok());
    // The data ends before the two zero blocks: every cut before them is an error.
    let end_of_members = good.len() - good.chunks(512).rev().take_while(|c| c.iter().all(|&b| b == 0)).count() * 512;
    for cut in (0..good.len()).step_by(512) {
        let r = parse(good[..cut].to_vec());
        if cut <= end_of_members {
            assert!(r.is_err(), "cut at {cut} accepted");
            let msg = r.err().map(|e| e.to_string()).unwrap_or_default();
            assert!(!msg.is_empty() && !msg.contains('\n'));
        }
    }
    for cut in [1usize, 100, 511, 513, 1000, 1500] {
        let _ = parse(good[..cut.min(good.len())].to_vec());
    }
}

#[test]
fn flipped_bytes_never_panic() {
    let good = Ar::new()
        .dir("d", 0o755)
        .file("d/f", b"data", 0o644)
        .symlink("s", "d/f")
        .hardlink("h", "d/f")
        .pax(&[("path", b"p"), ("mtime", b"5")])
        .file("x", b"y", 0o644)
        .finish();
    let mut seen_ok = 0;
    for i in 0..good.len() {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut b = good.clone();
            b[i] ^= mask;
            if let Ok(v) = parse(b) {
                seen_ok += 1;
                // Whatever was accepted must be usable.
                let _ = v.list_dir(b"/");
                let _ = cat(&v, "/d/f");
                let _ = cat(&v, "/s");
            }
        }
    }
    assert!(seen_ok > 0, "flips in file data leave the archive valid");
    // Random garbage.
    let mut rng = crate::scheme::basic::Rng::new(7);
    for len in [0usize, 511, 512, 1024, 4096] {
        for _ in 0..50 {
            let mut b = vec![0u8; len];
            rng.fill(&mut b);
            let _ = parse(b);
        }
    }
}

#[test]
fn error_messages_are_one_line() {
    let e = parse(raw_header(b"../x", b'0', 0, b"")).expect_err("error");
    let msg = e.to_string();
    assert!(msg.contains("..") && !msg.contains('\n'), "{msg}");
    let e = parse(vec![1u8; 10]).expect_err("error");
    assert!(e.to_string().contains("truncated"), "{e}");
}

// ---------------------------------------------------------------------------------------
// Host root

static COUNTER: AtomicUsize = AtomicUsize::new(0);

struct TempDir {
    path: PathBuf,
}

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!("warden-vfs-test-{}-{tag}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("temp dir");
        TempDir { path }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// `<tmp>/root` (the guest root) and `<tmp>/outside/secret` (must stay unreachable).
fn host_fixture() -> (TempDir, PathBuf) {
    use std::os::unix::fs::symlink;
    let t = TempDir::new("host");
    let root = t.path.join("root");
    let outside = t.path.join("outside");
    fs::create_dir_all(root.join("etc")).expect("mkdir");
    fs::create_dir_all(root.join("bin")).expect("mkdir");
    fs::create_dir_all(root.join("emptydir")).expect("mkdir");
    fs::create_dir_all(&outside).expect("mkdir");
    fs::write(outside.join("secret"), b"SECRET").expect("write");
    fs::write(root.join("etc/motd"), b"host motd\n").expect("write");
    fs::write(root.join("bin/tool"), b"tool").expect("write");
    symlink("motd", root.join("etc/rel")).expect("symlink");
    symlink("/etc/motd", root.join("etc/abs")).expect("symlink");
    symlink("../outside/secret", root.join("up")).expect("symlink");
    symlink("../../../../../outside/secret", root.join("etc/updeep")).expect("symlink");
    symlink(outside.join("secret"), root.join("hostabs")).expect("symlink");
    symlink(&outside, root.join("outdir")).expect("symlink");
    symlink("la", root.join("lb")).expect("symlink");
    symlink("lb", root.join("la")).expect("symlink");
    (t, root)
}

#[test]
fn host_root_reads_and_confines() {
    let (t, root) = host_fixture();
    let v = Vfs::from_host_dir(&root).expect("host root");
    assert_eq!(v.image_digest(), None);
    assert_eq!(cat(&v, "/etc/motd").as_deref(), Ok(&b"host motd\n"[..]));
    assert_eq!(cat(&v, "/etc/rel").as_deref(), Ok(&b"host motd\n"[..]));
    assert_eq!(cat(&v, "/etc/abs").as_deref(), Ok(&b"host motd\n"[..]), "absolute = root-relative");
    for escape in
        ["/up", "/etc/updeep", "/hostabs", "/outdir/secret", "/../outside/secret", "/etc/../../outside/secret"]
    {
        assert_eq!(err(cat(&v, escape)), ENOENT, "{escape} escaped");
    }
    assert_eq!(err(cat(&v, "/la")), ELOOP);
    assert_eq!(names(&v, "/etc"), ["abs", "motd", "rel", "updeep"]);
    let f = open(&v, "/etc/motd", O_RDONLY).expect("open");
    let st = f.borrow().stat().expect("stat");
    assert_eq!(st.st_mode & MODE_TYPE, MODE_FILE);
    assert_eq!(st.st_size, 10);
    assert_eq!(v.stat_path(b"/etc/motd").map(|s| s.st_ino), Ok(st.st_ino), "stable ino");
    assert_eq!(f.borrow().path(), b"file:/etc/motd");
    let mut b = [0u8; 4];
    assert_eq!(f.borrow().read_at(5, &mut b), Some(Ok(4)));
    assert_eq!(&b, b"motd");
    assert_eq!(v.lstat_path(b"/etc/rel").map(|s| s.st_mode & MODE_TYPE), Ok(MODE_SYMLINK));
    assert_eq!(v.resolve_dir_exists(b"/bin"), Ok(()));
    assert_eq!(err(v.resolve_dir_exists(b"/bin/tool")), ENOTDIR);
    assert!(v.stat_path(b"/").expect("root").is_dir());
    drop(t);
}

#[test]
fn host_root_writes_stay_in_memory() {
    let (t, root) = host_fixture();
    let v = Vfs::from_host_dir(&root).expect("host root");
    let mut vv = v.clone();
    // Copy-on-write of a host file.
    let f = open(&v, "/etc/motd", O_RDWR).expect("open");
    let r = open(&v, "/etc/motd", O_RDONLY).expect("open");
    assert_eq!(write(&f, b"HOST"), Ok(4));
    assert_eq!(read_all(&r), b"HOST motd\n");
    assert_eq!(fs::read(root.join("etc/motd")).expect("host"), b"host motd\n");
    // O_TRUNC on a host file.
    drop(open(&v, "/bin/tool", O_WRONLY | O_TRUNC).expect("trunc"));
    assert_eq!(cat(&v, "/bin/tool").as_deref(), Ok(&b""[..]));
    assert_eq!(fs::read(root.join("bin/tool")).expect("host"), b"tool");
    // New files and directories appear only in the guest.
    let n = open(&v, "/etc/new", O_CREAT | O_WRONLY).expect("create");
    assert_eq!(write(&n, b"n"), Ok(1));
    let d = open(&v, "/etc/newdir", O_CREAT | O_DIRECTORY | O_EXCL).expect("mkdir");
    drop(d);
    assert!(!root.join("etc/new").exists());
    assert!(!root.join("etc/newdir").exists());
    assert_eq!(names(&v, "/etc"), ["abs", "motd", "new", "newdir", "rel", "updeep"]);
    // unlink: a whiteout hides the host file; open handles keep reading.
    let keep = open(&v, "/bin/tool", O_RDONLY).expect("open");
    let keep_host = open(&v, "/etc/rel", O_RDONLY).expect("open");
    assert_eq!(vv.unlink(b"/etc/motd", &ROOT_CTX), Ok(()));
    assert_eq!(err(cat(&v, "/etc/motd")), ENOENT);
    assert_eq!(err(cat(&v, "/etc/rel")), ENOENT, "link now dangles");
    assert_eq!(read_all(&keep_host), b"HOST motd\n", "open handle survives the whiteout");
    assert!(root.join("etc/motd").exists());
    assert!(!names(&v, "/etc").contains(&"motd".to_string()));
    assert_eq!(vv.unlink(b"/bin/tool", &ROOT_CTX), Ok(()));
    assert_eq!(read_all(&keep), b"");
    // Re-creating over a whiteout gives a fresh file.
    let again = open(&v, "/etc/motd", O_CREAT | O_RDWR).expect("recreate");
    assert_eq!(read_all(&again), b"");
    // rmdir of host directories.
    assert_eq!(err(vv.rmdir(b"/etc", &ROOT_CTX)), ENOTEMPTY);
    assert_eq!(vv.rmdir(b"/emptydir", &ROOT_CTX), Ok(()));
    assert_eq!(err(v.stat_path(b"/emptydir")), ENOENT);
    assert!(root.join("emptydir").is_dir());
    assert_eq!(vv.rmdir(b"/bin", &ROOT_CTX), Ok(()), "bin is empty once tool is gone");
    assert!(root.join("bin/tool").exists());
    // A new directory where a host one was removed starts empty.
    drop(open(&v, "/bin", O_CREAT | O_DIRECTORY).expect("mkdir"));
    assert!(names(&v, "/bin").is_empty());
    drop(t);
}

#[test]
fn host_unreadable_and_special_files() {
    let (t, root) = host_fixture();
    let v = Vfs::from_host_dir(&root).expect("host root");
    // A FIFO is listed and stat-able but never opened (it would block the emulator).
    let fifo = root.join("fifo");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().map(|s| s.success()).unwrap_or(false);
    if made {
        assert_eq!(v.stat_path(b"/fifo").map(|s| s.st_mode & MODE_TYPE), Ok(MODE_FIFO));
        assert_eq!(err(open(&v, "/fifo", O_RDONLY)), EACCES);
        assert!(open(&v, "/fifo", O_STAT).is_ok());
        assert!(names(&v, "/").contains(&"fifo".to_string()));
    }
    assert!(matches!(Vfs::from_host_dir(root.join("etc/motd")), Err(ImageError::NotADirectory { .. })));
    assert!(matches!(Vfs::from_host_dir(root.join("missing")), Err(ImageError::Io { .. })));
    drop(t);
}

#[test]
fn scheme_trait_objects_work() {
    let mut s: Box<dyn Scheme> = Box::new(vfs());
    let f = s.open(b"/etc/motd", O_RDONLY, &ROOT_CTX).expect("open");
    assert_eq!(read_all(&f), b"welcome\n");
    assert_eq!(s.unlink(b"/etc/motd", &ROOT_CTX), Ok(()));
    assert_eq!(s.rmdir(b"/empty", &ROOT_CTX), Ok(()));
    let shared: Rc<RefCell<dyn FileOps>> = f;
    assert_eq!(shared.borrow().path(), b"file:/etc/motd");
}

#[test]
fn gnu_tar_archives_parse() {
    use std::os::unix::fs::symlink;
    use std::process::Command;
    let t = TempDir::new("gnutar");
    let src = t.path.join("src");
    let long = "n".repeat(150);
    fs::create_dir_all(src.join("dir/sub")).expect("mkdir");
    fs::write(src.join("dir/file"), b"contents").expect("write");
    fs::write(src.join(&long), b"long").expect("write");
    fs::hard_link(src.join("dir/file"), src.join("hard")).expect("link");
    symlink("dir/file", src.join("sym")).expect("symlink");
    for format in ["gnu", "posix", "ustar"] {
        let out = t.path.join(format!("{format}.tar"));
        let Ok(status) = Command::new("tar")
            .arg(format!("--format={format}"))
            .arg("-cf")
            .arg(&out)
            .arg("-C")
            .arg(&src)
            .arg(".")
            .stderr(std::process::Stdio::null())
            .status()
        else {
            return; // no tar on this host
        };
        if !status.success() {
            // ustar cannot store the 150-byte name: that is tar's refusal, not ours.
            assert_eq!(format, "ustar");
            continue;
        }
        let v = Vfs::from_tar_file(&out).unwrap_or_else(|e| panic!("{format}: {e}"));
        assert_eq!(cat(&v, "/dir/file").as_deref(), Ok(&b"contents"[..]), "{format}");
        assert_eq!(cat(&v, "/sym").as_deref(), Ok(&b"contents"[..]), "{format}");
        assert_eq!(cat(&v, &format!("/{long}")).as_deref(), Ok(&b"long"[..]), "{format}");
        let a = v.stat_path(b"/hard").expect("hard");
        let b = v.stat_path(b"/dir/file").expect("file");
        assert_eq!((a.st_ino, a.st_nlink), (b.st_ino, 2), "{format}");
        assert!(v.stat_path(b"/dir/sub").expect("sub").is_dir());
    }
}

// ---------------------------------------------------------------------------------------
// Hard links and rename

fn link(v: &Vfs, old: &str, new: &str) -> i32 {
    err(v.link_path(old.as_bytes(), new.as_bytes(), false, &ROOT_CTX))
}

fn rename(v: &Vfs, old: &str, new: &str) -> i32 {
    err(v.rename_path(old.as_bytes(), new.as_bytes(), &ROOT_CTX))
}

#[test]
fn hard_links_share_one_node() {
    let v = vfs();
    assert_eq!(link(&v, "/etc/motd", "/etc/motd2"), 0);
    let a = v.stat_path(b"/etc/motd").expect("stat");
    let b = v.stat_path(b"/etc/motd2").expect("stat");
    assert_eq!((a.st_ino, a.st_nlink, b.st_nlink), (b.st_ino, 2, 2));
    let f = open(&v, "/etc/motd2", O_WRONLY | O_TRUNC).expect("open");
    write(&f, b"changed").expect("write");
    assert_eq!(cat(&v, "/etc/motd").as_deref(), Ok(&b"changed"[..]));
    v.clone().unlink(b"/etc/motd", &ROOT_CTX).expect("unlink");
    assert_eq!(v.stat_path(b"/etc/motd2").expect("stat").st_nlink, 1);
    assert_eq!(cat(&v, "/etc/motd2").as_deref(), Ok(&b"changed"[..]));
    assert_eq!(link(&v, "/etc/motd2", "/bin/hello"), EEXIST);
    assert_eq!(link(&v, "/nothing", "/x"), ENOENT);
    assert_eq!(link(&v, "/etc", "/etc2"), EPERM);
    assert_eq!(link(&v, "/etc/motd2", "/nodir/x"), ENOENT);
    // A symlink is linked itself unless asked to follow it.
    assert_eq!(link(&v, "/etc/rel", "/rel2"), 0);
    assert_eq!(v.lstat_path(b"/rel2").expect("lstat").st_mode & MODE_TYPE, MODE_SYMLINK);
    assert_eq!(err(v.link_path(b"/etc/abs", b"/abs2", true, &ROOT_CTX)), ENOENT, "/etc/motd is gone");
    // Permission: w|x on the new parent.
    assert_eq!(err(v.link_path(b"/home/user/notes", b"/etc/n", false, &USER)), EACCES);
}

#[test]
fn rename_moves_files_and_directories() {
    let v = vfs();
    let ino = v.stat_path(b"/bin/hello").expect("stat").st_ino;
    assert_eq!(rename(&v, "/bin/hello", "/etc/hi"), 0);
    assert_eq!(v.stat_path(b"/etc/hi").expect("stat").st_ino, ino);
    assert_eq!(err(v.stat_path(b"/bin/hello")), ENOENT);
    assert_eq!(v.stat_path(b"/bin/hello2").expect("stat").st_nlink, 2, "still two names");
    // A file replaces a file.
    assert_eq!(rename(&v, "/etc/hi", "/etc/motd"), 0);
    assert_eq!(cat(&v, "/etc/motd").as_deref(), Ok(&b"#!hello world\n"[..]));
    // Directories move whole.
    assert_eq!(rename(&v, "/private", "/home/moved"), 0);
    assert_eq!(cat(&v, "/home/moved/x").as_deref(), Ok(&b"x"[..]));
    assert_eq!(err(v.stat_path(b"/private")), ENOENT);
    assert!(!names(&v, "/").contains(&"private".to_string()));
    assert_eq!(rename(&v, "/home/moved", "/home/moved/inner"), EINVAL);
    assert_eq!(rename(&v, "/home/moved", "/home"), ENOTEMPTY);
    assert_eq!(rename(&v, "/home/moved", "/empty"), 0, "over an empty directory");
    assert_eq!(cat(&v, "/empty/x").as_deref(), Ok(&b"x"[..]));
    assert_eq!(rename(&v, "/empty", "/etc/motd"), ENOTDIR);
    assert_eq!(rename(&v, "/etc/motd", "/empty"), EISDIR);
    assert_eq!(rename(&v, "/", "/x"), EBUSY);
    assert_eq!(rename(&v, "/missing", "/x"), ENOENT);
    assert_eq!(rename(&v, "/bin/hello2", "/bin/hello2"), 0);
    // An open file survives the move of its directory.
    let f = open(&v, "/empty/x", O_RDONLY).expect("open");
    assert_eq!(rename(&v, "/empty", "/again"), 0);
    assert_eq!(read_all(&f), b"x");
    // Permission: w|x on both parents.
    assert_eq!(err(v.rename_path(b"/home/user/notes", b"/notes", &USER)), EACCES);
}

#[test]
fn host_root_rename_and_link_stay_in_memory() {
    let t = TempDir::new("hostrename");
    fs::create_dir_all(t.path.join("d/sub")).expect("mkdir");
    fs::write(t.path.join("d/sub/f"), b"host").expect("write");
    let v = Vfs::from_host_dir(&t.path).expect("root");
    assert_eq!(rename(&v, "/d", "/e"), 0);
    assert_eq!(cat(&v, "/e/sub/f").as_deref(), Ok(&b"host"[..]));
    assert_eq!(err(v.stat_path(b"/d")), ENOENT, "whiteout hides the host name");
    assert_eq!(link(&v, "/e/sub/f", "/g"), 0);
    assert_eq!(cat(&v, "/g").as_deref(), Ok(&b"host"[..]));
    assert!(t.path.join("d/sub/f").exists() && !t.path.join("e").exists() && !t.path.join("g").exists());
}

#[test]
fn overlay_keeps_links_and_renamed_files() {
    let t = TempDir::new("ovlink");
    let ov = t.path.join("ov");
    let v = vfs();
    v.attach_overlay(&ov).expect("overlay");
    assert_eq!(link(&v, "/etc/motd", "/motd-link"), 0);
    let f = open(&v, "/motd-link", O_WRONLY | O_APPEND).expect("open");
    write(&f, b"more\n").expect("write");
    drop(f);
    assert_eq!(rename(&v, "/bin/hello", "/hello-moved"), 0);
    assert_eq!(rename(&v, "/etc/rel", "/rel-moved"), 0);
    assert_eq!(rename(&v, "/private", "/private2"), EXDEV, "directories do not move with an overlay");
    assert_eq!(fs::read(ov.join("motd-link")).expect("host copy"), b"welcome\nmore\n");
    assert_eq!(fs::read(ov.join("etc/motd")).expect("host copy"), b"welcome\nmore\n");
    // A later run sees the same.
    let again = vfs();
    again.attach_overlay(&ov).expect("overlay");
    assert_eq!(cat(&again, "/motd-link").as_deref(), Ok(&b"welcome\nmore\n"[..]));
    assert_eq!(cat(&again, "/etc/motd").as_deref(), Ok(&b"welcome\nmore\n"[..]));
    assert_eq!(cat(&again, "/hello-moved").as_deref(), Ok(&b"#!hello world\n"[..]));
    assert_eq!(err(again.stat_path(b"/bin/hello")), ENOENT);
    assert_eq!(cat(&again, "/bin/hello2").as_deref(), Ok(&b"#!hello world\n"[..]));
    assert_eq!(again.lstat_path(b"/rel-moved").expect("lstat").st_mode & MODE_TYPE, MODE_SYMLINK);
    assert_eq!(err(again.lstat_path(b"/etc/rel")), ENOENT);
}

/// Every way a file grows without its bytes all being written (a truncate up, a write past
/// the end, a write of nothing past the end) leaves on reload the file the guest saw, in a
/// new file and a copied-up lower one. A write of nothing past the end once extended the
/// guest's file with zeroes the overlay never got (fuzz crasher
/// `zero-length-write-past-the-end-grew-the-file-not-the-overlay`: forked processes sharing
/// a description, one seeking far past the end and another writing zero bytes).
#[test]
fn overlay_keeps_files_grown_without_bytes_written() {
    let t = TempDir::new("ovgrow");
    let ov = t.path.join("ov");
    let v = vfs();
    v.attach_overlay(&ov).expect("overlay");
    let size = |f: &FileRef| f.borrow().stat().expect("stat").st_size;
    for path in ["/new", "/etc/motd"] {
        let f = open(&v, path, O_CREAT | O_RDWR | 0o644).expect("open");
        assert_eq!(f.borrow_mut().truncate(100), Ok(()), "{path}: truncate up");
        assert_eq!(f.borrow_mut().seek(300, SEEK_SET), Ok(300));
        assert_eq!(write(&f, b"x"), Ok(1), "{path}: write past the end");
        assert_eq!(f.borrow_mut().seek(5000, SEEK_SET), Ok(5000));
        assert_eq!(write(&f, b""), Ok(0), "{path}: write nothing past the end");
        assert_eq!(size(&f), 301, "{path}: writing nothing changes nothing");
    }
    // A lower file's first change is a write of nothing past the end: no copy-up either.
    let f = open(&v, "/bin/hello", O_RDWR).expect("open");
    assert_eq!(f.borrow_mut().seek(5000, SEEK_SET), Ok(5000));
    assert_eq!(write(&f, b""), Ok(0));
    assert_eq!(size(&f), 14);
    assert!(!ov.join("bin/hello").exists(), "nothing written, nothing copied up");
    let again = vfs();
    again.attach_overlay(&ov).expect("overlay");
    for path in ["/new", "/etc/motd", "/bin/hello"] {
        let before = cat(&v, path).expect("before");
        assert_eq!(cat(&again, path).expect("after reload").len(), before.len(), "{path}");
        assert_eq!(cat(&again, path), Ok(before), "{path}");
    }
}

/// The target of the symlink at `path`, or the errno.
fn target_of(v: &Vfs, path: &str) -> Result<Vec<u8>, Errno> {
    Ok(read_all(&open(v, path, O_RDONLY | O_SYMLINK)?))
}

/// Makes the symlink `path` the Redox way; `target: None` leaves it without one.
fn make_link(v: &Vfs, path: &str, target: Option<&[u8]>) {
    let l = open(v, path, O_CREAT | O_EXCL | O_WRONLY | O_SYMLINK | 0o777).expect("create link");
    if let Some(t) = target {
        assert_eq!(write(&l, t), Ok(t.len()));
    }
}

/// Symlinks whose target a host symlink cannot hold (none written yet, NUL bytes, 4096
/// bytes) come back on reload, through every path that writes a link (create, write, link,
/// rename, re-target), and a lower name one replaced stays hidden. The overlay once skipped
/// them: the links were lost and the lower names came back (fuzz crasher
/// `empty-symlink-target-lost-on-reload`).
#[test]
fn overlay_keeps_symlinks_a_host_symlink_cannot_hold() {
    let t = TempDir::new("ovoddlink");
    let ov = t.path.join("ov");
    let v = vfs();
    v.attach_overlay(&ov).expect("overlay");
    let long = vec![b'a'; PATH_MAX];
    make_link(&v, "/none", None);
    make_link(&v, "/nul", Some(b"a\0b"));
    make_link(&v, "/long", Some(&long));
    // The longest name an overlay holds (its whiteout `.wh.NAME` must fit on the host).
    let long_name = format!("/{}", "n".repeat(NAME_MAX - 4));
    make_link(&v, &long_name, None);
    // In place of lower names: a file and a symlink (removed first, then made anew).
    assert_eq!(err(v.clone().unlink(b"/etc/motd", &ROOT_CTX)), 0);
    make_link(&v, "/etc/motd", None);
    assert_eq!(link(&v, "/nul", "/nul-link"), 0);
    assert_eq!(rename(&v, "/none", "/etc/rel"), 0, "over a lower symlink");
    // Re-targeted both ways: to a target a host symlink holds and away from one.
    make_link(&v, "/was-odd", None);
    let l = open(&v, "/was-odd", O_WRONLY | O_SYMLINK).expect("open link");
    assert_eq!(write(&l, b"/bin"), Ok(4));
    drop(l);
    make_link(&v, "/was-plain", Some(b"/etc"));
    drop(open(&v, "/was-plain", O_WRONLY | O_SYMLINK | O_TRUNC).expect("truncate link"));
    // Removed again: nothing may come back.
    make_link(&v, "/gone", None);
    assert_eq!(err(v.clone().unlink(b"/gone", &ROOT_CTX)), 0);
    let again = vfs();
    again.attach_overlay(&ov).expect("overlay");
    for path in
        ["/nul", "/nul-link", "/long", &long_name, "/etc/motd", "/etc/rel", "/was-odd", "/was-plain", "/none", "/gone"]
    {
        assert_eq!(target_of(&again, path), target_of(&v, path), "{path}");
    }
    assert_eq!(target_of(&again, "/etc/motd"), Ok(Vec::new()), "the lower file stays hidden");
    assert_eq!(target_of(&again, "/etc/rel"), Ok(Vec::new()), "the lower link stays hidden");
    assert_eq!(err(again.lstat_path(b"/none")), ENOENT);
    assert_eq!(err(again.lstat_path(b"/gone")), ENOENT);
    // Each record is gone with its link (records: name, NUL, u32 length, target).
    let recorded = |dir: &str| {
        let bytes = fs::read(ov.join(dir).join(".wh..wh..lnk")).unwrap_or_default();
        let (mut names, mut rest) = (BTreeSet::new(), &bytes[..]);
        while let Some(nul) = rest.iter().position(|&b| b == 0) {
            names.insert(String::from_utf8_lossy(&rest[..nul]).into_owned());
            let len = u32::from_le_bytes(rest[nul + 1..nul + 5].try_into().expect("length"));
            rest = &rest[nul + 5 + len as usize..];
        }
        names
    };
    let want = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(recorded("."), want(&["long", "nul", "nul-link", "was-plain", &long_name[1..]]));
    assert_eq!(recorded("etc"), want(&["motd", "rel"]));
}

// ---------------------------------------------------------------------------------------
// Confinement held by directory handles (issue 20)

/// A directory the guest has looked into is turned into a symlink to the outside on the host
/// (as the overlay does when the guest replaces a directory by a link, or as another host
/// process could): lookups in the cached directory reach nothing, with the handle cached or
/// re-opened. On the old path-holding code this read the secret.
#[test]
fn a_cached_directory_turned_into_a_host_symlink_leads_nowhere() {
    let (t, root) = host_fixture();
    fs::create_dir_all(root.join("d")).expect("mkdir");
    fs::write(root.join("d/inside"), b"in").expect("write");
    for forget in [false, true] {
        let v = Vfs::from_host_dir(&root).expect("host root");
        assert_eq!(cat(&v, "/d/inside").as_deref(), Ok(&b"in"[..]));
        assert_eq!(names(&v, "/d"), ["inside"]);
        fs::rename(root.join("d"), t.path.join("moved")).expect("move");
        std::os::unix::fs::symlink(t.path.join("outside"), root.join("d")).expect("symlink");
        if forget {
            v.forget_host_handles();
        }
        assert_eq!(err(cat(&v, "/d/secret")), ENOENT, "forget={forget}: followed the host symlink");
        assert!(!v.list_dir(b"/d").unwrap_or_default().contains(&b"secret".to_vec()), "forget={forget}");
        if forget {
            // The handle is re-opened by identity: the moved directory is not found either.
            assert_eq!(err(cat(&v, "/d/inside")), ENOENT);
        }
        fs::remove_file(root.join("d")).expect("rm link");
        fs::rename(t.path.join("moved"), root.join("d")).expect("move back");
    }
}

/// A host file swapped for a symlink after it was looked up is not opened through the link.
#[test]
fn a_cached_file_turned_into_a_host_symlink_is_not_followed() {
    let (t, root) = host_fixture();
    let v = Vfs::from_host_dir(&root).expect("host root");
    assert_eq!(v.stat_path(b"/bin/tool").map(|s| s.st_size), Ok(4));
    fs::remove_file(root.join("bin/tool")).expect("rm");
    std::os::unix::fs::symlink(t.path.join("outside/secret"), root.join("bin/tool")).expect("symlink");
    assert_eq!(err(cat(&v, "/bin/tool")), ENOENT);
}

/// Issue 20, reproduction 1 at the vfs level: `--root R --overlay R/ov`, the guest makes
/// `/d`, looks at `/ov/d`, replaces `/d` by a link out. The overlay is hidden from the root,
/// and even the cached lower directory leads nowhere.
#[test]
fn an_overlay_inside_the_root_is_hidden_and_harmless() {
    let (t, root) = host_fixture();
    let v = Vfs::from_host_dir(&root).expect("host root");
    v.attach_overlay(root.join("ov")).expect("overlay");
    let mut vv = v.clone();
    assert!(!names(&v, "/").contains(&"ov".to_string()), "the overlay shows in /: {:?}", names(&v, "/"));
    assert_eq!(err(v.stat_path(b"/ov")), ENOENT);
    assert_eq!(open(&v, "/d", O_CREAT | O_DIRECTORY | 0o755).map(|_| ()), Ok(()));
    assert_eq!(err(v.list_dir(b"/ov/d")), ENOENT);
    assert_eq!(vv.rmdir(b"/d", &ROOT_CTX), Ok(()));
    let l = open(&v, "/d", O_CREAT | O_SYMLINK | O_WRONLY | 0o777).expect("symlink");
    write(&l, t.path.join("outside").as_os_str().as_encoded_bytes()).expect("target");
    drop(l);
    assert!(root.join("ov/d").is_symlink(), "the overlay keeps the guest's link");
    assert_eq!(err(cat(&v, "/ov/d/secret")), ENOENT);
    assert_eq!(err(cat(&v, "/d/secret")), ENOENT, "the link resolves inside the guest");
    // A guest cannot create the name either: it is the overlay's, in the host view only.
    assert_eq!(open(&v, "/ov", O_CREAT | O_DIRECTORY | 0o755).map(|_| ()), Ok(()));
    assert_eq!(names(&v, "/ov"), Vec::<String>::new());
    // The same with the overlay deeper, under a jail-like directory.
    let v = Vfs::from_host_dir(&root).expect("host root");
    v.attach_overlay(root.join("etc/ov")).expect("overlay");
    assert_eq!(names(&v, "/etc"), ["abs", "motd", "rel", "updeep"]);
}

#[test]
fn an_overlay_holding_the_root_is_refused() {
    let (t, root) = host_fixture();
    let v = Vfs::from_host_dir(&root).expect("host root");
    for dir in [root.clone(), t.path.clone()] {
        match v.attach_overlay(&dir) {
            Err(e @ ImageError::OverlayHoldsRoot { .. }) => {
                assert!(e.to_string().contains("holds the root"), "{e}");
            }
            other => panic!("{}: {other:?}", dir.display()),
        }
    }
}

/// Issue 20, reproduction 3 at the vfs level: with a 32 MiB account, a 1 GiB truncate fails
/// with ENOSPC and charges nothing; what is written is charged and given back on unlink.
#[test]
fn the_write_layer_is_charged_to_the_memory_account() {
    let mut v = vfs();
    let account = Rc::new(crate::mm::MemTotal::new(32 << 20));
    v.charge_memory_to(&account);
    let f = open(&v, "/big", O_CREAT | O_RDWR).expect("create");
    assert_eq!(account.used(), NAME_COST);
    assert_eq!(f.borrow_mut().truncate(1 << 30), Err(Errno(ENOSPC)));
    assert_eq!(account.used(), NAME_COST, "nothing was taken");
    assert_eq!(f.borrow_mut().truncate(16 << 20), Ok(()));
    assert_eq!(account.used(), NAME_COST + (16 << 20));
    assert_eq!(ioerr(write(&open(&v, "/big2", O_CREAT | O_RDWR).expect("create"), &vec![0u8; 17 << 20])), ENOSPC);
    // Names are charged too: hard links, symlink targets.
    let before = account.used();
    assert_eq!(link(&v, "/big", "/big-link"), 0);
    assert_eq!(account.used(), before + NAME_COST);
    drop(f);
    assert_eq!(v.unlink(b"/big", &ROOT_CTX), Ok(()));
    assert_eq!(v.unlink(b"/big-link", &ROOT_CTX), Ok(()));
    assert_eq!(v.unlink(b"/big2", &ROOT_CTX), Ok(()));
    assert_eq!(account.used(), 0, "everything given back");
}

/// Removing names the guest made in a host directory leaves no whiteouts behind, so a
/// create/remove loop does not grow the tree.
#[test]
fn removing_guest_names_in_a_host_directory_leaves_no_whiteouts() {
    let (_t, root) = host_fixture();
    let mut v = Vfs::from_host_dir(&root).expect("host root");
    for i in 0..100 {
        let name = format!("/etc/tmp{i}");
        drop(open(&v, &name, O_CREAT | O_RDWR).expect("create"));
        assert_eq!(v.unlink(name.as_bytes(), &ROOT_CTX), Ok(()));
    }
    let mut tree = v.tree.borrow_mut();
    let etc = tree.lookup(tree::ROOT, b"etc").expect("lookup").expect("etc");
    let entries = tree.dir_mut(etc).expect("dir").entries.len();
    assert!(entries < 5, "{entries} entries");
}

/// An overlay directory over a host root's directory adds to it (the loader once replaced
/// the host directory by the overlay's, hiding every lower entry).
#[test]
fn an_overlay_directory_merges_with_the_host_directory_below() {
    let (t, root) = host_fixture();
    let ov = t.path.join("layer");
    fs::create_dir_all(ov.join("etc")).expect("mkdir");
    fs::write(ov.join("etc/added"), b"upper").expect("write");
    fs::write(ov.join("etc/.wh.rel"), b"").expect("whiteout");
    let v = Vfs::from_host_dir(&root).expect("host root");
    v.attach_overlay(&ov).expect("overlay");
    assert_eq!(names(&v, "/etc"), ["abs", "added", "motd", "updeep"]);
    assert_eq!(cat(&v, "/etc/added").as_deref(), Ok(&b"upper"[..]));
    assert_eq!(cat(&v, "/etc/motd").as_deref(), Ok(&b"host motd\n"[..]));
}

#[test]
fn duplicate_shares_nothing() {
    let v = vfs();
    assert_eq!(err(open(&v, "/etc/new", O_CREAT | O_WRONLY | 0o644)), 0);
    let copy = v.duplicate().expect("an image tree duplicates");
    // Changes on either side stay on that side.
    let f = open(&copy, "/etc/motd", O_WRONLY | O_TRUNC).expect("open the copy's motd");
    f.borrow_mut().write(b"changed").expect("write");
    drop(f);
    assert_eq!(err(copy.clone().unlink(b"/etc/new", &ROOT_CTX)), 0);
    assert_eq!(err(open(&v, "/tmp-only-in-original", O_CREAT | O_DIRECTORY | 0o755)), 0);
    assert_eq!(cat(&v, "/etc/motd").unwrap(), b"welcome\n");
    assert_eq!(cat(&copy, "/etc/motd").unwrap(), b"changed");
    assert_eq!(cat(&copy, "/bin/hello2").unwrap(), b"#!hello world\n");
    assert!(v.stat_path(b"/etc/new").is_ok());
    assert_eq!(err(copy.stat_path(b"/etc/new")), ENOENT);
    assert_eq!(err(copy.stat_path(b"/tmp-only-in-original")), ENOENT);
    assert_eq!(
        copy.list_dir(b"/etc").unwrap(),
        v.list_dir(b"/etc").unwrap().into_iter().filter(|n| n != b"new").collect::<Vec<_>>()
    );
    // Not with an open file, nor a host root.
    let held = open(&v, "/etc/motd", O_RDONLY).expect("open");
    assert!(v.duplicate().is_none());
    drop(held);
    assert!(v.duplicate().is_some());
    assert!(Vfs::from_host_dir(std::env::temp_dir()).expect("host root").duplicate().is_none());
}
