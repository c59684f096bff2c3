//! Typed, safe wrappers over every system call the runtime uses.
//!
//! Design: each wrapper takes Rust types (slices, `&str` paths, ABI structs), makes the raw
//! call through the `syscall` gate and decodes the result with [`Errno::demux`]. Paths are
//! passed as `(pointer, length)` and never NUL-terminated. Structs cross the boundary as byte
//! arrays via the ABI crate's `to_bytes`/`from_bytes`, so nothing here reinterprets memory.
//! The `*_int80` variants of a few calls go through the `int 0x80` gate instead (for tests of
//! the second gate).

use alloc::vec::Vec;

use crate::Result;
use crate::abi::ipc::ChannelCaps;
use crate::abi::{self, Errno, Map, SigAction, Stat, TimeSpec};
use crate::syscall::*;

fn demux(ret: usize) -> Result<usize> {
    Errno::demux(ret)
}

/// `open(path, flags)`; the low 16 bits of `flags` are the mode for `O_CREAT`.
pub fn open(path: &str, flags: usize) -> Result<usize> {
    // SAFETY: the kernel reads `path.len()` bytes from `path`, which is a valid slice.
    demux(unsafe { syscall3(abi::SYS_OPEN, path.as_ptr() as usize, path.len(), flags) })
}

/// `close(fd)`.
pub fn close(fd: usize) -> Result<usize> {
    // SAFETY: no memory arguments.
    demux(unsafe { syscall1(abi::SYS_CLOSE, fd) })
}

/// `read(fd, buf)`: the number of bytes read; 0 at end of file.
pub fn read(fd: usize, buf: &mut [u8]) -> Result<usize> {
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`, a valid mutable slice.
    demux(unsafe { syscall3(abi::SYS_READ, fd, buf.as_mut_ptr() as usize, buf.len()) })
}

/// `write(fd, buf)`: the number of bytes written.
pub fn write(fd: usize, buf: &[u8]) -> Result<usize> {
    // SAFETY: the kernel reads `buf.len()` bytes from `buf`, a valid slice.
    demux(unsafe { syscall3(abi::SYS_WRITE, fd, buf.as_ptr() as usize, buf.len()) })
}

/// `lseek(fd, offset, whence)`: the new offset.
pub fn lseek(fd: usize, offset: isize, whence: usize) -> Result<usize> {
    // SAFETY: no memory arguments.
    demux(unsafe { syscall3(abi::SYS_LSEEK, fd, offset as usize, whence) })
}

/// `dup(fd, buf)`: a new descriptor; `buf` is Redox's optional sub-path (usually empty).
pub fn dup(fd: usize, buf: &[u8]) -> Result<usize> {
    // SAFETY: the kernel reads `buf.len()` bytes from `buf`.
    demux(unsafe { syscall3(abi::SYS_DUP, fd, buf.as_ptr() as usize, buf.len()) })
}

/// `dup2(fd, newfd, buf)`: makes `newfd` a copy of `fd` (closing `newfd` first).
pub fn dup2(fd: usize, newfd: usize, buf: &[u8]) -> Result<usize> {
    // SAFETY: the kernel reads `buf.len()` bytes from `buf`.
    demux(unsafe { syscall4(abi::SYS_DUP2, fd, newfd, buf.as_ptr() as usize, buf.len()) })
}

/// `fcntl(fd, cmd, arg)`.
pub fn fcntl(fd: usize, cmd: usize, arg: usize) -> Result<usize> {
    // SAFETY: no memory arguments for the F_* commands defined by the ABI.
    demux(unsafe { syscall3(abi::SYS_FCNTL, fd, cmd, arg) })
}

/// `fpath(fd, buf)`: writes the descriptor's path into `buf`, returns its length.
pub fn fpath(fd: usize, buf: &mut [u8]) -> Result<usize> {
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`.
    demux(unsafe { syscall3(abi::SYS_FPATH, fd, buf.as_mut_ptr() as usize, buf.len()) })
}

