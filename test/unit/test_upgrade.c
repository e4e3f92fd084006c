/*
 * test_upgrade.c
 *		Unit tests of the upgrade/downsell ranking core (src/core/upgrade.c).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "upgrade.h"
#include "ups_host.h"

static const UpgParams default_params = {2.0, 20, 200, 500};

/*
 * Coffee (category 0): 1 (9.00, group 0), 2 (12.00, group 0), 3 (15.00,
 * group 0), 4 (30.00, group 0: too dear), 5 (10.00, no group).  Tea
 * (category 1): 6 (11.00, group 1).  7 (13.00, group 0 but category 1: never
 * offered for coffee).
 */
static const UpgProduct catalog[] = {
	{1, 0, 0, 9.00}, {2, 0, 0, 12.00}, {3, 0, 0, 15.00}, {4, 0, 0, 30.00},
	{5, -1, 0, 10.00}, {6, 1, 1, 11.00}, {7, 0, 1, 13.00}
};
#define NCAT (sizeof(catalog) / sizeof(catalog[0]))

/* The candidates of product id in one direction, in rank order. */
static size_t
candidates_of(const UpgResult *r, int64_t id, bool upgrade, int64_t *ids, size_t max)
{
	size_t		i,
				n = 0;

	for (i = 0; i < r->ncands; i++)
		if (catalog[r->cands[i].product].id == id && r->cands[i].upgrade == upgrade && n < max)
			ids[n++] = catalog[r->cands[i].candidate].id;
	return n;
}

static const UpgCandidate *
find(const UpgResult *r, int64_t id, int64_t cand)
{
	size_t		i;

	for (i = 0; i < r->ncands; i++)
		if (catalog[r->cands[i].product].id == id && catalog[r->cands[i].candidate].id == cand)
			return &r->cands[i];
	return NULL;
}

UNIT_TEST(upg_rules_without_history)
{
	UpgResult	r;
	int64_t		ids[10];
	size_t		n;

	CHECK(upg_compute(catalog, NCAT, NULL, 0, &default_params, &r) == NULL);
	/* 1 at 9.00: group first (2, 3 by closeness), then category (5); not 4 (> 18), not 6, not 7 */
	n = candidates_of(&r, 1, true, ids, 10);
	CHECK_EQ_INT(n, 3);
	CHECK_EQ_INT(ids[0], 2);
	CHECK_EQ_INT(ids[1], 3);
	CHECK_EQ_INT(ids[2], 5);
	/* 3 at 15.00: up to 30.00 inclusive; down to 7.50 */
	n = candidates_of(&r, 3, true, ids, 10);
	CHECK_EQ_INT(n, 1);
	CHECK_EQ_INT(ids[0], 4);
	n = candidates_of(&r, 3, false, ids, 10);
	CHECK_EQ_INT(n, 3);
	CHECK_EQ_INT(ids[0], 2);	/* same group, closest */
	CHECK_EQ_INT(ids[1], 1);
	CHECK_EQ_INT(ids[2], 5);	/* category only */
	/* the cheapest has no downsell, the dearest no upgrade */
	CHECK_EQ_INT(candidates_of(&r, 1, false, ids, 10), 0);
	CHECK_EQ_INT(candidates_of(&r, 4, true, ids, 10), 0);
	/* tea: 7 is of the tea category (another group) */
	CHECK_EQ_INT(candidates_of(&r, 6, true, ids, 10), 1);
	CHECK_EQ_INT(ids[0], 7);
	CHECK(!find(&r, 6, 7)->same_group);
	CHECK_EQ_INT(candidates_of(&r, 6, false, ids, 10), 0);
	/* 7 is in group 0 but category 1: never crosses categories */
	CHECK(find(&r, 7, 3) == NULL);
	CHECK(find(&r, 2, 7) == NULL);
	CHECK_NEAR(find(&r, 1, 2)->closeness, 0.75, 1e-12);
	CHECK_NEAR(find(&r, 1, 2)->score, 0.2 * 0.75, 1e-12);
	upg_result_free(&r);
}

