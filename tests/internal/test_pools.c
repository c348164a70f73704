/* The pool and arena machinery through its internal interface: pool states
 * and transitions, fullest-first arena choice, the retained allocation pool,
 * and an emptied arena going back to the OS.  Runs in a fresh thread so that
 * it owns a heap nobody else has touched. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "core/internal.h"

static int failures;
#define EXPECT(cond)                                                   \
  do {                                                                 \
    if (!(cond)) {                                                     \
      fprintf(stderr, "%s:%d: expected %s\n", __FILE__, __LINE__, #cond); \
      failures++;                                                      \
    }                                                                  \
  } while (0)

static pmi_pool *pool_of(void *p) { return pmi_pool_of(pmi_arena_of(p), p); }
static bool is_mapped(void *p) { return msync(p, 4096, MS_ASYNC) == 0 || errno != ENOMEM; }

static void test_pool_states(pmi_heap *heap) {
  const size_t size = 256;                 /* class 15: 16 blocks per pool */
  unsigned c = pmi_size_class(size);
  void *blocks[16];
  blocks[0] = pm_malloc(size);
  pmi_pool *pool = pool_of(blocks[0]);
  EXPECT(pool->state == PMI_POOL_USED && heap->usedpools[c] == pool);
  /* The head of usedpools counts one use more than it has blocks out. */
  EXPECT(pool->capacity == 16 && pool->used == 2 && pmi_pool_nused(heap, pool) == 1);
  /* Carving: the whole pool, by its first malloc. */
  EXPECT(pool->ncarved == 16 && PMI_CARVE_BYTES / size >= 16);
  for (int i = 1; i < 16; i++) {
    blocks[i] = pm_malloc(size);
    EXPECT(pool_of(blocks[i]) == pool);
  }
  /* blocks[15] was its last: the full pool left usedpools in that malloc,
   * and a fresh pool is the head already (alloc.c, drained_fresh), not
   * carved until a malloc needs it. */
  pmi_pool *pool2 = heap->usedpools[c];
  EXPECT(pool2 != pool && pool->state == PMI_POOL_FULL && pool->freeblock == PMI_LIST_END && pool->ncarved == 16);
  EXPECT(pool2->state == PMI_POOL_USED && pool2->ncarved == 0 && pool2->freeblock == PMI_LIST_END);
  EXPECT(pool->used == 16 && pool2->used == 1);   /* the bias moved with the head */
  void *next = pm_malloc(size);
  EXPECT(pool_of(next) == pool2 && pool2->used == 2 && pool2->ncarved == 16);
  EXPECT(pm_check() == 0);
  /* FULL -> USED on the first free: to the end of usedpools, behind the
   * head, which keeps serving (pool.c, pmi_usedpools_append). */
  pm_free(blocks[3]);
  EXPECT(pool->state == PMI_POOL_USED && heap->usedpools[c] == pool2 && pool2->nextpool == pool &&
         pool->prevpool == pool2 && heap->usedlast[c] == pool && pool->used == 15);
  void *more = pm_malloc(size);
  EXPECT(pool_of(more) == pool2);
  pm_free(more);
  EXPECT(pm_check() == 0);
  /* USED -> EMPTY: pool is not the head; it stays on usedpools as a spare
   * (so that the next batch does not take and set up a pool again) ... */
  pmi_arena *arena = pmi_arena_of(pool);
  uint32_t nfree = arena->nfreepools;
  uint64_t emptied = heap->counters.pools_emptied;
  unsigned nspare = heap->nspare;
  for (int i = 0; i < 16; i++)
    if (i != 3) pm_free(blocks[i]);
  EXPECT(pool->state == PMI_POOL_USED && pool->used == 0 && pool2->nextpool == pool);
  EXPECT(heap->nspare == nspare + 1 && arena->nfreepools == nfree);
  EXPECT(heap->counters.pools_emptied == emptied);
  EXPECT(pm_check() == 0);
  /* ... until malloc_trim (or thread exit) sends the spares to their arenas. */
  pmi_heap_lock(heap);
  pmi_heap_release_spares(heap);
  pmi_heap_unlock(heap);
  EXPECT(pool->state == PMI_POOL_EMPTY && arena->nfreepools == nfree + 1 && heap->nspare == 0);
  EXPECT(heap->counters.pools_emptied == emptied + 1);
  EXPECT(arena->freepools == pool && heap->usedlast[c] == pool2);
  EXPECT(pm_check() == 0);
  /* pool2 drained too: a fresh head again, and pool2's first free links
   * it behind that one, which keeps serving. */
  void *rest[16];
  unsigned n = 0;
  while (heap->usedpools[c] == pool2 && n < 16) rest[n++] = pm_malloc(size);   /* drains pool2 */
  pmi_pool *pool3 = heap->usedpools[c];
  EXPECT(n == 15 && pool2->state == PMI_POOL_FULL && pool3 != pool2 && pool_of(rest[n - 1]) == pool2);
  EXPECT(pool3->state == PMI_POOL_USED && pool3->used == 1);   /* (pool again, maybe: its list kept) */
  unsigned n3 = 0;
  void *rest3[1];
  pm_free(next);   /* pool2's first free */
  EXPECT(heap->usedpools[c] == pool3 && pool3->nextpool == pool2 && pool2->state == PMI_POOL_USED &&
         heap->usedlast[c] == pool2);
  rest3[n3++] = pm_malloc(size);
  EXPECT(pool_of(rest3[0]) == pool3);
  EXPECT(pm_check() == 0);
  for (unsigned i = 0; i < n; i++) pm_free(rest[i]);
  for (unsigned i = 0; i < n3; i++) pm_free(rest3[i]);
  EXPECT(pm_check() == 0);
}

