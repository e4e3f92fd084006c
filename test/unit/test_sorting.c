/*
 * test_sorting.c
 *		Unit tests of the core's shared sorting and id map (src/core/sorting.c,
 *		src/core/idmap.c).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "idmap.h"
#include "sorting.h"
#include "unit.h"
#include "ups_host.h"

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t	x = *(const uint64_t *) a,
				y = *(const uint64_t *) b;

	return (x > y) - (x < y);
}

static uint64_t
next_random(uint64_t *state)
{
	*state = *state * UINT64_C(6364136223846793005) + UINT64_C(1442695040888963407);
	return ups_mix64(*state);
}

/*
 * The radix sort against qsort: few keys (insertion), keys of 34 bits (two
 * product indexes, three passes), full 64-bit keys (four passes), many
 * repeats, already sorted and reversed input.
 */
UNIT_TEST(sort_uint64_matches_qsort)
{
	static const size_t sizes[] = {0, 1, 2, 63, 64, 65, 1000, 100000};
	static const int bits[] = {8, 34, 64};
	uint64_t	state = 42;

	for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++)
		for (size_t bi = 0; bi < sizeof(bits) / sizeof(bits[0]); bi++)
			for (int shape = 0; shape < 3; shape++)
			{
				size_t		n = sizes[si],
							i;
				uint64_t   *v = ups_alloc((n ? n : 1) * sizeof(uint64_t));
				uint64_t   *w = ups_alloc((n ? n : 1) * sizeof(uint64_t));

				for (i = 0; i < n; i++)
				{
					uint64_t	x = next_random(&state);

					v[i] = bits[bi] == 64 ? x : x & ((UINT64_C(1) << bits[bi]) - 1);
					if (shape == 1)
						v[i] = (uint64_t) i << (bits[bi] > 20 ? bits[bi] - 20 : 0);
					else if (shape == 2)
						v[i] = (uint64_t) (n - i) << (bits[bi] > 20 ? bits[bi] - 20 : 0);
				}
				memcpy(w, v, n * sizeof(uint64_t));
				qsort(w, n, sizeof(uint64_t), cmp_u64);
				ups_sort_uint64(v, n);
				CHECK(n == 0 || memcmp(v, w, n * sizeof(uint64_t)) == 0);
				ups_free(v);
				ups_free(w);
			}
}

/*
 * Ids that span few values (a serial key, with gaps) are looked up in a
 * direct array, others by their slots, and both answer as the slots did:
 * every id its index, any other id -1 (below, between and above them, and
 * the extremes of int64).  An id added afterwards drops the array.
 */
UNIT_TEST(idmap_index_directly)
{
	enum
	{
		N = 50000
	};
	UpsIdMap	map;
	int64_t		bases[] = {1, -25000, INT64_MAX - 6 * N, INT64_MIN};
	size_t		b,
				i,
				wrong = 0;

	for (b = 0; b < sizeof(bases) / sizeof(bases[0]); b++)
	{
		for (int spread = 1; spread <= 5; spread += 4)
		{
			/* ids base, base + spread, ...: every third one left out */
			ups_idmap_init(&map, N);
			for (i = 0; i < N; i++)
				if (i % 3 != 1)
					ups_idmap_add(&map, bases[b] + (int64_t) (i * spread), (uint32_t) i);
			ups_idmap_index_directly(&map);
			/* ids 1 apart are indexed directly, 5 apart are not */
			CHECK_EQ_INT(map.direct != NULL, spread == 1);
			for (i = 0; i < N; i++)
				if (ups_idmap_find(&map, bases[b] + (int64_t) (i * spread)) != (i % 3 != 1 ? (int64_t) i : -1))
					wrong++;
			if (bases[b] != INT64_MIN && ups_idmap_find(&map, bases[b] - 1) != -1)
				wrong++;
			if (ups_idmap_find(&map, bases[b] + (int64_t) (N * spread)) != -1)
				wrong++;
			if (bases[b] != INT64_MIN && ups_idmap_find(&map, INT64_MIN) != -1)
				wrong++;
			if (ups_idmap_find(&map, INT64_MAX) != -1)
				wrong++;
			/* added afterwards: found, through the slots */
			ups_idmap_add(&map, bases[b] + 1 + (int64_t) (3 * spread), 7);
			CHECK(map.direct == NULL);
			if (ups_idmap_find(&map, bases[b] + 1 + (int64_t) (3 * spread)) != 7 ||
				ups_idmap_find(&map, bases[b]) != 0)
				wrong++;
			ups_idmap_free(&map);
		}
	}
	CHECK_EQ_INT(wrong, 0);
	/* no ids: nothing to index */
	ups_idmap_init(&map, 4);
	ups_idmap_index_directly(&map);
	CHECK(map.direct == NULL);
	CHECK_EQ_INT(ups_idmap_find(&map, 0), -1);
	ups_idmap_free(&map);
}

/*
 * Interned ids get 0, 1, 2, ... in the order they first come, through many
 * doublings of a map made for a few; ids seen again keep their index, and
 * the map finds every id afterwards.
 */
UNIT_TEST(idmap_intern_grows)
{
	enum
	{
		N = 200000
	};
	UpsIdMap	map;
	uint64_t	state = 7;
	int64_t    *ids = ups_alloc(N * sizeof(int64_t));
	size_t		i,
				wrong = 0;

	ups_idmap_init(&map, 4);
	for (i = 0; i < N; i++)
	{
		/* negative and huge ids too; distinct (a bijection of i) */
		ids[i] = (int64_t) ups_mix64((uint64_t) i + 1);
		if (ups_idmap_intern(&map, ids[i]) != i)
			wrong++;
		/* an id seen before keeps its index */
		if (i > 0 && ups_idmap_intern(&map, ids[next_random(&state) % i]) >= i + 1)
			wrong++;
	}
	CHECK_EQ_INT(wrong, 0);
	CHECK_EQ_INT(map.count, N);
	CHECK(map.mask + 1 >= 2 * (size_t) N);
	for (i = 0; i < N; i++)
		if (ups_idmap_find(&map, ids[i]) != (int64_t) i)
			wrong++;
	CHECK_EQ_INT(wrong, 0);
	CHECK_EQ_INT(ups_idmap_find(&map, 0), -1);
	ups_idmap_free(&map);
	ups_free(ids);
}
