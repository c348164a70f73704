/* The medium regions through their internal interface: the classes (640 ..
 * 1024 by 128, then eight per power of two) and the class table against the
 * formula, the head region's extra use (free's one "emptied"
 * test), a region emptied by free's fast path going to the reserve, and a
 * FULL region coming back.  Runs in a fresh thread so that it owns a heap
 * nobody else has touched. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

static int failures;
#define EXPECT(cond)                                                   \
  do {                                                                 \
    if (!(cond)) {                                                     \
      fprintf(stderr, "%s:%d: expected %s\n", __FILE__, __LINE__, #cond); \
      failures++;                                                      \
    }                                                                  \
  } while (0)

static void test_class_table(void) {
  unsigned bad = 0;
  for (size_t n = PMI_MEDIUM_MIN; n <= PMI_MEDIUM_MAX; n++) {
    unsigned c = pmi_medium_class_fast(n);
    if (c != pmi_medium_class(n) || pmi_medium_class_size(c) < n || (c > 0 && pmi_medium_class_size(c - 1) >= n))
      bad++;
  }
  EXPECT(bad == 0);
  /* The front table (core/front.c) below: the pool class of every size up to 512. */
  for (size_t n = 1; n <= PMI_SMALL_MAX; n++) bad += pmi_front_class(n) != pmi_size_class(n);
  EXPECT(bad == 0);
}

/* The classes themselves: 60, increasing multiples of 128 from 640 to
 * 128 KiB, 128 bytes apart up to 1 KiB and at most an eighth apart above;
 * twice a class size is a class size (realloc's growth relies on it); and
 * what sqlite asks for most (pages of 1 KiB and 4 KiB plus a header) is
 * rounded up by an eighth at most. */
static void test_class_sizes(void) {
  EXPECT(PMI_MEDIUM_NCLASSES == 60);
  EXPECT(pmi_medium_class_size(0) == 640 && pmi_medium_class_size(3) == 1024);
  EXPECT(pmi_medium_class_size(4) == 1152 && pmi_medium_class_size(11) == 2048 && pmi_medium_class_size(12) == 2304);
  EXPECT(pmi_medium_class_size(PMI_MEDIUM_NCLASSES - 1) == PMI_MEDIUM_MAX);
  unsigned bad = 0;
  for (unsigned c = 0; c < PMI_MEDIUM_NCLASSES; c++) {
    size_t s = pmi_medium_class_size(c);
    if (s % 128 != 0 || pmi_medium_class(s) != c || pmi_medium_class(s + 1 - 128) != c) bad++;
    if (c > 0) {
      size_t prev = pmi_medium_class_size(c - 1);
      if (s <= prev || (prev < 1024 ? s - prev != 128 : (s - prev) * 8 > prev)) bad++;
    }
    if (2 * s <= PMI_MEDIUM_MAX && pmi_medium_class_size(pmi_medium_class(2 * s)) != 2 * s) bad++;
    if ((PMI_MEDIUM_SIZE - PMI_MEDIUM_HEADER) / s < 2 || (PMI_MEDIUM_SIZE - PMI_MEDIUM_HEADER) / s > 65535) bad++;
  }
  EXPECT(bad == 0);
  EXPECT(pmi_medium_class_size(pmi_medium_class(1032)) == 1152);
  EXPECT(pmi_medium_class_size(pmi_medium_class(4104)) == 4608);
  EXPECT(pmi_medium_class_size(pmi_medium_class(4368)) == 4608);
  void *p = pm_malloc(1032), *q = pm_malloc(4368);
  EXPECT(p != NULL && pm_malloc_usable_size(p) == 1152);
  EXPECT(q != NULL && pm_malloc_usable_size(q) == 4608);
  pm_free(p);
  pm_free(q);
}

/* The aligned-class table against the search it replaces. */
static void test_aligned_table(void) {
  unsigned bad = 0;
  for (unsigned k = 0; k <= 12; k++)
    for (unsigned c = 0; c < PMI_MEDIUM_NCLASSES; c++) {
      unsigned want = c;
      while (pmi_medium_class_size(want) & ((1u << k) - 1)) want++;
      if (pmi_medium_aligned_class[k][c] != want) bad++;
    }
  EXPECT(bad == 0);
  /* and the blocks it hands out are aligned */
  for (size_t a = 256; a <= 4096; a *= 2)
    for (size_t n = 513; n <= 20000; n += 997) {
      void *p = pm_aligned_alloc(a, n);
      EXPECT(p != NULL && ((uintptr_t)p & (a - 1)) == 0 && pm_malloc_usable_size(p) >= n);
      pm_free(p);
    }
}

