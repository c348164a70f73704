/* heap.c: one heap per thread, and what happens to it when the thread ends.
 *
 *   thread start     the first malloc finds pmi_heap_tls == &pmi_heap_empty
 *                    (all usedpools slots on the sentinel), falls into the
 *                    slow path, and gets a heap: an abandoned one if any
 *                    (adoption: its arenas, pools and live blocks with it),
 *                    else a new one.  A thread that freed into an
 *                    abandoned heap before its first malloc adopts that
 *                    heap instead (pmi_heap_note_unowned).
 *   thread exit      a pthread key destructor collects the remote frees,
 *                    marks the heap unowned and puts it on the abandoned
 *                    list.  The thread's TLS points at pmi_heap_empty again
 *                    and tls_done is set: later frees from it take the remote
 *                    path, later mallocs use a shared fallback heap.
 *   unowned heaps    frees into them are pushed on thread_free as usual; the
 *                    freeing thread then reclaims them under heap->lock (or
 *                    the lock's holder does, as it unlocks), so the memory
 *                    of exited threads goes back without waiting for a new
 *                    thread.  The handshake is written down in remote.c.
 *
 * Heaps are never freed (their addresses stay valid for remote frees that
 * are in flight); they are recycled by adoption. */
#include <pthread.h>
#include "base/syscall.h"
#include <string.h>

#include "core/internal.h"

/* Every class's head is the pool sentinel, the medium classes' too: its
 * free list is PMI_LIST_END from the start (the medium sentinel's is
 * written only when the first heap is made), so that malloc's fast path
 * misses on every size and reaches pmi_malloc_generic without a test of
 * its own.  Only the fast paths read these heads (pmi_malloc_generic sends
 * a heapless call on before it looks at usedmedium). */
pmi_heap pmi_heap_empty = {
  .usedpools = { [0 ... PMI_NCLASSES - 1] = &pmi_pool_sentinel },
  .medfront = { [0 ... PMI_MEDIUM_NCLASSES - 1] = (pmi_medium *)&pmi_pool_sentinel },
  .usedmedium = { [0 ... PMI_MEDIUM_NCLASSES - 1] = &pmi_medium_sentinel },
};

__thread pmi_heap *pmi_heap_tls __attribute__((tls_model("initial-exec"))) = &pmi_heap_empty;
static __thread uint8_t tls_done __attribute__((tls_model("initial-exec")));

static pmi_heap *heaps_all;          /* every heap ever made, by next_heap */
static pmi_heap *heaps_abandoned;    /* unowned heaps waiting for a thread */
static pmi_heap *heap_fallback;      /* for threads past their own exit */
static _Atomic int heaps_lock_;      /* guards the lists above and the slab */
static char *slab_next, *slab_end;   /* heaps are carved from mapped slabs */

static pthread_key_t heap_key;

/* ---- locks: core/lock.c's spin lock ------------------------------------------ */

void pmi_heap_lock(pmi_heap *heap) { pmi_spin_lock(&heap->lock); }

/* Both loads seq_cst, not core/lock.c's relaxed-then-acquire: the pusher's
 * side of the handshake (remote.c). */
bool pmi_heap_trylock(pmi_heap *heap) {
  int expected = PMI_LOCK_FREE;
  return atomic_load(&heap->lock) == PMI_LOCK_FREE && atomic_compare_exchange_strong(&heap->lock, &expected, PMI_LOCK_HELD);
}

/* core/lock.c's unlock with a seq_cst store (a lock taken for a fork is
 * left to the fork's parent handler). */
static void unlock_only(pmi_heap *heap) {
  if (pmi_likely(pmi_load_relaxed(&heap->lock) != PMI_LOCK_FORK)) atomic_store(&heap->lock, PMI_LOCK_FREE);
}

/* A thread that freed into an unowned heap while we held its lock found
 * the lock taken and left its blocks to us: after unlocking, look again
 * (seq_cst store, then seq_cst loads: see remote.c). */
void pmi_heap_unlock(pmi_heap *heap) {
  unlock_only(heap);
  if (pmi_unlikely(!atomic_load(&heap->owned)) && atomic_load(&heap->thread_free) != NULL)
    pmi_heap_reclaim_unowned(heap);
}

