/* purge.c: giving idle memory back to the OS, and malloc_trim.
 *
 * Three kinds of memory wait to go back:
 *   - remote frees into a heap whose owner does not call the allocator
 *     (blocked, sleeping, allocating other classes from full pools): they are
 *     taken by another thread holding the heap's lock (remote.c);
 *   - empty pools inside arenas that still hold live blocks: their pages go
 *     back with madvise once they have stayed empty for a whole purge period
 *     (one live block must not pin the 252 KiB of empty pools around it),
 *     and so do the pages of medium blocks held for an idle owner's FULL
 *     regions once the decay has passed (medium.c);
 *   - spares, the empty pools a heap keeps on its usedpools lists (up to
 *     four arenas' worth, types.h): an owned heap's go back to their arenas
 *     once the purge thread has seen the same spares at two passes with no
 *     use between (pool.c, "idle spares"), an unowned heap's at once; their
 *     pages go in the same pass, as those of empty pools above;
 *   - empty arenas in the reserve beyond POOLMALLOC_ARENA_RESERVE: unmapped
 *     once they have sat there POOLMALLOC_ARENA_DECAY_MS (arena.c), and
 *     empty medium regions beyond theirs likewise (medium.c), and freed
 *     huge mappings in their cache likewise (huge.c).
 * The allocator's own calls check the reserve's decay, but a program that
 * goes idle makes no calls.  So a purge thread does it: it wakes every half
 * decay period, does one pass, and exits when a pass leaves nothing that a
 * later pass could return.  It is started on demand (pmi_purge_kick, from
 * the slow paths, at points that hold no allocator lock) once something has
 * become returnable (pmi_purge_note): a program that never frees never has
 * one.  A forked child has no purge thread; its next kick starts one.  With
 * POOLMALLOC_PURGE_THREAD=0 there is none, and memory goes back only at the
 * allocator's calls and malloc_trim.
 *
 * Why a thread, and not the freeing side alone: the frees that make memory
 * returnable are over by the time it may go (the decay exists so that memory
 * needed again soon is not returned), and an idle program calls nothing
 * later.  Timing: an arena retired at t is unmapped by the first pass after
 * t + decay, at most t + 1.5 decay; a remote free pushed at t is collected
 * by t + decay / 2; an empty pool is given back between decay / 2 and decay
 * after it emptied, and so is a spare left alone.
 *
 * Lock order (as fork's): the heap list, then each heap as a visitor
 * (heap.c; the purge thread tries: a heap that is locked, or whose owner is
 * in a slow path, waits for the next pass), then the reserve. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>

#include "base/syscall.h"
#include "core/internal.h"

PMI_OLD_VERSION_pthread_sigmask

_Atomic int pmi_purge_wanted;        /* something may be returnable */
_Atomic int pmi_purge_running;       /* the thread exists (or is starting) */
pmi_purge_counts pmi_purge_stats;

void pmi_purge_note(void) {
  if (!pmi_load_relaxed(&pmi_purge_wanted)) atomic_store(&pmi_purge_wanted, 1);
}

/* Purge passes an empty pool of an arena carved from a huge-page chunk
 * sits through before its page goes, against one for other arenas.  A
 * page given back inside a huge page splits it into 4 KiB pages for good
 * (khugepaged may collapse it again much later), and the pool faults in
 * again page by page if the program takes it back: so a busy program's
 * pools, which empty and fill again within a few periods, keep their
 * huge pages, and an idle program's go back within 1.5 to 2 decay periods
 * of emptying, as the idle rule asks. */
#define CHUNK_PASSES 3u

/* Gives back the pages of the empty pools of arena a that have sat
 * through passes purge passes empty (one: since the previous pass; three
 * in a chunk), all of them if force, in runs of adjacent pools.  A pool
 * given back forgets its free list (its page reads as zeros): ncarved = 0,
 * and pmi_pool_init carves it afresh.  Sets *pending when a pool was
 * marked and may go at a later pass. */
static size_t arena_purge(pmi_arena *a, bool force, bool *pending) {
  size_t bytes = 0;
  unsigned run = 0;
  if (a->nkept == 0) return 0;   /* every empty pool's page gone already (types.h) */
  uintptr_t passes = a->in_chunk ? CHUNK_PASSES : 1;
  for (unsigned i = PMI_FIRST_POOL; i <= PMI_POOLS_PER_ARENA; i++) {
    pmi_pool *p = i < PMI_POOLS_PER_ARENA ? pmi_arena_pool(a, i) : NULL;
    bool go = false;
    if (p != NULL && p->state == PMI_POOL_EMPTY && p->ncarved != 0) {
      if (force || p->idle >= passes) {
        go = true;
      } else {
        p->idle++;
        *pending = true;
      }
    }
    if (go) {
      p->ncarved = 0;
      p->freeblock = PMI_LIST_END;
      a->nkept--;
      run++;
      continue;
    }
    if (run != 0) {
      pmi_os_purge((char *)a + (size_t)(i - run) * PMI_POOL_SIZE, run * PMI_POOL_SIZE);
      bytes += run * PMI_POOL_SIZE;
      run = 0;
    }
  }
  return bytes;
}

