//! Hooks for deterministic record and replay (the trace format is documented in the `warden`
//! crate, `src/record.rs`).
//!
//! A run is a pure function of the image, the arguments, the seed and what comes from outside
//! the guest. The kernel exposes exactly those outside inputs and a checkpoint per system call:
//! - [`TraceWriter`] ([`Kernel::set_recorder`]): the recording side. At every system call
//!   entry (after the call is decoded into the kernel's own copy and the policy let it
//!   through, before any supervisor sees it or it runs) the kernel appends a syscall event,
//!   inline: no allocation, no call through a trait object, 7 bytes in the usual case. The
//!   embedder shares the writer (`Rc<TraceWriter>`) to append everything else (header,
//!   input events, end) in run order.
//! - [`SyscallTap`]: the replaying side, called once per system call entry at the same point
//!   with a [`SyscallPoint`]; returning `false` stops the run at once with
//!   [`crate::RunOutcome::Stopped`] (a replay that diverged).
//! - [`HostClock`]: where the host clock is read when `real_time` is set (and how the kernel
//!   sleeps while every thread waits); a recorder logs each reading, a replayer returns them.
//! - The console ([`crate::Console`]) is already the embedder's: stdin data and the results of
//!   console writes can be logged and replayed there.
//!
//! A recorder and a tap exclude each other (one hook field); with neither the cost is one
//! branch per call. [`checkpoint_digest_of`] is the digest both sides compare: the 16
//! general registers and rip ([`register_fold`], taken on the trap path while the registers
//! are at hand) and the kernel's copy of every pointer argument the call reads (paths, write
//! buffers, exec vectors).
//!
//! # Why not a host supervisor
//! The issue asked for recording on the host supervisor
//! ([`crate::supervise::HostSupervisor`]) if that held the 5 % bar. It does not: on the
//! syscall-heavy bench workload (`cargo bench --bench record`, callgrind instruction counts,
//! see the `warden` crate's `src/record.rs`) a plain call costs about 1,270 host
//! instructions and a pass-through host supervisor that does nothing adds about 200 (+16 %:
//! the call is parked as supervised, an entry event built, the decision applied), while this
//! writer, digest included, adds about 58 (+4.6 %). A host supervisor also sees no register
//! snapshot for the digest and cannot stop the whole run. So recording stays this narrow
//! hook; running before every supervisor, it sees every call, supervised or not.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use crate::call::{Call, Input};
use crate::{Kernel, Pid};

/// What a tap sees at each system call.
pub struct SyscallPoint<'a> {
    /// 1-based index of the call in the run (all threads together).
    pub index: u64,
    pub tid: Pid,
    pub pid: Pid,
    /// Guest instructions retired by all threads so far.
    pub instructions: u64,
    /// [`register_fold`] of the thread's registers at the call.
    pub registers: u64,
    pub call: &'a Call,
}

/// Observes (and may stop) every system call.
pub trait SyscallTap {
    /// `false` stops the run before the call executes.
    fn syscall(&mut self, point: &SyscallPoint<'_>) -> bool;
}

/// The host's clock, as the kernel reads it in `real_time` mode.
pub trait HostClock {
    /// Nanoseconds since the start of the run.
    fn monotonic_ns(&mut self) -> u64;
    /// Nanoseconds since the Unix epoch.
    fn realtime_ns(&mut self) -> u64;
    /// Waits `ns` nanoseconds (every guest thread is asleep), or less when a host signal
    /// came (^C for the guest, a stop): the kernel then looks at what it brought and waits
    /// again for what is left.
    fn sleep_ns(&mut self, ns: u64);
}

/// The host clock itself.
pub struct SystemClock {
    start: std::time::Instant,
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock { start: std::time::Instant::now() }
    }
}

impl HostClock for SystemClock {
    fn monotonic_ns(&mut self) -> u64 {
        self.start.elapsed().as_nanos().min(u64::MAX as u128) as u64
    }

    fn realtime_ns(&mut self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos().min(u64::MAX as u128) as u64)
            .unwrap_or(0)
    }

    fn sleep_ns(&mut self, ns: u64) {
        let ts = libc::timespec { tv_sec: (ns / 1_000_000_000) as libc::time_t, tv_nsec: (ns % 1_000_000_000) as _ };
        // SAFETY: nanosleep reads one timespec and writes nothing (no remainder pointer); a
        // signal ends it early (EINTR), which is what the caller wants.
        unsafe {
            libc::nanosleep(&ts, std::ptr::null_mut());
        }
    }
}

