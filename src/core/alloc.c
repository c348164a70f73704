/* alloc.c: malloc and its relatives.  The fast path is pm_malloc
 * (front_pop), for pool and medium blocks alike: the TLS heap, the front
 * class of the size from pmi_front.classes, the head pool or
 * region of that class from heap->front, its first free block; the block's
 * decoded link is checked to stay in its pool or region before it becomes
 * the new head of the list; the used count, the block's live bit and the
 * heap's per-class malloc counter are updated.  Nothing else is tested:
 * there is no debug-mode branch (diag/diag.h, "debug.c").  Everything else
 * goes to pmi_malloc_generic, which is not inlined. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "core/internal.h"

/* ---- the small-object slow path ---------------------------------------- */

/* The maps could not be reserved (pmi_libc_only): every call that reaches
 * a slow path goes to the C library.  Known once the process is set up,
 * which this call may be the first to do. */
static inline bool to_libc(void) {
  pmi_process_init();
  return pmi_libc_only;
}

/* A pool from the fullest arena, set up for class c and pushed as the head
 * of usedpools[c] (an exhausted head before it leaves, FULL); NULL when the
 * OS refuses (errno ENOMEM).  Inside the caller's pmi_heap_enter/leave.
 * Spares beyond the quiet ones go back first when the pool would touch a
 * fresh page (the head arena's first free pool is untouched or purged, or
 * there is no arena): a change of classes between phases takes the pages
 * the last phase left instead of growing the footprint. */
static pmi_pool *fresh_head(pmi_heap *heap, unsigned c) {
  if (heap->nspare > PMI_SPARES_QUIET &&
      (heap->usable_arenas == NULL || heap->usable_arenas->freepools->ncarved == 0))
    pmi_heap_trim_spares(heap, PMI_SPARES_QUIET);
  pmi_pool *pool = pmi_arena_take_pool(heap);
  if (pool == NULL) return NULL;
  pmi_pool_init(heap, pool, c);
  pmi_usedpools_push(heap, pool);
  return pool;
}

/* Serves one block of the class of size from heap, which the caller owns
 * inside pmi_heap_enter/leave (or holds the lock of, for an unowned heap).  Collects
 * remote frees first, then: the head pool's free list, its untouched tail,
 * else the head is full and leaves, else a fresh pool from the fullest arena. */
