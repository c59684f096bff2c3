//! `selftest [FILTER]`: checks the guest OS end to end from inside — both syscall gates,
//! errno returns, files, directories, pipes between processes, exec, exit statuses, signals,
//! the clock and the allocator. Prints one line per check (`ok NAME` or `FAIL NAME: why`),
//! then `N passed, N failed`; exits 0 only if every check passed. With FILTER, only checks
//! whose name contains it run.
//!
//! Design: every check is a function returning `Result<(), String>`, so a failing step says
//! what it expected. Checks are independent (each cleans up its files under `/tmp`) and use
//! the raw gates where the point is the ABI itself, the runtime's wrappers elsewhere.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::cmp::Ordering;
use core::hint::black_box;

use runtime::abi::{self, Errno};
use runtime::fs::File;
use runtime::process::{Command, ExitStatus, Stdio};
use runtime::syscall::{self, Gate};
use runtime::{env, fs, io, println, sys, time};

runtime::entry!(main);

type Check = Result<(), String>;

fn ensure(cond: bool, what: impl FnOnce() -> String) -> Check {
    if cond { Ok(()) } else { Err(what()) }
}

fn err_str(context: &str) -> impl Fn(Errno) -> String + '_ {
    move |e| format!("{context}: {e}")
}

fn temp_path(tag: &str) -> String {
    format!("/tmp/selftest-{}-{tag}", sys::getpid())
}

fn gates_agree_on_getpid() -> Check {
    let via_syscall = sys::getpid();
    let via_int80 = sys::getpid_int80();
    ensure(via_syscall == via_int80 && (via_syscall as isize) > 0, || {
        format!("syscall gate says {via_syscall}, int 0x80 says {via_int80}")
    })
}

fn both_gates_return_errno() -> Check {
    for gate in [Gate::Syscall, Gate::Int80] {
        // SAFETY: close takes no memory arguments.
        let ret = unsafe { gate.call(abi::SYS_CLOSE, [9999, 0, 0, 0, 0, 0]) };
        ensure(Errno::demux(ret) == Err(Errno(abi::EBADF)), || {
            format!("{gate:?}: close(9999) returned {:#x}, want -EBADF", ret)
        })?;
        // SAFETY: an unknown number takes no memory arguments.
        let ret = unsafe { gate.call(0x7fff, [0; 6]) };
        ensure(Errno::demux(ret) == Err(Errno(abi::ENOSYS)), || {
            format!("{gate:?}: syscall 0x7fff returned {:#x}, want -ENOSYS", ret)
        })?;
    }
    Ok(())
}

fn int80_passes_rbx_rcx_rdx() -> Check {
    let [read_end, write_end] = sys::pipe2(abi::O_CLOEXEC).map_err(err_str("pipe2"))?;
    let (read_end, write_end) = (File::from_raw_fd(read_end), File::from_raw_fd(write_end));
    let msg = b"through int 0x80";
    // SAFETY: write reads `msg.len()` bytes from `msg`.
    let ret = unsafe { syscall::int80_3(abi::SYS_WRITE, write_end.fd(), msg.as_ptr() as usize, msg.len()) };
    ensure(ret == msg.len(), || format!("int 0x80 write returned {:#x}", ret))?;
    let mut buf = [0u8; 32];
    let n = read_end.read(&mut buf).map_err(err_str("read"))?;
    ensure(&buf[..n] == msg, || format!("read back {:?}", String::from_utf8_lossy(&buf[..n])))
}

fn file_write_seek_read() -> Check {
    let path = temp_path("file");
    let data: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    {
        let file = File::open_with(&path, abi::O_RDWR | abi::O_CREAT | abi::O_TRUNC | fs::DEFAULT_FILE_MODE)
            .map_err(err_str("create"))?;
        file.write_all(&data).map_err(err_str("write"))?;
        let end = file.seek(0, abi::SEEK_END).map_err(err_str("lseek END"))?;
        ensure(end == data.len(), || format!("SEEK_END at {end}, want {}", data.len()))?;
        file.seek(100, abi::SEEK_SET).map_err(err_str("lseek SET"))?;
        let mut buf = [0u8; 10];
        let n = file.read(&mut buf).map_err(err_str("read"))?;
        ensure(n == 10 && buf[..] == data[100..110], || "read after seek differs".into())?;
        let st = file.stat().map_err(err_str("fstat"))?;
        ensure(st.is_file() && st.st_size == data.len() as u64, || {
            format!("fstat: mode {:#o} size {}", st.st_mode, st.st_size)
        })?;
    }
    let back = fs::read(&path).map_err(err_str("reopen"))?;
    ensure(back == data, || format!("read back {} bytes, differ", back.len()))?;
    fs::remove_file(&path).map_err(err_str("unlink"))?;
    match File::open(&path) {
        Err(Errno(abi::ENOENT)) => Ok(()),
        Err(e) => Err(format!("open after unlink: {e}, want ENOENT")),
        Ok(_) => Err("file still opens after unlink".into()),
    }
}