static void test_head_bias(pmi_heap *heap) {
  const size_t size = 20480;                 /* 20 KiB: 51 blocks per region */
  unsigned c = pmi_medium_class(size);
  EXPECT(pmi_medium_class_size(c) == size);
  void *p = pm_malloc(size);
  pmi_medium *m = pmi_medium_of(p);
  EXPECT(heap->usedmedium[c] == m && m->state == PMI_MEDIUM_USED);
  /* The head of usedmedium counts one use more than it has blocks out. */
  EXPECT(m->used == 2 && pmi_medium_nused(m) == 1);
  pm_free(p);
  EXPECT(m->used == 1 && pmi_medium_nused(m) == 0);
  EXPECT(heap->usedmedium[c] == m && m->state == PMI_MEDIUM_USED);   /* the head stays */
  EXPECT(pm_check() == 0);

  /* Fill the region: it becomes FULL when the next one takes over, and the
   * new head carries the extra use. */
  unsigned cap = m->capacity;
  void **blocks = pm_malloc((cap + 1) * sizeof *blocks);
  for (unsigned i = 0; i <= cap; i++) blocks[i] = pm_malloc(size);
  pmi_medium *m2 = pmi_medium_of(blocks[cap]);
  EXPECT(m2 != m && heap->usedmedium[c] == m2);
  EXPECT(m->state == PMI_MEDIUM_FULL && m->used == cap && pmi_medium_nused(m) == cap);
  EXPECT(m2->used == 2 && pmi_medium_nused(m2) == 1);
  EXPECT(pm_check() == 0);
  /* FULL -> USED: it becomes the head again, and m2 gives up its extra use. */
  pm_free(blocks[0]);
  EXPECT(m->state == PMI_MEDIUM_USED && heap->usedmedium[c] == m && m->used == cap);
  EXPECT(m2->used == 1 && pmi_medium_nused(m2) == 1);
  EXPECT(pm_check() == 0);
  /* m2, not the head, emptied by free's fast path: to the reserve. */
  size_t reserve = pmi_medium_reserve_count();
  pm_counters before, after;   /* frees are derived, not counted (stats.c) */
  pm_counters_get(&before);
  pm_free(blocks[cap]);
  pm_counters_get(&after);
  EXPECT(after.free_medium == before.free_medium + 1);
  EXPECT(pmi_medium_reserve_count() == reserve + 1 && m2->state == PMI_MEDIUM_EMPTY &&
         pmi_load_relaxed(&m2->heap) == NULL);
  for (unsigned i = 1; i < cap; i++) pm_free(blocks[i]);
  EXPECT(heap->usedmedium[c] == m && pmi_medium_nused(m) == 0 && m->used == 1);
  EXPECT(pm_check() == 0);
  pm_free(blocks);
}

/* A malloc/free loop of the largest class keeps a block on the free list,
 * so that free's fast path takes it (carving links at least two). */
static void test_largest_class_loop(pmi_heap *heap) {
  void *p = pm_malloc(PMI_MEDIUM_MAX);
  pmi_medium *m = pmi_medium_of(p);
  EXPECT(m->ncarved >= 2 && m->freeblock != NULL);
  pm_free(p);
  for (int i = 0; i < 100; i++) {
    void *q = pm_malloc(PMI_MEDIUM_MAX);
    EXPECT(q == p);
    pm_free(q);
  }
  EXPECT(m->freeblock != NULL && pmi_medium_nused(m) == 0);
  EXPECT(pm_check() == 0);
}

static void *run(void *arg) {
  pm_free(pm_malloc(1));                        /* create this thread's heap */
  pmi_heap *heap = pmi_heap_tls;
  EXPECT(heap != &pmi_heap_empty);
  test_class_sizes();
  test_class_table();
  test_aligned_table();
  test_head_bias(heap);
  test_largest_class_loop(heap);
  return NULL;
}

int main(void) {
  pmi_process_init();
  pmi_option(purge_thread) = 0;
  pthread_t t;
  pthread_create(&t, NULL, run, NULL);
  pthread_join(t, NULL);
  EXPECT(pm_check() == 0);
  printf("test_medium: %s\n", failures ? "FAILED" : "ok");
  return failures != 0;
}
