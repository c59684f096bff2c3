//! `/proc` and a little of `/sys` for Linux processes, made by the kernel from
//! its own state (never the host's: with `--root /` the host's /proc would
//! describe warden, and read as empty files).
//!
//! Served: `/proc/{self,thread-self,PID}` with `stat status statm cmdline
//! comm maps exe cwd root fd/ task/ environ auxv mounts mountinfo`, and `/proc/{meminfo,
//! cpuinfo,stat,uptime,loadavg,mounts,version,filesystems}`,
//! `/sys/devices/system/cpu/{online,possible,present}`. They agree with what
//! the guest sees elsewhere: one CPU (`sched_getaffinity`), the `--cpu`
//! model's CPUID (vendor, brand, family/model, flags), the memory limits
//! (`--max-mem-total` is MemTotal), the virtual clock (uptime, start times in
//! ticks of 100 Hz), the guest's pids. A jailed process sees only the
//! processes of its jail, and paths relative to its root.
//!
//! `environ` is read from the process's stack where exec put the strings (as
//! Linux reads it), `auxv` is the vector exec wrote. Every file is a snapshot
//! taken at `open`.

use warden_abi as r;
use warden_abi::{Errno, Stat};

use crate::process::{ProcState, ThreadState};
use crate::{Kernel, Pid};

/// What a path under /proc (or /sys) is.
pub(super) enum ProcNode {
    File(Vec<u8>),
    /// A directory: its entries' names.
    Dir(Vec<Vec<u8>>),
    /// A symbolic link: its target.
    Link(Vec<u8>),
}

/// Ticks per second of `stat`'s times (Linux's USER_HZ; AT_CLKTCK says the same).
const HZ: u64 = 100;

fn names(list: &[&str]) -> Vec<Vec<u8>> {
    list.iter().map(|n| n.as_bytes().to_vec()).collect()
}

impl ProcNode {
    pub(super) fn stat(&self, ino: u64) -> Stat {
        let (mode, size) = match self {
            ProcNode::File(_) => (r::MODE_FILE | 0o444, 0),
            ProcNode::Dir(_) => (r::MODE_DIR | 0o555, 0),
            ProcNode::Link(t) => (r::MODE_SYMLINK | 0o777, t.len() as u64),
        };
        Stat {
            st_dev: 0x16,
            st_ino: ino,
            st_mode: mode,
            st_nlink: 1,
            st_size: size,
            st_blksize: 1024,
            ..Stat::default()
        }
    }
}

/// CPUID feature bits and the names /proc/cpuinfo gives them: (leaf, register, bit, name).
const CPU_FLAGS: &[(u32, usize, u32, &str)] = &[
    (1, 3, 0, "fpu"),
    (1, 3, 4, "tsc"),
    (1, 3, 5, "msr"),
    (1, 3, 8, "cx8"),
    (1, 3, 15, "cmov"),
    (1, 3, 19, "clflush"),
    (1, 3, 23, "mmx"),
    (1, 3, 24, "fxsr"),
    (1, 3, 25, "sse"),
    (1, 3, 26, "sse2"),
    (0x8000_0001, 3, 11, "syscall"),
    (0x8000_0001, 3, 20, "nx"),
    (0x8000_0001, 3, 29, "lm"),
    (1, 2, 0, "pni"),
    (1, 2, 1, "pclmulqdq"),
    (1, 2, 9, "ssse3"),
    (1, 2, 12, "fma"),
    (1, 2, 13, "cx16"),
    (1, 2, 19, "sse4_1"),
    (1, 2, 20, "sse4_2"),
    (1, 2, 22, "movbe"),
    (1, 2, 23, "popcnt"),
    (1, 2, 25, "aes"),
    (1, 2, 26, "xsave"),
    (1, 2, 28, "avx"),
    (1, 2, 29, "f16c"),
    (1, 2, 30, "rdrand"),
    (0x8000_0001, 2, 0, "lahf_lm"),
    (0x8000_0001, 2, 5, "abm"),
    (7, 1, 0, "fsgsbase"),
    (7, 1, 3, "bmi1"),
    (7, 1, 5, "avx2"),
    (7, 1, 8, "bmi2"),
    (7, 1, 9, "erms"),
    (7, 1, 18, "rdseed"),
    (7, 1, 19, "adx"),
    (7, 1, 29, "sha_ni"),
    (7, 2, 22, "rdpid"),
];

