/*
 * test_history.c
 *		Unit tests of the one-pass purchase histories (src/core/history.c),
 *		against a direct computation per (customer, product).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "history.h"
#include "unit.h"
#include "ups_host.h"

#define DAY 86400000000LL

UNIT_TEST(history_runs_by_product_and_time)
{
	PhLine		l[] = {{7, 30 * DAY, 0}, {3, 0, 1}, {7, 0, 2}, {3, 0, 3}, {9, 5 * DAY, 4}};
	size_t		n = sizeof l / sizeof l[0];

	ph_sort_lines(l, n);
	CHECK_EQ_INT(l[0].product, 3);
	CHECK_EQ_INT(l[0].idx, 1);
	CHECK_EQ_INT(l[1].idx, 3);
	CHECK_EQ_INT(l[2].product, 7);
	CHECK_EQ_INT(l[2].t, 0);
	CHECK_EQ_INT(ph_run_length(l, n, 0), 2);
	CHECK_EQ_INT(ph_run_length(l, n, 2), 2);
	CHECK_EQ_INT(ph_run_length(l, n, 4), 1);
}

UNIT_TEST(history_consumable_rule)
{
	/* shop share 10%: the floor is 5% */
	CHECK(ph_consumable(100, 5, 1000, 100));
	CHECK(!ph_consumable(100, 4, 1000, 100));
	/* one repeat buyer is anecdote */
	CHECK(!ph_consumable(10, 1, 1000, 100));
	/* a shop where nobody comes back: the 2% floor */
	CHECK(!ph_consumable(1000, 19, 100000, 10));
	CHECK(ph_consumable(1000, 20, 100000, 10));
	CHECK(!ph_consumable(0, 0, 0, 0));
}

/*
 * Random customers: the product table equals counting every (customer,
 * product) directly, and the population interval is the median of the
 * repeat customers' median gaps.
 */
UNIT_TEST(history_products_match_direct_count)
{
	enum
	{
		NPROD = 40, NCUST = 300
	};
	uint64_t	seed = 12345;
	PhProducts	p;
	int64_t		customers[NPROD] = {0},
				repeaters[NPROD] = {0},
				regulars[NPROD] = {0};
	double	   *gaps[NPROD];
	size_t		ngaps[NPROD] = {0};
	int64_t		pairs = 0,
				repeat_pairs = 0;
	PhProductStats *out;
	size_t		nout;

	for (int i = 0; i < NPROD; i++)
		gaps[i] = malloc(NCUST * sizeof(double));
	ph_products_init(&p);
	for (int c = 0; c < NCUST; c++)
	{
		PhLine		lines[30];
		size_t		n = 1 + unit_xorshift(&seed) % 30;

		for (size_t i = 0; i < n; i++)
		{
			lines[i].product = (int64_t) (unit_xorshift(&seed) % NPROD) * 1000 - 7000;
			lines[i].t = (int64_t) (unit_xorshift(&seed) % 6) * 7 * DAY;
			lines[i].idx = (int32_t) i;
		}
		ph_sort_lines(lines, n);
		for (size_t i = 0; i < n;)
		{
			size_t		len = ph_run_length(lines, n, i);
			IvTimes		t;
			IvStats		st;
			int			k = (int) ((lines[i].product + 7000) / 1000);

			iv_times_init(&t);
			for (size_t j = i; j < i + len; j++)
				iv_times_add(&t, lines[j].t);
			iv_stats(&t, (double) DAY, false, &st);
			ph_products_add(&p, lines[i].product, &st);
			customers[k]++;
			pairs++;
			if (st.purchases >= 2)
			{
				repeaters[k]++;
				repeat_pairs++;
				gaps[k][ngaps[k]++] = st.median_gap;
			}
			if (st.purchases >= 3 && st.has_cv && st.cv < 0.5)
				regulars[k]++;
			ups_free(t.t);
			i += len;
		}
	}
	out = ph_products_finish(&p, &nout);
	{
		size_t		seen = 0;

		for (int k = 0; k < NPROD; k++)
		{
			if (customers[k] == 0)
				continue;
			CHECK(seen < nout);
			if (seen >= nout)
				break;
			CHECK_EQ_INT(out[seen].product, (int64_t) k * 1000 - 7000);
			CHECK_EQ_INT(out[seen].customers, customers[k]);
			CHECK_EQ_INT(out[seen].repeaters, repeaters[k]);
			CHECK_EQ_INT(out[seen].regulars, regulars[k]);
			CHECK(out[seen].has_population == (ngaps[k] > 0));
			if (ngaps[k] > 0)
				CHECK_NEAR(out[seen].population_days, iv_median(gaps[k], ngaps[k]), 1e-9);
			CHECK(out[seen].consumable == ph_consumable(customers[k], repeaters[k], pairs, repeat_pairs));
			seen++;
		}
		CHECK_EQ_INT(seen, nout);
	}
	ph_products_free(&p);
	for (int i = 0; i < NPROD; i++)
		free(gaps[i]);
}

UNIT_TEST(history_multiset_update)
{
	double		base[] = {1, 2, 2, 5, 9};
	double		rm[] = {9, 2, 7};		/* 7 is not there: ignored */
	double		add[] = {3, 0.5};
	double		out[7];
	size_t		n = ph_multiset_update(base, 5, rm, 3, add, 2, out);

	CHECK_EQ_INT(n, 5);
	CHECK(out[0] == 0.5 && out[1] == 1 && out[2] == 2 && out[3] == 3 && out[4] == 5);
	CHECK_EQ_INT(ph_multiset_update(NULL, 0, NULL, 0, NULL, 0, out), 0);
}
