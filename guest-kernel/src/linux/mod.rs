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
//! A Linux process's `syscall` instruction enters the one dispatcher
//! ([`crate::syscall`]) with the number `LINUX_CALL | nr` (so supervisors and
//! traces can tell the ABIs apart and name Linux calls by their Linux names),
//! and from then on a Linux call is treated exactly like a Redox one, by its
//! row in `warden_abi::linux_calls!` (`LINUX_ROWS` holds the handlers here):
//! the kernel copies every pointer argument the row says it reads (paths as C
//! strings, write buffers and gathered `writev` data, exec vectors, structures:
//! `sigaction`, signal sets, timeouts, poll/select sets, iovec arrays), the
//! policy confines its path arguments, supervisors and tracers see those
//! copies and the ranges the row says it writes, and the handler runs on the
//! copy only; results are written out once through `usercopy`. `int 0x80` in a
//! Linux process still enters the Redox ABI. Errors are `-errno` (the kernel's
//! errno values are Linux's).
//!
//! Adding a call: its row in `warden_abi::linux_calls!` (number, class, groups,
//! arguments, result, handler), its handler here (`fn(&mut Kernel, Pid, &Call)
//! -> SysResult`), and a test.
//!
//! # Supported calls
//! Files: read write readv writev pread64 pwrite64 preadv pwritev open openat
//! creat close close_range lseek stat lstat fstat newfstatat statx statfs fstatfs getdents64
//! dup dup2 dup3 pipe pipe2 fcntl (DUPFD, DUPFD_CLOEXEC, GETFD, SETFD, GETFL,
//! SETFL, ADD_SEALS and GET_SEALS of memfds; locks succeed) ioctl (FIONBIO, FIOCLEX; the
//! terminal's requests on a console end that is a host TTY, ENOTTY elsewhere: `tty.rs`)
//! access faccessat faccessat2 getcwd chdir fchdir mkdir mkdirat unlink unlinkat
//! rmdir rename renameat renameat2 (files, symlinks and directories;
//! RENAME_NOREPLACE, RENAME_EXCHANGE) link linkat (hard links) symlink symlinkat readlink readlinkat (with `/proc/self/exe`) truncate ftruncate
//! fsync fdatasync sync umask; chmod/fchmod/fchmodat/chown/utimensat/utimes
//! succeed without effect. `/dev/null`, `/dev/zero`, `/dev/[u]random`,
//! `/dev/stdin|stdout|stderr` and `/dev/fd/N` are virtualised; the kernel's
//! character devices and the console have distinct inode and `st_rdev`
//! numbers (grep, tar and cmp compare stdout with /dev/null by them). A
//! blocking `write` to a pipe completes (it blocks until every byte is in;
//! a signal handler makes it return the count so far), writes of at most
//! `PIPE_BUF` bytes are atomic, and EPIPE raises SIGPIPE (`crate::io`, the
//! rules both ABIs share).
//! Memory: brk mmap (anonymous, private and shared maps, of files or
//! anonymous and shared by fork: coherent at system calls, see `mem.rs`) munmap mprotect mremap
//! madvise msync. Processes: clone (threads, CLONE_SETTLS, *_SETTID,
//! CHILD_CLEARTID) fork vfork execve (with `#!` scripts) exit exit_group wait4
//! clone3 waitid kill tkill tgkill getpid gettid getppid getuid/geteuid/getgid/getegid
//! getresuid getresgid getgroups set*id (no effect) getpgid setpgid getpgrp
//! setsid getsid (sessions, groups, stopping and continuing: `crate::jobs`) set_tid_address set_robust_list arch_prctl prctl prlimit64
//! getrlimit setrlimit getrusage times uname sysinfo sched_yield
//! sched_getaffinity getrandom (seeded). Signals: rt_sigaction rt_sigprocmask
//! rt_sigreturn rt_sigpending rt_sigsuspend rt_sigtimedwait rt_sigqueueinfo rt_tgsigqueueinfo sigaltstack
//! (SS_AUTODISARM) pause, `SA_RESTART` per call as Linux decides it
//! (`linux::signal::restarts`),
//! with real `rt_sigframe`s (siginfo, ucontext with sigcontext and fxsave
//! state); signalfd signalfd4 (`signalfd.rs`). A signal blocked everywhere
//! stays pending even when its default is to ignore it (as on Linux), so
//! signalfd and sigtimedwait can take SIGCHLD.
//! Time: clock_gettime clock_getres gettimeofday time nanosleep clock_nanosleep
//! alarm setitimer getitimer (ITIMER_REAL on the guest clock, delivering
//! SIGALRM; ITIMER_VIRTUAL and ITIMER_PROF on the process's instruction count;
//! see `time.rs`). Sync: futex (WAIT, WAKE, *_BITSET, REQUEUE,
//! CMP_REQUEUE). Waiting: poll ppoll select pselect6 with real readiness for
//! pipes (`FileOps::readiness`: POLLIN, POLLOUT, POLLHUP, POLLERR; files that
//! never block are always ready); with nothing ready the thread blocks until
//! any wake-up key fires (then re-checks) or its timeout passes, keeping the
//! deadline it first computed. The signal masks of ppoll, pselect6 and
//! epoll_pwait apply while they wait (`Kernel::lx_wait_masked`).
//! `/proc` and `/sys/devices/system/cpu/` are the kernel's own (`procfs.rs`).
//! epoll_create epoll_create1 epoll_ctl epoll_wait epoll_pwait eventfd
//! eventfd2 (`epoll.rs`); timerfd_create timerfd_settime timerfd_gettime
//! (`timerfd.rs`); memfd_create (`memfd.rs`); sendfile copy_file_range splice
//! tee (`splice.rs`); inotify_init inotify_init1 inotify_add_watch
//! inotify_rm_watch for the guest's own changes (`inotify.rs`).
//! Sockets (`socket.rs`): socket socketpair bind listen connect accept accept4
//! getsockname getpeername shutdown sendto recvfrom sendmsg recvmsg
//! (SCM_RIGHTS) setsockopt getsockopt (SO_PEERCRED, SO_TYPE, ...), AF_UNIX
//! stream/dgram/seqpacket with path and abstract names, and a loopback-only
//! AF_INET/AF_INET6, all inside the guest. Extended attributes: no file has
//! any (get: ENODATA, list: empty).
//! Everything else, rseq included, is ENOSYS.
//!
//! Dynamically linked programs: exec loads the `PT_INTERP` interpreter
//! beside the program (see `exec.rs`). musl's and glibc's dynamic programs
//! run (glibc's loader checks the CPU's ISA level through CPUID, which emu
//! answers as a real Intel CPU: `emu::cpuid`). AT_HWCAP and AT_HWCAP2 come
//! from the `--cpu` model, as Linux derives them from the CPU.
//!
//! mknod mknodat (FIFOs and regular files; `fifo.rs`).
//!
//! # Directory order and sizes
//! `getdents64` lists `.` and `..` first, then the names in ascending byte order (the
//! file system's listing, `crate::vfs`: the in-memory tree is ordered, host and overlay
//! directories are sorted), as a snapshot taken at the description's first `getdents64`;
//! `d_off` is the 1-based position of the next entry, `d_ino` the entry's `st_ino` (`..`
//! of `/` is `/`). Real file systems give their own order (ext4: hash order), which no
//! program may rely on; a sorted one is the same on every run and every host.
//! Sizes are ext4's with 4 KiB blocks (`abi::linux_view`): `st_blocks` (512-byte units)
//! of a regular file is its size rounded up to whole blocks (holes are not tracked, so a
//! sparse host file counts as written out; memfds likewise), of a directory its size, of
//! a symbolic link 0 for a target under 60 bytes (stored in the inode) and 8 otherwise. A
//! directory's `st_size` is its listing (the names, one byte more each) rounded up to
//! whole blocks, at least one block (4096), as ext4 gives for directories of up to a
//! hundred or so entries. `st_blksize` is 4096.
//!
//! # What the guest sees of the machine
//! One CPU, everywhere: `sched_getaffinity`, `/sys/devices/system/cpu/{online,possible,
//! present}` ("0"), `/proc/cpuinfo` (one processor) and CPUID (leaf 1: one logical
//! processor, leaves 4 and 0xB: one core, one thread), so glibc's and musl's
//! `sysconf(_SC_NPROCESSORS_ONLN)` are 1. Memory is `--max-mem-total`: `/proc/meminfo`'s
//! MemTotal and `sysinfo`'s `totalram` (so `sysconf(_SC_PHYS_PAGES)`), free what guest
//! processes do not use. `/proc/cpuinfo`'s model, flags, address sizes, clflush size and
//! cache size are the `--cpu` model's CPUID (`procfs.rs`).
//!
//! Not done yet: chown, access times, mknod of devices,
//! chmod/utimensat kept by an `--overlay`, real-time signals (32..64 are accepted but
//! never delivered), the EINTR Linux gives some waits (sigtimedwait, epoll_wait) that a
//! stop interrupted. Descriptors
//! and working directories name paths, not inodes: after a directory is
//! renamed, `*at` calls relative to a descriptor opened on it (and a cwd
//! inside it) still resolve under the old path.

