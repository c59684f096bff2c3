//! Time calls: nanosleep, clock_gettime (yield is handled by the dispatcher).
//!
//! Sleeping parks the thread until the clock reaches its deadline; on the
//! virtual clock the scheduler skips idle time, so a sleep costs no host time.
//! A signal handler interrupting a sleep makes it fail with EINTR.

use warden_abi::*;

use super::{errno, Block, Call, Input, SysError, SysResult};
use crate::process::{OnWake, WaitOn};
use crate::usercopy::copy_out;
use crate::{Kernel, Pid};

impl Kernel {
    pub(super) fn sys_nanosleep(&mut self, _tid: Pid, _rem: usize, call: &Call) -> SysResult {
        let Input::Time(req) = &call.input else {
            return errno(EFAULT);
        };
        let ns = crate::time::timespec_to_ns(req)?;
        if ns == 0 {
            self.yield_requested = true;
            return Ok(0);
        }
        let deadline = self.clock.monotonic_ns().saturating_add(ns);
        Err(SysError::Block(Block {
            on: WaitOn::Sleep,
            deadline: Some(deadline),
            on_timeout: Ok(0),
            on_wake: OnWake::Return(0),
        }))
    }

    pub(super) fn sys_clock_gettime(&mut self, tid: Pid, clock: usize, addr: usize) -> SysResult {
        let ts = self.clock.now(clock)?;
        let mm = self.mm_of(tid)?;
        copy_out(&mut mm.borrow_mut().space.mem, addr, &ts.to_bytes())?;
        Ok(0)
    }
}