/* The head's transition at the pop of its last block, as pymalloc's
 * (alloc.c, desc_pop_last): the malloc that takes the last block makes
 * the next pool with a free block the head, or a fresh one, so that the
 * next malloc finds a ready head. */
static void test_head_drained(pmi_heap *heap) {
  const size_t size = 480;   /* class 29: 8 blocks per pool, carved at once */
  unsigned c = pmi_size_class(size);
  EXPECT(heap->usedpools[c] == &pmi_pool_sentinel);
  void *a[8], *b[8];
  uint64_t inits0 = heap->counters.pools_initialised;
  a[0] = pm_malloc(size);
  pmi_pool *pa = pool_of(a[0]);
  /* the whole pool carved by its first malloc */
  EXPECT(pa->capacity == 8 && pa->ncarved == 8 && pa->freeblock != PMI_LIST_END && pa->used == 2);
  for (int i = 1; i < 8; i++) a[i] = pm_malloc(size);
  EXPECT(pool_of(a[7]) == pa);
  /* a[7] was pa's last block and no pool follows it: a fresh one is the
   * head already, its page not carved yet, and pa is FULL, its bias gone */
  pmi_pool *pb = heap->usedpools[c];
  EXPECT(pb != pa && pb->state == PMI_POOL_USED && pb->freeblock == PMI_LIST_END && pb->ncarved == 0 &&
         pb->used == 1 && pb->nextpool == NULL && heap->usedlast[c] == pb);
  EXPECT(pa->state == PMI_POOL_FULL && pa->used == 8 && heap->counters.pools_initialised == inits0 + 2);
  EXPECT(pm_check() == 0);
  b[0] = pm_malloc(size);
  EXPECT(pool_of(b[0]) == pb && pb->ncarved == 8 && pb->used == 2);
  pm_free(a[2]);
  pm_free(a[5]);   /* pa back behind the head, with two free blocks */
  EXPECT(pa->state == PMI_POOL_USED && pb->nextpool == pa && pa->used == 6);
  for (int i = 1; i < 8; i++) b[i] = pm_malloc(size);
  /* b[7] was pb's last block: pa is the head before another malloc, and pb
   * waits behind it, still USED, with its bias gone */
  EXPECT(pool_of(b[7]) == pb && pb->state == PMI_POOL_USED && pb->used == 8 && pb->freeblock == PMI_LIST_END);
  EXPECT(heap->usedpools[c] == pa && pa->prevpool == NULL && pa->used == 7 && pa->nextpool == pb &&
         pb->prevpool == pa && pb->nextpool == NULL && heap->usedlast[c] == pb);
  EXPECT(pm_check() == 0);
  /* a free into the waiting pool takes the fast path: nothing relinks it */
  uint64_t inits = heap->counters.pools_initialised;
  pm_free(b[6]);
  EXPECT(pb->state == PMI_POOL_USED && pb->used == 7 && pb->freeblock == b[6] && heap->usedlast[c] == pb &&
         pa->nextpool == pb && heap->counters.pools_initialised == inits);
  void *x = pm_malloc(size), *y = pm_malloc(size);
  EXPECT((x == a[2] || x == a[5]) && (y == a[2] || y == a[5]) && x != y);
  a[2] = x;
  a[5] = y;
  /* y was pa's last block: pb, with its one free block, serves; pa waits behind it */
  EXPECT(heap->usedpools[c] == pb && pb->nextpool == pa && heap->usedlast[c] == pa && pa->state == PMI_POOL_USED);
  void *z = pm_malloc(size);
  EXPECT(z == b[6] && pb->freeblock == PMI_LIST_END);
  EXPECT(pm_check() == 0);
  for (int i = 0; i < 8; i++) {
    pm_free(a[i]);
    pm_free(b[i]);
  }
  EXPECT(pm_check() == 0);
}

