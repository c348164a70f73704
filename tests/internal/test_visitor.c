/* The owner's slow paths against visitors (heap.c, "visitors"), and the
 * FULL pool's free list (types.h):
 *   1. the owner's pool transitions (FULL -> USED frees, a head pool that
 *      runs out, a fresh class) do not take its heap's lock: they finish
 *      while another thread holds that lock without visiting;
 *   2. while a visitor is there, they wait for it, and go on after it;
 *   3. a visitor that takes remote frees into an idle owner's FULL pools
 *      keeps them off the pools' free lists (freeblock == PMI_LIST_END, the blocks
 *      on held), pmi_check_heap agrees, and the owner's next frees apply
 *      them; the same for FULL medium regions, and a region whose every
 *      block another thread freed goes to the reserve;
 *   4. a stress: the owner cycles its pools and medium regions through FULL and USED while
 *      another thread frees its blocks and visits (statistics, trim) in a
 *      loop; every block's contents are checked, then the owner checks its
 *      heap (a visitor cannot: the owner's fast paths run on);
 *   5. the same for USED medium regions behind the head: the owner fills
 *      regions of a class, hands every block of some of them to the other
 *      thread and frees or keeps the others', while it goes on allocating
 *      from the class (carves, list walks, new heads); the other thread frees
 *      the handed blocks and visits, so that regions whose every block out
 *      is held go back while the owner runs (remote.c, "held blocks of USED
 *      pools and regions"); contents checked, the owner checks its heap.
 * The purge thread is off: the visits are the test's own. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/internal.h"
#include "pmtest.h"

static pmi_pool *pool_of(void *p) { return pmi_pool_of(pmi_arena_of(p), p); }

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* ---- the owner thread, driven step by step ----------------------------------- */

enum { STEP_NONE, STEP_TRANSITIONS, STEP_FILL, STEP_FREE_REST, STEP_STRESS, STEP_MSTRESS, STEP_EXIT };

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int step, step_done;
static pmi_heap *_Atomic owner_heap;
static _Atomic(unsigned char *) handoff[64];   /* owner blocks for the other thread to free */

#define NFILL 2048            /* 64-byte blocks: 32 pools of 64 */
static void *fill[NFILL];
#define MSIZE 8192            /* medium blocks */
/* a region holds 118 to 126 of them, by its colour: MCAP is the first
 * one's (the filler sets it) */
static int mcap;
#define MCAP mcap
#define MCAP_MAX ((int)((PMI_MEDIUM_SIZE - PMI_MEDIUM_HEADER) / MSIZE))
#define MCAP_MIN ((int)((PMI_MEDIUM_SIZE - PMI_MEDIUM_HEADER - 64 * 1024) / MSIZE))
#define NMFILL (4 * MCAP_MAX + 10)   /* 4 FULL regions and the head */
static void *mfill[NMFILL];
static _Atomic int stress_stop;

/* Pool transitions of every kind, on classes this thread has not used. */
static void transitions(unsigned round) {
  size_t size = 16 * (2 + round);   /* a fresh class each round */
  enum { N = 600 };
  void *b[N];
  for (int i = 0; i < N; i++) b[i] = pm_malloc(size);   /* heads run out, pools go FULL */
  for (int i = 0; i < N; i++) pm_free(b[i]);            /* FULL -> USED, USED -> EMPTY */
}

static unsigned char pattern(const void *p) { return (unsigned char)((uintptr_t)p >> 4); }

