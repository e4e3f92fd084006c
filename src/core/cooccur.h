/*
 * cooccur.h
 *		Counting core for "frequently bought together": which products occur
 *		in the same order, and how often.
 *
 * Three shapes, mirroring the aggregate that drives them:
 *
 *	CoocLines	the transition state: (order, product) lines as they stream
 *				in, in any order.
 *	CoocCounts	the result: per-product order counts and per-pair order
 *				counts.  Two results of disjoint sets of orders merge by
 *				addition, which is what incremental refresh relies on.
 *	CoocPartial	what a parallel worker hands to the leader: each of the
 *				orders it saw with its products, and, where that pays (see
 *				cooc_partial_count), their pair counts.  The products let
 *				the leader correct an order whose lines two workers shared
 *				(an order split at a block boundary of the parallel scan, or
 *				a line added to an old order), which neither worker can
 *				know.
 *
 * A product counts once per order, whatever its quantity or repeated lines.
 * Products are kept as dense indexes into a sorted id array, so a pair is two
 * 32-bit indexes (a < b).  Pairs are stored row by row (compressed sparse
 * rows): the partners of product a are pairs[row[a] .. row[a + 1]), each
 * greater than a and increasing, with their order counts.
 */
#ifndef COOCCUR_H
#define COOCCUR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct CoocLine
{
	int64_t		order_key;
	int64_t		product_id;
} CoocLine;

typedef struct CoocLines
{
	CoocLine   *lines;
	size_t		n;
	size_t		cap;
	int64_t		skipped;		/* lines skipped: NULL ids, quantity <= 0 */
	bool		compact;		/* sorted by (order, product), no duplicates */
} CoocLines;

/* One pair of a row: the partner and the orders containing both. */
typedef struct CoocEntry
{
	uint32_t	partner;		/* product b > a, increasing within a row */
	uint32_t	together;
} CoocEntry;

/*
 * Bytes left free in front of the flat form that cooc_count produces, for
 * the host's own header (a varlena header inside the server).
 */
#define COOC_FLAT_HEADROOM 4

typedef struct CoocCounts
{
	int64_t		orders;			/* orders counted */
	int64_t		skipped_lines;	/* carried over from the lines */
	int64_t		big_orders;		/* orders too large for pair counting */
	uint32_t	nitems;
	int64_t    *item_ids;		/* strictly increasing */
	int64_t    *item_counts;	/* orders containing the product */
	size_t		npairs;
	size_t	   *row;			/* nitems + 1 offsets into pairs */
	CoocEntry  *pairs;			/* row by row */
	bool		borrowed;		/* pairs point into a caller's buffer */

	/*
	 * cooc_count writes its result in the flat form straight away, pairs
	 * included (they point into it): flat_len bytes from flat +
	 * COOC_FLAT_HEADROOM.  NULL for counts made otherwise.
	 */
	char	   *flat;
	size_t		flat_len;
} CoocCounts;

typedef struct CoocPartial
{
	/*
	 * counts.orders == norders.  Without counted, counts hold the products
	 * and their order counts but no pairs (and no big orders: those are
	 * judged on whole orders, when the pairs are counted).
	 */
	CoocCounts	counts;
	bool		counted;		/* the pairs are counted */
	size_t		norders;
	int64_t    *order_keys;		/* strictly increasing */
	size_t	   *order_start;	/* norders + 1 offsets into products */
	uint32_t   *products;		/* item indexes, increasing within an order */
} CoocPartial;

/* Measures of one ordered pair (product -> other), as arules defines them. */
typedef struct CoocMetrics
{
	double		support;
	double		confidence;
	double		lift;
	double		leverage;
	double		conviction;		/* +Inf when confidence is 1 */
	double		jaccard;
	double		score;			/* ranking score, see cooc_score() */
} CoocMetrics;

extern void cooc_lines_init(CoocLines *lines);
extern void cooc_lines_add(CoocLines *lines, int64_t order_key, int64_t product_id);
extern void cooc_lines_append(CoocLines *dst, const CoocLines *src);
extern void cooc_lines_compact(CoocLines *lines);

/*
 * Numbers the distinct products of the lines by ascending id: fills idx[i]
 * (n entries) with the number of line i's product and returns the distinct
 * ids, increasing (*nids of them, allocated with ups_alloc).
 */
extern int64_t *cooc_product_numbers(const CoocLines *lines, uint32_t *idx, size_t *nids);

