//! Error numbers (Linux values, plus Redox's own `EWOULDBLOCK`) and the [`Errno`] type.
//!
//! Design: a system call returns `-errno` in `rax`; [`Errno::demux`] turns a raw return value
//! into `Result<usize, Errno>` and [`Errno::mux`] goes the other way, so the kernel and the
//! runtime agree on the encoding in exactly one place. Names and descriptions come from one
//! table so `errno_name` and `errno_description` cannot drift apart.

use core::fmt;

/// Operation not permitted.
pub const EPERM: i32 = 1;
/// No such file or directory.
pub const ENOENT: i32 = 2;
/// No such process.
pub const ESRCH: i32 = 3;
/// Interrupted system call.
pub const EINTR: i32 = 4;
/// I/O error.
pub const EIO: i32 = 5;
/// No such device or address.
pub const ENXIO: i32 = 6;
/// Argument list too long.
pub const E2BIG: i32 = 7;
/// Exec format error.
pub const ENOEXEC: i32 = 8;
/// Bad file descriptor.
pub const EBADF: i32 = 9;
/// No child processes.
pub const ECHILD: i32 = 10;
/// Try again.
pub const EAGAIN: i32 = 11;
/// Out of memory.
pub const ENOMEM: i32 = 12;
/// Permission denied.
pub const EACCES: i32 = 13;
/// Bad address.
pub const EFAULT: i32 = 14;
/// Device or resource busy.
pub const EBUSY: i32 = 16;
/// File exists.
pub const EEXIST: i32 = 17;
/// Cross-device link.
pub const EXDEV: i32 = 18;
/// No such device (a file `mmap` cannot map).
pub const ENODEV: i32 = 19;
/// Not a directory.
pub const ENOTDIR: i32 = 20;
/// Is a directory.
pub const EISDIR: i32 = 21;
/// Invalid argument.
pub const EINVAL: i32 = 22;
/// File table overflow.
pub const ENFILE: i32 = 23;
/// Too many open files.
pub const EMFILE: i32 = 24;
/// Not a typewriter.
pub const ENOTTY: i32 = 25;
/// File too large.
pub const EFBIG: i32 = 27;
/// No space left on device.
pub const ENOSPC: i32 = 28;
/// Illegal seek.
pub const ESPIPE: i32 = 29;
/// Read-only file system.
pub const EROFS: i32 = 30;
/// Broken pipe.
pub const EPIPE: i32 = 32;
/// Result out of range.
pub const ERANGE: i32 = 34;
/// Resource deadlock would occur.
pub const EDEADLK: i32 = 35;
/// File name too long.
pub const ENAMETOOLONG: i32 = 36;
/// Function not implemented.
pub const ENOSYS: i32 = 38;
/// Directory not empty.
pub const ENOTEMPTY: i32 = 39;
/// Too many symbolic links encountered.
pub const ELOOP: i32 = 40;
/// Operation would block (Redox's own value; Linux aliases it to `EAGAIN`).
pub const EWOULDBLOCK: i32 = 41;
/// Connection timed out.
pub const ETIMEDOUT: i32 = 110;
/// No data available.
pub const ENODATA: i32 = 61;
/// Socket operation on non-socket.
pub const ENOTSOCK: i32 = 88;
/// Destination address required.
pub const EDESTADDRREQ: i32 = 89;
/// Message too long.
pub const EMSGSIZE: i32 = 90;
/// Protocol wrong type for socket.
pub const EPROTOTYPE: i32 = 91;
/// Protocol not available.
pub const ENOPROTOOPT: i32 = 92;
/// Protocol not supported.
pub const EPROTONOSUPPORT: i32 = 93;
/// Socket type not supported.
pub const ESOCKTNOSUPPORT: i32 = 94;
/// Operation not supported on transport endpoint.
pub const EOPNOTSUPP: i32 = 95;
/// Address family not supported by protocol.
pub const EAFNOSUPPORT: i32 = 97;
/// Address already in use.
pub const EADDRINUSE: i32 = 98;
/// Cannot assign requested address.
pub const EADDRNOTAVAIL: i32 = 99;
/// Network is unreachable.
pub const ENETUNREACH: i32 = 101;
/// Connection reset by peer.
pub const ECONNRESET: i32 = 104;
/// Transport endpoint is already connected.
pub const EISCONN: i32 = 106;
/// Transport endpoint is not connected.
pub const ENOTCONN: i32 = 107;
/// Connection refused.
pub const ECONNREFUSED: i32 = 111;
/// Too many references: cannot splice (a descriptor that would hold itself in flight).
pub const ETOOMANYREFS: i32 = 109;

/// The largest errno a syscall return value can encode (results in `-4095..=-1` are errors).
pub const MAX_ERRNO: i32 = 4095;

