/* os.c: every call the allocator makes into the kernel, behind one small
 * interface (internal.h, "os.c").  Nothing here allocates.  (The messages on
 * stderr have one writer of their own, base/message.c, for every layer.) */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/membarrier.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "base/syscall.h"
#include "base/text.h"
#include "core/internal.h"

PMI_OLD_VERSION_clock_gettime

/* A call with up to three arguments, -1 and errno on failure: the kernel's
 * itself where base/syscall.h allows (no import of syscall(2)), else the C
 * library's. */
static long os_syscall(long n, long a, long b, long c) {
#if PMI_RAW_SYSCALLS
  return pmi_sys(n, a, b, c);
#else
  return syscall(n, a, b, c);
#endif
}

/* System calls made, for the statistics report (start-up's reservation of
 * the arena map is one). */
static _Atomic uint64_t mmap_calls pmi_startup_data, munmap_calls;

void pmi_os_counts(uint64_t *mmaps, uint64_t *munmaps) {
  *mmaps = atomic_load(&mmap_calls);
  *munmaps = atomic_load(&munmap_calls);
}

/* mmap, munmap, brk and getrandom as system calls of our own where
 * base/syscall.h allows: they are the calls a program's start-up makes.
 * Failures set errno as the C library's do. */
#if PMI_RAW_SYSCALLS
static long os_syscall_result(long r) {
  if (pmi_syscall_failed(r)) {
    errno = (int)-r;
    return -1;
  }
  return r;
}
static void *sys_mmap(void *hint, size_t size, int flags) {
  long r = pmi_syscall6(SYS_mmap, (long)hint, (long)size, PROT_READ | PROT_WRITE, flags, -1, 0);
  return os_syscall_result(r) == -1 ? MAP_FAILED : (void *)r;
}
static int sys_munmap(void *p, size_t size) {
  return (int)os_syscall_result(pmi_syscall6(SYS_munmap, (long)p, (long)size, 0, 0, 0, 0));
}
pmi_startup uintptr_t pmi_os_break(void) { return (uintptr_t)pmi_syscall6(SYS_brk, 0, 0, 0, 0, 0, 0); }
#else
static void *sys_mmap(void *hint, size_t size, int flags) {
  return mmap(hint, size, PROT_READ | PROT_WRITE, flags, -1, 0);
}
static int sys_munmap(void *p, size_t size) { return munmap(p, size); }
pmi_startup uintptr_t pmi_os_break(void) { return (uintptr_t)sbrk(0); }
#endif

static void *os_mmap(void *hint, size_t size) {
  atomic_fetch_add_explicit(&mmap_calls, 1, memory_order_relaxed);
  return sys_mmap(hint, size, MAP_PRIVATE | MAP_ANONYMOUS);
}

static int os_munmap(void *p, size_t size) {
  atomic_fetch_add_explicit(&munmap_calls, 1, memory_order_relaxed);
  return sys_munmap(p, size);
}

void *pmi_os_map(size_t size) {
  void *p = os_mmap(NULL, size);
  return p == MAP_FAILED ? NULL : p;
}

/* Address space for a large table that is written sparsely (the arena
 * map): readable and writable, but not counted against the commit limit;
 * the kernel gives it memory page by page as it is written. */
