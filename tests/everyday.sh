#!/usr/bin/env bash
# Issue 16's everyday programs: each runs natively, under qemu-x86_64 and
# under `warden run --root /`, and counts as passing when its stdout and exit
# status are byte-identical to the native run's. The programs are the host's
# own dynamically linked ones (glibc); missing ones are reported as skipped.
#
# Usage: tests/everyday.sh [WARDEN] [NAME...]
#   WARDEN defaults to target/release/warden. NAMEs select cases.
#   EVERYDAY_TIMEOUT (seconds, default 120) bounds each run.
#   EVERYDAY_KEEP=1 keeps the work directory (printed at the end).
# Prints one line per program (native status; qemu, warden: same/DIFF for stdout
# and status; warden's stderr: same/DIFF) and the totals. Not part of `cargo test`:
# some runs take minutes under the emulator.
#
# Last sweep (2026-12-06, release build): 41 programs, warden 41 identical to native in
# stdout and status, and in stderr too (rustc's jemalloc warned "MADV_DONTNEED does not
# work" until madvise dropped pages); qemu-x86_64 40 (env: qemu passes the variables in
# another order). Tried beside them by hand: ps, top, uname, hostname, nproc, free,
# uptime, getconf and df differ by design (the guest sees its own processes, one CPU,
# the --max-mem-total memory, the virtual clock, a fixed identity and mount table);
# ldd's addresses differ natively from run to run; the rest (xargs, cut, paste, join,
# nl, tee, du, id, readelf, objdump, strings, xxd, vim -es, tac, column, factor, shuf,
# split, cp -r, mktemp, iconv, g++, zip, lz4, patch, git add/commit, tar czf, make -j2,
# timeout, sqlite3 on a file, a python socket/thread/subprocess/sqlite3 script, node fs)
# are identical.
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
W=${1:-$here/target/release/warden}
[ $# -gt 0 ] && shift
W=$(realpath "$W")
T=${EVERYDAY_TIMEOUT:-120}
work=$(mktemp -d /tmp/everyday.XXXXXX)
cd "$work"

# Fixture files, made natively before any run (warden's writes stay in memory).
seq 1 200 | sed 's/$/ alpha beta gamma/' > text
printf '3\n1\n2\n10\n1\n' > nums
printf 'a\nb\nc\n' > a
printf 'a\nB\nc\n' > b
printf '{"a":[1,2,{"b":"x"}],"n":3.5}\n' > j.json
printf '#include <stdio.h>\nint main(void){puts("hello, world");return 0;}\n' > hello.c
printf 'all:\n\t@echo made $(X)\n' > mk
mkdir -p d/sub && echo x > d/sub/f && echo y > d/g
git init -q repo && git -C repo -c user.name=u -c user.email=u@e commit -q --allow-empty -m first
touch -d @1000000000 text nums a b j.json hello.c mk d d/sub d/sub/f d/g

# The host's cargo and rustc are rustup proxies: they need rustup's own directories.
rustup_home=${RUSTUP_HOME:-$HOME/.rustup} cargo_home=${CARGO_HOME:-$HOME/.cargo}
search=$cargo_home/bin:/usr/local/bin:/usr/bin:/bin
ENVV=(PATH="$search" HOME="$work" LANG=C RUSTUP_HOME="$rustup_home" CARGO_HOME="$cargo_home")
which() { PATH=$search command -v "$1"; }
# name | stdin file | command line (shell words, split with eval)
cases=(
  'ls|-|ls -l --time-style=+%s d'
  'cat|-|cat text'
  'sort|-|sort -n nums'
  'sha256sum|-|sha256sum text'
  'bash|-|bash -c "for i in 1 2 3; do echo \$i; done; echo \$((6*7)) \$(echo sub)"'
  'dash|-|dash -c "x=\$(echo sub); echo hi \$x; exit 3"'
  'python3|-|python3 -c "import json; print(json.dumps({\"a\": [1, 2]})); print(sum(range(100)))"'
  'perl|-|perl -e "print join(\",\", map { \$_ * 2 } 1..5), qq(\\n)"'
  'node|-|node -e "console.log([1, 2, 3].map(x => x * 2))"'
  'gzip|-|gzip -9 -n -c text'
  'xz|-|xz -c text'
  'zstd|-|zstd -q -c text'
  'bzip2|-|bzip2 -c text'
  'find|-|find d'
  'awk|-|awk "{ s += \$1 } END { print s }" nums'
  'sed|-|sed s/alpha/ALPHA/g text'
  'grep|-|grep -n 7 text'
  'tar|-|tar --sort=name --owner=0 --group=0 --numeric-owner -cf - d'
  'git|-|git -C repo log --format=%s'
  'gcc|-|bash -c "gcc -o hello hello.c && ./hello"'
  'make|-|make -s -f mk X=1'
  'diff|-|diff a b'
  'od|-|od -A x -t x1z a'
  'date|-|date -u -d @1000000000'
  'env|-|env'
  'cargo|-|cargo --version'
  'rustc|-|rustc --version'
  'wc|-|wc text'
  'base64|-|base64 text'
  'jq|-|jq -c .a j.json'
  'bc|nums|bc'
  'sqlite3|-|sqlite3 :memory: "select 1+1, \"x\" || \"y\";"'
  'openssl|-|openssl dgst -sha256 text'
  'file|-|file text hello.c'
  'stat|-|stat -c "%s %F %h %Y" text d'
  'seq|-|seq 5 3 20'
  'cmp|-|cmp a b'
  'curl|-|curl --version'
  'head|-|head -3 text'
  'tr|text|tr a-z A-Z'
  'md5sum|-|md5sum text'
)

run() { # how name stdin argv...
  local how=$1 name=$2 in=$3; shift 3
  local out=$work/out/$name.$how
  [ "$in" = - ] && in=/dev/null
  case $how in
    native) env -i "${ENVV[@]}" timeout "$T" "$@" <"$in" >"$out" 2>"$out.err" ;;
    qemu) env -i "${ENVV[@]}" timeout "$T" qemu-x86_64 "$(which "$1")" "${@:2}" <"$in" >"$out" 2>"$out.err" ;;
    warden)
      local e=() v
      for v in "${ENVV[@]}"; do e+=(--env "$v"); done
      timeout "$T" "$W" run -q --root / "${e[@]}" "$(which "$1")" "${@:2}" <"$in" >"$out" 2>"$out.err" ;;
  esac
  echo $? >"$out.rc"
}