/*
 * Counts products and pairs.  Orders with more than max_basket distinct
 * products (0: no limit) count for their products but not for pairs: one
 * wholesale order of n products would otherwise add n^2/2 pairs.  Returns
 * NULL, or an error message (static string) when a limit of the format is
 * exceeded (2^32 lines or orders in one count).
 */
extern const char *cooc_count(CoocLines *lines, int max_basket, CoocCounts *out);

/*
 * Whether a partial state carries pair counts.  Adding two states' pairs
 * costs the leader about as much as counting them did, unless the pairs are
 * few for the lines they come from (few products, many orders): then the
 * worker's count saves the leader work.  Otherwise (long tails of products,
 * FIMI retail) the state carries its orders only, 4 bytes a line, and the
 * leader counts the pairs of all orders once, after uniting them
 * (cooc_partial_finish).  AUTO decides by that rule; the others force it
 * (tests, benchmarks).
 */
typedef enum CoocPartialMode
{
	COOC_PARTIAL_AUTO,
	COOC_PARTIAL_PAIRS,
	COOC_PARTIAL_ORDERS
} CoocPartialMode;

/* The same, keeping every order's products for cooc_partial_combine(). */
extern const char *cooc_partial_count(CoocLines *lines, int max_basket,
									  CoocPartialMode mode, CoocPartial *out);

/*
 * Counts the pairs of a partial state that carries orders only (with
 * max_basket as when counting), so that partial->counts is the count of its
 * orders.  NULL or an error message.
 */
extern const char *cooc_partial_finish(CoocPartial *partial, int max_basket);

/*
 * The partial state of the orders of a and b together.  An order present in
 * both is counted once, over the union of its products (with max_basket as
 * when counting).  The result carries pair counts when both do.  a and b
 * stay untouched.  NULL or an error message when
 * the two are inconsistent (possible only with corrupted input).
 */
extern const char *cooc_partial_combine(CoocPartial *result, const CoocPartial *a,
										const CoocPartial *b, int max_basket);

/* result = a + b (counts of disjoint sets of orders); NULL or an error. */
extern const char *cooc_counts_merge(CoocCounts *result, const CoocCounts *a,
									 const CoocCounts *b);

extern void cooc_counts_free(CoocCounts *counts);
extern void cooc_partial_free(CoocPartial *partial);

/* Index of a product id in counts->item_ids, or -1. */
extern int64_t cooc_item_index(const CoocCounts *counts, int64_t product_id);

/* Order count of the pair of item indexes x and y (either order), or 0. */
extern int64_t cooc_pair_count(const CoocCounts *counts, uint32_t x, uint32_t y);

/* One of a product's best partners (cooc_top_pairs). */
typedef struct CoocTop
{
	uint32_t	product;		/* item indexes */
	uint32_t	other;
	uint32_t	together;
	double		score;			/* cooc_score(together, count of product) */
} CoocTop;

/*
 * For every product, its per_product best partners among the pairs seen in
 * at least min_count orders, by score, ties broken by partner (so by
 * product id): product by product, best first, *n entries.  Memory is
 * bounded by the output (a bounded heap per product), not by the pairs.
 */
extern CoocTop *cooc_top_pairs(const CoocCounts *counts, int per_product,
							   int64_t min_count, size_t *n);

/*
 * The same, except that a product in fewer than rare_orders orders keeps
 * its best partners among every pair (seen once too): all the evidence a
 * rare product will ever have.  rare_orders 0 is cooc_top_pairs.  With
 * only (a flag per item index; NULL: every product), just the products
 * flagged get their partners: what an incremental refresh rewrites (a
 * product's list depends on its own counts alone).
 */
extern CoocTop *cooc_top_pairs_rare(const CoocCounts *counts, int per_product,
									int64_t min_count, int64_t rare_orders,
									const bool *only, size_t *n);

/*
 * Pairs within categories (src/core/cooc_categories.c): given a category
 * key (0 .. nkeys - 1, or -1 for none) for each of n product ids (in any
 * order, each at most once; products of the counts not given have none),
 * within[k] receives the sum of the order counts of the pairs whose two
 * products both have key k, and *total the sum over all pairs.  One pass
 * over the pairs.  NULL, or an error message for bad keys or repeated ids.
 */
extern const char *cooc_category_pairs(const CoocCounts *counts, const int64_t *ids,
									   const int32_t *keys, size_t n, int32_t nkeys,
									   int64_t *within, int64_t *total);

