//! `bomb MODE [N]` exhausts one resource on purpose, for the kernel's limit tests
//! (tests/limits.rs). Each mode reports what the kernel answered on stdout, one line:
//! - `fork`: forks children (which wait on a pipe) until `clone` fails; prints
//!   `fork: EAGAIN after N children`, releases and reaps them, exits 0.
//! - `forkstorm`: every process forks forever, retrying after failures (only the
//!   instruction budget ends it).
//! - `mem [MIB]`: maps 1 MiB anonymous chunks (touching every page) until `fmap` fails or
//!   MIB chunks (default unlimited); prints `mem: ENOMEM after N MiB`, exits 0.
//! - `memtotal [CHILDREN]`: CHILDREN (default 3) forked children each map chunks as `mem`
//!   does, report their count and hold their memory until all have reported; prints each
//!   count and `memtotal: N MiB in total`.
//! - `fds`: opens `null:` until `open` fails; prints `fds: EMFILE after N opens`.
//! - `pipe`: writes into a pipe nobody reads: blocks for ever (the kernel reports a deadlock).
//! - `pipe-nonblock`: the same with `O_NONBLOCK`; prints `pipe: EAGAIN after N bytes`.
//! - `pipe-pair [MIB]`: a child reads what the parent writes through a pipe (default 4 MiB);
//!   prints `pipe-pair: N bytes`.
//! - `recurse`: unbounded recursion (the stack overflows: SIGSEGV).
//! - `spin`: an endless loop.
//! - `flood [MIB]`: writes MIB MiB (default 64) to stdout in 64 KiB chunks, then exits 0.

#![no_std]
#![no_main]

use runtime::abi::{self, Errno, Map};
use runtime::prelude::*;
use runtime::{env, sys};

runtime::entry!(main);

const MIB: usize = 1 << 20;

fn errno_name(e: Errno) -> &'static str {
    match e.0 {
        abi::EAGAIN => "EAGAIN",
        abi::ENOMEM => "ENOMEM",
        abi::EMFILE => "EMFILE",
        abi::ENFILE => "ENFILE",
        abi::ENOSPC => "ENOSPC",
        _ => "another error",
    }
}

/// Maps and touches 1 MiB chunks until failure or `max`; returns (chunks, the error).
fn map_chunks(max: usize) -> (usize, Option<Errno>) {
    let mut n = 0;
    while n < max {
        let map = Map { offset: 0, size: MIB, flags: abi::PROT_READ | abi::PROT_WRITE | abi::MAP_PRIVATE, address: 0 };
        match sys::fmap(abi::ANONYMOUS_FD, &map) {
            Ok(addr) => {
                for page in (0..MIB).step_by(4096) {
                    // SAFETY: the kernel just mapped MIB writable bytes at `addr`.
                    unsafe { core::ptr::write_volatile((addr + page) as *mut u8, 1) };
                }
                n += 1;
            }
            Err(e) => return (n, Some(e)),
        }
    }
    (n, None)
}

fn fork_mode() -> i32 {
    let Ok([hold_r, hold_w]) = sys::pipe2(0) else { return 3 };
    let mut children = 0usize;
    let err = loop {
        match sys::clone(0) {
            Ok(0) => {
                let _ = sys::close(hold_w);
                let mut b = [0u8; 1];
                let _ = sys::read(hold_r, &mut b);
                sys::exit(0);
            }
            Ok(_) => children += 1,
            Err(e) => break e,
        }
    };
    println!("fork: {} after {children} children", errno_name(err));
    let _ = sys::close(hold_w);
    let mut reaped = 0;
    while sys::waitpid(0, 0).is_ok() {
        reaped += 1;
    }
    println!("fork: reaped {reaped}");
    if reaped == children { 0 } else { 1 }
}

fn forkstorm() -> i32 {
    loop {
        if sys::clone(0).is_err() {
            let _ = sys::sched_yield();
        }
    }
}

fn mem_mode(max: usize) -> i32 {
    let (n, err) = map_chunks(max);
    match err {
        Some(e) => println!("mem: {} after {n} MiB", errno_name(e)),
        None => println!("mem: {n} MiB, no error"),
    }
    0
}

