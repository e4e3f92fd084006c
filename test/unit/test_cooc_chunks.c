/*
 * test_cooc_chunks.c
 *		Unit tests of counts stored in chunks (src/core/cooc_chunks.c).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cooc_fixtures.h"
#include "cooccur.h"
#include "unit.h"
#include "ups_host.h"

/* Every pair of c in exactly one chunk, every chunk with all of c's items. */
static void
check_chunks_equal(const CoocCounts *c, const CoocCounts *chunks, size_t n)
{
	size_t		pairs = 0;

	for (size_t i = 0; i < n; i++)
	{
		CHECK_EQ_INT(chunks[i].orders, c->orders);
		CHECK_EQ_INT(chunks[i].nitems, c->nitems);
		CHECK(memcmp(chunks[i].item_ids, c->item_ids, c->nitems * 8) == 0);
		CHECK(memcmp(chunks[i].item_counts, c->item_counts, c->nitems * 8) == 0);
		pairs += chunks[i].npairs;
	}
	CHECK_EQ_INT(pairs, c->npairs);
	for (uint32_t a = 0; a < c->nitems; a++)
		for (size_t p = c->row[a]; p < c->row[a + 1]; p++)
		{
			int			found = 0;

			for (size_t i = 0; i < n; i++)
				if (cooc_pair_count(&chunks[i], a, c->pairs[p].partner) == c->pairs[p].together)
					found++;
			CHECK_EQ_INT(found, 1);
		}
}

UNIT_TEST(cooc_chunks_hold_every_pair_once)
{
	CoocLines	l;
	CoocCounts	c,
			   *chunks;
	int64_t    *first;
	size_t		n;

	cooc_lines_init(&l);
	random_lines(&l, 3, 0, 800, 50);
	CHECK(cooc_count(&l, 0, &c) == NULL);
	n = chunks_of(&c, 40, &chunks, &first);
	CHECK(n > 5);
	check_chunks_equal(&c, chunks, n);
	for (size_t i = 0; i < n; i++)
	{
		/* bounded, except a row alone in its chunk */
		uint32_t	rows = 0;

		for (uint32_t a = 0; a < chunks[i].nitems; a++)
			rows += chunks[i].row[a + 1] > chunks[i].row[a];
		CHECK(chunks[i].npairs <= 40 || rows == 1);
		cooc_counts_free(&chunks[i]);
	}
	free(chunks);
	free(first);
	/* one chunk when the bound is large; a row longer than the bound alone */
	n = chunks_of(&c, c.npairs, &chunks, &first);
	CHECK_EQ_INT(n, 1);
	cooc_counts_free(&chunks[0]);
	free(chunks);
	free(first);
	n = chunks_of(&c, 1, &chunks, &first);
	check_chunks_equal(&c, chunks, n);
	for (size_t i = 0; i < n; i++)
		cooc_counts_free(&chunks[i]);
	free(chunks);
	free(first);
	cooc_counts_free(&c);
	ups_free(l.lines);
}

UNIT_TEST(cooc_chunks_of_counts_without_pairs)
{
	CoocLines	l;
	CoocCounts	c,
			   *chunks;
	int64_t    *first;
	size_t		n;

	cooc_lines_init(&l);
	cooc_lines_add(&l, 1, 5);
	cooc_lines_add(&l, 2, 6);
	CHECK(cooc_count(&l, 0, &c) == NULL);
	n = chunks_of(&c, 10, &chunks, &first);
	CHECK_EQ_INT(n, 1);
	CHECK_EQ_INT(chunks[0].nitems, 2);
	CHECK_EQ_INT(chunks[0].npairs, 0);
	cooc_counts_free(&chunks[0]);
	free(chunks);
	free(first);
	cooc_counts_free(&c);
	ups_free(l.lines);
}

/*
 * Incremental refresh chunk by chunk: each chunk of the old orders' counts
 * plus the new orders' rows of its id range equals, chunk for chunk, the
 * count of all orders.
 */
UNIT_TEST(cooc_chunks_merge_rows_equal_a_recount)
{
	CoocLines	old_lines,
				new_lines,
				all_lines;
	CoocCounts	old,
				added,
				all,
			   *chunks,
			   *merged;
	int64_t    *first;
	size_t		n;

	cooc_lines_init(&old_lines);
	cooc_lines_init(&new_lines);
	cooc_lines_init(&all_lines);
	random_lines(&old_lines, 9, 0, 700, 40);
	/* new orders, with products the old ones never had (ids 280 ..) */
	random_lines(&new_lines, 10, 700, 150, 60);
	random_lines(&all_lines, 9, 0, 700, 40);
	random_lines(&all_lines, 10, 700, 150, 60);
	CHECK(cooc_count(&old_lines, 0, &old) == NULL);
	CHECK(cooc_count(&new_lines, 0, &added) == NULL);
	CHECK(cooc_count(&all_lines, 0, &all) == NULL);
	n = chunks_of(&old, 30, &chunks, &first);
	CHECK(n > 3);
	merged = calloc(n, sizeof(CoocCounts));
	for (size_t i = 0; i < n; i++)
	{
		const int64_t *lo = i > 0 ? &first[i] : NULL;
		const int64_t *hi = i + 1 < n ? &first[i + 1] : NULL;

		CHECK(cooc_counts_merge_rows(&merged[i], &chunks[i], &added, lo, hi) == NULL);
	}
	check_chunks_equal(&all, merged, n);
	for (size_t i = 0; i < n; i++)
	{
		cooc_counts_free(&chunks[i]);
		cooc_counts_free(&merged[i]);
	}
	free(chunks);
	free(merged);
	free(first);
	cooc_counts_free(&old);
	cooc_counts_free(&added);
	cooc_counts_free(&all);
	ups_free(old_lines.lines);
	ups_free(new_lines.lines);
	ups_free(all_lines.lines);
}

/*
 * Sparse rows: a product whose pairs overflow a chunk, then products
 * without pairs of their own.  No chunk but the first may be without pairs
 * (its first product bounds its range).
 */
UNIT_TEST(cooc_chunks_start_at_a_pair)
{
	CoocLines	l;
	CoocCounts	c,
			   *chunks;
	int64_t    *first;
	size_t		n;

	cooc_lines_init(&l);
	for (int o = 0; o < 3; o++)
	{
		cooc_lines_add(&l, o, 1);
		cooc_lines_add(&l, o, 2 + o);
	}
	CHECK(cooc_count(&l, 0, &c) == NULL);
	n = chunks_of(&c, 2, &chunks, &first);
	CHECK_EQ_INT(n, 1);
	check_chunks_equal(&c, chunks, n);
	for (size_t i = 0; i < n; i++)
		cooc_counts_free(&chunks[i]);
	free(chunks);
	free(first);
	cooc_counts_free(&c);
	ups_free(l.lines);
}
