//! The two raw system-call gates.
//!
//! Design: `syscall0`..`syscall6` use the `syscall` instruction (number in `rax`, arguments
//! in `rdi, rsi, rdx, r10, r8, r9`, result in `rax`; the instruction clobbers `rcx`/`r11`).
//! `int80_0`..`int80_5` use `int 0x80` (number in `rax`, arguments in `rbx, rcx, rdx, rsi,
//! rdi`, result in `rax`). LLVM reserves `rbx`, so its argument is swapped in and out around
//! the instruction through a scratch register. Both gates treat every argument register as
//! clobbered, so they stay correct even with a kernel that does not preserve them. The
//! [`Gate`] enum lets code (e.g. `selftest`) pick a gate at run time.
//!
//! All functions are `unsafe`: the kernel may read or write memory through pointer arguments.

use core::arch::asm;

/// Which instruction enters the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gate {
    /// The `syscall` instruction (six arguments).
    Syscall,
    /// `int 0x80` (five arguments).
    Int80,
}

impl Gate {
    /// Performs system call `n` through this gate. `int 0x80` has only five argument
    /// registers: `args[5]` is ignored there.
    ///
    /// # Safety
    /// As for the raw gate functions: pointer arguments must be valid for the call.
    pub unsafe fn call(self, n: usize, args: [usize; 6]) -> usize {
        let [a, b, c, d, e, f] = args;
        // SAFETY: forwarded from this function's contract.
        unsafe {
            match self {
                Gate::Syscall => syscall6(n, a, b, c, d, e, f),
                Gate::Int80 => int80_5(n, a, b, c, d, e),
            }
        }
    }
}

/// `syscall` with no arguments.
///
/// # Safety
/// The call must not invalidate memory Rust relies on.
#[inline(always)]
pub unsafe fn syscall0(n: usize) -> usize {
    // SAFETY: the caller upholds the call's memory contract; registers are declared.
    unsafe { syscall6(n, 0, 0, 0, 0, 0, 0) }
}

/// `syscall` with one argument.
///
/// # Safety
/// Pointer arguments must be valid for what the call does with them.
#[inline(always)]
pub unsafe fn syscall1(n: usize, a: usize) -> usize {
    // SAFETY: forwarded.
    unsafe { syscall6(n, a, 0, 0, 0, 0, 0) }
}

/// `syscall` with two arguments.
///
/// # Safety
/// Pointer arguments must be valid for what the call does with them.
#[inline(always)]
pub unsafe fn syscall2(n: usize, a: usize, b: usize) -> usize {
    // SAFETY: forwarded.
    unsafe { syscall6(n, a, b, 0, 0, 0, 0) }
}

/// `syscall` with three arguments.
///
/// # Safety
/// Pointer arguments must be valid for what the call does with them.
#[inline(always)]
pub unsafe fn syscall3(n: usize, a: usize, b: usize, c: usize) -> usize {
    // SAFETY: forwarded.
    unsafe { syscall6(n, a, b, c, 0, 0, 0) }
}

/// `syscall` with four arguments.
///
/// # Safety
/// Pointer arguments must be valid for what the call does with them.
#[inline(always)]
pub unsafe fn syscall4(n: usize, a: usize, b: usize, c: usize, d: usize) -> usize {
    // SAFETY: forwarded.
    unsafe { syscall6(n, a, b, c, d, 0, 0) }
}

/// `syscall` with five arguments.
///
/// # Safety
/// Pointer arguments must be valid for what the call does with them.
#[inline(always)]
pub unsafe fn syscall5(n: usize, a: usize, b: usize, c: usize, d: usize, e: usize) -> usize {
    // SAFETY: forwarded.
    unsafe { syscall6(n, a, b, c, d, e, 0) }
}

/// `syscall` with six arguments.
///
/// # Safety
/// Pointer arguments must be valid for what the call does with them.
#[inline(always)]
pub unsafe fn syscall6(n: usize, a: usize, b: usize, c: usize, d: usize, e: usize, f: usize) -> usize {
    let ret;
    // SAFETY: the `syscall` instruction only touches the declared registers; memory effects
    // are the caller's responsibility (no `nomem`/`readonly`, so the compiler assumes any).
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") n => ret,
            inlateout("rdi") a => _,
            inlateout("rsi") b => _,
            inlateout("rdx") c => _,
            inlateout("r10") d => _,
            inlateout("r8") e => _,
            inlateout("r9") f => _,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// `int 0x80` with no arguments.
///
/// # Safety
/// The call must not invalidate memory Rust relies on.
#[inline(always)]
pub unsafe fn int80_0(n: usize) -> usize {
    // SAFETY: forwarded.
    unsafe { int80_5(n, 0, 0, 0, 0, 0) }
}

/// `int 0x80` with one argument (in `rbx`).
///
/// # Safety
/// Pointer arguments must be valid for what the call does with them.
#[inline(always)]
pub unsafe fn int80_1(n: usize, a: usize) -> usize {
    // SAFETY: forwarded.
    unsafe { int80_5(n, a, 0, 0, 0, 0) }
}

/// `int 0x80` with three arguments (`rbx, rcx, rdx`).
///
/// # Safety
/// Pointer arguments must be valid for what the call does with them.
#[inline(always)]
pub unsafe fn int80_3(n: usize, a: usize, b: usize, c: usize) -> usize {
    // SAFETY: forwarded.
    unsafe { int80_5(n, a, b, c, 0, 0) }
}

/// `int 0x80` with five arguments (`rbx, rcx, rdx, rsi, rdi`).
///
/// # Safety
/// Pointer arguments must be valid for what the call does with them.
#[inline(always)]
pub unsafe fn int80_5(n: usize, a: usize, b: usize, c: usize, d: usize, e: usize) -> usize {
    let ret;
    // SAFETY: `rbx` is restored before the block ends (swapped back from the scratch
    // register); all other touched registers are declared. No `nostack`: a gate emulated as
    // a same-privilege interrupt could use the stack below `rsp`, so keep the red zone free.
    unsafe {
        asm!(
            "xchg {a}, rbx",
            "int 0x80",
            "xchg {a}, rbx",
            a = inout(reg) a => _,
            inlateout("rax") n => ret,
            inlateout("rcx") b => _,
            inlateout("rdx") c => _,
            inlateout("rsi") d => _,
            inlateout("rdi") e => _,
            lateout("r11") _,
        );
    }
    ret
}
