#!/usr/bin/env bash
# remote.test_idle_spares without membarrier (POOLMALLOC_MEMBARRIER=0, as
# on kernels without it): a visitor may give back an owned heap's spares
# only as the owner's slow paths show them (pool.c, "idle spares"); the
# idle owner's and the waiting thread's spares must still go back, at the
# purge thread's passes and at malloc_trim.
set -euo pipefail
: "${PM_BUILD_DIR:?}"
POOLMALLOC_MEMBARRIER=0 exec "$PM_BUILD_DIR/tests/remote_test_idle_spares"