fn memtotal(children: usize) -> i32 {
    let (Ok([res_r, res_w]), Ok([hold_r, hold_w])) = (sys::pipe2(0), sys::pipe2(0)) else { return 3 };
    for _ in 0..children {
        match sys::clone(0) {
            Ok(0) => {
                let _ = sys::close(hold_w);
                let _ = sys::close(res_r);
                let (n, _) = map_chunks(usize::MAX);
                let _ = sys::write(res_w, &(n as u32).to_le_bytes());
                let mut b = [0u8; 1];
                let _ = sys::read(hold_r, &mut b);
                sys::exit(0);
            }
            Ok(_) => {}
            Err(e) => {
                println!("memtotal: fork failed: {}", errno_name(e));
                return 1;
            }
        }
    }
    let _ = sys::close(res_w);
    let mut total = 0usize;
    for i in 0..children {
        let mut b = [0u8; 4];
        let mut got = 0;
        while got < 4 {
            match sys::read(res_r, &mut b[got..]) {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        let n = u32::from_le_bytes(b) as usize;
        println!("memtotal: child {i} got {n} MiB");
        total += n;
    }
    println!("memtotal: {total} MiB in total");
    let _ = sys::close(hold_w);
    while sys::waitpid(0, 0).is_ok() {}
    0
}

fn fds() -> i32 {
    let mut n = 0usize;
    let err = loop {
        match sys::open("null:", abi::O_RDONLY) {
            Ok(_) => n += 1,
            Err(e) => break e,
        }
    };
    println!("fds: {} after {n} opens", errno_name(err));
    // The table still works once a descriptor is freed.
    let _ = sys::close(3);
    match sys::open("null:", abi::O_RDONLY) {
        Ok(fd) => println!("fds: reopened as {fd}"),
        Err(e) => println!("fds: reopen failed: {}", errno_name(e)),
    }
    0
}

fn pipe_mode(nonblock: bool) -> i32 {
    let flags = if nonblock { abi::O_NONBLOCK } else { 0 };
    let Ok([_r, w]) = sys::pipe2(flags) else { return 3 };
    let chunk = [b'x'; 4096];
    let mut total = 0usize;
    loop {
        match sys::write(w, &chunk) {
            Ok(n) => total += n,
            Err(e) => {
                println!("pipe: {} after {total} bytes", errno_name(e));
                return 0;
            }
        }
    }
}

fn pipe_pair(mib: usize) -> i32 {
    let Ok([r, w]) = sys::pipe2(0) else { return 3 };
    match sys::clone(0) {
        Ok(0) => {
            let _ = sys::close(w);
            let mut buf = [0u8; 8192];
            let mut total = 0usize;
            loop {
                match sys::read(r, &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => total += n,
                }
            }
            println!("pipe-pair: {total} bytes");
            sys::exit(0);
        }
        Ok(_) => {}
        Err(_) => return 3,
    }
    let _ = sys::close(r);
    let chunk = [b'y'; 16384];
    let mut left = mib * MIB;
    while left > 0 {
        match sys::write(w, &chunk[..left.min(chunk.len())]) {
            Ok(n) => left -= n,
            Err(_) => return 1,
        }
    }
    let _ = sys::close(w);
    let _ = sys::waitpid(0, 0);
    0
}

#[inline(never)]
#[allow(unconditional_recursion, reason = "overflows the stack on purpose")]
fn recurse(depth: u64) -> u64 {
    let pad = [depth; 64];
    core::hint::black_box(&pad);
    recurse(depth + 1) + pad[3]
}

fn flood(mib: usize) -> i32 {
    let chunk = [b'z'; 65536];
    for _ in 0..mib * 16 {
        if runtime::io::write_all(1, &chunk).is_err() {
            return 1;
        }
    }
    0
}

fn main() -> i32 {
    let args = env::args();
    let mode = args.get(1).map(|s| s.as_str()).unwrap_or("");
    let num = |default: usize| args.get(2).and_then(|s| s.parse::<usize>().ok()).unwrap_or(default);
    match mode {
        "fork" => fork_mode(),
        "forkstorm" => forkstorm(),
        "mem" => mem_mode(num(usize::MAX)),
        "memtotal" => memtotal(num(3)),
        "fds" => fds(),
        "pipe" => pipe_mode(false),
        "pipe-nonblock" => pipe_mode(true),
        "pipe-pair" => pipe_pair(num(4)),
        "recurse" => recurse(0) as i32,
        "spin" => loop {
            core::hint::spin_loop();
        },
        "flood" => flood(num(64)),
        _ => {
            eprintln!(
                "usage: bomb fork|forkstorm|mem [MIB]|memtotal [N]|fds|pipe|pipe-nonblock|pipe-pair [MIB]|recurse|spin|flood [MIB]"
            );
            2
        }
    }
}
