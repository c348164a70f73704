/* arenamap.c: the arena map, one byte per 256 KiB slot of the 47-bit user
 * address space (CPython's arena map idea), in one flat array.
 * pmi_arenamap_kind (internal.h) answers "what is p in?" in O(1) without
 * reading *p, so that free and realloc can hand pointers from the C
 * library's own malloc back to it.
 *
 *    address bits:  46 ................ 18 | 17 ... 0
 *                   slot index (29 bits)   | offset in the arena
 *
 * The array is 512 MiB of address space, reserved once at start-up and
 * never committed as a whole: the kernel gives a page of it memory when an
 * arena's byte is first written, so a process whose arenas lie within 1 GiB
 * of each other spends one 4 KiB page on the map.  A lookup is one shift, a
 * bounds compare and a byte load (the two-level tree it replaces needed a
 * second dependent load).  Until the reservation exists, pmi_arenamap_slots
 * is 0 and every lookup answers "not ours"; if it cannot be made, no arena
 * can be registered and the pools are never used (every allocation goes to
 * the large path). */
#include "core/internal.h"

_Atomic(_Atomic uint8_t *) pmi_arenamap;
_Atomic uintptr_t pmi_arenamap_slots;

void pmi_arenamap_init(void) {
  if (pmi_load_relaxed(&pmi_arenamap) != NULL) return;
  _Atomic uint8_t *map = pmi_os_reserve(PMI_MAP_SLOTS);
  if (map == NULL) {
    pmi_warning("cannot reserve the %zu MiB arena map: small blocks come from the C library",
                (size_t)(PMI_MAP_SLOTS >> 20));
    return;
  }
  atomic_store_explicit(&pmi_arenamap, map, memory_order_release);
  atomic_store_explicit(&pmi_arenamap_slots, PMI_MAP_SLOTS, memory_order_release);
}

bool pmi_arenamap_add(pmi_arena *arena) {
  uintptr_t slot = (uintptr_t)arena >> PMI_ARENA_SHIFT;
  _Atomic uint8_t *map = atomic_load_explicit(&pmi_arenamap, memory_order_acquire);
  if (map == NULL || slot >= PMI_MAP_SLOTS) return false;   /* beyond the map: not usable */
  atomic_store_explicit(&map[slot], PMI_MAP_POOLS, memory_order_release);
  return true;
}

void pmi_arenamap_remove(pmi_arena *arena) {
  uintptr_t slot = (uintptr_t)arena >> PMI_ARENA_SHIFT;
  _Atomic uint8_t *map = pmi_load_relaxed(&pmi_arenamap);
  pmi_assert(map != NULL && slot < PMI_MAP_SLOTS && map[slot] == PMI_MAP_POOLS);
  atomic_store_explicit(&map[slot], PMI_MAP_NONE, memory_order_release);
}
