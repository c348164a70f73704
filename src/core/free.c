/* free.c: free, and the checks that keep a bad pointer from corrupting the
 * pools.  The fast path is pm_free: an arena-map lookup (is it ours?), one
 * compare of the arena's owner with this thread's heap, a test-and-clear of
 * the block's bit in its pool's live bitmap, and a push on the pool's free
 * list.  It never reads the block being freed (only writes its link), so a
 * free of a block that is not in cache does not wait for it.
 *
 * The live bitmap (a bit per 16-byte unit, in the pool's descriptor) catches,
 * for the cost of a bit test: a double free, a pointer inside a block, a
 * block never handed out, and a pointer into a pool not in use.  A
 * block freed by another thread carries pmi_remote_key until its owner takes
 * it, which catches a second remote free at once; the other orders are
 * caught by the checks of remote.c's collection walk (a link rewritten by
 * a local free) and of pmi_link_corrupt (a remote push rewrote the link of
 * a block on a local free list). */
#include <errno.h>

#include "core/internal.h"

uintptr_t pmi_link_key = 0;     /* set from the kernel's random bytes at start */

pmi_cold _Noreturn void pmi_link_corrupt(const void *block, const void *next) {
  /* A block on a local free list with the remote mark: another thread freed
   * it after its owner did, and its push rewrote the link. */
  if (((const pmi_block *)block)->key == pmi_remote_key)
    pmi_fatal("free(): double free or corruption: block already freed, then freed by another thread, %p", block);
  pmi_fatal("heap corruption: the free block at %p links to %p, outside its pool "
            "(a write past the end of a block, or after its free)", block, next);
}

pmi_cold _Noreturn void pmi_bad_pointer(const char *fn, const void *p, const char *fault) {
  pmi_fatal("%s(): %s %p", fn, fault, p);
}

/* Why p is not a live block of its pool, or NULL if it is one; from the
 * descriptor alone, which only the owner may read cheaply. */
const char *pmi_block_fault_owned(pmi_pool *pool, const void *p) {
  if (pool->state != PMI_POOL_USED && pool->state != PMI_POOL_FULL)
    return "invalid pointer (inside an arena, but not in a pool in use):";
  unsigned units = pmi_block_units(p);
  if (((uintptr_t)p & (PMI_ALIGNMENT - 1)) != 0 || units % (pool->szidx + 1u) != 0)
    return "invalid pointer (not the start of a block):";
  if (units / (pool->szidx + 1u) >= pool->ncarved) return "invalid pointer (a block never handed out):";
  if (!(*pmi_live_word(pool, units) & pmi_live_bit(units)))
    return "double free or corruption: block already freed,";
  return NULL;
}

/* The same, and not waiting in a remote batch or thread_free stack. */
static const char *block_fault(pmi_pool *pool, const void *p) {
  const char *fault = pmi_block_fault_owned(pool, p);
  if (fault == NULL && ((const pmi_block *)p)->key == pmi_remote_key)
    fault = "double free or corruption: block already freed by another thread,";
  return fault;
}

/* The owner takes a block another thread freed (heap.c's collection).  The
 * freeing thread checked only what it could without reading the owner's
 * descriptor (its cache line is the owner's, and hot); the rest is checked
 * here, and a fault is reported as that free's. */
void pmi_free_collected(pmi_heap *heap, pmi_block *block) {
  if (!pmi_arenamap_contains(block)) {   /* the only other kind sent here */
    pmi_medium_free_collected(heap, block);
    return;
  }
  pmi_pool *pool = pmi_pool_of(pmi_arena_of(block), block);
  block->key = 0;
  const char *fault = pmi_block_fault_owned(pool, block);
  if (fault != NULL) pmi_bad_pointer("free", block, fault);
  unsigned units = pmi_block_units(block);
  *pmi_live_word(pool, units) &= ~pmi_live_bit(units);
  heap->counters.free_remote++;   /* counted by the owner: no atomics */
  pmi_free_block(heap, pool, block);
}

pmi_pool *pmi_check_live_block(const char *fn, const void *p) {
  pmi_pool *pool = pmi_pool_of(pmi_arena_of(p), p);
  const char *fault = block_fault(pool, p);
  if (fault != NULL) pmi_bad_pointer(fn, p, fault);
  return pool;
}

/* free's one decision point for everything that is not in a pool arena: the
 * arena map's byte says which kind of region p is in.  Outside all of ours
 * it is a block the C library handed out (before poolmalloc was loaded, or
 * through __libc_malloc), or no block at all. */
