/*
 * larson.c: a larson-style server simulation (after Larson and Krishnan,
 * "Memory allocation for long-running server applications", ISMM 1998).
 *
 *   bench_larson [THREADS] [OPS_PER_THREAD] [ROUNDS] [SLOTS]
 *                 defaults  4        200000           5        1000
 *
 * Each thread owns an array of SLOTS blocks; it repeatedly picks a slot at
 * random, frees the block there and allocates a new one of 8..1000 bytes
 * (about half of the requests are above 512 bytes, poolmalloc's large path).
 * At the end of a round the threads exit and a new set of threads starts;
 * thread i of the new round inherits the array of thread i+1 of the old one,
 * so most of its first frees are of blocks another (now dead) thread
 * allocated: cross-thread frees and the reclaiming of abandoned heaps.
 * Prints one BENCH line: ops = malloc+free pairs, wall time, peak/final RSS.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench_util.h"

typedef struct {
  void **slot;
  long ops;
  unsigned seed;
} work;

static long g_slots;

static void *worker(void *arg) {
  work *w = arg;
  bench_rng r;
  bench_rng_seed(&r, w->seed);
  for (long i = 0; i < w->ops; i++) {
    size_t k = (size_t)bench_rng_range(&r, 0, (size_t)g_slots - 1);
    size_t n = bench_rng_range(&r, 8, 1000);
    free(w->slot[k]);
    w->slot[k] = malloc(n);
    bench_touch(w->slot[k], n);
  }
  return NULL;
}

int main(int argc, char **argv) {
  int threads = (int)bench_arg(argc, argv, 1, 4);
  long ops = bench_arg(argc, argv, 2, 200000);
  int rounds = (int)bench_arg(argc, argv, 3, 5);
  g_slots = bench_arg(argc, argv, 4, 1000);
  if (threads > 64) threads = 64;
  work w[64];
  void **arrays[64];
  bench_rng r;
  bench_rng_seed(&r, 3);
  for (int t = 0; t < threads; t++) {
    arrays[t] = calloc((size_t)g_slots, sizeof(void *));
    for (long k = 0; k < g_slots; k++) arrays[t][k] = malloc(bench_rng_range(&r, 8, 1000));
  }
  double t0 = bench_now();
  for (int round = 0; round < rounds; round++) {
    pthread_t tid[64];
    for (int t = 0; t < threads; t++) {
      w[t].slot = arrays[(t + round) % threads]; /* hand the blocks on */
      w[t].ops = ops;
      w[t].seed = (unsigned)(round * 131 + t + 1);
      if (pthread_create(&tid[t], NULL, worker, &w[t]) != 0) return 1;
    }
    for (int t = 0; t < threads; t++) pthread_join(tid[t], NULL);
  }
  double t1 = bench_now();
  bench_report_begin("larson", (double)threads * (double)ops * rounds, t1 - t0);
  printf(" threads=%d", threads);
  bench_report_end();
  for (int t = 0; t < threads; t++) {
    for (long k = 0; k < g_slots; k++) free(arrays[t][k]);
    free(arrays[t]);
  }
  return 0;
}
