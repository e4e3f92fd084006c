/*
 * test_itemsets.c
 *		Unit tests of the itemset miner (src/core/itemsets.c) against a
 *		brute-force counter over every subset of a small item universe.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "itemsets.h"
#include "unit.h"
#include "ups_host.h"

#define UNIVERSE 12

/* Deterministic pseudo-random numbers (xorshift), no libc state. */
static uint64_t
next_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/*
 * Random orders over UNIVERSE products (ids 100 + i), skewed so that low
 * products are frequent; returns their bitmasks in masks[].
 */
static void
random_orders(uint64_t seed, int norders, CoocLines *l, uint32_t *masks)
{
	int			o,
				i;

	cooc_lines_init(l);
	for (o = 0; o < norders; o++)
	{
		masks[o] = 0;
		for (i = 0; i < UNIVERSE; i++)
			if (next_rand(&seed) % 100 < (uint64_t) (60 - 4 * i))
			{
				masks[o] |= 1u << i;
				/* repeated lines must count once */
				cooc_lines_add(l, 1000 - o, 100 + i);
				if (i % 5 == 0)
					cooc_lines_add(l, 1000 - o, 100 + i);
			}
	}
}

static int
popcount(uint32_t x)
{
	int			n = 0;

	for (; x; x &= x - 1)
		n++;
	return n;
}

static int64_t
brute_count(const uint32_t *masks, int norders, uint32_t set)
{
	int64_t		n = 0;
	int			o;

	for (o = 0; o < norders; o++)
		n += (masks[o] & set) == set;
	return n;
}

/* The mined set as a bitmask over product ids 100.. */
static uint32_t
set_mask(const Itemsets *s, size_t i)
{
	uint32_t	mask = 0;
	size_t		j;

	for (j = s->set_start[i]; j < s->set_start[i + 1]; j++)
		mask |= 1u << (s->item_ids[s->members[j]] - 100);
	return mask;
}

static void
check_against_brute_force(uint64_t seed, int norders, int64_t min_count, int max_size,
						  bool free_lines)
{
	CoocLines	l;
	Itemsets	s;
	ItemsetParams p = {min_count, max_size, 0, free_lines};
	uint32_t   *masks = malloc(sizeof(uint32_t) * norders);
	size_t		expected = 0,
				i;
	uint32_t	set;

	random_orders(seed, norders, &l, masks);
	CHECK_EQ_INT(itemsets_mine(&l, &p, &s), ITEMSETS_OK);
	/* freed lines are left empty; kept ones are all there */
	if (free_lines)
		CHECK(l.lines == NULL && l.n == 0 && l.cap == 0);
	else
		CHECK(l.lines != NULL && l.n > 0);
	/* an order without lines does not exist */
	for (i = 0; i < (size_t) norders; i++)
		expected += masks[i] != 0;
	CHECK_EQ_INT(s.transactions, expected);
	expected = 0;
	for (set = 1; set < (1u << UNIVERSE); set++)
		if (popcount(set) <= max_size && brute_count(masks, norders, set) >= min_count)
			expected++;
	CHECK_EQ_INT(s.nsets, expected);
	for (i = 0; i < s.nsets; i++)
	{
		size_t		j;

		CHECK_EQ_INT(s.set_counts[i], brute_count(masks, norders, set_mask(&s, i)));
		for (j = s.set_start[i] + 1; j < s.set_start[i + 1]; j++)
			CHECK(s.members[j - 1] < s.members[j]);
	}
	itemsets_free(&s);
	ups_free(l.lines);
	free(masks);
}

UNIT_TEST(itemsets_match_brute_force)
{
	check_against_brute_force(42, 300, 30, 12, false);
	check_against_brute_force(7, 300, 1, 12, false);
	check_against_brute_force(99, 500, 20, 3, false);
	check_against_brute_force(5, 50, 2, 2, false);
	check_against_brute_force(11, 200, 1000, 4, false);	/* nothing frequent */
	/* many orders: the miner's scratch buffers grow, buckets get large */
	check_against_brute_force(23, 3000, 5, 4, false);
	check_against_brute_force(29, 3000, 1, 3, false);
	/* the same answers when the miner frees the lines as it goes */
	check_against_brute_force(42, 300, 30, 12, true);
	check_against_brute_force(7, 300, 1, 12, true);
	check_against_brute_force(11, 200, 1000, 4, true);
	check_against_brute_force(23, 3000, 5, 4, true);
}

