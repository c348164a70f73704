/* alloc.c: malloc and its relatives.  The fast path is pm_malloc: one TLS
 * load, one table lookup, pop the pool's free list.  Everything else goes to
 * pmi_malloc_generic, which is not inlined. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "core/internal.h"

/* ---- the small-object slow path ---------------------------------------- */

/* Serves one block of the class of size from heap, which the caller owns
 * with its lock held (or holds the lock of, for an unowned heap).  Collects
 * remote frees first, then: the head pool's free list, its untouched tail,
 * else the head is full and leaves, else a fresh pool from the fullest arena. */
void *pmi_heap_malloc_small(pmi_heap *heap, size_t size) {
  unsigned c = pmi_size_class(size);
  if (pmi_heap_has_remote(heap)) pmi_heap_collect_locked(heap);
  pmi_pool *pool;
  for (;;) {
    pool = heap->usedpools[c];
    if (pool == &pmi_pool_sentinel) {
      pool = pmi_arena_take_pool(heap);
      if (pool == NULL) return NULL;          /* errno is ENOMEM */
      pmi_pool_init(heap, pool, c);
      pmi_usedpools_push(heap, pool);
    }
    if (pool->freeblock != NULL) break;
    if (pool->ncarved < pool->capacity) {
      pmi_pool_carve(pool);
      break;
    }
    pmi_usedpools_unlink(heap, pool);          /* USED -> FULL */
    pool->state = PMI_POOL_FULL;
  }
  heap->counters.malloc_small++;
  return pmi_pool_pop(pool, pool->freeblock);
}

pmi_noinline void *pmi_malloc_generic(pmi_heap *heap, size_t size) {
  void *p;
  if (heap == &pmi_heap_empty) {                 /* first malloc of this thread */
    heap = pmi_heap_for_thread();
    if (heap == NULL) {                          /* past its own exit */
      if (size - 1 < PMI_SMALL_MAX) return pmi_heap_malloc_locked(size);
      if (size == 0) return pmi_heap_malloc_locked(1);
      goto large;
    }
  }
  if (size - 1 >= PMI_SMALL_MAX) {
    if (size != 0) goto large;
    size = 1;                                    /* malloc(0): a unique block */
  }
  /* The common reason to be here: the head pool's list ran dry but its
   * untouched tail has blocks.  Carving needs no lock (only the owner
   * touches its pools); anything that splices a list does. */
  pmi_pool *pool = heap->usedpools[pmi_size_class(size)];
  if (pool->freeblock == NULL && pool->ncarved < pool->capacity &&
      pmi_load_relaxed(&heap->thread_free) == NULL) {
    heap->counters.malloc_small++;
    return pmi_pool_pop(pool, pmi_pool_carve(pool));
  }
  pmi_remote_flush();   /* this thread's batches of frees for other heaps */
  pmi_heap_lock(heap);
  p = pmi_heap_malloc_small(heap, size);
  pmi_heap_unlock(heap);
  pmi_purge_kick();
  if (pmi_unlikely(p == NULL) && pmi_release_all()) {   /* out of address space */
    pmi_heap_lock(heap);
    p = pmi_heap_malloc_small(heap, size);
    pmi_heap_unlock(heap);
  }
  return p;

large:
  if (size > PTRDIFF_MAX) {
    errno = ENOMEM;
    return NULL;
  }
  p = pmi_large_malloc(size);
  if (pmi_unlikely(p == NULL) && pmi_release_all()) p = pmi_large_malloc(size);
  return p;
}

/* The large path's calls, retried once after pmi_release_all() has given
 * back what the reserve, the decay and the other heaps held: memory this
 * program freed serves its next request of any size. */
pmi_noinline static void *large_calloc(size_t total) {
  void *p = pmi_large_calloc(1, total);
  if (pmi_unlikely(p == NULL) && pmi_release_all()) p = pmi_large_calloc(1, total);
  return p;
}

pmi_noinline static void *large_realloc(void *p, size_t size) {
  void *q = pmi_large_realloc(p, size);
  if (pmi_unlikely(q == NULL) && pmi_release_all()) q = pmi_large_realloc(p, size);
  return q;
}

pmi_noinline static void *large_memalign(size_t alignment, size_t size) {
  void *p = pmi_large_memalign(alignment, size);
  if (pmi_unlikely(p == NULL) && pmi_release_all()) p = pmi_large_memalign(alignment, size);
  return p;
}

/* The fast path, shared by pm_malloc and pmi_malloc (no debug dispatch). */
static inline __attribute__((always_inline)) void *malloc_core(size_t size) {
  pmi_heap *heap = pmi_heap_tls;
  if (pmi_likely(size - 1 < PMI_SMALL_MAX)) {    /* 1..512; 0 wraps around */
    pmi_pool *pool = heap->usedpools[pmi_size_class(size)];
    pmi_block *block = pool->freeblock;
    if (pmi_likely(block != NULL)) {
      heap->counters.malloc_small++;
      return pmi_pool_pop(pool, block);
    }
  }
  return pmi_malloc_generic(heap, size);
}

void *pmi_malloc(size_t size) { return malloc_core(size); }

pmi_export void *pm_malloc(size_t size) {
  if (pmi_unlikely(pmi_debug_active)) return pmi_debug_malloc(size);
  return malloc_core(size);
}

/* ---- calloc, realloc ------------------------------------------------------ */

static void count(size_t offset) {
  pmi_heap *heap = pmi_heap_tls;
  if (heap != &pmi_heap_empty) (*(uint64_t *)((char *)&heap->counters + offset))++;
}
#define PMI_COUNT(field) count(offsetof(pmi_counters, field))

