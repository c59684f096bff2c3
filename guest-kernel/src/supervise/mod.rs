//! Supervision (seed 000, race-free after seed 001): `SUPERVISE`, `CLONE_SUPERVISE`, the
//! guest supervisor's packets and the host supervisor trait.
//!
//! Design:
//! - Each supervised process has a chain of supervisors ([`ProcSup`]): guest channels
//!   (outermost first; a `None` slot is a `CLONE_SUPERVISE` child whose parent has not called
//!   `supervise` yet) and a flag for the host. Children inherit the chain, so no fork
//!   escapes. Every thread of such a process has `Thread::supervised` set: the trap path of
//!   an unsupervised thread pays exactly one branch on that flag.
//! - A supervised call, exception or interrupt becomes a [`Held`] entry and the thread runs
//!   the kernel-made call `Input::Resume`, which lands in [`Kernel::supervise_resume`]: one
//!   state machine that sends packets, parks on the thread's hold key until a reply is filed,
//!   runs the call, reports results, and finishes. A woken hold re-enters it; so does a call
//!   that blocked while running (it parks with the `Resume` call, never with the original),
//!   so post-call reports survive blocking.
//! - The call is canonicalised *before* anyone sees it: a path becomes the `scheme:path`
//!   it resolves to now (a sibling's later `chdir` changes nothing), `fexec`'s descriptor is
//!   pinned to its open description (a later `dup2` over it changes nothing). Supervisors
//!   see exactly these copies; the kernel runs exactly them.
//! - Results: the buffers a call writes are captured — saved before, read back and
//!   restored right after the call, with no guest instruction in between — so no guest
//!   thread sees them until every supervisor has let them through (seed 001's
//!   "kernel->user direction").
//! - Replies: one vocabulary, [`Reply`], for the host API and guest packets (which parse
//!   into it with `TryFrom`, an unknown action failing the write with EINVAL). What a reply
//!   means for the question asked (entry, result, exception) is decided in one pure
//!   function, `step`, unit-tested alone; the state machine only carries its verdict out.
//! - Order: the host first, then guest supervisors innermost first; results go back
//!   outermost guest first, the host last.
//! - Cost: the host decides at entry, before any [`Held`] exists; a call the host lets run
//!   (without a report) in a process no guest supervises runs like an unsupervised one —
//!   no allocation, no copy beyond the canonicalised path. Held calls live in boxes that are
//!   reused, and a packet without items goes round its channel without an allocation.

mod channel;
pub mod host;
#[cfg(test)]
mod tests;

use std::rc::Rc;

use emu::{reg, Access, Exit, Gate};
use warden_abi::*;

pub use host::{ExceptionEvent, HostSupervisor, Output, ProcessEvent, Reply, SyscallEntry};

use crate::call::{Block, Call, Input, SysError, SysResult};
use crate::process::{OpenFile, ProcState, WaitOn};
use crate::syscall::{outputs, OutRange};
use crate::usercopy::{copy_in, copy_out};
use crate::{Kernel, Pid};
use channel::{encode_items, hold_key, Channel, ChannelRef, SuperviseFile};

/// Which processes the host supervisor covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostAttach {
    /// Every process, now and later.
    All,
    /// Only those passed to `host_attach` (and, if `follow`, their children).
    Chosen { follow: bool },
}

/// The supervisors of one process.
#[derive(Clone, Default)]
pub(crate) struct ProcSup {
    chain: Vec<Option<ChannelRef>>,
    host: bool,
}

impl ProcSup {
    fn active(&self) -> bool {
        self.host || !self.chain.is_empty()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Waiting for guest supervisor `level` (0 = innermost) to answer the entry packet.
    Entry(usize),
    /// Approved: run (again, if it blocked).
    Run,
    /// Waiting for reporter `level` (outermost first) to answer the result packet.
    Result(usize),
    /// An exception, at guest supervisor `level`.
    Exception(usize),
}

/// What a supervisor was asked about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Asked {
    /// A call's entry.
    Entry,
    /// A call's result (after `Reply::RunReport`).
    Result,
    /// A CPU exception or non-gate interrupt.
    Exception,
}

/// What a held call does after one supervisor's reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// On to the next supervisor (or, past the last, run the call / deliver the result /
    /// raise the signal).
    Next,
    /// As `Next`; this supervisor also gets the call's result before the guest does.
    NextReporting,
    /// Finish with this raw result: the call does not run, or its result is replaced
    /// (then the remaining reporters still see it), or the excepted thread resumes with
    /// this `rax`.
    Return(u64),
    /// Resume the excepted thread as it is.
    Resume,
    /// Kill the process.
    Kill,
}

