/* test_api.c: every entry point of the allocation API and its error cases,
 * held to glibc's semantics.  The whole suite runs twice: once through the
 * C library's names (malloc, free, ...: poolmalloc's, since the test links
 * libpoolmalloc.so) and once through the pm_ names.  Single-threaded.
 *
 * Checks marked "poolmalloc" hold of poolmalloc's design (16-byte classes up
 * to 512 bytes, pm_owns) but not of glibc; a development build against glibc
 * defines PMT_GLIBC and leaves them out. */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pmtest.h"
#include "poolmalloc.h"

#pragma GCC diagnostic ignored "-Wdeprecated-declarations"   /* mallinfo, pvalloc, valloc */

#ifndef PMT_GLIBC
#define PMT_GLIBC 0
#endif

/* glibc 2.36's headers do not declare these (cfree is gone from the API,
 * free_sized and free_aligned_sized come with C23). */
extern void cfree(void *p);
extern void free_sized(void *p, size_t size);
extern void free_aligned_sized(void *p, size_t alignment, size_t size);
extern void *__libc_malloc(size_t size);
extern void __libc_free(void *p);

/* ---- the two faces of the API ------------------------------------------- */
typedef struct api {
  const char *name;
  void *(*malloc)(size_t);
  void *(*calloc)(size_t, size_t);
  void *(*realloc)(void *, size_t);
  void *(*reallocarray)(void *, size_t, size_t);
  void (*free)(void *);
  void (*free_sized)(void *, size_t);
  void (*free_aligned_sized)(void *, size_t, size_t);
  int (*posix_memalign)(void **, size_t, size_t);
  void *(*aligned_alloc)(size_t, size_t);
  void *(*memalign)(size_t, size_t);
  void *(*valloc)(size_t);
  void *(*pvalloc)(size_t);
  size_t (*usable)(void *);
} api;

static const api libc_api = {
  "libc", malloc, calloc, realloc, reallocarray, free, free_sized, free_aligned_sized,
  posix_memalign, aligned_alloc, memalign, valloc, pvalloc, malloc_usable_size,
};
static const api pm_api = {
  "pm_", pm_malloc, pm_calloc, pm_realloc, pm_reallocarray, pm_free, pm_free_sized,
  pm_free_aligned_sized, pm_posix_memalign, pm_aligned_alloc, pm_memalign, pm_valloc,
  pm_pvalloc, pm_malloc_usable_size,
};

/* Global and written at run time, so the compiler cannot see through it. */
const api *A;

/* Sizes that a compiler would refuse to see as constants (-Walloc-size-larger-than). */
volatile size_t huge_ptrdiff = (size_t)PTRDIFF_MAX + 1;
volatile size_t huge_max = SIZE_MAX;
volatile size_t huge_max16 = SIZE_MAX - 16;

static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }
/* The medium class of n (513 .. 128 KiB), 2^b < n <= 2^(b + 1): the
 * smallest multiple of 2^(b - 5) that holds n up to 1.25 * 2^b, above it
 * the smallest multiple of 2^(b - 3). */
static size_t medium_class_size(size_t n) {
  size_t pow = 512;
  while (2 * pow < n) pow *= 2;
  size_t step = n <= pow + pow / 4 ? pow / 32 : pow / 8;
  return (n + step - 1) / step * step;
}
static bool aligned(const void *p, size_t a) { return ((uintptr_t)p & (a - 1)) == 0; }

static void checkpoint(const char *where) {
  int bad = pm_check();
  CHECKF(bad == 0, "pm_check() = %d at %s (%s)", bad, where, A->name);
}

/* Sizes at and around every class edge, the small/large boundary, and a few
 * large ones (mmapped by glibc above 128 KiB). */
static const size_t edge_sizes[] = {
  1, 2, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 47, 48, 49, 63, 64, 65, 100, 127, 128, 129,
  255, 256, 257, 300, 383, 384, 385, 496, 497, 500, 511, 512, 513, 514, 520, 528, 600,
  1000, 1023, 1024, 1025, 2048, 4095, 4096, 4097, 5000, 16384, 65536, 131072, 200000,
  1 << 20, 3 << 20,
};
#define NEDGE (sizeof edge_sizes / sizeof edge_sizes[0])

/* ---- malloc, usable size, classes --------------------------------------- */

static void test_malloc_zero(void) {
  enum { N = 64 };
  void *p[N];
  for (int i = 0; i < N; i++) {
    p[i] = A->malloc(0);
    CHECKF(p[i] != NULL, "malloc(0) #%d", i);
    CHECK(aligned(p[i], 16));
    for (int j = 0; j < i; j++) CHECKF(p[i] != p[j], "malloc(0) #%d == #%d", i, j);
  }
  for (int i = 0; i < N; i++) A->free(p[i]);
}

