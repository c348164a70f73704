/* Prints the library's option list (pm_options_print, from the one table
 * of src/diag/options.h) for the man page; run at build time by man.cmake. */
#include "poolmalloc.h"

int main(void) {
  pm_options_print(1);
  return 0;
}
