//! The system-call trap path: a guest loop of trivial `getpid` calls through
//! each gate, in ns per call, against a native `getpid` system call made by
//! this bench process in the same run. The last lines printed are a summary
//! with the ratios (warden / native), from the best of 5 runs of each in thread
//! CPU time (wall time where that is missing).
//! `warden_host_supervised` runs the same loop with a pass-through host
//! supervisor (`HostSupervisor` with the default methods) attached to every
//! process. `warden_guest_supervised` is the round trip through a guest
//! supervisor process: `supbench N` (guest-apps) spawns `supbench --child N`
//! with `CLONE_SUPERVISE`, the child makes N `getpid` calls, and the parent
//! reads each packet with a blocking read and answers `REPLY_RUN`. The figure
//! is the whole run's wall time / N: both guest processes' instructions, the
//! packet copies, the kernel's scheduling between them, and the two programs'
//! start-up and exit (a few dozen calls, amortised over N).
//!
//! `warden_user_scheme_read` is the round trip through a user-space scheme daemon:
//! `schemetest bench N` starts `ramfsd`, writes a file of 16 N bytes, and reads it back in N
//! reads of 16 bytes, each a request packet to the daemon and its answer; the figure is the
//! whole run's wall time / N (start-up and the writes amortised as for `supbench`).
//!
//! `warden_channel_call` is a message-channel call/return (`warden_abi::ipc`): `channeltest
//! bench N` forks a server process, then makes N `call`s of 16 bytes through one endpoint,
//! each received by the server with its reply capability and answered through it; the
//! figure is the whole run's wall time / N (start-up amortised as above).
//!
//! Load-independent figures: `WARDEN_SYSCALL_PROFILE=MODE,N` runs one workload once and exits,
//! with 4 GiB guest address spaces so that valgrind can run it. MODE is `getpid` (N trapped
//! Redox `getpid` calls through the `syscall` gate), `linux-getpid` (the same loop as a Linux
//! process, Linux number 39), `supervised` (`supbench N`: N guest-supervisor round trips),
//! `scheme` (`schemetest bench N`: N 16-byte reads from `ramfs:`) or `channel` (`channeltest
//! bench N`: N channel call/returns).
//! The bench does this itself at the end when valgrind is installed (it is in CI) and prints
//! `summary (callgrind): ... host instructions per call` for every mode, from the difference
//! between two values of N so that boot and exit cancel out. On a noisy machine these are the figures to
//! compare before and after a change to the trap path; the timed ones move by several percent
//! from run to run.

use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use guest_kernel::linux::Personality;
use guest_kernel::scheme::memfs::MemFs;
use guest_kernel::supervise::{HostAttach, HostSupervisor};
use guest_kernel::testkit::static_elf;
use guest_kernel::{CaptureConsole, Kernel, KernelConfig, RunOutcome};

#[path = "common/thread_time.rs"]
mod thread_time;

/// Lets every call run.
struct PassThrough;
impl HostSupervisor for PassThrough {}

const CALLS: u32 = 200_000;

/// `getpid` CALLS times through the gate, then `exit(0)`.
fn program(int80: bool) -> Vec<u8> {
    loop_program(int80, 20, 1, CALLS)
}

/// `calls` times the call `getpid` (number `getpid`) through the gate, then the call `exit`
/// with status 0.
fn loop_program(int80: bool, getpid: u8, exit: u8, calls: u32) -> Vec<u8> {
    let mut code = vec![0x41, 0xbc]; // mov r12d, calls
    code.extend_from_slice(&calls.to_le_bytes());
    code.extend_from_slice(&[0xb8, getpid, 0, 0, 0]); // loop: mov eax, getpid
    code.extend_from_slice(if int80 { &[0xcd, 0x80] } else { &[0x0f, 0x05] });
    code.extend_from_slice(&[0x49, 0xff, 0xcc, 0x75, 0xf4]); // dec r12; jnz loop
    code.extend_from_slice(&[0xb8, exit, 0, 0, 0, 0x31, 0xff]); // mov eax, exit; xor edi, edi
    code.extend_from_slice(if int80 { &[0xcd, 0x80] } else { &[0x0f, 0x05] });
    static_elf(&code, 0)
}

fn run_guest(elf: &[u8]) {
    run_guest_in(elf, false, KernelConfig::default(), None)
}

fn run_guest_with(elf: &[u8], host: bool) {
    run_guest_in(elf, host, KernelConfig::default(), None)
}

fn run_guest_in(elf: &[u8], host: bool, config: KernelConfig, personality: Option<Personality>) {
    let fs = MemFs::new();
    fs.insert("/loop", elf);
    let (console, _out) = CaptureConsole::new(b"");
    let mut k = Kernel::new(config, Box::new(fs), Box::new(console));
    k.set_personality_override(personality);
    k.spawn_init("/loop", &["loop"], &[]).unwrap();
    if host {
        k.set_host_supervisor(Box::new(PassThrough), HostAttach::All);
    }
    assert_eq!(k.run(), RunOutcome::Exited(0));
}

