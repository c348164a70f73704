/* A failed trylock must not strand blocks: a thread allocates 200,000
 * blocks of 480 bytes and exits; this thread frees them while another calls
 * pm_stats_get(), mallinfo2() and pm_check() in a loop (each takes the
 * heaps' locks).  When the frees are done, every block is free at once (a
 * holder of an unowned heap's lock re-runs the reclamation as it unlocks),
 * and the arenas go back to the OS within a bounded time. */
#include <malloc.h>
#include <pthread.h>

#include "remote_test.h"

enum { N = 200000, SIZE = 480, DECAY_MS = 200 };
static void **blocks;
static atomic_int stop;

static void *alloc_and_exit(void *arg) {
  for (int i = 0; i < N; i++) blocks[i] = pm_malloc(SIZE);
  return NULL;
}

static void *observer(void *arg) {
  unsigned long n = 0;
  while (!atomic_load(&stop)) {
    pm_stats st;
    pm_stats_get(&st);
    if (n % 3 == 1) (void)mallinfo2();
    if (n % 3 == 2) (void)pm_check();
    n++;
  }
  return (void *)n;
}

int main(int argc, char **argv) {
  pmr_setenv_reexec(argv, "POOLMALLOC_ARENA_DECAY_MS", "200", "POOLMALLOC_ARENA_RESERVE", "4", NULL);
  blocks = pmr_map(N * sizeof(void *));
  pthread_t a, o;
  pthread_create(&a, NULL, alloc_and_exit, NULL);
  pthread_join(a, NULL);
  unsigned long long used_full = pmr_in_use();
  pthread_create(&o, NULL, observer, NULL);
  for (int i = 0; i < N; i++) pm_free(blocks[i]);
  atomic_store(&stop, 1);
  void *loops;
  pthread_join(o, &loops);
  unsigned long long used = pmr_in_use();
  fprintf(stderr, "trylock: %lu observer loops; blocks in use %llu before the frees, %llu after\n",
          (unsigned long)(uintptr_t)loops, used_full, used);
  /* a few blocks are the C library's own, for its threads */
  CHECKF(used <= 8, "%llu blocks stranded in the exited thread's heap", used);
  long long t0 = pmr_now_ms(), t_arenas = -1;
  unsigned long long mapped = 0;
  while (pmr_now_ms() - t0 < 4 * DECAY_MS + 5000) {
    pmr_sleep_ms(20);
    mapped = pmr_stats()->arenas.mapped;
    if (mapped <= 4 + 3) {   /* the reserve, and the arenas of the C library's blocks */
      t_arenas = pmr_now_ms() - t0;
      break;
    }
  }
  fprintf(stderr, "trylock: %llu arenas mapped after %lld ms\n", mapped, t_arenas);
  CHECKF(t_arenas >= 0, "%llu arenas still mapped", mapped);
  return pmt_done("trylock");
}
