//! How each system call takes its arguments: the vocabulary of the call tables
//! ([`crate::calls`]).
//!
//! Design (in the spirit of gVisor's syscall tables): a call is described by one row, for
//! both ABIs, and everything that needs a fact about a call reads it from that row:
//! - the guest kernel *decodes* a call by walking its [`Arg`]s: every pointer argument the
//!   call reads ([`Arg::Path`], [`Arg::InBytes`], [`Arg::In`], [`Arg::InOut`],
//!   [`Arg::Strings`], [`Arg::Iov`]) is copied into the kernel once, as supervision packet
//!   items (`ITEM_PATH`, `ITEM_BYTES`, `ITEM_STRUCT`, `ITEM_ARG`/`ITEM_ENV`; see
//!   [`crate::supervise`]), before anything looks at it;
//! - the ranges a call writes for the guest ([`Arg::OutBytes`], [`Arg::Out`], [`Arg::InOut`],
//!   an output [`Arg::Iov`]) are what supervisors see and may rewrite before the guest does,
//!   and what tracers print at exit;
//! - the jail confines every [`Arg::Path`] of a C-class call as its [`PathArg`] says;
//! - tracers ([`crate::trace`], the guest `strace`, `warden trace`) print each argument as its
//!   kind says: descriptors, flag names, enums, signals, strings, structures.
//!
//! Conditional arguments ([`Arg::When`]) cover the calls whose argument means one thing or
//! another depending on another argument (`futex`'s timeout, `arch_prctl`'s address): a
//! [`Cond`] says which.

/// Longest buffer one call moves (`read`, `write`, `getrandom`...): larger requests are
/// partial.
pub const MAX_IO: usize = 1 << 20;

/// Names of values: `(value, name)` pairs.
pub type Names = &'static [(usize, &'static str)];

/// How a flags argument is named.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flags {
    /// A field named as a whole, first (an access mode, a mapping type, a futex command):
    /// `(mask, names of the values)`.
    pub field: Option<(usize, Names)>,
    /// Bits (or groups of bits) named one by one, in this order.
    pub bits: Names,
    /// Low bits shown in octal after the names when this bit is set (Redox `open`'s mode
    /// with `O_CREAT`): `(bit, mask)`. The mask's bits are never shown as leftovers.
    pub mode: Option<(usize, usize)>,
    /// The low bits are a signal number (Linux `clone`'s `CSIGNAL`): its mask.
    pub signal: usize,
}

impl Flags {
    /// Bits named one by one.
    pub const fn bits(bits: Names) -> Flags {
        Flags { field: None, bits, mode: None, signal: 0 }
    }
}

/// The layout of a structure an argument points to (how it is shown; its size is [`Size`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// Plain bytes.
    Bytes,
    /// A 32-bit integer (Linux `int *`).
    I32,
    /// A 64-bit integer.
    U64,
    /// Two 32-bit descriptors (Linux `pipe`).
    Fds32,
    /// Two 64-bit descriptors (Redox `pipe2`).
    Fds64,
    /// A wait status (Redox: 64 bits; Linux: 32).
    WaitStatus,
    /// A signal set.
    SigSet,
    /// Redox `struct Stat`.
    RedoxStat,
    /// Redox `struct TimeSpec`.
    RedoxTimeSpec,
    /// Redox `struct SigAction`.
    RedoxSigAction,
    /// Redox `struct Map`.
    RedoxMap,
    /// `SYS_MASK`'s array of call numbers.
    CallList,
    /// A channel message's descriptors ([`crate::ipc::ChannelCaps`]).
    ChannelCaps,
    /// Linux `struct stat`.
    Stat,
    /// Linux `struct statx`.
    Statx,
    /// `struct timespec`.
    Timespec,
    /// `struct timeval`.
    Timeval,
    /// `struct itimerval`.
    Itimerval,
    /// Two `struct timespec` (`utimensat`).
    Timespec2,
    /// Linux `struct sigaction` (kernel layout).
    SigAction,
    /// `stack_t`.
    Stack,
    /// `struct rlimit`.
    Rlimit,
    /// `struct new_utsname`.
    Utsname,
    /// An array of `struct pollfd`.
    PollFds,
    /// An `fd_set` of `nfds` bits.
    FdSet,
    /// An array of `struct iovec`.
    Iovec,
    /// `linux_dirent64` records.
    Dirents,
    /// Any other fixed structure (`sysinfo`, `rusage`, `tms`, `siginfo_t`...), shown by
    /// address.
    Opaque,
}

