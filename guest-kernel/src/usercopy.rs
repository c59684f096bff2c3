//! The user-memory boundary: guest pointers become kernel copies (or checked
//! writes) here, and nowhere else.
//!
//! Every function validates the whole range against the guest's own
//! permissions (`Memory::slice`/`slice_mut`: a buffer the guest could not read
//! cannot be passed in, one it could not write cannot be filled) and turns
//! any failure into EFAULT. Lengths are guest values: they are checked
//! against caps before anything is allocated.

use emu::{GuestAddress, Memory};
use warden_abi::{Errno, EFAULT, ENAMETOOLONG};

/// Longest path accepted.
pub const MAX_PATH: usize = 4096;

/// Copies `len` bytes at `addr` out of guest memory.
pub fn copy_in(mem: &Memory, addr: usize, len: usize) -> Result<Vec<u8>, Errno> {
    Ok(mem.slice(GuestAddress(addr as u64), len as u64).map_err(|_| Errno(EFAULT))?.to_vec())
}

/// Copies a path argument (ENAMETOOLONG beyond [`MAX_PATH`]).
pub fn copy_path(mem: &Memory, addr: usize, len: usize) -> Result<Vec<u8>, Errno> {
    if len > MAX_PATH {
        return Err(Errno(ENAMETOOLONG));
    }
    copy_in(mem, addr, len)
}

/// Copies a fixed-size structure in.
pub fn copy_array<const N: usize>(mem: &Memory, addr: usize) -> Result<[u8; N], Errno> {
    let mut out = [0u8; N];
    out.copy_from_slice(mem.slice(GuestAddress(addr as u64), N as u64).map_err(|_| Errno(EFAULT))?);
    Ok(out)
}

pub fn read_u32(mem: &Memory, addr: usize) -> Result<u32, Errno> {
    Ok(u32::from_le_bytes(copy_array::<4>(mem, addr)?))
}

/// Writes `data` to guest memory at `addr`.
pub fn copy_out(mem: &mut Memory, addr: usize, data: &[u8]) -> Result<(), Errno> {
    mem.slice_mut(GuestAddress(addr as u64), data.len() as u64).map_err(|_| Errno(EFAULT))?.copy_from_slice(data);
    Ok(())
}

/// Checks that the guest could write `[addr, addr + len)`.
pub fn check_writable(mem: &Memory, addr: usize, len: usize) -> Result<(), Errno> {
    let end = addr.checked_add(len).ok_or(Errno(EFAULT))?;
    let mut a = addr;
    while a < end {
        match mem.perm_at(GuestAddress(a as u64)) {
            Some(p) if p.contains(emu::Perm::WRITE) => {}
            _ => return Err(Errno(EFAULT)),
        }
        a = (a | (emu::PAGE_SIZE as usize - 1)).checked_add(1).ok_or(Errno(EFAULT))?;
    }
    Ok(())
}
