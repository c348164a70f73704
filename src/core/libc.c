/* libc.c: where the C library's malloc allocates.  A pointer in none of
 * poolmalloc's regions is handed to glibc only if it lies where glibc puts
 * blocks and its chunk header fits; anything else (a stack or static
 * address, a pointer into the middle of some mapping, one past the end of
 * everything) is reported, never passed on for glibc to misread or to
 * accept.  The answer comes without reading memory that may be unmapped:
 *
 *   main heap     [start_brk, current break): the kernel's start_brk (read
 *                 once from /proc/self/stat; under valgrind, whose break is
 *                 emulated, the break at start-up) and glibc's __curbrk.  Every byte
 *                 of it is mapped, so the header before p may be read.
 *   thread arena  glibc's other arenas live in heaps of HEAP_MAX bytes,
 *                 aligned to HEAP_MAX, each starting with a heap_info (its
 *                 arena, the previous heap, the bytes in use).  The page
 *                 of the heap_info is checked to be mapped (mincore), once
 *                 per heap that holds its arena (such a heap is never
 *                 unmapped), every time for the others.
 *   mmapped chunk one mapping per block, the header in the block's first
 *                 page: that page and the mapping's first and last pages are
 *                 checked to be mapped.
 *
 * The chunk header is then held to what glibc's free checks (size, flags,
 * alignment) and the chunk must fit inside its region.
 *
 * The blocks it owns are freed, resized and sized by the C library itself,
 * reached through the __libc_* names glibc exports for exactly this purpose
 * (never through malloc itself, which is ours); nothing above 512 bytes is
 * allocated there any more (medium.c, huge.c). */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <string.h>
#include <unistd.h>

#include "base/text.h"
#include "core/internal.h"

#define CHUNK_MMAPPED    ((size_t)2)
#define CHUNK_NON_MAIN   ((size_t)4)
#define CHUNK_FLAGS      ((size_t)7)
#define CHUNK_MIN        (4 * sizeof(size_t))
#define HEAP_MAX         ((uintptr_t)64 << 20)     /* glibc's HEAP_MAX_SIZE on 64-bit */

/* glibc's heap_info, the fields we read */
typedef struct libc_heap_info {
  void *ar_ptr;                 /* its arena */
  struct libc_heap_info *prev;  /* the arena's previous heap */
  size_t size;                  /* bytes of the heap in use (mapped read-write) */
} libc_heap_info;

/* glibc's current break: sbrk(0) returns its __curbrk (a call, not a read
 * of the variable, which as an imported variable would be looked up by the
 * dynamic loader at every program's start, not at the first call). */
static uintptr_t current_break(void) {
  void *b = sbrk(0);
  return b == (void *)-1 ? 0 : (uintptr_t)b;
}
static _Atomic uintptr_t heap_start = UINTPTR_MAX;   /* where the main heap starts, once known */
static uintptr_t brk_at_init pmi_startup_data;   /* the break when poolmalloc started (written at start-up: .data) */


/* Field 47 of /proc/self/stat (proc(5)), read into a stack buffer. */
static uintptr_t read_start_brk(void) {
  char buf[1024];
  int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 1;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 1;
  buf[n] = '\0';
  char *s = (char *)pmi_text_last(buf, ')');   /* the command name may hold spaces */
  if (s == NULL) return 1;
  unsigned field = 2;
  uintptr_t value = 0;
  for (s++; *s != '\0'; s++) {
    if (*s == ' ') {
      if (field == 47) break;
      field++;
      value = 0;
    } else if (field == 47 && *s >= '0' && *s <= '9') {
      value = value * 10 + (uintptr_t)(*s - '0');
    }
  }
  return field == 47 && value != 0 ? value : 1;
}

/* The main heap's bounds now. */
static void main_heap(uintptr_t *start, uintptr_t *end) {
  uintptr_t s = atomic_load_explicit(&heap_start, memory_order_relaxed);
  if (pmi_unlikely(s == UINTPTR_MAX)) {
    /* The kernel's start_brk, unless the break we saw at start-up is not
     * above it in mapped memory: under valgrind the break is emulated
     * elsewhere, and then the break at start-up is the heap's start (glibc
     * allocates little before poolmalloc starts, and that little from the
     * same emulated heap, above it, or from nothing). */
    s = read_start_brk();
    uintptr_t init = brk_at_init != (uintptr_t)-1 ? brk_at_init : 0;
    if (init > 1 && (s <= 1 || s > init || (s < init && !pmi_os_mapped((const void *)s, 1)))) s = init;
    if (s <= 1) s = UINTPTR_MAX - 1;   /* unknown: no main heap */
    atomic_store_explicit(&heap_start, s, memory_order_relaxed);
  }
  *start = s;
  *end = current_break();
}