/// How many bytes an argument points to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Size {
    /// A fixed size.
    Fixed(usize),
    /// `each` bytes per element, argument `arg` elements; more than `max` elements is
    /// `errno` (`EINVAL`, `E2BIG`).
    Count {
        /// The argument holding the element count.
        arg: u8,
        /// Bytes per element.
        each: usize,
        /// Most elements.
        max: usize,
        /// The error beyond `max`.
        errno: i32,
    },
    /// An `fd_set` for the descriptors below argument `nfds` (clamped to 0..=1024).
    FdSet {
        /// The argument holding `nfds`.
        nfds: u8,
    },
}

/// A structure (or array) an argument points to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Struct {
    /// How it is shown.
    pub shape: Shape,
    /// How big it is.
    pub size: Size,
    /// A null pointer is allowed (the call then reads or writes nothing there); otherwise a
    /// null pointer is `EFAULT`.
    pub optional: bool,
}

/// A required structure of `size` bytes.
pub const fn st(shape: Shape, size: usize) -> Struct {
    Struct { shape, size: Size::Fixed(size), optional: false }
}

impl Struct {
    /// The same structure, a null pointer allowed.
    pub const fn optional(mut self) -> Struct {
        self.optional = true;
        self
    }

    /// Its size for arguments `a` (`Err(errno)` beyond a count's maximum).
    pub fn bytes(&self, a: &[usize; 6]) -> Result<usize, i32> {
        match self.size {
            Size::Fixed(n) => Ok(n),
            Size::Count { arg, each, max, errno } => {
                let n = a[arg as usize];
                if n > max { Err(errno) } else { Ok(n * each) }
            }
            Size::FdSet { nfds } => Ok(fd_set_bytes(a[nfds as usize])),
        }
    }
}

/// Bytes of an `fd_set` covering descriptors below `nfds` (as a 32-bit `int`, clamped to
/// 0..=1024), in whole 64-bit words.
pub fn fd_set_bytes(nfds: usize) -> usize {
    ((nfds as i32).clamp(0, 1024) as usize).div_ceil(64) * 8
}

/// Whether a call follows a final symbolic link of a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Follow {
    /// Always.
    Yes,
    /// Never.
    No,
    /// Unless argument `.0` has bit `.1` (`AT_SYMLINK_NOFOLLOW`).
    Unless(u8, usize),
    /// Only if argument `.0` has bit `.1` (`AT_SYMLINK_FOLLOW`).
    If(u8, usize),
    /// As Linux `open` with flags in argument `.0`: not with `O_NOFOLLOW`, nor with
    /// `O_CREAT | O_EXCL`.
    LinuxOpen(u8),
    /// As Redox `open` with flags in argument `.0`: not with `O_SYMLINK` or `O_NOFOLLOW`,
    /// nor with `O_CREAT | O_EXCL`.
    RedoxOpen(u8),
}

/// How a path ending in `.` or `..` is refused by a call that creates or removes its last
/// component (otherwise `x/..` would name the parent of `x`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tail {
    /// Any tail is fine.
    Any,
    /// Refused with this errno.
    Refuse(i32),
    /// `rmdir`: `EINVAL` for `.`, `ENOTEMPTY` for `..`.
    Rmdir,
    /// `unlinkat`: as [`Tail::Rmdir`] when argument `.0` has bit `.1` (`AT_REMOVEDIR`),
    /// else `EISDIR`.
    Unlinkat(u8, usize),
}

/// A path argument: how it is copied, resolved and confined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathArg {
    /// The argument holding its length (Redox `(ptr, len)` pairs); `None`: NUL-terminated
    /// (Linux).
    pub len: Option<u8>,
    /// The directory-descriptor argument a relative path starts from (`*at` calls);
    /// `None`: the working directory.
    pub dirfd: Option<u8>,
    /// Whether a final symbolic link is followed.
    pub follow: Follow,
    /// How a `.`/`..` tail is refused.
    pub tail: Tail,
    /// The Linux personality's virtual paths (`/dev/null`, `/dev/fd/N`, `/proc/self/exe`...)
    /// name no file of the tree: a jail keeps them as they are.
    pub devices: bool,
    /// An empty path means the directory descriptor itself when argument `.0` has bit `.1`
    /// (`AT_EMPTY_PATH`).
    pub empty: Option<(u8, usize)>,
    /// A null pointer is allowed (`utimensat`: the descriptor itself).
    pub nullable: bool,
    /// Only text, never resolved (a symbolic link's target).
    pub text: bool,
    /// Confined by the handler where it opens the file, not before the call (`execve`: the
    /// program and each `#!` interpreter, so the script path an interpreter gets stays the
    /// guest's spelling).
    pub late: bool,
}

