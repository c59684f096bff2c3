//! Time calls: nanosleep, clock_gettime (yield is with the process calls).
//!
//! Sleeping parks the thread until the clock reaches its deadline; on the
//! virtual clock the scheduler skips idle time, so a sleep costs no host time.
//! A signal handler interrupting a sleep makes it fail with EINTR.

use warden_abi::*;

use super::{errno, Block, Call, SysError, SysResult};
use crate::process::{OnWake, WaitOn};
use crate::usercopy::copy_out;
use crate::{Kernel, Pid};

pub(super) fn nanosleep(k: &mut Kernel, _: Pid, c: &Call) -> SysResult {
    let Some(req) = c.input(0).and_then(TimeSpec::from_bytes) else {
        return errno(EFAULT);
    };
    let ns = crate::time::timespec_to_ns(&req)?;
    if ns == 0 {
        k.sched.yield_requested = true;
        return Ok(0);
    }
    let deadline = k.clock.monotonic_ns().saturating_add(ns);
    Err(SysError::Block(Block {
        on: WaitOn::Sleep,
        deadline: Some(deadline),
        on_timeout: Ok(0),
        on_wake: OnWake::Return(Ok(0)),
    }))
}

pub(super) fn clock_gettime(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let ts = k.clock.now(c.args[0])?;
    let mm = k.mm_of(tid)?;
    copy_out(&mut mm.borrow_mut().space.mem, c.args[1], &ts.to_bytes())?;
    Ok(0)
}
