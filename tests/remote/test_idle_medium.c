/* An idle owner's medium blocks: thread P allocates blocks of three medium
 * classes (about 37 MB) and then waits on a condition variable, never
 * calling the allocator; this thread frees them all.  The blocks must
 * become free and the emptied regions go back to the OS within a bounded
 * time (twice POOLMALLOC_ARENA_DECAY_MS after the frees, plus room for a
 * loaded machine), whatever P does.  What may stay: the region each class
 * allocates from (P's fast paths may be inside it), and the regions the
 * reserve keeps.
 * Then a second P, and this thread frees all but the first 64 KiB block of
 * each region: one live block must not pin the pages of the other 14 (their
 * pages go back once the decay has passed). */
#include <pthread.h>

#include "remote_test.h"

enum { DECAY_MS = 200, NSIZES = 3 };
static const size_t sizes[NSIZES] = {1024, 8192, 65536};
static const int counts[NSIZES] = {12000, 1500, 190};
static void **blocks[NSIZES];
static int ready;

static void *producer(void *arg) {
  for (int s = 0; s < NSIZES; s++)
    for (int i = 0; i < counts[s]; i++) {
      blocks[s][i] = pm_malloc(sizes[s]);
      memset(blocks[s][i], 0x5A, sizes[s]);
    }
  pmr_announce_and_idle(&ready);   /* idle: no allocator call */
  /* Awake: its slow paths take back what visitors held for it, and its
   * heap adds up (pm_check: the held lists, types.h's equations). */
  for (int s = 0; s < NSIZES; s++) {
    void *q = pm_malloc(sizes[s]);
    pm_free(q);
  }
  CHECK(pm_check() == 0);
  return NULL;
}

/* 64 KiB blocks: 15 a region; the first of each is kept when pinning */
static int kept(int pin, int s, int i) { return pin && sizes[s] == 65536 && i % 15 == 0; }

static void phase(int pin) {
  ready = pmr_idle_done = 0;   /* (no thread of the test runs now) */
  long rss_start = pmr_rss_kb();
  pthread_t t;
  pthread_create(&t, NULL, producer, NULL);
  pmr_wait_for(&ready);
  long rss_full = pmr_rss_kb();
  pm_stats *st = pmr_stats();
  unsigned long long used_full = pmr_medium_in_use(st), regions_full = st->medium.regions;
  CHECKF(used_full >= 12000 + 1500 + 190, "medium in use %llu", used_full);
  /* What P's head regions may keep: one region's worth of each class. */
  unsigned long long head_blocks = 0;
  for (int s = 0; s < NSIZES; s++) head_blocks += (1u << 20) / sizes[s];
  unsigned long long nkept = 0, kept_kb = 0;
  for (int s = 0; s < NSIZES; s++)
    for (int i = 0; i < counts[s]; i++) {
      if (!kept(pin, s, i)) pm_free(blocks[s][i]);
      else nkept++, kept_kb += sizes[s] / 1024;
    }
  long long t0 = pmr_now_ms(), t_blocks = -1, t_rss = -1, t_regions = -1;
  long rss = 0;
  unsigned long long used = 0, regions = 0;
  /* Bounded: 4 decay periods and 5 s of room for a loaded machine. */
  while (pmr_now_ms() - t0 < 4 * DECAY_MS + 5000) {
    pmr_sleep_ms(20);
    st = pmr_medium_sample(&rss, &used, &regions);
    long long now = pmr_now_ms() - t0;
    if (t_rss < 0 && rss < rss_start + 8 * 1024 + (long)kept_kb) t_rss = now;
    /* heads, the reserve's 1, slack; and the regions the kept blocks hold */
    if (t_regions < 0 && regions <= NSIZES + 1 + 2 + nkept) t_regions = now;
    if (t_blocks < 0 && used <= head_blocks + nkept) t_blocks = now;
    if (t_rss >= 0 && t_blocks >= 0 && t_regions >= 0) break;
  }
  fprintf(stderr, "idle medium owner%s: RSS %ld kB at start, %ld kB full, %ld kB after (blocks free after %lld ms, "
          "RSS back after %lld ms, regions after %lld ms); medium blocks in use %llu -> %llu; regions %llu -> %llu\n",
          pin ? " (one live block in each 64 KiB region)" : "", rss_start, rss_full, rss, t_blocks, t_rss, t_regions, used_full, used, regions_full, regions);
  CHECKF(t_blocks >= 0, "medium blocks freed by another thread still in use: %llu (at most %llu may wait)", used,
         head_blocks);
#if !defined(__SANITIZE_THREAD__)   /* ThreadSanitizer's shadow memory has its own RSS */
  CHECKF(t_rss >= 0, "RSS stays at %ld kB (started at %ld kB)", rss, rss_start);
#endif
  CHECKF(t_regions >= 0, "%llu medium regions mapped", regions);
  pmr_release();
  pthread_join(t, NULL);
  for (int s = 0; s < NSIZES; s++)
    for (int i = 0; i < counts[s]; i++)
      if (kept(pin, s, i)) pm_free(blocks[s][i]);
  /* P's exit took the rest: nothing in use. */
  st = pmr_stats();
  CHECKF(pmr_medium_in_use(st) == 0, "after P's exit, medium in use %llu", pmr_medium_in_use(st));
}

int main(int argc, char **argv) {
  pmr_setenv_reexec(argv, "POOLMALLOC_ARENA_DECAY_MS", "200", "POOLMALLOC_ARENA_RESERVE", "4", NULL);
  for (int s = 0; s < NSIZES; s++) blocks[s] = pmr_map((size_t)counts[s] * sizeof(void *));
  phase(0);
  phase(1);
  return pmt_done("idle_medium");
}
