/* huge.c: blocks above the medium classes (128 KiB), and blocks aligned
 * beyond what the medium classes give (4 KiB), each in a mapping of its own.
 *
 *    region (256 KiB-aligned, or aligned to the block's alignment if more)
 *    |                                                               |
 *    | ... | header (64 B) | block: size bytes ...    | rest of slot |
 *    |<-- offset = max(page, alignment) -->|                         |
 *    |<------------ map_size: whole 256 KiB map slots ------------->|
 *
 * The mapping covers whole slots of the arena map, marked PMI_REGION_HUGE,
 * so that no other mapping (a glibc chunk, a thread's stack) ever shares a
 * slot with it; the pages past the block are never touched, so they cost
 * address space only, and malloc_usable_size gives them (they are ours and
 * writable).  The header sits just below the block: a free finds it at
 * p - 64 and believes it only if its magic is the per-process key xor p.
 *
 * Freed mappings wait in a small cache (PMI_HUGE_CACHE_ENTRIES runs,
 * PMI_HUGE_CACHE_BYTES in all) for POOLMALLOC_ARENA_DECAY_MS: a program that
 * frees a big buffer and allocates another at once (the common pattern)
 * then pays neither munmap, mmap, nor a page fault for each page (about 2 us
 * each here).  The cache is a best-fit list of page runs in whole slots:
 * a run bigger than a request is split (its tail stays cached), a freed
 * mapping merges with a cached neighbour, and a request no run fits grows
 * the cached runs that fit it into one (mremap: in place for one run, else
 * moved side by side onto a fresh reservation) rather than faulting in a
 * fresh mapping while their pages wait.  How much it holds follows the huge blocks'
 * peak (cache_room): never more than the peak less what is live and less
 * the fresh memory touched elsewhere since (pmi_huge_yield), plus an
 * eighth of the peak up to the largest mapping a block has taken, within
 * PMI_HUGE_CACHE_SLACK_MIN .. PMI_HUGE_CACHE_SLACK (a program whose huge
 * blocks peak at 2 MiB gets 256 KiB, not the whole slack: sqlite's peak RSS 39.8 ->
 * 36.9 MB), so that cached pages do not take the process above
 * a footprint it has already had (malloc-large's pattern: 20 blocks of
 * 256 KiB .. 4 MiB replaced at random faults in 22 k pages and peaks at
 * 70.5 MB, against 34 k and 78.9 MB with a fixed 32 MiB cap, and glibc's
 * 71 k and 71.4 MB).  The cache is checked for old entries whenever a huge
 * block is allocated or freed, and by the purge thread's passes while it
 * holds PMI_HUGE_CACHE_IDLE bytes or more (a program that frees its big
 * buffers and goes idle would otherwise keep up to PMI_HUGE_CACHE_BYTES;
 * below that, a command that frees one buffer of a few hundred KiB starts
 * no thread for it); malloc_trim empties it.
 *
 * Once huge blocks take more than POOLMALLOC_THP MiB, a fresh mapping of
 * 8 MiB or more is 2 MiB-aligned and advised for huge pages (chunk.c
 * decides): each whole 2 MiB range inside it faults in at once (malloc-large:
 * 501 k -> 23 k faults); see region_map, thp_round and runs_join.
 *
 * realloc grows a mapping in place with mremap when the address space after
 * it is free, else moves its pages (mremap onto a fresh aligned reservation,
 * no copy), and shrinks it by unmapping whole slots when that saves a
 * quarter or more. */
#include <errno.h>
#include <string.h>

#include "core/internal.h"

typedef struct huge_hdr {
  uintptr_t magic;       /* key() ^ block address; ^ 1 once freed */
  char *region;          /* start of the mapping */
  size_t map_size;       /* bytes mapped, whole slots */
  size_t size;           /* bytes requested */
  size_t align;          /* alignment of region (kept when it moves) */
  uint64_t unused_[3];
} huge_hdr;
_Static_assert(sizeof(huge_hdr) == 64, "the header is one cache line below the block");

