//! `restrict [--allow CALLS] [--deny CALLS] [--kill] [--jail DIR [--schemes]] PROGRAM [ARGS...]`
//! runs PROGRAM under a system-call mask and/or in a jail; `restrict --list` prints the table.
//! `--schemes` makes the jail with `JAIL_SCHEMES`: its processes may serve schemes from user
//! space and use those served inside it.
//!
//! Design: CALLS is a comma-separated list of call names (`open`; Linux-personality calls as
//! `linux:openat`), jail classes (`P`, `F`, `C`, `J`), groups (`file`, `process`, `memory`,
//! `signal`, `time`), ABIs (`redox`, `linux`) or `all`, as warden_abi's `class::Selector`
//! parses them; classes, groups and `all` take the calls of both ABIs. `--list` prints both
//! tables (Linux names with their `linux:` prefix). The mask allows the `--allow` sets (every call
//! if none is given) minus the `--deny` sets; without either there is no mask. Order of
//! operations: enter the jail (so PROGRAM is found inside it), open PROGRAM, shrink the mask
//! (so it may deny `open` or `jail`), then `fexec` the open descriptor, which the mask must
//! still allow. Both restrictions are the kernel's, inherited by every descendant and
//! irrevocable; `--kill` makes a masked call kill with SIGSYS instead of failing with EPERM.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use runtime::abi::{self, CALLS, LINUX_CALLS, MASK_KILL, Selector};
use runtime::fs::File;
use runtime::{env, eprintln, println, process, sys};

runtime::entry!(main);

const USAGE: &str = "usage: restrict [--allow CALLS] [--deny CALLS] [--kill] [--jail DIR [--schemes]] PROGRAM \
    [ARGS...] | restrict --list";

fn selectors(list: &str) -> Result<Vec<Selector>, String> {
    list.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| Selector::parse(s.trim()).ok_or_else(|| format!("unknown call or class {s:?}")))
        .collect()
}

fn main() -> i32 {
    let args = env::args();
    let mut rest = args.get(1..).unwrap_or_default();
    let (mut allow, mut deny): (Option<Vec<Selector>>, Vec<Selector>) = (None, Vec::new());
    let (mut kill, mut jail, mut schemes) = (false, None, false);
    while let Some(flag) = rest.first() {
        let value = rest.get(1);
        let parsed = match (flag.as_str(), value) {
            ("--list", _) => {
                for c in CALLS {
                    println!("{:14} {} {}", c.name, c.class.name(), c.why);
                }
                for c in LINUX_CALLS {
                    println!("{:14} {} {}", format!("linux:{}", c.name), c.class.name(), c.why);
                }
                return 0;
            }
            ("--kill", _) => {
                kill = true;
                rest = &rest[1..];
                continue;
            }
            ("--schemes", _) => {
                schemes = true;
                rest = &rest[1..];
                continue;
            }
            ("--allow", Some(v)) => selectors(v).map(|s| allow.get_or_insert_with(Vec::new).extend(s)),
            ("--deny", Some(v)) => selectors(v).map(|s| deny.extend(s)),
            ("--jail", Some(v)) => {
                jail = Some(v.clone());
                Ok(())
            }
            (f, _) if f.starts_with("--") => Err(String::from(USAGE)),
            _ => break,
        };
        if let Err(msg) = parsed {
            eprintln!("restrict: {msg}");
            return 2;
        }
        rest = &rest[2..];
    }
    let Some(program) = rest.first() else {
        eprintln!("{USAGE}");
        return 2;
    };
    if schemes && jail.is_none() {
        eprintln!("restrict: --schemes needs --jail");
        return 2;
    }
    if let Some(dir) = &jail
        && let Err(err) = sys::jail(dir, if schemes { abi::JAIL_SCHEMES } else { 0 })
    {
        eprintln!("restrict: jail {dir}: {}", err.description());
        return 125;
    }
    let path = process::resolve_program(program);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(err) => {
            eprintln!("restrict: {program}: {}", err.description());
            return if err.0 == abi::ENOENT || err.0 == abi::ENOTDIR { 127 } else { 126 };
        }
    };
    if allow.is_some() || !deny.is_empty() || kill {
        let allowed: Vec<usize> = abi::all_calls()
            .filter(|c| allow.as_ref().is_none_or(|a| a.iter().any(|s| s.matches(c))))
            .filter(|c| !deny.iter().any(|s| s.matches(c)))
            .map(|c| c.number)
            .collect();
        if let Err(err) = sys::mask(&allowed, if kill { MASK_KILL } else { 0 }) {
            eprintln!("restrict: mask: {}", err.description());
            return 125;
        }
    }
    let argv: Vec<&[u8]> = rest.iter().map(|a| a.as_bytes()).collect();
    let envs: Vec<String> = env::vars().into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    let env_bytes: Vec<&[u8]> = envs.iter().map(|e| e.as_bytes()).collect();
    let err = sys::fexec(file.fd(), &argv, &env_bytes);
    eprintln!("restrict: {program}: cannot execute: {}", err.description());
    126
}
