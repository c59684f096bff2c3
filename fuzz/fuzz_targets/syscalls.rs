//! cargo-fuzz target `syscalls`: see `warden_fuzz::syscalls`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| warden_fuzz::syscalls(data));
