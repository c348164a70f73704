/* Shared by the tests of the object layer (tests/gc/test_*.c): a CHECK
 * macro that names the failing line, and a node type that holds up to four
 * references and records its finalizer and clear calls in a log. */
#ifndef GC_TEST_H
#define GC_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "poolgc.h"

#define CHECK(cond)                                                           \
  do {                                                                        \
    if (!(cond)) {                                                            \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      exit(1);                                                                \
    }                                                                         \
  } while (0)

#define NODE_REFS 4
typedef struct node {
  void *ref[NODE_REFS];     /* strong references, NULL or a layer object */
  const char *name;
  long id;
} node;

__attribute__((unused)) static char g_log[4096];    /* "Deleted: A, Deleted: B" style event log */
__attribute__((unused)) static long g_finalized, g_cleared;
__attribute__((unused)) static void *g_resurrect_slot;  /* finalizers of resurrecting nodes store self here */

static inline void log_event(const char *what, const node *n) {
  char buf[128];
  snprintf(buf, sizeof buf, "%s%s: %s", g_log[0] ? ", " : "", what, n->name ? n->name : "?");
  strncat(g_log, buf, sizeof g_log - strlen(g_log) - 1);
}
static inline void log_reset(void) { g_log[0] = 0; g_finalized = g_cleared = 0; }

static inline int node_traverse(void *self, pm_visit_fn visit, void *arg) {
  node *n = self;
  for (int i = 0; i < NODE_REFS; i++) PM_VISIT(n->ref[i]);
  return 0;
}
static inline void node_clear(void *self) {
  node *n = self;
  for (int i = 0; i < NODE_REFS; i++) PM_CLEAR(n->ref[i]);
}
static inline void node_finalize(void *self) {
  g_finalized++;
  log_event("Deleted", self);
}
static inline void node_finalize_resurrect(void *self) {
  g_finalized++;
  log_event("Resurrected", self);
  pm_incref(self);
  g_resurrect_slot = self;
}
static inline void node_clear_counted(void *self) { g_cleared++; node_clear(self); }

__attribute__((unused)) static const pm_type node_type = { "node", sizeof(node), node_traverse, node_clear, NULL };
__attribute__((unused)) static const pm_type fnode_type = { "fnode", sizeof(node), node_traverse, node_clear_counted, node_finalize };
__attribute__((unused)) static const pm_type rnode_type = { "rnode", sizeof(node), node_traverse, node_clear, node_finalize_resurrect };
__attribute__((unused)) static const pm_type leaf_type = { "leaf", sizeof(node), NULL, NULL, node_finalize };

/* Store a new reference to target in n->ref[i] (dropping what was there). */
static inline void node_set(node *n, int i, void *target) {
  pm_xincref(target);
  void *old = n->ref[i];
  n->ref[i] = target;
  pm_xdecref(old);
}

static inline node *node_new(const pm_type *t, const char *name) {
  node *n = pm_new(t);
  CHECK(n != NULL);
  n->name = name;
  return n;
}


/* The model's mark from the roots, independent of the collector: reach[i]
 * is set for every object i < n reachable from a root through edge[][] (the
 * property tests compare the collector's verdict with it). */
static inline void gc_test_mark(int n, const char *root, const int (*edge)[NODE_REFS], char *reach, int *stack) {
  int sp = 0;
  if (n <= 0)          /* nothing to mark; also tells memset its length is positive */
    return;
  memset(reach, 0, (size_t)n);
  for (int i = 0; i < n; i++)
    if (root[i] && !reach[i]) { reach[i] = 1; stack[sp++] = i; }
  while (sp) {
    int i = stack[--sp];
    for (int k = 0; k < NODE_REFS; k++) {
      int j = edge[i][k];
      if (j >= 0 && !reach[j]) { reach[j] = 1; stack[sp++] = j; }
    }
  }
}

#endif
