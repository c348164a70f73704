/* The library reads the clock (its decay: medium.c, huge.c, purge.c)
 * through the kernel's vDSO, not the C library's clock_gettime, whose page
 * a program that never reads the clock would otherwise map, with the 64 KiB
 * window of the C library's text around it (core/os.c, "clock").  This
 * program defines clock_gettime itself: the library's calls of the C
 * library's function would come here (the dynamic loader binds the
 * library's import to the program's definition), and none may, while
 * the library's clock is read: a huge block freed into the cache and
 * taken again, medium regions emptied, a trim. */
#include <malloc.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "pmtest.h"

static atomic_int calls;

int clock_gettime(clockid_t clock, struct timespec *ts) {
  atomic_fetch_add(&calls, 1);
  return (int)syscall(SYS_clock_gettime, clock, ts);
}

int main(void) {
#if !defined(__x86_64__) || defined(__SANITIZE_THREAD__)
  PMT_SKIP("the direct clock is x86-64's, without ThreadSanitizer");
#endif
  if (access("/proc/self/auxv", R_OK) != 0 || getauxval(AT_SYSINFO_EHDR) == 0)
    PMT_SKIP("no /proc/self/auxv or no vDSO: the C library's clock serves");
  struct timespec ts;
  REQUIRE(clock_gettime(CLOCK_MONOTONIC, &ts) == 0 && calls == 1);   /* the definition is in use */
  calls = 0;
  for (int i = 0; i < 4; i++) {
    void *h = malloc((size_t)4 << 20);
    REQUIRE(h != NULL);
    memset(h, 1, 4096);
    free(h);
  }
  void *m[64];
  for (int i = 0; i < 64; i++) m[i] = malloc(600 + (size_t)i * 1024);
  for (int i = 0; i < 64; i++) free(m[i]);
  malloc_trim(0);
  CHECKF(calls == 0, "the library called the C library's clock_gettime %d times", calls);
  return pmt_done("layout.test_libc_clock");
}