/* ---- the owner's slow paths, and visitors ------------------------------------ *
 *
 * The owner's slow paths (a free into a FULL pool, a malloc whose head pool
 * ran out, a pool that empties past the spares) touch what another thread
 * may touch too: a visitor, any thread that is not the owner and wants the
 * heap's lists, FULL pools or arenas (the purge thread, malloc_trim, the
 * statistics, pm_check, fork's prepare handler).  These are rare; the
 * owner's slow paths are not (larson: nearly every free is into a FULL
 * pool).  So the owner does not take the lock; it announces itself, and
 * only a visitor pays for the synchronisation (an asymmetric Dekker
 * handshake):
 *
 *   owner (pmi_heap_enter / pmi_heap_leave, internal.h):
 *       busy = 1 (relaxed); compiler barrier; v = visitor (acquire)
 *       v == 0: the slow path without the lock; then busy = 0 (release)
 *       v == 1: busy = 0 (release), then the lock, as any visitor
 *   visitor (pmi_heap_visit):
 *       take the lock; visitor = 1 (seq_cst); membarrier(PRIVATE_EXPEDITED);
 *       wait until busy == 0 (acquire); ... visitor = 0 (release); unlock
 *
 * Why neither side can miss the other: membarrier returns only after every
 * running thread of the process has executed a full barrier at some point
 * F during the call (a thread that is not running passes through the
 * scheduler's barriers).  The compiler barrier keeps the owner's store
 * before its load, so relative to F: if F falls between them, the owner has
 * a full fence between store and load and the visitor's membarrier is one
 * between its own store and load (the store-buffering pattern with fences
 * on both sides: not both loads read 0); if F is before the owner's store,
 * the owner's load follows F, which follows the visitor's store to visitor,
 * so it reads 1; if F is after the owner's load, its store to busy precedes
 * F, which precedes the visitor's load, so the visitor reads 1 (or the
 * owner's later release of busy = 0, which it then acquires).  Either the
 * visitor waits for busy == 0, whose release makes the owner's writes of
 * the slow path visible to it, or the owner sees the visitor and queues on
 * the lock.  When the owner reads visitor == 0 written by the last visitor's
 * release, its acquire makes that visitor's writes (blocks held in FULL
 * pools, arena lists) visible to it.  The fast paths never need either:
 * visitors keep off what they touch (USED pools and usedpools, remote.c).
 *
 * Without membarrier (old kernels, seccomp, and in the ThreadSanitizer
 * build, which does not model it) the owner's store and load are seq_cst
 * instead (one locked instruction on x86; still no lock, no re-checks), and
 * the argument is C11's own: both pairs are in the single total order S.
 * membarrier is registered as the first heap is made, and
 * pmi_heap_fenceless says so only after it succeeded: an owner that read 0 uses the seq_cst pair,
 * which the visitor's seq_cst store and load (kept with the membarrier)
 * still pair with.
 *
 * The owner never takes its own lock inside an enter/leave bracket (a
 * visitor holding it waits for busy == 0), and a visitor waits for busy
 * holding only locks that no slow path takes (the list of heaps and this
 * heap's).  pmi_heap_visit_try gives up after a short wait, for the purge
 * thread, which tries again at its next pass. */
_Atomic int pmi_heap_fenceless;
#ifndef PMI_TSAN
static _Atomic int membarrier_tried;   /* 0: not yet, 1: registered, 2: unavailable */
#endif

/* Registers membarrier once.  Called as the first heap is made (the
 * process is most likely single-threaded then, which makes registering
 * cheap: the kernel has no other thread to tell), and by the first visitor
 * if that failed to run. */
static int barrier_setup(void) {
#ifdef PMI_TSAN
  return 2;
#else
  int state = atomic_load_explicit(&membarrier_tried, memory_order_acquire);
  if (state == 0) {
    state = pmi_option(membarrier) && pmi_os_membarrier_register() ? 1 : 2;
    atomic_store_explicit(&membarrier_tried, state, memory_order_release);
    if (state == 1) atomic_store(&pmi_heap_fenceless, 1);
  }
  return state;
#endif
}

/* A full barrier on every running thread of the process, or false if
 * there is none (then owners use their seq_cst pair). */
bool pmi_visit_barrier(void) {
#ifdef PMI_TSAN
  return false;
#else
  if (barrier_setup() != 1) return false;
  if (!pmi_os_membarrier()) pmi_fatal("membarrier failed after it was registered");
  return true;
#endif
}

