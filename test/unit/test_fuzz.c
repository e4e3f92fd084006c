/*
 * test_fuzz.c
 *		A mutation fuzzer over the serialized forms the server reads back:
 *		the stored upsell.cooccurrence value (counts), the partial states of
 *		the co-occurrence and purchase-interval aggregates that parallel
 *		workers send (counts with their orders' products, times), and the
 *		co-occurrence lines form kept for tools.
 *
 * Seeds are made by the core's own serializers from generated data, so the
 * fuzzer follows whatever the format becomes; every mutant goes through the
 * core's deserialize entry point.  A mutant must decode to an error or to a
 * value that passes as valid: it re-serializes to the same bytes and can be
 * used (merged, looked up, measured).  Run under ASan/UBSan by
 * `make unit-asan`, a crash or undefined behaviour fails the run.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cooccur.h"
#include "intervals.h"
#include "ups_host.h"
#include "unit.h"

#define MUTATIONS_PER_FORM	110000
#define MAX_MUTANT			(1 << 16)

typedef struct Seed
{
	char	   *buf;
	size_t		len;
} Seed;

static const int64_t interesting[] = {
	0, 1, -1, 2, 255, 256, 65535, 65536, INT32_MAX, (int64_t) INT32_MAX + 1, INT32_MIN,
	UINT32_MAX, (int64_t) 1 << 53, INT64_MAX, INT64_MAX - 1, INT64_MIN, INT64_MAX / 2 + 1
};

/*
 * One mutant of a seed (or of two, spliced) into out; returns its length.
 * The mutators: bit flips, interesting bytes and 8-byte words at any offset
 * (lengths and counts live in words), inserted, deleted and repeated runs,
 * truncation, random tails, splices.
 */
static size_t
mutate(const Seed *seeds, int nseeds, uint64_t *rng, char *out)
{
	const Seed *s = &seeds[unit_xorshift(rng) % nseeds];
	size_t		len = s->len;
	int			steps = 1 + (int) (unit_xorshift(rng) % 4);

	memcpy(out, s->buf, len);
	while (steps-- > 0)
	{
		uint64_t	r = unit_xorshift(rng);
		size_t		at = len ? (size_t) (unit_xorshift(rng) % len) : 0;

		switch (r % 9)
		{
			case 0:				/* flip a bit */
				if (len)
					out[at] ^= (char) (1 << (r >> 8) % 8);
				break;
			case 1:				/* an interesting byte */
				if (len)
					out[at] = (char) ((const unsigned char[]) {0, 1, 0x7f, 0x80, 0xff})[(r >> 8) % 5];
				break;
			case 2:				/* an interesting 8-byte word, aligned or not */
				if (len >= 8)
				{
					int64_t		v = interesting[(r >> 8) % (sizeof interesting / sizeof interesting[0])];

					at = (r >> 16) % 2 ? at - at % 8 : at;
					if (at + 8 > len)
						at = len - 8;
					memcpy(out + at, &v, 8);
				}
				break;
			case 3:				/* an interesting 4-byte word */
				if (len >= 4)
				{
					uint32_t	v = (uint32_t) interesting[(r >> 8) % (sizeof interesting / sizeof interesting[0])];

					if (at + 4 > len)
						at = len - 4;
					memcpy(out + at, &v, 4);
				}
				break;
			case 4:				/* truncate */
				len = at;
				break;
			case 5:				/* delete a run */
				{
					size_t		n = 1 + (r >> 8) % 16;

					if (at + n <= len)
					{
						memmove(out + at, out + at + n, len - at - n);
						len -= n;
					}
				}
				break;
			case 6:				/* insert random bytes */
				{
					size_t		n = 1 + (r >> 8) % 16,
								i;

					if (len + n <= MAX_MUTANT)
					{
						memmove(out + at + n, out + at, len - at);
						for (i = 0; i < n; i++)
							out[at + i] = (char) unit_xorshift(rng);
						len += n;
					}
				}
				break;
			case 7:				/* repeat a run (a record twice) */
				{
					size_t		n = 1 + (r >> 8) % 32;

					if (at + n <= len && len + n <= MAX_MUTANT)
					{
						memmove(out + at + n, out + at, len - at);
						len += n;
					}
				}
				break;
			case 8:				/* splice: the tail of another seed */
				{
					const Seed *o = &seeds[(r >> 8) % nseeds];
					size_t		from = o->len ? (size_t) ((r >> 24) % o->len) : 0;

					if (at + (o->len - from) <= MAX_MUTANT)
					{
						memcpy(out + at, o->buf + from, o->len - from);
						len = at + (o->len - from);
					}
				}
				break;
		}
	}
	return len;
}

