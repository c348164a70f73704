/* stats.c: the statistics report (POOLMALLOC_STATS, malloc_stats,
 * mallinfo2, pm_stats_get).
 *
 * Activity counters are per heap and plain (the owner writes them without
 * atomics); a report adds up every heap, live or abandoned.  Pool and arena
 * figures are not counted at all: the report walks the arenas of each heap
 * under that heap's lock (arenas are only retired under it), so they cost
 * the fast path nothing.  Reports are formatted into a stack buffer and
 * written with write(2): nothing here allocates, since at exit stdio may be
 * gone and inside malloc_stats the caller may hold who knows what. */
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/syscall.h"
#include "core/internal.h"

PMI_OLD_VERSION_clock_gettime
#include "diag/profile.h"
#include "diag/report.h"

/* malloc's fast path counts its blocks by front class (pmi_heap.front_mallocs);
 * the slow paths count malloc_small and malloc_medium. */
static void heap_mallocs(const pmi_heap *h, uint64_t *small, uint64_t *medium) {
  *small = h->counters.malloc_small;
  *medium = h->counters.malloc_medium;
  for (unsigned c = 0; c < PMI_FRONT_NCLASSES; c++) *(c < PMI_NCLASSES ? small : medium) += h->front_mallocs[c];
}

/* Frees of pool and medium blocks are not counted on the fast path: every
 * block a heap handed out is either still out (its pool's or region's used
 * count, less the head's bias), or came back through a local free, or
 * through a remote free that the heap collected.  So, per heap:
 *     free_small = malloc_small - (free_remote - free_remote_medium) - pool blocks out,
 *     free_medium = malloc_medium - free_remote_medium - medium blocks out.
 * Exact when the heap's thread is not running; otherwise as exact as any
 * other counter read while its owner writes it. */
static void heap_local_frees(pmi_heap *h, uint64_t *small, uint64_t *medium) {
  uint64_t out = 0, mout = 0, mallocs, mmallocs;
  for (pmi_arena *a = h->arenas; a != NULL; a = a->next_owned)
    for (unsigned i = PMI_FIRST_POOL; i < PMI_POOLS_PER_ARENA; i++) {
      pmi_pool *p = pmi_arena_pool(a, i);
      if (p->state == PMI_POOL_USED || p->state == PMI_POOL_FULL) out += pmi_pool_nused(h, p);
    }
  for (pmi_medium *m = h->mediums; m != NULL; m = pmi_medium_slow(m)->next_owned) mout += pmi_medium_nused(m);
  heap_mallocs(h, &mallocs, &mmallocs);
  uint64_t gone = mallocs - (h->counters.free_remote - h->counters.free_remote_medium);
  uint64_t mgone = mmallocs - h->counters.free_remote_medium;
  *small = gone > out ? gone - out : 0;
  *medium = mgone > mout ? mgone - mout : 0;
}

void pmi_counters_sum(pmi_counters *out) {
  memset(out, 0, sizeof *out);
  pmi_heaps_lock();
  for (pmi_heap *h = pmi_heap_first(); h != NULL; h = h->next_heap) {
#define PMI_COUNTER_ADD(name, doc) out->name += h->counters.name;
    PM_COUNTER_LIST(PMI_COUNTER_ADD)
#undef PMI_COUNTER_ADD
    uint64_t small, medium;
    heap_mallocs(h, &small, &medium);
    out->malloc_small += small - h->counters.malloc_small;
    out->malloc_medium += medium - h->counters.malloc_medium;
    pmi_heap_visit(h);   /* arenas and regions are only retired under it (heap.c, "visitors") */
    heap_local_frees(h, &small, &medium);
    out->free_small += small;
    out->free_medium += medium;
    pmi_heap_visit_end(h);
    out->remote_pushes += atomic_load_explicit(&h->pushes, memory_order_relaxed);
  }
  pmi_heaps_unlock();
  /* The ones counted by no heap (purge.c) */
  out->purges += atomic_load_explicit(&pmi_purge_stats.purges, memory_order_relaxed);
  out->purge_bytes += atomic_load_explicit(&pmi_purge_stats.purge_bytes, memory_order_relaxed);
  out->purge_threads += atomic_load_explicit(&pmi_purge_stats.purge_threads, memory_order_relaxed);
  out->arenas_unmapped += atomic_load_explicit(&pmi_purge_stats.arenas_unmapped, memory_order_relaxed);
  uint64_t chunks, pieces, huge;
  pmi_chunk_counts(&chunks, &pieces, &huge);
  out->thp_chunks += chunks;
  out->thp_pieces += pieces;
  out->thp_huge_maps += huge;
}

