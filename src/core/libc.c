/* libc.c: blocks the C library's malloc handed out itself, before poolmalloc
 * was loaded or through __libc_malloc.  They are in none of poolmalloc's
 * regions (the arena map says 0), and are freed, resized and sized by the C
 * library, reached through the __libc_* names glibc exports for exactly this
 * purpose (never through malloc itself, which is ours). */
#include <dlfcn.h>
#include <malloc.h>
#include <string.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/internal.h"

extern void *__libc_realloc(void *p, size_t size);
extern void  __libc_free(void *p);

/* glibc has no __libc_ name for these; found with RTLD_NEXT at init (our
 * own malloc_usable_size and malloc_trim come first in the search order). */
static size_t (*libc_usable_size)(void *);
static int (*libc_trim)(size_t);
static struct mallinfo2 (*libc_mallinfo2)(void);
static int (*libc_mallopt)(int, int);

void pmi_libc_init(void) {
  libc_usable_size = (size_t (*)(void *))dlsym(RTLD_NEXT, "malloc_usable_size");
  libc_trim = (int (*)(size_t))dlsym(RTLD_NEXT, "malloc_trim");
  libc_mallinfo2 = (struct mallinfo2 (*)(void))dlsym(RTLD_NEXT, "mallinfo2");
  libc_mallopt = (int (*)(int, int))dlsym(RTLD_NEXT, "mallopt");
}

/* The usable size of a block glibc handed out and has not freed, read from
 * its chunk header as glibc's own malloc_usable_size does (glibc 2.26+
 * without memory tagging), for calls before init. */
static size_t chunk_usable(const void *p) {
  size_t head = ((const size_t *)p)[-1];
  return (head & ~(size_t)7) - ((head & 2) ? 2 : 1) * sizeof(size_t);
}

void pmi_libc_free(void *p) { __libc_free(p); }   /* glibc's free keeps errno (2.33+) */
void *pmi_libc_realloc(void *p, size_t size) { return __libc_realloc(p, size); }

size_t pmi_libc_usable_size(void *p) {
  if (p == NULL) return 0;
  if (libc_usable_size != NULL) return libc_usable_size(p);
  return chunk_usable(p);
}

/* Could mem be a block of the C library's malloc?  The checks glibc's own
 * free makes before it aborts ("free(): invalid pointer", "invalid size",
 * "munmap_chunk(): invalid pointer"), made first so that the report names
 * the pointer.  It reads the word before mem, as glibc's free would. */
bool pmi_libc_owns(const void *mem) {
  if (((uintptr_t)mem & (PMI_ALIGNMENT - 1)) != 0) return false;
  const size_t *h = mem;
  size_t head = h[-1], size = head & ~(size_t)7;
  uintptr_t chunk = (uintptr_t)mem - 2 * sizeof(size_t);
  if (size < 4 * sizeof(size_t) || (size & 15) != 0 || chunk > UINTPTR_MAX - size) return false;
  if (head & 2) {   /* mmapped: it and its size are whole pages */
    size_t prev = h[-2];
    if ((((chunk - prev) | (prev + size)) & (pmi_os_page_size() - 1)) != 0) return false;
  }
  return true;
}

int pmi_libc_trim(size_t pad) { return libc_trim != NULL ? libc_trim(pad) : 0; }

struct mallinfo2 pmi_libc_mallinfo2(void) {
  struct mallinfo2 mi;
  if (libc_mallinfo2 != NULL) return libc_mallinfo2();
  memset(&mi, 0, sizeof mi);
  return mi;
}

int pmi_libc_mallopt(int param, int value) { return libc_mallopt != NULL ? libc_mallopt(param, value) : 0; }