const K: u64 = 0x9e37_79b9_7f4a_7c15;

/// Word `j` of a buffer is multiplied by `BYTE_KEY + 2 * j * K` (odd, distinct per word).
const BYTE_KEY: u64 = 0x94d0_49bb_1331_11eb;
/// The key of word 1.
const BYTE_KEY_1: u64 = BYTE_KEY.wrapping_add(K << 1);

/// A sum of the buffer's 8-byte words, each times its own odd key (so a changed word always
/// changes the sum, and moving words changes it too), plus the length. A last partial word is
/// read as the buffer's final 8 bytes (overlapping the word before), so there is no copy.
#[inline]
fn sum_bytes(bytes: &[u8]) -> u64 {
    let n = bytes.len();
    let acc = (n as u64).wrapping_mul(K);
    let word = |i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&bytes[i..i + 8]);
        u64::from_le_bytes(w)
    };
    match n {
        // The common write of a line or a short record: no loop.
        9..=16 => acc.wrapping_add(word(0).wrapping_mul(BYTE_KEY)).wrapping_add(word(n - 8).wrapping_mul(BYTE_KEY_1)),
        8 => acc.wrapping_add(word(0).wrapping_mul(BYTE_KEY)),
        0..8 => {
            let mut w = 0u64;
            for (j, &b) in bytes.iter().enumerate() {
                w |= u64::from(b) << (8 * j);
            }
            acc.wrapping_add(w.wrapping_mul(BYTE_KEY))
        }
        _ => sum_long(bytes, acc, word),
    }
}

/// [`sum_bytes`] of a buffer over 16 bytes.
#[inline(never)]
fn sum_long(bytes: &[u8], mut acc: u64, word: impl Fn(usize) -> u64) -> u64 {
    let n = bytes.len();
    let mut key = BYTE_KEY;
    let mut i = 0;
    while i + 8 <= n {
        acc = acc.wrapping_add(word(i).wrapping_mul(key));
        key = key.wrapping_add(K << 1);
        i += 8;
    }
    if i < n {
        acc = acc.wrapping_add(word(n - 8).wrapping_mul(key));
    }
    acc
}

/// The registers' part of a checkpoint: the XOR of the 16 general registers and rip
/// ([`emu::Cpu::gpr_xor`]: a change in any one of them changes it). The kernel computes it
/// on the trap path while the registers are at hand, only when a tap or a recorder is
/// installed.
#[inline(always)]
pub fn register_fold(cpu: &emu::Cpu) -> u64 {
    cpu.gpr_xor() ^ cpu.rip
}

/// The digest of a checkpoint, in 32 bits: [`checkpoint_digest_of`] the point's registers
/// and call.
#[inline]
pub fn checkpoint_digest(point: &SyscallPoint<'_>) -> u32 {
    checkpoint_digest_of(point.registers, point.call)
}

/// The digest of a checkpoint: the registers ([`register_fold`]: every general register and
/// rip) and the kernel's copy of what the call reads (its encoded items: paths, write
/// buffers, structures, exec vectors, and any path the jail resolved; each 8-byte word times
/// its own odd key, plus the length, so a changed or moved word changes the sum), the two
/// halves XORed into the 32 bits kept. The arguments are registers, so they are in the
/// fold. Recording runs this at every system call: a handful of host instructions for a call
/// without a buffer.
#[inline]
pub fn checkpoint_digest_of(registers: u64, call: &Call) -> u32 {
    checkpoint_fold(registers, call) as u32
}

/// [`checkpoint_digest_of`] in the low 32 bits of a `u64` (the writer shifts it into place
/// without masking the high bits).
#[inline(always)]
fn checkpoint_fold(registers: u64, call: &Call) -> u64 {
    let read = match &call.input {
        Input::Items(items) | Input::Refused(_, items) => sum_bytes(items.encoded()),
        _ => 0,
    };
    let acc = registers ^ read;
    (acc >> 32) ^ acc
}

// --- the trace writer ---------------------------------------------------------------

/// Event tag of a full syscall event (see the format in the `warden` crate's `record.rs`).
pub const TAG_SYSCALL: u8 = 0x01;
/// High bit set: a compact syscall event.
pub const TAG_COMPACT: u8 = 0x80;
/// The bits of a call's number a syscall event keeps (the Redox numbers differ in them, and
/// so do the Linux ones, whose tag bit the kernel sets above them).
pub const NUMBER_BITS: u64 = 0xffff;

