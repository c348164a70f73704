/* A program that frees its medium blocks and goes idle gives their regions
 * back with no further call into the allocator.  Two cases, both with
 * blocks of three medium classes (about 37 MB):
 *   1. this thread allocates and frees them itself: the regions that
 *      emptied wait in the medium reserve, and those beyond what it keeps
 *      are unmapped once POOLMALLOC_ARENA_DECAY_MS has passed (the purge
 *      thread must have been started by the frees: nothing else is running);
 *   2. a thread allocates them and exits; after a pause long enough for the
 *      purge thread's passes over the abandoned (full) heap to stop it, this
 *      thread frees them (each free goes straight into the unowned heap,
 *      under its lock), and the regions go back the same way.
 * What may stay: the region each class allocates from (its head, kept for
 * the next malloc of the class) and the regions the reserve keeps.  While
 * waiting, only /proc is read. */
#include <pthread.h>

#include "remote_test.h"

enum { DECAY_MS = 200, NSIZES = 3 };
static const size_t sizes[NSIZES] = {1024, 8192, 65536};
static const int counts[NSIZES] = {12000, 1500, 190};
static void **blocks[NSIZES];

static void *fill(void *arg) {
  for (int s = 0; s < NSIZES; s++)
    for (int i = 0; i < counts[s]; i++) {
      blocks[s][i] = pm_malloc(sizes[s]);
      CHECK(blocks[s][i] != NULL);
      memset(blocks[s][i], 0x5A, sizes[s]);
    }
  return arg;
}

static void free_all(void) {
  for (int s = 0; s < NSIZES; s++)
    for (int i = 0; i < counts[s]; i++) pm_free(blocks[s][i]);
}

static void expect_back(const char *what, long start, long full) {
  long rss = 0;
  long long ms = pmr_wait_rss_below(start + 8 * 1024, DECAY_MS, &rss);
  fprintf(stderr, "%s: RSS %ld kB at start, %ld kB full, %ld kB after; back after %lld ms\n", what, start, full,
          rss, ms);
  CHECKF(ms >= 0, "%s: RSS stays at %ld kB", what, rss);
}

int main(int argc, char **argv) {
  pmr_setenv_reexec(argv, "POOLMALLOC_ARENA_DECAY_MS", "200", "POOLMALLOC_ARENA_RESERVE", "4", NULL);
  for (int s = 0; s < NSIZES; s++) blocks[s] = pmr_map((size_t)counts[s] * sizeof(void *));
  long start = pmr_rss_kb();

  /* 1. this thread's own blocks */
  fill(NULL);
  long full = pmr_rss_kb();
  CHECK(full > start + 30 * 1024);
  free_all();
  expect_back("own medium blocks", start, full);

  /* 2. an exited thread's blocks, freed after a pause */
  pthread_t t;
  pthread_create(&t, NULL, fill, NULL);
  pthread_join(t, NULL);
  full = pmr_rss_kb();
  pmr_sleep_ms(6 * DECAY_MS);   /* the purge thread's pass every DECAY_MS / 2 finds the heap full */
  free_all();
  expect_back("an exited thread's medium blocks after a pause", start, full);

  pm_stats *st = pmr_stats();
  fprintf(stderr, "medium regions mapped %llu, in the reserve %llu; purge thread starts %llu\n",
          (unsigned long long)st->medium.regions, (unsigned long long)st->medium.reserve,
          (unsigned long long)st->counters.purge_threads);
  return pmt_done("idle_own_medium");
}
