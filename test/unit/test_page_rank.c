/*
 * test_page_rank.c
 *		Unit tests of the product page ranking (src/core/page_rank.c): each
 *		rule of page_rank.h on a hand-made example, then random candidate
 *		lists against a direct reference (every pair of offers compared by
 *		the rules, as the SQL builder's DISTINCT ON and row_number did).
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "page_rank.h"
#include "unit.h"

static PageCandidate
cand(int kind, const int64_t *ids, int nids, double score, int ref)
{
	PageCandidate c;

	memset(&c, 0, sizeof c);
	c.kind = kind;
	c.ids = ids;
	c.nids = nids;
	c.score = score;
	c.ref = ref;
	return c;
}

UNIT_TEST(page_rank_sort_is_relative_to_the_best_of_its_kind)
{
	static const int64_t a[] = {1}, b[] = {2}, c[] = {3};
	PageCandidate x[3];
	int			n;

	x[0] = cand(PAGE_COMPLEMENT, a, 1, 0.2, 0);
	x[1] = cand(PAGE_COMPLEMENT, b, 1, 0.4, 1);
	x[2] = cand(PAGE_UPGRADE, c, 1, 3.0, 2);
	n = page_rank(x, 3, 12);
	CHECK_EQ_INT(n, 3);
	/* the best complement and the only upgrade both have sort 1: ids decide */
	CHECK_EQ_INT(x[0].ref, 1);
	CHECK_NEAR(x[0].sort, 1.0, 0);
	CHECK_EQ_INT(x[1].ref, 2);
	CHECK_NEAR(x[1].sort, 1.0, 0);
	CHECK_EQ_INT(x[2].ref, 0);
	CHECK_NEAR(x[2].sort, 0.5, 0);
}

UNIT_TEST(page_rank_one_offer_per_set_of_products)
{
	static const int64_t a[] = {7}, ab[] = {7, 9};
	PageCandidate x[4];
	int			n;

	/* complement and upgrade of product 7, both sort 1: complement (text order) */
	x[0] = cand(PAGE_UPGRADE, a, 1, 2.0, 0);
	x[1] = cand(PAGE_COMPLEMENT, a, 1, 0.5, 1);
	x[2] = cand(PAGE_BUNDLE, ab, 2, 1.5, 2);
	n = page_rank(x, 3, 12);
	CHECK_EQ_INT(n, 2);
	/* sort 1 both: {7} before {7, 9} (the shorter first) */
	CHECK_EQ_INT(x[0].ref, 1);
	CHECK_EQ_INT(x[1].ref, 2);

	/* the upgrade has the higher sort: it is kept */
	x[0] = cand(PAGE_UPGRADE, a, 1, 2.0, 0);
	x[1] = cand(PAGE_COMPLEMENT, a, 1, 0.25, 1);
	x[2] = cand(PAGE_COMPLEMENT, ab + 1, 1, 0.5, 3);
	n = page_rank(x, 3, 12);
	CHECK_EQ_INT(n, 2);
	CHECK_EQ_INT(x[0].ref, 0);
	CHECK_EQ_INT(x[1].ref, 3);
}

UNIT_TEST(page_rank_limit_and_errors)
{
	int64_t		ids[20];
	PageCandidate x[20];

	for (int i = 0; i < 20; i++)
	{
		ids[i] = 100 - i;
		x[i] = cand(PAGE_COMPLEMENT, &ids[i], 1, 1.0, i);
	}
	/* all sort 1: the 12 smallest ids */
	CHECK_EQ_INT(page_rank(x, 20, 12), 12);
	for (int i = 0; i < 12; i++)
		CHECK_EQ_INT(x[i].ids[0], 81 + i);
	CHECK_EQ_INT(page_rank(x, 0, 12), 0);
	x[0] = cand(PAGE_BUNDLE, &ids[0], 1, 0.0, 0);
	CHECK_EQ_INT(page_rank(x, 1, 12), PAGE_RANK_ZERO_BEST);
	/* NaN is the best of all, and its sort NaN ranks first */
	x[0] = cand(PAGE_COMPLEMENT, &ids[0], 1, NAN, 0);
	x[1] = cand(PAGE_UPGRADE, &ids[1], 1, 5.0, 1);
	CHECK_EQ_INT(page_rank(x, 2, 12), 2);
	CHECK_EQ_INT(x[0].ref, 0);
	CHECK(isnan(x[0].sort));
}

