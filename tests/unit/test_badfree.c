/* test_badfree.c: bad pointers are caught, reported and stop the program.
 *
 * Each case runs in a forked child whose stderr goes into a pipe.  A bad
 * free or realloc must end the child with SIGABRT, and its stderr must hold
 * one line that starts with "poolmalloc: ", names the function (free or
 * realloc), shows the pointer as %p prints it, and says what is wrong
 * ("invalid pointer" or "double free").  A correct child must print nothing
 * and exit 0.
 *
 * The blocks are allocated in the parent before the fork, so that the parent
 * knows the addresses the child will see. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pmtest.h"
#include "poolmalloc.h"

#ifndef PMT_GLIBC
#define PMT_GLIBC 0
#endif

/* Hides where a pointer came from, so that the compiler does not warn
 * about the deliberate misuse (-Wfree-nonheap-object, -Wuse-after-free). */
static void *volatile launder_slot;
static void *launder(void *p) {
  launder_slot = p;
  return launder_slot;
}

typedef struct bad_case {
  const char *name;
  const char *function;        /* "free" or "realloc" */
  const char *phrase;          /* what the message must say */
  const char *phrase2;         /* an alternative, or NULL */
  void *ptr;                   /* the pointer the message must show */
  void (*run)(struct bad_case *);
  void *a, *b;                 /* blocks for the case, allocated by the parent */
} bad_case;

/* ---- running a child ---------------------------------------------------- */

typedef struct child_result {
  int status;
  char err[8192];
  size_t len;
} child_result;

static void run_child(void (*fn)(bad_case *), bad_case *c, child_result *out) {
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);             /* an abort should not dump core */
    close(fds[0]);
    dup2(fds[1], STDERR_FILENO);
    close(fds[1]);
    alarm(10);
    fn(c);
    _exit(0);
  }
  close(fds[1]);
  out->len = 0;
  for (;;) {
    ssize_t n = read(fds[0], out->err + out->len, sizeof out->err - 1 - out->len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out->len += (size_t)n;
    if (out->len == sizeof out->err - 1) break;
  }
  out->err[out->len] = '\0';
  close(fds[0]);
  REQUIRE(waitpid(pid, &out->status, 0) == pid);
}

/* fn occurs in s as a word of its own (not inside "double free") */
static bool names_function(const char *s, const char *fn) {
  size_t n = strlen(fn);
  for (const char *p = s; (p = strstr(p, fn)) != NULL; p += n) {
    bool word_start = p == s || !(p[-1] == '_' || (p[-1] >= 'a' && p[-1] <= 'z') || (p[-1] >= 'A' && p[-1] <= 'Z'));
    char after = p[n];
    bool word_end = !(after == '_' || (after >= 'a' && after <= 'z') || (after >= 'A' && after <= 'Z') ||
                      (after >= '0' && after <= '9'));
    bool in_double = p - s >= 7 && strncmp(p - 7, "double ", 7) == 0;
    if (word_start && word_end && !in_double) return true;
  }
  return false;
}

static bool is_hex(char ch) {
  return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
}

/* want (a "%p" string) occurs in s, not as the prefix of a longer number */
static bool shows_pointer(const char *s, const char *want) {
  size_t n = strlen(want);
  for (const char *p = s; (p = strstr(p, want)) != NULL; p++)
    if (!is_hex(p[n]) && (p == s || !is_hex(p[-1]))) return true;
  return false;
}

