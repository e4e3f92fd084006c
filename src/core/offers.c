/*
 * offers.c
 *		The merge of a funnel stage (see offers.h for the rules).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "offers.h"
#include "ups_host.h"

const char *const offer_type_names[OFFER_NTYPES] = {
	"bundle", "complement", "downsell", "gap_filler", "pinned",
	"quantity_tier", "restock", "subscription", "upgrade"
};

const double offer_default_weights[OFFER_NTYPES] = {
	[OFFER_BUNDLE] = 0.9,
	[OFFER_COMPLEMENT] = 1.0,
	[OFFER_DOWNSELL] = 0.6,
	[OFFER_GAP_FILLER] = 0.9,
	[OFFER_PINNED] = 1.0,
	[OFFER_QUANTITY_TIER] = 0.7,
	[OFFER_RESTOCK] = 0.9,
	[OFFER_SUBSCRIPTION] = 0.8,
	[OFFER_UPGRADE] = 0.8,
};

int
offer_type_of(const char *name)
{
	int			t;

	for (t = 0; t < OFFER_NTYPES; t++)
		if (strcmp(name, offer_type_names[t]) == 0)
			return t;
	return -1;
}

bool
offers_contains(const int64_t *a, size_t n, int64_t value)
{
	size_t		lo = 0,
				hi = n;

	while (lo < hi)
	{
		size_t		mid = lo + (hi - lo) / 2;

		if (a[mid] < value)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && a[lo] == value;
}

typedef struct Ranked
{
	const OfferCandidate *c;
	int			index;
	int			tier;			/* 0 pinned, 1 tactics */
	bool		has_sort;		/* false sorts last (a type whose best is 0) */
	double		sort;			/* ascending */
	double		relative;		/* tactics: score / its type's best, so that
								 * the offers of a type of weight 0 (sort 0,
								 * after every other) still come best first */
} Ranked;

static int
cmp_ids(const OfferCandidate *a, const OfferCandidate *b)
{
	int			i;

	for (i = 0; i < a->nids && i < b->nids; i++)
		if (a->ids[i] != b->ids[i])
			return a->ids[i] < b->ids[i] ? -1 : 1;
	return (a->nids > b->nids) - (a->nids < b->nids);
}

static int
cmp_ranked(const void *pa, const void *pb)
{
	const Ranked *a = pa;
	const Ranked *b = pb;
	int64_t		ta,
				tb;
	int			r;

	if (a->tier != b->tier)
		return a->tier - b->tier;
	if (a->has_sort != b->has_sort)
		return a->has_sort ? -1 : 1;
	if (a->has_sort && a->sort != b->sort)
		return a->sort < b->sort ? -1 : 1;
	/* (weight 0: the same sort, 0, for every score) */
	if (a->has_sort && a->tier == 1 && a->sort == 0 && a->relative != b->relative)
		return a->relative > b->relative ? -1 : 1;
	ta = a->tier == 0 ? a->c->offer_id : a->c->ids[0];
	tb = b->tier == 0 ? b->c->offer_id : b->c->ids[0];
	if (ta != tb)
		return ta < tb ? -1 : 1;
	r = strcmp(offer_type_names[a->c->type], offer_type_names[b->c->type]);
	if (r != 0)
		return r;
	r = cmp_ids(a->c, b->c);
	if (r != 0)
		return r;
	return a->index - b->index;
}

/*
 * Whether an offer of this type may name a context product: more of a cart
 * line (a volume tier, a quantity step that closes a threshold gap), a
 * subscription to what was bought, a bundle with the page's product.
 */
static bool
may_name_context(OfferType type)
{
	return type == OFFER_QUANTITY_TIER || type == OFFER_GAP_FILLER ||
		type == OFFER_SUBSCRIPTION || type == OFFER_BUNDLE;
}

int
offers_merge(const OfferCandidate *c, int n, const MergeRules *rules, int *out)
{
	Ranked	   *r;
	int			nr = 0;
	double		best[OFFER_NTYPES];
	int64_t    *shown;
	size_t		nshown = 0,
				shown_cap = 16;
	int			nout = 0;
	int			i,
				t;

	if (n <= 0 || rules->max_offers <= 0)
		return 0;
	r = ups_alloc(sizeof(Ranked) * (size_t) n);
	for (t = 0; t < OFFER_NTYPES; t++)
		best[t] = -INFINITY;

	/* rules 1-3 */
	for (i = 0; i < n; i++)
	{
		const OfferCandidate *x = &c[i];
		int			j;

		if (x->nids < 1 || !x->showable || !(rules->allowed & (1u << x->type)))
			continue;
		if (x->type != OFFER_PINNED && !(x->score >= 0))
			continue;			/* no score (also NaN): no evidence */
		if (!may_name_context(x->type) || x->type == OFFER_PINNED)
		{
			for (j = 0; j < x->nids; j++)
				if (offers_contains(rules->context, rules->ncontext, x->ids[j]))
					break;
			if (j < x->nids)
				continue;
		}
		r[nr].c = x;
		r[nr].index = i;
		r[nr].tier = x->type == OFFER_PINNED ? 0 : 1;
		if (r[nr].tier == 1 && x->score > best[x->type])
			best[x->type] = x->score;
		nr++;
	}

	/* rule 4 */
	for (i = 0; i < nr; i++)
	{
		const OfferCandidate *x = r[i].c;

		if (r[i].tier == 0)
		{
			r[i].has_sort = true;
			r[i].sort = -x->priority;
		}
		else
		{
			r[i].has_sort = best[x->type] > 0;
			r[i].relative = r[i].has_sort ? x->score / best[x->type] : 0;
			r[i].sort = -(rules->weight[x->type] * r[i].relative);
		}
	}
	qsort(r, nr, sizeof(Ranked), cmp_ranked);

	/* rules 5 and 6 */
	shown = ups_alloc(sizeof(int64_t) * shown_cap);
	for (i = 0; i < nr && nout < rules->max_offers; i++)
	{
		const OfferCandidate *x = r[i].c;
		bool		clash = false;
		int			j;
		size_t		s;

		for (j = 0; j < x->nids && !clash; j++)
		{
			if (x->type == OFFER_BUNDLE &&
				offers_contains(rules->context, rules->ncontext, x->ids[j]))
				continue;
			for (s = 0; s < nshown; s++)
				if (shown[s] == x->ids[j])
				{
					clash = true;
					break;
				}
		}
		if (clash)
			continue;
		for (j = 0; j < x->nids; j++)
		{
			if (x->type == OFFER_BUNDLE &&
				offers_contains(rules->context, rules->ncontext, x->ids[j]))
				continue;
			if (nshown == shown_cap)
			{
				shown_cap *= 2;
				shown = ups_realloc(shown, sizeof(int64_t) * shown_cap);
			}
			shown[nshown++] = x->ids[j];
		}
		out[nout++] = r[i].index;
	}
	ups_free(shown);
	ups_free(r);
	return nout;
}
