//! The `warden` command line. Parsing only: the work is in the library.

mod wtest_cli;

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use guest_kernel::Limits;
use warden::host::{self, warn, Border, HostConsole};
use warden::{Root, RunOptions, EXIT_WARDEN_FAILED};

/// Warden: an x86-64 emulator hosting a supervised Redox-style guest OS.
///
/// Exit status: the guest's own; 128+N if it died of signal N; 124 when the
/// instruction budget ran out; 125 when warden itself failed; 126 when the
/// program is not executable; 127 when it was not found.
#[derive(Parser, Debug)]
#[command(name = "warden", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Boot a guest and run a program in it (default: the root's /bin/init).
    ///
    /// Options come before PROGRAM; everything after it goes to the guest
    /// unchanged. Guest stdin, stdout and stderr are warden's own.
    Run(TracedRunArgs),
    /// Run a program with every system call traced, strace style (like `run --trace`).
    ///
    /// Lines are `pid name(args) = result` on stderr (or `-o FILE`); children are
    /// followed. Run options and trace options come before PROGRAM.
    Trace(TracedRunArgs),
    /// Run guest test programs, each in a fresh guest, in parallel: one line per test,
    /// then `N passed, N failed`; exit status 1 if any failed.
    Test(wtest_cli::TestArgs),
    /// Run a program like `run` while writing a trace that `warden replay` reproduces exactly.
    Record(wtest_cli::RecordArgs),
    /// Replay a trace: same output bytes and exit status, without reading host input; stops
    /// with status 125 at the first divergence.
    Replay(wtest_cli::ReplayArgs),
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Root file system from a tar archive (e.g. made with `tar -cf`) instead
    /// of the embedded default image. Guest writes go to memory, never to FILE.
    #[arg(long, value_name = "FILE", conflicts_with = "root")]
    image: Option<PathBuf>,

    /// Root file system from a host directory, read-only to the guest (writes
    /// go to an in-memory layer). No path, `..` or symlink leads outside it.
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,

    /// Set a guest environment variable (repeatable). Without any, the guest
    /// gets PATH=/bin.
    #[arg(long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,

    /// Stop after this many guest instructions (all processes together) with
    /// exit status 124.
    #[arg(long, value_name = "N")]
    budget: Option<u64>,

    /// Seed for everything random the guest sees (rand:, AT_RANDOM); a nonzero seed also
    /// perturbs the preemption points (a different, still deterministic, interleaving).
    #[arg(long, value_name = "N", default_value_t = 0)]
    seed: u64,

    /// Keep the guest's writable layer in the host directory DIR (created if missing):
    /// files the guest creates, changes or removes are written through to DIR as it goes
    /// (removals as `.wh.NAME` whiteouts), so they survive a crash of the guest or of
    /// warden, and a later run with the same DIR sees them. Nothing is written outside DIR.
    #[arg(long, value_name = "DIR")]
    overlay: Option<PathBuf>,

    /// Guest instructions a thread runs before the scheduler preempts it.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    quantum: u64,

    /// Clocks follow the host's real time instead of the deterministic
    /// virtual clock (one nanosecond per guest instruction).
    #[arg(long)]
    real_time: bool,

    /// Most processes and threads alive at once.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_processes)]
    max_procs: usize,

    /// Most guest memory per process, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = Limits::default().max_memory_per_process >> 20)]
    max_mem: u64,

    /// Most guest memory of all processes together, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = Limits::default().max_memory_total >> 20)]
    max_mem_total: u64,

    /// Most open file descriptors per process.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_fds)]
    max_fds: usize,

    /// The system-call ABI of the program started: `linux` or `redox`.
    /// Without it each exec decides from the ELF file: a "Redox" note means
    /// Redox; ELFOSABI_GNU, a "GNU" note or a PT_GNU_STACK header means Linux;
    /// anything else is Redox.
    #[arg(long, value_name = "ABI")]
    personality: Option<guest_kernel::linux::Personality>,

    /// The CPU the guest sees: `v2` (x86-64-v2, as an Intel Core i7 920: SSE4.2,
    /// POPCNT, MMX) or `v1` (the x86-64 baseline: SSE2, MMX, as a Pentium 4 with SSE3
    /// masked). `cpuid` reports that CPU, and instructions it lacks are invalid (SIGILL),
    /// as on it.
    #[arg(long, value_name = "MODEL", default_value_t = emu::CpuModel::default())]
    cpu: emu::CpuModel,

    /// What runs hot guest code: `jit` (translated to host code) or `interp` (the
    /// interpreter alone). The guest cannot tell them apart: counts, faults, `--budget`,
    /// `--seed` schedules and recordings are the same.
    #[arg(long, value_name = "TIER", default_value_t = emu::Tier::default())]
    tier: emu::Tier,

    /// Run the guest under a system-call mask and/or in a jail described by a TOML
    /// file (see examples/policy.toml): `allow`/`deny` lists of call names, classes
    /// (P, F, C, J) or groups, `jail = "/dir"`, `mode = "errno" | "kill"`, and
    /// `schemes = true` to let the jail's processes serve schemes from user space
    /// (JAIL_SCHEMES: create `NAME:` as ramfsd does, use those served inside the jail).
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,

    /// Do not print a line when a core-dumping signal (SIGSEGV, SIGILL, ...) kills a guest
    /// process (printed by default, like qemu-user's "uncaught target signal").
    #[arg(long, short = 'q')]
    quiet: bool,

    /// Write /tmp/perf-PID.map (PID: this warden process), naming each block the jit
    /// translates by its guest address, so that `perf report` on a `perf record` of the
    /// run shows which guest code the samples in translated code ran (as qemu-user's
    /// `-perfmap`): `perf record warden run --perf-map PROG`, then `perf report --sort sym`.
    #[arg(long)]
    perf_map: bool,

    /// The program to run (a guest path, or a name found in /bin), then its arguments.
    /// With the default image, a path the image lacks but the host has (`./hello`) runs with
    /// `--root /`, as `qemu-x86_64 ./hello` would run it.
    #[arg(value_name = "PROGRAM", trailing_var_arg = true)]
    command: Vec<String>,
}

