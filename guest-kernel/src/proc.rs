//! The `proc:` scheme: process internals as text (seed 003's "descriptors
//! into process internals").
//!
//! - `proc:` lists the pids, one per line (a directory).
//! - `proc:PID` (or `proc:self`) lists `status`, `maps`, `fds`, `cmdline`.
//! - `proc:PID/status`: `Key:\tvalue` lines (Pid, PPid, State, Threads, Uid,
//!   Gid, VmSize in kB, SigPnd, SigBlk, ExitStatus for zombies).
//! - `proc:PID/maps`: `start-end perms [label]` per run of pages.
//! - `proc:PID/fds`: `fd path flags` per open descriptor (flags in hex).
//! - `proc:PID/cmdline`: the arguments of the last exec, each followed by NUL.
//!
//! Each open takes a snapshot; reads and seeks walk that snapshot.

use std::cell::RefCell;
use std::rc::Rc;

use warden_abi::{Errno, Stat, EINVAL, ENOENT, MODE_DIR, MODE_FILE, SEEK_CUR, SEEK_END, SEEK_SET};

use crate::process::{ProcState, ThreadState};
use crate::scheme::{FileOps, FileRef, IoResult};
use crate::{Kernel, Pid};

/// A read-only file whose contents were fixed when it was opened.
pub(crate) struct SnapshotFile {
    data: Vec<u8>,
    pos: usize,
    path: Vec<u8>,
    dir: bool,
}

impl SnapshotFile {
    pub(crate) fn open(path: Vec<u8>, data: Vec<u8>, dir: bool) -> FileRef {
        Rc::new(RefCell::new(SnapshotFile { data, pos: 0, path, dir }))
    }
}

impl FileOps for SnapshotFile {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        let rest = self.data.get(self.pos..).unwrap_or(&[]);
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.pos += n;
        Ok(n)
    }

    fn seek(&mut self, offset: i64, whence: usize) -> Result<u64, Errno> {
        let base = match whence {
            SEEK_SET => 0i64,
            SEEK_CUR => self.pos as i64,
            SEEK_END => self.data.len() as i64,
            _ => return Err(Errno(EINVAL)),
        };
        let pos = base.checked_add(offset).filter(|&p| p >= 0).ok_or(Errno(EINVAL))?;
        self.pos = pos as usize;
        Ok(pos as u64)
    }

    fn stat(&self) -> Result<Stat, Errno> {
        let mode = if self.dir { MODE_DIR | 0o555 } else { MODE_FILE | 0o444 };
        Ok(Stat { st_mode: mode, st_nlink: 1, st_size: self.data.len() as u64, ..Stat::default() })
    }

    fn path(&self) -> Vec<u8> {
        self.path.clone()
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Option<Result<usize, Errno>> {
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(self.data.len());
        let n = (self.data.len() - start).min(buf.len());
        buf[..n].copy_from_slice(&self.data[start..start + n]);
        Some(Ok(n))
    }
}

impl Kernel {
    pub(crate) fn open_proc(&self, caller: Pid, path: &[u8]) -> Result<FileRef, Errno> {
        let path = std::str::from_utf8(path).map_err(|_| Errno(ENOENT))?.trim_matches('/');
        let full = format!("proc:{path}").into_bytes();
        // A jailed caller sees only the processes in its jail.
        let jail = if self.policy_active { self.jail_of(caller) } else { None };
        let visible = |pid: Pid| jail.as_ref().is_none_or(|j| self.in_jail(j, pid));
        if path.is_empty() {
            let list: String = self.procs.keys().filter(|&&pid| visible(pid)).map(|pid| format!("{pid}\n")).collect();
            return Ok(SnapshotFile::open(full, list.into_bytes(), true));
        }
        let (pid_part, file) = match path.split_once('/') {
            Some((p, f)) => (p, f),
            None => (path, ""),
        };
        let pid: Pid = if pid_part == "self" { caller } else { pid_part.parse().map_err(|_| Errno(ENOENT))? };
        if !visible(pid) {
            return Err(Errno(ENOENT));
        }
        let p = self.procs.get(&pid).ok_or(Errno(ENOENT))?;
        let data = match file {
            "" => return Ok(SnapshotFile::open(full, b"status\nmaps\nfds\ncmdline\n".to_vec(), true)),
            "status" => {
                let state = match p.state {
                    ProcState::Zombie(_) => "Z (zombie)",
                    ProcState::Alive => {
                        let all_blocked = p
                            .threads
                            .iter()
                            .all(|t| self.threads.get(t).is_some_and(|t| matches!(t.state, ThreadState::Blocked(_))));
                        if all_blocked {
                            "S (sleeping)"
                        } else {
                            "R (running)"
                        }
                    }
                };
                let mask = p.threads.first().and_then(|t| self.threads.get(t)).map_or(0, |t| t.sigmask);
                let vm = p.mm.borrow().mapped_bytes() / 1024;
                let mut s = format!(
                    "Name:\t{}\nState:\t{}\nPid:\t{}\nPPid:\t{}\nPgid:\t{}\nUid:\t{}\nGid:\t{}\nThreads:\t{}\nVmSize:\t{} kB\nSigPnd:\t{:016x}\nSigBlk:\t{:016x}\n",
                    p.cmdline.first().map(|a| String::from_utf8_lossy(a).into_owned()).unwrap_or_default(),
                    state,
                    p.pid,
                    p.ppid,
                    p.pgid,
                    p.uid,
                    p.gid,
                    p.threads.len(),
                    vm,
                    p.pending,
                    mask
                );
                if let ProcState::Zombie(status) = p.state {
                    s.push_str(&format!("ExitStatus:\t{status:#x}\n"));
                }
                for t in &p.threads {
                    if let Some(call) = self.blocked_call(*t) {
                        s.push_str(&format!("Blocked:\t{} {}\n", t, call.name().unwrap_or("?")));
                    }
                }
                s.into_bytes()
            }
            "maps" => p.mm.borrow().describe().into_bytes(),
            "fds" => {
                let mut s = String::new();
                for (fd, entry) in p.files.borrow().iter() {
                    let path = entry.desc.file.try_borrow().map(|f| f.path()).unwrap_or_default();
                    s.push_str(&format!(
                        "{} {} {:#x}{}\n",
                        fd,
                        String::from_utf8_lossy(&path),
                        entry.desc.flags.get(),
                        if entry.cloexec { " cloexec" } else { "" }
                    ));
                }
                s.into_bytes()
            }
            "cmdline" => {
                let mut out = Vec::new();
                for a in &p.cmdline {
                    out.extend_from_slice(a);
                    out.push(0);
                }
                out
            }
            _ => return Err(Errno(ENOENT)),
        };
        Ok(SnapshotFile::open(full, data, false))
    }
}
