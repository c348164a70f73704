/* remote.c: frees of blocks that belong to another heap, and how they get
 * back into their pools.
 *
 * ---------------------------------------------------------------------------
 * The path of a remote free
 * ---------------------------------------------------------------------------
 *
 *   free(p), p in an arena of heap H, this thread's heap is not H
 *     -> pmi_remote_free(H, p): free.c (or medium.c) has checked what it can
 *        without H's descriptors; this
 *        marks the block (key = pmi_remote_key) and appends it to this
 *        thread's batch for H.  A thread keeps PMI_REMOTE_SLOTS batches, one
 *        per destination (snmalloc's remote cache), so that frees that
 *        alternate between owners still travel in batches.
 *     -> a batch is pushed onto H.thread_free with one CAS when it holds
 *        PMI_REMOTE_BATCH blocks, when its slot is needed for another owner,
 *        and when this thread enters malloc's slow path, calls malloc_trim
 *        or exits.  A free into a heap no thread owns goes into its pool
 *        at once under the heap's lock, or is pushed at once if the lock is
 *        taken (free_into_unowned).
 *   collection (under H.lock) takes the whole stack:
 *     by H's owner (its slow path), or by anyone when H is unowned: every
 *        block is freed into its pool (collect_pool inline for pool blocks,
 *        pmi_free_collected for the others and for faults);
 *     by another thread (the purge thread, malloc_trim) while H's owner
 *        lives: see "collecting for a live owner" below.
 *
 * Every chain walked here (thread_free, the deferred list) is checked link
 * by link before it is followed: the next block must lie in a pool of an
 * arena of H, every block must carry the remote mark, and the walk ends
 * (a chain that loops comes back to a block whose mark the owner's walk
 * cleared; a non-owner's walk is bounded by the blocks H's arenas can
 * hold).  A failure names the block:
 * it was freed by another thread and then freed again by its owner (whose
 * free list push rewrote the link) or written after its free.  A batch is
 * checked by its own thread as it pushes it, every link against the one it
 * wrote (slot_flush, from the slot's array of the batch's blocks), and
 * a remote free writes the block's link at once: a second free is found
 * by the owner's malloc of the block or by that check, before a push links
 * a block that is in use into a chain.
 *
 * Generic entry points (for every region kind with an owning heap): a block
 * of any kind with at least 16 bytes is sent with pmi_remote_free(owner, p)
 * (pool blocks from free.c, medium blocks from medium.c); collection asks
 * the arena map byte for the block's kind: pmi_free_collected hands it to
 * that kind's collected-free function when the owner collects, and a
 * non-owner takes those of FULL pools and FULL medium regions
 * (collected_free below, the one switch to extend; medium.c, "held
 * blocks"), leaving the others to the owner.
 *
 * ---------------------------------------------------------------------------
 * Collecting for a live owner (no help from it)
 * ---------------------------------------------------------------------------
 *
 * The owner touches its pools without the lock on its fast paths: malloc
 * pops from the head pool of usedpools[c], free pushes onto any pool whose
 * free list is not empty.  A FULL pool is never on usedpools and its free
 * list is always empty (types.h), so every free into it takes the slow
 * path, which the owner runs inside pmi_heap_enter/leave: exclusive with a
 * visitor (heap.c, "visitors").  A FULL pool is the visitor's while it
 * visits.  So a visitor may take remote frees into FULL pools:
 *
 *   pool FULL, held blocks:  the blocks go onto pool.held (never onto
 *       freeblock, which free's fast path reads without any handshake), their
 *       live bits and remote marks left as they are, and leave pool.used;
 *       the pool is put on heap.remote_pools.
 *   used == 0: every block is free; nobody else can reach the pool; it
 *       becomes EMPTY and goes back to its arena (and the arena to the
 *       reserve when it was the last).
 *   a block of a USED pool: the owner's fast paths may be inside that pool;
 *       the block goes into the heap's table held_used, by pool, its
 *       freeblock and used untouched; a pool that is not the head and whose
 *       every block out is held there (used == nheld, read with acquire
 *       against free's release decrement) goes back to its arena ("held
 *       blocks of USED pools and regions" below); the others wait for the
 *       owner's next collection (or for their pool to become FULL).  A
 *       USED medium region's blocks alike, the region going to the medium
 *       reserve.
 *
 * The owner applies the held blocks before it touches a FULL pool
 * (pmi_remote_apply): it clears their live bits and marks, makes the held
 * list the free list, and moves the pool where its count says.
 *
 * Why this design: the remote lists stay one stack per heap (the push is
 * one CAS; a per-pool list would make every remote free write the owner's
 * descriptor line), and the owner's fast paths are unchanged.  What it does
 * not reach without the owner: blocks of the head pools the owner is
 * allocating from (one a class), and of pools it still holds blocks of.
 * Blocks still in another live thread's batch are pushed by the purge
 * thread ("batches of idle threads" below).
 *
 * ---------------------------------------------------------------------------
 * The memory model of the handshake (C11)
 * ---------------------------------------------------------------------------
 *
 *   pusher:   CAS(thread_free)         seq_cst (a release of the block's
 *                                      key and link)
 *             load(owned)              seq_cst
 *             if unowned: load(lock) / exchange(lock)   seq_cst (trylock)
 *   holder:   exchange(thread_free)    seq_cst (an acquire of the blocks)
 *             ... store(lock, 0)       seq_cst (heap.c, pmi_heap_unlock)
 *             load(thread_free), load(owned)  seq_cst, then reclaims again
 *   exit:     store(owned, 0) under the lock, then the unlock above
 *
 * All of these are in the single total order S of seq_cst operations.  If
 * the pusher's trylock reads the lock as held, that read precedes the
 * holder's unlocking store in S, so the push (earlier in the pusher's
 * program order) precedes the holder's re-check, which sees it.  If the
 * pusher reads owned == 1, the owner's exit store comes later in S and its
 * unlock re-check sees the push.  Either the pusher reclaims or the lock
 * holder does: no push is left on an unowned heap.  (The previous version
 * used an acquire exchange and a relaxed first trylock load, which allow
 * both sides to miss each other on a store-buffering machine.) */
#include <errno.h>
#include "base/syscall.h"
#include <string.h>

#include "core/internal.h"

#define PMI_REMOTE_SLOTS 4

uintptr_t pmi_remote_key = 2;       /* set from the kernel's random bytes */
uintptr_t pmi_remote_link_key = 1;  /* the links of remote chains use their own key */

typedef struct remote_slot {
  pmi_heap *owner;
  pmi_block *first, *last;   /* newest first; last->link set at the push */
  uint32_t count;
  /* The same blocks, oldest first (for the push's check and the hint
   * ring): PMI_REMOTE_BATCH of them in the thread's buffer (batch_buffer
   * below), NULL until the thread registers. */
  pmi_block **blocks;
} remote_slot;

/* A thread's batches, and what lets the purge thread push them while the
 * thread is idle ("batches of idle threads" below). */
