//! Runs snippets on the host CPU.
//!
//! A whole batch runs in one forked child. The child maps the code, data and
//! control pages at fixed addresses, writes a small trampoline into the
//! control page, and for every case: restores the data image, writes the
//! snippet (followed by `jmp [rip]` to the epilogue), and calls the prologue.
//! The prologue loads x87/SSE/AVX state with `xrstor`, RFLAGS with `popfq` and
//! all sixteen GPRs (RSP last) from a state block at a fixed address below
//! 2 GiB, then jumps to the snippet; the epilogue stores every GPR with
//! `mov [abs32], reg` (no register is needed to do so), switches to a private
//! stack for `pushfq`, `xsave`s, and returns to Rust. A fault is caught by a
//! signal handler on an alternate stack: it records the trap number, error
//! code, fault address and the registers from the `ucontext`, then resumes
//! at a recovery stub that restores the host's stack and FPU state.
//! Results go to a `MAP_SHARED` array the parent reads after `waitpid`. If
//! the child dies anyway, the parent marks the case and restarts after it.

use std::ptr;

use super::layout::*;
use super::{Case, FX_LEN};

const CTRL: u64 = 0x5000_0000;
const CTRL_LEN: u64 = 0x10000;
const PROLOGUE: u64 = CTRL;
const EPILOGUE: u64 = CTRL + 0x400;
const RECOVER: u64 = CTRL + 0x800;
const IN: u64 = CTRL + 0x1000;
const IN_FX: u64 = CTRL + 0x1200;
const OUT: u64 = CTRL + 0x2000;
const OUT_FX: u64 = CTRL + 0x2200;
const HOST_RSP: u64 = CTRL + 0x3000;
const HOST_FX: u64 = CTRL + 0x3200;
const STACK_TOP: u64 = CTRL + CTRL_LEN;

/// How a native run ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum NativeEnd {
    /// The child died on this case (or never got to it).
    Crashed,
    /// Reached the end of the snippet.
    Done,
    /// A signal: number, trap number, page-fault error code, fault address.
    Signal { signo: i32, trapno: u64, err: u64, addr: u64 },
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct NativeOut {
    pub status: u64,
    pub signo: u64,
    pub trapno: u64,
    pub err: u64,
    pub addr: u64,
    pub rip: u64,
    pub gpr: [u64; 16],
    pub rflags: u64,
    pub fx: [u8; FX_LEN],
    pub data: [u8; OUT_DATA_LEN],
}

impl NativeOut {
    pub fn end(&self) -> NativeEnd {
        match self.status {
            1 => NativeEnd::Done,
            2 => NativeEnd::Signal { signo: self.signo as i32, trapno: self.trapno, err: self.err, addr: self.addr },
            _ => NativeEnd::Crashed,
        }
    }
}

// ---- trampoline code ---------------------------------------------------------

fn mov_abs(code: &mut Vec<u8>, r: u8, addr: u64, store: bool) {
    code.push(0x48 | if r >= 8 { 4 } else { 0 });
    code.push(if store { 0x89 } else { 0x8b });
    code.push(0x04 | ((r & 7) << 3));
    code.push(0x25);
    code.extend_from_slice(&(addr as u32).to_le_bytes());
}

fn modrm_abs(code: &mut Vec<u8>, opcode: &[u8], reg: u8, addr: u64) {
    code.extend_from_slice(opcode);
    code.push(0x04 | (reg << 3));
    code.push(0x25);
    code.extend_from_slice(&(addr as u32).to_le_bytes());
}

const POP_CALLEE_SAVED_RET: [u8; 11] = [0x41, 0x5f, 0x41, 0x5e, 0x41, 0x5d, 0x41, 0x5c, 0x5d, 0x5b, 0xc3];