static void test_usable_and_neighbours(void) {
  /* K blocks of one size, each filled over its whole usable size with its
   * own pattern: a usable size that reaches into a neighbour shows up as a
   * wrong byte in the neighbour. */
  enum { K = 8 };
  for (size_t n = 0; n <= 1100; n++) {
    void *p[K];
    size_t u[K];
    for (int i = 0; i < K; i++) {
      p[i] = A->malloc(n);
      REQUIRE(p[i] != NULL);
      CHECKF(aligned(p[i], 16), "malloc(%zu) = %p", n, p[i]);
      u[i] = A->usable(p[i]);
      CHECKF(u[i] >= n, "usable(malloc(%zu)) = %zu", n, u[i]);
      pmt_fill(p[i], u[i], pmt_tag(p[i], n, 1));
    }
    for (int i = 0; i < K; i++)
      CHECKF(pmt_verify(p[i], u[i], pmt_tag(p[i], n, 1)) == (size_t)-1,
             "block %d of size %zu overwritten by a neighbour", i, n);
    for (int i = 0; i < K; i++) A->free(p[i]);
  }
  for (size_t e = 0; e < NEDGE; e++) {
    size_t n = edge_sizes[e];
    void *p[3];
    size_t u[3];
    for (int i = 0; i < 3; i++) {
      p[i] = A->malloc(n);
      REQUIRE(p[i] != NULL);
      CHECK(aligned(p[i], 16));
      u[i] = A->usable(p[i]);
      CHECKF(u[i] >= n, "usable(malloc(%zu)) = %zu", n, u[i]);
      pmt_fill(p[i], u[i], pmt_tag(p[i], n, 2));
    }
    for (int i = 0; i < 3; i++)
      CHECKF(pmt_verify(p[i], u[i], pmt_tag(p[i], n, 2)) == (size_t)-1, "size %zu block %d", n, i);
    for (int i = 0; i < 3; i++) A->free(p[i]);
  }
  CHECK(A->usable(NULL) == 0);
}

/* A medium block's usable size: its class's, or that of a class which lent
 * it its region (src/core/medium.c, "lending": a class with no region of
 * its own borrows the head of one of the next six classes, a quarter
 * larger at most, whose blocks are at least as aligned). */
static size_t pow2_part(size_t s) { size_t a = s & -s; return a > 4096 ? 4096 : a; }
static bool medium_usable_ok(size_t want, size_t got) {
  if (got == want) return true;
  return got > want && got * 4 <= want * 5 && medium_class_size(got) == got && pow2_part(got) >= pow2_part(want);
}

static void test_classes(void) {
  for (size_t n = 1; n <= 512; n++) {
    void *p = A->malloc(n);
    REQUIRE(p != NULL);
    if (!PMT_GLIBC) {
      CHECKF(A->usable(p) == round16(n), "poolmalloc: usable(malloc(%zu)) = %zu, want %zu", n,
             A->usable(p), round16(n));
    }
    CHECKF(pm_owns(p), "pm_owns(malloc(%zu))", n);
    A->free(p);
  }
  /* The medium classes (types.h draws them), exact but for a loan. */
  for (size_t n = 513; n <= 131072 + 1; n += (n < 1100 ? 1 : n < 9000 ? 97 : 1021)) {
    size_t want = medium_class_size(n);
    void *p = A->malloc(n);
    REQUIRE(p != NULL);
    if (!PMT_GLIBC) {
      CHECKF(pm_owns(p), "pm_owns(malloc(%zu))", n);
      if (n <= 131072)
        CHECKF(medium_usable_ok(want, A->usable(p)), "poolmalloc: usable(malloc(%zu)) = %zu, want %zu", n, A->usable(p), want);
      else
        CHECKF(A->usable(p) >= n, "usable(malloc(%zu)) = %zu", n, A->usable(p));
    }
    memset(p, 0x5A, A->usable(p));   /* every usable byte is writable */
    A->free(p);
  }
  static const size_t edges[] = {512, 513, 640, 641, 1024, 1025, 1032, 1152, 1153, 4104, 4368, 4609,
                                 122880, 122881, 131071, 131072, 131073, 4 << 20, (4 << 20) + 1};
  for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) {
    void *p = A->malloc(edges[i]);
    REQUIRE(p != NULL);
    CHECK(aligned(p, 16));
    memset(p, 0x3C, edges[i]);
    if (!PMT_GLIBC && edges[i] > 512 && edges[i] <= 131072)
      CHECKF(medium_usable_ok(medium_class_size(edges[i]), A->usable(p)), "usable(malloc(%zu)) = %zu", edges[i], A->usable(p));
    A->free(p);
  }
  void *big = A->malloc(10 << 20);
  REQUIRE(big != NULL);
  if (!PMT_GLIBC) CHECK(pm_owns(big));
  memset(big, 1, 10 << 20);
  A->free(big);
  CHECK(!pm_owns(NULL));
  if (!PMT_GLIBC) {   /* memory that no allocator handed out */
    int local = 0;
    static char data[64];
    CHECK(!pm_owns(&local));
    CHECK(!pm_owns(data + 16));
  }
}

/* ---- calloc ----------------------------------------------------------- */

static bool all_zero(const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++)
    if (b[i] != 0) return false;
  return true;
}

