#!/usr/bin/env bash
# A fuzz campaign: every target (or the ones named) for SECONDS each, one after the other,
# built optimised but with debug assertions and overflow checks on (an optimised build
# without them hid the undefined behaviour of issue 22) and no sanitizer (twice as fast;
# `SANITIZER=address` for ASan). Appends executions, exec/s, coverage and crashes per target
# to RESULTS.md. Corpora grow in corpus/TARGET, crashers land in artifacts/TARGET.
#
#   fuzz/campaign.sh [SECONDS] [TARGET...]      default: 600 s each, all targets
#
# Runs at `nice -n 19` (a shared machine; NICE=N for another), so exec/s follows the load;
# exec per CPU second (user + system time of the fuzzer) is the steadier figure. A target that
# crashes stops early; its crasher is listed, and belongs in regressions/TARGET once fixed
# (tests/fuzz_smoke.rs replays it).
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(interp jit elf tar syscalls linux_syscalls overlay trace policy vfs_host)
sanitizer=${SANITIZER:-none}
niceness=${NICE:-19}

# The kernel targets (they fuzz the guest kernel; `emu` is only its CPU) come from a second
# build in which `emu` and `iced_x86` have no libFuzzer comparison hooks and one coverage
# counter per function instead of per edge (together about a third of those targets' cost
# per input); `interp`, `jit`, `elf` fuzz `emu` itself and keep both. kernel-rustc-wrapper.sh
# changes the options; the build is checked below, since a wrapper that silently did nothing
# would only show as a slower campaign.
kernel_targets=" syscalls linux_syscalls overlay "
want_default=false
want_kernel=false
for t in "${targets[@]}"; do
  case "$kernel_targets" in *" $t "*) want_kernel=true ;; *) want_default=true ;; esac
done
build=(cargo +nightly fuzz build -O --debug-assertions --sanitizer="$sanitizer")
bin=target/x86_64-unknown-linux-gnu/release
kbin=target-kernel/x86_64-unknown-linux-gnu/release
if $want_default; then
  "${build[@]}"
fi
if $want_kernel; then
  # Cargo does not see the wrapper's options: a build from another version of the wrapper
  # would be taken as up to date, so that build is thrown away.
  wrapper_sum=$(sha256sum kernel-rustc-wrapper.sh | cut -d' ' -f1)
  if [ "$(cat target-kernel/wrapper.sha256 2>/dev/null)" != "$wrapper_sum" ]; then
    rm -rf target-kernel
  fi
  WARDEN_FUZZ_KERNEL_BUILD=1 RUSTC_WRAPPER="$PWD/kernel-rustc-wrapper.sh" "${build[@]}" --target-dir target-kernel
  # In functions named emu::… or iced_x86::…: calls to comparison hooks (thousands with
  # them) and coverage counters (6.4 per function with edges, 1.1 without: generic ones
  # instantiated in the kernel keep its options). The guest kernel's own hooks show the check
  # is not vacuous.
  counts=$(objdump -d --no-show-raw-insn -C "$kbin/syscalls" | awk '
    /^[0-9a-f]+ <.*>:$/ { emu = ($0 ~ /^[0-9a-f]+ <(emu|iced_x86)::/); gk = ($0 ~ /^[0-9a-f]+ <guest_kernel::/); if (emu) nemu++ }
    /call.*__sanitizer_cov_trace_(const_)?cmp/ { if (emu) e++; if (gk) g++ }
    /__sancov_cntrs/ { if (emu) c++ }
    END { printf "%d %d %d %d", nemu, e, c, g }')
  read -r emu_fns emu_hooks emu_counters kernel_hooks <<<"$counts"
  if [ "$emu_fns" -eq 0 ] || [ "$kernel_hooks" -eq 0 ] || [ "$emu_hooks" -ne 0 ] || [ "$emu_counters" -gt $((2 * emu_fns)) ]; then
    echo "campaign.sh: the kernel build is wrong: $emu_fns emu functions with $emu_hooks comparison hook calls (want 0) and $emu_counters coverage counters (want about one each), $kernel_hooks hook calls in guest_kernel (want > 0)" >&2
    exit 1
  fi
  echo "$wrapper_sum" >target-kernel/wrapper.sha256
fi
mkdir -p logs
rows=()
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  extra=()
  [ "$t" = policy ] && extra+=(-dict=policy.dict)
  [ "$t" = jit ] && extra+=(-dict=jit.dict)
  log="logs/$t.log"
  before=$(ls "artifacts/$t" | wc -l)
  TIMEFORMAT='%U %S'
  dir=$bin
  case "$kernel_targets" in *" $t "*) dir=$kbin ;; esac
  cpu=$( { time nice -n "$niceness" "$dir/$t" "corpus/$t" "${extra[@]}" -max_total_time="$secs" \
    -print_final_stats=1 -rss_limit_mb=4096 -timeout=30 -artifact_prefix="artifacts/$t/" >"$log" 2>&1 || true; } 2>&1)
  runs=$(grep -o 'number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  rate=$(grep -o 'average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  percpu=$(echo "$cpu" | awk -v r="$runs" '{ t = $1 + $2; printf "%d", (t > 0 ? r / t : 0) }')
  cov=$(grep -o ' cov: [0-9]* ft: [0-9]*' "$log" | tail -1 | awk '{print $2 " / " $4}')
  new=$(ls -t "artifacts/$t" | head -n $(($(ls "artifacts/$t" | wc -l) - before)) | tr '\n' ' ')
  echo "$t: $runs executions, $rate exec/s, $percpu exec/CPU-s, cov/ft $cov, new crashers: ${new:-none}"
  rows+=("| \`$t\` | $secs s | $runs | $rate | $percpu | $cov | ${new:-none} |")
done

{
  echo
  echo "## Campaign $(date -u '+%Y-%m-%d %H:%M') UTC"
  echo
  echo "\`fuzz/campaign.sh $secs ${targets[*]}\` (\`-O --debug-assertions --sanitizer=$sanitizer\`, one"
  echo "target at a time, nice $niceness; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg))."
  echo "Coverage is libFuzzer's last \`cov\` / \`ft\` (edges / features) of the run."
  echo
  echo "| target | time | executions | exec/s | exec/CPU-s | cov / ft | new crashers |"
  echo "|--------|------|-----------:|-------:|-----------:|----------|--------------|"
  printf '%s\n' "${rows[@]}"
} >>RESULTS.md
