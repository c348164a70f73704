/* large.c: the large-object path, for requests above 512 bytes and
 * alignments the pools do not give.  Today it is the C library's own malloc,
 * reached through the __libc_* names glibc exports for exactly this purpose
 * (never through malloc itself, which is ours).  Everything large goes
 * through these functions, so another implementation can replace this file
 * without touching the rest. */
#include <dlfcn.h>
#include <malloc.h>
#include <string.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/internal.h"

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t size);
extern void *__libc_memalign(size_t alignment, size_t size);
extern void  __libc_free(void *p);

/* glibc has no __libc_ name for these two; found with RTLD_NEXT at init (our
 * own malloc_usable_size and malloc_trim come first in the search order). */
static size_t (*libc_usable_size)(void *);
static int (*libc_trim)(size_t);
static struct mallinfo2 (*libc_mallinfo2)(void);
static int (*libc_mallopt)(int, int);

void pmi_large_init(void) {
  libc_usable_size = (size_t (*)(void *))dlsym(RTLD_NEXT, "malloc_usable_size");
  libc_trim = (int (*)(size_t))dlsym(RTLD_NEXT, "malloc_trim");
  libc_mallinfo2 = (struct mallinfo2 (*)(void))dlsym(RTLD_NEXT, "mallinfo2");
  libc_mallopt = (int (*)(int, int))dlsym(RTLD_NEXT, "mallopt");
}

/* ---- accounting ---------------------------------------------------------- *
 * Live large blocks and bytes are counted per heap without atomics; the bytes
 * are also pushed into a process-wide total, in batches of LARGE_FLUSH, so
 * that the peak is known (to within a batch per thread) at the cost of one
 * atomic add per LARGE_FLUSH bytes, not one per call.  Blocks the C library
 * handed out before poolmalloc was loaded are counted when freed, so a live
 * figure may dip below zero; reports clamp it. */
#define LARGE_FLUSH ((int64_t)256 * 1024)
static _Atomic int64_t large_bytes_total, large_bytes_peak;

static void large_flush(int64_t delta) {
  int64_t now = atomic_fetch_add_explicit(&large_bytes_total, delta, memory_order_relaxed) + delta;
  int64_t peak = atomic_load_explicit(&large_bytes_peak, memory_order_relaxed);
  while (now > peak && !atomic_compare_exchange_weak(&large_bytes_peak, &peak, now)) {}
}

/* The usable size of a block glibc handed out and has not freed, read from
 * its chunk header as glibc's own malloc_usable_size does (glibc 2.26+
 * without memory tagging): the chunk size with three flag bits, less one
 * word of header, or two for an mmapped chunk, which cannot borrow the next
 * chunk's first word.  Inline, because the accounting needs it on every
 * large malloc and free. */
static inline size_t chunk_usable(const void *p) {
  size_t head = ((const size_t *)p)[-1];
  return (head & ~(size_t)7) - ((head & 2) ? 2 : 1) * sizeof(size_t);
}

static void *large_account(void *p, int sign) {
  if (p == NULL) return NULL;
  int64_t bytes = sign * (int64_t)chunk_usable(p);
  pmi_heap *heap = pmi_heap_tls;
  if (heap == &pmi_heap_empty) {
    large_flush(bytes);
    return p;
  }
  if (sign > 0) heap->counters.malloc_large++;
  else heap->counters.free_large++;
  heap->counters.large_live += sign;
  heap->counters.large_live_bytes += bytes;
  heap->counters.large_pending += bytes;
  if (heap->counters.large_pending >= LARGE_FLUSH || heap->counters.large_pending <= -LARGE_FLUSH) {
    large_flush(heap->counters.large_pending);
    heap->counters.large_pending = 0;
  }
  return p;
}

void pmi_large_peak(int64_t *bytes_now, int64_t *bytes_peak) {
  *bytes_now = atomic_load(&large_bytes_total);
  *bytes_peak = atomic_load(&large_bytes_peak);
}

void *pmi_large_malloc(size_t size) { return large_account(__libc_malloc(size), 1); }
void *pmi_large_calloc(size_t n, size_t size) { return large_account(__libc_calloc(n, size), 1); }
void *pmi_large_memalign(size_t alignment, size_t size) { return large_account(__libc_memalign(alignment, size), 1); }

void pmi_large_free(void *p) {
  if (p == NULL) return;
  large_account(p, -1);
  __libc_free(p);
}

void *pmi_large_realloc(void *p, size_t size) {
  size_t old = chunk_usable(p);
  void *q = __libc_realloc(p, size);
  if (q == NULL) return NULL;
  int64_t delta = (int64_t)chunk_usable(q) - (int64_t)old;
  pmi_heap *heap = pmi_heap_tls;
  if (heap == &pmi_heap_empty) {
    large_flush(delta);
  } else {
    heap->counters.large_live_bytes += delta;
    heap->counters.large_pending += delta;
  }
  return q;
}

size_t pmi_large_usable_size(void *p) {
  if (p == NULL) return 0;
  if (libc_usable_size != NULL) return libc_usable_size(p);
  return chunk_usable(p);   /* before init */
}

int pmi_large_trim(size_t pad) { return libc_trim != NULL ? libc_trim(pad) : 0; }

struct mallinfo2 pmi_large_mallinfo2(void) {
  struct mallinfo2 mi;
  if (libc_mallinfo2 != NULL) return libc_mallinfo2();
  memset(&mi, 0, sizeof mi);
  return mi;
}

int pmi_large_mallopt(int param, int value) { return libc_mallopt != NULL ? libc_mallopt(param, value) : 0; }