UNIT_TEST(itemsets_rank_by_count_then_id)
{
	CoocLines	l;
	Itemsets	s;
	ItemsetParams p = {1, 4, 0, false};
	uint32_t	r[2];

	/* orders: {5,7}, {7,9}, {5,9}, {3}: 5, 7, 9 twice each, 3 once */
	cooc_lines_init(&l);
	cooc_lines_add(&l, 1, 7);
	cooc_lines_add(&l, 1, 5);
	cooc_lines_add(&l, 2, 9);
	cooc_lines_add(&l, 2, 7);
	cooc_lines_add(&l, 3, 5);
	cooc_lines_add(&l, 3, 9);
	cooc_lines_add(&l, 4, 3);
	CHECK_EQ_INT(itemsets_mine(&l, &p, &s), ITEMSETS_OK);
	CHECK_EQ_INT(s.transactions, 4);
	CHECK_EQ_INT(s.nitems, 4);
	CHECK_EQ_INT(s.item_ids[0], 5);
	CHECK_EQ_INT(s.item_ids[1], 7);
	CHECK_EQ_INT(s.item_ids[2], 9);
	CHECK_EQ_INT(s.item_ids[3], 3);
	CHECK_EQ_INT(s.nsets, 7);	/* 4 singles, 3 pairs, no triple */
	r[0] = 0;
	r[1] = 2;
	CHECK_EQ_INT(itemsets_lookup(&s, r, 2), 1);
	r[1] = 3;
	CHECK_EQ_INT(itemsets_lookup(&s, r, 2), -1);
	itemsets_free(&s);
	ups_free(l.lines);
}

UNIT_TEST(itemsets_min_count_rounds_up)
{
	CHECK_EQ_INT(itemsets_min_count(0.006, 9835), 60);
	CHECK_EQ_INT(itemsets_min_count(0.01, 100), 1);
	CHECK_EQ_INT(itemsets_min_count(0.3, 10), 3);
	CHECK_EQ_INT(itemsets_min_count(0, 10), 1);
}

UNIT_TEST(itemsets_memory_limit_stops_cleanly)
{
	CoocLines	l;
	Itemsets	s;
	ItemsetParams p = {1, 12, 20000, false};
	uint32_t	masks[300];

	random_orders(3, 300, &l, masks);
	CHECK_EQ_INT(itemsets_mine(&l, &p, &s), ITEMSETS_MEMORY_LIMIT);
	CHECK_EQ_INT(s.nsets, 0);
	CHECK(s.members == NULL);
	/* the same input fits without the limit */
	p.memory_limit = 0;
	CHECK_EQ_INT(itemsets_mine(&l, &p, &s), ITEMSETS_OK);
	CHECK(s.nsets > 1000);
	CHECK(s.peak_bytes > 20000);
	itemsets_free(&s);
	ups_free(l.lines);
}

UNIT_TEST(itemsets_count_above_the_orders_needs_no_memory)
{
	CoocLines	l;
	Itemsets	s;
	ItemsetParams p = {301, 12, 1, false};
	uint32_t	masks[300];
	int64_t		orders;

	/* at most 300 orders: at 301 nothing is frequent, whatever the limit */
	random_orders(3, 300, &l, masks);
	CHECK_EQ_INT(itemsets_mine(&l, &p, &s), ITEMSETS_OK);
	CHECK(s.transactions > 250 && s.transactions <= 300);
	CHECK_EQ_INT(s.nsets, 0);
	CHECK_EQ_INT(s.nitems, 0);
	orders = s.transactions;
	itemsets_free(&s);
	/* at the order count the limit is charged as before */
	p.min_count = orders;
	CHECK_EQ_INT(itemsets_mine(&l, &p, &s), ITEMSETS_MEMORY_LIMIT);
	itemsets_free(&s);
	ups_free(l.lines);
}

typedef struct RuleCheck
{
	Itemsets   *s;
	const uint32_t *masks;
	int			norders;
	int			nrules;
	int			bad;
} RuleCheck;

static uint32_t
ranks_mask(const Itemsets *s, const uint32_t *r, int k)
{
	uint32_t	m = 0;
	int			i;

	for (i = 0; i < k; i++)
		m |= 1u << (s->item_ids[r[i]] - 100);
	return m;
}

