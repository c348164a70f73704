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
