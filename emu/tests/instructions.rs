//! Table-driven instruction tests: one line per case, bytes in, registers,
//! flags and memory in, expected exit, registers, flags and memory out.
//!
//! Every case runs at `CODE` with a `hlt` appended; unless a case says
//! otherwise it must end in `Exit::Halt` at that `hlt`. Memory: `DATA` is a
//! read-write page, `RO` read-only, `UNMAPPED` nothing, the stack is a
//! read-write page with RSP at `STACK`. To add a case, copy a line.

use emu::reg::*;
use emu::{Access, AddressSpace, Cpu, CpuModel, Exit, Gate, GuestAddress, Perm};

const CODE: u64 = 0x1000;
const DATA: u64 = 0x10000;
const RO: u64 = 0x11000;
const UNMAPPED: u64 = 0x12000;
const STACK: u64 = 0x20f00;

const CF: u64 = emu::flags::CF;
const PF: u64 = emu::flags::PF;
const AF: u64 = emu::flags::AF;
const ZF: u64 = emu::flags::ZF;
const SF: u64 = emu::flags::SF;
const DF: u64 = emu::flags::DF;
const OF: u64 = emu::flags::OF;
const ALL: u64 = emu::flags::STATUS;

/// One case, built with chained calls.
#[derive(Clone)]
struct T {
    name: &'static str,
    code: Vec<u8>,
    regs: Vec<(usize, u64)>,
    rflags: u64,
    mem: Vec<(u64, Vec<u8>)>,
    exit: Option<Exit>,
    /// Expected RIP as an offset from CODE (default: the appended hlt).
    rip: Option<u64>,
    out: Vec<(usize, u64)>,
    /// (mask, value) of RFLAGS.
    flags: Option<(u64, u64)>,
    out_mem: Vec<(u64, Vec<u8>)>,
    budget: u64,
    icount: Option<u64>,
    model: CpuModel,
}

fn bytes(hex: &str) -> Vec<u8> {
    hex.split_whitespace().map(|b| u8::from_str_radix(b, 16).unwrap()).collect()
}

/// A case named `name` running the hex bytes `hex`.
fn t(name: &'static str, hex: &str) -> T {
    T {
        name,
        code: bytes(hex),
        regs: Vec::new(),
        rflags: 0,
        mem: Vec::new(),
        exit: None,
        rip: None,
        out: Vec::new(),
        flags: None,
        out_mem: Vec::new(),
        budget: 1000,
        icount: None,
        model: CpuModel::V3,
    }
}

impl T {
    /// Input register.
    fn r(mut self, reg: usize, v: u64) -> T {
        self.regs.push((reg, v));
        self
    }
    /// Input status flags (and DF).
    fn f(mut self, flags: u64) -> T {
        self.rflags = flags;
        self
    }
    /// Input memory.
    fn m(mut self, addr: u64, hex: &str) -> T {
        self.mem.push((addr, bytes(hex)));
        self
    }
    /// Expected register.
    fn out(mut self, reg: usize, v: u64) -> T {
        self.out.push((reg, v));
        self
    }
    /// Expected flags under `mask`.
    fn flags(mut self, mask: u64, v: u64) -> T {
        self.flags = Some((mask, v));
        self
    }
    /// Expected memory.
    fn mem_out(mut self, addr: u64, hex: &str) -> T {
        self.out_mem.push((addr, bytes(hex)));
        self
    }
    /// Expected exit, and RIP as an offset from CODE.
    fn exit(mut self, e: Exit, rip_off: u64) -> T {
        self.exit = Some(e);
        self.rip = Some(rip_off);
        self
    }
    fn budget(mut self, n: u64) -> T {
        self.budget = n;
        self
    }
    fn icount(mut self, n: u64) -> T {
        self.icount = Some(n);
        self
    }
    /// The CPU model (default: v3).
    fn cpu(mut self, m: CpuModel) -> T {
        self.model = m;
        self
    }
}

fn space() -> AddressSpace {
    let mut s = AddressSpace::new(1 << 32).unwrap();
    s.mem.map(GuestAddress(CODE), 0x1000, Perm::RX).unwrap();
    s.mem.map(GuestAddress(DATA), 0x1000, Perm::RW).unwrap();
    s.mem.map(GuestAddress(RO), 0x1000, Perm::READ).unwrap();
    s.mem.map(GuestAddress(0x20000), 0x1000, Perm::RW).unwrap();
    s
}

fn ud(code: &[u8]) -> Exit {
    let mut b = [0u8; 15];
    b[..code.len()].copy_from_slice(code);
    Exit::InvalidOpcode { bytes: b, len: code.len() as u8 }
}

