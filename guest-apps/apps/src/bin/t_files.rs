//! A test in the default image's `/bin/tests` (run by `warden test /bin/tests`): a file
//! written, appended to, read back and removed. Exits 0 on success, 1 with a message on
//! stderr otherwise.

#![no_std]
#![no_main]

use runtime::{eprintln, fs, println};

runtime::entry!(main);

fn main() -> i32 {
    let path = "/tmp/t_files";
    let steps = || -> Result<(), &'static str> {
        fs::write(path, b"one\n").map_err(|_| "write")?;
        let f = fs::File::append(path).map_err(|_| "append open")?;
        f.write_all(b"two\n").map_err(|_| "append")?;
        drop(f);
        let back = fs::read(path).map_err(|_| "read")?;
        if back != b"one\ntwo\n" {
            return Err("contents differ");
        }
        fs::remove_file(path).map_err(|_| "remove")?;
        if fs::exists(path) {
            return Err("still exists after remove");
        }
        Ok(())
    };
    match steps() {
        Ok(()) => {
            println!("files: ok");
            0
        }
        Err(what) => {
            eprintln!("files: {what} failed");
            1
        }
    }
}