typedef struct remote_cache {
  remote_slot slots[PMI_REMOTE_SLOTS];
  /* The slot the last free batched into, which the fast path tries: frees
   * come in runs of one owner, and the run of a second owner must not find
   * the first one's batch in its way (one slot tested, slots[0], sent a
   * quarter of xmalloc-test's frees to the slow path: each consumer kept one
   * producer's partial batch in slots[0] while it freed the other's).  An
   * offset from slots, not a pointer, so that 0 (a new thread's) is
   * slots[0]. */
  uint32_t current;
  _Atomic int busy;      /* the thread is changing its slots */
  _Atomic int visitor;   /* the purge thread wants them */
  struct remote_cache *next, *prev;   /* the registry, under caches_lock */
  uint8_t registered;
  uint8_t depth;         /* brackets entered: a push inside one may start the
                            purge thread, whose creation allocates and flushes */
} remote_cache;

static __thread remote_cache cache __attribute__((tls_model("initial-exec")));
static __thread uint8_t batch_off __attribute__((tls_model("initial-exec")));   /* thread past its exit */

static inline remote_slot *current_slot(void) { return (remote_slot *)((char *)cache.slots + cache.current); }

static inline void rlink_set(pmi_block *b, const pmi_block *next) { b->link = (uintptr_t)next ^ pmi_remote_link_key; }

static const char fault_refreed[] =
    "double free or corruption: block already freed by another thread, then freed or written again,";

/* ---- the freeing side -------------------------------------------------------- */

static void remote_push(pmi_heap *owner, pmi_block *first, pmi_block *last) {
  pmi_block *head = atomic_load_explicit(&owner->thread_free, memory_order_relaxed);
  do {
    rlink_set(last, head);
  } while (!atomic_compare_exchange_weak_explicit(&owner->thread_free, &head, first, memory_order_seq_cst,
                                                  memory_order_relaxed));
  atomic_fetch_add_explicit(&owner->pushes, 1, memory_order_relaxed);   /* its line is this thread's now */
  int saved = errno;
  if (!atomic_load(&owner->owned)) pmi_heap_reclaim_unowned(owner);
  else pmi_purge_note();   /* an owner may stay idle: the purge thread collects */
  pmi_purge_kick();
  errno = saved;
}

/* The collection walk follows each block's link to the next: a chain of
 * cache misses, one block after another, on lines another core has just
 * written.  So a batch's addresses also go into the owner's ring of hints,
 * oldest first (its chain runs newest first, and the stack of batches
 * newest first: the walk meets them in the ring's order backwards), with
 * one fetch-and-add on the line the push writes anyway.  The collector
 * prefetches a fixed distance ahead of its walk along the ring (see
 * collect_chain), so the misses overlap.  A hint is never dereferenced: a
 * stale or overwritten one costs a useless prefetch, and every check of the
 * walk stays as it is. */
/* The push checks its batch: every block's link still as this thread wrote
 * it, the oldest one's NULL and each other's the block freed before it.  A
 * batched block whose owner freed it meanwhile has had its link rewritten
 * by that free, even if the owner's malloc has handed it out again since
 * (untouched): without this check the push would rewrite a live block's
 * link and the collection free it a second time, silently.  And a block
 * that another thread also holds in its batch has had its link rewritten by
 * that thread's free: a chain that is still well formed, but skips blocks
 * and holds the block once, for two frees.  The slot's array says what each
 * link must be, so the check is one compare a block, with no walk from
 * block to block and no look at the arena map (the walk that did this was
 * about 20 instructions a block); the same pass fills the owner's ring of
 * hints from the array.  The collection walk checks every link again before
 * it follows it: the owner may still free a block after the push. */
static void slot_flush(remote_slot *s) {
  pmi_block *first = s->first;
  if (first == NULL) return;
  pmi_heap *owner = s->owner;
  pmi_block *last = s->last;
  const uint32_t count = s->count;   /* in registers: the ring's stores could alias them */
  const uintptr_t link_key = pmi_remote_link_key;
  _Atomic(pmi_block *) *const ring = owner->remote_hint;
  uint64_t at = atomic_fetch_add_explicit(&owner->hint_pos, count, memory_order_relaxed);
  uintptr_t expect = link_key;   /* rlink_set's encoding of the oldest block's NULL */
  for (uint32_t i = 0; i < count; i++) {
    pmi_block *b = s->blocks[i];
    atomic_store_explicit(&ring[(at + i) & (PMI_REMOTE_HINTS - 1)], b, memory_order_relaxed);
    if (pmi_unlikely(b->link != expect)) pmi_bad_pointer("free", b, fault_refreed);
    expect = (uintptr_t)b ^ link_key;
  }
  s->first = s->last = NULL;
  s->owner = NULL;
  s->count = 0;
  remote_push(owner, first, last);
}

/* Set when a block joins a batch, cleared when all are pushed. */
__thread uint8_t pmi_remote_batched __attribute__((tls_model("initial-exec")));

/* ---- batches of idle threads --------------------------------------------------
 * A thread that freed a few blocks of another heap and then blocks keeps
 * them in its batch: up to PMI_REMOTE_SLOTS * (PMI_REMOTE_BATCH - 1) blocks
 * nobody can reuse.  So every thread that batches is in a registry, and
 * each purge pass pushes every registered thread's batches (a batch
 * therefore waits at most decay / 2 once the purge thread runs; starting a
 * batch notes work for it).  The slots are the thread's, changed without
 * atomics; the purge thread takes them with heap.c's asymmetric handshake:
 *   thread:  busy = 1; compiler barrier; visitor?  (no: change the slots,
 *            then busy = 0, release; yes: busy = 0 and wait for visitor = 0)
 *   purge:   visitor = 1 for every registered thread; one membarrier;
 *            wait for busy == 0 (or skip that thread this pass); push its
 *            batches; visitor = 0, release
 * (seq_cst pairs without membarrier and under ThreadSanitizer), with the
 * argument written in heap.c.  The registry's lock is never taken inside
 * the bracket: a thread registers before it enters, and leaves at exit. */
static _Atomic int caches_lock_;
static remote_cache *caches;

/* The slots' arrays, one buffer of PMI_REMOTE_SLOTS * PMI_REMOTE_BATCH
 * pointers (4 KiB) a registered thread, outside its TLS: in it, 4 KiB of
 * static TLS a thread would not fit the surplus glibc keeps for a library
 * loaded by dlopen.  Buffers come from chunks mapped 16 at a time (one
 * mapping for many threads, against the kernel's map-count limit) and go
 * back to a free list under caches_lock_ at thread exit; never unmapped
 * (their number is the most threads that ever freed remotely at once). */
#define BATCH_BUFFER_BYTES ((size_t)PMI_REMOTE_SLOTS * PMI_REMOTE_BATCH * sizeof(pmi_block *))
#define BATCH_CHUNK_BUFFERS 16
static void *batch_buffers;   /* free buffers, linked through their first word */

static pmi_block **batch_buffer_take(void) {   /* under caches_lock_ */
  if (batch_buffers == NULL) {
    char *chunk = pmi_os_map(BATCH_CHUNK_BUFFERS * BATCH_BUFFER_BYTES);
    if (chunk == NULL) return NULL;
    for (unsigned i = BATCH_CHUNK_BUFFERS; i-- > 0;) {
      *(void **)(chunk + i * BATCH_BUFFER_BYTES) = batch_buffers;
      batch_buffers = chunk + i * BATCH_BUFFER_BYTES;
    }
  }
  void *buf = batch_buffers;
  batch_buffers = *(void **)buf;
  return buf;
}

