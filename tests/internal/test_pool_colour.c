/* Pool colour (internal.h): a fresh pool of each class starts carving at a
 * block of its own, so the first blocks of the 32 classes (the ones a
 * malloc/free loop reuses) spread over the L1 cache sets instead of all
 * sitting at page offset 0; and carving in colour order, wrapping round the
 * page, still hands out every block of the pool exactly once before it is
 * full, and a block not yet carved is still reported as never handed out. */
#include <stdio.h>
#include <string.h>

#include "core/internal.h"
#include "pmtest.h"

static pmi_pool *pool_of(void *p) { return pmi_pool_of(pmi_arena_of(p), p); }
static unsigned l1_set(const void *p) { return (unsigned)((uintptr_t)p >> 6) & 63; }

enum { MAX_BLOCKS = PMI_POOL_SIZE / 16 };
static void *blocks[PMI_NCLASSES][MAX_BLOCKS + 1];

int main(void) {
  pmi_process_init();
  pmi_option(purge_thread) = 0;
  pm_free(pm_malloc(1));                        /* create this thread's heap */
  pmi_heap *heap = pmi_heap_tls;
  pm_free(pm_malloc(1));

  /* The first block of a fresh pool of every class (class 0's pool served
   * the two blocks above and has its first block back at the head of its
   * list). */
  unsigned per_set[64] = {0}, sets = 0, wrapped = 0;
  for (unsigned c = 0; c < PMI_NCLASSES; c++) {
    size_t size = pmi_class_size(c);
    void *p = blocks[c][0] = pm_malloc(size);
    pmi_pool *pool = pool_of(p);
    char *base = pmi_pool_base(pool);
    CHECK(pool->state == PMI_POOL_USED && heap->usedpools[c] == pool && pool->szidx == c);
    CHECK(p == base + (size_t)pmi_pool_colour(pool) * size);   /* carving starts at the colour */
    sets += per_set[l1_set(p)]++ == 0;
    if (pmi_pool_colour(pool) + pool->ncarved > pool->capacity) wrapped++;   /* the first run went on at block 0 */
    /* the block carved last is not carved yet: never handed out */
    void *last = base + (size_t)pmi_pool_carved_index(pool, pool->capacity - 1) * size;
    if (pool->ncarved < pool->capacity) {
      const char *fault = pmi_block_fault_owned(pool, last);
      CHECK(fault != NULL && strstr(fault, "never handed out") != NULL);
    }
  }
  unsigned most = 0;
  for (unsigned s = 0; s < 64; s++) most = per_set[s] > most ? per_set[s] : most;
  /* At block 0 they would all be in set 0 (32 lines for its 12 ways).
   * Colours spread the 32 pools' first blocks over at least 16 sets, at
   * most 4 to a set. */
  printf("first blocks of the 32 classes: %u L1 sets, at most %u to a set\n", sets, most);
  CHECK(sets >= 16 && most <= 4);
  CHECK(wrapped > 0);
  CHECK(pm_check() == 0);

  /* Every class: the pool hands out each of its blocks once, then is full. */
  for (unsigned c = 0; c < PMI_NCLASSES; c++) {
    size_t size = pmi_class_size(c);
    pmi_pool *pool = pool_of(blocks[c][0]);
    char *base = pmi_pool_base(pool);
    unsigned capacity = pool->capacity;
    static unsigned char seen[MAX_BLOCKS];
    memset(seen, 0, sizeof seen);
    seen[((char *)blocks[c][0] - base) / size] = 1;
    for (unsigned i = 1; i < capacity; i++) {
      char *p = blocks[c][i] = pm_malloc(size);
      CHECK(pool_of(p) == pool && (size_t)(p - base) % size == 0);
      unsigned k = (unsigned)((size_t)(p - base) / size);
      CHECK(k < capacity && !seen[k]);
      if (k < capacity) seen[k] = 1;
    }
    CHECK(pool->freeblock == NULL && pool->ncarved == capacity);
    blocks[c][capacity] = pm_malloc(size);       /* the next pool */
    CHECK(pool_of(blocks[c][capacity]) != pool && pool->state == PMI_POOL_FULL);
    CHECK(pm_check() == 0);
    for (unsigned i = 0; i <= capacity; i++) pm_free(blocks[c][i]);
    CHECK(pm_check() == 0);
  }
  return pmt_done("test_pool_colour");
}
