/* profile.c: the sampling heap profiler (POOLMALLOC_PROFILE=1).
 *
 * Which allocations: the bytes a thread allocates are a line on which
 * sample points fall at exponential gaps of mean R (POOLMALLOC_PROFILE_RATE),
 * as in tcmalloc and jemalloc; an allocation covering a point is sampled.
 * An allocation of n bytes is then sampled with probability
 * q(n) = 1 - exp(-n / R), whatever came before it (the gaps are memoryless,
 * so after a sample the next gap starts at the end of that allocation), and
 * a sample of n bytes stands for n / q(n) bytes: every estimate below is
 * unbiased.  R = 1 samples every allocation and the figures are exact.
 *
 * What a sample keeps: its address, size and site, in the live set (an open
 * addressing table keyed by address) until the block is freed.  A site is a
 * call stack (innermost 64 frames, from unwind.c) and a size bucket (the
 * power of two below the size): per site the sampled blocks and bytes live
 * and allocated since start.  Sizes are bucketed because the readers
 * (google-pprof, and this file) correct each line by the average size on
 * it, and 1 / q(n) changes a lot between a 32-byte and a 32 KiB block.
 *
 *   sites[i].live_n  == |{ s in live set : s.site == i }|
 *   sites[i].live_b  == sum of s.size over those
 *   pmi_profile_filter[k] == |{ s in live set : slot(s.addr) == k }|
 *
 * Everything the profiler keeps is mapped with pmi_os_map (it never calls
 * malloc), grows by doubling, and is guarded by one lock, taken only by a
 * sample, a free or realloc whose filter slot is in use, and a dump.
 *
 * Output (at exit, with every POOLMALLOC_STATS_INTERVAL report, on
 * pm_profile_dump): PATH, the legacy text heap profile of gperftools
 * ("heap_v2/R": google-pprof corrects for the sampling); PATH.txt, the top
 * sites with dladdr's names; PATH.collapsed, one "outer;...;inner BYTES" line
 * per stack for flame graphs.  A dump copies the tables under the lock, then
 * names frames and writes without it (dladdr takes the loader's lock, which
 * a thread inside dlopen holds while it may be allocating). */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/syscall.h"
#include "base/text.h"
#include "core/internal.h"
#include "diag/profile.h"
#include "poolmalloc.h"

__thread int64_t pmi_profile_left __attribute__((tls_model("initial-exec")));
/* In the library's zero-filled data: no test for "not mapped yet" on free,
 * and no memory until a block is sampled (the pages are read as zero). */
_Atomic(uint32_t) pmi_profile_filter[1u << PMI_PROFILE_FILTER_BITS];

static __thread uint64_t tls_rng __attribute__((tls_model("initial-exec")));   /* 0: not seeded */
static __thread uint8_t tls_busy __attribute__((tls_model("initial-exec")));   /* inside a sample */

#define NBUCKETS 64   /* size buckets: floor(log2(size)) */

typedef struct stack {
  uint64_t hash;
  void **frames;      /* in frame chunks, never moved */
  uint32_t depth;
} stack;

typedef struct site {
  uint32_t stack, bucket;
  uint64_t live_n, live_b;     /* sampled blocks and bytes live */
  uint64_t alloc_n, alloc_b;   /* sampled since start */
} site;

typedef struct table {   /* a mapped array that doubles */
  void *base;
  size_t cap;            /* in entries */
} table;

static struct {
  pthread_mutex_t lock;
  bool on;               /* sampling; set once the unwinder is primed */
  long rate;
  table live;            /* pmi_sample, addr 0 = empty, at most half full */
  size_t nlive;
  table sites;           /* site, appended */
  size_t nsites;
  table site_index;      /* uint32_t: site + 1 by hash of (stack, bucket) */
  table stacks;          /* stack, appended */
  size_t nstacks;
  table stack_index;     /* uint32_t: stack + 1 by hash */
  void **chunk;          /* frames of the current chunk */
  size_t chunk_used, chunk_cap;
  uint64_t samples;      /* since start */
  uint64_t own_bytes;    /* mapped by the profiler */
} prof = {.lock = PTHREAD_MUTEX_INITIALIZER};

