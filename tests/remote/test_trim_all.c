/* malloc_trim(0) from any thread collects every heap it can lock: thread A
 * allocates 50,000 blocks of 256 bytes and stays alive and idle; this thread
 * frees them and calls malloc_trim(0), which takes them into A's pools and
 * returns the emptied arenas at once. */
#include <malloc.h>
#include <pthread.h>

#include "remote_test.h"

enum { N = 50000, SIZE = 256 };
static void **blocks;
static pthread_barrier_t bar;

static void *idle_owner(void *arg) {
  for (int i = 0; i < N; i++) blocks[i] = pm_malloc(SIZE);
  pthread_barrier_wait(&bar);
  pthread_barrier_wait(&bar);   /* idle until the checks are done */
  return NULL;
}

int main(int argc, char **argv) {
  /* decay long enough that only malloc_trim can explain a return */
  pmr_setenv_reexec(argv, "POOLMALLOC_ARENA_DECAY_MS", "600000", NULL);
  blocks = pmr_map(N * sizeof(void *));
  pthread_barrier_init(&bar, NULL, 2);
  pthread_t t;
  pthread_create(&t, NULL, idle_owner, NULL);
  pthread_barrier_wait(&bar);
  unsigned long long mapped_full = pmr_stats()->arenas.mapped;
  for (int i = 0; i < N; i++) pm_free(blocks[i]);
  malloc_trim(0);
  unsigned long long used = pmr_in_use();
  unsigned long long mapped = pmr_stats()->arenas.mapped;
  fprintf(stderr, "malloc_trim from another thread: %llu arenas before, %llu after; %llu blocks in use\n",
          mapped_full, mapped, used);
  /* Left for A itself: the blocks of the pool it allocates from (16 of
   * 256 bytes), and a few of the C library's. */
  CHECKF(used <= 16 + 8, "%llu blocks in use after malloc_trim", used);
  CHECKF(mapped <= 2, "%llu arenas mapped after malloc_trim", mapped);
  pthread_barrier_wait(&bar);
  pthread_join(t, NULL);
  return pmt_done("trim_all");
}
