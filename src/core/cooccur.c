/*
 * cooccur.c
 *		Counting core for "frequently bought together" (see cooccur.h).
 */
#include "cooccur.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ups_host.h"

#define LINES_MAGIC		0x314c5055	/* "UPL1" */
#define COUNTS_MAGIC	0x31435055	/* "UPC1" */

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
 * Sorting.  The counts need the lines sorted by (order, product) and the
 * pairs by (a, b); with a million lines qsort's comparison calls were most
 * of the time of a count.  These are stable LSD radix sorts on 8-bit digits
 * of a 64-bit key; a pass whose digit is the same in every record (the high
 * bytes of small ids) is skipped, so ids below 2^24 take three passes.
 */
#define RADIX_SORT(name, type, KEY) \
static type * \
name(type *src, type *dst, size_t n) \
{ \
	size_t		hist[8][256]; \
	size_t		i; \
	int			byte; \
\
	memset(hist, 0, sizeof(hist)); \
	for (i = 0; i < n; i++) \
	{ \
		uint64_t	k = KEY(&src[i]); \
\
		for (byte = 0; byte < 8; byte++) \
			hist[byte][(k >> (8 * byte)) & 0xff]++; \
	} \
	for (byte = 0; byte < 8; byte++) \
	{ \
		size_t	   *h = hist[byte]; \
		size_t		sum = 0; \
		type	   *t; \
		int			d; \
\
		if (n == 0 || h[(KEY(&src[0]) >> (8 * byte)) & 0xff] == n) \
			continue; \
		for (d = 0; d < 256; d++) \
		{ \
			size_t		c = h[d]; \
\
			h[d] = sum; \
			sum += c; \
		} \
		for (i = 0; i < n; i++) \
			dst[h[(KEY(&src[i]) >> (8 * byte)) & 0xff]++] = src[i]; \
		t = src; \
		src = dst; \
		dst = t; \
		ups_check_interrupts(); \
	} \
	return src; \
}

/* signed to unsigned, order-preserving */
#define LINE_ORDER_KEY(l)	((uint64_t) (l)->order_key ^ UINT64_C(0x8000000000000000))
#define LINE_PRODUCT_KEY(l)	((uint64_t) (l)->product_id ^ UINT64_C(0x8000000000000000))

RADIX_SORT(radix_lines_by_order, CoocLine, LINE_ORDER_KEY)
RADIX_SORT(radix_lines_by_product, CoocLine, LINE_PRODUCT_KEY)

/*
 * Sorts lines by (order, product).  Lines read from a table usually come
 * grouped by order already; then only each order's few lines are sorted.
 */
static void
sort_lines(CoocLine *lines, size_t n)
{
	size_t		i;
	bool		grouped = true;
	CoocLine   *tmp,
			   *sorted;

	for (i = 1; i < n && grouped; i++)
		grouped = lines[i - 1].order_key <= lines[i].order_key;
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
		return;
	}
	if (n < 256)
	{
		qsort(lines, n, sizeof(CoocLine), line_cmp);
		return;
	}
	/* stable LSD: by product, then by order */
	tmp = ups_alloc(n * sizeof(CoocLine));
	sorted = radix_lines_by_product(lines, tmp, n);
	sorted = radix_lines_by_order(sorted, sorted == lines ? tmp : lines, n);
	if (sorted != lines)
		memcpy(lines, sorted, n * sizeof(CoocLine));
	ups_free(tmp);
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

int64_t
cooc_item_index(const CoocCounts *counts, int64_t product_id)
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
	if (lo < counts->nitems && counts->item_ids[lo] == product_id)
		return (int64_t) lo;
	return -1;
}

/* Hash finalizer of 64-bit ids (murmur3 fmix64). */
static inline uint64_t
mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= UINT64_C(0xff51afd7ed558ccd);
	x ^= x >> 33;
	x *= UINT64_C(0xc4ceb9fe1a85ec53);
	x ^= x >> 33;
	return x;
}