/// The whole supervision decision, without side effects: what `reply` to what was `asked`
/// means. Every pair is spelled out (no catch-all), for the host and guest supervisors alike.
fn step(asked: Asked, reply: Reply) -> Step {
    match (asked, reply) {
        (_, Reply::Kill) => Step::Kill,
        (_, Reply::Return(v)) => Step::Return(v),
        (Asked::Entry, Reply::RunReport) => Step::NextReporting,
        (Asked::Entry | Asked::Result, Reply::Run | Reply::Default) | (Asked::Result, Reply::RunReport) => Step::Next,
        (Asked::Exception, Reply::Run | Reply::RunReport) => Step::Resume,
        (Asked::Exception, Reply::Default) => Step::Next,
    }
}

#[derive(Clone, Copy, Debug)]
struct Fault {
    vector: u64,
    rip: u64,
    addr: u64,
    access: u64,
    signal: usize,
}

/// A supervised thread's call (or exception) in flight.
struct Held {
    pid: Pid,
    call: Call,
    /// `fexec`'s description, pinned at entry.
    pinned: Option<Rc<OpenFile>>,
    stage: Stage,
    /// Sequence number of the call (host) / of the packet awaiting a reply (0: none sent).
    seq: u64,
    pending: u64,
    host_report: bool,
    /// Guest supervisors that asked for the result, innermost first.
    report: Vec<ChannelRef>,
    result: usize,
    outputs: Vec<Output>,
    fault: Option<Fault>,
}

/// The held calls by thread: a short list (few threads are held at once), boxed so that
/// taking one out and putting it back moves a pointer; finished boxes are reused.
#[derive(Default)]
struct HeldMap {
    list: Vec<(Pid, Box<Held>)>,
    #[allow(clippy::vec_box, reason = "spare boxes are reused for the next held call")]
    spare: Vec<Box<Held>>,
}

impl HeldMap {
    fn take(&mut self, tid: Pid) -> Option<Box<Held>> {
        let at = self.list.iter().position(|(t, _)| *t == tid)?;
        Some(self.list.swap_remove(at).1)
    }

    fn put(&mut self, tid: Pid, h: Box<Held>) {
        match self.list.iter_mut().find(|(t, _)| *t == tid) {
            Some(slot) => slot.1 = h,
            None => self.list.push((tid, h)),
        }
    }

    /// A box holding `held` (a spare one if there is).
    fn boxed(&mut self, held: Held) -> Box<Held> {
        match self.spare.pop() {
            Some(mut b) => {
                *b = held;
                b
            }
            None => Box::new(held),
        }
    }

    fn recycle(&mut self, h: Box<Held>) {
        if self.spare.len() < 4 {
            self.spare.push(h);
        }
    }

    fn tids_of(&self, pid: Pid) -> Vec<Pid> {
        self.list.iter().filter(|(_, h)| h.pid == pid).map(|(t, _)| *t).collect()
    }
}

/// All supervision state of a kernel.
#[derive(Default)]
pub(crate) struct Supervision {
    seq: u64,
    procs: std::collections::BTreeMap<Pid, ProcSup>,
    held: HeldMap,
    host: Option<Box<dyn HostSupervisor>>,
    host_attach: Option<HostAttach>,
}

impl Supervision {
    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }
}

/// The kernel-made call a held thread runs.
fn resume_call(gate: Gate) -> Call {
    Call { number: SYS_SUPERVISE, args: [0; 6], gate, input: Input::Resume, entry: None }
}

fn exception_of(exit: &Exit, rip: u64) -> Fault {
    let (vector, addr, access) = match *exit {
        Exit::DivideError => (EXC_DIVIDE, 0, 0),
        Exit::Debug => (EXC_DEBUG, 0, 0),
        Exit::Breakpoint => (EXC_BREAKPOINT, 0, 0),
        Exit::InvalidOpcode { .. } => (EXC_INVALID_OPCODE, 0, 0),
        Exit::GeneralProtection => (EXC_GENERAL_PROTECTION, 0, 0),
        Exit::PageFault { addr, access } => {
            let a = match access {
                Access::Read => 0,
                Access::Write => 1,
                _ => 2,
            };
            (EXC_PAGE_FAULT, addr, a)
        }
        Exit::FloatingPoint => (EXC_X87, 0, 0),
        Exit::SimdFloatingPoint => (EXC_SIMD, 0, 0),
        Exit::Interrupt(n) => (EXC_INT | n as u64, 0, 0),
        Exit::Halt => (EXC_HALT, 0, 0),
        Exit::Syscall(_) | Exit::BudgetExhausted | Exit::DebugBreak => (0, 0, 0),
    };
    Fault { vector, rip, addr, access, signal: 0 }
}

