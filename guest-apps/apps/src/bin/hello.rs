//! `hello`: prints a greeting — the smallest guest program, used to check the toolchain,
//! the loader and the console end to end.

#![no_std]
#![no_main]

use runtime::println;

runtime::entry!(main);

fn main() {
    println!("Hello from the Warden guest!");
}
