/* pool.c: a pool's life: initialised for a size class, carved lazily, linked
 * on and off heap->usedpools[szidx], and given back to its arena when empty.
 * The state machine is drawn in types.h; every function here that splices a
 * list runs inside the owner's pmi_heap_enter/leave bracket, or with
 * heap->lock held (heap.c, "visitors"). */
#include <errno.h>
#include <string.h>

#include "core/internal.h"

/* The end of every free list (internal.h).  Its link is all ones from the
 * start, as pmi_link_key is 0 until start-up sets it: the empty heap's
 * heads are read by malloc's fast path before the library's initialisation
 * has run (a constructor of another library calling malloc). */
pmi_startup_data pmi_block pmi_list_end = { .link = ~(uintptr_t)0 };
/* The pool every empty usedpools[] slot points at, and every head of the
 * empty heap (heap.c): no free block and no capacity, so the malloc fast
 * path falls through to the slow path without a NULL test.  Nothing ever
 * writes to it. */
pmi_startup_data pmi_pool pmi_pool_sentinel = { .freeblock = PMI_LIST_END, .state = PMI_POOL_HEADER };

/* At start-up, as pmi_link_key is set (init.c): the end's link decodes to
 * an offset of all ones (in .data, as what start-up writes is:
 * tests/layout/test_startup_pages.c). */
void pmi_list_end_init(void) { pmi_list_end.link = ~pmi_link_key; }

/* An EMPTY pool becomes a USED pool of class szidx.  A pool that served
 * the same class before still has every block it carved on its free list
 * (its used count reached 0), so the list is kept and nothing is carved
 * again: a program that fills and empties the same pools over and over (a
 * batch allocated and freed) pays for carving once. */
void pmi_pool_init(pmi_heap *heap, pmi_pool *pool, unsigned szidx) {
  pmi_assert(pool->state == PMI_POOL_EMPTY && pool->used == 0);
  if (pool->szidx != szidx || pool->ncarved == 0) {
    /* untouched (or purged) pages about to be touched: free medium ones may serve them (medium.c) */
    if (pool->ncarved == 0) pmi_medium_grew(heap, PMI_POOL_SIZE);
    pool->szidx = (uint8_t)szidx;
    pool->ncarved = 0;
    pool->freeblock = PMI_LIST_END;
    memset(pool->live, 0, sizeof pool->live);
  }
  pool->capacity = (uint16_t)(PMI_POOL_SIZE / pmi_class_size(szidx));
  pool->nextpool = pool->prevpool = NULL;
  pool->state = PMI_POOL_USED;
  heap->counters.pools_initialised++;
}

/* pmi_pool_pop's way out when block's link leaves the pool: block is the
 * last of the list (its link is NULL), or the link is corrupt. */
pmi_noinline void *pmi_pool_pop_last(pmi_pool *pool, pmi_block *block) { return pmi_pool_take_last(pool, block); }

/* Blocks a carve links, by class: PMI_CARVE_BYTES / size (a division the
 * carve would otherwise make each time), at least one. */
#define PMI_CARVE_RUN(c) (PMI_CARVE_BYTES / (((c) + 1) * PMI_ALIGNMENT) ? PMI_CARVE_BYTES / (((c) + 1) * PMI_ALIGNMENT) : 1)
static const uint16_t carve_run[PMI_NCLASSES] = {
#define PMI_C4(c) PMI_CARVE_RUN(c), PMI_CARVE_RUN(c + 1), PMI_CARVE_RUN(c + 2), PMI_CARVE_RUN(c + 3)
  PMI_C4(0), PMI_C4(4), PMI_C4(8), PMI_C4(12), PMI_C4(16), PMI_C4(20), PMI_C4(24), PMI_C4(28),
#undef PMI_C4
};
_Static_assert(PMI_CARVE_BYTES / PMI_ALIGNMENT <= 65535, "a carve's run fits the table's entries");

