/*
 * cooccur.h
 *		Counting core for "frequently bought together": which products occur
 *		in the same order, and how often.
 *
 * Two stages, mirroring the aggregate that drives them:
 *
 *	CoocLines	the transition state: (order, product) lines as they stream
 *				in, in any order.  Two states combine by concatenation, so
 *				parallel workers can each scan part of a table.
 *	CoocCounts	the result: per-product order counts and per-pair order
 *				counts.  Two results merge by addition, which is what
 *				incremental refresh relies on.
 *
 * A product counts once per order, whatever its quantity or repeated lines.
 * Products are kept as dense indexes into a sorted id array, so a pair is two
 * 32-bit indexes (a < b).
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

typedef struct CoocPair
{
	uint32_t	a;				/* dense product index, a < b */
	uint32_t	b;
	int64_t		count;			/* orders containing both */
} CoocPair;

typedef struct CoocCounts
{
	int64_t		orders;			/* orders counted */
	int64_t		skipped_lines;	/* carried over from the lines */
	int64_t		big_orders;		/* orders too large for pair counting */
	uint32_t	nitems;
	int64_t    *item_ids;		/* strictly increasing */
	int64_t    *item_counts;	/* orders containing the product */
	size_t		npairs;
	CoocPair   *pairs;			/* sorted by (a, b), no duplicates */
} CoocCounts;

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
 * Counts products and pairs.  Orders with more than max_basket distinct
 * products (0: no limit) count for their products but not for pairs: one
 * wholesale order of n products would otherwise add n^2/2 pairs.
 */
extern void cooc_count(CoocLines *lines, int max_basket, CoocCounts *out);

/* Adds b into a (same product ids or not). */
extern void cooc_counts_merge(CoocCounts *result, const CoocCounts *a,
							  const CoocCounts *b);

/* Index of a product id in counts->item_ids, or -1. */
extern int64_t cooc_item_index(const CoocCounts *counts, int64_t product_id);

extern void cooc_metrics(int64_t together, int64_t product_count,
						 int64_t other_count, int64_t orders,
						 CoocMetrics *m);
extern double cooc_score(int64_t together, int64_t product_count);

/*
 * Flat binary forms.  The lines form is the aggregate's partial state sent
 * between parallel workers; the counts form is the stored SQL value.  Both
 * decoders validate every length, count and ordering and return an error
 * message (static string) instead of trusting corrupted input.
 */
extern size_t cooc_lines_serialized_size(const CoocLines *lines);
extern void cooc_lines_serialize(const CoocLines *lines, char *buf);
extern const char *cooc_lines_deserialize(const char *buf, size_t len,
										  CoocLines *out);

extern size_t cooc_counts_serialized_size(const CoocCounts *counts);
extern void cooc_counts_serialize(const CoocCounts *counts, char *buf);
extern const char *cooc_counts_deserialize(const char *buf, size_t len,
										   CoocCounts *out);

#endif							/* COOCCUR_H */
