//! `suptarget MODE`: the supervised side of the supervision tests (run by `suptest MODE`).
//!
//! Modes:
//! - `race-open`, `race-write`, `race-exec`: two threads share memory (`spawn_thread`); the
//!   main thread makes a call the supervisor allows (open `/tmp/good`, write `GOOD DATA`,
//!   fexec `/bin/echo GOOD`) while the other thread, during the hold, rewrites the path /
//!   buffer / argv (and `dup2`s `/bin/false` over the exec descriptor), then makes a
//!   `getppid` call as a marker. The kernel must act on its own copy.
//! - `seed`: getpid, a long nanosleep and an open, each answered by a bare 8-byte value.
//! - `exc`: int3, `int 0x42` (both resumed by the supervisor), then ud2 (default: SIGILL).
//! - `result`: reads 16 bytes of /etc/rc and prints them (the supervisor rewrites them).
//! - `fork`: spawns `/bin/echo grandchild` and waits (the grandchild is supervised too).

#![no_std]
#![no_main]

extern crate alloc;

use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use runtime::abi;
use runtime::prelude::*;
use runtime::supervise::spawn_thread;
use runtime::syscall::{syscall3, syscall5};
use runtime::{env, fs, sys, time};

runtime::entry!(main);

static BUF: [AtomicU8; 16] = [const { AtomicU8::new(0) }; 16];
static ARG0: [AtomicU8; 8] = [const { AtomicU8::new(0) }; 8];
static FLAG: AtomicUsize = AtomicUsize::new(0);
static EXEC_FD: AtomicUsize = AtomicUsize::new(0);
static EVIL_FD: AtomicUsize = AtomicUsize::new(0);

fn store(buf: &[AtomicU8], bytes: &[u8]) {
    for (slot, &b) in buf.iter().zip(bytes) {
        slot.store(b, Ordering::SeqCst);
    }
}

fn load(buf: &[AtomicU8], len: usize) -> Vec<u8> {
    buf.iter().take(len).map(|b| b.load(Ordering::SeqCst)).collect()
}

/// The second thread: waits for the hold, rewrites everything, marks with `getppid`.
extern "C" fn attacker(mode: usize) {
    while FLAG.load(Ordering::SeqCst) != 1 {
        core::hint::spin_loop();
    }
    match mode {
        0 => store(&BUF, b"/tmp/evil"),
        1 => store(&BUF, b"EVIL DATA\n"),
        _ => {
            store(&ARG0, b"EVIL");
            let _ = sys::dup2(EVIL_FD.load(Ordering::SeqCst), EXEC_FD.load(Ordering::SeqCst), &[]);
        }
    }
    let _ = sys::getppid();
    FLAG.store(2, Ordering::SeqCst);
}

fn race(mode: usize) -> i32 {
    let _ = fs::write("/tmp/good", b"GOOD");
    let _ = fs::write("/tmp/evil", b"EVIL");
    match mode {
        0 => store(&BUF, b"/tmp/good"),
        1 => store(&BUF, b"GOOD DATA\n"),
        _ => {
            store(&ARG0, b"GOOD");
            let exec = sys::open("/bin/echo", abi::O_RDONLY).unwrap_or(usize::MAX);
            let evil = sys::open("/bin/false", abi::O_RDONLY).unwrap_or(usize::MAX);
            EXEC_FD.store(exec, Ordering::SeqCst);
            EVIL_FD.store(evil, Ordering::SeqCst);
        }
    }
    let out =
        if mode == 1 { sys::open("/tmp/out", abi::O_WRONLY | abi::O_CREAT | abi::O_TRUNC | 0o644).ok() } else { None };
    if let Err(e) = spawn_thread(attacker, mode) {
        println!("race: cannot start thread: {e}");
        return 1;
    }
    FLAG.store(1, Ordering::SeqCst);
    let buf = BUF.as_ptr() as usize;
    match mode {
        0 => {
            // SAFETY: the kernel reads 9 bytes at `buf`, a static buffer.
            let ret = unsafe { syscall3(abi::SYS_OPEN, buf, 9, abi::O_RDONLY) };
            let now = load(&BUF, 9);
            println!("race-open: buffer after the call: {}", String::from_utf8_lossy(&now));
            match abi::Errno::demux(ret) {
                Ok(fd) => {
                    let mut data = [0u8; 8];
                    let n = sys::read(fd, &mut data).unwrap_or(0);
                    println!("race-open: opened file contains {}", String::from_utf8_lossy(&data[..n]));
                }
                Err(e) => println!("race-open: open failed: {e}"),
            }
        }
        1 => {
            let fd = out.unwrap_or(usize::MAX);
            // SAFETY: the kernel reads 10 bytes at `buf`, a static buffer.
            let ret = unsafe { syscall3(abi::SYS_WRITE, fd, buf, 10) };
            let now = load(&BUF, 10);
            println!("race-write: buffer after the call: {}", String::from_utf8_lossy(&now).trim_end());
            println!("race-write: write returned {:?}", abi::Errno::demux(ret));
            let written = fs::read("/tmp/out").unwrap_or_default();
            println!("race-write: file contains {}", String::from_utf8_lossy(&written).trim_end());
        }
        _ => {
            let echo = b"echo";
            let pairs: [[usize; 2]; 2] = [[echo.as_ptr() as usize, 4], [ARG0.as_ptr() as usize, 4]];
            let fd = EXEC_FD.load(Ordering::SeqCst);
            // SAFETY: `pairs` describes live buffers; the kernel only reads them.
            let ret = unsafe { syscall5(abi::SYS_FEXEC, fd, pairs.as_ptr() as usize, 2, 0, 0) };
            println!("race-exec: fexec failed: {:?}", abi::Errno::demux(ret));
            return 1;
        }
    }
    0
}

fn main() -> i32 {
    let args = env::args();
    match args.get(1).map(String::as_str) {
        Some("race-open") => race(0),
        Some("race-write") => race(1),
        Some("race-exec") => race(2),
        Some("seed") => {
            println!("getpid = {}", sys::getpid());
            let before = time::monotonic().map(|t| time::as_nanos(&t)).unwrap_or(0);
            let r = sys::nanosleep(&abi::TimeSpec { tv_sec: 100, tv_nsec: 0 });
            let after = time::monotonic().map(|t| time::as_nanos(&t)).unwrap_or(0);
            let short = after.saturating_sub(before) < 1_000_000_000;
            println!("nanosleep = {r:?}, cancelled = {short}");
            match sys::open("/etc/rc", abi::O_RDONLY) {
                Ok(fd) => println!("open = {fd}"),
                Err(e) => println!("open = {}", e.name()),
            }
            0
        }
        Some("exc") => {
            // SAFETY: traps into the supervisor, which resumes after the instruction.
            unsafe { core::arch::asm!("int3", "int 0x42") };
            println!("resumed after int3 and int 0x42");
            // SAFETY: raises #UD, which the supervisor leaves to the default action.
            unsafe { core::arch::asm!("ud2") };
            0
        }
        Some("result") => {
            let mut data = [0u8; 16];
            let n = File::open("/etc/rc").and_then(|f| f.read(&mut data)).unwrap_or(0);
            println!("read {n}: {}", String::from_utf8_lossy(&data[..n]));
            0
        }
        Some("fork") => {
            let status = Command::new("/bin/echo").arg("grandchild").status();
            println!("grandchild: {:?}", status.map(|s| s.shell_code()));
            0
        }
        _ => {
            eprintln!("usage: suptarget race-open|race-write|race-exec|seed|exc|result|fork");
            2
        }
    }
}
