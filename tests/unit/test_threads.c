/* test_threads.c: multi-threaded stress.
 *
 *   a. producers allocate, consumers on other threads verify and free
 *      (remote frees through the lock-free path), through a ring;
 *   b. 3000 short-lived threads, at most 16 alive at once; blocks outlive
 *      their thread and are freed by main after the join (heaps of exited
 *      threads, adoption of those heaps by new threads);
 *   c. fork() while four threads allocate: the child allocates, frees blocks
 *      the parent allocated before the fork, starts a thread, and exits 0; a
 *      child that hangs is killed and fails the test;
 *   d. realloc chains across the 512-byte small/large boundary, up and down,
 *      on several threads at once;
 *   e. a thread whose first call is a free (no heap yet): NULL, a C
 *      library block, a huge block, a medium and a pool block of main's;
 *   f. afterwards pm_check() holds and the counters show remote frees and
 *      adopted heaps.
 * Every block carries a pattern derived from (address, size, seed), checked
 * byte for byte before it is freed. */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pmtest.h"
#include "poolmalloc.h"

static void checkpoint(const char *where) {
  int bad = pm_check();
  CHECKF(bad == 0, "pm_check() = %d after %s", bad, where);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void *xmalloc(size_t n) {
  void *p = malloc(n);
  if (p == NULL) {
    fprintf(stderr, "malloc(%zu) failed\n", n);
    abort();
  }
  return p;
}

/* ===== a. producers and consumers ======================================= */

#define RING 1024
#define PRODUCERS 2
#define CONSUMERS 2
#define PER_PRODUCER 200000

typedef struct item {
  unsigned char *p;
  size_t n;
  uint64_t seed;
} item;

static struct {
  pthread_mutex_t lock;
  pthread_cond_t not_empty, not_full;
  item slots[RING];
  size_t head, tail;               /* tail - head items queued */
  int producers_left;
} ring = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER,
          {{0}}, 0, 0, PRODUCERS};

static void ring_put(item it) {
  pthread_mutex_lock(&ring.lock);
  while (ring.tail - ring.head == RING) pthread_cond_wait(&ring.not_full, &ring.lock);
  ring.slots[ring.tail++ % RING] = it;
  pthread_cond_signal(&ring.not_empty);
  pthread_mutex_unlock(&ring.lock);
}

/* false when every producer is done and the ring is empty */
static bool ring_get(item *out) {
  pthread_mutex_lock(&ring.lock);
  while (ring.tail == ring.head && ring.producers_left > 0)
    pthread_cond_wait(&ring.not_empty, &ring.lock);
  bool got = ring.tail != ring.head;
  if (got) {
    *out = ring.slots[ring.head++ % RING];
    pthread_cond_signal(&ring.not_full);
  }
  pthread_mutex_unlock(&ring.lock);
  return got;
}

static void *producer(void *arg) {
  uintptr_t id = (uintptr_t)arg;
  pmt_rng r = pmt_rng_seed(100 + id);
  for (size_t i = 0; i < PER_PRODUCER; i++) {
    /* mostly small, a quarter above the boundary */
    size_t n = pmt_range(&r, 1, 1024);
    item it = {xmalloc(n), n, (id << 32) | i};
    pmt_fill(it.p, n, pmt_tag(it.p, n, it.seed));
    /* now and then a block the producer frees itself, interleaved */
    if ((i & 15) == 0) {
      size_t m = pmt_range(&r, 1, 512);
      void *own = xmalloc(m);
      memset(own, 0x77, m);
      free(own);
    }
    ring_put(it);
  }
  pthread_mutex_lock(&ring.lock);
  ring.producers_left--;
  pthread_cond_broadcast(&ring.not_empty);
  pthread_mutex_unlock(&ring.lock);
  return NULL;
}

static atomic_ulong consumed;

static void *consumer(void *arg) {
  item it;
  unsigned long mine = 0;
  while (ring_get(&it)) {
    size_t bad = pmt_verify(it.p, it.n, pmt_tag(it.p, it.n, it.seed));
    CHECKF(bad == (size_t)-1, "consumer: block %p of %zu bytes (seed %#llx) wrong at byte %zu",
           (void *)it.p, it.n, (unsigned long long)it.seed, bad);
    CHECK(malloc_usable_size(it.p) >= it.n);
    errno = EBADF;
    free(it.p);                                   /* another thread's block */
    if (errno != EBADF) CHECKF(0, "a remote free changed errno to %d", errno);
    mine++;
  }
  atomic_fetch_add(&consumed, mine);
  return NULL;
}

