/* Reference counting: counts rise and fall as references are stored and
 * dropped, the last reference destroys at once (finalizer, weakref callback,
 * clear, in CPython's order), a 10-million-long chain is released without
 * deep recursion, and bad decrefs abort with a clear message. */
/* Checked mode: every pm_incref/pm_decref verifies the header's check byte,
 * so even a decref of freed memory is caught. */
#define PM_GC_CHECKED 1
#include "gc_test.h"

#include <errno.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static void test_counts(void) {
  node *a = node_new(&node_type, "A"), *b = node_new(&node_type, "B");
  CHECK(pm_refcount(a) == 1 && pm_refcount(b) == 1);
  for (int i = 0; i < NODE_REFS; i++) CHECK(a->ref[i] == NULL);   /* payload zeroed */
  node_set(a, 0, b);
  CHECK(pm_refcount(b) == 2);
  node_set(a, 1, b);
  CHECK(pm_refcount(b) == 3);
  pm_incref(b); pm_xincref(b); pm_xincref(NULL);
  CHECK(pm_refcount(b) == 5);
  pm_decref(b); pm_xdecref(b); pm_xdecref(NULL);
  CHECK(pm_refcount(b) == 3);
  node_set(a, 1, NULL);
  CHECK(pm_refcount(b) == 2);
  CHECK(pm_typeof(a) == &node_type);
  CHECK(pm_gc_is_tracked(a));
  pm_decref(b);                         /* a still holds it */
  CHECK(pm_refcount(b) == 1);
  pm_decref(a);                         /* frees a, then b through a's clear */
}

static long g_cb_calls;
static void order_cb(void *w, void *arg) {
  g_cb_calls++;
  CHECK(pm_weakref_get(w) == NULL);     /* the referent is gone for good */
  strncat(g_log, ", callback", sizeof g_log - strlen(g_log) - 1);
  (void)arg;
}

static void test_last_reference_destroys(void) {
  log_reset();
  node *a = node_new(&fnode_type, "A");
  node *leaf = pm_new(&leaf_type);
  CHECK(leaf && !pm_gc_is_tracked(leaf));  /* no traverse: never tracked */
  leaf->name = "leaf";
  node_set(a, 0, leaf);
  pm_decref(leaf);
  void *w = pm_weakref_new(a, order_cb, NULL);
  CHECK(w && pm_is_weakref(w));
  void *got = pm_weakref_get(w);
  CHECK(got == a && pm_refcount(a) == 2);
  pm_decref(got);
  pm_decref(a);                         /* destroyed here, not at a later collection */
  CHECK(g_finalized == 2 && g_cleared == 1 && g_cb_calls == 1);
  CHECK(strcmp(g_log, "Deleted: A, callback, Deleted: leaf") == 0);
  pm_decref(w);
  CHECK(g_cb_calls == 1);
}

/* A resurrecting finalizer on death by count: the object lives on, intact,
 * and is not finalized a second time. */
static void test_resurrect_by_count(void) {
  log_reset();
  g_resurrect_slot = NULL;
  node *a = node_new(&rnode_type, "R");
  node *b = node_new(&node_type, "child");
  node_set(a, 0, b);
  pm_decref(b);
  pm_decref(a);
  CHECK(g_resurrect_slot == a && pm_refcount(a) == 1 && a->ref[0] == b && pm_refcount(b) == 1);
  CHECK(g_finalized == 1);
  pm_decref(a);                         /* finalizer already ran: freed now */
  CHECK(g_finalized == 1);
}

/* 10 million nodes, each holding the next: dropping the head releases the
 * chain with the trashcan, in a stack of 1 MiB (a recursive release would
 * need about 10 M frames). */
