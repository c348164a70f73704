/* The cycle collector: generations, thresholds, one collection, and the
 * gc-module API around them (CPython 3.12's Modules/gcmodule.c semantics).
 *
 * A collection of generations 0..n (collect_main):
 *   take     the tables of 0..n-1 are appended to n's, worked on in place;
 *   subtract traverse each member; every reference to a member decrements
 *            its gc_refs, which starts as its refcnt on first sight (no pass
 *            of its own); now gc_refs > 0 exactly for the members referenced
 *            from outside (the roots);
 *   mark     from each root, traverse and MARK the members with gc_refs 0 it
 *            reaches.  Only those need a mark, so the walk stops once all of
 *            them are marked: with everything referenced from outside, or
 *            with nothing, it costs nothing;
 *   split    reachable members go to generation n+1 (n = 2: stay in 2, the
 *            table compacted in place); the rest is unreachable[], each entry
 *            pinned (one reference of the collector's);
 *   slow steps, only if some unreachable object has weakrefs, is a weakref,
 *            or has a finalizer still to run: unpin; clear the weakrefs
 *            (3.12's handle_weakrefs) and run the callbacks of those not
 *            unreachable themselves; finalize; recheck (subtract and mark
 *            again inside unreachable[]): what a finalizer made reachable
 *            survives; pin the rest again;
 *   delete   SAVEALL: the pins become the garbage list's references.
 *            Otherwise clear every entry, then drop every pin: what reaches
 *            zero is freed on the spot, what does not is still referenced
 *            and moves to the old generation.
 *   shortcut when the find step found no root at all and pmi_gc.special is
 *            0 (no finalizer due, no weakref, anywhere), split, pins and the
 *            slow steps are skipped: delete_all_garbage clears and frees
 *            table n as it stands.
 *
 * Why tables instead of CPython's doubly linked lists: the passes read the
 * headers in table order, which is allocation order, so memory is walked
 * mostly forwards, and nothing is spliced per object.  Why the pins: CPython
 * clears one object at a time and lets each death cascade through nested
 * deallocations; clearing all before freeing any frees each object exactly
 * once, in table order, with a short loop and no user code between.  The
 * order is invisible to programs: no finalizer or weakref is left to run
 * when the delete step starts (those that are go through object.c).
 */
#include "gc/gc_internal.h"
#include "base/clock.h"
#include "base/syscall.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

pmi_gc_state pmi_gc = {
  .gens = { { .threshold = 700 }, { .threshold = 10 }, { .threshold = 10 }, { .threshold = 0 } },
  .enabled = 1,
};

/* ---- growable arrays ----------------------------------------------------- */

/* Tables of 1 MiB and more are mapped directly and grown with mremap: the
 * kernel moves the pages instead of copying them, and no outgrown copy stays
 * resident in a heap (which doubled the memory per object when tables grew
 * by realloc).  Smaller ones come from the pools.  Which one a table is
 * follows from its capacity alone:  mapped <=> cap * 8 >= PMI_GC_MAP_MIN. */
#define PMI_GC_MAP_MIN ((size_t)1 << 20)

static bool table_mapped(size_t cap) { return cap * sizeof(void *) >= PMI_GC_MAP_MIN; }

static pmi_noinline bool vec_grow(void ***v, size_t *cap, size_t need) {
  size_t ncap = *cap ? *cap : 256;
  while (ncap < need) ncap *= 2;
  size_t nbytes = ncap * sizeof(void *), obytes = *cap * sizeof(void *);
  void **nv;
  if (!table_mapped(ncap)) {
    nv = pm_realloc(*v, nbytes);
  } else if (table_mapped(*cap)) {
    nv = mremap(*v, obytes, nbytes, MREMAP_MAYMOVE);
    if (nv == MAP_FAILED) nv = NULL;
  } else {
    nv = pmi_sys_mmap(nbytes);
    if (nv == MAP_FAILED) nv = NULL;
    if (nv && *v) { memcpy(nv, *v, obytes); pm_free(*v); }
  }
  if (!nv) return false;
  *v = nv;
  *cap = ncap;
  return true;
}

void pmi_gc_vec_free(pmi_gc_vec *v) {
  if (table_mapped(v->cap)) pmi_sys_munmap(v->v, v->cap * sizeof(void *));
  else pm_free(v->v);
  *v = (pmi_gc_vec){ 0 };
}

