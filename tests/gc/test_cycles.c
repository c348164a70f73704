/* The collector on hand-built graphs: a 2-cycle finalized by pm_gc_collect,
 * a cycle held from outside, a resurrecting finalizer, SAVEALL, freeze,
 * promotion between generations, track/untrack, the introspection calls
 * and the start/stop callbacks. */
#include "gc_test.h"

static node *cycle2(const pm_type *t, const char *n1, const char *n2) {
  node *x = node_new(t, n1), *y = node_new(t, n2);
  node_set(x, 0, y);
  node_set(y, 0, x);
  pm_decref(y);
  return x;                             /* the caller holds x */
}

static void test_two_cycle(void) {
  pm_gc_collect(2);
  log_reset();
  /* CPython finalizes the unreachable in the order they entered generation
   * 0; B is made first here, so its finalizer runs first. */
  node *b = node_new(&fnode_type, "B");
  node *a = node_new(&fnode_type, "A");
  node_set(a, 0, b);
  node_set(b, 0, a);
  pm_decref(a);
  pm_decref(b);                         /* both counts are 1: counting cannot free them */
  CHECK(g_finalized == 0);
  pm_gc_stats before[3], after[3];
  pm_gc_get_stats(before);
  long n = pm_gc_collect(2);
  printf("%s\n", g_log);
  CHECK(n == 2);
  CHECK(strcmp(g_log, "Deleted: B, Deleted: A") == 0);
  CHECK(g_finalized == 2 && g_cleared >= 1);
  pm_gc_get_stats(after);
  CHECK(after[2].collections == before[2].collections + 1);
  CHECK(after[2].collected == before[2].collected + 2);
  CHECK(after[2].uncollectable == 0);
  CHECK(pm_gc_get_objects(-1, NULL, NULL) == 0);
}

static void test_held_cycle(void) {
  log_reset();
  node *x = cycle2(&fnode_type, "X", "Y");
  node *y = x->ref[0];
  CHECK(pm_gc_collect(2) == 0);         /* reachable: never touched */
  CHECK(g_finalized == 0 && g_cleared == 0);
  CHECK(x->ref[0] == y && y->ref[0] == x && pm_refcount(x) == 2 && pm_refcount(y) == 1);
  CHECK(pm_gc_collect(0) == 0 && pm_gc_collect(1) == 0);
  pm_decref(x);
  CHECK(pm_gc_collect(2) == 2);
  CHECK(g_finalized == 2);
}

static void test_resurrection(void) {
  log_reset();
  g_resurrect_slot = NULL;
  node *r = cycle2(&rnode_type, "R", "S");
  node *s = r->ref[0];
  pm_decref(r);
  long n = pm_gc_collect(2);
  /* Both finalizers ran; each stored its object, so both live, intact. */
  CHECK(n == 0);
  CHECK(g_finalized == 2);
  CHECK(pm_refcount(r) == 2 && pm_refcount(s) == 2);
  CHECK(r->ref[0] == s && s->ref[0] == r);
  CHECK(pm_gc_is_tracked(r) && pm_gc_is_tracked(s));
  pm_decref(r);
  pm_decref(s);                         /* the references the finalizers made */
  n = pm_gc_collect(2);
  CHECK(n == 2);
  CHECK(g_finalized == 2);              /* once per object, ever */
  CHECK(pm_gc_get_objects(-1, NULL, NULL) == 0);
}

static void test_saveall(void) {
  log_reset();
  pm_gc_set_debug(PM_GC_DEBUG_SAVEALL);
  CHECK(pm_gc_get_debug() == PM_GC_DEBUG_SAVEALL);
  node *x = cycle2(&fnode_type, "X", "Y");
  pm_decref(x);
  CHECK(pm_gc_collect(2) == 2);
  CHECK(pm_gc_garbage_count() == 2);
  CHECK(g_finalized == 2 && g_cleared == 0);   /* finalized, but not cleared */
  node *g0 = pm_gc_garbage_get(0), *g1 = pm_gc_garbage_get(1);
  CHECK(g0->ref[0] == g1 && g1->ref[0] == g0 && pm_refcount(g0) == 2);
  CHECK(pm_gc_garbage_get(2) == NULL);
  pm_gc_set_debug(0);
  CHECK(pm_gc_collect(2) == 0);         /* the list holds them */
  pm_gc_garbage_clear();
  CHECK(pm_gc_garbage_count() == 0);
  CHECK(pm_gc_collect(2) == 2);
  CHECK(g_finalized == 2 && g_cleared >= 1);
}

static void test_freeze(void) {
  node *x = cycle2(&node_type, "X", "Y");
  pm_decref(x);
  pm_gc_freeze();
  long c[3];
  pm_gc_get_count(c);
  CHECK(c[0] == 0);
  CHECK(pm_gc_get_freeze_count() == 2);
  CHECK(pm_gc_get_objects(-1, NULL, NULL) == 0);
  CHECK(pm_gc_collect(2) == 0);         /* the permanent generation is ignored */
  pm_gc_unfreeze();
  CHECK(pm_gc_get_freeze_count() == 0 && pm_gc_get_objects(2, NULL, NULL) == 2);
  CHECK(pm_gc_collect(2) == 2);
}

static void each_count(void *o, void *arg) { (void)o; ++*(long *)arg; }

