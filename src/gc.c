/* The cycle collector: generations, thresholds, one collection, and the
 * gc-module API around them (CPython 3.12's Modules/gcmodule.c semantics).
 *
 * A collection of generations 0..n (collect_main):
 *   take     the tables of 0..n become one array, young[] (oldest first);
 *   copy     gc_refs = refcnt for each (in the header's slot field);
 *   subtract traverse each; every reference to a member decrements its gc_refs;
 *            now gc_refs > 0 exactly for the objects referenced from outside;
 *   mark     from each such root, traverse and MARK the members with gc_refs 0
 *            it reaches.  Only members with gc_refs 0 need a mark, so once all
 *            of them are marked the walk stops: with everything referenced from
 *            outside it costs one header pass and no traverse at all;
 *   split    reachable members go to generation n+1 (n = 2: stay in 2); the
 *            rest is the unreachable set;
 *   weakrefs to the unreachable are cleared; callbacks run for the weakrefs
 *            that are not unreachable themselves;
 *   finalize each unreachable object not finalized before;
 *   recheck  if any finalizer ran: copy/subtract/mark again inside the
 *            unreachable set; what a finalizer made reachable survives;
 *   delete   clear each remaining object (SAVEALL: append it to the garbage
 *            list instead); counts fall to zero and object.c frees them.
 *
 * Why tables instead of CPython's doubly linked lists: the passes read the
 * headers in table order, which is allocation order, so memory is walked
 * mostly forwards, and nothing is spliced per object.  CPython measured about
 * 75 ns per object for this on a 1 M ring; the passes here touch each header
 * three times and each reachable object's payload once or twice.
 */
#include "gc_internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

pmi_gc_state pmi_gc = {
  .gens = { { .threshold = 700 }, { .threshold = 10 }, { .threshold = 10 }, { .threshold = 0 } },
  .enabled = 1,
};

/* ---- growable arrays ----------------------------------------------------- */

static pmi_gc_noinline bool vec_grow(void ***v, size_t *cap, size_t need) {
  size_t ncap = *cap ? *cap : 256;
  while (ncap < need) ncap *= 2;
  void **nv = pm_realloc(*v, ncap * sizeof(void *));
  if (!nv) return false;
  *v = nv;
  *cap = ncap;
  return true;
}

bool pmi_gc_vec_push(pmi_gc_vec *v, void *o) {
  if (pmi_gc_unlikely(v->len == v->cap) && !vec_grow(&v->v, &v->cap, v->len + 1)) return false;
  v->v[v->len++] = o;
  return true;
}

static void vec_push_or_die(pmi_gc_vec *v, void *o) {
  if (!pmi_gc_vec_push(v, o)) pmi_obj_fatal(o, "out of memory in the collector's work lists");
}

static pmi_gc_noinline void gen_grow(pmi_gc_gen *g, size_t need) {
  size_t cap = g->cap;
  if (need > UINT32_MAX || !vec_grow(&g->objs, &cap, need))
    pmi_obj_fatal(NULL, "out of memory growing a generation table (%zu objects)", need);
  g->cap = (uint32_t)(cap > UINT32_MAX ? UINT32_MAX : cap);
}

static inline void gen_append(pmi_gc_gen *g, unsigned gi, pmi_obj_head *h, void *o) {
  if (pmi_gc_unlikely(g->len == g->cap)) gen_grow(g, (size_t)g->len + 1);
  h->slot_ = g->len;
  g->objs[g->len++] = o;
  h->tinfo_ = (h->tinfo_ & ~(PMI_GC_F_GEN | PMI_GC_F_COLL | PMI_GC_F_MARK))
              | PMI_GC_F_TRACKED | ((uintptr_t)gi << PMI_GC_F_SHIFT);
}

/* ---- tracking ------------------------------------------------------------ */

void pmi_gc_track(pmi_obj_head *h, void *o) {
  gen_append(&pmi_gc.gens[0], 0, h, o);
}