/// A packet header (`seq`, `data_len` and `items` are filled in when it is queued).
fn packet_head(kind: u32, pid: Pid, tid: Pid, number: u64, args: [u64; 6]) -> SupervisePacket {
    let flags = if matches!(kind, PACKET_SYSCALL | PACKET_RESULT | PACKET_EXCEPTION) { PACKET_FLAG_REPLY } else { 0 };
    SupervisePacket { kind, flags, pid, tid, number, args, ..SupervisePacket::default() }
}

impl Kernel {
    // --- public API --------------------------------------------------------------------

    /// Installs the host supervisor. With [`HostAttach::All`] it covers every existing and
    /// future process (call it right after `spawn_init` to see init's first instruction).
    pub fn set_host_supervisor(&mut self, host: Box<dyn HostSupervisor>, attach: HostAttach) {
        self.sup.host = Some(host);
        self.sup.host_attach = Some(attach);
        if attach == HostAttach::All {
            let pids: Vec<Pid> = self.procs.keys().copied().collect();
            for pid in pids {
                self.host_attach(pid);
            }
        }
    }

    /// Removes the host supervisor (detaching it from every process) and returns it.
    pub fn take_host_supervisor(&mut self) -> Option<Box<dyn HostSupervisor>> {
        let pids: Vec<Pid> = self.sup.procs.keys().copied().collect();
        for pid in pids {
            self.host_detach(pid);
        }
        self.sup.host_attach = None;
        self.sup.host.take()
    }

    /// Attaches the host supervisor to `pid` (from its next event on). False if there is
    /// no such live process.
    pub fn host_attach(&mut self, pid: Pid) -> bool {
        if !self.procs.get(&pid).is_some_and(|p| p.state == ProcState::Alive) {
            return false;
        }
        self.sup.procs.entry(pid).or_default().host = true;
        self.refresh_supervised(pid);
        true
    }

    /// Detaches the host supervisor from `pid`.
    pub fn host_detach(&mut self, pid: Pid) {
        if let Some(ps) = self.sup.procs.get_mut(&pid) {
            ps.host = false;
            if !ps.active() {
                self.sup.procs.remove(&pid);
            }
        }
        self.refresh_supervised(pid);
    }

    /// Whether `pid` is supervised by anything.
    pub fn is_supervised(&self, pid: Pid) -> bool {
        self.sup.procs.get(&pid).is_some_and(ProcSup::active)
    }

    /// Calls the host supervisor's `finish` (the CLI does this when the run ends).
    pub fn finish_host_supervisor(&mut self) {
        if let Some(h) = self.sup.host.as_mut() {
            h.finish();
        }
    }

    // --- hooks from the rest of the kernel ---------------------------------------------

    fn refresh_supervised(&mut self, pid: Pid) {
        let on = self.is_supervised(pid);
        let tids = self.procs.get(&pid).map(|p| p.threads.clone()).unwrap_or_default();
        for tid in tids {
            if let Some(t) = self.threads.get_mut(&tid) {
                t.supervised = on;
            }
        }
    }

    /// `supervise(pid, flags)`.
    pub(crate) fn sys_supervise(&mut self, tid: Pid, pid: usize, flags: usize) -> SysResult {
        if flags & !SUPERVISE_BLOCK != 0 {
            return Err(Errno(EINVAL).into());
        }
        let me = self.pid_of(tid)?;
        let pid = Pid::try_from(pid).map_err(|_| Errno(ESRCH))?;
        let target = self.procs.get(&pid).filter(|p| p.state == ProcState::Alive).ok_or(Errno(ESRCH))?;
        if target.ppid != me || pid == me {
            return Err(Errno(EACCES).into());
        }
        let id = self.alloc_object_id();
        let ch = Channel::new(id, flags & SUPERVISE_BLOCK != 0, self.waker.clone());
        let file: crate::FileRef = Rc::new(std::cell::RefCell::new(SuperviseFile { channel: ch.clone(), pid }));
        let fd = self.install_fd(tid, file, O_RDWR, false)?;
        let ps = self.sup.procs.entry(pid).or_default();
        match ps.chain.last_mut() {
            Some(slot @ None) => *slot = Some(ch.clone()),
            _ => ps.chain.push(Some(ch.clone())),
        }
        ch.borrow_mut().members += 1;
        self.refresh_supervised(pid);
        // Threads held waiting for this attach re-evaluate.
        let tids = self.procs.get(&pid).map(|p| p.threads.clone()).unwrap_or_default();
        for t in tids {
            self.waker.wake(hold_key(t));
        }
        Ok(fd)
    }

