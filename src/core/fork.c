/* fork.c: the allocator's locks, and what fork does with them.
 *
 * fork() must not copy a lock that another thread holds into the child, so
 * every lock is taken before the fork and released (parent) or reset
 * (child) after it.  glibc takes its own malloc locks inside fork(), after
 * all pthread_atfork prepare handlers have run, and releases them before
 * the parent and child handlers: those handlers may allocate.  Ours are
 * ordinary atfork handlers, and a library initialised before poolmalloc has
 * registered its handlers first: its prepare runs after ours and its parent
 * and child handlers before ours, all while we hold every lock.  So a lock
 * taken for a fork is marked as such (PMI_LOCK_FORK), and the thread that
 * is forking passes through it: no other thread can enter the section it
 * guards until the fork is over, and the forking thread runs nothing of
 * ours while an atfork handler of another library runs, so it cannot be
 * inside that section already.  Releasing a lock marked for the fork does
 * nothing; the parent handler releases it.  glibc runs one fork's handlers
 * at a time (its atfork lock), and the first lock taken decides which
 * thread is forking.
 *
 * Locks are taken in one order: the debug quarantine, the heap list, each
 * heap, the arena reserve (free() in debug mode takes the quarantine's
 * before it frees into a heap; a heap's lock is held around arena calls). */
#include <pthread.h>
#include <sched.h>

#include "core/internal.h"

static __thread char tls_self __attribute__((tls_model("initial-exec")));   /* its address names the thread */
static _Atomic(char *) fork_thread;   /* the thread holding the locks for a fork, or NULL */

static void lock_wait(unsigned *spins) {
  if (++*spins > 64) sched_yield();
  else __builtin_ia32_pause();
}

void pmi_lock_acquire_slow(_Atomic int *lock) {
  unsigned spins = 0;
  for (;;) {
    int seen = pmi_load_relaxed(lock);
    if (seen == PMI_LOCK_FREE) {
      if (atomic_compare_exchange_weak_explicit(lock, &seen, PMI_LOCK_HELD, memory_order_acquire,
                                                memory_order_relaxed))
        return;
      continue;
    }
    if (seen == PMI_LOCK_FORK && atomic_load_explicit(&fork_thread, memory_order_acquire) == &tls_self)
      return;   /* an atfork handler of this fork: the section is ours */
    lock_wait(&spins);
  }
}

/* Takes lock for the fork: waits until its holder lets go. */
void pmi_lock_fork_take(_Atomic int *lock) {
  unsigned spins = 0;
  for (;;) {
    int expected = PMI_LOCK_FREE;
    if (atomic_compare_exchange_weak_explicit(lock, &expected, PMI_LOCK_FORK, memory_order_acquire,
                                              memory_order_relaxed))
      return;
    lock_wait(&spins);
  }
}

/* Gives back a lock fork_take took.  A lock that was free when the fork
 * began (a heap made by an atfork handler during the fork) is left alone. */
void pmi_lock_fork_give(_Atomic int *lock) {
  int expected = PMI_LOCK_FORK;
  atomic_compare_exchange_strong_explicit(lock, &expected, PMI_LOCK_FREE, memory_order_release,
                                          memory_order_relaxed);
}

static void fork_prepare(void) {
  pmi_debug_fork_prepare();
  atomic_store_explicit(&fork_thread, &tls_self, memory_order_release);
  pmi_heap_fork_prepare();
  pmi_arena_fork_prepare();
}

static void fork_parent(void) {
  pmi_arena_fork_parent();
  pmi_heap_fork_parent();
  atomic_store_explicit(&fork_thread, NULL, memory_order_relaxed);
  pmi_debug_fork_parent();
}

/* The child has one thread, this one: every lock is free again, and the
 * heaps of the other threads become orphans (heap.c). */
static void fork_child(void) {
  pmi_arena_fork_child();
  pmi_heap_fork_child();
  atomic_store(&fork_thread, NULL);
  pmi_debug_fork_child();
  pmi_stats_fork_child();
}

/* Called from pmi_process_init.  Registered as early as we can; the order
 * against other libraries' handlers no longer matters (see the top). */
void pmi_fork_setup(void) { pthread_atfork(fork_prepare, fork_parent, fork_child); }