/* Links the next run of untouched blocks onto the (empty) free list: about
 * PMI_CARVE_BYTES (types.h), the whole pool. */
void *pmi_pool_carve(pmi_pool *pool) {
  pmi_assert(pool->freeblock == PMI_LIST_END && pool->ncarved < pool->capacity);
  size_t size = pmi_class_size(pool->szidx);
  unsigned n = carve_run[pool->szidx & (PMI_NCLASSES - 1)];
  if (n > (unsigned)(pool->capacity - pool->ncarved)) n = pool->capacity - pool->ncarved;
  char *first = pmi_pool_base(pool) + (size_t)pool->ncarved * size;
  char *last = first + (size_t)(n - 1) * size;
  /* pmi_link_set's encoding, with the secret in a register; two blocks a
   * turn, so that the loop's own count and jump are shared (CPython carves
   * about one block in two it allocates): 6.5 instructions a block, not 8
   * (four a turn measured no better: the remainder's loop and the frame
   * cost what the turns save) */
  uintptr_t key = pmi_link_key;
  char *b = first;
  for (; b + size < last; b += 2 * size) {
    char *b1 = b + size, *b2 = b1 + size;
    ((pmi_block *)b)->link = ((uintptr_t)b ^ (uintptr_t)b1) ^ key;
    ((pmi_block *)b1)->link = ((uintptr_t)b1 ^ (uintptr_t)b2) ^ key;
  }
  if (b != last) ((pmi_block *)b)->link = ((uintptr_t)b ^ (uintptr_t)(b + size)) ^ key;
  pmi_link_set((pmi_block *)last, PMI_LIST_END);
  pool->ncarved = (uint16_t)(pool->ncarved + n);
  pool->freeblock = (pmi_block *)first;
  return first;
}

static bool pool_is_exhausted(const pmi_pool *pool) {
  return pool->freeblock == PMI_LIST_END && pool->ncarved == pool->capacity;
}

/* The head of usedpools[c] counts one use more than it has blocks out
 * (types.h): these two move that bias with the head. */
static void head_enter(pmi_pool *pool) { pool->used++; }
static void head_leave(pmi_pool *pool) { pool->used--; }

/* A spare stops being one (it leaves its list, or becomes the head): the
 * purge thread's look at the spares (below) sees that the set changed. */
static void spare_leaves(pmi_heap *heap) {
  heap->nspare--;
  heap->spare_leaves++;
}

/* The owner's count, less what the purge thread gave back meanwhile; in the
 * owner's bracket (or under an unowned heap's lock), where spares_gone
 * stands still. */
static void spares_settle(pmi_heap *heap) {
  if (pmi_unlikely(heap->spares_gone != 0)) {
    heap->nspare -= heap->spares_gone;
    heap->spares_gone = 0;
  }
}

/* Takes pool off usedpools[c]; a head takes its bias with it, and the next
 * pool, if any, becomes the head. */
void pmi_usedpools_unlink(pmi_heap *heap, pmi_pool *pool) {
  pmi_assert(pool->state == PMI_POOL_USED);
  unsigned c = pool->szidx;
  if (pool->prevpool != NULL) {
    if (pool->used == 0) spare_leaves(heap);   /* a spare leaves */
    pool->prevpool->nextpool = pool->nextpool;
  } else {
    pmi_assert(heap->usedpools[c] == pool);
    head_leave(pool);
    heap->usedpools[c] = pool->nextpool != NULL ? pool->nextpool : &pmi_pool_sentinel;
    if (pool->nextpool != NULL) {
      if (pool->nextpool->used == 0) spare_leaves(heap);   /* a spare, in use again */
      head_enter(pool->nextpool);
    }
  }
  if (pool->nextpool != NULL) pool->nextpool->prevpool = pool->prevpool;
  else heap->usedlast[c] = pool->prevpool;   /* NULL: the list is empty now */
  pool->nextpool = pool->prevpool = NULL;
}

