//! The cost of going backwards under gdb, with and without checkpoints, against the
//! forward replay, in one process (prints a table).
//!
//! The guest (`benches/gdb_reverse/loop.c`, built with the host's gcc) calls `f` at its
//! start, 1000 loop rounds before its end, and at its end, with a compute loop between:
//! about 10⁹ instructions in all (`--quick`: about 10⁷, for CI). It is recorded once, then
//! replayed:
//! - plainly (`warden replay`): the forward figure;
//! - under a minimal gdb remote-protocol client (this file: packets, not gdb itself, so
//!   gdb's own start-up is not timed), twice: with `--checkpoint-every 0` (going back
//!   replays from the start, as before checkpoints) and with the default checkpoints. The
//!   client sets a breakpoint on `f`, continues to its three hits (the forward run under
//!   gdb, taking checkpoints on the way), then reverse-continues to the second hit (near:
//!   one checkpoint interval back at most) and again to the first (far: the whole run
//!   back), and asks `monitor checkpoints` for their memory.
//!
//! Measured (release build, the 2-core development VM under load from other builds, one
//! run; the gdb module note, `src/gdb/mod.rs`, discusses them):
//! ```text
//! gdb reverse execution over a replay of 990010097 instructions (checkpoints every 50000000):
//!                                                  no checkpoints      checkpoints
//!   plain replay, no gdb (whole run)                       3.84 s           3.84 s
//!   continue x3 under gdb (whole run)                      8.71 s          10.28 s
//!   reverse-continue, hit 1000 rounds back                21.69 s           0.81 s
//!   reverse-continue, hit at the start                     8.48 s          11.46 s
//!   checkpoint memory: 19 checkpoints, every 50000000 instructions: total 1900 KiB
//! ```
//! and a second run: 2.85 s; 7.39 s and 7.26 s; 15.02 s and 0.61 s; 7.42 s and 6.54 s;
//! 1824 KiB (the machine's load moves these by a third).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A gdb remote-protocol connection (acknowledged mode, as gdb starts).
struct Rsp {
    s: TcpStream,
}

impl Rsp {
    fn send(&mut self, data: &str) {
        let sum = data.bytes().fold(0u8, |a, b| a.wrapping_add(b));
        write!(self.s, "${data}#{sum:02x}").expect("send to warden");
    }

    /// The next packet (acks skipped, acknowledged).
    fn recv(&mut self) -> String {
        let mut byte = [0u8];
        loop {
            self.s.read_exact(&mut byte).expect("read from warden");
            if byte[0] == b'$' {
                break;
            }
        }
        let mut data = Vec::new();
        loop {
            self.s.read_exact(&mut byte).expect("read from warden");
            if byte[0] == b'#' {
                break;
            }
            data.push(byte[0]);
        }
        let mut sum = [0u8; 2];
        self.s.read_exact(&mut sum).expect("read from warden");
        self.s.write_all(b"+").expect("ack");
        String::from_utf8_lossy(&data).into_owned()
    }

    fn ask(&mut self, data: &str) -> String {
        self.send(data);
        self.recv()
    }

    /// A timed request: its answer and how long it took.
    fn timed(&mut self, data: &str) -> (String, Duration) {
        let t = Instant::now();
        let reply = self.ask(data);
        (reply, t.elapsed())
    }

