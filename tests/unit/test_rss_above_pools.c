/* test_rss_above_pools.c: memory of medium and huge blocks goes back to the
 * OS: at once for a mapping too big to cache, after POOLMALLOC_ARENA_DECAY_MS
 * (1000 ms by default) for cached mappings and empty medium regions, and at
 * once on malloc_trim; and a program in a steady state does not pay for
 * purges it does not need.  RSS is read from /proc/self/statm. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pmtest.h"
#include "poolmalloc.h"

static size_t rss_mib(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  if (f == NULL) PMT_SKIP("no /proc/self/statm");
  unsigned long size = 0, res = 0;
  if (fscanf(f, "%lu %lu", &size, &res) != 2) PMT_SKIP("cannot read /proc/self/statm");
  fclose(f);
  return res * (size_t)sysconf(_SC_PAGESIZE) >> 20;
}

static void *touch(size_t n) {
  void *p = malloc(n);
  REQUIRE(p != NULL);
  memset(p, 0x77, n);
  return p;
}

/* A steady churn (batches of 1000 blocks of 513 B .. 64 KiB allocated,
 * touched, freed in another order, sizes running on from batch to batch)
 * gives back next to nothing once warm: the growth purge must not feed on
 * the pages its own purges make it touch again. */
static void steady_churn(void) {
  enum { BATCH = 1000, ROUNDS = 40, WARM = 8 };
  static void *v[BATCH];
  unsigned long long x = 88172645463325252ull;
  pm_counters c0, c1;
  size_t churned = 0;
  for (int r = 0; r < ROUNDS; r++) {
    if (r == WARM) pm_counters_get(&c0);
    for (int i = 0; i < BATCH; i++) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      size_t n = 513 + (size_t)(x % (65536 - 513));
      v[i] = malloc(n);
      REQUIRE(v[i] != NULL);
      memset(v[i], 1, n < 256 ? n : 256);
      if (r >= WARM) churned += n;
    }
    for (int i = 0; i < BATCH; i++) free(v[(i * 379) % BATCH]);
  }
  pm_counters_get(&c1);
  size_t purged = (size_t)(c1.medium_purge_bytes - c0.medium_purge_bytes + c1.purge_bytes - c0.purge_bytes);
  fprintf(stderr, "steady churn: %zu KiB purged of %zu MiB allocated\n", purged >> 10, churned >> 20);
  CHECKF(purged <= churned / 50, "a steady churn purged %zu KiB of %zu MiB allocated", purged >> 10, churned >> 20);
}

int main(void) {
  alarm(120);
  steady_churn();
  malloc_trim(0);
  size_t base = rss_mib();
  fprintf(stderr, "start: %zu MiB\n", base);

  /* a 64 MiB block is too big to cache: unmapped by free */
  void *big = touch(64u << 20);
  CHECKF(rss_mib() >= base + 60, "rss %zu MiB with 64 MiB live", rss_mib());
  free(big);
  CHECKF(rss_mib() < base + 8, "rss %zu MiB after freeing 64 MiB (start %zu)", rss_mib(), base);

  /* 4 MiB blocks are cached after free, and go after the decay time */
  enum { H = 8 };
  void *h[H];
  for (int i = 0; i < H; i++) h[i] = touch(4u << 20);
  for (int i = 0; i < H; i++) free(h[i]);
  size_t cached = rss_mib();
  fprintf(stderr, "8 x 4 MiB freed: %zu MiB (cached)\n", cached);
  CHECKF(cached >= base + 20, "freed huge blocks are kept a while (rss %zu MiB)", cached);
  h[0] = touch(4u << 20);                  /* served from the cache: no new memory */
  CHECKF(rss_mib() <= cached + 1, "a cached mapping is reused (rss %zu MiB, was %zu)", rss_mib(), cached);
  free(h[0]);
  usleep(1200 * 1000);
  free(malloc(200000));                    /* any huge call looks at the cache's age */
  CHECKF(rss_mib() < base + 8, "rss %zu MiB after the decay (start %zu)", rss_mib(), base);

  /* 128 MiB of medium blocks: their regions wait in the reserve, then go */
  enum { M = 2048 };
  static void *m[M];
  for (int i = 0; i < M; i++) m[i] = touch(65536);
  CHECKF(rss_mib() >= base + 120, "rss %zu MiB with 128 MiB of medium blocks", rss_mib());
  for (int i = 0; i < M; i++) free(m[i]);
  fprintf(stderr, "medium blocks freed: %zu MiB\n", rss_mib());
  usleep(1200 * 1000);
  free(touch(40000));                      /* takes a region from the reserve: the old ones go */
  free(touch(20000));
  CHECKF(rss_mib() < base + 8, "rss %zu MiB after the medium decay (start %zu)", rss_mib(), base);

  /* regions that keep one live block each: the pages of their free blocks
   * go back once they have been idle for the decay time (checked from the
   * owner's medium slow paths), and are counted */
  {
    enum { R = 48, PER = 15 };             /* 15 blocks of 64 KiB per 1 MiB region */
    static void *v[R * PER];
    for (int i = 0; i < R * PER; i++) v[i] = touch(65536);
    for (int i = 0; i < R * PER; i++)
      if (i % PER != 0) free(v[i]);
    size_t held = rss_mib();
    fprintf(stderr, "one live 64 KiB block per region: %zu MiB\n", held);
    CHECKF(held >= base + 40, "rss %zu MiB with %d partly used regions", held, R);
    pm_counters c0, c1;
    pm_counters_get(&c0);
    usleep(600 * 1000);
    free(touch(3000));                     /* a medium slow path: a first look */
    usleep(1200 * 1000);
    free(touch(5000));                     /* and one past the decay: the purge */
    pm_counters_get(&c1);
    size_t purged = (size_t)(c1.medium_purge_bytes - c0.medium_purge_bytes);
    fprintf(stderr, "after the decay: %zu MiB, %zu KiB purged\n", rss_mib(), purged >> 10);
    CHECKF(purged >= (size_t)R * (PER - 1) * 60000, "%zu bytes of idle free blocks purged", purged);
    CHECKF(rss_mib() < base + 16, "rss %zu MiB after the idle regions' decay (start %zu)", rss_mib(), base);
    for (int i = 0; i < R * PER; i += PER) free(v[i]);
  }

  /* malloc_trim returns everything at once */
  for (int i = 0; i < M; i++) m[i] = touch(i % 2 ? 65536 : 5000);
  for (int i = 0; i < H; i++) h[i] = touch(4u << 20);
  for (int i = 0; i < M; i++) free(m[i]);
  for (int i = 0; i < H; i++) free(h[i]);
  malloc_trim(0);
  CHECKF(rss_mib() < base + 8, "rss %zu MiB after malloc_trim (start %zu)", rss_mib(), base);
  CHECK(pm_check() == 0);
  return pmt_done("unit.test_rss_above_pools");
}