fn run_case(c: &T) -> Result<(), String> {
    let mut s = space();
    let mut code = c.code.clone();
    code.push(0xf4);
    s.mem.write_raw(GuestAddress(CODE), &code).unwrap();
    for (a, b) in &c.mem {
        s.mem.write_raw(GuestAddress(*a), b).unwrap();
    }
    let mut cpu = Cpu::new();
    cpu.model = c.model;
    cpu.rip = CODE;
    cpu.gpr[RSP] = STACK;
    for &(r, v) in &c.regs {
        cpu.gpr[r] = v;
    }
    cpu.set_rflags(c.rflags);
    let exit = cpu.run(&mut s, c.budget);
    let mut errs = Vec::new();
    let want_exit = c.exit.unwrap_or(Exit::Halt);
    // For #UD, the expected bytes must start the reported ones (the decoder
    // may take more bytes for an undecodable instruction).
    let same = match (exit, want_exit) {
        (Exit::InvalidOpcode { bytes: b, len: l }, Exit::InvalidOpcode { bytes: wb, len: wl }) => {
            l >= wl && b[..wl as usize] == wb[..wl as usize]
        }
        _ => exit == want_exit,
    };
    if !same {
        errs.push(format!("exit {exit:?}, want {want_exit:?}"));
    }
    let want_rip = CODE + c.rip.unwrap_or(c.code.len() as u64);
    if cpu.rip != want_rip {
        errs.push(format!("rip {:#x}, want {want_rip:#x}", cpu.rip));
    }
    for &(r, v) in &c.out {
        if cpu.gpr[r] != v {
            errs.push(format!("gpr[{r}] = {:#x}, want {v:#x}", cpu.gpr[r]));
        }
    }
    if let Some((mask, v)) = c.flags {
        if cpu.rflags & mask != v {
            errs.push(format!("rflags & {mask:#x} = {:#x}, want {v:#x}", cpu.rflags & mask));
        }
    }
    for (a, want) in &c.out_mem {
        let mut got = vec![0u8; want.len()];
        s.mem.read_raw(GuestAddress(*a), &mut got).unwrap();
        if &got != want {
            errs.push(format!("mem[{a:#x}] = {got:02x?}, want {want:02x?}"));
        }
    }
    if let Some(n) = c.icount {
        if cpu.icount != n {
            errs.push(format!("icount {}, want {n}", cpu.icount));
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} [{}]: {}",
            c.name,
            c.code.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" "),
            errs.join("; ")
        ))
    }
}

