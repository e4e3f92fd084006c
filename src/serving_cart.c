/*
 * serving_cart.c
 *		The cart stage, cart_offers: the cart's lines from cart_model, their
 *		complements combined, bestsellers, gap fillers to the next threshold,
 *		upgrades and volume tiers, merged under the cart's rules.
 */
#include "postgres.h"

#include <math.h>

#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/lsyscache.h"

#include "serving.h"
#include "upsell.h"

#define CART_COMPLEMENTS	12	/* complements of the cart proposed to the merge */
#define CART_GAP_FILLERS	12	/* gap fillers proposed to the merge: the best few
								 * may all hold a product the cart's complements
								 * offer already (one offer per product), and
								 * the merge then needs the next ones */
#define CART_GAP_ITEMS		2
#define CART_MAX_STEP		3	/* units of a line a quantity step may add */
#define CART_RELEVANT		24	/* complements ranked: the gap fillers' relevance,
								 * and room for exclusions among the first 12 */

PG_FUNCTION_INFO_V1(upsell_cart_offers);

/*
 * A cart line's volume tier, where the merchant set tiers for its product
 * or category: the unit price the line pays at its quantity, and the next
 * tier as an offer (has_next).
 */
typedef struct LineTier
{
	Numeric		unit_price;		/* NULL: no tier applies, the list price */
	bool		has_next;
	double		score;
	Datum		discount;
	char	   *reason;
} LineTier;

static CartLine *
find_line(CartLine *lines, int n, int64 id)
{
	int			i;

	for (i = 0; i < n; i++)
		if (lines[i].product_id == id)
			return &lines[i];
	return NULL;
}

typedef struct Evidence
{
	int64		id;
	double		score;
} Evidence;

/* Whether x ranks before y: score desc, then product id. */
static inline bool
evidence_before(const Evidence *x, const Evidence *y)
{
	return x->score > y->score || (x->score == y->score && x->id < y->id);
}

/* Puts the k best of e[0 .. n) first (in no order): quickselect. */
static void
select_best(Evidence *e, int n, int k)
{
	int			lo = 0,
				hi = n - 1;

	while (lo < hi && k > lo && k <= hi)
	{
		Evidence	pivot = e[lo + (hi - lo) / 2];
		int			i = lo,
					j = hi;

		while (i <= j)
		{
			while (evidence_before(&e[i], &pivot))
				i++;
			while (evidence_before(&pivot, &e[j]))
				j--;
			if (i <= j)
			{
				Evidence	t = e[i];

				e[i++] = e[j];
				e[j--] = t;
			}
		}
		/* e[lo .. j] rank before e[i .. hi]; the k-th boundary is in one side */
		if (k <= j + 1)
			hi = j;
		else if (k >= i)
			lo = i;
		else
			break;
	}
}

static int
cmp_evidence(const void *a, const void *b)
{
	return evidence_before(a, b) ? -1 : evidence_before(b, a) ? 1 : 0;
}

/*
 * The complements of the cart: each line's stored complements (in stock as
 * of the refresh, with ln(1 - pair score)) combined as a noisy-OR, the
 * chance that at least one line leads to the product; cart items are not
 * their own.  Returns the best `want` of them, best first, in *ranked
 * (fewer when the evidence runs out), with their number in *n.  The sums
 * of logs are kept by id number (serving_id_number), and only the best are
 * sorted: a request costs the length of the lines' lists.
 */
static Evidence *
cart_complements(CartLine *lines, int nlines, const int64 *items, int nitems,
				 const Substitutes *subst, int want, int *n)
{
	int			total = 0,
				m = 0,
				i,
				j;
	IdNumbers	ids;
	double	   *sums;
	bool	   *blocked;
	Evidence   *e;

	for (i = 0; i < nlines; i++)
		total += lines[i].ncomplements;
	serving_id_numbers_init(&ids, total);
	sums = palloc(Max(total, 1) * sizeof(double));
	blocked = palloc(Max(total, 1) * sizeof(bool));
	for (i = 0; i < nlines; i++)
		for (j = 0; j < lines[i].ncomplements; j++)
		{
			int64		id = lines[i].complements[j];
			bool		added;
			int			k = serving_id_number(&ids, id, &added);

			if (added)
			{
				sums[k] = 0;
				/* a substitute of another line is not a complement of the cart */
				blocked[k] = serving_is_substitute(subst, id, lines[i].complement_categories[j]);
			}
			sums[k] += lines[i].complement_log_miss[j];
		}

	/* ranked by -sum, which orders as the score 1 - exp(sum) does */
	e = palloc(Max(total, 1) * sizeof(Evidence));
	for (i = 0; i < ids.n; i++)
		if (!blocked[i] && !offers_contains(items, nitems, ids.ids[i]))
		{
			e[m].id = ids.ids[i];
			e[m].score = -sums[i];
			m++;
		}
	want = Min(want, m);
	select_best(e, m, want);
	qsort(e, want, sizeof(Evidence), cmp_evidence);
	for (i = 0; i < want; i++)
		e[i].score = 1 - exp(-e[i].score);
	*n = want;
	return e;
}

/* Cents as money text: 1234 -> 12.34. */
static char *
money_out(int64 cents)
{
	return DatumGetCString(DirectFunctionCall1(numeric_out,
											   NumericGetDatum(int64_div_fast_to_numeric(cents, 2))));
}

