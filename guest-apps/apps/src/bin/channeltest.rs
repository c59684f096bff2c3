//! `channeltest MODE`: guest tests of message channels (`warden_abi::ipc`), one scenario per
//! mode; prints `channeltest: MODE ok` and exits 0, or reports the first failure and exits 1.
//!
//! - `messages`: whole messages in order, EMSGSIZE leaving a message queued, `read`/`write`
//!   on endpoints, a read whose buffer runs into an unmapped page past the message's bytes,
//!   a per-call non-blocking send on a full queue (EAGAIN), EPIPE after close.
//! - `pass`: a pipe's write end and a file passed to a server process, which writes through
//!   them; a channel endpoint passed on, then used by its receiver; passing an endpoint of
//!   the same channel is EINVAL.
//! - `threads`: eight threads call one server through one shared endpoint, each answered
//!   with its own question; two server threads receive from one endpoint.
//! - `signal`: a signal interrupts a waiting caller (EINTR); the server's late answer fails
//!   with EPIPE.
//! - `hangup`: a server closing the reply capability unanswered, and a server dying, give
//!   the caller EPIPE.
//! - `cycle`: an endpoint whose inbox holds an endpoint cannot be passed (ETOOMANYREFS: it
//!   could close a cycle of endpoints that nothing frees), and can once that is received; an
//!   endpoint in flight is freed with the inbox it waits in (its peer hears the hang-up).
//! - `bench N`: N call/return round trips of 16 bytes to a server process (the figure
//!   `benches/syscall.rs` reports).

#![no_std]
#![no_main]

extern crate alloc;

use runtime::abi::{self, Errno, SigAction};
use runtime::channel::Endpoint;
use runtime::prelude::*;
use runtime::supervise::spawn_thread;
use runtime::{env, sys};

runtime::entry!(main);

type Outcome = core::result::Result<(), String>;

fn check(what: &str, ok: bool) -> Outcome {
    if ok { Ok(()) } else { Err(what.to_string()) }
}

/// Runs `child` in a forked process (which exits with its status); the parent's copies of
/// what `child` borrows stay the parent's.
fn fork(child: impl FnOnce() -> i32) -> core::result::Result<usize, String> {
    match sys::clone(0) {
        Ok(0) => sys::exit(child()),
        Ok(pid) => Ok(pid),
        Err(e) => Err(format!("fork: {e}")),
    }
}

fn wait_ok(pid: usize) -> Outcome {
    let (_, status) = sys::waitpid(pid, 0).map_err(|e| format!("waitpid: {e}"))?;
    check(&format!("child status {status:#x}"), abi::wifexited(status) && abi::wexitstatus(status) == 0)
}

/// A server answering every call with its bytes reversed, until its endpoint hangs up.
fn reverse_server(ep: &Endpoint) -> i32 {
    let mut buf = [0u8; 256];
    loop {
        let got = match ep.recv(&mut buf) {
            Ok(got) => got,
            Err(Errno(abi::EPIPE)) => return 0,
            Err(_) => return 1,
        };
        let Some(reply) = got.reply else { return 2 };
        buf[..got.len].reverse();
        if reply.answer(&buf[..got.len], &[]).is_err() {
            return 3;
        }
    }
}