fn cases() -> Vec<T> {
    let pf = |a: u64, access| Exit::PageFault { addr: a, access };
    vec![
        // ---- arithmetic and flags
        t("add rax,rcx", "48 01 c8").r(RAX, 1).r(RCX, 2).out(RAX, 3).flags(ALL, PF).icount(1),
        t("add al,1 carry", "04 01").r(RAX, 0x1ff).out(RAX, 0x100).flags(ALL, CF | ZF | AF | PF),
        t("add eax overflow", "05 01 00 00 00")
            .r(RAX, 0xffff_ffff_7fff_ffff)
            .out(RAX, 0x8000_0000)
            .flags(ALL, OF | SF | AF | PF),
        t("adc with CF in", "48 11 c8").r(RAX, u64::MAX).r(RCX, 0).f(CF).out(RAX, 0).flags(CF | ZF, CF | ZF),
        t("sbb with CF in", "48 19 c8").r(RAX, 5).r(RCX, 5).f(CF).out(RAX, u64::MAX).flags(CF | SF | ZF, CF | SF),
        t("sub borrow", "29 c8").r(RAX, 0).r(RCX, 1).out(RAX, 0xffff_ffff).flags(CF | SF | ZF, CF | SF),
        t("cmp equal", "48 39 c8").r(RAX, 7).r(RCX, 7).out(RAX, 7).flags(ALL, ZF | PF),
        t("and clears CF OF", "48 21 c8").r(RAX, 0xf0).r(RCX, 0x0f).f(CF | OF).out(RAX, 0).flags(CF | OF | ZF, ZF),
        t("or 16-bit merges", "66 09 c8").r(RAX, 0xffff_0000_0000_1200).r(RCX, 0x34).out(RAX, 0xffff_0000_0000_1234),
        t("xor 32-bit zero-extends", "31 c0").r(RAX, u64::MAX).out(RAX, 0).flags(ZF | PF, ZF | PF),
        t("test leaves operands", "48 85 c8").r(RAX, 0x80).r(RCX, 0x80).out(RAX, 0x80).flags(ZF | SF, 0),
        t("inc keeps CF", "48 ff c0").r(RAX, u64::MAX).f(CF).out(RAX, 0).flags(CF | ZF, CF | ZF),
        t("dec to zero", "ff c8").r(RAX, 1).out(RAX, 0).flags(ZF, ZF),
        t("neg zero clears CF", "48 f7 d8").r(RAX, 0).f(CF).out(RAX, 0).flags(CF | ZF, ZF),
        t("neg min overflows", "f6 d8").r(RAX, 0x80).out(RAX, 0x80).flags(CF | OF, CF | OF),
        t("not keeps flags", "48 f7 d0").r(RAX, 0).f(ALL).out(RAX, u64::MAX).flags(ALL, ALL),
        t("add [mem],imm", "48 83 03 05")
            .r(RBX, DATA)
            .m(DATA, "01 00 00 00 00 00 00 00")
            .mem_out(DATA, "06 00 00 00 00 00 00 00"),
        t("lock xadd [mem]", "f0 48 0f c1 03").r(RBX, DATA).r(RAX, 2).m(DATA, "05").out(RAX, 5).mem_out(DATA, "07"),
        // ---- multiply and divide
        t("mul rcx", "48 f7 e1").r(RAX, 1 << 63).r(RCX, 4).out(RAX, 0).out(RDX, 2).flags(CF | OF, CF | OF),
        t("mul cl 8-bit", "f6 e1").r(RAX, 0x80).r(RCX, 2).out(RAX, 0x100).flags(CF | OF, CF | OF),
        t("imul rax,rcx,imm8", "48 6b c1 fd").r(RCX, 5).out(RAX, (-15i64) as u64).flags(CF | OF, 0),
        t("imul r32 overflow", "0f af c1").r(RAX, 0x10000).r(RCX, 0x10000).out(RAX, 0).flags(CF | OF, CF | OF),
        t("div rcx", "48 f7 f1").r(RAX, 100).r(RDX, 0).r(RCX, 7).out(RAX, 14).out(RDX, 2),
        t("idiv negative", "48 f7 f9")
            .r(RAX, (-7i64) as u64)
            .r(RDX, u64::MAX)
            .r(RCX, 2)
            .out(RAX, (-3i64) as u64)
            .out(RDX, u64::MAX),
        t("div 8-bit", "f6 f1").r(RAX, 0x0107).r(RCX, 2).out(RAX, 0x0183),
        t("div by zero", "48 f7 f1").r(RAX, 1).r(RCX, 0).exit(Exit::DivideError, 0).out(RAX, 1).icount(0),
        t("div overflow", "f7 f1").r(RDX, 1).r(RCX, 1).exit(Exit::DivideError, 0),
        t("idiv min/-1", "48 f7 f9").r(RAX, 1 << 63).r(RDX, u64::MAX).r(RCX, u64::MAX).exit(Exit::DivideError, 0),
        t("fault after one insn", "48 ff c0 f7 f1").r(RCX, 0).exit(Exit::DivideError, 3).out(RAX, 1).icount(1),
        // ---- shifts, rotates, bits
        t("shl by 1 sets OF", "d0 e0").r(RAX, 0x40).out(RAX, 0x80).flags(CF | OF, OF),
        t("shr cl", "48 d3 e8").r(RAX, 0x8000_0000_0000_0001).r(RCX, 63).out(RAX, 1).flags(CF, 0),
        t("sar 8-bit", "c0 f8 03").r(RAX, 0x80).out(RAX, 0xf0),
        t("shl count masked to 0", "c1 e0 20").r(RAX, 0xffff_ffff_0000_0001).f(CF).out(RAX, 1).flags(CF, CF),
        t("rol 64", "48 c1 c0 04").r(RAX, 0xf000_0000_0000_0001).out(RAX, 0x1f).flags(CF, CF),
        t("rcr through CF", "d0 d8").r(RAX, 1).f(CF).out(RAX, 0x80).flags(CF, CF),
        t("shld 64", "48 0f a4 d0 08").r(RAX, 0x11).r(RDX, 0xff00_0000_0000_0000).out(RAX, 0x11ff),
        t("shrd 16", "66 0f ac d0 04").r(RAX, 0x1234).r(RDX, 0xabcd).out(RAX, 0xd123),
        t("bt reg", "48 0f a3 c8").r(RAX, 0x10).r(RCX, 4).flags(CF, CF),
        t("bts mem with big offset", "0f ab 0b").r(RBX, DATA).r(RCX, 35).mem_out(DATA + 4, "08"),
        t("bsf", "48 0f bc c1").r(RCX, 0x100).out(RAX, 8).flags(ZF, 0),
        t("bsr of zero keeps dest", "48 0f bd c1").r(RAX, 77).r(RCX, 0).out(RAX, 77).flags(ZF, ZF),
        t("tzcnt of zero", "f3 48 0f bc c1").r(RCX, 0).out(RAX, 64).flags(CF | ZF, CF),
        t("lzcnt 32", "f3 0f bd c1").r(RCX, 1).out(RAX, 31).flags(CF | ZF, 0),
        t("popcnt", "f3 48 0f b8 c1").r(RCX, 0x00ff_00ff).out(RAX, 16).flags(ALL, 0),
        t("bswap 64", "48 0f c8").r(RAX, 0x0102_0304_0506_0708).out(RAX, 0x0807_0605_0403_0201),
        t("movbe load 32", "0f 38 f0 03").r(RBX, DATA).m(DATA, "01 02 03 04").out(RAX, 0x0102_0304),
        t("andn", "c4 e2 f0 f2 c2").r(RCX, 0xf0).r(RDX, 0xff).out(RAX, 0x0f),
        t("bextr", "c4 e2 f0 f7 c2").r(RDX, 0xabcd).r(RCX, 0x0804).out(RAX, 0xbc).flags(ZF, 0),
        t("pdep", "c4 e2 f3 f5 c2").r(RCX, 0b101).r(RDX, 0xf0).out(RAX, 0x50),
        t("mulx", "c4 e2 f3 f6 c2").r(RDX, 1 << 63).r(RCX, 1 << 63).r(RBX, 0).out(RAX, 1 << 62).out(RCX, 0),
        t("adox uses OF", "f3 48 0f 38 f6 c1").r(RAX, u64::MAX).r(RCX, 0).f(OF).out(RAX, 0).flags(OF | CF, OF),
        // ---- data movement, conditionals
        t("mov r64 imm64", "48 b8 88 77 66 55 44 33 22 11").out(RAX, 0x1122_3344_5566_7788),
        t("mov ah", "b4 12").r(RAX, 0xffff).out(RAX, 0x12ff),
        t("movzx", "48 0f b6 c1").r(RCX, 0x1ff).out(RAX, 0xff),
        t("movsxd", "48 63 c1").r(RCX, 0x8000_0000).out(RAX, 0xffff_ffff_8000_0000),
        t("lea rip-relative", "48 8d 05 10 00 00 00").out(RAX, CODE + 7 + 0x10),
        t("lea a32 wraps", "67 8d 04 08").r(RAX, 0xffff_fff0).r(RCX, 0x20).out(RAX, 0x10),
        t("cmove taken", "48 0f 44 c1").r(RCX, 5).f(ZF).out(RAX, 5),
        t("cmovne 32 not taken zero-extends", "0f 45 c1").r(RAX, u64::MAX).f(ZF).out(RAX, 0xffff_ffff),
        t("setl", "0f 9c c0").r(RAX, 0xff00).f(SF).out(RAX, 0xff01),
        t("xchg mem", "48 87 03")
            .r(RBX, DATA)
            .r(RAX, 9)
            .m(DATA, "02 00 00 00 00 00 00 00")
            .out(RAX, 2)
            .mem_out(DATA, "09"),
        t("cmpxchg equal", "48 0f b1 0b")
            .r(RBX, DATA)
            .r(RAX, 2)
            .r(RCX, 7)
            .m(DATA, "02")
            .mem_out(DATA, "07")
            .flags(ZF, ZF),
        t("cmpxchg differ", "48 0f b1 0b").r(RBX, DATA).r(RAX, 3).r(RCX, 7).m(DATA, "02").out(RAX, 2).flags(ZF, 0),
        t("cmpxchg r32 differ keeps dest", "0f b1 d1")
            .r(RAX, 1)
            .r(RCX, 0xffff_ffff_0000_0002)
            .out(RCX, 0xffff_ffff_0000_0002)
            .out(RAX, 2),
        t("cmpxchg16b", "48 0f c7 0f")
            .r(RDI, DATA)
            .r(RAX, 1)
            .r(RDX, 2)
            .r(RBX, 3)
            .r(RCX, 4)
            .m(DATA, "01 00 00 00 00 00 00 00 02")
            .mem_out(DATA, "03 00 00 00 00 00 00 00 04")
            .flags(ZF, ZF),
        t("cbw/cwde/cdqe", "66 98 98 48 98").r(RAX, 0x80).out(RAX, u64::MAX - 0x7f),
        t("cqo", "48 99").r(RAX, 1 << 63).out(RDX, u64::MAX),
        t("lahf", "9f").f(SF | CF).out(RAX, 0x8300),
        t("sahf", "9e").r(RAX, 0x4100).flags(ALL, ZF | CF),
        t("pushfq/popfq", "9c 48 83 34 24 01 9d").f(0).flags(CF, CF),
        t("push/pop", "6a ff 59").out(RCX, u64::MAX).out(RSP, STACK),
        t("push rsp pushes old value", "54 58").out(RAX, STACK),
        t("pop rsp", "5c").m(STACK, "00 10 02 00 00 00 00 00").out(RSP, 0x21000),
        t("std; movsb backwards", "fd a4")
            .r(RSI, DATA + 1)
            .r(RDI, DATA + 3)
            .m(DATA, "aa bb")
            .out(RSI, DATA)
            .out(RDI, DATA + 2)
            .mem_out(DATA + 3, "bb"),
        t("rep stosq", "f3 48 ab")
            .r(RDI, DATA)
            .r(RCX, 2)
            .r(RAX, 0x0101)
            .out(RCX, 0)
            .out(RDI, DATA + 16)
            .mem_out(DATA + 8, "01 01 00")
            .icount(1),
        t("repe cmpsb stops", "f3 a6")
            .r(RSI, DATA)
            .r(RDI, DATA + 8)
            .r(RCX, 8)
            .m(DATA, "01 02 03")
            .m(DATA + 8, "01 02 04")
            .out(RCX, 5)
            .flags(ZF, 0),
        t("repne scasb finds", "f2 ae")
            .r(RDI, DATA)
            .r(RCX, 16)
            .r(RAX, 0x33)
            .m(DATA, "11 22 33")
            .out(RDI, DATA + 3)
            .out(RCX, 13)
            .flags(ZF, ZF),
        t("rep movsb bulk copy", "f3 a4")
            .r(RSI, DATA)
            .r(RDI, DATA + 0x800)
            .r(RCX, 5)
            .m(DATA, "01 02 03 04 05 06")
            .out(RCX, 0)
            .out(RSI, DATA + 5)
            .out(RDI, DATA + 0x805)
            .mem_out(DATA + 0x800, "01 02 03 04 05 00"),
        // A forward copy onto itself shifted by one repeats the first byte,
        // as element-by-element copying does (memmove would not).
        t("rep movsb overlapping forward", "f3 a4")
            .r(RSI, DATA)
            .r(RDI, DATA + 1)
            .r(RCX, 4)
            .m(DATA, "aa bb cc dd ee ff")
            .mem_out(DATA, "aa aa aa aa aa ff"),
        t("rep movsq overlapping backward", "f3 48 a5")
            .r(RSI, DATA + 8)
            .r(RDI, DATA)
            .r(RCX, 2)
            .m(DATA, "00 00 00 00 00 00 00 00 01 01 01 01 01 01 01 01 02 02 02 02 02 02 02 02")
            .mem_out(DATA, "01 01 01 01 01 01 01 01 02 02 02 02 02 02 02 02 02"),
        t("rep stosd up to a read-only page", "f3 ab")
            .r(RDI, DATA + 0xff8)
            .r(RCX, 4)
            .r(RAX, 0x11223344)
            .exit(pf(RO, Access::Write), 0)
            .out(RCX, 2)
            .out(RDI, RO)
            .mem_out(DATA + 0xff8, "44 33 22 11 44 33 22 11"),
        t("rep stosq element across a page", "f3 48 ab")
            .r(RDI, DATA + 0xffc)
            .r(RCX, 2)
            .exit(pf(RO, Access::Write), 0)
            .out(RCX, 2)
            .out(RDI, DATA + 0xffc),
        t("rep movsb from unmapped", "f3 a4")
            .r(RSI, UNMAPPED - 1)
            .r(RDI, DATA)
            .r(RCX, 3)
            .exit(pf(UNMAPPED, Access::Read), 0)
            .out(RCX, 2)
            .out(RSI, UNMAPPED),
        t("rep movsb with DF set", "f3 a4")
            .f(DF)
            .r(RSI, DATA + 2)
            .r(RDI, DATA + 0x802)
            .r(RCX, 3)
            .m(DATA, "01 02 03")
            .out(RSI, DATA - 1)
            .mem_out(DATA + 0x800, "01 02 03"),
        t("rep movsb zero count", "f3 a4").r(RCX, 0).r(RSI, UNMAPPED).r(RDI, UNMAPPED),
        t("xlat", "d7").r(RBX, DATA).r(RAX, 2).m(DATA, "00 00 5a").out(RAX, 0x5a),
        t("enter/leave", "c8 10 00 00 c9").r(RBP, 0x1234).out(RBP, 0x1234).out(RSP, STACK),
        // ---- control flow
        t("jmp rel8", "eb 02 ff c0").out(RAX, 0),
        t("jcc not taken", "74 02 ff c0").out(RAX, 1),
        t("call/ret", "e8 03 00 00 00 ff c0 f4 48 ff c3 c3")
            .exit(Exit::Halt, 7)
            .out(RBX, 1)
            .out(RAX, 1)
            .out(RSP, STACK),
        t("loop", "48 ff c0 e2 fb").r(RCX, 3).out(RAX, 3).out(RCX, 0).icount(6),
        t("jrcxz", "e3 02 ff c0").r(RCX, 0).out(RAX, 0),
        t("call through memory", "ff 13")
            .r(RBX, DATA)
            .m(DATA, "00 20 01 00 00 00 00 00")
            .exit(pf(UNMAPPED, Access::Execute), UNMAPPED - CODE)
            .out(RSP, STACK - 8),
        // ---- exits and traps
        t("syscall", "0f 05")
            .r(RAX, 60)
            .f(CF)
            .exit(Exit::Syscall(Gate::Syscall), 2)
            .out(RCX, CODE + 2)
            .out(R11, 0x203)
            .icount(1),
        t("int 0x80", "cd 80").exit(Exit::Syscall(Gate::Int80), 2).icount(1),
        t("int3", "cc").exit(Exit::Breakpoint, 1).icount(1),
        t("int 0x21", "cd 21").exit(Exit::Interrupt(0x21), 2),
        t("int1", "f1").exit(Exit::Debug, 1),
        t("hlt", "f4").exit(Exit::Halt, 0).icount(0),
        t("rdtsc counts instructions", "90 90 0f 31").out(RAX, 2).out(RDX, 0),
        // ---- faults
        t("ud2", "0f 0b").exit(ud(&[0x0f, 0x0b]), 0).icount(0),
        t("invalid opcode 0x06 in 64-bit mode", "06").exit(ud(&[0x06]), 0),
        t("#UD after one insn", "90 0f 0b").exit(ud(&[0x0f, 0x0b]), 1).icount(1),
        t("mov to cr0: #GP", "0f 22 c0").exit(Exit::GeneralProtection, 0),
        t("in al,dx: #GP", "ec").exit(Exit::GeneralProtection, 0),
        t("cmpxchg16b misaligned: #GP", "48 0f c7 0f").r(RDI, DATA + 8).exit(Exit::GeneralProtection, 0),
        t("read unmapped", "48 8b 03").r(RBX, UNMAPPED + 8).exit(pf(UNMAPPED + 8, Access::Read), 0).out(RAX, 0),
        t("write read-only", "48 89 03").r(RBX, RO).exit(pf(RO, Access::Write), 0),
        t("rmw unmapped is a write", "48 01 03").r(RBX, UNMAPPED).exit(pf(UNMAPPED, Access::Write), 0),
        t("rmw read-only", "ff 03").r(RBX, RO + 4).exit(pf(RO + 4, Access::Write), 0),
        t("page-crossing read", "48 8b 03").r(RBX, RO + 0xffc).exit(pf(UNMAPPED, Access::Read), 0),
        t("page-crossing write", "89 03")
            .r(RBX, DATA + 0xffe)
            .exit(pf(RO, Access::Write), 0)
            .mem_out(DATA + 0xffe, "00 00"),
        t("push to unmapped stack", "50")
            .r(RSP, UNMAPPED + 8)
            .exit(pf(UNMAPPED, Access::Write), 0)
            .out(RSP, UNMAPPED + 8),
        t("shift by 0 still writes", "c1 23 00").r(RBX, RO).exit(pf(RO, Access::Write), 0),
        t("rep movsb faults part way", "f3 a4")
            .r(RSI, DATA)
            .r(RDI, RO - 2)
            .r(RCX, 5)
            .exit(pf(RO, Access::Write), 0)
            .out(RCX, 3)
            .out(RDI, RO),
        t("jump to unmapped", "ff e3").r(RBX, UNMAPPED).exit(pf(UNMAPPED, Access::Execute), UNMAPPED - CODE),
        t("jump to data (no exec)", "ff e3").r(RBX, DATA).exit(pf(DATA, Access::Execute), DATA - CODE),
        t("non-canonical address", "48 8b 03").r(RBX, 1 << 63).exit(pf(1 << 63, Access::Read), 0),
        // ---- the budget
        t("budget stops exactly", "90 90 90 90 90").budget(3).exit(Exit::BudgetExhausted, 3).icount(3),
        t("budget zero", "90").budget(0).exit(Exit::BudgetExhausted, 0).icount(0),
        t("budget in a loop", "48 ff c0 eb fb").budget(7).exit(Exit::BudgetExhausted, 3).out(RAX, 4).icount(7),
        t("rep counts once", "f3 aa 90")
            .r(RDI, DATA)
            .r(RCX, 100)
            .budget(1)
            .exit(Exit::BudgetExhausted, 2)
            .out(RCX, 0)
            .icount(1),
        // ---- CPU models: what each decodes
        t("cpuid vendor", "31 c0 0f a2")
            .out(RBX, u32::from_le_bytes(*b"Genu") as u64)
            .out(RDX, u32::from_le_bytes(*b"ineI") as u64)
            .out(RCX, u32::from_le_bytes(*b"ntel") as u64),
        t("v1: no SSE3", "f2 0f 7c c1").cpu(CpuModel::V1).exit(ud(&[0xf2, 0x0f, 0x7c, 0xc1]), 0),
        t("v1: no popcnt", "f3 0f b8 c3").cpu(CpuModel::V1).exit(ud(&[0xf3, 0x0f, 0xb8, 0xc3]), 0),
        t("v2: popcnt", "f3 0f b8 c3").cpu(CpuModel::V2).r(RBX, 0xf0f).out(RAX, 8),
        t("v2: no movbe", "0f 38 f0 03").cpu(CpuModel::V2).r(RBX, DATA).exit(ud(&[0x0f, 0x38, 0xf0, 0x03]), 0),
        t("v2: tzcnt is bsf", "f3 0f bc c3").cpu(CpuModel::V2).r(RBX, 0x10).out(RAX, 4).flags(ZF, 0),
        t("v2: tzcnt of 0 is bsf of 0", "f3 0f bc c3").cpu(CpuModel::V2).r(RAX, 77).out(RAX, 77).flags(ZF, ZF),
        t("v2: lzcnt is bsr", "f3 0f bd c3").cpu(CpuModel::V2).r(RBX, 0x10).out(RAX, 4),
        t("v3: tzcnt", "f3 0f bc c3").r(RAX, 77).out(RAX, 32).flags(CF | ZF, CF),
        t("v3: lzcnt", "f3 0f bd c3").r(RBX, 0x10).out(RAX, 27),
        // ---- hint NOPs, CET disabled, cache lines
        t("endbr64", "f3 0f 1e fa").r(RAX, 5).out(RAX, 5),
        t("rdsspq leaves 0 (no shadow stack)", "31 c0 f3 48 0f 1e c8").out(RAX, 0),
        t("rdssp on v1 too", "f3 48 0f 1e c8").cpu(CpuModel::V1).r(RAX, 3).out(RAX, 3),
        t("incsspq #UD", "f3 48 0f ae e8").exit(ud(&[0xf3, 0x48, 0x0f, 0xae, 0xe8]), 0),
        t("setssbsy #UD", "f3 0f 01 e8").exit(ud(&[0xf3, 0x0f, 0x01, 0xe8]), 0),
        t("reserved nop with memory", "0f 19 04 25 00 20 01 00"),
        t("prefetchw", "0f 0d 0b").r(RBX, UNMAPPED),
        t("clflush faults like a load", "0f ae 3b").r(RBX, UNMAPPED).exit(pf(UNMAPPED, Access::Read), 0),
        t("clwb", "66 0f ae 33").r(RBX, RO),
        // ---- rdrand, rdpid, fs/gs base
        t("rdrand sets CF", "0f c7 f0").f(ALL).flags(ALL, CF),
        t("rdpid", "f3 0f c7 f8").r(RAX, 9).out(RAX, 0),
        t("wrfsbase/rdfsbase", "f3 48 0f ae d0 f3 48 0f ae c3").r(RAX, 0x7fff_1234_5000).out(RBX, 0x7fff_1234_5000),
        t("wrgsbase 32-bit", "f3 0f ae d8 f3 48 0f ae cb").r(RAX, u64::MAX).out(RBX, 0xffff_ffff),
        t("wrfsbase non-canonical", "f3 48 0f ae d0").r(RAX, 1 << 60).exit(Exit::GeneralProtection, 0),
        t("fs base used by fs:", "f3 48 0f ae d0 64 48 8b 04 25 08 00 00 00")
            .r(RAX, DATA)
            .m(DATA + 8, "11 22 33 44 55 66 77 88")
            .out(RAX, 0x8877_6655_4433_2211),
        t("v2: no rdfsbase", "f3 48 0f ae c3").cpu(CpuModel::V2).exit(ud(&[0xf3, 0x48, 0x0f, 0xae, 0xc3]), 0),
    ]
}

