//! `schemetest MODE`: guest tests of user-space schemes (`warden_abi::ipc`), one scenario per
//! mode; prints `schemetest: MODE ok` and exits 0, or reports the first failure and exits 1.
//!
//! - `ramfs`: the file calls through `ramfsd` (open, write, lseek, read, fstat, fpath, fmap,
//!   unlink, a per-call non-blocking read).
//! - `die`: the daemon exits holding a request: the caller gets EIO, the name is gone.
//! - `signal`: a signal interrupts a caller: EINTR, and the daemon reads a cancel for it.
//! - `order`: two callers, answered in the reverse order of their requests.
//! - `jail`: a jailed process may neither create a scheme nor use one (EACCES).
//! - `jail-schemes`: in a jail made with `JAIL_SCHEMES` a process creates a scheme and
//!   another uses it, while a scheme served from outside stays EACCES; a jail inside one
//!   without the flag cannot have it (EPERM).
//! - `bench N`: N reads of 16 bytes from a `ramfs:` file (the round trip `benches/syscall.rs`
//!   times; the file is written first, in 64 KiB writes).

#![no_std]
#![no_main]

use runtime::abi::ipc::SCHEME_CANCEL;
use runtime::abi::{self, Errno, Map, SigAction};
use runtime::prelude::*;
use runtime::process::Command;
use runtime::scheme::SchemeServer;
use runtime::{env, sys};

runtime::entry!(main);

fn check(what: &str, ok: bool) -> core::result::Result<(), String> {
    if ok { Ok(()) } else { Err(what.to_string()) }
}

fn ramfs() -> core::result::Result<(), String> {
    let status = Command::new("/bin/ramfsd").status().map_err(|e| format!("spawn: {e}"))?;
    check("ramfsd started", status.success())?;
    let fd = sys::open("ramfs:/a", abi::O_CREAT | abi::O_RDWR).map_err(|e| format!("open: {e}"))?;
    check("write", sys::write(fd, b"hello world") == Ok(11))?;
    check("lseek", sys::lseek(fd, 6, abi::SEEK_SET) == Ok(6))?;
    let mut buf = [0u8; 16];
    check("read", sys::read(fd, &mut buf) == Ok(5) && &buf[..5] == b"world")?;
    check("read at end", sys::read(fd, &mut buf) == Ok(0))?;
    let nonblock = fd | (1 << 62);
    check("non-blocking read", sys::read(nonblock, &mut buf) == Ok(0))?;
    let stat = sys::fstat(fd).map_err(|e| format!("fstat: {e}"))?;
    check("fstat", stat.st_size == 11 && stat.st_mode & abi::MODE_FILE != 0)?;
    let n = sys::fpath(fd, &mut buf).map_err(|e| format!("fpath: {e}"))?;
    check("fpath", &buf[..n] == b"ramfs:/a")?;
    let map = Map { offset: 0, size: 4096, flags: abi::PROT_READ | abi::MAP_PRIVATE, address: 0 };
    let addr = sys::fmap(fd, &map).map_err(|e| format!("fmap: {e}"))?;
    // SAFETY: the kernel mapped 4096 readable bytes at `addr`.
    let mapped = unsafe { core::slice::from_raw_parts(addr as *const u8, 12) };
    check("fmap contents", mapped == b"hello world\0")?;
    check("close", sys::close(fd).is_ok())?;
    check("unlink", sys::unlink("ramfs:/a") == Ok(0))?;
    check("gone", sys::open("ramfs:/a", abi::O_RDONLY) == Err(Errno(abi::ENOENT)))?;
    check("second scheme of one name", SchemeServer::create("ramfs").err() == Some(Errno(abi::EEXIST)))?;
    Ok(())
}

/// Forks a daemon serving `name` with `serve`; returns its pid.
fn daemon(name: &str, serve: impl FnOnce(SchemeServer) -> i32) -> core::result::Result<usize, String> {
    let server = SchemeServer::create(name).map_err(|e| format!("create {name}: {e}"))?;
    match sys::clone(0) {
        Ok(0) => sys::exit(serve(server)),
        Ok(pid) => Ok(pid), // the parent's copy of the server closes with `server`
        Err(e) => Err(format!("fork: {e}")),
    }
}

fn wait_ok(pid: usize) -> core::result::Result<(), String> {
    let (_, status) = sys::waitpid(pid, 0).map_err(|e| format!("waitpid: {e}"))?;
    check("daemon status", abi::wifexited(status) && abi::wexitstatus(status) == 0)
}

fn die() -> core::result::Result<(), String> {
    let pid = daemon("dying", |mut s| if s.next().is_ok() { 0 } else { 1 })?;
    check("EIO from a dead daemon", sys::open("dying:/x", abi::O_RDONLY) == Err(Errno(abi::EIO)))?;
    wait_ok(pid)?;
    check("name gone", sys::open("dying:/x", abi::O_RDONLY) == Err(Errno(abi::ENOENT)))
}

extern "C" fn on_signal(_sig: usize) {}