static void
check_rule(void *arg, const ItemsetRule *rule)
{
	RuleCheck  *rc = arg;
	uint32_t	a = ranks_mask(rc->s, rule->antecedent, rule->nantecedent);
	uint32_t	c = ranks_mask(rc->s, rule->consequent, rule->nconsequent);

	rc->nrules++;
	if ((a & c) != 0 || rule->nconsequent != 1 ||
		rule->count != brute_count(rc->masks, rc->norders, a | c) ||
		rule->antecedent_count != brute_count(rc->masks, rc->norders, a) ||
		rule->consequent_count != brute_count(rc->masks, rc->norders, c) ||
		(double) rule->count / rule->antecedent_count < 0.6)
		rc->bad++;
}

UNIT_TEST(itemsets_rules_match_brute_force)
{
	CoocLines	l;
	Itemsets	s;
	ItemsetParams p = {25, 4, 0, false};
	uint32_t	masks[400];
	RuleCheck	rc = {&s, masks, 400, 0, 0};
	uint32_t	set;
	int			expected = 0;

	random_orders(17, 400, &l, masks);
	CHECK_EQ_INT(itemsets_mine(&l, &p, &s), ITEMSETS_OK);
	CHECK_EQ_INT(itemsets_rules(&s, 0.6, 1, 0, check_rule, &rc), ITEMSETS_OK);
	/* brute force: every frequent set of 2..4, every single consequent */
	for (set = 1; set < (1u << UNIVERSE); set++)
	{
		int64_t		n = brute_count(masks, 400, set);
		int			i;

		if (popcount(set) < 2 || popcount(set) > 4 || n < 25)
			continue;
		for (i = 0; i < UNIVERSE; i++)
			if ((set >> i) & 1 &&
				(double) n / brute_count(masks, 400, set & ~(1u << i)) >= 0.6)
				expected++;
	}
	CHECK(expected > 10);
	CHECK_EQ_INT(rc.nrules, expected);
	CHECK_EQ_INT(rc.bad, 0);
	itemsets_free(&s);
	ups_free(l.lines);
}

static void
count_rule(void *arg, const ItemsetRule *rule)
{
	if (rule->count > 0)
		(*(int *) arg)++;
}

UNIT_TEST(itemsets_rules_with_larger_consequents)
{
	CoocLines	l;
	Itemsets	s;
	ItemsetParams p = {1, 4, 0, false};
	int			n = 0;

	/* one order {1,2,3}: every split of every subset has confidence 1 */
	cooc_lines_init(&l);
	cooc_lines_add(&l, 1, 1);
	cooc_lines_add(&l, 1, 2);
	cooc_lines_add(&l, 1, 3);
	CHECK_EQ_INT(itemsets_mine(&l, &p, &s), ITEMSETS_OK);
	CHECK_EQ_INT(s.nsets, 7);
	CHECK_EQ_INT(itemsets_rules(&s, 1.0, 1, 0, count_rule, &n), ITEMSETS_OK);
	CHECK_EQ_INT(n, 3 * 2 + 3);	/* pairs: 2 each; triple: 3 single consequents */
	n = 0;
	CHECK_EQ_INT(itemsets_rules(&s, 1.0, 3, 0, count_rule, &n), ITEMSETS_OK);
	CHECK_EQ_INT(n, 3 * 2 + 6);	/* triple: 3 + 3 two-item consequents */
	itemsets_free(&s);
	ups_free(l.lines);
}

/*
 * Many products (conditional item lists longer than UNIVERSE allows, among
 * many more items, so the miner's larger sorts run): every set of up to 2
 * against counts from per-product order bitmaps.
 */
#define MANY_PRODUCTS 1500
#define MANY_ORDERS 4096
#define MANY_WORDS (MANY_ORDERS / 64)

static int64_t
bitmap_count(uint64_t (*bits)[MANY_WORDS], const int *p, int k)
{
	int64_t		n = 0;
	int			w,
				j;

	for (w = 0; w < MANY_WORDS; w++)
	{
		uint64_t	x = ~UINT64_C(0);

		for (j = 0; j < k; j++)
			x &= bits[p[j]][w];
		n += __builtin_popcountll(x);
	}
	return n;
}

