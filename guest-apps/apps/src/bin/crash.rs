//! `crash MODE` misbehaves on purpose, for the kernel's fault and limit tests:
//! `segv` (write to address 0), `exec-data` (jump into non-executable data),
//! `ud` (ud2), `div0`, `int3`, `hlt`, `spin` (loop forever), `recurse`
//! (unbounded stack growth), `abort` (panic).

#![no_std]
#![no_main]

use core::arch::asm;
use runtime::{env, eprintln};

runtime::entry!(main);

#[inline(never)]
#[allow(unconditional_recursion, reason = "overflows the stack on purpose")]
fn recurse(depth: u64) -> u64 {
    let pad = [depth; 64];
    // SAFETY: reads a local array through a black box so the recursion is not optimised away.
    core::hint::black_box(&pad);
    recurse(depth + 1) + pad[3]
}

fn main() -> i32 {
    let args = env::args();
    let mode = args.get(1).map(|s| s.as_str()).unwrap_or("");
    // Each block below deliberately raises the CPU exception named by its mode;
    // the guest kernel turns it into a signal.
    match mode {
        // SAFETY: faults on the unmapped page 0 before anything is written.
        "segv" => unsafe { asm!("mov qword ptr [0], 1") },
        "exec-data" => {
            static DATA: [u8; 4] = [0xc3; 4];
            // SAFETY: a `ret` in a non-executable page: the call faults before it runs.
            let f: extern "C" fn() = unsafe { core::mem::transmute(DATA.as_ptr()) };
            f();
        }
        // SAFETY: raises #UD; touches no memory.
        "ud" => unsafe { asm!("ud2") },
        // SAFETY: raises #DE; clobbers only the registers it declares.
        "div0" => unsafe {
            asm!("xor edx, edx", "xor eax, eax", "xor ecx, ecx", "div ecx", out("eax") _, out("edx") _, out("ecx") _)
        },
        // SAFETY: raises #BP; touches no memory.
        "int3" => unsafe { asm!("int3") },
        // SAFETY: privileged in user mode: raises #GP.
        "hlt" => unsafe { asm!("hlt") },
        "spin" => loop {
            core::hint::spin_loop();
        },
        "recurse" => return recurse(0) as i32,
        "abort" => panic!("crash: deliberate panic"),
        _ => {
            eprintln!("usage: crash segv|exec-data|ud|div0|int3|hlt|spin|recurse|abort");
            return 2;
        }
    }
    eprintln!("crash: {mode} did not crash");
    1
}