static _Atomic int warned_path;

/* ---- arithmetic without libm ------------------------------------------------ */

static double bits_to_double(uint64_t b) {
  double d;
  memcpy(&d, &b, sizeof d);
  return d;
}

/* ln(x) for x > 0: x = m 2^e with m in [sqrt(1/2), sqrt(2)), then the atanh
 * series of ln m (|t| < 0.172, so six terms give 1e-12). */
static double ln(double x) {
  uint64_t b;
  memcpy(&b, &x, sizeof b);
  int e = (int)((b >> 52) & 0x7ff) - 1023;
  double m = bits_to_double((b & 0x000fffffffffffffull) | 0x3ff0000000000000ull);
  if (m > 1.4142135623730951) {
    m *= 0.5;
    e++;
  }
  double t = (m - 1) / (m + 1), t2 = t * t;
  double s = t * (2 + t2 * (2.0 / 3 + t2 * (2.0 / 5 + t2 * (2.0 / 7 + t2 * (2.0 / 9 + t2 * (2.0 / 11))))));
  return e * 0.6931471805599453 + s;
}

/* 1 - exp(-x) for x >= 0, without losing digits for small x. */
static double one_minus_exp_neg(double x) {
  if (x < 1e-4) return x * (1 - x * (0.5 - x / 6));
  if (x > 40) return 1;
  int k = (int)(x / 0.6931471805599453 + 0.5);
  double r = x - k * 0.6931471805599453, term = 1, sum = 1;   /* exp(-r), |r| <= 0.35 */
  for (int i = 1; i < 14; i++) {
    term *= -r / i;
    sum += term;
  }
  return 1 - sum * bits_to_double((uint64_t)(1023 - k) << 52);
}

/* The factor google-pprof applies to a line of n samples and b bytes. */
static double scale(uint64_t n, uint64_t b) {
  if (prof.rate <= 1 || n == 0) return 1;
  return 1 / one_minus_exp_neg((double)b / (double)n / (double)prof.rate);
}