static void
free_seeds(Seed *seeds, int nseeds)
{
	int			i;

	for (i = 0; i < nseeds; i++)
		ups_free(seeds[i].buf);
}

/* The partner row a pair belongs to: the last row that starts at or before it. */
static uint32_t
row_of_pair(const CoocCounts *c, size_t pair)
{
	uint32_t	a = 0;

	while (a + 1 < c->nitems && c->row[a + 1] <= pair)
		a++;
	return a;
}

/* Lines of random orders: n lines over `products` products. */
static void
random_lines(CoocLines *l, uint64_t *rng, size_t n, int products, int64_t id_scale)
{
	size_t		i;

	cooc_lines_init(l);
	for (i = 0; i < n; i++)
		cooc_lines_add(l, (int64_t) (unit_xorshift(rng) % (n / 3 + 1)),
					   (int64_t) (unit_xorshift(rng) % products) * id_scale - id_scale);
}

static Seed
seed_of_counts(const CoocCounts *c)
{
	Seed		s;

	s.len = cooc_counts_serialized_size(c);
	s.buf = ups_alloc(s.len);
	cooc_counts_serialize(c, s.buf);
	return s;
}

UNIT_TEST(fuzz_cooccurrence_value)
{
	Seed		seeds[5];
	int			nseeds = 0,
				i;
	uint64_t	rng = 0x5eed5eedULL;
	char	   *mutant = ups_alloc(MAX_MUTANT);
	char	   *again = ups_alloc(4 * MAX_MUTANT);
	long		accepted = 0,
				rejected = 0;

	/* empty, tiny, small, with skipped lines, with big ids */
	for (i = 0; i < 5; i++)
	{
		CoocLines	l;
		CoocCounts	c;

		random_lines(&l, &rng, (size_t[]) {0, 4, 60, 200, 30}[i], (int[]) {1, 3, 12, 25, 6}[i],
					 i == 4 ? INT64_C(1) << 40 : 1);
		l.skipped = i;
		CHECK(cooc_count(&l, i == 3 ? 4 : 0, &c) == NULL);
		seeds[nseeds++] = seed_of_counts(&c);
		cooc_counts_free(&c);
		ups_free(l.lines);
	}
	for (i = 0; i < MUTATIONS_PER_FORM; i++)
	{
		size_t		len = mutate(seeds, nseeds, &rng, mutant);
		CoocCounts	c;

		/* the server reads a stored value in place (borrow): both ways */
		if (cooc_counts_deserialize(mutant, len, i % 2 == 0, &c) != NULL)
		{
			rejected++;			/* nothing to free on error */
			continue;
		}
		accepted++;
		/* valid: canonical bytes, usable as the server uses it */
		CHECK(cooc_counts_serialized_size(&c) == len);
		if (cooc_counts_serialized_size(&c) == len)
		{
			cooc_counts_serialize(&c, again);
			CHECK(memcmp(again, mutant, len) == 0);
		}
		if (c.nitems > 0)
			CHECK(cooc_item_index(&c, c.item_ids[c.nitems - 1]) == (int64_t) c.nitems - 1);
		if (c.npairs > 0)
		{
			CoocMetrics m;
			const CoocEntry *p = &c.pairs[c.npairs - 1];
			uint32_t	a = row_of_pair(&c, c.npairs - 1);

			CHECK(p->partner > a && p->partner < c.nitems);
			CHECK(cooc_pair_count(&c, a, p->partner) == p->together);
			cooc_metrics(p->together, c.item_counts[a], c.item_counts[p->partner], c.orders, &m);
			CHECK(!isnan(m.support));
		}
		/*
		 * merged with itself: the sum, or an error where it would pass the
		 * format's limits (as cooccurrence_merge reports it), never a wrap
		 */
		{
			CoocCounts	sum;

			if (cooc_counts_merge(&sum, &c, &c) == NULL)
			{
				CHECK(sum.orders == 2 * c.orders && sum.nitems == c.nitems && sum.npairs == c.npairs);
				CHECK(sum.skipped_lines == 2 * c.skipped_lines);
				cooc_counts_free(&sum);
			}
			else
				CHECK(c.orders > (int64_t) UINT32_MAX / 2 || c.skipped_lines > INT64_MAX / 2 ||
					  c.npairs > 0);
		}
		cooc_counts_free(&c);
	}
	printf("  fuzz: cooccurrence value: %d mutants, %ld decoded, %ld rejected\n",
		   MUTATIONS_PER_FORM, accepted, rejected);
	CHECK(accepted > 0 && rejected > 0);
	free_seeds(seeds, nseeds);
	ups_free(mutant);
	ups_free(again);
}

