//! The tables describe every call completely: a data-driven test, in the manner of
//! iced-x86's, that runs every row of both tables on arguments made from the row itself.
//!
//! For each call (and, for an argument whose meaning depends on another, once more with that
//! condition met) two identical kernels run it:
//! 1. every byte of guest memory the call changed must lie in a range its row says it
//!    writes: otherwise supervisors, tracers and recordings would not see (or could not
//!    rewrite) what it returned — how Linux `read`s once hid their data;
//! 2. the call must not read guest memory its row does not copy in: in the second kernel the
//!    guest memory every input came from is scrambled after decoding, before the handler
//!    runs, and the result and the bytes written must not change — a handler that re-read
//!    guest memory would act on bytes nobody vetted (seed 001).

use emu::{reg, Gate, GuestAddress, Perm};
use warden_abi::class::GROUP_MEMORY;
use warden_abi::table::{Arg, Size};
use warden_abi::*;

use super::{outputs, Call, Entry};
use crate::scheme::memfs::MemFs;
use crate::{CaptureConsole, Kernel, KernelConfig, Pid};

/// Where the arguments' buffers live.
const SCRATCH: u64 = 0x1000_0000;
const SCRATCH_LEN: u64 = 0x10_0000;
/// Bytes each pointer argument gets.
const SLOT: u64 = 0x1000;
/// The descriptor every descriptor argument names (`/f`, open read-write).
const FD: usize = 3;

/// A fresh kernel with init (pid 1) stopped before its first instruction, `/f` open as
/// descriptor [`FD`], and the scratch pages mapped.
fn kernel(linux: bool) -> (Kernel, Pid) {
    let fs = MemFs::new();
    fs.insert("/f", b"0123456789abcdefghijklmnopqrstuvwxyz");
    fs.insert("/d/x", b"x");
    fs.insert("/p", &crate::testkit::static_elf(&[0xf4], 0));
    let (console, _) = CaptureConsole::new(b"input");
    let config = KernelConfig { stack_size: 64 << 10, ..KernelConfig::default() };
    let mut k = Kernel::new(config, Box::new(fs), Box::new(console));
    k.set_personality_override(Some(if linux {
        crate::linux::Personality::Linux
    } else {
        crate::linux::Personality::Redox
    }));
    let tid = k.spawn_init("/p", &["p"], &[]).unwrap();
    let file = k.open_path(tid, b"/f", O_RDWR).unwrap();
    assert_eq!(k.install_fd(tid, file, O_RDWR, false), Ok(FD));
    k.mm_of(tid).unwrap().borrow_mut().map(SCRATCH, SCRATCH_LEN, Perm::RW).unwrap();
    (k, tid)
}

fn write(k: &Kernel, tid: Pid, addr: u64, bytes: &[u8]) {
    k.mm_of(tid).unwrap().borrow_mut().space.mem.write_raw(GuestAddress(addr), bytes).unwrap();
}

fn read(k: &Kernel, tid: Pid, addr: usize, len: usize) -> Vec<u8> {
    let mut out = vec![0; len];
    k.mm_of(tid).unwrap().borrow().space.mem.read_raw(GuestAddress(addr as u64), &mut out).unwrap();
    out
}

/// Every mapped byte of `tid`'s address space, by region.
fn snapshot(k: &Kernel, tid: Pid) -> Vec<(u64, Vec<u8>)> {
    let mm = k.mm_of(tid).unwrap();
    let regions: Vec<_> = mm.borrow().space.mem.regions().map(|(s, e)| (s.0, e.0)).collect();
    regions.into_iter().map(|(s, e)| (s, read(k, tid, s as usize, (e - s) as usize))).collect()
}