fn messages() -> Outcome {
    let (a, b) = Endpoint::pair().map_err(|e| format!("channel: {e}"))?;
    check("send one", a.send(b"one", &[]).is_ok())?;
    check("send two", a.send(b"second", &[]).is_ok())?;
    let mut small = [0u8; 4];
    let mut buf = [0u8; 64];
    let got = b.recv(&mut buf).map_err(|e| format!("recv: {e}"))?;
    check("first whole", &buf[..got.len] == b"one" && got.fds.is_empty() && got.reply.is_none())?;
    check("too small: EMSGSIZE", b.recv(&mut small).err() == Some(Errno(abi::EMSGSIZE)))?;
    check("still queued", sys::read(b.fd(), &mut buf) == Ok(6) && &buf[..6] == b"second")?;
    check("write is a send", sys::write(b.fd(), b"back") == Ok(4))?;
    check("read is a recv", sys::read(a.fd(), &mut buf) == Ok(4) && &buf[..4] == b"back")?;
    check("empty: EAGAIN", sys::read(b.fd() | abi::FD_NONBLOCK_CALL, &mut buf) == Err(Errno(abi::EAGAIN)))?;
    // A read fills (and so checks) only the message's bytes: a buffer running into an
    // unmapped page is fine when the message fits before it.
    let map = abi::Map { offset: 0, size: 8192, flags: abi::PROT_READ | abi::PROT_WRITE | abi::MAP_PRIVATE, address: 0 };
    let page = sys::fmap(abi::ANONYMOUS_FD, &map).map_err(|e| format!("fmap: {e}"))?;
    // SAFETY: the second page was just mapped here and nothing refers to it.
    unsafe { sys::funmap(page + 4096, 4096) }.map_err(|e| format!("funmap: {e}"))?;
    check("send five", a.send(b"fives", &[]).is_ok())?;
    // SAFETY: the kernel writes at most the message's 5 bytes, all inside the mapped page
    // (8 bytes before its end); Rust never touches the buffer.
    let n = unsafe { runtime::syscall::syscall3(abi::SYS_READ, b.fd(), page + 4096 - 8, 4096) };
    check("read into a buffer crossing into an unmapped page", Errno::demux(n) == Ok(5))?;
    let mut sent = 0;
    while a.try_send(b"x", &[]).is_ok() {
        sent += 1;
    }
    check("full after the queue's length", sent == abi::ipc::CHANNEL_QUEUE)?;
    check("full: EAGAIN", a.try_send(b"x", &[]).err() == Some(Errno(abi::EAGAIN)))?;
    drop(b);
    check("closed: EPIPE", a.send(b"x", &[]).err() == Some(Errno(abi::EPIPE)))?;
    check("closed, empty: EPIPE", a.recv(&mut buf).err() == Some(Errno(abi::EPIPE)))
}

fn pass() -> Outcome {
    let (client, server) = Endpoint::pair().map_err(|e| format!("channel: {e}"))?;
    let pid = fork(|| {
        let _ = sys::close(client.fd());
        let mut buf = [0u8; 64];
        let Ok(got) = server.recv(&mut buf) else { return 1 };
        // A pipe's write end and a file: write through both.
        let [pipe, file] = got.fds.as_slice() else { return 2 };
        if sys::write(pipe.fd(), &buf[..got.len]).is_err() || sys::write(file.fd(), b"server was here").is_err() {
            return 3;
        }
        // An endpoint, passed on: answer through it.
        let Ok(got) = server.recv(&mut buf) else { return 4 };
        let Some(inner) = got.fds.into_iter().next() else { return 5 };
        let inner = Endpoint::from_raw_fd(inner.into_raw_fd());
        if inner.send(b"through the passed endpoint", &[]).is_err() {
            return 6;
        }
        0
    })?;
    drop(server);
    let [r, w] = sys::pipe2(0).map_err(|e| format!("pipe2: {e}"))?;
    let (r, w) = (File::from_raw_fd(r), File::from_raw_fd(w));
    let file = File::open_with("/tmp/passed", abi::O_CREAT | abi::O_RDWR | 0o644).map_err(|e| format!("open: {e}"))?;
    client.send(b"via the pipe", &[&w, &file]).map_err(|e| format!("send fds: {e}"))?;
    drop(w);
    let mut buf = [0u8; 64];
    check("pipe written by the receiver", sys::read(r.fd(), &mut buf) == Ok(12) && &buf[..12] == b"via the pipe")?;
    let (x, y) = Endpoint::pair().map_err(|e| format!("channel: {e}"))?;
    check("own endpoint refused", client.send(b"", &[client.file()]).err() == Some(Errno(abi::EINVAL)))?;
    client.send(b"take this", &[y.file()]).map_err(|e| format!("send endpoint: {e}"))?;
    drop(y);
    let got = x.recv(&mut buf).map_err(|e| format!("recv on passed: {e}"))?;
    check("message through the passed endpoint", &buf[..got.len] == b"through the passed endpoint")?;
    wait_ok(pid)?;
    check("file written by the receiver", sys::lseek(file.fd(), 0, abi::SEEK_SET) == Ok(0))?;
    check("file contents", sys::read(file.fd(), &mut buf) == Ok(15) && &buf[..15] == b"server was here")
}

