//! `suptest MODE`: a guest supervisor for the supervision tests. It runs `suptarget MODE`
//! supervised and prints what it saw and decided; the host tests assert on the output.
//!
//! - `race-*`: allows the vetted call only if the kernel's copy is the harmless one
//!   (`file:/tmp/good`, no `EVIL` in the data, `file:/bin/echo` with argv `echo GOOD`), and
//!   holds it until the attacking thread's `getppid` marker has arrived (so the rewrite
//!   happened during the hold). Everything else runs.
//! - `seed`: checks EACCES/ESRCH, the 0-byte read with nothing pending, then answers
//!   getpid, nanosleep and open with bare 8-byte values (the call is not run).
//! - `exc`: resumes int3 and `int 0x42`, leaves #UD to the default action (SIGILL).
//! - `result`: runs the child's read with a report and replaces the bytes it returns.
//! - `fork`: lists the processes it saw calls from (the grandchild included) and denies the
//!   grandchild's writes (they return their length without running).

#![no_std]
#![no_main]

extern crate alloc;

use runtime::abi;
use runtime::prelude::*;
use runtime::supervise::{Packet, Supervisor};
use runtime::{env, sys};

runtime::entry!(main);

fn items(p: &Packet<'_>, kind: u32) -> Vec<Vec<u8>> {
    p.iter().filter(|(i, _)| i.kind == kind).map(|(_, b)| b.to_vec()).collect()
}

/// Is the kernel's copy of this vetted call the allowed one? `None`: not a vetted call.
fn vet(mode: &str, p: &Packet<'_>) -> Option<bool> {
    let n = p.head.number as usize;
    match (mode, n) {
        ("race-open", abi::SYS_OPEN)
            if p.item(abi::ITEM_PATH) == Some(b"/tmp/good".as_slice())
                || p.item(abi::ITEM_PATH) == Some(b"/tmp/evil".as_slice()) =>
        {
            Some(p.item(abi::ITEM_RESOLVED) == Some(b"file:/tmp/good".as_slice()))
        }
        ("race-write", abi::SYS_WRITE) if p.head.args[0] > 2 => {
            let data = p.item(abi::ITEM_BYTES).unwrap_or(&[]);
            Some(!data.windows(4).any(|w| w == b"EVIL"))
        }
        ("race-exec", abi::SYS_FEXEC) => {
            let args = items(p, abi::ITEM_ARG);
            Some(
                p.item(abi::ITEM_RESOLVED) == Some(b"file:/bin/echo".as_slice())
                    && args == [b"echo".to_vec(), b"GOOD".to_vec()],
            )
        }
        _ => None,
    }
}

fn race(mode: &str) -> i32 {
    let (mut child, fd) = match Command::new("/bin/suptarget").arg(mode).spawn_supervised_with(abi::SUPERVISE_BLOCK) {
        Ok(c) => c,
        Err(e) => {
            println!("suptest: spawn: {e}");
            return 1;
        }
    };
    let main_tid = child.id() as u32;
    let mut sup = Supervisor::new(fd);
    let mut deferred: Option<(u64, bool)> = None;
    let mut marker = false;
    let mut threaded = false;
    while let Ok(Some(p)) = sup.next() {
        let h = p.head;
        if h.kind == abi::PACKET_CLONE && h.args[1] == 1 {
            threaded = true;
        }
        if h.kind != abi::PACKET_SYSCALL {
            if h.flags & abi::PACKET_FLAG_REPLY != 0 {
                let _ = sup.reply(h.seq, abi::REPLY_DEFAULT, 0);
            }
            continue;
        }
        if let Some(ok) = vet(mode, &p).filter(|_| threaded) {
            let seen = p.item(abi::ITEM_RESOLVED).or(p.item(abi::ITEM_BYTES)).unwrap_or(&[]);
            println!(
                "suptest: vetted copy {:?}: {}",
                String::from_utf8_lossy(seen).trim_end(),
                if ok { "allowed" } else { "denied" }
            );
            deferred = Some((h.seq, ok));
        } else {
            if h.number as usize == abi::SYS_GETPPID && h.tid != main_tid {
                marker = true;
            }
            let _ = sup.reply(h.seq, abi::REPLY_RUN, 0);
        }
        if marker && let Some((seq, ok)) = deferred.take() {
            println!("suptest: attacker rewrote memory during the hold; releasing the call");
            if ok {
                let _ = sup.reply(seq, abi::REPLY_RUN, 0);
            } else {
                let _ = sup.reply(seq, abi::REPLY_RETURN, abi::Errno::mux(Err(abi::Errno(abi::EACCES))) as u64);
            }
        }
    }
    let status = child.wait().map(|s| s.shell_code()).unwrap_or(-1);
    println!("suptest: child exited {status}");
    0
}

