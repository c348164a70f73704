#!/usr/bin/env bash
# The shared library's first segment (ELF and program headers, the dynamic
# symbols and their names, versions and relocations) fits in 2 pages.  The
# dynamic loader reads it in every process that loads the library, and the
# kernel's fault-around maps the whole segment at that first read, so each
# page of it is resident in every such process.  It is 2 pages because
# base/syscall.h makes the diagnostics' kernel calls without the C library,
# base/text.h writes the two string functions they used, and the start files'
# weak references are bound when the library is linked
# (-z nodynamic-undefined-weak, CMakeLists.txt): about 60 bytes an import.
# Checked from the program headers (readelf -l).
source "$(dirname "${BASH_SOURCE[0]}")/layout.sh"
layout_need nm readelf
layout_skip_tsan "its runtime's imports"
first=$(readelf -lW "$POOLMALLOC_LIB" | awk '$1 == "LOAD" { print $3, $6, $7; exit }')
read -r vaddr memsz flags <<<"$first"
if [[ $flags == *E* ]]; then
  echo "SKIP: the headers share the text's segment (no -z separate-code)"
  exit 77
fi
end=$(( vaddr + memsz ))
pages=$(( (end + 4095) / 4096 ))
imports=$(readelf --dyn-syms -W "$POOLMALLOC_LIB" | awk '$7 == "UND"' | grep -c . || true)
if (( pages > 2 )); then
  echo "FAIL: the header segment ends at $(printf 0x%x $end): $pages pages, over 2 ($imports undefined dynamic symbols)"
  exit 1
fi
echo "ok: header segment ends at $(printf 0x%x $end), $pages pages, $(( 8192 - end )) bytes to spare ($imports undefined dynamic symbols)"