/* Cents of a numeric amount, rounded up. */
static int64
cents_up(Datum amount)
{
	return DatumGetInt64(DirectFunctionCall1(numeric_int8,
											 DirectFunctionCall1(numeric_ceil,
																 DirectFunctionCall2(numeric_mul, amount,
																					 NumericGetDatum(int64_to_numeric(100))))));
}

/*
 * How naturally a filler adds on: 1 up to half the cart's value, then
 * falling as (half the cart) / added, so that a second big-ticket item does
 * not outrank a small add-on that the shopper takes in passing.
 */
static double
addon_factor(int64 added, int64 cart_cents)
{
	double		half = (double) cart_cents / 2;

	return added <= half ? 1.0 : half / (double) added;
}

/* A numeric amount as money text, to the cent: 4.004 -> 4.00. */
static char *
numeric_money_out(Datum amount)
{
	return DatumGetCString(DirectFunctionCall1(numeric_out,
											   DirectFunctionCall2(numeric_round, amount, Int32GetDatum(2))));
}

/*
 * The discount of the list price that makes a unit cost unit_price, as the
 * tier offers' (to 12 places, trailing zeros cut): offers_json's
 * discounted_price is then the tier's price to the cent.
 */
static Datum
discount_to(Numeric unit_price, Numeric list_price)
{
	Datum		share = DirectFunctionCall2(numeric_div, NumericGetDatum(unit_price), NumericGetDatum(list_price));

	return DirectFunctionCall1(numeric_trim_scale,
							   DirectFunctionCall2(numeric_round,
												   DirectFunctionCall2(numeric_sub,
																	   NumericGetDatum(int64_to_numeric(1)), share),
												   Int32GetDatum(12)));
}

/*
 * The unit price of each of n lines of products at the given quantities,
 * into prices[0 .. n): their tier's, NULL where no tier applies.
 */
static void
read_tier_prices(const TenantRules *r, int64 tenant_id, const int64 *ids, const int32 *units, int n,
				 Numeric *prices)
{
	TierQuote  *quotes = serving_quote_tiers(r, tenant_id, ids, units, n);

	for (int i = 0; i < n; i++)
		prices[i] = quotes[i].known && quotes[i].tiered ? quotes[i].unit_price : NULL;
}

/*
 * More of a cart line: the fewest units (up to CART_MAX_STEP) that reach
 * the threshold, for a line the shopper buys several of already or whose
 * category is bought several at a time (not a substitute category).  The
 * shopper chose it, so its relevance is that of the best complement;
 * scored as the search scores a single item.  A step adds what the line
 * will pay less what it pays now: for a line with volume tiers, all its
 * units at the tier of the new quantity, and the step's discount is that
 * tier's, as a tier offer's, so the widget shows what a unit will cost
 * (priced at the list price, a step said "4.50 over" where the tier made
 * it 4.00, or reached a threshold the tier's lower price did not).  The
 * added amount is compared with the gap exactly (gap_exact, numeric; gap
 * is it in cents rounded up, for the score), so that "add 2 more to reach
 * 26" holds of a price below the cent too.  Returns whether a step adds
 * on naturally.
 */
static bool
propose_quantity_steps(Proposal *p, const TenantRules *r, int64 tenant_id, Datum gap_exact,
					   int64 gap, int64 cart_cents, const char *target,
					   const int64 *items, int nitems, const CartLine *lines, int nlines,
					   const int64 *line_ids, const int32 *qty, const LineTier *tiers, int ncart)
{
	const CartLine **eligible = palloc(Max(ncart, 1) * sizeof(CartLine *));
	Datum	   *paid_now = palloc(Max(ncart, 1) * sizeof(Datum));
	int64	   *tier_ids = palloc(Max(ncart, 1) * CART_MAX_STEP * sizeof(int64));
	int32	   *tier_units = palloc(Max(ncart, 1) * CART_MAX_STEP * sizeof(int32));
	Numeric    *tier_prices;
	int		   *first_tier_step = palloc(Max(ncart, 1) * sizeof(int));
	int			ntier = 0;
	bool		natural = false;

	for (int i = 0; i < ncart; i++)
	{
		const CartLine *l = find_line((CartLine *) lines, nlines, line_ids[i]);
		int64		q = qty ? qty[i] : 1;
		bool		multi;
		Datum		most;

		eligible[i] = NULL;
		if (l == NULL || l->price == NULL || !l->in_stock)
			continue;
		multi = q > 1;
		if (!multi && l->category)
		{
			multi = true;
			for (int c = 0; c < l->nsubstitute_categories; c++)
				if (strcmp(l->substitute_categories[c], l->category) == 0)
					multi = false;
		}
		if (!multi || serving_excluded(r, l->product_id, items, nitems))
			continue;
		if (q > PG_INT32_MAX - CART_MAX_STEP)
			continue;			/* no room for more units */
		paid_now[i] = DirectFunctionCall2(numeric_mul,
										  NumericGetDatum(tiers[i].unit_price ? tiers[i].unit_price : l->price),
										  NumericGetDatum(int64_to_numeric(q)));

		/*
		 * none when even the largest step at the list price (which no tier
		 * exceeds) leaves the gap open: most lines of a cart far from the
		 * threshold, whose tiers then need not be read
		 */
		most = DirectFunctionCall2(numeric_sub,
								   DirectFunctionCall2(numeric_mul, NumericGetDatum(l->price),
													   NumericGetDatum(int64_to_numeric(q + CART_MAX_STEP))),
								   paid_now[i]);
		if (DatumGetInt32(DirectFunctionCall2(numeric_cmp, most, gap_exact)) < 0)
			continue;
		first_tier_step[i] = -1;
		if (tiers[i].unit_price != NULL)
		{
			/* a line with tiers: its unit price at each step's quantity, read below */
			first_tier_step[i] = ntier;
			for (int u = 1; u <= CART_MAX_STEP; u++)
			{
				tier_ids[ntier] = l->product_id;
				tier_units[ntier++] = (int32) (q + u);
			}
		}
		eligible[i] = l;
	}
	tier_prices = palloc(Max(ntier, 1) * sizeof(Numeric));
	if (ntier > 0)
		read_tier_prices(r, tenant_id, tier_ids, tier_units, ntier, tier_prices);

	for (int i = 0; i < ncart; i++)
	{
		const CartLine *l = eligible[i];
		int64		q = qty ? qty[i] : 1;

		if (l == NULL)
			continue;
		for (int u = 1; u <= CART_MAX_STEP; u++)
		{
			Numeric		unit = first_tier_step[i] >= 0 ? tier_prices[first_tier_step[i] + u - 1] : l->price;
			Datum		added;
			int64		added_cents;
			int64	   *id;

			if (unit == NULL)
				break;			/* the product's tiers changed under the request */
			added = DirectFunctionCall2(numeric_sub,
										DirectFunctionCall2(numeric_mul, NumericGetDatum(unit),
															NumericGetDatum(int64_to_numeric(q + u))),
										paid_now[i]);
			if (DatumGetInt32(DirectFunctionCall2(numeric_cmp, added, gap_exact)) < 0)
				continue;
			added_cents = cents_up(added);
			id = palloc(sizeof(int64));
			*id = l->product_id;
			natural |= added_cents <= cart_cents / 2 || u == 1;
			serving_propose(p, OFFER_GAP_FILLER, id, 1,
					(double) gap / (double) added_cents * 2.0 * pow(0.8, (double) (u - 1)),
					first_tier_step[i] >= 0 ? discount_to(unit, l->price) : serving_zero_discount(),
					psprintf("add %d more to reach %s (%s over)", u, target,
							 numeric_money_out(DirectFunctionCall2(numeric_sub, added, gap_exact))));
			break;
		}
	}
	return natural;
}

