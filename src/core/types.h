/* types.h: the constants and data structures of poolmalloc, with their
 * invariants.  Every other file reads this one first.
 *
 * ---------------------------------------------------------------------------
 * The layers, from the OS up
 * ---------------------------------------------------------------------------
 *
 *    malloc(n), n <= 512          513 <= n <= 128 KiB             n > 128 KiB,
 *          |                             |                       alignment > 4 KiB
 *    heap (one per thread)        the same heap                        |
 *      usedpools[size class]        usedmedium[medium class]     huge path (huge.c):
 *          |                             |                       a mapping of its own,
 *          |                      medium region (medium.c):      256 KiB-aligned; a
 *          |                      1 MiB, 1 MiB-aligned, one      small cache of freed
 *          |                      medium class; header pages,    mappings; mremap for
 *          |                      then blocks, lazily carved     realloc
 *          |
 *    pool: 4 KiB, one size class, free-block list, lazily carved
 *          |
 *    arena: 256 KiB, 256 KiB-aligned, mapped from the OS (os.c);
 *           its first page holds the arena header and 64 pool descriptors,
 *           the other 63 pages are pools
 *          |
 *    arena map (arenamap.c): one byte per 256 KiB of address space,
 *           the kind of region a pointer is in (enum pmi_region_kind),
 *           found without touching the pointer; 0: not ours, which free,
 *           realloc and malloc_usable_size hand to the C library (libc.c)
 *
 * ---------------------------------------------------------------------------
 * Size classes
 * ---------------------------------------------------------------------------
 *
 *    request (bytes)    block size    class index (szidx)
 *        1 .. 16            16               0
 *       17 .. 32            32               1
 *       ...                ...              ...
 *      497 .. 512          512              31
 *
 *    szidx = (n - 1) >> 4, block size = (szidx + 1) << 4.  malloc(0) is served
 *    as malloc(1).  Every block is 16-byte aligned because pools are 4 KiB
 *    aligned and blocks are multiples of 16.
 *
 * ---------------------------------------------------------------------------
 * Arena layout (addresses grow to the right; one cell = one 4 KiB page)
 * ---------------------------------------------------------------------------
 *
 *    arena (256 KiB aligned)
 *    +--------+--------+--------+-- ... --+--------+
 *    | header | pool 1 | pool 2 |         | pool 63|
 *    | +descr |        |        |         |        |
 *    +--------+--------+--------+-- ... --+--------+
 *         |       ^
 *         +-------+  the descriptor of page i is pools[i ^ HEADER_SLOT]
 *
 *    page 0, in 64-byte cache lines (HEADER_SLOT = 63: the descriptors in
 *    reverse page order):
 *    +----------+----------+-- ... --+-----------+---------------+
 *    | page 63  | page 62  |         | page 1    | arena header  |
 *    | pools[0] | pools[1] |         | pools[62] | (= pools[63]) |
 *    +----------+----------+-- ... --+-----------+---------------+
 *
 *    The pool header of pymalloc lives out of line, as a 64-byte descriptor
 *    in page 0, found by address arithmetic:
 *        arena = p & ~(ARENA_SIZE - 1),
 *        pool = &arena->pools[((p >> 12) & 63) ^ HEADER_SLOT]   (pmi_pool_of).
 *    Page 0's own slot would describe page 0 itself, so the arena header
 *    takes its place (a union); its fields are arranged so that read as a
 *    descriptor it is a pool in state HEADER (which sends a free to the slow
 *    path, where it is rejected) with an empty free list.
 *    Why out of line: headers at the start of 4 KiB-aligned pages all map to
 *    the same few L1 cache sets, and a random-order free over many pools then
 *    thrashes them; here each descriptor is one cache line of its own.  It
 *    also gives every pool the full 4 KiB for blocks.
 *    Why the header in the last line, not line 0: every free of another
 *    thread and every slow path reads the owner from it, and line 0 of
 *    every page shares its L1 set (set 0) with block 0 of every pool, the one line of a pool that all 32 classes start
 *    a block in.  At 16,384 live blocks of 8..512 bytes (about 20 arenas)
 *    the owner's load missed L1 0.28 times a free there (cachegrind, 48 KiB
 *    12-way), 0.004 times with the same L1 fully associative: conflict
 *    misses.  The last line of a page is where the fewest classes start a
 *    block (4: those of at most 64 bytes; the others' blocks end before it
 *    or run into it, tail space).  The exclusive or costs no instruction:
 *    free's fast path finds the descriptor as header ^ ((p >> 6) & mask),
 *    the header and the mask from p's slot of the free map (pmi_free_slot;
 *    for a medium region the mask is 0).  The fast path reads the owner
 *    from that slot too (its thread's pointer), not from the header.
 *
 * ---------------------------------------------------------------------------
 * Pool states (as pymalloc's)
 * ---------------------------------------------------------------------------
 *
 *    EMPTY  on its arena's freepools list; no block handed out; no size class.
 *    USED   on heap->usedpools[szidx]; some blocks out, some free or untouched
 *           (or none: the head, and drained heads waiting for their turn).
 *    FULL   on no list; every block handed out.
 *
 *    Transitions:
 *      EMPTY -> USED   malloc finds usedpools[szidx] without room, takes a
 *                      pool from the fullest usable arena (pool_take).
 *      USED  -> USED   the head of usedpools[szidx] is exhausted (no free
 *                      block, nothing left to carve) and a pool follows it
 *                      with a free block: the head goes to the back of the
 *                      list, still USED, and that one becomes the head.  At
 *                      the pop of the head's last block (alloc.c,
 *                      desc_pop_last: the fast path's own out-of-line case
 *                      for the last block, so the fast path tests nothing
 *                      more), which carves the tail instead while there is
 *                      one; so the next malloc finds a ready head.  Frees
 *                      into the drained pool take free's fast path (no
 *                      relink each time a batch or a tree is dropped), and
 *                      it serves again, with what it gathered, when its
 *                      turn comes.  When no pool with a free block follows,
 *                      a fresh one (EMPTY -> USED) becomes the head at once
 *                      and the drained one goes FULL (alloc.c,
 *                      drained_fresh); when remote frees wait to be
 *                      collected, the head stays exhausted, and the next
 *                      malloc's slow path makes the transition.
 *      USED  -> FULL   an exhausted pool leaves the list: a drained head
 *                      found exhausted behind the head when that one
 *                      drains (no block came back during its round), or an
 *                      exhausted head that no pool with a free block
 *                      follows, when a fresh pool takes its place (at its
 *                      drain, or in malloc's slow path).
 *      FULL  -> USED   the first free into a full pool links it back at the
 *                      end of usedpools[szidx] (pool.c says why not at the
 *                      head; at the head when the head is exhausted).
 *      USED  -> EMPTY  the last block is freed.  The head of usedpools[szidx]
 *                      never empties in this sense: being the head counts as
 *                      one use (see pmi_pool.used), so that a malloc/free loop
 *                      of one block never leaves the fast path.  Any other
 *                      pool that empties stays on its list as a spare while
 *                      the heap keeps fewer than PMI_SPARE_POOLS of them, so
 *                      that a batch or a tree allocated and dropped over and
 *                      over does not take and set up pools each time
 *                      (hysteresis); otherwise it goes back to its arena.
 *                      Spares go back at thread exit, malloc_trim and
 *                      medium growth, when the heap has no owner, beyond
 *                      PMI_SPARES_QUIET before a fresh page is touched, and
 *                      by the purge thread once left alone for the decay.
 *
 * ---------------------------------------------------------------------------
 * Threads
 * ---------------------------------------------------------------------------
 *
 *    Every arena belongs to one heap (arena->heap); a heap belongs to at most
 *    one thread.  The owning thread allocates and frees its own blocks with
 *    plain loads and stores.  A free from any other thread pushes the block
 *    onto the owning heap's thread_free stack with one CAS; the owner takes the
 *    whole stack in its slow path; other threads holding heap->lock (the
 *    purge thread, malloc_trim) take what lands in FULL pools (remote.c).
 *    Such a thread is a visitor: the owner's slow paths take the lock only
 *    while one is there, and a visitor waits for the owner to leave its
 *    slow path (heap.c, "visitors").
 *    When a thread exits its heap becomes unowned: it keeps its arenas and
 *    live blocks, frees into it are reclaimed by the freeing thread (under
 *    heap->lock), and the next new thread adopts the whole heap.  Empty
 *    pools and empty arenas go back to the OS after ARENA_DECAY_MS
 *    (purge.c).
 */
