//! Unit tests of supervision: reply parsing, packet truncation, and the host supervisor on a
//! hand-assembled guest (deny, pass-through, attach/detach, exceptions).

use std::cell::RefCell;
use std::rc::Rc;

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
    assert_eq!((reply.action, reply.value), (REPLY_RETURN, 42));
    assert!(!ch.borrow().is_held(9), "a thread with its reply is no longer held");
    // A reply to an unknown sequence number.
    let r = SuperviseReply { seq: 77, action: REPLY_RUN, ..Default::default() };
    assert_eq!(file.write(&r.to_bytes()), Err(Errno(ESRCH).into()));
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
    fn syscall_entry(&mut self, ev: &SyscallEntry<'_>) -> Decision {
        self.calls.borrow_mut().push(ev.call.number);
        if self.deny_getpid && ev.call.number == SYS_GETPID {
            Decision::Return(33)
        } else {
            Decision::Run
        }
    }
    fn exception(&mut self, ev: &ExceptionEvent) -> ExceptionDecision {
        self.calls.borrow_mut().push(0x1000 + ev.vector as usize);
        ExceptionDecision::Resume
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
