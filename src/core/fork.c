/* fork.c: the atfork handlers.  Every lock is taken in one order: debug
 * mode's quarantine (taken in every mode: it is the first, the one that
 * says which thread is forking, lock.c), the list of heaps, each heap, the
 * arena reserve, the medium reserve, the huge cache, the chunks (free() in
 * debug mode takes the quarantine's before it frees into a heap; a heap's
 * lock is held around arena calls).  Other
 * libraries' handlers may allocate while they are held (lock.c). */
#include <pthread.h>

#include "core/internal.h"

static void fork_prepare(void) {
  pmi_debug_fork_prepare();
  pmi_spin_fork_begin();
  pmi_heap_fork_prepare();
  pmi_arena_fork_prepare();
  pmi_medium_fork_prepare();
  pmi_huge_fork_prepare();
  pmi_chunk_fork_prepare();
}

static void fork_parent(void) {
  pmi_chunk_fork_parent();
  pmi_huge_fork_parent();
  pmi_medium_fork_parent();
  pmi_arena_fork_parent();
  pmi_heap_fork_parent();
  pmi_spin_fork_end();
  pmi_debug_fork_parent();
}

/* The child has one thread, this one: every lock is free again, the heaps
 * of the other threads become orphans (heap.c), and the interval thread of
 * the statistics is gone. */
static void fork_child(void) {
  pmi_chunk_fork_child();
  pmi_huge_fork_child();
  pmi_medium_fork_child();
  pmi_arena_fork_child();
  pmi_heap_fork_child();
  pmi_purge_fork_child();   /* the purge thread did not come along */
  pmi_remote_fork_child();  /* nor the other threads' batches */
  pmi_spin_fork_end();
  pmi_debug_fork_child();
  pmi_stats_fork_child();
}

/* Registered at the first use that can leave state a fork must see to:
 * the first heap (pmi_heaps_lock, which every heap's creation, adoption,
 * report and trim takes first), the first huge block (huge.c), and at
 * start-up only when debug mode or the statistics' interval thread is on.
 * Before that no lock of ours can be held and no thread of ours runs, so a
 * fork needs no handler; and a program that never allocates (/bin/true)
 * does not pay for the registration: glibc's __register_atfork brings 64 KiB
 * of its read-only data and a window of its text into memory.  The order
 * against other libraries' handlers does not matter (lock.c).
 *
 * pthread_atfork is glibc's libc_nonshared.a wrapper of __register_atfork,
 * linked at the very end of the library's text (a page nothing else on
 * these paths touches); the call it makes, as it makes it. */
extern void *__dso_handle;
extern int __register_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void), void *dso);

_Atomic int pmi_fork_state;   /* 0 not registered, 1 being registered, 2 registered */
static __thread uint8_t registering __attribute__((tls_model("initial-exec")));

pmi_noinline void pmi_fork_setup_slow(void) {
  /* __register_atfork may allocate (beyond its first 48 handlers), and so
   * come back here in this thread: the handlers are not needed for that. */
  if (registering) return;
  int expected = 0;
  if (atomic_compare_exchange_strong(&pmi_fork_state, &expected, 1)) {
    registering = 1;
    __register_atfork(fork_prepare, fork_parent, fork_child, __dso_handle);
    registering = 0;
    atomic_store_explicit(&pmi_fork_state, 2, memory_order_release);
    return;
  }
  /* another thread is registering them: no lock of ours before they are */
  while (atomic_load_explicit(&pmi_fork_state, memory_order_acquire) != 2) {}
}
