//! Processes: spawning programs ([`Command`]), waiting for them ([`Child`], [`ExitStatus`])
//! and exiting.
//!
//! Design: `spawn` is fork + exec, Redox style: the parent prepares everything (argv and
//! environment bytes, pipes, `null:`), calls `clone(0)`; the child moves the chosen
//! descriptors onto 0/1/2 with `dup2`, closes the originals, `open`s the program and
//! `fexec`s it. A child that cannot open the program prints `NAME: PROGRAM: not found` and
//! exits with 127 (126 for any other open or exec failure), like a POSIX shell. Pipes are
//! created `O_CLOEXEC` and the child closes its copies explicitly too, so a reader sees end
//! of file as soon as the writers are done. [`Command::spawn_fn`] forks and runs a closure
//! instead of a program (the shell uses it for builtins inside pipelines).
//!
//! Program lookup: a name containing `/` or `:` is used as given; any other name is looked up
//! as `/bin/NAME`.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::abi::{self, EINTR, Errno};
use crate::fs::File;
use crate::{Result, env, sys};

/// Exits the process with `code` (the low 8 bits reach the parent).
pub fn exit(code: i32) -> ! {
    sys::exit(code)
}

/// This process's id.
pub fn id() -> usize {
    sys::getpid()
}

/// The path a program name resolves to: as given if it contains `/` or `:`, else `/bin/NAME`.
pub fn resolve_program(program: &str) -> String {
    if program.contains('/') || program.contains(':') { String::from(program) } else { format!("/bin/{program}") }
}

/// What a child's standard descriptor is connected to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stdio {
    /// The parent's descriptor of the same number.
    Inherit,
    /// The `null:` scheme.
    Null,
    /// A new pipe; the parent's end is in [`Child`]'s `stdin`/`stdout`/`stderr`.
    Piped,
    /// A descriptor of the parent (which keeps it open); `dup2`ed onto the target in the
    /// child. Targets are set up in order 0, 1, 2, so `stderr(Stdio::Fd(1))` after a
    /// redirected stdout means "where stdout now goes", like the shell's `2>&1`.
    Fd(usize),
}

/// The status a child reported to `waitpid` (Linux encoding).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExitStatus {
    raw: usize,
}

impl ExitStatus {
    /// Wraps a raw wait status.
    pub fn from_raw(raw: usize) -> Self {
        ExitStatus { raw }
    }

    /// The raw wait status.
    pub fn raw(self) -> usize {
        self.raw
    }

    /// The exit code, if the child exited normally.
    pub fn code(self) -> Option<i32> {
        abi::wifexited(self.raw).then(|| i32::from(abi::wexitstatus(self.raw)))
    }

    /// The signal that killed (or stopped) the child, if any.
    pub fn signal(self) -> Option<usize> {
        if abi::wifsignaled(self.raw) {
            Some(abi::wtermsig(self.raw))
        } else if abi::wifstopped(self.raw) {
            Some(abi::wstopsig(self.raw))
        } else {
            None
        }
    }

    /// True for exit code 0.
    pub fn success(self) -> bool {
        self.code() == Some(0)
    }

    /// The shell's view (`$?`): the exit code, or 128 + the signal number.
    pub fn shell_code(self) -> i32 {
        match (self.code(), self.signal()) {
            (Some(code), _) => code,
            (None, Some(sig)) => 128 + sig as i32,
            (None, None) => 255,
        }
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.code(), self.signal()) {
            (Some(code), _) => write!(f, "exit status: {code}"),
            (None, Some(sig)) => match abi::signal_name(sig) {
                Some(name) => write!(f, "signal: {sig} (SIG{name})"),
                None => write!(f, "signal: {sig}"),
            },
            (None, None) => write!(f, "wait status: {:#x}", self.raw),
        }
    }
}

/// A running (or finished, not yet waited-for) child process.
#[derive(Debug)]
pub struct Child {
    pid: usize,
    status: Option<ExitStatus>,
    /// The parent's end of the child's stdin pipe, if `Stdio::Piped`.
    pub stdin: Option<File>,
    /// The parent's end of the child's stdout pipe, if `Stdio::Piped`.
    pub stdout: Option<File>,
    /// The parent's end of the child's stderr pipe, if `Stdio::Piped`.
    pub stderr: Option<File>,
}

