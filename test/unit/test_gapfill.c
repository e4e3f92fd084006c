/*
 * test_gapfill.c
 *		Unit tests of the gap filler search (src/core/gapfill.c): fixed
 *		examples, and the exact top k against brute force on thousands of
 *		random small catalogs.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gapfill.h"
#include "unit.h"
#include "ups_host.h"

/* xorshift, so that failures reproduce */
static uint64_t rng_state = 88172645463325252ULL;

static uint64_t
rnd(void)
{
	return unit_xorshift(&rng_state);
}

typedef struct Cat
{
	size_t		n;
	int64_t		price[64];
	int64_t		id[64];
	uint8_t		flags[64];
	double		rel[64];
	/* substitutes, when with_substitutes: see GapRequest */
	bool		with_substitutes;
	int32_t		group[64];
	int32_t		category[64];
	uint8_t		substitutes[5 * 5];
	/* pairs of ids never offered together: see GapRequest */
	int64_t		never_a[4];
	int64_t		never_b[4];
	int			nnever;
} Cat;

#define CAT_CATEGORIES 4

/* sorts the catalog by (price, id) */
static void
sort_cat(Cat *c)
{
	size_t		i,
				j;

	for (i = 1; i < c->n; i++)
		for (j = i; j > 0 && (c->price[j - 1] > c->price[j] ||
							  (c->price[j - 1] == c->price[j] && c->id[j - 1] > c->id[j])); j--)
		{
			int64_t		tp = c->price[j],
						ti = c->id[j];
			uint8_t		tf = c->flags[j];
			double		tr = c->rel[j];
			int32_t		tg = c->group[j],
						tc = c->category[j];

			c->price[j] = c->price[j - 1];
			c->id[j] = c->id[j - 1];
			c->flags[j] = c->flags[j - 1];
			c->rel[j] = c->rel[j - 1];
			c->group[j] = c->group[j - 1];
			c->category[j] = c->category[j - 1];
			c->price[j - 1] = tp;
			c->id[j - 1] = ti;
			c->flags[j - 1] = tf;
			c->rel[j - 1] = tr;
			c->group[j - 1] = tg;
			c->category[j - 1] = tc;
		}
}

static int
run(const Cat *c, int64_t gap, int k, int max_items, GapOffer *out, bool *complete)
{
	GapCatalog	cat = {c->n, c->price, c->id};
	GapRequest	req = {.gap = gap, .k = k, .max_items = max_items, .flags = c->flags, .relevance = c->rel,
					   .never_a = c->never_a, .never_b = c->never_b, .nnever = c->nnever};

	if (c->with_substitutes)
	{
		req.group = c->group;
		req.category = c->category;
		req.substitutes = c->substitutes;
		req.ncategories = CAT_CATEGORIES;
	}
	return gap_search(&cat, &req, out, complete);
}

/*
 * Whether two of the n candidates substitute each other, or are a pair never
 * offered together, checked plainly.
 */
static bool
brute_substitutes(const Cat *c, const size_t *idx, int n)
{
	for (int i = 0; i < n; i++)
		for (int j = 0; j < n; j++)
		{
			if (i != j && c->with_substitutes &&
				((c->group[idx[i]] != 0 && c->group[idx[i]] == c->group[idx[j]]) ||
				 (c->category[idx[i]] != 0 && c->category[idx[j]] != 0 &&
				  c->substitutes[c->category[idx[i]] * (CAT_CATEGORIES + 1) + c->category[idx[j]]])))
				return true;
			for (int r = 0; r < c->nnever; r++)
				if (i != j && c->id[idx[i]] == c->never_a[r] && c->id[idx[j]] == c->never_b[r])
					return true;
		}
	return false;
}

/* Brute force: every combination of distinct eligible candidates. */
static void
brute_add(const Cat *c, int64_t gap, const size_t *idx, int n, GapOffer *all, int *nall)
{
	GapOffer	o;
	double		relsum = 0.0;
	int			i,
				j;

	memset(&o, 0, sizeof(o));
	o.n = n;
	o.added = 0;
	for (i = 0; i < n; i++)
	{
		o.added += c->price[idx[i]];
		o.ids[i] = c->id[idx[i]];
		if (c->flags[idx[i]] == GAP_RELEVANT)
			relsum += c->rel[idx[i]];	/* idx ascending: same order as the search */
	}
	if (o.added < gap || brute_substitutes(c, idx, n))
		return;
	for (i = 1; i < n; i++)
		for (j = i; j > 0 && o.ids[j - 1] > o.ids[j]; j--)
		{
			int64_t		t = o.ids[j];

			o.ids[j] = o.ids[j - 1];
			o.ids[j - 1] = t;
		}
	o.overshoot = o.added - gap;
	o.relevance = relsum / n;
	o.score = gap_score(gap, o.added, n, relsum);
	all[(*nall)++] = o;
}

