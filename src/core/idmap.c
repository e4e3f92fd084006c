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
	return true;
}

void
ups_idmap_free(UpsIdMap *map)
{
	ups_free(map->slots);
	map->slots = NULL;
}