UNIT_TEST(upg_paths_and_popularity)
{
	/*
	 * Customer 100 bought 1 then 3; customer 101 bought 1 then 3; customer
	 * 102 bought 1 and 2 at the same time (no path); customer 103 bought 3
	 * then 1 (path 3 -> 1 only); a line of an unknown product 99.
	 */
	UpgLine		lines[] = {
		{100, 3, 20, true, false}, {100, 1, 10, true, false}, {101, 1, 5, true, false}, {101, 3, 6, true, false},
		{102, 1, 7, true, false}, {102, 2, 7, true, false}, {103, 3, 1, true, false}, {103, 1, 2, true, false},
		{104, 99, 1, true, false}, {105, 2, 0, false, false}
	};
	UpgResult	r;
	int64_t		ids[10];
	const UpgCandidate *c;

	CHECK(upg_compute(catalog, NCAT, lines, sizeof(lines) / sizeof(lines[0]), &default_params, &r) == NULL);
	CHECK_EQ_INT(r.lines_unknown, 1);
	CHECK_EQ_INT(r.lines_used, 9);
	CHECK_EQ_INT(r.buyers[0], 4);	/* product 1: customers 100..103 */
	CHECK_EQ_INT(r.buyers[1], 2);	/* product 2: 102, 105 */
	CHECK_EQ_INT(r.buyers[2], 3);	/* product 3: 100, 101, 103 */
	c = find(&r, 1, 3);
	CHECK(c != NULL);
	CHECK_EQ_INT(c->paths, 2);
	CHECK_NEAR(c->path_rate, 0.5, 1e-12);
	/* group 0 buyers: 100..103 and 105 = 5 */
	CHECK_NEAR(c->popularity, 3.0 / 5.0, 1e-12);
	CHECK_NEAR(c->score, 0.5 * 0.5 + 0.3 * 0.6 + 0.2 * 0.6, 1e-12);
	CHECK_EQ_INT(find(&r, 1, 2)->paths, 0);
	CHECK_EQ_INT(find(&r, 3, 1)->paths, 1);
	/* evidence beats the smaller step: 3 now ranks before 2 */
	CHECK_EQ_INT(candidates_of(&r, 1, true, ids, 10), 3);
	CHECK_EQ_INT(ids[0], 3);
	CHECK_EQ_INT(ids[1], 2);
	upg_result_free(&r);
}

UNIT_TEST(upg_guest_orders_apart_from_customers)
{
	/*
	 * Customer 7 bought 1, then a guest's order whose key is 7 bought 3 and
	 * 2: three buyers in all, and no path from 1 (the guest is not the
	 * customer); the guest's order bought 3 before 2, a path 3 -> 2.
	 */
	UpgLine		lines[] = {
		{7, 1, 10, true, false}, {7, 3, 20, true, true}, {7, 2, 30, true, true}
	};
	UpgResult	r;

	CHECK(upg_compute(catalog, NCAT, lines, 3, &default_params, &r) == NULL);
	CHECK_EQ_INT(r.buyers[0], 1);
	CHECK_EQ_INT(r.buyers[1], 1);
	CHECK_EQ_INT(r.buyers[2], 1);
	CHECK_EQ_INT(find(&r, 1, 3)->paths, 0);
	CHECK_EQ_INT(find(&r, 1, 2)->paths, 0);
	CHECK_EQ_INT(find(&r, 3, 2)->paths, 1);
	upg_result_free(&r);
	/* as the customer's own: paths from 1 to both */
	lines[1].guest = lines[2].guest = false;
	CHECK(upg_compute(catalog, NCAT, lines, 3, &default_params, &r) == NULL);
	CHECK_EQ_INT(find(&r, 1, 3)->paths, 1);
	CHECK_EQ_INT(find(&r, 1, 2)->paths, 1);
	upg_result_free(&r);
}

UNIT_TEST(upg_limits_and_window)
{
	UpgParams	params = default_params;
	UpgResult	r;
	int64_t		ids[10];

	params.per_product = 1;
	CHECK(upg_compute(catalog, NCAT, NULL, 0, &params, &r) == NULL);
	CHECK_EQ_INT(candidates_of(&r, 1, true, ids, 10), 1);
	CHECK_EQ_INT(ids[0], 2);
	upg_result_free(&r);

	params = default_params;
	params.window = 1;			/* one neighbour per pool each way */
	CHECK(upg_compute(catalog, NCAT, NULL, 0, &params, &r) == NULL);
	CHECK_EQ_INT(candidates_of(&r, 1, true, ids, 10), 2);	/* 2 (group), 5 (category) */
	upg_result_free(&r);

	params = default_params;
	params.max_ratio = 1.2;		/* 9.00 -> at most 10.80 */
	CHECK(upg_compute(catalog, NCAT, NULL, 0, &params, &r) == NULL);
	CHECK_EQ_INT(candidates_of(&r, 1, true, ids, 10), 1);
	CHECK_EQ_INT(ids[0], 5);
	upg_result_free(&r);
}