#[test]
fn instruction_table() {
    let mut fails = Vec::new();
    let cases = cases();
    for c in &cases {
        if let Err(e) = run_case(c) {
            fails.push(e);
        }
    }
    for f in &fails {
        println!("FAIL {f}");
    }
    assert!(fails.is_empty(), "{} of {} cases failed", fails.len(), cases.len());
}

/// `rdrand` draws from the thread's seeded generator: the same seed gives the same
/// numbers (replay), another seed or a reseed other ones.
#[test]
fn rdrand_is_deterministic_from_the_seed() {
    let draw = |seed: u64, reseed: Option<u64>| {
        let mut s = space();
        // rdrand rax; rdseed rbx; hlt
        s.mem.write_raw(GuestAddress(CODE), &[0x48, 0x0f, 0xc7, 0xf0, 0x48, 0x0f, 0xc7, 0xfb, 0xf4]).unwrap();
        let mut cpu = Cpu::new();
        cpu.model = CpuModel::V3;
        cpu.rand_state = seed;
        if let Some(n) = reseed {
            cpu.reseed_rand(n);
        }
        cpu.rip = CODE;
        assert_eq!(cpu.run(&mut s, 100), Exit::Halt);
        (cpu.gpr[RAX], cpu.gpr[RBX])
    };
    let a = draw(1, None);
    assert_eq!(a, draw(1, None));
    assert_ne!(a.0, a.1);
    assert_ne!(a, draw(2, None));
    assert_ne!(draw(1, Some(2)), draw(1, Some(3)));
}

