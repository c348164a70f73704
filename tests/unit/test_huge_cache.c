/* test_huge_cache.c: the cache of freed huge mappings.
 *   - a request no cached run fits takes the largest smaller one and grows
 *     it, so that the new block starts on pages already faulted in; when
 *     several smaller runs fit it together, it starts on all of their
 *     pages (and calloc still reads zeros);
 *   - the cache never holds more than the huge blocks' peak less what is
 *     live, plus an eighth of the peak up to 6 MiB here (up to the largest
 *     block's mapping, if that is more): live + cached stays within
 *     peak + min(peak / 8, 6 MiB), so freed pages never take the
 *     process far above a footprint it has had;
 *   - fresh memory touched elsewhere (medium blocks) takes that headroom
 *     from the cache: a freed 2 MiB block is not kept while the process
 *     grows by as much again in medium blocks. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pmtest.h"
#include "poolmalloc.h"

static void *touch(size_t n) {
  char *p = malloc(n);
  REQUIRE(p != NULL);
  for (size_t i = 0; i < n; i += 4096) p[i] = 1;
  return p;
}

/* Pages of [p, p + n) resident, of n / page. */
static size_t resident(void *p, size_t n) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE), pages = n / page, in = 0;
  unsigned char *v = malloc(pages);
  REQUIRE(v != NULL && mincore(p, n, v) == 0);
  for (size_t i = 0; i < pages; i++) in += v[i] & 1;
  free(v);
  return in;
}

/* n blocks replaced at random among live ones of lo .. lo + span bytes,
 * every page touched: how far live + cached went above the huge peak after
 * any free (*peak: the peak at the end); the blocks are freed at the end. */
static size_t churn(int live, int n, size_t lo, size_t span, size_t *peak) {
  void **v = calloc((size_t)live, sizeof *v);
  REQUIRE(v != NULL);
  unsigned long long x = 88172645463325252ull;
  size_t worst = 0;
  pm_stats st;
  for (int i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    int k = (int)(x % (unsigned)live);
    free(v[k]);
    pm_stats_get(&st);
    size_t held = (size_t)(st.large.mapped_bytes + st.large.cached_bytes);
    if (held > st.large.peak_bytes && held - st.large.peak_bytes > worst) worst = held - st.large.peak_bytes;
    v[k] = touch(lo + (size_t)(x >> 20) % span);
  }
  pm_stats_get(&st);
  *peak = (size_t)st.large.peak_bytes;
  for (int k = 0; k < live; k++) free(v[k]);
  free(v);
  return worst;
}

/* A program whose huge blocks peak small (4 live blocks of 256..512 KiB,
 * the first huge blocks of this process, so that the peak is theirs): the
 * slack is an eighth of that peak, not 6 MiB. */
static void small_peak(void) {
  size_t peak, worst = churn(4, 400, 256u << 10, 256u << 10, &peak);
  CHECKF(peak <= (2560u << 10), "the peak is %zu KiB: another huge block came first", peak >> 10);
  CHECKF(worst <= peak / 8, "live + cached went %zu KiB above a peak of %zu KiB (more than an eighth)",
         worst >> 10, peak >> 10);
  malloc_trim(0);
}

/* Growth elsewhere (the huge peak still small, from small_peak): a freed
 * 2 MiB block is cached, then 3 MiB of medium blocks touched take that
 * headroom, and the cached run goes back to the OS. */
static void growth_elsewhere(void) {
  pm_stats st;
  malloc_trim(0);
  free(touch(2u << 20));
  pm_stats_get(&st);
  CHECKF(st.large.cached_bytes >= (2u << 20), "the freed block is cached (%llu bytes)",
         (unsigned long long)st.large.cached_bytes);
  enum { NMED = 384 };
  static void *med[NMED];   /* 3 MiB of 8 KiB blocks */
  for (int i = 0; i < NMED; i++) med[i] = touch(8192);
  pm_stats_get(&st);
  CHECKF(st.large.cached_bytes == 0, "%llu bytes still cached after 3 MiB of medium blocks",
         (unsigned long long)st.large.cached_bytes);
  for (int i = 0; i < NMED; i++) free(med[i]);
}

