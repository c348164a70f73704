/* free.c: free, and the checks that keep a bad pointer from corrupting the
 * pools.  The fast path is pm_free: an arena-map lookup (is it ours?), one
 * compare of the arena's owner with this thread's heap, three cheap checks,
 * and a push on the pool's free list.
 *
 * Double frees are caught the way glibc's tcache catches them: a free block
 * carries a per-process random key in its second word, and a live block has
 * 0 there (malloc clears it).  A free that finds the key scans the pool's free
 * list (at most 256 blocks) to tell a double free from user data that happens
 * to hold the key. */
#include <errno.h>

#include "internal.h"

uintptr_t pmi_free_key = 1;     /* these three are set from the kernel's */
uintptr_t pmi_remote_key = 2;   /* random bytes at process start */
uintptr_t pmi_link_key = 0;

pmi_cold _Noreturn void pmi_link_corrupt(const void *block, const void *next) {
  pmi_fatal("heap corruption: the free block at %p links to %p, outside its pool "
            "(a write past the end of a block, or after its free)", block, next);
}

/* divmagic[c] tells whether a pool offset q (in 16-byte units, q < 256) is a
 * multiple of the class's block size (c + 1 units) with one multiply:
 * q % m == 0  <=>  q * M <= M - 1  (mod 2^64), M = 2^64 / m rounded up. */
#define PMI_DIVMAGIC(m) (UINT64_MAX / (m) + 1)
static const uint64_t divmagic[PMI_NCLASSES] = {
#define PMI_DM4(m) PMI_DIVMAGIC(m), PMI_DIVMAGIC(m + 1), PMI_DIVMAGIC(m + 2), PMI_DIVMAGIC(m + 3)
  PMI_DM4(1), PMI_DM4(5), PMI_DM4(9), PMI_DM4(13), PMI_DM4(17), PMI_DM4(21), PMI_DM4(25), PMI_DM4(29),
#undef PMI_DM4
};

static inline bool is_block_start(const pmi_pool *pool, const void *p) {
  uintptr_t off = (uintptr_t)p & (PMI_POOL_SIZE - 1);
  uint64_t m = divmagic[pool->szidx];
  return (off & (PMI_ALIGNMENT - 1)) == 0 && (uint64_t)(off >> PMI_ALIGNMENT_SHIFT) * m <= m - 1;
}

static bool on_free_list(const pmi_pool *pool, const pmi_block *block) {
  unsigned n = 0;
  for (const pmi_block *b = pool->freeblock; b != NULL && n <= pool->capacity; b = pmi_link_get(b), n++) {
    if (!pmi_link_in_pool(b, pmi_link_get(b))) return false;
    if (b == block) return true;
  }
  return false;
}

pmi_cold _Noreturn static void report(const char *fn, const void *p, const char *fault) {
  pmi_fatal("%s(): %s %p", fn, fault, p);
}

/* Why p is not a live block of its pool, or NULL if it is one.  The owner
 * flag says whether the caller may walk the pool's free list. */
static const char *block_fault(const pmi_pool *pool, const void *p, bool owner) {
  if (pool->state != PMI_POOL_USED && pool->state != PMI_POOL_FULL)
    return "invalid pointer (inside an arena, but not in a pool in use):";
  if (!is_block_start(pool, p)) return "invalid pointer (not the start of a block):";
  uintptr_t off = (uintptr_t)p & (PMI_POOL_SIZE - 1);
  if (off / pmi_class_size(pool->szidx) >= pool->ncarved)
    return "invalid pointer (a block never handed out):";
  const pmi_block *block = p;
  if (block->key == pmi_remote_key) return "double free or corruption: block already freed,";
  if (block->key == pmi_free_key && (!owner || on_free_list(pool, block)))
    return "double free or corruption: block already freed,";
  if (pool->used == 0) return "invalid pointer (its pool has no block in use):";
  return NULL;
}

pmi_pool *pmi_check_live_block(const char *fn, const void *p) {
  pmi_arena *arena = pmi_arena_of(p);
  pmi_pool *pool = pmi_pool_of(arena, p);
  bool owner = pmi_load_relaxed(&arena->heap) == pmi_heap_tls;
  const char *fault = block_fault(pool, p, owner);
  if (fault != NULL) report(fn, p, fault);
  return pool;
}

/* A pointer outside our arenas: a large block, or one the C library handed
 * out before poolmalloc was loaded or through __libc_malloc. */
pmi_noinline static void free_foreign(void *p) {
  if (p == NULL) return;
  if (((uintptr_t)p & (PMI_ALIGNMENT - 1)) != 0)
    report("free", p, "invalid pointer (not from malloc, misaligned):");
  int saved = errno;
  pmi_large_free(p);
  errno = saved;
}

/* A block of another heap: push it on the owner's thread_free stack. */
pmi_noinline static void free_remote(pmi_arena *arena, void *p) {
  pmi_heap *owner = atomic_load_explicit(&arena->heap, memory_order_acquire);
  pmi_pool *pool = pmi_pool_of(arena, p);
  if (owner == NULL) report("free", p, "invalid pointer (inside a retired arena):");
  const char *fault = block_fault(pool, p, false);
  if (fault != NULL) report("free", p, fault);
  pmi_block *block = p;
  block->key = pmi_remote_key;
  pmi_block *head = atomic_load_explicit(&owner->thread_free, memory_order_relaxed);
  do {
    pmi_link_set(block, head);
  } while (!atomic_compare_exchange_weak(&owner->thread_free, &head, block));
  pmi_heap *self = pmi_heap_tls;
  if (self != &pmi_heap_empty) self->counters.free_remote++;
  if (!atomic_load(&owner->owned)) {
    int saved = errno;
    pmi_heap_reclaim_unowned(owner);
    errno = saved;
  }
}

/* A free of our own block that needs more than a push: the pool becomes
 * empty or leaves the full state, or the pointer is bad. */
pmi_noinline static void free_local_slow(pmi_heap *heap, pmi_pool *pool, pmi_block *block) {
  const char *fault = block_fault(pool, block, true);
  if (fault != NULL) report("free", block, fault);
  int saved = errno;
  heap->counters.free_small++;
  if (pool->used == 1 && heap->usedpools[pool->szidx] == pool) {
    /* The allocation pool became empty: it stays (see types.h), no lock. */
    pmi_pool_push(pool, block);
    pool->used = 0;
    return;
  }
  pmi_heap_lock(heap);
  pmi_free_block(heap, pool, block);
  pmi_heap_unlock(heap);
  errno = saved;
}

pmi_export void pm_free(void *p) {
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
  pmi_block *block = p;
  unsigned used = pool->used;
  /* used in [2, capacity - 1]: no state change.  So is used == 1 in the
   * head pool of its class, which stays as the allocation pool when it
   * empties (a malloc/free loop of one block lives here).  Everything else
   * (0, 1 elsewhere, capacity, a pool not in use, whose capacity is 0) goes
   * to the slow path. */
  if (pmi_unlikely(!is_block_start(pool, p) || block->key == pmi_free_key ||
                   (used - 2u >= pool->capacity - 2u &&
                    !(used == 1 && heap->usedpools[pool->szidx] == pool)))) {
    free_local_slow(heap, pool, block);
    return;
  }
  pmi_pool_push(pool, block);
  pool->used = (uint16_t)(used - 1);
  heap->counters.free_small++;
}

pmi_export void pm_free_sized(void *p, size_t size) { pm_free(p); }
pmi_export void pm_free_aligned_sized(void *p, size_t alignment, size_t size) { pm_free(p); }
