//! The translation tier: hot blocks re-encoded as host code.
//!
//! Guest and host share the ISA, so most integer instructions run as themselves: the
//! emitter (`emit`) takes each decoded guest instruction of a block, renames its guest
//! registers to host registers and re-encodes it with iced-x86 (instructions collected with
//! its `CodeAssembler`, encoded once each by `emit::encode`, not its `BlockEncoder`). Guest
//! registers live in the `Cpu` (the context block) between blocks and are cached in host
//! registers within one: the first use in a block loads a register, later uses find it
//! in its host register, writes only mark it changed, and the changed ones are stored
//! at each exit (the exit paths of failed access checks store the ones changed up to
//! there). Guest `rax`..`r11` (`emit::POOL`) stay in the same host register, so implicit
//! operands (`cl` of shifts, `rdx:rax` of `mul`) need no rewriting; `rbx`, `rsp`, `rbp`
//! and `r12`..`r15` borrow a free one of those. Guest `xmm` registers are cached the
//! same way in the same host `xmm` registers, for the legacy SSE instructions on
//! integers, bits and moves (`emit::sse_plain`: no MXCSR, no flags; a 16-byte operand
//! that must be aligned is checked and sent to the interpreter, which raises the #GP,
//! when it is not) and for legacy SSE floating point (`emit::sse_fp`: scalar and packed
//! arithmetic, conversions, compares): a run of those executes under the guest's MXCSR
//! loaded into the host's (`Emitter::fp_enter`, when the guest masks every exception and
//! sets no reserved bit, else the code leaves for the interpreter), so rounding, FTZ,
//! DAZ and the sticky exception flags are the interpreter's (`exec::sse::fp_run` runs
//! the same host instructions, exceptions masked); the guest's MXCSR then stays in the
//! host's across block exits (a flag in the frame, `FP_ON`, tells a later run it is
//! there) until the `leave` stub, every way back to the run loop, or a `run_op` call
//! (`fp_leave`) stores it to `Cpu::mxcsr` and gives the host its own back. The upper halves of the guest's `ymm`
//! registers (bits 255:128, `Cpu::ymm_hi`, apart from `Cpu::xmm`) join them when the
//! host has AVX2 (`is_x86_feature_detected!`, else VEX forms go to `run_op`), for the
//! VEX (AVX, AVX2) instructions on integers, bits and moves (`emit::avx_plain`: those
//! of glibc's string and memory functions and their kin) and on floating point (AVX,
//! FMA: `emit::avx_fp`, in the MXCSR runs of legacy SSE's): a guest register is loaded
//! as far as an instruction reads it (bits 127:0, then bits 255:128 with `vinserti128`
//! when a 256-bit operand reads them), and each half that changed is stored at the
//! places the `xmm` registers are (exits, before `run_op` calls, failed access checks;
//! the upper one with `vextracti128`). A VEX destination is written whole (a 128-bit
//! result zeroes bits 255:128: a change of the upper half too), a legacy SSE one keeps
//! the host's upper half, which is the guest's. The guest's `vzeroupper` is the host's,
//! plus a store of the zeroed upper halves of the registers not cached. 32-byte
//! accesses are checked as the others (inside one page, permissions); only the aligned
//! VEX moves (`vmovdqa`, `vmovaps`, ...) test alignment, to the operand's size, and
//! leave for the interpreter (its #GP) when misaligned. Once a block ran a 256-bit
//! instruction its code issues `vzeroupper` before anything leaves it (exits, `run_op`
//! calls, failed checks: Rust code and the next block start with clean upper halves,
//! as the ABI expects; on Intel CPUs before Ice Lake legacy SSE code after dirty upper
//! halves pays a state transition or a false dependency). Measured on this host (AMD
//! EPYC, which has neither penalty), without those `vzeroupper`s the shell loop and
//! `mem` ran within the noise of the runs with them (sh 4.98 s and 3.71 s against
//! 6.44 s and 3.64 s, `mem` 73 and 56 ms against 79 and 71 ms, load average 8): kept
//! for the hosts that have the penalty. The host's status flags after an `add`
//! are the guest's; they stay in the host flags between instructions and go back to
//! `Cpu::rflags` before anything that may leave or clobber them (an access check, the
//! block's end) when a later instruction or the block's successors may read them (the
//! block's own backward liveness, seeded with `Block::live_out`, the interpreter's).
//!
//! What stays exactly the interpreter's (the interpreter remains the reference):
//! - Counts: a translated block runs only when the remaining budget covers every
//!   instruction it may execute: the run loop checks before entering, and each block's
//!   code starts by comparing its instruction count with the budget left (kept in `r14`,
//!   less each block's count at its exit), leaving for the run loop when it is short;
//!   the run loop adds the number of instructions that completed.
//! - Chaining: the translator's table of translated blocks has four slots per set (the
//!   most recently entered block first), found by a hash of the guest address. A direct
//!   exit (a `jmp`, either side of a `jcc`, `loop` or `jrcxz`, a `call`, the
//!   fall-through) compares its target with the slots of the target's set (whose
//!   address is known when translating) and jumps through the matching one, else
//!   returns to the run loop; indirect exits (`ret`, `jmp`/`call` through a register or
//!   checked memory operand) go through the shared `chain` stub, which computes the
//!   set. (A direct-mapped table of 4096 slots sent 5 % of the shell loop's block exits
//!   back to the run loop through collisions, 15.7 million times in one run: 13 % of its
//!   time in the run loop and the code cache's lookup; with two slots per set, two sets
//!   of three hot blocks each still did 590,000 times, 6 per round, against fewer than
//!   16,400 with four slots in half as many sets, most of them the ends of the
//!   scheduler's time slices.) Once the target is translated, a direct exit is linked:
//!   `Jit::link` overwrites the first instruction of its lookup (`mov rax, target`)
//!   with a `jmp` to the target's code (the page writable, not executable, meanwhile),
//!   whose entry checks the budget as after a lookup. The run loop (re)enters a
//!   block's table entry each time it runs it; the code cache reports every block it
//!   drops (`CodeCache::dropped`) and `Jit::unlink` empties its entry and writes the
//!   `mov` back at every exit linked to it before any translated code runs again, so
//!   code never jumps to a dropped block's translation (a block is dropped with the
//!   blocks that peeked at its page for liveness, not with those that jump to them).
//!   Nothing else happens between blocks in the run loop that chaining skips: guest
//!   writes to pages holding decoded code never complete in re-encoded code (the access
//!   check sends them to the interpreter), and translated code leaves at once after an
//!   interpreter handler it called made one (`run_op`), so `dirty_code` stays empty while
//!   translated code runs.
//! - Loops through several blocks (`unit`): a block whose direct exits lead back to it
//!   through at most three other decoded blocks on its own code pages is translated
//!   with them as one unit that loops inside its own code, as a single block ending
//!   with a branch to its start does (`emit::Head`: registers kept in host registers
//!   across rounds, the budget checked at the back edge, which may be either side of
//!   the last `jcc`); the parts' `jcc`s become side exits, each storing the changed
//!   registers and the flags on its own path. The entry's budget check covers the whole
//!   unit, so where the budget covers the first block but not the unit the code leaves
//!   at once for the interpreter, which runs the first block. Every status flag counts
//!   as read at a unit's exits (the parts' `live_out` look-ahead may have read pages the
//!   unit's first block does not depend on), and its back edge stores only those its
//!   head reads: a fault in a later round may show a dead flag of an earlier round where
//!   the interpreter shows another instruction's (both are exact where a successor
//!   reads them, as the fuzz target checks). Measured (`work mem 800`, CPU seconds,
//!   alternated runs): 0.38, 0.38 before, 0.31, 0.31 after (native 0.23); `gzip`'s
//!   `longest_match` chain walk (three blocks) and `crc32` (two) became units with no
//!   gain beyond the noise (their loops wait on loads); `int`, `sha256`, `fp`, sh and
//!   awk unchanged.
//! - Faults and slow paths: every guest access of re-encoded code is checked in the
//!   generated code with `Memory::try_read`/`try_write`'s own tests (`addr < limit`,
//!   `READ`, or `WRITE` without `CODE`, for the page of its first byte and, when it
//!   crosses a page edge, of its last: the host's access then reads and writes the
//!   bytes the interpreter's slow path would). The code tests one bit of a second byte
//!   `Memory` keeps beside each page's permission byte (`memory::OK_READ`...: the
//!   tests' results for the page, and for the page and the next one together): for an
//!   access of more than a byte, the pair's bit inline, and only when it is clear the
//!   page-crossing test and the page's own bit out of line; at `rsp` and `rbp` (the
//!   top page of the stack has no next page: every access there went out of line,
//!   `gzip` took 4 % more CPU) the page-crossing test inline and the last byte's page
//!   out of line. Anything else (a fault, a write to a page holding decoded code, a
//!   copy-on-write page) leaves the block *before* the instruction changed anything,
//!   and the interpreter runs that instruction and the rest of its block. (`rep_string`
//!   alone still leaves at a crossing element.) So faults, `rip` and self-modifying-code invalidation come from the
//!   interpreter's own paths. What keeps the guest inside its space is that check: a host
//!   access is made only at `base + addr` with `addr + size <= limit`, inside the data
//!   mapping (the guard zone after it stays as a second line); instructions run through
//!   `run_op` access memory through `Memory`'s own checked paths. Accesses of one block
//!   at one guest register, or one base and one index register and scale, plus
//!   displacements (`emit::Key`; its pushes and pops at `rsp` too, which move it by
//!   known amounts, and the push of a `call` or the pop of a `ret` that ends the block)
//!   are checked once, at the first of them, as one range of at most a
//!   page (`Emitter::plan_access`, `group_check`), as one access of the group's span
//!   (the limit, the pages of its first and last bytes, as above: one pair bit where
//!   they do not end the stack or a mapping), for every access the group makes (reads,
//!   writes); the others then access `base + register + displacement` unchecked, or
//!   `base + ADDR` after one `lea` of the address for those with an index (no third
//!   register in an address) and those that must be aligned (their alignment tested
//!   there, leaving before them for the interpreter's #GP). A group ends where one of
//!   its registers changes otherwise (an indexed one at `rsp` at any push or pop), and
//!   at anything but re-encoded instructions and pushes and pops (`run_op` calls,
//!   branches...); within a block nothing narrows a page's permissions (system calls
//!   and code-cache builds end it), so each access is still allowed by the table when
//!   it is made. A failed group check leaves before the group's first access, and the
//!   interpreter makes each of them on its own (crossing a page between two allowed
//!   ones is allowed: the host's access reads and writes the same bytes).
//! - Coverage: besides re-encoded instructions, the emitter writes its own code for those
//!   whose interpreter semantics the host instruction does not give by itself: `bsf`/`bsr`
//!   (destination kept and other flags kept on a zero source, flags cleared otherwise),
//!   bit tests of memory at a register offset (`Emitter::bt_at_register_offset`: the
//!   word the signed offset picks, checked, then the host's test of a bit within it),
//!   `rep stos`/`rep movs` (`Emitter::rep_string`: the host's `rep` one checked page at a
//!   time, the interpreter's for the rest of the string once a check fails), `loope`/
//!   `loopne`, `div`/`idiv` (`Emitter::div`: the host's, after checks that leave for the
//!   interpreter before it wherever it could raise #DE, so the interpreter raises it;
//!   flags kept, as the interpreter keeps them; a loop of `div` and six other
//!   instructions, under callgrind: 249 host instructions an iteration with `div`
//!   through `run_op`, 37 with it translated, 395 in the interpreter). An instruction
//!   the emitter does not cover (masked moves and gathers, `vzeroall`, x87, `cmpxchg`
//!   to a register, other string instructions, undefined flags that are read, ...)
//!   becomes a call of its interpreter handler
//!   (`run_op`) with the cached registers
//!   stored first, unless it could tell the tiers apart or leave the block (control
//!   transfers, system calls and other exits of the loop, `popf`, `rdtsc`, the compare
//!   of a fused compare-and-branch); a trap in the handler leaves before the instruction
//!   and the interpreter runs it again to the same trap. A block is translated up to
//!   its first instruction neither covers (32-bit `loop`/`jecxz`, far transfers,
//!   `syscall`...);
//!   the translated prefix then leaves and the interpreter carries on from there. A
//!   block is translated once it ran `HOT` times (`AddressSpace::set_jit_threshold`
//!   changes that, for the differential fuzz target). Blocks on writable pages are
//!   translated too (a JIT's code, as `node`'s V8 keeps it on pages both writable and
//!   executable): a write to a page holding decoded code never completes in translated
//!   code (its check fails: the interpreter makes it), and the code cache then drops the
//!   page's blocks with their translations, as for any code page written. Refusing them
//!   left V8's compiled loops to the interpreter: `node -e` of a 3·10^7-round loop took
//!   6.5 s, 2.6 s with them translated (qemu-x86_64 1.6 s, native 0.2 s), 1.0 s once
//!   such blocks were as long as elsewhere (they had been one instruction long, so that
//!   a store to the next instruction took effect; `Block::watch` now has the interpreter
//!   look for a write to decoded code after each of their instructions).
//! - Invalidation: a translation belongs to its code-cache block and dies with it (the
//!   cache drops blocks when their pages are written, unmapped or re-protected); the ops
//!   `run_op` calls are that block's.
//!
//! Checked against the interpreter by `tests/jit.rs` and the `jit` fuzz target (random
//! instruction sequences, the complete state after every exit), and against the host
//! CPU by `tests/difftest.rs`, whose every case also runs translated from its first
//! execution.
//!
//! Cost of translating: the emitter collects a block's host instructions with iced's
//! `CodeAssembler` and `emit::encode` encodes each once where it lands (every branch to a
//! label in its `rel32` form, forward ones patched), taking the bytes of an instruction
//! that encodes the same anywhere from `emit::Memo` (kept across blocks: the checks,
//! loads, stores and exits recur). iced's `BlockEncoder` built an object per instruction
//! and encoded each two or three times; under callgrind (dev profile, `emu`'s `jit`
//! tests) a block cost about 186,000 instructions to translate before, 106,000 after,
//! and a new arena's chaining table is written once instead of twice. The arena stays
//! W^X: its pages (shared anonymous memory of its own) are mapped twice, executable and
//! not writable where code runs, writable and not executable where `install` and `patch`
//! write (`Arena`); nothing else maps them. Switching one mapping's pages with
//! `mprotect` for each block and each link instead made a compiler's run (`gcc -O2 -S`,
//! whose `cc1` has 64,403 blocks translated) spend a third of its time in `mprotect`:
//! 3.51–3.58 s before, 2.11–2.14 s after, and 1.49–1.50 s with the arena at 32 MiB
//! instead of 16 (it had filled, and been emptied, three times; peak RSS 162 MB before,
//! 195 MB after, 137 MB under the interpreter alone, which took 2.5 s).
//!
//! Status flags: at an exit the translated code leaves every status flag a successor may
//! read as the architecture defines it; one nobody reads may hold an older value, as
//! under the interpreter's dead-flag elimination, or whatever the host's flags held
//! (an instruction that keeps some flags, `inc` keeping CF, runs without the guest's
//! flags loaded into the host's when the kept ones are dead: `popf` cost more than 2 %
//! of the shell loop); both tiers are exact at system calls and at every other exit of
//! the loop. As for the interpreter, the one place a dead flag can show is a fault
//! between the skipped store and the instruction that overwrites it. Where the host's
//! flags do not hold the guest's (after an access check), `popf` of `Cpu::rflags` is
//! avoided where one flag is enough: an instruction that needs CF alone (`inc`/`dec`
//! keeping a live CF, `adc`, `setc`) gets it with `bt` of `Cpu::rflags` (the host's other
//! flags are then not the guest's, and are claimed only when the instruction writes all
//! of them or they are dead), and a `jcc` on one flag tests its bit in `Cpu::rflags`
//! (`Emitter::load_cf`, `one_flag`). The host's flags go to `Cpu::rflags` whole
//! (`Emitter::store_flags`: `pushf`, then `pop` to it), never by a merge in place nor
//! by bytes: each block stores them at its end (a `ret` counts them all as read), and a
//! merge made each store wait for the one before it through memory, and byte writes
//! (`lahf`) stalled the next block's 8-byte read of them (store forwarding): together
//! about a third of the awk loop's samples (step H). So while translated code runs,
//! `Cpu::rflags` holds the host's flags other than the status ones (DF clear, IF
//! set...); the frame keeps the guest's (`FLAGS_REST`, read at entry and after each
//! `run_op` call, the only code of a run that may change them: `cld`, `std`), which
//! translated code reads for DF, and which replace the host's before anything else sees
//! `Cpu::rflags` (the `leave` stub every way out goes through, `call_op` before the
//! handler runs). Flags are stored at a block's end only where a successor may read
//! them (`Block::live_out`, which looks ahead through up to two direct `jmp`s or
//! `call`s: a `je` falling through to a `jmp` back to a loop's head stored them every
//! round, step H);
//! every flag counts as read after a `ret` or other indirect exit. A bit test, `tzcnt` or `lzcnt` whose flags the
//! manuals leave undefined may be read runs as the host's, its defined flags then
//! merged into `Cpu::rflags` with the others as the interpreter leaves them (kept after
//! bit tests, cleared after the counts: `Emitter::undefined_as_interpreter`); they went
//! to `run_op`. Together (step F, see `benches/compare/RESULTS.md`) they took the awk
//! loop from at least 50.3 million `run_op` calls per run to the start-up's 5 `cpuid`s,
//! and its `popf`s before `bt`, `jb` and `dec` (37 % less CPU time).
//!
//! Measured: `benches/compare/RESULTS.md` holds every table of `cargo bench --bench
//! compare` taken for this tier (each from one run, both tiers, qemu-x86_64 and native)
//! and the profiles that chose each step. In short: design A (registers loaded and
//! stored around every instruction, every exit through a hashed lookup) then B
//! (registers cached across a block, flag liveness, uncovered instructions through
//! `run_op`) then C (now: SSE floating point re-encoded, a two-way chaining table, the
//! budget in a register and checked at block entry). Profiles of the shell loop under C
//! put about 55 % of its time in translated code (block exits: the set lookup, flag
//! stores and `popf` loads where a block reads the flags its predecessor left), about
//! 10 % in handlers `run_op` calls (AVX2 string functions of glibc: `vpbroadcastb`,
//! `vpmovmskb`, `vmovdqu`, `vzeroupper`; `pcmpistri`; bit scans and tests; `cmpxchg`;
//! `rep stos`), and the awk loop about a quarter in `run_op` handlers (`bt`, generic
//! `alu`/`movzx` forms, `rep stos` of busybox's `xzalloc`). Counted by address (a
//! temporary counter in `run_op`; `JitStats::handled` has the total), the awk loop's were `bt` of memory at an immediate
//! offset (79 million in one run), `or`/`xor ah, imm` and `movzx eax, ah` (41 million:
//! high byte registers were not renamed) and `rep stosb` (10 million); since then D
//! re-encodes those (bit tests, `tzcnt`/`lzcnt`, `cmpxchg` to memory, `ah`/`ch`/`dh`),
//! emits its own code for `bsf`/`bsr`, `rep stos`/`movs` and `loope`/`loopne`. E
//! re-encodes the VEX integer and move forms with `ymm` registers cached (above) and
//! the SSE4.2 string compares (`pcmpistri`...): counted by mnemonic in `run_op` (a
//! temporary counter), the shell loop handed it 22.0 million instructions per run
//! before (17 million VEX: `vpcmpeqb` 3.9, `vpmovmskb` 2.3, `vzeroupper` and `vpxor`
//! 2.2 each, `vmovdqu` 1.7, `vmovd` and `vpbroadcastb` 1.6 each, `vpor` 1.5; and
//! `pcmpistri` 3.3), 1.8 million after (`bt` of memory at a register offset 0.9,
//! `tzcnt` whose undefined flags may be read 0.4, `div` 0.4, `blsmsk` 0.1); `mem` (glibc's AVX2
//! `memcmp`: `vmovdqu`, `vpcmpeqb`, `vmovdqa`, `vpand`, `vpmovmskb`) 5.25 million
//! before, none after; see `benches/compare/RESULTS.md` for the times. Then the VEX
//! floating-point forms and FMA (none in the bench's workloads: in `emu`'s difftest the
//! AVX cases that ran an instruction through `run_op` went from 6,864 of 20,280 to
//! 1,664, FMA's from all 4,992 to none) and BMI's `blsr`/`blsmsk`/`blsi`/`bzhi`/
//! `pdep`/`pext` (the shell loop's 0.1 million `blsmsk`); then bit tests of memory at a
//! register offset, which the same counter found 54.0 million times per run of the awk
//! loop (all but 39 of what it handed `run_op`) and 0.9 million of the shell loop.
//!
//! Step G (the `gzip | gunzip | md5sum` row, the one where qemu-x86_64 was ahead):
//! profiled, `gzip` spent 95 % of its samples in translated code, 36 % of them in
//! access checks, 27 % in block exits, the chaining stub and entries; with no checks
//! at all (an unsafe experiment) it took 27 % less CPU, `gunzip` 43 % less. Group
//! checks, then linked direct exits, took `gzip` from 1.73-1.85 s of CPU to 1.50-1.56
//! s, `gunzip` from 0.70-0.72 s to 0.49-0.54 s (qemu-x86_64: 1.49 s and 0.49 s),
//! 0.47-0.48 s once shifts of registers whose undefined flags may be read ran
//! translated (`Emitter::shift_as_interpreter`: 1.03 million `run_op` calls per run);
//! storing flags with `lahf` instead of `pushf` changed nothing measurable. Warden
//! runs the three programs of the pipeline on one host thread, qemu-x86_64 and the
//! native run on both cores: see `benches/compare/RESULTS.md`.
//!
//! Step H, access checks (`gzip`, `gunzip`, `work mem`): measured with parts of the
//! check left out (unsafe experiments), the permission test cost `gzip` about 8 % of
//! its CPU, the page-crossing test 4 %, the limit, crossing and permission tests
//! together 15 %. Group checks keyed by a base and an index register, aligned accesses
//! in groups, accesses across a page edge run translated (`mem`'s `memmove` and
//! `memcmp` of misaligned data left 12 % of its samples to the interpreter), one
//! precomputed bit per test (the page and the next one's together inline), and group
//! checks as one access of their span took `gzip` from 1.36-1.42 s of CPU to
//! 1.24-1.26 s (with the flag stores of the other step-H change), `gunzip` from
//! 0.44-0.46 s to 0.40 s, `mem 400` from 0.23-0.25 s to 0.20-0.22 s; the pushes of
//! calls and pops of returns in groups took the awk loop from 1.39-1.41 s to
//! 1.33-1.36 s.
//!
//! Step I, self-looping blocks (`work fp`'s Newton loop, `movapd; divsd; addsd; mulsd;
//! sub; jne` to its own start, and the like in `work int`, `sha256`, `md5sum`, `gzip`):
//! a block whose direct exit goes to its own start loops inside its code
//! (`emit::Head`). Its back edge takes the round off the budget and checks the budget
//! as the entry does (short: out to the run loop for the block's start, so counts and
//! preemption points are those of a linked exit to itself), then jumps to an inner
//! head after the entry's work: the guest registers the block uses are loaded before
//! the head (those outside `POOL` into `POOL` registers the block does not use) and stay
//! in host registers across rounds, counted as changed at every way out (a failed check
//! or a fault in a later round stores them; a vector register a VEX instruction uses
//! both halves, `ymm` whole); the flags a linked exit would store are
//! stored before the budget's test (which clobbers the host's). Each round had paid
//! the entry's budget check, the loads and stores of its registers through `Cpu` (a
//! store-to-load round trip on `divsd`'s latency chain), `ldmxcsr`/`stmxcsr` and the
//! linked jump: `work fp 80` took 0.31-0.34 s of CPU before, 0.21-0.24 s after. With
//! the guest's MXCSR also kept across block exits (`FP_ON`: the Newton loop runs 6
//! rounds per entry, and its two neighbour blocks paid `ldmxcsr`, `stmxcsr`,
//! `ldmxcsr` each) 0.08-0.09 s (native 0.07 s; `fp 400` 1.54 s before both, 0.42 s
//! after, native 0.36 s); `work int 400` 0.25-0.26 s to 0.23 s; `work mem 400` (glibc's
//! backward `memmove` loop: four `vmovdqu` loads, four `vmovdqa` stores, whose eight
//! stores of `ymm` halves to `Cpu` each round went) 0.22-0.23 s to 0.19-0.20 s (native
//! 0.12 s); `sha256`, `md5sum`,
//! `gzip`, `gunzip` and the sh and awk loops within the noise (their self-loops' time
//! goes to access checks at registers each round advances: see
//! `benches/compare/RESULTS.md`).
//!
//! Not done yet (see issue 17): VEX masked moves, gathers and `vzeroall`, F16C, VEX
//! AES-NI, `rep` string instructions other than forward `stos`/`movs`, shifts of
//! memory or 8- and 16-bit registers whose undefined flags may be read, rotates (all
//! through `run_op`); a return-address prediction (host
//! `call`/`ret` pairs; returns share `chain`'s indirect jump; a copy of `chain`'s
//! lookup at each indirect exit, so that the host predicts each `jmp` apart, measured
//! no faster on the shell loop, 1.01-1.03 s of CPU against 0.98-1.03 s, and was not
//! kept; nor a cache of the last target at each indirect exit, which took `gzip`'s
//! lookups in `chain` from 49.7 to 6.4 million but its CPU time by 1 % at most); fewer
//! checks for accesses alone in their block (an indexed one into a table at a bounded
//! index, a constant address: each checked alone) and checks that do not clobber the
//! host's flags (flag stores before them); guest registers kept in host registers across linked blocks (loads and
//! stores at block edges: 10 % of `gzip`'s samples); loading all the guest's flags
//! without `popf` (where more than CF or one flag is needed);
//! access checks hoisted out of self-loops (a group at registers the loop does not
//! change, checked once before the head: built and tested, `gzip` within the noise,
//! not kept; the other hot self-loops access memory at registers each round
//! advances); self-loops ending in `loop`/`jrcxz`;
//! a code-size limit with eviction other than flushing; a threshold other than 16
//! executions for short-lived guests; dynasm-rs or Cranelift (not measured).

