#!/usr/bin/env bash
# fork() from a program whose library (initialised before poolmalloc)
# allocates in its pthread_atfork handlers: prepare, parent, child, all
# three, from one thread and from several forking at once, with poolmalloc
# preloaded and linked.  glibc runs the prepare handlers before it takes its
# own malloc locks and releases them before the parent and child handlers;
# a poolmalloc that held its locks across them would never return from fork.
# Every run is bounded by a timeout.
set -euo pipefail
: "${POOLMALLOC_LIB:?}" "${PM_SOURCE_DIR:?}"
here="$PM_SOURCE_DIR/tests/fork"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
lib=$(readlink -f "$POOLMALLOC_LIB")
cc -O1 -fPIC -shared -pthread "$here/atfork_lib.c" -o "$tmp/libatfork.so"
# Linked after poolmalloc, so that (initialised in reverse order) its
# constructor runs before the allocator's.
cc -O1 -pthread "$here/atfork_prog.c" -L"$tmp" -latfork -Wl,-rpath,"$tmp" -o "$tmp/prog"
cc -O1 -pthread "$here/atfork_prog.c" -L"$tmp" "$lib" -latfork -Wl,-rpath,"$tmp:$(dirname "$lib")" -o "$tmp/prog_linked"
fail=0
run() {   # NAME HANDLERS PROGRAM THREADS FORKS [ENV...]
  local name=$1 handlers=$2 prog=$3 threads=$4 forks=$5; shift 5
  local rc=0
  env ATFORK_HANDLERS="$handlers" "$@" timeout -s KILL 30 "$tmp/$prog" "$threads" "$forks" \
    > "$tmp/out" 2>&1 || rc=$?
  if [ "$rc" = 0 ]; then
    echo "ok: $name"
  else
    if [ "$rc" = 137 ]; then echo "FAIL $name: fork hung (killed after 30 s)"; else echo "FAIL $name: exit $rc"; fi
    cat "$tmp/out"
    fail=1
  fi
}
for h in prepare parent child prepare,parent,child; do
  run "preloaded, $h handlers, one thread" "$h" prog 1 20 LD_PRELOAD="$lib"
  run "preloaded, $h handlers, 4 threads forking" "$h" prog 4 10 LD_PRELOAD="$lib"
  run "linked, $h handlers, 4 threads forking" "$h" prog_linked 4 10
done
run "debug mode, all handlers, 4 threads forking" prepare,parent,child prog 4 10 LD_PRELOAD="$lib" POOLMALLOC_DEBUG=1
run "statistics on, all handlers, 4 threads forking" prepare,parent,child prog 4 10 LD_PRELOAD="$lib" \
  POOLMALLOC_STATS=json POOLMALLOC_STATS_FILE=/dev/null
# the same programs without poolmalloc: the test itself is sound
run "glibc alone, all handlers, 4 threads forking" prepare,parent,child prog 4 10
exit $fail
