/* extensions.c: the C library's malloc extensions under their glibc names
 * (malloc_trim, mallinfo2, mallinfo, malloc_stats, mallopt) and pm_collect,
 * which malloc_trim is for the pools.  Each answers from the core's and the
 * statistics' own figures; nothing here is on a fast path. */
#include <malloc.h>
#include <unistd.h>

#include "core/internal.h"

#pragma GCC diagnostic ignored "-Wmissing-prototypes"
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

pmi_export int pm_collect(int force) {
  pmi_heap *heap = pmi_heap_own();
  if (pmi_unlikely(pmi_debug_active)) pmi_debug_collect();   /* check and empty the quarantine */
  if (force) return pmi_release_all();   /* every heap, empty pools, the reserve (purge.c) */
  pmi_remote_flush();
  if (heap != &pmi_heap_empty) {
    pmi_heap_lock(heap);
    pmi_heap_collect_locked(heap);
    pmi_heap_unlock(heap);
  }
  pmi_purge_kick();
  return 0;
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