/// Arguments for `info`'s row, built in the scratch pages of `k`: each pointer argument gets
/// a slot holding something valid for its kind (`/f` for a path, 16 bytes for a buffer, one
/// element for an array). `conds` holds the `(argument, value)`s to set first. Returns the
/// arguments and the guest ranges the call's inputs come from.
fn arguments(k: &Kernel, tid: Pid, info: &CallInfo, conds: &[(usize, usize)]) -> ([usize; 6], Vec<(u64, usize)>) {
    let mut a = [0usize; 6];
    for &(i, v) in conds {
        a[i] = v;
    }
    let mut inputs = Vec::new();
    let mut next = SCRATCH;
    let mut slot = || {
        let s = next;
        next += SLOT;
        s
    };
    // Counts and lengths first (sizes depend on them).
    for (i, arg) in info.args.iter().enumerate() {
        match arg.resolve(&a) {
            Arg::Fd => a[i] = FD,
            Arg::DirFd => a[i] = -100isize as usize,
            Arg::Signal => a[i] = SIGUSR1,
            // A number that may be a length: a small one.
            Arg::Uint if a[i] == 0 => a[i] = 16,
            Arg::Enum(names) if !conds.iter().any(|c| c.0 == i) => a[i] = names[0].0,
            Arg::InBytes { len, .. } => a[len as usize] = 16,
            Arg::OutBytes { len, .. } => a[len as usize] = 256,
            Arg::In(s) | Arg::Out(s) | Arg::InOut(s) => match s.size {
                Size::Count { arg, .. } => a[arg as usize] = 1,
                Size::FdSet { nfds } => a[nfds as usize] = FD + 1,
                Size::Fixed(_) => {}
            },
            Arg::Strings { count: Some(c), .. } | Arg::Iov { count: c, .. } => a[c as usize] = 1,
            _ => {}
        }
    }
    for (i, arg) in info.args.iter().enumerate() {
        match arg.resolve(&a) {
            Arg::Path(p) => {
                let at = slot();
                if let Some(len) = p.len {
                    write(k, tid, at, b"/f");
                    a[len as usize] = 2;
                } else {
                    write(k, tid, at, b"/f\0");
                }
                a[i] = at as usize;
                inputs.push((at, 3));
            }
            Arg::InBytes { len, .. } => {
                let at = slot();
                write(k, tid, at, b"0123456789abcdef");
                a[i] = at as usize;
                inputs.push((at, a[len as usize]));
            }
            Arg::OutBytes { .. } | Arg::Out(_) => a[i] = slot() as usize,
            // An address or an opaque word: a valid address, so that a row calling a buffer
            // a number cannot hide what the call writes there (memory calls excepted: they
            // would map or unmap the scratch pages).
            Arg::Hex if info.groups & GROUP_MEMORY == 0 && a[i] == 0 => a[i] = slot() as usize,
            Arg::In(s) | Arg::InOut(s) => {
                let at = slot();
                let n = s.bytes(&a).unwrap();
                // A valid structure for every shape the tables use: zeroes (a zero timespec,
                // an empty set), except a poll entry naming the open descriptor.
                if s.shape == table::Shape::PollFds {
                    write(k, tid, at, &(FD as u32).to_le_bytes());
                }
                a[i] = at as usize;
                inputs.push((at, n));
            }
            Arg::Strings { count, .. } => {
                let (list, text) = (slot(), slot());
                write(k, tid, text, b"x\0");
                match count {
                    Some(_) => write(k, tid, list, &[text.to_le_bytes(), 1u64.to_le_bytes()].concat()),
                    None => write(k, tid, list, &[text.to_le_bytes(), 0u64.to_le_bytes()].concat()),
                }
                a[i] = list as usize;
                inputs.extend([(list, 16), (text, 2)]);
            }
            Arg::Iov { out, .. } => {
                let (list, buf) = (slot(), slot());
                write(k, tid, list, &[buf.to_le_bytes(), 16u64.to_le_bytes()].concat());
                a[i] = list as usize;
                inputs.push((list, 16));
                if !out {
                    write(k, tid, buf, b"0123456789abcdef");
                    inputs.push((buf, 16));
                }
            }
            _ => {}
        }
    }
    (a, inputs)
}

/// Runs the call of `entry` with `conds` in a fresh kernel; with `scramble`, the guest memory
/// of its inputs is overwritten after decoding. Returns rax and the bytes of its output
/// ranges, and checks nothing outside them changed.
fn run(entry: &'static Entry, conds: &[(usize, usize)], scramble: bool) -> (u64, Vec<Vec<u8>>) {
    let info = entry.info;
    let (mut k, tid) = kernel(info.number & linux::LINUX_CALL != 0);
    let (args, inputs) = arguments(&k, tid, info, conds);
    let mm = k.mm_of(tid).unwrap();
    let before = snapshot(&k, tid);
    let call: Call = k.decode_call(tid, entry, args, Gate::Syscall).expect("a live thread");
    let ranges = outputs(&call);
    if scramble {
        for &(at, len) in &inputs {
            let junk: Vec<u8> = read(&k, tid, at as usize, len).iter().map(|b| b ^ 0x5a).collect();
            write(&k, tid, at, &junk);
        }
    }
    k.execute(tid, call);
    let rax = k.threads.get(&tid).map_or(0, |t| t.cpu.gpr[reg::RAX]);
    // An exec replaces the address space; exit and sigreturn leave no result to compare.
    let same_space = k.mm_of(tid).is_ok_and(|now| std::rc::Rc::ptr_eq(&now, &mm));
    if !same_space {
        return (0, Vec::new());
    }
    let written = ranges.iter().map(|r| read(&k, tid, r.addr, r.len)).collect();
    if !scramble {
        let mem = mm.borrow();
        for (start, old) in &before {
            let mut new = vec![0; old.len()];
            if mem.space.mem.read_raw(GuestAddress(*start), &mut new).is_err() {
                continue; // unmapped by the call
            }
            for (off, (x, y)) in old.iter().zip(&new).enumerate() {
                let addr = *start as usize + off;
                let declared = ranges.iter().any(|r| (r.addr..r.addr + r.len).contains(&addr));
                assert!(x == y || declared, "{} wrote {addr:#x}, which its row does not say it writes", info.name);
            }
        }
    }
    (rax, written)
}

