//! Deterministic record and replay: `warden record -o TRACE ...` and `warden replay TRACE`.
//!
//! A run is a pure function of the root file system, the options (program, arguments,
//! environment, seed, quantum, budget, limits, personality, policy) and what comes from
//! outside the guest: console input, the results of console writes, and the host clock with
//! `--real-time`. A trace holds exactly those, plus a checkpoint at every system call so a
//! replay notices the first point where it stops matching. Replay never reads the host's
//! stdin or clock; it writes the guest's output to the host's stdout/stderr as the recording
//! did, and ends with the same exit status.
//!
//! # Trace format, version 7
//! Little-endian; `varint` is unsigned LEB128 (at most 10 bytes), `zigzag` a signed varint
//! (`(n << 1) ^ (n >> 63)`), `bytes` a varint length then that many bytes, `opt X` a byte 0
//! (absent) or 1 followed by X.
//! ```text
//! magic      "WARDNTRC" (8 bytes)
//! version    varint (7)
//! interrupt  u8 host signal (0: the run was not interrupted), u64 instructions: written as
//!            zeros and filled in place when the recording is interrupted (Ctrl-C, SIGTERM,
//!            SIGHUP): the replay then stops at that instruction count
//! header     varint length, then:
//!            root kind u8 (0 embedded image, 1 tar image, 2 host directory), root path
//!              bytes (absolute), the root as given on the command line bytes,
//!            cwd bytes, program: opt bytes, args: varint count + bytes each,
//!            env: varint count + bytes each, seed varint, quantum varint,
//!            budget: opt varint, real_time u8, max_procs varint, max_mem varint,
//!            max_fds varint, max_memory_total varint,
//!            address space size: opt varint, personality u8 (0 from the ELF, 1 redox,
//!            2 linux), cpu model u8 (`emu::CpuModel::code`), policy: opt (name bytes,
//!            text bytes), overlay: opt (path bytes, tree digest u64 of its contents before
//!            the run),
//!            extra files: varint count + (path bytes, mode varint, data bytes)
//! events     one tag byte each, in the order the kernel met them:
//!   0x01 syscall      tid varint, number & 0xffff varint, instructions since the previous
//!                     syscall event varint, digest u32 (registers, rip and the kernel's
//!                     copy of what the call reads: guest_kernel::record::checkpoint_digest)
//!   0x80 | d          a syscall by the same thread as the previous syscall event, d (< 128)
//!                     instructions after it: number & 0xffff u16, digest u32 (7 bytes; the
//!                     usual event of a syscall-heavy loop)
//!   0x02 stdin read   bytes (what the console read returned; empty is end of file)
//!   0x03 stdin error  errno varint (the host's; 0 if it gave none)
//!   0x04 write error  errno varint (a console write failed; successful writes leave no event)
//!   0x05 monotonic    zigzag delta from the previous monotonic reading (--real-time only)
//!   0x06 realtime     zigzag delta from the previous realtime reading (--real-time only)
//!   0x07 file used    path bytes, followed u8, kind u8, mode varint, size varint, digest u64
//!                     (the first use of a root path: `record/files.rs`)
//!   0x08 interrupted  a console read or write was cut short by the interrupt that ended
//!                     the recording, or by a host terminal signal (the guest thread waits
//!                     there)
//!   0x09 terminal     a terminal request's answer (the guest kernel's `linux/tty.rs`):
//!                     errno varint (0: it succeeded), then bytes (what the host filled in;
//!                     empty for a request that only sets)
//!   0x0a signals      host terminal signals for the guest: scheduler step varint, mask
//!                     varint (bit `1 << (sig - 1)`)
//!   0x0f end          outcome u8 (0 exited, 1 signaled, 2 budget, 3 deadlock, 4 stopped,
//!                     5 interrupted: code is the host signal), code u8, total instructions
//!                     varint, total syscalls varint
//! ```
//! Nothing follows the end event. A trace is written as the run goes and read the same way:
//! the writer fills a 16 KiB buffer, collects those into 256 KiB hand-offs and writes them on
//! a thread of its own (a long run never holds more than about 800 KiB of its trace in
//! memory). A syscall event costs 7 bytes in a tight loop, about 10
//! otherwise. Earlier versions are not read: version 6 had no terminal events (its terminal requests
//! were ENOTTY without asking the host), version 5 had another checkpoint digest and no
//! events for the calls a policy refused or a jail answered, version 4 identified the root
//! by one digest of the whole image or tree and had no interrupt field, version 3 no CPU
//! model, version 2 another checkpoint digest, version 1 no compact event, no personality,
//! policy, overlay or address-space fields.
//!
//! # What is recorded, and what is not
//! Only what the root and the options do not determine: console input and errors, clock
//! readings with `--real-time`, and which files of the root the guest used (their identity,
//! not their contents). Everything the guest computes (file contents, `rand:`, pids, the
//! virtual clock, the schedule, which `--seed` perturbs) is replayed by running it again,
//! so a syscall event holds no data, only the checkpoint.
//! - The root: its absolute path (a relative `--root` or `--image` is resolved when
//!   recording, so a replay from another directory finds it), and each path the guest
//!   looked up, with the identity of what it found (`record/files.rs`). A replay on a root
//!   where an unused file changed replays; one where a used file changed stops at that use
//!   and names the file.
//! - `--policy FILE`: its text is in the header; a replay applies that text (the file may be
//!   gone or changed since).
//! - `--overlay DIR`: the run starts from DIR's contents and writes through to it, so the
//!   header holds DIR's path and the digest of its contents before the run. A replay needs a
//!   DIR with those contents (the recorded path, or `--overlay` on `replay`), and writes
//!   through to it again. A run that wrote to DIR changed it, so replaying it needs a copy
//!   of DIR saved before the recording; anything else is refused up front with exit 125.
//! - `--personality` and `--cpu` (what `cpuid` says, and which instructions exist): in the
//!   header.
//!
//! # Interrupted recordings
//! Ctrl-C, SIGTERM or SIGHUP during a recording stop the guest at the scheduler's next step
//! (a thread blocked reading the host's stdin stops there without seeing an error); the
//! trace is then completed with an end event saying so, and the interrupt field of the
//! header is filled in with the instruction count reached. A replay runs with that count as
//! its budget and ends where the recording did (the kernel stops at the same place a budget
//! would have), printing the output up to there and exiting as the recording did (128 + the
//! signal). A recording killed outright (SIGKILL, a crash) leaves a trace without an end:
//! its replay reproduces the run up to where the trace stops, then says it is truncated.
//! A failed trace write (a full disk) stops the run at once: one line, exit status 125.
//!
//! # Replay
//! The header's options rebuild the run (the root may be moved with `--image`/`--root`; a
//! recorded root that is gone is named, with the option to pass). Each system call is
//! compared with the next event: a different thread, call, instruction count or digest
//! stops the run at once, and so does an input event out of place, or a file the guest uses
//! that differs from the one recorded (`--force` replays past changed files to find where
//! they make the run diverge); the message names the syscall index, pid, instruction count
//! and expected vs actual. At the end the outcome and totals must match the end event. A
//! truncated or corrupted trace gives one error line. All exit with 125.
//!
//! # Why a kernel hook and not a host supervisor
//! The recording hook is the kernel's narrow [`guest_kernel::record::TraceWriter`], written
//! inline on the trap path (one branch per call when absent), rather than a
//! [`guest_kernel::supervise::HostSupervisor`]. Callgrind instruction counts of
//! `WARDEN_RECORD_PROFILE=MODE,syscalls,N` (see `benches/record.rs`; the difference between
//! N = 40000 and N = 20000 rounds, i.e. per 60,000 guest syscalls, so boot cancels out):
//! a plain run costs 1,268 host instructions per guest syscall; a pass-through host
//! supervisor that does nothing at all adds 199 (+15.7 %: the supervised path parks the
//! call, builds its entry event and applies the decision); the whole recording through the
//! writer, checkpoint digest and trace writing included, adds 58 (+4.6 %). How it got there,
//! from +224 (+16.5 %) with a `SyscallTap` trait object, a `BufWriter` and a digest of 16
//! rotated registers: the kernel owns the writer and writes each event with one 8-byte
//! store; the registers are folded with eight aligned SSE2 XORs; the writer's state is in
//! `Cell`s (no `RefCell` borrow per call); the digest tests the common inputs (none, a write
//! buffer) one compare each rather than matching every case. In thread CPU time the same
//! loop measured +12 to +16 % while the trace was written on the guest's thread (the host
//! kernel's file writes, about 1.4 ms per MB, were most of it), +6 to +8 % with a writer
//! thread woken per 16 KiB, and about +5 % with one woken per 256 KiB (medians of six runs
//! of `cargo bench --bench record`'s ratio, each the median of 15 alternating pairs; a
//! noisy 2-core VM). The
//! supervised path's bookkeeping alone is three times what the bar leaves, so recording
//! stays on the kernel hook; it runs before every supervisor, so a recording of a supervised
//! run (guest or host) is still complete.
mod files;
mod tree;

