//! Calls that move bytes between two descriptors inside the kernel: `sendfile`,
//! `copy_file_range`, `splice` and `tee`.
//!
//! All four run one loop ([`Kernel::lx_transfer`]): read a chunk from the input (at an
//! offset, leaving its position alone, when the call gives one), write it to the output
//! without blocking, and go on until the count is done, the input is at its end or would
//! block, or the output is full. Nothing is read before the output can take it: an output
//! that reports readiness (a pipe, a socket) is asked first, and a chunk for it is at most
//! `PIPE_BUF` bytes, which a writable pipe always takes whole. If an output takes fewer
//! bytes than were read anyway, a seekable input is moved back by the rest (a pipe input
//! cannot give bytes back: they are lost, which the chunk size avoids for pipe outputs). The
//! first chunk blocks as `read`/`write` do (a full output: until any wake-up, then the
//! call runs again); later ones never do, so a call returns what it moved so far. `tee`
//! copies what a pipe holds without taking it ([`crate::pipe::peek`]).

use std::rc::Rc;

use warden_abi as r;
use warden_abi::Errno;

use crate::io::{would_block, How};
use crate::pipe::{is_pipe, peek, PIPE_BUF};
use crate::process::{OpenFile, WaitOn};
use crate::scheme::IoError;
use crate::syscall::{Block, Call, SysError, SysResult, MAX_IO};
use crate::usercopy::copy_out;
use crate::{Kernel, Pid};

fn err<T>(e: i32) -> Result<T, SysError> {
    Err(SysError::Errno(Errno(e)))
}

/// `splice`'s and `tee`'s flag that makes the pipe operations non-blocking.
const SPLICE_F_NONBLOCK: usize = 2;
/// Every `splice` flag (MOVE, NONBLOCK, MORE, GIFT: only NONBLOCK changes anything here).
const SPLICE_FLAGS: usize = 0xf;

/// One side of a transfer: its description and the offset the call gives, if any.
struct Side {
    desc: Rc<OpenFile>,
    at: Option<u64>,
}

impl Kernel {
    /// Moves up to `count` bytes from `input` to `output` (see the module note); with
    /// `keep`, the input is only looked at (`tee`). Returns the count moved; the sides'
    /// offsets have moved by it.
    fn lx_transfer(
        &mut self,
        tid: Pid,
        input: &mut Side,
        output: &mut Side,
        count: usize,
        nonblock: bool,
        keep: bool,
    ) -> SysResult {
        if input.desc.flags.get() & r::O_ACCMODE == r::O_WRONLY || output.desc.flags.get() & r::O_ACCMODE == r::O_RDONLY
        {
            return err(r::EBADF);
        }
        let limit = count.min(MAX_IO);
        let mut done = 0;
        while done < limit {
            let room = output.desc.file.try_borrow().ok().and_then(|f| f.readiness());
            if room.is_some_and(|r| !r.write && !r.error) {
                if done > 0 {
                    break;
                }
                return Err(if nonblock { Errno(r::EAGAIN).into() } else { Block::retry(WaitOn::AnyKey) });
            }
            let chunk = (limit - done).min(if room.is_some() && !keep { PIPE_BUF } else { 64 << 10 });
            let data = match self.lx_take(input, chunk, keep) {
                Ok(data) => data,
                Err(_) if done > 0 => break,
                Err(IoError::WouldBlock(key)) => return Err(would_block(nonblock || input_nonblock(input), key)),
                Err(IoError::Errno(e)) => return Err(e.into()),
            };
            if data.is_empty() {
                break;
            }
            let how = How { nonblock: true, at: output.at, sigpipe: true, whole_call: false };
            let wrote = self.write_desc(tid, &output.desc, &data, how);
            let n = match wrote {
                Ok(n) => n.min(data.len()),
                Err(e) => {
                    give_back(input, data.len(), keep);
                    if done > 0 {
                        break;
                    }
                    return Err(e);
                }
            };
            give_back(input, data.len() - n, keep);
            if n > 0 {
                self.lx_shared_file_io(&output.desc, true);
                self.lx_notify_modified(&output.desc);
            }
            done += n;
            input.at = input.at.map(|a| a + n as u64);
            output.at = output.at.map(|a| a + n as u64);
            if n < data.len() || keep {
                break;
            }
        }
        Ok(done)
    }

