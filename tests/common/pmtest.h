/* pmtest.h: the few helpers the C tests share.
 *
 *   CHECK(expr)          on failure prints "file:line: CHECK failed: expr"
 *                        on stderr and counts it; the test goes on.
 *   CHECKF(expr, ...)    the same, with a printf-style note appended.
 *   REQUIRE(expr)        CHECK, and on failure ends the test at once (exit 1).
 *   PMT_SKIP(...)        prints why and exits 77 (ctest's "skipped").
 *   pmt_done()           the summary line; returns main's exit status
 *                        (0 when every CHECK held, 1 otherwise).
 *   pmt_rng              xorshift64* with a fixed seed: runs are reproducible.
 *
 * The failure counter is atomic so that CHECK may be used from any thread.
 * Nothing here allocates: a test of malloc should not depend on it. */
#ifndef PMTEST_H
#define PMTEST_H

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static atomic_ulong pmt_failures;
static atomic_ulong pmt_checks;

#define CHECK(expr) CHECKF(expr, "%s", "")

#define CHECKF(expr, ...)                                                     \
  do {                                                                        \
    atomic_fetch_add_explicit(&pmt_checks, 1, memory_order_relaxed);          \
    if (!(expr)) {                                                            \
      atomic_fetch_add_explicit(&pmt_failures, 1, memory_order_relaxed);      \
      fprintf(stderr, "%s:%d: CHECK failed: %s ", __FILE__, __LINE__, #expr); \
      fprintf(stderr, __VA_ARGS__);                                           \
      fputc('\n', stderr);                                                    \
      fflush(stderr);                                                         \
    }                                                                         \
  } while (0)

#define REQUIRE(expr)                                                         \
  do {                                                                        \
    unsigned long pmt_before_ = atomic_load(&pmt_failures);                   \
    CHECK(expr);                                                              \
    if (atomic_load(&pmt_failures) != pmt_before_) {                          \
      fprintf(stderr, "%s:%d: REQUIRE failed, test stops\n", __FILE__, __LINE__); \
      exit(1);                                                                \
    }                                                                         \
  } while (0)

#define PMT_SKIP(...)                                                         \
  do {                                                                        \
    fprintf(stderr, "SKIP: ");                                                \
    fprintf(stderr, __VA_ARGS__);                                             \
    fputc('\n', stderr);                                                      \
    exit(77);                                                                 \
  } while (0)

static inline unsigned long pmt_failed(void) { return atomic_load(&pmt_failures); }

static inline int pmt_done(const char *name) {
  unsigned long f = atomic_load(&pmt_failures), n = atomic_load(&pmt_checks);
  fprintf(stderr, "%s: %lu checks, %lu failed: %s\n", name, n, f, f ? "FAIL" : "PASS");
  return f ? 1 : 0;
}

/* ---- deterministic randomness ----------------------------------------- */
typedef struct { uint64_t s; } pmt_rng;

static inline pmt_rng pmt_rng_seed(uint64_t seed) {
  pmt_rng r = { seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull };
  if (r.s == 0) r.s = 1;
  return r;
}

static inline uint64_t pmt_next(pmt_rng *r) {
  uint64_t x = r->s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  r->s = x;
  return x * 0x2545F4914F6CDD1Dull;
}

/* Uniform enough in [lo, hi]. */
static inline size_t pmt_range(pmt_rng *r, size_t lo, size_t hi) {
  return lo + (size_t)(pmt_next(r) % (uint64_t)(hi - lo + 1));
}

/* ---- patterns ---------------------------------------------------------- */
/* The byte at offset i of a block filled for (tag): changes with the tag
 * and the offset, so a block swapped with another or shifted shows up. */
static inline unsigned char pmt_pattern_byte(uint64_t tag, size_t i) {
  uint64_t x = tag ^ ((uint64_t)i * 0x9E3779B97F4A7C15ull);
  x ^= x >> 29;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 32;
  return (unsigned char)x;
}

static inline void pmt_fill(void *p, size_t n, uint64_t tag) {
  unsigned char *b = p;
  for (size_t i = 0; i < n; i++) b[i] = pmt_pattern_byte(tag, i);
}

/* Returns the offset of the first wrong byte, or (size_t)-1 if all match. */
static inline size_t pmt_verify(const void *p, size_t n, uint64_t tag) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++)
    if (b[i] != pmt_pattern_byte(tag, i)) return i;
  return (size_t)-1;
}

/* The tag of a block: ties the pattern to where and how big it is. */
static inline uint64_t pmt_tag(const void *p, size_t n, uint64_t seed) {
  return ((uint64_t)(uintptr_t)p * 0x100000001B3ull) ^ ((uint64_t)n << 48) ^ seed;
}

#endif /* PMTEST_H */
