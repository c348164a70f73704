/* compiler.h: the compiler hints every layer of the library uses, in one
 * place (base/ includes nothing of the library's own). */
#ifndef PM_BASE_COMPILER_H
#define PM_BASE_COMPILER_H

#define pmi_likely(x)   __builtin_expect(!!(x), 1)
#define pmi_unlikely(x) __builtin_expect(!!(x), 0)
#define pmi_noinline    __attribute__((noinline))
#define pmi_cold        __attribute__((cold, noinline))
#define pmi_export      __attribute__((visibility("default")))
/* Run once, as the process starts or exits: kept in .text.startup beside the
 * constructors, so that a program's start-up touches one stretch of the
 * library's text (the kernel maps text around each fault in 64 KiB windows,
 * so scattered start-up functions make the whole text resident). */
#define pmi_startup     __attribute__((section(".text.startup")))
/* A zero-initialised variable that start-up writes: kept in .data, whose
 * pages the dynamic loader's relocations write anyway, instead of .bss, where
 * it would make a page of its own resident in every process. */
#define pmi_startup_data __attribute__((section(".data")))

/* A ThreadSanitizer build (gcc and clang spell it differently). */
#if defined(__SANITIZE_THREAD__)
#define PMI_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define PMI_TSAN 1
#endif
#endif

#endif /* PM_BASE_COMPILER_H */