void pmi_gc_untrack(pmi_obj_head *h, void *o) {
  (void)o;
  if (!(h->tinfo_ & PMI_GC_F_TRACKED)) return;
  if (h->tinfo_ & PMI_GC_F_COLL) {
    /* In the unreachable set of the running collection, where slot is the
     * index: leave a hole that the collector skips. */
    pmi_gc.unreachable.v[h->slot_] = NULL;
  } else {
    pmi_gc_gen *g = &pmi_gc.gens[pmi_obj_gen(h)];
    uint32_t i = h->slot_;
    void *last = g->objs[--g->len];
    g->objs[i] = last;
    pmi_obj_head_of(last)->slot_ = i;
  }
  h->tinfo_ &= ~(PMI_GC_F_TRACKED | PMI_GC_F_COLL | PMI_GC_F_MARK | PMI_GC_F_GEN);
}

/* ---- one collection ------------------------------------------------------ */

static int visit_subtract(void *r, void *arg) {
  (void)arg;
  pmi_obj_head *h = pmi_obj_head_of(r);
  if (h->tinfo_ & PMI_GC_F_COLL) h->slot_--;
  return 0;
}

static int visit_mark(void *r, void *arg) {
  pmi_obj_head *h = pmi_obj_head_of(r);
  if ((h->tinfo_ & (PMI_GC_F_COLL | PMI_GC_F_MARK)) == PMI_GC_F_COLL && h->slot_ == 0) {
    h->tinfo_ |= PMI_GC_F_MARK;
    (*(size_t *)arg)--;
    vec_push_or_die(&pmi_gc.stack, r);
  }
  return 0;
}

static inline void traverse(void *o, pm_visit_fn visit, void *arg) {
  pmi_obj_type(pmi_obj_head_of(o))->traverse(o, visit, arg);
}

/* copy, subtract and mark over v[0..len) (NULL entries skipped).  After it,
 * reachable(o) <=> gc_refs(o) > 0 || MARK(o), for every member. */
static void find_reachable(void **v, size_t len) {
  for (size_t i = 0; i < len; i++) {
    if (!v[i]) continue;
    pmi_obj_head *h = pmi_obj_head_of(v[i]);
    h->slot_ = h->refcnt_;
    h->tinfo_ = (h->tinfo_ & ~PMI_GC_F_MARK) | PMI_GC_F_COLL;
  }
  for (size_t i = 0; i < len; i++) {
    if (i + 8 < len && v[i + 8]) __builtin_prefetch(pmi_obj_head_of(v[i + 8]));
    if (v[i]) traverse(v[i], visit_subtract, NULL);
  }
  size_t zeros = 0;
  for (size_t i = 0; i < len; i++)
    if (v[i] && pmi_obj_head_of(v[i])->slot_ == 0) zeros++;
  for (size_t i = 0; i < len && zeros > 0; i++) {
    if (!v[i] || pmi_obj_head_of(v[i])->slot_ == 0) continue;
    traverse(v[i], visit_mark, &zeros);
    while (pmi_gc.stack.len > 0 && zeros > 0) {
      void *p = pmi_gc.stack.v[--pmi_gc.stack.len];
      traverse(p, visit_mark, &zeros);
    }
  }
  pmi_gc.stack.len = 0;
}

