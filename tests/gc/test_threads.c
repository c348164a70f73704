/* Threads that serialise their calls into the layer with one mutex (the
 * rule the header states, CPython's GIL): each builds cycles and chains,
 * hands objects to the others through a shared slot, and collects now and
 * then; automatic collections run on whichever thread allocates. */
#include "gc_test.h"

#include <pthread.h>

enum { THREADS = 4, ROUNDS = 2000 };
static pthread_mutex_t layer = PTHREAD_MUTEX_INITIALIZER;
static void *shared_slot;               /* a reference passed between threads */
static long finalized;

static void count_final(void *self) { (void)self; finalized++; }
static const pm_type t_type = { "t", sizeof(node), node_traverse, node_clear, count_final };

static void *worker(void *arg) {
  long id = (long)arg;
  for (int r = 0; r < ROUNDS; r++) {
    pthread_mutex_lock(&layer);
    node *a = pm_new(&t_type), *b = pm_new(&t_type);
    CHECK(a && b);
    a->id = id;
    node_set(a, 0, b);
    node_set(b, 0, a);                  /* a cycle */
    void *w = pm_weakref_new(a, NULL, NULL);
    void *old = shared_slot;            /* swap with whatever another thread left */
    shared_slot = a;
    if (old) node_set(b, 1, old);
    pm_xdecref(old);
    pm_decref(b);
    pm_decref(w);
    if (r % 97 == 0) pm_gc_collect((int)(r % 3));
    pthread_mutex_unlock(&layer);
  }
  return NULL;
}

int main(void) {
  pm_gc_set_threshold(100, 5, 5);
  pthread_t t[THREADS];
  for (long i = 0; i < THREADS; i++) CHECK(pthread_create(&t[i], NULL, worker, (void *)i) == 0);
  for (int i = 0; i < THREADS; i++) CHECK(pthread_join(t[i], NULL) == 0);
  pm_decref(shared_slot);
  shared_slot = NULL;
  pm_gc_collect(2);
  CHECK(finalized == 2L * THREADS * ROUNDS);
  CHECK(pm_gc_get_objects(-1, NULL, NULL) == 0);
  pm_gc_stats s[3];
  pm_gc_get_stats(s);
  printf("ok: %ld finalized, collections %ld/%ld/%ld\n", finalized, s[0].collections,
         s[1].collections, s[2].collections);
  return 0;
}
