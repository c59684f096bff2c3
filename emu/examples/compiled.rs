//! Runs the compiled C workload of the throughput bench (`emu/tests/fixtures/compute.c`,
//! built with gcc) once under the interpreter and prints the instruction count: a fixed,
//! realistic workload for profilers (`valgrind --tool=callgrind`, `perf record`).
//! Usage: `compiled [ROUNDS [MARCH]]` (default 2 rounds, `-march=x86-64`; `x86-64-v3` builds
//! the AVX2 variant of the bench). `WARDEN_TIER=interp` turns the translation tier off.

#[path = "../tests/support/mini_linux.rs"]
mod mini_linux;

fn main() {
    let rounds = std::env::args().nth(1).unwrap_or_else(|| "2".into());
    let march = std::env::args().nth(2).unwrap_or_else(|| "x86-64".into());
    let Some(bin) = mini_linux::build_fixture_for("compute", &march) else {
        eprintln!("compiled: gcc is needed to build the fixture");
        std::process::exit(2);
    };
    let elf = std::fs::read(&bin).expect("fixture binary");
    let (mut space, mut cpu) = mini_linux::load(&elf, &["compute", &rounds]);
    if std::env::var("WARDEN_TIER").as_deref() == Ok("interp") {
        cpu.tier = emu::Tier::Interp;
    }
    let start = std::time::Instant::now();
    mini_linux::run(&mut space, &mut cpu);
    let secs = start.elapsed().as_secs_f64();
    println!("{} guest instructions in {:.3} s: {:.0} MIPS", cpu.icount, secs, cpu.icount as f64 / secs / 1e6);
}
