/* The library's clock (core/os.c, "clock"): the vDSO's clock_gettime found
 * from the auxiliary vector, and the same coarse monotonic milliseconds as
 * the C library's. */
#include <sys/auxv.h>
#include <time.h>
#include <unistd.h>

#include "core/internal.h"
#include "pmtest.h"

static uint64_t libc_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int main(void) {
  bool direct = pmi_os_clock_direct();
#if defined(__x86_64__) && !defined(__SANITIZE_THREAD__)
  /* (valgrind, for one, gives its programs no vDSO) */
  if (access("/proc/self/auxv", R_OK) == 0 && getauxval(AT_SYSINFO_EHDR) != 0)
    CHECKF(direct, "%s", "the vDSO's clock_gettime was not found");
#endif
  uint64_t last = 0;
  for (int i = 0; i < 50; i++) {
    uint64_t a = libc_ms(), ours = pmi_os_now_ms(), b = libc_ms();
    CHECKF(ours + 20 >= a && ours <= b + 20, "now_ms %llu outside [%llu, %llu]", (unsigned long long)ours,
           (unsigned long long)a, (unsigned long long)b);
    CHECKF(ours >= last, "now_ms went back: %llu after %llu", (unsigned long long)ours, (unsigned long long)last);
    last = ours;
    usleep(2000);
  }
  fprintf(stderr, "clock: %s\n", direct ? "the vDSO's, directly" : "the C library's");
  return pmt_done("internal.test_clock");
}
