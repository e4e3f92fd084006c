/*
 * itemsets_fold.c
 *		The frequent sets of 2 and 3 products after new lines, from the
 *		frequent sets before and the orders the new lines changed (see
 *		itemsets.h, itemsets_fold).
 *
 * Why not mine again: at 10M order lines FP-growth took about 3 s of the
 * bundles' 5-5.6 s of CPU every hour.  A set's count changes only if an
 * order that gained lines holds it; every other set keeps the count it was
 * stored with.  The sets inside the changed orders are counted again over
 * every order, old and new, in one pass: each order's products
 * that are in a changed order, taken two and three at a time and looked up
 * in a hash of the sets to count.  The lines are read whole anyway: the
 * products' counts, which every lift divides by, move with any order.  A
 * set that was not frequent and becomes so is always inside a changed
 * order, so the count of each is exact, and the sets are those mining every
 * line finds, with the same counts, ranks and so lifts.
 */
#include "itemsets.h"

#include <stdlib.h>
#include <string.h>

#include "sorting.h"
#include "ups_host.h"

#define NO_RANK		UINT32_MAX
/* three ranks in a 64-bit key */
#define RANK_BITS	21
/* see itemsets_fold: 1% new orders at 10M bench lines need 4.4 a line */
#define FOLD_LOOKUPS_PER_LINE 64

typedef struct RankedProduct
{
	int64_t		id;
	int64_t		count;
	uint32_t	number;
} RankedProduct;

/* Descending count, then ascending id: the miner's ranks (itemsets.c). */
static int
ranked_cmp(const void *pa, const void *pb)
{
	const RankedProduct *a = pa;
	const RankedProduct *b = pb;

	if (a->count != b->count)
		return a->count > b->count ? -1 : 1;
	return a->id < b->id ? -1 : (a->id > b->id ? 1 : 0);
}

static int
key_cmp(const void *pa, const void *pb)
{
	int64_t		a = *(const int64_t *) pa;
	int64_t		b = *(const int64_t *) pb;

	return a < b ? -1 : (a > b ? 1 : 0);
}

static uint64_t
pair_key(uint32_t a, uint32_t b)
{
	return ((uint64_t) a << 32) | b;
}

static uint64_t
triple_key(uint32_t a, uint32_t b, uint32_t c)
{
	return ((uint64_t) a << (2 * RANK_BITS)) | ((uint64_t) b << RANK_BITS) | c;
}

