//! The kernel's copy of what a call reads ([`Items`]), made by [`decode`] from the call's
//! table row, and the guest ranges a call writes ([`outputs`]).
//!
//! Design: the copies are kept in the very encoding of supervision packets (a
//! `warden_abi::PacketItem` header per item, then its bytes padded to 8), so the kernel's
//! copy, a supervisor's entry packet, a trace line and a recording's digest all read the
//! same bytes, and handing them on copies nothing per item. Items are found by kind and
//! argument index; a call has a handful.

use emu::{GuestAddress, Memory};
use warden_abi::table::{Arg, PathArg, MAX_IO};
use warden_abi::*;

use super::{Call, Input};
use crate::usercopy::{copy_in, copy_path, MAX_PATH};

/// Most `argv` or `envp` entries exec accepts.
pub const MAX_EXEC_ARGS: usize = 16 * 1024;
/// Most `struct iovec` entries (IOV_MAX).
const IOV_MAX: usize = 1024;

/// Copies of guest memory as supervision packet items.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Items {
    count: u32,
    data: Vec<u8>,
}

impl Items {
    /// No items, writing into `buf`'s allocation (emptied).
    pub fn with_buffer(mut buf: Vec<u8>) -> Items {
        buf.clear();
        Items { count: 0, data: buf }
    }

    /// The buffer, for reuse.
    pub(crate) fn into_buffer(self) -> Vec<u8> {
        self.data
    }

    fn header(&mut self, kind: u32, arg: usize, len: usize) {
        let head = PacketItem { kind, arg: arg as u32, len: len as u64 };
        self.data.extend_from_slice(&head.to_bytes());
        self.count += 1;
    }

    fn pad(&mut self) {
        self.data.resize(pad8(self.data.len()), 0);
    }

    /// Appends an item.
    pub fn push(&mut self, kind: u32, arg: usize, bytes: &[u8]) {
        self.header(kind, arg, bytes.len());
        self.data.extend_from_slice(bytes);
        self.pad();
    }

    /// Appends an item of `len` bytes copied from guest memory at `addr` (EFAULT if the guest
    /// could not read them).
    fn push_guest(&mut self, mem: &Memory, kind: u32, arg: usize, addr: usize, len: usize) -> Result<(), Errno> {
        let bytes = mem.slice(GuestAddress(addr as u64), len as u64).map_err(|_| Errno(EFAULT))?;
        self.header(kind, arg, len);
        self.data.extend_from_slice(bytes);
        self.pad();
        Ok(())
    }

    /// Sets the item of `kind` for `arg` to `bytes` (replacing it if there is one).
    pub(crate) fn set(&mut self, kind: u32, arg: usize, bytes: &[u8]) {
        if self.get(kind, arg).is_some() {
            let mut rebuilt = Items::with_buffer(Vec::with_capacity(self.data.len() + bytes.len()));
            for (item, old) in self.iter() {
                let b = if item.kind == kind && item.arg as usize == arg { bytes } else { old };
                rebuilt.push(item.kind, item.arg as usize, b);
            }
            *self = rebuilt;
        } else {
            self.push(kind, arg, bytes);
        }
    }

    /// Every item: its header and bytes.
    pub fn iter(&self) -> impl Iterator<Item = (PacketItem, &[u8])> {
        packet_items(&self.data)
    }

    /// The item of `kind` for argument `arg`.
    pub fn get(&self, kind: u32, arg: usize) -> Option<&[u8]> {
        self.iter().find(|(i, _)| i.kind == kind && i.arg as usize == arg).map(|(_, b)| b)
    }

    /// How many items there are.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The encoded items (`warden_abi::PacketItem` layout).
    pub fn encoded(&self) -> &[u8] {
        &self.data
    }
}

impl Call {
    /// The kernel's copies of what the call reads (empty if it reads nothing).
    pub fn items(&self) -> &Items {
        static NONE: Items = Items { count: 0, data: Vec::new() };
        match &self.input {
            Input::Items(items) | Input::Refused(_, items) => items,
            _ => &NONE,
        }
    }

    /// The errno the call fails with without running: its copy failed, or the policy refused
    /// it.
    pub fn failure(&self) -> Option<Errno> {
        match self.input {
            Input::Fault(e) | Input::Refused(e, _) => Some(e),
            _ => None,
        }
    }

    /// The policy refuses the call: it will fail with `e` without running.
    pub(crate) fn refuse(&mut self, e: Errno) {
        self.input = match std::mem::replace(&mut self.input, Input::None) {
            Input::Items(items) | Input::Refused(_, items) => Input::Refused(e, items),
            _ => Input::Refused(e, Items::default()),
        };
    }

    /// Path argument `arg` as the kernel acts on it: resolved by the jail or a supervisor
    /// (`ITEM_RESOLVED`) if it was, else as the guest gave it. EFAULT if there is none.
    pub fn path(&self, arg: usize) -> Result<&[u8], Errno> {
        let items = self.items();
        items.get(ITEM_RESOLVED, arg).or_else(|| items.get(ITEM_PATH, arg)).ok_or(Errno(EFAULT))
    }