fn append_mode() -> Check {
    let path = temp_path("append");
    fs::write(&path, b"one\n").map_err(err_str("write"))?;
    File::append(&path).and_then(|f| f.write_all(b"two\n")).map_err(err_str("append"))?;
    let text = fs::read_to_string(&path).map_err(err_str("read"))?;
    let _ = fs::remove_file(&path);
    ensure(text == "one\ntwo\n", || format!("got {text:?}"))
}

fn missing_file_is_enoent() -> Check {
    match File::open("/no/such/file") {
        Err(Errno(abi::ENOENT)) => Ok(()),
        Err(e) => Err(format!("got {e}, want ENOENT")),
        Ok(_) => Err("opened a missing file".into()),
    }
}

fn directories() -> Check {
    let dir = temp_path("dir");
    fs::create_dir(&dir).map_err(err_str("mkdir"))?;
    match fs::create_dir(&dir) {
        Err(Errno(abi::EEXIST)) => {}
        other => return Err(format!("second mkdir: {other:?}, want EEXIST")),
    }
    let inner = fs::join(&dir, "inner.txt");
    fs::write(&inner, b"x").map_err(err_str("create inner"))?;
    let names = fs::read_dir(&dir).map_err(err_str("read_dir"))?;
    ensure(names.iter().any(|n| n == "inner.txt"), || format!("listing: {names:?}"))?;
    let st = fs::stat(&dir).map_err(err_str("stat dir"))?;
    ensure(st.is_dir(), || format!("dir mode {:#o}", st.st_mode))?;
    fs::remove_file(&inner).map_err(err_str("unlink inner"))?;
    fs::remove_dir(&dir).map_err(err_str("rmdir"))?;
    ensure(!fs::exists(&dir), || "directory still exists".into())
}

fn working_directory() -> Check {
    let before = env::current_dir().map_err(err_str("getcwd"))?;
    env::set_current_dir("/tmp").map_err(err_str("chdir /tmp"))?;
    let now = env::current_dir().map_err(err_str("getcwd"))?;
    let restored = env::set_current_dir(&before);
    ensure(now.ends_with("/tmp"), || format!("cwd is {now:?} after chdir /tmp"))?;
    restored.map_err(err_str("chdir back"))
}

fn fork_pipe_and_exit_status() -> Check {
    let [read_end, write_end] = sys::pipe2(0).map_err(err_str("pipe2"))?;
    let pid = sys::clone(0).map_err(err_str("clone"))?;
    if pid == 0 {
        let _ = sys::close(read_end);
        let ok = io::write_all(write_end, b"ping from child").is_ok();
        sys::exit(if ok { 7 } else { 99 });
    }
    let _ = sys::close(write_end);
    let reader = File::from_raw_fd(read_end);
    let mut got = Vec::new();
    reader.read_to_end(&mut got).map_err(err_str("read"))?;
    let (waited, raw) = sys::waitpid(pid, 0).map_err(err_str("waitpid"))?;
    ensure(waited == pid, || format!("waitpid returned {waited}, want {pid}"))?;
    ensure(got == b"ping from child", || format!("read {:?}", String::from_utf8_lossy(&got)))?;
    let status = ExitStatus::from_raw(raw);
    ensure(status.code() == Some(7), || format!("child {status}, want exit 7"))
}

fn exec_true_false() -> Check {
    let t = Command::new("true").status().map_err(err_str("spawn true"))?;
    ensure(t.code() == Some(0), || format!("/bin/true: {t}"))?;
    let f = Command::new("/bin/false").status().map_err(err_str("spawn false"))?;
    ensure(f.code() == Some(1), || format!("/bin/false: {f}"))
}

fn exec_passes_args_and_env() -> Check {
    let (status, out) = Command::new("echo").args(["a", "b c", ""]).output().map_err(err_str("echo"))?;
    ensure(status.success() && out == b"a b c \n", || {
        format!("echo: {status}, output {:?}", String::from_utf8_lossy(&out))
    })?;
    let (status, out) = Command::new("env").env_clear().env("SELFTEST", "yes").output().map_err(err_str("env"))?;
    ensure(status.success() && out == b"SELFTEST=yes\n", || {
        format!("env: {status}, output {:?}", String::from_utf8_lossy(&out))
    })
}

fn stdin_pipe_to_child() -> Check {
    let mut child =
        Command::new("wc").arg("-c").stdin(Stdio::Piped).stdout(Stdio::Piped).spawn().map_err(err_str("spawn wc"))?;
    if let Some(input) = child.stdin.take() {
        input.write_all(b"twelve bytes").map_err(err_str("write"))?;
    }
    let mut out = Vec::new();
    if let Some(output) = child.stdout.take() {
        output.read_to_end(&mut out).map_err(err_str("read"))?;
    }
    let status = child.wait().map_err(err_str("wait"))?;
    ensure(status.success() && out == b"12\n", || {
        format!("wc -c: {status}, output {:?}", String::from_utf8_lossy(&out))
    })
}

