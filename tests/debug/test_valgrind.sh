#!/usr/bin/env bash
# valgrind memcheck with poolmalloc in charge: pool blocks are described to
# memcheck, so it reports a leaked pool block ("definitely lost", with the
# size the program asked for), an overflow past a pool block and a write
# into a freed pool block, and nothing on a correct program.
#
# The command (valgrind >= 3.12 replaces every malloc it finds, poolmalloc's
# included, unless told to intercept only the system's):
#   LD_PRELOAD=libpoolmalloc.so valgrind --soname-synonyms=somalloc=nouserintercepts PROGRAM
# Skipped (exit 77) when valgrind is not installed.
set -euo pipefail
: "${POOLMALLOC_LIB:?}"
command -v valgrind >/dev/null 2>&1 || { echo "SKIP: valgrind is not installed"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

cat > "$tmp/prog.c" <<'C'
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
static void *volatile sink;
static char *shared[2000];
static pthread_barrier_t barrier;
static void *thread_main(void *arg) {      /* frees the main thread's blocks, leaves its own */
  for (int i = 0; i < 2000; i += 2) free(shared[i]);
  for (int i = 1; i < 2000; i += 2) { shared[i] = malloc(16 + i % 200); shared[i][0] = 1; }
  pthread_barrier_wait(&barrier);          /* main frees them now ... */
  pthread_barrier_wait(&barrier);          /* ... and this thread's exit collects them */
  return arg;
}
int main(int argc, char **argv) {
  int mode = argc > 1 ? atoi(argv[1]) : 0;
  char *keep = malloc(100);
  strcpy(keep, "kept");
  for (int i = 0; i < 100; i++) free(malloc(24 + i));
  char *big = malloc(30000);
  memset(big, 1, 30000);
  free(big);
  if (mode == 4) {                 /* blocks freed by other threads, threads exiting */
    pthread_barrier_init(&barrier, NULL, 2);
    for (int round = 0; round < 3; round++) {
      for (int i = 0; i < 2000; i += 2) { shared[i] = malloc(16 + i % 300); memset(shared[i], 2, 16); }
      pthread_t t;
      pthread_create(&t, NULL, thread_main, NULL);
      pthread_barrier_wait(&barrier);
      for (int i = 1; i < 2000; i += 2) free(shared[i]);
      malloc_trim(0);                      /* empties the quarantine: remote frees */
      pthread_barrier_wait(&barrier);
      pthread_join(t, NULL);
    }
  }
  if (mode == 1) {                 /* leak 40 bytes from a pool */
    sink = malloc(40);
    memset(sink, 1, 40);
    sink = NULL;
  }
  if (mode == 2) {                 /* write one past a pool block */
    char *p = malloc(20);
    sink = p;
    ((volatile char *)sink)[20] = 1;
    free(p);
  }
  if (mode == 3) {                 /* write into a freed pool block */
    char *p = malloc(20);
    sink = p;
    free(p);
    ((volatile char *)sink)[2] = 1;
  }
  printf("%s\n", keep);
  free(keep);
  return 0;
}
C
cc -O1 -g -pthread "$tmp/prog.c" -o "$tmp/prog"

vg() {   # MODE: runs memcheck, output in $tmp/vg.MODE (the shell's "Aborted" line hidden)
  local rc=0
  ( LD_PRELOAD="$POOLMALLOC_LIB" POOLMALLOC_STATS=1 POOLMALLOC_STATS_FILE="$tmp/stats.$1" \
    valgrind --soname-synonyms=somalloc=nouserintercepts --leak-check=full \
    "$tmp/prog" "$1" > "$tmp/vg.$1.out" 2> "$tmp/vg.$1"; exit $? ) 2>/dev/null || rc=$?
  echo "$rc" > "$tmp/vg.$1.rc"
}
show() { echo "--- memcheck output:"; cat "$tmp/vg.$1"; }

# A correct program: no error, nothing lost, and poolmalloc (in valgrind mode) served it.
vg 0
grep -q 'ERROR SUMMARY: 0 errors' "$tmp/vg.0" || { show 0; fail "memcheck reports errors on a correct program"; }
grep -q 'All heap blocks were freed' "$tmp/vg.0" || { show 0; fail "memcheck finds blocks not freed in a correct program"; }
grep -q '^Debug mode: valgrind\.' "$tmp/stats.0" || { cat "$tmp/stats.0"; fail "poolmalloc was not in charge (no 'Debug mode: valgrind' in its report)"; }
[ "$(cat "$tmp/vg.0.out")" = kept ] || fail "wrong output: $(cat "$tmp/vg.0.out")"
echo "ok: correct program, no memcheck error, poolmalloc in valgrind mode"

# Blocks freed by other threads, and threads exiting (the core then touches
# free blocks outside the allocation calls): still no error.
vg 4
grep -q 'ERROR SUMMARY: 0 errors' "$tmp/vg.4" || { show 4; fail "memcheck reports errors with threads"; }
grep -q 'All heap blocks were freed' "$tmp/vg.4" || { show 4; fail "memcheck finds blocks not freed with threads"; }
echo "ok: cross-thread frees and thread exits, no memcheck error"

# The leak: exactly the 40-byte pool block, definitely lost, allocated in main.
vg 1
grep -q '40 bytes in 1 blocks are definitely lost' "$tmp/vg.1" || { show 1; fail "the leaked pool block is not reported"; }
grep -A4 '40 bytes in 1 blocks are definitely lost' "$tmp/vg.1" | grep -q 'main (prog.c' || { show 1; fail "the leak's stack does not reach main"; }
grep -q 'definitely lost: 40 bytes in 1 blocks' "$tmp/vg.1" || { show 1; fail "the leak summary is not exactly the one block"; }
echo "ok: leaked pool block reported: $(grep -m1 'definitely lost in' "$tmp/vg.1" | sed 's/^==[0-9]*== //')"

# An overflow past a pool block: memcheck reports it as it happens.
vg 2
grep -q 'Invalid write of size 1' "$tmp/vg.2" && grep -q '0 bytes after a block of size 20' "$tmp/vg.2" ||
  { show 2; fail "memcheck did not report the write past the pool block"; }
echo "ok: overflow reported: $(grep -m1 'bytes after a block' "$tmp/vg.2" | sed 's/^==[0-9]*== //')"

# A write after free into a pool block.
vg 3
grep -q 'Invalid write of size 1' "$tmp/vg.3" && grep -q '2 bytes inside a block of size 20 free.d' "$tmp/vg.3" ||
  { show 3; fail "memcheck did not report the write into the freed pool block"; }
echo "ok: use after free reported: $(grep -m1 'inside a block' "$tmp/vg.3" | sed 's/^==[0-9]*== //')"