static void *chain_thread(void *arg) {
  long n = (long)arg;
  node *head = node_new(&node_type, "head"), *cur = head;
  for (long i = 1; i < n; i++) {
    node *nx = pm_new(&node_type);
    CHECK(nx);
    cur->ref[0] = nx;                   /* steals the new reference */
    cur = nx;
  }
  long c[3];
  pm_gc_get_count(c);
  pm_decref(head);
  long c2[3];
  pm_gc_get_count(c2);
  CHECK(c2[0] <= c[0]);

  /* The same through the collector: a 2-cycle holding a 1-million chain of
   * untracked nodes (so not garbage of the collection themselves): clearing
   * the cycle releases the chain by count, with the trashcan. */
  node *x = node_new(&node_type, "x"), *y = node_new(&node_type, "y");
  node_set(x, 0, y); node_set(y, 0, x);
  cur = x;
  for (long i = 0; i < n / 10; i++) {
    node *nx = pm_new(&node_type);
    CHECK(nx);
    pm_gc_untrack(nx);
    cur->ref[1] = nx;
    cur = nx;
  }
  pm_decref(x); pm_decref(y);
  CHECK(pm_gc_collect(2) == 2);
  return NULL;
}
#include <pthread.h>
static void test_long_chain(void) {
  pm_gc_disable();                      /* a build of 10 M should not be timed with collections */
  pthread_attr_t at;
  pthread_attr_init(&at);
  pthread_attr_setstacksize(&at, 1 << 20);
  pthread_t t;
  CHECK(pthread_create(&t, &at, chain_thread, (void *)10000000L) == 0);
  CHECK(pthread_join(t, NULL) == 0);
  pm_gc_enable();
  CHECK(pm_gc_get_objects(-1, NULL, NULL) == 0);
}

/* Runs f in a child, expects SIGABRT and msg on its stderr. */
static void expect_abort(void (*f)(void), const char *msg) {
  int pfd[2];
  CHECK(pipe(pfd) == 0);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    struct rlimit rl = { 0, 0 };
    setrlimit(RLIMIT_CORE, &rl);
    dup2(pfd[1], 2);
    f();
    _exit(0);
  }
  close(pfd[1]);
  char buf[1024] = { 0 };
  size_t got = 0;
  ssize_t r;
  while (got < sizeof buf - 1 && (r = read(pfd[0], buf + got, sizeof buf - 1 - got)) > 0) got += (size_t)r;
  close(pfd[0]);
  int st;
  CHECK(waitpid(pid, &st, 0) == pid);
  if (!(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT) || !strstr(buf, msg)) {
    fprintf(stderr, "expected abort with '%s', got status %d and: %s\n", msg, st, buf);
    exit(1);
  }
  fprintf(stderr, "child aborted as expected: %s", buf);
}

static void bad_double_decref(void) {
  node *a = node_new(&node_type, "A");
  pm_incref(a);
  pm_decref(a);
  pm_decref(a);                         /* freed here */
  pm_decref(a);                         /* one too many: the check byte is gone */
}
static void bad_zero_decref(void) {
  /* A count already at zero while the object is being destroyed. */
  node *a = node_new(&node_type, "A");
  pm_object_head_ *h = (pm_object_head_ *)a - 1;
  h->refcnt_ = 0;
  pm_decref(a);
}
static void bad_not_object(void) {
  char *block = pm_malloc(64);
  memset(block, 0, 64);
  pm_decref(block + 32);                /* a count of 0 in "its header", no magic */
}

static void bad_overflow(void) {
  node *a = node_new(&node_type, "A");
  ((pm_object_head_ *)a - 1)->refcnt_ = 0xFFFFFFFFu;
  pm_incref(a);
}

static void test_bad_decref(void) {
  expect_abort(bad_overflow, "passed 2^32 - 1");
  expect_abort(bad_zero_decref, "has reference count 0");
  expect_abort(bad_not_object, "not a poolgc object");
  expect_abort(bad_double_decref, "pm_decref");
}

int main(void) {
  test_counts();
  test_last_reference_destroys();
  test_resurrect_by_count();
  test_bad_decref();
  test_long_chain();
  CHECK(pm_new(NULL) == NULL && errno == EINVAL);
  printf("ok\n");
  return 0;
}
