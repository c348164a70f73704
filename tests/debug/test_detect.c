/* POOLMALLOC_DEBUG=1: each detection fires on a deliberately broken program.
 * Every case runs in a forked child whose stderr is captured: it must hold
 * the expected message and the child must end with SIGABRT.  A last case
 * does everything right and must end normally, printing nothing.
 *
 * The test re-executes itself with POOLMALLOC_DEBUG=1 in the environment
 * (the option is read when the library starts). */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "poolmalloc.h"

/* The compiler must not see through these: it would drop a malloc/free pair
 * or warn about the deliberate errors. */
extern void *__libc_malloc(size_t size);
static void *volatile sink;
static void *launder(void *p) {
  sink = p;
  return sink;
}

static void overflow_small(void) {
  char *p = launder(malloc(40));
  p[40] = 'x';
  free(p);
}
static void overflow_large(void) {
  char *p = launder(malloc(5000));
  memset(p, 'a', 5003);
  free(p);
}
static void overflow_calloc_realloc(void) {
  char *p = launder(calloc(3, 10));
  p[31] = 1;                        /* past 30 bytes */
  p = realloc(p, 100);              /* realloc checks the guards too */
  free(p);
}
static void underflow(void) {
  char *p = launder(malloc(24));
  p[-1] = 'x';
  free(p);
}
static void underflow_aligned(void) {
  char *p = launder(aligned_alloc(256, 300));
  p[-3] = 'x';
  free(p);
}
static void underflow_header(void) {
  char *p = launder(malloc(24));
  memset(p - 40, 0, 40);          /* through the guard into the header */
  free(p);
}
static void *free_it(void *p) {
  free(p);
  return NULL;
}
static void double_free_threads(void) {
  char *p = launder(malloc(16));
  pthread_t t;
  pthread_create(&t, NULL, free_it, p);
  pthread_join(t, NULL);
  free(p);
}
static void write_after_free_header(void) {
  char *p = launder(malloc(48));
  free(p);
  memset(p - 64, 0x41, 16);       /* the freed block's header */
  pm_collect(0);
}
static void double_free(void) {
  char *p = launder(malloc(16));
  free(p);
  free(p);
}
static void double_free_large(void) {
  char *p = launder(malloc(100000));
  free(p);
  free(p);
}
static void free_stack(void) {
  unsigned long buf[8] = {0};
  free(launder(&buf[2]));
}
static void free_inside(void) {
  char *p = launder(malloc(64));
  free(p + 16);
}
static void free_wild(void) {
  free(launder((void *)(uintptr_t)0x10000));
}
static void write_after_free_collect(void) {
  char *p = launder(malloc(48));
  free(p);
  p[5] = 0x41;
  pm_collect(0);                   /* checks and empties the quarantine */
}
static void write_after_free_many(void) {
  char *p = launder(malloc(48));
  free(p);
  p[47] = 0x41;
  for (int i = 0; i < 5000; i++) free(launder(malloc(32)));   /* pushes p out of the quarantine */
}
static void write_after_free_exit(void) {
  long *p = launder(malloc(200));
  free(p);
  p[3] = 7;
  exit(0);                         /* the quarantine is checked at exit */
}
static void realloc_freed(void) {
  char *p = launder(malloc(32));
  free(p);
  p = realloc(p, 64);
  sink = p;
}
static void usable_size_freed(void) {
  char *p = launder(malloc(32));
  free(p);
  printf("%zu\n", malloc_usable_size(p));
}

/* Everything right: silence, exit 0. */
static void correct(void) {
  char *v[300];
  for (int i = 0; i < 300; i++) {
    v[i] = malloc((size_t)i * 37 % 2000);
    memset(v[i], i, (size_t)i * 37 % 2000);
  }
  for (int i = 0; i < 300; i++) {
    size_t n = (size_t)i * 37 % 2000;
    if (malloc_usable_size(v[i]) != n) {
      fprintf(stderr, "usable size %zu, expected %zu\n", malloc_usable_size(v[i]), n);
      exit(3);
    }
    v[i] = realloc(v[i], n + 100);
    for (size_t j = 0; j < n; j++)
      if ((unsigned char)v[i][j] != (unsigned char)i) exit(4);
  }
  for (int i = 0; i < 300; i += 2) free(v[i]);
  unsigned char *z = calloc(100, 7);
  for (int i = 0; i < 700; i++)
    if (z[i] != 0) exit(5);
  free(z);
  void *a;
  if (posix_memalign(&a, 64, 100) != 0 || (uintptr_t)a % 64 != 0) exit(6);
  free(a);
  a = memalign(4096, 10);
  if ((uintptr_t)a % 4096 != 0) exit(7);
  free(a);
  unsigned char *m = malloc(10);
  if (m[0] != 0xCD) exit(8);       /* new memory is filled with 0xCD */
  free(m);
  for (int i = 1; i < 300; i += 2) free(v[i]);
  free(malloc(0));
  /* Blocks from the C library's own malloc (as those allocated before
   * poolmalloc was loaded) are not debug blocks, and go to it. */
  char *g = __libc_malloc(100);
  if (malloc_usable_size(g) < 100) exit(9);
  free(g);
  g = __libc_malloc(1000);
  memset(g, 7, 1000);
  g = realloc(g, 3000);               /* becomes a debug block */
  if (g[999] != 7 || malloc_usable_size(g) != 3000) exit(10);
  free(g);
  pm_collect(1);
  exit(0);
}