fn prologue() -> Vec<u8> {
    let mut c = vec![0x53, 0x55, 0x41, 0x54, 0x41, 0x55, 0x41, 0x56, 0x41, 0x57];
    mov_abs(&mut c, 4, HOST_RSP, true);
    modrm_abs(&mut c, &[0x0f, 0xae], 0, HOST_FX); // fxsave
    c.extend_from_slice(&[0xb8, 7, 0, 0, 0, 0x31, 0xd2]); // mov eax, 7; xor edx, edx
    modrm_abs(&mut c, &[0x0f, 0xae], 5, IN_FX); // xrstor: x87, SSE, AVX
    c.push(0xbc); // mov esp, imm32
    c.extend_from_slice(&(STACK_TOP as u32).to_le_bytes());
    modrm_abs(&mut c, &[0xff], 6, IN + 0x80); // push qword [flags]
    c.push(0x9d); // popfq
    for r in 0..16u8 {
        if r != 4 {
            mov_abs(&mut c, r, IN + 8 * r as u64, false);
        }
    }
    mov_abs(&mut c, 4, IN + 0x20, false);
    modrm_abs(&mut c, &[0xff], 4, IN + 0x88); // jmp [target]
    c
}

fn epilogue() -> Vec<u8> {
    let mut c = Vec::new();
    for r in 0..16u8 {
        mov_abs(&mut c, r, OUT + 8 * r as u64, true);
    }
    c.push(0xbc);
    c.extend_from_slice(&(STACK_TOP as u32).to_le_bytes());
    c.extend_from_slice(&[0x9c, 0x58]); // pushfq; pop rax
    mov_abs(&mut c, 0, OUT + 0x80, true);
    c.extend_from_slice(&[0xb8, 7, 0, 0, 0, 0x31, 0xd2]); // mov eax, 7; xor edx, edx
    modrm_abs(&mut c, &[0x0f, 0xae], 4, OUT_FX); // xsave
    modrm_abs(&mut c, &[0x0f, 0xae], 1, HOST_FX);
    c.push(0xfc); // cld
    mov_abs(&mut c, 4, HOST_RSP, false);
    c.extend_from_slice(&POP_CALLEE_SAVED_RET);
    c
}

fn recover() -> Vec<u8> {
    let mut c = Vec::new();
    mov_abs(&mut c, 4, HOST_RSP, false);
    modrm_abs(&mut c, &[0x0f, 0xae], 1, HOST_FX);
    c.push(0xfc);
    c.extend_from_slice(&POP_CALLEE_SAVED_RET);
    c
}

/// An XSAVE image whose XSTATE_BV says AVX is in its initial state may hold anything in
/// the AVX area: the state is all zeros.
fn init_avx_if_unused(fx: &mut [u8; FX_LEN]) {
    if fx[512] & 4 == 0 {
        fx[576..].fill(0);
    }
}

/// The bytes that follow a snippet natively: `jmp [rip+0]; dq EPILOGUE`.
fn tail() -> [u8; 14] {
    let mut t = [0u8; 14];
    t[..6].copy_from_slice(&[0xff, 0x25, 0, 0, 0, 0]);
    t[6..].copy_from_slice(&EPILOGUE.to_le_bytes());
    t
}

// ---- the child ---------------------------------------------------------------

static mut CUR_OUT: *mut NativeOut = ptr::null_mut();

/// ucontext gregs index of each GPR in emu's order (RAX, RCX, ... R15).
const GREG_OF: [i32; 16] = [
    libc::REG_RAX,
    libc::REG_RCX,
    libc::REG_RDX,
    libc::REG_RBX,
    libc::REG_RSP,
    libc::REG_RBP,
    libc::REG_RSI,
    libc::REG_RDI,
    libc::REG_R8,
    libc::REG_R9,
    libc::REG_R10,
    libc::REG_R11,
    libc::REG_R12,
    libc::REG_R13,
    libc::REG_R14,
    libc::REG_R15,
];

extern "C" fn on_signal(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: called by the kernel with valid siginfo/ucontext pointers;
    // CUR_OUT points into the shared result array while a snippet runs.
    unsafe {
        let out = CUR_OUT;
        if out.is_null() {
            libc::_exit(97);
        }
        let uc = ctx as *mut libc::ucontext_t;
        let g = &mut (*uc).uc_mcontext.gregs;
        let o = &mut *out;
        o.status = 2;
        o.signo = sig as u64;
        o.trapno = g[libc::REG_TRAPNO as usize] as u64;
        o.err = g[libc::REG_ERR as usize] as u64;
        o.addr = if sig == libc::SIGSEGV || sig == libc::SIGBUS { (*info).si_addr() as u64 } else { 0 };
        o.rip = g[libc::REG_RIP as usize] as u64;
        for (n, &r) in GREG_OF.iter().enumerate() {
            o.gpr[n] = g[r as usize] as u64;
        }
        o.rflags = g[libc::REG_EFL as usize] as u64;
        let fp = (*uc).uc_mcontext.fpregs as *const u8;
        if !fp.is_null() {
            // The kernel's frame holds the XSAVE layout (legacy region, header, AVX).
            ptr::copy_nonoverlapping(fp, o.fx.as_mut_ptr(), FX_LEN);
            init_avx_if_unused(&mut o.fx);
        }
        g[libc::REG_RIP as usize] = RECOVER as i64;
    }
}