bool pmi_heap_enter_locked(pmi_heap *heap) {
  atomic_store_explicit(&heap->busy, 0, memory_order_release);
  pmi_heap_lock(heap);
  pmi_spares_show(heap);
  return true;
}

/* Does this holder of heap's lock share the heap with an owner running
 * elsewhere? */
static bool visit_needed(pmi_heap *heap) {
  return heap != pmi_heap_own() && atomic_load_explicit(&heap->owned, memory_order_relaxed);
}

/* Waits for the owner to leave its slow path; false if it gave up (only
 * when patient is false). */
static bool visit_wait(pmi_heap *heap, bool patient) {
  for (unsigned spins = 0; atomic_load(&heap->busy); spins++) {
    if (spins < 64) {
      __builtin_ia32_pause();
    } else {
      if (!patient && spins > 256) return false;
      pmi_sys_sched_yield();   /* the owner may not be running */
    }
  }
  return true;
}

static void visit_announce(pmi_heap *heap) {
  atomic_store(&heap->visitor, 1);
}

void pmi_heap_visit(pmi_heap *heap) {
  pmi_heap_lock(heap);
  if (!visit_needed(heap)) return;   /* owned does not change under the lock */
  visit_announce(heap);
  pmi_visit_barrier();
  visit_wait(heap, true);
}

bool pmi_heap_visit_try(pmi_heap *heap) {
  if (!pmi_heap_trylock(heap)) return false;
  if (!visit_needed(heap)) return true;
  visit_announce(heap);
  pmi_visit_barrier();
  if (visit_wait(heap, false)) return true;
  pmi_heap_visit_end(heap);
  return false;
}

void pmi_heap_visit_end(pmi_heap *heap) {
  if (pmi_load_relaxed(&heap->visitor)) atomic_store_explicit(&heap->visitor, 0, memory_order_release);
  pmi_heap_unlock(heap);
}

void pmi_heaps_lock(void) {
  pmi_fork_setup();   /* the handlers before the first lock of ours (fork.c) */
  pmi_spin_lock(&heaps_lock_);
}
void pmi_heaps_unlock(void) { pmi_spin_unlock(&heaps_lock_); }
pmi_heap *pmi_heap_first(void) { return heaps_all; }

/* ---- creation and adoption --------------------------------------------------- */

static pmi_heap *heap_new_locked(void) {
  size_t size = (PMI_HEAP_BYTES + 63) & ~(size_t)63;
  if (slab_next == NULL || (size_t)(slab_end - slab_next) < size) {
    /* heaps share 64 KiB slabs while they fit; a bigger one (its hint
     * ring, types.h) takes a mapping of its own, rounded to pages */
    size_t slab = size > 64 * 1024 ? (size + 4095) & ~(size_t)4095 : 64 * 1024;
    slab_next = pmi_os_map(slab);
    if (slab_next == NULL) return NULL;
    slab_end = slab_next + slab;
  }
  pmi_heap *heap = (pmi_heap *)slab_next;
  slab_next += size;
  /* the empty medium head's list (internal.h, "the end of every free list"),
   * at the first heap, not at start-up: its page of .bss is written only by
   * programs that allocate; under the lock, before any heap can read it */
  if (heaps_all == NULL) pmi_medium_sentinel.freeblock = PMI_LIST_END;
  for (unsigned c = 0; c < PMI_NCLASSES; c++) heap->usedpools[c] = &pmi_pool_sentinel;
  for (unsigned c = 0; c < PMI_MEDIUM_NCLASSES; c++) heap->usedmedium[c] = heap->medfront[c] = &pmi_medium_sentinel;
  heap->next_heap = heaps_all;
  heaps_all = heap;
  heap->counters.heaps_created++;
  return heap;
}

void pmi_heap_collect(pmi_heap *heap) {
  if (pmi_load_relaxed(&heap->thread_free) == NULL) return;
  pmi_heap_lock(heap);
  pmi_heap_collect_locked(heap);
  pmi_heap_unlock(heap);
}

/* Frees into an unowned heap are reclaimed by whoever freed them.  When the
 * lock is taken, its holder looks again as it unlocks (pmi_heap_unlock), so
 * giving up here strands nothing; the loop looks again after our own
 * unlock for the same reason. */