static void stress(void) {
  enum { N = 4096 };
  static unsigned char *b[N];
  unsigned seed = 1;
  for (unsigned long it = 0; !atomic_load(&stress_stop); it++) {
    size_t size = it % 4 == 3 ? 640 + (it % 3) * 1000 : 16 + (it % 8) * 48;   /* medium blocks too */
    for (int i = 0; i < N; i++) {
      b[i] = pm_malloc(size);
      memset(b[i], pattern(b[i]), size);
    }
    for (int i = 0; i < N; i++) {
      seed = seed * 1103515245u + 12345u;
      unsigned j = (seed >> 8) % N;
      void *t = b[i];
      b[i] = b[j];
      b[j] = t;
    }
    for (int i = 0; i < N; i++) {
      if (i < 64 && atomic_load_explicit(&handoff[i], memory_order_relaxed) == NULL) {
        memset(b[i], 0xa5, size);
        atomic_store_explicit(&handoff[i], b[i], memory_order_release);   /* freed by the other thread */
        continue;
      }
      for (size_t k = 0; k < size; k++)
        if (b[i][k] != pattern(b[i])) {
          CHECK(!"an owner's block changed while it was live");
          break;
        }
      pm_free(b[i]);
    }
  }
}

/* 5: blocks of every region whose address has bit 20 set go to the other
 * thread (mhandoff, a slot each); the others' are freed here, half at once
 * and half a round later. */
#define NMH 512
static _Atomic(unsigned char *) mhandoff[NMH];

static void mstress(void) {
  enum { N = 384 };
  static unsigned char *b[N], *keep[N];
  unsigned nkeep = 0, seed = 7;
  for (unsigned long it = 0; !atomic_load(&stress_stop); it++) {
    size_t size = 12288 + (it % 3) * 4096;   /* 80, 64, 53 a region */
    for (int i = 0; i < N; i++) {
      b[i] = pm_malloc(size);
      memset(b[i], pattern(b[i]), size);
    }
    for (unsigned i = 0; i < nkeep; i++) {
      for (size_t k = 0; k < 64; k++)
        if (keep[i][k] != pattern(keep[i])) {
          CHECK(!"an owner's kept block changed while it was live");
          break;
        }
      pm_free(keep[i]);
    }
    nkeep = 0;
    unsigned slot = 0;
    for (int i = 0; i < N; i++) {
      if (((uintptr_t)b[i] >> 20) & 1) {
        while (slot < NMH && atomic_load_explicit(&mhandoff[slot], memory_order_relaxed) != NULL) slot++;
        if (slot < NMH) {
          memset(b[i], 0xa5, 16);
          atomic_store_explicit(&mhandoff[slot], b[i], memory_order_release);
          continue;
        }
      }
      seed = seed * 1103515245u + 12345u;
      if ((seed >> 9) & 1) keep[nkeep++] = b[i];
      else pm_free(b[i]);
    }
  }
  for (unsigned i = 0; i < nkeep; i++) pm_free(keep[i]);
}

static void *owner_main(void *arg) {
  atomic_store(&owner_heap, pmi_heap_for_thread());
  pm_free(pm_malloc(1));
  for (unsigned round = 0;; round++) {
    pthread_mutex_lock(&mu);
    while (step == STEP_NONE) pthread_cond_wait(&cv, &mu);
    int s = step;
    pthread_mutex_unlock(&mu);
    switch (s) {
    case STEP_TRANSITIONS: transitions(round); break;
    case STEP_FILL:
      for (int i = 0; i < NFILL; i++) fill[i] = pm_malloc(64);
      for (int i = 0; i < NMFILL; i++) mfill[i] = pm_malloc(MSIZE);
      mcap = pmi_medium_of(mfill[0])->capacity;
      break;
    case STEP_FREE_REST:
      for (int i = 1; i < NFILL; i += 2) pm_free(fill[i]);
      for (int i = MCAP + 1; i < NMFILL; i += 2) pm_free(mfill[i]);
      break;
    case STEP_STRESS:
      stress();
      CHECK(pm_check() == 0);   /* this heap, by its owner */
      break;
    case STEP_MSTRESS:
      mstress();
      CHECK(pm_check() == 0);
      break;
    default: return NULL;
    }
    pthread_mutex_lock(&mu);
    step = STEP_NONE;
    step_done++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
  }
}

static void run_step(int s) {
  pthread_mutex_lock(&mu);
  step = s;
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mu);
}

