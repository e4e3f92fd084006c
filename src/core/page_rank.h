/*
 * page_rank.h
 *		The product page model's ranking of one product's offers: each offer
 *		scored relative to the best of its kind, one offer per set of
 *		products offered, best first.
 *
 * The rule (src/sql/90_funnel.sql, _build_product_page_model):
 *	 sort = score / (the best score of the product's offers of that kind);
 *	 of the offers of the same products (an upgrade and a complement of the
 *	 same product), the one of the highest sort, then the first kind in
 *	 text order (bundle < complement < upgrade);
 *	 then by sort descending, the products offered (element by element,
 *	 then the shorter first) and the kind, the first `limit`.
 * Floats compare as PostgreSQL's float8 does: NaN above every number.
 */
#ifndef PAGE_RANK_H
#define PAGE_RANK_H

#include <stdint.h>

/* The kinds in the text order of their names */
typedef enum PageKind
{
	PAGE_BUNDLE = 0,
	PAGE_COMPLEMENT = 1,
	PAGE_UPGRADE = 2
} PageKind;

#define PAGE_NKINDS 3

/* The offers a product page keeps, at most */
#define PAGE_OFFERS 12

typedef struct PageCandidate
{
	int			kind;			/* a PageKind */
	const int64_t *ids;			/* the products offered */
	int			nids;
	double		score;
	double		sort;			/* set by page_rank */
	int			ref;			/* the caller's */
} PageCandidate;

#define PAGE_RANK_ZERO_BEST		(-1)	/* a kind's best score is 0: no sort */
#define PAGE_RANK_OUT_OF_RANGE	(-2)	/* score / best overflows or underflows */

/*
 * Ranks c[0 .. n): on return c[0 .. result) are the offers kept, best first,
 * with their sort set.  Returns how many (at most limit), or one of the
 * negative codes above (PostgreSQL's division would have failed).
 */
extern int	page_rank(PageCandidate *c, int n, int limit);

/* PostgreSQL's float8 order: -1, 0, 1 (NaN equal to NaN, above the rest) */
extern int	page_cmp_float8(double a, double b);

/* int8[] order: element by element, then the shorter first */
extern int	page_cmp_ids(const int64_t *a, int na, const int64_t *b, int nb);

#endif							/* PAGE_RANK_H */
