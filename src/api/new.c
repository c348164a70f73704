/* new.c: the C++ operators new and delete, exported under their mangled
 * names so that a C++ program's allocations reach poolmalloc in one call.
 * The C++ library's own operator new is a call of malloc inside a loop over
 * the new handler, and its delete, delete[] and new[] are a call more each
 * (about 23 instructions a new-delete pair through new[] and delete[], a
 * tenth of what larson spends on a block); these are a call of pm_malloc
 * with a test, and a jump to pm_free.
 *
 * Only the four forms programs use on hot paths: operator new, new[],
 * delete and delete[].  Each export is a few dozen bytes of the header
 * segment that every process reads (tests/layout/test_header_pages.sh); the
 * others stay the C++ library's, which end in these (the sized deletes in
 * delete, nothrow new in new) or in aligned_alloc and free (the over-aligned
 * forms), so every block still comes from and goes back to poolmalloc
 * whichever operator a program calls.  When malloc fails the language asks
 * for more than a NULL (the new handler in a loop, then std::bad_alloc):
 * new_failed hands the request to the next definition of the operator, the
 * C++ library's, which does all that (calling our malloc again).  Under
 * ThreadSanitizer its runtime defines the operators itself. */
#include <dlfcn.h>
#include <stddef.h>

#include "base/compiler.h"
#include "base/message.h"
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

pmi_export void *_Znwm(size_t size) {
  void *p = pm_malloc(size);
  if (pmi_unlikely(p == NULL)) return new_failed("_Znwm", size);
  return p;
}

pmi_export void *_Znam(size_t size) {
  void *p = pm_malloc(size);
  if (pmi_unlikely(p == NULL)) return new_failed("_Znam", size);
  return p;
}

pmi_export void _ZdlPv(void *p) { pm_free(p); }
pmi_export void _ZdaPv(void *p) { pm_free(p); }

#endif
