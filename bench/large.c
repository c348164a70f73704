/*
 * large.c: large blocks, every page touched (after mimalloc-bench's
 * malloc-large, at the sizes between the medium classes and the mappings
 * a program keeps for long).
 *
 *   bench_large [SLOTS] [ITERATIONS] [MIN_KB] [MAX_KB]
 *               defaults 20   5000        256      4096
 *
 * SLOTS blocks live at a time; each iteration frees a random one and puts a
 * block of a random size in MIN_KB .. MAX_KB KiB in its place, writing a
 * byte in every 4 KiB page of it (the page faults a real buffer takes).
 * Prints one BENCH line: ops = iterations, wall time, peak/final RSS.
 */
#include <stdio.h>
#include <stdlib.h>

#include "bench_util.h"

int main(int argc, char **argv) {
  long slots = bench_arg(argc, argv, 1, 20);
  long iterations = bench_arg(argc, argv, 2, 5000);
  size_t lo = (size_t)bench_arg(argc, argv, 3, 256) << 10, hi = (size_t)bench_arg(argc, argv, 4, 4096) << 10;
  if (hi < lo) hi = lo;
  unsigned char **slot = calloc((size_t)slots, sizeof *slot);
  if (slot == NULL) return 1;
  bench_rng r;
  bench_rng_seed(&r, 42);
  double t0 = bench_now();
  for (long i = 0; i < iterations; i++) {
    size_t k = bench_rng_range(&r, 0, (size_t)slots - 1), n = bench_rng_range(&r, lo, hi);
    free(slot[k]);
    unsigned char *p = malloc(n);
    if (p == NULL) return 1;
    for (size_t off = 0; off < n; off += 4096) p[off] = (unsigned char)i;
    p[n - 1] = (unsigned char)i;
    slot[k] = p;
  }
  double t1 = bench_now();
  bench_report_begin("large", (double)iterations, t1 - t0);
  printf(" slots=%ld", slots);
  bench_report_end();
  for (long k = 0; k < slots; k++) free(slot[k]);
  free(slot);
  return 0;
}