UNIT_TEST(upg_bad_input)
{
	UpgProduct	dup[] = {{1, 0, 0, 1.0}, {1, 0, 0, 2.0}};
	UpgProduct	zero[] = {{1, 0, 0, 0.0}};
	UpgParams	params = default_params;
	UpgResult	r;

	CHECK(upg_compute(dup, 2, NULL, 0, &default_params, &r) != NULL);
	CHECK(upg_compute(zero, 1, NULL, 0, &default_params, &r) != NULL);
	params.max_ratio = 1.0;
	CHECK(upg_compute(catalog, NCAT, NULL, 0, &params, &r) != NULL);
	params = default_params;
	params.per_product = -1;
	CHECK(upg_compute(catalog, NCAT, NULL, 0, &params, &r) != NULL);
	/* empty catalog, lines of unknown products */
	{
		UpgLine		lines[] = {{1, 5, 0, true, false}};

		CHECK(upg_compute(NULL, 0, lines, 1, &default_params, &r) == NULL);
		CHECK_EQ_INT(r.ncands, 0);
		CHECK_EQ_INT(r.lines_unknown, 1);
		upg_result_free(&r);
	}
}

UNIT_TEST(upg_big_customers_give_no_paths)
{
	UpgParams	params = default_params;
	UpgLine		lines[] = {{100, 1, 1, true, false}, {100, 3, 2, true, false}};
	UpgResult	r;

	params.max_customer_products = 1;
	CHECK(upg_compute(catalog, NCAT, lines, 2, &params, &r) == NULL);
	CHECK_EQ_INT(r.counts.big_customers, 1);
	CHECK_EQ_INT(find(&r, 1, 3)->paths, 0);
	CHECK_EQ_INT(r.buyers[0], 1);
	upg_result_free(&r);
}

/* A larger random catalog: every candidate obeys the rules. */
UNIT_TEST(upg_random_catalog_invariants)
{
	enum
	{
		N = 2000, L = 20000
	};
	UpgProduct *p = ups_alloc(N * sizeof(UpgProduct));
	UpgLine    *lines = ups_alloc(L * sizeof(UpgLine));
	UpgResult	r;
	size_t		i;
	unsigned int seed = 12345;
	int			bad = 0;

	for (i = 0; i < N; i++)
	{
		seed = seed * 1103515245u + 12345u;
		p[i].id = (int64_t) (N - i) * 7;
		p[i].category = (int32_t) ((seed >> 8) % 20);
		p[i].group = (seed >> 16) % 3 == 0 ? -1 : (int32_t) ((seed >> 4) % 200);
		p[i].price = 1.0 + (double) ((seed >> 12) % 10000) / 100.0;
	}
	for (i = 0; i < L; i++)
	{
		seed = seed * 1103515245u + 12345u;
		lines[i].customer = (seed >> 8) % 1000;
		lines[i].product = p[(seed >> 3) % N].id;
		lines[i].time = (seed >> 14) % 365;
		lines[i].has_time = true;
		lines[i].guest = false;
	}
	CHECK(upg_compute(p, N, lines, L, &default_params, &r) == NULL);
	CHECK(r.ncands > 0);
	CHECK(r.counts.npairs > 0);
	for (i = 0; i < r.ncands; i++)
	{
		const UpgCandidate *c = &r.cands[i];
		const UpgProduct *a = &p[c->product],
				   *b = &p[c->candidate];
		bool		pool = (a->category == b->category) ||
			(a->group >= 0 && a->group == b->group && (a->category < 0 || b->category < 0));

		if (!pool || c->product == c->candidate)
			bad++;
		if (c->upgrade && !(b->price > a->price && b->price <= a->price * 2.0))
			bad++;
		if (!c->upgrade && !(b->price < a->price && b->price * 2.0 >= a->price))
			bad++;
		if (c->score < 0 || c->score > 1)
			bad++;
		if (i > 0 && r.cands[i - 1].product == c->product && r.cands[i - 1].upgrade == c->upgrade &&
			r.cands[i - 1].same_group == c->same_group && r.cands[i - 1].score < c->score)
			bad++;
	}
	CHECK_EQ_INT(bad, 0);
	upg_result_free(&r);
	ups_free(p);
	ups_free(lines);
}

