#!/usr/bin/env bash
# The order of the library's code (CMakeLists.txt, "Link order"): the code
# every program runs, the start-up functions (.text.startup, .text.exit), the
# entry points (api/override.c) and the core objects but huge.c and the
# seldom met libc.c, lies in the first 64 KiB of the text segment, the
# window the kernel maps around the first fault there (fault-around).
# Checked from the objects of the build: each of their functions, found by
# name in the shared library (names defined in one object only), must end
# within that window; and huge.c, libc.c, api/extensions.c and the
# diagnostics come after them, huge.c's entry points still inside it (and
# no pmi_huge_yield: every program's growth asks it, and its test is inline,
# so that a program with no huge block never runs huge.c's code).  The window is the kernel's only if the text starts at a
# 64 KiB boundary: the text segment's address and alignment are multiples
# of it (the loader then maps the library at such a boundary), and there is
# no DT_FINI, whose function lies past the text.
source "$(dirname "${BASH_SOURCE[0]}")/layout.sh"
: "${PM_BUILD_DIR:?}"
layout_need nm objdump readelf
layout_skip_tsan "instrumented code, another layout"
objdir=$PM_BUILD_DIR/CMakeFiles/poolmalloc.dir/src
gcdir=$PM_BUILD_DIR/CMakeFiles/poolmalloc_gc.dir/src
if [[ ! -f $objdir/core/alloc.c.o ]]; then
  echo "FAIL: no objects of the poolmalloc target in $objdir"
  exit 1
fi
window=65536

# first PT_LOAD with R E: the text segment's address
text=$(readelf -lW "$POOLMALLOC_LIB" | awk '$1 == "LOAD" && / R E / { print $3; exit }')
[[ -n $text ]] || { echo "FAIL: no executable PT_LOAD in $POOLMALLOC_LIB"; exit 1; }
limit=$(( text + window ))
fail=0
align=$(readelf -lW "$POOLMALLOC_LIB" | awk '$1 == "LOAD" && / R E / { print $NF; exit }')
if (( text % window != 0 || align % window != 0 )); then
  printf 'FAIL: the text segment at %#x, aligned to %#x: not at a %d KiB boundary\n' "$text" "$align" $(( window / 1024 ))
  fail=1
fi
if readelf -dW "$POOLMALLOC_LIB" | grep -q '(FINI)'; then
  echo "FAIL: a DT_FINI entry: its function lies past the text's first window"
  fail=1
fi

# name -> "start size" in the library, for the names defined once there
declare -A lib_at lib_count
while read -r addr size type name; do
  [[ $type == [tT] ]] || continue
  lib_count[$name]=$(( ${lib_count[$name]:-0} + 1 ))
  lib_at[$name]="$((16#$addr)) $((16#$size))"
done < <(nm -S --defined-only "$POOLMALLOC_LIB")

checked=0
# check OBJECT SECTION-REGEX: every function of OBJECT in those sections ends below limit
check() {
  local obj=$1 sections=$2 name sec start size
  while read -r sec name; do
    [[ ${lib_count[$name]:-0} == 1 ]] || continue
    read -r start size <<<"${lib_at[$name]}"
    checked=$(( checked + 1 ))
    if (( start + size > limit )); then
      printf 'FAIL: %s (%s, %s) ends at %#x, past the first %d KiB of text (%#x..%#x)\n' \
        "$name" "${obj#"$PM_BUILD_DIR"/}" "$sec" $(( start + size )) $(( window / 1024 )) "$text" "$limit"
      fail=1
    fi
  done < <(objdump -t "$obj" | awk -v re="$sections" '$3 == "F" && $4 ~ re { print $4, $NF }')
}

for obj in "$objdir"/*/*.o "$gcdir"/*/*.o; do
  [[ -f $obj ]] || continue
  check "$obj" '^[.]text[.](startup|exit)'
done
first=("$objdir"/api/override.c.o "$objdir"/core/*.o)
later=("$objdir"/core/huge.c.o "$objdir"/core/libc.c.o "$objdir"/api/extensions.c.o)
is_later() { local l; for l in "${later[@]}"; do [[ $1 == "$l" ]] && return 0; done; return 1; }
for obj in "${first[@]}"; do
  is_later "$obj" && continue
  check "$obj" '^[.]text$'
done

# the functions of huge.c and of diag/ lie after every function checked above
core_end=0
for obj in "${first[@]}"; do
  is_later "$obj" && continue
  while read -r name; do
    [[ ${lib_count[$name]:-0} == 1 ]] || continue
    read -r start size <<<"${lib_at[$name]}"
    (( start + size > core_end )) && core_end=$(( start + size ))
  done < <(objdump -t "$obj" | awk '$3 == "F" && $4 == ".text" { print $NF }')
done
for obj in "${later[@]}" "$objdir"/diag/*.o; do
  while read -r name; do
    [[ ${lib_count[$name]:-0} == 1 ]] || continue
    read -r start size <<<"${lib_at[$name]}"
    checked=$(( checked + 1 ))
    if (( start < core_end )); then
      printf 'FAIL: %s (%s) at %#x lies among the first ones (they end at %#x)\n' \
        "$name" "${obj#"$PM_BUILD_DIR"/}" "$start" "$core_end"
      fail=1
    fi
  done < <(objdump -t "$obj" | awk '$3 == "F" && $4 == ".text" { print $NF }')
done

# huge.c's entry points (defined first there, the cache's workings after
# them) end inside the window too: a program's huge blocks cost no text page
# beyond it
for name in pmi_huge_malloc pmi_huge_free pmi_huge_realloc pmi_huge_usable_size; do
  if [[ ${lib_count[$name]:-0} != 1 ]]; then
    echo "FAIL: $name not found once in $POOLMALLOC_LIB"
    fail=1
    continue
  fi
  read -r start size <<<"${lib_at[$name]}"
  checked=$(( checked + 1 ))
  if (( start + size > limit )); then
    printf 'FAIL: %s (core/huge.c) ends at %#x, past the first %d KiB of text (%#x..%#x)\n' \
      "$name" $(( start + size )) $(( window / 1024 )) "$text" "$limit"
    fail=1
  fi
done

if (( checked < 100 )); then
  echo "FAIL: only $checked functions found in both the objects and $POOLMALLOC_LIB"
  fail=1
fi
# the growth's question to huge.c is asked inline (internal.h): no function
# of that name, which would lie past the core's code
if [[ -n ${lib_count[pmi_huge_yield]:-} ]]; then
  echo "FAIL: pmi_huge_yield is a function of $POOLMALLOC_LIB (its test belongs inline, internal.h)"
  fail=1
fi

(( fail == 0 )) && printf 'ok: %d functions; start-up, entry points and core code end by %#x (text %#x..%#x)\n' \
  "$checked" "$core_end" "$text" "$limit"
exit $fail
