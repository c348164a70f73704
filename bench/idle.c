/*
 * idle.c: how much memory a program that has freed everything and gone
 * idle still holds, and when it gave the rest back.
 *
 *   bench_idle [MODE] [MIB] [MIN] [MAX] [WAIT_MS]
 *              defaults 0  64    8     16384 3000
 *
 * MODE 0: this thread allocates MIB MiB of blocks of MIN .. MAX bytes
 * (uniform), writes every byte, and frees them all.  MODE 1: a thread does
 * the allocating and exits; after a pause of 1.5 s this thread frees them
 * (the blocks of a heap whose thread is gone).  Then the program makes no
 * call into the allocator for WAIT_MS milliseconds and samples its RSS from
 * /proc every 20 ms (the array of pointers is mapped outside the allocator,
 * and the samples read /proc with a fixed buffer, so the idle program calls
 * nothing).  Prints one BENCH line: full_kb (RSS with every block live),
 * after_kb (RSS at the end of the wait), back_ms (when RSS first fell within
 * 8 MiB of the start, -1 if it never did), start_kb.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench_util.h"

static void **blocks;
static size_t nblocks, total, lo, hi;

/* Resident pages (statm's second field) in kB, with no allocation: the
 * bytes read(2) into a buffer on the stack, parsed by hand. */
static long rss_kb(void) {
  char text[64];
  int fd = open("/proc/self/statm", O_RDONLY);
  ssize_t got = fd < 0 ? -1 : read(fd, text, sizeof text - 1);
  if (fd >= 0) close(fd);
  long pages = 0;
  const char *c = text;
  if (got <= 0) return -1;
  text[got] = '\0';
  while (*c != ' ' && *c != '\0') c++;   /* past the first field, the size */
  while (*c == ' ') c++;
  for (; *c >= '0' && *c <= '9'; c++) pages = pages * 10 + (*c - '0');
  return pages * (sysconf(_SC_PAGESIZE) / 1024);
}

static void *fill(void *arg) {
  bench_rng r;
  bench_rng_seed(&r, 7);
  size_t bytes = 0;
  nblocks = 0;
  while (bytes < total) {
    size_t n = bench_rng_range(&r, lo, hi);
    blocks[nblocks] = malloc(n);
    if (blocks[nblocks] == NULL) exit(1);
    memset(blocks[nblocks], 1, n);
    nblocks++;
    bytes += n;
  }
  return arg;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {}
}

int main(int argc, char **argv) {
  long mode = argc > 1 ? strtol(argv[1], NULL, 10) : 0;
  total = (size_t)bench_arg(argc, argv, 2, 64) << 20;
  lo = (size_t)bench_arg(argc, argv, 3, 8);
  hi = (size_t)bench_arg(argc, argv, 4, 16384);
  long wait_ms = bench_arg(argc, argv, 5, 3000);
  if (hi < lo) hi = lo;
  blocks = mmap(NULL, (total / lo + 1) * sizeof *blocks, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (blocks == MAP_FAILED) return 1;
  long start = rss_kb();
  double t0 = bench_now();
  if (mode == 1) {
    pthread_t t;
    if (pthread_create(&t, NULL, fill, NULL) != 0) return 1;
    pthread_join(t, NULL);
  } else {
    fill(NULL);
  }
  long full = rss_kb();
  if (mode == 1) sleep_ms(1500);   /* an allocator's background work on the full heap is done */
  for (size_t i = 0; i < nblocks; i++) free(blocks[i]);
  double t1 = bench_now();
  long after = full, back_ms = -1;
  for (long ms = 20; ms <= wait_ms; ms += 20) {
    sleep_ms(20);
    after = rss_kb();
    if (back_ms < 0 && after < start + 8 * 1024) back_ms = ms;
  }
  bench_report_begin(mode == 1 ? "idle_exited" : "idle", (double)nblocks * 2, t1 - t0);
  printf(" start_kb=%ld full_kb=%ld after_kb=%ld back_ms=%ld", start, full, after, back_ms);
  bench_report_end();
  return 0;
}
