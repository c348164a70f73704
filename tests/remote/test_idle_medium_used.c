/* An idle owner's USED medium regions: thread P allocates 2,000 medium
 * blocks of about 20 KiB in four classes (about 44 MB), frees every 8th of
 * them itself (each of its FULL regions becomes USED again and goes back
 * on its class list, the last one freed into at its head) and then waits
 * on a condition variable, never calling the allocator; this thread frees
 * the rest.  The blocks of every region that is not the head of its class
 * must stop counting as in use and their regions go back (to the reserve,
 * then the OS) within a bounded time (twice POOLMALLOC_ARENA_DECAY_MS after
 * the frees, plus room for a loaded machine), while P stays alive and idle.
 * What may stay: the head region of each class (P's malloc fast path pops
 * from it), and the region the reserve keeps; the head's held blocks keep
 * only their first page (the one with the link) once the decay has passed.
 * Then P wakes: its slow paths take back what the visitors held for it, and
 * pm_check finds its heap sound; its blocks are written again, and freed.
 *
 * A second round does the same with P allocating more afterwards from the
 * regions it freed into (the head moves on, the old heads' extra use goes
 * with it) and keeping one block of one class: that region stays with it,
 * every other one goes. */
#include <pthread.h>

#include "remote_test.h"

enum { DECAY_MS = 200, NSIZES = 4, PER = 500 };
static const size_t sizes[NSIZES] = {16384, 20480, 24576, 28672};
static void *blocks[NSIZES][PER];
static int ready;
static int round_no;

static void *producer(void *arg) {
  for (int s = 0; s < NSIZES; s++)
    for (int i = 0; i < PER; i++) {
      blocks[s][i] = pm_malloc(sizes[s]);
      memset(blocks[s][i], 0x5A, sizes[s]);
    }
  for (int s = 0; s < NSIZES; s++)
    for (int i = 0; i < PER; i += 8) {
      pm_free(blocks[s][i]);
      blocks[s][i] = NULL;
    }
  if (round_no == 1) {   /* half of those again: from the regions on the lists */
    for (int s = 0; s < NSIZES; s++)
      for (int i = 0; i < PER; i += 16) {
        blocks[s][i] = pm_malloc(sizes[s]);
        memset(blocks[s][i], 0x5A, sizes[s]);
      }
  }
  pmr_announce_and_idle(&ready);   /* idle: no allocator call */
  /* Awake: a malloc and a free of each class go through the slow paths,
   * which take back what visitors held for this heap. */
  for (int s = 0; s < NSIZES; s++) {
    char *q = pm_malloc(sizes[s]);
    CHECK(q != NULL);
    memset(q, 0x33, sizes[s]);
    pm_free(q);
  }
  CHECK(pm_check() == 0);
  /* Every block again (fresh or reused, it must be whole), then freed. */
  static void *again[NSIZES][PER];
  for (int s = 0; s < NSIZES; s++)
    for (int i = 0; i < PER; i++) {
      again[s][i] = pm_malloc(sizes[s]);
      CHECK(again[s][i] != NULL);
      memset(again[s][i], 0x44, sizes[s]);
    }
  for (int s = 0; s < NSIZES; s++)
    for (int i = 0; i < PER; i++) {
      const unsigned char *b = again[s][i];
      CHECK(b[0] == 0x44 && b[sizes[s] - 1] == 0x44);
      pm_free(again[s][i]);
    }
  CHECK(pm_check() == 0);
  return NULL;
}

/* Round 1 keeps block 1 of the first class (in the class's first region). */
static int kept(int s, int i) { return round_no == 1 && s == 0 && i == 1; }

static long rss_start;   /* before the first round */