UNIT_TEST(page_cmp_orders)
{
	static const int64_t a[] = {1, 2}, b[] = {1, 3}, c[] = {1};

	CHECK(page_cmp_ids(a, 2, b, 2) < 0);
	CHECK(page_cmp_ids(c, 1, a, 2) < 0);
	CHECK(page_cmp_ids(a, 2, a, 2) == 0);
	CHECK(page_cmp_float8(NAN, 1e300) > 0);
	CHECK(page_cmp_float8(NAN, NAN) == 0);
	CHECK(page_cmp_float8(-0.0, 0.0) == 0);
}

/* the reference: is offer i kept (the best of its set of products)? */
static bool
ref_kept(const PageCandidate *x, int n, int i)
{
	for (int j = 0; j < n; j++)
	{
		int			c;

		if (j == i || page_cmp_ids(x[i].ids, x[i].nids, x[j].ids, x[j].nids) != 0)
			continue;
		c = page_cmp_float8(x[j].sort, x[i].sort);
		if (c > 0 || (c == 0 && (x[j].kind < x[i].kind || (x[j].kind == x[i].kind && j < i))))
			return false;
	}
	return true;
}

UNIT_TEST(page_rank_random_against_reference)
{
	unsigned	seed = 12345;

	for (int round = 0; round < 300; round++)
	{
		int64_t		ids[60][3];
		PageCandidate x[60],
					orig[60];
		int			n = 1 + (int) ((seed = seed * 1103515245 + 12345) >> 16) % 60;
		double		best[PAGE_NKINDS] = {0, 0, 0};
		int			kept = 0,
					got;

		for (int i = 0; i < n; i++)
		{
			int			kind = (int) ((seed = seed * 1103515245 + 12345) >> 16) % 3;
			int			nids = kind == PAGE_BUNDLE ? 2 : 1;

			for (int k = 0; k < nids; k++)
				ids[i][k] = 1 + (int) ((seed = seed * 1103515245 + 12345) >> 16) % 15;
			/* few distinct scores: ties */
			x[i] = cand(kind, ids[i], nids, 0.1 * (1 + (int) ((seed = seed * 1103515245 + 12345) >> 16) % 8), i);
			if (x[i].score > best[kind])
				best[kind] = x[i].score;
		}
		for (int i = 0; i < n; i++)
			x[i].sort = x[i].score / best[x[i].kind];
		memcpy(orig, x, sizeof x);
		got = page_rank(x, n, 12);
		for (int i = 0; i < n; i++)
			if (ref_kept(orig, n, i))
				kept++;
		CHECK_EQ_INT(got, kept < 12 ? kept : 12);
		for (int r = 0; r < got; r++)
		{
			int			i = x[r].ref;
			int			better = 0;

			CHECK(ref_kept(orig, n, i));
			CHECK(x[r].sort == orig[i].sort);
			/* its position: the kept offers that rank before it */
			for (int j = 0; j < n; j++)
			{
				int			c;

				if (j == i || !ref_kept(orig, n, j))
					continue;
				c = page_cmp_float8(orig[j].sort, orig[i].sort);
				if (c == 0)
					c = -page_cmp_ids(orig[j].ids, orig[j].nids, orig[i].ids, orig[i].nids);
				if (c == 0)
					c = orig[i].kind - orig[j].kind;
				if (c > 0)
					better++;
			}
			CHECK_EQ_INT(better, r);
		}
	}
}
