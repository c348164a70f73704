/* test_above_pools.c: the medium classes (513 B .. 128 KiB) and huge blocks
 * (a mapping each) through every entry point, at and around each boundary:
 *   a. malloc/calloc/usable_size at every boundary, every usable byte writable
 *   b. every alignment from 16 to 64 KiB at sizes across the boundaries
 *   c. realloc across every boundary, up and down, contents checked; a
 *      buffer grown in 64-byte steps moves only at class edges
 *   d. cross-thread frees of medium and huge blocks, and thread exit with
 *      live ones (freed later by main, adopted by the next thread)
 *   e. fork while other threads allocate and free them; the child uses
 *      the parent's blocks and its own
 * pm_check() after each part. */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pmtest.h"
#include "poolmalloc.h"

#pragma GCC diagnostic ignored "-Wdeprecated-declarations"   /* valloc, pvalloc */

#define MEDIUM_MAX 131072u

static const size_t boundaries[] = {
  1, 511, 512, 513, 514, 639, 640, 641, 1024, 1025, 1032, 1152, 1153, 4095, 4096, 4097, 4104, 4368,
  4608, 4609, 32767, 32768, 32769, 65536, 122880, 122881, 131071, 131072, 131073, 262144, 262145, (1u << 20) - 1, 1u << 20,
  (4u << 20) + 3,
};
#define NB (sizeof boundaries / sizeof boundaries[0])

static bool aligned(const void *p, size_t a) { return ((uintptr_t)p & (a - 1)) == 0; }

static void fill(void *p, size_t n, unsigned seed) {
  unsigned char *b = p;
  for (size_t i = 0; i < n; i++) b[i] = (unsigned char)(i * 31 + seed);
}
static bool same(const void *p, size_t n, unsigned seed) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++)
    if (b[i] != (unsigned char)(i * 31 + seed)) return false;
  return true;
}
static bool zero(const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++)
    if (b[i]) return false;
  return true;
}

static void checkpoint(const char *where) {
  int bad = pm_check();
  CHECKF(bad == 0, "pm_check() = %d after %s", bad, where);
}

/* ---- a. -------------------------------------------------------------------- */
static void test_sizes(void) {
  for (size_t i = 0; i < NB; i++) {
    size_t n = boundaries[i];
    void *p = malloc(n);
    REQUIRE(p != NULL);
    CHECKF(aligned(p, 16) && pm_owns(p), "malloc(%zu) = %p", n, p);
    size_t u = malloc_usable_size(p);
    CHECKF(u >= n, "usable(malloc(%zu)) = %zu", n, u);
    /* a medium block: aligned as its class size's power-of-two part, up to
     * 4 KiB (what the aligned entry points rely on) */
    size_t a = u & -u;
    if (n > 512 && n <= MEDIUM_MAX) CHECKF(aligned(p, a < 4096 ? a : 4096), "medium block %p of %zu", p, u);
    fill(p, u, 7);                                   /* usable bytes are writable */
    CHECK(same(p, u, 7));
    free(p);
    /* calloc: zero even when the memory was just used */
    p = malloc(n);
    REQUIRE(p != NULL);
    memset(p, 0xEE, n);
    free(p);
    p = calloc(1, n);
    REQUIRE(p != NULL);
    CHECKF(zero(p, n), "calloc(1, %zu) not zero", n);
    free(p);
  }
  /* many live blocks of each class, freed in a scrambled order */
  enum { K = 300 };
  static void *v[K];
  pmt_rng r = pmt_rng_seed(5);
  for (int round = 0; round < 4; round++) {
    for (int i = 0; i < K; i++) {
      size_t n = pmt_range(&r, 513, round < 3 ? MEDIUM_MAX : 600000);
      v[i] = malloc(n);
      REQUIRE(v[i] != NULL);
      fill(v[i], n < 256 ? n : 256, (unsigned)i);
    }
    for (int i = 0; i < K; i++) {
      int j = (int)((unsigned)(i * 7919) % K);
      if (v[j] != NULL) {
        CHECK(same(v[j], 256, (unsigned)j));
        free(v[j]);
        v[j] = NULL;
      }
    }
    for (int i = 0; i < K; i++) free(v[i]);
  }
  checkpoint("sizes");
}