#ifndef PM_TYPES_H
#define PM_TYPES_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "poolmalloc.h"

/* ---- tunable constants, with their constraints ---------------------------- */

#define PMI_ALIGNMENT_SHIFT 4
#define PMI_ALIGNMENT       (1u << PMI_ALIGNMENT_SHIFT)      /* 16 */
#define PMI_SMALL_MAX       512u                             /* largest pool block */
#define PMI_NCLASSES        (PMI_SMALL_MAX >> PMI_ALIGNMENT_SHIFT)   /* 32 */

#define PMI_POOL_SHIFT      12
#define PMI_POOL_SIZE       ((size_t)1 << PMI_POOL_SHIFT)    /* 4 KiB */
#define PMI_ARENA_SHIFT     18
#define PMI_ARENA_SIZE      ((size_t)1 << PMI_ARENA_SHIFT)   /* 256 KiB */
#define PMI_POOLS_PER_ARENA (1u << (PMI_ARENA_SHIFT - PMI_POOL_SHIFT))  /* 64 */
#define PMI_FIRST_POOL      1u    /* page 0 is the arena header */
#define PMI_HEADER_SLOT     63u   /* its 64-byte slot in page 0 (the arena layout) */
#define PMI_ARENA_POOLS     (PMI_POOLS_PER_ARENA - PMI_FIRST_POOL)     /* 63 */

/* A heap of at least this many arenas whose pools empty may need the purge
 * thread (purge.c); below it (2 MiB), empty pools wait for malloc_trim. */
#define PMI_PURGE_MIN_ARENAS 8u

/* Remote frees travel in batches of this many blocks (remote.c): a
 * batch's slow path, its check and its push (a CAS and a fetch-and-add on
 * the owner's line) are paid once per batch.  128, not 32: BM_prodcons/64
 * with 2 threads took 6.2 ns a block instead of 8.0 (median of 6
 * interleaved runs on an idle machine; 256 was no faster), xmalloc-test
 * 4 % less time.  The arrays that hold a batch's blocks are not in the
 * thread's TLS (remote.c, batch buffers), and a batch of medium blocks is
 * pushed at PMI_REMOTE_BATCH_MEDIUM, so that an idle thread holds at most
 * 4 * 127 pool blocks (under 256 KiB) or 16 MiB of medium ones until the
 * purge thread pushes them.  The
 * owner's ring of prefetch hints holds this many blocks' addresses (128 KiB
 * per heap, its pages touched only as remote frees arrive: a collector that
 * finds more blocks pending than the ring holds walks the rest
 * unprefetched, one cache miss after another).  A producer that waits while
 * its consumers free finds whole queues pending: xmalloc-test's owners
 * collect up to 170,000 blocks at once, and with 2,048 hints 72% of the
 * blocks they walked were past the ring (16,384: 26-32%). */
#define PMI_REMOTE_BATCH    128
#define PMI_REMOTE_BATCH_MEDIUM 32
#define PMI_REMOTE_HINTS    16384
_Static_assert((PMI_REMOTE_HINTS & (PMI_REMOTE_HINTS - 1)) == 0, "the hint ring is indexed by a mask");

/* Blocks carved from a pool's untouched tail per slow-path visit: about this
 * many bytes, at least one block.  The whole pool: it is one page, faulted
 * in whole by its first block, and a class that empties its pool's list
 * usually needs the rest soon.  Half a pool a visit cost a second carve and
 * a second trip through the slow path for most pools: a batch of 100,000
 * blocks of 8..512 bytes built and freed, whose pools go back to their
 * arenas and are set up again for other classes each time, ran 137
 * instructions a malloc and free, 130 with whole pools. */
#define PMI_CARVE_BYTES     PMI_POOL_SIZE

/* Empty pools a heap keeps on its usedpools lists (the spares) instead of
 * giving them back to their arenas: at most four arenas' worth per thread.
 * One arena's worth was too few for a producer/consumer whose owner collects
 * a ring of 4096 blocks of 32 classes at once: some 250 pools empty in one
 * collection, the excess went back to LIFO freepools of mixed classes (whole
 * arenas to the reserve, reformatted), and the pools taken again were carved
 * afresh: 31,098 pools taken per 640,000 blocks, 3,414 with 252 spares.
 * Spares do not stay for ever (pool.c, "idle spares"): the purge thread gives
 * back an owned heap's spares once they have been left alone for the decay,
 * spares beyond PMI_SPARES_QUIET go back before a pool takes a fresh page
 * (alloc.c), and all of them on medium growth, malloc_trim and thread exit. */
#ifndef PMI_SPARE_POOLS
#define PMI_SPARE_POOLS     (4 * PMI_ARENA_POOLS)
#endif
/* Spares the free fast path keeps with one add and no word to the purge
 * thread (a small program never starts one for them); each one beyond takes
 * pmi_pool_emptied, which notes the purge thread, so that an idle program's
 * spares go back too. */
#define PMI_SPARES_QUIET    PMI_ARENA_POOLS
_Static_assert(PMI_SPARES_QUIET <= PMI_SPARE_POOLS, "the quiet spares are some of the spares");

#if PMI_SMALL_MAX % PMI_ALIGNMENT != 0
#error "the largest pool block must be a multiple of the alignment"
#endif
_Static_assert(PMI_POOL_SIZE / PMI_SMALL_MAX >= 8, "a pool must hold at least 8 blocks of the largest class");
_Static_assert(PMI_POOL_SIZE / PMI_ALIGNMENT <= 256, "block counts must fit the uint16_t fields");
#if PMI_ARENA_SHIFT <= PMI_POOL_SHIFT
#error "an arena must hold more than one pool"
#endif

