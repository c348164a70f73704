/* chunk.c: the address space of arenas, and huge pages for big heaps.
 *
 * A small program maps its arenas (256 KiB) one by one (os.c's
 * pmi_os_map_aligned, hinted so that they merge into one VMA) and touches
 * them page by page: a fault for each 4 KiB, but no page it does not use.
 * A big heap pays for those faults (about 3 us each on a VM: 16 k of them
 * for 64 MiB) and for the TLB misses of 4 KiB pages.  Once the arenas
 * mapped now exceed POOLMALLOC_THP MiB, new ones are carved from chunks:
 *
 *   chunk: 2 MiB, 2 MiB-aligned, madvise(MADV_HUGEPAGE)
 *   +--------+--------+--------+-- ... --+--------+--------------+
 *   | arena  | arena  | arena  |         | arena  | (not carved) |
 *   +--------+--------+--------+-- ... --+--------+--------------+
 *
 * so that the kernel backs each 2 MiB with one huge page at its first
 * touch (THP mode "madvise" or "always"; defrag "madvise" lets that fault
 * compact memory for it).  Chunks are hinted just below the previous one,
 * so that they merge into one VMA, and are carved in arena order: eight
 * arenas a chunk, none misaligned, no address space left over.
 *
 * Why arenas only: a heap fills its fullest arena first (arena.c), so an
 * arena's pages are nearly all touched; a medium region is 1 MiB of mostly
 * untouched address space per class and thread (its carved runs, colour
 * window and tail, medium.c), which a huge page would make resident: with
 * regions carved from chunks as well, larson's peak RSS went from 27 to 70
 * MB and gcc's from 55 to 111 MB.  Why a threshold, of arenas mapped now:
 * a huge page is resident as a whole, so the chunk being carved (at most
 * 2 MiB, less the arenas in use) and the empty pools of a chunk's arenas
 * are memory, not just address space; below the threshold a program keeps
 * its 4 KiB pages and its lean RSS (/bin/true never gets here, and never
 * reads the THP mode), above it the overhead is at most that partly used
 * chunk (docs/ARCHITECTURE.md, "Huge pages", has the figures).
 *
 * Giving memory back: an arena is unmapped on its own (from the reserve's
 * decay and malloc_trim), and the purges give empty pools' pages back with
 * MADV_DONTNEED, the purge thread's only once a pool has sat empty through
 * three of its passes rather than one (purge.c, CHUNK_PASSES: a busy
 * program's pools that empty and fill again keep their huge page; an idle
 * one's go within two decay periods).  Either splits
 * the huge page it falls in into 4 KiB pages (the freed ones leave RSS at
 * once; the kernel frees them when it splits the page, from its
 * deferred-split list), and an unmap splits the VMA as the unmap of a lone
 * arena between merged neighbours always did: no more VMAs than arenas,
 * under vm.max_map_count as before (one more where the chunks' VMA, whose
 * flag differs, meets the arenas mapped before the threshold).  khugepaged
 * may collapse a split range back into a huge page when at most
 * max_ptes_none (511 by default) of its pages are missing, refilling purged
 * pages with zeros; it scans 16 MiB every 10 s by default, and an empty
 * arena still leaves altogether after the decay.  After fork the child
 * shares the chunks copy-on-write (a write to a shared huge page copies
 * 4 KiB, not 2 MiB) and goes on carving the same chunk. */
#include "core/internal.h"

#define CHUNK_SIZE PMI_CHUNK_SIZE

static _Atomic int chunk_lock;
static char *carve_at;                 /* the next arena of the chunk being carved */
static size_t carve_left;              /* bytes of it not carved yet */
static char *chunk_hint;               /* where the next chunk is likely to go */
static _Atomic int thp_mode;           /* enum pmi_thp_mode; 0: not read yet */
static _Atomic uint64_t chunks_mapped, pieces_carved;   /* for the report */

static _Atomic uint64_t huge_advised;                  /* huge blocks' mappings (huge.c) */

void pmi_chunk_counts(uint64_t *chunks, uint64_t *pieces, uint64_t *huge) {
  *chunks = atomic_load(&chunks_mapped);
  *pieces = atomic_load(&pieces_carved);
  *huge = atomic_load(&huge_advised);
}

/* The kernel's mode (enum pmi_thp_mode), read the first time a heap is big
 * enough to ask. */
