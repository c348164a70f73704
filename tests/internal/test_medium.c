/* The medium regions through their internal interface: the classes (14 per
 * power of two from 528 bytes, 8 of them in its first quarter) and the class table against the
 * formula, the head region's extra use (free's one "emptied"
 * test), a region emptied by free's fast path going to the reserve, and a
 * FULL region coming back, a malloc/free loop on a one-block list staying
 * on the fast paths, the colour of the regions (their first blocks in
 * different cache sets, every block handed out once, aligned blocks still
 * aligned), and the purge of a region's free pages (blocks
 * whose first page went are dormant, and woken when the list runs dry; on
 * growth elsewhere, without a trim).  Runs in a fresh thread so that it
 * owns a heap nobody else has touched. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

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

/* The classes themselves: 112, increasing multiples of 16 from 528 to
 * 128 KiB, 14 per power of two 2^b: at most 2^(b - 5) apart up to 1.25 *
 * 2^b, at most 2^(b - 3) above; twice a class size is a class size
 * (realloc's growth relies on it); and what sqlite asks for most (pages of
 * 1 KiB and 4 KiB plus a header) is rounded up by 3 % at most. */
static void test_class_sizes(void) {
  EXPECT(PMI_MEDIUM_NCLASSES == 112);
  EXPECT(pmi_medium_class_size(0) == 528 && pmi_medium_class_size(7) == 640 && pmi_medium_class_size(8) == 704);
  EXPECT(pmi_medium_class_size(13) == 1024 && pmi_medium_class_size(14) == 1056);
  EXPECT(pmi_medium_class_size(PMI_MEDIUM_NCLASSES - 1) == PMI_MEDIUM_MAX);
  unsigned bad = 0;
  for (unsigned c = 0; c < PMI_MEDIUM_NCLASSES; c++) {
    size_t s = pmi_medium_class_size(c);
    if (s % 16 != 0 || pmi_medium_class(s) != c) bad++;
    if (c > 0) {
      size_t prev = pmi_medium_class_size(c - 1);
      size_t pow = (size_t)1 << (63 - __builtin_clzl(prev - 1));   /* prev's power of two, below it */
      if (s <= prev || pmi_medium_class(prev + 1) != c) bad++;
      if (prev < pow + pow / 4 ? (s - prev) * 32 > pow : (s - prev) * 8 > pow) bad++;
    }
    if (2 * s <= PMI_MEDIUM_MAX && pmi_medium_class_size(pmi_medium_class(2 * s)) != 2 * s) bad++;
    if ((PMI_MEDIUM_SIZE - PMI_MEDIUM_HEADER) / s < 2 || (PMI_MEDIUM_SIZE - PMI_MEDIUM_HEADER) / s > 65535) bad++;
  }
  EXPECT(bad == 0);
  EXPECT(pmi_medium_class_size(pmi_medium_class(1032)) == 1056);
  EXPECT(pmi_medium_class_size(pmi_medium_class(4104)) == 4224);
  EXPECT(pmi_medium_class_size(pmi_medium_class(4368)) == 4480);
  void *p = pm_malloc(1032), *q = pm_malloc(4368);
  EXPECT(p != NULL && pm_malloc_usable_size(p) == 1056);
  EXPECT(q != NULL && pm_malloc_usable_size(q) == 4480);
  pm_free(p);
  pm_free(q);
}

/* aligned_alloc's class: for every alignment 2^k <= 4 KiB and medium size
 * n that is a multiple of it, the class of n has 2^k-aligned blocks (alloc.c,
 * medium_aligned_class), and it is the first class at least n that has. */
