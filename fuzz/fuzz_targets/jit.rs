//! cargo-fuzz target `jit`: see `warden_fuzz::jit`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| warden_fuzz::jit(data));
