//! cargo-fuzz target `linux_syscalls`: see `warden_fuzz::linux_syscalls`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| warden_fuzz::linux_syscalls(data));
