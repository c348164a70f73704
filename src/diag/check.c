/* check.c: the invariant checker.  It walks a heap's usedpools, its arenas
 * and their pools, and usable_arenas, and verifies every equation of types.h.
 * Tests call it through pm_check(); the debug build (POOLMALLOC_CHECKS=ON)
 * also has assertions at each splice.  pm_check takes the locks fork takes
 * and repairs the unowned heaps a fork left (pmi_heap_repair_locked) before
 * checking them: a heap is only checked in the state its next user sees. */
#include <string.h>

#include "core/internal.h"

typedef struct checker {
  int errors;
  int verbose;
  const pmi_heap *heap;
  size_t with_held;   /* FULL pools seen with held blocks */
  size_t medium_with_held;   /* FULL medium regions seen with held blocks */
} checker;

#define CHECK(ck, cond, fmt, ...)                                                  \
  do {                                                                             \
    if (!(cond)) {                                                                 \
      (ck)->errors++;                                                              \
      if ((ck)->verbose && (ck)->errors <= 20)                                     \
        pmi_warning("check failed: heap %p: " fmt, (void *)(ck)->heap __VA_OPT__(,) __VA_ARGS__); \
    }                                                                              \
  } while (0)

/* The length of a list of pool's blocks (its free list, or a FULL pool's
 * held list), each a carved block, marked live exactly when held. */
static unsigned block_list_length(checker *ck, pmi_pool *pool, pmi_block *first, bool held) {
  unsigned n = 0;
  char *base = pmi_pool_base(pool);
  size_t size = pmi_class_size(pool->szidx);
  for (pmi_block *b = first; b != (held ? NULL : PMI_LIST_END); b = pmi_link_get(b)) {   /* held lists end in NULL */
    char *cb = (char *)b;
    if (n > pool->capacity || cb < base || cb >= base + (size_t)pool->ncarved * size ||
        (size_t)(cb - base) % size != 0) {
      CHECK(ck, 0, "pool %p: %s list runs outside its carved blocks", (void *)pool, held ? "held" : "free");
      return n;
    }
    unsigned units = pmi_block_units(b);
    CHECK(ck, held == !!(*pmi_live_word(pool, units) & pmi_live_bit(units)), "pool %p: %s block %p marked %s",
          (void *)pool, held ? "held" : "free", (void *)b, held ? "free" : "live");
    if (held) CHECK(ck, b->key == pmi_remote_key, "pool %p: held block %p without the remote mark", (void *)pool, (void *)b);
    n++;
  }
  return n;
}

static void check_pool(checker *ck, pmi_heap *heap, pmi_pool *pool) {
  unsigned used = pmi_pool_nused(heap, pool);   /* less the head's bias */
  CHECK(ck, pool->szidx < PMI_NCLASSES, "pool %p: class %u", (void *)pool, pool->szidx);
  CHECK(ck, pool->capacity == PMI_POOL_SIZE / pmi_class_size(pool->szidx),
        "pool %p: capacity %u", (void *)pool, pool->capacity);
  CHECK(ck, pool->ncarved <= pool->capacity, "pool %p: carved %u > capacity", (void *)pool, pool->ncarved);
  bool full = pool->state == PMI_POOL_FULL;
  unsigned nfree = block_list_length(ck, pool, pool->freeblock, false);
  unsigned held = full ? block_list_length(ck, pool, pool->held, true) : 0;
  /* used - head + held + free + untouched == capacity */
  CHECK(ck, used + held + nfree + (pool->capacity - pool->ncarved) == pool->capacity,
        "pool %p: used %u + held %u + free %u + untouched %u != capacity %u", (void *)pool, used, held, nfree,
        pool->capacity - pool->ncarved, pool->capacity);
  unsigned live = 0;
  for (unsigned w = 0; w < sizeof pool->live / sizeof pool->live[0]; w++) live += (unsigned)__builtin_popcountll(pool->live[w]);
  /* popcount(live) == used - head + held */
  CHECK(ck, live == used + held, "pool %p: %u blocks marked live, used %u, held %u", (void *)pool, live, used, held);
  if (full) {
    /* FULL: freeblock == PMI_LIST_END, ncarved == capacity, used + held == capacity */
    CHECK(ck, pool->freeblock == PMI_LIST_END, "full pool %p has a free list", (void *)pool);
    CHECK(ck, pool->ncarved == pool->capacity, "full pool %p has untouched blocks", (void *)pool);
    CHECK(ck, pool->used + held == pool->capacity, "full pool %p: used %u + held %u != capacity %u", (void *)pool,
          pool->used, held, pool->capacity);
    CHECK(ck, pool->used > 0, "full pool %p with no block out", (void *)pool);
  }
}

