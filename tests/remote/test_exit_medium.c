/* A thread's exit keeps its medium regions' free pages for the next thread
 * that takes its heap, until the decay or malloc_trim gives them back.
 * Thread A allocates and fills 1,024 blocks of 8 KiB, frees all but every
 * sixteenth (so that each region keeps live blocks and stays its heap's)
 * and exits.  With a decay of 600 s:
 *  - A's exit gives no medium page back;
 *  - thread B, which takes A's heap, allocates and fills as many blocks
 *    again, and takes fewer page faults than a quarter of their pages;
 *  - malloc_trim(0) afterwards gives the free pages back at once.
 * With a decay of 200 ms, re-executed: A's exit alone, and the pages of its
 * unowned heap go back within a bounded time (the purge thread). */
#include <malloc.h>
#include <sys/resource.h>

#include "remote_test.h"

enum { N = 1024, SIZE = 8192, KEEP_EVERY = 16, DECAY_MS = 200 };
static void **blocks;
static unsigned long long purged_before_exit;
static long faults;

static unsigned long long medium_purged(void) {
  pm_counters c;
  pm_counters_get(&c);
  return (unsigned long long)c.medium_purge_bytes;
}

static long thread_faults(void) {
  struct rusage ru;
  getrusage(RUSAGE_THREAD, &ru);
  return ru.ru_minflt;
}

static void *fill_and_exit(void *arg) {
  (void)arg;
  for (int i = 0; i < N; i++) {
    blocks[i] = pm_malloc(SIZE);
    memset(blocks[i], 0x5A, SIZE);
  }
  for (int i = 0; i < N; i++)
    if (i % KEEP_EVERY != 0) pm_free(blocks[i]);
  purged_before_exit = medium_purged();
  return NULL;
}

static void *refill(void *arg) {
  (void)arg;
  long f0 = thread_faults();
  for (int i = 0; i < N; i++) {
    if (i % KEEP_EVERY == 0) continue;
    blocks[i] = pm_malloc(SIZE);
    memset(blocks[i], 0xA5, SIZE);
  }
  faults = thread_faults() - f0;
  for (int i = 0; i < N; i++)
    if (i % KEEP_EVERY != 0) pm_free(blocks[i]);
  return NULL;
}

static void run(void *(*fn)(void *)) {
  pthread_t t;
  pthread_create(&t, NULL, fn, NULL);
  pthread_join(t, NULL);
}

/* The free bytes of A's regions: what a purge of them must give back, at
 * least (their pages less the live blocks', a page of slack each). */
static const unsigned long long free_bytes = (unsigned long long)(N - N / KEEP_EVERY) * SIZE / 2;

static void keep_until_trim(void) {
  run(fill_and_exit);
  unsigned long long at_exit = medium_purged() - purged_before_exit;
  fprintf(stderr, "exit: %llu bytes of medium pages given back\n", at_exit);
  CHECKF(at_exit == 0, "the exit gave back %llu bytes of free medium pages", at_exit);

  run(refill);
  long pages = (long)(N - N / KEEP_EVERY) * SIZE / 4096;
  fprintf(stderr, "the next thread: %ld page faults for %ld pages of blocks\n", faults, pages);
#if !defined(__SANITIZE_THREAD__)   /* ThreadSanitizer's shadow memory takes faults of its own */
  CHECKF(faults < pages / 4, "%ld page faults for %ld pages the exited thread's heap had", faults, pages);
#endif

  unsigned long long before = medium_purged();
  malloc_trim(0);
  unsigned long long trimmed = medium_purged() - before;
  fprintf(stderr, "malloc_trim: %llu bytes of medium pages given back\n", trimmed);
  CHECKF(trimmed >= free_bytes, "malloc_trim gave back %llu bytes, %llu free", trimmed, free_bytes);
  for (int i = 0; i < N; i += KEEP_EVERY) pm_free(blocks[i]);
}

static void back_after_decay(void) {
  run(fill_and_exit);
  long long t0 = pmr_now_ms();
  unsigned long long given = 0;
  /* Bounded: 4 decay periods and 5 s of room for a loaded machine. */
  while (pmr_now_ms() - t0 < 4 * DECAY_MS + 5000) {
    pmr_sleep_ms(20);
    given = medium_purged() - purged_before_exit;
    if (given >= free_bytes) break;
  }
  fprintf(stderr, "decay: %llu bytes of medium pages given back after %lld ms\n", given, pmr_now_ms() - t0);
  CHECKF(given >= free_bytes, "an exited thread's free medium pages: %llu bytes back, %llu free", given, free_bytes);
  for (int i = 0; i < N; i += KEEP_EVERY) pm_free(blocks[i]);
}

int main(int argc, char **argv) {
  const char *phase = getenv("PMT_EXIT_MEDIUM_PHASE");
  blocks = pmr_map(N * sizeof(void *));
  if (phase != NULL && strcmp(phase, "decay") == 0) {
    pmr_setenv_reexec(argv, "POOLMALLOC_ARENA_DECAY_MS", "200", NULL);
    back_after_decay();
    return pmt_done("exit_medium");
  }
  pmr_setenv_reexec(argv, "POOLMALLOC_ARENA_DECAY_MS", "600000", NULL);
  keep_until_trim();
  if (pmt_failed() != 0) return pmt_done("exit_medium");
  pmr_setenv_reexec(argv, "POOLMALLOC_ARENA_DECAY_MS", "200", "PMT_EXIT_MEDIUM_PHASE", "decay", NULL);
  return 2;   /* (not reached) */
}
