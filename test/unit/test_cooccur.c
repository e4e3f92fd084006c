/*
 * test_cooccur.c
 *		Unit tests of the co-occurrence counting core (src/core/cooccur.c).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cooccur.h"
#include "unit.h"
#include "ups_host.h"

static void
free_counts(CoocCounts *c)
{
	cooc_counts_free(c);
}

/* Order count of a pair by product ids, 0 if never together. */
static int64_t
pair_count(const CoocCounts *c, int64_t x, int64_t y)
{
	int64_t		a = cooc_item_index(c, x);
	int64_t		b = cooc_item_index(c, y);

	if (a < 0 || b < 0)
		return 0;
	return cooc_pair_count(c, (uint32_t) a, (uint32_t) b);
}

/* Same counts, item by item and pair by pair. */
static bool
counts_equal(const CoocCounts *x, const CoocCounts *y)
{
	return x->orders == y->orders && x->big_orders == y->big_orders &&
		x->skipped_lines == y->skipped_lines &&
		x->nitems == y->nitems && x->npairs == y->npairs &&
		memcmp(x->item_ids, y->item_ids, x->nitems * 8) == 0 &&
		memcmp(x->item_counts, y->item_counts, x->nitems * 8) == 0 &&
		memcmp(x->row, y->row, (x->nitems + 1) * sizeof(size_t)) == 0 &&
		memcmp(x->pairs, y->pairs, x->npairs * sizeof(CoocEntry)) == 0;
}

static int64_t
item_count(const CoocCounts *c, int64_t x)
{
	int64_t		i = cooc_item_index(c, x);

	return i < 0 ? 0 : c->item_counts[i];
}

/* Orders: 1 {10,20,30}, 2 {10,20}, 3 {20} with a repeated line, 4 {30,10} unsorted */
static void
small_lines(CoocLines *l)
{
	static const int64_t data[][2] = {
		{1, 30}, {1, 10}, {2, 20}, {1, 20}, {3, 20}, {2, 10}, {3, 20}, {4, 30}, {4, 10}, {2, 20}
	};
	size_t		i;

	cooc_lines_init(l);
	for (i = 0; i < sizeof(data) / sizeof(data[0]); i++)
		cooc_lines_add(l, data[i][0], data[i][1]);
}

UNIT_TEST(cooc_counts_products_once_per_order)
{
	CoocLines	l;
	CoocCounts	c;

	small_lines(&l);
	cooc_count(&l, 0, &c);
	CHECK_EQ_INT(c.orders, 4);
	CHECK_EQ_INT(c.nitems, 3);
	CHECK_EQ_INT(item_count(&c, 10), 3);
	CHECK_EQ_INT(item_count(&c, 20), 3);
	CHECK_EQ_INT(item_count(&c, 30), 2);
	CHECK_EQ_INT(c.npairs, 3);
	CHECK_EQ_INT(pair_count(&c, 10, 20), 2);
	CHECK_EQ_INT(pair_count(&c, 20, 10), 2);
	CHECK_EQ_INT(pair_count(&c, 10, 30), 2);
	CHECK_EQ_INT(pair_count(&c, 20, 30), 1);
	CHECK_EQ_INT(cooc_item_index(&c, 99), -1);
	free_counts(&c);
	ups_free(l.lines);
}

UNIT_TEST(cooc_empty_input)
{
	CoocLines	l;
	CoocCounts	c;

	cooc_lines_init(&l);
	l.skipped = 3;
	cooc_count(&l, 0, &c);
	CHECK_EQ_INT(c.orders, 0);
	CHECK_EQ_INT(c.nitems, 0);
	CHECK_EQ_INT(c.npairs, 0);
	CHECK_EQ_INT(c.skipped_lines, 3);
	free_counts(&c);
}

UNIT_TEST(cooc_big_orders_skip_pairs_only)
{
	CoocLines	l;
	CoocCounts	c;
	int			i;

	cooc_lines_init(&l);
	for (i = 0; i < 5; i++)
		cooc_lines_add(&l, 1, i);
	cooc_lines_add(&l, 2, 0);
	cooc_lines_add(&l, 2, 1);
	cooc_count(&l, 4, &c);
	CHECK_EQ_INT(c.orders, 2);
	CHECK_EQ_INT(c.big_orders, 1);
	CHECK_EQ_INT(item_count(&c, 4), 1);
	CHECK_EQ_INT(c.npairs, 1);
	CHECK_EQ_INT(pair_count(&c, 0, 1), 1);
	free_counts(&c);
	ups_free(l.lines);
}