/* Cents as a numeric amount: 1234 -> 12.34. */
static Datum
cents_numeric(int64 cents)
{
	return NumericGetDatum(int64_div_fast_to_numeric(cents, 2));
}

/*
 * The next size of a cart line: of its variant group (sizes or tiers of one
 * product, cart_model's substitute_ids), the product in stock at the next
 * price step above the line's (the cheapest dearer one, ties by id; none
 * when the cart has it already), when taking it instead of one unit of the
 * line closes the gap -- "a kilo more
 * coffee for $3": the shopper keeps what they chose, one size up.  The
 * search never offers it (it substitutes the line); scored as the search
 * scores a single item of relevance 1 that adds the price difference, as
 * the quantity step is.  The swap adds what the cart will pay less what it
 * pays now, as a quantity step does: the line's remaining units at the tier
 * of their new quantity and the next size at its tier from 1 unit, where
 * tiers apply (_tier_offers, one query for the cart's lines; the list
 * prices' difference said "adds 6.00 to reach 31.50" where the line's
 * units left its tier of 3 and the swap added 7.50, or reached a threshold
 * the next size's sale price left open), compared with the gap exactly.
 * Returns whether one adds on naturally (at most half the cart's value).
 */
static bool
propose_next_sizes(Proposal *p, const TenantRules *r, int64 tenant_id, Datum gap_exact,
				   int64 gap, int64 cart_cents, const char *target,
				   const int64 *items, int nitems, const CartLine *lines, int nlines,
				   const int64 *line_ids, const int32 *qty, const LineTier *tiers, int ncart)
{
	const char *nsp = get_namespace_name(serving.nsp);
	const CartLine **line = palloc(Max(ncart, 1) * sizeof(CartLine *));
	int64	   *next = palloc(Max(ncart, 1) * sizeof(int64));
	int64	   *next_cents = palloc(Max(ncart, 1) * sizeof(int64));
	/* with tiers: per line the remaining units' price, then the next size's */
	int64	   *tier_ids = palloc(Max(ncart, 1) * 2 * sizeof(int64));
	int32	   *tier_units = palloc(Max(ncart, 1) * 2 * sizeof(int32));
	Numeric    *tier_prices = NULL;
	int			ntiered = 0;	/* lines whose swap a tier prices */
	bool		natural = false;

	for (int i = 0; i < ncart; i++)
	{
		const CartLine *l = find_line((CartLine *) lines, nlines, line_ids[i]);
		int64		price,
					best = 0,
					best_price = -1;

		line[i] = NULL;
		if (l == NULL || l->price == NULL || l->nsubstitute_ids == 0)
			continue;
		price = cents_up(NumericGetDatum(l->price));
		for (int j = 0; j < l->nsubstitute_ids; j++)
		{
			int64		s = l->substitute_ids[j];
			int64		sp;

			/* -1: out of stock or without a price as of the refresh */
			sp = upsell_gap_price(nsp, tenant_id, r->candidates_built_at, s);
			if (sp <= price)
				continue;
			if (best_price < 0 || sp < best_price || (sp == best_price && s < best))
			{
				best = s;
				best_price = sp;
			}
		}
		/* none, or the shopper has the next size already */
		if (best_price < 0 || offers_contains(items, nitems, best) ||
			serving_excluded(r, best, items, nitems))
			continue;
		line[i] = l;
		if (tiers[i].unit_price != NULL || serving_sorted_contains(r->tiered, r->ntiered, best))
			ntiered++;
		next[i] = best;
		next_cents[i] = best_price;
		tier_ids[2 * i] = l->product_id;
		tier_units[2 * i] = qty && qty[i] > 1 ? qty[i] - 1 : 1;
		tier_ids[2 * i + 1] = best;
		tier_units[2 * i + 1] = 1;
	}
	if (ntiered > 0)
	{
		/* (lines without a next size ask for their own product: no harm) */
		for (int i = 0; i < ncart; i++)
			if (line[i] == NULL)
			{
				tier_ids[2 * i] = tier_ids[2 * i + 1] = line_ids[i];
				tier_units[2 * i] = tier_units[2 * i + 1] = 1;
			}
		tier_prices = palloc(ncart * 2 * sizeof(Numeric));
		read_tier_prices(r, tenant_id, tier_ids, tier_units, ncart * 2, tier_prices);
	}

	for (int i = 0; i < ncart; i++)
	{
		const CartLine *l = line[i];
		int64		q = qty ? qty[i] : 1;
		Datum		paid_now,
					paid_after,
					added;
		int64		added_cents;
		int64	   *id;

		if (l == NULL)
			continue;
		paid_now = DirectFunctionCall2(numeric_mul,
									   NumericGetDatum(tiers[i].unit_price ? tiers[i].unit_price : l->price),
									   NumericGetDatum(int64_to_numeric(q)));
		/* the next size: its tier's price from 1 unit, else its list price */
		paid_after = tier_prices && tier_prices[2 * i + 1] ?
			NumericGetDatum(tier_prices[2 * i + 1]) : cents_numeric(next_cents[i]);
		if (q > 1)
			paid_after = DirectFunctionCall2(numeric_add, paid_after,
											 DirectFunctionCall2(numeric_mul,
																 NumericGetDatum(tier_prices && tier_prices[2 * i] ?
																				 tier_prices[2 * i] : l->price),
																 NumericGetDatum(int64_to_numeric(q - 1))));
		added = DirectFunctionCall2(numeric_sub, paid_after, paid_now);
		if (DatumGetInt32(DirectFunctionCall2(numeric_cmp, added, gap_exact)) < 0)
			continue;
		added_cents = cents_up(added);
		natural |= added_cents <= cart_cents / 2;
		id = palloc(sizeof(int64));
		*id = next[i];
		serving_propose(p, OFFER_GAP_FILLER, id, 1, (double) gap / (double) added_cents * 2.0,
				serving_zero_discount(),
				psprintf("the next size instead of product " INT64_FORMAT ": adds %s to reach %s (%s over)",
						 l->product_id, numeric_money_out(added), target,
						 numeric_money_out(DirectFunctionCall2(numeric_sub, added, gap_exact))));
	}
	return natural;
}