impl Kernel {
    /// The node at absolute path `abs` if it lies under /proc or is one of the /sys files
    /// served; `None` for any other path.
    pub(super) fn lx_proc_node(&self, tid: Pid, abs: &[u8]) -> Option<Result<ProcNode, Errno>> {
        let path = std::str::from_utf8(abs).ok()?;
        if let Some(rest) = path.strip_prefix("/sys/devices/system/cpu/") {
            return match rest {
                "online" | "possible" | "present" => Some(Ok(ProcNode::File(b"0\n".to_vec()))),
                _ => None,
            };
        }
        let rest = match path.strip_prefix("/proc") {
            Some("") => "",
            Some(r) => r.strip_prefix('/')?,
            None => return None,
        };
        Some(self.proc_node(tid, rest))
    }

    /// True if thread `tid` may see process `pid` (its own jail's processes only).
    fn proc_visible(&self, tid: Pid, pid: Pid) -> bool {
        self.jail_view(tid).is_none_or(|j| self.in_jail(&j, pid))
    }

    fn proc_node(&self, tid: Pid, rest: &str) -> Result<ProcNode, Errno> {
        let me = self.pid_of(tid)?;
        let (first, tail) = rest.split_once('/').unwrap_or((rest, ""));
        let file = |s: String| Ok(ProcNode::File(s.into_bytes()));
        match first {
            "" => {
                let mut list = names(&[
                    "self",
                    "thread-self",
                    "cpuinfo",
                    "meminfo",
                    "stat",
                    "uptime",
                    "loadavg",
                    "mounts",
                    "version",
                    "filesystems",
                ]);
                list.extend(
                    self.procs.keys().filter(|&&p| self.proc_visible(tid, p)).map(|p| p.to_string().into_bytes()),
                );
                Ok(ProcNode::Dir(list))
            }
            "self" if tail.is_empty() => Ok(ProcNode::Link(me.to_string().into_bytes())),
            "self" => self.pid_node(tid, me, tail),
            "thread-self" if tail.is_empty() => Ok(ProcNode::Link(format!("{me}/task/{tid}").into_bytes())),
            "thread-self" => self.task_node(tid, me, tid, tail),
            "cpuinfo" if tail.is_empty() => file(self.cpuinfo()),
            "meminfo" if tail.is_empty() => file(self.meminfo()),
            "uptime" if tail.is_empty() => {
                let ns = self.clock.monotonic_ns();
                file(format!("{}.{:02} 0.00\n", ns / 1_000_000_000, ns / 10_000_000 % 100))
            }
            "loadavg" if tail.is_empty() => {
                let running = self.threads.values().filter(|t| !t.is_blocked()).count();
                let last = self.procs.keys().max().copied().unwrap_or(0);
                file(format!("0.00 0.00 0.00 {}/{} {}\n", running, self.threads.len(), last))
            }
            "stat" if tail.is_empty() => {
                let ticks = self.clock.monotonic_ns() / (1_000_000_000 / HZ);
                let running = self.threads.values().filter(|t| !t.is_blocked()).count();
                file(format!(
                    "cpu  {ticks} 0 0 0 0 0 0 0 0 0\ncpu0 {ticks} 0 0 0 0 0 0 0 0 0\nintr 0\nctxt 0\nbtime 0\nprocesses {}\nprocs_running {}\nprocs_blocked 0\n",
                    self.procs.len(),
                    running
                ))
            }
            "mounts" if tail.is_empty() => Ok(ProcNode::File(mounts())),
            "version" if tail.is_empty() => {
                file("Linux version 6.1.0-warden (warden) #1 SMP PREEMPT_DYNAMIC\n".to_string())
            }
            "filesystems" if tail.is_empty() => file("nodev\tproc\nnodev\ttmpfs\n\text4\n".to_string()),
            pid => {
                let pid: Pid = pid.parse().map_err(|_| Errno(r::ENOENT))?;
                if !self.procs.contains_key(&pid) || !self.proc_visible(tid, pid) {
                    return Err(Errno(r::ENOENT));
                }
                self.pid_node(tid, pid, tail)
            }
        }
    }

