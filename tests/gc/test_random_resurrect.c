/* Property test with user code inside collections: random graphs where a
 * third of the objects have a finalizer that resurrects them (the test takes
 * a reference), and every object has a weakref whose callback drops one of
 * the test's references to another object.  After collecting until nothing
 * more is found, checked against an independent mark over a copy of the
 * edges:
 *   - an object reachable from the test's references is alive and intact;
 *   - an unreachable one is dead (its clear ran) -- a resurrected object is
 *     one of the test's references, so it counts as reachable;
 *   - every finalizer ran at most once, every weakref callback at most once,
 *     and every dead object's callback exactly once (unless its weakref was
 *     garbage or released first, which this test never does);
 *   - a weakref answers NULL for a dead object, and its referent for a live
 *     one whose callback has not run (3.12 clears the weakrefs of garbage
 *     before finalizers run, so a resurrected object may have lost them). */
#include "gc_test.h"

#include <stdint.h>

enum { MAXN = 12000 };
static node *obj[MAXN];
static int  edge[MAXN][NODE_REFS];
static char dead[MAXN], root[MAXN], reach[MAXN], resurrector[MAXN];
static int  nfinal[MAXN], wcalls[MAXN];
static void *weak[MAXN];
static int  n;
static long callbacks_in_last;

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static uint32_t rnd(uint32_t k) {
  rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
  return (uint32_t)(rng % k);
}

static void rz_clear(void *self) {
  node *o = self;
  dead[o->id] = 1;
  node_clear(self);
}
static void rz_finalize(void *self) {
  node *o = self;
  CHECK(!dead[o->id]);
  nfinal[o->id]++;
  if (resurrector[o->id] && !root[o->id]) {
    pm_incref(o);                       /* the test holds it again */
    root[o->id] = 1;
  }
}
static const pm_type rz_type = { "rz", sizeof(node), node_traverse, rz_clear, rz_finalize };

static void weak_cb(void *w, void *arg) {
  long i = (long)arg;
  CHECK(pm_weakref_get(w) == NULL);
  wcalls[i]++;
  callbacks_in_last++;
  int k = (int)((i * 7919) % n);         /* drop the test's reference to another object */
  if (root[k] && !dead[k]) { root[k] = 0; pm_decref(obj[k]); }
}

static void mark_model(void) {
  static int stack[MAXN];
  gc_test_mark(n, root, (const int (*)[NODE_REFS])edge, reach, stack);
}

static void collect_all(void) {
  for (int r = 0; r < 100; r++) {
    callbacks_in_last = 0;
    long found = pm_gc_collect(2);
    if (found == 0 && callbacks_in_last == 0) return;
  }
  CHECK(!"collections never settled");
}

static void check(void) {
  mark_model();
  for (int i = 0; i < n; i++) {
    if (reach[i] && dead[i]) { fprintf(stderr, "reachable %d died\n", i); exit(1); }
    if (!reach[i] && !dead[i]) { fprintf(stderr, "unreachable %d survived\n", i); exit(1); }
    CHECK(nfinal[i] <= 1 && wcalls[i] <= 1);
    if (dead[i]) CHECK(wcalls[i] == 1 && nfinal[i] == 1);
    void *g = pm_weakref_get(weak[i]);
    if (dead[i] || wcalls[i]) CHECK(g == NULL);
    else CHECK(g == obj[i]);
    pm_xdecref(g);
    if (reach[i])                        /* intact */
      for (int k = 0; k < NODE_REFS; k++)
        CHECK(obj[i]->ref[k] == (edge[i][k] >= 0 ? obj[edge[i][k]] : NULL));
  }
}

static void round_(int size) {
  int base = n;
  for (int i = 0; i < size; i++) {
    node *o = pm_new(&rz_type);
    CHECK(o);
    o->id = base + i;
    obj[base + i] = o;
    root[base + i] = 1;
    resurrector[base + i] = rnd(3) == 0;
    for (int k = 0; k < NODE_REFS; k++) edge[base + i][k] = -1;
    weak[base + i] = pm_weakref_new(o, weak_cb, (void *)(long)(base + i));
    CHECK(weak[base + i]);
  }
  n += size;
  mark_model();
  for (int i = base; i < n; i++) {
    int deg = (int)rnd(3);
    for (int k = 0; k < deg; k++) {
      int j = rnd(3) ? base + (int)rnd((uint32_t)size) : (int)rnd((uint32_t)n);
      if (!reach[j]) continue;           /* only edges to live objects */
      node_set(obj[i], k, obj[j]);
      edge[i][k] = j;
    }
  }
  /* drop most of the test's references; counting frees the acyclic part */
  for (int i = 0; i < n; i++)
    if (root[i] && rnd(5) != 0) { root[i] = 0; pm_decref(obj[i]); }
  collect_all();
  check();
}

int main(void) {
  const char *seed = getenv("PM_TEST_SEED");   /* another graph: PM_TEST_SEED=n */
  if (seed) rng ^= strtoull(seed, NULL, 0) * 0x9E3779B97F4A7C15ull + 1;
  pm_gc_set_threshold(40, 3, 3);
  int rounds = 0;
  while (n < MAXN - 400 && rounds < 40) { round_(100 + (int)rnd(250)); rounds++; }
  /* Resurrectors finalized now take a reference again: repeat until none. */
  for (int any = 1; any;) {
    any = 0;
    for (int i = 0; i < n; i++)
      if (root[i]) { any = 1; root[i] = 0; pm_decref(obj[i]); }
    collect_all();
    check();
  }
  long nres = 0;
  for (int i = 0; i < n; i++) { CHECK(dead[i]); nres += resurrector[i]; pm_decref(weak[i]); }
  CHECK(pm_gc_get_objects(-1, NULL, NULL) == 0);
  printf("ok: %d objects in %d rounds, %ld could resurrect\n", n, rounds, nres);
  return 0;
}
