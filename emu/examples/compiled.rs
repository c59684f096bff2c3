//! Runs the compiled C workload of the throughput bench (`emu/tests/fixtures/compute.c`,
//! built with gcc) once under the interpreter and prints the instruction count: a fixed,
//! realistic workload for profilers (`valgrind --tool=callgrind`, `perf record`).
//! Usage: `compiled [ROUNDS]` (default 2).

#[path = "../tests/support/mini_linux.rs"]
mod mini_linux;

fn main() {
    let rounds = std::env::args().nth(1).unwrap_or_else(|| "2".into());
    let Some(bin) = mini_linux::build_fixture("compute") else {
        eprintln!("compiled: gcc is needed to build the fixture");
        std::process::exit(2);
    };
    let elf = std::fs::read(&bin).expect("fixture binary");
    let (mut space, mut cpu) = mini_linux::load(&elf, &["compute", &rounds]);
    let start = std::time::Instant::now();
    mini_linux::run(&mut space, &mut cpu);
    let secs = start.elapsed().as_secs_f64();
    println!("{} guest instructions in {:.3} s: {:.0} MIPS", cpu.icount, secs, cpu.icount as f64 / secs / 1e6);
}
