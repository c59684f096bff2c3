//! Interpreter throughput: guest instructions per second on CPU-bound code.
//! Criterion's "thrpt" column is in guest instructions (elem/s): 1 Gelem/s is
//! 1,000 MIPS. Workloads: a hand-written integer/memory/branch loop, and a
//! compiled C program (SHA-256, CRC-32, quicksort, memcpy/memset, double
//! arithmetic: SSE2) built by gcc, as a whole and one workload at a time, and again
//! built for x86-64-v3 (`_avx2`: gcc's AVX2/FMA vectorisation, emu's default CPU); the
//! native run of the same binary is measured in the same bench for reference
//! (the native figure includes process start-up, which dominates the small
//! workloads: compare MIPS against the "all" run).

#[path = "../emu/tests/support/mini_linux.rs"]
mod mini_linux;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use emu::{AddressSpace, Cpu, Exit, GuestAddress, Perm};

const CODE: u64 = 0x40_0000;
const DATA: u64 = 0x100_0000;

/// 8 instructions per iteration: load, add, xor, store, inc, and, dec, jnz.
const INT_LOOP: [u8; 31] = [
    0x48, 0x8b, 0x04, 0xd7, // mov rax, [rdi+rdx*8]
    0x48, 0x01, 0xf0, // add rax, rsi
    0x48, 0x31, 0xc6, // xor rsi, rax
    0x48, 0x89, 0x04, 0xd7, // mov [rdi+rdx*8], rax
    0x48, 0xff, 0xc2, // inc rdx
    0x48, 0x81, 0xe2, 0xff, 0x03, 0x00, 0x00, // and rdx, 1023
    0x48, 0xff, 0xc9, // dec rcx
    0x75, 0xe3, // jnz loop
    0x0f, 0x05, // syscall
];

fn int_loop(c: &mut Criterion) {
    let iterations = 2_000_000u64;
    let mut space = AddressSpace::new(1 << 32).unwrap();
    space.mem.map(GuestAddress(CODE), 0x1000, Perm::RX).unwrap();
    space.mem.map(GuestAddress(DATA), 0x2000, Perm::RW).unwrap();
    space.mem.write_raw(GuestAddress(CODE), &INT_LOOP).unwrap();
    let mut g = c.benchmark_group("interp");
    g.throughput(Throughput::Elements(iterations * 8 + 1));
    g.bench_function("int_loop", |b| {
        b.iter(|| {
            let mut cpu = Cpu::new();
            cpu.rip = CODE;
            cpu.gpr[emu::reg::RCX] = iterations;
            cpu.gpr[emu::reg::RDI] = DATA;
            let exit = cpu.run(&mut space, u64::MAX);
            assert_eq!(exit, Exit::Syscall(emu::Gate::Syscall));
            cpu.icount
        })
    });
    g.finish();
}

/// 10 instructions per iteration, SSE2 integer and double arithmetic.
const SSE2_LOOP: [u8; 44] = [
    0x66, 0x0f, 0x6f, 0x0c, 0x17, // movdqa xmm1, [rdi+rdx]
    0x66, 0x0f, 0xfe, 0xc1, // paddd xmm0, xmm1
    0x66, 0x0f, 0xef, 0xd0, // pxor xmm2, xmm0
    0x66, 0x0f, 0x59, 0xdc, // mulpd xmm3, xmm4
    0x66, 0x0f, 0x58, 0xdd, // addpd xmm3, xmm5
    0x66, 0x0f, 0x7f, 0x04, 0x17, // movdqa [rdi+rdx], xmm0
    0x48, 0x83, 0xc2, 0x10, // add rdx, 16
    0x48, 0x81, 0xe2, 0xff, 0x0f, 0x00, 0x00, // and rdx, 4095
    0x48, 0xff, 0xc9, // dec rcx
    0x75, 0xd6, // jnz loop
    0x0f, 0x05, // syscall
];

fn sse2_loop(c: &mut Criterion) {
    let iterations = 1_000_000u64;
    let mut space = AddressSpace::new(1 << 32).unwrap();
    space.mem.map(GuestAddress(CODE), 0x1000, Perm::RX).unwrap();
    space.mem.map(GuestAddress(DATA), 0x2000, Perm::RW).unwrap();
    space.mem.write_raw(GuestAddress(CODE), &SSE2_LOOP).unwrap();
    let start = |cpu: &mut Cpu| {
        cpu.rip = CODE;
        cpu.gpr[emu::reg::RCX] = iterations;
        cpu.gpr[emu::reg::RDI] = DATA;
        let one = 1.0f64.to_bits() as u128;
        cpu.xmm[3] = one << 64 | one;
        let k = 1.000_000_1f64.to_bits() as u128;
        cpu.xmm[4] = k << 64 | k;
        let e = 1e-9f64.to_bits() as u128;
        cpu.xmm[5] = e << 64 | e;
    };
    let mut probe = Cpu::new();
    start(&mut probe);
    if probe.run(&mut space, u64::MAX) != Exit::Syscall(emu::Gate::Syscall) {
        eprintln!("SKIPPED sse2_loop bench: emu cannot run it yet");
        return;
    }
    let mut g = c.benchmark_group("interp");
    g.throughput(Throughput::Elements(iterations * 10 + 1));
    g.bench_function("sse2_loop", |b| {
        b.iter(|| {
            let mut cpu = Cpu::new();
            start(&mut cpu);
            cpu.run(&mut space, u64::MAX)
        })
    });
    g.finish();
}

/// The compiled workloads: all of them, then each alone (`compute.c`'s second
/// argument character), each against the native run of the same binary.
const COMPILED: [(&str, &str); 5] =
    [("compiled_c", "2"), ("sha256", "2s"), ("sort", "2q"), ("memcpy_memset", "2m"), ("doubles", "2d")];

fn compiled(c: &mut Criterion) {
    compiled_for(c, "x86-64", "");
    // The same C built for x86-64-v3: gcc vectorises its loops with AVX2 (and FMA), run
    // under emu's default CPU model.
    if emu::CpuModel::V3.host_supports() {
        compiled_for(c, "x86-64-v3", "_avx2");
    } else {
        eprintln!("SKIPPED avx2 benches: the host CPU has no AVX2");
    }
}

fn compiled_for(c: &mut Criterion, march: &str, suffix: &str) {
    let Some(bin) = mini_linux::build_fixture_for("compute", march) else {
        return;
    };
    let elf = std::fs::read(&bin).unwrap();
    let mut g = c.benchmark_group("interp");
    g.sample_size(10);
    for (name, arg) in COMPILED {
        let args = ["compute", arg];
        // Count the instructions once, and check the program runs at all.
        let (mut space, mut cpu) = mini_linux::load(&elf, &args);
        let probe = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| mini_linux::run(&mut space, &mut cpu)));
        if probe.is_err() {
            eprintln!("SKIPPED {name} bench: emu cannot run the fixture yet");
            continue;
        }
        g.throughput(Throughput::Elements(cpu.icount));
        g.bench_function(format!("{name}{suffix}"), |b| {
            b.iter(|| {
                let (mut space, mut cpu) = mini_linux::load(&elf, &args);
                mini_linux::run(&mut space, &mut cpu)
            })
        });
        g.bench_function(format!("{name}{suffix}_native_reference"), |b| {
            b.iter(|| mini_linux::run_native(&bin, &args))
        });
    }
    g.finish();
}

criterion_group!(benches, int_loop, sse2_loop, compiled);
criterion_main!(benches);