/* Candidates, counts and buyers that differ between two results of N products. */
static size_t
result_differences(const UpgResult *a, const UpgResult *b, size_t n)
{
	size_t		i,
				d = 0;

	d += a->ncands != b->ncands;
	d += a->lines_used != b->lines_used;
	d += a->lines_unknown != b->lines_unknown;
	d += a->counts.npairs != b->counts.npairs;
	d += a->counts.big_customers != b->counts.big_customers;
	for (i = 0; i < n; i++)
		d += a->buyers[i] != b->buyers[i];
	for (i = 0; i < a->ncands && i < b->ncands; i++)
		d += a->cands[i].product != b->cands[i].product || a->cands[i].candidate != b->cands[i].candidate ||
			a->cands[i].paths != b->cands[i].paths || a->cands[i].score != b->cands[i].score;
	return d;
}

/*
 * The order of the lines does not matter (the same lines backwards give the
 * same result), nor holding a third of the customers at a time (the second
 * third also dropped once and held again, as a caller does when a subset
 * outgrows its memory).  upg_paths_match_brute_force checks the counts
 * themselves.
 */
UNIT_TEST(upg_held_lines_in_parts)
{
	enum
	{
		N = 500, L = 8000
	};
	UpgProduct *p = ups_alloc(N * sizeof(UpgProduct));
	UpgLine    *lines = ups_alloc(L * sizeof(UpgLine));
	UpgLine    *copy = ups_alloc(L * sizeof(UpgLine));
	UpgResult	a,
				b;
	UpgStream  *s;
	size_t		i,
				j;
	unsigned int seed = 777;

	for (i = 0; i < N; i++)
	{
		seed = seed * 1103515245u + 12345u;
		p[i].id = (int64_t) i * 3 + 1;
		p[i].category = (int32_t) ((seed >> 8) % 8);
		p[i].group = (seed >> 16) % 3 == 0 ? -1 : (int32_t) ((seed >> 4) % 40);
		p[i].price = 1.0 + (double) ((seed >> 12) % 500) / 10.0;
	}
	for (i = 0; i < L; i++)
	{
		seed = seed * 1103515245u + 12345u;
		lines[i].customer = (seed >> 8) % 400;
		lines[i].product = (seed >> 20) % 50 == 0 ? -5 : p[(seed >> 3) % N].id;
		lines[i].time = (seed >> 14) % 100;
		lines[i].has_time = (seed >> 6) % 17 != 0;
		/* guests' orders whose keys are customers' ids too */
		lines[i].guest = (seed >> 24) % 9 == 0;
	}
	CHECK(upg_compute(p, N, lines, L, &default_params, &a) == NULL);
	CHECK(a.ncands > 0 && a.counts.npairs > 0 && a.lines_unknown > 0);
	for (i = 0; i < L; i++)
		copy[i] = lines[L - 1 - i];
	CHECK(upg_compute(p, N, copy, L, &default_params, &b) == NULL);
	CHECK_EQ_INT(result_differences(&a, &b, N), 0);
	upg_result_free(&b);

	/*
	 * Each customer's lines one after the other, as an order's lines come:
	 * the stream interns a customer once per run of lines (and the lines
	 * span blocks of 4,096).
	 */
	j = 0;
	for (int64_t c = 0; c < 400; c++)
		for (i = 0; i < L; i++)
			if (lines[i].customer == c)
				copy[j++] = lines[i];
	CHECK_EQ_INT((int64_t) j, L);
	CHECK(upg_compute(p, N, copy, L, &default_params, &b) == NULL);
	CHECK_EQ_INT(result_differences(&a, &b, N), 0);
	upg_result_free(&b);

	CHECK(upg_stream_begin(p, N, &default_params, &s) == NULL);
	for (j = 0; j < 3; j++)
	{
		size_t		held = 0;

		for (i = 0; i < L; i++)
			if ((size_t) lines[i].customer % 3 == j)
				held = upg_stream_hold(s, lines[i].customer, lines[i].guest, lines[i].product,
									   lines[i].has_time, lines[i].time);
		CHECK(held > 0);
		if (j == 1)
		{
			upg_stream_drop_held(s);
			for (i = 0; i < L; i++)
				if ((size_t) lines[i].customer % 3 == j)
					upg_stream_hold(s, lines[i].customer, lines[i].guest, lines[i].product,
									lines[i].has_time, lines[i].time);
		}
		upg_stream_group(s);
	}
	upg_stream_finish(s, &b);
	CHECK_EQ_INT(result_differences(&a, &b, N), 0);

	upg_result_free(&a);
	upg_result_free(&b);
	ups_free(p);
	ups_free(lines);
	ups_free(copy);
}

