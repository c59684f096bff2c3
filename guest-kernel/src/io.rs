//! The I/O core: what reading and writing a description means, for both personalities.
//!
//! Every call that moves bytes through a descriptor comes here: the Redox `read` and
//! `write`; the Linux `read`, `pread64`, `readv`, `preadv`, `write`, `pwrite64`, `writev`,
//! `pwritev`, `sendto` and `sendmsg`. The personalities only translate ABI details on the
//! way in and out (where the buffers are, which flag makes one call non-blocking: Redox's
//! [`crate::syscall::FD_NONBLOCK_CALL`], Linux's `MSG_DONTWAIT`; `MSG_NOSIGNAL`; Linux's
//! EISDIR for a directory). The rules decided here, once:
//! - **blocking or EAGAIN** ([`would_block`]): a file that cannot move bytes now answers
//!   `WouldBlock(key)`. A non-blocking call (the description's `O_NONBLOCK`, or the call's
//!   own flag) fails with EAGAIN; any other parks the thread on the key and runs again on
//!   the same copy of the call when woken.
//! - **partial reads**: one read moves what the file has now (at most [`MAX_IO`] bytes,
//!   scattered over the caller's buffers in order) and never waits for more.
//! - **partial writes** ([`write_loop`]): a blocking write goes on until all of its data is
//!   in (POSIX): when a pipe fills part-way, the thread parks, and the re-run skips the
//!   bytes already written (`Thread::write_done`); a signal handler then makes the call
//!   return that count (`Kernel::interrupt`). A non-blocking write returns the count it
//!   wrote before it would block. An error after some bytes were written returns that count
//!   (the error is for the next call).
//! - **EPIPE**: a write that fails with EPIPE raises SIGPIPE in the writing thread unless
//!   the call asked not to (`MSG_NOSIGNAL`).
//! - **user-space schemes**: a file a daemon serves (`crate::scheme::user`) moves its bytes
//!   as one request to the daemon and its answer (the caller parks until then), the same
//!   for both personalities; it has no offsets (`pread`/`pwrite`: ESPIPE).
//! - **whole files** ([`read_to_end`]): the kernel's own reads of a listing or a file.
//! - **file mappings** ([`map_contents`]): the bytes a private file mapping starts with, for
//!   Redox `fmap` and Linux `mmap` alike (the two copies of this loop once disagreed on the
//!   error for a file with no contents to map: EACCES and ENODEV; it is ENODEV, as POSIX says).
//!
//! Before this module the Redox and Linux paths each had these rules (the EAGAIN choice four
//! times, SIGPIPE three); Redox writes into a full pipe returned a short count instead of
//! blocking for the rest.

use warden_abi::{
    Errno, EBADF, EINVAL, EIO, ENODEV, ENOMEM, EPIPE, ESPIPE, O_ACCMODE, O_APPEND, O_NONBLOCK, O_RDONLY, O_WRONLY,
};
use warden_abi::{SEEK_CUR, SEEK_END, SEEK_SET, SIGPIPE};

use crate::call::{Block, SysError, SysResult};
use crate::process::{OpenFile, WaitOn};
use crate::scheme::{FileOps, IoError, IoResult, WaitKey};
use crate::usercopy::{check_writable, copy_out};
use crate::{Kernel, Pid};
use warden_abi::table::MAX_IO;

/// How one transfer runs (the ABI-independent part of its flags).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct How {
    /// Fail with EAGAIN instead of parking.
    pub nonblock: bool,
    /// Read or write at this offset, leaving the file position alone (`pread`, `pwrite`).
    pub at: Option<u64>,
    /// A write that fails with EPIPE raises SIGPIPE.
    pub sigpipe: bool,
    /// The transfer is a call's own, which may park until a user-space daemon answers (a
    /// transfer inside another call, as `sendfile`'s, cannot: EOPNOTSUPP for such a file).
    pub whole_call: bool,
}

impl How {
    /// A transfer as description `desc` says (its `O_NONBLOCK`), made non-blocking also by
    /// the call itself if `call_nonblock`.
    pub(crate) fn of(desc: &OpenFile, call_nonblock: bool) -> How {
        How { nonblock: call_nonblock || desc.flags.get() & O_NONBLOCK != 0, at: None, sigpipe: true, whole_call: true }
    }

