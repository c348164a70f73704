/* debug.c: POOLMALLOC_DEBUG=1 (in the spirit of CPython's PYTHONMALLOC=debug)
 * and valgrind support; and the dispatch the heap profiler rides on.
 *
 * When any of the three is on, pmi_debug_active is set at start-up and every
 * pm_* entry point (hence malloc, free, ...) comes here first (one
 * predictable branch on the normal fast paths, nothing else).  With the
 * profiler alone, the entry points below serve the core's blocks (pmi_malloc,
 * pmi_realloc, ...) and tell the profiler (pmi_profile_malloc, _free).  With
 * debug mode or valgrind, every block, small or
 * large, is a "debug block" wrapped around the user's bytes:
 *
 *    raw (from the core)                      user (what malloc returns)
 *    |                                         |
 *    | [pad] | header, 48 B | front guard 16 B | n user bytes | tail guard |
 *                                  0xFD x 16     0xCD when new   0xFD, 16..31 B,
 *                                                0xDD when freed  up to a multiple of 16
 *
 *    header: magic = debug_key ^ user address (recognises our blocks, and
 *            never looks like a pointer to the leak checker), the requested
 *            size, a serial number, alive/freed, user - raw, and the return
 *            addresses of the malloc and free calls.
 *
 * Small debug blocks (header + n + guard <= 512) come from the pools, the
 * others from the medium classes or huge mappings, through pmi_malloc / pmi_free:
 * the core's own entry points without the dispatch.  A freed block is filled
 * with 0xDD and held in a quarantine (a FIFO of the last 1024 blocks or
 * 4 MiB); when it leaves, its bytes and guards are checked, then the core
 * frees it.  pm_collect() / malloc_trim() empty the quarantine, and the
 * blocks still in it are checked at exit.
 *
 * Under valgrind's memcheck, the same dispatch is on and the
 * blocks are described to memcheck: the user bytes are a MALLOCLIKE block,
 * header and guards are NOACCESS, FREELIKE at free (the whole block stays
 * NOACCESS while in the quarantine, and becomes addressable again when the
 * core gets it back); the core's own accesses run with error reporting
 * disabled.  Blocks
 * above 512 bytes are mapped directly (pmi_os_map) there, one per mapping,
 * so that memcheck sees each on its own pages.
 *
 * Memory that is not a debug block (a block the C library handed out before
 * poolmalloc was loaded, or the first block of the process, allocated before
 * the options were read) is recognised as such and handed to the core.
 *
 * Nothing here allocates: reports are formatted on the stack and written
 * with write(2); the backtrace is execinfo's, loaded once at start-up. */
#include <errno.h>
#include <execinfo.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/syscall.h"
#include "core/internal.h"
#include "diag/profile.h"

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>) && __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#include <valgrind/valgrind.h>
#define PMI_HAVE_VALGRIND 1
#endif
#endif
#ifndef PMI_HAVE_VALGRIND
#define PMI_HAVE_VALGRIND 0
#endif

int pmi_debug_active;

static int dbg_fill;        /* POOLMALLOC_DEBUG=1: guards, fills, checks */
static int dbg_valgrind;    /* running under valgrind */
static int dbg_blocks;      /* either: blocks are debug blocks */
static uintptr_t dbg_key;   /* per-process secret of the header magic */
static _Atomic uint64_t dbg_serial;

#if PMI_HAVE_VALGRIND
#define VG(stmt) do { if (dbg_valgrind) { stmt; } } while (0)
#else
#define VG(stmt) ((void)0)
#endif
/* Memcheck must not report what the allocator itself does to memory it has
 * marked free or inaccessible: every entry point runs between these two. */
#define VG_ENTER() VG(VALGRIND_DISABLE_ERROR_REPORTING)
#define VG_LEAVE() VG(VALGRIND_ENABLE_ERROR_REPORTING)

#define DBG_ALIVE  0x45564c41u   /* "ALVE" */
#define DBG_FREED  0x44455246u   /* "FRED" */
#define DBG_GUARD  0xFD
#define DBG_NEW    0xCD
#define DBG_DEAD   0xDD
#define DBG_FRONT  16u           /* front guard bytes */
#define DBG_TAIL   16u           /* tail guard bytes, at least */