/// `fstat(fd)`.
pub fn fstat(fd: usize) -> Result<Stat> {
    let mut bytes = [0u8; Stat::SIZE];
    // SAFETY: the kernel writes at most `Stat::SIZE` bytes into `bytes`.
    demux(unsafe { syscall3(abi::SYS_FSTAT, fd, bytes.as_mut_ptr() as usize, bytes.len()) })?;
    Stat::from_bytes(&bytes).ok_or(Errno(abi::EINVAL))
}

/// `fsync(fd)`.
pub fn fsync(fd: usize) -> Result<usize> {
    // SAFETY: no memory arguments.
    demux(unsafe { syscall1(abi::SYS_FSYNC, fd) })
}

/// `ftruncate(fd, len)`.
pub fn ftruncate(fd: usize, len: usize) -> Result<usize> {
    // SAFETY: no memory arguments.
    demux(unsafe { syscall2(abi::SYS_FTRUNCATE, fd, len) })
}

/// `fexec(fd, args, envs)`: replaces the process image with the program open on `fd`.
/// `args[0]` becomes the new program's `argv[0]`. Returns only on failure.
pub fn fexec(fd: usize, args: &[&[u8]], envs: &[&[u8]]) -> Errno {
    let pairs =
        |list: &[&[u8]]| -> Vec<[usize; 2]> { list.iter().map(|item| [item.as_ptr() as usize, item.len()]).collect() };
    let args = pairs(args);
    let envs = pairs(envs);
    // SAFETY: `args`/`envs` are arrays of (ptr, len) pairs describing live byte slices; the
    // kernel only reads them.
    let ret =
        unsafe { syscall5(abi::SYS_FEXEC, fd, args.as_ptr() as usize, args.len(), envs.as_ptr() as usize, envs.len()) };
    match demux(ret) {
        Err(err) => err,
        Ok(_) => Errno(abi::EINVAL),
    }
}

/// `fmap(fd, map)`: maps memory, returns its address. `fd == abi::ANONYMOUS_FD` maps
/// anonymous zeroed memory.
pub fn fmap(fd: usize, map: &Map) -> Result<usize> {
    let bytes = map.to_bytes();
    // SAFETY: the kernel reads `Map::SIZE` bytes; the new mapping does not overlap memory
    // Rust owns unless the caller passes MAP_FIXED over it, which the allocator never does.
    demux(unsafe { syscall3(abi::SYS_FMAP, fd, bytes.as_ptr() as usize, bytes.len()) })
}

/// `funmap(addr, len)`.
///
/// # Safety
/// Nothing may use the unmapped range afterwards.
pub unsafe fn funmap(addr: usize, len: usize) -> Result<usize> {
    // SAFETY: the caller guarantees the range is no longer in use.
    demux(unsafe { syscall2(abi::SYS_FUNMAP, addr, len) })
}

/// `mprotect(addr, len, flags)`.
///
/// # Safety
/// Removing access from memory Rust still uses makes later accesses fault.
pub unsafe fn mprotect(addr: usize, len: usize, flags: usize) -> Result<usize> {
    // SAFETY: the caller guarantees the protection change is sound.
    demux(unsafe { syscall3(abi::SYS_MPROTECT, addr, len, flags) })
}

/// `brk(addr)`: sets the program break, returns the (new) current break; `brk(0)` queries.
///
/// # Safety
/// Shrinking the break below memory in use (the allocator's heap) invalidates it.
pub unsafe fn brk(addr: usize) -> Result<usize> {
    // SAFETY: the caller guarantees the break change is sound.
    demux(unsafe { syscall1(abi::SYS_BRK, addr) })
}

/// `rmdir(path)`.
pub fn rmdir(path: &str) -> Result<usize> {
    // SAFETY: the kernel reads `path.len()` bytes from `path`.
    demux(unsafe { syscall2(abi::SYS_RMDIR, path.as_ptr() as usize, path.len()) })
}

/// `unlink(path)`.
pub fn unlink(path: &str) -> Result<usize> {
    // SAFETY: the kernel reads `path.len()` bytes from `path`.
    demux(unsafe { syscall2(abi::SYS_UNLINK, path.as_ptr() as usize, path.len()) })
}

