/*
 * cooccur.c
 *		Counting core for "frequently bought together" (see cooccur.h).
 */
#include "cooccur.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "idmap.h"
#include "sorting.h"
#include "ups_host.h"

#define LINES_MAGIC		0x314c5055	/* "UPL1" */
#define COUNTS_MAGIC_V1	0x31435055	/* "UPC1": pairs as (a, b, count) triples */
#define COUNTS_MAGIC	0x32435055	/* "UPC2": pairs row by row */
#define PARTIAL_MAGIC	0x31505055	/* "UPP1" */
#define PARTIAL_COUNTED	1			/* flag: the state carries pair counts */

#define PUT(buf, v) (memcpy((buf), &(v), sizeof(v)), (buf) += sizeof(v))
#define GET(buf, v) (memcpy(&(v), (buf), sizeof(v)), (buf) += sizeof(v))

#define LINES_HEADER	(4 + 4 + 8 + 8)
#define COUNTS_HEADER	(4 + 4 + 8 + 8 + 8 + 8)
_Static_assert(COUNTS_HEADER == COOC_COUNTS_HEADER, "the counts header's length is published");
#define PAIR_SIZE_V1	(4 + 4 + 8)
#define PARTIAL_HEADER	(4 + 4 + 8 + 8 + 8)

static void finish_flat(CoocCounts *c);

/* One-sided 95% normal quantile used by the ranking score. */
#define SCORE_Z			1.96

void
cooc_lines_init(CoocLines *lines)
{
	memset(lines, 0, sizeof(*lines));
	lines->compact = true;
}

static void
lines_reserve(CoocLines *lines, size_t want)
{
	size_t		cap;

	if (want <= lines->cap)
		return;
	cap = lines->cap ? lines->cap : 1024;
	while (cap < want)
		cap *= 2;
	lines->lines = lines->lines ? ups_realloc(lines->lines, cap * sizeof(CoocLine))
		: ups_alloc(cap * sizeof(CoocLine));
	lines->cap = cap;
}

void
cooc_lines_add(CoocLines *lines, int64_t order_key, int64_t product_id)
{
	CoocLine   *last;

	/*
	 * Order lines usually arrive grouped by order; skipping an exact repeat
	 * of the previous line keeps the state small without a sort.
	 */
	if (lines->n > 0)
	{
		last = &lines->lines[lines->n - 1];
		if (last->order_key == order_key && last->product_id == product_id)
			return;
		if (last->order_key > order_key ||
			(last->order_key == order_key && last->product_id > product_id))
			lines->compact = false;
	}
	lines_reserve(lines, lines->n + 1);
	lines->lines[lines->n].order_key = order_key;
	lines->lines[lines->n].product_id = product_id;
	lines->n++;
}

void
cooc_lines_append(CoocLines *dst, const CoocLines *src)
{
	if (src->n > 0)
	{
		lines_reserve(dst, dst->n + src->n);
		memcpy(dst->lines + dst->n, src->lines, src->n * sizeof(CoocLine));
		dst->n += src->n;
		dst->compact = false;
	}
	dst->skipped += src->skipped;
}

static int
line_cmp(const void *pa, const void *pb)
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
 * Sorting.  The counts need the lines sorted by (order, product); with a
 * million lines qsort's comparison calls were most of the time of a count,
 * and a radix sort through a second buffer doubled the memory of the lines.
 * The lines are sorted by order in place by an MSD radix sort, then each
 * order's few lines by product.
 */

/* signed to unsigned, order-preserving */
#define LINE_ORDER_KEY(l)	((uint64_t) (l)->order_key ^ UINT64_C(0x8000000000000000))

/*
 * Sorts lines by order key in place (American flag sort: an MSD radix sort
 * that permutes each bucket in place, 8 bits a level from bit shift up),
 * so that no second copy of the lines is needed: at 30M lines a copy is
 * 458 MiB.  Small buckets are sorted by insertion.  The lines of one order
 * end up together in any order; sort_lines then sorts each order.
 */
static void
flag_sort_by_order(CoocLine *a, size_t n, int shift)
{
	size_t		count[256],
				next[256],
				end[256],
				i;
	int			d;

	if (n <= 32)
	{
		for (i = 1; i < n; i++)
		{
			CoocLine	x = a[i];
			size_t		j = i;

			while (j > 0 && a[j - 1].order_key > x.order_key)
			{
				a[j] = a[j - 1];
				j--;
			}
			a[j] = x;
		}
		return;
	}
	memset(count, 0, sizeof(count));
	for (i = 0; i < n; i++)
		count[(LINE_ORDER_KEY(&a[i]) >> shift) & 0xff]++;
	next[0] = 0;
	for (d = 0; d < 256; d++)
	{
		if (d > 0)
			next[d] = end[d - 1];
		end[d] = next[d] + count[d];
	}
	for (d = 0; d < 256; d++)
	{
		while (next[d] < end[d])
		{
			CoocLine	x = a[next[d]];
			int			b = (int) ((LINE_ORDER_KEY(&x) >> shift) & 0xff);

			/* carry x to its bucket, taking what lay there, until one fits here */
			while (b != d)
			{
				CoocLine	y = a[next[b]];

				a[next[b]++] = x;
				x = y;
				b = (int) ((LINE_ORDER_KEY(&x) >> shift) & 0xff);
			}
			a[next[d]++] = x;
		}
	}
	if (shift == 0)
		return;
	for (d = 0, i = 0; d < 256; i += count[d], d++)
		if (count[d] > 1)
			flag_sort_by_order(a + i, count[d], shift - 8);
	if (shift >= 16)
		ups_check_interrupts();
}

/*
 * Sorts lines by (order, product).  Lines read from a table usually come
 * grouped by order already; then only each order's few lines are sorted.
 * Otherwise they are first sorted by order in place (flag_sort_by_order).
 */
static void
sort_lines(CoocLine *lines, size_t n)
{
	size_t		i;
	bool		grouped = true;

	for (i = 1; i < n && grouped; i++)
		grouped = lines[i - 1].order_key <= lines[i].order_key;
	if (!grouped)
	{
		/* from the highest bit in which two order keys differ */
		uint64_t	diff = 0;
		int			shift = 0;

		for (i = 1; i < n; i++)
			diff |= LINE_ORDER_KEY(&lines[i]) ^ LINE_ORDER_KEY(&lines[0]);
		while (shift < 56 && (diff >> (shift + 8)) != 0)
			shift += 8;
		flag_sort_by_order(lines, n, shift);
		grouped = true;
	}
	if (grouped)
	{
		size_t		start,
					end;

		for (start = 0; start < n; start = end)
		{
			end = start + 1;
			while (end < n && lines[end].order_key == lines[start].order_key)
				end++;
			if (end - start > 32)
				qsort(lines + start, end - start, sizeof(CoocLine), line_cmp);
			else
			{
				/* insertion sort of a small order */
				for (i = start + 1; i < end; i++)
				{
					CoocLine	x = lines[i];
					size_t		j = i;

					while (j > start && lines[j - 1].product_id > x.product_id)
					{
						lines[j] = lines[j - 1];
						j--;
					}
					lines[j] = x;
				}
			}
		}
	}
}

void
cooc_lines_compact(CoocLines *lines)
{
	size_t		i,
				n = 0;

	if (lines->compact)
		return;
	sort_lines(lines->lines, lines->n);
	ups_check_interrupts();
	for (i = 0; i < lines->n; i++)
	{
		if (n > 0 && line_cmp(&lines->lines[n - 1], &lines->lines[i]) == 0)
			continue;
		lines->lines[n++] = lines->lines[i];
	}
	lines->n = n;
	lines->compact = true;
}

