//! Kernel tests: small guest programs assembled with iced-x86 and wrapped
//! into static ELF files by `testkit`, run on an in-memory `MemFs` root with a
//! captured console.

use iced_x86::code_asm::*;
use warden_abi::*;

use crate::scheme::memfs::MemFs;
use crate::testkit::{static_elf, CODE_ADDR};
use crate::{CaptureConsole, Kernel, KernelConfig, RunOutcome, SpawnError};

/// A program under construction.
struct Prog {
    a: CodeAssembler,
}

impl Prog {
    fn new() -> Prog {
        Prog { a: CodeAssembler::new(64).unwrap() }
    }

    /// `syscall` with number `n` (arguments already in place).
    fn sys(&mut self, n: usize) {
        self.a.mov(rax, n as u64).unwrap();
        self.a.syscall().unwrap();
    }

    /// write(fd, label, len) through the `syscall` gate.
    fn write(&mut self, fd: u64, msg: CodeLabel, len: u64) {
        self.a.mov(rdi, fd).unwrap();
        self.a.lea(rsi, ptr(msg)).unwrap();
        self.a.mov(rdx, len).unwrap();
        self.sys(SYS_WRITE);
    }

    fn exit_imm(&mut self, code: u64) {
        self.a.mov(rdi, code).unwrap();
        self.sys(SYS_EXIT);
    }

    /// Exit with the value in rax.
    fn exit_rax(&mut self) {
        self.a.mov(rdi, rax).unwrap();
        self.sys(SYS_EXIT);
    }

    fn data(&mut self, bytes: &[u8]) -> CodeLabel {
        let mut l = self.a.create_label();
        self.a.set_label(&mut l).unwrap();
        self.a.db(bytes).unwrap();
        l
    }

    fn label(&mut self) -> CodeLabel {
        self.a.create_label()
    }

    fn here(&mut self, l: &mut CodeLabel) {
        self.a.set_label(l).unwrap();
    }

    fn elf(mut self) -> Vec<u8> {
        static_elf(&self.a.assemble(CODE_ADDR).unwrap(), 0x1000)
    }
}

struct Run {
    outcome: RunOutcome,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    instructions: u64,
}

fn run_with(root: &MemFs, init: &str, argv: &[&str], config: KernelConfig, stdin: &[u8]) -> Run {
    let (console, out) = CaptureConsole::new(stdin);
    let mut k = Kernel::new(config, Box::new(root.clone()), Box::new(console));
    k.spawn_init(init, argv, &[]).expect("spawn init");
    let outcome = k.run();
    let out = out.borrow().clone();
    Run { outcome, stdout: out.stdout, stderr: out.stderr, instructions: k.instructions() }
}

fn run_prog(elf: Vec<u8>) -> Run {
    let root = MemFs::new();
    root.insert("/bin/init", &elf);
    run_with(&root, "/bin/init", &["init"], KernelConfig::default(), b"")
}

#[test]
fn hello_through_syscall_gate() {
    let mut p = Prog::new();
    let mut start = p.label();
    p.a.jmp(start).unwrap();
    let msg = p.data(b"hello\n");
    p.here(&mut start);
    p.write(1, msg, 6);
    p.exit_imm(7);
    let r = run_prog(p.elf());
    assert_eq!(r.stdout, b"hello\n");
    assert_eq!(r.outcome, RunOutcome::Exited(7));
    assert_eq!(r.outcome.exit_status(), 7);
}

#[test]
fn hello_through_int80_gate() {
    let mut p = Prog::new();
    let mut start = p.label();
    p.a.jmp(start).unwrap();
    let msg = p.data(b"int80\n");
    p.here(&mut start);
    p.a.mov(rax, SYS_WRITE as u64).unwrap();
    p.a.mov(rbx, 2u64).unwrap();
    p.a.lea(rcx, ptr(msg)).unwrap();
    p.a.mov(rdx, 6u64).unwrap();
    p.a.int(0x80).unwrap();
    p.a.mov(rax, SYS_EXIT as u64).unwrap();
    p.a.mov(rbx, 5u64).unwrap();
    p.a.int(0x80).unwrap();
    let r = run_prog(p.elf());
    assert_eq!(r.stderr, b"int80\n");
    assert_eq!(r.outcome, RunOutcome::Exited(5));
}

