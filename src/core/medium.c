/* medium.c: the medium classes, 513 bytes to 128 KiB (types.h draws them).
 *
 * A medium region is 1 MiB, 1 MiB-aligned, and serves one medium class: its
 * first three pages hold the header (descriptor, its slow-path fields just
 * below it in the first page: types.h, pmi_medium_slow; the live bitmap
 * after it), the rest is blocks, carved from the untouched tail a run at a
 * time.  It is a pool
 * scaled up, and lives the same life: USED on its heap's usedmedium[class]
 * list, FULL on no list, EMPTY in a process-wide reserve once its last block
 * is freed (unless it is the region its class is allocating from, which
 * stays so that a malloc/free loop never pays the round trip).  A heap owns
 * its regions as it owns its arenas: the owner allocates and frees with
 * plain loads and stores, other threads free through the same remote stacks
 * as pool blocks (free.c's pmi_remote_free; the owner takes them back in
 * pmi_medium_free_collected), and abandonment, adoption and fork repair
 * treat regions as they treat arenas.
 *
 *    region (1 MiB aligned)
 *    +--------+--------+---------+---------+-- ... --+---------+------+
 *    | header | colour | block 0 | block 1 |         | block k | tail |
 *    +--------+--------+---------+---------+-- ... --+---------+------+
 *     12 KiB   < 64 KiB  size      size                size     never touched
 *
 * (the colour, never touched either, spreads the regions' first blocks and
 * their live words over the cache sets: colour_of below)
 *
 * Why a region per class, not pages of a shared heap: a block's class, its
 * descriptor and its owner are found from its address by one mask, the free
 * fast path is the pool's (a bit test, a push), and a region never needs
 * coalescing.  What it costs: 1 MiB of address space per class a thread
 * uses (its untouched pages cost no memory).
 *
 * Empty regions wait in the reserve: (POOLMALLOC_ARENA_RESERVE / 4) of them
 * (they are four arenas' worth) stay as long as they like, the others are
 * unmapped after POOLMALLOC_ARENA_DECAY_MS; malloc_trim empties it. */
#include <errno.h>
#include <string.h>

#include "core/internal.h"

/* Every empty usedmedium[] slot points here: no free block (freeblock
 * PMI_LIST_END, written when the first heap is made, heap.c), no capacity.
 * All zero (its state 0 is no region's), so that it lies in .bss: its 8 KiB
 * bitmap is never read, and costs no page of a process that barely
 * allocates. */
struct pmi_medium_sentinel_header pmi_medium_sentinel_header;
_Static_assert(offsetof(struct pmi_medium_sentinel_header, desc) == sizeof(pmi_medium_slow_fields),
               "pmi_medium_slow finds them");

static pmi_medium *reserve;            /* newest first, by nextregion */
static pmi_medium *reserve_tail;       /* oldest, linked back by prevregion */
static _Atomic size_t reserve_count;
static _Atomic int reserve_lock;
static _Atomic(void *) map_hint;
static _Atomic size_t regions_now, regions_peak;

static void maybe_purge(pmi_heap *heap);   /* idle regions' free pages, below */
static void grew(size_t bytes, bool medium);   /* fresh pages about to be touched, below */
#define RECLAIM_MIN  ((size_t)64 << 10)    /* free bytes that make a region worth a purge on growth */
#define RECLAIM_STEP ((size_t)1 << 20)     /* growth between two looks */
static void reclaim_outside(pmi_heap *heap);
static __thread size_t grown __attribute__((tls_model("initial-exec")));   /* since the last look */
/* of it, by carves, and not yet seen by a look at the empty pools */
static __thread size_t grown_medium __attribute__((tls_model("initial-exec")));
/* Pages coming back to the regions (a wake, a carve below what a region
 * touched before) since the last look at the empty pools: not growth, so
 * that a purge of regions never feeds the next, but memory all the same,
 * which the empty pools' pages can give (see reclaim). */
static __thread size_t regrown __attribute__((tls_model("initial-exec")));
static __thread size_t owed __attribute__((tls_model("initial-exec")));   /* carried to the next look */
/* The memory the regions took, fresh or come back, counts as one: a phase
 * that carves a head region's fresh blocks and then wakes dormant ones
 * took up to twice RECLAIM_STEP with neither count reaching it, beside
 * empty pools that kept their pages. */
static inline size_t medium_taken(void) { return grown_medium + regrown; }
static inline bool look_due(void) { return grown >= RECLAIM_STEP || medium_taken() >= RECLAIM_STEP; }
static void reserve_acquire(void) { pmi_spin_lock(&reserve_lock); }
static void reserve_release(void) { pmi_spin_unlock(&reserve_lock); }

size_t pmi_medium_reserve_count(void) { return atomic_load(&reserve_count); }
pmi_medium *pmi_medium_reserve_first(void) { return reserve; }
void pmi_medium_mapped(size_t *now, size_t *peak) {
  *now = atomic_load(&regions_now);
  *peak = atomic_load(&regions_peak);
}

static inline uint64_t *live_word(pmi_medium *m, unsigned units) { return &m->live[units >> 6]; }
static inline uint64_t live_bit(unsigned units) { return (uint64_t)1 << (units & 63); }
static inline size_t span_start(const pmi_medium *m) { return PMI_MEDIUM_HEADER + pmi_medium_slow(m)->colour; }
static inline char *first_block(pmi_medium *m) { return pmi_medium_base(m) + span_start(m); }

/* ---- the reserve and the OS ------------------------------------------------ */

static size_t reserve_keep(void) { return (size_t)pmi_option(arena_reserve) / 4; }

/* Pops the oldest region of the reserve if it may go. */
static pmi_medium *reserve_pop_old(size_t keep, uint64_t now, bool force) {
  pmi_medium *m = NULL;
  reserve_acquire();
  pmi_medium *old = reserve_tail;
  if (reserve_count > keep &&
      (force || pmi_medium_slow(old)->retired_ms + (uint64_t)pmi_option(arena_decay_ms) <= now)) {
    m = old;
    reserve_tail = pmi_medium_slow(old)->prevregion;
    if (reserve_tail != NULL) reserve_tail->nextregion = NULL;
    else reserve = NULL;
    reserve_count--;
  }
  reserve_release();
  return m;
}

static void region_unmap(pmi_heap *heap, pmi_medium *m) {
  pmi_arenamap_set(pmi_medium_base(m), PMI_MEDIUM_SIZE, PMI_REGION_NONE);
  pmi_os_unmap(pmi_medium_base(m), PMI_MEDIUM_SIZE);
  atomic_fetch_sub(&regions_now, 1);
  if (heap != &pmi_heap_empty) heap->counters.mediums_unmapped++;
}

static size_t reserve_decay(pmi_heap *heap, uint64_t now) {
  pmi_medium *m;
  size_t n = 0;
  for (; (m = reserve_pop_old(reserve_keep(), now, false)) != NULL; n++) region_unmap(heap, m);
  return n;
}

void pmi_medium_release_reserve(size_t keep) {
  pmi_medium *m;
  while ((m = reserve_pop_old(keep, 0, true)) != NULL) region_unmap(pmi_heap_tls, m);
}

/* ---- colour (internal.h, pmi_medium_colour) ------------------------------------
 * Regions are 1 MiB-aligned, so without a colour every region's block 0
 * sits at offset 12 KiB, in L1 cache set 0 (set = address bits 6..11 on
 * this 64-set, 12-way cache), with the pools' blocks 0,
 * and the live words of every region's first blocks share the header's
 * third line.  A program cycling over the classes of one doubling (sizes
 * 8..1000: 14 medium classes, each reusing its head block) then keeps 28
 * lines in set 0 and 14 in set 2, and misses L1 on about every other
 * operation.  The colour moves a region's blocks by
 *   - a multiple of 8 KiB below 64 KiB, by region address (a 1 MiB step:
 *     regions mapped one after another get the eight in turn): a line of
 *     the live bitmap covers 8 KiB of blocks, so that moves the line their
 *     live words are in (the header's lines 2 to 9), and
 *   - a line offset, by the class's place in its doubling (1 to 16 lines:
 *     the 14 classes of 513 .. 1024 bytes get 14 sets, none of them set 0,
 *     where the pools' blocks 0 are, nor the headers' sets 40 .. 54
 *     (types.h, MEDIUM_DESC_OFFSET); a higher doubling's coarser
 *     alignments merge some), which places block 0's first line: the
 *     line a malloc reads and a free writes, whatever the size,
 * the second rounded down to a multiple of the class size's power-of-two
 * part up to 4 KiB, so that the classes the aligned entry points pick stay
 * aligned (types.h), and of 64, and dropped where it would cost the region
 * a block (the classes of fewer than 16 blocks).  The window is never
 * touched: it costs address space only (at most 56 KiB of a region: about
 * a sixteenth of a small class's blocks, one of the largest); the line
 * offset, at most 1 KiB (2 KiB for the classes of 2 KiB alignment, none
 * for those of 4 KiB), shares the page block 0 starts in: why it does not
 * range over all 64 lines (with them, 2 KiB a region on average, larson's
 * peak grew by about 0.7 MB; with these the first doubling's sets are as
 * distinct and BM_pair_random/1000 misses as little, 0.90 L1 misses a
 * call, BM_pair_random_medium/16384 a little more, 1.10 against 0.94; 1.50
 * and 2.41 without colour).
 * Why the window by region, not by class: a region from the reserve taken
 * for another class keeps its window, so the pages one class touched are
 * where the next one's blocks are (a window by class left them in the new
 * gap, to be given back and faulted in again: BM_batch_medium<kRandom>/65536,
 * whose regions change class about 3000 times, gave back 76 MB more and
 * took 3x the page faults); only the line offset, inside the page block 0
 * starts in, changes with the class.  A region from the reserve that serves
 * its class again keeps its colour and free list (region_new). */

