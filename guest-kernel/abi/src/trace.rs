//! strace-style formatting of system calls, shared by the guest `strace` and the host's
//! `warden trace`, so both print the same lines.
//!
//! Design: everything writes into a `core::fmt::Write` (no allocation). A call is described
//! by its number, its six arguments and the encoded items of its supervision packets (the
//! kernel's copies: paths, write buffers, exec vectors; see [`crate::supervise`]), plus, at
//! exit, the output items (bytes a `read` returned). Strings are quoted C-style with
//! escapes and cut after [`STRING_LIMIT`] bytes (`"..."...`); paths are never cut. Results
//! print as a number, `-N ENAME` for errors, hex for addresses.

use core::fmt::{self, Write};

use crate::*;

/// Bytes of a data buffer printed before `...`.
pub const STRING_LIMIT: usize = 32;

/// strace-like classes of a call: `file` (takes a path), `desc` (takes a descriptor),
/// `process`, `signal`, `memory`, `ipc` (pipes), `time`, `creds`.
pub fn syscall_classes(n: usize) -> &'static [&'static str] {
    match n {
        SYS_OPEN | SYS_RMDIR | SYS_UNLINK | SYS_CHDIR | SYS_GETCWD => &["file"],
        SYS_FEXEC => &["file", "desc", "process"],
        SYS_READ | SYS_WRITE | SYS_CLOSE | SYS_LSEEK | SYS_DUP | SYS_DUP2 | SYS_FCNTL | SYS_FPATH | SYS_FSTAT
        | SYS_FSYNC | SYS_FTRUNCATE => &["desc"],
        SYS_FMAP => &["desc", "memory"],
        SYS_FUNMAP | SYS_BRK | SYS_MPROTECT => &["memory"],
        SYS_PIPE2 => &["desc", "ipc"],
        SYS_EXIT | SYS_WAITPID | SYS_CLONE | SYS_GETPID | SYS_GETPPID | SYS_GETPGID | SYS_SETPGID | SYS_YIELD
        | SYS_SUPERVISE => &["process"],
        SYS_KILL => &["process", "signal"],
        SYS_JAIL => &["file", "process"],
        SYS_MASK => &["process"],
        SYS_SIGACTION | SYS_SIGPROCMASK | SYS_SIGRETURN => &["signal"],
        SYS_NANOSLEEP | SYS_CLOCK_GETTIME => &["time"],
        SYS_FUTEX => &["ipc"],
        SYS_GETUID | SYS_GETGID | SYS_GETEUID | SYS_GETEGID | SYS_UMASK => &["creds"],
        _ => &[],
    }
}

/// True if `class` names a class (for filter parsing).
pub fn is_class(class: &str) -> bool {
    matches!(class, "file" | "desc" | "process" | "signal" | "memory" | "ipc" | "time" | "creds" | "all")
}

/// Writes `bytes` as a quoted C string, cut after `limit` bytes (`None`: never).
pub fn write_quoted(w: &mut dyn Write, bytes: &[u8], limit: Option<usize>) -> fmt::Result {
    let cut = limit.is_some_and(|l| bytes.len() > l);
    let shown = if cut { &bytes[..limit.unwrap_or(0)] } else { bytes };
    w.write_char('"')?;
    for &b in shown {
        match b {
            b'\n' => w.write_str("\\n")?,
            b'\t' => w.write_str("\\t")?,
            b'\r' => w.write_str("\\r")?,
            b'\\' => w.write_str("\\\\")?,
            b'"' => w.write_str("\\\"")?,
            0x20..=0x7e => w.write_char(b as char)?,
            _ => write!(w, "\\x{b:02x}")?,
        }
    }
    w.write_char('"')?;
    if cut {
        w.write_str("...")?;
    }
    Ok(())
}

/// Writes `value` as `A|B|...` from `names`, with leftover bits in hex (`0` if none).
pub fn write_flags(w: &mut dyn Write, value: usize, names: &[(usize, &str)]) -> fmt::Result {
    let mut rest = value;
    let mut first = true;
    for &(bit, name) in names {
        if bit != 0 && rest & bit == bit {
            if !first {
                w.write_char('|')?;
            }
            w.write_str(name)?;
            rest &= !bit;
            first = false;
        }
    }
    if rest != 0 || first {
        if !first {
            w.write_char('|')?;
        }
        if rest == 0 {
            w.write_char('0')?;
        } else {
            write!(w, "{rest:#x}")?;
        }
    }
    Ok(())
}

