//! `sh`: a small POSIX-flavoured shell.
//!
//! Usage: `sh -c COMMAND [NAME [ARGS...]]`, `sh SCRIPT [ARGS...]`, or `sh [-i]` to read commands
//! from stdin (`-i` prints a `$ ` prompt on stderr).
//!
//! Design: parsing and expansion live in `apps::shell` (host-tested); this file executes.
//! Input is parsed one line at a time (more lines are read while the parser reports the input
//! incomplete), so `$?` and variables are expanded when each command runs. External commands
//! are `/bin/NAME` (see `runtime::process::resolve_program`), spawned through
//! `runtime::process::Command`; pipelines connect children with pipes and the status is the
//! last command's. Builtins (`cd`, `exit`, `export`, `unset`, `pwd`, `:`) run in the shell
//! itself when alone (with redirections applied temporarily by `dup`/`dup2`), or in a forked
//! child inside a pipeline. Stdin is read one byte at a time so that commands run by the shell
//! see the rest of it, as POSIX requires. A syntax error ends a non-interactive shell with
//! status 2.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use apps::shell::{self, Command as ShellCommand, Connector, ParseError, Pipeline, RedirOp};
use runtime::abi;
use runtime::fs::File;
use runtime::process::{Child, Command, Stdio};
use runtime::{env, eprint, eprintln, fs, println, sys};

runtime::entry!(main);

/// A shell variable: its value and whether children see it.
struct Var {
    value: String,
    exported: bool,
}

struct Shell {
    vars: BTreeMap<String, Var>,
    /// `$0`, `$1`, ...
    positional: Vec<String>,
    /// `$?`
    status: i32,
    /// Set by the `exit` builtin.
    exit: Option<i32>,
    interactive: bool,
}

impl shell::Vars for Shell {
    fn get(&self, name: &str) -> Option<String> {
        match name {
            "?" => Some(self.status.to_string()),
            "$" => Some(sys::getpid().to_string()),
            "#" => Some(self.positional.len().saturating_sub(1).to_string()),
            "@" | "*" => Some(self.positional.get(1..).unwrap_or_default().join(" ")),
            _ if name.bytes().all(|b| b.is_ascii_digit()) => {
                name.parse::<usize>().ok().and_then(|i| self.positional.get(i).cloned())
            }
            _ => self.vars.get(name).map(|var| var.value.clone()),
        }
    }
}

/// Where a child's standard descriptor goes, as redirections are applied left to right.
type Plumbing = [Stdio; 3];

fn main() -> i32 {
    let args = env::args();
    let mut shell = Shell {
        vars: env::vars().into_iter().map(|(k, v)| (k, Var { value: v, exported: true })).collect(),
        positional: alloc::vec![String::from("sh")],
        status: 0,
        exit: None,
        interactive: false,
    };
    match args.get(1).map(String::as_str) {
        Some("-c") => {
            let Some(command) = args.get(2) else {
                eprintln!("sh: -c: option requires an argument");
                return 2;
            };
            if args.len() > 3 {
                shell.positional = args[3..].to_vec();
            }
            shell.run_source(command);
        }
        Some("-i") => {
            shell.interactive = true;
            shell.run_stdin();
        }
        Some("-h" | "--help") => {
            println!("usage: sh [-i] | sh -c COMMAND [NAME [ARGS...]] | sh SCRIPT [ARGS...]");
            return 0;
        }
        Some(script) => {
            let text = match fs::read_to_string(script) {
                Ok(text) => text,
                Err(err) => {
                    eprintln!("sh: {script}: {}", err.description());
                    return 127;
                }
            };
            shell.positional = args[1..].to_vec();
            shell.run_source(&text);
        }
        None => shell.run_stdin(),
    }
    shell.exit.unwrap_or(shell.status)
}

impl Shell {
    /// Runs a whole script or `-c` string, line by line.
    fn run_source(&mut self, text: &str) {
        let mut lines = text.split_inclusive('\n');
        self.run_lines(&mut || lines.next().map(String::from));
    }

    /// Runs commands read from stdin.
    fn run_stdin(&mut self) {
        let interactive = self.interactive;
        self.run_lines(&mut || {
            if interactive {
                eprint!("$ ");
            }
            read_stdin_line()
        });
    }

