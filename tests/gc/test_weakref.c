/* Weak references die with their referent, by count and by collection;
 * their callbacks run once, newest first; never for a weakref that died
 * first or is garbage of the same collection. */
#include "gc_test.h"

static int g_calls[8];
static void *g_cb_ref[8];
static int g_order[8], g_norder;

static void cb(void *w, void *arg) {
  int i = (int)(long)arg;
  g_calls[i]++;
  g_cb_ref[i] = w;
  g_order[g_norder++] = i;
  CHECK(pm_weakref_get(w) == NULL);
}
static void reset(void) { memset(g_calls, 0, sizeof g_calls); g_norder = 0; }

static void test_by_count(void) {
  reset();
  node *a = node_new(&node_type, "A");
  void *w1 = pm_weakref_new(a, cb, (void *)1L);
  void *w2 = pm_weakref_new(a, cb, (void *)2L);
  void *w3 = pm_weakref_new(a, NULL, NULL);
  CHECK(pm_refcount(a) == 1);           /* weak references do not count */
  node *g = pm_weakref_get(w1);
  CHECK(g == a && pm_refcount(a) == 2);
  pm_decref(g);
  pm_decref(a);
  CHECK(g_calls[1] == 1 && g_calls[2] == 1);
  CHECK(g_norder == 2 && g_order[0] == 2 && g_order[1] == 1);  /* newest first */
  CHECK(g_cb_ref[1] == w1 && g_cb_ref[2] == w2);
  CHECK(pm_weakref_get(w1) == NULL && pm_weakref_get(w2) == NULL && pm_weakref_get(w3) == NULL);
  pm_decref(w1); pm_decref(w2); pm_decref(w3);
  CHECK(g_calls[1] == 1 && g_calls[2] == 1);
}

static void test_weakref_dies_first(void) {
  reset();
  node *a = node_new(&node_type, "A");
  void *w1 = pm_weakref_new(a, cb, (void *)1L);
  void *w2 = pm_weakref_new(a, cb, (void *)2L);
  pm_decref(w1);                        /* gone before its referent: no callback, ever */
  pm_decref(a);
  CHECK(g_calls[1] == 0 && g_calls[2] == 1);
  pm_decref(w2);
}

static void test_by_collection(void) {
  reset();
  node *x = node_new(&node_type, "X"), *y = node_new(&node_type, "Y");
  node_set(x, 0, y); node_set(y, 0, x);
  void *wx = pm_weakref_new(x, cb, (void *)1L);
  void *wy = pm_weakref_new(y, cb, (void *)2L);
  /* A weakref held only by the cycle is garbage of the same collection. */
  void *wgarbage = pm_weakref_new(y, cb, (void *)3L);
  x->ref[1] = wgarbage;                 /* the cycle owns it now */
  pm_decref(x); pm_decref(y);
  CHECK(pm_gc_collect(2) == 3);
  CHECK(g_calls[1] == 1 && g_calls[2] == 1 && g_calls[3] == 0);
  CHECK(pm_weakref_get(wx) == NULL && pm_weakref_get(wy) == NULL);
  CHECK(pm_gc_collect(2) == 0);
  CHECK(g_calls[1] == 1 && g_calls[2] == 1 && g_calls[3] == 0);
  pm_decref(wx); pm_decref(wy);
}

/* A weakref that is garbage itself is cleared before finalizers run, even
 * when its referent lives on: no finalizer reaches the referent through it,
 * and its callback never runs. */
static void *g_garbage_weak;
static void *g_seen_through_weak = (void *)1;
static void finalize_peek(void *self) {
  (void)self;
  g_seen_through_weak = pm_weakref_get(g_garbage_weak);
}
static const pm_type peek_type = { "peek", sizeof(node), node_traverse, node_clear, finalize_peek };

static void test_garbage_weakref_to_live(void) {
  reset();
  node *live = node_new(&node_type, "live");
  node *x = node_new(&peek_type, "X"), *y = node_new(&node_type, "Y");
  node_set(x, 0, y); node_set(y, 0, x);
  g_garbage_weak = pm_weakref_new(live, cb, (void *)4L);
  y->ref[1] = g_garbage_weak;           /* owned by the cycle */
  pm_decref(x); pm_decref(y);
  CHECK(pm_gc_collect(2) == 3);
  CHECK(g_seen_through_weak == NULL);
  CHECK(g_calls[4] == 0);
  CHECK(pm_refcount(live) == 1);
  pm_decref(live);
  CHECK(g_calls[4] == 0);
}

static void test_survives_with_referent(void) {
  reset();
  node *x = node_new(&node_type, "X");
  node_set(x, 0, x);
  void *w = pm_weakref_new(x, cb, (void *)1L);
  CHECK(pm_gc_collect(2) == 0);         /* x is held: the weakref keeps working */
  node *g = pm_weakref_get(w);
  CHECK(g == x);
  pm_decref(g);
  pm_decref(x);
  CHECK(pm_gc_collect(2) == 1 && g_calls[1] == 1);
  pm_decref(w);
}

/* Many referents with weakrefs, released in an order that exercises the
 * side map's deletion. */
static void test_many(void) {
  reset();
  enum { N = 5000 };
  static node *objs[N];
  static void *wr[N];
  for (int i = 0; i < N; i++) { objs[i] = node_new(&node_type, "m"); wr[i] = pm_weakref_new(objs[i], NULL, NULL); }
  for (int i = 0; i < N; i += 2) pm_decref(objs[i]);
  for (int i = 0; i < N; i++) {
    void *g = pm_weakref_get(wr[i]);
    CHECK((i % 2 == 0) == (g == NULL));
    if (g) { CHECK(g == objs[i]); pm_decref(g); }
  }
  for (int i = 1; i < N; i += 2) pm_decref(wr[i]);
  for (int i = 1; i < N; i += 2) pm_decref(objs[i]);
  for (int i = 0; i < N; i += 2) pm_decref(wr[i]);
  CHECK(pm_gc_collect(2) == 0);
  CHECK(pm_gc_get_objects(-1, NULL, NULL) == 0);
}

int main(void) {
  test_by_count();
  test_weakref_dies_first();
  test_by_collection();
  test_garbage_weakref_to_live();
  test_survives_with_referent();
  test_many();
  printf("ok\n");
  return 0;
}