    fn pid_node(&self, tid: Pid, pid: Pid, tail: &str) -> Result<ProcNode, Errno> {
        let p = self.procs.get(&pid).ok_or(Errno(r::ENOENT))?;
        let (first, rest) = tail.split_once('/').unwrap_or((tail, ""));
        match first {
            "" => Ok(ProcNode::Dir(names(&[
                "auxv",
                "cmdline",
                "comm",
                "cwd",
                "environ",
                "exe",
                "fd",
                "maps",
                "mountinfo",
                "mounts",
                "root",
                "stat",
                "statm",
                "status",
                "task",
            ]))),
            "task" if rest.is_empty() => {
                Ok(ProcNode::Dir(p.threads.iter().map(|t| t.to_string().into_bytes()).collect()))
            }
            "task" => {
                let (t, more) = rest.split_once('/').unwrap_or((rest, ""));
                let t: Pid = t.parse().map_err(|_| Errno(r::ENOENT))?;
                if !p.threads.contains(&t) {
                    return Err(Errno(r::ENOENT));
                }
                self.task_node(tid, pid, t, more)
            }
            "fd" if rest.is_empty() => {
                let files = p.files.borrow();
                let mut fds: Vec<usize> = files.iter().map(|(fd, _)| fd).collect();
                // Linux lists the directory when it is read, so a process listing its own
                // descriptors sees the one the listing itself is open on.
                if self.pid_of(tid).ok() == Some(pid) {
                    fds.push(files.lowest_free());
                    fds.sort_unstable();
                }
                Ok(ProcNode::Dir(fds.iter().map(|fd| fd.to_string().into_bytes()).collect()))
            }
            "fd" => {
                let fd: usize = rest.parse().map_err(|_| Errno(r::ENOENT))?;
                let files = p.files.borrow();
                let entry = files.iter().find(|(n, _)| *n == fd).ok_or(Errno(r::ENOENT))?.1;
                let path = entry.desc.file.try_borrow().map(|f| f.path()).unwrap_or_default();
                Ok(ProcNode::Link(self.shown_path(tid, &path)))
            }
            "exe" if rest.is_empty() => {
                let exe = self.linux.procs.get(&pid).map(|l| l.exe.clone()).unwrap_or_default();
                Ok(ProcNode::Link(self.shown_path(tid, &[b"file:", &exe[..]].concat())))
            }
            "cwd" if rest.is_empty() => {
                let cwd = [b"file:", &p.fs.borrow().cwd[..]].concat();
                Ok(ProcNode::Link(self.shown_path(tid, &cwd)))
            }
            "root" if rest.is_empty() => Ok(ProcNode::Link(b"/".to_vec())),
            "mounts" if rest.is_empty() => Ok(ProcNode::File(mounts())),
            "mountinfo" if rest.is_empty() => Ok(ProcNode::File(mountinfo())),
            "environ" if rest.is_empty() => {
                // Read from the process's memory, as Linux does (empty if it unmapped them).
                let (start, end) = self.linux.procs.get(&pid).map_or((0, 0), |l| l.start.env);
                let mut bytes = vec![0u8; end.saturating_sub(start).min(crate::elf::MAX_ARG_BYTES as u64) as usize];
                if p.mm.borrow().space.mem.read_raw(emu::GuestAddress(start), &mut bytes).is_err() {
                    bytes.clear();
                }
                Ok(ProcNode::File(bytes))
            }
            "auxv" if rest.is_empty() => {
                Ok(ProcNode::File(self.linux.procs.get(&pid).map(|l| l.start.auxv.clone()).unwrap_or_default()))
            }
            _ if rest.is_empty() => self.task_node(tid, pid, p.threads.first().copied().unwrap_or(pid), first),
            _ => Err(Errno(r::ENOENT)),
        }
    }