    /// After `clone`: children of supervised processes (and `CLONE_SUPERVISE` children)
    /// are supervised from their first instruction.
    pub(crate) fn supervise_cloned(&mut self, tid: Pid, flags: usize, result: &SysResult) {
        let child = match result {
            Ok(c) => *c as Pid,
            Err(SysError::Block(Block { on: WaitOn::Vfork(c), .. })) => *c,
            _ => return,
        };
        let Ok(pid) = self.pid_of(tid) else { return };
        let thread = flags & CLONE_THREAD != 0;
        if thread {
            if self.is_supervised(pid) {
                if let Some(t) = self.threads.get_mut(&child) {
                    t.supervised = true;
                }
                self.supervise_event(pid, ProcessEvent::Clone { pid, child, flags, thread });
            }
            return;
        }
        let mut ps = self.sup.procs.get(&pid).cloned().unwrap_or_default();
        let attach = self.sup.host_attach;
        ps.host = match attach {
            Some(HostAttach::All) => true,
            Some(HostAttach::Chosen { follow }) => ps.host && follow,
            None => false,
        };
        if flags & CLONE_SUPERVISE != 0 {
            ps.chain.push(None);
        }
        if !ps.active() {
            return;
        }
        for ch in ps.chain.iter().flatten() {
            ch.borrow_mut().members += 1;
        }
        self.sup.procs.insert(child, ps);
        self.refresh_supervised(child);
        self.supervise_event(pid, ProcessEvent::Clone { pid, child, flags, thread });
    }

    /// A process ended: tell its supervisors, forget its holds.
    pub(crate) fn supervise_exited(&mut self, pid: Pid, status: usize) {
        if self.sup.procs.get(&pid).is_none_or(|ps| !ps.active()) {
            return;
        }
        self.supervise_event(pid, ProcessEvent::Exit { pid, status });
        let Some(ps) = self.sup.procs.remove(&pid) else { return };
        let gone: Vec<Pid> = self.sup.held.tids_of(pid);
        for ch in ps.chain.iter().flatten() {
            let mut ch = ch.borrow_mut();
            for &t in &gone {
                ch.forget(t);
            }
            ch.members = ch.members.saturating_sub(1);
            ch.notify();
        }
        for t in gone {
            if let Some(h) = self.sup.held.take(t) {
                self.sup.held.recycle(h);
            }
        }
    }

    /// Delivers a life-cycle event to the host and every guest supervisor of `pid`.
    fn supervise_event(&mut self, pid: Pid, ev: ProcessEvent) {
        let Some(ps) = self.sup.procs.get(&pid).cloned() else { return };
        if ps.host {
            if let Some(h) = self.sup.host.as_mut() {
                h.event(&ev);
            }
        }
        if ps.chain.iter().all(Option::is_none) {
            return;
        }
        let seq = self.sup.next_seq();
        let (head, items) = match &ev {
            ProcessEvent::Clone { child, flags, thread, .. } => {
                let args = [*flags as u64, *thread as u64, 0, 0, 0, 0];
                (packet_head(PACKET_CLONE, pid, pid, *child as u64, args), encode_items(&[]))
            }
            ProcessEvent::Exec { path, argv, .. } => {
                let mut items: Vec<(u32, u32, &[u8])> = vec![(ITEM_RESOLVED, 0, path)];
                items.extend(argv.iter().map(|a| (ITEM_ARG, 1, a.as_slice())));
                (packet_head(PACKET_EXEC, pid, pid, 0, [0; 6]), encode_items(&items))
            }
            ProcessEvent::Exit { status, .. } => {
                (packet_head(PACKET_EXIT, pid, pid, *status as u64, [0; 6]), encode_items(&[]))
            }
        };
        for ch in ps.chain.iter().flatten() {
            ch.borrow_mut().push(seq, pid, false, head, items.clone());
        }
    }

