//! cargo-fuzz target `policy`: see `warden_fuzz::policy`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| warden_fuzz::policy(data));
