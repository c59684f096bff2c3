//! `init`: the first guest process. Runs `/etc/rc` with `/bin/sh` and exits with the shell's
//! status; without `/etc/rc` it starts an interactive shell instead.
//!
//! Design: init stays minimal so that the default image's behaviour is all in `/etc/rc`,
//! which users can read and change; the exit status of the whole guest run is the script's.

#![no_std]
#![no_main]

use runtime::eprintln;
use runtime::fs::File;
use runtime::process::Command;

runtime::entry!(main);

fn main() -> i32 {
    let mut shell = Command::new("/bin/sh");
    if File::open("/etc/rc").is_ok() {
        shell.arg("/etc/rc");
    } else {
        shell.arg("-i");
    }
    match shell.status() {
        Ok(status) => status.shell_code(),
        Err(err) => {
            eprintln!("init: cannot run /bin/sh: {}", err.description());
            1
        }
    }
}
