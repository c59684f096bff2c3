//! Loading programs: ELF validation (goblin), segment mapping and the SysV
//! x86-64 initial stack.
//!
//! Only what a static program needs is parsed: the ELF header and the program
//! headers (never section headers or symbols), after our own bounds checks, so
//! a malformed file gives ENOEXEC and never a panic. Accepted: 64-bit
//! little-endian x86-64, `ET_EXEC`, or `ET_DYN` (PIE, loaded at
//! [`crate::mm::PIE_BASE`]); a `PT_INTERP` path is reported in
//! [`ElfImage::interp`] (only the Linux personality loads interpreters, see
//! `linux/exec.rs`; exec refuses it for Redox programs); `PT_LOAD` segments inside the file
//! and inside the lower half of the address space, not overlapping, with the
//! entry point inside an executable one. Pages two segments share get the
//! union of their permissions.
//!
//! The initial stack is the SysV one: `argc`, `argv[]`, NULL, `envp[]`, NULL,
//! auxv (`AT_PHDR`, `AT_PHENT`, `AT_PHNUM`, `AT_PAGESZ`, `AT_ENTRY`,
//! `AT_RANDOM`, `AT_NULL`), with `rsp` 16-byte aligned pointing at `argc`.

use emu::{GuestAddress, Perm};
use goblin::container::{Container, Ctx, Endian};
use goblin::elf::header::{EM_X86_64, ET_DYN, ET_EXEC};
use goblin::elf::program_header::{ProgramHeader, PF_R, PF_W, PF_X, PT_INTERP, PT_LOAD, PT_PHDR};
use goblin::elf::Elf;
use warden_abi::{
    Errno, AT_ENTRY, AT_NULL, AT_PAGESZ, AT_PHDR, AT_PHENT, AT_PHNUM, AT_RANDOM, E2BIG, EACCES, EIO, ENOEXEC, ENOMEM,
};

use crate::mm::{round_up, Mm, PAGE, PIE_BASE};
use crate::scheme::FileRef;

/// Largest program file exec reads.
pub const MAX_PROGRAM_SIZE: u64 = 256 << 20;
/// Size of one 64-bit program header.
const PHENT_SIZE: usize = 56;
/// Most program headers accepted.
const MAX_PHNUM: usize = 128;
/// Largest argv + envp (strings and pointers) accepted by exec.
pub const MAX_ARG_BYTES: usize = 1 << 20;

/// One loadable segment, with the load bias applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub vaddr: u64,
    pub memsz: u64,
    pub offset: u64,
    pub filesz: u64,
    pub perm: Perm,
}

/// A validated program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElfImage {
    pub entry: u64,
    pub segments: Vec<Segment>,
    /// Address of the program headers in memory (0 if not loaded).
    pub phdr: u64,
    pub phnum: u64,
    /// End of the highest segment (where the heap starts).
    pub end: u64,
    /// Where the lowest segment's page starts (with the load bias applied).
    pub base: u64,
    /// The `PT_INTERP` path (without its NUL), if the program names one.
    pub interp: Option<Vec<u8>>,
}

fn noexec<T>(_: T) -> Errno {
    Errno(ENOEXEC)
}

/// Validates `bytes` as a program for an address space of `space_size` bytes.
pub fn parse(bytes: &[u8], space_size: u64) -> Result<ElfImage, Errno> {
    parse_at(bytes, PIE_BASE, space_size / 2)
}