/// A guest writes new code into an RWX page and runs it; the block decoded
/// from the old bytes must not run again.
#[test]
fn self_modifying_code() {
    let mut s = AddressSpace::new(1 << 32).unwrap();
    s.mem.map(GuestAddress(0x1000), 0x1000, Perm::RWX).unwrap();
    // 0x1100: mov eax, 1; hlt
    s.mem.write_raw(GuestAddress(0x1100), &[0xb8, 1, 0, 0, 0, 0xf4]).unwrap();
    let mut cpu = Cpu::new();
    cpu.rip = 0x1100;
    assert_eq!(cpu.run(&mut s, 100), Exit::Halt);
    assert_eq!(cpu.gpr[RAX], 1);
    assert!(s.cached_blocks() > 0);
    // 0x1000: mov byte [0x1101], 2 ; jmp 0x1100
    let code = [0xc6, 0x04, 0x25, 0x01, 0x11, 0, 0, 2, 0xe9, 0xf3, 0x00, 0x00, 0x00];
    s.mem.write_raw(GuestAddress(0x1000), &code).unwrap();
    cpu.rip = 0x1000;
    assert_eq!(cpu.run(&mut s, 100), Exit::Halt);
    assert_eq!(cpu.gpr[RAX], 2, "stale block ran after the guest rewrote it");
    assert_eq!(cpu.rip, 0x1105);

    // The very next instruction rewritten by the one before it:
    // mov byte [rip+1], 3 ; mov eax, 1 ; hlt
    let code = [0xc6, 0x05, 0x01, 0, 0, 0, 3, 0xb8, 1, 0, 0, 0, 0xf4];
    s.mem.write_raw(GuestAddress(0x1200), &code).unwrap();
    cpu.rip = 0x1200;
    assert_eq!(cpu.run(&mut s, 100), Exit::Halt);
    assert_eq!(cpu.gpr[RAX], 3, "the store to the next instruction was not seen");

    // A loop that patches its own body each iteration: add eax, imm8 where
    // the immediate is incremented by the loop (count 4: 1+2+3+4 = 10).
    // 0x1300: xor eax,eax; mov ecx,4
    // 0x1307: add eax, 1          (83 c0 01)  <- imm at 0x1309
    //         inc byte [0x1309]   (fe 04 25 09 13 00 00)
    //         loop 0x1307         (e2 f4)
    //         hlt
    let code = [0x31, 0xc0, 0xb9, 4, 0, 0, 0, 0x83, 0xc0, 0x01, 0xfe, 0x04, 0x25, 0x09, 0x13, 0, 0, 0xe2, 0xf4, 0xf4];
    s.mem.write_raw(GuestAddress(0x1300), &code).unwrap();
    cpu.rip = 0x1300;
    assert_eq!(cpu.run(&mut s, 1000), Exit::Halt);
    assert_eq!(cpu.gpr[RAX], 10);
}