#[test]
fn unknown_syscall_is_enosys_and_bad_pointer_is_efault() {
    let mut p = Prog::new();
    p.sys(9999);
    p.a.neg(rax).unwrap();
    p.a.mov(r12, rax).unwrap();
    // write(1, 0x10, 5) -> -EFAULT
    p.a.mov(rdi, 1u64).unwrap();
    p.a.mov(rsi, 0x10u64).unwrap();
    p.a.mov(rdx, 5u64).unwrap();
    p.sys(SYS_WRITE);
    p.a.neg(rax).unwrap();
    p.a.imul_3(rax, rax, 100).unwrap();
    p.a.add(rax, r12).unwrap();
    p.exit_rax();
    let r = run_prog(p.elf());
    // 14 * 100 + 38, truncated to 8 bits.
    assert_eq!(r.outcome, RunOutcome::Exited(((14 * 100 + 38) & 0xff) as u8));
}

#[test]
fn fork_and_waitpid() {
    let mut p = Prog::new();
    let mut start = p.label();
    let mut child = p.label();
    p.a.jmp(start).unwrap();
    let msg = p.data(b"child\n");
    let status = p.data(&[0; 8]);
    p.here(&mut start);
    p.a.mov(rdi, 0u64).unwrap();
    p.sys(SYS_CLONE);
    p.a.test(rax, rax).unwrap();
    p.a.jz(child).unwrap();
    // Parent: waitpid(-1, &status, 0); exit(WEXITSTATUS + 10).
    p.a.mov(rdi, u64::MAX).unwrap();
    p.a.lea(rsi, ptr(status)).unwrap();
    p.a.mov(rdx, 0u64).unwrap();
    p.sys(SYS_WAITPID);
    p.a.mov(rax, qword_ptr(status)).unwrap();
    p.a.shr(rax, 8).unwrap();
    p.a.add(rax, 10).unwrap();
    p.exit_rax();
    p.here(&mut child);
    p.write(1, msg, 6);
    p.exit_imm(3);
    let r = run_prog(p.elf());
    assert_eq!(r.stdout, b"child\n");
    assert_eq!(r.outcome, RunOutcome::Exited(13));
}

/// Under a debugger asking for fork events, the fork of the debugged process stops the
/// run right after the call, naming the new process; following it changes nothing.
#[test]
fn a_debugger_sees_the_fork_and_can_follow_the_child() {
    use crate::debug::{DebugEvent, DebugStop, Resume};
    let mut p = Prog::new();
    let mut start = p.label();
    let mut child = p.label();
    p.a.jmp(start).unwrap();
    let status = p.data(&[0; 8]);
    p.here(&mut start);
    p.a.mov(rdi, 0u64).unwrap();
    p.sys(SYS_CLONE);
    p.a.test(rax, rax).unwrap();
    p.a.jz(child).unwrap();
    p.a.mov(rdi, u64::MAX).unwrap();
    p.a.lea(rsi, ptr(status)).unwrap();
    p.a.mov(rdx, 0u64).unwrap();
    p.sys(SYS_WAITPID);
    p.a.mov(rax, qword_ptr(status)).unwrap();
    p.a.shr(rax, 8).unwrap();
    p.exit_rax();
    p.here(&mut child);
    p.exit_imm(4);
    let root = MemFs::new();
    root.insert("/bin/init", &p.elf());
    let (console, _) = CaptureConsole::new(b"");
    let mut k = Kernel::new(KernelConfig::default(), Box::new(root), Box::new(console));
    k.spawn_init("/bin/init", &["init"], &[]).expect("spawn init");
    k.debug_attach(1);
    let events = Resume { fork_events: true, ..Resume::default() };
    let DebugEvent::Stopped(DebugStop::Forked(1, child)) = k.debug_run(events) else { panic!("no fork event") };
    assert_eq!(k.debug_cpu(child).map(|c| c.gpr[0]), Some(0), "the child returns 0 from the call");
    k.debug_switch(child);
    assert_eq!(k.debugged_pid(), Some(child));
    assert_eq!(k.debug_run(events), DebugEvent::Ended(RunOutcome::Exited(4)));
}

