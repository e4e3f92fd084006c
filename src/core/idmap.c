/*
 * idmap.c
 *		A fixed map from 64-bit ids to dense indexes (see idmap.h).
 */
#include "idmap.h"
#include "ups_host.h"

void
ups_idmap_init(UpsIdMap *map, size_t capacity)
{
	size_t		size = 16;

	while (size < 2 * capacity)
		size *= 2;
	map->slots = ups_alloc0(size * sizeof(UpsIdSlot));
	map->mask = size - 1;
	map->count = 0;
}

bool
ups_idmap_add(UpsIdMap *map, int64_t id, uint32_t index)
{
	size_t		h = (size_t) ups_mix64((uint64_t) id) & map->mask;

	while (map->slots[h].index1 != 0)
	{
		if (map->slots[h].id == id)
			return false;
		h = (h + 1) & map->mask;
	}
	map->slots[h].id = id;
	map->slots[h].index1 = index + 1;
	map->count++;
	return true;
}

/* Twice the slots, every id rehashed into them. */
static void
idmap_grow(UpsIdMap *map)
{
	UpsIdSlot  *old = map->slots;
	size_t		oldsize = map->mask + 1,
				i;

	map->slots = ups_alloc0(2 * oldsize * sizeof(UpsIdSlot));
	map->mask = 2 * oldsize - 1;
	for (i = 0; i < oldsize; i++)
		if (old[i].index1 != 0)
		{
			size_t		h = (size_t) ups_mix64((uint64_t) old[i].id) & map->mask;

			while (map->slots[h].index1 != 0)
				h = (h + 1) & map->mask;
			map->slots[h] = old[i];
		}
	ups_free(old);
}

uint32_t
ups_idmap_intern(UpsIdMap *map, int64_t id)
{
	size_t		h;

	/* at most half full */
	if (2 * (map->count + 1) > map->mask + 1)
		idmap_grow(map);
	h = (size_t) ups_mix64((uint64_t) id) & map->mask;
	while (map->slots[h].index1 != 0)
	{
		if (map->slots[h].id == id)
			return map->slots[h].index1 - 1;
		h = (h + 1) & map->mask;
	}
	map->slots[h].id = id;
	map->slots[h].index1 = (uint32_t) map->count + 1;
	return (uint32_t) map->count++;
}

void
ups_idmap_free(UpsIdMap *map)
{
	ups_free(map->slots);
	map->slots = NULL;
}