static void test_producer_consumer(void) {
  pthread_t p[PRODUCERS], c[CONSUMERS];
  for (uintptr_t i = 0; i < CONSUMERS; i++) REQUIRE(pthread_create(&c[i], NULL, consumer, NULL) == 0);
  for (uintptr_t i = 0; i < PRODUCERS; i++) REQUIRE(pthread_create(&p[i], NULL, producer, (void *)i) == 0);
  for (int i = 0; i < PRODUCERS; i++) pthread_join(p[i], NULL);
  for (int i = 0; i < CONSUMERS; i++) pthread_join(c[i], NULL);
  CHECKF(atomic_load(&consumed) == (unsigned long)PRODUCERS * PER_PRODUCER, "consumed %lu",
         atomic_load(&consumed));
}

/* ===== b. thousands of short-lived threads =============================== */

#define CHURN_THREADS 3000
#define CHURN_ALIVE 16
#define CHURN_BLOCKS 48
#define CHURN_KEPT 24          /* handed back to main */

typedef struct churn {
  unsigned idx;
  item kept[CHURN_KEPT];
  void *from_prev;             /* a block main allocated, freed by this thread */
} churn;

static churn churns[CHURN_THREADS];

static void *churn_thread(void *arg) {
  churn *c = arg;
  pmt_rng r = pmt_rng_seed(5000 + c->idx);
  item all[CHURN_BLOCKS];
  for (int i = 0; i < CHURN_BLOCKS; i++) {
    size_t n = (i % 8 == 7) ? pmt_range(&r, 513, 2048) : pmt_range(&r, 1, 512);
    all[i] = (item){xmalloc(n), n, ((uint64_t)c->idx << 16) | (unsigned)i};
    pmt_fill(all[i].p, n, pmt_tag(all[i].p, n, all[i].seed));
  }
  /* keep the even ones for main; free the odd ones here, verified */
  for (int i = 0; i < CHURN_BLOCKS; i++) {
    if (i % 2 == 0) {
      c->kept[i / 2] = all[i];
    } else {
      CHECK(pmt_verify(all[i].p, all[i].n, pmt_tag(all[i].p, all[i].n, all[i].seed)) == (size_t)-1);
      free(all[i].p);
    }
  }
  free(c->from_prev);          /* allocated by an exited (or running) thread */
  c->from_prev = NULL;
  return NULL;
}

static void test_thread_churn(void) {
  pthread_t live[CHURN_ALIVE];
  unsigned live_idx[CHURN_ALIVE];
  int nlive = 0;
  double t0 = now_s();
  for (unsigned t = 0; t < CHURN_THREADS; t++) {
    if (nlive == CHURN_ALIVE) {
      /* join the oldest, then check and free what it left behind */
      REQUIRE(pthread_join(live[0], NULL) == 0);
      churn *c = &churns[live_idx[0]];
      for (int k = 0; k < CHURN_KEPT; k++) {
        item *it = &c->kept[k];
        size_t bad = pmt_verify(it->p, it->n, pmt_tag(it->p, it->n, it->seed));
        CHECKF(bad == (size_t)-1, "block %p (%zu bytes) of exited thread %u wrong at %zu",
               (void *)it->p, it->n, c->idx, bad);
        errno = EBADF;
        free(it->p);
        if (errno != EBADF) CHECKF(0, "free of an exited thread's block changed errno to %d", errno);
      }
      memmove(live, live + 1, (CHURN_ALIVE - 1) * sizeof live[0]);
      memmove(live_idx, live_idx + 1, (CHURN_ALIVE - 1) * sizeof live_idx[0]);
      nlive--;
    }
    churn *c = &churns[t];
    c->idx = t;
    /* one block main allocated, freed by the new thread (main's heap is live) */
    c->from_prev = xmalloc(1 + t % 700);
    REQUIRE(pthread_create(&live[nlive], NULL, churn_thread, c) == 0);
    live_idx[nlive++] = t;
  }
  for (int i = 0; i < nlive; i++) {
    REQUIRE(pthread_join(live[i], NULL) == 0);
    churn *c = &churns[live_idx[i]];
    for (int k = 0; k < CHURN_KEPT; k++) {
      item *it = &c->kept[k];
      CHECK(pmt_verify(it->p, it->n, pmt_tag(it->p, it->n, it->seed)) == (size_t)-1);
      free(it->p);
    }
  }
  fprintf(stderr, "  %d short-lived threads in %.2f s\n", CHURN_THREADS, now_s() - t0);
}