/* heap.remote_pools == the FULL pools with held blocks */
static void check_remote_pools(checker *ck, pmi_heap *heap, size_t with_held) {
  size_t n = 0;
  for (pmi_pool *p = heap->remote_pools; p != NULL; p = p->nextpool) {
    CHECK(ck, p->state == PMI_POOL_FULL && p->held != NULL, "pool %p on remote_pools: state %u, held %p",
          (void *)p, p->state, (void *)(p->state == PMI_POOL_FULL ? p->held : NULL));
    if (++n > with_held) break;
  }
  CHECK(ck, n == with_held, "%zu full pools hold remote frees, %zu on remote_pools", with_held, n);
}

static void check_usedpools(checker *ck, pmi_heap *heap, size_t *nused) {
  unsigned nspare = 0;
  for (unsigned c = 0; c < PMI_NCLASSES; c++) {
    pmi_pool *prev = NULL;
    pmi_pool *head = heap->usedpools[c];
    CHECK(ck, head != NULL, "usedpools[%u] is NULL", c);
    if (head == &pmi_pool_sentinel) CHECK(ck, heap->usedlast[c] == NULL, "usedlast[%u] set for an empty list", c);
    if (head == NULL || head == &pmi_pool_sentinel) continue;
    for (pmi_pool *p = head; p != NULL; prev = p, p = p->nextpool) {
      if (p->nextpool == NULL)
        CHECK(ck, heap->usedlast[c] == p, "usedlast[%u] is %p, not the list's last pool %p", c, (void *)heap->usedlast[c], (void *)p);
      CHECK(ck, p->state == PMI_POOL_USED, "pool %p on usedpools[%u] in state %u", (void *)p, c, p->state);
      CHECK(ck, p->szidx == c, "pool %p of class %u on usedpools[%u]", (void *)p, p->szidx, c);
      CHECK(ck, p->prevpool == prev, "pool %p: prevpool link broken", (void *)p);
      CHECK(ck, pmi_load_relaxed(&pmi_arena_of(p)->heap) == heap, "pool %p on usedpools of another heap", (void *)p);
      if (p == head) {
        CHECK(ck, p->used >= 1, "head pool %p of usedpools[%u] without its bias", (void *)p, c);
      } else {
        nspare += p->used == 0;
        /* room, or a drained head waiting for its turn: every block out */
        CHECK(ck, p->freeblock != PMI_LIST_END || p->ncarved < p->capacity || p->used == p->capacity,
              "pool %p: exhausted with %u of %u blocks counted out, behind the head of usedpools[%u]", (void *)p,
              p->used, p->capacity, c);
      }
      (*nused)++;
      if (*nused > heap->narenas * PMI_ARENA_POOLS + 1) {
        CHECK(ck, 0, "usedpools[%u] has a cycle", c);
        return;
      }
    }
  }
  /* nspare - spares_gone == #{ empty pools on usedpools but not their head } <= SPARE_POOLS */
  CHECK(ck, nspare == heap->nspare - heap->spares_gone && nspare <= PMI_SPARE_POOLS,
        "nspare %u (%u given back by the purge thread), but %u spares on usedpools", heap->nspare,
        heap->spares_gone, nspare);
}

/* The free map's entries for the slots of a region of heap at start
 * (types.h, pmi_free_slot): what free's fast path finds there, the owner
 * the heap's thread's pointer (or 0) included. */