/// A Linux path (NUL-terminated), relative to the working directory, a final link followed.
pub const fn path() -> PathArg {
    PathArg {
        len: None,
        dirfd: None,
        follow: Follow::Yes,
        tail: Tail::Any,
        devices: false,
        empty: None,
        nullable: false,
        text: false,
        late: false,
    }
}

/// A Redox path: `(pointer, length)` with the length in argument `len`.
pub const fn redox_path(len: u8) -> PathArg {
    let mut p = path();
    p.len = Some(len);
    p
}

impl PathArg {
    /// Relative to the directory descriptor in argument `dirfd`.
    pub const fn at(mut self, dirfd: u8) -> PathArg {
        self.dirfd = Some(dirfd);
        self
    }
    /// Following a final link as `follow` says.
    pub const fn follow(mut self, follow: Follow) -> PathArg {
        self.follow = follow;
        self
    }
    /// A final link is not followed.
    pub const fn nofollow(self) -> PathArg {
        self.follow(Follow::No)
    }
    /// A `.`/`..` tail refused as `tail` says.
    pub const fn tail(mut self, tail: Tail) -> PathArg {
        self.tail = tail;
        self
    }
    /// The personality's virtual device paths pass a jail unchanged.
    pub const fn devices(mut self) -> PathArg {
        self.devices = true;
        self
    }
    /// An empty path is the descriptor itself when argument `flags` has `bit`.
    pub const fn empty(mut self, flags: u8, bit: usize) -> PathArg {
        self.empty = Some((flags, bit));
        self
    }
    /// A null pointer is allowed.
    pub const fn nullable(mut self) -> PathArg {
        self.nullable = true;
        self
    }
    /// Only text (a link target): copied, shown, never resolved.
    pub const fn text(mut self) -> PathArg {
        self.text = true;
        self
    }
    /// Confined by the handler, not before the call.
    pub const fn late(mut self) -> PathArg {
        self.late = true;
        self
    }

    /// Whether a final symbolic link is followed for arguments `a`.
    pub fn follows(&self, a: &[usize; 6]) -> bool {
        use crate::linux::flag as lx;
        match self.follow {
            Follow::Yes => true,
            Follow::No => false,
            Follow::Unless(arg, bit) => a[arg as usize] & bit == 0,
            Follow::If(arg, bit) => a[arg as usize] & bit != 0,
            Follow::LinuxOpen(arg) => {
                let f = a[arg as usize];
                f & lx::O_NOFOLLOW == 0 && f & (lx::O_CREAT | lx::O_EXCL) != lx::O_CREAT | lx::O_EXCL
            }
            Follow::RedoxOpen(arg) => {
                let f = a[arg as usize];
                f & (crate::O_SYMLINK | crate::O_NOFOLLOW) == 0
                    && f & (crate::O_CREAT | crate::O_EXCL) != crate::O_CREAT | crate::O_EXCL
            }
        }
    }

    /// The errno refusing a path whose tail is `.` (`dotdot` false) or `..`, if refused.
    pub fn tail_errno(&self, a: &[usize; 6], dotdot: bool) -> Option<i32> {
        let rmdir = if dotdot { crate::ENOTEMPTY } else { crate::EINVAL };
        match self.tail {
            Tail::Any => None,
            Tail::Refuse(e) => Some(e),
            Tail::Rmdir => Some(rmdir),
            Tail::Unlinkat(arg, bit) => Some(if a[arg as usize] & bit != 0 { rmdir } else { crate::EISDIR }),
        }
    }

    /// Whether an empty path means the directory descriptor for arguments `a`.
    pub fn empty_ok(&self, a: &[usize; 6]) -> bool {
        self.empty.is_some_and(|(arg, bit)| a[arg as usize] & bit != 0)
    }
}

/// An argument whose meaning depends on another one ([`Arg::When`]): `then` when argument
/// `on`, masked by `mask`, is one of `values`; `otherwise` else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cond {
    /// The argument deciding.
    pub on: u8,
    /// The bits of it that decide.
    pub mask: usize,
    /// The values (after masking) selecting `then`.
    pub values: &'static [usize],
    /// The argument's kind when selected.
    pub then: Arg,
    /// Its kind otherwise.
    pub otherwise: Arg,
}

