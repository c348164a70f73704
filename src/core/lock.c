/* lock.c: the core's one spin lock (heaps, the list of heaps, the reserve).
 * A waiter spins on a plain load with a pause, so that the holder's cache
 * line is not stolen, then yields: on a loaded machine the holder may be a
 * thread that is not running. */
#include <sched.h>

#include "core/internal.h"

pmi_noinline void pmi_spin_wait(_Atomic int *lock) {
  unsigned spins = 0;
  do {
    while (pmi_load_relaxed(lock)) {
      if (++spins > 64) sched_yield();
      else __builtin_ia32_pause();
    }
  } while (atomic_exchange_explicit(lock, 1, memory_order_acquire));
}
