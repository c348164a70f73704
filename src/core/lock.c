/* lock.c: the core's one spin lock (heaps, the list of heaps, the reserve,
 * debug mode's quarantine).  A waiter spins on a plain load with a pause,
 * so that the holder's cache line is not stolen, then yields: on a loaded
 * machine the holder may be a thread that is not running.
 *
 * fork: every lock is taken before a fork and released (parent) or reset
 * (child) after it (fork.c).  glibc takes its own malloc locks inside
 * fork(), after all pthread_atfork prepare handlers, and releases them
 * before the parent and child handlers: those handlers may allocate.  Ours
 * are ordinary atfork handlers, and a library initialised before poolmalloc
 * registered its handlers first: its prepare runs after ours and its parent
 * and child handlers before ours, all while we hold every lock.  So a lock
 * taken for a fork is marked PMI_LOCK_FORK, and the thread that is forking
 * passes through it: no other thread can enter the section it guards until
 * the fork is over, and the forking thread runs nothing of ours while
 * another library's atfork handler runs, so it cannot be inside that
 * section already.  Releasing a lock marked for the fork does nothing; the
 * parent handler releases it.  The thread that holds the first lock taken
 * for a fork is the forking one (glibc may run two forks' handlers at
 * once: the second waits for that lock). */
#include "base/syscall.h"
#include "core/internal.h"

static __thread char tls_self __attribute__((tls_model("initial-exec")));   /* its address names the thread */
static _Atomic(char *) fork_thread;   /* the thread holding the locks for a fork, or NULL */

static void spin_wait(unsigned *spins) {
  if (++*spins > 64) pmi_sys_sched_yield();   /* not the C library's: os.c, "clock" */
  else __builtin_ia32_pause();
}

void pmi_spin_lock_slow(_Atomic int *lock) {
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
      return;   /* inside an atfork handler of our own fork: the section is ours */
    spin_wait(&spins);
  }
}

void pmi_spin_fork_take(_Atomic int *lock) {
  unsigned spins = 0;
  for (;;) {
    int expected = PMI_LOCK_FREE;
    if (atomic_compare_exchange_weak_explicit(lock, &expected, PMI_LOCK_FORK, memory_order_acquire,
                                              memory_order_relaxed))
      return;
    spin_wait(&spins);
  }
}

/* A lock that was free when the fork began (a heap made by an atfork
 * handler during the fork) is left alone. */
void pmi_spin_fork_give(_Atomic int *lock) {
  int expected = PMI_LOCK_FORK;
  atomic_compare_exchange_strong_explicit(lock, &expected, PMI_LOCK_FREE, memory_order_release,
                                          memory_order_relaxed);
}

void pmi_spin_fork_begin(void) { atomic_store_explicit(&fork_thread, &tls_self, memory_order_release); }
void pmi_spin_fork_end(void) { atomic_store_explicit(&fork_thread, NULL, memory_order_release); }
