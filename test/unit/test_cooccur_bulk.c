/*
 * test_cooccur_bulk.c
 *		cooc_count on inputs big enough to take its fast paths (in-place sort of
 *		ungrouped lines, per-order sort of grouped lines, products with many
 *		partners, negative ids, big orders), checked against a brute-force
 *		count over a dense matrix.
 */
#include <stdlib.h>
#include <string.h>

#include "cooccur.h"
#include "ups_host.h"
#include "unit.h"

#define NPROD 300				/* product ids: (i - 150) * 7, some negative */
#define NORDERS 2000

static uint64_t rng_state;

static uint32_t
rnd(uint32_t n)
{
	rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
	return (uint32_t) ((rng_state >> 33) % n);
}

static int64_t
prod_id(int i)
{
	return (int64_t) (i - 150) * 7;
}

static int64_t
order_key(int o)
{
	/* increasing, spread over most of the int64 range, negative too */
	return (int64_t) (o - NORDERS / 2) * INT64_C(4611686018427387);
}

typedef struct Brute
{
	int64_t		orders;
	int64_t		big;
	int64_t		item[NPROD];
	int64_t    *pair;			/* NPROD x NPROD, i < j */
} Brute;

/*
 * Builds random orders (product 0 is in a third of them, so it has well
 * over 24 partners; some orders repeat a product; every 97th order is big),
 * adds them as lines (grouped by order or shuffled), and counts them by
 * brute force.
 */
static void
make_data(CoocLines *l, Brute *b, int max_basket, bool shuffled)
{
	CoocLine   *all = malloc(sizeof(CoocLine) * NORDERS * 40);
	size_t		n = 0,
				i;

	memset(b, 0, sizeof(*b));
	b->pair = calloc((size_t) NPROD * NPROD, sizeof(int64_t));
	rng_state = 12345;
	for (int o = 0; o < NORDERS; o++)
	{
		int			size = (o % 97 == 0) ? 12 : 1 + rnd(6);
		bool		in[NPROD];
		int			distinct = 0;

		memset(in, 0, sizeof(in));
		if (o % 3 == 0)
		{
			in[0] = true;
			all[n].order_key = order_key(o);
			all[n].product_id = prod_id(0);
			n++;
		}
		for (int k = 0; k < size; k++)
		{
			int			p = (int) rnd(NPROD);

			in[p] = true;
			all[n].order_key = order_key(o);
			all[n].product_id = prod_id(p);
			n++;
			if (rnd(10) == 0)
			{
				all[n] = all[n - 1];	/* a repeated line */
				n++;
			}
		}
		for (int p = 0; p < NPROD; p++)
			distinct += in[p];
		b->orders++;
		for (int p = 0; p < NPROD; p++)
			b->item[p] += in[p];
		if (max_basket > 0 && distinct > max_basket)
		{
			b->big++;
			continue;
		}
		for (int p = 0; p < NPROD; p++)
			for (int q = p + 1; q < NPROD; q++)
				if (in[p] && in[q])
					b->pair[p * NPROD + q]++;
	}
	if (shuffled)
		for (i = n - 1; i > 0; i--)
		{
			size_t		j = rnd((uint32_t) i + 1);
			CoocLine	t = all[i];

			all[i] = all[j];
			all[j] = t;
		}
	cooc_lines_init(l);
	for (i = 0; i < n; i++)
		cooc_lines_add(l, all[i].order_key, all[i].product_id);
	free(all);
}

/* product index in the brute-force arrays of a product id */
static int
brute_index(int64_t id)
{
	return (int) (id / 7 + 150);
}

