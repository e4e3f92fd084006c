/*
 * cooc_moments.c
 *		Sums over the pairs that measure how far the pair counts stray from
 *		the products' popularity (see cooccur.h, cooc_pair_moments).
 *
 * The cooccurrence model's pair_dispersion compares the pair counts t_ab
 * with n_a n_b / N, what popularity alone gives: over the pairs bought
 * together it needs the sums of t^2 and of t n_a n_b.  Listing every pair
 * as a row to sum them in SQL costs a tuple per pair (FIMI retail: 6M); here
 * it is one pass over the counts' rows.
 */
#include "cooccur.h"

#include "ups_host.h"

void
cooc_pair_moments(const CoocCounts *c, double *sum_t2, double *sum_tnn)
{
	CoocSum		s;

	(void) cooc_sum_init(&s, c, NULL, NULL, NULL);
	cooc_sum_pair_moments(&s, sum_t2, sum_tnn, NULL);
}

void
cooc_sum_pair_moments(const CoocSum *s, double *sum_t2, double *sum_tnn, size_t *npairs)
{
	double		t2 = 0,
				tnn = 0;
	size_t		n = 0;
	uint32_t	a;

	for (a = 0; a < s->nitems; a++)
	{
		double		na = (double) s->item_counts[a],
					row_t2 = 0,
					row_tnb = 0;
		CoocSumRow	r;
		uint32_t	partner,
					together;

		/* per row first: the sums are exact while they stay below 2^53 */
		cooc_sum_row(s, a, &r);
		while (cooc_sum_next(&r, &partner, &together))
		{
			double		t = (double) together;

			row_t2 += t * t;
			row_tnb += t * (double) s->item_counts[partner];
			n++;
		}
		t2 += row_t2;
		tnn += na * row_tnb;
		if ((a & 0x3ff) == 0)
			ups_check_interrupts();
	}
	/* each pair is stored once (a < b) and stands for both orders */
	*sum_t2 = 2 * t2;
	*sum_tnn = 2 * tnn;
	if (npairs)
		*npairs = n;
}