typedef struct dbg_hdr {
  uintptr_t magic;          /* dbg_key ^ user address */
  size_t size;              /* bytes requested */
  uint64_t serial;          /* 1, 2, ...: the order of allocation */
  uint32_t state;           /* DBG_ALIVE or DBG_FREED */
  uint32_t offset;          /* user - raw */
  void *alloc_site;         /* return address of the malloc call */
  void *free_site;          /* return address of the free call, once freed */
  uint8_t front[DBG_FRONT]; /* 0xFD */
} dbg_hdr;
_Static_assert(sizeof(dbg_hdr) == 64, "the header keeps user bytes 16-byte aligned");
#define DBG_HDR ((size_t)sizeof(dbg_hdr))

static inline dbg_hdr *hdr_of(const void *user) { return (dbg_hdr *)((uintptr_t)user - DBG_HDR); }
static inline uint8_t *user_of(const dbg_hdr *h) { return (uint8_t *)h + DBG_HDR; }
static inline uint8_t *raw_of(const dbg_hdr *h) { return user_of(h) - h->offset; }
/* Bytes from raw to the end of the tail guard. */
static inline size_t total_of(size_t offset, size_t n) { return offset + ((n + 15) & ~(size_t)15) + DBG_TAIL; }
static inline size_t tail_len(const dbg_hdr *h) { return total_of(h->offset, h->size) - h->offset - h->size; }

static size_t page_round(size_t n) {
  size_t page = pmi_os_page_size();
  return (n + page - 1) & ~(page - 1);
}

/* ---- reports ------------------------------------------------------------ */

typedef struct line { char buf[256]; size_t len; } line;

__attribute__((format(printf, 2, 3))) static void lput(line *l, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(l->buf + l->len, sizeof l->buf - l->len, fmt, ap);
  va_end(ap);
  if (n > 0) l->len += (size_t)n < sizeof l->buf - l->len ? (size_t)n : sizeof l->buf - l->len - 1;
}
static void lflush(line *l) {
  if (l->len == sizeof l->buf - 1) l->len--;
  l->buf[l->len++] = '\n';
  pmi_os_write(STDERR_FILENO, l->buf, l->len);
  l->len = 0;
}
#define SAY(...) do { line l_; l_.len = 0; lput(&l_, "poolmalloc:   " __VA_ARGS__); lflush(&l_); } while (0)

/* The byte expected at a, in block h (-1: anything goes). */
static int expected(const dbg_hdr *h, const uint8_t *a) {
  const uint8_t *user = user_of(h);
  if (a < user - DBG_FRONT) return -1;                  /* header fields, padding */
  if (a < user) return DBG_GUARD;
  if (a < user + h->size) return h->state == DBG_FREED ? DBG_DEAD : -1;
  return DBG_GUARD;
}

/* Hex dump of [lo, hi) (clipped to the block), 16 bytes a line, each wrong
 * byte marked with '*'; at most 12 lines. */
static void dump(const dbg_hdr *h, const uint8_t *lo, const uint8_t *hi) {
  const uint8_t *start = (const uint8_t *)h, *end = raw_of(h) + total_of(h->offset, h->size);
  if (lo < start) lo = start;
  if (hi > end) hi = end;
  lo = (const uint8_t *)((uintptr_t)lo & ~(uintptr_t)15);
  int lines = 0;
  for (const uint8_t *a = lo; a < hi && lines < 12; a += 16, lines++) {
    line l;
    l.len = 0;
    lput(&l, "poolmalloc:     %p:", (const void *)a);
    for (int i = 0; i < 16; i++) {
      const uint8_t *b = a + i;
      if (b < start || b >= end) {
        lput(&l, "    ");
        continue;
      }
      int e = expected(h, b);
      const char *tag = b == user_of(h) ? "|" : " ";
      lput(&l, "%s%02x%s", tag, *b, e >= 0 && *b != e ? "*" : " ");
    }
    lflush(&l);
  }
  if (lines == 12 && lo + 16 * 12 < hi) SAY("  ...");
}

static void say_site(const char *what, void *site) {
  if (site == NULL) return;
  line l;
  l.len = 0;
  lput(&l, "poolmalloc:   %s ", what);
  pmi_os_write(STDERR_FILENO, l.buf, l.len);
  backtrace_symbols_fd(&site, 1, STDERR_FILENO);   /* "binary(function+offset) [address]\n" */
}

