//! Unit tests of supervision: reply parsing, packet truncation, and the host supervisor on a
//! hand-assembled guest (deny, pass-through, attach/detach, exceptions).

use std::cell::RefCell;
use std::rc::Rc;

use warden_abi::trace;
use warden_abi::*;

use super::channel::{encode_items, Channel};
use super::*;
use crate::scheme::memfs::MemFs;
use crate::scheme::FileOps;
use crate::testkit::static_elf;
use crate::{CaptureConsole, KernelConfig, RunOutcome, Waker};

#[test]
fn replies_parse_and_match_inflight_packets() {
    let ch = Channel::new(1, false, Waker::default());
    let mut file = SuperviseFile { channel: ch.clone(), pid: 2 };
    // Nothing read yet: a bare value has nothing to answer.
    assert_eq!(file.write(&7u64.to_le_bytes()), Err(Errno(EINVAL).into()));
    let mut buf = vec![0u8; 4096];
    assert_eq!(file.read(&mut buf), Ok(0), "nothing pending reads 0 bytes");
    let head = SupervisePacket { kind: PACKET_SYSCALL, tid: 9, ..Default::default() };
    ch.borrow_mut().push(5, 9, true, head, encode_items(&[]));
    ch.borrow_mut().hold(9);
    assert_eq!(file.read(&mut buf[..8]), Err(Errno(EINVAL).into()), "short buffer");
    assert_eq!(file.read(&mut buf), Ok(SupervisePacket::SIZE));
    assert_eq!(file.write(&[0u8; 5]), Err(Errno(EINVAL).into()));
    assert_eq!(file.write(&42u64.to_le_bytes()), Ok(8));
    let reply = ch.borrow_mut().take_reply(9, 5).unwrap();
    assert_eq!(reply.reply, Reply::Return(42));
    assert!(!ch.borrow().is_held(9), "a thread with its reply is no longer held");
    // A reply to an unknown sequence number.
    let r = SuperviseReply { seq: 77, action: REPLY_RUN, ..Default::default() };
    assert_eq!(file.write(&r.to_bytes()), Err(Errno(ESRCH).into()));
}

/// Guest packets parse into the host's vocabulary; an unknown action or flag is EINVAL.
#[test]
fn reply_packets_parse_into_typed_replies() {
    let r = |action, value| Reply::try_from(&SuperviseReply { action, value, ..Default::default() });
    assert_eq!(r(REPLY_RETURN, 5), Ok(Reply::Return(5)));
    assert_eq!(r(REPLY_RUN, 5), Ok(Reply::Run));
    assert_eq!(r(REPLY_RUN_REPORT, 0), Ok(Reply::RunReport));
    assert_eq!(r(REPLY_DEFAULT, 0), Ok(Reply::Default));
    assert_eq!(r(REPLY_KILL, 0), Ok(Reply::Kill));
    assert_eq!(r(REPLY_KILL + 1, 0), Err(Errno(EINVAL)));
    assert_eq!(r(u32::MAX, 0), Err(Errno(EINVAL)));

    let ch = Channel::new(1, false, Waker::default());
    let mut file = SuperviseFile { channel: ch.clone(), pid: 2 };
    ch.borrow_mut().push(3, 9, true, SupervisePacket::default(), encode_items(&[]));
    ch.borrow_mut().hold(9);
    let mut buf = vec![0u8; 4096];
    file.read(&mut buf).unwrap();
    let bad = SuperviseReply { seq: 3, action: REPLY_KILL + 1, ..Default::default() };
    assert_eq!(file.write(&bad.to_bytes()), Err(Errno(EINVAL).into()));
    let bad = SuperviseReply { seq: 3, action: REPLY_RUN, flags: 2, ..Default::default() };
    assert_eq!(file.write(&bad.to_bytes()), Err(Errno(EINVAL).into()));
    let data = SuperviseReply { seq: 3, action: REPLY_RETURN, flags: REPLY_FLAG_DATA, value: 2, data_len: 2 };
    let mut bytes = data.to_bytes().to_vec();
    bytes.extend_from_slice(b"ok");
    assert_eq!(file.write(&bytes), Ok(bytes.len()));
    let answer = ch.borrow_mut().take_reply(9, 3).unwrap();
    assert_eq!((answer.reply, answer.data.as_deref()), (Reply::Return(2), Some(&b"ok"[..])));
}