mod emit;
mod perf_map;

pub use perf_map::write_perf_map;

use std::cell::Cell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::block::{Block, CodeCache};
use crate::cpu::Cpu;
use crate::exec::Op;
use crate::memory::Memory;

/// Runs `op` with the interpreter's handler for translated code (see `emit`'s
/// `call_op`): 0 when it completed; 1 when it trapped (the code leaves before it and the
/// interpreter runs it again, from the state the handler left, to the same trap); 2 when
/// it completed and wrote to a page holding decoded code (the code leaves after it, so
/// the run loop drops the stale blocks before anything else runs).
///
/// # Safety
/// `cpu` and `op` are valid and `env` is the `Env` of the running `Jit::run`, whose
/// `mem` is the run's `&mut Memory`, not otherwise accessed meanwhile.
unsafe extern "sysv64" fn run_op(cpu: *mut Cpu, env: *mut Env, op: *const Op) -> u64 {
    // SAFETY: as the function's contract says; translated code calls it only there.
    let (cpu, env, op) = unsafe { (&mut *cpu, &mut *env, &*op) };
    env.handled += 1;
    // SAFETY: `env.mem` is the run's `&mut Memory` (the contract).
    let mem = unsafe { &mut *env.mem };
    match (op.exec)(cpu, mem, op) {
        Err(_) => 1,
        Ok(()) if !mem.dirty_code.is_empty() => 2,
        Ok(()) => 0,
    }
}