/// How a call takes one argument: what the kernel copies in or out for it, and how it is
/// shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arg {
    /// A signed number, in decimal.
    Int,
    /// An unsigned number (a count, a length), in decimal.
    Uint,
    /// A number in hexadecimal (an opaque word, an offset; a Linux zero is `0`, as strace prints it).
    Hex,
    /// An address the call only passes along or tests for null: `NULL` or hexadecimal, as
    /// strace prints pointers.
    Ptr,
    /// A number in octal (a mode, a umask).
    Octal,
    /// A descriptor.
    Fd,
    /// The directory descriptor of an `*at` call (`AT_FDCWD`: the working directory).
    DirFd,
    /// The length or count of another argument (a Redox path's length, an exec vector's
    /// count): not shown.
    Length,
    /// Bits with names.
    Flags(&'static Flags),
    /// One of several named values.
    Enum(Names),
    /// A signal number.
    Signal,
    /// A path the call reads.
    Path(PathArg),
    /// Bytes the call reads: argument `len` says how many (at most [`MAX_IO`]). With
    /// `optional`, a zero length copies (and shows) nothing.
    InBytes {
        /// The argument holding the length.
        len: u8,
        /// A zero length means "no buffer".
        optional: bool,
    },
    /// A buffer the call fills: argument `len` is its room (at most [`MAX_IO`] is used);
    /// the result says how many bytes it wrote.
    OutBytes {
        /// The argument holding the room.
        len: u8,
        /// What the bytes are (plain bytes, directory entries).
        shape: Shape,
    },
    /// A structure the call reads.
    In(Struct),
    /// A structure the call writes, whole.
    Out(Struct),
    /// A structure the call reads, then writes back whole.
    InOut(Struct),
    /// An exec vector of strings (`ITEM_ARG` or, with `env`, `ITEM_ENV` items): NUL-terminated
    /// pointers (Linux, `count` None) or `count` `(pointer, length)` pairs (Redox).
    Strings {
        /// The environment (else the arguments).
        env: bool,
        /// The argument holding the number of pairs (Redox).
        count: Option<u8>,
    },
    /// An array of `struct iovec`, argument `count` entries (at most 1024): the call reads
    /// the buffers they name (gathered into one `ITEM_BYTES` item) or, with `out`, fills them
    /// (the array itself is copied as an `ITEM_STRUCT` item; the result says how many bytes
    /// it wrote, in order).
    Iov {
        /// The argument holding the count.
        count: u8,
        /// The call writes the buffers (else it reads them).
        out: bool,
    },
    /// Another argument decides what this one is.
    When(&'static Cond),
}

impl Arg {
    /// The kind this argument has for arguments `a` ([`Arg::When`] resolved).
    pub fn resolve(self, a: &[usize; 6]) -> Arg {
        let mut arg = self;
        // Nested conditions resolve in turn (a table never nests deeply: `ioctl`'s six
        // argument kinds are the deepest).
        for _ in 0..8 {
            match arg {
                Arg::When(w) => {
                    let v = a[w.on as usize] & w.mask;
                    arg = if w.values.contains(&v) { w.then } else { w.otherwise };
                }
                _ => break,
            }
        }
        arg
    }
}

/// How a call's result is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ret {
    /// A number (a count, an id, 0).
    Int,
    /// An address.
    Hex,
    /// A new descriptor.
    Fd,
    /// The call does not return (exit, exec, sigreturn) or its value means nothing.
    None,
}

/// `Arg::Flags` of a flags table.
pub const fn flags(f: &'static Flags) -> Arg {
    Arg::Flags(f)
}

/// `Arg::In` of a required structure of `size` bytes.
pub const fn input(shape: Shape, size: usize) -> Arg {
    Arg::In(st(shape, size))
}

/// `Arg::In` of an optional structure.
pub const fn input_opt(shape: Shape, size: usize) -> Arg {
    Arg::In(st(shape, size).optional())
}

/// `Arg::Out` of a required structure.
pub const fn output(shape: Shape, size: usize) -> Arg {
    Arg::Out(st(shape, size))
}

/// `Arg::Out` of an optional structure.
pub const fn output_opt(shape: Shape, size: usize) -> Arg {
    Arg::Out(st(shape, size).optional())
}

/// `Arg::OutBytes` of plain bytes with the room in argument `len`.
pub const fn out_bytes(len: u8) -> Arg {
    Arg::OutBytes { len, shape: Shape::Bytes }
}

/// `Arg::InOut` of the `struct pollfd` array with argument `count` entries (at most 4096).
pub const fn poll_fds(count: u8) -> Arg {
    Arg::InOut(Struct {
        shape: Shape::PollFds,
        size: Size::Count { arg: count, each: 8, max: 4096, errno: crate::EINVAL },
        optional: false,
    })
}

/// `Arg::InOut` of an optional `fd_set` for the descriptors below argument `nfds`.
pub const fn fd_set(nfds: u8) -> Arg {
    Arg::InOut(Struct { shape: Shape::FdSet, size: Size::FdSet { nfds }, optional: true })
}

/// `Arg::InBytes` with the length in argument `len`.
pub const fn in_bytes(len: u8) -> Arg {
    Arg::InBytes { len, optional: false }
}
