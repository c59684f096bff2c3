//! Supervising children from the guest: reading packets from a `SUPERVISE` descriptor and
//! answering them (layouts in `warden_abi::supervise`).
//!
//! Design: [`Supervisor`] owns the descriptor and one packet buffer big enough for any
//! packet ([`abi::SUPERVISE_MAX_PACKET`]), so nothing is ever truncated; [`Packet`] borrows
//! the header and the item bytes from it. Replies are built from [`abi::SuperviseReply`].
//! [`spawn_thread`] starts a `CLONE_VM | CLONE_THREAD` thread on its own stack (tests of
//! the race-freedom of supervision need two threads sharing memory).

use alloc::vec;
use alloc::vec::Vec;

use crate::abi::{self, PacketItem, SupervisePacket, SuperviseReply};
use crate::fs::File;
use crate::{Result, sys};

/// One packet read from a supervision descriptor.
#[derive(Clone, Debug)]
pub struct Packet<'a> {
    /// The fixed header.
    pub head: SupervisePacket,
    /// The encoded items after the header.
    pub items: &'a [u8],
}

impl Packet<'_> {
    /// The items, as `(header, bytes)`.
    pub fn iter(&self) -> impl Iterator<Item = (PacketItem, &[u8])> {
        abi::packet_items(self.items)
    }

    /// The first item of `kind` (`abi::ITEM_*`).
    pub fn item(&self, kind: u32) -> Option<&[u8]> {
        abi::trace::find_item(self.items, kind)
    }
}

/// A supervision descriptor with a packet buffer.
pub struct Supervisor {
    file: File,
    buf: Vec<u8>,
}

impl Supervisor {
    /// Wraps a descriptor from `supervise`.
    pub fn new(file: File) -> Supervisor {
        Supervisor { file, buf: vec![0u8; abi::SUPERVISE_MAX_PACKET] }
    }

    /// The descriptor.
    pub fn fd(&self) -> usize {
        self.file.fd()
    }

    /// Reads the next packet; `None` when the read returned 0 bytes (nothing pending, or
    /// with `SUPERVISE_BLOCK`: no supervised process left).
    #[allow(clippy::should_implement_trait, reason = "a packet borrows the buffer: not an Iterator")]
    pub fn next(&mut self) -> Result<Option<Packet<'_>>> {
        let n = loop {
            match sys::read(self.file.fd(), &mut self.buf) {
                Err(abi::Errno(abi::EINTR)) => {}
                other => break other?,
            }
        };
        if n == 0 {
            return Ok(None);
        }
        let head = SupervisePacket::from_bytes(&self.buf[..n]).ok_or(abi::Errno(abi::EIO))?;
        Ok(Some(Packet { head, items: &self.buf[SupervisePacket::SIZE..n] }))
    }

    /// Answers packet `seq` with `action` (`abi::REPLY_*`) and `value`.
    pub fn reply(&self, seq: u64, action: u32, value: u64) -> Result<()> {
        let r = SuperviseReply { seq, action, flags: 0, value, data_len: 0 };
        sys::write(self.file.fd(), &r.to_bytes()).map(drop)
    }

    /// Answers a result packet with a new value and new output bytes.
    pub fn reply_data(&self, seq: u64, value: u64, data: &[u8]) -> Result<()> {
        let r = SuperviseReply {
            seq,
            action: abi::REPLY_RETURN,
            flags: abi::REPLY_FLAG_DATA,
            value,
            data_len: data.len() as u64,
        };
        let mut bytes = Vec::with_capacity(SuperviseReply::SIZE + data.len());
        bytes.extend_from_slice(&r.to_bytes());
        bytes.extend_from_slice(data);
        sys::write(self.file.fd(), &bytes).map(drop)
    }

    /// Seed 000's reply: one 8-byte value for the oldest unanswered packet (sets `rax`,
    /// the call does not run).
    pub fn set_rax(&self, value: u64) -> Result<()> {
        sys::write(self.file.fd(), &value.to_le_bytes()).map(drop)
    }
}

/// Starts a thread (`CLONE_VM | CLONE_THREAD | CLONE_FS | CLONE_FILES | CLONE_SIGHAND`)
/// running `f(arg)` on a fresh 64 KiB stack (never freed); the thread exits when `f`
/// returns. Returns the thread id.
pub fn spawn_thread(f: extern "C" fn(usize), arg: usize) -> Result<usize> {
    let stack: &'static mut [u8] = Vec::leak(vec![0u8; 64 * 1024]);
    let top = (stack.as_mut_ptr() as usize + stack.len()) & !15;
    let flags = abi::CLONE_VM | abi::CLONE_THREAD | abi::CLONE_FS | abi::CLONE_FILES | abi::CLONE_SIGHAND;
    let ret: usize;
    // SAFETY: the child starts on its own leaked stack and never returns into this frame: it
    // calls `f` and exits. The parent only gets the return value; registers the syscall
    // clobbers are declared.
    unsafe {
        core::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "mov rdi, r13",
            "call r12",
            "xor edi, edi",
            "mov eax, {exit}",
            "syscall",
            "ud2",
            "2:",
            exit = const abi::SYS_EXIT,
            inlateout("rax") abi::SYS_CLONE => ret,
            inlateout("rdi") flags => _,
            inlateout("rsi") top => _,
            in("r12") f as usize,
            in("r13") arg,
            lateout("rdx") _,
            lateout("rcx") _,
            lateout("r11") _,
            lateout("r8") _,
            lateout("r9") _,
            lateout("r10") _,
        );
    }
    abi::Errno::demux(ret)
}
