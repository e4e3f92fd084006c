/*
 * cooc_categories.c
 *		Co-purchased pairs within a category, in one pass over the counts
 *		(see cooccur.h, cooc_category_pairs).
 *
 * The category model asks, per category, how many of the shop's
 * co-purchased pairs of products fall within it.  Listing every pair as a
 * row and joining each side to its product's category costs two lookups
 * per pair; here the products' categories become one array indexed like
 * the counts' items, and each pair is one comparison.
 */
#include "cooccur.h"

#include <stdlib.h>
#include <string.h>

#include "ups_host.h"

/* An item of the counts not given a category (or given NULL). */
#define NO_KEY	(-1)

static int
int64_cmp(const void *pa, const void *pb)
{
	int64_t		a = *(const int64_t *) pa;
	int64_t		b = *(const int64_t *) pb;

	return a < b ? -1 : (a > b ? 1 : 0);
}

const char *
cooc_category_pairs(const CoocCounts *c, const int64_t *ids, const int32_t *keys,
					size_t n, int32_t nkeys, int64_t *within, int64_t *total)
{
	CoocSum		s;

	(void) cooc_sum_init(&s, c, NULL, NULL, NULL);
	return cooc_sum_category_pairs(&s, ids, keys, n, nkeys, within, total);
}

const char *
cooc_sum_category_pairs(const CoocSum *c, const int64_t *ids, const int32_t *keys,
						size_t n, int32_t nkeys, int64_t *within, int64_t *total)
{
	int32_t    *item_key;
	int64_t    *sorted;
	size_t		i;
	uint32_t	a;
	int64_t		sum = 0;

	if (nkeys < 0)
		return "the number of category keys must not be negative";
	for (i = 0; i < n; i++)
		if (keys[i] < NO_KEY || keys[i] >= nkeys)
			return "a category key is out of range";

	/* an id given twice would make its category ambiguous */
	sorted = ups_alloc((n + 1) * sizeof(int64_t));
	if (n > 0)
	{
		memcpy(sorted, ids, n * sizeof(int64_t));
		qsort(sorted, n, sizeof(int64_t), int64_cmp);
	}
	for (i = 1; i < n; i++)
		if (sorted[i - 1] == sorted[i])
		{
			ups_free(sorted);
			return "a product id is given twice";
		}
	ups_free(sorted);

	item_key = ups_alloc(((size_t) c->nitems + 1) * sizeof(int32_t));
	for (a = 0; a < c->nitems; a++)
		item_key[a] = NO_KEY;
	for (i = 0; i < n; i++)
	{
		int64_t		x = cooc_sum_item_index(c, ids[i]);

		if (x >= 0)
			item_key[x] = keys[i];
	}

	memset(within, 0, (size_t) nkeys * sizeof(int64_t));
	for (a = 0; a < c->nitems; a++)
	{
		int32_t		ka = item_key[a];
		CoocSumRow	r;
		uint32_t	partner,
					together;

		cooc_sum_row(c, a, &r);
		while (cooc_sum_next(&r, &partner, &together))
		{
			sum += together;
			if (ka != NO_KEY && item_key[partner] == ka)
				within[ka] += together;
		}
		if ((a & 0x3ff) == 0)
			ups_check_interrupts();
	}
	ups_free(item_key);
	*total = sum;
	return NULL;
}
