/* An idle heap's ring of hints (remote.c, "an idle ring"): another thread's
 * frees fill the owner's ring, which then holds pages of memory; a visitor
 * gives them back once a whole pass saw no push (the purge thread's rule:
 * one pass notes the position and stays pending, the next one with the
 * position unchanged gives the pages back), malloc_trim's look at once; a
 * push after that brings them back, and the rule starts again.  The purge
 * thread is off: the passes are the test's own. */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/internal.h"
#include "pmtest.h"

enum { N = 20000, SIZE = 64 };
static void *blocks[N];

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int state;   /* 1: blocks ready; 2: exit */

static void *owner(void *arg) {
  for (int i = 0; i < N; i++) blocks[i] = pm_malloc(SIZE);
  pthread_mutex_lock(&mu);
  state = 1;
  pthread_cond_broadcast(&cv);
  while (state != 2) pthread_cond_wait(&cv, &mu);   /* idle: no allocator call */
  pthread_mutex_unlock(&mu);
  return NULL;
}

/* Resident pages of heap's ring. */
static unsigned ring_resident(pmi_heap *heap) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  uintptr_t start = (uintptr_t)heap->remote_hint & ~(uintptr_t)(page - 1);
  uintptr_t end = (uintptr_t)(heap->remote_hint + PMI_REMOTE_HINTS);
  static unsigned char vec[PMI_REMOTE_HINTS * sizeof(void *) / 4096 + 2];
  size_t n = (end - start + page - 1) / page;
  if (n > sizeof vec || mincore((void *)start, end - start, vec) != 0) return ~0u;
  unsigned r = 0;
  for (size_t i = 0; i < n; i++) r += vec[i] & 1;
  return r;
}

static size_t pass(pmi_heap *heap, bool now, bool *pending) {
  *pending = false;
  pmi_heap_visit(heap);
  size_t bytes = pmi_remote_hints_decay(heap, now, pending);
  pmi_heap_visit_end(heap);
  return bytes;
}

int main(void) {
  pmi_option(purge_thread) = 0;
  pm_free(pm_malloc(1));
  pthread_t t;
  pthread_create(&t, NULL, owner, NULL);
  pthread_mutex_lock(&mu);
  while (state != 1) pthread_cond_wait(&cv, &mu);
  pthread_mutex_unlock(&mu);
  pmi_heap *heap = pmi_load_relaxed(&pmi_arena_of(blocks[0])->heap);
  CHECK(heap != NULL && heap != pmi_heap_own());
  bool pending;
  /* A heap no other thread freed to never touches its ring: only the page
   * it shares with the heap's own fields is in memory (the owner's, after
   * its 20,000 mallocs; ours, after its own). */
  CHECKF(ring_resident(heap) <= 1, "%u pages of an unused ring resident", ring_resident(heap));
  CHECKF(ring_resident(pmi_heap_own()) <= 1, "%u pages of our unused ring resident", ring_resident(pmi_heap_own()));
  CHECK(pass(heap, false, &pending) == 0);   /* nothing pushed yet: nothing resident, nothing pending */
  CHECK(!pending);
  for (int i = 0; i < N; i++) pm_free(blocks[i]);   /* remote frees: pushed in batches */
  pmi_remote_flush();
  unsigned before = ring_resident(heap);
  fprintf(stderr, "hint ring: %u pages resident, hint_pos %llu\n", before,
          (unsigned long long)atomic_load(&heap->hint_pos));
  CHECK(atomic_load(&heap->hint_pos) >= N / 2);
  {
    CHECKF(before > 0, "%u pages resident", before);
    CHECK(pass(heap, false, &pending) == 0);   /* it moved since the last look */
    CHECK(pending);
    size_t bytes = pass(heap, false, &pending);   /* still: back */
    CHECKF(bytes >= PMI_REMOTE_HINTS * sizeof(void *) - 8192, "%zu bytes given back", bytes);
    CHECK(!pending);
    unsigned after = ring_resident(heap);
    CHECKF(after <= 2, "%u pages of the ring still resident", after);
    CHECK(pass(heap, false, &pending) == 0 && !pending);   /* nothing more */
    /* a push brings it back; malloc_trim's look gives it back at once */
    atomic_store(&heap->hint_pos, atomic_load(&heap->hint_pos) + 1);
    heap->remote_hint[5] = NULL;
    CHECK(ring_resident(heap) >= 1);
    CHECK(pass(heap, true, &pending) > 0);
    CHECKF(ring_resident(heap) <= 2, "%u pages resident after malloc_trim's look", ring_resident(heap));
  }
  pmi_heap_visit(heap);
  pmi_heap_collect_any(heap);   /* the head pool's blocks wait in held_used: checked with the rest */
  CHECK(pmi_check_heap(heap, 1) == 0);
  pmi_heap_visit_end(heap);
  pthread_mutex_lock(&mu);
  state = 2;
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mu);
  pthread_join(t, NULL);
  /* this thread only freed to others: its own ring is still untouched */
  CHECKF(ring_resident(pmi_heap_own()) <= 1, "%u pages of our unused ring resident", ring_resident(pmi_heap_own()));
  CHECK(pm_check() == 0);
  return pmt_done("test_hints");
}
