//! `cat [FILE...]`: copies each file (or stdin, also for `-`) to stdout.
//!
//! Design: streams in 4 KiB chunks, so it works on pipes and large files alike; a file that
//! cannot be opened is reported and skipped, and the exit status is then 1.

#![no_std]
#![no_main]

use runtime::fs::File;
use runtime::{Result, env, eprintln, io};

runtime::entry!(main);

fn copy(fd: usize) -> Result<()> {
    let mut buf = [0u8; 4096];
    loop {
        let n = io::read(fd, &mut buf)?;
        if n == 0 {
            return Ok(());
        }
        io::write_all(io::STDOUT, &buf[..n.min(buf.len())])?;
    }
}

fn main() -> i32 {
    let args = env::args();
    let files = args.get(1..).unwrap_or_default();
    if files.is_empty() {
        return match copy(io::STDIN) {
            Ok(()) => 0,
            Err(err) => {
                eprintln!("cat: {}", err.description());
                1
            }
        };
    }
    let mut status = 0;
    for name in files {
        let result = if name == "-" { copy(io::STDIN) } else { File::open(name).and_then(|file| copy(file.fd())) };
        if let Err(err) = result {
            eprintln!("cat: {name}: {}", err.description());
            status = 1;
        }
    }
    status
}