/* ---- region kinds: the byte the arena map keeps per 256 KiB slot ----------- */

/* The two kinds free's fast path serves are the two largest, so that one
 * compare (kind >= POOLS) picks them out.  A medium region's byte is
 * MEDIUM + its descriptor's colour (below, "medium classes"), the byte by
 * which arenamap.c fills the free map's slots (pmi_free_slot: the
 * descriptor's address, (p & region_mask) | region_or[byte]);
 * pmi_arenamap_kind reports every one of them as MEDIUM. */
enum pmi_region_kind {
  PMI_REGION_NONE = 0,     /* not ours: the C library's, or nobody's */
  PMI_REGION_HUGE = 1,     /* a slot of a directly mapped block (huge.c) */
  PMI_REGION_POOLS = 2,    /* a 256 KiB arena of pools (arena.c) */
  PMI_REGION_MEDIUM = 3,   /* one of the four slots of a 1 MiB medium region (medium.c),
                              bytes MEDIUM .. MEDIUM + MEDIUM_COLOURS - 1 */
};

/* ---- medium classes -------------------------------------------------------- *
 *
 *    request (bytes)     block size     class (mclass)
 *      513 ..    528         528            0      each power of two 2^b
 *      529 ..    544         544            1      (b = 9 .. 16) has 14:
 *      ...                   ...           ...     eight in its first
 *      625 ..    640         640            7      quarter, 2^(b - 5) apart
 *      641 ..    704         704            8      (at most 3.1 %), then six
 *      ...                   ...           ...     2^(b - 3) apart (at most
 *      961 ..   1024        1024           13      9.1 %)
 *     1025 ..   1056        1056           14
 *      ...                   ...           ...
 *     4353 ..   4480        4480           44
 *      ...                   ...           ...
 *   114689 .. 131072      131072          111
 *
 *    with m = n - 1, b = the index of m's highest set bit and q = m >> (b - 5):
 *    mclass = 14 (b - 9) + q - 32                for q < 40 (n <= 1.25 * 2^b),
 *    mclass = 14 (b - 9) + (m >> (b - 3)) - 2    above;
 *    with b = 9 + mclass / 14 and i = mclass % 14:
 *    block size = 2^b + (i + 1) 2^(b - 5)        for i < 8,
 *    block size = (i + 3) 2^(b - 3)              above.
 *
 *    Why fine classes just above each power of two: that is where programs
 *    ask, a power of two plus a small header (sqlite's pages of 1 KiB + 8
 *    and 4 KiB + 272, buffers and tables of 2^k entries plus their
 *    bookkeeping), and every byte a class rounds up is resident.  Eight
 *    classes per doubling rounded sqlite's two sizes up by 12 % and 5 % (2 MB
 *    at its peak); these round them by 2.3 % and 2.6 %.  The rest of a
 *    doubling keeps eight-per-doubling steps: a class costs every heap a
 *    usedmedium[] slot and, where a program asks for its sizes, a region
 *    (its header page and a first carve), and a compiler touches most of
 *    them (cc1: 126 regions with 32 classes per doubling, 86 with these, 49
 *    with eight).
 *    Doubling a class size gives a class size (realloc's growth relies on
 *    it): 2^b + j 2^(b - 5) doubled is 2^(b + 1) + j 2^(b - 4), and
 *    (i + 3) 2^(b - 3) doubled is (i + 3) 2^(b - 2).
 *
 *    Every block size is a multiple of 16, and blocks start at 12 KiB +
 *    colour + k * size in a 1 MiB-aligned region (the colour a multiple of
 *    the size's power-of-two part up to 4 KiB: medium.c, colour_of), so every
 *    medium block is 16-byte aligned, and the blocks of a class whose size
 *    is a multiple of a power of two a <= 4 KiB are a-aligned (aligned_alloc takes them: both parts of
 *    a doubling have every multiple of their step, so the class of a size
 *    that is a multiple of a is a multiple of a too).
 *
 *    Why 128 KiB: larson, glibc-thread, compilers' tables and Python's lists
 *    and dicts ask for sizes below it; a 1 MiB region still holds 7 blocks of
 *    the largest class (the tail it cannot use is never touched, so it costs
 *    address space only).  Above it a request is rare and costs at least 32
 *    page faults to fill (about 64 us here), so a mapping of its own (a few
 *    us, less from the cache) is cheap in proportion. */
/* The class of a size n > 512, from m = n - 1 and b = its highest set bit:
 * q = m >> (b - 5) is 32 .. 39 in the fine part, else the coarse step's
 * multiple m >> (b - 3) is 10 .. 15. */
#define PMI_MEDIUM_CLASS_OF(m, b)                                                     \
  (PMI_MEDIUM_PER_OCTAVE * ((b) - 9u) + (((m) >> ((b) - 5u)) < 40u ? (unsigned)((m) >> ((b) - 5u)) - 32u \
                                                                   : (unsigned)((m) >> ((b) - 3u)) - 2u))
#define PMI_MEDIUM_MIN      (PMI_SMALL_MAX + 1)                  /* 513 */
#define PMI_MEDIUM_MAX      131072u                              /* largest medium block */
#define PMI_MEDIUM_PER_OCTAVE 14u                            /* 8 fine, 6 coarse */
#define PMI_MEDIUM_NCLASSES 112u                             /* 14 * 8 octaves */
#define PMI_MEDIUM_SHIFT    20
#define PMI_MEDIUM_SIZE     ((size_t)1 << PMI_MEDIUM_SHIFT)      /* 1 MiB region */
#define PMI_MEDIUM_HEADER   (3 * PMI_POOL_SIZE)                  /* header pages */
#define PMI_MEDIUM_TOUCH_SHIFT 7                                 /* pmi_medium.touched: 128-byte units */
/* The live bitmap has a bit per 16-byte unit, as a pool's: free's one fast
 * path finds a pool's bit and a region's by the same steps (free.c). */
#define PMI_MEDIUM_UNITS    (PMI_MEDIUM_SIZE >> PMI_ALIGNMENT_SHIFT)
/* The largest alignment medium blocks have by their place: blocks start at
 * MEDIUM_HEADER + colour + k * size, and MEDIUM_HEADER and every colour of
 * a class whose size it divides are multiples of it. */
#define PMI_MEDIUM_ALIGN_MAX PMI_POOL_SIZE
/* The descriptor's colour: a region's header (pmi_medium) starts not at the
 * region's start but MEDIUM_DESC_OFFSET(k) into it, k = the region's
 * address in MiB mod MEDIUM_COLOURS (pmi_medium_of), in the slack of the
 * header pages, so that the descriptors' first lines (what malloc and
 * free read) of regions mapped one after another fall in different L1 and
 * L2 sets instead of all in set 0 (every region is 1 MiB-aligned).  Lines
 * 40, 42, .. 54: clear of set 0 (the pools' blocks 0) and of sets 1 .. 16
 * (the medium blocks 0, medium.c "colour"); the live words that
 * descriptor's first blocks use are 2 + window lines further on.  Half-way
 * into the line (the 32 bytes the fast paths read, freeblock .. state, in
 * one line all the same), so that a pool descriptor, a 64-byte slot of its
 * arena's first page, and a region's header differ in bit 5 of their
 * address (pmi_desc_is_medium: one test, no look at the arena map). */