/* Seeds of the forms made from random lines: the lines form, the partial state. */
static Seed
seed_of_lines(const CoocLines *l)
{
	Seed		s;

	s.len = cooc_lines_serialized_size(l);
	s.buf = ups_alloc(s.len);
	cooc_lines_serialize(l, s.buf);
	return s;
}

static Seed
seed_of_partial(CoocLines *l, int max_basket, CoocPartialMode mode)
{
	CoocPartial p;
	Seed		s;

	CHECK(cooc_partial_count(l, max_basket, mode, &p) == NULL);
	s.len = cooc_partial_serialized_size(&p);
	s.buf = ups_alloc(s.len);
	cooc_partial_serialize(&p, s.buf);
	cooc_partial_free(&p);
	return s;
}

/*
 * Four seeds from random lines (none, a few, many, big ids): the lines form
 * (one of them compacted), or the partial state (one with orders too big
 * for pairs; two with pair counts, two with orders only).
 */
static int
seeds_of_lines(Seed *seeds, uint64_t *rng, bool partial)
{
	int			i;

	for (i = 0; i < 4; i++)
	{
		CoocLines	l;

		random_lines(&l, rng, (size_t[]) {0, 5, 80, 40}[i], 10, i == 3 ? INT64_C(1) << 50 : 1);
		l.skipped = i;
		if (partial)
			seeds[i] = seed_of_partial(&l, i == 2 ? 3 : 0,
									   i % 2 == 0 ? COOC_PARTIAL_PAIRS : COOC_PARTIAL_ORDERS);
		else
		{
			if (i == 2)
				cooc_lines_compact(&l);
			seeds[i] = seed_of_lines(&l);
		}
		ups_free(l.lines);
	}
	return 4;
}

