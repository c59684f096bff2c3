//! `warden` as a library: everything the command line does, callable from
//! tests and tools. The CLI (`main.rs`) only parses arguments, calls
//! [`run`], and turns the result into an exit status.
//!
//! Exit statuses (PRODUCT.md): the guest's own status; 128+N when it died of
//! signal N; 124 when the instruction budget ran out; 125 when warden itself
//! failed (bad arguments, unreadable or malformed image); 126 when the program
//! exists but cannot be executed; 127 when it does not exist.

pub mod gdb;
pub mod host;
pub mod policy;

use std::path::{Path, PathBuf};

pub mod record;
pub mod testfmt;
pub mod testrun;
pub mod trace;

use guest_kernel::scheme::basic::{NullScheme, RandScheme, ZeroScheme};
use guest_kernel::vfs::Vfs;
use guest_kernel::{Console, Kernel, KernelConfig, Limits, RunOutcome, SpawnError};

/// The default guest image (guest programs and an /etc/rc demo), embedded.
pub static DEFAULT_IMAGE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/default-image.tar"));

/// Exit status for a failure of warden itself.
pub const EXIT_WARDEN_FAILED: i32 = 125;
/// Exit status when the instruction budget ran out.
pub const EXIT_BUDGET: i32 = 124;

/// Where the guest's root file system comes from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Root {
    /// The image embedded in the binary.
    #[default]
    Default,
    /// A tar archive on the host.
    Image(PathBuf),
    /// A host directory, read-only to the guest.
    Dir(PathBuf),
}

/// Everything `warden run` takes.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub root: Root,
    /// `KEY=VALUE` pairs; empty means the default environment (PATH=/bin).
    pub env: Vec<String>,
    /// The program (a guest path, or a name looked up in /bin); `None` runs /bin/init.
    pub program: Option<String>,
    /// Arguments after the program (argv[1..]).
    pub args: Vec<String>,
    pub budget: Option<u64>,
    pub seed: u64,
    pub quantum: u64,
    pub real_time: bool,
    pub limits: Limits,
    /// Forces the personality of the program started (`None`: decided from
    /// the ELF file, see `guest_kernel::linux`).
    pub personality: Option<guest_kernel::linux::Personality>,
    /// The CPU the guest sees (`--cpu`).
    pub cpu: emu::CpuModel,
    /// Which tier runs hot guest code (`--tier`).
    pub tier: emu::Tier,
    /// `--policy FILE`: a mask and jail for the whole guest ([`policy`]).
    pub policy: Option<PathBuf>,
    /// Keep the guest's writable layer in this host directory (`--overlay DIR`): what the
    /// guest writes survives the run, and a later run with the same directory sees it.
    pub overlay: Option<PathBuf>,
    /// Trace system calls through the host supervisor ([`trace`]).
    pub trace: Option<trace::TraceConfig>,
    /// Bytes of guest address space per process (`None`: the kernel's default, 64 GiB).
    /// Smaller spaces let tools that cap mappings, such as valgrind, run a guest.
    pub address_space_size: Option<u64>,
    /// The stop flag and the first failed host write of this run ([`host::Border`]).
    pub border: host::Border,
    /// Print one line on stderr when a core-dumping signal kills a guest process, as
    /// qemu-user does (the CLI's default; `--quiet` turns it off).
    pub report_fatal_signals: bool,
    /// The host process ends right after the run (`warden run`): the memory init exited
    /// with is left to the process exit ([`guest_kernel::Kernel::leave_init_memory_to_exit`]).
    pub exit_after_run: bool,
    /// Each program's start-up runs in the interpreter (`KernelConfig::jit_warm_up`): on
    /// for the commands, off by default (tests translate short programs too).
    pub jit_warm_up: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            root: Root::Default,
            env: Vec::new(),
            program: None,
            args: Vec::new(),
            budget: None,
            seed: 0,
            quantum: KernelConfig::default().quantum,
            real_time: false,
            limits: Limits::default(),
            personality: None,
            cpu: emu::CpuModel::default(),
            tier: emu::Tier::default(),
            policy: None,
            overlay: None,
            trace: None,
            address_space_size: None,
            border: host::Border::default(),
            report_fatal_signals: false,
            exit_after_run: false,
            jit_warm_up: false,
        }
    }
}

/// A failure of warden itself, or of starting the program.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The root file system or the overlay cannot be used (the message names the option,
    /// the path and what to do).
    #[error("{0}")]
    Root(String),
    #[error("bad --env value {0:?}: expected KEY=VALUE")]
    BadEnv(String),
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    #[error("{0}")]
    Policy(String),
    /// The `--gdb` connection failed.
    #[error("{0}")]
    Gdb(String),
    #[error("{0}")]
    Output(host::OutputFailure),
    #[error("{0} (the guest's changes kept there are incomplete)")]
    OverlayWrite(String),
    #[error("--cpu {0}: this host CPU lacks instructions that model needs (emu runs SIMD floating point on the host); choose a lower --cpu")]
    Cpu(emu::CpuModel),
}