/// Which tier runs hot guest code.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Hash)]
pub enum Tier {
    /// The interpreter only.
    Interp,
    /// Hot blocks are translated to host code.
    #[default]
    Jit,
}

impl std::fmt::Display for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Tier::Interp => "interp",
            Tier::Jit => "jit",
        })
    }
}

impl std::str::FromStr for Tier {
    type Err = String;
    fn from_str(s: &str) -> Result<Tier, String> {
        match s {
            "interp" => Ok(Tier::Interp),
            "jit" => Ok(Tier::Jit),
            _ => Err(format!("unknown tier {s:?} (expected `jit` or `interp`)")),
        }
    }
}

/// Executions after which a block is translated (the default of `Jit::hot`).
const HOT: u32 = 16;
/// Runs of untranslated blocks a program's space leaves to the interpreter before
/// counting executions at all (`AddressSpace::warm_up_jit`, which the kernel calls for
/// each program when `KernelConfig::jit_warm_up` is on, as in `warden run`; other spaces,
/// as tests make them, count from the first run). A static glibc program's start-up is
/// about 11,000 instructions, some 2,500 block runs, whose loops reached `HOT` and had 60
/// blocks translated that never paid off: with the encoder's one-time set-up, the arena
/// and its table, that was 1 ms of a 5 ms `warden run` of a program that does nothing.
/// A program that goes on loses at most these runs' worth of interpreting (0.1 ms).
pub const WARM_UP: u32 = 4096;
/// Size of the executable arena; when full, every translation is dropped (pages are
/// committed as code lands on them).
const ARENA: usize = 32 << 20;
/// The host's page size, the unit `install` changes protection in.
const PAGE: usize = 4096;
/// At most this many sets are remembered as entered into (`Jit::filled`).
const FILLED_MAX: usize = 1024;
/// Sets of the chaining table (`1 << SET_BITS`), `WAYS` slots each.
const SET_BITS: u32 = 12;
/// Slots of a set. With two, three hot blocks of the shell loop sharing a set (twice)
/// displaced each other at every round: 590,000 returns to the run loop per run.
const WAYS: usize = 4;
/// Size of a `Set` (a power of two: the generated lookup shifts by it).
const SET_BYTES: usize = 64;
/// The multiplier of the table's hash (fits a sign-extended `imul` immediate).
const HASH: i32 = 0x61c8_8647;
/// A block's translation state.
#[derive(Default)]
pub(crate) struct BlockJit {
    hits: Cell<u32>,
    /// Host address of its code and the arena generation it belongs to.
    code: Cell<Option<(usize, u32)>>,
}