/// `chdir(path)`.
pub fn chdir(path: &str) -> Result<usize> {
    // SAFETY: the kernel reads `path.len()` bytes from `path`.
    demux(unsafe { syscall2(abi::SYS_CHDIR, path.as_ptr() as usize, path.len()) })
}

/// `getcwd(buf)`: writes the working directory into `buf`, returns its length.
pub fn getcwd(buf: &mut [u8]) -> Result<usize> {
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`.
    demux(unsafe { syscall2(abi::SYS_GETCWD, buf.as_mut_ptr() as usize, buf.len()) })
}

/// `exit(status)`.
pub fn exit(status: i32) -> ! {
    // SAFETY: no memory arguments; the call does not return.
    unsafe { syscall1(abi::SYS_EXIT, status as usize) };
    // The kernel never returns from exit; trap if it does.
    // SAFETY: `ud2` only raises #UD.
    unsafe { core::arch::asm!("ud2", options(nomem, nostack, noreturn)) }
}

/// `clone(flags)`: the child's pid in the parent, 0 in the child. Without `CLONE_VM` this is
/// fork: the child continues from here in a copy of the address space.
pub fn clone(flags: usize) -> Result<usize> {
    // SAFETY: without CLONE_VM the child gets a private copy of memory, so neither process can
    // observe the other's writes; with CLONE_VM the caller must not return into a shared stack,
    // which `process` never does (it only uses fork semantics).
    demux(unsafe { syscall1(abi::SYS_CLONE, flags) })
}

/// `waitpid(pid, options)`: `(pid, raw wait status)`. `pid == 0` waits for any child.
/// The status is a `usize` in the Linux encoding (see `abi::wifexited` & co).
pub fn waitpid(pid: usize, options: usize) -> Result<(usize, usize)> {
    let mut status = 0usize;
    // SAFETY: the kernel writes one `usize` to `status`.
    let pid = demux(unsafe { syscall3(abi::SYS_WAITPID, pid, &raw mut status as usize, options) })?;
    Ok((pid, status))
}

/// `kill(pid, sig)`.
pub fn kill(pid: usize, sig: usize) -> Result<usize> {
    // SAFETY: no memory arguments.
    demux(unsafe { syscall2(abi::SYS_KILL, pid, sig) })
}

/// `getpid()` through the `syscall` gate.
pub fn getpid() -> usize {
    // SAFETY: no memory arguments.
    unsafe { syscall0(abi::SYS_GETPID) }
}

/// `getpid()` through the `int 0x80` gate.
pub fn getpid_int80() -> usize {
    // SAFETY: no memory arguments.
    unsafe { int80_0(abi::SYS_GETPID) }
}

/// `getppid()`.
pub fn getppid() -> usize {
    // SAFETY: no memory arguments.
    unsafe { syscall0(abi::SYS_GETPPID) }
}

/// `getuid()`.
pub fn getuid() -> usize {
    // SAFETY: no memory arguments.
    unsafe { syscall0(abi::SYS_GETUID) }
}

/// `getgid()`.
pub fn getgid() -> usize {
    // SAFETY: no memory arguments.
    unsafe { syscall0(abi::SYS_GETGID) }
}

/// `geteuid()`.
pub fn geteuid() -> usize {
    // SAFETY: no memory arguments.
    unsafe { syscall0(abi::SYS_GETEUID) }
}

/// `getegid()`.
pub fn getegid() -> usize {
    // SAFETY: no memory arguments.
    unsafe { syscall0(abi::SYS_GETEGID) }
}

/// `getpgid(pid)`.
pub fn getpgid(pid: usize) -> Result<usize> {
    // SAFETY: no memory arguments.
    demux(unsafe { syscall1(abi::SYS_GETPGID, pid) })
}

/// `setpgid(pid, pgid)`.
pub fn setpgid(pid: usize, pgid: usize) -> Result<usize> {
    // SAFETY: no memory arguments.
    demux(unsafe { syscall2(abi::SYS_SETPGID, pid, pgid) })
}

/// `umask(mask)`: the previous mask.
pub fn umask(mask: usize) -> Result<usize> {
    // SAFETY: no memory arguments.
    demux(unsafe { syscall1(abi::SYS_UMASK, mask) })
}

/// `yield()`.
pub fn sched_yield() -> Result<usize> {
    // SAFETY: no memory arguments.
    demux(unsafe { syscall0(abi::SYS_YIELD) })
}

/// `pipe2(flags)`: `[read end, write end]`.
pub fn pipe2(flags: usize) -> Result<[usize; 2]> {
    let mut fds = [0usize; 2];
    // SAFETY: the kernel writes two `usize`s into `fds`.
    demux(unsafe { syscall2(abi::SYS_PIPE2, fds.as_mut_ptr() as usize, flags) })?;
    Ok(fds)
}

/// `channel(flags)`: the two endpoints of a new message channel (`warden_abi::ipc`).
pub fn channel(flags: usize) -> Result<[usize; 2]> {
    let mut fds = [0usize; 2];
    // SAFETY: the kernel writes two `usize`s into `fds`.
    demux(unsafe { syscall2(abi::SYS_CHANNEL, fds.as_mut_ptr() as usize, flags) })?;
    Ok(fds)
}

/// `send(fd, msg, caps)`: sends one whole message with the descriptors `caps` lists (or
/// answers a call, when `fd` is a reply capability: the descriptor is then closed).
pub fn send(fd: usize, msg: &[u8], caps: Option<&ChannelCaps>) -> Result<usize> {
    // `ChannelCaps` is `repr(C)` and all `u64`s: on this little-endian machine the structure
    // is its own byte form, so the kernel reads and writes it in place (no conversions on
    // the round trip's path).
    let caps_ptr = caps.map_or(0, |c| c as *const ChannelCaps as usize);
    // SAFETY: the kernel reads `msg.len()` bytes from `msg` and `ChannelCaps::SIZE` bytes at
    // `caps_ptr` (if not null).
    demux(unsafe { syscall4(abi::SYS_SEND, fd, msg.as_ptr() as usize, msg.len(), caps_ptr) })
}

/// `recv(fd, buf, caps)`: receives one whole message into `buf` (its length); the
/// descriptors it carried are installed and listed in `caps` (`None`: they are closed).
pub fn recv(fd: usize, buf: &mut [u8], caps: Option<&mut ChannelCaps>) -> Result<usize> {
    // In place, as for `send`.
    let caps_ptr = caps.map_or(0, |c| c as *mut ChannelCaps as usize);
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf` and a whole
    // `ChannelCaps` (`repr(C)`, all `u64`: any bytes are a valid value) at `caps_ptr` (if
    // not null).
    demux(unsafe { syscall4(abi::SYS_RECV, fd, buf.as_mut_ptr() as usize, buf.len(), caps_ptr) })
}