    /// The same transfer at offset `at` (`None`: at the file position).
    pub(crate) fn at(self, at: Option<u64>) -> How {
        How { at, ..self }
    }
}

/// The one answer to "the file would block on `key`": EAGAIN for a non-blocking call,
/// otherwise park the thread and run the call again when `key` is woken.
pub(crate) fn would_block(nonblock: bool, key: WaitKey) -> SysError {
    if nonblock {
        SysError::Errno(Errno(warden_abi::EAGAIN))
    } else {
        Block::retry(WaitOn::Key(key))
    }
}

/// The rules of a write of `len` bytes, of which `done` were written by an earlier run of
/// the same call: `step(done)` writes from byte `done` on and says how many it took. Returns
/// the call's result and the count to remember for the re-run (non-zero only when it parks).
pub(crate) fn write_loop(
    mut done: usize,
    len: usize,
    nonblock: bool,
    mut step: impl FnMut(usize) -> IoResult<usize>,
) -> (SysResult, usize) {
    done = done.min(len);
    loop {
        match step(done) {
            Ok(n) => {
                done += n.min(len - done);
                if done == len || n == 0 {
                    return (Ok(done), 0);
                }
            }
            Err(IoError::WouldBlock(_)) if done > 0 && nonblock => return (Ok(done), 0),
            Err(IoError::WouldBlock(key)) => return (Err(would_block(nonblock, key)), if nonblock { 0 } else { done }),
            Err(IoError::Errno(_)) if done > 0 => return (Ok(done), 0),
            Err(IoError::Errno(e)) => return (Err(e.into()), 0),
        }
    }
}

/// The bytes a private mapping of `len` bytes of `desc` from `offset` starts with: the
/// file's contents up to its end (shorter than `len` there), ENODEV for a file that has no
/// contents to map (a pipe, the console), ENOMEM when the host cannot hold them.
///
/// The buffer grows as the file's bytes arrive, a chunk at a time, never to `len` up
/// front: `len` is the guest's mapping size, which may be far beyond the file's end and
/// the host's memory (a 36 GB map of a four-byte file aborted the host on the allocation).
pub(crate) fn map_contents(desc: &OpenFile, offset: u64, len: usize) -> Result<Vec<u8>, Errno> {
    const CHUNK: usize = 256 * 1024;
    let f = desc.file.try_borrow().map_err(|_| Errno(EIO))?;
    let mut buf = Vec::new();
    while buf.len() < len {
        let done = buf.len();
        let want = (len - done).min(CHUNK);
        buf.try_reserve(want).map_err(|_| Errno(ENOMEM))?;
        buf.resize(done + want, 0);
        let at = offset.checked_add(done as u64).ok_or(Errno(EINVAL))?;
        let n = f.read_at(at, &mut buf[done..]).ok_or(Errno(ENODEV))??;
        buf.truncate(done + n.min(want));
        if n == 0 {
            break;
        }
    }
    Ok(buf)
}

/// The whole of `file` from its position on, for the kernel's own use (a directory
/// listing, a file a Linux call copies): fails with `too_big` past `cap` bytes, and with
/// EAGAIN if the file would block.
pub(crate) fn read_to_end(file: &mut dyn FileOps, cap: u64, too_big: Errno) -> Result<Vec<u8>, Errno> {
    let mut out = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut chunk).map_err(|e| match e {
            IoError::Errno(e) => e,
            IoError::WouldBlock(_) => Errno(warden_abi::EAGAIN),
        })?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&chunk[..n.min(chunk.len())]);
        if out.len() as u64 > cap {
            return Err(too_big);
        }
    }
}