/// What translated code needs of `Memory` (see `Memory::jit_view`) and the run, at the
/// `[rsp]` of its frame.
#[repr(C)]
struct Env {
    base: *mut u8,
    perm: *const u8,
    limit: u64,
    /// The instruction budget left (in `r14` while translated code runs): a block runs
    /// only if it covers all of the block's instructions.
    left: u64,
    /// Set when the code left before the end of a block (to the interpreter).
    early: u64,
    /// Blocks entered through `chain` (indirect exits).
    chained: u64,
    /// Instructions run through `run_op`.
    handled: u64,
    /// For `run_op`.
    mem: *mut Memory,
}

/// A slot of the chaining table: a translated block the generated code may jump to.
/// `rip` is the block's guest address; an empty slot holds `empty(its set)`, keyed with an
/// address of another set, so that no address looked up in its own set matches it (with
/// one key for all, `u64::MAX`, a guest jump to that address matched an empty slot and
/// jumped to host address 0: found by the `jit` fuzz target, as issue 22 in the code cache).
/// The key is 0 in every set but `set(0)`'s.
#[repr(C)]
#[derive(Clone, Copy)]
struct Slot {
    rip: u64,
    host: u64,
}

/// A set of the table: the most recently entered block of those hashing to it first.
#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Set([Slot; WAYS]);