/* ---- b. -------------------------------------------------------------------- */
static void test_alignment(void) {
  static const size_t sizes[] = {0, 1, 64, 512, 513, 4096, 4097, 40000, 131072, 131073, 300000};
  for (size_t a = 16; a <= 65536; a <<= 1) {
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
      size_t n = sizes[i];
      void *p = NULL;
      CHECKF(posix_memalign(&p, a, n) == 0 && p != NULL && aligned(p, a), "posix_memalign(%zu, %zu) = %p", a, n, p);
      if (p != NULL) {
        CHECK(malloc_usable_size(p) >= n);
        fill(p, n, 3);
        free(p);
      }
      p = aligned_alloc(a, n);
      CHECKF(p != NULL && aligned(p, a), "aligned_alloc(%zu, %zu) = %p", a, n, p);
      if (p != NULL) {
        fill(p, n, 4);
        p = realloc(p, n + 5000);            /* realloc of an aligned block keeps its bytes */
        REQUIRE(p != NULL);
        CHECK(same(p, n, 4));
        free(p);
      }
      p = memalign(a, n);
      CHECKF(p != NULL && aligned(p, a), "memalign(%zu, %zu) = %p", a, n, p);
      free(p);
    }
  }
  /* alignments up to the page size come from the medium classes, not from
   * a mapping per block, and are not padded by the alignment */
  for (size_t a = 1024; a <= 4096; a <<= 1) {
    void *p = aligned_alloc(a, a);
    REQUIRE(p != NULL);
    CHECKF(malloc_usable_size(p) == a, "aligned_alloc(%zu, %zu): usable %zu", a, a, malloc_usable_size(p));
    free(p);
  }
  void *p = valloc(5000);
  CHECK(p != NULL && aligned(p, 4096));
  free(p);
  p = pvalloc(5000);
  CHECK(p != NULL && aligned(p, 4096) && malloc_usable_size(p) >= 8192);
  free(p);
  checkpoint("alignment");
}

/* ---- c. -------------------------------------------------------------------- */
static void test_realloc(void) {
  for (size_t i = 0; i < NB; i++) {
    for (size_t j = 0; j < NB; j++) {
      size_t from = boundaries[i], to = boundaries[j];
      void *p = malloc(from);
      REQUIRE(p != NULL);
      fill(p, from, (unsigned)(i + j));
      void *q = realloc(p, to);
      REQUIRE(q != NULL);
      CHECKF(same(q, from < to ? from : to, (unsigned)(i + j)), "realloc %zu -> %zu lost bytes", from, to);
      CHECK(malloc_usable_size(q) >= to);
      fill(q, to, 9);
      free(q);
    }
  }
  /* a buffer grown in 64-byte steps to 1 MiB: moves only at class edges (and
   * for huge blocks, at slot edges at most) */
  char *buf = malloc(64);
  size_t moves = 0;
  fill(buf, 64, 1);
  for (size_t n = 128; n <= (1u << 20); n += 64) {
    char *q = realloc(buf, n);
    REQUIRE(q != NULL);
    moves += q != buf;
    buf = q;
    buf[n - 1] = 1;
  }
  CHECK(same(buf, 64, 1));
  CHECKF(moves < 80, "a buffer grown in 64-byte steps moved %zu times", moves);
  /* and shrunk again in steps: moves only when it saves a quarter */
  moves = 0;
  for (size_t n = (1u << 20); n >= 64; n -= 64) {
    char *q = realloc(buf, n);
    REQUIRE(q != NULL);
    moves += q != buf;
    buf = q;
  }
  CHECK(same(buf, 64, 1));
  CHECKF(moves < 80, "a buffer shrunk in 64-byte steps moved %zu times", moves);
  free(buf);
  /* a buffer grown in 16-byte steps through the pools and the first medium
   * classes: each move leaves room for the sizes that follow, never a
   * move back to a smaller block (1.5x room and a 3/4 shrink rule moved it
   * 28 times, some of them to smaller blocks) */
  buf = malloc(16);
  moves = 0;
  size_t shrinks = 0, usable = malloc_usable_size(buf);
  fill(buf, 16, 3);
  for (size_t n = 32; n <= 1024; n += 16) {
    char *q = realloc(buf, n);
    REQUIRE(q != NULL);
    if (q != buf) {
      moves++;
      shrinks += malloc_usable_size(q) < usable;
    }
    usable = malloc_usable_size(q);
    buf = q;
    buf[n - 1] = 1;
  }
  CHECK(same(buf, 16, 3));
  CHECKF(moves <= 7 && shrinks == 0, "a buffer grown in 16-byte steps to 1 KiB moved %zu times (%zu to smaller blocks)",
         moves, shrinks);
  /* shrinking by less than half stays; by more, moves */
  char *r = realloc(buf, 600);
  CHECK(r == buf);
  r = realloc(buf, 100);
  CHECK(r != buf && malloc_usable_size(r) < 600 && same(r, 16, 3));
  free(r);
  /* a huge block grown far: its pages move (mremap), its bytes stay */
  size_t n = 3u << 20;
  char *h = malloc(n);
  REQUIRE(h != NULL);
  fill(h, n, 5);
  char *block_after = malloc(n);   /* likely right below or above it */
  for (int k = 0; k < 4; k++) {
    char *q = realloc(h, n * 2);
    REQUIRE(q != NULL);
    CHECK(same(q, n, 5));
    h = q;
    n *= 2;
    fill(h, n, 5);
  }
  free(block_after);
  free(h);
  checkpoint("realloc");
}