/// Bytes the writer buffers before writing them out: small enough to stay in the host's
/// L1/L2 caches beside the interpreter's data (a 64 KiB buffer measured slower).
const WRITER_BUF: usize = 16 << 10;
/// Room past `WRITER_BUF` for one event written without a bounds check per byte.
const WRITER_SLACK: usize = 64;

/// Writes a varint into `buf` at `*at` (`buf` must have 10 bytes free there).
#[inline]
pub fn put_varint_at(buf: &mut [u8], at: &mut usize, mut v: u64) {
    while v >= 0x80 {
        buf[*at] = (v as u8) | 0x80;
        *at += 1;
        v >>= 7;
    }
    buf[*at] = v as u8;
    *at += 1;
}

/// The stream a recording writes: one fixed 16 KiB buffer, collected into hand-offs for a
/// writer thread whenever it fills (no allocation per event, a long run never holds its
/// trace). The kernel writes a syscall event into it at every call
/// ([`Kernel::set_recorder`]), inline on the trap path; the embedder writes everything else
/// (the header, input events, the end) with [`TraceWriter::put`], through the same shared
/// writer so the order is the run's.
///
/// Shared as `Rc<TraceWriter>`, with the state in `Cell`s rather than the whole writer in a
/// `RefCell`: the syscall event then takes no borrow (a `RefCell` borrow and release are 4
/// of the roughly 60 host instructions recording adds to a call, measured).
///
/// The writes themselves run on a thread of their own: writing a trace file costs the host
/// kernel about 1.4 ms per MB here (page-cache pages, file-system bookkeeping), which on the
/// most syscall-heavy loop (7 bytes per call) was 9 % of the guest's time, twice what the
/// recording's own instructions cost (in thread CPU time, recording that loop measured +12 %
/// writing on the guest's thread, about +7 % with a writer thread woken per 16 KiB, about
/// +5 % woken per 256 KiB). At most [`IN_FLIGHT`] hand-off buffers exist; past that the
/// guest waits for the disk, so memory stays bounded.
pub struct TraceWriter {
    len: Cell<usize>,
    last_instructions: Cell<u64>,
    /// Thread of the previous full syscall event (compact events omit it).
    last_tid: Cell<u32>,
    /// The writer thread's ends (only borrowed while draining).
    out: RefCell<Output>,
    /// In line, so a store needs no load of a pointer.
    buf: [Cell<u8>; WRITER_BUF + WRITER_SLACK],
}

/// Bytes handed to the writer thread at a time: each hand-off wakes it, and a wake-up costs
/// the guest's thread microseconds on a VM, so the 16 KiB buffer is collected into these.
const HANDOFF: usize = 256 << 10;
/// Hand-off buffers at most, the one being filled included (so under 1 MiB of trace in
/// memory); past that the guest waits for the disk.
pub const IN_FLIGHT: usize = 3;