void pmi_heap_reclaim_unowned(pmi_heap *heap) {
  while (atomic_load(&heap->thread_free) != NULL) {
    if (!pmi_heap_trylock(heap)) return;
    if (atomic_load(&heap->owned)) {   /* adopted meanwhile: the owner collects */
      unlock_only(heap);
      return;
    }
    pmi_heap_repair_locked(heap);
    pmi_heap_collect_locked(heap);
    unlock_only(heap);
  }
}

static void heap_thread_exit(void *arg);

/* Takes want off the abandoned list if it is there (NULL: the newest
 * abandoned heap, if any).  Under the heaps' lock. */
static pmi_heap *abandoned_take_locked(pmi_heap *want) {
  pmi_heap **at = &heaps_abandoned;
  if (want != NULL)
    while (*at != NULL && *at != want) at = &(*at)->next_abandoned;
  pmi_heap *heap = *at;
  if (heap != NULL) {
    *at = heap->next_abandoned;
    heap->next_abandoned = NULL;
  }
  return heap;
}

/* heap.tp, and the owner of every free-map entry of its arenas and medium
 * regions (types.h, pmi_free_slot), as a thread takes or leaves the heap:
 * the thread that owns it or adopts it, or a fork's child for the heaps of
 * the threads it did not inherit.  O(regions), at those events only. */
void pmi_heap_set_tp(pmi_heap *heap, uintptr_t tp) {
  heap->tp = tp;
  for (pmi_arena *a = heap->arenas; a != NULL; a = a->next_owned) pmi_freemap_set_owner(a, PMI_ARENA_SIZE, tp);
  for (pmi_medium *m = heap->mediums; m != NULL; m = pmi_medium_slow(m)->next_owned)
    pmi_freemap_set_owner(pmi_medium_base(m), PMI_MEDIUM_SIZE, tp);
}

/* The caller's heap at its first call: want (an abandoned heap) or, for
 * NULL, any abandoned heap or a new one.  NULL when want is not abandoned
 * (any longer), past the thread's exit, or out of memory. */
static pmi_heap *heap_start(pmi_heap *want) {
  pmi_process_init();
  if (tls_done) return NULL;
  pmi_heaps_lock();
  pmi_heap *heap = abandoned_take_locked(want);
  bool adopted = heap != NULL;
  if (!adopted && want == NULL) heap = heap_new_locked();
  pmi_heaps_unlock();
  if (heap == NULL) return NULL;
  barrier_setup();

  pmi_heap_lock(heap);   /* a freeing thread may be reclaiming it right now */
  pmi_heap_repair_locked(heap);
  atomic_store(&heap->owned, 1);
  /* its regions' free-map entries name this thread: free's fast path (in
   * debug mode a name the exported free never matches, pmi_free_slot) */
  pmi_heap_set_tp(heap, pmi_thread_pointer() | (pmi_debug_active ? 1u : 0u));
  if (adopted) heap->counters.heaps_adopted++;
  heap->counters.threads_seen++;
  pmi_heap_collect_locked(heap);
  pmi_heap_unlock(heap);

  /* In debug mode pmi_heap_tls stays on pmi_heap_empty, so that every call
   * misses the fast paths and reaches the debug allocator; the core finds
   * the heap through the key (pmi_heap_own). */
  if (!pmi_debug_active) pmi_heap_tls = heap;
  pthread_setspecific(heap_key, heap);   /* registers heap_thread_exit */
  return heap;
}

/* The heap a thread without one freed into first, if no thread owned it:
 * the one its first malloc takes if it is still abandoned (heaps are never
 * freed, so an old pointer is only a heap that is no longer on the list). */
static __thread pmi_heap *heap_wanted __attribute__((tls_model("initial-exec")));

/* The blocks a thread inherits from one that exited (larson: each round's
 * threads take over the blocks of the round before) are then its own,
 * freed and reused by the fast paths, rather than sent back one by one into
 * a heap that another new thread adopts while this one fills a second heap.
 * Not at the free itself: a thread that only frees (a consumer of an exited
 * producer's blocks) would own the heap without ever running the slow paths
 * that give an owner's idle memory back, and keep its emptied head regions;
 * until it allocates, its frees go into the unowned heap as before. */
pmi_heap *pmi_heap_for_thread(void) {
  pmi_heap *heap = heap_wanted != NULL ? heap_start(heap_wanted) : NULL;
  heap_wanted = NULL;
  return heap != NULL ? heap : heap_start(NULL);
}