bool pmi_gc_vec_push(pmi_gc_vec *v, void *o) {
  if (pmi_unlikely(v->len == v->cap) && !vec_grow(&v->v, &v->cap, v->len + 1)) return false;
  v->v[v->len++] = o;
  return true;
}

static void vec_push_or_die(pmi_gc_vec *v, void *o) {
  if (!pmi_gc_vec_push(v, o)) pmi_obj_fatal(o, "out of memory in the collector's work lists");
}

static pmi_noinline void gen_grow(pmi_gc_gen *g, size_t need) {
  size_t cap = g->cap;
  if (need > ((size_t)1 << 31) || !vec_grow(&g->objs, &cap, need))
    pmi_obj_fatal(NULL, "out of memory growing a generation table (%zu objects)", need);
  g->cap = (uint32_t)cap;                             /* a power of two <= 2^31 */
}

static inline void gen_append(pmi_gc_gen *g, unsigned gi, pmi_obj_head *h, void *o) {
  if (pmi_unlikely(g->len == g->cap)) gen_grow(g, (size_t)g->len + 1);
  h->slot_ = g->len;
  g->objs[g->len++] = o;
  h->tinfo_ = (h->tinfo_ & ~(PMI_GC_F_GEN | PMI_GC_F_COLL | PMI_GC_F_MARK | PMI_GC_F_SEEN))
              | PMI_GC_F_TRACKED | ((uintptr_t)gi << PMI_GC_F_SHIFT);
}

/* ---- tracking ------------------------------------------------------------ */

void pmi_gc_track(pmi_obj_head *h, void *o) {
  gen_append(&pmi_gc.gens[0], 0, h, o);
}

void pmi_gc_untrack(pmi_obj_head *h, void *o) {
  if (!(h->tinfo_ & PMI_GC_F_TRACKED)) return;
  if (pmi_gc.deleting && (h->tinfo_ & PMI_GC_F_SEEN)) {
    h->tinfo_ &= ~PMI_GC_F_TRACKED;          /* in delete_all_garbage's set: a flag only */
    return;
  }
  if (h->tinfo_ & PMI_GC_F_COLL) {
    /* In the unreachable set of the running collection.  While entries are
     * pinned nothing dies, and this is the program's own untrack from a
     * clear: the entry stays (with its pin) and the delete step sees that
     * TRACKED is gone.  Otherwise slot is the index: leave a hole that the
     * collector skips. */
    if (pmi_gc.pinned) {
      h->tinfo_ &= ~PMI_GC_F_TRACKED;
      return;
    }
    pmi_gc.unreachable.v[h->slot_] = NULL;
  } else {
    pmi_gc_gen *g = &pmi_gc.gens[pmi_obj_gen(h)];
    uint32_t i = h->slot_;
    void *last = g->objs[--g->len];
    g->objs[i] = last;
    pmi_obj_head_of(last)->slot_ = i;
  }
  h->tinfo_ &= ~(PMI_GC_F_TRACKED | PMI_GC_F_COLL | PMI_GC_F_MARK | PMI_GC_F_SEEN | PMI_GC_F_GEN);
  (void)o;
}

/* ---- one collection ------------------------------------------------------ */

/* The find step's state, passed to the visit functions. */
#define PMI_GC_BATCH 64               /* references queued before they are counted */
typedef struct find_ctx {
  unsigned mask;                      /* bit c set <=> membership code c belongs to S */
  size_t   zeros;                     /* see gc_internal.h */
  uintptr_t near;                     /* the object being traversed */
  size_t   n;                         /* references queued in buf */
  void    *buf[PMI_GC_BATCH];
} find_ctx;

static inline bool is_member(uintptr_t tinfo, unsigned mask) {
  return (mask >> ((tinfo >> PMI_GC_F_SHIFT) & 15)) & 1;
}

/* One reference to r from a member: gc_refs(r)--, initialised on first
 * sight.  Branch-free on SEEN, which is random in a random graph. */
static inline void subtract_one(find_ctx *c, void *r) {
  pmi_obj_head *h = pmi_obj_head_of(r);
  uintptr_t ti = h->tinfo_;
  if (!is_member(ti, c->mask)) return;
  uint32_t base = (ti & PMI_GC_F_SEEN) ? h->slot_ : h->refcnt_;
  h->tinfo_ = ti | PMI_GC_F_SEEN;
  h->slot_ = base - 1;
  c->zeros += base == 1;
}

