//! `echo [-n] [ARGS...]`: prints the arguments separated by spaces, then a newline (none with
//! `-n`).
//!
//! Design: the whole line is built first and written with one `write`, so concurrent writers
//! to a pipe or console never interleave inside a line.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::string::String;
use runtime::{env, eprintln, io};

runtime::entry!(main);

fn main() -> i32 {
    let args = env::args();
    let mut rest = args.get(1..).unwrap_or_default();
    let mut newline = true;
    while rest.first().is_some_and(|a| a == "-n") {
        newline = false;
        rest = &rest[1..];
    }
    let mut line = rest.join(" ");
    if newline {
        line.push('\n');
    }
    match io::write_all(io::STDOUT, String::as_bytes(&line)) {
        Ok(()) => 0,
        Err(err) => {
            eprintln!("echo: write error: {}", err.description());
            1
        }
    }
}
