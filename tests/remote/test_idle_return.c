/* An idle program gives its memory back, with no further call into the
 * allocator: after POOLMALLOC_ARENA_DECAY_MS the empty arenas beyond the
 * reserve are unmapped, and the empty pools of arenas that still hold a live
 * block are given back with madvise (one live block must not pin the 252 KiB
 * of empty pools around it).  Four cases: one thread frees everything it
 * allocated; a thread's exit leaves its memory to be freed by this one; one
 * live block is kept in every arena; the second case again with a pause
 * before the frees, long enough for the purge thread's passes over the
 * abandoned (and still full) heap to find nothing to do and stop it, so
 * that the frees themselves must start it again.  While waiting, only /proc
 * is read. */
#include <pthread.h>

#include "remote_test.h"

enum { DECAY_MS = 200 };
#define TOTAL ((size_t)128 << 20)   /* bytes of small blocks per case */
static void **blocks;
static size_t nblocks;

static void fill_sizes(size_t lo, size_t hi) {
  pmt_rng r = pmt_rng_seed(11);
  size_t bytes = 0;
  nblocks = 0;
  while (bytes < TOTAL) {
    size_t n = pmt_range(&r, lo, hi);
    blocks[nblocks] = pm_malloc(n);
    memset(blocks[nblocks], 1, n);
    nblocks++;
    bytes += n;
  }
}

static void fill(void) { fill_sizes(16, 512); }

static void *fill_thread(void *arg) {
  fill();
  return NULL;
}

static void report(const char *what, long start, long full, long after, long long ms) {
  fprintf(stderr, "%s: RSS %ld kB at start, %ld kB full, %ld kB after; back after %lld ms\n", what, start, full,
          after, ms);
}

int main(int argc, char **argv) {
  pmr_setenv_reexec(argv, "POOLMALLOC_ARENA_DECAY_MS", "200", "POOLMALLOC_ARENA_RESERVE", "4", NULL);
  blocks = pmr_map((TOTAL / 16) * sizeof(void *));
  long start = pmr_rss_kb(), full, rss = 0;
  long long ms;

  /* 1. one thread */
  fill();
  full = pmr_rss_kb();
  for (size_t i = 0; i < nblocks; i++) pm_free(blocks[i]);
  ms = pmr_wait_rss_below(start + 8 * 1024, DECAY_MS, &rss);
  report("single thread", start, full, rss, ms);
  CHECKF(ms >= 0, "single thread: RSS stays at %ld kB", rss);

  /* 2. a thread fills and exits; this one frees */
  pthread_t t;
  pthread_create(&t, NULL, fill_thread, NULL);
  pthread_join(t, NULL);
  full = pmr_rss_kb();
  for (size_t i = 0; i < nblocks; i++) pm_free(blocks[i]);
  ms = pmr_wait_rss_below(start + 8 * 1024, DECAY_MS, &rss);
  report("after a thread's exit", start, full, rss, ms);
  CHECKF(ms >= 0, "after a thread's exit: RSS stays at %ld kB", rss);

  /* 3. one live block kept in every arena (one size: arenas fill in turn) */
  fill_sizes(256, 256);
  full = pmr_rss_kb();
  size_t kept = 0;
  uintptr_t last_arena = 0;
  for (size_t i = 0; i < nblocks; i++) {
    uintptr_t arena = (uintptr_t)blocks[i] & ~(uintptr_t)(256 * 1024 - 1);
    if (arena != last_arena && kept < nblocks) {
      last_arena = arena;
      blocks[kept++] = blocks[i];   /* the first block met in each arena stays */
    } else {
      pm_free(blocks[i]);
    }
  }
  /* Each kept block pins its arena's header page and its own pool. */
  ms = pmr_wait_rss_below(start + 8 * 1024 + (long)kept * 8, DECAY_MS, &rss);
  report("one live block per arena", start, full, rss, ms);
  CHECKF(ms >= 0, "one live block per arena (%zu kept): RSS stays at %ld kB", kept, rss);
  for (size_t i = 0; i < kept; i++) pm_free(blocks[i]);
  ms = pmr_wait_rss_below(start + 8 * 1024, DECAY_MS, &rss);
  CHECKF(ms >= 0, "the kept blocks freed: RSS stays at %ld kB", rss);

  /* 4. as 2, the frees once the purge thread has stopped */
  pthread_create(&t, NULL, fill_thread, NULL);
  pthread_join(t, NULL);
  full = pmr_rss_kb();
  pmr_sleep_ms(6 * DECAY_MS);   /* its pass every DECAY_MS / 2 finds the heap full */
  for (size_t i = 0; i < nblocks; i++) pm_free(blocks[i]);
  ms = pmr_wait_rss_below(start + 8 * 1024, DECAY_MS, &rss);
  report("after a thread's exit and a pause", start, full, rss, ms);
  CHECKF(ms >= 0, "after a thread's exit and a pause: RSS stays at %ld kB", rss);

  pm_stats *st = pmr_stats();
  fprintf(stderr, "purges %llu, bytes returned by purges %llu, purge thread starts %llu\n", st->counters.purges,
          st->counters.purge_bytes, st->counters.purge_threads);
  CHECK(st->counters.purges > 0 && st->counters.purge_bytes >= TOTAL / 2);
  return pmt_done("idle_return");
}
