/* fork.c: the atfork handlers.  Every lock is taken in one order: debug
 * mode's quarantine (taken in every mode: it is the first, the one that
 * says which thread is forking, lock.c), the list of heaps, each heap, the
 * arena reserve (free() in debug mode takes the quarantine's before it
 * frees into a heap; a heap's lock is held around arena calls).  Other
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
}

static void fork_parent(void) {
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

/* From pmi_process_init, as early as we can; the order against other
 * libraries' handlers no longer matters (lock.c). */
/* pthread_atfork is glibc's libc_nonshared.a wrapper of __register_atfork,
 * linked at the very end of the library's text: calling it would fault in
 * a text page that nothing else at start-up touches, and the kernel maps
 * the 64 KiB around it (half the library's text resident in a process that
 * barely allocates).  The call it makes, as it makes it: */
extern void *__dso_handle;
extern int __register_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void), void *dso);
pmi_startup void pmi_fork_setup(void) { __register_atfork(fork_prepare, fork_parent, fork_child, __dso_handle); }
