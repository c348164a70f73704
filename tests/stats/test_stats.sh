#!/usr/bin/env bash
# POOLMALLOC_STATS: the report appears at exit() and at return from main,
# also from threaded and forked programs (%p gives each process its file);
# the JSON parses and its figures add up and match a workload of known
# shape; the text form is a table; interval reports; bad values warn once.
set -euo pipefail
: "${POOLMALLOC_LIB:?}" "${PM_SOURCE_DIR:?}"
here="$PM_SOURCE_DIR/tests/stats"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
py=python3; [ -x /usr/bin/python3 ] && py=/usr/bin/python3
cc -O1 -pthread "$here/stats_workload.c" -o "$tmp/w"
fail=0
run() {   # NAME EXPECTED_STATUS -- ENV... CMD...
  local name=$1 want=$2; shift 3
  local rc=0
  env "$@" > "$tmp/$name.out" 2> "$tmp/$name.err" || rc=$?
  if [ "$rc" != "$want" ]; then echo "FAIL $name: exit $rc, want $want"; cat "$tmp/$name.err"; fail=1; fi
}
json() {  # NAME CHECKS...: the name's reports must pass check_report.py
  local name=$1; shift
  if ! "$py" "$here/check_report.py" "$tmp/$name".*.json "$@"; then echo "FAIL $name"; fail=1; fi
}
J=(POOLMALLOC_STATS=json LD_PRELOAD="$POOLMALLOC_LIB")

# N live blocks of size S show as N blocks in use in S's class.
run shape 0 -- "${J[@]}" POOLMALLOC_STATS_FILE="$tmp/shape.%p.json" "$tmp/w" shape 20000 200
json shape --docs 1 --class-in-use 200 20000 20100
# After all are freed: none in use in that class, and the arenas back to the OS.
run freed 0 -- "${J[@]}" POOLMALLOC_STATS_FILE="$tmp/freed.%p.json" "$tmp/w" freed 200000 200
json freed --docs 1 --class-in-use 200 0 50 --reserve-empty
"$py" - "$tmp"/freed.*.json <<'PY' || fail=1
import json, sys
d = json.load(open(sys.argv[1]))
assert d["counters"]["arenas_unmapped"] >= 150, d["counters"]
assert d["arenas"]["mapped"] <= 4, d["arenas"]
print("ok: arenas returned:", d["counters"]["arenas_unmapped"])
PY
# Threads: return from main, blocks freed after their thread exited.
run threads 0 -- "${J[@]}" POOLMALLOC_STATS_FILE="$tmp/threads.%p.json" "$tmp/w" threads
json threads --docs 1
"$py" - "$tmp"/threads.*.json <<'PY' || fail=1
import json, sys
d = json.load(open(sys.argv[1]))
k = d["counters"]
assert k["threads_seen"] >= 5 and k["free_remote"] >= 4 * 1250, k
c = d["classes"][2]["blocks_in_use"]
assert 4 * 1250 <= c <= 4 * 1250 + 100, c
print("ok: threads", k["threads_seen"], "remote frees", k["free_remote"])
PY
# fork: each process writes its own file.
run fork 0 -- "${J[@]}" POOLMALLOC_STATS_FILE="$tmp/fork.%p.json" "$tmp/w" fork
n=$(ls "$tmp"/fork.*.json | wc -l)
[ "$n" = 2 ] || { echo "FAIL fork: $n report files"; fail=1; }
json fork --docs 2
# The text form on stderr: a header, the class table, thousands separators.
run text 0 -- POOLMALLOC_STATS=1 LD_PRELOAD="$POOLMALLOC_LIB" "$tmp/w" shape 20000 200
for want in '^poolmalloc .* statistics' '^class +size +pools' '^ +12 +208 ' '20,0[0-9][0-9]' \
            'arenas high-water mark' 'fragmentation' 'arenas by share of pools in use'; do
  grep -Eq "$want" "$tmp/text.err" || { echo "FAIL text: no line matching $want"; fail=1; }