static pmi_noinline void subtract_flush(find_ctx *c) {
  for (size_t i = 0; i < c->n; i++) subtract_one(c, c->buf[i]);
  c->n = 0;
}

/* Why a batch: in a graph laid out at random each reference is a cache miss
 * on its target's header.  The visit only prefetches the header and queues
 * the reference; the counting happens a batch later, in a tight loop, with
 * many misses in flight instead of one.  A target within a pool's distance
 * of the object being traversed is most likely cached already (lists,
 * rings, trees built in order): it is counted at once. */
static int visit_subtract(void *r, void *arg) {
  find_ctx *c = arg;
  if (((uintptr_t)r - c->near + 4096) < 8192) {
    subtract_one(c, r);
    return 0;
  }
  __builtin_prefetch(pmi_obj_head_of(r), 1);
  if (pmi_unlikely(c->n == PMI_GC_BATCH)) subtract_flush(c);
  c->buf[c->n++] = r;
  return 0;
}

static int visit_mark(void *r, void *arg) {
  find_ctx *c = arg;
  pmi_obj_head *h = pmi_obj_head_of(r);
  uintptr_t ti = h->tinfo_;
  if (is_member(ti, c->mask) && !(ti & PMI_GC_F_MARK) && h->slot_ == 0) {
    h->tinfo_ = ti | PMI_GC_F_MARK;
    c->zeros--;
    vec_push_or_die(&pmi_gc.stack, r);
  }
  return 0;
}

static inline void traverse(void *o, pm_visit_fn visit, void *arg) {
  pmi_obj_type(pmi_obj_head_of(o))->traverse(o, visit, arg);
}

/* subtract and mark over the members v[0..len) (NULL entries skipped).
 * After it, reachable(o) <=> gc_refs(o) > 0 || MARK(o), for every member.
 * Returns false when no member is reachable. */
static bool find_reachable(void **v, size_t len, unsigned mask) {
  find_ctx c = { .mask = mask };
  size_t members = 0;
  for (size_t i = 0; i < len; i++) {
    void *o = v[i];
    if (!o) continue;
    pmi_obj_head *h = pmi_obj_head_of(o);
    uintptr_t ti = h->tinfo_;
    if (!(ti & PMI_GC_F_SEEN)) {
      h->tinfo_ = ti | PMI_GC_F_SEEN;
      h->slot_ = h->refcnt_;
      c.zeros += h->refcnt_ == 0;      /* never for a sound object; counted to stay exact */
    }
    members++;
    c.near = (uintptr_t)o;
    traverse(o, visit_subtract, &c);
    if (c.n >= PMI_GC_BATCH / 2) subtract_flush(&c);
  }
  subtract_flush(&c);
  if (c.zeros == members) return false;              /* no root */
  if (c.zeros == 0) return true;                     /* all roots */
  for (size_t i = 0; i < len && c.zeros > 0; i++) {
    if (!v[i] || pmi_obj_head_of(v[i])->slot_ == 0) continue;
    traverse(v[i], visit_mark, &c);
    while (pmi_gc.stack.len > 0 && c.zeros > 0) {
      void *p = pmi_gc.stack.v[--pmi_gc.stack.len];
      traverse(p, visit_mark, &c);
    }
  }
  pmi_gc.stack.len = 0;
  return true;
}

static inline bool is_reachable(const pmi_obj_head *h) {
  return h->slot_ > 0 || (h->tinfo_ & PMI_GC_F_MARK);
}

static uint64_t now_ns(void) { return pmi_clock_ns(); }

#define PMI_GC_CALLOUT(stmt) do { pmi_gc.callback_depth++; stmt; pmi_gc.callback_depth--; } while (0)