static inline bool is_reachable(const pmi_obj_head *h) {
  return h->slot_ > 0 || (h->tinfo_ & PMI_GC_F_MARK);
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#define PMI_GC_CALLOUT(stmt) do { pmi_gc.callback_depth++; stmt; pmi_gc.callback_depth--; } while (0)

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

  /* take: young[] = gen n's table (its buffer, no copy), then 0, then 1 as
   * CPython's merges order them; the emptied tables get young's spare buffer. */
  pmi_gc_vec y = { s->gens[n].objs, s->gens[n].len, s->gens[n].cap };
  s->gens[n].objs = s->young.v;
  s->gens[n].cap = (uint32_t)s->young.cap;
  s->gens[n].len = 0;
  s->young = (pmi_gc_vec){ 0 };
  for (int i = 0; i < n; i++) {
    pmi_gc_gen *g = &s->gens[i];
    if (y.len + g->len > y.cap && !vec_grow(&y.v, &y.cap, y.len + g->len))
      pmi_obj_fatal(NULL, "out of memory starting a collection");
    memcpy(y.v + y.len, g->objs, g->len * sizeof(void *));
    y.len += g->len;
    g->len = 0;
  }

  find_reachable(y.v, y.len);

  /* split */
  pmi_gc_gen *og = &s->gens[old];
  pmi_gc_vec *u = &s->unreachable;
  u->len = 0;
  size_t survivors = 0;
  if (og->cap < og->len + y.len) gen_grow(og, og->len + y.len);
  for (size_t i = 0; i < y.len; i++) {
    void *o = y.v[i];
    pmi_obj_head *h = pmi_obj_head_of(o);
    if (is_reachable(h)) {
      gen_append(og, old, h, o);
      survivors++;
    } else {
      h->tinfo_ &= ~PMI_GC_F_MARK;
      h->slot_ = (uint32_t)u->len;
      vec_push_or_die(u, o);
    }
  }
  y.len = 0;
  s->young = y;                       /* keep the buffer for the next one */
  if (n == 1) s->long_lived_pending += (long)survivors;
  if (n == 2) { s->long_lived_pending = 0; s->long_lived_total = (long)survivors; }

  if (s->debug & PM_GC_DEBUG_COLLECTABLE)
    for (size_t i = 0; i < u->len; i++)
      fprintf(stderr, "gc: collectable <%s %p>\n",
              pmi_obj_type(pmi_obj_head_of(u->v[i]))->name, u->v[i]);

  /* weakrefs: clear all first, then run the callbacks (3.12's handle_weakrefs). */
  pmi_gc_vec cbs = { 0 };
  for (size_t i = 0; i < u->len; i++)
    if (pmi_obj_head_of(u->v[i])->tinfo_ & PMI_GC_F_HASWEAK)
      pmi_gc_weak_clear_refs(u->v[i], false, &cbs);
  for (size_t i = 0; i < cbs.len; i++) pmi_gc_weak_run_callback(cbs.v[i]);
  pm_free(cbs.v);

  /* finalize, once per object ever.  A death here NULLs its entry. */
  bool finalized_any = false;
  for (size_t i = 0; i < u->len; i++) {
    void *o = u->v[i];
    if (!o) continue;
    pmi_obj_head *h = pmi_obj_head_of(o);
    const pm_type *t = pmi_obj_type(h);
    if (t->finalize && !(h->tinfo_ & PMI_GC_F_FINALIZED)) {
      h->tinfo_ |= PMI_GC_F_FINALIZED;
      finalized_any = true;
      pm_incref(o);
      PMI_GC_CALLOUT(t->finalize(o));
      pm_decref(o);
    }
  }

  /* recheck: whatever a finalizer made reachable again survives. */
  if (finalized_any) {
    find_reachable(u->v, u->len);
    size_t w = 0;
    for (size_t i = 0; i < u->len; i++) {
      void *o = u->v[i];
      if (!o) continue;
      pmi_obj_head *h = pmi_obj_head_of(o);
      if (is_reachable(h)) {
        gen_append(og, old, h, o);
      } else {
        h->tinfo_ &= ~PMI_GC_F_MARK;
        h->slot_ = (uint32_t)w;
        u->v[w++] = o;
      }
    }
    u->len = w;
  }

  /* delete */
  long collected = 0;
  for (size_t i = 0; i < u->len; i++) collected += u->v[i] != NULL;
  if (s->debug & PM_GC_DEBUG_SAVEALL) {
    for (size_t i = 0; i < u->len; i++) {
      void *o = u->v[i];
      if (!o) continue;
      pm_incref(o);
      vec_push_or_die(&s->garbage, o);
      gen_append(og, old, pmi_obj_head_of(o), o);
    }
  } else {
    for (size_t i = 0; i < u->len; i++) {
      void *o = u->v[i];
      if (!o) continue;
      pmi_obj_head *h = pmi_obj_head_of(o);
      const pm_type *t = pmi_obj_type(h);
      if (t->clear) {
        pm_incref(o);
        PMI_GC_CALLOUT(t->clear(o));
        pm_decref(o);
      }
      if (u->v[i]) gen_append(og, old, h, o);   /* still referenced: lives on in the old one */
    }
  }
  u->len = 0;

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
static pmi_gc_noinline void collect_generations(void) {
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
  pmi_gc.used = 1;
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
  pm_free(g.v);
}

static void gen_move_all(unsigned from, unsigned to) {
  pmi_gc_gen *f = &pmi_gc.gens[from], *t = &pmi_gc.gens[to];
  if (t->cap < (size_t)t->len + f->len) gen_grow(t, (size_t)t->len + f->len);
  for (uint32_t i = 0; i < f->len; i++) gen_append(t, to, pmi_obj_head_of(f->objs[i]), f->objs[i]);
  f->len = 0;
}

PM_API void pm_gc_freeze(void) {
  pmi_gc.used = 1;
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
