//! `sleep DURATION...`: sleeps for the sum of the durations (`2`, `0.5`, `300ms`, `1m`).
//!
//! Design: durations are parsed with integer arithmetic (`apps::text::parse_duration_nanos`)
//! and slept with one `nanosleep`.

#![no_std]
#![no_main]

use apps::text::parse_duration_nanos;
use runtime::{env, eprintln, time};

runtime::entry!(main);

fn main() -> i32 {
    let args = env::args();
    if args.len() < 2 {
        eprintln!("sleep: missing operand");
        return 1;
    }
    let mut total: u64 = 0;
    for arg in &args[1..] {
        let Some(nanos) = parse_duration_nanos(arg) else {
            eprintln!("sleep: invalid time interval '{arg}'");
            return 1;
        };
        total = total.saturating_add(nanos);
    }
    match time::sleep_nanos(total) {
        Ok(()) => 0,
        Err(err) => {
            eprintln!("sleep: {}", err.description());
            1
        }
    }
}