static long collect_done(int n, uint64_t t0, long collected) {
  pmi_gc_state *s = &pmi_gc;
#if PM_CHECKS
  if (s->special < 0) pmi_obj_fatal(NULL, "internal: pmi_gc.special is %ld", s->special);
#endif
  uint64_t dt = now_ns() - t0;
  pmi_gc_genstats *st = &s->stats[n];
  st->collections++;
  st->collected += collected;
  st->pause_total_ns += dt;
  if (dt > st->pause_max_ns) st->pause_max_ns = dt;
  if (s->debug & PM_GC_DEBUG_STATS)
    fprintf(stderr, "gc: done, %ld unreachable, 0 uncollectable, %.4fs elapsed\n",
            collected, (double)dt / 1e9);
  return collected;
}

/* Every member of table n is garbage, none has a finalizer due or a weakref
 * (pmi_gc.special == 0), and the collected set is table n itself.  Instead
 * of splitting it into unreachable[] and pinning each entry, the table's
 * buffer is taken as it is (generation n gets the spare one), every object
 * is cleared, then every object whose count fell to 0 is freed.  While
 * pmi_gc.deleting, a count falling to 0 on an object of the set (SEEN, left
 * by the find step) stops there instead of destroying it: that is what the
 * pins do on the general path, one pass cheaper.  A clear may untrack or
 * track such an object; that only toggles TRACKED, which the second pass
 * obeys for the rare object still referenced after all clears. */
static pmi_noinline long delete_all_garbage(int n, unsigned old, size_t len) {
  pmi_gc_state *s = &pmi_gc;
  pmi_gc_gen *yg = &s->gens[n], *og = &s->gens[old];
  void **v = yg->objs;
  size_t vcap = yg->cap;
  yg->objs = s->spare.v;
  yg->cap = (uint32_t)s->spare.cap;
  yg->len = 0;
  s->spare = (pmi_gc_vec){ 0 };
  if (n == 2) { s->long_lived_pending = 0; s->long_lived_total = 0; }

  if (s->debug & PM_GC_DEBUG_COLLECTABLE)
    for (size_t i = 0; i < len; i++)
      fprintf(stderr, "gc: collectable <%s %p>\n", pmi_obj_type(pmi_obj_head_of(v[i]))->name, v[i]);

  s->deleting = 1;
  s->callback_depth++;
  for (size_t i = 0; i < len; i++) {
    const pm_type *t = pmi_obj_type(pmi_obj_head_of(v[i]));
    if (t->clear) t->clear(v[i]);
  }
  s->callback_depth--;
  s->deleting = 0;
  long freed = 0, kept = 0;
  for (size_t i = 0; i < len; i++) {
    void *o = v[i];
    pmi_obj_head *h = pmi_obj_head_of(o);
    if (pmi_likely(h->refcnt_ == 0)) {
      h->tinfo_ = 0;
      pm_free(h);
      freed++;
    } else if (h->tinfo_ & PMI_GC_F_TRACKED) {        /* still referenced: lives on */
      gen_append(og, old, h, o);
      kept++;
    } else {
      h->tinfo_ &= ~(PMI_GC_F_SEEN | PMI_GC_F_MARK | PMI_GC_F_GEN);
      kept++;
    }
  }
  s->gens[0].count = s->gens[0].count > freed ? s->gens[0].count - freed : 0;
  if (n == 2) s->long_lived_total = kept;
  /* The old buffer is the next spare, unless it is big. */
  pmi_gc_vec spare = { v, 0, vcap };
  if (vcap > 65536) pmi_gc_vec_free(&spare);
  else s->spare = spare;
  return (long)len - kept;
}

