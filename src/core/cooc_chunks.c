/*
 * cooc_chunks.c
 *		Counts stored in chunks (see cooccur.h): one tenant's pair counts as
 *		several bounded values instead of one, so that no stored value
 *		nears PostgreSQL's 1 GB limit on a value.
 *
 * A chunk is itself a counts value: every product with its order count
 * (what every reader of pairs needs: the measures of a pair read both
 * products' counts) and the rows of the products of a range, the pairs
 * (a, b > a) of those products.  Every pair thus lies in exactly one chunk,
 * the one whose range holds its smaller product, and the readers consume
 * the chunks one at a time: the products from any chunk, the pairs of each
 * chunk in turn.  Adding new orders' counts (incremental refresh) adds to
 * each chunk the new rows of its range, with every product's new count.
 */
#include "cooccur.h"

#include <string.h>

#include "ups_host.h"

/*
 * A view of the rows [lo, hi) of c with all its items: item arrays and
 * pairs point into c; only the row offsets are allocated (free view->row).
 */
static void
rows_view(const CoocCounts *c, uint32_t lo, uint32_t hi, CoocCounts *view)
{
	size_t		base = c->row[lo],
				end = c->row[hi];
	uint32_t	a;

	memset(view, 0, sizeof(*view));
	view->orders = c->orders;
	view->skipped_lines = c->skipped_lines;
	view->big_orders = c->big_orders;
	view->nitems = c->nitems;
	view->item_ids = c->item_ids;
	view->item_counts = c->item_counts;
	view->npairs = end - base;
	view->pairs = c->pairs + base;
	view->borrowed = true;
	view->row = ups_alloc(((size_t) c->nitems + 1) * sizeof(size_t));
	for (a = 0; a <= c->nitems; a++)
		view->row[a] = a <= lo ? 0 : (a >= hi ? end - base : c->row[a] - base);
}

size_t
cooc_rows_serialized_size(const CoocCounts *c, uint32_t lo, uint32_t hi)
{
	CoocCounts	view;
	size_t		size;

	/* the same arithmetic as cooc_counts_serialized_size, without a view */
	view.nitems = c->nitems;
	view.npairs = c->row[hi] - c->row[lo];
	size = cooc_counts_serialized_size(&view);
	return size;
}

void
cooc_rows_serialize(const CoocCounts *c, uint32_t lo, uint32_t hi, char *buf)
{
	CoocCounts	view;

	rows_view(c, lo, hi, &view);
	cooc_counts_serialize(&view, buf);
	ups_free(view.row);
}

size_t
cooc_chunk_bounds(const CoocCounts *c, size_t max_pairs, uint32_t **bounds_out)
{
	uint32_t   *bounds;
	size_t		n = 0;
	uint32_t	a;

	if (max_pairs < 1)
		max_pairs = 1;
	/* at most one chunk per item, and one for counts without items */
	bounds = ups_alloc(((size_t) c->nitems + 2) * sizeof(uint32_t));
	bounds[n++] = 0;
	for (a = 0; a < c->nitems; a++)
	{
		/*
		 * A row that would overflow a non-empty chunk starts the next.  Only
		 * a row with pairs does: every chunk but the first then starts with
		 * a pair, whose product bounds its range (first_product).
		 */
		if (c->row[a + 1] > c->row[a] &&
			c->row[a + 1] - c->row[bounds[n - 1]] > max_pairs &&
			c->row[a] > c->row[bounds[n - 1]])
			bounds[n++] = a;
	}
	bounds[n] = c->nitems;
	*bounds_out = bounds;
	return n;
}

const char *
cooc_counts_merge_rows(CoocCounts *result, const CoocCounts *chunk,
					   const CoocCounts *added, const int64_t *lo_id,
					   const int64_t *hi_id)
{
	uint32_t	lo = lo_id ? cooc_item_lower_bound(added, *lo_id) : 0;
	uint32_t	hi = hi_id ? cooc_item_lower_bound(added, *hi_id) : added->nitems;
	CoocCounts	view;
	const char *error;

	if (hi < lo)
		hi = lo;
	rows_view(added, lo, hi, &view);
	error = cooc_counts_merge(result, chunk, &view);
	ups_free(view.row);
	return error;
}
