//! Process spawn and program start-up, guest against native, in one run.
//!
//! - `guest_fork_exit_wait`: a hand-assembled guest loops `clone(0)` (fork), the child
//!   `exit(0)`s, the parent `waitpid`s it; `guest_fork_exit_wait_1mib` does the same after
//!   touching 1 MiB of its heap (so fork has resident memory to share or copy).
//! - `native_fork_exit_wait`: this bench process does `fork` + `_exit` + `waitpid` (libc).
//! - `guest_hello_startup`: `warden run hello` as the CLI does it: the embedded default
//!   image opened, the kernel built, `/bin/hello` loaded, run and exited.
//! - `native_spawn_static` / `native_spawn_true`: `std::process::Command` of a tiny static
//!   Linux program (written to a temporary file; it only calls `exit`) and of `/bin/true`.
//!
//! The last lines printed are a summary: ns per fork round (guest figures are the
//! difference between a run of `ROUNDS` rounds and a run of none, so boot costs drop out),
//! and start-up times, with the ratios to the native references measured just before.
//! Goals (issue 6): start-up of `hello` at most 2 ms; a guest fork round faster than a
//! native one.

use std::hint::black_box;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use guest_kernel::scheme::memfs::MemFs;
use guest_kernel::testkit::{static_elf, CODE_ADDR, LOAD_ADDR};
use guest_kernel::{CaptureConsole, Kernel, KernelConfig, RunOutcome};
use warden::RunOptions;

/// Fork rounds per guest run.
const ROUNDS: u32 = 500;
const PAGE: u64 = 4096;

/// A tiny x86-64 assembler for the few instructions the guest loop needs: bytes plus
/// forward/backward `rel8` jumps patched by label.
struct Asm {
    code: Vec<u8>,
    labels: Vec<(&'static str, usize)>,
    fixups: Vec<(&'static str, usize)>,
}

impl Asm {
    fn new() -> Asm {
        Asm { code: Vec::new(), labels: Vec::new(), fixups: Vec::new() }
    }
    fn emit(&mut self, bytes: &[u8]) -> &mut Self {
        self.code.extend_from_slice(bytes);
        self
    }
    fn label(&mut self, name: &'static str) -> &mut Self {
        self.labels.push((name, self.code.len()));
        self
    }
    /// A short conditional or unconditional jump (`opcode rel8`) to `name`.
    fn jump(&mut self, opcode: u8, name: &'static str) -> &mut Self {
        self.code.extend_from_slice(&[opcode, 0]);
        self.fixups.push((name, self.code.len()));
        self
    }
    fn finish(mut self) -> Vec<u8> {
        for &(name, after) in &self.fixups {
            let target = self.labels.iter().find(|l| l.0 == name).expect("label").1;
            let rel = i8::try_from(target as isize - after as isize).expect("short jump");
            self.code[after - 1] = rel as u8;
        }
        self.code
    }
}

const JZ: u8 = 0x74;
const JNZ: u8 = 0x75;
const JS: u8 = 0x78;
const SYSCALL: [u8; 2] = [0x0f, 0x05];

/// The fork loop: touch `touch_pages` heap pages, then `rounds` times fork, the child
/// exits 0, the parent waits for it; exit 0 (1 if a call failed).
fn fork_program(rounds: u32, touch_pages: u32) -> Vec<u8> {
    let mut a = Asm::new();
    // The heap (bss) starts on the page after the code; its address is patched below.
    a.emit(&[0x48, 0xbf]).emit(&[0; 8]); // mov rdi, heap
    a.emit(&[0xb9]).emit(&touch_pages.to_le_bytes()); // mov ecx, touch_pages
    a.emit(&[0x85, 0xc9]).jump(JZ, "forks"); // test ecx, ecx; jz forks
    a.label("touch");
    a.emit(&[0xc6, 0x07, 0x01]); // mov byte [rdi], 1
    a.emit(&[0x48, 0x81, 0xc7, 0x00, 0x10, 0x00, 0x00]); // add rdi, 4096
    a.emit(&[0xff, 0xc9]).jump(JNZ, "touch"); // dec ecx; jnz touch
    a.label("forks");
    a.emit(&[0x41, 0xbc]).emit(&rounds.to_le_bytes()); // mov r12d, rounds
    a.emit(&[0x45, 0x85, 0xe4]).jump(JZ, "done"); // test r12d, r12d; jz done
    a.label("loop");
    a.emit(&[0xb8, 120, 0, 0, 0]); // mov eax, SYS_CLONE
    a.emit(&[0x31, 0xff, 0x31, 0xf6]).emit(&SYSCALL); // xor edi, edi; xor esi, esi; syscall
    a.emit(&[0x48, 0x85, 0xc0]).jump(JZ, "child").jump(JS, "fail"); // test rax, rax
    a.emit(&[0x48, 0x89, 0xc7]); // mov rdi, rax (the child's pid)
    a.emit(&[0x31, 0xf6, 0x31, 0xd2]); // xor esi, esi; xor edx, edx
    a.emit(&[0xb8, 7, 0, 0, 0]).emit(&SYSCALL); // mov eax, SYS_WAITPID; syscall
    a.emit(&[0x48, 0x85, 0xc0]).jump(JS, "fail"); // test rax, rax; js fail
    a.emit(&[0x49, 0xff, 0xcc]).jump(JNZ, "loop"); // dec r12; jnz loop
    a.label("done");
    a.emit(&[0xb8, 1, 0, 0, 0, 0x31, 0xff]).emit(&SYSCALL); // exit(0)
    a.label("child");
    a.emit(&[0xb8, 1, 0, 0, 0, 0x31, 0xff]).emit(&SYSCALL); // exit(0)
    a.label("fail");
    a.emit(&[0xb8, 1, 0, 0, 0, 0xbf, 1, 0, 0, 0]).emit(&SYSCALL); // exit(1)
    let mut code = a.finish();
    let heap = (CODE_ADDR + code.len() as u64).div_ceil(PAGE) * PAGE;
    code[2..10].copy_from_slice(&heap.to_le_bytes());
    let bss = heap - LOAD_ADDR + u64::from(touch_pages) * PAGE;
    static_elf(&code, bss)
}

/// Boots a kernel on `elf` as `/prog` and runs it to the end.
fn run_guest(elf: &[u8]) {
    let fs = MemFs::new();
    fs.insert("/prog", elf);
    let (console, _out) = CaptureConsole::new(b"");
    let mut k = Kernel::new(KernelConfig::default(), Box::new(fs), Box::new(console));
    k.spawn_init("/prog", &["prog"], &[]).unwrap();
    assert_eq!(k.run(), RunOutcome::Exited(0));
}

/// `fork` + `_exit(0)` + `waitpid` in this process.
fn native_fork() {
    // SAFETY: the child only calls `_exit`, which is async-signal-safe, so forking a
    // (possibly multi-threaded) process is sound; the parent reaps it.
    unsafe {
        let pid = libc::fork();
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            libc::_exit(0);
        }
        let mut status = 0;
        assert_eq!(libc::waitpid(pid, &mut status, 0), pid);
        assert_eq!(status, 0);
    }
}

/// `warden run hello`, from opening the embedded image to the exit.
fn hello() {
    let opts = RunOptions { program: Some("hello".into()), ..RunOptions::default() };
    let (console, out) = CaptureConsole::new(b"");
    let outcome = warden::run(&opts, Box::new(console)).unwrap();
    assert_eq!(outcome, RunOutcome::Exited(0));
    black_box(out);
}

/// A static Linux x86-64 program that only exits 0, written to a temporary file.
fn tiny_static_program() -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    // xor edi, edi; mov eax, 60 (Linux exit); syscall
    let elf = static_elf(&[0x31, 0xff, 0xb8, 60, 0, 0, 0, 0x0f, 0x05], 0);
    let path = std::env::temp_dir().join(format!("warden-bench-exit0-{}", std::process::id()));
    std::fs::write(&path, elf).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn spawn(path: &std::path::Path) {
    let status = Command::new(path).status().unwrap();
    assert!(status.success());
}

/// Best of `tries` wall-clock timings of `f`, in ns.
fn best_ns(tries: u32, f: &dyn Fn()) -> f64 {
    (0..tries)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_nanos() as f64
        })
        .fold(f64::MAX, f64::min)
}