static int
pair_cmp(const void *pa, const void *pb)
{
	const CoocPair *a = pa;
	const CoocPair *b = pb;

	if (a->a != b->a)
		return a->a < b->a ? -1 : 1;
	if (a->b != b->b)
		return a->b < b->b ? -1 : 1;
	return 0;
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

static int64_t *
dictionary(const CoocLines *lines, uint32_t *idx, size_t *nids_out)
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

		h = mix64((uint64_t) id) & mask;
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
					size_t		g = mix64((uint64_t) distinct[j].id) & mask;

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

/* Appends pair (a, b) with its count and clears the counter. */
static inline void
emit_pair(CoocCounts *out, uint32_t a, uint32_t b, int64_t *counter)
{
	CoocPair   *p = &out->pairs[out->npairs++];

	p->a = a;
	p->b = b;
	p->count = counter[b];
	counter[b] = 0;
}

/* The few partners of one product, ascending (insertion sort). */
static void
sort_uint32(uint32_t *v, size_t n)
{
	size_t		i;

	for (i = 1; i < n; i++)
	{
		uint32_t	x = v[i];
		size_t		j = i;

		while (j > 0 && v[j - 1] > x)
		{
			v[j] = v[j - 1];
			j--;
		}
		v[j] = x;
	}
}

void
cooc_count(CoocLines *lines, int max_basket, CoocCounts *out)
{
	int64_t    *ids;
	uint32_t   *idx;
	size_t		i,
				nids = 0,
				start,
				cap,
				a;
	size_t	   *order_end,
			   *first,
			   *fill,
			   *at;
	int64_t    *counter;
	uint32_t   *touched;
	uint64_t   *seen;

	cooc_lines_compact(lines);
	memset(out, 0, sizeof(*out));
	out->skipped_lines = lines->skipped;

	/*
	 * Dictionary of distinct products, sorted, so indexes follow ids: a hash
	 * numbers the products in order of appearance (idx), then only the
	 * distinct ids are sorted and idx is renumbered by rank.
	 */
	idx = ups_alloc((lines->n + 1) * sizeof(uint32_t));
	ids = dictionary(lines, idx, &nids);
	out->nitems = (uint32_t) nids;
	out->item_ids = ids;
	out->item_counts = ups_alloc0((nids + 1) * sizeof(int64_t));

	/*
	 * Orders and product counts; order_end[j] is the end of line j's order,
	 * and each product's lines in orders small enough for pairs are listed
	 * product by product (first[] / at[], compressed sparse rows).
	 */
	order_end = ups_alloc((lines->n + 1) * sizeof(size_t));
	first = ups_alloc0((nids + 2) * sizeof(size_t));
	for (start = 0; start < lines->n;)
	{
		size_t		end = start,
					j;

		while (end < lines->n &&
			   lines->lines[end].order_key == lines->lines[start].order_key)
			end++;
		out->orders++;
		for (j = start; j < end; j++)
		{
			out->item_counts[idx[j]]++;
			order_end[j] = end;
		}
		if (max_basket > 0 && end - start > (size_t) max_basket)
		{
			out->big_orders++;
			for (j = start; j < end; j++)
				order_end[j] = 0;	/* not counted for pairs */
		}
		else
			for (j = start; j + 1 < end; j++)
				first[idx[j] + 1]++;
		start = end;
	}
	for (i = 0; i < nids; i++)
		first[i + 1] += first[i];
	at = ups_alloc((first[nids] + 1) * sizeof(size_t));
	fill = ups_alloc((nids + 1) * sizeof(size_t));
	memcpy(fill, first, nids * sizeof(size_t));
	for (i = 0; i < lines->n; i++)
		if (order_end[i] > i + 1)
			at[fill[idx[i]]++] = i;
	ups_free(fill);
	ups_check_interrupts();

	/*
	 * Pairs, product by product: for product a, every later line of every
	 * order containing a is a product b > a (lines are sorted by product
	 * within an order); counts go to a dense array over products, which stays
	 * in cache, and come out sorted by (a, b) without a hash or a sort of all
	 * pairs.
	 */
	counter = ups_alloc0((nids + 1) * sizeof(int64_t));
	touched = ups_alloc((nids + 1) * sizeof(uint32_t));
	seen = ups_alloc0(((nids >> 6) + 1) * sizeof(uint64_t));
	cap = 1024;
	out->pairs = ups_alloc(cap * sizeof(CoocPair));
	for (a = 0; a < nids; a++)
	{
		size_t		ntouched = 0,
					t;

		for (i = first[a]; i < first[a + 1]; i++)
		{
			size_t		j,
						end = order_end[at[i]];

			for (j = at[i] + 1; j < end; j++)
			{
				uint32_t	b = idx[j];

				if (counter[b]++ == 0)
				{
					touched[ntouched++] = b;
					seen[b >> 6] |= UINT64_C(1) << (b & 63);
				}
			}
		}
		if (ntouched == 0)
			continue;
		if (out->npairs + ntouched > cap)
		{
			while (out->npairs + ntouched > cap)
				cap *= 2;
			out->pairs = ups_realloc(out->pairs, cap * sizeof(CoocPair));
		}
		if (ntouched <= 24)
		{
			/* few partners (most products): sort them */
			sort_uint32(touched, ntouched);
			for (t = 0; t < ntouched; t++)
			{
				emit_pair(out, (uint32_t) a, touched[t], counter);
				seen[touched[t] >> 6] = 0;
			}
		}
		else
		{
			/* many partners: walk the bitmap of those seen, in order */
			for (t = ((size_t) a + 1) >> 6; t <= nids >> 6; t++)
			{
				uint64_t	w = seen[t];

				seen[t] = 0;
				while (w)
				{
					emit_pair(out, (uint32_t) a, (uint32_t) (t * 64 + __builtin_ctzll(w)), counter);
					w &= w - 1;
				}
			}
		}
		if ((a & 0x3ff) == 0)
			ups_check_interrupts();
	}
	ups_free(counter);
	ups_free(touched);
	ups_free(seen);
	ups_free(at);
	ups_free(first);
	ups_free(order_end);
	ups_free(idx);
}

void
cooc_counts_merge(CoocCounts *result, const CoocCounts *a, const CoocCounts *b)
{
	uint32_t   *amap = ups_alloc((a->nitems + 1) * sizeof(uint32_t));
	uint32_t   *bmap = ups_alloc((b->nitems + 1) * sizeof(uint32_t));
	size_t		i = 0,
				j = 0,
				n = 0;
	CoocCounts	r;

	memset(&r, 0, sizeof(r));
	r.orders = a->orders + b->orders;
	r.skipped_lines = a->skipped_lines + b->skipped_lines;
	r.big_orders = a->big_orders + b->big_orders;
	r.item_ids = ups_alloc(((size_t) a->nitems + b->nitems + 1) * sizeof(int64_t));
	r.item_counts = ups_alloc(((size_t) a->nitems + b->nitems + 1) * sizeof(int64_t));

	/* Union of the two sorted dictionaries; the maps are monotone. */
	while (i < a->nitems || j < b->nitems)
	{
		if (j >= b->nitems || (i < a->nitems && a->item_ids[i] < b->item_ids[j]))
		{
			r.item_ids[n] = a->item_ids[i];
			r.item_counts[n] = a->item_counts[i];
			amap[i++] = (uint32_t) n;
		}
		else if (i >= a->nitems || b->item_ids[j] < a->item_ids[i])
		{
			r.item_ids[n] = b->item_ids[j];
			r.item_counts[n] = b->item_counts[j];
			bmap[j++] = (uint32_t) n;
		}
		else
		{
			r.item_ids[n] = a->item_ids[i];
			r.item_counts[n] = a->item_counts[i] + b->item_counts[j];
			amap[i++] = (uint32_t) n;
			bmap[j++] = (uint32_t) n;
		}
		n++;
	}
	r.nitems = (uint32_t) n;

	/* Monotone maps keep both pair lists sorted: merge them. */
	r.pairs = ups_alloc((a->npairs + b->npairs + 1) * sizeof(CoocPair));
	i = j = 0;
	while (i < a->npairs || j < b->npairs)
	{
		CoocPair	pa,
					pb;
		int			c;

		if (i < a->npairs)
		{
			pa = a->pairs[i];
			pa.a = amap[pa.a];
			pa.b = amap[pa.b];
		}
		if (j < b->npairs)
		{
			pb = b->pairs[j];
			pb.a = bmap[pb.a];
			pb.b = bmap[pb.b];
		}
		c = i >= a->npairs ? 1 : j >= b->npairs ? -1 : pair_cmp(&pa, &pb);
		if (c < 0)
		{
			r.pairs[r.npairs++] = pa;
			i++;
		}
		else if (c > 0)
		{
			r.pairs[r.npairs++] = pb;
			j++;
		}
		else
		{
			pa.count += pb.count;
			r.pairs[r.npairs++] = pa;
			i++;
			j++;
		}
	}
	ups_free(amap);
	ups_free(bmap);
	*result = r;
}

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

#define PUT(buf, v) (memcpy((buf), &(v), sizeof(v)), (buf) += sizeof(v))
#define GET(buf, v) (memcpy(&(v), (buf), sizeof(v)), (buf) += sizeof(v))

#define LINES_HEADER	(4 + 4 + 8 + 8)
#define COUNTS_HEADER	(4 + 4 + 8 + 8 + 8 + 8)
#define PAIR_SIZE		(4 + 4 + 8)

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
			return "lines flagged sorted are not sorted";
	out->compact = compact == 1;
	return NULL;
}