/* Among the newest regions of the reserve, one that served class c and
 * still has its free list (with the reserve's lock): taken first, as it
 * needs no carving and its blocks' pages are resident. */
#define RESERVE_LOOK 16u
static pmi_medium *reserve_same_class(unsigned c) {
  unsigned n = 0;
  for (pmi_medium *r = reserve; r != NULL && n < RESERVE_LOOK; r = r->nextregion, n++)
    if (r->mclass == c && r->freeblock != PMI_LIST_END) return r;
  return NULL;
}

static bool reserve_offers(unsigned c) {
  if (pmi_load_relaxed(&reserve_count) == 0) return false;
  reserve_acquire();
  bool found = reserve_same_class(c) != NULL;
  reserve_release();
  return found;
}

/* A region for heap, from the reserve (warmest first) or the OS, formatted
 * for class c and linked on heap.mediums; NULL when the OS refuses. */
static pmi_medium *region_new(pmi_heap *heap, unsigned c) {
  pmi_medium *m = NULL;
  reserve_acquire();
  if (reserve != NULL) {
    m = reserve;
    pmi_medium *same = reserve_same_class(c);
    if (same != NULL) m = same;
    if (pmi_medium_slow(m)->prevregion != NULL) pmi_medium_slow(m)->prevregion->nextregion = m->nextregion;
    else reserve = m->nextregion;
    if (m->nextregion != NULL) pmi_medium_slow(m->nextregion)->prevregion = pmi_medium_slow(m)->prevregion;
    else reserve_tail = pmi_medium_slow(m)->prevregion;
    reserve_count--;
  }
  reserve_release();
  if (m != NULL) {
    heap->counters.mediums_reused++;
    if (pmi_load_relaxed(&reserve_count) > reserve_keep()) reserve_decay(heap, pmi_os_now_ms());
  } else {
    if (pmi_load_relaxed(&reserve_count) > reserve_keep()) reserve_decay(heap, pmi_os_now_ms());
    char *hint = pmi_load_relaxed(&map_hint);
    char *base = pmi_os_map_aligned(PMI_MEDIUM_SIZE, PMI_MEDIUM_SIZE, hint);
    if (base == NULL) return NULL;
    if (!pmi_arenamap_set(base, PMI_MEDIUM_SIZE, (uint8_t)pmi_medium_map_byte(base))) {
      pmi_os_unmap(base, PMI_MEDIUM_SIZE);
      return NULL;
    }
    pmi_store_relaxed(&map_hint, (void *)(base - PMI_MEDIUM_SIZE));
    m = pmi_medium_of(base);   /* (the header's colour: types.h, MEDIUM_DESC_OFFSET) */
    pmi_medium_slow(m)->touched = 0;
    size_t now = atomic_fetch_add(&regions_now, 1) + 1;
    size_t peak = atomic_load(&regions_peak);
    while (now > peak && !atomic_compare_exchange_weak(&regions_peak, &peak, now)) {}
    heap->counters.mediums_mapped++;
  }
  size_t size = pmi_medium_class_size(c);
  if (m->mclass != c || m->state != PMI_MEDIUM_EMPTY || m->ncarved == 0 || pmi_medium_slow(m)->block_size != size) {
    /* (its live bitmap is clear already: types.h) */
    m->ncarved = 0;
    pmi_medium_slow(m)->ndormant = 0;
    m->freeblock = PMI_LIST_END;
    pmi_medium_slow(m)->colour = pmi_medium_colour(m, c);   /* (its window is the region's: no page it touched is in the gap) */
  }
  /* else: a region that served this class before keeps its free list (all
   * of its carved blocks) and its colour, as a pool does */
  m->mclass = (uint8_t)c;
  pmi_medium_slow(m)->block_size = (uint32_t)size;
  m->capacity = (uint16_t)((PMI_MEDIUM_SIZE - span_start(m)) / size);
  m->used = 0;
  m->state = PMI_MEDIUM_USED;
  pmi_medium_slow(m)->held = NULL;   /* (over retired_ms) */
  m->nextregion = pmi_medium_slow(m)->prevregion = NULL;
  pmi_medium_slow(m)->prev_owned = NULL;
  pmi_medium_slow(m)->next_owned = heap->mediums;
  if (heap->mediums != NULL) pmi_medium_slow(heap->mediums)->prev_owned = m;
  heap->mediums = m;
  heap->nmediums++;
  atomic_store_explicit(&m->heap, heap, memory_order_release);
  pmi_freemap_set_owner(pmi_medium_base(m), PMI_MEDIUM_SIZE, heap->tp);   /* after the header */
  return m;
}

/* An empty region leaves its heap for the reserve.  It is on no usedmedium
 * list.  Its free list stays (see region_new). */
static void region_retire(pmi_heap *heap, pmi_medium *m) {
  pmi_medium_slow_fields *ms = pmi_medium_slow(m);
  if (ms->prev_owned != NULL) pmi_medium_slow(ms->prev_owned)->next_owned = ms->next_owned;
  else heap->mediums = ms->next_owned;
  if (ms->next_owned != NULL) pmi_medium_slow(ms->next_owned)->prev_owned = ms->prev_owned;
  heap->nmediums--;
  pmi_freemap_set_owner(pmi_medium_base(m), PMI_MEDIUM_SIZE, 0);   /* before the header */
  atomic_store_explicit(&m->heap, NULL, memory_order_release);
  m->state = PMI_MEDIUM_EMPTY;
  m->capacity = 0;
  pmi_medium_slow(m)->retired_ms = pmi_os_now_ms();
  reserve_acquire();
  pmi_medium_slow(m)->prevregion = NULL;
  m->nextregion = reserve;
  if (reserve != NULL) pmi_medium_slow(reserve)->prevregion = m;
  else reserve_tail = m;
  reserve = m;
  reserve_count++;
  reserve_release();
  reserve_decay(heap, pmi_medium_slow(m)->retired_ms);
  /* Beyond what the reserve keeps, the purge thread unmaps it after the
   * decay (pmi_medium_decay): a program that goes idle calls nothing that
   * would (the callers kick it once out of their bracket). */
  if (pmi_load_relaxed(&reserve_count) > reserve_keep()) pmi_purge_note();
}

/* ---- usedmedium lists (the owner inside pmi_heap_enter/leave, or heap.lock held) */

static bool exhausted(const pmi_medium *m) {
  return m->freeblock == PMI_LIST_END && pmi_medium_slow(m)->ndormant == 0 && m->ncarved == m->capacity;
}

/* ---- lending ------------------------------------------------------------------ *
 * A program that asks for a medium class now and then (a compiler touches
 * most of the 112; espresso 81, each holding a few blocks at a time) gives
 * each its own region: its header page, its first carve, and the free
 * blocks its own peak left, none of which another class can use.  A class
 * with no region of its own (usedmedium[c] empty) that finds a free block
 * at the head of one of the next classes, at most PMI_LEND_CLASSES up and a
 * quarter larger (types.h), borrows that head instead of starting a region:
 * medfront[c], what its malloc fast path pops from, points at the lender,
 * whose blocks then serve both classes, each malloc of c on the fast path.
 *
 *    usedmedium[c]   sentinel            usedmedium[l]  -> D -> ...
 *    medfront[c]     ------------------------------------^ (lent)
 *
 * The lender is the head of its class, so it keeps its extra use and never
 * retires while lent.  The loan ends when it stops being the head (unlend,
 * from used_unlink and used_push), when class c's malloc takes its last
 * free block (pmi_medium_pop_front_last: no carve ahead on c's behalf, so
 * that a lender only lends what it had), and when c gets a region of its
 * own (used_push).  Only lenders whose blocks are at least as aligned as
 * c's own (the size's power-of-two part up to 4 KiB) lend, since the
 * aligned entry points pick a class by that alignment (alloc.c,
 * pmi_memalign).  espresso (mimalloc-bench's, largest.espresso) ends with
 * 44 regions instead of 78 and 1.16 MB of free medium blocks instead of
 * 1.94, its peak RSS 4.2 -> 3.5 MB (glibc 2.3).  Borrowing also before a
 * class's own head carves fresh pages was tried: no lower peak. */