/// The supervision step alone: every reply to every question.
#[test]
fn step_decides_every_reply_to_every_question() {
    use Asked::*;
    let cases = [
        (Entry, Reply::Run, Step::Next),
        (Entry, Reply::Default, Step::Next),
        (Entry, Reply::RunReport, Step::NextReporting),
        (Entry, Reply::Return(7), Step::Return(7)),
        (Entry, Reply::Kill, Step::Kill),
        (Result, Reply::Run, Step::Next),
        (Result, Reply::RunReport, Step::Next),
        (Result, Reply::Default, Step::Next),
        (Result, Reply::Return(8), Step::Return(8)),
        (Result, Reply::Kill, Step::Kill),
        (Exception, Reply::Run, Step::Resume),
        (Exception, Reply::RunReport, Step::Resume),
        (Exception, Reply::Default, Step::Next),
        (Exception, Reply::Return(9), Step::Return(9)),
        (Exception, Reply::Kill, Step::Kill),
    ];
    for (asked, reply, want) in cases {
        assert_eq!(step(asked, reply), want, "{reply:?} to {asked:?}");
    }
}

#[test]
fn packets_that_do_not_fit_are_truncated_at_an_item() {
    let ch = Channel::new(1, false, Waker::default());
    let mut file = SuperviseFile { channel: ch.clone(), pid: 2 };
    let big = vec![b'x'; 100];
    let head = SupervisePacket { kind: PACKET_SYSCALL, ..Default::default() };
    ch.borrow_mut().push(1, 1, false, head, encode_items(&[(ITEM_PATH, 0, b"/a"), (ITEM_BYTES, 1, &big)]));
    let mut buf = vec![0u8; SupervisePacket::SIZE + 40];
    let n = file.read(&mut buf).unwrap();
    assert_eq!(n, SupervisePacket::SIZE + 24);
    let head = SupervisePacket::from_bytes(&buf).unwrap();
    assert_ne!(head.flags & PACKET_FLAG_TRUNCATED, 0);
    assert_eq!(head.items, 2);
    let items: Vec<_> = packet_items(&buf[SupervisePacket::SIZE..n]).collect();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].1, b"/a");
}

/// `getpid` three times, `int3`, then exit with the last getpid result.
fn getpid_prog() -> Vec<u8> {
    let mut code = Vec::new();
    for _ in 0..3 {
        code.extend_from_slice(&[0xb8, 20, 0, 0, 0, 0x0f, 0x05]); // mov eax, 20; syscall
    }
    code.extend_from_slice(&[0x48, 0x89, 0xc7]); // mov rdi, rax
    code.push(0xcc); // int3
    code.extend_from_slice(&[0xb8, 1, 0, 0, 0, 0x0f, 0x05]); // mov eax, 1; syscall
    static_elf(&code, 0)
}

#[derive(Default)]
struct Count {
    calls: Rc<RefCell<Vec<usize>>>,
    deny_getpid: bool,
}

impl HostSupervisor for Count {
    fn syscall_entry(&mut self, ev: &SyscallEntry<'_>) -> Reply {
        self.calls.borrow_mut().push(ev.call.number);
        if self.deny_getpid && ev.call.number == SYS_GETPID {
            Reply::Return(33)
        } else {
            Reply::Run
        }
    }
    fn exception(&mut self, ev: &ExceptionEvent) -> Reply {
        self.calls.borrow_mut().push(0x1000 + ev.vector as usize);
        Reply::Run
    }
}

fn kernel() -> Kernel {
    let fs = MemFs::new();
    fs.insert("/p", &getpid_prog());
    let (console, _) = CaptureConsole::new(b"");
    let mut k = Kernel::new(KernelConfig::default(), Box::new(fs), Box::new(console));
    k.spawn_init("/p", &["p"], &[]).unwrap();
    k
}

