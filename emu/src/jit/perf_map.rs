//! A `perf` map of translated code (`warden run --perf-map`), so that `perf report`
//! names samples in translated code by the guest code they run.
//!
//! `perf` reads `/tmp/perf-PID.map` for code it finds no file for: a line `START SIZE NAME`
//! per region, hexadecimal without `0x` (the format qemu-user's `-perfmap` writes too).
//! Each translation adds a line naming the guest address of its block, so `perf report
//! --sort sym` shows the hot guest blocks (`objdump -d --start-address=ADDR` then shows
//! their code). The map is one per host process, as the file name says, and so a global
//! here, not a field of the per-space `Jit`; translation is rare, so a mutex costs nothing
//! that shows. Arena space reused after the arena filled (`Jit::forget`) gets a second
//! line for the same host range; `perf` takes the later one, as it does for any JIT.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

static ON: AtomicBool = AtomicBool::new(false);
static SINK: Mutex<Option<Box<dyn Write + Send>>> = Mutex::new(None);

/// From now on, write a line to `sink` for each block translated (in any address space of
/// this host process); `None` stops. A write that fails stops it too (the run goes on).
pub fn write_perf_map(sink: Option<Box<dyn Write + Send>>) {
    let mut guard = SINK.lock().unwrap_or_else(|e| e.into_inner());
    ON.store(sink.is_some(), Ordering::Relaxed);
    *guard = sink;
}

/// Notes a translation of the block at guest `rip`, `len` bytes at host address `host`.
pub(super) fn note(host: usize, len: usize, rip: u64) {
    note_named(host as u64, len as u64, format_args!("guest:{rip:#x}"));
}

/// Notes `len` bytes of code at host address `host` named `name` (the shared stubs:
/// `warden:enter`, `warden:chain`, `warden:exit`).
pub(super) fn note_named(host: u64, len: u64, name: std::fmt::Arguments<'_>) {
    if !ON.load(Ordering::Relaxed) {
        return;
    }
    let mut guard = SINK.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(sink) = guard.as_mut() {
        if writeln!(sink, "{host:x} {len:x} {name}").and_then(|()| sink.flush()).is_err() {
            ON.store(false, Ordering::Relaxed);
            *guard = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A sink tests can read back.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_are_perfs_format() {
        let out = Shared::default();
        write_perf_map(Some(Box::new(out.clone())));
        note(0x7f00_1234_5000, 0x5c, 0x40_1a2b);
        write_perf_map(None);
        note(0x7f00_1234_6000, 0x10, 0x40_2000);
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        // Other tests of this binary may translate while the sink is set: look for ours.
        assert!(text.lines().any(|l| l == "7f0012345000 5c guest:0x401a2b"), "{text}");
        assert!(!text.contains("guest:0x402000"), "{text}");
    }
}