static size_t class_align(unsigned c) {
  size_t size = pmi_medium_class_size(c), align = size & -size;
  return align > PMI_MEDIUM_ALIGN_MAX ? PMI_MEDIUM_ALIGN_MAX : align;
}
bool pmi_medium_lends(unsigned l, unsigned c) {
  return l > c && l < PMI_MEDIUM_NCLASSES && l - c <= PMI_LEND_CLASSES &&
         pmi_medium_class_size(l) * 4 <= pmi_medium_class_size(c) * 5 && class_align(l) >= class_align(c);
}

/* head stops being the head of class l: the classes it was lent to go back
 * to their own (empty) lists. */
static void unlend(pmi_heap *heap, const pmi_medium *head, unsigned l) {
  for (unsigned c = l > PMI_LEND_CLASSES ? l - PMI_LEND_CLASSES : 0; c < l; c++)
    if (heap->medfront[c] == head) heap->medfront[c] = heap->usedmedium[c];
}

/* The head of usedmedium[c] carries one extra use (types.h), so that free's
 * one test, --used == 0, never fires for the region its class allocates
 * from: a head that leaves hands it to the next region. */
static void used_unlink(pmi_heap *heap, pmi_medium *m) {
  pmi_assert(m->state == PMI_MEDIUM_USED);
  if (pmi_medium_slow(m)->prevregion != NULL) {
    /* relaxed: the owner's unlocked carve reads the head's link (listed_behind)
     * while a visitor gives back the region behind it */
    __atomic_store_n(&pmi_medium_slow(m)->prevregion->nextregion, m->nextregion, __ATOMIC_RELAXED);
  } else {
    pmi_assert(heap->usedmedium[m->mclass] == m);
    m->used--;
    if (m->nextregion != NULL) m->nextregion->used++;
    heap->usedmedium[m->mclass] = heap->medfront[m->mclass] = m->nextregion != NULL ? m->nextregion : &pmi_medium_sentinel;
    unlend(heap, m, m->mclass);
  }
  if (m->nextregion != NULL) pmi_medium_slow(m->nextregion)->prevregion = pmi_medium_slow(m)->prevregion;
  m->nextregion = pmi_medium_slow(m)->prevregion = NULL;
}

static void release_empty(pmi_heap *heap, pmi_medium *m) {
  used_unlink(heap, m);
  region_retire(heap, m);
}

/* Makes m (on no list) the head of usedmedium[its class], with the head's
 * extra use; the old head, which alone may be exhausted or empty, becomes
 * FULL or leaves. */
static void used_push(pmi_heap *heap, pmi_medium *m) {
  unsigned c = m->mclass;
  pmi_medium *head = heap->usedmedium[c];
  if (head != &pmi_medium_sentinel) {
    unlend(heap, head, c);
    if (exhausted(head)) {
      used_unlink(heap, head);
      head->state = PMI_MEDIUM_FULL;
    } else if (head->used == 1) {
      release_empty(heap, head);
    }
    head = heap->usedmedium[c];
    if (head != &pmi_medium_sentinel) head->used--;   /* no longer the head */
  }
  m->used++;
  m->state = PMI_MEDIUM_USED;
  pmi_medium_slow(m)->prevregion = NULL;
  m->nextregion = head != &pmi_medium_sentinel ? head : NULL;
  if (head != &pmi_medium_sentinel) pmi_medium_slow(head)->prevregion = m;
  heap->usedmedium[c] = heap->medfront[c] = m;   /* (a loan to c ends) */
}

/* ---- allocation ------------------------------------------------------------- */

/* Links the next run of untouched blocks onto the (empty) free list: about
 * PMI_MEDIUM_CARVE_BYTES, and at least two blocks, so that a malloc/free
 * loop of one of the largest classes keeps a block on the list (and
 * malloc's fast path never finds it empty). */
static unsigned carve_blocks(size_t size) {
  unsigned n = (unsigned)(PMI_MEDIUM_CARVE_BYTES / size);
  return n < 2 ? 2 : n;
}
static size_t carve_bytes(const pmi_medium *m) {
  size_t size = pmi_medium_slow(m)->block_size;
  return carve_blocks(size) * size;
}

/* A region's first carve is the blocks that start in block 0's page (at
 * least one), and each carve then takes as many blocks as it has carved so
 * far (at least a page's worth, and two blocks), up to the full carve: a
 * class that a program asks for a few times (a compiler touches most of the
 * 112) costs the page or two its blocks touch, not 16 KiB, while a class in
 * steady use reaches the full carve within four visits.  A first carve of
 * one block (the classes of 4 KiB and up, and those whose block 0 starts
 * late in its page) leaves it lone: the pop that takes it carves nothing
 * ahead (pmi_medium_pop_last), so that one live block of a class costs its
 * own page, not its neighbour's too; a second visit carves as before.
 * The classes of a page and more carve one block every time: the carve
 * writes each block's link, so a block carved and never used costs a page,
 * and two blocks a carve left most of espresso's 40 classes from 4 KiB up
 * with one or two such (its peak RSS 4.1 -> 4.0 MB), where the slow-path
 * visit a block more costs little beside the faults of a page-sized
 * block's pages.  A malloc/free loop still stays on the fast path: the
 * pop of the last block carves one ahead (pmi_medium_pop_last). */
#define FIRST_CARVE_BYTES 4096u
static unsigned carve_next(const pmi_medium *m) {
  size_t size = pmi_medium_slow(m)->block_size;
  if (m->ncarved == 0) {
    uintptr_t first = (uintptr_t)first_block((pmi_medium *)m), page_end = (first | (PMI_POOL_SIZE - 1)) + 1;
    return (unsigned)((page_end - first + size - 1) / size);
  }
  if (size >= PMI_POOL_SIZE) return 1;
  unsigned n = carve_blocks(size);
  unsigned least = (unsigned)(FIRST_CARVE_BYTES / size);
  unsigned grow = m->ncarved > least ? m->ncarved : least;
  return grow < 2 ? 2 : grow < n ? grow : n;
}

/* A carve past what m touched before: growth (grew). */
pmi_noinline static void carved_fresh(pmi_medium *m, size_t end) {
  grew((end - pmi_medium_slow(m)->touched) << PMI_MEDIUM_TOUCH_SHIFT, true);
  pmi_medium_slow(m)->touched = (uint16_t)end;
}

static pmi_block *carve(pmi_medium *m) {
  pmi_assert(m->freeblock == PMI_LIST_END && m->ncarved < m->capacity);
  size_t size = pmi_medium_slow(m)->block_size;
  unsigned n = carve_next(m);
  if (n > (unsigned)(m->capacity - m->ncarved)) n = m->capacity - m->ncarved;
  char *first = first_block(m) + (size_t)m->ncarved * size, *b = first;
  for (unsigned i = 1; i < n; i++, b += size) pmi_link_set((pmi_block *)b, (pmi_block *)(b + size));
  pmi_link_set((pmi_block *)b, PMI_LIST_END);
  pmi_medium_slow(m)->lone = m->ncarved == 0 && n == 1;
  m->ncarved = (uint16_t)(m->ncarved + n);
  m->freeblock = (pmi_block *)first;
  /* growth only past what the region has touched before (a region from the
   * reserve carved for another class reuses its pages) */
  size_t end = ((size_t)(b + size - pmi_medium_base(m)) + (1u << PMI_MEDIUM_TOUCH_SHIFT) - 1) >> PMI_MEDIUM_TOUCH_SHIFT;
  if (end > pmi_medium_slow(m)->touched) carved_fresh(m, end);
  else regrown += (size_t)n * size;
  return m->freeblock;
}

/* Hands out block, the last of m's list (its link PMI_LIST_END), or reports
 * its corrupt link.  Also the last free block of a lender, to a class it
 * was lent to: no carve ahead, and the loan ends (lending, above). */
static void *take_last(pmi_medium *m, pmi_block *block) {
  pmi_block *next = pmi_link_get(block);
  if (next != PMI_LIST_END) pmi_link_corrupt(block, next);
  m->freeblock = PMI_LIST_END;
  m->used++;
  unsigned units = pmi_medium_units(block);
  *live_word(m, units) |= live_bit(units);
  return block;
}

/* pmi_medium_pop's way out when block's link leaves the region: block is
 * the last of the list (its link is PMI_LIST_END), or the link is corrupt. */
