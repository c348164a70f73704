/* new.c: the C++ operators new and delete, exported under their mangled
 * names so that a C++ program's allocations reach poolmalloc in one call.
 * The C++ library's own operator new is a call of malloc inside a loop over
 * the new handler, and its delete, delete[] and new[] are a call more each
 * (about 23 instructions a new-delete pair through new[] and delete[], a
 * tenth of what larson spends on a block).  In the shared library ours are
 * malloc's and free's fast paths themselves (core/alloc.c, core/free.c,
 * beside the inline code they share); here are operator new's slow path
 * and, for the static library, forwards (as api/override.c's).
 *
 * Only the six forms programs use on hot paths: operator new, new[],
 * delete and delete[], and the sized delete and delete[] (what a C++14
 * program calls for a complete type; through the C++ library's they cost a
 * call more each: larson-sized).  Each export is a few dozen bytes of the
 * header segment that every process reads (tests/layout/test_header_pages.sh);
 * the others stay the C++ library's, which end in these (nothrow new in new)
 * or in aligned_alloc and free (the over-aligned
 * forms), so every block still comes from and goes back to poolmalloc
 * whichever operator a program calls.  When malloc fails the language asks
 * for more than a NULL (the new handler in a loop, then std::bad_alloc):
 * new_failed hands the request to the next definition of the operator, the
 * C++ library's, which does all that (calling our malloc again).  Under
 * ThreadSanitizer its runtime defines the operators itself. */
#include <dlfcn.h>
#include <stddef.h>

#include "base/message.h"
#include "core/internal.h"
#include "poolmalloc.h"

#pragma GCC diagnostic ignored "-Wmissing-prototypes"

#if !defined(PMI_TSAN)

typedef void *new_fn(size_t size);

/* The failing request goes to the C++ library's operator NAME; without one
 * (no C++ library loaded, so nobody could catch an exception) the program
 * stops as the language stops it when nothing catches std::bad_alloc. */
static pmi_cold void *new_failed(const char *name, size_t size) {
  new_fn *next;
  *(void **)&next = dlsym(RTLD_NEXT, name);
  if (next != NULL) return next(size);
  pmi_fatal("operator new(%zu): out of memory and no C++ library to throw std::bad_alloc", size);
}

/* Operator new's slow path: malloc's, then, with no memory, the C++
 * library's operator NAME. */
pmi_noinline void *pmi_new_generic(size_t size, pmi_heap *heap, const char *name) {
  void *p = pmi_malloc_generic(size, heap);
  if (pmi_unlikely(p == NULL)) return new_failed(name, size);
  return p;
}

#if !defined(PM_SHARED_LIBRARY)
static void *new_forward(size_t size, const char *name) {
  void *p = pm_malloc(size);
  if (pmi_unlikely(p == NULL)) return new_failed(name, size);
  return p;
}
pmi_export void *_Znwm(size_t size) { return new_forward(size, "_Znwm"); }
pmi_export void *_Znam(size_t size) { return new_forward(size, "_Znam"); }
pmi_export void _ZdlPv(void *p) { pm_free(p); }
pmi_export void _ZdaPv(void *p) { pm_free(p); }
pmi_export void _ZdlPvm(void *p, size_t size) { pm_free_sized(p, size); }
pmi_export void _ZdaPvm(void *p, size_t size) { pm_free_sized(p, size); }
#endif

#endif