    /// Canonicalises `call` before anyone looks (seed 001): a Redox path becomes the
    /// `scheme:path` it resolves to now (an `ITEM_RESOLVED` item; a sibling's later `chdir`
    /// changes nothing), `fexec`'s descriptor is pinned to its open description (a later
    /// `dup2` over it changes nothing). Returns the pinned description.
    fn canonicalise(&self, tid: Pid, call: &mut Call) -> Option<Rc<OpenFile>> {
        if call.failure().is_some() || call.number & warden_abi::linux::LINUX_CALL != 0 {
            return None;
        }
        if matches!(call.number, SYS_READ | SYS_WRITE) {
            self.mark_scheme_server(tid, call);
        }
        if call.number == SYS_FEXEC {
            return match self.desc(tid, call.args[0]) {
                Ok(desc) => {
                    if let Ok(path) = desc.file.try_borrow().map(|f| f.path()) {
                        call.set_item(ITEM_RESOLVED, 0, &path);
                    }
                    Some(desc)
                }
                Err(e) => {
                    call.input = Input::Fault(e);
                    None
                }
            };
        }
        let paths: Vec<usize> =
            call.items().iter().filter(|(i, _)| i.kind == ITEM_PATH).map(|(i, _)| i.arg as usize).collect();
        for arg in paths {
            let resolved = call.path(arg).ok().and_then(|p| self.proc_of(tid).ok()?.fs.borrow().resolve(p).ok());
            if let Some((mut canon, rest)) = resolved {
                canon.push(b':');
                canon.extend_from_slice(&rest);
                call.set_item(ITEM_RESOLVED, arg, &canon);
            }
        }
        None
    }

    /// Entry of a supervised thread's system call (the trap path's one branch led here).
    pub(crate) fn supervise_syscall(&mut self, tid: Pid, mut call: Call) {
        let Ok(pid) = self.pid_of(tid) else { return };
        let pinned = self.canonicalise(tid, &mut call);
        let gate = call.gate;
        let seq = self.sup.next_seq();
        self.forget_hold(tid);
        // The host decides first, synchronously, before anything is held.
        let mut host_report = false;
        if let Some(reply) = self.host_entry(pid, tid, seq, &call) {
            match step(Asked::Entry, reply) {
                Step::Next | Step::Resume => {}
                Step::NextReporting => host_report = true,
                Step::Return(v) => return self.set_return(tid, v as usize),
                Step::Kill => return self.post_signal(pid, SIGKILL),
            }
        }
        let guests = self.sup.procs.get(&pid).is_some_and(|p| !p.chain.is_empty());
        if !guests && !host_report && pinned.is_none() {
            // Nothing more to ask and nothing to report: run it like an unsupervised call.
            return self.execute(tid, call);
        }
        let held = Held {
            pid,
            call,
            pinned,
            stage: Stage::Entry(0),
            seq,
            pending: 0,
            host_report,
            report: Vec::new(),
            result: 0,
            outputs: Vec::new(),
            fault: None,
        };
        let held = self.sup.held.boxed(held);
        self.sup.held.put(tid, held);
        self.execute(tid, resume_call(gate));
    }

    /// A CPU exception or non-gate interrupt of thread `tid`; false if nothing supervises
    /// it (the caller raises the signal).
    pub(crate) fn supervise_fault(&mut self, tid: Pid, exit: &Exit, signal: usize) -> bool {
        let Some(t) = self.threads.get(&tid) else { return false };
        if !t.supervised {
            return false;
        }
        let mut fault = exception_of(exit, t.cpu.rip);
        fault.signal = signal;
        let pid = t.pid;
        let seq = self.sup.next_seq();
        let held = Held {
            pid,
            call: resume_call(Gate::Syscall),
            pinned: None,
            stage: Stage::Exception(0),
            seq,
            pending: 0,
            host_report: false,
            report: Vec::new(),
            result: 0,
            outputs: Vec::new(),
            fault: Some(fault),
        };
        self.forget_hold(tid);
        if self.sup.procs.get(&pid).is_some_and(|p| p.host) {
            if let Some(h) = self.sup.host.as_mut() {
                let ev =
                    ExceptionEvent { pid, tid, seq, vector: fault.vector, rip: fault.rip, addr: fault.addr, signal };
                match step(Asked::Exception, h.exception(&ev)) {
                    Step::Next | Step::NextReporting => {}
                    Step::Resume => return true,
                    Step::Return(v) => {
                        self.set_return(tid, v as usize);
                        return true;
                    }
                    Step::Kill => {
                        self.post_signal(pid, SIGKILL);
                        return true;
                    }
                }
            }
        }
        let held = self.sup.held.boxed(held);
        self.sup.held.put(tid, held);
        self.execute(tid, resume_call(Gate::Syscall));
        true
    }