fn missing_program_exits_127() -> Check {
    let status = Command::new("/bin/no-such-program").stderr(Stdio::Null).status().map_err(err_str("spawn"))?;
    ensure(status.code() == Some(127), || format!("{status}, want exit 127"))
}

fn kill_child() -> Check {
    let pid = sys::clone(0).map_err(err_str("clone"))?;
    if pid == 0 {
        loop {
            let _ = time::sleep_nanos(10 * time::NANOS_PER_SEC);
        }
    }
    sys::kill(pid, abi::SIGKILL).map_err(err_str("kill"))?;
    let (_, raw) = sys::waitpid(pid, 0).map_err(err_str("waitpid"))?;
    let status = ExitStatus::from_raw(raw);
    ensure(status.signal() == Some(abi::SIGKILL) && status.code().is_none(), || format!("child {status}, want SIGKILL"))
}

fn clocks() -> Check {
    let t1 = time::monotonic().map_err(err_str("clock_gettime"))?;
    time::sleep_nanos(1_000_000).map_err(err_str("nanosleep"))?;
    let t2 = time::monotonic().map_err(err_str("clock_gettime"))?;
    let elapsed = time::as_nanos(&t2).saturating_sub(time::as_nanos(&t1));
    ensure(t2 >= t1 && elapsed >= 1_000_000, || format!("monotonic {t1:?} -> {t2:?} across a 1 ms sleep"))?;
    time::realtime().map(drop).map_err(err_str("CLOCK_REALTIME"))
}

fn allocator() -> Check {
    let big = vec![7u8; 1 << 20];
    let sum: u64 = big.iter().map(|&b| u64::from(b)).sum();
    ensure(sum == 7 << 20, || "1 MiB vector corrupted".into())?;
    let boxes: Vec<Box<[u64; 4]>> = (0..2000u64).map(|i| Box::new([i; 4])).collect();
    ensure(boxes.iter().enumerate().all(|(i, b)| b[3] == i as u64), || "small boxes corrupted".into())?;
    drop(boxes);
    let mut text = String::new();
    for i in 0..500 {
        text.push_str(&format!("{i},"));
    }
    ensure(text.len() == 1890 && text.starts_with("0,1,2,"), || format!("string of {} bytes", text.len()))
}

fn memory_functions() -> Check {
    // `copy_within` lowers to `memmove` (both overlap directions), `fill` to `memset`,
    // slice ordering to `memcmp`: all supplied by the runtime.
    let original: Vec<u8> = (0..200u8).collect();
    let mut up = original.clone();
    up.copy_within(0..150, 50);
    ensure(up[50..] == original[..150] && up[..50] == original[..50], || {
        "overlapping memmove to a higher address".into()
    })?;
    let mut down = original.clone();
    down.copy_within(50..200, 0);
    ensure(down[..150] == original[50..], || "overlapping memmove to a lower address".into())?;
    let mut filled = vec![0u8; black_box(77)];
    filled.fill(black_box(0xab));
    ensure(filled.iter().all(|&b| b == 0xab), || "memset".into())?;
    let a = black_box(b"abcdef".to_vec());
    let b = black_box(b"abcdeg".to_vec());
    let a2 = black_box(a.clone());
    let ordered = a.cmp(&b) == Ordering::Less && b.cmp(&a) == Ordering::Greater && a.cmp(&a2) == Ordering::Equal;
    ensure(ordered, || "memcmp ordering".into())
}

fn arguments() -> Check {
    let args = env::args();
    ensure(!args.is_empty() && args[0].ends_with("selftest"), || format!("argv = {args:?}"))
}

/// A named check.
type NamedCheck = (&'static str, fn() -> Check);

const CHECKS: &[NamedCheck] = &[
    ("gates-agree-on-getpid", gates_agree_on_getpid),
    ("gates-return-errno", both_gates_return_errno),
    ("int80-args-rbx-rcx-rdx", int80_passes_rbx_rcx_rdx),
    ("arguments", arguments),
    ("file-write-seek-read", file_write_seek_read),
    ("file-append", append_mode),
    ("missing-file-enoent", missing_file_is_enoent),
    ("directories", directories),
    ("working-directory", working_directory),
    ("fork-pipe-exit-status", fork_pipe_and_exit_status),
    ("exec-true-false", exec_true_false),
    ("exec-args-and-env", exec_passes_args_and_env),
    ("stdin-pipe-to-child", stdin_pipe_to_child),
    ("missing-program-127", missing_program_exits_127),
    ("kill-child", kill_child),
    ("clocks", clocks),
    ("allocator", allocator),
    ("memory-functions", memory_functions),
];

fn main() -> i32 {
    let args = env::args();
    let filter = args.get(1).cloned().unwrap_or_default();
    let (mut passed, mut failed) = (0, 0);
    for (name, check) in CHECKS {
        if !name.contains(filter.as_str()) {
            continue;
        }
        match check() {
            Ok(()) => {
                passed += 1;
                println!("ok {name}");
            }
            Err(why) => {
                failed += 1;
                println!("FAIL {name}: {why}");
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    i32::from(failed > 0)
}