/*
 * What each of the search's n offers adds, into added[0 .. n): the sum of
 * its products' prices, a product with volume tiers at its tier from 1 unit
 * (a category's sale: 25% off from 1).  The search holds list prices (in
 * cents rounded down, its candidates are built at the refresh, and tiers
 * change at any time): an offer of a product on sale said "adds 20.00 to
 * reach 38" where it added 15.00.  Tiers are read (_tier_offers, one query)
 * only for the offers' products that have some (r->tiered).
 */
static void
price_gap_offers(const TenantRules *r, int64 tenant_id, const GapOffer *out, int n, Datum *added)
{
	const char *nsp;
	int64	   *ids;
	int32	   *units;
	Numeric    *prices;
	int			nids = 0;

	for (int i = 0; i < n; i++)
		added[i] = cents_numeric(out[i].added);
	if (r->ntiered == 0 || n <= 0)
		return;
	ids = palloc(n * GAP_MAX_ITEMS * sizeof(int64));
	units = palloc(n * GAP_MAX_ITEMS * sizeof(int32));
	for (int i = 0; i < n; i++)
		for (int j = 0; j < out[i].n; j++)
			if (serving_sorted_contains(r->tiered, r->ntiered, out[i].ids[j]))
			{
				ids[nids] = out[i].ids[j];
				units[nids++] = 1;
			}
	if (nids == 0)
		return;
	prices = palloc(nids * sizeof(Numeric));
	read_tier_prices(r, tenant_id, ids, units, nids, prices);
	nsp = get_namespace_name(serving.nsp);
	for (int i = 0; i < n; i++)
		for (int j = 0; j < out[i].n; j++)
			for (int k = 0; k < nids; k++)
				if (ids[k] == out[i].ids[j] && prices[k] != NULL)
				{
					int64		listed = upsell_gap_price(nsp, tenant_id, r->candidates_built_at, ids[k]);

					added[i] = DirectFunctionCall2(numeric_add,
												   DirectFunctionCall2(numeric_sub, added[i], cents_numeric(listed)),
												   NumericGetDatum(prices[k]));
					break;
				}
}

/*
 * The gap fillers of the cart: what closes the gap from the cart's total to
 * the next active threshold, as upsell.gap_fillers(cart, quantities, 12, 2)
 * finds them, but with relevance from the cart's CART_RELEVANT best
 * complements only (ev, best first): each relevant candidate opens groups
 * of the exact search, and the long tail of weak complements changes a
 * score by little and costs the most.
 */
