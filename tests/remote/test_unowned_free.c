/* Frees into a heap no thread owns: a thread allocates 20,000 blocks of
 * pool and medium sizes, fills them and exits; this thread checks and frees
 * them.  Each free takes the unowned heap's lock (nobody else holds it here)
 * and frees the block into its pool or region at once (remote.c,
 * free_into_unowned): no push onto the heap's stack, so the counter of
 * pushes stays (almost) still where it used to grow by one a free, and
 * every block is back, the memory check clean. */
#include <pthread.h>

#include "remote_test.h"

enum { N = 20000 };
static void *blocks[N];

static size_t size_of(int i) { return 16 + (size_t)(i * 7919) % 2000; }   /* 16..2015 bytes */

static void *owner(void *arg) {
  for (int i = 0; i < N; i++) {
    blocks[i] = pm_malloc(size_of(i));
    memset(blocks[i], i & 0xff, size_of(i));
  }
  return NULL;
}

int main(void) {
  unsigned long long in_use0 = pmr_in_use();
  pthread_t t;
  pthread_create(&t, NULL, owner, NULL);
  pthread_join(t, NULL);   /* its heap is unowned now */
  pm_counters before, after;
  pm_counters_get(&before);
  int bad = 0;
  for (int i = 0; i < N; i++) {
    const unsigned char *b = blocks[i];
    if (b[0] != (i & 0xff) || b[size_of(i) - 1] != (i & 0xff)) bad++;
    pm_free(blocks[i]);
  }
  pm_counters_get(&after);
  unsigned long long pushes = after.remote_pushes - before.remote_pushes;
  fprintf(stderr, "unowned heap: %d frees, %llu pushes; blocks in use %llu before, %llu after\n", N, pushes, in_use0,
          pmr_in_use());
  CHECKF(bad == 0, "%d blocks lost their contents", bad);
  CHECKF(pushes <= N / 100, "%llu pushes for %d frees into an unowned heap", pushes, N);
  CHECKF(pmr_in_use() <= in_use0 + 8, "%llu blocks in use (%llu before)", pmr_in_use(), in_use0);
  CHECK(pm_check() == 0);
  return pmt_done("unowned_free");
}