/// Writes open flags: access mode first, then the rest, then the mode with `O_CREAT`.
pub fn write_open_flags(w: &mut dyn Write, flags: usize) -> fmt::Result {
    let acc = match flags & O_ACCMODE {
        O_RDONLY => "O_RDONLY",
        O_WRONLY => "O_WRONLY",
        O_RDWR => "O_RDWR",
        _ => "O_NOACCESS",
    };
    w.write_str(acc)?;
    const NAMES: &[(usize, &str)] = &[
        (O_NONBLOCK, "O_NONBLOCK"),
        (O_APPEND, "O_APPEND"),
        (O_SHLOCK, "O_SHLOCK"),
        (O_EXLOCK, "O_EXLOCK"),
        (O_ASYNC, "O_ASYNC"),
        (O_FSYNC, "O_FSYNC"),
        (O_CLOEXEC, "O_CLOEXEC"),
        (O_CREAT, "O_CREAT"),
        (O_TRUNC, "O_TRUNC"),
        (O_EXCL, "O_EXCL"),
        (O_DIRECTORY, "O_DIRECTORY"),
        (O_STAT, "O_STAT"),
        (O_SYMLINK, "O_SYMLINK"),
        (O_NOFOLLOW, "O_NOFOLLOW"),
    ];
    for &(bit, name) in NAMES {
        if flags & bit != 0 {
            write!(w, "|{name}")?;
        }
    }
    if flags & O_CREAT != 0 {
        write!(w, "|0{:o}", flags & O_MODE_MASK)?;
    }
    Ok(())
}

const CLONE_NAMES: &[(usize, &str)] = &[
    (CLONE_VM, "CLONE_VM"),
    (CLONE_FS, "CLONE_FS"),
    (CLONE_FILES, "CLONE_FILES"),
    (CLONE_SIGHAND, "CLONE_SIGHAND"),
    (CLONE_VFORK, "CLONE_VFORK"),
    (CLONE_THREAD, "CLONE_THREAD"),
    (CLONE_SUPERVISE, "CLONE_SUPERVISE"),
];

fn write_signal(w: &mut dyn Write, sig: u64) -> fmt::Result {
    match signal_name(sig as usize) {
        Some(name) => write!(w, "SIG{name}"),
        None => write!(w, "{sig}"),
    }
}

/// The first item of `kind` in encoded items.
pub fn find_item(items: &[u8], kind: u32) -> Option<&[u8]> {
    packet_items(items).find(|(i, _)| i.kind == kind).map(|(_, b)| b)
}

fn write_vector(w: &mut dyn Write, items: &[u8], kind: u32) -> fmt::Result {
    w.write_char('[')?;
    for (i, (_, bytes)) in packet_items(items).filter(|(i, _)| i.kind == kind).enumerate() {
        if i > 0 {
            w.write_str(", ")?;
        }
        write_quoted(w, bytes, Some(STRING_LIMIT))?;
    }
    w.write_char(']')
}

fn write_fd(w: &mut dyn Write, fd: u64) -> fmt::Result {
    if fd as usize == ANONYMOUS_FD {
        return w.write_str("-1");
    }
    if fd & (1 << 62) != 0 { write!(w, "{}|FD_NONBLOCK_CALL", fd & !(1 << 62)) } else { write!(w, "{fd}") }
}

fn write_path(w: &mut dyn Write, items: &[u8], ptr: u64) -> fmt::Result {
    match find_item(items, ITEM_PATH) {
        Some(p) => write_quoted(w, p, None),
        None => write!(w, "{ptr:#x}"),
    }
}