/* An empty pool leaves usedpools for its arena's freepools. */
void pmi_pool_release_empty(pmi_heap *heap, pmi_pool *pool) {
  pmi_usedpools_unlink(heap, pool);
  pmi_assert(pool->used == 0);
  heap->counters.pools_emptied++;
  pmi_arena_give_pool(heap, pool);
}

/* A pool other than the head whose last block was freed: it stays on its
 * list as a spare while the heap has fewer than PMI_SPARE_POOLS and a
 * thread owns it, else it goes back to its arena.  Beyond the quiet ones
 * the purge thread is noted: the caller kicks it once out of its bracket. */
static void pool_emptied_locked(pmi_heap *heap, pmi_pool *pool) {
  pmi_assert(pool->used == 0 && !pmi_pool_is_head(heap, pool));
  spares_settle(heap);
  heap->nspare++;   /* it is a spare now; unlinking it counts it out again */
  if (heap->nspare > PMI_SPARE_POOLS || !pmi_load_relaxed(&heap->owned)) pmi_pool_release_empty(heap, pool);
  else if (heap->nspare > PMI_SPARES_QUIET) pmi_purge_note();
}

/* free's fast path found used at 0 after its push, with PMI_SPARES_QUIET
 * spares or more.  Below the cap it is a spare with no lock (only the
 * owner writes nspare; a count not yet settled is only too high, which
 * sends the pool through the bracket), and the purge thread hears of it:
 * it gives back spares left alone for the decay, so that the up to 252
 * pages of an idle program do not stay. */
pmi_noinline void pmi_pool_emptied(pmi_heap *heap, pmi_pool *pool) {
  int saved = errno;
  if (heap->nspare < PMI_SPARE_POOLS) {
    heap->nspare++;
    pmi_purge_note();
    if (pmi_unlikely(!pmi_load_relaxed(&pmi_heap_fenceless))) {   /* show it to a visitor ("idle spares") */
      bool locked = pmi_heap_enter(heap);
      pmi_heap_leave(heap, locked);
    }
  } else {
    bool locked = pmi_heap_enter(heap);
    pool_emptied_locked(heap, pool);
    pmi_heap_leave(heap, locked);
  }
  pmi_purge_kick();
  errno = saved;
}

unsigned pmi_heap_count_spares(const pmi_heap *heap) {
  unsigned n = 0;
  for (unsigned c = 0; c < PMI_NCLASSES; c++) {
    pmi_pool *head = heap->usedpools[c];
    if (head == &pmi_pool_sentinel) continue;
    for (pmi_pool *p = head->nextpool; p != NULL; p = p->nextpool) n += p->used == 0;
  }
  return n;
}

/* Sends spares back to their arenas until keep are left: all of them at
 * thread exit, malloc_trim and medium growth (pmi_heap_release_spares);
 * those beyond the quiet ones before a pool takes a fresh page (alloc.c),
 * so that a change of classes between phases is served by them and does
 * not grow the footprint by the extra spares.  By class, in order. */
void pmi_heap_trim_spares(pmi_heap *heap, unsigned keep) {
  spares_settle(heap);
  for (unsigned c = 0; c < PMI_NCLASSES && heap->nspare > keep; c++) {
    pmi_pool *head = heap->usedpools[c];
    if (head == &pmi_pool_sentinel) continue;
    for (pmi_pool *p = head->nextpool, *next; p != NULL && heap->nspare > keep; p = next) {
      next = p->nextpool;
      if (p->used == 0) pmi_pool_release_empty(heap, p);
    }
  }
}

void pmi_heap_release_spares(pmi_heap *heap) { pmi_heap_trim_spares(heap, 0); }

