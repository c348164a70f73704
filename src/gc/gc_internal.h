/* The object layer's types: object header, generations, collector state.
 * Shared by object.c (pm_new, deallocation, trashcan), gc.c (the collector)
 * and weakref.c.  Internal names start with pmi_gc_ or pmi_obj_.
 *
 * ---------------------------------------------------------------------------
 * The object header (16 bytes before the payload; CPython's is 32)
 *
 *    block from pm_malloc (16-byte aligned)
 *    +----------+----------+--------------------------------+--------------
 *    | refcnt   | slot     | tinfo = type | flags | check   | payload ...
 *    | uint32   | uint32   | bits 0-47    | 48-56 | 57-63   | (16-aligned)
 *    +----------+----------+--------------------------------+--------------
 *
 *  refcnt  the reference count.  0 only while the object is being destroyed.
 *  slot    outside a collection: the object's index in its generation's
 *          table, when tracked.  During a collection, for objects of the
 *          collected set: gc_refs, the scratch count (see below).  While the
 *          object waits on the trashcan list, refcnt and slot together hold
 *          the link to the next waiting object.
 *  tinfo   the pm_type pointer (user space is 47 bits on x86-64 and arm64;
 *          pm_new checks), the flags PMI_GC_F_* (bits 48..56), and
 *          PMI_GC_MAGIC in the top 7 bits, so a stray decref on memory that
 *          is not an object is caught when its count would reach zero.  On
 *          free the word is zeroed.
 *
 * Why no list links: generations are dense tables of object pointers
 * (pmi_gc_gen.objs), not doubly linked lists.  Track appends, untrack
 * swaps the last entry into the hole, and a collection walks a table in
 * order, mostly allocation order, which is mostly memory order.  The cost is
 * 8 bytes of table per tracked object beside the header (24 in all; CPython
 * puts 32 in the header and nothing beside it).
 *
 * Invariants outside a collection, for each generation g in 0..3:
 *    for all i < gens[g].len:  head(gens[g].objs[i]).slot == i
 *                              gen(gens[g].objs[i]) == g, TRACKED set
 *    TRACKED(o)  <=>  o is in exactly one table
 *    sum over g of gens[g].len == number of tracked objects
 *
 * During a collection of generations 0..n the objects of tables 0..n-1 are
 * appended to table n (those tables are empty again, so objects created by
 * callbacks go to generation 0 as usual).  The find step works on a set S,
 * its members told apart by the membership code (tinfo >> 48) & 15:
 *    first find:  S = table n     member <=> TRACKED and gen <= n (no COLL)
 *    recheck:     S = unreachable member <=> TRACKED and COLL
 *    gc_refs(o) = head(o).slot once SEEN(o) (set lazily: the first visit
 *                 or the scan copies refcnt into slot, so no pass of its own):
 *      after subtract: refcnt(o) - |references to o from members of S|
 *                      gc_refs(o) > 0 <=> o is referenced from outside (a root)
 *      MARK(o)       <=> gc_refs(o) == 0 and o is reachable from a root
 *      reachable(o)  <=> gc_refs(o) > 0 || MARK(o)
 *    zeros == |{o in S : gc_refs(o) == 0}| - |{o : MARK(o)}|; marking stops
 *    when it reaches 0 (every member left is a root).
 *    After the split: SEEN and MARK are clear on every object again, and
 *    COLL(o) <=> o is in unreachable[].  (The shortcut for an all-garbage
 *    set, gc.c's delete_all_garbage, has no split: while pmi_gc.deleting,
 *    SEEN(o) <=> o is in the collected table, all of it garbage, and a count
 *    reaching 0 on such an o stops there; its second pass frees those.)
 *    In unreachable[] (after the split): head(o).slot == index of o there,
 *    so a death during weakref callbacks or finalizers, or an untrack by the
 *    program, NULLs its entry instead of leaving a dangling pointer.  While
 *    pmi_gc.pinned (from the split to the slow steps, and again from the
 *    recheck to the end) each entry holds one extra reference, the pin:
 *       refcnt(o) == references from objects + 1
 *    so no entry can die while clear runs on the others, and no entry is
 *    NULL; a program's untrack then only clears TRACKED (a track after it
 *    puts the object in generation 0 and clears COLL), and the delete step
 *    reads those flags.
 * ---------------------------------------------------------------------------
 */
