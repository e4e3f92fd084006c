/*
 * gapfill.c
 *		Bounded search for the combinations that close a threshold gap with
 *		the best balance of relevance and overshoot (see gapfill.h).
 *
 * Exactness argument.  Every combination belongs to exactly one group:
 * (number of items, which members are relevant).  Inside a group whose
 * relevant members are fixed, the relevance sum is fixed, so the score only
 * falls as the added price grows, and among equal prices the sorted id array
 * only grows as a walked member moves right in (price, id) order.  So each
 * walk below visits a group's members best first and may stop at the first
 * one the top k rejects; and an outer loop whose lower bound on overshoot
 * only grows may stop when that bound's score cannot beat the k-th offer.
 * The union of the groups' survivors therefore holds the exact top k.
 */
#include "gapfill.h"

#include <string.h>

#include "ups_host.h"

size_t		gap_skip_table_min = 4096;

/* score factor per number of items: 0.8^(n-1) */
static const double item_factor[GAP_MAX_ITEMS + 1] = {0.0, 1.0, 0.8, 0.64};

typedef struct Search
{
	const GapCatalog *cat;
	const GapRequest *req;
	uint32_t   *next_plain;		/* next_plain[i]: first PLAIN index >= i, or n;
								 * NULL when few candidates are not PLAIN */
	uint32_t   *relevant;		/* RELEVANT indexes, ascending */
	size_t		nrelevant;
	GapOffer   *top;			/* best first */
	int			ntop;
	int64_t		steps;
	bool		budgeted;		/* counting steps against the budget */
	bool		exhausted;
} Search;

double
gap_score(int64_t gap, int64_t added, int n, double relevance_sum)
{
	if (n < 1 || n > GAP_MAX_ITEMS || added <= 0)
		return 0.0;
	return ((double) gap / (double) added) * (1.0 + relevance_sum / n) * item_factor[n];
}

static int
cmp_ids(const int64_t *a, const int64_t *b, int n)
{
	int			i;

	for (i = 0; i < n; i++)
	{
		if (a[i] != b[i])
			return a[i] < b[i] ? -1 : 1;
	}
	return 0;
}

bool
gap_offer_better(const GapOffer *a, const GapOffer *b)
{
	if (a->score != b->score)
		return a->score > b->score;
	if (a->n != b->n)
		return a->n < b->n;
	if (a->added != b->added)
		return a->added < b->added;
	return cmp_ids(a->ids, b->ids, a->n) < 0;
}