    /// Feeds lines to the parser until a complete list parses, runs it, repeats.
    fn run_lines(&mut self, next_line: &mut dyn FnMut() -> Option<String>) {
        let mut pending = String::new();
        while self.exit.is_none() {
            let Some(line) = next_line() else {
                if !pending.trim().is_empty() {
                    eprintln!("sh: syntax error: unexpected end of file");
                    self.status = 2;
                }
                return;
            };
            pending.push_str(&line);
            if !pending.ends_with('\n') {
                pending.push('\n');
            }
            match shell::parse(&pending) {
                Ok(list) => {
                    pending.clear();
                    for (connector, pipeline) in &list.items {
                        let run = match connector {
                            Connector::Always => true,
                            Connector::And => self.status == 0,
                            Connector::Or => self.status != 0,
                        };
                        if run {
                            self.status = self.run_pipeline(pipeline);
                        }
                        if self.exit.is_some() {
                            return;
                        }
                    }
                }
                Err(ParseError::Incomplete) => {}
                Err(ParseError::Syntax(msg)) => {
                    eprintln!("sh: {msg}");
                    self.status = 2;
                    pending.clear();
                    if !self.interactive {
                        self.exit = Some(2);
                    }
                }
            }
        }
    }

    fn run_pipeline(&mut self, pipeline: &Pipeline) -> i32 {
        let status = if let [command] = pipeline.commands.as_slice() {
            self.run_single(command)
        } else {
            self.run_multi(&pipeline.commands)
        };
        if pipeline.negated { i32::from(status == 0) } else { status }
    }

    fn expand_words(&self, command: &ShellCommand) -> Vec<String> {
        command.words.iter().flat_map(|word| shell::expand(word, self)).collect()
    }

    fn expand_assigns(&self, command: &ShellCommand) -> Vec<(String, String)> {
        command.assigns.iter().map(|(name, word)| (name.clone(), shell::expand_single(word, self))).collect()
    }

    /// One command without a pipe: assignments, a builtin in-process, or a program.
    fn run_single(&mut self, command: &ShellCommand) -> i32 {
        let argv = self.expand_words(command);
        let assigns = self.expand_assigns(command);
        let Some(name) = argv.first() else {
            for (key, value) in assigns {
                self.set_var(&key, &value, false);
            }
            // Redirections alone still create/truncate their files.
            return match self.open_redirects(command) {
                Ok(_) => 0,
                Err(code) => code,
            };
        };
        if is_builtin(name) {
            return match self.redirect_in_place(command) {
                Ok(saved) => {
                    let status = self.builtin(&argv);
                    restore(saved);
                    status
                }
                Err(code) => code,
            };
        }
        let (plumbing, files) = match self.open_redirects(command) {
            Ok(opened) => opened,
            Err(code) => return code,
        };
        let spawned = self.command_for(&argv, &assigns, plumbing).spawn();
        drop(files);
        match spawned {
            Ok(mut child) => wait_status(&mut child),
            Err(err) => {
                eprintln!("sh: {name}: cannot start: {}", err.description());
                126
            }
        }
    }

    /// A pipeline of two or more commands.
    fn run_multi(&mut self, commands: &[ShellCommand]) -> i32 {
        let mut children: Vec<Child> = Vec::new();
        let mut previous: Option<File> = None;
        let mut last_status = 0;
        for (i, command) in commands.iter().enumerate() {
            let last = i + 1 == commands.len();
            let argv = self.expand_words(command);
            let assigns = self.expand_assigns(command);
            let mut plumbing: Plumbing = [Stdio::Inherit, Stdio::Inherit, Stdio::Inherit];
            if let Some(input) = &previous {
                plumbing[0] = Stdio::Fd(input.fd());
            }
            if !last {
                plumbing[1] = Stdio::Piped;
            }
            let files = match self.apply_redirects(command, &mut plumbing) {
                Ok(files) => files,
                Err(code) => {
                    last_status = code;
                    previous = None;
                    continue;
                }
            };
            let spawned = match argv.first() {
                None => {
                    let mut cmd = Command::new("sh");
                    set_plumbing(&mut cmd, plumbing);
                    cmd.spawn_fn(|| 0)
                }
                Some(name) if is_builtin(name) => {
                    let mut cmd = Command::new(name);
                    set_plumbing(&mut cmd, plumbing);
                    cmd.spawn_fn(|| self.builtin(&argv))
                }
                Some(_) => self.command_for(&argv, &assigns, plumbing).spawn(),
            };
            drop(files);
            previous = None;
            match spawned {
                Ok(mut child) => {
                    previous = child.stdout.take();
                    children.push(child);
                    last_status = 0;
                }
                Err(err) => {
                    eprintln!("sh: cannot start {}: {}", argv.join(" "), err.description());
                    last_status = 126;
                }
            }
        }
        drop(previous);
        let count = children.len();
        for (i, child) in children.iter_mut().enumerate() {
            let status = wait_status(child);
            if i + 1 == count {
                last_status = status;
            }
        }
        last_status
    }

