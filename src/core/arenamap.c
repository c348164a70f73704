/* arenamap.c: the arena map, one byte per 256 KiB slot of the 47-bit user
 * address space (CPython's arena map idea), in one flat array.  The byte is
 * the kind of region in the slot (enum pmi_region_kind, types.h):
 * pmi_arenamap_kind (internal.h) answers "which of our regions is p in, if
 * any?" in O(1) without reading *p, so that free and realloc can tell pools,
 * medium regions and huge mappings apart and hand pointers from the C
 * library's own malloc back to it.
 *
 *    address bits:  46 ................ 18 | 17 ... 0
 *                   slot index (29 bits)   | offset in the slot
 *
 * The array is 512 MiB of address space, reserved once at start-up and
 * never committed as a whole: the kernel gives a page of it memory when a
 * slot's byte is first written, so a process whose regions lie within 1 GiB
 * of each other spends one 4 KiB page on the map.  A lookup is one shift, a
 * bounds compare and a byte load (the two-level tree it replaces needed a
 * second dependent load).  Until the reservation exists, pmi_arenamap_slots
 * is 0 and every lookup answers "not ours"; if it cannot be made, no region
 * can be registered and every allocation goes to the C library. */
#include "core/internal.h"

_Atomic(_Atomic uint8_t *) pmi_arenamap;
_Atomic uintptr_t pmi_arenamap_slots;

pmi_startup void pmi_arenamap_init(void) {
  if (pmi_load_relaxed(&pmi_arenamap) != NULL) return;
  _Atomic uint8_t *map = pmi_os_reserve(PMI_MAP_SLOTS);
  if (map == NULL) {
    pmi_warning("cannot reserve the %zu MiB arena map: blocks come from the C library",
                (size_t)(PMI_MAP_SLOTS >> 20));
    return;
  }
  atomic_store_explicit(&pmi_arenamap, map, memory_order_release);
  atomic_store_explicit(&pmi_arenamap_slots, PMI_MAP_SLOTS, memory_order_release);
}

/* Marks every slot of [start, start + size) (whole, aligned slots) as kind.
 * Fails (false, nothing changed) when the map does not exist or the range
 * lies beyond it. */
bool pmi_arenamap_set(const void *start, size_t size, uint8_t kind) {
  uintptr_t first = (uintptr_t)start >> PMI_ARENA_SHIFT, n = size >> PMI_ARENA_SHIFT;
  pmi_assert(((uintptr_t)start & (PMI_ARENA_SIZE - 1)) == 0 && (size & (PMI_ARENA_SIZE - 1)) == 0);
  _Atomic uint8_t *map = atomic_load_explicit(&pmi_arenamap, memory_order_acquire);
  if (map == NULL || first >= PMI_MAP_SLOTS || n > PMI_MAP_SLOTS - first) return false;
  for (uintptr_t s = first; s < first + n; s++) atomic_store_explicit(&map[s], kind, memory_order_release);
  return true;
}

bool pmi_arenamap_add(pmi_arena *arena) { return pmi_arenamap_set(arena, PMI_ARENA_SIZE, PMI_REGION_POOLS); }

void pmi_arenamap_remove(pmi_arena *arena) {
  pmi_assert(pmi_arenamap_kind(arena) == PMI_REGION_POOLS);
  pmi_arenamap_set(arena, PMI_ARENA_SIZE, PMI_REGION_NONE);
}
