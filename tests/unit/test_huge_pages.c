/* Transparent huge pages for big heaps (core/chunk.c, POOLMALLOC_THP): a
 * small heap gets none and maps no chunk; a heap beyond the threshold gets
 * its arenas from 2 MiB chunks, which the kernel backs with huge pages (AnonHugePages in /proc/self/smaps_rollup); after the frees
 * and the decay its memory goes back all the same; with POOLMALLOC_THP=0 a
 * big heap maps no chunk and gets no huge page (where the mode is
 * "madvise": with "always" the kernel may give one to any heap).  A huge
 * block of 8 MiB beyond the threshold gets huge pages, and gives them back
 * after its free and the decay.  Those runs set POOLMALLOC_THP_ADVISE=1;
 * without it, where an advised fault would wait for compaction, the arenas
 * take no chunk (defaults()).  Skipped where the kernel's THP mode is
 * "never" (or it has none). */
#include <errno.h>
#include <malloc.h>
#include <stdbool.h>
#include <sys/wait.h>
#include <time.h>

#include "pmtest.h"
#include "poolmalloc.h"

enum { SMALL_BLOCKS = 16384, SMALL_SIZE = 64,    /* 1 MiB: below the threshold */
       BIG_BLOCKS = 400000, BIG_SIZE = 240,      /* about 96 MiB of pools */
       MED_BLOCKS = 6000, MED_SIZE = 4000,       /* and 24 MiB of medium regions (no chunks) */
       DECAY_MS = 100 };

/* A "Name:   N kB" line of a /proc file, in KiB; -1 if absent. */
static long proc_kb(const char *path, const char *name) {
  FILE *f = fopen(path, "r");
  if (f == NULL) return -1;
  char line[256];
  long kb = -1;
  size_t n = strlen(name);
  while (fgets(line, sizeof line, f) != NULL)
    if (strncmp(line, name, n) == 0 && line[n] == ':') {
      kb = strtol(line + n + 1, NULL, 10);
      break;
    }
  fclose(f);
  return kb;
}

static long huge_kb(void) { return proc_kb("/proc/self/smaps_rollup", "AnonHugePages"); }
static long rss_kb(void) { return proc_kb("/proc/self/status", "VmRSS"); }

/* thp_fault_fallback of /proc/vmstat: huge page faults the kernel could not serve. */
static long fault_fallbacks(void) {
  FILE *f = fopen("/proc/vmstat", "r");
  if (f == NULL) return -1;
  char name[64];
  long v, found = -1;
  while (fscanf(f, "%63s %ld", name, &v) == 2)
    if (strcmp(name, "thp_fault_fallback") == 0) found = v;
  fclose(f);
  return found;
}

/* A line of /sys/kernel/mm/transparent_hugepage: the mode ("enabled":
 * "[always]", "[madvise]" or "[never]" is in it) or the defrag setting;
 * "" if the kernel has none. */
static const char *thp_file(const char *path, char *buf, size_t n) {
  FILE *f = fopen(path, "r");
  if (f == NULL) return "";
  if (fgets(buf, (int)n, f) == NULL) buf[0] = '\0';
  fclose(f);
  return buf;
}
static const char *thp_mode(void) {
  static char buf[128];
  return thp_file("/sys/kernel/mm/transparent_hugepage/enabled", buf, sizeof buf);
}
/* Would an advised fault wait for compaction here (mode "madvise", defrag
 * neither "defer" nor "never")?  Then poolmalloc advises nothing unless
 * POOLMALLOC_THP_ADVISE=1 (core/os.c, pmi_os_thp_mode). */
static bool advice_stalls(void) {
  static char buf[128];
  const char *d = thp_file("/sys/kernel/mm/transparent_hugepage/defrag", buf, sizeof buf);
  return strstr(thp_mode(), "[madvise]") != NULL && strstr(d, "[defer]") == NULL && strstr(d, "[never]") == NULL;
}
static bool thp_mode_allows(void) { return thp_mode()[0] != '\0' && strstr(thp_mode(), "[never]") == NULL; }
/* With "always" the kernel backs any aligned 2 MiB of a VMA with a huge
 * page, advised or not: a heap without chunks may get some all the same. */
static bool thp_always(void) { return strstr(thp_mode(), "[always]") != NULL; }

static pm_counters counters(void) {
  pm_counters c;
  pm_counters_get(&c);
  return c;
}

static void **fill(size_t n, size_t size) {
  void **v = calloc(n, sizeof *v);
  REQUIRE(v != NULL);
  for (size_t i = 0; i < n; i++) {
    v[i] = malloc(size);
    REQUIRE(v[i] != NULL);
    memset(v[i], (int)(i & 0xff), size);
  }
  return v;
}

static void drain(void **v, size_t n) {
  for (size_t i = 0; i < n; i++) free(v[i]);
  free(v);
}