/// A program: parent makes a pipe, forks; the child writes "ping" into it and
/// exits; the parent copies what it reads to stdout, waits and exits 0.
fn pipe_program() -> Vec<u8> {
    let mut p = Prog::new();
    let mut start = p.label();
    let mut child = p.label();
    let mut read_loop = p.label();
    let mut done = p.label();
    p.a.jmp(start).unwrap();
    let fds = p.data(&[0; 8]);
    let wfd = p.data(&[0; 8]);
    let msg = p.data(b"ping from child\n");
    let buf = p.data(&[0; 64]);
    p.here(&mut start);
    p.a.lea(rdi, ptr(fds)).unwrap();
    p.a.mov(rsi, 0u64).unwrap();
    p.sys(SYS_PIPE2);
    p.a.mov(rdi, 0u64).unwrap();
    p.sys(SYS_CLONE);
    p.a.test(rax, rax).unwrap();
    p.a.jz(child).unwrap();
    // Parent: close the write end, read until EOF.
    p.a.mov(rdi, qword_ptr(wfd)).unwrap();
    p.sys(SYS_CLOSE);
    p.here(&mut read_loop);
    p.a.mov(rdi, qword_ptr(fds)).unwrap();
    p.a.lea(rsi, ptr(buf)).unwrap();
    p.a.mov(rdx, 64u64).unwrap();
    p.sys(SYS_READ);
    p.a.test(rax, rax).unwrap();
    p.a.jle(done).unwrap();
    p.a.mov(rdx, rax).unwrap();
    p.a.mov(rdi, 1u64).unwrap();
    p.a.lea(rsi, ptr(buf)).unwrap();
    p.sys(SYS_WRITE);
    p.a.jmp(read_loop).unwrap();
    p.here(&mut done);
    p.a.mov(rdi, u64::MAX).unwrap();
    p.a.mov(rsi, 0u64).unwrap();
    p.a.mov(rdx, 0u64).unwrap();
    p.sys(SYS_WAITPID);
    p.exit_imm(0);
    // Child: write, exit.
    p.here(&mut child);
    p.a.mov(rdi, qword_ptr(wfd)).unwrap();
    p.a.lea(rsi, ptr(msg)).unwrap();
    p.a.mov(rdx, 16u64).unwrap();
    p.sys(SYS_WRITE);
    p.exit_imm(0);
    p.elf()
}

#[test]
fn pipe_between_processes() {
    let r = run_prog(pipe_program());
    assert_eq!(r.stdout, b"ping from child\n");
    assert_eq!(r.outcome, RunOutcome::Exited(0));
}

#[test]
fn runs_are_deterministic() {
    let a = run_prog(pipe_program());
    let b = run_prog(pipe_program());
    assert_eq!(a.stdout, b.stdout);
    assert_eq!(a.instructions, b.instructions);
    assert!(a.instructions > 0);
}

#[test]
fn page_fault_kills_with_sigsegv() {
    let mut p = Prog::new();
    p.a.mov(rax, qword_ptr(0x10)).unwrap();
    p.exit_imm(0);
    let r = run_prog(p.elf());
    assert_eq!(r.outcome, RunOutcome::Signaled(SIGSEGV as u8));
    assert_eq!(r.outcome.exit_status(), 128 + 11);
}