/* ---- idle spares: the purge thread gives back those of an owned heap ----
 *
 * The owner's spares wait on its usedpools lists, where its fast paths may
 * be at work (heap.c, "visitors": a visitor waits for the owner's slow
 * paths, never for its fast paths).  A spare itself is out of their reach:
 * malloc pops only the head pool, and no free reaches a pool with no block
 * out.  The one exception is a spare being made: free's fast path pushes
 * the pool's last block and then writes used = 0 (and nspare), with no
 * fence; a visitor that reads that 0 in the middle of the pass may not yet
 * see the stores before it (a weakly ordered machine; or, with no
 * membarrier, any machine).  So the purge thread gives back only spares it
 * saw at its previous pass as well:
 *
 *   each pass (inside the visit, the owner out of its slow paths): count
 *     the spares (non-head pools with used == 0) and note the count and
 *     the owner's spare_leaves;
 *   the same count and spare_leaves as at the last pass: the set is the
 *     same, and each of them is given back to its arena.
 *
 * Why the same set: between two passes the set only grows without the
 * owner's slow paths (which count every spare that leaves in
 * spare_leaves: nothing else takes a spare away); so with spare_leaves
 * unchanged, the set of this pass contains the set of the last one, and the
 * same count makes them equal.  Every spare of the last pass was a spare
 * when the last pass read it, before this pass's membarrier: the owner had
 * executed its stores as of then, and the barrier makes them visible
 * here.  An owner that used its spares meanwhile (one taken as a head)
 * changed spare_leaves: nothing goes back, and its working set keeps them.
 * Timing: a spare made at t is seen by the first pass after it (at most t +
 * decay / 2) and given back at the next one, at most t + decay; its page
 * goes back in that same pass (pmi_purge_heap_pools), as the pool has been
 * empty for a pass already.  The visitor never writes nspare (the owner's
 * fast path adds to it): it counts what it gave back in spares_gone, which
 * the owner's slow paths settle.
 *
 * Without membarrier (old kernels, seccomp, POOLMALLOC_MEMBARRIER=0 and the
 * ThreadSanitizer build) a visit is no barrier on the owner's fast paths:
 * a spare the fast path made before the last look but after the owner's
 * last slow path has published nothing to the visitor in C11 terms, and
 * seeing it twice proves nothing.  There the owner shows its spares at each
 * slow path instead: inside the bracket it notes how many it has and its
 * spare_leaves (pmi_spares_show), and the visitor gives back only when its
 * look also finds exactly that many, with spare_leaves unchanged:
 *   every completed bracket happens before the visit (heap.c: a bracket
 *     either precedes the visitor's seq_cst store in S, and the visit waits
 *     for its release of busy, or it sees visitor == 1 and queues on the
 *     lock), so the look knows the last one's figures and every store
 *     before it, the stores that made the shown spares included;
 *   no spare leaves without a slow path, so each shown spare (less those
 *     this visitor gave back, which it takes off spares_shown) is still a
 *     spare, and the look finds it; the look may find more (made since, or
 *     an unsynchronised read of used), never fewer;
 *   so the same number means the same set, each of them published.
 * This is weaker than "a slow path since the first look", which would keep
 * an idle owner's spares for good: the owner that frees its blocks and
 * then waits on a condition variable made its spares beyond
 * PMI_SPARES_QUIET in pmi_pool_emptied, which in this mode runs an empty
 * bracket after each to show it.  Spares its free fast path alone made
 * (the first PMI_SPARES_QUIET) after its last slow path stay until its next
 * one, or its exit.  The two looks stay, for the decay's timing; and as the
 * rule needs no barrier between them, malloc_trim's second look at once
 * gives them back in this mode too (purge.c). */

/* The spares of heap as this pass sees them, up to cap of them in seen[];
 * their number (cap + 1 if there are more).  used is read while the
 * owner's fast paths may write it (of pools that are not spares): an old
 * value only makes the count differ, and the pass gives back nothing. */
pmi_noinline static unsigned spares_look(pmi_heap *heap, pmi_pool **seen, unsigned cap) {
  unsigned n = 0;
  for (unsigned c = 0; c < PMI_NCLASSES; c++) {
    pmi_pool *head = heap->usedpools[c];
    if (head == &pmi_pool_sentinel) continue;
    for (pmi_pool *p = head->nextpool; p != NULL; p = p->nextpool) {
      if (__atomic_load_n(&p->used, __ATOMIC_RELAXED) != 0) continue;
      if (n == cap) return cap + 1;
      seen[n++] = p;
    }
  }
  return n;
}

