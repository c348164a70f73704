/* Automatic collections: pm_gc_get_count behaves as gc.get_count(), the
 * thresholds trigger generation-0 collections (and generation 1, 2 in
 * turn), disable and a zero threshold stop them, and none runs inside a
 * callback of the layer. */
#include "gc_test.h"

static int g_gens[64];
static int g_ncoll;
static void gc_cb(const char *phase, int gen, long collected, long uncollectable, void *arg) {
  (void)collected; (void)uncollectable; (void)arg;
  if (strcmp(phase, "start") == 0 && g_ncoll < 64) g_gens[g_ncoll++] = gen;
}

static void expect_count(long c0, long c1, long c2) {
  long c[3];
  pm_gc_get_count(c);
  if (c[0] != c0 || c[1] != c1 || c[2] != c2) {
    fprintf(stderr, "count (%ld, %ld, %ld), expected (%ld, %ld, %ld)\n", c[0], c[1], c[2], c0, c1, c2);
    exit(1);
  }
}

static node *keep[4096];
static int nkeep;

static void alloc_n(int n) {
  for (int i = 0; i < n; i++) { keep[nkeep] = node_new(&node_type, "k"); nkeep++; }
}

static void test_counts(void) {
  long t[3];
  pm_gc_get_threshold(t);
  CHECK(t[0] == 700 && t[1] == 10 && t[2] == 10);   /* CPython 3.12's defaults */
  pm_gc_collect(2);
  expect_count(0, 0, 0);
  alloc_n(5);
  expect_count(5, 0, 0);
  pm_decref(keep[--nkeep]);
  pm_decref(keep[--nkeep]);
  expect_count(3, 0, 0);                /* allocations minus deallocations */
  void *leaf = pm_new(&leaf_type);      /* untracked types are not counted */
  expect_count(3, 0, 0);
  pm_decref(leaf);
  pm_gc_collect(0);
  expect_count(0, 1, 0);
  pm_gc_collect(0);
  expect_count(0, 2, 0);
  pm_gc_collect(1);
  expect_count(0, 0, 1);
  pm_gc_collect(2);
  expect_count(0, 0, 0);
}

/* Allocates 11 tracked objects per trigger (threshold 10) and checks which
 * generation each automatic collection chose, as gc_collect_generations. */
static void run_triggers(int n, const int *expected) {
  g_ncoll = 0;
  for (int i = 0; i < n; i++) {
    alloc_n(10);
    CHECK(g_ncoll == i);
    alloc_n(1);                         /* count 11 > 10: a collection */
    CHECK(g_ncoll == i + 1);
    if (g_gens[i] != expected[i]) {
      fprintf(stderr, "trigger %d collected generation %d, expected %d\n", i, g_gens[i], expected[i]);
      exit(1);
    }
  }
}

static void test_automatic(void) {
  pm_gc_set_threshold(10, 2, 1);
  long t[3];
  pm_gc_get_threshold(t);
  CHECK(t[0] == 10 && t[1] == 2 && t[2] == 1);
  while (nkeep) pm_decref(keep[--nkeep]);
  pm_gc_collect(2);                     /* nothing long-lived */
  alloc_n(10);
  expect_count(10, 0, 0);
  alloc_n(1);
  expect_count(0, 1, 0);
  while (nkeep) pm_decref(keep[--nkeep]);
  pm_gc_collect(2);
  /* gen 1 runs when its count passes 2, gen 2 when its count passes 1 */
  static const int seq[9] = { 0, 0, 0, 1, 0, 0, 0, 1, 2 };
  run_triggers(9, seq);
  expect_count(0, 0, 0);
  while (nkeep) pm_decref(keep[--nkeep]);
  pm_gc_collect(2);
}

/* A full collection also waits until the objects that survived generation
 * 1 since the last full one exceed a quarter of the long-lived ones. */
static void test_long_lived_rule(void) {
  pm_gc_disable();
  alloc_n(1000);
  pm_gc_enable();
  pm_gc_collect(2);                     /* 1000 long-lived */
  static const int seq[9] = { 0, 0, 0, 1, 0, 0, 0, 1, 0 };
  run_triggers(9, seq);                 /* about 88 pending < 250: gen 2 skipped */
  expect_count(0, 1, 2);
  while (nkeep) pm_decref(keep[--nkeep]);
  pm_gc_collect(2);
}

static void test_disable(void) {
  pm_gc_set_threshold(10, 10, 10);
  pm_gc_collect(2);
  pm_gc_disable();
  CHECK(!pm_gc_isenabled());
  g_ncoll = 0;
  alloc_n(100);
  CHECK(g_ncoll == 0);
  expect_count(100, 0, 0);
  pm_gc_enable();
  CHECK(pm_gc_isenabled());
  alloc_n(1);
  CHECK(g_ncoll == 1);
  pm_gc_set_threshold(0, 10, 10);       /* threshold 0 disables as well */
  g_ncoll = 0;
  alloc_n(100);
  CHECK(g_ncoll == 0);
  while (nkeep) pm_decref(keep[--nkeep]);
  pm_gc_collect(2);
}

/* A finalizer that allocates many objects: no automatic collection starts
 * while it runs (death by count) or while a collection runs. */
static void finalize_allocating(void *self) {
  (void)self;
  int before = g_ncoll;
  alloc_n(50);
  CHECK(g_ncoll == before);
}
static const pm_type alloc_type = { "alloc", sizeof(node), node_traverse, node_clear, finalize_allocating };

static void test_not_in_callbacks(void) {
  pm_gc_set_threshold(10, 10, 10);
  pm_gc_collect(2);
  g_ncoll = 0;
  node *a = node_new(&alloc_type, "a");
  pm_decref(a);                         /* finalizer runs from the decref */
  CHECK(g_ncoll == 0);
  node *x = node_new(&alloc_type, "x"), *y = node_new(&alloc_type, "y");
  node_set(x, 0, y); node_set(y, 0, x);
  pm_decref(x); pm_decref(y);
  g_ncoll = 0;
  pm_gc_collect(2);                     /* finalizers allocate 100 during it */
  CHECK(g_ncoll == 1);
  alloc_n(1);                           /* outside: the pending count triggers now */
  CHECK(g_ncoll == 2);
  while (nkeep) pm_decref(keep[--nkeep]);
  pm_gc_collect(2);
  pm_gc_set_threshold(700, 10, 10);
}

int main(void) {
  CHECK(pm_gc_add_callback(gc_cb, NULL) == 0);
  CHECK(pm_gc_isenabled());
  test_counts();
  test_automatic();
  test_long_lived_rule();
  test_disable();
  test_not_in_callbacks();
  printf("ok\n");
  return 0;
}