#[test]
fn faults_map_to_signals() {
    // ud2 -> SIGILL, int3 -> SIGTRAP, div by zero -> SIGFPE, hlt -> SIGSEGV.
    type Emit = Box<dyn Fn(&mut CodeAssembler)>;
    let cases: Vec<(Emit, usize)> = vec![
        (Box::new(|a: &mut CodeAssembler| a.ud2().unwrap()), SIGILL),
        (Box::new(|a: &mut CodeAssembler| a.int3().unwrap()), SIGTRAP),
        (
            Box::new(|a: &mut CodeAssembler| {
                a.xor(ecx, ecx).unwrap();
                a.div(rcx).unwrap();
            }),
            SIGFPE,
        ),
        (Box::new(|a: &mut CodeAssembler| a.hlt().unwrap()), SIGSEGV),
    ];
    for (emit, sig) in cases {
        let mut p = Prog::new();
        emit(&mut p.a);
        p.exit_imm(0);
        assert_eq!(run_prog(p.elf()).outcome, RunOutcome::Signaled(sig as u8));
    }
}

#[test]
fn budget_ends_an_endless_loop() {
    let mut p = Prog::new();
    let mut l = p.label();
    p.here(&mut l);
    p.a.jmp(l).unwrap();
    let root = MemFs::new();
    root.insert("/bin/init", &p.elf());
    let config = KernelConfig { instruction_budget: Some(50_000), quantum: 1000, ..KernelConfig::default() };
    let r = run_with(&root, "/bin/init", &["init"], config, b"");
    assert_eq!(r.outcome, RunOutcome::BudgetExhausted);
    assert_eq!(r.outcome.exit_status(), 124);
    assert_eq!(r.instructions, 50_000);
}

#[test]
fn deadlock_is_reported() {
    // Read from a pipe whose write end we still hold.
    let mut p = Prog::new();
    let mut start = p.label();
    p.a.jmp(start).unwrap();
    let fds = p.data(&[0; 8]);
    let _wfd = p.data(&[0; 8]);
    let buf = p.data(&[0; 8]);
    p.here(&mut start);
    p.a.lea(rdi, ptr(fds)).unwrap();
    p.a.mov(rsi, 0u64).unwrap();
    p.sys(SYS_PIPE2);
    p.a.mov(rdi, qword_ptr(fds)).unwrap();
    p.a.lea(rsi, ptr(buf)).unwrap();
    p.a.mov(rdx, 8u64).unwrap();
    p.sys(SYS_READ);
    p.exit_imm(0);
    assert_eq!(run_prog(p.elf()).outcome, RunOutcome::Deadlock);
}

#[test]
fn sigpipe_on_write_to_closed_pipe() {
    let mut p = Prog::new();
    let mut start = p.label();
    p.a.jmp(start).unwrap();
    let fds = p.data(&[0; 8]);
    let wfd = p.data(&[0; 8]);
    let msg = p.data(b"x");
    p.here(&mut start);
    p.a.lea(rdi, ptr(fds)).unwrap();
    p.a.mov(rsi, 0u64).unwrap();
    p.sys(SYS_PIPE2);
    p.a.mov(rdi, qword_ptr(fds)).unwrap();
    p.sys(SYS_CLOSE);
    p.a.mov(rdi, qword_ptr(wfd)).unwrap();
    p.a.lea(rsi, ptr(msg)).unwrap();
    p.a.mov(rdx, 1u64).unwrap();
    p.sys(SYS_WRITE);
    p.exit_imm(0);
    assert_eq!(run_prog(p.elf()).outcome, RunOutcome::Signaled(SIGPIPE as u8));
}

