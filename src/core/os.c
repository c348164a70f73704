/* os.c: every call poolmalloc makes into the kernel, behind one small
 * interface (internal.h, "os.c").  Nothing here allocates: error messages are
 * formatted on the stack and written with write(2). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "core/internal.h"

/* System calls made, for the statistics report. */
static _Atomic uint64_t mmap_calls, munmap_calls;

void pmi_os_counts(uint64_t *mmaps, uint64_t *munmaps) {
  *mmaps = atomic_load(&mmap_calls);
  *munmaps = atomic_load(&munmap_calls);
}

static void *os_mmap(void *hint, size_t size) {
  atomic_fetch_add_explicit(&mmap_calls, 1, memory_order_relaxed);
  return mmap(hint, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
}

static int os_munmap(void *p, size_t size) {
  atomic_fetch_add_explicit(&munmap_calls, 1, memory_order_relaxed);
  return munmap(p, size);
}

void *pmi_os_map(size_t size) {
  void *p = os_mmap(NULL, size);
  return p == MAP_FAILED ? NULL : p;
}

void pmi_os_unmap(void *p, size_t size) {
  if (p != NULL && os_munmap(p, size) != 0)
    pmi_warning("munmap(%p, %zu) failed: %s", p, size, strerror(errno));
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

size_t pmi_os_page_size(void) {
  static size_t page;
  if (page == 0) page = (size_t)sysconf(_SC_PAGESIZE);
  return page;
}

/* A per-process secret: the 16 random bytes the kernel gives every process
 * (AT_RANDOM), mixed with an address (so that it differs between libraries)
 * and a call count (so that each caller gets its own). */
uint64_t pmi_os_random(void) {
  static _Atomic uint64_t calls;
  uint64_t x = (uintptr_t)&pmi_os_random + atomic_fetch_add(&calls, 1) * 0xD1B54A32D192ED03ull;
  const unsigned char *r = (const unsigned char *)getauxval(AT_RANDOM);
  if (r != NULL) {
    uint64_t r0, r1;   /* AT_RANDOM is not 8-byte aligned */
    memcpy(&r0, r, 8);
    memcpy(&r1, r + 8, 8);
    x ^= r0 * 0x9E3779B97F4A7C15ull ^ r1;
  }
  x ^= x >> 31;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 29;
  return x | 1;
}

uint64_t pmi_os_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

long pmi_os_thread_id(void) { return syscall(SYS_gettid); }

void pmi_os_write(int fd, const char *s, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, s, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return;
    }
    s += w;
    n -= (size_t)w;
  }
}

void pmi_os_fmt(char *buf, size_t cap, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, cap, fmt, ap);
  va_end(ap);
}

/* ---- the stderr the process started with ----------------------------------
 * Programs close descriptor 2, or put something else there (a daemon's
 * journal, after closing 0, 1 and 2), and they own every descriptor number,
 * 900 included.  So poolmalloc writes its messages and reports to fd 2 only
 * while fd 2 is still the file it was at start-up (same device and inode);
 * otherwise to that file reopened by its path (a regular file or a
 * terminal), checked to be the same one; for a pipe or a socket, which have
 * no path, to a copy made at start-up only when a report to stderr is asked
 * for, on the highest descriptor the limit allows, close-on-exec, and
 * checked again before each use (the program may have put its own file on
 * that number).  Failing all three, nothing is written. */
static struct {
  int state;              /* 0 not noted yet (fd 2 is the original), 1 noted, -1 closed at start */
  dev_t dev;
  ino_t ino;
  int copy;               /* -1, or the copy of a pipe or socket */
  char path[512];         /* "" or the path of a file or terminal */
} start_stderr = {0, 0, 0, -1, ""};

static bool is_start_stderr(int fd) {
  struct stat st;
  return fstat(fd, &st) == 0 && st.st_dev == start_stderr.dev && st.st_ino == start_stderr.ino;
}

void pmi_os_stderr_note(bool keep) {
  struct stat st;
  if (fstat(STDERR_FILENO, &st) != 0) {
    start_stderr.state = -1;
    return;
  }
  start_stderr.dev = st.st_dev;
  start_stderr.ino = st.st_ino;
  start_stderr.state = 1;
  if (!keep) return;
  if (S_ISREG(st.st_mode) || S_ISCHR(st.st_mode)) {
    ssize_t n = readlink("/proc/self/fd/2", start_stderr.path, sizeof start_stderr.path - 1);
    start_stderr.path[n > 0 && start_stderr.path[0] == '/' ? n : 0] = '\0';
    if (start_stderr.path[0] != '\0') return;
  }
  struct rlimit lim;
  int top = getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < 65536 ? (int)lim.rlim_cur - 1 : 65535;
  for (int fd = top; fd > top - 16 && fd > 2; fd--) {
    if (fcntl(fd, F_GETFD) != -1 || errno != EBADF) continue;   /* the program's */
    if (dup3(STDERR_FILENO, fd, O_CLOEXEC) == fd) start_stderr.copy = fd;
    break;
  }
}

int pmi_os_stderr_open(void) {
  int saved = errno, fd = -1;
  if (start_stderr.state == 0) {
    fd = STDERR_FILENO;
  } else if (start_stderr.state > 0) {
    if (is_start_stderr(STDERR_FILENO)) {
      fd = STDERR_FILENO;
    } else if (start_stderr.path[0] != '\0') {
      fd = open(start_stderr.path, O_WRONLY | O_APPEND | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
      if (fd >= 0 && !is_start_stderr(fd)) {
        close(fd);
        fd = -1;
      }
    }
    if (fd < 0 && start_stderr.copy >= 0 && is_start_stderr(start_stderr.copy)) fd = start_stderr.copy;
  }
  errno = saved;
  return fd;
}

void pmi_os_stderr_close(int fd) {
  if (fd > STDERR_FILENO && fd != start_stderr.copy) close(fd);
}

/* Warnings go where reports go: to the stderr the process started with.  A
 * fatal error (the process aborts next) goes to fd 2 whatever it is now, as
 * glibc's own "free(): invalid pointer": the one line explaining the abort
 * belongs with the program's error output. */
static void os_vmessage(bool fatal, const char *fmt, va_list ap) {
  char buf[512];
  int saved = errno;
  size_t n = (size_t)snprintf(buf, sizeof buf, "poolmalloc: ");
  int m = vsnprintf(buf + n, sizeof buf - n - 1, fmt, ap);
  if (m > 0) n += (size_t)m < sizeof buf - n - 1 ? (size_t)m : sizeof buf - n - 2;
  buf[n++] = '\n';
  int fd = fatal ? STDERR_FILENO : pmi_os_stderr_open();
  if (fd >= 0) pmi_os_write(fd, buf, n);
  if (!fatal) pmi_os_stderr_close(fd);
  errno = saved;
}

void pmi_warning(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  os_vmessage(false, fmt, ap);
  va_end(ap);
}

_Noreturn void pmi_fatal(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  os_vmessage(true, fmt, ap);
  va_end(ap);
  abort();
}

_Noreturn void pmi_assert_fail(const char *cond, const char *file, int line, const char *func) {
  pmi_fatal("internal check failed: %s (%s:%d, %s)", cond, file, line, func);
}