static int64
propose_gap_fillers(Proposal *p, const TenantRules *r, int64 tenant_id, Numeric total,
					const char *cart_currency,
					const int64 *items, int nitems, const CartLine *lines, int nlines,
					const int64 *line_ids, const int32 *qty, const LineTier *tiers, int ncart,
					const Substitutes *subst, const Evidence *ev, int nev)
{
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	const Threshold *target = NULL;
	char	   *currency = NULL;
	bool		several = false;
	StringInfoData currencies;
	int64		gap;
	int64	   *skip;
	int64	   *skip_sorted;
	int			nskip_sorted;
	int64	   *rel_ids;
	double	   *rel;
	int			nskip = 0,
				i,
				n;
	GapOffer	out[CART_GAP_FILLERS];
	Datum	   *added;
	Datum		ndiff;
	int64		cart_cents;
	bool		natural = false;
	const char *reward;
	double		best;

	if (r->nthresholds == 0)
		return 0;
	/*
	 * The cart's currency: given, or that of every active threshold in one.
	 * With several and none given, a threshold in a currency cannot be
	 * compared with the cart: only those without one apply, and the reasons
	 * say so (a merchant's threshold in a second currency must not fail the
	 * cart pages of an app that never passed one).
	 */
	for (i = 0; i < r->nthresholds && cart_currency == NULL; i++)
	{
		const Threshold *t = &r->thresholds[i];

		if (t->currency == NULL ||
			!serving_active_at(t->has_from, t->active_from, t->has_to, t->active_to, now))
			continue;
		if (currency && strcmp(currency, t->currency) != 0)
			several = true;
		currency = t->currency;
	}
	if (several)
	{
		/* as upsell._active_thresholds says it: the currencies, sorted */
		char	  **names = palloc(r->nthresholds * sizeof(char *));
		int			nn = 0,
					j;

		for (i = 0; i < r->nthresholds; i++)
		{
			const Threshold *t = &r->thresholds[i];

			if (t->currency && serving_active_at(t->has_from, t->active_from, t->has_to, t->active_to, now))
				names[nn++] = t->currency;
		}
		qsort(names, nn, sizeof(char *), pg_qsort_strcmp);
		initStringInfo(&currencies);
		for (i = 0; i < nn; i++)
		{
			for (j = 0; j < i; j++)
				if (strcmp(names[j], names[i]) == 0)
					break;
			if (j == i)
				appendStringInfo(&currencies, "%s%s", currencies.len ? ", " : "", names[i]);
		}
		p->note = psprintf("the active thresholds are in several currencies (%s) and the cart's was not given: only those without a currency apply",
						   currencies.data);
	}
	/* thresholds are sorted by amount: the first unreached active one */
	for (i = 0; i < r->nthresholds && target == NULL; i++)
	{
		const Threshold *t = &r->thresholds[i];

		if (!serving_active_at(t->has_from, t->active_from, t->has_to, t->active_to, now))
			continue;
		if (t->currency && (several || (cart_currency && strcmp(cart_currency, t->currency) != 0)))
			continue;
		if (!serving_numeric_at_most(t->amount, total))
			target = t;
	}
	if (target == NULL || !r->has_candidates)
		return 0;

	/* cents, rounded up: the offer must reach the threshold */
	ndiff = DirectFunctionCall2(numeric_sub, NumericGetDatum(target->amount), NumericGetDatum(total));
	gap = cents_up(ndiff);
	if (gap <= 0)
		return 0;
	cart_cents = cents_up(NumericGetDatum(total));
	reward = target->reward ? target->reward :
		psprintf("%s", DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(target->amount))));

	/* never the cart, its substitutes, nor what the merchant excluded */
	skip = palloc((nitems + subst->nids + r->nexcluded + r->npairs + 1) * sizeof(int64));
	for (i = 0; i < nitems; i++)
		skip[nskip++] = items[i];
	for (i = 0; i < subst->nids; i++)
		skip[nskip++] = subst->ids[i];
	for (i = 0; i < r->nexcluded; i++)
		skip[nskip++] = r->excluded[i];
	for (i = 0; i < r->npairs; i++)
		if (offers_contains(items, nitems, r->pair_with[i]))
			skip[nskip++] = r->pair_product[i];
	skip_sorted = palloc(Max(nskip, 1) * sizeof(int64));
	memcpy(skip_sorted, skip, nskip * sizeof(int64));
	nskip_sorted = serving_sort_unique(skip_sorted, nskip);
	/*
	 * relevance: relative to the cart's best complement that may be offered
	 * (ev is best first); an excluded or substitute best one would make the
	 * rest look weak
	 */
	rel_ids = palloc(Max(nev, 1) * sizeof(int64));
	rel = palloc(Max(nev, 1) * sizeof(double));
	best = 0;
	for (i = 0; i < nev && best == 0; i++)
		if (!serving_sorted_contains(skip_sorted, nskip_sorted, ev[i].id))
			best = ev[i].score;
	for (i = 0; i < nev; i++)
	{
		rel_ids[i] = ev[i].id;
		rel[i] = best > 0 ? Min(ev[i].score / best, 1.0) : 0;
	}
	n = upsell_gap_offers(get_namespace_name(serving.nsp), tenant_id, r->candidates_built_at, gap,
						  skip, nskip, subst->categories, subst->ncategories,
						  rel_ids, rel, nev, r->pair_product, r->pair_with, r->npairs,
						  CART_GAP_FILLERS, CART_GAP_ITEMS, out);
	added = palloc(Max(n, 1) * sizeof(Datum));
	price_gap_offers(r, tenant_id, out, n, added);
	for (i = 0; i < n; i++)
	{
		int64	   *ids;
		int64		added_cents;

		/* a tier's lower price may leave the gap open: no claim then */
		if (DatumGetInt32(DirectFunctionCall2(numeric_cmp, added[i], ndiff)) < 0)
			continue;
		added_cents = cents_up(added[i]);
		ids = palloc(out[i].n * sizeof(int64));
		memcpy(ids, out[i].ids, out[i].n * sizeof(int64));
		natural |= added_cents <= cart_cents / 2;
		/* "over" from the exact gap: a cart of 6.666 is 0.67 over 26 with 20.00 more, not 0.66 */
		serving_propose(p, OFFER_GAP_FILLER, ids, out[i].n,
				out[i].score * ((double) out[i].added / (double) added_cents) *
				addon_factor(added_cents, cart_cents), serving_zero_discount(),
				psprintf("adds %s to reach %s (%s over)", numeric_money_out(added[i]),
						 DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(target->amount))),
						 numeric_money_out(DirectFunctionCall2(numeric_sub, added[i], ndiff))));
	}

	natural |= propose_quantity_steps(p, r, tenant_id, ndiff, gap, cart_cents,
									  DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(target->amount))),
									  items, nitems, lines, nlines, line_ids, qty, tiers, ncart);

	natural |= propose_next_sizes(p, r, tenant_id, ndiff, gap, cart_cents,
								  DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(target->amount))),
								  items, nitems, lines, nlines, line_ids, qty, tiers, ncart);

	/*
	 * A large gap: nothing that closes it adds on naturally.  Say how far the
	 * cart is, with the best complement that costs less than the gap (offered
	 * as this add-on instead of as a plain complement), rather than push a
	 * second big-ticket item.  Returns its product id, 0 for none.
	 */
	if (!natural)
		for (i = 0; i < nev; i++)
		{
			int64		price = upsell_gap_price(get_namespace_name(serving.nsp), tenant_id, r->candidates_built_at, ev[i].id);
			int64	   *id;

			if (price <= 0 || price >= gap || offers_contains(skip_sorted, nskip_sorted, ev[i].id) ||
				serving_excluded(r, ev[i].id, items, nitems))
				continue;
			id = palloc(sizeof(int64));
			*id = ev[i].id;
			serving_propose(p, OFFER_GAP_FILLER, id, 1, 2.0, serving_zero_discount(),
					psprintf("you are %s away from %s: adds %s", money_out(gap), reward, money_out(price)));
			return *id;
		}
	return 0;
}