/* The same for every arena of heap. */
size_t pmi_purge_heap_pools(pmi_heap *heap, bool force, bool *pending) {
  size_t bytes = 0;
  for (pmi_arena *a = heap->arenas; a != NULL; a = a->next_owned) bytes += arena_purge(a, force, pending);
  return bytes;
}

/* The empty pools of heap's arenas, about budget bytes of them (whole
 * arenas'), from the arenas with the most free pools: the tail of
 * usable_arenas, whose pools the heap takes last (pmi_arena_take_pool
 * serves the fullest first), so that what the heap reuses soon keeps its
 * pages.  Those of arenas carved from huge-page chunks too, though a page
 * given back there splits its huge page (CHUNK_PASSES): leaving them to
 * the purge passes, bench_frag took 21.5 k page faults instead of 31.9 k
 * and 0.40 s instead of 0.45 (medians of 5), but peaked at 146.3 MB
 * instead of 137.8, its medium blocks' growth faulting in fresh pages
 * beside the empty pools' (the lean choice: the pages go back).  The
 * bytes given back. */
size_t pmi_purge_heap_pools_upto(pmi_heap *heap, size_t budget) {
  pmi_arena *a = heap->usable_arenas;
  if (a == NULL) return 0;
  while (a->nextarena != NULL) a = a->nextarena;
  size_t bytes = 0;
  bool pending = false;
  for (; a != NULL && bytes < budget; a = a->prevarena) bytes += arena_purge(a, true, &pending);
  return bytes;
}

static void count_purge(size_t bytes) {
  if (bytes == 0) return;
  atomic_fetch_add_explicit(&pmi_purge_stats.purges, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&pmi_purge_stats.purge_bytes, bytes, memory_order_relaxed);
}

/* One pass; true if a later pass may have something to do. */
static bool purge_pass(void) {
  bool pending = false;
  size_t bytes = 0;
  uint64_t unmapped_before = atomic_load(&pmi_purge_stats.arenas_unmapped);
  pending |= pmi_remote_flush_idle();   /* batches of threads gone idle (remote.c) */
  pmi_heaps_lock();
  for (pmi_heap *h = pmi_heap_first(); h != NULL; h = h->next_heap) {
    if (!pmi_heap_visit_try(h)) {   /* locked, or its owner in a slow path */
      pending = true;
      continue;
    }
    pmi_heap_collect_any(h);
    if (!atomic_load(&h->owned)) {
      pmi_heap_release_retained(h);
      pmi_medium_purge_idle(h, pmi_os_now_ms(), false, &pending);   /* pages idle since its exit */
    } else if (h != pmi_heap_own()) pending |= pmi_heap_spares_decay(h);   /* idle spares (pool.c) */
    bytes += pmi_purge_heap_pools(h, false, &pending);
    bytes += pmi_medium_purge_held(h, pmi_os_now_ms(), false, &pending);
    bytes += pmi_remote_hints_decay(h, false, &pending);
    pmi_heap_visit_end(h);
  }
  pmi_heaps_unlock();
  uint64_t now = pmi_os_now_ms();
  pending |= pmi_arena_decay(now);
  pending |= pmi_medium_decay(now);
  pending |= pmi_huge_decay(now);   /* freed huge mappings (huge.c) */
  count_purge(bytes);
  if (atomic_load(&pmi_purge_stats.arenas_unmapped) != unmapped_before && bytes == 0)
    atomic_fetch_add_explicit(&pmi_purge_stats.purges, 1, memory_order_relaxed);
  return pending;
}

static void *purge_main(void *arg) {
  long period = pmi_option(arena_decay_ms) / 2;
  if (period < 1) period = 1;
  for (;;) {
    struct timespec ts = {period / 1000, (period % 1000) * 1000000L};
    while (pmi_sys_nanosleep(&ts) != 0) {}
    atomic_store(&pmi_purge_wanted, 0);
    if (purge_pass()) continue;
    /* Nothing left: stop, unless something was noted meanwhile (the
     * seq_cst pair with pmi_purge_kick_slow: one of us sees the other). */
    atomic_store(&pmi_purge_running, 0);
    if (!atomic_load(&pmi_purge_wanted)) break;
    int expected = 0;
    if (!atomic_compare_exchange_strong(&pmi_purge_running, &expected, 1)) break;   /* a new one started */
  }
  return NULL;
}

