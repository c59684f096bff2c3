//! `rm [-r] [-f] PATH...`: removes files (`-r`: directories and their contents; `-f`: missing
//! paths are not an error).
//!
//! Design: without `-r` only `unlink` is used. With `-r`, a path that lists as a directory is
//! emptied recursively and removed with `rmdir`; anything else is unlinked. No `stat` needed.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use runtime::abi::{ENOENT, ENOTDIR};
use runtime::{Errno, env, eprintln, fs};

runtime::entry!(main);

fn remove(path: &str, recursive: bool) -> Result<(), (String, Errno)> {
    if recursive {
        match fs::read_dir(path) {
            Ok(names) => {
                for name in names {
                    if name == "." || name == ".." {
                        continue;
                    }
                    remove(&fs::join(path, &name), true)?;
                }
                return fs::remove_dir(path).map_err(|e| (path.into(), e));
            }
            Err(Errno(ENOTDIR)) => {}
            Err(err) => return Err((path.into(), err)),
        }
    }
    fs::remove_file(path).map_err(|e| (path.into(), e))
}

fn main() -> i32 {
    let args = env::args();
    let mut recursive = false;
    let mut force = false;
    let mut paths = Vec::new();
    for arg in args.iter().skip(1) {
        match arg.as_str() {
            "-r" | "-R" => recursive = true,
            "-f" => force = true,
            "-rf" | "-fr" => {
                recursive = true;
                force = true;
            }
            _ => paths.push(arg.clone()),
        }
    }
    if paths.is_empty() && !force {
        eprintln!("rm: missing operand");
        return 1;
    }
    let mut status = 0;
    for path in &paths {
        if let Err((what, err)) = remove(path, recursive) {
            if force && err.0 == ENOENT {
                continue;
            }
            eprintln!("rm: cannot remove '{what}': {}", err.description());
            status = 1;
        }
    }
    status
}