#define PMI_MEDIUM_COLOURS  8u
#define PMI_MEDIUM_DESC_OFFSET(k) ((size_t)(40u + 2u * (k)) * 64u + 32u)
/* How far up a class with no region of its own looks for a lender (medium.c,
 * "lending"): six classes, and a block at most a quarter larger. */
#define PMI_LEND_CLASSES 6u
/* Blocks carved from a medium region's untouched tail per slow-path visit. */
#define PMI_MEDIUM_CARVE_BYTES 16384u

_Static_assert(PMI_MEDIUM_SHIFT >= PMI_ARENA_SHIFT, "a medium region covers whole map slots");
_Static_assert((PMI_MEDIUM_SIZE - PMI_MEDIUM_HEADER) / 528 <= 65535, "block counts fit uint16_t");
_Static_assert(PMI_MEDIUM_CLASS_OF(PMI_MEDIUM_MAX - 1, 16) == PMI_MEDIUM_NCLASSES - 1 && PMI_MEDIUM_CLASS_OF(512, 9) == 0,
               "513 is class 0, MEDIUM_MAX the last");
_Static_assert(PMI_MEDIUM_NCLASSES + PMI_NCLASSES <= 256, "a class fits pmi_medium.mclass and the front table's uint8_t");
_Static_assert(PMI_MEDIUM_NCLASSES == PM_MEDIUM_NCLASSES, "pm_stats has a row per medium class");
_Static_assert(PMI_MEDIUM_HEADER % PMI_MEDIUM_ALIGN_MAX == 0, "blocks of 4 KiB classes are page-aligned");

/* Huge blocks: a mapping each, whole 256 KiB map slots (so that no other
 * mapping shares a slot with it), the block's header in the page before the
 * block.  The cache keeps this many freed mappings, up to this many bytes,
 * for POOLMALLOC_ARENA_DECAY_MS (a mapping of more than half of it is
 * unmapped at free)... */
#define PMI_HUGE_CACHE_ENTRIES 16u
#define PMI_HUGE_CACHE_BYTES   ((size_t)128 << 20)   /* malloc-large (20 live of 5..25 MiB): 64 MiB kept it
                                                        from holding the peak's headroom, 1.9 GB of evicted
                                                        runs to fault in again; 128: 31 k -> 20 k faults,
                                                        system time halved, peak +4.7 MB */
/* ... but never more than the huge blocks' peak less what is live now, plus
 * an eighth of the peak, at most the largest mapping a huge block has
 * taken, and within these two (huge.c, cache_room): cached pages then lift
 * the process at most this far above the huge peak it has already reached,
 * and a program that replaces its biggest blocks (the new one before the
 * old one is freed) finds one of them cached.  mimalloc-bench's
 * malloc-large (20 live blocks of 5 .. 25 MiB, a peak of about 440 MB):
 * with a slack of 6 MiB each replacement found too little cached to start
 * on and the kernel zeroed fresh huge pages for it (1.9 .. 2.7 s, 0.7 ..
 * 1.4 s of it system time, against tcmalloc's 1.8); with 25 MiB 1.3 ..
 * 1.45 s (0.16 .. 0.31 s system), peak RSS 441 -> 451 MB (glibc 534).
 * Blocks of 256 KiB .. 4 MiB (bench_large) keep the 6 MiB and glibc's
 * peak RSS; a 2 MiB peak (sqlite) its eighth, 256 KiB. */
#define PMI_HUGE_CACHE_SLACK_MIN ((size_t)6 << 20)
#define PMI_HUGE_CACHE_SLACK     ((size_t)64 << 20)
/* The purge thread decays the cache while it holds this much or more
 * (huge.c): as much as makes a heap worth one (arena.c). */
#define PMI_HUGE_CACHE_IDLE    ((size_t)PMI_PURGE_MIN_ARENAS * PMI_ARENA_SIZE)

/* ---- blocks ---------------------------------------------------------------- */

/* A free block.  Live blocks are the user's; these words exist only while
 * the block is free.  Every block is at least 16 bytes, so both fit. */
typedef struct pmi_block {
  uintptr_t link;           /* next free block of the same list, encoded:
                               next ^ this block ^ pmi_link_key (internal.h),
                               so that an
                               overflow into a free block cannot simply aim
                               the allocator at an address of its choice */
  uintptr_t key;            /* pmi_remote_key from its remote free until
                               its owner takes it (a second free of it, by
                               any thread, is a double free); links of
                               remote chains are encoded with
                               pmi_remote_link_key instead of pmi_link_key */
} pmi_block;

/* ---- pools ----------------------------------------------------------------- */

#define PMI_LIVE_WORDS (PMI_POOL_SIZE / PMI_ALIGNMENT / 64)   /* a bit per 16-byte unit */
_Static_assert((PMI_LIVE_WORDS & (PMI_LIVE_WORDS - 1)) == 0, "the live words are indexed by a mask");

enum pmi_pool_state {
  PMI_POOL_HEADER = 0,   /* page 0's slot: the arena's own page, never a pool */
  PMI_POOL_EMPTY,
  PMI_POOL_USED,
  PMI_POOL_FULL,
};

/* The descriptor (pymalloc's pool header) of one 4 KiB pool.
 *
 * Invariants, for a pool p of class c (size = (c + 1) * 16):
 *   p.capacity == POOL_SIZE / size              (while USED or FULL)
 *   head(p) = 1 if p is the head of its heap's usedpools[c], else 0
 *   p.used - head(p) + |p.held list| + |p.freeblock list| + (p.capacity - p.ncarved) == p.capacity
 *       (the freeblock list ends in PMI_LIST_END, never NULL: an empty one
 *        is p.freeblock == PMI_LIST_END, internal.h; the held list ends in NULL)
 *       (blocks handed out + held + free blocks + untouched blocks; blocks freed by
 *        another thread still count as used until the owner takes them from
 *        its thread_free stack, and so do those still in the freeing
 *        thread's batch, free.c)
 *   p.state == EMPTY  <=>  p is on arena.freepools (and p.used == 0; its
 *       free list still holds its p.ncarved blocks of class c, reused as
 *       they are if it serves class c again)
 *   p.state == USED   <=>  p is on heap.usedpools[c]
 *   p.state == FULL   =>   p.freeblock == PMI_LIST_END  and  p.ncarved == p.capacity
 *       and  p.used + |p.held list| == p.capacity
 *       (free's fast path sends every free into a FULL pool to the slow
 *        path by its one test of the state, state != USED; p.held are blocks
 *        freed by other threads and taken by a visitor of the heap, linked
 *        as a free list is; they keep their live bits and remote mark
 *        until the owner applies them, remote.c:
 *        popcount(p.live) == p.used + |p.held list|, and blocks in use == p.used)
 *   p.state == FULL and p.held != NULL  <=>  p is on heap.remote_pools
 *       (linked by nextpool)
 *   e in heap.held_used  =>  e.desc (a pool, or a medium region of heap) has
 *       state USED or FULL, and e.npurged <= e.nheld == |e.held list| <= e.desc.used,
 *       every link of the list inside e.desc's pool or region (blocks freed
 *       by other threads, taken by a visitor for a pool or region the owner
 *       may be freeing into; they keep their live bits and marks and count in
 *       used until the owner collects them or the visitor finds
 *       e.nheld == e.desc.used: remote.c)
 *   p on usedpools[c] and not its head => p has room (p.used == 0: a spare),
 *       or p is exhausted with every block out (p.used == p.capacity: a
 *       drained head waiting for its turn, pmi_usedpools_head_rotate)
 *   popcount(p.live) == p.used - head(p); bit u of live is set <=> a block starting
 *       at 16-byte unit u of the pool is handed out (the free fast path tests
 *       and clears it: a double free, a pointer inside a block or one never
 *       handed out finds it clear, without reading the block)
 */