/* Not in debug mode: its quarantine keeps freed memory on purpose, and
 * under valgrind the thread's own setup would show in the leak report. */
void pmi_purge_kick_slow(void) {
  if (!pmi_option(purge_thread) || pmi_debug_active || atomic_load(&pmi_purge_running)) return;
  if (pmi_load_relaxed(&pmi_process_state) != 2) return;
  int expected = 0;
  if (!atomic_compare_exchange_strong(&pmi_purge_running, &expected, 1)) return;
  int saved = errno;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 64 * 1024);
  sigset_t all, old;
  pmi_sigset_all(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);   /* the program's signals are not for it */
  pthread_t t;
  if (pthread_create(&t, &attr, purge_main, NULL) == 0)
    atomic_fetch_add_explicit(&pmi_purge_stats.purge_threads, 1, memory_order_relaxed);
  else
    atomic_store(&pmi_purge_running, 0);   /* tried again at the next kick */
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_attr_destroy(&attr);
  errno = saved;
}

void pmi_purge_fork_child(void) {
  atomic_store(&pmi_purge_running, 0);   /* the thread did not come along */
  atomic_store(&pmi_purge_wanted, 1);
}

/* malloc_trim(0), and an allocation that failed for want of memory: every
 * heap is collected (this thread's and unowned ones wholly, live owners'
 * FULL pools), their empty pools given back and the reserve unmapped.
 * A live owner's spares go back too, as a user of malloc_trim expects:
 * pool.c's rule for them (a spare goes back only once seen at two visits,
 * each behind its own barrier) is kept by visiting such a heap a second
 * time, at once, when the first look left spares (pmi_heap_spares_decay;
 * the rule needs the barrier between the looks, not a time).  An owner
 * that takes one of them meanwhile keeps them all, as at a purge pass.
 * Without membarrier (and under ThreadSanitizer) a visit is no barrier on
 * the owner's fast paths, which make the spares; there the rule is the one
 * the owner's slow paths show (pool.c, "idle spares"), which needs no
 * barrier between the looks either, so the second look at once serves
 * both modes.  Returns 1 if anything went back to the OS. */
int pmi_release_all(void) {
  uint64_t unmapped = atomic_load(&pmi_purge_stats.arenas_unmapped);
  pmi_heap *self = pmi_heap_own();
  pmi_counters before;
  pmi_counters_sum(&before);
  pmi_remote_flush();
  size_t bytes = 0;
  bool pending = false, spares_left = false;
  pmi_heaps_lock();
  for (pmi_heap *h = pmi_heap_first(); h != NULL; h = h->next_heap) {
    pmi_heap_visit(h);
    pmi_heap_collect_any(h);
    if (h == self || !atomic_load(&h->owned)) {
      pmi_heap_release_retained(h);
      bytes += pmi_medium_purge_idle(h, pmi_os_now_ms(), true, NULL);
    } else {
      spares_left |= pmi_heap_spares_decay(h);
    }
    bytes += pmi_purge_heap_pools(h, true, &pending);
    bytes += pmi_medium_purge_held(h, pmi_os_now_ms(), true, &pending);
    bytes += pmi_remote_hints_decay(h, true, &pending);
    pmi_heap_visit_end(h);
  }
  for (pmi_heap *h = pmi_heap_first(); spares_left && h != NULL; h = h->next_heap) {
    if (h == self || !atomic_load(&h->owned)) continue;
    pmi_heap_visit(h);
    if (atomic_load(&h->owned)) {   /* its owner may have left since: then its exit gave them back */
      pmi_heap_spares_decay(h);
      bytes += pmi_purge_heap_pools(h, true, &pending);
    }
    pmi_heap_visit_end(h);
  }
  pmi_heaps_unlock();
  pmi_arena_release_reserve(0);
  pmi_medium_release_reserve(0);
  pmi_huge_trim();
  count_purge(bytes);
  pmi_counters after;
  pmi_counters_sum(&after);
  return bytes != 0 || after.arenas_unmapped != before.arenas_unmapped ||
         after.mediums_unmapped != before.mediums_unmapped ||
         atomic_load(&pmi_purge_stats.arenas_unmapped) != unmapped;
}