/* The magic's key, from the per-process secret (set by pmi_process_init
 * before any block exists); bit 0 is clear, since it marks freed headers. */
static inline uintptr_t key(void) { return (pmi_link_key * 0x9E3779B97F4A7C15ull) & ~(uintptr_t)1; }
static _Atomic size_t live, live_bytes, mapped_bytes, peak_bytes;
/* The peak that bounds the cache (cache_room): peak_bytes, less the fresh
 * memory the process has touched elsewhere since (pmi_huge_yield). */
static _Atomic size_t room_peak;
/* The largest mapping a huge block has taken (cache_room's slack). */
static _Atomic size_t largest_map;

typedef struct cache_entry {
  char *region;
  size_t size;
  size_t align;
  uint64_t freed_ms;
} cache_entry;

static cache_entry cache[PMI_HUGE_CACHE_ENTRIES];   /* oldest first */
static unsigned cache_count;
/* changed under the lock; read without it by pmi_huge_yield (internal.h) */
_Atomic size_t pmi_huge_cache_bytes;
static _Atomic int cache_lock;
static _Atomic(void *) map_hint;

static void lock(void) { pmi_spin_lock(&cache_lock); }
static void unlock(void) { pmi_spin_unlock(&cache_lock); }

static inline huge_hdr *hdr_of(const void *p) { return (huge_hdr *)((uintptr_t)p - sizeof(huge_hdr)); }

/* The header of the huge block p of size bytes, which starts its mapping
 * region of map_size bytes or lies inside it (aligned). */
static huge_hdr *hdr_set(char *p, char *region, size_t map_size, size_t size) {
  huge_hdr *h = hdr_of(p);
  h->magic = key() ^ (uintptr_t)p;
  h->region = region;
  h->map_size = map_size;
  h->size = size;
  return h;
}


static size_t slots_round(size_t n) { return (n + PMI_ARENA_SIZE - 1) & ~(PMI_ARENA_SIZE - 1); }

static void account(ptrdiff_t blocks, ptrdiff_t bytes, ptrdiff_t mapped) {
  atomic_fetch_add_explicit(&live, (size_t)blocks, memory_order_relaxed);
  atomic_fetch_add_explicit(&live_bytes, (size_t)bytes, memory_order_relaxed);
  size_t now = atomic_fetch_add_explicit(&mapped_bytes, (size_t)mapped, memory_order_relaxed) + (size_t)mapped;
  size_t peak = atomic_load_explicit(&peak_bytes, memory_order_relaxed);
  while (now > peak && !atomic_compare_exchange_weak(&peak_bytes, &peak, now)) {}
  peak = atomic_load_explicit(&room_peak, memory_order_relaxed);
  while (now > peak && !atomic_compare_exchange_weak(&room_peak, &peak, now)) {}
}

static void region_unmap(char *region, size_t size) {
  pmi_arenamap_set(region, size, PMI_REGION_NONE);   /* before the address is free */
  pmi_os_unmap(region, size);
}

/* The entry points first, so that the code a program runs for its huge
 * blocks follows the core objects' inside the first 64 KiB of text
 * (CMakeLists.txt, "Link order"); the cache's workings after them. */
static char *cache_take(size_t map, size_t align, size_t *got);
static unsigned cache_take_smaller(size_t map, cache_entry *out, size_t *got);
static char *runs_join(cache_entry *runs, unsigned n, size_t *have, size_t map, size_t align);
static char *region_map(size_t map, size_t align);
static size_t move_run(char *from, size_t size, char *to);
static void cache_put(char *region, size_t size, size_t align);

/* Under huge pages, a mapping whose last 2 MiB range the block nearly
 * fills is rounded up to whole 2 MiB, so that range faults in as one huge
 * page rather than up to 512 small ones: when what it leaves untouched
 * (usable all the same: malloc_usable_size gives it) is at most 1 MiB and
 * a sixteenth of the mapping.  (Half a range whatever the size: malloc-large
 * 31 k faults, but bench_large's blocks of 256 KiB .. 4 MiB 70.6 -> 76.3
 * MB peak, above glibc's 73.9.)  Otherwise the range stays partial, its
 * pages small. */
