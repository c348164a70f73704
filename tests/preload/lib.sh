# shellcheck shell=bash
# tests/preload/lib.sh: shared helpers for the LD_PRELOAD tests (sourced, not run).
#
# A test runs a real program twice, once as the system ships it and once with
# libpoolmalloc.so preloaded, and requires the same stdout and exit status; then
# it reads the statistics poolmalloc wrote at exit (POOLMALLOC_STATS=json) to
# prove that poolmalloc really served the program's allocations.
#
# Environment (set by ctest, see tests/CMakeLists.txt):
#   POOLMALLOC_LIB  path of libpoolmalloc.so (default: $PM_BUILD_DIR/libpoolmalloc.so)
#   PM_BUILD_DIR    the build directory
#   PM_SOURCE_DIR   the source directory
# For debugging: PM_KEEP_TMP=1 keeps each test's temporary directory (inputs,
# both runs' stdout/stderr, statistics files); PM_KEEP_TMP_ON_FAIL=1 keeps it
# only when the test fails. Run one test by hand:
#   POOLMALLOC_LIB=build/libpoolmalloc.so bash tests/preload/test_perl.sh
# Exit status 77 means "skipped".

set -euo pipefail

PM_SKIP=77
# Whatever the caller already preloads stays preloaded in both runs, after
# poolmalloc in the second.
PM_BASE_PRELOAD=${LD_PRELOAD:-}
PM_TEST_NAME=$(basename "${BASH_SOURCE[1]:-$0}" .sh)

pm_log()  { printf '[%s] %s\n' "$PM_TEST_NAME" "$*" >&2; }
pm_fail() { pm_log "FAIL: $*"; exit 1; }
pm_skip() { pm_log "SKIP: $*"; exit "$PM_SKIP"; }

# The Python of the system (a fresh Debian has /usr/bin/python3; a pyenv shim
# earlier on PATH is not what we want to test).
if [[ -x /usr/bin/python3 ]]; then
  PM_PYTHON=/usr/bin/python3
else
  PM_PYTHON=$(command -v python3 || true)
fi

# pm_require PROGRAM...: skip the test unless every PROGRAM is on PATH.
pm_require() {
  local p
  for p in "$@"; do
    command -v "$p" >/dev/null 2>&1 || pm_skip "$p is not installed"
  done
}

# pm_setup: checks the library and makes $PM_TMP (removed at exit unless
# PM_KEEP_TMP=1) with $PM_TMP/stats for the statistics files.
pm_setup() {
  local here
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
  PM_SOURCE_DIR=${PM_SOURCE_DIR:-$(cd "$here/../.." && pwd)}
  PM_BUILD_DIR=${PM_BUILD_DIR:-$PM_SOURCE_DIR/build}
  POOLMALLOC_LIB=${POOLMALLOC_LIB:-$PM_BUILD_DIR/libpoolmalloc.so}
  [[ -f "$POOLMALLOC_LIB" ]] || pm_fail "library not found: $POOLMALLOC_LIB (set POOLMALLOC_LIB)"
  POOLMALLOC_LIB=$(readlink -f "$POOLMALLOC_LIB")
  PM_TMP=$(mktemp -d "${TMPDIR:-/tmp}/pm-$PM_TEST_NAME.XXXXXX")
  trap pm_cleanup EXIT
  mkdir -p "$PM_TMP/stats"
  export PM_SOURCE_DIR PM_BUILD_DIR POOLMALLOC_LIB PM_TMP
  pm_log "library: $POOLMALLOC_LIB"
}

pm_cleanup() {
  local rc=$?
  if [[ -n "${PM_TMP:-}" && -d "$PM_TMP" ]]; then
    if [[ "${PM_KEEP_TMP:-0}" == 1 || ( $rc -ne 0 && $rc -ne $PM_SKIP && "${PM_KEEP_TMP_ON_FAIL:-0}" == 1 ) ]]; then
      pm_log "kept $PM_TMP"
    else
      rm -rf "$PM_TMP"
    fi
  fi
  return $rc
}