fn bench(c: &mut Criterion) {
    let fork0 = fork_program(ROUNDS, 0);
    let fork1m = fork_program(ROUNDS, 256);
    let boot0 = fork_program(0, 0);
    let boot1m = fork_program(0, 256);
    let tiny = tiny_static_program();
    let truth = PathBuf::from("/bin/true");

    let mut g = c.benchmark_group("spawn");
    g.sample_size(10);
    g.bench_function("native_fork_exit_wait", |b| b.iter(native_fork));
    g.bench_function("guest_fork_exit_wait", |b| b.iter(|| run_guest(&fork0)));
    g.bench_function("guest_fork_exit_wait_1mib", |b| b.iter(|| run_guest(&fork1m)));
    g.bench_function("native_spawn_static", |b| b.iter(|| spawn(&tiny)));
    if truth.exists() {
        g.bench_function("native_spawn_true", |b| b.iter(|| spawn(&truth)));
    }
    g.bench_function("guest_hello_startup", |b| b.iter(hello));
    g.finish();

    let tries = 7;
    let native = best_ns(tries, &|| {
        for _ in 0..ROUNDS {
            native_fork();
        }
    }) / f64::from(ROUNDS);
    let per_round = |with: &[u8], without: &[u8]| {
        let full = best_ns(tries, &|| run_guest(with));
        let base = best_ns(tries, &|| run_guest(without));
        (full - base).max(0.0) / f64::from(ROUNDS)
    };
    let guest = per_round(&fork0, &boot0);
    let guest1m = per_round(&fork1m, &boot1m);
    let spawn_static = best_ns(tries, &|| spawn(&tiny));
    let spawn_true = truth.exists().then(|| best_ns(tries, &|| spawn(&truth)));
    let startup = best_ns(tries, &hello);
    let _ = std::fs::remove_file(&tiny);

    println!("summary: native fork+_exit+waitpid {native:.0} ns/round");
    println!("summary: guest fork+exit+waitpid {guest:.0} ns/round ({:.2}x native)", guest / native);
    println!(
        "summary: guest fork+exit+waitpid, 1 MiB heap touched {guest1m:.0} ns/round ({:.2}x native)",
        guest1m / native
    );
    println!("summary: native spawn of a tiny static program {:.3} ms", spawn_static / 1e6);
    if let Some(t) = spawn_true {
        println!("summary: native spawn of /bin/true {:.3} ms", t / 1e6);
    }
    println!(
        "summary: guest hello start-up (embedded image to exit) {:.3} ms ({:.2}x native static spawn; goal 2 ms)",
        startup / 1e6,
        startup / spawn_static
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