pmi_export void pm_counters_get(pm_counters *out) {
  pmi_counters sum;
  pmi_counters_sum(&sum);
#define PMI_COUNTER_COPY(name, doc) out->name = sum.name;
  PM_COUNTER_LIST(PMI_COUNTER_COPY)
#undef PMI_COUNTER_COPY
}

/* ---- the census ------------------------------------------------------------ */

/* One pool's (or medium region's) counts into its class's row.  The counts
 * were read once each, maybe while the owner allocates: they are clamped so
 * that the row still adds up (in use + free + untouched == capacity). */
static void census_class(pm_class_stats *c, bool full, unsigned used, unsigned carved, unsigned capacity) {
  if (carved < used) carved = used;
  if (capacity < carved) capacity = carved;
  c->pools++;
  c->full_pools += full;
  c->blocks_in_use += used;
  c->free_blocks += carved - used;
  c->untouched_blocks += capacity - carved;
}

static void census_arena(pm_stats *st, pmi_heap *h, pmi_arena *a) {
  unsigned in_use = 0;
  for (unsigned i = PMI_FIRST_POOL; i < PMI_POOLS_PER_ARENA; i++) {
    pmi_pool *p = pmi_arena_pool(a, i);
    unsigned state = p->state;
    if (state != PMI_POOL_USED && state != PMI_POOL_FULL) continue;
    in_use++;
    /* One read of each count, so that a pool's figures add up to its
     * capacity even while its owner allocates. */
    unsigned used = pmi_pool_nused(h, p), carved = p->ncarved, capacity = p->capacity;
    if (used > capacity) used = 0;   /* read while its owner moved the head's bias */
    /* a FULL pool's held remote frees are not in used: counted free; a
     * drained head waiting on usedpools for its turn is USED and full */
    census_class(&st->classes[p->szidx], state == PMI_POOL_FULL || used == capacity, used, carved, capacity);
  }
  st->arenas.empty_pools += PMI_ARENA_POOLS - in_use;
  unsigned bucket = in_use * PM_ARENA_FILL_BUCKETS / PMI_ARENA_POOLS;
  st->arena_fill[bucket < PM_ARENA_FILL_BUCKETS ? bucket : PM_ARENA_FILL_BUCKETS - 1]++;
}

static void census_medium(pm_stats *st, pmi_medium *m) {
  unsigned state = m->state;
  if (state != PMI_MEDIUM_USED && state != PMI_MEDIUM_FULL) return;
  pm_class_stats *cs = &st->medium_classes[m->mclass];
  unsigned capacity = m->capacity;
  census_class(cs, state == PMI_MEDIUM_FULL, pmi_medium_nused(m), m->ncarved, capacity);
  /* the colour's gap and the tail: no block fits in them */
  cs->tail_waste += PMI_MEDIUM_SIZE - PMI_MEDIUM_HEADER - (size_t)capacity * pmi_medium_slow(m)->block_size;
  st->medium.dormant_bytes += (unsigned long long)pmi_medium_slow(m)->ndormant * pmi_medium_slow(m)->block_size;
}

/* The medium classes' table and totals (owned: regions the heaps hold). */
static void medium_totals(pm_stats *st, size_t owned) {
  size_t now, peak;
  pmi_medium_mapped(&now, &peak);
  st->medium.reserve = pmi_medium_reserve_count();
  st->medium.regions = owned + st->medium.reserve;
  st->medium.peak = peak > st->medium.regions ? peak : st->medium.regions;
  for (unsigned c = 0; c < PMI_MEDIUM_NCLASSES; c++) {
    pm_class_stats *cs = &st->medium_classes[c];
    cs->block_size = pmi_medium_class_size(c);
    cs->bytes_in_use = cs->blocks_in_use * cs->block_size;
    cs->bytes_free = (cs->free_blocks + cs->untouched_blocks) * cs->block_size;
    st->medium.in_use_bytes += cs->bytes_in_use;
    st->medium.free_block_bytes += cs->free_blocks * cs->block_size;
    st->medium.untouched_bytes += cs->untouched_blocks * cs->block_size;
    st->medium.tail_waste_bytes += cs->tail_waste;
  }
  st->medium.mapped_bytes = st->medium.regions * PMI_MEDIUM_SIZE;
  st->medium.header_bytes = owned * PMI_MEDIUM_HEADER;
  st->medium.reserve_bytes = st->medium.reserve * PMI_MEDIUM_SIZE;
}

