/* profile_workload.c: programs of known allocation sites for test_profile.sh,
 * run with libpoolmalloc preloaded and POOLMALLOC_PROFILE=1.
 *
 *   sites     keep_eight keeps 8 MiB and keep_one 1 MiB at exit, each in
 *             blocks of pool, medium and large sizes; churn frees all it takes
 *   freeall   allocates 20 MiB at three sites and frees every block
 *   threads   four threads, keep_t<k> in thread k keeps (k + 1) MiB
 *   fork      the parent keeps 8 MiB at keep_eight and forks; the child also
 *             keeps 1 MiB at keep_one, and both exit
 *   exact     (for RATE=1) keep_exact keeps 1000 blocks of 100 bytes and 3 of
 *             300000, after a realloc of each; churn frees what it takes
 *   quick_exit keeps 8 MiB, then _exit(0)
 *   dump      keeps 8 MiB at keep_eight, pm_profile_dump(argv[2]), frees it
 *             all; a dump to an unwritable path must fail with -1
 *   interval  keeps 1 MiB at keep_one and sleeps until the profile at
 *             argv[2] exists (POOLMALLOC_STATS_INTERVAL), up to 10 s
 * Each keep_* function is its own call site, noinline, so that the profile
 * names it. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MIB ((size_t)1 << 20)

static void *volatile kept[200000];
static volatile size_t nkept;
static pthread_mutex_t kept_lock = PTHREAD_MUTEX_INITIALIZER;

static void keep(void *p) {
  if (p == NULL) abort();
  pthread_mutex_lock(&kept_lock);
  kept[nkept++] = p;
  pthread_mutex_unlock(&kept_lock);
}

/* exactly total bytes (as asked for: what a profile reports), a third each
 * in blocks of a pool, a medium and a large size; the last block of each
 * third is shorter, so that the expected figure is the one named and not
 * up to a block more. */
static void keep_mixed(size_t total, size_t small, size_t medium, size_t large) {
  size_t sizes[3] = {small, medium, large}, held = 0;
  for (int k = 0; k < 3; k++) {
    size_t goal = k < 2 ? total / 3 * (size_t)(k + 1) : total;
    while (held < goal) {
      size_t n = goal - held < sizes[k] ? goal - held : sizes[k];
      char *p = malloc(n);
      if (p == NULL) abort();
      p[0] = 1;
      keep(p);
      held += n;
    }
  }
}

__attribute__((noinline)) void keep_eight(void) { keep_mixed(8 * MIB, 48, 2000, 96 * 1024); }
__attribute__((noinline)) void keep_one(void) { keep_mixed(1 * MIB, 160, 4000, 200 * 1024); }

__attribute__((noinline)) void churn(void) {
  for (int i = 0; i < 100000; i++) {
    void *volatile p = malloc((size_t)(i % 3000) + 1);
    free(p);
  }
  void *p = NULL;
  for (int i = 1; i <= 200; i++) p = realloc(p, (size_t)i * 1000);
  free(p);
}

static void free_all(void) {
  for (size_t i = 0; i < nkept; i++) free(kept[i]);
  nkept = 0;
}

__attribute__((noinline)) void keep_t0(void) { keep_mixed(1 * MIB, 64, 1500, 70 * 1024); }
__attribute__((noinline)) void keep_t1(void) { keep_mixed(2 * MIB, 64, 1500, 70 * 1024); }
__attribute__((noinline)) void keep_t2(void) { keep_mixed(3 * MIB, 64, 1500, 70 * 1024); }
__attribute__((noinline)) void keep_t3(void) { keep_mixed(4 * MIB, 64, 1500, 70 * 1024); }

static void *thread_main(void *arg) {
  static void (*const fns[4])(void) = {keep_t0, keep_t1, keep_t2, keep_t3};
  fns[(long)arg]();
  churn();
  return NULL;
}

__attribute__((noinline)) void keep_exact(void) {
  for (int i = 0; i < 1000; i++) {
    void *p = malloc(60);
    keep(realloc(p, 100));
  }
  for (int i = 0; i < 3; i++) keep(calloc(1, 300000));
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "sites";
  if (strcmp(mode, "sites") == 0) {
    keep_eight();
    keep_one();
    churn();
  } else if (strcmp(mode, "freeall") == 0) {
    keep_eight();
    keep_one();
    churn();
    keep_eight();
    keep_eight();
    free_all();
  } else if (strcmp(mode, "threads") == 0) {
    pthread_t t[4];
    for (long k = 0; k < 4; k++) pthread_create(&t[k], NULL, thread_main, (void *)k);
    for (int k = 0; k < 4; k++) pthread_join(t[k], NULL);
  } else if (strcmp(mode, "fork") == 0) {
    keep_eight();
    pid_t pid = fork();
    if (pid < 0) return 2;
    if (pid == 0) {
      keep_one();
      churn();
      exit(0);
    }
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return 3;
  } else if (strcmp(mode, "exact") == 0) {
    keep_exact();
    churn();
  } else if (strcmp(mode, "quick_exit") == 0) {
    keep_eight();
    _exit(0);
  } else if (strcmp(mode, "dump") == 0) {
    int (*dump)(const char *) = (int (*)(const char *))dlsym(RTLD_DEFAULT, "pm_profile_dump");
    if (dump == NULL || argc < 3) return 2;
    keep_eight();
    if (dump(argv[2]) != 0) return 3;
    if (dump("/nonexistent-dir/x.heap") != -1) return 4;
    free_all();
  } else if (strcmp(mode, "interval") == 0) {
    keep_one();
    for (int i = 0; i < 100 && argc > 2 && access(argv[2], R_OK) != 0; i++) {
      struct timespec ts = {0, 100 * 1000 * 1000};
      nanosleep(&ts, NULL);
    }
    return access(argv[2], R_OK) == 0 ? 0 : 5;
  } else {
    return 2;
  }
  return 0;
}
