//! `div` and `idiv` in translated code: the host's own instruction, after checks that
//! leave for the interpreter before it whenever it could raise #DE.

use iced_x86::code_asm::{al, ax, bp, bpl, dx, eax, ebp, edx, r15, r15d, r15w, rax, rbp, rdx};
use iced_x86::{Code, Instruction, MemoryOperand, Mnemonic, OpKind, Register};

use super::{Emit, Emitter, Need, Unsupported, ADDR, BASE};

const RAX: usize = 0;
const RDX: usize = 2;

impl Emitter<'_> {
    /// `div` / `idiv` of a register or memory divisor (instruction `k`). The divisor is
    /// copied into `TMP` (`rbp`: zero-extended for `div`, sign-extended for `idiv`) and
    /// the host divides by that copy; before it, the code leaves for the interpreter,
    /// which raises the #DE with the state as it was, when:
    /// - `div`: the dividend's high half is not below the divisor (a zero divisor, or a
    ///   quotient that does not fit): exactly the cases that fault;
    /// - `idiv`: the divisor is zero, the dividend is not its low half sign-extended (as
    ///   after `cbw`/`cwd`/`cdq`/`cqo`), or it is the smallest value of the low half
    ///   divided by -1. A sign-extended dividend's quotient fits but for that one, so
    ///   these cover every fault; the interpreter also runs the (rare) divisions of a
    ///   wider dividend that fit.
    ///
    /// The status flags keep their values, as in the interpreter (the manuals leave them
    /// undefined): they are stored in `Cpu::rflags` first where a later instruction or a
    /// successor may read them, and the host's are not the guest's afterwards.
    pub(super) fn div(&mut self, k: u32, i: &Instruction) -> Emit {
        let signed = i.mnemonic() == Mnemonic::Idiv;
        let in_mem = i.op0_kind() == OpKind::Memory;
        let size = if in_mem { i.memory_size().size() } else { i.op0_register().size() };
        let mut used = vec![RAX];
        if size > 1 {
            used.push(RDX);
        }
        let explicit: Vec<usize> = if in_mem {
            [i.memory_base(), i.memory_index()]
                .into_iter()
                .filter(|r| r.is_gpr())
                .map(|r| r.full_register().number())
                .collect()
        } else {
            vec![i.op0_register().full_register().number()]
        };
        for &g in &explicit {
            if !used.contains(&g) {
                used.push(g);
            }
        }
        let written = used[..if size > 1 { 2 } else { 1 }].to_vec();
        let map = self.plan(&used, &used, &written, &explicit)?;
        // The copy of the divisor into `TMP`, checked to encode before anything is emitted.
        let code = match (size, signed) {
            (1, false) => Code::Movzx_r32_rm8,
            (1, true) => Code::Movsx_r32_rm8,
            (2, false) => Code::Movzx_r32_rm16,
            (2, true) => Code::Movsx_r32_rm16,
            (4, _) => Code::Mov_r32_rm32,
            (8, _) => Code::Mov_r64_rm64,
            _ => return Err(Unsupported),
        };
        let tmp = if size == 8 { Register::RBP } else { Register::EBP };
        let load = if in_mem {
            Instruction::with2(code, tmp, MemoryOperand::with_base_index(BASE, ADDR))?
        } else {
            Instruction::with2(code, tmp, map.reg(i.op0_register())?)?
        };
        self.encodes(&load)?;

        self.sync_flags(self.live[k as usize])?;
        self.bind(&map)?;
        if in_mem {
            self.address(i, &map, true)?;
            self.check(size as u64, Need::Read, k)?;
        }
        self.add(Ok(load))?;
        let fail = self.fallback(k);
        if signed {
            // A zero divisor.
            if size == 8 {
                self.a.test(rbp, rbp)?;
            } else {
                self.a.test(ebp, ebp)?;
            }
            self.a.je(fail)?;
            // The dividend is its low half sign-extended: its high half (in `r15`) is
            // the low half's sign.
            match size {
                1 => {
                    self.a.movsx(r15d, al)?;
                    self.a.cmp(r15w, ax)?;
                }
                2 => {
                    self.a.movsx(r15d, ax)?;
                    self.a.sar(r15d, 15)?;
                    self.a.cmp(r15w, dx)?;
                }
                4 => {
                    self.a.mov(r15d, eax)?;
                    self.a.sar(r15d, 31)?;
                    self.a.cmp(r15d, edx)?;
                }
                _ => {
                    self.a.mov(r15, rax)?;
                    self.a.sar(r15, 63)?;
                    self.a.cmp(r15, rdx)?;
                }
            }
            self.a.jne(fail)?;
            // The smallest value divided by -1: the low half less one overflows.
            let mut go = self.a.create_label();
            if size == 8 {
                self.a.cmp(rbp, -1)?;
            } else {
                self.a.cmp(ebp, -1)?;
            }
            self.a.jne(go)?;
            match size {
                1 => self.a.cmp(al, 1)?,
                2 => self.a.cmp(ax, 1)?,
                4 => self.a.cmp(eax, 1)?,
                _ => self.a.cmp(rax, 1)?,
            }
            self.a.jo(fail)?;
            self.a.set_label(&mut go)?;
            match size {
                1 => self.a.idiv(bpl)?,
                2 => self.a.idiv(bp)?,
                4 => self.a.idiv(ebp)?,
                _ => self.a.idiv(rbp)?,
            }
        } else {
            // The high half (zero-extended in `r15`) must be below the divisor.
            match size {
                1 => {
                    self.a.movzx(r15d, ax)?;
                    self.a.shr(r15d, 8)?;
                }
                2 => self.a.movzx(r15d, dx)?,
                4 => self.a.mov(r15d, edx)?,
                _ => self.a.mov(r15, rdx)?,
            }
            self.a.cmp(r15, rbp)?;
            self.a.jae(fail)?;
            match size {
                1 => self.a.div(bpl)?,
                2 => self.a.div(bp)?,
                4 => self.a.div(ebp)?,
                _ => self.a.div(rbp)?,
            }
        }
        self.wrote(&map);
        // The guest's flags are in `Cpu::rflags` (where they may be read), not the host's.
        self.host_flags = false;
        self.ctx_flags = true;
        Ok(())
    }
}