/// What a calling thread shares with the main thread.
struct Shared {
    ep: Endpoint,
    done: Endpoint,
    calls: usize,
}

/// One calling thread's argument.
struct CallerArg {
    shared: &'static Shared,
    n: usize,
}

extern "C" fn caller(arg: usize) {
    // SAFETY: `arg` is the address of a leaked `CallerArg` (never freed).
    let CallerArg { shared, n } = unsafe { &*(arg as *const CallerArg) };
    let mut ok = true;
    for i in 0..shared.calls {
        let question = format!("t{n}c{i}");
        let mut buf = [0u8; 32];
        buf[..question.len()].copy_from_slice(question.as_bytes());
        match shared.ep.call(&mut buf, question.len(), &[]) {
            Ok((len, _)) => {
                let mut expect = question.into_bytes();
                expect.reverse();
                ok &= buf[..len] == expect[..];
            }
            Err(_) => ok = false,
        }
    }
    let _ = shared.done.send(if ok { b"ok" } else { b"no" }, &[]);
}

extern "C" fn server_thread(arg: usize) {
    // SAFETY: `arg` is the address of a leaked `Endpoint` (never freed).
    let ep = unsafe { &*(arg as *const Endpoint) };
    let _ = reverse_server(ep);
}

fn threads() -> Outcome {
    const THREADS: usize = 8;
    let (client, server) = Endpoint::pair().map_err(|e| format!("channel: {e}"))?;
    // Two server threads of one process share the server endpoint.
    let pid = fork(|| {
        let _ = sys::close(client.fd());
        let server: &'static Endpoint = Box::leak(Box::new(Endpoint::from_raw_fd(server.fd())));
        if spawn_thread(server_thread, server as *const Endpoint as usize).is_err() {
            return 9;
        }
        reverse_server(server)
    })?;
    drop(server);
    let (done_tx, done_rx) = Endpoint::pair().map_err(|e| format!("channel: {e}"))?;
    let shared: &'static Shared = Box::leak(Box::new(Shared { ep: client, done: done_tx, calls: 16 }));
    for n in 0..THREADS {
        let arg: &'static CallerArg = Box::leak(Box::new(CallerArg { shared, n }));
        spawn_thread(caller, arg as *const CallerArg as usize).map_err(|e| format!("thread: {e}"))?;
    }
    let mut buf = [0u8; 8];
    for _ in 0..THREADS {
        let got = done_rx.recv(&mut buf).map_err(|e| format!("done: {e}"))?;
        check("every answer its own", &buf[..got.len] == b"ok")?;
    }
    // The shared endpoint is leaked: close its descriptor so that the server hears the end.
    sys::close(shared.ep.fd()).map_err(|e| format!("close: {e}"))?;
    wait_ok(pid)
}

extern "C" fn on_signal(_sig: usize) {}

fn signal() -> Outcome {
    let act = SigAction { sa_handler: on_signal as *const () as usize, ..SigAction::default() };
    // SAFETY: `on_signal` does nothing, so it is sound to run at any time.
    unsafe { sys::sigaction(abi::SIGUSR1, Some(&act), 0) }.map_err(|e| format!("sigaction: {e}"))?;
    let parent = sys::getpid();
    let (client, server) = Endpoint::pair().map_err(|e| format!("channel: {e}"))?;
    let pid = fork(|| {
        let mut buf = [0u8; 16];
        let Ok(got) = server.recv(&mut buf) else { return 1 };
        let Some(reply) = got.reply else { return 2 };
        // The caller waits now: interrupt it, then answer too late.
        if sys::kill(parent, abi::SIGUSR1).is_err() {
            return 3;
        }
        // Its next call says the signal has been handled (the caller gave up).
        let Ok(next) = server.recv(&mut buf) else { return 4 };
        if reply.answer(b"late", &[]) != Err(Errno(abi::EPIPE)) {
            return 5;
        }
        match next.reply.map(|r| r.answer(b"on time", &[])) {
            Some(Ok(())) => 0,
            _ => 6,
        }
    })?;
    drop(server);
    let mut buf = [0u8; 16];
    buf[..4].copy_from_slice(b"slow");
    check("EINTR", client.call(&mut buf, 4, &[]).err() == Some(Errno(abi::EINTR)))?;
    let got = client.call(&mut buf, 4, &[]).map_err(|e| format!("second call: {e}"))?;
    check("second answered", &buf[..got.0] == b"on time")?;
    wait_ok(pid)
}

