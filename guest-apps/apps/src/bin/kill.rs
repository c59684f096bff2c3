//! `kill [-SIGNAL | -s SIGNAL] PID...` sends a signal (default TERM); `kill -l` lists the
//! signal names.
//!
//! Design: signals may be given by number or by name, with or without the `SIG` prefix,
//! resolved through the ABI crate's table.

#![no_std]
#![no_main]

extern crate alloc;

use runtime::abi::{self, NSIG, SIGTERM};
use runtime::{env, eprintln, println, sys};

runtime::entry!(main);

fn parse_signal(text: &str) -> Option<usize> {
    match text.parse::<usize>() {
        Ok(n) if n < NSIG => Some(n),
        Ok(_) => None,
        Err(_) => abi::signal_from_name(&text.to_ascii_uppercase()),
    }
}

fn main() -> i32 {
    let args = env::args();
    let mut rest = args.get(1..).unwrap_or_default();
    let mut signal = SIGTERM;
    match rest.first().map(alloc::string::String::as_str) {
        Some("-l") => {
            for sig in 1..NSIG {
                if let Some(name) = abi::signal_name(sig) {
                    println!("{sig:2}) SIG{name}");
                }
            }
            return 0;
        }
        Some("-s") => {
            let Some(sig) = rest.get(1).and_then(|s| parse_signal(s)) else {
                eprintln!("kill: -s: invalid signal");
                return 2;
            };
            signal = sig;
            rest = &rest[2..];
        }
        Some(flag) if flag.starts_with('-') && flag.len() > 1 => {
            let Some(sig) = parse_signal(&flag[1..]) else {
                eprintln!("kill: {flag}: invalid signal");
                return 2;
            };
            signal = sig;
            rest = &rest[1..];
        }
        _ => {}
    }
    if rest.is_empty() {
        eprintln!("usage: kill [-SIGNAL | -s SIGNAL] PID... | kill -l");
        return 2;
    }
    let mut status = 0;
    for pid in rest {
        let Ok(number) = pid.parse::<usize>() else {
            eprintln!("kill: {pid}: not a process id");
            status = 1;
            continue;
        };
        if let Err(err) = sys::kill(number, signal) {
            eprintln!("kill: ({pid}): {}", err.description());
            status = 1;
        }
    }
    status
}
