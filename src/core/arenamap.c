/* arenamap.c: the arena map, a two-level radix tree over the 47-bit user
 * address space with one byte per 256 KiB arena slot (CPython's arena map
 * idea).  pmi_arenamap_contains (internal.h) answers "is p in one of our
 * arenas?" in O(1) without reading *p, so that free and realloc can hand
 * pointers from the C library's own malloc back to it.
 *
 *    address bits:  46 ........ 32 | 31 ........ 18 | 17 ... 0
 *                   root index     | leaf index     | offset in the arena
 *                   (15 bits)      | (14 bits)      |
 *
 * The root is 256 KiB of zero BSS, never touched unless used; a leaf is
 * 16 KiB, mapped on first use and never freed (a process with arenas spread
 * over n distinct 4 GiB ranges spends 16 KiB each). */
#include "core/internal.h"

_Atomic(uint8_t *) pmi_arenamap_root[(size_t)1 << PMI_MAP_ROOT_BITS];

_Static_assert(PMI_MAP_ROOT_BITS + PMI_MAP_LEAF_BITS + PMI_ARENA_SHIFT == 47,
               "the arena map must cover the 47-bit user address space");

static size_t arenamap_index(pmi_arena *arena, _Atomic(uint8_t *) **slot) {
  uintptr_t a = (uintptr_t)arena;
  *slot = &pmi_arenamap_root[a >> (PMI_ARENA_SHIFT + PMI_MAP_LEAF_BITS)];
  return (a >> PMI_ARENA_SHIFT) & ((1u << PMI_MAP_LEAF_BITS) - 1);
}

bool pmi_arenamap_add(pmi_arena *arena) {
  if ((uintptr_t)arena >> 47) return false;   /* beyond the map: not usable */
  _Atomic(uint8_t *) *slot;
  size_t i = arenamap_index(arena, &slot);
  uint8_t *leaf = atomic_load_explicit(slot, memory_order_acquire);
  if (leaf == NULL) {
    uint8_t *fresh = pmi_os_map((size_t)1 << PMI_MAP_LEAF_BITS);
    if (fresh == NULL) return false;
    if (atomic_compare_exchange_strong(slot, &leaf, fresh)) {
      leaf = fresh;
    } else {
      pmi_os_unmap(fresh, (size_t)1 << PMI_MAP_LEAF_BITS);  /* another thread won */
    }
  }
  atomic_store_explicit((_Atomic uint8_t *)&leaf[i], 1, memory_order_release);
  return true;
}

void pmi_arenamap_remove(pmi_arena *arena) {
  _Atomic(uint8_t *) *slot;
  size_t i = arenamap_index(arena, &slot);
  uint8_t *leaf = atomic_load_explicit(slot, memory_order_acquire);
  pmi_assert(leaf != NULL && leaf[i] == 1);
  atomic_store_explicit((_Atomic uint8_t *)&leaf[i], 0, memory_order_release);
}
