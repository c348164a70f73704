#!/usr/bin/env bash
# malloc, calloc and the aligned entry points called before the allocator's
# own initialisation, from a library's constructor that runs first (as
# libselinux's does under `ls` and `mkdir`): every size of the pools, the
# medium classes and a huge block, each written whole and checked for
# overlap once main runs; preloaded, linked, and in debug and statistics
# mode.  The empty heap that serves these calls reads static free lists whose
# end must fail malloc's link check before the secret key exists.
set -euo pipefail
lib=$(readlink -f "${POOLMALLOC_LIB:?}")
src="${PM_SOURCE_DIR:?}/tests/preload"
tmp=$(mktemp -d) && trap 'rm -rf "$tmp"' EXIT
build() { cc -O1 -fno-builtin-malloc "$@"; }
build -fPIC -shared "$src/early_lib.c" -o "$tmp/libearly.so"
# linked after poolmalloc (constructors run in reverse order): its constructor runs first
build "$src/early_prog.c" -L"$tmp" -learly -Wl,-rpath,"$tmp" -o "$tmp/prog"
build "$src/early_prog.c" -L"$tmp" "$lib" -learly -Wl,-rpath,"$tmp:$(dirname "$lib")" -o "$tmp/prog_linked"
fail=0
run() {   # NAME PROGRAM [ENV...]
  local name=$1 prog=$2; shift 2
  local rc=0
  env "$@" timeout -s KILL 60 "$tmp/$prog" > "$tmp/out" 2> "$tmp/err" || rc=$?
  if [ "$rc" = 0 ] && grep -qE '^ok [0-9]+$' "$tmp/out"; then
    echo "$name: $(cat "$tmp/out")"
  else
    echo "FAIL $name: exit $rc"
    cat "$tmp/out" "$tmp/err"
    fail=1
  fi
}
run "preloaded" prog LD_PRELOAD="$lib"
run "linked" prog_linked
run "preloaded, debug mode" prog LD_PRELOAD="$lib" POOLMALLOC_DEBUG=1
run "preloaded, statistics" prog LD_PRELOAD="$lib" POOLMALLOC_STATS="$tmp/stats"
# Under an address-space limit that leaves no room for the arena map and
# its free map (17 GiB reserved): one warning line, and every call, the
# early ones too, served by the C library, not failed.
rc=0
( ulimit -v 4194304 && exec timeout -s KILL 60 env LD_PRELOAD="$lib" "$tmp/prog" ) > "$tmp/out" 2> "$tmp/err" || rc=$?
if [ "$rc" = 0 ] && grep -qE '^ok [0-9]+$' "$tmp/out" && [ "$(wc -l < "$tmp/err")" = 1 ] &&
   grep -q '^poolmalloc: cannot reserve the arena map .*: blocks come from the C library$' "$tmp/err"; then
  echo "preloaded, 4 GiB of address space: $(cat "$tmp/out"), $(cat "$tmp/err")"
else
  echo "FAIL preloaded, 4 GiB of address space: exit $rc"
  cat "$tmp/out" "$tmp/err"
  fail=1
fi
exit $fail
