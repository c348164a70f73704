/* clock.c: the monotonic clock of clock.h. */
#include "base/clock.h"

#include <time.h>

#include "base/syscall.h"

PMI_OLD_VERSION_clock_gettime

uint64_t pmi_clock_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
