#!/usr/bin/env bash
# The shared library imports each C library function under one symbol
# version: every version named is one more the dynamic loader checks at
# start-up, and base/syscall.h binds the functions whose version was renewed
# without a change (clock_gettime, pthread_sigmask) to their old one, in
# every layer (the object layer through base/clock.h).  Checked from the
# library's dynamic symbol table (objdump -T): no undefined name twice.
source "$(dirname "${BASH_SOURCE[0]}")/layout.sh"
layout_need nm objdump
layout_skip_tsan "its runtime's imports"
imports=$(objdump -T "$POOLMALLOC_LIB" | awk '$3 == "*UND*" { print $NF, $(NF-1) }')
n=$(printf '%s\n' "$imports" | grep -c . || true)
if (( n < 20 )); then
  echo "FAIL: only $n imports found in $POOLMALLOC_LIB"
  exit 1
fi
twice=$(printf '%s\n' "$imports" | awk '{ print $1 }' | sort | uniq -d)
if [[ -n $twice ]]; then
  for name in $twice; do
    echo "FAIL: $name imported under more than one version:" $(printf '%s\n' "$imports" | awk -v n="$name" '$1 == n { print $2 }')
  done
  exit 1
fi
clock=$(printf '%s\n' "$imports" | awk '$1 == "clock_gettime" { print $2 }')
echo "ok: $n imports, each under one version (clock_gettime: ${clock:-none})"
