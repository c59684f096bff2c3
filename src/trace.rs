//! `warden trace` / `warden run --trace`: an strace for guests, built on the kernel's host
//! supervisor ([`guest_kernel::supervise::HostSupervisor`]).
//!
//! Design: [`Tracer`] answers every call's entry with `RunReport` (or `Run` when the filter
//! drops it) and prints one line per call at exit, when the result and the bytes handed back
//! to the guest are known — `pid name(args) = result`, formatted by `warden_abi::trace`
//! (the guest `strace` prints the very same lines). Calls that do not come back print
//! `= ?` at entry (exit) or when the next event of the thread shows they ended (a successful
//! `fexec` prints `= 0` at the exec event). Exceptions print `--- SIGNAL {...} ---`, exits
//! `+++ exited with N +++`; the program warden starts gets strace's first line,
//! `execve(...) = 0`. `--json` prints one JSON object per line instead.
//! Children are followed unless `--no-follow`.
//!
//! strace's habits: `-f` (the default), `-ff -o FILE` (one `FILE.PID` per process, lines
//! without the pid), `-s N`, `-e trace=`/`-e signal=`, `-p PID` (only that guest process and,
//! unless `--no-follow`, its descendants). `-t`/`-tt`/`-ttt` and `-T` show the guest's
//! virtual clock (one nanosecond per guest instruction of the whole machine, from
//! 2020-01-01T00:00:00Z, the guest's `CLOCK_REALTIME`): deterministic, so two runs print the
//! same lines, and a call's `-T` is how long it took as the guest sees it (a `waitpid`
//! spans its child's run, a `getpid` takes no time).
//!
//! `-c` measures host time instead, like strace's: the time between a call's entry and the
//! next event of the machine, counted only if no guest instruction ran in between — the
//! kernel's own work for the call, not the time a blocking call waited while other threads
//! ran (the guest-instruction share the table showed before was 0 for every call that does
//! not block and 100 % for `waitpid`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// Which calls and signals are traced: `-e open,read`, `-e file`, `-e trace=desc,exit`,
/// `-e all`, `-e signal=SIGSEGV,SIGILL`, `-e signal=none`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// Call numbers; `None` = every call.
    numbers: Option<Vec<usize>>,
    /// Signal numbers whose `--- SIG... ---` lines are shown; `None` = every signal.
    signals: Option<Vec<u64>>,
}