static void say_block(const dbg_hdr *h) {
  const uint8_t *raw = raw_of(h);
  size_t total = total_of(h->offset, h->size);
  if (pmi_arenamap_contains(raw)) {
    pmi_pool *pool = pmi_pool_of(pmi_arena_of(raw), raw);
    SAY("block %p: %zu bytes requested, serial %llu, %s; size class %u (%zu-byte pool block: "
        "%zu header + %zu + %zu guard)", (void *)user_of(h), h->size, (unsigned long long)h->serial,
        h->state == DBG_FREED ? "freed" : "alive", (unsigned)pool->szidx, pmi_class_size(pool->szidx),
        (size_t)h->offset, h->size, tail_len(h));
  } else {
    unsigned kind = pmi_arenamap_kind(raw);
    SAY("block %p: %zu bytes requested, serial %llu, %s; %s block (%zu bytes: "
        "%zu header + %zu + %zu guard)", (void *)user_of(h), h->size, (unsigned long long)h->serial,
        h->state == DBG_FREED ? "freed" : "alive",
        dbg_valgrind ? "mapped" : kind == PMI_REGION_MEDIUM ? "medium" : "huge", total,
        (size_t)h->offset, h->size, tail_len(h));
  }
  say_site("allocated by", h->alloc_site);
  if (h->state == DBG_FREED) say_site("freed by", h->free_site);
}

/* The return address of the current call into the allocator (the program's
 * call of free, realloc, ...), where the backtrace of a report starts. */
static __thread void *tls_site __attribute__((tls_model("initial-exec")));

static void say_backtrace(void) {
  void *frames[64];
  int n = backtrace(frames, 64), start = 0;
  for (int i = 0; i < n; i++) {
    if (frames[i] == tls_site) {
      start = i;
      break;
    }
  }
  SAY("backtrace:");
  backtrace_symbols_fd(frames + start, n - start, STDERR_FILENO);
}

static void say_head(const char *fn, const char *what, const void *p) {
  line l;
  l.len = 0;
  lput(&l, "poolmalloc: debug: %s(): %s, pointer %p", fn, what, p);
  lflush(&l);
}

/* A fault of block h: the message, the block, a dump around [lo, hi), the
 * backtrace, abort(). */
pmi_cold _Noreturn static void fault(const char *fn, const char *what, const dbg_hdr *h,
                                     const uint8_t *lo, const uint8_t *hi) {
  VG(VALGRIND_MAKE_MEM_DEFINED(raw_of(h), total_of(h->offset, h->size)));
  say_head(fn, what, user_of(h));
  say_block(h);
  SAY("bytes around it ('|' marks the first user byte, '*' a wrong byte; guards hold 0xfd, "
      "freed blocks 0xdd):");
  dump(h, lo, hi);
  say_backtrace();
  abort();
}

/* A fault about a pointer that is not (the start of) a debug block. */
pmi_cold _Noreturn static void fault_ptr(const char *fn, const char *what, const void *p, const dbg_hdr *in) {
  say_head(fn, what, p);
  if (in != NULL) {
    VG(VALGRIND_MAKE_MEM_DEFINED(in, DBG_HDR));
    SAY("it points at offset %td of this block:", (const uint8_t *)p - user_of(in));
    say_block(in);
  }
  say_backtrace();
  abort();
}

/* ---- recognising debug blocks ------------------------------------------- */

/* Whether [p, p + n) is mapped (without touching it). */
static bool mapped(const void *p, size_t n) {
  size_t page = pmi_os_page_size();
  uintptr_t lo = (uintptr_t)p & ~(page - 1), hi = ((uintptr_t)p + n + page - 1) & ~(page - 1);
  unsigned char vec[8];
  if (hi - lo > sizeof vec * page || lo == 0) return false;
  return mincore((void *)lo, hi - lo, vec) == 0;
}

static inline bool is_debug_block(const dbg_hdr *h, const void *user) {
  return h->magic == (dbg_key ^ (uintptr_t)user);
}

/* The fields a check relies on before it reads the block's bytes. */
static inline bool header_sane(const dbg_hdr *h, uint32_t state) {
  return h->state == state && h->offset >= DBG_HDR && (h->offset & (h->offset - 1)) == 0 &&
         h->offset <= ((uint32_t)1 << 30) && h->size <= PTRDIFF_MAX;
}

/* The debug block whose header lies at h, if any (h must be readable). */
static dbg_hdr *debug_block_at(dbg_hdr *h) {
  return is_debug_block(h, user_of(h)) ? h : NULL;
}