use std::cell::RefCell;
use std::fmt;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use guest_kernel::linux::Personality;
use guest_kernel::record::{
    checkpoint_digest, put_varint_at, HostClock, SyscallPoint, SyscallTap, SystemClock, TraceWriter, NUMBER_BITS,
    TAG_COMPACT, TAG_SYSCALL,
};
use guest_kernel::{Console, ConsoleStream, Limits, RunOutcome, Stats};

use crate::host::describe_io_error;
use crate::testrun::{add_files, ExtraFile};
use crate::{initial_cwd, open_root, Root, RunError, RunOptions};
use files::{Identity, Watch, WatchedRoot};

pub const MAGIC: &[u8; 8] = b"WARDNTRC";
pub const VERSION: u64 = 7;
/// Where the interrupt field starts (after the magic and the one-byte version).
const INTERRUPT_AT: u64 = 9;

const TAG_READ: u8 = 0x02;
const TAG_READ_ERR: u8 = 0x03;
const TAG_WRITE_ERR: u8 = 0x04;
const TAG_MONO: u8 = 0x05;
const TAG_REAL: u8 = 0x06;
const TAG_FILE: u8 = 0x07;
const TAG_INTERRUPTED: u8 = 0x08;
const TAG_TERMINAL: u8 = 0x09;
const TAG_SIGNALS: u8 = 0x0a;
const TAG_END: u8 = 0x0f;

/// The end event's outcome for a recording a host signal interrupted.
const OUTCOME_INTERRUPTED: u8 = 5;

/// Largest header (extra files included) a reader accepts.
const MAX_HEADER: u64 = 1 << 30;
/// Largest single stdin read event.
const MAX_READ: u64 = 1 << 24;
/// Longest path in a file event.
const MAX_PATH: u64 = 1 << 16;

// --- errors ----------------------------------------------------------------------------

/// A trace that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("cannot read trace {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path} is not a warden trace")]
    NotATrace { path: String },
    #[error("trace {path} has version {version}; this warden reads version {VERSION}")]
    Version { path: String, version: u64 },
    #[error("trace {path} is truncated at byte {offset} (in {what})")]
    Truncated { path: String, offset: u64, what: &'static str },
    #[error("trace {path} is corrupted at byte {offset}: {what}")]
    Corrupt { path: String, offset: u64, what: String },
}

/// Why `record` failed.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("{0}")]
    Setup(String),
    #[error("cannot write the recording to {path}: {}", describe_io_error(source))]
    Write { path: String, source: std::io::Error },
    #[error("{0}")]
    Output(crate::host::OutputFailure),
}

impl RecordError {
    pub fn exit_status(&self) -> i32 {
        match self {
            RecordError::Run(e) => e.exit_status(),
            RecordError::Output(f) if f.broken_pipe() => crate::host::EXIT_BROKEN_PIPE,
            _ => crate::EXIT_WARDEN_FAILED,
        }
    }
}

/// Why `replay` did not reproduce the run.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Trace(#[from] TraceError),
    #[error("replay diverged {0}")]
    Diverged(String),
    #[error("replay refused: {0}")]
    RootChanged(String),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("{0}")]
    Setup(String),
}

// --- encoding --------------------------------------------------------------------------

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn put_opt_varint(out: &mut Vec<u8>, v: Option<u64>) {
    match v {
        Some(v) => {
            out.push(1);
            put_varint(out, v);
        }
        None => out.push(0),
    }
}

/// Everything a replay needs to rebuild the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// The root, its path made absolute when recording.
    pub root: Root,
    /// The root's path as given on the command line (for messages).
    pub root_given: String,
    pub cwd: Vec<u8>,
    pub program: Option<String>,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub seed: u64,
    pub quantum: u64,
    pub budget: Option<u64>,
    pub real_time: bool,
    pub limits: Limits,
    pub address_space_size: Option<u64>,
    pub personality: Option<Personality>,
    pub cpu: emu::CpuModel,
    /// `--policy`: the file's name (for messages) and its text.
    pub policy: Option<(String, String)>,
    /// `--overlay`: the directory and the digest of its contents before the run.
    pub overlay: Option<(PathBuf, u64)>,
    pub extra_files: Vec<ExtraFile>,
}

impl Header {
    fn encode(&self) -> Vec<u8> {
        let mut h = Vec::new();
        let (kind, path) = match &self.root {
            Root::Default => (0u8, Vec::new()),
            Root::Image(p) => (1, p.to_string_lossy().into_owned().into_bytes()),
            Root::Dir(p) => (2, p.to_string_lossy().into_owned().into_bytes()),
        };
        h.push(kind);
        put_bytes(&mut h, &path);
        put_bytes(&mut h, self.root_given.as_bytes());
        put_bytes(&mut h, &self.cwd);
        match &self.program {
            Some(p) => {
                h.push(1);
                put_bytes(&mut h, p.as_bytes());
            }
            None => h.push(0),
        }
        for list in [&self.args, &self.env] {
            put_varint(&mut h, list.len() as u64);
            for a in list {
                put_bytes(&mut h, a.as_bytes());
            }
        }
        put_varint(&mut h, self.seed);
        put_varint(&mut h, self.quantum);
        put_opt_varint(&mut h, self.budget);
        h.push(u8::from(self.real_time));
        put_varint(&mut h, self.limits.max_processes as u64);
        put_varint(&mut h, self.limits.max_memory_per_process);
        put_varint(&mut h, self.limits.max_fds as u64);
        put_varint(&mut h, self.limits.max_memory_total);
        put_opt_varint(&mut h, self.address_space_size);
        h.push(match self.personality {
            None => 0,
            Some(Personality::Redox) => 1,
            Some(Personality::Linux) => 2,
        });
        h.push(self.cpu.code());
        match &self.policy {
            Some((name, text)) => {
                h.push(1);
                put_bytes(&mut h, name.as_bytes());
                put_bytes(&mut h, text.as_bytes());
            }
            None => h.push(0),
        }
        match &self.overlay {
            Some((dir, digest)) => {
                h.push(1);
                put_bytes(&mut h, dir.to_string_lossy().as_bytes());
                h.extend_from_slice(&digest.to_le_bytes());
            }
            None => h.push(0),
        }
        put_varint(&mut h, self.extra_files.len() as u64);
        for f in &self.extra_files {
            put_bytes(&mut h, f.path.as_bytes());
            put_varint(&mut h, u64::from(f.mode));
            put_bytes(&mut h, &f.data);
        }
        h
    }

