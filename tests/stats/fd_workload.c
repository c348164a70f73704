/* fd_workload.c MODE ARGS: programs that are untidy with their descriptors,
 * for test_descriptors.sh.  Each allocates a little (so that there is
 * something to report) and then:
 *   dup900 FILE     opens FILE, dup2s it onto 900, writes "data\n" there
 *   closefrom       closes descriptors 3..1023 (closefrom(3), closerange)
 *   daemon JOURNAL  closes 0, 1 and 2, opens /dev/null twice and JOURNAL
 *                   (which gets 2), writes "journal\n" to it
 *   race FILE       waits until FILE (the statistics file) is not empty,
 *                   that is until an interval report is being written, and
 *                   exits at once
 *   race_now FILE   the same, and ends with _exit (the process ends at
 *                   once: a report half written would stay half written)
 *   sleep MS        sleeps MS milliseconds, allocating, and exits */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void *volatile sink;

static void work(void) {
  for (int i = 0; i < 3000; i++) {
    void *p = malloc(16 + i % 500);
    if (i % 3 == 0) free(p);
    else sink = p;
  }
}

static void put(int fd, const char *s) {
  if (write(fd, s, strlen(s)) != (ssize_t)strlen(s)) exit(3);
}

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  work();
  if (strcmp(argv[1], "dup900") == 0 && argc == 3) {
    int fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || dup2(fd, 900) != 900) return 4;
    close(fd);
    put(900, "data\n");
    work();
    return 0;
  }
  if (strcmp(argv[1], "closefrom") == 0) {
    for (int fd = 3; fd < 1024; fd++) close(fd);
    work();
    return 0;
  }
  if (strcmp(argv[1], "daemon") == 0 && argc == 3) {
    close(0);
    close(1);
    close(2);
    if (open("/dev/null", O_RDONLY) != 0 || open("/dev/null", O_WRONLY) != 1) return 4;
    if (open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644) != 2) return 5;
    put(2, "journal\n");
    work();
    return 0;
  }
  if ((strcmp(argv[1], "race") == 0 || strcmp(argv[1], "race_now") == 0) && argc == 3) {
    struct stat st;
    for (long spins = 0; spins < 2000000000L; spins++)
      if (stat(argv[2], &st) == 0 && st.st_size > 0) break;
    if (strcmp(argv[1], "race_now") == 0) _exit(0);
    exit(0);
  }
  if (strcmp(argv[1], "sleep") == 0 && argc == 3) {
    long ms = atol(argv[2]);
    struct timespec ts = {ms / 1000, ms % 1000 * 1000000L};
    nanosleep(&ts, NULL);
    work();
    return 0;
  }
  return 2;
}