static void check_free_slots(checker *ck, const pmi_heap *heap, const void *start, size_t size, unsigned byte) {
  pmi_free_slot want = pmi_free_slot_for((uintptr_t)start, byte);
  want.owner = heap->tp;
  for (uintptr_t s = (uintptr_t)start >> PMI_ARENA_SHIFT, n = size >> PMI_ARENA_SHIFT; n > 0; s++, n--) {
    const pmi_free_slot *f = &pmi_freemap[s];
    CHECK(ck, memcmp(f, &want, sizeof want) == 0, "region %p: its free-map entry at %p is not its own (owner %#lx, its heap's %#lx)",
          start, (void *)(s << PMI_ARENA_SHIFT), (unsigned long)f->owner, (unsigned long)want.owner);
  }
}

static void check_arena(checker *ck, pmi_heap *heap, pmi_arena *arena, size_t *nused) {
  CHECK(ck, pmi_arenamap_contains(arena), "arena %p missing from the arena map", (void *)arena);
  check_free_slots(ck, heap, arena, PMI_ARENA_SIZE, PMI_REGION_POOLS);
  CHECK(ck, pmi_load_relaxed(&arena->heap) == heap, "arena %p owned by %p", (void *)arena,
        (void *)pmi_load_relaxed(&arena->heap));
  unsigned nempty = 0, nlist = 0, nkept = 0;
  for (unsigned i = PMI_FIRST_POOL; i < PMI_POOLS_PER_ARENA; i++) {
    pmi_pool *pool = pmi_arena_pool(arena, i);
    switch (pool->state) {
    case PMI_POOL_EMPTY: nempty++; nkept += pool->ncarved != 0; break;
    case PMI_POOL_USED: (*nused)++; check_pool(ck, heap, pool); break;
    case PMI_POOL_FULL: ck->with_held += pool->held != NULL; check_pool(ck, heap, pool); break;
    default: CHECK(ck, 0, "pool %p: bad state %u", (void *)pool, pool->state);
    }
  }
  for (pmi_pool *p = arena->freepools; p != NULL && nlist <= PMI_ARENA_POOLS; p = p->nextpool, nlist++)
    CHECK(ck, p->state == PMI_POOL_EMPTY && pmi_arena_of(p) == arena,
          "arena %p: pool %p on freepools is not one of its empty pools", (void *)arena, (void *)p);
  /* nfreepools == |freepools| == #EMPTY */
  CHECK(ck, arena->nfreepools == nempty && nlist == nempty,
        "arena %p: nfreepools %u, list %u, empty pools %u", (void *)arena, arena->nfreepools, nlist, nempty);
  CHECK(ck, nempty < PMI_ARENA_POOLS, "arena %p: wholly empty but still owned", (void *)arena);
  /* nkept == #{ EMPTY, ncarved != 0 } */
  CHECK(ck, arena->nkept == nkept, "arena %p: nkept %u, but %u empty pools keep their page", (void *)arena,
        (unsigned)arena->nkept, nkept);
}

static void check_usable_arenas(checker *ck, pmi_heap *heap) {
  pmi_arena *prev = NULL;
  size_t n = 0;
  for (pmi_arena *a = heap->usable_arenas; a != NULL; prev = a, a = a->nextarena) {
    CHECK(ck, a->prevarena == prev, "usable_arenas: prevarena link of %p broken", (void *)a);
    CHECK(ck, a->nfreepools > 0, "usable_arenas: arena %p has no free pool", (void *)a);
    if (prev != NULL)
      CHECK(ck, prev->nfreepools <= a->nfreepools, "usable_arenas not sorted fullest first at %p", (void *)a);
    bool last_of_count = a->nextarena == NULL || a->nextarena->nfreepools != a->nfreepools;
    CHECK(ck, (heap->nfp2lasta[a->nfreepools] == a) == last_of_count,
          "nfp2lasta[%u] is %p, arena %p", a->nfreepools, (void *)heap->nfp2lasta[a->nfreepools], (void *)a);
    if (++n > heap->narenas) {
      CHECK(ck, 0, "usable_arenas longer than the arena list");
      return;
    }
  }
  for (unsigned nf = 0; nf <= PMI_POOLS_PER_ARENA; nf++) {
    pmi_arena *last = heap->nfp2lasta[nf];
    if (last != NULL)
      CHECK(ck, last->nfreepools == nf && pmi_load_relaxed(&last->heap) == heap,
            "nfp2lasta[%u] points at an arena with %u free pools", nf, last->nfreepools);
  }
  size_t with_room = 0;
  for (pmi_arena *a = heap->arenas; a != NULL; a = a->next_owned) with_room += a->nfreepools > 0;
  CHECK(ck, with_room == n, "%zu arenas have free pools but %zu are on usable_arenas", with_room, n);
}