static void test_calloc(void) {
  /* Dirty every class first, free, then calloc the same sizes: recycled
   * blocks must come back cleared. */
  enum { K = 16 };
  for (size_t n = 1; n <= 1100; n += (n < 600 ? 1 : 37)) {
    void *d[K];
    for (int i = 0; i < K; i++) {
      d[i] = A->malloc(n);
      REQUIRE(d[i] != NULL);
      memset(d[i], 0xA5, A->usable(d[i]));
    }
    for (int i = K - 1; i >= 0; i--) A->free(d[i]);
    for (int i = 0; i < K; i++) {
      d[i] = (i & 1) ? A->calloc(n, 1) : A->calloc(1, n);
      REQUIRE(d[i] != NULL);
      CHECK(aligned(d[i], 16));
      CHECKF(all_zero(d[i], n), "calloc(%zu) not zeroed (after dirtying)", n);
    }
    for (int i = 0; i < K; i++) A->free(d[i]);
  }
  /* n * size products across the boundary */
  static const size_t shapes[][2] = {{0, 0}, {0, 7}, {7, 0}, {3, 171}, {171, 3}, {16, 32}, {513, 1},
                                      {1, 513}, {100, 100}, {4096, 64}, {1000, 1000}};
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
    size_t n = shapes[i][0], s = shapes[i][1];
    void *p = A->malloc(n * s + 1);
    REQUIRE(p != NULL);
    memset(p, 0xFF, n * s + 1);
    A->free(p);
    p = A->calloc(n, s);
    CHECKF(p != NULL, "calloc(%zu, %zu)", n, s);
    if (p != NULL) {
      CHECK(A->usable(p) >= n * s);
      CHECKF(all_zero(p, n * s), "calloc(%zu, %zu) not zeroed", n, s);
      A->free(p);
    }
  }
  /* overflow of n * size, and products above PTRDIFF_MAX */
  static const size_t bad[][2] = {
    {SIZE_MAX, 2}, {2, SIZE_MAX}, {(size_t)1 << 33, (size_t)1 << 33}, {SIZE_MAX / 3 + 1, 3},
    {SIZE_MAX, SIZE_MAX}, {(size_t)PTRDIFF_MAX + 1, 1}, {1, (size_t)PTRDIFF_MAX + 1},
    {((size_t)PTRDIFF_MAX + 1) / 2, 2}, {SIZE_MAX, 1},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    volatile size_t n = bad[i][0], s = bad[i][1];
    errno = 0;
    void *p = A->calloc(n, s);
    CHECKF(p == NULL, "calloc(%zu, %zu) = %p", (size_t)n, (size_t)s, p);
    CHECKF(errno == ENOMEM, "calloc(%zu, %zu): errno %d", (size_t)n, (size_t)s, errno);
    if (p != NULL) A->free(p);
  }
}

/* ---- requests above PTRDIFF_MAX ------------------------------------------ */

static void test_huge(void) {
  const size_t sizes[] = {huge_ptrdiff, huge_max, huge_max16, huge_ptrdiff + 4096};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t n = sizes[i];
    void *p;
    errno = 0;
    p = A->malloc(n);
    CHECKF(p == NULL && errno == ENOMEM, "malloc(%#zx) = %p errno %d", n, p, errno);
    errno = 0;
    p = A->calloc(1, n);
    CHECKF(p == NULL && errno == ENOMEM, "calloc(1, %#zx) = %p errno %d", n, p, errno);
    errno = 0;
    p = A->realloc(NULL, n);
    CHECKF(p == NULL && errno == ENOMEM, "realloc(NULL, %#zx) = %p errno %d", n, p, errno);
    errno = 0;
    p = A->aligned_alloc(64, n);
    CHECKF(p == NULL && errno == ENOMEM, "aligned_alloc(64, %#zx) = %p errno %d", n, p, errno);
    errno = 0;
    p = A->aligned_alloc(16, n);
    CHECKF(p == NULL && errno == ENOMEM, "aligned_alloc(16, %#zx) = %p errno %d", n, p, errno);
    errno = 0;
    p = A->memalign(4096, n);
    CHECKF(p == NULL && errno == ENOMEM, "memalign(4096, %#zx) = %p errno %d", n, p, errno);
    errno = 0;
    p = A->valloc(n);
    CHECKF(p == NULL && errno == ENOMEM, "valloc(%#zx) = %p errno %d", n, p, errno);
    errno = 0;
    p = A->pvalloc(n);
    CHECKF(p == NULL && errno == ENOMEM, "pvalloc(%#zx) = %p errno %d", n, p, errno);
    static const size_t aligns[] = {8, 16, 64, 4096};
    for (size_t a = 0; a < 4; a++) {
      void *out = (void *)0x1234;
      errno = 0;
      int r = A->posix_memalign(&out, aligns[a], n);
      CHECKF(r == ENOMEM, "posix_memalign(%zu, %#zx) = %d", aligns[a], n, r);
      CHECK(out == (void *)0x1234);
      /* glibc 2.36 also leaves errno ENOMEM (its allocation failed) */
      CHECKF(errno == ENOMEM, "posix_memalign(%zu, %#zx): errno %d, want ENOMEM", aligns[a], n, errno);
    }
    /* realloc of a live block, small and large: NULL, ENOMEM, block intact */
    static const size_t olds[] = {40, 512, 513, 300000};
    for (size_t k = 0; k < 4; k++) {
      void *q = A->malloc(olds[k]);
      REQUIRE(q != NULL);
      pmt_fill(q, olds[k], 77 + k);
      errno = 0;
      p = A->realloc(q, n);
      CHECKF(p == NULL && errno == ENOMEM, "realloc(%zu-byte block, %#zx) = %p errno %d", olds[k],
             n, p, errno);
      CHECKF(pmt_verify(q, olds[k], 77 + k) == (size_t)-1, "failed realloc touched the block");
      q = A->realloc(q, olds[k] + 100);            /* still a live block */
      REQUIRE(q != NULL);
      CHECK(pmt_verify(q, olds[k], 77 + k) == (size_t)-1);
      A->free(q);
    }
  }
}