/// `call(fd, buf, len, caps)`: sends `buf[..len]` (and the descriptors `caps` lists) with a
/// reply capability and waits for the answer, written over `buf`; returns its length. The
/// answer's descriptors replace `caps`.
pub fn call(fd: usize, buf: &mut [u8], len: usize, caps: Option<&mut ChannelCaps>) -> Result<usize> {
    // In place, as for `send`.
    let caps_ptr = caps.map_or(0, |c| c as *mut ChannelCaps as usize);
    // SAFETY: the kernel reads and writes at most `buf.len()` bytes of `buf`, and a whole
    // `ChannelCaps` (`repr(C)`, all `u64`: any bytes are a valid value) at `caps_ptr` (if
    // not null).
    demux(unsafe { syscall5(abi::SYS_CALL, fd, buf.as_mut_ptr() as usize, len, buf.len(), caps_ptr) })
}

/// `nanosleep(req)`: on interruption returns `Err(EINTR)`; the remaining time is discarded.
pub fn nanosleep(req: &TimeSpec) -> Result<usize> {
    let req = req.to_bytes();
    let mut rem = [0u8; TimeSpec::SIZE];
    // SAFETY: the kernel reads `TimeSpec::SIZE` bytes from `req` and writes as many to `rem`.
    demux(unsafe { syscall2(abi::SYS_NANOSLEEP, req.as_ptr() as usize, rem.as_mut_ptr() as usize) })
}