/* ===== c. fork while other threads allocate ============================== */

#define FORKS 20
#define FORK_WORKERS 4
#define PARENT_BLOCKS 300

static atomic_int fork_stop;
static atomic_ulong worker_rounds;

static void *fork_worker(void *arg) {
  uintptr_t id = (uintptr_t)arg;
  pmt_rng r = pmt_rng_seed(900 + id);
  enum { SLOTS = 64 };
  item slot[SLOTS] = {{0}};
  while (!atomic_load_explicit(&fork_stop, memory_order_relaxed)) {
    int k = (int)pmt_range(&r, 0, SLOTS - 1);
    if (slot[k].p != NULL) {
      if (pmt_verify(slot[k].p, slot[k].n, pmt_tag(slot[k].p, slot[k].n, slot[k].seed)) != (size_t)-1)
        CHECKF(0, "fork worker %u: block corrupted", (unsigned)id);
      free(slot[k].p);
      slot[k].p = NULL;
    } else {
      size_t n = (pmt_next(&r) & 7) == 0 ? pmt_range(&r, 513, 70000) : pmt_range(&r, 0, 512);
      slot[k] = (item){xmalloc(n), n, pmt_next(&r)};
      pmt_fill(slot[k].p, n, pmt_tag(slot[k].p, n, slot[k].seed));
    }
    atomic_fetch_add_explicit(&worker_rounds, 1, memory_order_relaxed);
  }
  for (int k = 0; k < SLOTS; k++) free(slot[k].p);
  return NULL;
}

static void *child_thread(void *arg) {
  pmt_rng r = pmt_rng_seed(77);
  for (int i = 0; i < 2000; i++) {
    size_t n = pmt_range(&r, 1, 1024);
    void *p = malloc(n);
    if (p == NULL) return (void *)1;
    memset(p, 0x3C, n);
    free(p);
  }
  return NULL;
}

/* Runs in the child: only async-signal-safe reporting (write) and _exit. */
static int child_work(item *parent_blocks, int nparent, item *orphan_blocks, int norphan) {
  pmt_rng r = pmt_rng_seed(4242);
  for (int i = 0; i < nparent; i++) {
    item *it = &parent_blocks[i];
    if (pmt_verify(it->p, it->n, pmt_tag(it->p, it->n, it->seed)) != (size_t)-1) return 10;
    free(it->p);                                   /* allocated by the parent */
  }
  for (int i = 0; i < norphan; i++) {
    item *it = &orphan_blocks[i];
    if (pmt_verify(it->p, it->n, pmt_tag(it->p, it->n, it->seed)) != (size_t)-1) return 11;
    free(it->p);                                   /* of a thread that exited in the parent */
  }
  enum { K = 512 };
  static item mine[K];
  for (int round = 0; round < 8; round++) {
    for (int i = 0; i < K; i++) {
      size_t n = (i % 9 == 0) ? pmt_range(&r, 513, 20000) : pmt_range(&r, 1, 512);
      mine[i] = (item){malloc(n), n, (uint64_t)round << 20 | (unsigned)i};
      if (mine[i].p == NULL) return 12;
      pmt_fill(mine[i].p, n, pmt_tag(mine[i].p, n, mine[i].seed));
    }
    for (int i = K - 1; i >= 0; i--) {
      if (pmt_verify(mine[i].p, mine[i].n, pmt_tag(mine[i].p, mine[i].n, mine[i].seed)) != (size_t)-1)
        return 13;
      free(mine[i].p);
    }
  }
  pthread_t t;
  void *ret = (void *)2;
  if (pthread_create(&t, NULL, child_thread, NULL) != 0) return 14;
  if (pthread_join(t, &ret) != 0 || ret != NULL) return 15;
  if (pm_check() != 0) return 16;
  return 0;
}

