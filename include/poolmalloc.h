/* poolmalloc: a pymalloc-style drop-in malloc.
 *
 * Programs normally use it without this header: preload the library
 * (LD_PRELOAD=libpoolmalloc.so) or link it (-lpoolmalloc) and the standard
 * malloc, free, calloc, ... are poolmalloc's.  This header names the same
 * entry points with a pm_ prefix, for programs that want to call poolmalloc
 * by name whichever malloc is in charge, plus poolmalloc's own extensions.
 */
#ifndef POOLMALLOC_H
#define POOLMALLOC_H

#include <stddef.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(PM_BUILDING_LIBRARY)
#define PM_API __attribute__((visibility("default")))
#else
#define PM_API
#endif

#define POOLMALLOC_VERSION_MAJOR 0
#define POOLMALLOC_VERSION_MINOR 1

/* ---- the C library's allocation API, by another name ------------------- */
PM_API void  *pm_malloc(size_t size) __attribute__((malloc, alloc_size(1)));
PM_API void  *pm_calloc(size_t n, size_t size) __attribute__((malloc, alloc_size(1, 2)));
PM_API void  *pm_realloc(void *p, size_t size) __attribute__((alloc_size(2)));
PM_API void  *pm_reallocarray(void *p, size_t n, size_t size);
PM_API void   pm_free(void *p);
PM_API void   pm_free_sized(void *p, size_t size);
PM_API void   pm_free_aligned_sized(void *p, size_t alignment, size_t size);
PM_API int    pm_posix_memalign(void **out, size_t alignment, size_t size);
PM_API void  *pm_aligned_alloc(size_t alignment, size_t size) __attribute__((malloc));
PM_API void  *pm_memalign(size_t alignment, size_t size) __attribute__((malloc));
PM_API void  *pm_valloc(size_t size) __attribute__((malloc));
PM_API void  *pm_pvalloc(size_t size) __attribute__((malloc));
PM_API size_t pm_malloc_usable_size(void *p);

/* ---- poolmalloc's own --------------------------------------------------- */

/* Nonzero when p lies in memory poolmalloc hands blocks out from (a pool
 * arena, a medium region or a huge mapping); zero for memory it does not
 * own, such as blocks the C library handed out itself.  O(1). */
PM_API int    pm_owns(const void *p);

/* Walks every heap, arena and pool poolmalloc can reach safely from this
 * thread (its own heap and the heaps no thread owns) and the arena reserve,
 * and verifies the counts and list invariants of src/core/types.h.  Returns
 * 0 when all hold; otherwise prints what is wrong on stderr and returns the
 * number of violations.  Not read-only: it takes the locks fork() takes (the
 * list of heaps, each heap it walks, the reserve), so other threads' mallocs
 * and frees wait while it runs, and first rebuilds an unowned heap that a
 * fork left to be repaired, as that heap's next user would. */
PM_API int    pm_check(void);

/* Collects frees that other threads made of this thread's blocks.  With
 * force (malloc_trim), also collects every other heap it can lock, gives
 * back the pages of empty pools and unmaps the arena reserve.  Returns 1 if
 * memory was returned (as glibc's malloc_trim). */
PM_API int    pm_collect(int force);

/* Process-wide activity counters, summed over every heap, live or exited.
 * This list is the one definition: it generates the public struct, the
 * per-heap counters inside the library, their merging and their reports. */