    /// Drops a stale hold of `tid` (a call interrupted by a signal moved on).
    fn forget_hold(&mut self, tid: Pid) {
        if let Some(h) = self.sup.held.take(tid) {
            self.sup.held.recycle(h);
            if let Some(ps) = self.threads.get(&tid).and_then(|t| self.sup.procs.get(&t.pid)) {
                for ch in ps.chain.iter().flatten() {
                    ch.borrow_mut().forget(tid);
                }
            }
        }
    }

    // --- the state machine -------------------------------------------------------------

    /// Runs the `Input::Resume` call of a held thread.
    pub(crate) fn supervise_resume(&mut self, tid: Pid) -> SysResult {
        let Some(mut h) = self.sup.held.take(tid) else {
            return Err(Errno(ENOSYS).into());
        };
        let result = self.advance(tid, &mut h);
        if matches!(result, Err(SysError::Block(_))) {
            self.sup.held.put(tid, h);
        } else {
            self.sup.held.recycle(h);
        }
        result
    }

    fn park(tid: Pid) -> SysResult {
        Err(Block::retry(WaitOn::Key(hold_key(tid))))
    }

    fn kill_held(&mut self, h: &Held) -> SysResult {
        self.post_signal(h.pid, SIGKILL);
        Err(SysError::NoReturn)
    }

    /// The guest supervisor at `level` of the chain (0 = innermost), if the chain is that
    /// long: `Some(None)` for a slot not attached yet.
    fn chain_at(&self, pid: Pid, level: usize) -> Option<Option<ChannelRef>> {
        let chain = &self.sup.procs.get(&pid)?.chain;
        let i = chain.len().checked_sub(level + 1)?;
        chain.get(i).cloned()
    }

    /// Sends the packet `build` makes to `ch` once, then takes its reply if there is one.
    fn exchange(
        &mut self,
        tid: Pid,
        h: &mut Held,
        ch: &ChannelRef,
        build: impl FnOnce(&Held) -> (SupervisePacket, (u32, Vec<u8>)),
    ) -> Option<channel::Answer> {
        let mut c = ch.borrow_mut();
        if h.pending == 0 {
            self.sup.seq += 1;
            h.pending = self.sup.seq;
            let (head, items) = build(h);
            c.push(h.pending, tid, true, head, items);
            c.hold(tid);
        }
        let reply = c.take_reply(tid, h.pending)?;
        h.pending = 0;
        Some(reply)
    }

