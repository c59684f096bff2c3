//! Every system call of the ABI classified for jails (seed 004) and named for masks (seed 003).
//!
//! Design: [`CALLS`] and [`LINUX_CALLS`] are built from the call tables
//! ([`crate::calls`]), one row per call. Each call gets a jail class:
//! - **P** (process-local): affects only the caller's own state; runs unchanged in a jail.
//! - **F** (descriptor-based): acts on a descriptor the process already holds. A descriptor is
//!   a capability: reading and writing it works in a jail even if it was opened before
//!   entering, but nothing resolves a path *relative* to it (the `dup` sub-path must be
//!   empty in a jail) and it is never exec'd from outside the root (see `fexec`, class J).
//! - **C** (path-taking): the path is resolved inside the jail root: `..` stops at the root,
//!   symbolic links are followed inside it (an absolute target starts at the jail root), and
//!   other schemes are limited (`proc:` shows only processes in the jail; `null:`, `zero:`,
//!   `rand:`, `time:` and `debug:` pass; anything else is `EACCES`).
//! - **J** (caught): denied or virtualised in a jail; each entry's `why` says how.
//!
//! The table also puts each call in coarse groups (`file`, `process`, `memory`, `signal`,
//! `time`) so masks and policies can name sets of calls: a [`Selector`] is a call name, a
//! class (`P`, `F`, `C`, `J`), a group, or `all` ([`Selector::parse`]).
//!
//! Calls of the seed's Linux list with no counterpart in this ABI need no entry: there is no
//! call to set the clock (`time:` is read-only), change priority, mount, reboot, load modules,
//! set ids or change the root other than [`SYS_JAIL`], which only narrows.
//!
//! A unit test checks that this table and [`crate::SYSCALLS`] list the same calls.
//!
//! [`LINUX_CALLS`] does the same for the Linux personality (numbers `LINUX_CALL | nr`, see
//! [`crate::linux`]): every Linux call the kernel implements, with the same classes and
//! groups. Its C calls are confined like the Redox ones (a relative path of an `*at` call
//! is resolved against its directory descriptor only if that directory lies inside the
//! root; device paths the personality virtualises — `/dev/null`, `/dev/fd/N` ... — still
//! work); `execve` confines the program and every `#!` interpreter. The kernel dispatches
//! only through the tables, so a call cannot be implemented without a row, and so without a
//! class; any other number is `ENOSYS`.
//!
//! Names in masks and policies: a plain name (`open`) is the Redox call; `linux:NAME`
//! (`linux:openat`) is the Linux one. Classes, groups and `all` take both ABIs; `redox` and
//! `linux` select every call of one ABI.

use crate::linux::LINUX_CALL;
use crate::number::*;
use crate::table::{Arg, Ret};
use JailClass::{C, F, J, P};

/// Most syscall numbers one [`SYS_MASK`] call accepts.
pub const MASK_MAX: usize = 4096;
/// [`SYS_MASK`] flag: a masked call kills the process with `SIGSYS` (instead of `EPERM`).
pub const MASK_KILL: usize = 1;

/// How a jail treats a call (seed 004).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JailClass {
    /// Process-local: unchanged.
    P,
    /// Descriptor-based: unchanged (descriptors are capabilities).
    F,
    /// Path-taking: confined to the jail root.
    C,
    /// Caught: denied or virtualised.
    J,
}

impl JailClass {
    /// `"P"`, `"F"`, `"C"` or `"J"`.
    pub fn name(self) -> &'static str {
        match self {
            JailClass::P => "P",
            JailClass::F => "F",
            JailClass::C => "C",
            JailClass::J => "J",
        }
    }
}

/// Group: files, descriptors, directories, pipes.
pub const GROUP_FILE: u8 = 1;
/// Group: processes (creation, exec, exit, ids, other processes).
pub const GROUP_PROCESS: u8 = 2;
/// Group: the address space.
pub const GROUP_MEMORY: u8 = 4;
/// Group: signals.
pub const GROUP_SIGNAL: u8 = 8;
/// Group: clocks, sleeping, yielding, futexes.
pub const GROUP_TIME: u8 = 16;