/* A visitor takes pool, not the head, out of usedpools while its owner
 * runs: the fast paths never walk the list, the owner's malloc reads the
 * head's nextpool only as a hint (alloc.c), so that store is relaxed; the
 * owner's counts (nspare) are not written (pmi_usedpools_unlink would). */
void pmi_usedpools_unlink_visited(pmi_heap *heap, pmi_pool *pool) {
  pmi_assert(pool->prevpool != NULL);
  __atomic_store_n(&pool->prevpool->nextpool, pool->nextpool, __ATOMIC_RELAXED);
  if (pool->nextpool != NULL) pool->nextpool->prevpool = pool->prevpool;
  else heap->usedlast[pool->szidx] = pool->prevpool;
  pool->nextpool = pool->prevpool = NULL;
}

/* A spare of the last pass goes back to its arena. */
static void spare_give_back(pmi_heap *heap, pmi_pool *pool) {
  pmi_assert(pool->used == 0);
  pmi_usedpools_unlink_visited(heap, pool);
  heap->spares_gone++;
  heap->counters.pools_emptied++;
  bool arena_stays = pmi_arena_of(pool)->nfreepools + 1 < PMI_ARENA_POOLS;
  pmi_arena_give_pool(heap, pool);
  if (arena_stays) pool->idle = 1;   /* empty for a pass already: its page goes in this pass */
}

/* The purge thread, visiting heap while another thread owns it.  True
 * while spares are left for a later pass. */
bool pmi_heap_spares_decay(pmi_heap *heap) {
  pmi_pool *seen[PMI_SPARE_POOLS];   /* 2 KiB of the purge thread's 64 KiB stack */
  unsigned n = spares_look(heap, seen, PMI_SPARE_POOLS);
  /* fenceless read after the visit: its membarrier ran (heap.c, barrier_setup) */
  bool barrier = pmi_load_relaxed(&pmi_heap_fenceless);
  bool shown = n == heap->spares_shown && heap->spare_leaves == heap->spares_shown_leaves;
  if (n != 0 && n <= PMI_SPARE_POOLS && n == heap->spare_look_n && heap->spare_leaves == heap->spare_look_leaves &&
      (barrier || shown)) {
    for (unsigned i = 0; i < n; i++) spare_give_back(heap, seen[i]);
    if (shown) heap->spares_shown = 0;
    n = 0;
  }
  heap->spare_look_n = n;
  heap->spare_look_leaves = heap->spare_leaves;
  return n != 0;
}

/* Makes pool the head of usedpools[szidx].  As the old head stops being the
 * head it becomes FULL if it is exhausted (it leaves the list: types.h),
 * and a spare (or goes back to its arena) if it has no block out, keeping
 * the invariants. */
void pmi_usedpools_push(pmi_heap *heap, pmi_pool *pool) {
  unsigned c = pool->szidx;
  pmi_pool *head = heap->usedpools[c];
  if (head != &pmi_pool_sentinel && pool_is_exhausted(head)) {
    pmi_usedpools_unlink(heap, head);
    head->state = PMI_POOL_FULL;
    head = heap->usedpools[c];
  }
  pool->state = PMI_POOL_USED;
  pool->prevpool = NULL;
  pool->nextpool = head != &pmi_pool_sentinel ? head : NULL;
  heap->usedpools[c] = pool;
  if (pool->nextpool == NULL) heap->usedlast[c] = pool;
  head_enter(pool);
  if (head != &pmi_pool_sentinel) {
    head->prevpool = pool;
    head_leave(head);
    if (head->used == 0) pool_emptied_locked(heap, head);   /* it had no block out */
  }
}

