//! strace-style formatting of system calls, shared by the guest `strace` and the host's
//! `warden trace`, so both print the same lines.
//!
//! Design: everything writes into a `core::fmt::Write` (no allocation). A call is described
//! by its number, its six arguments and the encoded items of its supervision packets (the
//! kernel's copies: paths, write buffers, structures, exec vectors; see
//! [`crate::supervise`]), plus, at exit, the output items (the bytes the call wrote: a
//! `read`'s data, a `stat`). How each argument is shown comes from the call's table row
//! ([`crate::calls`], [`crate::table::Arg`]): descriptors, flag and value names
//! ([`crate::names`]), signals, strings, structures by [`crate::table::Shape`]. Strings are
//! quoted C-style with escapes and cut after [`STRING_LIMIT`] bytes (`"..."...`); paths are
//! never cut. Results print as a number, `-N ENAME` for errors, hex for addresses.

use core::fmt::{self, Write};

use crate::class::{GROUP_MEMORY, GROUP_PROCESS, GROUP_SIGNAL, GROUP_TIME};
use crate::linux::LINUX_CALL;
use crate::table::{Arg, Flags, Ret, Shape};
use crate::*;

/// Bytes of a data buffer printed before `...`.
pub const STRING_LIMIT: usize = 32;

/// strace-like classes a call belongs to (`-e trace=CLASS`), from its table row: `file`
/// (takes a path), `desc` (takes a descriptor), `process`, `signal`, `memory`, `time` (by
/// group), `ipc` (pipes, futexes and message channels), `creds` (user and group ids, the umask).
pub fn has_class(number: usize, class: &str) -> bool {
    let Some(info) = call_info(number) else { return false };
    let any = |f: fn(&Arg) -> bool| info.args.iter().any(f);
    match class {
        "all" => true,
        "file" => any(|a| matches!(a, Arg::Path(_))),
        "desc" => any(|a| matches!(a, Arg::Fd | Arg::DirFd)),
        "process" => info.groups & GROUP_PROCESS != 0,
        "signal" => info.groups & GROUP_SIGNAL != 0,
        "memory" => info.groups & GROUP_MEMORY != 0,
        "time" => info.groups & GROUP_TIME != 0,
        "ipc" => matches!(info.name, "pipe" | "pipe2" | "futex" | "channel" | "send" | "recv" | "call"),
        "creds" => {
            info.name.contains("uid")
                || info.name.contains("gid")
                || info.name.ends_with("groups")
                || info.name == "umask"
        }
        _ => false,
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

/// Writes `value` as flags: the named field first, then the named bits, leftover bits in
/// hex, then the octal mode or the signal if the flags carry one (`0` if nothing at all).
pub fn write_flags(w: &mut dyn Write, value: usize, f: &Flags) -> fmt::Result {
    let mut rest = value;
    let mut first = true;
    let mut sep = |w: &mut dyn Write| -> fmt::Result {
        if !core::mem::take(&mut first) {
            w.write_char('|')?;
        }
        Ok(())
    };
    if let Some((mask, names)) = f.field
        && let Some(&(_, name)) = names.iter().find(|&&(v, _)| v == value & mask)
    {
        sep(w)?;
        w.write_str(name)?;
        rest &= !mask;
    }
    let mode = f.mode.filter(|&(bit, _)| value & bit != 0).map(|(_, mask)| value & mask);
    if let Some((_, mask)) = f.mode {
        rest &= !mask;
    }
    let signal = value & f.signal;
    rest &= !f.signal;
    for &(bit, name) in f.bits {
        if bit != 0 && rest & bit == bit {
            sep(w)?;
            w.write_str(name)?;
            rest &= !bit;
        }
    }
    if rest != 0 {
        sep(w)?;
        write!(w, "{rest:#x}")?;
    }
    if let Some(mode) = mode {
        sep(w)?;
        write!(w, "0{mode:o}")?;
    }
    if signal != 0 {
        sep(w)?;
        write_signal(w, signal as u64)?;
    }
    if first {
        w.write_char('0')?;
    }
    Ok(())
}

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

/// The item of `kind` for argument `arg` in encoded items.
fn arg_item(items: &[u8], kind: u32, arg: usize) -> Option<&[u8]> {
    packet_items(items).find(|(i, _)| i.kind == kind && i.arg as usize == arg).map(|(_, b)| b)
}

fn le(bytes: &[u8], at: usize, n: usize) -> u64 {
    let mut w = [0u8; 8];
    if let Some(src) = bytes.get(at..at + n) {
        w[..n].copy_from_slice(src);
    }
    u64::from_le_bytes(w)
}

/// One call being written: its row, arguments and items.
struct View<'a> {
    info: &'static CallInfo,
    linux: bool,
    a: [usize; 6],
    items: &'a [u8],
    outputs: Option<&'a [u8]>,
    /// Bytes of a data buffer shown before `...` (strace's `-s`).
    limit: usize,
}

impl View<'_> {
    fn int(&self, w: &mut dyn Write, v: usize) -> fmt::Result {
        // A Linux `int` is the register's low 32 bits.
        if self.linux { write!(w, "{}", v as i32) } else { write!(w, "{}", v as isize) }
    }

    fn fd(&self, w: &mut dyn Write, i: usize) -> fmt::Result {
        let fd = self.a[i];
        if self.linux {
            write!(w, "{}", fd as i32)?;
        } else if fd == ANONYMOUS_FD {
            w.write_str("-1")?;
        } else if fd & (1 << 62) != 0 {
            write!(w, "{}|FD_NONBLOCK_CALL", fd & !(1 << 62))?;
        } else {
            write!(w, "{fd}")?;
        }
        if let Some(p) = arg_item(self.items, ITEM_RESOLVED, i) {
            w.write_char('<')?;
            for &b in p {
                w.write_char(if (0x20..0x7f).contains(&b) { b as char } else { '?' })?;
            }
            w.write_char('>')?;
        }
        Ok(())
    }

    fn pointer(&self, w: &mut dyn Write, i: usize) -> fmt::Result {
        if self.a[i] == 0 { w.write_str("NULL") } else { write!(w, "{:#x}", self.a[i]) }
    }

    /// The bytes the call wrote for argument `i` (at exit).
    fn output(&self, i: usize) -> Option<&[u8]> {
        arg_item(self.outputs?, ITEM_OUTPUT, i)
    }

    /// The call reads requests from (or writes replies to) a scheme daemon's server
    /// descriptor.
    fn scheme_server(&self) -> bool {
        arg_item(self.items, ITEM_SCHEME, 0).is_some()
    }

    /// Whether argument `i` (of kind `arg`) is left out of the line.
    fn hidden(&self, i: usize, arg: Arg) -> bool {
        match arg {
            Arg::Length => true,
            Arg::InBytes { optional: true, len } => {
                self.a[len as usize] == 0 && arg_item(self.items, ITEM_BYTES, i).is_none()
            }
            _ => false,
        }
    }

    fn arg(&self, w: &mut dyn Write, i: usize, arg: Arg) -> fmt::Result {
        let v = self.a[i];
        match arg {
            Arg::Int => self.int(w, v),
            Arg::Uint => write!(w, "{v}"),
            Arg::Hex if v == 0 && self.linux => w.write_char('0'),
            Arg::Hex => write!(w, "{v:#x}"),
            Arg::Ptr => self.pointer(w, i),
            Arg::Octal => {
                if v == 0 {
                    w.write_char('0')
                } else {
                    write!(w, "0{v:o}")
                }
            }
            Arg::Fd => self.fd(w, i),
            Arg::DirFd if self.linux && v as i32 == -100 => w.write_str("AT_FDCWD"),
            Arg::DirFd => self.fd(w, i),
            Arg::Length => Ok(()),
            Arg::Flags(f) => write_flags(w, v, f),
            Arg::Enum(names) => match names.iter().find(|&&(value, _)| value == v) {
                Some(&(_, name)) => w.write_str(name),
                None => self.int(w, v),
            },
            Arg::Signal => write_signal(w, v as u64),
            Arg::Path(_) => match arg_item(self.items, ITEM_PATH, i) {
                Some(p) => write_quoted(w, p, None),
                None => self.pointer(w, i),
            },
            Arg::InBytes { .. } => match arg_item(self.items, ITEM_BYTES, i) {
                Some(b) if self.scheme_server() => write_scheme_reply(w, b, self.limit),
                Some(b) => write_quoted(w, b, Some(self.limit)),
                None => self.pointer(w, i),
            },
            Arg::OutBytes { shape, .. } => match self.output(i) {
                Some(b) if self.scheme_server() => write_scheme_request(w, b, self.limit),
                Some(b) => self.shape(w, shape, b),
                None => self.pointer(w, i),
            },
            Arg::In(s) => match arg_item(self.items, ITEM_STRUCT, i) {
                Some(b) => self.shape(w, s.shape, b),
                None => self.pointer(w, i),
            },
            Arg::Out(s) | Arg::InOut(s) => match self.output(i).or_else(|| arg_item(self.items, ITEM_STRUCT, i)) {
                Some(b) => self.shape(w, s.shape, b),
                None => self.pointer(w, i),
            },
            Arg::Strings { env: false, .. } => {
                w.write_char('[')?;
                let args = packet_items(self.items).filter(|(it, _)| it.kind == ITEM_ARG && it.arg as usize == i);
                for (n, (_, bytes)) in args.enumerate() {
                    if n > 0 {
                        w.write_str(", ")?;
                    }
                    write_quoted(w, bytes, Some(self.limit))?;
                }
                w.write_char(']')
            }
            Arg::Strings { env: true, .. } => {
                let vars =
                    packet_items(self.items).filter(|(it, _)| it.kind == ITEM_ENV && it.arg as usize == i).count();
                write!(w, "[/* {vars} vars */]")
            }
            Arg::Iov { out: false, .. } => match arg_item(self.items, ITEM_BYTES, i) {
                Some(b) => write_quoted(w, b, Some(self.limit)),
                None => self.pointer(w, i),
            },
            Arg::Iov { out: true, .. } => match self.output(i) {
                Some(b) => write_quoted(w, b, Some(self.limit)),
                None => match arg_item(self.items, ITEM_STRUCT, i) {
                    Some(b) => self.shape(w, Shape::Iovec, b),
                    None => self.pointer(w, i),
                },
            },
            Arg::When(_) => write!(w, "{v:#x}"),
        }
    }

    /// Writes a structure (or buffer) the call read or wrote.
    fn shape(&self, w: &mut dyn Write, shape: Shape, b: &[u8]) -> fmt::Result {
        let u = |at: usize| le(b, at, 8);
        let u32_at = |at: usize| le(b, at, 4);
        match shape {
            Shape::Bytes => write_quoted(w, b, Some(self.limit)),
            Shape::I32 => write!(w, "[{}]", u32_at(0) as i32),
            Shape::U64 => write!(w, "[{:#x}]", u(0)),
            Shape::Fds32 => write!(w, "[{}, {}]", u32_at(0) as i32, u32_at(4) as i32),
            Shape::Fds64 => write!(w, "[{}, {}]", u(0), u(8)),
            Shape::WaitStatus => {
                let st = if b.len() >= 8 { u(0) as usize } else { u32_at(0) as usize };
                if wifexited(st) {
                    write!(w, "[{{WIFEXITED(s) && WEXITSTATUS(s) == {}}}]", wexitstatus(st))
                } else {
                    w.write_str("[{WIFSIGNALED(s) && WTERMSIG(s) == ")?;
                    write_signal(w, wtermsig(st) as u64)?;
                    w.write_str("}]")
                }
            }
            Shape::SigSet => {
                let set = u(0);
                w.write_char('[')?;
                let mut first = true;
                for sig in 1..64 {
                    if set & (1 << (sig - 1)) != 0 {
                        if !core::mem::take(&mut first) {
                            w.write_char(' ')?;
                        }
                        match signal_name(sig) {
                            Some(name) => w.write_str(name)?,
                            None => write!(w, "{sig}")?,
                        }
                    }
                }
                w.write_char(']')
            }
            Shape::RedoxStat => match Stat::from_bytes(b) {
                Some(st) => write!(w, "{{st_mode=0{:o}, st_size={}}}", st.st_mode, st.st_size),
                None => write_quoted(w, b, Some(self.limit)),
            },
            Shape::RedoxTimeSpec => match TimeSpec::from_bytes(b) {
                Some(t) => write!(w, "{{tv_sec={}, tv_nsec={}}}", t.tv_sec, t.tv_nsec),
                None => write_quoted(w, b, Some(self.limit)),
            },
            Shape::RedoxSigAction => match SigAction::from_bytes(b) {
                Some(sa) => match sa.sa_handler {
                    SIG_DFL => w.write_str("{SIG_DFL}"),
                    SIG_IGN => w.write_str("{SIG_IGN}"),
                    h => write!(w, "{{{h:#x}, flags={:#x}}}", sa.sa_flags),
                },
                None => write_quoted(w, b, Some(self.limit)),
            },
            Shape::RedoxMap => match Map::from_bytes(b) {
                Some(m) => write!(
                    w,
                    "{{offset={:#x}, size={:#x}, flags={:#x}, address={:#x}}}",
                    m.offset, m.size, m.flags, m.address
                ),
                None => write_quoted(w, b, Some(self.limit)),
            },
            Shape::CallList => write!(w, "[{} calls]", b.len() / 8),
            Shape::ChannelCaps => match crate::ipc::ChannelCaps::from_bytes(b) {
                Some(caps) => {
                    w.write_str("{fds=[")?;
                    for (n, fd) in caps.list().iter().enumerate() {
                        if n > 0 {
                            w.write_str(", ")?;
                        }
                        write!(w, "{fd}")?;
                    }
                    w.write_char(']')?;
                    if caps.reply != crate::ipc::NO_REPLY {
                        write!(w, ", reply={}", caps.reply)?;
                    }
                    w.write_char('}')
                }
                None => write_quoted(w, b, Some(self.limit)),
            },
            Shape::Stat => {
                let mode = u32_at(24) as u32;
                w.write_str("{st_mode=")?;
                write_file_mode(w, mode)?;
                if matches!(mode & 0o170000, 0o020000 | 0o060000) {
                    // A device: strace shows its number instead of a size.
                    let dev = u(40);
                    let (major, minor) =
                        (((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff), (dev & 0xff) | ((dev >> 12) & !0xff));
                    let hex = |w: &mut dyn Write, n: u64| if n == 0 { w.write_char('0') } else { write!(w, "{n:#x}") };
                    w.write_str(", st_rdev=makedev(")?;
                    hex(w, major)?;
                    w.write_str(", ")?;
                    hex(w, minor)?;
                    w.write_str("), ...}")
                } else {
                    write!(w, ", st_size={}, ...}}", u(48))
                }
            }
            Shape::Statx => write!(w, "{{stx_mode=0{:o}, stx_size={}}}", le(b, 28, 2), u(40)),
            Shape::Timespec => write!(w, "{{tv_sec={}, tv_nsec={}}}", u(0) as i64, u(8) as i64),
            Shape::Timeval => write!(w, "{{tv_sec={}, tv_usec={}}}", u(0) as i64, u(8) as i64),
            Shape::Itimerval => write!(
                w,
                "{{it_interval={{tv_sec={}, tv_usec={}}}, it_value={{tv_sec={}, tv_usec={}}}}}",
                u(0) as i64,
                u(8) as i64,
                u(16) as i64,
                u(24) as i64
            ),
            Shape::Timespec2 => write!(
                w,
                "[{{tv_sec={}, tv_nsec={}}}, {{tv_sec={}, tv_nsec={}}}]",
                u(0) as i64,
                u(8) as i64,
                u(16) as i64,
                u(24) as i64
            ),
            Shape::SigAction => {
                match u(0) as usize {
                    SIG_DFL => w.write_str("{sa_handler=SIG_DFL")?,
                    SIG_IGN => w.write_str("{sa_handler=SIG_IGN")?,
                    h => write!(w, "{{sa_handler={h:#x}")?,
                }
                w.write_str(", sa_mask=")?;
                self.shape(w, Shape::SigSet, b.get(24..).unwrap_or(&[]))?;
                write!(w, ", sa_flags={:#x}}}", u(8))
            }
            Shape::Stack => write!(w, "{{ss_sp={:#x}, ss_flags={}, ss_size={}}}", u(0), u32_at(8), u(16)),
            Shape::Rlimit => {
                let lim = |w: &mut dyn Write, v: u64| {
                    if v == u64::MAX { w.write_str("RLIM64_INFINITY") } else { write!(w, "{v}") }
                };
                w.write_str("{rlim_cur=")?;
                lim(w, u(0))?;
                w.write_str(", rlim_max=")?;
                lim(w, u(8))?;
                w.write_char('}')
            }
            Shape::Utsname => {
                let field = |i: usize| {
                    let f = b.get(i * 65..(i + 1) * 65).unwrap_or(&[]);
                    &f[..f.iter().position(|&c| c == 0).unwrap_or(f.len())]
                };
                w.write_str("{sysname=")?;
                write_quoted(w, field(0), None)?;
                w.write_str(", nodename=")?;
                write_quoted(w, field(1), None)?;
                w.write_str(", ...}")
            }
            Shape::PollFds => {
                w.write_char('[')?;
                for (n, e) in b.chunks_exact(8).enumerate() {
                    if n > 0 {
                        w.write_str(", ")?;
                    }
                    write!(w, "{{fd={}, events={:#x}", le(e, 0, 4) as i32, le(e, 4, 2))?;
                    if self.outputs.is_some() {
                        write!(w, ", revents={:#x}", le(e, 6, 2))?;
                    }
                    w.write_char('}')?;
                }
                w.write_char(']')
            }
            Shape::FdSet => {
                w.write_char('[')?;
                let mut first = true;
                for (byte, &bits) in b.iter().enumerate() {
                    for bit in 0..8 {
                        if bits & (1 << bit) != 0 {
                            if !core::mem::take(&mut first) {
                                w.write_char(' ')?;
                            }
                            write!(w, "{}", byte * 8 + bit)?;
                        }
                    }
                }
                w.write_char(']')
            }
            Shape::Iovec => {
                w.write_char('[')?;
                for (n, e) in b.chunks_exact(16).enumerate() {
                    if n > 0 {
                        w.write_str(", ")?;
                    }
                    write!(w, "{{iov_base={:#x}, iov_len={}}}", le(e, 0, 8), le(e, 8, 8))?;
                }
                w.write_char(']')
            }
            Shape::Dirents => {
                let mut n = 0;
                let mut at = 0;
                while let Some(reclen) = b.get(at + 16..at + 18).map(|r| u16::from_le_bytes([r[0], r[1]]) as usize) {
                    if reclen == 0 {
                        break;
                    }
                    n += 1;
                    at += reclen;
                }
                write!(w, "/* {n} entries */")
            }
            Shape::Opaque => w.write_str("{...}"),
        }
    }
}

/// Writes `name(args)` for call `number`: each argument as its table row says (the
/// kernel's copies in `items`, the entry packet's, for what the call reads; `outputs`, the
/// result packet's, at exit, for what it wrote). A call without a row shows its name (or
/// `syscall_N`) and its first three arguments in hex.
pub fn write_call(w: &mut dyn Write, number: usize, a: &[u64; 6], items: &[u8], outputs: Option<&[u8]>) -> fmt::Result {
    write_call_cut(w, number, a, items, outputs, STRING_LIMIT)
}

/// [`write_call`] with data buffers cut after `limit` bytes instead of [`STRING_LIMIT`].
pub fn write_call_cut(
    w: &mut dyn Write,
    number: usize,
    a: &[u64; 6],
    items: &[u8],
    outputs: Option<&[u8]>,
    limit: usize,
) -> fmt::Result {
    let linux = number & LINUX_CALL != 0;
    let Some(info) = call_info(number) else {
        match crate::linux::any_syscall_name(number) {
            Some(name) => w.write_str(name)?,
            None if linux => write!(w, "syscall_{}", number & !LINUX_CALL)?,
            None => write!(w, "syscall_{number:#x}")?,
        }
        return write!(w, "({:#x}, {:#x}, {:#x})", a[0], a[1], a[2]);
    };
    let view = View { info, linux, a: a.map(|v| v as usize), items, outputs, limit };
    w.write_str(view.info.name)?;
    w.write_char('(')?;
    let mut first = true;
    for (i, &arg) in info.args.iter().enumerate() {
        let arg = arg.resolve(&view.a);
        if view.hidden(i, arg) {
            continue;
        }
        if !core::mem::take(&mut first) {
            w.write_str(", ")?;
        }
        view.arg(w, i, arg)?;
    }
    w.write_char(')')
}

/// Writes a request packet a scheme daemon read ([`crate::ipc::SchemeRequest`] and its
/// input bytes) as `{id=1, open, pid=2, uid=0, gid=0, args=[0x...], "/a"}`.
pub fn write_scheme_request(w: &mut dyn Write, b: &[u8], limit: usize) -> fmt::Result {
    use crate::ipc::{REQ_NONBLOCK, SCHEME_CANCEL, SchemeRequest};
    let Some(r) = SchemeRequest::from_bytes(b) else { return write_quoted(w, b, Some(limit)) };
    write!(w, "{{id={}, ", r.id)?;
    match (r.call, syscall_name(r.call as usize)) {
        (SCHEME_CANCEL, _) => w.write_str("cancel")?,
        (_, Some(name)) => w.write_str(name)?,
        (n, None) => write!(w, "call={n:#x}")?,
    }
    if r.call != SCHEME_CANCEL {
        write!(w, ", pid={}, uid={}, gid={}", r.pid, r.uid, r.gid)?;
        if r.handle != 0 {
            write!(w, ", handle={}", r.handle)?;
        }
        if r.args != [0; 3] {
            write!(w, ", args=[{:#x}, {:#x}, {:#x}]", r.args[0], r.args[1], r.args[2])?;
        }
        if r.flags & REQ_NONBLOCK != 0 {
            w.write_str(", REQ_NONBLOCK")?;
        }
        if r.out_len != 0 {
            write!(w, ", out_len={}", r.out_len)?;
        }
    }
    let input = &b[SchemeRequest::SIZE..];
    if !input.is_empty() {
        w.write_str(", ")?;
        write_quoted(w, input, Some(limit))?;
    }
    w.write_char('}')
}

/// Writes a scheme daemon's reply ([`crate::ipc::SchemeReply`] and its output bytes) as
/// `{answer id=1, value=3, "..."}` or `{event handle=2, EVENT_READ}`.
pub fn write_scheme_reply(w: &mut dyn Write, b: &[u8], limit: usize) -> fmt::Result {
    use crate::ipc::*;
    let Some(r) = SchemeReply::from_bytes(b) else { return write_quoted(w, b, Some(limit)) };
    match r.kind {
        REPLY_EVENT => {
            write!(w, "{{event handle={}, ", r.id)?;
            let names = [
                (EVENT_READ, "EVENT_READ"),
                (EVENT_WRITE, "EVENT_WRITE"),
                (EVENT_HANGUP, "EVENT_HANGUP"),
                (EVENT_ERROR, "EVENT_ERROR"),
            ];
            let mut first = true;
            for (bit, name) in names {
                if r.value & bit != 0 {
                    if !core::mem::take(&mut first) {
                        w.write_char('|')?;
                    }
                    w.write_str(name)?;
                }
            }
            if first {
                w.write_char('0')?;
            }
        }
        _ => {
            write!(w, "{{answer id={}, value=", r.id)?;
            match Errno::demux(r.value as usize) {
                Err(e) => write!(w, "-{}", e.name())?,
                Ok(v) => write!(w, "{v}")?,
            }
            let out = b.get(SchemeReply::SIZE..).unwrap_or(&[]);
            let out = &out[..out.len().min(r.len as usize)];
            if !out.is_empty() {
                w.write_str(", ")?;
                write_quoted(w, out, Some(limit))?;
            }
        }
    }
    w.write_char('}')
}

/// Writes `= RESULT`: for errors `-N ENAME` (the Redox ABI's raw value) or, for Linux calls,
/// libc's view as strace shows it (`-1 ENOSYS (Function not implemented)`); hex for
/// addresses, decimal otherwise.
pub fn write_result(w: &mut dyn Write, number: usize, ret: u64) -> fmt::Result {
    let hex = call_info(number).is_some_and(|c| c.ret == Ret::Hex);
    match Errno::demux(ret as usize) {
        Err(e) if number & LINUX_CALL != 0 => write!(w, "= -1 {} ({})", e.name(), e.description()),
        Err(e) => write!(w, "= -{} {}", e.0, e.name()),
        Ok(v) if hex => write!(w, "= {v:#x}"),
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

/// Writes a Linux file mode as strace does: the type by name, then the permission bits in
/// octal (`S_IFREG|0755`).
fn write_file_mode(w: &mut dyn Write, mode: u32) -> fmt::Result {
    let kind = match mode & 0o170000 {
        0o140000 => "S_IFSOCK",
        0o120000 => "S_IFLNK",
        0o100000 => "S_IFREG",
        0o060000 => "S_IFBLK",
        0o040000 => "S_IFDIR",
        0o020000 => "S_IFCHR",
        0o010000 => "S_IFIFO",
        _ => return write!(w, "0{mode:o}"),
    };
    write!(w, "{kind}|0{:o}", mode & 0o7777)
}

/// Writes an exception packet's description as strace shows the signal it raises
/// (`--- SIGSEGV {si_signo=SIGSEGV, si_code=SEGV_MAPERR, si_addr=0x8} ---`), with the
/// `si_code` and `si_addr` Linux gives for that exception. A page fault is always shown as
/// SEGV_MAPERR (the event does not say whether the page was mapped); `int n`, `hlt` and
/// #GP are SI_KERNEL with no address, as on Linux.
pub fn write_exception(w: &mut dyn Write, vector: u64, rip: u64, addr: u64, signal: u64) -> fmt::Result {
    let (code, at) = match vector {
        EXC_PAGE_FAULT => ("SEGV_MAPERR", addr),
        EXC_DIVIDE => ("FPE_INTDIV", rip),
        EXC_INVALID_OPCODE => ("ILL_ILLOPN", rip),
        EXC_X87 | EXC_SIMD => ("FPE_FLTINV", rip),
        EXC_DEBUG => ("TRAP_TRACE", 0),
        _ => ("SI_KERNEL", 0),
    };
    w.write_str("--- ")?;
    write_signal(w, signal)?;
    w.write_str(" {si_signo=")?;
    write_signal(w, signal)?;
    write!(w, ", si_code={code}, si_addr=")?;
    if at == 0 {
        w.write_str("NULL")?
    } else {
        write!(w, "{at:#x}")?
    }
    w.write_str("} ---")
}