/// Writes `name(args)` for call `number`. `items` are the entry packet's items, `outputs`
/// (at exit) the result packet's.
pub fn write_call(w: &mut dyn Write, number: usize, a: &[u64; 6], items: &[u8], outputs: Option<&[u8]>) -> fmt::Result {
    if number & crate::linux::LINUX_CALL != 0 {
        return write_linux_call(w, number & !crate::linux::LINUX_CALL, a, items, outputs);
    }
    match syscall_name(number) {
        Some(name) => w.write_str(name)?,
        None => write!(w, "syscall_{number:#x}")?,
    }
    w.write_char('(')?;
    let out = |arg: u32| outputs.and_then(|o| packet_items(o).find(|(i, _)| i.kind == ITEM_OUTPUT && i.arg == arg));
    match number {
        SYS_OPEN => {
            write_path(w, items, a[0])?;
            w.write_str(", ")?;
            write_open_flags(w, a[2] as usize)?;
        }
        SYS_RMDIR | SYS_UNLINK | SYS_CHDIR => write_path(w, items, a[0])?,
        SYS_READ | SYS_FPATH => {
            write_fd(w, a[0])?;
            w.write_str(", ")?;
            match out(1) {
                Some((_, b)) => write_quoted(w, b, Some(STRING_LIMIT))?,
                None => write!(w, "{:#x}", a[1])?,
            }
            write!(w, ", {}", a[2])?;
        }
        SYS_WRITE => {
            write_fd(w, a[0])?;
            w.write_str(", ")?;
            match find_item(items, ITEM_BYTES) {
                Some(b) => write_quoted(w, b, Some(STRING_LIMIT))?,
                None => write!(w, "{:#x}", a[1])?,
            }
            write!(w, ", {}", a[2])?;
        }
        SYS_CLOSE | SYS_FSYNC => write_fd(w, a[0])?,
        SYS_DUP => {
            write_fd(w, a[0])?;
            if let Some(b) = find_item(items, ITEM_BYTES) {
                w.write_str(", ")?;
                write_quoted(w, b, Some(STRING_LIMIT))?;
            }
        }
        SYS_DUP2 => {
            write_fd(w, a[0])?;
            write!(w, ", {}", a[1])?;
        }
        SYS_LSEEK => {
            write_fd(w, a[0])?;
            let whence = match a[2] as usize {
                SEEK_SET => "SEEK_SET",
                SEEK_CUR => "SEEK_CUR",
                SEEK_END => "SEEK_END",
                _ => "?",
            };
            write!(w, ", {}, {whence}", a[1] as i64)?;
        }
        SYS_FCNTL => {
            write_fd(w, a[0])?;
            let cmd = match a[1] as usize {
                F_DUPFD => "F_DUPFD",
                F_GETFD => "F_GETFD",
                F_SETFD => "F_SETFD",
                F_GETFL => "F_GETFL",
                F_SETFL => "F_SETFL",
                _ => "?",
            };
            write!(w, ", {cmd}, {:#x}", a[2])?;
        }
        SYS_FSTAT => {
            write_fd(w, a[0])?;
            match out(1).and_then(|(_, b)| Stat::from_bytes(b)) {
                Some(st) => write!(w, ", {{st_mode=0{:o}, st_size={}}}", st.st_mode, st.st_size)?,
                None => write!(w, ", {:#x}", a[1])?,
            }
        }
        SYS_FTRUNCATE => {
            write_fd(w, a[0])?;
            write!(w, ", {}", a[1])?;
        }
        SYS_FEXEC => {
            write_fd(w, a[0])?;
            if let Some(p) = find_item(items, ITEM_RESOLVED) {
                w.write_char('<')?;
                for &b in p {
                    w.write_char(if (0x20..0x7f).contains(&b) { b as char } else { '?' })?;
                }
                w.write_char('>')?;
            }
            w.write_str(", ")?;
            write_vector(w, items, ITEM_ARG)?;
            write!(w, ", [/* {} vars */]", a[4])?;
        }
        SYS_FMAP => {
            write_fd(w, a[0])?;
            match Map::from_bytes(find_item(items, ITEM_STRUCT).unwrap_or(&[])) {
                Some(m) => write!(
                    w,
                    ", {{offset={:#x}, size={:#x}, flags={:#x}, address={:#x}}}",
                    m.offset, m.size, m.flags, m.address
                )?,
                None => write!(w, ", {:#x}", a[1])?,
            }
        }
        SYS_FUNMAP | SYS_MPROTECT => write!(w, "{:#x}, {:#x}", a[0], a[1])?,
        SYS_EXIT => write!(w, "{}", a[0])?,
        SYS_WAITPID => {
            write!(w, "{}, ", a[0] as i64)?;
            match out(1) {
                Some((_, b)) if b.len() >= 8 => {
                    let mut s = [0u8; 8];
                    s.copy_from_slice(&b[..8]);
                    let st = u64::from_le_bytes(s) as usize;
                    if wifexited(st) {
                        write!(w, "[{{WIFEXITED(s) && WEXITSTATUS(s) == {}}}]", wexitstatus(st))?;
                    } else {
                        w.write_str("[{WIFSIGNALED(s) && WTERMSIG(s) == ")?;
                        write_signal(w, wtermsig(st) as u64)?;
                        w.write_str("}]")?;
                    }
                }
                _ => write!(w, "{:#x}", a[1])?,
            }
            w.write_str(", ")?;
            write_flags(w, a[2] as usize, &[(WNOHANG, "WNOHANG"), (WUNTRACED, "WUNTRACED")])?;
        }
        SYS_KILL => {
            write!(w, "{}, ", a[0] as i64)?;
            write_signal(w, a[1])?;
        }
        SYS_CLONE => write_flags(w, a[0] as usize, CLONE_NAMES)?,
        SYS_BRK | SYS_UMASK | SYS_GETPGID => write!(w, "{:#x}", a[0])?,
        SYS_SETPGID => write!(w, "{}, {}", a[0], a[1])?,
        SYS_GETCWD => match out(0) {
            Some((_, b)) => write_quoted(w, b, None)?,
            None => write!(w, "{:#x}, {}", a[0], a[1])?,
        },
        SYS_NANOSLEEP => match TimeSpec::from_bytes(find_item(items, ITEM_STRUCT).unwrap_or(&[])) {
            Some(t) => write!(w, "{{tv_sec={}, tv_nsec={}}}", t.tv_sec, t.tv_nsec)?,
            None => write!(w, "{:#x}", a[0])?,
        },
        SYS_CLOCK_GETTIME => write!(w, "{}, {:#x}", a[0], a[1])?,
        SYS_PIPE2 => {
            match out(0) {
                Some((_, b)) if b.len() >= 16 => {
                    let mut r = [0u8; 8];
                    r.copy_from_slice(&b[..8]);
                    let mut x = [0u8; 8];
                    x.copy_from_slice(&b[8..16]);
                    write!(w, "[{}, {}]", u64::from_le_bytes(r), u64::from_le_bytes(x))?
                }
                _ => write!(w, "{:#x}", a[0])?,
            }
            w.write_str(", ")?;
            write_flags(w, a[1] as usize, &[(O_NONBLOCK, "O_NONBLOCK"), (O_CLOEXEC, "O_CLOEXEC")])?;
        }
        SYS_SIGACTION => {
            write_signal(w, a[0])?;
            match SigAction::from_bytes(find_item(items, ITEM_STRUCT).unwrap_or(&[])) {
                Some(sa) => match sa.sa_handler {
                    SIG_DFL => w.write_str(", {SIG_DFL}")?,
                    SIG_IGN => w.write_str(", {SIG_IGN}")?,
                    h => write!(w, ", {{{h:#x}, flags={:#x}}}", sa.sa_flags)?,
                },
                None => w.write_str(", NULL")?,
            }
        }
        SYS_SIGPROCMASK => {
            let how = match a[0] as usize {
                SIG_BLOCK => "SIG_BLOCK",
                SIG_UNBLOCK => "SIG_UNBLOCK",
                SIG_SETMASK => "SIG_SETMASK",
                _ => "?",
            };
            write!(w, "{how}, ")?;
            match find_item(items, ITEM_STRUCT) {
                Some(b) if b.len() >= 8 => {
                    let mut s = [0u8; 8];
                    s.copy_from_slice(&b[..8]);
                    write!(w, "{:#x}", u64::from_le_bytes(s))?
                }
                _ => w.write_str("NULL")?,
            }
        }
        SYS_FUTEX => {
            let op = if a[1] as usize == FUTEX_WAIT { "FUTEX_WAIT" } else { "FUTEX_WAKE" };
            write!(w, "{:#x}, {op}, {}", a[0], a[2])?;
        }
        SYS_SUPERVISE => write!(w, "{}", a[0])?,
        SYS_JAIL => {
            write_path(w, items, a[0])?;
            write!(w, ", {:#x}", a[2])?;
        }
        SYS_MASK => write!(w, "[{} calls], {:#x}", a[1], a[2])?,
        SYS_GETPID | SYS_GETPPID | SYS_YIELD | SYS_SIGRETURN | SYS_GETUID | SYS_GETGID | SYS_GETEUID | SYS_GETEGID => {}
        _ => write!(w, "{:#x}, {:#x}, {:#x}", a[0], a[1], a[2])?,
    }
    w.write_char(')')
}