impl Kernel {
    /// One read from `desc` for thread `tid`, scattered over the guest ranges `iov` in
    /// order. Every byte it could write is checked first, so a bad buffer fails with EFAULT
    /// before anything is consumed.
    pub(crate) fn read_desc(&mut self, tid: Pid, desc: &OpenFile, iov: &[(usize, usize)], how: How) -> SysResult {
        if desc.flags.get() & O_ACCMODE == O_WRONLY {
            return Err(Errno(EBADF).into());
        }
        // A file a user-space daemon serves: a request to it (crate::scheme::user).
        if self.ns.user.active {
            if let Some(served) = self.user_read(tid, desc, iov, how) {
                return served;
            }
        }
        let mm = self.mm_of(tid)?;
        let total = iov.iter().fold(0usize, |t, &(_, len)| t + len.min(MAX_IO - t));
        // Only the part the read can fill is checked (a file that knows how much its next
        // read returns, a message or a request, fills at most that): the rest of a large
        // buffer is never touched. The bytes read are all inside the checked part, so none
        // is lost to a fault after the read.
        let hint = desc.file.try_borrow().ok().and_then(|f| f.read_hint());
        let fill = hint.map_or(total, |h| h.min(total));
        let mut checked = 0usize;
        for &(base, len) in iov {
            if checked == fill {
                break;
            }
            let len = len.min(fill - checked);
            check_writable(&mm.borrow().space.mem, base, len)?;
            checked += len;
        }
        let mut buf = self.sched.scratch.take_io(fill);
        let result = match how.at {
            None => match desc.file.try_borrow_mut() {
                Ok(mut f) => f.read(&mut buf),
                Err(_) => Err(IoError::Errno(Errno(EIO))),
            },
            Some(at) => match desc.file.try_borrow() {
                Ok(f) => f.read_at(at, &mut buf).unwrap_or(Err(Errno(ESPIPE))).map_err(IoError::Errno),
                Err(_) => Err(IoError::Errno(Errno(EIO))),
            },
        }
        .map(|n| n.min(buf.len()));
        let copied = match &result {
            Ok(n) => scatter(&mut mm.borrow_mut().space.mem, iov, &buf[..*n]),
            Err(_) => Ok(()),
        };
        self.sched.scratch.put_io(buf);
        copied?;
        match result {
            Ok(n) => Ok(n),
            Err(IoError::Errno(e)) => Err(e.into()),
            Err(IoError::WouldBlock(key)) => Err(would_block(how.nonblock, key)),
        }
    }

    /// A write of `data` into `desc` for thread `tid` ([`write_loop`]'s rules; `O_APPEND`
    /// writes at the end; `how.at` writes there and leaves the file position alone).
    pub(crate) fn write_desc(&mut self, tid: Pid, desc: &OpenFile, data: &[u8], how: How) -> SysResult {
        let flags = desc.flags.get();
        if flags & O_ACCMODE == O_RDONLY {
            return Err(Errno(EBADF).into());
        }
        if self.ns.user.active {
            if let Some(served) = self.user_write(tid, desc, data, how) {
                return served;
            }
        }
        let start = self.take_write_done(tid);
        let mut file = desc.file.try_borrow_mut().map_err(|_| Errno(EIO))?;
        let wrote = match how.at {
            Some(at) => {
                let old = file.seek(0, SEEK_CUR)?;
                let wrote = write_loop(start, data.len(), how.nonblock, |done| {
                    let to = at.checked_add(done as u64).and_then(|to| i64::try_from(to).ok()).ok_or(Errno(EINVAL))?;
                    file.seek(to, SEEK_SET)?;
                    file.write(&data[done..])
                });
                let _ = file.seek(old as i64, SEEK_SET);
                wrote
            }
            None => {
                if flags & O_APPEND != 0 {
                    let _ = file.seek(0, SEEK_END);
                }
                write_loop(start, data.len(), how.nonblock, |done| file.write(&data[done..]))
            }
        };
        // The file is no longer borrowed when SIGPIPE may end the process.
        drop(file);
        self.end_write(tid, wrote, how.sigpipe)
    }

    /// What an earlier, parked run of thread `tid`'s write has written (taken: 0 after).
    pub(crate) fn take_write_done(&mut self, tid: Pid) -> usize {
        self.threads.get_mut(&tid).map_or(0, |t| std::mem::take(&mut t.write_done))
    }

