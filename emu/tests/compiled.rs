//! A real compiled program (SHA-256, CRC-32, quicksort, memcpy/memset, double
//! arithmetic and float formatting, built from C by gcc) must produce the same
//! bytes and exit status under emu as natively.

#[path = "support/mini_linux.rs"]
mod mini_linux;

#[test]
fn compiled_c_program_matches_native_run() {
    let Some(bin) = mini_linux::build_fixture("compute") else {
        return;
    };
    let elf = std::fs::read(&bin).unwrap();
    // All workloads, then each alone (as the throughput bench runs them).
    for arg in ["1", "1s", "1q", "1m", "1d"] {
        let args = ["compute", arg];
        let native = mini_linux::run_native(&bin, &args);
        let (mut space, mut cpu) = mini_linux::load(&elf, &args);
        let emulated = mini_linux::run(&mut space, &mut cpu);
        assert_eq!(String::from_utf8_lossy(&emulated.stdout), String::from_utf8_lossy(&native.stdout), "compute {arg}");
        assert_eq!(emulated.status, native.status, "compute {arg}");
        assert!(cpu.icount > 100_000, "compute {arg} ran {} instructions", cpu.icount);
    }
    let _ = std::fs::remove_file(&bin);
}