static uint64_t rng_next(void) {   /* splitmix64 */
  uint64_t z = (tls_rng += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* Bytes to the next sample point: exponential with mean rate. */
static int64_t next_gap(void) {
  if (prof.rate <= 1) return 0;
  double u = ((double)(rng_next() >> 11) + 1) * (1.0 / 9007199254740992.0);   /* (0, 1] */
  double gap = -ln(u) * (double)prof.rate;
  return gap < 1 ? 1 : gap > 1e15 ? (int64_t)1e15 : (int64_t)gap + 1;
}

/* ---- the tables ---------------------------------------------------------------- */

static bool table_grow(table *t, size_t entry, size_t min_cap, bool rehash_only) {
  size_t cap = t->cap ? t->cap * 2 : min_cap;
  void *base = pmi_os_map(cap * entry);
  if (base == NULL) return false;
  prof.own_bytes += cap * entry;
  if (!rehash_only && t->base != NULL) memcpy(base, t->base, t->cap * entry);
  if (t->base != NULL) {
    pmi_os_unmap(t->base, t->cap * entry);
    prof.own_bytes -= t->cap * entry;
  }
  t->base = base;
  t->cap = cap;
  return true;
}

static inline size_t hash_slot(uint64_t h, size_t cap) {
  return (size_t)((h * 0x9E3779B97F4A7C15ull) >> 17) & (cap - 1);
}

static void index_insert(table *ix, uint64_t h, uint32_t value) {
  uint32_t *slots = ix->base;
  size_t i = hash_slot(h, ix->cap);
  while (slots[i] != 0) i = (i + 1) & (ix->cap - 1);
  slots[i] = value + 1;
}

static uint64_t stack_hash(void *const *frames, unsigned depth) {
  uint64_t h = 0xcbf29ce484222325ull ^ depth;
  for (unsigned i = 0; i < depth; i++) h = (h ^ (uintptr_t)frames[i]) * 0x100000001b3ull;
  return h;
}

static uint64_t site_hash(uint32_t st, uint32_t bucket) { return ((uint64_t)st << 8 | bucket) * 0xD6E8FEB86659FD93ull; }

static bool stack_index_rebuild(void) {
  if (!table_grow(&prof.stack_index, sizeof(uint32_t), 1024, true)) return false;
  stack *stacks = prof.stacks.base;
  for (size_t i = 0; i < prof.nstacks; i++) index_insert(&prof.stack_index, stacks[i].hash, (uint32_t)i);
  return true;
}

static bool site_index_rebuild(void) {
  if (!table_grow(&prof.site_index, sizeof(uint32_t), 1024, true)) return false;
  site *sites = prof.sites.base;
  for (size_t i = 0; i < prof.nsites; i++)
    index_insert(&prof.site_index, site_hash(sites[i].stack, sites[i].bucket), (uint32_t)i);
  return true;
}

/* The stack's index, created if new; -1 when out of memory. */
static long stack_find(void *const *frames, unsigned depth) {
  uint64_t h = stack_hash(frames, depth);
  if (prof.stack_index.cap != 0) {
    uint32_t *slots = prof.stack_index.base;
    stack *stacks = prof.stacks.base;
    for (size_t i = hash_slot(h, prof.stack_index.cap); slots[i] != 0; i = (i + 1) & (prof.stack_index.cap - 1)) {
      stack *s = &stacks[slots[i] - 1];
      if (s->hash == h && s->depth == depth && memcmp(s->frames, frames, depth * sizeof *frames) == 0)
        return slots[i] - 1;
    }
  }
  if (prof.chunk_cap - prof.chunk_used < depth) {
    size_t cap = 65536;   /* frames per chunk (512 KiB); a chunk's tail is left unused */
    void **chunk = pmi_os_map(cap * sizeof *chunk);
    if (chunk == NULL) return -1;
    prof.own_bytes += cap * sizeof *chunk;
    prof.chunk = chunk;
    prof.chunk_used = 0;
    prof.chunk_cap = cap;
  }
  if (prof.nstacks == prof.stacks.cap && !table_grow(&prof.stacks, sizeof(stack), 1024, false)) return -1;
  if (2 * (prof.nstacks + 1) > prof.stack_index.cap && !stack_index_rebuild()) return -1;
  stack *s = &((stack *)prof.stacks.base)[prof.nstacks];
  s->hash = h;
  s->depth = depth;
  s->frames = prof.chunk + prof.chunk_used;
  memcpy(s->frames, frames, depth * sizeof *frames);
  prof.chunk_used += depth;
  index_insert(&prof.stack_index, h, (uint32_t)prof.nstacks);
  return (long)prof.nstacks++;
}

static long site_find(uint32_t st, uint32_t bucket) {
  uint64_t h = site_hash(st, bucket);
  if (prof.site_index.cap != 0) {
    uint32_t *slots = prof.site_index.base;
    site *sites = prof.sites.base;
    for (size_t i = hash_slot(h, prof.site_index.cap); slots[i] != 0; i = (i + 1) & (prof.site_index.cap - 1)) {
      site *s = &sites[slots[i] - 1];
      if (s->stack == st && s->bucket == bucket) return slots[i] - 1;
    }
  }
  if (prof.nsites == prof.sites.cap && !table_grow(&prof.sites, sizeof(site), 1024, false)) return -1;
  if (2 * (prof.nsites + 1) > prof.site_index.cap && !site_index_rebuild()) return -1;
  site *s = &((site *)prof.sites.base)[prof.nsites];
  memset(s, 0, sizeof *s);
  s->stack = st;
  s->bucket = bucket;
  index_insert(&prof.site_index, h, (uint32_t)prof.nsites);
  return (long)prof.nsites++;
}

/* ---- the live set ------------------------------------------------------------- */

static inline size_t live_slot(uintptr_t addr, size_t cap) { return hash_slot(addr >> 4, cap); }

static void live_insert_raw(pmi_sample *slots, size_t cap, const pmi_sample *s) {
  size_t i = live_slot(s->addr, cap);
  while (slots[i].addr != 0) i = (i + 1) & (cap - 1);
  slots[i] = *s;
}

static bool live_grow(void) {
  table old = prof.live;
  size_t cap = old.cap ? old.cap * 2 : 4096;
  pmi_sample *slots = pmi_os_map(cap * sizeof *slots);
  if (slots == NULL) return false;
  prof.own_bytes += cap * sizeof *slots;
  pmi_sample *from = old.base;
  for (size_t i = 0; i < old.cap; i++)
    if (from[i].addr != 0) live_insert_raw(slots, cap, &from[i]);
  if (old.base != NULL) {
    pmi_os_unmap(old.base, old.cap * sizeof *slots);
    prof.own_bytes -= old.cap * sizeof *slots;
  }
  prof.live.base = slots;
  prof.live.cap = cap;
  return true;
}

static void count_in(const pmi_sample *s, int sign) {
  site *st = &((site *)prof.sites.base)[s->site];
  st->live_n += (uint64_t)(int64_t)sign;
  st->live_b += (uint64_t)((int64_t)sign * (int64_t)s->size);
  atomic_fetch_add_explicit(&pmi_profile_filter[pmi_profile_slot((void *)s->addr)], (uint32_t)sign,
                            memory_order_relaxed);
}

static bool live_remove_locked(uintptr_t addr, pmi_sample *out) {
  if (prof.nlive == 0) return false;
  pmi_sample *slots = prof.live.base;
  size_t cap = prof.live.cap, i = live_slot(addr, cap);
  while (slots[i].addr != addr) {
    if (slots[i].addr == 0) return false;
    i = (i + 1) & (cap - 1);
  }
  *out = slots[i];
  count_in(out, -1);
  prof.nlive--;
  /* Backward-shift deletion: no tombstones, lookups stay short. */
  for (size_t j = (i + 1) & (cap - 1); slots[j].addr != 0; j = (j + 1) & (cap - 1)) {
    size_t home = live_slot(slots[j].addr, cap);
    if (((j - home) & (cap - 1)) >= ((j - i) & (cap - 1))) {
      slots[i] = slots[j];
      i = j;
    }
  }
  slots[i].addr = 0;
  return true;
}

static void live_add_locked(const pmi_sample *s) {
  pmi_sample stale;
  live_remove_locked(s->addr, &stale);   /* a block freed behind our back */
  if (2 * (prof.nlive + 1) > prof.live.cap && !live_grow()) return;
  live_insert_raw(prof.live.base, prof.live.cap, s);
  prof.nlive++;
  count_in(s, 1);
}

/* ---- the hooks ---------------------------------------------------------------- */

/* Debug mode pins the fast path's count-down below zero, so that every
 * malloc reaches debug.c's slow path (where debug blocks are made), and
 * counts the bytes to the next sample here instead. */
static bool pinned;
#define PINNED (INT64_MIN / 2)
static __thread int64_t tls_pinned_left __attribute__((tls_model("initial-exec")));

void pmi_profile_pin(void) { pinned = true; }

void pmi_profile_sample(void *p, size_t size, const void *where) {
  int64_t *left = &pmi_profile_left;
  if (pinned) {
    pmi_profile_left = PINNED;
    left = &tls_pinned_left;
    if (prof.on && tls_rng != 0 && (*left -= (int64_t)size) > 0) return;
  }
  if (!prof.on) {
    /* Not started yet (every allocation comes here until it starts), or
     * debug mode alone. */
    if (!pinned) pmi_profile_left = 0;
    return;
  }
  if (tls_busy) return;
  if (tls_rng == 0) {   /* this thread's first allocation since start */
    tls_rng = pmi_os_random() ^ (uintptr_t)&tls_rng ^ 1;
    *left = next_gap() - (int64_t)size;
    if (*left > 0 && prof.rate > 1) return;
  }
  *left = next_gap();
  if (p == NULL) return;
  tls_busy = 1;
  int saved = errno;
  void *frames[PMI_UNWIND_MAX];
  unsigned depth = pmi_unwind(frames, PMI_UNWIND_MAX, where);
  pthread_mutex_lock(&prof.lock);
  long st = stack_find(frames, depth);
  long si = st < 0 ? -1 : site_find((uint32_t)st, size ? 63 - (uint32_t)__builtin_clzl(size) : 0);
  if (si >= 0) {
    site *s = &((site *)prof.sites.base)[si];
    s->alloc_n++;
    s->alloc_b += size;
    prof.samples++;
    pmi_sample rec = {(uintptr_t)p, size, (uint32_t)si};
    live_add_locked(&rec);
  }
  pthread_mutex_unlock(&prof.lock);
  errno = saved;
  tls_busy = 0;
}

void *pmi_profile_malloc_sampled(size_t size, const void *where) {
  void *p = pmi_malloc(size);
  pmi_profile_sample(p, size, where);
  return p;
}

void pmi_profile_forget(const void *p) {
  pmi_sample s;
  pmi_profile_take(p, &s);
}

void pmi_profile_free_sampled(void *p) {
  pmi_profile_forget(p);
  pmi_free(p);
}

/* In debug mode every slot is one more than its count: every free then
 * reaches debug.c's slow path. */
void pmi_profile_pin_filter(void) {
  for (size_t k = 0; k < sizeof pmi_profile_filter / sizeof pmi_profile_filter[0]; k++)
    pmi_store_relaxed(&pmi_profile_filter[k], 1);
}

bool pmi_profile_take(const void *p, pmi_sample *out) {
  if (p == NULL || !prof.on || tls_busy) return false;
  if (pmi_load_relaxed(&pmi_profile_filter[pmi_profile_slot(p)]) == 0) return false;
  pthread_mutex_lock(&prof.lock);
  bool found = live_remove_locked((uintptr_t)p, out);
  pthread_mutex_unlock(&prof.lock);
  return found;
}

void pmi_profile_put(const pmi_sample *s) {
  pthread_mutex_lock(&prof.lock);
  live_add_locked(s);
  pthread_mutex_unlock(&prof.lock);
}

bool pmi_profile_on(void) { return prof.on; }

void pmi_profile_stats(struct pm_profile_stats *out) {
  memset(out, 0, sizeof *out);
  if (!prof.on) return;
  pthread_mutex_lock(&prof.lock);
  out->rate = (unsigned long long)prof.rate;
  out->samples_live = prof.nlive;
  out->samples_total = prof.samples;
  out->stacks = prof.nstacks;
  out->own_bytes = prof.own_bytes + sizeof pmi_profile_filter;
  double est = 0;
  site *sites = prof.sites.base;
  for (size_t i = 0; i < prof.nsites; i++) est += (double)sites[i].live_b * scale(sites[i].live_n, sites[i].live_b);
  out->estimated_live_bytes = (unsigned long long)(est + 0.5);
  pthread_mutex_unlock(&prof.lock);
}

/* ---- output ------------------------------------------------------------------- */

typedef struct writer {
  int fd;
  bool failed;
  size_t len;
  char buf[8192];
} writer;

static void w_flush(writer *w) {
  size_t off = 0;
  while (off < w->len && !w->failed) {
    ssize_t n = write(w->fd, w->buf + off, w->len - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) w->failed = true;
    else off += (size_t)n;
  }
  w->len = 0;
}

static void w_bytes(writer *w, const char *s, size_t n) {
  while (n > 0) {
    if (w->len == sizeof w->buf) w_flush(w);
    size_t k = sizeof w->buf - w->len < n ? sizeof w->buf - w->len : n;
    memcpy(w->buf + w->len, s, k);
    w->len += k;
    s += k;
    n -= k;
  }
}

__attribute__((format(printf, 2, 3))) static void w_fmt(writer *w, const char *fmt, ...) {
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (n > 0) w_bytes(w, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

/* Writes to path + suffix through a temporary name (per thread), so that a
 * reader never sees half a profile.  false (errno set) if it cannot. */
static bool w_open(writer *w, char *tmp, size_t cap, const char *path, const char *suffix) {
  snprintf(tmp, cap, "%s%s.tmp%ld", path, suffix, pmi_os_thread_id());   /* two dumps at once */
  w->fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  w->failed = w->fd < 0;
  w->len = 0;
  return w->fd >= 0;
}

static bool w_close(writer *w, const char *tmp, const char *path, const char *suffix) {
  w_flush(w);
  int saved = errno;
  bool ok = !w->failed && close(w->fd) == 0;
  char final[1100];
  snprintf(final, sizeof final, "%s%s", path, suffix);
  if (ok) ok = pmi_sys_rename(tmp, final) == 0;
  else pmi_sys_unlink(tmp);
  if (ok) errno = saved;
  return ok;
}

/* A frame's function, "name+0xoff" or "" when dladdr does not know it, and
 * its library's base name. */
static void name_frame(void *ip, char *fn, size_t cap, const char **lib, bool offset) {
  Dl_info info;
  fn[0] = '\0';
  *lib = "?";
  void *at = (char *)ip - 1;   /* the call, not the return address */
  if (dladdr(at, &info) == 0) return;
  if (info.dli_fname != NULL) {
    const char *slash = pmi_text_last(info.dli_fname, '/');
    *lib = slash ? slash + 1 : info.dli_fname;
    if (**lib == '\0') *lib = "(program)";
  }
  if (info.dli_sname != NULL) {
    if (offset) snprintf(fn, cap, "%s+0x%zx", info.dli_sname, (size_t)((char *)at - (char *)info.dli_saddr));
    else snprintf(fn, cap, "%s", info.dli_sname);
  } else if (offset) {
    snprintf(fn, cap, "%s+0x%zx", *lib, (size_t)((char *)at - (char *)info.dli_fbase));
  }
}

/* What a dump works from: copies of the sites and stacks, and per stack the
 * estimates summed over its sites. */
typedef struct per_stack {
  double live_b, live_n, alloc_b, alloc_n;
} per_stack;

typedef struct snapshot {
  void *map;
  size_t map_bytes;
  site *sites;
  size_t nsites;
  stack *stacks;
  per_stack *per;
  size_t nstacks;
  long rate;
} snapshot;

static bool snapshot_take(snapshot *sn) {
  pthread_mutex_lock(&prof.lock);
  sn->nsites = prof.nsites;
  sn->nstacks = prof.nstacks;
  sn->rate = prof.rate;
  size_t bytes = sn->nsites * sizeof(site) + sn->nstacks * (sizeof(stack) + sizeof(per_stack)) + 4096;
  sn->map_bytes = (bytes + 4095) & ~(size_t)4095;
  sn->map = pmi_os_map(sn->map_bytes);
  if (sn->map == NULL) {
    pthread_mutex_unlock(&prof.lock);
    errno = ENOMEM;
    return false;
  }
  sn->sites = sn->map;
  sn->stacks = (stack *)(sn->sites + sn->nsites);
  sn->per = (per_stack *)(sn->stacks + sn->nstacks);
  if (sn->nsites) memcpy(sn->sites, prof.sites.base, sn->nsites * sizeof(site));
  if (sn->nstacks) memcpy(sn->stacks, prof.stacks.base, sn->nstacks * sizeof(stack));
  pthread_mutex_unlock(&prof.lock);
  for (size_t i = 0; i < sn->nsites; i++) {
    const site *s = &sn->sites[i];
    per_stack *p = &sn->per[s->stack];
    double k = scale(s->live_n, s->live_b), a = scale(s->alloc_n, s->alloc_b);
    p->live_b += (double)s->live_b * k;
    p->live_n += (double)s->live_n * k;
    p->alloc_b += (double)s->alloc_b * a;
    p->alloc_n += (double)s->alloc_n * a;
  }
  return true;
}

/* The legacy heap profile: google-pprof's heap_v2 reader divides each line
 * by q(bytes / count), so lines carry the sampled figures.  A line with
 * blocks but no bytes (malloc(0)) would divide by zero there: its count is
 * left out. */
static void write_pprof(writer *w, const snapshot *sn) {
  uint64_t n1 = 0, b1 = 0, n2 = 0, b2 = 0;
  for (size_t i = 0; i < sn->nsites; i++) {
    const site *s = &sn->sites[i];
    if (s->live_b) n1 += s->live_n, b1 += s->live_b;
    if (s->alloc_b) n2 += s->alloc_n, b2 += s->alloc_b;
  }
  w_fmt(w, "heap profile: %6llu: %8llu [%6llu: %8llu] @ heap_v2/%ld\n", (unsigned long long)n1,
        (unsigned long long)b1, (unsigned long long)n2, (unsigned long long)b2, sn->rate);
  for (size_t i = 0; i < sn->nsites; i++) {
    const site *s = &sn->sites[i];
    if (s->alloc_b == 0) continue;
    const stack *st = &sn->stacks[s->stack];
    w_fmt(w, "%6llu: %8llu [%6llu: %8llu] @", (unsigned long long)(s->live_b ? s->live_n : 0),
          (unsigned long long)s->live_b, (unsigned long long)s->alloc_n, (unsigned long long)s->alloc_b);
    /* pprof takes the first address for a call site and backs up the
     * others (return addresses) by one itself. */
    for (uint32_t f = 0; f < st->depth; f++)
      w_fmt(w, " 0x%zx", (size_t)st->frames[f] - (f == 0));
    w_bytes(w, "\n", 1);
  }
  w_fmt(w, "\nMAPPED_LIBRARIES:\n");
  int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) w_bytes(w, buf, (size_t)n);
  close(fd);
}

static void write_collapsed(writer *w, const snapshot *sn) {
  char fn[256];
  const char *lib;
  for (size_t i = 0; i < sn->nstacks; i++) {
    unsigned long long bytes = (unsigned long long)(sn->per[i].live_b + 0.5);
    if (bytes == 0) continue;
    const stack *st = &sn->stacks[i];
    for (uint32_t f = st->depth; f-- > 0;) {
      name_frame(st->frames[f], fn, sizeof fn, &lib, false);
      if (fn[0] != '\0') w_fmt(w, "%s", fn);
      else w_fmt(w, "[%s]", lib);
      w_bytes(w, f ? ";" : " ", 1);
    }
    if (st->depth == 0) w_bytes(w, "[unknown] ", 10);
    w_fmt(w, "%llu\n", bytes);
  }
}

#define TOP_SITES 25

static void write_summary(writer *w, const snapshot *sn) {
  double live = 0, blocks = 0, alloc = 0;
  uint64_t live_samples = 0;
  for (size_t i = 0; i < sn->nstacks; i++) {
    live += sn->per[i].live_b;
    blocks += sn->per[i].live_n;
    alloc += sn->per[i].alloc_b;
  }
  for (size_t i = 0; i < sn->nsites; i++) live_samples += sn->sites[i].live_n;
  char g1[32], g2[32], g3[32], g4[32];
  w_fmt(w, "poolmalloc heap profile, pid %d: the live set estimated from samples, one per %s bytes on average%s\n\n",
        pmi_sys_getpid(), pmi_stats_group(g1, (unsigned long long)sn->rate), sn->rate <= 1 ? " (every allocation: exact)" : "");
  w_fmt(w, "# %-44s = %15s\n", "estimated live bytes", pmi_stats_group(g1, (unsigned long long)(live + 0.5)));
  w_fmt(w, "# %-44s = %15s\n", "estimated live blocks", pmi_stats_group(g1, (unsigned long long)(blocks + 0.5)));
  w_fmt(w, "# %-44s = %15s\n", "estimated bytes allocated since start", pmi_stats_group(g1, (unsigned long long)(alloc + 0.5)));
  w_fmt(w, "# %-44s = %15s\n", "sampled blocks live", pmi_stats_group(g1, live_samples));
  w_fmt(w, "# %-44s = %15s\n", "call stacks", pmi_stats_group(g1, sn->nstacks));
  w_fmt(w, "\ntop allocation sites by estimated live bytes (the innermost frame outside the allocator, and its callers):\n");
  w_fmt(w, "rank       live bytes   share    live blocks  allocated bytes  site\n");
  w_fmt(w, "----  ---------------  ------  -------------  ---------------  ----\n");
  /* The largest TOP_SITES, by repeated selection (a dump is rare). */
  double last = 1e300;
  size_t last_i = SIZE_MAX;
  for (int rank = 1; rank <= TOP_SITES; rank++) {
    size_t best = SIZE_MAX;
    for (size_t i = 0; i < sn->nstacks; i++) {
      double v = sn->per[i].live_b;
      if (v <= 0 || v > last || (v == last && i <= last_i)) continue;
      if (best == SIZE_MAX || v > sn->per[best].live_b) best = i;
    }
    if (best == SIZE_MAX) break;
    last = sn->per[best].live_b;
    last_i = best;
    const per_stack *p = &sn->per[best];
    const stack *st = &sn->stacks[best];
    w_fmt(w, "%4d  %15s  %5.1f%%  %13s  %15s  ", rank, pmi_stats_group(g2, (unsigned long long)(p->live_b + 0.5)),
          live > 0 ? 100.0 * p->live_b / live : 0.0, pmi_stats_group(g3, (unsigned long long)(p->live_n + 0.5)),
          pmi_stats_group(g4, (unsigned long long)(p->alloc_b + 0.5)));
    for (uint32_t f = 0; f < st->depth && f < 3; f++) {
      char fn[256];
      const char *lib;
      name_frame(st->frames[f], fn, sizeof fn, &lib, true);
      w_fmt(w, "%s%s (%s)", f ? " < " : "", fn[0] ? fn : "?", lib);
    }
    w_bytes(w, "\n", 1);
  }
}

static int dump(const char *pattern) {
  if (!prof.on) {
    errno = ENOTSUP;
    return -1;
  }
  char path[1024], tmp[1100];
  pmi_options_path(path, sizeof path, pattern);
  snapshot sn;
  if (!snapshot_take(&sn)) return -1;
  writer w;
  bool ok = w_open(&w, tmp, sizeof tmp, path, "");
  if (ok) {
    write_pprof(&w, &sn);
    ok = w_close(&w, tmp, path, "");
  }
  if (ok && (ok = w_open(&w, tmp, sizeof tmp, path, ".txt"))) {
    write_summary(&w, &sn);
    ok = w_close(&w, tmp, path, ".txt");
  }
  if (ok && (ok = w_open(&w, tmp, sizeof tmp, path, ".collapsed"))) {
    write_collapsed(&w, &sn);
    ok = w_close(&w, tmp, path, ".collapsed");
  }
  int saved = errno;
  pmi_os_unmap(sn.map, sn.map_bytes);
  if (ok) return 0;
  errno = saved;
  return -1;
}

static const char *default_pattern(void) {
  const char *p = pmi_option_str(profile_file);
  return p != NULL ? p : "poolmalloc.%p.heap";
}

/* The profiles the process writes by itself warn once if they cannot be
 * written; pm_profile_dump reports to its caller. */
static void dump_default(void) {
  if (dump(default_pattern()) == 0) return;
  if (!atomic_exchange(&warned_path, 1))
    pmi_warning("POOLMALLOC_PROFILE_FILE=%s cannot be written (%s); no heap profile", default_pattern(),
                strerror(errno));
}

pmi_export int pm_profile_dump(const char *path) {
  int saved = errno;
  int rc = dump(path != NULL ? path : default_pattern());
  if (rc == 0) errno = saved;
  return rc;
}

void pmi_profile_interval(void) {
  if (prof.on) dump_default();
}

/* ---- start, fork, exit --------------------------------------------------------- */

/* Other libraries' atfork handlers may allocate and free while the lock is
 * held for the fork: this thread neither samples nor looks up then (a block
 * it frees in that moment may stay in the live set). */
static void fork_prepare(void) {
  pthread_mutex_lock(&prof.lock);
  tls_busy = 1;
}
static void fork_parent(void) {
  tls_busy = 0;
  pthread_mutex_unlock(&prof.lock);
}
static void fork_child(void) {
  tls_busy = 0;
  pthread_mutex_unlock(&prof.lock);
  tls_rng ^= (uint64_t)pmi_sys_getpid() * 0x9E3779B97F4A7C15ull;   /* the child draws its own gaps */
}

/* After pmi_process_init (constructor 101): the options are read, and this
 * may allocate (pthread_atfork does).  Allocations before this point are not
 * sampled. */
__attribute__((constructor(102))) static void profile_start(void) {
  if (!pmi_option(profile)) return;
  prof.rate = pmi_option(profile_rate);
  if (!pmi_unwind_prime()) return;
  pthread_atfork(fork_prepare, fork_parent, fork_child);
  prof.on = true;
}

__attribute__((destructor(101))) static void profile_end(void) {
  if (prof.on) dump_default();
}
