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
    let args = ["compute", "1"];
    let native = mini_linux::run_native(&bin, &args);
    let (mut space, mut cpu) = mini_linux::load(&elf, &args);
    let emulated = mini_linux::run(&mut space, &mut cpu);
    let _ = std::fs::remove_file(&bin);
    assert_eq!(String::from_utf8_lossy(&emulated.stdout), String::from_utf8_lossy(&native.stdout));
    assert_eq!(emulated.status, native.status);
    assert!(cpu.icount > 1_000_000, "ran {} instructions", cpu.icount);
}