UNIT_TEST(itemsets_many_products_match_bitmaps)
{
	static uint64_t bits[MANY_PRODUCTS][MANY_WORDS];
	CoocLines	l;
	Itemsets	s;
	ItemsetParams p = {3, 2, 0, false};
	uint64_t	seed = 77;
	size_t		expected = 0,
				i;
	int			o,
				a,
				b,
				bad = 0;

	memset(bits, 0, sizeof(bits));
	cooc_lines_init(&l);
	for (o = 0; o < MANY_ORDERS; o++)
	{
		int			k = 1 + (int) (next_rand(&seed) % 12);

		while (k-- > 0)
		{
			uint64_t	u = next_rand(&seed) % 1000;
			int			prod = (int) (u * u * MANY_PRODUCTS / 1000000);

			bits[prod][o / 64] |= UINT64_C(1) << (o % 64);
			/* orders arrive out of order */
			cooc_lines_add(&l, (o * 7919) % MANY_ORDERS, 5000 - prod);
		}
	}
	CHECK_EQ_INT(itemsets_mine(&l, &p, &s), ITEMSETS_OK);
	for (a = 0; a < MANY_PRODUCTS; a++)
	{
		int			q[2] = {a};

		expected += bitmap_count(bits, q, 1) >= 3;
		for (b = a + 1; b < MANY_PRODUCTS; b++)
		{
			q[1] = b;
			expected += bitmap_count(bits, q, 2) >= 3;
		}
	}
	CHECK(expected > 2000);
	CHECK_EQ_INT(s.nsets, expected);
	for (i = 0; i < s.nsets; i++)
	{
		int			q[2];
		int			k = (int) (s.set_start[i + 1] - s.set_start[i]);
		int			j;

		for (j = 0; j < k; j++)
			q[j] = 5000 - (int) s.item_ids[s.members[s.set_start[i] + j]];
		bad += bitmap_count(bits, q, k) != s.set_counts[i];
	}
	CHECK_EQ_INT(bad, 0);
	itemsets_free(&s);
	ups_free(l.lines);
}

/* itemsets_top_per_item against a ranking of every qualifying set, per item */
typedef struct TopCheck
{
	Itemsets   *s;
	int			k;
	int			calls;
	int			bad;
	uint32_t	last_item;
	int			last_rank;
} TopCheck;

/* ORDER BY lift DESC, count DESC, items: negative when set i ranks first */
static int
brute_rank_cmp(const Itemsets *s, size_t i, size_t j)
{
	double		li = itemsets_lift(s, i),
				lj = itemsets_lift(s, j);
	int64_t		a[UNIVERSE],
				b[UNIVERSE];
	int			na = 0,
				nb = 0,
				q;
	uint32_t	mi = set_mask(s, i),
				mj = set_mask(s, j);

	if (li != lj)
		return li > lj ? -1 : 1;
	if (s->set_counts[i] != s->set_counts[j])
		return s->set_counts[i] > s->set_counts[j] ? -1 : 1;
	/* ids 100 + bit, ascending */
	for (q = 0; q < UNIVERSE; q++)
	{
		if ((mi >> q) & 1)
			a[na++] = 100 + q;
		if ((mj >> q) & 1)
			b[nb++] = 100 + q;
	}
	for (q = 0; q < na && q < nb; q++)
		if (a[q] != b[q])
			return a[q] < b[q] ? -1 : 1;
	return na - nb;
}

static void
check_top(void *arg, const ItemsetTop *top)
{
	TopCheck   *tc = arg;
	const Itemsets *s = tc->s;
	uint32_t	bit = 1u << (s->item_ids[top->item] - 100);
	size_t		i;
	int			better = 0,
				q;

	tc->calls++;
	/* the set contains the item, qualifies, and has rank-1 better sets */
	if (!(set_mask(s, top->set) & bit) || top->size < 2 || !(top->lift > 1.0) ||
		top->lift != itemsets_lift(s, top->set) || top->rank > tc->k)
		tc->bad++;
	for (q = 1; q < top->size; q++)
		if (top->ids[q - 1] >= top->ids[q])
			tc->bad++;
	for (i = 0; i < s->nsets; i++)
		if ((set_mask(s, i) & bit) && s->set_start[i + 1] - s->set_start[i] >= 2 &&
			itemsets_lift(s, i) > 1.0 && brute_rank_cmp(s, i, top->set) < 0)
			better++;
	if (better != top->rank - 1)
		tc->bad++;
	tc->last_item = top->item;
	tc->last_rank = top->rank;
}

