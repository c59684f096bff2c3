//! Pure logic shared by the guest programs, kept free of the runtime (only `core` and `alloc`)
//! so it can be unit-tested on the host:
//! `cd guest-apps && RUSTFLAGS= cargo test -p apps --lib` (the empty `RUSTFLAGS` overrides the
//! guest link flags of `.cargo/config.toml`).

#![no_std]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod shell;
pub mod text;
