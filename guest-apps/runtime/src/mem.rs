//! The C memory functions core relies on (`memcpy`, `memmove`, `memset`, `memcmp`, `bcmp`,
//! and `strlen`, which LLVM substitutes for NUL-scanning loops), and the
//! `rust_eh_personality` / `_Unwind_Resume` symbols that the precompiled (unwinding) `core`
//! and `alloc` reference even though `panic = "abort"` never unwinds.
//!
//! Design: string instructions in inline assembly (`rep movsb`, `rep stosb`, `repe cmpsb`,
//! `repne scasb`), so LLVM cannot recognise a byte loop as a call to the very function being
//! defined. The direction flag is clear on entry per the SysV ABI; `memmove` sets it only for
//! an overlapping forward copy and clears it again.

use core::arch::asm;

/// Copies `n` bytes from `src` to `dest` (non-overlapping).
///
/// # Safety
/// `src` must be readable and `dest` writable for `n` bytes, and the ranges must not overlap.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcpy(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller guarantees both ranges are valid for `n` bytes.
    unsafe {
        asm!(
            "rep movsb",
            inout("rcx") n => _,
            inout("rdi") dest => _,
            inout("rsi") src => _,
            options(nostack, preserves_flags),
        );
    }
    dest
}

/// Copies `n` bytes from `src` to `dest`; the ranges may overlap.
///
/// # Safety
/// `src` must be readable and `dest` writable for `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memmove(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if n == 0 || core::ptr::eq(dest, src) {
        return dest;
    }
    if (dest as usize) < (src as usize) || (dest as usize) >= (src as usize).wrapping_add(n) {
        // SAFETY: a forward copy is correct when dest is below src or past its end.
        return unsafe { memcpy(dest, src, n) };
    }
    // SAFETY: dest overlaps the tail of src, so copy backwards from the last byte; the caller
    // guarantees both ranges are valid. The direction flag is restored before returning.
    unsafe {
        asm!(
            "std",
            "rep movsb",
            "cld",
            inout("rcx") n => _,
            inout("rdi") dest.add(n - 1) => _,
            inout("rsi") src.add(n - 1) => _,
            options(nostack),
        );
    }
    dest
}

/// Fills `n` bytes at `dest` with the low byte of `c`.
///
/// # Safety
/// `dest` must be writable for `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memset(dest: *mut u8, c: i32, n: usize) -> *mut u8 {
    // SAFETY: the caller guarantees `dest` is valid for `n` bytes.
    unsafe {
        asm!(
            "rep stosb",
            inout("rcx") n => _,
            inout("rdi") dest => _,
            in("al") c as u8,
            options(nostack, preserves_flags),
        );
    }
    dest
}

/// Compares `n` bytes: negative, zero or positive as `a` sorts before, equal to or after `b`.
///
/// # Safety
/// Both ranges must be readable for `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    if n == 0 {
        return 0;
    }
    let (end_a, end_b): (*const u8, *const u8);
    // SAFETY: the caller guarantees both ranges are readable for `n` bytes; `repe cmpsb`
    // stops after the first differing byte or after `n` bytes.
    unsafe {
        asm!(
            "repe cmpsb",
            inout("rcx") n => _,
            inout("rsi") a => end_a,
            inout("rdi") b => end_b,
            options(nostack, readonly),
        );
    }
    // Both pointers stop one past the last compared byte: equal there means all were equal.
    // SAFETY: at least one byte was compared, so `end - 1` lies inside each range.
    let (x, y) = unsafe { (end_a.sub(1).read(), end_b.sub(1).read()) };
    i32::from(x) - i32::from(y)
}

/// Compares `n` bytes for equality (0 if equal).
///
/// # Safety
/// Both ranges must be readable for `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: same contract as `memcmp`.
    unsafe { memcmp(a, b, n) }
}

/// The length of the NUL-terminated string at `s`.
///
/// # Safety
/// `s` must point at a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn strlen(s: *const u8) -> usize {
    let end: *const u8;
    // SAFETY: the string is NUL-terminated, so `repne scasb` (unbounded count) stops at the
    // NUL, leaving `rdi` one past it.
    unsafe {
        asm!(
            "repne scasb",
            inout("rcx") usize::MAX => _,
            inout("rdi") s => end,
            in("al") 0u8,
            options(nostack, readonly),
        );
    }
    end as usize - s as usize - 1
}

/// Never called (`panic = "abort"`), but referenced by precompiled core.
#[unsafe(no_mangle)]
pub extern "C" fn rust_eh_personality() {}

/// Never called: nothing unwinds with `panic = "abort"`. Referenced by the landing pads of
/// the precompiled `alloc`; traps if it is ever reached.
#[unsafe(no_mangle)]
pub extern "C" fn _Unwind_Resume() -> ! {
    // SAFETY: `ud2` only raises #UD.
    unsafe { asm!("ud2", options(nomem, nostack, noreturn)) }
}
