/* Property test: random graphs, random outside references, random edits.
 * After every full collection exactly the objects unreachable from the
 * outside references are gone, checked against an independent mark over a
 * plain copy of the edges; after young collections nothing reachable died.
 * Every object also has a weakref the test holds: its callback runs exactly
 * once, when (and only when) the object has died. */
#include "gc_test.h"

#include <stdint.h>

enum { MAXN = 20000 };
static node *obj[MAXN];             /* obj[i]: the object with id i (dangling once dead) */
static int  edge[MAXN][NODE_REFS];  /* the model: id of each reference, or -1 */
static char dead[MAXN];             /* set by the finalizer */
static char root[MAXN];             /* the test holds a reference to it */
static char reach[MAXN];
static void *weak[MAXN];            /* a weakref to each object, held by the test */
static int  wcalls[MAXN];           /* callbacks run for weak[i] */

static void weak_cb(void *w, void *arg) {
  (void)w;
  wcalls[(long)arg]++;
}
static int  n;

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(uint32_t k) {
  rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
  return (uint32_t)(rng % k);
}

/* Two passes over the same test: with a finalizer and a weakref per object
 * (the collector's general path), and plain (no finalizer, no weakref
 * anywhere: its shorter path for all-garbage collections), where clear
 * records the death. */
static int plain;
static void record_death(void *self) { dead[((node *)self)->id] = 1; }
static void clear_recording(void *self) { dead[((node *)self)->id] = 1; node_clear(self); }
static const pm_type rg_type = { "rg", sizeof(node), node_traverse, node_clear, record_death };
static const pm_type plain_type = { "plain", sizeof(node), node_traverse, clear_recording, NULL };

static void mark_model(void) {
  static int stack[MAXN];
  gc_test_mark(n, root, (const int (*)[NODE_REFS])edge, reach, stack);
}

static void check(int full) {
  mark_model();
  for (int i = 0; i < n; i++) {
    if (reach[i] && dead[i]) { fprintf(stderr, "reachable %d died\n", i); exit(1); }
    if (full && !reach[i] && !dead[i]) { fprintf(stderr, "unreachable %d survived\n", i); exit(1); }
    /* the callback ran once when the referent died, and never before */
    if (plain) continue;
    if (wcalls[i] != dead[i]) { fprintf(stderr, "weakref %d: %d callbacks, dead %d\n", i, wcalls[i], dead[i]); exit(1); }
    void *g = pm_weakref_get(weak[i]);
    if ((g == NULL) != dead[i]) { fprintf(stderr, "weakref %d answers wrongly\n", i); exit(1); }
    pm_xdecref(g);
  }
}

/* A reachable id (reach[] must be current), or -1. */
static int pick_live(void) {
  for (int tries = 0; tries < 64; tries++) {
    int i = (int)rnd((uint32_t)n);
    if (reach[i]) return i;
  }
  return -1;
}

static void round_(int size, int degree_max, int roots) {
  int base = n;
  for (int i = 0; i < size; i++) {
    node *o = pm_new(plain ? &plain_type : &rg_type);
    CHECK(o);
    o->id = base + i;
    obj[base + i] = o;
    root[base + i] = 1;                 /* the creation reference */
    for (int k = 0; k < NODE_REFS; k++) edge[base + i][k] = -1;
    if (plain) continue;
    weak[base + i] = pm_weakref_new(o, weak_cb, (void *)(long)(base + i));
    CHECK(weak[base + i]);
  }
  n += size;
  mark_model();
  for (int i = base; i < n; i++) {
    int deg = (int)rnd((uint32_t)degree_max + 1);
    for (int k = 0; k < deg; k++) {
      int j = rnd(2) ? base + (int)rnd((uint32_t)size) : pick_live();
      if (j < 0 || dead[j]) continue;
      node_set(obj[i], k, obj[j]);
      edge[i][k] = j;
    }
  }
  /* drop most creation references: counting frees the acyclic garbage now */
  for (int i = base; i < n; i++) {
    if ((int)rnd((uint32_t)size) < roots) continue;
    root[i] = 0;
    pm_decref(obj[i]);
  }
  check(0);
  int g = (int)rnd(3);
  pm_gc_collect(g);
  check(g == 2);
  /* edit reachable objects, drop some older roots */
  mark_model();
  for (int e = 0; e < size / 4; e++) {
    int i = pick_live(), j = pick_live();
    if (i < 0) break;
    int k = (int)rnd(NODE_REFS);
    int to = rnd(4) == 0 ? -1 : j;
    node_set(obj[i], k, to >= 0 ? obj[to] : NULL);
    edge[i][k] = to;
    check(0);
  }
  for (int i = 0; i < n; i++)
    if (root[i] && rnd(4) == 0) { root[i] = 0; pm_decref(obj[i]); }
  check(0);
  pm_gc_collect(2);
  check(1);
}

int main(void) {
  const char *seed = getenv("PM_TEST_SEED");   /* another graph: PM_TEST_SEED=n */
  if (seed) rng ^= strtoull(seed, NULL, 0) * 0x9E3779B97F4A7C15ull + 1;
  pm_gc_set_threshold(50, 3, 3);        /* automatic collections during the builds, too */
  for (plain = 0; plain < 2; plain++) {
    n = 0;
    memset(dead, 0, sizeof dead); memset(root, 0, sizeof root);
    memset(wcalls, 0, sizeof wcalls); memset(weak, 0, sizeof weak);
    int rounds = 0;
    for (int r = 0; r < 40 && n < MAXN - 600; r++, rounds++)
      round_(100 + (int)rnd(400), 1 + r % 4, 1 + (int)rnd(8));
    for (int i = 0; i < n; i++)
      if (root[i]) { root[i] = 0; pm_decref(obj[i]); }
    CHECK(pm_gc_collect(2) >= 0);
    check(1);
    for (int i = 0; i < n; i++) CHECK(dead[i]);
    for (int i = 0; i < n; i++) pm_xdecref(weak[i]);
    CHECK(pm_gc_get_objects(-1, NULL, NULL) == 0);
    printf("ok (%s): %d objects in %d rounds\n", plain ? "plain" : "finalizers and weakrefs", n, rounds);
  }
  return 0;
}
