//! Resident memory of Warden runs: the default demo and each extra idle guest process.
//!
//! Run: `cargo run --release --example rss` (prints a table). Each figure comes from a fresh
//! child process (this program re-running itself with one mode), read from
//! `/proc/self/status` after the run: `VmHWM` (peak resident set), `VmRSS`, and the peak's
//! anonymous/file split (`RssAnon`/`RssFile` at the end, since Linux reports no peak split).
//!
//! Modes (`rss MODE`):
//! - `baseline`: nothing booted (the process itself: binary, libc, allocator).
//! - `demo`: `warden run` with no program: `/bin/init` runs the image's `/etc/rc` demo.
//! - `pipeline N`: `sh -c 'sleep 1 | sleep 1 | ...'` with N `sleep`s: N exec'd guest programs
//!   alive (sleeping) at once, so the peak holds N idle processes of the real runtime.
//! - `forks N`: a hand-assembled guest forks N children that block reading a pipe, then
//!   blocks itself; the kernel stops on the deadlock with all N + 1 processes alive and the
//!   figures are read then: the cost of a forked (not exec'd) idle process.
//!
//! Per-process figures are differences between N and 1 (or 0), divided by the extra count.

use std::process::Command;

use guest_kernel::scheme::memfs::MemFs;
use guest_kernel::testkit::{static_elf, CODE_ADDR};
use guest_kernel::{CaptureConsole, Kernel, KernelConfig, RunOutcome};
use warden::RunOptions;

/// `(VmHWM, VmRSS, RssAnon, RssFile)` in KiB.
fn status() -> [u64; 4] {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    [field("VmHWM:"), field("VmRSS:"), field("RssAnon:"), field("RssFile:")]
}

/// Guest: `pipe2`, then N times `fork` where the child blocks reading the pipe; then the
/// parent blocks reading it too.
fn forks_program(n: u32) -> Vec<u8> {
    let mut code = Vec::new();
    // The two descriptors go to the page after the code (bss).
    code.extend_from_slice(&[0x48, 0xbf]); // mov rdi, fds
    let fds_at = code.len();
    code.extend_from_slice(&[0; 8]);
    code.extend_from_slice(&[0x31, 0xf6]); // xor esi, esi
    code.extend_from_slice(&[0xb8]); // mov eax, SYS_PIPE2
    code.extend_from_slice(&331u32.to_le_bytes());
    code.extend_from_slice(&[0x0f, 0x05]); // syscall
    code.extend_from_slice(&[0x41, 0xbc]); // mov r12d, n
    code.extend_from_slice(&n.to_le_bytes());
    let loop_at = code.len();
    code.extend_from_slice(&[0x45, 0x85, 0xe4, 0x74, 21]); // test r12d, r12d; jz read (+21)
    code.extend_from_slice(&[0xb8, 120, 0, 0, 0, 0x31, 0xff, 0x31, 0xf6, 0x0f, 0x05]); // fork (11)
    code.extend_from_slice(&[0x48, 0x85, 0xc0, 0x74, 0x05]); // test rax, rax; jz read (5)
    code.extend_from_slice(&[0x49, 0xff, 0xcc]); // dec r12 (3)
    let back = loop_at as isize - (code.len() as isize + 2);
    code.extend_from_slice(&[0xeb, back as i8 as u8]); // jmp loop
                                                       // read: read(fds[0], rsp - 64, 1), forever blocked (nobody writes).
    code.extend_from_slice(&[0x48, 0xb8]); // mov rax, fds
    let fds_at2 = code.len();
    code.extend_from_slice(&[0; 8]);
    code.extend_from_slice(&[0x48, 0x8b, 0x38]); // mov rdi, [rax]
    code.extend_from_slice(&[0x48, 0x8d, 0x74, 0x24, 0xc0]); // lea rsi, [rsp - 64]
    code.extend_from_slice(&[0xba, 1, 0, 0, 0]); // mov edx, 1
    code.extend_from_slice(&[0xb8]); // mov eax, SYS_READ
    code.extend_from_slice(&0x2200_0003u32.to_le_bytes());
    code.extend_from_slice(&[0x0f, 0x05]); // syscall
    code.extend_from_slice(&[0xb8, 1, 0, 0, 0, 0xbf, 1, 0, 0, 0, 0x0f, 0x05]); // exit(1)
    let fds = (CODE_ADDR + code.len() as u64).div_ceil(4096) * 4096;
    code[fds_at..fds_at + 8].copy_from_slice(&fds.to_le_bytes());
    code[fds_at2..fds_at2 + 8].copy_from_slice(&fds.to_le_bytes());
    static_elf(&code, 8192)
}