pmi_noinline static void free_foreign(void *p) {
  switch (pmi_arenamap_kind(p)) {
  case PMI_REGION_MEDIUM:
    pmi_medium_free(p);
    return;
  case PMI_REGION_HUGE:
    pmi_huge_free(p);
    return;
  default:
    break;
  }
  if (p == NULL) return;
  if (((uintptr_t)p & (PMI_ALIGNMENT - 1)) != 0)
    pmi_bad_pointer("free", p, "invalid pointer (not from malloc, misaligned):");
  if (!pmi_libc_owns(p)) pmi_bad_pointer("free", p, "invalid pointer (not from malloc):");
  pmi_libc_free(p);   /* glibc's free keeps errno (2.33 and later) */
}

/* A block of another heap: the checks that need no descriptor of the
 * owner's, then remote.c's batch for that owner. */
pmi_noinline static void free_remote(pmi_arena *arena, void *p) {
  pmi_heap *owner = atomic_load_explicit(&arena->heap, memory_order_acquire);
  if (owner == NULL) pmi_bad_pointer("free", p, "invalid pointer (inside a retired arena):");
  if (((uintptr_t)p & (PMI_ALIGNMENT - 1)) != 0)
    pmi_bad_pointer("free", p, "invalid pointer (not the start of a block):");
  if (((uintptr_t)p & (PMI_ARENA_SIZE - 1)) < PMI_POOL_SIZE)
    pmi_bad_pointer("free", p, "invalid pointer (inside an arena, but not in a pool in use):");
  pmi_remote_free(owner, (pmi_block *)p);
}

/* A free of our own block that needs more than a push: the pool becomes
 * empty or leaves the full state, or the pointer is bad.  The checks and
 * the live bit are under the lock: a FULL pool's descriptor is also written
 * by other threads that hold it (remote.c). */
pmi_noinline static void free_local_slow(pmi_heap *heap, pmi_pool *pool, pmi_block *block) {
  int saved = errno;
  pmi_heap_lock(heap);
  const char *fault = block_fault(pool, block);
  if (fault != NULL) pmi_bad_pointer("free", block, fault);
  unsigned units = pmi_block_units(block);
  *pmi_live_word(pool, units) &= ~pmi_live_bit(units);
  heap->counters.free_small++;
  pmi_free_block(heap, pool, block);
  pmi_heap_unlock(heap);
  pmi_purge_kick();
  errno = saved;
}

/* The fast path, shared by pm_free and pmi_free (no debug dispatch). */
static inline __attribute__((always_inline)) void free_core(void *p) {
  if (pmi_unlikely(!pmi_arenamap_contains(p))) {
    free_foreign(p);
    return;
  }
  pmi_arena *arena = pmi_arena_of(p);
  pmi_heap *heap = pmi_heap_tls;
  if (pmi_unlikely(pmi_load_relaxed(&arena->heap) != heap)) {
    free_remote(arena, p);
    return;
  }
  pmi_pool *pool = pmi_pool_of(arena, p);
  unsigned units = pmi_block_units(p);
  uint64_t *word = pmi_live_word(pool, units);
  uint64_t bit = pmi_live_bit(units);
  unsigned used = pool->used;
  /* The block must be a live block start (16-aligned, its unit's live bit
   * set), and the pool must not change state: used in [2, capacity - 1], or
   * used == 1 in the head pool of its class, which stays as the allocation
   * pool when it empties (a malloc/free loop of one block lives here).  A
   * pool not in use has capacity 0, and so has the arena header read as
   * pools[0]. */
  if (pmi_unlikely(((uintptr_t)p & (PMI_ALIGNMENT - 1)) != 0 || !(*word & bit) ||
                   (used - 2u >= pool->capacity - 2u &&
                    !(used == 1 && heap->usedpools[pool->szidx] == pool)))) {
    free_local_slow(heap, pool, p);
    return;
  }
  *word &= ~bit;
  pmi_pool_push(pool, p);
  pool->used = (uint16_t)(used - 1);
  heap->counters.free_small++;
}

void pmi_free(void *p) { free_core(p); }

pmi_export void pm_free(void *p) {
  if (pmi_unlikely(pmi_debug_active)) {
    pmi_debug_free(p);
    return;
  }
  free_core(p);
}

pmi_export void pm_free_sized(void *p, size_t size) { pm_free(p); }
pmi_export void pm_free_aligned_sized(void *p, size_t alignment, size_t size) { pm_free(p); }
