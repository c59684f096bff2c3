//! The kernel driven through its public API only: hand-assembled guests
//! (iced-x86) wrapped by `testkit::static_elf`, run on a `MemFs` root with a
//! captured console. Covers threads, futexes, vfork, maps, per-call
//! non-blocking writes, limits and the signal frame.

use guest_kernel::scheme::memfs::MemFs;
use guest_kernel::testkit::{static_elf, CODE_ADDR};
use guest_kernel::{CaptureConsole, Kernel, KernelConfig, RunOutcome};
use iced_x86::code_asm::*;
use warden_abi::*;

struct Prog {
    a: CodeAssembler,
}

impl Prog {
    fn new() -> Prog {
        Prog { a: CodeAssembler::new(64).unwrap() }
    }
    fn sys(&mut self, n: usize) {
        self.a.mov(rax, n as u64).unwrap();
        self.a.syscall().unwrap();
    }
    fn exit_rax(&mut self) {
        self.a.mov(rdi, rax).unwrap();
        self.sys(SYS_EXIT);
    }
    fn exit_imm(&mut self, code: u64) {
        self.a.mov(rdi, code).unwrap();
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
    fn elf(mut self, bss: u64) -> Vec<u8> {
        static_elf(&self.a.assemble(CODE_ADDR).unwrap(), bss)
    }
}

fn run(elf: Vec<u8>, config: KernelConfig) -> (RunOutcome, Vec<u8>) {
    let root = MemFs::new();
    root.insert("/bin/init", &elf);
    let (console, out) = CaptureConsole::new(b"");
    let mut k = Kernel::new(config, Box::new(root), Box::new(console));
    k.spawn_init("/bin/init", &["init"], &[]).unwrap();
    let outcome = k.run();
    let stdout = out.borrow().stdout.clone();
    (outcome, stdout)
}

#[test]
fn thread_and_futex() {
    let mut p = Prog::new();
    let mut start = p.label();
    let mut child = p.label();
    let mut wait = p.label();
    let mut done = p.label();
    p.a.jmp(start).unwrap();
    let map =
        p.data(&Map { offset: 0, size: 0x10000, flags: PROT_READ | PROT_WRITE | MAP_PRIVATE, address: 0 }.to_bytes());
    let flag = p.data(&[0; 8]);
    p.here(&mut start);
    // stack = fmap(anonymous, 64 KiB)
    p.a.mov(rdi, u64::MAX).unwrap();
    p.a.lea(rsi, ptr(map)).unwrap();
    p.a.mov(rdx, Map::SIZE as u64).unwrap();
    p.sys(SYS_FMAP);
    p.a.lea(rsi, ptr(rax + 0x10000)).unwrap();
    p.a.mov(rdi, (CLONE_VM | CLONE_THREAD | CLONE_FILES | CLONE_FS | CLONE_SIGHAND) as u64).unwrap();
    p.sys(SYS_CLONE);
    p.a.test(rax, rax).unwrap();
    p.a.jz(child).unwrap();
    // Main thread: wait until the flag is set.
    p.here(&mut wait);
    p.a.mov(eax, dword_ptr(flag)).unwrap();
    p.a.test(eax, eax).unwrap();
    p.a.jnz(done).unwrap();
    p.a.lea(rdi, ptr(flag)).unwrap();
    p.a.mov(rsi, FUTEX_WAIT as u64).unwrap();
    p.a.mov(rdx, 0u64).unwrap();
    p.a.mov(r10, 0u64).unwrap();
    p.a.mov(r8, 0u64).unwrap();
    p.sys(SYS_FUTEX);
    p.a.jmp(wait).unwrap();
    p.here(&mut done);
    p.exit_rax();
    // Thread: its own stack; set the flag, wake, exit (the thread only).
    p.here(&mut child);
    p.a.push(rax).unwrap();
    p.a.pop(rax).unwrap();
    p.a.mov(dword_ptr(flag), 42).unwrap();
    p.a.lea(rdi, ptr(flag)).unwrap();
    p.a.mov(rsi, FUTEX_WAKE as u64).unwrap();
    p.a.mov(rdx, 1u64).unwrap();
    p.sys(SYS_FUTEX);
    p.exit_imm(7);
    let (outcome, _) = run(p.elf(0), KernelConfig { quantum: 50, ..KernelConfig::default() });
    assert_eq!(outcome, RunOutcome::Exited(42));
}

#[test]
fn vfork_shares_memory_and_blocks_the_parent() {
    let mut p = Prog::new();
    let mut start = p.label();
    let mut child = p.label();
    p.a.jmp(start).unwrap();
    let cell = p.data(&[0; 8]);
    p.here(&mut start);
    p.a.mov(rdi, (CLONE_VM | CLONE_VFORK) as u64).unwrap();
    p.sys(SYS_CLONE);
    p.a.test(rax, rax).unwrap();
    p.a.jz(child).unwrap();
    // Parent runs only after the child exited: the cell holds its value.
    p.a.mov(rax, qword_ptr(cell)).unwrap();
    p.exit_rax();
    p.here(&mut child);
    p.a.mov(qword_ptr(cell), 5).unwrap();
    p.exit_imm(0);
    assert_eq!(run(p.elf(0), KernelConfig::default()).0, RunOutcome::Exited(5));
}

#[test]
fn per_call_nonblocking_write_leaves_o_nonblock_alone() {
    const FD_NONBLOCK_CALL: u64 = 1 << 62;
    let mut p = Prog::new();
    let mut start = p.label();
    let mut again = p.label();
    let mut full = p.label();
    let mut bad = p.label();
    p.a.jmp(start).unwrap();
    let rfd = p.data(&[0; 8]);
    let wfd = p.data(&[0; 8]);
    p.here(&mut start);
    p.a.lea(rdi, ptr(rfd)).unwrap();
    p.a.mov(rsi, 0u64).unwrap();
    p.sys(SYS_PIPE2);
    p.a.xor(r12, r12).unwrap();
    p.here(&mut again);
    p.a.mov(rdi, qword_ptr(wfd)).unwrap();
    p.a.mov(rax, FD_NONBLOCK_CALL).unwrap();
    p.a.or(rdi, rax).unwrap();
    p.a.mov(rsi, CODE_ADDR).unwrap();
    p.a.mov(rdx, 5000u64).unwrap();
    p.sys(SYS_WRITE);
    p.a.test(rax, rax).unwrap();
    p.a.js(full).unwrap();
    p.a.add(r12, rax).unwrap();
    p.a.jmp(again).unwrap();
    p.here(&mut full);
    p.a.cmp(rax, -EAGAIN).unwrap();
    p.a.jne(bad).unwrap();
    p.a.cmp(r12, 65536).unwrap();
    p.a.jne(bad).unwrap();
    // F_GETFL: the description is still blocking.
    p.a.mov(rdi, qword_ptr(wfd)).unwrap();
    p.a.mov(rsi, F_GETFL as u64).unwrap();
    p.a.mov(rdx, 0u64).unwrap();
    p.sys(SYS_FCNTL);
    p.a.and(rax, O_NONBLOCK as i32).unwrap();
    p.a.jnz(bad).unwrap();
    p.exit_imm(0);
    p.here(&mut bad);
    p.exit_imm(1);
    assert_eq!(run(p.elf(0x10000), KernelConfig::default()).0, RunOutcome::Exited(0));
}

#[test]
fn process_limit_gives_eagain() {
    let mut p = Prog::new();
    let mut again = p.label();
    let mut child = p.label();
    let mut failed = p.label();
    p.here(&mut again);
    p.a.mov(rdi, 0u64).unwrap();
    p.sys(SYS_CLONE);
    p.a.test(rax, rax).unwrap();
    p.a.jz(child).unwrap();
    p.a.js(failed).unwrap();
    p.a.jmp(again).unwrap();
    p.here(&mut failed);
    p.a.neg(rax).unwrap();
    p.exit_rax();
    p.here(&mut child);
    p.exit_imm(0);
    let mut config = KernelConfig::default();
    config.limits.max_processes = 4;
    assert_eq!(run(p.elf(0), config).0, RunOutcome::Exited(EAGAIN as u8));
}

#[test]
fn memory_limit_gives_enomem() {
    let mut p = Prog::new();
    p.a.mov(rdi, 0u64).unwrap();
    p.sys(SYS_BRK);
    p.a.mov(rdi, 64u64 << 20).unwrap();
    p.a.add(rdi, rax).unwrap();
    p.sys(SYS_BRK);
    p.a.neg(rax).unwrap();
    p.exit_rax();
    let mut config = KernelConfig::default();
    config.limits.max_memory_per_process = 16 << 20;
    assert_eq!(run(p.elf(0), config).0, RunOutcome::Exited(ENOMEM as u8));
}

#[test]
fn dup2_fcntl_chdir_getcwd() {
    let mut p = Prog::new();
    let mut start = p.label();
    p.a.jmp(start).unwrap();
    let dir = p.data(b"tmp/../etc");
    let buf = p.data(&[0; 32]);
    let msg = p.data(b"via fd 9\n");
    p.here(&mut start);
    // dup2(1, 9); write(9, msg)
    p.a.mov(rdi, 1u64).unwrap();
    p.a.mov(rsi, 9u64).unwrap();
    p.a.mov(rdx, 0u64).unwrap();
    p.a.mov(r10, 0u64).unwrap();
    p.sys(SYS_DUP2);
    p.a.mov(rdi, 9u64).unwrap();
    p.a.lea(rsi, ptr(msg)).unwrap();
    p.a.mov(rdx, 9u64).unwrap();
    p.sys(SYS_WRITE);
    // chdir("tmp/../etc"); n = getcwd(buf, 32); write(1, buf, n)
    p.a.lea(rdi, ptr(dir)).unwrap();
    p.a.mov(rsi, 10u64).unwrap();
    p.sys(SYS_CHDIR);
    p.a.lea(rdi, ptr(buf)).unwrap();
    p.a.mov(rsi, 32u64).unwrap();
    p.sys(SYS_GETCWD);
    p.a.mov(rdx, rax).unwrap();
    p.a.mov(rdi, 1u64).unwrap();
    p.a.lea(rsi, ptr(buf)).unwrap();
    p.sys(SYS_WRITE);
    p.exit_imm(0);
    let root = MemFs::new();
    root.insert("/bin/init", &p.elf(0));
    root.insert("/etc/rc", b"");
    root.insert("/tmp/x", b"");
    let (console, out) = CaptureConsole::new(b"");
    let mut k = Kernel::new(KernelConfig::default(), Box::new(root), Box::new(console));
    k.spawn_init("/bin/init", &["init"], &[]).unwrap();
    assert_eq!(k.run(), RunOutcome::Exited(0));
    assert_eq!(String::from_utf8_lossy(&out.borrow().stdout), "via fd 9\n/etc");
}

#[test]
fn signal_frames_round_trip_every_register() {
    let mut cpu = emu::Cpu::new();
    for (i, r) in cpu.gpr.iter_mut().enumerate() {
        *r = 0x1111_1111_1111_1111u64.wrapping_mul(i as u64 + 1);
    }
    for (i, x) in cpu.xmm.iter_mut().enumerate() {
        *x = (i as u128 + 1) << 70 | 0xabcdef;
    }
    cpu.rip = 0x401234;
    cpu.set_rflags(emu::flags::CF | emu::flags::ZF | emu::flags::DF);
    cpu.fs_base = 0x7000_0000;
    cpu.mxcsr = 0x1f80 | 0x3;
    cpu.x87.fcw = 0x027f;
    cpu.x87.regs[3] = 0x4000_8000_0000_0000_0000;
    let frame = guest_kernel::signal::encode_frame(&cpu, SIGUSR1, 0b1010);
    assert_eq!(frame.len(), guest_kernel::signal::FRAME_SIZE);
    let mut back = emu::Cpu::new();
    assert_eq!(guest_kernel::signal::decode_frame(&frame, &mut back), Some(0b1010));
    assert_eq!(back.gpr, cpu.gpr);
    assert_eq!(back.xmm, cpu.xmm);
    assert_eq!((back.rip, back.rflags, back.fs_base, back.mxcsr), (cpu.rip, cpu.rflags, cpu.fs_base, cpu.mxcsr));
    assert_eq!(back.x87, cpu.x87);
    let mut bad = frame.clone();
    bad[0] ^= 1;
    assert_eq!(guest_kernel::signal::decode_frame(&bad, &mut back), None);
}
