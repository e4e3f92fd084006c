/*
 * serving_cart.c
 *		The cart stage, cart_offers: the cart's lines from cart_model, their
 *		complements combined, bestsellers, gap fillers to the next threshold,
 *		upgrades and volume tiers, merged under the cart's rules.
 */
#include "postgres.h"

#include <math.h>

#include "utils/fmgrprotos.h"
#include "utils/lsyscache.h"

#include "serving.h"
#include "upsell.h"

#define CART_COMPLEMENTS	12	/* complements of the cart proposed to the merge */
#define CART_GAP_FILLERS	6
#define CART_GAP_ITEMS		2
#define CART_RELEVANT		24	/* complements ranked: the gap fillers' relevance,
								 * and room for exclusions among the first 12 */

PG_FUNCTION_INFO_V1(upsell_cart_offers);

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
 * of logs go through a small open-addressing table, and only the best are
 * sorted: a request costs the length of the lines' lists.
 */
static Evidence *
cart_complements(CartLine *lines, int nlines, const int64 *items, int nitems,
				 int want, int *n)
{
	int			total = 0,
				size = 16,
				m = 0,
				i,
				j;
	int64	   *keys;
	double	   *sums;
	bool	   *used;
	Evidence   *e;

	for (i = 0; i < nlines; i++)
		total += lines[i].ncomplements;
	while (size < 2 * total)
		size *= 2;
	keys = palloc(size * sizeof(int64));
	sums = palloc(size * sizeof(double));
	used = palloc0(size * sizeof(bool));
	for (i = 0; i < nlines; i++)
		for (j = 0; j < lines[i].ncomplements; j++)
		{
			int64		id = lines[i].complements[j];
			uint32		h = (uint32) (((uint64) id * UINT64CONST(0x9E3779B97F4A7C15)) >> 32) & (size - 1);

			while (used[h] && keys[h] != id)
				h = (h + 1) & (size - 1);
			if (!used[h])
			{
				used[h] = true;
				keys[h] = id;
				sums[h] = 0;
			}
			sums[h] += lines[i].complement_log_miss[j];
		}

	/* ranked by -sum, which orders as the score 1 - exp(sum) does */
	e = palloc(Max(total, 1) * sizeof(Evidence));
	for (i = 0; i < size; i++)
		if (used[i] && !offers_contains(items, nitems, keys[i]))
		{
			e[m].id = keys[i];
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

/*
 * The gap fillers of the cart: what closes the gap from the cart's total to
 * the next active threshold, as upsell.gap_fillers(cart, quantities, 6, 2)
 * finds them, but with relevance from the cart's CART_RELEVANT best
 * complements only (ev, best first): each relevant candidate opens groups
 * of the exact search, and the long tail of weak complements changes a
 * score by little and costs the most.
 */
static void
propose_gap_fillers(Proposal *p, const TenantRules *r, int64 tenant_id, Numeric total,
					const int64 *items, int nitems, const Evidence *ev, int nev)
{
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	const Threshold *target = NULL;
	char	   *currency = NULL;
	bool		several = false;
	StringInfoData currencies;
	int64		gap;
	int64	   *skip;
	int64	   *rel_ids;
	double	   *rel;
	int			nskip = 0,
				i,
				n;
	GapOffer	out[CART_GAP_FILLERS];
	Datum		ndiff;

	if (r->nthresholds == 0)
		return;
	/* thresholds are sorted by amount: the first unreached active one */
	for (i = 0; i < r->nthresholds; i++)
	{
		const Threshold *t = &r->thresholds[i];

		if (!serving_active_at(t->has_from, t->active_from, t->has_to, t->active_to, now))
			continue;
		if (t->currency)
		{
			if (currency && strcmp(currency, t->currency) != 0)
				several = true;
			else
				currency = t->currency;
		}
		if (target == NULL && !serving_numeric_at_most(t->amount, total))
			target = t;
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
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the active thresholds are in several currencies (%s): which one is the cart in?",
						currencies.data),
				 errhint("Pass currency => '...'.")));
	}
	if (target == NULL || !r->has_candidates)
		return;

	/* cents, rounded up: the offer must reach the threshold */
	ndiff = DirectFunctionCall2(numeric_sub, NumericGetDatum(target->amount), NumericGetDatum(total));
	gap = DatumGetInt64(DirectFunctionCall1(numeric_int8,
											DirectFunctionCall1(numeric_ceil,
																DirectFunctionCall2(numeric_mul, ndiff,
																					NumericGetDatum(int64_to_numeric(100))))));
	if (gap <= 0)
		return;

	/* never the cart, nor what the merchant excluded */
	skip = palloc((nitems + r->nexcluded + r->npairs + 1) * sizeof(int64));
	for (i = 0; i < nitems; i++)
		skip[nskip++] = items[i];
	for (i = 0; i < r->nexcluded; i++)
		skip[nskip++] = r->excluded[i];
	for (i = 0; i < r->npairs; i++)
		if (offers_contains(items, nitems, r->pair_with[i]))
			skip[nskip++] = r->pair_product[i];
	/* relevance: relative to the cart's best complement */
	rel_ids = palloc(Max(nev, 1) * sizeof(int64));
	rel = palloc(Max(nev, 1) * sizeof(double));
	for (i = 0; i < nev; i++)
	{
		rel_ids[i] = ev[i].id;
		rel[i] = ev[0].score > 0 ? ev[i].score / ev[0].score : 0;
	}
	n = upsell_gap_offers(get_namespace_name(serving.nsp), tenant_id, r->candidates_built_at, gap,
						  skip, nskip, rel_ids, rel, nev, CART_GAP_FILLERS, CART_GAP_ITEMS, out);
	for (i = 0; i < n; i++)
	{
		Datum		added = NumericGetDatum(int64_div_fast_to_numeric(out[i].added, 2));
		Datum		over = DirectFunctionCall2(numeric_sub,
											   DirectFunctionCall2(numeric_add, NumericGetDatum(total), added),
											   NumericGetDatum(target->amount));
		int64	   *ids = palloc(out[i].n * sizeof(int64));

		memcpy(ids, out[i].ids, out[i].n * sizeof(int64));
		serving_propose(p, OFFER_GAP_FILLER, ids, out[i].n, out[i].score, serving_zero_discount(),
				psprintf("adds %s to reach %s (%s over)",
						 DatumGetCString(DirectFunctionCall1(numeric_out, added)),
						 DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(target->amount))),
						 DatumGetCString(DirectFunctionCall1(numeric_out, over))));
	}
}

