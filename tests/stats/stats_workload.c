/* A program of known shape for tests/stats/test_stats.sh.
 *   shape N S    N live blocks of S bytes at exit (via exit())
 *   freed N S    N blocks of S bytes allocated, all freed, malloc_trim(0),
 *                then return from main
 *   threads      4 threads allocate (small, medium and huge blocks), some
 *                blocks outlive them, return from main
 *   fork         the parent and a forked child each exit() with live blocks
 *   sleep MS     allocate a little, sleep MS milliseconds, exit */
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void **keep_blocks(long n, size_t size) {
  void **v = malloc((size_t)n * sizeof *v);
  for (long i = 0; i < n; i++) {
    v[i] = malloc(size);
    memset(v[i], 1, size);
  }
  return v;
}

static void *thread_main(void *arg) {
  void **v = keep_blocks(5000, 48);
  void **m = keep_blocks(40, 3000);      /* medium blocks, */
  for (int i = 0; i < 40; i += 2) free(m[i]);
  void *h = malloc(300000);              /* a huge one, */
  free(malloc(500000));                  /* and one in the cache */
  (void)h;
  for (int i = 0; i < 5000; i += 2) free(v[i]);
  return v;   /* the odd ones outlive the thread */
}

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  if (strcmp(argv[1], "shape") == 0 && argc == 4) {
    keep_blocks(atol(argv[2]), (size_t)atol(argv[3]));
    exit(0);
  }
  if (strcmp(argv[1], "freed") == 0 && argc == 4) {
    long n = atol(argv[2]);
    void **v = keep_blocks(n, (size_t)atol(argv[3]));
    for (long i = 0; i < n; i++) free(v[i]);
    free(v);
    malloc_trim(0);
    return 0;
  }
  if (strcmp(argv[1], "threads") == 0) {
    pthread_t t[4];
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, thread_main, NULL);
    for (int i = 0; i < 4; i++) {
      void **v;
      pthread_join(t[i], (void **)&v);
      for (int j = 1; j < 5000; j += 4) free(v[j]);   /* cross-thread, after exit */
    }
    return 0;
  }
  if (strcmp(argv[1], "fork") == 0) {
    keep_blocks(1000, 32);
    pid_t pid = fork();
    if (pid == 0) {
      keep_blocks(2000, 64);
      exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    exit(WIFEXITED(status) ? WEXITSTATUS(status) : 1);
  }
  if (strcmp(argv[1], "sleep") == 0 && argc == 3) {
    keep_blocks(100, 100);
    struct timespec ts = {atol(argv[2]) / 1000, (atol(argv[2]) % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    exit(0);
  }
  return 2;
}