typedef struct pmi_pool {
  pmi_block *freeblock;      /* first free block; PMI_LIST_END: none (maybe untouched ones) */
  struct pmi_pool *nextpool; /* usedpools[c] list, or arena freepools list */
  union {
    struct pmi_pool *prevpool; /* USED: usedpools[c] list; NULL at the head */
    pmi_block *held;           /* FULL: blocks a visitor took for it from
                                  remote frees (remote.c); NULL otherwise */
    uintptr_t idle;            /* EMPTY: purge passes it sat through empty
                                  (purge.c); 0 when it arrives */
  };
  uint16_t used;             /* blocks handed out and not yet freed here,
                                plus one while the pool is the head of its
                                usedpools list (so that free's one test,
                                --used == 0, never fires for the head) */
  uint16_t ncarved;          /* blocks carved from the untouched tail so far */
  uint16_t capacity;         /* blocks that fit in the pool; 0 unless USED/FULL */
  uint8_t  szidx;            /* size class while USED or FULL */
  uint8_t  state;            /* enum pmi_pool_state */
  uint64_t live[PMI_LIVE_WORDS];  /* handed-out blocks, a bit
                                                          per 16-byte unit */
} pmi_pool;

/* ---- arenas ---------------------------------------------------------------- */

struct pmi_heap;

/* The header of a 256 KiB arena, at its start.
 *
 * Invariants:
 *   nfreepools == |freepools list| == #{ page i : pmi_arena_pool(arena, i).state == EMPTY }
 *   nkept == #{ page i : state == EMPTY and ncarved != 0 }   (pages still resident)
 *   arena on heap.usable_arenas  <=>  nfreepools > 0 and arena.heap == heap
 *   heap.usable_arenas is sorted by nfreepools ascending (fullest first)
 *   arena in the reserve  <=>  heap == NULL and nfreepools == ARENA_POOLS
 *       (there nextarena/prevarena link the reserve list instead)
 */
typedef struct pmi_arena {
  union {
    struct {
      pmi_pool below_header_[PMI_HEADER_SLOT];   /* descriptors of pages 63 .. 1 */
      uint64_t list_end_;                   /* always PMI_LIST_END: read as page 0's
                                           freeblock, an empty free list */
      _Atomic(struct pmi_heap *) heap;  /* owner; NULL while in the reserve */
      union {
        pmi_pool *freepools;            /* EMPTY pools, singly linked by nextpool */
        uint64_t retired_ms;            /* in the reserve: when it arrived */
      };
      uint32_t nfreepools;              /* length of freepools */
      uint16_t nkept;                   /* empty pools that keep their page (ncarved
                                           != 0): a purge skips an arena with none */
      uint8_t  in_chunk;                /* carved from a huge-page chunk (chunk.c);
                                           kept in the reserve */
      uint8_t  header_state;            /* always PMI_POOL_HEADER: read as
                                           page 0's state */
      struct pmi_arena *nextarena;      /* usable_arenas, or the reserve list */
      struct pmi_arena *prevarena;      /* usable_arenas; NULL at the head */
      struct pmi_arena *next_owned;     /* heap.arenas: every arena of the heap */
      struct pmi_arena *prev_owned;
    };
    pmi_pool pools[PMI_POOLS_PER_ARENA];  /* pools[i ^ HEADER_SLOT] describes page i, i >= 1
                                             (pmi_arena_pool) */
  };
} pmi_arena;

_Static_assert(sizeof(pmi_pool) == 64, "a descriptor is one cache line");
_Static_assert(offsetof(pmi_arena, list_end_) == PMI_HEADER_SLOT * sizeof(pmi_pool) + offsetof(pmi_pool, freeblock) &&
               offsetof(pmi_arena, header_state) == PMI_HEADER_SLOT * sizeof(pmi_pool) + offsetof(pmi_pool, state),
               "read as page 0's descriptor, the header is a pool with no free list, in state HEADER");
_Static_assert(offsetof(pmi_arena, prev_owned) + 8 <= (PMI_HEADER_SLOT + 1) * sizeof(pmi_pool), "the header fits in its slot");
_Static_assert(PMI_HEADER_SLOT < PMI_POOLS_PER_ARENA, "the header's slot is in page 0");
_Static_assert(sizeof(pmi_arena) == PMI_POOL_SIZE, "header and descriptors fill page 0");

/* ---- medium regions -------------------------------------------------------- */

/* The same numbers as a pool's states, so that free's one test of the
 * state (state != USED sends it to the slow path) serves both. */
enum pmi_medium_state {
  PMI_MEDIUM_EMPTY = PMI_POOL_EMPTY,   /* in the medium reserve: no owner, no class */
  PMI_MEDIUM_USED = PMI_POOL_USED,     /* on heap.usedmedium[mclass] */
  PMI_MEDIUM_FULL = PMI_POOL_FULL,     /* on no list; every block handed out */
};

/* The rest of a region's header, which only the slow paths (and realloc's
 * block size) read: just below the descriptor, in the page it starts in,
 * not after its 8 KiB bitmap.  There, a region that serves a class a
 * program asks for a few times (a compiler touches most of the 112) paid a
 * third page for these 64 bytes: the header page, the bitmap's, and this.
 *   pmi_medium_slow(r) == (pmi_medium_slow_fields *)r - 1
 */
typedef struct pmi_medium_slow_fields {
  struct pmi_medium *prevregion;    /* NULL at the head */
  struct pmi_medium *next_owned;    /* heap.mediums: every region of the heap */
  struct pmi_medium *prev_owned;
  union {
    uint64_t retired_ms;            /* EMPTY, in the reserve: when it arrived */
    pmi_block *held;                /* FULL: blocks a visitor took for it from
                                       remote frees (medium.c, "held blocks");
                                       NULL while USED */
  };
  uintptr_t idle_sig;               /* the free list and counts when last
                                       looked at (medium.c, purge_idle) */
  uint64_t idle_ms;                 /* since when they have not changed */
  uint32_t block_size;              /* pmi_medium_class_size(mclass) */
  uint16_t ndormant;                /* free blocks off the free list: their
                                       first page went back to the OS (medium.c,
                                       purge_region); woken when the list runs dry */
  uint16_t touched;                 /* 128-byte units from the region's start
                                       that may be resident: carving below it
                                       is not growth (medium.c, grew) */
  uint32_t colour;                  /* bytes between the header and block 0
                                       while USED or FULL (medium.c, colour_of) */
  bool lone;                        /* the first carve was one block, and the
                                       pop that takes it has not come (medium.c,
                                       carve_next) */
} pmi_medium_slow_fields;