    /// Path argument `arg` as the guest spelled it.
    pub fn given_path(&self, arg: usize) -> Option<&[u8]> {
        self.items().get(ITEM_PATH, arg)
    }

    /// The bytes the call reads for argument `arg` (a write buffer); EFAULT if there are none.
    pub fn bytes(&self, arg: usize) -> Result<&[u8], Errno> {
        self.items().get(ITEM_BYTES, arg).ok_or(Errno(EFAULT))
    }

    /// The structure argument `arg` points to, as copied (`None`: a null pointer the call
    /// allows).
    pub fn input(&self, arg: usize) -> Option<&[u8]> {
        self.items().get(ITEM_STRUCT, arg)
    }

    /// Sets the item of `kind` for `arg` (a path the jail or a supervisor resolved).
    pub(crate) fn set_item(&mut self, kind: u32, arg: usize, bytes: &[u8]) {
        match &mut self.input {
            Input::Items(items) => items.set(kind, arg, bytes),
            Input::None => {
                let mut items = Items::default();
                items.push(kind, arg, bytes);
                self.input = Input::Items(items);
            }
            Input::Fault(_) | Input::Refused(..) | Input::Resume => {}
        }
    }

    /// The strings of an exec vector (`ITEM_ARG` or `ITEM_ENV`).
    pub fn strings(&self, kind: u32) -> Vec<Vec<u8>> {
        self.items().iter().filter(|(i, _)| i.kind == kind).map(|(_, b)| b.to_vec()).collect()
    }
}

/// Step 1 of a call: copies every pointer argument its row says it reads, into `spare`'s
/// allocation (taken only if there is something to copy). A bad pointer or length becomes
/// `Input::Fault`.
pub(crate) fn decode(mem: &Memory, info: &CallInfo, a: &[usize; 6], spare: &mut Vec<u8>) -> Input {
    let mut items: Option<Items> = None;
    let mut budget = crate::elf::MAX_ARG_BYTES;
    for (i, arg) in info.args.iter().enumerate() {
        let arg = arg.resolve(a);
        if !copies(arg) {
            continue;
        }
        let out = items.get_or_insert_with(|| Items::with_buffer(std::mem::take(spare)));
        if let Err(e) = decode_arg(mem, i, arg, a, out, &mut budget) {
            if let Some(items) = items {
                *spare = items.into_buffer();
            }
            return Input::Fault(e);
        }
    }
    items.map_or(Input::None, Input::Items)
}

/// Whether an argument of this kind is copied in.
pub(crate) const fn copies(arg: Arg) -> bool {
    match arg {
        Arg::Path(_) | Arg::InBytes { .. } | Arg::In(_) | Arg::InOut(_) | Arg::Strings { .. } | Arg::Iov { .. } => true,
        Arg::When(c) => copies(c.then) || copies(c.otherwise),
        _ => false,
    }
}

fn decode_arg(
    mem: &Memory,
    i: usize,
    arg: Arg,
    a: &[usize; 6],
    out: &mut Items,
    budget: &mut usize,
) -> Result<(), Errno> {
    match arg {
        Arg::Path(p) => {
            if let Some(path) = copy_path_arg(mem, &p, a[i], a)? {
                out.push(ITEM_PATH, i, &path);
            }
        }
        Arg::InBytes { len, optional } => {
            let n = a[len as usize];
            if !(optional && n == 0) {
                out.push_guest(mem, ITEM_BYTES, i, a[i], n.min(MAX_IO))?;
            }
        }
        Arg::In(s) | Arg::InOut(s) => {
            let n = s.bytes(a).map_err(Errno)?;
            if n == 0 {
                out.push(ITEM_STRUCT, i, &[]);
            } else if a[i] != 0 {
                out.push_guest(mem, ITEM_STRUCT, i, a[i], n)?;
            } else if !s.optional {
                return Err(Errno(EFAULT));
            }
        }
        Arg::Strings { env, count } => {
            let kind = if env { ITEM_ENV } else { ITEM_ARG };
            match count {
                Some(count) => redox_vector(mem, a[i], a[count as usize], budget, |s| out.push(kind, i, s))?,
                None => linux_vector(mem, a[i], budget, |s| out.push(kind, i, s))?,
            }
        }
        Arg::Iov { count, out: writes } => {
            let n = a[count as usize];
            if n > IOV_MAX {
                return Err(Errno(EINVAL));
            }
            let iov = copy_in(mem, a[i], n * 16)?;
            if writes {
                out.push(ITEM_STRUCT, i, &iov);
            } else {
                out.push(ITEM_BYTES, i, &gather(mem, &iov)?);
            }
        }
        _ => {}
    }
    Ok(())
}

/// Copies path `p` at `addr`: `None` for an allowed null pointer.
fn copy_path_arg(mem: &Memory, p: &PathArg, addr: usize, a: &[usize; 6]) -> Result<Option<Vec<u8>>, Errno> {
    match p.len {
        Some(len) => copy_path(mem, addr, a[len as usize]).map(Some),
        None if addr == 0 && p.nullable => Ok(None),
        None => cstr(mem, addr).map(Some),
    }
}

