/* A thread that frees into the heap of an exited thread before its first
 * malloc adopts that heap at the malloc (heap.c, pmi_heap_note_unowned),
 * not the newest abandoned heap:
 *   - thread A allocates blocks of pool and medium sizes, fills them, exits;
 *   - thread C allocates a few blocks of its own and exits after A, so that
 *     its heap is the newest abandoned one;
 *   - thread B frees one of A's blocks, mallocs, then frees the others:
 *     they are its own now, freed by the fast paths (no free but the first
 *     counted as another thread's, no push), and the blocks it then
 *     allocates come from A's pools and regions (no arena or region mapped);
 *   - thread D does the same with C's blocks, though A's heap (B's) is newer;
 *   - thread E only frees (a consumer of an exited producer's blocks): it
 *     adopts nothing, so that the memory goes back as the heap empties,
 *     with no owner's slow path needed;
 *   - two threads whose first frees go into one abandoned heap at once: one
 *     adopts it, the other's frees are remote frees as before; every block
 *     is back, the heap checks clean.
 * Run again in debug mode, for the checks that do not depend on when a
 * block is really freed (there the quarantine frees it later, mostly after
 * the thread's first malloc). */
#include <pthread.h>

#include "remote_test.h"

enum { N = 4000, NC = 64 };
static void *blocks[N];
static void *again[N];
static void *cblocks[NC];

static size_t size_of(int i) { return 16 + (size_t)(i * 7919) % 2000; }   /* 16..2015 bytes */

static pthread_barrier_t both;
static int a_gone;

static void *thread_a(void *arg) {
  for (int i = 0; i < N; i++) {
    blocks[i] = pm_malloc(size_of(i));
    memset(blocks[i], i & 0xff, size_of(i));
  }
  if (arg != NULL) pthread_barrier_wait(&both);   /* C has its heap: not A's */
  return NULL;
}

/* Allocates while A lives (a heap of its own), exits after A. */
static void *thread_c(void *arg) {
  for (int i = 0; i < NC; i++) cblocks[i] = pm_malloc(48);
  pthread_barrier_wait(&both);
  while (!__atomic_load_n(&a_gone, __ATOMIC_ACQUIRE)) pmr_sleep_ms(1);
  return arg;
}

static int bad_contents;

/* Frees blocks lo .. hi-1, checking their fill; with malloc_after, a malloc
 * after the first free. */
static void free_range(int lo, int hi, int malloc_after) {
  for (int i = lo; i < hi; i++) {
    const unsigned char *b = blocks[i];
    if (b[0] != (i & 0xff) || b[size_of(i) - 1] != (i & 0xff)) __atomic_fetch_add(&bad_contents, 1, __ATOMIC_RELAXED);
    pm_free(blocks[i]);
    if (i == lo && malloc_after) pm_free(pm_malloc(16));
  }
}

static pm_counters b_before, b_after;

static void *thread_b(void *arg) {
  free_range(0, N, 1);
  pm_counters_get(&b_before);
  for (int i = 0; i < N; i++) again[i] = pm_malloc(size_of(i));
  pm_counters_get(&b_after);
  for (int i = 0; i < N; i++) pm_free(again[i]);
  return arg;
}

static void *thread_d(void *arg) {
  pm_free(cblocks[0]);
  pm_free(pm_malloc(48));
  for (int i = 1; i < NC; i++) pm_free(cblocks[i]);
  return arg;
}

static void *thread_e(void *arg) {
  free_range(0, N, 0);
  return arg;
}

static void *thread_half(void *arg) {
  int half = (int)(intptr_t)arg;
  pthread_barrier_wait(&both);
  free_range(half * (N / 2), (half + 1) * (N / 2), 1);
  return NULL;
}

static void run(void *(*fn)(void *), void *arg) {
  pthread_t t;
  pthread_create(&t, NULL, fn, arg);
  pthread_join(t, NULL);
}

int main(int argc, char **argv) {
  (void)argc;
  int debug = getenv("POOLMALLOC_DEBUG") != NULL && strcmp(getenv("POOLMALLOC_DEBUG"), "1") == 0;
  unsigned long long in_use0 = pmr_in_use();
  pm_counters before, after;

  pthread_barrier_init(&both, NULL, 2);
  pthread_t a, c;
  pthread_create(&a, NULL, thread_a, &both);
  pthread_create(&c, NULL, thread_c, NULL);
  pthread_join(a, NULL);
  __atomic_store_n(&a_gone, 1, __ATOMIC_RELEASE);
  pthread_join(c, NULL);   /* C's heap is the newest abandoned one now */
  pthread_barrier_destroy(&both);
  pm_counters_get(&before);
  run(thread_b, NULL);
  pm_counters_get(&after);
  unsigned long long remote = after.free_remote - before.free_remote, pushes = after.remote_pushes - before.remote_pushes;
  unsigned long long created = after.heaps_created - before.heaps_created;
  unsigned long long mapped = (b_after.arenas_mapped - b_before.arenas_mapped) + (b_after.mediums_mapped - b_before.mediums_mapped);
  fprintf(stderr, "%s: B freed %d blocks of A's heap: %llu counted remote, %llu pushes, %llu heaps made, %llu arenas/regions mapped for its mallocs\n",
          debug ? "debug" : "plain", N, remote, pushes, created, mapped);
  CHECKF(bad_contents == 0, "%d blocks lost their contents", bad_contents);
  if (!debug) CHECKF(remote == 1, "%llu of B's frees went to A's heap as another thread's (1: the first, before it adopted)", remote);
  if (!debug) CHECKF(pushes == 0, "%llu pushes for frees into the heap B adopted", pushes);   /* (not the quarantine's) */
  CHECKF(created == 0, "B made %llu heaps: it should have adopted A's", created);
  if (!debug) CHECKF(mapped == 0, "B mapped %llu arenas or regions, A's memory was free in its own heap", mapped);

  pm_counters_get(&before);
  run(thread_d, NULL);
  pm_counters_get(&after);
  CHECKF(after.heaps_created == before.heaps_created, "D made a heap (C's was abandoned)");
  if (!debug) CHECKF(after.free_remote - before.free_remote == 1, "%llu of D's frees went to C's heap as another thread's",
         after.free_remote - before.free_remote);

  run(thread_a, NULL);
  pm_counters_get(&before);
  run(thread_e, NULL);
  pm_counters_get(&after);
  CHECKF(after.heaps_adopted == before.heaps_adopted, "E, which only frees, adopted a heap");
  CHECKF(after.free_remote - before.free_remote == N, "%llu of E's %d frees went to A's heap as another thread's",
         after.free_remote - before.free_remote, N);

  /* two new threads, first frees into one abandoned heap at once */
  run(thread_a, NULL);
  pthread_barrier_init(&both, NULL, 2);
  pthread_t h[2];
  for (int k = 0; k < 2; k++) pthread_create(&h[k], NULL, thread_half, (void *)(intptr_t)k);
  for (int k = 0; k < 2; k++) pthread_join(h[k], NULL);
  pthread_barrier_destroy(&both);
  CHECKF(bad_contents == 0, "%d blocks lost their contents", bad_contents);
  if (!debug) CHECKF(pmr_in_use() <= in_use0 + 8, "%llu blocks in use (%llu before)", pmr_in_use(), in_use0);   /* (debug: the quarantine's) */
  CHECK(pm_check() == 0);

  if (!debug && pmt_failed() == 0) pmr_setenv_reexec(argv, "POOLMALLOC_DEBUG", "1", NULL);   /* (a failure ends here) */
  return pmt_done("adopt_on_free");
}
