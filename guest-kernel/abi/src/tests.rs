//! Unit tests: the numbers are the PRODUCT.md values, structs have the intended layout and
//! byte conversion round-trips.

extern crate std;

use std::vec::Vec;

use super::*;

#[test]
fn syscall_numbers_match_the_contract() {
    assert_eq!(SYS_OPEN, 0x1010_0005);
    assert_eq!(SYS_CLOSE, 0x2000_0006);
    assert_eq!(SYS_READ, 0x2200_0003);
    assert_eq!(SYS_WRITE, 0x2100_0004);
    assert_eq!(SYS_LSEEK, 0x2000_0013);
    assert_eq!(SYS_DUP, 0x2010_0029);
    assert_eq!(SYS_DUP2, 0x2010_003f);
    assert_eq!(SYS_FPATH, 0x2200_0000 | 928);
    assert_eq!(SYS_FSTAT, 0x2200_0000 | 28);
    assert_eq!(SYS_FEXEC, 0x2000_0000 | 11);
    assert_eq!(SYS_FMAP, 0x2100_0000 | 90);
    assert_eq!(SYS_FUNMAP, 0x2000_0000 | 91);
    assert_eq!(SYS_RMDIR, 0x1000_0000 | 84);
    assert_eq!(SYS_UNLINK, 0x1000_0000 | 10);
    assert_eq!(
        [SYS_EXIT, SYS_WAITPID, SYS_KILL, SYS_GETPID, SYS_GETPPID, SYS_CLONE, SYS_BRK],
        [1, 7, 37, 20, 64, 120, 45]
    );
    assert_eq!(
        [SYS_CHDIR, SYS_GETCWD, SYS_NANOSLEEP, SYS_CLOCK_GETTIME, SYS_YIELD, SYS_PIPE2],
        [12, 183, 162, 265, 158, 331]
    );
    assert_eq!([SYS_SIGACTION, SYS_SIGPROCMASK, SYS_SIGRETURN, SYS_MPROTECT, SYS_FUTEX], [67, 126, 119, 125, 240]);
    assert_eq!([SYS_GETUID, SYS_GETGID, SYS_UMASK], [199, 200, 60]);
    assert_eq!(SYS_SUPERVISE, 1638);
    assert_eq!(CLONE_SUPERVISE, 0x40_0000);
}

#[test]
fn syscall_names_are_unique_and_complete() {
    for (i, &(n, name)) in SYSCALLS.iter().enumerate() {
        assert_eq!(syscall_name(n), Some(name));
        assert!(SYSCALLS[i + 1..].iter().all(|&(m, _)| m != n), "{name}");
    }
    assert_eq!(syscall_name(SYS_OPEN), Some("open"));
    assert_eq!(syscall_name(0xdead), None);
}

#[test]
fn errno_encoding() {
    assert_eq!(Errno::demux(5), Ok(5));
    assert_eq!(Errno::demux(-2isize as usize), Err(Errno(ENOENT)));
    assert_eq!(Errno::demux(-4096isize as usize), Ok(-4096isize as usize));
    assert_eq!(Errno::mux(Err(Errno(EBADF))), -9isize as usize);
    assert_eq!(errno_name(EWOULDBLOCK), "EWOULDBLOCK");
    assert_eq!(errno_name(999), "EUNKNOWN");
    assert_eq!(EWOULDBLOCK, 41);
    assert_eq!(ETIMEDOUT, 110);
}

#[test]
fn wait_status() {
    let s = w_exitcode(3);
    assert!(wifexited(s) && !wifsignaled(s) && !wifstopped(s));
    assert_eq!(wexitstatus(s), 3);
    let s = w_termsig(SIGKILL);
    assert!(!wifexited(s) && wifsignaled(s));
    assert_eq!(wtermsig(s), 9);
    let s = w_stopcode(SIGSTOP);
    assert!(wifstopped(s) && !wifsignaled(s) && !wifexited(s));
    assert_eq!(wstopsig(s), SIGSTOP);
}

#[test]
fn signals() {
    assert_eq!(signal_name(SIGTERM), Some("TERM"));
    assert_eq!(signal_from_name("SIGKILL"), Some(SIGKILL));
    assert_eq!(signal_from_name("CHLD"), Some(17));
    assert_eq!(signal_from_name(""), None);
    assert_eq!(signal_name(0), None);
}

#[test]
fn struct_layouts() {
    assert_eq!(Stat::SIZE, 104);
    assert_eq!(TimeSpec::SIZE, 16);
    assert_eq!(Map::SIZE, 32);
    assert_eq!(SigAction::SIZE, 32);
}

