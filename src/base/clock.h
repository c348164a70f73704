/* clock.h: the monotonic clock for the layers above the core (the object
 * layer's collection timings).  One function of the library's own, so that
 * every layer binds clock_gettime to the one symbol version the core uses
 * (base/syscall.h, PMI_OLD_VERSION_clock_gettime): the object layer's
 * objects serve the static library too, where no version may be named. */
#ifndef PM_BASE_CLOCK_H
#define PM_BASE_CLOCK_H

#include <stdint.h>

#pragma GCC visibility push(hidden)

uint64_t pmi_clock_ns(void);   /* CLOCK_MONOTONIC, in nanoseconds */

#pragma GCC visibility pop

#endif /* PM_BASE_CLOCK_H */