/// The empty slot of every set but `set(0)`.
const EMPTY: Slot = Slot { rip: 0, host: 0 };

/// The empty slot of set `s` (see `Slot`).
fn empty(s: usize) -> Slot {
    if s == set(0) {
        Slot { rip: u64::MAX - 1, host: 0 }
    } else {
        EMPTY
    }
}

const _: () = assert!(set(u64::MAX - 1) != set(0));

/// An empty chaining table, written once (it was filled, then emptied set by set, which
/// cost each new address space that translates anything twice 8,192 writes).
fn new_table() -> Box<[Set]> {
    let mut table = vec![Set([EMPTY; WAYS]); 1 << SET_BITS].into_boxed_slice();
    table[set(0)] = Set([empty(set(0)); WAYS]);
    table
}

const _: () = assert!(std::mem::size_of::<Set>() == SET_BYTES);

/// The set of guest address `rip` (as the generated code computes it): bits of the
/// middle of a product, which every bit of the address below bit 40 reaches.
const fn set(rip: u64) -> usize {
    ((rip ^ (rip >> 23)).wrapping_mul(HASH as u64) >> 17) as usize & ((1 << SET_BITS) - 1)
}

/// The signature of `Stubs::enter`.
type Enter = unsafe extern "sysv64" fn(*mut Cpu, *mut Env, usize);

/// Statistics for benches and tests.
#[derive(Clone, Copy, Debug, Default)]
pub struct JitStats {
    pub blocks_translated: u64,
    /// Blocks whose first instruction the translator does not cover.
    pub blocks_refused: u64,
    pub time_translating: Duration,
    pub code_bytes: u64,
    /// Times translated code was entered from the run loop.
    pub entries: u64,
    /// Blocks entered from another block's code (without the run loop).
    pub chained: u64,
    /// Times it left before the end of a block (uncovered instruction or failed access
    /// check).
    pub early_exits: u64,
    /// Instructions translated code ran through the interpreter's handlers (`run_op`).
    pub handled: u64,
    /// Blocks translated as loops inside their own code (a direct exit to their start:
    /// `emit::Head`).
    pub self_loops: u64,
    /// Of those, loops through several blocks translated as one (`unit`).
    pub loop_units: u64,
}

/// What happened between two snapshots (`later - earlier`).
impl std::ops::Sub for JitStats {
    type Output = JitStats;
    fn sub(self, earlier: JitStats) -> JitStats {
        JitStats {
            blocks_translated: self.blocks_translated - earlier.blocks_translated,
            blocks_refused: self.blocks_refused - earlier.blocks_refused,
            time_translating: self.time_translating.saturating_sub(earlier.time_translating),
            code_bytes: self.code_bytes - earlier.code_bytes,
            entries: self.entries - earlier.entries,
            chained: self.chained - earlier.chained,
            early_exits: self.early_exits - earlier.early_exits,
            handled: self.handled - earlier.handled,
            self_loops: self.self_loops - earlier.self_loops,
            loop_units: self.loop_units - earlier.loop_units,
        }
    }
}

/// Where translated code lives: the same pages mapped twice, `exec` (read, execute) where
/// it runs and `write` (read, write) where it is written, so that no mapping is both
/// writable and executable (W^X) and installing or patching code needs no `mprotect`.
/// With one mapping whose pages `install` switched to writable and back, a `gcc -O2 -S`
/// of a small file made 489,470 `mprotect` calls (111,381 blocks translated by `cc1`,
/// and their links), a third of its time.
enum Arena {
    Empty,
    Mapped(DualMap),
}

/// Shared anonymous pages mapped twice (the second mapping made by `mremap` of the first
/// with an old size of 0, which maps the same pages again). Anonymous rather than a
/// `memfd`: `perf` reads `/tmp/perf-PID.map` (`--perf-map`) only for code in anonymous
/// mappings, and shared anonymous ones show as `/dev/zero`, which it counts as such.
struct DualMap {
    exec: std::ptr::NonNull<u8>,
    write: std::ptr::NonNull<u8>,
    len: usize,
}

