/* message.c: one line on stderr, see message.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/compiler.h"
#include "base/message.h"
#include "base/syscall.h"

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

/* ---- the stderr the process started with ----------------------------------
 * Programs close descriptor 2, or put something else there (a daemon's
 * journal, after closing 0, 1 and 2), and they own every descriptor number,
 * 900 included.  So warnings and reports go to fd 2 only
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

/* fstat, as a system call of our own where base/syscall.h allows: every
 * program's start-up makes this call. */
static int stat_fd(int fd, struct stat *st) {
#if PMI_RAW_SYSCALLS
  long r = pmi_syscall6(SYS_fstat, fd, (long)st, 0, 0, 0, 0);
  if (pmi_syscall_failed(r)) {
    errno = (int)-r;
    return -1;
  }
  return 0;
#else
  return fstat(fd, st);
#endif
}

static bool is_start_stderr(int fd) {
  struct stat st;
  return stat_fd(fd, &st) == 0 && st.st_dev == start_stderr.dev && st.st_ino == start_stderr.ino;
}

pmi_startup void pmi_stderr_note(bool keep) {
  struct stat st;
  if (stat_fd(STDERR_FILENO, &st) != 0) {
    start_stderr.state = -1;
    return;
  }
  start_stderr.dev = st.st_dev;
  start_stderr.ino = st.st_ino;
  start_stderr.state = 1;
  if (!keep) return;
  if (S_ISREG(st.st_mode) || S_ISCHR(st.st_mode)) {
    ssize_t n = pmi_sys_readlink("/proc/self/fd/2", start_stderr.path, sizeof start_stderr.path - 1);
    start_stderr.path[n > 0 && start_stderr.path[0] == '/' ? n : 0] = '\0';
    if (start_stderr.path[0] != '\0') return;
  }
  struct rlimit lim;
  /* Not above 4095: a descriptor number sizes the kernel's table. */
  int top = pmi_sys_getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < 4096 ? (int)lim.rlim_cur - 1 : 4095;
  for (int fd = top; fd > top - 16 && fd > 2; fd--) {
    if (pmi_sys_fcntl(fd, F_GETFD, 0) != -1 || errno != EBADF) continue;   /* the program's */
    int copy = pmi_sys_fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, fd);   /* fd, being free: as dup3, one import less */
    if (copy == fd) start_stderr.copy = fd;
    else if (copy != -1) close(copy);
    break;
  }
}

int pmi_stderr_open(void) {
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
      if (fd >= 0) pmi_sys_fcntl(fd, F_SETFL, O_APPEND);   /* O_NONBLOCK was for the open only */
    }
    if (fd < 0 && start_stderr.copy >= 0 && is_start_stderr(start_stderr.copy)) fd = start_stderr.copy;
  }
  errno = saved;
  return fd;
}

void pmi_stderr_close(int fd) {
  if (fd > STDERR_FILENO && fd != start_stderr.copy) close(fd);
}

/* Warnings go where reports go: the stderr the process started with.  A
 * fatal error (abort() follows) goes to fd 2 whatever it is now, as glibc's
 * own "free(): invalid pointer" does: the one line that explains the abort
 * belongs with the program's error output. */
static void message(bool fatal, const char *prefix, const char *fmt, va_list ap) {
  char buf[512];
  int saved = errno;
  int p = snprintf(buf, sizeof buf, "%s", prefix);
  size_t n = p > 0 ? ((size_t)p < sizeof buf - 2 ? (size_t)p : sizeof buf - 2) : 0;
  int m = vsnprintf(buf + n, sizeof buf - n - 1, fmt, ap);
  if (m > 0) n += (size_t)m < sizeof buf - n - 1 ? (size_t)m : sizeof buf - n - 2;
  buf[n++] = '\n';
  int fd = fatal ? STDERR_FILENO : pmi_stderr_open();
  if (fd >= 0) pmi_write_all(fd, buf, n);
  if (!fatal) pmi_stderr_close(fd);
  errno = saved;
}

void pmi_vmessage(const char *prefix, const char *fmt, va_list ap) { message(false, prefix, fmt, ap); }

_Noreturn void pmi_vfatal(const char *prefix, const char *fmt, va_list ap) {
  message(true, prefix, fmt, ap);
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