struct Output {
    /// Full buffers to the writer thread; `None` once finished.
    full: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    /// Written buffers back, for reuse.
    empty: std::sync::mpsc::Receiver<Vec<u8>>,
    /// Buffers made so far (at most `IN_FLIGHT`).
    made: usize,
    /// The bytes of the next hand-off.
    pending: Vec<u8>,
    /// Hands back the first write error, or the flush's result.
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl Output {
    /// Adds `bytes` to the next hand-off, handing it off once it is large enough.
    fn push(&mut self, bytes: impl Iterator<Item = u8>) {
        self.pending.extend(bytes);
        if self.pending.len() >= HANDOFF {
            self.hand_off();
        }
    }

    /// Sends what is pending to the writer thread; the next pending buffer is one handed
    /// back, a new one while fewer than `IN_FLIGHT` exist, else the next one handed back
    /// (waiting for the disk).
    fn hand_off(&mut self) {
        let Some(full) = &self.full else { return };
        if self.pending.is_empty() {
            return;
        }
        let mut next = match self.empty.try_recv() {
            Ok(v) => v,
            Err(_) if self.made < IN_FLIGHT => {
                self.made += 1;
                Vec::with_capacity(HANDOFF + WRITER_BUF)
            }
            // Every buffer is out: wait for the disk. An error here means the thread is gone
            // (it panicked); `finish` says so.
            Err(_) => self.empty.recv().unwrap_or_default(),
        };
        next.clear();
        let _ = full.send(std::mem::replace(&mut self.pending, next));
    }
}

/// The writer thread: writes each buffer in order, keeps the first error (and drops what
/// comes after it), hands the buffers back, flushes at the end.
fn write_all_of(
    mut out: Box<dyn std::io::Write + Send>,
    full: std::sync::mpsc::Receiver<Vec<u8>>,
    empty: std::sync::mpsc::SyncSender<Vec<u8>>,
) -> std::io::Result<()> {
    let mut result = Ok(());
    for buf in full {
        if result.is_ok() {
            result = out.write_all(&buf);
        }
        let _ = empty.try_send(buf);
    }
    result.and_then(|()| out.flush())
}

impl TraceWriter {
    /// A writer to `out`, written on a thread of its own (spawning it is the one way this
    /// fails).
    pub fn new(out: Box<dyn std::io::Write + Send>) -> std::io::Result<TraceWriter> {
        let (full_tx, full_rx) = std::sync::mpsc::sync_channel(IN_FLIGHT);
        let (empty_tx, empty_rx) = std::sync::mpsc::sync_channel(IN_FLIGHT);
        let thread = std::thread::Builder::new()
            .name("trace writer".into())
            .spawn(move || write_all_of(out, full_rx, empty_tx))?;
        Ok(TraceWriter {
            len: Cell::new(0),
            last_instructions: Cell::new(0),
            last_tid: Cell::new(0),
            out: RefCell::new(Output {
                full: Some(full_tx),
                empty: empty_rx,
                made: 1,
                pending: Vec::with_capacity(HANDOFF + WRITER_BUF),
                thread: Some(thread),
            }),
            buf: [const { Cell::new(0) }; WRITER_BUF + WRITER_SLACK],
        })
    }

    /// Moves the buffer towards the writer thread (as a copy: the cells are only read by
    /// `Cell::get`).
    #[cold]
    fn drain(&self) {
        let len = self.len.get();
        self.out.borrow_mut().push(self.buf[..len].iter().map(Cell::get));
        self.len.set(0);
    }

    /// Appends `bytes` (any length).
    pub fn put(&self, bytes: &[u8]) {
        let len = self.len.get();
        if len + bytes.len() > WRITER_BUF {
            self.drain();
            if bytes.len() > WRITER_BUF {
                self.out.borrow_mut().push(bytes.iter().copied());
                return;
            }
        }
        let len = self.len.get();
        for (cell, &b) in self.buf[len..len + bytes.len()].iter().zip(bytes) {
            cell.set(b);
        }
        self.len.set(len + bytes.len());
    }

    /// Stores `word` at `at` (`at + 8` within the buffer and its slack): one 8-byte store.
    /// (Through eight `Cell::set`s the compiler splits it into four stores and the shifts
    /// between them, measured.)
    #[inline(always)]
    fn store8(&self, at: usize, word: u64) {
        let cells = &self.buf[at..at + 8];
        // SAFETY: the pointer comes from a shared slice of the eight cells, whose bytes are
        // inside `UnsafeCell`s, so writing through it is allowed; it covers exactly the 8
        // bytes written (checked by the slice above). The writer is `!Sync`, and nothing
        // holds a plain reference to the cells' bytes (they are only read by `Cell::get`).
        unsafe { cells.as_ptr().cast::<u8>().cast_mut().cast::<[u8; 8]>().write_unaligned(word.to_le_bytes()) }
    }

    /// A syscall event: `0x80 | delta`, number u16, digest u32 when the thread is the
    /// previous event's and fewer than 128 instructions passed; else a full event. Either
    /// keeps the number's low 16 bits ([`NUMBER_BITS`]). The digest is `folded`'s low 32
    /// bits ([`checkpoint_digest_of`]).
    #[inline(always)]
    pub fn syscall(&self, tid: u32, number: u64, instructions: u64, folded: u64) {
        // Written so the compiler sees `at < WRITER_BUF`: no bounds check on the store.
        let at = match self.len.get() {
            len @ 0..WRITER_BUF => len,
            _ => {
                self.drain();
                0
            }
        };
        let delta = instructions.wrapping_sub(self.last_instructions.get());
        self.last_instructions.set(instructions);
        if tid == self.last_tid.get() && delta < 0x80 {
            // One 8-byte store; the event is the first 7 bytes (the shift drops the fold's
            // high half into the eighth byte and beyond, so it needs no mask).
            let word = u64::from(TAG_COMPACT | delta as u8) | ((number & NUMBER_BITS) << 8) | (folded << 24);
            self.store8(at, word);
            self.len.set(at + 7);
        } else {
            self.syscall_full(at, tid, number, delta, folded as u32);
        }
    }

