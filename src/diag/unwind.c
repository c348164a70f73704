/* unwind.c: the call stack of an allocation, for the heap profiler.
 *
 * Which unwinder.  A frame-pointer walk loses every frame compiled without
 * frame pointers (most of Debian).  glibc's backtrace() dlopens libgcc_s on
 * its first call, which allocates (inside malloc, that is recursion).
 * libunwind's local unwinder works, but brings a library of its own, a
 * first-use initialisation of its own caches, and (to stay safe on bad
 * frames) a validating read of each frame's memory through a system call.
 * We call the C++ runtime's own DWARF unwinder, _Unwind_Backtrace, from
 * libgcc_s; with glibc 2.35 and gcc 12 or later it finds each frame's unwind
 * table through _dl_find_object, which takes no lock and allocates nothing.
 * libgcc_s is not linked at load time (loading and relocating it is a tenth
 * of the start-up of every program that preloads us, profiling or not):
 * pmi_unwind_prime, from the profiler's constructor and before the first
 * sample, opens it (a dlopen, which allocates, but sampling is not on yet)
 * and does the unwinder's one-time set-up (a pthread_once of the register
 * table).  The profiler
 * also refuses to sample an allocation made while it is unwinding, so that
 * an unwinder that did allocate (frames registered by a JIT with
 * __register_frame_info) would cost a lost sample, not a recursion. */
#include <dlfcn.h>
#include <link.h>
#include <string.h>
#include <unwind.h>

#include "core/internal.h"
#include "diag/profile.h"

/* The text of the object this file is in, when that object is a shared
 * library (not the main program, which the static library is linked into):
 * frames there are the allocator's own and are dropped from the top. */
static uintptr_t own_lo, own_hi;

typedef struct walk {
  void **frames;
  unsigned n, max;
} walk;

/* libgcc_s's unwinder, found by pmi_unwind_prime. */
static _Unwind_Reason_Code (*unwind_backtrace)(_Unwind_Trace_Fn, void *);
static _Unwind_Ptr (*unwind_get_ip)(struct _Unwind_Context *);

static _Unwind_Reason_Code step(struct _Unwind_Context *ctx, void *arg) {
  walk *w = arg;
  uintptr_t ip = unwind_get_ip(ctx);
  if (ip == 0) return _URC_END_OF_STACK;
  w->frames[w->n++] = (void *)ip;
  return w->n == w->max ? _URC_NORMAL_STOP : _URC_NO_REASON;
}

/* The frames below this call, innermost first, up to max, without the
 * allocator's own: from the one whose address is site (the return address
 * seen by the first function of the allocator that the program called), or
 * failing that from the first one outside the allocator. */
unsigned pmi_unwind(void **frames, unsigned max, const void *site) {
  void *raw[PMI_UNWIND_MAX + 16];
  walk w = {raw, 0, max + 16 <= sizeof raw / sizeof raw[0] ? max + 16 : (unsigned)(sizeof raw / sizeof raw[0])};
  unwind_backtrace(step, &w);
  unsigned first = w.n;
  for (unsigned i = 0; i < w.n; i++) {
    if (raw[i] == site) {
      first = i;
      break;
    }
  }
  if (first == w.n) first = 0;
  while (first < w.n && (uintptr_t)raw[first] - own_lo < own_hi - own_lo) first++;
  unsigned n = w.n - first < max ? w.n - first : max;
  memcpy(frames, raw + first, n * sizeof *frames);
  return n;
}

static int find_own(struct dl_phdr_info *info, size_t size, void *arg) {
  uintptr_t me = (uintptr_t)arg;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X)) continue;
    uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
    if (me - lo < hi - lo) {
      if (info->dlpi_name != NULL && info->dlpi_name[0] != '\0') {
        own_lo = lo;
        own_hi = hi;
      }
      return 1;
    }
  }
  return 0;
}

bool pmi_unwind_prime(void) {
  void *gcc = dlopen("libgcc_s.so.1", RTLD_NOW | RTLD_LOCAL);
  if (gcc != NULL) {
    *(void **)&unwind_backtrace = dlsym(gcc, "_Unwind_Backtrace");
    *(void **)&unwind_get_ip = dlsym(gcc, "_Unwind_GetIP");
  }
  if (unwind_backtrace == NULL || unwind_get_ip == NULL) {
    const char *why = dlerror();
    pmi_warning("POOLMALLOC_PROFILE: no unwinder (libgcc_s.so.1: %s); profiling is off", why != NULL ? why : "not found");
    return false;
  }
  dl_iterate_phdr(find_own, (void *)(uintptr_t)pmi_unwind_prime);
  void *frames[4];
  pmi_unwind(frames, 4, NULL);
  return true;
}