/*
 * The path counts against a brute force over every ordered pair of every
 * customer's products: a catalog where many products lack a category or a
 * variant group, some share a price, customers of a few to over a hundred
 * products.  The pairs out of each other's price range (or at the same
 * price) are many, and never counted.
 */
UNIT_TEST(upg_paths_match_brute_force)
{
	enum
	{
		N = 300, L = 9000, C = 120
	};
	UpgProduct *p = ups_alloc(N * sizeof(UpgProduct));
	UpgLine    *lines = ups_alloc(L * sizeof(UpgLine));
	int64_t    *first = ups_alloc(N * sizeof(int64_t));
	int64_t    *last = ups_alloc(N * sizeof(int64_t));
	bool	   *timed = ups_alloc(N * sizeof(bool));
	int32_t    *ref = ups_alloc0((size_t) N * N * sizeof(int32_t));
	UpgResult	r;
	size_t		i,
				a,
				b;
	int64_t		pairs = 0,
				out_of_reach = 0;
	int			bad = 0;
	uint64_t	seed = 99;

	for (i = 0; i < N; i++)
	{
		uint64_t	x = unit_xorshift(&seed);

		p[i].id = (int64_t) i * 5 + 3;
		p[i].category = x % 4 == 0 ? -1 : (int32_t) ((x >> 8) % 6);
		p[i].group = (x >> 16) % 3 == 0 ? -1 : (int32_t) ((x >> 20) % 30);
		p[i].price = 1.0 + (double) ((x >> 28) % 900) / 10.0;
	}
	for (i = 0; i < L; i++)
	{
		uint64_t	x = unit_xorshift(&seed);

		/* customer c buys from about (c + 1) products */
		lines[i].customer = (int64_t) ((x >> 4) % C);
		lines[i].product = (x >> 40) % 97 == 0 ? -8
			: p[((x >> 12) % (size_t) (lines[i].customer + 2) * 7 + (x >> 50) % 3) % N].id;
		lines[i].time = (int64_t) ((x >> 24) % 50);
		lines[i].has_time = (x >> 36) % 13 != 0;
		lines[i].guest = false;
	}

	/* the brute force, customer by customer */
	for (int64_t c = 0; c < C; c++)
	{
		for (i = 0; i < N; i++)
			timed[i] = false;
		for (i = 0; i < L; i++)
		{
			int64_t		id = lines[i].product;

			if (lines[i].customer != c || id < 0 || !lines[i].has_time)
				continue;
			a = (size_t) (id - 3) / 5;
			if (!timed[a] || lines[i].time < first[a])
				first[a] = lines[i].time;
			if (!timed[a] || lines[i].time > last[a])
				last[a] = lines[i].time;
			timed[a] = true;
		}
		for (a = 0; a < N; a++)
			for (b = 0; b < N; b++)
			{
				bool		pool = (p[a].category >= 0 && p[a].category == p[b].category) ||
					(p[a].group >= 0 && p[a].group == p[b].group &&
					 (p[a].category < 0 || p[b].category < 0));

				/* b's price within a's range, as consider() bounds it */
				double		ratio = default_params.max_ratio;
				bool		reach = p[b].price > p[a].price ? !(p[b].price > p[a].price * ratio)
					: p[b].price < p[a].price && !(p[b].price * ratio < p[a].price);

				if (a != b && timed[a] && timed[b] && pool && first[a] < last[b])
				{
					if (reach)
						ref[a * N + b]++;
					else if (ref[a * N + b] == 0)
					{
						/* a path the model never scores: not counted */
						ref[a * N + b] = -1;
					}
				}
			}
	}
	for (i = 0; i < (size_t) N * N; i++)
	{
		pairs += ref[i] > 0;
		out_of_reach += ref[i] < 0;
	}

	CHECK(upg_compute(p, N, lines, L, &default_params, &r) == NULL);
	CHECK(pairs > 1000);
	CHECK(out_of_reach > 1000);
	CHECK_EQ_INT(r.counts.npairs, pairs);
	CHECK(r.ncands > 0);
	for (i = 0; i < r.ncands; i++)
		if (r.cands[i].paths != ref[r.cands[i].product * N + r.cands[i].candidate])
			bad++;
	CHECK_EQ_INT(bad, 0);
	upg_result_free(&r);
	ups_free(p);
	ups_free(lines);
	ups_free(first);
	ups_free(last);
	ups_free(timed);
	ups_free(ref);
}

