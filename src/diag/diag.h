/* diag.h: what the diagnostics (options, statistics, debug mode, the
 * checker) offer the core, grouped by the file that defines it.  The core
 * includes it through core/internal.h; no other layer does (a layer above
 * the allocator adds to the report through diag/report.h). */
#ifndef PM_DIAG_H
#define PM_DIAG_H

#include <stddef.h>

#include "core/types.h"
#include "diag/options.h"

#pragma GCC visibility push(hidden)

/* ---- stats.c ------------------------------------------------------------- */
void   pmi_counters_sum(pmi_counters *out);
void   pmi_stats_at_exit(void);
void   pmi_stats_start_interval(void);
void   pmi_stats_note_stderr(void);   /* at start: which file the report's stderr is */
void   pmi_stats_fork_child(void);
const char *pmi_stats_group(char *buf, unsigned long long v);   /* "1,234,567" in 32 bytes */

/* ---- debug.c: POOLMALLOC_DEBUG=1 and valgrind support ----------------------
 * When pmi_debug_active is set (POOLMALLOC_DEBUG=1, running under valgrind,
 * or POOLMALLOC_PROFILE=1), the pm_* entry points hand every call to these
 * functions, which wrap each block in a header and guards (debug mode) and
 * tell the heap profiler (diag/profile.h), calling the core underneath
 * through pmi_malloc, pmi_free, pmi_realloc, ... (core/internal.h: the
 * core's entry points without the dispatch). */
extern int pmi_debug_active;   /* read-mostly; set once, at init */
void   pmi_debug_init(void);                 /* from pmi_process_init; allocates nothing */
void  *pmi_debug_malloc(size_t size);
void  *pmi_debug_calloc(size_t n, size_t size);
void  *pmi_debug_realloc(void *p, size_t size);
void  *pmi_debug_memalign(size_t alignment, size_t size);
void   pmi_debug_free(void *p);
size_t pmi_debug_usable_size(void *p);
void   pmi_debug_collect(void);              /* check and empty the quarantine */
void   pmi_debug_fork_prepare(void);         /* the quarantine's lock, for core/fork.c */
void   pmi_debug_fork_parent(void);
void   pmi_debug_fork_child(void);
const char *pmi_debug_mode_name(void);       /* "off", "on", "valgrind", "on+valgrind" */

/* ---- check.c --------------------------------------------------------------- */
int    pmi_check_heap(pmi_heap *heap, int verbose);

#pragma GCC visibility pop

#endif /* PM_DIAG_H */
