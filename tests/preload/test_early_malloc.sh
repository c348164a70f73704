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
exit $fail