impl Filter {
    /// Parses one or more `-e` expressions (comma-separated call names or classes, with an
    /// optional `trace=` prefix).
    pub fn parse(exprs: &[String]) -> Result<Filter, String> {
        if exprs.is_empty() {
            return Ok(Filter::default());
        }
        let (mut numbers, mut all) = (Vec::new(), false);
        let mut signals: Option<Vec<u64>> = None;
        for expr in exprs {
            if let Some(list) = expr.strip_prefix("signal=").or_else(|| expr.strip_prefix("signals=")) {
                signals = Some(Self::parse_signals(list, expr)?);
                continue;
            }
            let list = expr.strip_prefix("trace=").unwrap_or(expr);
            for word in list.split(',').filter(|w| !w.is_empty()) {
                if word == "all" {
                    all = true;
                    continue;
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
        let only_signals = exprs.iter().all(|e| e.starts_with("signal"));
        let numbers = if all || only_signals { None } else { Some(numbers) };
        Ok(Filter { numbers, signals })
    }

    /// `-e signal=` lists: `all`, `none`, names with or without `SIG`, numbers.
    fn parse_signals(list: &str, expr: &str) -> Result<Vec<u64>, String> {
        let mut out = Vec::new();
        for word in list.split(',').filter(|w| !w.is_empty()) {
            match word {
                "all" => out.extend(1..=64),
                "none" => {}
                _ => {
                    let name = word.strip_prefix("SIG").unwrap_or(word);
                    let sig = (1..=64u64)
                        .find(|&n| warden_abi::signal_name(n as usize) == Some(name))
                        .or_else(|| word.parse().ok())
                        .ok_or_else(|| format!("unknown signal {word:?} in -e {expr}"))?;
                    out.push(sig);
                }
            }
        }
        Ok(out)
    }

    pub fn matches(&self, number: usize) -> bool {
        self.numbers.as_ref().is_none_or(|n| n.contains(&number))
    }

    /// Whether a `--- SIG... ---` line for `signal` is shown.
    pub fn shows_signal(&self, signal: u64) -> bool {
        self.signals.as_ref().is_none_or(|s| s.contains(&signal))
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
    /// `-ff` with `-o FILE`: one file per process, `FILE.PID`.
    pub per_process: bool,
    /// `-s N`: bytes of a data buffer shown before `...`.
    pub string_limit: usize,
    /// `-t` (1), `-tt` (2), `-ttt` (3): a virtual time stamp before each line.
    pub timestamps: u8,
    /// `-T`: the virtual time spent in each call, `<seconds>` at the end of its line.
    pub call_time: bool,
    /// `-p PID`: only this guest process (and its descendants when following).
    pub only_pid: Option<u32>,
}

impl Default for TraceConfig {
    fn default() -> Self {
        TraceConfig {
            filter: Filter::default(),
            follow: true,
            summary: false,
            json: false,
            output: TraceOutput::Stderr,
            per_process: false,
            string_limit: fmt::STRING_LIMIT,
            timestamps: 0,
            call_time: false,
            only_pid: None,
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
    /// creds), comma-separated; e.g. `-e open,read`, `-e file`, `-e trace=%file`
    /// (repeatable). `-e signal=SIGSEGV,...` (or `none`) chooses the `--- SIG... ---` lines.
    #[arg(short = 'e', value_name = "EXPR")]
    pub expr: Vec<String>,

    /// Write the trace to FILE instead of stderr (with `-ff`: FILE.PID for each process).
    #[arg(short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Print a summary table instead of lines: host time in each call (the kernel's work,
    /// not time spent blocked), calls and errors, as `strace -c`.
    #[arg(short = 'c')]
    pub summary: bool,

    /// Follow children (the default, as strace's `-f`); `-ff` with `-o FILE` writes each
    /// process's lines to FILE.PID.
    #[arg(short = 'f', action = clap::ArgAction::Count)]
    pub follow_forks: u8,

    /// Show N bytes of each data buffer before `...` (default 32), as strace's `-s`.
    #[arg(short = 's', value_name = "N")]
    pub string_limit: Option<usize>,

    /// Start each line with the time: `-t` HH:MM:SS, `-tt` with microseconds, `-ttt` seconds
    /// since the epoch. Virtual time: the guest's clock (one nanosecond per guest
    /// instruction from 2020-01-01), so runs print the same lines.
    #[arg(short = 't', action = clap::ArgAction::Count)]
    pub timestamps: u8,

    /// End each call's line with the virtual time it took, `<0.000012>` (a waitpid spans
    /// its child's run; a call that does not block takes no virtual time).
    #[arg(short = 'T')]
    pub call_time: bool,

    /// Trace only guest process PID (and its descendants unless --no-follow), like
    /// strace's `-p` for a process of the run.
    #[arg(short = 'p', value_name = "PID")]
    pub pid: Option<u32>,

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
            || self.no_follow
            || self.follow_forks > 0
            || self.string_limit.is_some()
            || self.timestamps > 0
            || self.call_time
            || self.pid.is_some();
        if !wanted {
            return Ok(None);
        }
        Ok(Some(TraceConfig {
            filter: Filter::parse(&self.expr)?,
            follow: !self.no_follow,
            summary: self.summary,
            json: self.json,
            output: self.output.clone().map_or(TraceOutput::Stderr, TraceOutput::File),
            per_process: self.follow_forks > 1 && self.output.is_some(),
            string_limit: self.string_limit.unwrap_or(fmt::STRING_LIMIT),
            timestamps: self.timestamps.min(3),
            call_time: self.call_time,
            only_pid: self.pid,
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
    /// Host time the kernel spent on the calls (see the module note).
    host: Duration,
}

/// The guest's virtual `CLOCK_REALTIME` at instruction 0: 2020-01-01T00:00:00Z.
const VIRTUAL_EPOCH_SECS: u64 = 1_577_836_800;

/// The host supervisor behind `warden trace`.
pub struct Tracer {
    cfg: TraceConfig,
    border: Border,
    /// Where lines go (none with `-ff`, whose lines go to `sinks`, unless `-c`).
    sink: Option<Sink>,
    /// `-ff`: each process's file, opened at its first line.
    sinks: BTreeMap<u32, Sink>,
    /// Calls in progress, by thread.
    entries: BTreeMap<u32, Entry>,
    counts: BTreeMap<usize, Count>,
    /// `-p`: the processes whose lines are shown.
    shown: Option<BTreeSet<u32>>,
    /// The last call entry (host time, machine instruction count, call number), for `-c`.
    last_entry: Option<(Instant, u64, usize)>,
    /// The machine's instruction count at the last call entry or exit, to stamp the lines
    /// of events that carry none (signals, exits).
    icount: u64,
}

impl Tracer {
    /// A tracer writing where `cfg` says (a file is created now). A write that fails later
    /// is handed to `border`, which stops the run.
    pub fn new(cfg: TraceConfig, border: Border) -> Result<Tracer, OutputFailure> {
        let sink = if cfg.per_process && !cfg.summary { None } else { Some(Sink::open(&cfg.output, border.clone())?) };
        let shown = cfg.only_pid.map(|p| BTreeSet::from([p]));
        Ok(Tracer {
            cfg,
            border,
            sink,
            sinks: BTreeMap::new(),
            entries: BTreeMap::new(),
            counts: BTreeMap::new(),
            shown,
            last_entry: None,
            icount: 0,
        })
    }

    /// strace's first line, for the program warden starts (its exec happens before tracing
    /// begins): `execve("/bin/ls", ["ls", "/"], /* 1 var */) = 0`.
    pub fn first_exec(&mut self, pid: u32, path: &str, argv: &[&str], env_count: usize) {
        // Shown unless `-e trace=` leaves exec out, as strace does.
        let exec = |c: &warden_abi::CallInfo| matches!(c.name, "execve" | "fexec");
        let shown = all_calls().any(|c| exec(c) && self.cfg.filter.matches(c.number));
        if self.cfg.summary || self.cfg.json || !shown {
            return;
        }
        let mut text = String::from("execve(");
        let _ = fmt::write_quoted(&mut text, path.as_bytes(), None);
        text.push_str(", [");
        for (i, a) in argv.iter().enumerate() {
            if i > 0 {
                text.push_str(", ");
            }
            let _ = fmt::write_quoted(&mut text, a.as_bytes(), None);
        }
        let s = if env_count == 1 { "" } else { "s" };
        let _ = write!(text, "], /* {env_count} var{s} */) = 0");
        self.line(pid, 0, &text);
    }

    /// Writes one strace line of process `pid`: the pid (unless `-ff`), the `-t` stamp at
    /// machine instruction `icount`, the text.
    fn line(&mut self, pid: u32, icount: u64, text: &str) {
        if self.shown.as_ref().is_some_and(|s| !s.contains(&pid)) {
            return;
        }
        let mut line = String::with_capacity(text.len() + 24);
        if !self.cfg.per_process {
            let _ = write!(line, "{pid} ");
        }
        let (secs, micros) = (icount / 1_000_000_000, icount / 1000 % 1_000_000);
        let _ = match self.cfg.timestamps {
            0 => Ok(()),
            1 => write!(line, "{:02}:{:02}:{:02} ", secs / 3600 % 24, secs / 60 % 60, secs % 60),
            2 => write!(line, "{:02}:{:02}:{:02}.{micros:06} ", secs / 3600 % 24, secs / 60 % 60, secs % 60),
            _ => write!(line, "{}.{micros:06} ", VIRTUAL_EPOCH_SECS + secs),
        };
        line.push_str(text);
        self.emit(pid, &line);
    }

    /// Hands a finished line to the sink of process `pid`.
    fn emit(&mut self, pid: u32, line: &str) {
        if !self.cfg.per_process {
            if let Some(sink) = &mut self.sink {
                sink.line(line);
            }
            return;
        }
        if !self.sinks.contains_key(&pid) {
            let TraceOutput::File(base) = &self.cfg.output else { return };
            let mut path = base.clone().into_os_string();
            path.push(format!(".{pid}"));
            match Sink::open(&TraceOutput::File(path.into()), self.border.clone()) {
                Ok(sink) => {
                    self.sinks.insert(pid, sink);
                }
                Err(f) => {
                    self.border.fail(f.what, f.error);
                    return;
                }
            }
        }
        if let Some(sink) = self.sinks.get_mut(&pid) {
            sink.line(line);
        }
    }

    fn print_call(&mut self, e: &Entry, outputs: Option<&[u8]>, ret: Option<u64>, icount: u64) {
        if self.cfg.summary {
            return;
        }
        let mut text = String::new();
        let _ = fmt::write_call_cut(&mut text, e.number, &e.args, &e.items, outputs, self.cfg.string_limit);
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
            if self.shown.as_ref().is_none_or(|s| s.contains(&e.pid)) {
                self.emit(e.pid, &line);
            }
            return;
        }
        text.push(' ');
        match ret {
            Some(r) => {
                let _ = fmt::write_result(&mut text, e.number, r);
                if self.cfg.call_time {
                    let took = icount.saturating_sub(e.icount);
                    let _ = write!(text, " <{}.{:06}>", took / 1_000_000_000, took / 1000 % 1_000_000);
                }
            }
            None => text.push_str("= ?"),
        }
        self.line(e.pid, e.icount, &text);
    }

    fn event_line(&mut self, pid: u32, icount: u64, text: &str, json: String) {
        if self.cfg.summary {
            return;
        }
        if self.cfg.json {
            if self.shown.as_ref().is_none_or(|s| s.contains(&pid)) {
                self.emit(pid, &json);
            }
        } else {
            self.line(pid, icount, text);
        }
    }

    /// `-c`: the host time since the last call entry goes to that call if no guest
    /// instruction ran since (the kernel was busy with it, not waiting).
    fn close_span(&mut self, icount: Option<u64>) {
        if let (Some((start, at, number)), Some(now)) = (self.last_entry.take(), icount) {
            if at == now {
                self.counts.entry(number).or_default().host += start.elapsed();
            }
        }
    }

    fn summary(&mut self) {
        let total: Duration = self.counts.values().map(|c| c.host).sum();
        let rule = format!("{:->6} {:->11} {:->11} {:->9} {:->9} {:->16}", "", "", "", "", "", "");
        let mut lines = vec![
            format!(
                "{:>6} {:>11} {:>11} {:>9} {:>9} {}",
                "% time", "seconds", "usecs/call", "calls", "errors", "syscall"
            ),
            rule.clone(),
        ];
        let mut rows: Vec<(usize, Count)> = self.counts.iter().map(|(&n, &c)| (n, c)).collect();
        rows.sort_by(|a, b| b.1.host.cmp(&a.1.host).then(b.1.calls.cmp(&a.1.calls)).then(a.0.cmp(&b.0)));
        let share = |d: Duration| if total.is_zero() { 0.0 } else { 100.0 * d.as_secs_f64() / total.as_secs_f64() };
        let errors = |e: u64| if e == 0 { String::new() } else { e.to_string() };
        let (mut calls, mut errs) = (0, 0);
        for (n, c) in rows {
            calls += c.calls;
            errs += c.errors;
            let name = warden_abi::linux::any_syscall_name(n).unwrap_or("unknown");
            let per_call = c.host.as_micros() as u64 / c.calls.max(1);
            lines.push(format!(
                "{:>6.2} {:>11.6} {:>11} {:>9} {:>9} {}",
                share(c.host),
                c.host.as_secs_f64(),
                per_call,
                c.calls,
                errors(c.errors),
                name
            ));
        }
        lines.push(rule);
        let per_call = total.as_micros() as u64 / calls.max(1);
        lines.push(format!(
            "{:>6.2} {:>11.6} {:>11} {:>9} {:>9} total",
            if total.is_zero() { 0.0 } else { 100.0 },
            total.as_secs_f64(),
            per_call,
            calls,
            errors(errs)
        ));
        if let Some(sink) = &mut self.sink {
            for l in lines {
                sink.line(&l);
            }
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
        self.close_span(Some(ev.icount));
        self.icount = ev.icount;
        let entry = Entry {
            pid: ev.pid,
            number: ev.call.number,
            args: ev.call.args.map(|a| a as u64),
            items: entry_items_of(ev),
            icount: ev.icount,
        };
        if let Some(old) = self.entries.remove(&ev.tid) {
            self.print_call(&old, None, None, ev.icount);
        }
        if ev.call.number == SYS_EXIT {
            self.counts.entry(SYS_EXIT).or_default().calls += 1;
            self.print_call(&entry, None, None, ev.icount);
            return Reply::Run;
        }
        self.entries.insert(ev.tid, entry);
        self.last_entry = Some((Instant::now(), ev.icount, ev.call.number));
        Reply::RunReport
    }

    fn syscall_exit(&mut self, ev: &SyscallEntry<'_>, result: &mut usize, outputs: &mut [Output]) {
        self.close_span(Some(ev.icount));
        self.icount = ev.icount;
        let Some(e) = self.entries.remove(&ev.tid) else { return };
        let c = self.counts.entry(e.number).or_default();
        c.calls += 1;
        c.errors += u64::from(warden_abi::Errno::demux(*result).is_err());
        let out = output_items_of(outputs);
        self.print_call(&e, Some(&out), Some(*result as u64), ev.icount);
    }

    fn exception(&mut self, ev: &ExceptionEvent) -> Reply {
        let icount = self.icount;
        self.close_span(None);
        if !self.cfg.filter.shows_signal(ev.signal as u64) {
            return Reply::Default;
        }
        let mut text = String::new();
        let _ = fmt::write_exception(&mut text, ev.vector, ev.rip, ev.addr, ev.signal as u64);
        let json = format!(
            "{{\"pid\":{},\"event\":\"exception\",\"vector\":{},\"rip\":{},\"signal\":{}}}",
            ev.pid, ev.vector, ev.rip, ev.signal
        );
        self.event_line(ev.pid, icount, &text, json);
        Reply::Default
    }

    fn event(&mut self, ev: &ProcessEvent) {
        let icount = self.icount;
        match ev {
            ProcessEvent::Exec { pid, .. } => {
                let tid = self.entries.iter().find(|(_, e)| e.pid == *pid && e.number == SYS_FEXEC).map(|(&t, _)| t);
                if let Some(e) = tid.and_then(|t| self.entries.remove(&t)) {
                    let c = self.counts.entry(SYS_FEXEC).or_default();
                    c.calls += 1;
                    self.print_call(&e, None, Some(0), icount);
                }
            }
            ProcessEvent::Exit { pid, status } => {
                // Calls the process died in (a write killed by SIGPIPE): `= ?`, as strace.
                let tids: Vec<u32> = self.entries.iter().filter(|(_, e)| e.pid == *pid).map(|(&t, _)| t).collect();
                for tid in tids {
                    if let Some(e) = self.entries.remove(&tid) {
                        self.print_call(&e, None, None, icount);
                    }
                }
                let mut text = String::new();
                let _ = fmt::write_exit(&mut text, *status);
                let json = format!("{{\"pid\":{pid},\"event\":\"exit\",\"status\":{status}}}");
                self.event_line(*pid, icount, &text, json);
            }
            ProcessEvent::Clone { pid, child, .. } => {
                // `-p`: a shown process's children are shown too when following.
                if let Some(shown) = &mut self.shown {
                    if self.cfg.follow && shown.contains(pid) {
                        shown.insert(*child);
                    }
                }
            }
        }
    }

    fn finish(&mut self) {
        let pending: Vec<Entry> = std::mem::take(&mut self.entries).into_values().collect();
        for e in pending {
            let icount = e.icount;
            self.print_call(&e, None, None, icount);
        }
        if self.cfg.summary {
            self.summary();
        }
        if let Some(sink) = &mut self.sink {
            sink.flush();
        }
        for sink in self.sinks.values_mut() {
            sink.flush();
        }
    }
}