impl DualMap {
    /// `len` bytes (a multiple of the page size), zero, mapped twice; `None` if the host
    /// refuses.
    fn new(len: usize) -> Option<DualMap> {
        use libc::{MAP_ANONYMOUS, MAP_FAILED, MAP_NORESERVE, MAP_SHARED, PROT_EXEC, PROT_READ, PROT_WRITE};
        // SAFETY: new mappings only (no address given), checked before use; on failure
        // what was mapped is unmapped.
        unsafe {
            // (No commit charge for the whole arena: pages are used as code lands on them.)
            let flags = MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE;
            let write = libc::mmap(std::ptr::null_mut(), len, PROT_READ | PROT_WRITE, flags, -1, 0);
            if write == MAP_FAILED {
                return None;
            }
            let exec = libc::mremap(write, 0, len, libc::MREMAP_MAYMOVE);
            if exec == MAP_FAILED || libc::mprotect(exec, len, PROT_READ | PROT_EXEC) != 0 {
                if exec != MAP_FAILED {
                    libc::munmap(exec, len);
                }
                libc::munmap(write, len);
                return None;
            }
            Some(DualMap {
                exec: std::ptr::NonNull::new(exec.cast())?,
                write: std::ptr::NonNull::new(write.cast())?,
                len,
            })
        }
    }

    /// Where code runs.
    fn exec_ptr(&self) -> *const u8 {
        self.exec.as_ptr()
    }

    /// The pages, to write code into.
    fn write_view(&mut self) -> &mut [u8] {
        // SAFETY: `write` maps `len` readable and writable bytes owned by this value, which
        // `&mut self` borrows exclusively; the other mapping of them is only executed (by
        // translated code, never while this borrow lives: the run loop's thread installs
        // and patches between runs of translated code).
        unsafe { std::slice::from_raw_parts_mut(self.write.as_ptr(), self.len) }
    }
}

impl Drop for DualMap {
    fn drop(&mut self) {
        // SAFETY: both are this value's own mappings of `len` bytes; no code runs there any
        // more (the arena is dropped with its `Jit`, outside translated code).
        unsafe {
            libc::munmap(self.exec.as_ptr().cast(), self.len);
            libc::munmap(self.write.as_ptr().cast(), self.len);
        }
    }
}

/// The translator of one address space.
pub(crate) struct Jit {
    arena: Arena,
    used: usize,
    /// Where translations start (after the stubs).
    first: usize,
    stubs: Option<emit::Stubs>,
    gen: u32,
    /// Translated blocks by guest address, for block exits and `Stubs::chain`.
    table: Box<[Set]>,
    /// The sets entered into since the table was last emptied, up to `FILLED_MAX` (then
    /// `None`: all of them), so emptying it writes only those: the `jit` fuzz target
    /// empties two tables of 256 KiB per input and enters a few blocks.
    filled: Option<Vec<u32>>,
    /// Executions after which a block is translated (`HOT` unless a test changed it).
    pub hot: u32,
    /// Runs of untranslated blocks still left to the interpreter before executions are
    /// counted (see `WARM_UP`).
    pub warm: u32,
    /// What `warm` starts at in this space and in its forks.
    pub warm_up: u32,
    pub stats: JitStats,
    /// Host instructions already encoded (kept across arenas: they encode the same anywhere).
    memo: emit::Memo,
    /// The translated blocks of the current arena still linked (not dropped): guest
    /// address to host entry. Direct exits to them jump there (`link`).
    linked: HashMap<u64, usize>,
    /// The direct exits of the translations in the current arena, by guest target: host
    /// addresses of their `mov rax, target` (see `emit::Translation::sites`).
    sites: HashMap<u64, Vec<usize>>,
}

/// At most this many blocks make a unit (`unit`).
const UNIT_BLOCKS: usize = 4;

/// The blocks a translation of `block` covers: `block` alone, or a loop through it of up
/// to `UNIT_BLOCKS` blocks (`emit::Part`), which runs inside its own code as a block
/// ending with a branch to its own start does (`emit::Head`): guest registers stay in
/// host registers and no budget check, lookup or register store happens between its
/// blocks. In `gzip`'s `longest_match` the chain walk is three blocks (two `jcc`s and a
/// `dec; jne`), in `crc32` two (the test at the top, the body's `jmp` back to it).
///
/// Only blocks already decoded (they ran) whose code lies on the pages of `block`'s own
/// code join it: the code cache drops `block` whenever it drops one of them (a write to
/// those pages, `mprotect`, `munmap`), so its translation, which holds their code and
/// pointers to their ops (`run_op`), never outlives them. The first loop found
/// (depth-first, the taken side of a `jcc` first) is taken.
fn unit<'c>(block: &'c Block, code: &'c CodeCache) -> Vec<emit::Part<'c>> {
    let single = || vec![emit::Part { block, next: None }];
    let pages = [block.start / PAGE as u64, (block.end - 1) / PAGE as u64];
    let fits = |b: &Block| {
        let (first, last) = (b.start / PAGE as u64, (b.end - 1) / PAGE as u64);
        pages.contains(&first) && pages.contains(&last)
    };
    if emit::self_loop(block) || !fits(block) {
        return single();
    }
    let mut path = vec![block];
    if !find_loop(block.start, code, &fits, &mut path) {
        return single();
    }
    let nexts: Vec<Option<u64>> = path.iter().skip(1).map(|b| Some(b.start)).chain([None]).collect();
    path.into_iter().zip(nexts).map(|(block, next)| emit::Part { block, next }).collect()
}

/// Extends `path` (blocks from the unit's head) to a loop back to `head`; false if none
/// is found within `UNIT_BLOCKS` blocks.
fn find_loop<'c>(head: u64, code: &'c CodeCache, fits: &dyn Fn(&Block) -> bool, path: &mut Vec<&'c Block>) -> bool {
    let Some(&last) = path.last() else { return false };
    for next in emit::successors(last).into_iter().flatten() {
        if next == head && path.len() > 1 {
            return true;
        }
        if path.len() == UNIT_BLOCKS || path.iter().any(|b| b.start == next) {
            continue;
        }
        let Some(b) = code.peek(next).filter(|b| fits(b)) else { continue };
        path.push(b);
        if find_loop(head, code, fits, path) {
            return true;
        }
        path.pop();
    }
    false
}

impl Jit {
    pub fn new() -> Jit {
        Jit {
            arena: Arena::Empty,
            used: 0,
            first: 0,
            stubs: None,
            gen: 1,
            table: Vec::new().into_boxed_slice(),
            filled: None,
            hot: HOT,
            warm: 0,
            warm_up: 0,
            stats: JitStats::default(),
            memo: emit::Memo::default(),
            linked: HashMap::new(),
            sites: HashMap::new(),
        }
    }

    /// Makes the translation at `host` of the block at `rip` the first of its set.
    fn enter(&mut self, rip: u64, host: u64) {
        let s = set(rip);
        let Set(ways) = &mut self.table[s];
        if ways[0].rip != rip {
            // Most recent first; the others keep their order, the last one drops out.
            let at = ways.iter().position(|w| w.rip == rip).unwrap_or(WAYS - 1);
            ways[..=at].rotate_right(1);
            ways[0] = Slot { rip, host };
            if let Some(sets) = &mut self.filled {
                if sets.len() < FILLED_MAX {
                    sets.push(s as u32);
                } else {
                    self.filled = None;
                }
            }
        }
    }