static void cache_register(void) {
  pmi_spin_lock(&caches_lock_);
  pmi_block **buf = batch_buffer_take();
  for (unsigned i = 0; i < PMI_REMOTE_SLOTS; i++) cache.slots[i].blocks = buf != NULL ? buf + i * PMI_REMOTE_BATCH : NULL;
  cache.prev = NULL;
  cache.next = caches;
  if (caches != NULL) caches->prev = &cache;
  caches = &cache;
  cache.registered = 1;
  pmi_spin_unlock(&caches_lock_);
}

static void cache_unregister(void) {
  if (!cache.registered) return;
  pmi_spin_lock(&caches_lock_);
  if (cache.prev != NULL) cache.prev->next = cache.next;
  else caches = cache.next;
  if (cache.next != NULL) cache.next->prev = cache.prev;
  cache.registered = 0;
  if (cache.slots[0].blocks != NULL) {   /* flushed: every slot is empty */
    *(void **)cache.slots[0].blocks = batch_buffers;
    batch_buffers = cache.slots[0].blocks;
    for (unsigned i = 0; i < PMI_REMOTE_SLOTS; i++) cache.slots[i].blocks = NULL;
  }
  pmi_spin_unlock(&caches_lock_);
}

static inline void cache_enter(void) {
  if (cache.depth++ != 0) return;
  for (;;) {
#ifndef PMI_TSAN
    if (pmi_likely(pmi_load_relaxed(&pmi_heap_fenceless))) {
      atomic_store_explicit(&cache.busy, 1, memory_order_relaxed);
      atomic_signal_fence(memory_order_seq_cst);
      if (pmi_likely(atomic_load_explicit(&cache.visitor, memory_order_acquire) == 0)) return;
    } else
#endif
    {
      atomic_store(&cache.busy, 1);
      if (pmi_likely(atomic_load(&cache.visitor) == 0)) return;
    }
    atomic_store_explicit(&cache.busy, 0, memory_order_release);
    for (unsigned spins = 0; atomic_load_explicit(&cache.visitor, memory_order_acquire); spins++)
      if (spins > 64) pmi_sys_sched_yield();
      else __builtin_ia32_pause();
  }
}

static inline void cache_leave(void) {
  if (--cache.depth == 0) atomic_store_explicit(&cache.busy, 0, memory_order_release);
}

bool pmi_remote_flush_idle(void) {
  bool busy_left = false;
  pmi_spin_lock(&caches_lock_);
  if (caches == NULL) {
    pmi_spin_unlock(&caches_lock_);
    return false;
  }
  for (remote_cache *c = caches; c != NULL; c = c->next) atomic_store(&c->visitor, 1);
  pmi_visit_barrier();
  for (remote_cache *c = caches; c != NULL; c = c->next) {
    unsigned spins = 0;
    while (atomic_load(&c->busy) && spins++ < 256) pmi_sys_sched_yield();
    if (atomic_load(&c->busy)) {
      busy_left = true;   /* next pass */
    } else {
      for (unsigned i = 0; i < PMI_REMOTE_SLOTS; i++) slot_flush(&c->slots[i]);
    }
    atomic_store_explicit(&c->visitor, 0, memory_order_release);
  }
  pmi_spin_unlock(&caches_lock_);
  return busy_left;
}

/* The child has this thread only: the registry keeps only its cache. */
void pmi_remote_fork_child(void) {
  atomic_store(&caches_lock_, PMI_LOCK_FREE);
  caches = NULL;
  atomic_store(&cache.busy, 0);
  atomic_store(&cache.visitor, 0);
  cache.depth = 0;
  if (cache.registered) {
    cache.next = cache.prev = NULL;
    caches = &cache;
  }
}

void pmi_remote_flush_all(void) {
  cache_enter();
  for (unsigned i = 0; i < PMI_REMOTE_SLOTS; i++) slot_flush(&cache.slots[i]);
  cache_leave();
  pmi_remote_batched = 0;
}

void pmi_remote_thread_exit(void) {
  pmi_remote_flush_all();
  cache_unregister();
  batch_off = 1;
}

/* The slot batching for owner: its own, else a free one, else the fullest
 * is pushed to make room. */
static remote_slot *slot_for(pmi_heap *owner) {
  remote_slot *free_slot = NULL, *fullest = &cache.slots[0];
  for (unsigned i = 0; i < PMI_REMOTE_SLOTS; i++) {
    remote_slot *s = &cache.slots[i];
    if (s->owner == owner) return s;
    if (s->first == NULL && free_slot == NULL) free_slot = s;
    else if (s->count > fullest->count) fullest = s;
  }
  if (free_slot == NULL) {
    slot_flush(fullest);
    free_slot = fullest;
  }
  /* A thread without a heap that holds a batch needs the exit destructor. */
  if (pmi_unlikely(pmi_heap_tls == &pmi_heap_empty)) pmi_heap_register_exit();
  free_slot->owner = owner;
  return free_slot;
}

/* The block is written, never read: its line is usually in its owner's
 * cache, and a load of it here (of the mark, to catch a second free by
 * another thread at once) stalled every remote free for that transfer,
 * where two stores wait in the store buffer.  A second free of a marked
 * block is caught all the same, as a rewritten link: by this check of a
 * batch at its push (slot_flush), or by the collection walk (a mark
 * cleared, or a chain that meets a block twice). */
/* A free into a heap no thread owns (its owner exited, nobody adopted it
 * yet): the heap's lock, when it is free,
 * makes this thread its holder, which frees the block into its pool at
 * once, as a collection would, with the same checks (pmi_free_collected).
 * A push followed by pmi_heap_reclaim_unowned did the same in about three
 * times the instructions (a CAS, then a whole collection for one block:
 * about 230 a free, many thousands of them as larson's new threads free
 * the blocks of heaps not yet adopted).  If the lock is taken, or the heap
 * was adopted meanwhile, the block is pushed as before, and remote.c's
 * handshake ("the memory model") leaves it to the holder or the owner. */
static void free_into_unowned(pmi_heap *owner, pmi_block *block) {
  pmi_heap_note_unowned(owner);   /* the heap this thread's first malloc adopts (heap.c) */
  if (pmi_heap_trylock(owner)) {
    if (!atomic_load(&owner->owned)) {   /* owned does not change under the lock */
      pmi_heap_repair_locked(owner);
      pmi_free_collected(owner, block);
      if (atomic_load_explicit(&owner->thread_free, memory_order_relaxed) != NULL) pmi_heap_collect_locked(owner);
      pmi_heap_unlock(owner);   /* and looks again for pushes that found the lock held */
      /* The frees that empty the heap's pools and regions note the purge
       * thread (arena.c, medium.c); its last pass may have found the heap
       * full and stopped it, and an idle program calls nothing that would
       * start it again (remote.test_idle_return, its fourth case). */
      pmi_purge_kick();
      return;
    }
    pmi_heap_unlock(owner);
  }
  remote_push(owner, block, block);
}

