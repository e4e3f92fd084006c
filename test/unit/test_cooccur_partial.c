/*
 * test_cooccur_partial.c
 *		The partial states parallel workers hand to the leader: counted by the
 *		worker or carrying orders only, combined by the leader, exact even
 *		when an order's lines were split between workers; their flat form;
 *		the 1.0 form of the counts.
 */
#include <stdlib.h>
#include <string.h>

#include "cooccur.h"
#include "ups_host.h"
#include "unit.h"

static bool
counts_equal(const CoocCounts *x, const CoocCounts *y)
{
	return x->orders == y->orders && x->big_orders == y->big_orders &&
		x->nitems == y->nitems && x->npairs == y->npairs &&
		memcmp(x->item_ids, y->item_ids, x->nitems * 8) == 0 &&
		memcmp(x->item_counts, y->item_counts, x->nitems * 8) == 0 &&
		memcmp(x->row, y->row, (x->nitems + 1) * sizeof(size_t)) == 0 &&
		(x->npairs == 0 || memcmp(x->pairs, y->pairs, x->npairs * sizeof(CoocEntry)) == 0);
}

/*
 * Random orders dealt to nparts workers the way a parallel scan does: runs
 * of lines in table order go to one worker, so the orders at the ends of a
 * run are split; a few late lines of old orders go anywhere.  The whole
 * count and the combined partial counts must be identical.  Worker i's
 * state is made in modes[i % nmodes]; `products` distinct products at most.
 */
static void
check_split_modes(int nparts, int max_basket, uint64_t seed,
				  const CoocPartialMode *modes, int nmodes, int products)
{
	CoocLines	whole,
				parts[4];
	CoocCounts	expected;
	CoocPartial p[4],
				acc,
				next;
	int			w = 0,
				i;
	uint64_t	rng = seed;

	cooc_lines_init(&whole);
	for (i = 0; i < nparts; i++)
		cooc_lines_init(&parts[i]);
	for (int o = 0; o < 3000; o++)
	{
		int			size = 1 + (int) (unit_xorshift(&rng) % 12);

		for (int k = 0; k < size; k++)
		{
			int64_t		product = (int64_t) (unit_xorshift(&rng) % (uint64_t) products) *
				(int64_t) (unit_xorshift(&rng) % (uint64_t) products);
			int64_t		order = o;

			/* one line in 50 belongs to an older order (a late line) */
			if (unit_xorshift(&rng) % 50 == 0)
				order = (int64_t) (unit_xorshift(&rng) % (uint64_t) (o + 1));
			/* a new run of lines starts every 37 lines or so */
			if (unit_xorshift(&rng) % 37 == 0)
				w = (int) (unit_xorshift(&rng) % (uint64_t) nparts);
			cooc_lines_add(&whole, order, product);
			cooc_lines_add(&parts[w], order, product);
		}
	}
	CHECK(cooc_count(&whole, max_basket, &expected) == NULL);

	CHECK(cooc_partial_count(&parts[0], max_basket, modes[0], &acc) == NULL);
	for (i = 1; i < nparts; i++)
	{
		CHECK(cooc_partial_count(&parts[i], max_basket, modes[i % nmodes], &p[i]) == NULL);
		CHECK(cooc_partial_combine(&next, &acc, &p[i], max_basket) == NULL);
		cooc_partial_free(&acc);
		cooc_partial_free(&p[i]);
		acc = next;
	}
	CHECK(cooc_partial_finish(&acc, max_basket) == NULL);
	CHECK(acc.counted);
	CHECK(counts_equal(&acc.counts, &expected));
	CHECK_EQ_INT(acc.counts.skipped_lines, expected.skipped_lines);
	CHECK_EQ_INT(acc.norders, expected.orders);
	cooc_partial_free(&acc);
	cooc_counts_free(&expected);
	ups_free(whole.lines);
	for (i = 0; i < nparts; i++)
		ups_free(parts[i].lines);
}

/* States that carry pair counts, as the existing tests always made them. */
static void
check_split(int nparts, int max_basket, uint64_t seed)
{
	static const CoocPartialMode pairs[] = {COOC_PARTIAL_PAIRS};

	check_split_modes(nparts, max_basket, seed, pairs, 1, 60);
}

UNIT_TEST(cooc_partial_two_workers_equal_one_count)
{
	check_split(2, 0, 11);
}

/* States that carry their orders only: the leader counts the united orders. */
UNIT_TEST(cooc_partial_orders_only_equal_one_count)
{
	static const CoocPartialMode orders[] = {COOC_PARTIAL_ORDERS};

	check_split_modes(2, 0, 21, orders, 1, 60);
	check_split_modes(4, 0, 22, orders, 1, 60);
	/* big orders judged on the whole order, at the end */
	check_split_modes(3, 8, 23, orders, 1, 60);
}

