/* Remote batches are kept per destination: 40,000 frees alternating
 * between the blocks of two owners still travel in batches (today's limit
 * is 128 blocks a batch: at most 40,000 / 128 pushes, plus the flushes of the
 * partial ones), not one CAS per free. */
#include <pthread.h>

#include "remote_test.h"

enum { N = 20000, SIZE = 64 };
static void *blocks[2][N];
static pthread_barrier_t bar;

static void *owner(void *arg) {
  void **mine = arg;
  for (int i = 0; i < N; i++) mine[i] = pm_malloc(SIZE);
  pthread_barrier_wait(&bar);   /* allocated */
  pthread_barrier_wait(&bar);   /* freed by main */
  pm_collect(0);
  return NULL;
}

int main(void) {
  pthread_barrier_init(&bar, NULL, 3);
  pthread_t a, b;
  pthread_create(&a, NULL, owner, blocks[0]);
  pthread_create(&b, NULL, owner, blocks[1]);
  pthread_barrier_wait(&bar);
  pm_counters before, after;
  pm_counters_get(&before);
  for (int i = 0; i < N; i++) {
    pm_free(blocks[0][i]);
    pm_free(blocks[1][i]);
  }
  pm_collect(0);   /* flushes this thread's partial batches */
  pm_counters_get(&after);
  unsigned long long pushes = after.remote_pushes - before.remote_pushes;
  fprintf(stderr, "alternating owners: %d frees in %llu pushes\n", 2 * N, pushes);
  CHECKF(pushes <= 2 * N / 128 + 8, "%llu pushes for %d frees", pushes, 2 * N);
  pthread_barrier_wait(&bar);
  pthread_join(a, NULL);
  pthread_join(b, NULL);
  CHECKF(pmr_in_use() <= 8, "%llu blocks in use", pmr_in_use());   /* the C library's own */
  return pmt_done("alternating");
}