    /// Drops every translation (the code cache was dropped with their blocks).
    pub fn forget(&mut self) {
        self.gen = self.gen.wrapping_add(1);
        self.used = self.first;
        self.clear_table();
        self.linked.clear();
        self.sites.clear();
    }

    fn clear_table(&mut self) {
        match self.filled.take() {
            Some(mut sets) => {
                for s in sets.drain(..) {
                    self.table[s as usize] = Set([empty(s as usize); WAYS]);
                }
                self.filled = Some(sets);
            }
            None => {
                self.table.fill(Set([EMPTY; WAYS]));
                if let Some(ways) = self.table.get_mut(set(0)) {
                    *ways = Set([empty(set(0)); WAYS]);
                }
                self.filled = Some(Vec::new());
            }
        }
    }

    /// Unlinks the blocks starting at `starts` (the code cache dropped them), so that no
    /// translated code jumps to their translations any more.
    pub fn unlink(&mut self, starts: &mut Vec<u64>) {
        for rip in starts.drain(..) {
            if let Some(Set(ways)) = self.table.get_mut(set(rip)) {
                for w in ways.iter_mut().filter(|w| w.rip == rip) {
                    *w = empty(set(rip));
                }
            }
            // The direct exits to it take the lookup again (which now misses).
            if self.linked.remove(&rip).is_some() {
                let t = rip.to_le_bytes();
                for at in self.sites.get(&rip).cloned().unwrap_or_default() {
                    self.patch(at, [0x48, 0xb8, t[0], t[1], t[2]]);
                }
            }
        }
    }

    /// Runs `block` as translated code if it has (or now gets) a translation, and on
    /// through the translations of the blocks it leads to while `remaining` covers them.
    /// Returns how many instructions completed (`Cpu::rip` is where they stopped) and
    /// whether the interpreter must run the next instruction (translated code left
    /// before an instruction it does not cover or an access it could not make).
    /// `None`: not translated, nothing ran.
    #[inline]
    pub fn run(
        &mut self,
        block: &Block,
        code: &CodeCache,
        cpu: &mut Cpu,
        mem: &mut Memory,
        remaining: u64,
    ) -> Option<(u64, bool)> {
        let entry = match block.jit.code.get() {
            Some((entry, gen)) if gen == self.gen => entry,
            // Translated before the arena was reset: translate again.
            Some(_) => self.translate(block, code, cpu)?,
            None => {
                if self.warm > 0 {
                    self.warm -= 1;
                    return None;
                }
                let hits = block.jit.hits.get();
                if hits > self.hot {
                    return None;
                }
                block.jit.hits.set(hits + 1);
                if hits < self.hot {
                    return None;
                }
                self.translate(block, code, cpu)?
            }
        };
        self.enter(block.start, entry as u64);
        let enter = self.stubs?.enter;
        let (base, perm, limit) = mem.jit_view();
        let mut env = Env { base, perm, limit, left: remaining, early: 0, chained: 0, handled: 0, mem };
        // SAFETY: `enter` and `entry` point into the arena's executable mapping, at the
        // stubs and at code `emit` produced for this block in the current generation
        // (the arena is only reset after bumping `gen` and emptying `table`); so do the
        // `host` addresses of `table`, whose blocks are live (`unlink`). That code follows
        // the SysV ABI (it saves every callee-saved register it uses and does not touch
        // the stack below its frame), writes only `Cpu` fields and `env`'s counters through
        // its arguments, and reaches guest memory only at `base + a` for an `a` it checked
        // as `Memory::try_read`/`try_write` do, so inside the data mapping; `&mut Memory`
        // excludes any other access meanwhile.
        unsafe {
            let f: Enter = std::mem::transmute::<u64, Enter>(enter);
            f(cpu, &mut env, entry);
        }
        self.stats.entries += 1;
        self.stats.chained += env.chained;
        self.stats.handled += env.handled;
        let early = env.early != 0;
        self.stats.early_exits += early as u64;
        Some((remaining - env.left, early))
    }

    #[cold]
    #[inline(never)]
    fn translate(&mut self, block: &Block, code: &CodeCache, cpu: &Cpu) -> Option<usize> {
        let parts = unit(block, code);
        let t0 = Instant::now();
        let mut result = None;
        for _ in 0..2 {
            let ip = self.cursor()?;
            let table = self.table.as_ptr() as u64;
            let Some(t) = emit::translate(&parts, cpu.model, ip as u64, self.stubs?, table, &mut self.memo) else {
                self.stats.blocks_refused += 1;
                break;
            };
            let code = &t.code;
            if self.used + code.len() > ARENA {
                // Full: drop every translation (their blocks see a stale generation).
                self.forget();
                continue;
            }
            self.install(code)?;
            perf_map::note(ip, code.len(), block.start);
            self.stats.blocks_translated += 1;
            self.stats.code_bytes += code.len() as u64;
            self.stats.self_loops += u64::from(t.looping);
            self.stats.loop_units += u64::from(t.looping && t.covers as usize > block.ops.len());
            block.jit.code.set(Some((ip, self.gen)));
            self.link(block.start, ip, &t.sites);
            result = Some(ip);
            break;
        }
        self.stats.time_translating += t0.elapsed();
        result
    }

    /// Links the translation at `entry` of the block at guest address `rip`, whose direct
    /// exits are `sites` (offsets from `entry`, targets): each exit to a linked block, this
    /// one included, and each exit of an earlier translation to `rip` jumps straight to
    /// the target's code, skipping the table's lookup (the target's code checks the
    /// budget as after a lookup). `unlink` puts the lookup back when the target is
    /// dropped; its own exits die with the arena's generation.
    fn link(&mut self, rip: u64, entry: usize, sites: &[(u32, u64)]) {
        self.linked.insert(rip, entry);
        for &(off, target) in sites {
            self.sites.entry(target).or_default().push(entry + off as usize);
        }
        let mut jumps: Vec<(usize, usize)> = sites
            .iter()
            .filter(|s| s.1 != rip)
            .filter_map(|&(off, target)| Some((entry + off as usize, *self.linked.get(&target)?)))
            .collect();
        jumps.extend(self.sites.get(&rip).into_iter().flatten().map(|&at| (at, entry)));
        for (at, to) in jumps {
            // `jmp rel32` (the arena is 16 MiB: always in reach).
            let rel = (to as i64 - (at as i64 + 5)) as i32;
            let r = rel.to_le_bytes();
            if self.patch(at, [0xe9, r[0], r[1], r[2], r[3]]).is_none() {
                return;
            }
        }
    }

    /// Writes 5 bytes of code at host address `at` (a direct exit's `mov rax, target`),
    /// through the arena's writable mapping (no translated code runs meanwhile: this
    /// thread is in the run loop).
    fn patch(&mut self, at: usize, bytes: [u8; 5]) -> Option<()> {
        let Arena::Mapped(m) = &mut self.arena else { return None };
        let off = at.checked_sub(m.exec_ptr() as usize).filter(|&o| o + bytes.len() <= self.used)?;
        m.write_view().get_mut(off..off + bytes.len())?.copy_from_slice(&bytes);
        Some(())
    }