/// A NUL-terminated path (without the NUL).
fn cstr(mem: &Memory, addr: usize) -> Result<Vec<u8>, Errno> {
    if addr == 0 {
        return Err(Errno(EFAULT));
    }
    let s = read_cstr(mem, addr as u64, MAX_PATH + 1, ENAMETOOLONG)?;
    if s.len() > MAX_PATH {
        return Err(Errno(ENAMETOOLONG));
    }
    Ok(s)
}

/// A C string of at most `max - 1` bytes at `addr`: `too_long` if no NUL comes by then (as
/// Linux: ENAMETOOLONG for a path, E2BIG for an exec argument), EFAULT for a bad pointer.
fn read_cstr(mem: &Memory, addr: u64, max: usize, too_long: i32) -> Result<Vec<u8>, Errno> {
    mem.read_cstr(GuestAddress(addr), max).map_err(|e| match e {
        emu::MemError::OutOfRange { addr: a, len } if a == addr && len == max as u64 => Errno(too_long),
        _ => Errno(EFAULT),
    })
}

/// A Redox exec vector: `count` `(pointer, length)` pairs at `addr`.
fn redox_vector(
    mem: &Memory,
    addr: usize,
    count: usize,
    budget: &mut usize,
    mut push: impl FnMut(&[u8]),
) -> Result<(), Errno> {
    if count > MAX_EXEC_ARGS {
        return Err(Errno(E2BIG));
    }
    let pairs = copy_in(mem, addr, count.checked_mul(16).ok_or(Errno(E2BIG))?)?;
    for pair in pairs.chunks_exact(16) {
        let (ptr, len) = (le64(pair, 0) as usize, le64(pair, 8) as usize);
        *budget = budget.checked_sub(len.saturating_add(9)).ok_or(Errno(E2BIG))?;
        push(mem.slice(GuestAddress(ptr as u64), len as u64).map_err(|_| Errno(EFAULT))?);
    }
    Ok(())
}

/// A Linux exec vector: NULL-terminated pointers to C strings at `addr` (none if `addr` is 0).
fn linux_vector(mem: &Memory, addr: usize, budget: &mut usize, mut push: impl FnMut(&[u8])) -> Result<(), Errno> {
    if addr == 0 {
        return Ok(());
    }
    for i in 0.. {
        if i >= MAX_EXEC_ARGS {
            return Err(Errno(E2BIG));
        }
        let at = addr.checked_add(8 * i).ok_or(Errno(EFAULT))?;
        let p = le64(&copy_in(mem, at, 8)?, 0);
        if p == 0 {
            break;
        }
        let s = read_cstr(mem, p, (*budget).min(128 * 1024) + 1, E2BIG)?;
        *budget = budget.checked_sub(s.len() + 9).ok_or(Errno(E2BIG))?;
        push(&s);
    }
    Ok(())
}

/// The bytes the iovecs in `iov` name, in order, at most [`MAX_IO`] of them.
fn gather(mem: &Memory, iov: &[u8]) -> Result<Vec<u8>, Errno> {
    let mut out = Vec::new();
    for e in iov.chunks_exact(16) {
        let (base, len) = (le64(e, 0) as usize, le64(e, 8) as usize);
        let take = len.min(MAX_IO - out.len());
        if take == 0 {
            continue;
        }
        out.extend_from_slice(mem.slice(GuestAddress(base as u64), take as u64).map_err(|_| Errno(EFAULT))?);
        if out.len() >= MAX_IO {
            break;
        }
    }
    Ok(out)
}

/// A little-endian u64 at `at` (0 past the end).
pub(crate) fn le64(bytes: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    if let Some(src) = bytes.get(at..at + 8) {
        w.copy_from_slice(src);
    }
    u64::from_le_bytes(w)
}

/// A guest range a call writes: argument `arg`'s `len` bytes at `addr`; `counted`: the
/// result says how many of them it wrote (a `read`), else all of them (a `stat`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OutRange {
    pub arg: usize,
    pub addr: usize,
    pub len: usize,
    pub counted: bool,
}

/// The guest ranges `call` writes, from its row (for an output iovec, from the kernel's copy
/// of the array).
pub(crate) fn outputs(call: &Call) -> Vec<OutRange> {
    let mut out = Vec::new();
    let Some(info) = call.info() else { return out };
    let a = &call.args;
    for (i, arg) in info.args.iter().enumerate() {
        let mut add = |addr: usize, len: usize, counted: bool| {
            if addr != 0 && len != 0 {
                out.push(OutRange { arg: i, addr, len, counted });
            }
        };
        match arg.resolve(a) {
            Arg::OutBytes { len, .. } => add(a[i], a[len as usize].min(MAX_IO), true),
            Arg::Out(s) | Arg::InOut(s) => add(a[i], s.bytes(a).unwrap_or(0), false),
            Arg::Iov { out: true, .. } => {
                for e in call.input(i).unwrap_or(&[]).chunks_exact(16) {
                    add(le64(e, 0) as usize, (le64(e, 8) as usize).min(MAX_IO), true);
                }
            }
            _ => {}
        }
    }
    out
}