/*
 * Folding in what changed (upg_stream_load, upg_stream_set_sign): a random
 * shop's counts of its old lines, kept in chunks, with the changed
 * customers' old purchases (earliest and latest time per product) taken out
 * and all their purchases now put in, with the new guests' orders, rank
 * exactly as every line counted again: the same candidates, evidence and
 * counts.
 */
typedef struct FoldShop
{
	UpgProduct *p;
	size_t		n;
	UpgLine    *lines;			/* old lines, then new ones */
	size_t		nold;
	size_t		nlines;
} FoldShop;

static void
fold_shop(FoldShop *shop, uint64_t seed, size_t n, size_t nold, size_t nnew, bool new_untimed)
{
	shop->n = n;
	shop->p = ups_alloc(n * sizeof(UpgProduct));
	for (size_t i = 0; i < n; i++)
	{
		uint64_t	x = unit_xorshift(&seed);

		shop->p[i].id = (int64_t) (i * 3 + 1);
		shop->p[i].category = x % 5 == 0 ? -1 : (int32_t) (x % 7);
		shop->p[i].group = (x >> 8) % 3 == 0 ? -1 : (int32_t) ((x >> 12) % 11);
		shop->p[i].price = 1.0 + (double) ((x >> 20) % 400) / 10.0;
	}
	shop->nold = nold;
	shop->nlines = nold + nnew;
	shop->lines = ups_alloc(shop->nlines * sizeof(UpgLine));
	for (size_t i = 0; i < shop->nlines; i++)
	{
		uint64_t	x = unit_xorshift(&seed);
		UpgLine    *l = &shop->lines[i];

		l->guest = x % 9 == 0;
		/* guests' orders: new ones are other orders than the old ones' */
		l->customer = l->guest ? (int64_t) ((x >> 4) % 50 + (i < nold ? 0 : 1000)) : (int64_t) ((x >> 4) % 120);
		/* a few products not in the catalog */
		l->product = (int64_t) ((x >> 12) % (n * 3 + 10));
		l->has_time = true;
		/* new lines mostly later, some earlier, some at the same time */
		l->time = (int64_t) ((x >> 24) % 1000) + (i < nold ? 0 : (int64_t) ((x >> 40) % 3) * 300);
		if (new_untimed && i == nold + nnew / 2)
		{
			l->guest = false;
			l->has_time = false;
			l->product = shop->p[x % n].id;
		}
	}
}

static void
fold_shop_free(FoldShop *shop)
{
	ups_free(shop->p);
	ups_free(shop->lines);
}

static void
hold_lines(UpgStream *s, const UpgLine *lines, size_t n)
{
	for (size_t i = 0; i < n; i++)
		upg_stream_hold(s, lines[i].customer, lines[i].guest, lines[i].product, lines[i].has_time,
						lines[i].time);
}

/* A customer's old purchases as two timed lines a product, held. */
static void
hold_history(UpgStream *s, const FoldShop *shop, int64_t customer)
{
	for (size_t i = 0; i < shop->nold; i++)
	{
		const UpgLine *l = &shop->lines[i];
		int64_t		first = l->time,
					last = l->time;
		bool		seen_before = false;

		if (l->guest || l->customer != customer || !l->has_time)
			continue;
		for (size_t j = 0; j < shop->nold; j++)
		{
			const UpgLine *o = &shop->lines[j];

			if (o->guest || o->customer != customer || o->product != l->product || !o->has_time)
				continue;
			if (j < i)
				seen_before = true;
			if (o->time < first)
				first = o->time;
			if (o->time > last)
				last = o->time;
		}
		if (seen_before)
			continue;
		upg_stream_hold(s, customer, false, l->product, true, first);
		upg_stream_hold(s, customer, false, l->product, true, last);
	}
}

