/*
 * ops.c: the single-thread microbenchmarks as plain loops with a fixed count,
 * for counting instructions under callgrind (valgrind --tool=callgrind).
 *
 *   bench_ops [N] [NAME-SUBSTRING]
 *
 * Each scenario first runs N operations to warm the allocator up (arenas
 * mapped, free lists filled), then zeroes callgrind's counters, runs N
 * operations again and asks callgrind to dump its counters under the
 * scenario's name.  bench/run.py divides each dump's instruction total by N:
 * instructions per operation, loop overhead included (the same few
 * instructions for every allocator).  Outside valgrind the client requests
 * are no-ops and the program prints nanoseconds per operation instead.
 *
 * One operation is what one item is in micro.cc: a malloc+free pair, one block
 * of a batch (allocated and later freed), one realloc call.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"

#if defined(__has_include)
#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#define BENCH_HAVE_CALLGRIND 1
#endif
#endif
#ifndef BENCH_HAVE_CALLGRIND
#define CALLGRIND_ZERO_STATS
#define CALLGRIND_DUMP_STATS_AT(name) ((void)(name))
#endif

#define TABLE (1u << 14)
static unsigned sizes512[TABLE], sizes1000[TABLE], sizes16k[TABLE], sizes64k[TABLE], sizes4096[TABLE];
static void *volatile sink;

typedef long scenario_fn(long n, long arg);   /* returns the operations done */

static long pair(long n, long size) {
  for (long i = 0; i < n; i++) {
    void *p = malloc((size_t)size);
    sink = p;
    free(p);
  }
  return n;
}

static long pair_random(long n, long max) {
  const unsigned *t = max <= 512 ? sizes512 : max <= 1000 ? sizes1000 : sizes16k;
  for (long i = 0; i < n; i++) {
    void *p = malloc(t[i & (TABLE - 1)]);
    sink = p;
    free(p);
  }
  return n;
}

enum { FIFO, LIFO, RANDOM };
#define BATCH 1000
static unsigned perm[BATCH];

static long batch(long n, long order) {
  void *v[BATCH];
  unsigned k = 0;
  for (long done = 0; done < n; done += BATCH) {
    for (int i = 0; i < BATCH; i++) v[i] = malloc(sizes512[k++ & (TABLE - 1)]);
    sink = v[0];
    if (order == FIFO)
      for (int i = 0; i < BATCH; i++) free(v[i]);
    else if (order == LIFO)
      for (int i = BATCH; i-- > 0;) free(v[i]);
    else
      for (int i = 0; i < BATCH; i++) free(v[perm[i]]);
  }
  return n;
}

/* 100,000 live blocks of 8..512 B (about 26 MB), freed in random order, as
 * micro.cc's BM_batch<kRandom>/100000: every pool empties and goes back to
 * its arena, every arena to the reserve, and the next batch takes and sets
 * them up again, mostly for other classes (the sizes go on where the last
 * batch stopped), so that a pool's whole cycle is in the count.  At least
 * one batch whatever n is; the operations done are returned. */
#define BIG_BATCH 100000
static void *big[BIG_BATCH];
static unsigned perm_big[BIG_BATCH];

static long batch_big(long n, long arg) {
  (void)arg;
  unsigned k = 0;
  long done = 0;
  do {
    for (int i = 0; i < BIG_BATCH; i++) big[i] = malloc(sizes512[k++ & (TABLE - 1)]);
    sink = big[0];
    for (int i = 0; i < BIG_BATCH; i++) free(big[perm_big[i]]);
    done += BIG_BATCH;
  } while (done < n);
  return done;
}

/* 1000 live blocks of 513 B .. 64 KiB, freed in random order */
static long batch_medium(long n, long max) {
  void *v[BATCH];
  unsigned k = 0;
  for (long done = 0; done < n; done += BATCH) {
    for (int i = 0; i < BATCH; i++) v[i] = malloc(sizes64k[k++ & (TABLE - 1)]);
    sink = v[0];
    for (int i = 0; i < BATCH; i++) free(v[perm[i]]);
  }
  return n;
}

static long calloc_pair(long n, long size) {
  for (long i = 0; i < n; i++) {
    void *p = calloc(1, (size_t)size);
    sink = p;
    free(p);
  }
  return n;
  return n;
}

static long realloc_step(long n, long max) {
  long calls = 0;
  while (calls < n) {
    char *p = malloc(16);
    for (long s = 32; s <= max && calls < n; s += 16, calls++) {
      p = realloc(p, (size_t)s);
      p[s - 1] = 1;
    }
    free(p);
  }
  return n;
}

/* one buffer grown by realloc in 64-byte steps to max */
static long realloc_step64(long n, long max) {
  long calls = 0;
  while (calls < n) {
    char *p = malloc(64);
    for (long s = 128; s <= max && calls < n; s += 64, calls++) {
      p = realloc(p, (size_t)s);
      p[s - 1] = 1;
    }
    free(p);
  }
  return n;
}

static long realloc_double(long n, long max) {
  long calls = 0;
  while (calls < n) {
    char *p = malloc(16);
    for (long s = 32; s <= max && calls < n; s *= 2, calls++) {
      p = realloc(p, (size_t)s);
      p[s - 1] = 1;
    }
    free(p);
  }
  return n;
  return n;
}

static long aligned(long n, long align) {
  for (long i = 0; i < n; i++) {
    void *p = aligned_alloc((size_t)align, 64);
    sink = p;
    free(p);
  }
  return n;
}

/* Binary trees of 48-byte nodes, built depth first and dropped children
 * first, as a program's short-lived object graphs are.  One operation is one
 * node, allocated and freed; the walks are part of the loop. */