pmi_noinline void *pmi_medium_pop_last(pmi_medium *m, pmi_block *block) {
  take_last(m, block);
  /* The next carve now rather than at the next malloc: a malloc/free loop
   * on a list of one block (the carve's other blocks live elsewhere) would
   * otherwise leave the fast path here at every malloc, and an aligned
   * allocation or calloc, whose fast paths send the last block to the slow
   * path, would take the whole slow path.  Pools keep their carve for the
   * slow path: there the early carve cost more blocks carved than it saved
   * (BM_batch<kRandom>/1000 +0.6 instructions per op).  Not for a lone
   * first block (carve_next): a class that holds one block pays one page;
   * a loop that frees and takes it again comes here once more, and carves. */
  if (pmi_medium_slow(m)->lone) pmi_medium_slow(m)->lone = false;
  else if (m->ncarved < m->capacity) carve(m);
  return block;
}

/* malloc's fast path, for class c, found the last block (or a corrupt link)
 * in m, c's own head or a lender. */
void *pmi_medium_pop_front_last(pmi_heap *heap, pmi_medium *m, pmi_block *block, unsigned c) {
  if (pmi_likely(m->mclass == c)) return pmi_medium_pop_last(m, block);
  heap->medfront[c] = heap->usedmedium[c];
  return take_last(m, block);
}

/* A lender for class c, which has no region of its own (lending, above),
 * and its first block; NULL if none of the next classes' heads has a free
 * block, or c's own blocks wait in the reserve (a region that served c,
 * its pages resident: region_new takes it). */
static void *lend(pmi_heap *heap, unsigned c) {
  if (reserve_offers(c)) return NULL;
  for (unsigned l = c + 1; l < PMI_MEDIUM_NCLASSES && l - c <= PMI_LEND_CLASSES; l++) {
    if (!pmi_medium_lends(l, c)) continue;
    pmi_medium *d = heap->usedmedium[l];
    if (d == &pmi_medium_sentinel || d->freeblock == PMI_LIST_END) continue;
    heap->counters.malloc_medium++;
    pmi_block *block = d->freeblock;
    if (pmi_link_offset(block) >= PMI_MEDIUM_SIZE) return take_last(d, block);   /* no loan */
    heap->medfront[c] = d;
    return pmi_medium_pop(d, block);
  }
  return NULL;
}

/* Links up to a carve's worth of dormant blocks (purge_region), lowest
 * first, onto the (empty) free list: with the list empty, every carved
 * block that is not live is dormant (types.h).  Their pages fault in again
 * as they are used, a carve's worth at a time, not all at once. */
#define WAKE_MAX 32u
_Static_assert(PMI_MEDIUM_CARVE_BYTES / 528 <= WAKE_MAX, "a wake is a carve's worth of the smallest class");
static pmi_block *wake(pmi_medium *m) {
  pmi_assert(m->freeblock == PMI_LIST_END && pmi_medium_slow(m)->ndormant != 0);
  size_t size = pmi_medium_slow(m)->block_size;
  unsigned n = carve_blocks(size), got = 0;
  if (n > pmi_medium_slow(m)->ndormant) n = pmi_medium_slow(m)->ndormant;
  pmi_block *woken[WAKE_MAX];
  char *b = first_block(m);
  for (unsigned i = 0; i < m->ncarved && got < n; i++, b += size) {
    unsigned units = pmi_medium_units(b);
    if (!(*live_word(m, units) & live_bit(units))) woken[got++] = (pmi_block *)b;
  }
  pmi_assert(got == n);
  if (got == 0) {   /* not reached while the invariant holds; never a list that lies */
    pmi_medium_slow(m)->ndormant = 0;
    return NULL;
  }
  for (unsigned k = 0; k + 1 < got; k++) pmi_link_set(woken[k], woken[k + 1]);
  pmi_link_set(woken[got - 1], PMI_LIST_END);
  pmi_medium_slow(m)->ndormant = (uint16_t)(pmi_medium_slow(m)->ndormant - got);
  m->freeblock = woken[0];
  pmi_huge_yield((size_t)got * size);   /* pages again, but not growth: they were ours */
  regrown += (size_t)got * size;
  return m->freeblock;
}

/* Another region of m's class list with free blocks on its list (their
 * first pages resident), among the next few: served before m carves or
 * wakes, which touches pages that may have to fault in, so that the
 * pages a purge kept (purge_region's limit) are used rather than left
 * idle beside blocks woken again.  NULL if none. */
#define SPARE_LOOK 8u
static pmi_medium *listed_with_free(const pmi_medium *m) {
  unsigned n = 0;
  for (pmi_medium *r = m->nextregion; r != NULL && n < SPARE_LOOK; r = r->nextregion, n++)
    if (r->freeblock != PMI_LIST_END) return r;
  return NULL;
}

/* listed_with_free outside a slow path's bracket: a visitor gives back
 * regions of the list behind the head whose every block out it holds, and
 * rewrites the links this walks (remote.c, "held blocks of USED pools and
 * regions"); in the bracket the list holds still, and no region it leads
 * to can meanwhile leave for the reserve (and the OS). */
static bool listed_behind(pmi_heap *heap, const pmi_medium *m) {
  /* A visitor only shortens the list (it links no region into it), and
   * writes the head's link with a relaxed store (used_unlink): none behind
   * the head needs no bracket. */
  if (__atomic_load_n(&m->nextregion, __ATOMIC_RELAXED) == NULL) return false;
  bool locked = pmi_heap_enter(heap);
  bool found = listed_with_free(m) != NULL;
  pmi_heap_leave(heap, locked);
  return found;
}

/* One block of class c from heap, whose lock the caller holds (or which it
 * owns with the lock held).  NULL with errno ENOMEM. */
void *pmi_medium_malloc_locked(pmi_heap *heap, unsigned c) {
  if (pmi_load_relaxed(&heap->thread_free) != NULL) pmi_heap_collect_locked(heap);
  else if (pmi_unlikely(heap->remote_mediums != NULL)) pmi_medium_apply(heap);
  pmi_medium *m;
  for (;;) {
    m = heap->usedmedium[c];
    if (m == &pmi_medium_sentinel) {
      m = region_new(heap, c);
      if (m == NULL) {
        errno = ENOMEM;
        return NULL;
      }
      used_push(heap, m);
    }
    if (m->freeblock != PMI_LIST_END) break;
    pmi_medium *other = listed_with_free(m);
    if (other != NULL) {   /* it becomes the head; m stays listed behind it */
      used_unlink(heap, other);
      used_push(heap, other);
      continue;
    }
    if (reserve_offers(c)) {   /* likewise */
      other = region_new(heap, c);
      if (other != NULL) {
        used_push(heap, other);
        continue;
      }
    }
    if (m->ncarved < m->capacity) {
      carve(m);
      break;
    }
    if (pmi_medium_slow(m)->ndormant != 0 && wake(m) != NULL) break;
    used_unlink(heap, m);                 /* USED -> FULL */
    m->state = PMI_MEDIUM_FULL;
  }
  heap->counters.malloc_medium++;
  return pmi_medium_pop(m, m->freeblock);
}

/* malloc's medium slow path: the head region of the class has no free block
 * (or this thread has no heap yet). */
pmi_noinline void *pmi_medium_malloc_slow(pmi_heap *heap, unsigned c) {
  if (heap == &pmi_heap_empty) {
    heap = pmi_heap_for_thread();
    if (heap == NULL) return pmi_heap_malloc_locked(pmi_medium_class_size(c));   /* past its exit */
  }
  pmi_medium *m = heap->usedmedium[c];
  if (m == &pmi_medium_sentinel) {   /* no region of its own: a neighbour may lend one (lending, above) */
    void *p = lend(heap, c);
    if (p != NULL) return p;
  }
  if (m->freeblock != PMI_LIST_END) {   /* a heap just found, or malloc_core's caller not the fast path */
    heap->counters.malloc_medium++;
    return pmi_medium_pop(m, m->freeblock);
  }
  /* Carving and waking need no lock (only the owner touches the head); the
   * look behind the head is in the bracket (listed_behind). */
  if (pmi_load_relaxed(&heap->thread_free) == NULL && !listed_behind(heap, m) && !reserve_offers(c) &&
      (m->ncarved < m->capacity ? carve(m) : pmi_medium_slow(m)->ndormant != 0 ? wake(m) : NULL) != NULL) {
    heap->counters.malloc_medium++;
    void *p = pmi_medium_pop(m, m->freeblock);
    if (look_due()) reclaim_outside(heap);
    return p;
  }
  pmi_remote_flush();
  bool locked = pmi_heap_enter(heap);   /* the lock only while a visitor is there (heap.c) */
  void *p = pmi_medium_malloc_locked(heap, c);
  maybe_purge(heap);
  pmi_heap_leave(heap, locked);
  pmi_purge_kick();   /* an old head that went to the reserve (used_push) */
  return p;
}

/* ---- free ---------------------------------------------------------------------- */

/* Why p, in region m of the reserve, is no block: a region keeps its class,
 * colour and carved count there (region_new), so a start of a block it
 * carved was handed out and freed before the region retired (the last
 * block of an exited thread's region, freed twice), or is a pointer that
 * only looks like one. */
