//! `ps`: lists processes from the `proc:` scheme.
//!
//! Design: `proc:` read as a directory gives one entry per process id; each `proc:PID/status`
//! is printed as the kernel wrote it (the format is the kernel's). Processes that vanish while
//! listing are skipped; other errors are shown per process.

#![no_std]
#![no_main]

extern crate alloc;

use runtime::abi::{ENOENT, ESRCH};
use runtime::{env, eprintln, fs, print, println};

runtime::entry!(main);

fn main() -> i32 {
    let _ = env::args();
    let mut entries = match fs::read_dir("proc:") {
        Ok(entries) => entries,
        Err(err) => {
            eprintln!("ps: cannot read proc:: {}", err.description());
            return 1;
        }
    };
    entries.sort_by_key(|name| (name.parse::<u64>().unwrap_or(u64::MAX), name.clone()));
    for pid in entries {
        if pid.parse::<u64>().is_err() {
            continue;
        }
        match fs::read_to_string(&alloc::format!("proc:{pid}/status")) {
            Ok(text) => {
                print!("{text}");
                if !text.ends_with('\n') {
                    println!();
                }
            }
            Err(err) if err.0 == ENOENT || err.0 == ESRCH => {}
            Err(err) => println!("{pid}: {}", err.description()),
        }
    }
    0
}