/* A state with pairs and one without: the pairs are counted again, exactly. */
UNIT_TEST(cooc_partial_mixed_states_equal_one_count)
{
	static const CoocPartialMode mixed[] = {COOC_PARTIAL_PAIRS, COOC_PARTIAL_ORDERS};
	static const CoocPartialMode mixed2[] = {COOC_PARTIAL_ORDERS, COOC_PARTIAL_PAIRS,
	COOC_PARTIAL_PAIRS};

	check_split_modes(2, 0, 31, mixed, 2, 60);
	check_split_modes(4, 8, 32, mixed2, 3, 60);
}

/*
 * AUTO: few products for many orders (dense pairs) are counted in the
 * worker, a long tail of products is not; both exact.
 */
UNIT_TEST(cooc_partial_auto_chooses_by_density)
{
	static const CoocPartialMode autom[] = {COOC_PARTIAL_AUTO};
	CoocLines	dense,
				sparse;
	CoocPartial d,
				sp;
	uint64_t	rng = 41;

	cooc_lines_init(&dense);
	cooc_lines_init(&sparse);
	for (int o = 0; o < 2000; o++)
		for (int k = 0; k < 6; k++)
		{
			cooc_lines_add(&dense, o, (int64_t) (unit_xorshift(&rng) % 10));
			cooc_lines_add(&sparse, o, (int64_t) (unit_xorshift(&rng) % 100000));
		}
	CHECK(cooc_partial_count(&dense, 0, COOC_PARTIAL_AUTO, &d) == NULL);
	CHECK(cooc_partial_count(&sparse, 0, COOC_PARTIAL_AUTO, &sp) == NULL);
	CHECK(d.counted);
	CHECK(!sp.counted);
	CHECK_EQ_INT(sp.counts.npairs, 0);
	cooc_partial_free(&d);
	cooc_partial_free(&sp);
	ups_free(dense.lines);
	ups_free(sparse.lines);
	check_split_modes(3, 0, 42, autom, 1, 4);
	check_split_modes(3, 0, 43, autom, 1, 3000);
}

UNIT_TEST(cooc_partial_four_workers_equal_one_count)
{
	check_split(4, 0, 12);
}

/* An order split in two small halves can be big together, and vice versa. */
UNIT_TEST(cooc_partial_big_orders_judged_on_the_whole_order)
{
	check_split(3, 8, 13);
}

UNIT_TEST(cooc_partial_combine_with_empty)
{
	CoocLines	l,
				none;
	CoocPartial a,
				e,
				r;

	cooc_lines_init(&l);
	cooc_lines_init(&none);
	cooc_lines_add(&l, 1, 5);
	cooc_lines_add(&l, 1, 6);
	cooc_lines_add(&l, 2, 5);
	CHECK(cooc_partial_count(&l, 0, COOC_PARTIAL_PAIRS, &a) == NULL);
	CHECK(cooc_partial_count(&none, 0, COOC_PARTIAL_PAIRS, &e) == NULL);
	CHECK(cooc_partial_combine(&r, &e, &a, 0) == NULL);
	CHECK(counts_equal(&r.counts, &a.counts));
	CHECK_EQ_INT(r.norders, 2);
	cooc_partial_free(&a);
	cooc_partial_free(&e);
	cooc_partial_free(&r);
	ups_free(l.lines);
}

/*
 * States that contradict each other (here: both counted order 1 as too big
 * for pairs, the leader not) are an error, never a negative count.
 */
UNIT_TEST(cooc_partial_inconsistent_states_are_an_error)
{
	CoocLines	l1,
				l2;
	CoocPartial a,
				b,
				r;

	cooc_lines_init(&l1);
	cooc_lines_init(&l2);
	cooc_lines_add(&l1, 1, 5);
	cooc_lines_add(&l1, 1, 6);
	cooc_lines_add(&l2, 1, 5);
	cooc_lines_add(&l2, 1, 6);
	CHECK(cooc_partial_count(&l1, 1, COOC_PARTIAL_PAIRS, &a) == NULL);
	CHECK(cooc_partial_count(&l2, 1, COOC_PARTIAL_PAIRS, &b) == NULL);
	CHECK(cooc_partial_combine(&r, &a, &b, 0) != NULL);
	CHECK_EQ_INT(r.norders, 0);
	cooc_partial_free(&a);
	cooc_partial_free(&b);
	ups_free(l1.lines);
	ups_free(l2.lines);
}

static void
small_partial_mode(CoocPartial *p, CoocLines *l, CoocPartialMode mode)
{
	static const int64_t data[][2] = {
		{1, 30}, {1, 10}, {2, 20}, {1, 20}, {3, 20}, {2, 10}, {4, 30}, {4, 10}, {5, 99}
	};

	cooc_lines_init(l);
	for (size_t i = 0; i < sizeof(data) / sizeof(data[0]); i++)
		cooc_lines_add(l, data[i][0], data[i][1]);
	l->skipped = 2;
	CHECK(cooc_partial_count(l, 0, mode, p) == NULL);
}

static void
small_partial(CoocPartial *p, CoocLines *l)
{
	small_partial_mode(p, l, COOC_PARTIAL_PAIRS);
}