size_t
cooc_counts_serialized_size(const CoocCounts *counts)
{
	return COUNTS_HEADER + (size_t) counts->nitems * 16 + counts->npairs * PAIR_SIZE;
}

void
cooc_counts_serialize(const CoocCounts *c, char *buf)
{
	uint32_t	magic = COUNTS_MAGIC;
	uint64_t	npairs = c->npairs;
	size_t		i;

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
	for (i = 0; i < c->npairs; i++)
	{
		PUT(buf, c->pairs[i].a);
		PUT(buf, c->pairs[i].b);
		PUT(buf, c->pairs[i].count);
	}
}

const char *
cooc_counts_deserialize(const char *buf, size_t len, CoocCounts *c)
{
	uint32_t	magic;
	uint64_t	npairs;
	size_t		i;

	memset(c, 0, sizeof(*c));
	if (len < COUNTS_HEADER)
		return "truncated header";
	GET(buf, magic);
	GET(buf, c->nitems);
	GET(buf, c->orders);
	GET(buf, c->skipped_lines);
	GET(buf, c->big_orders);
	GET(buf, npairs);
	if (magic != COUNTS_MAGIC)
		return "bad magic number";
	if (c->orders < 0 || c->skipped_lines < 0 || c->big_orders < 0 ||
		c->big_orders > c->orders)
		return "bad header";
	if ((uint64_t) c->nitems * 16 > len - COUNTS_HEADER ||
		npairs > (len - COUNTS_HEADER - (size_t) c->nitems * 16) / PAIR_SIZE ||
		len != COUNTS_HEADER + (size_t) c->nitems * 16 + npairs * PAIR_SIZE)
		return "item or pair count does not match the length";
	c->npairs = npairs;
	c->item_ids = ups_alloc(((size_t) c->nitems + 1) * 8);
	c->item_counts = ups_alloc(((size_t) c->nitems + 1) * 8);
	c->pairs = ups_alloc((npairs + 1) * sizeof(CoocPair));
	memcpy(c->item_ids, buf, (size_t) c->nitems * 8);
	buf += (size_t) c->nitems * 8;
	memcpy(c->item_counts, buf, (size_t) c->nitems * 8);
	buf += (size_t) c->nitems * 8;
	for (i = 0; i < c->nitems; i++)
	{
		if (i > 0 && c->item_ids[i - 1] >= c->item_ids[i])
			return "product ids are not strictly increasing";
		if (c->item_counts[i] < 1 || c->item_counts[i] > c->orders)
			return "product count out of range";
	}
	for (i = 0; i < npairs; i++)
	{
		CoocPair   *p = &c->pairs[i];

		GET(buf, p->a);
		GET(buf, p->b);
		GET(buf, p->count);
		if (p->a >= p->b || p->b >= c->nitems)
			return "pair index out of range";
		if (i > 0 && pair_cmp(&c->pairs[i - 1], p) >= 0)
			return "pairs are not strictly increasing";
		if (p->count < 1 || p->count > c->item_counts[p->a] ||
			p->count > c->item_counts[p->b])
			return "pair count out of range";
	}
	return NULL;
}