static long collect_main(int n) {
  uint64_t t0 = now_ns();
  pmi_gc_state *s = &pmi_gc;
  const unsigned old = n < 2 ? (unsigned)n + 1 : 2;

  if (s->debug & PM_GC_DEBUG_STATS) {
    fprintf(stderr, "gc: collecting generation %d...\n", n);
    fprintf(stderr, "gc: objects in each generation: %u %u %u\n",
            s->gens[0].len, s->gens[1].len, s->gens[2].len);
    fprintf(stderr, "gc: objects in permanent generation: %u\n", s->gens[3].len);
  }
  if (n + 1 < PMI_GC_NGEN) s->gens[n + 1].count++;
  for (int i = 0; i <= n; i++) s->gens[i].count = 0;

  /* take: the younger tables are appended to generation n's (CPython merges
   * them the same way), which the collection then works on in place. */
  pmi_gc_gen *yg = &s->gens[n];
  for (int i = 0; i < n; i++) {
    pmi_gc_gen *g = &s->gens[i];
    if (g->len == 0) continue;
    if ((size_t)yg->len + g->len > yg->cap) gen_grow(yg, (size_t)yg->len + g->len);
    memcpy(yg->objs + yg->len, g->objs, g->len * sizeof(void *));
    yg->len += g->len;
    g->len = 0;
  }
  void **v = yg->objs;
  size_t len = yg->len;

  /* members: tracked, generation 0..n, not COLL */
  bool any_root = find_reachable(v, len, ((1u << (n + 1)) - 1) << 4);

  /* All garbage, and no finalizer due nor weakref anywhere: the common
   * case gets a shorter path (see delete_all_garbage). */
  if (!any_root && s->special == 0 && !(s->debug & PM_GC_DEBUG_SAVEALL) && len > 0) {
    long collected = delete_all_garbage(n, old, len);
    return collect_done(n, t0, collected);
  }

  /* split: the reachable go to the old generation (for n == 2 that is the
   * same table, compacted in place: the write index never passes the read
   * index).  The unreachable get a pin, a reference of the collector's, so
   * none of them can die before the delete step decides; and we note
   * whether any needs the slow steps (weakrefs, finalizers). */
  pmi_gc_gen *og = &s->gens[old];
  pmi_gc_vec *u = &s->unreachable;
  u->len = 0;
  yg->len = 0;
  size_t survivors = 0;
  bool slow = false;
  if (og != yg && og->cap < (size_t)og->len + len) gen_grow(og, (size_t)og->len + len);
  /* Room for all of them at once: one growth instead of a doubling series
   * (a mapped table only costs the pages that get written). */
  if (u->cap < len && !vec_grow(&u->v, &u->cap, len))
    pmi_obj_fatal(NULL, "out of memory starting a collection of %zu objects", len);
  for (size_t i = 0; i < len; i++) {
    void *o = v[i];
    pmi_obj_head *h = pmi_obj_head_of(o);
    if (is_reachable(h)) {
      gen_append(og, old, h, o);
      survivors++;
    } else {
      h->tinfo_ = (h->tinfo_ & ~(PMI_GC_F_MARK | PMI_GC_F_SEEN)) | PMI_GC_F_COLL;
      h->slot_ = (uint32_t)u->len;
      h->refcnt_++;
      u->v[u->len++] = o;                 /* room was made above */
      if (s->special) {                 /* else none can need the slow steps */
        const pm_type *t = pmi_obj_type(h);
        if ((h->tinfo_ & PMI_GC_F_HASWEAK) || t == &pmi_gc_weakref_type ||
            (t->finalize && !(h->tinfo_ & PMI_GC_F_FINALIZED)))
          slow = true;
      }
    }
  }
  s->pinned = 1;
  if (n == 1) s->long_lived_pending += (long)survivors;
  if (n == 2) { s->long_lived_pending = 0; s->long_lived_total = (long)survivors; }

  if (s->debug & PM_GC_DEBUG_COLLECTABLE)
    for (size_t i = 0; i < u->len; i++)
      fprintf(stderr, "gc: collectable <%s %p>\n",
              pmi_obj_type(pmi_obj_head_of(u->v[i]))->name, u->v[i]);

  if (slow) {
    for (size_t i = 0; i < u->len; i++) pmi_obj_head_of(u->v[i])->refcnt_--;   /* unpin */
    s->pinned = 0;

    /* weakrefs (3.12's handle_weakrefs): a weakref that is garbage itself
     * is cleared, so no finalizer can reach its referent through it; then
     * the weakrefs to the garbage are cleared, all before any callback runs. */
    pmi_gc_vec cbs = { 0 };
    for (size_t i = 0; i < u->len; i++)
      if (pmi_obj_type(pmi_obj_head_of(u->v[i])) == &pmi_gc_weakref_type)
        pmi_gc_weak_forget(u->v[i]);
    for (size_t i = 0; i < u->len; i++)
      if (pmi_obj_head_of(u->v[i])->tinfo_ & PMI_GC_F_HASWEAK)
        pmi_gc_weak_clear_refs(u->v[i], false, &cbs);
    for (size_t i = 0; i < cbs.len; i++) pmi_gc_weak_run_callback(cbs.v[i]);
    pmi_gc_vec_free(&cbs);

    /* finalize, once per object ever.  A death here NULLs its entry. */
    bool finalized_any = false;
    for (size_t i = 0; i < u->len; i++) {
      void *o = u->v[i];
      if (!o) continue;
      pmi_obj_head *h = pmi_obj_head_of(o);
      const pm_type *t = pmi_obj_type(h);
      if (t->finalize && !(h->tinfo_ & PMI_GC_F_FINALIZED)) {
        h->tinfo_ |= PMI_GC_F_FINALIZED;
        s->special--;
        finalized_any = true;
        pm_incref(o);
        PMI_GC_CALLOUT(t->finalize(o));
        pm_decref(o);
      }
    }

    /* recheck: whatever a finalizer made reachable again survives. */
    /* members: tracked and COLL, any generation bits */
    if (finalized_any) find_reachable(u->v, u->len, 0xFu << 12);
    size_t w = 0;
    for (size_t i = 0; i < u->len; i++) {
      void *o = u->v[i];
      if (!o) continue;
      pmi_obj_head *h = pmi_obj_head_of(o);
      if (finalized_any && is_reachable(h)) {
        gen_append(og, old, h, o);
      } else {
        h->tinfo_ &= ~(PMI_GC_F_MARK | PMI_GC_F_SEEN);
        h->slot_ = (uint32_t)w;
        h->refcnt_++;                                   /* pin again */
        u->v[w++] = o;
      }
    }
    u->len = w;
    s->pinned = 1;
  }

  /* delete.  Every entry is pinned, so clearing one never frees another
   * under our feet: first clear them all, then drop the pins; what reaches
   * zero is freed (through object.c only if weakrefs or a finalizer are
   * still due), what does not is still referenced and lives on. */
  long collected = (long)u->len;
  if (s->debug & PM_GC_DEBUG_SAVEALL) {
    for (size_t i = 0; i < u->len; i++) {               /* the pin becomes the list's reference */
      void *o = u->v[i];
      vec_push_or_die(&s->garbage, o);
      gen_append(og, old, pmi_obj_head_of(o), o);
    }
  } else {
    pmi_gc.callback_depth++;
    for (size_t i = 0; i < u->len; i++) {
      void *o = u->v[i];                                /* never NULL while pinned */
      const pm_type *t = pmi_obj_type(pmi_obj_head_of(o));
      if (t->clear) t->clear(o);
    }
    pmi_gc.callback_depth--;
    long freed = 0;
    for (size_t i = 0; i < u->len; i++) {
      void *o = u->v[i];
      pmi_obj_head *h = pmi_obj_head_of(o);
      if (pmi_unlikely(!(h->tinfo_ & PMI_GC_F_COLL))) {
        /* A clear untracked and tracked it again: an ordinary object now,
         * in generation 0; its pin is dropped the ordinary way. */
        collected--;
        pm_decref(o);
      } else if (--h->refcnt_ != 0) {                   /* still referenced */
        if (h->tinfo_ & PMI_GC_F_TRACKED) gen_append(og, old, h, o);
        else h->tinfo_ &= ~PMI_GC_F_COLL;               /* untracked by a clear: stays so */
      } else if ((h->tinfo_ & PMI_GC_F_HASWEAK) ||
                 (slow && pmi_obj_type(h)->finalize && !(h->tinfo_ & PMI_GC_F_FINALIZED))) {
        /* Rare: a finalizer or a clear made a new weakref to it, say.  (A
         * finalizer still due implies slow: the split saw it.) */
        h->tinfo_ &= ~(PMI_GC_F_TRACKED | PMI_GC_F_COLL | PMI_GC_F_GEN);
        pmi_obj_destroy_chain(o);
      } else {
        h->tinfo_ = 0;
        pm_free(h);
        freed++;
      }
    }
    s->gens[0].count = s->gens[0].count > freed ? s->gens[0].count - freed : 0;
  }
  u->len = 0;
  s->pinned = 0;
  if (u->cap > 65536) pmi_gc_vec_free(u);             /* a big one is rare: give it back */
  if (s->stack.cap > 65536) pmi_gc_vec_free(&s->stack);

  return collect_done(n, t0, collected);
}

