/*
 * test_cooc_moments.c
 *		Unit tests of the pair moments (src/core/cooc_moments.c): the sums
 *		equal a brute-force count over every ordered pair of products.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cooccur.h"
#include "unit.h"
#include "ups_host.h"

/* orders as (order, product) lines, counted */
static void
count_lines(const int64_t (*data)[2], size_t n, CoocCounts *c)
{
	CoocLines	l;
	size_t		i;

	cooc_lines_init(&l);
	for (i = 0; i < n; i++)
		cooc_lines_add(&l, data[i][0], data[i][1]);
	CHECK(cooc_count(&l, 0, c) == NULL);
	ups_free(l.lines);
}

/* brute force: every ordered pair of distinct products, from the lines */
static void
brute_force(const int64_t (*data)[2], size_t n, double *t2, double *tnn)
{
	int64_t		ids[64];
	size_t		nids = 0,
				i,
				j,
				x,
				y;

	for (i = 0; i < n; i++)
	{
		for (j = 0; j < nids && ids[j] != data[i][1]; j++)
			;
		if (j == nids)
			ids[nids++] = data[i][1];
	}
	*t2 = 0;
	*tnn = 0;
	for (x = 0; x < nids; x++)
		for (y = 0; y < nids; y++)
		{
			double		t = 0,
						nx = 0,
						ny = 0;
			int64_t		orders[64];
			size_t		norders = 0,
						o;

			if (x == y)
				continue;
			for (i = 0; i < n; i++)
			{
				for (o = 0; o < norders && orders[o] != data[i][0]; o++)
					;
				if (o == norders)
					orders[norders++] = data[i][0];
			}
			for (o = 0; o < norders; o++)
			{
				bool		hx = false,
							hy = false;

				for (i = 0; i < n; i++)
					if (data[i][0] == orders[o])
					{
						hx |= data[i][1] == ids[x];
						hy |= data[i][1] == ids[y];
					}
				nx += hx;
				ny += hy;
				t += hx && hy;
			}
			*t2 += t * t;
			*tnn += t * nx * ny;
		}
}

UNIT_TEST(cooc_pair_moments_equal_brute_force)
{
	/* repeated lines count once; 40 is in one order alone */
	static const int64_t data[][2] = {
		{1, 10}, {1, 20}, {1, 30}, {2, 10}, {2, 20}, {2, 20}, {3, 20}, {3, 40},
		{4, 30}, {4, 10}, {5, 40}, {5, 50}, {6, 10}, {6, 20}, {6, 30}, {6, 50},
		{7, 40}
	};
	size_t		n = sizeof(data) / sizeof(data[0]);
	CoocCounts	c;
	double		t2,
				tnn,
				bt2,
				btnn;

	count_lines(data, n, &c);
	cooc_pair_moments(&c, &t2, &tnn);
	brute_force(data, n, &bt2, &btnn);
	/* 10-20: 3 orders, 10-30: 3, 20-30: 2, 20-40: 1, 40-50: 1, 10-50: 1,
	 * 20-50: 1, 30-50: 1; both orders of each */
	CHECK(bt2 == 2.0 * (9 + 9 + 4 + 1 + 1 + 1 + 1 + 1));
	CHECK(t2 == bt2);
	CHECK(tnn == btnn);
	cooc_counts_free(&c);
}

UNIT_TEST(cooc_pair_moments_without_pairs)
{
	static const int64_t data[][2] = {{1, 10}, {2, 20}, {3, 10}};
	CoocCounts	c;
	double		t2 = -1,
				tnn = -1;

	count_lines(data, 3, &c);
	cooc_pair_moments(&c, &t2, &tnn);
	CHECK(t2 == 0);
	CHECK(tnn == 0);
	cooc_counts_free(&c);
}