/* Heaps that hold their arena (the first of each arena), known mapped. */
#define KNOWN_HEAPS 64
static _Atomic uintptr_t known_heaps[KNOWN_HEAPS];

static bool heap_known(uintptr_t base) {
  for (unsigned i = 0; i < KNOWN_HEAPS; i++) {
    uintptr_t k = atomic_load_explicit(&known_heaps[i], memory_order_relaxed);
    if (k == base) return true;
    if (k == 0) break;
  }
  return false;
}

static void heap_remember(uintptr_t base) {
  for (unsigned i = 0; i < KNOWN_HEAPS; i++) {
    uintptr_t k = 0;
    if (atomic_compare_exchange_strong(&known_heaps[i], &k, base) || k == base) return;
  }
}

/* The heap_info of the thread heap that would hold chunk, if it is one
 * and chunk lies in its part in use; NULL if not.  With probe unset, only a
 * heap already known is considered (no system call). */
static const libc_heap_info *thread_heap(uintptr_t chunk, bool probe, bool *known) {
  uintptr_t base = chunk & ~(HEAP_MAX - 1);
  if (base == 0) return NULL;
  *known = heap_known(base);
  if (!*known && (!probe || !pmi_os_mapped((const void *)base, sizeof(libc_heap_info)))) return NULL;
  const libc_heap_info *h = (const libc_heap_info *)base;
  if (h->size > HEAP_MAX || chunk < base + sizeof *h || chunk - base >= h->size) return NULL;
  if (h->ar_ptr == NULL || ((uintptr_t)h->ar_ptr & (sizeof(void *) - 1)) != 0) return NULL;
  return h;
}

static bool is_mmapped_chunk(uintptr_t chunk, size_t head) {
  size_t page = pmi_os_page_size(), size = head & ~CHUNK_FLAGS;
  size_t offset = ((const size_t *)chunk)[0];   /* prev_size: from the mapping's start */
  if (head & CHUNK_NON_MAIN) return false;
  if (offset > chunk || size > UINTPTR_MAX - chunk || (((chunk - offset) | (offset + size)) & (page - 1)) != 0)
    return false;
  uintptr_t map = chunk - offset, end = chunk + size;
  if (map != (chunk & ~(uintptr_t)(page - 1)) && !pmi_os_mapped((const void *)map, page)) return false;
  return pmi_os_mapped((const void *)(end - page), page);
}

/* Everything but the common case. */
pmi_noinline static bool libc_owns_slow(uintptr_t chunk) {
  uintptr_t start, end;
  main_heap(&start, &end);
  bool in_main = chunk >= start && chunk < end, known = false;
  const libc_heap_info *h = in_main ? NULL : thread_heap(chunk, false, &known);
  if (!in_main && h == NULL && !pmi_os_mapped((const void *)chunk, 2 * sizeof(size_t))) return false;
  size_t head = ((const size_t *)chunk)[1], size = head & ~CHUNK_FLAGS;
  if (size < CHUNK_MIN || (size & (2 * sizeof(size_t) - 1)) != 0) return false;
  if (head & CHUNK_MMAPPED) return !in_main && h == NULL && is_mmapped_chunk(chunk, head);
  if (head & CHUNK_NON_MAIN) {
    if (h == NULL && !in_main) h = thread_heap(chunk, true, &known);
    if (h == NULL || size > h->size - (chunk - (uintptr_t)h)) return false;
    if (!known && h->ar_ptr == (const void *)(h + 1)) heap_remember((uintptr_t)h);   /* glibc keeps such a heap */
    return true;
  }
  return in_main && size <= end - chunk;
}

/* Where the header two words before p lies decides whether it may be read:
 * in the main heap, in the used part of a thread heap seen before, or on a
 * page the kernel says is mapped.  The common case first: a chunk of the
 * main heap, which fits below the break. */