static const char *retired_fault(const pmi_medium *m, const void *p) {
  size_t off = (size_t)((const char *)p - pmi_medium_base(m)), start = span_start(m);
  size_t size = pmi_medium_slow(m)->block_size;
  if (m->state == PMI_MEDIUM_EMPTY && m->ncarved != 0 && size != 0 && ((uintptr_t)p & (PMI_ALIGNMENT - 1)) == 0 &&
      off >= start && (off - start) % size == 0 && (off - start) / size < m->ncarved)
    return "double free or corruption: block already freed (its region retired),";
  return "invalid pointer (inside a retired medium region):";
}

/* Why p is not a live block of region m, or NULL; from the owner's side. */
static const char *fault_owned(pmi_medium *m, const void *p) {
  if (m->state != PMI_MEDIUM_USED && m->state != PMI_MEDIUM_FULL)
    return "invalid pointer (inside a medium region not in use):";
  size_t off = (size_t)((const char *)p - pmi_medium_base(m)), start = span_start(m);
  if (off < start || ((uintptr_t)p & (PMI_ALIGNMENT - 1)) != 0 || (off - start) % pmi_medium_slow(m)->block_size != 0)
    return "invalid pointer (not the start of a block):";
  if ((off - start) / pmi_medium_slow(m)->block_size >= m->ncarved) return "invalid pointer (a block never handed out):";
  unsigned units = pmi_medium_units(p);
  if (!(*live_word(m, units) & live_bit(units))) return "double free or corruption: block already freed,";
  return NULL;
}

static const char *fault_of(pmi_medium *m, const void *p) {
  const char *fault = fault_owned(m, p);
  if (fault == NULL && ((const pmi_block *)p)->key == pmi_remote_key)
    fault = "double free or corruption: block already freed by another thread,";
  return fault;
}

pmi_medium *pmi_medium_check_live(const char *fn, const void *p) {
  pmi_medium *m = pmi_medium_of(p);
  /* The common answer first, from the bitmap alone: a 16-aligned address
   * whose unit is marked live is a live block start (units of the header
   * page and of retired regions never are). */
  unsigned units = pmi_medium_units(p);
  if (pmi_likely(((uintptr_t)p & (PMI_ALIGNMENT - 1)) == 0 && (*live_word(m, units) & live_bit(units)) &&
                 ((const pmi_block *)p)->key != pmi_remote_key))
    return m;
  if (pmi_load_relaxed(&m->heap) == NULL) pmi_bad_pointer(fn, p, retired_fault(m, p));
  const char *fault = fault_of(m, p);
  if (fault != NULL) pmi_bad_pointer(fn, p, fault);
  return m;
}

/* A live block start, its bit cleared and its free counted, back into its
 * region, with the state change that follows.  Inside pmi_heap_enter/leave
 * (or heap.lock held). */
static void free_block(pmi_heap *heap, pmi_medium *m, pmi_block *block) {
  pmi_link_set(block, m->freeblock);
  m->freeblock = block;
  unsigned used = --m->used;
  if (m->state == PMI_MEDIUM_FULL) {             /* FULL -> USED */
    used_push(heap, m);
    return;
  }
  /* USED -> EMPTY; the head of its class (used 1: its extra use) stays while
   * its heap has an owner */
  if (used == 0 || (used == 1 && heap->usedmedium[m->mclass] == m && !pmi_load_relaxed(&heap->owned)))
    release_empty(heap, m);
}

void pmi_medium_free_collected(pmi_heap *heap, pmi_block *block) {
  pmi_medium *m = pmi_medium_of(block);
  const char *fault = fault_owned(m, block);   /* before anything is written */
  if (fault != NULL) pmi_bad_pointer("free", block, fault);
  block->key = 0;
  unsigned units = pmi_medium_units(block);
  *live_word(m, units) &= ~live_bit(units);
  heap->counters.free_remote++;
  heap->counters.free_remote_medium++;   /* so that stats.c can derive free_small */
  free_block(heap, m, block);
}

/* Every free of a medium block that free's fast path (free.c, free_core)
 * does not take: a bad pointer, a FULL region, or one another heap owns.  All the checks, from the start, and the live bit,
 * inside the owner's bracket: a FULL region's descriptor and bitmap are
 * also read and written by visitors ("held blocks" below). */
pmi_noinline static void free_local_slow(pmi_heap *heap, pmi_medium *m, pmi_block *block) {
  int saved = errno;
  bool locked = pmi_heap_enter(heap);   /* the lock only while a visitor is there (heap.c) */
  const char *fault = fault_of(m, block);
  if (fault != NULL) pmi_bad_pointer("free", block, fault);
  if (pmi_unlikely(heap->remote_mediums != NULL)) pmi_medium_apply(heap);   /* m may be one of them */
  unsigned units = pmi_medium_units(block);
  *live_word(m, units) &= ~live_bit(units);
  free_block(heap, m, block);
  maybe_purge(heap);
  pmi_heap_leave(heap, locked);
  pmi_purge_kick();   /* a region that went to the reserve (region_retire) */
  errno = saved;
}

/* A block of another heap's region: checked as far as it can be without
 * the owner's descriptor, then to the remote machinery. */
pmi_noinline static void free_remote(pmi_medium *m, pmi_block *block) {
  pmi_heap *owner = atomic_load_explicit(&m->heap, memory_order_acquire);
  if (owner == NULL) pmi_bad_pointer("free", block, retired_fault(m, block));
  if (((uintptr_t)block & (PMI_ALIGNMENT - 1)) != 0 ||
      ((uintptr_t)block & (PMI_MEDIUM_SIZE - 1)) < PMI_MEDIUM_HEADER)
    pmi_bad_pointer("free", block, "invalid pointer (not the start of a block):");
  pmi_remote_free_medium(owner, block);
}

void pmi_medium_free(pmi_heap *heap, void *p) {
  pmi_medium *m = pmi_medium_of(p);
  if (pmi_load_relaxed(&m->heap) != heap) free_remote(m, p);
  else free_local_slow(heap, m, p);
}

/* The free fast path emptied m, which is not the head of its class (that
 * one keeps an extra use): it goes to the reserve. */
pmi_noinline void pmi_medium_emptied(pmi_heap *heap, pmi_medium *m) {
  int saved = errno;
  bool locked = pmi_heap_enter(heap);   /* the lock only while a visitor is there (heap.c) */
  release_empty(heap, m);
  pmi_heap_leave(heap, locked);
  pmi_purge_kick();
  errno = saved;
}

/* ---- held blocks: remote frees a visitor takes for a live owner ------------
 * An owner that stays out of the allocator (waiting on a lock, blocked in
 * I/O, allocating only from pools) never collects the medium blocks other
 * threads free.  A visitor of its heap (the purge thread, malloc_trim, the
 * statistics: heap.c) holds the lock while the owner is outside its slow
 * paths, and takes them where it can, as it does for pools (remote.c,
 * "collecting for a live owner"):
 *
 *   The owner's fast paths touch only regions with a free block: malloc
 *   pops from the head of usedmedium[c], free pushes onto a region whose
 *   free list is not empty (internal.h).  A FULL region has none
 *   (types.h), so the owner reaches it only from a slow path, inside
 *   pmi_heap_enter/leave, exclusive with a visitor; free_local_slow makes
 *   its checks and clears the live bit in there too.
 *   FULL region:  the block goes on m.held, linked as a free list is, its
 *       live bit and remote mark left as they are (free's fast path reads
 *       the bitmap without any handshake; an owner's second free of it is
 *       still one "by another thread"), and leaves m.used, so that the
 *       statistics count it free; m goes on heap.remote_mediums.
 *   used reaches 0:  nobody may touch any block of m; the visitor makes the
 *       held list its free list, clears the bitmap and the marks, and sends
 *       m to the reserve, whose decay unmaps it (the purge thread decays the
 *       reserve: pmi_medium_decay).
 *   USED region:  the owner's fast paths may be inside it; the block goes
 *       into remote.c's table held_used beside it (live, marked, counted in
 *       used), as a USED pool's: a region that is not the head of its class
 *       and whose every block out is held there goes to the reserve
 *       (pmi_medium_give_held, pmi_medium_held_emptied); the head's, and
 *       those of regions the owner still holds blocks of, wait for the
 *       owner's next collection, their pages past each block's first given
 *       back after the decay (remote.c, pmi_remote_held_purge).
 * The owner applies held blocks before it touches a FULL region
 * (pmi_medium_apply: free_local_slow, malloc's slow path, every
 * collection): it clears their live bits and marks, makes the held list the
 * free list, and moves the region where its count says.
 *
 * Why a list of its own, not free_block's path: freeing into a FULL region
 * makes it the head of usedmedium[c], a list the owner's malloc fast path
 * reads without any handshake. */

/* A visitor holding heap's lock: takes block, which another thread freed,
 * into its FULL region; false if the owner must take it. */