/// Code loaded with `write_raw` after a first run replaces the cached block,
/// also on a page the guest cannot write.
#[test]
fn code_reloaded_after_a_run() {
    let mut s = AddressSpace::new(1 << 32).unwrap();
    s.mem.map(GuestAddress(0x2000), 0x1000, Perm::RX).unwrap();
    s.mem.write_raw(GuestAddress(0x2000), &[0xb8, 1, 0, 0, 0, 0xf4]).unwrap();
    let mut cpu = Cpu::new();
    cpu.rip = 0x2000;
    assert_eq!(cpu.run(&mut s, 100), Exit::Halt);
    assert_eq!(cpu.gpr[RAX], 1);
    s.mem.write_raw(GuestAddress(0x2000), &[0xb8, 3, 0, 0, 0, 0xf4]).unwrap();
    cpu.rip = 0x2000;
    assert_eq!(cpu.run(&mut s, 100), Exit::Halt);
    assert_eq!(cpu.gpr[RAX], 3);
    // Remapping the page (as exec does) also drops the old code.
    s.mem.map(GuestAddress(0x2000), 0x1000, Perm::RX).unwrap();
    s.mem.write_raw(GuestAddress(0x2000), &[0xb8, 4, 0, 0, 0, 0xf4]).unwrap();
    cpu.rip = 0x2000;
    assert_eq!(cpu.run(&mut s, 100), Exit::Halt);
    assert_eq!(cpu.gpr[RAX], 4);
    // Making the page non-executable: the next fetch faults.
    s.mem.protect(GuestAddress(0x2000), 0x1000, Perm::READ).unwrap();
    cpu.rip = 0x2000;
    assert_eq!(cpu.run(&mut s, 100), Exit::PageFault { addr: 0x2000, access: Access::Execute });
}