/// `run` and `trace`: the run options plus the trace options.
#[derive(Args, Debug)]
struct TracedRunArgs {
    /// Wait for gdb on ADDR (HOST:PORT, or a Unix socket path) before the first guest
    /// instruction, and let it debug the program (`target remote ADDR` in gdb).
    #[arg(long, value_name = "ADDR")]
    gdb: Option<String>,
    /// With --gdb: debug this guest process instead of the program started (the run
    /// goes on until it exists; `monitor pids` in gdb lists them).
    #[arg(long, value_name = "PID", requires = "gdb")]
    gdb_pid: Option<u32>,
    #[command(flatten)]
    trace: warden::trace::TraceArgs,
    #[command(flatten)]
    run: RunArgs,
}

impl TracedRunArgs {
    fn options(self, force_trace: bool) -> Result<RunOptions, String> {
        let trace = self.trace.config(force_trace)?;
        Ok(RunOptions { trace, ..self.run.options() })
    }
}

impl RunArgs {
    fn options(self) -> RunOptions {
        let report_fatal_signals = !self.quiet;
        let root = match (self.image, self.root) {
            (Some(f), _) => Root::Image(f),
            (None, Some(d)) => Root::Dir(d),
            (None, None) => Root::Default,
        };
        let mut command = self.command.into_iter();
        RunOptions {
            root,
            env: self.env,
            program: command.next(),
            args: command.collect(),
            budget: self.budget,
            seed: self.seed,
            quantum: self.quantum,
            real_time: self.real_time,
            overlay: self.overlay,
            personality: self.personality,
            cpu: self.cpu,
            tier: self.tier,
            limits: Limits {
                max_processes: self.max_procs,
                max_memory_per_process: self.max_mem.saturating_mul(1 << 20),
                max_fds: self.max_fds,
                max_memory_total: self.max_mem_total.saturating_mul(1 << 20),
            },
            policy: self.policy,
            report_fatal_signals,
            jit_warm_up: true,
            ..RunOptions::default()
        }
    }
}

