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

void
cooc_lines_compact(CoocLines *lines)
{
	size_t		i,
				n = 0;

	if (lines->compact)
		return;
	qsort(lines->lines, lines->n, sizeof(CoocLine), line_cmp);
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

static int
int64_cmp(const void *pa, const void *pb)
{
	int64_t		a = *(const int64_t *) pa;
	int64_t		b = *(const int64_t *) pb;

	return a < b ? -1 : (a > b ? 1 : 0);
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

/*
 * Pair counting: an open-addressing hash keyed by (a << 32 | b).  Since
 * a < b, key 0 never occurs and marks an empty slot.
 */
typedef struct PairSlot
{
	uint64_t	key;
	int64_t		count;
} PairSlot;

typedef struct PairHash
{
	PairSlot   *slots;
	size_t		mask;
	size_t		used;
} PairHash;

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

static void
pairhash_init(PairHash *h, size_t expected)
{
	size_t		size = 1024;

	while (size < expected * 2)
		size *= 2;
	h->slots = ups_alloc0(size * sizeof(PairSlot));
	h->mask = size - 1;
	h->used = 0;
}

static void pairhash_add(PairHash *h, uint64_t key, int64_t count);

static void
pairhash_grow(PairHash *h)
{
	PairHash	bigger;
	size_t		i;

	bigger.slots = ups_alloc0((h->mask + 1) * 2 * sizeof(PairSlot));
	bigger.mask = (h->mask + 1) * 2 - 1;
	bigger.used = 0;
	for (i = 0; i <= h->mask; i++)
		if (h->slots[i].key != 0)
			pairhash_add(&bigger, h->slots[i].key, h->slots[i].count);
	ups_free(h->slots);
	*h = bigger;
}

static void
pairhash_add(PairHash *h, uint64_t key, int64_t count)
{
	size_t		i;

	if ((h->used + 1) * 10 > (h->mask + 1) * 7)
		pairhash_grow(h);
	i = mix64(key) & h->mask;
	for (;;)
	{
		PairSlot   *s = &h->slots[i];

		if (s->key == key)
		{
			s->count += count;
			return;
		}
		if (s->key == 0)
		{
			s->key = key;
			s->count = count;
			h->used++;
			return;
		}
		i = (i + 1) & h->mask;
	}
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

void
cooc_count(CoocLines *lines, int max_basket, CoocCounts *out)
{
	int64_t    *ids;
	uint32_t   *idx;
	size_t		i,
				nids = 0,
				start;
	PairHash	hash;

	cooc_lines_compact(lines);
	memset(out, 0, sizeof(*out));
	out->skipped_lines = lines->skipped;

	/* Dictionary of distinct products, sorted, so indexes follow ids. */
	ids = ups_alloc((lines->n + 1) * sizeof(int64_t));
	for (i = 0; i < lines->n; i++)
		ids[i] = lines->lines[i].product_id;
	qsort(ids, lines->n, sizeof(int64_t), int64_cmp);
	for (i = 0; i < lines->n; i++)
		if (nids == 0 || ids[nids - 1] != ids[i])
			ids[nids++] = ids[i];
	if (nids > UINT32_MAX)
		nids = UINT32_MAX;		/* unreachable in practice: 4G products */
	out->nitems = (uint32_t) nids;
	out->item_ids = ids;
	out->item_counts = ups_alloc0((nids + 1) * sizeof(int64_t));

	idx = ups_alloc((lines->n + 1) * sizeof(uint32_t));
	for (i = 0; i < lines->n; i++)
		idx[i] = (uint32_t) cooc_item_index(out, lines->lines[i].product_id);

	pairhash_init(&hash, lines->n);
	for (start = 0; start < lines->n;)
	{
		size_t		end = start,
					j,
					k;

		while (end < lines->n &&
			   lines->lines[end].order_key == lines->lines[start].order_key)
			end++;
		out->orders++;
		for (j = start; j < end; j++)
			out->item_counts[idx[j]]++;
		if (max_basket > 0 && end - start > (size_t) max_basket)
			out->big_orders++;
		else
		{
			/* lines are sorted by product within the order: idx[j] < idx[k] */
			for (j = start; j < end; j++)
				for (k = j + 1; k < end; k++)
					pairhash_add(&hash, ((uint64_t) idx[j] << 32) | idx[k], 1);
		}
		if ((out->orders & 0x3fff) == 0)
			ups_check_interrupts();
		start = end;
	}
	ups_free(idx);

	out->pairs = ups_alloc((hash.used + 1) * sizeof(CoocPair));
	for (i = 0; i <= hash.mask; i++)
	{
		if (hash.slots[i].key == 0)
			continue;
		out->pairs[out->npairs].a = (uint32_t) (hash.slots[i].key >> 32);
		out->pairs[out->npairs].b = (uint32_t) (hash.slots[i].key & 0xffffffff);
		out->pairs[out->npairs].count = hash.slots[i].count;
		out->npairs++;
	}
	ups_free(hash.slots);
	qsort(out->pairs, out->npairs, sizeof(CoocPair), pair_cmp);
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
