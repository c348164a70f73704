/* The owner in the free map's entries (types.h, pmi_free_slot): free's fast
 * path takes a block as its own when the entry of the block's slot holds
 * the calling thread's pointer, so the entries of a heap must follow the
 * thread that owns it.  glibc starts the next thread on the stack of one
 * that exited, with the same thread pointer, and so does a fork's child
 * for the stacks of the threads it did not inherit: the entries of the
 * exited thread's heap must not name that pointer any longer, or the new
 * thread's frees would go into a heap it does not own.
 *
 *   1. thread A allocates pool and medium blocks: their entries name A;
 *   2. A exits: its heap's tp and every entry are 0;
 *   3. thread B (most often on A's stack: the same thread pointer) frees
 *      half of A's blocks before it owns a heap, then allocates, which
 *      adopts A's heap: the entries name B;
 *   4. thread C allocates and waits while the main thread forks: in the
 *      child C's heap is nobody's and its entries 0, and a thread the child
 *      starts frees C's blocks and allocates.
 * The checker (pmi_check_heap) compares every entry with its heap's tp at
 * every step. */
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/internal.h"
#include "diag/diag.h"
#include "pmtest.h"

enum { N = 1200 };

static size_t size_of(int i) { return i % 2 ? 16 + (size_t)(i % 32) * 16 : 600 + (size_t)(i % 40) * 400; }

static uintptr_t owner_of(const void *p) { return pmi_freemap[(uintptr_t)p >> PMI_ARENA_SHIFT].owner; }

static void *blocks[N];
static pthread_t self_a;
static pmi_heap *heap_a;

static void *thread_a(void *arg) {
  (void)arg;
  for (int i = 0; i < N; i++) blocks[i] = pm_malloc(size_of(i));
  heap_a = pmi_heap_own();
  self_a = pthread_self();
  CHECK(heap_a != &pmi_heap_empty && heap_a->tp == pmi_thread_pointer());
  unsigned wrong = 0;
  for (int i = 0; i < N; i++) wrong += owner_of(blocks[i]) != pmi_thread_pointer();
  CHECKF(wrong == 0, "%u of A's blocks in entries that do not name A", wrong);
  CHECK(pmi_check_heap(heap_a, 1) == 0);
  return NULL;
}

static void *thread_b(void *arg) {
  (void)arg;
  bool same = pthread_equal(pthread_self(), self_a);
  CHECK(pmi_heap_own() == &pmi_heap_empty);   /* no heap yet: every free is someone else's */
  unsigned wrong = 0;
  for (int i = 0; i < N / 2; i++) {
    wrong += owner_of(blocks[i]) != 0;
    pm_free(blocks[i]);
  }
  CHECKF(wrong == 0, "%u of A's blocks name a thread after A's exit", wrong);
  void *q = pm_malloc(64);   /* adopts the heap it freed into (heap.c, heap_wanted) */
  pmi_heap *h = pmi_heap_own();
  CHECK(h->tp == pmi_thread_pointer());
  if (h == heap_a) {
    wrong = 0;
    for (int i = N / 2; i < N; i++) wrong += owner_of(blocks[i]) != pmi_thread_pointer();
    CHECKF(wrong == 0, "%u of the adopted heap's blocks do not name its new owner", wrong);
  }
  CHECK(pmi_check_heap(h, 1) == 0);
  for (int i = N / 2; i < N; i++) pm_free(blocks[i]);
  pm_free(q);
  CHECK(pmi_check_heap(h, 1) == 0);
  return (void *)(uintptr_t)same;
}

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int stage;   /* 1: C's blocks are out; 2: C may go on */
static pmi_heap *heap_c;

static void *thread_c(void *arg) {
  (void)arg;
  for (int i = 0; i < N; i++) blocks[i] = pm_malloc(size_of(i));
  heap_c = pmi_heap_own();
  pthread_mutex_lock(&mu);
  stage = 1;
  pthread_cond_broadcast(&cv);
  while (stage != 2) pthread_cond_wait(&cv, &mu);
  pthread_mutex_unlock(&mu);
  for (int i = 0; i < N; i++) pm_free(blocks[i]);
  return NULL;
}

static void *child_thread(void *arg) {
  (void)arg;
  for (int i = 0; i < N; i++) pm_free(blocks[i]);
  void *q = pm_malloc(100);
  CHECK(pmi_check_heap(pmi_heap_own(), 1) == 0);
  pm_free(q);
  return NULL;
}

int main(void) {
  pmi_option(purge_thread) = 0;
  pm_free(pm_malloc(1));
  REQUIRE(!pmi_debug_active);
  REQUIRE(pmi_heap_own()->tp == pmi_thread_pointer());

  pthread_t t;
  REQUIRE(pthread_create(&t, NULL, thread_a, NULL) == 0);
  pthread_join(t, NULL);
  CHECK(heap_a->tp == 0);
  unsigned named = 0;
  for (int i = 0; i < N; i++) named += owner_of(blocks[i]) != 0;
  CHECKF(named == 0, "%u of an exited thread's blocks still name a thread", named);
  CHECK(pmi_check_heap(heap_a, 1) == 0);

  void *same = NULL;
  REQUIRE(pthread_create(&t, NULL, thread_b, NULL) == 0);
  pthread_join(t, &same);
  printf("B %s A's thread pointer\n", same ? "had" : "did not have");

  REQUIRE(pthread_create(&t, NULL, thread_c, NULL) == 0);
  pthread_mutex_lock(&mu);
  while (stage != 1) pthread_cond_wait(&cv, &mu);
  pthread_mutex_unlock(&mu);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    CHECK(heap_c->tp == 0);
    named = 0;
    for (int i = 0; i < N; i++) named += owner_of(blocks[i]) != 0;
    CHECKF(named == 0, "%u of a thread's blocks name it in a child it is not in", named);
    CHECK(pmi_check_heap(heap_c, 1) == 0);
    pthread_t d;
    CHECK(pthread_create(&d, NULL, child_thread, NULL) == 0);
    pthread_join(d, NULL);
    CHECK(pmi_check_heap(pmi_heap_own(), 1) == 0);
    _exit(pmt_failed() ? 1 : 0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child's status %#x", status);
  CHECK(heap_c->tp != 0 && heap_c->tp != pmi_thread_pointer());   /* the parent's C still owns it */
  pthread_mutex_lock(&mu);
  stage = 2;
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mu);
  pthread_join(t, NULL);
  return pmt_done("internal.test_owner");
}