#[test]
fn exec_replaces_the_image_with_args() {
    // /bin/b exits with argc + 40 after printing its argv[1].
    let mut b = Prog::new();
    b.a.mov(rax, qword_ptr(rsp)).unwrap();
    b.a.mov(r12, rax).unwrap();
    // argv[1] is "hi" (2 bytes).
    b.a.mov(rdi, 1u64).unwrap();
    b.a.mov(rsi, qword_ptr(rsp + 16)).unwrap();
    b.a.mov(rdx, 2u64).unwrap();
    b.sys(SYS_WRITE);
    b.a.lea(rax, ptr(r12 + 40)).unwrap();
    b.exit_rax();

    let mut p = Prog::new();
    let mut start = p.label();
    p.a.jmp(start).unwrap();
    let path = p.data(b"/bin/b");
    let arg0 = p.data(b"b");
    let arg1 = p.data(b"hi");
    let args = p.data(&[0; 32]);
    p.here(&mut start);
    // Fill args = [(arg0, 1), (arg1, 2)].
    p.a.lea(rbx, ptr(args)).unwrap();
    p.a.lea(rax, ptr(arg0)).unwrap();
    p.a.mov(qword_ptr(rbx), rax).unwrap();
    p.a.mov(qword_ptr(rbx + 8), 1).unwrap();
    p.a.lea(rax, ptr(arg1)).unwrap();
    p.a.mov(qword_ptr(rbx + 16), rax).unwrap();
    p.a.mov(qword_ptr(rbx + 24), 2).unwrap();
    p.a.lea(rdi, ptr(path)).unwrap();
    p.a.mov(rsi, 6u64).unwrap();
    p.a.mov(rdx, (O_RDONLY | O_CLOEXEC) as u64).unwrap();
    p.sys(SYS_OPEN);
    p.a.mov(rdi, rax).unwrap();
    p.a.lea(rsi, ptr(args)).unwrap();
    p.a.mov(rdx, 2u64).unwrap();
    p.a.mov(r10, 0u64).unwrap();
    p.a.mov(r8, 0u64).unwrap();
    p.sys(SYS_FEXEC);
    p.exit_imm(99);

    let root = MemFs::new();
    root.insert("/bin/init", &p.elf());
    root.insert("/bin/b", &b.elf());
    let r = run_with(&root, "/bin/init", &["init"], KernelConfig::default(), b"");
    assert_eq!(r.stdout, b"hi");
    assert_eq!(r.outcome, RunOutcome::Exited(42));
}

#[test]
fn signal_handler_runs_and_sigreturn_restores_registers() {
    let mut p = Prog::new();
    let mut start = p.label();
    let mut handler = p.label();
    let mut bad = p.label();
    p.a.jmp(start).unwrap();
    let act = p.data(&[0; SigAction::SIZE]);
    let sig_msg = p.data(b"sig\n");
    let back_msg = p.data(b"back\n");
    p.here(&mut handler);
    // The handler clobbers r12 and returns to the trampoline.
    p.a.mov(r12, 0u64).unwrap();
    p.write(1, sig_msg, 4);
    p.a.ret().unwrap();
    p.here(&mut start);
    p.a.lea(rax, ptr(handler)).unwrap();
    p.a.mov(qword_ptr(act), rax).unwrap();
    p.a.mov(rdi, SIGUSR1 as u64).unwrap();
    p.a.lea(rsi, ptr(act)).unwrap();
    p.a.mov(rdx, 0u64).unwrap();
    p.a.mov(r10, 0u64).unwrap();
    p.sys(SYS_SIGACTION);
    p.a.mov(r12, 0x1234u64).unwrap();
    p.sys(SYS_GETPID);
    p.a.mov(rdi, rax).unwrap();
    p.a.mov(rsi, SIGUSR1 as u64).unwrap();
    p.sys(SYS_KILL);
    p.a.cmp(r12, 0x1234).unwrap();
    p.a.jne(bad).unwrap();
    p.write(1, back_msg, 5);
    p.exit_imm(0);
    p.here(&mut bad);
    p.exit_imm(1);
    let r = run_prog(p.elf());
    assert_eq!(String::from_utf8_lossy(&r.stdout), "sig\nback\n");
    assert_eq!(r.outcome, RunOutcome::Exited(0));
}