impl RunError {
    /// The exit status this failure maps to.
    pub fn exit_status(&self) -> i32 {
        match self {
            RunError::Spawn(e) => e.exit_status(),
            RunError::Output(f) if f.broken_pipe() => host::EXIT_BROKEN_PIPE,
            _ => EXIT_WARDEN_FAILED,
        }
    }
}

/// Opens the root file system.
pub fn open_root(root: &Root) -> Result<Vfs, RunError> {
    match root {
        Root::Default => {
            Vfs::from_tar_static(DEFAULT_IMAGE).map_err(|e| RunError::Root(format!("embedded image: {e}")))
        }
        Root::Image(p) => {
            if p.is_dir() {
                return Err(RunError::Root(format!(
                    "--image {0}: is a directory; use --root {0}, or make an image of it with `tar -cf image.tar -C {0} .`",
                    p.display()
                )));
            }
            Vfs::from_tar_file(p).map_err(|e| root_error("--image", p, e))
        }
        Root::Dir(p) => Vfs::from_host_dir(p).map_err(|e| root_error("--root", p, e)),
    }
}

/// One line for a root that cannot be opened: the option, the path, what went wrong and what
/// to do.
fn root_error(option: &str, path: &Path, e: guest_kernel::vfs::ImageError) -> RunError {
    use guest_kernel::vfs::ImageError;
    let p = path.display();
    RunError::Root(match e {
        ImageError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            format!("{option} {p}: no such file or directory")
        }
        ImageError::Io { source, .. } => format!("{option} {p}: {}", host::describe_io_error(&source)),
        ImageError::NotADirectory { .. } => {
            format!("{option} {p}: not a directory (for a tar archive use --image {p})")
        }
        other => format!("{option} {p}: {other} (an image is a plain tar archive, e.g. `tar -cf image.tar -C DIR .`)"),
    })
}

/// Attaches the `--overlay` directory (created if missing).
pub fn attach_overlay(vfs: &Vfs, dir: &Path) -> Result<(), RunError> {
    use guest_kernel::vfs::ImageError;
    let d = dir.display();
    if dir.exists() && !dir.is_dir() {
        return Err(RunError::Root(format!(
            "--overlay {d}: not a directory (give a directory; it is created if missing)"
        )));
    }
    vfs.attach_overlay(dir).map_err(|e| {
        RunError::Root(match e {
            ImageError::Io { source, .. } => format!("--overlay {d}: {}", host::describe_io_error(&source)),
            other => format!("--overlay {d}: {other}"),
        })
    })
}

/// The guest working directory: with a host root that contains the host's
/// current directory, the same place inside the guest (so `--root / ./prog`
/// works as in a shell); otherwise `/`.
pub fn initial_cwd(root: &Root) -> Vec<u8> {
    if let Root::Dir(dir) = root {
        if let (Ok(dir), Ok(cwd)) = (dir.canonicalize(), std::env::current_dir()) {
            if let Ok(rel) = cwd.strip_prefix(&dir) {
                let mut p = b"/".to_vec();
                p.extend_from_slice(rel.to_string_lossy().as_bytes());
                return p;
            }
        }
    }
    b"/".to_vec()
}

/// qemu-user's habit: `warden run ./hello` with the default image, where the image has no
/// such path but the host has that file, runs it with `--root /` (the guest then sees the
/// host's file system, read-only, as `qemu-x86_64 ./hello` would).
pub fn run_host_program_on_host_root(opts: &mut RunOptions) {
    let Some(program) = opts.program.as_deref() else { return };
    if opts.root != Root::Default || !program.contains('/') || !Path::new(program).is_file() {
        return;
    }
    let in_image = Vfs::from_tar_static(DEFAULT_IMAGE).is_ok_and(|vfs| {
        let mut path = b"/".to_vec();
        path.extend_from_slice(program.as_bytes());
        vfs.stat_path(&path).is_ok()
    });
    if !in_image {
        opts.root = Root::Dir(PathBuf::from("/"));
    }
}

/// A host program `name` would run as (found on the host's PATH), for hints.
fn host_program(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        return Path::new(name).is_file().then(|| PathBuf::from(name));
    }
    std::env::split_paths(&std::env::var_os("PATH")?).map(|dir| dir.join(name)).find(|p| p.is_file())
}