static void *orphan_maker(void *arg) {
  item *out = arg;
  for (int i = 0; i < 50; i++) {
    size_t n = 1 + (size_t)i * 13;
    out[i] = (item){xmalloc(n), n, 0xabc0000ull + (unsigned)i};
    pmt_fill(out[i].p, n, pmt_tag(out[i].p, n, out[i].seed));
  }
  return NULL;
}

static void test_fork(void) {
  pthread_t w[FORK_WORKERS];
  for (uintptr_t i = 0; i < FORK_WORKERS; i++)
    REQUIRE(pthread_create(&w[i], NULL, fork_worker, (void *)i) == 0);
  double t0 = now_s();
  int failures = 0;
  for (int f = 0; f < FORKS; f++) {
    /* blocks the parent allocates before the fork: main's own, and those
     * of a thread that has exited */
    static item parent_blocks[PARENT_BLOCKS];
    static item orphan_blocks[50];
    pmt_rng r = pmt_rng_seed(7000 + (uint64_t)f);
    for (int i = 0; i < PARENT_BLOCKS; i++) {
      size_t n = (i % 10 == 0) ? pmt_range(&r, 513, 9000) : pmt_range(&r, 0, 512);
      parent_blocks[i] = (item){xmalloc(n), n, (uint64_t)f << 32 | (unsigned)i};
      pmt_fill(parent_blocks[i].p, n, pmt_tag(parent_blocks[i].p, n, parent_blocks[i].seed));
    }
    pthread_t om;
    REQUIRE(pthread_create(&om, NULL, orphan_maker, orphan_blocks) == 0);
    pthread_join(om, NULL);
    /* let the workers get going in between */
    unsigned long before = atomic_load(&worker_rounds);
    while (atomic_load(&worker_rounds) < before + 2000) sched_yield();

    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      alarm(20);                                   /* the parent kills it sooner */
      _exit(child_work(parent_blocks, PARENT_BLOCKS, orphan_blocks, 50));
    }
    /* wait up to 15 s; a child that deadlocked in malloc is killed */
    int status = 0;
    pid_t got = 0;
    double deadline = now_s() + 15;
    while ((got = waitpid(pid, &status, WNOHANG)) == 0 && now_s() < deadline) usleep(2000);
    if (got == 0) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      CHECKF(0, "fork %d: child hung (deadlock after fork?) and was killed", f);
      failures++;
    } else {
      CHECKF(got == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
             "fork %d: child ended with status %#x (exit %d, signal %d)", f, status,
             WIFEXITED(status) ? WEXITSTATUS(status) : -1,
             WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    }
    /* the parent's copies are still valid here: verify and free them */
    for (int i = 0; i < PARENT_BLOCKS; i++) {
      item *it = &parent_blocks[i];
      CHECK(pmt_verify(it->p, it->n, pmt_tag(it->p, it->n, it->seed)) == (size_t)-1);
      free(it->p);
    }
    for (int i = 0; i < 50; i++) {
      item *it = &orphan_blocks[i];
      CHECK(pmt_verify(it->p, it->n, pmt_tag(it->p, it->n, it->seed)) == (size_t)-1);
      free(it->p);
    }
    if (failures >= 2) break;                      /* no need to wait out more hangs */
  }
  atomic_store(&fork_stop, 1);
  for (int i = 0; i < FORK_WORKERS; i++) pthread_join(w[i], NULL);
  fprintf(stderr, "  %d forks in %.2f s, workers did %lu rounds\n", FORKS, now_s() - t0,
          atomic_load(&worker_rounds));
}

/* ===== d. realloc chains across the boundary ============================= */

#define CHAIN_THREADS 4