#[test]
fn kill_default_action_and_child_status() {
    // The child loops forever; the parent kills it and exits with the status.
    let mut p = Prog::new();
    let mut start = p.label();
    let mut child = p.label();
    p.a.jmp(start).unwrap();
    let status = p.data(&[0; 8]);
    p.here(&mut start);
    p.a.mov(rdi, 0u64).unwrap();
    p.sys(SYS_CLONE);
    p.a.test(rax, rax).unwrap();
    p.a.jz(child).unwrap();
    p.a.mov(r12, rax).unwrap();
    p.a.mov(rdi, rax).unwrap();
    p.a.mov(rsi, SIGTERM as u64).unwrap();
    p.sys(SYS_KILL);
    p.a.mov(rdi, r12).unwrap();
    p.a.lea(rsi, ptr(status)).unwrap();
    p.a.mov(rdx, 0u64).unwrap();
    p.sys(SYS_WAITPID);
    p.a.mov(rax, qword_ptr(status)).unwrap();
    p.exit_rax();
    p.here(&mut child);
    p.a.jmp(child).unwrap();
    let r = run_prog(p.elf());
    assert_eq!(r.outcome, RunOutcome::Exited(w_termsig(SIGTERM) as u8));
}

#[test]
fn sleep_advances_virtual_time() {
    let mut p = Prog::new();
    let mut start = p.label();
    p.a.jmp(start).unwrap();
    let req = p.data(&TimeSpec { tv_sec: 3, tv_nsec: 0 }.to_bytes());
    let t0 = p.data(&[0; TimeSpec::SIZE]);
    let t1 = p.data(&[0; TimeSpec::SIZE]);
    p.here(&mut start);
    p.a.mov(rdi, CLOCK_MONOTONIC as u64).unwrap();
    p.a.lea(rsi, ptr(t0)).unwrap();
    p.sys(SYS_CLOCK_GETTIME);
    p.a.lea(rdi, ptr(req)).unwrap();
    p.a.mov(rsi, 0u64).unwrap();
    p.sys(SYS_NANOSLEEP);
    p.a.mov(rdi, CLOCK_MONOTONIC as u64).unwrap();
    p.a.lea(rsi, ptr(t1)).unwrap();
    p.sys(SYS_CLOCK_GETTIME);
    p.a.mov(rax, qword_ptr(t1)).unwrap();
    p.a.sub(rax, qword_ptr(t0)).unwrap();
    p.exit_rax();
    assert_eq!(run_prog(p.elf()).outcome, RunOutcome::Exited(3));
}

#[test]
fn brk_grows_the_heap() {
    let mut p = Prog::new();
    p.a.mov(rdi, 0u64).unwrap();
    p.sys(SYS_BRK);
    p.a.mov(r12, rax).unwrap();
    p.a.lea(rdi, ptr(rax + 0x10000)).unwrap();
    p.sys(SYS_BRK);
    p.a.mov(qword_ptr(r12 + 0x8000), 77).unwrap();
    p.a.mov(rax, qword_ptr(r12 + 0x8000)).unwrap();
    p.exit_rax();
    assert_eq!(run_prog(p.elf()).outcome, RunOutcome::Exited(77));
}

