/*
 * gapfill.h
 *		Gap fillers: the combinations of one to three products whose added
 *		price closes the gap to a spend threshold, ranked by relevance to the
 *		cart against overshoot.
 *
 * Money is integer cents (int64) throughout.  The catalog is a price-sorted
 * array of candidates (price, product id), ascending by (price, id), as the
 * threshold_candidates model stores it.  Every candidate carries a flag:
 *
 *	GAP_PLAIN		eligible, no relevance to the cart
 *	GAP_RELEVANT	eligible, a complement of the cart (relevance > 0)
 *	GAP_SKIP		not offered (in the cart, excluded by the merchant)
 *
 * A combination c of n distinct candidates with total P >= gap has
 *
 *	overshoot(c) = P - gap
 *	relevance(c) = (sum of the members' relevance) / n
 *	score(c)     = gap / P * (1 + relevance(c)) * 0.8^(n - 1)
 *
 * gap / P is the share of the added spend the shopper needed anyway (1 at
 * zero overshoot); relevance can double it; every extra item costs 20%, so
 * a pair is offered before a single item only when that item overshoots by
 * more than a quarter of the gap or is much less relevant.
 *
 * Two candidates that substitute each other (of one variant group, or of
 * two categories whose products substitute each other: a second phone next
 * to a phone) are never offered together, when the request says which; nor
 * are two the merchant said never to offer next to each other.
 *
 * The search returns the exact top k by (score desc, n asc, added asc,
 * sorted product ids asc).  It splits the combinations into groups in
 * which the score only falls as overshoot grows (same n, same relevant
 * members), takes each group's least-overshoot members by binary search and
 * two pointers over the sorted prices, and stops a group as soon as its best
 * remaining score cannot enter the top k.  Only the three-item search of
 * plain candidates is quadratic in the worst case; it stops after
 * step_budget steps and then reports complete = false.
 */
#ifndef GAPFILL_H
#define GAPFILL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GAP_MAX_ITEMS	3
#define GAP_MAX_K		1000

#define GAP_PLAIN		0
#define GAP_RELEVANT	1
#define GAP_SKIP		2

typedef struct GapCatalog
{
	size_t		n;
	const int64_t *price;		/* cents, ascending by (price, id) */
	const int64_t *id;
} GapCatalog;

typedef struct GapRequest
{
	int64_t		gap;			/* cents, > 0 */
	int			k;				/* 0 .. GAP_MAX_K */
	int			max_items;		/* 1 .. GAP_MAX_ITEMS */
	const uint8_t *flags;		/* per candidate: GAP_PLAIN/RELEVANT/SKIP */
	const double *relevance;	/* per candidate, in [0, 1]; read for RELEVANT */
	int64_t		step_budget;	/* for the plain three-item search; <= 0: none */
	/* substitutes (group NULL: none are): */
	const int32_t *group;		/* per candidate: variant group, 0: none */
	const int32_t *category;	/* per candidate: 1 .. ncategories, 0: none */
	const uint8_t *substitutes; /* [a * (ncategories + 1) + b]: categories a
								 * and b substitute each other (NULL: none) */
	int			ncategories;
	/* pairs of product ids never offered together (a merchant's "never
	 * never_a[i] next to never_b[i]", either way round): */
	const int64_t *never_a;
	const int64_t *never_b;
	int			nnever;
} GapRequest;

typedef struct GapOffer
{
	int			n;
	uint32_t	items[GAP_MAX_ITEMS];	/* candidate indexes */
	int64_t		ids[GAP_MAX_ITEMS];		/* product ids, ascending */
	int64_t		added;			/* cents */
	int64_t		overshoot;		/* cents */
	double		relevance;
	double		score;
} GapOffer;

/*
 * Fills out[0 .. return value) with the best offers, best first.  out must
 * hold req->k offers.  *complete is false when the step budget cut the
 * three-item search short.
 */
extern int	gap_search(const GapCatalog *cat, const GapRequest *req,
					   GapOffer *out, bool *complete);

/*
 * With more than this many candidates that are not PLAIN, walks use a
 * table of the next PLAIN index (O(n) to build) instead of skip loops.
 * Exposed so that the tests can exercise both.
 */
extern size_t gap_skip_table_min;

/* The score of a combination (exposed for tests and brute force). */
extern double gap_score(int64_t gap, int64_t added, int n, double relevance_sum);

/* true when a ranks before b */
extern bool gap_offer_better(const GapOffer *a, const GapOffer *b);

/* First index in [0, n) whose price is >= value (n if none). */
extern size_t gap_lower_bound(const GapCatalog *cat, int64_t value);

#endif							/* GAPFILL_H */