static size_t thp_round(size_t map) {
  size_t part = map & (PMI_CHUNK_SIZE - 1), waste = PMI_CHUNK_SIZE - part;
  if (part == 0 || waste > PMI_CHUNK_SIZE / 2 || waste > map / 16) return map;
  if (!pmi_chunk_huge_wanted(map, atomic_load_explicit(&mapped_bytes, memory_order_relaxed) + map)) return map;
  return map - part + PMI_CHUNK_SIZE;
}

void *pmi_huge_malloc(size_t size, size_t alignment, bool zero) {
  pmi_process_init();
  pmi_fork_setup();   /* a huge block needs no heap: the handlers before the cache's lock (fork.c) */
  size_t page = pmi_os_page_size();
  size_t offset = alignment > page ? alignment : page;
  size_t align = offset > PMI_ARENA_SIZE ? offset : PMI_ARENA_SIZE;
  if (size > PTRDIFF_MAX - offset - 2 * align) {
    errno = ENOMEM;
    return NULL;
  }
  size_t map = thp_round(slots_round(offset + (size != 0 ? size : 1))), got = map;   /* malloc(0): a unique block */
  char *region = cache_take(map, align, &got);
  size_t have;
  cache_entry runs[PMI_HUGE_CACHE_ENTRIES];
  unsigned nruns;
  if (region != NULL) {
    PMI_COUNT(huge_cache_hits);
    if (zero) memset(region + offset, 0, size);   /* its pages have been used */
  } else if ((nruns = cache_take_smaller(map, runs, &have)) != 0) {
    region = runs_join(runs, nruns, &have, map, align);
    if (region == NULL) {
      errno = ENOMEM;
      return NULL;
    }
    PMI_COUNT(huge_remaps);
    if (zero && have > offset) memset(region + offset, 0, have - offset);   /* the rest is fresh */
  } else {
    region = region_map(map, align);
    if (region == NULL) {
      errno = ENOMEM;
      return NULL;
    }
  }
  char *p = region + offset;
  hdr_set(p, region, got, size)->align = align;
  account(1, (ptrdiff_t)size, (ptrdiff_t)got);
  if (map > atomic_load_explicit(&largest_map, memory_order_relaxed))
    atomic_store_explicit(&largest_map, map, memory_order_relaxed);   /* a bound, not a count: a lost race only keeps it lower */
  PMI_COUNT(malloc_large);
  return p;
}

/* The header of huge block p, or a report naming the pointer. */
static huge_hdr *check_block(const char *fn, const void *p) {
  uintptr_t a = (uintptr_t)p;
  if ((a & (PMI_POOL_SIZE - 1)) != 0)   /* blocks are page-aligned (pages are at least 4 KiB) */
    pmi_bad_pointer(fn, p, "invalid pointer (inside a huge block, not its start):");
  huge_hdr *h = hdr_of(p);
  /* p - 64 is in the slot before p's when p starts a slot: read it only if
   * that slot is ours too. */
  if ((a & (PMI_ARENA_SIZE - 1)) == 0 && pmi_arenamap_kind(h) != PMI_REGION_HUGE)
    pmi_bad_pointer(fn, p, "invalid pointer (inside a huge block, not its start):");
  if (h->magic == (key() ^ a)) return h;
  if (h->magic == (key() ^ a ^ 1)) pmi_bad_pointer(fn, p, "double free or corruption: huge block already freed,");
  pmi_bad_pointer(fn, p, "invalid pointer (inside a huge block, not its start):");
}

