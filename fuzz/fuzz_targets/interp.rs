//! cargo-fuzz target `interp`: see `warden_fuzz::interp`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| warden_fuzz::interp(data));
