#!/usr/bin/env bash
# The C++ operators new and delete (api/new.c): a C++ program's operator new,
# new[], delete and delete[], sized or not, resolve to poolmalloc's own, the
# blocks they hand out are poolmalloc's, the C++ library's other forms
# (nothrow new) work through them, and the language's failure semantics hold through
# the hand-over to the C++ library (the new handler called, then
# std::bad_alloc; NULL from the nothrow forms). The same program runs without
# poolmalloc and must print the same.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
pm_require c++
pm_setup
if nm "$POOLMALLOC_LIB" | grep -q ' __tsan_'; then
  pm_skip "a ThreadSanitizer build: its runtime defines the operators itself"
fi
cat >"$PM_TMP/newdel.cc" <<'CC'
#include <dlfcn.h>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <malloc.h>

static int handler_calls;
static void handler() { handler_calls++; std::set_new_handler(nullptr); }

int main(int argc, char **argv) {
  const char *names[] = {"_Znwm", "_Znam", "_ZdlPv", "_ZdaPv", "_ZdlPvm", "_ZdaPvm"};
  if (argc > 1) {  // the operators must be poolmalloc's (preloaded run only)
    for (const char *n : names) {
      Dl_info info;
      void *f = dlsym(RTLD_DEFAULT, n);
      if (f == nullptr || !dladdr(f, &info) || std::strstr(info.dli_fname, "poolmalloc") == nullptr) {
        std::printf("FAIL %s from %s\n", n, f && dladdr(f, &info) ? info.dli_fname : "nowhere");
        return 1;
      }
    }
    // a block from new is one of poolmalloc's: its usable size is its class's
    char *c = new char[100];
    std::printf("usable %zu\n", malloc_usable_size(c));
    delete[] c;
  }
  unsigned long sum = 0;
  for (int round = 0; round < 50; round++) {
    static char *blocks[4096];
    for (int i = 0; i < 4096; i++) {
      size_t n = 1 + (size_t)(i * 37 + round) % 2000;
      blocks[i] = (i & 1) ? new char[n] : static_cast<char *>(::operator new(n));
      std::memset(blocks[i], i & 0xff, n);
    }
    for (int i = 0; i < 4096; i++) {
      size_t n = 1 + (size_t)(i * 37 + round) % 2000;
      sum += (unsigned char)blocks[i][n - 1];
      if (i & 1) {
        if (i & 4) ::operator delete[](blocks[i], n);
        else delete[] blocks[i];
      }
      else if (i & 2) ::operator delete(blocks[i], n);
      else ::operator delete(blocks[i]);
    }
    int *x = new (std::nothrow) int[10];
    x[9] = round;
    sum += x[9];
    delete[] x;
  }
  std::printf("sum %lu\n", sum);
  size_t huge = (size_t)1 << 62;
  std::printf("nothrow %s\n", ::operator new(huge, std::nothrow) == nullptr ? "null" : "block");
  std::printf("nothrow[] %s\n", new (std::nothrow) char[huge] == nullptr ? "null" : "block");
  std::set_new_handler(handler);
  try {
    void *p = ::operator new(huge);
    std::printf("no throw %p\n", p);
  } catch (const std::bad_alloc &) {
    std::printf("bad_alloc after %d handler call(s)\n", handler_calls);
  }
  try {
    char *p = new char[huge];
    std::printf("no throw %p\n", (void *)p);
  } catch (const std::bad_alloc &) {
    std::printf("bad_alloc[]\n");
  }
  return 0;
}
CC
c++ -std=gnu++17 -O1 -o "$PM_TMP/newdel" "$PM_TMP/newdel.cc" -ldl || pm_fail "cannot build the C++ program"
base=$("$PM_TMP/newdel") || pm_fail "the program fails without poolmalloc"
ours=$(LD_PRELOAD="$POOLMALLOC_LIB${PM_BASE_PRELOAD:+:$PM_BASE_PRELOAD}" "$PM_TMP/newdel" ours) ||
  pm_fail "the program fails with poolmalloc: $ours"
[[ $(head -1 <<<"$ours") == "usable 112" ]] || pm_fail "new char[100] is not a poolmalloc block: $(head -1 <<<"$ours")"
[[ $(tail -n +2 <<<"$ours") == "$base" ]] || pm_fail "output differs: without: $base; with: $ours"
grep -q "bad_alloc after 1 handler call(s)" <<<"$ours" || pm_fail "new handler / bad_alloc: $ours"
pm_log "ok: operators new and delete are poolmalloc's; $(tail -3 <<<"$ours" | tr '\n' ';')"
