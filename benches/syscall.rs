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

use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
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
    let mut code = vec![0x41, 0xbc]; // mov r12d, CALLS
    code.extend_from_slice(&CALLS.to_le_bytes());
    code.extend_from_slice(&[0xb8, 20, 0, 0, 0]); // loop: mov eax, 20 (getpid)
    code.extend_from_slice(if int80 { &[0xcd, 0x80] } else { &[0x0f, 0x05] });
    code.extend_from_slice(&[0x49, 0xff, 0xcc, 0x75, 0xf4]); // dec r12; jnz loop
    code.extend_from_slice(&[0xb8, 1, 0, 0, 0, 0x31, 0xff]); // mov eax, 1; xor edi, edi
    code.extend_from_slice(if int80 { &[0xcd, 0x80] } else { &[0x0f, 0x05] });
    static_elf(&code, 0)
}

fn run_guest(elf: &[u8]) {
    run_guest_with(elf, false)
}

fn run_guest_with(elf: &[u8], host: bool) {
    let fs = MemFs::new();
    fs.insert("/loop", elf);
    let (console, _out) = CaptureConsole::new(b"");
    let mut k = Kernel::new(KernelConfig::default(), Box::new(fs), Box::new(console));
    k.spawn_init("/loop", &["loop"], &[]).unwrap();
    if host {
        k.set_host_supervisor(Box::new(PassThrough), HostAttach::All);
    }
    assert_eq!(k.run(), RunOutcome::Exited(0));
}

/// `getpid` calls of the supervised child in one `supbench` run.
const SUPBENCH_CALLS: u32 = 100_000;

fn run_guest_supervisor() {
    let options = warden::RunOptions {
        program: Some("/bin/supbench".into()),
        args: vec![SUPBENCH_CALLS.to_string()],
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

fn bench(c: &mut Criterion) {
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
    println!("summary: native getpid {native:.1} ns/call");
    println!("summary: warden syscall gate {sys:.1} ns/call ({:.2}x native)", sys / native);
    println!("summary: warden int 0x80 gate {int80:.1} ns/call ({:.2}x native)", int80 / native);
    println!(
        "summary: warden host-supervised pass-through {host:.1} ns/call ({:.2}x native, {:.2}x unsupervised)",
        host / native,
        host / sys
    );
    println!("summary: warden guest-supervisor round trip {guest:.1} ns/call ({:.2}x native)", guest / native);
}

criterion_group!(benches, bench);
criterion_main!(benches);