void pmi_heap_note_unowned(pmi_heap *owner) {
  if (heap_wanted == NULL && !tls_done && pmi_heap_own() == &pmi_heap_empty) heap_wanted = owner;
}

pmi_heap *pmi_heap_own(void) {
  if (pmi_likely(!pmi_debug_active)) return pmi_heap_tls;
  pmi_heap *heap = tls_done ? NULL : pthread_getspecific(heap_key);
  return heap != NULL ? heap : &pmi_heap_empty;
}

/* The pthread key destructor.  Other destructors may still malloc and free
 * after it: see the comment at the top of this file. */
static void heap_thread_exit(void *arg) {
  pmi_remote_thread_exit();
  pmi_heap *heap = pmi_debug_active ? (pmi_heap *)arg : pmi_heap_tls;
  if (heap == &pmi_heap_empty) return;
  /* The purge thread will have this heap's pools to look at.  Started while
   * this thread still has its heap: pthread_create callocs the new thread's
   * DTV, which past tls_done would make the fallback heap, a heap and an
   * arena (36 KiB resident) for 288 bytes, in a program whose first thread
   * exits.  The note again below keeps it going past its first pass. */
  pmi_purge_note();
  pmi_purge_kick();
  pmi_heap_tls = &pmi_heap_empty;
  tls_done = 1;

  pmi_heap_lock(heap);
  /* before the heap is anyone else's, and before glibc can start a thread
   * on this stack, whose thread pointer would be this one's */
  pmi_heap_set_tp(heap, 0);
  pmi_heap_collect_locked(heap);
  atomic_store(&heap->owned, 0);
  pmi_heap_release_retained(heap);
  pmi_heap_unlock(heap);

  pmi_heaps_lock();
  heap->next_abandoned = heaps_abandoned;
  heaps_abandoned = heap;
  pmi_heaps_unlock();
  pmi_heap_reclaim_unowned(heap);
  pmi_purge_note();   /* its empty pools and arenas may go back later */
  pmi_purge_kick();
}

/* A thread without a heap that holds a batch of remote frees needs the exit
 * destructor too: any non-NULL value registers it. */
void pmi_heap_register_exit(void) {
  if (pthread_getspecific(heap_key) == NULL) pthread_setspecific(heap_key, &pmi_heap_empty);
}

pmi_startup void pmi_heap_setup(void) {
  pthread_key_create(&heap_key, heap_thread_exit);
}

/* malloc from a thread whose heap is gone (a later destructor allocating):
 * a shared heap that no thread owns, used under its lock (size: 1 .. the
 * largest medium class). */
void *pmi_heap_malloc_locked(size_t size) {
  pmi_heaps_lock();
  if (heap_fallback == NULL) heap_fallback = heap_new_locked();
  pmi_heap *heap = heap_fallback;
  pmi_heaps_unlock();
  if (heap == NULL) return NULL;
  pmi_heap_lock(heap);
  void *p = size <= PMI_SMALL_MAX ? pmi_heap_malloc_small(heap, size)
                                  : pmi_medium_malloc_locked(heap, pmi_medium_class(size));
  pmi_heap_unlock(heap);
  return p;
}

/* ---- fork ---------------------------------------------------------------- *
 * prepare takes every lock the allocator has, in one order (the heap list,
 * then each heap, then the arena reserve inside pmi_arena_fork_*); the child
 * re-initialises them, and the heaps of threads that do not exist in the
 * child become abandoned, so that their blocks stay freeable and their pools
 * are reused by the child's next thread. */
/* prepare is a visitor of every other thread's heap: all are announced,
 * one barrier serves them all, then it waits for each owner to leave its
 * slow path (no slow path takes the locks still to come: the reserves').
 * The forking thread's own heap needs no announcement: its slow paths, in
 * other libraries' atfork handlers, are the only ones left. */
void pmi_heap_fork_prepare(void) {
  pmi_spin_fork_take(&heaps_lock_);
  bool any = false;
  for (pmi_heap *h = heaps_all; h != NULL; h = h->next_heap) {
    pmi_spin_fork_take(&h->lock);
    if (visit_needed(h)) {
      visit_announce(h);
      any = true;
    }
  }
  if (!any) return;
  pmi_visit_barrier();
  for (pmi_heap *h = heaps_all; h != NULL; h = h->next_heap)
    if (pmi_load_relaxed(&h->visitor)) visit_wait(h, true);
}

