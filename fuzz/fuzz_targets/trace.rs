//! cargo-fuzz target `trace`: see `warden_fuzz::trace`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| warden_fuzz::trace(data));
