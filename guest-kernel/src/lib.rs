//! The Redox-style guest kernel: processes, threads, schemes and system calls
//! on top of the `emu` interpreter.
//!
//! Design in brief (each module opens with its own note):
//! - One [`Kernel`] owns every process, thread and scheme and runs them all on
//!   the calling host thread ([`sched`]): round-robin, preempted every
//!   `quantum` guest instructions, so a run is a pure function of the image,
//!   the arguments, stdin and the seed.
//! - Both system-call gates (`syscall`, `int 0x80`) and both ABIs (Redox, and the Linux
//!   personality, [`linux`]) enter one dispatcher ([`syscall`]), driven by one table row per
//!   call (`warden_abi::calls`): a call is first *decoded* into a [`syscall::Call`] that
//!   holds the number, the six arguments and the kernel's own copies of every pointer
//!   argument it reads; the policy ([`policy`]) filters it, the recording tap ([`record`])
//!   and supervisors ([`supervise`]) see it, and it executes on that copy only (seed 001:
//!   no time-of-check/time-of-use).
//! - Handlers return `Result<usize, SysError>`; one place turns errors into
//!   `-errno` ([`syscall::rax`]), parks blocked threads or leaves registers alone
//!   (exit, exec, sigreturn). What a call is and how it ends (`Call`, `SysResult`,
//!   `Block`, `WaitOn`) is a module of its own (`call`), so the parts the dispatcher uses
//!   (process table, policy, tap, supervision, I/O core) do not import the dispatcher back.
//! - [`Kernel`] is made of owners, each with its own note: the scheduler's state
//!   (`sched::Scheduler`: run queue, blocking order, reused buffers), the scheme namespace
//!   (`scheme::Namespace`: kernel, embedder and user-space schemes by name), supervision
//!   (`supervise::Supervision`), the Linux personality's state (`linux::LinuxState`), the
//!   processes and threads.
//! - What moving bytes through a descriptor means (blocking or EAGAIN, partial
//!   transfers, EPIPE and SIGPIPE) is decided once for both ABIs ([`io`]), over one
//!   descriptor layer ([`files`]); the personalities only translate their ABI's details.
//! - Resources are schemes ([`scheme`]): the root (`file:`) scheme is supplied
//!   by the embedder; `pipe:`, `debug:` (console), `time:` and `proc:` live
//!   here; more (`null:`, `zero:`, `rand:`) are added with
//!   [`Kernel::register_scheme`].
//! - Nothing a guest does may panic the host: guest values are checked, guest
//!   pointers are validated once at the boundary ([`usercopy`]).

mod call;
mod channel;
mod chaos;
pub mod console;
pub mod debug;
pub mod elf;
mod files;
mod io;
pub mod jobs;
pub mod linux;
mod mm;
pub mod pipe;
pub mod policy;
mod proc;
pub mod process;
pub mod record;
mod sched;
pub mod scheme;
pub mod signal;
pub mod supervise;
pub mod syscall;
pub mod testkit;
pub mod time;
mod usercopy;
pub mod vfs;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use warden_abi::Errno;

pub use console::{terminal_request, CaptureConsole, CapturedOutput, Console, ConsoleStream, HostConsole, TermArg};
pub use mm::MemTotal;
pub use scheme::{CallCtx, FileOps, FileRef, IoError, IoResult, Scheme, WaitKey};

use process::{Process, Thread};
use time::Clock;

/// A process or thread id. Processes and threads share one id space; a
/// process's id is the id of its first thread.
pub type Pid = u32;

/// Resource limits; exceeding one gives the guest a clear errno.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Live plus zombie processes (and threads) at once; `clone` fails with EAGAIN.
    pub max_processes: usize,
    /// Mapped guest memory per address space in bytes (image, heap, stack,
    /// maps); exceeding it gives ENOMEM.
    pub max_memory_per_process: u64,
    /// Descriptors per descriptor table; exceeding it gives EMFILE.
    pub max_fds: usize,
    /// Mapped guest memory of all address spaces together in bytes; a mapping
    /// (or a fork) that would pass it gives ENOMEM.
    pub max_memory_total: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_processes: 256, max_memory_per_process: 1 << 30, max_fds: 1024, max_memory_total: 4 << 30 }
    }
}