/// `clock_gettime(clock)`.
pub fn clock_gettime(clock: usize) -> Result<TimeSpec> {
    let mut bytes = [0u8; TimeSpec::SIZE];
    // SAFETY: the kernel writes `TimeSpec::SIZE` bytes into `bytes`.
    demux(unsafe { syscall2(abi::SYS_CLOCK_GETTIME, clock, bytes.as_mut_ptr() as usize) })?;
    TimeSpec::from_bytes(&bytes).ok_or(Errno(abi::EINVAL))
}

/// `sigaction(sig, act, restorer)`: installs `act` (if any), returns the previous action.
///
/// # Safety
/// A handler address must point at a function that is sound to run asynchronously.
pub unsafe fn sigaction(sig: usize, act: Option<&SigAction>, restorer: usize) -> Result<SigAction> {
    let act_bytes = act.map(SigAction::to_bytes);
    let act_ptr = act_bytes.as_ref().map_or(0, |b| b.as_ptr() as usize);
    let mut old = [0u8; SigAction::SIZE];
    // SAFETY: the kernel reads `act_bytes` (if non-null) and writes `old`; handler soundness
    // is the caller's contract.
    demux(unsafe { syscall4(abi::SYS_SIGACTION, sig, act_ptr, old.as_mut_ptr() as usize, restorer) })?;
    SigAction::from_bytes(&old).ok_or(Errno(abi::EINVAL))
}

/// `sigprocmask(how, set)`: returns the previous mask.
pub fn sigprocmask(how: usize, set: Option<&[u64; 2]>) -> Result<[u64; 2]> {
    let mut old = [0u64; 2];
    let set_ptr = set.map_or(0, |s| s.as_ptr() as usize);
    // SAFETY: the kernel reads `set` (if non-null) and writes two `u64`s into `old`.
    demux(unsafe { syscall3(abi::SYS_SIGPROCMASK, how, set_ptr, old.as_mut_ptr() as usize) })?;
    Ok(old)
}

/// `futex(addr, op, val, val2, addr2)`.
///
/// # Safety
/// `addr` (and `addr2` where the operation uses it) must point at live `i32`s.
pub unsafe fn futex(addr: *mut i32, op: usize, val: usize, val2: usize, addr2: usize) -> Result<usize> {
    // SAFETY: forwarded from the caller's contract.
    demux(unsafe { syscall5(abi::SYS_FUTEX, addr as usize, op, val, val2, addr2) })
}

/// `supervise(pid)`: a descriptor through which the caller supervises child `pid`.
pub fn supervise(pid: usize) -> Result<usize> {
    supervise_with(pid, 0)
}

/// `supervise(pid, flags)`: `flags` is 0 or `SUPERVISE_BLOCK` (reads wait for a packet).
pub fn supervise_with(pid: usize, flags: usize) -> Result<usize> {
    // SAFETY: no memory arguments.
    demux(unsafe { syscall2(abi::SYS_SUPERVISE, pid, flags) })
}

/// `mask(calls, flags)`: shrinks this process's system-call mask to `calls` (syscall
/// numbers); `EPERM` (and no change) if that would allow a call the mask does not.
/// `flags`: `abi::MASK_KILL`.
pub fn mask(calls: &[usize], flags: usize) -> Result<usize> {
    // SAFETY: the kernel reads `calls.len()` `usize`s from `calls`.
    demux(unsafe { syscall3(abi::SYS_MASK, calls.as_ptr() as usize, calls.len(), flags) })
}

/// `jail(path, flags)`: confines this process and its future children to directory `path`.
pub fn jail(path: &str, flags: usize) -> Result<usize> {
    // SAFETY: the kernel reads `path.len()` bytes from `path`.
    demux(unsafe { syscall3(abi::SYS_JAIL, path.as_ptr() as usize, path.len(), flags) })
}
