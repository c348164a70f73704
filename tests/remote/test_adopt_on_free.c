/* A thread whose first call is a free into the heap of an exited thread
 * takes that heap for its own (heap.c, pmi_heap_adopt_for_free), not the
 * newest abandoned heap its first malloc would find:
 *   - thread A allocates blocks of pool and medium sizes, fills them, exits;
 *   - thread C allocates a few blocks of its own and exits after A, so that
 *     its heap is the newest abandoned one;
 *   - thread B frees A's blocks, first call first: they are its own now,
 *     freed by the fast paths (no free counted as another thread's, no
 *     push), and the blocks it then allocates come from A's pools and
 *     regions, reused (no arena or region mapped);
 *   - thread D frees C's blocks first: it adopts C's heap, though A's
 *     (B's) is newer;
 *   - two threads whose first frees go into one abandoned heap at once: one
 *     adopts it, the other's frees are remote frees as before; every block
 *     is back, the heap checks clean.
 * Run again in debug mode (the heap found through the thread's key). */
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

/* Frees blocks lo .. hi-1 (first call of the thread), checking their fill. */
static void free_range(int lo, int hi) {
  for (int i = lo; i < hi; i++) {
    const unsigned char *b = blocks[i];
    if (b[0] != (i & 0xff) || b[size_of(i) - 1] != (i & 0xff)) __atomic_fetch_add(&bad_contents, 1, __ATOMIC_RELAXED);
    pm_free(blocks[i]);
  }
}

static pm_counters b_before, b_after;

static void *thread_b(void *arg) {
  free_range(0, N);
  pm_counters_get(&b_before);
  for (int i = 0; i < N; i++) again[i] = pm_malloc(size_of(i));
  pm_counters_get(&b_after);
  for (int i = 0; i < N; i++) pm_free(again[i]);
  return arg;
}

/* Frees C's blocks first: it adopts C's heap, though A's (B's) is newer. */
static void *thread_d(void *arg) {
  for (int i = 0; i < NC; i++) pm_free(cblocks[i]);
  pm_free(pm_malloc(48));
  return arg;
}

static void *thread_half(void *arg) {
  int half = (int)(intptr_t)arg;
  pthread_barrier_wait(&both);
  free_range(half * (N / 2), (half + 1) * (N / 2));
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
  CHECKF(remote == 0, "%llu of B's frees went to A's heap as another thread's (not adopted)", remote);
  if (!debug) CHECKF(pushes == 0, "%llu pushes for frees into the heap B adopted", pushes);   /* (not the quarantine's) */
  CHECKF(created == 0, "B made %llu heaps: it should have adopted A's", created);
  if (!debug) CHECKF(mapped == 0, "B mapped %llu arenas or regions, A's memory was free in its own heap", mapped);

  pm_counters_get(&before);
  run(thread_d, NULL);
  pm_counters_get(&after);
  CHECKF(after.heaps_created == before.heaps_created, "D made a heap (C's was abandoned)");
  CHECKF(after.free_remote == before.free_remote, "%llu of D's frees went to C's heap as another thread's",
         after.free_remote - before.free_remote);

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

  if (!debug) pmr_setenv_reexec(argv, "POOLMALLOC_DEBUG", "1", NULL);
  return pmt_done("adopt_on_free");
}