pub mod abi;
mod epoll;
pub mod exec;
mod fifo;
mod fs;
mod inotify;
pub(crate) mod mem;
mod memfd;
mod proc;
mod procfs;
pub(crate) mod signal;
pub(crate) mod signalfd;
mod socket;
mod splice;
mod time;
mod timerfd;
pub(crate) mod tty;

use std::collections::BTreeMap;
use std::rc::Weak;

use emu::GuestAddress;

use crate::process::OpenFile;
use crate::{Kernel, Pid};

pub(crate) use exec::build_stack;

/// Bit set in `Call::number` of every Linux call (the Linux number is below it).
pub use warden_abi::linux::LINUX_CALL;

/// Largest buffer one read or write moves.
const MAX_IO: usize = crate::syscall::MAX_IO;

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
    /// Its environment's place and its auxiliary vector (`/proc/self/{environ,auxv}`).
    pub start: exec::StartInfo,
}

/// Per-thread Linux state.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct LinuxThread {
    /// `set_tid_address` / `CLONE_CHILD_CLEARTID`: zeroed and futex-woken at exit.
    pub clear_tid: u64,
    /// `sigaltstack`: (sp, size, flags as set); size 0 means none (`linux/signal.rs`).
    pub altstack: (u64, u64, u32),
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
    /// The program the next exec runs, set by exec's callers: its absolute path
    /// (`/proc/self/exe`) and the path as the caller named it (`AT_EXECFN`).
    pub(crate) exec_path: Option<(Vec<u8>, Vec<u8>)>,
    /// Override of the personality rule for the next exec (init only).
    pub(crate) force: Option<Personality>,
    /// Bound socket names (see `socket.rs`): jail root, kind and name → the socket.
    pub(crate) socket_names: BTreeMap<Vec<u8>, Weak<std::cell::RefCell<socket::Sock>>>,
    /// Writable shared file maps (`mem.rs`), kept coherent at system calls.
    pub(crate) shared_maps: Vec<mem::SharedMap>,
    /// Private file maps (`mem.rs`): what `MADV_DONTNEED` reads back into their pages.
    pub(crate) file_maps: Vec<mem::FileMap>,
    /// The next port a socket bound to port 0 tries.
    pub(crate) next_port: u16,
    /// Armed `ITIMER_VIRTUAL` (1) and `ITIMER_PROF` (2) timers by process and kind (`time.rs`).
    pub(crate) cpu_timers: BTreeMap<(Pid, usize), time::CpuTimer>,
    /// Named pipes (`fifo.rs`) by absolute path.
    pub(crate) fifos: fifo::FifoList,
    /// Every inotify instance (`inotify.rs`), while one of its descriptors is open.
    pub(crate) inotify: inotify::InstanceList,
    /// Opens to report closed to inotify watches (`inotify.rs`).
    pub(crate) opened: inotify::OpenedList,
    /// The last cookie a rename's inotify events shared.
    pub(crate) next_cookie: u32,
    /// Every timer descriptor (`timerfd.rs`), while one of its descriptors is open.
    pub(crate) timerfds: timerfd::TimerList,
    /// The terminal's sessions and foreground group (`tty.rs`).
    pub(crate) tty: tty::Tty,
}

