/*
 * page_rank.c
 *		Ranking of one product's page offers, see page_rank.h.
 */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>

#include "page_rank.h"

int
page_cmp_float8(double a, double b)
{
	if (isnan(a))
		return isnan(b) ? 0 : 1;
	if (isnan(b))
		return -1;
	return a < b ? -1 : (a > b ? 1 : 0);
}

int
page_cmp_ids(const int64_t *a, int na, const int64_t *b, int nb)
{
	int			n = na < nb ? na : nb;

	for (int i = 0; i < n; i++)
		if (a[i] != b[i])
			return a[i] < b[i] ? -1 : 1;
	return na < nb ? -1 : (na > nb ? 1 : 0);
}

/* the products offered, then the highest sort, then the kind */
static int
cmp_by_ids(const void *x, const void *y)
{
	const PageCandidate *a = x;
	const PageCandidate *b = y;
	int			c = page_cmp_ids(a->ids, a->nids, b->ids, b->nids);

	if (c != 0)
		return c;
	c = page_cmp_float8(b->sort, a->sort);
	if (c != 0)
		return c;
	return a->kind - b->kind;
}

/* the highest sort, then the products offered, then the kind */
static int
cmp_by_rank(const void *x, const void *y)
{
	const PageCandidate *a = x;
	const PageCandidate *b = y;
	int			c = page_cmp_float8(b->sort, a->sort);

	if (c != 0)
		return c;
	c = page_cmp_ids(a->ids, a->nids, b->ids, b->nids);
	if (c != 0)
		return c;
	return a->kind - b->kind;
}

int
page_rank(PageCandidate *c, int n, int limit)
{
	double		best[PAGE_NKINDS];
	bool		seen[PAGE_NKINDS] = {false, false, false};
	int			kept;

	for (int i = 0; i < n; i++)
	{
		int			k = c[i].kind;

		if (!seen[k] || page_cmp_float8(c[i].score, best[k]) > 0)
			best[k] = c[i].score;
		seen[k] = true;
	}
	for (int i = 0; i < n; i++)
	{
		double		b = best[c[i].kind];
		double		s;

		/* nullif(best, 0): no sort, and the model's sort is NOT NULL */
		if (b == 0)
			return PAGE_RANK_ZERO_BEST;
		s = c[i].score / b;
		/* float8div's checks */
		if ((isinf(s) && !isinf(c[i].score) && !isinf(b)) || (s == 0 && c[i].score != 0))
			return PAGE_RANK_OUT_OF_RANGE;
		c[i].sort = s;
	}
	if (n == 0)
		return 0;
	/* one offer per set of products: the first of each run */
	qsort(c, n, sizeof(PageCandidate), cmp_by_ids);
	kept = 1;
	for (int i = 1; i < n; i++)
		if (page_cmp_ids(c[i].ids, c[i].nids, c[kept - 1].ids, c[kept - 1].nids) != 0)
			c[kept++] = c[i];
	qsort(c, kept, sizeof(PageCandidate), cmp_by_rank);
	return kept < limit ? kept : limit;
}
