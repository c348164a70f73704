/* arenamap.c: the arena map, one byte per 256 KiB slot of the 47-bit user
 * address space (CPython's arena map idea), in one flat array, and beside
 * it the free map, the same slots' entries for free's fast path.  The byte is
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
 * can be registered and every allocation goes to the C library.
 *
 * The free map (pmi_free_slot, types.h) holds for each slot what free's
 * fast path would otherwise look up by the byte: the address of the
 * region's header (where the owner is) and the masks that find the
 * descriptor and the live word.  Read by the slot's index, it takes the
 * byte's load and the table's after it off the chain of loads every free
 * waits for.  32 bytes a slot: 16 GiB of address space, reserved like the
 * byte map and never committed but for the pages of real regions' slots
 * (a 4 KiB page covers 128 slots, 32 MiB of addresses).  A slot never
 * written reads 0: no owner, which no thread pointer equals.  The owner
 * (the owning thread's pointer) changes apart from the rest, with the
 * region's heap (pmi_freemap_set_owner); a change of kind clears it. */
#include "core/internal.h"

_Atomic(_Atomic uint8_t *) pmi_arenamap;
_Atomic uintptr_t pmi_arenamap_slots;
pmi_free_slot *pmi_freemap;
int pmi_libc_only;

pmi_startup void pmi_arenamap_init(void) {
  if (pmi_load_relaxed(&pmi_arenamap) != NULL) return;
  _Atomic uint8_t *map = pmi_os_reserve(PMI_MAP_SLOTS);
  pmi_free_slot *freemap = map != NULL ? pmi_os_reserve(PMI_MAP_SLOTS * sizeof(pmi_free_slot)) : NULL;
  if (freemap == NULL) {
    pmi_os_unmap((void *)map, PMI_MAP_SLOTS);
    pmi_warning("cannot reserve the arena map (%zu MiB of address space and %zu GiB for its free map): "
                "blocks come from the C library", (size_t)(PMI_MAP_SLOTS >> 20),
                (size_t)((PMI_MAP_SLOTS * sizeof(pmi_free_slot)) >> 30));
    pmi_libc_only = 1;
    return;
  }
  pmi_freemap = freemap;   /* published with the map, by the release below */
  atomic_store_explicit(&pmi_arenamap, map, memory_order_release);
  atomic_store_explicit(&pmi_arenamap_slots, PMI_MAP_SLOTS, memory_order_release);
}

/* The free map's entry for a slot of the region that starts at start (an
 * arena, or any of a medium region's slots), whose byte is byte. */
pmi_free_slot pmi_free_slot_for(uintptr_t start, unsigned byte) {
  if (byte != PMI_REGION_POOLS && byte < PMI_REGION_MEDIUM) return (pmi_free_slot){ 0, 0, 0, 0 };
  return (pmi_free_slot){ start | pmi_front.kinds.region_or[byte], pmi_front.kinds.desc_mask[byte],
                          pmi_front.kinds.word_mask[byte], 0 };
}

/* Marks every slot of [start, start + size) (whole, aligned slots) as kind,
 * its free-map entry first: a free that finds the byte finds the entry.
 * The entry has no owner from before its masks change (a region changes
 * kind only while no heap holds it), so that a (bad) free racing with it
 * leaves at the owner test rather than use a header with another kind's
 * masks.  Fails
 * (false, nothing changed) when the map does not exist or the range lies
 * beyond it. */
bool pmi_arenamap_set(const void *start, size_t size, uint8_t kind) {
  uintptr_t first = (uintptr_t)start >> PMI_ARENA_SHIFT, n = size >> PMI_ARENA_SHIFT;
  pmi_assert(((uintptr_t)start & (PMI_ARENA_SIZE - 1)) == 0 && (size & (PMI_ARENA_SIZE - 1)) == 0);
  _Atomic uint8_t *map = atomic_load_explicit(&pmi_arenamap, memory_order_acquire);
  if (map == NULL || first >= PMI_MAP_SLOTS || n > PMI_MAP_SLOTS - first) return false;
  pmi_free_slot e = pmi_free_slot_for((uintptr_t)start, kind);
  for (uintptr_t s = first; s < first + n; s++) {
    pmi_free_slot *f = &pmi_freemap[s];
    __atomic_store_n(&f->owner, 0, __ATOMIC_RELEASE);   /* no owner while the masks change */
    __atomic_store_n(&f->header, e.header, __ATOMIC_RELAXED);
    __atomic_store_n(&f->desc_mask, e.desc_mask, __ATOMIC_RELAXED);
    __atomic_store_n(&f->word_mask, e.word_mask, __ATOMIC_RELAXED);
    atomic_store_explicit(&map[s], kind, memory_order_release);
  }
  return true;
}

/* The owner of the entries of [start, start + size), a region of ours whose
 * heap has just changed or whose heap's thread has (pmi_free_slot): owner,
 * the heap's tp, or 0.  Release: the fast path that finds its thread's
 * pointer there finds the region's header and lists as its heap left them. */
void pmi_freemap_set_owner(const void *start, size_t size, uintptr_t owner) {
  uintptr_t first = (uintptr_t)start >> PMI_ARENA_SHIFT, n = size >> PMI_ARENA_SHIFT;
  pmi_assert(first + n <= PMI_MAP_SLOTS && pmi_freemap != NULL);
  for (uintptr_t s = first; s < first + n; s++)
    if (__atomic_load_n(&pmi_freemap[s].owner, __ATOMIC_RELAXED) != owner) __atomic_store_n(&pmi_freemap[s].owner, owner, __ATOMIC_RELEASE);
}

bool pmi_arenamap_add(pmi_arena *arena) { return pmi_arenamap_set(arena, PMI_ARENA_SIZE, PMI_REGION_POOLS); }

void pmi_arenamap_remove(pmi_arena *arena) {
  pmi_assert(pmi_arenamap_kind(arena) == PMI_REGION_POOLS);
  pmi_arenamap_set(arena, PMI_ARENA_SIZE, PMI_REGION_NONE);
}
