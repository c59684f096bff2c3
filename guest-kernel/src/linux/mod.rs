//! The Linux personality: unmodified static Linux x86-64 programs (glibc,
//! musl, busybox) run beside Redox-ABI programs in one guest.
//!
//! # The personality rule
//! Every exec decides the personality of the process from the ELF file
//! ([`personality_of`]):
//! 1. an ELF note owned by `"Redox"` → Redox (every program built with the
//!    guest runtime's `entry!` carries one, in section `.note.redox`);
//! 2. otherwise `EI_OSABI == ELFOSABI_GNU` (3, "Linux"), or any note owned by
//!    `"GNU"` (ABI tag, build id, properties), or a `PT_GNU_STACK` header →
//!    Linux (gcc/ld output for glibc and musl always has one of these);
//! 3. otherwise Redox (minimal hand-assembled files, as `testkit` makes).
//!
//! `warden run --personality linux|redox` overrides the rule for the program
//! warden starts (not for what it execs). Redox and Linux processes fork,
//! exec and wait for each other freely; each exec decides afresh.
//!
//! # How calls enter
//! A Linux process's `syscall` instruction is decoded by [`decode`] with Linux
//! numbers and argument layouts: the `Call` gets the number
//! `LINUX_CALL | nr` (so supervisors and traces can tell the ABIs apart and
//! `Call::name` gives Linux names) and an `Input::Linux` holding the kernel's
//! copy of every pointer argument the call reads (paths as C strings, write
//! buffers and gathered `writev` data, exec vectors, `sigaction`, signal sets,
//! timeouts, poll/select sets, iovec arrays). Handlers run on that copy only;
//! results are written out once through `usercopy`. Supervision packets and
//! `warden trace` carry the same copies ([`trace_items`]: paths, buffers and
//! exec vectors, by argument index) and show Linux names. `int 0x80` in a Linux
//! process still enters the Redox ABI. Errors are `-errno` (the kernel's
//! errno values are Linux's). `WARDEN_LINUX_TRACE=1` in the host environment
//! prints every Linux call and its result on stderr (a debugging aid until the
//! general tracer lands).
//!
//! # Supported calls
//! Files: read write readv writev pread64 pwrite64 preadv pwritev open openat
//! creat close close_range lseek stat lstat fstat newfstatat statx getdents64
//! dup dup2 dup3 pipe pipe2 fcntl (DUPFD, DUPFD_CLOEXEC, GETFD, SETFD, GETFL,
//! SETFL; locks succeed) ioctl (TCGETS/TIOCGWINSZ → ENOTTY, FIONBIO, FIOCLEX)
//! access faccessat faccessat2 getcwd chdir fchdir mkdir mkdirat unlink unlinkat
//! rmdir rename renameat renameat2 (files, symlinks and directories;
//! RENAME_NOREPLACE) link linkat (hard links) symlink symlinkat readlink readlinkat (with `/proc/self/exe`) truncate ftruncate
//! fsync fdatasync sync umask; chmod/fchmod/fchmodat/chown/utimensat/utimes
//! succeed without effect. `/dev/null`, `/dev/zero`, `/dev/[u]random`,
//! `/dev/stdin|stdout|stderr` and `/dev/fd/N` are virtualised.
//! Memory: brk mmap (anonymous and private file maps) munmap mprotect mremap
//! madvise msync. Processes: clone (threads, CLONE_SETTLS, *_SETTID,
//! CHILD_CLEARTID) fork vfork execve (with `#!` scripts) exit exit_group wait4
//! waitid kill tkill tgkill getpid gettid getppid getuid/geteuid/getgid/getegid
//! getresuid getresgid getgroups set*id (no effect) getpgid setpgid getpgrp
//! setsid getsid set_tid_address set_robust_list arch_prctl prctl prlimit64
//! getrlimit setrlimit getrusage times uname sysinfo sched_yield
//! sched_getaffinity getrandom (seeded). Signals: rt_sigaction rt_sigprocmask
//! rt_sigreturn rt_sigpending rt_sigsuspend sigaltstack pause, with real
//! `rt_sigframe`s (siginfo, ucontext with sigcontext and fxsave state).
//! Time: clock_gettime clock_getres gettimeofday time nanosleep clock_nanosleep
//! alarm setitimer getitimer (ITIMER_REAL on the guest clock, delivering
//! SIGALRM; see `time.rs`). Sync: futex (WAIT, WAKE, *_BITSET, REQUEUE,
//! CMP_REQUEUE). Waiting: poll ppoll select pselect6 with real readiness for
//! pipes (`FileOps::readiness`: POLLIN, POLLOUT, POLLHUP, POLLERR; files that
//! never block are always ready); with nothing ready the thread blocks until
//! any wake-up key fires (then re-checks) or its timeout passes, keeping the
//! deadline it first computed. The signal masks of ppoll/pselect6 are ignored.
//! Everything else, rseq and clone3 included, is ENOSYS.
//!
//! Dynamically linked programs: exec loads the `PT_INTERP` interpreter
//! beside the program (see `exec.rs`). musl's and glibc's dynamic programs
//! run (glibc's loader checks the CPU's ISA level through CPUID, which emu
//! answers as a real Intel CPU: `emu::cpuid`). AT_HWCAP and AT_HWCAP2 come
//! from the `--cpu` model, as Linux derives them from the CPU.
//!
//! Not done yet: sockets, chown, access times, mknod and FIFOs,
//! chmod/utimensat kept by an `--overlay`, job control,
//! ITIMER_VIRTUAL/ITIMER_PROF, RENAME_EXCHANGE, real-time signals (32..64 are accepted but never delivered), shared file
//! mappings that write back, `/proc` beyond `/proc/self/exe`. Descriptors
//! and working directories name paths, not inodes: after a directory is
//! renamed, `*at` calls relative to a descriptor opened on it (and a cwd
//! inside it) still resolve under the old path.