/// Like [`parse`], loading an `ET_DYN` file at `base`, all of it below `high`.
pub fn parse_at(bytes: &[u8], base: u64, high: u64) -> Result<ElfImage, Errno> {
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" {
        return Err(Errno(ENOEXEC));
    }
    // Class 64, little endian, version 1.
    if bytes[4] != 2 || bytes[5] != 1 || bytes[6] != 1 {
        return Err(Errno(ENOEXEC));
    }
    let header = Elf::parse_header(bytes).map_err(noexec)?;
    if header.e_machine != EM_X86_64 || !(header.e_type == ET_EXEC || header.e_type == ET_DYN) {
        return Err(Errno(ENOEXEC));
    }
    let phnum = header.e_phnum as usize;
    if header.e_phentsize as usize != PHENT_SIZE || phnum == 0 || phnum > MAX_PHNUM {
        return Err(Errno(ENOEXEC));
    }
    let phoff = usize::try_from(header.e_phoff).map_err(noexec)?;
    let ph_end = phnum.checked_mul(PHENT_SIZE).and_then(|n| n.checked_add(phoff)).ok_or(Errno(ENOEXEC))?;
    if ph_end > bytes.len() {
        return Err(Errno(ENOEXEC));
    }
    let ctx = Ctx::new(Container::Big, Endian::Little);
    let phdrs = ProgramHeader::parse(bytes, phoff, phnum, ctx).map_err(noexec)?;
    let interp = match phdrs.iter().find(|p| p.p_type == PT_INTERP) {
        None => None,
        Some(p) => {
            let start = usize::try_from(p.p_offset).map_err(noexec)?;
            let len = usize::try_from(p.p_filesz).map_err(noexec)?;
            let raw = start.checked_add(len).and_then(|end| bytes.get(start..end)).ok_or(Errno(ENOEXEC))?;
            let path = raw.split(|&b| b == 0).next().unwrap_or(&[]);
            if path.is_empty() || path.len() > 4096 {
                return Err(Errno(ENOEXEC));
            }
            Some(path.to_vec())
        }
    };
    let loads: Vec<&ProgramHeader> = phdrs.iter().filter(|p| p.p_type == PT_LOAD && p.p_memsz > 0).collect();
    if loads.is_empty() {
        return Err(Errno(ENOEXEC));
    }
    let min_vaddr = loads.iter().map(|p| p.p_vaddr).min().unwrap_or(0) & !(PAGE - 1);
    let bias = if header.e_type == ET_DYN { base.saturating_sub(min_vaddr) } else { 0 };
    let mut segments = Vec::with_capacity(loads.len());
    for p in &loads {
        let file_end = p.p_offset.checked_add(p.p_filesz).ok_or(Errno(ENOEXEC))?;
        if p.p_filesz > p.p_memsz || file_end > bytes.len() as u64 {
            return Err(Errno(ENOEXEC));
        }
        let vaddr = p.p_vaddr.checked_add(bias).ok_or(Errno(ENOEXEC))?;
        let end = vaddr.checked_add(p.p_memsz).ok_or(Errno(ENOEXEC))?;
        if vaddr < PAGE || end > high {
            return Err(Errno(ENOEXEC));
        }
        let mut perm = Perm::NONE;
        if p.p_flags & PF_R != 0 {
            perm = perm.union(Perm::READ);
        }
        if p.p_flags & PF_W != 0 {
            perm = perm.union(Perm::RW);
        }
        if p.p_flags & PF_X != 0 {
            perm = perm.union(Perm::RX);
        }
        segments.push(Segment { vaddr, memsz: p.p_memsz, offset: p.p_offset, filesz: p.p_filesz, perm });
    }
    segments.sort_by_key(|s| s.vaddr);
    for pair in segments.windows(2) {
        if pair[0].vaddr + pair[0].memsz > pair[1].vaddr {
            return Err(Errno(ENOEXEC));
        }
    }
    let entry = header.e_entry.checked_add(bias).ok_or(Errno(ENOEXEC))?;
    if !segments.iter().any(|s| s.perm.contains(Perm::EXEC) && entry >= s.vaddr && entry < s.vaddr + s.memsz) {
        return Err(Errno(ENOEXEC));
    }
    let phdr = match phdrs.iter().find(|p| p.p_type == PT_PHDR) {
        Some(p) => p.p_vaddr.checked_add(bias).unwrap_or(0),
        None => loads
            .iter()
            .find(|p| p.p_offset <= header.e_phoff && ph_end as u64 <= p.p_offset + p.p_filesz)
            .map(|p| p.p_vaddr + bias + (header.e_phoff - p.p_offset))
            .unwrap_or(0),
    };
    let end = segments.iter().map(|s| s.vaddr + s.memsz).max().unwrap_or(0);
    let base = min_vaddr.saturating_add(bias);
    Ok(ElfImage { entry, segments, phdr, phnum: phnum as u64, end, base, interp })
}

/// Maps the segments of `image` (read from `bytes`) into `mm` and sets the
/// program break after them.
pub fn load(image: &ElfImage, bytes: &[u8], mm: &mut Mm) -> Result<(), Errno> {
    let mut mapped_end = 0u64;
    for s in &image.segments {
        let start = (s.vaddr & !(PAGE - 1)).max(mapped_end);
        let end = round_up(s.vaddr + s.memsz).ok_or(Errno(ENOEXEC))?;
        if end > start {
            mm.map(start, end - start, Perm::RW)?;
        }
        mapped_end = mapped_end.max(end);
        let data = bytes.get(s.offset as usize..(s.offset + s.filesz) as usize).ok_or(Errno(ENOEXEC))?;
        mm.space.mem.write_raw(GuestAddress(s.vaddr), data).map_err(|_| Errno(ENOMEM))?;
    }
    let mem = &mut mm.space.mem;
    for s in &image.segments {
        let start = s.vaddr & !(PAGE - 1);
        let end = round_up(s.vaddr + s.memsz).ok_or(Errno(ENOEXEC))?;
        mem.protect(GuestAddress(start), end - start, s.perm).map_err(|_| Errno(ENOMEM))?;
    }
    for pair in image.segments.windows(2) {
        let last_page = (pair[0].vaddr + pair[0].memsz - 1) & !(PAGE - 1);
        if last_page == pair[1].vaddr & !(PAGE - 1) {
            let perm = pair[0].perm.union(pair[1].perm);
            mem.protect(GuestAddress(last_page), PAGE, perm).map_err(|_| Errno(ENOMEM))?;
        }
    }
    let brk = round_up(image.end).ok_or(Errno(ENOEXEC))?;
    mm.brk_start = brk;
    mm.brk = brk;
    Ok(())
}

