//! `chandemo`: an example client and server talking over a message channel
//! (`runtime::channel`, ABI in `warden_abi::ipc`).
//!
//! The server is a forked process holding one endpoint; it receives whole messages, each a
//! `call` carrying its own reply capability, and answers through it:
//! - `upper TEXT` is answered with TEXT in capitals;
//! - `log TEXT` comes with a descriptor (the client's stdout): the server writes TEXT through
//!   it, then answers `done`.
//!
//! The client calls `upper` once, passes its stdout with `log`, then starts four threads that
//! share its one endpoint and call `upper` five times each: every thread gets its own
//! answers, with no bus process and no locking in the client.

#![no_std]
#![no_main]

extern crate alloc;

use runtime::channel::Endpoint;
use runtime::prelude::*;
use runtime::supervise::spawn_thread;
use runtime::{abi, sys};

runtime::entry!(main);

fn serve(ep: &Endpoint) -> i32 {
    let mut buf = [0u8; 512];
    loop {
        let got = match ep.recv(&mut buf) {
            Ok(got) => got,
            Err(_) => return 0, // EPIPE: the client is gone
        };
        let Some(reply) = got.reply else { continue };
        let msg = &buf[..got.len];
        let answer: Vec<u8> = if let Some(text) = msg.strip_prefix(b"upper ") {
            text.to_ascii_uppercase()
        } else if let (Some(text), Some(out)) = (msg.strip_prefix(b"log "), got.fds.first()) {
            let _ = sys::write(out.fd(), text);
            b"done".to_vec()
        } else {
            b"?".to_vec()
        };
        let _ = reply.answer(&answer, &[]);
    }
}

fn call(ep: &Endpoint, request: &str, fds: &[&File]) -> String {
    let mut buf = [0u8; 512];
    buf[..request.len()].copy_from_slice(request.as_bytes());
    match ep.call(&mut buf, request.len(), fds) {
        Ok((n, _)) => String::from_utf8_lossy(&buf[..n]).into_owned(),
        Err(e) => format!("error: {e}"),
    }
}

/// What each client thread gets.
struct Job {
    ep: &'static Endpoint,
    done: &'static Endpoint,
    n: usize,
}

extern "C" fn worker(arg: usize) {
    // SAFETY: `arg` is the address of a leaked `Job` (never freed).
    let job = unsafe { &*(arg as *const Job) };
    let mut own = true;
    for i in 0..5 {
        let word = format!("thread {} call {i}", job.n);
        own &= call(job.ep, &format!("upper {word}"), &[]) == word.to_uppercase();
    }
    let _ = job.done.send(if own { b"ok" } else { b"mixed up" }, &[]);
}

fn main() -> i32 {
    let (client, server) = match Endpoint::pair() {
        Ok(pair) => pair,
        Err(e) => {
            eprintln!("chandemo: channel: {e}");
            return 1;
        }
    };
    let pid = match sys::clone(0) {
        Ok(0) => {
            let _ = sys::close(client.fd());
            sys::exit(serve(&server))
        }
        Ok(pid) => pid,
        Err(e) => {
            eprintln!("chandemo: fork: {e}");
            return 1;
        }
    };
    drop(server);
    println!("client: upper(\"hello, channels\") = {:?}", call(&client, "upper hello, channels", &[]));
    let stdout = File::from_raw_fd(1);
    let logged = call(&client, "log server: this line went through the descriptor the client passed\n", &[&stdout]);
    let _ = stdout.into_raw_fd();
    println!("client: log answered {logged:?}");
    let ep: &'static Endpoint = Box::leak(Box::new(client));
    let (done_tx, done_rx) = match Endpoint::pair() {
        Ok(pair) => pair,
        Err(e) => {
            eprintln!("chandemo: channel: {e}");
            return 1;
        }
    };
    let done: &'static Endpoint = Box::leak(Box::new(done_tx));
    for n in 0..4 {
        let job: &'static Job = Box::leak(Box::new(Job { ep, done, n }));
        if let Err(e) = spawn_thread(worker, job as *const Job as usize) {
            eprintln!("chandemo: thread: {e}");
            return 1;
        }
    }
    let mut own = 0;
    let mut buf = [0u8; 16];
    for _ in 0..4 {
        if matches!(done_rx.recv(&mut buf), Ok(got) if &buf[..got.len] == b"ok") {
            own += 1;
        }
    }
    println!("client: 4 threads made 20 calls through one endpoint; {own} of 4 got only their own answers");
    let _ = sys::close(ep.fd()); // the server sees the channel hang up and exits
    match sys::waitpid(pid, 0) {
        Ok((_, status)) if abi::wifexited(status) => {
            println!("client: server exited {}", abi::wexitstatus(status));
            if own == 4 { 0 } else { 1 }
        }
        _ => 1,
    }
}
