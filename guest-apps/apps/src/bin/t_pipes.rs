//! A test in the default image's `/bin/tests`: a child's output read through a pipe, and
//! its exit status. Exits 0 on success, 1 with a message on stderr otherwise.

#![no_std]
#![no_main]

use runtime::process::Command;
use runtime::{eprintln, println};

runtime::entry!(main);

fn main() -> i32 {
    match Command::new("/bin/echo").arg("through a pipe").output() {
        Ok((status, out)) if status.success() && out == b"through a pipe\n" => {
            println!("pipes: ok");
            0
        }
        Ok((status, out)) => {
            eprintln!("pipes: got {status} and {} bytes", out.len());
            1
        }
        Err(e) => {
            eprintln!("pipes: spawn failed: {e}");
            1
        }
    }
}