static uintptr_t dbg_stack_top;   /* pmi_debug_init: near the main thread's stack top */

enum kind { K_OURS, K_FOREIGN, K_STACK, K_INSIDE, K_HEADER, K_WILD };

/* What p is.  K_OURS: a debug block, *out its header.  K_FOREIGN: a live
 * block that is not a debug block, for the core.  K_INSIDE: p points into
 * debug block *out.  K_HEADER: p is where a debug block's user bytes would
 * start but the header is damaged.  K_STACK, K_WILD: not from malloc. */
static enum kind classify(const void *p, dbg_hdr **out) {
  uintptr_t a = (uintptr_t)p;
  *out = NULL;
  if (pmi_arenamap_contains(p)) {
    if ((a & (PMI_ARENA_SIZE - 1)) < PMI_POOL_SIZE) return K_WILD;   /* the arena's header page */
    dbg_hdr *h = hdr_of(p);
    if ((a & 15) == 0 && is_debug_block(h, p)) {
      *out = h;
      return K_OURS;
    }
    pmi_pool *pool = pmi_pool_of(pmi_arena_of(p), p);
    if (pool->state != PMI_POOL_USED && pool->state != PMI_POOL_FULL) return K_WILD;
    size_t bs = pmi_class_size(pool->szidx);
    uintptr_t base = a & ~(uintptr_t)(PMI_POOL_SIZE - 1);
    uintptr_t blk = base + (a - base) / bs * bs;
    if (blk + bs > base + PMI_POOL_SIZE) return K_WILD;              /* the pool's tail */
    dbg_hdr *bh = debug_block_at((dbg_hdr *)blk);
    if (bh != NULL) {
      *out = bh;
      return K_INSIDE;
    }
    if (a == blk + DBG_HDR) return K_HEADER;
    if (a == blk) return K_FOREIGN;     /* a block from before debug mode; the core checks it */
    return K_WILD;
  }
  if (a < DBG_HDR || (a & 15) != 0 || !mapped((const void *)(a - DBG_HDR), DBG_HDR)) return K_WILD;
  dbg_hdr *h = hdr_of(p);
  if (is_debug_block(h, p)) {
    *out = h;
    return K_OURS;
  }
  /* On the main thread's stack (between here and its top)?  Other threads'
   * stacks are not recognised: finding their bounds would allocate. */
  uintptr_t here = (uintptr_t)__builtin_frame_address(0), top = dbg_stack_top;
  if (here < top && top - here < ((uintptr_t)1 << 30) && a >= here && a < top + (1u << 20) &&
      pmi_os_thread_id() == (long)pmi_sys_getpid())
    return K_STACK;
  /* Under memcheck the C library's malloc is valgrind's, which checks its
   * own frees. */
  if (dbg_valgrind) return K_FOREIGN;
  if (pmi_arenamap_kind(p) != PMI_REGION_NONE) return K_FOREIGN;   /* medium or huge: the core checks it */
  /* Is it where the C library's malloc puts its blocks (libc.c)? */
  return pmi_libc_owns(p) ? K_FOREIGN : K_WILD;
}

/* ---- allocation ----------------------------------------------------------- */

/* A debug block of n bytes aligned to align (a power of two), or NULL. */
static void *dbg_alloc(size_t n, size_t align, bool zero, void *site) {
  if (n > PTRDIFF_MAX - 2 * align - 1024) {
    errno = ENOMEM;
    return NULL;
  }
  size_t offset = align > DBG_HDR ? align : DBG_HDR;
  size_t total = total_of(offset, n);
  uint8_t *raw;
  VG_ENTER();
  if (dbg_valgrind && (total > PMI_SMALL_MAX || align > PMI_ALIGNMENT)) {
    size_t page = pmi_os_page_size();
    raw = align <= page ? pmi_os_map(page_round(total)) : pmi_os_map_aligned(page_round(total), align, NULL);
    if (raw == NULL) errno = ENOMEM;
  } else if (align <= PMI_ALIGNMENT) {
    raw = pmi_malloc(total);
  } else {
    raw = pmi_memalign(align, total);
  }
  if (raw == NULL) {
    VG_LEAVE();
    return NULL;
  }
  VG(VALGRIND_MAKE_MEM_UNDEFINED(raw, total));
  uint8_t *user = raw + offset;
  dbg_hdr *h = hdr_of(user);
  h->magic = dbg_key ^ (uintptr_t)user;
  h->size = n;
  h->serial = atomic_fetch_add_explicit(&dbg_serial, 1, memory_order_relaxed) + 1;
  h->state = DBG_ALIVE;
  h->offset = (uint32_t)offset;
  h->alloc_site = site;
  h->free_site = NULL;
  memset(h->front, DBG_GUARD, DBG_FRONT);
  memset(user, zero ? 0 : DBG_NEW, n);
  memset(user + n, DBG_GUARD, total - offset - n);
  VG(VALGRIND_MAKE_MEM_NOACCESS(raw, total));
  VG(VALGRIND_MALLOCLIKE_BLOCK(user, n, 0, zero));
  VG_LEAVE();
  return user;
}