/* Counting two disjoint sets of orders and merging = counting them together. */
UNIT_TEST(cooc_merge_equals_counting_the_union)
{
	CoocLines	all,
				first,
				second;
	CoocCounts	whole,
				c1,
				c2,
				merged;
	size_t		i;

	srand(42);
	cooc_lines_init(&all);
	cooc_lines_init(&first);
	cooc_lines_init(&second);
	for (i = 0; i < 20000; i++)
	{
		int64_t		order = rand() % 3000;
		/* skewed products: small ids are popular */
		int64_t		product = (int64_t) (rand() % 200) * (rand() % 200) / 200;

		cooc_lines_add(&all, order, product);
		cooc_lines_add(order < 1500 ? &first : &second, order, product);
	}
	cooc_count(&all, 0, &whole);
	cooc_count(&first, 0, &c1);
	cooc_count(&second, 0, &c2);
	CHECK(cooc_counts_merge(&merged, &c1, &c2) == NULL);
	CHECK(counts_equal(&merged, &whole));
	free_counts(&whole);
	free_counts(&c1);
	free_counts(&c2);
	free_counts(&merged);
	ups_free(all.lines);
	ups_free(first.lines);
	ups_free(second.lines);
}

/* Parallel workers: concatenated partial states count like one state. */
UNIT_TEST(cooc_append_equals_single_state)
{
	CoocLines	one,
				w1,
				w2;
	CoocCounts	a,
				b;
	int			i;

	cooc_lines_init(&one);
	cooc_lines_init(&w1);
	cooc_lines_init(&w2);
	for (i = 0; i < 5000; i++)
	{
		int64_t		order = (i * 7919) % 900;
		int64_t		product = (i * 31) % 57;

		cooc_lines_add(&one, order, product);
		/* an order's lines are split across both workers */
		cooc_lines_add(i % 2 ? &w1 : &w2, order, product);
	}
	cooc_lines_append(&w1, &w2);
	cooc_count(&one, 0, &a);
	cooc_count(&w1, 0, &b);
	CHECK(counts_equal(&a, &b));
	free_counts(&a);
	free_counts(&b);
	ups_free(one.lines);
	ups_free(w1.lines);
	ups_free(w2.lines);
}

/* arules' Groceries: {herbs} => {root vegetables} */
UNIT_TEST(cooc_metrics_match_arules)
{
	CoocMetrics m;

	cooc_metrics(69, 160, 1072, 9835, &m);
	CHECK_NEAR(m.support, 0.007015760, 5e-10);
	CHECK_NEAR(m.confidence, 0.43125, 1e-12);
	CHECK_NEAR(m.lift, 3.956477, 5e-7);
	CHECK_NEAR(m.leverage, 69.0 / 9835 - (160.0 / 9835) * (1072.0 / 9835), 1e-15);
	CHECK_NEAR(m.conviction, (1 - 1072.0 / 9835) / (1 - 0.43125), 1e-12);
	CHECK_NEAR(m.jaccard, 69.0 / (160 + 1072 - 69), 1e-15);
	cooc_metrics(5, 5, 9, 100, &m);
	CHECK(isinf(m.conviction));
}

UNIT_TEST(cooc_score_prefers_evidence)
{
	/* a one-off pair of two one-off products ... */
	double		one_off = cooc_score(1, 1);

	/* ... ranks below pairs with real evidence */
	CHECK(one_off < cooc_score(60, 100));
	CHECK(one_off < cooc_score(300, 1000));
	CHECK(cooc_score(2, 2) < cooc_score(60, 100));
	/* more evidence at the same confidence scores higher */
	CHECK(cooc_score(10, 20) < cooc_score(100, 200));
	CHECK(cooc_score(0, 10) == 0.0);
	CHECK(cooc_score(10, 10) <= 1.0);
	CHECK_NEAR(cooc_score(1, 1), 0.2065, 1e-4);
}