/* The length of a list of m's blocks (its free list, or its held list:
 * held), each a carved block start, live and marked exactly when held. */
static unsigned medium_list(checker *ck, pmi_medium *m, pmi_block *list, bool held) {
  unsigned n = 0;
  char *base = pmi_medium_base(m) + PMI_MEDIUM_HEADER + pmi_medium_slow(m)->colour;
  for (pmi_block *b = list; b != (held ? NULL : PMI_LIST_END); b = pmi_link_get(b), n++) {   /* held lists end in NULL */
    char *cb = (char *)b;
    if (n > m->capacity || cb < base || cb >= base + (size_t)m->ncarved * pmi_medium_slow(m)->block_size ||
        (size_t)(cb - base) % pmi_medium_slow(m)->block_size != 0) {
      CHECK(ck, 0, "medium region %p: %s list runs outside its carved blocks", (void *)m, held ? "held" : "free");
      break;
    }
    unsigned u = pmi_medium_units(b);
    bool live = (m->live[u >> 6] >> (u & 63)) & 1;
    CHECK(ck, held ? live && b->key == pmi_remote_key : !live, "medium region %p: %s block %p %s", (void *)m,
          held ? "held" : "free", (void *)b, held ? "not live or not marked" : "marked live");
  }
  return n;
}

/* A medium region: the same equations as a pool's, and its list. */
static void check_medium(checker *ck, pmi_heap *heap, pmi_medium *m) {
  CHECK(ck, pmi_arenamap_byte(m) == pmi_medium_map_byte(m), "medium region %p missing from the arena map", (void *)m);
  CHECK(ck, m == pmi_medium_of(m), "medium region %p: header not at its colour", (void *)m);
  check_free_slots(ck, heap, pmi_medium_base(m), PMI_MEDIUM_SIZE, pmi_medium_map_byte(m));
  CHECK(ck, pmi_load_relaxed(&m->heap) == heap, "medium region %p owned by another heap", (void *)m);
  CHECK(ck, m->state == PMI_MEDIUM_USED || m->state == PMI_MEDIUM_FULL, "medium region %p: state %u", (void *)m, m->state);
  CHECK(ck, m->mclass < PMI_MEDIUM_NCLASSES && pmi_medium_slow(m)->block_size == pmi_medium_class_size(m->mclass),
        "medium region %p: class %u, block size %u", (void *)m, m->mclass, pmi_medium_slow(m)->block_size);
  if (m->mclass >= PMI_MEDIUM_NCLASSES) return;
  CHECK(ck, pmi_medium_slow(m)->colour == pmi_medium_colour(m, m->mclass), "medium region %p: colour %u", (void *)m, pmi_medium_slow(m)->colour);
  CHECK(ck, m->capacity == (PMI_MEDIUM_SIZE - PMI_MEDIUM_HEADER - pmi_medium_slow(m)->colour) / pmi_medium_slow(m)->block_size,
        "medium region %p: capacity %u", (void *)m, m->capacity);
  CHECK(ck, m->ncarved <= m->capacity, "medium region %p: carved %u > capacity", (void *)m, m->ncarved);
  unsigned nfree = medium_list(ck, m, m->freeblock, false);
  /* held blocks (FULL only): carved, still live and marked */
  unsigned held = 0;
  if (m->state == PMI_MEDIUM_FULL) {
    held = medium_list(ck, m, pmi_medium_slow(m)->held, true);
    ck->medium_with_held += pmi_medium_slow(m)->held != NULL;
  }
  /* used - head(m) + held + free + dormant + untouched == capacity */
  unsigned used = pmi_medium_nused(m);
  CHECK(ck, used + held + nfree + pmi_medium_slow(m)->ndormant + (m->capacity - m->ncarved) == m->capacity,
        "medium region %p: used %u + held %u + free %u + dormant %u + untouched %u != capacity %u", (void *)m, used,
        held, nfree, pmi_medium_slow(m)->ndormant, m->capacity - m->ncarved, m->capacity);
  unsigned live = 0;
  for (unsigned w = 0; w < sizeof m->live / sizeof m->live[0]; w++) live += (unsigned)__builtin_popcountll(m->live[w]);
  CHECK(ck, live == used + held, "medium region %p: %u blocks marked live, used %u, held %u", (void *)m, live, used,
        held);
  if (m->state == PMI_MEDIUM_FULL) {
    CHECK(ck, m->freeblock == PMI_LIST_END && pmi_medium_slow(m)->ndormant == 0 && m->ncarved == m->capacity,
          "full medium region %p has free, dormant or untouched blocks", (void *)m);
    CHECK(ck, m->used + held == m->capacity, "full medium region %p: used %u + held %u != capacity %u", (void *)m,
          m->used, held, m->capacity);
  } else {
    CHECK(ck, pmi_medium_slow(m)->held == NULL, "medium region %p in use holds remote frees", (void *)m);
  }
  if (m->state == PMI_MEDIUM_USED && heap->usedmedium[m->mclass] == m)
    CHECK(ck, m->used >= 1, "medium region %p: the head of usedmedium[%u] without its extra use", (void *)m, m->mclass);
}

