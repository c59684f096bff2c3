//! `mkdir [-p] DIR...`: creates directories (`-p`: with parents, existing ones are fine).
//!
//! Design: `mkdir` is `open(O_CREAT | O_DIRECTORY | O_EXCL)` in this ABI
//! (`runtime::fs::create_dir`).

#![no_std]
#![no_main]

use runtime::{env, eprintln, fs};

runtime::entry!(main);

fn main() -> i32 {
    let args = env::args();
    let mut parents = false;
    let mut status = 0;
    let mut dirs = 0;
    for arg in args.iter().skip(1) {
        if arg == "-p" {
            parents = true;
            continue;
        }
        dirs += 1;
        let result = if parents { fs::create_dir_all(arg) } else { fs::create_dir(arg) };
        if let Err(err) = result {
            eprintln!("mkdir: cannot create directory '{arg}': {}", err.description());
            status = 1;
        }
    }
    if dirs == 0 {
        eprintln!("mkdir: missing operand");
        return 1;
    }
    status
}
