#!/usr/bin/env bash
# The include rule of docs/ARCHITECTURE.md, checked from the sources: every
# `#include "..."` of a file in src/<layer>/ or include/ names a header its
# layer may use.  Then, from the objects of the build, that the object layer
# and base/ reach no internal name of the allocator: their undefined pmi_
# symbols are their own, base/'s or the report hook's.
set -euo pipefail
: "${PM_SOURCE_DIR:?}"
cd "$PM_SOURCE_DIR"
fail=0

# layer -> extended regular expression of the headers it may include
declare -A allowed=(
  [include]='^(poolmalloc|poolgc)\.h$'
  [base]='^base/[a-z_]+\.h$'
  [core]='^(base/[a-z_]+\.h|core/[a-z_]+\.h|diag/diag\.h|poolmalloc\.h)$'
  [diag]='^(base/[a-z_]+\.h|core/[a-z_]+\.h|diag/[a-z_]+\.h|poolmalloc\.h)$'
  [api]='^(base/[a-z_]+\.h|core/internal\.h|poolmalloc\.h)$'
  [gc]='^(base/[a-z_]+\.h|gc/[a-z_]+\.h|diag/report\.h|poolgc\.h|poolmalloc\.h)$'
)

checked=0
while IFS= read -r -d '' f; do
  case $f in
    include/*) layer=include ;;
    src/*/*)   layer=${f#src/}; layer=${layer%%/*} ;;
    *) continue ;;
  esac
  rule=${allowed[$layer]:-}
  if [[ -z $rule ]]; then
    echo "FAIL: $f: src/$layer/ is not a layer of docs/ARCHITECTURE.md (add it to the rule)"
    fail=1
    continue
  fi
  while IFS= read -r line; do
    n=${line%%:*}
    hdr=$(sed -E 's/^[0-9]+:[[:space:]]*#[[:space:]]*include[[:space:]]*"([^"]+)".*/\1/' <<<"$line")
    checked=$((checked + 1))
    if ! [[ $hdr =~ $rule ]]; then
      echo "FAIL: $f:$n includes \"$hdr\", which the $layer layer may not include"
      fail=1
    elif [[ $hdr != poolmalloc.h && $hdr != poolgc.h && ! -f src/$hdr ]]; then
      echo "FAIL: $f:$n includes \"$hdr\", which is not in src/"
      fail=1
    fi
  done < <(grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f" || true)
done < <(find include src -name '*.[ch]' -print0 | sort -z)
[[ $checked -gt 20 ]] || { echo "FAIL: only $checked includes found: is the tree where the rule expects it?"; fail=1; }
echo "includes: $checked checked"

# The objects: what the object layer and base/ leave undefined.
if [[ -n ${PM_BUILD_DIR:-} ]] && command -v nm >/dev/null 2>&1; then
  gc_objs=$(find "$PM_BUILD_DIR/CMakeFiles/poolmalloc_gc.dir" -name '*.o' 2>/dev/null | sort)
  base_objs=$(find "$PM_BUILD_DIR/CMakeFiles/poolmalloc.dir/src/base" -name '*.o' 2>/dev/null | sort)
  if [[ -z $gc_objs || -z $base_objs ]]; then
    echo "FAIL: no objects of the poolmalloc_gc target or of src/base in $PM_BUILD_DIR"
    fail=1
  else
    # shellcheck disable=SC2086
    defined() { nm --defined-only $1 | awk '$2 ~ /[A-Z]/ {print $3}' | sort -u; }
    # shellcheck disable=SC2086
    undefined() { nm --undefined-only $1 | awk '{print $NF}' | grep '^pmi_' | sort -u || true; }
    base_def=$(defined "$base_objs")
    report_ok='^pmi_report_(add_section|printf|count)$'
    for u in $(undefined "$gc_objs"); do
      if grep -qx "$u" <<<"$(defined "$gc_objs")" || grep -qx "$u" <<<"$base_def" || [[ $u =~ $report_ok ]]; then continue; fi
      echo "FAIL: the object layer uses $u, an internal name of the allocator"
      fail=1
    done
    for u in $(undefined "$base_objs"); do
      grep -qx "$u" <<<"$base_def" && continue
      echo "FAIL: base/ uses $u, a name of another layer"
      fail=1
    done
    echo "objects: the object layer and base/ reach the allocator through its public names only"
  fi
fi

[[ $fail == 0 ]] && echo "layout: the include rule holds"
exit "$fail"