/* Gives a debug block's memory back to the core. */
static void dbg_release(dbg_hdr *h) {
  uint8_t *raw = raw_of(h);
  size_t total = total_of(h->offset, h->size);
  h->magic = 0;
  if (dbg_valgrind && !pmi_arenamap_contains(raw)) {
    pmi_os_unmap(raw, page_round(total));
    return;
  }
  /* Addressable again: the core writes its free-list link into the block,
   * and reads it later from any thread (a thread's exit collects the frees
   * other threads made of its blocks), outside these entry points. */
  VG(VALGRIND_MAKE_MEM_UNDEFINED(raw, total));
  pmi_free(raw);              /* a pool block, or one of the large path */
}

/* Checks the guards of a block; at free, realloc and in the quarantine. */
static void check_guards(const char *fn, dbg_hdr *h) {
  const uint8_t *user = user_of(h);
  for (unsigned i = 0; i < DBG_FRONT; i++) {
    if (h->front[i] != DBG_GUARD) {
      char what[128];
      pmi_os_fmt(what, sizeof what, "the guard before the block is damaged (a write before its start, "
                 "at offset -%u)", DBG_FRONT - i);
      fault(fn, what, h, user - DBG_HDR, user + 32);
    }
  }
  size_t t = tail_len(h);
  for (size_t i = 0; i < t; i++) {
    if (user[h->size + i] != DBG_GUARD) {
      char what[160];
      pmi_os_fmt(what, sizeof what, "the guard after the block is damaged (a write past its end, "
                 "at offset %zu of a %zu-byte block)", h->size + i, h->size);
      fault(fn, what, h, user + h->size + i - 32, user + h->size + t);
    }
  }
}

/* ---- the quarantine --------------------------------------------------------- */

#define Q_MAX   1024u
#define Q_BYTES ((size_t)4 << 20)

static _Atomic int q_lock;   /* core/lock.c's spin lock */
static dbg_hdr *q_ring[Q_MAX];
static size_t q_size[Q_MAX];
static unsigned q_head, q_count;
static size_t q_bytes;

/* Checks a block of the quarantine: freed, guards intact, every byte 0xDD. */
static void check_freed(const char *fn, dbg_hdr *h, size_t size) {
  const uint8_t *user = user_of(h);
  VG(VALGRIND_MAKE_MEM_DEFINED(h, DBG_HDR));
  if (!header_sane(h, DBG_FREED) || h->size != size || !is_debug_block(h, user)) {
    say_head(fn, "write after free: the header of a freed block was overwritten", user);
    SAY("block %p: %zu bytes requested; its header now reads:", (void *)user, size);
    for (int i = 0; i < 4; i++) {
      const uint8_t *a = (const uint8_t *)h + 16 * i;
      SAY("  %p: %02x %02x %02x %02x %02x %02x %02x %02x  %02x %02x %02x %02x %02x %02x %02x %02x", (const void *)a,
          a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12], a[13], a[14], a[15]);
    }
    say_backtrace();
    abort();
  }
  VG(VALGRIND_MAKE_MEM_DEFINED(raw_of(h), total_of(h->offset, h->size)));
  size_t i = 0;
  for (; i + 8 <= h->size; i += 8) {        /* the common case, a word at a time */
    uint64_t w;
    memcpy(&w, user + i, 8);
    if (w != 0xDDDDDDDDDDDDDDDDull) break;
  }
  for (; i < h->size; i++) {
    if (user[i] != DBG_DEAD) {
      size_t last = i, nbad = 0;
      for (size_t j = i; j < h->size; j++)
        if (user[j] != DBG_DEAD) nbad++, last = j;
      char what[200];
      pmi_os_fmt(what, sizeof what, "write after free: %zu byte%s of the freed block modified, "
                 "at offsets %zu..%zu of %zu (found when the quarantine checked it)",
                 nbad, nbad == 1 ? "" : "s", i, last, h->size);
      fault(fn, what, h, user + i - 32, user + last + 33);
    }
  }
  check_guards(fn, h);
}