/* The header of a 1 MiB medium region, in its first pages: a pool of one
 * medium class, with the same states and transitions as a pool (types.h,
 * "Pool states"), its descriptor and live bitmap at its start.  r below is
 * the header's address, MEDIUM_DESC_OFFSET(colour) past the region's start
 * base(r); offsets of blocks are from base(r).
 *
 *   r == base(r) + MEDIUM_DESC_OFFSET((base(r) >> MEDIUM_SHIFT) % MEDIUM_COLOURS)
 *   the arena map's byte of each of base(r)'s slots == MEDIUM + that colour
 *
 * Invariants, for a region r of class c (size = pmi_medium_class_size(c)):
 *   r.capacity == (MEDIUM_SIZE - MEDIUM_HEADER - r.colour) / size   (while USED or FULL)
 *   block k starts at MEDIUM_HEADER + r.colour + k * size, and r.colour is a
 *       multiple of 64 and of size's largest power-of-two divisor up to
 *       MEDIUM_ALIGN_MAX (so that the aligned entry points' classes stay aligned)
 *   head(r) = 1 if r is the head of its heap's usedmedium[c], else 0
 *   r.used - head(r) + |r.held list| + |r.freeblock list| + r.ndormant + (r.capacity - r.ncarved)
 *       == r.capacity
 *       (remote frees count as used until the owner takes them, as in pools;
 *        the head's extra use makes --used == 0 free's only "emptied" test)
 *   r.state == USED  <=>  r is on heap.usedmedium[c]  (and then r.held == NULL)
 *   r.state == FULL  =>   r.freeblock == PMI_LIST_END and r.ncarved == r.capacity
 *                         and r.used + |r.held list| == r.capacity
 *       (free's state test sends every free into it to the slow path, which
 *        relinks it; r.held are blocks other threads freed, taken by a
 *        visitor of the heap; they keep their live bits and remote mark
 *        until the owner applies them, as a FULL pool's held blocks: medium.c)
 *   r.state == FULL and r.held != NULL  <=>  r is on heap.remote_mediums
 *       (linked by nextregion)
 *   r on usedmedium[c] and not its head => r has room and r.used > 0
 *   popcount(r.live) == r.used - head(r) + |r.held list|; bit u is set <=> a block starting at
 *       16-byte unit u of the region is handed out or held (units of the header pages never are)
 *   a carved block is live (or held), on the free list, or dormant (neither:
 *       its first page was purged), so an empty free list leaves only dormant
 *       ones unmarked; a FULL region has none (r.ndormant == 0)
 *   r on heap.mediums  <=>  r.heap == heap  (and r.state != EMPTY)
 *   r in the medium reserve  <=>  r.heap == NULL and r.state == EMPTY
 *   r.live has no bit set while r.state == EMPTY (so that a region taken
 *       from the reserve for another class needs no clearing of its 8 KiB)
 */
typedef struct pmi_medium {
  /* The first 32 bytes and the bitmap as a pool descriptor has them (pmi_desc) */
  pmi_block *freeblock;             /* first free block; PMI_LIST_END: none */
  _Atomic(struct pmi_heap *) heap;  /* owner; NULL in the reserve.  Where
                                       pmi_arena keeps it: free's owner test
                                       and a remote free read it there */
  struct pmi_medium *nextregion;    /* usedmedium[c] list, or the reserve */
  uint16_t used;                    /* blocks handed out and not yet freed here,
                                       plus one while the head of usedmedium */
  uint16_t ncarved;                 /* blocks carved from the untouched tail */
  uint16_t capacity;                /* blocks that fit; 0 unless USED/FULL */
  uint8_t  mclass;                  /* medium class while USED or FULL */
  uint8_t  state;                   /* enum pmi_medium_state */
  uint64_t live[PMI_MEDIUM_UNITS / 64];   /* handed-out blocks, a bit per 16-byte unit */
} pmi_medium;

_Static_assert(offsetof(pmi_medium, heap) == offsetof(pmi_arena, heap) - PMI_HEADER_SLOT * sizeof(pmi_pool),
               "owner where an arena keeps it, from the header's slot (free's owner test)");
static inline pmi_medium_slow_fields *pmi_medium_slow(const pmi_medium *m) {
  return (pmi_medium_slow_fields *)(uintptr_t)m - 1;
}
_Static_assert(sizeof(pmi_medium_slow_fields) <= PMI_MEDIUM_DESC_OFFSET(0) && sizeof(pmi_medium_slow_fields) % 16 == 0 &&
               PMI_MEDIUM_DESC_OFFSET(0) / PMI_POOL_SIZE == (PMI_MEDIUM_DESC_OFFSET(0) - sizeof(pmi_medium_slow_fields)) / PMI_POOL_SIZE,
               "the slow fields fit below the descriptor, in its page");
_Static_assert(PMI_MEDIUM_DESC_OFFSET(PMI_MEDIUM_COLOURS - 1) + sizeof(pmi_medium) <= PMI_MEDIUM_HEADER,
               "the header fits its pages at every colour");
_Static_assert((PMI_MEDIUM_COLOURS & (PMI_MEDIUM_COLOURS - 1)) == 0, "the colour is the MiB number's low bits");
_Static_assert(PMI_MEDIUM_DESC_OFFSET(0) % 64 == 32 && PMI_MEDIUM_DESC_OFFSET(1) % 64 == 32,
               "a region's header is half-way into a line, a pool's descriptor is not (pmi_desc_is_medium)");
_Static_assert(PMI_REGION_MEDIUM + PMI_MEDIUM_COLOURS <= 256, "a region's byte fits the arena map");
_Static_assert((PMI_MEDIUM_SIZE >> PMI_MEDIUM_TOUCH_SHIFT) <= 65535, "pmi_medium.touched counts 128-byte units in a uint16_t");

/* ---- the descriptor the fast paths read ----------------------------------- *
 *
 * malloc and free treat a pool and a medium region alike, so that they take
 * the same branches whatever the size (a program whose sizes straddle 512
 * bytes would otherwise pick between two paths at random on every call):
 *
 *    front class (fclass)   0 .. 31: pool classes (szidx), 32 .. 143: medium
 *                           classes (32 + mclass); pmi_front.classes.fclass maps
 *                           every size 1 .. MEDIUM_MAX to it by 16-byte unit
 *    heap.front[fclass]     the head pool or head region (usedpools and
 *                           medfront, one array; medfront[c] is
 *                           usedmedium[c] but for a lent class)
 *    descriptor             offset 0 freeblock, 24 used, 31 state, 32 the live
 *                           bitmap (a bit per 16-byte unit), in pmi_pool
 *                           and pmi_medium alike
 *
 * What differs is data, by front class (malloc) or by the arena map's byte
 * (free, through the free map's slot: pmi_free_slot), in pmi_front_tables
 * (below):
 *    link limit   a free-list link stays within 4 KiB (pool) or 1 MiB (region)
 *    live words   4 (pool) or 1024 (region)
 *    region mask  the owner sits at ((p & mask) | or) + 8: the arena's header's
 *                 or the region's
 *    descriptor   ((p & region mask) | or) ^ ((p >> 6) & desc mask): a pool's
 *                 64-byte slot in page 0 (mask 0xfc0, or the header's slot), the
 *                 region's start (mask 0) */
