/* poolgc: reference counting and a generational cycle collector for C
 * objects, with CPython 3.12's semantics, on poolmalloc's small-object pools.
 *
 * A type describes what an object holds:
 *
 *     typedef struct node { void *left, *right; } node;
 *     static int node_traverse(void *self, pm_visit_fn visit, void *arg) {
 *         node *n = self;
 *         PM_VISIT(n->left); PM_VISIT(n->right);
 *         return 0;
 *     }
 *     static void node_clear(void *self) {
 *         node *n = self;
 *         PM_CLEAR(n->left); PM_CLEAR(n->right);
 *     }
 *     static const pm_type node_type = { "node", sizeof(node),
 *                                        node_traverse, node_clear, NULL };
 *
 *     node *a = pm_new(&node_type);          // refcount 1, fields zeroed
 *     a->left = a; pm_incref(a);             // a reference stored: count it
 *     pm_decref(a);                          // a 1-cycle: counting cannot free it
 *     pm_gc_collect(2);                      // ... the collector does
 *
 * Rules a type follows (the same as a CPython extension type's):
 *  - traverse visits every reference the object holds to another layer
 *    object (PM_VISIT; NULL fields are ignored) and nothing else; it must not
 *    change any object.  traverse == NULL: the object holds no references and
 *    is not tracked by the collector.
 *  - clear drops every held reference (PM_CLEAR: decref and set NULL).  It is
 *    called when the count reaches zero, and by the collector to break
 *    cycles; it may run more than once on one object, so leave fields NULL.
 *  - finalize runs at most once per object, ever, before its memory is
 *    reclaimed; it may store a new reference to the object (resurrection),
 *    in which case the object stays alive and intact.
 *
 * Threads: the layer has one collector per process and no locks.  The
 * program serialises all its calls into the layer (pm_new, pm_incref,
 * pm_decref, pm_gc_*, pm_weakref_*) with one lock of its own, as CPython's
 * GIL does.  Objects may be created by one thread and released by another
 * under that lock.
 *
 * Cost when unused: none.  All state is static data; nothing runs at load.
 */
#ifndef POOLGC_H
#define POOLGC_H

#include <stddef.h>
#include <stdint.h>
#include "poolmalloc.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef int (*pm_visit_fn)(void *obj, void *arg);

typedef struct pm_type {
  const char *name;
  size_t size;                                                /* payload bytes */
  int  (*traverse)(void *self, pm_visit_fn visit, void *arg); /* visit every held reference; NULL: holds none */
  void (*clear)(void *self);                                  /* drop (decref and NULL) every held reference */
  void (*finalize)(void *self);                               /* runs once before reclaim; may resurrect */
} pm_type;

/* Inside a traverse function with parameters named visit and arg. */
#define PM_VISIT(o)                                             \
  do {                                                          \
    void *pm_visit_o_ = (void *)(o);                            \
    if (pm_visit_o_) {                                          \
      int pm_visit_r_ = visit(pm_visit_o_, arg);                \
      if (pm_visit_r_) return pm_visit_r_;                      \
    }                                                           \
  } while (0)
/* Drop the reference held in the lvalue f and leave it NULL (Py_CLEAR). */
#define PM_CLEAR(f)                                             \
  do {                                                          \
    void *pm_clear_o_ = (void *)(f);                            \
    if (pm_clear_o_) { (f) = NULL; pm_decref(pm_clear_o_); }    \
  } while (0)

/* ---- objects ------------------------------------------------------------- */

PM_API void *pm_new(const pm_type *t);   /* refcount 1, payload zeroed, tracked if t->traverse; NULL + ENOMEM */
PM_API long  pm_refcount(const void *o);
PM_API const pm_type *pm_typeof(const void *o);

/* The 16 bytes before every payload.  Layer-private: read it only through
 * the functions above.  It is here because pm_incref/pm_decref are inline.
 * The layout is explained in src/gc_internal.h. */
typedef struct pm_object_head_ {
  uint32_t  refcnt_;   /* the reference count */
  uint32_t  slot_;     /* the collector's bookkeeping */
  uintptr_t tinfo_;    /* the type pointer, flags and a check byte */
} pm_object_head_;

PM_API void pm_object_dealloc_(void *o);       /* count 1 -> 0, or a bad decref: out of line */
PM_API void pm_object_overflow_(void *o) __attribute__((noreturn, cold));   /* count would pass 2^32 - 1 */
PM_API void pm_object_bad_(const void *o, const char *what) __attribute__((noreturn, cold));

#define PM_OBJECT_MAGIC_  ((uintptr_t)0x53 << 57)
#define PM_OBJECT_MAGICM_ ((uintptr_t)0x7F << 57)

/* Define PM_GC_CHECKED to 1 before including this header to verify in every
 * pm_incref/pm_decref that the pointer is a layer object (two instructions).
 * Without it the check is made whenever a count would reach zero. */
#ifndef PM_GC_CHECKED
#define PM_GC_CHECKED 0
#endif

static inline pm_object_head_ *pm_head_(const void *o) {
  return (pm_object_head_ *)o - 1;
}