static void test_reallocarray(void) {
  static const size_t olds[] = {1, 64, 512, 513, 4096, 300000};
  for (size_t k = 0; k < sizeof olds / sizeof olds[0]; k++) {
    size_t n0 = olds[k];
    void *p = A->malloc(n0);
    REQUIRE(p != NULL);
    pmt_fill(p, n0, 5 + k);
    static const size_t bad[][2] = {{SIZE_MAX, 2}, {(size_t)1 << 32, (size_t)1 << 32},
                                    {SIZE_MAX / 16 + 1, 16}, {3, SIZE_MAX / 2}};
    for (size_t i = 0; i < 4; i++) {
      volatile size_t n = bad[i][0], s = bad[i][1];
      errno = 0;
      void *q = A->reallocarray(p, n, s);
      CHECKF(q == NULL && errno == ENOMEM, "reallocarray(%zu-byte block, %zu, %zu) = %p errno %d",
             n0, (size_t)n, (size_t)s, q, errno);
      CHECKF(pmt_verify(p, n0, 5 + k) == (size_t)-1, "failed reallocarray touched the block");
    }
    /* above PTRDIFF_MAX without overflow */
    volatile size_t n = huge_ptrdiff, one = 1;
    errno = 0;
    void *q = A->reallocarray(p, n, one);
    CHECK(q == NULL && errno == ENOMEM);
    CHECK(pmt_verify(p, n0, 5 + k) == (size_t)-1);
    /* good ones */
    q = A->reallocarray(p, 3, n0);
    REQUIRE(q != NULL);
    CHECK(A->usable(q) >= 3 * n0);
    CHECK(pmt_verify(q, n0, 5 + k) == (size_t)-1);
    p = A->reallocarray(q, n0, 1);
    REQUIRE(p != NULL);
    CHECK(pmt_verify(p, n0, 5 + k) == (size_t)-1);
    A->free(p);
  }
  void *p = A->reallocarray(NULL, 10, 10);
  CHECK(p != NULL && A->usable(p) >= 100);
  A->free(p);
}

/* ---- realloc ------------------------------------------------------------ */

static void test_realloc(void) {
  /* realloc(NULL, n) is malloc(n) */
  for (size_t e = 0; e < NEDGE; e++) {
    void *p = A->realloc(NULL, edge_sizes[e]);
    CHECKF(p != NULL && aligned(p, 16), "realloc(NULL, %zu) = %p", edge_sizes[e], p);
    if (p == NULL) continue;
    CHECK(A->usable(p) >= edge_sizes[e]);
    memset(p, 1, edge_sizes[e]);
    A->free(p);
  }
  void *z = A->realloc(NULL, 0);
  CHECK(z != NULL);
  A->free(z);

  /* realloc(p, 0) frees p and returns NULL (glibc); small and large. */
  for (size_t e = 0; e < NEDGE; e++) {
    void *p = A->malloc(edge_sizes[e]);
    REQUIRE(p != NULL);
    void *q = A->realloc(p, 0);
    CHECKF(q == NULL, "realloc(%zu-byte block, 0) = %p", edge_sizes[e], q);
    if (q != NULL) A->free(q);
  }
  checkpoint("realloc(p, 0)");

  /* every pair of edge sizes, both directions: contents preserved */
  for (size_t a = 0; a < NEDGE; a++) {
    for (size_t b = 0; b < NEDGE; b++) {
      size_t na = edge_sizes[a], nb = edge_sizes[b];
      void *p = A->malloc(na);
      REQUIRE(p != NULL);
      uint64_t tag = pmt_tag(p, na, 3);
      pmt_fill(p, na, tag);
      void *q = A->realloc(p, nb);
      CHECKF(q != NULL, "realloc(%zu -> %zu)", na, nb);
      if (q == NULL) {
        A->free(p);
        continue;
      }
      CHECK(aligned(q, 16));
      CHECKF(A->usable(q) >= nb, "realloc(%zu -> %zu): usable %zu", na, nb, A->usable(q));
      size_t keep = na < nb ? na : nb;
      CHECKF(pmt_verify(q, keep, tag) == (size_t)-1, "realloc(%zu -> %zu) lost content at %zu", na,
             nb, pmt_verify(q, keep, tag));
      memset(q, 0x5A, nb);                         /* the whole new size is writable */
      A->free(q);
    }
  }
  checkpoint("realloc pairs");

  /* a chain through every class up and down, across 512 both ways */
  void *p = A->malloc(1);
  REQUIRE(p != NULL);
  ((unsigned char *)p)[0] = pmt_pattern_byte(9, 0);
  size_t have = 1;
  for (size_t n = 2; n <= 1200; n += 3) {
    void *q = A->realloc(p, n);
    REQUIRE(q != NULL);
    CHECKF(pmt_verify(q, have, 9) == (size_t)-1, "growing chain lost content at %zu", n);
    p = q;
    pmt_fill(p, n, 9);
    have = n;
  }
  for (size_t n = have; n >= 1; n -= (n > 3 ? 3 : 1)) {
    void *q = A->realloc(p, n);
    REQUIRE(q != NULL);
    CHECKF(pmt_verify(q, n, 9) == (size_t)-1, "shrinking chain lost content at %zu", n);
    p = q;
    if (n == 1) break;
  }
  A->free(p);

  /* Within the same size class: the same pointer.  realloc to the usable
   * size holds for glibc too; for poolmalloc every size of the class. */
  for (size_t n = 1; n <= 512; n++) {
    void *b = A->malloc(n);
    REQUIRE(b != NULL);
    pmt_fill(b, n, 11);
    size_t u = A->usable(b);
    void *q = A->realloc(b, u);
    CHECKF(q == b, "realloc(malloc(%zu), usable %zu) moved %p -> %p", n, u, b, q);
    b = q;
    if (!PMT_GLIBC) {
      size_t lo = round16(n) - 15, hi = round16(n);
      for (size_t m = lo; m <= hi; m += 5) {
        q = A->realloc(b, m);
        CHECKF(q == b, "poolmalloc: realloc(malloc(%zu), %zu) moved %p -> %p", n, m, b, q);
        b = q;
      }
    }
    CHECK(pmt_verify(b, n < round16(n) - 15 ? n : round16(n) - 15, 11) == (size_t)-1);
    A->free(b);
  }
  checkpoint("realloc");
}