/* The last freed huge blocks' addresses.  Once a freed mapping goes back to
 * the OS its slots read "not ours" and its header is gone, so a second free
 * of it would look like a pointer from nowhere; free.c asks here before
 * it says so (only for pointers no allocator owns), and reports a double
 * free instead.  Blocks are page-aligned, so no glibc chunk shares the
 * address of one of them in practice; a block at an address that is ours
 * again is found by the map first. */
#define GONE_ENTRIES 64u
static _Atomic uintptr_t gone[GONE_ENTRIES];
static _Atomic unsigned gone_next;

static void gone_note(const void *p) {
  unsigned i = atomic_fetch_add_explicit(&gone_next, 1, memory_order_relaxed) % GONE_ENTRIES;
  atomic_store_explicit(&gone[i], (uintptr_t)p, memory_order_relaxed);
}

bool pmi_huge_was_freed(const void *p) {
  if (((uintptr_t)p & (PMI_POOL_SIZE - 1)) != 0) return false;
  for (unsigned i = 0; i < GONE_ENTRIES; i++)
    if (atomic_load_explicit(&gone[i], memory_order_relaxed) == (uintptr_t)p) return true;
  return false;
}

void pmi_huge_free(void *p) {
  huge_hdr *h = check_block("free", p);
  int saved = errno;
  gone_note(p);
  h->magic ^= 1;
  account(-1, -(ptrdiff_t)h->size, -(ptrdiff_t)h->map_size);
  PMI_COUNT(free_large);
  cache_put(h->region, h->map_size, h->align);
  errno = saved;
}

size_t pmi_huge_usable_size(const char *fn, const void *p) {
  huge_hdr *h = check_block(fn, p);
  return (size_t)(h->region + h->map_size - (const char *)p);
}

/* Resizes huge block p to size without copying when the OS allows; NULL
 * with p intact when memory runs out.  A block shrunk to a medium size
 * moves to its class when that halves it at once, or when it is down to
 * 8 KiB: a buffer that realloc grew here from a medium class (alloc.c) and
 * shrinks in steps stays until then, not copied at every step. */
void *pmi_huge_realloc(void *p, size_t size) {
  huge_hdr *h = check_block("realloc", p);
  size_t offset = (size_t)((char *)p - h->region), map = h->map_size;
  size_t want = slots_round(offset + size);   /* no overflow: size <= PTRDIFF_MAX */
  if (want == map && size >= PMI_MEDIUM_MAX / 16) {   /* the common case: room in its slots */
    atomic_fetch_add_explicit(&live_bytes, size - h->size, memory_order_relaxed);
    h->size = size;
    return p;
  }
  if (size < PMI_MEDIUM_MAX / 16 || (size <= PMI_MEDIUM_MAX && size < h->size / 2)) {
    void *q = pmi_malloc(size);
    if (q == NULL) return NULL;
    memcpy(q, p, size);
    pmi_huge_free(p);
    return q;
  }
  char *region = h->region;
  if (size > PTRDIFF_MAX - offset - 2 * h->align) {
    errno = ENOMEM;
    return NULL;
  }
  ptrdiff_t dsize = (ptrdiff_t)size - (ptrdiff_t)h->size;
  if (want <= map) {
    if (want < map - map / 4) {        /* saves a good share: the tail goes */
      region_unmap(region + want, map - want);
      h->map_size = want;
    }
    h->size = size;
    account(0, dsize, (ptrdiff_t)h->map_size - (ptrdiff_t)map);
    return p;
  }
  /* Grow in place: the address space after the mapping is free. */
  if (pmi_os_remap(region, map, want, NULL) != NULL) {
    if (pmi_arenamap_set(region + map, want - map, PMI_REGION_HUGE)) {
      h->map_size = want;
      h->size = size;
      account(0, dsize, (ptrdiff_t)(want - map));
      PMI_COUNT(huge_remaps);
      return p;
    }
    pmi_os_unmap(region + map, want - map);
  }
  /* Move: reserve an aligned range, then move the pages onto its start (a
   * block joined from cached runs goes piece by piece; what the OS refuses
   * to move is copied). */
  char *fresh = region_map(want, h->align);
  if (fresh != NULL) {
    pmi_arenamap_set(region, map, PMI_REGION_NONE);
    size_t moved = move_run(region, map, fresh), keep = offset + h->size;
    if (moved < map) {
      if (moved < keep) memcpy(fresh + moved, region + moved, keep - moved);
      pmi_os_unmap(region + moved, map - moved);
    }
    char *q = fresh + offset;
    hdr_set(q, fresh, want, size);   /* the moved header keeps its align */
    account(0, dsize, (ptrdiff_t)(want - map));
    PMI_COUNT(huge_remaps);
    return q;
  }
  /* Copy, as a last resort. */
  void *q = pmi_huge_malloc(size, offset > pmi_os_page_size() ? offset : 0, false);
  if (q == NULL) return NULL;
  memcpy(q, p, h->size < size ? h->size : size);
  pmi_huge_free(p);
  return q;
}

