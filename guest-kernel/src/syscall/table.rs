//! The kernel's half of the system-call tables: each row of `warden_abi`'s
//! [`redox_calls!`](warden_abi::redox_calls) and [`linux_calls!`](warden_abi::linux_calls)
//! becomes an [`Entry`] holding the row's description ([`CallInfo`]), its handler and, for a
//! call the jail catches, its jail check. Dispatch, decoding, supervision, tracing and the
//! jail all find a call's facts here, by one index lookup ([`warden_abi::call_index`]).

use std::rc::Rc;

use warden_abi::{call_index, CallInfo, Errno, CALLS, ENOSYS, LINUX_CALLS};

use super::{Call, SysResult};
use crate::policy::Jail;
use crate::{Kernel, Pid};

/// Runs a call: thread `tid`, on the kernel's copy of its inputs.
pub(crate) type Handler = fn(&mut Kernel, Pid, &Call) -> SysResult;

/// Decides whether a jailed thread may make a call the jail catches (`Err`: the call fails
/// with that errno and does not run).
pub(crate) type JailCheck = fn(&mut Kernel, Pid, &Rc<Jail>, &Call) -> Result<(), Errno>;

/// One call of a table.
pub struct Entry {
    /// Its description (number, name, class, arguments...).
    pub info: &'static CallInfo,
    pub(crate) handler: Handler,
    pub(crate) jail: Option<JailCheck>,
    /// Some argument is copied in (else decoding has nothing to do).
    pub(crate) copies: bool,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.info.name)
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Entry) -> bool {
        std::ptr::eq(self.info, other.info)
    }
}

impl Eq for Entry {}

/// A row's kernel half, as the table macros produce it.
pub(crate) struct Row {
    pub(crate) number: usize,
    pub(crate) handler: Handler,
    pub(crate) jail: Option<JailCheck>,
}

/// Builds the kernel rows from a table's rows (the callback of `warden_abi::redox_calls!`
/// and `linux_calls!`): the number, the handler and the jail check of each.
macro_rules! kernel_rows {
    (base = $base:expr; $(($number:expr, $class:ident, $groups:expr, $why:literal, [$($arg:expr),* $(,)?], $ret:ident,
        $handler:path $(, jail = $jail:path)? $(,)?)),* $(,)?) => {
        &[$($crate::syscall::table::Row {
            number: $base | $number,
            handler: $handler,
            jail: kernel_rows!(@jail $($jail)?),
        }),*]
    };
    (@jail) => { None };
    (@jail $jail:path) => { Some($jail) };
}
pub(crate) use kernel_rows;

fn enosys(_: &mut Kernel, _: Pid, _: &Call) -> SysResult {
    Err(Errno(ENOSYS).into())
}

/// Joins a table's descriptions and its kernel rows (generated from the same rows, so in the
/// same order: checked here, at compile time).
pub(crate) const fn join<const N: usize>(infos: &'static [CallInfo], rows: &[Row]) -> [Entry; N] {
    assert!(infos.len() == N && rows.len() == N, "a table and its kernel rows differ in length");
    let mut out = [const { Entry { info: &NO_INFO, handler: enosys, jail: None, copies: false } }; N];
    let mut i = 0;
    while i < N {
        assert!(infos[i].number == rows[i].number, "a table and its kernel rows disagree");
        let mut copies = false;
        let mut j = 0;
        while j < infos[i].args.len() {
            copies |= super::input::copies(infos[i].args[j]);
            j += 1;
        }
        out[i] = Entry { info: &infos[i], handler: rows[i].handler, jail: rows[i].jail, copies };
        i += 1;
    }
    out
}

/// What `join` fills its array with before the entries go in.
const NO_INFO: CallInfo = CallInfo {
    number: 0,
    name: "",
    class: warden_abi::JailClass::J,
    groups: 0,
    why: "",
    args: &[],
    ret: warden_abi::table::Ret::None,
};

/// The Redox calls' entries, in [`CALLS`] order.
static REDOX: [Entry; CALLS.len()] = join(CALLS, super::REDOX_ROWS);
/// The Linux calls' entries, in [`LINUX_CALLS`] order.
static LINUX: [Entry; LINUX_CALLS.len()] = join(LINUX_CALLS, crate::linux::LINUX_ROWS);

/// The entry of call `number` (a Redox number or `LINUX_CALL | nr`), if it is one.
#[inline]
pub fn entry(number: usize) -> Option<&'static Entry> {
    let i = call_index(number)?;
    Some(if number & warden_abi::linux::LINUX_CALL != 0 { &LINUX[i] } else { &REDOX[i] })
}
