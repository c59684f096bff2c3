#!/usr/bin/env bash
# rustc wrapper for the kernel targets' build (campaign.sh sets it as RUSTC_WRAPPER, with
# WARDEN_FUZZ_KERNEL_BUILD=1). Cargo runs it as `WRAPPER RUSTC ARGS...`.
#
# Why: `syscalls`, `linux_syscalls` and `overlay` fuzz the guest kernel; `emu` is only its
# CPU. For `emu` and `iced_x86` the wrapper drops libFuzzer's comparison hooks
# (`-sanitizer-coverage-trace-compares`, about a fifth of those targets' cost per input) and
# keeps one coverage counter per function instead of one per edge (level 1 for 4: libFuzzer
# handles every counter a run hit, a cache miss each, and the interpreter hits hundreds per
# run; another sixth). Which `emu` functions a run reaches (the copy-on-write paths of a
# fork, say) still counts as coverage. cargo-fuzz puts the options in RUSTFLAGS, which
# Cargo passes after any per-package profile rustflags, so only a wrapper can change them for
# chosen crates. `interp`, `jit` and `elf` fuzz `emu` itself and keep everything (the
# default build). Every other crate's command line is passed through unchanged.
set -euo pipefail
rustc=$1
shift
if [ "${WARDEN_FUZZ_KERNEL_BUILD:-}" != 1 ]; then
  exec "$rustc" "$@"
fi
crate=
prev=
for a in "$@"; do
  [ "$prev" = --crate-name ] && crate=$a
  prev=$a
done
case "$crate" in
  emu | iced_x86) ;;
  *) exec "$rustc" "$@" ;;
esac
args=()
for a in "$@"; do
  case "$a" in
    -Cllvm-args=-sanitizer-coverage-trace-compares) continue ;;
    -Cllvm-args=-sanitizer-coverage-level=4) a=-Cllvm-args=-sanitizer-coverage-level=1 ;;
  esac
  args+=("$a")
done
# Any other spelling of the options would slip through and leave the edges or the hooks in:
# refuse it.
for a in "${args[@]}"; do
  case "$a" in
    -Cllvm-args=-sanitizer-coverage-level=1) ;;
    *trace-compares* | *sanitizer-coverage-level*)
      echo "kernel-rustc-wrapper.sh: unexpected form of a coverage option for $crate: $a" >&2
      exit 1
      ;;
  esac
done
exec "$rustc" "${args[@]}"