static void check_case(bad_case *c) {
  child_result res;
  run_child(c->run, c, &res);
  int st = res.status;
  CHECKF(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT,
         "%s: the child was not stopped by SIGABRT (%s %d); the library did not catch it?", c->name,
         WIFSIGNALED(st) ? "signal" : "exit", WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));

  char want_ptr[64];
  snprintf(want_ptr, sizeof want_ptr, "%p", c->ptr);
  const char *prefix = PMT_GLIBC ? "" : "poolmalloc: ";
  int lines = 0;
  bool ok_fn = false, ok_ptr = false, ok_phrase = false;
  static char copy[sizeof res.err];
  memcpy(copy, res.err, res.len + 1);
  for (char *line = copy; line != NULL && *line != '\0';) {
    char *nl = strchr(line, '\n');
    if (nl != NULL) *nl = '\0';
    if (strncmp(line, prefix, strlen(prefix)) == 0 && (!PMT_GLIBC || strstr(line, "()") != NULL)) {
      lines++;
      ok_fn = names_function(line, c->function);
      ok_ptr = PMT_GLIBC || shows_pointer(line, want_ptr);
      ok_phrase = PMT_GLIBC || strstr(line, c->phrase) != NULL ||
                  (c->phrase2 != NULL && strstr(line, c->phrase2) != NULL);
    }
    line = nl != NULL ? nl + 1 : NULL;
  }
  CHECKF(lines == 1, "%s: %d lines starting with \"%s\" on stderr, want 1", c->name, lines, prefix);
  if (lines == 1) {
    CHECKF(ok_fn, "%s: the message does not name %s()", c->name, c->function);
    CHECKF(ok_ptr, "%s: the message does not show the pointer %s", c->name, want_ptr);
    CHECKF(ok_phrase, "%s: the message does not say \"%s\"%s%s%s", c->name, c->phrase,
           c->phrase2 ? " or \"" : "", c->phrase2 ? c->phrase2 : "", c->phrase2 ? "\"" : "");
  }
  fprintf(stderr, "  %-40s -> %s", c->name, res.len ? res.err : "(no output)\n");
  if (res.len && res.err[res.len - 1] != '\n') fputc('\n', stderr);
}

/* ---- the cases ------------------------------------------------------------ */

static void case_interior(bad_case *c) { free(launder(c->ptr)); }

static void case_double_free(bad_case *c) {
  void *p = launder(c->a);
  free(p);
  free(launder(p));
}

/* free(a); free(b); free(a): a is no longer the most recent free */
static void case_double_free_later(bad_case *c) {
  free(launder(c->a));
  free(launder(c->b));
  free(launder(c->a));
}

static void case_realloc_freed(bad_case *c) {
  void *p = launder(c->a);
  free(p);
  void *q = realloc(launder(p), 100);
  launder(q);
}

static void case_realloc_interior(bad_case *c) {
  void *q = realloc(launder(c->ptr), 200);
  launder(q);
}

/* the second free comes from another thread: the remote-free path, which
 * does not read the owner's descriptor; caught when the owner collects */
static void *free_it(void *p) {
  free(p);
  return NULL;
}
static void case_double_free_remote(bad_case *c) {
  free(launder(c->a));
  pthread_t t;
  if (pthread_create(&t, NULL, free_it, launder(c->a)) != 0) _exit(3);
  pthread_join(t, NULL);
  pm_collect(0);
}

/* another thread frees it first, then the owner: caught at the latest
 * when the owner collects the remote frees */
static void case_remote_then_local(bad_case *c) {
  pthread_t t;
  if (pthread_create(&t, NULL, free_it, launder(c->a)) != 0) _exit(3);
  pthread_join(t, NULL);
  free(launder(c->a));
  pm_collect(0);
  for (int i = 0; i < 100; i++) free(launder(malloc(32)));
}

/* two other threads free it, one after the other */
static void case_remote_twice(bad_case *c) {
  for (int k = 0; k < 2; k++) {
    pthread_t t;
    if (pthread_create(&t, NULL, free_it, launder(c->a)) != 0) _exit(3);
    pthread_join(t, NULL);
  }
  pm_collect(0);
}

/* a block of a thread that has exited, freed twice by main */
static void *alloc_it(void *arg) {
  size_t *inout = arg;
  *inout = (size_t)malloc(*inout);
  return NULL;
}
static void *exited_threads_block(size_t size) {
  pthread_t t;
  size_t got = size;
  REQUIRE(pthread_create(&t, NULL, alloc_it, &got) == 0);
  pthread_join(t, NULL);
  REQUIRE(got != 0 && got != size);
  return (void *)got;
}
static void case_double_free_orphan(bad_case *c) {
  free(launder(c->a));
  free(launder(c->a));
}

/* as case_double_free_orphan, the second free from another thread: the
 * remote side finds the block's arena retired, without a heap */
static void case_double_free_orphan_remote(bad_case *c) {
  free(launder(c->a));
  pthread_t t;
  if (pthread_create(&t, NULL, free_it, launder(c->a)) != 0) _exit(3);
  pthread_join(t, NULL);
}

