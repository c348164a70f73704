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

#include "internal.h"

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

void *pmi_large_malloc(size_t size) { return __libc_malloc(size); }
void *pmi_large_calloc(size_t n, size_t size) { return __libc_calloc(n, size); }
void *pmi_large_realloc(void *p, size_t size) { return __libc_realloc(p, size); }
void *pmi_large_memalign(size_t alignment, size_t size) { return __libc_memalign(alignment, size); }
void  pmi_large_free(void *p) { __libc_free(p); }

size_t pmi_large_usable_size(void *p) {
  if (p == NULL) return 0;
  if (libc_usable_size != NULL) return libc_usable_size(p);
  /* Before init: glibc's chunk header holds the size with three flag bits;
   * an mmapped chunk (bit 1) has no next-chunk word to lend. */
  size_t head = ((size_t *)p)[-1];
  return (head & ~(size_t)7) - ((head & 2) ? 2 : 1) * sizeof(size_t);
}

int pmi_large_trim(size_t pad) { return libc_trim != NULL ? libc_trim(pad) : 0; }

struct mallinfo2 pmi_large_mallinfo2(void) {
  struct mallinfo2 mi;
  if (libc_mallinfo2 != NULL) return libc_mallinfo2();
  memset(&mi, 0, sizeof mi);
  return mi;
}

int pmi_large_mallopt(int param, int value) { return libc_mallopt != NULL ? libc_mallopt(param, value) : 0; }