bool pmi_medium_hold(pmi_heap *heap, pmi_block *block) {
  pmi_medium *m = pmi_medium_of(block);
  if (pmi_load_relaxed(&m->heap) != heap || m->state != PMI_MEDIUM_FULL) return false;
  const char *fault = fault_owned(m, block);
  if (fault != NULL) pmi_bad_pointer("free", block, fault);
  if (pmi_medium_slow(m)->held == NULL) {
    m->nextregion = heap->remote_mediums;
    heap->remote_mediums = m;
  }
  pmi_link_set(block, pmi_medium_slow(m)->held);   /* live bit and mark stay until applied */
  pmi_medium_slow(m)->held = block;
  m->used--;
  return true;
}

/* A visitor giving back a USED region that is not the head of its class
 * and whose every block out it holds (remote.c, "held blocks of USED pools
 * and regions", which says why no fast path can reach it): each held block
 * becomes a free block (checked live, as free_block's callers check it),
 * then pmi_medium_held_emptied sends the region, used 0, to the reserve as
 * free's "emptied" path would (release_empty).  The region keeps every
 * carved block on its free list or dormant, as an emptied one does. */
void pmi_medium_give_held(pmi_medium *m, pmi_block *block) {
  unsigned units = pmi_medium_units(block);
  uint64_t *word = live_word(m, units);
  if (!(*word & live_bit(units))) pmi_bad_pointer("free", block, "double free or corruption: block already freed,");
  *word &= ~live_bit(units);
  block->key = 0;
  pmi_link_set(block, m->freeblock);
  m->freeblock = block;
}

void pmi_medium_held_emptied(pmi_heap *heap, pmi_medium *m, unsigned n) {
  pmi_assert(m->state == PMI_MEDIUM_USED && pmi_medium_slow(m)->prevregion != NULL && m->used == n);
  m->used = 0;
  heap->counters.free_remote += n;
  heap->counters.free_remote_medium += n;
  release_empty(heap, m);   /* (the unlink writes the previous region's nextregion: no fast path reads it) */
}

/* A visitor, after its walk: held regions with no block in use go to the
 * reserve. */
void pmi_medium_release_held(pmi_heap *heap) {
  pmi_medium **link = &heap->remote_mediums;
  while (*link != NULL) {
    pmi_medium *m = *link;
    if (m->used != 0) {
      link = &m->nextregion;
      continue;
    }
    *link = m->nextregion;
    m->nextregion = NULL;
    pmi_block *last = NULL;
    for (pmi_block *b = pmi_medium_slow(m)->held; b != NULL; last = b, b = pmi_link_get(b)) b->key = 0;
    memset(m->live, 0, sizeof m->live);
    heap->counters.free_remote += m->capacity;
    heap->counters.free_remote_medium += m->capacity;
    m->freeblock = pmi_held_to_free(pmi_medium_slow(m)->held, last);   /* every block: a region that serves its class again keeps its list */
    pmi_medium_slow(m)->held = NULL;
    region_retire(heap, m);
  }
}

/* The owner (or the holder of an unowned heap's lock): every held block
 * becomes a free block of its region. */
void pmi_medium_apply(pmi_heap *heap) {
  pmi_medium *m = heap->remote_mediums;
  heap->remote_mediums = NULL;
  while (m != NULL) {
    pmi_medium *next = m->nextregion;
    m->nextregion = NULL;
    unsigned n = 0;
    pmi_block *last = NULL;
    for (pmi_block *b = pmi_medium_slow(m)->held; b != NULL; last = b, b = pmi_link_get(b), n++) {
      b->key = 0;
      unsigned units = pmi_medium_units(b);
      *live_word(m, units) &= ~live_bit(units);
    }
    pmi_assert(m->state == PMI_MEDIUM_FULL && m->freeblock == PMI_LIST_END && n == (unsigned)(m->capacity - m->used));
    m->freeblock = pmi_held_to_free(pmi_medium_slow(m)->held, last);
    pmi_medium_slow(m)->held = NULL;
    heap->counters.free_remote += n;
    heap->counters.free_remote_medium += n;
    if (m->used == 0) region_retire(heap, m);   /* on no list */
    else used_push(heap, m);                     /* FULL -> USED */
    m = next;
  }
}

/* The purge thread: the reserve's regions past their decay go back to the
 * OS; true while it keeps more than it may for good. */
bool pmi_medium_decay(uint64_t now) {
  size_t gone = reserve_decay(&pmi_heap_empty, now);
  if (gone != 0) atomic_fetch_add_explicit(&pmi_purge_stats.purge_bytes, gone * PMI_MEDIUM_SIZE, memory_order_relaxed);
  return pmi_load_relaxed(&reserve_count) > reserve_keep();
}

/* ---- free pages of regions ---------------------------------------------------
 * A region that keeps a few live blocks keeps the pages of its free ones.
 * purge_region gives back (madvise, the mapping stays) every page of its
 * carved span that no live block touches.  A free block whose first page
 * goes loses its link word, so it leaves the free list and is dormant
 * until the list runs dry (wake); a region with no live block at all goes
 * back to uncarved (ncarved 0; the pages it touched still count as
 * touched, see grew).  Two triggers, both with hysteresis
 * against the page-fault cost of touching the pages again (about 2 us a
 * page here):
 *  - idle: the region's free list head and counts have not changed for
 *    POOLMALLOC_ARENA_DECAY_MS (a cheap signature; a block handed out and
 *    freed again in between looks unchanged, which only delays its purge);
 *  - growth: the process is about to touch fresh memory (a region's
 *    carve past what it ever touched, a pool's first or purged page:
 *    grew) while a region of the heap holds at least RECLAIM_MIN bytes of
 *    free blocks, a quarter of its carved bytes and two carves' worth
 *    (less is what a class being carved keeps), and has not changed since
 *    the previous look: its pages go back to the kernel, which hands them
 *    out again for the new ones, instead of the process growing beside
 *    memory it no longer uses (a program whose phases move between size
 *    classes, bench_frag: memory freed in one class, or by medium blocks,
 *    serves the next phase's classes).  Looked at once per RECLAIM_STEP of
 *    growth (the hysteresis: a region idle for less is not touched; with
 *    256 KiB, BM_batch_medium<kRandom>/65536 took 22 % more page faults,
 *    its regions purged between two batches), and only as many bytes as the growth since the last look
 *    (owed: what a look did not find is carried to the next), the
 *    highest pages of a region first, pages given back before counting
 *    for nothing: what goes back beyond the growth only lowers the
 *    process below the peak it has already reached, and is faulted in
 *    again by the next phase that uses it (bench_frag: every region page
 *    given back in a 64..512-byte phase, 41 MB, the next phase's medium
 *    blocks took again, where 12 MB kept the process at its peak).  Pages that come back to a region (a wake, a carve below what
 *    it touched before) are not growth, so a purge never feeds the next.
 * A region purged stays marked by its signature, so it is not purged
 * again until it changes.  Only the owner walks its free lists (the free
 * fast path pushes without a lock), so the owner does it: from its slow
 * paths, and at malloc_trim and thread exit for every region (force). */

static inline uintptr_t idle_sig(const pmi_medium *m) {
  return (uintptr_t)m->freeblock ^ ((uintptr_t)m->used << 48) ^ ((uintptr_t)m->ncarved << 32) ^
         ((uintptr_t)pmi_medium_slow(m)->ndormant << 16) ^ 1;
}

#define PAGE_WORDS (PMI_MEDIUM_SIZE / 4096 / 64)   /* a bit per page of the smallest size, 4 KiB */

/* Every page of m's carved span that no live block touches goes back, up
 * to limit bytes of them, the highest first (carves and wakes take the
 * lowest blocks first, so the pages kept are the ones used next); the
 * free list keeps the free blocks whose first page stays, the others are
 * dormant.  The bytes given back. */