pmi_export void *pm_calloc(size_t n, size_t size) {
  size_t total;
  if (pmi_unlikely(__builtin_mul_overflow(n, size, &total) || total > PTRDIFF_MAX)) {
    errno = ENOMEM;
    return NULL;
  }
  PMI_COUNT(calloc_calls);
  if (pmi_unlikely(pmi_debug_active)) return pmi_debug_calloc(n, size);
  if (total <= PMI_SMALL_MAX) {
    /* Pool blocks are recycled, so they are cleared; the large path (the C
     * library) skips clearing for memory fresh from the OS. */
    void *p = pm_malloc(total);
    if (p != NULL) memset(p, 0, total == 0 ? 1 : total);
    return p;
  }
  return large_calloc(total);
}

pmi_export void *pm_realloc(void *p, size_t size) {
  if (p == NULL) return pm_malloc(size);
  PMI_COUNT(realloc_calls);
  if (pmi_unlikely(pmi_debug_active)) return pmi_debug_realloc(p, size);
  if (size == 0) {            /* glibc: frees the block and returns NULL */
    pm_free(p);
    return NULL;
  }
  if (size > PTRDIFF_MAX) {
    errno = ENOMEM;
    return NULL;
  }
  if (pmi_arenamap_contains(p)) {
    pmi_pool *pool = pmi_check_live_block("realloc", p);
    size_t old = pmi_class_size(pool->szidx);
    if (size <= old && size > old - PMI_ALIGNMENT) {   /* same size class */
      PMI_COUNT(realloc_inplace);
      return p;
    }
    void *q = pm_malloc(size);
    if (q == NULL) return NULL;                        /* p stays valid */
    memcpy(q, p, size < old ? size : old);
    pm_free(p);
    return q;
  }
  /* A large block, or one the C library handed out itself. */
  if (((uintptr_t)p & (PMI_ALIGNMENT - 1)) != 0 || !pmi_libc_owns(p))
    pmi_fatal("realloc(): invalid pointer (not from malloc): %p", p);
  if (size <= PMI_SMALL_MAX) {
    size_t old = pmi_large_usable_size(p);
    void *q = pm_malloc(size);
    if (q == NULL) return NULL;
    memcpy(q, p, size < old ? size : old);
    pmi_large_free(p);
    return q;
  }
  return large_realloc(p, size);
}

pmi_export void *pm_reallocarray(void *p, size_t n, size_t size) {
  size_t total;
  if (__builtin_mul_overflow(n, size, &total)) {
    errno = ENOMEM;
    return NULL;
  }
  return pm_realloc(p, total);
}

/* ---- aligned allocation ------------------------------------------------- */

/* Blocks of class size s sit at multiples of s from a 4 KiB-aligned pool, so
 * a request rounded up to a multiple of a power-of-two alignment <= 512 is
 * served, aligned, from the pools at malloc's cost (C++'s aligned new takes
 * this path).  Anything larger goes to the large path. */
static void *aligned_alloc_checked(size_t alignment, size_t size) {
  PMI_COUNT(aligned_calls);
  if (pmi_unlikely(pmi_debug_active)) return pmi_debug_memalign(alignment, size);
  if (alignment <= PMI_ALIGNMENT) return pm_malloc(size);
  if (size > PTRDIFF_MAX || alignment > PTRDIFF_MAX / 2) {
    errno = ENOMEM;
    return NULL;
  }
  size_t rounded = (size + alignment - 1) & ~(alignment - 1);
  if (rounded == 0) rounded = alignment;
  if (rounded <= PMI_SMALL_MAX) return pm_malloc(rounded);
  return large_memalign(alignment, size);
}

/* a <= 2^63 */
static size_t round_up_pow2(size_t a) {
  if (a <= 1) return 1;
  return (size_t)1 << (64 - __builtin_clzl(a - 1));
}

/* As glibc 2.36: an alignment above 2^63 can be no power of two and is
 * EINVAL; any other is rounded up to one, so that a request too large to
 * serve (2^63, or 2^62 + 1 rounded up to it) fails with ENOMEM. */
pmi_export void *pm_memalign(size_t alignment, size_t size) {
  if (alignment > SIZE_MAX / 2 + 1) {
    errno = EINVAL;
    return NULL;
  }
  return aligned_alloc_checked(round_up_pow2(alignment), size);
}

pmi_export void *pm_aligned_alloc(size_t alignment, size_t size) {
  return pm_memalign(alignment, size);   /* glibc 2.36 treats both alike */
}

pmi_export int pm_posix_memalign(void **out, size_t alignment, size_t size) {
  if (alignment < sizeof(void *) || (alignment & (alignment - 1)) != 0) return EINVAL;
  int saved = errno;
  void *p = aligned_alloc_checked(alignment, size);
  if (p == NULL) {
    errno = saved;
    return ENOMEM;
  }
  *out = p;
  return 0;
}

pmi_export void *pm_valloc(size_t size) { return pm_memalign(pmi_os_page_size(), size); }

pmi_export void *pm_pvalloc(size_t size) {
  size_t page = pmi_os_page_size();
  if (size > PTRDIFF_MAX) {
    errno = ENOMEM;
    return NULL;
  }
  size_t rounded = (size + page - 1) & ~(page - 1);
  return pm_memalign(page, rounded == 0 ? page : rounded);
}

pmi_export size_t pm_malloc_usable_size(void *p) {
  if (pmi_unlikely(pmi_debug_active)) return pmi_debug_usable_size(p);
  if (p == NULL) return 0;
  if (pmi_arenamap_contains(p)) return pmi_pool_block_size_of(p);
  return pmi_large_usable_size(p);
}

pmi_export int pm_owns(const void *p) { return pmi_arenamap_contains(p); }
