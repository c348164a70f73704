#!/usr/bin/env bash
# The object layer's collector against CPython's gc.collect(), side by side.
#
#   bench/gc/run.sh [N ...]        default: 100000 1000000
#
# Builds libpoolmalloc (Release) in $BUILD_DIR (default /tmp/poolgc-bench),
# compiles bench_gc.c against it, runs it and bench_gc.py (under
# $PYTHON, default /usr/bin/python3) for each shape and N, $REPEAT times each
# (default 5) in fresh processes, keeps the best time of each column, and
# prints one Markdown table.  Times are ns per object; bytes per object are
# the growth of RSS over the build.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=${BUILD_DIR:-/tmp/poolgc-bench}
python=${PYTHON:-/usr/bin/python3}
repeat=${REPEAT:-5}
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(100000 1000000)

cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DPOOLMALLOC_TESTS=OFF \
      -DPOOLMALLOC_BENCH=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target poolmalloc >/dev/null
cc -O2 -Wall -Wextra -I"$src/include" "$here/bench_gc.c" -o "$build/bench_gc" \
   -L"$build" -lpoolmalloc -Wl,-rpath,"$build"

raw=$(mktemp)
trap 'rm -f "$raw"' EXIT
for n in "${sizes[@]}"; do
  for shape in cycles ring random; do
    for ((r = 0; r < repeat; r++)); do
      "$build/bench_gc" "$shape" "$n" >>"$raw"
      "$python" "$here/bench_gc.py" "$shape" "$n" >>"$raw"
    done
  done
done

echo "Collector benchmark: $(uname -m), $(nproc) CPUs, $("$python" -c 'import sys; print("CPython", sys.version.split()[0])'), best of $repeat"
echo
awk '
  function best(cur, v) { return (cur == "" || v + 0 < cur + 0) ? v : cur }
  {
    delete f
    for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
    k = f["shape"] SUBSEP f["n"] SUBSEP f["impl"]
    if (!((f["shape"] SUBSEP f["n"]) in seen)) { seen[f["shape"] SUBSEP f["n"]] = 1; order[++m] = f["shape"] SUBSEP f["n"] }
    build[k] = best(build[k], f["build_ns"]); alive[k] = best(alive[k], f["alive_ns"])
    dead[k] = best(dead[k], f["dead_ns"]);    bytes[k] = best(bytes[k], f["bytes"])
    found[k] = f["found_dead"]
  }
  END {
    print "| shape | N | build poolgc / CPython | collect, all alive: poolgc / CPython (x) | collect after drop: poolgc / CPython (x) | found after drop | bytes/object poolgc / CPython |"
    print "|---|---:|---:|---:|---:|---:|---:|"
    for (j = 1; j <= m; j++) {
      split(order[j], sn, SUBSEP); p = order[j] SUBSEP "poolgc"; c = order[j] SUBSEP "cpython"
      printf "| %s | %d | %.0f / %.0f | %.1f / %.1f (%.1fx) | %.1f / %.1f (%.1fx) | %s / %s | %.1f / %.1f |\n",
        sn[1], sn[2], build[p], build[c], alive[p], alive[c], alive[c] / alive[p],
        dead[p], dead[c], dead[c] / dead[p], found[p], found[c], bytes[p], bytes[c]
    }
  }' "$raw"