#ifndef POOLMALLOC_GC_INTERNAL_H
#define POOLMALLOC_GC_INTERNAL_H

#include <stdint.h>
#include <stddef.h>
#include <stdbool.h>
#include "poolgc.h"
#include "base/compiler.h"
#include "base/message.h"

typedef pm_object_head_ pmi_obj_head;
_Static_assert(sizeof(pmi_obj_head) == 16, "the header keeps the payload 16-byte aligned");

#define PMI_GC_MAGIC      PM_OBJECT_MAGIC_
#define PMI_GC_MAGIC_MASK PM_OBJECT_MAGICM_
#define PMI_GC_TYPE_MASK  (((uintptr_t)1 << 48) - 1)

/* Flags in tinfo bits 48..56.  GEN, TRACKED and COLL come first and
 * together: (tinfo >> 48) & 15 is the membership code the collector tests
 * against a 16-bit mask per edge (see gc.c's is_member). */
#define PMI_GC_F_SHIFT     48
#define PMI_GC_F_GEN       ((uintptr_t)3 << 48)   /* generation 0..2, 3 = permanent */
#define PMI_GC_F_TRACKED   ((uintptr_t)1 << 50)   /* in a generation table (or in the collected set) */
#define PMI_GC_F_COLL      ((uintptr_t)1 << 51)   /* in unreachable[] of the running collection */
#define PMI_GC_F_SEEN      ((uintptr_t)1 << 52)   /* gc_refs initialised in this find step */
#define PMI_GC_F_MARK      ((uintptr_t)1 << 53)   /* reached from a root in this find step */
#define PMI_GC_F_FINALIZED ((uintptr_t)1 << 54)   /* finalize ran (or is never to run again) */
#define PMI_GC_F_HASWEAK   ((uintptr_t)1 << 55)   /* weakref.c's map has a list for it */
#define PMI_GC_F_WASTRACK  ((uintptr_t)1 << 56)   /* on the trashcan list, was tracked */
_Static_assert((PMI_GC_F_WASTRACK & PMI_GC_MAGIC_MASK) == 0, "flags and check bits are disjoint");

#define PMI_GC_NGEN        3                       /* collected generations */
#define PMI_GC_PERMANENT   3                       /* index of the frozen one */
#define PMI_GC_TRASH_DEPTH 50                      /* nesting of deallocations before deferring */

static inline pmi_obj_head *pmi_obj_head_of(const void *o) { return (pmi_obj_head *)o - 1; }
static inline void *pmi_obj_of(pmi_obj_head *h) { return h + 1; }
static inline const pm_type *pmi_obj_type(const pmi_obj_head *h) {
  return (const pm_type *)(h->tinfo_ & PMI_GC_TYPE_MASK);
}
static inline unsigned pmi_obj_gen(const pmi_obj_head *h) {
  return (unsigned)((h->tinfo_ & PMI_GC_F_GEN) >> PMI_GC_F_SHIFT);
}

/* A generation: a dense table of its tracked objects (see above). */
typedef struct pmi_gc_gen {
  void   **objs;       /* pm_malloc'd; objs[0..len) are the objects */
  uint32_t len;        /* tracked objects in it */
  uint32_t cap;        /* entries allocated */
  long     threshold;  /* gen 0: allocations; gen 1, 2: collections of the younger one */
  long     count;      /* gen 0: tracked allocations - deallocations; gen n: collections of n-1 since */
} pmi_gc_gen;

/* A growable array of object pointers (unreachable, marking stack, garbage). */
typedef struct pmi_gc_vec {
  void   **v;
  size_t   len, cap;
} pmi_gc_vec;

/* Per-generation statistics (pm_gc_get_stats and the POOLMALLOC_STATS report). */
typedef struct pmi_gc_genstats {
  long     collections;    /* collections of this generation */
  long     collected;      /* unreachable objects found (freed, or saved by SAVEALL) */
  long     uncollectable;  /* always 0: the layer has no legacy finalizers */
  uint64_t pause_total_ns; /* time inside pm_gc_collect for this generation */
  uint64_t pause_max_ns;   /* longest single one */
} pmi_gc_genstats;