/// # Safety
/// Only in the forked child: maps fresh pages at `addr` (never over an existing mapping).
unsafe fn map_fixed(addr: u64, len: u64, prot: i32) {
    // SAFETY: MAP_FIXED_NOREPLACE fails rather than replace a mapping; exiting
    // the child on failure is what the parent expects (status 90).
    let p = unsafe {
        libc::mmap(
            addr as *mut libc::c_void,
            len as usize,
            prot,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
            -1,
            0,
        )
    };
    if p as u64 != addr {
        // SAFETY: leaving the forked child without running the parent's destructors.
        unsafe { libc::_exit(90) };
    }
}

/// # Safety
/// Only in a freshly forked child; `outs` points to one result slot per case.
unsafe fn child(cases: &[Case], image: &[u8], outs: *mut NativeOut, start: usize) -> ! {
    // SAFETY: the whole body runs in the forked child, which owns its address
    // space: it maps the fixed test pages itself (MAP_FIXED_NOREPLACE, so nothing
    // of the parent's is replaced), writes only into them and into the caller's
    // result slots, and runs each snippet between the prologue and the epilogue
    // or the signal handler, which restore the child's state.
    unsafe {
        libc::alarm(20);
        let rwx = libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC;
        let rw = libc::PROT_READ | libc::PROT_WRITE;
        // The code page is mapped twice from one memfd: read+execute at CODE (so
        // a snippet writing to its own code faults, as under emu) and writable
        // elsewhere for us, without an mprotect per case.
        let fd = libc::memfd_create(c"difftest-code".as_ptr(), 0);
        if fd < 0 || libc::ftruncate(fd, 0x1000) != 0 {
            libc::_exit(91);
        }
        let p = libc::mmap(
            CODE as *mut libc::c_void,
            0x1000,
            libc::PROT_READ | libc::PROT_EXEC,
            libc::MAP_SHARED | libc::MAP_FIXED_NOREPLACE,
            fd,
            0,
        );
        let alias = libc::mmap(ptr::null_mut(), 0x1000, rw, libc::MAP_SHARED, fd, 0);
        if p as u64 != CODE || alias == libc::MAP_FAILED {
            libc::_exit(90);
        }
        map_fixed(DATA, DATA_LEN, rw);
        map_fixed(RO, 0x1000, rw);
        ptr::copy_nonoverlapping(image[0x2000..0x3000].as_ptr(), RO as *mut u8, 0x1000);
        libc::mprotect(RO as *mut libc::c_void, 0x1000, libc::PROT_READ);
        map_fixed(LOW, 0x1000, rw);
        map_fixed(CTRL, CTRL_LEN, rwx);
        for (addr, code) in [(PROLOGUE, prologue()), (EPILOGUE, epilogue()), (RECOVER, recover())] {
            ptr::copy_nonoverlapping(code.as_ptr(), addr as *mut u8, code.len());
        }
        // An alternate signal stack: the snippet's RSP points into the data pages.
        let alt = libc::mmap(ptr::null_mut(), 0x40000, rw, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0);
        let ss = libc::stack_t { ss_sp: alt, ss_flags: 0, ss_size: 0x40000 };
        libc::sigaltstack(&ss, ptr::null_mut());
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_signal as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_NODEFER;
        for sig in [libc::SIGSEGV, libc::SIGBUS, libc::SIGFPE, libc::SIGILL, libc::SIGTRAP] {
            libc::sigaction(sig, &sa, ptr::null_mut());
        }
        let entry: extern "C" fn() = std::mem::transmute(PROLOGUE as usize);
        let tail = tail();
        for (i, case) in cases.iter().enumerate().skip(start) {
            let out = outs.add(i);
            // Code page: fill with ud2, snippet, jump to the epilogue.
            let page = std::slice::from_raw_parts_mut(alias as *mut u8, 0x1000);
            for k in (0..0x1000).step_by(2) {
                page[k] = 0x0f;
                page[k + 1] = 0x0b;
            }
            let n = case.code.len();
            page[..n].copy_from_slice(&case.code);
            page[n..n + tail.len()].copy_from_slice(&tail);
            // Data image and per-case patches.
            ptr::copy_nonoverlapping(image.as_ptr(), DATA as *mut u8, DATA_LEN as usize);
            ptr::copy_nonoverlapping(image[0x3000..].as_ptr(), LOW as *mut u8, 0x1000);
            for (addr, bytes) in &case.patches {
                if *addr >= RO && *addr < RO + 0x1000 {
                    continue;
                }
                ptr::copy_nonoverlapping(bytes.as_ptr(), *addr as *mut u8, bytes.len());
            }
            // Input state.
            let inp = &case.input;
            for r in 0..16 {
                ptr::write_volatile((IN + 8 * r as u64) as *mut u64, inp.gpr[r]);
            }
            ptr::write_volatile((IN + 0x80) as *mut u64, inp.rflags);
            ptr::write_volatile((IN + 0x88) as *mut u64, CODE);
            ptr::copy_nonoverlapping(inp.fx.as_ptr(), IN_FX as *mut u8, FX_LEN);
            (*out).status = 0;
            CUR_OUT = out;
            entry();
            CUR_OUT = ptr::null_mut();
            let o = &mut *out;
            if o.status != 2 {
                o.status = 1;
                for r in 0..16 {
                    o.gpr[r] = ptr::read_volatile((OUT + 8 * r as u64) as *const u64);
                }
                o.rflags = ptr::read_volatile((OUT + 0x80) as *const u64);
                o.rip = CODE + n as u64;
                ptr::copy_nonoverlapping(OUT_FX as *const u8, o.fx.as_mut_ptr(), FX_LEN);
                init_avx_if_unused(&mut o.fx);
            }
            ptr::copy_nonoverlapping(DATA as *const u8, o.data.as_mut_ptr(), DATA_LEN as usize);
            ptr::copy_nonoverlapping(LOW as *const u8, o.data[0x2000..].as_mut_ptr(), 0x1000);
        }
        libc::_exit(0)
    }
}