    /// The options the run had.
    pub fn run_options(&self) -> RunOptions {
        RunOptions {
            root: self.root.clone(),
            env: self.env.clone(),
            program: self.program.clone(),
            args: self.args.clone(),
            budget: self.budget,
            seed: self.seed,
            quantum: self.quantum,
            real_time: self.real_time,
            limits: self.limits.clone(),
            address_space_size: self.address_space_size,
            personality: self.personality,
            cpu: self.cpu,
            overlay: self.overlay.as_ref().map(|(dir, _)| dir.clone()),
            // The policy is the recorded text, not a file (see `replay`).
            policy: None,
            ..RunOptions::default()
        }
    }
}

/// A cursor over the header bytes.
struct HeaderReader<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// File offset of `bytes[0]`.
    base: u64,
    path: &'a str,
}

impl HeaderReader<'_> {
    fn corrupt(&self, what: &str) -> TraceError {
        TraceError::Corrupt { path: self.path.into(), offset: self.base + self.pos as u64, what: what.into() }
    }

    fn u8(&mut self) -> Result<u8, TraceError> {
        let b = *self.bytes.get(self.pos).ok_or_else(|| self.corrupt("header ends early"))?;
        self.pos += 1;
        Ok(b)
    }

    fn flag(&mut self) -> Result<bool, TraceError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(self.corrupt("bad flag byte in the header")),
        }
    }

    fn varint(&mut self) -> Result<u64, TraceError> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = self.u8()?;
            if i == 9 && b > 1 {
                return Err(self.corrupt("varint overflows 64 bits"));
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.corrupt("varint too long"))
    }

    fn u64(&mut self) -> Result<u64, TraceError> {
        let mut d = [0u8; 8];
        for b in &mut d {
            *b = self.u8()?;
        }
        Ok(u64::from_le_bytes(d))
    }

    fn usize(&mut self) -> Result<usize, TraceError> {
        let v = self.varint()?;
        usize::try_from(v).map_err(|_| self.corrupt("number too large"))
    }

    fn bytes(&mut self) -> Result<Vec<u8>, TraceError> {
        let n = self.varint()?;
        let left = (self.bytes.len() - self.pos) as u64;
        if n > left {
            return Err(self.corrupt("length runs past the header"));
        }
        let b = self.bytes[self.pos..self.pos + n as usize].to_vec();
        self.pos += n as usize;
        Ok(b)
    }

    fn string(&mut self) -> Result<String, TraceError> {
        String::from_utf8(self.bytes()?).map_err(|_| self.corrupt("text is not UTF-8"))
    }

    fn strings(&mut self) -> Result<Vec<String>, TraceError> {
        let n = self.varint()?;
        let mut v = Vec::new();
        for _ in 0..n {
            v.push(self.string()?);
        }
        Ok(v)
    }

    fn header(&mut self) -> Result<Header, TraceError> {
        let kind = self.u8()?;
        let path = PathBuf::from(self.string()?);
        let root = match kind {
            0 => Root::Default,
            1 => Root::Image(path),
            2 => Root::Dir(path),
            _ => return Err(self.corrupt("unknown root kind")),
        };
        let root_given = self.string()?;
        let cwd = self.bytes()?;
        let program = if self.flag()? { Some(self.string()?) } else { None };
        let args = self.strings()?;
        let env = self.strings()?;
        let seed = self.varint()?;
        let quantum = self.varint()?;
        let budget = if self.flag()? { Some(self.varint()?) } else { None };
        let real_time = self.flag()?;
        let limits = Limits {
            max_processes: self.usize()?,
            max_memory_per_process: self.varint()?,
            max_fds: self.usize()?,
            max_memory_total: self.varint()?,
        };
        let address_space_size = if self.flag()? { Some(self.varint()?) } else { None };
        let personality = match self.u8()? {
            0 => None,
            1 => Some(Personality::Redox),
            2 => Some(Personality::Linux),
            _ => return Err(self.corrupt("unknown personality")),
        };
        let cpu = emu::CpuModel::from_code(self.u8()?).ok_or_else(|| self.corrupt("unknown CPU model"))?;
        let policy = if self.flag()? { Some((self.string()?, self.string()?)) } else { None };
        let overlay = if self.flag()? { Some((PathBuf::from(self.string()?), self.u64()?)) } else { None };
        let n = self.varint()?;
        let mut extra_files = Vec::new();
        for _ in 0..n {
            let path = self.string()?;
            let mode = u16::try_from(self.varint()?).map_err(|_| self.corrupt("bad file mode"))?;
            let data = Arc::new(self.bytes()?);
            extra_files.push(ExtraFile { path, mode, data });
        }
        if self.pos != self.bytes.len() {
            return Err(self.corrupt("extra bytes at the end of the header"));
        }
        Ok(Header {
            root,
            root_given,
            cwd,
            program,
            args,
            env,
            seed,
            quantum,
            budget,
            real_time,
            limits,
            address_space_size,
            personality,
            cpu,
            policy,
            overlay,
            extra_files,
        })
    }
}

// --- events ----------------------------------------------------------------------------

/// One event of a trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Syscall {
        tid: u32,
        number: u64,
        instructions: u64,
        digest: u32,
    },
    StdinRead(Vec<u8>),
    /// A failed stdin read, with the host's errno (0: none).
    StdinError(i32),
    /// A failed console write, with the host's errno (0: none).
    WriteError(i32),
    Monotonic(u64),
    Realtime(u64),
    /// The first use of a root path and what was there.
    File {
        path: Vec<u8>,
        follow: bool,
        identity: Identity,
    },
    /// A console call cut short by the interrupt that ended the recording.
    ConsoleInterrupted,
    /// A terminal request's answer: the host's errno (0: success) and what it filled in.
    Terminal {
        errno: i32,
        data: Vec<u8>,
    },
    /// Host terminal signals (bit `1 << (sig - 1)`) delivered at a scheduler step.
    Signals {
        step: u64,
        mask: u64,
    },
    End {
        outcome: u8,
        code: u8,
        instructions: u64,
        syscalls: u64,
    },
}

