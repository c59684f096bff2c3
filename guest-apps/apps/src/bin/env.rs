//! `env [-i] [NAME=VALUE...] [COMMAND [ARGS...]]`: prints the environment, or runs a command
//! in a modified one (`-i`: starting empty) and exits with its status.
//!
//! Design: the command is spawned (not exec'd) so that a missing program gets the usual
//! `127` from `runtime::process::Command`, and env's own status is the child's.

#![no_std]
#![no_main]

extern crate alloc;

use runtime::process::Command;
use runtime::{env, eprintln, println};

runtime::entry!(main);

fn main() -> i32 {
    let args = env::args();
    let mut rest = args.get(1..).unwrap_or_default();
    let mut clear = false;
    if rest.first().is_some_and(|a| a == "-i" || a == "-") {
        clear = true;
        rest = &rest[1..];
    }
    let mut vars = if clear { alloc::vec::Vec::new() } else { env::vars() };
    while let Some((key, value)) = rest.first().and_then(|a| a.split_once('=')) {
        vars.retain(|(k, _)| k != key);
        vars.push((key.into(), value.into()));
        rest = &rest[1..];
    }
    let Some(program) = rest.first() else {
        for (key, value) in vars {
            println!("{key}={value}");
        }
        return 0;
    };
    let mut cmd = Command::new(program);
    cmd.args(&rest[1..]).env_clear().envs(vars);
    match cmd.status() {
        Ok(status) => status.shell_code(),
        Err(err) => {
            eprintln!("env: {program}: {}", err.description());
            126
        }
    }
}
