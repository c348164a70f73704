/* stats.c: counters and the report.
 *
 * Counters are per heap and plain (the owner writes them without atomics);
 * a report adds up every heap, live or abandoned.  Pool and arena figures are
 * not counted at all: the report walks the arenas of each heap under that
 * heap's lock (arenas are only retired under it), so they cost the fast path
 * nothing.  The report is written with write(2) from a stack buffer and
 * allocates nothing: at exit stdio may already be gone. */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

void pmi_counters_sum(pmi_counters *out) {
  memset(out, 0, sizeof *out);
  pmi_heaps_lock();
  for (pmi_heap *h = pmi_heap_first(); h != NULL; h = h->next_heap) {
#define PMI_COUNTER_ADD(name, doc) out->name += h->counters.name;
    PM_COUNTER_LIST(PMI_COUNTER_ADD)
#undef PMI_COUNTER_ADD
    out->large_live += h->counters.large_live;
    out->large_live_bytes += h->counters.large_live_bytes;
  }
  pmi_heaps_unlock();
}

pmi_export void pm_counters_get(pm_counters *out) {
  pmi_counters sum;
  pmi_counters_sum(&sum);
#define PMI_COUNTER_COPY(name, doc) out->name = sum.name;
  PM_COUNTER_LIST(PMI_COUNTER_COPY)
#undef PMI_COUNTER_COPY
}

/* ---- the pool and arena census --------------------------------------------- */

typedef struct class_census {
  size_t pools, full_pools, blocks_used, blocks_free, blocks_untouched;
} class_census;

typedef struct census {
  class_census cls[PMI_NCLASSES];
  size_t heaps, heaps_owned, arenas, empty_pools, reserve;
} census;

static void take_census(census *cs) {
  memset(cs, 0, sizeof *cs);
  pmi_heaps_lock();
  for (pmi_heap *h = pmi_heap_first(); h != NULL; h = h->next_heap) {
    cs->heaps++;
    cs->heaps_owned += atomic_load(&h->owned) != 0;
    pmi_heap_lock(h);
    for (pmi_arena *a = h->arenas; a != NULL; a = a->next_owned) {
      cs->arenas++;
      cs->empty_pools += a->nfreepools;
      for (unsigned i = PMI_FIRST_POOL; i < PMI_POOLS_PER_ARENA; i++) {
        pmi_pool *p = &a->pools[i];
        if (p->state != PMI_POOL_USED && p->state != PMI_POOL_FULL) continue;
        class_census *c = &cs->cls[p->szidx];
        c->pools++;
        c->full_pools += p->state == PMI_POOL_FULL;
        c->blocks_used += p->used;
        c->blocks_free += (size_t)p->ncarved - p->used;
        c->blocks_untouched += (size_t)p->capacity - p->ncarved;
      }
    }
    pmi_heap_unlock(h);
  }
  cs->reserve = pmi_arena_reserve_count();
  pmi_heaps_unlock();
}

size_t pmi_stats_small_bytes_in_use(void);
size_t pmi_stats_small_bytes_in_use(void) {
  census cs;
  take_census(&cs);
  size_t bytes = 0;
  for (unsigned c = 0; c < PMI_NCLASSES; c++) bytes += cs.cls[c].blocks_used * pmi_class_size(c);
  return bytes;
}

/* ---- output without stdio ------------------------------------------------- */

typedef struct out {
  int fd;
  size_t len;
  char buf[4096];
} out;

static void out_flush(out *o) {
  pmi_os_write(o->fd, o->buf, o->len);
  o->len = 0;
}

__attribute__((format(printf, 2, 3))) static void outf(out *o, const char *fmt, ...) {
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  size_t len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
  if (o->len + len > sizeof o->buf) out_flush(o);
  memcpy(o->buf + o->len, line, len);
  o->len += len;
}

/* 1234567 -> "1,234,567" */
static const char *grouped(char *buf, unsigned long long v) {
  char tmp[32];
  int n = snprintf(tmp, sizeof tmp, "%llu", v), j = 0;
  for (int i = 0; i < n; i++) {
    buf[j++] = tmp[i];
    if ((n - i - 1) % 3 == 0 && i != n - 1) buf[j++] = ',';
  }
  buf[j] = '\0';
  return buf;
}