#define PM_COUNTER_LIST(X)                                                      \
  X(malloc_small,      "allocations served from a pool (malloc, calloc, realloc, aligned)") \
  X(malloc_medium,     "allocations served from a medium region (513 B .. 128 KiB)") \
  X(malloc_large,      "allocations served by a mapping of their own (huge blocks)") \
  X(free_small,        "frees of pool blocks by their heap's thread (other threads': free_remote)") \
  X(free_medium,       "frees of medium blocks by their heap's thread (other threads': free_remote)") \
  X(free_large,        "frees of huge blocks")                                 \
  X(free_remote,       "pool and medium blocks freed by another thread (counted when collected)") \
  X(free_remote_medium, "of free_remote, the medium blocks")                   \
  X(calloc_calls,      "calls to calloc")                                      \
  X(realloc_calls,     "calls to realloc and reallocarray")                    \
  X(realloc_inplace,   "reallocs answered with the same block")               \
  X(aligned_calls,     "calls to posix_memalign, aligned_alloc, memalign, valloc, pvalloc") \
  X(pools_initialised, "pools taken from an arena's freepools for a size class") \
  X(pools_emptied,     "pools whose last block was freed, back to freepools")  \
  X(arenas_mapped,     "arenas mapped from the OS")                            \
  X(arenas_unmapped,   "arenas returned to the OS")                            \
  X(arenas_reused,     "arenas taken from the reserve instead of mapped")      \
  X(arenas_reserved,   "empty arenas kept in the reserve instead of unmapped") \
  X(heaps_created,     "thread heaps created")                                 \
  X(heaps_adopted,     "heaps of exited threads taken over by a new thread")   \
  X(threads_seen,      "threads that allocated")                               \
  X(mediums_mapped,    "medium regions (1 MiB) mapped from the OS")            \
  X(mediums_unmapped,  "medium regions returned to the OS")                    \
  X(mediums_reused,    "medium regions taken from their reserve")              \
  X(huge_cache_hits,   "huge blocks served from the cache of freed mappings")  \
  X(huge_remaps,       "huge reallocs and cached runs grown by mremap (without copying)") \
  X(medium_purge_bytes, "bytes of free medium pages given back to the OS (idle regions, and on growth elsewhere)") \
  X(remote_pushes,     "batches of remote frees pushed onto an owner's stack (one CAS each)") \
  X(purges,            "purges that gave memory back (purge thread, malloc_trim, failing allocations)") \
  X(purge_bytes,       "bytes given back by purges (pages of empty pools, unmapped arenas)") \
  X(purge_threads,     "times the purge thread was started")                   \
  X(thp_chunks,        "2 MiB chunks mapped for huge pages (POOLMALLOC_THP)")  \
  X(thp_pieces,        "arenas carved from those chunks")                    \
  X(thp_huge_maps,     "huge blocks' mappings advised for huge pages (POOLMALLOC_THP)")

typedef struct pm_counters {
#define PM_COUNTER_FIELD(name, doc) unsigned long long name;
  PM_COUNTER_LIST(PM_COUNTER_FIELD)
#undef PM_COUNTER_FIELD
} pm_counters;
PM_API void   pm_counters_get(pm_counters *out);

/* ---- statistics ----------------------------------------------------------
 * A snapshot of where the memory is, all threads together (live heaps and
 * those of exited threads).  Each group of figures is one list below; the
 * lists generate the struct, the text and JSON reports and their tests.
 *
 * Bytes mapped for small objects add up exactly:
 *   mapped_bytes = in_use_bytes + free_block_bytes + untouched_bytes
 *                + tail_waste_bytes + empty_pool_bytes + header_bytes
 *                + reserve_bytes
 * and fragmentation = 1 - in_use_bytes / (mapped_bytes - reserve_bytes):
 * the share of the memory the heaps hold for small objects that holds no
 * live block (the reserve is kept on purpose, and reported apart). */
#define PM_CLASS_STATS(X)                                                       \
  X(block_size,       "bytes per block")                                      \
  X(pools,            "pools of this class (used or full)")                   \
  X(full_pools,       "pools with every block handed out")                    \
  X(blocks_in_use,    "blocks handed out and not freed")                      \
  X(free_blocks,      "freed blocks waiting in the class's pools")            \
  X(untouched_blocks, "blocks of those pools never handed out")               \
  X(bytes_in_use,     "blocks_in_use * block_size")                           \
  X(bytes_free,       "(free_blocks + untouched_blocks) * block_size")        \
  X(tail_waste,       "bytes at the end of each pool no block fits in")

/* The docs double as the labels of the text report. */
#define PM_ARENA_STATS(X)                                                       \
  X(mapped,           "arenas mapped now")                                    \
  X(peak,             "arenas high-water mark")                               \
  X(total_mapped,     "arenas mapped since start")                            \
  X(total_unmapped,   "arenas returned to the OS")                            \
  X(reserve,          "arenas in the reserve (empty, kept mapped)")           \
  X(empty_pools,      "empty pools in owned arenas")

#define PM_TOTAL_STATS(X)                                                       \
  X(mapped_bytes,     "bytes mapped for arenas")                              \
  X(in_use_bytes,     "  in small blocks in use")                             \
  X(free_block_bytes, "  in free blocks of used pools")                       \
  X(untouched_bytes,  "  untouched in used pools")                            \
  X(tail_waste_bytes, "  pool-tail waste")                                    \
  X(empty_pool_bytes, "  in empty pools of owned arenas")                     \
  X(header_bytes,     "  arena headers (pool descriptors)")                   \
  X(reserve_bytes,    "  in the reserve")

/* Medium regions: 1 MiB each, one medium class each.  Their bytes add up:
 *   mapped_bytes = in_use_bytes + free_block_bytes + untouched_bytes
 *                + tail_waste_bytes + header_bytes + reserve_bytes
 * and dormant_bytes <= free_block_bytes (free blocks set aside when their
 * pages went back to the OS; they are mapped, not resident). */