/* ---- aligned allocation --------------------------------------------------- */

static void test_posix_memalign(void) {
  static const size_t bad[] = {0, 1, 2, 3, 4, 5, 6, 7, 12, 24, 48, 100, 4095, sizeof(void *) / 2,
                               sizeof(void *) + 1, (size_t)1 << 63 | 8, SIZE_MAX};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    void *out = (void *)0x4321;
    int saved_errno = errno = 4242;
    int r = A->posix_memalign(&out, bad[i], 100);
    CHECKF(r == EINVAL, "posix_memalign(alignment %zu) = %d", bad[i], r);
    CHECKF(out == (void *)0x4321, "posix_memalign(alignment %zu) wrote *out", bad[i]);
    CHECK(errno == saved_errno);                   /* it returns the error */
    if (r == 0) A->free(out);
  }
  static const size_t sizes[] = {0, 1, 100, 512, 513, 5000};
  for (size_t a = 8; a <= ((size_t)1 << 20); a <<= 1) {
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
      void *out = NULL;
      int r = A->posix_memalign(&out, a, sizes[i]);
      CHECKF(r == 0 && out != NULL, "posix_memalign(%zu, %zu) = %d", a, sizes[i], r);
      if (out == NULL) continue;
      CHECKF(aligned(out, a), "posix_memalign(%zu, %zu) = %p", a, sizes[i], out);
      CHECK(aligned(out, 16));
      CHECK(A->usable(out) >= sizes[i]);
      memset(out, 0xC3, sizes[i]);
      if (!PMT_GLIBC && a <= 512 && sizes[i] <= 512 && sizes[i] > 0 && round16(sizes[i]) % a == 0)
        CHECKF(pm_owns(out), "poolmalloc: posix_memalign(%zu, %zu) not from a pool", a, sizes[i]);
      if (i & 1) A->free(out);
      else A->free_aligned_sized(out, a, sizes[i]);
    }
  }
}

static void test_aligned_alloc_memalign(void) {
  static const size_t sizes[] = {0, 1, 16, 100, 512, 513, 5000, 200000};
  for (size_t a = 1; a <= ((size_t)1 << 20); a <<= 1) {
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
      size_t n = sizes[i];
      void *p = A->aligned_alloc(a, n);
      CHECKF(p != NULL && aligned(p, a) && aligned(p, 16), "aligned_alloc(%zu, %zu) = %p", a, n, p);
      if (p != NULL) {
        CHECK(A->usable(p) >= n);
        memset(p, 0x11, n);
        A->free(p);
      }
      p = A->memalign(a, n);
      CHECKF(p != NULL && aligned(p, a) && aligned(p, 16), "memalign(%zu, %zu) = %p", a, n, p);
      if (p != NULL) {
        CHECK(A->usable(p) >= n);
        memset(p, 0x22, n);
        A->free(p);
      }
    }
  }
  /* several aligned blocks live at once, each written over its whole usable
   * size: none reaches into another */
  for (size_t a = 32; a <= 4096; a <<= 1) {
    for (size_t i = 1; i < 6; i++) {
      enum { K = 6 };
      void *p[K];
      size_t u[K];
      for (int k = 0; k < K; k++) {
        p[k] = A->aligned_alloc(a, sizes[i]);
        REQUIRE(p[k] != NULL);
        u[k] = A->usable(p[k]);
        pmt_fill(p[k], u[k], pmt_tag(p[k], a, 41));
      }
      for (int k = 0; k < K; k++)
        CHECKF(pmt_verify(p[k], u[k], pmt_tag(p[k], a, 41)) == (size_t)-1,
               "aligned_alloc(%zu, %zu) block %d overwritten by a neighbour", a, sizes[i], k);
      for (int k = 0; k < K; k++) A->free(p[k]);
    }
  }
  /* memalign rounds a non-power-of-two alignment up to the next power of two */
  static const size_t odd[][2] = {{0, 16}, {3, 16}, {24, 32}, {48, 64}, {100, 128}, {129, 256},
                                  {600, 1024}, {1000, 1024}, {3000, 4096}, {5000, 8192},
                                  {100000, 131072}};
  for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
    for (size_t j = 0; j < 4; j++) {
      size_t n = sizes[j + 2];
      void *p = A->memalign(odd[i][0], n);
      CHECKF(p != NULL && aligned(p, odd[i][1]), "memalign(%zu, %zu) = %p, want %zu-aligned",
             odd[i][0], n, p, odd[i][1]);
      if (p != NULL) {
        CHECK(A->usable(p) >= n);
        memset(p, 0x33, n);
        A->free(p);
      }
    }
  }
  /* alignment above SIZE_MAX / 2 + 1: EINVAL (glibc) */
  volatile size_t big = SIZE_MAX / 2 + 2;
  errno = 0;
  void *p = A->memalign(big, 16);
  CHECKF(p == NULL && errno == EINVAL, "memalign(%#zx, 16) = %p errno %d", (size_t)big, p, errno);
  /* Any other alignment too large to be served: ENOMEM, as glibc 2.36 gives
   * (it rounds a non-power-of-two up first; the alignment is then valid and
   * the memory is what is missing).  Both names behave alike. */
  static const struct { size_t alignment, size; int err; } huge[] = {
      {(size_t)1 << 63, 1, ENOMEM},         {(size_t)1 << 63, 0, ENOMEM},
      {((size_t)1 << 62) + 1, 1, ENOMEM},   {(size_t)1 << 62, 1, ENOMEM},
      {(size_t)1 << 47, 1, ENOMEM},         {(size_t)1 << 40, (size_t)1 << 40, ENOMEM},
      {64, SIZE_MAX, ENOMEM},               {0, SIZE_MAX, ENOMEM},
      {((size_t)1 << 63) + 1, 1, EINVAL},   {SIZE_MAX, 1, EINVAL},
  };
  for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
    size_t a = huge[i].alignment, n = huge[i].size;
    errno = 0;
    p = A->memalign(a, n);
    CHECKF(p == NULL && errno == huge[i].err, "memalign(%#zx, %#zx) = %p errno %d, want %d", a, n, p, errno,
           huge[i].err);
    errno = 0;
    p = A->aligned_alloc(a, n);
    CHECKF(p == NULL && errno == huge[i].err, "aligned_alloc(%#zx, %#zx) = %p errno %d, want %d", a, n, p,
           errno, huge[i].err);
  }
}