static void report_text(out *o, const census *cs, const pmi_counters *k) {
  char g1[32], g2[32], g3[32], g4[32], g5[32];
  outf(o, "poolmalloc %d.%d: small-object allocator statistics (pid %d)\n", POOLMALLOC_VERSION_MAJOR,
       POOLMALLOC_VERSION_MINOR, (int)getpid());
  outf(o, "\nclass   size   pools    full   blocks in use     free blocks   untouched     bytes in use\n");
  size_t tot_used = 0, tot_free = 0, tot_untouched = 0;
  for (unsigned c = 0; c < PMI_NCLASSES; c++) {
    const class_census *cc = &cs->cls[c];
    if (cc->pools == 0) continue;
    size_t size = pmi_class_size(c);
    outf(o, "%5u %6zu %7s %7s %15s %15s %11s %16s\n", c, size, grouped(g1, cc->pools), grouped(g2, cc->full_pools),
         grouped(g3, cc->blocks_used), grouped(g4, cc->blocks_free), grouped(g5, cc->blocks_untouched),
         grouped(g1, cc->blocks_used * size));
    tot_used += cc->blocks_used * size;
    tot_free += cc->blocks_free * size;
    tot_untouched += cc->blocks_untouched * size;
  }
  outf(o, "\n%-34s %16s\n", "arenas mapped now", grouped(g1, cs->arenas + cs->reserve));
  outf(o, "%-34s %16s\n", "  of which in the reserve", grouped(g1, cs->reserve));
  outf(o, "%-34s %16s\n", "empty pools in owned arenas", grouped(g1, cs->empty_pools));
  outf(o, "%-34s %16s\n", "bytes in small blocks in use", grouped(g1, tot_used));
  outf(o, "%-34s %16s\n", "bytes in free blocks", grouped(g1, tot_free));
  outf(o, "%-34s %16s\n", "bytes untouched in pools", grouped(g1, tot_untouched));
  outf(o, "%-34s %16s\n", "heaps (owned by a live thread)", grouped(g1, cs->heaps));
  outf(o, "%-34s %16s\n", "  owned", grouped(g1, cs->heaps_owned));
  outf(o, "\nactivity\n");
#define PMI_COUNTER_TEXT(name, doc) outf(o, "  %-32s %16s\n", #name, grouped(g1, k->name));
  PM_COUNTER_LIST(PMI_COUNTER_TEXT)
#undef PMI_COUNTER_TEXT
}

static void report_json(out *o, const census *cs, const pmi_counters *k) {
  outf(o, "{\"poolmalloc\": {\"version\": \"%d.%d\", \"pid\": %d}, \"counters\": {", POOLMALLOC_VERSION_MAJOR,
       POOLMALLOC_VERSION_MINOR, (int)getpid());
  const char *sep = "";
#define PMI_COUNTER_JSON(name, doc)                              \
  outf(o, "%s\"%s\": %llu", sep, #name, (unsigned long long)k->name); \
  sep = ", ";
  PM_COUNTER_LIST(PMI_COUNTER_JSON)
#undef PMI_COUNTER_JSON
  outf(o, "}, \"classes\": [");
  sep = "";
  for (unsigned c = 0; c < PMI_NCLASSES; c++) {
    const class_census *cc = &cs->cls[c];
    outf(o, "%s{\"class\": %u, \"size\": %zu, \"pools\": %zu, \"full_pools\": %zu, \"blocks_in_use\": %zu, "
            "\"free_blocks\": %zu, \"untouched_blocks\": %zu}",
         sep, c, pmi_class_size(c), cc->pools, cc->full_pools, cc->blocks_used, cc->blocks_free, cc->blocks_untouched);
    sep = ", ";
  }
  outf(o, "], \"arenas\": {\"mapped\": %zu, \"owned\": %zu, \"reserve\": %zu, \"empty_pools\": %zu}, "
          "\"heaps\": {\"total\": %zu, \"owned\": %zu}}\n",
       cs->arenas + cs->reserve, cs->arenas, cs->reserve, cs->empty_pools, cs->heaps, cs->heaps_owned);
}

/* POOLMALLOC_STATS_FILE with %p replaced by the process id. */
static int open_report_file(const char *pattern) {
  char path[1024];
  size_t j = 0;
  for (const char *s = pattern; *s != '\0' && j < sizeof path - 24; s++) {
    if (s[0] == '%' && s[1] == 'p') {
      j += (size_t)snprintf(path + j, sizeof path - j, "%d", (int)getpid());
      s++;
    } else {
      path[j++] = *s;
    }
  }
  path[j] = '\0';
  int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) pmi_warning("POOLMALLOC_STATS_FILE=%s cannot be opened; the report goes to stderr", pattern);
  return fd;
}

pmi_export void pm_stats_write(int fd, int json) {
  census cs;
  pmi_counters k;
  take_census(&cs);
  pmi_counters_sum(&k);
  out o;
  o.fd = fd;
  o.len = 0;
  if (json) report_json(&o, &cs, &k);
  else report_text(&o, &cs, &k);
  out_flush(&o);
}

void pmi_stats_at_exit(void) {
  long format = pmi_option(stats);
  if (format == PMI_STATS_OFF) return;
  int fd = STDERR_FILENO;
  const char *file = pmi_option_str(stats_file);
  if (file != NULL) {
    int f = open_report_file(file);
    if (f >= 0) fd = f;
  }
  pm_stats_write(fd, format == PMI_STATS_JSON);
  if (fd != STDERR_FILENO) close(fd);
}
