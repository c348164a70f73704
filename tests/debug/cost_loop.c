/* The malloc/free loop behind the cost figures of docs/debugging.md (not a
 * test; ctest builds only test_*.c).  By hand:
 *   cc -O2 -fno-builtin-malloc -fno-builtin-free tests/debug/cost_loop.c -o /tmp/cost_loop
 *   LD_PRELOAD=build/libpoolmalloc.so /tmp/cost_loop 20000000
 *   POOLMALLOC_DEBUG=1 LD_PRELOAD=build/libpoolmalloc.so /tmp/cost_loop 2000000
 * "random": each operation frees a random one of W slots (1000) and
 * allocates 8..512 bytes into it; "pair": free(malloc(32)). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 20000000;
  int w = argc > 2 ? atoi(argv[2]) : 1000;
  void **v = calloc(w, sizeof *v);
  unsigned long s = 88172645463325252ul, sum = 0;
  double t0 = now();
  for (long i = 0; i < n; i++) {
    s ^= s << 13; s ^= s >> 7; s ^= s << 17;
    int k = s % w;
    if (v[k]) { sum += *(unsigned char *)v[k]; free(v[k]); }
    size_t sz = 8 + (s >> 32) % 505;
    v[k] = malloc(sz);
    *(unsigned char *)v[k] = (unsigned char)sz;
  }
  double t1 = now();
  /* a pure malloc/free pair loop, one size */
  for (long i = 0; i < n; i++) { void *p = malloc(32); *(volatile char *)p = 1; free(p); }
  double t2 = now();
  for (int k = 0; k < w; k++) free(v[k]);
  printf("random: %.1f ns/op  pair: %.1f ns/pair  (sum %lu)\n", (t1 - t0) / n * 1e9, (t2 - t1) / n * 1e9, sum);
  return 0;
}