    /// Finishes a write [`write_loop`] ran: remembers its progress if it parks, and raises
    /// SIGPIPE for EPIPE if `sigpipe`.
    pub(crate) fn end_write(&mut self, tid: Pid, (result, done): (SysResult, usize), sigpipe: bool) -> SysResult {
        if let Some(t) = self.threads.get_mut(&tid) {
            t.write_done = done;
        }
        if sigpipe && matches!(result, Err(SysError::Errno(Errno(EPIPE)))) {
            self.post_thread_signal(tid, SIGPIPE);
        }
        result
    }
}

/// Copies `data` over the guest ranges `iov` in order (all checked writable before).
pub(crate) fn scatter(mem: &mut emu::Memory, iov: &[(usize, usize)], data: &[u8]) -> Result<(), Errno> {
    let mut done = 0;
    for &(base, len) in iov {
        if done >= data.len() {
            break;
        }
        let n = len.min(data.len() - done);
        copy_out(mem, base, &data[done..done + n])?;
        done += n;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use emu::{reg, Gate, GuestAddress, Perm};
    use warden_abi::linux::{nr, LINUX_CALL};
    use warden_abi::SigAction;

    use super::*;
    use crate::process::ThreadState;
    use crate::scheme::memfs::MemFs;
    use crate::{CaptureConsole, KernelConfig};

    /// Buffers live here.
    const BUF: u64 = 0x1000_0000;
    const BUF_LEN: usize = 0x4_0000;

    /// A kernel whose init (a Linux or a Redox process, stopped before its first
    /// instruction) has a pipe as descriptors 3 (read end) and 4 (write end), `/f` as 5,
    /// and [`BUF`] mapped.
    fn kernel(linux: bool) -> (Kernel, Pid) {
        let fs = MemFs::new();
        fs.insert("/p", &crate::testkit::static_elf(&[0xf4], 0));
        fs.insert("/f", b"file");
        let (console, _) = CaptureConsole::new(b"");
        let mut k = Kernel::new(KernelConfig::default(), Box::new(fs), Box::new(console));
        let personality = if linux { crate::linux::Personality::Linux } else { crate::linux::Personality::Redox };
        k.set_personality_override(Some(personality));
        let tid = k.spawn_init("/p", &["p"], &[]).unwrap();
        let (r, w) = crate::pipe::new_pipe(1, &k.waker, &k.mem_total).unwrap();
        assert_eq!(k.install_fd(tid, r, O_RDONLY, false), Ok(3));
        assert_eq!(k.install_fd(tid, w, O_WRONLY, false), Ok(4));
        let f = k.open_path(tid, b"/f", O_RDONLY).unwrap();
        assert_eq!(k.install_fd(tid, f, O_RDONLY, false), Ok(5));
        k.mm_of(tid).unwrap().borrow_mut().map(BUF, BUF_LEN as u64, Perm::RW).unwrap();
        (k, tid)
    }

    /// Makes call `number` (`LINUX_CALL | nr` for Linux) as thread `tid`; its `rax` after,
    /// `None` if it parked.
    fn call(k: &mut Kernel, tid: Pid, number: usize, args: [usize; 6]) -> Option<isize> {
        let entry = crate::syscall::table::entry(number).expect("a known call");
        let c = k.decode_call(tid, entry, args, Gate::Syscall).expect("a live thread");
        k.execute(tid, c);
        let t = &k.threads[&tid];
        (!t.is_blocked()).then(|| t.cpu.gpr[reg::RAX] as isize)
    }

    /// The numbers of `read` and `write` in one ABI.
    fn numbers(linux: bool) -> (usize, usize) {
        if linux {
            (LINUX_CALL | nr::READ, LINUX_CALL | nr::WRITE)
        } else {
            (warden_abi::SYS_READ, warden_abi::SYS_WRITE)
        }
    }

    fn put(k: &Kernel, tid: Pid, at: u64, bytes: &[u8]) {
        k.mm_of(tid).unwrap().borrow_mut().space.mem.write_raw(GuestAddress(at), bytes).unwrap();
    }

    /// A blocking write bigger than the pipe parks part-way on both ABIs; once the reader
    /// made room, the re-run writes the rest and the call returns the whole count (the
    /// Redox `write` returned the first part only before the two shared this core).
    #[test]
    fn a_blocking_write_into_a_full_pipe_goes_on_until_all_is_in() {
        for linux in [false, true] {
            let (mut k, tid) = kernel(linux);
            let (read, write) = numbers(linux);
            let len = crate::pipe::PIPE_CAPACITY + 100;
            put(&k, tid, BUF, &vec![7u8; len]);
            assert_eq!(call(&mut k, tid, write, [4, BUF as usize, len, 0, 0, 0]), None, "linux {linux}");
            assert_eq!(k.threads[&tid].write_done, crate::pipe::PIPE_CAPACITY);
            let ThreadState::Blocked(parked) =
                std::mem::replace(&mut k.threads.get_mut(&tid).unwrap().state, ThreadState::Runnable)
            else {
                unreachable!()
            };
            // The reader (this thread, while its write is set aside) empties the pipe.
            let mut drained = 0;
            while drained < crate::pipe::PIPE_CAPACITY {
                let n = call(&mut k, tid, read, [3, BUF as usize, BUF_LEN, 0, 0, 0]).unwrap();
                assert!(n > 0);
                drained += n as usize;
            }
            k.execute_boxed(tid, parked);
            assert_eq!(k.threads[&tid].cpu.gpr[reg::RAX], len as u64, "linux {linux}");
            assert_eq!(k.threads[&tid].write_done, 0);
        }
    }

    /// A signal handler ends a write parked part-way with the count written so far, with
    /// `SA_RESTART` too (Linux's `pipe_write` restarts only a write that wrote nothing).
    #[test]
    fn a_handler_makes_a_parked_write_return_its_count() {
        for (linux, restart) in [(false, false), (true, false), (true, true)] {
            let (mut k, tid) = kernel(linux);
            let (_, write) = numbers(linux);
            let len = crate::pipe::PIPE_CAPACITY + 100;
            put(&k, tid, BUF, &vec![7u8; len]);
            assert_eq!(call(&mut k, tid, write, [4, BUF as usize, len, 0, 0, 0]), None);
            let pid = k.threads[&tid].pid;
            let flags = if restart { warden_abi::SA_RESTART } else { 0 };
            let sig = warden_abi::SIGUSR1;
            k.procs[&pid].sighand.borrow_mut().actions[sig].sa =
                SigAction { sa_handler: 0x1000, sa_mask: [0; 2], sa_flags: flags };
            k.post_signal(pid, sig);
            let t = &k.threads[&tid];
            assert_eq!(t.cpu.gpr[reg::RAX], crate::pipe::PIPE_CAPACITY as u64, "linux {linux} restart {restart}");
            assert_eq!(t.write_done, 0);
        }
    }

    /// A read into memory the caller cannot write fails with EFAULT before it takes the
    /// bytes from the pipe (a Linux `read` once lost them).
    #[test]
    fn a_read_into_a_bad_buffer_takes_nothing() {
        for linux in [false, true] {
            let (mut k, tid) = kernel(linux);
            let (read, write) = numbers(linux);
            put(&k, tid, BUF, b"abc");
            assert_eq!(call(&mut k, tid, write, [4, BUF as usize, 3, 0, 0, 0]), Some(3));
            let efault = -(warden_abi::EFAULT as isize);
            assert_eq!(call(&mut k, tid, read, [3, 0x10, 3, 0, 0, 0]), Some(efault), "linux {linux}");
            assert_eq!(call(&mut k, tid, read, [3, BUF as usize + 8, 16, 0, 0, 0]), Some(3), "linux {linux}");
        }
    }

    /// Mapping a pipe fails with ENODEV on both ABIs (the Redox copy of the loop said EACCES).
    #[test]
    fn mapping_a_pipe_is_enodev_and_a_file_maps_its_bytes() {
        let enodev = Some(-(ENODEV as isize));
        let (mut k, tid) = kernel(true);
        let mmap = |fd| [0, 4096, 1, 2, fd, 0];
        assert_eq!(call(&mut k, tid, LINUX_CALL | nr::MMAP, mmap(3)), enodev);
        let at = call(&mut k, tid, LINUX_CALL | nr::MMAP, mmap(5)).unwrap();
        let mut got = [0u8; 5];
        k.mm_of(tid).unwrap().borrow().space.mem.read_raw(GuestAddress(at as u64), &mut got).unwrap();
        assert_eq!(&got, b"file\0");

        let (mut k, tid) = kernel(false);
        let map = warden_abi::Map { offset: 0, size: 4096, flags: warden_abi::PROT_READ, address: 0 };
        put(&k, tid, BUF, &map.to_bytes());
        let fmap = |fd| [fd, BUF as usize, warden_abi::Map::SIZE, 0, 0, 0];
        assert_eq!(call(&mut k, tid, warden_abi::SYS_FMAP, fmap(3)), enodev);
        assert!(call(&mut k, tid, warden_abi::SYS_FMAP, fmap(5)).unwrap() > 0);
    }

    const KEY: WaitKey = WaitKey(7);

    /// A file whose successive writes end as `script` says.
    fn steps(script: Vec<IoResult<usize>>) -> impl FnMut(usize) -> IoResult<usize> {
        let mut script = script.into_iter();
        move |_| script.next().expect("no more writes expected")
    }

    fn parked(r: &SysResult) -> bool {
        matches!(r, Err(SysError::Block(Block { on: WaitOn::Key(KEY), .. })))
    }

    #[test]
    fn blocking_write_goes_on_until_all_is_in_and_parks_with_its_progress() {
        let (r, keep) = write_loop(0, 10, false, steps(vec![Ok(4), Err(IoError::WouldBlock(KEY))]));
        assert!(parked(&r));
        assert_eq!(keep, 4);
        // The re-run starts at byte 4 and finishes.
        let mut seen = Vec::new();
        let (r, keep) = write_loop(keep, 10, false, |done| {
            seen.push(done);
            Ok(10 - done)
        });
        assert_eq!((r.ok(), keep, seen), (Some(10), 0, vec![4]));
    }

    /// A private map far bigger than its file reads the file's bytes and allocates no
    /// more (a buffer of the map's size up front aborted the host: a fuzzed guest mapped
    /// a four-byte file 36 GB long).
    #[test]
    fn a_map_far_beyond_the_file_end_holds_only_the_file() {
        let (k, tid) = kernel(false);
        let desc = k.desc(tid, 5).unwrap();
        assert_eq!(map_contents(&desc, 0, 1 << 40).unwrap(), b"file");
        assert_eq!(map_contents(&desc, 2, 1 << 40).unwrap(), b"le");
        assert_eq!(map_contents(&desc, 1, 2).unwrap(), b"il");
        assert_eq!(map_contents(&desc, 9, 1 << 40).unwrap(), b"");
    }

    #[test]
    fn nonblocking_write_returns_what_went_in_or_eagain() {
        let (r, keep) = write_loop(0, 10, true, steps(vec![Ok(4), Err(IoError::WouldBlock(KEY))]));
        assert_eq!((r.ok(), keep), (Some(4), 0));
        let (r, keep) = write_loop(0, 10, true, steps(vec![Err(IoError::WouldBlock(KEY))]));
        assert!(matches!(r, Err(SysError::Errno(Errno(warden_abi::EAGAIN)))));
        assert_eq!(keep, 0);
    }

    #[test]
    fn an_error_after_progress_returns_the_count() {
        let (r, _) = write_loop(0, 10, false, steps(vec![Ok(3), Err(Errno(EPIPE).into())]));
        assert_eq!(r.ok(), Some(3));
        let (r, _) = write_loop(0, 10, false, steps(vec![Err(Errno(EPIPE).into())]));
        assert!(matches!(r, Err(SysError::Errno(Errno(EPIPE)))));
    }

    #[test]
    fn a_file_that_takes_nothing_ends_the_write() {
        let (r, _) = write_loop(0, 10, false, steps(vec![Ok(2), Ok(0)]));
        assert_eq!(r.ok(), Some(2));
        // A count beyond what was asked is clamped (a file may not claim more).
        let (r, _) = write_loop(0, 10, false, steps(vec![Ok(99)]));
        assert_eq!(r.ok(), Some(10));
    }
}