/// Writes `= RESULT`: `-N ENAME` for errors, hex for addresses, decimal otherwise.
pub fn write_result(w: &mut dyn Write, number: usize, ret: u64) -> fmt::Result {
    let linux_hex = [crate::linux::nr::BRK, crate::linux::nr::MMAP, crate::linux::nr::MREMAP]
        .iter()
        .any(|&n| number == crate::linux::LINUX_CALL | n);
    match Errno::demux(ret as usize) {
        Err(e) => write!(w, "= -{} {}", e.0, e.name()),
        Ok(v) if linux_hex => write!(w, "= {v:#x}"),
        Ok(v) if matches!(number, SYS_BRK | SYS_FMAP) => write!(w, "= {v:#x}"),
        Ok(v) => write!(w, "= {v}"),
    }
}

/// Writes how a process ended, strace style (`+++ exited with 0 +++`).
pub fn write_exit(w: &mut dyn Write, status: usize) -> fmt::Result {
    if wifexited(status) {
        write!(w, "+++ exited with {} +++", wexitstatus(status))
    } else {
        w.write_str("+++ killed by ")?;
        write_signal(w, wtermsig(status) as u64)?;
        w.write_str(" +++")
    }
}

/// Writes an exception packet's description (`--- SIGSEGV {vector=14, rip=..., addr=...} ---`).
pub fn write_exception(w: &mut dyn Write, vector: u64, rip: u64, addr: u64, signal: u64) -> fmt::Result {
    w.write_str("--- ")?;
    write_signal(w, signal)?;
    write!(w, " {{vector={vector:#x}, rip={rip:#x}, addr={addr:#x}}} ---")
}

