/* chunk.c: the address space of arenas and medium regions, and huge pages
 * for big heaps.
 *
 * A small program maps its arenas (256 KiB) and regions (1 MiB) one by one
 * (os.c's pmi_os_map_aligned, hinted so that they merge into one VMA), and
 * touches them page by page: a fault for each 4 KiB, but no page it does
 * not use.  A big heap pays for those faults (about 3 us each on a VM: 16 k
 * of them for 64 MiB) and for the TLB misses of 4 KiB pages.  Once the
 * arenas and regions mapped now exceed POOLMALLOC_THP MiB, new ones are
 * carved from chunks instead:
 *
 *   chunk (2 MiB, 2 MiB-aligned, madvise(MADV_HUGEPAGE))
 *   +--------+--------+--------+-- ... --+--------+     arenas: 8 a chunk
 *   | arena  | arena  | arena  |         | (left) |
 *   +--------+--------+--------+-- ... --+--------+
 *   +-------------------+-------------------+           regions: 2 a chunk
 *   | region            | region            |
 *   +-------------------+-------------------+
 *
 * so that the kernel backs each 2 MiB with one huge page at the first touch
 * (THP mode "madvise" or "always"; defrag "madvise" lets that fault compact
 * memory for it).  Arenas and regions take chunks of their own (each kind
 * carves its one size, so a chunk is used up to its end and no piece is
 * ever misaligned); chunks are hinted just below the previous one, so that
 * they merge into one VMA.
 *
 * What it costs: a huge page is resident as a whole, so the part of a
 * chunk not carved yet (at most one chunk per kind: 4 MiB), the pages of an
 * arena or region no block reached yet, a region's colour window and tail
 * are memory, not just address space.  Hence the threshold: a program below
 * it keeps its 4 KiB pages and its lean RSS (/bin/true never gets here, and
 * never reads the THP mode); above it, the overhead is at most those
 * partly used chunks, 4 MiB against 32 MiB and more (docs/ARCHITECTURE.md,
 * "Huge pages", has the figures).
 *
 * Giving memory back is unchanged: a piece is unmapped on its own
 * (pmi_chunk_unmap, from the reserves' decay and malloc_trim), and the
 * purges give pages back with MADV_DONTNEED.  Either splits the huge page
 * it falls in into 4 KiB pages (the freed ones leave RSS at once; the
 * kernel frees them when it splits the page, on its deferred-split list),
 * and an unmap splits the VMA, as an unmap of a lone arena inside merged
 * neighbours does today: no more VMAs than pieces, under vm.max_map_count
 * as before.  khugepaged may collapse a split range back into a huge page
 * if at most max_ptes_none (511 by default) of its pages are missing,
 * refilling purged pages with zeros; it scans 16 MiB every 10 s by default,
 * and an empty arena or region still leaves altogether after the decay.
 * After fork the child shares the chunks copy-on-write (a write to a shared
 * huge page copies 4 KiB, not 2 MiB) and keeps carving the same chunk. */
#include "core/internal.h"

#define CHUNK_SIZE ((size_t)2 << 20)

static _Atomic int chunk_lock;
static char *carve_at[2];              /* per kind (arena, region): the next piece */
static size_t carve_left[2];           /* bytes of its chunk not carved yet */
static char *chunk_hint;               /* where the next chunk is likely to go */
static _Atomic size_t space_now;       /* bytes of arenas and regions mapped now */
static _Atomic int thp_mode;           /* 0: not read yet, 1: allowed, -1: not */
static _Atomic uint64_t chunks_mapped, pieces_carved;   /* for the report */

void pmi_chunk_counts(uint64_t *chunks, uint64_t *pieces) {
  *chunks = atomic_load(&chunks_mapped);
  *pieces = atomic_load(&pieces_carved);
}

/* The kernel's mode, read the first time a heap is big enough to ask. */
static bool thp_allowed(void) {
  int mode = pmi_load_relaxed(&thp_mode);
  if (mode == 0) {
    mode = pmi_os_thp_allowed() ? 1 : -1;
    pmi_store_relaxed(&thp_mode, mode);
  }
  return mode > 0;
}

/* A piece of size bytes (the arena or the region size, both dividing the
 * chunk) from the kind's chunk, mapping a new one when it is used up;
 * NULL when the OS refuses a chunk. */
static void *carve(size_t size) {
  unsigned kind = size == PMI_ARENA_SIZE ? 0 : 1;
  char *piece = NULL;
  pmi_spin_lock(&chunk_lock);
  if (carve_left[kind] == 0) {
    char *chunk = pmi_os_map_aligned(CHUNK_SIZE, CHUNK_SIZE, chunk_hint);
    if (chunk != NULL) {
      if (!pmi_os_advise_huge(chunk, CHUNK_SIZE)) pmi_store_relaxed(&thp_mode, -1);
      chunk_hint = chunk - CHUNK_SIZE;
      carve_at[kind] = chunk;
      carve_left[kind] = CHUNK_SIZE;
      atomic_fetch_add_explicit(&chunks_mapped, 1, memory_order_relaxed);
    }
  }
  if (carve_left[kind] != 0) {
    piece = carve_at[kind];
    carve_at[kind] += size;
    carve_left[kind] -= size;
    atomic_fetch_add_explicit(&pieces_carved, 1, memory_order_relaxed);
  }
  pmi_spin_unlock(&chunk_lock);
  return piece;
}

/* Address space for an arena or a region, aligned to its size: from a
 * chunk once the heap is big, on its own otherwise (hint: the caller's
 * guess of where its kind's next mapping goes).  NULL when the OS refuses. */
void *pmi_chunk_map(size_t size, void *hint) {
  size_t now = atomic_fetch_add_explicit(&space_now, size, memory_order_relaxed) + size;
  long mib = pmi_option(thp);
  void *p = NULL;
  if (mib != 0 && now > (size_t)mib << 20 && thp_allowed()) p = carve(size);
  if (p == NULL) p = pmi_os_map_aligned(size, size, hint);
  if (p == NULL) atomic_fetch_sub_explicit(&space_now, size, memory_order_relaxed);
  return p;
}

void pmi_chunk_unmap(void *p, size_t size) {
  pmi_os_unmap(p, size);
  atomic_fetch_sub_explicit(&space_now, size, memory_order_relaxed);
}

/* fork: taken after the reserves' locks (fork.c), free again in the child,
 * whose chunks are the parent's. */
void pmi_chunk_fork_prepare(void) { pmi_spin_fork_take(&chunk_lock); }
void pmi_chunk_fork_parent(void) { pmi_spin_fork_give(&chunk_lock); }
void pmi_chunk_fork_child(void) { atomic_store(&chunk_lock, PMI_LOCK_FREE); }