pub mod abi;
pub mod exec;
mod fs;
mod mem;
mod proc;
mod signal;
mod time;

use std::collections::BTreeMap;
use std::rc::Weak;

use emu::{GuestAddress, Memory};
use warden_abi::{Errno, E2BIG, EFAULT, EINVAL, ENAMETOOLONG, ENOSYS};

use crate::process::OpenFile;
use crate::syscall::{Call, Input, SysError, SysResult};
use crate::usercopy::{copy_array, copy_in};
use crate::{Kernel, Pid};
use abi::nr;

pub use exec::build_stack;

/// Bit set in `Call::number` of every Linux call (the Linux number is below it).
pub use warden_abi::linux::LINUX_CALL;

/// Largest buffer one read or write moves.
const MAX_IO: usize = crate::syscall::MAX_IO;
/// Most iovec entries (IOV_MAX).
const IOV_MAX: usize = 1024;
/// Longest path.
const PATH_MAX: usize = 4096;
/// Most poll entries.
const MAX_POLL: usize = 4096;

/// Which system-call ABI a process speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Personality {
    Redox,
    Linux,
}

impl std::str::FromStr for Personality {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "linux" => Ok(Personality::Linux),
            "redox" => Ok(Personality::Redox),
            _ => Err(format!("unknown personality {s:?} (expected linux or redox)")),
        }
    }
}