/* a bad pointer freed by another thread: the remote side's checks */
static void case_interior_remote(bad_case *c) {
  pthread_t t;
  if (pthread_create(&t, NULL, free_it, launder(c->ptr)) != 0) _exit(3);
  pthread_join(t, NULL);
}

static void case_large_misaligned(bad_case *c) { free(launder(c->ptr)); }

static void case_realloc_foreign(bad_case *c) { (void)!realloc(launder(c->ptr), 100); }

/* every block of p's pool freed (the pool empties), then p freed again */
#define POOL_MATES 64
static void case_double_free_emptied_pool(bad_case *c) {
  void **mates = c->b;
  uintptr_t pool = (uintptr_t)c->a & ~(uintptr_t)4095;
  for (int i = 0; i < POOL_MATES; i++)
    if (((uintptr_t)mates[i] & ~(uintptr_t)4095) == pool) free(launder(mates[i]));
  free(launder(c->a));
}

/* An overflow into a freed block: b, then a, freed (a heads its list),
 * a's link overwritten; the next malloc of the class pops a, finds its
 * link leaving the pool or region (the compare that also catches the end
 * of the list, internal.h) and reports it.  The message names the block,
 * not a function: "heap corruption". */
typedef struct corrupt_mate { void *other; size_t size; } corrupt_mate;   /* a case's b */
static void case_corrupt_link(bad_case *c) {
  corrupt_mate *m = c->b;
  size_t size = m->size;
  free(launder(m->other));
  free(launder(c->a));
  memset(launder(c->a), 0x41, sizeof(uintptr_t));
  void *volatile x = malloc(size);
  void *volatile y = malloc(size);
  (void)x;
  (void)y;
}

/* ---- a correct program prints nothing -------------------------------------- */

static void good_child(bad_case *c) {
  pmt_rng r = pmt_rng_seed(12);
  enum { K = 1000 };
  static void *v[K];
  for (int round = 0; round < 20; round++) {
    for (int i = 0; i < K; i++) v[i] = malloc(pmt_range(&r, 0, 2000));
    for (int i = 0; i < K; i += 2) v[i] = realloc(v[i], pmt_range(&r, 1, 1000));
    for (int i = K - 1; i >= 0; i--) free(v[i]);
  }
  free(c->a);
  if (pm_check() != 0) _exit(2);
}