/// The budget is exact whatever the block boundaries: running in steps of
/// one instruction gives the same state as one run.
#[test]
fn budget_is_exact_across_blocks() {
    // xor eax,eax; mov ecx,10; l: add eax,ecx; dec ecx; jnz l; hlt
    let code = [0x31, 0xc0, 0xb9, 10, 0, 0, 0, 0x01, 0xc8, 0xff, 0xc9, 0x75, 0xfa, 0xf4];
    let mut s = AddressSpace::new(1 << 32).unwrap();
    s.mem.map(GuestAddress(0x1000), 0x1000, Perm::RX).unwrap();
    s.mem.write_raw(GuestAddress(0x1000), &code).unwrap();
    let mut a = Cpu::new();
    a.rip = 0x1000;
    assert_eq!(a.run(&mut s, 1000), Exit::Halt);
    assert_eq!(a.gpr[RAX], 55);
    let mut b = Cpu::new();
    b.rip = 0x1000;
    let mut steps = 0;
    loop {
        match b.run(&mut s, 1) {
            Exit::BudgetExhausted => steps += 1,
            Exit::Halt => break,
            e => panic!("unexpected {e:?}"),
        }
        assert_eq!(b.icount, steps);
    }
    assert_eq!(steps, a.icount);
    assert_eq!((b.gpr, b.rip, b.rflags), (a.gpr, a.rip, a.rflags));
}