/* Waits up to ms for the step to finish; true if it did. */
static bool wait_step(int done_before, long ms) {
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += ms / 1000;
  deadline.tv_nsec += (ms % 1000) * 1000000L;
  if (deadline.tv_nsec >= 1000000000L) {
    deadline.tv_sec++;
    deadline.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&mu);
  while (step_done == done_before)
    if (pthread_cond_timedwait(&cv, &mu, &deadline) != 0) break;
  bool done = step_done != done_before;
  pthread_mutex_unlock(&mu);
  return done;
}

/* 1 and 2 */
static void test_lock_and_visit(void) {
  pmi_heap *h = owner_heap;
  /* A holder of the lock that is not visiting: the owner does not wait. */
  pmi_heap_lock(h);
  int before = step_done;
  run_step(STEP_TRANSITIONS);
  bool done = wait_step(before, 5000);
  CHECK(done);   /* before the handshake: the owner blocked on its own lock */
  pmi_heap_unlock(h);
  if (!done) wait_step(before, 60000);

  /* A visitor: the owner's slow paths wait for it, then go on. */
  pmi_heap_visit(h);
  CHECK(atomic_load(&h->visitor) == 1 && atomic_load(&h->busy) == 0);
  before = step_done;
  run_step(STEP_TRANSITIONS);
  CHECK(!wait_step(before, 200));   /* its first new pool needs the visitor gone */
  pmi_heap_visit_end(h);
  CHECK(wait_step(before, 60000));
  CHECK(atomic_load(&h->visitor) == 0);

  /* A visitor that gives up: nothing is left announced. */
  CHECK(pmi_heap_visit_try(h));
  pmi_heap_visit_end(h);
  CHECK(atomic_load(&h->visitor) == 0 && atomic_load(&h->lock) == PMI_LOCK_FREE);
}

/* 3 */
static void test_held_blocks(void) {
  pmi_heap *h = owner_heap;
  int before = step_done;
  run_step(STEP_FILL);
  CHECK(wait_step(before, 60000));
  for (int i = 0; i < NFILL; i += 2) pm_free(fill[i]);   /* remote frees, half of each pool */
  pm_collect(1);   /* a visitor: takes them into the idle owner's FULL pools */

  pmi_heap_visit(h);
  unsigned full = 0, with_held = 0, free_list = 0;
  for (int i = 0; i < NFILL; i += 2) {
    pmi_pool *p = pool_of(fill[i]);
    if (p->state != PMI_POOL_FULL) continue;
    full++;
    with_held += p->held != NULL;
    free_list += p->freeblock != PMI_LIST_END;
  }
  CHECK(full >= NFILL / 2 - 64);   /* blocks of FULL pools: all but the head's */
  CHECK(with_held == full);
  CHECK(free_list == 0);              /* before: the held blocks were on freeblock */
  CHECK(pmi_check_heap(h, 1) == 0);
  pmi_heap_visit_end(h);

  /* Medium regions: the first one wholly freed by this thread, every other
   * block of the rest. */
  pmi_medium *first = pmi_medium_of(mfill[0]);
  CHECK(first->state == PMI_MEDIUM_FULL && pmi_medium_of(mfill[MCAP - 1]) == first &&
        pmi_medium_of(mfill[MCAP]) != first);
  for (int i = 0; i < MCAP; i++) pm_free(mfill[i]);
  for (int i = MCAP; i < NMFILL; i += 2) pm_free(mfill[i]);
  pm_collect(1);
  pmi_heap_visit(h);
  /* in the reserve, or unmapped by the trim */
  CHECK(pmi_arenamap_kind(first) != PMI_REGION_MEDIUM || atomic_load(&first->heap) != h);
  unsigned mfull = 0, mheld = 0, mfree = 0;
  for (int i = MCAP; i < NMFILL; i += 2) {
    pmi_medium *m = pmi_medium_of(mfill[i]);
    if (m->state != PMI_MEDIUM_FULL) continue;
    mfull++;
    mheld += pmi_medium_slow(m)->held != NULL;
    mfree += m->freeblock != PMI_LIST_END;
  }
  CHECK(mfull >= (unsigned)(3 * MCAP_MIN / 2));   /* all but the head's: 3 FULL regions at least */
  CHECK(mheld == mfull && mfree == 0);
  CHECK(h->remote_mediums != NULL);
  CHECK(pmi_check_heap(h, 1) == 0);
  pmi_heap_visit_end(h);

  before = step_done;
  run_step(STEP_FREE_REST);            /* the owner's frees apply the held blocks */
  CHECK(wait_step(before, 60000));
  pmi_heap_visit(h);
  CHECK(h->remote_pools == NULL && h->remote_mediums == NULL);
  CHECK(pmi_check_heap(h, 1) == 0);
  pmi_heap_visit_end(h);
}

