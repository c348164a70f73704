/* An idle owner: thread P allocates 100,000 blocks of 496 bytes and then
 * waits on a condition variable, never calling the allocator; this thread
 * frees them all.  The blocks must become free, and the arenas go back to
 * the OS, within a bounded time (at most twice POOLMALLOC_ARENA_DECAY_MS
 * after the frees, plus room for a loaded machine), whatever P does. */
#include <pthread.h>

#include "remote_test.h"

enum { N = 100000, SIZE = 496, DECAY_MS = 200 };
static void **blocks;
static int ready;

static void *producer(void *arg) {
  for (int i = 0; i < N; i++) {
    blocks[i] = pm_malloc(SIZE);
    memset(blocks[i], 0x5A, SIZE);
  }
  pmr_announce_and_idle(&ready);   /* idle: no allocator call */
  return NULL;
}

int main(int argc, char **argv) {
  pmr_setenv_reexec(argv, "POOLMALLOC_ARENA_DECAY_MS", "200", "POOLMALLOC_ARENA_RESERVE", "4", NULL);
  blocks = pmr_map(N * sizeof(void *));
  long rss_start = pmr_rss_kb();
  pthread_t t;
  pthread_create(&t, NULL, producer, NULL);
  pmr_wait_for(&ready);
  long rss_full = pmr_rss_kb();
  unsigned long long used_full = pmr_in_use();
  CHECKF(used_full >= N, "in use %llu", used_full);
  for (int i = 0; i < N; i++) pm_free(blocks[i]);
  long long t0 = pmr_now_ms(), t_blocks = -1, t_rss = -1, t_arenas = -1;
  long rss = 0;
  unsigned long long used = 0;
  /* Bounded: 4 decay periods and 5 s of room for a loaded machine. */
  while (pmr_now_ms() - t0 < 4 * DECAY_MS + 5000) {
    pmr_sleep_ms(20);
    rss = pmr_rss_kb();
    if (t_rss < 0 && rss < rss_start + 8 * 1024) t_rss = pmr_now_ms() - t0;
    if (t_arenas < 0 && pmr_stats()->arenas.mapped <= 4 + 2) t_arenas = pmr_now_ms() - t0;
    if (t_blocks < 0) {
      used = pmr_in_use();
      if (used <= 200) t_blocks = pmr_now_ms() - t0;
    }
    if (t_rss >= 0 && t_blocks >= 0 && t_arenas >= 0) break;
  }
  pm_stats *st = pmr_stats();
  fprintf(stderr, "idle owner: RSS %ld kB at start, %ld kB full, %ld kB after (blocks free after %lld ms, "
          "RSS back after %lld ms, arenas after %lld ms); blocks in use %llu -> %llu; arenas mapped %llu\n",
          rss_start, rss_full, rss, t_blocks, t_rss, t_arenas, used_full, used, st->arenas.mapped);
  CHECKF(t_blocks >= 0, "blocks freed by another thread still in use: %llu", used);
#if !defined(__SANITIZE_THREAD__)   /* ThreadSanitizer's shadow memory has its own RSS */
  CHECKF(t_rss >= 0, "RSS stays at %ld kB (started at %ld kB)", rss, rss_start);
#endif
  CHECKF(t_arenas >= 0, "%llu arenas mapped", st->arenas.mapped);
  pmr_release();
  pthread_join(t, NULL);
  return pmt_done("idle_owner");
}