/*
 * One line per product, its quantities summed, in the order of the first:
 * a cart may hold a product on two lines (Shopify's line properties), and
 * its volume tier and what it takes to close a gap count every unit.  A
 * line's product is found in items (the cart's products, sorted and
 * unique) by binary search: upsell.max_cart_lines may allow 100,000 lines.
 */
static void
merge_lines(Datum *ids, int32 **qty, int *nlines, const int64 *items, int nitems)
{
	int64	   *units;
	bool	   *emitted;
	int		   *slot;
	int32	   *merged;
	int			n = 0;

	if (nitems == *nlines)
		return;					/* no product on two lines */
	units = palloc0(nitems * sizeof(int64));
	emitted = palloc0(nitems * sizeof(bool));
	slot = palloc(*nlines * sizeof(int));
	for (int i = 0; i < *nlines; i++)
	{
		int64		id = DatumGetInt64(ids[i]);

		slot[i] = serving_sorted_index(items, nitems, id);
		Assert(slot[i] >= 0);
		units[slot[i]] += *qty ? (*qty)[i] : 1;
		if (units[slot[i]] > PG_INT32_MAX)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("the cart's lines of product " INT64_FORMAT " hold more than 2147483647 units", id)));
	}
	merged = palloc(Max(*nlines, 1) * sizeof(int32));
	for (int i = 0; i < *nlines; i++)
		if (!emitted[slot[i]])
		{
			emitted[slot[i]] = true;
			ids[n] = ids[i];
			merged[n++] = (int32) units[slot[i]];
		}
	*qty = merged;
	*nlines = n;
}

/* What keeps a bestseller out of the cart's offers. */
typedef struct CartPopularSkip
{
	const Proposal *p;
	const Substitutes *subst;
} CartPopularSkip;

static bool
skip_popular(void *arg, int64 id, const char *category)
{
	CartPopularSkip *s = arg;

	/* a bestseller that closes the gap comes as that gap filler */
	for (int q = 0; q < s->p->n; q++)
		if (s->p->c[q].type == OFFER_GAP_FILLER && s->p->c[q].nids == 1 && s->p->c[q].ids[0] == id)
			return true;
	return serving_is_substitute(s->subst, id, category);
}

/*
 * The tiers of the cart's lines, in one query (run per line, as until 1.8,
 * they took most of a cart's time), before the cart's value: the value is
 * what the lines pay, at their tiers' prices (until 1.8 the list prices: a
 * cart of 3 at the tier's 8.50 instead of 9.00 was told a 3.33 product
 * reached the threshold of 30 when it left it at 28.83).  The Datums stay
 * in the request's SPI memory until serving_end_request.
 */
