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
	map->direct = NULL;
	map->direct_base = 0;
	map->direct_len = 0;
}

/* An id added after ups_idmap_index_directly(): back to the slots. */
static void
idmap_drop_direct(UpsIdMap *map)
{
	if (map->direct != NULL)
		ups_free(map->direct);
	map->direct = NULL;
	map->direct_len = 0;
}

/*
 * Once the ids are added: when they span at most 4 times as many values as
 * there are ids (a catalog numbered by a serial key), ups_idmap_find reads
 * an array indexed by id - the smallest id instead of probing the slots.
 * The array takes at most 16 bytes per id, as the slots do.
 */
void
ups_idmap_index_directly(UpsIdMap *map)
{
	int64_t		lo = INT64_MAX,
				hi = INT64_MIN;
	uint64_t	span;
	size_t		i;

	idmap_drop_direct(map);
	if (map->count == 0)
		return;
	for (i = 0; i <= map->mask; i++)
		if (map->slots[i].index1 != 0)
		{
			if (map->slots[i].id < lo)
				lo = map->slots[i].id;
			if (map->slots[i].id > hi)
				hi = map->slots[i].id;
		}
	/* (hi - lo in unsigned arithmetic: the difference may pass INT64_MAX) */
	span = (uint64_t) hi - (uint64_t) lo;
	if (span >= 4 * (uint64_t) map->count)
		return;
	map->direct_len = (size_t) span + 1;
	map->direct_base = lo;
	map->direct = ups_alloc0(map->direct_len * sizeof(uint32_t));
	for (i = 0; i <= map->mask; i++)
		if (map->slots[i].index1 != 0)
			map->direct[(uint64_t) map->slots[i].id - (uint64_t) lo] = map->slots[i].index1;
}

bool
ups_idmap_add(UpsIdMap *map, int64_t id, uint32_t index)
{
	size_t		h = (size_t) ups_mix64((uint64_t) id) & map->mask;

	idmap_drop_direct(map);

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

	idmap_drop_direct(map);

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
	idmap_drop_direct(map);
	ups_free(map->slots);
	map->slots = NULL;
}
