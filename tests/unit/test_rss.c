/* test_rss.c: freed memory goes back to the OS.
 *
 * 1. main allocates ~300 MB of small blocks (16..512 bytes, every byte
 *    written), checks that RSS rose by more than 250 MB, frees them all in a
 *    random order, calls malloc_trim(0), and checks that RSS is back within
 *    40 MB of where it started;
 * 2. the same, with the blocks allocated by a second thread that hands them
 *    to main in batches and exits while main is still freeing them (frees
 *    into the heap of a thread that is gone).
 * RSS is read from /proc/self/statm. */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pmtest.h"
#include "poolmalloc.h"

#define MB (1024.0 * 1024.0)
#define TARGET_BYTES ((size_t)300 << 20)
#define MIN_RISE ((size_t)250 << 20)
#define MAX_LEFT ((size_t)40 << 20)
/* more than enough pointers for TARGET_BYTES of blocks averaging 264 bytes */
#define MAX_BLOCKS (TARGET_BYTES / 200)

static size_t rss_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  if (f == NULL) PMT_SKIP("cannot open /proc/self/statm");
  unsigned long size = 0, resident = 0;
  int n = fscanf(f, "%lu %lu", &size, &resident);
  fclose(f);
  if (n != 2) PMT_SKIP("cannot parse /proc/self/statm");
  return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

/* The pointer array lives outside malloc, so that it neither adds to what is
 * measured nor keeps glibc's heap from shrinking. */
static void **blocks;
static size_t nblocks;

static void *map_or_die(size_t bytes) {
  void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  REQUIRE(p != MAP_FAILED);
  return p;
}

/* Allocates blocks until TARGET_BYTES are handed out; publishes each batch
 * through *published (release) when given. */
static void allocate_all(uint64_t seed, atomic_size_t *published) {
  pmt_rng r = pmt_rng_seed(seed);
  size_t total = 0;
  nblocks = 0;
  while (total < TARGET_BYTES && nblocks < MAX_BLOCKS) {
    size_t n = pmt_range(&r, 16, 512);
    void *p = malloc(n);
    REQUIRE(p != NULL);
    memset(p, (int)(nblocks & 0xFF) | 1, n);      /* touch every byte */
    blocks[nblocks++] = p;
    total += n;
    if (published != NULL && (nblocks & 4095) == 0)
      atomic_store_explicit(published, nblocks, memory_order_release);
  }
  if (published != NULL) atomic_store_explicit(published, nblocks, memory_order_release);
}

static void shuffle(void **v, size_t n, uint64_t seed) {
  pmt_rng r = pmt_rng_seed(seed);
  for (size_t i = n - 1; i > 0; i--) {
    size_t j = (size_t)(pmt_next(&r) % (i + 1));
    void *t = v[i];
    v[i] = v[j];
    v[j] = t;
  }
}

static void check_returned(const char *what, size_t start) {
  int r = malloc_trim(0);
  CHECKF(r == 0 || r == 1, "malloc_trim(0) = %d", r);
  size_t end = rss_bytes();
  fprintf(stderr, "  %s: RSS after free + malloc_trim(0) %.1f MB (start %.1f MB)\n", what, end / MB,
          start / MB);
  CHECKF(end <= start + MAX_LEFT, "%s: RSS %.1f MB after freeing everything, started at %.1f MB",
         what, end / MB, start / MB);
}

/* ---- 1. one thread -------------------------------------------------------- */

static void test_single_thread(void) {
  size_t start = rss_bytes();
  allocate_all(1, NULL);
  size_t peak = rss_bytes();
  fprintf(stderr, "  one thread: %zu blocks, RSS %.1f MB -> %.1f MB\n", nblocks, start / MB, peak / MB);
  CHECKF(peak > start + MIN_RISE, "RSS rose only %.1f MB for ~300 MB of blocks",
         ((double)peak - (double)start) / MB);
  int bad = pm_check();
  CHECKF(bad == 0, "pm_check() = %d with 300 MB live", bad);
  shuffle(blocks, nblocks, 2);
  for (size_t i = 0; i < nblocks; i++) free(blocks[i]);
  bad = pm_check();
  CHECKF(bad == 0, "pm_check() = %d after freeing", bad);
  check_returned("one thread", start);
}

/* ---- 2. a thread allocates and exits while main frees --------------------- */

static atomic_size_t published;
static atomic_int allocator_done;

static void *allocator_thread(void *arg) {
  allocate_all(3, &published);
  atomic_store_explicit(&allocator_done, 1, memory_order_release);
  return NULL;
}

static void test_exited_thread(void) {
  size_t start = rss_bytes();
  atomic_store(&published, 0);
  atomic_store(&allocator_done, 0);
  nblocks = 0;
  pthread_t t;
  REQUIRE(pthread_create(&t, NULL, allocator_thread, NULL) == 0);
  /* free the first half of what is published, as it comes, in shuffled
   * batches, while the thread still allocates */
  size_t freed = 0;
  for (;;) {
    int finished = atomic_load_explicit(&allocator_done, memory_order_acquire);
    size_t avail = atomic_load_explicit(&published, memory_order_acquire);
    size_t upto = avail / 2;
    if (upto > freed) {
      shuffle(blocks + freed, upto - freed, freed);
      for (size_t i = freed; i < upto; i++) {
        free(blocks[i]);
        blocks[i] = NULL;
      }
      freed = upto;
    } else if (finished) {
      break;
    } else {
      sched_yield();
    }
  }
  REQUIRE(pthread_join(t, NULL) == 0);
  size_t peak_blocks = nblocks;
  size_t peak = rss_bytes();
  fprintf(stderr, "  exited thread: %zu blocks (%zu freed while it ran), RSS %.1f MB -> %.1f MB\n",
          peak_blocks, freed, start / MB, peak / MB);
  CHECKF(peak > start + MIN_RISE / 2, "RSS rose only %.1f MB for ~150 MB of blocks still live",
         ((double)peak - (double)start) / MB);
  /* the rest: freed by main after the thread is gone */
  shuffle(blocks + freed, nblocks - freed, 4);
  for (size_t i = freed; i < nblocks; i++) free(blocks[i]);
  int bad = pm_check();
  CHECKF(bad == 0, "pm_check() = %d after freeing an exited thread's blocks", bad);
  check_returned("exited thread", start);

  /* a second round in the same process reuses or remaps, and returns again */
  size_t start2 = rss_bytes();
  allocate_all(5, NULL);
  size_t peak2 = rss_bytes();
  CHECKF(peak2 > start2 + MIN_RISE, "second round: RSS rose only %.1f MB",
         ((double)peak2 - (double)start2) / MB);
  for (size_t i = 0; i < nblocks; i++) free(blocks[i]);
  check_returned("second round", start2);
  CHECK(start2 <= start + MAX_LEFT);
}

int main(void) {
  alarm(240);
  blocks = map_or_die(MAX_BLOCKS * sizeof(void *));
  /* warm up stdio and the thread machinery before the first measurement */
  fprintf(stderr, "RSS at start %.1f MB\n", rss_bytes() / MB);
  test_single_thread();
  test_exited_thread();
  munmap(blocks, MAX_BLOCKS * sizeof(void *));
  int bad = pm_check();
  CHECKF(bad == 0, "pm_check() = %d at the end", bad);
  return pmt_done("unit.test_rss");
}