static LineTier *
read_tiers(const TenantRules *r, int64 tenant_id, Datum *cart_elems, const int32 *qty, int ncart)
{
	LineTier   *tiers = palloc0(Max(ncart, 1) * sizeof(LineTier));
	int64	   *ids;
	int32	   *units;
	TierQuote  *quotes;
	bool		any = false;

	/*
	 * none of the lines has a tier (own, or its category's: r->tiered, empty
	 * in a shop without tiers): nothing to read.  A shop with tiers on some
	 * products paid the query for every cart (1 ms of a 1.2 ms cart at 1M
	 * lines with 2,000 tiered products, none in the cart)
	 */
	for (int i = 0; i < ncart && !any; i++)
		any = serving_sorted_contains(r->tiered, r->ntiered, DatumGetInt64(cart_elems[i]));
	if (!any)
		return tiers;
	ids = palloc(ncart * sizeof(int64));
	units = palloc(ncart * sizeof(int32));
	for (int i = 0; i < ncart; i++)
	{
		ids[i] = DatumGetInt64(cart_elems[i]);
		units[i] = qty ? qty[i] : 1;
	}
	quotes = serving_quote_tiers(r, tenant_id, ids, units, ncart);
	for (int i = 0; i < ncart; i++)
	{
		TierQuote  *q = &quotes[i];
		LineTier   *t = &tiers[i];
		Datum		whole;

		if (!q->known || !q->tiered)
			continue;
		t->unit_price = q->unit_price;
		if (!q->has_next)
			continue;			/* no further tier lowers the price */

		/*
		 * score: the share of the next quantity's cost saved (none for a
		 * free unit).  discount: of the list price, as every offer's is
		 * (offers_json prices the offer as list price x (1 - discount)),
		 * so the widget shows the tier's unit price to the cent, not a
		 * fraction of the price the cart pays now, nor one rounded to 4
		 * places (8.58 shown for a tier of 8.10).
		 */
		whole = DirectFunctionCall2(numeric_add, NumericGetDatum(q->total_saving),
									DirectFunctionCall2(numeric_mul, NumericGetDatum(q->new_unit_price),
														NumericGetDatum(int64_to_numeric(q->next_quantity))));
		if (DatumGetInt32(DirectFunctionCall2(numeric_cmp, whole,
											  NumericGetDatum(int64_to_numeric(0)))) == 0)
			continue;
		t->has_next = true;
		t->score = DatumGetFloat8(DirectFunctionCall1(numeric_float8,
													  DirectFunctionCall2(numeric_div,
																	  NumericGetDatum(q->total_saving), whole)));
		t->discount = discount_to(q->new_unit_price, q->price);
		t->reason = q->reason;
	}
	return tiers;
}

/*
 * cart_offers(cart bigint[], quantities int[] DEFAULT NULL, tenant_id bigint
 *			   DEFAULT NULL, experiment text DEFAULT NULL, unit_id text
 *			   DEFAULT NULL, currency text DEFAULT NULL)
 *			   RETURNS SETOF upsell.offer
 */