impl Child {
    /// The child's process id.
    pub fn id(&self) -> usize {
        self.pid
    }

    /// Waits for the child to exit (closing our end of its stdin first, so it sees EOF).
    pub fn wait(&mut self) -> Result<ExitStatus> {
        drop(self.stdin.take());
        if let Some(status) = self.status {
            return Ok(status);
        }
        loop {
            match sys::waitpid(self.pid, 0) {
                Ok((_, raw)) => {
                    let status = ExitStatus::from_raw(raw);
                    self.status = Some(status);
                    return Ok(status);
                }
                Err(Errno(EINTR)) => {}
                Err(err) => return Err(err),
            }
        }
    }

    /// The exit status if the child has already exited, without blocking.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        if let Some(status) = self.status {
            return Ok(Some(status));
        }
        match sys::waitpid(self.pid, abi::WNOHANG)? {
            (0, _) => Ok(None),
            (_, raw) => {
                let status = ExitStatus::from_raw(raw);
                self.status = Some(status);
                Ok(Some(status))
            }
        }
    }

    /// Sends signal `sig` to the child.
    pub fn kill(&self, sig: usize) -> Result<()> {
        sys::kill(self.pid, sig).map(drop)
    }
}

/// A program to run: its arguments, environment and standard descriptors.
#[derive(Clone, Debug)]
pub struct Command {
    program: String,
    arg0: Option<String>,
    args: Vec<String>,
    env_clear: bool,
    env_changes: Vec<(String, Option<String>)>,
    stdio: [Stdio; 3],
}

/// The descriptors of one spawn: what the child gets and what the parent keeps or closes.
struct Plumbing {
    /// Source descriptor for child fds 0, 1, 2 (`None` = inherit).
    sources: [Option<usize>; 3],
    /// Descriptors created for the child, closed in the parent after the spawn.
    child_only: Vec<File>,
    /// The parent's pipe ends (closed in the child).
    parent_ends: [Option<File>; 3],
}

impl Plumbing {
    fn new(stdio: &[Stdio; 3]) -> Result<Plumbing> {
        let mut plumbing = Plumbing { sources: [None; 3], child_only: Vec::new(), parent_ends: [None, None, None] };
        for (target, how) in stdio.iter().enumerate() {
            match *how {
                Stdio::Inherit => {}
                Stdio::Fd(fd) => plumbing.sources[target] = Some(fd),
                Stdio::Null => {
                    let null = File::open_with("null:", abi::O_RDWR | abi::O_CLOEXEC)?;
                    plumbing.sources[target] = Some(null.fd());
                    plumbing.child_only.push(null);
                }
                Stdio::Piped => {
                    let [read_end, write_end] = sys::pipe2(abi::O_CLOEXEC)?;
                    let (read_end, write_end) = (File::from_raw_fd(read_end), File::from_raw_fd(write_end));
                    let (child_end, parent_end) =
                        if target == 0 { (read_end, write_end) } else { (write_end, read_end) };
                    plumbing.sources[target] = Some(child_end.fd());
                    plumbing.child_only.push(child_end);
                    plumbing.parent_ends[target] = Some(parent_end);
                }
            }
        }
        Ok(plumbing)
    }

    /// In the child: moves the sources onto 0/1/2 and closes everything else we opened.
    fn install(&self) -> Result<()> {
        for (target, source) in self.sources.iter().enumerate() {
            if let Some(source) = *source
                && source != target
            {
                sys::dup2(source, target, &[])?;
            }
        }
        let mut extra: Vec<usize> = self
            .sources
            .iter()
            .flatten()
            .copied()
            .chain(self.child_only.iter().map(File::fd))
            .chain(self.parent_ends.iter().flatten().map(File::fd))
            .filter(|&fd| fd > 2)
            .collect();
        extra.sort_unstable();
        extra.dedup();
        for fd in extra {
            let _ = sys::close(fd);
        }
        Ok(())
    }
}

