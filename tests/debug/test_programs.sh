#!/usr/bin/env bash
# POOLMALLOC_DEBUG=1 on correct programs: they run silently, with the output
# they have without it.
#  1. a C program (threads, realloc, calloc, aligned blocks, fork) run with
#     and without debug mode: same stdout, exit 0, nothing on stderr; its
#     statistics say debug mode is on.
#  2. python3 with PYTHONMALLOC=malloc runs tests/preload/workload.py under
#     LD_PRELOAD + POOLMALLOC_DEBUG=1 with the same output as without
#     poolmalloc, and nothing on stderr.
set -euo pipefail
: "${POOLMALLOC_LIB:?}" "${PM_SOURCE_DIR:?}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

cat > "$tmp/prog.c" <<'C'
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void *worker(void *arg) {
  unsigned long sum = 0, seed = (unsigned long)(uintptr_t)arg;
  char *v[512] = {0};
  for (int i = 0; i < 200000; i++) {
    seed = seed * 6364136223846793005ul + 1442695040888963407ul;
    int k = (int)(seed >> 33) % 512;
    size_t n = (seed >> 20) % 700 + 1;
    if (v[k]) {
      sum += (unsigned char)v[k][0];
      if (i % 3 == 0) { v[k] = realloc(v[k], n); v[k][0] = (char)n; continue; }
      free(v[k]);
    }
    v[k] = malloc(n);
    memset(v[k], (int)(n & 0xff), n);
  }
  for (int k = 0; k < 512; k++) free(v[k]);
  return (void *)(uintptr_t)sum;
}

int main(void) {
  pthread_t t[3];
  for (long i = 0; i < 3; i++) pthread_create(&t[i], NULL, worker, (void *)(i + 1));
  for (int i = 0; i < 3; i++) {
    void *r;
    pthread_join(t[i], &r);
    printf("thread %d: %lu\n", i, (unsigned long)(uintptr_t)r);
  }
  int *z = calloc(1000, sizeof *z);
  long zs = 0;
  for (int i = 0; i < 1000; i++) zs += z[i];
  printf("calloc sum %ld\n", zs);
  void *a;
  printf("posix_memalign %d aligned %d\n", posix_memalign(&a, 128, 1000), (int)((uintptr_t)a % 128 == 0));
  free(a);
  char *s = strdup("a string from strdup");
  printf("%s, usable >= 21: %d\n", s, malloc_usable_size(s) >= 21);
  free(s);
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    char *c = malloc(100);
    strcpy(c, "child");
    puts(c);
    free(c);
    exit(0);
  }
  int st;
  waitpid(pid, &st, 0);
  printf("child exit %d\n", WEXITSTATUS(st));
  return 0;
}
C
cc -O2 -pthread "$tmp/prog.c" -o "$tmp/prog"
"$tmp/prog" > "$tmp/ref.out" 2> "$tmp/ref.err"
rc=0
POOLMALLOC_DEBUG=1 POOLMALLOC_STATS=json POOLMALLOC_STATS_FILE="$tmp/stats.%p.json" LD_PRELOAD="$POOLMALLOC_LIB" \
  "$tmp/prog" > "$tmp/dbg.out" 2> "$tmp/dbg.err" || rc=$?
[ "$rc" = 0 ] || { cat "$tmp/dbg.err"; fail "C program: exit $rc under POOLMALLOC_DEBUG=1"; }
[ -s "$tmp/dbg.err" ] && { cat "$tmp/dbg.err"; fail "C program: stderr not empty under POOLMALLOC_DEBUG=1"; }
diff -u "$tmp/ref.out" "$tmp/dbg.out" || fail "C program: stdout differs under POOLMALLOC_DEBUG=1"
grep -q '"debug": "on"' "$tmp"/stats.*.json || fail "the statistics do not say that debug mode is on"
echo "ok: C program, same output and silent under POOLMALLOC_DEBUG=1; stats say debug on"
# (grep reads the whole report: with -q it could stop early and the report's
# next write would end /bin/true with SIGPIPE)
POOLMALLOC_STATS=1 LD_PRELOAD="$POOLMALLOC_LIB" /bin/true 2>&1 | grep '^Debug mode: off\.' >/dev/null ||
  fail "the text report does not say 'Debug mode: off.'"

# --- python3 ---------------------------------------------------------------------
py=/usr/bin/python3
[ -x "$py" ] || { echo "python3 not installed; the C program passed"; exit 0; }
export PYTHONMALLOC=malloc PYTHONHASHSEED=0 PYTHONDONTWRITEBYTECODE=1
unset PYTHONPATH PYTHONHOME PYTHONSTARTUP
"$py" -s "$PM_SOURCE_DIR/tests/preload/workload.py" 1 > "$tmp/py.ref" 2> "$tmp/py.ref.err"
rc=0
POOLMALLOC_DEBUG=1 POOLMALLOC_STATS=json POOLMALLOC_STATS_FILE="$tmp/pystats.%p.json" LD_PRELOAD="$POOLMALLOC_LIB" \
  "$py" -s "$PM_SOURCE_DIR/tests/preload/workload.py" 1 > "$tmp/py.dbg" 2> "$tmp/py.dbg.err" || rc=$?
[ "$rc" = 0 ] || { tail -40 "$tmp/py.dbg.err"; fail "python3: exit $rc under POOLMALLOC_DEBUG=1"; }
[ -s "$tmp/py.dbg.err" ] && { tail -40 "$tmp/py.dbg.err"; fail "python3: stderr not empty under POOLMALLOC_DEBUG=1"; }
diff -u "$tmp/py.ref" "$tmp/py.dbg" | head -20
cmp -s "$tmp/py.ref" "$tmp/py.dbg" || fail "python3: stdout differs under POOLMALLOC_DEBUG=1"
grep -qx 'done: ok' "$tmp/py.dbg" || fail "python3: the workload did not finish"
grep -q '"debug": "on"' "$tmp"/pystats.*.json || fail "python3: the statistics do not say debug mode is on"
grep -ho '"malloc_small": [0-9]*' "$tmp"/pystats.*.json | awk '{ if ($2 > n) n = $2 } END { print "python3: malloc_small =", n; exit !(n > 100000) }' ||
  fail "python3: poolmalloc served too few allocations"
echo "ok: python3 workload, same output and silent under POOLMALLOC_DEBUG=1"