/* Entries older than the decay time leave the cache; they are unmapped by
 * the caller, outside the lock, from out[]. */
static unsigned cache_decay_locked(uint64_t now, cache_entry *out) {
  uint64_t decay = (uint64_t)pmi_option(arena_decay_ms);
  unsigned n = 0;
  while (n < cache_count && cache[n].freed_ms + decay <= now) n++;
  memcpy(out, cache, n * sizeof *out);
  for (unsigned i = 0; i < n; i++) pmi_huge_cache_bytes -= cache[i].size;
  memmove(cache, cache + n, (cache_count - n) * sizeof *cache);
  cache_count -= n;
  return n;
}

static void unmap_all(cache_entry *e, unsigned n) {
  for (unsigned i = 0; i < n; i++) region_unmap(e[i].region, e[i].size);
}

/* The best cached run for map bytes aligned to align: the smallest that is
 * at least map.  Its first map bytes are taken; a tail of a quarter or more
 * (whole slots) stays in the cache, so a big freed mapping serves smaller
 * requests with pages that are already faulted in.  NULL if none fits. */
static char *cache_take(size_t map, size_t align, size_t *got) {
  cache_entry old[PMI_HUGE_CACHE_ENTRIES];
  char *region = NULL;
  lock();
  unsigned n = cache_decay_locked(pmi_os_now_ms(), old);
  unsigned best = cache_count;
  for (unsigned i = 0; i < cache_count; i++) {
    size_t s = cache[i].size;
    if (s < map || ((uintptr_t)cache[i].region & (align - 1)) != 0) continue;
    if (best == cache_count || s < cache[best].size) best = i;
  }
  if (best < cache_count) {
    cache_entry *e = &cache[best];
    region = e->region;
    if (e->size - map >= map / 4 && e->size - map >= PMI_ARENA_SIZE) {   /* split */
      *got = map;
      e->region += map;
      e->size -= map;
      e->align = PMI_ARENA_SIZE;
    } else {
      *got = e->size;
      memmove(e, e + 1, (cache_count - best - 1) * sizeof *cache);
      cache_count--;
    }
    pmi_huge_cache_bytes -= *got;
  }
  unlock();
  unmap_all(old, n);
  return region;
}

/* No cached run fits map: the cached runs that together fit it leave the
 * cache, largest first (up to PMI_HUGE_CACHE_ENTRIES of them, in out[],
 * their bytes in *got), to be joined into the new block by runs_join, so
 * that their pages, already faulted in, serve the block's bytes instead of
 * lingering in the cache (and going back to the OS as the cache makes
 * room) while a fresh mapping faults in all of its own.  How many; 0 if
 * none fits. */
static unsigned cache_take_smaller(size_t map, cache_entry *out, size_t *got) {
  unsigned n = 0;
  size_t total = 0;
  lock();
  for (;;) {
    unsigned best = cache_count;
    for (unsigned i = 0; i < cache_count; i++)
      if (total + cache[i].size <= map && (best == cache_count || cache[i].size > cache[best].size)) best = i;
    if (best == cache_count) break;
    out[n++] = cache[best];
    total += cache[best].size;
    pmi_huge_cache_bytes -= cache[best].size;
    memmove(&cache[best], &cache[best + 1], (cache_count - best - 1) * sizeof *cache);
    cache_count--;
  }
  unlock();
  *got = total;
  return n;
}