pmi_noinline static void remote_free_slow(pmi_heap *owner, pmi_block *block, uint32_t limit) {
  if (pmi_unlikely(batch_off || !pmi_load_relaxed(&owner->owned))) {
    int saved = errno;
    if (!pmi_load_relaxed(&owner->owned)) free_into_unowned(owner, block);
    else remote_push(owner, block, block);   /* this thread is past its exit: no batch */
    errno = saved;
    return;
  }
  if (pmi_unlikely(!cache.registered)) cache_register();
  if (pmi_unlikely(cache.slots[0].blocks == NULL)) {   /* no memory for the arrays: no batch */
    int saved = errno;
    remote_push(owner, block, block);
    errno = saved;
    return;
  }
  cache_enter();
  remote_slot *s = current_slot();
  if (s->owner != owner) s = slot_for(owner);
  cache.current = (uint32_t)((char *)s - (char *)cache.slots);
  bool started = s->first == NULL;
  if (started) s->last = block;
  s->blocks[s->count] = block;
  /* The oldest block's link too, at once (NULL until the push): the owner's
   * free list through a block it had freed already breaks here, so that
   * its malloc reports the double free instead of handing the block out. */
  rlink_set(block, s->first);
  s->first = block;
  pmi_remote_batched = 1;
  if (++s->count >= limit) slot_flush(s);
  cache_leave();
  if (pmi_unlikely(started)) {   /* the purge thread pushes it if this thread goes idle */
    pmi_purge_note();
    pmi_purge_kick();
  }
}

/* The common case first, with no register to save: the current slot
 * batches for this owner already and has room.  cache_enter's handshake without its
 * nesting (a bracket already open, or a visitor, go the slow way); the slot
 * is checked inside it, as the purge thread may have pushed it. */
static inline bool cache_enter_once(void) {
#ifndef PMI_TSAN
  if (pmi_likely(pmi_load_relaxed(&pmi_heap_fenceless))) {
    atomic_store_explicit(&cache.busy, 1, memory_order_relaxed);
    atomic_signal_fence(memory_order_seq_cst);
    return atomic_load_explicit(&cache.visitor, memory_order_acquire) == 0;
  }
#endif
  atomic_store(&cache.busy, 1);
  return atomic_load(&cache.visitor) == 0;
}

/* The fast path does not read owner->owned: a slot batches for an owner
 * only if it was owned when the batch's first block came (remote_free_slow
 * sends a free into an unowned heap to free_into_unowned, and no slot is
 * started for it); if the owner exits while the batch fills, the push finds
 * it unowned (remote_push's seq_cst load of owned after its CAS, the
 * handshake above) and reclaims it, at most a batch later than a free that
 * looked. */
static inline __attribute__((always_inline)) void remote_free_upto(pmi_heap *owner, pmi_block *block,
                                                                    uint32_t limit) {
  block->key = pmi_remote_key;
  if (pmi_likely(cache.depth == 0)) {
    bool entered = cache_enter_once();
    remote_slot *s = current_slot();
    if (pmi_likely(entered && s->owner == owner && s->count < limit - 1)) {
      rlink_set(block, s->first);   /* the slot's owner is set: it holds a block */
      s->first = block;
      s->blocks[s->count++] = block;
      atomic_store_explicit(&cache.busy, 0, memory_order_release);
      return;
    }
    atomic_store_explicit(&cache.busy, 0, memory_order_release);
  }
  remote_free_slow(owner, block, limit);
}

void pmi_remote_free(pmi_heap *owner, pmi_block *block) { remote_free_upto(owner, block, PMI_REMOTE_BATCH); }

/* A medium block: its batch is pushed at PMI_REMOTE_BATCH_MEDIUM blocks,
 * so that an idle thread's four batches hold at most 16 MiB of them (127
 * blocks of 128 KiB would be 64 MiB) until the purge thread pushes them. */
void pmi_remote_free_medium(pmi_heap *owner, pmi_block *block) {
  remote_free_upto(owner, block, PMI_REMOTE_BATCH_MEDIUM);
}

/* ---- the collecting side ----------------------------------------------------- */

/* May the walk follow a link to b?  It must be a 16-byte aligned address in
 * a pool page of an arena of heap, or in a medium region (decided without
 * reading b).  Its region kind, or 0 if not. */
static unsigned remote_addr_kind(pmi_heap *heap, const pmi_block *b) {
  if (((uintptr_t)b & (PMI_ALIGNMENT - 1)) != 0) return 0;
  unsigned kind = pmi_arenamap_kind(b);
  switch (kind) {
  case PMI_REGION_POOLS:
    if (((uintptr_t)b & (PMI_ARENA_SIZE - 1)) < PMI_POOL_SIZE) return 0;
    return pmi_load_relaxed(&pmi_arena_of(b)->heap) == heap ? kind : 0;
  case PMI_REGION_MEDIUM:   /* its owner is checked by medium.c when collected */
    return kind;
  default:
    return 0;
  }
}

/* A FULL pool's held blocks become ordinary free blocks (owner, or holder
 * of an unowned heap's lock). */
static void pool_apply(pmi_heap *heap, pmi_pool *pool) {
  unsigned n = 0;
  pmi_block *last = NULL;
  for (pmi_block *b = pool->held; b != NULL; last = b, b = pmi_link_get(b), n++) {
    b->key = 0;
    unsigned units = pmi_block_units(b);
    *pmi_live_word(pool, units) &= ~pmi_live_bit(units);
  }
  pmi_assert(pool->freeblock == PMI_LIST_END && n == (unsigned)(pool->capacity - pool->used));
  pool->freeblock = pmi_held_to_free(pool->held, last);
  pool->held = NULL;
  pool->nextpool = NULL;
  heap->counters.free_remote += n;
  if (pool->used == 0) {
    heap->counters.pools_emptied++;
    pmi_arena_give_pool(heap, pool);
  } else {
    pmi_usedpools_push(heap, pool);   /* FULL -> USED */
  }
}

void pmi_remote_apply(pmi_heap *heap) {
  if (heap->remote_mediums != NULL) pmi_medium_apply(heap);
  pmi_pool *pool = heap->remote_pools;
  heap->remote_pools = NULL;
  while (pool != NULL) {
    pmi_pool *next = pool->nextpool;
    pool_apply(heap, pool);
    pool = next;
  }
}

/* A non-owner holding the lock takes block into its FULL pool. */
static void hold_in_full_pool(pmi_heap *heap, pmi_pool *pool, pmi_block *block) {
  const char *fault = pmi_block_fault_owned(pool, block);
  if (fault != NULL) pmi_bad_pointer("free", block, fault);
  if (pool->held == NULL) {
    pool->nextpool = heap->remote_pools;
    heap->remote_pools = pool;
  }
  pmi_link_set(block, pool->held);   /* live bit and mark stay until applied */
  pool->held = block;
  pool->used--;
}

/* Held pools whose every block is now free go back to their arena. */
static void release_whole_pools(pmi_heap *heap) {
  pmi_pool **link = &heap->remote_pools;
  while (*link != NULL) {
    pmi_pool *pool = *link;
    if (pool->used != 0) {
      link = &pool->nextpool;
      continue;
    }
    *link = pool->nextpool;
    pmi_block *last = NULL;
    for (pmi_block *b = pool->held; b != NULL; last = b, b = pmi_link_get(b)) b->key = 0;
    memset(pool->live, 0, sizeof pool->live);
    heap->counters.free_remote += pool->capacity;
    pool->freeblock = pmi_held_to_free(pool->held, last);   /* every block: an EMPTY pool keeps its list */
    pool->held = NULL;
    pool->nextpool = NULL;
    heap->counters.pools_emptied++;
    pmi_arena_give_pool(heap, pool);
  }
}

