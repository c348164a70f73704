/* atfork_lib.c: a library whose fork handlers allocate, as crypto and
 * logging libraries do (reseed, reopen in the child).  Its constructor
 * registers the handlers before anything in the process has called malloc,
 * so that they are registered before the allocator's own.  ATFORK_HANDLERS
 * names the handlers that allocate: any of "prepare", "parent", "child". */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static int in_prepare, in_parent, in_child;
static _Atomic int calls;   /* handlers run, parent side */

int atfork_lib_calls(void) { return calls; }

/* Enough blocks of one class to leave the fast path (a fresh pool, then
 * emptying it), one large block, and a realloc across the two. */
static void churn(unsigned seed) {
  enum { N = 600 };
  void *v[N];
  for (int i = 0; i < N; i++) {
    v[i] = malloc(40 + seed % 7 * 16);
    if (v[i] == NULL) abort();
    memset(v[i], (int)seed, 40);
  }
  void *big = malloc(20000 + seed);
  if (big == NULL) abort();
  big = realloc(big, 300);
  big = realloc(big, 70000);
  for (int i = 0; i < N; i++) free(v[i]);
  free(big);
}

/* From prepare to parent or child, per forking thread: the handlers of
 * concurrent forks from several threads interleave. */
static __thread void *kept;

static void prepare(void) {
  calls++;
  if (!in_prepare) return;
  churn(1);
  kept = malloc(64);
}
static void parent(void) {
  if (in_parent) churn(2);
  free(kept);
  kept = NULL;
}
static void child(void) {
  if (in_child) churn(3);
  free(kept);
  kept = NULL;
}

__attribute__((constructor)) static void atfork_lib_init(void) {
  const char *h = getenv("ATFORK_HANDLERS");
  if (h == NULL) h = "prepare,parent,child";
  in_prepare = strstr(h, "prepare") != NULL;
  in_parent = strstr(h, "parent") != NULL;
  in_child = strstr(h, "child") != NULL;
  pthread_atfork(prepare, parent, child);
}
