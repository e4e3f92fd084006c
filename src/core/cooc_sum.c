/*
 * cooc_sum.c
 *		A chunk of stored counts and the delta stored beside it, read as
 *		their sum (see cooccur.h, CoocSum).
 *
 * An incremental refresh used to add the new orders' counts to every
 * stored chunk and write the chunks again: at 10M lines one 100 MB chunk
 * read, merged, written and the old one deleted, 3-4 s of the refresh,
 * since new orders reach every chunk.  Now it writes only a small delta
 * (the counts of the orders folded in since the last full refresh) and the
 * readers sum the two as they read: the products' union once (a few
 * arrays of the products' size), the pairs row by row, two sorted rows
 * merged, nothing of the pairs copied.
 */
#include "cooccur.h"

#include <string.h>

#include "ups_host.h"

const char *
cooc_sum_init(CoocSum *s, const CoocCounts *base, const CoocCounts *delta,
			  const int64_t *lo_id, const int64_t *hi_id)
{
	uint32_t	b = 0,
				d = 0,
				n = 0;
	int64_t    *ids,
			   *counts;

	memset(s, 0, sizeof(*s));
	s->base = base;
	s->delta = delta;
	s->orders = base->orders;
	s->skipped_lines = base->skipped_lines;
	s->big_orders = base->big_orders;
	s->nitems = base->nitems;
	s->item_ids = base->item_ids;
	s->item_counts = base->item_counts;
	if (delta == NULL)
		return NULL;

	/* a pair's count is at most the orders: a sum within them fits 32 bits */
	if (delta->orders > (int64_t) UINT32_MAX - base->orders)
		return "more than 4294967295 orders in one count";
	if (delta->skipped_lines > INT64_MAX - base->skipped_lines ||
		delta->big_orders > INT64_MAX - base->big_orders)
		return "more than 2^63 - 1 skipped lines in one count";
	s->orders += delta->orders;
	s->skipped_lines += delta->skipped_lines;
	s->big_orders += delta->big_orders;

	/* the union of the two sorted dictionaries */
	ids = ups_alloc(((size_t) base->nitems + delta->nitems + 1) * sizeof(int64_t));
	counts = ups_alloc(((size_t) base->nitems + delta->nitems + 1) * sizeof(int64_t));
	s->base_item = ups_alloc(((size_t) base->nitems + delta->nitems + 1) * sizeof(uint32_t));
	s->delta_item = ups_alloc(((size_t) base->nitems + delta->nitems + 1) * sizeof(uint32_t));
	s->base_map = ups_alloc(((size_t) base->nitems + 1) * sizeof(uint32_t));
	s->delta_map = ups_alloc(((size_t) delta->nitems + 1) * sizeof(uint32_t));
	while (b < base->nitems || d < delta->nitems)
	{
		bool		from_base = b < base->nitems &&
			(d >= delta->nitems || base->item_ids[b] <= delta->item_ids[d]);
		bool		from_delta = d < delta->nitems &&
			(b >= base->nitems || delta->item_ids[d] <= base->item_ids[b]);

		ids[n] = from_base ? base->item_ids[b] : delta->item_ids[d];
		counts[n] = 0;
		s->base_item[n] = s->delta_item[n] = COOC_SUM_NONE;
		if (from_base)
		{
			counts[n] += base->item_counts[b];
			s->base_item[n] = b;
			s->base_map[b++] = n;
		}
		if (from_delta)
		{
			counts[n] += delta->item_counts[d];
			s->delta_item[n] = d;
			s->delta_map[d++] = n;
		}
		n++;
	}
	s->nitems = n;
	s->item_ids = ids;
	s->item_counts = counts;
	s->delta_lo = lo_id ? cooc_item_lower_bound(delta, *lo_id) : 0;
	s->delta_hi = hi_id ? cooc_item_lower_bound(delta, *hi_id) : delta->nitems;
	if (s->delta_hi < s->delta_lo)
		s->delta_hi = s->delta_lo;
	s->owned = true;
	return NULL;
}

void
cooc_sum_free(CoocSum *s)
{
	if (s->owned)
	{
		ups_free((void *) s->item_ids);
		ups_free((void *) s->item_counts);
		ups_free(s->base_item);
		ups_free(s->delta_item);
		ups_free(s->base_map);
		ups_free(s->delta_map);
	}
	memset(s, 0, sizeof(*s));
}

void
cooc_sum_row(const CoocSum *s, uint32_t a, CoocSumRow *r)
{
	const CoocCounts *base = s->base,
			   *delta = s->delta;
	uint32_t	x = s->base_item ? s->base_item[a] : a;

	r->sum = s;
	r->b = r->b_end = r->d = r->d_end = NULL;
	if (x != COOC_SUM_NONE && base->row[x + 1] > base->row[x])
	{
		r->b = base->pairs + base->row[x];
		r->b_end = base->pairs + base->row[x + 1];
	}
	if (delta)
	{
		x = s->delta_item[a];
		if (x != COOC_SUM_NONE && x >= s->delta_lo && x < s->delta_hi &&
			delta->row[x + 1] > delta->row[x])
		{
			r->d = delta->pairs + delta->row[x];
			r->d_end = delta->pairs + delta->row[x + 1];
		}
	}
}

int64_t
cooc_sum_item_index(const CoocSum *s, int64_t product_id)
{
	size_t		lo = 0,
				hi = s->nitems;

	while (lo < hi)
	{
		size_t		mid = lo + (hi - lo) / 2;

		if (s->item_ids[mid] < product_id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < s->nitems && s->item_ids[lo] == product_id ? (int64_t) lo : -1;
}