typedef struct test_case {
  const char *name;
  void (*fn)(void);
  const char *expect;   /* in stderr; NULL: the correct program */
} test_case;

static const test_case cases[] = {
  {"overflow after a small block", overflow_small, "the guard after the block is damaged"},
  {"overflow after a large block", overflow_large, "the guard after the block is damaged"},
  {"overflow found by realloc", overflow_calloc_realloc, "realloc(): the guard after the block is damaged"},
  {"underflow before a block", underflow, "the guard before the block is damaged"},
  {"underflow before an aligned block", underflow_aligned, "the guard before the block is damaged"},
  {"damaged header", underflow_header, "the header of the block is damaged"},
  {"double free", double_free, "double free"},
  {"double free, first free in another thread", double_free_threads, "double free"},
  {"double free of a large block", double_free_large, "double free"},
  {"free of a stack address", free_stack, "not from malloc (an address on the stack)"},
  {"free of a pointer inside a block", free_inside, "not the start of a block (it points inside one)"},
  {"free of a wild pointer", free_wild, "invalid pointer"},
  {"write after free, pm_collect", write_after_free_collect, "write after free: 1 byte of the freed block modified, at offsets 5..5"},
  {"write after free, many frees", write_after_free_many, "write after free: 1 byte of the freed block modified, at offsets 47..47"},
  {"write after free into the header", write_after_free_header, "the header of a freed block was overwritten"},
  {"write after free, at exit", write_after_free_exit, "write after free"},
  {"realloc of a freed block", realloc_freed, "realloc(): realloc of a freed block"},
  {"malloc_usable_size of a freed block", usable_size_freed, "malloc_usable_size(): the block is not alive"},
  {"a correct program", correct, NULL},
};

static int run(const test_case *c) {
  int fds[2];
  if (pipe(fds) != 0) return 1;
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    dup2(fds[1], 2);
    c->fn();
    exit(c->expect ? 99 : 0);      /* a broken program must not get here */
  }
  close(fds[1]);
  static char err[65536];
  size_t len = 0;
  ssize_t n;
  while ((n = read(fds[0], err + len, sizeof err - 1 - len)) > 0) len += (size_t)n;
  err[len] = '\0';
  close(fds[0]);
  int status;
  waitpid(pid, &status, 0);
  int ok;
  if (c->expect == NULL) {
    ok = WIFEXITED(status) && WEXITSTATUS(status) == 0 && len == 0;
  } else {
    ok = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT && strstr(err, c->expect) != NULL &&
         strstr(err, "poolmalloc: debug: ") != NULL && strstr(err, "backtrace:") != NULL;
    if (ok && strstr(c->expect, "guard") != NULL) ok = strstr(err, "*") != NULL;   /* the hex dump marks bytes */
  }
  printf("%s: %s (%s %d)\n", ok ? "ok" : "FAIL", c->name, WIFSIGNALED(status) ? "signal" : "exit",
         WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
  if (!ok) printf("  expected \"%s\"; stderr:\n%s\n", c->expect ? c->expect : "(nothing)", err);
  else if (getenv("PM_VERBOSE")) printf("%s\n", err);
  return !ok;
}

int main(int argc, char **argv) {
  const char *d = getenv("POOLMALLOC_DEBUG");
  if (d == NULL || strcmp(d, "1") != 0) {
    setenv("POOLMALLOC_DEBUG", "1", 1);
    execv("/proc/self/exe", argv);
    perror("execv");
    return 1;
  }
  int failed = 0;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) failed += run(&cases[i]);
  printf("%d failure(s)\n", failed);
  return failed != 0;
}