/* ---- held blocks of USED pools and regions ---------------------------------
 * A visitor may not touch a USED pool's free list or counts: the owner's
 * fast paths push onto it (free, any USED pool) and pop from it (malloc,
 * the head) with no handshake.  So it holds the remote frees of a USED
 * pool beside it, in the heap's table held_used (open addressing by the
 * descriptor's address, mapped by the visitor and unmapped when empty):
 * per pool, a chain of its blocks (linked as a remote chain is, each still
 * marked and live, still counted in used) and their number nheld.  A USED
 * medium region is a pool scaled up, with the same fast paths (one free
 * path reads both through pmi_desc, malloc pops the head of usedmedium[c]
 * as it pops the head of usedpools[c]), so its remote frees go into the
 * same table, keyed by its header, and live the same life: the entry's
 * kind is its address's (pmi_desc_is_medium).
 *
 * When a pool that is not the head of its list has used == nheld, the
 * owner has no block of it out: every block still counted is in the chain.
 * No correct free by the owner can reach the pool again, and its malloc
 * serves only the head, which the pool cannot become without the owner's
 * slow path (which excludes the visitor: heap.c).  So the visitor gives it
 * back there and then: the chain's blocks become free blocks (each checked:
 * marked, live, a link into the same pool, no more than nheld of them),
 * the owner's own free list follows them, the pool leaves usedpools (the
 * fast paths never follow nextpool or prevpool: malloc pops the head's
 * list, free pushes onto the block's own pool) and goes to its arena, and
 * the arena to the reserve when it was the last.  A region likewise leaves
 * usedmedium[c] for the medium reserve (medium.c, pmi_medium_held_emptied),
 * whose decay unmaps it.  The one look at regions behind the head that the
 * owner makes outside a slow path's bracket, the unlocked carve's
 * listed_with_free, is made inside one (medium.c): the visitor rewrites
 * the links of the list it walks.
 *
 * The memory model.  The owner's last free into the pool wrote the block's
 * link, freeblock and a live word, then used: that decrement is a release
 * store (pmi_used_dec_release; on x86 a plain store after a compiler
 * fence, the same instruction as before), and the visitor reads used with
 * an acquire load, so reading the value that free stored makes the free's
 * stores happen before everything the visitor then writes.  Earlier frees
 * are earlier in the owner's program order; mallocs from the pool, and
 * every change of its list position, are in slow paths or in the days it
 * was the head, which end in a slow path (its rotation) that happens
 * before the visit.  A smaller used than nheld (a block freed by its owner
 * and by another thread) is left for the owner, whose collection reports
 * it.  Without the release store the visitor could see used == nheld and
 * still have the free's push land after its own rewrite of freeblock.
 * Regions: the same free path, the same release decrement of the same
 * field (pmi_desc.used), the same acquire load here.  The region's owner
 * (heap), state and prevregion are written only in the owner's slow paths
 * (and by visitors), so the visitor reads them plainly; a region (or a
 * pool's arena) whose heap is not this one (its blocks freed by the owner
 * as well as by others: a double free emptied it, and it went to the
 * reserve and maybe to another heap) is left to the owner, whose
 * collection reports the blocks.
 *
 * The head's blocks, and those of pools the owner still holds blocks of,
 * wait in the table for the owner's next collection (pmi_heap_has_remote
 * sends its slow paths there: each of those that could make a held pool
 * FULL collects first, but pmi_usedpools_append's push can make a held
 * head FULL, which the next visit finds: it moves the chain onto the FULL
 * pool's held list; a region's exhausted head goes FULL in medium.c's
 * malloc, likewise).  While some held pool's count moves between two
 * visits the visitor notes the purge thread for another pass: the owner is
 * freeing its last blocks of it; a count that stays leaves the pool until
 * more remote frees come (their push notes the purge thread), or the
 * owner's next slow path.  The held blocks of a waiting region are the
 * visitor's alone (live, off every list: no path of a correct owner reads
 * them), so once their number has stayed for the decay the pages inside
 * each past its first (which holds the key and link the owner's walk
 * reads) go back (pmi_remote_held_purge): one live block, or the head's
 * use, does not keep a region's held megabyte resident. */
typedef struct pmi_held_used {
  pmi_desc *desc;     /* a pool's descriptor or a region's header; NULL: a free slot */
  pmi_block *held;    /* newest first, remote links */
  uint32_t nheld;
  uint16_t seen_used; /* used at the last visit */
  uint16_t seen;      /* seen_used is set */
  uint32_t npurged;   /* a region's: the oldest npurged held blocks' pages went back */
  uint32_t look_nheld;/* a region's: nheld at the last purge look, */
  uint64_t since_ms;  /* and since when it has been so */
} pmi_held_used;

static size_t held_table_bytes(uint32_t cap) {
  size_t b = (size_t)cap * sizeof(pmi_held_used);
  return (b + 4095) & ~(size_t)4095;
}

static inline uint32_t held_hash(const pmi_desc *desc, uint32_t cap) {
  return (uint32_t)((((uintptr_t)desc >> 6) * 0x9E3779B97F4A7C15ull) >> 32) & (cap - 1);
}

static pmi_held_used *held_find(pmi_held_used *t, uint32_t cap, pmi_desc *desc) {
  uint32_t i = held_hash(desc, cap);
  while (t[i].desc != NULL && t[i].desc != desc) i = (i + 1) & (cap - 1);
  return &t[i];
}

/* A table of cap slots holding heap's entries for which keep says yes. */
static void held_rehash(pmi_heap *heap, uint32_t cap) {
  pmi_held_used *old = heap->held_used, *t = NULL;
  uint32_t old_cap = heap->held_cap, n = 0;
  for (uint32_t i = 0; i < old_cap; i++) n += old[i].desc != NULL;
  if (n != 0 || old == NULL) {
    t = pmi_os_map(held_table_bytes(cap));
    if (t == NULL) return;   /* no memory: the old table stays (a full one defers, below) */
    for (uint32_t i = 0; i < old_cap; i++)
      if (old[i].desc != NULL) *held_find(t, cap, old[i].desc) = old[i];
  }
  if (old != NULL) pmi_os_unmap(old, held_table_bytes(old_cap));
  heap->held_used = t;
  heap->held_cap = t != NULL ? cap : 0;
  heap->held_n = n;
}

/* A non-owner holding the lock takes block of a USED pool or region: false
 * if there is no room for it (out of memory: the block waits on
 * remote_deferred). */
static bool hold_in_used(pmi_heap *heap, pmi_desc *desc, pmi_block *block) {
  if (heap->held_used == NULL || 4 * (heap->held_n + 1) > 3 * heap->held_cap) {
    held_rehash(heap, heap->held_cap != 0 ? 2 * heap->held_cap : 256);
    if (heap->held_used == NULL || heap->held_n + 1 >= heap->held_cap) return false;
  }
  pmi_held_used *e = held_find(heap->held_used, heap->held_cap, desc);
  if (e->desc == NULL) {
    *e = (pmi_held_used){.desc = desc};
    heap->held_n++;
  }
  rlink_set(block, e->held);   /* as in a remote chain: the owner's collection walks it */
  e->held = block;
  e->nheld++;
  return true;
}