typedef struct __attribute__((may_alias)) pmi_desc {
  pmi_block *freeblock;
  uintptr_t words_[2];
  uint16_t used;
  uint16_t ncarved_;
  uint16_t capacity_;
  uint8_t class_;
  uint8_t state;
  uint64_t live[];
} pmi_desc;

#define PMI_FRONT_NCLASSES (PMI_NCLASSES + PMI_MEDIUM_NCLASSES)   /* 144 */
#define PMI_FRONT_UNITS    (PMI_MEDIUM_MAX >> PMI_ALIGNMENT_SHIFT)   /* 8192 sizes classified */
_Static_assert(PMI_FRONT_NCLASSES <= 256, "a front class fits a byte");
#define PMI_SAME_FIELD(a, b) (offsetof(pmi_desc, a) == offsetof(pmi_pool, b) && \
                              offsetof(pmi_desc, a) == offsetof(pmi_medium, b))
_Static_assert(PMI_SAME_FIELD(freeblock, freeblock) && PMI_SAME_FIELD(used, used) &&
               PMI_SAME_FIELD(state, state) && PMI_SAME_FIELD(live, live),
               "a pool descriptor and a region's header agree where the fast paths read them");
#undef PMI_SAME_FIELD

/* The fast paths' tables (front.c): what differs between a pool and a
 * region, as data.  malloc reads its own by front class; free reads the
 * kind masks through the free map's slots, which arenamap.c fills from
 * them when a region is registered. */
#define PMI_REGION_BYTES (PMI_REGION_MEDIUM + PMI_MEDIUM_COLOURS)   /* the map's byte values */
typedef struct pmi_kind_masks {              /* free's, by the arena map's byte */
  uintptr_t region_mask[PMI_REGION_BYTES];   /* the region's start: p & it */
  uintptr_t region_or[PMI_REGION_BYTES];     /* the header's slot for pools; a medium region's
                                                MEDIUM_DESC_OFFSET(byte - MEDIUM) (the
                                                owner at start | it + 8) */
  uintptr_t desc_mask[PMI_REGION_BYTES];     /* the descriptor at ^ ((p >> 6) & it) */
  uint64_t word_mask[PMI_REGION_BYTES];      /* the live word at + 32 + ((p >> 7) & it) */
} pmi_kind_masks;
/* One slot of the free map (arenamap.c), beside the arena map's byte: what
 * free's fast path needs of the region in a 256 KiB slot, found from the
 * slot's index alone, so that the owner, descriptor and live word wait for
 * one load (this entry's) and not for the byte and then a table indexed
 * by it (random pairs of 8..512 bytes 11.8 -> 9.5 ns), nor for the
 * header's owner after it.
 *
 * The owner is the owning thread's pointer (%fs:0 on x86-64, the TCB's
 * address; pmi_thread_pointer), so that free compares it with the thread
 * pointer itself, without the two loads of the heap from TLS: an entry of
 * heap H holds H.tp, which is the thread pointer of the thread that owns H
 * (| 1 in debug mode, so that the exported free never matches and the
 * debug allocator sees every call), and 0 while no thread owns H.  A
 * thread pointer is unique among live threads but is reused by the next
 * thread glibc starts on the same stack: so every entry of a heap changes
 * with its owner (pmi_heap_set_tp: at the thread's exit, at an adoption,
 * and for the other threads' heaps in a fork's child) before another
 * thread can take the heap or start on that stack.
 *
 * Invariants, for a slot s (k = the arena map's byte of s):
 *   s in a pool arena or a medium region R (k == POOLS, MEDIUM + colour):
 *     header == R's start | pmi_front.kinds.region_or[k]
 *       (the arena's header or the region's: the heap at + 8)
 *     desc_mask == pmi_front.kinds.desc_mask[k],
 *     word_mask == pmi_front.kinds.word_mask[k]
 *     owner == (R.heap != NULL ? R.heap->tp : 0)
 *   otherwise (NONE, HUGE, a slot never written):
 *     header == desc_mask == word_mask == owner == 0, so that free leaves
 *     the fast path at its owner test (no thread pointer is 0)
 * 32 bytes, so that the index is one shift. */
typedef struct pmi_free_slot {
  uintptr_t header;      /* the region's header (the descriptor at header ^ ...) */
  uintptr_t desc_mask;   /* the descriptor at header ^ ((p >> 6) & it) */
  uint64_t word_mask;    /* the live word at + 32 + ((p >> 7) & it) */
  uintptr_t owner;       /* the owning heap's tp; 0: no thread owns it */
} pmi_free_slot;
_Static_assert(sizeof(pmi_free_slot) == 32, "a slot's entry is one shift of its index");

typedef struct pmi_class_tables {            /* malloc's, by front class */
  uint64_t link_limit[PMI_FRONT_NCLASSES];   /* next ^ block below it */
  uint64_t word_mask[PMI_FRONT_NCLASSES];    /* (live words - 1) * 8 */
  uint8_t fclass[PMI_FRONT_UNITS];           /* the front class, by 16-byte unit of the size */
} pmi_class_tables;
typedef struct pmi_front_tables {
  pmi_kind_masks kinds;
  pmi_class_tables classes;
} pmi_front_tables;

/* ---- heaps ----------------------------------------------------------------- */

/* Per-heap activity counters: plain integers, only the owner (or the holder
 * of heap.lock) writes them; reports add up all heaps. */
typedef struct pmi_counters {
#define PMI_COUNTER_FIELD(name, doc) uint64_t name;
  PM_COUNTER_LIST(PMI_COUNTER_FIELD)
#undef PMI_COUNTER_FIELD
} pmi_counters;