#[test]
fn struct_bytes_round_trip() {
    let st = Stat {
        st_dev: 1,
        st_ino: 2,
        st_mode: MODE_FILE | 0o644,
        st_nlink: 3,
        st_uid: 4,
        st_gid: 5,
        st_size: 0x1122_3344_5566_7788,
        st_blksize: 4096,
        st_blocks: 7,
        st_mtime: 8,
        st_mtime_nsec: 9,
        st_atime: 10,
        st_atime_nsec: 11,
        st_ctime: 12,
        st_ctime_nsec: 13,
    };
    let bytes = st.to_bytes();
    assert_eq!(&bytes[16..18], &(MODE_FILE | 0o644).to_le_bytes());
    assert_eq!(&bytes[18..20], &[0, 0], "padding is zero");
    assert_eq!(&bytes[32..40], &0x1122_3344_5566_7788u64.to_le_bytes());
    assert_eq!(Stat::from_bytes(&bytes), Some(st));
    assert_eq!(Stat::from_bytes(&bytes[..50]), None);

    let act = SigAction { sa_handler: 0x40_1000, sa_mask: [0x8000_0000_0000_0001, 2], sa_flags: SA_RESTART };
    let bytes = act.to_bytes();
    assert_eq!(&bytes[8..16], &0x8000_0000_0000_0001u64.to_le_bytes());
    assert_eq!(SigAction::from_bytes(&bytes), Some(act));

    let ts = TimeSpec { tv_sec: -1, tv_nsec: 999_999_999 };
    let mut buf = [0xffu8; 20];
    assert_eq!(ts.write_to(&mut buf), Some(16));
    assert_eq!(&buf[12..16], &[0, 0, 0, 0]);
    assert_eq!(TimeSpec::from_bytes(&buf), Some(ts));

    let map = Map { offset: 0, size: 8192, flags: PROT_READ | PROT_WRITE | MAP_PRIVATE, address: 0 };
    assert_eq!(Map::from_bytes(&map.to_bytes()), Some(map));
}

#[test]
fn every_syscall_is_classified_exactly_once() {
    for &(n, name) in SYSCALLS {
        assert_eq!(CALLS.iter().filter(|c| c.number == n).count(), 1, "{name} must appear once in class::CALLS");
        let info = call_info(n).unwrap();
        assert_eq!(info.name, name);
        assert!(!info.why.is_empty(), "{name}");
    }
    for c in CALLS {
        assert_eq!(syscall_name(c.number), Some(c.name), "{} is not in SYSCALLS", c.name);
        assert!(c.groups != 0, "{} has no group", c.name);
    }
    assert_eq!((SYS_MASK, SYS_JAIL), (1639, 1640));
}

#[test]
fn channel_calls_have_their_classes_and_decode_their_messages() {
    use crate::class::JailClass;
    use crate::ipc::{ChannelCaps, NO_REPLY};
    let class = |n| call_info(n).map(|c| (c.name, c.class));
    assert_eq!(class(SYS_CHANNEL), Some(("channel", JailClass::P)));
    assert_eq!(class(SYS_SEND), Some(("send", JailClass::F)));
    assert_eq!(class(SYS_RECV), Some(("recv", JailClass::F)));
    assert_eq!(class(SYS_CALL), Some(("call", JailClass::F)));
    assert!(crate::trace::has_class(SYS_CALL, "ipc") && crate::trace::has_class(SYS_SEND, "desc"));
    let caps = ChannelCaps::with_fds(&[3, 4]);
    assert_eq!((caps.list(), caps.reply), (&[3u64, 4][..], NO_REPLY));
    assert_eq!(ChannelCaps::from_bytes(&caps.to_bytes()), Some(caps));
}

#[test]
fn linux_calls_are_classified_once_with_their_names() {
    use crate::class::LINUX_CALLS;
    use crate::linux::{LINUX_CALL, linux_syscall_name};
    for (i, c) in LINUX_CALLS.iter().enumerate() {
        assert_ne!(c.number & LINUX_CALL, 0, "{}", c.name);
        assert_eq!(linux_syscall_name(c.number & !LINUX_CALL), Some(c.name), "{}", c.name);
        assert!(LINUX_CALLS[i + 1..].iter().all(|d| d.number != c.number), "{} twice", c.name);
        assert!(c.groups != 0 && !c.why.is_empty(), "{}", c.name);
        assert_eq!(call_info(c.number).map(|i| i.name), Some(c.name));
    }
}

#[test]
fn selectors_name_calls_classes_and_groups() {
    assert_eq!(Selector::parse("open"), Some(Selector::Call(SYS_OPEN)));
    assert_eq!(Selector::parse("J"), Some(Selector::Class(JailClass::J)));
    assert_eq!(Selector::parse("nope"), None);
    let linux = crate::class::LINUX_CALLS.len();
    assert_eq!(Selector::parse("all").unwrap().numbers().count(), CALLS.len() + linux);
    assert_eq!(Selector::parse("redox").unwrap().numbers().count(), CALLS.len());
    assert_eq!(Selector::parse("linux").unwrap().numbers().count(), linux);
    let openat = crate::linux::LINUX_CALL | crate::linux::nr::OPENAT;
    assert_eq!(Selector::parse("linux:openat"), Some(Selector::Call(openat)));
    assert_eq!(Selector::parse("linux:fexec"), None, "fexec is not a Linux call");
    assert_eq!(Selector::parse("openat"), None, "a plain name is a Redox call");
    let has = |sel: &str, n: usize| Selector::parse(sel).unwrap().numbers().any(|m| m == n);
    assert!(has("C", SYS_OPEN) && has("C", SYS_CHDIR) && !has("C", SYS_READ));
    assert!(has("J", SYS_KILL) && has("J", SYS_SUPERVISE) && has("J", SYS_FEXEC));
    assert!(has("signal", SYS_KILL) && has("signal", SYS_SIGACTION) && !has("signal", SYS_OPEN));
    assert!(ALWAYS_ALLOWED.contains(&SYS_EXIT));
    assert!(has("C", openat) && has("file", openat) && !has("redox", openat));
    let lkill = crate::linux::LINUX_CALL | crate::linux::nr::KILL;
    assert!(has("J", lkill) && has("signal", lkill));
}