/// How a [`Kernel`] runs.
#[derive(Clone, Debug)]
pub struct KernelConfig {
    /// Seeds every source of randomness the guest sees (AT_RANDOM, ...). A nonzero seed
    /// also perturbs the schedule (varied slices, see `chaos.rs`).
    pub seed: u64,
    /// Guest instructions a thread runs before it is preempted.
    pub quantum: u64,
    /// Total guest instructions before the run ends with
    /// [`RunOutcome::BudgetExhausted`]; `None` is unlimited.
    pub instruction_budget: Option<u64>,
    /// Clocks and sleeps follow the host clock instead of the virtual clock
    /// (one nanosecond per retired guest instruction). Makes runs
    /// non-deterministic.
    pub real_time: bool,
    pub limits: Limits,
    /// The environment of init when `spawn_init` is given no `envp`
    /// (`KEY=VALUE` strings).
    pub env: Vec<Vec<u8>>,
    /// Size of each guest address space in bytes (a power-of-two multiple of
    /// the page size; addresses are `[0, address_space_size)`).
    pub address_space_size: u64,
    /// Size of the main thread's stack mapped at exec.
    pub stack_size: u64,
    /// Initial working directory of init (a `file:` path).
    pub cwd: Vec<u8>,
    /// User and group ids of init.
    pub uid: u32,
    pub gid: u32,
    /// The CPU every guest thread sees (`cpuid`, and which instructions exist).
    pub cpu: emu::CpuModel,
    /// Which tier runs hot guest code (the guest cannot tell).
    pub tier: emu::Tier,
    /// Each program's start-up runs in the interpreter: its space leaves its first block
    /// runs to it before the jit counts executions (`AddressSpace::warm_up_jit`). On for
    /// `warden run` and the other commands, where start-up is a user's wait; off by
    /// default, so that tests and fuzz targets translate short programs too.
    pub jit_warm_up: bool,
}

impl Default for KernelConfig {
    fn default() -> Self {
        KernelConfig {
            seed: 0,
            quantum: 100_000,
            instruction_budget: None,
            real_time: false,
            limits: Limits::default(),
            env: vec![b"PATH=/bin".to_vec()],
            address_space_size: 1 << 36,
            stack_size: 8 << 20,
            cwd: b"/".to_vec(),
            uid: 0,
            gid: 0,
            cpu: emu::CpuModel::default(),
            tier: emu::Tier::default(),
            jit_warm_up: false,
        }
    }
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunOutcome {
    /// Init exited with this status.
    Exited(u8),
    /// Init died of this signal.
    Signaled(u8),
    /// The instruction budget ran out.
    BudgetExhausted,
    /// Every thread is blocked and nothing can ever wake one.
    Deadlock,
    /// The embedder stopped the run (a replay diverged from its recording).
    Stopped,
}

impl RunOutcome {
    /// The process exit status the CLI reports: the guest's own status,
    /// 128+N for signal N, 124 for an exhausted budget and for a deadlock (a
    /// hang that would otherwise have timed out).
    pub fn exit_status(&self) -> i32 {
        match *self {
            RunOutcome::Exited(code) => code as i32,
            RunOutcome::Signaled(sig) => 128 + sig as i32,
            RunOutcome::BudgetExhausted | RunOutcome::Deadlock => 124,
            RunOutcome::Stopped => 125,
        }
    }
}

/// Why `spawn_init` failed.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum SpawnError {
    #[error("{path}: program not found")]
    NotFound { path: String },
    #[error("{path}: its interpreter {interp} was not found")]
    InterpreterNotFound { path: String, interp: String },
    #[error("{path}: cannot execute: {errno}")]
    NotExecutable { path: String, errno: Errno },
    #[error("{path}: {errno}")]
    Io { path: String, errno: Errno },
    #[error("init is already running")]
    AlreadySpawned,
    #[error("cannot create an address space: {0}")]
    Memory(String),
}

impl SpawnError {
    /// The exit status the CLI reports (127 not found, 126 not executable,
    /// 125 otherwise).
    pub fn exit_status(&self) -> i32 {
        match self {
            SpawnError::NotFound { .. } | SpawnError::InterpreterNotFound { .. } => 127,
            SpawnError::NotExecutable { .. } => 126,
            _ => 125,
        }
    }
}

/// Counters of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Guest instructions retired by all threads.
    pub instructions: u64,
    /// System calls entered (through either gate).
    pub syscalls: u64,
    /// Processes created (init included).
    pub processes: u64,
}

