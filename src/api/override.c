/* override.c: the C library's allocation API, exported under its own names
 * so that a preloaded or linked libpoolmalloc replaces glibc's malloc.  Each
 * is a thin forward to the pm_ function (a jump: the library is linked with
 * -Bsymbolic-functions). */
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/internal.h"

#pragma GCC diagnostic ignored "-Wmissing-prototypes"
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

pmi_export void *malloc(size_t size) { return pm_malloc(size); }
pmi_export void free(void *p) { pm_free(p); }
pmi_export void *calloc(size_t n, size_t size) { return pm_calloc(n, size); }
pmi_export void *realloc(void *p, size_t size) { return pm_realloc(p, size); }
pmi_export void *reallocarray(void *p, size_t n, size_t size) { return pm_reallocarray(p, n, size); }
pmi_export int posix_memalign(void **out, size_t alignment, size_t size) { return pm_posix_memalign(out, alignment, size); }
pmi_export void *aligned_alloc(size_t alignment, size_t size) { return pm_aligned_alloc(alignment, size); }
pmi_export void *memalign(size_t alignment, size_t size) { return pm_memalign(alignment, size); }
pmi_export void *valloc(size_t size) { return pm_valloc(size); }
pmi_export void *pvalloc(size_t size) { return pm_pvalloc(size); }
pmi_export size_t malloc_usable_size(void *p) { return pm_malloc_usable_size(p); }
pmi_export void cfree(void *p) { pm_free(p); }
pmi_export void free_sized(void *p, size_t size) { pm_free_sized(p, size); }
pmi_export void free_aligned_sized(void *p, size_t alignment, size_t size) { pm_free_aligned_sized(p, alignment, size); }

/* ---- glibc's malloc extensions ------------------------------------------ */

pmi_export int pm_collect(int force) {
  pmi_heap *heap = pmi_heap_tls;
  pm_counters before, after;
  if (pmi_unlikely(pmi_debug_active)) pmi_debug_collect();   /* check and empty the quarantine */
  pmi_remote_flush();
  pm_counters_get(&before);
  if (heap != &pmi_heap_empty) {
    pmi_heap_lock(heap);
    pmi_heap_collect_locked(heap);
    if (force) pmi_heap_release_retained(heap);
    pmi_heap_unlock(heap);
  }
  if (force) {
    pmi_arena_release_reserve(0);
    pmi_medium_release_reserve(0);
    pmi_huge_trim();
  }
  pm_counters_get(&after);
  return after.arenas_unmapped != before.arenas_unmapped || after.mediums_unmapped != before.mediums_unmapped;
}

pmi_export int malloc_trim(size_t pad) {
  int ours = pm_collect(1);
  int theirs = pmi_libc_trim(pad);
  return ours || theirs;
}

/* glibc's figures for the blocks it handed out itself, plus ours: arena =
 * bytes mapped for pools and medium regions, hblks/hblkhd = huge mappings,
 * uordblks = bytes handed out, fordblks = bytes held but free. */
pmi_export struct mallinfo2 mallinfo2(void) {
  struct mallinfo2 mi = pmi_libc_mallinfo2();
  pm_stats st;
  pm_stats_get(&st);
  mi.arena += st.totals.mapped_bytes + st.medium.mapped_bytes;
  mi.hblks += st.large.live;
  mi.hblkhd += st.large.mapped_bytes;
  mi.uordblks += st.totals.in_use_bytes + st.medium.in_use_bytes + st.large.live_bytes;
  mi.fordblks += st.totals.mapped_bytes - st.totals.in_use_bytes + st.medium.mapped_bytes - st.medium.in_use_bytes;
  mi.usmblks = st.arenas.peak * PMI_ARENA_SIZE + st.medium.peak * PMI_MEDIUM_SIZE + st.large.peak_bytes;
  return mi;
}

pmi_export struct mallinfo mallinfo(void) {
  struct mallinfo2 m2 = mallinfo2();
  struct mallinfo mi;
  mi.arena = (int)m2.arena;
  mi.ordblks = (int)m2.ordblks;
  mi.smblks = (int)m2.smblks;
  mi.hblks = (int)m2.hblks;
  mi.hblkhd = (int)m2.hblkhd;
  mi.usmblks = (int)m2.usmblks;
  mi.fsmblks = (int)m2.fsmblks;
  mi.uordblks = (int)m2.uordblks;
  mi.fordblks = (int)m2.fordblks;
  mi.keepcost = (int)m2.keepcost;
  return mi;
}

pmi_export void malloc_stats(void) { pm_stats_write(STDERR_FILENO, PM_STATS_TEXT); }

/* Accepted; passed on to the C library for the blocks it still serves. */
pmi_export int mallopt(int param, int value) {
  pmi_libc_mallopt(param, value);
  return 1;
}
