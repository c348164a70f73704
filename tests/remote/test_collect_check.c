/* A remote free of a pointer that is not a live block is reported when its
 * owner collects it, and the collection writes nothing into it first: the
 * block's words are as the freeing thread left them when the report comes.
 * In a forked child: another thread frees q, a block of the owner's pool
 * that was never handed out (carved with its pool, on its free list, its
 * second word untouched); the owner collects;
 * the SIGABRT handler looks at q's second word (the remote mark the freeing
 * side wrote) and exits 11 if it is still there, 10 if the collection
 * cleared it before its check (as it did before).
 * Second child: a chain that loops (the link of the oldest block of a
 * pushed batch rewritten to lead back to the newest, as a write after free
 * could) ends with the report, not a walk for ever: the owner's walk has
 * no bound of its own, it meets the newest block again with its mark
 * cleared. */
#include <pthread.h>
#include <stdint.h>

#include "remote_test.h"

enum { SIZE = 432 };   /* 9 blocks per pool */
static void *volatile q;

static void on_abort(int sig) { _exit(((volatile uint64_t *)q)[1] != 0 ? 11 : 10); }

static void *free_q(void *arg) {
  pm_free(q);   /* checked as far as the freeing side can: aligned, in a pool page */
  return NULL;  /* the batch goes at thread exit */
}

static void child(void *arg) {
  char *p = pm_malloc(SIZE);
  q = (char *)((uintptr_t)p & ~(uintptr_t)4095) + 7 * SIZE;   /* never handed out */
  pthread_t t;
  pthread_create(&t, NULL, free_q, NULL);
  pthread_join(t, NULL);
  signal(SIGABRT, on_abort);
  pm_collect(0);   /* the owner collects q */
  _exit(0);
}

static void *a, *b;

static void *free_ab(void *arg) {
  pm_free(a);
  pm_free(b);   /* the batch: b -> a -> NULL, pushed at thread exit */
  return NULL;
}

static void child_loop(void *arg) {
  a = pm_malloc(SIZE);
  b = pm_malloc(SIZE);
  pthread_t t;
  pthread_create(&t, NULL, free_ab, NULL);
  pthread_join(t, NULL);
  /* a's link is the encoding of NULL, the key itself: key ^ b leads to b */
  volatile uintptr_t *link = a;
  *link ^= (uintptr_t)b;
  pm_collect(0);
  _exit(0);
}

int main(void) {
  char msg[4096];
  int status = pmr_child(child, NULL, msg, sizeof msg);
  CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 11, "status 0x%x (10: the mark was cleared before the check)",
         status);
  CHECKF(strstr(msg, "free(): double free or corruption: block already freed,") != NULL, "stderr: %s", msg);
  status = pmr_child(child_loop, NULL, msg, sizeof msg);
  CHECKF(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "loop: status 0x%x", status);
  CHECKF(strstr(msg, "freed by another thread, then freed or written again") != NULL, "loop: stderr: %s", msg);
  return pmt_done("test_collect_check");
}
