/* Weak references: pm_weakref_new, pm_weakref_get, and clearing them when
 * their referent dies (by count: object.c; by collection: gc.c).
 *
 * The header has no room for a weakref list pointer, and most objects never
 * have one, so the lists live in a side map: referent -> newest weakref,
 * an open-addressing table with linear probing and backward-shift deletion
 * (no tombstones).  A referent has an entry  <=>  PMI_GC_F_HASWEAK is set in
 * its header  <=>  at least one live weakref points at it.  The weakrefs of
 * one referent form a doubly linked list, newest first, which is also the
 * order callbacks run in (as CPython's PyObject_ClearWeakRefs).
 *
 * A weakref is a tracked layer object with no strong references, so a
 * weakref that only garbage refers to is itself in the unreachable set, and
 * its callback is not run (CPython's rule).
 */
#include "gc/gc_internal.h"

#include <errno.h>
#include <string.h>

typedef struct pmi_gc_weakref {
  void *referent;                          /* NULL once cleared */
  void (*callback)(void *weakref, void *arg);
  void *arg;
  struct pmi_gc_weakref *prev, *next;      /* the referent's list; prev NULL at the head */
} pmi_gc_weakref;

typedef struct weak_entry { void *key; pmi_gc_weakref *head; } weak_entry;

static struct {
  weak_entry *slots;      /* cap entries; key NULL = empty */
  size_t      cap;        /* a power of two, or 0 */
  size_t      len;        /* entries used; len <= cap / 2 */
} weak_map;

static int weakref_traverse(void *self, pm_visit_fn visit, void *arg) {
  (void)self; (void)visit; (void)arg;
  return 0;                                /* holds no strong reference */
}
static void weakref_clear(void *self) { pmi_gc_weak_forget(self); }
/* Does nothing; it is there so that every live weakref counts in
 * pmi_gc.special until it dies, which keeps collections that meet one on
 * the slow steps (a garbage weakref must be cleared before finalizers). */
static void weakref_finalize(void *self) { (void)self; }

const pm_type pmi_gc_weakref_type = {
  "weakref", sizeof(pmi_gc_weakref), weakref_traverse, weakref_clear, weakref_finalize
};

static inline size_t weak_hash(const void *k, size_t mask) {
  return (size_t)(((uintptr_t)k >> 4) * 0x9E3779B97F4A7C15ull >> 20) & mask;
}

static weak_entry *weak_find(const void *k) {
  if (!weak_map.cap) return NULL;
  size_t mask = weak_map.cap - 1;
  for (size_t i = weak_hash(k, mask);; i = (i + 1) & mask) {
    if (weak_map.slots[i].key == k) return &weak_map.slots[i];
    if (weak_map.slots[i].key == NULL) return NULL;
  }
}

static bool weak_grow(void) {
  size_t ncap = weak_map.cap ? weak_map.cap * 2 : 64;
  weak_entry *ns = pm_calloc(ncap, sizeof *ns);
  if (!ns) return false;
  for (size_t j = 0; j < weak_map.cap; j++) {
    weak_entry *e = &weak_map.slots[j];
    if (!e->key) continue;
    size_t i = weak_hash(e->key, ncap - 1);
    while (ns[i].key) i = (i + 1) & (ncap - 1);
    ns[i] = *e;
  }
  pm_free(weak_map.slots);
  weak_map.slots = ns;
  weak_map.cap = ncap;
  return true;
}

static weak_entry *weak_insert(void *k) {
  if ((weak_map.len + 1) * 2 > weak_map.cap && !weak_grow()) return NULL;
  size_t mask = weak_map.cap - 1;
  size_t i = weak_hash(k, mask);
  while (weak_map.slots[i].key) i = (i + 1) & mask;
  weak_map.slots[i].key = k;
  weak_map.slots[i].head = NULL;
  weak_map.len++;
  return &weak_map.slots[i];
}

/* Backward-shift deletion keeps every probe sequence unbroken. */
static void weak_remove(weak_entry *e) {
  size_t mask = weak_map.cap - 1;
  size_t i = (size_t)(e - weak_map.slots);
  for (size_t j = (i + 1) & mask; weak_map.slots[j].key; j = (j + 1) & mask) {
    size_t home = weak_hash(weak_map.slots[j].key, mask);
    /* slot j may move to i if its home does not lie cyclically in (i, j] */
    if (((j - home) & mask) >= ((j - i) & mask)) {
      weak_map.slots[i] = weak_map.slots[j];
      i = j;
    }
  }
  weak_map.slots[i].key = NULL;
  weak_map.slots[i].head = NULL;
  weak_map.len--;
}