static size_t purge_region(pmi_medium *m, size_t limit) {
  size_t page = pmi_os_page_size(), size = pmi_medium_slow(m)->block_size;
  unsigned shift = (unsigned)__builtin_ctzl(page);
  size_t end = span_start(m) + (size_t)m->ncarved * size;   /* offsets in the region */
  size_t first = span_start(m) >> shift, last = (end + page - 1) >> shift;   /* (the header ends on a page) */
  uint64_t busy[PAGE_WORDS] = {0};
  unsigned nlive = 0;
  for (unsigned w = 0; w < PMI_MEDIUM_UNITS / 64; w++) {
    for (uint64_t bits = m->live[w]; bits != 0; bits &= bits - 1, nlive++) {
      size_t off = ((size_t)w * 64 + (unsigned)__builtin_ctzll(bits)) * (PMI_MEDIUM_SIZE / PMI_MEDIUM_UNITS);
      for (size_t pg = off >> shift; pg <= (off + size - 1) >> shift; pg++) busy[pg >> 6] |= (uint64_t)1 << (pg & 63);
    }
  }
  /* Pages already given back (a purge before, not touched since) cost
   * nothing and count for nothing; past the limit, the lower resident free
   * pages stay as if busy. */
  unsigned char res[PMI_MEDIUM_SIZE / 4096];
  bool known = page == 4096 && last > first &&
               pmi_os_resident(pmi_medium_base(m) + (first << shift), (last - first) << shift, res + first);
  size_t budget = limit >> shift;
  bool kept = false;
  for (size_t pg = last; pg-- > first;) {
    if (busy[pg >> 6] & ((uint64_t)1 << (pg & 63))) continue;
    if (known && !(res[pg] & 1)) continue;
    if (budget != 0) {
      budget--;
    } else {
      busy[pg >> 6] |= (uint64_t)1 << (pg & 63);
      kept = true;
    }
  }
  if (nlive == 0 && !kept) {   /* nothing live and nothing kept: the region is uncarved again */
    m->ncarved = 0;
    pmi_medium_slow(m)->ndormant = 0;
    m->freeblock = PMI_LIST_END;
  } else {
    pmi_block *list = PMI_LIST_END;
    unsigned dormant = 0;
    for (unsigned i = m->ncarved; i-- > 0;) {
      size_t off = span_start(m) + (size_t)i * size;
      pmi_block *b = (pmi_block *)(pmi_medium_base(m) + off);
      unsigned units = pmi_medium_units(b);
      if (*live_word(m, units) & live_bit(units)) continue;
      size_t pg = off >> shift;
      if (!(busy[pg >> 6] & ((uint64_t)1 << (pg & 63)))) {
        dormant++;
        continue;
      }
      pmi_link_set(b, list);
      list = b;
    }
    m->freeblock = list;
    pmi_medium_slow(m)->ndormant = (uint16_t)dormant;
  }
  size_t bytes = 0;
  for (size_t pg = first; pg < last;) {
    if ((busy[pg >> 6] & ((uint64_t)1 << (pg & 63))) || (known && !(res[pg] & 1))) {
      pg++;
      continue;
    }
    size_t run = pg;
    while (run < last && !(busy[run >> 6] & ((uint64_t)1 << (run & 63))) && !(known && !(res[run] & 1))) run++;
    pmi_os_purge(pmi_medium_base(m) + (pg << shift), (run - pg) << shift);
    bytes += (run - pg) << shift;
    pg = run;
  }
  return bytes;
}

/* The pages m touched past its carved blocks: a region from the reserve
 * carved for another class than before keeps the old class's pages beyond
 * what the new one has carved.  They go back, and are no longer touched. */
static size_t purge_tail(pmi_medium *m) {
  size_t page = pmi_os_page_size();
  size_t lo = (span_start(m) + (size_t)m->ncarved * pmi_medium_slow(m)->block_size + page - 1) & ~(page - 1);
  size_t hi = (((size_t)pmi_medium_slow(m)->touched << PMI_MEDIUM_TOUCH_SHIFT) + page - 1) & ~(page - 1);
  if (hi > PMI_MEDIUM_SIZE) hi = PMI_MEDIUM_SIZE;
  if (hi <= lo) return 0;
  pmi_os_purge(pmi_medium_base(m) + lo, hi - lo);
  pmi_medium_slow(m)->touched = (uint16_t)(lo >> PMI_MEDIUM_TOUCH_SHIFT);
  return hi - lo;
}

/* The free bytes of m's carved blocks that are on its free list. */
static size_t free_bytes(const pmi_medium *m) {
  unsigned nused = pmi_medium_nused(m);
  return (size_t)(m->ncarved - nused - pmi_medium_slow(m)->ndormant) * pmi_medium_slow(m)->block_size;
}

/* Owner (or holder of an unowned heap's lock): purges the regions of heap
 * idle since the decay (all of them with force); the bytes given back.
 * *pending (if not NULL) when a region with free pages waits for its decay. */
size_t pmi_medium_purge_idle(pmi_heap *heap, uint64_t now, bool force, bool *pending) {
  uint64_t decay = (uint64_t)pmi_option(arena_decay_ms);
  size_t bytes = 0;
  size_t n = 0;
  bool waits = false;
  for (pmi_medium *m = heap->mediums; m != NULL && n <= heap->nmediums; m = pmi_medium_slow(m)->next_owned, n++) {
    if (m->freeblock == PMI_LIST_END) continue;              /* nothing (more) to give back */
    uintptr_t sig = idle_sig(m);
    if (pmi_medium_slow(m)->idle_sig == (sig ^ 1)) continue;          /* purged, and not changed since */
    if (pmi_medium_slow(m)->idle_sig != sig) {                        /* changed: idle from now */
      pmi_medium_slow(m)->idle_sig = sig;
      pmi_medium_slow(m)->idle_ms = now;
      if (!force) {
        waits = true;
        continue;
      }
    }
    if (!force && now - pmi_medium_slow(m)->idle_ms < decay) {
      waits = true;
      continue;
    }
    bytes += purge_region(m, SIZE_MAX);
    pmi_medium_slow(m)->idle_sig = idle_sig(m) ^ 1;
  }
  if (pending != NULL) *pending |= waits;
  if (heap != &pmi_heap_empty) heap->counters.medium_purge_bytes += bytes;
  return bytes;
}

/* The whole pages inside held block b, past its link words (a held block
 * keeps its live bit until the owner applies it, so purge_region sees it
 * live). */
static size_t purge_held_block(pmi_medium *m, char *b) {
  uintptr_t page = pmi_os_page_size();
  uintptr_t lo = ((uintptr_t)b + sizeof(pmi_block) + page - 1) & ~(page - 1);
  uintptr_t hi = ((uintptr_t)b + pmi_medium_slow(m)->block_size) & ~(page - 1);
  if (hi <= lo) return 0;
  pmi_os_purge((void *)lo, hi - lo);
  return hi - lo;
}

/* The same for the blocks held for FULL regions of a live owner (a visitor,
 * which alone touches them while they are held: "held blocks" above), so
 * that a few live blocks of an idle owner do not pin a region's pages.  The
 * purge thread at each pass and malloc_trim (force); *pending when a region
 * was seen changed and may go at a later pass. */
size_t pmi_medium_purge_held(pmi_heap *heap, uint64_t now, bool force, bool *pending) {
  uint64_t decay = (uint64_t)pmi_option(arena_decay_ms);
  size_t bytes = 0;
  for (pmi_medium *m = heap->remote_mediums; m != NULL; m = m->nextregion) {
    if (pmi_medium_slow(m)->block_size < 2 * pmi_os_page_size()) continue;   /* no whole page inside a block */
    uintptr_t sig = (uintptr_t)pmi_medium_slow(m)->held ^ ((uintptr_t)m->used << 48) ^ 1;
    if (pmi_medium_slow(m)->idle_sig == (sig ^ 1)) continue;   /* purged, and not changed since */
    if (pmi_medium_slow(m)->idle_sig != sig) {
      pmi_medium_slow(m)->idle_sig = sig;
      pmi_medium_slow(m)->idle_ms = now;
      if (!force) {
        *pending = true;
        continue;
      }
    }
    if (!force && now - pmi_medium_slow(m)->idle_ms < decay) {
      *pending = true;
      continue;
    }
    unsigned n = 0;
    for (pmi_block *b = pmi_medium_slow(m)->held; b != NULL && n <= m->capacity; b = pmi_link_get(b), n++) bytes += purge_held_block(m, (char *)b);
    pmi_medium_slow(m)->idle_sig = sig ^ 1;
  }
  heap->counters.medium_purge_bytes += bytes;
  /* and those held for USED regions (remote.c's table, by region) */
  return bytes + pmi_remote_held_purge(heap, now, force, pending);
}

size_t pmi_medium_purge_block(pmi_medium *m, pmi_block *b) { return purge_held_block(m, (char *)b); }

/* Growth: the regions of heap with much free (see above) that have not
 * changed since the previous look, up to regions bytes (*region_bytes:
 * what they gave), and, when the memory went to
 * the medium regions (pools: their fresh carves, or pages coming back to
 * them), as many bytes of the empty pools of heap's arenas as the regions
 * took (pools), the emptiest arenas first: their pages are as good as
 * fresh ones for a medium carve or a wake (bench_frag frees 90 % of a
 * phase's pool blocks and then allocates medium ones, many of them woken
 * from the phase before), and the empty pools of the fuller arenas, which
 * the pools take first, keep theirs for the pool blocks of the same phase
 * instead of faulting them in again.  Not on the pools' growth: the pools
 * take their empty pools first, and a purge there would only feed the
 * next.  The bytes given back.  Inside the owner's bracket. */
