/* Benchmark of the object layer's collector, the C half of bench/gc/run.sh.
 *
 *   bench_gc SHAPE N     SHAPE: cycles | ring | random
 *
 * Builds N objects of two references each -- 2-cycles (a and b refer to each
 * other twice), a doubly linked ring (next, prev), or a random graph of
 * out-degree 2 -- held from outside by a plain array, with the collector
 * enabled at its default thresholds (as a Python program would run).  Then
 * times pm_gc_collect(2) with everything alive (best of 3), drops the outside
 * references (acyclic garbage dies by count here, timed apart), and times
 * pm_gc_collect(2) again.  Prints one line of key=value pairs; bench_gc.py
 * prints the same for CPython. */
#include "poolgc.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct obj { void *a, *b; } obj;

static int obj_traverse(void *self, pm_visit_fn visit, void *arg) {
  obj *o = self;
  PM_VISIT(o->a);
  PM_VISIT(o->b);
  return 0;
}
static void obj_clear(void *self) {
  obj *o = self;
  PM_CLEAR(o->a);
  PM_CLEAR(o->b);
}
static const pm_type obj_type = { "obj", sizeof(obj), obj_traverse, obj_clear, NULL };

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static long rss_bytes(void) {
  long pages = 0, res = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (!f || fscanf(f, "%ld %ld", &pages, &res) != 2) res = 0;
  if (f) fclose(f);
  return res * sysconf(_SC_PAGESIZE);
}

static uint64_t rng = 88172645463325252ull;
static uint64_t xorshift(void) { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return rng; }

static void set(void **field, void *target) { pm_incref(target); *field = target; }

int main(int argc, char **argv) {
  if (argc != 3) { fprintf(stderr, "usage: bench_gc cycles|ring|random N\n"); return 2; }
  const char *shape = argv[1];
  long n = atol(argv[2]);
  obj **hold = malloc((size_t)n * sizeof *hold);
  if (!hold) return 1;
  memset(hold, 0xff, (size_t)n * sizeof *hold);    /* touch it before the RSS baseline (a zero fill may become calloc) */
  pm_gc_collect(2);
  long rss0 = rss_bytes();

  double t0 = now();
  for (long i = 0; i < n; i++) hold[i] = pm_new(&obj_type);
  if (strcmp(shape, "cycles") == 0) {
    for (long i = 0; i + 1 < n; i += 2) {
      set(&hold[i]->a, hold[i + 1]); set(&hold[i]->b, hold[i + 1]);
      set(&hold[i + 1]->a, hold[i]); set(&hold[i + 1]->b, hold[i]);
    }
  } else if (strcmp(shape, "ring") == 0) {
    for (long i = 0; i < n; i++) {
      set(&hold[i]->a, hold[(i + 1) % n]);
      set(&hold[i]->b, hold[(i + n - 1) % n]);
    }
  } else if (strcmp(shape, "random") == 0) {
    for (long i = 0; i < n; i++) {
      set(&hold[i]->a, hold[xorshift() % (uint64_t)n]);
      set(&hold[i]->b, hold[xorshift() % (uint64_t)n]);
    }
  } else {
    fprintf(stderr, "unknown shape %s\n", shape);
    return 2;
  }
  double t_build = now() - t0;
  long rss1 = rss_bytes();

  double best = 1e300;
  long found_alive = 0;
  for (int r = 0; r < 3; r++) {
    t0 = now();
    found_alive += pm_gc_collect(2);
    double dt = now() - t0;
    if (dt < best) best = dt;
  }

  t0 = now();
  for (long i = 0; i < n; i++) pm_decref(hold[i]);
  double t_drop = now() - t0;
  t0 = now();
  long found = pm_gc_collect(2);
  double t_dead = now() - t0;
  long left = (long)pm_gc_get_objects(-1, NULL, NULL);

  printf("impl=poolgc shape=%s n=%ld build_ns=%.1f alive_ns=%.1f drop_ns=%.1f dead_ns=%.1f "
         "bytes=%.1f found_alive=%ld found_dead=%ld left=%ld\n",
         shape, n, t_build / n, best / n, t_drop / n, t_dead / n,
         (double)(rss1 - rss0) / n, found_alive, found, left);
  free(hold);
  return 0;
}
