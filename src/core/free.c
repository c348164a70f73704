/* free.c: free, and the checks that keep a bad pointer from corrupting the
 * pools.  The fast path is pm_free (free_core), for pool and medium blocks
 * alike:
 *   1. p rotated right by 4 bits gives the arena-map slot, beyond the map
 *      for a misaligned p (internal.h, pmi_arenamap_block_slot); beyond it
 *      goes to free_not_pool;
 *   2. the slot's entry in the free map (types.h, pmi_free_slot) names the
 *      thread that owns the region's heap by its thread pointer (0 for a
 *      heap no thread owns and for kinds NONE and HUGE), and gives the
 *      header and the masks that find the descriptor and the live word.
 *      One compare of the owner with this thread's pointer (%fs:0, read by
 *      the compare: no TLS load of the heap); anything else (another
 *      thread's heap, NULL, foreign and huge blocks, debug mode, whose
 *      heaps name their thread | 1) goes to free_not_local, which tells
 *      them apart;
 *   3. the block's bit in its pool's live bitmap must be set and the pool
 *      must be USED: one compare of its state rejects the arena header read
 *      as page 0's descriptor (state HEADER) and a FULL pool (its first free relinks
 *      it; its list is always empty, the blocks other threads free into it
 *      are held apart: types.h); both are
 *      read before anything is written, else free_local_slow.  An empty
 *      free list is no reason to leave: the head pool's list runs dry
 *      between carvings of its untouched tail, and frees into it are as
 *      common as any;
 *   4. store the live word with the bit cleared (step 3's btr tested and
 *      cleared it in a register), push the block (its link encoded), and decrement used:
 *      if it reaches 0 the pool has emptied (the head pool never gets
 *      there, types.h) and pmi_pool_emptied decides where it goes.
 * No counter is written: frees are counted as mallocs less blocks in use
 * (stats.c).  It never reads the block being freed (only writes its link),
 * so a free of a block that is not in cache does not wait for it.
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

/* units / (szidx + 1) for units < 256 without a division (the slow paths
 * and the collection of remote frees ask it for every block):
 * (units * ceil(2^16 / d)) >> 16 is exact there, as units * (the rounding
 * error, < d <= 32) stays below 2^16. */
#define PMI_RECIPROCAL(d) ((65536u + (d) - 1) / (d))
static const uint32_t class_reciprocal[PMI_NCLASSES] = {
#define PMI_R4(d) PMI_RECIPROCAL(d), PMI_RECIPROCAL(d + 1), PMI_RECIPROCAL(d + 2), PMI_RECIPROCAL(d + 3)
  PMI_R4(1), PMI_R4(5), PMI_R4(9), PMI_R4(13), PMI_R4(17), PMI_R4(21), PMI_R4(25), PMI_R4(29),
#undef PMI_R4
};
_Static_assert(PMI_NCLASSES == 32 && PMI_POOL_SIZE / PMI_ALIGNMENT <= 256, "the reciprocal table's range");

/* Why p is not a live block of its pool, or NULL if it is one; from the
 * descriptor alone, which only the owner may read cheaply. */
/* The common answer: a live bit is set exactly at the start of a block
 * handed out (types.h), so pmi_block_fault_owned's other tests only tell
 * which fault it is. */
static inline bool block_live_owned(pmi_pool *pool, const void *p) {
  unsigned units = pmi_block_units(p);
  return (pool->state == PMI_POOL_USED || pool->state == PMI_POOL_FULL) &&
         ((uintptr_t)p & (PMI_ALIGNMENT - 1)) == 0 && (*pmi_live_word(pool, units) & pmi_live_bit(units));
}

/* p's pool is EMPTY (its arena may have retired with it, a heap of an
 * exited thread freed to its last block): an empty pool keeps its class
 * and carved count until a purge or another class takes it (pool.c), and
 * a start of a block it carved was handed out and freed, or is a pointer
 * that only looks like one; else it never was a block. */
static const char *empty_pool_fault(const pmi_pool *pool, const void *p, const char *otherwise) {
  unsigned units = pmi_block_units(p);
  if (pool->state != PMI_POOL_EMPTY || pool->ncarved == 0 || ((uintptr_t)p & (PMI_ALIGNMENT - 1)) != 0) return otherwise;
  unsigned d = pool->szidx + 1u, index = (units * class_reciprocal[pool->szidx & (PMI_NCLASSES - 1)]) >> 16;
  if (index * d != units || index >= pool->ncarved) return otherwise;
  return "double free or corruption: block already freed (its pool is empty),";
}