/// Where schemes and pipes report that something a blocked thread may wait
/// for has happened: they push the `WaitKey`, the scheduler wakes every
/// thread parked on it (which then retries its call).
#[derive(Clone, Default)]
pub struct Waker(Rc<RefCell<Vec<WaitKey>>>);

impl Waker {
    /// Wakes every thread parked on `key` (at the scheduler's next step).
    pub fn wake(&self, key: WaitKey) {
        self.0.borrow_mut().push(key);
    }

    /// Moves the keys woken so far into `out` (emptied first); the waker keeps `out`'s
    /// old buffer, so draining allocates nothing once both have grown.
    fn drain_into(&self, out: &mut Vec<WaitKey>) {
        out.clear();
        std::mem::swap(&mut *self.0.borrow_mut(), out);
    }
}

/// The guest kernel: every process, thread and scheme of one run.
pub struct Kernel {
    config: KernelConfig,
    /// Who serves each scheme name: the kernel's and the embedder's schemes, and user-space
    /// daemons ([`scheme::Namespace`]).
    ns: scheme::Namespace,
    console: console::SharedConsole,
    waker: Waker,
    clock: Rc<Clock>,
    rng: Rng,
    procs: BTreeMap<Pid, Process>,
    threads: BTreeMap<Pid, Thread>,
    next_id: Pid,
    next_object_id: u64,
    /// The run queue and what the trap path reuses ([`sched::Scheduler`]).
    sched: sched::Scheduler,
    outcome: Option<RunOutcome>,
    stats: Stats,
    /// The Linux personality's state ([`linux`]).
    linux: linux::LinuxState,
    /// Some process has a mask or jail ([`policy`]); until then the trap path skips it.
    policy_active: bool,
    /// Guest memory mapped by all address spaces (`Limits::max_memory_total`).
    mem_total: Rc<mm::MemTotal>,
    /// The address space of every zombie and of init until its first exec
    /// ([`Kernel::empty_mm`]), made once.
    empty_mm: Option<Rc<RefCell<mm::Mm>>>,
    /// Init's address space is left to the host process's exit when init exits
    /// ([`Kernel::leave_init_memory_to_exit`]), not released.
    leave_init_memory: bool,
    /// Supervisors and held calls ([`supervise`]).
    sup: supervise::Supervision,
    /// Sees every system call when recording or replaying ([`record`]).
    hook: record::Hook,
    /// Set by the embedder (from a signal handler, another thread or a failed host write)
    /// to end the run at the scheduler's next step ([`Kernel::set_stop_flag`]).
    stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    /// Told about every process a core-dumping signal kills ([`Kernel::on_fatal_signal`]).
    fatal_report: Option<FatalReport>,
    /// The thread and fault address of the last CPU fault raised as a signal (for the report).
    last_fault: Option<(Pid, Option<u64>)>,
    /// The debugger's state, when one is attached ([`debug`]).
    debug: Option<Box<debug::Debug>>,
    /// Channel calls waiting for their answers ([`channel`]).
    channels: channel::Channels,
}

/// The embedder's callback for [`Kernel::on_fatal_signal`].
pub type FatalReport = Box<dyn FnMut(&FatalSignal)>;

/// A guest process killed by a signal whose default action dumps core (SIGSEGV, SIGILL,
/// SIGFPE, SIGABRT, SIGBUS, SIGSYS, SIGTRAP, ...): what an embedder reports, as qemu-user's
/// "uncaught target signal" line does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FatalSignal {
    pub pid: Pid,
    /// The program's path as it was executed (`argv[0]` for a Redox program, the resolved
    /// path for a Linux one).
    pub program: String,
    pub signal: u8,
    /// Where the thread was: the faulting instruction for a CPU fault.
    pub rip: u64,
    /// The address a page fault touched.
    pub fault_addr: Option<u64>,
}