/* A malloc/free loop at a pool's brim: the head's one free block is its
 * last, so that every malloc of the loop would drain the head with no pool
 * behind it.  The first drain (the fill's) makes a fresh pool the head
 * (alloc.c, drained_fresh), and the loop runs on the fresh pool's fast
 * path: one pool set up in all, not one slow call a malloc. */
static void test_brim_loop(pmi_heap *heap) {
  const size_t size = 240;   /* class 14: 17 blocks per pool */
  unsigned c = pmi_size_class(size);
  EXPECT(heap->usedpools[c] == &pmi_pool_sentinel);
  uint64_t inits = heap->counters.pools_initialised;
  void *a[17];
  for (int i = 0; i < 17; i++) a[i] = pm_malloc(size);
  pmi_pool *pa = pool_of(a[0]);
  EXPECT(pa->capacity == 17 && pool_of(a[16]) == pa && pa->freeblock == PMI_LIST_END && pa->ncarved == 17);
  /* the drain, by a[16]: a fresh head at once, pa FULL */
  pmi_pool *pb = heap->usedpools[c];
  EXPECT(pb != pa && pa->state == PMI_POOL_FULL && pb->state == PMI_POOL_USED &&
         heap->counters.pools_initialised == inits + 2);
  pm_free(a[16]);              /* pa behind pb */
  EXPECT(pa->state == PMI_POOL_USED && pb->nextpool == pa && heap->usedlast[c] == pa);
  EXPECT(pm_check() == 0);
  uint64_t slow = heap->counters.malloc_small;
  uint64_t fast = heap->front_mallocs[c];
  void *p;
  for (int i = 0; i < 1000; i++) {
    p = pm_malloc(size);
    EXPECT(pool_of(p) == pb);
    pm_free(p);
  }
  /* every one of the loop's mallocs on the fast path, the fresh pool's carve aside */
  EXPECT(heap->counters.malloc_small - slow <= 1 && heap->front_mallocs[c] - fast >= 999);
  EXPECT(heap->counters.pools_initialised == inits + 2);
  EXPECT(pm_check() == 0);
  for (int i = 0; i < 16; i++) pm_free(a[i]);
  EXPECT(pm_check() == 0);
}

/* A malloc/free loop of one block keeps its pool: no pool round trip. */
static void test_retained_pool(pmi_heap *heap) {
  uint64_t inits = heap->counters.pools_initialised;
  for (int i = 0; i < 100000; i++) {
    void *p = pm_malloc(48);
    pm_free(p);
  }
  EXPECT(heap->counters.pools_initialised <= inits + 1);
  EXPECT(pm_check() == 0);
}

/* New pools come from the arena with the fewest free pools. */
static void test_fullest_first(pmi_heap *heap) {
  const size_t size = 512;                      /* 8 blocks per pool */
  const int per_arena = PMI_ARENA_POOLS * 8;
  const int n = per_arena * 3;
  void **b = calloc((size_t)n, sizeof *b);
  for (int i = 0; i < n; i++) b[i] = pm_malloc(size);
  /* Gather the arenas, in the order they were first used. */
  pmi_arena *arenas[8];
  int narenas = 0;
  for (int i = 0; i < n; i++) {
    pmi_arena *a = pmi_arena_of(b[i]);
    int seen = 0;
    for (int j = 0; j < narenas; j++) seen |= arenas[j] == a;
    if (!seen && narenas < 8) arenas[narenas++] = a;
  }
  EXPECT(narenas >= 3);
  pmi_arena *a1 = arenas[0], *a2 = arenas[1];
  /* Empty 10 pools of a1 and 3 pools of a2 (free every block of them). */
  int emptied1 = 0, emptied2 = 0;
  for (int i = 0; i < n; i += 8) {
    pmi_arena *a = pmi_arena_of(b[i]);
    int *count = a == a1 ? &emptied1 : a == a2 ? &emptied2 : NULL;
    int want = a == a1 ? 10 : 3;
    if (count == NULL || *count >= want || pool_of(b[i]) != pool_of(b[i + 7])) continue;
    for (int j = 0; j < 8; j++) {
      pm_free(b[i + j]);
      b[i + j] = NULL;
    }
    (*count)++;
  }
  EXPECT(emptied1 == 10 && emptied2 == 3);
  EXPECT(pm_check() == 0);
  pmi_heap_lock(heap);   /* the emptied pools are spares until trimmed */
  pmi_heap_release_spares(heap);
  pmi_heap_unlock(heap);
  EXPECT(pm_check() == 0);
  /* usable_arenas: fullest first. */
  EXPECT(heap->usable_arenas == a2);
  EXPECT(a2->nextarena == a1);
  EXPECT(heap->nfp2lasta[a2->nfreepools] == a2);
  /* The next fresh pool of another class comes from a2. */
  void *x = pm_malloc(400);
  EXPECT(pmi_arena_of(x) == a2);
  pm_free(x);
  for (int i = 0; i < n; i++) pm_free(b[i]);
  free(b);
  EXPECT(pm_check() == 0);
}