/* ---- d. -------------------------------------------------------------------- */
enum { XN = 2000 };
static void *xblocks[XN];
static size_t xsizes[XN];

static void *producer(void *arg) {
  pmt_rng r = pmt_rng_seed((uintptr_t)arg);
  for (int i = 0; i < XN; i++) {
    xsizes[i] = (i % 50 == 0) ? pmt_range(&r, MEDIUM_MAX + 1, 2u << 20) : pmt_range(&r, 513, MEDIUM_MAX);
    xblocks[i] = malloc(xsizes[i]);
    if (xblocks[i] != NULL) fill(xblocks[i], 64, (unsigned)i);
  }
  return NULL;   /* exits with every block live */
}

static void *consumer(void *arg) {
  for (int i = (int)(uintptr_t)arg; i < XN; i += 2) {
    if (!same(xblocks[i], 64, (unsigned)i)) atomic_fetch_add(&pmt_failures, 1);
    free(xblocks[i]);
    xblocks[i] = NULL;
  }
  return NULL;
}

static void test_threads(void) {
  for (int round = 0; round < 3; round++) {
    pthread_t t, c0, c1;
    REQUIRE(pthread_create(&t, NULL, producer, (void *)(uintptr_t)(round + 1)) == 0);
    pthread_join(t, NULL);                    /* its heap is abandoned, blocks live */
    for (int i = 0; i < XN; i++) REQUIRE(xblocks[i] != NULL);
    if (round == 0) {
      consumer((void *)0);                    /* main frees half, */
      consumer((void *)1);                    /* then the rest */
    } else {
      REQUIRE(pthread_create(&c0, NULL, consumer, (void *)0) == 0);
      REQUIRE(pthread_create(&c1, NULL, consumer, (void *)1) == 0);
      pthread_join(c0, NULL);
      pthread_join(c1, NULL);
    }
    checkpoint("cross-thread frees");
  }
  /* live blocks handed between two live threads, both ways */
  pthread_t t;
  REQUIRE(pthread_create(&t, NULL, producer, (void *)9) == 0);
  pthread_join(t, NULL);
  REQUIRE(pthread_create(&t, NULL, consumer, (void *)0) == 0);
  consumer((void *)1);
  pthread_join(t, NULL);
  pm_collect(0);
  checkpoint("threads");
}

/* ---- e. -------------------------------------------------------------------- */
static atomic_int stop;

static void *churner(void *arg) {
  pmt_rng r = pmt_rng_seed((uintptr_t)arg);
  enum { K = 64 };
  void *v[K] = {0};
  while (!atomic_load(&stop)) {
    int i = (int)pmt_range(&r, 0, K - 1);
    free(v[i]);
    size_t n = pmt_range(&r, 0, 7) == 0 ? pmt_range(&r, MEDIUM_MAX + 1, 1u << 20) : pmt_range(&r, 513, MEDIUM_MAX);
    v[i] = malloc(n);
    if (v[i] != NULL) memset(v[i], 1, n < 4096 ? n : 4096);
  }
  for (int i = 0; i < K; i++) free(v[i]);
  return NULL;
}

static void test_fork(void) {
  pthread_t t[3];
  for (int i = 0; i < 3; i++) REQUIRE(pthread_create(&t[i], NULL, churner, (void *)(uintptr_t)(i + 40)) == 0);
  void *mine = malloc(50000), *big = malloc(3u << 20);
  for (int k = 0; k < 20; k++) {
    usleep(2000);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      alarm(20);
      free(mine);
      free(big);
      void *v[200];
      for (int i = 0; i < 200; i++) v[i] = malloc(513 + (size_t)i * 997);
      for (int i = 0; i < 200; i++) free(v[i]);
      void *h = malloc(5u << 20);
      if (h == NULL) _exit(3);
      memset(h, 2, 5u << 20);
      h = realloc(h, 9u << 20);
      free(h);
      _exit(pm_check() == 0 ? 0 : 2);
    }
    int st;
    REQUIRE(waitpid(pid, &st, 0) == pid);
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "fork %d: child status %#x", k, st);
  }
  atomic_store(&stop, 1);
  for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
  free(mine);
  free(big);
  pm_collect(0);
  checkpoint("fork");
}

int main(void) {
  alarm(240);
  test_sizes();
  test_alignment();
  test_realloc();
  test_threads();
  test_fork();
  return pmt_done("unit.test_above_pools");
}