/// `cmp`/`test` + `jcc` whose flags are dead after the jump run fused (one
/// op computing the condition from the operands, no flags); with a flag
/// reader after the jump they run apart. Both must take the same branches
/// for every condition, size, form and operand pair, and stepping the fused
/// block one instruction at a time must give the same state.
#[test]
fn fused_compare_and_branch() {
    const VALUES: [u64; 8] = [0, 1, 3, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff, 1 << 63, u64::MAX];
    // (cmp/test rax, rbx | imm32) for each kind and size; the immediate is patched in.
    let forms: [(&str, &[u8]); 8] = [
        ("cmp rax,rbx", &[0x48, 0x39, 0xd8]),
        ("cmp eax,ebx", &[0x39, 0xd8]),
        ("test rax,rbx", &[0x48, 0x85, 0xd8]),
        ("test eax,ebx", &[0x85, 0xd8]),
        ("cmp rax,imm", &[0x48, 0x3d, 0, 0, 0, 0]),
        ("cmp eax,imm", &[0x3d, 0, 0, 0, 0]),
        ("test rax,imm", &[0x48, 0xa9, 0, 0, 0, 0]),
        ("test eax,imm", &[0xa9, 0, 0, 0, 0]),
    ];
    let mut s = AddressSpace::new(1 << 32).unwrap();
    s.mem.map(GuestAddress(0x1000), 0x1000, Perm::RX).unwrap();
    s.mem.map(GuestAddress(0x3000), 0x1000, Perm::RW).unwrap();
    let run = |s: &mut AddressSpace, code: &[u8], a: u64, b: u64, step: bool| -> Cpu {
        s.mem.write_raw(GuestAddress(0x1000), code).unwrap();
        let mut cpu = Cpu::new();
        cpu.rip = 0x1000;
        cpu.gpr[RAX] = a;
        cpu.gpr[RBX] = b;
        cpu.gpr[RSP] = 0x3800;
        if step {
            while cpu.run(s, 1) == Exit::BudgetExhausted {}
        } else {
            assert_eq!(cpu.run(s, 100), Exit::Halt);
        }
        cpu
    };
    let mut checked = 0;
    for (name, form) in forms {
        for cc in 0..16u8 {
            for &a in &VALUES {
                for &b in &VALUES {
                    let mut head = form.to_vec();
                    if form.len() > 3 {
                        let n = head.len();
                        head[n - 4..].copy_from_slice(&(b as u32).to_le_bytes());
                    }
                    // jcc +5 over `mov ecx, 1`, then a flag writer (fused) or a
                    // flag reader (`pushfq; pop rdx`: apart), then hlt.
                    head.extend([0x70 + cc, 5, 0xb9, 1, 0, 0, 0]);
                    let fused = [&head[..], &[0x31, 0xd2, 0xf4]].concat();
                    let apart = [&head[..], &[0x9c, 0x5a, 0xf4]].concat();
                    let f = run(&mut s, &fused, a, b, false);
                    let p = run(&mut s, &apart, a, b, false);
                    let stepped = run(&mut s, &fused, a, b, true);
                    let what = format!("{name} a={a:#x} b={b:#x} cc={cc}");
                    assert_eq!(f.gpr[RCX], p.gpr[RCX], "{what}: fused and plain branches differ");
                    assert_eq!((stepped.gpr, stepped.rip), (f.gpr, f.rip), "{what}: stepping differs");
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 8 * 16 * 64);
}

/// Issue 22: a jump to any address, including `u64::MAX` (once the code
/// cache's empty-slot key) and the small addresses empty slots are keyed
/// with now, is a clean execute fault, never a hit on an empty cache slot.
#[test]
fn jump_to_any_address_is_an_execute_fault() {
    let run = |code: &[u8], rax: u64| {
        let mut s = AddressSpace::new(1 << 32).unwrap();
        s.mem.map(GuestAddress(0x2000), 0x1000, Perm::RX).unwrap();
        s.mem.map(GuestAddress(0x10000), 0x1000, Perm::RW).unwrap();
        s.mem.write_raw(GuestAddress(0x2000), code).unwrap();
        let mut cpu = Cpu::new();
        let mut exits = Vec::new();
        // Twice: the second run meets whatever the first left in the cache.
        for _ in 0..2 {
            cpu.rip = 0x2000;
            cpu.gpr[RAX] = rax;
            cpu.gpr[RSP] = 0x10800;
            exits.push(cpu.run(&mut s, 100));
        }
        exits
    };
    let fault = |addr| Exit::PageFault { addr, access: Access::Execute };
    // push -1; ret  and  xor rax,rax; dec rax; jmp rax: the reproductions from the issue.
    assert_eq!(run(&[0x6a, 0xff, 0xc3], 0), [fault(u64::MAX); 2]);
    assert_eq!(run(&[0x48, 0x31, 0xc0, 0x48, 0xff, 0xc8, 0xff, 0xe0], 0), [fault(u64::MAX); 2]);
    let mut targets = vec![u64::MAX - 1, 1 << 63, 1 << 47, 0xfff, 0x1000];
    targets.extend((0..4096).step_by(97));
    for target in targets {
        assert_eq!(run(&[0xff, 0xe0], target), [fault(target); 2], "jmp rax to {target:#x}");
    }
}