static inline void pm_incref(void *o) {
  pm_object_head_ *h = pm_head_(o);
#if PM_GC_CHECKED
  if (__builtin_expect((h->tinfo_ & PM_OBJECT_MAGICM_) != PM_OBJECT_MAGIC_ || h->refcnt_ == 0, 0))
    pm_object_bad_(o, "pm_incref");
#endif
  if (__builtin_expect(++h->refcnt_ == 0, 0)) pm_object_overflow_(o);
}

static inline void pm_decref(void *o) {
  pm_object_head_ *h = pm_head_(o);
#if PM_GC_CHECKED
  if (__builtin_expect((h->tinfo_ & PM_OBJECT_MAGICM_) != PM_OBJECT_MAGIC_, 0))
    pm_object_bad_(o, "pm_decref");
#endif
  /* Counts 0 (a bad decref) and 1 (the last reference) both leave here. */
  if (__builtin_expect(h->refcnt_ > 1, 1)) h->refcnt_--;
  else pm_object_dealloc_(o);
}

static inline void pm_xincref(void *o) { if (o) pm_incref(o); }
static inline void pm_xdecref(void *o) { if (o) pm_decref(o); }

/* ---- the collector (Python's gc module) ---------------------------------- */

PM_API long  pm_gc_collect(int generation);   /* 0, 1, 2 (2 = full); returns unreachable objects found; 0 if already collecting */
PM_API void  pm_gc_enable(void);
PM_API void  pm_gc_disable(void);
PM_API int   pm_gc_isenabled(void);
PM_API void  pm_gc_set_threshold(long t0, long t1, long t2);  /* t0 == 0 disables automatic collection */
PM_API void  pm_gc_get_threshold(long t[3]);
PM_API void  pm_gc_get_count(long c[3]);

typedef struct pm_gc_stats { long collections, collected, uncollectable; } pm_gc_stats;
PM_API void  pm_gc_get_stats(pm_gc_stats s[3]);

#define PM_GC_DEBUG_STATS         (1 << 0)  /* a line per collection on stderr */
#define PM_GC_DEBUG_COLLECTABLE   (1 << 1)  /* name each collectable object found */
#define PM_GC_DEBUG_UNCOLLECTABLE (1 << 2)  /* name each uncollectable object found */
#define PM_GC_DEBUG_SAVEALL       (1 << 5)  /* keep garbage in the garbage list instead of freeing it */
#define PM_GC_DEBUG_LEAK (PM_GC_DEBUG_COLLECTABLE | PM_GC_DEBUG_UNCOLLECTABLE | PM_GC_DEBUG_SAVEALL)
PM_API void  pm_gc_set_debug(int flags);
PM_API int   pm_gc_get_debug(void);

/* gc.garbage: objects a SAVEALL collection kept; the list holds a reference
 * to each; get returns a borrowed one; clear drops them. */
PM_API size_t pm_gc_garbage_count(void);
PM_API void  *pm_gc_garbage_get(size_t i);
PM_API void   pm_gc_garbage_clear(void);

PM_API void   pm_gc_freeze(void);       /* every tracked object to the permanent generation */
PM_API void   pm_gc_unfreeze(void);     /* ... back to the oldest generation */
PM_API size_t pm_gc_get_freeze_count(void);

PM_API int    pm_gc_is_tracked(const void *o);
PM_API void   pm_gc_track(void *o);     /* no-op if tracked or if the type has no traverse */
PM_API void   pm_gc_untrack(void *o);   /* no-op if not tracked */

/* Call each for every object of a generation (-1: all three), for the
 * objects o refers to, or for the tracked objects that refer to o.  Return
 * how many.  each must not create, track or release layer objects. */
PM_API size_t pm_gc_get_objects(int generation, void (*each)(void *o, void *arg), void *arg);
PM_API size_t pm_gc_get_referents(void *o, void (*each)(void *o, void *arg), void *arg);
PM_API size_t pm_gc_get_referrers(void *o, void (*each)(void *o, void *arg), void *arg);

/* gc.callbacks: cb("start", gen, 0, 0, arg) before and cb("stop", gen,
 * collected, uncollectable, arg) after every collection.  Returns 0, or -1
 * when the table (16 entries) is full. */
PM_API int pm_gc_add_callback(void (*cb)(const char *phase, int generation, long collected,
                                         long uncollectable, void *arg), void *arg);

/* ---- weak references ----------------------------------------------------- */

/* A weak reference to o, itself a layer object (refcount 1; release it with
 * pm_decref).  When o dies, the weakref is cleared and callback(weakref, arg)
 * runs once -- unless the weakref itself died first or is garbage of the same
 * collection.  arg is not a reference; the layer never touches it. */
PM_API void *pm_weakref_new(void *o, void (*callback)(void *weakref, void *arg), void *arg);
PM_API void *pm_weakref_get(void *weakref);  /* a new reference, or NULL once the referent is gone */
PM_API int   pm_is_weakref(const void *o);

#ifdef __cplusplus
}
#endif
#endif /* POOLGC_H */
