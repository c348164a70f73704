/* Spares: the empty pools a heap keeps on its usedpools lists, up to four
 * arenas' worth (types.h, PMI_SPARE_POOLS).  Three cases:
 *   1. a fresh page is not touched while spares beyond one arena's worth
 *      could serve: pools of 64-byte blocks are freed, then as many pools of
 *      256-byte blocks are taken, and no arena may be mapped for them;
 *   2. the spares of an idle owner go back: this thread frees 240 pools'
 *      worth of blocks of four classes and then only reads /proc and the
 *      statistics; the pools must leave the classes and RSS fall back within
 *      a bounded time (the purge thread gives back spares it found unused at
 *      two passes: at most POOLMALLOC_ARENA_DECAY_MS after they emptied);
 *   3. the same for a thread that frees its own blocks and then waits on a
 *      condition variable;
 *   4. malloc_trim (pm_collect(1)) from this thread gives back a waiting
 *      thread's spares at once, before any purge pass could.
 * Without membarrier (POOLMALLOC_MEMBARRIER=0: test_idle_spares_nobarrier.sh,
 * and the ThreadSanitizer build) cases 3 and 4 rely on what the owner's
 * slow paths show a visitor (pool.c, "idle spares"): the waiting thread's
 * spares beyond 63 were each shown as it made them.
 * In cases 2 and 3 the spares are there at first (the frees keep them), so
 * without the purge thread's release they would stay for as long as the
 * owner lives. */
#include <pthread.h>

#include "remote_test.h"

enum { DECAY_MS = 200, POOL = 4096, POOLS_PER_CLASS = 60, NCLASS = 4 };
static const size_t sizes[NCLASS] = {64, 160, 320, 496};
static void **blocks;
static size_t nblocks;

static unsigned long long pools_now(void) {
  pm_stats *st = pmr_stats();
  unsigned long long n = 0;
  for (int c = 0; c < PM_NCLASSES; c++) n += st->classes[c].pools;
  return n;
}

static void fill(void) {
  nblocks = 0;
  for (int k = 0; k < NCLASS; k++) {
    size_t per_pool = POOL / sizes[k];
    for (size_t i = 0; i < POOLS_PER_CLASS * per_pool; i++) {
      blocks[nblocks] = pm_malloc(sizes[k]);
      memset(blocks[nblocks], 0x33, sizes[k]);
      nblocks++;
    }
  }
}

static void drop(void) {
  /* newest first: every pool but each class's head empties as a spare */
  for (size_t i = nblocks; i-- > 0;) pm_free(blocks[i]);
  nblocks = 0;
}

/* Polls (no malloc of its own) until the classes hold at most limit pools
 * and, outside ThreadSanitizer, RSS is below rss_limit; the time it took,
 * or -1. */
static long long wait_spares_gone(unsigned long long limit, long rss_limit, unsigned long long *pools, long *rss) {
  long long t0 = pmr_now_ms();
  while (pmr_now_ms() - t0 < 4 * DECAY_MS + 5000) {
    pmr_sleep_ms(20);
    *pools = pools_now();
    *rss = pmr_rss_kb();
#if defined(__SANITIZE_THREAD__)   /* ThreadSanitizer's shadow memory has its own RSS */
    rss_limit = *rss + 1;
#endif
    if (*pools <= limit && *rss < rss_limit) return pmr_now_ms() - t0;
  }
  return -1;
}

static int ready, ready2;

static void *owner_thread(void *arg) {
  fill();
  drop();
  pmr_announce_and_idle(arg);   /* idle: no allocator call */
  return NULL;
}

