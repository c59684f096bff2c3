//! cargo-fuzz target `tar`: see `warden_fuzz::tar`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| warden_fuzz::tar(data));
