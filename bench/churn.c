/*
 * churn.c: object-graph churn, the allocation pattern of programs built from
 * small linked objects (interpreters, compilers, document models).
 *
 *   bench_churn [SCALE]        SCALE (default 16) is the depth of the largest tree
 *
 * A long-lived binary tree stays alive the whole run, as a program's global
 * state would; around it, short-lived trees of growing depth and linked lists
 * of records with string payloads (8..200 bytes) are built, walked and dropped.
 * Every node is its own malloc and every payload another one, so the run is
 * almost all malloc/free of 16..256-byte blocks, freed in the depth-first
 * (tree) or list order in which such programs drop their objects.
 * Prints one BENCH line: allocations+frees as ops, wall time, peak and final RSS.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"

typedef struct node {
  struct node *left, *right;
  char *name;
  long key;
} node;

typedef struct item {
  struct item *next;
  char *text;
  double value;
  int id;
} item;

static bench_rng rng;
static double ops;

static char *make_text(void) {
  size_t n = bench_rng_range(&rng, 8, 200);
  char *s = malloc(n);
  memset(s, 'a' + (int)(n % 26), n - 1);
  s[n - 1] = 0;
  ops++;
  return s;
}

static node *tree_build(int depth, long key) {
  node *t = malloc(sizeof *t);
  ops++;
  t->key = key;
  t->name = (key & 3) == 0 ? make_text() : NULL;
  if (depth > 0) {
    t->left = tree_build(depth - 1, 2 * key);
    t->right = tree_build(depth - 1, 2 * key + 1);
  } else {
    t->left = t->right = NULL;
  }
  return t;
}

static long tree_check(const node *t) {
  return t->left ? t->key + tree_check(t->left) - tree_check(t->right) : t->key;
}

static void tree_free(node *t) {
  if (!t) return;
  tree_free(t->left);
  tree_free(t->right);
  ops += t->name ? 2 : 1;
  free(t->name);
  free(t);
}

static item *list_build(int n) {
  item *head = NULL;
  for (int i = 0; i < n; i++) {
    item *it = malloc(sizeof *it);
    it->next = head;
    it->text = make_text();
    it->value = i * 0.5;
    it->id = i;
    head = it;
    ops++;
  }
  return head;
}

static double list_walk_free(item *l) {
  double sum = 0;
  while (l) {
    item *next = l->next;
    sum += l->value + (double)strlen(l->text);
    free(l->text);
    free(l);
    ops += 2;
    l = next;
  }
  return sum;
}

int main(int argc, char **argv) {
  int max_depth = (int)bench_arg(argc, argv, 1, 16);
  const int min_depth = 4;
  if (max_depth < min_depth + 2) max_depth = min_depth + 2;
  bench_rng_seed(&rng, 7);
  double t0 = bench_now();
  long check = 0;
  double sum = 0;

  node *long_lived = tree_build(max_depth, 1);
  for (int d = min_depth; d <= max_depth; d += 2) {
    long iterations = 1L << (max_depth - d + min_depth);
    for (long i = 0; i < iterations; i++) {
      node *t = tree_build(d, i);
      check += tree_check(t);
      tree_free(t);
    }
    /* lists: as many records as the trees of this depth had nodes, in lists of 1000 */
    long records = iterations << (d - 1);
    for (long done = 0; done < records; done += 1000) sum += list_walk_free(list_build(1000));
  }
  check += tree_check(long_lived);
  double t1 = bench_now();
  fprintf(stderr, "churn: check %ld sum %.0f\n", check, sum);
  bench_report_begin("churn", ops, t1 - t0);
  bench_report_end();
  tree_free(long_lived);
  return 0;
}