# pm_compare [--stdin FILE] [--cwd DIR] NAME -- COMMAND [ARGS...]
#   Runs COMMAND without and then with libpoolmalloc.so preloaded and fails
#   unless stdout and the exit status are the same. Each run starts in a fresh
#   directory of its own, $PM_TMP/NAME.ref.d and $PM_TMP/NAME.pm.d (a copy of
#   DIR when --cwd is given). The preloaded run writes its statistics to
#   $PM_TMP/stats/NAME/. Stdout and stderr of both runs stay in
#   $PM_TMP/NAME.{ref,pm}.{out,err}. COMMAND may be a shell function: it runs
#   in a subshell whose children see the environment; it is the programs it
#   starts that are preloaded, not the subshell. The exit status of the
#   reference run is left in PM_LAST_RC.
pm_compare() {
  local stdin=/dev/null cwd=""
  while [[ $# -gt 0 ]]; do
    case $1 in
      --stdin) stdin=$2; shift 2 ;;
      --cwd)   cwd=$2; shift 2 ;;
      *) break ;;
    esac
  done
  local name=$1; shift
  [[ ${1:-} == -- ]] && shift
  local ref="$PM_TMP/$name.ref" pm="$PM_TMP/$name.pm"
  local rc_ref=0 rc_pm=0 t0 t1 t2
  local dref="$PM_TMP/$name.ref.d" dpm="$PM_TMP/$name.pm.d"
  rm -rf "$dref" "$dpm" "$PM_TMP/stats/$name"
  mkdir -p "$PM_TMP/stats/$name"
  if [[ -n $cwd ]]; then
    cp -a "$cwd" "$dref"; cp -a "$cwd" "$dpm"
  else
    mkdir "$dref" "$dpm"
  fi
  t0=$(date +%s.%N)
  ( cd "$dref"
    unset POOLMALLOC_STATS POOLMALLOC_STATS_FILE
    export LD_PRELOAD=${PM_BASE_PRELOAD:-}
    [[ -n $LD_PRELOAD ]] || unset LD_PRELOAD
    "$@" ) <"$stdin" >"$ref.out" 2>"$ref.err" || rc_ref=$?
  t1=$(date +%s.%N)
  ( cd "$dpm"
    export LD_PRELOAD="$POOLMALLOC_LIB${PM_BASE_PRELOAD:+:$PM_BASE_PRELOAD}"
    export POOLMALLOC_STATS=json
    export POOLMALLOC_STATS_FILE="$PM_TMP/stats/$name/stats.%p.json"
    "$@" ) <"$stdin" >"$pm.out" 2>"$pm.err" || rc_pm=$?
  t2=$(date +%s.%N)
  pm_log "$name: exit $rc_ref/$rc_pm, $(wc -c <"$ref.out") bytes of output," \
         "$(awk -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN{printf "%.2fs without, %.2fs with poolmalloc", b-a, c-b}')"
  if [[ $rc_ref -ne $rc_pm ]]; then
    pm_log "$name: stderr without poolmalloc (tail):"; tail -n 20 "$ref.err" >&2 || true
    pm_log "$name: stderr with poolmalloc (tail):";    tail -n 20 "$pm.err" >&2 || true
    pm_fail "$name: exit status $rc_pm with poolmalloc, $rc_ref without"
  fi
  if ! cmp -s "$ref.out" "$pm.out"; then
    pm_log "$name: stdout differs (first lines of diff, - without, + with poolmalloc):"
    diff -u "$ref.out" "$pm.out" | head -n 40 >&2 || true
    pm_log "$name: stderr with poolmalloc (tail):"; tail -n 20 "$pm.err" >&2 || true
    pm_fail "$name: stdout differs with poolmalloc"
  fi
  # shellcheck disable=SC2034  # read by the tests
  PM_LAST_RC=$rc_ref
}

# pm_check_stats NAME MIN_MALLOC_SMALL
#   Fails unless $PM_TMP/stats/NAME/ holds at least one statistics file, every
#   file there is one JSON document with a "poolmalloc" object and a "counters"
#   object, and the largest malloc_small of one process is >= MIN_MALLOC_SMALL.
#   Prints a summary line to stderr.
pm_check_stats() {
  local name=$1 min=$2 dir="$PM_TMP/stats/$1"
  [[ -d $dir ]] || pm_fail "$name: no statistics directory $dir"
  [[ -n $PM_PYTHON ]] || pm_fail "$name: python3 is needed to read the statistics"
  # The checker runs without the library and without the stats variables.
  env -u LD_PRELOAD -u POOLMALLOC_STATS -u POOLMALLOC_STATS_FILE -u PYTHONMALLOC \
    "$PM_PYTHON" -I -S - "$name" "$dir" "$min" >&2 <<'PYEOF' || pm_fail "$name: statistics check failed"
import json, os, sys
name, d, need = sys.argv[1], sys.argv[2], int(sys.argv[3])
files = sorted(f for f in os.listdir(d))
if not files:
    sys.exit(f"[{name}] no statistics file was written in {d} "
             "(POOLMALLOC_STATS=json, POOLMALLOC_STATS_FILE=.../stats.%p.json)")
best, totals, bad, nproc = None, {}, [], 0
for f in files:
    path = os.path.join(d, f)
    # One document per process; the library appends, so a file whose pid
    # was reused holds several, one after the other.
    try:
        with open(path) as fh:
            text = fh.read()
        docs, pos, dec = [], 0, json.JSONDecoder()
        while True:
            while pos < len(text) and text[pos].isspace():
                pos += 1
            if pos == len(text):
                break
            doc, pos = dec.raw_decode(text, pos)
            docs.append(doc)
        if not docs:
            raise ValueError("empty file")
        for doc in docs:
            if not isinstance(doc, dict) or not isinstance(doc.get("poolmalloc"), dict) \
               or not isinstance(doc.get("counters"), dict):
                raise ValueError('no "poolmalloc" and "counters" objects')
            c = doc["counters"]
            for k in ("malloc_small", "malloc_large", "free_small"):
                if not isinstance(c.get(k), int) or c[k] < 0:
                    raise ValueError(f"counters.{k} is missing or not a count")
    except (OSError, ValueError) as e:
        bad.append(f"{f}: {e}")
        continue
    for doc in docs:
        c = doc["counters"]
        nproc += 1
        for k, v in c.items():
            if isinstance(v, int):
                totals[k] = totals.get(k, 0) + v
        if best is None or c["malloc_small"] > best["malloc_small"]:
            best = c
if bad:
    for b in bad:
        print(f"[{name}] bad statistics file {b}")
    sys.exit(1)
print(f"[{name}] {nproc} process(es) reported; busiest: malloc_small={best['malloc_small']} "
      f"malloc_large={best['malloc_large']} free_small={best['free_small']}; "
      f"all: malloc_small={totals.get('malloc_small', 0)} malloc_large={totals.get('malloc_large', 0)}")
if best["malloc_small"] < need:
    sys.exit(f"[{name}] malloc_small={best['malloc_small']} < {need}: poolmalloc did not serve the program")
PYEOF
}
