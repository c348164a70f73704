/*
 * rusage.c: run a command and report its wall time and peak RSS.
 *
 *   bench_rusage OUTFILE COMMAND [ARGS...]
 *
 * Writes "wall_s=<seconds> maxrss_kb=<KiB> status=<exit status or 128+signal>"
 * to OUTFILE and exits with the command's status.  ru_maxrss comes from
 * wait4, so it covers the command and the children it waited for (gcc's cc1).
 *
 * Why a wrapper: a process inherits its parent's peak RSS when it is forked
 * and at exec (Linux folds the old address space's high-water mark into the
 * new process's), so a command spawned straight from the python3 harness
 * would never report less than the harness's own 20 MiB.  This program is
 * tiny, and it is not run under the allocator being measured: the harness
 * hands the library over in BENCH_LD_PRELOAD, which becomes the command's
 * LD_PRELOAD here, just before exec.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: bench_rusage OUTFILE COMMAND [ARGS...]\n");
    return 2;
  }
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  pid_t pid = fork();
  if (pid < 0) {
    perror("bench_rusage: fork");
    return 2;
  }
  if (pid == 0) {
    const char *pre = getenv("BENCH_LD_PRELOAD");
    if (pre && *pre) setenv("LD_PRELOAD", pre, 1);
    unsetenv("BENCH_LD_PRELOAD");
    execvp(argv[2], argv + 2);
    perror("bench_rusage: exec");
    _exit(127);
  }
  int status = 0;
  struct rusage ru;
  if (wait4(pid, &status, 0, &ru) < 0) {
    perror("bench_rusage: wait4");
    return 2;
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  FILE *f = fopen(argv[1], "w");
  if (f) {
    fprintf(f, "wall_s=%.6f maxrss_kb=%ld status=%d\n",
            (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9, ru.ru_maxrss, code);
    fclose(f);
  }
  return code;
}
