/* A thread's exit keeps the free pages of its medium regions for the next
 * thread, and the purge thread gives them back once they stay idle.
 *
 * T1 allocates 16,384 blocks of 2 KiB (32 MiB), keeps every 32nd and frees
 * the others, then exits.  Its heap is left to the next thread that starts
 * (larson's pattern: each round's threads take over the blocks of the round
 * before): the pages of its free blocks stay resident at the exit, and T2,
 * which adopts the heap, allocates as many blocks again without faulting
 * most of their pages in.  T2 frees them and exits; with nobody to use the
 * heap, the purge thread gives the free pages back while T1's kept blocks
 * stay live: RSS falls to about their pages, within a bounded wait (about
 * twice the decay; the loop allows four and 5 s for a loaded machine). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE   /* RUSAGE_THREAD */
#endif
#include <sys/resource.h>

#include "remote_test.h"

enum { N = 16384, SIZE = 2048, KEEP = 32, DECAY_MS = 1000 };
static void **blocks;

static long thread_faults(void) {
  struct rusage ru;
  getrusage(RUSAGE_THREAD, &ru);
  return ru.ru_minflt;
}

static void *first(void *arg) {
  (void)arg;
  for (int i = 0; i < N; i++) {
    blocks[i] = pm_malloc(SIZE);
    REQUIRE(blocks[i] != NULL);
    memset(blocks[i], 0x5a, SIZE);
  }
  for (int i = 0; i < N; i++)
    if (i % KEEP != 0) {
      pm_free(blocks[i]);
      blocks[i] = NULL;
    }
  return NULL;
}

static long second_faults;
static void *second(void *arg) {
  void **mine = arg;
  long f0 = thread_faults();
  for (int i = 0; i < N - N / KEEP; i++) {
    mine[i] = pm_malloc(SIZE);
    REQUIRE(mine[i] != NULL);
    memset(mine[i], 0x33, SIZE);
  }
  second_faults = thread_faults() - f0;
  for (int i = 0; i < N - N / KEEP; i++) pm_free(mine[i]);
  return NULL;
}

int main(int argc, char **argv) {
  pmr_setenv_reexec(argv, "POOLMALLOC_ARENA_DECAY_MS", "1000", "POOLMALLOC_ARENA_RESERVE", "4", NULL);
  blocks = pmr_map(N * sizeof(void *));
  void **mine = pmr_map(N * sizeof(void *));
  long rss0 = pmr_rss_kb();
  pthread_t t;
  REQUIRE(pthread_create(&t, NULL, first, NULL) == 0);
  pthread_join(t, NULL);
  long rss_exit = pmr_rss_kb();
#if !defined(__SANITIZE_THREAD__)   /* ThreadSanitizer's shadow memory has its own RSS and faults */
  /* 31 MiB of free blocks' pages: still resident right after the exit
   * (the purge thread waits a decay period before it may take them). */
  CHECKF(rss_exit - rss0 > 24 * 1024, "RSS %ld kB above the start after T1's exit", rss_exit - rss0);
#endif
  REQUIRE(pthread_create(&t, NULL, second, mine) == 0);
  pthread_join(t, NULL);
#if !defined(__SANITIZE_THREAD__)
  /* The blocks' 7,936 pages were resident: a few faults (its stack, a
   * fresh region for what T1's regions do not hold), not thousands. */
  CHECKF(second_faults < 2000, "T2 took %ld page faults", second_faults);
#endif
  /* T1's kept blocks pin at most two pages each (1 and 2 MiB) and the
   * regions' headers; everything else goes back. */
  long long t0 = pmr_now_ms();
  long rss = pmr_rss_kb();
  while (rss - rss0 > 8 * 1024 && pmr_now_ms() - t0 < 4 * DECAY_MS + 5000) {
    struct timespec ts = {0, 50 * 1000000L};
    nanosleep(&ts, NULL);
    rss = pmr_rss_kb();
  }
#if !defined(__SANITIZE_THREAD__)
  CHECKF(rss - rss0 <= 8 * 1024, "RSS %ld kB above the start %lld ms after T2's exit", rss - rss0, pmr_now_ms() - t0);
#endif
  for (int i = 0; i < N; i += KEEP) {
    for (int k = 0; k < SIZE; k++)
      if (((unsigned char *)blocks[i])[k] != 0x5a) {
        CHECKF(0, "kept block %d changed at %d", i, k);
        break;
      }
    pm_free(blocks[i]);
  }
  return pmt_done("exit_pages");
}
