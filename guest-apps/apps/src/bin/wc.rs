//! `wc [-l] [-w] [-c] [FILE...]`: counts lines, words and bytes (all three by default), per
//! file and in total, formatted like coreutils.
//!
//! Design: streams each input in 4 KiB chunks (`apps::text::count`). Column width follows
//! coreutils: a single number is printed bare; otherwise numbers are right-aligned to the
//! width of the largest, at least 7 when stdin is among the inputs.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use apps::text::{count, pad_left};
use runtime::fs::File;
use runtime::{Result, env, eprintln, io, println};

runtime::entry!(main);

#[derive(Clone, Copy, Default)]
struct Counts {
    lines: u64,
    words: u64,
    bytes: u64,
}

fn count_fd(fd: usize) -> Result<Counts> {
    let mut counts = Counts::default();
    let mut in_word = false;
    let mut buf = [0u8; 4096];
    loop {
        let n = io::read(fd, &mut buf)?;
        if n == 0 {
            return Ok(counts);
        }
        let (lines, words, bytes) = count(&buf[..n.min(buf.len())], &mut in_word);
        counts.lines += lines;
        counts.words += words;
        counts.bytes += bytes;
    }
}

fn main() -> i32 {
    let args = env::args();
    let (mut lines, mut words, mut bytes) = (false, false, false);
    let mut files: Vec<String> = Vec::new();
    for arg in args.iter().skip(1) {
        if arg.starts_with('-') && arg.len() > 1 {
            for flag in arg[1..].chars() {
                match flag {
                    'l' => lines = true,
                    'w' => words = true,
                    'c' => bytes = true,
                    _ => {
                        eprintln!("wc: invalid option -- '{flag}'");
                        return 1;
                    }
                }
            }
        } else {
            files.push(arg.clone());
        }
    }
    if !(lines || words || bytes) {
        (lines, words, bytes) = (true, true, true);
    }
    let uses_stdin = files.is_empty() || files.iter().any(|f| f == "-");
    let mut results: Vec<(Option<String>, Counts)> = Vec::new();
    let mut status = 0;
    if files.is_empty() {
        match count_fd(io::STDIN) {
            Ok(c) => results.push((None, c)),
            Err(err) => {
                eprintln!("wc: {}", err.description());
                return 1;
            }
        }
    }
    for name in &files {
        let counted =
            if name == "-" { count_fd(io::STDIN) } else { File::open(name).and_then(|file| count_fd(file.fd())) };
        match counted {
            Ok(c) => results.push((Some(name.clone()), c)),
            Err(err) => {
                eprintln!("wc: {name}: {}", err.description());
                status = 1;
            }
        }
    }
    if results.len() > 1 {
        let total = results.iter().fold(Counts::default(), |acc, (_, c)| Counts {
            lines: acc.lines + c.lines,
            words: acc.words + c.words,
            bytes: acc.bytes + c.bytes,
        });
        results.push((Some(String::from("total")), total));
    }
    let columns = [lines, words, bytes].iter().filter(|&&on| on).count();
    let largest = results.iter().map(|(_, c)| c.lines.max(c.words).max(c.bytes)).max().unwrap_or(0);
    let width = if columns == 1 && results.len() == 1 {
        1
    } else if uses_stdin {
        largest.to_string().len().max(7)
    } else {
        largest.to_string().len()
    };
    for (name, c) in &results {
        let mut fields: Vec<String> = Vec::new();
        for (on, value) in [(lines, c.lines), (words, c.words), (bytes, c.bytes)] {
            if on {
                fields.push(pad_left(&value.to_string(), width));
            }
        }
        let mut line = fields.join(" ");
        if let Some(name) = name {
            line.push(' ');
            line.push_str(name);
        }
        println!("{line}");
    }
    status
}
