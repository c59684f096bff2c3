//! Helpers for tests that run hand-assembled guest programs: wrapping code
//! bytes into a minimal static x86-64 ELF executable.
//!
//! The file is one 64-byte ELF header, one program header and the code; the
//! single `PT_LOAD` segment maps the whole file read/write/execute at
//! `load_addr` (plus `bss` zeroed bytes), so the code starts at
//! `load_addr + CODE_OFFSET` and can keep its data next to it.

/// Offset of the code in the file and in memory (header + one program header).
pub const CODE_OFFSET: u64 = 64 + 56;

/// The default load address of [`static_elf`] programs.
pub const LOAD_ADDR: u64 = 0x40_0000;

/// Where code assembled for [`static_elf`] starts (`LOAD_ADDR + CODE_OFFSET`).
pub const CODE_ADDR: u64 = LOAD_ADDR + CODE_OFFSET;

/// A static ELF64 executable (`ET_EXEC`) whose entry point is the first byte
/// of `code`, loaded at [`LOAD_ADDR`] with `bss` extra zeroed bytes.
pub fn static_elf(code: &[u8], bss: u64) -> Vec<u8> {
    elf_at(code, LOAD_ADDR, bss, 2)
}

/// Like [`static_elf`] with a chosen load address and `e_type` (2 = ET_EXEC,
/// 3 = ET_DYN).
pub fn elf_at(code: &[u8], load_addr: u64, bss: u64, e_type: u16) -> Vec<u8> {
    let filesz = CODE_OFFSET + code.len() as u64;
    let mut out = Vec::with_capacity(filesz as usize);
    // e_ident: magic, ELFCLASS64, ELFDATA2LSB, EV_CURRENT, SysV ABI.
    out.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&e_type.to_le_bytes()); // e_type
    out.extend_from_slice(&62u16.to_le_bytes()); // e_machine: x86-64
    out.extend_from_slice(&1u32.to_le_bytes()); // e_version
    out.extend_from_slice(&(load_addr + CODE_OFFSET).to_le_bytes()); // e_entry
    out.extend_from_slice(&64u64.to_le_bytes()); // e_phoff
    out.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    out.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    out.extend_from_slice(&64u16.to_le_bytes()); // e_ehsize
    out.extend_from_slice(&56u16.to_le_bytes()); // e_phentsize
    out.extend_from_slice(&1u16.to_le_bytes()); // e_phnum
    out.extend_from_slice(&64u16.to_le_bytes()); // e_shentsize
    out.extend_from_slice(&0u16.to_le_bytes()); // e_shnum
    out.extend_from_slice(&0u16.to_le_bytes()); // e_shstrndx
                                                // Program header: PT_LOAD, PF_R | PF_W | PF_X.
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&7u32.to_le_bytes());
    out.extend_from_slice(&0u64.to_le_bytes()); // p_offset
    out.extend_from_slice(&load_addr.to_le_bytes()); // p_vaddr
    out.extend_from_slice(&load_addr.to_le_bytes()); // p_paddr
    out.extend_from_slice(&filesz.to_le_bytes()); // p_filesz
    out.extend_from_slice(&(filesz + bss).to_le_bytes()); // p_memsz
    out.extend_from_slice(&0x1000u64.to_le_bytes()); // p_align
    out.extend_from_slice(code);
    out
}