    fn advance(&mut self, tid: Pid, h: &mut Held) -> SysResult {
        loop {
            match h.stage {
                Stage::Entry(level) => {
                    let Some(slot) = self.chain_at(h.pid, level) else {
                        h.stage = Stage::Run;
                        continue;
                    };
                    let Some(ch) = slot else { return Self::park(tid) };
                    if ch.borrow().closed {
                        return self.kill_held(h);
                    }
                    let Some(reply) = self.exchange(tid, h, &ch, |h| entry_packet(h, tid)) else {
                        return Self::park(tid);
                    };
                    match step(Asked::Entry, reply.reply) {
                        Step::Return(v) => {
                            h.result = v as usize;
                            h.outputs.clear();
                            return self.finish_result(tid, h);
                        }
                        Step::Kill => return self.kill_held(h),
                        Step::NextReporting => h.report.push(ch.clone()),
                        Step::Next | Step::Resume => {}
                    }
                    h.stage = Stage::Entry(level + 1);
                }
                Stage::Run => {
                    let capture = h.host_report || !h.report.is_empty();
                    let saved = if capture { self.save_outputs(tid, &h.call) } else { Vec::new() };
                    let result = self.run_held(tid, h);
                    let raw = match result {
                        Err(SysError::Block(b)) => return Err(SysError::Block(b)),
                        Err(SysError::NoReturn) => {
                            self.after_noreturn(tid, h);
                            return Err(SysError::NoReturn);
                        }
                        Ok(v) => v,
                        Err(SysError::Errno(e)) => crate::call::rax(Err(e)),
                    };
                    h.result = raw;
                    h.outputs = self.collect_outputs(tid, raw, saved);
                    if h.report.is_empty() {
                        return self.finish_result(tid, h);
                    }
                    h.stage = Stage::Result(0);
                }
                Stage::Result(i) => {
                    let n = h.report.len();
                    if i >= n {
                        return self.finish_result(tid, h);
                    }
                    // Outermost reporter first.
                    let ch = h.report[n - 1 - i].clone();
                    if ch.borrow().closed {
                        return self.kill_held(h);
                    }
                    let build = |h: &Held| {
                        let args = h.call.args.map(|a| a as u64);
                        let mut head = packet_head(PACKET_RESULT, h.pid, tid, h.call.number as u64, args);
                        head.ret = h.result as u64;
                        let items: Vec<(u32, u32, &[u8])> =
                            h.outputs.iter().map(|o| (ITEM_OUTPUT, o.arg as u32, o.data.as_slice())).collect();
                        (head, encode_items(&items))
                    };
                    let Some(reply) = self.exchange(tid, h, &ch, build) else {
                        return Self::park(tid);
                    };
                    match step(Asked::Result, reply.reply) {
                        Step::Return(v) => {
                            h.result = v as usize;
                            if let (Some(data), Some(out)) = (reply.data, h.outputs.first_mut()) {
                                let n = data.len().min(out.data.len());
                                out.data[..n].copy_from_slice(&data[..n]);
                            }
                        }
                        Step::Kill => return self.kill_held(h),
                        Step::Next | Step::NextReporting | Step::Resume => {}
                    }
                    h.stage = Stage::Result(i + 1);
                }
                Stage::Exception(level) => {
                    let Some(fault) = h.fault else { return Err(SysError::NoReturn) };
                    let Some(slot) = self.chain_at(h.pid, level) else {
                        self.raise_fault(tid, fault.signal);
                        return Err(SysError::NoReturn);
                    };
                    let Some(ch) = slot else { return Self::park(tid) };
                    if ch.borrow().closed {
                        return self.kill_held(h);
                    }
                    let rax = self.threads.get(&tid).map_or(0, |t| t.cpu.gpr[reg::RAX]);
                    let args = [fault.rip, fault.addr, fault.access, fault.signal as u64, rax, 0];
                    let head = packet_head(PACKET_EXCEPTION, h.pid, tid, fault.vector, args);
                    let Some(reply) = self.exchange(tid, h, &ch, |_| (head, encode_items(&[]))) else {
                        return Self::park(tid);
                    };
                    match step(Asked::Exception, reply.reply) {
                        Step::Resume => return Err(SysError::NoReturn),
                        Step::Return(v) => return Ok(v as usize),
                        Step::Kill => return self.kill_held(h),
                        Step::Next | Step::NextReporting => h.stage = Stage::Exception(level + 1),
                    }
                }
            }
        }
    }

    /// The host's say at entry (`None` if the host does not supervise `pid`).
    fn host_entry(&mut self, pid: Pid, tid: Pid, seq: u64, call: &Call) -> Option<Reply> {
        if !self.sup.procs.get(&pid).is_some_and(|p| p.host) {
            return None;
        }
        let host = self.sup.host.as_mut()?;
        let ev = SyscallEntry::new(pid, tid, seq, self.stats.instructions, call);
        Some(host.syscall_entry(&ev))
    }

    /// Runs the held call itself (on the kernel's copy).
    fn run_held(&mut self, tid: Pid, h: &Held) -> SysResult {
        if let Some(e) = h.call.failure() {
            return Err(e.into());
        }
        if h.call.number == SYS_FEXEC {
            if let Some(desc) = &h.pinned {
                return self.fexec_pinned(tid, desc.clone(), &h.call);
            }
        }
        self.dispatch(tid, &h.call)
    }

    /// `fexec` on the description pinned at entry (not whatever the descriptor names now).
    fn fexec_pinned(&mut self, tid: Pid, desc: Rc<OpenFile>, call: &Call) -> SysResult {
        let bytes = crate::elf::read_program(&desc.file)?;
        self.exec(tid, &bytes, call.strings(ITEM_ARG), call.strings(ITEM_ENV))?;
        if let Ok(p) = self.proc_of(tid) {
            let files = p.files.clone();
            let same = files.borrow().get(call.args[0]).is_ok_and(|e| Rc::ptr_eq(&e.desc, &desc));
            if same {
                let entry = files.borrow_mut().remove(call.args[0]);
                drop(entry);
            }
        }
        Err(SysError::NoReturn)
    }