static void test_valloc_pvalloc(void) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  static const size_t sizes[] = {0, 1, 16, 100, 512, 513, 4095, 4096, 4097, 10000, 300000};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t n = sizes[i];
    void *p = A->valloc(n);
    CHECKF(p != NULL && aligned(p, page), "valloc(%zu) = %p", n, p);
    if (p != NULL) {
      CHECK(A->usable(p) >= n);
      memset(p, 0x44, n);
      A->free(p);
    }
    p = A->pvalloc(n);
    CHECKF(p != NULL && aligned(p, page), "pvalloc(%zu) = %p", n, p);
    if (p != NULL) {
      size_t u = A->usable(p);
      size_t want = (n + page - 1) / page * page;  /* glibc: pvalloc(0) is a minimum block */
      /* At least the size rounded up to whole pages, all of it writable (as
       * glibc, whose usable size may exceed it). */
      CHECKF(u >= want, "pvalloc(%zu): usable %zu < %zu", n, u, want);
      memset(p, 0x55, u);
      A->free(p);
    }
  }
}

/* ---- free and its variants ------------------------------------------------ */

static void test_free(void) {
  A->free(NULL);
  free_sized(NULL, 0);
  free_aligned_sized(NULL, 64, 0);
  cfree(NULL);

  /* errno survives free: small (fast path, pool-emptying slow path), large,
   * mmapped, NULL. */
  enum { N = 2000 };
  static void *blocks[N];
  static const size_t sizes[] = {1, 16, 48, 200, 512, 513, 4096, 100000, 4 << 20};
  for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
    size_t n = sizes[s], cnt = n <= 512 ? N : 50;
    for (size_t i = 0; i < cnt; i++) {
      blocks[i] = A->malloc(n);
      REQUIRE(blocks[i] != NULL);
    }
    for (size_t i = 0; i < cnt; i++) {
      size_t k = (i * 7919) % cnt;                 /* a scattered order */
      errno = EBADF;
      A->free(blocks[k]);
      CHECKF(errno == EBADF, "free of a %zu-byte block changed errno to %d", n, errno);
      blocks[k] = NULL;
    }
    for (size_t i = 0; i < cnt; i++) CHECK(blocks[i] == NULL);
  }
  errno = EBADF;
  A->free(NULL);
  CHECK(errno == EBADF);
  void *q = A->malloc(300);
  errno = ENOSPC;
  free_sized(q, 300);
  CHECK(errno == ENOSPC);

  /* cfree, free_sized, free_aligned_sized free for real: the memory comes
   * back (checked through pm_check and by reuse not crashing). */
  for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
    size_t n = sizes[s];
    void *p = A->malloc(n);
    REQUIRE(p != NULL);
    memset(p, 1, n);
    A->free_sized(p, n);
    p = A->malloc(n);
    REQUIRE(p != NULL);
    cfree(p);
    p = A->aligned_alloc(64, n);
    REQUIRE(p != NULL);
    A->free_aligned_sized(p, 64, n);
    p = A->aligned_alloc(4096, n);
    REQUIRE(p != NULL);
    free_aligned_sized(p, 4096, n);
  }
  checkpoint("free");
}

/* ---- glibc's extensions -------------------------------------------------- */

static void test_extensions(void) {
  int r = malloc_trim(0);
  CHECKF(r == 0 || r == 1, "malloc_trim(0) = %d", r);
  r = malloc_trim(1 << 20);
  CHECKF(r == 0 || r == 1, "malloc_trim(1 MiB) = %d", r);
  r = pm_collect(0);
  CHECKF(r == 0 || r == 1, "pm_collect(0) = %d", r);
  r = pm_collect(1);
  CHECKF(r == 0 || r == 1, "pm_collect(1) = %d", r);

  struct mallinfo mi = mallinfo();
  (void)mi;
  struct mallinfo2 before = mallinfo2();
  enum { BLOCK = 256, COUNT = (10 << 20) / BLOCK };
  void **v = A->malloc(COUNT * sizeof(void *));
  REQUIRE(v != NULL);
  for (size_t i = 0; i < COUNT; i++) {
    v[i] = A->malloc(BLOCK);
    REQUIRE(v[i] != NULL);
    ((char *)v[i])[0] = 1;
  }
  struct mallinfo2 after = mallinfo2();
  CHECKF(after.uordblks >= before.uordblks + (size_t)COUNT * BLOCK * 9 / 10,
         "mallinfo2().uordblks %zu -> %zu after 10 MB of small blocks", before.uordblks,
         after.uordblks);
  CHECK(after.arena + after.hblkhd >= (size_t)COUNT * BLOCK);
  checkpoint("10 MB of small blocks");
  for (size_t i = 0; i < COUNT; i++) A->free(v[i]);
  A->free(v);
  struct mallinfo2 freed = mallinfo2();
  CHECKF(freed.uordblks < after.uordblks - (size_t)COUNT * BLOCK * 9 / 10,
         "mallinfo2().uordblks %zu -> %zu after freeing them", after.uordblks, freed.uordblks);
  mi = mallinfo();
  CHECK(mi.uordblks >= 0);

  fprintf(stderr, "---- malloc_stats() (expected output) ----\n");
  malloc_stats();
  fprintf(stderr, "---- end of malloc_stats() ----\n");

  CHECK(mallopt(M_ARENA_MAX, 8) == 1);
  CHECK(mallopt(M_ARENA_TEST, 8) == 1);
  CHECK(mallopt(M_TRIM_THRESHOLD, 128 * 1024) == 1);
  CHECK(mallopt(M_TOP_PAD, 128 * 1024) == 1);
  CHECK(mallopt(M_MMAP_THRESHOLD, 128 * 1024) == 1);
  CHECK(mallopt(M_PERTURB, 0) == 1);
}

