/*
 * test_cooc_sum.c
 *		Unit tests of stored counts read as base + delta (src/core/cooc_sum.c):
 *		every reader of a chunk and the delta beside it sees exactly what the
 *		chunk with the delta merged into it (cooc_counts_merge_rows) holds,
 *		and the chunks together what a count of all the orders holds.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cooc_fixtures.h"
#include "cooccur.h"
#include "unit.h"
#include "ups_host.h"

static bool
same_tops(const CoocTop *a, size_t na, const int64_t *ids_a,
		  const CoocTop *b, size_t nb, const int64_t *ids_b)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (ids_a[a[i].product] != ids_b[b[i].product] || ids_a[a[i].other] != ids_b[b[i].other] ||
			a[i].together != b[i].together || a[i].score != b[i].score)
			return false;
	return true;
}

/* Every reader of sum gives what it gives of merged, the same counts built. */
static void
check_sum_reads_as(const CoocSum *sum, const CoocCounts *merged)
{
	CoocSum		plain;
	double		t2a,
				tnna,
				t2b,
				tnnb;
	CoocTop    *ta,
			   *tb;
	size_t		na,
				nb,
				npairs;
	int64_t    *ids = malloc((merged->nitems + 1) * sizeof(int64_t));
	int32_t    *keys = malloc((merged->nitems + 1) * sizeof(int32_t));
	int64_t		within_a[3],
				within_b[3],
				total_a,
				total_b;
	bool	   *only_a = calloc(merged->nitems + 1, 1),
			   *only_b = calloc(merged->nitems + 1, 1);

	CHECK(cooc_sum_init(&plain, merged, NULL, NULL, NULL) == NULL);
	CHECK_EQ_INT(sum->orders, merged->orders);
	CHECK_EQ_INT(sum->skipped_lines, merged->skipped_lines);
	CHECK_EQ_INT(sum->big_orders, merged->big_orders);
	CHECK_EQ_INT(sum->nitems, merged->nitems);
	CHECK(memcmp(sum->item_ids, merged->item_ids, merged->nitems * sizeof(int64_t)) == 0);
	CHECK(memcmp(sum->item_counts, merged->item_counts, merged->nitems * sizeof(int64_t)) == 0);
	/* row by row, pair by pair */
	for (uint32_t a = 0; a < merged->nitems; a++)
	{
		CoocSumRow	r;
		uint32_t	partner,
					together;
		size_t		p = merged->row[a];

		cooc_sum_row(sum, a, &r);
		while (cooc_sum_next(&r, &partner, &together))
		{
			CHECK(p < merged->row[a + 1]);
			if (p >= merged->row[a + 1])
				break;
			CHECK_EQ_INT(partner, merged->pairs[p].partner);
			CHECK_EQ_INT(together, merged->pairs[p].together);
			p++;
		}
		CHECK_EQ_INT(p, merged->row[a + 1]);
	}
	cooc_sum_pair_moments(sum, &t2a, &tnna, &npairs);
	cooc_pair_moments(merged, &t2b, &tnnb);
	CHECK(t2a == t2b && tnna == tnnb);
	CHECK_EQ_INT(npairs, merged->npairs);
	/* the pair lists, of every product and of some */
	ta = cooc_sum_top_pairs(sum, 3, 2, 5, NULL, &na);
	tb = cooc_top_pairs_rare(merged, 3, 2, 5, NULL, &nb);
	CHECK(same_tops(ta, na, sum->item_ids, tb, nb, merged->item_ids));
	ups_free(ta);
	ups_free(tb);
	for (uint32_t a = 0; a < merged->nitems; a += 3)
		only_a[a] = only_b[a] = true;
	ta = cooc_sum_top_pairs(sum, 4, 2, 0, only_a, &na);
	tb = cooc_top_pairs_rare(merged, 4, 2, 0, only_b, &nb);
	CHECK(same_tops(ta, na, sum->item_ids, tb, nb, merged->item_ids));
	ups_free(ta);
	ups_free(tb);
	/* categories: three keys by id, some products without */
	for (uint32_t a = 0; a < merged->nitems; a++)
	{
		ids[a] = merged->item_ids[a];
		keys[a] = (int32_t) (ids[a] % 4) - 1;
	}
	CHECK(cooc_sum_category_pairs(sum, ids, keys, merged->nitems, 3, within_a, &total_a) == NULL);
	CHECK(cooc_category_pairs(merged, ids, keys, merged->nitems, 3, within_b, &total_b) == NULL);
	CHECK(total_a == total_b && memcmp(within_a, within_b, sizeof(within_a)) == 0);
	cooc_sum_free(&plain);
	free(ids);
	free(keys);
	free(only_a);
	free(only_b);
}

/*
 * Old orders counted and chunked (the base), two batches of new orders
 * counted as one delta (what two incremental refreshes store): each chunk
 * read with the delta is the chunk with the delta merged in, and the
 * chunks' pairs together are those of a count of every order.
 */