#define PM_MEDIUM_STATS(X)                                                      \
  X(regions,          "medium regions mapped now")                            \
  X(peak,             "medium regions high-water mark")                       \
  X(reserve,          "medium regions in the reserve (empty, kept mapped)")   \
  X(mapped_bytes,     "bytes mapped for medium regions")                      \
  X(in_use_bytes,     "  in medium blocks in use")                            \
  X(free_block_bytes, "  in free medium blocks")                              \
  X(dormant_bytes,    "    of them dormant (first page given back)")          \
  X(untouched_bytes,  "  untouched in used regions")                          \
  X(tail_waste_bytes, "  region-tail waste")                                  \
  X(header_bytes,     "  region headers")                                     \
  X(reserve_bytes,    "  in the reserve")

/* Huge blocks (above 128 KiB, or aligned beyond 4 KiB): a mapping each. */
#define PM_LARGE_STATS(X)                                                       \
  X(live,             "huge blocks live")                                     \
  X(live_bytes,       "huge bytes live (requested)")                          \
  X(mapped_bytes,     "huge bytes mapped for live blocks")                    \
  X(peak_bytes,       "huge bytes mapped, high-water mark")                   \
  X(cached,           "freed mappings in the cache")                          \
  X(cached_bytes,     "bytes in the cache of freed mappings")

/* The heap profiler (POOLMALLOC_PROFILE=1); all zero when it is off. */
#define PM_PROFILE_STATS(X)                                                     \
  X(rate,             "profile: mean bytes between samples")                  \
  X(samples_live,     "profile: sampled blocks live")                         \
  X(samples_total,    "profile: samples taken since start")                   \
  X(stacks,           "profile: distinct call stacks")                        \
  X(estimated_live_bytes, "profile: estimated live bytes")                    \
  X(own_bytes,        "profile: bytes the profiler mapped for itself")

#define PM_ARENA_FILL_BUCKETS 8   /* arenas by share of pools in use, in eighths */
#define PM_NCLASSES 32
#define PM_MEDIUM_NCLASSES 112  /* 14 per power of two: 8 in its first quarter, 6 above */

typedef struct pm_class_stats {
#define PM_STAT_FIELD(name, doc) unsigned long long name;
  PM_CLASS_STATS(PM_STAT_FIELD)
} pm_class_stats;

typedef struct pm_stats {
  pm_class_stats classes[PM_NCLASSES];
  /* the medium classes: "pools" counts regions, tail_waste is the bytes of
   * all of them that no block fits in (each region's colour, the gap before
   * its first block, and its tail) */
  pm_class_stats medium_classes[PM_MEDIUM_NCLASSES];
  struct { PM_ARENA_STATS(PM_STAT_FIELD) } arenas;
  /* fill[i]: owned arenas with between i/8 and (i+1)/8 of their pools in
   * use (the last bucket includes full ones). */
  unsigned long long arena_fill[PM_ARENA_FILL_BUCKETS];
  struct { PM_TOTAL_STATS(PM_STAT_FIELD) } totals;
  double fragmentation;
  struct { PM_MEDIUM_STATS(PM_STAT_FIELD) } medium;
  struct { PM_LARGE_STATS(PM_STAT_FIELD) } large;
  /* over everything poolmalloc maps (arenas, medium regions, huge mappings
   * and their cache): 1 - bytes in live blocks / bytes mapped */
  double fragmentation_all;
  pm_counters counters;
  unsigned long long heaps, heaps_owned;   /* heaps now; those a live thread owns */
  unsigned long long mmap_calls, munmap_calls;
  struct pm_profile_stats { PM_PROFILE_STATS(PM_STAT_FIELD) } profile;
#undef PM_STAT_FIELD
} pm_stats;

enum pm_stats_format { PM_STATS_TEXT = 1, PM_STATS_JSON = 2 };

/* Fills *out.  Takes each heap's lock briefly; allocates nothing. */
PM_API void   pm_stats_get(pm_stats *out);

/* Prints the report (the one POOLMALLOC_STATS prints at exit) in the given
 * format to a stdio stream, or to a file descriptor (pm_stats_write, which
 * allocates nothing and is safe at exit). */
PM_API void   pm_stats_print(FILE *out, int format);
PM_API void   pm_stats_write(int fd, int format);

/* Writes the heap profile of the live set now (POOLMALLOC_PROFILE=1): path
 * (%p becomes the process id; NULL: POOLMALLOC_PROFILE_FILE) gets the
 * profile that google-pprof reads, path.txt the top allocation sites and
 * path.collapsed the stacks for a flame graph (scripts/flamegraph).  Returns
 * 0, or -1 with errno set (ENOTSUP when the profiler is off).  Allocates
 * nothing. */
PM_API int    pm_profile_dump(const char *path);

/* Writes the list of POOLMALLOC_* environment variables, one Markdown line
 * each, to fd. */
PM_API void   pm_options_print(int fd);

#ifdef __cplusplus
}
#endif
#endif /* POOLMALLOC_H */