/*
 * Pair moments (src/core/cooc_moments.c): over the ordered pairs (a, b) of
 * the counts' pairs (each stored pair a < b counting as (a, b) and (b, a)),
 * *sum_t2 receives the sum of together^2 and *sum_tnn the sum of together *
 * count(a) * count(b).  One pass over the pairs, in doubles (exact while the
 * sums stay below 2^53); a chunk sums its own rows.
 */
extern void cooc_pair_moments(const CoocCounts *counts, double *sum_t2, double *sum_tnn);

extern void cooc_metrics(int64_t together, int64_t product_count,
						 int64_t other_count, int64_t orders,
						 CoocMetrics *m);
extern double cooc_score(int64_t together, int64_t product_count);

/*
 * Chunks (src/core/cooc_chunks.c): counts stored as several values, each
 * with every product and the rows (pairs a < b) of the products of an index
 * range [lo, hi), so that a tenant's counts are never one huge value.
 *
 * cooc_chunk_bounds splits the rows into ranges of at most max_pairs pairs
 * (a row with more is a chunk of its own): *bounds receives n + 1 item
 * indexes, chunk i being [bounds[i], bounds[i + 1]); returns n >= 1.  Every
 * chunk but the first starts with a row that has pairs.
 * cooc_rows_serialize writes the chunk [lo, hi) in the flat form of counts
 * (cooc_rows_serialized_size bytes).  cooc_item_lower_bound is the index of
 * the first product whose id is >= product_id.
 *
 * cooc_counts_merge_rows adds to chunk the rows of added whose product id
 * lies in [*lo_id, *hi_id) (NULL: unbounded) and every product's count of
 * added: the chunk of a range after new orders were counted.  NULL or an
 * error (as cooc_counts_merge).
 */
extern size_t cooc_chunk_bounds(const CoocCounts *counts, size_t max_pairs,
								uint32_t **bounds);
extern size_t cooc_rows_serialized_size(const CoocCounts *counts, uint32_t lo,
										uint32_t hi);
extern void cooc_rows_serialize(const CoocCounts *counts, uint32_t lo, uint32_t hi,
								char *buf);
extern uint32_t cooc_item_lower_bound(const CoocCounts *counts, int64_t product_id);
extern const char *cooc_counts_merge_rows(CoocCounts *result, const CoocCounts *chunk,
										  const CoocCounts *added, const int64_t *lo_id,
										  const int64_t *hi_id);

/*
 * Base and delta (src/core/cooc_sum.c): a stored chunk of counts (the base,
 * rewritten by a full refresh) and the delta stored beside it (the counts
 * of the orders an incremental refresh folded in since), read as their sum
 * without building it: the pairs are merged row by row as they are read,
 * two sorted arrays side by side.  The delta's rows counted are those of
 * the chunk's range, its products whose ids lie in [*lo_id, *hi_id) (NULL:
 * unbounded), as cooc_counts_merge_rows adds them; every product's count
 * is summed.  Every reader of stored counts reads them through it, so that
 * the models see exactly what one value of all the orders would hold.
 *
 * cooc_sum_init: NULL, or an error (totals out of range) with nothing to
 * free.  delta NULL: the base alone, read in place.  The summed products
 * (nitems, item_ids, item_counts) are the union of both, in id order; an
 * item index below is an index into them.  cooc_sum_row starts the pairs
 * (a, b > a) of item a; cooc_sum_next gives them in increasing b, each with
 * its summed order count, and false at the row's end.
 */
#define COOC_SUM_NONE UINT32_MAX

typedef struct CoocSum
{
	const CoocCounts *base;
	const CoocCounts *delta;	/* NULL: the base alone */
	int64_t		orders;
	int64_t		skipped_lines;
	int64_t		big_orders;
	uint32_t	nitems;
	const int64_t *item_ids;
	const int64_t *item_counts;
	/* with a delta: summed item -> its index in base / delta, or NONE */
	uint32_t   *base_item;
	uint32_t   *delta_item;
	/* with a delta: base / delta item -> summed item (partners are mapped) */
	uint32_t   *base_map;
	uint32_t   *delta_map;
	uint32_t	delta_lo;		/* the delta's rows of the range: [lo, hi) */
	uint32_t	delta_hi;
	bool		owned;			/* the arrays above are the sum's own */
} CoocSum;