static long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Below the threshold: no chunk, no huge page. */
static void small_heap(long huge_before) {
  void **v = fill(SMALL_BLOCKS, SMALL_SIZE);
  pm_counters c = counters();
  CHECKF(c.thp_chunks == 0 && c.thp_pieces == 0, "a 1 MiB heap mapped %llu chunks", c.thp_chunks);
  if (!thp_always())
    CHECKF(huge_kb() == huge_before, "a 1 MiB heap got %ld kB of huge pages (%ld before)", huge_kb(), huge_before);
  drain(v, SMALL_BLOCKS);
}

static int big(void) {
  long huge0 = huge_kb();
  if (huge0 < 0) PMT_SKIP("no /proc/self/smaps_rollup");
  small_heap(huge0);
  long rss0 = rss_kb(), fallback0 = fault_fallbacks();
  void **v = fill(BIG_BLOCKS, BIG_SIZE);
  void **m = fill(MED_BLOCKS, MED_SIZE);
  pm_counters c = counters();
  long huge1 = huge_kb(), rss1 = rss_kb();
  printf("big heap: rss %ld -> %ld kB, AnonHugePages %ld kB, %llu chunks, %llu pieces\n",
         rss0, rss1, huge1, c.thp_chunks, c.thp_pieces);
  CHECKF(c.thp_chunks >= 16 && c.thp_pieces >= 4 * c.thp_chunks,
         "%llu chunks, %llu arenas carved for 96 MiB of pools", c.thp_chunks, c.thp_pieces);
  if (huge1 - huge0 == 0 && fault_fallbacks() > fallback0) PMT_SKIP("the kernel had no huge page to give (thp_fault_fallback grew)");
  CHECKF(huge1 - huge0 >= 32 * 1024, "only %ld kB of huge pages for 96 MiB of pools", huge1 - huge0);
  drain(v, BIG_BLOCKS);
  drain(m, MED_BLOCKS);
  /* The decay (the purge thread, DECAY_MS) returns the empty arenas and
   * regions beyond the reserves: the RSS falls back near where it was. */
  long t0 = now_ms(), rss2 = rss_kb();
  while (rss2 > rss0 + 16 * 1024 && now_ms() - t0 < 20 * DECAY_MS + 10000) {
    struct timespec ts = {0, 20 * 1000000L};
    nanosleep(&ts, NULL);
    rss2 = rss_kb();
  }
  long huge2 = huge_kb();
  printf("after free and decay (%ld ms): rss %ld kB, AnonHugePages %ld kB\n", now_ms() - t0, rss2, huge2);
  CHECKF(rss2 <= rss0 + 16 * 1024, "rss %ld kB after the decay, %ld before the big heap", rss2, rss0);
  CHECKF(huge2 - huge0 <= 16 * 1024, "%ld kB of huge pages left after the decay", huge2 - huge0);
  return pmt_done("huge_pages");
}

/* The default where an advised fault would wait for compaction (mode
 * "madvise", defrag "madvise", "always" or "defer+madvise"): the same big
 * heap takes no chunk, so that no small malloc waits; a huge block of 32
 * MiB is advised all the same.  Elsewhere chunks as in big(). */
static int defaults(void) {
  void **v = fill(BIG_BLOCKS, BIG_SIZE);
  char *h = malloc((size_t)32 << 20);
  REQUIRE(h != NULL);
  memset(h, 1, (size_t)32 << 20);
  pm_counters c = counters();
  printf("defaults (advice %s here): %llu chunks, %llu huge mappings\n", advice_stalls() ? "stalls" : "does not stall",
         c.thp_chunks, c.thp_huge_maps);
  if (advice_stalls())
    CHECKF(c.thp_chunks == 0, "%llu chunks where advice stalls", c.thp_chunks);
  else
    CHECKF(c.thp_chunks >= 16, "%llu chunks", c.thp_chunks);
  CHECKF(c.thp_huge_maps == 1, "%llu huge mappings advised for one 32 MiB block", c.thp_huge_maps);
  free(h);
  drain(v, BIG_BLOCKS);
  return pmt_done("huge_pages");
}

/* POOLMALLOC_THP=0: the same big heap, no chunk, no huge page. */
static int off(void) {
  long huge0 = huge_kb();
  if (huge0 < 0) PMT_SKIP("no /proc/self/smaps_rollup");
  void **v = fill(BIG_BLOCKS, BIG_SIZE);
  void **m = fill(MED_BLOCKS, MED_SIZE);
  pm_counters c = counters();
  CHECKF(c.thp_chunks == 0 && c.thp_pieces == 0, "POOLMALLOC_THP=0 mapped %llu chunks", c.thp_chunks);
  char *h = malloc((size_t)32 << 20);   /* and a huge block: not advised */
  REQUIRE(h != NULL);
  memset(h, 1, (size_t)32 << 20);
  c = counters();
  CHECKF(c.thp_huge_maps == 0, "POOLMALLOC_THP=0 advised %llu huge mappings", c.thp_huge_maps);
  if (!thp_always()) CHECKF(huge_kb() == huge0, "POOLMALLOC_THP=0 got %ld kB of huge pages", huge_kb() - huge0);
  free(h);
  if (!thp_always()) CHECKF(huge_kb() == huge0, "POOLMALLOC_THP=0 got %ld kB of huge pages", huge_kb() - huge0);
  drain(v, BIG_BLOCKS);
  drain(m, MED_BLOCKS);
  return pmt_done("huge_pages");
}