Datum
upsell_cart_offers(PG_FUNCTION_ARGS)
{
	ArrayType  *cart_arr = PG_ARGISNULL(0) ? NULL : PG_GETARG_ARRAYTYPE_P(0);
	ArrayType  *qty_arr = PG_ARGISNULL(1) ? NULL : PG_GETARG_ARRAYTYPE_P(1);
	Datum	   *cart_elems = NULL;
	bool	   *cart_nulls = NULL;
	int			ncart = 0;
	int			nunknown = 0,
				nunpriced = 0;
	bool		value_known;
	LineTier   *tiers;
	int32	   *qty = NULL;
	bool	   *qty_nulls = NULL;
	int			nqty = 0;
	int64	   *items;
	int			nitems = 0;
	int64		tenant_id;
	TenantRules *r;
	uint32		allowed;
	CartLine   *lines;
	int			nlines;
	Numeric		total;
	Evidence   *ev;
	int			nev;
	Substitutes subst;
	CartPopularSkip skip;
	int64		addon = 0;
	char	   *cart_currency = NULL;
	Proposal	p;
	char	  **categories;
	int			ncategories = 0;
	int			i,
				j;

	if ((cart_arr && ARR_NDIM(cart_arr) > 1) || (qty_arr && ARR_NDIM(qty_arr) > 1))
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("the cart must be one-dimensional arrays of product ids and quantities")));
	if (cart_arr && ArrayGetNItems(ARR_NDIM(cart_arr), ARR_DIMS(cart_arr)) > upsell_max_cart_lines)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("the cart has %d lines, more than upsell.max_cart_lines (%d)",
						ArrayGetNItems(ARR_NDIM(cart_arr), ARR_DIMS(cart_arr)), upsell_max_cart_lines)));
	if (cart_arr)
		deconstruct_array(cart_arr, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
						  &cart_elems, &cart_nulls, &ncart);
	items = palloc(Max(ncart, 1) * sizeof(int64));
	for (i = 0; i < ncart; i++)
		if (!cart_nulls[i])
			items[nitems++] = DatumGetInt64(cart_elems[i]);
	nitems = serving_sort_unique(items, nitems);

	serving_begin_request(fcinfo);
	tenant_id = serving_resolve_tenant(PG_ARGISNULL(2), PG_ARGISNULL(2) ? 0 : PG_GETARG_INT64(2));

	lines = serving_read_cart_lines(tenant_id, items, nitems, &nlines);

	if (qty_arr)
	{
		Datum	   *q;

		deconstruct_array(qty_arr, INT4OID, 4, true, TYPALIGN_INT, &q, &qty_nulls, &nqty);
		qty = palloc(Max(nqty, 1) * sizeof(int32));
		for (i = 0; i < nqty; i++)
			qty[i] = qty_nulls[i] ? 0 : DatumGetInt32(q[i]);
		if (nqty != ncart)
			ereport(ERROR,
					(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
					 errmsg("cart has %d products but quantities has %d entries", ncart, nqty)));
	}
	for (i = 0; i < ncart; i++)
		if (cart_nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("the cart contains a NULL product id")));
	for (i = 0; i < nqty; i++)
		if (qty_nulls[i] || qty[i] <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("quantity of product " INT64_FORMAT " must be a positive integer, not %s",
							DatumGetInt64(cart_elems[i]),
							qty_nulls[i] ? "NULL" : psprintf("%d", qty[i]))));
	merge_lines(cart_elems, &qty, &ncart, items, nitems);
	if (serving_opt_text(fcinfo, 5))
	{
		cart_currency = text_to_cstring(serving_opt_text(fcinfo, 5));
		if (strlen(cart_currency) != 3 || strspn(cart_currency, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != 3)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("currency must be an ISO 4217 code of three capital letters, not \"%s\"",
							cart_currency)));
	}
	allowed = serving_allowed_types(serving_opt_text(fcinfo, 3), serving_opt_text(fcinfo, 4), STAGE_CART, tenant_id);
	r = serving_tenant_rules(tenant_id);

	/*
	 * The cart's value at the prices of the last refresh.  A product the
	 * models do not know (added since, or never sold) or one without a price
	 * leaves the value unknown: the page is served without what needs it
	 * (thresholds' gap fillers, offers triggered by the cart value), and the
	 * reasons say so.
	 */
	tiers = read_tiers(r, tenant_id, cart_elems, qty, ncart);
	total = int64_to_numeric(0);
	for (i = 0; i < ncart; i++)
	{
		int64		id = DatumGetInt64(cart_elems[i]);
		CartLine   *l = find_line(lines, nlines, id);

		if (l == NULL)
			nunknown++;
		else if (l->price == NULL)
			nunpriced++;
		else
			total = DatumGetNumeric(DirectFunctionCall2(numeric_add, NumericGetDatum(total),
														DirectFunctionCall2(numeric_mul,
																			NumericGetDatum(tiers[i].unit_price ? tiers[i].unit_price : l->price),
																			NumericGetDatum(int64_to_numeric(qty ? qty[i] : 1)))));
	}
	value_known = nunknown == 0 && nunpriced == 0;
	categories = palloc(Max(nlines, 1) * sizeof(char *));
	for (i = 0; i < nlines; i++)
		if (lines[i].category)
		{
			for (j = 0; j < ncategories; j++)
				if (strcmp(categories[j], lines[i].category) == 0)
					break;
			if (j == ncategories)
				categories[ncategories++] = lines[i].category;
		}

	serving_proposal_init(&p, 32);
	if (nunknown > 0)
		p.note = psprintf("%d of the cart's products unknown as of the last refresh: no threshold offers", nunknown);
	else if (nunpriced > 0)
		p.note = psprintf("%d of the cart's products without a price: no threshold offers", nunpriced);
	serving_propose_pinned(&p, r, STAGE_CART, items, nitems, categories, ncategories,
						   ncart > 0 && value_known ? total : NULL, GetCurrentTransactionStartTimestamp());

	/*
	 * complements of the cart (the best not excluded; the gap fillers weigh
	 * the best of all), then bestsellers far below them to fill the slots
	 */
	subst = serving_substitutes_of(lines, nlines);
	ev = cart_complements(lines, nlines, items, nitems, &subst, CART_RELEVANT, &nev);

	/*
	 * what closes the gap to the next threshold (free shipping, a reward):
	 * only when the cart's value is known
	 */
	if (value_known)
	{
		int64	   *line_ids = palloc(Max(ncart, 1) * sizeof(int64));

		for (i = 0; i < ncart; i++)
			line_ids[i] = DatumGetInt64(cart_elems[i]);
		addon = propose_gap_fillers(&p, r, tenant_id, total, cart_currency, items, nitems, lines, nlines,
									line_ids, qty, tiers, ncart, &subst, ev, nev);
	}

	for (i = 0, j = 0; i < nev && j < CART_COMPLEMENTS; i++)
		if (ev[i].id != addon && !serving_excluded(r, ev[i].id, items, nitems))
		{
			serving_propose(&p, OFFER_COMPLEMENT, &ev[i].id, 1, ev[i].score, serving_zero_discount(),
					"bought together with the cart");
			j++;
		}
	skip.p = &p;
	skip.subst = &subst;
	serving_propose_popular(&p, r, STAGE_CART, items, nitems, skip_popular, &skip);

	/* the better version of a cart line, stored per product at refresh */
	for (i = 0; i < nlines; i++)
		if (lines[i].has_upgrade)
			serving_propose(&p, OFFER_UPGRADE, &lines[i].upgrade_id, 1, lines[i].upgrade_score,
					serving_zero_discount(), lines[i].upgrade_reason);

	/* the next volume tier of a cart line (read above with the prices) */
	for (i = 0; i < ncart; i++)
		if (tiers[i].has_next)
		{
			int64	   *id = palloc(sizeof(int64));

			*id = DatumGetInt64(cart_elems[i]);
			serving_propose(&p, OFFER_QUANTITY_TIER, id, 1, tiers[i].score, tiers[i].discount, tiers[i].reason);
		}

	serving_emit(fcinfo, &p, r, STAGE_CART, allowed, items, nitems);
	serving_end_request();
	PG_RETURN_NULL();
}