/// Decides the personality of the program in `bytes` (see the module note).
pub fn personality_of(bytes: &[u8]) -> Personality {
    let get = |at: usize, n: usize| at.checked_add(n).and_then(|end| bytes.get(at..end));
    let u16_at = |at: usize| get(at, 2).map(|b| u16::from_le_bytes([b[0], b[1]]) as usize);
    let u32_at = |at: usize| get(at, 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
    let u64_at = |at: usize| abi::le64(bytes, at) as usize;
    if bytes.len() < 64 {
        return Personality::Redox;
    }
    let mut linux = bytes[7] == 3;
    let phoff = u64_at(32);
    let phentsize = u16_at(54).unwrap_or(0);
    let phnum = u16_at(56).unwrap_or(0).min(256);
    if phentsize < 56 {
        return if linux { Personality::Linux } else { Personality::Redox };
    }
    for i in 0..phnum {
        let Some(ph) = phoff.checked_add(i * phentsize).filter(|&ph| ph < bytes.len()) else { break };
        let Some(p_type) = u32_at(ph) else { break };
        match p_type {
            0x6474_e551 => linux = true, // PT_GNU_STACK
            4 => {
                // PT_NOTE
                let off = u64_at(ph.saturating_add(8));
                let size = u64_at(ph.saturating_add(32));
                let Some(end) = off.checked_add(size).filter(|&e| e <= bytes.len()) else { continue };
                let mut at = off;
                while at.checked_add(12).is_some_and(|e| e <= end) {
                    let namesz = u32_at(at).unwrap_or(0);
                    let descsz = u32_at(at + 4).unwrap_or(0);
                    let name_at = at + 12;
                    let Some(name) = get(name_at, namesz).filter(|_| namesz < 256) else {
                        break;
                    };
                    match name {
                        b"Redox\0" => return Personality::Redox,
                        b"GNU\0" => linux = true,
                        _ => {}
                    }
                    let next = name_at + ((namesz + 3) & !3) + ((descsz.min(1 << 20) + 3) & !3);
                    if next <= at {
                        break;
                    }
                    at = next;
                }
            }
            _ => {}
        }
    }
    if linux {
        Personality::Linux
    } else {
        Personality::Redox
    }
}

/// Per-process Linux state (present exactly for Linux processes).
#[derive(Clone, Debug, Default)]
pub(crate) struct LinuxProc {
    /// The path of the executable (`/proc/self/exe`).
    pub exe: Vec<u8>,
}

/// Per-thread Linux state.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct LinuxThread {
    /// `set_tid_address` / `CLONE_CHILD_CLEARTID`: zeroed and futex-woken at exit.
    pub clear_tid: u64,
    /// `sigaltstack`: (sp, size); size 0 means none.
    pub altstack: (u64, u64),
    /// The mask `rt_sigsuspend` replaced, restored by the handler's sigreturn.
    pub suspend_mask: Option<u64>,
    /// A poll/select waiting for readiness: (the thread's instruction count when it
    /// blocked, its absolute deadline), so a re-run keeps the first deadline.
    pub poll_wait: Option<(u64, Option<u64>)>,
}

/// A directory being read with `getdents64`.
pub(crate) struct DirStream {
    /// (name, inode, d_type)
    pub entries: Vec<(Vec<u8>, u64, u8)>,
    pub pos: usize,
}

/// Everything the kernel keeps for the Linux personality.
#[derive(Default)]
pub struct LinuxState {
    pub(crate) procs: BTreeMap<Pid, LinuxProc>,
    pub(crate) threads: BTreeMap<Pid, LinuxThread>,
    pub(crate) dirs: Vec<(Weak<OpenFile>, DirStream)>,
    /// Armed `ITIMER_REAL` timers by process: (deadline in monotonic ns, interval ns).
    pub(crate) timers: BTreeMap<Pid, (u64, u64)>,
    /// The path the next exec runs (set by exec's callers; AT_EXECFN, /proc/self/exe).
    pub(crate) exec_path: Option<Vec<u8>>,
    /// Override of the personality rule for the next exec (init only).
    pub(crate) force: Option<Personality>,
    trace: Option<bool>,
}

impl LinuxState {
    fn tracing(&mut self) -> bool {
        *self.trace.get_or_insert_with(|| std::env::var_os("WARDEN_LINUX_TRACE").is_some_and(|v| v != "0"))
    }
}

