//! The XSAVE family for XCR0 = x87 | SSE | AVX (the state `cpuid` leaf 0xd describes):
//! `xsave`, `xsaveopt`, `xsavec`, `xrstor` (and their REX.W forms) and `xgetbv`.
//!
//! Layout (standard and compacted alike for these three components): the FXSAVE image in
//! bytes 0..512, the XSAVE header at 512 (XSTATE_BV, XCOMP_BV), the AVX upper halves at
//! 576..832. XINUSE, the "component is not in its initial state" bits that decide
//! XSTATE_BV, is x87 and SSE always in use and AVX in use when any upper half is nonzero
//! (the manuals allow a bit to be 1 in the initial state, never 0 outside it). `xsaveopt`
//! saves as `xsave` does (its modified-state optimisation is invisible to a program that
//! does not look at memory it did not expect to change). Glibc's dynamic loader saves
//! and restores vector state around lazy binding with `xsavec`/`xrstor`.

use iced_x86::Mnemonic;

use super::super::operand::ea;
use super::super::x87::{fxsave_image, load_fx_x87, load_fx_xmm};
use super::super::{Op, Trap};
use crate::cpu::{reg, Cpu, MXCSR_MASK};
use crate::cpuid::{XCR0, XSAVE_SIZE, XSAVE_YMM_OFFSET};
use crate::memory::Memory;
use crate::x87::X87State;

type R = Result<(), Trap>;

const X87: u64 = 1;
const SSE: u64 = 2;
const AVX: u64 = 4;
const HEADER: usize = 512;
const YMM: usize = XSAVE_YMM_OFFSET as usize;
const SIZE: usize = XSAVE_SIZE as usize;

/// The requested-feature bitmap: EDX:EAX masked by XCR0.
fn rfbm(cpu: &Cpu) -> u64 {
    ((cpu.gpr[reg::RDX] << 32) | (cpu.gpr[reg::RAX] & 0xffff_ffff)) & XCR0
}

fn xinuse(cpu: &Cpu) -> u64 {
    X87 | SSE | if cpu.ymm_hi.iter().any(|&h| h != 0) { AVX } else { 0 }
}

/// The 64-byte aligned save area, or #GP.
fn area(cpu: &Cpu, op: &Op) -> Result<u64, Trap> {
    let a = ea(cpu, &op.insn);
    if !a.is_multiple_of(64) {
        return Err(Trap::GeneralProtection);
    }
    Ok(a)
}

fn wide(m: Mnemonic) -> bool {
    matches!(m, Mnemonic::Xsave64 | Mnemonic::Xsavec64 | Mnemonic::Xsaveopt64 | Mnemonic::Xrstor64)
}

pub(crate) fn xsave(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let m = op.insn.mnemonic();
    let a = area(cpu, op)?;
    let rfbm = rfbm(cpu);
    let compact = matches!(m, Mnemonic::Xsavec | Mnemonic::Xsavec64);
    let len = if rfbm & AVX != 0 { SIZE } else { YMM };
    mem.probe_write(a, len as u64)?;
    let mut b = vec![0u8; len];
    mem.read_into(a, &mut b)?;
    let fx = fxsave_image(cpu, wide(m));
    if rfbm & X87 != 0 {
        b[..24].copy_from_slice(&fx[..24]);
        b[32..160].copy_from_slice(&fx[32..160]);
    }
    // MXCSR and MXCSR_MASK belong to the SSE component; the standard form (`xsave`,
    // `xsaveopt`) also saves them for AVX alone, the compacted form does not.
    if rfbm & SSE != 0 || (rfbm & AVX != 0 && !compact) {
        b[24..32].copy_from_slice(&fx[24..32]);
    }
    if rfbm & SSE != 0 {
        b[160..416].copy_from_slice(&fx[160..416]);
    }
    if rfbm & AVX != 0 {
        for (k, h) in cpu.ymm_hi.iter().enumerate() {
            b[YMM + 16 * k..YMM + 16 * k + 16].copy_from_slice(&h.to_le_bytes());
        }
    }
    let inuse = rfbm & xinuse(cpu);
    if compact {
        // XSTATE_BV and XCOMP_BV (bit 63: compacted); the rest of the header is
        // not written.
        b[HEADER..HEADER + 8].copy_from_slice(&inuse.to_le_bytes());
        b[HEADER + 8..HEADER + 16].copy_from_slice(&(1u64 << 63 | rfbm).to_le_bytes());
    } else {
        // Only XSTATE_BV, and in it only the requested bits.
        let old = u64::from_le_bytes(b[HEADER..HEADER + 8].try_into().expect("8 bytes"));
        b[HEADER..HEADER + 8].copy_from_slice(&((old & !rfbm) | inuse).to_le_bytes());
    }
    mem.write_from(a, &b)
}

