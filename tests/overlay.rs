//! `--overlay DIR`: the guest's writes are kept in a host directory, survive crashes of
//! the guest and of warden, are seen by later runs, and never land outside DIR.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use guest_kernel::vfs::Vfs;
use guest_kernel::{CallCtx, CaptureConsole, CapturedOutput, Scheme};
use warden::{Root, RunOptions};
use warden_abi::{O_CREAT, O_DIRECTORY, O_RDONLY, O_SYMLINK, O_TRUNC, O_WRONLY};

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("warden-overlay-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

struct Out {
    status: i32,
    stdout: String,
    stderr: String,
}

fn sh(overlay: &Path, root: Root, script: &str) -> Out {
    let opts = RunOptions {
        root,
        program: Some("/bin/sh".into()),
        args: vec!["-c".into(), script.into()],
        budget: Some(2_000_000_000),
        overlay: Some(overlay.to_path_buf()),
        ..RunOptions::default()
    };
    let (console, out): (CaptureConsole, Rc<RefCell<CapturedOutput>>) = CaptureConsole::new(b"");
    let status = match warden::run(&opts, Box::new(console)) {
        Ok(o) => o.exit_status(),
        Err(e) => panic!("{e}"),
    };
    let out = out.borrow().clone();
    Out {
        status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Every path under `dir` (relative, sorted), symlinks not followed.
fn tree_of(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            out.push(p.strip_prefix(base).unwrap().display().to_string());
            if e.file_type().unwrap().is_dir() {
                walk(base, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
fn writes_persist_and_a_later_run_sees_them() {
    let base = temp_dir("persist");
    let ov = base.join("layer");
    let r = sh(
        &ov,
        Root::Default,
        "echo hello > /tmp/a; mkdir /tmp/d; echo inner > /tmp/d/f; echo more >> /tmp/a; rm /etc/rc; cat /tmp/a",
    );
    assert_eq!(r.status, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(std::fs::read_to_string(ov.join("tmp/a")).unwrap(), "hello\nmore\n");
    assert_eq!(std::fs::read_to_string(ov.join("tmp/d/f")).unwrap(), "inner\n");
    assert!(ov.join("etc/.wh.rc").exists(), "{:?}", tree_of(&ov));

    let r = sh(&ov, Root::Default, "cat /tmp/a /tmp/d/f; ls /tmp/d; cat /etc/rc || echo rc-gone; ls /etc");
    assert_eq!(r.stdout, "hello\nmore\ninner\nf\nrc-gone\n", "{}", r.stderr);

    // Changes to a file from an earlier run, then removal of a directory and a new one.
    let r = sh(&ov, Root::Default, "echo changed > /tmp/a; rm -r /tmp/d; mkdir /tmp/d; echo new > /tmp/d/g");
    assert_eq!(r.status, 0, "{}", r.stderr);
    let r = sh(&ov, Root::Default, "cat /tmp/a; ls /tmp/d");
    assert_eq!(r.stdout, "changed\ng\n", "{}", r.stderr);
    // Nothing but the layer appeared beside it.
    assert_eq!(tree_of(&base).iter().filter(|p| !p.starts_with("layer")).count(), 0);
}

#[test]
fn files_survive_a_guest_crash() {
    let ov = temp_dir("crash").join("layer");
    let r = sh(&ov, Root::Default, "echo precious > /tmp/keep; crash segv");
    assert_eq!(r.status, 139);
    assert_eq!(std::fs::read_to_string(ov.join("tmp/keep")).unwrap(), "precious\n");
    let r = sh(&ov, Root::Default, "cat /tmp/keep");
    assert_eq!(r.stdout, "precious\n");
}

#[test]
fn files_survive_warden_being_killed() {
    let ov = temp_dir("killed").join("layer");
    let mut child = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["run", "--overlay", ov.to_str().unwrap(), "/bin/sh", "-c", "echo kept > /tmp/k; crash spin"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !ov.join("tmp/k").exists() || std::fs::read(ov.join("tmp/k")).unwrap().is_empty() {
        assert!(start.elapsed() < Duration::from_secs(60), "the file never appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
    let r = sh(&ov, Root::Default, "cat /tmp/k");
    assert_eq!(r.stdout, "kept\n", "{}", r.stderr);
}

fn image_with_escapes(path: &Path) {
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    let mut add = |name: &str, data: &[u8], mode: u32| {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_cksum();
        b.append_data(&mut h, name, data).unwrap();
    };
    for p in ["sh", "cat", "echo", "ls", "mkdir", "rm"] {
        let bin = std::fs::read(Path::new(env!("WARDEN_GUEST_BIN_DIR")).join(p)).unwrap();
        add(&format!("bin/{p}"), &bin, 0o755);
    }
    add("tmp/.keep", b"", 0o644);
    let mut link = |name: &str, target: &str| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        b.append_link(&mut h, name, target).unwrap();
    };
    link("tmp/up", "../../../../../..");
    link("tmp/root", "/");
    link("tmp/host", "/proc/self/root/tmp");
    b.finish().unwrap();
}

#[test]
fn nothing_is_written_outside_the_overlay_whatever_the_path() {
    let base = temp_dir("confine");
    let img = base.join("img.tar");
    image_with_escapes(&img);
    let ov = base.join("layer");
    let script = "echo 1 > /../../../e1; echo 2 > /tmp/up/e2; echo 3 > /tmp/root/e3; \
                  echo 4 > /tmp/../../../tmp/e4; mkdir /tmp/host; echo 5 > /tmp/host/e5; \
                  echo 6 > file:/../e6; echo done";
    let r = sh(&ov, Root::Image(img.clone()), script);
    assert!(r.stdout.contains("done"), "{}{}", r.stdout, r.stderr);
    let outside: Vec<String> =
        tree_of(&base).into_iter().filter(|p| p != "img.tar" && !p.starts_with("layer")).collect();
    assert!(outside.is_empty(), "written outside the overlay: {outside:?}");
    // Every write landed at its guest-canonical place inside the layer.
    for f in ["e1", "e2", "e3", "e6", "tmp/e4"] {
        assert!(ov.join(f).is_file(), "{f}: {:?}", tree_of(&ov));
    }
    assert!(!Path::new("/e1").exists() && !Path::new("/e2").exists());

    // A symlink planted in the layer by someone else is a guest-namespace link when loaded.
    let victim = base.join("victim");
    std::fs::create_dir_all(&victim).unwrap();
    std::os::unix::fs::symlink(&victim, ov.join("planted")).unwrap();
    let r = sh(&ov, Root::Image(img), "echo x > /planted/owned; echo x > /planted; echo ok");
    assert!(r.stdout.contains("ok"), "{}", r.stderr);
    assert!(tree_of(&victim).is_empty(), "followed a planted host symlink: {:?}", tree_of(&victim));
}

const ROOT_CTX: CallCtx = CallCtx { pid: 1, uid: 0, gid: 0, umask: 0o022 };

fn image_vfs() -> Vfs {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in [("d/a", &b"lower a"[..]), ("d/b", b"lower b"), ("f", b"lower f")] {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, data).unwrap();
    }
    Vfs::from_tar_vec(b.into_inner().unwrap()).unwrap()
}

fn write(vfs: &mut Vfs, path: &[u8], data: &[u8]) -> Result<(), warden_abi::Errno> {
    let f = vfs.open(path, O_CREAT | O_WRONLY | O_TRUNC | 0o644, &ROOT_CTX)?;
    let n = f.borrow_mut().write(data).map_err(|e| match e {
        guest_kernel::IoError::Errno(e) => e,
        _ => warden_abi::Errno(5),
    })?;
    assert_eq!(n, data.len());
    Ok(())
}

fn read(vfs: &mut Vfs, path: &[u8]) -> Option<Vec<u8>> {
    let f = vfs.open(path, O_RDONLY, &ROOT_CTX).ok()?;
    let mut buf = vec![0u8; 4096];
    let n = f.borrow_mut().read(&mut buf).ok()?;
    buf.truncate(n);
    Some(buf)
}

#[test]
fn whiteouts_and_opaque_directories_round_trip() {
    let ov = temp_dir("opaque").join("layer");
    let mut vfs = image_vfs();
    vfs.attach_overlay(&ov).unwrap();
    vfs.unlink(b"/d/a", &ROOT_CTX).unwrap();
    vfs.unlink(b"/d/b", &ROOT_CTX).unwrap();
    vfs.rmdir(b"/d", &ROOT_CTX).unwrap();
    vfs.open(b"/d", O_CREAT | O_DIRECTORY | 0o755, &ROOT_CTX).unwrap();
    write(&mut vfs, b"/d/c", b"new c").unwrap();
    write(&mut vfs, b"/f", b"upper f").unwrap();
    let l = vfs.open(b"/link", O_CREAT | O_SYMLINK | O_WRONLY | 0o777, &ROOT_CTX).unwrap();
    l.borrow_mut().write(b"/d/c").unwrap();
    drop(l);
    assert_eq!(vfs.overlay_error(), None);
    assert!(ov.join("d/.wh..wh..opq").exists());
    assert_eq!(std::fs::read_link(ov.join("link")).unwrap(), Path::new("/d/c"));

    let mut again = image_vfs();
    again.attach_overlay(&ov).unwrap();
    assert_eq!(again.list_dir(b"/d").unwrap(), vec![b"c".to_vec()]);
    assert_eq!(read(&mut again, b"/f").unwrap(), b"upper f");
    assert_eq!(read(&mut again, b"/link").unwrap(), b"new c");
    // Reserved names are refused.
    assert!(write(&mut again, b"/.wh.f", b"x").is_err());
    assert!(write(&mut again, b"/d/.wh..wh..opq", b"x").is_err());
}

#[test]
fn a_symlink_swapped_into_the_layer_mid_run_is_never_followed() {
    let base = temp_dir("swap");
    let ov = base.join("layer");
    let victim = base.join("victim");
    std::fs::create_dir_all(&victim).unwrap();
    let mut vfs = image_vfs();
    vfs.attach_overlay(&ov).unwrap();
    write(&mut vfs, b"/d/x", b"one").unwrap();
    // Another host process replaces the layer's d/ with a symlink to elsewhere.
    std::fs::remove_dir_all(ov.join("d")).unwrap();
    std::os::unix::fs::symlink(&victim, ov.join("d")).unwrap();
    assert!(write(&mut vfs, b"/d/y", b"two").is_err(), "the write must fail, not follow the link");
    assert!(tree_of(&victim).is_empty(), "{:?}", tree_of(&victim));
    let err = vfs.overlay_error().expect("the failure is reported");
    assert!(err.contains("/d/y"), "{err}");
}

#[test]
fn cli_overlay_flag_round_trip() {
    let ov = temp_dir("cli").join("layer");
    let out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["run", "--overlay", ov.to_str().unwrap(), "/bin/sh", "-c", "echo cli > /tmp/c"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["run", "--overlay", ov.to_str().unwrap(), "cat", "/tmp/c"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "cli\n");
    // An overlay that cannot be used is one clear line and status 125.
    let file = temp_dir("cli-bad").join("file");
    std::fs::write(&file, b"").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["run", "--overlay", file.to_str().unwrap(), "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("overlay"), "{err}");
}