bool pmi_libc_owns(const void *p) {
  uintptr_t a = (uintptr_t)p, chunk = a - 2 * sizeof(size_t);
  if ((a & (2 * sizeof(size_t) - 1)) != 0 || a < 4096) return false;
  uintptr_t start = atomic_load_explicit(&heap_start, memory_order_relaxed), end = current_break();
  if (pmi_likely(chunk >= start && chunk < end)) {
    size_t head = ((const size_t *)chunk)[1], size = head & ~CHUNK_FLAGS;
    if (pmi_likely((head & (CHUNK_MMAPPED | CHUNK_NON_MAIN)) == 0 && size >= CHUNK_MIN &&
                   (size & (2 * sizeof(size_t) - 1)) == 0 && size <= end - chunk))
      return true;
  }
  return libc_owns_slow(chunk);
}

/* ---- the C library's own calls --------------------------------------------- */

extern void *__libc_realloc(void *p, size_t size);
extern void *__libc_memalign(size_t alignment, size_t size);
extern void  __libc_free(void *p);
extern int   __libc_mallopt(int param, int value);

/* glibc has no __libc_ name for these; found with RTLD_NEXT (our own
 * malloc_usable_size and malloc_trim come first in the search order) at
 * their first use, not at start-up: a dlsym is about a thousand
 * instructions, and most programs never call them.  A race resolves the
 * same address twice. */
static _Atomic(void *) libc_usable_size, libc_trim, libc_mallinfo2;

static void *libc_next(_Atomic(void *) *slot, const char *name) {
  void *f = pmi_load_relaxed(slot);
  if (f == NULL) {
    f = dlsym(RTLD_NEXT, name);
    pmi_store_relaxed(slot, f);
  }
  return f;
}

pmi_startup void pmi_libc_init(void) { brk_at_init = pmi_os_break(); }

/* The usable size of a block glibc handed out and has not freed, read from
 * its chunk header as glibc's own malloc_usable_size does (glibc 2.26+
 * without memory tagging), for calls before init. */
static size_t chunk_usable(const void *p) {
  size_t head = ((const size_t *)p)[-1];
  return (head & ~(size_t)7) - ((head & 2) ? 2 : 1) * sizeof(size_t);
}

void pmi_libc_free(void *p) { __libc_free(p); }   /* glibc's free keeps errno (2.33+) */
void *pmi_libc_realloc(void *p, size_t size) { return __libc_realloc(p, size); }
/* malloc and calloc through realloc's name, whose NULL is a malloc: each
 * name the library imports costs its header segment (layout.test_header_pages). */
void *pmi_libc_malloc(size_t size) { return __libc_realloc(NULL, size); }
void *pmi_libc_calloc(size_t n, size_t size) {
  size_t total;
  if (__builtin_mul_overflow(n, size, &total)) {
    errno = ENOMEM;
    return NULL;
  }
  void *p = __libc_realloc(NULL, total);
  if (p != NULL) memset(p, 0, total);
  return p;
}
void *pmi_libc_memalign(size_t alignment, size_t size) { return __libc_memalign(alignment, size); }

size_t pmi_libc_usable_size(void *p) {
  if (p == NULL) return 0;
  if (atomic_load_explicit(&pmi_process_state, memory_order_acquire) == 2) {   /* dlsym may allocate */
    size_t (*f)(void *) = (size_t (*)(void *))libc_next(&libc_usable_size, "malloc_usable_size");
    if (f != NULL) return f(p);
  }
  return chunk_usable(p);
}

int pmi_libc_trim(size_t pad) {
  int (*f)(size_t) = (int (*)(size_t))libc_next(&libc_trim, "malloc_trim");
  return f != NULL ? f(pad) : 0;
}

struct mallinfo2 pmi_libc_mallinfo2(void) {
  struct mallinfo2 mi;
  struct mallinfo2 (*f)(void) = (struct mallinfo2 (*)(void))libc_next(&libc_mallinfo2, "mallinfo2");
  if (f != NULL) return f();
  memset(&mi, 0, sizeof mi);
  return mi;
}

int pmi_libc_mallopt(int param, int value) { return __libc_mallopt(param, value); }
