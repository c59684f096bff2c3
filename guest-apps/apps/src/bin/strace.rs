//! `strace PROGRAM [ARGS...]`: runs PROGRAM supervised (`spawn_supervised`, `SUPERVISE_BLOCK`)
//! and prints one strace-style line per system call on stderr: `pid name(args) = result`.
//! Children are followed (they are supervised from birth). Exits with PROGRAM's status.
//!
//! Design: every entry packet is answered with `REPLY_RUN_REPORT` and remembered per thread;
//! the line is printed when the result packet arrives (so `read` shows the bytes it
//! returned). Calls that never return a result print `= ?` (exit, a successful `fexec`,
//! or a call cut short). Exceptions print `--- SIGNAL {...} ---` and take their default
//! action; exits print `+++ exited with N +++`. Formatting is `warden_abi::trace`, shared
//! with the host's `warden trace`.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use runtime::abi::{self, trace};
use runtime::prelude::*;
use runtime::supervise::Supervisor;
use runtime::{env, io};

runtime::entry!(main);

struct Pending {
    tid: u32,
    pid: u32,
    number: usize,
    args: [u64; 6],
    items: Vec<u8>,
}

fn emit(line: &str) {
    let _ = io::write_all(io::STDERR, line.as_bytes());
}

fn print_call(p: &Pending, outputs: Option<&[u8]>, ret: Option<u64>) {
    let mut line = String::new();
    let _ = write!(line, "{} ", p.pid);
    let _ = trace::write_call(&mut line, p.number, &p.args, &p.items, outputs);
    match ret {
        Some(r) => {
            line.push(' ');
            let _ = trace::write_result(&mut line, p.number, r);
        }
        None => line.push_str(" = ?"),
    }
    line.push('\n');
    emit(&line);
}

fn main() -> i32 {
    let args = env::args();
    let Some(program) = args.get(1) else {
        eprintln!("usage: strace PROGRAM [ARGS...]");
        return 2;
    };
    let (mut child, fd) = match Command::new(program).args(&args[2..]).spawn_supervised_with(abi::SUPERVISE_BLOCK) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("strace: {program}: {e}");
            return 127;
        }
    };
    let mut sup = Supervisor::new(fd);
    let mut pending: Vec<Pending> = Vec::new();
    loop {
        let packet = match sup.next() {
            Ok(Some(p)) => p,
            Ok(None) => break,
            Err(e) => {
                eprintln!("strace: read: {e}");
                break;
            }
        };
        let h = packet.head;
        match h.kind {
            abi::PACKET_SYSCALL => {
                if let Some(i) = pending.iter().position(|p| p.tid == h.tid) {
                    let old = pending.remove(i);
                    print_call(&old, None, None);
                }
                let p = Pending {
                    tid: h.tid,
                    pid: h.pid,
                    number: h.number as usize,
                    args: h.args,
                    items: packet.items.to_vec(),
                };
                let seq = h.seq;
                if p.number == abi::SYS_EXIT {
                    print_call(&p, None, None);
                } else {
                    pending.push(p);
                }
                let _ = sup.reply(seq, abi::REPLY_RUN_REPORT, 0);
            }
            abi::PACKET_RESULT => {
                let seq = h.seq;
                if let Some(i) = pending.iter().position(|p| p.tid == h.tid) {
                    let p = pending.remove(i);
                    print_call(&p, Some(packet.items), Some(h.ret));
                }
                let _ = sup.reply(seq, abi::REPLY_RUN, 0);
            }
            abi::PACKET_EXCEPTION => {
                let mut line = String::new();
                let _ = write!(line, "{} ", h.pid);
                let _ = trace::write_exception(&mut line, h.number, h.args[0], h.args[1], h.args[3]);
                line.push('\n');
                emit(&line);
                let _ = sup.reply(h.seq, abi::REPLY_DEFAULT, 0);
            }
            abi::PACKET_EXEC => {
                if let Some(i) = pending.iter().position(|p| p.pid == h.pid && p.number == abi::SYS_FEXEC) {
                    let p = pending.remove(i);
                    print_call(&p, None, Some(0));
                }
            }
            abi::PACKET_EXIT => {
                pending.retain(|p| p.pid != h.pid);
                let mut line = String::new();
                let _ = write!(line, "{} ", h.pid);
                let _ = trace::write_exit(&mut line, h.number as usize);
                line.push('\n');
                emit(&line);
            }
            _ => {}
        }
    }
    match child.wait() {
        Ok(status) => status.shell_code(),
        Err(_) => 1,
    }
}
