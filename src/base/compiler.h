/* compiler.h: the compiler hints every layer of the library uses, in one
 * place (base/ includes nothing of the library's own). */
#ifndef PM_BASE_COMPILER_H
#define PM_BASE_COMPILER_H

#define pmi_likely(x)   __builtin_expect(!!(x), 1)
#define pmi_unlikely(x) __builtin_expect(!!(x), 0)
#define pmi_noinline    __attribute__((noinline))
#define pmi_cold        __attribute__((cold, noinline))
#define pmi_export      __attribute__((visibility("default")))

/* A ThreadSanitizer build (gcc and clang spell it differently). */
#if defined(__SANITIZE_THREAD__)
#define PMI_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define PMI_TSAN 1
#endif
#endif

#endif /* PM_BASE_COMPILER_H */