/// The kernel's copy of what a Linux call reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinuxInput {
    None,
    /// One path (C string, without the NUL).
    Path(Vec<u8>),
    /// Two paths (rename, symlink, link).
    Paths(Vec<u8>, Vec<u8>),
    /// A write buffer (or the gathered `writev` buffers).
    Bytes(Vec<u8>),
    /// An iovec array (base, len) for `readv`.
    Iov(Vec<(u64, u64)>),
    Exec {
        path: Vec<u8>,
        args: Vec<Vec<u8>>,
        envs: Vec<Vec<u8>>,
    },
    /// rt_sigaction's new action: (handler, flags, restorer, mask).
    SigAction(Option<(u64, u64, u64, u64)>),
    SigSet(Option<u64>),
    /// sigaltstack's new stack: (sp, flags, size).
    AltStack(Option<(u64, u32, u64)>),
    /// A timeout or sleep, in nanoseconds (`None`: no timeout pointer).
    Time(Option<u64>),
    /// utimensat: the path (`None`: the descriptor itself) and the two timespecs
    /// (atime sec, nsec, mtime sec, nsec; `None`: both now).
    Utimens {
        path: Option<Vec<u8>>,
        times: Option<[u64; 4]>,
    },
    /// setitimer's new value: (interval, value) in nanoseconds (`None`: no pointer).
    ITimer(Option<(u64, u64)>),
    Poll {
        fds: Vec<(i32, u16)>,
        timeout: Option<u64>,
    },
    Select {
        nfds: usize,
        sets: [Option<Vec<u8>>; 3],
        timeout: Option<u64>,
    },
}

/// The supervision items (`warden_abi::ITEM_*`: kind, argument index, bytes) of a Linux
/// call's inputs, so packets and traces show its paths, buffers and exec vectors.
pub fn trace_items(number: usize, input: &LinuxInput) -> Vec<(u32, u32, &[u8])> {
    use warden_abi::{ITEM_ARG, ITEM_BYTES, ITEM_ENV, ITEM_PATH};
    let nr = number & !LINUX_CALL;
    let mut out = Vec::new();
    match input {
        LinuxInput::Path(p) => {
            let at = matches!(
                nr,
                nr::OPENAT
                    | nr::NEWFSTATAT
                    | nr::STATX
                    | nr::MKDIRAT
                    | nr::UNLINKAT
                    | nr::READLINKAT
                    | nr::FCHMODAT
                    | nr::FCHOWNAT
                    | nr::FACCESSAT
                    | nr::FACCESSAT2
                    | nr::UTIMENSAT
            );
            out.push((ITEM_PATH, at as u32, p.as_slice()));
        }
        LinuxInput::Paths(p, q) => {
            let (i, j) = match nr {
                nr::RENAMEAT | abi::RENAMEAT2 | nr::LINKAT => (1, 3),
                nr::SYMLINKAT => (0, 2),
                _ => (0, 1),
            };
            out.push((ITEM_PATH, i, p.as_slice()));
            out.push((ITEM_PATH, j, q.as_slice()));
        }
        LinuxInput::Bytes(b) => out.push((ITEM_BYTES, 1, b.as_slice())),
        LinuxInput::Utimens { path: Some(p), .. } => out.push((ITEM_PATH, 1, p.as_slice())),
        LinuxInput::Exec { path, args, envs } => {
            out.push((ITEM_PATH, 0, path.as_slice()));
            out.extend(args.iter().map(|a| (ITEM_ARG, 1, a.as_slice())));
            out.extend(envs.iter().map(|e| (ITEM_ENV, 2, e.as_slice())));
        }
        _ => {}
    }
    out
}

fn cstr(mem: &Memory, addr: usize) -> Result<Vec<u8>, Errno> {
    if addr == 0 {
        return Err(Errno(EFAULT));
    }
    let s = mem.read_cstr(GuestAddress(addr as u64), PATH_MAX + 1).map_err(|_| Errno(EFAULT))?;
    if s.len() > PATH_MAX {
        return Err(Errno(ENAMETOOLONG));
    }
    Ok(s)
}

fn timespec(mem: &Memory, addr: usize) -> Result<Option<u64>, Errno> {
    if addr == 0 {
        return Ok(None);
    }
    let bytes = copy_array::<16>(mem, addr)?;
    abi::timespec_ns(&bytes).map(Some).ok_or(Errno(EINVAL))
}