static bool
changed_customer(const FoldShop *shop, int64_t customer)
{
	for (size_t i = shop->nold; i < shop->nlines; i++)
		if (!shop->lines[i].guest && shop->lines[i].customer == customer)
			return true;
	return false;
}

/* The kept counts in chunks of max_pairs, then loaded into a new stream. */
static UpgLoad
fold_load(UpgStream *s, const UpgCounts *c, size_t max_pairs)
{
	size_t		nchunks = upg_counts_nchunks(c, max_pairs);
	UpgLoad		load = UPG_LOAD_OK;

	for (size_t k = 0; k < nchunks && load == UPG_LOAD_OK; k++)
	{
		size_t		len = upg_counts_chunk_size(c, max_pairs, k);
		void	   *chunk = ups_alloc(len);

		upg_counts_write_chunk(c, max_pairs, k, chunk);
		load = upg_stream_load(s, k, chunk, len);
		ups_free(chunk);
	}
	return load;
}

static void
fold_changes(UpgStream *s, const FoldShop *shop)
{
	upg_stream_set_sign(s, -1);
	for (int64_t c = 0; c < 120; c++)
		if (changed_customer(shop, c))
			hold_history(s, shop, c);
	upg_stream_group(s);
	upg_stream_set_sign(s, 1);
	for (int64_t c = 0; c < 120; c++)
		if (changed_customer(shop, c))
			hold_history(s, shop, c);
	for (size_t i = shop->nold; i < shop->nlines; i++)
		upg_stream_hold(s, shop->lines[i].customer, shop->lines[i].guest, shop->lines[i].product,
						shop->lines[i].has_time, shop->lines[i].time);
	upg_stream_group(s);
}

static bool
same_counts(const UpgCounts *a, const UpgCounts *b)
{
	return a->catalog_hash == b->catalog_hash && a->n == b->n && a->ngroups == b->ngroups &&
		a->ncats == b->ncats && a->npairs == b->npairs && a->big_customers == b->big_customers &&
		a->untimed_customer_lines == b->untimed_customer_lines &&
		memcmp(a->buyers, b->buyers, sizeof(int64_t) * a->n) == 0 &&
		memcmp(a->group_buyers, b->group_buyers, sizeof(int64_t) * (size_t) a->ngroups) == 0 &&
		memcmp(a->cat_buyers, b->cat_buyers, sizeof(int64_t) * (size_t) a->ncats) == 0 &&
		memcmp(a->pair_keys, b->pair_keys, sizeof(uint64_t) * a->npairs) == 0 &&
		memcmp(a->pair_counts, b->pair_counts, sizeof(int64_t) * a->npairs) == 0;
}

static bool
same_candidates(const UpgResult *a, const UpgResult *b)
{
	if (a->ncands != b->ncands)
		return false;
	for (size_t i = 0; i < a->ncands; i++)
	{
		const UpgCandidate *x = &a->cands[i],
				   *y = &b->cands[i];

		if (x->product != y->product || x->candidate != y->candidate || x->upgrade != y->upgrade ||
			x->same_group != y->same_group || x->paths != y->paths || x->score != y->score ||
			x->popularity != y->popularity || x->path_rate != y->path_rate)
			return false;
	}
	return true;
}

UNIT_TEST(upg_fold_equals_every_line)
{
	UpgParams	params = {2.0, 5, 30, 6};

	for (uint64_t seed = 1; seed <= 20; seed++)
	{
		FoldShop	shop;
		UpgResult	old,
					whole,
					folded;
		UpgStream  *s;

		fold_shop(&shop, seed * 7919, 60, 1500, 200, false);
		CHECK(upg_compute(shop.p, shop.n, shop.lines, shop.nold, &params, &old) == NULL);
		CHECK(upg_compute(shop.p, shop.n, shop.lines, shop.nlines, &params, &whole) == NULL);
		CHECK(whole.counts.npairs > 5);
		CHECK(whole.counts.big_customers > 0);
		/* (the new lines change the counts) */
		CHECK(!same_counts(&old.counts, &whole.counts));

		CHECK(upg_stream_begin(shop.p, shop.n, &params, &s) == NULL);
		CHECK(fold_load(s, &old.counts, seed % 4 + 1) == UPG_LOAD_OK);
		CHECK(upg_stream_loaded(s));
		fold_changes(s, &shop);
		CHECK_EQ_INT(upg_stream_untimed_customer_lines(s), 0);
		upg_stream_finish(s, &folded);
		CHECK(!folded.inconsistent);
		CHECK(same_counts(&folded.counts, &whole.counts));
		CHECK(same_candidates(&folded, &whole));
		CHECK(memcmp(folded.buyers, whole.buyers, sizeof(int64_t) * shop.n) == 0);

		upg_result_free(&old);
		upg_result_free(&whole);
		upg_result_free(&folded);
		fold_shop_free(&shop);
	}
}

