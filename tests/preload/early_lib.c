/* early_lib.c: a library whose constructor runs before poolmalloc's (it is
 * linked after it, and constructors run in reverse order) and allocates
 * blocks of every size malloc's fast path serves, as libselinux's does
 * (its constructor reads a file through stdio): these calls reach the
 * allocator before its initialisation has run.  Each block is filled with
 * a tag of its own; early_check() (called from main) verifies that no two
 * blocks overlapped, frees them and returns the number of blocks. */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAXBLOCKS = 2048 };
static unsigned char *blocks[MAXBLOCKS];
static size_t sizes[MAXBLOCKS];
static int nblocks;

static void fail(const char *what, size_t n) {
  fprintf(stderr, "early_lib: %s (size %zu)\n", what, n);
  abort();
}

static void keep(void *p, size_t n) {
  if (p == NULL) fail("allocation failed", n);
  if (((uintptr_t)p & 15) != 0) fail("block not 16-byte aligned", n);
  if (malloc_usable_size(p) < n) fail("usable size below the request", n);
  unsigned char tag = (unsigned char)(nblocks * 7 + 1);
  memset(p, tag, n);
  blocks[nblocks] = p;
  sizes[nblocks++] = n;
}

/* Sizes 1 .. 512 in steps of 15 (every pool class, at varying offsets in
 * it), then the medium classes' range in steps of an eighth, a huge block,
 * calloc, and the aligned entry points. */
__attribute__((constructor)) static void early_allocate(void) {
  for (size_t n = 1; n <= 512; n += 15) keep(malloc(n), n);
  for (size_t n = 513; n <= 140000; n += n / 8) keep(malloc(n), n);
  keep(malloc(3u << 20), 3u << 20);
  for (size_t n = 1; n <= 4096; n = n * 2 + 1) keep(calloc(1, n), n);
  for (size_t a = 16; a <= 4096; a *= 4) keep(aligned_alloc(a, a), a);
  void *p = NULL;
  if (posix_memalign(&p, 64, 700) != 0) fail("posix_memalign failed", 700);
  keep(p, 700);
  /* a block freed and allocated again before the allocator's start-up */
  free(malloc(48));
  keep(malloc(48), 48);
}

int early_check(void) {
  for (int i = 0; i < nblocks; i++) {
    unsigned char tag = (unsigned char)(i * 7 + 1);
    for (size_t k = 0; k < sizes[i]; k++)
      if (blocks[i][k] != tag) fail("a block was overwritten: two blocks overlapped", sizes[i]);
  }
  int n = nblocks;
  for (int i = 0; i < nblocks; i++) free(blocks[i]);
  nblocks = 0;
  return n;
}
