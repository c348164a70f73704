# Writes a deterministic C file of about N*40 lines (awk -v N=500 -f gen_c.awk):
# structs, tables, switches, loops, string handling and recursion, so that
# gcc's parser and optimiser (and their allocations) have real work to do.
BEGIN {
  if (N == 0) N = 500
  print "#include <stddef.h>\n#include <string.h>\n#include <stdio.h>\n#include <stdlib.h>\n"
  print "struct item { int id; double w; const char *name; struct item *next; unsigned char tag[8]; };"
  print "typedef int (*op_fn)(int, int);\n"
  for (i = 0; i < N; i++) {
    printf "static const char *names_%d[] = {", i
    for (j = 0; j < 6; j++) printf "\"n%d_%d\", ", i, j
    print "NULL };"
    printf "struct s%d { int a; long b; char c[%d]; struct item it; };\n", i, (i % 13) + 3
    printf "static int op_%d(int x, int y) {\n", i
    printf "  int acc = %d;\n", i
    printf "  for (int k = 0; k < (x & 31); k++) {\n"
    printf "    acc = acc * %d + (y ^ k);\n", (i % 7) + 3
    printf "    if (acc > %d) acc -= x * %d;\n", 100000 + i, (i % 5) + 1
    printf "  }\n"
    printf "  switch ((x + y) %% 8) {\n"
    for (j = 0; j < 8; j++) printf "  case %d: acc += %d * x - %d; break;\n", j, (i + j) % 11, j
    printf "  default: break;\n  }\n  return acc;\n}\n"
    printf "int fn_%d(struct s%d *p, const char *s) {\n", i, i
    printf "  size_t n = s ? strlen(s) : 0;\n"
    printf "  int h = %d;\n", i * 31
    printf "  for (size_t k = 0; k < n; k++) h = h * 33 + (unsigned char)s[k];\n"
    printf "  for (const char **q = names_%d; *q; q++) h ^= (int)strlen(*q) << (h & 7);\n", i
    printf "  p->a = op_%d(h, (int)n);\n", i
    printf "  p->b = (long)p->a * %d + (long)sizeof p->c;\n", i + 1
    printf "  snprintf(p->c, sizeof p->c, \"%%d\", p->a);\n"
    printf "  p->it.id = p->a; p->it.w = p->a / %d.0; p->it.name = names_%d[h & 3];\n", i + 1, i
    if (i > 0) printf "  if ((h & 15) == 3) { struct s%d t; memset(&t, 0, sizeof t); h += fn_%d(&t, p->c); }\n", i - 1, i - 1
    printf "  return h + (int)p->b;\n}\n\n"
  }
  print "static const op_fn ops[] = {"
  for (i = 0; i < N; i++) printf "  op_%d,\n", i
  print "};"
  print "int run_all(int seed) {\n  int r = seed;"
  print "  for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) r = ops[i](r, (int)i);"
  print "  return r;\n}"
}