static char *region_map(size_t map, size_t align);

/* Moves the pages of [from, from + size) to to (page tables, not bytes),
 * in address order; how many bytes from the start moved (all of them, but
 * for a refusal of the OS).  A run that was itself joined from runs is
 * several kernel mappings, and one mremap moves only within one: then its
 * halves go one after the other (the pieces are whole slots). */
static size_t move_run(char *from, size_t size, char *to) {
  if (pmi_os_remap(from, size, size, to) != NULL) return size;
  if (size <= PMI_ARENA_SIZE) return 0;
  size_t half = slots_round(size / 2);
  if (half >= size) half = size - PMI_ARENA_SIZE;
  size_t moved = move_run(from, half, to);
  return moved < half ? moved : half + move_run(from + half, size - half, to + half);
}

/* Keeps the first keep bytes of the runs runs[0 .. *n) and gives the rest
 * back (whole slots: keep is); how many bytes are kept, *n the runs left. */
static size_t runs_trim(cache_entry *runs, unsigned *n, size_t keep) {
  size_t kept = 0;
  unsigned left = 0;
  for (unsigned i = 0; i < *n; i++) {
    size_t size = runs[i].size, part = keep - kept < size ? keep - kept : size;
    if (part < size) region_unmap(runs[i].region + part, size - part);
    if (part != 0) {
      runs[left++].size = part;
      kept += part;
    }
  }
  *n = left;
  return kept;
}

/* A mapping of map bytes aligned to align that starts with the pages of
 * the runs runs[0 .. n) (*have bytes in all), kept: one run grows in place
 * when the address space after it is free; else they move (page tables,
 * not bytes) one after the other to the start of a fresh reservation.
 * NULL (and the runs unmapped) when the OS refuses.  Under huge pages
 * (pmi_chunk_huge_wanted) the kept pages end on a 2 MiB boundary and the
 * rest go back (*have says how many stay): the fresh part then starts
 * with a whole 2 MiB range, which faults in as one huge page, where a
 * range begun by a run's 4 KiB pages would fault in the rest of it page
 * by page (up to 512 faults for each join: malloc-large's faults went
 * 133 k -> 31 k with this and thp_round together). */
static char *runs_join(cache_entry *runs, unsigned n, size_t *have, size_t map, size_t align) {
  char *r = runs[0].region;
  bool in_place = n == 1 && ((uintptr_t)r & (align - 1)) == 0;
  bool thp = pmi_chunk_huge_wanted(map, atomic_load_explicit(&mapped_bytes, memory_order_relaxed) + map);
  if (thp) {
    uintptr_t end = in_place ? (uintptr_t)r + *have : *have;   /* a fresh mapping is 2 MiB-aligned */
    size_t cut = end & (PMI_CHUNK_SIZE - 1);
    if (*have - cut + PMI_CHUNK_SIZE <= map) {   /* only if the range then lies whole in the mapping */
      *have = runs_trim(runs, &n, *have - cut);
      if (n == 0) return region_map(map, align);
    }
  }
  if (in_place && pmi_os_remap(r, *have, map, NULL) != NULL) {
    if (pmi_arenamap_set(r + *have, map - *have, PMI_REGION_HUGE)) {
      if (thp) pmi_chunk_advise_huge(r + *have, map - *have);   /* the run may not have been */
      return r;
    }
    pmi_os_unmap(r + *have, map - *have);
  }
  char *fresh = region_map(map, align);
  size_t off = 0;
  for (unsigned i = 0; i < n; i++) {
    r = runs[i].region;
    size_t size = runs[i].size;
    if (fresh != NULL) {
      pmi_arenamap_set(r, size, PMI_REGION_NONE);   /* before the address is free */
      size_t moved = move_run(r, size, fresh + off);
      r += moved;
      size -= moved;
      off += moved;
    }
    if (size != 0) region_unmap(r, size);   /* what did not move: its place in fresh keeps fresh pages */
    off += size;
  }
  return fresh;
}

