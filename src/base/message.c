/* message.c: one line on stderr, see message.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/message.h"

void pmi_write_all(int fd, const char *s, size_t n) {
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

void pmi_vmessage(const char *prefix, const char *fmt, va_list ap) {
  char buf[512];
  int saved = errno;
  int p = snprintf(buf, sizeof buf, "%s", prefix);
  size_t n = p > 0 ? ((size_t)p < sizeof buf - 2 ? (size_t)p : sizeof buf - 2) : 0;
  int m = vsnprintf(buf + n, sizeof buf - n - 1, fmt, ap);
  if (m > 0) n += (size_t)m < sizeof buf - n - 1 ? (size_t)m : sizeof buf - n - 2;
  buf[n++] = '\n';
  pmi_write_all(STDERR_FILENO, buf, n);
  errno = saved;
}

_Noreturn void pmi_vfatal(const char *prefix, const char *fmt, va_list ap) {
  pmi_vmessage(prefix, fmt, ap);
  abort();
}

void pmi_warning(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  pmi_vmessage("poolmalloc: ", fmt, ap);
  va_end(ap);
}

_Noreturn void pmi_fatal(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  pmi_vfatal("poolmalloc: ", fmt, ap);
}

_Noreturn void pmi_assert_fail(const char *cond, const char *file, int line, const char *func) {
  pmi_fatal("internal check failed: %s (%s:%d, %s)", cond, file, line, func);
}
