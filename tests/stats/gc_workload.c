/* For tests/stats/test_stats.sh: 1000 two-object cycles made and dropped,
 * then one full collection; the report must show the GC section. */
#include "poolgc.h"

typedef struct node { void *next; } node;
static int node_traverse(void *self, pm_visit_fn visit, void *arg) {
  node *n = self;
  PM_VISIT(n->next);
  return 0;
}
static void node_clear(void *self) {
  node *n = self;
  PM_CLEAR(n->next);
}
static const pm_type node_type = {"node", sizeof(node), node_traverse, node_clear, NULL};

int main(void) {
  pm_gc_disable();
  for (int i = 0; i < 1000; i++) {
    node *a = pm_new(&node_type), *b = pm_new(&node_type);
    a->next = b;
    b->next = a;
    pm_incref(a);
    pm_incref(b);
    pm_decref(a);
    pm_decref(b);
  }
  return pm_gc_collect(2) == 2000 ? 0 : 1;
}