typedef struct CoocSumRow
{
	const CoocSum *sum;
	const CoocEntry *b,
			   *b_end,
			   *d,
			   *d_end;
} CoocSumRow;

extern const char *cooc_sum_init(CoocSum *sum, const CoocCounts *base,
								 const CoocCounts *delta, const int64_t *lo_id,
								 const int64_t *hi_id);
extern void cooc_sum_free(CoocSum *sum);
extern void cooc_sum_row(const CoocSum *sum, uint32_t a, CoocSumRow *row);
extern int64_t cooc_sum_item_index(const CoocSum *sum, int64_t product_id);

static inline bool
cooc_sum_next(CoocSumRow *r, uint32_t *partner, uint32_t *together)
{
	const CoocSum *s = r->sum;

	if (r->b < r->b_end)
	{
		uint32_t	pb = s->base_map ? s->base_map[r->b->partner] : r->b->partner;

		if (r->d < r->d_end)
		{
			uint32_t	pd = s->delta_map[r->d->partner];

			if (pd < pb)
			{
				*partner = pd;
				*together = r->d++->together;
				return true;
			}
			if (pd == pb)
			{
				/* at most the orders, which cooc_sum_init bounds */
				*partner = pb;
				*together = r->b++->together + r->d++->together;
				return true;
			}
		}
		*partner = pb;
		*together = r->b++->together;
		return true;
	}
	if (r->d < r->d_end)
	{
		*partner = s->delta_map[r->d->partner];
		*together = r->d++->together;
		return true;
	}
	return false;
}

/* The readers above, of a sum (the plain ones read counts alone). */
extern CoocTop *cooc_sum_top_pairs(const CoocSum *sum, int per_product,
								   int64_t min_count, int64_t rare_orders,
								   const bool *only, size_t *n);
extern const char *cooc_sum_category_pairs(const CoocSum *sum, const int64_t *ids,
										   const int32_t *keys, size_t n, int32_t nkeys,
										   int64_t *within, int64_t *total);
/* (with npairs, the summed pairs counted in the same pass) */
extern void cooc_sum_pair_moments(const CoocSum *sum, double *sum_t2, double *sum_tnn,
								  size_t *npairs);

/*
 * Flat binary forms.  The counts form is the stored SQL value; the partial
 * form is the aggregate's state sent from parallel workers to the leader;
 * the lines form is kept for tools that ship raw lines.  Every decoder
 * validates every length, count and ordering and returns an error message
 * (static string) instead of trusting corrupted input; on error the output
 * holds nothing to free.
 *
 * cooc_counts_deserialize reads the current form and the form of version
 * 1.0 (pairs as (a, b, count) triples).  With borrow, a current-form value
 * whose buffer is 4-byte aligned is not copied: pairs then point into buf,
 * which must outlive the counts (cooc_counts_free leaves them alone).
 */
extern size_t cooc_lines_serialized_size(const CoocLines *lines);
extern void cooc_lines_serialize(const CoocLines *lines, char *buf);
extern const char *cooc_lines_deserialize(const char *buf, size_t len,
										  CoocLines *out);

extern size_t cooc_counts_serialized_size(const CoocCounts *counts);

/*
 * The header and the products of a counts value, read from a prefix of its
 * current form: a reader that needs no pair (the product counts, the
 * totals) fetches only that prefix of a stored value, whose pairs are most
 * of it.  cooc_counts_items_len gives the prefix's length from the value's
 * first COOC_COUNTS_HEADER bytes, or 0 when they are not of the current
 * form (then the whole value is to be read).  cooc_counts_deserialize_items
 * takes prefix_len bytes of a value of len bytes, checks them as the full
 * decoder does, and leaves out's pairs empty (npairs holds their number).
 */
#define COOC_COUNTS_HEADER	40
extern size_t cooc_counts_items_len(const char *header);
extern const char *cooc_counts_deserialize_items(const char *buf, size_t prefix_len,
												 size_t len, CoocCounts *out);
extern void cooc_counts_serialize(const CoocCounts *counts, char *buf);
extern const char *cooc_counts_deserialize(const char *buf, size_t len,
										   bool borrow, CoocCounts *out);

extern size_t cooc_partial_serialized_size(const CoocPartial *partial);
extern void cooc_partial_serialize(const CoocPartial *partial, char *buf);
extern const char *cooc_partial_deserialize(const char *buf, size_t len,
											CoocPartial *out);

#endif							/* COOCCUR_H */