    /// After a call that does not return (exit, exec, sigreturn): the exec event.
    fn after_noreturn(&mut self, tid: Pid, h: &Held) {
        if h.call.number != SYS_FEXEC || !self.threads.contains_key(&tid) {
            return;
        }
        let argv = self.procs.get(&h.pid).map(|p| p.cmdline.clone()).unwrap_or_default();
        let path = h.call.items().get(ITEM_RESOLVED, 0).unwrap_or_default().to_vec();
        self.supervise_event(h.pid, ProcessEvent::Exec { pid: h.pid, path, argv });
    }

    /// Saves the guest bytes the call may overwrite (the ranges its row says it writes).
    fn save_outputs(&self, tid: Pid, call: &Call) -> Vec<(OutRange, Vec<u8>)> {
        let Ok(mm) = self.mm_of(tid) else { return Vec::new() };
        let mm = mm.borrow();
        outputs(call).into_iter().filter_map(|r| Some((r, copy_in(&mm.space.mem, r.addr, r.len).ok()?))).collect()
    }

    /// Reads back what the call wrote and restores the old bytes: no guest thread sees the
    /// new ones before every supervisor has. A counted range (a `read`'s buffer) holds as
    /// many bytes as the result says, in order; a failed call wrote nothing.
    fn collect_outputs(&mut self, tid: Pid, raw: usize, saved: Vec<(OutRange, Vec<u8>)>) -> Vec<Output> {
        if saved.is_empty() {
            return Vec::new();
        }
        let Ok(mm) = self.mm_of(tid) else { return Vec::new() };
        let mut mm = mm.borrow_mut();
        let ok = Errno::demux(raw);
        let mut counted = *ok.as_ref().unwrap_or(&0);
        let mut out = Vec::new();
        for (r, old) in saved {
            let Ok(mut new) = copy_in(&mm.space.mem, r.addr, old.len()) else { continue };
            let _ = copy_out(&mut mm.space.mem, r.addr, &old);
            if ok.is_err() {
                continue;
            }
            if r.counted {
                let n = new.len().min(counted);
                new.truncate(n);
                counted -= n;
            }
            out.push(Output { arg: r.arg, addr: r.addr, data: new });
        }
        out
    }

    /// Lets the host see the result last, then writes the outputs (each at most its range)
    /// and returns the value.
    fn finish_result(&mut self, tid: Pid, h: &mut Held) -> SysResult {
        if h.host_report {
            if let Some(mut host) = self.sup.host.take() {
                let ev = SyscallEntry::new(h.pid, tid, h.seq, self.stats.instructions, &h.call);
                host.syscall_exit(&ev, &mut h.result, &mut h.outputs);
                self.sup.host = Some(host);
            }
        }
        if h.outputs.is_empty() {
            return Ok(h.result);
        }
        if let Ok(mm) = self.mm_of(tid) {
            let mut mm = mm.borrow_mut();
            let ranges = outputs(&h.call);
            for o in &h.outputs {
                let cap = ranges.iter().find(|r| r.arg == o.arg && r.addr == o.addr).map_or(0, |r| r.len);
                let n = o.data.len().min(cap);
                let _ = copy_out(&mut mm.space.mem, o.addr, &o.data[..n]);
            }
        }
        Ok(h.result)
    }
}

/// The encoded items (`warden_abi::PacketItem` layout) a guest supervisor gets for this
/// call: for host tools that want the same view (e.g. to format it with `warden_abi::trace`).
pub fn entry_items_of(ev: &SyscallEntry<'_>) -> Vec<u8> {
    ev.call.items().encoded().to_vec()
}

/// The encoded `ITEM_OUTPUT` items of a call's outputs.
pub fn output_items_of(outputs: &[Output]) -> Vec<u8> {
    let items: Vec<(u32, u32, &[u8])> =
        outputs.iter().map(|o| (ITEM_OUTPUT, o.arg as u32, o.data.as_slice())).collect();
    encode_items(&items).1
}

/// The entry packet of a held call: its number, arguments and the kernel's copies.
fn entry_packet(h: &Held, tid: Pid) -> (SupervisePacket, (u32, Vec<u8>)) {
    let args = h.call.args.map(|a| a as u64);
    let mut head = packet_head(PACKET_SYSCALL, h.pid, tid, h.call.number as u64, args);
    if h.call.gate == Gate::Int80 {
        head.flags |= PACKET_FLAG_INT80;
    }
    let items = h.call.items();
    (head, (items.count(), items.encoded().to_vec()))
}