/* May a held chain's link lead to next?  Inside e's pool (a pool page of
 * its arena, that pool), or past e's region's header in that region. */
static bool held_link_ok(const pmi_held_used *e, const pmi_block *next) {
  if (((uintptr_t)next & (PMI_ALIGNMENT - 1)) != 0) return false;
  if (pmi_desc_is_medium(e->desc))
    return pmi_medium_of(next) == (const pmi_medium *)e->desc && ((uintptr_t)next & (PMI_MEDIUM_SIZE - 1)) >= PMI_MEDIUM_HEADER;
  return ((uintptr_t)next & (PMI_ARENA_SIZE - 1)) >= PMI_POOL_SIZE &&
         pmi_pool_of(pmi_arena_of(next), next) == (const pmi_pool *)e->desc;
}

/* The held chain of e, each block checked: the next block after b. */
static pmi_block *held_next(const pmi_held_used *e, pmi_block *b, uint32_t *n) {
  if (b->key != pmi_remote_key || ++*n > e->nheld) pmi_bad_pointer("free", b, fault_refreed);
  pmi_block *next = (pmi_block *)(b->link ^ pmi_remote_link_key);
  if (next != NULL && !held_link_ok(e, next)) pmi_bad_pointer("free", b, fault_refreed);
  return next;
}

/* e's pool: USED, not the head, used == nheld (read with acquire): every
 * block out is on the chain.  It goes back to its arena. */
static void held_give_back(pmi_heap *heap, pmi_held_used *e) {
  pmi_pool *pool = (pmi_pool *)e->desc;
  pmi_block *list = pool->freeblock;
  uint32_t n = 0;
  for (pmi_block *b = e->held, *next; b != NULL; b = next) {
    next = held_next(e, b, &n);
    unsigned units = pmi_block_units(b);
    uint64_t *word = pmi_live_word(pool, units);
    if (!(*word & pmi_live_bit(units))) pmi_bad_pointer("free", b, "double free or corruption: block already freed,");
    *word &= ~pmi_live_bit(units);
    b->key = 0;
    pmi_link_set(b, list);
    list = b;
  }
  if (n != e->nheld) pmi_bad_pointer("free", e->held, fault_refreed);
  pool->freeblock = list;   /* every carved block: an EMPTY pool keeps its list */
  pool->used = 0;
  pmi_usedpools_unlink_visited(heap, pool);   /* not a spare: nspare stays */
  heap->counters.free_remote += n;
  heap->counters.pools_emptied++;
  pmi_arena_give_pool(heap, pool);
}

/* The same for e's region (USED, not the head, used == nheld): its blocks
 * become free blocks, and it goes to the medium reserve. */
static void held_give_back_region(pmi_heap *heap, pmi_held_used *e) {
  pmi_medium *m = (pmi_medium *)e->desc;
  uint32_t n = 0;
  for (pmi_block *b = e->held, *next; b != NULL; b = next) {
    next = held_next(e, b, &n);
    pmi_medium_give_held(m, b);
  }
  if (n != e->nheld) pmi_bad_pointer("free", e->held, fault_refreed);
  pmi_medium_held_emptied(heap, m, n);
}

/* A held pool that became FULL (pmi_usedpools_push made the head FULL):
 * its chain moves onto the pool's held list, which the owner applies
 * before it touches the pool; a region's onto its FULL held list. */
static void held_to_full(pmi_heap *heap, pmi_held_used *e) {
  uint32_t n = 0;
  for (pmi_block *b = e->held, *next; b != NULL; b = next) {
    next = held_next(e, b, &n);
    if (!pmi_desc_is_medium(e->desc)) {
      hold_in_full_pool(heap, (pmi_pool *)e->desc, b);
    } else if (!pmi_medium_hold(heap, b)) {   /* (not reached: FULL and heap's) */
      rlink_set(b, heap->remote_deferred);
      heap->remote_deferred = b;
    }
  }
}

/* e's pool or region: its state, whether it is the head of its list, and
 * its owner, as the visitor sees them (all written only in slow paths). */
static unsigned held_state(const pmi_heap *heap, const pmi_held_used *e, bool *head) {
  if (!pmi_desc_is_medium(e->desc)) {
    const pmi_pool *pool = (const pmi_pool *)e->desc;
    if (pmi_load_relaxed(&pmi_arena_of(pool)->heap) != heap) return PMI_POOL_EMPTY;   /* likewise */
    *head = pool->prevpool == NULL;
    return pool->state;
  }
  const pmi_medium *m = (const pmi_medium *)e->desc;
  if (pmi_load_relaxed(&m->heap) != heap) return PMI_POOL_EMPTY;   /* a fault, for the owner */
  *head = pmi_medium_slow(m)->prevregion == NULL;
  return m->state;   /* (the same values as a pool's) */
}

/* After a visitor's collection: what can go back does. */
static void held_release(pmi_heap *heap) {
  pmi_held_used *t = heap->held_used;
  if (t == NULL) return;
  bool moved = false, removed = false;
  for (uint32_t i = 0; i < heap->held_cap; i++) {
    pmi_held_used *e = &t[i];
    if (e->desc == NULL) continue;
    bool head = false;
    unsigned state = held_state(heap, e, &head);
    if (state == PMI_POOL_FULL) {
      held_to_full(heap, e);
    } else if (state != PMI_POOL_USED || head) {
      continue;   /* the head (whose used malloc's fast path writes), or a fault for the owner */
    } else {
      uint16_t used = __atomic_load_n(&e->desc->used, __ATOMIC_ACQUIRE);
      if (used != e->nheld) {
        if (e->seen && used != e->seen_used) moved = true;
        e->seen_used = used;
        e->seen = 1;
        continue;
      }
      if (pmi_desc_is_medium(e->desc)) held_give_back_region(heap, e);
      else held_give_back(heap, e);
    }
    e->desc = NULL;
    heap->held_n--;
    removed = true;
  }
  if (removed) held_rehash(heap, heap->held_cap);   /* open addressing: no holes */
  if (moved) pmi_purge_note();
}

/* A visitor (the purge thread's pass; malloc_trim with force): the pages
 * inside the held blocks of regions that wait in the table, once their
 * number has not changed for the decay (a changed one leaves *pending, for
 * the pass that finds it still).  Only the blocks held since the last
 * purge of the entry: they are the newest of its chain.  The bytes. */
size_t pmi_remote_held_purge(pmi_heap *heap, uint64_t now, bool force, bool *pending) {
  pmi_held_used *t = heap->held_used;
  uint64_t decay = (uint64_t)pmi_option(arena_decay_ms);
  size_t bytes = 0;
  for (uint32_t i = 0; t != NULL && i < heap->held_cap; i++) {
    pmi_held_used *e = &t[i];
    if (e->desc == NULL || !pmi_desc_is_medium(e->desc) || e->npurged == e->nheld) continue;
    pmi_medium *m = (pmi_medium *)e->desc;
    if (pmi_medium_slow(m)->block_size < 2 * pmi_os_page_size()) continue;   /* no whole page inside a block */
    if (e->look_nheld != e->nheld) {
      e->look_nheld = e->nheld;
      e->since_ms = now;
      if (!force) {
        *pending = true;
        continue;
      }
    }
    if (!force && now - e->since_ms < decay) {
      *pending = true;
      continue;
    }
    uint32_t n = 0, fresh = e->nheld - e->npurged;
    for (pmi_block *b = e->held, *next; b != NULL && n < fresh; b = next) {
      next = held_next(e, b, &n);
      bytes += pmi_medium_purge_block(m, b);
    }
    e->npurged = e->nheld;
  }
  heap->counters.medium_purge_bytes += bytes;
  return bytes;
}