impl Kernel {
    /// A kernel with `root_scheme` as `file:` and `console` behind `debug:`
    /// (descriptors 0, 1 and 2 of init).
    pub fn new(config: KernelConfig, mut root_scheme: Box<dyn Scheme>, console: Box<dyn Console>) -> Kernel {
        let mut schemes: BTreeMap<Vec<u8>, Box<dyn Scheme>> = BTreeMap::new();
        let mem_total = Rc::new(mm::MemTotal::new(config.limits.max_memory_total));
        root_scheme.charge_memory_to(&mem_total);
        schemes.insert(b"file".to_vec(), root_scheme);
        let clock = Rc::new(Clock::new(config.real_time));
        let rng = Rng::new(config.seed);
        let chaos = chaos::Chaos::new(config.seed);
        let console: console::SharedConsole = Rc::new(RefCell::new(console));
        schemes.insert(b"debug".to_vec(), Box::new(console::DebugScheme { console: console.clone() }));
        schemes.insert(b"time".to_vec(), Box::new(time::TimeScheme { clock: clock.clone() }));
        let mut linux = linux::LinuxState::default();
        linux.tty.flag = console.borrow().signal_flag();
        Kernel {
            config,
            ns: scheme::Namespace::new(schemes),
            console,
            waker: Waker::default(),
            clock,
            rng,
            procs: BTreeMap::new(),
            threads: BTreeMap::new(),
            next_id: 1,
            next_object_id: 1,
            sched: sched::Scheduler::new(chaos),
            outcome: None,
            stats: Stats::default(),
            linux,
            policy_active: false,
            mem_total,
            empty_mm: None,
            leave_init_memory: false,
            sup: Default::default(),
            hook: record::Hook::None,
            stop: None,
            fatal_report: None,
            last_fault: None,
            debug: None,
            channels: Default::default(),
        }
    }

    /// Ends the run with [`RunOutcome::Stopped`] at the scheduler's next step once `flag` is
    /// set (checked between time slices, so within one quantum of guest instructions; a
    /// thread blocked on the host console sees it when the console returns
    /// `ErrorKind::Interrupted`). A stop lands where an instruction budget equal to the
    /// instructions retired so far would have ended the run.
    pub fn set_stop_flag(&mut self, flag: std::sync::Arc<std::sync::atomic::AtomicBool>) {
        self.stop = Some(flag);
    }

    /// Calls `report` whenever a core-dumping signal kills a guest process.
    pub fn on_fatal_signal(&mut self, report: FatalReport) {
        self.fatal_report = Some(report);
    }

    /// Adds (or replaces) the scheme `name:` (e.g. `null`, `zero`, `rand`).
    /// The kernel's own `pipe`, `debug`, `time` and `proc` cannot be replaced.
    pub fn register_scheme(&mut self, name: &str, scheme: Box<dyn Scheme>) {
        if !matches!(name, "pipe" | "debug" | "time" | "proc") {
            self.ns.schemes.insert(name.as_bytes().to_vec(), scheme);
        }
    }

    /// The handle schemes use to wake threads parked on their `WaitKey`s.
    pub fn waker(&self) -> Waker {
        self.waker.clone()
    }

    /// Leaves the address space init exits with to the host process's exit instead of
    /// releasing it: for a host process that ends right after the run (`warden run`),
    /// where resetting the reservation for reuse, dropping its decoded and translated code
    /// and unmapping it are work the exit does anyway (about 0.2 ms of a 4 ms `warden run`
    /// of a static program). Called before the run; nothing else is skipped (files, pipes
    /// and the console are still closed when the kernel is dropped), and without it the
    /// count of mapped memory returns to zero at init's exit.
    pub fn leave_init_memory_to_exit(&mut self) {
        self.leave_init_memory = true;
    }

    /// Counters of the run so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Guest memory mapped by all address spaces now, in bytes (what
    /// `Limits::max_memory_total` caps).
    pub fn mapped_memory(&self) -> u64 {
        self.mem_total.used()
    }

    /// Guest instructions retired so far by all threads.
    pub fn instructions(&self) -> u64 {
        self.stats.instructions
    }

    /// The configuration the kernel runs with.
    pub fn config(&self) -> &KernelConfig {
        &self.config
    }

    fn alloc_id(&mut self) -> Pid {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        id
    }

    fn alloc_object_id(&mut self) -> u64 {
        let id = self.next_object_id;
        self.next_object_id += 1;
        id
    }
}

/// The kernel's deterministic random source (splitmix64), seeded by the config.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5741_5244_454e_0001)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

#[cfg(test)]
mod tests;

/// `text` with its control characters escaped (`\n`, `\r`, `\u{1b}`): a message quoting
/// untrusted bytes (a file name, a policy value) stays one line and cannot move a terminal's
/// cursor.
pub fn escape_controls(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() { c.escape_default().collect() } else { vec![c] };
            escaped
        })
        .collect()
}
