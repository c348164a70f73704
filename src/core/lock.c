/* lock.c: the core's one spin lock (heaps, the list of heaps, the reserve).
 * A waiter spins on a plain load with a pause, so that the holder's cache
 * line is not stolen, then yields: on a loaded machine the holder may be a
 * thread that is not running. */
#include <sched.h>

#include "core/internal.h"

void pmi_spin_lock(_Atomic int *lock) {
  unsigned spins = 0;
  while (atomic_exchange_explicit(lock, 1, memory_order_acquire)) {
    while (pmi_load_relaxed(lock)) {
      if (++spins > 64) sched_yield();
      else __builtin_ia32_pause();
    }
  }
}