#[test]
fn host_supervisor_sees_and_answers_calls_and_exceptions() {
    let calls = Rc::new(RefCell::new(Vec::new()));
    let mut k = kernel();
    k.set_host_supervisor(Box::new(Count { calls: calls.clone(), deny_getpid: true }), HostAttach::All);
    assert!(k.is_supervised(1));
    assert_eq!(k.run(), RunOutcome::Exited(33));
    assert_eq!(&calls.borrow()[..], [SYS_GETPID, SYS_GETPID, SYS_GETPID, 0x1003, SYS_EXIT]);
}

#[test]
fn unsupervised_and_detached_processes_pay_nothing() {
    let calls = Rc::new(RefCell::new(Vec::new()));
    let mut k = kernel();
    k.set_host_supervisor(
        Box::new(Count { calls: calls.clone(), deny_getpid: true }),
        HostAttach::Chosen { follow: false },
    );
    assert!(!k.is_supervised(1));
    assert!(k.host_attach(1));
    k.host_detach(1);
    assert!(!k.is_supervised(1));
    // Without the host, int3 is SIGTRAP.
    assert_eq!(k.run(), RunOutcome::Signaled(SIGTRAP as u8));
    assert!(calls.borrow().is_empty());
    assert!(k.take_host_supervisor().is_some());
}

/// Where the hand-assembled programs below keep their buffer (in their bss).
const BUF: u32 = (crate::testkit::CODE_ADDR + 0x100) as u32;

/// A Linux program: `read(0, BUF, 16)`, `write(1, BUF, what it read)`, `exit_group(0)`.
fn linux_cat_prog() -> Vec<u8> {
    let mut code = vec![0xb8, 0, 0, 0, 0, 0x31, 0xff, 0xbe]; // mov eax, 0 (read); xor edi, edi; mov esi, BUF
    code.extend_from_slice(&BUF.to_le_bytes());
    code.extend_from_slice(&[0xba, 16, 0, 0, 0, 0x0f, 0x05]); // mov edx, 16; syscall
    code.extend_from_slice(&[0x89, 0xc2, 0xb8, 1, 0, 0, 0, 0xbf, 1, 0, 0, 0, 0xbe]); // mov edx, eax; write(1, BUF...
    code.extend_from_slice(&BUF.to_le_bytes());
    code.extend_from_slice(&[0x0f, 0x05, 0xb8, 231, 0, 0, 0, 0x31, 0xff, 0x0f, 0x05]); // syscall; exit_group(0)
    static_elf(&code, 0x200)
}

/// Reports every call and rewrites what `read`s return to upper case; keeps the trace lines
/// `warden trace` would print.
#[derive(Default)]
struct Upper {
    lines: Rc<RefCell<Vec<String>>>,
}

impl HostSupervisor for Upper {
    fn syscall_entry(&mut self, _: &SyscallEntry<'_>) -> Reply {
        Reply::RunReport
    }
    fn syscall_exit(&mut self, ev: &SyscallEntry<'_>, result: &mut usize, outputs: &mut [Output]) {
        let mut line = String::new();
        let args = ev.call.args.map(|a| a as u64);
        let _ =
            trace::write_call(&mut line, ev.call.number, &args, &entry_items_of(ev), Some(&output_items_of(outputs)));
        self.lines.borrow_mut().push(line);
        if ev.call.name() == Some("read") {
            for o in outputs.iter_mut() {
                o.data.make_ascii_uppercase();
            }
        }
        let _ = result;
    }
}

/// Bug: a Linux `read` hid its data from supervisors (the output ranges listed only Redox
/// calls): `warden trace` printed `read(3, 0xfffffdc80, 16)` and no supervisor could see or
/// rewrite what it returned. The ranges now come from the call's table row, for both ABIs.
#[test]
fn supervisors_see_and_rewrite_what_a_linux_read_returns() {
    let fs = MemFs::new();
    fs.insert("/cat", &linux_cat_prog());
    let (console, out) = CaptureConsole::new(b"hello");
    let mut k = Kernel::new(KernelConfig::default(), Box::new(fs), Box::new(console));
    k.set_personality_override(Some(crate::linux::Personality::Linux));
    k.spawn_init("/cat", &["cat"], &[]).unwrap();
    let lines = Rc::new(RefCell::new(Vec::new()));
    k.set_host_supervisor(Box::new(Upper { lines: lines.clone() }), HostAttach::All);
    assert_eq!(k.run(), RunOutcome::Exited(0));
    assert_eq!(out.borrow().stdout, b"HELLO", "the supervisor's rewrite is what the guest read");
    assert_eq!(&lines.borrow()[..2], ["read(0, \"hello\", 16)", "write(1, \"HELLO\", 5)"]);
}

