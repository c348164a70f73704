/* remote_test.h: helpers of the cross-thread free and memory-return tests.
 *
 *   pmr_setenv_reexec(argv, VAR, VALUE, ...)  re-runs the test with options
 *                         set (they are read once, at start-up); NULL ends
 *   pmr_rss_kb()          VmRSS from /proc/self/status, read without malloc
 *   pmr_stats()           pm_stats_get into a static snapshot
 *   pmr_medium_in_use(st) medium blocks in use in a snapshot, every class
 *   pmr_medium_sample(&rss, &used, &regions)  the three, and the snapshot
 *   pmr_now_ms()          a monotonic clock
 *   pmr_wait_rss_below(limit_kb, decay_ms, &rss)  polls RSS (no allocator
 *                         call) until it is below limit_kb: the time it took,
 *                         or -1 after 4 decay periods and 5 s of room
 *   pmr_child(fn, arg, msg, cap)  runs fn in a forked child; returns its wait
 *                         status, its stderr in msg
 *   pmr_map(n)            n zeroed bytes from mmap, outside the allocator
 *   pmr_announce_and_idle(&flag)  in an idle thread: sets flag, then waits,
 *                         with no allocator call, until pmr_release()
 *   pmr_wait_for(&flag)   until another thread has announced flag
 *   pmr_release()         wakes every idle thread for good (pmr_idle_done = 0
 *                         before the next round, with no thread waiting)
 *
 * The tests call pm_malloc/pm_free by name, so that they exercise poolmalloc
 * also in the ThreadSanitizer build (where the runtime keeps malloc). */
#ifndef REMOTE_TEST_H
#define REMOTE_TEST_H

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>

#include "pmtest.h"
#include "poolmalloc.h"

static inline void pmr_setenv_reexec(char **argv, ...) {
  va_list ap;
  va_start(ap, argv);
  int changed = 0;
  for (;;) {
    const char *var = va_arg(ap, const char *);
    if (var == NULL) break;
    const char *value = va_arg(ap, const char *);
    const char *now = getenv(var);
    if (now == NULL || strcmp(now, value) != 0) {
      setenv(var, value, 1);
      changed = 1;
    }
  }
  va_end(ap);
  if (!changed) return;
  execv("/proc/self/exe", argv);
  perror("execv");
  exit(2);
}

static inline long pmr_rss_kb(void) {
  char buf[4096];
  int fd = open("/proc/self/status", O_RDONLY);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = '\0';
  char *s = strstr(buf, "VmRSS:");
  return s ? strtol(s + 6, NULL, 10) : -1;
}

static pm_stats pmr_st;
static inline pm_stats *pmr_stats(void) {
  pm_stats_get(&pmr_st);
  return &pmr_st;
}

static inline unsigned long long pmr_in_use(void) {
  pm_stats *st = pmr_stats();
  unsigned long long n = 0;
  for (int c = 0; c < PM_NCLASSES; c++) n += st->classes[c].blocks_in_use;
  return n;
}

static inline unsigned long long pmr_medium_in_use(const pm_stats *st) {
  unsigned long long n = 0;
  for (int c = 0; c < PM_MEDIUM_NCLASSES; c++) n += st->medium_classes[c].blocks_in_use;
  return n;
}

/* RSS, medium blocks in use and medium regions mapped now; the snapshot. */
static inline pm_stats *pmr_medium_sample(long *rss, unsigned long long *used, unsigned long long *regions) {
  *rss = pmr_rss_kb();
  pm_stats *st = pmr_stats();
  *used = pmr_medium_in_use(st);
  *regions = st->medium.regions;
  return st;
}

static inline long long pmr_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void pmr_sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {}
}

static inline long long pmr_wait_rss_below(long limit_kb, long decay_ms, long *rss) {
  long long t0 = pmr_now_ms();
  while (pmr_now_ms() - t0 < 4 * decay_ms + 5000) {
    pmr_sleep_ms(20);
    *rss = pmr_rss_kb();
    if (*rss < limit_kb) return pmr_now_ms() - t0;
  }
  return -1;
}