const char *pmi_block_fault_owned(pmi_pool *pool, const void *p) {
  unsigned units = pmi_block_units(p);
  if (pmi_likely(block_live_owned(pool, p))) return NULL;
  if (pool->state != PMI_POOL_USED && pool->state != PMI_POOL_FULL)
    return empty_pool_fault(pool, p, "invalid pointer (inside an arena, but not in a pool in use):");
  unsigned d = pool->szidx + 1u, index = (units * class_reciprocal[pool->szidx & (PMI_NCLASSES - 1)]) >> 16;
  if (((uintptr_t)p & (PMI_ALIGNMENT - 1)) != 0 || index * d != units)
    return "invalid pointer (not the start of a block):";
  if (index >= pool->ncarved) return "invalid pointer (a block never handed out):";
  if (!(*pmi_live_word(pool, units) & pmi_live_bit(units)))
    return "double free or corruption: block already freed,";
  return NULL;
}

static const char fault_in_batch[] = "double free or corruption: block already freed by another thread,";

/* The same, and not waiting in a remote batch or thread_free stack. */
static const char *block_fault(pmi_pool *pool, const void *p) {
  const char *fault = pmi_block_fault_owned(pool, p);
  if (fault == NULL && ((const pmi_block *)p)->key == pmi_remote_key)
    fault = fault_in_batch;
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
  const char *fault = pmi_block_fault_owned(pool, block);   /* before anything is written */
  if (fault != NULL) pmi_bad_pointer("free", block, fault);
  block->key = 0;
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

pmi_noinline static void free_local_slow(void *p);

/* Everything that is not in a pool arena: the arena map's byte says which
 * kind of region p is in.  Outside all of ours it is a block the C library
 * handed out (before poolmalloc was loaded, or through __libc_malloc), or no
 * block at all. */
static void free_foreign(pmi_heap *heap, void *p) {
  switch (pmi_arenamap_kind(p)) {
  case PMI_REGION_MEDIUM:   /* misaligned: medium.c's checks report it */
    pmi_medium_free(heap, p);
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
  if (!pmi_libc_owns(p)) {
    if (pmi_huge_was_freed(p))
      pmi_bad_pointer("free", p, "double free or corruption: huge block already freed (its memory back with the OS),");
    pmi_bad_pointer("free", p, "invalid pointer (not from malloc):");
  }
  pmi_libc_free(p);   /* glibc's free keeps errno (2.33 and later) */
}

/* Everything free's first test sends away: NULL, foreign and huge blocks,
 * misaligned pointers (into a pool arena or not).  heap is the caller's own
 * (not pmi_heap_tls in debug mode). */
static void free_not_pool_core(pmi_heap *heap, void *p) {
  if (pmi_arenamap_kind(p) == PMI_REGION_POOLS) {   /* misaligned, in a pool arena */
    free_local_slow(p);
    return;
  }
  free_foreign(heap, p);
}

/* The one non-inlined function for all that is not a pool or medium block. */
pmi_noinline static void free_not_pool(void *p) {
  if (pmi_unlikely(pmi_debug_active)) {
    pmi_debug_free(p);
    return;
  }
  free_not_pool_core(pmi_heap_tls, p);
}

/* free_remote_pool's faults, out of line: the remote free needs no frame
 * (passing the heap it read made one).  A pointer in a pool page is here
 * only because that heap was NULL. */
_Noreturn pmi_noinline static void remote_pool_fault(void *p) {
  pmi_arena *arena = pmi_arena_of(p);
  if (((uintptr_t)p & (PMI_ARENA_SIZE - 1)) >= PMI_POOL_SIZE || pmi_load_relaxed(&arena->heap) == NULL)
    pmi_bad_pointer("free", p, empty_pool_fault(pmi_pool_of(arena, p), p, "invalid pointer (inside a retired arena):"));
  pmi_bad_pointer("free", p, "invalid pointer (inside an arena, but not in a pool in use):");
}

/* A pool block of another heap: what can be checked without the owner's
 * descriptor, then the hook.  p is 16-byte aligned: every caller comes from
 * free_core, whose map test finds no slot for a misaligned pointer. */
static void free_remote_pool(void *p) {
  pmi_heap *owner = atomic_load_explicit(&pmi_arena_of(p)->heap, memory_order_acquire);
  if (pmi_unlikely(owner == NULL) || pmi_unlikely(((uintptr_t)p & (PMI_ARENA_SIZE - 1)) < PMI_POOL_SIZE))
    remote_pool_fault(p);
  pmi_remote_free(owner, p);
}

/* A pool or medium block of another heap. */
static void free_remote(pmi_heap *heap, void *p) {
  if (pmi_arenamap_kind(p) == PMI_REGION_MEDIUM) pmi_medium_free(heap, p);   /* its owner is not heap: medium.c's remote side */
  else free_remote_pool(p);
}

/* What failed free's owner test: a pool or medium block of another heap;
 * a pointer in no pool arena or medium region (NULL, huge and foreign
 * blocks: their free-map slots name no owner, types.h); anything in debug
 * mode. */
static void free_not_owned_core(pmi_heap *heap, void *p) {
  if (pmi_arenamap_kind(p) < PMI_REGION_POOLS) free_not_pool_core(heap, p);
  else free_remote(heap, p);
}

/* The thread's heap is read only when it is needed: a pool block of
 * another heap needs none (every free is one of these in a
 * producer/consumer).  free(NULL) is first: programs free NULL as often as
 * any block (an optional field, a list's end), and it is done here rather
 * than on the fast path, which it would cost a test on every free.  r is p
 * rotated (pmi_rotate_units), whose map slot free_core has found in the map:
 * the map's byte is read without testing the bound again (a remote free
 * saves three instructions; passing the byte itself cost free's fast path
 * two moves). */
pmi_noinline static void free_not_local(void *p, uintptr_t r) {
  if (p == NULL) return;
  if (pmi_unlikely(pmi_debug_active)) {
    pmi_debug_free(p);
    return;
  }
  if (pmi_arenamap_slot_byte(pmi_arenamap_block_slot(r)) == PMI_REGION_POOLS) free_remote_pool(p);
  else free_not_owned_core(pmi_heap_tls, p);
}

static inline __attribute__((always_inline)) void free_pool_owned(pmi_heap *heap, pmi_pool *pool, void *p);

/* p failed block_live_owned: the report names the fault. */
_Noreturn pmi_noinline static void free_fault(pmi_pool *pool, void *p) {
  const char *fault = pmi_block_fault_owned(pool, p);
  pmi_bad_pointer("free", p, fault != NULL ? fault : "invalid pointer:");
}

/* A free of our own block that the fast path did not take: the pointer is
 * bad, or the pool is not USED (it is FULL, and this free relinks it).
 * Takes every check from the start, from the descriptor alone. */
pmi_noinline static void free_local_slow(void *p) {
  pmi_pool *pool = pmi_pool_of(pmi_arena_of(p), p);
  pmi_heap *heap = pmi_load_relaxed(&pmi_arena_of(p)->heap);
  if (heap == NULL) {   /* an arena in the reserve: no pool in use */
    const char *fault = block_fault(pool, p);
    pmi_bad_pointer("free", p, fault != NULL ? fault : empty_pool_fault(pool, p, "invalid pointer (inside a retired arena):"));
  }
  if (pmi_unlikely(heap != pmi_heap_tls) && heap != pmi_heap_own()) {   /* a misaligned pointer into another heap */
    pmi_heap_visit(heap);
    const char *fault = block_fault(pool, p);
    pmi_bad_pointer("free", p, fault != NULL ? fault : "invalid pointer (not the start of a block):");
  }
  free_pool_owned(heap, pool, p);
}

/* free_local_slow once heap is known to own p's arena: the checks and the
 * live bit inside the owner's bracket, as a FULL pool's descriptor is also
 * written by visitors (remote.c). */
static inline __attribute__((always_inline)) void free_pool_owned(pmi_heap *heap, pmi_pool *pool, void *p) {
  int saved = errno;
  bool locked = pmi_heap_enter(heap);
  if (pmi_unlikely(!block_live_owned(pool, p))) free_fault(pool, p);   /* the same test, inline */
  /* The remote mark (block_fault's last check) is loaded now and tested
   * after the free: the block's line is usually not in cache (larson), and
   * nothing here depends on it, so the miss overlaps the rest; a block
   * still waiting in a remote batch ends the program all the same. */
  uintptr_t key = ((const pmi_block *)p)->key;
  unsigned units = pmi_block_units(p);
  *pmi_live_word(pool, units) &= ~pmi_live_bit(units);
  if (pmi_likely(pool->state == PMI_POOL_FULL && pool->held == NULL)) {   /* pmi_free_block's common case */
    pmi_pool_push(pool, p);
    pool->used--;
    pmi_usedpools_append(heap, pool);   /* FULL -> USED */
  } else {
    pmi_free_block(heap, pool, p);
  }
  if (pmi_unlikely(key == pmi_remote_key))
    pmi_bad_pointer("free", p, fault_in_batch);
  pmi_heap_leave(heap, locked);
  pmi_purge_kick();
  errno = saved;
}

/* free's fast path found heap's own block but not a live one in a USED
 * pool or region: each kind's slow path, with every check from the start. */
pmi_noinline static void free_own_slow(void *p, pmi_heap *heap) {
  if (heap == NULL) heap = pmi_heap_tls;   /* the exported free's: its owner test read no heap */
  if (pmi_arenamap_kind(p) == PMI_REGION_MEDIUM) pmi_medium_free(heap, p);
  else free_pool_owned(heap, pmi_pool_of(pmi_arena_of(p), p), p);   /* heap owns the arena: free_core's test */
}

/* The same, for a block whose live bit the fast path found set in a
 * descriptor d that is not USED: most often a FULL pool's first free (once
 * a pool cycle: a batch dropped), with d, as the fast path found it, in
 * the register the call passes it in.  free_pool_owned checks the block
 * again, in the bracket. */
pmi_noinline static void free_own_unused(void *p, pmi_desc *d, pmi_heap *heap) {
  if (heap == NULL) heap = pmi_heap_tls;
  if (pmi_desc_is_medium(d)) pmi_medium_free(heap, p);
  else free_pool_owned(heap, (pmi_pool *)d, p);   /* an arena's header slot (HEADER) fails its checks there */
}

/* --used reached 0: the pool or region emptied.  A pool stays as a spare
 * while the heap keeps fewer than PMI_SPARES_QUIET (no lock: only the owner
 * writes nspare), which is the common case: a batch or a tree dropped;
 * beyond, pmi_pool_emptied also tells the purge thread. */
pmi_noinline static void desc_emptied(pmi_heap *heap, pmi_desc *d) {
  if (heap == NULL) heap = pmi_heap_tls;
  if (pmi_desc_is_medium(d)) {
    pmi_medium_emptied(heap, (pmi_medium *)d);
  } else if (pmi_likely(heap->nspare < PMI_SPARES_QUIET)) {
    heap->nspare++;
  } else if (heap->nspare < PMI_SPARE_POOLS && pmi_load_relaxed(&pmi_heap_fenceless) &&
             pmi_load_relaxed(&pmi_purge_wanted) && atomic_load(&pmi_purge_running)) {
    /* pmi_pool_emptied's note and kick would find the purge thread told and
     * running, and with membarrier it shows the spare to no visitor */
    heap->nspare++;
  } else {
    pmi_pool_emptied(heap, (pmi_pool *)d);
  }
}

/* The fast path, shared by pm_free and pmi_free; heap is the caller's, or
 * NULL for the exported free, whose slow paths read it themselves.  One
 * path for pool and medium blocks (types.h, "the descriptor the fast paths
 * read"): p's slot of the free map holds the owner, the header and the
 * masks that find the descriptor and the live word, so that the branches taken
 * do not depend on which kind p is, and no load waits for the arena map's
 * byte.  (The masks by the byte, from a table, put two loads one after the
 * other before the descriptor's: random pairs of 8..512 bytes 11.8 ns
 * against 9.5.  A compare of the byte with the pool kind first, constant
 * masks for pool blocks, saved as much for pool blocks, but its branch
 * mispredicts where pool and medium frees mix: larson lost 7 %.) */
static inline __attribute__((always_inline)) void free_core(pmi_heap *heap, void *p, bool core) {
  uintptr_t r = pmi_rotate_units(p);   /* low bits: p's 16-byte unit number */
  uintptr_t slot = pmi_arenamap_block_slot(r);
  if (pmi_unlikely(!pmi_arenamap_slot_in_map(slot))) {   /* misaligned, or beyond the map */
    if (core) free_not_pool_core(heap, p);
    else free_not_pool(p);
    return;
  }
  /* The owner: the thread whose heap holds the arena or region, by its
   * thread pointer, or 0 for a pointer in neither (a slot of kind NONE or
   * HUGE, whose entry is 0) and for a heap no thread owns, so that one test
   * sends away those and the blocks of other threads' heaps; no load of the
   * heap from TLS, nor of the header's heap after the entry (types.h,
   * pmi_free_slot).  The core (debug mode's) compares with its heap's tp,
   * which no entry of another heap and no slot without one holds.  The
   * owner is a relaxed load (a thread's exit clears it while other threads
   * free into its heap), which costs nothing: the compare reads %fs:0
   * itself.  The rest are plain reads (written only while no thread owns
   * the region), so that the compiler folds them into the and and the xor,
   * as it cannot with relaxed loads. */
  const pmi_free_slot *f = &pmi_freemap[slot];   /* written before pmi_arenamap_slots was */
  uintptr_t owner = __atomic_load_n(&f->owner, __ATOMIC_RELAXED);
  if (pmi_unlikely(core ? owner != heap->tp || owner == 0 : owner != pmi_thread_pointer())) {
    if (core) free_not_owned_core(heap, p);
    else free_not_local(p, r);
    return;
  }
  uintptr_t header = f->header;
  pmi_desc *d = (pmi_desc *)(header ^ (((uintptr_t)p >> 6) & f->desc_mask));   /* a pool's: types.h, the arena layout */
  uintptr_t wo = (r >> 3) & f->word_mask;   /* live[(r >> 6) % WORDS], in bytes */
  uint64_t w = *(uint64_t *)((char *)d->live + wo);
  /* the bit tested and cleared in w by one btr; w is stored only once the
   * pool's state has passed too (nothing is written before) */
  if (pmi_unlikely(!pmi_bit_take(&w, r))) {
    free_own_slow(p, heap);
    return;
  }
  if (pmi_unlikely(d->state != PMI_POOL_USED)) {
    free_own_unused(p, d, heap);
    return;
  }
  d = (pmi_desc *)pmi_opaque((uintptr_t)d);   /* the store at d + 32 + wo, as the load (no lea) */
  *(uint64_t *)((char *)d->live + wo) = w;
  pmi_link_set(p, d->freeblock);
  d->freeblock = p;
  if (pmi_unlikely(pmi_used_dec_release(&d->used) == 0)) desc_emptied(heap, d);
}

/* The core underneath the debug allocator: the thread's own heap. */
void pmi_free(void *p) { free_core(pmi_heap_mine(), p, true); }

pmi_export void pm_free(void *p) { free_core(NULL, p, false); }

/* The C library's name for it: as malloc's (alloc.c). */
#if defined(PM_SHARED_LIBRARY) && !defined(PMI_TSAN)
pmi_export extern __typeof__(pm_free) free __attribute__((alias("pm_free")));

/* C++'s operator delete and delete[] (api/new.c): free's fast path itself,
 * as operator new is malloc's (alloc.c).  Copies, not second names of
 * pm_free: a profiler, a debugger or objdump would name free after one of
 * them. */
pmi_export void _ZdlPv(void *p) { free_core(NULL, p, false); }
pmi_export void _ZdaPv(void *p) { free_core(NULL, p, false); }
/* The sized forms, which a program built with -fsized-deallocation (the
 * default from C++14) calls for every delete of a complete type: the C++
 * library's end in the two above through a call of their own (4
 * instructions a delete more).  The size is not needed: the block's
 * address finds its class. */
pmi_export void _ZdlPvm(void *p, size_t size) {
  (void)size;
  free_core(NULL, p, false);
}
pmi_export void _ZdaPvm(void *p, size_t size) {
  (void)size;
  free_core(NULL, p, false);
}
#endif

pmi_export void pm_free_sized(void *p, size_t size) { pm_free(p); }
pmi_export void pm_free_aligned_sized(void *p, size_t alignment, size_t size) { pm_free(p); }