fn signal() -> core::result::Result<(), String> {
    let act = SigAction { sa_handler: on_signal as *const () as usize, ..SigAction::default() };
    // SAFETY: `on_signal` does nothing, so it is sound to run at any time.
    unsafe { sys::sigaction(abi::SIGUSR1, Some(&act), 0) }.map_err(|e| format!("sigaction: {e}"))?;
    let parent = sys::getpid();
    let pid = daemon("slow", move |mut s| {
        let Ok(req) = s.next() else { return 1 };
        let id = req.head.id;
        // The caller is blocked now: interrupt it, and expect to hear that it gave up.
        if sys::kill(parent, abi::SIGUSR1).is_err() {
            return 2;
        }
        match s.next() {
            Ok(r) if r.head.call == SCHEME_CANCEL && r.head.id == id => 0,
            _ => 3,
        }
    })?;
    check("EINTR", sys::open("slow:/x", abi::O_RDONLY) == Err(Errno(abi::EINTR)))?;
    wait_ok(pid)
}

fn order() -> core::result::Result<(), String> {
    let pid = daemon("order", |mut s| {
        let mut ids = Vec::new();
        for _ in 0..2 {
            match s.next() {
                Ok(r) => ids.push((r.head.id, r.head.pid, r.input.to_vec())),
                Err(_) => return 1,
            }
        }
        // Answer the second first; each caller gets its own path's length.
        for (id, _, path) in ids.iter().rev() {
            if s.answer(*id, Err(Errno(abi::ENOENT + path.len() as i32)), &[]).is_err() {
                return 2;
            }
        }
        0
    })?;
    let client = match sys::clone(0) {
        Ok(0) => {
            let ok = sys::open("order:ab", abi::O_RDONLY) == Err(Errno(abi::ENOENT + 2));
            sys::exit(if ok { 0 } else { 1 })
        }
        Ok(p) => p,
        Err(e) => return Err(format!("fork: {e}")),
    };
    let got = sys::open("order:abcd", abi::O_RDONLY);
    check(&format!("own answer ({got:?})"), got == Err(Errno(abi::ENOENT + 4)))?;
    wait_ok(client)?;
    wait_ok(pid)
}

fn jail() -> core::result::Result<(), String> {
    let status = Command::new("/bin/ramfsd").status().map_err(|e| format!("spawn: {e}"))?;
    check("ramfsd started", status.success())?;
    sys::jail("/", 0).map_err(|e| format!("jail: {e}"))?;
    check("create refused", SchemeServer::create("jailed").err() == Some(Errno(abi::EACCES)))?;
    check("use refused", sys::open("ramfs:/a", abi::O_CREAT | abi::O_RDWR) == Err(Errno(abi::EACCES)))
}

fn jail_schemes() -> core::result::Result<(), String> {
    let status = Command::new("/bin/ramfsd").status().map_err(|e| format!("spawn: {e}"))?;
    check("ramfsd started", status.success())?;
    sys::jail("/", abi::JAIL_SCHEMES).map_err(|e| format!("jail: {e}"))?;
    check("outside scheme refused", sys::open("ramfs:/a", abi::O_CREAT | abi::O_RDWR) == Err(Errno(abi::EACCES)))?;
    let pid = daemon("inner", |mut s| {
        let Ok(req) = s.next() else { return 1 };
        let (ok, id) = (req.input == b"x".as_slice(), req.head.id);
        if s.answer(id, Err(Errno(abi::ENOENT)), &[]).is_err() {
            return 2;
        }
        if ok { 0 } else { 3 }
    })?;
    check("inside scheme reached", sys::open("inner:x", abi::O_RDONLY) == Err(Errno(abi::ENOENT)))?;
    wait_ok(pid)?;
    let child = match sys::clone(0) {
        Ok(0) => {
            // A jail without the flag, then an attempt to get it back.
            let narrowed = sys::jail("/", 0).is_ok();
            let widened = sys::jail("/", abi::JAIL_SCHEMES) == Err(Errno(abi::EPERM));
            let refused = SchemeServer::create("again").err() == Some(Errno(abi::EACCES));
            sys::exit(if narrowed && widened && refused { 0 } else { 1 })
        }
        Ok(p) => p,
        Err(e) => return Err(format!("fork: {e}")),
    };
    wait_ok(child)
}

fn bench(n: usize) -> core::result::Result<(), String> {
    let status = Command::new("/bin/ramfsd").status().map_err(|e| format!("spawn: {e}"))?;
    check("ramfsd started", status.success())?;
    let fd = sys::open("ramfs:/bench", abi::O_CREAT | abi::O_RDWR).map_err(|e| format!("open: {e}"))?;
    let chunk = vec![7u8; 64 * 1024];
    let mut left = n * 16;
    while left > 0 {
        let step = left.min(chunk.len());
        check("write", sys::write(fd, &chunk[..step]) == Ok(step))?;
        left -= step;
    }
    check("rewind", sys::lseek(fd, 0, abi::SEEK_SET) == Ok(0))?;
    let mut buf = [0u8; 16];
    for _ in 0..n {
        check("read", sys::read(fd, &mut buf) == Ok(16))?;
    }
    Ok(())
}

fn main() -> i32 {
    let args = env::args();
    let mode = args.get(1).map(String::as_str).unwrap_or("");
    let result = match mode {
        "bench" => match args.get(2).and_then(|s| s.parse().ok()) {
            Some(n) => bench(n),
            None => Err("usage: schemetest bench N".to_string()),
        },
        "ramfs" => ramfs(),
        "die" => die(),
        "signal" => signal(),
        "order" => order(),
        "jail" => jail(),
        "jail-schemes" => jail_schemes(),
        _ => Err("usage: schemetest ramfs|die|signal|order|jail|jail-schemes|bench N".to_string()),
    };
    match result {
        Ok(()) => {
            println!("schemetest: {mode} ok");
            0
        }
        Err(what) => {
            eprintln!("schemetest: {mode}: {what} failed");
            1
        }
    }
}