static void phase(int r) {
  round_no = r;
  ready = pmr_idle_done = 0;   /* (no thread of the test runs now) */
  pthread_t t;
  pthread_create(&t, NULL, producer, NULL);
  pmr_wait_for(&ready);
  long rss_full;
  unsigned long long used_full, regions_full;
  pm_stats *st = pmr_medium_sample(&rss_full, &used_full, &regions_full);
  CHECKF(used_full >= NSIZES * (PER - PER / 8 - 1), "medium in use %llu", used_full);
  /* What P's head regions may keep: one region's worth of each class, and
   * the kept block's region. */
  unsigned long long head_blocks = 0, nkept = 0;
  for (int s = 0; s < NSIZES; s++) head_blocks += (1u << 20) / sizes[s];
  for (int s = 0; s < NSIZES; s++)
    for (int i = 0; i < PER; i++) {
      if (blocks[s][i] == NULL) continue;
      if (kept(s, i)) {
        nkept++;
        continue;
      }
      pm_free(blocks[s][i]);
    }
  unsigned long long kept_blocks = nkept ? (1u << 20) / sizes[0] : 0;
  long long t0 = pmr_now_ms(), t_blocks = -1, t_rss = -1, t_regions = -1;
  long rss = 0;
  unsigned long long used = 0, regions = 0;
  /* Heads' blocks keep their first page: 4 classes x ~50 blocks x 4 KiB,
   * and the kept block's region (at most 1 MiB), the reserve's region. */
  long slack_kb = 8 * 1024 + (nkept ? 1024 : 0);
  /* Bounded: 4 decay periods and 5 s of room for a loaded machine. */
  while (pmr_now_ms() - t0 < 4 * DECAY_MS + 5000) {
    pmr_sleep_ms(20);
    st = pmr_medium_sample(&rss, &used, &regions);
    long long now = pmr_now_ms() - t0;
    if (t_rss < 0 && rss < rss_start + slack_kb) t_rss = now;
    /* heads, the reserve's 1, and the kept block's region */
    if (t_regions < 0 && regions <= NSIZES + 1 + nkept) t_regions = now;
    if (t_blocks < 0 && used <= head_blocks + kept_blocks) t_blocks = now;
    if (t_rss >= 0 && t_blocks >= 0 && t_regions >= 0) break;
  }
  fprintf(stderr, "idle owner's USED medium regions (round %d): RSS %ld kB at start, %ld kB full, %ld kB after "
          "(blocks free after %lld ms, RSS back after %lld ms, regions after %lld ms); medium blocks in use "
          "%llu -> %llu; regions %llu -> %llu\n",
          r, rss_start, rss_full, rss, t_blocks, t_rss, t_regions, used_full, used, regions_full, regions);
  CHECKF(t_blocks >= 0, "medium blocks freed by another thread still in use: %llu (at most %llu may wait)", used,
         head_blocks + kept_blocks);
#if !defined(__SANITIZE_THREAD__)   /* ThreadSanitizer's shadow memory has its own RSS */
  CHECKF(t_rss >= 0, "RSS stays at %ld kB (started at %ld kB)", rss, rss_start);
#endif
  CHECKF(t_regions >= 0, "%llu medium regions mapped", regions);
  /* The blocks held for the heads: once the decay has passed, each keeps
   * its first and last pages (16 to 28 KiB blocks: 5 to 8 pages each); the
   * reserve's region (up to 1 MiB), the heads' own free blocks and headers
   * stay.  Here about 2.9 MB in round 1; 5.6 MB if the held blocks kept
   * their pages. */
  long held_kb = (long)(used - nkept) * 8 + 3072 + (nkept ? 1024 : 0);
  long long t_held = -1;
  while (pmr_now_ms() - t0 < 4 * DECAY_MS + 5000) {
    rss = pmr_rss_kb();
    if (rss < rss_start + held_kb) {
      t_held = pmr_now_ms() - t0;
      break;
    }
    pmr_sleep_ms(20);
  }
  fprintf(stderr, "  held blocks' pages: RSS %ld kB after %lld ms (bound %ld kB above the start)\n", rss, t_held, held_kb);
#if !defined(__SANITIZE_THREAD__)
  CHECKF(t_held >= 0, "RSS stays at %ld kB with %llu blocks held (started at %ld kB)", rss, used, rss_start);
#endif
  pmr_release();
  pthread_join(t, NULL);
  for (int s = 0; s < NSIZES; s++)
    for (int i = 0; i < PER; i++)
      if (blocks[s][i] != NULL && kept(s, i)) {
        const unsigned char *b = blocks[s][i];
        CHECK(b[0] == 0x5A && b[sizes[s] - 1] == 0x5A);
        pm_free(blocks[s][i]);
      }
  /* P's exit took the rest: nothing in use. */
  st = pmr_stats();
  CHECKF(pmr_medium_in_use(st) == 0, "after P's exit, medium in use %llu", pmr_medium_in_use(st));
}

int main(int argc, char **argv) {
  pmr_setenv_reexec(argv, "POOLMALLOC_ARENA_DECAY_MS", "200", "POOLMALLOC_ARENA_RESERVE", "4", NULL);
  rss_start = pmr_rss_kb();
  phase(0);
  phase(1);
  return pmt_done("idle_medium_used");
}
