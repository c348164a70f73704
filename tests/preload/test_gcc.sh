#!/usr/bin/env bash
# gcc (driver, cc1, cc1plus, as) under poolmalloc: the assembly and the object
# files it produces must be byte-identical to those made without poolmalloc.
#  - a generated C file of about 20,000 lines (gen_c.awk), gcc -O1 -S to stdout;
#  - a generated C++ file (gen_cc.awk: templates, std containers), g++ -O1 -S;
#  - the project's own src/*.c, gcc -O2 -g -S and -c (object files compared
#    by their sha256; -fdebug-prefix-map keeps the two run directories out).
# shellcheck source=tests/preload/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

pm_require gcc awk sha256sum
pm_setup
here="$PM_SOURCE_DIR/tests/preload"

work="$PM_TMP/input"
mkdir -p "$work/obj"
awk -v N=570 -f "$here/gen_c.awk" >"$work/gen.c"
have_gxx=0
if command -v g++ >/dev/null 2>&1; then
  awk -v N=15 -f "$here/gen_cc.awk" >"$work/gen.cc"
  have_gxx=1
fi
cp -a "$PM_SOURCE_DIR/src" "$PM_SOURCE_DIR/include" "$work/"
pm_log "inputs: gen.c $(wc -l <"$work/gen.c") lines, $(ls "$work"/src/*/*.c 2>/dev/null | wc -l) files in src/"

# Runs in its own copy of $work; everything it prints is compared.
compile_all() {
  local f rc
  gcc -std=gnu11 -O1 -Wall -S -o - gen.c
  echo "gen.c: exit $?"
  if [[ $have_gxx == 1 ]]; then
    g++ -std=gnu++17 -O1 -S -o - gen.cc
    echo "gen.cc: exit $?"
  fi
  for f in src/*/*.c; do
    [[ -e $f ]] || continue
    gcc -std=gnu11 -O2 -g -fdebug-prefix-map="$PWD"=. -D_GNU_SOURCE -DPM_CHECKS=1 \
        -DPM_BUILDING_LIBRARY=1 -fPIC -Iinclude -Isrc -Wall -Wextra -S -o - "$f"
    rc=$?
    echo "$f -S: exit $rc"
    gcc -std=gnu11 -O2 -g -fdebug-prefix-map="$PWD"=. -D_GNU_SOURCE -DPM_CHECKS=1 \
        -DPM_BUILDING_LIBRARY=1 -fPIC -Iinclude -Isrc -c -o "obj/$(basename "$(dirname "$f")")_$(basename "$f" .c).o" "$f" 2>/dev/null
    echo "$f -c: exit $?"
  done
  (cd obj && sha256sum -- *.o 2>/dev/null) || true
  return 0
}
export have_gxx

pm_compare --cwd "$work" gcc -- compile_all
grep -q '^gen.c: exit 0$' "$PM_TMP/gcc.ref.out" || pm_fail "gcc could not compile gen.c even without poolmalloc"
pm_log "$(grep -c ': exit 0$' "$PM_TMP/gcc.ref.out") compilations, $(wc -c <"$PM_TMP/gcc.ref.out") bytes of assembly identical"
pm_check_stats gcc 10000
pm_log "passed"
