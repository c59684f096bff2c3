//! `cargo run --release --example supprof -- N`: one `supbench N` run (the guest-supervisor
//! round trip of `benches/syscall.rs`) and nothing else, for profilers. Run it under
//! `valgrind --tool=callgrind` with two values of N: the difference of the instruction
//! counts divided by the difference of N is the host cost of one round trip. The address
//! spaces are 4 GiB (not the default 64 GiB) so that valgrind can reserve them.

use guest_kernel::{CaptureConsole, Kernel, KernelConfig};

fn main() {
    let n: u32 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let root = warden::Root::Default;
    let vfs = warden::open_root(&root).expect("image");
    let config =
        KernelConfig { address_space_size: 1 << 32, cwd: warden::initial_cwd(&root), ..KernelConfig::default() };
    let (console, out) = CaptureConsole::new(b"");
    let mut k = Kernel::new(config, Box::new(vfs), Box::new(console));
    let arg = n.to_string();
    k.spawn_init("/bin/supbench", &["/bin/supbench", &arg], &[]).expect("spawn");
    let outcome = k.run();
    let out = out.borrow();
    print!("{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(outcome.exit_status(), 0, "supbench: {}", String::from_utf8_lossy(&out.stderr));
}