/// The name of a syscall from the low bits a trace keeps.
pub fn syscall_label(low: u64) -> String {
    warden_abi::SYSCALLS
        .iter()
        .find(|&&(n, _)| (n as u64) & NUMBER_BITS == low)
        .map(|&(_, name)| name.to_string())
        .unwrap_or_else(|| format!("syscall {low:#x}"))
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Syscall { tid, number, instructions, digest } => {
                write!(f, "{} by pid {tid} at instruction {instructions} (digest {digest:08x})", syscall_label(*number))
            }
            Event::StdinRead(d) => write!(f, "a stdin read of {} bytes", d.len()),
            Event::StdinError(_) => write!(f, "a failed stdin read"),
            Event::WriteError(_) => write!(f, "a failed console write"),
            Event::File { path, .. } => write!(f, "the use of {}", String::from_utf8_lossy(path)),
            Event::ConsoleInterrupted => write!(f, "a console call cut short by the interrupt"),
            Event::Terminal { .. } => write!(f, "a terminal request"),
            Event::Signals { step, mask } => write!(f, "terminal signals {mask:#x} at scheduler step {step}"),
            Event::Monotonic(_) => write!(f, "a monotonic clock reading"),
            Event::Realtime(_) => write!(f, "a realtime clock reading"),
            Event::End { outcome, code, instructions, .. } => {
                write!(f, "the end of the run ({}) after {instructions} instructions", outcome_text(*outcome, *code))
            }
        }
    }
}

fn outcome_code(o: RunOutcome) -> (u8, u8) {
    match o {
        RunOutcome::Exited(c) => (0, c),
        RunOutcome::Signaled(s) => (1, s),
        RunOutcome::BudgetExhausted => (2, 0),
        RunOutcome::Deadlock => (3, 0),
        RunOutcome::Stopped => (4, 0),
    }
}

fn outcome_text(kind: u8, code: u8) -> String {
    match kind {
        0 => format!("exit status {code}"),
        1 => format!("signal {code}"),
        2 => "budget exhausted".into(),
        3 => "deadlock".into(),
        OUTCOME_INTERRUPTED => format!("interrupted by {}", crate::host::host_signal_name(i32::from(code))),
        _ => "stopped".into(),
    }
}

// --- recording -------------------------------------------------------------------------

/// The trace being written, shared by the kernel (syscall events), the console and the clock.
type SharedSink = Rc<TraceWriter>;

struct RecordConsole {
    inner: Box<dyn Console>,
    sink: SharedSink,
}

impl Console for RecordConsole {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let r = self.inner.read(buf);
        let sink = &self.sink;
        match &r {
            Ok(n) => {
                let data = &buf[..(*n).min(buf.len())];
                let mut head = [0u8; 11];
                head[0] = TAG_READ;
                let mut at = 1;
                put_varint_at(&mut head, &mut at, data.len() as u64);
                sink.put(&head[..at]);
                sink.put(data);
            }
            // The run is stopping here (Ctrl-C); the replay stops here too.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => sink.put(&[TAG_INTERRUPTED]),
            Err(e) => put_error(sink, TAG_READ_ERR, e),
        }
        r
    }

    fn write(&mut self, stream: ConsoleStream, data: &[u8]) -> std::io::Result<()> {
        let r = self.inner.write(stream, data);
        match &r {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => self.sink.put(&[TAG_INTERRUPTED]),
            Err(e) => put_error(&self.sink, TAG_WRITE_ERR, e),
            Ok(()) => {}
        }
        r
    }

    fn terminal(&mut self, fd: u8, cmd: usize, value: usize, arg: &mut [u8]) -> std::io::Result<()> {
        let r = self.inner.terminal(fd, cmd, value, arg);
        let mut ev = Vec::with_capacity(arg.len() + 12);
        ev.push(TAG_TERMINAL);
        let filled: &[u8] = match &r {
            Ok(()) if matches!(guest_kernel::terminal_request(cmd), Some(guest_kernel::TermArg::Get(_))) => arg,
            _ => &[],
        };
        put_varint(&mut ev, r.as_ref().err().map_or(0, |e| e.raw_os_error().unwrap_or(0).max(0)) as u64);
        put_bytes(&mut ev, filled);
        self.sink.put(&ev);
        r
    }

    fn signal_flag(&self) -> Option<Arc<std::sync::atomic::AtomicBool>> {
        self.inner.signal_flag()
    }

    fn host_signals(&mut self, step: u64) -> u64 {
        let mask = self.inner.host_signals(step);
        if mask != 0 {
            let mut ev = vec![TAG_SIGNALS];
            put_varint(&mut ev, step);
            put_varint(&mut ev, mask);
            self.sink.put(&ev);
        }
        mask
    }
}

/// An error event: the tag and the host's errno.
fn put_error(sink: &TraceWriter, tag: u8, e: &std::io::Error) {
    let mut ev = [0u8; 11];
    ev[0] = tag;
    let mut at = 1;
    put_varint_at(&mut ev, &mut at, e.raw_os_error().unwrap_or(0).max(0) as u64);
    sink.put(&ev[..at]);
}

/// The error a replayed console gives for a recorded errno (what the guest saw).
fn recorded_error(errno: i32) -> std::io::Error {
    if errno > 0 {
        std::io::Error::from_raw_os_error(errno)
    } else {
        std::io::Error::other("recorded console error")
    }
}

struct RecordClock {
    inner: SystemClock,
    sink: SharedSink,
    last_mono: u64,
    last_real: u64,
}

impl HostClock for RecordClock {
    fn monotonic_ns(&mut self) -> u64 {
        let v = self.inner.monotonic_ns();
        let delta = zigzag(v.wrapping_sub(self.last_mono) as i64);
        self.last_mono = v;
        put_clock(&self.sink, TAG_MONO, delta);
        v
    }

    fn realtime_ns(&mut self) -> u64 {
        let v = self.inner.realtime_ns();
        let delta = zigzag(v.wrapping_sub(self.last_real) as i64);
        self.last_real = v;
        put_clock(&self.sink, TAG_REAL, delta);
        v
    }

    fn sleep_ns(&mut self, ns: u64) {
        self.inner.sleep_ns(ns);
    }
}

fn put_clock(sink: &TraceWriter, tag: u8, delta: u64) {
    let mut ev = [0u8; 11];
    ev[0] = tag;
    let mut at = 1;
    put_varint_at(&mut ev, &mut at, delta);
    sink.put(&ev[..at]);
}

/// The root with its path made absolute (so a replay from another directory finds it), and
/// the path as given.
fn absolute_root(root: &Root) -> (Root, String) {
    let absolute = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    match root {
        Root::Default => (Root::Default, String::new()),
        Root::Image(p) => (Root::Image(absolute(p)), p.display().to_string()),
        Root::Dir(p) => (Root::Dir(absolute(p)), p.display().to_string()),
    }
}

/// Names an overlay directory may hold that are not part of its contents (copy-ups left by
/// a killed run, deleted when the overlay loads).
fn overlay_skip(name: &[u8]) -> bool {
    name.starts_with(b".wh..wh..tmp.")
}