fn u64_at(mem: &Memory, addr: usize) -> Result<u64, Errno> {
    Ok(u64::from_le_bytes(copy_array::<8>(mem, addr)?))
}

/// Copies a NULL-terminated vector of C strings (argv, envp).
fn cvector(mem: &Memory, addr: usize, budget: &mut usize) -> Result<Vec<Vec<u8>>, Errno> {
    let mut out = Vec::new();
    if addr == 0 {
        return Ok(out);
    }
    for i in 0.. {
        if i >= crate::syscall::MAX_EXEC_ARGS {
            return Err(Errno(E2BIG));
        }
        let p = u64_at(mem, addr.checked_add(8 * i).ok_or(Errno(EFAULT))?)? as usize;
        if p == 0 {
            break;
        }
        let s = mem.read_cstr(GuestAddress(p as u64), (*budget).min(128 * 1024) + 1).map_err(|_| Errno(EFAULT))?;
        *budget = budget.checked_sub(s.len() + 9).ok_or(Errno(E2BIG))?;
        out.push(s);
    }
    Ok(out)
}

fn iovecs(mem: &Memory, addr: usize, count: usize) -> Result<Vec<(u64, u64)>, Errno> {
    if count > IOV_MAX {
        return Err(Errno(EINVAL));
    }
    let raw = copy_in(mem, addr, count * 16)?;
    Ok(raw.chunks_exact(16).map(|c| (abi::le64(c, 0), abi::le64(c, 8))).collect())
}

fn gather(mem: &Memory, iov: &[(u64, u64)]) -> Result<Vec<u8>, Errno> {
    let mut out = Vec::new();
    for &(base, len) in iov {
        let take = (len as usize).min(MAX_IO - out.len());
        if take == 0 {
            continue;
        }
        out.extend_from_slice(&copy_in(mem, base as usize, take)?);
        if out.len() >= MAX_IO {
            break;
        }
    }
    Ok(out)
}

fn sigset(mem: &Memory, addr: usize) -> Result<Option<u64>, Errno> {
    if addr == 0 {
        Ok(None)
    } else {
        Ok(Some(u64_at(mem, addr)?))
    }
}

/// Step 1 for a Linux process: the `Call` with the kernel's copies of its inputs.
pub fn decode(mem: &Memory, gate: emu::Gate, rax: u64, args: [usize; 6]) -> Call {
    let number = rax as u32 as usize;
    let input = match decode_input(mem, number, &args) {
        Ok(i) => Input::Linux(i),
        Err(e) => Input::Fault(e),
    };
    Call { number: LINUX_CALL | number, args, gate, input }
}