static int thp_read(void) {
  int mode = pmi_load_relaxed(&thp_mode);
  if (mode == 0) {
    mode = pmi_os_thp_mode(pmi_option(thp_advise) != 0);
    pmi_store_relaxed(&thp_mode, mode);
  }
  return mode;
}
/* Arenas from chunks: not where an advised fault waits for compaction. */
static bool thp_allowed(void) {
  int mode = thp_read();
  return mode == PMI_THP_ADVISE || mode == PMI_THP_ALIGN;
}

/* Whether memory of which bytes are mapped now (arenas, or huge blocks'
 * mappings, each on its own) is past the threshold where huge pages pay. */
static bool thp_wanted(size_t bytes) {
  long mib = pmi_option(thp);
  return mib != 0 && bytes >= (size_t)mib << 20 && thp_allowed();
}

/* A huge block's mapping (huge.c) of size bytes, where its huge blocks
 * take mapped bytes with it: true when it should be 2 MiB-aligned and
 * advised (pmi_chunk_advise_huge after it is mapped).  The kernel backs
 * only whole aligned 2 MiB ranges inside a VMA with huge pages, so the
 * pages of its last, partial range (the slot's untouched tail past the
 * block) stay 4 KiB.  Only mappings of 8 MiB or more qualify: with 2 MiB,
 * bench_large's blocks of 256 KiB .. 4 MiB took 14.7 k faults instead of
 * 19.6 k but ran about 10 % slower (huge pages split by the cache's
 * partial unmaps and misaligned moves, the alignment's extra munmap). */
bool pmi_chunk_huge_wanted(size_t size, size_t mapped) {
  long mib = pmi_option(thp);
  return size >= 4 * PMI_CHUNK_SIZE && mib != 0 && mapped >= (size_t)mib << 20 && thp_read() > 0;
}

/* Advises the fresh mapping [p, p + size) (pmi_chunk_huge_wanted said
 * yes); a refusal turns huge pages off for the process. */
void pmi_chunk_advise_huge(void *p, size_t size) {
  if (!pmi_os_advise_huge(p, size)) pmi_store_relaxed(&thp_mode, PMI_THP_NONE);
  else atomic_fetch_add_explicit(&huge_advised, 1, memory_order_relaxed);
}

/* An arena's address space from the chunk being carved, mapping a new
 * chunk when it is used up; NULL when the OS refuses one. */
static void *carve(void) {
  char *arena = NULL;
  pmi_spin_lock(&chunk_lock);
  if (carve_left == 0) {
    char *chunk = pmi_os_map_aligned(CHUNK_SIZE, CHUNK_SIZE, chunk_hint);
    if (chunk != NULL) {
      if (pmi_load_relaxed(&thp_mode) == PMI_THP_ADVISE && !pmi_os_advise_huge(chunk, CHUNK_SIZE))
        pmi_store_relaxed(&thp_mode, PMI_THP_NONE);
      chunk_hint = chunk - CHUNK_SIZE;
      carve_at = chunk;
      carve_left = CHUNK_SIZE;
      atomic_fetch_add_explicit(&chunks_mapped, 1, memory_order_relaxed);
    }
  }
  if (carve_left != 0) {
    arena = carve_at;
    carve_at += PMI_ARENA_SIZE;
    carve_left -= PMI_ARENA_SIZE;
    atomic_fetch_add_explicit(&pieces_carved, 1, memory_order_relaxed);
  }
  pmi_spin_unlock(&chunk_lock);
  return arena;
}

/* Address space for an arena, PMI_ARENA_SIZE-aligned: from a chunk once
 * the arenas mapped now (mapped, arena.c's count) are more than the
 * threshold, on its own otherwise (hint: where arena.c guesses its next
 * mapping goes).  NULL when the OS refuses.  Each arena is unmapped on its
 * own (pmi_os_unmap), wherever it came from. */
void *pmi_chunk_map(void *hint, size_t mapped, bool *in_chunk) {
  void *p = NULL;
  if (thp_wanted(mapped * PMI_ARENA_SIZE)) p = carve();
  *in_chunk = p != NULL;
  if (p == NULL) p = pmi_os_map_aligned(PMI_ARENA_SIZE, PMI_ARENA_SIZE, hint);
  return p;
}

/* fork: taken after the reserves' locks (fork.c), free again in the child,
 * whose chunks are the parent's. */
void pmi_chunk_fork_prepare(void) { pmi_spin_fork_take(&chunk_lock); }
void pmi_chunk_fork_parent(void) { pmi_spin_fork_give(&chunk_lock); }
void pmi_chunk_fork_child(void) { atomic_store(&chunk_lock, PMI_LOCK_FREE); }