pmi_export void pm_stats_get(pm_stats *st) {
  memset(st, 0, sizeof *st);
  size_t owned_arenas = 0, owned_mediums = 0;
  pmi_heaps_lock();
  for (pmi_heap *h = pmi_heap_first(); h != NULL; h = h->next_heap) {
    st->heaps++;
    st->heaps_owned += atomic_load(&h->owned) != 0;
    pmi_heap_visit(h);
    for (pmi_arena *a = h->arenas; a != NULL; a = a->next_owned) {
      owned_arenas++;
      census_arena(st, h, a);
    }
    for (pmi_medium *m = h->mediums; m != NULL; m = pmi_medium_slow(m)->next_owned) {
      owned_mediums++;
      census_medium(st, m);
    }
    pmi_heap_visit_end(h);
  }
  st->arenas.reserve = pmi_arena_reserve_count();
  medium_totals(st, owned_mediums);
  pmi_heaps_unlock();

  size_t now, peak;
  pmi_arena_mapped(&now, &peak);
  st->arenas.mapped = owned_arenas + st->arenas.reserve;
  st->arenas.peak = peak > st->arenas.mapped ? peak : st->arenas.mapped;
  pmi_counters k;
  pmi_counters_sum(&k);
#define PMI_COUNTER_COPY(name, doc) st->counters.name = k.name;
  PM_COUNTER_LIST(PMI_COUNTER_COPY)
#undef PMI_COUNTER_COPY
  st->arenas.total_mapped = k.arenas_mapped;
  st->arenas.total_unmapped = k.arenas_unmapped;

  for (unsigned c = 0; c < PMI_NCLASSES; c++) {
    pm_class_stats *cs = &st->classes[c];
    cs->block_size = pmi_class_size(c);
    cs->bytes_in_use = cs->blocks_in_use * cs->block_size;
    cs->bytes_free = (cs->free_blocks + cs->untouched_blocks) * cs->block_size;
    cs->tail_waste = PMI_POOL_SIZE % cs->block_size;
    st->totals.in_use_bytes += cs->bytes_in_use;
    st->totals.free_block_bytes += cs->free_blocks * cs->block_size;
    st->totals.untouched_bytes += cs->untouched_blocks * cs->block_size;
    st->totals.tail_waste_bytes += cs->pools * cs->tail_waste;
  }
  st->totals.mapped_bytes = st->arenas.mapped * PMI_ARENA_SIZE;
  st->totals.empty_pool_bytes = st->arenas.empty_pools * PMI_POOL_SIZE;
  st->totals.header_bytes = owned_arenas * PMI_POOL_SIZE;
  st->totals.reserve_bytes = st->arenas.reserve * PMI_ARENA_SIZE;
  unsigned long long held = st->totals.mapped_bytes - st->totals.reserve_bytes;
  st->fragmentation = held ? 1.0 - (double)st->totals.in_use_bytes / (double)held : 0.0;

  pmi_huge_figures hf;
  pmi_huge_figures_get(&hf);
  st->large.live = hf.live;
  st->large.live_bytes = hf.live_bytes;
  st->large.mapped_bytes = hf.mapped_bytes;
  st->large.peak_bytes = hf.peak_bytes > hf.mapped_bytes ? hf.peak_bytes : hf.mapped_bytes;
  st->large.cached = hf.cached;
  st->large.cached_bytes = hf.cached_bytes;
  unsigned long long all = st->totals.mapped_bytes + st->medium.mapped_bytes + st->large.mapped_bytes +
                           st->large.cached_bytes;
  unsigned long long live_all = st->totals.in_use_bytes + st->medium.in_use_bytes + st->large.live_bytes;
  st->fragmentation_all = all ? 1.0 - (double)live_all / (double)all : 0.0;
  uint64_t mmaps, munmaps;
  pmi_os_counts(&mmaps, &munmaps);
  st->mmap_calls = mmaps;
  st->munmap_calls = munmaps;
  pmi_profile_stats(&st->profile);
}