/* ---- blocks the C library handed out itself -------------------------------- */

static void *libc_blocks_thread(void *arg) {
  void *(*out)[6] = arg;
  static const size_t sizes[6] = {24, 100, 600, 5000, 60000, 300000};
  for (int k = 0; k < 6; k++) {
    out[0][k] = __libc_malloc(sizes[k]);
    out[1][k] = __libc_malloc(sizes[k]);
    if (out[1][k] != NULL) pmt_fill(out[1][k], 16, 31);
  }
  return NULL;
}

static void test_foreign(void) {
  static const size_t sizes[] = {1, 24, 100, 512, 513, 5000, 300000};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t n = sizes[i];
    void *p = __libc_malloc(n);
    REQUIRE(p != NULL);
    if (!PMT_GLIBC) CHECKF(!pm_owns(p), "pm_owns(__libc_malloc(%zu))", n);
    CHECKF(A->usable(p) >= n, "usable(__libc_malloc(%zu)) = %zu", n, A->usable(p));
    pmt_fill(p, n, 21);
    errno = EBADF;
    A->free(p);
    CHECK(errno == EBADF);

    /* realloc of a foreign block, up, down, into the pools and out */
    static const size_t to[] = {1, 16, 200, 512, 513, 4096, 70000, 400000};
    for (size_t j = 0; j < sizeof to / sizeof to[0]; j++) {
      p = __libc_malloc(n);
      REQUIRE(p != NULL);
      pmt_fill(p, n, 22 + j);
      void *q = A->realloc(p, to[j]);
      CHECKF(q != NULL, "realloc(__libc_malloc(%zu), %zu)", n, to[j]);
      if (q == NULL) {
        __libc_free(p);
        continue;
      }
      size_t keep = n < to[j] ? n : to[j];
      CHECKF(pmt_verify(q, keep, 22 + j) == (size_t)-1, "realloc(__libc_malloc(%zu), %zu) lost data",
             n, to[j]);
      memset(q, 0x66, to[j]);
      A->free(q);
    }
  }
  /* Blocks of glibc's thread arenas (allocated by another thread), freed
   * and reallocated here: they are where glibc allocates too. */
  static void *theirs[2][6];
  pthread_t t;
  REQUIRE(pthread_create(&t, NULL, libc_blocks_thread, theirs) == 0);
  pthread_join(t, NULL);
  for (int k = 0; k < 6; k++) {
    REQUIRE(theirs[0][k] != NULL && theirs[1][k] != NULL);
    A->free(theirs[0][k]);
    void *q = A->realloc(theirs[1][k], 700);
    CHECKF(q != NULL && pmt_verify(q, 16, 31) == (size_t)-1, "realloc of a thread arena's block %d", k);
    A->free(q);
  }
  /* A glibc block freed through the other names */
  void *p = __libc_malloc(64);
  REQUIRE(p != NULL);
  free_sized(p, 64);
  p = __libc_malloc(64);
  REQUIRE(p != NULL);
  cfree(p);
  checkpoint("foreign blocks");
}

/* ---- aligned blocks go through realloc and free like any other ------------ */

static void test_aligned_realloc(void) {
  static const size_t aligns[] = {32, 64, 256, 4096};
  static const size_t to[] = {1, 50, 200, 512, 513, 3000, 100000};
  for (size_t a = 0; a < 4; a++) {
    for (size_t t = 0; t < sizeof to / sizeof to[0]; t++) {
      void *p = A->memalign(aligns[a], 100);
      REQUIRE(p != NULL);
      pmt_fill(p, 100, 31);
      void *q = A->realloc(p, to[t]);
      REQUIRE(q != NULL);
      size_t keep = to[t] < 100 ? to[t] : 100;
      CHECKF(pmt_verify(q, keep, 31) == (size_t)-1, "realloc(memalign(%zu, 100), %zu) lost data",
             aligns[a], to[t]);
      A->free(q);
    }
  }
}

/* ---- the activity counters follow what this thread did --------------------- */