/// The kernel's handlers of the Linux calls, by their rows in `warden_abi::linux_calls!`.
pub(crate) const LINUX_ROWS: &[crate::syscall::table::Row] = {
    use crate::policy::caught;
    use crate::syscall::table::kernel_rows;
    use warden_abi::linux::nr::*;
    use warden_abi::linux::LINUX_CALL;
    warden_abi::linux_calls!(kernel_rows)
};

impl Kernel {
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
    pub(crate) fn linux_exec_done(&mut self, pid: Pid, tid: Pid, exe: Vec<u8>, start: Option<exec::StartInfo>) {
        self.linux.threads.remove(&tid);
        self.linux.dirs.retain(|(w, _)| w.strong_count() > 0);
        let live: Vec<u64> = self.procs.values().filter_map(|p| p.mm.try_borrow().ok().map(|m| m.id)).collect();
        self.linux.shared_maps.retain(|m| live.contains(&m.mm));
        self.linux.file_maps.retain(|m| live.contains(&m.mm));
        match start {
            Some(start) => {
                self.linux.procs.insert(pid, LinuxProc { exe, start });
                if let Some(p) = self.procs.get(&pid) {
                    let mut mm = p.mm.borrow_mut();
                    let at = mm.trampoline + signal::TRAMPOLINE_OFFSET;
                    if mm.trampoline != 0 {
                        let _ = mm.space.mem.write_raw(GuestAddress(at), &signal::TRAMPOLINE_CODE);
                    }
                }
            }
            None => {
                self.linux.procs.remove(&pid);
            }
        }
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