/* ---- output without malloc ------------------------------------------------- */

typedef struct pmi_report {
  int fd;          /* write here, or */
  FILE *file;      /* here */
  size_t len;
  unsigned gnext;
  char gbuf[8][32];    /* for group(o, ) */
  char *buf;           /* flushed when full */
  size_t cap;
} out;                 /* pmi_report, diag/report.h */

static void out_flush(out *o) {
  if (o->file != NULL) fwrite(o->buf, 1, o->len, o->file);
  else pmi_os_write(o->fd, o->buf, o->len);
  o->len = 0;
}

static void voutf(out *o, const char *fmt, va_list ap) {
  char line[512];
  int n = vsnprintf(line, sizeof line, fmt, ap);
  if (n < 0) return;
  size_t len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
  if (o->len + len > o->cap) out_flush(o);
  memcpy(o->buf + o->len, line, len);
  o->len += len;
}

__attribute__((format(printf, 2, 3))) static void outf(out *o, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  voutf(o, fmt, ap);
  va_end(ap);
}

/* 1234567 -> "1,234,567" in buf (32 bytes) */
const char *pmi_stats_group(char *buf, unsigned long long v) {
  char tmp[32];
  int n = snprintf(tmp, sizeof tmp, "%llu", v), j = 0;
  for (int i = 0; i < n; i++) {
    buf[j++] = tmp[i];
    if ((n - i - 1) % 3 == 0 && i != n - 1) buf[j++] = ',';
  }
  buf[j] = '\0';
  return buf;
}

/* The same, in one of the out's rotating buffers */
static const char *group(out *o, unsigned long long v) { return pmi_stats_group(o->gbuf[o->gnext++ % 8], v); }

static double pct(unsigned long long part, unsigned long long whole) {
  return whole ? 100.0 * (double)part / (double)whole : 0.0;
}

/* ---- sections of other layers (diag/report.h) ------------------------------ */

static _Atomic(pmi_report_section) sections[PMI_REPORT_SECTIONS];

void pmi_report_add_section(pmi_report_section fn) {
  for (int i = 0; i < PMI_REPORT_SECTIONS; i++) {
    pmi_report_section seen = NULL;
    if (atomic_compare_exchange_strong(&sections[i], &seen, fn) || seen == fn) return;
  }
  pmi_fatal("internal: more than %d report sections", PMI_REPORT_SECTIONS);
}

void pmi_report_printf(pmi_report *r, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  voutf(r, fmt, ap);
  va_end(ap);
}

const char *pmi_report_count(pmi_report *r, unsigned long long v) { return group(r, v); }

static void report_sections(out *o, int format) {
  for (int i = 0; i < PMI_REPORT_SECTIONS; i++) {
    pmi_report_section fn = atomic_load(&sections[i]);
    if (fn != NULL) fn(o, format);
  }
}