int main(void) {
  alarm(120);
  bad_case cases[60];
  int n = 0;
  void *p;

  p = malloc(32);
  cases[n++] = (bad_case){"free(p + 8), 32-byte block", "free", "invalid pointer", NULL,
                          (char *)p + 8, case_interior, p, NULL};
  p = malloc(64);
  cases[n++] = (bad_case){"free(p + 16), 64-byte block", "free", "invalid pointer", NULL,
                          (char *)p + 16, case_interior, p, NULL};
  p = malloc(512);
  cases[n++] = (bad_case){"free(p + 256), 512-byte block", "free", "invalid pointer", NULL,
                          (char *)p + 256, case_interior, p, NULL};
  p = malloc(48);
  cases[n++] = (bad_case){"free(p + 1), 48-byte block", "free", "invalid pointer", NULL,
                          (char *)p + 1, case_interior, p, NULL};
  p = malloc(16);
  cases[n++] = (bad_case){"free(p); free(p), 16-byte block", "free", "double free", NULL, p,
                          case_double_free, p, NULL};
  /* a 400-byte block alone in its pool's class: the free empties the pool */
  p = malloc(400);
  cases[n++] = (bad_case){"free(p); free(p), block alone in its pool", "free", "double free", NULL,
                          p, case_double_free, p, NULL};
  void *q = malloc(96);
  p = malloc(96);
  void *keep = malloc(96);   /* keeps the pool in use */
  cases[n++] = (bad_case){"free(p); free(q); free(p)", "free", "double free", NULL, p,
                          case_double_free_later, p, q};
  p = malloc(80);
  cases[n++] = (bad_case){"realloc of a freed small block", "realloc", "double free",
                          "invalid pointer", p, case_realloc_freed, p, NULL};
  p = malloc(128);
  cases[n++] = (bad_case){"realloc(p + 32), 128-byte block", "realloc", "invalid pointer", NULL,
                          (char *)p + 32, case_realloc_interior, p, NULL};
  p = malloc(32);
  cases[n++] = (bad_case){"double free, second one from a thread", "free", "double free", NULL, p,
                          case_double_free_remote, p, NULL};
  p = malloc(32);
  cases[n++] = (bad_case){"double free, first one from a thread", "free", "double free", NULL, p,
                          case_remote_then_local, p, NULL};
  p = malloc(32);
  cases[n++] = (bad_case){"double free, both from other threads", "free", "double free", NULL, p,
                          case_remote_twice, p, NULL};
  void *orphan = exited_threads_block(48);
  /* the first free empties and retires the arena: the second finds the
   * block in an empty pool of the reserve, still a block of its class */
  cases[n++] = (bad_case){"double free of an exited thread's block", "free", "double free",
                          NULL, orphan, case_double_free_orphan, orphan, NULL};
  cases[n++] = (bad_case){"double free of an exited thread's block, second from a thread", "free",
                          "double free", NULL, orphan, case_double_free_orphan_remote, orphan, NULL};
  void *medium_orphan = exited_threads_block(3000);
  /* the same for a medium block: its region goes to the reserve */
  cases[n++] = (bad_case){"double free of an exited thread's medium block", "free", "double free",
                          NULL, medium_orphan, case_double_free_orphan, medium_orphan, NULL};
  static void *mates[POOL_MATES];
  for (int i = 0; i < POOL_MATES; i++) mates[i] = malloc(256);
  cases[n++] = (bad_case){"double free after its pool emptied", "free", "double free",
                          NULL, mates[POOL_MATES / 2], case_double_free_emptied_pool,
                          mates[POOL_MATES / 2], mates};
  /* a corrupt link, in a pool (a class no other case uses) and in a medium region */
  static corrupt_mate corrupt[2];
  if (!PMT_GLIBC) {
    static const size_t corrupt_size[2] = {272, 5008};
    for (int k = 0; k < 2; k++) {
      corrupt[k].other = malloc(corrupt_size[k]);
      corrupt[k].size = corrupt_size[k];
      p = malloc(corrupt_size[k]);
      cases[n++] = (bad_case){k == 0 ? "corrupt link of a pool's free block" : "corrupt link of a medium free block",
                              "heap", "heap corruption: the free block at", NULL, p, case_corrupt_link, p,
                              &corrupt[k]};
    }
  }
  /* The arena's first page holds its header and the pool descriptors: a
   * 16-aligned pointer there is in an arena of ours but in no pool.  free's
   * fast path leaves on the header (read as page 0's descriptor, state HEADER),
   * the slow path names the fault. */
  p = malloc(32);
  cases[n++] = (bad_case){"free of an arena's header page", "free", "invalid pointer", NULL,
                          (void *)(((uintptr_t)p & ~(uintptr_t)(256 * 1024 - 1)) + 128), case_interior, p, NULL};
  p = malloc(32);
  cases[n++] = (bad_case){"free of an arena's header page, from a thread", "free", "invalid pointer", NULL,
                          (void *)(((uintptr_t)p & ~(uintptr_t)(256 * 1024 - 1)) + 128), case_interior_remote, p, NULL};
  /* The block after a lone block: never handed out (its live bit clear). */
  p = malloc(448);
  cases[n++] = (bad_case){"free of a block never handed out", "free", "invalid pointer", "double free",
                          (char *)p + 448, case_interior, p, NULL};
  p = malloc(5000);
  cases[n++] = (bad_case){"free(p + 8), large block", "free", "invalid pointer", NULL,
                          (char *)p + 8, case_large_misaligned, p, NULL};

  /* Medium blocks (513 B .. 128 KiB, 16-byte aligned in 1 MiB regions). */
  p = malloc(4096);
  cases[n++] = (bad_case){"free(p + 1024), 4096-byte block", "free", "invalid pointer", NULL,
                          (char *)p + 1024, case_interior, p, NULL};
  p = malloc(1000);
  cases[n++] = (bad_case){"free(p + 16), 1000-byte block", "free", "invalid pointer", NULL,
                          (char *)p + 16, case_interior, p, NULL};
  p = malloc(20000);
  cases[n++] = (bad_case){"free(p); free(p), medium block", "free", "double free", NULL, p,
                          case_double_free, p, NULL};
  q = malloc(3000);
  p = malloc(3000);
  cases[n++] = (bad_case){"free(p); free(q); free(p), medium", "free", "double free", NULL, p,
                          case_double_free_later, p, q};
  p = malloc(2000);
  cases[n++] = (bad_case){"medium double free, second from a thread", "free", "double free", NULL, p,
                          case_double_free_remote, p, NULL};
  p = malloc(2000);
  cases[n++] = (bad_case){"medium double free, first from a thread", "free", "double free", NULL, p,
                          case_remote_then_local, p, NULL};
  /* the only block of the 128 KiB class: carving links two blocks, so the
   * third was never carved */
  p = malloc(131072);
  cases[n++] = (bad_case){"free of a medium block never handed out", "free", "never handed out", NULL,
                          (char *)p + 2 * 131072, case_interior, p, NULL};
  p = malloc(7000);
  cases[n++] = (bad_case){"free of a medium region's header", "free", "invalid pointer", NULL,
                          (char *)((uintptr_t)p & ~(uintptr_t)((1 << 20) - 1)) + 256, case_interior, p, NULL};
  p = malloc(7000);   /* the header's last page: the fields past the live bitmap */
  cases[n++] = (bad_case){"free of a medium region's header, last page", "free", "invalid pointer", NULL,
                          (char *)((uintptr_t)p & ~(uintptr_t)((1 << 20) - 1)) + 8192 + 64, case_interior, p, NULL};
  p = malloc(1000);   /* its class's colour: 1 KiB (and its region's 8 KiB steps) before block 0 */
  cases[n++] = (bad_case){"free of a medium region's colour gap", "free", "invalid pointer", NULL,
                          (char *)((uintptr_t)p & ~(uintptr_t)((1 << 20) - 1)) + 3 * 4096 + 512, case_interior, p, NULL};
  /* a region's header sits at its descriptor colour, 2592 + 128 k bytes in
   * for k = its MiB number mod 8 (types.h): free finds it from the arena
   * map's byte; the region's start and the header itself are no blocks */
  p = malloc(3000);
  cases[n++] = (bad_case){"free of a medium region's start", "free", "invalid pointer", NULL,
                          (char *)((uintptr_t)p & ~(uintptr_t)((1 << 20) - 1)), case_interior, p, NULL};
  p = malloc(3000);
  cases[n++] = (bad_case){"free of a medium region's coloured header", "free", "invalid pointer", NULL,
                          (char *)((uintptr_t)p & ~(uintptr_t)((1 << 20) - 1)) + 2592 + 128 * (((uintptr_t)p >> 20) & 7),
                          case_interior, p, NULL};
  p = malloc(9000);
  cases[n++] = (bad_case){"realloc(p + 128), medium block", "realloc", "invalid pointer", NULL,
                          (char *)p + 128, case_realloc_interior, p, NULL};
  p = malloc(700);
  cases[n++] = (bad_case){"realloc of a freed medium block", "realloc", "double free", "invalid pointer", p,
                          case_realloc_freed, p, NULL};
  /* Huge blocks (a mapping each). */
  p = malloc(1 << 20);
  cases[n++] = (bad_case){"free(p + 4096), huge block", "free", "invalid pointer", NULL,
                          (char *)p + 4096, case_interior, p, NULL};
  p = malloc(300000);
  cases[n++] = (bad_case){"free(p + 64), huge block", "free", "invalid pointer", NULL,
                          (char *)p + 64, case_interior, p, NULL};
  p = malloc(500000);
  cases[n++] = (bad_case){"free(p); free(p), huge block", "free", "double free", NULL, p,
                          case_double_free, p, NULL};
  p = malloc(600000);
  cases[n++] = (bad_case){"realloc(p + 8192), huge block", "realloc", "invalid pointer", NULL,
                          (char *)p + 8192, case_realloc_interior, p, NULL};
  /* 64 MiB: more than the huge cache keeps, so its mapping goes back to
   * the OS at the first free; the second finds no mapping at all */
  p = malloc(64u << 20);
  cases[n++] = (bad_case){"free(p); free(p), huge block unmapped", "free", "double free", NULL, p,
                          case_double_free, p, NULL};
  p = malloc(64u << 20);
  cases[n++] = (bad_case){"free(p); realloc(p), huge block unmapped", "realloc", "double free", NULL, p,
                          case_realloc_freed, p, NULL};

  /* Pointers neither poolmalloc nor the C library handed out, 16-aligned
   * so that only the look of the word before them gives them away. */
  static _Alignas(16) char static_area[256];
  memset(static_area, 0x5a, sizeof static_area);
  cases[n++] = (bad_case){"free of a static array", "free", "invalid pointer", NULL,
                          static_area + 64, case_large_misaligned, NULL, NULL};
  cases[n++] = (bad_case){"realloc of a static array", "realloc", "invalid pointer", NULL,
                          static_area + 128, case_realloc_foreign, NULL, NULL};

  /* The same, behind a word that looks like a chunk header of glibc's
   * (size 48, previous chunk in use): on the stack, in a static table. */
  _Alignas(16) size_t frame[16] = {0, 0x31, 7, 7, 7, 7, 0, 0, 0, 0x31, 7, 7};   /* main's frame: live in the child */
  cases[n++] = (bad_case){"free of a stack array behind a fake header", "free", "invalid pointer", NULL,
                          &frame[2], case_large_misaligned, NULL, NULL};
  cases[n++] = (bad_case){"realloc of a stack array behind a fake header", "realloc", "invalid pointer", NULL,
                          &frame[10], case_realloc_foreign, NULL, NULL};
  static _Alignas(16) size_t table[16] = {0, 0, 0, 0x31, 7, 7, 7, 7, 0, 0x31, 7, 7};
  cases[n++] = (bad_case){"free of a static table behind a fake header", "free", "invalid pointer", NULL,
                          &table[4], case_large_misaligned, NULL, NULL};
  cases[n++] = (bad_case){"realloc of a static table behind a fake header", "realloc", "invalid pointer", NULL,
                          &table[10], case_realloc_foreign, NULL, NULL};
  /* The first byte of a mapping with nothing mapped before it: the word
   * before the pointer cannot be read. */
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  char *two = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  REQUIRE(two != MAP_FAILED);
  REQUIRE(munmap(two, page) == 0);
  cases[n++] = (bad_case){"free of a page with nothing before it", "free", "invalid pointer", NULL,
                          two + page, case_large_misaligned, NULL, NULL};
  cases[n++] = (bad_case){"realloc of a page with nothing before it", "realloc", "invalid pointer", NULL,
                          two + page, case_realloc_foreign, NULL, NULL};

  if (!PMT_GLIBC) {
    for (int i = 0; i < n; i++) {
      if (strcmp(cases[i].function, "free") == 0 && cases[i].run != case_large_misaligned)
        CHECKF(pm_owns(cases[i].a), "%s: the block is not poolmalloc's", cases[i].name);
    }
  }

  for (int i = 0; i < n; i++) check_case(&cases[i]);

  /* a correct program: no output, exit 0 */
  bad_case good = {"correct program", "", "", NULL, NULL, good_child, malloc(100), NULL};
  child_result res;
  run_child(good_child, &good, &res);
  CHECKF(WIFEXITED(res.status) && WEXITSTATUS(res.status) == 0, "correct child: status %#x",
         res.status);
  CHECKF(res.len == 0, "correct child printed on stderr: %s", res.err);

  /* the parent's blocks are all still live here: free them properly */
  for (int i = 0; i < n; i++) {
    if (cases[i].run == case_double_free_emptied_pool) continue;
    if (cases[i].run == case_double_free_orphan_remote) continue;   /* its block is the case before's */
    if (cases[i].run == case_corrupt_link) {   /* b: the other block and the size */
      free(cases[i].a);
      free(((corrupt_mate *)cases[i].b)->other);
      continue;
    }
    free(cases[i].a);
    if (cases[i].b != NULL) free(cases[i].b);
  }
  for (int i = 0; i < POOL_MATES; i++) free(mates[i]);
  free(keep);
  free(good.a);
  int bad = pm_check();
  CHECKF(bad == 0, "pm_check() = %d at the end", bad);
  return pmt_done("unit.test_badfree");
}