pmi_startup void *pmi_os_reserve(size_t size) {
  atomic_fetch_add_explicit(&mmap_calls, 1, memory_order_relaxed);
#if PMI_RAW_SYSCALLS   /* errno kept: not written at all */
  long r = pmi_syscall6(SYS_mmap, 0, (long)size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  return pmi_syscall_failed(r) ? NULL : (void *)r;
#else
  int saved = errno;
  void *p = sys_mmap(NULL, size, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE);
  errno = saved;
  return p == MAP_FAILED ? NULL : p;
#endif
}

void pmi_os_unmap(void *p, size_t size) {
  if (p != NULL && os_munmap(p, size) != 0)
    pmi_warning("munmap(%p, %zu) failed: %s", p, size, strerror(errno));
}

/* The pages go back to the OS; the mapping stays (no new VMA: a hole
 * punched with munmap would split it), and reads as zeros when touched. */
void pmi_os_purge(void *p, size_t size) {
  int saved = errno;
  madvise(p, size, MADV_DONTNEED);
  errno = saved;
}

/* Asks for transparent huge pages on [p, p + size) (a VMA flag the kernel
 * reads at fault time and khugepaged at its scans).  False where the
 * kernel refuses (built without THP). */
bool pmi_os_advise_huge(void *p, size_t size) {
  int saved = errno;
  int r = madvise(p, size, MADV_HUGEPAGE);
  errno = saved;
  return r == 0;
}

/* A file of /sys/kernel/mm/transparent_hugepage: does its selected
 * word (the one in brackets, "always [madvise] never") read word?  -1 when
 * the file cannot be read (a kernel without THP). */
#define THP_SYSFS "/sys/kernel/mm/transparent_hugepage/"
static int thp_setting_is(const char *path, const char *word) {
  char buf[128];
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = '\0';
  return pmi_text_contains(buf, word);   /* (not strstr: no import of its own) */
}

/* How this process may have transparent huge pages (enum pmi_thp_mode).
 * NONE when the kernel's mode is "never" (or it has none), or the process
 * was told not to (prctl PR_SET_THP_DISABLE, inherited over exec).  ALIGN
 * with "always": the kernel backs 2 MiB-aligned ranges on its own, so the
 * arenas' chunks need no advice, which would only add what the defrag
 * setting does to advised ranges.  With "madvise" a range must be advised,
 * and an advised fault then waits for direct compaction unless defrag is
 * "defer" or "never": ADVISE there (or where POOLMALLOC_THP_ADVISE asks),
 * else STALLS ("madvise", "always" or "defer+madvise": a batch of 100,000
 * small blocks, 26 MB of arenas, took 52-63 ms instead of 5-7 in 2 runs of
 * 12 here), where the arenas take no chunk, so that a small malloc never
 * waits for compaction, and only a huge block's mapping of 8 MiB or more
 * is advised (chunk.c).  Read by chunk.c once, when a heap first grows
 * big: a small program never opens the files. */
int pmi_os_thp_mode(bool advise_anyway) {
  int saved = errno, mode = PMI_THP_NONE;
  if (thp_setting_is(THP_SYSFS "enabled", "[always]") == 1) {
    mode = PMI_THP_ALIGN;
  } else if (thp_setting_is(THP_SYSFS "enabled", "[madvise]") == 1) {
    mode = advise_anyway || thp_setting_is(THP_SYSFS "defrag", "[defer]") == 1 ||
                   thp_setting_is(THP_SYSFS "defrag", "[never]") == 1
               ? PMI_THP_ADVISE
               : PMI_THP_STALLS;
  }
  if (mode != PMI_THP_NONE && os_syscall(SYS_prctl, PR_GET_THP_DISABLE, 0, 0) == 1) mode = PMI_THP_NONE;
  errno = saved;
  return mode;
}

/* Maps size bytes aligned to align.  First asks for the hint (the address
 * just below the previous arena, where the kernel's top-down search puts the
 * next mapping anyway, so it usually comes back aligned and merges with its
 * neighbour into one VMA); otherwise over-maps and trims both ends. */
void *pmi_os_map_aligned(size_t size, size_t align, void *hint) {
  int saved = errno;
  if (hint != NULL) {
    void *p = os_mmap(hint, size);
    if (p != MAP_FAILED) {
      if (((uintptr_t)p & (align - 1)) == 0) return p;
      os_munmap(p, size);
    }
  }
  size_t over = size + align - pmi_os_page_size();
  char *raw = os_mmap(NULL, over);
  if (raw == MAP_FAILED) {
    errno = saved;
    return NULL;
  }
  char *start = (char *)(((uintptr_t)raw + align - 1) & ~(uintptr_t)(align - 1));
  size_t head = (size_t)(start - raw), tail = over - head - size;
  if (head) os_munmap(raw, head);
  if (tail) os_munmap(start + size, tail);
  errno = saved;
  return start;
}

/* Moves or resizes the mapping [old, old + old_size) to new_size bytes: in
 * place when to is NULL (fails if the pages after it are taken), else onto
 * to, replacing what is mapped there.  The pages move, their contents are
 * not copied.  NULL on failure, errno kept. */
void *pmi_os_remap(void *old, size_t old_size, size_t new_size, void *to) {
  int saved = errno;
  atomic_fetch_add_explicit(&mmap_calls, 1, memory_order_relaxed);
  void *p = to == NULL ? mremap(old, old_size, new_size, 0)
                       : mremap(old, old_size, new_size, MREMAP_MAYMOVE | MREMAP_FIXED, to);
  errno = saved;
  return p == MAP_FAILED ? NULL : p;
}

/* Gives the pages of [p, p + size) back to the OS, keeping the mapping
 * (they read as zero when next touched). */
void pmi_os_decommit(void *p, size_t size) {
  int saved = errno;
  madvise(p, size, MADV_DONTNEED);
  errno = saved;
}

/* Is every page of [p, p + n) mapped?  mincore fails with ENOMEM on a hole;
 * it reads nothing of the memory itself.  n spans at most 16 pages. */
bool pmi_os_mapped(const void *p, size_t n) {
  size_t page = pmi_os_page_size();
  uintptr_t first = (uintptr_t)p & ~(uintptr_t)(page - 1);
  if (n == 0 || (uintptr_t)p > UINTPTR_MAX - n) return false;
  size_t len = (uintptr_t)p + n - first;
  unsigned char vec[16];
  if ((len + page - 1) / page > sizeof vec) return false;
  int saved = errno;
  int r = mincore((void *)first, len, vec);
  errno = saved;
  return r == 0;
}

/* Which of the pages from p (page-aligned) on are resident: vec[i] bit 0
 * for page i, as mincore gives it.  False if the kernel cannot say (then
 * vec says nothing). */
bool pmi_os_resident(const void *p, size_t len, unsigned char *vec) {
  int saved = errno;
  int r = mincore((void *)p, len, vec);
  errno = saved;
  return r == 0;
}

/* Asked for lazily, by any thread: every thread that finds it unset stores
 * the same value, hence the relaxed atomic (a plain static is a data race).
 * On x86-64 the base page is 4 KiB whatever the kernel: no call of sysconf,
 * whose page of the C library's text (and the 64 KiB window around it, the
 * kernel's fault-around) every process would otherwise map at start-up. */
size_t pmi_os_page_size(void) {
#if defined(__x86_64__)
  return 4096;
#else
  static _Atomic size_t page pmi_startup_data;
  size_t p = atomic_load_explicit(&page, memory_order_relaxed);
  if (p == 0) {
    p = (size_t)sysconf(_SC_PAGESIZE);
    atomic_store_explicit(&page, p, memory_order_relaxed);
  }
  return p;
#endif
}

/* 16 random bytes from the kernel, or NULL: getrandom without blocking,
 * else (the entropy pool not ready yet, early in boot) from the pool as it
 * is (GRND_INSECURE, Linux 5.6 and later).  Without them the secret is
 * made of the addresses ASLR chose and the clock (pmi_os_random). */
static const unsigned char *kernel_random(unsigned char *buf) {
#if PMI_RAW_SYSCALLS
  if (pmi_syscall6(SYS_getrandom, (long)buf, 16, GRND_NONBLOCK, 0, 0, 0) == 16) return buf;
  if (pmi_syscall6(SYS_getrandom, (long)buf, 16, 0x0004 /* GRND_INSECURE */, 0, 0, 0) == 16) return buf;
  return NULL;
#else
  return getrandom(buf, 16, GRND_NONBLOCK) == 16 ? buf : NULL;
#endif
}

/* A per-process secret: the kernel's random bytes, mixed with an address
 * (so that it differs between libraries) and a call count (so that each
 * caller gets its own); failing those, with a stack address and the
 * clock. */
pmi_startup uint64_t pmi_os_random(void) {
  static _Atomic uint64_t calls pmi_startup_data;
  uint64_t x = (uintptr_t)&pmi_os_random + atomic_fetch_add(&calls, 1) * 0xD1B54A32D192ED03ull;
  unsigned char buf[16];
  const unsigned char *r = kernel_random(buf);
  uint64_t r0, r1;
  if (r != NULL) {
    memcpy(&r0, r, 8);
    memcpy(&r1, r + 8, 8);
  } else {
    r0 = (uintptr_t)buf;
    r1 = pmi_os_now_ms();
  }
  x ^= r0 * 0x9E3779B97F4A7C15ull ^ r1;
  x ^= x >> 31;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 29;
  return x | 1;
}

/* ---- clock ------------------------------------------------------------------
 * The clock is the kernel's vDSO clock_gettime, called directly, not the C
 * library's wrapper of it.  A program that never reads the clock itself
 * (cache-thrash, glibc-simple, cfrac) otherwise maps, at the wrapper's
 * first call, the 64 KiB window of the C library's text around it (the
 * kernel's fault-around): 16 resident pages (glibc-simple, 1.4 MB in all
 * under glibc: 4 %), for one call of a few instructions.  Likewise
 * lock.c's yield is the kernel's call itself.  The vDSO's address comes
 * from the auxiliary vector (/proc/self/auxv, read with the kernel's calls:
 * getauxval would be an import in the headers every process maps, see
 * base/syscall.h), the function from its ELF symbol table (DT_HASH gives
 * its size), once, at the first call; without either (no /proc, no vDSO,
 * a ThreadSanitizer build), the C library's clock_gettime. */
typedef int clock_fn(clockid_t, struct timespec *);
#define CLOCK_LIBC ((uintptr_t)1)

#if PMI_RAW_SYSCALLS
static uintptr_t auxv_sysinfo_ehdr(void) {
  int fd = pmi_sys_open("/proc/self/auxv", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  uint64_t v[2 * 64], found = 0;   /* (type, value) pairs; the kernel writes about 25 */
  long n = pmi_sys_read(fd, v, sizeof v);
  pmi_sys_close(fd);
  for (long i = 0; n > 0 && (i + 2) * 8 <= n && v[i] != AT_NULL; i += 2)
    if (v[i] == AT_SYSINFO_EHDR) found = v[i + 1];
  return (uintptr_t)found;
}

static bool name_is(const char *s, const char *want) {
  while (*s != 0 && *s == *want) s++, want++;
  return *s == *want;
}

static uintptr_t vdso_lookup(void) {
  int saved = errno;
  uintptr_t base = auxv_sysinfo_ehdr();
  errno = saved;
  if (base == 0) return CLOCK_LIBC;
  const Elf64_Ehdr *eh = (const Elf64_Ehdr *)base;
  if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64) return CLOCK_LIBC;
  const Elf64_Phdr *ph = (const Elf64_Phdr *)(base + eh->e_phoff);
  uintptr_t bias = 0, dynamic = 0;
  bool loaded = false;
  for (unsigned i = 0; i < eh->e_phnum; i++) {
    if (ph[i].p_type == PT_LOAD && !loaded) {
      bias = base + ph[i].p_offset - ph[i].p_vaddr;
      loaded = true;
    } else if (ph[i].p_type == PT_DYNAMIC) {
      dynamic = ph[i].p_vaddr;
    }
  }
  if (!loaded || dynamic == 0) return CLOCK_LIBC;
  const char *strtab = NULL;
  const Elf64_Sym *symtab = NULL;
  const uint32_t *hash = NULL;
  for (const Elf64_Dyn *d = (const Elf64_Dyn *)(bias + dynamic); d->d_tag != DT_NULL; d++) {
    if (d->d_tag == DT_STRTAB) strtab = (const char *)(bias + d->d_un.d_ptr);
    else if (d->d_tag == DT_SYMTAB) symtab = (const Elf64_Sym *)(bias + d->d_un.d_ptr);
    else if (d->d_tag == DT_HASH) hash = (const uint32_t *)(bias + d->d_un.d_ptr);
  }
  if (strtab == NULL || symtab == NULL || hash == NULL) return CLOCK_LIBC;
  for (uint32_t i = 0; i < hash[1]; i++) {   /* nchain: the number of symbols */
    const Elf64_Sym *sym = &symtab[i];
    if (ELF64_ST_TYPE(sym->st_info) == STT_FUNC && sym->st_shndx != SHN_UNDEF &&
        name_is(strtab + sym->st_name, "__vdso_clock_gettime"))
      return bias + sym->st_value;
  }
  return CLOCK_LIBC;
}
#else
static uintptr_t vdso_lookup(void) { return CLOCK_LIBC; }
#endif

/* The clock's function: clock_first until the first call has looked the
 * vDSO's up, then it or the C library's.  One load and a call, as the C
 * library's wrapper was a call. */
static int clock_first(clockid_t clock, struct timespec *ts);
static _Atomic(clock_fn *) clock_now pmi_startup_data = clock_first;

static int clock_first(clockid_t clock, struct timespec *ts) {   /* (a race looks it up twice, alike) */
  uintptr_t f = vdso_lookup();
  clock_fn *fn = f == CLOCK_LIBC ? clock_gettime : (clock_fn *)f;
  pmi_store_relaxed(&clock_now, fn);
  return fn(clock, ts);
}

bool pmi_os_clock_direct(void) {
  (void)pmi_os_now_ms();
  return pmi_load_relaxed(&clock_now) != clock_gettime;
}

uint64_t pmi_os_now_ms(void) {
  struct timespec ts;
  pmi_load_relaxed(&clock_now)(CLOCK_MONOTONIC_COARSE, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

long pmi_os_thread_id(void) { return os_syscall(SYS_gettid, 0, 0, 0); }

/* membarrier(2), private expedited: a full memory barrier on every thread
 * of this process that is running, by the time the call returns (threads
 * that are not running pass through the scheduler's own barriers).  It
 * must be registered once per process first; heap.c's visitor handshake
 * uses it so that the owner's side needs no fence.  Registration fails on
 * kernels before 4.14, under seccomp filters that forbid it, and under
 * tools that do not know the call. */
static bool membarrier_cmd(int cmd) {
#ifdef SYS_membarrier
  int saved = errno;
  long r = os_syscall(SYS_membarrier, cmd, 0, 0);
  errno = saved;
  return r == 0;
#else
  return false;
#endif
}

bool pmi_os_membarrier_register(void) { return membarrier_cmd(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED); }

/* After a successful registration; false if the call failed. */
bool pmi_os_membarrier(void) { return membarrier_cmd(MEMBARRIER_CMD_PRIVATE_EXPEDITED); }

/* Writing to a descriptor is base/message.c's (the one writer of messages). */
void pmi_os_write(int fd, const char *s, size_t n) { pmi_write_all(fd, s, n); }

void pmi_os_fmt(char *buf, size_t cap, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, cap, fmt, ap);
  va_end(ap);
}
