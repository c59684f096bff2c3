//! Resource exhaustion is contained: each limit gives the guest a clear error (or ends the
//! run with a clear outcome) and does the host no harm. The guest side is `bomb MODE`
//! (guest-apps/apps/src/bin/bomb.rs). Exercised: process cap (fork bomb, fork storm),
//! per-process and total memory caps, descriptor cap, full pipes (blocking, non-blocking,
//! a writer and reader pair, a deadlock), runaway recursion, an endless loop, and a flood
//! of console output (host memory stays bounded).

use std::cell::RefCell;
use std::process::{Command, Stdio};
use std::rc::Rc;

use guest_kernel::{CaptureConsole, CapturedOutput, Limits, RunOutcome};
use warden::RunOptions;

const MIB: u64 = 1 << 20;

struct Run {
    outcome: RunOutcome,
    stdout: String,
    stderr: String,
    instructions: u64,
    mapped_after: u64,
}

impl Run {
    fn status(&self) -> i32 {
        self.outcome.exit_status()
    }
}

fn bomb(args: &[&str], limits: Limits, budget: u64) -> Run {
    let opts = RunOptions {
        program: Some("bomb".into()),
        args: args.iter().map(|s| s.to_string()).collect(),
        budget: Some(budget),
        limits,
        ..RunOptions::default()
    };
    let (console, out): (CaptureConsole, Rc<RefCell<CapturedOutput>>) = CaptureConsole::new(b"");
    let mut kernel = warden::boot(&opts, Box::new(console)).expect("boot");
    let outcome = kernel.run();
    let out = out.borrow().clone();
    Run {
        outcome,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        instructions: kernel.stats().instructions,
        mapped_after: kernel.mapped_memory(),
    }
}

const BUDGET: u64 = 3_000_000_000;

/// The number in `line` just before `word` ("after 15 children" -> 15).
fn number_before(text: &str, word: &str) -> u64 {
    let i = text.find(word).unwrap_or_else(|| panic!("{word:?} not in {text:?}"));
    let head = text[..i].trim_end();
    let digits: String =
        head.chars().rev().take_while(|c| c.is_ascii_digit()).collect::<Vec<_>>().into_iter().rev().collect();
    digits.parse().unwrap_or_else(|_| panic!("no number before {word:?} in {text:?}"))
}

#[test]
fn fork_bomb_hits_the_process_cap_with_eagain() {
    let limits = Limits { max_processes: 16, ..Limits::default() };
    let r = bomb(&["fork"], limits, BUDGET);
    assert_eq!(r.status(), 0, "{}{}", r.stdout, r.stderr);
    // init plus 15 children is the cap of 16.
    assert!(r.stdout.contains("fork: EAGAIN after 15 children"), "{}", r.stdout);
    assert!(r.stdout.contains("fork: reaped 15"), "{}", r.stdout);
    assert_eq!(r.mapped_after, 0, "every address space was released");
}

#[test]
fn fork_storm_is_held_at_the_cap_until_the_budget_ends_it() {
    let limits = Limits { max_processes: 32, ..Limits::default() };
    let r = bomb(&["forkstorm"], limits, 20_000_000);
    assert_eq!(r.outcome, RunOutcome::BudgetExhausted);
    assert_eq!(r.status(), 124);
    assert_eq!(r.instructions, 20_000_000);
}

#[test]
fn memory_bomb_gets_enomem_at_the_per_process_cap() {
    let limits = Limits { max_memory_per_process: 64 * MIB, ..Limits::default() };
    let r = bomb(&["mem"], limits, BUDGET);
    assert_eq!(r.status(), 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("mem: ENOMEM after"), "{}", r.stdout);
    let got = number_before(&r.stdout, "MiB");
    // The program's image, heap and 8 MiB stack count too.
    assert!((40..64).contains(&got), "{got} MiB of 64: {}", r.stdout);
}