fn decode_input(mem: &Memory, number: usize, a: &[usize; 6]) -> Result<LinuxInput, Errno> {
    use LinuxInput as L;
    Ok(match number {
        nr::WRITE | nr::PWRITE64 => L::Bytes(copy_in(mem, a[1], a[2].min(MAX_IO))?),
        nr::WRITEV | nr::PWRITEV => L::Bytes(gather(mem, &iovecs(mem, a[1], a[2])?)?),
        nr::READV | nr::PREADV => L::Iov(iovecs(mem, a[1], a[2])?),
        nr::OPEN
        | nr::STAT
        | nr::LSTAT
        | nr::ACCESS
        | nr::CHDIR
        | nr::MKDIR
        | nr::RMDIR
        | nr::CREAT
        | nr::UNLINK
        | nr::READLINK
        | nr::CHMOD
        | nr::CHOWN
        | nr::LCHOWN
        | nr::TRUNCATE
        | nr::UTIME
        | nr::UTIMES
        | nr::STATFS => L::Path(cstr(mem, a[0])?),
        nr::OPENAT
        | nr::NEWFSTATAT
        | nr::STATX
        | nr::MKDIRAT
        | nr::UNLINKAT
        | nr::READLINKAT
        | nr::FCHMODAT
        | nr::FCHOWNAT
        | nr::FACCESSAT
        | nr::FACCESSAT2 => L::Path(cstr(mem, a[1])?),
        nr::UTIMENSAT => {
            let path = if a[1] == 0 { None } else { Some(cstr(mem, a[1])?) };
            let times = if a[2] == 0 {
                None
            } else {
                let b = copy_array::<32>(mem, a[2])?;
                Some([abi::le64(&b, 0), abi::le64(&b, 8), abi::le64(&b, 16), abi::le64(&b, 24)])
            };
            L::Utimens { path, times }
        }
        nr::RENAME | nr::SYMLINK | nr::LINK => L::Paths(cstr(mem, a[0])?, cstr(mem, a[1])?),
        nr::RENAMEAT | abi::RENAMEAT2 | nr::LINKAT => L::Paths(cstr(mem, a[1])?, cstr(mem, a[3])?),
        nr::SYMLINKAT => L::Paths(cstr(mem, a[0])?, cstr(mem, a[2])?),
        nr::EXECVE => {
            let path = cstr(mem, a[0])?;
            let mut budget = crate::elf::MAX_ARG_BYTES;
            let args = cvector(mem, a[1], &mut budget)?;
            let envs = cvector(mem, a[2], &mut budget)?;
            L::Exec { path, args, envs }
        }
        nr::RT_SIGACTION if a[1] != 0 => {
            if a[3] != 8 {
                return Err(Errno(EINVAL));
            }
            let b = copy_array::<32>(mem, a[1])?;
            L::SigAction(Some((abi::le64(&b, 0), abi::le64(&b, 8), abi::le64(&b, 16), abi::le64(&b, 24))))
        }
        nr::RT_SIGACTION => L::SigAction(None),
        nr::RT_SIGPROCMASK => L::SigSet(sigset(mem, a[1])?),
        nr::RT_SIGSUSPEND => L::SigSet(Some(u64_at(mem, a[0])?)),
        nr::SIGALTSTACK if a[0] != 0 => {
            let b = copy_array::<24>(mem, a[0])?;
            L::AltStack(Some((abi::le64(&b, 0), abi::le32(&b, 8), abi::le64(&b, 16))))
        }
        nr::SIGALTSTACK => L::AltStack(None),
        nr::NANOSLEEP => L::Time(Some(timespec(mem, a[0])?.ok_or(Errno(EFAULT))?)),
        nr::SETITIMER if a[1] == 0 => L::ITimer(None),
        nr::SETITIMER => {
            let b = copy_array::<32>(mem, a[1])?;
            let interval = abi::timeval_ns(&b[..16]).ok_or(Errno(EINVAL))?;
            let value = abi::timeval_ns(&b[16..]).ok_or(Errno(EINVAL))?;
            L::ITimer(Some((interval, value)))
        }
        nr::CLOCK_NANOSLEEP => L::Time(Some(timespec(mem, a[2])?.ok_or(Errno(EFAULT))?)),
        nr::FUTEX => match a[1] & abi::FUTEX_CMD_MASK {
            abi::FUTEX_WAIT | abi::FUTEX_WAIT_BITSET => L::Time(timespec(mem, a[3])?),
            _ => L::None,
        },
        nr::POLL | nr::PPOLL => {
            if a[1] > MAX_POLL {
                return Err(Errno(EINVAL));
            }
            let raw = copy_in(mem, a[0], a[1] * 8)?;
            let fds = raw.chunks_exact(8).map(|c| (abi::le32(c, 0) as i32, u16::from_le_bytes([c[4], c[5]]))).collect();
            let timeout = if number == nr::POLL {
                let ms = a[2] as i32;
                (ms >= 0).then(|| ms as u64 * 1_000_000)
            } else {
                timespec(mem, a[2])?
            };
            L::Poll { fds, timeout }
        }
        nr::SELECT | nr::PSELECT6 => {
            let nfds = (a[0] as i32).clamp(0, 1024) as usize;
            let bytes = nfds.div_ceil(64) * 8;
            let mut sets: [Option<Vec<u8>>; 3] = [None, None, None];
            for (i, set) in sets.iter_mut().enumerate() {
                if a[1 + i] != 0 {
                    *set = Some(copy_in(mem, a[1 + i], bytes)?);
                }
            }
            let timeout = if a[4] == 0 {
                None
            } else if number == nr::SELECT {
                let b = copy_array::<16>(mem, a[4])?;
                let (s, us) = (abi::le64(&b, 0) as i64, abi::le64(&b, 8) as i64);
                if s < 0 || !(0..1_000_000).contains(&us) {
                    return Err(Errno(EINVAL));
                }
                Some((s as u64).saturating_mul(1_000_000_000).saturating_add(us as u64 * 1000))
            } else {
                timespec(mem, a[4])?
            };
            L::Select { nfds, sets, timeout }
        }
        _ => L::None,
    })
}

