/* internal.h: what the files of the library share, grouped by the file that
 * defines it.  Internal names start with pmi_; public ones with pm_. */
#ifndef PM_INTERNAL_H
#define PM_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/compiler.h"
#include "base/message.h"
#include "core/types.h"

/* Everything declared here stays inside the library: with hidden visibility
 * the compiler reaches globals such as pmi_link_key directly, not through
 * the GOT (one load less on the fast paths). */
#pragma GCC visibility push(hidden)

#define pmi_load_relaxed(p)      atomic_load_explicit((p), memory_order_relaxed)
#define pmi_store_relaxed(p, v)  atomic_store_explicit((p), (v), memory_order_relaxed)

/* Internal assertions: compiled in the debug build (POOLMALLOC_CHECKS=ON)
 * only; they re-check the invariants of types.h after each splice. */
#if PM_CHECKS
#define pmi_assert(cond) \
  ((cond) ? (void)0 : pmi_assert_fail(#cond, __FILE__, __LINE__, __func__))
#else
#define pmi_assert(cond) ((void)0)
#endif

/* ---- size classes --------------------------------------------------------- */

static inline size_t pmi_size_class(size_t n) { return (n - 1) >> PMI_ALIGNMENT_SHIFT; }
static inline size_t pmi_class_size(unsigned szidx) { return (size_t)(szidx + 1) << PMI_ALIGNMENT_SHIFT; }

/* ---- front.c: the fast paths' tables (types.h, "the descriptor the fast
 *      paths read") ---------------------------------------------------------- */
extern const pmi_front_tables pmi_front;   /* the original; every heap has a copy */
/* The front class of a size 1 .. MEDIUM_MAX. */
static inline unsigned pmi_front_class(size_t n) { return pmi_front.classes.fclass[(n - 1) >> PMI_ALIGNMENT_SHIFT]; }
/* The calling thread's pointer: on x86-64 the TCB's address, which the TLS
 * ABI keeps at %fs:0 (one load that free's owner test folds into its
 * compare); elsewhere the compiler's thread pointer.  Unique among live
 * threads and never 0; free-map entries name their owner by it
 * (pmi_free_slot). */
static inline uintptr_t pmi_thread_pointer(void) {
#if defined(__x86_64__) && defined(__SEG_FS)
  return *(const uintptr_t __seg_fs *)0;
#else
  return (uintptr_t)__builtin_thread_pointer();
#endif
}
#define PMI_MEDIUM_REGION_OR_ \
  [PMI_REGION_MEDIUM + 0] = PMI_MEDIUM_DESC_OFFSET(0), [PMI_REGION_MEDIUM + 1] = PMI_MEDIUM_DESC_OFFSET(1), \
  [PMI_REGION_MEDIUM + 2] = PMI_MEDIUM_DESC_OFFSET(2), [PMI_REGION_MEDIUM + 3] = PMI_MEDIUM_DESC_OFFSET(3), \
  [PMI_REGION_MEDIUM + 4] = PMI_MEDIUM_DESC_OFFSET(4), [PMI_REGION_MEDIUM + 5] = PMI_MEDIUM_DESC_OFFSET(5), \
  [PMI_REGION_MEDIUM + 6] = PMI_MEDIUM_DESC_OFFSET(6), [PMI_REGION_MEDIUM + 7] = PMI_MEDIUM_DESC_OFFSET(7)
_Static_assert(PMI_MEDIUM_COLOURS == 8, "PMI_MEDIUM_REGION_OR_ spells out every colour");
#define PMI_POOLS_REGION_OR_ [PMI_REGION_POOLS] = PMI_HEADER_SLOT * sizeof(pmi_pool)
/* The kind masks (pmi_front.kinds). */
#define PMI_FRONT_REGION_OR .region_or = { PMI_POOLS_REGION_OR_, PMI_MEDIUM_REGION_OR_ }
#define PMI_FRONT_KIND_MASKS \
  .region_mask = { [PMI_REGION_POOLS] = ~(uintptr_t)(PMI_ARENA_SIZE - 1), \
                   [PMI_REGION_MEDIUM ... PMI_REGION_BYTES - 1] = ~(uintptr_t)(PMI_MEDIUM_SIZE - 1) }, \
  .desc_mask = { [PMI_REGION_POOLS] = (uintptr_t)(PMI_POOLS_PER_ARENA - 1) << 6 }, \
  .word_mask = { [PMI_REGION_POOLS] = (PMI_LIVE_WORDS - 1) * 8, \
                 [PMI_REGION_MEDIUM ... PMI_REGION_BYTES - 1] = (PMI_MEDIUM_LIVE_WORDS - 1) * 8 }

/* x, with the compiler made to forget that it is x (an empty asm: no
 * instruction).  The fast paths count instructions, and left to itself GCC
 * spends some where the hardware's addressing would do the work:
 *   - several arrays of the heap indexed by one class or kind: knowing the
 *     index is the same, GCC forms heap + 8 index once with a lea (and then
 *     holds it in a register) instead of addressing each as disp(heap,
 *     index, 8);
 *   - a word loaded, changed and stored back: it keeps its address in a
 *     register of its own (a lea) instead of using the same operand twice;
 *   - a value needed both as it is and shifted: it copies it early.
 * Passing the value through pmi_opaque before each later use (a chain,
 * x = pmi_opaque(x), so that only one copy is ever live) keeps the uses
 * apart, whatever the struct order and optimisation flags.  scripts/fastpath
 * shows what the fast paths come to. */
static inline uintptr_t pmi_opaque(uintptr_t x) {
  __asm__("" : "+r"(x));
  return x;
}
/* The same, once after is computed: the uses of x that follow come after
 * it (so that x may then change in place). */
static inline uintptr_t pmi_opaque_after(uintptr_t x, uintptr_t after) {
  __asm__("" : "+r"(x) : "r"(after));
  return x;
}

static inline pmi_arena *pmi_arena_of(const void *p) {
  return (pmi_arena *)((uintptr_t)p & ~(PMI_ARENA_SIZE - 1));
}
static inline pmi_pool *pmi_pool_of(pmi_arena *arena, const void *p) {
  /* &arena->pools[((p >> POOL_SHIFT) % POOLS_PER_ARENA) ^ HEADER_SLOT], as
   * one shift, mask and xor: descriptors are 64 bytes (types.h) */
  uintptr_t offset = ((uintptr_t)p >> (PMI_POOL_SHIFT - 6)) & ((uintptr_t)(PMI_POOLS_PER_ARENA - 1) << 6);
  return (pmi_pool *)((char *)arena + (offset ^ (PMI_HEADER_SLOT << 6)));
}
/* The descriptor of page i of arena (types.h, the arena layout). */
static inline pmi_pool *pmi_arena_pool(pmi_arena *arena, unsigned i) { return &arena->pools[i ^ PMI_HEADER_SLOT]; }
/* The block size of the pool p (an address in an arena) lies in; 0 when that
 * pool is not in use.  The one place a pointer's size class is found. */
static inline size_t pmi_pool_block_size_of(const void *p) {
  const pmi_pool *pool = pmi_pool_of(pmi_arena_of(p), p);
  if (pool->state != PMI_POOL_USED && pool->state != PMI_POOL_FULL) return 0;
  return pmi_class_size(pool->szidx);
}
/* The address of the page a descriptor describes. */
static inline char *pmi_pool_base(pmi_pool *pool) {
  pmi_arena *arena = pmi_arena_of(pool);
  return (char *)arena + (size_t)((unsigned)(pool - arena->pools) ^ PMI_HEADER_SLOT) * PMI_POOL_SIZE;
}

/* ---- free-list links -------------------------------------------------------
 * A block's link is stored as next ^ block ^ a per-process secret, and every
 * link the allocator follows is checked to stay inside its pool (all free
 * lists but the thread_free stacks are per pool): a corrupted link is
 * reported, not followed.  Mixing in the block's own address makes the
 * check cheap: next ^ block is the stored link ^ the secret, so the link
 * stays in the pool exactly when that is below POOL_SIZE (or next is NULL,
 * when it equals the block's address).  Cost: two xors per push, one per pop
 * and one compare. */
extern uintptr_t pmi_link_key;
static inline pmi_block *pmi_link_get(const pmi_block *b) {
  return (pmi_block *)(b->link ^ pmi_link_key ^ (uintptr_t)b);
}
static inline void pmi_link_set(pmi_block *b, const pmi_block *next) {
  b->link = (uintptr_t)next ^ pmi_link_key ^ (uintptr_t)b;
}
/* next ^ block, from the link alone; in the pool <=> < POOL_SIZE (the
 * list's end, PMI_LIST_END, is outside every pool and region) */
static inline uintptr_t pmi_link_offset(const pmi_block *b) { return b->link ^ pmi_link_key; }

/* ---- the end of every free list ----------------------------------------- *
 * A free list (a pool's or a medium region's freeblock list) ends not in
 * NULL but in PMI_LIST_END, a static block outside every pool and region:
 * an empty list's head is PMI_LIST_END, the last block's link decodes to
 * it.  Its own link word is all ones until start-up sets pmi_link_key, and
 * ~pmi_link_key from then on (pmi_list_end_init); the empty medium head's
 * list is ended when the first heap is made (heap.c; it stays in .bss until
 * then): decoded, its offset is all ones, above every link limit.  So malloc's fast path needs no NULL test: an empty list fails the
 * same link compare as the last block and a corrupt link, and the slow
 * path tells the three apart (block == PMI_LIST_END: empty).  Held lists
 * (remote frees into a FULL pool or region) end in NULL; they become free
 * lists with their tail relinked to the end (pmi_held_to_free). */
extern pmi_block pmi_list_end;
#define PMI_LIST_END (&pmi_list_end)
void pmi_list_end_init(void);   /* its link (pool.c) */
/* held, a NULL-ended held list whose last block is last (NULL: empty), as
 * a free list ending in PMI_LIST_END */
static inline pmi_block *pmi_held_to_free(pmi_block *held, pmi_block *last) {
  if (last == NULL) return PMI_LIST_END;
  pmi_link_set(last, PMI_LIST_END);
  return held;
}
_Noreturn void pmi_link_corrupt(const void *block, const void *next);
struct pmi_pool;
void *pmi_pool_pop_last(struct pmi_pool *pool, pmi_block *block);   /* next PMI_LIST_END, or corrupt */

/* ---- the live bitmap ----------------------------------------------------- *
 * pool.live has a bit per 16-byte unit of the pool; the bit of a block's
 * first unit is set while the block is handed out.  Indexing by unit, not by
 * block, needs no division: a pointer inside a block finds a bit that is
 * never set, so the fast path sends it to the slow path's exact checks. */
static inline unsigned pmi_block_units(const void *p) {
  return (unsigned)(((uintptr_t)p & (PMI_POOL_SIZE - 1)) >> PMI_ALIGNMENT_SHIFT);
}
static inline uint64_t *pmi_live_word(pmi_pool *pool, unsigned units) { return &pool->live[units >> 6]; }
static inline uint64_t pmi_live_bit(unsigned units) { return (uint64_t)1 << (units & 63); }

/* w with bit n % 64 cleared.  On x86-64 one btr: its register form takes
 * the count modulo 64 itself, where gcc would first mask a copy of n (two
 * instructions more).  Free's fast path, which tests the bit too, takes
 * both from one btr (pmi_bit_take, below). */
static inline uint64_t pmi_bit_clear(uint64_t w, uint64_t n) {
#if defined(__x86_64__)
  __asm__("btr %1, %0" : "+r"(w) : "r"(n) : "cc");
  return w;
#else
  return w & ~((uint64_t)1 << (n & 63));
#endif
}

/* The test and the clear of bit n % 64 of *w as one instruction: true if it
 * was set, and *w has it cleared (a register; the caller stores it only
 * once its other checks pass).  On x86-64 one btr, whose carry is the bit's
 * old value: free's fast path tested it with a bt and cleared it with a
 * btr after the pool's state test, the same bit twice. */
static inline bool pmi_bit_take(uint64_t *w, uint64_t n) {
#if defined(__x86_64__)
  bool was;
  __asm__("btr %2, %0" : "+r"(*w), "=@ccc"(was) : "r"(n));
  return was;
#else
  uint64_t bit = (uint64_t)1 << (n & 63);
  bool was = (*w & bit) != 0;
  *w &= ~bit;
  return was;
#endif
}

/* pmi_pool_pop_last's body, for desc_pop_last (alloc.c) without its call:
 * block is the head of pool's list and its link leaves the pool, so it is
 * the last block (its link PMI_LIST_END), else the link is corrupt. */
static inline void *pmi_pool_take_last(pmi_pool *pool, pmi_block *block) {
  pmi_block *next = pmi_link_get(block);
  if (pmi_unlikely(next != PMI_LIST_END)) pmi_link_corrupt(block, next);
  pool->freeblock = PMI_LIST_END;
  pool->used++;
  uintptr_t u = (uintptr_t)block >> PMI_ALIGNMENT_SHIFT;
  pool->live[(u >> 6) & (PMI_LIVE_WORDS - 1)] |= (uint64_t)1 << (u & 63);
  return block;
}

/* Pops block, the head of pool's free list, and hands it out. */
static inline void *pmi_pool_pop(pmi_pool *pool, pmi_block *block) {
  uintptr_t offset = pmi_link_offset(block);
  pmi_block *next = (pmi_block *)(offset ^ (uintptr_t)block);
  if (pmi_unlikely(offset >= PMI_POOL_SIZE)) return pmi_pool_pop_last(pool, block);
  pool->freeblock = next;
  pool->used++;
  uintptr_t u = (uintptr_t)block >> PMI_ALIGNMENT_SHIFT;   /* the bit: u mod 64 */
  pool->live[(u >> 6) & (PMI_LIVE_WORDS - 1)] |= (uint64_t)1 << (u & 63);
  return block;
}

/* Pushes a freed block on pool's free list (the caller has cleared its live
 * bit and counts used). */
static inline void pmi_pool_push(pmi_pool *pool, pmi_block *block) {
  pmi_link_set(block, pool->freeblock);
  pool->freeblock = block;
}

/* The second half of malloc's fast path (alloc.c, front_pop, which has
 * checked the link: offset = next ^ block is below the class's limit):
 * block, the head of descriptor d's free list (d is heap.front[fc]), is
 * handed out: pmi_pool_pop and pmi_medium_pop as one, their constants read
 * from pmi_front.classes (t) by front class. */
static inline void *pmi_desc_take(const pmi_class_tables *t, pmi_desc *d, pmi_block *block, uintptr_t fc,
                                  uintptr_t offset) {
  offset = pmi_opaque(offset);   /* next from it in place, after the test */
  pmi_block *next = (pmi_block *)(offset ^ (uintptr_t)block);
  d->freeblock = next;
  /* The next malloc of this class reads next's link.  In a large live set
   * next was freed long ago (the pool's list is LIFO, but the head pool is
   * rarely the one the last free went to) and its line is cold: fetched
   * now, it is there by then (alloc-test: a fifth less time in malloc).
   * The end block and a corrupt link are harmless to prefetch. */
  __builtin_prefetch(next);
  d->used++;
  /* The bit is u mod 64, its word's offset (u >> 3) & mask: both from u in
   * one register (left to itself GCC computes block >> 7 from a second copy) */
  uintptr_t u = pmi_opaque((uintptr_t)block >> PMI_ALIGNMENT_SHIFT);
  uint64_t bit = (uint64_t)1 << (u & 63);
  u = pmi_opaque_after(u, bit);   /* the shift by %cl first, then u >> 3 in place */
  fc = pmi_opaque(fc);
  uint64_t *word = (uint64_t *)((char *)d->live + ((u >> 3) & t->word_mask[fc]));
  *word |= bit;
  return block;
}

/* Which kind a descriptor is: a pool's is a 64-byte slot of its arena's
 * first page, a region's header starts half-way into a line (types.h,
 * MEDIUM_DESC_OFFSET). */
static inline bool pmi_desc_is_medium(const pmi_desc *d) { return ((uintptr_t)d & 32) != 0; }

/* ---- os.c: the only file that talks to the kernel ------------------------- */
void  *pmi_os_map(size_t size);                       /* zeroed, page-aligned */
void  *pmi_os_reserve(size_t size);                   /* the same, not committed */
void  *pmi_os_map_aligned(size_t size, size_t align, void *hint);
void   pmi_os_unmap(void *p, size_t size);
void   pmi_os_purge(void *p, size_t size);              /* pages back, mapping kept */
void  *pmi_os_remap(void *old, size_t old_size, size_t new_size, void *to);   /* mremap */
void   pmi_os_decommit(void *p, size_t size);         /* madvise(MADV_DONTNEED) */
bool   pmi_os_advise_huge(void *p, size_t size);      /* madvise(MADV_HUGEPAGE) */
/* os.c, pmi_os_thp_mode; 0: not read yet (chunk.c) */
enum pmi_thp_mode { PMI_THP_NONE = -1, PMI_THP_ADVISE = 1, PMI_THP_ALIGN = 2, PMI_THP_STALLS = 3 };
int    pmi_os_thp_mode(bool advise_anyway);           /* how THP may come: os.c */
void   pmi_os_write(int fd, const char *s, size_t n);
size_t pmi_os_page_size(void);
uintptr_t pmi_os_break(void);                         /* the program break now */
bool   pmi_os_mapped(const void *p, size_t n);        /* every page mapped? reads none */
bool   pmi_os_resident(const void *p, size_t len, unsigned char *vec);   /* mincore */
uint64_t pmi_os_random(void);                         /* from AT_RANDOM, no syscall */
uint64_t pmi_os_now_ms(void);
bool   pmi_os_clock_direct(void);                  /* the vDSO's clock, not the C library's (tests) */
void   pmi_os_counts(uint64_t *mmaps, uint64_t *munmaps);                         /* monotonic, coarse, vDSO */
long   pmi_os_thread_id(void);
bool   pmi_os_membarrier_register(void);              /* once per process; false: unavailable */
bool   pmi_os_membarrier(void);                       /* a full barrier on every running thread */
void   pmi_os_fmt(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- lock.c: the spin lock of every core list ------------------------------
 * Spin locks, because they are held for a few list splices and must be
 * re-initialisable in a forked child (a store of PMI_LOCK_FREE).  A lock is
 * free, held, or held for a fork in progress: the forking thread passes
 * through such a lock, so that other libraries' atfork handlers may
 * allocate (see lock.c).  Taking a free lock is one CAS. */
#define PMI_LOCK_FREE 0
#define PMI_LOCK_HELD 1
#define PMI_LOCK_FORK 2
void   pmi_spin_lock_slow(_Atomic int *lock);
static inline void pmi_spin_lock(_Atomic int *lock) {
  int expected = PMI_LOCK_FREE;
  if (pmi_unlikely(!atomic_compare_exchange_weak_explicit(lock, &expected, PMI_LOCK_HELD, memory_order_acquire,
                                                          memory_order_relaxed)))
    pmi_spin_lock_slow(lock);
}
static inline bool pmi_spin_trylock(_Atomic int *lock) {
  int expected = PMI_LOCK_FREE;
  return pmi_load_relaxed(lock) == PMI_LOCK_FREE &&
         atomic_compare_exchange_strong_explicit(lock, &expected, PMI_LOCK_HELD, memory_order_acquire,
                                                 memory_order_relaxed);
}
/* Held by us (a store ends it), or by the fork we are inside (the fork's
 * parent handler ends it). */
static inline void pmi_spin_unlock(_Atomic int *lock) {
  if (pmi_likely(pmi_load_relaxed(lock) != PMI_LOCK_FORK))
    atomic_store_explicit(lock, PMI_LOCK_FREE, memory_order_release);
}
void   pmi_spin_fork_take(_Atomic int *lock);   /* prepare: waits, then marks it the fork's */
void   pmi_spin_fork_give(_Atomic int *lock);   /* parent */
void   pmi_spin_fork_begin(void);               /* this thread is forking (holds the first lock) */
void   pmi_spin_fork_end(void);

/* ---- fork.c: the atfork handlers ----------------------------------------- */
extern _Atomic int pmi_fork_state;
void   pmi_fork_setup_slow(void);
/* Registers the handlers once, before the first lock of ours is taken
 * (fork.c says where); one load once they are. */
static inline void pmi_fork_setup(void) {
  if (pmi_unlikely(atomic_load_explicit(&pmi_fork_state, memory_order_acquire) != 2)) pmi_fork_setup_slow();
}

/* ---- arenamap.c: is this address in one of our arenas? -------------------- *
 * One byte per 256 KiB slot of the 47-bit user address space, in one flat
 * array reserved (not committed) at start-up: slot i is the byte for
 * addresses [i << ARENA_SHIFT, (i + 1) << ARENA_SHIFT).  Its values: */
/* (enum pmi_region_kind, types.h) */
#define PMI_MAP_SLOTS  ((uintptr_t)1 << (47 - PMI_ARENA_SHIFT))
void   pmi_arenamap_init(void);    /* from pmi_process_init, before any arena */
bool   pmi_arenamap_add(pmi_arena *arena);
void   pmi_arenamap_remove(pmi_arena *arena);
bool   pmi_arenamap_set(const void *start, size_t size, uint8_t kind);  /* whole slots */
void   pmi_freemap_set_owner(const void *start, size_t size, uintptr_t owner);  /* whole slots */
extern _Atomic(_Atomic uint8_t *) pmi_arenamap;    /* the map, NULL until reserved */
extern _Atomic uintptr_t pmi_arenamap_slots;       /* PMI_MAP_SLOTS once reserved, else 0 */
extern pmi_free_slot *pmi_freemap;                 /* PMI_MAP_SLOTS entries, once reserved */
/* Set at start-up when the maps cannot be reserved (an address-space
 * limit): no region can be registered, so that no heap is made and every
 * allocation's slow path hands the call to the C library (alloc.c). */
extern int pmi_libc_only;
pmi_free_slot pmi_free_slot_for(uintptr_t start, unsigned byte);   /* the entry of a slot of start's region */

static inline unsigned pmi_arenamap_slot_raw(uintptr_t slot) {
  /* Plain reads of the bound and of the byte: each is written whole (the
   * bound once, when the map is reserved), and a relaxed atomic load would
   * keep the compiler from folding it into its compare. */
  if (pmi_unlikely(slot >= *(const uintptr_t *)&pmi_arenamap_slots)) return PMI_REGION_NONE;
  return ((const uint8_t *)pmi_load_relaxed(&pmi_arenamap))[slot];
}
/* The kind (enum pmi_region_kind): every medium byte is MEDIUM. */
static inline unsigned pmi_arenamap_slot_kind(uintptr_t slot) {
  unsigned b = pmi_arenamap_slot_raw(slot);
  return b > PMI_REGION_MEDIUM ? PMI_REGION_MEDIUM : b;
}

/* What kind of region p is in: O(1), and never reads the memory p points to. */
static inline unsigned pmi_arenamap_kind(const void *p) {
  return pmi_arenamap_slot_kind((uintptr_t)p >> PMI_ARENA_SHIFT);
}
/* Is p in an arena of pools? */
static inline bool pmi_arenamap_contains(const void *p) {
  return pmi_arenamap_slot_raw((uintptr_t)p >> PMI_ARENA_SHIFT) == PMI_REGION_POOLS;
}
/* The arena map's byte for p (a medium region's carries its colour). */
static inline unsigned pmi_arenamap_byte(const void *p) { return pmi_arenamap_slot_raw((uintptr_t)p >> PMI_ARENA_SHIFT); }

/* free's first test: p is 16-byte aligned and in an arena of pools.  The
 * address is rotated right by 4 before the shift, so that a misaligned
 * pointer's low bits land above the slot index and it finds no slot: one
 * lookup answers both questions. */
static inline uintptr_t pmi_rotate_units(const void *p) {
  uintptr_t a = (uintptr_t)p;
  return (a >> PMI_ALIGNMENT_SHIFT) | (a << (64 - PMI_ALIGNMENT_SHIFT));
}
/* The arena map's slot of a 16-byte aligned p, from the rotated address
 * (beyond the map for any misaligned p): free's fast path tests its kind,
 * and hands the slot on to the function for all that is not a pool block. */
static inline uintptr_t pmi_arenamap_block_slot(uintptr_t rotated) {
  return rotated >> (PMI_ARENA_SHIFT - PMI_ALIGNMENT_SHIFT);
}
/* The same two reads apart: is slot inside the map, and its byte (for a
 * slot that is), so that free can send the two failures different ways. */
static inline bool pmi_arenamap_slot_in_map(uintptr_t slot) { return slot < *(const uintptr_t *)&pmi_arenamap_slots; }
static inline unsigned pmi_arenamap_slot_byte(uintptr_t slot) {
  return ((const uint8_t *)pmi_load_relaxed(&pmi_arenamap))[slot];
}
static inline bool pmi_arenamap_pool_block(uintptr_t rotated) {
  return pmi_arenamap_slot_raw(pmi_arenamap_block_slot(rotated)) == PMI_REGION_POOLS;
}

/* ---- arena.c: arenas, usable_arenas, the reserve --------------------------- */
pmi_pool *pmi_arena_take_pool(pmi_heap *heap);        /* an EMPTY pool, or NULL (ENOMEM) */
void   pmi_arena_give_pool(pmi_heap *heap, pmi_pool *pool);  /* back to freepools */
void   pmi_arena_release_reserve(size_t keep);
bool   pmi_arena_decay(uint64_t now);   /* unmaps what has decayed; true if more will */
size_t pmi_arena_reserve_count(void);
void   pmi_arena_fork_prepare(void);
void   pmi_arena_fork_parent(void);
void   pmi_arena_fork_child(void);
pmi_arena *pmi_arena_reserve_first(void);
void   pmi_arena_mapped(size_t *now, size_t *peak);

/* ---- chunk.c: arenas' address space, in 2 MiB chunks for big heaps -------- */
void  *pmi_chunk_map(void *hint, size_t mapped, bool *in_chunk);   /* an arena's space; mapped: arenas now */
void   pmi_chunk_counts(uint64_t *chunks, uint64_t *pieces, uint64_t *huge);
#define PMI_CHUNK_SIZE ((size_t)2 << 20)                 /* a huge page */
bool   pmi_chunk_huge_wanted(size_t size, size_t mapped);   /* a huge block's mapping: advise it? */
void   pmi_chunk_advise_huge(void *p, size_t size);
void   pmi_chunk_fork_prepare(void);
void   pmi_chunk_fork_parent(void);
void   pmi_chunk_fork_child(void);

/* ---- pool.c: pool state transitions ---------------------------------------- */
extern pmi_pool pmi_pool_sentinel;
void  *pmi_pool_carve(pmi_pool *pool);                 /* refill freeblock from the tail */
void   pmi_pool_init(pmi_heap *heap, pmi_pool *pool, unsigned szidx);
void   pmi_usedpools_unlink(pmi_heap *heap, pmi_pool *pool);
void   pmi_usedpools_unlink_visited(pmi_heap *heap, pmi_pool *pool);   /* a visitor's, not the head */
void   pmi_usedpools_push(pmi_heap *heap, pmi_pool *pool);
void   pmi_usedpools_append(pmi_heap *heap, pmi_pool *pool);   /* a FULL pool that got a block back */
void   pmi_pool_release_empty(pmi_heap *heap, pmi_pool *pool);
void   pmi_pool_rebuild(pmi_heap *heap, pmi_pool *pool);
void   pmi_pool_emptied(pmi_heap *heap, pmi_pool *pool);   /* free's fast path: used hit 0 */
void   pmi_heap_release_spares(pmi_heap *heap);
void   pmi_heap_trim_spares(pmi_heap *heap, unsigned keep);   /* until keep are left */
bool   pmi_heap_spares_decay(pmi_heap *heap);   /* a visitor of an owned heap: spares seen twice back */
unsigned pmi_heap_count_spares(const pmi_heap *heap);
static inline bool pmi_pool_is_head(const pmi_heap *heap, const pmi_pool *pool) {
  return heap->usedpools[pool->szidx] == pool;
}
/* The head of usedpools[c] gave its last block and the next pool has a
 * free block (desc_pop_last, alloc.c): the head goes to the back of the
 * list, still USED, and the next pool serves.  So free's fast path takes
 * the frees into the drained pool (its one test of the state passes) and
 * none of them relinks it: a batch or a tree dropped pays for no FULL ->
 * USED transition, and the pool serves again when its turn comes, with
 * the frees it gathered in the meantime (an exhausted pool found behind
 * the head when the head drains goes FULL then, alloc.c).  The bias moves
 * with the head, and a spare that becomes the head is counted out as
 * pool.c's spare_leaves does. */
static inline void pmi_usedpools_head_rotate(pmi_heap *heap, pmi_pool *head) {
  pmi_pool *next = head->nextpool, *last = heap->usedlast[head->szidx];
  pmi_assert(head->prevpool == NULL && next != NULL && last != head && pmi_pool_is_head(heap, head));
  heap->usedpools[head->szidx] = next;
  head->used--;
  if (next->used == 0) {   /* a spare, in use again */
    heap->nspare--;
    heap->spare_leaves++;
  }
  next->used++;
  next->prevpool = NULL;
  head->nextpool = NULL;
  head->prevpool = last;
  last->nextpool = head;
  heap->usedlast[head->szidx] = head;
}
/* Blocks of pool handed out: used less the head's bias (types.h). */
static inline unsigned pmi_pool_nused(const pmi_heap *heap, const pmi_pool *pool) {
  return pool->used - (unsigned)pmi_pool_is_head(heap, pool);
}

/* ---- heap.c: per-thread heaps ---------------------------------------------- */
extern pmi_heap pmi_heap_empty;
extern __thread pmi_heap *pmi_heap_tls __attribute__((tls_model("initial-exec")));
pmi_heap *pmi_heap_for_thread(void);     /* the caller's heap, created or adopted */
void   pmi_heap_note_unowned(pmi_heap *owner);   /* a thread without a heap freed into owner (unowned) */
pmi_heap *pmi_heap_own(void);            /* the caller's heap, also in debug mode;
                                            &pmi_heap_empty if it has none */
void   pmi_heap_lock(pmi_heap *heap);
void   pmi_heap_unlock(pmi_heap *heap);
bool   pmi_heap_trylock(pmi_heap *heap);
void   pmi_heap_collect(pmi_heap *heap);  /* take thread_free, free each block */
void   pmi_heap_collect_locked(pmi_heap *heap);
void   pmi_heap_reclaim_unowned(pmi_heap *heap);
void   pmi_heap_repair_locked(pmi_heap *heap);   /* after fork, see pmi_heap.repair */
void   pmi_heap_set_tp(pmi_heap *heap, uintptr_t tp);   /* heap.tp and every free-map entry of its regions */
void   pmi_heap_release_retained(pmi_heap *heap);
pmi_heap *pmi_heap_first(void);          /* the list of all heaps */
void   pmi_heaps_lock(void);
void   pmi_heaps_unlock(void);
void   pmi_heap_fork_prepare(void);
void   pmi_heap_fork_parent(void);
void   pmi_heap_fork_child(void);
void   pmi_heap_setup(void);
void   pmi_heap_register_exit(void);  /* run the exit destructor even without a heap */
void  *pmi_heap_malloc_locked(size_t size);   /* for threads past their own exit */

/* The owner's slow paths and the visitors (heap.c, "Visitors": the
 * handshake and its memory-model argument).  The owner brackets every slow
 * path that touches its lists, FULL pools or arenas with
 *     bool locked = pmi_heap_enter(heap);  ...  pmi_heap_leave(heap, locked);
 * which takes the lock only while a visitor is there; nothing between the
 * two may take heap's lock.  Any other thread that touches an owned heap
 * is a visitor: pmi_heap_visit / pmi_heap_visit_try, then
 * pmi_heap_visit_end (for the caller's own heap and unowned heaps these are
 * the plain lock). */
extern _Atomic int pmi_heap_fenceless;   /* membarrier registered: the owner needs no fence */
bool   pmi_heap_enter_locked(pmi_heap *heap);
/* Inside the bracket, where a visitor reads them (pool.c, "idle spares"
 * without membarrier): the spares the owner has now, all of them made
 * before this point of its program, and the leaves so far. */
static inline void pmi_spares_show(pmi_heap *heap) {
  heap->spares_shown = heap->nspare - heap->spares_gone;
  heap->spares_shown_leaves = heap->spare_leaves;
}
/* The owner's half of the handshake with membarrier in use: busy = 1 and
 * no visitor there (heap.c, "the owner's slow paths, and visitors"). */
static inline bool pmi_heap_enter_fenceless(pmi_heap *heap) {
  atomic_store_explicit(&heap->busy, 1, memory_order_relaxed);
  atomic_signal_fence(memory_order_seq_cst);   /* the compiler keeps store, then load */
  return pmi_likely(atomic_load_explicit(&heap->visitor, memory_order_acquire) == 0);
}
static inline bool pmi_heap_enter(pmi_heap *heap) {
#ifndef PMI_TSAN   /* ThreadSanitizer does not know membarrier: always the seq_cst pair */
  if (pmi_likely(pmi_load_relaxed(&pmi_heap_fenceless))) {
    if (pmi_heap_enter_fenceless(heap)) return false;
    return pmi_heap_enter_locked(heap);
  }
#endif
  atomic_store(&heap->busy, 1);
  if (pmi_likely(atomic_load(&heap->visitor) == 0)) {
    pmi_spares_show(heap);   /* no membarrier: what a visitor may give back (pool.c) */
    return false;
  }
  return pmi_heap_enter_locked(heap);
}
/* The bracket's common case alone, for a slow path that wants no frame
 * (alloc.c, pool_head_quick): true when the owner is in without the lock
 * (membarrier in use, no visitor); false when it is not in at all, and must
 * take pmi_heap_enter.  Left with pmi_heap_leave(heap, false). */
static inline bool pmi_heap_enter_quick(pmi_heap *heap) {
#ifndef PMI_TSAN
  if (pmi_likely(pmi_load_relaxed(&pmi_heap_fenceless))) {
    if (pmi_heap_enter_fenceless(heap)) return true;
    atomic_store_explicit(&heap->busy, 0, memory_order_release);   /* as pmi_heap_enter_locked's first step */
  }
#endif
  return false;
}
static inline void pmi_heap_leave(pmi_heap *heap, bool locked) {
  if (pmi_unlikely(locked)) pmi_heap_unlock(heap);
  else atomic_store_explicit(&heap->busy, 0, memory_order_release);
}
bool   pmi_visit_barrier(void);   /* membarrier for a visitor; false: owners use seq_cst */
void   pmi_heap_visit(pmi_heap *heap);
bool   pmi_heap_visit_try(pmi_heap *heap);   /* false: busy, try a later pass */
void   pmi_heap_visit_end(pmi_heap *heap);

/* ---- alloc.c / free.c: the generic (slow) paths ----------------------------- */
void  *pmi_malloc_generic(size_t size, pmi_heap *heap);
void  *pmi_new_generic(size_t size, pmi_heap *heap, const char *name);   /* api/new.c: operator new's slow path */
pmi_export void *_Znwm(size_t size);   /* C++'s operator new and new[], by their mangled names (alloc.c, api/new.c) */
pmi_export void *_Znam(size_t size);
pmi_export void  _ZdlPv(void *p);   /* C++'s operator delete and delete[] (free.c, api/new.c) */
pmi_export void  _ZdaPv(void *p);
pmi_export void  _ZdlPvm(void *p, size_t size);   /* the sized forms (free.c, api/new.c) */
pmi_export void  _ZdaPvm(void *p, size_t size);
void  *pmi_heap_malloc_small(pmi_heap *heap, size_t size);
void   pmi_free_block(pmi_heap *heap, pmi_pool *pool, pmi_block *block);
pmi_pool *pmi_check_live_block(const char *fn, const void *p);
void   pmi_free_collected(pmi_heap *heap, pmi_block *block);  /* the owner takes a remote free */
const char *pmi_block_fault_owned(pmi_pool *pool, const void *p);   /* why p is not live, or NULL */
_Noreturn void pmi_bad_pointer(const char *fn, const void *p, const char *fault);

/* ---- remote.c: frees from other threads, their collection ------------------ */
void   pmi_remote_free(pmi_heap *owner, pmi_block *block);  /* any kind's block, checked as far as
                                      its kind allows; to owner's batch (remote.c) */
void   pmi_remote_free_medium(pmi_heap *owner, pmi_block *block);   /* the same, a medium block */
void   pmi_remote_flush_all(void);
extern __thread uint8_t pmi_remote_batched __attribute__((tls_model("initial-exec")));
/* Pushes this thread's batches of remote frees (a slow path's first step:
 * one TLS test when it has none). */
static inline void pmi_remote_flush(void) {
  if (pmi_unlikely(pmi_remote_batched)) pmi_remote_flush_all();
}
void   pmi_remote_thread_exit(void);  /* the same, and no batching from now on */
bool   pmi_remote_flush_idle(void);   /* purge thread: every thread's batches; true: some busy */
void   pmi_remote_fork_child(void);
void   pmi_remote_apply(pmi_heap *heap);            /* owner: held blocks become free */
void   pmi_heap_collect_foreign(pmi_heap *heap);    /* lock held, owner alive elsewhere */
void   pmi_heap_collect_any(pmi_heap *heap);        /* lock held, either case */
static inline bool pmi_heap_has_remote(const pmi_heap *heap) {
  /* one test of the four or-ed together: the common answer (none) reads
   * them all anyway, and the slow paths ask it once a pool cycle */
  return ((uintptr_t)pmi_load_relaxed(&heap->thread_free) | (uintptr_t)heap->remote_deferred |
          (uintptr_t)heap->remote_pools | (uintptr_t)heap->held_used) != 0;
}

/* free's fast path: --*used as a release store, for the visitor that gives
 * back a USED pool whose every block out it holds (remote.c, "held blocks
 * of USED pools"): once it reads (acquire) the count this free stored, the
 * free's push and live bit are visible to it.  On x86 (TSO) every store is
 * a release store; the signal fence keeps the compiler from moving the
 * push after the decrement, so the decrement stays one instruction on
 * memory.  Elsewhere, and under ThreadSanitizer (which must see the pair),
 * the C11 store itself. */
static inline __attribute__((always_inline)) uint16_t pmi_used_dec_release(uint16_t *used) {
#if defined(__x86_64__) && !defined(PMI_TSAN)
  atomic_signal_fence(memory_order_release);
  return --*used;
#else
  uint16_t u = (uint16_t)(*used - 1);
  __atomic_store_n(used, u, __ATOMIC_RELEASE);
  return u;
#endif
}
extern uintptr_t pmi_remote_key, pmi_remote_link_key;
const char *pmi_remote_held_fault(const pmi_heap *heap, const void **at);   /* diag/check.c */
size_t pmi_remote_held_purge(pmi_heap *heap, uint64_t now, bool force, bool *pending);   /* a visitor: held regions' pages */
size_t pmi_remote_hints_decay(pmi_heap *heap, bool now, bool *pending);   /* a visitor: an idle heap's hint ring back */

/* ---- purge.c: giving idle memory back ---------------------------------------- */
void   pmi_purge_note(void);          /* something may become returnable later */
void   pmi_purge_kick_slow(void);
extern _Atomic int pmi_purge_wanted, pmi_purge_running;
/* Starts the purge thread if wanted and not running; only where no
 * allocator lock is held.  The load of running is seq_cst: it pairs with
 * the exiting thread's store of running and load of wanted (purge.c). */
static inline void pmi_purge_kick(void) {
  if (pmi_unlikely(pmi_load_relaxed(&pmi_purge_wanted)) && !atomic_load(&pmi_purge_running))
    pmi_purge_kick_slow();
}
size_t pmi_purge_heap_pools(pmi_heap *heap, bool force, bool *pending);  /* lock held; bytes */
size_t pmi_purge_heap_pools_upto(pmi_heap *heap, size_t budget);          /* the same, emptiest arenas first */
int    pmi_release_all(void);         /* malloc_trim(0): every heap, the reserve */
void   pmi_purge_fork_child(void);
typedef struct pmi_purge_counts {
  _Atomic uint64_t purges, purge_bytes, purge_threads, arenas_unmapped;
} pmi_purge_counts;
extern pmi_purge_counts pmi_purge_stats;

/* The core's entry points without the dispatch, for what it dispatches to;
 * they work on the thread's own heap, which in debug mode is not
 * pmi_heap_tls (pmi_heap_own). */
void  *pmi_malloc(size_t size);
void   pmi_free(void *p);
void  *pmi_calloc(size_t total);
void  *pmi_realloc(void *p, size_t size);            /* p != NULL */
void  *pmi_memalign(size_t alignment, size_t size);  /* a power of two */
size_t pmi_usable_size(void *p);
extern uintptr_t pmi_remote_key;

/* ---- medium.c: medium classes, 513 B .. 128 KiB ------------------------------ */
/* (with its slow fields below it, as every region's header has them) */
extern struct pmi_medium_sentinel_header { pmi_medium_slow_fields slow; pmi_medium desc; } pmi_medium_sentinel_header;
#define pmi_medium_sentinel (pmi_medium_sentinel_header.desc)
static inline unsigned pmi_medium_class(size_t n) {   /* types.h draws the classes */
  size_t m = n - 1;
  unsigned b = 63u - (unsigned)__builtin_clzl(m);
  return PMI_MEDIUM_CLASS_OF(m, b);
}
/* The same, by the front table: one load. */
static inline unsigned pmi_medium_class_fast(size_t n) { return pmi_front_class(n) - PMI_NCLASSES; }
static inline size_t pmi_medium_class_size(unsigned c) {
  unsigned b = 9 + c / PMI_MEDIUM_PER_OCTAVE, i = c % PMI_MEDIUM_PER_OCTAVE;
  return i < 8 ? ((size_t)1 << b) + ((size_t)(i + 1) << (b - 5)) : (size_t)(i + 3) << (b - 3);
}
/* A region's descriptor colour (types.h, MEDIUM_DESC_OFFSET), by its
 * address: the same for every byte of it and for its header. */
static inline unsigned pmi_medium_desc_colour(const void *p) {
  return (unsigned)((uintptr_t)p >> PMI_MEDIUM_SHIFT) & (PMI_MEDIUM_COLOURS - 1);
}
/* The region's start: where its blocks' offsets count from, what the OS maps. */
static inline char *pmi_medium_base(const void *p) { return (char *)((uintptr_t)p & ~(PMI_MEDIUM_SIZE - 1)); }
/* The header of the region p (any byte of it, or its header) is in. */
static inline pmi_medium *pmi_medium_of(const void *p) {
  return (pmi_medium *)(pmi_medium_base(p) + PMI_MEDIUM_DESC_OFFSET(pmi_medium_desc_colour(p)));
}
/* The arena map's byte for the region p is in. */
static inline unsigned pmi_medium_map_byte(const void *p) { return PMI_REGION_MEDIUM + pmi_medium_desc_colour(p); }
static inline unsigned pmi_medium_units(const void *p) {   /* the live bit's 16-byte unit */
  return (unsigned)(((uintptr_t)p & (PMI_MEDIUM_SIZE - 1)) >> PMI_ALIGNMENT_SHIFT);
}
#define PMI_MEDIUM_LIVE_WORDS (PMI_MEDIUM_UNITS / 64)
/* The bytes between region m's header and its block 0 while it serves
 * class c (medium.c, "colour", says why): a multiple of 8 KiB below 64 KiB
 * by region (the blocks a line of live words covers), plus a line offset
 * by class, not in set 0, a multiple of the size's power-of-two part up to
 * 4 KiB and of 64; under 64 KiB in all. */
#define PMI_COLOUR_LINE 64u
#define PMI_COLOUR_WINDOW 8192u
#define PMI_COLOUR_WINDOWS 8u
_Static_assert(PMI_COLOUR_WINDOW == 8 * 64 * PMI_ALIGNMENT, "a line holds 8 live words of 64 units");
_Static_assert(PMI_MEDIUM_ALIGN_MAX <= PMI_COLOUR_WINDOW, "a window's step keeps every alignment");
static inline uint32_t pmi_medium_colour(const void *m, unsigned c) {
  size_t size = pmi_medium_class_size(c), align = size & -size;
  if (align > PMI_MEDIUM_ALIGN_MAX) align = PMI_MEDIUM_ALIGN_MAX;
  if (align < PMI_COLOUR_LINE) align = PMI_COLOUR_LINE;
  /* by the class's place in its doubling: 14 lines, each a multiple of the
   * alignment that place has in the first doubling (the 1024-byte class's
   * 16 lines is its 1 KiB) */
  static const uint8_t lines[PMI_MEDIUM_PER_OCTAVE] = {1, 3, 5, 7, 9, 11, 13, 2, 15, 4, 6, 8, 10, 16};
  size_t line = ((size_t)lines[c % PMI_MEDIUM_PER_OCTAVE] * PMI_COLOUR_LINE) & ~(align - 1);
  if (line == 0 && align < PMI_MEDIUM_ALIGN_MAX) line = align;   /* set 0 has the pools' blocks 0 */
  size_t window = ((uintptr_t)m >> PMI_MEDIUM_SHIFT) % PMI_COLOUR_WINDOWS * PMI_COLOUR_WINDOW;
  size_t span = PMI_MEDIUM_SIZE - PMI_MEDIUM_HEADER - window;
  if (span / size < 16 && (span - line) / size < span / size) line = 0;   /* (the largest classes) */
  return (uint32_t)(window + line);
}
void  *pmi_medium_pop_last(pmi_medium *m, pmi_block *block);   /* next PMI_LIST_END, or corrupt */
/* The same from malloc's fast path for class c, m maybe a lender (medium.c, "lending") */
void  *pmi_medium_pop_front_last(pmi_heap *heap, pmi_medium *m, pmi_block *block, unsigned c);
bool   pmi_medium_lends(unsigned l, unsigned c);   /* may class l's head be lent to class c? */
/* Pops block, the head of region m's free list, and hands it out.  The link
 * check is the pool's (internal.h, "free-list links"): next ^ block below
 * the region's size, or the last block (or a corrupt link) to the slow
 * twin. */
static inline void *pmi_medium_pop(pmi_medium *m, pmi_block *block) {
  uintptr_t offset = pmi_link_offset(block);
  if (pmi_unlikely(offset >= PMI_MEDIUM_SIZE)) return pmi_medium_pop_last(m, block);
  m->freeblock = (pmi_block *)(offset ^ (uintptr_t)block);
  m->used++;
  uintptr_t u = (uintptr_t)block >> PMI_ALIGNMENT_SHIFT;   /* the bit: u mod 64 */
  m->live[(u >> 6) & (PMI_MEDIUM_LIVE_WORDS - 1)] |= (uint64_t)1 << (u & 63);
  return block;
}

void   pmi_medium_emptied(pmi_heap *heap, pmi_medium *m);   /* free's fast path: used hit 0 */
unsigned pmi_medium_nused(const pmi_medium *m);   /* blocks handed out (less the head's extra use) */
void  *pmi_medium_malloc_slow(pmi_heap *heap, unsigned mclass);  /* heap may be pmi_heap_empty */
void  *pmi_medium_malloc_locked(pmi_heap *heap, unsigned mclass);
void   pmi_medium_free(pmi_heap *heap, void *p);   /* all checks: the free of a pointer in a medium region */
void   pmi_medium_free_collected(pmi_heap *heap, pmi_block *block);
bool   pmi_medium_hold(pmi_heap *heap, pmi_block *block);   /* a visitor: into a FULL region (medium.c) */
void   pmi_medium_release_held(pmi_heap *heap);             /* a visitor: held regions now empty */
size_t pmi_medium_purge_held(pmi_heap *heap, uint64_t now, bool force, bool *pending);   /* a visitor: held pages */
size_t pmi_medium_purge_block(pmi_medium *m, pmi_block *b);   /* a visitor: the pages inside a held block */
void   pmi_medium_give_held(pmi_medium *m, pmi_block *block);   /* a visitor: a held block of a USED region becomes free */
void   pmi_medium_held_emptied(pmi_heap *heap, pmi_medium *m, unsigned n);   /* a visitor: that region to the reserve */
void   pmi_medium_apply(pmi_heap *heap);                    /* the owner: held blocks become free */
bool   pmi_medium_decay(uint64_t now);                      /* the purge thread: the reserve's decay */
pmi_medium *pmi_medium_check_live(const char *fn, const void *p);  /* reports and aborts */
void   pmi_medium_release_retained(pmi_heap *heap);   /* empty heads to the reserve; idle pages */
size_t pmi_medium_purge_idle(pmi_heap *heap, uint64_t now, bool force, bool *pending);   /* owner: idle regions' free pages */
void   pmi_medium_grew(pmi_heap *heap, size_t bytes);   /* owner: fresh memory about to be touched */
void   pmi_medium_repair_locked(pmi_heap *heap);
void   pmi_medium_release_reserve(size_t keep);
size_t pmi_medium_reserve_count(void);
void   pmi_medium_mapped(size_t *now, size_t *peak);
void   pmi_medium_fork_prepare(void);
void   pmi_medium_fork_parent(void);
void   pmi_medium_fork_child(void);
pmi_medium *pmi_medium_reserve_first(void);

/* ---- huge.c: blocks with a mapping of their own --------------------------- */
void  *pmi_huge_malloc(size_t size, size_t alignment, bool zero);
void   pmi_huge_free(void *p);
bool   pmi_huge_was_freed(const void *p);   /* one of the last huge blocks freed (and maybe unmapped) */
void  *pmi_huge_realloc(void *p, size_t size);
size_t pmi_huge_usable_size(const char *fn, const void *p);   /* reports bad pointers */
void   pmi_huge_trim(void);                       /* empties the cache */
bool   pmi_huge_decay(uint64_t now);              /* the purge thread: old runs go; true if some are left */
void   pmi_huge_yield_cached(size_t bytes);       /* pmi_huge_yield with a cached byte */
extern _Atomic size_t pmi_huge_cache_bytes;       /* bytes in the cache of freed mappings */
/* Fresh memory is about to be touched elsewhere: the cache shrinks.  Without
 * a cached byte one relaxed load, and no call into huge.c. */
static inline void pmi_huge_yield(size_t bytes) {
  if (pmi_unlikely(pmi_load_relaxed(&pmi_huge_cache_bytes) != 0)) pmi_huge_yield_cached(bytes);
}
typedef struct pmi_huge_figures {
  size_t live, live_bytes, mapped_bytes, peak_bytes, cached, cached_bytes;
} pmi_huge_figures;
void   pmi_huge_figures_get(pmi_huge_figures *out);
void   pmi_huge_fork_prepare(void);
void   pmi_huge_fork_parent(void);
void   pmi_huge_fork_child(void);

/* ---- libc.c: blocks the C library handed out itself ------------------------- */
void   pmi_libc_init(void);
void   pmi_libc_free(void *p);
void  *pmi_libc_realloc(void *p, size_t size);
void  *pmi_libc_malloc(size_t size);
void  *pmi_libc_calloc(size_t n, size_t size);
void  *pmi_libc_memalign(size_t alignment, size_t size);
size_t pmi_libc_usable_size(void *p);
int    pmi_libc_trim(size_t pad);
int    pmi_libc_mallopt(int param, int value);
struct mallinfo2;
struct mallinfo2 pmi_libc_mallinfo2(void);
/* libc.c: does the C library's malloc own this pointer?
 * For a pointer in none of poolmalloc's regions: true only if it lies where
 * glibc allocates (its main heap, a thread arena's heap, an mmapped chunk)
 * and its chunk header fits; reads no memory that may be unmapped. */
bool   pmi_libc_owns(const void *p);
void   pmi_libc_init(void);                     /* at start-up: notes the break */



/* ---- init.c -------------------------------------------------------------- */
void   pmi_process_init(void);
extern _Atomic int pmi_process_state;   /* 0 none, 1 initialising, 2 ready */

/* ---- the diagnostics the core calls (options, debug dispatch, the report
 *      at exit): diag/diag.h ------------------------------------------------ */
#include "diag/diag.h"

/* pmi_heap_own without a call where it is cheap: outside debug mode the
 * thread's own heap is pmi_heap_tls (calloc, realloc and the core's entry
 * points ask on every call). */
static inline pmi_heap *pmi_heap_mine(void) {
  if (pmi_likely(!pmi_debug_active)) return pmi_heap_tls;
  return pmi_heap_own();
}

/* One more in the counter at offset of this thread's own heap (none before
 * its first heap or past its exit): for the counters off the fast paths,
 * PMI_COUNT(calloc_calls). */
static inline void pmi_count_at(size_t offset) {
  pmi_heap *heap = pmi_heap_mine();
  if (heap != &pmi_heap_empty) (*(uint64_t *)((char *)&heap->counters + offset))++;
}
#define PMI_COUNT(field) pmi_count_at(offsetof(pmi_counters, field))

#pragma GCC visibility pop

#endif /* PM_INTERNAL_H */