/* An arena whose pools are all empty is unmapped once the reserve is full. */
static void test_arena_returned(pmi_heap *heap) {
  long saved_reserve = pmi_option(arena_reserve), saved_decay = pmi_option(arena_decay_ms);
  pmi_option(arena_reserve) = 0;
  pmi_option(arena_decay_ms) = 0;
  pmi_arena_release_reserve(0);
  const int n = PMI_ARENA_POOLS * 8 * 2;        /* two arenas of 512-byte blocks */
  void **b = calloc((size_t)n, sizeof *b);
  for (int i = 0; i < n; i++) b[i] = pm_malloc(512);
  pmi_arena *first = pmi_arena_of(b[0]);
  EXPECT(pmi_arenamap_contains(first) && is_mapped(first));
  uint64_t unmapped = heap->counters.arenas_unmapped;
  for (int i = 0; i < n; i++) pm_free(b[i]);
  pmi_heap_lock(heap);
  pmi_heap_release_retained(heap);
  pmi_heap_unlock(heap);
  EXPECT(heap->counters.arenas_unmapped >= unmapped + 2);
  EXPECT(!pmi_arenamap_contains(first));
  EXPECT(!is_mapped(first));
  EXPECT(heap->narenas == 0 || heap->arenas != first);
  /* With a reserve, an emptied arena is kept and reused. */
  pmi_option(arena_reserve) = 2;
  for (int i = 0; i < n; i++) b[i] = pm_malloc(512);
  for (int i = 0; i < n; i++) pm_free(b[i]);
  pmi_heap_lock(heap);
  pmi_heap_release_retained(heap);
  pmi_heap_unlock(heap);
  EXPECT(pmi_arena_reserve_count() == 2);
  uint64_t reused = heap->counters.arenas_reused;
  void *p = pm_malloc(512);
  EXPECT(heap->counters.arenas_reused == reused + 1);
  pm_free(p);
  EXPECT(pm_check() == 0);
  free(b);
  pmi_option(arena_reserve) = saved_reserve;
  pmi_option(arena_decay_ms) = saved_decay;
}

/* After a fork, a heap whose thread was stopped inside malloc or free is
 * repaired from the live bitmaps: here the half-done operations are made by
 * hand, as a fork could leave them. */
static void test_fork_repair(pmi_heap *heap) {
  const size_t size = 256;   /* 16 blocks per pool */
  void *a[16], *b[3];
  for (int i = 0; i < 16; i++) a[i] = pm_malloc(size);
  for (int i = 0; i < 3; i++) b[i] = pm_malloc(size);   /* a's pool is now FULL */
  pmi_pool *pa = pool_of(a[0]), *pb = pool_of(b[0]);
  EXPECT(pa->state == PMI_POOL_FULL && pb->state == PMI_POOL_USED && pa != pb);
  pmi_heap_lock(heap);
  /* a malloc stopped after taking a block off pb's list, before counting it */
  pmi_block *taken = pb->freeblock;
  pb->freeblock = pmi_link_get(taken);
  /* a free stopped after clearing b[2]'s live bit, before pushing it */
  unsigned u = pmi_block_units(b[2]);
  *pmi_live_word(pb, u) &= ~pmi_live_bit(u);
  /* every block of the full pool freed, as far as the bitmap knows */
  memset(pa->live, 0, sizeof pa->live);
  EXPECT(pmi_check_heap(heap, 0) > 0);
  heap->repair = 1;
  pmi_heap_repair_locked(heap);
  EXPECT(heap->repair == 0);
  EXPECT(pmi_check_heap(heap, 1) == 0);
  pmi_heap_unlock(heap);
  EXPECT(pmi_pool_nused(heap, pb) == 2);      /* b[0], b[1] */
  /* Read through volatile: pa is computed from a pointer that pm_malloc
   * returned (declared malloc-like), so the compiler may assume no call
   * could have changed what it points at. */
  EXPECT(*(volatile uint8_t *)&pa->state != PMI_POOL_FULL);   /* back on usedpools, or to its arena */
  pm_free(b[0]);
  pm_free(b[1]);
  EXPECT(pm_check() == 0);
}