static void report_text(out *o, const pm_stats *st) {
  outf(o, "poolmalloc %d.%d statistics, pid %d\n", POOLMALLOC_VERSION_MAJOR, POOLMALLOC_VERSION_MINOR, pmi_sys_getpid());
  outf(o, "Small block threshold = %u, in %u size classes; pools of %s bytes in arenas of %s bytes.\n\n",
       PMI_SMALL_MAX, PMI_NCLASSES, group(o, PMI_POOL_SIZE), group(o, PMI_ARENA_SIZE));
  outf(o, "Debug mode: %s.\n\n", pmi_debug_mode_name());
  outf(o, "class   size    pools     full   blocks in use    free blocks      untouched     bytes in use"
          "       bytes free  tail\n");
  outf(o, "-----  -----  -------  -------  --------------  -------------  -------------  ---------------"
          "  ---------------  ----\n");
  for (unsigned c = 0; c < PMI_NCLASSES; c++) {
    const pm_class_stats *cs = &st->classes[c];
    if (cs->pools == 0) continue;
    outf(o, "%5u  %5llu  %7s  %7s  %14s  %13s  %13s  %15s  %15s  %4llu\n", c, cs->block_size, group(o, cs->pools),
         group(o, cs->full_pools), group(o, cs->blocks_in_use), group(o, cs->free_blocks), group(o, cs->untouched_blocks), group(o, cs->bytes_in_use),
         group(o, cs->bytes_free), cs->tail_waste);
  }
  outf(o, "\nMedium classes: %u to %s bytes, 14 per power of two (8 in its first quarter), in regions of %s bytes.\n\n",
       PMI_MEDIUM_MIN, group(o, PMI_MEDIUM_MAX), group(o, PMI_MEDIUM_SIZE));
  outf(o, "class     size  regions     full   blocks in use    free blocks      untouched     bytes in use"
          "       bytes free     tail\n");
  outf(o, "-----  -------  -------  -------  --------------  -------------  -------------  ---------------"
          "  ---------------  -------\n");
  for (unsigned c = 0; c < PMI_MEDIUM_NCLASSES; c++) {
    const pm_class_stats *cs = &st->medium_classes[c];
    if (cs->pools == 0) continue;
    outf(o, "%5u  %7s  %7s  %7s  %14s  %13s  %13s  %15s  %15s  %7s\n", c, group(o, cs->block_size), group(o, cs->pools),
         group(o, cs->full_pools), group(o, cs->blocks_in_use), group(o, cs->free_blocks), group(o, cs->untouched_blocks),
         group(o, cs->bytes_in_use), group(o, cs->bytes_free), group(o, cs->tail_waste));
  }
  outf(o, "\n");
#define PMI_TEXT_LINE(label, value) outf(o, "# %-44s = %15s\n", label, group(o, value))
#define PMI_ARENA_TEXT(name, doc) PMI_TEXT_LINE(doc, st->arenas.name);
  PM_ARENA_STATS(PMI_ARENA_TEXT)
#undef PMI_ARENA_TEXT
  outf(o, "\narenas by share of pools in use:\n");
  unsigned long long most = 1;
  for (int i = 0; i < PM_ARENA_FILL_BUCKETS; i++) most = st->arena_fill[i] > most ? st->arena_fill[i] : most;
  for (int i = 0; i < PM_ARENA_FILL_BUCKETS; i++) {
    char bar[41];
    int n = (int)(40 * st->arena_fill[i] / most);
    memset(bar, '#', (size_t)n);
    bar[n] = '\0';
    outf(o, "  %3d%% - %3d%%  %-40s %s\n", i * 100 / PM_ARENA_FILL_BUCKETS, (i + 1) * 100 / PM_ARENA_FILL_BUCKETS,
         bar, group(o, st->arena_fill[i]));
  }
  outf(o, "\n");
  unsigned long long mapped = st->totals.mapped_bytes;
#define PMI_TOTAL_TEXT(name, doc) \
  outf(o, "# %-44s = %15s  %5.1f%%\n", doc, group(o, st->totals.name), pct(st->totals.name, mapped));
  PM_TOTAL_STATS(PMI_TOTAL_TEXT)
#undef PMI_TOTAL_TEXT
  outf(o, "# %-44s = %14.1f%%\n", "fragmentation (1 - in use / held)", 100.0 * st->fragmentation);
  outf(o, "\n");
  unsigned long long mmapped = st->medium.mapped_bytes;
#define PMI_MEDIUM_TEXT(name, doc) \
  outf(o, "# %-44s = %15s  %5.1f%%\n", doc, group(o, st->medium.name), pct(st->medium.name, mmapped));
  PM_MEDIUM_STATS(PMI_MEDIUM_TEXT)
#undef PMI_MEDIUM_TEXT
  outf(o, "\n");
#define PMI_LARGE_TEXT(name, doc) PMI_TEXT_LINE(doc, st->large.name);
  PM_LARGE_STATS(PMI_LARGE_TEXT)
#undef PMI_LARGE_TEXT
  outf(o, "# %-44s = %14.1f%%\n", "fragmentation over everything mapped", 100.0 * st->fragmentation_all);
  outf(o, "\n");
  PMI_TEXT_LINE("heaps", st->heaps);
  PMI_TEXT_LINE("heaps owned by a live thread", st->heaps_owned);
  PMI_TEXT_LINE("mmap calls", st->mmap_calls);
  PMI_TEXT_LINE("munmap calls", st->munmap_calls);
#define PMI_COUNTER_TEXT(name, doc) PMI_TEXT_LINE(#name, st->counters.name);
  PM_COUNTER_LIST(PMI_COUNTER_TEXT)
#undef PMI_COUNTER_TEXT
  if (st->profile.rate != 0) {
    outf(o, "\n");
#define PMI_PROFILE_TEXT(name, doc) PMI_TEXT_LINE(doc, st->profile.name);
    PM_PROFILE_STATS(PMI_PROFILE_TEXT)
#undef PMI_PROFILE_TEXT
  }
  report_sections(o, PM_STATS_TEXT);
#undef PMI_TEXT_LINE
}

