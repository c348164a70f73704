/* Every double free that crosses threads ends with the one-line "double
 * free" message naming the block, and abort (SIGABRT), whichever thread
 * frees first, for pool blocks and medium blocks alike.  Each order runs in
 * a forked child:
 *   owner_then_other   the owner frees p, then another thread frees it; the
 *                      owner then gets p back from malloc and writes it
 *   owner_then_other_untouched   the same, and the owner collects at once
 *   other_then_owner   another thread frees p (and exits), then the owner;
 *                      the owner then gets p back from malloc, untouched
 *   other_then_owner_written   the same, and the owner writes the block
 *   other_run_middle_then_owner(_written)   the same with p freed between
 *                      its two neighbours: the push groups them into one
 *                      run of their pool, p in its middle, which the
 *                      owner's walk takes without the arena map
 *   other_batched      another thread frees p and keeps it in its batch, the
 *                      owner frees p, then the other thread flushes
 *   other_batched_then_owner_mallocs   the same, and the owner's malloc hands
 *                      p out again (untouched) before the flush
 *   owner_then_other_batched_owner_mallocs   the owner frees p, another
 *                      thread frees it into its batch, the owner mallocs,
 *                      then the other thread flushes
 *   other_batched_middle_then_owner_mallocs   other_batched_then_owner_mallocs
 *                      with p between two other blocks of the batch
 *   other_held_then_owner(_written)   another thread frees p, a third one's
 *                      malloc_trim holds it for the live owner (remote.c's
 *                      held_used, p's pool or region USED), then the owner
 *                      frees p and gets it back from malloc
 *   other_twice        two other threads free p
 *   other_twice_batched   two other threads hold p in their batches at once
 *                      (one between two other blocks), then push them */
#include <malloc.h>
#include <pthread.h>

#include "remote_test.h"

static size_t SIZE;   /* the block size of the round */
static void *p, *before_p, *after_p;   /* p and a neighbour each side */
static pthread_barrier_t bar;

static void *free_p(void *arg) {
  pm_free(p);
  return NULL;
}

static void *free_p_batched(void *arg) {
  if (arg != NULL) pm_free(before_p);   /* p in the middle of the batch */
  pm_free(p);
  if (arg != NULL) pm_free(after_p);
  pthread_barrier_wait(&bar);   /* p waits in this thread's batch */
  pthread_barrier_wait(&bar);   /* the owner has freed it too */
  pm_collect(0);                /* flushes the batch */
  pthread_barrier_wait(&bar);
  return NULL;
}

static void other_frees(void) {
  pthread_t t;
  pthread_create(&t, NULL, free_p, NULL);
  pthread_join(t, NULL);
}

/* Some blocks around p, so that p is neither first nor last of anything. */

static void setup(void) {
  for (int i = 0; i < 5; i++) before_p = pm_malloc(SIZE);
  p = pm_malloc(SIZE);
  after_p = pm_malloc(SIZE);
  for (int i = 0; i < 4; i++) (void)pm_malloc(SIZE);
}

static void owner_then_other(void *arg) {
  setup();
  pm_free(p);
  other_frees();
  if (arg != NULL) pm_collect(0);
  void *q = pm_malloc(SIZE);
  memset(q, 7, SIZE);
  pm_collect(0);
  for (int i = 0; i < 1000; i++) pm_free(pm_malloc(SIZE));
}

static void *free_run_of_three(void *arg) {
  pm_free(before_p);
  pm_free(p);
  pm_free(after_p);
  return NULL;
}

/* arg bit 0: the owner writes the block it gets back; bit 1: the other
 * thread frees p between its neighbours (one pool's run, p in its middle) */
static void other_then_owner(void *arg) {
  intptr_t mode = (intptr_t)arg;
  setup();
  if (mode & 2) {
    pthread_t t;
    pthread_create(&t, NULL, free_run_of_three, NULL);
    pthread_join(t, NULL);
  } else {
    other_frees();
  }
  pm_free(p);
  void *q = pm_malloc(SIZE);
  if (mode & 1) memset(q, 7, SIZE);
  pm_collect(0);
  for (int i = 0; i < 1000; i++) pm_free(pm_malloc(SIZE));
}

/* mode 0: the other thread frees p into its batch, the owner frees p, the
 * batch is pushed; 1: the same, and the owner gets p back from malloc
 * (untouched) before the push; 2: the owner frees p first, then the other
 * thread (batched), and the owner mallocs before the push; 3: mode 1 with p
 * between two other blocks of the batch. */