    /// The host address the next translation goes to.
    fn cursor(&mut self) -> Option<usize> {
        if matches!(self.arena, Arena::Empty) {
            // A new arena: whatever was translated into an old one is stale.
            self.gen = self.gen.wrapping_add(1);
            self.used = 0;
            self.stubs = None;
            self.table = new_table();
            self.filled = Some(Vec::new());
            self.linked.clear();
            self.sites.clear();
            let m = DualMap::new(ARENA)?;
            let (code, stubs) = emit::stubs(m.exec_ptr() as u64, self.table.as_ptr() as u64)?;
            self.arena = Arena::Mapped(m);
            self.install(&code)?;
            self.first = self.used;
            let end = stubs.enter + code.len() as u64;
            for (at, to, name) in
                [(stubs.enter, stubs.chain, "enter"), (stubs.chain, stubs.early, "chain"), (stubs.early, end, "exit")]
            {
                perf_map::note_named(at, to.saturating_sub(at), format_args!("warden:{name}"));
            }
            self.stubs = Some(stubs);
        }
        let base = match &self.arena {
            Arena::Mapped(m) => m.exec_ptr(),
            Arena::Empty => return None,
        };
        Some(base as usize + self.used)
    }
    /// Copies code to the cursor, through the arena's writable mapping (translated code
    /// runs only after `install` returns, on this thread).
    fn install(&mut self, code: &[u8]) -> Option<()> {
        let Arena::Mapped(m) = &mut self.arena else { return None };
        let end = self.used.checked_add(code.len()).filter(|&e| e <= ARENA)?;
        m.write_view().get_mut(self.used..end)?.copy_from_slice(code);
        self.used = end.next_multiple_of(16).min(ARENA);
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A loop through four blocks, all in one set, runs chained: each direct exit finds
    /// its target in the table (with two slots, three blocks of the shell loop in one set
    /// left for the run loop at every round).
    #[test]
    fn a_loop_of_four_blocks_in_one_set_runs_chained() {
        const BLOCKS: usize = 4;
        use crate::{AddressSpace, Exit, GuestAddress, Perm};
        const CODE: u64 = 0x10000;
        // Block starts 16 bytes apart or more, all in the set of the first.
        let mut starts = vec![CODE];
        let mut a = CODE + 16;
        while starts.len() < BLOCKS {
            if set(a) == set(CODE) {
                starts.push(a);
                a += 16;
            } else {
                a += 1;
            }
        }
        let len = a - CODE + 16;
        let mut code = vec![0xccu8; len as usize];
        for (k, &at) in starts.iter().enumerate() {
            let mut b = vec![0x48, 0x83, 0xc0, 0x01]; // add rax, 1
            let here = at + 4;
            let (to, op) = match starts.get(k + 1) {
                Some(&next) => (next, vec![0xe9]), // jmp next
                None => {
                    b.extend([0x49, 0xff, 0xcf]); // dec r15
                    (CODE, vec![0x0f, 0x85]) // jnz first
                }
            };
            let here = if starts.get(k + 1).is_some() { here } else { here + 3 };
            let rel = to.wrapping_sub(here + op.len() as u64 + 4) as i32;
            b.extend(op);
            b.extend(rel.to_le_bytes());
            if k + 1 == BLOCKS {
                b.extend([0x0f, 0x05]); // syscall
            }
            let off = (at - CODE) as usize;
            code[off..off + b.len()].copy_from_slice(&b);
        }
        let mut s = AddressSpace::new(1 << 24).unwrap();
        s.mem.map(GuestAddress(CODE), len.next_multiple_of(0x1000), Perm::RX).unwrap();
        s.mem.write_raw(GuestAddress(CODE), &code).unwrap();
        let mut cpu = Cpu::new();
        cpu.rip = CODE;
        cpu.gpr[15] = 10_000;
        let exit = cpu.run(&mut s, 1 << 24);
        assert!(matches!(exit, Exit::Syscall(_)), "{exit:?}");
        assert_eq!(cpu.gpr[0], 10_000 * BLOCKS as u64);
        let st = s.jit_stats();
        assert!(st.blocks_translated >= BLOCKS as u64 && st.entries < 50, "{st:?}");
    }

    /// `forget` empties every set entered into, whether it remembered them (a few) or
    /// not (more than `FILLED_MAX`), and a new table starts empty.
    #[test]
    fn forget_empties_every_set_entered() {
        let mut jit = Jit::new();
        jit.forget();
        jit.cursor().expect("an arena");
        let empties = |jit: &Jit, when: &str| {
            for (s, Set(ways)) in jit.table.iter().enumerate() {
                for w in ways {
                    assert_eq!((w.rip, w.host), (empty(s).rip, 0), "set {s} {when}");
                }
            }
        };
        empties(&jit, "of a new table");
        // No empty slot matches an address looked up in its set.
        for rip in [0, 1, u64::MAX, u64::MAX - 1, 0x1000] {
            assert!(jit.table[set(rip)].0.iter().all(|w| w.rip != rip), "{rip:#x}");
        }
        for entered in [3u64, 40, FILLED_MAX as u64 * 3] {
            for n in 0..entered {
                jit.enter(0x1000 + n * 0x10, 0x5000 + n);
                jit.enter(0x7000_0000 + n * 0x30, 0x6000 + n);
            }
            jit.forget();
            empties(&jit, &format!("after {entered} entered"));
        }
    }

    /// A space warming up (a program's) leaves its first `WARM_UP` block runs to the
    /// interpreter: a loop shorter than that is never translated, a longer one is, with
    /// the same result, and so is one in a space that does not warm up or whose threshold
    /// was set; a fork warms up again.
    #[test]
    fn a_new_space_warms_up_in_the_interpreter() {
        use crate::{AddressSpace, Exit, GuestAddress, Perm};
        const CODE: u64 = 0x10000;
        // top: add rax, 1; dec r15; jnz top; syscall (one block per round)
        let code = [0x48, 0x83, 0xc0, 0x01, 0x49, 0xff, 0xcf, 0x75, 0xf7, 0x0f, 0x05];
        let rounds = |n: u64, warm: bool, threshold: Option<u32>, fork: bool| {
            let mut s = AddressSpace::new(1 << 24).unwrap();
            s.mem.map(GuestAddress(CODE), 0x1000, Perm::RX).unwrap();
            s.mem.write_raw(GuestAddress(CODE), &code).unwrap();
            if warm {
                s.warm_up_jit();
            }
            if let Some(t) = threshold {
                s.set_jit_threshold(t);
            }
            if fork {
                s = s.fork().unwrap();
            }
            let mut cpu = Cpu::new();
            cpu.rip = CODE;
            cpu.gpr[15] = n;
            let exit = cpu.run(&mut s, 1 << 24);
            assert!(matches!(exit, Exit::Syscall(_)), "{exit:?}");
            assert_eq!(cpu.gpr[0], n);
            s.jit_stats().blocks_translated
        };
        let short = u64::from(WARM_UP) - 1;
        assert_eq!(rounds(short, true, None, false), 0, "within the warm-up");
        assert_eq!(rounds(short, true, None, true), 0, "a fork within the warm-up");
        assert!(rounds(u64::from(WARM_UP + HOT) + 100, true, None, false) >= 1, "past the warm-up");
        assert!(rounds(u64::from(HOT) + 2, false, None, false) >= 1, "no warm-up");
        assert!(rounds(u64::from(HOT) + 2, true, Some(HOT), false) >= 1, "threshold set: no warm-up");
    }
}
