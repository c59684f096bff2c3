//! cargo-fuzz target `overlay`: see `warden_fuzz::overlay`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| warden_fuzz::overlay(data));
