/* message.h: the one writer of the library's messages on stderr (warnings,
 * fatal errors, failed internal checks), for every layer.  A message is one
 * line, "PREFIX" then the formatted text, formatted on the stack and written
 * with write(2): nothing here allocates, so it works inside malloc, at exit
 * and after the heap is corrupted. */
#ifndef PM_BASE_MESSAGE_H
#define PM_BASE_MESSAGE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#pragma GCC visibility push(hidden)

void   pmi_write_all(int fd, const char *s, size_t n);         /* all of it, through EINTR */
/* The stderr the process started with (message.c): noted at start-up (keep:
 * a report will be written there, so make sure it can be reached later);
 * pmi_stderr_open gives a descriptor on that file, or -1, never whatever
 * fd 2 has become; pmi_stderr_close gives it back. */
void   pmi_stderr_note(bool keep);
int    pmi_stderr_open(void);
void   pmi_stderr_close(int fd);
void   pmi_vmessage(const char *prefix, const char *fmt, va_list ap);   /* keeps errno */
_Noreturn void pmi_vfatal(const char *prefix, const char *fmt, va_list ap);  /* then abort() */
/* The allocator's: prefix "poolmalloc: ". */
void   pmi_warning(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void pmi_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void pmi_assert_fail(const char *cond, const char *file, int line, const char *func);

#pragma GCC visibility pop

#endif /* PM_BASE_MESSAGE_H */