UNIT_TEST(cooc_sum_of_chunks_and_delta_reads_as_merged)
{
	CoocLines	old_lines,
				new1,
				new2,
				all_lines;
	CoocCounts	old,
				added1,
				added2,
				delta,
				all,
			   *chunks;
	int64_t    *first;
	size_t		n,
				pairs = 0;
	size_t		bounds[] = {30, 1000000};

	cooc_lines_init(&old_lines);
	cooc_lines_init(&new1);
	cooc_lines_init(&new2);
	cooc_lines_init(&all_lines);
	random_lines(&old_lines, 9, 0, 700, 40);
	/* new orders, with products the old ones never had (ids 280 ..) */
	random_lines(&new1, 10, 700, 150, 60);
	random_lines(&new2, 11, 850, 100, 70);
	random_lines(&all_lines, 9, 0, 700, 40);
	random_lines(&all_lines, 10, 700, 150, 60);
	random_lines(&all_lines, 11, 850, 100, 70);
	CHECK(cooc_count(&old_lines, 0, &old) == NULL);
	CHECK(cooc_count(&new1, 0, &added1) == NULL);
	CHECK(cooc_count(&new2, 0, &added2) == NULL);
	CHECK(cooc_count(&all_lines, 0, &all) == NULL);
	CHECK(cooc_counts_merge(&delta, &added1, &added2) == NULL);
	for (int b = 0; b < 2; b++)
	{
		n = chunks_of(&old, bounds[b], &chunks, &first);
		CHECK(b == 1 ? n == 1 : n > 3);
		pairs = 0;
		for (size_t i = 0; i < n; i++)
		{
			const int64_t *lo = i > 0 ? &first[i] : NULL;
			const int64_t *hi = i + 1 < n ? &first[i + 1] : NULL;
			CoocCounts	merged;
			CoocSum		sum;
			double		t2,
						tnn;
			size_t		np;

			CHECK(cooc_counts_merge_rows(&merged, &chunks[i], &delta, lo, hi) == NULL);
			CHECK(cooc_sum_init(&sum, &chunks[i], &delta, lo, hi) == NULL);
			check_sum_reads_as(&sum, &merged);
			cooc_sum_pair_moments(&sum, &t2, &tnn, &np);
			pairs += np;
			CHECK_EQ_INT(sum.nitems, all.nitems);
			cooc_sum_free(&sum);
			cooc_counts_free(&merged);
			cooc_counts_free(&chunks[i]);
		}
		CHECK_EQ_INT(pairs, all.npairs);
		free(chunks);
		free(first);
	}
	cooc_counts_free(&old);
	cooc_counts_free(&added1);
	cooc_counts_free(&added2);
	cooc_counts_free(&delta);
	cooc_counts_free(&all);
	ups_free(old_lines.lines);
	ups_free(new1.lines);
	ups_free(new2.lines);
	ups_free(all_lines.lines);
}

/* A delta of products alone (orders of one product), and no delta. */
UNIT_TEST(cooc_sum_without_delta_pairs)
{
	CoocLines	old_lines,
				new_lines;
	CoocCounts	old,
				added,
				merged;
	CoocSum		sum;

	cooc_lines_init(&old_lines);
	cooc_lines_init(&new_lines);
	random_lines(&old_lines, 5, 0, 200, 30);
	cooc_lines_add(&new_lines, 1000, 7);
	cooc_lines_add(&new_lines, 1001, 7000);
	CHECK(cooc_count(&old_lines, 0, &old) == NULL);
	CHECK(cooc_count(&new_lines, 0, &added) == NULL);
	CHECK(cooc_counts_merge(&merged, &old, &added) == NULL);
	CHECK(cooc_sum_init(&sum, &old, &added, NULL, NULL) == NULL);
	check_sum_reads_as(&sum, &merged);
	cooc_sum_free(&sum);
	CHECK(cooc_sum_init(&sum, &old, NULL, NULL, NULL) == NULL);
	check_sum_reads_as(&sum, &old);
	cooc_sum_free(&sum);
	cooc_counts_free(&old);
	cooc_counts_free(&added);
	cooc_counts_free(&merged);
	ups_free(old_lines.lines);
	ups_free(new_lines.lines);
}

/* More orders than a count holds: refused, nothing to free. */
UNIT_TEST(cooc_sum_refuses_too_many_orders)
{
	CoocCounts	a,
				b;
	CoocSum		sum;

	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	a.orders = UINT32_MAX - 5;
	b.orders = 6;
	CHECK(cooc_sum_init(&sum, &a, &b, NULL, NULL) != NULL);
	b.orders = 5;
	CHECK(cooc_sum_init(&sum, &a, &b, NULL, NULL) == NULL);
	CHECK_EQ_INT(sum.orders, UINT32_MAX);
	cooc_sum_free(&sum);
}