done
[ -s "$tmp/text.out" ] && { echo "FAIL text: the report reached stdout"; fail=1; }
# A program that closes stderr on its way out (coreutils do) still reports.
run closes 0 -- POOLMALLOC_STATS=1 LD_PRELOAD="$POOLMALLOC_LIB" ls "$PM_SOURCE_DIR"
grep -q '^class' "$tmp/closes.err" || { echo "FAIL closes: no report from ls"; fail=1; }
# Interval reports: one JSON document per line, plus the one at exit.
# (3.5 s: at least the reports at 1 and 2 s and the one at exit, with room
# for a loaded machine.)
run interval 0 -- "${J[@]}" POOLMALLOC_STATS_INTERVAL=1 POOLMALLOC_STATS_FILE="$tmp/interval.%p.json" "$tmp/w" sleep 3500
"$py" "$here/check_report.py" "$tmp"/interval.*.json --min-docs 3 || fail=1
# The object layer's section: collections, objects collected, pauses.
cc -O1 -I"$PM_SOURCE_DIR/include" "$here/gc_workload.c" "$POOLMALLOC_LIB" -Wl,-rpath,"$(dirname "$POOLMALLOC_LIB")" -o "$tmp/gcw"
run gc 0 -- POOLMALLOC_STATS=json POOLMALLOC_STATS_FILE="$tmp/gc.%p.json" "$tmp/gcw"
json gc --docs 1
"$py" - "$tmp"/gc.*.json <<'PY' || fail=1
import json, sys
d = json.load(open(sys.argv[1]))
g = d["gc"]["generations"]
assert len(g) == 3 and g[2]["collections"] == 1 and g[2]["collected"] == 2000, g
assert g[2]["pause_max_ns"] > 0 and g[2]["pause_total_ns"] >= g[2]["pause_max_ns"], g
print("ok: gc section", g[2])
PY
run gctext 0 -- POOLMALLOC_STATS=1 "$tmp/gcw"
grep -q '^cycle collector' "$tmp/gctext.err" || { echo "FAIL gctext: no GC section"; fail=1; }
run nogc 0 -- POOLMALLOC_STATS=1 LD_PRELOAD="$POOLMALLOC_LIB" "$tmp/w" shape 10 10
grep -q '^cycle collector' "$tmp/nogc.err" && { echo "FAIL nogc: a GC section without the layer"; fail=1; }

# Bad values: one warning line naming variable and value; the run goes on.
run badfile 0 -- POOLMALLOC_STATS=1 POOLMALLOC_STATS_FILE=/nonexistent/dir/r.txt LD_PRELOAD="$POOLMALLOC_LIB" "$tmp/w" shape 10 10
grep -q '^poolmalloc: POOLMALLOC_STATS_FILE=/nonexistent/dir/r.txt' "$tmp/badfile.err" || { echo "FAIL badfile: no warning"; fail=1; }
[ "$(grep -c '^poolmalloc: POOLMALLOC' "$tmp/badfile.err")" = 1 ] || { echo "FAIL badfile: not one warning"; fail=1; }
grep -q '^class' "$tmp/badfile.err" || { echo "FAIL badfile: the report did not fall back to stderr"; fail=1; }
for v in -1 abc 1.5; do
  run "interval_bad" 0 -- POOLMALLOC_STATS_INTERVAL=$v LD_PRELOAD="$POOLMALLOC_LIB" "$tmp/w" shape 10 10
  [ "$(cat "$tmp/interval_bad.err")" != "" ] && [ "$(wc -l < "$tmp/interval_bad.err")" = 1 ] &&
    grep -q "POOLMALLOC_STATS_INTERVAL=$v" "$tmp/interval_bad.err" || { echo "FAIL interval=$v"; cat "$tmp/interval_bad.err"; fail=1; }
done
[ "$fail" = 0 ] && echo "stats: all checks passed"
exit "$fail"
