/* atfork_prog.c THREADS FORKS: THREADS threads each fork FORKS times while
 * two more threads allocate and free; every child allocates and exits 0.
 * Exit 0 when every child did.  Linked against atfork_lib.so. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int atfork_lib_calls(void);   /* atfork_lib.c */

static int forks;
static atomic_int failed, stop;

static void *forker(void *arg) {
  for (int i = 0; i < forks; i++) {
    void *before = malloc(100);
    pid_t pid = fork();
    if (pid < 0) {
      atomic_store(&failed, 1);
      break;
    }
    if (pid == 0) {
      for (int k = 0; k < 1000; k++) free(malloc(16 + k % 600));
      free(before);
      _exit(0);
    }
    int st;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) atomic_store(&failed, 1);
    free(before);
  }
  return arg;
}

static void *busy(void *arg) {
  unsigned x = 1;
  while (!atomic_load(&stop)) {
    void *v[64];
    for (int i = 0; i < 64; i++) v[i] = malloc((x = x * 1103515245 + 12345) % 2000 + 1);
    for (int i = 0; i < 64; i++) free(v[i]);
  }
  return arg;
}

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 1;
  forks = argc > 2 ? atoi(argv[2]) : 1;
  pthread_t b[2], t[16];
  if (threads > 16) threads = 16;
  if (threads < 1) threads = 1;
  for (int i = 0; i < 2; i++) pthread_create(&b[i], NULL, busy, NULL);
  if (threads <= 1) {
    forker(NULL);
  } else {
    for (int i = 0; i < threads; i++) pthread_create(&t[i], NULL, forker, NULL);
    for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
  }
  atomic_store(&stop, 1);
  for (int i = 0; i < 2; i++) pthread_join(b[i], NULL);
  if (atfork_lib_calls() != threads * forks) {
    fprintf(stderr, "atfork_prog: the library's prepare handler ran %d times, want %d\n", atfork_lib_calls(),
            threads * forks);
    return 1;
  }
  if (atomic_load(&failed)) {
    fprintf(stderr, "atfork_prog: a child failed\n");
    return 1;
  }
  return 0;
}