    /// The files a process and each of its threads have (`stat`, `status`, ...), for
    /// thread `t` of process `pid`.
    fn task_node(&self, tid: Pid, pid: Pid, t: Pid, name: &str) -> Result<ProcNode, Errno> {
        let p = self.procs.get(&pid).ok_or(Errno(r::ENOENT))?;
        let comm = self.comm_of(pid);
        let state = match p.state {
            ProcState::Zombie(_) => ('Z', "zombie"),
            ProcState::Alive => {
                if self.threads.get(&t).is_some_and(|t| matches!(t.state, ThreadState::Blocked(_))) {
                    ('S', "sleeping")
                } else {
                    ('R', "running")
                }
            }
        };
        let vm = p.mm.borrow().mapped_bytes();
        let pages = vm / 4096;
        let thread = self.threads.get(&t);
        let mask = thread.map_or(0, |t| t.sigmask);
        let start = 0u64; // every process starts at tick 0 of the virtual clock's view
        let ppid = if self.proc_visible(tid, p.ppid) { p.ppid } else { 0 };
        let (ignored, caught) = {
            let hand = p.sighand.borrow();
            let mut ign = 0u64;
            let mut cgt = 0u64;
            for (i, a) in hand.actions.iter().enumerate().skip(1) {
                let bit = 1u64 << ((i - 1) % 64);
                match a.sa.sa_handler {
                    r::SIG_DFL => {}
                    r::SIG_IGN => ign |= bit,
                    _ => cgt |= bit,
                }
            }
            (ign, cgt)
        };
        let data = match name {
            "" => return Ok(ProcNode::Dir(names(&["comm", "stat", "status", "cmdline"]))),
            "comm" => format!("{comm}\n").into_bytes(),
            "cmdline" => p.cmdline.iter().flat_map(|a| a.iter().copied().chain([0])).collect(),
            "statm" => format!("{pages} {pages} 0 0 0 {pages} 0\n").into_bytes(),
            "maps" => linux_maps(&p.mm.borrow().describe()).into_bytes(),
            "stat" => format!(
                "{t} ({comm}) {} {ppid} {pgid} {pgid} 0 -1 4194304 0 0 0 0 0 0 0 0 20 0 {} 0 {start} {vm} {pages} \
                 18446744073709551615 0 0 0 0 0 {pending} {mask} {ignored} {caught} 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
                state.0,
                p.threads.len(),
                pgid = p.pgid,
                pending = thread.map_or(0, |t| t.pending) | p.pending,
            )
            .into_bytes(),
            "status" => format!(
                "Name:\t{comm}\nUmask:\t{:04o}\nState:\t{} ({})\nTgid:\t{pid}\nNgid:\t0\nPid:\t{t}\nPPid:\t{ppid}\nTracerPid:\t0\n\
                 Uid:\t{u}\t{u}\t{u}\t{u}\nGid:\t{g}\t{g}\t{g}\t{g}\nFDSize:\t{}\nGroups:\t\n\
                 VmPeak:\t{kb:8} kB\nVmSize:\t{kb:8} kB\nVmLck:\t       0 kB\nVmPin:\t       0 kB\nVmHWM:\t{kb:8} kB\n\
                 VmRSS:\t{kb:8} kB\nRssAnon:\t{kb:8} kB\nRssFile:\t       0 kB\nRssShmem:\t       0 kB\n\
                 VmData:\t{kb:8} kB\nVmStk:\t     132 kB\nVmExe:\t       0 kB\nVmLib:\t       0 kB\nVmPTE:\t       0 kB\n\
                 VmSwap:\t       0 kB\nThreads:\t{}\nSigQ:\t0/{}\nSigPnd:\t{:016x}\nShdPnd:\t{:016x}\nSigBlk:\t{mask:016x}\n\
                 SigIgn:\t{ignored:016x}\nSigCgt:\t{caught:016x}\nCapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\n\
                 CapEff:\t000001ffffffffff\nCapBnd:\t000001ffffffffff\nCapAmb:\t0000000000000000\nNoNewPrivs:\t0\n\
                 Seccomp:\t0\nCpus_allowed:\t1\nCpus_allowed_list:\t0\nMems_allowed:\t1\nMems_allowed_list:\t0\n\
                 voluntary_ctxt_switches:\t0\nnonvoluntary_ctxt_switches:\t0\n",
                p.fs.borrow().umask,
                state.0,
                state.1,
                self.config.limits.max_fds,
                p.threads.len(),
                self.config.limits.max_processes,
                thread.map_or(0, |t| t.pending),
                p.pending,
                u = p.uid,
                g = p.gid,
                kb = vm / 1024,
            )
            .into_bytes(),
            _ => return Err(Errno(r::ENOENT)),
        };
        Ok(ProcNode::File(data))
    }

    /// `comm`: the program's file name, at most 15 bytes (as Linux's TASK_COMM_LEN).
    fn comm_of(&self, pid: Pid) -> String {
        let exe = self.linux.procs.get(&pid).map(|l| l.exe.clone());
        let from_cmd = || self.procs.get(&pid).and_then(|p| p.cmdline.first().cloned()).unwrap_or_default();
        let path = exe.filter(|e| !e.is_empty()).unwrap_or_else(from_cmd);
        let name = path.rsplit(|&b| b == b'/').next().unwrap_or(&[]);
        String::from_utf8_lossy(&name[..name.len().min(15)]).into_owned()
    }