/* How many bytes the cache may hold: what the live huge blocks are below
 * their peak, less what the process has touched elsewhere since (so the
 * cache never takes the process above a footprint it has already had),
 * plus a slack of an eighth of the peak, at most the largest mapping a
 * block has taken (within PMI_HUGE_CACHE_SLACK_MIN .. PMI_HUGE_CACHE_SLACK),
 * and never more than PMI_HUGE_CACHE_BYTES in all. */
static size_t cache_room(void) {
  size_t now = atomic_load_explicit(&mapped_bytes, memory_order_relaxed);
  size_t peak = atomic_load_explicit(&room_peak, memory_order_relaxed);
  size_t big = atomic_load_explicit(&largest_map, memory_order_relaxed);
  size_t cap = big > PMI_HUGE_CACHE_SLACK_MIN ? big : PMI_HUGE_CACHE_SLACK_MIN;
  if (cap > PMI_HUGE_CACHE_SLACK) cap = PMI_HUGE_CACHE_SLACK;
  size_t slack = peak / 8 < cap ? peak / 8 : cap;
  size_t room = (peak > now ? peak - now : 0) + slack;
  return room < PMI_HUGE_CACHE_BYTES ? room : PMI_HUGE_CACHE_BYTES;
}

/* A freed mapping into the cache, merged with a cached neighbour if it has
 * one (runs coalesce, so that the cache keeps a few large runs rather than
 * many small ones), or back to the OS. */
static void cache_put(char *region, size_t size, size_t align) {
  cache_entry old[PMI_HUGE_CACHE_ENTRIES + 1];
  uint64_t now = pmi_os_now_ms();
  if (pmi_option(arena_decay_ms) == 0 || size > PMI_HUGE_CACHE_BYTES / 2) {
    region_unmap(region, size);
    return;
  }
  lock();
  unsigned n = cache_decay_locked(now, old);
  for (unsigned i = 0; i < cache_count;) {
    cache_entry *e = &cache[i];
    if ((e->region + e->size == region || region + size == e->region) && size + e->size <= PMI_HUGE_CACHE_BYTES / 2) {
      if (e->region < region) {
        region = e->region;
        align = e->align;
      }
      size += e->size;
      pmi_huge_cache_bytes -= e->size;
      memmove(e, e + 1, (cache_count - i - 1) * sizeof *cache);
      cache_count--;
      continue;   /* the run may now touch another one */
    }
    i++;
  }
  size_t room = cache_room();
  while (cache_count > 0 && (cache_count == PMI_HUGE_CACHE_ENTRIES || pmi_huge_cache_bytes + size > room)) {
    old[n++] = cache[0];                     /* the oldest makes room */
    pmi_huge_cache_bytes -= cache[0].size;
    memmove(cache, cache + 1, (cache_count - 1) * sizeof *cache);
    cache_count--;
  }
  cache[cache_count++] = (cache_entry){region, size, align, now};
  pmi_huge_cache_bytes += size;
  bool idle_worth = pmi_huge_cache_bytes >= PMI_HUGE_CACHE_IDLE;
  unlock();
  unmap_all(old, n);
  if (idle_worth) {   /* no lock held: free's and realloc's slow paths */
    pmi_purge_note();
    pmi_purge_kick();
  }
}

/* The purge thread: cached runs older than the decay go back to the OS;
 * true while some are left (a later pass decays them). */
