//! cargo-fuzz target `elf`: see `warden_fuzz::elf`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| warden_fuzz::elf(data));