#[test]
fn trace_formats_calls_like_strace() {
    use crate::trace::*;
    struct S(heapless_string::Buf);
    mod heapless_string {
        pub struct Buf {
            pub data: [u8; 512],
            pub len: usize,
        }
        impl core::fmt::Write for Buf {
            fn write_str(&mut self, s: &str) -> core::fmt::Result {
                let end = self.len + s.len();
                self.data.get_mut(self.len..end).ok_or(core::fmt::Error)?.copy_from_slice(s.as_bytes());
                self.len = end;
                Ok(())
            }
        }
    }
    let mut items = [0u8; 64];
    let head = crate::PacketItem { kind: crate::ITEM_PATH, arg: 0, len: 6 };
    items[..16].copy_from_slice(&head.to_bytes());
    items[16..22].copy_from_slice(b"/tmp/x");
    let mut s = S(heapless_string::Buf { data: [0; 512], len: 0 });
    let flags = crate::O_WRONLY | crate::O_CREAT | crate::O_TRUNC | 0o644;
    write_call(&mut s.0, crate::SYS_OPEN, &[0, 6, flags as u64, 0, 0, 0], &items[..24], None).unwrap();
    s.0.write_str(" ").unwrap();
    write_result(&mut s.0, crate::SYS_OPEN, (-2i64) as u64).unwrap();
    use core::fmt::Write;
    assert_eq!(
        core::str::from_utf8(&s.0.data[..s.0.len]).unwrap(),
        "open(\"/tmp/x\", O_WRONLY|O_CREAT|O_TRUNC|0644) = -2 ENOENT"
    );
    let mut q = heapless_string::Buf { data: [0; 512], len: 0 };
    write_quoted(&mut q, b"a\n\"\x01bcdefghijklmnopqrstuvwxyz0123456789", Some(8)).unwrap();
    assert_eq!(core::str::from_utf8(&q.data[..q.len]).unwrap(), "\"a\\n\\\"\\x01bcde\"...");
}

/// Every argument a row's argument kinds refer to (a length, a count, a directory
/// descriptor, a flags argument, the argument a condition reads) is one of the row's
/// arguments; every `Length` argument is some argument's length or count; a Linux call takes
/// at most six arguments; a path's Redox length is exactly for Redox calls.
#[test]
fn every_row_describes_its_arguments_consistently() {
    use crate::linux::LINUX_CALL;
    use crate::table::{Arg, Follow, PathArg, Size, Tail};
    fn refs(arg: Arg, out: &mut Vec<u8>) {
        let path = |p: PathArg, out: &mut Vec<u8>| {
            out.extend(p.len.into_iter().chain(p.dirfd).chain(p.empty.map(|e| e.0)));
            match p.follow {
                Follow::Unless(a, _) | Follow::If(a, _) | Follow::LinuxOpen(a) | Follow::RedoxOpen(a) => out.push(a),
                Follow::Yes | Follow::No => {}
            }
            if let Tail::Unlinkat(a, _) = p.tail {
                out.push(a);
            }
        };
        let size = |s: Size, out: &mut Vec<u8>| match s {
            Size::Count { arg, .. } => out.push(arg),
            Size::FdSet { nfds } => out.push(nfds),
            Size::Fixed(_) => {}
        };
        match arg {
            Arg::Path(p) => path(p, out),
            Arg::InBytes { len, .. } | Arg::OutBytes { len, .. } => out.push(len),
            Arg::In(s) | Arg::Out(s) | Arg::InOut(s) => size(s.size, out),
            Arg::Strings { count, .. } => out.extend(count),
            Arg::Iov { count, .. } => out.push(count),
            Arg::When(c) => {
                out.push(c.on);
                refs(c.then, out);
                refs(c.otherwise, out);
            }
            _ => {}
        }
    }
    for c in CALLS.iter().chain(crate::class::LINUX_CALLS) {
        assert!(c.args.len() <= 6, "{} has more than six arguments", c.name);
        let mut used = Vec::new();
        for &arg in c.args {
            refs(arg, &mut used);
            if let Arg::Path(p) = arg {
                assert_eq!(p.len.is_some(), c.number & LINUX_CALL == 0, "{}: Redox paths have lengths", c.name);
            }
        }
        for &r in &used {
            assert!((r as usize) < c.args.len(), "{} refers to argument {r} it does not describe", c.name);
        }
        for (i, &arg) in c.args.iter().enumerate() {
            if arg == Arg::Length {
                assert!(used.contains(&(i as u8)), "{}: argument {i} is a length of nothing", c.name);
            }
        }
    }
}