/* A heap: what one thread allocates from.
 *
 * Invariants:
 *   usedpools[c] == &pmi_pool_sentinel  or  the head of a NULL-terminated,
 *       doubly linked list of USED pools of class c
 *   usedlast[c] == the last pool of usedpools[c]'s list, NULL when it is the
 *       sentinel
 *   usedmedium[c] == &pmi_medium_sentinel  or  the same for medium regions
 *   medfront[c] == usedmedium[c], or usedmedium[c] == &pmi_medium_sentinel
 *       and medfront[c] == usedmedium[l] != &pmi_medium_sentinel for a
 *       lender class l of c: c < l <= c + PMI_LEND_CLASSES,
 *       size(l) <= size(c) * 5 / 4, and align(l) >= align(c) (the size's
 *       power-of-two part up to 4 KiB) (medium.c, "lending")
 *   nmediums == |mediums list|
 *   pmi_heap_empty: front[fc] == &pmi_pool_sentinel for every front class
 *       (its list is empty from the start: malloc's fast path misses)
 *   the head of usedpools[c] is never empty in the sense of used == 0 (it
 *       holds the bias of pmi_pool.used); it may be exhausted, and so may
 *       the drained heads behind it (pmi_pool)
 *   nspare - spares_gone == #{ p on some usedpools[c], not its head,
 *       p.used == 0 } <= PMI_SPARE_POOLS  (the spares; spares_gone: those
 *       the purge thread gave back since the owner last settled the count,
 *       pool.c, "idle spares")
 *   nfp2lasta[n] == the last arena on usable_arenas with nfreepools == n,
 *       or NULL if there is none   (pymalloc's trick for O(1) re-sorting)
 *   narenas == |arenas list|
 *   owned == 1  =>  only the owning thread touches usedpools, pools and
 *       arenas, and takes lock around list splices (so that fork can stop it)
 *   owned == 0  =>  anyone may touch the heap, holding lock
 *   owned == 1  =>  another thread holding lock may also take remote frees
 *       into FULL pools and splice the arena lists (remote.c explains why
 *       that is safe while the owner runs its fast paths)
 *   visitor == 1  =>  lock is held by a thread that is not the owner (a
 *       visitor, heap.c); it touches the heap only once busy == 0, and the
 *       owner's slow paths take lock while visitor == 1
 *   busy == 1  =>  the owner is inside a slow path without the lock
 */
typedef struct pmi_heap {
  union {                                            /* the fast paths read front */
    struct {
      pmi_pool *usedpools[PMI_NCLASSES];
      /* the region medium class c's mallocs pop from: usedmedium[c], or a
       * lender (medium.c, "lending") */
      pmi_medium *medfront[PMI_MEDIUM_NCLASSES];
    };
    pmi_desc *front[PMI_FRONT_NCLASSES];             /* by front class (pmi_desc) */
  };
  pmi_medium *usedmedium[PMI_MEDIUM_NCLASSES];       /* the list of USED regions of class c */
  /* Blocks malloc's fast path handed out, by front class: the one counter
   * it writes, at an address it has in hand (stats.c adds them to
   * malloc_small and malloc_medium). */
  uint64_t front_mallocs[PMI_FRONT_NCLASSES];
  pmi_pool *usedlast[PMI_NCLASSES];                  /* the last pool of usedpools[c] */
  pmi_counters counters;
  unsigned nspare;                                   /* empty pools kept on
                                                        usedpools lists */
  unsigned spares_gone;       /* of them, given back by the purge thread
                                 (written only by a visitor, settled into
                                 nspare by the owner's slow paths: pool.c) */
  unsigned spare_leaves;      /* times a spare left: owner's slow paths */
  unsigned spare_look_n, spare_look_leaves;   /* the purge thread's last look */
  unsigned spares_shown, spares_shown_leaves; /* without membarrier: the spares
                                 and leaves at the owner's last slow path
                                 (pmi_spares_show; pool.c, "idle spares") */
  pmi_medium *mediums;                               /* every medium region of the heap */
  size_t nmediums;
  pmi_arena *usable_arenas;                          /* fullest first */
  pmi_arena *nfp2lasta[PMI_POOLS_PER_ARENA + 1];
  pmi_arena *arenas;                                 /* every arena of the heap */
  size_t narenas;
  _Atomic int lock;                                  /* spin lock, see above */
  _Atomic int busy;      /* the owner is in a slow path (heap.c, "visitors") */
  _Atomic int visitor;   /* a visitor holds lock and wants the heap (heap.c) */
  pmi_pool *remote_pools;     /* FULL pools holding remote frees (remote.c) */
  struct pmi_medium *remote_mediums;   /* FULL medium regions holding remote
                                          frees (medium.c) */
  pmi_block *remote_deferred; /* remote frees a non-owner could not place
                                 (faults, no memory for held_used), for the owner (remote.c) */
  struct pmi_held_used *held_used;   /* remote frees of USED pools and medium
                                        regions taken by a non-owner, by
                                        descriptor (remote.c, "held blocks of
                                        USED pools and regions"); NULL: none */
  uint32_t held_cap, held_n;  /* its slots (a power of two), and those in use */
  uint64_t hint_seen;         /* hint_pos at the last collection (remote.c) */
  uint64_t hint_decay_pos;    /* hint_pos at the purge thread's last look, */
  uint8_t hint_resident;      /* and whether the ring's pages may be in
                                 memory since (remote.c, "an idle ring") */
  uint8_t repair;      /* left by a thread that was inside malloc or free
                          when another thread forked: in this child, one of
                          its pools may be half-updated (heap.c repairs it
                          before anyone uses the heap) */
  /* Read by every remote free (is the heap owned?): on a line the owner
   * writes only as it adopts or leaves the heap.  Beside busy, which the
   * owner writes at every slow path, it made both sides miss, at every
   * remote free and every slow path. */
  _Alignas(64) _Atomic int owned;                    /* a live thread owns it */
  /* The owner of its regions' free-map entries (pmi_free_slot): its
   * thread's pointer while owned (| 1 in debug mode), else 0; written by
   * pmi_heap_set_tp only */
  uintptr_t tp;
  struct pmi_heap *next_heap;                        /* all heaps, never freed */
  struct pmi_heap *next_abandoned;                   /* the abandoned list */
  /* Remote frees land here, on a cache line of their own so that other
   * threads pushing do not slow the owner's fast path. */
  _Alignas(64) _Atomic(pmi_block *) thread_free;
  _Atomic uint64_t hint_pos;   /* blocks ever written to remote_hint (remote.c) */
  /* Batches pushed onto thread_free (the remote_pushes statistic): on the
   * line the push's CAS has just taken, where a global counter was a second
   * line that every pushing thread wrote, beside the purge thread's flags
   * that every slow path reads. */
  _Atomic uint64_t pushes;
  /* The blocks of the last batches pushed, in push order, for the collector
   * to prefetch ahead of its walk (remote.c); hints only, never followed:
   * written and read relaxed, overwritten as the ring wraps.  PMI_REMOTE_HINTS
   * of them, allocated with the heap (heap.c); pmi_heap_empty, to which no
   * thread frees, has none, so that its 16 KiB are not .data that every
   * process maps. */
  _Alignas(64) _Atomic(pmi_block *) remote_hint[];
} pmi_heap;
/* A heap and its hint ring.  malloc's fast path reads the tables by front
 * class from pmi_front.classes itself (alloc.c, front_pop), so a heap has no
 * copy of them. */
#define PMI_HEAP_BYTES (sizeof(pmi_heap) + PMI_REMOTE_HINTS * sizeof(_Atomic(pmi_block *)))

_Static_assert(offsetof(pmi_heap, medfront) == offsetof(pmi_heap, front[PMI_NCLASSES]),
               "front[32 + c] is medfront[c]");

#endif /* PM_TYPES_H */