static dbg_hdr *q_pop_locked(void) {
  dbg_hdr *h = q_ring[q_head];
  q_bytes -= q_size[q_head];
  q_head = (q_head + 1) % Q_MAX;
  q_count--;
  return h;
}

static void q_push(dbg_hdr *h, size_t n) {
  for (;;) {
    pmi_spin_lock(&q_lock);
    if (q_count == 0 || (q_count < Q_MAX && q_bytes + n <= Q_BYTES)) {
      unsigned i = (q_head + q_count) % Q_MAX;
      q_ring[i] = h;
      q_size[i] = n;
      q_count++;
      q_bytes += n;
      pmi_spin_unlock(&q_lock);
      return;
    }
    size_t old_size = q_size[q_head];
    dbg_hdr *old = q_pop_locked();
    pmi_spin_unlock(&q_lock);
    check_freed("free", old, old_size);
    dbg_release(old);
  }
}

void pmi_debug_collect(void) {
  tls_site = NULL;
  VG_ENTER();
  for (;;) {
    pmi_spin_lock(&q_lock);
    size_t size = q_size[q_head];
    dbg_hdr *h = q_count ? q_pop_locked() : NULL;
    pmi_spin_unlock(&q_lock);
    if (h == NULL) break;
    check_freed("pm_collect", h, size);
    dbg_release(h);
  }
  VG_LEAVE();
}

/* ---- the entry points ------------------------------------------------------ */

static void dbg_free(const char *fn, void *p, void *site) {
  if (p == NULL) return;
  dbg_hdr *h;
  switch (classify(p, &h)) {
  case K_OURS:
    break;
  case K_FOREIGN:
    pmi_free(p);
    return;
  case K_INSIDE:
    fault_ptr(fn, "invalid pointer: not the start of a block (it points inside one)", p, h);
  case K_HEADER:
    fault_ptr(fn, "invalid pointer, or a block whose header was overwritten (a write before its start)", p, NULL);
  case K_STACK:
    fault_ptr(fn, "invalid pointer: not from malloc (an address on the stack)", p, NULL);
  case K_WILD:
  default:
    fault_ptr(fn, "invalid pointer: not a block from malloc", p, NULL);
  }
  uint8_t *user = p;
  VG(VALGRIND_MAKE_MEM_DEFINED(h, DBG_HDR));
  if (h->state == DBG_FREED) fault(fn, "double free: the block was already freed", h, (uint8_t *)h, user + 32);
  if (!header_sane(h, DBG_ALIVE))
    fault_ptr(fn, "the header of the block is damaged (a write before its start)", p, NULL);
  VG(VALGRIND_MAKE_MEM_DEFINED(user + h->size, tail_len(h)));
  check_guards(fn, h);
  VG(VALGRIND_MAKE_MEM_DEFINED(user, h->size));
  memset(user, DBG_DEAD, h->size);
  h->state = DBG_FREED;
  h->free_site = site;
  size_t n = h->size;
  VG(VALGRIND_FREELIKE_BLOCK(user, 0));
  VG(VALGRIND_MAKE_MEM_NOACCESS(raw_of(h), total_of(h->offset, n)));
  q_push(h, n);
}

pmi_noinline static void free_slow(void *p, void *site) {
  if (!dbg_blocks) {
    pmi_profile_free_sampled(p);
    return;
  }
  pmi_profile_free(p);
  tls_site = site;
  VG_ENTER();
  dbg_free("free", p, tls_site);
  VG_LEAVE();
}

/* malloc and free are the profiler's hot paths: with the profiler alone,
 * the count-down or the filter, and a jump to the core.  Debug mode keeps
 * both tests failing (pmi_profile_pin), and lives in the slow paths. */
void pmi_debug_free(void *p) {
  if (pmi_unlikely(pmi_profile_maybe_sampled(p))) free_slow(p, __builtin_return_address(0));
  else pmi_free(p);
}