static int
brute(const Cat *c, int64_t gap, int k, int max_items, GapOffer *out)
{
	static GapOffer all[64 * 64 * 64];
	int			nall = 0;
	size_t		idx[3];
	int			i,
				j,
				m;

	for (idx[0] = 0; idx[0] < c->n; idx[0]++)
	{
		if (c->flags[idx[0]] == GAP_SKIP)
			continue;
		brute_add(c, gap, idx, 1, all, &nall);
		if (max_items < 2)
			continue;
		for (idx[1] = idx[0] + 1; idx[1] < c->n; idx[1]++)
		{
			if (c->flags[idx[1]] == GAP_SKIP)
				continue;
			brute_add(c, gap, idx, 2, all, &nall);
			if (max_items < 3)
				continue;
			for (idx[2] = idx[1] + 1; idx[2] < c->n; idx[2]++)
				if (c->flags[idx[2]] != GAP_SKIP)
					brute_add(c, gap, idx, 3, all, &nall);
		}
	}
	/* selection of the k best */
	m = 0;
	for (i = 0; i < k && i < nall; i++)
	{
		int			best = i;

		for (j = i + 1; j < nall; j++)
			if (gap_offer_better(&all[j], &all[best]))
				best = j;
		out[i] = all[best];
		all[best] = all[i];
		m++;
	}
	return m;
}

static bool
same_offer(const GapOffer *a, const GapOffer *b)
{
	return a->n == b->n && a->added == b->added && a->overshoot == b->overshoot &&
		a->score == b->score && memcmp(a->ids, b->ids, a->n * sizeof(int64_t)) == 0;
}

UNIT_TEST(gapfill_single_least_overshoot)
{
	/* prices 5.00, 12.00, 19.99, 20.00, 20.00, 35.00; gap 18.50 */
	Cat			c = {.n = 6, .price = {500, 1200, 1999, 2000, 2000, 3500}, .id = {1, 2, 3, 5, 4, 6}};
	GapOffer	out[3];
	bool		complete;
	int			n;

	sort_cat(&c);
	n = run(&c, 1850, 3, 1, out, &complete);
	CHECK_EQ_INT(n, 3);
	CHECK(complete);
	CHECK_EQ_INT(out[0].ids[0], 3);
	CHECK_EQ_INT(out[0].overshoot, 149);
	/* equal price: the smaller id first */
	CHECK_EQ_INT(out[1].ids[0], 4);
	CHECK_EQ_INT(out[2].ids[0], 5);
	CHECK_NEAR(out[0].score, 1850.0 / 1999.0, 1e-15);
}

UNIT_TEST(gapfill_pair_when_no_single_fits_well)
{
	/* gap 30.00: the single 50.00 overshoots by 20, the pair 12 + 18 hits it */
	Cat			c = {.n = 4, .price = {1200, 1800, 5000, 700}, .id = {10, 11, 12, 13}};
	GapOffer	out[2];
	bool		complete;
	int			n;

	sort_cat(&c);
	n = run(&c, 3000, 2, 2, out, &complete);
	CHECK_EQ_INT(n, 2);
	CHECK_EQ_INT(out[0].n, 2);
	CHECK_EQ_INT(out[0].ids[0], 10);
	CHECK_EQ_INT(out[0].ids[1], 11);
	CHECK_EQ_INT(out[0].overshoot, 0);
	CHECK_NEAR(out[0].score, 0.8, 1e-15);
	/* next: 7 + 50 or 12 + 50 are worse than the single 50 (0.6 vs 0.8*30/57) */
	CHECK_EQ_INT(out[1].n, 1);
	CHECK_EQ_INT(out[1].ids[0], 12);
}

UNIT_TEST(gapfill_relevance_beats_small_overshoot)
{
	/* gap 10.00: plain 10.00 (score 1) vs relevant 11.00 with relevance 0.5 */
	Cat			c = {.n = 2, .price = {1000, 1100}, .id = {1, 2}, .flags = {GAP_PLAIN, GAP_RELEVANT}, .rel = {0, 0.5}};
	GapOffer	out[2];
	bool		complete;

	sort_cat(&c);
	CHECK_EQ_INT(run(&c, 1000, 2, 1, out, &complete), 2);
	CHECK_EQ_INT(out[0].ids[0], 2);
	CHECK_NEAR(out[0].relevance, 0.5, 1e-15);
	CHECK_NEAR(out[0].score, 1000.0 / 1100.0 * 1.5, 1e-12);
	CHECK_EQ_INT(out[1].ids[0], 1);
}

