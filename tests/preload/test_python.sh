#!/usr/bin/env bash
# Python with PYTHONMALLOC=malloc: every object through poolmalloc.
#  1. tests/preload/workload.py (dicts, lists, sets, strings, __slots__ classes,
#     cycles, json, regex, threads): stdout and exit status must equal those of
#     a run without poolmalloc, and poolmalloc must have served the allocations.
#  2. A few of CPython's own test modules (Debian package libpython3.X-testsuite)
#     must pass with poolmalloc preloaded; skipped when the package is absent.
# shellcheck source=tests/preload/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ -n $PM_PYTHON ]] || pm_skip "python3 is not installed"
pm_setup
pm_log "python: $PM_PYTHON ($("$PM_PYTHON" -V 2>&1))"

export PYTHONMALLOC=malloc PYTHONHASHSEED=0 PYTHONDONTWRITEBYTECODE=1
# Not -I: it implies -E, which would ignore PYTHONMALLOC.
unset PYTHONPATH PYTHONHOME PYTHONSTARTUP PYTHONUSERBASE

# --- 1. the workload ---------------------------------------------------------
pm_compare workload -- "$PM_PYTHON" -s "$PM_SOURCE_DIR/tests/preload/workload.py" 1
[[ $PM_LAST_RC -eq 0 ]] || pm_fail "workload.py failed without poolmalloc too"
grep -qx 'done: ok' "$PM_TMP/workload.pm.out" || pm_fail "workload.py did not finish"
pm_check_stats workload 100000

# --- 2. CPython's own tests ----------------------------------------------------
# Quick, stable modules (each a few seconds at most).
modules=(test_dict test_list test_set test_json test_string test_re test_unicode
         test_collections test_threading test_gc test_weakref)
if ! "$PM_PYTHON" -s -c 'import test.regrtest, test.support' >/dev/null 2>&1 ||
   ! "$PM_PYTHON" -s -c 'import test.test_dict' >/dev/null 2>&1; then
  pm_log "CPython's test suite is not installed (Debian: libpython3-testsuite); only the workload ran"
  exit 0
fi
mkdir -p "$PM_TMP/stats/stdlib" "$PM_TMP/stdlib-tmp"
failed=()
for m in "${modules[@]}"; do
  rc=0
  ( cd "$PM_TMP/stdlib-tmp"
    export TMPDIR="$PM_TMP/stdlib-tmp"
    export LD_PRELOAD="$POOLMALLOC_LIB${LD_PRELOAD:+:$LD_PRELOAD}"
    export POOLMALLOC_STATS=json POOLMALLOC_STATS_FILE="$PM_TMP/stats/stdlib/$m.%p.json"
    exec timeout 300 "$PM_PYTHON" -s -m test -q "$m"
  ) >"$PM_TMP/$m.log" 2>&1 || rc=$?
  if [[ $rc -eq 0 ]]; then
    pm_log "stdlib $m: passed with poolmalloc ($(grep -m1 -o 'Total duration: .*' "$PM_TMP/$m.log" || true))"
    continue
  fi
  # Failing with poolmalloc: does it pass without? If not, it is this machine.
  rc_ref=0
  ( cd "$PM_TMP/stdlib-tmp"; export TMPDIR="$PM_TMP/stdlib-tmp"
    exec timeout 300 "$PM_PYTHON" -s -m test -q "$m" ) >"$PM_TMP/$m.ref.log" 2>&1 || rc_ref=$?
  if [[ $rc_ref -ne 0 ]]; then
    pm_log "stdlib $m: fails without poolmalloc too (exit $rc_ref); not counted"
    continue
  fi
  pm_log "stdlib $m: FAILED with poolmalloc (exit $rc), passes without; log tail:"
  tail -n 30 "$PM_TMP/$m.log" >&2
  failed+=("$m")
done
[[ ${#failed[@]} -eq 0 ]] || pm_fail "CPython tests failing under poolmalloc: ${failed[*]}"
pm_check_stats stdlib 100000
pm_log "passed"