    /// The `Command` for an external program with the shell's exported variables.
    fn command_for(&self, argv: &[String], assigns: &[(String, String)], plumbing: Plumbing) -> Command {
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]).env_clear();
        for (key, var) in &self.vars {
            if var.exported {
                cmd.env(key, &var.value);
            }
        }
        for (key, value) in assigns {
            cmd.env(key, value);
        }
        set_plumbing(&mut cmd, plumbing);
        cmd
    }

    /// Opens the redirections of a command run as a child (starting from inherited fds).
    fn open_redirects(&self, command: &ShellCommand) -> Result<(Plumbing, Vec<File>), i32> {
        let mut plumbing = [Stdio::Inherit, Stdio::Inherit, Stdio::Inherit];
        let files = self.apply_redirects(command, &mut plumbing)?;
        Ok((plumbing, files))
    }

    /// Applies the command's redirections, left to right, onto `plumbing`; returns the files
    /// opened (to be closed once the child is started). On failure prints why and returns 1.
    fn apply_redirects(&self, command: &ShellCommand, plumbing: &mut Plumbing) -> Result<Vec<File>, i32> {
        let mut files = Vec::new();
        for redirect in &command.redirects {
            if redirect.fd > 2 {
                eprintln!("sh: redirecting descriptor {} is not supported", redirect.fd);
                return Err(1);
            }
            let source = match redirect.op {
                RedirOp::Dup(from) if from <= 2 => match plumbing[from] {
                    Stdio::Piped | Stdio::Inherit => Stdio::Fd(from),
                    other => other,
                },
                RedirOp::Dup(from) => {
                    eprintln!("sh: {from}: bad file descriptor");
                    return Err(1);
                }
                _ => {
                    let file = self.open_target(redirect)?;
                    let fd = file.fd();
                    files.push(file);
                    Stdio::Fd(fd)
                }
            };
            plumbing[redirect.fd] = source;
        }
        Ok(files)
    }

    /// Opens the file of a `<`, `>` or `>>` redirection.
    fn open_target(&self, redirect: &shell::Redirect) -> Result<File, i32> {
        let path = shell::expand_single(&redirect.target, self);
        let mode = runtime::fs::DEFAULT_FILE_MODE;
        let flags = match redirect.op {
            RedirOp::Read => abi::O_RDONLY,
            RedirOp::Write => abi::O_WRONLY | abi::O_CREAT | abi::O_TRUNC | mode,
            RedirOp::Append => abi::O_WRONLY | abi::O_CREAT | abi::O_APPEND | mode,
            RedirOp::Dup(_) => abi::O_RDONLY,
        };
        File::open_with(&path, flags | abi::O_CLOEXEC).map_err(|err| {
            eprintln!("sh: {path}: {}", err.description());
            1
        })
    }

    /// Applies redirections to the shell's own descriptors (for a builtin); returns what to
    /// restore afterwards.
    fn redirect_in_place(&self, command: &ShellCommand) -> Result<Vec<(usize, Option<usize>)>, i32> {
        let mut saved = Vec::new();
        for redirect in &command.redirects {
            if redirect.fd > 2 {
                eprintln!("sh: redirecting descriptor {} is not supported", redirect.fd);
                restore(saved);
                return Err(1);
            }
            let source = match redirect.op {
                RedirOp::Dup(from) => Ok((from, None)),
                _ => self.open_target(redirect).map(|file| (file.fd(), Some(file))),
            };
            let Ok((from, file)) = source else {
                restore(saved);
                return Err(1);
            };
            let backup = sys::dup(redirect.fd, &[]).ok();
            saved.push((redirect.fd, backup));
            if let Err(err) = sys::dup2(from, redirect.fd, &[]) {
                eprintln!("sh: {from}: {}", err.description());
                restore(saved);
                return Err(1);
            }
            drop(file);
        }
        Ok(saved)
    }

    fn set_var(&mut self, key: &str, value: &str, export: bool) {
        let var = self.vars.entry(key.to_string()).or_insert(Var { value: String::new(), exported: false });
        var.value = value.to_string();
        var.exported |= export;
    }

    /// Runs builtin `argv[0]`; returns its status.
    fn builtin(&mut self, argv: &[String]) -> i32 {
        let args = &argv[1..];
        match argv[0].as_str() {
            ":" => 0,
            "exit" => {
                let code = match args.first() {
                    None => self.status,
                    Some(text) => match text.parse::<i32>() {
                        Ok(code) => code & 0xff,
                        Err(_) => {
                            eprintln!("sh: exit: {text}: numeric argument required");
                            2
                        }
                    },
                };
                self.exit = Some(code);
                code
            }
            "cd" => {
                let target = match args.first().map(String::as_str) {
                    Some("-") => self.vars.get("OLDPWD").map(|v| v.value.clone()),
                    Some(dir) => Some(dir.to_string()),
                    None => Some(self.vars.get("HOME").map_or_else(|| String::from("/"), |v| v.value.clone())),
                };
                let Some(target) = target else {
                    eprintln!("sh: cd: OLDPWD not set");
                    return 1;
                };
                let old = env::current_dir().ok();
                match env::set_current_dir(&target) {
                    Ok(()) => {
                        if let Some(old) = old {
                            self.set_var("OLDPWD", &old, false);
                        }
                        if let Ok(now) = env::current_dir() {
                            self.set_var("PWD", &now, false);
                        }
                        0
                    }
                    Err(err) => {
                        eprintln!("sh: cd: {target}: {}", err.description());
                        1
                    }
                }
            }
            "pwd" => match env::current_dir() {
                Ok(dir) => {
                    println!("{dir}");
                    0
                }
                Err(err) => {
                    eprintln!("sh: pwd: {}", err.description());
                    1
                }
            },
            "export" => {
                if args.is_empty() {
                    for (key, var) in &self.vars {
                        if var.exported {
                            println!("export {key}={}", quote(&var.value));
                        }
                    }
                    return 0;
                }
                let mut status = 0;
                for arg in args {
                    let (key, value) = match arg.split_once('=') {
                        Some((key, value)) => (key, Some(value)),
                        None => (arg.as_str(), None),
                    };
                    if !shell::is_name(key) {
                        eprintln!("sh: export: {arg}: bad variable name");
                        status = 1;
                        continue;
                    }
                    match value {
                        Some(value) => self.set_var(key, value, true),
                        None => {
                            let current = self.vars.get(key).map(|v| v.value.clone());
                            self.set_var(key, &current.unwrap_or_default(), true);
                        }
                    }
                }
                status
            }
            "unset" => {
                for arg in args {
                    self.vars.remove(arg.as_str());
                }
                0
            }
            other => {
                eprintln!("sh: {other}: not a builtin");
                1
            }
        }
    }
}

