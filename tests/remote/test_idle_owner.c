/* An idle owner: thread P allocates 100,000 blocks of 496 bytes and then
 * waits on a condition variable, never calling the allocator; this thread
 * frees them all.  The blocks must become free, and the arenas go back to
 * the OS, within a bounded time (at most twice POOLMALLOC_ARENA_DECAY_MS
 * after the frees, plus room for a loaded machine), whatever P does.
 * Twice: as allocated, and with P's pools gone round their lists (it frees
 * every eighth block itself and allocates half as many again before it
 * idles, so that drained heads give way to pools with room: thousands of
 * USED pools that are not the head, whose blocks a visitor cannot put on
 * their free lists, remote.c, "held blocks of USED pools"). */
#include <pthread.h>
#include <stdbool.h>

#include "remote_test.h"

enum { N = 100000, SIZE = 496, DECAY_MS = 200, EVERY = 8 };
static void **blocks;
static int ready;

static void *producer(void *arg) {
  bool rotate = arg != NULL;
  for (int i = 0; i < N; i++) {
    blocks[i] = pm_malloc(SIZE);
    memset(blocks[i], 0x5A, SIZE);
  }
  for (int i = 0; rotate && i < N; i += EVERY) pm_free(blocks[i]);
  for (int i = 0; rotate && i < N; i += 2 * EVERY) {   /* half of them back: half the pools went round */
    blocks[i] = pm_malloc(SIZE);
    memset(blocks[i], 0xA5, SIZE);
  }
  pmr_announce_and_idle(&ready);   /* idle: no allocator call */
  return NULL;
}

/* Is blocks[i] live after P's frees? */
static bool live(bool rotate, int i) { return !rotate || i % EVERY != 0 || i % (2 * EVERY) == 0; }

int main(int argc, char **argv) {
  pmr_setenv_reexec(argv, "POOLMALLOC_ARENA_DECAY_MS", "200", "POOLMALLOC_ARENA_RESERVE", "4", NULL);
  blocks = pmr_map(N * sizeof(void *));
  for (int rotate = 0; rotate <= 1; rotate++) {
    long rss_start = pmr_rss_kb();
    ready = pmr_idle_done = 0;
    pthread_t t;
    pthread_create(&t, NULL, producer, rotate ? &ready : NULL);
    pmr_wait_for(&ready);
    unsigned long long used_full = pmr_in_use();
    CHECKF(used_full >= (unsigned)(rotate ? N - N / (2 * EVERY) : N), "in use %llu", used_full);
    for (int i = 0; i < N; i++)
      if (live(rotate, i)) pm_free(blocks[i]);
    pmr_expect_back(rotate ? "idle owner, pools rotated" : "idle owner", DECAY_MS, rss_start, used_full);
    pmr_release();
    pthread_join(t, NULL);
  }
  return pmt_done("idle_owner");
}
