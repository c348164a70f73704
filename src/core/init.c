/* init.c: process start-up, fork and exit.
 *
 * The first call may come from anywhere: the dynamic loader, another
 * library's constructor, dlsym, a thread we have never seen.  pmi_process_init
 * runs once, from whichever call comes first, and must not recurse into
 * itself: while it runs, the initialising thread's own allocations (dlsym may
 * calloc) go through, since everything they need is set up before the step
 * that can allocate. */
#include "base/syscall.h"

#include "core/internal.h"

_Atomic int pmi_process_state;   /* 0 none, 1 initialising, 2 ready */
static __thread uint8_t tls_initialising __attribute__((tls_model("initial-exec")));


pmi_startup void pmi_process_init(void) {
  if (pmi_likely(atomic_load_explicit(&pmi_process_state, memory_order_acquire) == 2)) return;
  if (tls_initialising) return;
  int expected = 0;
  if (!atomic_compare_exchange_strong(&pmi_process_state, &expected, 1)) {
    while (atomic_load_explicit(&pmi_process_state, memory_order_acquire) != 2) pmi_sys_sched_yield();
    return;
  }
  tls_initialising = 1;
  uint64_t r = pmi_os_random();
  pmi_remote_key = (uintptr_t)(r * 0x9E3779B97F4A7C15ull) | 2;
  pmi_remote_link_key = (uintptr_t)((r ^ (r >> 31)) * 0x94D049BB133111EBull);
  /* The top bit clear, so that the end of the free lists fails every link
   * check even while the two words change: another thread's malloc on the
   * empty heap may read the new key with the old link (~0) or the reverse,
   * and each decodes to an offset of at least 2^63 (pool.c, pmi_list_end). */
  pmi_link_key = (uintptr_t)((r ^ (r >> 29)) * 0xBF58476D1CE4E5B9ull) & ~((uintptr_t)1 << 63);
  pmi_list_end_init();
  pmi_options_init();
  pmi_arenamap_init();
  pmi_stats_note_stderr();
  pmi_debug_init();
  pmi_heap_setup();
  if (pmi_debug_active || pmi_option(stats_interval) > 0) pmi_fork_setup();   /* else at first use (fork.c) */
  pmi_libc_init();
  atomic_store_explicit(&pmi_process_state, 2, memory_order_release);
  tls_initialising = 0;
}

__attribute__((constructor(101))) static void process_start(void) {
  pmi_process_init();
  pmi_stats_start_interval();   /* not in pmi_process_init: it may run inside malloc */
}

/* Runs after main returns or exit() is called (a preloaded library is
 * finalised last), also in forked children that exit. */
__attribute__((destructor(101))) static void process_end(void) { pmi_stats_at_exit(); }