typedef struct tree_node {
  struct tree_node *left, *right;
  long key, pad[3];
} tree_node;
_Static_assert(sizeof(tree_node) == 48, "48-byte nodes");

static tree_node *tree_build(int depth, long key) {
  tree_node *t = malloc(sizeof *t);
  t->key = key;
  t->left = depth > 0 ? tree_build(depth - 1, 2 * key) : NULL;
  t->right = depth > 0 ? tree_build(depth - 1, 2 * key + 1) : NULL;
  return t;
}

static void tree_drop(tree_node *t) {
  if (t == NULL) return;
  tree_drop(t->left);
  tree_drop(t->right);
  free(t);
}

static long tree(long n, long depth) {
  long nodes = (2L << depth) - 1, done;
  for (done = 0; done < n; done += nodes) {
    tree_node *t = tree_build((int)depth, 1);
    sink = t;
    tree_drop(t);
  }
  return done;
}

/* aligned_alloc(align, 64 .. align) then free */
static long aligned_range(long n, long align) {
  for (long i = 0; i < n; i++) {
    void *p = aligned_alloc((size_t)align, sizes4096[i & (TABLE - 1)] % (size_t)align + 1);
    sink = p;
    free(p);
  }
  return n;
}

/* Names match micro.cc's benchmark names (single-thread instances); the
 * medium ones (513 B and up) have no micro.cc twin. */
static const struct {
  const char *name;
  scenario_fn *fn;
  long arg;
  long scale; /* divides N for the slow scenarios */
} scenarios[] = {
    {"BM_pair/16", pair, 16, 1},
    {"BM_pair/64", pair, 64, 1},
    {"BM_pair/128", pair, 128, 1},
    {"BM_pair/256", pair, 256, 1},
    {"BM_pair/512", pair, 512, 1},
    {"BM_pair_random/512", pair_random, 512, 1},
    {"BM_pair_random/1000", pair_random, 1000, 1},
    {"BM_pair_random_medium/16384", pair_random, 16384, 1},
    {"BM_batch_medium<kRandom>/65536", batch_medium, 65536, 1},
    {"BM_batch<kFifo>/1000", batch, FIFO, 1},
    {"BM_batch<kLifo>/1000", batch, LIFO, 1},
    {"BM_batch<kRandom>/1000", batch, RANDOM, 1},
    {"BM_calloc/64", calloc_pair, 64, 1},
    {"BM_calloc/512", calloc_pair, 512, 1},
    {"BM_calloc/4096", calloc_pair, 4096, 1},
    {"BM_realloc_step/1024", realloc_step, 1024, 1},
    {"BM_realloc_step64/65536", realloc_step64, 65536, 1},
    {"BM_realloc_double/65536", realloc_double, 65536, 4},
    {"BM_aligned/16", aligned, 16, 1},
    {"BM_aligned/64", aligned, 64, 1},
    {"BM_aligned/4096", aligned, 4096, 1},
    {"BM_tree/10", tree, 10, 1},
    {"BM_aligned_range/4096", aligned_range, 4096, 1},
    /* last: 26 MB freed in random order leave a heap that changes what the
     * C library's realloc and aligned_alloc cost in the rows after it */
    {"BM_batch<kRandom>/100000", batch_big, 0, 1},
};

/* p[0 .. n) a random permutation of 0 .. n - 1 (Fisher-Yates, from seed) */
static void permutation(unsigned *p, unsigned n, uint64_t seed) {
  bench_rng r;
  bench_rng_seed(&r, seed);
  for (unsigned i = 0; i < n; i++) p[i] = i;
  for (unsigned i = n - 1; i > 0; i--) {
    unsigned j = (unsigned)bench_rng_range(&r, 0, i), t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
}

int main(int argc, char **argv) {
  long n = bench_arg(argc, argv, 1, 100000);
  const char *filter = argc > 2 ? argv[2] : "";
  bench_rng r;
  bench_rng_seed(&r, 1);
  for (unsigned i = 0; i < TABLE; i++) sizes512[i] = (unsigned)bench_rng_range(&r, 8, 512);
  bench_rng_seed(&r, 2);
  for (unsigned i = 0; i < TABLE; i++) sizes1000[i] = (unsigned)bench_rng_range(&r, 8, 1000);
  bench_rng_seed(&r, 3);
  for (unsigned i = 0; i < TABLE; i++) sizes16k[i] = (unsigned)bench_rng_range(&r, 513, 16384);
  bench_rng_seed(&r, 4);
  for (unsigned i = 0; i < TABLE; i++) sizes64k[i] = (unsigned)bench_rng_range(&r, 513, 65536);
  bench_rng_seed(&r, 5);
  for (unsigned i = 0; i < TABLE; i++) sizes4096[i] = (unsigned)bench_rng_range(&r, 63, 4095);
  permutation(perm, BATCH, 42);
  permutation(perm_big, BIG_BATCH, 43);

  for (size_t s = 0; s < sizeof scenarios / sizeof scenarios[0]; s++) {
    if (!strstr(scenarios[s].name, filter)) continue;
    long count = n / scenarios[s].scale;
    count -= count % BATCH; /* whole batches */
    if (count < BATCH) count = BATCH;
    scenarios[s].fn(count, scenarios[s].arg); /* warm-up */
    double t0 = bench_now();
    CALLGRIND_ZERO_STATS;
    count = scenarios[s].fn(count, scenarios[s].arg);
    CALLGRIND_DUMP_STATS_AT(scenarios[s].name);
    double t1 = bench_now();
    printf("OPS name=%s ops=%ld ns_per_op=%.2f\n", scenarios[s].name, count, (t1 - t0) * 1e9 / (double)count);
  }
  return 0;
}
