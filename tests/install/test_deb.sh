#!/usr/bin/env bash
# The Debian package: cpack builds it from this build tree, dpkg -x unpacks
# it into a scratch root, and there the installed `poolmalloc` command runs a
# program on the installed library (building nothing), a program links
# against the installed library through pkg-config and through CMake's
# find_package, and the man page lists every option.
set -euo pipefail
: "${PM_BUILD_DIR:?}" "${PM_SOURCE_DIR:?}"
for t in cpack dpkg-deb pkg-config cc; do
  command -v "$t" >/dev/null || { echo "$t missing: skipped"; exit 77; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

(cd "$PM_BUILD_DIR" && cpack -G DEB -B "$tmp/pkg" > "$tmp/cpack.log" 2>&1) ||
  { cat "$tmp/cpack.log"; echo "FAIL: cpack -G DEB"; exit 1; }
deb=$(ls "$tmp"/pkg/poolmalloc_*.deb)
echo "built $(basename "$deb")"
dpkg-deb -I "$deb" | sed -n 's/^ \(Package\|Version\|Architecture\|Depends\|Recommends\):/  \1:/p'
dpkg-deb -x "$deb" "$tmp/root"
usr="$tmp/root/usr"
fail=0
need() {   # a file of the package, by pattern under /usr
  local found
  found=$(cd "$usr" && ls -d $1 2>/dev/null | head -1 || true)
  if [[ -z $found ]]; then echo "FAIL: the package has no /usr/$1"; fail=1; else echo "  /usr/$found"; fi
}
need 'lib*/libpoolmalloc.so.0'
need 'lib*/libpoolmalloc.so'
need 'lib*/libpoolmalloc.a'
need 'include/poolmalloc.h'
need 'include/poolgc.h'
need 'lib*/pkgconfig/poolmalloc.pc'
need 'lib*/cmake/poolmalloc/poolmallocConfig.cmake'
need 'bin/poolmalloc'
need 'bin/poolmalloc-stats-plot'
need 'share/man/man3/poolmalloc.3*'
[[ $fail == 0 ]] || exit 1

# The man page lists every option, as pm_options_print does.
man3=$(ls "$usr"/share/man/man3/poolmalloc.3*)
cat > "$tmp/opts.c" <<'C'
#include "poolmalloc.h"
int main(void) { pm_options_print(1); return 0; }
C
cc -I"$usr/include" "$tmp/opts.c" -L"$(dirname "$(ls "$usr"/lib*/libpoolmalloc.so.0)")" -lpoolmalloc \
   -Wl,-rpath,"$(dirname "$(ls "$usr"/lib*/libpoolmalloc.so.0)")" -o "$tmp/opts"
for var in $("$tmp/opts" | sed -n 's/^- `\(POOLMALLOC_[A-Z_]*\)=.*/\1/p'); do
  grep -q "^\\\\fB${var//_/_}=" "$man3" || { echo "FAIL: the man page does not list $var"; fail=1; }
done
[[ $fail == 0 ]] && echo "man page: every option listed"

# The installed command: no build tools on PATH that it could use.
mkdir "$tmp/nobuild"
for t in cmake make gcc cc; do printf '#!/bin/sh\necho "built something" >&2; exit 99\n' > "$tmp/nobuild/$t"; chmod +x "$tmp/nobuild/$t"; done
run() { env PATH="$tmp/nobuild:$PATH" "$usr/bin/poolmalloc" "$@"; }
lib=$(run --lib)
[[ $lib == "$usr"/lib*/libpoolmalloc.so.0 || $lib == "$(readlink -f "$usr")"/lib*/libpoolmalloc.so.0* ]] ||
  { echo "FAIL: poolmalloc --lib printed $lib, not the unpacked library"; exit 1; }
seq 1 20000 | shuf --random-source=<(yes) > "$tmp/numbers"
POOLMALLOC_STATS=json POOLMALLOC_STATS_FILE="$tmp/report.json" run sort -n "$tmp/numbers" > "$tmp/sorted"
seq 1 20000 | cmp - "$tmp/sorted" || { echo "FAIL: sort under the installed command"; exit 1; }
python3 - "$tmp/report.json" <<'PY' || fail=1
import json, sys
d = json.loads(open(sys.argv[1]).read().splitlines()[-1])
n = d["counters"]["malloc_small"]
print(f"  sort under the installed poolmalloc: {n} small mallocs served")
sys.exit(0 if n > 0 else "FAIL: the report counts no small malloc")
PY
# The demonstration (no arguments): its summary line reads the library's
# counters by name, so its figures must agree with one another.
if command -v python3 > /dev/null; then
  POOLMALLOC_STATS=0 run > "$tmp/demo.out" 2> "$tmp/demo.err" || { echo "FAIL: the demonstration failed"; cat "$tmp/demo.err"; fail=1; }
  python3 - "$tmp/demo.err" <<'PY' || fail=1
import re, sys
text = open(sys.argv[1]).read()
m = re.search(r"served ([\d,]+) allocations: ([\d,]+) small .*?, ([\d,]+) medium .*?, ([\d,]+) huge .*?; ([\d,]+) pool blocks freed", text)
if not m:
    sys.exit("FAIL: no summary line from the demonstration:\n" + text[-2000:])
total, small, medium, huge, freed = (int(g.replace(",", "")) for g in m.groups())
print(f"  demonstration: {total} allocations, {small} small, {freed} pool blocks freed")
ok = total == small + medium + huge and small > 100000 and small // 2 < freed <= small
sys.exit(0 if ok else "FAIL: the demonstration's summary does not add up: " + m.group(0))
PY
fi
[[ ! -e $usr/build && ! -e $tmp/root/build ]] || { echo "FAIL: the installed command built something"; fail=1; }

# pkg-config against the unpacked package.
cat > "$tmp/prog.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
#include "poolmalloc.h"
#include "poolgc.h"
int main(void) {
  void *p = malloc(100);
  static const pm_type t = { "t", 16, NULL, NULL, NULL };
  void *o = pm_new(&t);
  int ok = pm_owns(p) && o != NULL && pm_check() == 0;
  pm_decref(o);
  free(p);
  puts(ok ? "served by poolmalloc" : "NOT served by poolmalloc");
  return !ok;
}
C
pc=$(ls "$usr"/lib*/pkgconfig/poolmalloc.pc)
export PKG_CONFIG_PATH="$(dirname "$pc")"
libdir=$(pkg-config --variable=libdir poolmalloc)
cc "$tmp/prog.c" -o "$tmp/prog" $(pkg-config --cflags --libs poolmalloc) -Wl,-rpath,"$libdir"
"$tmp/prog" || fail=1
cc "$tmp/prog.c" -o "$tmp/prog_static" $(pkg-config --cflags poolmalloc) "$libdir/libpoolmalloc.a" \
   $(pkg-config --libs-only-other --static poolmalloc) -lpthread -ldl
"$tmp/prog_static" || fail=1

# find_package(poolmalloc) against the unpacked package.
if command -v cmake >/dev/null; then
  mkdir "$tmp/cm"
  cp "$tmp/prog.c" "$tmp/cm/"
  cat > "$tmp/cm/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.18)
project(uses_poolmalloc C)
find_package(poolmalloc REQUIRED)
add_executable(prog prog.c)
target_link_libraries(prog PRIVATE poolmalloc::poolmalloc)
CM
  cmake -S "$tmp/cm" -B "$tmp/cm/b" -DCMAKE_PREFIX_PATH="$usr" > "$tmp/cm.log" 2>&1 &&
    cmake --build "$tmp/cm/b" >> "$tmp/cm.log" 2>&1 && "$tmp/cm/b/prog" ||
    { cat "$tmp/cm.log"; echo "FAIL: find_package(poolmalloc) against the package"; fail=1; }
fi

[[ $fail == 0 ]] && echo "package: ok"
exit "$fail"