    /// A description's path as /proc/PID/fd/N shows it: a file's path (relative to the
    /// caller's jail root), `pipe:[id]`, `socket:[id]`, or the device.
    fn shown_path(&self, tid: Pid, path: &[u8]) -> Vec<u8> {
        if let Some(p) = path.strip_prefix(b"file:") {
            return match self.jail_view(tid) {
                Some(j) => crate::policy::strip_root(&j.root, p).map_or(b"/".to_vec(), |s| s.to_vec()),
                None => p.to_vec(),
            };
        }
        if let Some(id) = path.strip_prefix(b"pipe:") {
            return [b"pipe:[", id, b"]"].concat();
        }
        if let Some(text) = super::memfd::link_text(path) {
            return text;
        }
        match path {
            b"null:" => b"/dev/null".to_vec(),
            b"zero:" => b"/dev/zero".to_vec(),
            b"rand:" => b"/dev/urandom".to_vec(),
            p if p.starts_with(b"debug:") => b"/dev/pts/0".to_vec(),
            p => p.to_vec(),
        }
    }

    fn cpuinfo(&self) -> String {
        let cpu = self.config.cpu;
        let id = |leaf: u32| cpu.cpuid(leaf, 0);
        let v = id(0);
        let vendor: Vec<u8> = [v[1], v[3], v[2]].iter().flat_map(|r| r.to_le_bytes()).collect();
        let sig = id(1)[0];
        let family = (sig >> 8 & 0xf) + if sig >> 8 & 0xf == 0xf { sig >> 20 & 0xff } else { 0 };
        let model = (sig >> 4 & 0xf) | if matches!(sig >> 8 & 0xf, 6 | 0xf) { (sig >> 16 & 0xf) << 4 } else { 0 };
        let regs = [1, 7, 0x8000_0001].map(|l| (l, id(l)));
        // Physical and virtual address bits (Linux's defaults without the leaf: 36, 48).
        let sizes = if id(0x8000_0000)[0] >= 0x8000_0008 { id(0x8000_0008)[0] } else { 48 << 8 | 36 };
        let flags: Vec<&str> = CPU_FLAGS
            .iter()
            .filter(|(leaf, reg, bit, _)| regs.iter().any(|(l, r)| l == leaf && r[*reg] >> bit & 1 != 0))
            .map(|f| f.3)
            .collect();
        format!(
            "processor\t: 0\nvendor_id\t: {}\ncpu family\t: {family}\nmodel\t\t: {model}\nmodel name\t: {}\n\
             stepping\t: {}\ncpu MHz\t\t: 1000.000\ncache size\t: {} KB\nphysical id\t: 0\nsiblings\t: 1\n\
             core id\t\t: 0\ncpu cores\t: 1\napicid\t\t: 0\ninitial apicid\t: 0\nfpu\t\t: yes\nfpu_exception\t: yes\n\
             cpuid level\t: {}\nwp\t\t: yes\nflags\t\t: {}\nbogomips\t: 2000.00\nclflush size\t: 64\n\
             cache_alignment\t: 64\naddress sizes\t: {} bits physical, {} bits virtual\npower management:\n\n",
            String::from_utf8_lossy(&vendor),
            cpu.brand(),
            sig & 0xf,
            cache_kb(cpu),
            v[0],
            flags.join(" "),
            sizes & 0xff,
            sizes >> 8 & 0xff,
        )
    }

    fn meminfo(&self) -> String {
        let total = self.config.limits.max_memory_total / 1024;
        let used = self.mem_total.used() / 1024;
        let free = total.saturating_sub(used);
        let line = |name: &str, kb: u64| format!("{:<16}{kb:>8} kB\n", format!("{name}:"));
        let mut s = String::new();
        for (name, kb) in [
            ("MemTotal", total),
            ("MemFree", free),
            ("MemAvailable", free),
            ("Buffers", 0),
            ("Cached", 0),
            ("SwapCached", 0),
            ("Active", used),
            ("Inactive", 0),
            ("SwapTotal", 0),
            ("SwapFree", 0),
            ("Dirty", 0),
            ("AnonPages", used),
            ("Mapped", 0),
            ("Shmem", 0),
            ("CommitLimit", total),
            ("Committed_AS", used),
            ("VmallocTotal", 0),
            ("HugePages_Total", 0),
        ] {
            s.push_str(&line(name, kb));
        }
        s
    }
}

