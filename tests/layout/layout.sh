# layout.sh: what the layout tests share, sourced by each of them.  Each
# reads the built library's headers with binutils, and each skips (77, as
# tests/CMakeLists.txt tells CTest) where that cannot mean anything.
set -euo pipefail
: "${POOLMALLOC_LIB:?}"

# Skip unless every named tool is on PATH.
layout_need() {
  local t
  for t in "$@"; do
    command -v "$t" >/dev/null 2>&1 || { echo "SKIP: no $t"; exit 77; }
  done
}

# Skip a ThreadSanitizer build of the library; $1 says why it differs.
layout_skip_tsan() {
  if nm "$POOLMALLOC_LIB" | grep -q ' __tsan_'; then
    echo "SKIP: a ThreadSanitizer build ($1)"
    exit 77
  fi
}