/* Two cached runs that fit a request together (kept apart by a live block
 * between them) both serve it: the new block starts on their pages, and
 * calloc zeroes what they held. */
static void runs_joined(void) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  malloc_trim(0);
  char *a = touch(1u << 20), *spacer = touch(1u << 20), *b = touch(3u << 19);
  memset(a, 7, 1u << 20);
  memset(b, 7, 3u << 19);
  free(a);
  free(b);
  pm_stats st;
  pm_stats_get(&st);
  CHECKF(st.large.cached == 2, "two runs cached (%llu)", (unsigned long long)st.large.cached);
  char *c = calloc(1, 3u << 20);
  REQUIRE(c != NULL);
  size_t in = resident(c, 5u << 19);
  CHECKF(in >= ((5u << 19) - 4 * 256 * 1024) / page, "the new block starts on %zu faulted pages of %zu", in,
         (size_t)(5u << 19) / page);
  size_t nonzero = 0;
  for (size_t i = 0; i < (3u << 20); i++) nonzero += c[i] != 0;
  CHECKF(nonzero == 0, "calloc's block has %zu bytes that are not zero", nonzero);
  pm_stats_get(&st);
  CHECKF(st.large.cached == 0, "the runs left the cache (%llu runs cached)", (unsigned long long)st.large.cached);
  /* The joined block is several kernel mappings: realloc still moves its
   * pages (piece by piece) and keeps its bytes. */
  for (size_t i = 0; i < (3u << 20); i++) c[i] = (char)(i * 7 + 1);
  pm_counters k0, k1;
  pm_counters_get(&k0);
  char *d = realloc(c, 8u << 20);
  REQUIRE(d != NULL);
  pm_counters_get(&k1);
  size_t wrong = 0;
  for (size_t i = 0; i < (3u << 20); i++) wrong += d[i] != (char)(i * 7 + 1);
  CHECKF(wrong == 0, "%zu bytes changed when the joined block grew", wrong);
  CHECKF(k1.huge_remaps == k0.huge_remaps + 1, "the joined block grew by mremap (%llu remaps)",
         (unsigned long long)(k1.huge_remaps - k0.huge_remaps));
  memset(d, 1, 8u << 20);
  free(d);
  free(spacer);
}

int main(void) {
  small_peak();
  growth_elsewhere();
  runs_joined();
  size_t page = (size_t)sysconf(_SC_PAGESIZE);

  /* a smaller cached run grows into the new block */
  malloc_trim(0);
  char *a = touch(2u << 20);
  free(a);
  char *b = malloc(3u << 20);
  REQUIRE(b != NULL);
  size_t in = resident(b, 2u << 20);
  CHECKF(in >= ((2u << 20) - 2 * 256 * 1024) / page, "the new block starts on %zu faulted pages of %zu", in,
         (size_t)(2u << 20) / page);
  memset(b, 3, 3u << 20);
  pm_stats st;
  pm_stats_get(&st);
  CHECKF(st.large.cached == 0, "the run left the cache (%llu runs cached)", (unsigned long long)st.large.cached);
  free(b);

  /* malloc-large's pattern: 20 live blocks of 256 KiB .. 4 MiB replaced at
   * random, none above 4 MiB; after every free, live + cached <= peak +
   * 6 MiB */
  malloc_trim(0);
  size_t peak, worst = churn(20, 600, 256u << 10, (4u << 20) - (256u << 10), &peak);
  CHECKF(worst <= (6u << 20), "live + cached went %zu KiB above the peak of %zu KiB", worst >> 10, peak >> 10);

  CHECK(pm_check() == 0);
  return pmt_done("unit.test_huge_cache");
}
