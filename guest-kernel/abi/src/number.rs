//! System-call numbers and the Redox class bits they are built from.
//!
//! Design: numbers are exactly the classic Redox values (PRODUCT.md, "Guest ABI"). The class
//! bits tell a dispatcher (or a supervisor) how to treat the arguments without a table: a
//! `SYS_CLASS_FILE` call takes a descriptor in its first argument, `SYS_ARG_SLICE` /
//! `SYS_ARG_MSLICE` mark a `(pointer, length)` buffer in arguments 2–3 that the kernel reads
//! from / writes to, `SYS_CLASS_PATH` a path as `(pointer, length)` in arguments 1–2, and
//! `SYS_RET_FILE` a call that returns a new descriptor.

/// Mask selecting the class bits of a syscall number.
pub const SYS_CLASS: usize = 0xF000_0000;
/// Class: the call takes a path as `(ptr, len)` in its first two arguments.
pub const SYS_CLASS_PATH: usize = 0x1000_0000;
/// Class: the call takes a file descriptor as its first argument.
pub const SYS_CLASS_FILE: usize = 0x2000_0000;

/// Mask selecting the argument-kind bits of a syscall number.
pub const SYS_ARG: usize = 0x0F00_0000;
/// Argument kind: arguments 2–3 are a buffer the kernel reads (`(ptr, len)`).
pub const SYS_ARG_SLICE: usize = 0x0100_0000;
/// Argument kind: arguments 2–3 are a buffer the kernel writes (`(ptr, len)`).
pub const SYS_ARG_MSLICE: usize = 0x0200_0000;
/// Argument kind: arguments 2–3 are a path (`(ptr, len)`).
pub const SYS_ARG_PATH: usize = 0x0300_0000;

/// Mask selecting the return-kind bits of a syscall number.
pub const SYS_RET: usize = 0x00F0_0000;
/// Return kind: the call returns a new file descriptor.
pub const SYS_RET_FILE: usize = 0x0010_0000;

/// `open(path_ptr, path_len, flags) -> fd`. The low 16 bits of `flags` carry the mode for
/// `O_CREAT`. `mkdir` is `open` with `O_CREAT | O_DIRECTORY`.
pub const SYS_OPEN: usize = SYS_CLASS_PATH | SYS_RET_FILE | 5;
/// `rmdir(path_ptr, path_len)`.
pub const SYS_RMDIR: usize = SYS_CLASS_PATH | 84;
/// `unlink(path_ptr, path_len)`.
pub const SYS_UNLINK: usize = SYS_CLASS_PATH | 10;

/// `close(fd)`.
pub const SYS_CLOSE: usize = SYS_CLASS_FILE | 6;
/// `dup(fd, buf_ptr, buf_len) -> fd`; the (possibly empty) buffer is a Redox extension.
pub const SYS_DUP: usize = SYS_CLASS_FILE | SYS_RET_FILE | 41;
/// `dup2(fd, newfd, buf_ptr, buf_len) -> newfd`.
pub const SYS_DUP2: usize = SYS_CLASS_FILE | SYS_RET_FILE | 63;
/// `read(fd, buf_ptr, buf_len) -> count`.
pub const SYS_READ: usize = SYS_CLASS_FILE | SYS_ARG_MSLICE | 3;
/// `write(fd, buf_ptr, buf_len) -> count`.
pub const SYS_WRITE: usize = SYS_CLASS_FILE | SYS_ARG_SLICE | 4;
/// `lseek(fd, offset, whence) -> new offset`.
pub const SYS_LSEEK: usize = SYS_CLASS_FILE | 19;
/// `fcntl(fd, cmd, arg)`.
pub const SYS_FCNTL: usize = SYS_CLASS_FILE | 55;
/// `fexec(fd, args_ptr, args_count, envs_ptr, envs_count)`; `args`/`envs` point to arrays of
/// `[usize; 2]` `(ptr, len)` pairs. `args[0]` is the new program's `argv[0]`.
pub const SYS_FEXEC: usize = SYS_CLASS_FILE | 11;
/// `fmap(fd, map_ptr, size_of::<Map>()) -> address`; `fd == usize::MAX` maps anonymous memory.
pub const SYS_FMAP: usize = SYS_CLASS_FILE | SYS_ARG_SLICE | 90;
/// `funmap(addr, len)`.
pub const SYS_FUNMAP: usize = SYS_CLASS_FILE | 91;
/// `fpath(fd, buf_ptr, buf_len) -> length written`.
pub const SYS_FPATH: usize = SYS_CLASS_FILE | SYS_ARG_MSLICE | 928;
/// `fstat(fd, stat_ptr, size_of::<Stat>())`.
pub const SYS_FSTAT: usize = SYS_CLASS_FILE | SYS_ARG_MSLICE | 28;
/// `fsync(fd)`.
pub const SYS_FSYNC: usize = SYS_CLASS_FILE | 118;
/// `ftruncate(fd, len)`.
pub const SYS_FTRUNCATE: usize = SYS_CLASS_FILE | 93;