static long collect_with_callback(int n) {
  pmi_gc.collecting = 1;
  for (int i = 0; i < pmi_gc.ncallbacks; i++)
    PMI_GC_CALLOUT(pmi_gc.callbacks[i].fn("start", n, 0, 0, pmi_gc.callbacks[i].arg));
  long r = collect_main(n);
  for (int i = 0; i < pmi_gc.ncallbacks; i++)
    PMI_GC_CALLOUT(pmi_gc.callbacks[i].fn("stop", n, r, 0, pmi_gc.callbacks[i].arg));
  pmi_gc.collecting = 0;
  return r;
}

/* gc_collect_generations: the oldest generation over its threshold, except
 * that a full collection also waits for pending > total / 4. */
static pmi_noinline void collect_generations(void) {
  for (int i = PMI_GC_NGEN - 1; i >= 0; i--) {
    if (pmi_gc.gens[i].count > pmi_gc.gens[i].threshold) {
      if (i == PMI_GC_NGEN - 1 && pmi_gc.long_lived_pending < pmi_gc.long_lived_total / 4) continue;
      collect_with_callback(i);
      break;
    }
  }
}

void pmi_gc_maybe_collect(void) {
  pmi_gc_state *s = &pmi_gc;
  if (s->gens[0].count > s->gens[0].threshold && s->gens[0].threshold > 0 && s->enabled &&
      !s->collecting && s->callback_depth == 0 && s->dealloc_depth == 0)
    collect_generations();
}