    #[inline(never)]
    fn syscall_full(&self, at: usize, tid: u32, number: u64, delta: u64, digest: u32) {
        self.last_tid.set(tid);
        let mut event = [0u8; 1 + 3 * 10 + 4];
        event[0] = TAG_SYSCALL;
        let mut n = 1;
        put_varint_at(&mut event, &mut n, u64::from(tid));
        put_varint_at(&mut event, &mut n, number & NUMBER_BITS);
        put_varint_at(&mut event, &mut n, delta);
        event[n..n + 4].copy_from_slice(&digest.to_le_bytes());
        n += 4;
        for (cell, &b) in self.buf[at..at + n].iter().zip(&event[..n]) {
            cell.set(b);
        }
        self.len.set(at + n);
    }

    /// Writes out what is buffered, waits for the writer thread and flushes; the first
    /// write error of the run, if any. Later events are dropped.
    pub fn finish(&self) -> std::io::Result<()> {
        self.drain();
        let mut o = self.out.borrow_mut();
        o.hand_off();
        o.full = None;
        match o.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(std::io::Error::other("the trace writer thread panicked")),
            None => Ok(()),
        }
    }
}

/// What watches the system calls: nothing, a recording, or a tap (a replay). One field, so
/// a plain run pays one test per call.
pub(crate) enum Hook {
    None,
    Record(Rc<TraceWriter>),
    Tap(Box<dyn SyscallTap>),
}

impl Kernel {
    /// Installs a tap that sees every system call from now on (in place of a recorder).
    pub fn set_syscall_tap(&mut self, tap: Box<dyn SyscallTap>) {
        self.hook = Hook::Tap(tap);
    }

    /// Reads the host clock through `clock` (only used with `real_time`).
    pub fn set_host_clock(&mut self, clock: Box<dyn HostClock>) {
        self.clock.set_host(clock);
    }

    /// Records every system call from now on into `writer` (a syscall event each, written
    /// inline on the trap path: no call through a trait object), in place of a tap.
    pub fn set_recorder(&mut self, writer: Rc<TraceWriter>) {
        self.hook = Hook::Record(writer);
    }

    /// Records the call or calls the tap; `false` if the tap stopped the run. Inline: out of
    /// line it costs the recording about 20 more host instructions per call (measured).
    #[inline]
    pub(crate) fn tap_syscall(&mut self, tid: Pid, registers: u64, call: &Call) -> bool {
        if let Hook::Record(w) = &self.hook {
            w.syscall(tid, call.number as u64, self.stats.instructions, checkpoint_fold(registers, call));
            return true;
        }
        self.tap_replay(tid, registers, call)
    }

