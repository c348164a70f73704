/* The huge blocks' cache goes back when the program goes idle: six blocks
 * of 4 MiB, every page touched, freed; then no allocator call at all.  The
 * cache keeps their mappings for the decay (a program that allocates
 * another big buffer at once pays no fault for it), and the purge thread
 * unmaps them after it: RSS falls back to where it started within a
 * bounded wait (about twice the decay; the loop allows twenty and 5 s for
 * a loaded machine). */
#include "remote_test.h"

enum { N = 6, SIZE = 4 << 20, DECAY_MS = 200 };

int main(int argc, char **argv) {
  pmr_setenv_reexec(argv, "POOLMALLOC_ARENA_DECAY_MS", "200", NULL);
  long rss0 = pmr_rss_kb();
  void *v[N];
  for (int i = 0; i < N; i++) {
    v[i] = pm_malloc(SIZE);
    REQUIRE(v[i] != NULL);
    memset(v[i], 1, SIZE);
  }
  long rss_full = pmr_rss_kb();
  for (int i = 0; i < N; i++) pm_free(v[i]);
  pm_stats *st = pmr_stats();
  CHECKF(st->large.cached_bytes >= (unsigned long long)N * SIZE, "cached %llu bytes after the frees",
         (unsigned long long)st->large.cached_bytes);
  long long t0 = pmr_now_ms();
  long rss = pmr_rss_kb();
  while (rss - rss0 > 2048 && pmr_now_ms() - t0 < 20 * DECAY_MS + 5000) {
    struct timespec ts = {0, 20 * 1000000L};
    nanosleep(&ts, NULL);
    rss = pmr_rss_kb();
  }
#if !defined(__SANITIZE_THREAD__)   /* ThreadSanitizer's shadow memory has its own RSS */
  CHECKF(rss_full - rss0 >= 20 * 1024, "RSS grew by %ld kB only", rss_full - rss0);
  CHECKF(rss - rss0 <= 2048, "RSS %ld kB above the start %lld ms after the frees", rss - rss0, pmr_now_ms() - t0);
#endif
  st = pmr_stats();
  CHECKF(st->large.cached_bytes == 0, "cached %llu bytes at the end", (unsigned long long)st->large.cached_bytes);
  return pmt_done("idle_huge");
}
