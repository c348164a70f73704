/* syscall.h: a system call made directly, without the C library, for the
 * few calls the library makes while a program starts (core/os.c, and
 * base/message.c's look at stderr).  Each C library function the library
 * calls is an import, and the dynamic loader looks up an import on its
 * first call and checks each symbol version the library needs: about 600
 * to 700 instructions each, in the start-up of every program that preloads
 * us.  x86-64 only, and not under ThreadSanitizer (which must see the
 * mappings come and go); elsewhere PMI_RAW_SYSCALLS is 0 and the callers use
 * the C library. */
#ifndef PM_BASE_SYSCALL_H
#define PM_BASE_SYSCALL_H

#if defined(__x86_64__) && defined(__linux__) && !defined(__SANITIZE_THREAD__)
#define PMI_RAW_SYSCALLS 1

/* The kernel's result: a value, or -errno (-4095 .. -1). */
static inline long pmi_syscall6(long n, long a, long b, long c, long d, long e, long f) {
  register long r10 __asm__("r10") = d;
  register long r8 __asm__("r8") = e;
  register long r9 __asm__("r9") = f;
  long ret;
  __asm__ volatile("syscall"
                   : "=a"(ret)
                   : "0"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                   : "rcx", "r11", "memory");
  return ret;
}

static inline int pmi_syscall_failed(long r) { return (unsigned long)r > -4096ul; }

#else
#define PMI_RAW_SYSCALLS 0
#endif

/* The other calls of the diagnostics and of message.c that need no more of
 * the C library than the kernel's call: made directly where PMI_RAW_SYSCALLS
 * allows, so that they are no imports either.  An import is about 60 bytes
 * of the headers and tables (symbol, name, version, relocation) that every
 * process maps whole at start-up: with 13 of them fewer, those are 2 pages,
 * not 3.  Failures set errno as the C library's do. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#if PMI_RAW_SYSCALLS
static inline long pmi_sys(long n, long a, long b, long c) {
  long r = pmi_syscall6(n, a, b, c, 0, 0, 0);
  if (pmi_syscall_failed(r)) {
    errno = (int)-r;
    return -1;
  }
  return r;
}
static inline int pmi_sys_getpid(void) { return (int)pmi_sys(SYS_getpid, 0, 0, 0); }
static inline int pmi_sys_fcntl(int fd, int cmd, long arg) { return (int)pmi_sys(SYS_fcntl, fd, cmd, arg); }
static inline int pmi_sys_getrlimit(int what, struct rlimit *lim) { return (int)pmi_sys(SYS_getrlimit, what, (long)lim, 0); }
static inline long pmi_sys_readlink(const char *path, char *buf, size_t n) {
  return pmi_sys(SYS_readlink, (long)path, (long)buf, (long)n);
}
static inline int pmi_sys_unlink(const char *path) { return (int)pmi_sys(SYS_unlink, (long)path, 0, 0); }
static inline int pmi_sys_rename(const char *from, const char *to) { return (int)pmi_sys(SYS_rename, (long)from, (long)to, 0); }
static inline int pmi_sys_nanosleep(struct timespec *ts) { return (int)pmi_sys(SYS_nanosleep, (long)ts, (long)ts, 0); }
static inline void *pmi_sys_mmap(size_t n) {   /* anonymous, private, read-write */
  long r = pmi_syscall6(SYS_mmap, 0, (long)n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (pmi_syscall_failed(r)) {
    errno = (int)-r;
    return MAP_FAILED;
  }
  return (void *)r;
}
static inline int pmi_sys_munmap(void *p, size_t n) { return (int)pmi_sys(SYS_munmap, (long)p, (long)n, 0); }
static inline int pmi_sys_open(const char *path, int flags) { return (int)pmi_sys(SYS_open, (long)path, flags, 0); }
static inline long pmi_sys_read(int fd, void *buf, size_t n) { return pmi_sys(SYS_read, fd, (long)buf, (long)n); }
static inline int pmi_sys_close(int fd) { return (int)pmi_sys(SYS_close, fd, 0, 0); }
static inline int pmi_sys_sched_yield(void) { return (int)pmi_sys(SYS_sched_yield, 0, 0, 0); }
#else
static inline int pmi_sys_getpid(void) { return (int)getpid(); }
static inline int pmi_sys_fcntl(int fd, int cmd, long arg) { return fcntl(fd, cmd, arg); }
static inline int pmi_sys_getrlimit(int what, struct rlimit *lim) { return getrlimit(what, lim); }
static inline long pmi_sys_readlink(const char *path, char *buf, size_t n) { return (long)readlink(path, buf, n); }
static inline int pmi_sys_unlink(const char *path) { return unlink(path); }
static inline int pmi_sys_rename(const char *from, const char *to) { return rename(from, to); }
static inline int pmi_sys_nanosleep(struct timespec *ts) { return nanosleep(ts, ts); }
static inline void *pmi_sys_mmap(size_t n) {
  return mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
}
static inline int pmi_sys_munmap(void *p, size_t n) { return munmap(p, n); }
static inline int pmi_sys_sched_yield(void) { return sched_yield(); }
#endif
/* glibc's pthread_sigmask keeps its own two internal signals unblocked
 * whatever the set says, which is all sigfillset adds to this. */
static inline void pmi_sigset_all(sigset_t *s) { memset(s, 0xff, sizeof *s); }

/* Two functions whose symbol version was renewed without a change
 * (glibc 2.17 and 2.32: the same address under both names): bound to the
 * old version, the shared library needs two symbol versions fewer, each
 * checked by the dynamic loader at start-up.  Only in the shared library,
 * where versions exist (a static link against libc.a has none). */
#if defined(PM_SHARED_LIBRARY) && defined(__x86_64__) && defined(__GLIBC__)
#define PMI_OLD_VERSION_clock_gettime __asm__(".symver clock_gettime,clock_gettime@GLIBC_2.2.5");
#define PMI_OLD_VERSION_pthread_sigmask __asm__(".symver pthread_sigmask,pthread_sigmask@GLIBC_2.2.5");
#else
#define PMI_OLD_VERSION_clock_gettime
#define PMI_OLD_VERSION_pthread_sigmask
#endif

#endif /* PM_BASE_SYSCALL_H */
