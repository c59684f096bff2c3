//! `warden trace` / `warden run --trace`: an strace for guests, built on the kernel's host
//! supervisor ([`guest_kernel::supervise::HostSupervisor`]).
//!
//! Design: [`Tracer`] answers every call's entry with `RunReport` (or `Run` when the filter
//! drops it) and prints one line per call at exit, when the result and the bytes handed back
//! to the guest are known — `pid name(args) = result`, formatted by `warden_abi::trace`
//! (the guest `strace` prints the very same lines). Calls that do not come back print
//! `= ?` at entry (exit) or when the next event of the thread shows they ended (a successful
//! `fexec` prints `= 0` at the exec event). Exceptions print `--- SIGNAL {...} ---`, exits
//! `+++ exited with N +++`. `-c` replaces the lines by a summary table (calls, errors and
//! the share of guest instructions retired while each call was in progress — the virtual
//! clock's "time in the call"); `--json` prints one JSON object per line instead.
//! Children are followed unless `--no-follow`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use guest_kernel::supervise::{
    entry_items_of, output_items_of, ExceptionEvent, HostSupervisor, Output, ProcessEvent, Reply, SyscallEntry,
};
use warden_abi::trace as fmt;

use crate::host::{Border, OutputFailure};
use warden_abi::{all_calls, SYS_EXIT, SYS_FEXEC};

/// Where trace lines go.
#[derive(Clone, Debug, Default)]
pub enum TraceOutput {
    /// The host's stderr.
    #[default]
    Stderr,
    /// A file (created or truncated).
    File(PathBuf),
    /// A shared buffer (for tests and embedders).
    Buffer(Arc<Mutex<Vec<u8>>>),
}

/// Which calls are traced: `-e open,read`, `-e file`, `-e trace=desc,exit`, `-e all`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// Call numbers; `None` = every call.
    numbers: Option<Vec<usize>>,
}

impl Filter {
    /// Parses one or more `-e` expressions (comma-separated call names or classes, with an
    /// optional `trace=` prefix).
    pub fn parse(exprs: &[String]) -> Result<Filter, String> {
        if exprs.is_empty() {
            return Ok(Filter::default());
        }
        let mut numbers = Vec::new();
        for expr in exprs {
            let list = expr.strip_prefix("trace=").unwrap_or(expr);
            for word in list.split(',').filter(|w| !w.is_empty()) {
                if word == "all" {
                    return Ok(Filter::default());
                }
                let class = word.strip_prefix('%').unwrap_or(word);
                if fmt::is_class(class) {
                    numbers.extend(all_calls().filter(|c| fmt::has_class(c.number, class)).map(|c| c.number));
                } else if all_calls().any(|c| c.name == word) {
                    // A name selects the call of every ABI that has it (`read`: Redox and Linux).
                    numbers.extend(all_calls().filter(|c| c.name == word).map(|c| c.number));
                } else {
                    return Err(format!("unknown system call or class {word:?} in -e {expr}"));
                }
            }
        }
        Ok(Filter { numbers: Some(numbers) })
    }

    pub fn matches(&self, number: usize) -> bool {
        self.numbers.as_ref().is_none_or(|n| n.contains(&number))
    }
}

/// What `--trace` / `warden trace` was asked for.
#[derive(Clone, Debug)]
pub struct TraceConfig {
    pub filter: Filter,
    /// Trace children too (default).
    pub follow: bool,
    /// `-c`: a summary table instead of lines.
    pub summary: bool,
    /// `--json`: JSON lines.
    pub json: bool,
    pub output: TraceOutput,
}

impl Default for TraceConfig {
    fn default() -> Self {
        TraceConfig {
            filter: Filter::default(),
            follow: true,
            summary: false,
            json: false,
            output: TraceOutput::Stderr,
        }
    }
}

/// The trace options of the command line (shared by `warden trace` and `warden run`).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TraceArgs {
    /// Trace system calls (strace-style lines on stderr). Implied by the other trace options.
    #[arg(long)]
    pub trace: bool,

    /// Only these calls: names and classes (file, desc, process, signal, memory, ipc, time,
    /// creds), comma-separated; e.g. `-e open,read` or `-e file` (repeatable).
    #[arg(short = 'e', value_name = "EXPR")]
    pub expr: Vec<String>,

    /// Write the trace to FILE instead of stderr.
    #[arg(short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Print a summary table (calls, errors, share of instructions) instead of lines.
    #[arg(short = 'c')]
    pub summary: bool,

    /// Print JSON lines instead of strace lines.
    #[arg(long)]
    pub json: bool,

    /// Do not trace children (they are followed by default).
    #[arg(long)]
    pub no_follow: bool,
}

impl TraceArgs {
    /// The trace configuration, if any tracing was asked for (`force`: `warden trace`).
    pub fn config(&self, force: bool) -> Result<Option<TraceConfig>, String> {
        let wanted = force
            || self.trace
            || !self.expr.is_empty()
            || self.output.is_some()
            || self.summary
            || self.json
            || self.no_follow;
        if !wanted {
            return Ok(None);
        }
        Ok(Some(TraceConfig {
            filter: Filter::parse(&self.expr)?,
            follow: !self.no_follow,
            summary: self.summary,
            json: self.json,
            output: self.output.clone().map_or(TraceOutput::Stderr, TraceOutput::File),
        }))
    }
}