/// The digest of an overlay directory's contents (none yet: an empty directory).
fn overlay_digest(dir: &Path) -> Result<u64, String> {
    // A missing directory (the overlay creates it) and an empty one are the same start.
    let empty = match std::fs::read_dir(dir) {
        Ok(mut rd) => !rd.any(|e| e.map_or(true, |e| !overlay_skip(e.file_name().as_encoded_bytes()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(e) => return Err(format!("cannot read overlay {}: {e}", dir.display())),
    };
    if empty {
        return Ok(0);
    }
    tree::digest(dir, overlay_skip).map_err(|e| format!("cannot read overlay {}: {e}", dir.display()))
}

/// Reads and checks the policy file (its text goes into the trace).
fn read_policy(path: &Path) -> Result<(String, String, guest_kernel::policy::PolicySpec), RunError> {
    let name = path.display().to_string();
    let text =
        std::fs::read_to_string(path).map_err(|e| RunError::Policy(format!("cannot read policy {name}: {e}")))?;
    let spec = crate::policy::parse(&name, &text).map_err(RunError::Policy)?;
    Ok((name, text, spec))
}

/// Runs `opts` (with `extra_files` added to the root) while writing its trace to `trace`.
/// `console` is where the guest's console really goes (the host's, or a capture). When
/// `opts.border`'s stop flag is set by an interrupt (Ctrl-C: see [`crate::host`]), the run
/// ends there and the trace is completed as an interrupted recording.
pub fn record(
    opts: &RunOptions,
    extra_files: &[ExtraFile],
    console: Box<dyn Console>,
    trace: &Path,
) -> Result<(RunOutcome, Stats), RecordError> {
    let policy = opts.policy.as_deref().map(read_policy).transpose()?;
    let vfs = open_root(&opts.root)?;
    add_files(&vfs, extra_files).map_err(RecordError::Setup)?;
    let overlay = match &opts.overlay {
        Some(dir) => {
            let d = overlay_digest(dir).map_err(RecordError::Setup)?;
            crate::attach_overlay(&vfs, dir)?;
            Some((dir.clone(), d))
        }
        None => None,
    };
    let cwd = initial_cwd(&opts.root);
    let (policy_text, policy_spec) = match policy {
        Some((name, text, spec)) => (Some((name, text)), Some(spec)),
        None => (None, None),
    };
    let (root, root_given) = absolute_root(&opts.root);
    let header = Header {
        root,
        root_given,
        cwd: cwd.clone(),
        program: opts.program.clone(),
        args: opts.args.clone(),
        env: opts.env.clone(),
        seed: opts.seed,
        quantum: opts.quantum,
        budget: opts.budget,
        real_time: opts.real_time,
        limits: opts.limits.clone(),
        address_space_size: opts.address_space_size,
        personality: opts.personality,
        cpu: opts.cpu,
        policy: policy_text,
        overlay,
        extra_files: extra_files.to_vec(),
    };
    let what = format!("the recording to {}", trace.display());
    let write_err = |source| RecordError::Write { path: trace.display().to_string(), source };
    let file = File::create(trace).map_err(write_err)?;
    let out = StopOnError { file, border: opts.border.clone(), what: what.clone() };
    let sink = TraceWriter::new(Box::new(out)).map_err(write_err)?;
    let mut head = MAGIC.to_vec();
    put_varint(&mut head, VERSION);
    head.extend_from_slice(&[0; 9]);
    let h = header.encode();
    put_varint(&mut head, h.len() as u64);
    sink.put(&head);
    sink.put(&h);
    let sink = Rc::new(sink);
    let console = Box::new(RecordConsole { inner: console, sink: sink.clone() });
    let root = Box::new(WatchedRoot::new(vfs.clone(), Watch::Record(sink.clone())));
    let mut kernel = crate::boot_root(opts, &vfs, root, console, cwd, policy_spec)?;
    kernel.set_recorder(sink.clone());
    if opts.real_time {
        let clock = RecordClock { inner: SystemClock::default(), sink: sink.clone(), last_mono: 0, last_real: 0 };
        kernel.set_host_clock(Box::new(clock));
    }
    let outcome = kernel.run();
    kernel.finish_host_supervisor();
    let stats = kernel.stats();
    drop(kernel);
    let interrupted = match outcome {
        RunOutcome::Stopped => crate::host::interrupted_by(),
        _ => None,
    };
    let (kind, code) = match interrupted {
        Some(sig) => (OUTCOME_INTERRUPTED, sig as u8),
        None => outcome_code(outcome),
    };
    let mut end = vec![TAG_END, kind, code];
    put_varint(&mut end, stats.instructions);
    put_varint(&mut end, stats.syscalls);
    sink.put(&end);
    let finished = sink.finish();
    if let Some(failure) = opts.border.take_failure() {
        return Err(RecordError::Output(failure));
    }
    finished.map_err(write_err)?;
    if let Some(sig) = interrupted {
        mark_interrupted(trace, sig as u8, stats.instructions).map_err(write_err)?;
    }
    Ok((outcome, stats))
}

/// Fills in the interrupt field of a finished trace.
fn mark_interrupted(trace: &Path, sig: u8, instructions: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(trace)?;
    let mut field = [0u8; 9];
    field[0] = sig;
    field[1..].copy_from_slice(&instructions.to_le_bytes());
    f.write_all_at(&field, INTERRUPT_AT)
}

/// The trace file: the first failed write is handed to the run's border, which stops the
/// guest at once (a full disk does not let a long run go on for nothing).
struct StopOnError {
    file: File,
    border: crate::host::Border,
    what: String,
}

impl std::io::Write for StopOnError {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.write(buf).inspect_err(|e| self.border.fail(self.what.clone(), clone_error(e)))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush().inspect_err(|e| self.border.fail(self.what.clone(), clone_error(e)))
    }
}

fn clone_error(e: &std::io::Error) -> std::io::Error {
    match e.raw_os_error() {
        Some(n) => std::io::Error::from_raw_os_error(n),
        None => std::io::Error::new(e.kind(), e.to_string()),
    }
}

// --- reading ---------------------------------------------------------------------------

/// A file read at its own offset (`pread`), not the descriptor's: a replay under gdb forks
/// the whole process for its checkpoints (`gdb::checkpoint`), and forked copies share the
/// descriptor's offset, so each must keep its own.
struct PositionedFile {
    file: File,
    pos: u64,
}

impl Read for PositionedFile {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = std::os::unix::fs::FileExt::read_at(&self.file, buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Reads a trace as a stream.
pub struct TraceReader {
    r: BufReader<PositionedFile>,
    path: String,
    /// The host signal that interrupted the recording and the instruction count it reached.
    pub interrupted: Option<(u8, u64)>,
    offset: u64,
    last_instructions: u64,
    last_tid: u32,
    last_mono: u64,
    last_real: u64,
}

impl TraceReader {
    /// Opens a trace and reads its header.
    pub fn open(path: &Path) -> Result<(TraceReader, Header), TraceError> {
        let p = path.display().to_string();
        let file = File::open(path).map_err(|source| TraceError::Io { path: p.clone(), source })?;
        let mut t = TraceReader {
            r: BufReader::with_capacity(256 << 10, PositionedFile { file, pos: 0 }),
            path: p.clone(),
            interrupted: None,
            offset: 0,
            last_instructions: 0,
            last_tid: 0,
            last_mono: 0,
            last_real: 0,
        };
        let mut magic = [0u8; 8];
        for b in &mut magic {
            *b = match t.byte_opt()? {
                Some(b) => b,
                None => return Err(TraceError::NotATrace { path: p }),
            };
        }
        if &magic != MAGIC {
            return Err(TraceError::NotATrace { path: p });
        }
        let version = t.varint("the version")?;
        if version != VERSION {
            return Err(TraceError::Version { path: p, version });
        }
        let mut field = [0u8; 9];
        for b in &mut field {
            *b = t.byte("the interrupt field")?;
        }
        let mut count = [0u8; 8];
        count.copy_from_slice(&field[1..]);
        if field[0] != 0 {
            t.interrupted = Some((field[0], u64::from_le_bytes(count)));
        }
        let len = t.varint("the header length")?;
        if len > MAX_HEADER {
            return Err(t.corrupt("header length is implausible"));
        }
        let base = t.offset;
        let mut bytes = Vec::new();
        (&mut t.r).take(len).read_to_end(&mut bytes).map_err(|source| TraceError::Io { path: p.clone(), source })?;
        if (bytes.len() as u64) < len {
            return Err(TraceError::Truncated { path: p, offset: base + bytes.len() as u64, what: "the header" });
        }
        t.offset += len;
        let header = HeaderReader { bytes: &bytes, pos: 0, base, path: &p }.header()?;
        Ok((t, header))
    }

    fn corrupt(&self, what: &str) -> TraceError {
        TraceError::Corrupt { path: self.path.clone(), offset: self.offset, what: what.into() }
    }

    /// The byte offset of the next event.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    fn byte_opt(&mut self) -> Result<Option<u8>, TraceError> {
        let mut b = [0u8; 1];
        loop {
            match self.r.read(&mut b) {
                Ok(0) => return Ok(None),
                Ok(_) => {
                    self.offset += 1;
                    return Ok(Some(b[0]));
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(source) => return Err(TraceError::Io { path: self.path.clone(), source }),
            }
        }
    }

    fn byte(&mut self, what: &'static str) -> Result<u8, TraceError> {
        self.byte_opt()?.ok_or(TraceError::Truncated { path: self.path.clone(), offset: self.offset, what })
    }

    fn varint(&mut self, what: &'static str) -> Result<u64, TraceError> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = self.byte(what)?;
            if i == 9 && b > 1 {
                return Err(self.corrupt("varint overflows 64 bits"));
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.corrupt("varint too long"))
    }

    fn errno(&mut self, what: &'static str) -> Result<i32, TraceError> {
        i32::try_from(self.varint(what)?).map_err(|_| self.corrupt("errno too large"))
    }

    /// `bytes` of at most `max` bytes.
    fn bytes(&mut self, what: &'static str, max: u64) -> Result<Vec<u8>, TraceError> {
        let n = self.varint(what)?;
        if n > max {
            return Err(self.corrupt("length is implausible"));
        }
        let mut data = Vec::new();
        (&mut self.r)
            .take(n)
            .read_to_end(&mut data)
            .map_err(|source| TraceError::Io { path: self.path.clone(), source })?;
        self.offset += data.len() as u64;
        if (data.len() as u64) < n {
            return Err(TraceError::Truncated { path: self.path.clone(), offset: self.offset, what });
        }
        Ok(data)
    }

    /// The next event; `Ok(None)` at a clean end of file (only valid after the end event).
    pub fn next_event(&mut self) -> Result<Option<Event>, TraceError> {
        let start = self.offset;
        let Some(tag) = self.byte_opt()? else { return Ok(None) };
        let ev = match tag {
            TAG_SYSCALL => {
                let what = "a syscall event";
                let tid = u32::try_from(self.varint(what)?).map_err(|_| self.corrupt("thread id too large"))?;
                let number = self.varint(what)?;
                let delta = self.varint(what)?;
                let mut d = [0u8; 4];
                for b in &mut d {
                    *b = self.byte(what)?;
                }
                self.last_instructions = self.last_instructions.wrapping_add(delta);
                self.last_tid = tid;
                Event::Syscall { tid, number, instructions: self.last_instructions, digest: u32::from_le_bytes(d) }
            }
            t if t & TAG_COMPACT != 0 => {
                if self.last_tid == 0 {
                    return Err(TraceError::Corrupt {
                        path: self.path.clone(),
                        offset: start,
                        what: "a compact syscall event before any full one".into(),
                    });
                }
                let mut b = [0u8; 6];
                for x in &mut b {
                    *x = self.byte("a syscall event")?;
                }
                self.last_instructions = self.last_instructions.wrapping_add(u64::from(t & !TAG_COMPACT));
                Event::Syscall {
                    tid: self.last_tid,
                    number: u64::from(u16::from_le_bytes([b[0], b[1]])),
                    instructions: self.last_instructions,
                    digest: u32::from_le_bytes([b[2], b[3], b[4], b[5]]),
                }
            }
            TAG_READ => Event::StdinRead(self.bytes("a stdin event", MAX_READ)?),
            TAG_READ_ERR => Event::StdinError(self.errno("a stdin error event")?),
            TAG_INTERRUPTED => Event::ConsoleInterrupted,
            TAG_TERMINAL => {
                let errno = self.errno("a terminal event")?;
                Event::Terminal { errno, data: self.bytes("a terminal event", MAX_PATH)? }
            }
            TAG_SIGNALS => {
                let step = self.varint("a signals event")?;
                Event::Signals { step, mask: self.varint("a signals event")? }
            }
            TAG_WRITE_ERR => Event::WriteError(self.errno("a write error event")?),
            TAG_FILE => {
                let what = "a file event";
                let path = self.bytes(what, MAX_PATH)?;
                let follow = match self.byte(what)? {
                    0 => false,
                    1 => true,
                    _ => return Err(self.corrupt("bad flag byte in a file event")),
                };
                let kind = self.byte(what)?;
                let mode = u32::try_from(self.varint(what)?).map_err(|_| self.corrupt("file mode too large"))?;
                let size = self.varint(what)?;
                let mut d = [0u8; 8];
                for b in &mut d {
                    *b = self.byte(what)?;
                }
                let identity = Identity { kind, mode, size, digest: u64::from_le_bytes(d) };
                Event::File { path, follow, identity }
            }
            TAG_MONO => {
                let d = unzigzag(self.varint("a clock event")?);
                self.last_mono = self.last_mono.wrapping_add(d as u64);
                Event::Monotonic(self.last_mono)
            }
            TAG_REAL => {
                let d = unzigzag(self.varint("a clock event")?);
                self.last_real = self.last_real.wrapping_add(d as u64);
                Event::Realtime(self.last_real)
            }
            TAG_END => {
                let what = "the end event";
                let outcome = self.byte(what)?;
                let code = self.byte(what)?;
                if outcome > OUTCOME_INTERRUPTED {
                    return Err(TraceError::Corrupt {
                        path: self.path.clone(),
                        offset: start + 1,
                        what: "unknown outcome".into(),
                    });
                }
                let instructions = self.varint(what)?;
                let syscalls = self.varint(what)?;
                Event::End { outcome, code, instructions, syscalls }
            }
            other => {
                return Err(TraceError::Corrupt {
                    path: self.path.clone(),
                    offset: start,
                    what: format!("unknown event tag {other:#04x}"),
                })
            }
        };
        Ok(Some(ev))
    }
}

// --- replaying -------------------------------------------------------------------------

enum Stop {
    Diverged(String),
    Trace(TraceError),
}

/// The trace being replayed, shared by the tap, the console, the clock and the root.
struct Source {
    reader: TraceReader,
    peeked: Option<Event>,
    stop: Option<Stop>,
    /// Replay past files that changed (`--force`), with a warning each.
    force: bool,
    warnings: Vec<String>,
    /// Syscalls the replay has made.
    syscalls: u64,
    /// Where the replay is (for messages about input events out of place).
    last_point: String,
}

impl Source {
    fn peek(&mut self) -> Option<&Event> {
        if self.stop.is_some() {
            return None;
        }
        if self.peeked.is_none() {
            match self.reader.next_event() {
                Ok(Some(e)) => self.peeked = Some(e),
                Ok(None) => {
                    let (path, offset) = (self.reader.path.clone(), self.reader.offset);
                    self.stop = Some(Stop::Trace(TraceError::Truncated { path, offset, what: "an event" }));
                }
                Err(e) => self.stop = Some(Stop::Trace(e)),
            }
        }
        self.peeked.as_ref()
    }

    fn next(&mut self) -> Option<Event> {
        self.peek();
        self.peeked.take()
    }

    /// The recording's console call was cut short here by the interrupt: the guest thread
    /// waits, as it did when the recording stopped.
    fn interrupted_here(&mut self) -> bool {
        let here = self.peek() == Some(&Event::ConsoleInterrupted);
        if here {
            self.next();
        }
        here
    }

    fn diverge(&mut self, msg: String) {
        if self.stop.is_none() {
            self.stop = Some(Stop::Diverged(msg));
        }
    }

    /// An input event expected here; divergence if the trace has something else.
    fn input(&mut self, what: &str) -> Option<Event> {
        match self.next() {
            Some(e @ (Event::Syscall { .. } | Event::End { .. })) => {
                let msg = format!("{}: the replay made {what}, the recording has {e} next", self.last_point);
                self.diverge(msg);
                None
            }
            other => other,
        }
    }
}

type SharedSource = Rc<RefCell<Source>>;

fn describe_point(p: &SyscallPoint<'_>) -> String {
    let who = if p.tid == p.pid { format!("pid {}", p.pid) } else { format!("pid {} thread {}", p.pid, p.tid) };
    format!("at syscall #{} ({who}, instruction {})", p.index, p.instructions)
}

struct ReplayTap(SharedSource);

impl SyscallTap for ReplayTap {
    fn syscall(&mut self, p: &SyscallPoint<'_>) -> bool {
        let mut s = self.0.borrow_mut();
        if s.stop.is_some() {
            return false;
        }
        s.syscalls = p.index;
        let here = describe_point(p);
        let actual = Event::Syscall {
            tid: p.tid,
            number: (p.call.number as u64) & NUMBER_BITS,
            instructions: p.instructions,
            digest: checkpoint_digest(p),
        };
        match s.next() {
            Some(expected) if expected == actual => {
                s.last_point = here;
                true
            }
            Some(expected) => {
                s.diverge(format!("{here}: expected {expected}, got {actual}"));
                false
            }
            // The trace ended or is unreadable: reported after the run.
            None => false,
        }
    }
}

struct ReplayConsole {
    source: SharedSource,
    out: Box<dyn Console>,
}

impl Console for ReplayConsole {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut s = self.source.borrow_mut();
        if s.interrupted_here() {
            return Err(std::io::ErrorKind::Interrupted.into());
        }
        match s.input("a stdin read") {
            Some(Event::StdinRead(data)) if data.len() <= buf.len() => {
                buf[..data.len()].copy_from_slice(&data);
                Ok(data.len())
            }
            Some(Event::StdinError(errno)) => Err(recorded_error(errno)),
            Some(other) => {
                let msg = format!(
                    "{}: the replay made a stdin read of at most {} bytes, the recording has {other} next",
                    s.last_point,
                    buf.len()
                );
                s.diverge(msg);
                Err(std::io::Error::other("replay diverged"))
            }
            None => Err(std::io::Error::other("replay stopped")),
        }
    }

    fn write(&mut self, stream: ConsoleStream, data: &[u8]) -> std::io::Result<()> {
        let mut s = self.source.borrow_mut();
        if let Some(&Event::WriteError(errno)) = s.peek() {
            s.next();
            return Err(recorded_error(errno));
        }
        if s.interrupted_here() {
            return Err(std::io::ErrorKind::Interrupted.into());
        }
        drop(s);
        let _ = self.out.write(stream, data);
        Ok(())
    }

    /// The recorded answer; the host's terminal is never touched.
    fn terminal(&mut self, _fd: u8, _cmd: usize, _value: usize, arg: &mut [u8]) -> std::io::Result<()> {
        let mut s = self.source.borrow_mut();
        match s.input("a terminal request") {
            Some(Event::Terminal { errno: 0, data }) if data.is_empty() || data.len() == arg.len() => {
                arg[..data.len()].copy_from_slice(&data);
                Ok(())
            }
            Some(Event::Terminal { errno, .. }) if errno != 0 => Err(recorded_error(errno)),
            Some(other) => {
                let msg =
                    format!("{}: the replay made a terminal request, the recording has {other} next", s.last_point);
                s.diverge(msg);
                Err(std::io::Error::other("replay diverged"))
            }
            None => Err(std::io::Error::other("replay stopped")),
        }
    }

    /// Always set: the kernel asks at every scheduler step, and gets the recorded signals
    /// at the step they were delivered.
    fn signal_flag(&self) -> Option<Arc<std::sync::atomic::AtomicBool>> {
        Some(Arc::new(std::sync::atomic::AtomicBool::new(true)))
    }

    fn host_signals(&mut self, step: u64) -> u64 {
        let mut s = self.source.borrow_mut();
        match s.peek() {
            Some(&Event::Signals { step: at, mask }) if at == step => {
                s.next();
                mask
            }
            _ => 0,
        }
    }
}

struct ReplayClock(SharedSource);

impl HostClock for ReplayClock {
    fn monotonic_ns(&mut self) -> u64 {
        let mut s = self.0.borrow_mut();
        match s.input("a monotonic clock reading") {
            Some(Event::Monotonic(v)) => v,
            Some(other) => {
                let msg =
                    format!("{}: the replay read the monotonic clock, the recording has {other} next", s.last_point);
                s.diverge(msg);
                s.reader.last_mono
            }
            None => s.reader.last_mono,
        }
    }

    fn realtime_ns(&mut self) -> u64 {
        let mut s = self.0.borrow_mut();
        match s.input("a realtime clock reading") {
            Some(Event::Realtime(v)) => v,
            Some(other) => {
                let msg =
                    format!("{}: the replay read the realtime clock, the recording has {other} next", s.last_point);
                s.diverge(msg);
                s.reader.last_real
            }
            None => s.reader.last_real,
        }
    }

    fn sleep_ns(&mut self, _ns: u64) {}
}

/// How to replay.
#[derive(Clone, Default)]
pub struct ReplayOptions {
    /// Use this root instead of the recorded one.
    pub root: Option<Root>,
    /// Use this overlay directory instead of the recorded one.
    pub overlay: Option<PathBuf>,
    /// Replay past files of the root that changed since the recording (a warning each), to
    /// find where they make the run diverge.
    pub force: bool,
    /// The replay's stop flag (an interrupt ends it).
    pub border: crate::host::Border,
    /// Print a line for each guest process a core-dumping signal kills, as the run did.
    pub report_fatal_signals: bool,
}

/// How a replay that matched its recording ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Replayed {
    /// The guest's outcome (a budget outcome where the recording was interrupted).
    pub outcome: RunOutcome,
    /// The host signal that interrupted the recording: the replay stopped where it did.
    pub interrupted_by: Option<u8>,
    /// Guest instructions replayed.
    pub instructions: u64,
}

impl Replayed {
    /// The exit status the recording had: the guest's, or 128 + the interrupting signal.
    pub fn exit_status(&self) -> i32 {
        match self.interrupted_by {
            Some(sig) => 128 + i32::from(sig),
            None => self.outcome.exit_status(),
        }
    }
}

/// The root to replay on: the one asked for, else the recorded one if it is still there.
fn replay_root(header: &Header, asked: Option<&Root>) -> Result<Root, ReplayError> {
    if let Some(root) = asked {
        return Ok(root.clone());
    }
    let (path, option) = match &header.root {
        Root::Default => return Ok(Root::Default),
        Root::Image(p) => (p, "--image FILE"),
        Root::Dir(p) => (p, "--root DIR"),
    };
    if path.exists() {
        return Ok(header.root.clone());
    }
    let given = if header.root_given != path.display().to_string() {
        format!(" (given as {} when recording)", header.root_given)
    } else {
        String::new()
    };
    Err(ReplayError::Setup(format!(
        "the recorded root {}{given} is not there; pass `warden replay {option}` with it or a copy of it",
        path.display()
    )))
}

/// Replays `trace`, writing the guest's output to `console`. A file of the root the guest
/// uses that differs from the recorded one stops the replay with a divergence naming it,
/// unless `options.force`; then `warn` receives a line for it and the replay goes on.
pub fn replay(
    trace: &Path,
    options: &ReplayOptions,
    console: Box<dyn Console>,
    warn: &mut dyn FnMut(String),
) -> Result<Replayed, ReplayError> {
    let (mut kernel, run) = start_replay(trace, options, console)?;
    let outcome = kernel.run();
    run.finish(kernel, outcome, warn)
}

/// What checks a replay's end against the recording ([`ReplayRun::finish`]), beside the
/// kernel [`start_replay`] booted.
pub struct ReplayRun {
    source: Rc<RefCell<Source>>,
    interrupted: Option<(u8, u64)>,
}

/// Boots the replay of `trace` (see [`replay`]) without running it: a debugger drives it.
pub fn start_replay(
    trace: &Path,
    options: &ReplayOptions,
    console: Box<dyn Console>,
) -> Result<(guest_kernel::Kernel, ReplayRun), ReplayError> {
    let (reader, header) = TraceReader::open(trace)?;
    let mut opts = header.run_options();
    opts.root = replay_root(&header, options.root.as_ref())?;
    opts.border = options.border.clone();
    opts.report_fatal_signals = options.report_fatal_signals;
    let interrupted = reader.interrupted;
    if let Some((_, at)) = interrupted {
        opts.budget = Some(opts.budget.map_or(at, |b| b.min(at)));
    }
    let vfs = open_root(&opts.root)?;
    add_files(&vfs, &header.extra_files).map_err(ReplayError::Setup)?;
    if header.overlay.is_none() {
        if let Some(dir) = &options.overlay {
            return Err(ReplayError::Setup(format!(
                "replay --overlay {}: the run was recorded without an overlay",
                dir.display()
            )));
        }
    }
    if let Some((recorded_dir, recorded)) = &header.overlay {
        let dir = options.overlay.as_ref().unwrap_or(recorded_dir);
        let now = overlay_digest(dir).map_err(ReplayError::Setup)?;
        if now != *recorded {
            return Err(ReplayError::RootChanged(format!(
                "the overlay {} differs from its contents when the recording started (digest {now:016x}, \
                 recorded {recorded:016x}): a run writes through to its overlay, so replay against a copy \
                 saved before recording (replay --overlay DIR)",
                dir.display()
            )));
        }
        crate::attach_overlay(&vfs, dir)?;
        opts.overlay = Some(dir.clone());
    }
    let policy = match &header.policy {
        Some((name, text)) => Some(crate::policy::parse(name, text).map_err(RunError::Policy)?),
        None => None,
    };
    let source = Rc::new(RefCell::new(Source {
        reader,
        peeked: None,
        stop: None,
        force: options.force,
        warnings: Vec::new(),
        syscalls: 0,
        last_point: "before the first syscall".into(),
    }));
    let console = Box::new(ReplayConsole { source: source.clone(), out: console });
    let root = Box::new(WatchedRoot::new(vfs.clone(), Watch::Replay(source.clone())));
    let mut kernel = crate::boot_root(&opts, &vfs, root, console, header.cwd.clone(), policy)?;
    kernel.set_syscall_tap(Box::new(ReplayTap(source.clone())));
    if opts.real_time {
        kernel.set_host_clock(Box::new(ReplayClock(source.clone())));
    }
    Ok((kernel, ReplayRun { source, interrupted }))
}

impl ReplayRun {
    /// Checks the end of a replay that ended with `outcome` against the recording.
    pub fn finish(
        self,
        kernel: guest_kernel::Kernel,
        outcome: RunOutcome,
        warn: &mut dyn FnMut(String),
    ) -> Result<Replayed, ReplayError> {
        let ReplayRun { source, interrupted } = self;
        let stats = kernel.stats();
        drop(kernel);
        let mut s = source.borrow_mut();
        for w in std::mem::take(&mut s.warnings) {
            warn(w);
        }
        if let Some(stop) = s.stop.take() {
            return Err(match stop {
                Stop::Diverged(m) => ReplayError::Diverged(m),
                Stop::Trace(e) => ReplayError::Trace(e),
            });
        }
        let (mut kind, mut code) = outcome_code(outcome);
        if let (Some((sig, _)), RunOutcome::BudgetExhausted) = (interrupted, outcome) {
            // Stopped where the recording was interrupted.
            (kind, code) = (OUTCOME_INTERRUPTED, sig);
        }
        let ended = format!(
            "at the end of the run ({} after {} instructions and {} syscalls)",
            outcome_text(kind, code),
            stats.instructions,
            stats.syscalls
        );
        let next = s.next();
        if let Some(Stop::Trace(e)) = s.stop.take() {
            return Err(ReplayError::Trace(e));
        }
        let replayed = Replayed {
            outcome,
            interrupted_by: interrupted.map(|(sig, _)| sig).filter(|_| kind == OUTCOME_INTERRUPTED),
            instructions: stats.instructions,
        };
        match next {
            Some(Event::End { outcome: k, code: c, instructions, syscalls })
                if (k, c, instructions, syscalls) == (kind, code, stats.instructions, stats.syscalls) =>
            {
                let at = s.reader.offset;
                match s.reader.byte_opt() {
                    Ok(None) => Ok(replayed),
                    Ok(Some(_)) => Err(ReplayError::Trace(TraceError::Corrupt {
                        path: s.reader.path.clone(),
                        offset: at,
                        what: "data after the end event".into(),
                    })),
                    Err(e) => Err(ReplayError::Trace(e)),
                }
            }
            Some(Event::End { outcome: k, code: c, instructions, syscalls }) => Err(ReplayError::Diverged(format!(
                "{ended}: the recording ended with {} after {instructions} instructions and {syscalls} syscalls",
                outcome_text(k, c)
            ))),
            Some(other) => Err(ReplayError::Diverged(format!("{ended}: the recording continues with {other}"))),
            None => Err(ReplayError::Setup("trace reader lost its place (a bug)".into())),
        }
    }
}