pmi_noinline static void *malloc_slow(size_t size, void *site) {
  if (!dbg_blocks) return pmi_profile_malloc_sampled(size, site);
  void *p = dbg_alloc(size, PMI_ALIGNMENT, false, site);
  pmi_profile_sample(p, size, site);
  return p;
}

void *pmi_debug_malloc(size_t size) {
  if (pmi_likely(!pmi_profile_sampled(size))) return pmi_malloc(size);
  return malloc_slow(size, __builtin_return_address(0));
}

void *pmi_debug_calloc(size_t n, size_t size) {
  void *site = __builtin_return_address(0);
  size_t total;
  if (__builtin_mul_overflow(n, size, &total)) {
    errno = ENOMEM;
    return NULL;
  }
  void *p = dbg_blocks ? dbg_alloc(total, PMI_ALIGNMENT, true, site) : pmi_calloc(total);
  pmi_profile_malloc(p, total, site);
  return p;
}

void *pmi_debug_memalign(size_t alignment, size_t size) {
  void *site = __builtin_return_address(0);
  void *p;
  if (!dbg_blocks) {
    p = pmi_memalign(alignment, size);
  } else {
    if (alignment < PMI_ALIGNMENT) alignment = PMI_ALIGNMENT;
    if (alignment > ((size_t)1 << 30)) {
      errno = ENOMEM;
      return NULL;
    }
    p = dbg_alloc(size, alignment, false, site);
  }
  pmi_profile_malloc(p, size, site);
  return p;
}

static void *dbg_realloc(void *p, size_t size, void *site);

/* For the profiler, realloc is a free of the old block and an allocation of
 * the new one (sampled afresh: a sample keeps the chance its size gives it).
 * The old block leaves the live set before the core may hand its address
 * to another thread, and comes back if the realloc fails. */
void *pmi_debug_realloc(void *p, size_t size) {
  void *site = __builtin_return_address(0);
  pmi_sample old;
  bool sampled = pmi_profile_maybe_sampled(p) && pmi_profile_take(p, &old);
  void *q = dbg_blocks ? dbg_realloc(p, size, site) : pmi_realloc(p, size);
  if (q != NULL) pmi_profile_malloc(q, size, site);
  else if (sampled && size != 0) pmi_profile_put(&old);
  return q;
}

static void *dbg_realloc(void *p, size_t size, void *site) {
  tls_site = site;
  if (p == NULL) return dbg_alloc(size, PMI_ALIGNMENT, false, site);
  if (size == 0) {            /* glibc: frees the block and returns NULL */
    VG_ENTER();
    dbg_free("realloc", p, site);
    VG_LEAVE();
    return NULL;
  }
  VG_ENTER();
  dbg_hdr *h;
  size_t old;
  switch (classify(p, &h)) {
  case K_OURS:
    VG(VALGRIND_MAKE_MEM_DEFINED(h, DBG_HDR));
    if (h->state == DBG_FREED)
      fault("realloc", "realloc of a freed block", h, (uint8_t *)h, (uint8_t *)p + 32);
    if (!header_sane(h, DBG_ALIVE))
      fault_ptr("realloc", "the header of the block is damaged (a write before its start)", p, NULL);
    VG(VALGRIND_MAKE_MEM_DEFINED((uint8_t *)p + h->size, tail_len(h)));
    check_guards("realloc", h);
    VG(VALGRIND_MAKE_MEM_NOACCESS((uint8_t *)p + h->size, tail_len(h)));
    old = h->size;
    break;
  case K_FOREIGN:
    old = pmi_usable_size(p);
    break;
  case K_INSIDE:
    fault_ptr("realloc", "invalid pointer: not the start of a block (it points inside one)", p, h);
  case K_HEADER:
    fault_ptr("realloc", "invalid pointer, or a block whose header was overwritten", p, NULL);
  case K_STACK:
    fault_ptr("realloc", "invalid pointer: not from malloc (an address on the stack)", p, NULL);
  case K_WILD:
  default:
    fault_ptr("realloc", "invalid pointer: not a block from malloc", p, NULL);
  }
  VG_LEAVE();
  void *q = dbg_alloc(size, PMI_ALIGNMENT, false, site);
  if (q == NULL) return NULL;                 /* p stays valid */
  memcpy(q, p, old < size ? old : size);
  VG_ENTER();
  dbg_free("realloc", p, site);
  VG_LEAVE();
  return q;
}

