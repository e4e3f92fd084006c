/*
 * cooc_fixtures.c
 *		Fixtures shared by the unit tests of stored counts (test_cooc_chunks.c,
 *		test_cooc_sum.c): random orders, and counts cut into chunks as a
 *		refresh stores them.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cooc_fixtures.h"
#include "unit.h"
#include "ups_host.h"

/* Orders first_order .. first_order + orders - 1, of 1-6 random products. */
void
random_lines(CoocLines *l, uint64_t seed, int first_order, int orders, int products)
{
	uint64_t	rng = seed;

	for (int o = first_order; o < first_order + orders; o++)
		for (int i = 1 + (int) (unit_xorshift(&rng) % 6); i > 0; i--)
			cooc_lines_add(l, o, (int64_t) (unit_xorshift(&rng) % (uint64_t) products) * 7);
}

/* The chunks of c, each decoded from its flat form (as a reader sees it). */
size_t
chunks_of(const CoocCounts *c, size_t max_pairs, CoocCounts **out, int64_t **first_ids)
{
	uint32_t   *bounds;
	size_t		n = cooc_chunk_bounds(c, max_pairs, &bounds);

	*out = calloc(n, sizeof(CoocCounts));
	*first_ids = calloc(n, sizeof(int64_t));
	for (size_t i = 0; i < n; i++)
	{
		size_t		len = cooc_rows_serialized_size(c, bounds[i], bounds[i + 1]);
		char	   *buf = malloc(len);

		cooc_rows_serialize(c, bounds[i], bounds[i + 1], buf);
		CHECK(cooc_counts_deserialize(buf, len, false, &(*out)[i]) == NULL);
		(*first_ids)[i] = bounds[i] < c->nitems ? c->item_ids[bounds[i]] : 0;
		/* a chunk after the first starts with a product that has pairs */
		if (i > 0)
			CHECK(bounds[i] < c->nitems && c->row[bounds[i] + 1] > c->row[bounds[i]]);
		free(buf);
	}
	ups_free(bounds);
	return n;
}