typedef struct pmi_gc_stats_report {
  int             used;               /* nonzero once any pm_new or pm_gc_* ran */
  pmi_gc_genstats gen[PMI_GC_NGEN];
  size_t          tracked;            /* objects in generations 0..2 now */
  size_t          frozen;             /* objects in the permanent generation */
} pmi_gc_stats_report;

typedef void (*pmi_gc_callback_fn)(const char *, int, long, long, void *);

/* The whole state of the layer: static, zero except for the constants, so
 * a program that never calls the layer pays nothing. */
typedef struct pmi_gc_state {
  pmi_gc_gen   gens[PMI_GC_NGEN + 1];   /* 0, 1, 2 and permanent (3) */
  int          enabled;                 /* automatic collections allowed */
  int          collecting;              /* a collection is running */
  int          debug;                   /* PM_GC_DEBUG_* */
  int          used;                    /* the layer has been called */
  int          pinned;                  /* every unreachable[] entry holds a pin now */
  long         special;                 /* live objects that may need a collection's slow
                                         * steps:  |{o : finalize due}| + |{o : HASWEAK}|
                                         * (a weakref's finalize is due until it dies).
                                         * 0 lets the split skip its per-object test. */
  long         callback_depth;          /* > 0 while user code runs from inside the layer */
  long         long_lived_total;        /* objects in gen 2 after the last full collection */
  long         long_lived_pending;      /* objects moved to gen 2 since */
  pmi_gc_vec   unreachable;             /* its unreachable part, while finalizing and deleting */
  pmi_gc_vec   stack;                   /* the marking stack */
  pmi_gc_vec   spare;                   /* an empty table buffer (delete_all_garbage) */
  int          deleting;                /* delete_all_garbage is clearing: a count reaching
                                         * 0 on a SEEN object leaves it for its second pass */
  pmi_gc_vec   garbage;                 /* gc.garbage (strong references) */
  pmi_gc_genstats stats[PMI_GC_NGEN];
  struct { pmi_gc_callback_fn fn; void *arg; } callbacks[16];
  int          ncallbacks;
  /* Trashcan (object.c): deallocations nested deeper than PMI_GC_TRASH_DEPTH wait here. */
  int          dealloc_depth;           /* nesting of pmi_obj_destroy */
  pmi_obj_head *trash;                  /* waiting objects, linked through refcnt|slot */
} pmi_gc_state;

extern pmi_gc_state pmi_gc;

/* gc.c */
void pmi_gc_track(pmi_obj_head *h, void *o);     /* append to generation 0, count it */
void pmi_gc_untrack(pmi_obj_head *h, void *o);   /* remove from its table or the collected set */
void pmi_gc_maybe_collect(void);                 /* automatic collection if thresholds say so */
bool pmi_gc_vec_push(pmi_gc_vec *v, void *o);
void pmi_gc_vec_free(pmi_gc_vec *v);             /* and leave it empty */
void pmi_gc_stats_snapshot(pmi_gc_stats_report *out);

/* report.c */
void pmi_gc_first_use(void);                     /* sets pmi_gc.used, adds the report's section */
static inline void pmi_gc_use(void) { if (pmi_unlikely(!pmi_gc.used)) pmi_gc_first_use(); }

/* object.c */
void pmi_obj_destroy_chain(void *o);             /* count is 0: finalize, clear weakrefs, clear, free (trashcan) */
_Noreturn void pmi_obj_fatal(const void *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* weakref.c */
extern const pm_type pmi_gc_weakref_type;
void pmi_gc_weak_clear_refs(void *o, bool run_callbacks_now, pmi_gc_vec *deferred);
                                  /* detach every weakref to o; run callbacks now, or push the
                                   * weakrefs (a reference each) to deferred to run later */
void pmi_gc_weak_run_callback(void *w);          /* consumes the reference deferred held */
void pmi_gc_weak_forget(void *w);                /* a weakref dies: unlink it from its referent */

#endif /* POOLMALLOC_GC_INTERNAL_H */
