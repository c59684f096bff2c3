//! Debugger breakpoints (`AddressSpace::set_breakpoint`): the thread stops before the
//! instruction, guest memory is untouched, and stepping over one runs it exactly once.

use emu::{flags, reg, AddressSpace, Cpu, Exit, GuestAddress, Perm};

/// mov eax, 1 ; add eax, 2 ; add eax, 3 ; hlt
const CODE: [u8; 10] = [0xb8, 1, 0, 0, 0, 0x83, 0xc0, 2, 0x83, 0xc0];
const TAIL: [u8; 4] = [3, 0xf4, 0x90, 0x90];

fn setup() -> (AddressSpace, Cpu) {
    let mut space = AddressSpace::new(1 << 24).unwrap();
    space.mem.map(GuestAddress(0x1000), 0x1000, Perm::RX).unwrap();
    space.mem.write_raw(GuestAddress(0x1000), &[&CODE[..], &TAIL[..]].concat()).unwrap();
    let mut cpu = Cpu::new();
    cpu.rip = 0x1000;
    (space, cpu)
}

#[test]
fn stops_before_the_instruction_and_steps_over_it_once() {
    let (mut space, mut cpu) = setup();
    // Decode the whole block first: setting a breakpoint must split cached code too.
    assert_eq!(cpu.run(&mut space, 1), Exit::BudgetExhausted);
    cpu.rip = 0x1000;
    cpu.icount = 0;
    space.set_breakpoint(0x1005);
    assert_eq!(cpu.run(&mut space, 100), Exit::DebugBreak);
    assert_eq!((cpu.rip, cpu.icount, cpu.gpr[reg::RAX]), (0x1005, 1, 1));
    // Running again stops again: the instruction has not run.
    assert_eq!(cpu.run(&mut space, 100), Exit::DebugBreak);
    assert_eq!((cpu.rip, cpu.icount), (0x1005, 1));
    // Guest-visible memory is unchanged.
    let mut bytes = [0u8; 3];
    space.mem.read_raw(GuestAddress(0x1005), &mut bytes).unwrap();
    assert_eq!(bytes, [0x83, 0xc0, 2]);
    assert_eq!(cpu.step_over_breakpoint(&mut space), Exit::BudgetExhausted);
    assert_eq!((cpu.rip, cpu.icount, cpu.gpr[reg::RAX]), (0x1008, 2, 3));
    assert!(space.has_breakpoint(0x1005));
    assert_eq!(cpu.run(&mut space, 100), Exit::Halt);
    assert_eq!(cpu.gpr[reg::RAX], 6);
    // Removed, it no longer stops.
    space.remove_breakpoint(0x1005);
    cpu.rip = 0x1000;
    assert_eq!(cpu.run(&mut space, 100), Exit::Halt);
}

#[test]
fn budget_counts_are_unchanged_by_breakpoints_elsewhere() {
    let (mut space, mut cpu) = setup();
    space.set_breakpoint(0x1008);
    assert_eq!(cpu.run(&mut space, 1), Exit::BudgetExhausted);
    assert_eq!(cpu.run(&mut space, 100), Exit::DebugBreak);
    assert_eq!((cpu.rip, cpu.icount), (0x1008, 2));
}

#[test]
fn flags_are_exact_after_each_step_when_debugged() {
    // cmp eax, 5 ; xor ecx, ecx (overwrites the flags cmp set) ; hlt
    let code = [0x83, 0xf8, 5, 0x31, 0xc9, 0xf4];
    let mut space = AddressSpace::new(1 << 24).unwrap();
    space.mem.map(GuestAddress(0x1000), 0x1000, Perm::RX).unwrap();
    space.mem.write_raw(GuestAddress(0x1000), &code).unwrap();
    space.set_debugged(true);
    let mut cpu = Cpu::new();
    cpu.rip = 0x1000;
    cpu.gpr[reg::RAX] = 5;
    assert_eq!(cpu.run(&mut space, 1), Exit::BudgetExhausted);
    assert_ne!(cpu.rflags & flags::ZF, 0, "cmp's ZF is visible after one step");
}