fn run_mode(mode: &str, n: u32) {
    match mode {
        "baseline" => {}
        "demo" => {
            let (console, _out) = CaptureConsole::new(b"");
            let outcome = warden::run(&RunOptions::default(), Box::new(console)).expect("boot");
            assert_eq!(outcome, RunOutcome::Exited(0));
        }
        "pipeline" => {
            let script = vec!["sleep 1"; n as usize].join(" | ");
            let opts =
                RunOptions { program: Some("sh".into()), args: vec!["-c".into(), script], ..RunOptions::default() };
            let (console, _out) = CaptureConsole::new(b"");
            let outcome = warden::run(&opts, Box::new(console)).expect("boot");
            assert_eq!(outcome, RunOutcome::Exited(0));
        }
        "forks" => {
            let fs = MemFs::new();
            fs.insert("/prog", &forks_program(n));
            let (console, _out) = CaptureConsole::new(b"");
            let mut k = Kernel::new(KernelConfig::default(), Box::new(fs), Box::new(console));
            k.spawn_init("/prog", &["prog"], &[]).expect("spawn");
            assert_eq!(k.run(), RunOutcome::Deadlock);
            assert_eq!(k.stats().processes, u64::from(n) + 1);
            let s = status();
            // The kernel is still alive here: report before dropping it.
            println!("{} {} {} {}", s[0], s[1], s[2], s[3]);
            return;
        }
        other => panic!("unknown mode {other}"),
    }
    let s = status();
    println!("{} {} {} {}", s[0], s[1], s[2], s[3]);
}

/// Runs this program in `mode` and returns its figures.
fn measure(mode: &str, n: u32) -> [u64; 4] {
    let exe = std::env::current_exe().expect("current exe");
    let out = Command::new(exe).arg(mode).arg(n.to_string()).output().expect("run child");
    assert!(out.status.success(), "{mode} {n}: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Vec<u64> = text.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    [v[0], v[1], v[2], v[3]]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(mode) = args.get(1) {
        let n = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(0);
        run_mode(mode, n);
        return;
    }
    let mib = |kib: u64| kib as f64 / 1024.0;
    let base = measure("baseline", 0);
    let demo = measure("demo", 0);
    println!("{:<44} {:>10} {:>10} {:>10} {:>10}", "run", "peak MiB", "rss MiB", "anon MiB", "file MiB");
    let row = |name: &str, s: [u64; 4]| {
        println!("{name:<44} {:>10.2} {:>10.2} {:>10.2} {:>10.2}", mib(s[0]), mib(s[1]), mib(s[2]), mib(s[3]))
    };
    row("baseline (nothing booted)", base);
    row("warden run (default demo)", demo);
    let (p1, pn, n) = (measure("pipeline", 1), measure("pipeline", 33), 33u64);
    row("sh -c 'sleep 1' (1 idle program)", p1);
    row("sh -c 'sleep 1 | ... x33' (33 idle programs)", pn);
    let (f0, fn_, forks) = (measure("forks", 0), measure("forks", 64), 64u64);
    row("forks: 0 children", f0);
    row("forks: 64 idle children", fn_);
    println!();
    println!(
        "summary: default demo peak RSS {:.2} MiB ({:.2} MiB over the baseline)",
        mib(demo[0]),
        mib(demo[0] - base[0])
    );
    println!(
        "summary: per extra idle exec'd process (sleep) {:.0} KiB peak RSS",
        pn[0].saturating_sub(p1[0]) as f64 / (n - 1) as f64
    );
    println!(
        "summary: per extra idle forked process {:.0} KiB RSS",
        fn_[1].saturating_sub(f0[1]) as f64 / forks as f64
    );
}