fn hangup() -> Outcome {
    let (client, server) = Endpoint::pair().map_err(|e| format!("channel: {e}"))?;
    let pid = fork(|| {
        let _ = sys::close(client.fd());
        let mut buf = [0u8; 16];
        // Drop the first reply capability unanswered, then die holding the second.
        let Ok(first) = server.recv(&mut buf) else { return 1 };
        drop(first);
        let Ok(_second) = server.recv(&mut buf) else { return 2 };
        sys::exit(0)
    })?;
    drop(server);
    let mut buf = [0u8; 16];
    check("dropped reply: EPIPE", client.call(&mut buf, 1, &[]).err() == Some(Errno(abi::EPIPE)))?;
    check("dead server: EPIPE", client.call(&mut buf, 1, &[]).err() == Some(Errno(abi::EPIPE)))?;
    wait_ok(pid)?;
    check("no server: EPIPE", client.call(&mut buf, 1, &[]).err() == Some(Errno(abi::EPIPE)))
}

fn cycle() -> Outcome {
    let (a, b) = Endpoint::pair().map_err(|e| format!("channel: {e}"))?;
    let (c, d) = Endpoint::pair().map_err(|e| format!("channel: {e}"))?;
    // d waits in b's inbox; b going into d's inbox would close the cycle b -> d -> b.
    a.send(b"d", &[d.file()]).map_err(|e| format!("send d: {e}"))?;
    check("b holding d refused", c.send(b"b", &[b.file()]).err() == Some(Errno(abi::ETOOMANYREFS)))?;
    check("refused over its own channel", a.send(b"b", &[b.file()]).err() == Some(Errno(abi::EINVAL)))?;
    let mut buf = [0u8; 8];
    let got = b.recv(&mut buf).map_err(|e| format!("recv d: {e}"))?;
    check("d received", got.fds.len() == 1)?;
    drop(got);
    // b's inbox is empty again: it may travel, and waits in d's inbox.
    c.send(b"b", &[b.file()]).map_err(|e| format!("send b: {e}"))?;
    drop(b);
    check("b alive in flight", a.send(b"x", &[]).is_ok())?;
    // Closing d drops its inbox, and with it the last reference to b: a hears the hang-up.
    drop(d);
    check("b freed with d's inbox", a.send(b"x", &[]).err() == Some(Errno(abi::EPIPE)))?;
    check("c sees d closed", c.send(b"x", &[]).err() == Some(Errno(abi::EPIPE)))
}

fn bench(n: usize) -> Outcome {
    let (client, server) = Endpoint::pair().map_err(|e| format!("channel: {e}"))?;
    let pid = fork(|| {
        let _ = sys::close(client.fd());
        reverse_server(&server)
    })?;
    drop(server);
    let mut buf = [7u8; 16];
    for _ in 0..n {
        check("call", client.call(&mut buf, 16, &[]).map(|r| r.0) == Ok(16))?;
    }
    drop(client);
    wait_ok(pid)
}

fn main() -> i32 {
    let args = env::args();
    let mode = args.get(1).map(String::as_str).unwrap_or("");
    let result = match mode {
        "bench" => match args.get(2).and_then(|s| s.parse().ok()) {
            Some(n) => bench(n),
            None => Err("usage: channeltest bench N".to_string()),
        },
        "messages" => messages(),
        "pass" => pass(),
        "threads" => threads(),
        "signal" => signal(),
        "hangup" => hangup(),
        "cycle" => cycle(),
        _ => Err("usage: channeltest messages|pass|threads|signal|hangup|cycle|bench N".to_string()),
    };
    match result {
        Ok(()) => {
            println!("channeltest: {mode} ok");
            0
        }
        Err(what) => {
            eprintln!("channeltest: {mode}: {what} failed");
            1
        }
    }
}