/// Maps the stack and writes argv, envp and auxv on it; returns the initial `rsp`.
pub fn build_stack(
    mm: &mut Mm,
    image: &ElfImage,
    args: &[Vec<u8>],
    envs: &[Vec<u8>],
    random: [u8; 16],
    stack_size: u64,
) -> Result<u64, Errno> {
    let top = mm.stack_top();
    let stack_size = round_up(stack_size.max(16 * PAGE)).ok_or(Errno(ENOMEM))?;
    let bottom = top.checked_sub(stack_size).ok_or(Errno(ENOMEM))?;
    let strings: usize = args.iter().chain(envs).map(|s| s.len() + 1 + 8).sum();
    if strings > MAX_ARG_BYTES || strings as u64 > stack_size / 2 {
        return Err(Errno(E2BIG));
    }
    mm.map(bottom, stack_size, Perm::RW)?;
    let mem = &mut mm.space.mem;
    let fault = |_| Errno(ENOMEM);
    let mut sp = top - 16;
    mem.write_raw(GuestAddress(sp), &random).map_err(fault)?;
    let at_random = sp;
    let mut argv = Vec::with_capacity(args.len());
    for a in args {
        argv.push(push_cstr(mem, &mut sp, a)?);
    }
    let mut envp = Vec::with_capacity(envs.len());
    for e in envs {
        envp.push(push_cstr(mem, &mut sp, e)?);
    }
    let auxv: [(usize, u64); 7] = [
        (AT_PHDR, image.phdr),
        (AT_PHENT, PHENT_SIZE as u64),
        (AT_PHNUM, image.phnum),
        (AT_PAGESZ, PAGE),
        (AT_ENTRY, image.entry),
        (AT_RANDOM, at_random),
        (AT_NULL, 0),
    ];
    let auxv = auxv.map(|(k, v)| (k as u64, v));
    push_start_vectors(mem, sp, &argv, &envp, &auxv)
}

/// Copies `s` and a terminating NUL below `*sp`; returns its address.
pub(crate) fn push_cstr(mem: &mut emu::Memory, sp: &mut u64, s: &[u8]) -> Result<u64, Errno> {
    let fault = |_| Errno(ENOMEM);
    *sp -= s.len() as u64 + 1;
    mem.write_raw(GuestAddress(*sp), s).map_err(fault)?;
    mem.write_raw(GuestAddress(*sp + s.len() as u64), &[0]).map_err(fault)?;
    Ok(*sp)
}

/// Writes the SysV process-entry block below `sp` (argc, argv, NULL, envp,
/// NULL, auxv pairs), 16-byte aligned at argc; returns the new stack pointer.
pub(crate) fn push_start_vectors(
    mem: &mut emu::Memory,
    sp: u64,
    argv: &[u64],
    envp: &[u64],
    auxv: &[(u64, u64)],
) -> Result<u64, Errno> {
    let mut words: Vec<u64> = Vec::with_capacity(3 + argv.len() + envp.len() + 2 * auxv.len());
    words.push(argv.len() as u64);
    words.extend(argv);
    words.push(0);
    words.extend(envp);
    words.push(0);
    for &(k, v) in auxv {
        words.push(k);
        words.push(v);
    }
    let mut sp = sp & !15;
    if words.len() % 2 == 1 {
        sp -= 8;
    }
    sp -= 8 * words.len() as u64;
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    mem.write_raw(GuestAddress(sp), &bytes).map_err(|_| Errno(ENOMEM))?;
    Ok(sp)
}

/// Reads a whole program file through `read_at` (EACCES if the file is not a
/// regular file, ENOEXEC if too large).
pub fn read_program(file: &FileRef) -> Result<Vec<u8>, Errno> {
    let file = file.try_borrow().map_err(|_| Errno(EIO))?;
    // The buffer starts at the file's size and a page more, so a program is read in place
    // with one `read_at` and the one that finds its end (a 64 KiB chunk copied into a
    // growing `Vec` was a tenth of `warden run` of a 750 KiB static program: the copies,
    // the growth and its page faults). A file whose size is unknown or changes still reads
    // whole: the buffer doubles when full.
    let mut size_hint = 64 * 1024;
    if let Ok(stat) = file.stat() {
        if stat.is_dir() {
            return Err(Errno(EACCES));
        }
        if stat.st_size > MAX_PROGRAM_SIZE {
            return Err(Errno(ENOEXEC));
        }
        size_hint = stat.st_size as usize + 4096;
    }
    // Zeroed, so a large buffer is fresh pages the read fills (no separate clearing).
    let mut out = vec![0u8; size_hint];
    let mut len = 0;
    loop {
        if len == out.len() {
            if len as u64 > MAX_PROGRAM_SIZE {
                return Err(Errno(ENOEXEC));
            }
            out.resize(2 * len, 0);
        }
        let n = match file.read_at(len as u64, &mut out[len..]) {
            None => return Err(Errno(EACCES)),
            Some(r) => r?,
        };
        if n == 0 {
            break;
        }
        len += n.min(out.len() - len);
        if len as u64 > MAX_PROGRAM_SIZE {
            return Err(Errno(ENOEXEC));
        }
    }
    out.truncate(len);
    Ok(out)
}