/* ---- the gc-module API --------------------------------------------------- */

PM_API long pm_gc_collect(int generation) {
  if (generation < 0 || generation >= PMI_GC_NGEN) { errno = EINVAL; return -1; }
  pmi_gc_use();
  if (pmi_gc.collecting) return 0;
  return collect_with_callback(generation);
}

PM_API void pm_gc_enable(void)    { pmi_gc.enabled = 1; }
PM_API void pm_gc_disable(void)   { pmi_gc.enabled = 0; }
PM_API int  pm_gc_isenabled(void) { return pmi_gc.enabled; }

PM_API void pm_gc_set_threshold(long t0, long t1, long t2) {
  pmi_gc.gens[0].threshold = t0;
  pmi_gc.gens[1].threshold = t1;
  pmi_gc.gens[2].threshold = t2;
}

PM_API void pm_gc_get_threshold(long t[3]) {
  for (int i = 0; i < 3; i++) t[i] = pmi_gc.gens[i].threshold;
}

PM_API void pm_gc_get_count(long c[3]) {
  for (int i = 0; i < 3; i++) c[i] = pmi_gc.gens[i].count;
}

PM_API void pm_gc_get_stats(pm_gc_stats s[3]) {
  for (int i = 0; i < 3; i++) {
    s[i].collections = pmi_gc.stats[i].collections;
    s[i].collected = pmi_gc.stats[i].collected;
    s[i].uncollectable = pmi_gc.stats[i].uncollectable;
  }
}

void pmi_gc_stats_snapshot(pmi_gc_stats_report *out) {
  memset(out, 0, sizeof *out);
  out->used = pmi_gc.used;
  memcpy(out->gen, pmi_gc.stats, sizeof out->gen);
  out->tracked = (size_t)pmi_gc.gens[0].len + pmi_gc.gens[1].len + pmi_gc.gens[2].len;
  out->frozen = pmi_gc.gens[PMI_GC_PERMANENT].len;
}

PM_API void pm_gc_set_debug(int flags) { pmi_gc.debug = flags; }
PM_API int  pm_gc_get_debug(void)      { return pmi_gc.debug; }

PM_API size_t pm_gc_garbage_count(void) { return pmi_gc.garbage.len; }
PM_API void *pm_gc_garbage_get(size_t i) {
  return i < pmi_gc.garbage.len ? pmi_gc.garbage.v[i] : NULL;
}
PM_API void pm_gc_garbage_clear(void) {
  /* Take the list first: releasing an object may run code that saves more. */
  pmi_gc_vec g = pmi_gc.garbage;
  pmi_gc.garbage = (pmi_gc_vec){ 0 };
  for (size_t i = 0; i < g.len; i++) pm_decref(g.v[i]);
  pmi_gc_vec_free(&g);
}