size_t pmi_debug_usable_size(void *p) {
  if (!dbg_blocks) return pmi_usable_size(p);
  if (p == NULL) return 0;
  tls_site = __builtin_return_address(0);
  VG_ENTER();
  dbg_hdr *h;
  size_t n = 0;
  switch (classify(p, &h)) {
  case K_OURS:
    VG(VALGRIND_MAKE_MEM_DEFINED(h, DBG_HDR));
    if (h->state == DBG_FREED)
      fault("malloc_usable_size", "the block is not alive (it was freed)", h, (uint8_t *)h, (uint8_t *)p + 16);
    if (!header_sane(h, DBG_ALIVE))
      fault_ptr("malloc_usable_size", "the header of the block is damaged (a write before its start)", p, NULL);
    n = h->size;
    VG(VALGRIND_MAKE_MEM_NOACCESS(h, DBG_HDR));
    break;
  case K_FOREIGN:
    n = pmi_usable_size(p);
    break;
  default:
    fault_ptr("malloc_usable_size", "invalid pointer: not a block from malloc", p, h);
  }
  VG_LEAVE();
  return n;
}

/* ---- start-up, fork, exit ----------------------------------------------------- */

const char *pmi_debug_mode_name(void) {
  if (!dbg_blocks) return "off";
  return dbg_valgrind ? (dbg_fill ? "on+valgrind" : "valgrind") : "on";
}

pmi_startup void pmi_debug_init(void) {
  /* Nothing is written unless a mode is on: these variables share .bss
   * pages with nothing else start-up writes, and a page written is a page
   * resident in every process (README, start-up). */
  int fill = pmi_option(debug) != 0, valgrind = 0;
#if PMI_HAVE_VALGRIND
  /* Memcheck only: it answers a client request that other tools (callgrind,
   * massif, ...) ignore, so that those see poolmalloc as it normally runs. */
  if (RUNNING_ON_VALGRIND) {
    int probe = 0;
    valgrind = (long)VALGRIND_MAKE_MEM_DEFINED(&probe, sizeof probe) == -1;
  }
#endif
  if (fill || valgrind) {
    /* Near the top of the main thread's stack: start-up runs there (the
     * constructors, or the first malloc), a few frames below where the C
     * library's __libc_stack_end points; the 1 MiB of slack above covers
     * the difference (that variable, imported, would be looked up by the
     * dynamic loader at every program's start). */
    dbg_stack_top = (uintptr_t)__builtin_frame_address(0);
    dbg_fill = fill;
    dbg_valgrind = valgrind;
    dbg_key = (uintptr_t)(pmi_os_random() * 0xD6E8FEB86659FD93ull) | 1;
    dbg_blocks = 1;
    pmi_profile_pin();
    pmi_profile_pin_filter();
  }
  if (dbg_blocks || pmi_option(profile) != 0) pmi_debug_active = 1;
}

/* fork.c takes the quarantine's lock first, in every mode (it is the one
 * that says which thread is forking). */
void pmi_debug_fork_prepare(void) { pmi_spin_fork_take(&q_lock); }
void pmi_debug_fork_parent(void) { pmi_spin_fork_give(&q_lock); }
void pmi_debug_fork_child(void) { atomic_store(&q_lock, PMI_LOCK_FREE); }

/* After pmi_process_init (constructor 101): everything may allocate now. */
__attribute__((constructor(102))) static void debug_start(void) {
  if (!dbg_blocks) return;
  /* The first backtrace() loads libgcc_s (and allocates): now, not in a report. */
  void *frames[2];
  backtrace(frames, 2);
}

/* At exit, the blocks still in the quarantine are checked (not freed). */
__attribute__((destructor(101))) static void debug_end(void) {
  if (!dbg_blocks) return;
  tls_site = NULL;
  VG_ENTER();
  pmi_spin_lock(&q_lock);
  for (unsigned i = 0; i < q_count; i++) {
    dbg_hdr *h = q_ring[(q_head + i) % Q_MAX];
    check_freed("exit", h, q_size[(q_head + i) % Q_MAX]);
    VG(VALGRIND_MAKE_MEM_NOACCESS(raw_of(h), total_of(h->offset, h->size)));
  }
  pmi_spin_unlock(&q_lock);
  VG_LEAVE();
}
