/* arena.c: arenas and the order of usable_arenas.
 *
 * A heap takes new pools from the arena with the FEWEST free pools, so that
 * allocation concentrates in nearly-full arenas and nearly-empty ones drain
 * and go back to the OS (pymalloc's policy).  usable_arenas is kept sorted by
 * nfreepools, ascending, and re-sorted in O(1) per change with pymalloc's
 * nfp2lasta[] trick: nfp2lasta[n] is the last arena holding n free pools, so
 * an arena whose count grows from n to n+1 moves to just behind it.
 *
 *   usable_arenas -> [nf=1] -> [nf=3] -> [nf=3] -> [nf=7] -> NULL
 *                                          ^
 *                                    nfp2lasta[3]
 *
 * An arena whose every pool is empty leaves its heap for the reserve, a
 * process-wide list of empty arenas that stay mapped:
 *
 *   reserve -> [newest] <-> ... <-> [oldest] <- reserve_tail
 *
 * New arenas come from its head (the warmest memory).  Its first
 * POOLMALLOC_ARENA_RESERVE arenas stay as long as they like; the ones beyond
 * are unmapped from the tail once they have sat there POOLMALLOC_ARENA_DECAY_MS
 * milliseconds (checked whenever an arena enters or leaves the reserve, by
 * the purge thread while the program is idle (purge.c), and by malloc_trim
 * and a failing allocation, which empty it).  Why keep them at all: a program that frees
 * a large structure and builds another would otherwise pay for munmap, mmap
 * and 63 page faults per arena, about 2 us each on a VM; why not for long:
 * memory that is not given back is the most common complaint about
 * allocators. */
#include <errno.h>

#include "core/internal.h"

static pmi_arena *reserve;          /* empty arenas, newest first, by nextarena */
static pmi_arena *reserve_tail;     /* the oldest, linked back by prevarena */
static _Atomic size_t reserve_count;   /* atomic only so that it may be peeked at */
static _Atomic int reserve_lock;
static _Atomic(void *) map_hint;     /* where the next arena is likely to go */
static _Atomic size_t arenas_mapped_now, arenas_mapped_peak;   /* for the report */

void pmi_arena_mapped(size_t *now, size_t *peak) {
  *now = atomic_load(&arenas_mapped_now);
  *peak = atomic_load(&arenas_mapped_peak);
}

static void reserve_acquire(void) { pmi_spin_lock(&reserve_lock); }
static void reserve_release(void) { pmi_spin_unlock(&reserve_lock); }
static void reserve_decay(pmi_heap *heap, uint64_t now);

size_t pmi_arena_reserve_count(void) { return reserve_count; }

/* Descriptors of a new or recycled arena: page 0's slot is the header, the
 * others are EMPTY and linked on freepools in address order. */
static void arena_format(pmi_arena *arena) {
  arena->list_end_ = (uintptr_t)PMI_LIST_END;
  arena->header_state = PMI_POOL_HEADER;
  arena->freepools = NULL;
  for (unsigned i = PMI_POOLS_PER_ARENA - 1; i >= PMI_FIRST_POOL; i--) {
    pmi_pool *pool = pmi_arena_pool(arena, i);
    pool->state = PMI_POOL_EMPTY;
    pool->capacity = 0;
    pool->used = 0;
    pool->ncarved = 0;   /* nothing to keep for pmi_pool_init */
    pool->freeblock = PMI_LIST_END;
    pool->prevpool = NULL;
    pool->nextpool = arena->freepools;
    arena->freepools = pool;
  }
  arena->nfreepools = PMI_ARENA_POOLS;
  arena->nkept = 0;
  arena->nextarena = arena->prevarena = NULL;
}