/// `exit(status)`.
pub const SYS_EXIT: usize = 1;
/// `waitpid(pid, status_ptr, options) -> pid`.
pub const SYS_WAITPID: usize = 7;
/// `kill(pid, sig)`.
pub const SYS_KILL: usize = 37;
/// `getpid() -> pid`.
pub const SYS_GETPID: usize = 20;
/// `getppid() -> pid`.
pub const SYS_GETPPID: usize = 64;
/// `clone(flags) -> pid`: the child's pid in the parent, 0 in the child.
pub const SYS_CLONE: usize = 120;
/// `brk(addr) -> current break`; `brk(0)` queries.
pub const SYS_BRK: usize = 45;
/// `chdir(path_ptr, path_len)`.
pub const SYS_CHDIR: usize = 12;
/// `getcwd(buf_ptr, buf_len) -> length written`.
pub const SYS_GETCWD: usize = 183;
/// `nanosleep(req_ptr, rem_ptr)`; both point to a [`TimeSpec`](crate::TimeSpec).
pub const SYS_NANOSLEEP: usize = 162;
/// `clock_gettime(clock, ts_ptr)`.
pub const SYS_CLOCK_GETTIME: usize = 265;
/// `yield()`.
pub const SYS_YIELD: usize = 158;
/// `pipe2(fds_ptr, flags)`; `fds_ptr` points to `[usize; 2]` (read end, write end).
pub const SYS_PIPE2: usize = 331;
/// `sigaction(sig, act_ptr, oldact_ptr, restorer_addr)`.
pub const SYS_SIGACTION: usize = 67;
/// `sigprocmask(how, set_ptr, oldset_ptr)`; sets are `[u64; 2]`.
pub const SYS_SIGPROCMASK: usize = 126;
/// `sigreturn()`.
pub const SYS_SIGRETURN: usize = 119;
/// `mprotect(addr, len, flags)`.
pub const SYS_MPROTECT: usize = 125;
/// `futex(addr, op, val, val2, addr2)`.
pub const SYS_FUTEX: usize = 240;
/// `getuid() -> uid`.
pub const SYS_GETUID: usize = 199;
/// `getgid() -> gid`.
pub const SYS_GETGID: usize = 200;
/// `geteuid() -> uid`.
pub const SYS_GETEUID: usize = 201;
/// `getegid() -> gid`.
pub const SYS_GETEGID: usize = 202;
/// `getpgid(pid) -> pgid`.
pub const SYS_GETPGID: usize = 132;
/// `setpgid(pid, pgid)`.
pub const SYS_SETPGID: usize = 57;
/// `umask(mask) -> old mask`.
pub const SYS_UMASK: usize = 60;
/// `supervise(pid) -> fd` (historic Redox value).
pub const SYS_SUPERVISE: usize = 1638;
/// `mask(calls_ptr, count, flags)`: shrinks the caller's system-call mask to the `count`
/// syscall numbers (`usize` each) at `calls_ptr` (Warden extension, seed 003; see
/// [`crate::class`]). The mask is inherited by children (clone) and kept across exec; it can
/// only shrink: a set that is not a subset of the current one is `EPERM` and changes nothing.
/// `flags`: [`MASK_KILL`](crate::MASK_KILL) (a masked call kills the process with `SIGSYS`
/// instead of failing with `EPERM`; once set it stays set). `exit` and `sigreturn` are always
/// allowed. At most [`MASK_MAX`](crate::MASK_MAX) numbers (`E2BIG`).
pub const SYS_MASK: usize = 1639;
/// `jail(path_ptr, path_len, flags)`: confines the caller and its future children to the
/// directory `path` (Warden extension, seed 004; see [`crate::class`]). The working directory
/// becomes the jail's root; paths resolve inside it (`..`, symlinks and absolute symlink
/// targets stay inside); processes outside it cannot be signalled, supervised or seen in
/// `proc:`. Irrevocable; a second call narrows the jail (its path is resolved inside the
/// current one). `flags`: [`JAIL_SCHEMES`](crate::JAIL_SCHEMES) (scheme daemons inside the jail);
/// any other bit is `EINVAL`.
pub const SYS_JAIL: usize = 1640;
/// `channel(fds_ptr, flags)`: makes a message channel and writes its two endpoints (`[usize;
/// 2]`) at `fds_ptr` (Warden extension, seed 003; see [`crate::ipc`]). `flags`: `O_NONBLOCK`,
/// `O_CLOEXEC`.
pub const SYS_CHANNEL: usize = 1641;
/// `send(fd, buf_ptr, len, caps_ptr)`: sends one whole message (the bytes, and the
/// descriptors a [`ChannelCaps`](crate::ipc::ChannelCaps) at `caps_ptr` lists; null: none)
/// on a channel endpoint, or answers a call through a reply capability (then closed).
pub const SYS_SEND: usize = SYS_CLASS_FILE | SYS_ARG_SLICE | 1642;
/// `recv(fd, buf_ptr, room, caps_ptr) -> length`: receives one whole message; the
/// descriptors it carried (and its reply capability) are installed and listed at `caps_ptr`.
pub const SYS_RECV: usize = SYS_CLASS_FILE | SYS_ARG_MSLICE | 1643;
/// `call(fd, buf_ptr, len, room, caps_ptr) -> length`: sends `buf[..len]` with a one-shot
/// reply capability and waits for the answer, written over `buf[..room]` (KeyKOS-style
/// invocation; see [`crate::ipc`]).
pub const SYS_CALL: usize = SYS_CLASS_FILE | 1644;

