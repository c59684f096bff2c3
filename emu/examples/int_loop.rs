//! Runs the integer/memory/branch loop of the throughput bench once and
//! prints the instruction count: a fixed workload for profilers
//! (`valgrind --tool=callgrind`, `perf record`).

use emu::{AddressSpace, Cpu, Exit, Gate, GuestAddress, Perm};

fn main() {
    let iterations: u64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let code: [u8; 31] = [
        0x48, 0x8b, 0x04, 0xd7, 0x48, 0x01, 0xf0, 0x48, 0x31, 0xc6, 0x48, 0x89, 0x04, 0xd7, 0x48, 0xff, 0xc2, 0x48,
        0x81, 0xe2, 0xff, 0x03, 0x00, 0x00, 0x48, 0xff, 0xc9, 0x75, 0xe3, 0x0f, 0x05,
    ];
    let mut space = AddressSpace::new(1 << 32).unwrap();
    space.mem.map(GuestAddress(0x40_0000), 0x1000, Perm::RX).unwrap();
    space.mem.map(GuestAddress(0x100_0000), 0x2000, Perm::RW).unwrap();
    space.mem.write_raw(GuestAddress(0x40_0000), &code).unwrap();
    let mut cpu = Cpu::new();
    cpu.rip = 0x40_0000;
    cpu.gpr[emu::reg::RCX] = iterations;
    cpu.gpr[emu::reg::RDI] = 0x100_0000;
    let start = std::time::Instant::now();
    assert_eq!(cpu.run(&mut space, u64::MAX), Exit::Syscall(Gate::Syscall));
    let secs = start.elapsed().as_secs_f64();
    println!("{} guest instructions in {:.3} s: {:.0} MIPS", cpu.icount, secs, cpu.icount as f64 / secs / 1e6);
}