UNIT_TEST(itemsets_top_per_item_ranks_like_sql)
{
	CoocLines	l;
	Itemsets	s;
	ItemsetParams p = {5, 3, 0, false};
	uint32_t   *masks = malloc(sizeof(uint32_t) * 600);
	TopCheck	tc = {&s, 3, 0, 0, 0, 0};
	int			expected = 0;
	uint32_t	x;

	random_orders(31, 600, &l, masks);
	CHECK_EQ_INT(itemsets_mine(&l, &p, &s), ITEMSETS_OK);
	itemsets_top_per_item(&s, 2, 1.0, 3, check_top, &tc);
	/* each item keeps min(3, its qualifying sets) */
	for (x = 0; x < s.nitems; x++)
	{
		size_t		i;
		int			n = 0;

		for (i = 0; i < s.nsets; i++)
			if ((set_mask(&s, i) & (1u << (s.item_ids[x] - 100))) &&
				s.set_start[i + 1] - s.set_start[i] >= 2 && itemsets_lift(&s, i) > 1.0)
				n++;
		expected += n < 3 ? n : 3;
	}
	CHECK(expected > 10);
	CHECK_EQ_INT(tc.calls, expected);
	CHECK_EQ_INT(tc.bad, 0);
	itemsets_free(&s);
	ups_free(l.lines);
	free(masks);
}

/*
 * itemsets_fold against mining every line: the sets of the lines before
 * stored, then new orders and lines added to old orders (some repeating a
 * product the order had), folded in; the result must be what mining all the
 * lines gives, sets of one product aside.
 */