/// Group names as policies spell them.
pub const GROUPS: &[(&str, u8)] = &[
    ("file", GROUP_FILE),
    ("process", GROUP_PROCESS),
    ("memory", GROUP_MEMORY),
    ("signal", GROUP_SIGNAL),
    ("time", GROUP_TIME),
];

/// One call: its number and name, jail class and groups, and how it takes its arguments
/// (a row of [`crate::calls`]).
#[derive(Clone, Copy, Debug)]
pub struct CallInfo {
    /// The syscall number (`LINUX_CALL | nr` for a Linux call).
    pub number: usize,
    /// Its name, as its ABI names it ([`crate::SYSCALLS`], [`crate::linux::LINUX_NAMES`]).
    pub name: &'static str,
    /// How a jail treats it.
    pub class: JailClass,
    /// `GROUP_*` bits.
    pub groups: u8,
    /// Why it has this class (for J: how it is caught).
    pub why: &'static str,
    /// How it takes each argument (their number is the call's argument count).
    pub args: &'static [Arg],
    /// How its result is shown.
    pub ret: Ret,
}

/// The name of call `number` for a table row (a row whose number has no name does not
/// compile).
const fn name_of(number: usize) -> &'static str {
    if number & LINUX_CALL != 0 {
        let name = crate::linux::LINUX_NAMES[number & !LINUX_CALL];
        assert!(!name.is_empty(), "a Linux table row without a Linux name");
        return name;
    }
    let mut i = 0;
    while i < SYSCALLS.len() {
        if SYSCALLS[i].0 == number {
            return SYSCALLS[i].1;
        }
        i += 1;
    }
    panic!("a Redox table row missing from SYSCALLS")
}

/// Builds the [`CallInfo`]s of a table's rows ([`crate::calls`]); the handler and the jail
/// check are the kernel's.
macro_rules! describe {
    (base = $base:expr; $(($number:expr, $class:ident, $groups:expr, $why:literal, [$($arg:expr),* $(,)?], $ret:ident,
        $handler:path $(, jail = $jail:path)? $(,)?)),* $(,)?) => {
        &[$(CallInfo {
            number: $base | $number,
            name: name_of($base | $number),
            class: JailClass::$class,
            groups: $groups,
            why: $why,
            args: &[$($arg),*],
            ret: Ret::$ret,
        }),*]
    };
}

mod redox {
    use super::*;
    use crate::ipc::{CHANNEL_MAX_MSG, ChannelCaps};
    use crate::names::*;
    use crate::table::*;
    use crate::*;
    use Arg::*;

    pub const CALLS: &[CallInfo] = crate::redox_calls!(describe);
}

mod linux {
    use super::*;
    use crate::linux::flag as lx;
    use crate::linux::nr::*;
    use crate::names::*;
    use crate::table::*;
    use crate::{E2BIG, EBUSY, EEXIST, EISDIR};
    use Arg::*;

    pub const CALLS: &[CallInfo] = crate::linux_calls!(describe);
}

/// Every system call of the Redox ABI ([`crate::redox_calls!`]).
pub const CALLS: &[CallInfo] = redox::CALLS;

/// Every call of the Linux personality (numbers `LINUX_CALL | nr`; [`crate::linux_calls!`]).
pub const LINUX_CALLS: &[CallInfo] = linux::CALLS;

/// Slots of the Redox index: the low bits of a Redox number tell its calls apart.
const REDOX_SLOTS: usize = 2048;
/// Slots of the Linux index: Linux numbers are below it.
const LINUX_SLOTS: usize = 512;

/// The index of `table`: slot `number & (N - 1)` holds the row's position (`u16::MAX`:
/// none). Two rows in one slot, or a Linux number beyond the slots, do not compile.
const fn index<const N: usize>(table: &[CallInfo]) -> [u16; N] {
    let mut out = [u16::MAX; N];
    let mut i = 0;
    while i < table.len() {
        let number = table[i].number;
        assert!(number & LINUX_CALL == 0 || number & !LINUX_CALL < N, "a Linux number beyond the index");
        let slot = number & (N - 1);
        assert!(out[slot] == u16::MAX, "two calls share an index slot");
        out[slot] = i as u16;
        i += 1;
    }
    out
}