PM_API int pm_is_weakref(const void *o) {
  return pm_typeof(o) == &pmi_gc_weakref_type;
}

static pmi_gc_weakref *as_weakref(void *w, const char *what) {
  if (pm_typeof(w) != &pmi_gc_weakref_type)
    pmi_obj_fatal(w, "%s(%p): not a weak reference (a '%s')", what, w, pm_typeof(w)->name);
  return w;
}

PM_API void *pm_weakref_new(void *o, void (*callback)(void *, void *), void *arg) {
  pmi_obj_head *h = pmi_obj_head_of(o);
  if ((h->tinfo_ & PMI_GC_MAGIC_MASK) != PMI_GC_MAGIC || h->refcnt_ == 0)
    pm_object_bad_(o, "pm_weakref_new");
  pmi_gc_weakref *w = pm_new(&pmi_gc_weakref_type);
  if (!w) return NULL;
  weak_entry *e = (h->tinfo_ & PMI_GC_F_HASWEAK) ? weak_find(o) : weak_insert(o);
  if (!e) { pm_decref(w); errno = ENOMEM; return NULL; }
  w->referent = o;
  w->callback = callback;
  w->arg = arg;
  w->next = e->head;
  if (e->head) e->head->prev = w;
  e->head = w;
  if (!(h->tinfo_ & PMI_GC_F_HASWEAK)) pmi_gc.special++;
  h->tinfo_ |= PMI_GC_F_HASWEAK;
  return w;
}

PM_API void *pm_weakref_get(void *weakref) {
  pmi_gc_weakref *w = as_weakref(weakref, "pm_weakref_get");
  if (!w->referent) return NULL;
  pm_incref(w->referent);
  return w->referent;
}

void pmi_gc_weak_forget(void *self) {
  pmi_gc_weakref *w = self;
  if (!w->referent) return;
  if (w->prev) {
    w->prev->next = w->next;
  } else {
    weak_entry *e = weak_find(w->referent);
    e->head = w->next;
    if (!e->head) {
      weak_remove(e);
      pmi_obj_head_of(w->referent)->tinfo_ &= ~PMI_GC_F_HASWEAK;
      pmi_gc.special--;
    }
  }
  if (w->next) w->next->prev = w->prev;
  w->referent = NULL;
  w->prev = w->next = NULL;
}

void pmi_gc_weak_run_callback(void *self) {
  pmi_gc_weakref *w = self;
  pmi_gc.callback_depth++;
  w->callback(w, w->arg);
  pmi_gc.callback_depth--;
  pm_decref(w);
}

void pmi_gc_weak_clear_refs(void *o, bool run_callbacks_now, pmi_gc_vec *deferred) {
  weak_entry *e = weak_find(o);
  if (pmi_obj_head_of(o)->tinfo_ & PMI_GC_F_HASWEAK) pmi_gc.special--;
  pmi_obj_head_of(o)->tinfo_ &= ~PMI_GC_F_HASWEAK;
  if (!e) return;
  pmi_gc_weakref *w = e->head;
  weak_remove(e);
  /* Detach every weakref before any callback runs, so each callback sees
   * all of them cleared (PyObject_ClearWeakRefs does the same). */
  pmi_gc_vec local = { 0 };
  pmi_gc_vec *todo = run_callbacks_now ? &local : deferred;
  while (w) {
    pmi_gc_weakref *next = w->next;
    w->referent = NULL;
    w->prev = w->next = NULL;
    /* A weakref in the same collection's garbage gets no callback. */
    if (w->callback && !(pmi_obj_head_of(w)->tinfo_ & PMI_GC_F_COLL)) {
      pm_incref(w);                       /* alive until its callback returned */
      if (!pmi_gc_vec_push(todo, w))
        pmi_obj_fatal(w, "out of memory queueing weakref callbacks");
    }
    w = next;
  }
  if (run_callbacks_now) {
    for (size_t i = 0; i < local.len; i++) pmi_gc_weak_run_callback(local.v[i]);
    pmi_gc_vec_free(&local);
  }
}
