//! The Warden guest ABI: the classic Redox x86-64 system-call interface (as in the Redox
//! `syscall` crate around 2019–2020), with Linux errno and signal numbers.
//!
//! Design: this crate is the single source of truth shared by the guest kernel
//! (`guest-kernel/`) and the guest runtime (`guest-apps/runtime`). It is `no_std`, has no
//! dependencies and no `unsafe`: plain constants, a few pure helper functions and
//! `#[repr(C)]` integer-only structs that convert to and from bytes field by field (so
//! padding is always zero and no byte pattern can produce an invalid value).
//!
//! Calling conventions (both gates enter the same dispatcher):
//! - `syscall`: number in `rax`; arguments in `rdi, rsi, rdx, r10, r8, r9`; result in `rax`
//!   (`rcx` and `r11` are clobbered by the instruction itself).
//! - `int 0x80`: number in `rax`; arguments in `rbx, rcx, rdx, rsi, rdi`; result in `rax`.
//! - A result in `-4095..=-1` (as a signed value) is `-errno`; see [`Errno::demux`].
//!
//! Paths are passed as `(pointer, length)` pairs and are *not* NUL-terminated.

#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod calls;
pub mod class;
#[macro_use]
pub mod data;
pub mod error;
pub mod flag;
pub mod ipc;
pub mod linux;
pub mod names;
pub mod number;
pub mod supervise;
pub mod table;
pub mod trace;

pub use class::{
    ALWAYS_ALLOWED, CALLS, CallInfo, JailClass, LINUX_CALLS, MASK_KILL, MASK_MAX, Selector, all_calls, call_index,
    call_info,
};
pub use data::*;
pub use error::*;
pub use flag::*;
pub use number::*;
pub use supervise::*;

#[cfg(test)]
mod tests;