/// `(errno, name, description)` for every errno this crate defines.
pub const ERRNOS: &[(i32, &str, &str)] = &[
    (EPERM, "EPERM", "Operation not permitted"),
    (ENOENT, "ENOENT", "No such file or directory"),
    (ESRCH, "ESRCH", "No such process"),
    (EINTR, "EINTR", "Interrupted system call"),
    (EIO, "EIO", "I/O error"),
    (E2BIG, "E2BIG", "Argument list too long"),
    (ENOEXEC, "ENOEXEC", "Exec format error"),
    (EBADF, "EBADF", "Bad file descriptor"),
    (ECHILD, "ECHILD", "No child processes"),
    (EAGAIN, "EAGAIN", "Try again"),
    (ENOMEM, "ENOMEM", "Out of memory"),
    (EACCES, "EACCES", "Permission denied"),
    (EFAULT, "EFAULT", "Bad address"),
    (EBUSY, "EBUSY", "Device or resource busy"),
    (EEXIST, "EEXIST", "File exists"),
    (EXDEV, "EXDEV", "Cross-device link"),
    (ENODEV, "ENODEV", "No such device"),
    (ENOTDIR, "ENOTDIR", "Not a directory"),
    (EISDIR, "EISDIR", "Is a directory"),
    (EINVAL, "EINVAL", "Invalid argument"),
    (ENFILE, "ENFILE", "File table overflow"),
    (EMFILE, "EMFILE", "Too many open files"),
    (ENOTTY, "ENOTTY", "Not a typewriter"),
    (EFBIG, "EFBIG", "File too large"),
    (ENOSPC, "ENOSPC", "No space left on device"),
    (ESPIPE, "ESPIPE", "Illegal seek"),
    (EROFS, "EROFS", "Read-only file system"),
    (EPIPE, "EPIPE", "Broken pipe"),
    (ERANGE, "ERANGE", "Result out of range"),
    (EDEADLK, "EDEADLK", "Resource deadlock would occur"),
    (ENAMETOOLONG, "ENAMETOOLONG", "File name too long"),
    (ENOSYS, "ENOSYS", "Function not implemented"),
    (ENXIO, "ENXIO", "No such device or address"),
    (ENOTEMPTY, "ENOTEMPTY", "Directory not empty"),
    (ELOOP, "ELOOP", "Too many symbolic links encountered"),
    (EWOULDBLOCK, "EWOULDBLOCK", "Operation would block"),
    (ETIMEDOUT, "ETIMEDOUT", "Connection timed out"),
    (ENODATA, "ENODATA", "No data available"),
    (ENOTSOCK, "ENOTSOCK", "Socket operation on non-socket"),
    (EDESTADDRREQ, "EDESTADDRREQ", "Destination address required"),
    (EMSGSIZE, "EMSGSIZE", "Message too long"),
    (EPROTOTYPE, "EPROTOTYPE", "Protocol wrong type for socket"),
    (ENOPROTOOPT, "ENOPROTOOPT", "Protocol not available"),
    (EPROTONOSUPPORT, "EPROTONOSUPPORT", "Protocol not supported"),
    (ESOCKTNOSUPPORT, "ESOCKTNOSUPPORT", "Socket type not supported"),
    (EOPNOTSUPP, "EOPNOTSUPP", "Operation not supported on transport endpoint"),
    (EAFNOSUPPORT, "EAFNOSUPPORT", "Address family not supported by protocol"),
    (EADDRINUSE, "EADDRINUSE", "Address already in use"),
    (EADDRNOTAVAIL, "EADDRNOTAVAIL", "Cannot assign requested address"),
    (ENETUNREACH, "ENETUNREACH", "Network is unreachable"),
    (ECONNRESET, "ECONNRESET", "Connection reset by peer"),
    (EISCONN, "EISCONN", "Transport endpoint is already connected"),
    (ENOTCONN, "ENOTCONN", "Transport endpoint is not connected"),
    (ECONNREFUSED, "ECONNREFUSED", "Connection refused"),
    (ETOOMANYREFS, "ETOOMANYREFS", "Too many references: cannot splice"),
];

/// The symbolic name of errno `e` (e.g. `"ENOENT"`), or `"EUNKNOWN"`.
pub fn errno_name(e: i32) -> &'static str {
    ERRNOS.iter().find(|&&(n, _, _)| n == e).map_or("EUNKNOWN", |&(_, name, _)| name)
}

/// A human-readable description of errno `e` (e.g. `"No such file or directory"`).
pub fn errno_description(e: i32) -> &'static str {
    ERRNOS.iter().find(|&&(n, _, _)| n == e).map_or("Unknown error", |&(_, _, text)| text)
}

/// A positive error number, as carried (negated) in a syscall's return value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Errno(pub i32);

impl Errno {
    /// Splits a raw syscall return value: `-4095..=-1` is an error, anything else a result.
    pub fn demux(ret: usize) -> Result<usize, Errno> {
        let signed = ret as isize;
        if (-(MAX_ERRNO as isize)..0).contains(&signed) { Err(Errno(-signed as i32)) } else { Ok(ret) }
    }

    /// Encodes a result as a raw syscall return value (the inverse of [`Errno::demux`]).
    pub fn mux(result: Result<usize, Errno>) -> usize {
        match result {
            Ok(value) => value,
            Err(Errno(e)) => (-(e as isize)) as usize,
        }
    }

    /// The symbolic name, e.g. `"ENOENT"`.
    pub fn name(self) -> &'static str {
        errno_name(self.0)
    }

    /// The human-readable description, e.g. `"No such file or directory"`.
    pub fn description(self) -> &'static str {
        errno_description(self.0)
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.description(), self.name())
    }
}