fn seed() -> i32 {
    println!("supervise(self) = {:?}", sys::supervise(sys::getpid()).map_err(|e| e.name()));
    println!("supervise(99999) = {:?}", sys::supervise(99999).map_err(|e| e.name()));
    let (mut child, fd) = match Command::new("/bin/suptarget").arg("seed").spawn_supervised() {
        Ok(c) => c,
        Err(e) => {
            println!("suptest: spawn: {e}");
            return 1;
        }
    };
    let mut sup = Supervisor::new(fd);
    let first = sup.next().map(|p| p.is_none());
    println!("empty read returns 0 bytes: {first:?}");
    loop {
        let (number, path) = match sup.next() {
            Ok(Some(p)) if p.head.kind == abi::PACKET_SYSCALL => {
                (p.head.number as usize, p.item(abi::ITEM_PATH).map(<[u8]>::to_vec))
            }
            Ok(Some(_)) => continue,
            Ok(None) => {
                if let Ok(Some(status)) = child.try_wait() {
                    println!("suptest: child exited {}", status.shell_code());
                    return 0;
                }
                let _ = sys::sched_yield();
                continue;
            }
            Err(e) => {
                println!("suptest: read: {e}");
                return 1;
            }
        };
        let reply = match number {
            abi::SYS_GETPID => Some(4242),
            abi::SYS_NANOSLEEP => Some(0),
            abi::SYS_OPEN if path.as_deref() == Some(b"/etc/rc".as_slice()) => {
                Some(abi::Errno::mux(Err(abi::Errno(abi::EACCES))) as u64)
            }
            _ => None,
        };
        match reply {
            Some(v) => {
                let _ = sup.set_rax(v);
            }
            None => {
                let _ = sup.reply(0, abi::REPLY_RUN, 0);
            }
        }
    }
}

fn others(mode: &str) -> i32 {
    let (mut child, fd) = match Command::new("/bin/suptarget").arg(mode).spawn_supervised_with(abi::SUPERVISE_BLOCK) {
        Ok(c) => c,
        Err(e) => {
            println!("suptest: spawn: {e}");
            return 1;
        }
    };
    let top = child.id() as u32;
    let mut sup = Supervisor::new(fd);
    let mut pids: Vec<u32> = Vec::new();
    while let Ok(Some(p)) = sup.next() {
        let h = p.head;
        if !pids.contains(&h.pid) {
            pids.push(h.pid);
        }
        match h.kind {
            abi::PACKET_EXCEPTION => {
                let action = if h.number == abi::EXC_INVALID_OPCODE { abi::REPLY_DEFAULT } else { abi::REPLY_RUN };
                println!("suptest: exception vector {:#x} at {:#x}, signal {}", h.number, h.args[0], h.args[3]);
                let _ = sup.reply(h.seq, action, 0);
            }
            abi::PACKET_SYSCALL => {
                let n = h.number as usize;
                if mode == "result" && n == abi::SYS_READ {
                    let _ = sup.reply(h.seq, abi::REPLY_RUN_REPORT, 0);
                } else if mode == "fork" && h.pid != top && n == abi::SYS_WRITE {
                    println!("suptest: denied write from grandchild {}", h.pid);
                    let _ = sup.reply(h.seq, abi::REPLY_RETURN, h.args[2]);
                } else {
                    let _ = sup.reply(h.seq, abi::REPLY_RUN, 0);
                }
            }
            abi::PACKET_RESULT => {
                let original =
                    p.iter().find(|(i, _)| i.kind == abi::ITEM_OUTPUT).map(|(_, b)| b.to_vec()).unwrap_or_default();
                println!("suptest: result {} with {:?}", h.ret as i64, String::from_utf8_lossy(&original));
                let _ = sup.reply_data(h.seq, 16, b"SUPERVISED DATA!");
            }
            abi::PACKET_CLONE => println!("suptest: clone event: {} -> {}", h.pid, h.number),
            abi::PACKET_EXEC => {
                let path = p.item(abi::ITEM_RESOLVED).unwrap_or(&[]);
                println!("suptest: exec event: {} {}", h.pid, String::from_utf8_lossy(path));
            }
            abi::PACKET_EXIT => println!("suptest: exit event: {} status {:#x}", h.pid, h.number),
            _ => {}
        }
    }
    let status = child.wait().map(|s| s.shell_code()).unwrap_or(-1);
    println!("suptest: saw processes {pids:?}; child exited {status}");
    0
}

fn main() -> i32 {
    let args = env::args();
    match args.get(1).map(String::as_str) {
        Some(m @ ("race-open" | "race-write" | "race-exec")) => race(m),
        Some("seed") => seed(),
        Some(m @ ("exc" | "result" | "fork")) => others(m),
        _ => {
            eprintln!("usage: suptest race-open|race-write|race-exec|seed|exc|result|fork");
            2
        }
    }
}