/// The one line for `e`, with what to do where warden can tell (a program the guest lacks
/// but the host has).
pub fn explain(e: &RunError, opts: &RunOptions) -> String {
    let RunError::Spawn(SpawnError::NotFound { path }) = e else {
        return e.to_string();
    };
    let program = opts.program.as_deref().unwrap_or(path);
    let place = match &opts.root {
        Root::Default => "the default image".to_string(),
        Root::Image(f) => format!("the image {}", f.display()),
        Root::Dir(d) => format!("--root {}", d.display()),
    };
    match host_program(program) {
        Some(host) if opts.root != Root::Dir(PathBuf::from("/")) => format!(
            "{program}: program not found in {place}; the host has {0}: run it with `warden run --root / {0}`",
            host.display()
        ),
        _ if program.contains('/') => format!("{program}: program not found in {place}"),
        _ => format!("{program}: program not found in {place} (a bare name is looked up in the guest's /bin)"),
    }
}

/// Resolves the program: a path is used as given; a bare name is looked up
/// in the guest's /bin (as a shell would with PATH=/bin).
fn resolve_program(vfs: &Vfs, program: &str) -> String {
    if program.contains('/') {
        return program.to_string();
    }
    let candidate = format!("/bin/{program}");
    if vfs.stat_path(candidate.as_bytes()).is_ok() {
        candidate
    } else {
        program.to_string()
    }
}

/// Builds a kernel for `opts` with `console`, and starts the program.
pub fn boot(opts: &RunOptions, console: Box<dyn Console>) -> Result<Kernel, RunError> {
    boot_parts(opts, console).map(|(kernel, _)| kernel)
}

/// Like [`boot`], also handing back (a handle to) the root file system, with the
/// `--overlay` directory attached if one was asked for.
pub fn boot_parts(opts: &RunOptions, console: Box<dyn Console>) -> Result<(Kernel, Vfs), RunError> {
    let vfs = open_root(&opts.root)?;
    if let Some(dir) = &opts.overlay {
        attach_overlay(&vfs, dir)?;
    }
    let kernel = boot_with_vfs(opts, vfs.clone(), console)?;
    Ok((kernel, vfs))
}

/// [`boot`] on a root file system the caller opened (and perhaps added files to).
pub fn boot_with_vfs(opts: &RunOptions, vfs: Vfs, console: Box<dyn Console>) -> Result<Kernel, RunError> {
    let cwd = initial_cwd(&opts.root);
    boot_in(opts, vfs, console, cwd)
}

/// [`boot_with_vfs`] with the guest working directory given (a replay uses the recorded one).
pub fn boot_in(opts: &RunOptions, vfs: Vfs, console: Box<dyn Console>, cwd: Vec<u8>) -> Result<Kernel, RunError> {
    let policy = opts.policy.as_deref().map(policy::load).transpose().map_err(RunError::Policy)?;
    boot_with_policy(opts, vfs, console, cwd, policy)
}

/// [`boot_in`] with the policy already parsed (`opts.policy` is not read): a replay uses
/// the policy text the trace carries.
pub fn boot_with_policy(
    opts: &RunOptions,
    vfs: Vfs,
    console: Box<dyn Console>,
    cwd: Vec<u8>,
    policy: Option<guest_kernel::policy::PolicySpec>,
) -> Result<Kernel, RunError> {
    boot_root(opts, &vfs, Box::new(vfs.clone()), console, cwd, policy)
}

