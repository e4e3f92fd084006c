/*
 * test_cooc_categories.c
 *		Unit tests of the readers of counts that the pair-side models use:
 *		pairs within categories (src/core/cooc_categories.c) and the top
 *		pairs with rare products' single pairs (cooc_top_pairs_rare).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cooccur.h"
#include "idmap.h"
#include "unit.h"
#include "ups_host.h"

/*
 * Orders: 1 {10,20,30}, 2 {10,20}, 3 {20,40}, 4 {30,10}, 5 {40,50}.
 * Pairs: 10-20: 2, 10-30: 2, 20-30: 1, 20-40: 1, 40-50: 1 (total 7).
 */
static void
five_orders(CoocCounts *c)
{
	static const int64_t data[][2] = {
		{1, 10}, {1, 20}, {1, 30}, {2, 10}, {2, 20}, {3, 20}, {3, 40},
		{4, 30}, {4, 10}, {5, 40}, {5, 50}
	};
	CoocLines	l;
	size_t		i;

	cooc_lines_init(&l);
	for (i = 0; i < sizeof(data) / sizeof(data[0]); i++)
		cooc_lines_add(&l, data[i][0], data[i][1]);
	CHECK(cooc_count(&l, 0, c) == NULL);
	ups_free(l.lines);
}

UNIT_TEST(cooc_category_pairs_sums_within_and_all)
{
	CoocCounts	c;
	/* 10, 20: key 0; 30: key 1 (alone in the counts' pairs with it: 0);
	 * 40, 50: key 1; 99 not counted; 60 given no key */
	const int64_t ids[] = {50, 10, 99, 30, 20, 40, 60};
	const int32_t keys[] = {1, 0, 0, 1, 0, 1, -1};
	int64_t		within[2],
				total;

	five_orders(&c);
	CHECK(cooc_category_pairs(&c, ids, keys, 7, 2, within, &total) == NULL);
	CHECK_EQ_INT(total, 7);
	CHECK_EQ_INT(within[0], 2);		/* 10-20 */
	CHECK_EQ_INT(within[1], 1);		/* 40-50; 30-40 never together */
	cooc_counts_free(&c);
}

UNIT_TEST(cooc_category_pairs_without_keys_or_pairs)
{
	CoocCounts	c,
				empty;
	CoocLines	l;
	int64_t		within[1] = {-5},
				total = -1;
	const int64_t ids[] = {10};
	const int32_t keys[] = {0};

	five_orders(&c);
	/* no products given: every pair counts for the total only */
	CHECK(cooc_category_pairs(&c, NULL, NULL, 0, 0, within, &total) == NULL);
	CHECK_EQ_INT(total, 7);
	/* counts without pairs */
	cooc_lines_init(&l);
	cooc_lines_add(&l, 1, 10);
	CHECK(cooc_count(&l, 0, &empty) == NULL);
	CHECK(cooc_category_pairs(&empty, ids, keys, 1, 1, within, &total) == NULL);
	CHECK_EQ_INT(total, 0);
	CHECK_EQ_INT(within[0], 0);
	ups_free(l.lines);
	cooc_counts_free(&empty);
	cooc_counts_free(&c);
}

UNIT_TEST(cooc_category_pairs_rejects_bad_input)
{
	CoocCounts	c;
	int64_t		within[2],
				total;
	const int64_t twice[] = {10, 20, 10};
	const int32_t keys[] = {0, 1, 1};
	const int64_t ids[] = {10, 20};
	const int32_t out_of_range[] = {0, 2};
	const int32_t below[] = {-2, 0};

	five_orders(&c);
	CHECK(cooc_category_pairs(&c, twice, keys, 3, 2, within, &total) != NULL);
	CHECK(cooc_category_pairs(&c, ids, out_of_range, 2, 2, within, &total) != NULL);
	CHECK(cooc_category_pairs(&c, ids, below, 2, 2, within, &total) != NULL);
	CHECK(cooc_category_pairs(&c, ids, keys, 2, -1, within, &total) != NULL);
	cooc_counts_free(&c);
}

/* The same sums the slow way: every pair looked up by ids, on random data. */
UNIT_TEST(cooc_category_pairs_equal_pair_by_pair)
{
	CoocLines	l;
	CoocCounts	c;
	uint64_t	rng = 11;
	enum
	{
		NPROD = 60, NKEYS = 7
	};
	int64_t		ids[NPROD];
	int32_t		keys[NPROD];
	int64_t		within[NKEYS],
				ref[NKEYS] = {0},
				total,
				ref_total = 0;

	cooc_lines_init(&l);
	for (int o = 0; o < 3000; o++)
		for (int i = 1 + (int) (unit_xorshift(&rng) % 5); i > 0; i--)
			cooc_lines_add(&l, o, (int64_t) (unit_xorshift(&rng) % NPROD) * 3);
	CHECK(cooc_count(&l, 0, &c) == NULL);
	/* every product but a few, in reverse order, some without a key */
	for (int i = 0; i < NPROD; i++)
	{
		ids[i] = (int64_t) (NPROD - 1 - i) * 3;
		keys[i] = i % 9 == 8 ? -1 : (int32_t) (unit_xorshift(&rng) % NKEYS);
	}
	CHECK(cooc_category_pairs(&c, ids, keys, NPROD - 2, NKEYS, within, &total) == NULL);
	for (int i = 0; i < NPROD; i++)
		for (int j = i + 1; j < NPROD; j++)
		{
			int64_t		a = cooc_item_index(&c, ids[i]);
			int64_t		b = cooc_item_index(&c, ids[j]);
			int64_t		t = a < 0 || b < 0 ? 0 : cooc_pair_count(&c, (uint32_t) a, (uint32_t) b);

			ref_total += t;
			if (i < NPROD - 2 && j < NPROD - 2 && keys[i] >= 0 && keys[i] == keys[j])
				ref[keys[i]] += t;
		}
	CHECK_EQ_INT(total, ref_total);
	CHECK(total > 0);
	for (int k = 0; k < NKEYS; k++)
		CHECK_EQ_INT(within[k], ref[k]);
	cooc_counts_free(&c);
	ups_free(l.lines);
}

