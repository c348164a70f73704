/* Objects of the layer: creation, the zero-count path, destruction with a
 * trashcan, and the checks that turn a bad decref into a clear message.
 *
 * Death by reference count runs in CPython's order (subtype_dealloc):
 *   1. finalize, once per object ever, with a temporary reference; if the
 *      count is above zero afterwards the object was resurrected: stop.
 *   2. untrack; clear the weak references to it and run their callbacks;
 *   3. clear (drop what it holds), free.
 * Step 3's drops can cascade.  Nesting deeper than PMI_GC_TRASH_DEPTH
 * deallocations parks the object on the trashcan list instead, and the
 * outermost deallocation empties that list in a loop, so a chain of any
 * length is released with bounded stack (CPython's Py_TRASHCAN).
 */
#include "gc/gc_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

_Noreturn void pmi_obj_fatal(const void *o, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  pmi_vfatal("poolgc: fatal: ", fmt, ap);
}

static const char *type_name(const pmi_obj_head *h) {
  const pm_type *t = pmi_obj_type(h);
  return t && t->name ? t->name : "?";
}

PM_API pmi_cold void pm_object_bad_(const void *o, const char *what) {
  const pmi_obj_head *h = pmi_obj_head_of(o);
  if ((h->tinfo_ & PMI_GC_MAGIC_MASK) != PMI_GC_MAGIC)
    pmi_obj_fatal(o, "%s(%p): not a poolgc object (no object header before it; "
                  "freed already, or never made by pm_new)", what, o);
  pmi_obj_fatal(o, "%s(%p): object of type '%s' has reference count 0 "
                "(released once too often)", what, o, type_name(h));
}

PM_API pmi_cold void pm_object_overflow_(void *o) {
  pmi_obj_fatal(o, "pm_incref(%p): reference count of a '%s' passed 2^32 - 1",
                o, type_name(pmi_obj_head_of(o)));
}

/* The slow half of pm_decref: the count is 1 (the last reference) or 0 (a
 * bad decref); also checks that o is an object at all, which costs nothing
 * on the fast path. */
PM_API pmi_noinline void pm_object_dealloc_(void *o) {
  pmi_obj_head *h = pmi_obj_head_of(o);
  if (pmi_unlikely((h->tinfo_ & PMI_GC_MAGIC_MASK) != PMI_GC_MAGIC || h->refcnt_ == 0))
    pm_object_bad_(o, "pm_decref");
  h->refcnt_ = 0;
  /* Garbage that the collector is clearing: it frees it itself, after. */
  if (pmi_unlikely(pmi_gc.deleting) && (h->tinfo_ & PMI_GC_F_SEEN)) return;
  pmi_obj_destroy_chain(o);
}

PM_API void *pm_new(const pm_type *t) {
  if (t == NULL || t->size > ((size_t)1 << 40)) { errno = t ? ENOMEM : EINVAL; return NULL; }
  if ((uintptr_t)t & ~PMI_GC_TYPE_MASK)
    pmi_obj_fatal(t, "pm_new: type '%s' lies above 2^48; tagged headers need 48-bit addresses",
                  t->name ? t->name : "?");
  pmi_gc_use();
  if (t->traverse) {
    /* CPython counts the allocation, and may collect, before the new object
     * is linked in; doing the same here keeps the new object (whose payload
     * the caller has not filled yet) out of the collection. */
    pmi_gc.gens[0].count++;
    pmi_gc_maybe_collect();
  }
  size_t n = sizeof(pmi_obj_head) + ((t->size + 15) & ~(size_t)15);
  pmi_obj_head *h = pm_malloc(n);
  if (pmi_unlikely(h == NULL)) {
    if (t->traverse && pmi_gc.gens[0].count > 0) pmi_gc.gens[0].count--;
    errno = ENOMEM;
    return NULL;
  }
  memset(h + 1, 0, n - sizeof *h);
  h->refcnt_ = 1;
  h->slot_ = 0;
  h->tinfo_ = (uintptr_t)t | PMI_GC_MAGIC;
  if (t->finalize) pmi_gc.special++;
  void *o = pmi_obj_of(h);
  if (t->traverse) pmi_gc_track(h, o);
  return o;
}