static size_t reclaim(pmi_heap *heap, size_t regions, size_t pools, size_t *region_bytes) {
  size_t bytes = 0, n = 0;
  uint64_t now = pmi_os_now_ms();
  for (pmi_medium *m = regions ? heap->mediums : NULL; m != NULL && n <= heap->nmediums; m = pmi_medium_slow(m)->next_owned, n++) {
    if (m->state != PMI_MEDIUM_USED) continue;       /* FULL: no free block (held ones: purge_held) */
    uintptr_t sig = idle_sig(m);
    if (pmi_medium_slow(m)->idle_sig == (sig ^ 1)) continue;          /* purged, and not changed since */
    if (pmi_medium_slow(m)->idle_sig != sig) {                        /* changed since the last look: in use */
      pmi_medium_slow(m)->idle_sig = sig;
      pmi_medium_slow(m)->idle_ms = now;
      continue;
    }
    if (bytes >= regions) continue;                  /* enough: the others keep their pages (and marks) */
    bytes += purge_tail(m);
    if (m->freeblock == PMI_LIST_END || bytes >= regions) continue;
    size_t free = free_bytes(m);
    if (pmi_medium_nused(m) != 0 &&   /* (an empty one, the head of its class, goes back whole) */
        (free < RECLAIM_MIN || free * 4 < (size_t)m->ncarved * pmi_medium_slow(m)->block_size || free < 2 * carve_bytes(m)))
      continue;
    size_t limit = regions - bytes, got = purge_region(m, limit);
    bytes += got;
    /* all its free pages gone: marked until it changes; else idle still,
     * for the next look to go on with */
    pmi_medium_slow(m)->idle_sig = idle_sig(m) ^ (got < limit);
  }
  if (heap != &pmi_heap_empty) heap->counters.medium_purge_bytes += bytes;
  *region_bytes = bytes;
  if (pools) {
    /* the spares first: up to four arenas' worth of empty pools that this
     * growth should be served from too (types.h, PMI_SPARE_POOLS) */
    pmi_heap_release_spares(heap);
    size_t pool_bytes = pmi_purge_heap_pools_upto(heap, pools);
    if (pool_bytes != 0) {
      atomic_fetch_add_explicit(&pmi_purge_stats.purges, 1, memory_order_relaxed);
      atomic_fetch_add_explicit(&pmi_purge_stats.purge_bytes, pool_bytes, memory_order_relaxed);
    }
    bytes += pool_bytes;
  }
  return bytes;
}

/* A look, once RECLAIM_STEP of growth, or of memory taken by the regions
 * (fresh carves and pages coming back together), has come: the regions on
 * growth, the empty pools when the regions took the memory. */
static void look(pmi_heap *heap) {
  bool regions = grown >= RECLAIM_STEP;
  bool pools = (regions && grown_medium >= RECLAIM_STEP / 2) || medium_taken() >= RECLAIM_STEP;
  size_t need = pools ? medium_taken() : 0;
  size_t budget = 0;
  if (regions) {
    budget = owed + grown;
    grown = grown_medium = 0;
  }
  if (pools) regrown = grown_medium = 0;
  size_t given = 0;
  reclaim(heap, budget, need, &given);
  /* what this look did not find, the next one may (a region idle since
   * this look: the first look after a phase change finds every region
   * changed): one step at most, so that growth which found nothing idle
   * is not paid for later */
  if (regions) owed = given >= budget ? 0 : budget - given < RECLAIM_STEP ? budget - given : RECLAIM_STEP;
}


/* bytes of fresh memory about to be touched: the huge cache gives up as
 * much headroom (huge.c), and the next look at the regions comes closer. */
static void grew(size_t bytes, bool medium) {
  pmi_huge_yield(bytes);
  grown += bytes;
  if (medium) grown_medium += bytes;
}

void pmi_medium_grew(pmi_heap *heap, size_t bytes) {
  grew(bytes, false);
  if (look_due()) look(heap);
}

/* The same from the owner's carve or wake outside its bracket. */
pmi_noinline static void reclaim_outside(pmi_heap *heap) {
  int saved = errno;
  bool locked = pmi_heap_enter(heap);
  look(heap);
  pmi_heap_leave(heap, locked);
  errno = saved;
}

/* From the owner's medium slow paths: growth since the last look, and idle
 * regions once per decay period (half of it, so that a region idles at
 * most 1.5 periods). */
static __thread uint64_t next_look_ms __attribute__((tls_model("initial-exec")));   /* no allocation at first use */
static void maybe_purge(pmi_heap *heap) {
  if (look_due()) look(heap);
  uint64_t now = pmi_os_now_ms();
  if (now < next_look_ms) return;
  next_look_ms = now + (uint64_t)pmi_option(arena_decay_ms) / 2;
  pmi_medium_purge_idle(heap, now, false, NULL);
}

/* ---- thread exit, trim, fork ------------------------------------------------- */

/* Every empty region kept at the head of usedmedium goes to the reserve
 * (malloc_trim, thread exit, the purge thread's visit of an unowned heap),
 * and the free pages of the others go back once they have been idle for
 * the decay, counted from the first look that saw them as they are (the
 * purge thread's visits of the unowned heap go on while some wait,
 * purge.c).  Not at once: a
 * thread that exits leaves its heap to the next thread that starts
 * (larson: each round's threads take over the blocks of the round before),
 * which would fault those pages in again (mimalloc-bench's larsonN: 10 MB
 * of free blocks' pages given back at the exits of 250 threads); malloc_trim
 * purges them all after (pmi_medium_purge_idle, force). */
void pmi_medium_release_retained(pmi_heap *heap) {
  pmi_medium_purge_idle(heap, pmi_os_now_ms(), false, NULL);
  for (unsigned c = 0; c < PMI_MEDIUM_NCLASSES; c++) {
    pmi_medium *head = heap->usedmedium[c];
    if (head != &pmi_medium_sentinel && head->used == 1) release_empty(heap, head);
  }
}

/* The regions of a heap whose thread did not survive a fork (heap.c's
 * pmi_heap_repair_locked): each rebuilt from its live bitmap, then moved to
 * the list its state calls for. */
static void rebuild(pmi_medium *m) {
  pmi_block *list = PMI_LIST_END;
  unsigned used = 0;
  for (unsigned i = m->ncarved; i-- > 0;) {
    pmi_block *b = (pmi_block *)(first_block(m) + (size_t)i * pmi_medium_slow(m)->block_size);
    unsigned units = pmi_medium_units(b);
    if (*live_word(m, units) & live_bit(units)) {
      used++;
    } else {
      pmi_link_set(b, list);
      list = b;
    }
  }
  m->freeblock = list;
  pmi_medium_slow(m)->ndormant = 0;
  m->used = (uint16_t)used;
}

/* m's blocks handed out: used less the head's extra use. */
unsigned pmi_medium_nused(const pmi_medium *m) {
  pmi_heap *heap = pmi_load_relaxed(&m->heap);
  return m->used - (unsigned)(heap != NULL && m->state == PMI_MEDIUM_USED && heap->usedmedium[m->mclass] == m);
}

void pmi_medium_repair_locked(pmi_heap *heap) {
  for (pmi_medium *m = heap->mediums; m != NULL; m = pmi_medium_slow(m)->next_owned) rebuild(m);
  for (unsigned c = 0; c < PMI_MEDIUM_NCLASSES; c++)
    if (heap->usedmedium[c] != &pmi_medium_sentinel) heap->usedmedium[c]->used++;   /* the heads' extra use */
  pmi_medium *to_release = NULL, *to_push = NULL;
  for (unsigned c = 0; c < PMI_MEDIUM_NCLASSES; c++) {
    pmi_medium *head = heap->usedmedium[c];
    if (head == &pmi_medium_sentinel) continue;
    for (pmi_medium *m = head->nextregion, *next; m != NULL; m = next) {
      next = m->nextregion;
      if (m->used == 0) {
        used_unlink(heap, m);
        m->nextregion = to_release;
        to_release = m;
      } else if (exhausted(m)) {
        used_unlink(heap, m);
        m->state = PMI_MEDIUM_FULL;
      }
    }
  }
  for (pmi_medium *m = heap->mediums; m != NULL; m = pmi_medium_slow(m)->next_owned) {
    if (m->state == PMI_MEDIUM_FULL && m->used < m->capacity) {
      m->nextregion = to_push;
      to_push = m;
    }
  }
  while (to_push != NULL) {
    pmi_medium *m = to_push;
    to_push = m->nextregion;
    used_push(heap, m);
  }
  while (to_release != NULL) {
    pmi_medium *m = to_release;
    to_release = m->nextregion;
    region_retire(heap, m);
  }
  pmi_medium_release_retained(heap);
}

/* fork: the medium reserve's lock is taken after the arena reserve's (fork.c). */
void pmi_medium_fork_prepare(void) { pmi_spin_fork_take(&reserve_lock); }
void pmi_medium_fork_parent(void) { pmi_spin_fork_give(&reserve_lock); }
void pmi_medium_fork_child(void) { atomic_store(&reserve_lock, PMI_LOCK_FREE); }