static bool
has_key(const uint64_t *keys, size_t n, uint64_t key)
{
	size_t		lo = 0,
				hi = n;

	while (lo < hi)
	{
		size_t		mid = lo + (hi - lo) / 2;

		if (keys[mid] < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && keys[lo] == key;
}

static size_t
sort_unique(uint64_t *v, size_t n)
{
	size_t		i,
				k = 0;

	ups_sort_uint64(v, n);
	for (i = 0; i < n; i++)
		if (k == 0 || v[k - 1] != v[i])
			v[k++] = v[i];
	return k;
}

/*
 * The sets counted again, by key: open addressing over a power of two,
 * index + 1 in each slot (0 free).
 */
typedef struct KeyIndex
{
	uint32_t   *slots;
	size_t		mask;
	const uint64_t *keys;
} KeyIndex;

static size_t
key_slot(uint64_t key, size_t mask)
{
	return (size_t) ((key * UINT64_C(0x9E3779B97F4A7C15)) >> 20) & mask;
}

static void
index_keys(KeyIndex *x, const uint64_t *keys, size_t n)
{
	size_t		size = 16,
				i;

	while (size < 2 * n)
		size *= 2;
	x->slots = ups_alloc0(size * sizeof(uint32_t));
	x->mask = size - 1;
	x->keys = keys;
	for (i = 0; i < n; i++)
	{
		size_t		h = key_slot(keys[i], x->mask);

		while (x->slots[h] != 0)
			h = (h + 1) & x->mask;
		x->slots[h] = (uint32_t) (i + 1);
	}
}

/* The index of key, or -1. */
static int64_t
find_key(const KeyIndex *x, uint64_t key)
{
	size_t		h = key_slot(key, x->mask);

	while (x->slots[h] != 0)
	{
		if (x->keys[x->slots[h] - 1] == key)
			return (int64_t) x->slots[h] - 1;
		h = (h + 1) & x->mask;
	}
	return -1;
}

/*
 * Whether the pair (a, b), a < b, is among those counted again, in
 * min_count orders or more (pair_counts by the index's keys).
 */
static bool
pair_frequent(const KeyIndex *x, const int64_t *pair_counts, int64_t min_count, uint32_t a, uint32_t b)
{
	int64_t		p = find_key(x, pair_key(a, b));

	return p >= 0 && pair_counts[p] >= min_count;
}

/*
 * Each order of the lines in turn: the ranks of its products that are
 * followed, ascending, into in_order; returns how many, and sets *end to
 * the order's end.
 */
static size_t
order_followed(const CoocLines *lines, const uint32_t *idx, const bool *followed, size_t from,
			   uint32_t *in_order, size_t *end)
{
	int64_t		key = lines->lines[from].order_key;
	size_t		n = 0,
				j;

	for (j = from; j < lines->n && lines->lines[j].order_key == key; j++)
		if (idx[j] != NO_RANK && followed[idx[j]])
			in_order[n++] = idx[j];
	*end = j;
	if (n > 1)
		ups_sort_uint32(in_order, n);
	return n;
}

/* A set of the result: members are ranks, ascending. */
static void
put_set(Itemsets *out, size_t *nmembers, const uint32_t *ranks, int k, int64_t count)
{
	int			i;

	for (i = 0; i < k; i++)
		out->members[(*nmembers)++] = ranks[i];
	out->set_counts[out->nsets] = count;
	out->nsets++;
	out->set_start[out->nsets] = *nmembers;
}

ItemsetStatus
itemsets_fold(CoocLines *lines, const StoredSets *stored, const int64_t *changed,
			  size_t nchanged, const ItemsetParams *params, Itemsets *out)
{
	const uint64_t mask = ((uint64_t) 1 << RANK_BITS) - 1;
	int64_t		min_count = params->min_count < 1 ? 1 : params->min_count;
	ItemsetStatus status = ITEMSETS_OK;
	uint32_t   *idx = NULL;
	int64_t    *ids = NULL;
	int64_t    *counts = NULL;
	uint32_t   *rank_of = NULL;
	RankedProduct *ranked = NULL;
	int64_t    *keys = NULL;
	size_t	   *order_start = NULL;	/* the changed orders' ranks */
	uint32_t   *order_ranks = NULL;
	bool	   *followed = NULL;	/* by rank: looked up in every order */
	uint32_t   *in_order = NULL;
	uint64_t   *pairs = NULL;
	int64_t    *pair_counts = NULL;
	uint64_t   *triples = NULL;
	int64_t    *triple_counts = NULL;
	uint32_t   *stored_ranks = NULL;
	KeyIndex	pair_index = {0},
				triple_index = {0};
	double		lookups = 0;	/* of the pair pass, against the guard */
	size_t		nprod = 0,
				nfreq = 0,
				ncorders = 0,
				ncranks = 0,
				npairs = 0,
				nfrequent_pairs = 0,
				ntriples = 0,
				nfrequent_triples = 0,
				nkept = 0,
				kept_members = 0,
				nmembers = 0,
				pair_bytes = 0,
				triple_bytes = 0,
				longest = 0,
				i,
				j,
				o,
				c;

	memset(out, 0, sizeof(*out));
	if (params->max_size < 2 || params->max_size > 3)
		return ITEMSETS_FOLD_UNSUPPORTED;
	out->transactions = itemsets_count_orders(lines);
	if (lines->n >= NO_RANK)
		return ITEMSETS_FOLD_UNSUPPORTED;

	/* the products' order counts over every line, and their ranks */
	idx = ups_alloc(lines->n * sizeof(uint32_t) + 1);
	ids = cooc_product_numbers(lines, idx, &nprod);
	counts = ups_alloc0(nprod * sizeof(int64_t) + 1);
	rank_of = ups_alloc(nprod * sizeof(uint32_t) + 1);
	for (i = 0; i < lines->n; i++)
		counts[idx[i]]++;
	for (i = 0; i < nprod; i++)
		nfreq += counts[i] >= min_count;
	if (nfreq >= ((size_t) 1 << RANK_BITS))
	{
		status = ITEMSETS_FOLD_UNSUPPORTED;
		goto done;
	}
	ranked = ups_alloc(nfreq * sizeof(RankedProduct) + 1);
	nfreq = 0;
	for (i = 0; i < nprod; i++)
	{
		rank_of[i] = NO_RANK;
		if (counts[i] >= min_count)
			ranked[nfreq++] = (RankedProduct)
		{
			ids[i], counts[i], (uint32_t) i
		};
	}
	qsort(ranked, nfreq, sizeof(RankedProduct), ranked_cmp);
	out->item_ids = ups_alloc(nfreq * sizeof(int64_t) + 1);
	out->item_counts = ups_alloc(nfreq * sizeof(int64_t) + 1);
	for (i = 0; i < nfreq; i++)
	{
		rank_of[ranked[i].number] = (uint32_t) i;
		out->item_ids[i] = ranked[i].id;
		out->item_counts[i] = ranked[i].count;
	}
	out->nitems = (uint32_t) nfreq;
	for (i = 0; i < lines->n; i++)
		idx[i] = rank_of[idx[i]];
	ups_check_interrupts();

	/* the changed orders' frequent products, ascending ranks */
	keys = ups_alloc(nchanged * sizeof(int64_t) + 1);
	memcpy(keys, changed, nchanged * sizeof(int64_t));
	qsort(keys, nchanged, sizeof(int64_t), key_cmp);
	followed = ups_alloc0(nfreq + 1);
	order_start = ups_alloc((nchanged + 1) * sizeof(size_t));
	/* (sized first: the longest order, and the changed orders' lines) */
	c = 0;
	for (i = 0; i < lines->n; i = j)
	{
		int64_t		key = lines->lines[i].order_key;

		for (j = i; j < lines->n && lines->lines[j].order_key == key; j++)
			;
		if (j - i > longest)
			longest = j - i;
		while (c < nchanged && keys[c] < key)
			c++;
		if (c < nchanged && keys[c] == key)
			ncranks += j - i;
	}
	order_ranks = ups_alloc(ncranks * sizeof(uint32_t) + 1);
	in_order = ups_alloc(longest * sizeof(uint32_t) + 1);
	ncranks = 0;
	order_start[0] = 0;
	c = 0;
	for (i = 0; i < lines->n; i = j)
	{
		int64_t		key = lines->lines[i].order_key;

		for (j = i; j < lines->n && lines->lines[j].order_key == key; j++)
			;
		while (c < nchanged && keys[c] < key)
			c++;
		if (c < nchanged && keys[c] == key)
		{
			size_t		from = ncranks;

			for (o = i; o < j; o++)
				if (idx[o] != NO_RANK)
					order_ranks[ncranks++] = idx[o];
			ups_sort_uint32(order_ranks + from, ncranks - from);
			if (ncranks - from >= 2)
			{
				order_start[++ncorders] = ncranks;
				for (o = from; o < ncranks; o++)
					followed[order_ranks[o]] = true;
			}
			else
				ncranks = from;
		}
	}

	/* the pairs and triples inside them (bounded by the memory limit) */
	for (o = 0; o < ncorders; o++)
	{
		size_t		k = order_start[o + 1] - order_start[o];

		pair_bytes += k * (k - 1) / 2 * sizeof(uint64_t);
		if (params->max_size > 2)
			triple_bytes += k * (k - 1) * (k - 2) / 6 * sizeof(uint64_t);
	}
	if (params->memory_limit && (pair_bytes + triple_bytes) * 3 > params->memory_limit)
	{
		status = ITEMSETS_MEMORY_LIMIT;
		goto done;
	}
	pairs = ups_alloc(pair_bytes + 1);
	for (o = 0; o < ncorders; o++)
		for (i = order_start[o]; i < order_start[o + 1]; i++)
			for (j = i + 1; j < order_start[o + 1]; j++)
				pairs[npairs++] = pair_key(order_ranks[i], order_ranks[j]);
	npairs = sort_unique(pairs, npairs);
	pair_counts = ups_alloc0(npairs * sizeof(int64_t) + 1);
	index_keys(&pair_index, pairs, npairs);

	/*
	 * Counted in one pass over every order, each order's followed products
	 * taken two by two and looked up.  (Intersecting the orders of each
	 * pair's two products took 5 s for the pairs of 1% new orders at 10M
	 * lines, and walking the orders of one product of each pair 1.5 s: the
	 * products of new orders are in most orders, and each walk read them out
	 * of order.)  The lookups grow with the square and the cube of an
	 * order's followed products: past FOLD_LOOKUPS_PER_LINE per line over
	 * the pass (orders of hundreds of the changed orders' products),
	 * FP-growth, which shares their prefixes, is left to count them; the
	 * sum only grows, so stopping once it passes decides as a pass of its
	 * own before would.
	 */
	for (i = 0; i < lines->n; i = j)
	{
		size_t		nin = order_followed(lines, idx, followed, i, in_order, &j),
					x,
					y;

		if (nin >= 2)
		{
			double		k = (double) nin;

			lookups += k * (k - 1) / 2 * (1 + (params->max_size > 2 ? (k - 2) / 3 : 0));
			if (lookups > FOLD_LOOKUPS_PER_LINE * (double) lines->n)
			{
				status = ITEMSETS_FOLD_UNSUPPORTED;
				goto done;
			}
		}
		for (x = 0; x + 1 < nin; x++)
			for (y = x + 1; y < nin; y++)
			{
				int64_t		p = find_key(&pair_index, pair_key(in_order[x], in_order[y]));

				if (p >= 0)
					pair_counts[p]++;
			}
		if ((j >> 16) != (i >> 16))
			ups_check_interrupts();
	}
	for (i = 0; i < npairs; i++)
		nfrequent_pairs += pair_counts[i] >= min_count;

	/*
	 * The triples inside changed orders whose three pairs are frequent,
	 * counted the same way
	 */
	if (params->max_size > 2)
	{
		triples = ups_alloc(triple_bytes + 1);
		for (o = 0; o < ncorders; o++)
		{
			size_t		from = order_start[o],
						to = order_start[o + 1],
						l;

			for (i = from; i < to; i++)
				for (j = i + 1; j < to; j++)
				{
					if (!pair_frequent(&pair_index, pair_counts, min_count, order_ranks[i], order_ranks[j]))
						continue;
					for (l = j + 1; l < to; l++)
						if (pair_frequent(&pair_index, pair_counts, min_count, order_ranks[i], order_ranks[l]) &&
							pair_frequent(&pair_index, pair_counts, min_count, order_ranks[j], order_ranks[l]))
							triples[ntriples++] = triple_key(order_ranks[i], order_ranks[j], order_ranks[l]);
				}
			if ((o & 0xff) == 0)
				ups_check_interrupts();
		}
		ntriples = sort_unique(triples, ntriples);
		triple_counts = ups_alloc0(ntriples * sizeof(int64_t) + 1);
		/* only the products of some triple are looked up */
		memset(followed, 0, nfreq);
		for (i = 0; i < ntriples; i++)
		{
			followed[triples[i] >> (2 * RANK_BITS)] = true;
			followed[(triples[i] >> RANK_BITS) & mask] = true;
			followed[triples[i] & mask] = true;
		}
		index_keys(&triple_index, triples, ntriples);
		for (i = 0; i < lines->n && ntriples > 0; i = j)
		{
			size_t		nin = order_followed(lines, idx, followed, i, in_order, &j),
						x,
						y,
						z;

			for (x = 0; x + 2 < nin; x++)
				for (y = x + 1; y + 1 < nin; y++)
					for (z = y + 1; z < nin; z++)
					{
						int64_t		t = find_key(&triple_index,
												 triple_key(in_order[x], in_order[y], in_order[z]));

						if (t >= 0)
							triple_counts[t]++;
					}
			if ((j >> 16) != (i >> 16))
				ups_check_interrupts();
		}
		for (i = 0; i < ntriples; i++)
			nfrequent_triples += triple_counts[i] >= min_count;
	}

	/*
	 * The stored sets outside every changed order keep their counts; a
	 * stored set that names a product no longer frequent, or is larger than
	 * max_size, was not stored from these lines at this count
	 */
	stored_ranks = ups_alloc((stored->nsets ? stored->start[stored->nsets] : 0) * sizeof(uint32_t) + 1);
	for (i = 0; i < stored->nsets; i++)
	{
		size_t		from = stored->start[i],
					k = stored->start[i + 1] - from;
		uint32_t   *rk = stored_ranks + from;

		if (k < 2 || k > (size_t) params->max_size || stored->counts[i] < min_count)
		{
			status = ITEMSETS_STORED_STALE;
			goto done;
		}
		for (j = 0; j < k; j++)
		{
			int64_t		id = stored->ids[from + j];
			size_t		lo = 0,
						hi = nprod;

			/* (the products' ids ascend: cooc_product_numbers) */
			while (lo < hi)
				if (ids[lo + (hi - lo) / 2] < id)
					lo += (hi - lo) / 2 + 1;
				else
					hi = lo + (hi - lo) / 2;
			if (lo == nprod || ids[lo] != id || rank_of[lo] == NO_RANK)
			{
				status = ITEMSETS_STORED_STALE;
				goto done;
			}
			rk[j] = rank_of[lo];
		}
		ups_sort_uint32(rk, k);
		if (k == 2 ? has_key(pairs, npairs, pair_key(rk[0], rk[1]))
			: has_key(triples, ntriples, triple_key(rk[0], rk[1], rk[2])))
			rk[0] = NO_RANK;	/* inside a changed order: counted again */
		else
		{
			nkept++;
			kept_members += k;
		}
		if ((i & 0xfff) == 0)
			ups_check_interrupts();
	}

	/* the result: kept sets, then those counted again that are frequent */
	out->set_start = ups_alloc((nkept + nfrequent_pairs + nfrequent_triples + 1) * sizeof(size_t));
	out->set_counts = ups_alloc((nkept + nfrequent_pairs + nfrequent_triples + 1) * sizeof(int64_t));
	out->members = ups_alloc((kept_members + 2 * nfrequent_pairs + 3 * nfrequent_triples + 1) *
							 sizeof(uint32_t));
	out->set_start[0] = 0;
	for (i = 0; i < stored->nsets; i++)
	{
		size_t		from = stored->start[i];

		if (stored_ranks[from] != NO_RANK)
			put_set(out, &nmembers, stored_ranks + from, (int) (stored->start[i + 1] - from), stored->counts[i]);
	}
	for (i = 0; i < npairs; i++)
		if (pair_counts[i] >= min_count)
		{
			uint32_t	rk[2] = {(uint32_t) (pairs[i] >> 32), (uint32_t) pairs[i]};

			put_set(out, &nmembers, rk, 2, pair_counts[i]);
		}
	for (i = 0; i < ntriples; i++)
		if (triple_counts[i] >= min_count)
		{
			uint32_t	rk[3] = {(uint32_t) (triples[i] >> (2 * RANK_BITS)),
				(uint32_t) ((triples[i] >> RANK_BITS) & mask), (uint32_t) (triples[i] & mask)};

			put_set(out, &nmembers, rk, 3, triple_counts[i]);
		}

done:
	ups_free(idx);
	ups_free(ids);
	ups_free(counts);
	ups_free(rank_of);
	ups_free(ranked);
	ups_free(keys);
	ups_free(order_start);
	ups_free(order_ranks);
	ups_free(followed);
	ups_free(in_order);
	ups_free(pair_index.slots);
	ups_free(triple_index.slots);
	ups_free(pairs);
	ups_free(pair_counts);
	ups_free(triples);
	ups_free(triple_counts);
	ups_free(stored_ranks);
	if (status != ITEMSETS_OK)
		itemsets_free(out);
	return status;
}