static void
check_fold(uint64_t seed, int norders, int64_t min_count, int max_size)
{
	CoocLines	before_lines,
				all,
				all_mined;
	Itemsets	before,
				expect,
				got;
	ItemsetParams p = {min_count, max_size, 0, false};
	uint32_t   *masks = malloc(sizeof(uint32_t) * norders);
	int64_t		changed[80];
	size_t		nchanged = 0,
				nstored = 0,
				nids = 0,
				expected_sets = 0,
				fresh = 0,
				moved = 0,
				i,
				j;
	size_t	   *start = malloc(sizeof(size_t) * 5000);
	int64_t    *ids = malloc(sizeof(int64_t) * 15000);
	int64_t    *counts = malloc(sizeof(int64_t) * 5000);
	StoredSets	stored;
	uint64_t	s = seed * 31 + 7;
	int			o,
				q;

	random_orders(seed, norders, &before_lines, masks);
	cooc_lines_init(&all);
	cooc_lines_append(&all, &before_lines);
	for (o = 0; o < 40; o++)
	{
		/* new orders, as skewed as the old ones */
		for (q = 0; q < UNIVERSE; q++)
			if (next_rand(&s) % 100 < (uint64_t) (60 - 4 * q))
				cooc_lines_add(&all, 5000 + o, 100 + q);
		changed[nchanged++] = 5000 + o;
	}
	for (o = 0; o < 20; o++)
	{
		/* lines added to old orders */
		int64_t		key = 1000 - (int64_t) (next_rand(&s) % (uint64_t) norders);

		cooc_lines_add(&all, key, 100 + (int64_t) (next_rand(&s) % UNIVERSE));
		cooc_lines_add(&all, key, 100 + (int64_t) (next_rand(&s) % UNIVERSE));
		changed[nchanged++] = key;
	}
	cooc_lines_init(&all_mined);
	cooc_lines_append(&all_mined, &all);

	CHECK_EQ_INT(itemsets_mine(&before_lines, &p, &before), ITEMSETS_OK);
	start[0] = 0;
	for (i = 0; i < before.nsets; i++)
	{
		int64_t		set_ids[3];
		size_t		k = before.set_start[i + 1] - before.set_start[i];

		if (k < 2)
			continue;
		for (j = 0; j < k; j++)
			set_ids[j] = before.item_ids[before.members[before.set_start[i] + j]];
		/* stored ascending by id */
		for (j = 1; j < k; j++)
			for (q = (int) j; q > 0 && set_ids[q - 1] > set_ids[q]; q--)
			{
				int64_t		t = set_ids[q];

				set_ids[q] = set_ids[q - 1];
				set_ids[q - 1] = t;
			}
		for (j = 0; j < k; j++)
			ids[nids++] = set_ids[j];
		counts[nstored] = before.set_counts[i];
		start[++nstored] = nids;
	}
	stored = (StoredSets)
	{
		nstored, start, ids, counts
	};
	CHECK(nstored > 5);

	CHECK_EQ_INT(itemsets_mine(&all_mined, &p, &expect), ITEMSETS_OK);
	CHECK_EQ_INT(itemsets_fold(&all, &stored, changed, nchanged, &p, &got), ITEMSETS_OK);
	CHECK_EQ_INT(got.transactions, expect.transactions);
	CHECK_EQ_INT(got.nitems, expect.nitems);
	for (i = 0; i < got.nitems && i < expect.nitems; i++)
	{
		CHECK_EQ_INT(got.item_ids[i], expect.item_ids[i]);
		CHECK_EQ_INT(got.item_counts[i], expect.item_counts[i]);
	}
	for (i = 0; i < expect.nsets; i++)
		expected_sets += expect.set_start[i + 1] - expect.set_start[i] >= 2;
	CHECK_EQ_INT(got.nsets, expected_sets);
	for (i = 0; i < got.nsets; i++)
	{
		uint32_t	mask = set_mask(&got, i);
		bool		found = false;

		for (j = got.set_start[i] + 1; j < got.set_start[i + 1]; j++)
			CHECK(got.members[j - 1] < got.members[j]);
		for (j = 0; j < expect.nsets; j++)
			if (set_mask(&expect, j) == mask)
			{
				found = true;
				CHECK_EQ_INT(got.set_counts[i], expect.set_counts[j]);
				/* the same ranks, so the same lift to the last bit */
				CHECK(itemsets_lift(&got, i) == itemsets_lift(&expect, j));
			}
		CHECK(found);
		/* what the new lines changed: sets new, and counts moved */
		found = false;
		for (j = 0; j < before.nsets; j++)
			if (set_mask(&before, j) == mask)
			{
				found = true;
				moved += before.set_counts[j] != got.set_counts[i];
			}
		fresh += !found;
	}
	CHECK(fresh > 0 && moved > 0);
	itemsets_free(&got);

	/* a stored set of a product the lines do not have: stale */
	ids[0] = 99;
	CHECK_EQ_INT(itemsets_fold(&all, &stored, changed, nchanged, &p, &got), ITEMSETS_STORED_STALE);
	CHECK(got.nsets == 0 && got.members == NULL);
	/* sets of 4 are not folded */
	p.max_size = 4;
	CHECK_EQ_INT(itemsets_fold(&all, &stored, changed, nchanged, &p, &got), ITEMSETS_FOLD_UNSUPPORTED);

	itemsets_free(&before);
	itemsets_free(&expect);
	ups_free(before_lines.lines);
	ups_free(all.lines);
	ups_free(all_mined.lines);
	free(masks);
	free(start);
	free(ids);
	free(counts);
}

UNIT_TEST(itemsets_fold_matches_mining_every_line)
{
	check_fold(42, 300, 20, 3);
	check_fold(7, 400, 5, 3);
	check_fold(99, 300, 30, 2);
	check_fold(5, 200, 2, 3);
}

/*
 * Orders of hundreds of the changed orders' products (a wholesale shop):
 * their pairs and triples to look up grow with the square and the cube of
 * an order, and the fold leaves them to mining.
 */
UNIT_TEST(itemsets_fold_leaves_huge_orders_to_mining)
{
	CoocLines	l;
	Itemsets	got;
	ItemsetParams p = {2, 3, 0, false};
	size_t		zero = 0;
	StoredSets	none = {0, &zero, NULL, NULL};
	int64_t		changed = 39;
	int			o,
				q;

	cooc_lines_init(&l);
	for (o = 0; o < 40; o++)
		for (q = 1; q <= 200; q++)
			cooc_lines_add(&l, o, q);
	CHECK_EQ_INT(itemsets_fold(&l, &none, &changed, 1, &p, &got), ITEMSETS_FOLD_UNSUPPORTED);
	CHECK(got.nsets == 0 && got.members == NULL);
	ups_free(l.lines);
}
