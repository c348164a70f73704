/* override.c: the C library's allocation API, exported under its own names
 * so that a preloaded or linked libpoolmalloc replaces glibc's malloc.  Each
 * is a thin forward to the pm_ function (a jump: the library is linked with
 * -Bsymbolic-functions), except, in the shared library, malloc, free,
 * calloc, realloc, posix_memalign, aligned_alloc and memalign, which are
 * second names of the pm_ functions themselves (core/alloc.c, core/free.c:
 * an alias must be defined beside its target), so that the most frequent
 * calls cost no jump.  The C library's extensions (malloc_trim, mallinfo,
 * ...) are in extensions.c. */
#include <malloc.h>
#include <stdlib.h>

#include "base/compiler.h"
#include "poolmalloc.h"

#pragma GCC diagnostic ignored "-Wmissing-prototypes"
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

/* In the shared library these seven are second names of pm_malloc, pm_free,
 * pm_calloc, pm_realloc, pm_posix_memalign, pm_aligned_alloc and
 * pm_memalign (core/alloc.c, core/free.c), except under ThreadSanitizer. */
#if !defined(PM_SHARED_LIBRARY) || defined(PMI_TSAN)
pmi_export void *malloc(size_t size) { return pm_malloc(size); }
pmi_export void free(void *p) { pm_free(p); }
pmi_export void *calloc(size_t n, size_t size) { return pm_calloc(n, size); }
pmi_export void *realloc(void *p, size_t size) { return pm_realloc(p, size); }
pmi_export int posix_memalign(void **out, size_t alignment, size_t size) { return pm_posix_memalign(out, alignment, size); }
pmi_export void *aligned_alloc(size_t alignment, size_t size) { return pm_aligned_alloc(alignment, size); }
pmi_export void *memalign(size_t alignment, size_t size) { return pm_memalign(alignment, size); }
#endif

pmi_export void *reallocarray(void *p, size_t n, size_t size) { return pm_reallocarray(p, n, size); }
pmi_export void *valloc(size_t size) { return pm_valloc(size); }
pmi_export void *pvalloc(size_t size) { return pm_pvalloc(size); }
pmi_export size_t malloc_usable_size(void *p) { return pm_malloc_usable_size(p); }
pmi_export void cfree(void *p) { pm_free(p); }
pmi_export void free_sized(void *p, size_t size) { pm_free_sized(p, size); }
pmi_export void free_aligned_sized(void *p, size_t alignment, size_t size) { pm_free_aligned_sized(p, alignment, size); }
