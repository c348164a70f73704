/* The example of README.md ("Writing a type"), verbatim but for the
 * includes, so the documentation keeps compiling and keeps being true. */
#include <stdio.h>
#include "poolgc.h"

typedef struct pair { void *first, *second; int tag; } pair;

/* Visit every reference the object holds to another layer object. */
static int pair_traverse(void *self, pm_visit_fn visit, void *arg) {
    pair *p = self;
    PM_VISIT(p->first);            /* NULL is skipped */
    PM_VISIT(p->second);
    return 0;
}

/* Drop every reference it holds: decref and set NULL. */
static void pair_clear(void *self) {
    pair *p = self;
    PM_CLEAR(p->first);
    PM_CLEAR(p->second);
}

/* Optional: runs once, before the memory is reclaimed. */
static void pair_finalize(void *self) {
    printf("Deleted: %d\n", ((pair *)self)->tag);
}

static const pm_type pair_type = {
    "pair", sizeof(pair), pair_traverse, pair_clear, pair_finalize
};

int main(void) {
    pair *a = pm_new(&pair_type);          /* refcount 1, payload zeroed */
    pair *b = pm_new(&pair_type);
    a->tag = 1; b->tag = 2;
    a->first = b; pm_incref(b);            /* storing a reference: count it */
    b->first = a; pm_incref(a);
    pm_decref(a);                          /* our references go ...        */
    pm_decref(b);                          /* ... but the cycle keeps both */
    long n = pm_gc_collect(2);             /* "Deleted: 1", "Deleted: 2"; n == 2 */
    return n == 2 ? 0 : 1;
}