static pmi_arena *arena_new(pmi_heap *heap) {
  pmi_arena *arena = NULL;
  reserve_acquire();
  if (reserve != NULL) {
    arena = reserve;
    reserve = arena->nextarena;
    if (reserve != NULL) reserve->prevarena = NULL;
    else reserve_tail = NULL;
    reserve_count--;
  }
  reserve_release();
  if (arena != NULL) {
    heap->counters.arenas_reused++;
  } else {
    if (pmi_load_relaxed(&reserve_count) > (size_t)pmi_option(arena_reserve)) reserve_decay(heap, pmi_os_now_ms());
    bool in_chunk;
    arena = pmi_chunk_map(pmi_load_relaxed(&map_hint), atomic_load(&arenas_mapped_now), &in_chunk);
    if (arena == NULL) return NULL;   /* the caller releases what it can, then retries */
    arena->in_chunk = in_chunk;   /* (arena_format keeps it: an arena from the reserve has its own) */
    if (!pmi_arenamap_add(arena)) {
      pmi_os_unmap(arena, PMI_ARENA_SIZE);
      return NULL;
    }
    pmi_store_relaxed(&map_hint, (void *)((char *)arena - PMI_ARENA_SIZE));
    size_t now = atomic_fetch_add(&arenas_mapped_now, 1) + 1;
    size_t peak = atomic_load(&arenas_mapped_peak);
    while (now > peak && !atomic_compare_exchange_weak(&arenas_mapped_peak, &peak, now)) {}
    heap->counters.arenas_mapped++;
  }
  arena_format(arena);
  atomic_store_explicit(&arena->heap, heap, memory_order_release);
  pmi_freemap_set_owner(arena, PMI_ARENA_SIZE, heap->tp);   /* its thread's fast path: after the header */
  arena->prev_owned = NULL;
  arena->next_owned = heap->arenas;
  if (heap->arenas != NULL) heap->arenas->prev_owned = arena;
  heap->arenas = arena;
  heap->narenas++;
  return arena;
}

/* The arena's last pool came back: it leaves the heap for the reserve or
 * the OS.  It has already been unlinked from usable_arenas. */
static void arena_retire(pmi_heap *heap, pmi_arena *arena) {
  if (arena->prev_owned != NULL) arena->prev_owned->next_owned = arena->next_owned;
  else heap->arenas = arena->next_owned;
  if (arena->next_owned != NULL) arena->next_owned->prev_owned = arena->prev_owned;
  heap->narenas--;
  pmi_freemap_set_owner(arena, PMI_ARENA_SIZE, 0);   /* off the fast path before the header changes */
  atomic_store_explicit(&arena->heap, NULL, memory_order_release);

  arena->retired_ms = pmi_os_now_ms();
  reserve_acquire();
  arena->prevarena = NULL;
  arena->nextarena = reserve;
  if (reserve != NULL) reserve->prevarena = arena;
  else reserve_tail = arena;
  reserve = arena;
  reserve_count++;
  reserve_release();
  heap->counters.arenas_reserved++;
  reserve_decay(heap, arena->retired_ms);
  if (pmi_load_relaxed(&reserve_count) > (size_t)pmi_option(arena_reserve)) pmi_purge_note();
}

/* Pops the oldest reserve arena if it may go: beyond keep, and (unless
 * force) older than the decay time. */
static pmi_arena *reserve_pop_old(size_t keep, uint64_t now, bool force) {
  pmi_arena *arena = NULL;
  reserve_acquire();
  pmi_arena *old = reserve_tail;
  if (reserve_count > keep &&
      (force || old->retired_ms + (uint64_t)pmi_option(arena_decay_ms) <= now)) {
    arena = old;
    reserve_tail = old->prevarena;
    if (reserve_tail != NULL) reserve_tail->nextarena = NULL;
    else reserve = NULL;
    reserve_count--;
  }
  reserve_release();
  return arena;
}

static void arena_unmap(pmi_heap *heap, pmi_arena *arena) {
  pmi_arenamap_remove(arena);
  pmi_os_unmap(arena, PMI_ARENA_SIZE);
  atomic_fetch_sub(&arenas_mapped_now, 1);
  if (heap != &pmi_heap_empty) heap->counters.arenas_unmapped++;
  else atomic_fetch_add_explicit(&pmi_purge_stats.arenas_unmapped, 1, memory_order_relaxed);
}

static void reserve_decay(pmi_heap *heap, uint64_t now) {
  pmi_arena *arena;
  while ((arena = reserve_pop_old((size_t)pmi_option(arena_reserve), now, false)) != NULL)
    arena_unmap(heap, arena);
}

void pmi_arena_release_reserve(size_t keep) {
  pmi_arena *arena;
  while ((arena = reserve_pop_old(keep, 0, true)) != NULL) arena_unmap(pmi_heap_own(), arena);
}

/* The purge thread's decay: from no heap, counted in pmi_purge_stats. */
bool pmi_arena_decay(uint64_t now) {
  pmi_arena *arena;
  size_t keep = (size_t)pmi_option(arena_reserve);
  while ((arena = reserve_pop_old(keep, now, false)) != NULL) {
    arena_unmap(&pmi_heap_empty, arena);
    atomic_fetch_add_explicit(&pmi_purge_stats.purge_bytes, PMI_ARENA_SIZE, memory_order_relaxed);
  }
  return pmi_load_relaxed(&reserve_count) > keep;
}