void pmi_heap_fork_parent(void) {
  for (pmi_heap *h = heaps_all; h != NULL; h = h->next_heap) {
    if (pmi_load_relaxed(&h->visitor)) atomic_store_explicit(&h->visitor, 0, memory_order_release);
    pmi_spin_fork_give(&h->lock);
  }
  pmi_spin_fork_give(&heaps_lock_);
}

void pmi_heap_fork_child(void) {
  pmi_heap *self = pmi_heap_own();
  for (pmi_heap *h = heaps_all; h != NULL; h = h->next_heap) {
    if (h != self && atomic_load(&h->owned)) {
      /* a thread this child starts may get the stack, and so the thread
       * pointer, of the heap's thread */
      pmi_heap_set_tp(h, 0);
      atomic_store(&h->owned, 0);
      h->repair = 1;   /* repaired when first used: a child that execs pays nothing */
      h->next_abandoned = heaps_abandoned;
      heaps_abandoned = h;
    }
    atomic_store(&h->visitor, 0);
    atomic_store(&h->busy, 0);
    atomic_store(&h->lock, PMI_LOCK_FREE);
  }
  atomic_store(&heaps_lock_, PMI_LOCK_FREE);
}

/* The heap of a thread that did not survive a fork.  Its lists are whole
 * (splices are made under the lock fork takes), but its thread may have
 * been inside a fast path: one pool's used count or free list may disagree
 * with its live bitmap.  Every pool is rebuilt from its bitmap, then the
 * pools whose state no longer fits their list are moved; the moves that may
 * give a pool back to its arena (and so retire the arena) wait until the
 * walk over the arenas is done. */
void pmi_heap_repair_locked(pmi_heap *heap) {
  if (!heap->repair) return;
  heap->repair = 0;
  pmi_remote_apply(heap);   /* made under the lock: whole */
  for (pmi_arena *a = heap->arenas; a != NULL; a = a->next_owned)
    for (unsigned i = PMI_FIRST_POOL; i < PMI_POOLS_PER_ARENA; i++)
      if (pmi_arena_pool(a, i)->state == PMI_POOL_USED || pmi_arena_pool(a, i)->state == PMI_POOL_FULL) pmi_pool_rebuild(heap, pmi_arena_pool(a, i));
  pmi_pool *to_release = NULL, *to_push = NULL;
  heap->nspare = pmi_heap_count_spares(heap);   /* used counts may have changed */
  heap->spares_gone = 0;
  heap->spare_leaves++;
  for (unsigned c = 0; c < PMI_NCLASSES; c++) {
    pmi_pool *head = heap->usedpools[c];
    if (head == &pmi_pool_sentinel) continue;
    for (pmi_pool *p = head->nextpool, *next; p != NULL; p = next) {
      next = p->nextpool;
      if (p->used == 0) {                                   /* a spare, or emptied mid-free */
        pmi_usedpools_unlink(heap, p);
        p->nextpool = to_release;
        to_release = p;
      } else if (p->freeblock == PMI_LIST_END && p->ncarved == p->capacity) {   /* nor exhausted */
        pmi_usedpools_unlink(heap, p);
        p->state = PMI_POOL_FULL;
      }
    }
  }
  for (pmi_arena *a = heap->arenas; a != NULL; a = a->next_owned)
    for (unsigned i = PMI_FIRST_POOL; i < PMI_POOLS_PER_ARENA; i++) {
      pmi_pool *p = pmi_arena_pool(a, i);
      if (p->state == PMI_POOL_FULL && p->used < p->capacity) {   /* full pools have no room */
        p->nextpool = to_push;
        to_push = p;
      }
    }
  while (to_push != NULL) {
    pmi_pool *p = to_push;
    to_push = p->nextpool;
    pmi_usedpools_push(heap, p);
  }
  while (to_release != NULL) {
    pmi_pool *p = to_release;
    to_release = p->nextpool;
    p->nextpool = NULL;
    heap->counters.pools_emptied++;
    pmi_arena_give_pool(heap, p);
  }
  pmi_medium_repair_locked(heap);
  pmi_heap_release_retained(heap);
}