mkdir -p out
have_qemu=$(command -v qemu-x86_64 >/dev/null && echo 1 || echo 0)
nq=0 nw=0 ne=0 n=0 skipped=() wdiff=() ediff=()
for c in "${cases[@]}"; do
  IFS='|' read -r name in cmd <<<"$c"
  if [ $# -gt 0 ] && ! [[ " $* " == *" $name "* ]]; then continue; fi
  eval "argv=($cmd)"
  if ! which "${argv[0]}" >/dev/null; then skipped+=("$name"); continue; fi
  n=$((n + 1))
  run native "$name" "$in" "${argv[@]}"
  q=- w=DIFF
  if [ "$have_qemu" = 1 ]; then
    run qemu "$name" "$in" "${argv[@]}"
    if cmp -s out/$name.native out/$name.qemu && cmp -s out/$name.native.rc out/$name.qemu.rc; then
      q=same; nq=$((nq + 1))
    else q=DIFF; fi
  fi
  run warden "$name" "$in" "${argv[@]}"
  if cmp -s out/$name.native out/$name.warden && cmp -s out/$name.native.rc out/$name.warden.rc; then
    w=same; nw=$((nw + 1))
  else
    wdiff+=("$name")
  fi
  e=same
  if cmp -s out/$name.native.err out/$name.warden.err; then ne=$((ne + 1)); else e=DIFF; ediff+=("$name"); fi
  printf '%-10s native=%-3s qemu=%-4s warden=%-4s stderr=%-4s (rc %s) %s\n' "$name" "$(cat out/$name.native.rc)" \
    "$q" "$w" "$e" "$(cat out/$name.warden.rc)" "$(head -c 100 out/$name.warden.err | tr '\n' ' ')"
done
echo "programs: $n  qemu identical: $nq  warden identical: $nw (stderr too: $ne)  skipped: ${skipped[*]:-none}"
[ ${#wdiff[@]} -gt 0 ] && echo "warden differs: ${wdiff[*]}"
[ ${#ediff[@]} -gt 0 ] && echo "warden's stderr differs: ${ediff[*]}"
if [ "${EVERYDAY_KEEP:-0}" = 1 ]; then echo "outputs in $work/out"; else rm -rf "$work"; fi
