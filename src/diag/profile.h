/* profile.h: the heap profiler (profile.c) and its unwinder (unwind.c), for
 * the files of diag/ that feed it: debug.c (the dispatch) and stats.c. */
#ifndef PM_DIAG_PROFILE_H
#define PM_DIAG_PROFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/internal.h"

#pragma GCC visibility push(hidden)

/* ---- profile.c, unwind.c: the heap profiler (POOLMALLOC_PROFILE=1) ---------
 * The whole seam between allocator and profiler: the profiler turns debug
 * mode's dispatch (diag/diag.h) on, and debug.c's entry points call pmi_profile_malloc
 * after every allocation (with the size asked for) and pmi_profile_free
 * before every free.  Nothing in core/ knows the profiler.  With the
 * profiler off and debug mode on, each costs a subtraction and a load.
 *
 * Sampling: pmi_profile_left counts down the bytes this thread may allocate
 * before the next sample; the allocation that takes it to zero or below is
 * sampled.  Gaps are exponential with mean POOLMALLOC_PROFILE_RATE, so an
 * allocation of n bytes is sampled with probability 1 - exp(-n / rate).
 * Free: a block is looked up in the live set only when its slot of
 * pmi_profile_filter (a count of sampled live blocks per hash slot) is not
 * zero, so a free of an unsampled block costs a hash and a load.  Debug mode
 * keeps both tests failing (pmi_profile_pin), so that its blocks never meet
 * the core's fast paths, and the profiler counts on in its slow path:
 *   pmi_profile_filter[k] == pinned + |{ sampled live blocks in slot k }| */
#define PMI_UNWIND_MAX 64
#define PMI_PROFILE_FILTER_BITS 16
extern __thread int64_t pmi_profile_left __attribute__((tls_model("initial-exec")));
extern _Atomic(uint32_t) pmi_profile_filter[1u << PMI_PROFILE_FILTER_BITS];
typedef struct pmi_sample { uintptr_t addr; uint64_t size; uint32_t site; } pmi_sample;
void   pmi_profile_sample(void *p, size_t size, const void *site);   /* the count-down ran out */
void  *pmi_profile_malloc_sampled(size_t size, const void *site);   /* pmi_malloc, sampled */
void   pmi_profile_forget(const void *p);
void   pmi_profile_free_sampled(void *p);                        /* forget, pmi_free */
void   pmi_profile_pin(void);          /* debug mode: every malloc and free to the slow path */
void   pmi_profile_pin_filter(void);
bool   pmi_profile_take(const void *p, pmi_sample *out);   /* leaves the live set */
void   pmi_profile_put(const pmi_sample *s);               /* back (a failed realloc) */
void   pmi_profile_interval(void);                         /* with each interval report */
bool   pmi_profile_on(void);
struct pm_profile_stats;
void   pmi_profile_stats(struct pm_profile_stats *out);
unsigned pmi_unwind(void **frames, unsigned max, const void *site);
bool   pmi_unwind_prime(void);   /* false: no unwinder (warned), no profiling */

static inline unsigned pmi_profile_slot(const void *p) {
  return (unsigned)(((uintptr_t)p * 0x9E3779B97F4A7C15ull) >> (64 - PMI_PROFILE_FILTER_BITS));
}
/* Counts size down; true if this allocation is to be sampled. */
static inline bool pmi_profile_sampled(size_t size) {
  return pmi_unlikely((pmi_profile_left -= (int64_t)size) <= 0);
}
static inline void pmi_profile_malloc(void *p, size_t size, const void *site) {
  if (pmi_profile_sampled(size)) pmi_profile_sample(p, size, site);
}
static inline bool pmi_profile_maybe_sampled(const void *p) {
  return pmi_unlikely(pmi_load_relaxed(&pmi_profile_filter[pmi_profile_slot(p)]) != 0);
}
static inline void pmi_profile_free(const void *p) {
  if (pmi_profile_maybe_sampled(p)) pmi_profile_forget(p);
}

#pragma GCC visibility pop

#endif /* PM_DIAG_PROFILE_H */