static void check_mediums(checker *ck, pmi_heap *heap) {
  size_t n = 0, nused = 0, on_lists = 0;
  for (pmi_medium *m = heap->mediums; m != NULL && n <= heap->nmediums; m = pmi_medium_slow(m)->next_owned, n++) {
    check_medium(ck, heap, m);
    nused += m->state == PMI_MEDIUM_USED;
  }
  CHECK(ck, n == heap->nmediums, "nmediums %zu but %zu on the list", heap->nmediums, n);
  for (unsigned c = 0; c < PMI_MEDIUM_NCLASSES; c++) {
    pmi_medium *head = heap->usedmedium[c], *prev = NULL;
    CHECK(ck, head != NULL, "usedmedium[%u] is NULL", c);
    /* medfront[c]: the head, or for a class with no region a lender's head (types.h) */
    pmi_medium *front = heap->medfront[c];
    bool lent = false;
    if (front != head && head == &pmi_medium_sentinel && front != NULL && front != &pmi_medium_sentinel &&
        front->mclass < PMI_MEDIUM_NCLASSES && pmi_medium_lends(front->mclass, c))
      lent = heap->usedmedium[front->mclass] == front;
    CHECK(ck, front == head || lent, "medfront[%u] is %p, neither usedmedium[%u] (%p) nor a lender's head", c,
          (void *)front, c, (void *)head);
    if (head == NULL || head == &pmi_medium_sentinel) continue;
    for (pmi_medium *m = head; m != NULL; prev = m, m = m->nextregion) {
      CHECK(ck, m->state == PMI_MEDIUM_USED && m->mclass == c, "medium region %p on usedmedium[%u]: state %u class %u",
            (void *)m, c, m->state, m->mclass);
      CHECK(ck, pmi_medium_slow(m)->prevregion == prev, "medium region %p: prevregion link broken", (void *)m);
      if (m != head) {
        CHECK(ck, m->used > 0, "medium region %p: empty but not the head of usedmedium[%u]", (void *)m, c);
        CHECK(ck, m->freeblock != PMI_LIST_END || pmi_medium_slow(m)->ndormant != 0 || m->ncarved < m->capacity,
              "medium region %p: exhausted but not the head of usedmedium[%u]", (void *)m, c);
      }
      if (++on_lists > heap->nmediums) {
        CHECK(ck, 0, "usedmedium[%u] has a cycle", c);
        return;
      }
    }
  }
  CHECK(ck, on_lists == nused, "%zu USED medium regions, %zu on usedmedium", nused, on_lists);
  /* heap.remote_mediums == the FULL regions with held blocks */
  size_t nheld = 0;
  for (pmi_medium *m = heap->remote_mediums; m != NULL; m = m->nextregion) {
    CHECK(ck, m->state == PMI_MEDIUM_FULL && pmi_medium_slow(m)->held != NULL, "medium region %p on remote_mediums: state %u",
          (void *)m, m->state);
    if (++nheld > ck->medium_with_held) break;
  }
  CHECK(ck, nheld == ck->medium_with_held, "%zu full medium regions hold remote frees, %zu on remote_mediums",
        ck->medium_with_held, nheld);
}