uint32_t
cooc_item_lower_bound(const CoocCounts *counts, int64_t product_id)
{
	size_t		lo = 0,
				hi = counts->nitems;

	while (lo < hi)
	{
		size_t		mid = lo + (hi - lo) / 2;

		if (counts->item_ids[mid] < product_id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return (uint32_t) lo;
}

int64_t
cooc_item_index(const CoocCounts *counts, int64_t product_id)
{
	uint32_t	lo = cooc_item_lower_bound(counts, product_id);

	if (lo < counts->nitems && counts->item_ids[lo] == product_id)
		return (int64_t) lo;
	return -1;
}


/*
 * Numbers the distinct products of the lines: fills idx[i] with the rank of
 * line i's product among the distinct ids and returns those ids, increasing
 * (*nids of them).  An open-addressing hash maps an id to its number of first
 * appearance; only the distinct ids are then sorted.
 */
typedef struct IdSlot
{
	int64_t		id;
	uint32_t	num;			/* number of first appearance + 1; 0: empty */
} IdSlot;

typedef struct IdRank
{
	int64_t		id;
	uint32_t	num;
} IdRank;

static int
idrank_cmp(const void *pa, const void *pb)
{
	const IdRank *a = pa;
	const IdRank *b = pb;

	return a->id < b->id ? -1 : (a->id > b->id ? 1 : 0);
}

int64_t *
cooc_product_numbers(const CoocLines *lines, uint32_t *idx, size_t *nids_out)
{
	size_t		size = 1024,
				mask,
				nids = 0,
				cap = 1024,
				i;
	IdSlot	   *slots = ups_alloc0(size * sizeof(IdSlot));
	IdRank	   *distinct = ups_alloc(cap * sizeof(IdRank));
	uint32_t   *rank;
	int64_t    *ids;

	mask = size - 1;
	for (i = 0; i < lines->n; i++)
	{
		int64_t		id = lines->lines[i].product_id;
		size_t		h;

		h = ups_mix64((uint64_t) id) & mask;
		while (slots[h].num != 0 && slots[h].id != id)
			h = (h + 1) & mask;
		if (slots[h].num == 0)
		{
			/* nids stays below 2^32 in practice: 4G distinct products */
			if (nids == cap)
			{
				cap *= 2;
				distinct = ups_realloc(distinct, cap * sizeof(IdRank));
			}
			distinct[nids].id = id;
			distinct[nids].num = (uint32_t) nids;
			nids++;
			slots[h].id = id;
			slots[h].num = (uint32_t) nids;
			if (nids * 10 > size * 7)
			{
				/* grow: rehash the distinct ids seen so far */
				size_t		j;

				ups_free(slots);
				size *= 2;
				mask = size - 1;
				slots = ups_alloc0(size * sizeof(IdSlot));
				for (j = 0; j < nids; j++)
				{
					size_t		g = ups_mix64((uint64_t) distinct[j].id) & mask;

					while (slots[g].num != 0)
						g = (g + 1) & mask;
					slots[g].id = distinct[j].id;
					slots[g].num = (uint32_t) j + 1;
				}
			}
			idx[i] = (uint32_t) nids - 1;
		}
		else
			idx[i] = slots[h].num - 1;
	}
	ups_free(slots);

	qsort(distinct, nids, sizeof(IdRank), idrank_cmp);
	rank = ups_alloc((nids + 1) * sizeof(uint32_t));
	ids = ups_alloc((nids + 1) * sizeof(int64_t));
	for (i = 0; i < nids; i++)
	{
		rank[distinct[i].num] = (uint32_t) i;
		ids[i] = distinct[i].id;
	}
	for (i = 0; i < lines->n; i++)
		idx[i] = rank[idx[i]];
	ups_free(rank);
	ups_free(distinct);
	*nids_out = nids;
	return ids;
}

/* How many spans ahead the count prefetches (spans has that much slack). */
#define PREFETCH_AHEAD	8

/* The later lines of one order that follow a line of product a. */
typedef struct Span
{
	uint32_t	from;
	uint32_t	to;
} Span;

/* End of the order that starts at line start. */
static inline size_t
order_end(const CoocLines *lines, size_t start)
{
	size_t		end = start + 1;
	int64_t		key = lines->lines[start].order_key;

	while (end < lines->n && lines->lines[end].order_key == key)
		end++;
	return end;
}

void
cooc_counts_free(CoocCounts *c)
{
	ups_free(c->item_ids);
	ups_free(c->item_counts);
	ups_free(c->row);
	if (c->flat)
		ups_free(c->flat);
	else if (!c->borrowed)
		ups_free(c->pairs);
	memset(c, 0, sizeof(*c));
}

void
cooc_partial_free(CoocPartial *p)
{
	cooc_counts_free(&p->counts);
	ups_free(p->order_keys);
	ups_free(p->order_start);
	ups_free(p->products);
	memset(p, 0, sizeof(*p));
}

/*
 * The count, in two stages.  prepare_orders sorts the lines by (order,
 * product), numbers the products by rank (idx, one per line) and finds the
 * orders; count_pairs then counts the pairs of those orders.  A partial state
 * that carries its orders but not their pairs (see cooc_partial_count) is
 * the first stage only, and the leader runs the second on all orders at once.
 */
static const char *
prepare_orders(CoocLines *lines, CoocCounts *out, uint32_t **idx_out,
			   size_t **order_start_out)
{
	size_t		n,
				nids = 0,
				norders = 0,
				start,
				end,
				j;
	uint32_t   *idx;
	size_t	   *order_start;

	cooc_lines_compact(lines);
	memset(out, 0, sizeof(*out));
	out->skipped_lines = lines->skipped;
	n = lines->n;
	if (n >= UINT32_MAX)
		return "more than 4294967294 distinct order lines in one count";

	/*
	 * Dictionary of distinct products, sorted, so indexes follow ids: a hash
	 * numbers the products in order of appearance (idx), then only the
	 * distinct ids are sorted and idx is renumbered by rank.
	 */
	idx = ups_alloc((n + 1) * sizeof(uint32_t));
	out->item_ids = cooc_product_numbers(lines, idx, &nids);
	out->nitems = (uint32_t) nids;
	out->item_counts = ups_alloc0((nids + 1) * sizeof(int64_t));

	/* the orders: where each starts, and their products' counts */
	for (start = 0; start < n; start = order_end(lines, start))
		norders++;
	order_start = ups_alloc((norders + 1) * sizeof(size_t));
	norders = 0;
	for (start = 0; start < n; start = end)
	{
		end = order_end(lines, start);
		order_start[norders++] = start;
		for (j = start; j < end; j++)
			out->item_counts[idx[j]]++;
	}
	order_start[norders] = n;
	out->orders = (int64_t) norders;
	*idx_out = idx;
	*order_start_out = order_start;
	return NULL;
}

/* Whether an order of n distinct products is too big for pair counting. */
static inline bool
too_big(size_t n, int max_basket)
{
	return max_basket > 0 && n > (size_t) max_basket;
}

/* Increments of the pair counters the orders make (an upper bound of pairs). */
static size_t
pair_increments(const size_t *order_start, size_t norders, int max_basket)
{
	size_t		k,
				bound = 0;

	for (k = 0; k < norders; k++)
	{
		size_t		len = order_start[k + 1] - order_start[k];

		if (!too_big(len, max_basket))
			bound += len * (len - 1) / 2;
	}
	return bound;
}

/* Frees the pairs of counts (and what holds them), leaving none. */
static void
drop_pairs(CoocCounts *c)
{
	ups_free(c->row);
	if (c->flat)
		ups_free(c->flat);
	else if (!c->borrowed)
		ups_free(c->pairs);
	c->row = NULL;
	c->pairs = NULL;
	c->flat = NULL;
	c->flat_len = 0;
	c->borrowed = false;
	c->npairs = 0;
}

/*
 * The second stage: the pairs of the orders idx[order_start[k] ..
 * order_start[k + 1]) (product indexes, increasing within an order, fewer
 * than 2^32 in all), into out, which holds their products' dictionary and
 * counts already.  Every line of an order small enough for pairs is filed
 * under its product as the span of the order's later lines: those are
 * exactly its partners b > a in that order.  Then, product by product, the
 * spans are walked and the partners counted in a dense array over products,
 * which stays in cache; the partners touched come out sorted (a few by
 * insertion sort, many through a bitmap), so pairs are produced in (a, b)
 * order without hashing or sorting pairs, straight into the stored
 * row-by-row form.  The memory random access costs is one miss per (product,
 * order), not per pair.
 */
static void
count_pairs(CoocCounts *out, const uint32_t *idx, const size_t *order_start,
			size_t norders, int max_basket)
{
	size_t		nids = out->nitems,
				k,
				j,
				a,
				bound = pair_increments(order_start, norders, max_basket);
	uint32_t   *counter,
			   *touched;
	uint64_t   *seen;
	size_t	   *first,
			   *fill;
	Span	   *spans;

	drop_pairs(out);
	out->big_orders = 0;

	/* how many spans each product files */
	first = ups_alloc0((nids + 2) * sizeof(size_t));
	for (k = 0; k < norders; k++)
	{
		if (too_big(order_start[k + 1] - order_start[k], max_basket))
			out->big_orders++;
		else
			for (j = order_start[k]; j + 1 < order_start[k + 1]; j++)
				first[idx[j] + 1]++;
	}
	for (a = 0; a < nids; a++)
		first[a + 1] += first[a];
	/* every span is written below; only the prefetch slack needs a value */
	spans = ups_alloc((first[nids] + PREFETCH_AHEAD + 1) * sizeof(Span));
	memset(spans + first[nids], 0, (PREFETCH_AHEAD + 1) * sizeof(Span));
	fill = ups_alloc((nids + 1) * sizeof(size_t));
	memcpy(fill, first, nids * sizeof(size_t));
	for (k = 0; k < norders; k++)
	{
		size_t		end = order_start[k + 1];

		if (too_big(end - order_start[k], max_basket))
			continue;
		for (j = order_start[k]; j + 1 < end; j++)
		{
			Span	   *s = &spans[fill[idx[j]]++];

			s->from = (uint32_t) j + 1;
			s->to = (uint32_t) end;
		}
	}
	ups_free(fill);
	ups_check_interrupts();

	/*
	 * No more pairs than increments: the output, in its flat form, is
	 * allocated at that bound and shrunk at the end (pages never written
	 * cost no memory); the pairs are counted straight into it.
	 */
	out->row = ups_alloc((nids + 1) * sizeof(size_t));
	out->flat = ups_alloc(COOC_FLAT_HEADROOM + COUNTS_HEADER + nids * 20 +
						  (bound + 1) * sizeof(CoocEntry));
	out->pairs = (CoocEntry *) (out->flat + COOC_FLAT_HEADROOM + COUNTS_HEADER + nids * 16);
	counter = ups_alloc0((nids + 1) * sizeof(uint32_t));
	touched = ups_alloc((nids + 1) * sizeof(uint32_t));
	seen = ups_alloc0(((nids >> 6) + 1) * sizeof(uint64_t));
	out->row[0] = 0;
	for (a = 0; a < nids; a++)
	{
		size_t		ntouched = 0,
					e,
					t,
					np = out->npairs;
		uint32_t	last = 0;
		CoocEntry  *pairs = out->pairs;

		for (e = first[a]; e < first[a + 1]; e++)
		{
			const uint32_t *p = idx + spans[e].from;
			const uint32_t *stop = idx + spans[e].to;

			/* the next spans start at random places: fetch them early */
			__builtin_prefetch(idx + spans[e + PREFETCH_AHEAD].from);
			for (; p < stop; p++)
				if (counter[*p]++ == 0)
					touched[ntouched++] = *p;
		}
		if (ntouched <= 32)
		{
			/* few partners (most products): sort them */
			ups_sort_uint32(touched, ntouched);
			for (t = 0; t < ntouched; t++)
			{
				uint32_t	b = touched[t];

				pairs[np].partner = b;
				pairs[np++].together = counter[b];
				counter[b] = 0;
			}
		}
		else
		{
			/*
			 * many partners: mark them in a bitmap and walk it in order, up
			 * to the last partner only
			 */
			for (t = 0; t < ntouched; t++)
			{
				seen[touched[t] >> 6] |= UINT64_C(1) << (touched[t] & 63);
				if (touched[t] > last)
					last = touched[t];
			}
			for (t = (a + 1) >> 6; t <= last >> 6; t++)
			{
				uint64_t	w = seen[t];

				seen[t] = 0;
				while (w)
				{
					uint32_t	b = (uint32_t) (t * 64 + (size_t) __builtin_ctzll(w));

					pairs[np].partner = b;
					pairs[np++].together = counter[b];
					counter[b] = 0;
					w &= w - 1;
				}
			}
		}
		out->npairs = np;
		out->row[a + 1] = np;
		if ((a & 0x3ff) == 0)
			ups_check_interrupts();
	}
	finish_flat(out);
	ups_free(counter);
	ups_free(touched);
	ups_free(seen);
	ups_free(spans);
	ups_free(first);
}

const char *
cooc_count(CoocLines *lines, int max_basket, CoocCounts *out)
{
	uint32_t   *idx;
	size_t	   *order_start;
	const char *error = prepare_orders(lines, out, &idx, &order_start);

	if (error)
		return error;
	count_pairs(out, idx, order_start, (size_t) out->orders, max_basket);
	ups_free(idx);
	ups_free(order_start);
	return NULL;
}

/*
 * Whether a partial state should carry pair counts (see cooccur.h).  The
 * leader adds the workers' pairs row by row, which costs about what counting
 * them cost, unless they are few: no more than an eighth of the increments
 * that made them.  Up to the dense triangle of the products is the most
 * pairs there can be, so that is decided before counting.
 */
static bool
pairs_pay(const CoocPartial *p, int max_basket, CoocPartialMode mode)
{
	size_t		n = p->counts.nitems;

	if (mode != COOC_PARTIAL_AUTO)
		return mode == COOC_PARTIAL_PAIRS;
	return n * (n - 1) / 2 <= pair_increments(p->order_start, p->norders, max_basket) / 8;
}

const char *
cooc_partial_count(CoocLines *lines, int max_basket, CoocPartialMode mode,
				   CoocPartial *out)
{
	const char *error;
	size_t		k;

	memset(out, 0, sizeof(*out));
	error = prepare_orders(lines, &out->counts, &out->products, &out->order_start);
	if (error)
		return error;
	out->norders = (size_t) out->counts.orders;
	out->order_keys = ups_alloc((out->norders + 1) * sizeof(int64_t));
	for (k = 0; k < out->norders; k++)
		out->order_keys[k] = lines->lines[out->order_start[k]].order_key;
	out->counted = pairs_pay(out, max_basket, mode);
	if (out->counted)
		count_pairs(&out->counts, out->products, out->order_start, out->norders, max_basket);
	else
		out->counts.row = ups_alloc0(((size_t) out->counts.nitems + 1) * sizeof(size_t));
	return NULL;
}

const char *
cooc_partial_finish(CoocPartial *p, int max_basket)
{
	if (p->counted)
		return NULL;
	if (p->order_start[p->norders] >= UINT32_MAX)
		return "more than 4294967294 distinct order lines in one count";
	count_pairs(&p->counts, p->products, p->order_start, p->norders, max_basket);
	p->counted = true;
	return NULL;
}

int64_t
cooc_pair_count(const CoocCounts *c, uint32_t x, uint32_t y)
{
	uint32_t	a = x < y ? x : y,
				b = x < y ? y : x;
	size_t		lo,
				hi;

	if (x == y || b >= c->nitems)
		return 0;
	lo = c->row[a];
	hi = c->row[a + 1];
	while (lo < hi)
	{
		size_t		mid = lo + (hi - lo) / 2;

		if (c->pairs[mid].partner < b)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < c->row[a + 1] && c->pairs[lo].partner == b ? c->pairs[lo].together : 0;
}

/*
 * r = the sum of k counts, each added or subtracted (sign 1 or -1), in one
 * pass: the union of the dictionaries, then row by row a k-way merge of the
 * rows mapped to r's indexes (maps are monotone, so mapped rows stay
 * increasing).  Products and pairs whose count ends at 0 are dropped; a
 * count below 0, a pair left over a dropped product, or a count beyond 32
 * bits is an error.  When maps is given, maps[t] receives for every index of
 * input t its index in r (UINT32_MAX if dropped).
 */
#define MAX_TERMS 5

static const char *
counts_sum(CoocCounts *r, int k, const CoocCounts *const *in, const int *sign,
		   uint32_t **maps)
{
	uint32_t   *map[MAX_TERMS];
	uint32_t   *src[MAX_TERMS];		/* union index -> index in input t, or none */
	size_t		cur[MAX_TERMS],
				end[MAX_TERMS],
				item[MAX_TERMS],
				total_items = 0,
				total_pairs = 0,
				nu = 0,
				kept = 0,
				u;
	uint32_t   *keep;
	const char *error = NULL;
	int			t;

	memset(r, 0, sizeof(*r));
	for (t = 0; t < k; t++)
	{
		total_items += in[t]->nitems;
		total_pairs += in[t]->npairs;
		/*
		 * Orders are at most 2^32 - 1 in a valid value, but skipped lines
		 * are not bounded: a sum beyond 2^63 - 1 would wrap (and is
		 * undefined behaviour), so it is refused before it is made.
		 */
		if (sign[t] > 0 && in[t]->skipped_lines > INT64_MAX - r->skipped_lines)
		{
			error = "more than 2^63 - 1 skipped lines in one count";
			continue;
		}
		r->orders += sign[t] * in[t]->orders;
		r->skipped_lines += sign[t] * in[t]->skipped_lines;
		r->big_orders += sign[t] * in[t]->big_orders;
	}
	if (error == NULL && (r->orders < 0 || r->skipped_lines < 0 || r->big_orders < 0))
		error = "order counts would become negative";
	if (error == NULL && r->orders > (int64_t) UINT32_MAX)
		error = "more than 4294967295 orders in one count";
	for (t = 0; t < k; t++)
	{
		map[t] = ups_alloc(((size_t) in[t]->nitems + 1) * sizeof(uint32_t));
		src[t] = ups_alloc((total_items + 1) * sizeof(uint32_t));
		item[t] = 0;
	}
	keep = ups_alloc((total_items + 1) * sizeof(uint32_t));
	r->item_ids = ups_alloc((total_items + 1) * sizeof(int64_t));
	r->item_counts = ups_alloc((total_items + 1) * sizeof(int64_t));

	/* the union of the sorted dictionaries */
	for (;;)
	{
		int64_t		id = 0,
					count = 0;
		bool		any = false;

		for (t = 0; t < k; t++)
			if (item[t] < in[t]->nitems && (!any || in[t]->item_ids[item[t]] < id))
			{
				id = in[t]->item_ids[item[t]];
				any = true;
			}
		if (!any)
			break;
		for (t = 0; t < k; t++)
		{
			src[t][nu] = UINT32_MAX;
			if (item[t] < in[t]->nitems && in[t]->item_ids[item[t]] == id)
			{
				count += sign[t] * in[t]->item_counts[item[t]];
				src[t][nu] = (uint32_t) item[t]++;
			}
		}
		if (count < 0)
			error = "a product count would become negative";
		keep[nu] = UINT32_MAX;
		if (count > 0)
		{
			keep[nu] = (uint32_t) kept;
			r->item_ids[kept] = id;
			r->item_counts[kept++] = count;
		}
		for (t = 0; t < k; t++)
			if (src[t][nu] != UINT32_MAX)
				map[t][src[t][nu]] = keep[nu];
		nu++;
	}
	r->nitems = (uint32_t) kept;

	/* row by row */
	r->row = ups_alloc((kept + 1) * sizeof(size_t));
	r->pairs = ups_alloc((total_pairs + 1) * sizeof(CoocEntry));
	r->row[0] = 0;
	for (u = 0; u < nu && error == NULL; u++)
	{
		size_t		np = r->npairs;
		int			active[MAX_TERMS],
					nactive = 0,
					x;

		/* the inputs with a non-empty row here: mostly one or two */
		for (t = 0; t < k; t++)
			if (src[t][u] != UINT32_MAX)
			{
				cur[t] = in[t]->row[src[t][u]];
				end[t] = in[t]->row[src[t][u] + 1];
				if (cur[t] < end[t])
					active[nactive++] = t;
			}
		if (nactive == 1)
		{
			/* one row alone: mapped and copied */
			t = active[0];
			if (keep[u] == UINT32_MAX)
				error = "a pair is left over a product counted in no order";
			else if (sign[t] < 0)
				error = "a pair count would become negative";
			for (; cur[t] < end[t] && error == NULL; cur[t]++)
			{
				uint32_t	other = map[t][in[t]->pairs[cur[t]].partner];

				if (other == UINT32_MAX)
					error = "a pair is left over a product counted in no order";
				r->pairs[np].partner = other;
				r->pairs[np++].together = in[t]->pairs[cur[t]].together;
			}
			nactive = 0;
		}
		while (nactive > 0)
		{
			uint32_t	other = UINT32_MAX;
			int64_t		count = 0;

			for (x = 0; x < nactive; x++)
			{
				uint32_t	p;

				t = active[x];
				p = map[t][in[t]->pairs[cur[t]].partner];
				if (p < other)
					other = p;
			}
			for (x = 0; x < nactive; x++)
			{
				t = active[x];
				if (map[t][in[t]->pairs[cur[t]].partner] == other)
				{
					count += (int64_t) sign[t] * in[t]->pairs[cur[t]++].together;
					if (cur[t] == end[t])
					{
						/* this row is done */
						active[x--] = active[--nactive];
					}
				}
			}
			if (count == 0)
				continue;
			if (count < 0)
				error = "a pair count would become negative";
			else if (count > (int64_t) UINT32_MAX)
				error = "a pair count exceeds 4294967295";
			else if (keep[u] == UINT32_MAX || other == UINT32_MAX)
				error = "a pair is left over a product counted in no order";
			if (error)
				break;
			r->pairs[np].partner = other;
			r->pairs[np++].together = (uint32_t) count;
		}
		r->npairs = np;
		if (keep[u] != UINT32_MAX)
			r->row[keep[u] + 1] = np;
		if ((u & 0x3ff) == 0)
			ups_check_interrupts();
	}
	ups_free(keep);
	for (t = 0; t < k; t++)
	{
		ups_free(src[t]);
		if (maps && !error)
			maps[t] = map[t];
		else
			ups_free(map[t]);
	}
	if (error)
		cooc_counts_free(r);
	return error;
}

const char *
cooc_counts_merge(CoocCounts *result, const CoocCounts *a, const CoocCounts *b)
{
	const CoocCounts *in[2] = {a, b};
	const int	sign[2] = {1, 1};

	return counts_sum(result, 2, in, sign, NULL);
}

/* The lines (order key, product id) of one order of a partial state. */
static void
add_order_lines(CoocLines *lines, int64_t order_key, const uint32_t *products,
				size_t from, size_t to, const int64_t *item_ids)
{
	size_t		i;

	for (i = from; i < to; i++)
		cooc_lines_add(lines, order_key, item_ids[products[i]]);
}

/*
 * Orders in both a and b were counted by each over part of their products.
 * The combined counts are a + b, corrected for those orders: minus what each
 * side counted of them (ca, cb), plus the count of their united products
 * (cu) -- all five added in one pass.
 */
static const char *merge_orders(CoocPartial *r, const CoocPartial *a,
								const CoocPartial *b, const uint32_t *map_a,
								const uint32_t *map_b);

static const char *
combine_counted(CoocPartial *rp, const CoocPartial *a, const CoocPartial *b,
				int max_basket)
{
	CoocCounts	ca,
				cb,
				cu;
	CoocLines	shared_a,
				shared_b,
				shared_u;
	const CoocCounts *in[5] = {&a->counts, &b->counts, &cu, &ca, &cb};
	const int	sign[5] = {1, 1, 1, -1, -1};
	uint32_t   *maps[5];
	size_t		i = 0,
				j = 0,
				nshared = 0;
	const char *error = NULL;

	memset(&ca, 0, sizeof(ca));
	memset(&cb, 0, sizeof(cb));
	memset(&cu, 0, sizeof(cu));
	cooc_lines_init(&shared_a);
	cooc_lines_init(&shared_b);
	cooc_lines_init(&shared_u);

	/* the shared orders, by their product ids */
	while (i < a->norders && j < b->norders)
	{
		if (a->order_keys[i] < b->order_keys[j])
			i++;
		else if (b->order_keys[j] < a->order_keys[i])
			j++;
		else
		{
			add_order_lines(&shared_a, a->order_keys[i], a->products,
							a->order_start[i], a->order_start[i + 1], a->counts.item_ids);
			add_order_lines(&shared_b, b->order_keys[j], b->products,
							b->order_start[j], b->order_start[j + 1], b->counts.item_ids);
			add_order_lines(&shared_u, a->order_keys[i], a->products,
							a->order_start[i], a->order_start[i + 1], a->counts.item_ids);
			add_order_lines(&shared_u, b->order_keys[j], b->products,
							b->order_start[j], b->order_start[j + 1], b->counts.item_ids);
			nshared++;
			i++;
			j++;
		}
	}
	if (nshared > 0)
	{
		error = cooc_count(&shared_a, max_basket, &ca);
		if (!error)
			error = cooc_count(&shared_b, max_basket, &cb);
		if (!error)
			error = cooc_count(&shared_u, max_basket, &cu);
	}
	ups_free(shared_a.lines);
	ups_free(shared_b.lines);
	ups_free(shared_u.lines);
	if (!error)
		error = counts_sum(&rp->counts, nshared > 0 ? 5 : 2, in, sign, maps);
	cooc_counts_free(&ca);
	cooc_counts_free(&cb);
	cooc_counts_free(&cu);
	if (error)
		return error;

	/* the orders of both, a shared one with the union of its products */
	error = merge_orders(rp, a, b, maps[0], maps[1]);
	for (i = 0; i < (nshared > 0 ? 5u : 2u); i++)
		ups_free(maps[i]);
	rp->counted = true;
	if (!error && rp->counts.orders != (int64_t) rp->norders)
		error = "partial states disagree on their number of orders";
	return error;
}

/*
 * r's orders: those of a and b merged by key, an order in both with the
 * union of its products, every product mapped to r's index (map_a, map_b).
 * NULL or an error.
 */
static const char *
merge_orders(CoocPartial *r, const CoocPartial *a, const CoocPartial *b,
			 const uint32_t *map_a, const uint32_t *map_b)
{
	size_t		i = 0,
				j = 0,
				k = 0,
				np = 0;
	const char *error = NULL;

	r->order_keys = ups_alloc((a->norders + b->norders + 1) * sizeof(int64_t));
	r->order_start = ups_alloc((a->norders + b->norders + 1) * sizeof(size_t));
	r->products = ups_alloc((a->order_start[a->norders] + b->order_start[b->norders] + 1) *
							sizeof(uint32_t));
	while (i < a->norders || j < b->norders)
	{
		bool		from_a = j >= b->norders ||
			(i < a->norders && a->order_keys[i] <= b->order_keys[j]);
		bool		from_b = i >= a->norders ||
			(j < b->norders && b->order_keys[j] <= a->order_keys[i]);
		size_t		x = from_a ? a->order_start[i] : 0,
					xe = from_a ? a->order_start[i + 1] : 0,
					y = from_b ? b->order_start[j] : 0,
					ye = from_b ? b->order_start[j + 1] : 0;

		r->order_keys[k] = from_a ? a->order_keys[i] : b->order_keys[j];
		r->order_start[k++] = np;
		while (x < xe || y < ye)
		{
			uint32_t	px = x < xe ? map_a[a->products[x]] : UINT32_MAX;
			uint32_t	py = y < ye ? map_b[b->products[y]] : UINT32_MAX;

			if (px <= py)
			{
				r->products[np++] = px;
				x++;
				if (px == py)
					y++;
			}
			else
			{
				r->products[np++] = py;
				y++;
			}
			/* every product of an order keeps a count of at least 1 */
			if (r->products[np - 1] == UINT32_MAX)
				error = "partial states disagree on the products of an order";
		}
		i += from_a;
		j += from_b;
		if ((k & 0xffff) == 0)
			ups_check_interrupts();
	}
	r->norders = k;
	r->order_start[k] = np;
	return error;
}

/*
 * The sorted union of two dictionaries of products, with the maps from
 * each side's indexes to the union's.
 */
static void
union_items(CoocCounts *r, const CoocCounts *a, const CoocCounts *b,
			uint32_t **map_a, uint32_t **map_b)
{
	uint32_t	i = 0,
				j = 0,
				n = 0;

	r->item_ids = ups_alloc(((size_t) a->nitems + b->nitems + 1) * sizeof(int64_t));
	*map_a = ups_alloc(((size_t) a->nitems + 1) * sizeof(uint32_t));
	*map_b = ups_alloc(((size_t) b->nitems + 1) * sizeof(uint32_t));
	while (i < a->nitems || j < b->nitems)
	{
		bool		from_a = j >= b->nitems ||
			(i < a->nitems && a->item_ids[i] <= b->item_ids[j]);
		bool		from_b = i >= a->nitems ||
			(j < b->nitems && b->item_ids[j] <= a->item_ids[i]);

		r->item_ids[n] = from_a ? a->item_ids[i] : b->item_ids[j];
		if (from_a)
			(*map_a)[i++] = n;
		if (from_b)
			(*map_b)[j++] = n;
		n++;
	}
	r->nitems = n;
}

/*
 * Two states of which one or both carry orders only: their orders united,
 * and the products' counts counted again over the united orders.
 */
static const char *
combine_orders(CoocPartial *r, const CoocPartial *a, const CoocPartial *b)
{
	uint32_t   *map_a,
			   *map_b;
	size_t		i;
	const char *error;

	union_items(&r->counts, &a->counts, &b->counts, &map_a, &map_b);
	error = merge_orders(r, a, b, map_a, map_b);
	ups_free(map_a);
	ups_free(map_b);
	if (error)
		return error;
	r->counted = false;
	r->counts.orders = (int64_t) r->norders;
	/* both >= 0 (validated), so only the sum can overflow */
	if (a->counts.skipped_lines > INT64_MAX - b->counts.skipped_lines)
		return "skipped line count out of range";
	r->counts.skipped_lines = a->counts.skipped_lines + b->counts.skipped_lines;
	r->counts.item_counts = ups_alloc0(((size_t) r->counts.nitems + 1) * sizeof(int64_t));
	r->counts.row = ups_alloc0(((size_t) r->counts.nitems + 1) * sizeof(size_t));
	for (i = 0; i < r->order_start[r->norders]; i++)
		r->counts.item_counts[r->products[i]]++;
	if (r->counts.orders > (int64_t) UINT32_MAX)
		return "more than 4294967295 orders in one count";
	return NULL;
}

const char *
cooc_partial_combine(CoocPartial *result, const CoocPartial *a,
					 const CoocPartial *b, int max_basket)
{
	CoocPartial r;
	const char *error;

	memset(result, 0, sizeof(*result));
	memset(&r, 0, sizeof(r));
	if (a->counted && b->counted)
		error = combine_counted(&r, a, b, max_basket);
	else
		error = combine_orders(&r, a, b);
	if (error)
	{
		cooc_partial_free(&r);
		return error;
	}
	*result = r;
	return NULL;
}

/* Whether x ranks below y among one product's partners. */
static inline bool
top_worse(const CoocTop *x, const CoocTop *y)
{
	return x->score < y->score || (x->score == y->score && x->other > y->other);
}

/* Restores the heap (worst kept at the root) below position i. */
static void
top_sift_down(CoocTop *heap, size_t n, size_t i)
{
	for (;;)
	{
		size_t		worst = i,
					l = 2 * i + 1,
					r = l + 1;
		CoocTop		t;

		if (l < n && top_worse(&heap[l], &heap[worst]))
			worst = l;
		if (r < n && top_worse(&heap[r], &heap[worst]))
			worst = r;
		if (worst == i)
			return;
		t = heap[i];
		heap[i] = heap[worst];
		heap[worst] = t;
		i = worst;
	}
}

/* Offers a partner to a product's heap of at most cap entries. */
static void
top_offer(CoocTop *heap, size_t *n, size_t cap, const CoocTop *x)
{
	size_t		i;

	if (*n < cap)
	{
		/* sift up */
		i = (*n)++;
		while (i > 0 && top_worse(x, &heap[(i - 1) / 2]))
		{
			heap[i] = heap[(i - 1) / 2];
			i = (i - 1) / 2;
		}
		heap[i] = *x;
	}
	else if (top_worse(&heap[0], x))
	{
		heap[0] = *x;
		top_sift_down(heap, *n, 0);
	}
}

static int
top_best_first(const void *pa, const void *pb)
{
	const CoocTop *a = pa;
	const CoocTop *b = pb;

	return top_worse(b, a) ? -1 : (top_worse(a, b) ? 1 : 0);
}

CoocTop *
cooc_top_pairs(const CoocCounts *c, int per_product, int64_t min_count, size_t *n)
{
	return cooc_top_pairs_rare(c, per_product, min_count, 0, NULL, n);
}

/*
 * A pair (x, y) qualifies as a partner of x when seen in at least min(x)
 * orders: min_count, or 1 for a product in fewer than rare_orders orders;
 * only for a product wanted (all without a list).
 */
#define TOP_MIN(x) (only != NULL && !only[x] ? UINT32_MAX + INT64_C(1) \
					: c->item_counts[x] < rare_orders ? 1 : min_count)

CoocTop *
cooc_top_pairs_rare(const CoocCounts *counts, int per_product, int64_t min_count,
					int64_t rare_orders, const bool *only, size_t *n)
{
	CoocSum		s;

	(void) cooc_sum_init(&s, counts, NULL, NULL, NULL);
	return cooc_sum_top_pairs(&s, per_product, min_count, rare_orders, only, n);
}

CoocTop *
cooc_sum_top_pairs(const CoocSum *c, int per_product, int64_t min_count,
				   int64_t rare_orders, const bool *only, size_t *n)
{
	size_t	   *start = ups_alloc0(((size_t) c->nitems + 1) * sizeof(size_t));
	size_t	   *fill = ups_alloc0(((size_t) c->nitems + 1) * sizeof(size_t));
	size_t		k = per_product > 0 ? (size_t) per_product : 0,
				total;
	uint32_t	x,
				y,
				together;
	CoocSumRow	r;
	CoocTop    *out;

	/* heap sizes: min(k, qualifying partners), both directions */
	for (x = 0; x < c->nitems; x++)
	{
		cooc_sum_row(c, x, &r);
		while (cooc_sum_next(&r, &y, &together))
		{
			if (together >= TOP_MIN(x))
				start[x + 1]++;
			if (together >= TOP_MIN(y))
				start[y + 1]++;
		}
	}
	for (x = 0; x < c->nitems; x++)
	{
		if (start[x + 1] > k)
			start[x + 1] = k;
		start[x + 1] += start[x];
	}
	total = start[c->nitems];
	out = ups_alloc((total + 1) * sizeof(CoocTop));
	for (x = 0; x < c->nitems; x++)
	{
		cooc_sum_row(c, x, &r);
		while (cooc_sum_next(&r, &y, &together))
		{
			CoocTop		t;

			t.together = together;
			if (together >= TOP_MIN(x))
			{
				t.product = x;
				t.other = y;
				t.score = cooc_score(together, c->item_counts[x]);
				top_offer(out + start[x], &fill[x], start[x + 1] - start[x], &t);
			}
			if (together >= TOP_MIN(y))
			{
				t.product = y;
				t.other = x;
				t.score = cooc_score(together, c->item_counts[y]);
				top_offer(out + start[y], &fill[y], start[y + 1] - start[y], &t);
			}
		}
		if ((x & 0x3ff) == 0)
			ups_check_interrupts();
	}
	for (x = 0; x < c->nitems; x++)
		qsort(out + start[x], fill[x], sizeof(CoocTop), top_best_first);
	ups_free(start);
	ups_free(fill);
	*n = total;
	return out;
}

#undef TOP_MIN

/*
 * Ranking score: the lower bound of the Wilson score interval (95%) for the
 * confidence P(other | product).  It is close to the confidence when the
 * product has many orders and shrinks towards 0 when it has few, so a pair
 * seen once between two products bought once (confidence 1, bound 0.21)
 * ranks below a pair seen 60 times in 100 orders (confidence 0.6, bound
 * 0.50).  Unlike lift it does not favour rare products.
 */
double
cooc_score(int64_t together, int64_t product_count)
{
	double		n = (double) product_count;
	double		p,
				z2 = SCORE_Z * SCORE_Z;

	if (product_count <= 0 || together <= 0)
		return 0.0;
	p = (double) together / n;
	return (p + z2 / (2 * n) -
			SCORE_Z * sqrt(p * (1 - p) / n + z2 / (4 * n * n))) / (1 + z2 / n);
}

void
cooc_metrics(int64_t together, int64_t product_count, int64_t other_count,
			 int64_t orders, CoocMetrics *m)
{
	double		n = (double) orders;
	double		pa = product_count / n;
	double		pb = other_count / n;

	m->support = together / n;
	m->confidence = (double) together / product_count;
	m->lift = m->support / (pa * pb);
	m->leverage = m->support - pa * pb;
	m->conviction = m->confidence >= 1.0 ? INFINITY
		: (1 - pb) / (1 - m->confidence);
	m->jaccard = (double) together / (product_count + other_count - together);
	m->score = cooc_score(together, product_count);
}

/* Serialization ---------------------------------------------------------- */


size_t
cooc_lines_serialized_size(const CoocLines *lines)
{
	return LINES_HEADER + lines->n * 16;
}

void
cooc_lines_serialize(const CoocLines *lines, char *buf)
{
	uint32_t	magic = LINES_MAGIC;
	uint32_t	compact = lines->compact ? 1 : 0;
	uint64_t	n = lines->n;

	PUT(buf, magic);
	PUT(buf, compact);
	PUT(buf, lines->skipped);
	PUT(buf, n);
	if (n > 0)
		memcpy(buf, lines->lines, n * sizeof(CoocLine));
}

const char *
cooc_lines_deserialize(const char *buf, size_t len, CoocLines *out)
{
	uint32_t	magic,
				compact;
	uint64_t	n;
	size_t		i;

	cooc_lines_init(out);
	if (len < LINES_HEADER)
		return "truncated header";
	GET(buf, magic);
	GET(buf, compact);
	GET(buf, out->skipped);
	GET(buf, n);
	if (magic != LINES_MAGIC)
		return "bad magic number";
	if (compact > 1 || out->skipped < 0)
		return "bad header";
	if (n != (len - LINES_HEADER) / 16 || (len - LINES_HEADER) % 16 != 0)
		return "line count does not match the length";
	if (n > 0)
	{
		lines_reserve(out, n);
		memcpy(out->lines, buf, n * sizeof(CoocLine));
	}
	out->n = n;
	out->compact = false;		/* re-derived, never trusted */
	for (i = 1; compact && i < n; i++)
		if (line_cmp(&out->lines[i - 1], &out->lines[i]) >= 0)
		{
			ups_free(out->lines);
			cooc_lines_init(out);
			return "lines flagged sorted are not sorted";
		}
	out->compact = compact == 1;
	return NULL;
}

/*
 * The counts: a header, then item ids and item counts (int64 each), the
 * pairs row by row (CoocEntry: partner and count, uint32 each), and the
 * number of pairs in every row (uint32).  Every part is a multiple of 4
 * bytes, so in a 4-byte aligned buffer the pairs can be read in place; and
 * with the row lengths last, cooc_count writes the pairs into the flat form
 * as it counts them.
 */
size_t
cooc_counts_serialized_size(const CoocCounts *c)
{
	return COUNTS_HEADER + (size_t) c->nitems * 20 + c->npairs * sizeof(CoocEntry);
}

/* Everything but the pairs, around pairs already at their place in buf. */
static void
serialize_around_pairs(const CoocCounts *c, char *buf)
{
	uint32_t	magic = COUNTS_MAGIC;
	uint64_t	npairs = c->npairs;
	uint32_t	i;

	PUT(buf, magic);
	PUT(buf, c->nitems);
	PUT(buf, c->orders);
	PUT(buf, c->skipped_lines);
	PUT(buf, c->big_orders);
	PUT(buf, npairs);
	memcpy(buf, c->item_ids, (size_t) c->nitems * 8);
	buf += (size_t) c->nitems * 8;
	memcpy(buf, c->item_counts, (size_t) c->nitems * 8);
	buf += (size_t) c->nitems * 8;
	buf += c->npairs * sizeof(CoocEntry);
	for (i = 0; i < c->nitems; i++)
	{
		uint32_t	len = (uint32_t) (c->row[i + 1] - c->row[i]);

		PUT(buf, len);
	}
}

void
cooc_counts_serialize(const CoocCounts *c, char *buf)
{
	if (c->npairs > 0)
		memcpy(buf + COUNTS_HEADER + (size_t) c->nitems * 16, c->pairs,
			   c->npairs * sizeof(CoocEntry));
	serialize_around_pairs(c, buf);
}

/* Completes the flat form cooc_count counted the pairs into, and trims it. */
static void
finish_flat(CoocCounts *c)
{
	c->flat_len = cooc_counts_serialized_size(c);
	c->flat = ups_realloc(c->flat, COOC_FLAT_HEADROOM + c->flat_len);
	c->pairs = (CoocEntry *) (c->flat + COOC_FLAT_HEADROOM + COUNTS_HEADER + (size_t) c->nitems * 16);
	serialize_around_pairs(c, c->flat + COOC_FLAT_HEADROOM);
}

/* The checks of the items that both forms share. */
static const char *
check_items(const CoocCounts *c)
{
	uint32_t	i;

	if (c->orders < 0 || c->skipped_lines < 0 || c->big_orders < 0 ||
		c->big_orders > c->orders || c->orders > (int64_t) UINT32_MAX)
		return "bad header";
	for (i = 0; i < c->nitems; i++)
	{
		if (i > 0 && c->item_ids[i - 1] >= c->item_ids[i])
			return "product ids are not strictly increasing";
		if (c->item_counts[i] < 1 || c->item_counts[i] > c->orders)
			return "product count out of range";
	}
	return NULL;
}

/* The checks of one pair (a, b, count). */
static inline const char *
check_pair(const CoocCounts *c, uint32_t a, uint32_t b, int64_t count)
{
	if (a >= b || b >= c->nitems)
		return "pair index out of range";
	if (count < 1 || count > c->item_counts[a] || count > c->item_counts[b])
		return "pair count out of range";
	return NULL;
}

/* The form of version 1.0: (a, b, count) triples sorted by (a, b). */
static const char *
deserialize_v1(const char *buf, size_t len, CoocCounts *c)
{
	uint64_t	npairs;
	size_t		i;
	uint32_t	a,
				prev_a = 0,
				prev_b = 0;
	const char *error;

	buf += 4;
	GET(buf, c->nitems);
	GET(buf, c->orders);
	GET(buf, c->skipped_lines);
	GET(buf, c->big_orders);
	GET(buf, npairs);
	if ((uint64_t) c->nitems * 16 > len - COUNTS_HEADER ||
		npairs > (len - COUNTS_HEADER - (size_t) c->nitems * 16) / PAIR_SIZE_V1 ||
		len != COUNTS_HEADER + (size_t) c->nitems * 16 + npairs * PAIR_SIZE_V1)
		return "item or pair count does not match the length";
	if (c->orders < 0 || c->orders > (int64_t) UINT32_MAX)
		return "bad header";
	c->npairs = npairs;
	c->item_ids = ups_alloc(((size_t) c->nitems + 1) * 8);
	c->item_counts = ups_alloc(((size_t) c->nitems + 1) * 8);
	c->row = ups_alloc0(((size_t) c->nitems + 1) * sizeof(size_t));
	c->pairs = ups_alloc((npairs + 1) * sizeof(CoocEntry));
	memcpy(c->item_ids, buf, (size_t) c->nitems * 8);
	buf += (size_t) c->nitems * 8;
	memcpy(c->item_counts, buf, (size_t) c->nitems * 8);
	buf += (size_t) c->nitems * 8;
	if ((error = check_items(c)) != NULL)
		return error;
	a = 0;
	for (i = 0; i < npairs; i++)
	{
		uint32_t	pa,
					pb;
		int64_t		count;

		GET(buf, pa);
		GET(buf, pb);
		GET(buf, count);
		if ((error = check_pair(c, pa, pb, count)) != NULL)
			return error;
		if (i > 0 && (pa < prev_a || (pa == prev_a && pb <= prev_b)))
			return "pairs are not strictly increasing";
		prev_a = pa;
		prev_b = pb;
		while (a < pa)
			c->row[++a] = i;
		c->pairs[i].partner = pb;
		c->pairs[i].together = (uint32_t) count;
	}
	while (a < c->nitems)
		c->row[++a] = npairs;
	return NULL;
}

/*
 * The header and the products of the current form, for a value of len
 * bytes of which buf holds at least the header and the products: checks
 * the header's counts against len, and copies the products.  *end: just
 * past the products in buf.
 */
static const char *
read_header_and_items(const char *buf, size_t len, CoocCounts *c, const char **end)
{
	uint64_t	npairs;
	size_t		fixed;

	buf += 4;
	GET(buf, c->nitems);
	GET(buf, c->orders);
	GET(buf, c->skipped_lines);
	GET(buf, c->big_orders);
	GET(buf, npairs);
	fixed = COUNTS_HEADER + (size_t) c->nitems * 20;
	if (fixed > len || npairs > (len - fixed) / sizeof(CoocEntry) ||
		len != fixed + npairs * sizeof(CoocEntry))
		return "item or pair count does not match the length";
	c->npairs = npairs;
	c->item_ids = ups_alloc(((size_t) c->nitems + 1) * 8);
	c->item_counts = ups_alloc(((size_t) c->nitems + 1) * 8);
	memcpy(c->item_ids, buf, (size_t) c->nitems * 8);
	buf += (size_t) c->nitems * 8;
	memcpy(c->item_counts, buf, (size_t) c->nitems * 8);
	buf += (size_t) c->nitems * 8;
	*end = buf;
	return check_items(c);
}

static const char *
deserialize_v2(const char *buf, size_t len, bool borrow, CoocCounts *c)
{
	uint64_t	npairs;
	size_t		i;
	uint32_t	a;
	const char *error;
	const char *pairs;

	if ((error = read_header_and_items(buf, len, c, &buf)) != NULL)
		return error;
	npairs = c->npairs;
	c->row = ups_alloc(((size_t) c->nitems + 1) * sizeof(size_t));
	pairs = buf;
	buf += npairs * sizeof(CoocEntry);
	c->row[0] = 0;
	for (a = 0; a < c->nitems; a++)
	{
		uint32_t	n;

		GET(buf, n);
		if (n > npairs - c->row[a])
			return "row lengths do not match the pair count";
		c->row[a + 1] = c->row[a] + n;
	}
	if (c->row[c->nitems] != npairs)
		return "row lengths do not match the pair count";
	if (borrow && ((uintptr_t) pairs & 3) == 0)
	{
		c->pairs = (CoocEntry *) pairs;
		c->borrowed = true;
	}
	else
	{
		c->pairs = ups_alloc((npairs + 1) * sizeof(CoocEntry));
		memcpy(c->pairs, pairs, npairs * sizeof(CoocEntry));
	}
	for (a = 0; a < c->nitems; a++)
		for (i = c->row[a]; i < c->row[a + 1]; i++)
		{
			if ((error = check_pair(c, a, c->pairs[i].partner, c->pairs[i].together)) != NULL)
				return error;
			if (i > c->row[a] && c->pairs[i - 1].partner >= c->pairs[i].partner)
				return "pairs are not strictly increasing";
		}
	return NULL;
}

size_t
cooc_counts_items_len(const char *header)
{
	uint32_t	magic;
	uint32_t	nitems;

	memcpy(&magic, header, sizeof(magic));
	if (magic != COUNTS_MAGIC)
		return 0;
	memcpy(&nitems, header + 4, sizeof(nitems));
	return COUNTS_HEADER + (size_t) nitems * 16;
}

const char *
cooc_counts_deserialize_items(const char *buf, size_t prefix_len, size_t len, CoocCounts *c)
{
	const char *error;
	const char *end;

	memset(c, 0, sizeof(*c));
	if (prefix_len < COUNTS_HEADER || prefix_len > len)
		return "truncated header";
	if (cooc_counts_items_len(buf) == 0)
		return "bad magic number";
	if (prefix_len < cooc_counts_items_len(buf))
		return "truncated products";
	if ((error = read_header_and_items(buf, len, c, &end)) != NULL)
	{
		cooc_counts_free(c);
		return error;
	}
	return NULL;
}

const char *
cooc_counts_deserialize(const char *buf, size_t len, bool borrow, CoocCounts *c)
{
	uint32_t	magic;
	const char *error;

	memset(c, 0, sizeof(*c));
	if (len < COUNTS_HEADER)
		return "truncated header";
	memcpy(&magic, buf, sizeof(magic));
	if (magic == COUNTS_MAGIC)
		error = deserialize_v2(buf, len, borrow, c);
	else if (magic == COUNTS_MAGIC_V1)
		error = deserialize_v1(buf, len, c);
	else
		error = "bad magic number";
	if (error)
		cooc_counts_free(c);
	return error;
}

/*
 * The partial state: a header (flags: whether the pairs are counted; the
 * length of the counts), the counts (without pairs when not counted), then
 * the order keys (int64), the number of products of every order and the
 * products (uint32 each).
 */
size_t
cooc_partial_serialized_size(const CoocPartial *p)
{
	return PARTIAL_HEADER + cooc_counts_serialized_size(&p->counts) +
		p->norders * 12 + p->order_start[p->norders] * 4;
}

void
cooc_partial_serialize(const CoocPartial *p, char *buf)
{
	uint32_t	magic = PARTIAL_MAGIC,
				flags = p->counted ? PARTIAL_COUNTED : 0;
	uint64_t	counts_len = cooc_counts_serialized_size(&p->counts),
				norders = p->norders,
				nproducts = p->order_start[p->norders];
	size_t		k;

	PUT(buf, magic);
	PUT(buf, flags);
	PUT(buf, counts_len);
	PUT(buf, norders);
	PUT(buf, nproducts);
	cooc_counts_serialize(&p->counts, buf);
	buf += counts_len;
	memcpy(buf, p->order_keys, p->norders * 8);
	buf += p->norders * 8;
	for (k = 0; k < p->norders; k++)
	{
		uint32_t	n = (uint32_t) (p->order_start[k + 1] - p->order_start[k]);

		PUT(buf, n);
	}
	memcpy(buf, p->products, nproducts * 4);
}

static const char *
deserialize_partial(const char *buf, size_t len, CoocPartial *p)
{
	uint32_t	magic,
				flags;
	uint64_t	counts_len,
				norders,
				nproducts;
	size_t		k,
				i;
	const char *error;
	int64_t    *seen;

	if (len < PARTIAL_HEADER)
		return "truncated header";
	GET(buf, magic);
	GET(buf, flags);
	GET(buf, counts_len);
	GET(buf, norders);
	GET(buf, nproducts);
	len -= PARTIAL_HEADER;
	if (magic != PARTIAL_MAGIC || (flags & ~PARTIAL_COUNTED) != 0)
		return "bad magic number";
	p->counted = (flags & PARTIAL_COUNTED) != 0;
	if (counts_len > len || norders > (len - counts_len) / 12 ||
		nproducts > (len - counts_len - norders * 12) / 4 ||
		len != counts_len + norders * 12 + nproducts * 4)
		return "order or product count does not match the length";
	if ((error = cooc_counts_deserialize(buf, counts_len, false, &p->counts)) != NULL)
		return error;
	buf += counts_len;
	if ((uint64_t) p->counts.orders != norders)
		return "order count does not match the counts";
	if (!p->counted && (p->counts.npairs != 0 || p->counts.big_orders != 0))
		return "pairs in a state that carries orders only";
	p->norders = norders;
	p->order_keys = ups_alloc((norders + 1) * 8);
	p->order_start = ups_alloc((norders + 1) * sizeof(size_t));
	p->products = ups_alloc((nproducts + 1) * 4);
	memcpy(p->order_keys, buf, norders * 8);
	buf += norders * 8;
	p->order_start[0] = 0;
	for (k = 0; k < norders; k++)
	{
		uint32_t	n;

		GET(buf, n);
		if (k > 0 && p->order_keys[k - 1] >= p->order_keys[k])
			return "order keys are not strictly increasing";
		if (n < 1 || n > nproducts - p->order_start[k])
			return "product counts do not match";
		p->order_start[k + 1] = p->order_start[k] + n;
	}
	if (p->order_start[norders] != nproducts)
		return "product counts do not match";
	memcpy(p->products, buf, nproducts * 4);

	/* every product in range, increasing in its order, counted as often */
	seen = ups_alloc0(((size_t) p->counts.nitems + 1) * sizeof(int64_t));
	for (k = 0; k < norders && error == NULL; k++)
		for (i = p->order_start[k]; i < p->order_start[k + 1]; i++)
		{
			if (p->products[i] >= p->counts.nitems ||
				(i > p->order_start[k] && p->products[i - 1] >= p->products[i]))
			{
				error = "products of an order out of range or not increasing";
				break;
			}
			seen[p->products[i]]++;
		}
	for (i = 0; i < p->counts.nitems && error == NULL; i++)
		if (seen[i] != p->counts.item_counts[i])
			error = "product counts do not match the orders";
	ups_free(seen);
	return error;
}

const char *
cooc_partial_deserialize(const char *buf, size_t len, CoocPartial *p)
{
	const char *error;

	memset(p, 0, sizeof(*p));
	error = deserialize_partial(buf, len, p);
	if (error)
		cooc_partial_free(p);
	return error;
}