size_t
gap_lower_bound(const GapCatalog *cat, int64_t value)
{
	size_t		lo = 0,
				hi = cat->n;

	while (lo < hi)
	{
		size_t		mid = lo + (hi - lo) / 2;

		if (cat->price[mid] < value)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Builds the offer of n candidate indexes (any order). */
static void
make_offer(const Search *s, const uint32_t *items, int n, GapOffer *o)
{
	double		relsum = 0.0;
	int			i,
				j;

	o->n = n;
	for (i = 0; i < n; i++)
		o->items[i] = items[i];
	/* canonical order (ascending index) so that sums are reproducible */
	for (i = 1; i < n; i++)
		for (j = i; j > 0 && o->items[j - 1] > o->items[j]; j--)
		{
			uint32_t	t = o->items[j];

			o->items[j] = o->items[j - 1];
			o->items[j - 1] = t;
		}
	o->added = 0;
	for (i = 0; i < n; i++)
	{
		uint32_t	x = o->items[i];

		o->added += s->cat->price[x];
		o->ids[i] = s->cat->id[x];
		if (s->req->flags[x] == GAP_RELEVANT)
			relsum += s->req->relevance[x];
	}
	for (i = 1; i < n; i++)
		for (j = i; j > 0 && o->ids[j - 1] > o->ids[j]; j--)
		{
			int64_t		t = o->ids[j];

			o->ids[j] = o->ids[j - 1];
			o->ids[j - 1] = t;
		}
	o->overshoot = o->added - s->req->gap;
	o->relevance = relsum / n;
	o->score = gap_score(s->req->gap, o->added, n, relsum);
}

/* Whether two of the n items substitute each other. */
static bool
substitutes_among(const GapRequest *req, const uint32_t *items, int n)
{
	int			i,
				j;

	for (i = 0; i < n; i++)
		for (j = i + 1; j < n; j++)
		{
			uint32_t	x = items[i],
						y = items[j];

			if (req->group[x] != 0 && req->group[x] == req->group[y])
				return true;
			if (req->substitutes && req->category[x] != 0 && req->category[y] != 0 &&
				req->substitutes[(size_t) req->category[x] * (req->ncategories + 1) + req->category[y]])
				return true;
		}
	return false;
}

/* Whether the n items hold both products of a pair never offered together. */
static bool
never_together(const Search *s, const uint32_t *items, int n)
{
	for (int r = 0; r < s->req->nnever; r++)
	{
		bool		a = false,
					b = false;

		for (int i = 0; i < n; i++)
		{
			int64_t		id = s->cat->id[items[i]];

			a = a || id == s->req->never_a[r];
			b = b || id == s->req->never_b[r];
		}
		if (a && b && s->req->never_a[r] != s->req->never_b[r])
			return true;
	}
	return false;
}

/*
 * Offers a combination to the top k; false when it does not enter.  A
 * combination of substitutes, or of a pair never offered together, is no
 * offer, and true: the walks go on to the next one (its overshoot is no
 * larger than theirs).
 */
static bool
offer(Search *s, const uint32_t *items, int n)
{
	GapOffer	o;
	int			k = s->req->k;
	int			pos;

	if (n > 1 && ((s->req->group && substitutes_among(s->req, items, n)) || never_together(s, items, n)))
		return true;
	make_offer(s, items, n, &o);
	if (o.added < s->req->gap)
		return false;			/* cannot happen for the callers; be safe */
	if (s->ntop == k && !gap_offer_better(&o, &s->top[k - 1]))
		return false;
	pos = s->ntop < k ? s->ntop : k - 1;
	while (pos > 0 && gap_offer_better(&o, &s->top[pos - 1]))
	{
		s->top[pos] = s->top[pos - 1];
		pos--;
	}
	s->top[pos] = o;
	if (s->ntop < k)
		s->ntop++;
	return true;
}

/*
 * Whether a combination of n items with at least min_overshoot and this
 * relevance sum could still enter the top k.
 */
static bool
may_enter(const Search *s, int64_t min_overshoot, int n, double relsum)
{
	if (s->ntop < s->req->k)
		return true;
	if (min_overshoot < 0)
		min_overshoot = 0;
	/* ties may still win on n, added or ids: prune only when strictly worse */
	return !(gap_score(s->req->gap, s->req->gap + min_overshoot, n, relsum) <
			 s->top[s->req->k - 1].score);
}

/* Counts one step of budgeted work; true when the budget is spent. */
static inline bool
step(Search *s)
{
	if (!s->budgeted)
		return false;
	s->steps++;
	if ((s->steps & 0xFFFF) == 0)
		ups_check_interrupts();
	if (s->req->step_budget > 0 && s->steps > s->req->step_budget)
	{
		s->exhausted = true;
		return true;
	}
	return false;
}

/* The first PLAIN candidate at index >= i, or n. */
static inline size_t
plain_from(const Search *s, size_t i)
{
	size_t		n = s->cat->n;

	if (i >= n)
		return n;
	if (s->next_plain)
		return s->next_plain[i];
	while (i < n && s->req->flags[i] != GAP_PLAIN)
		i++;
	return i;
}

/*
 * fixed[0 .. nfixed) plus one PLAIN candidate whose price is >= target,
 * least overshoot first.
 */
static void
walk_one(Search *s, const uint32_t *fixed, int nfixed, double fixed_relsum,
		 int64_t target)
{
	size_t		n = s->cat->n;
	size_t		m = target <= 0 ? 0 : gap_lower_bound(s->cat, target);
	uint32_t	items[GAP_MAX_ITEMS];
	int			i;

	for (i = 0; i < nfixed; i++)
		items[i] = fixed[i];
	for (m = plain_from(s, m); m < n; m = plain_from(s, m + 1))
	{
		if (step(s))
			return;
		/* cheap test before building the offer */
		if (!may_enter(s, s->cat->price[m] - target, nfixed + 1, fixed_relsum))
			break;
		items[nfixed] = (uint32_t) m;
		if (!offer(s, items, nfixed + 1))
			break;
	}
}

/*
 * fixed[0 .. nfixed) plus two PLAIN candidates j < l, both at index >= from,
 * with price[j] + price[l] >= target.
 */
static void
search_pairs(Search *s, const uint32_t *fixed, int nfixed, double fixed_relsum,
			 size_t from, int64_t target)
{
	const int64_t *price = s->cat->price;
	size_t		n = s->cat->n;
	size_t		lb = n;			/* lower_bound(target - price[j]), only falls */
	size_t		j;
	uint32_t	items[GAP_MAX_ITEMS];
	int			i;

	for (i = 0; i < nfixed; i++)
		items[i] = fixed[i];
	for (j = plain_from(s, from); j < n; j = plain_from(s, j + 1))
	{
		size_t		second = plain_from(s, j + 1);
		size_t		l;

		if (second >= n)
			break;				/* no partner right of j, nor for later j */
		if (step(s))
			return;
		/* the cheapest pair from j on: j with the next plain candidate */
		if (!may_enter(s, price[j] + price[second] - target, nfixed + 2, fixed_relsum))
			break;
		while (lb > 0 && price[lb - 1] >= target - price[j])
			lb--;
		l = lb > j + 1 ? lb : j + 1;
		items[nfixed] = (uint32_t) j;
		for (l = plain_from(s, l); l < n; l = plain_from(s, l + 1))
		{
			if (step(s))
				return;
			if (!may_enter(s, price[j] + price[l] - target, nfixed + 2, fixed_relsum))
				break;
			items[nfixed + 1] = (uint32_t) l;
			if (!offer(s, items, nfixed + 2))
				break;
		}
	}
}

int
gap_search(const GapCatalog *cat, const GapRequest *req, GapOffer *out, bool *complete)
{
	Search		s;
	size_t		n = cat->n;
	size_t		i,
				a,
				b,
				c;
	const int64_t *price = cat->price;
	int64_t		gap = req->gap;
	uint32_t	items[GAP_MAX_ITEMS];
	size_t		nskip = 0;

	*complete = true;
	if (req->k <= 0 || gap <= 0 || n == 0)
		return 0;

	memset(&s, 0, sizeof(s));
	s.cat = cat;
	s.req = req;
	s.top = out;
	/*
	 * Walks skip what is not PLAIN.  With few such candidates (the usual
	 * case: the cart, a few exclusions, the complements) a skip loop costs
	 * less than building a table of n entries per request; with many (a
	 * large excluded category) the table keeps every skip O(1).
	 */
	for (i = 0; i < n; i++)
	{
		if (req->flags[i] == GAP_RELEVANT)
			s.nrelevant++;
		else if (req->flags[i] != GAP_PLAIN)
			nskip++;
	}
	if (s.nrelevant + nskip > gap_skip_table_min)
	{
		s.next_plain = ups_alloc((n + 1) * sizeof(uint32_t));
		s.next_plain[n] = (uint32_t) n;
		for (i = n; i-- > 0;)
			s.next_plain[i] = req->flags[i] == GAP_PLAIN ? (uint32_t) i : s.next_plain[i + 1];
	}
	s.relevant = ups_alloc((s.nrelevant + 1) * sizeof(uint32_t));
	for (i = 0, a = 0; i < n && a < s.nrelevant; i++)
		if (req->flags[i] == GAP_RELEVANT)
			s.relevant[a++] = (uint32_t) i;

	/* one item: the least-overshoot plain ones, every relevant one */
	walk_one(&s, NULL, 0, 0.0, gap);
	for (a = 0; a < s.nrelevant; a++)
	{
		items[0] = s.relevant[a];
		if (price[items[0]] >= gap)
			offer(&s, items, 1);
	}

	if (req->max_items >= 2)
	{
		for (a = 0; a < s.nrelevant; a++)
		{
			uint32_t	x = s.relevant[a];

			ups_check_interrupts();
			/* relevant + relevant */
			for (b = a + 1; b < s.nrelevant; b++)
			{
				items[0] = x;
				items[1] = s.relevant[b];
				if (price[x] + price[items[1]] >= gap)
					offer(&s, items, 2);
			}
			/* relevant + plain */
			walk_one(&s, &x, 1, req->relevance[x], gap - price[x]);
		}
		/* plain + plain */
		search_pairs(&s, NULL, 0, 0.0, 0, gap);
	}

	if (req->max_items >= 3)
	{
		s.budgeted = true;
		for (a = 0; a < s.nrelevant && !s.exhausted; a++)
		{
			uint32_t	x = s.relevant[a];

			for (b = a + 1; b < s.nrelevant && !s.exhausted; b++)
			{
				uint32_t	y = s.relevant[b];
				uint32_t	fixed[2] = {x, y};

				/* three relevant */
				for (c = b + 1; c < s.nrelevant; c++)
				{
					if (step(&s))
						break;
					items[0] = x;
					items[1] = y;
					items[2] = s.relevant[c];
					if (price[x] + price[y] + price[items[2]] >= gap)
						offer(&s, items, 3);
				}
				/* two relevant + plain */
				walk_one(&s, fixed, 2, req->relevance[x] + req->relevance[y],
						 gap - price[x] - price[y]);
			}
			/* relevant + two plain */
			if (!s.exhausted)
				search_pairs(&s, &x, 1, req->relevance[x], 0, gap - price[x]);
		}
		/* three plain, the smallest index i first */
		for (i = plain_from(&s, 0); i < n && !s.exhausted; i = plain_from(&s, i + 1))
		{
			size_t		j = plain_from(&s, i + 1);
			size_t		l = j < n ? plain_from(&s, j + 1) : n;
			uint32_t	x = (uint32_t) i;

			if (l >= n)
				break;
			if (!may_enter(&s, price[i] + price[j] + price[l] - gap, 3, 0.0))
				break;
			search_pairs(&s, &x, 1, 0.0, i + 1, gap - price[i]);
		}
		if (s.exhausted)
			*complete = false;
	}

	ups_free(s.next_plain);
	ups_free(s.relevant);
	return s.ntop;
}