fn is_builtin(name: &str) -> bool {
    matches!(name, ":" | "cd" | "exit" | "export" | "unset" | "pwd")
}

fn set_plumbing(cmd: &mut Command, plumbing: Plumbing) {
    let [stdin, stdout, stderr] = plumbing;
    cmd.stdin(stdin).stdout(stdout).stderr(stderr);
}

/// Undoes `redirect_in_place`, most recent first.
fn restore(saved: Vec<(usize, Option<usize>)>) {
    for (fd, backup) in saved.into_iter().rev() {
        match backup {
            Some(backup) => {
                let _ = sys::dup2(backup, fd, &[]);
                let _ = sys::close(backup);
            }
            None => {
                let _ = sys::close(fd);
            }
        }
    }
}

/// Waits for a child and returns its status as `$?` sees it.
fn wait_status(child: &mut Child) -> i32 {
    match child.wait() {
        Ok(status) => status.shell_code(),
        Err(err) => {
            eprintln!("sh: wait: {}", err.description());
            1
        }
    }
}

/// Single-quotes a value for `export` listings when needed.
fn quote(value: &str) -> String {
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-:,+=@%".contains(&b)) {
        return value.to_string();
    }
    let mut out = String::from("'");
    for c in value.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// Reads one line from stdin a byte at a time (so the rest stays for the commands run);
/// `None` at end of input.
fn read_stdin_line() -> Option<String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match runtime::io::read(0, &mut byte) {
            Ok(1) => {
                line.push(byte[0]);
                if byte[0] == b'\n' {
                    break;
                }
            }
            _ => {
                if line.is_empty() {
                    return None;
                }
                break;
            }
        }
    }
    Some(String::from_utf8_lossy(&line).into_owned())
}