/* A table of size classes (the pools' or the medium ones') as a JSON array's
 * elements, one object per class. */
static void json_classes(out *o, const pm_class_stats *classes, unsigned n) {
  for (unsigned c = 0; c < n; c++) {
    const pm_class_stats *cs = &classes[c];
    const char *sep = "{";
    outf(o, "%s", c ? ", " : "");
#define PMI_JSON_FIELD(name, doc) outf(o, "%s\"" #name "\": %llu", sep, cs->name), sep = ", ";
    PM_CLASS_STATS(PMI_JSON_FIELD)
#undef PMI_JSON_FIELD
    outf(o, "}");
  }
}

/* time(NULL), as clock_gettime: one import fewer (base/syscall.h). */
static unsigned long long wall_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (unsigned long long)ts.tv_sec;
}

static void report_json(out *o, const pm_stats *st) {
  outf(o, "{\"poolmalloc\": {\"version\": \"%d.%d\", \"pid\": %d, \"time\": %llu, \"debug\": \"%s\"}, \"classes\": [",
       POOLMALLOC_VERSION_MAJOR, POOLMALLOC_VERSION_MINOR, pmi_sys_getpid(), wall_seconds(),
       pmi_debug_mode_name());
  json_classes(o, st->classes, PMI_NCLASSES);
  outf(o, "], \"medium_classes\": [");
  json_classes(o, st->medium_classes, PMI_MEDIUM_NCLASSES);
  const char *sep = "";
  outf(o, "], \"arenas\": {");
#define PMI_JSON_FIELD(name, doc) outf(o, "%s\"" #name "\": %llu", sep, st->arenas.name), sep = ", ";
  PM_ARENA_STATS(PMI_JSON_FIELD)
#undef PMI_JSON_FIELD
  outf(o, ", \"fill\": [");
  for (int i = 0; i < PM_ARENA_FILL_BUCKETS; i++) outf(o, "%s%llu", i ? ", " : "", st->arena_fill[i]);
  outf(o, "]}, \"totals\": {");
  sep = "";
#define PMI_JSON_FIELD(name, doc) outf(o, "%s\"" #name "\": %llu", sep, st->totals.name), sep = ", ";
  PM_TOTAL_STATS(PMI_JSON_FIELD)
#undef PMI_JSON_FIELD
  outf(o, ", \"fragmentation\": %.6f}, \"medium\": {", st->fragmentation);
  sep = "";
#define PMI_JSON_FIELD(name, doc) outf(o, "%s\"" #name "\": %llu", sep, st->medium.name), sep = ", ";
  PM_MEDIUM_STATS(PMI_JSON_FIELD)
#undef PMI_JSON_FIELD
  outf(o, "}, \"fragmentation_all\": %.6f, \"large\": {", st->fragmentation_all);
  sep = "";
#define PMI_JSON_FIELD(name, doc) outf(o, "%s\"" #name "\": %llu", sep, st->large.name), sep = ", ";
  PM_LARGE_STATS(PMI_JSON_FIELD)
#undef PMI_JSON_FIELD
  outf(o, "}, \"counters\": {");
  sep = "";
#define PMI_JSON_FIELD(name, doc) outf(o, "%s\"" #name "\": %llu", sep, st->counters.name), sep = ", ";
  PM_COUNTER_LIST(PMI_JSON_FIELD)
#undef PMI_JSON_FIELD
  outf(o, ", \"mmap_calls\": %llu, \"munmap_calls\": %llu}, \"heaps\": {\"total\": %llu, \"owned\": %llu}",
       st->mmap_calls, st->munmap_calls, st->heaps, st->heaps_owned);
  if (st->profile.rate != 0) {
    outf(o, ", \"profile\": {");
    sep = "";
#define PMI_JSON_FIELD(name, doc) outf(o, "%s\"" #name "\": %llu", sep, st->profile.name), sep = ", ";
    PM_PROFILE_STATS(PMI_JSON_FIELD)
#undef PMI_JSON_FIELD
    outf(o, "}");
  }
  report_sections(o, PM_STATS_JSON);
  outf(o, "}\n");
}

