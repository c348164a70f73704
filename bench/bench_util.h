/*
 * bench_util.h: small helpers shared by the benchmark programs in bench/.
 *
 * Every benchmark program calls the C allocator through its ordinary names
 * (malloc, free, ...) and links no allocator of its own: the harness
 * (scripts/bench, bench/run.py) preloads each allocator in turn with
 * LD_PRELOAD, so all of them run the same machine code.
 *
 * Randomness is deterministic (a fixed-seed xorshift), so two runs of a
 * program ask for the same sequence of sizes whatever the allocator.
 */
#ifndef POOLMALLOC_BENCH_UTIL_H
#define POOLMALLOC_BENCH_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

/* xorshift64*: fast, good enough for picking sizes and victims. */
typedef struct { uint64_t s; } bench_rng;

static inline void bench_rng_seed(bench_rng *r, uint64_t seed) {
  r->s = seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
  if (r->s == 0) r->s = 1;
}

static inline uint64_t bench_rng_next(bench_rng *r) {
  uint64_t x = r->s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  r->s = x;
  return x * 0x2545F4914F6CDD1Dull;
}

/* Uniform in [lo, hi]. */
static inline size_t bench_rng_range(bench_rng *r, size_t lo, size_t hi) {
  return lo + (size_t)((bench_rng_next(r) >> 11) % (uint64_t)(hi - lo + 1));
}

static inline double bench_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Touch a block so that the allocator cannot hand out memory nobody uses
 * (and so that page faults are counted where a real program would take them). */
static inline void bench_touch(void *p, size_t n) {
  if (p && n) {
    ((volatile unsigned char *)p)[0] = (unsigned char)n;
    ((volatile unsigned char *)p)[n - 1] = (unsigned char)n;
  }
}

/* A line of /proc/self/status in kB ("VmHWM", "VmRSS"), or -1. */
static inline long bench_status_kb(const char *key) {
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  long kb = -1;
  size_t n = strlen(key);
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, key, n) == 0 && line[n] == ':') {
      kb = strtol(line + n + 1, NULL, 10);
      break;
    }
  }
  fclose(f);
  return kb;
}

/* Every program ends with one machine-readable line the harness parses:
 *   BENCH name=<name> ops=<count> seconds=<wall> [key=value ...]
 * followed by its own extras (printed by the caller before the newline). */
static inline void bench_report_begin(const char *name, double ops, double seconds) {
  printf("BENCH name=%s ops=%.0f seconds=%.6f ops_per_s=%.1f", name, ops, seconds,
         seconds > 0 ? ops / seconds : 0.0);
}

static inline void bench_report_end(void) {
  printf(" vmhwm_kb=%ld vmrss_kb=%ld\n", bench_status_kb("VmHWM"), bench_status_kb("VmRSS"));
  fflush(stdout);
}

/* Parse a positive integer argument with a default. */
static inline long bench_arg(int argc, char **argv, int i, long dflt) {
  if (argc > i) {
    long v = strtol(argv[i], NULL, 10);
    if (v > 0) return v;
  }
  return dflt;
}

#ifdef __cplusplus
}
#endif

#endif /* POOLMALLOC_BENCH_UTIL_H */
