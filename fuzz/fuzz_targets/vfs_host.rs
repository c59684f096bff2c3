//! cargo-fuzz target `vfs_host`: see `warden_fuzz::vfs_host`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| warden_fuzz::vfs_host(data));