static void other_batched(void *arg) {
  intptr_t mode = (intptr_t)arg;
  setup();
  pthread_barrier_init(&bar, NULL, 2);
  if (mode == 2) pm_free(p);
  pthread_t t;
  pthread_create(&t, NULL, free_p_batched, mode == 3 ? (void *)1 : NULL);
  pthread_barrier_wait(&bar);
  if (mode != 2) pm_free(p);
  if (mode != 0) (void)pm_malloc(SIZE);
  pthread_barrier_wait(&bar);
  pthread_barrier_wait(&bar);
  pthread_join(t, NULL);
  pm_collect(0);
  for (int i = 0; i < 1000; i++) pm_free(pm_malloc(SIZE));
}

static void *trim(void *arg) {
  pm_collect(1);   /* malloc_trim(0): a visit of the owner's heap */
  return NULL;
}

static void other_held_then_owner(void *arg) {
  setup();
  other_frees();
  pthread_t t;
  pthread_create(&t, NULL, trim, NULL);
  pthread_join(t, NULL);
  pm_free(p);
  void *q = pm_malloc(SIZE);
  if (arg != NULL) memset(q, 7, SIZE);
  pm_collect(0);
  for (int i = 0; i < 1000; i++) pm_free(pm_malloc(SIZE));
}

static void other_twice(void *arg) {
  setup();
  other_frees();
  other_frees();
  pm_collect(0);
}

/* Two other threads hold p in their batches at once, one between two other
 * blocks, one alone; arg says whose batch is pushed first. */
static intptr_t first_flusher;
static void *free_p_held(void *arg) {
  intptr_t id = (intptr_t)arg;
  if (id == 0) pm_free(before_p);
  pm_free(p);
  if (id == 0) pm_free(after_p);
  pthread_barrier_wait(&bar);   /* both hold p */
  if (id == first_flusher) pm_collect(0);
  pthread_barrier_wait(&bar);
  if (id != first_flusher) pm_collect(0);
  pthread_barrier_wait(&bar);
  return NULL;
}

static void other_twice_batched(void *arg) {
  setup();
  first_flusher = (intptr_t)arg;
  pthread_barrier_init(&bar, NULL, 3);
  pthread_t t[2];
  for (intptr_t i = 0; i < 2; i++) pthread_create(&t[i], NULL, free_p_held, (void *)i);
  for (int i = 0; i < 3; i++) pthread_barrier_wait(&bar);
  for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
  pm_collect(0);
  for (int i = 0; i < 1000; i++) pm_free(pm_malloc(SIZE));
}

static void expect_abort(const char *name, void (*fn)(void *), void *arg) {
  char msg[2048], want[64];
  int status = pmr_child(fn, arg, msg, sizeof msg);
  /* p as the child saw it: the same address, since fork copied our heap */
  setup();
  snprintf(want, sizeof want, "%p", p);
  int lines = 0;
  for (char *s = msg; *s; s++) lines += *s == '\n';
  CHECKF(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "%s: status %#x, stderr: %s", name, status, msg);
  CHECKF(strstr(msg, "double free") != NULL && strstr(msg, want) != NULL && lines == 1,
         "%s: want one line with \"double free\" and %s, got: %s", name, want, msg);
  fprintf(stderr, "%s: %s", name, msg);
}

int main(void) {
  static const size_t sizes[] = {96, 4096, 40000};   /* a pool class, two medium classes */
  for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    SIZE = sizes[i];
    fprintf(stderr, "blocks of %zu bytes:\n", SIZE);
    expect_abort("owner_then_other", owner_then_other, NULL);
    expect_abort("owner_then_other_untouched", owner_then_other, (void *)1);
    expect_abort("other_then_owner", other_then_owner, NULL);
    expect_abort("other_then_owner_written", other_then_owner, (void *)1);
    expect_abort("other_run_middle_then_owner", other_then_owner, (void *)2);
    expect_abort("other_run_middle_then_owner_written", other_then_owner, (void *)3);
    expect_abort("other_batched", other_batched, (void *)0);
    expect_abort("other_batched_then_owner_mallocs", other_batched, (void *)1);
    expect_abort("owner_then_other_batched_owner_mallocs", other_batched, (void *)2);
    expect_abort("other_batched_middle_then_owner_mallocs", other_batched, (void *)3);
    expect_abort("other_held_then_owner", other_held_then_owner, NULL);
    expect_abort("other_held_then_owner_written", other_held_then_owner, (void *)1);
    expect_abort("other_twice", other_twice, NULL);
    expect_abort("other_twice_batched", other_twice_batched, (void *)0);
    expect_abort("other_twice_batched_alone_first", other_twice_batched, (void *)1);
  }
  return pmt_done("double_free");
}