/// `getpid` calls of the supervised child in one `supbench` run.
const SUPBENCH_CALLS: u32 = 100_000;

fn run_guest_supervisor() {
    run_supbench(SUPBENCH_CALLS, None)
}

fn run_supbench(calls: u32, address_space_size: Option<u64>) {
    let options = warden::RunOptions {
        program: Some("/bin/supbench".into()),
        args: vec![calls.to_string()],
        address_space_size,
        ..warden::RunOptions::default()
    };
    let (console, out) = CaptureConsole::new(b"");
    let mut k = warden::boot(&options, Box::new(console)).unwrap();
    let outcome = k.run();
    let out = out.borrow();
    assert_eq!(
        outcome.exit_status(),
        0,
        "supbench: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// 16-byte reads from `ramfs:` in one `schemetest bench` run.
const SCHEME_READS: u32 = 100_000;

/// Channel call/return round trips in one `channeltest bench` run.
const CHANNEL_CALLS: u32 = 100_000;

/// Runs image program `program` with `args` to a zero exit status.
fn run_image_program(program: &str, args: &[String], address_space_size: Option<u64>) {
    let options = warden::RunOptions {
        program: Some(program.into()),
        args: args.to_vec(),
        address_space_size,
        ..warden::RunOptions::default()
    };
    let (console, out) = CaptureConsole::new(b"");
    let mut k = warden::boot(&options, Box::new(console)).unwrap();
    let outcome = k.run();
    let out = out.borrow();
    assert_eq!(outcome.exit_status(), 0, "{program}: {}", String::from_utf8_lossy(&out.stderr));
}

fn run_scheme_reads() {
    run_image_program("/bin/schemetest", &["bench".into(), SCHEME_READS.to_string()], None)
}

fn run_channel_calls() {
    run_image_program("/bin/channeltest", &["bench".into(), CHANNEL_CALLS.to_string()], None)
}

fn native_getpid() -> u64 {
    let r: u64;
    // SAFETY: getpid (39) takes no arguments and touches no memory; rcx and
    // r11 are clobbered by the instruction and declared.
    unsafe { std::arch::asm!("syscall", inlateout("rax") 39u64 => r, out("rcx") _, out("r11") _, options(nostack)) };
    r
}

/// Best of 5 runs, in ns per call: thread CPU time where the kernel reports it, else wall
/// time. (The guest runs on this one thread.)
fn per_call_ns(f: &dyn Fn(), calls: u32) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..5 {
        let (c, t) = (thread_time::thread_cpu_ns(), Instant::now());
        f();
        let ns = match (c, thread_time::thread_cpu_ns()) {
            (Some(a), Some(b)) => b.saturating_sub(a) as f64,
            _ => t.elapsed().as_nanos() as f64,
        };
        best = best.min(ns / calls as f64);
    }
    best
}

/// Guest address space under valgrind (it cannot reserve the default 64 GiB).
const PROFILE_SPACE: u64 = 1 << 32;

/// `WARDEN_SYSCALL_PROFILE=MODE,N`: one run of one workload, for callgrind.
fn profile(spec: &str) {
    let (mode, n) = spec.split_once(',').unwrap_or((spec, "100000"));
    let n: u32 = n.parse().expect("WARDEN_SYSCALL_PROFILE: N must be a number");
    let config = KernelConfig { address_space_size: PROFILE_SPACE, ..KernelConfig::default() };
    match mode {
        "getpid" => run_guest_in(&loop_program(false, 20, 1, n), false, config, None),
        "linux-getpid" => run_guest_in(&loop_program(false, 39, 60, n), false, config, Some(Personality::Linux)),
        "supervised" => run_supbench(n, Some(PROFILE_SPACE)),
        "scheme" => run_image_program("/bin/schemetest", &["bench".into(), n.to_string()], Some(PROFILE_SPACE)),
        "channel" => run_image_program("/bin/channeltest", &["bench".into(), n.to_string()], Some(PROFILE_SPACE)),
        other => panic!(
            "WARDEN_SYSCALL_PROFILE: unknown mode {other:?} (getpid, linux-getpid, supervised, scheme or channel)"
        ),
    }
}

/// Host instructions per call under callgrind, from the difference between two runs of each
/// workload (so boot and exit cancel out). Skipped, saying so, without valgrind; with
/// `WARDEN_REQUIRE_TOOLS=1` (CI) that is a failure.
fn instruction_counts() {
    if std::process::Command::new("valgrind").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("WARDEN_REQUIRE_TOOLS").is_none(),
            "valgrind is required (WARDEN_REQUIRE_TOOLS is set)"
        );
        println!("summary (callgrind): skipped, valgrind is not installed");
        return;
    }
    let exe = std::env::current_exe().expect("the bench's own path");
    let dir = std::env::temp_dir().join(format!("warden-syscall-callgrind-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let count = |mode: &str, n: u32| -> u64 {
        let out = dir.join(format!("{mode}.{n}"));
        let status = std::process::Command::new("valgrind")
            .args(["--tool=callgrind", "--quiet"])
            .arg(format!("--callgrind-out-file={}", out.display()))
            .arg(&exe)
            .env("WARDEN_SYSCALL_PROFILE", format!("{mode},{n}"))
            .stdout(std::process::Stdio::null())
            .status()
            .expect("valgrind runs");
        assert!(status.success(), "callgrind run of {mode} failed");
        let text = std::fs::read_to_string(&out).unwrap();
        let line = text.lines().find_map(|l| l.strip_prefix("summary:")).expect("a callgrind summary line");
        line.trim().parse().unwrap()
    };
    // Two runs at a time (one per core of the CI machine).
    let per_call = |mode: &'static str, low: u32, high: u32| {
        let (l, h) = std::thread::scope(|s| {
            let l = s.spawn(|| count(mode, low));
            let h = count(mode, high);
            (l.join().expect("the callgrind thread"), h)
        });
        (h - l) as f64 / (high - low) as f64
    };
    let getpid = per_call("getpid", 20_000, 40_000);
    let linux = per_call("linux-getpid", 20_000, 40_000);
    let supervised = per_call("supervised", 2_000, 4_000);
    let scheme = per_call("scheme", 2_000, 4_000);
    let channel = per_call("channel", 2_000, 4_000);
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "summary (callgrind): trapped getpid {getpid:.0} host instructions per call, Linux getpid {linux:.0}, \
         guest-supervisor round trip {supervised:.0}, user-scheme read {scheme:.0}, channel call/return {channel:.0}"
    );
}

