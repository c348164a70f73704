/* arenamap.c: the arena map, a two-level radix tree over the 47-bit user
 * address space with one byte per 256 KiB slot (CPython's arena map idea).
 * The byte is the kind of region in the slot (enum pmi_region_kind, types.h):
 * pmi_arenamap_kind (internal.h) answers "which of our regions is p in, if
 * any?" in O(1) without reading *p, so that free and realloc can tell pools,
 * medium regions and huge mappings apart and hand pointers from the C
 * library's own malloc back to it.
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

/* The byte of the slot holding address a, its leaf mapped if need be; NULL
 * when a lies beyond the map or the leaf cannot be mapped. */
static _Atomic uint8_t *slot_byte(uintptr_t a, bool create) {
  if (a >> 47) return NULL;
  _Atomic(uint8_t *) *slot = &pmi_arenamap_root[a >> (PMI_ARENA_SHIFT + PMI_MAP_LEAF_BITS)];
  uint8_t *leaf = atomic_load_explicit(slot, memory_order_acquire);
  if (leaf == NULL) {
    if (!create) return NULL;
    uint8_t *fresh = pmi_os_map((size_t)1 << PMI_MAP_LEAF_BITS);
    if (fresh == NULL) return NULL;
    if (atomic_compare_exchange_strong(slot, &leaf, fresh)) {
      leaf = fresh;
    } else {
      pmi_os_unmap(fresh, (size_t)1 << PMI_MAP_LEAF_BITS);  /* another thread won */
    }
  }
  return (_Atomic uint8_t *)&leaf[(a >> PMI_ARENA_SHIFT) & ((1u << PMI_MAP_LEAF_BITS) - 1)];
}

/* Marks every slot of [start, start + size) (whole, aligned slots) as kind.
 * Setting a kind other than NONE may map leaves, and fails (false, nothing
 * changed) when one cannot be mapped or the range lies beyond the map. */
bool pmi_arenamap_set(const void *start, size_t size, uint8_t kind) {
  uintptr_t a = (uintptr_t)start, end = a + size;
  pmi_assert((a & (PMI_ARENA_SIZE - 1)) == 0 && (size & (PMI_ARENA_SIZE - 1)) == 0);
  if (kind != PMI_REGION_NONE) {
    for (uintptr_t s = a; s < end; s += PMI_ARENA_SIZE)
      if (slot_byte(s, true) == NULL) return false;
  }
  for (uintptr_t s = a; s < end; s += PMI_ARENA_SIZE) {
    _Atomic uint8_t *b = slot_byte(s, kind != PMI_REGION_NONE);
    if (b != NULL) atomic_store_explicit(b, kind, memory_order_release);
  }
  return true;
}

bool pmi_arenamap_add(pmi_arena *arena) { return pmi_arenamap_set(arena, PMI_ARENA_SIZE, PMI_REGION_POOLS); }

void pmi_arenamap_remove(pmi_arena *arena) {
  pmi_assert(pmi_arenamap_kind(arena) == PMI_REGION_POOLS);
  pmi_arenamap_set(arena, PMI_ARENA_SIZE, PMI_REGION_NONE);
}