UNIT_TEST(cooc_serialization_round_trips)
{
	CoocLines	l,
				l2;
	CoocCounts	c,
				c2;
	size_t		size;
	char	   *buf;

	small_lines(&l);
	l.skipped = 7;
	size = cooc_lines_serialized_size(&l);
	buf = ups_alloc(size);
	cooc_lines_serialize(&l, buf);
	CHECK(cooc_lines_deserialize(buf, size, &l2) == NULL);
	CHECK_EQ_INT(l2.n, l.n);
	CHECK_EQ_INT(l2.skipped, 7);
	ups_free(buf);
	ups_free(l2.lines);

	cooc_count(&l, 0, &c);
	size = cooc_counts_serialized_size(&c);
	buf = ups_alloc(size);
	cooc_counts_serialize(&c, buf);
	/* the flat form the count wrote as it counted is the same */
	CHECK(c.flat != NULL);
	CHECK_EQ_INT(c.flat_len, size);
	CHECK(c.flat && memcmp(c.flat + COOC_FLAT_HEADROOM, buf, size) == 0);
	CHECK(cooc_counts_deserialize(buf, size, false, &c2) == NULL);
	CHECK_EQ_INT(c2.skipped_lines, 7);
	CHECK(counts_equal(&c2, &c));
	free_counts(&c2);
	/* read in place from an aligned buffer */
	CHECK(cooc_counts_deserialize(buf, size, true, &c2) == NULL);
	CHECK(c2.borrowed);
	CHECK(counts_equal(&c2, &c));
	free_counts(&c2);
	/* every truncation is an error */
	{
		size_t		cut;
		int			errors = 0;

		for (cut = 0; cut < size; cut++)
		{
			if (cooc_counts_deserialize(buf, cut, false, &c2) != NULL)
				errors++;
			free_counts(&c2);
		}
		CHECK_EQ_INT(errors, size);
	}
	ups_free(buf);
	free_counts(&c);
	ups_free(l.lines);
}

/* The products read from a prefix equal the full decoder's; bad input errs. */
UNIT_TEST(cooc_items_from_a_prefix)
{
	CoocLines	l;
	CoocCounts	c,
				items;
	size_t		size,
				need;
	char	   *buf;
	uint32_t	v1 = 0x31435055;

	small_lines(&l);
	l.skipped = 3;
	cooc_count(&l, 0, &c);
	size = cooc_counts_serialized_size(&c);
	buf = ups_alloc(size);
	cooc_counts_serialize(&c, buf);
	need = cooc_counts_items_len(buf);
	CHECK_EQ_INT(need, COOC_COUNTS_HEADER + (size_t) c.nitems * 16);
	CHECK(need < size);
	CHECK(cooc_counts_deserialize_items(buf, need, size, &items) == NULL);
	CHECK_EQ_INT(items.nitems, c.nitems);
	CHECK_EQ_INT(items.orders, c.orders);
	CHECK_EQ_INT(items.skipped_lines, 3);
	CHECK_EQ_INT(items.big_orders, c.big_orders);
	CHECK_EQ_INT(items.npairs, c.npairs);
	CHECK(memcmp(items.item_ids, c.item_ids, (size_t) c.nitems * 8) == 0);
	CHECK(memcmp(items.item_counts, c.item_counts, (size_t) c.nitems * 8) == 0);
	CHECK(items.pairs == NULL);
	cooc_counts_free(&items);
	/* a prefix too short, a whole length that does not fit the counts */
	CHECK(cooc_counts_deserialize_items(buf, need - 1, size, &items) != NULL);
	CHECK(cooc_counts_deserialize_items(buf, need, size - 1, &items) != NULL);
	CHECK(cooc_counts_deserialize_items(buf, need, size + 12, &items) != NULL);
	CHECK(cooc_counts_deserialize_items(buf, 10, size, &items) != NULL);
	/* products out of order */
	{
		int64_t		first;

		memcpy(&first, buf + COOC_COUNTS_HEADER, 8);
		memcpy(buf + COOC_COUNTS_HEADER, buf + COOC_COUNTS_HEADER + 8, 8);
		CHECK(cooc_counts_deserialize_items(buf, need, size, &items) != NULL);
		memcpy(buf + COOC_COUNTS_HEADER, &first, 8);
	}
	/* the form of version 1.0 is read whole */
	memcpy(buf, &v1, 4);
	CHECK_EQ_INT(cooc_counts_items_len(buf), 0);
	CHECK(cooc_counts_deserialize_items(buf, need, size, &items) != NULL);
	ups_free(buf);
	free_counts(&c);
	ups_free(l.lines);
}