PM_API long pm_refcount(const void *o) {
  const pmi_obj_head *h = pmi_obj_head_of(o);
  if ((h->tinfo_ & PMI_GC_MAGIC_MASK) != PMI_GC_MAGIC) pm_object_bad_(o, "pm_refcount");
  return (long)h->refcnt_;
}

PM_API const pm_type *pm_typeof(const void *o) {
  const pmi_obj_head *h = pmi_obj_head_of(o);
  if ((h->tinfo_ & PMI_GC_MAGIC_MASK) != PMI_GC_MAGIC) pm_object_bad_(o, "pm_typeof");
  return pmi_obj_type(h);
}

/* Runs user code with automatic collections held off. */
#define PMI_GC_CALLOUT(stmt) do { pmi_gc.callback_depth++; stmt; pmi_gc.callback_depth--; } while (0)

/* The three steps of the file comment, for one object whose count is 0. */
static void obj_destroy(pmi_obj_head *h, void *o) {
  const pm_type *t = pmi_obj_type(h);
  if (t->finalize && !(h->tinfo_ & PMI_GC_F_FINALIZED)) {
    h->tinfo_ |= PMI_GC_F_FINALIZED;
    pmi_gc.special--;
    h->refcnt_ = 1;                       /* the finalizer may use the object */
    PMI_GC_CALLOUT(t->finalize(o));
    if (--h->refcnt_ != 0) return;        /* resurrected: alive, intact, still tracked */
  }
  /* Untracked before any more user code runs: a collection started from a
   * weakref callback must not meet an object whose count is 0. */
  if (h->tinfo_ & PMI_GC_F_TRACKED) pmi_gc_untrack(h, o);
  if (h->tinfo_ & PMI_GC_F_HASWEAK) pmi_gc_weak_clear_refs(o, true, NULL);
  if (t->clear) PMI_GC_CALLOUT(t->clear(o));
  if (t->traverse && pmi_gc.gens[0].count > 0) pmi_gc.gens[0].count--;  /* as PyObject_GC_Del */
  h->tinfo_ = 0;                          /* a later decref of o is reported, not obeyed */
  pm_free(h);
}

static void trash_push(pmi_obj_head *h, void *o) {
  if (h->tinfo_ & PMI_GC_F_TRACKED) {     /* the link overwrites slot: leave the table */
    pmi_gc_untrack(h, o);
    h->tinfo_ |= PMI_GC_F_WASTRACK;
  }
  pmi_obj_head *next = pmi_gc.trash;
  _Static_assert(sizeof next == sizeof h->refcnt_ + sizeof h->slot_, "link fits refcnt|slot");
  memcpy(&h->refcnt_, &next, sizeof next);
  pmi_gc.trash = h;
}

static pmi_obj_head *trash_pop(void) {
  pmi_obj_head *h = pmi_gc.trash;
  memcpy(&pmi_gc.trash, &h->refcnt_, sizeof h);
  h->refcnt_ = 0;
  h->slot_ = 0;
  if (h->tinfo_ & PMI_GC_F_WASTRACK) {    /* its finalizer sees it as it was */
    h->tinfo_ &= ~PMI_GC_F_WASTRACK;
    pmi_gc_track(h, pmi_obj_of(h));
  }
  return h;
}

void pmi_obj_destroy_chain(void *o) {
  pmi_obj_head *h = pmi_obj_head_of(o);
  if (pmi_gc.dealloc_depth >= PMI_GC_TRASH_DEPTH) {
    trash_push(h, o);
    return;
  }
  pmi_gc.dealloc_depth++;
  obj_destroy(h, o);
  if (pmi_gc.dealloc_depth == 1) {        /* the outermost one empties the trashcan */
    while (pmi_gc.trash) {
      pmi_obj_head *t = trash_pop();
      obj_destroy(t, pmi_obj_of(t));
    }
  }
  pmi_gc.dealloc_depth--;
}
