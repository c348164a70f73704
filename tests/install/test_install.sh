#!/usr/bin/env bash
# cmake --install puts the library, the header and a pkg-config file in a
# prefix; a program built with `pkg-config --cflags --libs poolmalloc`
# links against it, and its malloc is poolmalloc's.
set -euo pipefail
: "${PM_BUILD_DIR:?}"
command -v pkg-config >/dev/null || { echo "pkg-config missing: skipped"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$PM_BUILD_DIR" --prefix "$tmp/prefix" > "$tmp/install.log"
for f in include/poolmalloc.h; do
  [ -f "$tmp/prefix/$f" ] || { echo "FAIL: $f not installed"; exit 1; }
done
pc=$(find "$tmp/prefix" -name poolmalloc.pc | head -1)
[ -n "$pc" ] || { echo "FAIL: poolmalloc.pc not installed"; exit 1; }
ls "$(dirname "$(dirname "$pc")")"/libpoolmalloc.so* "$(dirname "$(dirname "$pc")")"/libpoolmalloc.a > /dev/null
cat > "$tmp/prog.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
#include "poolmalloc.h"
int main(void) {
  void *p = malloc(100);                 /* the C name: poolmalloc's when linked */
  pm_counters c;
  pm_counters_get(&c);
  int ok = pm_owns(p) && c.malloc_small > 0 && pm_check() == 0;
  free(p);
  puts(ok ? "served by poolmalloc" : "NOT served by poolmalloc");
  return !ok;
}
C
export PKG_CONFIG_PATH="$(dirname "$pc")"
# shared
cc "$tmp/prog.c" -o "$tmp/prog" $(pkg-config --cflags --libs poolmalloc) -Wl,-rpath,"$(pkg-config --variable=libdir poolmalloc)"
"$tmp/prog"
# static
cc "$tmp/prog.c" -o "$tmp/prog_static" $(pkg-config --cflags poolmalloc) \
   "$(pkg-config --variable=libdir poolmalloc)/libpoolmalloc.a" -lpthread -ldl
"$tmp/prog_static"
echo "install: ok"