#[test]
fn total_memory_cap_holds_across_processes() {
    let per = Limits { max_memory_per_process: 64 * MIB, ..Limits::default() };
    let free = bomb(&["memtotal", "3"], per.clone(), BUDGET);
    assert_eq!(free.status(), 0, "{}{}", free.stdout, free.stderr);
    let free_total = number_before(&free.stdout, "MiB in total");
    assert!(free_total > 120, "without a total cap each child fills its own cap: {}", free.stdout);

    let capped = Limits { max_memory_total: 128 * MIB, ..per };
    let r = bomb(&["memtotal", "3"], capped, BUDGET);
    assert_eq!(r.status(), 0, "{}{}", r.stdout, r.stderr);
    let total = number_before(&r.stdout, "MiB in total");
    // Four address spaces (each with an 8 MiB stack) share 128 MiB.
    assert!(total < 100, "the total cap must bind: {}", r.stdout);
    assert!(total > 40, "{}", r.stdout);
    assert_eq!(r.mapped_after, 0, "the count of mapped memory returns to zero");
}

#[test]
fn fd_exhaustion_gives_emfile_and_the_table_recovers() {
    let limits = Limits { max_fds: 64, ..Limits::default() };
    let r = bomb(&["fds"], limits, BUDGET);
    assert_eq!(r.status(), 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("fds: EMFILE after 61 opens"), "{}", r.stdout);
    assert!(r.stdout.contains("fds: reopened as 3"), "{}", r.stdout);
}

#[test]
fn full_pipe_blocks_the_writer_and_the_run_ends_as_a_deadlock() {
    let r = bomb(&["pipe"], Limits::default(), BUDGET);
    assert_eq!(r.outcome, RunOutcome::Deadlock);
    assert_eq!(r.status(), 124);
    assert!(r.instructions < 10_000_000, "the writer blocked instead of spinning: {}", r.instructions);

    let r = bomb(&["pipe-nonblock"], Limits::default(), BUDGET);
    assert!(r.stdout.contains("pipe: EAGAIN after 65536 bytes"), "{}", r.stdout);

    let r = bomb(&["pipe-pair", "4"], Limits::default(), BUDGET);
    assert_eq!(r.status(), 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("pipe-pair: 4194304 bytes"), "{}", r.stdout);
}

#[test]
fn runaway_recursion_is_sigsegv() {
    let r = bomb(&["recurse"], Limits::default(), BUDGET);
    assert_eq!(r.outcome, RunOutcome::Signaled(11));
    assert_eq!(r.status(), 139);
}

#[test]
fn endless_loop_stops_at_the_budget_exactly() {
    let r = bomb(&["spin"], Limits::default(), 5_000_000);
    assert_eq!(r.outcome, RunOutcome::BudgetExhausted);
    assert_eq!(r.instructions, 5_000_000);
}

// --- through the real binary ------------------------------------------------------------------

/// Runs `warden ARGS` with stdout to /dev/null; returns (exit status, stderr, peak RSS in KiB).
fn warden_rss(args: &[&str]) -> (i32, String, i64) {
    // Reaped below by wait4 (for its rusage), not by Child::wait.
    #[allow(clippy::zombie_processes)]
    let mut child = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn warden");
    let mut stderr = String::new();
    use std::io::Read;
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it in for this very child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child (not reaped elsewhere) with valid out-pointers.
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as libc::pid_t);
    let code = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { 128 + libc::WTERMSIG(status) };
    (code, stderr, usage.ru_maxrss)
}

#[test]
fn console_flood_streams_in_bounded_host_memory() {
    let (small_status, _, small_rss) = warden_rss(&["run", "bomb", "flood", "1"]);
    assert_eq!(small_status, 0);
    let (status, stderr, rss) = warden_rss(&["run", "bomb", "flood", "512"]);
    assert_eq!(status, 0, "{stderr}");
    // 512 MiB went through; warden's own peak grew by far less than that.
    assert!(rss - small_rss < 48 * 1024, "peak RSS {rss} KiB after 512 MiB of output vs {small_rss} KiB after 1 MiB");
}

