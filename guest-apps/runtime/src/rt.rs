//! Process start-up and shutdown: the Rust side of `_start`, the `main` return convention
//! and the panic handler.
//!
//! Design: the kernel lays out the initial stack per the SysV x86-64 ABI (`argc`, `argv[]`,
//! NULL, `envp[]`, NULL, auxv pairs, `AT_NULL`). [`start`] only records where argv and envp
//! are ([`crate::env`] reads them lazily), runs `main` and exits with its code. A panic prints
//! `PROGRAM: panicked at ...` on stderr and exits with status 101, like Rust's std.

use core::fmt::{Display, Write};
use core::panic::PanicInfo;

use crate::io::FdWriter;
use crate::process::exit;

/// Conversion of `main`'s return value into an exit status.
pub trait MainResult {
    /// The exit status; failures print their error on stderr first.
    fn exit_code(self) -> i32;
}

impl MainResult for () {
    fn exit_code(self) -> i32 {
        0
    }
}

impl MainResult for i32 {
    fn exit_code(self) -> i32 {
        self
    }
}

impl MainResult for u8 {
    fn exit_code(self) -> i32 {
        i32::from(self)
    }
}

impl<E: Display> MainResult for Result<(), E> {
    fn exit_code(self) -> i32 {
        match self {
            Ok(()) => 0,
            Err(err) => {
                crate::eprintln!("{}: {}", crate::env::program_name(), err);
                1
            }
        }
    }
}

/// Runs the program: records argv/envp from the initial stack, calls `main`, exits.
///
/// # Safety
/// `initial_sp` must point at `argc` of a SysV x86-64 initial process stack whose strings
/// stay valid (unmodified) for the life of the process; call it once, from `_start`.
pub unsafe fn start(initial_sp: *const usize, main: fn() -> i32) -> ! {
    // SAFETY: forwarded from this function's contract.
    unsafe { crate::env::init(initial_sp) };
    let code = main();
    exit(code)
}

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    let mut err = FdWriter::new(2);
    let _ = writeln!(err, "{}: {}", crate::env::program_name(), info);
    let _ = err.flush();
    exit(101)
}