static REDOX_INDEX: [u16; REDOX_SLOTS] = index(CALLS);
static LINUX_INDEX: [u16; LINUX_SLOTS] = index(LINUX_CALLS);

/// The position of call `number` (a Redox number, or `LINUX_CALL | nr`) in its table
/// ([`CALLS`] or [`LINUX_CALLS`]): a load and a compare.
#[inline]
pub fn call_index(number: usize) -> Option<usize> {
    let (index, table): (&[u16], _) =
        if number & LINUX_CALL != 0 { (&LINUX_INDEX, LINUX_CALLS) } else { (&REDOX_INDEX, CALLS) };
    let i = index[number & (index.len() - 1)] as usize;
    (table.get(i)?.number == number).then_some(i)
}

/// Calls a mask never blocks, so a masked process can always end (as in seccomp's strict
/// mode).
pub const ALWAYS_ALLOWED: &[usize] = &[
    SYS_EXIT,
    SYS_SIGRETURN,
    LINUX_CALL | crate::linux::nr::EXIT,
    LINUX_CALL | crate::linux::nr::EXIT_GROUP,
    LINUX_CALL | crate::linux::nr::RT_SIGRETURN,
];

/// The table row of syscall `number` (a Redox number, or `LINUX_CALL | nr`).
#[inline]
pub fn call_info(number: usize) -> Option<&'static CallInfo> {
    let table = if number & LINUX_CALL != 0 { LINUX_CALLS } else { CALLS };
    Some(&table[call_index(number)?])
}

/// Every classified call of both ABIs: [`CALLS`], then [`LINUX_CALLS`].
pub fn all_calls() -> impl Iterator<Item = &'static CallInfo> {
    CALLS.iter().chain(LINUX_CALLS.iter())
}

/// A set of calls named in a mask or policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Selector {
    /// One call, by number.
    Call(usize),
    /// Every call of a jail class.
    Class(JailClass),
    /// Every call with one of these `GROUP_*` bits.
    Group(u8),
    /// Every call of one ABI: `true` for Linux.
    Abi(bool),
    /// Every call of both tables.
    All,
}

impl Selector {
    /// Parses a Redox call name (`open`), a Linux call name (`linux:openat`), a class (`P`,
    /// `F`, `C`, `J`), a group (`file`, `process`, `memory`, `signal`, `time`), an ABI
    /// (`redox`, `linux`) or `all`.
    pub fn parse(name: &str) -> Option<Selector> {
        if let Some(linux) = name.strip_prefix("linux:") {
            return Some(Selector::Call(LINUX_CALLS.iter().find(|c| c.name == linux)?.number));
        }
        Some(match name {
            "all" => Selector::All,
            "redox" => Selector::Abi(false),
            "linux" => Selector::Abi(true),
            "P" => Selector::Class(P),
            "F" => Selector::Class(F),
            "C" => Selector::Class(C),
            "J" => Selector::Class(J),
            _ => {
                if let Some(&(_, bits)) = GROUPS.iter().find(|&&(g, _)| g == name) {
                    Selector::Group(bits)
                } else {
                    Selector::Call(CALLS.iter().find(|c| c.name == name)?.number)
                }
            }
        })
    }

    /// True if `call` is in the set.
    pub fn matches(self, call: &CallInfo) -> bool {
        match self {
            Selector::Call(n) => call.number == n,
            Selector::Class(class) => call.class == class,
            Selector::Group(bits) => call.groups & bits != 0,
            Selector::Abi(linux) => (call.number & LINUX_CALL != 0) == linux,
            Selector::All => true,
        }
    }

    /// The syscall numbers in the set (both tables).
    pub fn numbers(self) -> impl Iterator<Item = usize> {
        all_calls().filter(move |c| self.matches(c)).map(|c| c.number)
    }
}