/// Where the lines go; the first failed write is handed to the run's [`Border`] (which stops
/// the run) and nothing more is written.
struct Sink {
    out: SinkOut,
    /// What the lines are, for the failure message (`the trace to t.txt`).
    what: String,
    border: Border,
    failed: bool,
}

enum SinkOut {
    Stderr,
    File(std::io::BufWriter<std::fs::File>),
    Buffer(Arc<Mutex<Vec<u8>>>),
}

impl Sink {
    fn open(output: &TraceOutput, border: Border) -> Result<Sink, OutputFailure> {
        let (out, what) = match output {
            TraceOutput::Stderr => (SinkOut::Stderr, "the trace to stderr".to_string()),
            TraceOutput::Buffer(b) => (SinkOut::Buffer(b.clone()), "the trace".to_string()),
            TraceOutput::File(p) => {
                let what = format!("the trace to {}", p.display());
                match std::fs::File::create(p) {
                    Ok(f) => (SinkOut::File(std::io::BufWriter::new(f)), what),
                    Err(error) => return Err(OutputFailure { what, error }),
                }
            }
        };
        Ok(Sink { out, what, border, failed: false })
    }

    fn line(&mut self, s: &str) {
        if self.failed {
            return;
        }
        let result = match &mut self.out {
            SinkOut::File(f) => writeln!(f, "{s}"),
            SinkOut::Buffer(b) => {
                let mut b = b.lock().unwrap_or_else(|e| e.into_inner());
                b.extend_from_slice(s.as_bytes());
                b.push(b'\n');
                Ok(())
            }
            SinkOut::Stderr => {
                let mut line = String::with_capacity(s.len() + 1);
                line.push_str(s);
                line.push('\n');
                std::io::stderr().lock().write_all(line.as_bytes())
            }
        };
        self.check(result);
    }

    fn flush(&mut self) {
        if let (false, SinkOut::File(f)) = (self.failed, &mut self.out) {
            let result = f.flush();
            self.check(result);
        }
    }

    fn check(&mut self, result: std::io::Result<()>) {
        if let Err(error) = result {
            self.failed = true;
            self.border.fail(self.what.clone(), error);
        }
    }
}

struct Entry {
    pid: u32,
    number: usize,
    args: [u64; 6],
    items: Vec<u8>,
    icount: u64,
}

#[derive(Default, Clone, Copy)]
struct Count {
    calls: u64,
    errors: u64,
    instructions: u64,
}

/// The host supervisor behind `warden trace`.
pub struct Tracer {
    cfg: TraceConfig,
    sink: Sink,
    /// Calls in progress, by thread.
    entries: BTreeMap<u32, Entry>,
    counts: BTreeMap<usize, Count>,
}

impl Tracer {
    /// A tracer writing where `cfg` says (a file is created now). A write that fails later
    /// is handed to `border`, which stops the run.
    pub fn new(cfg: TraceConfig, border: Border) -> Result<Tracer, OutputFailure> {
        let sink = Sink::open(&cfg.output, border)?;
        Ok(Tracer { cfg, sink, entries: BTreeMap::new(), counts: BTreeMap::new() })
    }

    fn print_call(&mut self, e: &Entry, outputs: Option<&[u8]>, ret: Option<u64>) {
        if self.cfg.summary {
            return;
        }
        let mut text = String::new();
        let _ = fmt::write_call(&mut text, e.number, &e.args, &e.items, outputs);
        let mut result = String::new();
        match ret {
            Some(r) => {
                let _ = fmt::write_result(&mut result, e.number, r);
            }
            None => result.push_str("= ?"),
        }
        if self.cfg.json {
            let name = warden_abi::linux::any_syscall_name(e.number).unwrap_or("unknown");
            let mut line = format!("{{\"pid\":{},\"syscall\":\"{}\",\"args\":[", e.pid, name);
            for (i, a) in e.args.iter().enumerate() {
                let _ = write!(line, "{}{}", if i > 0 { "," } else { "" }, a);
            }
            let _ = write!(line, "],\"text\":{},", json_string(&text));
            match ret.map(|r| warden_abi::Errno::demux(r as usize)) {
                Some(Ok(v)) => {
                    let _ = write!(line, "\"ret\":{v}");
                }
                Some(Err(err)) => {
                    let _ = write!(line, "\"ret\":-{},\"errno\":\"{}\"", err.0, err.name());
                }
                None => line.push_str("\"ret\":null"),
            }
            line.push('}');
            self.sink.line(&line);
        } else {
            self.sink.line(&format!("{} {} {}", e.pid, text, result));
        }
    }