static void usable_unlink(pmi_heap *heap, pmi_arena *arena) {
  if (arena->prevarena != NULL) arena->prevarena->nextarena = arena->nextarena;
  else heap->usable_arenas = arena->nextarena;
  if (arena->nextarena != NULL) arena->nextarena->prevarena = arena->prevarena;
  arena->nextarena = arena->prevarena = NULL;
}

/* An EMPTY pool from the fullest usable arena (its head), mapping a new
 * arena if there is none.  NULL when the OS refuses memory. */
pmi_pool *pmi_arena_take_pool(pmi_heap *heap) {
  pmi_arena *arena = heap->usable_arenas;
  if (arena == NULL) {
    arena = arena_new(heap);
    if (arena == NULL) {
      errno = ENOMEM;
      return NULL;
    }
    heap->usable_arenas = arena;
    heap->nfp2lasta[arena->nfreepools] = arena;
  }
  uint32_t nf = arena->nfreepools;
  pmi_assert(nf > 0 && arena->prevarena == NULL);
  /* The head already has the fewest free pools: taking one keeps it first.
   * It stops being the last arena with nf, and becomes the (only) one with
   * nf - 1, since no arena had fewer than nf. */
  if (heap->nfp2lasta[nf] == arena) heap->nfp2lasta[nf] = NULL;
  if (nf > 1) {
    pmi_assert(heap->nfp2lasta[nf - 1] == NULL);
    heap->nfp2lasta[nf - 1] = arena;
  }
  pmi_pool *pool = arena->freepools;
  arena->freepools = pool->nextpool;
  arena->nfreepools = nf - 1;
  arena->nkept -= pool->ncarved != 0;
  if (nf == 1) usable_unlink(heap, arena);   /* every pool in use */
  pool->nextpool = NULL;
  return pool;
}

/* An EMPTY pool back to its arena's freepools; re-sorts usable_arenas. */
void pmi_arena_give_pool(pmi_heap *heap, pmi_pool *pool) {
  pmi_arena *arena = pmi_arena_of(pool);
  pmi_assert(pmi_load_relaxed(&arena->heap) == heap);
  pool->state = PMI_POOL_EMPTY;
  pool->capacity = 0;
  pool->nextpool = arena->freepools;
  pool->idle = 0;
  arena->freepools = pool;
  arena->nkept += pool->ncarved != 0;

  uint32_t nf = arena->nfreepools;
  pmi_arena *lastnf = heap->nfp2lasta[nf];
  if (lastnf == arena) {   /* it was the last with nf: the one before may be */
    pmi_arena *prev = arena->prevarena;
    heap->nfp2lasta[nf] = (prev != NULL && prev->nfreepools == nf) ? prev : NULL;
  }
  arena->nfreepools = ++nf;
  /* Empty pools worth a purge thread: an arena at least half empty in a heap
   * of a few MiB.  A small program (most commands) never starts one: a
   * second thread would also switch the C library to its locked paths. */
  if (pmi_unlikely(nf >= PMI_ARENA_POOLS / 2) && heap->narenas >= PMI_PURGE_MIN_ARENAS) pmi_purge_note();

  if (nf == PMI_ARENA_POOLS) {             /* wholly empty: leaves the heap */
    usable_unlink(heap, arena);            /* it had nf - 1 > 0 free pools: on the list */
    arena_retire(heap, arena);
    return;
  }
  if (nf == 1) {                           /* was full: not on the list yet */
    arena->prevarena = NULL;
    arena->nextarena = heap->usable_arenas;
    if (heap->usable_arenas != NULL) heap->usable_arenas->prevarena = arena;
    heap->usable_arenas = arena;
    if (heap->nfp2lasta[1] == NULL) heap->nfp2lasta[1] = arena;
    return;
  }
  if (heap->nfp2lasta[nf] == NULL) heap->nfp2lasta[nf] = arena;
  if (arena == lastnf) return;             /* still in order */
  /* Arenas after it up to lastnf have nf - 1 free pools, fewer than it now
   * has: move it to just behind lastnf. */
  usable_unlink(heap, arena);
  arena->prevarena = lastnf;
  arena->nextarena = lastnf->nextarena;
  if (arena->nextarena != NULL) arena->nextarena->prevarena = arena;
  lastnf->nextarena = arena;
}

/* fork: the reserve's lock is taken last (see heap.c) and reset in the child. */
void pmi_arena_fork_prepare(void) { pmi_spin_fork_take(&reserve_lock); }
void pmi_arena_fork_parent(void) { pmi_spin_fork_give(&reserve_lock); }
void pmi_arena_fork_child(void) { atomic_store(&reserve_lock, PMI_LOCK_FREE); }
pmi_arena *pmi_arena_reserve_first(void) { return reserve; }
