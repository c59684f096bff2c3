//! The initial stack of a Linux process: the SysV layout with the auxiliary
//! vector glibc and musl read (no vDSO: `AT_SYSINFO_EHDR` is absent, so the C
//! libraries make real system calls for the time).
//!
//! Dynamically linked programs: as the Linux kernel does, exec loads the
//! program's `PT_INTERP` (e.g. `/lib64/ld-linux-x86-64.so.2`, looked up in the
//! guest's file system) at [`INTERP_BASE`] next to the program, starts at the
//! interpreter's entry point, and tells it where the program is through the
//! auxiliary vector (`AT_PHDR`, `AT_PHNUM`, `AT_ENTRY` of the program,
//! `AT_BASE` of the interpreter). The interpreter then maps the libraries
//! itself with `openat` and private file `mmap`s. An interpreter that itself
//! names an interpreter is ENOEXEC.
//!
//! `#!` scripts ([`script`]): the interpreter line names the program that runs instead,
//! with the line's one optional argument and the script's path before the script's own
//! arguments, as Linux's `binfmt_script` does; both execve and the program warden starts
//! use it.

use emu::{GuestAddress, Perm};
use warden_abi::{Errno, E2BIG, ENOMEM};

use crate::elf::{push_cstr, push_start_vectors, ElfImage, MAX_ARG_BYTES};
use crate::mm::{round_up, Mm, PAGE};
use crate::{Kernel, Pid};

/// A program's path and its arguments.
pub(crate) type Program = (Vec<u8>, Vec<Vec<u8>>);

/// A `#!` script's replacement: for `bytes` read from the program at `path` run with
/// `args`, the interpreter to run instead and its arguments (`interp [arg] path
/// args[1..]`); `None` if `bytes` is no script, ENOEXEC if the line names no interpreter.
/// Only the first 255 bytes of the line count, as on Linux.
pub(crate) fn script(bytes: &[u8], path: &[u8], args: &[Vec<u8>]) -> Option<Result<Program, Errno>> {
    let rest = bytes.strip_prefix(b"#!")?;
    let line = &rest[..rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len()).min(255)];
    let blank = |b: &u8| *b == b' ' || *b == b'\t';
    let line = &line[line.iter().position(|b| !blank(b)).unwrap_or(line.len())..];
    let split = line.iter().position(blank).unwrap_or(line.len());
    let (interp, arg) = (&line[..split], line[split..].trim_ascii());
    if interp.is_empty() {
        return Some(Err(Errno(warden_abi::ENOEXEC)));
    }
    let mut new_args = vec![interp.to_vec()];
    if !arg.is_empty() {
        new_args.push(arg.to_vec());
    }
    new_args.push(path.to_vec());
    new_args.extend(args.iter().skip(1).cloned());
    Some(Ok((interp.to_vec(), new_args)))
}

const AT_NULL: u64 = 0;
const AT_PHDR: u64 = 3;
const AT_PHENT: u64 = 4;
const AT_PHNUM: u64 = 5;
const AT_PAGESZ: u64 = 6;
const AT_BASE: u64 = 7;
const AT_FLAGS: u64 = 8;
const AT_ENTRY: u64 = 9;
const AT_UID: u64 = 11;
const AT_EUID: u64 = 12;
const AT_GID: u64 = 13;
const AT_EGID: u64 = 14;
const AT_PLATFORM: u64 = 15;
const AT_HWCAP: u64 = 16;
const AT_CLKTCK: u64 = 17;
const AT_SECURE: u64 = 23;
const AT_RANDOM: u64 = 25;
const AT_HWCAP2: u64 = 26;
const AT_EXECFN: u64 = 31;
const AT_MINSIGSTKSZ: u64 = 51;

/// AT_HWCAP2 bit: user code may use `rdfsbase` and friends (Linux's HWCAP2_FSGSBASE).
const HWCAP2_FSGSBASE: u64 = 1 << 1;

/// Where a program's interpreter is loaded: the start of the mmap area, so the
/// heap below it and the libraries it maps above it have room.
pub fn interp_base(space_size: u64) -> u64 {
    space_size / 2
}

/// Identity given to the auxiliary vector.
pub struct Ids {
    pub uid: u32,
    pub gid: u32,
    /// The CPU: AT_HWCAP is its CPUID.1:EDX, as Linux reports it; AT_HWCAP2 says whether
    /// the FS/GS base instructions may be used.
    pub cpu: emu::CpuModel,
}

/// What `/proc/PID/{environ,auxv}` show of a process's start: where its environment
/// strings lie on its stack (Linux reads them from the process's memory, so changes the
/// program makes in place show), and the auxiliary vector as exec wrote it.
#[derive(Clone, Debug, Default)]
pub(crate) struct StartInfo {
    pub env: (u64, u64),
    /// `(key, value)` pairs as little-endian words, `AT_NULL` included (as Linux's `auxv`).
    pub auxv: Vec<u8>,
}

