//! `emu`: a user-mode x86-64 interpreter with typed exits.
//!
//! Design in brief (each module opens with its own note):
//! - [`memory`]: one linear host reservation per address space plus a
//!   permission byte per page; every guest access is bounds- and
//!   permission-checked, faults become [`Exit::PageFault`].
//! - `block`: guest code is decoded once (iced-x86) into basic blocks of
//!   pre-selected handlers, kept coherent with self-modifying code; `shared`
//!   lets the guests of one run reuse each other's blocks ([`SharedCode`]).
//! - [`cpuid`]: the CPU a guest sees ([`CpuModel`]): `cpuid` leaves and which
//!   instructions decode.
//! - `jit`: hot blocks translated to host code ([`Tier::Jit`]), observably
//!   identical to the interpreter.
//! - `exec`: the one hot loop, [`Cpu::run`], with an exact instruction budget;
//!   traps leave it on a cold path as a typed [`Exit`].
//!
//! emu knows nothing about processes or system calls: it stops and reports,
//! and the caller (the guest kernel, a test, a tool) decides what happens.
//!
//! ```
//! use emu::{AddressSpace, Cpu, Exit, Gate, GuestAddress, Perm};
//!
//! let mut space = AddressSpace::new(1 << 32).unwrap();
//! space.mem.map(GuestAddress(0x1000), 0x1000, Perm::RX).unwrap();
//! // mov eax, 20 ; add rax, rdi ; syscall
//! let code = [0xb8, 20, 0, 0, 0, 0x48, 0x01, 0xf8, 0x0f, 0x05];
//! space.mem.write_raw(GuestAddress(0x1000), &code).unwrap();
//! let mut cpu = Cpu::new();
//! cpu.rip = 0x1000;
//! cpu.gpr[emu::reg::RDI] = 22;
//! assert_eq!(cpu.run(&mut space, 1_000), Exit::Syscall(Gate::Syscall));
//! assert_eq!(cpu.gpr[emu::reg::RAX], 42);
//! assert_eq!(cpu.rip, 0x100a);
//! assert_eq!(cpu.icount, 3);
//! ```

mod block;
pub mod cpu;
pub mod cpuid;
mod exec;
mod jit;
pub mod memory;
mod shared;
pub mod x87;

pub use cpu::{flags, reg, Cpu, MXCSR_DEFAULT};
pub use cpuid::CpuModel;
pub use exec::{AddressSpace, Exit, Gate};
pub use jit::{write_perf_map, JitStats, Tier};
pub use memory::{Access, GuestAddress, MemError, Memory, Perm, WatchHit, PAGE_SIZE};
pub use shared::{SharedCode, SharedCodeGuard, SharedCodeStats};
pub use x87::X87State;
