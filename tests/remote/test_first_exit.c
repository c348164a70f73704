/* The first thread to exit starts the purge thread (heap.c, heap_thread_exit:
 * its heap's pools may go back later), and pthread_create callocs the new
 * thread's DTV in the exiting thread.  That calloc comes from the exiting
 * thread's own heap: started after the thread had let its heap go, it made
 * the fallback heap for threads past their exit, a heap and an arena of
 * their own (36 KiB resident) for 288 bytes, in every program whose first
 * thread exits (glibc-simple, cache-scratch, mleak of the public suite).
 * So: main's heap, the worker's, none more; the purge thread started once. */
#include <pthread.h>

#include "pmtest.h"
#include "poolmalloc.h"

static void *worker(void *arg) {
  (void)arg;
  void *p = malloc(100);
  CHECK(p != NULL);
  free(p);
  return NULL;
}

int main(void) {
  free(malloc(16));   /* main's heap */
  pm_counters c;
  pm_counters_get(&c);
  if (c.purge_threads != 0) PMT_SKIP("the purge thread already started");
  pthread_t t;
  CHECK(pthread_create(&t, NULL, worker, NULL) == 0);
  CHECK(pthread_join(t, NULL) == 0);   /* its destructors ran before the join returns */
  pm_counters_get(&c);
  if (c.purge_threads == 0) PMT_SKIP("no purge thread (POOLMALLOC_PURGE_THREAD=0 or debug mode)");
  CHECKF(c.purge_threads == 1, "purge thread started %llu times", (unsigned long long)c.purge_threads);
  CHECKF(c.heaps_created == 2, "%llu heaps created for two threads", (unsigned long long)c.heaps_created);
  CHECK(pm_check() == 0);
  return pmt_done("test_first_exit");
}