static void gen_move_all(unsigned from, unsigned to) {
  pmi_gc_gen *f = &pmi_gc.gens[from], *t = &pmi_gc.gens[to];
  if (t->cap < (size_t)t->len + f->len) gen_grow(t, (size_t)t->len + f->len);
  for (uint32_t i = 0; i < f->len; i++) gen_append(t, to, pmi_obj_head_of(f->objs[i]), f->objs[i]);
  f->len = 0;
}

PM_API void pm_gc_freeze(void) {
  pmi_gc_use();
  for (unsigned i = 0; i < PMI_GC_NGEN; i++) gen_move_all(i, PMI_GC_PERMANENT);
  pmi_gc.gens[0].count = 0;
}
PM_API void pm_gc_unfreeze(void) { gen_move_all(PMI_GC_PERMANENT, PMI_GC_NGEN - 1); }
PM_API size_t pm_gc_get_freeze_count(void) { return pmi_gc.gens[PMI_GC_PERMANENT].len; }

static pmi_obj_head *checked_head(const void *o, const char *what) {
  pmi_obj_head *h = pmi_obj_head_of(o);
  if ((h->tinfo_ & PMI_GC_MAGIC_MASK) != PMI_GC_MAGIC) pm_object_bad_(o, what);
  return h;
}

PM_API int pm_gc_is_tracked(const void *o) {
  return (checked_head(o, "pm_gc_is_tracked")->tinfo_ & PMI_GC_F_TRACKED) != 0;
}
PM_API void pm_gc_track(void *o) {
  pmi_obj_head *h = checked_head(o, "pm_gc_track");
  if (pmi_gc.deleting && (h->tinfo_ & PMI_GC_F_SEEN)) {
    h->tinfo_ |= PMI_GC_F_TRACKED;           /* in delete_all_garbage's set: a flag only */
    return;
  }
  if (!(h->tinfo_ & PMI_GC_F_TRACKED) && pmi_obj_type(h)->traverse) pmi_gc_track(h, o);
}
PM_API void pm_gc_untrack(void *o) {
  pmi_gc_untrack(checked_head(o, "pm_gc_untrack"), o);
}

PM_API size_t pm_gc_get_objects(int generation, void (*each)(void *, void *), void *arg) {
  size_t n = 0;
  for (int g = 0; g < PMI_GC_NGEN; g++) {
    if (generation >= 0 && g != generation) continue;
    for (uint32_t i = 0; i < pmi_gc.gens[g].len; i++, n++)
      if (each) each(pmi_gc.gens[g].objs[i], arg);
  }
  return n;
}

struct referents_ctx { void (*each)(void *, void *); void *arg; size_t n; const void *target; int hit; };

static int visit_referent(void *r, void *arg) {
  struct referents_ctx *c = arg;
  c->n++;
  if (c->each) c->each(r, c->arg);
  return 0;
}

PM_API size_t pm_gc_get_referents(void *o, void (*each)(void *, void *), void *arg) {
  const pm_type *t = pmi_obj_type(checked_head(o, "pm_gc_get_referents"));
  struct referents_ctx c = { each, arg, 0, NULL, 0 };
  if (t->traverse) t->traverse(o, visit_referent, &c);
  return c.n;
}

static int visit_find(void *r, void *arg) {
  struct referents_ctx *c = arg;
  if (r == c->target) { c->hit = 1; return 1; }
  return 0;
}

PM_API size_t pm_gc_get_referrers(void *o, void (*each)(void *, void *), void *arg) {
  struct referents_ctx c = { each, arg, 0, o, 0 };
  for (int g = 0; g < PMI_GC_NGEN; g++) {
    for (uint32_t i = 0; i < pmi_gc.gens[g].len; i++) {
      void *p = pmi_gc.gens[g].objs[i];
      c.hit = 0;
      traverse(p, visit_find, &c);
      if (c.hit) { c.n++; if (each) each(p, arg); }
    }
  }
  return c.n;
}

PM_API int pm_gc_add_callback(void (*cb)(const char *, int, long, long, void *), void *arg) {
  if (pmi_gc.ncallbacks >= (int)(sizeof pmi_gc.callbacks / sizeof pmi_gc.callbacks[0])) return -1;
  pmi_gc.callbacks[pmi_gc.ncallbacks].fn = cb;
  pmi_gc.callbacks[pmi_gc.ncallbacks].arg = arg;
  pmi_gc.ncallbacks++;
  return 0;
}
