/* How far a remote batch grows: pool blocks travel 128 to a push, medium
 * blocks 32 (so that an idle freeing thread holds at most 16 MiB of them),
 * and a slot that mixes both is pushed at the medium limit.  Then the
 * arrays that hold the batches, which a registered thread takes from a
 * shared free list: 40 threads (more than one chunk of buffers) free remote
 * blocks at once and exit, and 40 more reuse their buffers; every block
 * comes back to its owner. */
#include <pthread.h>

#include "remote_test.h"

enum { NPOOL = 1280, NMEDIUM = 320, MEDIUM = 4096, THREADS = 40, PER = 300 };
static void *pool_blocks[NPOOL], *medium_blocks[NMEDIUM];
static pthread_barrier_t bar;

static void *owner(void *arg) {
  (void)arg;
  for (int i = 0; i < NPOOL; i++) pool_blocks[i] = pm_malloc(64);
  for (int i = 0; i < NMEDIUM; i++) medium_blocks[i] = pm_malloc(MEDIUM);
  pthread_barrier_wait(&bar);   /* allocated */
  pthread_barrier_wait(&bar);   /* freed by main */
  pm_collect(0);
  return NULL;
}

static unsigned long long pushes_now(void) {
  pm_counters c;
  pm_counters_get(&c);
  return c.remote_pushes;
}

static void *freer(void *arg) {
  void **blocks = arg;
  for (int i = 0; i < PER; i++) pm_free(blocks[i]);
  return NULL;   /* its exit pushes the partial batch and gives the buffer back */
}

static void round_of_freers(void) {
  static void *blocks[THREADS][PER];
  for (int t = 0; t < THREADS; t++)
    for (int i = 0; i < PER; i++) {
      blocks[t][i] = pm_malloc(16 + (size_t)(i % 40) * 16);
      CHECK(blocks[t][i] != NULL);
      memset(blocks[t][i], t, 16);
    }
  pthread_t th[THREADS];
  for (int t = 0; t < THREADS; t++) CHECK(pthread_create(&th[t], NULL, freer, blocks[t]) == 0);
  for (int t = 0; t < THREADS; t++) pthread_join(th[t], NULL);
}

int main(void) {
  pthread_barrier_init(&bar, NULL, 2);
  pthread_t a;
  pthread_create(&a, NULL, owner, NULL);
  pthread_barrier_wait(&bar);

  unsigned long long p0 = pushes_now();
  for (int i = 0; i < NPOOL; i++) pm_free(pool_blocks[i]);
  unsigned long long pool_pushes = pushes_now() - p0;
  fprintf(stderr, "%d pool blocks: %llu pushes before the flush\n", NPOOL, pool_pushes);
  CHECKF(pool_pushes == NPOOL / 128 - 1 || pool_pushes == NPOOL / 128, "%llu pushes", pool_pushes);

  pm_collect(0);   /* pushes the partial batch: the next slot starts empty */
  p0 = pushes_now();
  for (int i = 0; i < NMEDIUM; i++) pm_free(medium_blocks[i]);
  unsigned long long medium_pushes = pushes_now() - p0;
  fprintf(stderr, "%d medium blocks: %llu pushes before the flush\n", NMEDIUM, medium_pushes);
  CHECKF(medium_pushes >= NMEDIUM / 32 - 1 && medium_pushes <= NMEDIUM / 32, "%llu pushes", medium_pushes);
  pm_collect(0);
  pthread_barrier_wait(&bar);
  pthread_join(a, NULL);

  /* main owns these; the freers' frees are remote */
  round_of_freers();
  round_of_freers();
  pm_collect(0);
  CHECKF(pmr_in_use() <= 8, "%llu blocks in use", pmr_in_use());   /* the C library's own */
  return pmt_done("batch_bounds");
}