/*
 * cooc_top_pairs_rare equals the rule it replaces in SQL: the top pairs
 * among those seen once or more, then kept when seen twice or when the
 * product is in fewer than rare_orders orders.
 */
UNIT_TEST(cooc_top_pairs_rare_equal_filtered_top_pairs)
{
	CoocLines	l;
	CoocCounts	c;
	CoocTop    *all,
			   *rare;
	size_t		nall,
				nrare,
				at = 0;
	uint64_t	rng = 17;
	const int	k = 150;			/* popular products' lists reach pairs seen once */
	const int64_t rare_orders = 20;
	size_t		rare_products = 0;

	cooc_lines_init(&l);
	for (int o = 0; o < 2500; o++)
		for (int i = 1 + (int) (unit_xorshift(&rng) % 5); i > 0; i--)
		{
			/* a skewed catalog: some products in many orders, most in few */
			uint64_t	r = unit_xorshift(&rng) % 100;

			cooc_lines_add(&l, o, r < 60 ? (int64_t) (r % 12) : (int64_t) (unit_xorshift(&rng) % 400) + 12);
		}
	CHECK(cooc_count(&l, 0, &c) == NULL);
	all = cooc_top_pairs(&c, k, 1, &nall);
	rare = cooc_top_pairs_rare(&c, k, 2, rare_orders, NULL, &nrare);
	for (size_t i = 0; i < nall; i++)
	{
		if (all[i].together < 2 && c.item_counts[all[i].product] >= rare_orders)
			continue;
		CHECK(at < nrare);
		if (at >= nrare)
			break;
		CHECK_EQ_INT(rare[at].product, all[i].product);
		CHECK_EQ_INT(rare[at].other, all[i].other);
		CHECK_EQ_INT(rare[at].together, all[i].together);
		CHECK(rare[at].score == all[i].score);
		if (all[i].together < 2)
			rare_products++;
		at++;
	}
	CHECK_EQ_INT(at, nrare);
	/* both kinds of product occur */
	CHECK(rare_products > 0);
	CHECK(nrare < nall);
	ups_free(all);
	ups_free(rare);
	/* rare_orders 0 is plain cooc_top_pairs */
	all = cooc_top_pairs(&c, k, 2, &nall);
	rare = cooc_top_pairs_rare(&c, k, 2, 0, NULL, &nrare);
	CHECK_EQ_INT(nall, nrare);
	for (size_t i = 0; i < nall && i < nrare; i++)
	{
		CHECK_EQ_INT(rare[i].product, all[i].product);
		CHECK_EQ_INT(rare[i].other, all[i].other);
		CHECK(rare[i].score == all[i].score);
	}
	ups_free(all);
	ups_free(rare);
	cooc_counts_free(&c);
	ups_free(l.lines);
}

/*
 * With a list of products (what an incremental refresh lists again), the
 * top pairs of exactly those products, the same entries as for all of
 * them: a product's list depends on its own counts alone.
 */
UNIT_TEST(cooc_top_pairs_rare_of_some_products)
{
	CoocLines	l;
	CoocCounts	c;
	CoocTop    *all,
			   *some;
	size_t		nall,
				nsome,
				at = 0,
				wanted_entries = 0;
	uint64_t	rng = 29;
	bool	   *only;

	cooc_lines_init(&l);
	for (int o = 0; o < 2000; o++)
		for (int i = 1 + (int) (unit_xorshift(&rng) % 6); i > 0; i--)
			cooc_lines_add(&l, o, (int64_t) (unit_xorshift(&rng) % 300));
	CHECK(cooc_count(&l, 0, &c) == NULL);
	only = ups_alloc0(c.nitems * sizeof(bool));
	for (uint32_t x = 0; x < c.nitems; x++)
		only[x] = ups_mix64(x) % 3 == 0;
	all = cooc_top_pairs_rare(&c, 10, 2, 20, NULL, &nall);
	some = cooc_top_pairs_rare(&c, 10, 2, 20, only, &nsome);
	for (size_t i = 0; i < nall; i++)
	{
		if (!only[all[i].product])
			continue;
		wanted_entries++;
		CHECK(at < nsome);
		if (at >= nsome)
			break;
		CHECK_EQ_INT(some[at].product, all[i].product);
		CHECK_EQ_INT(some[at].other, all[i].other);
		CHECK_EQ_INT(some[at].together, all[i].together);
		CHECK(some[at].score == all[i].score);
		at++;
	}
	CHECK_EQ_INT(at, nsome);
	CHECK(wanted_entries > 0 && wanted_entries < nall);
	ups_free(all);
	ups_free(some);
	/* none wanted: nothing */
	memset(only, 0, c.nitems * sizeof(bool));
	some = cooc_top_pairs_rare(&c, 10, 2, 20, only, &nsome);
	CHECK_EQ_INT(nsome, 0);
	ups_free(some);
	ups_free(only);
	cooc_counts_free(&c);
	ups_free(l.lines);
}