UNIT_TEST(gapfill_skipped_and_unreachable)
{
	Cat			c = {.n = 3, .price = {1000, 2000, 3000}, .id = {1, 2, 3}, .flags = {GAP_PLAIN, GAP_SKIP, GAP_PLAIN}};
	GapOffer	out[5];
	bool		complete;
	int			n;

	sort_cat(&c);
	/* 20.00 is skipped: 30.00 alone, then 10 + 30 */
	n = run(&c, 2000, 5, 2, out, &complete);
	CHECK_EQ_INT(n, 2);
	CHECK_EQ_INT(out[0].ids[0], 3);
	CHECK_EQ_INT(out[1].n, 2);
	/* nothing reaches 50.00 with two items */
	CHECK_EQ_INT(run(&c, 5000, 5, 2, out, &complete), 0);
	/* k = 0 and gap <= 0: nothing */
	CHECK_EQ_INT(run(&c, 1000, 0, 2, out, &complete), 0);
	CHECK_EQ_INT(run(&c, 0, 5, 2, out, &complete), 0);
}

UNIT_TEST(gapfill_budget_reports_incomplete)
{
	Cat			c;
	GapCatalog	cat;
	GapRequest	req;
	GapOffer	out[1];
	bool		complete;
	size_t		i;

	memset(&c, 0, sizeof(c));
	c.n = 60;
	for (i = 0; i < c.n; i++)
	{
		c.price[i] = 100 + (int64_t) i * 1000;
		c.id[i] = (int64_t) i + 1;
	}
	cat = (GapCatalog) {c.n, c.price, c.id};
	/* above every pair (max 59100 + 58100): only triples close it */
	req = (GapRequest) {.gap = 150050, .k = 1, .max_items = 3, .flags = c.flags, .relevance = c.rel, .step_budget = 10};
	gap_search(&cat, &req, out, &complete);
	CHECK(!complete);
	req.step_budget = 0;
	CHECK_EQ_INT(gap_search(&cat, &req, out, &complete), 1);
	CHECK(complete);
	/* 100 * 3 + 1000 * 150 = 150300: the least overshoot is 250 */
	CHECK_EQ_INT(out[0].n, 3);
	CHECK_EQ_INT(out[0].overshoot, 250);
}

UNIT_TEST(gapfill_matches_brute_force)
{
	static GapOffer got[16],
				want[16];
	int			trial;
	int			mismatches = 0;

	for (trial = 0; trial < 6000; trial++)
	{
		Cat			c;
		size_t		i;
		int			k = 1 + (int) (rnd() % 12);
		int			max_items = 1 + (int) (rnd() % 3);
		int			spread = (trial % 3 == 0) ? 5 : (trial % 3 == 1) ? 50 : 3000;
		int64_t		gap;
		int			ng,
					nw,
					j;
		bool		complete;

		memset(&c, 0, sizeof(c));
		c.n = 1 + rnd() % 28;
		for (i = 0; i < c.n; i++)
		{
			uint64_t	f = rnd() % 10;

			c.price[i] = 100 + (int64_t) (rnd() % spread) * 100 + (int64_t) (rnd() % 3) * 25;
			c.id[i] = (int64_t) (rnd() % 1000) * 64 + (int64_t) i;	/* distinct */
			c.flags[i] = f < 6 ? GAP_PLAIN : f < 8 ? GAP_RELEVANT : GAP_SKIP;
			/* few distinct relevances, so that score ties happen */
			c.rel[i] = c.flags[i] == GAP_RELEVANT ? (double) (1 + rnd() % 4) / 8.0 : 0.0;
			c.group[i] = (int32_t) (rnd() % 4);
			c.category[i] = (int32_t) (rnd() % (CAT_CATEGORIES + 1));
		}
		/* two trials in three with substitutes: groups, and a symmetric relation of categories */
		c.with_substitutes = trial % 3 != 2;
		for (int a = 1; a <= CAT_CATEGORIES; a++)
			for (int b = a; b <= CAT_CATEGORIES; b++)
				c.substitutes[a * (CAT_CATEGORIES + 1) + b] = c.substitutes[b * (CAT_CATEGORIES + 1) + a] =
					rnd() % 3 == 0;
		/* pairs never offered together, in one trial of two */
		c.nnever = trial % 2 ? (int) (rnd() % 5) : 0;
		for (j = 0; j < c.nnever; j++)
		{
			c.never_a[j] = c.id[rnd() % c.n];
			c.never_b[j] = c.id[rnd() % c.n];
		}
		sort_cat(&c);
		gap = 1 + (int64_t) (rnd() % (uint64_t) (spread * 100 * 2 + 500));
		/* half the trials with the table of next PLAIN indexes, half with skip loops */
		gap_skip_table_min = (trial % 2) ? 0 : 4096;
		ng = run(&c, gap, k, max_items, got, &complete);
		gap_skip_table_min = 4096;
		nw = brute(&c, gap, k, max_items, want);
		CHECK(complete);
		if (ng != nw)
		{
			mismatches++;
			continue;
		}
		for (j = 0; j < ng; j++)
			if (!same_offer(&got[j], &want[j]))
			{
				mismatches++;
				break;
			}
	}
	CHECK_EQ_INT(mismatches, 0);
}