/// Clone flag: share the address space (a thread); without it `clone` forks.
pub const CLONE_VM: usize = 0x100;
/// Clone flag: share the file-system context (cwd, umask).
pub const CLONE_FS: usize = 0x200;
/// Clone flag: share the descriptor table.
pub const CLONE_FILES: usize = 0x400;
/// Clone flag: share signal handlers.
pub const CLONE_SIGHAND: usize = 0x800;
/// Clone flag: suspend the parent until the child execs or exits.
pub const CLONE_VFORK: usize = 0x4000;
/// Clone flag: same thread group.
pub const CLONE_THREAD: usize = 0x1_0000;
/// Clone flag: the child is supervised by the caller from its first instruction.
pub const CLONE_SUPERVISE: usize = 0x40_0000;

/// Every syscall number this crate defines, with its name (without the `SYS_` prefix,
/// lower case, as a tracer prints it).
pub const SYSCALLS: &[(usize, &str)] = &[
    (SYS_OPEN, "open"),
    (SYS_RMDIR, "rmdir"),
    (SYS_UNLINK, "unlink"),
    (SYS_CLOSE, "close"),
    (SYS_DUP, "dup"),
    (SYS_DUP2, "dup2"),
    (SYS_READ, "read"),
    (SYS_WRITE, "write"),
    (SYS_LSEEK, "lseek"),
    (SYS_FCNTL, "fcntl"),
    (SYS_FEXEC, "fexec"),
    (SYS_FMAP, "fmap"),
    (SYS_FUNMAP, "funmap"),
    (SYS_FPATH, "fpath"),
    (SYS_FSTAT, "fstat"),
    (SYS_FSYNC, "fsync"),
    (SYS_FTRUNCATE, "ftruncate"),
    (SYS_EXIT, "exit"),
    (SYS_WAITPID, "waitpid"),
    (SYS_KILL, "kill"),
    (SYS_GETPID, "getpid"),
    (SYS_GETPPID, "getppid"),
    (SYS_CLONE, "clone"),
    (SYS_BRK, "brk"),
    (SYS_CHDIR, "chdir"),
    (SYS_GETCWD, "getcwd"),
    (SYS_NANOSLEEP, "nanosleep"),
    (SYS_CLOCK_GETTIME, "clock_gettime"),
    (SYS_YIELD, "yield"),
    (SYS_PIPE2, "pipe2"),
    (SYS_SIGACTION, "sigaction"),
    (SYS_SIGPROCMASK, "sigprocmask"),
    (SYS_SIGRETURN, "sigreturn"),
    (SYS_MPROTECT, "mprotect"),
    (SYS_FUTEX, "futex"),
    (SYS_GETUID, "getuid"),
    (SYS_GETGID, "getgid"),
    (SYS_GETEUID, "geteuid"),
    (SYS_GETEGID, "getegid"),
    (SYS_GETPGID, "getpgid"),
    (SYS_SETPGID, "setpgid"),
    (SYS_UMASK, "umask"),
    (SYS_SUPERVISE, "supervise"),
    (SYS_MASK, "mask"),
    (SYS_JAIL, "jail"),
    (SYS_CHANNEL, "channel"),
    (SYS_SEND, "send"),
    (SYS_RECV, "recv"),
    (SYS_CALL, "call"),
];

/// The name of syscall number `n` (e.g. `"open"`), or `None` for an unknown number.
pub fn syscall_name(n: usize) -> Option<&'static str> {
    SYSCALLS.iter().find(|&&(num, _)| num == n).map(|&(_, name)| name)
}
