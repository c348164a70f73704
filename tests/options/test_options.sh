#!/usr/bin/env bash
# The options: the README lists exactly what the library's option table
# prints, and a bad value of each variable gives one warning line naming it
# while the program runs normally with its usual exit status.
set -euo pipefail
: "${POOLMALLOC_LIB:?}" "${PM_SOURCE_DIR:?}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0

cat > "$tmp/opts.c" <<'C'
#include "poolmalloc.h"
int main(void) { pm_options_print(1); return 0; }
C
cc -I"$PM_SOURCE_DIR/include" "$tmp/opts.c" "$POOLMALLOC_LIB" -Wl,-rpath,"$(dirname "$POOLMALLOC_LIB")" -o "$tmp/opts"
"$tmp/opts" > "$tmp/printed"
sed -n '/<!-- options:begin -->/,/<!-- options:end -->/p' "$PM_SOURCE_DIR/README.md" | grep '^- ' > "$tmp/readme" || true
if ! diff -u "$tmp/printed" "$tmp/readme"; then
  echo "FAIL: README.md's option list differs from pm_options_print() (above)"
  fail=1
fi

# One warning line per bad value, naming variable and value; exit status kept.
check_bad() {
  local var=$1 value=$2
  set +e
  env "$var=$value" LD_PRELOAD="$POOLMALLOC_LIB" sh -c 'echo out; exit 3' > "$tmp/out" 2> "$tmp/err"
  local rc=$?
  set -e
  local lines
  lines=$(grep -c . "$tmp/err" || true)
  if [ "$rc" != 3 ] || [ "$(cat "$tmp/out")" != out ] || [ "$lines" != 1 ] ||
     ! grep -q "^poolmalloc: $var=$value" "$tmp/err"; then
    echo "FAIL: $var=$value: exit $rc, stderr:"; cat "$tmp/err"
    fail=1
  else
    echo "ok: $var=$value -> $(cat "$tmp/err")"
  fi
}
check_bad POOLMALLOC_STATS bogus
check_bad POOLMALLOC_ARENA_RESERVE -3
check_bad POOLMALLOC_ARENA_RESERVE abc
check_bad POOLMALLOC_ARENA_DECAY_MS 1e3
check_bad POOLMALLOC_THP -1
check_bad POOLMALLOC_THP 2GiB

# A good value is silent.
err=$(POOLMALLOC_ARENA_RESERVE=8 LD_PRELOAD="$POOLMALLOC_LIB" sh -c 'exit 0' 2>&1)
[ -z "$err" ] || { echo "FAIL: a good value printed: $err"; fail=1; }

[ "$fail" = 0 ] && echo "options: all checks passed"
exit "$fail"