UNIT_TEST(gapfill_large_catalog_pairs_exact_hit)
{
	/* 100k prices 1.00 .. 1000.99: some pair always hits a gap exactly */
	size_t		n = 100000,
				i;
	int64_t    *price = ups_alloc(n * sizeof(int64_t));
	int64_t    *id = ups_alloc(n * sizeof(int64_t));
	uint8_t    *flags = ups_alloc0(n);
	double	   *rel = ups_alloc0(n * sizeof(double));
	GapCatalog	cat;
	GapRequest	req;
	GapOffer	out[5];
	bool		complete;
	int			m;

	for (i = 0; i < n; i++)
	{
		price[i] = 100 + (int64_t) (i % 100000);
		id[i] = (int64_t) i + 1;
	}
	cat = (GapCatalog) {n, price, id};
	/* a gap above every single price: only pairs */
	req = (GapRequest) {.gap = 150001, .k = 5, .max_items = 2, .flags = flags, .relevance = rel};
	m = gap_search(&cat, &req, out, &complete);
	CHECK_EQ_INT(m, 5);
	CHECK_EQ_INT(out[0].n, 2);
	CHECK_EQ_INT(out[0].overshoot, 0);
	CHECK_EQ_INT(out[4].overshoot, 0);
	/* lexicographically smallest exact pair: the cheapest first item that has a partner */
	CHECK_EQ_INT(out[0].ids[0], 150001 - 100099 - 100 + 1);
	ups_free(price);
	ups_free(id);
	ups_free(flags);
	ups_free(rel);
}

UNIT_TEST(gapfill_never_two_substitutes)
{
	/* two phones (one category, whose products substitute each other) and a case */
	Cat			c = {.n = 3, .price = {60000, 50000, 5000}, .id = {1, 2, 3},
					 .group = {1, 2, 3}, .category = {1, 1, 2}};
	GapOffer	out[4];
	bool		complete;
	int			n;

	sort_cat(&c);
	n = run(&c, 100000, 4, 3, out, &complete);
	CHECK_EQ_INT(n, 2);		/* both phones: 110000, and with the case: 115000 */
	CHECK_EQ_INT(out[0].n, 2);
	c.with_substitutes = true;
	c.substitutes[1 * (CAT_CATEGORIES + 1) + 1] = 1;
	n = run(&c, 100000, 4, 3, out, &complete);
	CHECK_EQ_INT(n, 0);
	/* of one variant group (a size of the same phone), categories apart */
	/* (sorted by price: the case, then phone 2, then phone 1) */
	c.substitutes[1 * (CAT_CATEGORIES + 1) + 1] = 0;
	c.group[2] = c.group[1];
	n = run(&c, 100000, 4, 3, out, &complete);
	CHECK_EQ_INT(n, 0);
	c.group[2] = 7;
	n = run(&c, 100000, 4, 3, out, &complete);
	CHECK_EQ_INT(n, 2);
	/* the merchant's "never the case next to phone 2": only both phones */
	c.never_a[0] = 3;
	c.never_b[0] = 2;
	c.nnever = 1;
	n = run(&c, 100000, 4, 3, out, &complete);
	CHECK_EQ_INT(n, 1);
	CHECK_EQ_INT(out[0].n, 2);
	CHECK_EQ_INT(out[0].ids[0], 1);
	CHECK_EQ_INT(out[0].ids[1], 2);
}