/* A huge block of 8 MiB, once huge blocks take more than POOLMALLOC_THP=4
 * MiB: its mapping is advised (thp_huge_maps) and its whole 2 MiB ranges
 * are huge pages; freed, it waits in the cache, and the decay (seen at the
 * next huge call) gives it back: RSS and AnonHugePages fall back. */
static int huge_block(void) {
  long huge0 = huge_kb(), rss0 = rss_kb(), fallback0 = fault_fallbacks();
  if (huge0 < 0) PMT_SKIP("no /proc/self/smaps_rollup");
  size_t size = (size_t)8 << 20;
  char *p = malloc(size);
  REQUIRE(p != NULL);
  memset(p, 0x5a, size);
  pm_counters c = counters();
  long huge1 = huge_kb(), rss1 = rss_kb();
  printf("8 MiB block: rss %ld -> %ld kB, AnonHugePages %ld -> %ld kB, %llu advised\n", rss0, rss1, huge0, huge1,
         c.thp_huge_maps);
  CHECKF(c.thp_huge_maps == 1, "%llu huge mappings advised for one 8 MiB block", c.thp_huge_maps);
  if (huge1 - huge0 == 0 && fault_fallbacks() > fallback0) PMT_SKIP("the kernel had no huge page to give (thp_fault_fallback grew)");
  CHECKF(huge1 - huge0 >= 6 * 1024, "only %ld kB of huge pages for an 8 MiB block", huge1 - huge0);
  CHECKF(rss1 - rss0 <= 9 * 1024, "an 8 MiB block took %ld kB of RSS", rss1 - rss0);
  for (size_t i = 0; i < size; i += 4096) CHECK(p[i] == 0x5a);
  free(p);
  struct timespec ts = {0, 3 * DECAY_MS * 1000000L};
  nanosleep(&ts, NULL);
  free(malloc(300 << 10));   /* a huge call: the decayed block leaves the cache */
  long huge2 = huge_kb(), rss2 = rss_kb();
  printf("after free and decay: rss %ld kB, AnonHugePages %ld kB\n", rss2, huge2);
  CHECKF(rss2 <= rss0 + 1024, "rss %ld kB after the decay, %ld before the block", rss2, rss0);
  CHECKF(huge2 <= huge0, "%ld kB of huge pages left after the decay (%ld before)", huge2, huge0);
  return pmt_done("huge_pages");
}

/* Runs this program again with argument what and the variables set. */
static int child(const char *self, const char *what, char *const env[]) {
  fflush(stdout);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    for (unsigned i = 0; env[i] != NULL; i += 2) setenv(env[i], env[i + 1], 1);
    execl("/proc/self/exe", self, what, (char *)NULL);
    _exit(127);
  }
  int st;
  REQUIRE(waitpid(pid, &st, 0) == pid);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "big") == 0) return big();
  if (argc > 1 && strcmp(argv[1], "off") == 0) return off();
  if (argc > 1 && strcmp(argv[1], "huge_block") == 0) return huge_block();
  if (argc > 1 && strcmp(argv[1], "defaults") == 0) return defaults();
  if (!thp_mode_allows()) PMT_SKIP("transparent huge pages are \"never\" here (or absent)");
  /* (THP_ADVISE: huge pages here whatever the defrag setting) */
  char *big_env[] = {"POOLMALLOC_ARENA_DECAY_MS", "100", "POOLMALLOC_ARENA_RESERVE", "4", "POOLMALLOC_THP", "16",
                     "POOLMALLOC_THP_ADVISE", "1", NULL};
  char *off_env[] = {"POOLMALLOC_THP", "0", NULL};
  int a = child(argv[0], "big", big_env);
  int b = child(argv[0], "off", off_env);
  char *block_env[] = {"POOLMALLOC_ARENA_DECAY_MS", "100", "POOLMALLOC_THP", "4", "POOLMALLOC_THP_ADVISE", "1", NULL};
  int d = child(argv[0], "huge_block", block_env);
  char *defaults_env[] = {"POOLMALLOC_THP", "4", NULL};
  int e = child(argv[0], "defaults", defaults_env);
  CHECKF(e == 0 || e == 77, "the run with the default advice failed (%d)", e);
  CHECKF(d == 0 || d == 77, "the huge block's run failed (%d)", d);
  CHECKF(a == 0 || a == 77, "the big heap's run failed (%d)", a);
  CHECKF(b == 0 || b == 77, "the run with POOLMALLOC_THP=0 failed (%d)", b);
  if (a == 77 && b == 77 && d == 77) PMT_SKIP("all runs skipped");
  return pmt_done("huge_pages");
}
