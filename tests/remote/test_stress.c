/* Remote frees while owners exit and new threads adopt their heaps: rounds
 * of producer threads allocate blocks (random sizes, each filled with a
 * pattern tied to its address) and hand them through a shared ring to
 * consumer threads, which verify every byte and free them; producers exit
 * with blocks still in flight, and the next round's threads adopt their
 * heaps.  Also run under ThreadSanitizer (test_tsan.sh). */
#include <pthread.h>

#include "remote_test.h"

enum { ROUNDS = 6, PAIRS = 2, PER = 20000, RING = 1024 };
typedef struct ring {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  void *slot[RING];
  size_t size[RING];
  unsigned head, tail, producers_done;
} ring;
static ring rings[PAIRS];
static atomic_ulong bad;

static void *produce(void *arg) {
  ring *r = arg;
  pmt_rng g = pmt_rng_seed((uintptr_t)arg);
  for (int i = 0; i < PER; i++) {
    size_t n = pmt_range(&g, 1, 512);
    void *p = pm_malloc(n);
    pmt_fill(p, n, pmt_tag(p, n, 1));
    if (i % 7 == 0) {   /* some local frees too */
      pm_free(p);
      continue;
    }
    pthread_mutex_lock(&r->mu);
    while (r->head - r->tail == RING) pthread_cond_wait(&r->cv, &r->mu);
    r->slot[r->head % RING] = p;
    r->size[r->head % RING] = n;
    r->head++;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
  }
  pthread_mutex_lock(&r->mu);
  r->producers_done++;
  pthread_cond_broadcast(&r->cv);
  pthread_mutex_unlock(&r->mu);
  return NULL;   /* exits with blocks still in the ring */
}

static void *consume(void *arg) {
  ring *r = arg;
  for (;;) {
    pthread_mutex_lock(&r->mu);
    while (r->head == r->tail && r->producers_done < ROUNDS) pthread_cond_wait(&r->cv, &r->mu);
    if (r->head == r->tail) {
      pthread_mutex_unlock(&r->mu);
      return NULL;
    }
    void *p = r->slot[r->tail % RING];
    size_t n = r->size[r->tail % RING];
    r->tail++;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    if (pmt_verify(p, n, pmt_tag(p, n, 1)) != (size_t)-1) atomic_fetch_add(&bad, 1);
    pm_free(p);
  }
}

int main(void) {
  pthread_t cons[PAIRS];
  for (int i = 0; i < PAIRS; i++) {
    pthread_mutex_init(&rings[i].mu, NULL);
    pthread_cond_init(&rings[i].cv, NULL);
    pthread_create(&cons[i], NULL, consume, &rings[i]);
  }
  for (int round = 0; round < ROUNDS; round++) {
    pthread_t prod[PAIRS];
    for (int i = 0; i < PAIRS; i++) pthread_create(&prod[i], NULL, produce, &rings[i]);
    for (int i = 0; i < PAIRS; i++) pthread_join(prod[i], NULL);
    if (round % 2 == 1) pm_collect(1);
  }
  for (int i = 0; i < PAIRS; i++) pthread_join(cons[i], NULL);
  pm_collect(1);
  unsigned long long used = pmr_in_use();
  pm_stats *st = pmr_stats();
  fprintf(stderr, "stress: %lu corrupted blocks, %llu in use at the end, %llu heaps (%llu adopted), %llu arenas\n",
          (unsigned long)atomic_load(&bad), used, st->heaps, st->counters.heaps_adopted, st->arenas.mapped);
  CHECK(atomic_load(&bad) == 0);
  CHECKF(used <= 16, "%llu blocks in use", used);   /* the C library's own, for threads */
  CHECK(st->counters.heaps_adopted > 0);
  CHECK(pm_check() == 0);
  return pmt_done("stress");
}
