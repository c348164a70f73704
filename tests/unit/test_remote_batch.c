/* Remote frees are batched per thread: the batch reaches its owner when the
 * freeing thread exits, calls malloc_trim, or takes malloc's slow path; frees
 * into the heap of an exited thread are reclaimed at once. */
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pmtest.h"
#include "poolmalloc.h"

enum { N = 10 };
static void *blocks[N];
static pthread_barrier_t barrier;

static unsigned long long remote_frees(void) {
  pm_collect(0);   /* the owner (this thread) takes what was pushed */
  pm_counters c;
  pm_counters_get(&c);
  return c.free_remote;
}

static unsigned long long in_use(size_t size) {
  pm_stats st;
  pm_stats_get(&st);
  return st.classes[(size - 1) / 16].blocks_in_use;
}

static void *free_and_exit(void *arg) {
  for (int i = 0; i < N; i++) free(blocks[i]);   /* this thread never mallocs */
  return NULL;
}

static void *free_and_wait(void *arg) {
  for (int i = 0; i < N; i++) free(blocks[i]);
  pthread_barrier_wait(&barrier);   /* main looks: still in our batch */
  pthread_barrier_wait(&barrier);
  malloc_trim(0);                   /* flushes the batch */
  pthread_barrier_wait(&barrier);
  pthread_barrier_wait(&barrier);
  return NULL;
}

static void *alloc_and_exit(void *arg) {
  for (int i = 0; i < N; i++) blocks[i] = malloc(400);
  return NULL;
}

int main(void) {
  pthread_barrier_init(&barrier, NULL, 2);
  pthread_t t;

  /* 1. a thread that only frees, then exits: its destructor pushes the batch */
  unsigned long long before = remote_frees();
  for (int i = 0; i < N; i++) blocks[i] = malloc(272);
  pthread_create(&t, NULL, free_and_exit, NULL);
  pthread_join(t, NULL);
  CHECKF(remote_frees() == before + N, "after the freeing thread exited: %llu remote frees, want %llu",
         remote_frees(), before + N);
  CHECK(in_use(272) == 0);

  /* 2. a live thread's batch arrives when it calls malloc_trim */
  before = remote_frees();
  for (int i = 0; i < N; i++) blocks[i] = malloc(272);
  pthread_create(&t, NULL, free_and_wait, NULL);
  pthread_barrier_wait(&barrier);
  CHECKF(remote_frees() == before, "batched frees arrived early: %llu", remote_frees() - before);
  CHECK(in_use(272) == N);
  pthread_barrier_wait(&barrier);
  pthread_barrier_wait(&barrier);
  CHECKF(remote_frees() == before + N, "after malloc_trim: %llu remote frees, want %llu", remote_frees(),
         before + N);
  CHECK(in_use(272) == 0);
  pthread_barrier_wait(&barrier);
  pthread_join(t, NULL);

  /* 3. frees into an exited thread's heap are reclaimed at once */
  pthread_create(&t, NULL, alloc_and_exit, NULL);
  pthread_join(t, NULL);
  CHECK(in_use(400) == N);
  for (int i = 0; i < N; i++) free(blocks[i]);
  CHECKF(in_use(400) == 0, "%llu blocks of 400 bytes still in use", in_use(400));
  CHECK(pm_check() == 0);

  /* 4. the counters tell the kinds apart: another thread frees this
   *    thread's pool and medium blocks, this thread frees L pool blocks of
   *    its own; once collected, free_remote counts both kinds,
   *    free_remote_medium the medium ones, and free_small (this heap's own
   *    frees of pool blocks) grows by L alone */
  enum { L = 4 };
  void *own[L];
  pm_counters c0, c1;
  pm_collect(0);
  pm_counters_get(&c0);
  for (int i = 0; i < L; i++) own[i] = malloc(48);
  for (int i = 0; i < N; i++) blocks[i] = malloc(i % 2 ? 272 : 4000);
  pthread_create(&t, NULL, free_and_exit, NULL);
  pthread_join(t, NULL);
  for (int i = 0; i < L; i++) free(own[i]);
  pm_collect(0);
  pm_counters_get(&c1);
  CHECKF(c1.free_remote - c0.free_remote == N, "%llu remote frees, want %d",
         c1.free_remote - c0.free_remote, N);
  CHECKF(c1.free_remote_medium - c0.free_remote_medium == N / 2, "%llu medium remote frees, want %d",
         c1.free_remote_medium - c0.free_remote_medium, N / 2);
  CHECKF(c1.free_small - c0.free_small == L, "free_small grew by %lld, want %d (this thread's own frees)",
         (long long)(c1.free_small - c0.free_small), L);
  CHECK(pm_check() == 0);
  return pmt_done("unit.test_remote_batch");
}