#[test]
fn files_open_write_read_back_and_proc() {
    let mut p = Prog::new();
    let mut start = p.label();
    p.a.jmp(start).unwrap();
    let path = p.data(b"out.txt");
    let proc_path = p.data(b"proc:self/cmdline");
    let msg = p.data(b"data!");
    let buf = p.data(&[0; 64]);
    p.here(&mut start);
    // fd = open("out.txt", O_CREAT|O_RDWR|0644); write; lseek 0; read; print.
    p.a.lea(rdi, ptr(path)).unwrap();
    p.a.mov(rsi, 7u64).unwrap();
    p.a.mov(rdx, (O_CREAT | O_RDWR | 0o644) as u64).unwrap();
    p.sys(SYS_OPEN);
    p.a.mov(r12, rax).unwrap();
    p.a.mov(rdi, r12).unwrap();
    p.a.lea(rsi, ptr(msg)).unwrap();
    p.a.mov(rdx, 5u64).unwrap();
    p.sys(SYS_WRITE);
    p.a.mov(rdi, r12).unwrap();
    p.a.mov(rsi, 0u64).unwrap();
    p.a.mov(rdx, SEEK_SET as u64).unwrap();
    p.sys(SYS_LSEEK);
    p.a.mov(rdi, r12).unwrap();
    p.a.lea(rsi, ptr(buf)).unwrap();
    p.a.mov(rdx, 64u64).unwrap();
    p.sys(SYS_READ);
    p.a.mov(rdx, rax).unwrap();
    p.a.mov(rdi, 1u64).unwrap();
    p.a.lea(rsi, ptr(buf)).unwrap();
    p.sys(SYS_WRITE);
    // proc:self/cmdline
    p.a.lea(rdi, ptr(proc_path)).unwrap();
    p.a.mov(rsi, 17u64).unwrap();
    p.a.mov(rdx, O_RDONLY as u64).unwrap();
    p.sys(SYS_OPEN);
    p.a.mov(rdi, rax).unwrap();
    p.a.lea(rsi, ptr(buf)).unwrap();
    p.a.mov(rdx, 64u64).unwrap();
    p.sys(SYS_READ);
    p.a.mov(rdx, rax).unwrap();
    p.a.mov(rdi, 1u64).unwrap();
    p.a.lea(rsi, ptr(buf)).unwrap();
    p.sys(SYS_WRITE);
    p.exit_imm(0);
    let root = MemFs::new();
    root.insert("/bin/init", &p.elf());
    let r = run_with(&root, "/bin/init", &["init", "x"], KernelConfig::default(), b"");
    assert_eq!(r.outcome, RunOutcome::Exited(0));
    assert_eq!(r.stdout, b"data!init\0x\0");
    assert_eq!(root.get("/out.txt").unwrap(), b"data!");
}

#[test]
fn stdin_is_read_from_the_console() {
    let mut p = Prog::new();
    let mut start = p.label();
    p.a.jmp(start).unwrap();
    let buf = p.data(&[0; 16]);
    p.here(&mut start);
    p.a.mov(rdi, 0u64).unwrap();
    p.a.lea(rsi, ptr(buf)).unwrap();
    p.a.mov(rdx, 16u64).unwrap();
    p.sys(SYS_READ);
    p.a.mov(rdx, rax).unwrap();
    p.a.mov(rdi, 1u64).unwrap();
    p.a.lea(rsi, ptr(buf)).unwrap();
    p.sys(SYS_WRITE);
    p.exit_imm(0);
    let root = MemFs::new();
    root.insert("/bin/init", &p.elf());
    let r = run_with(&root, "/bin/init", &["init"], KernelConfig::default(), b"echo me");
    assert_eq!(r.stdout, b"echo me");
}

#[test]
fn spawn_errors_map_to_exit_statuses() {
    let root = MemFs::new();
    root.insert("/bin/garbage", b"\x7fELF not really an elf at all, just bytes.............................");
    let (console, _) = CaptureConsole::new(b"");
    let mut k = Kernel::new(KernelConfig::default(), Box::new(root.clone()), Box::new(console));
    let e = k.spawn_init("/bin/missing", &["x"], &[]).unwrap_err();
    assert!(matches!(e, SpawnError::NotFound { .. }));
    assert_eq!(e.exit_status(), 127);
    let e = k.spawn_init("/bin/garbage", &["x"], &[]).unwrap_err();
    assert!(matches!(e, SpawnError::NotExecutable { .. }), "{e:?}");
    assert_eq!(e.exit_status(), 126);
}