bool pmi_huge_decay(uint64_t now) {
  cache_entry old[PMI_HUGE_CACHE_ENTRIES];
  lock();
  unsigned n = cache_decay_locked(now, old);
  bool left = cache_count != 0;
  unlock();
  size_t bytes = 0;
  for (unsigned i = 0; i < n; i++) bytes += old[i].size;
  unmap_all(old, n);
  if (bytes != 0) atomic_fetch_add_explicit(&pmi_purge_stats.purge_bytes, bytes, memory_order_relaxed);
  return left;
}

/* The process is about to touch bytes of fresh memory outside the huge
 * blocks (medium.c: a carve, a new arena): the headroom below the peak that
 * the cache may fill shrinks by as much, and cached runs beyond the new
 * room go back to the OS, oldest first.  sqlite's peak: its huge blocks
 * (a 2 MiB buffer grown by realloc) are freed before its page cache and
 * records reach their peak, and their cached pages added 2 MiB to it.
 * (pmi_huge_yield, internal.h, calls it when the cache holds anything:
 * inline there, so that a program without huge blocks never runs this
 * file's code, 20 KiB past the core's in the text: CMakeLists.txt, "Link
 * order".) */
void pmi_huge_yield_cached(size_t bytes) {
  size_t now = atomic_load_explicit(&mapped_bytes, memory_order_relaxed);
  size_t peak = atomic_load_explicit(&room_peak, memory_order_relaxed), lower;
  do lower = peak - now > bytes ? peak - bytes : now;
  while (peak > now && !atomic_compare_exchange_weak(&room_peak, &peak, lower));
  cache_entry old[PMI_HUGE_CACHE_ENTRIES];
  unsigned n = 0;
  lock();
  size_t room = cache_room();
  while (cache_count > 0 && pmi_huge_cache_bytes > room) {
    old[n++] = cache[0];
    pmi_huge_cache_bytes -= cache[0].size;
    memmove(cache, cache + 1, (cache_count - 1) * sizeof *cache);
    cache_count--;
  }
  unlock();
  unmap_all(old, n);
}

void pmi_huge_trim(void) {
  cache_entry old[PMI_HUGE_CACHE_ENTRIES];
  lock();
  unsigned n = cache_count;
  memcpy(old, cache, n * sizeof *old);
  cache_count = 0;
  pmi_huge_cache_bytes = 0;
  unlock();
  unmap_all(old, n);
}

/* A fresh mapping of map bytes aligned to align, marked in the arena map. */
static char *region_map(size_t map, size_t align) {
  size_t now = atomic_load_explicit(&mapped_bytes, memory_order_relaxed) + map;
  bool thp = pmi_chunk_huge_wanted(map, now);
  if (thp && align < PMI_CHUNK_SIZE) align = PMI_CHUNK_SIZE;
  char *hint = pmi_load_relaxed(&map_hint);
  hint = hint != NULL && (uintptr_t)hint > map ? (char *)((uintptr_t)(hint - map) & ~(uintptr_t)(align - 1)) : NULL;
  char *region = pmi_os_map_aligned(map, align, hint);
  if (region == NULL) return NULL;
  if (thp) pmi_chunk_advise_huge(region, map);
  if (!pmi_arenamap_set(region, map, PMI_REGION_HUGE)) {
    pmi_os_unmap(region, map);
    return NULL;
  }
  pmi_store_relaxed(&map_hint, region);
  return region;
}

void pmi_huge_figures_get(pmi_huge_figures *out) {
  out->live = atomic_load(&live);
  out->live_bytes = atomic_load(&live_bytes);
  out->mapped_bytes = atomic_load(&mapped_bytes);
  out->peak_bytes = atomic_load(&peak_bytes);
  lock();
  out->cached = cache_count;
  out->cached_bytes = pmi_huge_cache_bytes;
  unlock();
}

/* fork: the cache's lock is taken last (fork.c). */
void pmi_huge_fork_prepare(void) { pmi_spin_fork_take(&cache_lock); }
void pmi_huge_fork_parent(void) { pmi_spin_fork_give(&cache_lock); }
void pmi_huge_fork_child(void) { atomic_store(&cache_lock, PMI_LOCK_FREE); }
