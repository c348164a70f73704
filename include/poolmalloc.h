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

/* Nonzero when p lies in one of poolmalloc's arenas (a small block);
 * zero for large blocks and for memory poolmalloc does not own. O(1). */
PM_API int    pm_owns(const void *p);

/* Walks every heap, arena and pool poolmalloc can reach safely from this
 * thread (its own heap and the heaps no thread owns) and verifies the counts
 * and list invariants of src/types.h.  Returns 0 when all hold; otherwise
 * prints what is wrong on stderr and returns the number of violations. */
PM_API int    pm_check(void);

/* Collects frees that other threads made of this thread's blocks, and gives
 * back to the OS what the arena reserve policy allows.  Returns 1 if memory
 * was returned (as glibc's malloc_trim). */
PM_API int    pm_collect(int force);

/* Process-wide activity counters, summed over every heap, live or exited.
 * This list is the one definition: it generates the public struct, the
 * per-heap counters inside the library, their merging and their reports. */
#define PM_COUNTER_LIST(X)                                                      \
  X(malloc_small,      "allocations served from a pool (malloc, calloc, realloc, aligned)") \
  X(malloc_large,      "allocations passed to the large-object path")          \
  X(free_small,        "frees of pool blocks")                                 \
  X(free_large,        "frees of large blocks")                                \
  X(free_remote,       "frees of pool blocks owned by another thread's heap")  \
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
  X(threads_seen,      "threads that allocated")

typedef struct pm_counters {
#define PM_COUNTER_FIELD(name, doc) unsigned long long name;
  PM_COUNTER_LIST(PM_COUNTER_FIELD)
#undef PM_COUNTER_FIELD
} pm_counters;
PM_API void   pm_counters_get(pm_counters *out);

/* Writes the statistics report (the one POOLMALLOC_STATS prints at exit) to
 * the file descriptor fd: a text table, or one JSON document if json != 0.
 * Allocates nothing. */
PM_API void   pm_stats_write(int fd, int json);

/* Writes the list of POOLMALLOC_* environment variables, one Markdown line
 * each, to fd. */
PM_API void   pm_options_print(int fd);

#ifdef __cplusplus
}
#endif
#endif /* POOLMALLOC_H */
