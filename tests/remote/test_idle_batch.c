/* Blocks waiting in an idle thread's batch: thread P allocates 1,000
 * blocks of 256 bytes (its pools FULL) and waits; thread F frees ten of
 * them (fewer than a batch, so they stay in F's batch) and then waits too,
 * alive.  Both are idle; the ten blocks must become free within a bounded
 * time (the purge thread pushes F's batch and takes the blocks into P's
 * FULL pools), not when F next calls the allocator or exits. */
#include <pthread.h>

#include "remote_test.h"

enum { N = 1000, SIZE = 256, FREED = 10, DECAY_MS = 200 };

/* Blocks in use of the test's class only (starting the purge thread
 * allocates blocks of its own). */
static unsigned long long in_use(void) { return pmr_stats()->classes[(SIZE - 1) / 16].blocks_in_use; }
static void *blocks[N];
static int ready, freed;

static void *owner(void *arg) {
  for (int i = 0; i < N; i++) blocks[i] = pm_malloc(SIZE);
  return pmr_announce_and_idle(&ready);
}

static void *freer(void *arg) {
  for (int i = 0; i < FREED; i++) pm_free(blocks[100 + i * 16]);   /* one per FULL pool */
  return pmr_announce_and_idle(&freed);
}

int main(int argc, char **argv) {
  pmr_setenv_reexec(argv, "POOLMALLOC_ARENA_DECAY_MS", "200", NULL);
  pthread_t p, f;
  pthread_create(&p, NULL, owner, NULL);
  pmr_wait_for(&ready);
  unsigned long long before = in_use();
  pthread_create(&f, NULL, freer, NULL);
  pmr_wait_for(&freed);
  long long t0 = pmr_now_ms(), t = -1;
  unsigned long long now = before;
  while (pmr_now_ms() - t0 < 20 * DECAY_MS) {   /* bounded: 2 decays expected, room for load */
    now = in_use();
    if (now + FREED <= before) {
      t = pmr_now_ms() - t0;
      break;
    }
    pmr_sleep_ms(10);
  }
  printf("in use %llu -> %llu; the idle thread's batch was taken after %lld ms\n", before, now, t);
  CHECKF(t >= 0, "the %d blocks stayed in the idle thread's batch (in use %llu -> %llu)", FREED, before, now);
  pmr_release();
  pthread_join(f, NULL);
  pthread_join(p, NULL);
  return pmt_done("test_idle_batch");
}