impl Kernel {
    /// True if thread `tid` belongs to a Linux process.
    pub(crate) fn is_linux(&self, tid: Pid) -> bool {
        self.pid_of(tid).is_ok_and(|pid| self.linux.procs.contains_key(&pid))
    }

    /// True if process `pid` is a Linux process.
    pub(crate) fn is_linux_pid(&self, pid: Pid) -> bool {
        self.linux.procs.contains_key(&pid)
    }

    /// Forces the personality of the program `spawn_init` starts (`None`: the rule).
    pub fn set_personality_override(&mut self, p: Option<Personality>) {
        self.linux.force = p;
    }

    /// The personality of process `pid`, if it exists.
    pub fn personality(&self, pid: Pid) -> Option<Personality> {
        self.procs.get(&pid)?;
        Some(if self.is_linux_pid(pid) { Personality::Linux } else { Personality::Redox })
    }

    /// Called by exec once the new image is committed.
    pub(crate) fn linux_exec_done(&mut self, pid: Pid, tid: Pid, personality: Personality, exe: Vec<u8>) {
        self.linux.threads.remove(&tid);
        self.linux.dirs.retain(|(w, _)| w.strong_count() > 0);
        match personality {
            Personality::Linux => {
                self.linux.procs.insert(pid, LinuxProc { exe });
                if let Some(p) = self.procs.get(&pid) {
                    let mut mm = p.mm.borrow_mut();
                    let at = mm.trampoline + signal::TRAMPOLINE_OFFSET;
                    if mm.trampoline != 0 {
                        let _ = mm.space.mem.write_raw(GuestAddress(at), &signal::TRAMPOLINE_CODE);
                    }
                }
            }
            Personality::Redox => {
                self.linux.procs.remove(&pid);
            }
        }
    }

    /// Step 3 for Linux calls.
    pub(crate) fn linux_dispatch(&mut self, tid: Pid, call: &Call) -> SysResult {
        let Input::Linux(input) = &call.input else {
            return Err(SysError::Errno(Errno(ENOSYS)));
        };
        let number = call.number & !LINUX_CALL;
        let result = self.linux_call(tid, number, &call.args, input);
        if self.linux.tracing() {
            let name = abi::name(number).map(str::to_string).unwrap_or_else(|| format!("syscall_{number}"));
            let a = call.args;
            let shown = match &result {
                Ok(v) => format!("{:#x}", v),
                Err(SysError::Errno(e)) => format!("-{} {}", e.0, warden_abi::errno_name(e.0)),
                Err(SysError::Block(_)) => "<blocks>".to_string(),
                Err(SysError::NoReturn) => "<no return>".to_string(),
            };
            let extra = match input {
                LinuxInput::Path(p) => format!(" {:?}", String::from_utf8_lossy(p)),
                LinuxInput::Paths(p, q) => {
                    format!(" {:?} {:?}", String::from_utf8_lossy(p), String::from_utf8_lossy(q))
                }
                LinuxInput::Exec { path, .. } => format!(" {:?}", String::from_utf8_lossy(path)),
                _ => String::new(),
            };
            eprintln!("[{tid}] {name}({:#x}, {:#x}, {:#x}, {:#x}){extra} = {shown}", a[0], a[1], a[2], a[3]);
        }
        result
    }

