//! `ls [-l] [-a] [PATH...]`: lists directories (sorted, one name per line) or names files.
//!
//! Design: a directory is read through `O_DIRECTORY` (names separated by `'\n'`); a path that
//! is not a directory (`ENOTDIR`) is printed as given. `-l` adds type/permissions and size
//! from `stat`. Names starting with `.` are hidden unless `-a`. Without a path the working
//! directory is listed.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use runtime::abi::{self, ENOTDIR, Errno, Stat};
use runtime::{env, eprintln, fs, println};

runtime::entry!(main);

/// `drwxr-xr-x`-style rendering of a mode.
fn mode_string(mode: u16) -> String {
    let kind = match mode & abi::MODE_TYPE {
        abi::MODE_DIR => 'd',
        abi::MODE_SYMLINK => 'l',
        abi::MODE_FIFO => 'p',
        abi::MODE_CHR => 'c',
        _ => '-',
    };
    let mut out = String::new();
    out.push(kind);
    for shift in [6u16, 3, 0] {
        let bits = (mode >> shift) & 7;
        out.push(if bits & 4 != 0 { 'r' } else { '-' });
        out.push(if bits & 2 != 0 { 'w' } else { '-' });
        out.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    out
}

fn long_line(name: &str, stat: Result<Stat, Errno>) -> String {
    match stat {
        Ok(st) => alloc::format!("{} {:>8} {name}", mode_string(st.st_mode), st.st_size),
        Err(_) => alloc::format!("?????????? {:>8} {name}", "?"),
    }
}

fn main() -> i32 {
    let args = env::args();
    let mut long = false;
    let mut all = false;
    let mut paths: Vec<String> = Vec::new();
    for arg in args.iter().skip(1) {
        if arg.starts_with('-') && arg.len() > 1 {
            for flag in arg[1..].chars() {
                match flag {
                    'l' => long = true,
                    'a' => all = true,
                    '1' => {}
                    _ => {
                        eprintln!("ls: invalid option -- '{flag}'");
                        return 2;
                    }
                }
            }
        } else {
            paths.push(arg.clone());
        }
    }
    if paths.is_empty() {
        paths.push(env::current_dir().unwrap_or_else(|_| String::from(".")));
    }
    let headers = paths.len() > 1;
    let mut status = 0;
    for (i, path) in paths.iter().enumerate() {
        match fs::read_dir(path) {
            Ok(mut names) => {
                names.retain(|n| all || !n.starts_with('.'));
                names.sort();
                if headers {
                    if i > 0 {
                        println!();
                    }
                    println!("{path}:");
                }
                for name in names {
                    if long {
                        println!("{}", long_line(&name, fs::stat(&fs::join(path, &name))));
                    } else {
                        println!("{name}");
                    }
                }
            }
            Err(Errno(ENOTDIR)) => {
                if long {
                    println!("{}", long_line(path, fs::stat(path)));
                } else {
                    println!("{path}");
                }
            }
            Err(err) => {
                eprintln!("ls: cannot access '{path}': {}", err.description());
                status = 2;
            }
        }
    }
    status
}