fn bench(c: &mut Criterion) {
    if let Ok(spec) = std::env::var("WARDEN_SYSCALL_PROFILE") {
        profile(&spec);
        std::process::exit(0);
    }
    let syscall_elf = program(false);
    let int80_elf = program(true);
    let mut g = c.benchmark_group("syscall");
    g.throughput(Throughput::Elements(CALLS as u64));
    g.sample_size(10);
    g.bench_function("native_getpid", |b| {
        b.iter(|| {
            for _ in 0..CALLS {
                std::hint::black_box(native_getpid());
            }
        })
    });
    g.bench_function("warden_syscall_gate", |b| b.iter(|| run_guest(&syscall_elf)));
    g.bench_function("warden_int80_gate", |b| b.iter(|| run_guest(&int80_elf)));
    g.bench_function("warden_host_supervised", |b| b.iter(|| run_guest_with(&syscall_elf, true)));
    g.throughput(Throughput::Elements(SUPBENCH_CALLS as u64));
    g.bench_function("warden_guest_supervised", |b| b.iter(run_guest_supervisor));
    g.throughput(Throughput::Elements(SCHEME_READS as u64));
    g.bench_function("warden_user_scheme_read", |b| b.iter(run_scheme_reads));
    g.throughput(Throughput::Elements(CHANNEL_CALLS as u64));
    g.bench_function("warden_channel_call", |b| b.iter(run_channel_calls));
    g.finish();

    let native = per_call_ns(
        &|| {
            for _ in 0..CALLS {
                std::hint::black_box(native_getpid());
            }
        },
        CALLS,
    );
    let sys = per_call_ns(&|| run_guest(&syscall_elf), CALLS);
    let int80 = per_call_ns(&|| run_guest(&int80_elf), CALLS);
    let host = per_call_ns(&|| run_guest_with(&syscall_elf, true), CALLS);
    let guest = per_call_ns(&run_guest_supervisor, SUPBENCH_CALLS);
    let scheme = per_call_ns(&run_scheme_reads, SCHEME_READS);
    let channel = per_call_ns(&run_channel_calls, CHANNEL_CALLS);
    println!("summary: native getpid {native:.1} ns/call");
    println!("summary: warden syscall gate {sys:.1} ns/call ({:.2}x native)", sys / native);
    println!("summary: warden int 0x80 gate {int80:.1} ns/call ({:.2}x native)", int80 / native);
    println!(
        "summary: warden host-supervised pass-through {host:.1} ns/call ({:.2}x native, {:.2}x unsupervised)",
        host / native,
        host / sys
    );
    println!("summary: warden guest-supervisor round trip {guest:.1} ns/call ({:.2}x native)", guest / native);
    println!(
        "summary: warden user-scheme read (16 bytes from ramfs:) {scheme:.1} ns/call ({:.2}x the supervisor round trip)",
        scheme / guest
    );
    println!(
        "summary: warden channel call/return (16 bytes) {channel:.1} ns/call ({:.2}x the supervisor round trip)",
        channel / guest
    );
    instruction_counts();
}

criterion_group!(benches, bench);
criterion_main!(benches);