/* A FULL pool that got a block back joins the end of usedpools[szidx]
 * (unless the list has no head that can serve, when it becomes the head).
 * At the end, not at the head: the head keeps serving until it runs out,
 * and each pool reaches the head after the others ahead of it, with the
 * frees of that wait.  At the head, a pool that got one block back served
 * that block and went FULL again at once: in a program whose live blocks
 * of a class fill its pools (larson), nearly every free into a FULL pool
 * was followed by a malloc that took the slow path to unlink it again. */
void pmi_usedpools_append(pmi_heap *heap, pmi_pool *pool) {
  unsigned c = pool->szidx;
  pmi_pool *head = heap->usedpools[c], *last = heap->usedlast[c];
  if (head == &pmi_pool_sentinel || pool_is_exhausted(head)) {
    pmi_usedpools_push(heap, pool);
    return;
  }
  pmi_assert(last != NULL && last->nextpool == NULL);
  pool->state = PMI_POOL_USED;
  pool->nextpool = NULL;
  pool->prevpool = last;
  last->nextpool = pool;
  heap->usedlast[c] = pool;
}

/* Frees a block that is known to be a live block start into its pool and
 * makes the state transition that follows.  The caller owns the heap (or
 * holds its lock), has cleared the block's live bit and counted the free. */
void pmi_free_block(pmi_heap *heap, pmi_pool *pool, pmi_block *block) {
  if (pool->state == PMI_POOL_FULL && pmi_unlikely(pool->held != NULL)) {   /* remote frees held for it (remote.c) */
    pmi_remote_apply(heap);
    if (pool->state != PMI_POOL_USED) pmi_bad_pointer("free", block, "double free or corruption: block already freed,");
    pmi_free_block(heap, pool, block);
    return;
  }
  pmi_pool_push(pool, block);
  pool->used--;
  if (pool->state == PMI_POOL_FULL) {          /* FULL -> USED */
    pmi_usedpools_append(heap, pool);
    return;
  }
  if (pool->used == 0) {                       /* USED -> EMPTY */
    pool_emptied_locked(heap, pool);
  } else if (pool->used == 1 && pmi_pool_is_head(heap, pool) && !pmi_load_relaxed(&heap->owned)) {
    pmi_pool_release_empty(heap, pool);        /* no thread allocates from it */
  }
}

/* Recomputes a pool's used count and free list from its live bitmap (the
 * one record that a single store keeps right), for a pool whose owner may
 * have been stopped half-way through a malloc or free by a fork. */
void pmi_pool_rebuild(pmi_heap *heap, pmi_pool *pool) {
  size_t size = pmi_class_size(pool->szidx);
  char *base = pmi_pool_base(pool);
  pmi_block *list = PMI_LIST_END;
  unsigned used = 0;
  for (unsigned i = pool->ncarved; i-- > 0;) {
    pmi_block *b = (pmi_block *)(base + i * size);
    unsigned units = pmi_block_units(b);
    if (*pmi_live_word(pool, units) & pmi_live_bit(units)) {
      used++;
    } else {
      pmi_link_set(b, list);
      list = b;
    }
  }
  pool->freeblock = list;
  pool->used = (uint16_t)(used + (pool->state == PMI_POOL_USED && pmi_pool_is_head(heap, pool)));
}

/* Sends every empty pool kept on usedpools (the spares, and heads with no
 * block out) back to its arena, and every empty medium region kept at the
 * head of usedmedium to its reserve (thread exit, malloc_trim). */
void pmi_heap_release_retained(pmi_heap *heap) {
  pmi_heap_release_spares(heap);
  for (unsigned c = 0; c < PMI_NCLASSES; c++) {
    pmi_pool *head = heap->usedpools[c];
    while (head != &pmi_pool_sentinel && head->used == 1) {   /* only its bias */
      pmi_pool_release_empty(heap, head);
      head = heap->usedpools[c];
    }
  }
  pmi_medium_release_retained(heap);
}