/// A Redox program: `getcwd(BUF, 64)`, `write(1, BUF, its length)`, then `unlink("/x")`
/// (masked), then `exit(0)`.
fn redox_pwd_prog() -> Vec<u8> {
    let mut code = vec![0xb8, 183, 0, 0, 0, 0xbf]; // mov eax, getcwd; mov edi, BUF
    code.extend_from_slice(&BUF.to_le_bytes());
    code.extend_from_slice(&[0xbe, 64, 0, 0, 0, 0x0f, 0x05]); // mov esi, 64; syscall
    code.extend_from_slice(&[0x89, 0xc2, 0xb8, 4, 0, 0, 0x21, 0xbf, 1, 0, 0, 0, 0xbe]); // mov edx, eax; write(1, BUF
    code.extend_from_slice(&BUF.to_le_bytes());
    code.extend_from_slice(&[0x0f, 0x05, 0xb8]); // syscall; mov eax, unlink
    code.extend_from_slice(&(SYS_UNLINK as u32).to_le_bytes());
    code.extend_from_slice(&[0xbf]); // mov edi, BUF (any path)
    code.extend_from_slice(&BUF.to_le_bytes());
    code.extend_from_slice(&[0xbe, 1, 0, 0, 0, 0x0f, 0x05]); // mov esi, 1; syscall
    code.extend_from_slice(&[0xb8, 1, 0, 0, 0, 0x31, 0xff, 0x0f, 0x05]); // exit(0)
    static_elf(&code, 0x200)
}

/// Counts the calls a tap sees.
struct Seen(Rc<RefCell<Vec<usize>>>);

impl crate::record::SyscallTap for Seen {
    fn syscall(&mut self, point: &crate::record::SyscallPoint<'_>) -> bool {
        self.0.borrow_mut().push(point.call.number);
        true
    }
}

/// Bug: calls the jail answered itself (`getcwd` in a jail) and calls the policy refused
/// vanished from tracing, supervision and recording. The policy is a filter now: a
/// virtualised call runs like any other, a refused one goes on to fail with its errno, and
/// both pass the tap and the supervisors.
#[test]
fn calls_the_jail_virtualises_or_the_mask_refuses_are_traced_and_recorded() {
    let fs = MemFs::new();
    fs.insert("/jail/pwd", &redox_pwd_prog());
    let (console, out) = CaptureConsole::new(b"");
    let mut k = Kernel::new(KernelConfig::default(), Box::new(fs), Box::new(console));
    let everything_but_unlink = all_calls().map(|c| c.number).filter(|&n| n != SYS_UNLINK).collect();
    let spec = crate::policy::PolicySpec {
        allow: Some(everything_but_unlink),
        kill: false,
        jail: Some(b"/jail".to_vec()),
        schemes: false,
    };
    k.spawn_init_restricted("/pwd", &["pwd"], &[], &spec).unwrap();
    let lines = Rc::new(RefCell::new(Vec::new()));
    let tapped = Rc::new(RefCell::new(Vec::new()));
    k.set_host_supervisor(Box::new(Upper { lines: lines.clone() }), HostAttach::All);
    k.set_syscall_tap(Box::new(Seen(tapped.clone())));
    assert_eq!(k.run(), RunOutcome::Exited(0));
    assert_eq!(out.borrow().stdout, b"/", "getcwd is virtualised: the jail's root is /");
    assert_eq!(&lines.borrow()[..3], ["getcwd(\"/\", 64)", "write(1, \"/\", 1)", "unlink(\"/\")"]);
    assert_eq!(&tapped.borrow()[..], [SYS_GETCWD, SYS_WRITE, SYS_UNLINK, SYS_EXIT]);
}