static inline void *pmr_map(size_t n) {
  void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  REQUIRE(p != MAP_FAILED);
  return p;
}

/* An idle thread and the test's thread meet on one mutex and condition. */
static pthread_mutex_t pmr_idle_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pmr_idle_cv = PTHREAD_COND_INITIALIZER;
static int pmr_idle_done;
static inline void *pmr_announce_and_idle(int *flag) {
  pthread_mutex_lock(&pmr_idle_mu);
  *flag = 1;
  pthread_cond_broadcast(&pmr_idle_cv);
  while (!pmr_idle_done) pthread_cond_wait(&pmr_idle_cv, &pmr_idle_mu);
  pthread_mutex_unlock(&pmr_idle_mu);
  return NULL;
}
static inline void pmr_wait_for(const int *flag) {
  pthread_mutex_lock(&pmr_idle_mu);
  while (!*flag) pthread_cond_wait(&pmr_idle_cv, &pmr_idle_mu);
  pthread_mutex_unlock(&pmr_idle_mu);
}
static inline void pmr_release(void) {
  pthread_mutex_lock(&pmr_idle_mu);
  pmr_idle_done = 1;
  pthread_cond_broadcast(&pmr_idle_cv);
  pthread_mutex_unlock(&pmr_idle_mu);
}

static inline int pmr_child(void (*fn)(void *), void *arg, char *msg, size_t cap) {
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  fflush(stderr);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    dup2(fds[1], 2);
    close(fds[0]);
    fn(arg);
    _exit(0);
  }
  close(fds[1]);
  size_t len = 0;
  ssize_t n;
  while (len + 1 < cap && (n = read(fds[0], msg + len, cap - 1 - len)) > 0) len += (size_t)n;
  msg[len] = '\0';
  close(fds[0]);
  int status;
  waitpid(pid, &status, 0);
  return status;
}

/* After an idle owner's blocks were all freed by this thread (at the call):
 * polls every 20 ms, for at most 4 decay periods and 5 s of room for a
 * loaded machine, until blocks in use fall to 200 or fewer, RSS within
 * 8 MiB of rss_start and arenas mapped to the reserve's 4 and 2 more; then
 * reports (what, rss_start, used_full and the times each came back) and
 * checks each (RSS not under ThreadSanitizer, whose shadow memory has its
 * own). */
static inline void pmr_expect_back(const char *what, long decay_ms, long rss_start, unsigned long long used_full) {
  long long t0 = pmr_now_ms(), t_blocks = -1, t_rss = -1, t_arenas = -1;
  long rss = 0;
  unsigned long long used = 0;
  while (pmr_now_ms() - t0 < 4 * decay_ms + 5000) {
    pmr_sleep_ms(20);
    rss = pmr_rss_kb();
    if (t_rss < 0 && rss < rss_start + 8 * 1024) t_rss = pmr_now_ms() - t0;
    if (t_arenas < 0 && pmr_stats()->arenas.mapped <= 4 + 2) t_arenas = pmr_now_ms() - t0;
    if (t_blocks < 0) {
      used = pmr_in_use();
      if (used <= 200) t_blocks = pmr_now_ms() - t0;
    }
    if (t_rss >= 0 && t_blocks >= 0 && t_arenas >= 0) break;
  }
  pm_stats *st = pmr_stats();
  fprintf(stderr, "%s: RSS %ld kB at start, %ld kB after (blocks free after %lld ms, "
          "RSS back after %lld ms, arenas after %lld ms); blocks in use %llu -> %llu; arenas mapped %llu\n",
          what, rss_start, rss, t_blocks, t_rss, t_arenas, used_full, used, st->arenas.mapped);
  CHECKF(t_blocks >= 0, "blocks freed by another thread still in use: %llu", used);
#if !defined(__SANITIZE_THREAD__)
  CHECKF(t_rss >= 0, "RSS stays at %ld kB (started at %ld kB)", rss, rss_start);
#endif
  CHECKF(t_arenas >= 0, "%llu arenas mapped", st->arenas.mapped);
}

#endif /* REMOTE_TEST_H */
