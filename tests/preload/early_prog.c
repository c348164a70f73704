/* early_prog.c: checks the blocks early_lib's constructor allocated before
 * the allocator's initialisation, then allocates on as usual. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int early_check(void);

int main(void) {
  int n = early_check();
  for (int i = 0; i < 10000; i++) {
    char *p = malloc((size_t)(i % 700) + 1);
    if (p == NULL) return 1;
    memset(p, 1, (size_t)(i % 700) + 1);
    free(p);
  }
  printf("ok %d\n", n);
  return 0;
}