static void report(out *o, int format) {
  pm_stats st;
  pm_stats_get(&st);
  if (format == PM_STATS_JSON) report_json(o, &st);
  else report_text(o, &st);
  out_flush(o);
}

pmi_export void pm_stats_write(int fd, int format) {
  out o;
  char buf[4096];
  o.buf = buf;
  o.cap = sizeof buf;
  o.fd = fd;
  o.file = NULL;
  o.len = 0;
  o.gnext = 0;
  report(&o, format);
}

pmi_export void pm_stats_print(FILE *file, int format) {
  out o;
  char buf[4096];
  o.buf = buf;
  o.cap = sizeof buf;
  o.fd = -1;
  o.file = file;
  o.len = 0;
  o.gnext = 0;
  report(&o, format);
  fflush(file);
}

/* ---- POOLMALLOC_STATS ------------------------------------------------------ */

/* Where the reports go: POOLMALLOC_STATS_FILE (%p replaced by the process
 * id), opened for each report; else, or if it cannot be opened (one
 * warning), the stderr the process started with (base/message.c), never whatever
 * descriptor 2 has become. */
pmi_startup void pmi_stats_note_stderr(void) {
  pmi_stderr_note(pmi_option(stats) != PMI_STATS_OFF || pmi_option(stats_interval) > 0);
}

static int open_report(void) {
  const char *pattern = pmi_option_str(stats_file);
  if (pattern == NULL) return pmi_stderr_open();
  char path[1024];
  pmi_options_path(path, sizeof path, pattern);
  int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd >= 0) return fd;
  static _Atomic int warned;
  if (!atomic_exchange(&warned, 1))
    pmi_warning("POOLMALLOC_STATS_FILE=%s cannot be opened for writing; the report goes to stderr", pattern);
  return pmi_stderr_open();
}

/* Reports from the interval thread and the one at exit never mix: each is
 * written under report_lock, in one write(2) of report_out (so that other
 * processes appending to the same file cannot split it either), and once
 * the report at exit is out no other follows, so that the process does not
 * end in the middle of one.  The lock is reset in a forked child (fork.c),
 * whose interval thread is gone. */
static _Atomic int report_lock;
static bool report_closed;
static out report_out;
static char report_buf[65536];   /* a whole report is about 8 KiB, 36 KiB as JSON */

void pmi_stats_fork_child(void) {
  atomic_store(&report_lock, PMI_LOCK_FREE);
  report_closed = false;
}

static void write_report(bool last) {
  long format = pmi_option(stats);
  pmi_spin_lock(&report_lock);
  if (!report_closed) {
    report_closed = last;
    int fd = open_report();
    if (fd >= 0) {
      report_out.fd = fd;
      report_out.buf = report_buf;
      report_out.cap = sizeof report_buf;
      report_out.file = NULL;
      report_out.len = 0;
      report_out.gnext = 0;
      report(&report_out, format == PMI_STATS_JSON ? PM_STATS_JSON : PM_STATS_TEXT);
      if (pmi_option_str(stats_file) != NULL) close(fd);
      else pmi_stderr_close(fd);
    }
  }
  pmi_spin_unlock(&report_lock);
}

pmi_startup void pmi_stats_at_exit(void) {
  if (pmi_option(stats) == PMI_STATS_OFF) return;
  /* This thread's batch of frees for other heaps, and the frees waiting for
   * it, belong in the last report. */
  pmi_remote_flush();
  pmi_heap_collect(pmi_heap_own());
  write_report(true);
}

/* POOLMALLOC_STATS_INTERVAL: a thread that appends a report every N seconds.
 * It exists only when the option is set. */
static void *interval_thread(void *arg) {
  long seconds = pmi_option(stats_interval);
  for (;;) {
    struct timespec ts = {seconds, 0};
    while (pmi_sys_nanosleep(&ts) != 0) {}
    write_report(false);
    pmi_profile_interval();
  }
  return NULL;
}

pmi_startup void pmi_stats_start_interval(void) {
  if (pmi_option(stats_interval) <= 0) return;
  if (pmi_option(stats) == PMI_STATS_OFF) pmi_option(stats) = PMI_STATS_TEXT;
  pthread_t t;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  if (pthread_create(&t, &attr, interval_thread, NULL) != 0)
    pmi_warning("POOLMALLOC_STATS_INTERVAL: cannot start the reporting thread");
  pthread_attr_destroy(&attr);
}
