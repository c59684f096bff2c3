//! `warden` as a library: everything the command line does, callable from
//! tests and tools. The CLI (`main.rs`) only parses arguments, calls
//! [`run`], and turns the result into an exit status.
//!
//! Exit statuses (PRODUCT.md): the guest's own status; 128+N when it died of
//! signal N; 124 when the instruction budget ran out; 125 when warden itself
//! failed (bad arguments, unreadable or malformed image); 126 when the program
//! exists but cannot be executed; 127 when it does not exist.

pub mod policy;

use std::path::{Path, PathBuf};

pub mod record;
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
            policy: None,
            overlay: None,
            trace: None,
            address_space_size: None,
        }
    }
}

/// A failure of warden itself, or of starting the program.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot load image {path}: {source}")]
    Image { path: String, source: guest_kernel::vfs::ImageError },
    #[error("cannot use overlay {path}: {source}")]
    Overlay { path: String, source: guest_kernel::vfs::ImageError },
    #[error("bad --env value {0:?}: expected KEY=VALUE")]
    BadEnv(String),
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    #[error("{0}")]
    Policy(String),
    #[error("cannot write the trace: {0}")]
    Trace(std::io::Error),
    #[error("--cpu {0}: this host CPU lacks instructions that model needs (emu runs SIMD floating point on the host); choose a lower --cpu")]
    Cpu(emu::CpuModel),
}

impl RunError {
    /// The exit status this failure maps to.
    pub fn exit_status(&self) -> i32 {
        match self {
            RunError::Spawn(e) => e.exit_status(),
            _ => EXIT_WARDEN_FAILED,
        }
    }
}

/// Opens the root file system.
pub fn open_root(root: &Root) -> Result<Vfs, RunError> {
    let image_err = |path: &Path, source| RunError::Image { path: path.display().to_string(), source };
    match root {
        Root::Default => Vfs::from_tar_static(DEFAULT_IMAGE).map_err(|e| image_err(Path::new("(embedded)"), e)),
        Root::Image(p) => Vfs::from_tar_file(p).map_err(|e| image_err(p, e)),
        Root::Dir(p) => Vfs::from_host_dir(p).map_err(|e| image_err(p, e)),
    }
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
        vfs.attach_overlay(dir).map_err(|source| RunError::Overlay { path: dir.display().to_string(), source })?;
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
        Some(p) => resolve_program(&vfs, p),
        None => "/bin/init".to_string(),
    };
    let mut kernel = Kernel::new(config, Box::new(vfs), console);
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
        let attach = if cfg.follow { HostAttach::All } else { HostAttach::Chosen { follow: false } };
        let tracer = trace::Tracer::new(cfg.clone()).map_err(RunError::Trace)?;
        kernel.set_host_supervisor(Box::new(tracer), attach);
        kernel.host_attach(init);
    }
    Ok(kernel)
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
    let outcome = kernel.run();
    kernel.finish_host_supervisor();
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
    if let Some(e) = vfs.overlay_error() {
        notes.push(format!("warning: {e}"));
    }
    Ok((outcome, notes))
}