/// `warden run` and `warden trace`: boot, run, map the outcome to a status.
fn run_command(args: TracedRunArgs, force_trace: bool) -> i32 {
    let (gdb, gdb_pid) = (args.gdb.clone(), args.gdb_pid);
    if args.run.perf_map {
        let path = format!("/tmp/perf-{}.map", std::process::id());
        // Not through a symbolic link someone left at that name in /tmp.
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path);
        match file {
            Ok(file) => emu::write_perf_map(Some(Box::new(std::io::BufWriter::new(file)))),
            Err(e) => {
                warn(format!("--perf-map: cannot create {path}: {e}"));
                return EXIT_WARDEN_FAILED;
            }
        }
    }
    let mut opts = match args.options(force_trace) {
        Ok(opts) => opts,
        Err(e) => {
            warn(e);
            return EXIT_WARDEN_FAILED;
        }
    };
    warden::run_host_program_on_host_root(&mut opts);
    // This process ends with the run: init's memory is left to the exit.
    opts.exit_after_run = true;
    opts.border = Border::interruptible();
    let console = Box::new(HostConsole::interactive(&opts.border));
    let result = run_guarded(|| match gdb.as_deref() {
        Some(addr) => warden::gdb::run(&opts, console, addr, gdb_pid).map(|outcome| (outcome, Vec::new())),
        None => warden::run_with_notes(&opts, console),
    });
    if let Some(sig) = host::interrupted_by() {
        // Ctrl-C (or SIGTERM): the trace is complete up to here; die as the signal would.
        host::die_of(sig);
    }
    match result {
        Ok((outcome, notes)) => {
            for note in notes {
                warn(note);
            }
            outcome.exit_status()
        }
        Err(e) => {
            warn(warden::explain(&e, &opts));
            e.exit_status()
        }
    }
}

/// Runs `f`; a panic (a bug in warden: nothing a guest does should cause one) becomes one
/// line on stderr and exit status 125 instead of a crash, after the guest's output so far.
fn run_guarded<T>(f: impl FnOnce() -> T) -> T {
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        warn(format!("internal error (a bug in warden){at}: {msg}"));
    }));
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(_) => std::process::exit(EXIT_WARDEN_FAILED),
    }
}

/// The subcommands, for telling `warden ./hello` (qemu's habit) from `warden run ...`.
const SUBCOMMANDS: &[&str] = &["run", "trace", "test", "record", "replay", "help"];

/// `warden PROGRAM ...` means `warden run PROGRAM ...` when PROGRAM is a path (it contains
/// a `/`) or names a host file: `qemu-x86_64 ./hello` becomes `warden ./hello`.
fn qemu_style(mut args: Vec<OsString>) -> Vec<OsString> {
    if let Some(first) = args.get(1).and_then(|a| a.to_str()) {
        let program_like = !first.starts_with('-')
            && !SUBCOMMANDS.contains(&first)
            && (first.contains('/') || std::path::Path::new(first).is_file());
        if program_like {
            args.insert(1, "run".into());
        }
    }
    args
}

/// Runs before Rust's runtime (which replaces a closed descriptor 0, 1 or 2 by /dev/null):
/// notes which were closed, so the guest sees them closed too.
extern "C" fn note_closed_std_fds() {
    let mut mask = 0;
    for fd in 0..3 {
        // SAFETY: F_GETFD only queries the descriptor's flags.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
            mask |= 1 << fd;
        }
    }
    host::set_closed_at_start(mask);
}

#[used]
#[link_section = ".init_array"]
static NOTE_CLOSED_STD_FDS: extern "C" fn() = note_closed_std_fds;

fn main() -> ExitCode {
    let cli = match Cli::try_parse_from(qemu_style(std::env::args_os().collect())) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            let code = if e.use_stderr() { EXIT_WARDEN_FAILED } else { 0 };
            return ExitCode::from(code as u8);
        }
    };
    let status = match cli.command {
        Command::Run(args) => run_command(args, false),
        Command::Trace(args) => run_command(args, true),
        Command::Test(args) => args.run(),
        Command::Record(args) => args.run(),
        Command::Replay(args) => args.run(),
    };
    let _ = std::io::stdout().flush();
    exit_status(status)
}

fn exit_status(status: i32) -> ExitCode {
    ExitCode::from(status.clamp(0, 255) as u8)
}
