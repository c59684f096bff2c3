//! The Warden guest runtime: everything a `no_std` guest program needs to run on the Warden
//! guest kernel (classic Redox x86-64 ABI).
//!
//! Design:
//! - [`entry!`] emits the program's `_start` (in the program's own object file, so the linker
//!   always keeps it); `_start` hands the initial stack pointer to [`rt::start`], which
//!   records argv/envp and calls the program's `main`.
//! - [`syscall`] has the two raw gates (`syscall` and `int 0x80`); [`sys`] wraps each call in
//!   a typed function returning [`Result`]; everything else builds on [`sys`].
//! - A size-class allocator ([`heap`]) over `brk` (falling back to anonymous `fmap`) makes
//!   `alloc` (String, Vec, `format!`) work.
//! - [`io`], [`fs`], [`env`], [`process`] and [`time`] are small std-like layers.
//! - [`mem`] supplies `memcpy`, `memmove`, `memset`, `memcmp`, `bcmp` (core calls them) and
//!   `rust_eh_personality`; the panic handler prints to stderr and exits with 101.
//!
//! Programs are single-threaded; the few globals sit behind a spin lock anyway.

#![no_std]
#![warn(missing_docs)]

extern crate alloc;

pub mod channel;
pub mod env;
pub mod fs;
pub mod heap;
pub mod io;
pub mod mem;
pub mod process;
pub mod rt;
pub mod scheme;
pub mod supervise;
pub mod sync;
pub mod sys;
pub mod syscall;
pub mod time;

pub use warden_abi as abi;
pub use warden_abi::Errno;

/// The result of a runtime call: a value or the kernel's error number.
pub type Result<T> = core::result::Result<T, Errno>;

/// What a program usually imports: `alloc` types, print macros, the main helpers.
pub mod prelude {
    pub use crate::fs::File;
    pub use crate::process::{Command, ExitStatus, Stdio, exit};
    pub use crate::{Errno, Result, eprint, eprintln, print, println};
    pub use alloc::borrow::ToOwned;
    pub use alloc::boxed::Box;
    pub use alloc::format;
    pub use alloc::string::{String, ToString};
    pub use alloc::vec;
    pub use alloc::vec::Vec;
}

/// Declares the program's entry point: `runtime::entry!(main);` with `fn main() -> T` where
/// `T` is `()`, `i32`, `u8` or a `Result<(), E: Display>` (see [`rt::MainResult`]).
///
/// It defines the ELF entry symbol `_start`, which clears `rbp`, passes the initial `rsp`
/// (pointing at `argc`) in `rdi`, aligns the stack and calls [`rt::start`].
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        /// Called by `_start` with the initial stack pointer.
        ///
        /// # Safety
        /// Only `_start` may call it, once, with the kernel-provided stack pointer.
        #[unsafe(no_mangle)]
        unsafe extern "C" fn __warden_entry(initial_sp: *const usize) -> ! {
            fn call_main() -> i32 {
                $crate::rt::MainResult::exit_code($main())
            }
            // SAFETY: `initial_sp` is the stack pointer the kernel gave `_start`, laid out per
            // the SysV x86-64 process-entry ABI, and this is the only call to `start`.
            unsafe { $crate::rt::start(initial_sp, call_main) }
        }

        ::core::arch::global_asm!(
            ".globl _start",
            ".type _start, @function",
            "_start:",
            "xor ebp, ebp",
            "mov rdi, rsp",
            "and rsp, -16",
            "call __warden_entry",
            "ud2",
            ".size _start, . - _start",
            // The Redox-ABI marker the kernel's personality rule looks for: an ELF note
            // owned by "Redox" (type 1, empty-ish descriptor) in its own PT_NOTE.
            ".pushsection .note.redox, \"a\", @note",
            ".balign 4",
            ".long 6",
            ".long 4",
            ".long 1",
            ".asciz \"Redox\"",
            ".balign 4",
            ".long 0",
            ".popsection",
        );
    };
}
