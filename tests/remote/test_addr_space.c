/* Freed small memory is there for requests of any size: under RLIMIT_AS
 * with 96 MiB of headroom, a child fills the headroom with blocks of
 * 16..512 bytes until malloc fails, frees them all, and then asks for 1 MiB
 * blocks.  An allocation failing for want of address space first gives back
 * what the reserve and decay hold, then retries; glibc serves about 86. */
#include <sys/resource.h>

#include "remote_test.h"

enum { MAXBLOCKS = 2 << 20, BIG = 1 << 20, NBIG = 64 };

static long vm_size_kb(void) {
  char buf[4096];
  int fd = open("/proc/self/status", O_RDONLY);
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  buf[n > 0 ? n : 0] = '\0';
  char *s = strstr(buf, "VmSize:");
  return s ? strtol(s + 7, NULL, 10) : -1;
}

static void child(void *arg) {
  void **blocks = pmr_map(MAXBLOCKS * sizeof(void *));
  void *big[NBIG];
  struct rlimit rl;
  rl.rlim_cur = rl.rlim_max = (rlim_t)(vm_size_kb() + 96 * 1024) * 1024;
  if (setrlimit(RLIMIT_AS, &rl) != 0) _exit(3);
  pmt_rng r = pmt_rng_seed(4);
  size_t n = 0;
  while (n < MAXBLOCKS && (blocks[n] = pm_malloc(pmt_range(&r, 16, 512))) != NULL) n++;
  for (size_t i = 0; i < n; i++) pm_free(blocks[i]);
  int got = 0;
  while (got < NBIG && (big[got] = pm_malloc(BIG)) != NULL) {
    memset(big[got], 1, BIG);
    got++;
  }
  fprintf(stderr, "filled with %zu small blocks; then %d blocks of 1 MiB\n", n, got);
  _exit(got >= 40 ? 0 : 1);
}

int main(void) {
  char msg[512];
  int status = pmr_child(child, NULL, msg, sizeof msg);
  fprintf(stderr, "%s", msg);
  CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x: %s", status, msg);
  return pmt_done("addr_space");
}