    /// `monitor CMD`: what it printed.
    fn monitor(&mut self, cmd: &str) -> String {
        let hex: String = cmd.bytes().map(|b| format!("{b:02x}")).collect();
        self.send(&format!("qRcmd,{hex}"));
        let mut out = Vec::new();
        loop {
            let p = self.recv();
            match p.strip_prefix('O') {
                Some(h) if p != "OK" => {
                    out.extend((0..h.len() / 2).filter_map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).ok()))
                }
                _ => break,
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

fn warden() -> Command {
    Command::new(env!("CARGO_BIN_EXE_warden"))
}

/// The guest program, built; `None` without gcc or nm.
fn build(dir: &Path) -> Option<PathBuf> {
    let out = dir.join("loop");
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/gdb_reverse/loop.c");
    let ok = Command::new("gcc").args(["-O1", "-static", "-o"]).arg(&out).arg(src).status().is_ok_and(|s| s.success());
    ok.then_some(out)
}

/// The address of function `name` in `prog` (from `nm`).
fn symbol(prog: &Path, name: &str) -> Option<u64> {
    let out = Command::new("nm").arg(prog).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines().find_map(|l| {
        let mut w = l.split_whitespace();
        let (addr, kind, sym) = (w.next()?, w.next()?, w.next()?);
        (sym == name && kind.eq_ignore_ascii_case("t")).then(|| u64::from_str_radix(addr, 16).ok())?
    })
}

/// One session's figures.
struct Session {
    forward: Duration,
    near: Duration,
    far: Duration,
    icount: u64,
    checkpoints: String,
}

/// Replays `trace` under the client with `extra` options; the figures.
fn session(trace: &Path, f: u64, extra: &[&str]) -> Session {
    let mut child = warden()
        .args(["replay", "--gdb", "127.0.0.1:0"])
        .args(extra)
        .arg(trace)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start warden");
    let mut err = BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    err.read_line(&mut line).expect("warden's address");
    let addr = line.split_whitespace().find(|w| w.starts_with("127.0.0.1:")).expect("an address").to_string();
    std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
    let mut rsp = Rsp { s: TcpStream::connect(&addr).expect("connect") };
    let _ = rsp.s.set_nodelay(true);
    assert_eq!(rsp.ask(&format!("Z0,{f:x},1")), "OK");
    let t = Instant::now();
    for _ in 0..3 {
        let stop = rsp.ask("c");
        assert!(stop.starts_with('T'), "not a stop: {stop}");
    }
    let forward = t.elapsed();
    let icount = rsp.monitor("icount").trim().parse().unwrap_or(0);
    let (stop, near) = rsp.timed("bc");
    assert!(stop.contains("swbreak"), "reverse-continue did not stop at a breakpoint: {stop}");
    let (stop, far) = rsp.timed("bc");
    assert!(stop.contains("swbreak"), "reverse-continue did not stop at a breakpoint: {stop}");
    let checkpoints = rsp.monitor("checkpoints");
    rsp.send("k");
    let _ = child.wait();
    Session { forward, near, far, icount, checkpoints }
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let missing = ["gcc", "nm"].into_iter().find(|t| Command::new(t).arg("--version").output().is_err());
    if let Some(tool) = missing {
        println!("SKIPPED: gdb_reverse needs {tool}");
        return;
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("gdb-reverse-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("bench dir");
    let Some(prog) = build(&dir) else {
        println!("SKIPPED: gcc could not build the guest program");
        return;
    };
    let f = symbol(&prog, "f").expect("f in the program");
    let rounds = if quick { "2000000" } else { "110000000" };
    let trace = dir.join("loop.trace");
    let rec = warden().args(["record", "-o"]).arg(&trace).args(["--root", "/"]).arg(&prog).arg(rounds).status();
    assert!(rec.is_ok_and(|s| s.code() == Some(0) || s.code() == Some(1)), "record failed");

    let t = Instant::now();
    let replay = warden().arg("replay").arg(&trace).stdout(Stdio::null()).status().expect("replay");
    let plain = t.elapsed();
    assert!(replay.code() == Some(0) || replay.code() == Some(1), "replay failed");

    let every = if quick { "1000000".to_string() } else { warden::gdb::CHECKPOINT_EVERY.to_string() };
    let without = session(&trace, f, &["--checkpoint-every", "0"]);
    let with = session(&trace, f, &["--checkpoint-every", &every]);
    let memory = with.checkpoints.lines().last().unwrap_or("").to_string();
    let count = with.checkpoints.lines().next().unwrap_or("").to_string();

    println!("gdb reverse execution over a replay of {} instructions (checkpoints every {every}):", with.icount);
    println!("  {:<44} {:>16} {:>16}", "", "no checkpoints", "checkpoints");
    println!("  {:<44} {:>16} {:>16}", "plain replay, no gdb (whole run)", secs(plain), secs(plain));
    println!("  {:<44} {:>16} {:>16}", "continue x3 under gdb (whole run)", secs(without.forward), secs(with.forward));
    println!("  {:<44} {:>16} {:>16}", "reverse-continue, hit 1000 rounds back", secs(without.near), secs(with.near));
    println!("  {:<44} {:>16} {:>16}", "reverse-continue, hit at the start", secs(without.far), secs(with.far));
    println!("  checkpoint memory: {count} {memory}");
    let _ = std::fs::remove_dir_all(&dir);
}