static void *chain_thread(void *arg) {
  uintptr_t id = (uintptr_t)arg;
  pmt_rng r = pmt_rng_seed(300 + id);
  for (int pass = 0; pass < 40; pass++) {
    size_t n = 1, step = pmt_range(&r, 1, 23);
    uint64_t tag = ((uint64_t)id << 40) ^ (uint64_t)pass;
    unsigned char *p = xmalloc(n);
    pmt_fill(p, n, tag);
    /* up from 1 to 4096 */
    while (n < 4096) {
      size_t m = n + step > 4096 ? 4096 : n + step;
      unsigned char *q = realloc(p, m);
      if (q == NULL) {
        CHECKF(0, "realloc(%zu -> %zu) failed", n, m);
        break;
      }
      if (pmt_verify(q, n, tag) != (size_t)-1) CHECKF(0, "thread %u: realloc up %zu -> %zu lost data", (unsigned)id, n, m);
      for (size_t i = n; i < m; i++) q[i] = pmt_pattern_byte(tag, i);   /* extend the pattern */
      p = q;
      n = m;
    }
    /* and back down to 1 */
    while (n > 1) {
      size_t m = n > step ? n - step : 1;
      unsigned char *q = realloc(p, m);
      if (q == NULL) {
        CHECKF(0, "realloc(%zu -> %zu) failed", n, m);
        break;
      }
      if (pmt_verify(q, m, tag) != (size_t)-1) CHECKF(0, "thread %u: realloc down %zu -> %zu lost data", (unsigned)id, n, m);
      p = q;
      n = m;
    }
    free(p);
  }
  return NULL;
}

static void test_realloc_chains(void) {
  pthread_t t[CHAIN_THREADS];
  for (uintptr_t i = 0; i < CHAIN_THREADS; i++)
    REQUIRE(pthread_create(&t[i], NULL, chain_thread, (void *)i) == 0);
  for (int i = 0; i < CHAIN_THREADS; i++) pthread_join(t[i], NULL);
}

/* ===== e. a thread whose first call is a free ============================= */

/* Before its first malloc a thread has no heap (pmi_heap_empty): free's
 * fast path must still send every kind of pointer where it belongs, by the
 * owner test alone: NULL, a block of the C library's, a huge block and a
 * medium and a pool block of main's heap (remote frees). */
extern void *__libc_malloc(size_t size);
static void *first_free_thread(void *arg) {
  void **blocks = arg;
  free(NULL);
  for (int i = 0; blocks[i] != NULL; i++) free(blocks[i]);
  return NULL;
}

static void test_first_call_free(void) {
  void *blocks[] = { __libc_malloc(48), xmalloc(1 << 20), xmalloc(4000), xmalloc(48), NULL };
  REQUIRE(blocks[0] != NULL);
  pthread_t t;
  REQUIRE(pthread_create(&t, NULL, first_free_thread, blocks) == 0);
  pthread_join(t, NULL);   /* a wrong turn aborts the program (a bad pointer) */
  CHECKF(pm_check() == 0, "pm_check() after a thread's first calls were frees");
}

/* ===== driver ============================================================ */

static void phase(const char *name, void (*fn)(void)) {
  double t0 = now_s();
  fprintf(stderr, "%s ...\n", name);
  fn();
  checkpoint(name);
  fprintf(stderr, "%s: %.2f s\n", name, now_s() - t0);
}

int main(void) {
  alarm(240);                                      /* a hang fails, below ctest's timeout */
  double t0 = now_s();
  phase("a. producers/consumers", test_producer_consumer);
  pm_counters c;
  pm_counters_get(&c);
  CHECKF(c.free_remote > 0, "free_remote = %llu after cross-thread frees", c.free_remote);

  phase("b. thread churn", test_thread_churn);
  pm_counters_get(&c);
  CHECKF(c.free_remote > 0, "free_remote = %llu", c.free_remote);
  CHECKF(c.heaps_adopted > 0, "heaps_adopted = %llu after %d short-lived threads", c.heaps_adopted,
         CHURN_THREADS);
  CHECKF(c.heaps_created < CHURN_THREADS, "heaps_created = %llu for %d threads, at most %d alive",
         c.heaps_created, CHURN_THREADS, CHURN_ALIVE);

  phase("c. fork", test_fork);
  phase("d. realloc chains", test_realloc_chains);
  phase("e. a thread's first call a free", test_first_call_free);

  int bad = pm_check();
  CHECKF(bad == 0, "pm_check() = %d at the end", bad);
  fprintf(stderr, "total %.2f s\n", now_s() - t0);
  return pmt_done("unit.test_threads");
}