/// Runs every case natively; one result per case.
pub fn run(cases: &[Case], image: &[u8]) -> Vec<NativeOut> {
    assert_eq!(image.len(), IMAGE_LEN);
    let n = cases.len().max(1);
    let bytes = n * std::mem::size_of::<NativeOut>();
    // SAFETY: a fresh shared anonymous mapping, zero-filled (status 0 =
    // crashed); the child writes it, the parent reads it after waitpid.
    let outs = unsafe {
        let p = libc::mmap(
            ptr::null_mut(),
            bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        assert_ne!(p, libc::MAP_FAILED, "mmap of the result array");
        p as *mut NativeOut
    };
    let mut start = 0;
    while start < cases.len() {
        // SAFETY: the child only makes system calls and copies memory (no
        // allocation or locks, so forking a multi-threaded process is fine).
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            // SAFETY: in the child just forked; `outs` has a slot per case.
            unsafe { child(cases, image, outs, start) };
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
            break;
        }
        assert!(
            !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 90),
            "native runner: fixed mappings are not available on this host"
        );
        // Find the case it died on and carry on after it.
        // SAFETY: `i` < cases.len() slots of the mapping; the child has exited.
        let dead = (start..cases.len()).find(|&i| unsafe { (*outs.add(i)).status } == 0).unwrap_or(cases.len());
        start = dead + 1;
    }
    // SAFETY: as above: in-bounds slots, written by children that have exited.
    let res = (0..cases.len()).map(|i| unsafe { *outs.add(i) }).collect();
    // SAFETY: unmapping the array mapped above; no references remain.
    unsafe { libc::munmap(outs as *mut libc::c_void, bytes) };
    res
}