impl Command {
    /// A command running `program` (see [`resolve_program`]) with no arguments, inheriting
    /// the environment and standard descriptors.
    pub fn new(program: &str) -> Command {
        Command {
            program: String::from(program),
            arg0: None,
            args: Vec::new(),
            env_clear: false,
            env_changes: Vec::new(),
            stdio: [Stdio::Inherit; 3],
        }
    }

    /// Appends an argument.
    pub fn arg(&mut self, arg: &str) -> &mut Command {
        self.args.push(String::from(arg));
        self
    }

    /// Appends arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.args.extend(args.into_iter().map(|a| String::from(a.as_ref())));
        self
    }

    /// Overrides `argv[0]` (default: the program name as given to [`Command::new`]).
    pub fn arg0(&mut self, arg0: &str) -> &mut Command {
        self.arg0 = Some(String::from(arg0));
        self
    }

    /// Sets an environment variable for the child.
    pub fn env(&mut self, key: &str, value: &str) -> &mut Command {
        self.env_changes.push((String::from(key), Some(String::from(value))));
        self
    }

    /// Sets several environment variables for the child.
    pub fn envs<I, K, V>(&mut self, vars: I) -> &mut Command
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        for (key, value) in vars {
            self.env(key.as_ref(), value.as_ref());
        }
        self
    }

    /// Removes an environment variable for the child.
    pub fn env_remove(&mut self, key: &str) -> &mut Command {
        self.env_changes.push((String::from(key), None));
        self
    }

    /// Starts the child with an empty environment (plus later `env` calls).
    pub fn env_clear(&mut self) -> &mut Command {
        self.env_clear = true;
        self.env_changes.clear();
        self
    }

    /// Connects the child's stdin.
    pub fn stdin(&mut self, how: Stdio) -> &mut Command {
        self.stdio[0] = how;
        self
    }

    /// Connects the child's stdout.
    pub fn stdout(&mut self, how: Stdio) -> &mut Command {
        self.stdio[1] = how;
        self
    }

    /// Connects the child's stderr.
    pub fn stderr(&mut self, how: Stdio) -> &mut Command {
        self.stdio[2] = how;
        self
    }

    /// The program name as given.
    pub fn get_program(&self) -> &str {
        &self.program
    }

    /// The environment the child will get.
    pub fn get_envs(&self) -> Vec<(String, String)> {
        let mut vars = if self.env_clear { Vec::new() } else { env::vars() };
        for (key, value) in &self.env_changes {
            vars.retain(|(k, _)| k != key);
            if let Some(value) = value {
                vars.push((key.clone(), value.clone()));
            }
        }
        vars
    }

    /// Starts the program.
    pub fn spawn(&mut self) -> Result<Child> {
        self.spawn_with_flags(0)
    }

    /// Starts the program supervised from its first instruction (`CLONE_SUPERVISE`) and
    /// returns the child with the supervision descriptor from `SUPERVISE(pid)`.
    pub fn spawn_supervised(&mut self) -> Result<(Child, File)> {
        self.spawn_supervised_with(0)
    }

    /// Like [`Command::spawn_supervised`], passing `flags` (e.g. `SUPERVISE_BLOCK`) to
    /// `supervise`.
    pub fn spawn_supervised_with(&mut self, flags: usize) -> Result<(Child, File)> {
        let child = self.spawn_with_flags(abi::CLONE_SUPERVISE)?;
        match sys::supervise_with(child.pid, flags) {
            Ok(fd) => Ok((child, File::from_raw_fd(fd))),
            Err(err) => {
                let _ = sys::kill(child.pid, abi::SIGKILL);
                let _ = sys::waitpid(child.pid, 0);
                Err(err)
            }
        }
    }

    /// Starts the program with extra `clone` flags (e.g. `CLONE_SUPERVISE`; never `CLONE_VM`).
    pub fn spawn_with_flags(&mut self, flags: usize) -> Result<Child> {
        let path = resolve_program(&self.program);
        let argv = self.argv();
        let envs: Vec<String> = self.get_envs().into_iter().map(|(k, v)| format!("{k}={v}")).collect();
        let program = self.program.clone();
        self.fork_inner(flags & !abi::CLONE_VM, move || exec_or_exit(&program, &path, &argv, &envs))
    }

    /// Forks and runs `f` in the child (with the standard descriptors set up as configured)
    /// instead of a program; the child exits with `f`'s result. Program and arguments are
    /// ignored.
    pub fn spawn_fn(&mut self, f: impl FnOnce() -> i32) -> Result<Child> {
        self.fork_inner(0, f)
    }

    /// Runs the program and waits for it.
    pub fn status(&mut self) -> Result<ExitStatus> {
        self.spawn()?.wait()
    }

    /// Runs the program with stdout captured; returns its status and output. Stderr is left
    /// as configured (inherited by default).
    pub fn output(&mut self) -> Result<(ExitStatus, Vec<u8>)> {
        let saved = self.stdio[1];
        self.stdio[1] = Stdio::Piped;
        let spawned = self.spawn();
        self.stdio[1] = saved;
        let mut child = spawned?;
        let mut out = Vec::new();
        if let Some(stdout) = child.stdout.take() {
            stdout.read_to_end(&mut out)?;
        }
        Ok((child.wait()?, out))
    }

    /// Replaces the current process with the program (descriptors set up as configured).
    /// Returns only on failure.
    pub fn exec(&mut self) -> Errno {
        let path = resolve_program(&self.program);
        let argv = self.argv();
        let envs: Vec<String> = self.get_envs().into_iter().map(|(k, v)| format!("{k}={v}")).collect();
        let plumbing = match Plumbing::new(&self.stdio) {
            Ok(p) => p,
            Err(err) => return err,
        };
        if let Err(err) = plumbing.install() {
            return err;
        }
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(err) => return err,
        };
        let args: Vec<&[u8]> = argv.iter().map(|a| a.as_bytes()).collect();
        let env_bytes: Vec<&[u8]> = envs.iter().map(|e| e.as_bytes()).collect();
        sys::fexec(file.fd(), &args, &env_bytes)
    }

    fn argv(&self) -> Vec<String> {
        let mut argv = Vec::with_capacity(self.args.len() + 1);
        argv.push(self.arg0.clone().unwrap_or_else(|| self.program.clone()));
        argv.extend(self.args.iter().cloned());
        argv
    }

    fn fork_inner(&mut self, flags: usize, child_main: impl FnOnce() -> i32) -> Result<Child> {
        let mut plumbing = Plumbing::new(&self.stdio)?;
        let pid = sys::clone(flags)?;
        if pid == 0 {
            if let Err(err) = plumbing.install() {
                crate::eprintln!("{}: cannot set up descriptors: {}", env::program_name(), err);
                exit(127);
            }
            exit(child_main());
        }
        drop(core::mem::take(&mut plumbing.child_only));
        let [stdin, stdout, stderr] = plumbing.parent_ends;
        Ok(Child { pid, status: None, stdin, stdout, stderr })
    }
}