static void test_generations_and_introspection(void) {
  pm_gc_collect(2);
  node *a = node_new(&node_type, "A"), *b = node_new(&node_type, "B");
  node_set(a, 0, b);
  node_set(a, 1, b);
  CHECK(pm_gc_get_objects(0, NULL, NULL) == 2);
  CHECK(pm_gc_collect(0) == 0);
  CHECK(pm_gc_get_objects(0, NULL, NULL) == 0 && pm_gc_get_objects(1, NULL, NULL) == 2);
  CHECK(pm_gc_collect(1) == 0);
  CHECK(pm_gc_get_objects(1, NULL, NULL) == 0 && pm_gc_get_objects(2, NULL, NULL) == 2);
  long k = 0;
  CHECK(pm_gc_get_objects(-1, each_count, &k) == 2 && k == 2);
  CHECK(pm_gc_get_referents(a, NULL, NULL) == 2);
  CHECK(pm_gc_get_referents(b, NULL, NULL) == 0);
  k = 0;
  CHECK(pm_gc_get_referrers(b, each_count, &k) == 1 && k == 1);
  CHECK(pm_gc_get_referrers(a, NULL, NULL) == 0);

  /* An untracked cycle is invisible to the collector (and so leaks until
   * tracked again). */
  node_set(b, 0, a);
  pm_decref(a);
  pm_decref(b);
  pm_gc_untrack(a);
  pm_gc_untrack(a);                     /* twice is fine */
  CHECK(!pm_gc_is_tracked(a) && pm_gc_is_tracked(b));
  CHECK(pm_gc_collect(2) == 0);         /* b is referenced by the untracked a: an outside reference */
  pm_gc_track(a);
  pm_gc_track(a);
  CHECK(pm_gc_is_tracked(a));
  CHECK(pm_gc_collect(2) == 2);
}

/* A clear that untracks (and maybe tracks again) another garbage object
 * while the collector is deleting: both still die, nothing is left behind. */
static int g_retrack;
static void clear_untracking(void *self) {
  node *n = self;
  if (n->ref[0]) {
    pm_gc_untrack(n->ref[0]);
    CHECK(!pm_gc_is_tracked(n->ref[0]));
    if (g_retrack) pm_gc_track(n->ref[0]);
  }
  node_clear_counted(self);
}
static const pm_type untracking_type = { "untracking", sizeof(node), node_traverse, clear_untracking, node_finalize };
/* The same without finalizers: the collector's shorter all-garbage path. */
static const pm_type untracking_plain = { "untracking", sizeof(node), node_traverse, clear_untracking, NULL };
static const pm_type counted_plain = { "counted", sizeof(node), node_traverse, node_clear_counted, NULL };

static void test_untrack_during_delete(void) {
  for (int plain = 0; plain < 2; plain++) {
    for (g_retrack = 0; g_retrack < 2; g_retrack++) {
      log_reset();
      pm_gc_collect(2);
      const pm_type *xt = plain ? &untracking_plain : &untracking_type;
      const pm_type *yt = plain ? &counted_plain : &fnode_type;
      node *x = node_new(xt, "X"), *y = node_new(yt, "Y");
      node *z = node_new(yt, "Z");                  /* y holds z, which is garbage as well */
      node_set(x, 0, y); node_set(y, 0, x); node_set(y, 1, z);
      pm_decref(x); pm_decref(y); pm_decref(z);
      long n = pm_gc_collect(2);
      /* On the general path a re-tracked y leaves the collector's hands; on
       * the short one tracking only toggles a flag, and y dies with the rest. */
      CHECK(n == (g_retrack && !plain ? 2 : 3));
      CHECK(g_finalized == (plain ? 0 : 3));
      /* the re-tracked y is cleared by the collector, then again when it dies */
      CHECK(g_cleared == (g_retrack && !plain ? 4 : 3));
      CHECK(pm_gc_get_objects(-1, NULL, NULL) == 0);
    }
  }
}

static long g_starts, g_stops, g_stop_collected;
static void gc_cb(const char *phase, int gen, long collected, long uncollectable, void *arg) {
  CHECK(arg == &g_starts && uncollectable == 0 && gen == 2);
  if (strcmp(phase, "start") == 0) g_starts++;
  else { CHECK(strcmp(phase, "stop") == 0); g_stops++; g_stop_collected = collected; }
  CHECK(pm_gc_collect(0) == 0);         /* no nested collection */
}

static void test_callbacks_and_debug(void) {
  CHECK(pm_gc_add_callback(gc_cb, &g_starts) == 0);
  node *x = cycle2(&node_type, "X", "Y");
  pm_decref(x);
  pm_gc_set_debug(PM_GC_DEBUG_STATS | PM_GC_DEBUG_COLLECTABLE);
  CHECK(pm_gc_collect(2) == 2);
  pm_gc_set_debug(0);
  CHECK(g_starts == 1 && g_stops == 1 && g_stop_collected == 2);
  CHECK(pm_gc_collect(7) == -1);
}

int main(void) {
  setvbuf(stdout, NULL, _IONBF, 0);
  test_two_cycle();
  test_held_cycle();
  test_resurrection();
  test_saveall();
  test_freeze();
  test_generations_and_introspection();
  test_untrack_during_delete();
  test_callbacks_and_debug();
  printf("ok\n");
  return 0;
}