/// Maps the stack and writes argc, argv, envp and auxv; returns the initial `rsp`.
/// The auxiliary vector is in the order Linux 6 writes it (`LD_SHOW_AUXV=1` prints it),
/// less `AT_SYSINFO_EHDR` (no vDSO) and `AT_RSEQ_*` (no `rseq`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn build_stack(
    mm: &mut Mm,
    image: &ElfImage,
    interp_base: u64,
    args: &[Vec<u8>],
    envs: &[Vec<u8>],
    random: [u8; 16],
    stack_size: u64,
    execfn: &[u8],
    ids: Ids,
) -> Result<(u64, StartInfo), Errno> {
    let top = mm.stack_top();
    let stack_size = round_up(stack_size.max(16 * PAGE)).ok_or(Errno(ENOMEM))?;
    let bottom = top.checked_sub(stack_size).ok_or(Errno(ENOMEM))?;
    let strings: usize = args.iter().chain(envs).map(|s| s.len() + 1 + 8).sum::<usize>() + execfn.len() + 64;
    if strings > MAX_ARG_BYTES || strings as u64 > stack_size / 2 {
        return Err(Errno(E2BIG));
    }
    mm.map(bottom, stack_size, Perm::RW)?;
    let mem = &mut mm.space.mem;
    let fault = |_| Errno(ENOMEM);
    let mut sp = top - 8;
    let at_execfn = push_cstr(mem, &mut sp, execfn)?;
    let mut envp = Vec::with_capacity(envs.len());
    for e in envs.iter().rev() {
        envp.push(push_cstr(mem, &mut sp, e)?);
    }
    envp.reverse();
    // The strings were pushed last first: the first lies lowest, the last ends below execfn.
    let env = (envp.first().copied().unwrap_or(sp), envp.first().map_or(sp, |_| at_execfn));
    let mut argv = Vec::with_capacity(args.len());
    for a in args.iter().rev() {
        argv.push(push_cstr(mem, &mut sp, a)?);
    }
    argv.reverse();
    let at_platform = push_cstr(mem, &mut sp, b"x86_64")?;
    sp &= !15;
    sp -= 16;
    mm.space.mem.write_raw(GuestAddress(sp), &random).map_err(fault)?;
    let at_random = sp;
    let hwcap = ids.cpu.cpuid(1, 0)[3] as u64;
    let hwcap2 = if ids.cpu.cpuid(7, 0)[1] & 1 != 0 { HWCAP2_FSGSBASE } else { 0 };
    let auxv: [(u64, u64); 20] = [
        (AT_MINSIGSTKSZ, super::signal::min_sigstack_size(ids.cpu.has_xsave())),
        (AT_HWCAP, hwcap),
        (AT_PAGESZ, PAGE),
        (AT_CLKTCK, 100),
        (AT_PHDR, image.phdr),
        (AT_PHENT, 56),
        (AT_PHNUM, image.phnum),
        (AT_BASE, interp_base),
        (AT_FLAGS, 0),
        (AT_ENTRY, image.entry),
        (AT_UID, ids.uid as u64),
        (AT_EUID, ids.uid as u64),
        (AT_GID, ids.gid as u64),
        (AT_EGID, ids.gid as u64),
        (AT_SECURE, 0),
        (AT_RANDOM, at_random),
        (AT_HWCAP2, hwcap2),
        (AT_EXECFN, at_execfn),
        (AT_PLATFORM, at_platform),
        (AT_NULL, 0),
    ];
    let saved = auxv.iter().flat_map(|&(k, v)| [k, v]).flat_map(u64::to_le_bytes).collect();
    let rsp = push_start_vectors(&mut mm.space.mem, sp, &argv, &envp, &auxv)?;
    Ok((rsp, StartInfo { env, auxv: saved }))
}

impl Kernel {
    /// Reads and validates the interpreter at `path` for a program `tid` execs.
    pub(crate) fn linux_interpreter(&mut self, tid: Pid, path: &[u8]) -> Result<(ElfImage, Vec<u8>), Errno> {
        let mut full = b"file:".to_vec();
        full.extend_from_slice(&crate::process::normalize(b"/", path));
        let file = self.open_path(tid, &full, warden_abi::O_RDONLY)?;
        let desc = crate::process::OpenFile::new(file, warden_abi::O_RDONLY);
        let bytes = crate::elf::read_program(&desc.file)?;
        drop(desc);
        let size = self.config.address_space_size;
        let base = interp_base(size);
        let image = crate::elf::parse_at(&bytes, base, base.saturating_add(size / 4))?;
        if image.interp.is_some() {
            return Err(Errno(warden_abi::ENOEXEC));
        }
        Ok((image, bytes))
    }
}