/*
 * What folding cannot do exactly, it says: counts of another catalog or
 * parameters, or with customers' lines without a time, are stale; a new
 * customer's line without a time is counted for the caller to see; bytes
 * that are not counts are corrupt; taking out what was never counted is
 * inconsistent.
 */
UNIT_TEST(upg_fold_refuses)
{
	UpgParams	params = {2.0, 5, 30, 12};
	FoldShop	shop;
	UpgResult	old;
	UpgStream  *s;
	size_t		len;
	char	   *chunk;

	fold_shop(&shop, 4242, 60, 1500, 200, true);
	CHECK(upg_compute(shop.p, shop.n, shop.lines, shop.nold, &params, &old) == NULL);
	CHECK_EQ_INT(old.counts.untimed_customer_lines, 0);

	/* a price moved */
	shop.p[3].price += 1;
	CHECK(upg_stream_begin(shop.p, shop.n, &params, &s) == NULL);
	CHECK(fold_load(s, &old.counts, 100) == UPG_LOAD_STALE);
	upg_stream_free(s);
	shop.p[3].price -= 1;

	/* another max_ratio */
	params.max_ratio = 3.0;
	CHECK(upg_stream_begin(shop.p, shop.n, &params, &s) == NULL);
	CHECK(fold_load(s, &old.counts, 100) == UPG_LOAD_STALE);
	upg_stream_free(s);
	params.max_ratio = 2.0;

	/* truncated, out of order */
	CHECK(upg_stream_begin(shop.p, shop.n, &params, &s) == NULL);
	len = upg_counts_chunk_size(&old.counts, 100, 0);
	chunk = ups_alloc(len);
	upg_counts_write_chunk(&old.counts, 100, 0, chunk);
	CHECK(upg_stream_load(s, 0, chunk, len - 8) == UPG_LOAD_CORRUPT);
	CHECK(upg_stream_load(s, 1, chunk, len) == UPG_LOAD_CORRUPT);
	ups_free(chunk);
	upg_stream_free(s);

	/* a new customer's line without a time: counted, for the caller */
	CHECK(upg_stream_begin(shop.p, shop.n, &params, &s) == NULL);
	CHECK(fold_load(s, &old.counts, 100) == UPG_LOAD_OK);
	fold_changes(s, &shop);
	CHECK(upg_stream_untimed_customer_lines(s) > 0);
	upg_stream_free(s);

	/* counts that had such a line are stale */
	{
		UpgResult	whole;

		CHECK(upg_compute(shop.p, shop.n, shop.lines, shop.nlines, &params, &whole) == NULL);
		CHECK(whole.counts.untimed_customer_lines > 0);
		CHECK(upg_stream_begin(shop.p, shop.n, &params, &s) == NULL);
		CHECK(fold_load(s, &whole.counts, 100) == UPG_LOAD_STALE);
		upg_stream_free(s);
		upg_result_free(&whole);
	}

	/* taking a customer out twice */
	{
		UpgResult	twice;

		CHECK(upg_stream_begin(shop.p, shop.n, &params, &s) == NULL);
		CHECK(fold_load(s, &old.counts, 100) == UPG_LOAD_OK);
		upg_stream_set_sign(s, -1);
		hold_lines(s, shop.lines, shop.nold);
		upg_stream_group(s);
		hold_lines(s, shop.lines, shop.nold);
		upg_stream_group(s);
		upg_stream_finish(s, &twice);
		CHECK(twice.inconsistent);
		upg_result_free(&twice);
	}
	upg_result_free(&old);
	fold_shop_free(&shop);
}
