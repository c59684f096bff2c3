//! `testprog MODE [ARGS...]`: a program with known behaviour, for `warden test`, `warden
//! record`/`replay` and their tests.
//!
//! Modes: `pass` (prints `ok`, exits 0), `fail` (message on stderr, exits 1), `exit N`,
//! `echo ARGS...` (prints the arguments), `cat` (copies stdin to stdout, then prints the
//! byte count on stderr), `clock` (prints both clocks), `spin` (loops forever), `segv`
//! (writes to address 0), `fork N` (N children write a line each through one pipe; the
//! parent prints what it read and their statuses), `race [N]` (two processes each add 1 to
//! a counter file N times with an unlocked read-modify-write; exits 1 if an update was
//! lost: the result depends on where preemption falls, so on `--seed`), `syscalls N` (N
//! rounds of getpid, clock_gettime and a 16-byte write to `null:`: a syscall-heavy load).

#![no_std]
#![no_main]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;

use runtime::fs::File;
use runtime::process::{Command, Stdio};
use runtime::{env, eprintln, io, print, println, sys, time};

runtime::entry!(main);

fn number(args: &[String], i: usize, default: u64) -> u64 {
    args.get(i).and_then(|s| s.parse().ok()).unwrap_or(default)
}

fn read_counter(path: &str) -> u64 {
    let mut buf = [0u8; 32];
    let Ok(f) = File::open(path) else { return 0 };
    let n = f.read(&mut buf).unwrap_or(0);
    core::str::from_utf8(&buf[..n]).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0)
}

fn race(rounds: u64) -> i32 {
    let path = alloc::format!("/tmp/race-{}", sys::getpid());
    if runtime::fs::write(&path, b"0").is_err() {
        eprintln!("testprog race: cannot create {path}");
        return 2;
    }
    let worker = |path: String| {
        move || {
            for _ in 0..rounds {
                let v = read_counter(&path);
                // Some work between the read and the write widens the window.
                let mut x = v;
                for i in 0..200u64 {
                    x = core::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
                }
                core::hint::black_box(x);
                let _ = runtime::fs::write(&path, alloc::format!("{}", v + 1).as_bytes());
            }
            0
        }
    };
    let a = Command::new("race").spawn_fn(worker(path.clone()));
    let b = Command::new("race").spawn_fn(worker(path.clone()));
    let (Ok(mut a), Ok(mut b)) = (a, b) else {
        eprintln!("testprog race: cannot fork");
        return 2;
    };
    let _ = (a.wait(), b.wait());
    let total = read_counter(&path);
    let _ = runtime::fs::remove_file(&path);
    if total == 2 * rounds {
        println!("race: {total} (no lost update)");
        0
    } else {
        println!("race: {total}, expected {} (lost updates)", 2 * rounds);
        1
    }
}

fn fork(children: u64) -> i32 {
    let Ok([r, w]) = sys::pipe2(0) else {
        eprintln!("testprog fork: pipe failed");
        return 2;
    };
    let mut kids = Vec::new();
    for i in 0..children {
        let spawned = Command::new("child").stdout(Stdio::Fd(w)).spawn_fn(move || {
            let _ = io::write_all(io::STDOUT, alloc::format!("child {i} pid {}\n", sys::getpid()).as_bytes());
            (i % 7) as i32
        });
        match spawned {
            Ok(c) => kids.push(c),
            Err(e) => {
                eprintln!("testprog fork: {e}");
                return 2;
            }
        }
    }
    let _ = sys::close(w);
    let mut out = Vec::new();
    let _ = io::read_to_end(r, &mut out);
    print!("{}", String::from_utf8_lossy(&out));
    for (i, mut k) in kids.into_iter().enumerate() {
        match k.wait() {
            Ok(s) => println!("child {i}: {s}"),
            Err(e) => println!("child {i}: wait failed: {e}"),
        }
    }
    0
}

fn main() -> i32 {
    let args = env::args();
    let mode = args.get(1).map(|s| s.as_str()).unwrap_or("");
    match mode {
        "pass" => {
            println!("ok");
            0
        }
        "fail" => {
            eprintln!("testprog: failing on purpose");
            1
        }
        "exit" => number(&args, 2, 0) as i32,
        "echo" => {
            let rest: Vec<&str> = args.iter().skip(2).map(|s| s.as_str()).collect();
            println!("{}", rest.join(" "));
            0
        }
        "cat" => {
            let mut data = Vec::new();
            let n = io::read_to_end(io::STDIN, &mut data).unwrap_or(0);
            let _ = io::write_all(io::STDOUT, &data);
            eprintln!("testprog cat: {n} bytes");
            0
        }
        "clock" => {
            let m = time::monotonic().map(|t| time::as_nanos(&t)).unwrap_or(0);
            let r = time::realtime().map(|t| time::as_nanos(&t)).unwrap_or(0);
            let _ = time::sleep_nanos(1_000_000);
            let m2 = time::monotonic().map(|t| time::as_nanos(&t)).unwrap_or(0);
            println!("monotonic {m} realtime {r} after-sleep {m2}");
            0
        }
        "spin" => loop {
            core::hint::spin_loop();
        },
        "segv" => {
            // SAFETY: deliberately faults; the kernel turns it into SIGSEGV.
            unsafe { core::ptr::write_volatile(core::ptr::null_mut::<u64>(), 1) };
            1
        }
        "fork" => fork(number(&args, 2, 3)),
        "race" => race(number(&args, 2, 40)),
        "syscalls" => {
            let rounds = number(&args, 2, 10_000);
            let Ok(null) = File::create("null:") else {
                eprintln!("testprog syscalls: cannot open null:");
                return 2;
            };
            let mut acc = 0usize;
            for _ in 0..rounds {
                acc = acc.wrapping_add(sys::getpid());
                acc = acc.wrapping_add(time::monotonic().map(|t| t.tv_nsec as usize).unwrap_or(0));
                let _ = null.write(b"0123456789abcdef");
            }
            println!("{rounds} rounds ({})", acc & 1);
            0
        }
        _ => {
            eprintln!("usage: testprog pass|fail|exit N|echo ARGS|cat|clock|spin|segv|fork N|race [N]|syscalls N");
            2
        }
    }
}