#[test]
fn malformed_elves_never_panic() {
    let mut good = Prog::new();
    good.exit_imm(0);
    let good = good.elf();
    let mut seed = 12345u64;
    for i in 0..2000 {
        let mut bytes = good.clone();
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let pos = (seed >> 33) as usize % bytes.len().min(128);
        bytes[pos] = (seed >> 17) as u8;
        if i % 3 == 0 {
            bytes.truncate((seed >> 40) as usize % bytes.len());
        }
        let _ = crate::elf::parse(&bytes, 1 << 36);
        let root = MemFs::new();
        root.insert("/bin/init", &bytes);
        let (console, _) = CaptureConsole::new(b"");
        let config = KernelConfig { instruction_budget: Some(10_000), ..KernelConfig::default() };
        let mut k = Kernel::new(config, Box::new(root), Box::new(console));
        if k.spawn_init("/bin/init", &["init"], &[]).is_ok() {
            let _ = k.run();
        }
    }
}

#[test]
fn fd_limit_gives_emfile() {
    let mut p = Prog::new();
    let mut again = p.label();
    p.a.jmp(again).unwrap();
    let path = p.data(b"debug:");
    p.here(&mut again);
    p.a.lea(rdi, ptr(path)).unwrap();
    p.a.mov(rsi, 6u64).unwrap();
    p.a.mov(rdx, O_RDWR as u64).unwrap();
    p.sys(SYS_OPEN);
    p.a.test(rax, rax).unwrap();
    p.a.jns(again).unwrap();
    p.a.neg(rax).unwrap();
    p.exit_rax();
    let root = MemFs::new();
    root.insert("/bin/init", &p.elf());
    let mut config = KernelConfig::default();
    config.limits.max_fds = 8;
    let r = run_with(&root, "/bin/init", &["init"], config, b"");
    assert_eq!(r.outcome, RunOutcome::Exited(EMFILE as u8));
}

/// Zombies keep no memory, and they share one empty address space (made once per kernel,
/// not once per exit); init had it too until its exec gave it its own.
#[test]
fn zombies_share_the_one_empty_address_space() {
    let mut p = Prog::new();
    let mut child = p.label();
    let mut spin = p.label();
    for _ in 0..2 {
        p.a.mov(rdi, 0u64).unwrap();
        p.sys(SYS_CLONE);
        p.a.test(rax, rax).unwrap();
        p.a.jz(child).unwrap();
    }
    p.here(&mut spin);
    p.a.jmp(spin).unwrap();
    p.here(&mut child);
    p.exit_imm(0);
    let root = MemFs::new();
    root.insert("/bin/init", &p.elf());
    let (console, _out) = CaptureConsole::new(b"");
    let config = KernelConfig { instruction_budget: Some(50_000), quantum: 1000, ..KernelConfig::default() };
    let mut k = Kernel::new(config, Box::new(root), Box::new(console));
    k.spawn_init("/bin/init", &["init"], &[]).unwrap();
    assert_eq!(k.run(), RunOutcome::BudgetExhausted);
    let empty = k.empty_mm.clone().expect("made for init's start");
    let zombies: Vec<_> =
        k.procs.values().filter(|p| matches!(p.state, crate::process::ProcState::Zombie(_))).collect();
    assert_eq!(zombies.len(), 2);
    for z in zombies {
        assert!(std::rc::Rc::ptr_eq(&z.mm, &empty), "zombie {} has its own address space", z.pid);
    }
    let init = &k.procs[&1];
    assert!(!std::rc::Rc::ptr_eq(&init.mm, &empty) && init.mm.borrow().mapped_bytes() > 0);
    assert_eq!(empty.borrow().mapped_bytes(), 0);
}