void *pmi_heap_malloc_small(pmi_heap *heap, size_t size) {
  unsigned c = pmi_size_class(size);
  if (pmi_heap_has_remote(heap)) pmi_heap_collect_locked(heap);
  pmi_pool *pool;
  for (;;) {
    pool = heap->usedpools[c];
    if (pool == &pmi_pool_sentinel) {
      pool = fresh_head(heap, c);
      if (pool == NULL) return NULL;          /* errno is ENOMEM */
    }
    if (pool->freeblock != PMI_LIST_END) break;
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

/* Above the pools: a medium class (its fast path failed), else a mapping of
 * its own. */
static void *malloc_medium(pmi_heap *heap, size_t size) {
  unsigned c = pmi_medium_class_fast(size);   /* the front table: one load */
  void *p = pmi_medium_malloc_slow(heap, c);
  if (pmi_unlikely(p == NULL)) {   /* as malloc_huge */
    pmi_release_all();
    p = pmi_medium_malloc_slow(heap, c);
  }
  return p;
}

static void *malloc_huge(size_t size) {
  if (size > PTRDIFF_MAX) {
    errno = ENOMEM;
    return NULL;
  }
  void *p = pmi_huge_malloc(size, 0, false);
  /* Out of memory or address space: what the reserves, the decay and the
   * other heaps hold goes back first (purge.c), then one more try. */
  if (pmi_unlikely(p == NULL)) {
    pmi_release_all();
    p = pmi_huge_malloc(size, 0, false);
  }
  return p;
}

static void *malloc_slow(pmi_heap *heap, size_t size);

/* A thread without a heap: its first malloc, or one past its own exit. */
static void *malloc_without_heap(size_t size) {
  pmi_heap *heap = pmi_heap_for_thread();
  if (heap == NULL) return pmi_heap_malloc_locked(size == 0 ? 1 : size);   /* past its own exit */
  return malloc_slow(heap, size);
}

/* Everything malloc_core does not serve: the head pool or region of the
 * class has no free block, size 0, or a huge size; and every call with
 * pmi_heap_empty (its heads are all empty, so a thread without a heap, or
 * in debug mode, arrives here without a test of its own).  Size first: it
 * arrives in the first argument register and stays there, so that malloc's
 * fast path reaches here without moving it. */
pmi_noinline static void *malloc_slow(pmi_heap *heap, size_t size);
static inline __attribute__((always_inline)) void *malloc_next_pool(pmi_heap *heap, pmi_pool *head);

/* The head of the class is exhausted and a pool follows it, which
 * desc_pop_last could not make the head when the last block left (remote
 * frees waited, or no pool had a free block yet), taken before
 * malloc_slow's dispatch and frame.  Anything else, malloc_slow. */
pmi_noinline static void *malloc_head_exhausted(pmi_heap *heap, pmi_pool *head, size_t size) {
  void *p = malloc_next_pool(heap, head);
  if (pmi_likely(p != NULL)) {
    pmi_purge_kick();
    return p;
  }
  return malloc_slow(heap, size);
}

/* The head pool's list is empty and its untouched tail has blocks (a fresh
 * head, drained_fresh), with no remote frees to collect first.  Carving
 * needs no lock (only the owner touches its pools); anything that splices
 * a list does.  The sentinel has no capacity. */
static inline bool head_has_tail(pmi_heap *heap, const pmi_pool *head) {
  return head->freeblock == PMI_LIST_END && head->ncarved < head->capacity &&
         pmi_load_relaxed(&heap->thread_free) == NULL;
}
static inline void *head_carve(pmi_heap *heap, pmi_pool *head) {
  heap->counters.malloc_small++;
  return pmi_pool_pop(head, pmi_pool_carve(head));
}

pmi_noinline void *pmi_malloc_generic(size_t size, pmi_heap *heap) {
  if (pmi_likely(size - 1 < PMI_SMALL_MAX)) {   /* pmi_heap_empty's heads are the sentinel: never exhausted with a next */
    pmi_pool *head = heap->usedpools[(size - 1) >> PMI_ALIGNMENT_SHIFT];
    if (head->freeblock == PMI_LIST_END) {
      /* a fresh head not carved yet, without malloc_slow's frame: once a pool */
      if (head_has_tail(heap, head)) return head_carve(heap, head);
      /* nextpool relaxed: a visitor may unlink the pool after the head (remote.c, pool.c) */
      if (head->ncarved == head->capacity && __atomic_load_n(&head->nextpool, __ATOMIC_RELAXED) != NULL &&
          !pmi_remote_batched)
        return malloc_head_exhausted(heap, head, size);
    }
  } else if (pmi_likely(size - PMI_MEDIUM_MIN <= PMI_MEDIUM_MAX - PMI_MEDIUM_MIN) && heap != &pmi_heap_empty) {
    return malloc_medium(heap, size);   /* as malloc_slow's first test, without its frame */
  }
  if (heap == &pmi_heap_empty) {   /* no heap yet, or debug mode (every call) */
    if (pmi_unlikely(to_libc())) return pmi_libc_malloc(size);
    if (pmi_unlikely(pmi_debug_active)) return pmi_debug_malloc(size);
    return malloc_without_heap(size);
  }
  return malloc_slow(heap, size);
}

static void *pool_head_drained(pmi_heap *heap, pmi_pool *head, pmi_block *block);

/* malloc's fast path found its link check failed: the last block of the
 * list (counted here, as the fast path counts its own), or a corrupt link
 * (each kind's own report).  A pool's head that gave its last block makes
 * its transition here, as pymalloc does at the pop of the last block, so
 * that the next malloc of the class finds a head with a free block: one
 * slow call a pool cycle where the exhausted head cost a second one (and
 * two mispredicted branches, not one). */
__attribute__((returns_nonnull)) pmi_noinline static void *desc_pop_last(pmi_desc *d, pmi_block *block,
                                                                        pmi_heap *heap, uintptr_t fc) {
  heap->front_mallocs[fc]++;
  if (pmi_desc_is_medium(d)) return pmi_medium_pop_front_last(heap, (pmi_medium *)d, block, (unsigned)fc - PMI_NCLASSES);
  return pool_head_drained(heap, (pmi_pool *)d, pmi_pool_take_last((pmi_pool *)d, block));
}

/* The head pool is exhausted (its last block left through the fast path,
 * pool_head_drained could not move on) and the next pool of the list, a
 * spare or one a free relinked, has blocks.  The head goes to the back of
 * the list (pmi_usedpools_head_rotate) and the next one serves,
 * as pmi_heap_malloc_small would do it, without its walk; with remote frees
 * to collect, that walk (NULL).  In the bracket: the purge thread may give
 * the next pool back, and remote.c writes the remote lists. */
static inline __attribute__((always_inline)) void *malloc_next_pool(pmi_heap *heap, pmi_pool *head) {
  void *p = NULL;
  bool locked = pmi_heap_enter(heap);
  pmi_pool *next = head->nextpool;
  if (next != NULL && next->freeblock != PMI_LIST_END && !pmi_heap_has_remote(heap)) {
    pmi_usedpools_head_rotate(heap, head);   /* to the back, still USED; next is the head */
    heap->counters.malloc_small++;
    p = pmi_pool_pop(next, next->freeblock);
  }
  pmi_heap_leave(heap, locked);
  return p;
}

/* The head pool of its class just gave its last free block (head, the
 * caller's own heap's).  What malloc_slow would do at the next call, done
 * now: carve the head's untouched tail, else make the next pool with a
 * free block the head, the drained one going to the back of the list,
 * still USED (pmi_usedpools_head_rotate: its frees take free's fast path).
 * Pools behind the head that are exhausted too (drained heads whose turn
 * came round before any of their blocks came back) leave the list on the
 * way, USED -> FULL, as malloc_slow would unlink them; the first free into
 * one relinks it; with no pool with a free block behind the head, a fresh
 * pool from the fullest arena becomes the head (drained_fresh).  Nothing
 * when the slow path has more to do first: remote frees to collect before
 * fresh blocks are carved or a pool leaves, or this thread's batches to
 * flush (then the head stays exhausted, types.h).  block, the head's last one, is
 * returned through the calls, so that desc_pop_last's call of the move is a
 * tail call (the move, out of line, saves the registers it needs itself). */
static void *pool_head_quick(pmi_heap *heap, pmi_pool *head, pmi_block *block);
static inline __attribute__((always_inline)) void *pool_head_drained(pmi_heap *heap, pmi_pool *head, pmi_block *block) {
  if (head->ncarved < head->capacity) {
    if (pmi_load_relaxed(&heap->thread_free) == NULL) pmi_pool_carve(head);   /* no lock: as malloc_slow */
    return block;
  }
  if (pmi_unlikely(pmi_remote_batched)) return block;
  return pool_head_quick(heap, head, block);
}

/* The exhausted pools from next on leave the list (USED -> FULL); the
 * first pool with room, or NULL.  In the bracket. */
pmi_noinline static pmi_pool *pools_skip_exhausted(pmi_heap *heap, pmi_pool *next) {
  while (next != NULL && next->freeblock == PMI_LIST_END && next->ncarved == next->capacity) {
    pmi_pool *after = next->nextpool;
    pmi_usedpools_unlink(heap, next);
    next->state = PMI_POOL_FULL;
    next = after;
  }
  return next;
}

/* The drained head had no pool behind it to serve: a fresh pool becomes
 * the head now, and the drained one goes FULL (pmi_usedpools_push); its
 * first free relinks it behind the fresh one.  The next malloc of the
 * class would take that pool all the same (malloc_slow, through
 * pmi_heap_malloc_small's walk), unless a free came first; taken here, in
 * the call that is on its slow path already, it costs one trip through
 * the slow path a pool, not two (a batch of 100,000 blocks of 8..512
 * bytes built and freed in reverse order: 130 -> 125 instructions a malloc
 * and free).  Its page is not touched until a malloc carves it
 * (pmi_malloc_generic's first test).  It also ends a malloc/free loop at
 * a pool's brim, whose one free block is always the last (BM_pair/240 in
 * a pool with one block free: 13 ns a pair against 7.5 when every malloc
 * of the loop came here): from the first drain, the loop runs on the
 * fresh pool's fast path.  A fresh pool that fails leaves errno as it
 * was: this malloc has its block. */
static bool drained_fresh(pmi_heap *heap, pmi_pool *head) {
  int saved = errno;
  bool fresh = fresh_head(heap, head->szidx) != NULL;
  errno = saved;
  return fresh;
}

/* The drained head's move to the back of its list, in the bracket. */
pmi_noinline static void *pool_head_next(pmi_heap *heap, pmi_pool *head, pmi_block *block) {
  bool locked = pmi_heap_enter(heap);
  pmi_pool *next = head->nextpool;   /* again, in the bracket: a visitor may give a spare back */
  bool moved = false;
  if (!pmi_heap_has_remote(heap)) {
    if (next != NULL && pmi_unlikely(next->freeblock == PMI_LIST_END)) next = pools_skip_exhausted(heap, next);
    moved = next != NULL && next->freeblock != PMI_LIST_END;
    if (moved) pmi_usedpools_head_rotate(heap, head);   /* next is the head */
    else moved = drained_fresh(heap, head);
  }
  pmi_heap_leave(heap, locked);
  if (moved) pmi_purge_kick();
  return block;
}

/* The kick after a move, out of line: pool_head_quick keeps no frame. */
pmi_noinline static void *kick_after_move(pmi_block *block) {
  pmi_purge_kick_slow();
  return block;
}

/* pool_head_quick's other common case, in its bracket: no pool behind the
 * head, and nothing to collect (a batch being built), so that the fresh
 * head does not cost a second bracket and pool_head_next's checks. */
pmi_noinline static void *quick_fresh(pmi_heap *heap, pmi_pool *head, pmi_block *block) {
  bool fresh = drained_fresh(heap, head);
  pmi_heap_leave(heap, false);
  if (fresh) pmi_purge_kick();
  return block;
}

/* pool_head_next's common cases, with no frame of its own (one in 2-5 % of
 * a batch's mallocs comes here; the frame that pool_head_next's rarer cases
 * need cost it 14 of its 60 instructions): no visitor, nothing to collect,
 * and the pool behind the head has a free block, or no pool is behind it
 * (quick_fresh).  Everything else, from the start, in pool_head_next. */
pmi_noinline static void *pool_head_quick(pmi_heap *heap, pmi_pool *head, pmi_block *block) {
  if (pmi_likely(pmi_heap_enter_quick(heap))) {
    pmi_pool *next = head->nextpool;   /* in the bracket: a visitor may give a spare back */
    if (next == NULL && !pmi_heap_has_remote(heap)) return quick_fresh(heap, head, block);
    if (pmi_likely(next != NULL && next->freeblock != PMI_LIST_END && !pmi_heap_has_remote(heap))) {
      pmi_usedpools_head_rotate(heap, head);   /* next is the head */
      pmi_heap_leave(heap, false);
      if (pmi_unlikely(pmi_load_relaxed(&pmi_purge_wanted)) && !atomic_load(&pmi_purge_running))
        return kick_after_move(block);   /* pmi_purge_kick */
      return block;
    }
    pmi_heap_leave(heap, false);
  }
  return pool_head_next(heap, head, block);
}

pmi_noinline static void *malloc_slow(pmi_heap *heap, size_t size) {
  void *p;
  if (pmi_likely(size - PMI_MEDIUM_MIN <= PMI_MEDIUM_MAX - PMI_MEDIUM_MIN)) return malloc_medium(heap, size);
  if (size > PMI_MEDIUM_MAX) return malloc_huge(size);
  if (size == 0) size = 1;                       /* malloc(0): a unique block */
  /* The head pool's list ran dry but its untouched tail has blocks
   * (pmi_malloc_generic takes this case first; here for malloc(0) and a
   * thread's first malloc from an adopted heap). */
  pmi_pool *pool = heap->usedpools[pmi_size_class(size)];
  if (head_has_tail(heap, pool)) return head_carve(heap, pool);
  pmi_remote_flush();   /* this thread's batches of frees for other heaps */
  if (pool->freeblock == PMI_LIST_END && pool->ncarved == pool->capacity && pool != &pmi_pool_sentinel) {
    p = malloc_next_pool(heap, pool);
    if (pmi_likely(p != NULL)) {
      pmi_purge_kick();
      return p;
    }
  }
  bool locked = pmi_heap_enter(heap);   /* the lock only while a visitor is there */
  p = pmi_heap_malloc_small(heap, size);
  pmi_heap_leave(heap, locked);
  pmi_purge_kick();
  if (pmi_unlikely(p == NULL)) {   /* out of address space: as malloc_huge */
    pmi_release_all();
    locked = pmi_heap_enter(heap);
    p = pmi_heap_malloc_small(heap, size);
    pmi_heap_leave(heap, locked);
  }
  return p;
}

/* The fast path, shared by malloc, calloc and the core's pmi_malloc: one
 * path for every size up to MEDIUM_MAX, pool block or medium block alike
 * (types.h, "the descriptor the fast paths read"), so that the branches it
 * takes do not depend on the size.  NULL: the slow path's turn (the head
 * pool or region of the class has no free block, or size is 0 or above
 * the medium classes). */
static inline __attribute__((always_inline)) void *front_pop(pmi_heap *heap, size_t size, bool last_is_slow) {
  /* 1..128 KiB (0 wraps around): a compare with a constant, not a field
   * of the heap, as the fast paths are bound by their loads (three a cycle
   * on x86-64 cores, against four ALU operations: llvm-mca, scripts/fastpath
   * --mca znver3); pmi_heap_empty's heads are all empty */
  if (pmi_likely(size - 1 < PMI_MEDIUM_MAX)) {
    /* The tables by front class from pmi_front itself, not through the heap:
     * the class's load then waits only for the size, alongside the heap's
     * two loads (TLS offset, thread pointer), instead of after them
     * (BM_pair_random/512 and llvm-mca's model: scripts/fastpath --mca) */
    const pmi_class_tables *t = &pmi_front.classes;
    uintptr_t fc = t->fclass[(size - 1) >> PMI_ALIGNMENT_SHIFT];
    pmi_desc *d = heap->front[fc];
    pmi_block *block = d->freeblock;
#if defined(__x86_64__)
    __asm__("" : "+a"(block));   /* the return value: loaded where it is returned (a mov less) */
#endif
    /* The link checked before it is followed: next ^ block stays below
     * the class's limit (in the pool or region), else the last block of
     * the list (next PMI_LIST_END), a corrupt link, or an empty list (block
     * is PMI_LIST_END, whose offset is all ones: internal.h) */
    uintptr_t offset = pmi_link_offset(block);
    fc = pmi_opaque(fc);
    if (pmi_unlikely(offset >= t->link_limit[fc])) {
      /* empty: the slow path; calloc: the slow path too, with no frame of its own for the call */
      if (last_is_slow || block == PMI_LIST_END) return NULL;
      return desc_pop_last(d, block, heap, fc);
    }
    fc = pmi_opaque(fc);
    heap->front_mallocs[fc]++;
    return pmi_desc_take(t, d, block, fc, offset);
  }
  return NULL;
}

static inline __attribute__((always_inline)) void *malloc_core(pmi_heap *heap, size_t size) {
  void *p = front_pop(heap, size, false);
  if (pmi_likely(p != NULL)) return p;
  return pmi_malloc_generic(size, heap);
}

/* The core underneath the debug allocator: the thread's own heap, which in
 * debug mode is not pmi_heap_tls. */
void *pmi_malloc(size_t size) {
  pmi_heap *heap = pmi_heap_mine();
  if (heap == &pmi_heap_empty) return malloc_without_heap(size);
  return malloc_core(heap, size);
}

pmi_export void *pm_malloc(size_t size) { return malloc_core(pmi_heap_tls, size); }

/* The C library's name for it, in the shared library a second name of the
 * same code (not a forward, which costs a jump on every call).  In the
 * static library api/override.c forwards, so that malloc stays in the
 * member a program pulls in only to replace the C library's, and so it does
 * in a ThreadSanitizer build (where the dynamic loader's first malloc,
 * before the sanitizer's runtime is initialised, would reach instrumented
 * code). */
#if defined(PM_SHARED_LIBRARY) && !defined(PMI_TSAN)
pmi_export extern __typeof__(pm_malloc) malloc __attribute__((alias("pm_malloc"), malloc, alloc_size(1)));
#endif

/* C++'s operator new and new[] (api/new.c): in the shared library malloc's
 * fast path itself, here, so that a block costs what a malloc costs (not a
 * call of malloc from a frame of their own); the slow path, and operator
 * new's answer to a failure, in api/new.c. */
#if defined(PM_SHARED_LIBRARY) && !defined(PMI_TSAN)
pmi_export void *_Znwm(size_t size) {
  pmi_heap *heap = pmi_heap_tls;
  void *p = front_pop(heap, size, false);
  if (pmi_likely(p != NULL)) return p;
  return pmi_new_generic(size, heap, "_Znwm");
}

pmi_export void *_Znam(size_t size) {
  pmi_heap *heap = pmi_heap_tls;
  void *p = front_pop(heap, size, false);
  if (pmi_likely(p != NULL)) return p;
  return pmi_new_generic(size, heap, "_Znam");
}
#endif

/* ---- calloc, realloc ------------------------------------------------------ */


pmi_noinline static void *calloc_slow(size_t n, size_t size, size_t total) {
  PMI_COUNT(calloc_calls);
  if (pmi_unlikely(to_libc())) return pmi_libc_calloc(n, size);
  if (pmi_unlikely(pmi_debug_active)) return pmi_debug_calloc(n, size);
  return pmi_calloc(total);
}

/* malloc's fast path and a clear of the block (pool and medium blocks are
 * recycled); everything else, debug mode included (pmi_heap_empty's
 * heads are all empty), in calloc_slow. */
pmi_export void *pm_calloc(size_t n, size_t size) {
  size_t total;
  if (pmi_unlikely(__builtin_mul_overflow(n, size, &total) || total > PTRDIFF_MAX)) {
    errno = ENOMEM;
    return NULL;
  }
  pmi_heap *heap = pmi_heap_tls;
  void *p = front_pop(heap, total, true);
  if (pmi_likely(p != NULL)) {
    heap->counters.calloc_calls++;
    return memset(p, 0, total);
  }
  return calloc_slow(n, size, total);
}

/* calloc of total bytes (already checked), without the dispatch. */
void *pmi_calloc(size_t total) {
  if (total <= PMI_MEDIUM_MAX) {
    /* Pool and medium blocks are recycled, so they are cleared; a huge
     * block fresh from the OS is zero already. */
    void *p = pmi_malloc(total);
    if (p != NULL) memset(p, 0, total == 0 ? 1 : total);
    return p;
  }
  return pmi_huge_malloc(total, 0, true);
}

/* The usable size of a live block of ours, checked (fn names the caller in
 * a report), or 0 for a pointer in none of our regions. */
static size_t block_size_checked(const char *fn, void *p, unsigned kind) {
  switch (kind) {
  case PMI_REGION_POOLS: return pmi_class_size(pmi_check_live_block(fn, p)->szidx);
  case PMI_REGION_MEDIUM: return pmi_medium_slow(pmi_medium_check_live(fn, p))->block_size;
  case PMI_REGION_HUGE: return pmi_huge_usable_size(fn, p);
  default: return 0;
  }
}

/* realloc's rule for a block that can stay where it is: the new size fits,
 * and leaves at most about half the block unused (moving saves a good
 * share only beyond that; (old + 15) / 2 so that a 16-byte block keeps
 * every size from 1).  Half, not CPython's three quarters: a block that
 * realloc_grow gave room to spare (twice the old block) must take the next
 * sizes of a growing buffer in place, not see them as shrinks.  As one
 * compare, old - size wraps around when size > old. */
static inline bool fits_in_place(size_t size, size_t old) { return old - size <= (old + 15) / 2; }

/* A block that realloc grows is likely to grow again (a buffer, a vector, a
 * string being built), and each move to the next class copies it.  So it
 * moves with room to spare: to twice its size (a class again: doubling a
 * class size gives one), which fits_in_place keeps for every size up to it;
 * and past PMI_REALLOC_MAPPED_FROM to a mapping of its own, which grows in
 * place to the end of its 256 KiB slot and beyond by mremap, never copied
 * again (its mapping usually comes from the cache of freed ones).  What
 * the room costs: a grown block holds up to twice its bytes, as with the
 * halving rule of fits_in_place. */
#define PMI_REALLOC_MAPPED_FROM 16384u
static inline size_t roomy_size(size_t old, size_t size) { return 2 * old > size ? 2 * old : size; }

static void *realloc_grow(void *p, size_t old, size_t size) {
  void *q;
  if (size > PMI_REALLOC_MAPPED_FROM) {
    q = pmi_huge_malloc(size, 0, false);
  } else {
    q = pmi_malloc(roomy_size(old, size));
  }
  if (q == NULL) return NULL;                        /* p stays valid */
  memcpy(q, p, old);
  pmi_free(p);
  return q;
}

pmi_noinline static void *realloc_slow(void *p, size_t size) {
  if (p == NULL) return pm_malloc(size);
  PMI_COUNT(realloc_calls);
  if (pmi_unlikely(to_libc())) return pmi_libc_realloc(p, size);   /* p is the C library's: nothing else exists */
  if (pmi_unlikely(pmi_debug_active)) return pmi_debug_realloc(p, size);
  return pmi_realloc(p, size);
}

/* A move of a checked pool or medium block of heap to a block of n bytes
 * (realloc_grow's, or a shrink's), by the fast paths, copying copy bytes;
 * the slow path if memory runs out. */
pmi_noinline static void *realloc_move(pmi_heap *heap, void *p, size_t n, size_t copy, size_t size) {
  void *q = malloc_core(heap, n);
  if (pmi_unlikely(q == NULL)) return realloc_slow(p, size);
  heap->counters.realloc_calls++;
  memcpy(q, p, copy);
  pm_free(p);
  return q;
}

/* A huge block of a thread with a heap, 0 < size <= PTRDIFF_MAX: huge.c
 * checks it, and grows or shrinks it in its slots when it can (a buffer
 * grown past PMI_REALLOC_MAPPED_FROM lives there). */
pmi_noinline static void *realloc_huge(pmi_heap *heap, void *p, size_t size) {
  void *q = pmi_huge_realloc(p, size);
  heap->counters.realloc_calls++;
  if (q == p) heap->counters.realloc_inplace++;
  return q;
}

/* The fast path: a live pool or medium block of this thread's heap (what
 * free's fast paths check: the owner, the alignment, the live bit) that
 * stays where it is (fits_in_place).  In debug mode pmi_heap_tls owns no
 * block, so every call goes to realloc_slow; so does p == NULL. */
pmi_export void *pm_realloc(void *p, size_t size) {
  pmi_heap *heap = pmi_heap_tls;
  uintptr_t r = pmi_rotate_units(p);
  uintptr_t kind = pmi_arenamap_slot_raw(pmi_arenamap_block_slot(r));   /* a region's: with its colour */
  size_t old;
  if (kind == PMI_REGION_POOLS) {
    pmi_arena *arena = pmi_arena_of(p);
    if (*(pmi_heap *const *)&arena->heap != heap) goto slow;
    pmi_pool *pool = pmi_pool_of(arena, p);
    if (!((pool->live[(r >> 6) & (PMI_LIVE_WORDS - 1)] >> (r & 63)) & 1)) goto slow;
    old = pmi_class_size(pool->szidx);
  } else if (kind >= PMI_REGION_MEDIUM) {
    pmi_medium *m = (pmi_medium *)(pmi_medium_base(p) + pmi_front.kinds.region_or[kind]);   /* pmi_medium_of(p), as free finds it */
    if (*(pmi_heap *const *)&m->heap != heap) goto slow;
    if (!((m->live[(r >> 6) & (PMI_MEDIUM_LIVE_WORDS - 1)] >> (r & 63)) & 1)) goto slow;
    old = pmi_medium_slow(m)->block_size;
  } else if (kind == PMI_REGION_HUGE && heap != &pmi_heap_empty && size - 1 < PTRDIFF_MAX) {
    return realloc_huge(heap, p, size);
  } else {
    goto slow;
  }
  if (pmi_likely(fits_in_place(size, old))) {
    heap->counters.realloc_calls++;
    heap->counters.realloc_inplace++;
    return p;
  }
  if (size > old) {
    if (size <= PMI_REALLOC_MAPPED_FROM) return realloc_move(heap, p, roomy_size(old, size), old, size);
  } else if (size != 0) {   /* a shrink to less than about half: to the new size's class */
    return realloc_move(heap, p, size, size, size);
  }
slow:
  return realloc_slow(p, size);
}

/* realloc of a block p != NULL, without the dispatch. */
void *pmi_realloc(void *p, size_t size) {
  if (size == 0) {            /* glibc: frees the block and returns NULL */
    pmi_free(p);
    return NULL;
  }
  if (size > PTRDIFF_MAX) {
    errno = ENOMEM;
    return NULL;
  }
  unsigned kind = pmi_arenamap_kind(p);
  size_t old;
  switch (kind) {
  case PMI_REGION_POOLS:
    old = pmi_class_size(pmi_check_live_block("realloc", p)->szidx);
    if (fits_in_place(size, old)) {
      PMI_COUNT(realloc_inplace);
      return p;
    }
    if (size > old) return realloc_grow(p, old, size);
    break;
  case PMI_REGION_MEDIUM:
    old = pmi_medium_slow(pmi_medium_check_live("realloc", p))->block_size;
    if (fits_in_place(size, old)) {
      PMI_COUNT(realloc_inplace);
      return p;
    }
    if (size > old) return realloc_grow(p, old, size);
    break;
  case PMI_REGION_HUGE: {
    void *q = pmi_huge_realloc(p, size);
    if (q == p) PMI_COUNT(realloc_inplace);
    return q;
  }
  default:
    /* A block the C library handed out itself: it stays with the C library
     * unless it moves to the pools. */
    if (((uintptr_t)p & (PMI_ALIGNMENT - 1)) != 0 || !pmi_libc_owns(p)) {
      if (pmi_huge_was_freed(p))
        pmi_bad_pointer("realloc", p, "double free or corruption: huge block already freed (its memory back with the OS),");
      pmi_fatal("realloc(): invalid pointer (not from malloc): %p", p);
    }
    if (size > PMI_SMALL_MAX) return pmi_libc_realloc(p, size);
    old = pmi_libc_usable_size(p);
    void *q = pmi_malloc(size);
    if (q == NULL) return NULL;
    memcpy(q, p, size < old ? size : old);
    pmi_libc_free(p);
    return q;
  }
  void *q = pmi_malloc(size);
  if (q == NULL) return NULL;                        /* p stays valid */
  memcpy(q, p, size < old ? size : old);
  pmi_free(p);
  return q;
}

/* The C library's names for calloc and realloc: second names, as malloc's
 * (a CPython run makes 100 k such calls; a forward costs each a jump). */
#if defined(PM_SHARED_LIBRARY) && !defined(PMI_TSAN)
pmi_export extern __typeof__(pm_calloc) calloc __attribute__((alias("pm_calloc"), malloc, alloc_size(1, 2)));
pmi_export extern __typeof__(pm_realloc) realloc __attribute__((alias("pm_realloc"), alloc_size(2)));
#endif

pmi_export void *pm_reallocarray(void *p, size_t n, size_t size) {
  size_t total;
  if (__builtin_mul_overflow(n, size, &total)) {
    errno = ENOMEM;
    return NULL;
  }
  return pm_realloc(p, total);
}

/* ---- aligned allocation ------------------------------------------------- */

/* The smallest medium class at least n, n a multiple of an alignment a (a
 * power of two up to 4 KiB): its blocks are a-aligned.  Blocks sit at
 * MEDIUM_HEADER + colour + k * size, the colour a multiple of the size's
 * power-of-two part up to 4 KiB (internal.h, pmi_medium_colour), so that
 * is size being a multiple of a, and the class of n is: the classes
 * between 2^b and 2^(b + 1) are the multiples
 * of a step 2^(b - k) (types.h), so rounding n up to one keeps it a
 * multiple of a when a <= 2^(b - k), and leaves n as it is when a is
 * larger (n is then a multiple of the step already).  internal.test_medium
 * checks every such n. */
static inline unsigned medium_aligned_class(size_t n) { return pmi_medium_class_fast(n); }

/* Aligned blocks without over-allocating by the alignment:
 *   - pool blocks of class size s sit at multiples of s from a 4 KiB-aligned
 *     pool, so a request rounded up to a multiple of a power-of-two
 *     alignment <= 512 is served from the pools at malloc's cost (C++'s
 *     aligned new takes this path);
 *   - medium blocks sit at 12 KiB + colour + k * size in a 1 MiB-aligned
 *     region, so for an alignment a <= 4 KiB the class of the request rounded up to a
 *     multiple of a serves it (its size is a multiple of a: above);
 *   - anything else is a huge block, whose mapping is aligned as asked. */
void *pmi_memalign(size_t alignment, size_t size) {
  if (alignment <= PMI_ALIGNMENT) return pmi_malloc(size);
  if (size > PTRDIFF_MAX || alignment > PTRDIFF_MAX / 2) {
    errno = ENOMEM;
    return NULL;
  }
  size_t rounded = (size + alignment - 1) & ~(alignment - 1);
  if (rounded == 0) rounded = alignment;
  if (rounded <= PMI_SMALL_MAX) return pmi_malloc(rounded);
  if (rounded <= PMI_MEDIUM_MAX && alignment <= PMI_MEDIUM_ALIGN_MAX)
    return pmi_malloc(pmi_medium_class_size(medium_aligned_class(rounded)));
  return pmi_huge_malloc(size, alignment, false);
}

static void *aligned_alloc_checked(size_t alignment, size_t size) {
  PMI_COUNT(aligned_calls);
  if (pmi_unlikely(to_libc())) return pmi_libc_memalign(alignment, size);
  if (pmi_unlikely(pmi_debug_active)) return pmi_debug_memalign(alignment, size);
  return pmi_memalign(alignment, size);
}

/* a <= 2^63 */
static size_t round_up_pow2(size_t a) {
  if (a <= 1) return 1;
  return (size_t)1 << (64 - __builtin_clzl(a - 1));
}

/* As glibc 2.36: an alignment above 2^63 can be no power of two and is
 * EINVAL; any other is rounded up to one, so that a request too large to
 * serve (2^63, or 2^62 + 1 rounded up to it) fails with ENOMEM. */
pmi_noinline static void *memalign_slow(size_t alignment, size_t size) {
  if (alignment > SIZE_MAX / 2 + 1) {
    errno = EINVAL;
    return NULL;
  }
  return aligned_alloc_checked(round_up_pow2(alignment), size);
}

/* The fast path of every aligned allocation: a power-of-two alignment up to
 * the page size and a size up to the medium classes': malloc's fast path
 * (front_pop) for the size rounded up to the alignment, whose pool class
 * or medium class (medium_aligned_class) is aligned as asked.  NULL: the
 * caller's slow path (any other alignment or size, the last block of a
 * list, a thread without a heap, debug mode). */
static inline __attribute__((always_inline)) void *memalign_fast(size_t alignment, size_t size, size_t min_align) {
  /* a power of two from min_align (a power of two) up to 4 KiB: a - 1 is
   * below 4 KiB, shares no bit with a (a = 0 makes a - 1 all ones) nor
   * with min_align - 1 (a constant: no test of its own when it is 1) */
  size_t mask = alignment - 1;
  if (pmi_likely(((mask & (alignment | ~(size_t)(PMI_MEDIUM_ALIGN_MAX - 1))) | (alignment & (min_align - 1))) == 0)) {
    /* the size rounded up to the alignment is ((size - 1) | mask) + 1: 0
     * for size 0, and never wraps to a small size, so that front_pop's one
     * test on the size sends size 0 to the slow path, as a size above the
     * medium classes and pmi_heap_empty */
    pmi_heap *heap = pmi_heap_tls;
    void *p = front_pop(heap, ((size - 1) | mask) + 1, true);
    if (pmi_likely(p != NULL)) {
      heap->counters.aligned_calls++;
      return p;
    }
  }
  return NULL;
}

static inline __attribute__((always_inline)) void *memalign_core(size_t alignment, size_t size) {
  void *p = memalign_fast(alignment, size, 1);
  if (pmi_likely(p != NULL)) return p;
  return memalign_slow(alignment, size);
}

pmi_export void *pm_memalign(size_t alignment, size_t size) { return memalign_core(alignment, size); }

pmi_export void *pm_aligned_alloc(size_t alignment, size_t size) {
  return memalign_core(alignment, size);   /* glibc 2.36 treats both alike */
}

/* On failure glibc's posix_memalign returns ENOMEM and also leaves errno
 * ENOMEM (2.36), as its malloc does; an invalid alignment leaves errno
 * alone. */
pmi_noinline static int posix_memalign_slow(void **out, size_t alignment, size_t size) {
  if (alignment < sizeof(void *) || (alignment & (alignment - 1)) != 0) return EINVAL;
  void *p = memalign_slow(alignment, size);
  if (p == NULL) return ENOMEM;
  *out = p;
  return 0;
}

pmi_export int pm_posix_memalign(void **out, size_t alignment, size_t size) {
  void *p = memalign_fast(alignment, size, sizeof(void *));
  if (pmi_likely(p != NULL)) {
    *out = p;
    return 0;
  }
  return posix_memalign_slow(out, alignment, size);
}

/* The C library's names for them, second names as malloc's (above). */
#if defined(PM_SHARED_LIBRARY) && !defined(PMI_TSAN)
pmi_export extern __typeof__(pm_aligned_alloc) aligned_alloc __attribute__((alias("pm_aligned_alloc"), malloc));
pmi_export extern __typeof__(pm_memalign) memalign __attribute__((alias("pm_memalign"), malloc));
pmi_export extern __typeof__(pm_posix_memalign) posix_memalign __attribute__((alias("pm_posix_memalign")));
#endif

pmi_export void *pm_valloc(size_t size) { return memalign_core(pmi_os_page_size(), size); }

pmi_export void *pm_pvalloc(size_t size) {
  size_t page = pmi_os_page_size();
  if (size > PTRDIFF_MAX) {
    errno = ENOMEM;
    return NULL;
  }
  size_t rounded = (size + page - 1) & ~(page - 1);
  return memalign_core(page, rounded == 0 ? page : rounded);
}

/* The usable size of p, without the debug dispatch: the block's size for
 * ours (0 for a pool pointer that is not in a pool in use), the C library's
 * answer for its own. */
size_t pmi_usable_size(void *p) {
  if (p == NULL) return 0;
  unsigned kind = pmi_arenamap_kind(p);
  if (kind == PMI_REGION_POOLS) return pmi_pool_block_size_of(p);
  if (kind != PMI_REGION_NONE) return block_size_checked("malloc_usable_size", p, kind);
  return pmi_libc_usable_size(p);
}

pmi_export size_t pm_malloc_usable_size(void *p) {
  if (pmi_unlikely(pmi_debug_active)) return pmi_debug_usable_size(p);
  return pmi_usable_size(p);
}

pmi_export int pm_owns(const void *p) { return pmi_arenamap_kind(p) != PMI_REGION_NONE; }
