#!/usr/bin/env bash
# rustc wrapper for the kernel targets' build (campaign.sh sets it as RUSTC_WRAPPER, with
# WARDEN_FUZZ_KERNEL_BUILD=1). Cargo runs it as `WRAPPER RUSTC ARGS...`.
#
# Why: libFuzzer's comparison hooks (`-sanitizer-coverage-trace-compares`) in `emu` and
# `iced_x86` were about 14 % of a `syscalls` / `linux_syscalls` / `overlay` input, and those
# targets fuzz the guest kernel, not the CPU. cargo-fuzz puts the option in RUSTFLAGS, which
# Cargo passes after any per-package profile rustflags, so only a wrapper can take it out of
# chosen crates. `interp`, `jit` and `elf` fuzz `emu` itself and keep the hooks (the default
# build). Everything else is passed through unchanged.
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
  [ "$a" = -Cllvm-args=-sanitizer-coverage-trace-compares ] && continue
  args+=("$a")
done
# Any other spelling of the option would slip through and leave the hooks in: refuse it.
for a in "${args[@]}"; do
  case "$a" in
    *trace-compares*)
      echo "kernel-rustc-wrapper.sh: unexpected form of the trace-compares option for $crate: $a" >&2
      exit 1
      ;;
  esac
done
exec "$rustc" "${args[@]}"