    /// The tap's part of [`Kernel::tap_syscall`] (replaying: not on the recording path).
    #[inline(never)]
    fn tap_replay(&mut self, tid: Pid, registers: u64, call: &Call) -> bool {
        let pid = self.threads.get(&tid).map_or(tid, |t| t.pid);
        let point = SyscallPoint {
            index: self.stats.syscalls,
            tid,
            pid,
            instructions: self.stats.instructions,
            registers,
            call,
        };
        let go = match &mut self.hook {
            Hook::Tap(tap) => tap.syscall(&point),
            _ => true,
        };
        if !go {
            self.outcome = Some(crate::RunOutcome::Stopped);
        }
        go
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syscall::Items;
    use emu::Gate;
    use warden_abi::{ITEM_ARG, ITEM_BYTES, ITEM_PATH, ITEM_STRUCT};

    /// A `Write` the test can read back.
    #[derive(Clone, Default)]
    struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push(v as u8 | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    /// The format's syscall event, written the slow, obvious way.
    fn expected_event(out: &mut Vec<u8>, last: &mut (u32, u64), tid: u32, number: u64, instructions: u64, digest: u32) {
        let delta = instructions.wrapping_sub(last.1);
        last.1 = instructions;
        if tid == last.0 && delta < 0x80 {
            out.push(TAG_COMPACT | delta as u8);
            out.extend_from_slice(&((number & NUMBER_BITS) as u16).to_le_bytes());
        } else {
            last.0 = tid;
            out.push(TAG_SYSCALL);
            varint(out, u64::from(tid));
            varint(out, number & NUMBER_BITS);
            varint(out, delta);
        }
        out.extend_from_slice(&digest.to_le_bytes());
    }

    fn call(input: Input) -> Call {
        Call { input, ..Call::new(4, [0; 6], Gate::Syscall) }
    }

    #[test]
    fn the_writer_streams_exactly_the_documented_bytes() {
        let sink = Shared::default();
        let w = TraceWriter::new(Box::new(sink.clone())).unwrap();
        let mut want = Vec::new();
        let mut last = (0u32, 0u64);
        let mut instructions = 0u64;
        let mut seed = 0x1234_5678_9abc_def0u64;
        // Enough events for many drains and hand-offs (buffers reused); compact and full
        // ones, numbers with bits above the kept 16, puts larger than the whole buffer.
        for i in 0..100_000u64 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let tid = 1 + seed.is_multiple_of(97) as u32;
            instructions += match seed % 5 {
                0 => 300 + seed % 100_000,
                _ => seed % 128,
            };
            let number = seed >> 20;
            let folded = seed.rotate_left(17);
            w.syscall(tid, number, instructions, folded);
            expected_event(&mut want, &mut last, tid, number, instructions, folded as u32);
            if i % 1000 == 999 {
                let data: Vec<u8> = (0..(i as usize * 7) % 20_000).map(|b| b as u8).collect();
                w.put(&data);
                want.extend_from_slice(&data);
            }
        }
        w.finish().unwrap();
        let got = sink.0.lock().unwrap();
        assert_eq!(got.len(), want.len());
        let first_difference = got.iter().zip(&want).position(|(a, b)| a != b);
        assert_eq!(first_difference, None);
    }

    #[test]
    fn a_write_error_is_reported_once_at_finish() {
        struct Failing;
        impl std::io::Write for Failing {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("disk full"))
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let w = TraceWriter::new(Box::new(Failing)).unwrap();
        for i in 0..10_000 {
            w.syscall(1, 4, i, 0);
        }
        assert_eq!(w.finish().unwrap_err().to_string(), "disk full");
    }

    #[test]
    fn the_digest_moves_with_every_register_and_every_byte_read() {
        let mut cpu = emu::Cpu::new();
        for (i, r) in cpu.gpr.iter_mut().enumerate() {
            *r = 0x9e37_79b9_7f4a_7c15u64.wrapping_mul(i as u64 + 1);
        }
        cpu.rip = 0x40_1000;
        let base = register_fold(&cpu);
        let none = call(Input::None);
        let d = checkpoint_digest_of(base, &none);
        for i in 0..16 {
            for bit in [0, 40] {
                let mut c = cpu.clone();
                c.gpr[i] ^= 1 << bit;
                assert_ne!(checkpoint_digest_of(register_fold(&c), &none), d, "register {i}, bit {bit}");
            }
        }
        let mut c = cpu.clone();
        c.rip += 2;
        assert_ne!(checkpoint_digest_of(register_fold(&c), &none), d, "rip");

        // Every byte of every kind of buffer a call reads, at lengths around the word size.
        let one = |kind: u32| {
            move |b: Vec<u8>| {
                let mut items = Items::default();
                items.push(kind, 1, &b);
                Input::Items(items)
            }
        };
        let exec = |b: Vec<u8>| {
            let mut items = Items::default();
            items.push(ITEM_ARG, 1, b"prog");
            items.push(ITEM_ARG, 1, &b);
            Input::Items(items)
        };
        let kinds: [&dyn Fn(Vec<u8>) -> Input; 4] = [&one(ITEM_BYTES), &one(ITEM_PATH), &one(ITEM_STRUCT), &exec];
        for kind in kinds {
            for len in [1, 7, 8, 9, 15, 16, 17, 40] {
                let bytes: Vec<u8> = (0..len).map(|i| i as u8 * 3 + 1).collect();
                let d = checkpoint_digest_of(base, &call(kind(bytes.clone())));
                for at in 0..len {
                    let mut other = bytes.clone();
                    other[at] ^= 0x10;
                    assert_ne!(checkpoint_digest_of(base, &call(kind(other))), d, "length {len}, byte {at}");
                }
                // Same words, one byte longer (a zero byte): the length is in the sum.
                let mut longer = bytes.clone();
                longer.push(0);
                assert_ne!(checkpoint_digest_of(base, &call(kind(longer))), d, "length {len} + 1");
            }
        }
    }
}