/// Writes a Linux-personality call: its Linux name and arguments, the kernel's copies of
/// paths, buffers and argument vectors shown as strings (each item's `arg` is the argument
/// it belongs to), other arguments as numbers (small ones signed, the rest in hex).
fn write_linux_call(w: &mut dyn Write, nr: usize, a: &[u64; 6], items: &[u8], outputs: Option<&[u8]>) -> fmt::Result {
    match crate::linux::linux_syscall_name(nr) {
        Some(name) => w.write_str(name)?,
        None => write!(w, "syscall_{nr}")?,
    }
    w.write_char('(')?;
    for (i, &v) in a.iter().enumerate().take(crate::linux::linux_arg_count(nr)) {
        if i > 0 {
            w.write_str(", ")?;
        }
        let item = |kind: u32| packet_items(items).find(|(it, _)| it.kind == kind && it.arg == i as u32);
        let out = outputs.and_then(|o| packet_items(o).find(|(it, _)| it.kind == ITEM_OUTPUT && it.arg == i as u32));
        if let Some((_, b)) = item(ITEM_PATH).or(item(ITEM_BYTES)).or(out) {
            write_quoted(w, b, Some(STRING_LIMIT))?;
        } else if packet_items(items).any(|(it, _)| it.kind == ITEM_ARG && it.arg == i as u32) {
            write_vector(w, items, ITEM_ARG)?;
        } else if packet_items(items).any(|(it, _)| it.kind == ITEM_ENV && it.arg == i as u32) {
            write!(w, "[/* {} vars */]", packet_items(items).filter(|(it, _)| it.kind == ITEM_ENV).count())?;
        } else if (v as i64).unsigned_abs() < 4096 {
            write!(w, "{}", v as i64)?;
        } else {
            write!(w, "{v:#x}")?;
        }
    }
    w.write_char(')')
}
