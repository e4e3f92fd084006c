/*
 * idmap.h
 *		A fixed map from 64-bit ids (product ids) to dense indexes, and the
 *		hash finalizer of 64-bit keys the core's hash tables share.
 *
 * The map is sized for the ids it will hold (open addressing, at most half
 * full): a lookup is one or two probes into one array, where a binary
 * search over 100,000 sorted ids is 17 dependent loads, most of them cache
 * misses, for every order line a build reads.  A map of ids not known in
 * advance (a shop's customers) grows by doubling (ups_idmap_intern).
 */
#ifndef IDMAP_H
#define IDMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* MurmurHash3's 64-bit finalizer: every input bit affects every output bit. */
static inline uint64_t
ups_mix64(uint64_t k)
{
	k ^= k >> 33;
	k *= UINT64_C(0xff51afd7ed558ccd);
	k ^= k >> 33;
	k *= UINT64_C(0xc4ceb9fe1a85ec53);
	k ^= k >> 33;
	return k;
}

typedef struct UpsIdSlot
{
	int64_t		id;
	uint32_t	index1;			/* index + 1; 0: empty */
} UpsIdSlot;

typedef struct UpsIdMap
{
	UpsIdSlot  *slots;
	size_t		mask;
	size_t		count;			/* ids held */
	/*
	 * Set by ups_idmap_index_directly(): index + 1 (0: none) of every id
	 * from direct_base on, so that a lookup is one read of a small array,
	 * not a probe of the slots, which miss the cache at every line of a
	 * large stream.
	 */
	uint32_t   *direct;
	int64_t		direct_base;
	size_t		direct_len;
} UpsIdMap;

/* An empty map for up to capacity ids (fewer than 2^32). */
extern void ups_idmap_init(UpsIdMap *map, size_t capacity);

/* Adds id -> index; false (and nothing added) when id is already there. */
extern bool ups_idmap_add(UpsIdMap *map, int64_t id, uint32_t index);

/*
 * The index of id, which the map assigns when it is new: the number of ids
 * it held before (0, 1, 2, ... in the order ids first come).  The map grows
 * as ids come, whatever capacity it was given; fewer than 2^32 ids.
 */
extern uint32_t ups_idmap_intern(UpsIdMap *map, int64_t id);

/*
 * Once every id is added: an array indexed by the id instead of the slots,
 * when the ids are nearly consecutive (idmap.c).  Adding an id afterwards
 * drops it.
 */
extern void ups_idmap_index_directly(UpsIdMap *map);

/* The index of id, or -1. */
static inline int64_t
ups_idmap_find(const UpsIdMap *map, int64_t id)
{
	size_t		h;

	if (map->direct != NULL)
	{
		/* (an id below the base wraps around to a large offset) */
		uint64_t	offset = (uint64_t) id - (uint64_t) map->direct_base;

		return offset < map->direct_len ? (int64_t) map->direct[offset] - 1 : -1;
	}
	h = (size_t) ups_mix64((uint64_t) id) & map->mask;

	while (map->slots[h].index1 != 0)
	{
		if (map->slots[h].id == id)
			return (int64_t) map->slots[h].index1 - 1;
		h = (h + 1) & map->mask;
	}
	return -1;
}

extern void ups_idmap_free(UpsIdMap *map);

#endif							/* IDMAP_H */