    /// Up to `max` bytes of `side` (taken, unless `keep`).
    fn lx_take(&mut self, side: &Side, max: usize, keep: bool) -> Result<Vec<u8>, IoError> {
        self.lx_shared_file_io(&side.desc, false);
        let mut buf = vec![0u8; max];
        let file = &side.desc.file;
        if keep {
            let f = file.try_borrow().map_err(|_| Errno(r::EIO))?;
            return peek(&*f, max).unwrap_or(Err(Errno(r::EINVAL).into()));
        }
        let n = match side.at {
            Some(at) => {
                let f = file.try_borrow().map_err(|_| Errno(r::EIO))?;
                f.read_at(at, &mut buf).unwrap_or(Err(Errno(r::ESPIPE)))?
            }
            None => file.try_borrow_mut().map_err(|_| Errno(r::EIO))?.read(&mut buf)?,
        };
        buf.truncate(n.min(max));
        if !buf.is_empty() {
            self.lx_notify_access(&side.desc);
        }
        Ok(buf)
    }

    /// The description at `fd` with offset `at`.
    fn lx_side(&self, tid: Pid, fd: usize, at: Option<u64>) -> Result<Side, Errno> {
        Ok(Side { desc: self.desc(tid, fd)?, at })
    }
}

/// Runs a call whose arguments `args` are `loff_t *` (the kernel's copies, `None` for a
/// null pointer): `f` gets the offsets and moves them; they are written back whatever it
/// returns (unmoved on failure), so the guest always sees the kernel's copies.
fn with_offsets<const N: usize>(
    k: &mut Kernel,
    tid: Pid,
    c: &Call,
    args: [usize; N],
    f: impl FnOnce(&mut Kernel, &mut [Option<u64>; N]) -> SysResult,
) -> SysResult {
    let mut offsets = args.map(|a| c.input(a).map(|b| super::abi::le64(b, 0)));
    let result = if offsets.iter().flatten().any(|&o| (o as i64) < 0) { err(r::EINVAL) } else { f(k, &mut offsets) };
    for (a, off) in args.iter().zip(offsets) {
        if let Some(off) = off {
            let mm = k.mm_of(tid)?;
            copy_out(&mut mm.borrow_mut().space.mem, c.args[*a], &off.to_le_bytes())?;
        }
    }
    result
}

/// The input's own `O_NONBLOCK` (a blocking read from a pipe parks; a non-blocking one fails).
fn input_nonblock(side: &Side) -> bool {
    side.desc.flags.get() & r::O_NONBLOCK != 0
}

/// Moves a seekable input's position back by `n` bytes read but not written.
fn give_back(side: &Side, n: usize, keep: bool) {
    if n == 0 || keep || side.at.is_some() {
        return;
    }
    if let Ok(mut f) = side.desc.file.try_borrow_mut() {
        let _ = f.seek(-(n as i64), r::SEEK_CUR);
    }
}

fn is_pipe_desc(side: &Side) -> bool {
    side.desc.file.try_borrow().is_ok_and(|f| is_pipe(&*f))
}

fn is_regular(side: &Side) -> Result<bool, Errno> {
    let st = side.desc.file.try_borrow().map_err(|_| Errno(r::EIO))?.stat()?;
    Ok(st.st_mode & r::MODE_TYPE == r::MODE_FILE)
}

// --- handlers (rows of `warden_abi::linux_calls!`) -------------------------------------------

/// `sendfile(out, in, offset, count)`: with an offset, the input is read from there (its
/// position stays) and the offset moves.
pub(super) fn sendfile(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let [out_fd, in_fd, _, count, ..] = c.args;
    with_offsets(k, tid, c, [2], |k, [off]| {
        let mut input = k.lx_side(tid, in_fd, *off)?;
        let mut output = k.lx_side(tid, out_fd, None)?;
        if is_pipe_desc(&input) && input.at.is_some() {
            return err(r::ESPIPE);
        }
        let nonblock = output.desc.flags.get() & r::O_NONBLOCK != 0;
        let n = k.lx_transfer(tid, &mut input, &mut output, count, nonblock, false)?;
        *off = input.at;
        Ok(n)
    })
}