/// [`boot_with_policy`] with the kernel's root scheme given: `vfs` itself, or a scheme
/// around it (recording notes which files the guest uses); `vfs` is where the program is
/// looked up.
pub fn boot_root(
    opts: &RunOptions,
    vfs: &Vfs,
    root: Box<dyn guest_kernel::Scheme>,
    console: Box<dyn Console>,
    cwd: Vec<u8>,
    policy: Option<guest_kernel::policy::PolicySpec>,
) -> Result<Kernel, RunError> {
    for kv in &opts.env {
        if !kv.contains('=') || kv.starts_with('=') {
            return Err(RunError::BadEnv(kv.clone()));
        }
    }
    if !opts.cpu.host_supports() {
        return Err(RunError::Cpu(opts.cpu));
    }
    let mut config = KernelConfig {
        cpu: opts.cpu,
        tier: opts.tier,
        jit_warm_up: opts.jit_warm_up,
        seed: opts.seed,
        quantum: opts.quantum.max(1),
        instruction_budget: opts.budget,
        real_time: opts.real_time,
        limits: opts.limits.clone(),
        cwd,
        ..KernelConfig::default()
    };
    if let Some(size) = opts.address_space_size {
        config.address_space_size = size;
    }
    if !opts.env.is_empty() {
        config.env = opts.env.iter().map(|s| s.as_bytes().to_vec()).collect();
    }
    let program = match &opts.program {
        // In a jail the program is looked up inside it (by the kernel).
        Some(p) if policy.as_ref().is_some_and(|s| s.jail.is_some()) && !p.contains('/') => format!("/bin/{p}"),
        Some(p) => resolve_program(vfs, p),
        None => "/bin/init".to_string(),
    };
    let env_count = config.env.len();
    let mut kernel = Kernel::new(config, root, console);
    kernel.register_scheme("null", Box::new(NullScheme));
    kernel.register_scheme("zero", Box::new(ZeroScheme));
    kernel.register_scheme("rand", Box::new(RandScheme::new(opts.seed)));
    let argv0 = opts.program.clone().unwrap_or_else(|| program.clone());
    let mut argv: Vec<&str> = vec![&argv0];
    argv.extend(opts.args.iter().map(String::as_str));
    kernel.set_personality_override(opts.personality);
    let init = match &policy {
        Some(spec) => kernel.spawn_init_restricted(&program, &argv, &[], spec)?,
        None => kernel.spawn_init(&program, &argv, &[])?,
    };
    if let Some(cfg) = &opts.trace {
        use guest_kernel::supervise::HostAttach;
        // `-p PID` may name any process of the run: watch them all, show that one.
        let all = cfg.follow || cfg.only_pid.is_some();
        let attach = if all { HostAttach::All } else { HostAttach::Chosen { follow: false } };
        let mut tracer = trace::Tracer::new(cfg.clone(), opts.border.clone()).map_err(RunError::Output)?;
        tracer.first_exec(init, &program, &argv, env_count);
        kernel.set_host_supervisor(Box::new(tracer), attach);
        kernel.host_attach(init);
    }
    kernel.set_stop_flag(opts.border.stop_flag());
    if opts.report_fatal_signals {
        kernel.on_fatal_signal(Box::new(|f| host::warn(fatal_signal_line(f))));
    }
    Ok(kernel)
}

/// strsignal()'s text for the signals that dump core.
fn signal_description(sig: usize) -> &'static str {
    use warden_abi::*;
    match sig {
        SIGQUIT => "Quit",
        SIGILL => "Illegal instruction",
        SIGTRAP => "Trace/breakpoint trap",
        SIGABRT => "Aborted",
        SIGBUS => "Bus error",
        SIGFPE => "Floating point exception",
        SIGSEGV => "Segmentation fault",
        SIGXCPU => "CPU time limit exceeded",
        SIGXFSZ => "File size limit exceeded",
        SIGSYS => "Bad system call",
        _ => "killed",
    }
}

/// The line for a guest process a core-dumping signal killed, after qemu-user's "uncaught
/// target signal": `guest /bin/crash (pid 3) killed by SIGSEGV at 0x401234 (Segmentation
/// fault; address 0x10)`.
pub fn fatal_signal_line(f: &guest_kernel::FatalSignal) -> String {
    let sig = usize::from(f.signal);
    let name = warden_abi::signal_name(sig).map_or_else(|| format!("signal {sig}"), |n| format!("SIG{n}"));
    let what = signal_description(sig);
    let addr = f.fault_addr.map(|a| format!("; address {a:#x}")).unwrap_or_default();
    format!("guest {} (pid {}) killed by {name} at {:#x} ({what}{addr})", f.program, f.pid, f.rip)
}

/// Runs a program to completion.
pub fn run(opts: &RunOptions, console: Box<dyn Console>) -> Result<RunOutcome, RunError> {
    let mut kernel = boot(opts, console)?;
    let outcome = kernel.run();
    kernel.finish_host_supervisor();
    Ok(outcome)
}

/// Runs a program to completion and says, one line each, why a run stopped early or what
/// went wrong on the host side (an overlay write that could not be kept): what the CLI
/// prints on stderr after the guest's own output.
pub fn run_with_notes(opts: &RunOptions, console: Box<dyn Console>) -> Result<(RunOutcome, Vec<String>), RunError> {
    let (mut kernel, vfs) = boot_parts(opts, console)?;
    if opts.exit_after_run {
        kernel.leave_init_memory_to_exit();
    }
    let outcome = kernel.run();
    kernel.finish_host_supervisor();
    if let Some(failure) = opts.border.take_failure() {
        return Err(RunError::Output(failure));
    }
    if let Some(e) = vfs.overlay_error() {
        return Err(RunError::OverlayWrite(e));
    }
    let mut notes = Vec::new();
    match outcome {
        RunOutcome::BudgetExhausted => notes.push(format!(
            "stopped: the instruction budget ran out ({} guest instructions)",
            kernel.stats().instructions
        )),
        RunOutcome::Deadlock => {
            notes.push("stopped: deadlock: every guest thread is blocked and nothing can wake one".to_string())
        }
        RunOutcome::Exited(_) | RunOutcome::Signaled(_) | RunOutcome::Stopped => {}
    }
    Ok((outcome, notes))
}