    fn linux_call(&mut self, tid: Pid, number: usize, a: &[usize; 6], input: &LinuxInput) -> SysResult {
        if let Some(r) = self.linux_fs_call(tid, number, a, input) {
            return r;
        }
        if let Some(r) = self.linux_proc_call(tid, number, a, input) {
            return r;
        }
        if let Some(r) = self.linux_mem_call(tid, number, a, input) {
            return r;
        }
        if let Some(r) = self.linux_signal_call(tid, number, a, input) {
            return r;
        }
        if let Some(r) = self.linux_time_call(tid, number, a, input) {
            return r;
        }
        Err(SysError::Errno(Errno(ENOSYS)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elf_with(osabi: u8, phdrs: &[(u32, &[u8])]) -> Vec<u8> {
        // Header, then program headers at 64, then note bodies.
        let mut out = vec![0u8; 64];
        out[..4].copy_from_slice(b"\x7fELF");
        out[4] = 2;
        out[5] = 1;
        out[6] = 1;
        out[7] = osabi;
        out[32..40].copy_from_slice(&64u64.to_le_bytes());
        out[54..56].copy_from_slice(&56u16.to_le_bytes());
        out[56..58].copy_from_slice(&(phdrs.len() as u16).to_le_bytes());
        let mut body = Vec::new();
        let body_at = 64 + 56 * phdrs.len();
        for (ty, data) in phdrs {
            let mut ph = [0u8; 56];
            ph[..4].copy_from_slice(&ty.to_le_bytes());
            ph[8..16].copy_from_slice(&((body_at + body.len()) as u64).to_le_bytes());
            ph[32..40].copy_from_slice(&(data.len() as u64).to_le_bytes());
            out.extend_from_slice(&ph);
            body.extend_from_slice(data);
        }
        out.extend_from_slice(&body);
        out
    }

    fn note(owner: &[u8]) -> Vec<u8> {
        let mut n = Vec::new();
        n.extend_from_slice(&(owner.len() as u32).to_le_bytes());
        n.extend_from_slice(&4u32.to_le_bytes());
        n.extend_from_slice(&1u32.to_le_bytes());
        n.extend_from_slice(owner);
        while n.len() % 4 != 0 {
            n.push(0);
        }
        n.extend_from_slice(&[0; 4]);
        n
    }

    #[test]
    fn the_personality_rule() {
        const GNU_STACK: u32 = 0x6474_e551;
        let plain = elf_with(0, &[(1, &[])]);
        assert_eq!(personality_of(&plain), Personality::Redox);
        assert_eq!(personality_of(&elf_with(3, &[(1, &[])])), Personality::Linux);
        assert_eq!(personality_of(&elf_with(0, &[(GNU_STACK, &[])])), Personality::Linux);
        assert_eq!(personality_of(&elf_with(0, &[(4, &note(b"GNU\0"))])), Personality::Linux);
        let mut both = note(b"GNU\0");
        both.extend(note(b"Redox\0"));
        assert_eq!(personality_of(&elf_with(3, &[(GNU_STACK, &[]), (4, &both)])), Personality::Redox);
        assert_eq!(personality_of(&crate::testkit::static_elf(&[0xf4], 0)), Personality::Redox);
        // Truncated and garbage input never panics.
        for len in 0..plain.len() {
            let _ = personality_of(&plain[..len]);
        }
        let mut bad = elf_with(0, &[(4, &note(b"GNU\0"))]);
        bad[64 + 8..64 + 16].copy_from_slice(&u64::MAX.to_le_bytes());
        let _ = personality_of(&bad);
        bad[64 + 32..64 + 40].copy_from_slice(&u64::MAX.to_le_bytes());
        let _ = personality_of(&bad);
        // Random headers and program headers.
        let mut seed = 0x1234_5678_9abc_def0u64;
        for _ in 0..2000 {
            let mut bytes = elf_with(0, &[(4, &note(b"GNU\0")), (GNU_STACK, &[])]);
            for _ in 0..8 {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let at = (seed >> 33) as usize % bytes.len();
                bytes[at] = (seed >> 17) as u8;
            }
            let _ = personality_of(&bytes);
        }
    }
}