#[test]
fn cli_says_why_a_run_stopped() {
    let (status, stderr, _) = warden_rss(&["run", "--budget", "1000000", "bomb", "spin"]);
    assert_eq!(status, 124);
    assert!(stderr.contains("instruction budget ran out"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    let (status, stderr, _) = warden_rss(&["run", "bomb", "pipe"]);
    assert_eq!(status, 124);
    assert!(stderr.contains("deadlock"), "{stderr}");

    let (status, stderr, _) = warden_rss(&["run", "--max-procs", "8", "bomb", "fork"]);
    assert_eq!(status, 0, "{stderr}");

    let (status, stderr, _) = warden_rss(&["run", "--max-mem", "32", "--max-mem-total", "48", "bomb", "memtotal", "2"]);
    assert_eq!(status, 0, "{stderr}");
}

/// Issue 20, reproduction 3: the in-memory write layer is charged to `--max-mem-total`.
/// Under `--max-mem 16 --max-mem-total 32` a 1 GiB `ftruncate` took 1 GiB of warden's memory;
/// now it, and a 64 MiB write, fail with ENOSPC while a file that fits is fine, and warden's
/// peak RSS stays far below the 1 GiB.
#[test]
fn the_write_layer_counts_against_max_mem_total() {
    let busybox = std::path::Path::new("/bin/busybox");
    if !busybox.exists() {
        assert_ne!(std::env::var("WARDEN_REQUIRE_TOOLS").as_deref(), Ok("1"), "busybox not found");
        eprintln!("SKIPPED: busybox not found");
        return;
    }
    let root = std::env::temp_dir().join(format!("warden-limits-{}-layer", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy(busybox, root.join("bin/busybox")).unwrap();
    // One account: the file layer and the processes share the 32 MiB (so the 8 MiB file goes
    // before dd needs a process of its own).
    let script = "truncate -s 1G /f; echo truncate-1G=$? >&2; truncate -s 8M /f; echo truncate-8M=$? >&2; rm /f; \
                  dd if=/dev/zero of=/g bs=1M count=64; echo dd=$? >&2";
    let args = ["run", "--max-mem", "16", "--max-mem-total", "32", "--root", root.to_str().unwrap()];
    let (status, stderr, rss) = warden_rss(&[&args[..], &["/bin/busybox", "sh", "-c", script]].concat());
    assert_eq!(status, 0, "{stderr}");
    assert!(stderr.contains("truncate: /f: truncate: No space left on device\ntruncate-1G=1\n"), "{stderr}");
    assert!(stderr.contains("truncate-8M=0\n") && stderr.ends_with("dd=1\n"), "{stderr}");
    assert_eq!(stderr.matches("No space left on device").count(), 2, "{stderr}");
    assert!(rss < 256 * 1024, "peak RSS {rss} KiB: the write layer grew host memory");
    // The same account holds while recording (the root is watched for the trace).
    let trace = root.join("t.trace");
    let record = ["record", "-o", trace.to_str().unwrap(), "--max-mem-total", "32", "--root", root.to_str().unwrap()];
    let (status, stderr, _) = warden_rss(&[&record[..], &["/bin/busybox", "truncate", "-s", "1G", "/f"]].concat());
    assert_eq!(status, 1, "{stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
    let _ = std::fs::remove_dir_all(root);
}

/// Pipe buffers count against `--max-mem-total` too: a guest making pipes until one fails
/// gets ENFILE (Linux's answer past its pipe-memory limit) under a small total, and EMFILE
/// (the descriptor cap) without one.
#[test]
fn pipe_buffers_count_against_max_mem_total() {
    let found = Command::new("gcc").arg("--version").output().is_ok_and(|o| o.status.success());
    if !found {
        assert_ne!(std::env::var("WARDEN_REQUIRE_TOOLS").as_deref(), Ok("1"), "gcc not found");
        eprintln!("SKIPPED: gcc not found");
        return;
    }
    let dir = std::env::temp_dir().join(format!("warden-limits-{}-pipes", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::write(
        dir.join("pipes.c"),
        "#include <errno.h>\n#include <stdio.h>\n#include <string.h>\n#include <unistd.h>\n\
         int main(void) { int p[2], n = 0; while (pipe(p) == 0) { write(p[1], \"x\", 1); n++; }\n\
         printf(\"%s after %d pipes\\n\", strerror(errno), n); return 0; }\n",
    )
    .unwrap();
    let status =
        Command::new("gcc").args(["-static", "-O2", "-o"]).arg(dir.join("bin/pipes")).arg(dir.join("pipes.c")).status();
    assert!(status.unwrap().success());
    let run = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_warden"))
            .args(["run", "--root", dir.to_str().unwrap()])
            .args(extra)
            .arg("/bin/pipes")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let capped = run(&["--max-mem-total", "32"]);
    assert!(capped.starts_with("Too many open files in system after "), "{capped}");
    let pipes = number_before(&capped, "pipes");
    assert!((100..400).contains(&pipes), "{capped}");
    let free = run(&[]);
    assert!(free.starts_with("Too many open files after "), "{free}");
    assert!(number_before(&free, "pipes") > pipes, "{free}");
    let _ = std::fs::remove_dir_all(dir);
}
