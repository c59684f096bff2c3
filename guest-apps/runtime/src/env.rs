//! Program arguments, environment variables and the working directory.
//!
//! Design: [`init`] (called once by `rt::start`) records `argc`, `argv` and `envp` from the
//! initial stack; argument strings are then read in place as `&'static [u8]` (the kernel's
//! NUL-terminated copies, which live as long as the process). The environment is copied once,
//! on first use, into a locked `Vec<(String, String)>` that [`set_var`] / [`remove_var`]
//! change and [`crate::process::Command`] passes to children by default.

use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use crate::sync::SpinLock;
use crate::{Result, sys};

static ARGC: AtomicUsize = AtomicUsize::new(0);
static ARGV: AtomicPtr<*const u8> = AtomicPtr::new(core::ptr::null_mut());
static ENVP: AtomicPtr<*const u8> = AtomicPtr::new(core::ptr::null_mut());
static ENV: SpinLock<Option<Vec<(String, String)>>> = SpinLock::new(None);

/// Records argv and envp from the initial stack.
///
/// # Safety
/// `sp` must point at `argc` of a SysV x86-64 initial stack (`argc`, `argc` string pointers,
/// NULL, environment string pointers, NULL) whose strings are NUL-terminated and stay
/// unmodified for the life of the process.
pub unsafe fn init(sp: *const usize) {
    if sp.is_null() {
        return;
    }
    // SAFETY: per the contract `sp` points at argc, followed by argv[argc], NULL, envp.
    unsafe {
        let argc = sp.read();
        let argv = sp.add(1) as *mut *const u8;
        let envp = argv.add(argc + 1);
        ARGC.store(argc, Ordering::Relaxed);
        ARGV.store(argv, Ordering::Relaxed);
        ENVP.store(envp, Ordering::Relaxed);
    }
}

/// The bytes of a NUL-terminated string.
///
/// # Safety
/// `ptr` must point at a NUL-terminated string that lives (unmodified) for the process.
unsafe fn c_bytes(ptr: *const u8) -> &'static [u8] {
    let mut len = 0;
    // SAFETY: the string is NUL-terminated, so every byte up to and including the NUL is
    // readable; the slice covers only the bytes before it.
    unsafe {
        while ptr.add(len).read() != 0 {
            len += 1;
        }
        core::slice::from_raw_parts(ptr, len)
    }
}

/// The raw argument strings, `argv[0]` first.
pub fn args_bytes() -> Vec<&'static [u8]> {
    let argc = ARGC.load(Ordering::Relaxed);
    let argv = ARGV.load(Ordering::Relaxed);
    if argv.is_null() {
        return Vec::new();
    }
    (0..argc)
        // SAFETY: `init` recorded `argc` valid string pointers at `argv` (contract of `init`).
        .map(|i| unsafe { argv.add(i).read() })
        .filter(|p| !p.is_null())
        // SAFETY: each non-null argv entry is a NUL-terminated string living for the process.
        .map(|p| unsafe { c_bytes(p) })
        .collect()
}

/// The arguments as text (invalid UTF-8 replaced), `argv[0]` first.
pub fn args() -> Vec<String> {
    args_bytes().into_iter().map(|a| String::from_utf8_lossy(a).into_owned()).collect()
}

/// The program's name: the last path component of `argv[0]` (or `"?"`).
pub fn program_name() -> &'static str {
    let argv = ARGV.load(Ordering::Relaxed);
    if argv.is_null() || ARGC.load(Ordering::Relaxed) == 0 {
        return "?";
    }
    // SAFETY: argc > 0, so argv[0] exists (contract of `init`).
    let first = unsafe { argv.read() };
    if first.is_null() {
        return "?";
    }
    // SAFETY: argv[0] is a NUL-terminated string living for the process.
    let bytes = unsafe { c_bytes(first) };
    let name = core::str::from_utf8(bytes).unwrap_or("?");
    name.rsplit(['/', ':']).next().unwrap_or(name)
}

/// The initial environment strings (`KEY=VALUE`) as the kernel passed them.
fn initial_env() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let envp = ENVP.load(Ordering::Relaxed);
    if envp.is_null() {
        return out;
    }
    let mut i = 0;
    loop {
        // SAFETY: envp is a NULL-terminated array of string pointers (contract of `init`).
        let entry = unsafe { envp.add(i).read() };
        if entry.is_null() {
            break;
        }
        // SAFETY: each entry is a NUL-terminated string living for the process.
        let bytes = unsafe { c_bytes(entry) };
        let text = String::from_utf8_lossy(bytes);
        let (key, value) = text.split_once('=').unwrap_or((&text, ""));
        out.push((String::from(key), String::from(value)));
        i += 1;
    }
    out
}

fn with_env<R>(f: impl FnOnce(&mut Vec<(String, String)>) -> R) -> R {
    let mut guard = ENV.lock();
    let env = guard.get_or_insert_with(initial_env);
    f(env)
}

/// All environment variables, in order.
pub fn vars() -> Vec<(String, String)> {
    with_env(|env| env.clone())
}

/// The value of environment variable `key`.
pub fn var(key: &str) -> Option<String> {
    with_env(|env| env.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()))
}

/// Sets environment variable `key` (for this process and the children it spawns).
pub fn set_var(key: &str, value: &str) {
    with_env(|env| match env.iter_mut().find(|(k, _)| k == key) {
        Some(slot) => slot.1 = String::from(value),
        None => env.push((String::from(key), String::from(value))),
    });
}

/// Removes environment variable `key`.
pub fn remove_var(key: &str) {
    with_env(|env| env.retain(|(k, _)| k != key));
}

/// The working directory.
pub fn current_dir() -> Result<String> {
    let mut buf = [0u8; 4096];
    let n = sys::getcwd(&mut buf)?;
    let bytes = &buf[..n.min(buf.len())];
    // Tolerate a kernel that NUL-terminates.
    let bytes = bytes.split(|&b| b == 0).next().unwrap_or(bytes);
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

/// Changes the working directory.
pub fn set_current_dir(path: &str) -> Result<()> {
    sys::chdir(path).map(drop)
}