static void test_counters(void) {
  pm_counters b, e;
  pm_counters_get(&b);
  enum { N = 1000, L = 10 };
  static void *v[N];   /* N >= 2 L */
  for (int i = 0; i < N; i++) v[i] = A->malloc(1 + (size_t)i % 512);
  for (int i = 0; i < N; i++) A->free(v[i]);
  for (int i = 0; i < L; i++) v[i] = A->malloc(100000);     /* medium */
  for (int i = 0; i < L; i++) A->free(v[i]);
  for (int i = 0; i < L; i++) v[L + i] = A->malloc(300000);  /* huge */
  for (int i = 0; i < L; i++) A->free(v[L + i]);
  void *p = A->calloc(10, 10);
  p = A->realloc(p, 200);
  void *q = NULL;
  CHECK(A->posix_memalign(&q, 64, 64) == 0);
  A->free(q);
  A->free(p);
  pm_counters_get(&e);
  if (PMT_GLIBC) return;
  CHECKF(e.malloc_small - b.malloc_small >= N, "malloc_small +%llu", e.malloc_small - b.malloc_small);
  CHECKF(e.free_small - b.free_small >= N, "free_small +%llu", e.free_small - b.free_small);
  CHECKF(e.malloc_medium - b.malloc_medium >= L, "malloc_medium +%llu", e.malloc_medium - b.malloc_medium);
  CHECKF(e.free_medium - b.free_medium >= L, "free_medium +%llu", e.free_medium - b.free_medium);
  CHECKF(e.malloc_large - b.malloc_large >= L, "malloc_large +%llu", e.malloc_large - b.malloc_large);
  CHECKF(e.free_large - b.free_large >= L, "free_large +%llu", e.free_large - b.free_large);
  CHECK(e.calloc_calls > b.calloc_calls);
  CHECK(e.realloc_calls > b.realloc_calls);
  CHECK(e.aligned_calls > b.aligned_calls);
  CHECK(e.heaps_created >= 1);
  CHECK(e.threads_seen >= 1);
  CHECK(e.arenas_mapped >= 1);

  /* realloc(p, 0) really frees: the free is counted */
  p = A->malloc(40);
  REQUIRE(p != NULL);
  pm_counters_get(&b);
  q = A->realloc(p, 0);
  pm_counters_get(&e);
  CHECK(q == NULL);
  CHECKF(e.free_small == b.free_small + 1, "realloc(small, 0): free_small +%llu",
         e.free_small - b.free_small);
  p = A->malloc(5000);
  REQUIRE(p != NULL);
  pm_counters_get(&b);
  q = A->realloc(p, 0);
  pm_counters_get(&e);
  CHECK(q == NULL);
  CHECKF(e.free_medium == b.free_medium + 1, "realloc(medium, 0): free_medium +%llu",
         e.free_medium - b.free_medium);
  p = A->malloc(500000);
  REQUIRE(p != NULL);
  pm_counters_get(&b);
  q = A->realloc(p, 0);
  pm_counters_get(&e);
  CHECK(q == NULL);
  CHECKF(e.free_large == b.free_large + 1, "realloc(huge, 0): free_large +%llu",
         e.free_large - b.free_large);

  /* each aligned call counts once and its block once, whichever path served
   * it: the fast path, the last block of a list, a fresh pool or region, a
   * huge block, size 0, an invalid alignment */
  enum { M = 300 };
  static void *w[M];
  static const size_t al[] = {8, 64, 4096, 8192};
  for (size_t a = 0; a < sizeof al / sizeof al[0]; a++) {
    pm_counters_get(&b);
    for (int i = 0; i < M; i++) {
      if (i % 3 == 0) w[i] = A->aligned_alloc(al[a], (size_t)i * 13 % 6000);
      if (i % 3 == 1) w[i] = A->memalign(al[a], 24 + (size_t)i);
      if (i % 3 == 2) REQUIRE(A->posix_memalign(&w[i], al[a], (size_t)i * 7) == 0);
      REQUIRE(w[i] != NULL);
    }
    void *bad = (void *)1;
    CHECK(A->posix_memalign(&bad, 4, 64) == EINVAL);
    pm_counters_get(&e);
    unsigned long long blocks = (e.malloc_small - b.malloc_small) + (e.malloc_medium - b.malloc_medium) +
                                (e.malloc_large - b.malloc_large);
    CHECKF(e.aligned_calls - b.aligned_calls == M, "alignment %zu: aligned_calls +%llu, want %d", al[a],
           e.aligned_calls - b.aligned_calls, (int)M);
    CHECKF(blocks == M, "alignment %zu: blocks +%llu, want %d", al[a], blocks, (int)M);
    for (int i = 0; i < M; i++) {
      CHECKF(((uintptr_t)w[i] & (al[a] - 1)) == 0, "alignment %zu: %p", al[a], w[i]);
      A->free(w[i]);
    }
  }
}

/* ---- driver --------------------------------------------------------------- */

static void run_suite(const api *which) {
  A = which;
  fprintf(stderr, "== API through the %s names ==\n", which->name);
  test_malloc_zero();
  test_usable_and_neighbours();
  test_classes();
  checkpoint("malloc");
  test_calloc();
  checkpoint("calloc");
  test_huge();
  checkpoint("huge");
  test_reallocarray();
  test_realloc();
  test_posix_memalign();
  test_aligned_alloc_memalign();
  test_valloc_pvalloc();
  test_aligned_realloc();
  checkpoint("aligned");
  test_free();
  test_extensions();
  test_foreign();
  test_counters();
}

int main(void) {
  run_suite(&libc_api);
  run_suite(&pm_api);

  /* a block from one face freed through the other */
  void *p = malloc(100), *q = pm_malloc(100);
  REQUIRE(p != NULL && q != NULL);
  CHECK(pm_malloc_usable_size(p) == malloc_usable_size(p));
  pm_free(p);
  free(q);
  p = pm_malloc(2000);
  REQUIRE(p != NULL);
  p = realloc(p, 3000);
  REQUIRE(p != NULL);
  p = pm_realloc(p, 10);
  REQUIRE(p != NULL);
  free(p);

  int bad = pm_check();
  CHECKF(bad == 0, "pm_check() = %d at the end", bad);
  return pmt_done("unit.test_api");
}