/// `copy_file_range(in, off_in, out, off_out, len, flags)`: regular files only, flags 0.
pub(super) fn copy_file_range(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let [in_fd, _, out_fd, _, len, flags] = c.args;
    with_offsets(k, tid, c, [1, 3], |k, [off_in, off_out]| {
        if flags != 0 {
            return err(r::EINVAL);
        }
        let mut input = k.lx_side(tid, in_fd, *off_in)?;
        let output = k.lx_side(tid, out_fd, *off_out)?;
        if !is_regular(&input)? || !is_regular(&output)? {
            return err(r::EINVAL);
        }
        if output.desc.flags.get() & r::O_APPEND != 0 {
            return err(r::EBADF);
        }
        let position = |s: &Side| -> Result<u64, Errno> {
            match s.at {
                Some(at) => Ok(at),
                None => s.desc.file.try_borrow_mut().map_err(|_| Errno(r::EIO))?.seek(0, r::SEEK_CUR),
            }
        };
        // The same file with overlapping ranges is EINVAL.
        let (from, to) = (position(&input)?, position(&output)?);
        if Rc::ptr_eq(&input.desc.file, &output.desc.file)
            && from < to.saturating_add(len as u64)
            && to < from.saturating_add(len as u64)
        {
            return err(r::EINVAL);
        }
        // Without an offset the output is written at its position, which then moves.
        let mut at_output = Side { desc: output.desc.clone(), at: Some(to) };
        let n = k.lx_transfer(tid, &mut input, &mut at_output, len, false, false)?;
        if off_out.is_none() {
            output.desc.file.try_borrow_mut().map_err(|_| Errno(r::EIO))?.seek((to + n as u64) as i64, r::SEEK_SET)?;
        }
        *off_in = off_in.map(|_| from + n as u64);
        *off_out = off_out.map(|_| to + n as u64);
        Ok(n)
    })
}

/// `splice(in, off_in, out, off_out, len, flags)`: one side must be a pipe, which takes no
/// offset (ESPIPE).
pub(super) fn splice(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let [in_fd, _, out_fd, _, len, flags] = c.args;
    with_offsets(k, tid, c, [1, 3], |k, [off_in, off_out]| {
        if flags & !SPLICE_FLAGS != 0 {
            return err(r::EINVAL);
        }
        let mut input = k.lx_side(tid, in_fd, *off_in)?;
        let mut output = k.lx_side(tid, out_fd, *off_out)?;
        let (in_pipe, out_pipe) = (is_pipe_desc(&input), is_pipe_desc(&output));
        if !in_pipe && !out_pipe {
            return err(r::EINVAL);
        }
        if (in_pipe && input.at.is_some()) || (out_pipe && output.at.is_some()) {
            return err(r::ESPIPE);
        }
        let nonblock = flags & SPLICE_F_NONBLOCK != 0 || output.desc.flags.get() & r::O_NONBLOCK != 0;
        let n = k.lx_transfer(tid, &mut input, &mut output, len, nonblock, false)?;
        *off_in = input.at;
        *off_out = output.at;
        Ok(n)
    })
}

/// `tee(in, out, len, flags)`: copies what pipe `in` holds into pipe `out`, leaving it in `in`.
pub(super) fn tee(k: &mut Kernel, tid: Pid, c: &Call) -> SysResult {
    let [in_fd, out_fd, len, flags, ..] = c.args;
    if flags & !SPLICE_FLAGS != 0 {
        return err(r::EINVAL);
    }
    let mut input = k.lx_side(tid, in_fd, None)?;
    let mut output = k.lx_side(tid, out_fd, None)?;
    if !is_pipe_desc(&input) || !is_pipe_desc(&output) || Rc::ptr_eq(&input.desc.file, &output.desc.file) {
        return err(r::EINVAL);
    }
    let nonblock = flags & SPLICE_F_NONBLOCK != 0 || output.desc.flags.get() & r::O_NONBLOCK != 0;
    k.lx_transfer(tid, &mut input, &mut output, len, nonblock, true)
}
