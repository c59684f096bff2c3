//! `supbench N`: the guest-supervisor round trip of `benches/syscall.rs`.
//!
//! The supervisor spawns `supbench --child N` with `CLONE_SUPERVISE` and a blocking
//! `SUPERVISE` descriptor; the child makes N `getpid` calls through the `syscall` gate and
//! exits. The supervisor answers every syscall packet with `REPLY_RUN` (run the call on the
//! kernel's copy) and every other packet that wants a reply with `REPLY_DEFAULT`, until the
//! blocking read returns 0 bytes (no supervised process left). It then prints
//! `supbench: N calls, M packets` and exits 0 if the child exited 0.
//!
//! It reads into a 4 KiB buffer, as a lean supervisor would (a getpid packet is a bare
//! header; a longer packet is truncated and flagged, which is fine here).

#![no_std]
#![no_main]

extern crate alloc;

use runtime::abi::{self, SupervisePacket, SuperviseReply};
use runtime::prelude::*;
use runtime::{env, sys};

runtime::entry!(main);

fn child(n: usize) -> i32 {
    for _ in 0..n {
        sys::getpid();
    }
    0
}

fn main() -> i32 {
    let args = env::args();
    let (is_child, n) = match args.get(1).map(String::as_str) {
        Some("--child") => (true, args.get(2)),
        _ => (false, args.get(1)),
    };
    let Some(n) = n.and_then(|s| s.parse::<usize>().ok()) else {
        eprintln!("usage: supbench N");
        return 2;
    };
    if is_child {
        return child(n);
    }
    let spawned =
        Command::new("/bin/supbench").arg("--child").arg(&format!("{n}")).spawn_supervised_with(abi::SUPERVISE_BLOCK);
    let (mut kid, file) = match spawned {
        Ok(c) => c,
        Err(e) => {
            eprintln!("supbench: spawn: {e}");
            return 1;
        }
    };
    let fd = file.fd();
    let mut buf = [0u8; 4096];
    let mut packets = 0usize;
    loop {
        let got = match sys::read(fd, &mut buf) {
            Ok(0) => break,
            Ok(got) => got,
            Err(abi::Errno(abi::EINTR)) => continue,
            Err(e) => {
                eprintln!("supbench: read: {e}");
                return 1;
            }
        };
        let Some(head) = SupervisePacket::from_bytes(&buf[..got]) else {
            eprintln!("supbench: short packet");
            return 1;
        };
        packets += 1;
        if head.flags & abi::PACKET_FLAG_REPLY == 0 {
            continue;
        }
        let action = if head.kind == abi::PACKET_SYSCALL { abi::REPLY_RUN } else { abi::REPLY_DEFAULT };
        let reply = SuperviseReply { seq: head.seq, action, flags: 0, value: 0, data_len: 0 };
        if let Err(e) = sys::write(fd, &reply.to_bytes()) {
            eprintln!("supbench: reply: {e}");
            return 1;
        }
    }
    let status = kid.wait().map(|s| s.code()).unwrap_or(None);
    println!("supbench: {n} calls, {packets} packets");
    if status == Some(0) { 0 } else { 1 }
}