/// `/proc/cpuinfo`'s "cache size", as Linux computes it (`init_intel_cacheinfo`): the
/// largest cache level CPUID leaf 4 describes, in KiB (L2 from leaf 0x80000006 without
/// leaf 4).
fn cache_kb(cpu: emu::cpuid::CpuModel) -> u32 {
    let mut largest = (0, 0);
    if cpu.cpuid(0, 0)[0] >= 4 {
        for sub in 0..8 {
            let [a, b, c, _] = cpu.cpuid(4, sub);
            if a & 31 == 0 {
                break;
            }
            let bytes = ((b >> 22 & 0x3ff) + 1) * ((b >> 12 & 0x3ff) + 1) * ((b & 0xfff) + 1) * (c + 1);
            // Data and unified caches of each level (instruction caches are not counted).
            if a & 31 != 2 && (a >> 5 & 7) >= largest.0 {
                largest = (a >> 5 & 7, bytes / 1024);
            }
        }
    }
    match largest.1 {
        0 => cpu.cpuid(0x8000_0006, 0)[2] >> 16,
        kb => kb,
    }
}

/// The guest's mounts as it sees them: (source, mount point, type, options, device as
/// `stat`'s `st_dev` gives it for files there). `statfs` reports the same types (`fs.rs`).
const MOUNT_TABLE: [(&str, &str, &str, &str, &str); 3] = [
    ("/dev/root", "/", "ext4", "rw,relatime", "0:1"),
    ("proc", "/proc", "proc", "rw,nosuid,nodev,noexec,relatime", "0:22"),
    ("devtmpfs", "/dev", "devtmpfs", "rw,nosuid,relatime", "0:6"),
];

/// `/proc/mounts` (and `/proc/PID/mounts`): `source point type options 0 0`.
fn mounts() -> Vec<u8> {
    MOUNT_TABLE
        .iter()
        .map(|(src, point, kind, opts, _)| format!("{src} {point} {kind} {opts} 0 0\n"))
        .collect::<String>()
        .into_bytes()
}

/// `/proc/PID/mountinfo`: ids from 21 on (each mount's parent is the root's), then
/// `dev root point options - type source super-options` (df and findmnt read it).
fn mountinfo() -> Vec<u8> {
    let mut out = String::new();
    for (i, (src, point, kind, opts, dev)) in MOUNT_TABLE.iter().enumerate() {
        let parent = if i == 0 { 1 } else { 21 };
        out.push_str(&format!("{} {parent} {dev} / {point} {opts} - {kind} {src} rw\n", 21 + i));
    }
    out.into_bytes()
}

/// `Mm::describe`'s runs (`start-end perms [label]`) in Linux's maps format: offset,
/// device and inode are zero (the kernel does not track which file a mapping came from).
fn linux_maps(describe: &str) -> String {
    let mut out = String::new();
    for line in describe.lines() {
        let mut parts = line.split_whitespace();
        let (Some(range), Some(perm)) = (parts.next(), parts.next()) else { continue };
        let label = match parts.next() {
            Some("[trampoline]") => "[sigpage]",
            Some(l) => l,
            None => "",
        };
        let (s, e) = range.split_once('-').unwrap_or((range, range));
        let s = u64::from_str_radix(s, 16).unwrap_or(0);
        let e = u64::from_str_radix(e, 16).unwrap_or(0);
        let head = format!("{s:08x}-{e:08x} {perm} 00000000 00:00 0");
        if label.is_empty() {
            out.push_str(&head);
        } else {
            out.push_str(&format!("{head:<72} {label}"));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_lines_have_linux_columns() {
        let out = linux_maps("000000400000-000000401000 r-xp\n7ffffffde000-7ffffffff000 rw-p [stack]\n");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "00400000-00401000 r-xp 00000000 00:00 0");
        assert!(lines[1].starts_with("7ffffffde000-7ffffffff000 rw-p 00000000 00:00 0 "));
        assert!(lines[1].ends_with(" [stack]"));
        assert_eq!(lines[1].find("[stack]"), Some(73));
    }
}