static void
check_round_trip(CoocPartialMode mode)
{
	CoocLines	l;
	CoocPartial p,
				q;
	size_t		size,
				cut;
	char	   *buf;
	int			errors = 0;

	small_partial_mode(&p, &l, mode);
	size = cooc_partial_serialized_size(&p);
	buf = ups_alloc(size);
	cooc_partial_serialize(&p, buf);
	CHECK(cooc_partial_deserialize(buf, size, &q) == NULL);
	CHECK(counts_equal(&p.counts, &q.counts));
	CHECK(q.counted == p.counted);
	CHECK_EQ_INT(q.counts.skipped_lines, 2);
	CHECK_EQ_INT(q.norders, p.norders);
	CHECK(memcmp(p.order_keys, q.order_keys, p.norders * 8) == 0);
	CHECK(memcmp(p.products, q.products, p.order_start[p.norders] * 4) == 0);
	cooc_partial_free(&q);
	for (cut = 0; cut < size; cut++)
	{
		if (cooc_partial_deserialize(buf, cut, &q) != NULL)
			errors++;
		cooc_partial_free(&q);
	}
	CHECK_EQ_INT(errors, size);
	ups_free(buf);
	cooc_partial_free(&p);
	ups_free(l.lines);
}

UNIT_TEST(cooc_partial_serialization_round_trips)
{
	check_round_trip(COOC_PARTIAL_PAIRS);
	check_round_trip(COOC_PARTIAL_ORDERS);
}

/* Random bit flips: an error or a state that passes every check, no crash. */
static void
check_corruption(CoocPartialMode mode)
{
	CoocLines	l;
	CoocPartial p,
				q,
				r;
	size_t		size;
	char	   *good,
			   *bad;
	int			rejected = 0;
	uint64_t	rng = 99;

	small_partial_mode(&p, &l, mode);
	size = cooc_partial_serialized_size(&p);
	good = ups_alloc(size);
	bad = ups_alloc(size);
	cooc_partial_serialize(&p, good);
	for (int round = 0; round < 20000; round++)
	{
		memcpy(bad, good, size);
		bad[unit_xorshift(&rng) % size] ^= (char) (1 << (unit_xorshift(&rng) % 8));
		if (cooc_partial_deserialize(bad, size, &q) != NULL)
			rejected++;
		else
		{
			/* what passed is safe to combine and finish */
			if (cooc_partial_combine(&r, &q, &p, 0) == NULL)
			{
				(void) cooc_partial_finish(&r, 0);
				cooc_partial_free(&r);
			}
		}
		cooc_partial_free(&q);
	}
	CHECK(rejected > 0);
	ups_free(good);
	ups_free(bad);
	cooc_partial_free(&p);
	ups_free(l.lines);
}

UNIT_TEST(cooc_partial_deserialize_survives_corruption)
{
	check_corruption(COOC_PARTIAL_PAIRS);
	check_corruption(COOC_PARTIAL_ORDERS);
}

/* Values stored by version 1.0: (a, b, count) triples. */
UNIT_TEST(cooc_counts_reads_the_1_0_form)
{
	CoocLines	l;
	CoocPartial p;
	CoocCounts	c;
	const CoocCounts *src;
	size_t		size,
				i;
	char	   *buf,
			   *w;
	uint32_t	magic = 0x31435055;
	uint64_t	npairs;

	small_partial(&p, &l);
	src = &p.counts;
	npairs = src->npairs;
	size = 40 + (size_t) src->nitems * 16 + src->npairs * 16;
	buf = w = ups_alloc(size);
	memcpy(w, &magic, 4);
	memcpy(w + 4, &src->nitems, 4);
	memcpy(w + 8, &src->orders, 8);
	memcpy(w + 16, &src->skipped_lines, 8);
	memcpy(w + 24, &src->big_orders, 8);
	memcpy(w + 32, &npairs, 8);
	w += 40;
	memcpy(w, src->item_ids, src->nitems * 8);
	w += src->nitems * 8;
	memcpy(w, src->item_counts, src->nitems * 8);
	w += src->nitems * 8;
	for (uint32_t a = 0; a < src->nitems; a++)
		for (i = src->row[a]; i < src->row[a + 1]; i++)
		{
			int64_t		count = src->pairs[i].together;

			memcpy(w, &a, 4);
			memcpy(w + 4, &src->pairs[i].partner, 4);
			memcpy(w + 8, &count, 8);
			w += 16;
		}
	CHECK(cooc_counts_deserialize(buf, size, true, &c) == NULL);
	CHECK(counts_equal(&c, src));
	cooc_counts_free(&c);
	/* pairs out of order are rejected */
	if (npairs >= 2)
	{
		char		tmp[16];
		char	   *pairs = buf + 40 + src->nitems * 16;

		memcpy(tmp, pairs, 16);
		memcpy(pairs, pairs + 16, 16);
		memcpy(pairs + 16, tmp, 16);
		CHECK(cooc_counts_deserialize(buf, size, false, &c) != NULL);
		cooc_counts_free(&c);
	}
	ups_free(buf);
	cooc_partial_free(&p);
	ups_free(l.lines);
}