UNIT_TEST(fuzz_cooccurrence_partial_state)
{
	Seed		seeds[4];
	uint64_t	rng = 0xfeedULL;
	int			nseeds = seeds_of_lines(seeds, &rng, true),
				i;
	char	   *mutant = ups_alloc(MAX_MUTANT);
	char	   *again = ups_alloc(4 * MAX_MUTANT);
	long		accepted = 0;

	for (i = 0; i < MUTATIONS_PER_FORM; i++)
	{
		size_t		len = mutate(seeds, nseeds, &rng, mutant);
		CoocPartial p,
					both;

		if (cooc_partial_deserialize(mutant, len, &p) != NULL)
			continue;			/* nothing to free on error */
		accepted++;
		/* valid: canonical bytes */
		CHECK(cooc_partial_serialized_size(&p) == len);
		if (cooc_partial_serialized_size(&p) == len)
		{
			cooc_partial_serialize(&p, again);
			CHECK(memcmp(again, mutant, len) == 0);
		}

		/*
		 * The leader combines what workers sent.  With itself, every order
		 * is in both and counts once (or the combination reports an error).
		 */
		if (cooc_partial_combine(&both, &p, &p, 0) == NULL)
		{
			CHECK(both.norders == p.norders);
			/* and counts the pairs of states that carry orders only */
			(void) cooc_partial_finish(&both, 0);
			cooc_partial_free(&both);
		}
		cooc_partial_free(&p);
	}
	printf("  fuzz: cooccurrence partial state: %d mutants, %ld decoded\n", MUTATIONS_PER_FORM, accepted);
	CHECK(accepted > 0);
	free_seeds(seeds, nseeds);
	ups_free(mutant);
	ups_free(again);
}

UNIT_TEST(fuzz_cooccurrence_lines)
{
	Seed		seeds[4];
	uint64_t	rng = 0xbeefULL;
	int			nseeds = seeds_of_lines(seeds, &rng, false),
				i;
	char	   *mutant = ups_alloc(MAX_MUTANT);
	long		accepted = 0;

	for (i = 0; i < MUTATIONS_PER_FORM; i++)
	{
		size_t		len = mutate(seeds, nseeds, &rng, mutant);
		CoocLines	l;
		CoocCounts	c;

		memset(&l, 0, sizeof(l));
		if (cooc_lines_deserialize(mutant, len, &l) != NULL)
		{
			ups_free(l.lines);
			continue;
		}
		accepted++;
		/* what a tool sent is counted */
		if (cooc_count(&l, 3, &c) == NULL)
		{
			CHECK(c.orders >= 0 && c.skipped_lines == l.skipped);
			cooc_counts_free(&c);
		}
		ups_free(l.lines);
	}
	printf("  fuzz: cooccurrence lines: %d mutants, %ld decoded\n", MUTATIONS_PER_FORM, accepted);
	CHECK(accepted > 0);
	free_seeds(seeds, nseeds);
	ups_free(mutant);
}

UNIT_TEST(fuzz_interval_partial_state)
{
	Seed		seeds[3];
	int			nseeds = 0,
				i;
	uint64_t	rng = 0xabcdefULL;
	char	   *mutant = ups_alloc(MAX_MUTANT);
	long		accepted = 0;

	for (i = 0; i < 3; i++)
	{
		IvTimes		t;
		int			k;

		iv_times_init(&t);
		for (k = 0; k < (int[]) {0, 3, 50}[i]; k++)
			iv_times_add(&t, (int64_t) (unit_xorshift(&rng) % 1000000) * 86400);
		seeds[nseeds].len = iv_times_serialized_size(&t);
		seeds[nseeds].buf = ups_alloc(seeds[nseeds].len);
		iv_times_serialize(&t, seeds[nseeds].buf);
		nseeds++;
		ups_free(t.t);
	}
	for (i = 0; i < MUTATIONS_PER_FORM; i++)
	{
		size_t		len = mutate(seeds, nseeds, &rng, mutant);
		IvTimes		t;
		IvStats		s;

		if (iv_times_deserialize(mutant, len, &t) != NULL)
			continue;			/* nothing allocated */
		accepted++;
		/* any int64 instants: the statistics stay defined */
		iv_stats(&t, 86400.0, false, &s);
		CHECK(s.purchases <= (int64_t) t.n);
		ups_free(t.t);
	}
	printf("  fuzz: interval partial state: %d mutants, %ld decoded\n", MUTATIONS_PER_FORM, accepted);
	CHECK(accepted > 0);
	free_seeds(seeds, nseeds);
	ups_free(mutant);
}