/*
 * cart_offers(cart bigint[], quantities int[] DEFAULT NULL, tenant_id bigint
 *			   DEFAULT NULL, experiment text DEFAULT NULL, unit_id text
 *			   DEFAULT NULL) RETURNS SETOF upsell.offer
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
	allowed = serving_allowed_types(serving_opt_text(fcinfo, 3), serving_opt_text(fcinfo, 4), STAGE_CART);
	r = serving_tenant_rules(tenant_id);

	/*
	 * The cart's value at the prices of the last refresh.  A product the
	 * models do not know (added since, or never sold) or one without a price
	 * leaves the value unknown: the page is served without what needs it
	 * (thresholds' gap fillers, offers triggered by the cart value), and the
	 * reasons say so.
	 */
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
														DirectFunctionCall2(numeric_mul, NumericGetDatum(l->price),
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
						   ncart > 0 && value_known ? total : NULL);

	/*
	 * complements of the cart (the best not excluded; the gap fillers weigh
	 * the best of all), then bestsellers far below them to fill the slots
	 */
	ev = cart_complements(lines, nlines, items, nitems, CART_RELEVANT, &nev);
	for (i = 0, j = 0; i < nev && j < CART_COMPLEMENTS; i++)
		if (!serving_excluded(r, ev[i].id, items, nitems))
		{
			serving_propose(&p, OFFER_COMPLEMENT, &ev[i].id, 1, ev[i].score, serving_zero_discount(),
					"bought together with the cart");
			j++;
		}
	for (i = 0; i < r->npopular; i++)
		serving_propose(&p, OFFER_COMPLEMENT, &r->popular[i], 1, 1e-6 / (double) r->popular_rank[i],
				serving_zero_discount(), "popular");

	/* what closes the gap to the next threshold (free shipping, a reward) */
	if (value_known)
		propose_gap_fillers(&p, r, tenant_id, total, items, nitems, ev, nev);

	/* the better version of a cart line, stored per product at refresh */
	for (i = 0; i < nlines; i++)
		if (lines[i].has_upgrade)
			serving_propose(&p, OFFER_UPGRADE, &lines[i].upgrade_id, 1, lines[i].upgrade_score,
					serving_zero_discount(), lines[i].upgrade_reason);

	/* the next volume tier of a cart line, only where the merchant set tiers */
	if (r->volume_tiers)
		for (i = 0; i < ncart; i++)
		{
			Datum		args[3];
			bool		isnull;
			Datum		score;
			int64	   *id = palloc(sizeof(int64));

			*id = DatumGetInt64(cart_elems[i]);
			args[0] = Int64GetDatum(*id);
			args[1] = Int32GetDatum(qty ? qty[i] : 1);
			args[2] = Int64GetDatum(tenant_id);
			if (serving_run(serving.tier, args, NULL) == 0)
				continue;
			score = serving_col(0, 1, &isnull);
			if (isnull)
				continue;
			serving_propose(&p, OFFER_QUANTITY_TIER, id, 1, DatumGetFloat8(score),
					serving_col(0, 2, &isnull), serving_col_text(0, 3));
		}

	serving_emit(fcinfo, &p, r, STAGE_CART, allowed, items, nitems);
	serving_end_request();
	PG_RETURN_NULL();
}
