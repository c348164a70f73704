/*
 * frag.c: a long-running fragmentation workload.
 *
 *   bench_frag [LIVE] [ROUNDS]     defaults 300000 blocks, 8 rounds
 *
 * Keeps LIVE blocks alive; each round frees about 90% of them, chosen at
 * random, and allocates the freed slots again with sizes from a different
 * band than the last round (small strings, then mid-size records, then
 * larger buffers up to 2 KiB), so memory freed in one size class has to be
 * reused for another.  A last round frees 90% and allocates nothing: what the
 * process still holds then, against the bytes the program still uses, is the
 * allocator's fragmentation.  The survivors stay allocated until exit, so a
 * report written at exit (POOLMALLOC_STATS=json) describes that state.
 *
 * Prints one BENCH line with ops (allocations + frees), wall time, the peak
 * RSS (VmHWM), the final RSS (VmRSS), start_kb (the RSS before the first
 * allocation: the program and its libraries) and live_kb, the bytes requested
 * by the surviving blocks and the two bookkeeping arrays.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"

static size_t band_size(bench_rng *r, int band) {
  switch (band % 3) {
    case 0: return bench_rng_range(r, 8, 64);      /* strings, small objects */
    case 1: return bench_rng_range(r, 64, 512);    /* records */
    default: /* mostly small, some buffers up to 2 KiB (the large path) */
      return (bench_rng_next(r) & 7) ? bench_rng_range(r, 16, 256) : bench_rng_range(r, 512, 2048);
  }
}

int main(int argc, char **argv) {
  size_t live = (size_t)bench_arg(argc, argv, 1, 300000);
  int rounds = (int)bench_arg(argc, argv, 2, 8);
  long start_kb = bench_status_kb("VmRSS");
  bench_rng r;
  bench_rng_seed(&r, 11);
  void **v = calloc(live, sizeof *v);
  size_t *sz = calloc(live, sizeof *sz);
  if (!v || !sz) return 1;
  double ops = 0;
  double t0 = bench_now();

  for (size_t i = 0; i < live; i++) {
    sz[i] = band_size(&r, 0);
    v[i] = malloc(sz[i]);
    bench_touch(v[i], sz[i]);
  }
  ops += (double)live;

  for (int round = 1; round <= rounds + 1; round++) {
    for (size_t i = 0; i < live; i++) {
      if (bench_rng_next(&r) % 10 != 0) {
        free(v[i]);
        v[i] = NULL;
        ops++;
      }
    }
    if (round > rounds) break; /* the last round only frees */
    for (size_t i = 0; i < live; i++) {
      if (!v[i]) {
        sz[i] = band_size(&r, round);
        v[i] = malloc(sz[i]);
        bench_touch(v[i], sz[i]);
        ops++;
      }
    }
  }
  double t1 = bench_now();

  size_t live_bytes = live * (sizeof *v + sizeof *sz), live_blocks = 0;
  for (size_t i = 0; i < live; i++)
    if (v[i]) live_bytes += sz[i], live_blocks++;
  bench_report_begin("frag", ops, t1 - t0);
  printf(" live_blocks=%zu live_kb=%zu start_kb=%ld", live_blocks, live_bytes / 1024, start_kb);
  bench_report_end();
  /* the survivors (and v, sz) stay allocated: an exit report sees them */
  return 0;
}