static void
check_against_brute(int max_basket, bool shuffled)
{
	CoocLines	l;
	CoocCounts	c;
	Brute		b;
	int64_t		npairs = 0;
	size_t		i;

	make_data(&l, &b, max_basket, shuffled);
	CHECK(cooc_count(&l, max_basket, &c) == NULL);
	CHECK_EQ_INT(c.orders, b.orders);
	CHECK_EQ_INT(c.big_orders, b.big);
	for (i = 1; i < c.nitems; i++)
		CHECK(c.item_ids[i - 1] < c.item_ids[i]);
	for (i = 0; i < c.nitems; i++)
		CHECK_EQ_INT(c.item_counts[i], b.item[brute_index(c.item_ids[i])]);
	for (int p = 0; p < NPROD; p++)
		for (int q = p + 1; q < NPROD; q++)
			npairs += b.pair[p * NPROD + q] > 0;
	CHECK_EQ_INT(c.npairs, npairs);
	CHECK_EQ_INT(c.row[c.nitems], c.npairs);
	for (uint32_t a = 0; a < c.nitems; a++)
		for (i = c.row[a]; i < c.row[a + 1]; i++)
		{
			CHECK(a < c.pairs[i].partner);
			if (i > c.row[a])
				CHECK(c.pairs[i - 1].partner < c.pairs[i].partner);
			CHECK_EQ_INT(c.pairs[i].together, b.pair[brute_index(c.item_ids[a]) * NPROD +
													 brute_index(c.item_ids[c.pairs[i].partner])]);
		}
	cooc_counts_free(&c);
	ups_free(l.lines);
	free(b.pair);
}

UNIT_TEST(cooc_bulk_grouped_lines_match_brute_force)
{
	check_against_brute(0, false);
}

UNIT_TEST(cooc_bulk_shuffled_lines_match_brute_force)
{
	check_against_brute(0, true);
}

UNIT_TEST(cooc_bulk_big_orders_match_brute_force)
{
	check_against_brute(10, true);
}

static int
line_order(const void *pa, const void *pb)
{
	const CoocLine *a = pa;
	const CoocLine *b = pb;

	if (a->order_key != b->order_key)
		return a->order_key < b->order_key ? -1 : 1;
	if (a->product_id != b->product_id)
		return a->product_id < b->product_id ? -1 : 1;
	return 0;
}

/*
 * The in-place sort of ungrouped lines (by order, then each order by
 * product) against qsort and a removal of repeats: keys over the whole
 * int64 range, keys differing only in their low bytes (deep buckets), and
 * orders of many lines.
 */
static void
check_compact(int64_t key_step, int norders, int per_order)
{
	CoocLines	l;
	CoocLine   *ref;
	size_t		n = 0,
				i,
				m = 0;

	cooc_lines_init(&l);
	ref = malloc(sizeof(CoocLine) * (size_t) norders * per_order);
	for (i = 0; i < (size_t) norders * per_order; i++)
	{
		int64_t		o = (int64_t) rnd((uint32_t) norders) - norders / 3;
		int64_t		p = prod_id((int) rnd(NPROD));

		/* a wrapping (unsigned) product: the large step wraps, and an odd step keeps the keys distinct */
		cooc_lines_add(&l, (int64_t) ((uint64_t) o * (uint64_t) key_step), p);
	}
	memcpy(ref, l.lines, l.n * sizeof(CoocLine));
	n = l.n;
	qsort(ref, n, sizeof(CoocLine), line_order);
	for (i = 0; i < n; i++)
		if (m == 0 || line_order(&ref[m - 1], &ref[i]) != 0)
			ref[m++] = ref[i];
	CHECK(!l.compact);
	cooc_lines_compact(&l);
	CHECK(l.compact);
	CHECK_EQ_INT(l.n, m);
	for (i = 0; i < m && i < l.n; i++)
		CHECK(l.lines[i].order_key == ref[i].order_key &&
			  l.lines[i].product_id == ref[i].product_id);
	free(ref);
	ups_free(l.lines);
}

UNIT_TEST(cooc_compact_sorts_ungrouped_lines_in_place)
{
	rng_state = 7;
	check_compact(INT64_C(4611686018427387), 5000, 6);
	check_compact(1, 5000, 6);
	check_compact(INT64_C(1) << 40, 300, 40);
	check_compact(3, 20, 200);	/* orders of about 200 lines, many repeats */
}