/*
 * A small fuzz loop: random byte flips in a valid value must decode to an
 * error or to a value that passes validation; never crash (run under ASan by
 * `make unit-asan`).
 */
UNIT_TEST(cooc_deserialize_survives_corruption)
{
	CoocLines	l;
	CoocCounts	c,
				c2;
	CoocLines	l2;
	size_t		size,
				lsize;
	char	   *good,
			   *bad,
			   *lgood;
	int			round,
				rejected = 0;

	small_lines(&l);
	cooc_count(&l, 0, &c);
	size = cooc_counts_serialized_size(&c);
	good = ups_alloc(size);
	bad = ups_alloc(size + cooc_lines_serialized_size(&l));
	cooc_counts_serialize(&c, good);
	lsize = cooc_lines_serialized_size(&l);
	lgood = ups_alloc(lsize);
	cooc_lines_serialize(&l, lgood);
	srand(7);
	for (round = 0; round < 20000; round++)
	{
		memcpy(bad, good, size);
		bad[rand() % size] ^= (char) (1 << (rand() % 8));
		if (cooc_counts_deserialize(bad, size, false, &c2) != NULL)
			rejected++;
		free_counts(&c2);
		memcpy(bad, lgood, lsize);
		bad[rand() % 24] ^= (char) (1 << (rand() % 8));
		(void) cooc_lines_deserialize(bad, lsize, &l2);
		ups_free(l2.lines);
	}
	CHECK(rejected > 0);
	ups_free(good);
	ups_free(bad);
	ups_free(lgood);
	free_counts(&c);
	ups_free(l.lines);
}

/* Reference for cooc_top_pairs: every partner, sorted, the first k. */
static int
ref_cmp(const void *pa, const void *pb)
{
	const CoocTop *a = pa;
	const CoocTop *b = pb;

	if (a->score != b->score)
		return a->score > b->score ? -1 : 1;
	return a->other < b->other ? -1 : (a->other > b->other ? 1 : 0);
}

UNIT_TEST(cooc_top_pairs_equal_a_full_sort)
{
	CoocLines	l;
	CoocCounts	c;
	CoocTop    *top,
			   *all;
	size_t		n,
				at = 0;
	uint64_t	rng = 5;
	const int	k = 4;
	const int64_t min_count = 2;

	cooc_lines_init(&l);
	for (int o = 0; o < 4000; o++)
		for (int i = 1 + (int) (unit_xorshift(&rng) % 6); i > 0; i--)
			cooc_lines_add(&l, o, (int64_t) (unit_xorshift(&rng) % 40) * (int64_t) (unit_xorshift(&rng) % 40));
	CHECK(cooc_count(&l, 0, &c) == NULL);
	top = cooc_top_pairs(&c, k, min_count, &n);
	all = malloc(sizeof(CoocTop) * (c.nitems + 1));
	for (uint32_t x = 0; x < c.nitems; x++)
	{
		size_t		m = 0;

		for (uint32_t y = 0; y < c.nitems; y++)
		{
			int64_t		t = cooc_pair_count(&c, x, y);

			if (y != x && t >= min_count)
			{
				all[m].product = x;
				all[m].other = y;
				all[m].together = (uint32_t) t;
				all[m++].score = cooc_score(t, c.item_counts[x]);
			}
		}
		qsort(all, m, sizeof(CoocTop), ref_cmp);
		for (size_t i = 0; i < m && i < (size_t) k; i++, at++)
		{
			CHECK(at < n);
			if (at >= n)
				break;
			CHECK_EQ_INT(top[at].product, x);
			CHECK_EQ_INT(top[at].other, all[i].other);
			CHECK_EQ_INT(top[at].together, all[i].together);
			CHECK(top[at].score == all[i].score);
		}
	}
	CHECK_EQ_INT(at, n);
	CHECK(n > 0);
	free(all);
	ups_free(top);
	cooc_counts_free(&c);
	ups_free(l.lines);
}