pub(crate) fn xrstor(cpu: &mut Cpu, mem: &mut Memory, op: &Op) -> R {
    let a = area(cpu, op)?;
    let rfbm = rfbm(cpu);
    let len = if rfbm & AVX != 0 { SIZE } else { YMM };
    let mut b = vec![0u8; len];
    mem.read_into(a, &mut b)?;
    let q = |k: usize| u64::from_le_bytes(b[k..k + 8].try_into().expect("8 bytes"));
    let (xstate_bv, xcomp_bv) = (q(HEADER), q(HEADER + 8));
    if xcomp_bv >> 63 != 0 {
        // Compacted form.
        if xcomp_bv & !(XCR0 | 1 << 63) != 0
            || xstate_bv & !xcomp_bv != 0
            || b[HEADER + 16..YMM].iter().any(|&x| x != 0)
        {
            return Err(Trap::GeneralProtection);
        }
    } else if xstate_bv & !XCR0 != 0 || xcomp_bv != 0 || q(HEADER + 16) != 0 {
        return Err(Trap::GeneralProtection);
    }
    let mxcsr = u32::from_le_bytes(b[24..28].try_into().expect("4 bytes"));
    if rfbm & (SSE | AVX) != 0 && mxcsr & !MXCSR_MASK != 0 {
        return Err(Trap::GeneralProtection);
    }
    // Checks done: from here nothing faults.
    let load = rfbm & xstate_bv;
    if rfbm & X87 != 0 {
        if load & X87 != 0 {
            load_fx_x87(cpu, &b, wide(op.insn.mnemonic()));
        } else {
            cpu.x87 = X87State::default();
        }
    }
    if rfbm & (SSE | AVX) != 0 {
        cpu.mxcsr = mxcsr;
    }
    if rfbm & SSE != 0 {
        if load & SSE != 0 {
            load_fx_xmm(cpu, &b);
        } else {
            cpu.xmm = [0; 16];
        }
    }
    if rfbm & AVX != 0 {
        for k in 0..16 {
            cpu.ymm_hi[k] = if load & AVX != 0 {
                u128::from_le_bytes(b[YMM + 16 * k..YMM + 16 * k + 16].try_into().expect("16 bytes"))
            } else {
                0
            };
        }
    }
    Ok(())
}

/// `xgetbv`: ECX = 0 reads XCR0, ECX = 1 reads XINUSE & XCR0; others #GP.
pub(crate) fn xgetbv(cpu: &mut Cpu, _: &mut Memory, _: &Op) -> R {
    let v = match cpu.gpr[reg::RCX] as u32 {
        0 => XCR0,
        1 => xinuse(cpu) & XCR0,
        _ => return Err(Trap::GeneralProtection),
    };
    cpu.gpr[reg::RAX] = v & 0xffff_ffff;
    cpu.gpr[reg::RDX] = v >> 32;
    Ok(())
}

/// The handler for an XSAVE-family instruction.
pub(crate) fn select(i: &iced_x86::Instruction) -> Option<super::super::Handler> {
    use Mnemonic as M;
    Some(match i.mnemonic() {
        M::Xsave | M::Xsave64 | M::Xsavec | M::Xsavec64 | M::Xsaveopt | M::Xsaveopt64 => xsave,
        M::Xrstor | M::Xrstor64 => xrstor,
        M::Xgetbv => xgetbv,
        _ => return None,
    })
}