    fn event_line(&mut self, pid: u32, text: &str, json: String) {
        if self.cfg.summary {
            return;
        }
        if self.cfg.json {
            self.sink.line(&json);
        } else {
            self.sink.line(&format!("{pid} {text}"));
        }
    }

    fn summary(&mut self) {
        let total_instr: u64 = self.counts.values().map(|c| c.instructions).sum();
        let mut lines = vec![
            format!("{:>7} {:>9} {:>9} {}", "% instr", "calls", "errors", "syscall"),
            format!("{:->7} {:->9} {:->9} {:->16}", "", "", "", ""),
        ];
        let mut rows: Vec<(usize, Count)> = self.counts.iter().map(|(&n, &c)| (n, c)).collect();
        rows.sort_by(|a, b| {
            b.1.instructions.cmp(&a.1.instructions).then(b.1.calls.cmp(&a.1.calls)).then(a.0.cmp(&b.0))
        });
        let share = |i: u64| if total_instr == 0 { 0.0 } else { 100.0 * i as f64 / total_instr as f64 };
        let (mut calls, mut errors) = (0, 0);
        for (n, c) in rows {
            calls += c.calls;
            errors += c.errors;
            let name = warden_abi::linux::any_syscall_name(n).unwrap_or("unknown");
            lines.push(format!("{:>7.2} {:>9} {:>9} {}", share(c.instructions), c.calls, c.errors, name));
        }
        lines.push(format!("{:->7} {:->9} {:->9} {:->16}", "", "", "", ""));
        lines.push(format!("{:>7.2} {:>9} {:>9} total", if total_instr == 0 { 0.0 } else { 100.0 }, calls, errors));
        for l in lines {
            self.sink.line(&l);
        }
    }
}

/// A JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl HostSupervisor for Tracer {
    fn syscall_entry(&mut self, ev: &SyscallEntry<'_>) -> Reply {
        if !self.cfg.filter.matches(ev.call.number) {
            return Reply::Run;
        }
        let entry = Entry {
            pid: ev.pid,
            number: ev.call.number,
            args: ev.call.args.map(|a| a as u64),
            items: entry_items_of(ev),
            icount: ev.icount,
        };
        if let Some(old) = self.entries.remove(&ev.tid) {
            self.print_call(&old, None, None);
        }
        if ev.call.number == SYS_EXIT {
            self.counts.entry(SYS_EXIT).or_default().calls += 1;
            self.print_call(&entry, None, None);
            return Reply::Run;
        }
        self.entries.insert(ev.tid, entry);
        Reply::RunReport
    }

    fn syscall_exit(&mut self, ev: &SyscallEntry<'_>, result: &mut usize, outputs: &mut [Output]) {
        let Some(e) = self.entries.remove(&ev.tid) else { return };
        let c = self.counts.entry(e.number).or_default();
        c.calls += 1;
        c.errors += u64::from(warden_abi::Errno::demux(*result).is_err());
        c.instructions += ev.icount.saturating_sub(e.icount);
        let out = output_items_of(outputs);
        self.print_call(&e, Some(&out), Some(*result as u64));
    }

    fn exception(&mut self, ev: &ExceptionEvent) -> Reply {
        let mut text = String::new();
        let _ = fmt::write_exception(&mut text, ev.vector, ev.rip, ev.addr, ev.signal as u64);
        let json = format!(
            "{{\"pid\":{},\"event\":\"exception\",\"vector\":{},\"rip\":{},\"signal\":{}}}",
            ev.pid, ev.vector, ev.rip, ev.signal
        );
        self.event_line(ev.pid, &text, json);
        Reply::Default
    }

    fn event(&mut self, ev: &ProcessEvent) {
        match ev {
            ProcessEvent::Exec { pid, .. } => {
                let tid = self.entries.iter().find(|(_, e)| e.pid == *pid && e.number == SYS_FEXEC).map(|(&t, _)| t);
                if let Some(e) = tid.and_then(|t| self.entries.remove(&t)) {
                    let c = self.counts.entry(SYS_FEXEC).or_default();
                    c.calls += 1;
                    self.print_call(&e, None, Some(0));
                }
            }
            ProcessEvent::Exit { pid, status } => {
                // Calls the process died in (a write killed by SIGPIPE): `= ?`, as strace.
                let tids: Vec<u32> = self.entries.iter().filter(|(_, e)| e.pid == *pid).map(|(&t, _)| t).collect();
                for tid in tids {
                    if let Some(e) = self.entries.remove(&tid) {
                        self.print_call(&e, None, None);
                    }
                }
                let mut text = String::new();
                let _ = fmt::write_exit(&mut text, *status);
                let json = format!("{{\"pid\":{pid},\"event\":\"exit\",\"status\":{status}}}");
                self.event_line(*pid, &text, json);
            }
            ProcessEvent::Clone { .. } => {}
        }
    }

    fn finish(&mut self) {
        let pending: Vec<Entry> = std::mem::take(&mut self.entries).into_values().collect();
        for e in pending {
            self.print_call(&e, None, None);
        }
        if self.cfg.summary {
            self.summary();
        }
        self.sink.flush();
    }
}