/* types.h's equation for held_used (diag/check.c): NULL where it holds,
 * else what fails, and *at its pool or region. */
const char *pmi_remote_held_fault(const pmi_heap *heap, const void **at) {
  uint32_t n = 0;
  for (uint32_t i = 0; i < heap->held_cap; i++) {
    const pmi_held_used *e = &heap->held_used[i];
    if (e->desc == NULL) continue;
    n++;
    *at = e->desc;
    if (e->desc->state != PMI_POOL_USED && e->desc->state != PMI_POOL_FULL) return "a held pool or region neither USED nor FULL";
    if (pmi_desc_is_medium(e->desc) && pmi_load_relaxed(&((const pmi_medium *)e->desc)->heap) != heap)
      return "a held region of another heap";
    uint32_t len = 0;
    for (const pmi_block *b = e->held; b != NULL && len <= e->nheld; b = (const pmi_block *)(b->link ^ pmi_remote_link_key)) {
      if (!held_link_ok(e, b)) return "a held chain leaves its pool or region";
      len++;
    }
    if (len != e->nheld) return "a held chain's length differs from nheld";
    if (e->nheld > e->desc->used) return "more blocks held than the pool or region has out";
    if (e->npurged > e->nheld) return "more held blocks purged than held";
  }
  *at = NULL;
  return n == heap->held_n ? NULL : "held_n differs from the pools and regions in the table";
}

/* The owner (or the holder of an unowned heap's lock) collects the table. */
static void collect_chain(pmi_heap *heap, pmi_block *block, bool as_owner, bool hinted);

static void held_collect(pmi_heap *heap) {
  pmi_held_used *t = heap->held_used;
  uint32_t cap = heap->held_cap;
  heap->held_used = NULL;
  heap->held_cap = heap->held_n = 0;
  for (uint32_t i = 0; i < cap; i++)
    if (t[i].desc != NULL) collect_chain(heap, t[i].held, true, false);
  pmi_os_unmap(t, held_table_bytes(cap));
}

/* Frees one collected block by its region kind (the arena map's byte). */
static void collected_free(pmi_heap *heap, pmi_block *block, bool as_owner) {
  if (as_owner) {
    pmi_free_collected(heap, block);
    return;
  }
  bool held;
  if (pmi_arenamap_contains(block)) {
    pmi_pool *pool = pmi_pool_of(pmi_arena_of(block), block);
    held = pool->state == PMI_POOL_FULL;
    if (held) hold_in_full_pool(heap, pool, block);
    else if (pool->state == PMI_POOL_USED) held = hold_in_used(heap, (pmi_desc *)pool, block);
  } else {
    held = pmi_medium_hold(heap, block);   /* FULL regions alike (medium.c) */
    pmi_medium *m = pmi_medium_of(block);
    if (!held && pmi_load_relaxed(&m->heap) == heap && m->state == PMI_MEDIUM_USED)
      held = hold_in_used(heap, (pmi_desc *)m, block);   /* USED ones too (the table above) */
  }
  if (!held) {   /* the owner may be inside this pool or region: it takes the block itself */
    rlink_set(block, heap->remote_deferred);
    heap->remote_deferred = block;
  }
}

/* Why the owner reads every block it collects.  Two designs that would
 * spare it that read were weighed against the promise that every double
 * free is caught, whichever threads make it:
 *   - per-pool remote lists that become the pool's free list in one
 *     exchange (mimalloc's): every remote free would be a CAS on a line the
 *     owner writes at each malloc (the descriptor; in a producer/consumer
 *     consecutive frees go to different pools of 32 classes, so frees of
 *     one pool do not batch), and a block freed twice would sit on two
 *     lists, or on a remote and a local one, with nothing to see it before
 *     malloc hands it out twice;
 *   - batches as arrays of pointers (the owner reads a dense array, not a
 *     chain through cold blocks): in the order "another thread frees p, its
 *     owner frees p and mallocs it again, the owner collects" p is live
 *     with its bit set when collected, and only p's own words (the link its
 *     owner's free rewrote) say so: the owner must read p all the same.
 * So the chain stays, and the walk's cost is that read (its misses
 * overlapped by the hint ring), the link's check and the pool's own
 * bookkeeping (about 74 instructions a block under callgrind in a
 * two-thread producer/consumer, of 224 for malloc and free together).
 *
 * Each block must still carry the remote mark (else it was written after
 * its free: handed out again after a second, local free), and its link
 * must lead to one of heap's blocks (else the owner's free rewrote it)
 * before the walk goes on.  The next block's line is fetched while this one
 * is freed: the walk is a chain of cache misses otherwise. */
/* How far the walk's prefetches run ahead of it, in blocks. */
#define PMI_PREFETCH_AHEAD 16

static inline void prefetch_hint(pmi_heap *heap, uint64_t pos) {
  __builtin_prefetch(atomic_load_explicit(&heap->remote_hint[pos & (PMI_REMOTE_HINTS - 1)], memory_order_relaxed), 1);
}

/* remote_addr_kind for the walk's links, with the map and its bound in
 * registers (the walk's stores into blocks could alias the globals): the
 * rotated address finds no slot for a misaligned b (free's first test),
 * so one compare answers alignment and bound. */
static inline unsigned walk_addr_kind(pmi_heap *heap, const pmi_block *b, const uint8_t *map, uintptr_t slots) {
  uintptr_t slot = pmi_arenamap_block_slot(pmi_rotate_units(b));
  if (pmi_unlikely(slot >= slots)) return 0;
  unsigned kind = map[slot];
  if (pmi_likely(kind == PMI_REGION_POOLS)) {
    if (((uintptr_t)b & (PMI_ARENA_SIZE - 1)) < PMI_POOL_SIZE) return 0;
    return pmi_load_relaxed(&pmi_arena_of(b)->heap) == heap ? kind : 0;
  }
  return kind >= PMI_REGION_MEDIUM ? PMI_REGION_MEDIUM : 0;   /* (any colour) its owner is checked by medium.c when collected */
}

/* The owner's pool blocks, inline: what pmi_free_collected does for them,
 * without its calls.  A live bit is set exactly at the start of a block
 * handed out (types.h), so a set bit in a USED or FULL pool is all the
 * descriptor has to say (the walk has checked the block's alignment, its
 * arena and pool page, remote_addr_kind, and its mark).  The common case,
 * a USED pool that stays USED (used stays above 1, so no transition can
 * follow), is a push; a transition goes to pmi_free_block.  A block that
 * fails the test (a fault) goes to collected_free, whose checks say which
 * it is.  One pool block in five took that way before (the last two of
 * each pool and its first into a FULL pool, in a producer/consumer), at
 * about 50 instructions of calls and checks each. */