/* Takes each block the owner handed off (its first 16 bytes 0xa5 while it
 * waited) and frees it from this thread. */
static void free_handed_off(_Atomic(unsigned char *) *slots, int n) {
  for (int j = 0; j < n; j++) {
    unsigned char *q = atomic_exchange_explicit(&slots[j], NULL, memory_order_acquire);
    if (q == NULL) continue;
    for (int k = 0; k < 16; k++)
      if (q[k] != 0xa5) {
        CHECK(!"a handed-off block changed");
        break;
      }
    pm_free(q);
  }
}

/* 4 */
static void test_stress(void) {
  int before = step_done;
  run_step(STEP_STRESS);
  pm_stats st;
  for (int i = 0; i < 300; i++) {
    unsigned char *mine[64];
    for (int j = 0; j < 64; j++) {
      mine[j] = pm_malloc(48);
      memset(mine[j], 0x5a, 48);
    }
    pm_stats_get(&st);
    if (i % 10 == 0) pm_collect(1);   /* malloc_trim(0) */
    if (i % 25 == 0) {   /* a visit that waits for the owner's slow paths (its fast paths go on) */
      pmi_heap_visit(owner_heap);
      pmi_heap_visit_end(owner_heap);
    }
    free_handed_off(handoff, 64);   /* remote frees into the busy owner's pools */
    for (int j = 0; j < 64; j++) {
      for (int k = 0; k < 48; k++)
        if (mine[j][k] != 0x5a) {
          CHECK(!"a block changed while it was live");
          break;
        }
      pm_free(mine[j]);
    }
  }
  atomic_store(&stress_stop, 1);
  CHECK(wait_step(before, 120000));
}

/* 5 */
static void test_mstress(void) {
  atomic_store(&stress_stop, 0);
  int before = step_done;
  pm_counters c0, c1;
  pm_counters_get(&c0);
  run_step(STEP_MSTRESS);
  for (int i = 0; i < 400; i++) {
    free_handed_off(mhandoff, NMH);   /* remote frees into the busy owner's regions */
    if (i % 4 == 0) pm_collect(1);   /* malloc_trim(0): a visit of the owner's heap */
    else if (i % 4 == 2) {
      pmi_heap_visit(owner_heap);
      pmi_heap_collect_foreign(owner_heap);   /* what the purge thread's visit does */
      pmi_heap_visit_end(owner_heap);
    }
    sleep_ms(1);
  }
  atomic_store(&stress_stop, 1);
  CHECK(wait_step(before, 120000));
  for (int j = 0; j < NMH; j++) {
    unsigned char *q = atomic_exchange_explicit(&mhandoff[j], NULL, memory_order_acquire);
    if (q != NULL) pm_free(q);
  }
  pm_counters_get(&c1);
  fprintf(stderr, "medium stress: %llu regions to the reserve or unmapped by visitors and owner\n",
          (unsigned long long)(c1.mediums_reused - c0.mediums_reused));
}

int main(void) {
  pmi_option(purge_thread) = 0;
  pm_free(pm_malloc(1));
  pthread_t t;
  pthread_create(&t, NULL, owner_main, NULL);
  while (atomic_load(&owner_heap) == NULL) sleep_ms(1);
  sleep_ms(10);
  test_lock_and_visit();
  test_held_blocks();
  test_stress();
  test_mstress();
  run_step(STEP_EXIT);
  pthread_join(t, NULL);
  CHECK(pm_check() == 0);
  return pmt_done("test_visitor");
}
