//! Linux time calls on the kernel's clock (virtual unless `--real-time`).

use warden_abi as r;
use warden_abi::Errno;

use super::abi::{self, nr};
use super::LinuxInput;
use crate::process::{OnWake, WaitOn};
use crate::syscall::{Block, SysError, SysResult};
use crate::usercopy::copy_out;
use crate::{Kernel, Pid};

fn err<T>(e: i32) -> Result<T, SysError> {
    Err(SysError::Errno(Errno(e)))
}

impl Kernel {
    /// Nanoseconds on Linux clock `id`.
    fn lx_clock_ns(&self, tid: Pid, id: usize) -> Result<u64, Errno> {
        Ok(match id {
            abi::CLOCK_REALTIME | abi::CLOCK_REALTIME_COARSE => self.clock.realtime_ns(),
            abi::CLOCK_MONOTONIC | abi::CLOCK_MONOTONIC_RAW | abi::CLOCK_MONOTONIC_COARSE | abi::CLOCK_BOOTTIME => {
                self.clock.monotonic_ns()
            }
            abi::CLOCK_PROCESS_CPUTIME_ID | abi::CLOCK_THREAD_CPUTIME_ID => {
                self.threads.get(&tid).map(|t| t.cpu.icount).unwrap_or(0)
            }
            _ => return Err(Errno(r::EINVAL)),
        })
    }

    fn lx_put(&mut self, tid: Pid, addr: usize, data: &[u8]) -> Result<(), Errno> {
        let mm = self.mm_of(tid)?;
        let r = copy_out(&mut mm.borrow_mut().space.mem, addr, data);
        r
    }

    fn lx_sleep_until(&mut self, deadline: u64) -> SysResult {
        if deadline <= self.clock.monotonic_ns() {
            self.yield_requested = true;
            return Ok(0);
        }
        Err(SysError::Block(Block {
            on: WaitOn::Sleep,
            deadline: Some(deadline),
            on_timeout: Ok(0),
            on_wake: OnWake::Return(0),
        }))
    }

    pub(super) fn linux_time_call(
        &mut self,
        tid: Pid,
        number: usize,
        a: &[usize; 6],
        input: &LinuxInput,
    ) -> Option<SysResult> {
        let sleep = || match input {
            LinuxInput::Time(Some(ns)) => Ok(*ns),
            _ => Err(SysError::Errno(Errno(r::EFAULT))),
        };
        Some(match number {
            nr::CLOCK_GETTIME => (|| {
                let ns = self.lx_clock_ns(tid, a[0])?;
                self.lx_put(tid, a[1], &abi::timespec_bytes(ns))?;
                Ok(0)
            })(),
            nr::CLOCK_GETRES => (|| {
                self.lx_clock_ns(tid, a[0])?;
                if a[1] != 0 {
                    self.lx_put(tid, a[1], &abi::timespec_bytes(1))?;
                }
                Ok(0)
            })(),
            nr::GETTIMEOFDAY => (|| {
                if a[0] != 0 {
                    let ns = self.clock.realtime_ns();
                    self.lx_put(tid, a[0], &abi::timeval_bytes(ns))?;
                }
                if a[1] != 0 {
                    self.lx_put(tid, a[1], &[0u8; 8])?;
                }
                Ok(0)
            })(),
            nr::TIME => (|| {
                let secs = self.clock.realtime_ns() / 1_000_000_000;
                if a[0] != 0 {
                    self.lx_put(tid, a[0], &secs.to_le_bytes())?;
                }
                Ok(secs as usize)
            })(),
            nr::NANOSLEEP => sleep().and_then(|ns| {
                let deadline = self.clock.monotonic_ns().saturating_add(ns);
                self.lx_sleep_until(deadline)
            }),
            nr::CLOCK_NANOSLEEP => sleep().and_then(|ns| {
                let now = self.lx_clock_ns(tid, a[0])?;
                let rel = if a[1] & abi::TIMER_ABSTIME != 0 { ns.saturating_sub(now) } else { ns };
                let deadline = self.clock.monotonic_ns().saturating_add(rel);
                self.lx_sleep_until(deadline)
            }),
            nr::ALARM => Ok(0),
            nr::SETITIMER | nr::GETITIMER => (|| {
                let out = if number == nr::GETITIMER { a[1] } else { a[2] };
                if out != 0 {
                    self.lx_put(tid, out, &[0u8; 32])?;
                }
                Ok(0)
            })(),
            _ => {
                let _ = err::<()>(0);
                return None;
            }
        })
    }
}