/* nkept (types.h): the empty pools of an arena that keep their page; a
 * purge gives those back and leaves nkept 0, and a purge of an arena with
 * none reads no descriptor of it. */
static void test_kept_pages(pmi_heap *heap) {
  const size_t size = 256;   /* 16 blocks per pool */
  enum { POOLS = 6 };
  void *b[POOLS * 16];
  pmi_pool *pools[POOLS * 16];
  for (int i = 0; i < POOLS * 16; i++) pools[i] = pool_of(b[i] = pm_malloc(size));
  for (int i = 0; i < POOLS * 16; i++) pm_free(b[i]);
  pmi_heap_lock(heap);
  pmi_heap_release_spares(heap);
  pmi_heap_unlock(heap);
  pmi_pool *p0 = NULL;   /* one of them back in its arena (not the head, which stays) */
  for (int i = 0; i < POOLS * 16 && p0 == NULL; i++)
    if (pools[i]->state == PMI_POOL_EMPTY) p0 = pools[i];
  EXPECT(p0 != NULL);
  if (p0 == NULL) return;
  pmi_arena *arena = pmi_arena_of(p0);
  unsigned kept = 0;
  for (unsigned i = PMI_FIRST_POOL; i < PMI_POOLS_PER_ARENA; i++) {
    pmi_pool *p = pmi_arena_pool(arena, i);
    kept += p->state == PMI_POOL_EMPTY && p->ncarved != 0;
  }
  EXPECT(p0->state == PMI_POOL_EMPTY && p0->ncarved != 0);
  EXPECT(kept >= 1 && arena->nkept == kept);
  EXPECT(pm_check() == 0);
  /* a count that disagrees with the descriptors is a fault the check names */
  bool pending = false;
  pmi_heap_lock(heap);
  arena->nkept++;
  EXPECT(pmi_check_heap(heap, 0) > 0);
  arena->nkept--;
  size_t bytes = pmi_purge_heap_pools(heap, true, &pending);
  EXPECT(bytes >= (size_t)kept * PMI_POOL_SIZE && arena->nkept == 0 && p0->ncarved == 0);
  EXPECT(pmi_purge_heap_pools(heap, true, &pending) == 0);   /* nothing kept anywhere */
  pmi_heap_unlock(heap);
  EXPECT(pm_check() == 0);
  /* a purged pool taken again leaves the count alone; back with its carve, it counts */
  void *again = pm_malloc(size);
  EXPECT(arena->nkept == 0);
  pmi_pool *pa = pool_of(again);
  pm_free(again);
  pmi_heap_lock(heap);
  pmi_heap_release_spares(heap);
  pmi_heap_unlock(heap);
  EXPECT(pm_check() == 0);
  EXPECT(pa->state != PMI_POOL_EMPTY || pmi_arena_of(pa)->nkept >= 1);
}

static void *run(void *arg) {
  pm_free(pm_malloc(1));                        /* create this thread's heap */
  pmi_heap *heap = pmi_heap_tls;
  EXPECT(heap != &pmi_heap_empty);
  test_pool_states(heap);
  test_head_drained(heap);
  test_brim_loop(heap);
  test_retained_pool(heap);
  test_fullest_first(heap);
  test_arena_returned(heap);
  test_fork_repair(heap);
  test_kept_pages(heap);
  return NULL;
}

int main(void) {
  /* Starting the purge thread allocates (the C library's thread setup), in
   * the middle of the exact counts below. */
  pmi_process_init();
  pmi_option(purge_thread) = 0;
  pthread_t t;
  pthread_create(&t, NULL, run, NULL);
  pthread_join(t, NULL);
  EXPECT(pm_check() == 0);
  printf("test_pools: %s\n", failures ? "FAILED" : "ok");
  return failures != 0;
}