int main(int argc, char **argv) {
  pmr_setenv_reexec(argv, "POOLMALLOC_ARENA_DECAY_MS", "200", "POOLMALLOC_ARENA_RESERVE", "4", NULL);
  blocks = pmr_map(NCLASS * POOLS_PER_CLASS * (POOL / 16) * sizeof(void *));

  /* 1. spares serve a change of classes before a fresh page does */
  {
    size_t n = 200 * (POOL / 64);
    for (size_t i = 0; i < n; i++) blocks[i] = pm_malloc(64);
    for (size_t i = n; i-- > 0;) pm_free(blocks[i]);
    unsigned long long mapped = pmr_stats()->arenas.mapped;
    size_t m = 180 * (POOL / 256);
    for (size_t i = 0; i < m; i++) blocks[i] = pm_malloc(256);
    unsigned long long after = pmr_stats()->arenas.mapped;
    fprintf(stderr, "phase change: arenas mapped %llu after 200 pools of 64 B freed, %llu after 180 pools of "
            "256 B taken\n", mapped, after);
    CHECKF(after <= mapped + 1, "arenas mapped %llu -> %llu: fresh pages taken while spares waited", mapped,
           after);
    for (size_t i = m; i-- > 0;) pm_free(blocks[i]);
    pm_collect(1);   /* the next cases start with no spares (malloc_trim) */
  }

  /* 2. this thread's spares, this thread idle */
  long start = pmr_rss_kb(), rss = 0;
  unsigned long long pools0 = pools_now(), pools = 0;
  fill();
  long full = pmr_rss_kb();
  drop();
  unsigned long long kept = pools_now();
  fprintf(stderr, "own spares: %llu pools before, %llu after the frees\n", pools0, kept);
  CHECKF(kept >= pools0 + NCLASS * (POOLS_PER_CLASS - 1) - 4,
         "the frees kept %llu pools (%llu before): spares not kept", kept, pools0);
  long long ms = wait_spares_gone(pools0 + NCLASS + 2, start + 256, &pools, &rss);
  fprintf(stderr, "own spares: RSS %ld kB at start, %ld kB full, %ld kB after; %llu pools after %lld ms\n", start,
          full, rss, pools, ms);
  CHECKF(ms >= 0, "an idle owner keeps its spares: %llu pools, RSS %ld kB (started at %ld kB)", pools, rss,
         start);

  /* 3. another thread's, that thread waiting on a condition variable */
  pthread_t t;
  start = pmr_rss_kb();
  pools0 = pools_now();
  pthread_create(&t, NULL, owner_thread, &ready);
  pmr_wait_for(&ready);
  kept = pools_now();
  CHECKF(kept >= pools0 + NCLASS * (POOLS_PER_CLASS - 1) - 4,
         "another thread's frees kept %llu pools (%llu before): spares not kept", kept, pools0);
  ms = wait_spares_gone(pools0 + NCLASS + 2, start + 256, &pools, &rss);
  fprintf(stderr, "idle thread's spares: %llu pools kept, %llu after %lld ms; RSS %ld kB at start, %ld kB after\n",
          kept, pools, ms, start, rss);
  CHECKF(ms >= 0, "an idle thread keeps its spares: %llu pools, RSS %ld kB (started at %ld kB)", pools, rss, start);

  /* 4. another waiting thread's spares, by malloc_trim from here */
  pthread_t t2;
  pools0 = pools_now();
  pthread_create(&t2, NULL, owner_thread, &ready2);
  pmr_wait_for(&ready2);
  kept = pools_now();
  long long t0 = pmr_now_ms();
  pm_collect(1);
  ms = pmr_now_ms() - t0;
  pools = pools_now();
  fprintf(stderr, "malloc_trim: a waiting thread's %llu pools, %llu after it (%lld ms)\n", kept, pools, ms);
  CHECKF(kept >= pools0 + NCLASS * (POOLS_PER_CLASS - 1) - 4,
         "the third thread's frees kept %llu pools (%llu before): spares not kept", kept, pools0);
  CHECKF(pools <= pools0 + NCLASS + 2, "malloc_trim left a waiting thread's spares: %llu pools (%llu before)", pools,
         pools0);
  pmr_release();
  pthread_join(t, NULL);
  pthread_join(t2, NULL);

  pm_stats *st = pmr_stats();
  fprintf(stderr, "purges %llu, bytes returned %llu, purge thread starts %llu\n", st->counters.purges,
          st->counters.purge_bytes, st->counters.purge_threads);
  CHECK(pm_check() == 0);
  return pmt_done("idle_spares");
}
