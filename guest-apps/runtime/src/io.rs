//! Console and descriptor I/O: `print!`-family macros, whole-buffer reads and writes, and a
//! line reader.
//!
//! Design: a print formats into a 1 KiB stack buffer ([`FdWriter`]) that is written to the
//! descriptor when full and at the end of the macro, so one `println!` is usually one
//! `write` and nothing stays buffered across calls (children forked later never inherit
//! pending output). Write errors on stdout/stderr are ignored, as there is nowhere to report
//! them. [`write_all`] and [`read_to_end`] retry on `EINTR` and short transfers.

use alloc::vec::Vec;
use core::fmt;

use crate::abi::{EINTR, Errno};
use crate::{Result, sys};

/// Standard input descriptor.
pub const STDIN: usize = 0;
/// Standard output descriptor.
pub const STDOUT: usize = 1;
/// Standard error descriptor.
pub const STDERR: usize = 2;

/// Writes all of `buf` to `fd`, retrying short writes and `EINTR`.
pub fn write_all(fd: usize, mut buf: &[u8]) -> Result<()> {
    while !buf.is_empty() {
        match sys::write(fd, buf) {
            Ok(0) => return Err(Errno(crate::abi::EIO)),
            Ok(n) => buf = &buf[n.min(buf.len())..],
            Err(Errno(EINTR)) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

/// Reads once from `fd` into `buf`, retrying `EINTR`.
pub fn read(fd: usize, buf: &mut [u8]) -> Result<usize> {
    loop {
        match sys::read(fd, buf) {
            Err(Errno(EINTR)) => {}
            other => return other,
        }
    }
}

/// Appends everything readable from `fd` (until end of file) to `out`; returns the count.
pub fn read_to_end(fd: usize, out: &mut Vec<u8>) -> Result<usize> {
    let start = out.len();
    let mut chunk = [0u8; 4096];
    loop {
        let n = read(fd, &mut chunk)?;
        if n == 0 {
            return Ok(out.len() - start);
        }
        out.extend_from_slice(&chunk[..n.min(chunk.len())]);
    }
}

/// A formatter sink that buffers up to 1 KiB on the stack and writes to a descriptor.
pub struct FdWriter {
    fd: usize,
    buf: [u8; 1024],
    len: usize,
    error: Option<Errno>,
}

impl FdWriter {
    /// A writer to `fd`.
    pub const fn new(fd: usize) -> Self {
        FdWriter { fd, buf: [0; 1024], len: 0, error: None }
    }

    /// Writes out the buffered bytes; returns the first error seen so far.
    pub fn flush(&mut self) -> Result<()> {
        if self.len > 0 {
            if let Err(err) = write_all(self.fd, &self.buf[..self.len]) {
                self.error.get_or_insert(err);
            }
            self.len = 0;
        }
        self.error.map_or(Ok(()), Err)
    }
}

impl fmt::Write for FdWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let bytes = s.as_bytes();
        if self.len + bytes.len() > self.buf.len() {
            let _ = self.flush();
        }
        if bytes.len() > self.buf.len() {
            if let Err(err) = write_all(self.fd, bytes) {
                self.error.get_or_insert(err);
            }
        } else {
            self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
            self.len += bytes.len();
        }
        Ok(())
    }
}

impl Drop for FdWriter {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// Formats `args` to descriptor `fd` (the engine of the print macros).
pub fn print_to(fd: usize, args: fmt::Arguments<'_>) -> Result<()> {
    let mut writer = FdWriter::new(fd);
    let _ = fmt::Write::write_fmt(&mut writer, args);
    writer.flush()
}

#[doc(hidden)]
pub fn _print(fd: usize, args: fmt::Arguments<'_>) {
    let _ = print_to(fd, args);
}

/// Prints to standard output.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::io::_print($crate::io::STDOUT, format_args!($($arg)*)) };
}

/// Prints to standard output, with a newline.
#[macro_export]
macro_rules! println {
    () => { $crate::io::_print($crate::io::STDOUT, format_args!("\n")) };
    ($($arg:tt)*) => {
        $crate::io::_print($crate::io::STDOUT, format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// Prints to standard error.
#[macro_export]
macro_rules! eprint {
    ($($arg:tt)*) => { $crate::io::_print($crate::io::STDERR, format_args!($($arg)*)) };
}

/// Prints to standard error, with a newline.
#[macro_export]
macro_rules! eprintln {
    () => { $crate::io::_print($crate::io::STDERR, format_args!("\n")) };
    ($($arg:tt)*) => {
        $crate::io::_print($crate::io::STDERR, format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// Reads a descriptor line by line (lines end in `'\n'`, which is stripped).
pub struct LineReader {
    fd: usize,
    pending: Vec<u8>,
    eof: bool,
}

impl LineReader {
    /// A line reader over `fd`.
    pub fn new(fd: usize) -> Self {
        LineReader { fd, pending: Vec::new(), eof: false }
    }

    /// The next line without its `'\n'`; `Ok(None)` at end of input. A last line without a
    /// newline is still returned.
    pub fn next_line(&mut self) -> Result<Option<Vec<u8>>> {
        loop {
            if let Some(pos) = self.pending.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.pending.drain(..=pos).collect();
                line.pop();
                return Ok(Some(line));
            }
            if self.eof {
                if self.pending.is_empty() {
                    return Ok(None);
                }
                return Ok(Some(core::mem::take(&mut self.pending)));
            }
            let mut chunk = [0u8; 512];
            let n = read(self.fd, &mut chunk)?;
            if n == 0 {
                self.eof = true;
            } else {
                self.pending.extend_from_slice(&chunk[..n.min(chunk.len())]);
            }
        }
    }
}