static inline bool collect_pool(pmi_heap *heap, pmi_block *block, unsigned kind, unsigned *n) {
  if (kind != PMI_REGION_POOLS) return false;
  pmi_pool *pool = pmi_pool_of(pmi_arena_of(block), block);
  unsigned units = pmi_block_units(block);
  uint64_t *word = pmi_live_word(pool, units), w = *word;
  unsigned state = pool->state;
  if (pmi_unlikely(!((w >> (units & 63)) & 1))) return false;
  if (pmi_likely(state == PMI_POOL_USED)) {   /* one compare of the state for the common case */
    block->key = 0;
    *word = pmi_bit_clear(w, units);
    ++*n;
    if (pmi_likely(pool->used > 2)) {
      pmi_pool_push(pool, block);
      pool->used--;
    } else {
      pmi_free_block(heap, pool, block);
    }
    return true;
  }
  if (state != PMI_POOL_FULL) return false;
  block->key = 0;
  *word = pmi_bit_clear(w, units);
  ++*n;
  pmi_free_block(heap, pool, block);
  return true;
}

static void collect_chain(pmi_heap *heap, pmi_block *block, bool as_owner, bool hinted) {
  if (block == NULL) return;
  /* The ring's newest PMI_REMOTE_HINTS entries, walked backwards from hint
   * (exclusive) down to hint_end: pushes since the last collection */
  uint64_t hint = hinted ? atomic_load_explicit(&heap->hint_pos, memory_order_relaxed) : 0;
  uint64_t hint_end = hint > PMI_REMOTE_HINTS ? hint - PMI_REMOTE_HINTS : 0;
  if (hinted && hint_end < heap->hint_seen) hint_end = heap->hint_seen;
  heap->hint_seen = hint;
  for (unsigned i = 0; i < PMI_PREFETCH_AHEAD && hint > hint_end; i++) prefetch_hint(heap, --hint);
  unsigned kind = remote_addr_kind(heap, block);
  if (kind == 0)
    pmi_fatal("heap corruption: the remote free list of heap %p starts at %p, not one of its blocks",
              (void *)heap, (void *)block);
  /* every pool block the heap's arenas hold, and room for its medium blocks */
  size_t bound = heap->narenas * PMI_ARENA_POOLS * (PMI_POOL_SIZE / PMI_ALIGNMENT) + ((size_t)1 << 24);
  unsigned taken = 0;   /* pool blocks collect_pool took (counted once) */
  /* The keys in registers: the stores into blocks could alias them. */
  const uintptr_t mark = pmi_remote_key, link_key = pmi_remote_link_key;
  const uint8_t *map = (const uint8_t *)pmi_load_relaxed(&pmi_arenamap);   /* fixed once a heap has arenas */
  const uintptr_t slots = *(const uintptr_t *)&pmi_arenamap_slots;
  _Atomic(pmi_block *) *const ring = heap->remote_hint;
  /* The owner's walk needs no bound: it clears the mark of every block it
   * takes (collect_pool, and each kind's collected free) before it follows
   * any later link, so a chain that comes back to a block meets it with its
   * mark cleared, which the mark check reports; and there are only so many
   * marked blocks.  A non-owner leaves the marks of the blocks it holds or
   * defers: its walk counts. */
  while (block != NULL) {
    if (!as_owner && bound-- == 0)
      pmi_fatal("heap corruption: the remote free list of heap %p loops (at %p)", (void *)heap, (void *)block);
    if (block->key != mark) pmi_bad_pointer("free", block, fault_refreed);
    pmi_block *next = (pmi_block *)(block->link ^ link_key);
    unsigned next_kind = 0;
    if (next != NULL) {
      next_kind = walk_addr_kind(heap, next, map, slots);
      if (next_kind == 0) pmi_bad_pointer("free", block, fault_refreed);
      if (hint <= hint_end) __builtin_prefetch(next, 1);   /* else the hints run ahead */
    }
    if (hint > hint_end) __builtin_prefetch(atomic_load_explicit(&ring[--hint & (PMI_REMOTE_HINTS - 1)], memory_order_relaxed), 1);
    if (!as_owner || !collect_pool(heap, block, kind, &taken)) collected_free(heap, block, as_owner);
    block = next;
    kind = next_kind;
  }
  heap->counters.free_remote += taken;
}

/* The owner (or the holder of an unowned heap's lock) takes everything. */
void pmi_heap_collect_locked(pmi_heap *heap) {
  if (heap->remote_pools != NULL || heap->remote_mediums != NULL) pmi_remote_apply(heap);
  if (heap->held_used != NULL) held_collect(heap);
  collect_chain(heap, atomic_exchange(&heap->thread_free, NULL), true, true);
  pmi_block *deferred = heap->remote_deferred;
  heap->remote_deferred = NULL;
  collect_chain(heap, deferred, true, false);
}

/* Another thread holding the lock of a heap whose owner lives. */
void pmi_heap_collect_foreign(pmi_heap *heap) {
  collect_chain(heap, atomic_exchange(&heap->thread_free, NULL), false, true);
  pmi_block *deferred = heap->remote_deferred;
  heap->remote_deferred = NULL;
  collect_chain(heap, deferred, false, false);   /* their pools may have filled since */
  held_release(heap);
  release_whole_pools(heap);
  pmi_medium_release_held(heap);
}

/* Whoever holds the lock, for whatever the owner's state. */
void pmi_heap_collect_any(pmi_heap *heap) {
  if (heap == pmi_heap_own() || !atomic_load(&heap->owned)) {
    pmi_heap_repair_locked(heap);
    pmi_heap_collect_locked(heap);
  } else {
    pmi_heap_collect_foreign(heap);
  }
}


/* ---- an idle ring -------------------------------------------------------------
 * The hint ring is 128 KiB a heap, in memory from the first batches pushed
 * to it on, and only hints: a page of it given back reads as zeros, whose
 * prefetch is a useless one, and a push that writes it meanwhile only
 * loses its hints.  So a visitor (the purge thread's pass, malloc_trim)
 * gives the ring's pages back once no push has moved hint_pos over a whole
 * pass: a heap whose remote frees stopped at t keeps its ring until the
 * second pass after t, at most t + decay (and malloc_trim at once).  A ring
 * that moved leaves the purge thread pending for the pass that finds it
 * still; one never written was never in memory.  The bytes given back. */
size_t pmi_remote_hints_decay(pmi_heap *heap, bool now, bool *pending) {
  uint64_t pos = atomic_load_explicit(&heap->hint_pos, memory_order_relaxed);
  if (pos != heap->hint_decay_pos) {
    heap->hint_decay_pos = pos;
    heap->hint_resident = 1;
    if (!now) {
      *pending = true;
      return 0;
    }
  }
  if (!heap->hint_resident) return 0;
  heap->hint_resident = 0;
  size_t page = pmi_os_page_size();
  uintptr_t start = ((uintptr_t)heap->remote_hint + page - 1) & ~(uintptr_t)(page - 1);
  uintptr_t end = ((uintptr_t)(heap->remote_hint + PMI_REMOTE_HINTS)) & ~(uintptr_t)(page - 1);
  if (end <= start) return 0;
  pmi_os_purge((void *)start, end - start);
  return end - start;
}