/// The `(argument, value)`s that meet each condition of `info`'s arguments (one run each).
fn conditions(info: &CallInfo) -> Vec<Vec<(usize, usize)>> {
    let mut out = vec![Vec::new()];
    for arg in info.args {
        let mut arg = *arg;
        // Nested conditions (`ioctl`) each have their values.
        while let Arg::When(c) = arg {
            for &v in c.values {
                out.push(vec![(c.on as usize, v)]);
            }
            arg = c.otherwise;
        }
    }
    out
}

/// Both checks on one call; how many runs that took.
fn check(entry: &'static Entry) -> usize {
    let runs = conditions(entry.info);
    for conds in &runs {
        let plain = run(entry, conds, false);
        let scrambled = run(entry, conds, true);
        assert_eq!(plain, scrambled, "{} {conds:?} reads guest memory its row does not copy in", entry.info.name);
    }
    runs.len()
}

#[test]
fn every_call_is_described_completely() {
    let runs: usize =
        CALLS.iter().chain(LINUX_CALLS).map(|info| check(super::table::entry(info.number).unwrap())).sum();
    assert!(runs > CALLS.len() + LINUX_CALLS.len(), "some conditional arguments were tried both ways");
}

/// The check above fails for a row that leaves out what its call writes: Linux `read` with
/// its buffer described as a plain number.
#[test]
#[should_panic(expected = "which its row does not say it writes")]
fn a_call_that_writes_undeclared_memory_fails_the_check() {
    let read = super::table::entry(linux::LINUX_CALL | linux::nr::READ).unwrap();
    let info = Box::leak(Box::new(CallInfo { args: &[Arg::Fd, Arg::Hex, Arg::Uint], ..*read.info }));
    let hidden = Box::leak(Box::new(Entry { info, handler: read.handler, jail: None, copies: false }));
    run(hidden, &[(1, SCRATCH as usize), (2, 16)], false);
}

/// ... and for a handler that reads guest memory instead of the kernel's copy.
#[test]
#[should_panic(expected = "reads guest memory its row does not copy in")]
fn a_call_that_rereads_guest_memory_fails_the_check() {
    fn peek(k: &mut Kernel, tid: Pid, c: &Call) -> super::SysResult {
        Ok(crate::usercopy::read_u32(&k.mm_of(tid)?.borrow().space.mem, c.args[1])? as usize)
    }
    let write = super::table::entry(linux::LINUX_CALL | linux::nr::WRITE).unwrap();
    check(Box::leak(Box::new(Entry { handler: peek, ..*write })));
}

/// Linux refuses an empty symlink target with `ENOENT`, before it looks at the new name;
/// warden once made a link with no target (which an `--overlay` could not keep).
#[test]
fn linux_symlink_with_an_empty_target_is_enoent() {
    let entry = super::table::entry(linux::LINUX_CALL | linux::nr::SYMLINK).unwrap();
    for (target, link, want) in
        [(&b"\0"[..], &b"/f\0"[..], ENOENT), (b"\0", b"/new\0", ENOENT), (b"t\0", b"/f\0", EEXIST)]
    {
        let (mut k, tid) = kernel(true);
        write(&k, tid, SCRATCH, target);
        write(&k, tid, SCRATCH + SLOT, link);
        let args = [SCRATCH as usize, (SCRATCH + SLOT) as usize, 0, 0, 0, 0];
        let call = k.decode_call(tid, entry, args, Gate::Syscall).expect("a live thread");
        k.execute(tid, call);
        let rax = k.threads.get(&tid).expect("thread").cpu.gpr[reg::RAX];
        assert_eq!(rax as i64, -(want as i64), "symlink({target:?}, {link:?})");
    }
}