static void test_aligned_table(void) {
  unsigned bad = 0;
  for (unsigned k = 0; k <= 12; k++)
    for (size_t n = (size_t)1 << k; n <= PMI_MEDIUM_MAX; n += (size_t)1 << k) {
      if (n < PMI_MEDIUM_MIN) continue;
      unsigned want = pmi_medium_class(n);
      while (pmi_medium_class_size(want) & ((1u << k) - 1)) want++;
      if (pmi_medium_class_fast(n) != want) bad++;
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

/* Colour (medium.c): every region starts its blocks past a gap of its own
 * (8 KiB steps by region, a line offset by class), so that the first
 * blocks of the 14 classes of a doubling are in 14 cache sets (none of
 * them set 0, the descriptors'), their live words in the header's line
 * of the region's window; within the aligned entry points' guarantees and
 * at most 64 KiB of a region's blocks (one block of the largest classes).  A region then
 * hands out each of its blocks once, all of them at their places. */
static unsigned set_of(const void *p) { return (unsigned)((uintptr_t)p >> 6) & 63; }

static void test_colour(pmi_heap *heap) {
  unsigned bad = 0;
  for (unsigned c = 0; c < PMI_MEDIUM_NCLASSES; c++) {
    for (uintptr_t r = 0; r < 8; r++) {   /* the eight windows */
      const void *region = (const void *)((r + 40) << PMI_MEDIUM_SHIFT);
      size_t size = pmi_medium_class_size(c), colour = pmi_medium_colour(region, c), align = size & -size;
      size_t full = (PMI_MEDIUM_SIZE - PMI_MEDIUM_HEADER) / size, cap = (PMI_MEDIUM_SIZE - PMI_MEDIUM_HEADER - colour) / size;
      if (align > PMI_MEDIUM_ALIGN_MAX) align = PMI_MEDIUM_ALIGN_MAX;
      if (colour % 64 != 0 || colour % align != 0 || colour >= 64 * 1024 || colour / 8192 != r) bad++;
      if (cap + (64 * 1024 + size - 1) / size < full || (full < 16 && cap + 1 < full)) bad++;   /* 64 KiB, one big block */
    }
  }
  EXPECT(bad == 0);
  /* one region of each class of 513 .. 1024: block 0 first */
  enum { N = 14 };
  void *p[N];
  uint64_t sets = 0, lines = 0;
  for (unsigned c = 0; c < N; c++) {
    size_t size = pmi_medium_class_size(c);
    EXPECT(heap->usedmedium[c] == &pmi_medium_sentinel);
    p[c] = pm_malloc(size);
    pmi_medium *m = pmi_medium_of(p[c]);
    EXPECT(pmi_medium_slow(m)->colour == pmi_medium_colour(m, c) && pmi_medium_slow(m)->colour % 8192 != 0);
    EXPECT((char *)p[c] == pmi_medium_base(m) + PMI_MEDIUM_HEADER + pmi_medium_slow(m)->colour);
    EXPECT(m->capacity == (PMI_MEDIUM_SIZE - PMI_MEDIUM_HEADER - pmi_medium_slow(m)->colour) / size);
    EXPECT(set_of(p[c]) != 0 && !(sets >> set_of(p[c]) & 1));
    sets |= (uint64_t)1 << set_of(p[c]);
    unsigned u = pmi_medium_units(p[c]);   /* its live word: in the header's line 2 + the region's window */
    EXPECT(set_of(&m->live[u >> 6]) == set_of(m) + 2 + ((uintptr_t)m >> PMI_MEDIUM_SHIFT) % 8);
    lines |= (uint64_t)1 << set_of(&m->live[u >> 6]);
  }
  EXPECT(__builtin_popcountll(sets) == N);
  EXPECT(__builtin_popcountll(lines) >= 2);   /* (regions mapped in turn: all eight) */
  /* their descriptors: at the region's colour (types.h, MEDIUM_DESC_OFFSET),
   * which free's tables find from the arena map's byte, in sets clear of
   * set 0 and of the blocks' first lines, one set per colour (regions
   * mapped in turn: every colour) */
  uint64_t dsets = 0;
  for (unsigned c = 0; c < N; c++) {
    pmi_medium *m = pmi_medium_of(p[c]);
    unsigned k = pmi_medium_desc_colour(p[c]), byte = pmi_arenamap_byte(p[c]);
    EXPECT((char *)m == pmi_medium_base(p[c]) + PMI_MEDIUM_DESC_OFFSET(k) && pmi_medium_of(m) == m);
    EXPECT(byte == PMI_REGION_MEDIUM + k && pmi_arenamap_kind(p[c]) == PMI_REGION_MEDIUM);
    EXPECT(pmi_arenamap_byte(pmi_medium_base(p[c]) + PMI_MEDIUM_SIZE - 1) == byte);
    EXPECT((((uintptr_t)p[c] & pmi_front.kinds.region_mask[byte]) | pmi_front.kinds.region_or[byte]) == (uintptr_t)m);
    for (unsigned s = 0; s < PMI_MEDIUM_SIZE >> PMI_ARENA_SHIFT; s++) {   /* every slot's free-map entry: free's */
      const pmi_free_slot *f = &pmi_freemap[((uintptr_t)pmi_medium_base(m) >> PMI_ARENA_SHIFT) + s];
      EXPECT(f->header == (uintptr_t)m);
      EXPECT(f->word_mask == (PMI_MEDIUM_LIVE_WORDS - 1) * 8 && f->desc_mask == 0);
      EXPECT(f->owner == pmi_thread_pointer() && f->owner == heap->tp);   /* this thread's heap's */
    }
    EXPECT(set_of(m) == 40 + 2 * k && !(sets >> set_of(m) & 1));
    EXPECT((char *)(m + 1) <= pmi_medium_base(m) + PMI_MEDIUM_HEADER);
    EXPECT(pmi_desc_is_medium((pmi_desc *)m));
    dsets |= (uint64_t)1 << set_of(m);
  }
  EXPECT(__builtin_popcountll(dsets) == PMI_MEDIUM_COLOURS);
  void *small = pm_malloc(16);   /* a pool's descriptor is told apart */
  EXPECT(!pmi_desc_is_medium((pmi_desc *)pmi_pool_of(pmi_arena_of(small), small)));
  {   /* its free-map entry names this thread, and finds the arena's header and the descriptor */
    const pmi_free_slot *f = &pmi_freemap[(uintptr_t)small >> PMI_ARENA_SHIFT];
    uintptr_t header = f->header;
    EXPECT(f->owner == pmi_thread_pointer());
    EXPECT(header == (uintptr_t)pmi_arena_of(small) + PMI_HEADER_SLOT * sizeof(pmi_pool));
    EXPECT(*(pmi_heap **)(header + offsetof(pmi_medium, heap)) == pmi_arena_of(small)->heap);
    EXPECT((pmi_pool *)(header ^ (((uintptr_t)small >> 6) & f->desc_mask)) == pmi_pool_of(pmi_arena_of(small), small));
    EXPECT(f->word_mask == (PMI_LIVE_WORDS - 1) * 8);
    /* the checker compares every entry with its region's */
    pmi_free_slot *w = (pmi_free_slot *)f, saved = *w;
    EXPECT(pmi_check_heap(heap, 0) == 0);
    w->desc_mask = 0;
    EXPECT(pmi_check_heap(heap, 0) != 0);
    *w = saved;
    EXPECT(pmi_check_heap(heap, 0) == 0);
    w->owner = 0;   /* an owner that is not the heap's */
    EXPECT(pmi_check_heap(heap, 0) != 0);
    *w = saved;
    EXPECT(pmi_check_heap(heap, 0) == 0);
  }
  pm_free(small);
  /* the 528-byte region: every block once, at its place */
  pmi_medium *m = pmi_medium_of(p[0]);
  size_t size = pmi_medium_slow(m)->block_size;
  unsigned cap = m->capacity;
  char **v = pm_malloc(cap * sizeof *v);
  unsigned char *seen = pm_calloc(cap, 1);
  v[0] = p[0];
  for (unsigned i = 1; i < cap; i++) v[i] = pm_malloc(size);
  for (unsigned i = 0; i < cap; i++) {
    size_t off = (size_t)(v[i] - pmi_medium_base(m)) - PMI_MEDIUM_HEADER - pmi_medium_slow(m)->colour;
    if (pmi_medium_of(v[i]) != m || off % size != 0 || off / size >= cap || seen[off / size]++) bad++;
  }
  EXPECT(bad == 0 && m->ncarved == cap && m->freeblock == PMI_LIST_END);
  void *next = pm_malloc(size);
  EXPECT(pmi_medium_of(next) != m && m->state == PMI_MEDIUM_FULL);
  EXPECT(pm_check() == 0);
  pm_free(next);
  for (unsigned i = 0; i < cap; i++) pm_free(v[i]);
  for (unsigned c = 1; c < N; c++) pm_free(p[c]);
  pm_free(v);
  pm_free(seen);
  EXPECT(pm_check() == 0);
}

/* A region from the reserve formatted for another class keeps its window
 * (the colour's 8 KiB steps), so its new gap holds no page the old class
 * touched, and nothing is given back for it: the new blocks start in the
 * page the old ones did. */
static size_t resident(void *p, size_t n);
static void test_colour_reuse(pmi_heap *heap) {
  const size_t old_size = 1120, new_size = 1280;   /* classes 16 and 21: colours 1600 and 57 KiB */
  unsigned oc = pmi_medium_class(old_size), nc = pmi_medium_class(new_size);
  EXPECT(pmi_medium_class_size(oc) == old_size && pmi_medium_class_size(nc) == new_size);
  EXPECT(heap->usedmedium[oc] == &pmi_medium_sentinel && heap->usedmedium[nc] == &pmi_medium_sentinel);
  /* a region of the old class full, the next one touched over 40 blocks
   * and emptied: it goes to the reserve with its pages when the full one
   * comes back as the head */
  void *first = pm_malloc(old_size);
  pmi_medium *full = pmi_medium_of(first);
  unsigned cap = full->capacity;
  void **v = pm_malloc(cap * sizeof *v), *w[40];
  v[0] = first;
  for (unsigned i = 1; i < cap; i++) v[i] = pm_malloc(old_size);
  for (unsigned i = 0; i < 40; i++) {
    w[i] = pm_malloc(old_size);
    memset(w[i], 3, old_size);
  }
  pmi_medium *m = pmi_medium_of(w[0]);
  EXPECT(m != full && full->state == PMI_MEDIUM_FULL && heap->usedmedium[oc] == m);
  for (unsigned i = 0; i < 40; i++) pm_free(w[i]);
  pm_free(v[0]);
  EXPECT(m->state == PMI_MEDIUM_EMPTY && pmi_medium_reserve_first() == m && heap->usedmedium[oc] == full);
  uint32_t old_colour = pmi_medium_slow(m)->colour;
  size_t gap = (PMI_MEDIUM_HEADER + old_colour) / 4096 * 4096 - PMI_MEDIUM_HEADER;   /* its whole pages */
  size_t touched = resident(pmi_medium_base(m) + PMI_MEDIUM_HEADER + gap, 40 * old_size);
  EXPECT(touched >= 10 && resident(pmi_medium_base(m) + PMI_MEDIUM_HEADER, gap) == 0);
  uint64_t purged = heap->counters.medium_purge_bytes;
  void *q = pm_malloc(new_size);
  EXPECT(pmi_medium_of(q) == m && pmi_medium_slow(m)->colour == pmi_medium_colour(m, nc) && pmi_medium_slow(m)->colour != old_colour);
  EXPECT(pmi_medium_slow(m)->colour / 8192 == old_colour / 8192 && (char *)q == pmi_medium_base(m) + PMI_MEDIUM_HEADER + pmi_medium_slow(m)->colour);
  EXPECT(((uintptr_t)q & ~(uintptr_t)4095) == ((uintptr_t)pmi_medium_base(m) + PMI_MEDIUM_HEADER + gap));   /* block 0's page */
  EXPECT(resident(pmi_medium_base(m) + PMI_MEDIUM_HEADER, gap) == 0);
  EXPECT(resident(pmi_medium_base(m) + PMI_MEDIUM_HEADER + gap, 40 * old_size) == touched);
  EXPECT(heap->counters.medium_purge_bytes == purged);
  EXPECT(pm_check() == 0);
  pm_free(q);
  for (unsigned i = 1; i < cap; i++) pm_free(v[i]);
  pm_free(v);
}

/* Aligned blocks of every alignment 16 .. 4 KiB from coloured regions (last:
 * it takes a region of most classes). */
static void test_colour_aligned(void) {
  for (size_t a = 16; a <= 4096; a *= 2)
    for (size_t n = 513; n <= 40000; n += 331) {
      void *q = pm_aligned_alloc(a, n);
      EXPECT(q != NULL && ((uintptr_t)q & (a - 1)) == 0 && pm_malloc_usable_size(q) >= n);
      pm_free(q);
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
 * so that free's fast path takes it (carving links at least two), once the
 * class is taken a second time: the first block of a fresh region is carved
 * alone, so that a class holding one block touches one block's page. */
static void test_largest_class_loop(pmi_heap *heap) {
  void *p = pm_malloc(PMI_MEDIUM_MAX);
  pmi_medium *m = pmi_medium_of(p);
  EXPECT(heap->usedmedium[pmi_medium_class(PMI_MEDIUM_MAX)] == m);
  EXPECT(m->ncarved == 1 && m->freeblock == PMI_LIST_END && !pmi_medium_slow(m)->lone);
  pm_free(p);
  void *again = pm_malloc(PMI_MEDIUM_MAX);   /* its second visit carves ahead */
  EXPECT(again == p && m->ncarved >= 2 && m->freeblock != PMI_LIST_END);
  pm_free(again);
  for (int i = 0; i < 100; i++) {
    void *q = pm_malloc(PMI_MEDIUM_MAX);
    EXPECT(q == p);
    pm_free(q);
  }
  EXPECT(m->freeblock != PMI_LIST_END && pmi_medium_nused(m) == 0);
  EXPECT(pm_check() == 0);
}

/* Pages of [p, p + n) resident. */
static size_t resident(void *p, size_t n) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE), skew = (uintptr_t)p & (page - 1);
  p = (char *)p - skew;   /* (mincore takes a page start; a span starts past its colour) */
  n += skew;
  size_t pages = (n + page - 1) / page, in = 0;
  unsigned char *v = malloc(pages);
  if (v == NULL || mincore(p, n, v) != 0) {
    EXPECT(0);
    free(v);
    return 0;
  }
  for (size_t i = 0; i < pages; i++) in += v[i] & 1;
  free(v);
  return in;
}

/* A region of 1152-byte blocks (less than a page: no free block holds a
 * whole page of its own) with one block in 16 live: its other pages go
 * back, the free blocks on them are dormant, and allocating every block
 * again serves them from the same region (woken), with every check. */
static void test_purge_pages(pmi_heap *heap) {
  const size_t size = 1152;
  unsigned c = pmi_medium_class(size);
  EXPECT(pmi_medium_class_size(c) == size);
  void *first = pm_malloc(size);
  pmi_medium *m = pmi_medium_of(first);
  unsigned n = m->capacity - pmi_medium_nused(m);   /* the rest of this region */
  void **v = pm_malloc(n * sizeof *v);
  for (unsigned i = 0; i < n; i++) {
    v[i] = pm_malloc(size);
    EXPECT(pmi_medium_of(v[i]) == m);
    memset(v[i], 0x5a, size);
  }
  pm_free(first);
  for (unsigned i = 0; i < n; i++)
    if (i % 16 != 0) pm_free(v[i]);
  char *span = pmi_medium_base(m) + PMI_MEDIUM_HEADER + pmi_medium_slow(m)->colour;
  size_t span_bytes = (size_t)m->ncarved * size, before = resident(span, span_bytes);
  size_t bytes = pmi_medium_purge_idle(heap, pmi_os_now_ms(), true, NULL);
  size_t after = resident(span, span_bytes);
  EXPECT(bytes >= span_bytes / 3);   /* (and the other regions' free pages) */
  EXPECT(after < before / 2);
  EXPECT(pmi_medium_slow(m)->ndormant > 0 && m->freeblock != PMI_LIST_END);
  EXPECT(pm_check() == 0);
  for (unsigned i = 0; i < n; i += 16) {   /* the survivors kept their bytes */
    unsigned char *b = v[i];
    EXPECT(b[0] == 0x5a && b[size - 1] == 0x5a);
  }
  /* A second purge of the unchanged region gives nothing back (hysteresis). */
  EXPECT(pmi_medium_purge_idle(heap, pmi_os_now_ms(), false, NULL) == 0);

  /* Allocate them all again: the same region, dormant blocks woken. */
  for (unsigned i = 0; i < n; i++) {
    if (i % 16 == 0) continue;
    v[i] = pm_malloc(size);
    EXPECT(pmi_medium_of(v[i]) == m);
    memset(v[i], 0x33, size);
  }
  first = pm_malloc(size);
  EXPECT(pmi_medium_of(first) == m);
  EXPECT(pmi_medium_slow(m)->ndormant == 0 && m->freeblock == PMI_LIST_END && pmi_medium_nused(m) == m->capacity);
  EXPECT(pm_check() == 0);

  /* Sparse again; then fresh pool pages are touched (2 MiB of new 64-byte
   * blocks): the growth gives the region's free pages back without a trim
   * or a decay, and the reserve's regions are untouched again. */
  for (unsigned i = 0; i < n; i++)
    if (i % 16 != 0) pm_free(v[i]);
  uint64_t purged = heap->counters.medium_purge_bytes;
  before = resident(span, span_bytes);
  size_t nsmall = (2u << 20) / 64;
  void **w = pm_malloc(nsmall * sizeof *w);
  for (size_t i = 0; i < nsmall; i++) w[i] = pm_malloc(64);
  after = resident(span, span_bytes);
  EXPECT(heap->counters.medium_purge_bytes >= purged + span_bytes / 3);
  EXPECT(after < before / 2);
  for (pmi_medium *r = pmi_medium_reserve_first(); r != NULL; r = r->nextregion) EXPECT(r->ncarved == 0);
  EXPECT(pm_check() == 0);
  /* The other way: the pools just freed are empty (one block in four pools
   * kept, so that their arenas stay); medium blocks carved from fresh pages
   * (2 MiB of a class not used yet) get theirs. */
  for (size_t i = 0; i < nsmall; i++)
    if (i % 256 != 0) pm_free(w[i]);
  uint64_t pool_bytes = atomic_load(&pmi_purge_stats.purge_bytes);
  const size_t big = 24576;
  unsigned nbig = (2u << 20) / big;
  void **x = pm_malloc(nbig * sizeof *x);
  for (unsigned i = 0; i < nbig; i++) {
    x[i] = pm_malloc(big);
    memset(x[i], 1, big);
  }
  EXPECT(atomic_load(&pmi_purge_stats.purge_bytes) >= pool_bytes + (1u << 20));
  EXPECT(pm_check() == 0);
  for (unsigned i = 0; i < nbig; i++) pm_free(x[i]);
  pm_free(x);
  for (size_t i = 0; i < nsmall; i += 256) pm_free(w[i]);
  pm_free(w);
  for (unsigned i = 0; i < n; i += 16) pm_free(v[i]);
  pm_free(first);
  pm_free(v);
  EXPECT(pm_check() == 0);
}

/* Growth takes back about what it grew, not every idle page: six regions
 * of 1792-byte blocks with one block in 16 live hold 4.8 MiB of free
 * pages; 2 MiB of growth elsewhere (two looks: the first sees them
 * changed) gives back 2 MiB of them, the highest pages of a region first,
 * and the rest stays resident.  Allocating again then takes the free blocks that
 * kept their pages before any dormant one is woken. */
static void test_reclaim_budget(pmi_heap *heap) {
  const size_t size = 1792;
  unsigned c = pmi_medium_class(size);
  EXPECT(pmi_medium_class_size(c) == size && heap->usedmedium[c] == &pmi_medium_sentinel);
  void *probe = pm_malloc(size);
  unsigned cap = pmi_medium_of(probe)->capacity, n = 6 * cap;
  pm_free(probe);
  void **v = pm_malloc(n * sizeof *v);
  pmi_medium *r[6] = {NULL, NULL, NULL, NULL, NULL, NULL};
  for (unsigned i = 0; i < n; i++) {
    v[i] = pm_malloc(size);
    memset(v[i], 0x5a, size);
    pmi_medium *m = pmi_medium_of(v[i]);
    for (unsigned k = 0; k < 6; k++) {
      if (r[k] == m) break;
      if (r[k] == NULL) {
        r[k] = m;
        break;
      }
    }
  }
  EXPECT(r[0] != NULL && r[5] != NULL);
  pmi_medium_purge_idle(heap, pmi_os_now_ms(), true, NULL);   /* the other tests' regions: nothing more to give */
  for (unsigned i = 0; i < n; i++)
    if (i % 16 != 0) pm_free(v[i]);
  size_t before = 0, dormant = 0;
  for (unsigned k = 0; k < 6; k++)
    before += resident(pmi_medium_base(r[k]) + PMI_MEDIUM_HEADER + pmi_medium_slow(r[k])->colour, (size_t)r[k]->ncarved * size);
  uint64_t purged = heap->counters.medium_purge_bytes;
  pmi_medium_grew(heap, 1u << 20);   /* a look: they changed since the last one */
  pmi_medium_grew(heap, 1u << 20);   /* the next: 2 MiB owed */
  uint64_t given = heap->counters.medium_purge_bytes - purged;
  size_t after = 0;
  for (unsigned k = 0; k < 6; k++) {
    char *first = pmi_medium_base(r[k]) + PMI_MEDIUM_HEADER + pmi_medium_slow(r[k])->colour;
    after += resident(first, (size_t)r[k]->ncarved * size);
    dormant += pmi_medium_slow(r[k])->ndormant;
  }
  /* a region gives its highest free pages first: above a free page that
   * went, no free page stayed (free: no live block, the survivors i % 16 == 0, on it) */
  for (unsigned k = 0; k < 6; k++) {
    char *base = pmi_medium_base(r[k]);
    static unsigned char vec[PMI_MEDIUM_SIZE / 4096], busy[PMI_MEDIUM_SIZE / 4096];
    memset(busy, 0, sizeof busy);
    for (unsigned i = 0; i < n; i += 16)
      if (pmi_medium_of(v[i]) == r[k])
        for (size_t pg = (size_t)((char *)v[i] - base) / 4096; pg <= (size_t)((char *)v[i] + size - 1 - base) / 4096; pg++) busy[pg] = 1;
    size_t lo = (PMI_MEDIUM_HEADER + pmi_medium_slow(r[k])->colour) / 4096, hi = (PMI_MEDIUM_HEADER + pmi_medium_slow(r[k])->colour + (size_t)r[k]->ncarved * size) / 4096;
    EXPECT(mincore(base, PMI_MEDIUM_SIZE, vec) == 0);
    bool gone = false, stayed_above = false;
    for (size_t pg = lo; pg < hi; pg++) {
      if (busy[pg]) continue;
      if (!(vec[pg] & 1)) gone = true;
      else if (gone) stayed_above = true;
    }
    EXPECT(!stayed_above);
  }
  EXPECT(given >= (1u << 20) && given <= (2112u << 10));
  EXPECT(before - after >= (1u << 20) / 4096 && before - after <= (2112u << 10) / 4096);
  EXPECT(after > before / 2);
  EXPECT(dormant > 0);
  EXPECT(pm_check() == 0);
  /* the free blocks on the lists first: no wake while they last */
  unsigned listed = 0;
  for (unsigned k = 0; k < 6; k++) listed += r[k]->ncarved - pmi_medium_nused(r[k]) - pmi_medium_slow(r[k])->ndormant;
  unsigned got = 0;
  for (unsigned i = 0; i < n && got < listed; i++) {
    if (i % 16 == 0) continue;
    v[i] = pm_malloc(size);
    got++;
  }
  unsigned dormant_now = 0;
  for (unsigned k = 0; k < 6; k++) dormant_now += pmi_medium_slow(r[k])->ndormant;
  EXPECT(dormant_now == dormant);
  for (unsigned i = 0; i < n; i++) {
    if (i % 16 == 0) {   /* the survivors kept their bytes */
      unsigned char *b = v[i];
      EXPECT(b[0] == 0x5a && b[size - 1] == 0x5a);
    }
  }
  EXPECT(pm_check() == 0);
  for (unsigned i = 0, k = 0; i < n; i++)
    if (i % 16 == 0 || k++ < got) pm_free(v[i]);
  pm_free(v);
  EXPECT(pm_check() == 0);
}

/* A class a program asks for once touches a page of its region, not a full
 * carve; the carves then double up to PMI_MEDIUM_CARVE_BYTES.  The head
 * region of a class with nothing live goes back whole on growth elsewhere
 * (it never holds the 64 KiB a region with live blocks needs).  And pages
 * coming back to the regions (dormant blocks woken) take the empty pools'
 * pages as fresh carves do. */
static void test_first_carve(pmi_heap *heap) {
  const size_t size = 1216;                     /* a class no other test uses */
  unsigned c = pmi_medium_class(size);
  EXPECT(pmi_medium_class_size(c) == size && heap->usedmedium[c] == &pmi_medium_sentinel);
  void *p = pm_malloc(size);
  pmi_medium *m = pmi_medium_of(p);
  char *span = pmi_medium_base(m) + PMI_MEDIUM_HEADER + pmi_medium_slow(m)->colour;
  EXPECT(m->ncarved == 4096 / size);
  void *more[16];
  for (unsigned i = 0; i < 16; i++) more[i] = pm_malloc(size);
  /* carves of 3, 3, 6, 12, then the full 13 */
  EXPECT(m->ncarved == 3 + 3 + 6 + 12);
  for (unsigned i = 0; i < 16; i++) pm_free(more[i]);
  pm_free(p);
  EXPECT(heap->usedmedium[c] == m && pmi_medium_nused(m) == 0 && resident(span, PMI_MEDIUM_CARVE_BYTES) > 1);

  /* 3 MiB of fresh pool pages (two looks at least): the empty head goes
   * back to uncarved, its pages to the OS. */
  size_t nsmall = (3u << 20) / 208;
  void **w = pm_malloc(nsmall * sizeof *w);
  for (size_t i = 0; i < nsmall; i++) w[i] = pm_malloc(208);
  EXPECT(m->ncarved == 0 && m->freeblock == PMI_LIST_END && resident(span, PMI_MEDIUM_CARVE_BYTES) == 0);
  EXPECT(heap->usedmedium[c] == m);
  EXPECT(pm_check() == 0);

  /* 2 MiB of medium blocks made dormant; then empty pools (one block in
   * 256 kept, so that their arenas stay); then the dormant blocks woken:
   * the pools' pages go back.  The regions' capacities go by their
   * addresses (the colour window): where m's is the largest, the blocks
   * spill into a third region, whose fresh carves then come before the
   * wakes, each under 1 MiB; the pools' pages go back all the same. */
  unsigned n = 2 * (m->capacity - 1);
  void **v = pm_malloc(n * sizeof *v);
  for (unsigned i = 0; i < n; i++) {
    v[i] = pm_malloc(size);
    memset(v[i], 7, size);
  }
  for (unsigned i = 0; i < n; i++)
    if (i % 16 != 0) pm_free(v[i]);
  pmi_medium_purge_idle(heap, pmi_os_now_ms(), true, NULL);
  EXPECT(pmi_medium_slow(m)->ndormant > m->capacity / 2);
  for (size_t i = 0; i < nsmall; i++)
    if (i % 256 != 0) pm_free(w[i]);
  uint64_t pool_bytes = atomic_load(&pmi_purge_stats.purge_bytes);
  for (unsigned i = 0; i < n; i++)
    if (i % 16 != 0) v[i] = pm_malloc(size);
  /* (most of them: a region of the class waiting in the reserve with its
   * pages serves before a dormant block is woken) */
  EXPECT(pmi_medium_slow(m)->ndormant < m->capacity / 4);
  EXPECT(atomic_load(&pmi_purge_stats.purge_bytes) >= pool_bytes + (1u << 20));
  EXPECT(pm_check() == 0);
  for (unsigned i = 0; i < n; i++) pm_free(v[i]);
  pm_free(v);
  for (size_t i = 0; i < nsmall; i += 256) pm_free(w[i]);
  pm_free(w);
  EXPECT(pm_check() == 0);
}

/* A malloc/free loop on a head region whose list holds one block (the
 * other blocks of its carve are live): popping that last block carves the
 * next run at once, so the loop stays on the fast paths, aligned_alloc's
 * included (whose fast path leaves the last block to the slow path). */
static void test_last_block_loop(pmi_heap *heap) {
  const size_t size = 4096;
  void *kept[64];
  unsigned nkept = 0;
  kept[nkept++] = pm_malloc(size);
  pmi_medium *m = pmi_medium_of(kept[0]);
  /* live blocks until the list is one block long, with more to carve */
  while (nkept < 64 && !(m->freeblock != PMI_LIST_END && pmi_link_get(m->freeblock) == PMI_LIST_END && m->ncarved < m->capacity)) {
    kept[nkept++] = pm_malloc(size);
    EXPECT(pmi_medium_of(kept[nkept - 1]) == m);
  }
  EXPECT(nkept < 64);
  uint64_t slow = heap->counters.malloc_medium;
  for (int i = 0; i < 100; i++) {
    void *q = pm_aligned_alloc(size, 64);
    EXPECT(pmi_medium_of(q) == m && m->freeblock != PMI_LIST_END);
    pm_free(q);
    q = pm_malloc(size);
    EXPECT(pmi_medium_of(q) == m && m->freeblock != PMI_LIST_END);
    pm_free(q);
  }
  EXPECT(heap->counters.malloc_medium == slow);
  for (unsigned i = 0; i < nkept; i++) pm_free(kept[i]);
  EXPECT(pm_check() == 0);
}

/* Lending (medium.c): a class with no region of its own borrows the head
 * of one of the next classes that has a free block, and its malloc/free
 * loop runs on the fast path there; the loan ends with the lender's last
 * free block, and the class then gets a region of its own; a class whose
 * blocks are 4 KiB-aligned borrows from none less aligned.  In a thread of
 * its own, so that its heap is fresh (the others' took every class). */
static void *lending(void *arg) {
  (void)arg;
  pm_free(pm_malloc(1));
  pmi_heap *heap = pmi_heap_tls;
  const size_t csize = 2176, lsize = 2304;   /* classes 29 and 31: 5.9 % apart, both 128-byte aligned */
  unsigned c = pmi_medium_class(csize), l = pmi_medium_class(lsize);
  EXPECT(pmi_medium_class_size(c) == csize && pmi_medium_class_size(l) == lsize && pmi_medium_lends(l, c));
  EXPECT(!pmi_medium_lends(c, l) && !pmi_medium_lends(pmi_medium_class(5120), pmi_medium_class(4096)));
  EXPECT(heap->usedmedium[c] == &pmi_medium_sentinel && heap->usedmedium[l] == &pmi_medium_sentinel);
  void *a = pm_malloc(lsize), *b = pm_malloc(lsize);
  pmi_medium *d = pmi_medium_of(a);
  pm_free(b);
  EXPECT(heap->usedmedium[l] == d && d->freeblock != PMI_LIST_END);
  size_t regions = heap->nmediums;
  uint64_t slow = heap->counters.malloc_medium;
  void *p = pm_malloc(csize);
  EXPECT(pmi_medium_of(p) == d && pm_malloc_usable_size(p) == lsize && heap->nmediums == regions);
  EXPECT(heap->usedmedium[c] == &pmi_medium_sentinel && heap->medfront[c] == d);
  size_t usable = pm_malloc_usable_size(p);
  memset(p, 0x5A, usable);   /* every usable byte is writable */
  EXPECT(pm_check() == 0);
  pm_free(p);
  for (int i = 0; i < 100; i++) {
    void *q = pm_malloc(csize);
    EXPECT(pmi_medium_of(q) == d);
    pm_free(q);
  }
  EXPECT(heap->counters.malloc_medium == slow + 1);   /* the loan's first block only */
  /* the lender's free blocks, to the last: the loan ends, and the next block
   * comes from a region of the class's own */
  void *v[64];
  unsigned n = 0;
  while (heap->medfront[c] == d && n < 64) v[n++] = pm_malloc(csize);
  EXPECT(n < 64 && d->freeblock == PMI_LIST_END && heap->medfront[c] == &pmi_medium_sentinel);
  for (unsigned i = 0; i < n; i++) EXPECT(pmi_medium_of(v[i]) == d);
  void *own = pm_malloc(csize);
  pmi_medium *m = pmi_medium_of(own);
  EXPECT(m != d && m->mclass == c && heap->usedmedium[c] == m && heap->medfront[c] == m);
  EXPECT(pm_check() == 0);
  pm_free(own);
  for (unsigned i = 0; i < n; i++) pm_free(v[i]);
  /* a loan ends when its lender stops being the head: 2240, between the
   * two, borrows d; the blocks of d's own class then take all of d, and the
   * region after it becomes the head */
  unsigned c2 = pmi_medium_class(2240);
  void *p2 = pm_malloc(2240);
  EXPECT(pmi_medium_of(p2) == d && heap->medfront[c2] == d && heap->usedmedium[c2] == &pmi_medium_sentinel);
  pm_free(p2);
  void **all = pm_malloc((d->capacity + 1) * sizeof *all);
  unsigned k = 0;
  do all[k] = pm_malloc(lsize);
  while (pmi_medium_of(all[k++]) == d && k <= d->capacity);
  pmi_medium *d2 = pmi_medium_of(all[k - 1]);
  EXPECT(d2 != d && heap->usedmedium[l] == d2 && d->state == PMI_MEDIUM_FULL);
  EXPECT(heap->medfront[c2] == &pmi_medium_sentinel);
  EXPECT(pm_check() == 0);
  pm_free(all[--k]);   /* d2's free block, which it lends */
  p2 = pm_malloc(2240);
  EXPECT(pmi_medium_of(p2) == d2 && heap->medfront[c2] == d2);
  pm_free(p2);
  for (unsigned i = 0; i < k; i++) pm_free(all[i]);
  pm_free(all);
  pm_free(a);
  /* 8192 (4 KiB-aligned) has lenders within a quarter (8448 .. 9984), none
   * aligned as much: aligned_alloc(4096, 8192) gets a region of its own */
  unsigned c8 = pmi_medium_class(8192), l8 = pmi_medium_class(8448);
  void *x = pm_malloc(8448), *y = pm_malloc(8448);
  pm_free(y);
  EXPECT(heap->usedmedium[c8] == &pmi_medium_sentinel && heap->usedmedium[l8]->freeblock != PMI_LIST_END);
  void *al = pm_aligned_alloc(4096, 8192);
  EXPECT(((uintptr_t)al & 4095) == 0 && pmi_medium_of(al)->mclass == c8 && heap->medfront[c8] == pmi_medium_of(al));
  pm_free(al);
  pm_free(x);
  EXPECT(pm_check() == 0);
  return NULL;
}

static void *run(void *arg) {
  pm_free(pm_malloc(1));                        /* create this thread's heap */
  pmi_heap *heap = pmi_heap_tls;
  EXPECT(heap != &pmi_heap_empty);
  test_class_sizes();
  test_class_table();
  test_colour(heap);
  test_colour_reuse(heap);
  test_aligned_table();
  test_head_bias(heap);
  test_largest_class_loop(heap);
  test_last_block_loop(heap);
  test_purge_pages(heap);
  test_first_carve(heap);
  test_reclaim_budget(heap);
  test_colour_aligned();
  pthread_t t;
  pthread_create(&t, NULL, lending, NULL);
  pthread_join(t, NULL);
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