/// In a forked child: opens and executes the program, or reports why not and returns the
/// shell-style exit code (127 not found, 126 not executable).
fn exec_or_exit(program: &str, path: &str, argv: &[String], envs: &[String]) -> i32 {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(err) => {
            let not_found = err.0 == abi::ENOENT || err.0 == abi::ENOTDIR;
            if not_found {
                crate::eprintln!("{}: {}: not found", env::program_name(), program);
                return 127;
            }
            crate::eprintln!("{}: {}: {}", env::program_name(), program, err.description());
            return 126;
        }
    };
    let args: Vec<&[u8]> = argv.iter().map(|a| a.as_bytes()).collect();
    let env_bytes: Vec<&[u8]> = envs.iter().map(|e| e.as_bytes()).collect();
    let err = sys::fexec(file.fd(), &args, &env_bytes);
    crate::eprintln!("{}: {}: cannot execute: {}", env::program_name(), program, err.description());
    if err.0 == abi::ENOENT { 127 } else { 126 }
}

/// Waits for any child; `(pid, status)`. `Err(ECHILD)` when there are none.
pub fn wait_any() -> Result<(usize, ExitStatus)> {
    loop {
        match sys::waitpid(0, 0) {
            Ok((pid, raw)) => return Ok((pid, ExitStatus::from_raw(raw))),
            Err(Errno(EINTR)) => {}
            Err(err) => return Err(err),
        }
    }
}