int pmi_check_heap(pmi_heap *heap, int verbose) {
  checker ck = {0, verbose, heap, 0, 0};
  size_t on_lists = 0, in_arenas = 0, narenas = 0;
  for (pmi_arena *a = heap->arenas; a != NULL && narenas <= heap->narenas; a = a->next_owned, narenas++)
    check_arena(&ck, heap, a, &in_arenas);
  CHECK(&ck, narenas == heap->narenas, "narenas %zu but %zu on the list", heap->narenas, narenas);
  check_usedpools(&ck, heap, &on_lists);
  CHECK(&ck, on_lists == in_arenas, "%zu USED pools in arenas, %zu on usedpools", in_arenas, on_lists);
  check_usable_arenas(&ck, heap);
  check_remote_pools(&ck, heap, ck.with_held);
  const void *held_at = NULL;
  const char *held_fault = pmi_remote_held_fault(heap, &held_at);
  CHECK(&ck, held_fault == NULL, "held_used: %s (at %p)", held_fault, held_at);
  check_mediums(&ck, heap);
  return ck.errors;
}

pmi_export int pm_check(void) {
  int errors = 0;
  pmi_heap *self = pmi_heap_own();
  pmi_heaps_lock();
  for (pmi_heap *h = pmi_heap_first(); h != NULL; h = h->next_heap) {
    if (h != self && atomic_load(&h->owned)) continue;   /* another thread's: not ours to stop */
    pmi_heap_lock(h);
    if (h != self) pmi_heap_repair_locked(h);
    errors += pmi_check_heap(h, 1);
    pmi_heap_unlock(h);
  }
  pmi_arena_fork_prepare();   /* the reserve lock */
  size_t n = 0;
  for (pmi_arena *a = pmi_arena_reserve_first(); a != NULL; a = a->nextarena, n++) {
    if (pmi_load_relaxed(&a->heap) != NULL || !pmi_arenamap_contains(a)) {
      pmi_warning("check failed: reserve arena %p is owned or unmapped", (void *)a);
      errors++;
    }
  }
  if (n != pmi_arena_reserve_count()) {
    pmi_warning("check failed: reserve holds %zu arenas, counted %zu", n, pmi_arena_reserve_count());
    errors++;
  }
  pmi_arena_fork_parent();
  pmi_medium_fork_prepare();   /* the medium reserve's lock */
  n = 0;
  for (pmi_medium *m = pmi_medium_reserve_first(); m != NULL; m = m->nextregion, n++) {
    if (pmi_load_relaxed(&m->heap) != NULL || m->state != PMI_MEDIUM_EMPTY || pmi_arenamap_byte(m) != pmi_medium_map_byte(m) || m != pmi_medium_of(m)) {
      pmi_warning("check failed: reserve medium region %p is owned, in use or unmapped", (void *)m);
      errors++;
    }
  }
  if (n != pmi_medium_reserve_count()) {
    pmi_warning("check failed: medium reserve holds %zu regions, counted %zu", n, pmi_medium_reserve_count());
    errors++;
  }
  pmi_medium_fork_parent();
  pmi_heaps_unlock();
  return errors;
}
